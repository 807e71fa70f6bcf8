/*
 * Forward values of tlm_layer_norm, tlm_rms_norm and tlm_batch_norm
 * against hand-computed results and against straightforward double
 * precision formulas, on small and odd sizes; and what the doc comments
 * promise: batch norm's training and evaluation modes (read at every
 * forward), its running statistics (updated in place, unbiased variance,
 * never differentiated), and re-running the graph with new input values.
 *
 * Tolerances: the library computes statistics in double and rounds each
 * output to float once, so results agree with the double reference to
 * a few float ulps: |got - want| <= 1e-5 * max(1, |want|) (TOL).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

#define TOL 1e-5
#define MAX_N 512

static void assert_close(const float *got, const double *want, int64_t n,
                         double tol) {
    for (int64_t i = 0; i < n; i++) {
        double scale = fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0;
        if (!(fabs((double)got[i] - want[i]) <= tol * scale))
            fail_msg("element %lld: got %.9g, want %.9g (tolerance %.1e)",
                     (long long)i, (double)got[i], want[i], tol);
    }
}

static void assert_close_f(const float *got, const float *want, int64_t n,
                           double tol) {
    double w[MAX_N];
    assert_true(n <= MAX_N);
    for (int64_t i = 0; i < n; i++)
        w[i] = (double)want[i];
    assert_close(got, w, n, tol);
}

/* Deterministic values in about [-2, 2] plus `offset`. */
static void fill(float *x, int64_t n, uint32_t seed, float offset) {
    uint32_t s = seed * 2654435761u + 1u;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        x[i] = offset + (float)((double)(s >> 8) / 16777216.0 * 4.0 - 2.0);
    }
}

static tlm_context *new_context(void) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    return ctx;
}

static tlm_tensor *tensor(tlm_context *ctx, int32_t ndim, const int64_t *shape,
                          const float *data) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_from_f32(&t, ctx, ndim, shape, data), TLM_OK);
    return t;
}

static tlm_tensor *vector(tlm_context *ctx, int64_t c, const float *data) {
    return tensor(ctx, 1, &c, data);
}

static void get(tlm_tensor *t, float *data) {
    assert_int_equal(tlm_tensor_get_f32(t, data, tlm_tensor_numel(t)), TLM_OK);
}

/* ---- double-precision references ---- */

static void ref_layer_norm(double *out, const float *x, const float *gain,
                           const float *bias, int64_t rows, int64_t cols,
                           double eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double mean = 0, var = 0;
        for (int64_t c = 0; c < cols; c++)
            mean += (double)xr[c];
        mean /= (double)cols;
        for (int64_t c = 0; c < cols; c++)
            var += ((double)xr[c] - mean) * ((double)xr[c] - mean);
        var /= (double)cols;
        for (int64_t c = 0; c < cols; c++)
            out[r * cols + c] = ((double)xr[c] - mean) / sqrt(var + eps) *
                                    (gain ? (double)gain[c] : 1.0) +
                                (bias ? (double)bias[c] : 0.0);
    }
}

static void ref_rms_norm(double *out, const float *x, const float *gain,
                         int64_t rows, int64_t cols, double eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        double ms = 0;
        for (int64_t c = 0; c < cols; c++)
            ms += (double)xr[c] * (double)xr[c];
        ms /= (double)cols;
        for (int64_t c = 0; c < cols; c++)
            out[r * cols + c] =
                (double)xr[c] / sqrt(ms + eps) * (gain ? (double)gain[c] : 1.0);
    }
}

/* Per-column mean and biased variance over the rows. */
static void ref_column_stats(double *mean, double *var, const float *x,
                             int64_t rows, int64_t cols) {
    for (int64_t c = 0; c < cols; c++) {
        double m = 0, v = 0;
        for (int64_t r = 0; r < rows; r++)
            m += (double)x[r * cols + c];
        m /= (double)rows;
        for (int64_t r = 0; r < rows; r++)
            v += ((double)x[r * cols + c] - m) * ((double)x[r * cols + c] - m);
        mean[c] = m;
        var[c] = v / (double)rows;
    }
}

