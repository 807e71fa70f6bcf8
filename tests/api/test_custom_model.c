/*
 * A model of the user's own, written only with the public tensor API:
 * a two-layer perceptron learns XOR (not linearly separable, so it needs
 * the hidden layer and its non-linearity) to near-zero loss, trained by
 * plain gradient descent written here on top of tlm_backward().
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tlm.h"
#include "tolerance.h"

static tlm_tensor *parameter(tlm_context *ctx, int32_t ndim, int64_t d0,
                             int64_t d1, uint64_t *seed) {
    const int64_t shape[2] = {d0, d1};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, ndim, shape), TLM_OK);
    float *w = tlm_tensor_data_f32(t);
    for (int64_t i = 0; i < tlm_tensor_numel(t); i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = ((float)(*seed >> 40) / 16777216.0f - 0.5f) * (ndim == 2 ? 1.5f : 0.2f);
    }
    assert_int_equal(tlm_tensor_set_requires_grad(t, 1), TLM_OK);
    return t;
}

static void mlp_learns_xor(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t x_shape[2] = {4, 2}, y_shape[2] = {4, 1};
    const float inputs[8] = {0, 0, 0, 1, 1, 0, 1, 1};
    const float targets[4] = {0, 1, 1, 0};
    tlm_tensor *x = NULL, *y = NULL;
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 2, x_shape, inputs), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&y, ctx, 2, y_shape, targets), TLM_OK);
    uint64_t seed = 7;
    tlm_tensor *w1 = parameter(ctx, 2, 2, 16, &seed), *b1 = parameter(ctx, 1, 16, 0, &seed);
    tlm_tensor *w2 = parameter(ctx, 2, 16, 1, &seed), *b2 = parameter(ctx, 1, 1, 0, &seed);
    tlm_tensor *params[4] = {w1, b1, w2, b2};

    /* loss = mean((gelu(x W1 + b1) W2 + b2 - y)^2), built once. */
    tlm_tensor *h = NULL, *a = NULL, *out = NULL, *err = NULL, *sq = NULL, *loss = NULL;
    assert_int_equal(tlm_matmul(&h, x, w1, b1, 0), TLM_OK);
    assert_int_equal(tlm_gelu(&a, h, TLM_GELU_TANH), TLM_OK);
    assert_int_equal(tlm_matmul(&out, a, w2, b2, 0), TLM_OK);
    assert_int_equal(tlm_sub(&err, out, y), TLM_OK);
    assert_int_equal(tlm_mul(&sq, err, err), TLM_OK);
    assert_int_equal(tlm_mean(&loss, sq), TLM_OK);

    float first = tlm_tensor_data_f32(loss)[0];
    for (int step = 0; step < 2000; step++) {
        if (step > 0)
            assert_int_equal(tlm_context_forward(ctx), TLM_OK);
        assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        for (int p = 0; p < 4; p++) {
            float *w = tlm_tensor_data_f32(params[p]);
            const float *g = tlm_tensor_grad_data_f32(params[p]);
            for (int64_t i = 0; i < tlm_tensor_numel(params[p]); i++)
                w[i] -= 0.1f * g[i];
        }
    }
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    float last = tlm_tensor_data_f32(loss)[0];
    printf("xor: loss %.4f -> %.6f; outputs", (double)first, (double)last);
    for (int i = 0; i < 4; i++) {
        float prediction = tlm_tensor_data_f32(out)[i];
        printf(" %.3f", (double)prediction);
        tlmt_assert_close(prediction, targets[i], 0.05);
    }
    printf("\n");
    assert_true(last < 1e-3f);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(mlp_learns_xor)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
