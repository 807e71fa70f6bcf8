/*
 * Suite "faults": training guards. A step whose loss or gradient is not
 * finite, or whose gradient norm has overflowed, skips the update: the
 * step returns TLM_E_NONFINITE, the progress callback receives the step
 * info with skipped = 1 and the number of steps completed, the message
 * names the step and what was not finite, every parameter is bitwise
 * unchanged, the step counter does not move, and training goes on once
 * the cause is removed.
 *  - non-finite loss: a weight poisoned with NaN, then with +infinity;
 *    and a NaN in element 0 of every parameter tensor in turn, in a
 *    GPT-style and a Llama-style model;
 *  - non-finite gradient with a finite loss: with the embeddings and the
 *    layers' output projections zeroed, the final norm's input is exactly
 *    0, so a gain of 3e38 still gives finite (zero) logits and the loss
 *    log(V); its backward multiplies the gain by 1/sqrt(eps) and
 *    overflows;
 *  - exploding weights: plain SGD with a learning rate of 1e30 drives the
 *    weights towards overflow within a few steps; every step that goes
 *    non-finite is skipped with the weights untouched.
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

#include "tlm.h"

typedef struct progress_log {
    int calls;
    int skipped;
    int64_t last_step;
    float last_loss;
    double last_norm;
} progress_log;

static int on_progress(void *user, const tlm_step_info *info) {
    progress_log *log = user;
    log->calls++;
    log->skipped = info->skipped;
    log->last_step = info->step;
    log->last_loss = info->loss;
    log->last_norm = info->grad_norm;
    return 0;
}

typedef struct run {
    tlm_context *ctx;
    tlm_model *model;
    tlm_dataset *data;
    tlm_trainer *trainer;
    progress_log log;
    float *snapshot;
    int64_t total;
} run;

static void start_model(run *r, int sgd, float lr, int tied,
                        float max_grad_norm, int llama) {
    memset(r, 0, sizeof *r);
    assert_int_equal(tlm_context_create(&r->ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 64;
    c.d_model = 16;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_decoder_layers = 2;
    c.max_context = 8;
    c.init_seed = 9;
    c.tied_output = tied;
    if (llama) {
        c.norm = TLM_NORM_RMS;
        c.position = TLM_POSITION_ROTARY;
        c.activation = TLM_ACTIVATION_SWIGLU;
        c.bias = 0;
    }
    assert_int_equal(tlm_model_create(&r->model, r->ctx, &c), TLM_OK);
    int32_t ids[400];
    for (int i = 0; i < 400; i++)
        ids[i] = (i * 7 + i / 5) % 64;
    assert_int_equal(tlm_dataset_from_ids(&r->data, r->ctx, ids, 400, NULL), TLM_OK);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 4;
    params.grad_clip = 0; /* measure the norm, do not clip it */
    params.max_grad_norm = max_grad_norm;
    params.progress = on_progress;
    params.progress_user = &r->log;
    tlm_optimizer_params opt;
    tlm_optimizer_params_init_for(&opt, sgd ? TLM_OPTIMIZER_SGD : TLM_OPTIMIZER_ADAMW);
    opt.lr = lr;
    params.optimizer = &opt;
    assert_int_equal(tlm_trainer_create(&r->trainer, r->model, r->data, &params),
                     TLM_OK);
    r->total = tlm_model_parameter_count(r->model);
    r->snapshot = malloc((size_t)r->total * sizeof(float));
    assert_non_null(r->snapshot);
}

static void start_guarded(run *r, int sgd, float lr, int tied,
                          float max_grad_norm) {
    start_model(r, sgd, lr, tied, max_grad_norm, 0);
}

static void start(run *r, int sgd, float lr, int tied) {
    start_guarded(r, sgd, lr, tied, 0.0f);
}

static void stop(run *r) {
    free(r->snapshot);
    tlm_trainer_free(r->trainer);
    tlm_dataset_free(r->data);
    tlm_model_free(r->model);
    tlm_context_free(r->ctx);
}

/* Copies every parameter into `into` (compare 0), compares them with it
 * bitwise (1), or copies `into` back into them (2). */