static void ref_batch_norm(double *out, const float *x, const float *gain,
                           const float *bias, const double *mean,
                           const double *var, int64_t rows, int64_t cols,
                           double eps) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            out[r * cols + c] =
                ((double)x[r * cols + c] - mean[c]) / sqrt(var[c] + eps) *
                    (gain ? (double)gain[c] : 1.0) +
                (bias ? (double)bias[c] : 0.0);
}

/* ---- layer norm ---- */

static void layer_norm_hand_computed(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    /* mean 2.5, biased variance 1.25: (x - 2.5) / sqrt(1.25) */
    const float x[4] = {1, 2, 3, 4};
    tlm_tensor *a = vector(ctx, 4, x), *out = NULL;
    assert_int_equal(tlm_layer_norm(&out, a, NULL, NULL, 1e-12f), TLM_OK);
    float got[4];
    get(out, got);
    const double want[4] = {-1.3416407865, -0.4472135955, 0.4472135955,
                            1.3416407865};
    assert_close(got, want, 4, TOL);

    /* with gain and bias: y * gain + bias */
    const float g[4] = {2, -1, 0.5f, 0}, b[4] = {0, 1, -1, 3};
    assert_int_equal(tlm_layer_norm(&out, a, vector(ctx, 4, g), vector(ctx, 4, b),
                                    1e-12f), TLM_OK);
    get(out, got);
    const double want_affine[4] = {-2.683281573, 1.4472135955, -0.77639320225, 3};
    assert_close(got, want_affine, 4, TOL);

    /* C = 1: every value is its row's mean, the result is the bias */
    const int64_t s31[2] = {3, 1};
    const float x31[3] = {5, -7, 0.25f}, b1[1] = {0.75f};
    assert_int_equal(tlm_layer_norm(&out, tensor(ctx, 2, s31, x31), NULL,
                                    vector(ctx, 1, b1), 1e-5f), TLM_OK);
    get(out, got);
    const double want_c1[3] = {0.75, 0.75, 0.75};
    assert_close(got, want_c1, 3, TOL);
    tlm_context_free(ctx);
}

static void layer_norm_matches_reference(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shapes[][3] = {{1, 1, 13}, {3, 7, 0}, {2, 3, 33},
                                 {5, 1, 0}, {1, 1, 1}};
    const int32_t ndims[] = {3, 2, 3, 2, 3};
    float x[MAX_N], g[64], b[64], got[MAX_N];
    double want[MAX_N];
    for (int s = 0; s < 5; s++) {
        int64_t n = 1;
        for (int32_t i = 0; i < ndims[s]; i++)
            n *= shapes[s][i];
        const int64_t cols = shapes[s][ndims[s] - 1], rows = n / cols;
        fill(x, n, 10u + (uint32_t)s, 0.0f);
        fill(g, cols, 20u + (uint32_t)s, 1.0f);
        fill(b, cols, 30u + (uint32_t)s, 0.0f);
        tlm_tensor *a = tensor(ctx, ndims[s], shapes[s], x);
        tlm_tensor *gain = vector(ctx, cols, g), *bias = vector(ctx, cols, b);
        /* every combination of gain and bias */
        for (int form = 0; form < 4; form++) {
            const int use_gain = form & 1, use_bias = form & 2;
            tlm_tensor *out = NULL;
            assert_int_equal(tlm_layer_norm(&out, a, use_gain ? gain : NULL,
                                            use_bias ? bias : NULL, 1e-5f),
                             TLM_OK);
            assert_int_equal(tlm_tensor_ndim(out), ndims[s]);
            assert_int_equal(tlm_tensor_numel(out), n);
            get(out, got);
            ref_layer_norm(want, x, use_gain ? g : NULL, use_bias ? b : NULL,
                           rows, cols, 1e-5);
            assert_close(got, want, n, TOL);
        }
    }
    tlm_context_free(ctx);
}

