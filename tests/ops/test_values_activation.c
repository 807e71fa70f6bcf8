/*
 * Forward values of the activation operations against straightforward
 * double-precision formulas, on sizes 1, odd and not multiples of 8, and
 * the behaviours their contracts promise: softmax rows sum to 1, logits
 * like 1e4 and -1e4 in one row stay finite, log-softmax is not
 * log(softmax), results are fresh tensors (not views) that
 * tlm_context_forward() recomputes from changed inputs, and training or
 * evaluation mode does not change them.
 *
 * Tolerances: |got - want| <= abs + rel * |want|. The kernels compute in
 * float with float math functions (a few ulp each) or in double with one
 * final rounding (softmax), so rel 1e-5 with abs 1e-7 (around values of
 * size 1) leaves a margin of tens of ulp; relative-only bounds check the
 * tails, where the values are tiny but must not collapse to 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

#define REL 1e-5
#define ABS 1e-7
#define MAX_N 256

/* ---- double-precision references -------------------------------------- */

static const double sqrt_2_over_pi = 0.79788456080286535588;

static double ref_relu(double x) { return x > 0.0 ? x : 0.0; }

/* Literally GPT-2's formula: accurate in double except deep in the
 * negative tail, where 1 + tanh cancels. */
static double ref_gelu_tanh(double x) {
    return 0.5 * x * (1.0 + tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}

/* The same function through 1 + tanh(u) = 2 / (1 + exp(-2u)): for the
 * tail. */
static double ref_gelu_tanh_tail(double x) {
    double u = sqrt_2_over_pi * (x + 0.044715 * x * x * x);
    return x / (1.0 + exp(-2.0 * u));
}

/* x Phi(x) with Phi = 0.5 erfc(-x / sqrt 2): the double 1 + erf would
 * cancel to 0 below x = -8. */
static double ref_gelu_exact(double x) { return 0.5 * x * erfc(-x / sqrt(2.0)); }

static double ref_silu(double x) { return x / (1.0 + exp(-x)); }

static void ref_softmax(double *y, const float *x, int64_t cols) {
    double max = (double)x[0], sum = 0.0;
    for (int64_t j = 1; j < cols; j++)
        max = fmax(max, (double)x[j]);
    for (int64_t j = 0; j < cols; j++)
        sum += exp((double)x[j] - max);
    for (int64_t j = 0; j < cols; j++)
        y[j] = exp((double)x[j] - max) / sum;
}

static void ref_log_softmax(double *y, const float *x, int64_t cols) {
    double max = (double)x[0], sum = 0.0;
    for (int64_t j = 1; j < cols; j++)
        max = fmax(max, (double)x[j]);
    for (int64_t j = 0; j < cols; j++)
        sum += exp((double)x[j] - max);
    for (int64_t j = 0; j < cols; j++)
        y[j] = (double)x[j] - max - log(sum);
}

/* ---- helpers ---------------------------------------------------------- */

/* Deterministic values spread over [-scale, scale]. */
static void fill(float *x, int64_t n, uint32_t seed, float scale) {
    uint32_t state = seed * 2654435761u + 12345u;
    for (int64_t i = 0; i < n; i++) {
        state = state * 1664525u + 1013904223u;
        double u = (double)(state >> 8) / 16777216.0; /* [0, 1) */
        x[i] = (float)((2.0 * u - 1.0) * (double)scale);
    }
}

static tlm_tensor *input(tlm_context *ctx, int32_t ndim, const int64_t *shape,
                         const float *data) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_from_f32(&t, ctx, ndim, shape, data), TLM_OK);
    return t;
}

static void assert_close(const float *got, const double *want, int64_t n,
                         double rel, double abs_tol, const char *what) {
    for (int64_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]);
        if (!(err <= abs_tol + rel * fabs(want[i]))) {
            char message[200];
            snprintf(message, sizeof message,
                     "%s[%lld]: got %.9g, want %.9g (error %.3g)", what,
                     (long long)i, (double)got[i], want[i], err);
            fail_msg("%s", message);
        }
    }
}