static int weights(run *r, float *into, int compare) {
    int32_t n = tlm_model_parameter_tensor_count(r->model);
    float *at = into;
    for (int32_t i = 0; i < n; i++) {
        const char *name;
        tlm_tensor *t;
        tlm_model_parameter(r->model, i, &name, &t);
        size_t bytes = (size_t)tlm_tensor_numel(t) * sizeof(float);
        if (compare == 2) {
            memcpy(tlm_tensor_data_f32(t), at, bytes);
        } else if (compare) {
            if (memcmp(at, tlm_tensor_data_f32(t), bytes) != 0)
                return 0;
        } else {
            memcpy(at, tlm_tensor_data_f32(t), bytes);
        }
        at += tlm_tensor_numel(t);
    }
    return 1;
}

static float *parameter(run *r, const char *name) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_model_find_parameter(r->model, name, &t), TLM_OK);
    return tlm_tensor_data_f32(t);
}

/* One step that must be skipped for `what` ("loss" or "gradient"). */
static void expect_skipped_step(run *r, const char *what) {
    weights(r, r->snapshot, 0);
    int64_t steps = tlm_trainer_step_count(r->trainer);
    int calls = r->log.calls;
    tlm_step_info info;
    tlm_step_info_init(&info);
    assert_int_equal(tlm_trainer_step(r->trainer, &info), TLM_E_NONFINITE);
    assert_int_equal(info.skipped, 1);
    assert_int_equal(info.step, steps);
    assert_int_equal(r->log.calls, calls + 1);
    assert_int_equal(r->log.skipped, 1);
    assert_int_equal(r->log.last_step, steps);
    assert_int_equal(tlm_trainer_step_count(r->trainer), steps);
    const char *message = tlm_trainer_last_error(r->trainer);
    char expected[64];
    snprintf(expected, sizeof expected, "step %lld: the %s is not finite",
             (long long)steps + 1, what);
    if (strstr(message, expected) == NULL)
        fail_msg("expected \"%s\" in: %s", expected, message);
    if (strcmp(what, "gradient") == 0) {
        assert_true(isfinite(info.loss));
        assert_false(isfinite(info.grad_norm));
    } else {
        assert_false(isfinite(info.loss));
    }
    assert_true(weights(r, r->snapshot, 1));
}

static void good_step(run *r) {
    int64_t steps = tlm_trainer_step_count(r->trainer);
    tlm_step_info info;
    tlm_step_info_init(&info);
    if (tlm_trainer_step(r->trainer, &info) != TLM_OK)
        fail_msg("step: %s", tlm_trainer_last_error(r->trainer));
    assert_int_equal(info.skipped, 0);
    assert_int_equal(info.step, steps + 1);
    assert_int_equal(r->log.skipped, 0);
    assert_true(isfinite(info.loss) && isfinite(info.grad_norm));
}

static void poisoned_weight_skips_the_step(void **state) {
    (void)state;
    run r;
    start(&r, 0, 1e-3f, 1);
    good_step(&r);
    float *w = parameter(&r, "decoder.layers.1.ffn.up_proj.weight");
    float saved = w[3];
    w[3] = NAN;
    expect_skipped_step(&r, "loss");
    w[3] = INFINITY;
    expect_skipped_step(&r, "loss");
    w[3] = saved;
    good_step(&r); /* training goes on */
    stop(&r);
}

/* A NaN in any one parameter, whatever it is, makes the loss NaN and the
 * step skipped: no op may turn a NaN into a finite value on the way (the
 * attention kernels once gave a row of zeros for NaN scores, which hid a
 * poisoned query projection). Element 0 of every tensor, in a GPT-style
 * and a Llama-style model (tied output, so that every embedding row
 * reaches the logits). */
static void a_nan_in_any_parameter_skips_the_step(void **state) {
    (void)state;
    for (int llama = 0; llama <= 1; llama++) {
        run r;
        start_model(&r, 0, 1e-3f, 1, 0.0f, llama);
        good_step(&r);
        for (int32_t i = 0; i < tlm_model_parameter_tensor_count(r.model);
             i++) {
            const char *name = NULL;
            tlm_tensor *t = NULL;
            assert_int_equal(tlm_model_parameter(r.model, i, &name, &t),
                             TLM_OK);
            float *w = tlm_tensor_data_f32(t);
            const float saved = w[0];
            w[0] = NAN;
            print_message("NaN in %s\n", name);
            expect_skipped_step(&r, "loss");
            w[0] = saved;
        }
        good_step(&r);
        stop(&r);
    }
}

static void zero(run *r, const char *name) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_model_find_parameter(r->model, name, &t), TLM_OK);
    memset(tlm_tensor_data_f32(t), 0, (size_t)tlm_tensor_numel(t) * sizeof(float));
}

