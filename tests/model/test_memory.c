/*
 * tlm_model_memory_estimate against what is really allocated: a session's
 * buffers (counted through the allocator hook: the estimate is exact, both
 * come from the one function that lays a session out) and the arena a
 * training forward and backward fill (the activations).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "autodiff/grad_pool.h"
#include "autodiff/tensor.h"
#include "counting_allocator.h"
#include "model/model.h"
#include "tlm.h"

static tlm_model_config variant_config(int variant) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 97;
    c.d_model = 48;
    c.n_heads = 4;
    c.d_ff = 136;
    c.max_context = 32;
    c.n_encoder_layers = variant == 1 ? 2 : (variant == 2 ? 1 : 0);
    c.n_decoder_layers = variant == 1 ? 0 : 2;
    c.position = variant % 3;
    c.activation = variant == 3 ? TLM_ACTIVATION_SWIGLU : TLM_ACTIVATION_GELU;
    c.residual_dropout = variant == 3 ? 0.1f : 0.0f;
    /* 4: grouped-query, rotary (split heads); 5: multi-query seq2seq. */
    if (variant >= 4) {
        c.n_kv_heads = variant == 4 ? 2 : 1;
        c.position = variant == 4 ? TLM_POSITION_ROTARY : TLM_POSITION_LEARNED;
        c.n_encoder_layers = variant == 5 ? 1 : 0;
    }
    return c;
}

enum { N_VARIANTS = 6 };

/* The bytes of the model's parameters: 4 a value, or a quantized
 * matrix's own (checked against the one block they live in, whose
 * tensors start on 64-byte boundaries). */
static int64_t parameter_bytes(const tlm_model *m) {
    int64_t bytes = 0;
    for (int32_t i = 0; i < m->n_parameters; i++)
        bytes += (int64_t)tlmi_tensor_data_bytes(m->parameters[i].tensor);
    assert_true((int64_t)m->parameter_block_bytes >= bytes);
    assert_true((int64_t)m->parameter_block_bytes < bytes + 64 * (int64_t)m->n_parameters);
    return bytes;
}

/* Float32, bf16 and int8 models (the weights' real bytes; a quantized
 * session sizes its workspace for the weights kernels' products). One
 * float32 model per variant and thread count, quantized from it to each
 * format in turn: drawing the parameters takes most of this test's time
 * under valgrind. */
static void inference_estimate_matches_allocations(void **state) {
    (void)state;
    for (int variant = 0; variant < 2 * N_VARIANTS; variant++) {
        counting_allocator counter = {0};
        tlm_context_params params;
        counting_context_params(&params, &counter);
        params.n_threads = 1 + variant / N_VARIANTS * 2; /* 1, then 3 */
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
        tlm_model_config c = variant_config(variant % N_VARIANTS);
        tlm_model *f32 = NULL;
        assert_int_equal(tlm_model_create(&f32, ctx, &c), TLM_OK);
        for (int32_t format = 0; format < 3; format++) {
            tlm_model *m = f32;
            if (format != TLM_WEIGHTS_F32)
                assert_int_equal(tlm_model_quantize(&m, f32, format), TLM_OK);
            uint64_t before_session = counter.live_bytes;
            tlm_session *s = NULL;
            assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
            /* The parameters' values plus what the session allocated. */
            const int64_t actual =
                (int64_t)(counter.live_bytes - before_session) + parameter_bytes(m);
            int64_t estimate = 0;
            assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_INFERENCE, 1,
                                                       c.max_context, &estimate), TLM_OK);
            printf("inference variant %d (weights %d): estimate %lld, allocated %lld\n",
                   variant, (int)format, (long long)estimate, (long long)actual);
            assert_int_equal(estimate, actual);
            tlm_session_free(s);
            if (m != f32)
                tlm_model_free(m);
        }
        tlm_model_free(f32);
        tlm_context_free(ctx);
    }
}

/* A shorter context is a session whose chunks are that long (at most the
 * default 64): the estimate equals its allocations too. */
