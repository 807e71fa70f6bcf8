/*
 * The autodiff engine's contract: accumulation, fan-out, partial graphs,
 * recording on and off, reset, re-running a recorded graph, and no memory
 * allocated by a training loop after its first step.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"
#include "tolerance.h"

static tlm_tensor *vector(tlm_context *ctx, int64_t n, const float *values) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_from_f32(&t, ctx, 1, &n, values), TLM_OK);
    return t;
}

static void gradients_accumulate_until_zeroed(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float xv[3] = {1, -2, 0.5f};
    tlm_tensor *x = vector(ctx, 3, xv), *y = NULL, *s = NULL;
    assert_int_equal(tlm_tensor_set_requires_grad(x, 1), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(x), 1);
    /* s = sum(x * x + x): ds/dx = 2x + 1, the sum of both uses of x. */
    tlm_tensor *sq = NULL;
    assert_int_equal(tlm_mul(&sq, x, x), TLM_OK);
    assert_int_equal(tlm_add(&y, sq, x), TLM_OK);
    assert_int_equal(tlm_sum(&s, y), TLM_OK);
    assert_int_equal(tlm_backward(s), TLM_OK);
    float g[3];
    assert_int_equal(tlm_tensor_get_grad_f32(x, g, 3), TLM_OK);
    for (int i = 0; i < 3; i++)
        tlmt_assert_close(g[i], 2 * xv[i] + 1, 1e-6);
    /* A second backward adds the same again. */
    assert_int_equal(tlm_backward(s), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(x, g, 3), TLM_OK);
    for (int i = 0; i < 3; i++)
        tlmt_assert_close(g[i], 2 * (2 * xv[i] + 1), 1e-6);
    assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(x, g, 3), TLM_OK);
    for (int i = 0; i < 3; i++)
        tlmt_assert_close(g[i], 0, 0);
    tlm_context_free(ctx);
}

static void backward_from_an_intermediate_result(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float xv[2] = {3, 4}, wv[2] = {10, 20};
    tlm_tensor *x = vector(ctx, 2, xv), *w = vector(ctx, 2, wv);
    tlm_tensor_set_requires_grad(x, 1);
    tlm_tensor_set_requires_grad(w, 1);
    tlm_tensor *a = NULL, *b = NULL, *sa = NULL, *sb = NULL;
    assert_int_equal(tlm_scale(&a, x, 2.0f), TLM_OK); /* a = 2x */
    assert_int_equal(tlm_mul(&b, a, w), TLM_OK);      /* b = 2xw */
    assert_int_equal(tlm_sum(&sa, a), TLM_OK);
    assert_int_equal(tlm_sum(&sb, b), TLM_OK);
    /* From sa only: w plays no part, x gets 2. */
    assert_int_equal(tlm_backward(sa), TLM_OK);
    float g[2];
    assert_int_equal(tlm_tensor_get_grad_f32(x, g, 2), TLM_OK);
    tlmt_assert_close(g[0], 2, 0);
    assert_int_equal(tlm_tensor_get_grad_f32(w, g, 2), TLM_OK);
    tlmt_assert_close(g[0], 0, 0);
    tlm_context_zero_grad(ctx);
    /* From sb: x gets 2w, w gets 2x. */
    assert_int_equal(tlm_backward(sb), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(x, g, 2), TLM_OK);
    tlmt_assert_close(g[1], 40, 0);
    assert_int_equal(tlm_tensor_get_grad_f32(w, g, 2), TLM_OK);
    tlmt_assert_close(g[1], 8, 0);
    tlm_context_free(ctx);
}

/* Results' gradients are not cleared before a backward pass; one that
 * receives no share (every target ignored: the loss does not depend on
 * the logits) must still count as zero, not as what the previous pass
 * left in its buffer. */