static void assert_finite(const float *x, int64_t n, const char *what) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            fail_msg("%s[%lld] = %g is not finite", what, (long long)i,
                     (double)x[i]);
}

typedef double (*ref_fn)(double);
typedef int (*unary_fn)(tlm_tensor **out, tlm_tensor *a);

static int gelu_tanh(tlm_tensor **out, tlm_tensor *a) {
    return tlm_gelu(out, a, TLM_GELU_TANH);
}
static int gelu_exact(tlm_tensor **out, tlm_tensor *a) {
    return tlm_gelu(out, a, TLM_GELU_EXACT);
}

/* Runs `op` on x of `shape` and compares every value with ref(x). */
static void check_elementwise(unary_fn op, ref_fn ref, int32_t ndim,
                              const int64_t *shape, const float *x,
                              double rel, double abs_tol, const char *what) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = input(ctx, ndim, shape, x), *out = NULL;
    assert_int_equal(op(&out, a), TLM_OK);
    int64_t n = tlm_tensor_numel(out);
    assert_int_equal(n, tlm_tensor_numel(a));
    assert_true(n <= MAX_N);
    int64_t out_shape[TLM_MAX_DIMS];
    assert_int_equal(tlm_tensor_shape(out, out_shape, TLM_MAX_DIMS), ndim);
    for (int32_t d = 0; d < ndim; d++)
        assert_int_equal(out_shape[d], shape[d]);
    double want[MAX_N];
    for (int64_t i = 0; i < n; i++)
        want[i] = ref((double)x[i]);
    assert_close(tlm_tensor_data_f32(out), want, n, rel, abs_tol, what);
    tlm_context_free(ctx);
}

/* The same op over sizes 1, 7, 13 and 33 (as 3x11) and 2x3x5x7... within
 * MAX_N, on values spread over [-scale, scale]. */
static void check_sizes(unary_fn op, ref_fn ref, float scale,
                        const char *what) {
    static const int64_t shapes[][4] = {{1}, {7}, {13}, {3, 11}, {2, 3, 5, 7}};
    static const int32_t ranks[] = {1, 1, 1, 2, 4};
    float x[MAX_N];
    for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
        fill(x, MAX_N, (uint32_t)s + 1u, scale);
        check_elementwise(op, ref, ranks[s], shapes[s], x, REL, ABS, what);
    }
}

/* ---- relu -------------------------------------------------------------- */

static void relu_values(void **state) {
    (void)state;
    check_sizes(tlm_relu, ref_relu, 4.0f, "relu");
    const float x[9] = {-2.0f, -0.5f, 0.0f, -0.0f, 0.25f, 3.0f,
                        -1e-30f, 1e30f, -FLT_MAX};
    const int64_t shape[1] = {9};
    /* Exact: relu only selects. */
    check_elementwise(tlm_relu, ref_relu, 1, shape, x, 0.0, 0.0, "relu exact");
}

static void relu_passes_nan_through(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float x[3] = {-1.0f, NAN, 2.0f};
    const int64_t shape[1] = {3};
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_relu(&out, input(ctx, 1, shape, x)), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    assert_true(y[0] == 0.0f);
    assert_true(isnan(y[1]));
    assert_true(y[2] == 2.0f);
    tlm_context_free(ctx);
}

/* The derivative at exactly 0 is 0: sum(relu(x)) at x = {-1, 0, 2}. */
static void relu_gradient_at_zero_is_zero(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float x[3] = {-1.0f, 0.0f, 2.0f};
    const int64_t shape[1] = {3};
    tlm_tensor *a = input(ctx, 1, shape, x), *r = NULL, *loss = NULL;
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    assert_int_equal(tlm_relu(&r, a), TLM_OK);
    assert_int_equal(tlm_sum(&loss, r), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[3];
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, 3), TLM_OK);
    assert_true(grad[0] == 0.0f);
    assert_true(grad[1] == 0.0f);
    assert_true(grad[2] == 1.0f);
    tlm_context_free(ctx);
}