/* Rows far from zero: the variance is taken from deviations, not from
 * mean(x^2) - mean(x)^2, which would lose every digit here. */
static void layer_norm_is_stable_far_from_zero(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const float x[4] = {10001, 10002, 10003, 10004};
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_layer_norm(&out, vector(ctx, 4, x), NULL, NULL, 1e-12f),
                     TLM_OK);
    float got[4];
    get(out, got);
    const double want[4] = {-1.3416407865, -0.4472135955, 0.4472135955,
                            1.3416407865};
    assert_close(got, want, 4, TOL);
    tlm_context_free(ctx);
}

/* ---- RMS norm ---- */

static void rms_norm_hand_computed(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    /* mean(x^2) = 12.5: x / sqrt(12.5) */
    const float x[2] = {3, 4}, g[2] = {2, -0.5f};
    tlm_tensor *a = vector(ctx, 2, x), *out = NULL;
    assert_int_equal(tlm_rms_norm(&out, a, NULL, 1e-12f), TLM_OK);
    float got[2];
    get(out, got);
    const double want[2] = {0.8485281374, 1.1313708499};
    assert_close(got, want, 2, TOL);
    assert_int_equal(tlm_rms_norm(&out, a, vector(ctx, 2, g), 1e-12f), TLM_OK);
    get(out, got);
    const double want_gain[2] = {1.6970562748, -0.5656854249};
    assert_close(got, want_gain, 2, TOL);
    /* one element with eps = 1: 2 / sqrt(4 + 1) */
    const float one[1] = {2};
    assert_int_equal(tlm_rms_norm(&out, vector(ctx, 1, one), NULL, 1.0f), TLM_OK);
    get(out, got);
    const double want_one[1] = {0.894427191};
    assert_close(got, want_one, 1, TOL);
    tlm_context_free(ctx);
}

static void rms_norm_matches_reference(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shapes[][4] = {{7}, {3, 13}, {2, 3, 33}, {1, 2, 3, 9}, {5, 1}};
    const int32_t ndims[] = {1, 2, 3, 4, 2};
    float x[MAX_N], g[64], got[MAX_N];
    double want[MAX_N];
    for (int s = 0; s < 5; s++) {
        int64_t n = 1;
        for (int32_t i = 0; i < ndims[s]; i++)
            n *= shapes[s][i];
        const int64_t cols = shapes[s][ndims[s] - 1], rows = n / cols;
        fill(x, n, 40u + (uint32_t)s, 0.5f);
        fill(g, cols, 50u + (uint32_t)s, 1.0f);
        tlm_tensor *a = tensor(ctx, ndims[s], shapes[s], x);
        tlm_tensor *gain = vector(ctx, cols, g);
        for (int use_gain = 0; use_gain < 2; use_gain++) {
            tlm_tensor *out = NULL;
            assert_int_equal(tlm_rms_norm(&out, a, use_gain ? gain : NULL, 1e-6f),
                             TLM_OK);
            get(out, got);
            ref_rms_norm(want, x, use_gain ? g : NULL, rows, cols, 1e-6);
            assert_close(got, want, n, TOL);
        }
    }
    tlm_context_free(ctx);
}

/* ---- batch norm ---- */