static void a_result_without_a_share_has_zero_gradient(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t xs[2] = {2, 3}, ws[2] = {3, 4}, n = 2;
    const float xv[6] = {1, -2, 0.5f, 3, 1, -1};
    const float wv[12] = {1, 2, 3, 4, -1, 0, 1, 2, 0.5f, 0.25f, -2, 1};
    tlm_tensor *x = NULL, *w = NULL, *targets = NULL;
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 2, xs, xv), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&w, ctx, 2, ws, wv), TLM_OK);
    tlm_tensor_set_requires_grad(w, 1);
    const int32_t valid[2] = {1, 3}, ignored[2] = {-1, -1};
    assert_int_equal(tlm_tensor_from_i32(&targets, ctx, 1, &n, valid), TLM_OK);
    tlm_tensor *logits = NULL, *ce = NULL, *reg = NULL, *loss = NULL;
    assert_int_equal(tlm_matmul(&logits, x, w, NULL, 0), TLM_OK);
    assert_int_equal(tlm_cross_entropy(&ce, logits, targets, -1), TLM_OK);
    assert_int_equal(tlm_sum(&reg, w), TLM_OK);
    assert_int_equal(tlm_add(&loss, ce, reg), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float g[12];
    assert_int_equal(tlm_tensor_get_grad_f32(w, g, 12), TLM_OK);
    int differs = 0;
    for (int i = 0; i < 12; i++)
        differs |= g[i] != 1.0f;
    assert_true(differs); /* the logits' gradient was written: not zero */
    /* Every target ignored: the cross-entropy is 0 and gives no share, so
     * w's gradient (not zeroed: tlm_context_zero_grad would also clear the
     * logits' buffer) grows by exactly the 1 of the sum. */
    assert_int_equal(tlm_tensor_set_i32(targets, ignored, 2), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float g2[12];
    assert_int_equal(tlm_tensor_get_grad_f32(w, g2, 12), TLM_OK);
    for (int i = 0; i < 12; i++)
        tlmt_assert_close(g2[i], g[i] + 1.0f, 0);
    tlm_context_free(ctx);
}

static void only_flagged_leaves_get_gradients(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float v[2] = {1, 2};
    tlm_tensor *x = vector(ctx, 2, v), *c = vector(ctx, 2, v);
    tlm_tensor_set_requires_grad(x, 1);
    tlm_tensor *y = NULL, *s = NULL;
    assert_int_equal(tlm_mul(&y, x, c), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(y), 1);
    assert_int_equal(tlm_sum(&s, y), TLM_OK);
    assert_int_equal(tlm_backward(s), TLM_OK);
    float g[2];
    assert_int_equal(tlm_tensor_get_grad_f32(c, g, 2), TLM_E_STATE);
    assert_null(tlm_tensor_grad_data_f32(c));
    /* Switched off, x keeps its buffer but gets nothing more. */
    assert_int_equal(tlm_tensor_set_requires_grad(x, 0), TLM_OK);
    tlm_tensor *y2 = NULL, *s2 = NULL;
    assert_int_equal(tlm_mul(&y2, x, c), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(y2), 0);
    assert_int_equal(tlm_sum(&s2, y2), TLM_OK);
    assert_int_equal(tlm_backward(s2), TLM_E_STATE);
    tlm_context_free(ctx);
}

static void recording_off_gives_plain_results(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float v[2] = {1, 2};
    tlm_tensor *x = vector(ctx, 2, v), *y = NULL;
    tlm_tensor_set_requires_grad(x, 1);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 0), TLM_OK);
    assert_int_equal(tlm_scale(&y, x, 3.0f), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(y), 0);
    assert_null(tlm_tensor_grad_data_f32(y));
    tlmt_assert_close(tlm_tensor_data_f32(y)[1], 6, 0);
    tlm_context_free(ctx);
}

static void reset_keeps_leaves_and_their_gradients(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float v[2] = {1, 2};
    tlm_tensor *x = vector(ctx, 2, v), *s = NULL;
    tlm_tensor_set_requires_grad(x, 1);
    assert_int_equal(tlm_sum(&s, x), TLM_OK);
    assert_int_equal(tlm_backward(s), TLM_OK);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    float g[2];
    assert_int_equal(tlm_tensor_get_grad_f32(x, g, 2), TLM_OK);
    tlmt_assert_close(g[0], 1, 0);
    tlmt_assert_close(tlm_tensor_data_f32(x)[1], 2, 0);
    /* The tape is empty: a re-run does nothing and succeeds. */
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    tlm_context_free(ctx);
}

