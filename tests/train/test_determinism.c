/*
 * Suites "train" and "threads": results do not depend on the thread count.
 *
 * - A full forward and backward of a small transformer (public API:
 *   model, loss, tlm_backward) gives bit-identical logits, loss and
 *   gradients of every parameter with 1, 2 and 3 threads, for a GPT-style
 *   model (layer norm, learned positions, GELU, biases, tied output) and a
 *   Llama-style one (RMS norm, rotary, SwiGLU, no biases, untied).
 * - A session decodes (prefill, then token by token) bit-identical logits
 *   with 1, 2 and 3 threads, for both models.
 * - A few trainer steps (AdamW, dropout on) give bit-identical weights and
 *   losses with 1 and 2 threads.
 * Under valgrind the first two compare 1 and 2 threads only (most_threads),
 * the sessions' model is narrower (decode_model) and the trainer takes 2
 * steps (train_steps).
 *
 * The sizes are chosen so that the matrix products really split (each
 * range gets at least TLMI_GEMM_MIN_FLOPS_PER_THREAD) and the vocabulary
 * (203) is not a multiple of any kernel's column alignment.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"
#include "tolerance.h"

#define VOCAB 203
#define BATCH 4
#define SEQ 32

static void config_for(tlm_model_config *c, int llama) {
    tlm_model_config_init(c);
    c->vocab_size = VOCAB;
    c->d_model = 96;
    c->n_heads = 3;
    c->d_ff = llama ? 160 : 256;
    c->n_decoder_layers = 2;
    c->max_context = 64;
    c->init_seed = 11;
    if (llama) {
        c->norm = TLM_NORM_RMS;
        c->position = TLM_POSITION_ROTARY;
        c->activation = TLM_ACTIVATION_SWIGLU;
        c->bias = 0;
        c->tied_output = 0;
    } else {
        c->bias = 1;
        c->tied_output = 1;
    }
}

/* The most threads compared with one. Under valgrind (TLM_TEST_VALGRIND),
 * which runs threads one at a time and looks for memory errors rather than
 * for a thread count that changes results, 2 already shows every split
 * path; the other builds (TSan included) compare 3 as well. */
static int most_threads(void) {
    return getenv("TLM_TEST_VALGRIND") != NULL ? 2 : 3;
}

static tlm_context *context_with(int threads) {
    tlm_context_params params;
    tlm_context_params_init(&params);
    params.n_threads = threads;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    assert_int_equal(tlm_context_thread_count(ctx), threads);
    return ctx;
}

/* Everything one forward + backward produces, flattened. */
typedef struct outputs {
    float *values;
    size_t count;
} outputs;

static void append(outputs *o, const float *x, size_t n) {
    float *grown = realloc(o->values, (o->count + n) * sizeof *grown);
    assert_non_null(grown);
    memcpy(grown + o->count, x, n * sizeof *x);
    o->values = grown;
    o->count += n;
}

static outputs forward_backward(int llama, int threads) {
    tlm_context *ctx = context_with(threads);
    tlm_model_config c;
    config_for(&c, llama);
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);

    int32_t ids[BATCH * SEQ], targets[BATCH * SEQ];
    for (int i = 0; i < BATCH * SEQ; i++) {
        ids[i] = (i * 37 + 5) % VOCAB;
        targets[i] = (i * 53 + 17) % VOCAB;
    }
    const int64_t shape[2] = {BATCH, SEQ};
    tlm_tensor *id_tensor = NULL, *target_tensor = NULL;
    assert_int_equal(tlm_tensor_from_i32(&id_tensor, ctx, 2, shape, ids), TLM_OK);
    assert_int_equal(tlm_tensor_from_i32(&target_tensor, ctx, 2, shape, targets),
                     TLM_OK);
    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = id_tensor;
    batch.targets = target_tensor;
    tlm_tensor *logits = NULL, *loss = NULL;
    assert_int_equal(tlm_model_forward(model, &batch, &logits, &loss), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);

    outputs o = {NULL, 0};
    append(&o, tlm_tensor_data_f32(logits), (size_t)tlm_tensor_numel(logits));
    append(&o, tlm_tensor_data_f32(loss), 1);
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(model); i++) {
        const char *name = NULL;
        tlm_tensor *p = NULL;
        assert_int_equal(tlm_model_parameter(model, i, &name, &p), TLM_OK);
        const float *grad = tlm_tensor_grad_data_f32(p);
        assert_non_null(grad);
        append(&o, grad, (size_t)tlm_tensor_numel(p));
    }
    tlm_model_free(model);
    tlm_context_free(ctx);
    return o;
}

static void forward_backward_any_thread_count(void **state) {
    (void)state;
    for (int llama = 0; llama <= 1; llama++) {
        outputs one = forward_backward(llama, 1);
        /* finite, so that equal bits are equal numbers */
        assert_int_equal(tlmt_first_non_finite_f32(one.values, (int64_t)one.count), -1);
        for (int threads = 2; threads <= most_threads(); threads++) {
            outputs many = forward_backward(llama, threads);
            assert_int_equal(many.count, one.count);
            for (size_t i = 0; i < one.count; i++)
                if (memcmp(&many.values[i], &one.values[i], sizeof(float))) {
                    print_error("%s model, %d threads: value %zu of %zu "
                                "(logits, loss, gradients) is %.9g, with 1 "
                                "thread %.9g\n",
                                llama ? "llama" : "gpt", threads, i, one.count,
                                (double)many.values[i], (double)one.values[i]);
                    fail();
                }
            free(many.values);
        }
        free(one.values);
    }
}

