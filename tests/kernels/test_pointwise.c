/*
 * Every entry of every pointwise table the machine can run (AVX2,
 * AVX-512, NEON: kernels/pointwise.h), whatever TLM_CPU or the CPU mask
 * say, against the scalar table on random inputs, at rows x width for
 * every pair of the sizes 1, 3, 7, 15, 33, 100, 1000 up to 100000
 * elements (elementwise entries: n = each size and each such product).
 *
 * Tolerances (|got - want| <= atol + rtol |want|, or a stated scale):
 *   exp                  rtol 3e-7 against double exp() on [-87, 88]
 *                        (measured maximum: printed by the test)
 *   activations          1e-5 (1 + |want|): inputs in [-8, 8]
 *   norms: out, dx       3e-5 (1 + |want|); mean, rstd rtol 1e-5
 *           dgain, dbias 1e-5 (1 + sum over rows of |term|)
 *   softmax forward      rtol 1e-5, atol 1e-9; backward 1e-5 (1 + |want|)
 *   cross-entropy        lse 1e-5 (1 + |lse|); gradient
 *                        1e-5 |want| + 1e-6 |factor|
 *   AdamW, SGD           2e-6 (1 + |want|) on p, m, v after 3 steps
 *   elementwise          1e-6 (1 + |want|) (one rounding of a fused
 *                        multiply-add against two)
 * The sums of the SIMD rows are in float (the references' often in
 * double), which is what the norm and softmax tolerances allow for.
 *
 * Determinism: each entry is also run on the same data cut into ranges at
 * odd places (as the thread pool cuts it), and must give the same bits.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kernels/dispatch.h"
#include "kernels/pointwise.h"

static const int64_t sizes[] = {1, 3, 7, 15, 33, 100, 1000};
#define N_SIZES ((int)(sizeof sizes / sizeof sizes[0]))
#define MAX_ELEMENTS 100000

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float uniform(float lo, float hi) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    const double u = (double)(rng_state >> 40) / (double)(1ull << 24);
    return (float)((double)lo + u * (double)(hi - lo));
}

static float *random_floats(int64_t count, float lo, float hi) {
    float *x = malloc((size_t)(count > 0 ? count : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < count; i++)
        x[i] = uniform(lo, hi);
    return x;
}

static float *copy_floats(const float *x, int64_t count) {
    float *y = malloc((size_t)(count > 0 ? count : 1) * sizeof *y);
    assert_non_null(y);
    memcpy(y, x, (size_t)count * sizeof *y);
    return y;
}

/* got against want: |difference| <= atol + rtol |want| (NaN only where
 * the reference has NaN). */
static void check_close(const char *isa, const char *what, int64_t rows,
                        int64_t width, const float *got, const float *want,
                        int64_t n, double rtol, double atol) {
    for (int64_t i = 0; i < n; i++) {
        const double g = (double)got[i], w = (double)want[i];
        if (isnan(w) && isnan(g))
            continue;
        const double tolerance = atol + rtol * fabs(w);
        if (!(fabs(g - w) <= tolerance)) {
            print_error("%s %s rows=%lld width=%lld: [%lld] = %.9g, reference "
                        "%.9g (|difference| %.3g > tolerance %.3g)\n",
                        isa, what, (long long)rows, (long long)width,
                        (long long)i, g, w, fabs(g - w), tolerance);
            fail();
        }
    }
}

static void check_same_bits(const char *isa, const char *what,
                            const float *a, const float *b, int64_t n) {
    if (memcmp(a, b, (size_t)n * sizeof *a) != 0) {
        print_error("%s %s: the result depends on how the range is cut\n",
                    isa, what);
        fail();
    }
}

/* The SIMD tables this machine runs (scalar excluded), then NULL. */
static int simd_tables(const tlmi_kernels *out[TLMI_ISA_COUNT]) {
    int count = 0;
    for (int isa = TLMI_ISA_SCALAR + 1; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *k = tlmi_kernels_for(isa);
        if (k != NULL)
            out[count++] = k;
    }
    return count;
}

/* Cuts [0, n) at two odd places, as a 3-thread pool might. */
static void cuts(int64_t n, int64_t at[4]) {
    at[0] = 0;
    at[1] = n / 3;
    at[2] = n / 3 + (n - n / 3) / 2 + (n > 10 ? 1 : 0);
    if (at[2] > n)
        at[2] = n;
    at[3] = n;
}