/* ---- gelu -------------------------------------------------------------- */

static void gelu_tanh_values(void **state) {
    (void)state;
    check_sizes(gelu_tanh, ref_gelu_tanh, 6.0f, "gelu tanh");
    /* Hand-checked points: gelu(0) = 0, gelu(1) = 0.841191990607...,
     * gelu(-1) = -0.158808009392... (both from the formula). */
    const float x[3] = {0.0f, 1.0f, -1.0f};
    const int64_t shape[1] = {3};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_gelu(&out, input(ctx, 1, shape, x), TLM_GELU_TANH),
                     TLM_OK);
    const double want[3] = {0.0, 0.8411919906082768, -0.15880800939172324};
    assert_close(tlm_tensor_data_f32(out), want, 3, REL, 1e-7, "gelu tanh points");
    tlm_context_free(ctx);
}

static void gelu_exact_values(void **state) {
    (void)state;
    check_sizes(gelu_exact, ref_gelu_exact, 6.0f, "gelu exact");
    /* gelu(1) = Phi(1) = 0.841344746068543, gelu(-1) = -(1 - Phi(1)). */
    const float x[3] = {0.0f, 1.0f, -1.0f};
    const int64_t shape[1] = {3};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_gelu(&out, input(ctx, 1, shape, x), TLM_GELU_EXACT),
                     TLM_OK);
    const double want[3] = {0.0, 0.841344746068543, -0.158655253931457};
    assert_close(tlm_tensor_data_f32(out), want, 3, REL, 1e-7, "gelu exact points");
    tlm_context_free(ctx);
}

/* The two forms differ (by at most 4.7e-4, at x = 2.7; 4.4e-4 at 2.5),
 * so the form argument is honoured. */
static void gelu_forms_differ(void **state) {
    (void)state;
    const float x[1] = {2.5f};
    const int64_t shape[1] = {1};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = input(ctx, 1, shape, x), *t = NULL, *e = NULL;
    assert_int_equal(tlm_gelu(&t, a, TLM_GELU_TANH), TLM_OK);
    assert_int_equal(tlm_gelu(&e, a, TLM_GELU_EXACT), TLM_OK);
    double diff = fabs((double)tlm_tensor_data_f32(t)[0] -
                       (double)tlm_tensor_data_f32(e)[0]);
    assert_true(diff > 4.3e-4 && diff < 4.5e-4);
    tlm_context_free(ctx);
}

/* Deep in the negative tail both forms are tiny but exact to a relative
 * 1e-4 (no cancellation to 0); far out they are 0 and large positive x
 * passes unchanged, all finite. */
static void gelu_tails(void **state) {
    (void)state;
    const float tail[4] = {-3.0f, -5.0f, -8.0f, -9.5f};
    const int64_t shape4[1] = {4};
    check_elementwise(gelu_tanh, ref_gelu_tanh_tail, 1, shape4, tail, 1e-4,
                      0.0, "gelu tanh tail");
    check_elementwise(gelu_exact, ref_gelu_exact, 1, shape4, tail, 1e-4, 0.0,
                      "gelu exact tail");
    const float far[6] = {-1e4f, -1e20f, -FLT_MAX, 1e4f, 1e20f, FLT_MAX};
    const int64_t shape6[1] = {6};
    const double want[6] = {0.0, 0.0, 0.0, 1e4, 1e20, (double)FLT_MAX};
    for (int form = 0; form < 2; form++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_tensor *out = NULL;
        assert_int_equal(tlm_gelu(&out, input(ctx, 1, shape6, far), form),
                         TLM_OK);
        assert_finite(tlm_tensor_data_f32(out), 6, "gelu far");
        assert_close(tlm_tensor_data_f32(out), want, 6, 1e-6, 0.0, "gelu far");
        tlm_context_free(ctx);
    }
}