static void batch_norm_hand_computed(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    /* two features over three rows: column 0 = {1, 2, 3} (mean 2, biased
     * variance 2/3, unbiased 1), column 1 = {0, 0, 6} (mean 2, biased 8,
     * unbiased 12). */
    const int64_t s32[2] = {3, 2};
    const float x[6] = {1, 0, 2, 0, 3, 6};
    const float rm0[2] = {1, -1}, rv0[2] = {2, 4};
    tlm_tensor *a = tensor(ctx, 2, s32, x);
    tlm_tensor *rm = vector(ctx, 2, rm0), *rv = vector(ctx, 2, rv0);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, rm, rv, 0.25f, 1e-12f),
                     TLM_OK);
    float got[6];
    get(out, got);
    const double r23 = 1.2247448714, r8 = 0.7071067812; /* 1/sqrt(2/3), 2/sqrt(8) */
    const double want[6] = {-r23, -r8, 0, -r8, r23, 2 * r8};
    assert_close(got, want, 6, TOL);
    /* running = 0.75 running + 0.25 batch, variance unbiased */
    float running[2];
    get(rm, running);
    const double want_rm[2] = {0.75 * 1 + 0.25 * 2, 0.75 * -1 + 0.25 * 2};
    assert_close(running, want_rm, 2, TOL);
    get(rv, running);
    const double want_rv[2] = {0.75 * 2 + 0.25 * 1, 0.75 * 4 + 0.25 * 12};
    assert_close(running, want_rv, 2, TOL);

    /* evaluation mode: (x - running_mean) / sqrt(running_var + eps), and
     * the running statistics stay as they are */
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    const float g[2] = {2, 1}, b[2] = {0, 10};
    assert_int_equal(tlm_batch_norm(&out, a, vector(ctx, 2, g), vector(ctx, 2, b),
                                    rm, rv, 0.25f, 1e-12f), TLM_OK);
    get(out, got);
    const double s0 = 1.0 / sqrt(1.75), s1 = 1.0 / sqrt(6.0);
    const double want_eval[6] = {
        2 * (1 - 1.25) * s0, (0 + 0.25) * s1 + 10,
        2 * (2 - 1.25) * s0, (0 + 0.25) * s1 + 10,
        2 * (3 - 1.25) * s0, (6 + 0.25) * s1 + 10};
    assert_close(got, want_eval, 6, TOL);
    get(rm, running);
    assert_close(running, want_rm, 2, TOL);
    get(rv, running);
    assert_close(running, want_rv, 2, TOL);
    tlm_context_free(ctx);
}

static void batch_norm_matches_reference(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shapes[][3] = {{2, 1, 0}, {7, 3, 0}, {2, 5, 13}, {33, 1, 0},
                                 {3, 3, 9}};
    const int32_t ndims[] = {2, 2, 3, 2, 3};
    const float momenta[] = {0.1f, 0.0f, 1.0f, 0.5f, 0.9f};
    float x[MAX_N], g[64], b[64], rm[64], rv[64], got[MAX_N], running[64];
    double want[MAX_N], mean[64], var[64], want_rm[64], want_rv[64];
    for (int s = 0; s < 5; s++) {
        int64_t n = 1;
        for (int32_t i = 0; i < ndims[s]; i++)
            n *= shapes[s][i];
        const int64_t cols = shapes[s][ndims[s] - 1], rows = n / cols;
        const double m = (double)momenta[s];
        fill(x, n, 60u + (uint32_t)s, 0.3f);
        fill(g, cols, 70u + (uint32_t)s, 1.0f);
        fill(b, cols, 80u + (uint32_t)s, 0.0f);
        fill(rm, cols, 90u + (uint32_t)s, 0.0f);
        fill(rv, cols, 100u + (uint32_t)s, 3.0f); /* in [1, 5] */
        tlm_tensor *a = tensor(ctx, ndims[s], shapes[s], x);
        tlm_tensor *gain = vector(ctx, cols, g), *bias = vector(ctx, cols, b);
        tlm_tensor *t_rm = vector(ctx, cols, rm), *t_rv = vector(ctx, cols, rv);
        tlm_tensor *out = NULL;
        ref_column_stats(mean, var, x, rows, cols);

        /* training, with every combination of gain and bias */
        for (int form = 0; form < 4; form++) {
            const int use_gain = form & 1, use_bias = form & 2;
            assert_int_equal(tlm_batch_norm(&out, a, use_gain ? gain : NULL,
                                            use_bias ? bias : NULL, NULL, NULL,
                                            momenta[s], 1e-5f),
                             TLM_OK);
            get(out, got);
            ref_batch_norm(want, x, use_gain ? g : NULL, use_bias ? b : NULL,
                           mean, var, rows, cols, 1e-5);
            assert_close(got, want, n, TOL);
        }
        /* training with running statistics: same result, one update */
        assert_int_equal(tlm_batch_norm(&out, a, gain, bias, t_rm, t_rv,
                                        momenta[s], 1e-5f), TLM_OK);
        get(out, got);
        ref_batch_norm(want, x, g, b, mean, var, rows, cols, 1e-5);
        assert_close(got, want, n, TOL);
        for (int64_t c = 0; c < cols; c++) {
            want_rm[c] = (1 - m) * (double)rm[c] + m * mean[c];
            want_rv[c] = (1 - m) * (double)rv[c] +
                         m * var[c] * (double)rows / (double)(rows - 1);
        }
        get(t_rm, running);
        assert_close(running, want_rm, cols, TOL);
        get(t_rv, running);
        assert_close(running, want_rv, cols, TOL);

        /* evaluation with the updated running statistics */
        assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
        assert_int_equal(tlm_batch_norm(&out, a, gain, bias, t_rm, t_rv,
                                        momenta[s], 1e-5f), TLM_OK);
        get(out, got);
        ref_batch_norm(want, x, g, b, want_rm, want_rv, rows, cols, 1e-5);
        assert_close(got, want, n, TOL);
        assert_int_equal(tlm_context_set_training(ctx, 1), TLM_OK);
    }
    tlm_context_free(ctx);
}