/* ---- exp ---------------------------------------------------------------- */

static void test_exp(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    const int64_t n = 200001;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    assert_non_null(x);
    assert_non_null(y);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(-87.0 + 175.0 * (double)i / (double)(n - 1));
    for (int t = 0; t < count; t++) {
        const tlmi_pointwise_kernels *k = tables[t]->pointwise;
        k->exp(y, x, n);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double want = exp((double)x[i]);
            const double error = fabs((double)y[i] - want) / want;
            if (isnan(error) || error > worst) /* a NaN stays the worst */
                worst = error;
        }
        print_message("%s exp: maximum relative error %.3g on [-87, 88]\n",
                      tables[t]->name, worst);
        assert_true(worst <= 3e-7);
        /* the ends of the range, and NaN */
        const float special[6] = {-INFINITY, -200.0f, 200.0f, INFINITY, NAN,
                                  0.0f};
        float out[6];
        k->exp(out, special, 6);
        assert_true(out[0] == 0.0f && out[1] == 0.0f);
        assert_true(isinf(out[2]) && out[2] > 0.0f);
        assert_true(isinf(out[3]) && out[3] > 0.0f);
        assert_true(isnan(out[4]));
        assert_true(out[5] == 1.0f);
    }
    free(x);
    free(y);
}

/* ---- activations -------------------------------------------------------- */

enum { RELU, GELU, SILU, SWIGLU, N_ACT };
static const char *const act_names[N_ACT] = {"relu", "gelu_tanh", "silu",
                                             "swiglu"};

/* Forward and backward of activation `which` of table k over n elements;
 * dx0 is the gradient's starting value. */
static void run_act(const tlmi_pointwise_kernels *k, int which, float *out,
                    float *dx, float *dup, const float *x, const float *up,
                    const float *dout, int64_t n) {
    switch (which) {
    case RELU:
        k->relu_forward(out, x, n);
        k->relu_backward(dx, dout, x, n);
        break;
    case GELU:
        k->gelu_tanh_forward(out, x, n);
        k->gelu_tanh_backward(dx, dout, x, n);
        break;
    case SILU:
        k->silu_forward(out, x, n);
        k->silu_backward(dx, dout, x, n);
        break;
    default:
        k->swiglu_forward(out, x, up, n);
        k->swiglu_backward(dx, dup, dout, x, up, n);
        break;
    }
}

static void test_activations(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    const tlmi_pointwise_kernels *ref = &tlmi_pointwise_scalar;
    for (int a = 0; a < N_SIZES; a++)
        for (int b = 0; b < N_SIZES; b++) {
            const int64_t n = sizes[a] * sizes[b];
            if (n > MAX_ELEMENTS)
                continue;
            float *x = random_floats(n, -8.0f, 8.0f);
            float *up = random_floats(n, -2.0f, 2.0f);
            float *dout = random_floats(n, -1.0f, 1.0f);
            float *dx0 = random_floats(n, -0.01f, 0.01f);
            float *want = random_floats(n, 0, 0), *got = random_floats(n, 0, 0);
            float *cut = random_floats(n, 0, 0);
            for (int which = 0; which < N_ACT; which++) {
                float *want_dx = copy_floats(dx0, n), *want_dup = copy_floats(dx0, n);
                run_act(ref, which, want, want_dx, want_dup, x, up, dout, n);
                for (int t = 0; t < count; t++) {
                    const tlmi_pointwise_kernels *k = tables[t]->pointwise;
                    float *dx = copy_floats(dx0, n), *dup = copy_floats(dx0, n);
                    run_act(k, which, got, dx, dup, x, up, dout, n);
                    char what[64];
                    snprintf(what, sizeof what, "%s forward", act_names[which]);
                    check_close(tables[t]->name, what, sizes[a], sizes[b], got,
                                want, n, 1e-5, 1e-5);
                    snprintf(what, sizeof what, "%s backward", act_names[which]);
                    check_close(tables[t]->name, what, sizes[a], sizes[b], dx,
                                want_dx, n, 1e-5, 1e-5);
                    if (which == SWIGLU)
                        check_close(tables[t]->name, "swiglu backward (up)",
                                    sizes[a], sizes[b], dup, want_dup, n, 1e-5,
                                    1e-5);
                    /* the same in three ranges */
                    float *dx2 = copy_floats(dx0, n), *dup2 = copy_floats(dx0, n);
                    int64_t at[4];
                    cuts(n, at);
                    for (int p = 0; p < 3; p++)
                        if (at[p + 1] > at[p])
                            run_act(k, which, cut + at[p], dx2 + at[p],
                                    dup2 + at[p], x + at[p], up + at[p],
                                    dout + at[p], at[p + 1] - at[p]);
                    check_same_bits(tables[t]->name, act_names[which], got, cut,
                                    n);
                    check_same_bits(tables[t]->name, act_names[which], dx, dx2,
                                    n);
                    check_same_bits(tables[t]->name, act_names[which], dup,
                                    dup2, n);
                    free(dx), free(dup), free(dx2), free(dup2);
                }
                free(want_dx), free(want_dup);
            }
            free(x), free(up), free(dout), free(dx0), free(want), free(got);
            free(cut);
        }
}