/* ---- silu and swiglu --------------------------------------------------- */

static void silu_values(void **state) {
    (void)state;
    check_sizes(tlm_silu, ref_silu, 8.0f, "silu");
    /* Tails: relative accuracy where the value is tiny; 0 and x far out. */
    const float x[8] = {-20.0f, -50.0f, -80.0f, 20.0f, -1e4f, 1e4f,
                        -FLT_MAX, FLT_MAX};
    const int64_t shape[1] = {8};
    check_elementwise(tlm_silu, ref_silu, 1, shape, x, 1e-5, 0.0, "silu tails");
}

static void swiglu_values(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {{1}, {7}, {3, 11}, {2, 3, 5}};
    static const int32_t ranks[] = {1, 1, 2, 3};
    for (size_t s = 0; s < sizeof ranks / sizeof ranks[0]; s++) {
        float gate[MAX_N], up[MAX_N];
        fill(gate, MAX_N, 40u + (uint32_t)s, 6.0f);
        fill(up, MAX_N, 80u + (uint32_t)s, 3.0f);
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_tensor *g = input(ctx, ranks[s], shapes[s], gate);
        tlm_tensor *u = input(ctx, ranks[s], shapes[s], up), *out = NULL;
        assert_int_equal(tlm_swiglu(&out, g, u), TLM_OK);
        int64_t n = tlm_tensor_numel(out);
        assert_int_equal(n, tlm_tensor_numel(g));
        double want[MAX_N];
        for (int64_t i = 0; i < n; i++)
            want[i] = ref_silu((double)gate[i]) * (double)up[i];
        assert_close(tlm_tensor_data_f32(out), want, n, REL, ABS, "swiglu");
        tlm_context_free(ctx);
    }
}

/* swiglu(g, u) equals silu(g) * u built from the other ops. */
static void swiglu_matches_silu_times_up(void **state) {
    (void)state;
    float gate[13], up[13];
    fill(gate, 13, 5u, 4.0f);
    fill(up, 13, 6u, 2.0f);
    const int64_t shape[1] = {13};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *g = input(ctx, 1, shape, gate), *u = input(ctx, 1, shape, up);
    tlm_tensor *fused = NULL, *s = NULL, *product = NULL;
    assert_int_equal(tlm_swiglu(&fused, g, u), TLM_OK);
    assert_int_equal(tlm_silu(&s, g), TLM_OK);
    assert_int_equal(tlm_mul(&product, s, u), TLM_OK);
    double want[13];
    for (int i = 0; i < 13; i++)
        want[i] = (double)tlm_tensor_data_f32(product)[i];
    assert_close(tlm_tensor_data_f32(fused), want, 13, 1e-6, 1e-7,
                 "swiglu vs silu*up");
    tlm_context_free(ctx);
}

/* ---- softmax and log-softmax ------------------------------------------ */

typedef void (*row_ref_fn)(double *y, const float *x, int64_t cols);

static void check_rows(unary_fn op, row_ref_fn ref, int32_t ndim,
                       const int64_t *shape, const float *x, double rel,
                       double abs_tol, const char *what) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = input(ctx, ndim, shape, x), *out = NULL;
    assert_int_equal(op(&out, a), TLM_OK);
    int64_t n = tlm_tensor_numel(out), cols = shape[ndim - 1];
    assert_true(n <= MAX_N);
    assert_int_equal(tlm_tensor_dim(out, -1), cols);
    double want[MAX_N];
    for (int64_t r = 0; r < n / cols; r++)
        ref(want + r * cols, x + r * cols, cols);
    const float *y = tlm_tensor_data_f32(out);
    assert_finite(y, n, what);
    assert_close(y, want, n, rel, abs_tol, what);
    tlm_context_free(ctx);
}