static void inference_estimate_follows_the_chunk(void **state) {
    (void)state;
    for (int variant = 0; variant < N_VARIANTS; variant++) {
        counting_allocator counter = {0};
        tlm_context_params params;
        counting_context_params(&params, &counter);
        params.n_threads = 2;
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
        tlm_model_config c = variant_config(variant);
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        tlm_session_params session_params;
        tlm_session_params_init(&session_params);
        session_params.chunk_tokens = 5;
        const uint64_t before_session = counter.live_bytes;
        tlm_session *s = NULL;
        assert_int_equal(tlm_session_create(&s, m, &session_params), TLM_OK);
        const int64_t actual = (int64_t)(counter.live_bytes - before_session) +
                               tlm_model_parameter_count(m) * 4;
        int64_t estimate = 0;
        assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_INFERENCE, 1, 5,
                                                   &estimate), TLM_OK);
        assert_int_equal(estimate, actual);
        tlm_session_free(s);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static void training_estimate_matches_arena(void **state) {
    (void)state;
    for (int variant = 0; variant < N_VARIANTS; variant++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_config c = variant_config(variant);
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        const int64_t shape[2] = {3, 32};
        tlm_batch batch;
        tlm_batch_init(&batch);
        assert_int_equal(tlm_tensor_create(&batch.ids, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        assert_int_equal(tlm_tensor_create(&batch.targets, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        if (c.n_encoder_layers > 0 && c.n_decoder_layers > 0)
            assert_int_equal(tlm_tensor_create(&batch.src_ids, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        tlm_tensor *logits = NULL, *loss = NULL;
        assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        /* The arena (results' data, saved buffers, unpooled gradients)
         * and the pool of the layers' gradients. */
        double arena = (double)tlmi_arena_used_bytes(&ctx->arena) +
                       (double)ctx->grad_pool.bytes;
        int64_t estimate = 0;
        assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_TRAINING, 3, 32,
                                                   &estimate), TLM_OK);
        double activations = (double)estimate - 16.0 * (double)tlm_model_parameter_count(m);
        printf("training variant %d: activations estimate %.0f, arena %.0f "
               "(pool %zu)\n", variant, activations, arena, ctx->grad_pool.bytes);
        assert_true(fabs(activations - arena) <= 0.10 * arena);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

/* Training memory that grows with depth only by what each layer keeps
 * for backward: the layers' gradients come from a pool that holds about
 * one layer's at a time (the same for 2 and 6 layers), and the pre-norm
 * outputs and activations, recomputed in backward, share one buffer each;
 * so a layer adds its projections' outputs (q, k, v, the attention's
 * output, the output projection's, which the residual add overwrites, the
 * up projection's and the down projection's, overwritten the same way:
 * 6 x D + d_ff floats a row) and small saved statistics, nothing more. */
static void training_memory_per_layer(void **state) {
    (void)state;
    double arena[2] = {0, 0}, pool[2] = {0, 0};
    const int32_t layers[2] = {2, 6};
    const double rows = 3 * 32;
    tlm_model_config c = variant_config(0);
    for (int i = 0; i < 2; i++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        c.n_decoder_layers = layers[i];
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        const int64_t shape[2] = {3, 32};
        tlm_batch batch;
        tlm_batch_init(&batch);
        assert_int_equal(tlm_tensor_create(&batch.ids, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        assert_int_equal(tlm_tensor_create(&batch.targets, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        tlm_tensor *logits = NULL, *loss = NULL;
        uint64_t in_use[2] = {0, 0};
        for (int pass = 0; pass < 2; pass++) { /* the second reuses it all */
            assert_int_equal(tlm_context_reset(ctx), TLM_OK);
            assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_OK);
            assert_int_equal(tlm_backward(loss), TLM_OK);
            assert_int_equal(tlm_context_memory_in_use(ctx, &in_use[pass]), TLM_OK);
        }
        assert_true(in_use[1] == in_use[0]);
        arena[i] = (double)tlmi_arena_used_bytes(&ctx->arena);
        pool[i] = (double)ctx->grad_pool.bytes;
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
    printf("2 layers: arena %.0f, pool %.0f; 6 layers: arena %.0f, pool %.0f\n",
           arena[0], pool[0], arena[1], pool[1]);
    assert_true(pool[1] == pool[0]);
    const double per_layer = (arena[1] - arena[0]) / 4;
    const double kept = rows * (6.0 * c.d_model + c.d_ff) * 4;
    /* The norms' mean and rstd, the attention's log-sum-exp and the
     * operations' own small records come on top (under 10%). */
    assert_true(per_layer >= kept);
    assert_true(per_layer <= 1.10 * kept);
}

/* The pool's bytes after one training step of batches [3, t] per t in
 * lengths, each followed by tlm_context_reset (the batch tensors freed
 * too), and after `eval_resets` forward passes without gradients, each
 * followed by a reset. */
static double pool_after_steps(const int32_t *lengths, int n, int eval_resets) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = variant_config(0);
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    for (int i = 0; i < n + eval_resets; i++) {
        const int64_t shape[2] = {3, i < n ? lengths[i] : lengths[n - 1]};
        tlm_batch batch;
        tlm_batch_init(&batch);
        assert_int_equal(tlm_tensor_create(&batch.ids, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        assert_int_equal(tlm_tensor_create(&batch.targets, ctx, TLM_DTYPE_I32, 2, shape), TLM_OK);
        assert_int_equal(tlm_context_set_grad_enabled(ctx, i < n), TLM_OK);
        tlm_tensor *logits = NULL, *loss = NULL;
        assert_int_equal(tlm_model_forward(m, &batch, &logits, &loss), TLM_OK);
        if (i < n)
            assert_int_equal(tlm_backward(loss), TLM_OK);
        assert_int_equal(tlm_context_reset(ctx), TLM_OK);
        tlm_tensor_free(batch.ids);
        tlm_tensor_free(batch.targets);
    }
    const double pool = (double)ctx->grad_pool.bytes;
    tlm_model_free(m);
    tlm_context_free(ctx);
    return pool;
}

/* The pool matches buffers by exact size: a loop whose sequence length
 * changes from batch to batch must not keep one set of buffers per length
 * it ever saw (lengths 1 to 32 kept 16.5 times one step's pool before
 * tlmi_grad_pool_trim), while a loop of one length keeps its buffers (no
 * allocation after the first step) and so does one that only evaluates
 * between training steps. */
static void gradient_pool_follows_changing_lengths(void **state) {
    (void)state;
    int32_t lengths[32];
    for (int i = 0; i < 32; i++)
        lengths[i] = i + 1;
    const int32_t fixed[8] = {32, 32, 32, 32, 32, 32, 32, 32};
    const double one = pool_after_steps(fixed, 1, 0);
    const double many = pool_after_steps(fixed, 8, 0);
    const double growing = pool_after_steps(lengths, 32, 0);
    const double evaluated = pool_after_steps(fixed, 1, 8);
    printf("pool: one step %.0f, 8 steps %.0f, lengths 1..32 %.0f, one step "
           "then 8 evaluations %.0f\n", one, many, growing, evaluated);
    assert_true(one > 0);
    assert_true(many == one);
    assert_true(evaluated == one);
    /* At most the last TLMI_GRAD_POOL_IDLE_TRIMS + 1 lengths' buffers. */
    assert_true(growing <= (TLMI_GRAD_POOL_IDLE_TRIMS + 1) * one);
}

/* The KV cache holds n_kv_heads heads: with 4 query heads of 12, each
 * halving of n_kv_heads saves at least the cache's share (keys and values
 * of 2 layers x 32 positions x the heads dropped x 12 floats), beyond the
 * smaller k and v projections. */
static void inference_estimate_shrinks_with_kv_heads(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    int64_t previous = 0;
    for (int32_t kv = 4; kv >= 1; kv /= 2) {
        tlm_model_config c = variant_config(0);
        c.n_kv_heads = kv;
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
        int64_t bytes = 0;
        assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_INFERENCE, 1,
                                                   32, &bytes), TLM_OK);
        const int64_t session = bytes - 4 * tlm_model_parameter_count(m);
        printf("n_kv_heads %d: session %lld bytes\n", (int)kv, (long long)session);
        if (kv < 4)
            assert_true(previous - session >= 2LL * 2 * 32 * kv * 12 * 4);
        previous = session;
        tlm_model_free(m);
    }
    tlm_context_free(ctx);
}

static void estimate_rejects_bad_arguments(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c = variant_config(0);
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    int64_t bytes = 0;
    assert_int_equal(tlm_model_memory_estimate(m, 7, 1, 8, &bytes), TLM_E_INVALID);
    assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_INFERENCE, 2, 8, &bytes), TLM_E_RANGE);
    assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_TRAINING, 2, 33, &bytes), TLM_E_RANGE);
    assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_TRAINING, 0, 8, &bytes), TLM_E_RANGE);
    assert_int_equal(tlm_model_memory_estimate(m, TLM_MEMORY_TRAINING, 2, 8, NULL), TLM_E_INVALID);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(inference_estimate_matches_allocations),
        cmocka_unit_test(inference_estimate_follows_the_chunk),
        cmocka_unit_test(training_estimate_matches_arena),
        cmocka_unit_test(training_memory_per_layer),
        cmocka_unit_test(gradient_pool_follows_changing_lengths),
        cmocka_unit_test(inference_estimate_shrinks_with_kv_heads),
        cmocka_unit_test(estimate_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