/* ---- norms -------------------------------------------------------------- */

/* Reference-free scale of a parameter-gradient column: 1 + the sum over
 * rows of |dout| (|x - mean| rstd + 1). */
static void param_scale(float *scale, const float *dout, const float *x,
                        const float *mean, const float *rstd, int64_t rows,
                        int64_t cols) {
    for (int64_t c = 0; c < cols; c++) {
        double s = 1.0;
        for (int64_t r = 0; r < rows; r++) {
            const double m = mean != NULL ? (double)mean[r] : 0.0;
            s += fabs((double)dout[r * cols + c]) *
                 (fabs((double)x[r * cols + c] - m) * (double)rstd[r] + 1.0);
        }
        scale[c] = (float)s;
    }
}

static void check_scaled(const char *isa, const char *what, int64_t rows,
                         int64_t cols, const float *got, const float *want,
                         const float *scale, double tol) {
    for (int64_t c = 0; c < cols; c++) {
        const double e = fabs((double)got[c] - (double)want[c]);
        if (!(e <= tol * (double)scale[c])) {
            print_error("%s %s rows=%lld width=%lld: [%lld] = %.9g, reference "
                        "%.9g (|difference| %.3g > %.3g)\n",
                        isa, what, (long long)rows, (long long)cols,
                        (long long)c, (double)got[c], (double)want[c], e,
                        tol * (double)scale[c]);
            fail();
        }
    }
}