static const int64_t row_shapes[][4] = {{1}, {1, 1}, {7}, {3, 13}, {5, 1},
                                        {2, 3, 33}, {2, 1, 3, 9}};
static const int32_t row_ranks[] = {1, 2, 1, 2, 2, 3, 4};
#define N_ROW_SHAPES (sizeof row_ranks / sizeof row_ranks[0])

static void softmax_values(void **state) {
    (void)state;
    float x[MAX_N];
    for (size_t s = 0; s < N_ROW_SHAPES; s++) {
        fill(x, MAX_N, 100u + (uint32_t)s, 5.0f);
        check_rows(tlm_softmax, ref_softmax, row_ranks[s], row_shapes[s], x,
                   REL, 1e-9, "softmax");
    }
}

/* Every row sums to 1 and a row of one element is exactly 1. */
static void softmax_rows_sum_to_one(void **state) {
    (void)state;
    float x[4 * 33];
    fill(x, 4 * 33, 7u, 10.0f);
    const int64_t shape[2] = {4, 33};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_softmax(&out, input(ctx, 2, shape, x)), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    for (int r = 0; r < 4; r++) {
        double sum = 0.0;
        for (int j = 0; j < 33; j++) {
            assert_true(y[r * 33 + j] >= 0.0f && y[r * 33 + j] <= 1.0f);
            sum += (double)y[r * 33 + j];
        }
        assert_true(fabs(sum - 1.0) < 1e-6);
    }
    const float one_x[3] = {-7.0f, 0.0f, 1e4f};
    const int64_t column[2] = {3, 1};
    assert_int_equal(tlm_softmax(&out, input(ctx, 2, column, one_x)), TLM_OK);
    for (int r = 0; r < 3; r++)
        assert_true(tlm_tensor_data_f32(out)[r] == 1.0f);
    tlm_context_free(ctx);
}

/* Logits far apart in one row: no overflow, no inf - inf. */
static void softmax_large_magnitudes_stay_finite(void **state) {
    (void)state;
    const float x[3 * 4] = {
        1e4f, -1e4f, 0.0f, 9999.0f,           /* 1e4 beside -1e4 */
        -1e4f, -1e4f, -1e4f, -1e4f,           /* all very negative: uniform */
        FLT_MAX, -FLT_MAX, 0.0f, -FLT_MAX,    /* the extremes of float */
    };
    const int64_t shape[2] = {3, 4};
    check_rows(tlm_softmax, ref_softmax, 2, shape, x, REL, 1e-9,
               "softmax large");
    /* By hand: the first row is {1, 0, 0, e^-1} / (1 + e^-1). */
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_softmax(&out, input(ctx, 2, shape, x)), TLM_OK);
    const double e = exp(-1.0);
    const double want[12] = {1.0 / (1.0 + e), 0.0, 0.0, e / (1.0 + e),
                             0.25, 0.25, 0.25, 0.25, 1.0, 0.0, 0.0, 0.0};
    assert_close(tlm_tensor_data_f32(out), want, 12, 1e-6, 0.0,
                 "softmax by hand");
    tlm_context_free(ctx);
}

static void log_softmax_values(void **state) {
    (void)state;
    float x[MAX_N];
    for (size_t s = 0; s < N_ROW_SHAPES; s++) {
        fill(x, MAX_N, 200u + (uint32_t)s, 5.0f);
        check_rows(tlm_log_softmax, ref_log_softmax, row_ranks[s],
                   row_shapes[s], x, REL, 1e-6, "log_softmax");
    }
}

/* One huge logit: the others get finite, exact log-probabilities (about
 * -1e4) where log(softmax) would give log(0) = -inf. */