/* A model wide enough that one token's products split too. Under
 * valgrind, 256 wide (d_ff 512) instead of 640 (1024): drawing the 3 M
 * parameters of the wide one (Box-Muller: a log and a cos each) was most
 * of the test's work (60% of its time natively in tlmi_rng_normal, cos
 * and log), and memcheck slows that down most; the narrow one still splits
 * every product of a token and of the prefill, and shares the prefill's
 * heads (24 x 24 keys x head size 64) out over 2 threads. */
static tlm_model *decode_model(tlm_context *ctx, int llama) {
    const int narrow = getenv("TLM_TEST_VALGRIND") != NULL;
    tlm_model_config c;
    config_for(&c, llama);
    c.d_model = narrow ? 256 : 640;
    c.n_heads = 4;
    c.d_ff = narrow ? 512 : 1024;
    c.n_decoder_layers = 1;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    return model;
}

/* Logits of a prefill of 24 tokens, then 10 single tokens, from a session
 * of the model with session_threads threads. The prefill's attention (24 x
 * 24 keys x head size 160 per head) is large enough that the heads are
 * shared out over the session's threads. */
static float *decode_logits(tlm_model *model, int session_threads,
                            size_t *count) {
    tlm_session_params params;
    tlm_session_params_init(&params);
    params.n_threads = session_threads;
    tlm_session *session = NULL;
    assert_int_equal(tlm_session_create(&session, model, &params), TLM_OK);
    enum { PROMPT = 24, STEPS = 10 };
    float *logits = malloc((PROMPT + STEPS) * VOCAB * sizeof *logits);
    assert_non_null(logits);
    int32_t prompt[PROMPT];
    for (int i = 0; i < PROMPT; i++)
        prompt[i] = (i * 29 + 3) % VOCAB;
    assert_int_equal(tlm_session_decode(session, prompt, PROMPT, logits, PROMPT),
                     TLM_OK);
    for (int s = 0; s < STEPS; s++) {
        const int32_t id = (s * 71 + 9) % VOCAB;
        assert_int_equal(tlm_session_decode(session, &id, 1,
                                            logits + (PROMPT + s) * VOCAB, 1),
                         TLM_OK);
    }
    tlm_session_free(session);
    *count = (PROMPT + STEPS) * VOCAB;
    return logits;
}

/* One model per kind, shared by sessions of 1, 2 and 3 threads, as an
 * application's sessions share one (and the model's 3 M parameters, under 1 M
 * under valgrind, are drawn once, not three times). */
static void session_any_thread_count(void **state) {
    (void)state;
    for (int llama = 0; llama <= 1; llama++) {
        tlm_context *ctx = context_with(1);
        tlm_model *model = decode_model(ctx, llama);
        size_t count = 0, other = 0;
        float *one = decode_logits(model, 1, &count);
        assert_int_equal(tlmt_first_non_finite_f32(one, (int64_t)count), -1);
        for (int threads = 2; threads <= most_threads(); threads++) {
            float *many = decode_logits(model, threads, &other);
            assert_int_equal(other, count);
            assert_memory_equal(many, one, count * sizeof *one);
            free(many);
        }
        free(one);
        tlm_model_free(model);
        tlm_context_free(ctx);
    }
}

/* Weights (and losses) after a few AdamW steps with dropout: 4, or 2 under
 * valgrind, where the second step already runs every path of the later
 * ones (the optimizer's moments in use, a new dropout mask) and the steps
 * took about half of the test's time under memcheck. */
static outputs train_steps(int threads) {
    tlm_context *ctx = context_with(threads);
    tlm_model_config c;
    config_for(&c, 0);
    c.residual_dropout = 0.1f;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    enum { TOKENS = 2000 };
    int32_t *ids = malloc(TOKENS * sizeof *ids);
    assert_non_null(ids);
    for (int i = 0; i < TOKENS; i++)
        ids[i] = (i * i + 7 * i) % VOCAB;
    tlm_dataset *data = NULL;
    assert_int_equal(tlm_dataset_from_ids(&data, ctx, ids, TOKENS, NULL), TLM_OK);
    free(ids);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = BATCH;
    params.context = SEQ;
    params.seed = 5;
    tlm_trainer *trainer = NULL;
    if (tlm_trainer_create(&trainer, model, data, &params) != TLM_OK)
        fail_msg("trainer: %s", tlm_last_error());
    outputs o = {NULL, 0};
    const int steps = getenv("TLM_TEST_VALGRIND") != NULL ? 2 : 4;
    for (int step = 0; step < steps; step++) {
        tlm_step_info info;
        tlm_step_info_init(&info);
        assert_int_equal(tlm_trainer_step(trainer, &info), TLM_OK);
        append(&o, &info.loss, 1);
    }
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(model); i++) {
        const char *name = NULL;
        tlm_tensor *p = NULL;
        assert_int_equal(tlm_model_parameter(model, i, &name, &p), TLM_OK);
        append(&o, tlm_tensor_data_f32(p), (size_t)tlm_tensor_numel(p));
    }
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return o;
}

static void trainer_any_thread_count(void **state) {
    (void)state;
    outputs one = train_steps(1), two = train_steps(2);
    assert_int_equal(tlmt_first_non_finite_f32(one.values, (int64_t)one.count), -1);
    assert_int_equal(two.count, one.count);
    assert_memory_equal(two.values, one.values, one.count * sizeof(float));
    free(one.values);
    free(two.values);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(forward_backward_any_thread_count),
        cmocka_unit_test(session_any_thread_count),
        cmocka_unit_test(trainer_any_thread_count),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