/* Momentum 0 keeps the running statistics; momentum 1 replaces them by the
 * batch's. */
static void batch_norm_momentum_limits(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s42[2] = {4, 2};
    const float x[8] = {1, 5, 3, 5, 5, 5, 7, 9};
    const float rm0[2] = {0.5f, -0.5f}, rv0[2] = {2, 3};
    tlm_tensor *a = tensor(ctx, 2, s42, x), *out = NULL;
    tlm_tensor *rm = vector(ctx, 2, rm0), *rv = vector(ctx, 2, rv0);
    float running[2];
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, rm, rv, 0.0f, 1e-5f), TLM_OK);
    get(rm, running);
    assert_close_f(running, rm0, 2, 0);
    get(rv, running);
    assert_close_f(running, rv0, 2, 0);
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, rm, rv, 1.0f, 1e-5f), TLM_OK);
    /* column 0 {1,3,5,7}: mean 4, unbiased var 20/3; column 1 {5,5,5,9}:
     * mean 6, unbiased var 12/3 = 4 */
    get(rm, running);
    const double want_rm[2] = {4, 6}, want_rv[2] = {20.0 / 3.0, 4};
    assert_close(running, want_rm, 2, TOL);
    get(rv, running);
    assert_close(running, want_rv, 2, TOL);
    tlm_context_free(ctx);
}

/* The mode is read at each forward: a graph built in training mode and
 * re-run after tlm_context_set_training(ctx, 0) normalizes with the running
 * statistics, and its backward pass is then the affine one. */