static void log_softmax_one_huge_logit(void **state) {
    (void)state;
    const float x[2 * 4] = {1e4f, 0.0f, -1.0f, 2.0f,
                            1e4f, -1e4f, FLT_MAX, 0.0f};
    const int64_t shape[2] = {2, 4};
    check_rows(tlm_log_softmax, ref_log_softmax, 2, shape, x, 1e-6, 0.0,
               "log_softmax huge");
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = input(ctx, 2, shape, x), *out = NULL, *p = NULL;
    assert_int_equal(tlm_log_softmax(&out, a), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    assert_true(y[0] == 0.0f);       /* log(1 + e^-9998 + ...) rounds to 0 */
    assert_true(y[1] == -1e4f);
    assert_true(y[2] == -10001.0f);
    assert_true(y[3] == -9998.0f);
    /* Beside FLT_MAX every other logit is -FLT_MAX after rounding. */
    assert_true(y[4] == -FLT_MAX && y[5] == -FLT_MAX && y[6] == 0.0f &&
                y[7] == -FLT_MAX);
    /* softmax of the same row underflows to 0 there: log of it would not
     * be finite, which is why log_softmax must not be log(softmax). */
    assert_int_equal(tlm_softmax(&p, a), TLM_OK);
    assert_true(tlm_tensor_data_f32(p)[1] == 0.0f);
    tlm_context_free(ctx);
}

/* Where nothing underflows, exp(log_softmax) is the softmax. */
static void log_softmax_is_log_of_softmax_where_finite(void **state) {
    (void)state;
    float x[3 * 13];
    fill(x, 3 * 13, 9u, 3.0f);
    const int64_t shape[2] = {3, 13};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = input(ctx, 2, shape, x), *ls = NULL, *s = NULL;
    assert_int_equal(tlm_log_softmax(&ls, a), TLM_OK);
    assert_int_equal(tlm_softmax(&s, a), TLM_OK);
    double want[3 * 13];
    for (int i = 0; i < 3 * 13; i++)
        want[i] = log((double)tlm_tensor_data_f32(s)[i]);
    assert_close(tlm_tensor_data_f32(ls), want, 3 * 13, 1e-6, 1e-6,
                 "log_softmax vs log(softmax)");
    tlm_context_free(ctx);
}

/* d/dx sum(softmax(x)) = 0 (each row sums to 1) and
 * d/dx sum(log_softmax(x)) = 1 - cols * softmax(x): the backward passes
 * against closed forms. */
static void softmax_gradients_closed_form(void **state) {
    (void)state;
    float x[2 * 7];
    fill(x, 2 * 7, 11u, 3.0f);
    const int64_t shape[2] = {2, 7};
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = input(ctx, 2, shape, x), *s = NULL, *ls = NULL;
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    assert_int_equal(tlm_softmax(&s, a), TLM_OK);
    assert_int_equal(tlm_sum(&loss, s), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[14];
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, 14), TLM_OK);
    for (int i = 0; i < 14; i++)
        assert_true(fabs((double)grad[i]) < 1e-7);

    assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
    assert_int_equal(tlm_log_softmax(&ls, a), TLM_OK);
    assert_int_equal(tlm_sum(&loss, ls), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, 14), TLM_OK);
    double p[7], want[14];
    for (int r = 0; r < 2; r++) {
        ref_softmax(p, x + r * 7, 7);
        for (int j = 0; j < 7; j++)
            want[r * 7 + j] = 1.0 - 7.0 * p[j];
    }
    assert_close(grad, want, 14, 1e-5, 1e-6, "grad sum(log_softmax)");
    tlm_context_free(ctx);
}

/* ---- graph behaviour --------------------------------------------------- */

/* Builds every op once, then changes the inputs with tlm_tensor_set_f32
 * and re-runs the tape: every result follows the new values. */