static void failed_operation_leaves_graph_intact(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float v[3] = {1, 2, 3};
    tlm_tensor *x = vector(ctx, 3, v), *y = NULL, *bad = NULL, *s = NULL;
    tlm_tensor_set_requires_grad(x, 1);
    assert_int_equal(tlm_scale(&y, x, 2.0f), TLM_OK);
    tlm_tensor *w = vector(ctx, 2, v);
    assert_int_equal(tlm_add(&bad, y, w), TLM_E_SHAPE);
    assert_null(bad);
    assert_int_equal(tlm_sum(&s, y), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    tlmt_assert_close(tlm_tensor_data_f32(s)[0], 12, 0);
    assert_int_equal(tlm_backward(s), TLM_OK);
    tlm_context_free(ctx);
}

static void freed_inputs_stop_reruns(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float v[2] = {1, 2};
    tlm_tensor *x = vector(ctx, 2, v), *w = vector(ctx, 2, v), *y = NULL, *s = NULL;
    tlm_tensor_set_requires_grad(w, 1);
    assert_int_equal(tlm_mul(&y, x, w), TLM_OK);
    assert_int_equal(tlm_sum(&s, y), TLM_OK);
    tlm_tensor_free(x);
    assert_int_equal(tlm_context_forward(ctx), TLM_E_STATE);
    assert_non_null(strstr(tlm_last_error(), "tlm_mul"));
    assert_int_equal(tlm_backward(s), TLM_E_STATE);
    assert_non_null(strstr(tlm_context_last_error(ctx), "freed"));
    tlm_context_free(ctx);
}

/* A two-layer linear model with a mean squared error:
 * loss = mean(((x W1 + b1) W2^T + b2 - target)^2). */
typedef struct tiny_model {
    tlm_tensor *x, *target, *w1, *b1, *w2, *b2;
} tiny_model;

static tlm_tensor *build_loss(tiny_model *m) {
    tlm_tensor *h = NULL, *y = NULL, *err = NULL, *sq = NULL, *loss = NULL;
    assert_int_equal(tlm_matmul(&h, m->x, m->w1, m->b1, 0), TLM_OK);
    assert_int_equal(tlm_matmul(&y, h, m->w2, m->b2, TLM_MATMUL_TRANSPOSE_B), TLM_OK);
    assert_int_equal(tlm_sub(&err, y, m->target), TLM_OK);
    assert_int_equal(tlm_mul(&sq, err, err), TLM_OK);
    assert_int_equal(tlm_mean(&loss, sq), TLM_OK);
    return loss;
}

static tlm_tensor *leaf(tlm_context *ctx, int64_t d0, int64_t d1, int grad,
                        float fill) {
    const int64_t shape[2] = {d0, d1};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, d1 ? 2 : 1, shape), TLM_OK);
    float *v = tlm_tensor_data_f32(t);
    for (int64_t i = 0; i < tlm_tensor_numel(t); i++)
        v[i] = fill * (float)((i * 7919) % 13 - 6) / 6.0f;
    if (grad)
        assert_int_equal(tlm_tensor_set_requires_grad(t, 1), TLM_OK);
    return t;
}

static void sgd_update(tlm_tensor *const *params, int count, float lr) {
    for (int p = 0; p < count; p++) {
        float *w = tlm_tensor_data_f32(params[p]);
        const float *g = tlm_tensor_grad_data_f32(params[p]);
        for (int64_t i = 0; i < tlm_tensor_numel(params[p]); i++)
            w[i] -= lr * g[i];
    }
}