static void batch_norm_mode_is_read_at_each_forward(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s33[2] = {3, 3};
    const float x[9] = {1, 2, -1, 0, 4, 2, 2, 0, 3};
    const float g[3] = {1.5f, -1, 0.5f}, w[9] = {1, -2, 3, 0.5f, 1, -1, 2, 2, -3};
    const float rm0[3] = {0.5f, 1, -1}, rv0[3] = {1, 2, 0.5f};
    tlm_tensor *a = tensor(ctx, 2, s33, x), *gain = vector(ctx, 3, g);
    tlm_tensor *rm = vector(ctx, 3, rm0), *rv = vector(ctx, 3, rv0);
    tlm_tensor *weights = tensor(ctx, 2, s33, w);
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    tlm_tensor *out = NULL, *weighted = NULL, *loss = NULL;
    assert_int_equal(tlm_batch_norm(&out, a, gain, NULL, rm, rv, 0.5f, 1e-5f), TLM_OK);
    assert_int_equal(tlm_mul(&weighted, out, weights), TLM_OK);
    assert_int_equal(tlm_sum(&loss, weighted), TLM_OK);

    /* the running statistics after the one training forward */
    float rm1[3], rv1[3];
    get(rm, rm1);
    get(rv, rv1);
    double mean[3], var[3], want[9], want_rm[3], want_rv[3];
    ref_column_stats(mean, var, x, 3, 3);
    for (int c = 0; c < 3; c++) {
        want_rm[c] = 0.5 * (double)rm0[c] + 0.5 * mean[c];
        want_rv[c] = 0.5 * (double)rv0[c] + 0.5 * var[c] * 1.5;
    }
    assert_close(rm1, want_rm, 3, TOL);
    assert_close(rv1, want_rv, 3, TOL);

    /* switch to evaluation and re-run the recorded graph */
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    float got[9];
    get(out, got);
    double rm1d[3], rv1d[3];
    for (int c = 0; c < 3; c++) {
        rm1d[c] = (double)rm1[c];
        rv1d[c] = (double)rv1[c];
    }
    ref_batch_norm(want, x, g, NULL, rm1d, rv1d, 3, 3, 1e-5);
    assert_close(got, want, 9, TOL);
    /* evaluation leaves the running statistics alone */
    float running[3];
    get(rm, running);
    assert_close_f(running, rm1, 3, 0);
    get(rv, running);
    assert_close_f(running, rv1, 3, 0);

    /* backward of the evaluation forward: d loss / d a = w * gain / sqrt(rv + eps) */
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[9];
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, 9), TLM_OK);
    for (int i = 0; i < 9; i++)
        want[i] = (double)w[i] * (double)g[i % 3] / sqrt(rv1d[i % 3] + 1e-5);
    assert_close(grad, want, 9, TOL);

    /* and back to training: batch statistics again, whose gradient sums
     * to zero over each column (a shift of a column changes nothing) */
    assert_int_equal(tlm_context_set_training(ctx, 1), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    get(out, got);
    ref_batch_norm(want, x, g, NULL, mean, var, 3, 3, 1e-5);
    assert_close(got, want, 9, TOL);
    assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, 9), TLM_OK);
    for (int c = 0; c < 3; c++)
        assert_true(fabs((double)grad[c] + (double)grad[3 + c] +
                         (double)grad[6 + c]) < 1e-5);
    tlm_context_free(ctx);
}

/* A re-run whose mode the graph cannot serve fails with a status and a
 * message, and the graph works again once the mode is restored. */
static void batch_norm_rerun_in_unusable_mode_fails(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s17[2] = {1, 7}, s27[2] = {2, 7};
    float x[14], ones[7] = {1, 1, 1, 1, 1, 1, 1}, zeros[7] = {0};
    fill(x, 14, 7u, 0.0f);
    tlm_tensor *one_row = tensor(ctx, 2, s17, x), *two_rows = tensor(ctx, 2, s27, x);
    tlm_tensor *rm = vector(ctx, 7, zeros), *rv = vector(ctx, 7, ones);

    /* built in evaluation mode with one row; training needs two */
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_batch_norm(&out, one_row, NULL, NULL, rm, rv, 0.1f, 1e-5f),
                     TLM_OK);
    assert_int_equal(tlm_context_set_training(ctx, 1), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_E_SHAPE);
    assert_non_null(strstr(tlm_last_error(), "tlm_batch_norm"));
    assert_non_null(strstr(tlm_context_last_error(ctx), "at least 2"));
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);

    /* built in training mode without running statistics; evaluation
     * needs them */
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    assert_int_equal(tlm_context_set_training(ctx, 1), TLM_OK);
    assert_int_equal(tlm_batch_norm(&out, two_rows, NULL, NULL, NULL, NULL, 0.1f, 1e-5f),
                     TLM_OK);
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_batch_norm"));
    assert_non_null(strstr(tlm_last_error(), "running_mean"));

    /* a running variance that went negative between runs */
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    assert_int_equal(tlm_batch_norm(&out, two_rows, NULL, NULL, rm, rv, 0.1f, 1e-5f),
                     TLM_OK);
    float bad[7] = {1, 1, 1, 1, 1, -1, 1};
    assert_int_equal(tlm_tensor_set_f32(rv, bad, 7), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_E_RANGE);
    assert_non_null(strstr(tlm_last_error(), "running_var[5]"));

    /* a running statistic freed after the graph was built is noticed
     * (they are not inputs of the tape, so batch norm checks them) */
    assert_int_equal(tlm_tensor_set_f32(rv, ones, 7), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    tlm_tensor_free(rm);
    assert_int_equal(tlm_context_forward(ctx), TLM_E_STATE);
    assert_non_null(strstr(tlm_last_error(), "tlm_batch_norm: running_mean"));
    tlm_context_free(ctx);
}