static void norm_case(const tlmi_kernels *t, int rms, int with_gain,
                      int64_t rows, int64_t cols) {
    const tlmi_pointwise_kernels *ref = &tlmi_pointwise_scalar,
                                 *k = t->pointwise;
    const int64_t n = rows * cols;
    float *x = random_floats(n, 2.0f, 4.0f); /* a mean far from 0 */
    float *gain = with_gain ? random_floats(cols, 0.5f, 1.5f) : NULL;
    float *bias = with_gain ? random_floats(cols, -0.5f, 0.5f) : NULL;
    float *dout = random_floats(n, -1.0f, 1.0f);
    float *dx0 = random_floats(n, -0.01f, 0.01f);
    float *dg0 = random_floats(cols, -0.01f, 0.01f);
    float *want = random_floats(n, 0, 0), *got = random_floats(n, 0, 0);
    float *mean_w = random_floats(rows, 0, 0), *rstd_w = random_floats(rows, 0, 0);
    float *mean_g = random_floats(rows, 0, 0), *rstd_g = random_floats(rows, 0, 0);
    float *dx_w = copy_floats(dx0, n), *dx_g = copy_floats(dx0, n);
    float *dg_w = copy_floats(dg0, cols), *dg_g = copy_floats(dg0, cols);
    float *db_w = copy_floats(dg0, cols), *db_g = copy_floats(dg0, cols);
    float *scale = random_floats(cols, 0, 0);
    const char *name = rms ? "rms_norm" : "layer_norm";
    char what[64];
    if (rms) {
        ref->rms_norm_forward(want, rstd_w, x, gain, rows, cols, 1e-5f);
        k->rms_norm_forward(got, rstd_g, x, gain, rows, cols, 1e-5f);
        ref->rms_norm_backward_dx(dx_w, dout, x, gain, rstd_w, rows, cols);
        k->rms_norm_backward_dx(dx_g, dout, x, gain, rstd_w, rows, cols);
        ref->rms_norm_backward_params(dg_w, dout, x, rstd_w, rows, cols, cols);
        k->rms_norm_backward_params(dg_g, dout, x, rstd_w, rows, cols, cols);
        param_scale(scale, dout, x, NULL, rstd_w, rows, cols);
    } else {
        ref->layer_norm_forward(want, mean_w, rstd_w, x, gain, bias, rows, cols,
                                1e-5f);
        k->layer_norm_forward(got, mean_g, rstd_g, x, gain, bias, rows, cols,
                              1e-5f);
        check_close(t->name, "layer_norm mean", rows, cols, mean_g, mean_w,
                    rows, 1e-5, 0.0);
        ref->layer_norm_backward_dx(dx_w, dout, x, gain, mean_w, rstd_w, rows,
                                    cols);
        k->layer_norm_backward_dx(dx_g, dout, x, gain, mean_w, rstd_w, rows,
                                  cols);
        ref->layer_norm_backward_params(dg_w, db_w, dout, x, mean_w, rstd_w,
                                        rows, cols, cols);
        k->layer_norm_backward_params(dg_g, db_g, dout, x, mean_w, rstd_w, rows,
                                      cols, cols);
        param_scale(scale, dout, x, mean_w, rstd_w, rows, cols);
        snprintf(what, sizeof what, "%s dbias", name);
        check_scaled(t->name, what, rows, cols, db_g, db_w, scale, 1e-5);
    }
    snprintf(what, sizeof what, "%s forward", name);
    check_close(t->name, what, rows, cols, got, want, n, 3e-5, 3e-5);
    snprintf(what, sizeof what, "%s rstd", name);
    check_close(t->name, what, rows, cols, rstd_g, rstd_w, rows, 1e-5, 0.0);
    snprintf(what, sizeof what, "%s backward dx", name);
    check_close(t->name, what, rows, cols, dx_g, dx_w, n, 3e-5, 3e-5);
    snprintf(what, sizeof what, "%s backward dgain", name);
    check_scaled(t->name, what, rows, cols, dg_g, dg_w, scale, 1e-5);

    /* Rows in three ranges, columns of the parameter gradients in three
     * ranges: the same bits. */
    int64_t at[4];
    float *cut = random_floats(n, 0, 0), *rstd_c = random_floats(rows, 0, 0);
    float *mean_c = random_floats(rows, 0, 0);
    float *dx_c = copy_floats(dx0, n), *dg_c = copy_floats(dg0, cols);
    float *db_c = copy_floats(dg0, cols);
    cuts(rows, at);
    for (int p = 0; p < 3; p++) {
        const int64_t r0 = at[p], nr = at[p + 1] - at[p];
        if (nr == 0)
            continue;
        if (rms) {
            k->rms_norm_forward(cut + r0 * cols, rstd_c + r0, x + r0 * cols,
                                gain, nr, cols, 1e-5f);
            k->rms_norm_backward_dx(dx_c + r0 * cols, dout + r0 * cols,
                                    x + r0 * cols, gain, rstd_w + r0, nr, cols);
        } else {
            k->layer_norm_forward(cut + r0 * cols, mean_c + r0, rstd_c + r0,
                                  x + r0 * cols, gain, bias, nr, cols, 1e-5f);
            k->layer_norm_backward_dx(dx_c + r0 * cols, dout + r0 * cols,
                                      x + r0 * cols, gain, mean_w + r0,
                                      rstd_w + r0, nr, cols);
        }
    }
    cuts(cols, at);
    for (int p = 0; p < 3; p++) {
        const int64_t c0 = at[p], nc = at[p + 1] - at[p];
        if (nc == 0)
            continue;
        if (rms)
            k->rms_norm_backward_params(dg_c + c0, dout + c0, x + c0, rstd_w,
                                        rows, nc, cols);
        else
            k->layer_norm_backward_params(dg_c + c0, db_c + c0, dout + c0,
                                          x + c0, mean_w, rstd_w, rows, nc,
                                          cols);
    }
    check_same_bits(t->name, name, got, cut, n);
    check_same_bits(t->name, name, rstd_g, rstd_c, rows);
    check_same_bits(t->name, name, dx_g, dx_c, n);
    check_same_bits(t->name, name, dg_g, dg_c, cols);
    if (!rms) {
        check_same_bits(t->name, name, mean_g, mean_c, rows);
        check_same_bits(t->name, name, db_g, db_c, cols);
    }
    free(cut), free(rstd_c), free(mean_c), free(dx_c), free(dg_c), free(db_c);
    free(x), free(gain), free(bias), free(dout), free(dx0), free(dg0);
    free(want), free(got), free(mean_w), free(rstd_w), free(mean_g);
    free(rstd_g), free(dx_w), free(dx_g), free(dg_w), free(dg_g), free(db_w);
    free(db_g), free(scale);
}