static void new_batch(tiny_model *m, int step) {
    float *x = tlm_tensor_data_f32(m->x), *t = tlm_tensor_data_f32(m->target);
    for (int64_t i = 0; i < tlm_tensor_numel(m->x); i++)
        x[i] = (float)(((i + step) * 37) % 17) / 17.0f - 0.5f;
    /* A linear function of each row: x [16, 7] -> target [16, 5]. */
    for (int64_t r = 0; r < 16; r++)
        for (int64_t c = 0; c < 5; c++)
            t[r * 5 + c] = 0.5f * x[r * 7 + c] - 0.25f * x[r * 7 + c + 2];
}

/* Re-running one recorded graph for 1000 steps allocates nothing after the
 * first step; neither does rebuilding the same graph after each reset. */
static void training_loop_allocates_nothing_after_first_step(void **state) {
    (void)state;
    for (int rebuild = 0; rebuild <= 1; rebuild++) {
        counting_allocator counter = {0};
        tlm_context *ctx = NULL;
        assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
        tiny_model m = {
            leaf(ctx, 16, 7, 0, 1), leaf(ctx, 16, 5, 0, 1),
            leaf(ctx, 7, 9, 1, 0.3f), leaf(ctx, 9, 0, 1, 0.1f),
            leaf(ctx, 5, 9, 1, 0.3f), leaf(ctx, 5, 0, 1, 0.1f),
        };
        tlm_tensor *const params_list[4] = {m.w1, m.b1, m.w2, m.b2};
        tlm_tensor *loss = NULL;
        float first_loss = 0, last_loss = 0;
        uint64_t after_first_step = 0;
        for (int step = 0; step < 1000; step++) {
            new_batch(&m, step);
            if (step == 0 || rebuild) {
                if (rebuild)
                    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
                loss = build_loss(&m);
            } else {
                assert_int_equal(tlm_context_forward(ctx), TLM_OK);
            }
            assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
            assert_int_equal(tlm_backward(loss), TLM_OK);
            sgd_update(params_list, 4, 0.05f);
            if (step == 0) {
                first_loss = tlm_tensor_data_f32(loss)[0];
                after_first_step = counter.calls;
            }
            last_loss = tlm_tensor_data_f32(loss)[0];
        }
        assert_int_equal(counter.calls, after_first_step);
        assert_true(last_loss < 0.05f * first_loss); /* it did learn */
        tlm_context_free(ctx);
        assert_int_equal(counter.live_bytes, 0);
        assert_int_equal(counter.bad_free_sizes, 0);
    }
}

/* The same graph, built twice from the same values, gives bit-identical
 * values and gradients. */
static void runs_are_bit_identical(void **state) {
    (void)state;
    float grads[2][63];
    float losses[2];
    for (int run = 0; run < 2; run++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tiny_model m = {
            leaf(ctx, 16, 7, 0, 1), leaf(ctx, 16, 5, 0, 1),
            leaf(ctx, 7, 9, 1, 0.3f), leaf(ctx, 9, 0, 1, 0.1f),
            leaf(ctx, 5, 9, 1, 0.3f), leaf(ctx, 5, 0, 1, 0.1f),
        };
        new_batch(&m, 3);
        tlm_tensor *loss = build_loss(&m);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        assert_int_equal(tlm_tensor_get_grad_f32(m.w1, grads[run], 63), TLM_OK);
        losses[run] = tlm_tensor_data_f32(loss)[0];
        tlm_context_free(ctx);
    }
    assert_memory_equal(grads[0], grads[1], sizeof grads[0]);
    assert_memory_equal(&losses[0], &losses[1], sizeof losses[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(gradients_accumulate_until_zeroed),
        cmocka_unit_test(backward_from_an_intermediate_result),
        cmocka_unit_test(a_result_without_a_share_has_zero_gradient),
        cmocka_unit_test(only_flagged_leaves_get_gradients),
        cmocka_unit_test(recording_off_gives_plain_results),
        cmocka_unit_test(reset_keeps_leaves_and_their_gradients),
        cmocka_unit_test(failed_operation_leaves_graph_intact),
        cmocka_unit_test(freed_inputs_stop_reruns),
        cmocka_unit_test(training_loop_allocates_nothing_after_first_step),
        cmocka_unit_test(runs_are_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