/* The running statistics are buffers: they never get a gradient and do
 * not make the result require one. */
static void batch_norm_running_stats_are_not_differentiated(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s43[2] = {4, 3};
    float x[12], zeros[3] = {0}, ones[3] = {1, 1, 1};
    fill(x, 12, 3u, 0.0f);
    tlm_tensor *a = tensor(ctx, 2, s43, x);
    tlm_tensor *rm = vector(ctx, 3, zeros), *rv = vector(ctx, 3, ones);
    assert_int_equal(tlm_tensor_set_requires_grad(rm, 1), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(rv, 1), TLM_OK);
    tlm_tensor *out = NULL, *loss = NULL;
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, rm, rv, 0.1f, 1e-5f), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(out), 0);

    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, rm, rv, 0.1f, 1e-5f), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(out), 1);
    assert_int_equal(tlm_sum(&loss, out), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[3];
    assert_int_equal(tlm_tensor_get_grad_f32(rm, grad, 3), TLM_OK);
    for (int c = 0; c < 3; c++)
        assert_true(grad[c] == 0.0f);
    assert_int_equal(tlm_tensor_get_grad_f32(rv, grad, 3), TLM_OK);
    for (int c = 0; c < 3; c++)
        assert_true(grad[c] == 0.0f);
    tlm_context_free(ctx);
}

/* Every forward in training mode updates the running statistics, the
 * re-runs of tlm_context_forward() included, with gradients recorded or
 * not. */
static void batch_norm_updates_at_every_forward(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s52[2] = {5, 2};
    float x[10], zeros[2] = {0, 0}, ones[2] = {1, 1};
    fill(x, 10, 5u, 1.0f);
    tlm_tensor *a = tensor(ctx, 2, s52, x);
    tlm_tensor *rm = vector(ctx, 2, zeros), *rv = vector(ctx, 2, ones);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 0), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, rm, rv, 0.5f, 1e-5f), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    double mean[2], var[2], want_rm[2], want_rv[2];
    ref_column_stats(mean, var, x, 5, 2);
    for (int c = 0; c < 2; c++) {
        /* twice: r1 = r0/2 + b/2, r2 = r1/2 + b/2 */
        want_rm[c] = 0.25 * 0.0 + 0.75 * mean[c];
        want_rv[c] = 0.25 * 1.0 + 0.75 * var[c] * 5.0 / 4.0;
    }
    float running[2];
    get(rm, running);
    assert_close(running, want_rm, 2, TOL);
    get(rv, running);
    assert_close(running, want_rv, 2, TOL);
    tlm_context_free(ctx);
}

/* ---- re-running the graph with new input values ---- */

