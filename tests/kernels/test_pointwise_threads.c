/*
 * The pointwise ops give the same bits with 1, 2 and 3 compute threads:
 * a graph of every op whose kernels the pool splits (layer norm, GELU,
 * SiLU, SwiGLU, ReLU, mul and add with a repeated operand, scale, RMS
 * norm, softmax, cross-entropy), its forward, backward and three AdamW
 * steps, on tensors large enough to be split (more than 2 x
 * TLMI_POINTWISE_GRAIN elements), with the active kernels.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

#define ROWS 192
#define COLS 520 /* not a multiple of any vector width's square */

static uint64_t rng_state;

static float uniform(void) { /* in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

static tlm_tensor *leaf(tlm_context *ctx, int32_t ndim, const int64_t *shape,
                        float offset) {
    int64_t n = 1;
    for (int32_t i = 0; i < ndim; i++)
        n *= shape[i];
    float *data = malloc((size_t)n * sizeof *data);
    assert_non_null(data);
    for (int64_t i = 0; i < n; i++)
        data[i] = offset + uniform();
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_from_f32(&t, ctx, ndim, shape, data), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(t, 1), TLM_OK);
    free(data);
    return t;
}

#define N_PARAMS 6
#define N_OUT (2 * (size_t)ROWS * COLS + 4 * COLS + 1)

/* Runs the graph with n_threads; out receives the loss, x's gradient,
 * the softmax, and the parameters after three AdamW steps. */
static void run(int n_threads, float *out) {
    rng_state = 0x853c49e6748fea9bull;
    tlm_context_params params;
    tlm_context_params_init(&params);
    params.n_threads = n_threads;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    const int64_t shape[2] = {ROWS, COLS}, vec[1] = {COLS}, rows[1] = {ROWS};
    tlm_tensor *x = leaf(ctx, 2, shape, 0.5f);
    tlm_tensor *p[N_PARAMS] = {leaf(ctx, 1, vec, 1.0f), leaf(ctx, 1, vec, 0.0f),
                               leaf(ctx, 1, vec, 0.0f), leaf(ctx, 1, vec, 1.0f),
                               leaf(ctx, 2, shape, 0.0f), x};
    int32_t targets[ROWS];
    for (int i = 0; i < ROWS; i++)
        targets[i] = i % 7 == 0 ? -1 : (i * 37) % COLS;
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_from_i32(&t, ctx, 1, rows, targets), TLM_OK);

    tlm_tensor *h, *g, *s, *r, *sw, *m, *a, *n2, *sm, *sc, *loss;
    assert_int_equal(tlm_layer_norm(&h, x, p[0], p[1], 1e-5f), TLM_OK);
    assert_int_equal(tlm_gelu(&g, h, TLM_GELU_TANH), TLM_OK);
    assert_int_equal(tlm_silu(&s, h), TLM_OK);
    assert_int_equal(tlm_relu(&r, g), TLM_OK);
    assert_int_equal(tlm_swiglu(&sw, s, p[4]), TLM_OK);
    assert_int_equal(tlm_mul(&m, sw, p[2]), TLM_OK);
    assert_int_equal(tlm_add(&a, m, r), TLM_OK);
    assert_int_equal(tlm_add(&a, a, x), TLM_OK);
    assert_int_equal(tlm_rms_norm(&n2, a, p[3], 1e-5f), TLM_OK);
    assert_int_equal(tlm_softmax(&sm, n2), TLM_OK);
    assert_int_equal(tlm_scale(&sc, n2, 3.0f), TLM_OK);
    assert_int_equal(tlm_cross_entropy(&loss, sc, t, -1), TLM_OK);
    tlm_tensor *total = NULL;
    tlm_tensor *ssum = NULL;
    assert_int_equal(tlm_sum(&ssum, sm), TLM_OK);
    assert_int_equal(tlm_add(&total, loss, ssum), TLM_OK);
    assert_int_equal(tlm_backward(total), TLM_OK);

    size_t at = 0;
    out[at++] = tlm_tensor_data_f32(loss)[0];
    memcpy(out + at, tlm_tensor_grad_data_f32(x), (size_t)ROWS * COLS * sizeof *out);
    at += (size_t)ROWS * COLS;
    memcpy(out + at, tlm_tensor_data_f32(sm), (size_t)ROWS * COLS * sizeof *out);
    at += (size_t)ROWS * COLS;

    tlm_optimizer_params op;
    tlm_optimizer_params_init(&op);
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, p, N_PARAMS, &op), TLM_OK);
    for (int step = 0; step < 3; step++)
        assert_int_equal(tlm_optimizer_step(opt, TLM_OPTIMIZER_LR_DEFAULT),
                         TLM_OK);
    for (int i = 0; i < 4; i++) {
        memcpy(out + at, tlm_tensor_data_f32(p[i]), COLS * sizeof *out);
        at += COLS;
    }
    assert_true(at == N_OUT);
    tlm_optimizer_free(opt);
    tlm_context_free(ctx);
}

static void test_same_bits(void **state) {
    (void)state;
    float *one = malloc(N_OUT * sizeof *one), *other = malloc(N_OUT * sizeof *other);
    assert_non_null(one);
    assert_non_null(other);
    run(1, one);
    for (int threads = 2; threads <= 3; threads++) {
        run(threads, other);
        assert_memory_equal(one, other, N_OUT * sizeof *one);
    }
    free(one);
    free(other);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_same_bits)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
