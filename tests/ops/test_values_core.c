/*
 * Forward values of the elementwise operations, matmul (every form) and
 * the reductions against straightforward double-precision loops.
 * Tolerance: 1e-5 relative to the magnitude of the terms summed.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tlm.h"

static uint64_t rng_state = 42;
static float random_value(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / 16777216.0 * 2.0 - 1.0);
}

static tlm_tensor *random_tensor(tlm_context *ctx, int32_t ndim,
                                 const int64_t *shape) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, ndim, shape), TLM_OK);
    float *x = tlm_tensor_data_f32(t);
    for (int64_t i = 0; i < tlm_tensor_numel(t); i++)
        x[i] = random_value();
    return t;
}

static void assert_close(double expected, float got, double scale) {
    if (!(fabs(expected - (double)got) <= 1e-5 * scale))
        fail_msg("expected %.9g, got %.9g", expected, (double)got);
}

static void elementwise_with_broadcast(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t a_shape[3] = {3, 5, 7}, b_shape[2] = {5, 7};
    tlm_tensor *a = random_tensor(ctx, 3, a_shape);
    tlm_tensor *b = random_tensor(ctx, 2, b_shape);
    tlm_tensor *sum = NULL, *diff = NULL, *prod = NULL, *scaled = NULL, *shifted = NULL;
    assert_int_equal(tlm_add(&sum, a, b), TLM_OK);
    assert_int_equal(tlm_sub(&diff, a, b), TLM_OK);
    assert_int_equal(tlm_mul(&prod, a, b), TLM_OK);
    assert_int_equal(tlm_scale(&scaled, a, -2.5f), TLM_OK);
    assert_int_equal(tlm_add_scalar(&shifted, a, 0.75f), TLM_OK);
    const float *x = tlm_tensor_data_f32(a), *y = tlm_tensor_data_f32(b);
    for (int64_t i = 0; i < 105; i++) {
        double ai = (double)x[i], bi = (double)y[i % 35];
        assert_close(ai + bi, tlm_tensor_data_f32(sum)[i], 1);
        assert_close(ai - bi, tlm_tensor_data_f32(diff)[i], 1);
        assert_close(ai * bi, tlm_tensor_data_f32(prod)[i], 1);
        assert_close(ai * -2.5, tlm_tensor_data_f32(scaled)[i], 1);
        assert_close(ai + 0.75, tlm_tensor_data_f32(shifted)[i], 1);
    }
    tlm_context_free(ctx);
}

static void reductions(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t shape[2] = {33, 31};
    tlm_tensor *a = random_tensor(ctx, 2, shape);
    tlm_tensor *sum = NULL, *mean = NULL;
    assert_int_equal(tlm_sum(&sum, a), TLM_OK);
    assert_int_equal(tlm_mean(&mean, a), TLM_OK);
    assert_int_equal(tlm_tensor_ndim(sum), 1);
    assert_int_equal(tlm_tensor_numel(sum), 1);
    double expected = 0;
    for (int64_t i = 0; i < 33 * 31; i++)
        expected += (double)tlm_tensor_data_f32(a)[i];
    assert_close(expected, tlm_tensor_data_f32(sum)[0], 33.0);
    assert_close(expected / (33 * 31), tlm_tensor_data_f32(mean)[0], 1.0);
    tlm_context_free(ctx);
}

/* C = A . op(B) + bias by the definition, per batch entry. */
static void check_matmul(int32_t ndim, const int64_t *a_shape,
                         const int64_t *b_shape, int b_ndim, int transpose_b,
                         int with_bias) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = random_tensor(ctx, ndim, a_shape);
    tlm_tensor *b = random_tensor(ctx, b_ndim, b_shape);
    int64_t m = a_shape[ndim - 2], k = a_shape[ndim - 1];
    int64_t n = transpose_b ? b_shape[b_ndim - 2] : b_shape[b_ndim - 1];
    const int64_t bias_shape[1] = {n};
    tlm_tensor *bias = with_bias ? random_tensor(ctx, 1, bias_shape) : NULL;
    tlm_tensor *c = NULL;
    assert_int_equal(tlm_matmul(&c, a, b, bias, transpose_b ? TLM_MATMUL_TRANSPOSE_B : 0), TLM_OK);
    int64_t batch = tlm_tensor_numel(a) / (m * k);
    const float *av = tlm_tensor_data_f32(a), *bv = tlm_tensor_data_f32(b);
    const float *cv = tlm_tensor_data_f32(c);
    for (int64_t t = 0; t < batch; t++) {
        const float *bt = b_ndim == 2 ? bv : bv + t * n * k;
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double s = bias ? (double)tlm_tensor_data_f32(bias)[j] : 0.0;
                for (int64_t p = 0; p < k; p++)
                    s += (double)av[(t * m + i) * k + p] *
                         (double)(transpose_b ? bt[j * k + p] : bt[p * n + j]);
                assert_close(s, cv[(t * m + i) * n + j], (double)k);
            }
    }
    tlm_context_free(ctx);
}

static void matmul_forms(void **state) {
    (void)state;
    const int64_t a1[2] = {1, 1}, b1[2] = {1, 1};
    check_matmul(2, a1, b1, 2, 0, 0);
    const int64_t a2[2] = {7, 33}, b2[2] = {33, 15}, b2t[2] = {15, 33};
    check_matmul(2, a2, b2, 2, 0, 1);
    check_matmul(2, a2, b2t, 2, 1, 1);
    const int64_t a3[3] = {3, 5, 9}, b3[2] = {9, 100};
    check_matmul(3, a3, b3, 2, 0, 1);
    const int64_t a4[4] = {2, 3, 7, 8}, b4[4] = {2, 3, 8, 5}, b4t[4] = {2, 3, 5, 8};
    check_matmul(4, a4, b4, 4, 0, 0);
    check_matmul(4, a4, b4t, 4, 1, 0);
}

static void rerun_uses_new_inputs(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t shape[1] = {3};
    const float first[3] = {1, 2, 3}, second[3] = {-1, 0, 10};
    tlm_tensor *x = NULL, *y = NULL, *s = NULL;
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 1, shape, first), TLM_OK);
    assert_int_equal(tlm_mul(&y, x, x), TLM_OK);
    assert_int_equal(tlm_sum(&s, y), TLM_OK);
    assert_close(14.0, tlm_tensor_data_f32(s)[0], 1);
    assert_int_equal(tlm_tensor_set_f32(x, second, 3), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_close(101.0, tlm_tensor_data_f32(s)[0], 1);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(elementwise_with_broadcast),
        cmocka_unit_test(reductions),
        cmocka_unit_test(matmul_forms),
        cmocka_unit_test(rerun_uses_new_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
