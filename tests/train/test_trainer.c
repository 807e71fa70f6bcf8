/*
 * Suite "train": the trainer on real (small) tasks. A tiny model overfits a
 * short text; runs with one seed are bit-identical; a run interrupted by a
 * checkpoint and resumed is bit-identical to the uninterrupted one; a
 * non-finite step is skipped without touching the weights. Seeded
 * evaluation sees the same windows whatever the trainer's seed and batch.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "temp_dir.h"
#include "tlm.h"
#include "tolerance.h"

static const char text[] =
    "the quick brown fox jumps over the lazy dog. "
    "pack my box with five dozen liquor jugs. ";

/* Byte-level ids of `text`, repeated `copies` times. */
static int32_t *text_ids(int copies, int64_t *count) {
    const int64_t n = (int64_t)strlen(text);
    int32_t *ids = malloc((size_t)(n * copies) * sizeof *ids);
    for (int c = 0; c < copies; c++)
        for (int64_t i = 0; i < n; i++)
            ids[c * n + i] = (unsigned char)text[i];
    *count = n * copies;
    return ids;
}

typedef struct run {
    tlm_context *ctx;
    tlm_model *model;
    tlm_dataset *data;
    tlm_trainer *trainer;
} run;

static void start(run *r, float dropout, uint64_t seed) {
    assert_int_equal(tlm_context_create(&r->ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 128;
    c.d_model = 32;
    c.n_heads = 2;
    c.d_ff = 64;
    c.n_decoder_layers = 2;
    c.max_context = 16;
    c.residual_dropout = dropout;
    c.init_seed = 3;
    assert_int_equal(tlm_model_create(&r->model, r->ctx, &c), TLM_OK);
    int64_t count = 0;
    int32_t *ids = text_ids(8, &count);
    assert_int_equal(tlm_dataset_from_ids(&r->data, r->ctx, ids, count, NULL), TLM_OK);
    free(ids);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 8;
    params.seed = seed;
    tlm_optimizer_params optimizer;
    tlm_optimizer_params_init(&optimizer);
    optimizer.lr = 3e-3f;
    params.optimizer = &optimizer;
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = 3e-3f;
    schedule.min_lr = 3e-4f;
    schedule.warmup_steps = 5;
    schedule.decay_end_step = 300;
    params.schedule = &schedule;
    if (tlm_trainer_create(&r->trainer, r->model, r->data, &params) != TLM_OK)
        fail_msg("trainer: %s", tlm_last_error());
}

static void stop(run *r) {
    tlm_trainer_free(r->trainer);
    tlm_dataset_free(r->data);
    tlm_model_free(r->model);
    tlm_context_free(r->ctx);
}

/* A text in which every character has one successor (a cycle of 37
 * distinct characters): a model that memorises it predicts every next
 * character, so its loss can go to zero. */
static void small_model_overfits_text(void **state) {
    (void)state;
    run r;
    start(&r, 0.0f, 7);
    tlm_trainer_free(r.trainer);
    tlm_dataset_free(r.data);
    static const char cycle[] = "abcdefghijklmnopqrstuvwxyz0123456789 ";
    int32_t ids[37 * 12];
    for (int i = 0; i < 37 * 12; i++)
        ids[i] = (unsigned char)cycle[i % 37];
    assert_int_equal(tlm_dataset_from_ids(&r.data, r.ctx, ids, 37 * 12, NULL), TLM_OK);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 8;
    tlm_optimizer_params optimizer;
    tlm_optimizer_params_init(&optimizer);
    optimizer.lr = 1e-2f;
    params.optimizer = &optimizer;
    assert_int_equal(tlm_trainer_create(&r.trainer, r.model, r.data, &params), TLM_OK);
    float first = 0, val = 0;
    assert_int_equal(tlm_trainer_evaluate(r.trainer, TLM_SPLIT_VALIDATION, 4, &first), TLM_OK);
    tlm_step_info info;
    tlm_step_info_init(&info);
    for (int i = 0; i < 300; i++)
        assert_int_equal(tlm_trainer_step(r.trainer, &info), TLM_OK);
    assert_int_equal(tlm_trainer_step_count(r.trainer), 300);
    assert_int_equal(info.step, 300);
    assert_int_equal(info.tokens, 8 * 16);
    assert_int_equal(tlm_trainer_evaluate(r.trainer, TLM_SPLIT_VALIDATION, 4, &val), TLM_OK);
    printf("overfit: validation loss %.3f -> %.4f (train %.4f)\n",
           (double)first, (double)val, (double)info.loss);
    assert_true(val < 0.02f);
    assert_true(first > 4.0f);
    stop(&r);
}

/* Losses and parameters of `steps` steps, optionally saving after
 * `save_at` and resuming in a fresh trainer. */
static void train_and_record(int steps, int save_at, const char *path,
                             float *losses, float *final_weights, int64_t n_weights) {
    run r;
    start(&r, 0.1f, 11);
    for (int i = 0; i < steps; i++) {
        if (i == save_at) {
            assert_int_equal(tlm_trainer_save(r.trainer, path), TLM_OK);
            stop(&r);
            start(&r, 0.1f, 999); /* another seed: the checkpoint's wins */
            if (tlm_trainer_resume(r.trainer, path) != TLM_OK)
                fail_msg("resume: %s", tlm_trainer_last_error(r.trainer));
            assert_int_equal(tlm_trainer_step_count(r.trainer), save_at);
        }
        tlm_step_info info;
        tlm_step_info_init(&info);
        assert_int_equal(tlm_trainer_step(r.trainer, &info), TLM_OK);
        losses[i] = info.loss;
    }
    tlm_tensor *w = NULL;
    assert_int_equal(tlm_model_find_parameter(r.model, "decoder.layers.1.ffn.up_proj.weight", &w), TLM_OK);
    assert_int_equal(tlm_tensor_get_f32(w, final_weights, n_weights), TLM_OK);
    stop(&r);
}

static void resume_is_bit_identical(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/run.tlm", dir);
    enum { STEPS = 12, N = 64 * 32 };
    float straight[STEPS], resumed[STEPS], again[STEPS];
    static float w_straight[N], w_resumed[N], w_again[N];
    train_and_record(STEPS, -1, path, straight, w_straight, N);
    train_and_record(STEPS, -1, path, again, w_again, N);
    train_and_record(STEPS, 5, path, resumed, w_resumed, N);
    /* Finite, so that equal bits are equal numbers (two NaN runs agree). */
    assert_int_equal(tlmt_first_non_finite_f32(straight, STEPS), -1);
    assert_int_equal(tlmt_first_non_finite_f32(w_straight, N), -1);
    /* Same seed, same run (dropout included); resumed, the same too. */
    assert_memory_equal(straight, again, sizeof straight);
    assert_memory_equal(w_straight, w_again, sizeof w_straight);
    assert_memory_equal(straight, resumed, sizeof straight);
    assert_memory_equal(w_straight, w_resumed, sizeof w_straight);
    temp_dir_remove(dir);
}

static void non_finite_step_touches_nothing(void **state) {
    (void)state;
    run r;
    start(&r, 0.0f, 5);
    tlm_step_info info;
    tlm_step_info_init(&info);
    assert_int_equal(tlm_trainer_step(r.trainer, &info), TLM_OK);
    /* Poison one weight: the loss becomes NaN. */
    tlm_tensor *w = NULL;
    assert_int_equal(tlm_model_find_parameter(r.model, "decoder.layers.0.ffn.up_proj.weight", &w), TLM_OK);
    tlm_tensor_data_f32(w)[5] = NAN;
    int32_t n = tlm_model_parameter_tensor_count(r.model);
    int64_t total = tlm_model_parameter_count(r.model);
    float *before = malloc((size_t)total * sizeof *before), *after = malloc((size_t)total * sizeof *after);
    for (int pass = 0; pass < 2; pass++) {
        float *dst = pass ? after : before;
        for (int32_t i = 0; i < n; i++) {
            tlm_tensor *t;
            const char *name;
            tlm_model_parameter(r.model, i, &name, &t);
            memcpy(dst, tlm_tensor_data_f32(t), (size_t)tlm_tensor_numel(t) * sizeof *dst);
            dst += tlm_tensor_numel(t);
        }
        if (pass == 0) {
            assert_int_equal(tlm_trainer_step(r.trainer, &info), TLM_E_NONFINITE);
            assert_int_equal(info.skipped, 1);
            assert_non_null(strstr(tlm_trainer_last_error(r.trainer), "skipped"));
            assert_int_equal(tlm_trainer_step_count(r.trainer), 1);
        }
    }
    assert_memory_equal(before, after, (size_t)total * sizeof *before);
    free(before);
    free(after);
    stop(&r);
}

static int stop_after_three(void *user, const tlm_step_info *info) {
    int *calls = user;
    (*calls)++;
    return info->step >= 3;
}

static void progress_callback_sees_every_step(void **state) {
    (void)state;
    run r;
    start(&r, 0.0f, 5);
    tlm_trainer_free(r.trainer);
    int calls = 0;
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 2;
    params.context = 8;
    params.accumulation = 3;
    params.progress = stop_after_three;
    params.progress_user = &calls;
    assert_int_equal(tlm_trainer_create(&r.trainer, r.model, r.data, &params), TLM_OK);
    tlm_step_info info;
    tlm_step_info_init(&info);
    assert_int_equal(tlm_trainer_step(r.trainer, &info), TLM_OK);
    assert_int_equal(info.tokens, 2 * 8 * 3);
    assert_int_equal(tlm_trainer_step(r.trainer, NULL), TLM_OK);
    assert_int_equal(tlm_trainer_step(r.trainer, NULL), TLM_E_CANCELLED);
    assert_int_equal(calls, 3);
    stop(&r);
}

/* tlm_trainer_evaluate_seeded: the same model evaluated by trainers with
 * other seeds gives the same loss for one evaluation seed (its windows do
 * not depend on the trainer's seed), a batch of 4 twice the loss of a
 * batch of 8 once (the windows come one after the other from the seed),
 * and training steps in between do not move the set. */
static void seeded_evaluation_is_a_fixed_set(void **state) {
    (void)state;
    run a, b;
    start(&a, 0.0f, 11);
    start(&b, 0.0f, 12); /* the same weights (init_seed 3), another seed */
    float loss_a = 0, loss_b = 0, own_a = 0, own_b = 0;
    assert_int_equal(tlm_trainer_evaluate_seeded(a.trainer, TLM_SPLIT_VALIDATION, 3, 99,
                                                 &loss_a), TLM_OK);
    assert_int_equal(tlm_trainer_evaluate_seeded(b.trainer, TLM_SPLIT_VALIDATION, 3, 99,
                                                 &loss_b), TLM_OK);
    assert_true(loss_a == loss_b);
    /* The trainers' own evaluations draw from their seeds: other windows. */
    assert_int_equal(tlm_trainer_evaluate(a.trainer, TLM_SPLIT_VALIDATION, 3, &own_a), TLM_OK);
    assert_int_equal(tlm_trainer_evaluate(b.trainer, TLM_SPLIT_VALIDATION, 3, &own_b), TLM_OK);
    assert_true(own_a != own_b);
    float other_seed = 0;
    assert_int_equal(tlm_trainer_evaluate_seeded(a.trainer, TLM_SPLIT_VALIDATION, 3, 100,
                                                 &other_seed), TLM_OK);
    assert_true(other_seed != loss_a);

    /* Steps of b's trainer do not move the set: a fresh trainer with b's
     * seed and batch 4 on b's trained model, two batches against one of 8. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(tlm_trainer_step(b.trainer, NULL), TLM_OK);
    float eight = 0, four = 0;
    assert_int_equal(tlm_trainer_evaluate_seeded(b.trainer, TLM_SPLIT_VALIDATION, 1, 99,
                                                 &eight), TLM_OK);
    tlm_trainer_free(b.trainer);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 4;
    params.seed = 12;
    assert_int_equal(tlm_trainer_create(&b.trainer, b.model, b.data, &params), TLM_OK);
    assert_int_equal(tlm_trainer_evaluate_seeded(b.trainer, TLM_SPLIT_VALIDATION, 2, 99,
                                                 &four), TLM_OK);
    assert_true(eight != loss_b);
    /* the same windows, averaged in another order */
    assert_true(fabs((double)four - (double)eight) <= 1e-5 * fabs((double)eight));
    stop(&a);
    stop(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_model_overfits_text),
        cmocka_unit_test(resume_is_bit_identical),
        cmocka_unit_test(non_finite_step_touches_nothing),
        cmocka_unit_test(progress_callback_sees_every_step),
        cmocka_unit_test(seeded_evaluation_is_a_fixed_set),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