static void forward_rerun_uses_new_inputs(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t shape[2] = {3, 7};
    float x[21], y[21];
    fill(x, 21, 21u, 4.0f);
    fill(y, 21, 22u, 4.0f);
    tlm_tensor *a = input(ctx, 2, shape, x), *b = input(ctx, 2, shape, y);
    tlm_tensor *out[7] = {0};
    assert_int_equal(tlm_relu(&out[0], a), TLM_OK);
    assert_int_equal(tlm_gelu(&out[1], a, TLM_GELU_TANH), TLM_OK);
    assert_int_equal(tlm_gelu(&out[2], a, TLM_GELU_EXACT), TLM_OK);
    assert_int_equal(tlm_silu(&out[3], a), TLM_OK);
    assert_int_equal(tlm_swiglu(&out[4], a, b), TLM_OK);
    assert_int_equal(tlm_softmax(&out[5], a), TLM_OK);
    assert_int_equal(tlm_log_softmax(&out[6], a), TLM_OK);

    for (int round = 0; round < 2; round++) {
        fill(x, 21, 30u + (uint32_t)round, 6.0f);
        fill(y, 21, 40u + (uint32_t)round, 2.0f);
        assert_int_equal(tlm_tensor_set_f32(a, x, 21), TLM_OK);
        assert_int_equal(tlm_tensor_set_f32(b, y, 21), TLM_OK);
        assert_int_equal(tlm_context_forward(ctx), TLM_OK);
        double want[21];
        const ref_fn refs[4] = {ref_relu, ref_gelu_tanh, ref_gelu_exact,
                                ref_silu};
        for (int k = 0; k < 4; k++) {
            for (int i = 0; i < 21; i++)
                want[i] = refs[k]((double)x[i]);
            assert_close(tlm_tensor_data_f32(out[k]), want, 21, REL, ABS,
                         "rerun elementwise");
        }
        for (int i = 0; i < 21; i++)
            want[i] = ref_silu((double)x[i]) * (double)y[i];
        assert_close(tlm_tensor_data_f32(out[4]), want, 21, REL, ABS,
                     "rerun swiglu");
        for (int r = 0; r < 3; r++)
            ref_softmax(want + r * 7, x + r * 7, 7);
        assert_close(tlm_tensor_data_f32(out[5]), want, 21, REL, 1e-9,
                     "rerun softmax");
        for (int r = 0; r < 3; r++)
            ref_log_softmax(want + r * 7, x + r * 7, 7);
        assert_close(tlm_tensor_data_f32(out[6]), want, 21, REL, 1e-6,
                     "rerun log_softmax");
    }
    tlm_context_free(ctx);
}