static void overflowing_gradient_skips_the_step(void **state) {
    (void)state;
    run r;
    start(&r, 0, 1e-3f, 0);
    good_step(&r);
    float *backup = malloc((size_t)r.total * sizeof(float));
    assert_non_null(backup);
    weights(&r, backup, 0);
    zero(&r, "token_embedding.weight");
    zero(&r, "position_embedding.weight");
    for (int layer = 0; layer < 2; layer++) {
        char name[64];
        snprintf(name, sizeof name, "decoder.layers.%d.self_attn.o_proj.weight", layer);
        zero(&r, name);
        snprintf(name, sizeof name, "decoder.layers.%d.ffn.down_proj.weight", layer);
        zero(&r, name);
    }
    parameter(&r, "decoder.final_norm.weight")[0] = 3e38f;
    expect_skipped_step(&r, "gradient");
    weights(&r, backup, 2);
    free(backup);
    good_step(&r);
    stop(&r);
}

static void exploding_weights_are_skipped(void **state) {
    (void)state;
    run r;
    start(&r, 1, 1e30f, 1);
    int skipped = 0, good = 0;
    for (int step = 0; step < 12; step++) {
        weights(&r, r.snapshot, 0);
        int64_t steps = tlm_trainer_step_count(r.trainer);
        tlm_step_info info;
        tlm_step_info_init(&info);
        int status = tlm_trainer_step(r.trainer, &info);
        if (status == TLM_OK) {
            good++;
            assert_int_equal(info.skipped, 0);
            continue;
        }
        assert_int_equal(status, TLM_E_NONFINITE);
        skipped++;
        assert_int_equal(info.skipped, 1);
        assert_int_equal(r.log.skipped, 1);
        assert_int_equal(info.step, steps);
        assert_int_equal(tlm_trainer_step_count(r.trainer), steps);
        assert_true(weights(&r, r.snapshot, 1));
    }
    printf("learning rate 1e30: %d steps taken, %d skipped\n", good, skipped);
    assert_true(good >= 1);
    assert_true(skipped >= 1);
    stop(&r);
}

/* A finite gradient norm above max_grad_norm is an exploding gradient:
 * the step is skipped with TLM_E_RANGE, reported, weights untouched. The
 * threshold sits between the norms of two weight scales: the model as
 * initialised trains, the same model with its output projection scaled up
 * 1000x does not. */
static void exploding_gradient_norm_skips_the_step(void **state) {
    (void)state;
    run r;
    start_guarded(&r, 0, 1e-3f, 0, 50.0f);
    good_step(&r);
    const double calm = r.log.last_norm;
    assert_true(calm < 50.0);
    tlm_tensor *head = NULL;
    assert_int_equal(tlm_model_find_parameter(r.model, "lm_head.weight", &head),
                     TLM_OK);
    float *w = tlm_tensor_data_f32(head);
    for (int64_t i = 0; i < tlm_tensor_numel(head); i++)
        w[i] *= 1000.0f;
    weights(&r, r.snapshot, 0);
    int64_t steps = tlm_trainer_step_count(r.trainer);
    tlm_step_info info;
    tlm_step_info_init(&info);
    assert_int_equal(tlm_trainer_step(r.trainer, &info), TLM_E_RANGE);
    printf("gradient norm %g at step 1, %g after scaling the head\n", calm,
           info.grad_norm);
    assert_int_equal(info.skipped, 1);
    assert_int_equal(info.step, steps);
    assert_int_equal(r.log.skipped, 1);
    assert_true(isfinite(info.grad_norm) && info.grad_norm > 50.0);
    assert_int_equal(tlm_trainer_step_count(r.trainer), steps);
    assert_non_null(strstr(tlm_trainer_last_error(r.trainer), "above max_grad_norm"));
    assert_true(weights(&r, r.snapshot, 1));
    for (int64_t i = 0; i < tlm_tensor_numel(head); i++)
        w[i] /= 1000.0f;
    stop(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(poisoned_weight_skips_the_step),
        cmocka_unit_test(a_nan_in_any_parameter_skips_the_step),
        cmocka_unit_test(overflowing_gradient_skips_the_step),
        cmocka_unit_test(exploding_weights_are_skipped),
        cmocka_unit_test(exploding_gradient_norm_skips_the_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