static void test_norms(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    for (int t = 0; t < count; t++)
        for (int a = 0; a < N_SIZES; a++)
            for (int b = 0; b < N_SIZES; b++) {
                if (sizes[a] * sizes[b] > MAX_ELEMENTS)
                    continue;
                for (int rms = 0; rms < 2; rms++)
                    for (int with_gain = 0; with_gain < 2; with_gain++)
                        norm_case(tables[t], rms, with_gain, sizes[a],
                                  sizes[b]);
            }
}

/* ---- softmax and cross-entropy ----------------------------------------- */

static void test_softmax(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    const tlmi_pointwise_kernels *ref = &tlmi_pointwise_scalar;
    for (int a = 0; a < N_SIZES; a++)
        for (int b = 0; b < N_SIZES; b++) {
            const int64_t rows = sizes[a], cols = sizes[b], n = rows * cols;
            if (n > MAX_ELEMENTS)
                continue;
            float *x = random_floats(n, -10.0f, 10.0f);
            float *dout = random_floats(n, -1.0f, 1.0f);
            float *dx0 = random_floats(n, -0.01f, 0.01f);
            float *want = random_floats(n, 0, 0), *got = random_floats(n, 0, 0);
            float *dx_w = copy_floats(dx0, n);
            ref->softmax_forward(want, x, rows, cols);
            ref->softmax_backward(dx_w, dout, want, rows, cols);
            for (int t = 0; t < count; t++) {
                const tlmi_pointwise_kernels *k = tables[t]->pointwise;
                float *dx_g = copy_floats(dx0, n), *cut = random_floats(n, 0, 0);
                float *dx_c = copy_floats(dx0, n);
                k->softmax_forward(got, x, rows, cols);
                k->softmax_backward(dx_g, dout, want, rows, cols);
                check_close(tables[t]->name, "softmax forward", rows, cols, got,
                            want, n, 1e-5, 1e-9);
                check_close(tables[t]->name, "softmax backward", rows, cols,
                            dx_g, dx_w, n, 1e-5, 1e-5);
                int64_t at[4];
                cuts(rows, at);
                for (int p = 0; p < 3; p++)
                    if (at[p + 1] > at[p]) {
                        const int64_t o = at[p] * cols, nr = at[p + 1] - at[p];
                        k->softmax_forward(cut + o, x + o, nr, cols);
                        k->softmax_backward(dx_c + o, dout + o, want + o, nr,
                                            cols);
                    }
                check_same_bits(tables[t]->name, "softmax", got, cut, n);
                check_same_bits(tables[t]->name, "softmax backward", dx_g, dx_c,
                                n);
                free(dx_g), free(cut), free(dx_c);
            }
            free(x), free(dout), free(dx0), free(want), free(got), free(dx_w);
        }
}