/* A chain re-runs in order: softmax(gelu(x)) follows a changed x. */
static void forward_rerun_through_a_chain(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t shape[1] = {13};
    float x[13];
    fill(x, 13, 50u, 3.0f);
    tlm_tensor *a = input(ctx, 1, shape, x), *g = NULL, *s = NULL;
    assert_int_equal(tlm_gelu(&g, a, TLM_GELU_EXACT), TLM_OK);
    assert_int_equal(tlm_softmax(&s, g), TLM_OK);
    fill(x, 13, 51u, 3.0f);
    assert_int_equal(tlm_tensor_set_f32(a, x, 13), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    float gx[13];
    double want[13];
    for (int i = 0; i < 13; i++)
        gx[i] = (float)ref_gelu_exact((double)x[i]);
    ref_softmax(want, gx, 13);
    assert_close(tlm_tensor_data_f32(s), want, 13, 1e-5, 1e-8, "chain");
    tlm_context_free(ctx);
}

/* Results own their memory (they are not views of the input): changing
 * the input changes nothing until the next forward run. */
static void results_are_not_views(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t shape[1] = {5};
    const float x[5] = {-1.0f, 0.5f, 2.0f, -3.0f, 1.0f};
    const float zeros[5] = {0};
    tlm_tensor *a = input(ctx, 1, shape, x), *out[6] = {0};
    assert_int_equal(tlm_relu(&out[0], a), TLM_OK);
    assert_int_equal(tlm_gelu(&out[1], a, TLM_GELU_TANH), TLM_OK);
    assert_int_equal(tlm_silu(&out[2], a), TLM_OK);
    assert_int_equal(tlm_swiglu(&out[3], a, a), TLM_OK);
    assert_int_equal(tlm_softmax(&out[4], a), TLM_OK);
    assert_int_equal(tlm_log_softmax(&out[5], a), TLM_OK);
    float before[6][5];
    for (int k = 0; k < 6; k++) {
        assert_ptr_not_equal(tlm_tensor_data_f32(out[k]), tlm_tensor_data_f32(a));
        assert_int_equal(tlm_tensor_get_f32(out[k], before[k], 5), TLM_OK);
    }
    assert_int_equal(tlm_tensor_set_f32(a, zeros, 5), TLM_OK);
    for (int k = 0; k < 6; k++)
        assert_memory_equal(tlm_tensor_data_f32(out[k]), before[k], sizeof before[k]);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_true(tlm_tensor_data_f32(out[4])[2] == 0.2f); /* uniform row */
    tlm_context_free(ctx);
}

/* Activations ignore the training flag and recording: evaluation mode and
 * grad-disabled runs give bit-identical values (and no gradient). */
static void same_values_in_eval_mode_and_without_recording(void **state) {
    (void)state;
    float x[33], y[33], ref[3][7][33];
    fill(x, 33, 60u, 5.0f);
    fill(y, 33, 61u, 5.0f);
    const int64_t shape[2] = {3, 11};
    for (int mode = 0; mode < 3; mode++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_tensor *a = input(ctx, 2, shape, x), *b = input(ctx, 2, shape, y);
        assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
        if (mode == 1)
            assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
        if (mode == 2)
            assert_int_equal(tlm_context_set_grad_enabled(ctx, 0), TLM_OK);
        tlm_tensor *out[7] = {0};
        assert_int_equal(tlm_relu(&out[0], a), TLM_OK);
        assert_int_equal(tlm_gelu(&out[1], a, TLM_GELU_TANH), TLM_OK);
        assert_int_equal(tlm_gelu(&out[2], a, TLM_GELU_EXACT), TLM_OK);
        assert_int_equal(tlm_silu(&out[3], a), TLM_OK);
        assert_int_equal(tlm_swiglu(&out[4], a, b), TLM_OK);
        assert_int_equal(tlm_softmax(&out[5], a), TLM_OK);
        assert_int_equal(tlm_log_softmax(&out[6], a), TLM_OK);
        for (int k = 0; k < 7; k++) {
            assert_int_equal(tlm_tensor_get_f32(out[k], ref[mode][k], 33), TLM_OK);
            assert_int_equal(tlm_tensor_requires_grad(out[k]), mode == 2 ? 0 : 1);
            if (mode > 0)
                assert_memory_equal(ref[mode][k], ref[0][k], sizeof ref[0][k]);
        }
        tlm_context_free(ctx);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relu_values),
        cmocka_unit_test(relu_passes_nan_through),
        cmocka_unit_test(relu_gradient_at_zero_is_zero),
        cmocka_unit_test(gelu_tanh_values),
        cmocka_unit_test(gelu_exact_values),
        cmocka_unit_test(gelu_forms_differ),
        cmocka_unit_test(gelu_tails),
        cmocka_unit_test(silu_values),
        cmocka_unit_test(swiglu_values),
        cmocka_unit_test(swiglu_matches_silu_times_up),
        cmocka_unit_test(softmax_values),
        cmocka_unit_test(softmax_rows_sum_to_one),
        cmocka_unit_test(softmax_large_magnitudes_stay_finite),
        cmocka_unit_test(log_softmax_values),
        cmocka_unit_test(log_softmax_one_huge_logit),
        cmocka_unit_test(log_softmax_is_log_of_softmax_where_finite),
        cmocka_unit_test(softmax_gradients_closed_form),
        cmocka_unit_test(forward_rerun_uses_new_inputs),
        cmocka_unit_test(forward_rerun_through_a_chain),
        cmocka_unit_test(results_are_not_views),
        cmocka_unit_test(same_values_in_eval_mode_and_without_recording),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