static void rerun_uses_new_values(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s37[2] = {3, 7};
    float x[21], x2[21], g[7], b[7], got[21];
    double want[21], mean[7], var[7];
    fill(x, 21, 1u, 0.0f);
    fill(x2, 21, 2u, -0.5f);
    fill(g, 7, 3u, 1.0f);
    fill(b, 7, 4u, 0.0f);
    tlm_tensor *a = tensor(ctx, 2, s37, x);
    tlm_tensor *gain = vector(ctx, 7, g), *bias = vector(ctx, 7, b);
    tlm_tensor *ln = NULL, *rms = NULL, *bn = NULL;
    assert_int_equal(tlm_layer_norm(&ln, a, gain, bias, 1e-5f), TLM_OK);
    assert_int_equal(tlm_rms_norm(&rms, a, gain, 1e-5f), TLM_OK);
    assert_int_equal(tlm_batch_norm(&bn, a, gain, bias, NULL, NULL, 0.1f, 1e-5f),
                     TLM_OK);

    /* new input and new gain, then one re-run of the whole tape */
    assert_int_equal(tlm_tensor_set_f32(a, x2, 21), TLM_OK);
    g[3] = -2.0f;
    assert_int_equal(tlm_tensor_set_f32(gain, g, 7), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);

    get(ln, got);
    ref_layer_norm(want, x2, g, b, 3, 7, 1e-5);
    assert_close(got, want, 21, TOL);
    get(rms, got);
    ref_rms_norm(want, x2, g, 3, 7, 1e-5);
    assert_close(got, want, 21, TOL);
    get(bn, got);
    ref_column_stats(mean, var, x2, 3, 7);
    ref_batch_norm(want, x2, g, b, mean, var, 3, 7, 1e-5);
    assert_close(got, want, 21, TOL);
    tlm_context_free(ctx);
}

/* Re-running allocates nothing: the arena does not grow. */
static void rerun_allocates_nothing(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t s57[2] = {5, 7};
    float x[35], zeros[7] = {0}, ones[7] = {1, 1, 1, 1, 1, 1, 1};
    fill(x, 35, 9u, 0.0f);
    tlm_tensor *a = tensor(ctx, 2, s57, x);
    tlm_tensor *rm = vector(ctx, 7, zeros), *rv = vector(ctx, 7, ones);
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    tlm_tensor *ln = NULL, *rms = NULL, *bn = NULL, *s1 = NULL, *s2 = NULL,
               *total = NULL, *loss = NULL;
    assert_int_equal(tlm_layer_norm(&ln, a, NULL, NULL, 1e-5f), TLM_OK);
    assert_int_equal(tlm_rms_norm(&rms, ln, NULL, 1e-5f), TLM_OK);
    assert_int_equal(tlm_batch_norm(&bn, rms, NULL, NULL, rm, rv, 0.1f, 1e-5f), TLM_OK);
    assert_int_equal(tlm_mul(&s1, bn, bn), TLM_OK);
    assert_int_equal(tlm_add(&s2, s1, ln), TLM_OK);
    assert_int_equal(tlm_mul(&total, s2, a), TLM_OK);
    assert_int_equal(tlm_sum(&loss, total), TLM_OK);
    const int64_t bytes = tlm_context_arena_bytes(ctx);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tlm_context_forward(ctx), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
    }
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_int_equal(tlm_context_arena_bytes(ctx), bytes);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layer_norm_hand_computed),
        cmocka_unit_test(layer_norm_matches_reference),
        cmocka_unit_test(layer_norm_is_stable_far_from_zero),
        cmocka_unit_test(rms_norm_hand_computed),
        cmocka_unit_test(rms_norm_matches_reference),
        cmocka_unit_test(batch_norm_hand_computed),
        cmocka_unit_test(batch_norm_matches_reference),
        cmocka_unit_test(batch_norm_momentum_limits),
        cmocka_unit_test(batch_norm_mode_is_read_at_each_forward),
        cmocka_unit_test(batch_norm_rerun_in_unusable_mode_fails),
        cmocka_unit_test(batch_norm_running_stats_are_not_differentiated),
        cmocka_unit_test(batch_norm_updates_at_every_forward),
        cmocka_unit_test(rerun_uses_new_values),
        cmocka_unit_test(rerun_allocates_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