static void test_cross_entropy(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    const tlmi_pointwise_kernels *ref = &tlmi_pointwise_scalar;
    const int32_t ignore = -100;
    /* widths up to a GPT-2 vocabulary */
    const int64_t vocab[] = {1, 3, 7, 15, 33, 100, 1000, 50257};
    for (int a = 0; a < N_SIZES; a++)
        for (int b = 0; b < (int)(sizeof vocab / sizeof vocab[0]); b++) {
            const int64_t rows = sizes[a], v = vocab[b], n = rows * v;
            if (n > 4 * MAX_ELEMENTS && rows > 3)
                continue;
            float *x = random_floats(n, -5.0f, 5.0f);
            int32_t *targets = malloc((size_t)rows * sizeof *targets);
            assert_non_null(targets);
            for (int64_t r = 0; r < rows; r++)
                targets[r] = r % 5 == 3 ? ignore
                                        : (int32_t)(uniform(0.0f, 1.0f) *
                                                    (float)v) % (int32_t)v;
            double *lse_w = malloc((size_t)rows * sizeof *lse_w);
            double *lse_g = malloc((size_t)rows * sizeof *lse_g);
            assert_non_null(lse_w);
            assert_non_null(lse_g);
            const float factor = 1.0f / (float)rows;
            float *dx_w = random_floats(n, 0, 0), *dx_g = random_floats(n, 0, 0);
            ref->cross_entropy_lse(lse_w, x, targets, rows, v, ignore);
            ref->cross_entropy_backward(dx_w, factor, x, lse_w, targets, rows, v,
                                        ignore);
            for (int t = 0; t < count; t++) {
                const tlmi_pointwise_kernels *k = tables[t]->pointwise;
                memset(dx_g, 0, (size_t)n * sizeof *dx_g);
                k->cross_entropy_lse(lse_g, x, targets, rows, v, ignore);
                k->cross_entropy_backward(dx_g, factor, x, lse_w, targets, rows,
                                          v, ignore);
                for (int64_t r = 0; r < rows; r++) {
                    const double e = fabs(lse_g[r] - lse_w[r]);
                    if (!(e <= 1e-5 * (1.0 + fabs(lse_w[r])))) {
                        print_error("%s cross_entropy rows=%lld v=%lld: lse[%lld] "
                                    "= %.12g, reference %.12g\n",
                                    tables[t]->name, (long long)rows,
                                    (long long)v, (long long)r, lse_g[r],
                                    lse_w[r]);
                        fail();
                    }
                }
                check_close(tables[t]->name, "cross_entropy backward", rows, v,
                            dx_g, dx_w, n, 1e-5, 1e-6 * (double)factor);
                /* rows in ranges: the same bits */
                double *lse_c = malloc((size_t)rows * sizeof *lse_c);
                float *dx_c = random_floats(n, 0, 0);
                assert_non_null(lse_c);
                memset(dx_c, 0, (size_t)n * sizeof *dx_c);
                int64_t at[4];
                cuts(rows, at);
                for (int p = 0; p < 3; p++)
                    if (at[p + 1] > at[p]) {
                        const int64_t r0 = at[p], nr = at[p + 1] - at[p];
                        k->cross_entropy_lse(lse_c + r0, x + r0 * v, targets + r0,
                                             nr, v, ignore);
                        k->cross_entropy_backward(dx_c + r0 * v, factor,
                                                  x + r0 * v, lse_w + r0,
                                                  targets + r0, nr, v, ignore);
                    }
                assert_memory_equal(lse_c, lse_g, (size_t)rows * sizeof *lse_c);
                check_same_bits(tables[t]->name, "cross_entropy backward", dx_g,
                                dx_c, n);
                free(lse_c), free(dx_c);
            }
            free(x), free(targets), free(lse_w), free(lse_g), free(dx_w);
            free(dx_g);
        }
}

/* ---- optimizers and elementwise ----------------------------------------- */

static void test_optimizers(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    const tlmi_pointwise_kernels *ref = &tlmi_pointwise_scalar;
    const tlmi_adamw_coefficients adamw = {0.9f, 0.1f, 0.999f, 0.001f,
                                           0.1f / 0.1f, 1.0f / 0.0316f, 1e-8f,
                                           1.0f - 0.1f * 0.01f, 0.75f};
    for (int a = 0; a < N_SIZES; a++)
        for (int b = 0; b < N_SIZES; b++) {
            const int64_t n = sizes[a] * sizes[b];
            if (n > MAX_ELEMENTS)
                continue;
            float *p0 = random_floats(n, -1.0f, 1.0f);
            float *g = random_floats(n, -1.0f, 1.0f);
            float *m0 = random_floats(n, -0.1f, 0.1f);
            float *v0 = random_floats(n, 0.0f, 0.01f);
            for (int sgd = 0; sgd < 4; sgd++) { /* 0: AdamW, 1..3: SGD forms */
                const tlmi_sgd_coefficients sc = {0.1f, sgd == 2 ? 0.01f : 0.0f,
                                                  sgd >= 2 ? 0.9f : 0.0f,
                                                  sgd == 3, 0, 0.625f};
                float *pw = copy_floats(p0, n), *mw = copy_floats(m0, n);
                float *vw = copy_floats(v0, n);
                for (int step = 0; step < 3; step++) {
                    if (sgd == 0)
                        ref->adamw_update(pw, g, mw, vw, n, &adamw);
                    else
                        ref->sgd_update(pw, g, mw, n, &sc);
                }
                for (int t = 0; t < count; t++) {
                    const tlmi_pointwise_kernels *k = tables[t]->pointwise;
                    float *pg = copy_floats(p0, n), *mg = copy_floats(m0, n);
                    float *vg = copy_floats(v0, n);
                    float *pc = copy_floats(p0, n), *mc = copy_floats(m0, n);
                    float *vc = copy_floats(v0, n);
                    int64_t at[4];
                    cuts(n, at);
                    for (int step = 0; step < 3; step++) {
                        if (sgd == 0)
                            k->adamw_update(pg, g, mg, vg, n, &adamw);
                        else
                            k->sgd_update(pg, g, mg, n, &sc);
                        for (int q = 0; q < 3; q++) {
                            const int64_t o = at[q], len = at[q + 1] - at[q];
                            if (len == 0)
                                continue;
                            if (sgd == 0)
                                k->adamw_update(pc + o, g + o, mc + o, vc + o,
                                                len, &adamw);
                            else
                                k->sgd_update(pc + o, g + o, mc + o, len, &sc);
                        }
                    }
                    const char *what = sgd == 0 ? "adamw" : "sgd";
                    check_close(tables[t]->name, what, sizes[a], sizes[b], pg, pw,
                                n, 2e-6, 2e-6);
                    check_close(tables[t]->name, what, sizes[a], sizes[b], mg, mw,
                                n, 2e-6, 2e-6);
                    if (sgd == 0)
                        check_close(tables[t]->name, what, sizes[a], sizes[b], vg,
                                    vw, n, 2e-6, 2e-6);
                    check_same_bits(tables[t]->name, what, pg, pc, n);
                    check_same_bits(tables[t]->name, what, mg, mc, n);
                    free(pg), free(mg), free(vg), free(pc), free(mc), free(vc);
                }
                free(pw), free(mw), free(vw);
            }
            free(p0), free(g), free(m0), free(v0);
        }
}

enum { ADD, SUB, MUL, AFFINE, ACC_SCALED, ACC_PRODUCT, N_EW };
static const char *const ew_names[N_EW] = {
    "add", "sub", "mul", "affine", "accumulate_scaled", "accumulate_product"};

static void run_ew(const tlmi_pointwise_kernels *k, int which, float *out,
                   const float *a, const float *b, int64_t n) {
    switch (which) {
    case ADD: k->add(out, a, b, n); break;
    case SUB: k->sub(out, a, b, n); break;
    case MUL: k->mul(out, a, b, n); break;
    case AFFINE: k->affine(out, a, 0.7f, -0.3f, n); break;
    case ACC_SCALED: k->accumulate_scaled(out, a, -1.3f, n); break;
    default: k->accumulate_product(out, a, b, n); break;
    }
}

static void test_elementwise(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    for (int a = 0; a < N_SIZES; a++)
        for (int b = 0; b < N_SIZES; b++) {
            const int64_t n = sizes[a] * sizes[b];
            if (n > MAX_ELEMENTS)
                continue;
            float *x = random_floats(n, -1.0f, 1.0f);
            float *y = random_floats(n, -1.0f, 1.0f);
            float *out0 = random_floats(n, -1.0f, 1.0f);
            for (int which = 0; which < N_EW; which++) {
                float *want = copy_floats(out0, n);
                run_ew(&tlmi_pointwise_scalar, which, want, x, y, n);
                for (int t = 0; t < count; t++) {
                    const tlmi_pointwise_kernels *k = tables[t]->pointwise;
                    float *got = copy_floats(out0, n), *cut = copy_floats(out0, n);
                    run_ew(k, which, got, x, y, n);
                    check_close(tables[t]->name, ew_names[which], sizes[a],
                                sizes[b], got, want, n, 1e-6, 1e-6);
                    int64_t at[4];
                    cuts(n, at);
                    for (int q = 0; q < 3; q++)
                        if (at[q + 1] > at[q])
                            run_ew(k, which, cut + at[q], x + at[q], y + at[q],
                                   at[q + 1] - at[q]);
                    check_same_bits(tables[t]->name, ew_names[which], got, cut,
                                    n);
                    free(got), free(cut);
                }
                free(want);
            }
            free(x), free(y), free(out0);
        }
}

int main(void) {
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int count = simd_tables(tables);
    printf("# pointwise tables tested against scalar:");
    for (int t = 0; t < count; t++)
        printf(" %s", tables[t]->name);
    printf("%s\n", count == 0 ? " none (no SIMD on this machine)" : "");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exp),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_norms),
        cmocka_unit_test(test_softmax),
        cmocka_unit_test(test_cross_entropy),
        cmocka_unit_test(test_optimizers),
        cmocka_unit_test(test_elementwise),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
