/*
 * The pointwise kernels of kernels/pointwise.h written once over the
 * vectors of kernels/simd.h, a template in the protocol simd.h describes:
 * a per-ISA source (x86/pointwise_avx2.c, ...) defines its TLMI_SIMD_<ISA>
 * macro and TLMI_ISA_SUFFIX, then includes this file, which defines the
 * table TLMI_ISA_NAME(tlmi_pointwise) (tlmi_pointwise_avx2, ...). Every
 * function is static: each ISA gets its own copy, compiled with its own
 * flags. No tuning macros.
 *
 * Loops walk TLMI_VL floats at a time; the last, partial step loads a
 * padded copy (lanes past the end hold a neutral value: 0 for sums, -inf
 * for maxima, the mean for deviations) and stores only the lanes that
 * exist. An element's result is therefore the same whether it falls in a
 * full step or in the tail, whatever range the caller passes.
 */
#ifndef TLMI_ISA_SUFFIX
#error "define TLMI_ISA_SUFFIX and TLMI_SIMD_<ISA> before including this file"
#endif

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "pointwise.h"
#include "simd.h"

/* ---- loads and stores of k <= TLMI_VL lanes ---------------------------- */

static inline int64_t lanes(int64_t n, int64_t i) {
    return n - i < TLMI_VL ? n - i : TLMI_VL;
}

static inline tlmi_vf ld(const float *p, int64_t k) {
    return k == TLMI_VL ? vf_load(p) : vf_load_part(p, k, 0.0f);
}

static inline tlmi_vf ld_fill(const float *p, int64_t k, float fill) {
    return k == TLMI_VL ? vf_load(p) : vf_load_part(p, k, fill);
}

static inline void st(float *p, tlmi_vf v, int64_t k) {
    if (k == TLMI_VL)
        vf_store(p, v);
    else
        vf_store_part(p, v, k);
}

/* ---- exp (see pointwise.h for its range and error) -------------------- */

#define EXP_HI 88.376f     /* round(EXP_HI log2 e) = 127: 2^n is normal */
#define EXP_LO -87.33654f  /* ln(FLT_MIN): below, the result is 0 */

static inline tlmi_vf exp_v(tlmi_vf x) {
    const tlmi_vf hi = vf_set1(EXP_HI), lo = vf_set1(EXP_LO);
    const tlmi_vf xc = vf_min(vf_max(x, lo), hi);
    /* x = n ln2 + r, ln2 in two parts so that n ln2 is exact enough. */
    const tlmi_vf n = vf_round(vf_mul(xc, vf_set1(1.44269504088896341f)));
    tlmi_vf r = vf_fnmadd(n, vf_set1(0.693359375f), xc);
    r = vf_fnmadd(n, vf_set1(-2.12194440e-4f), r);
    /* e^r = 1 + r + r^2 P(r) */
    tlmi_vf p = vf_set1(1.9875691500e-4f);
    p = vf_fmadd(p, r, vf_set1(1.3981999507e-3f));
    p = vf_fmadd(p, r, vf_set1(8.3334519073e-3f));
    p = vf_fmadd(p, r, vf_set1(4.1665795894e-2f));
    p = vf_fmadd(p, r, vf_set1(1.6666665459e-1f));
    p = vf_fmadd(p, r, vf_set1(5.0000001201e-1f));
    p = vf_fmadd(p, vf_mul(r, r), vf_add(r, vf_set1(1.0f)));
    tlmi_vf y = vf_mul(p, vf_pow2i(n));
    y = vf_select(vf_gt(x, hi), vf_set1(INFINITY), y);
    y = vf_select(vf_lt(x, lo), vf_zero(), y);
    return vf_select(vf_isnan(x), x, y);
}

static void exp_k(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(out + i, exp_v(ld(x + i, k)), k);
    }
}

/* 1 / (1 + e^-x): e^-x = inf gives exactly 0 */
static inline tlmi_vf sigmoid_v(tlmi_vf x) {
    const tlmi_vf one = vf_set1(1.0f);
    return vf_div(one, vf_add(one, exp_v(vf_sub(vf_zero(), x))));
}

/* ---- activations ------------------------------------------------------- */

static void relu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf v = ld(x + i, k);
        /* v < 0 is false for NaN, which passes through */
        st(out + i, vf_select(vf_lt(v, vf_zero()), vf_zero(), v), k);
    }
}

static void relu_backward(float *dx, const float *dout, const float *x,
                          int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf g = vf_select(vf_gt(ld(x + i, k), vf_zero()),
                                    ld(dout + i, k), vf_zero());
        st(dx + i, vf_add(ld(dx + i, k), g), k);
    }
}

#define GELU_TANH_SCALE 0.7978845608028654f
#define GELU_TANH_CUBIC 0.044715f

/* sqrt(2/pi) (x + 0.044715 x^3) */
static inline tlmi_vf gelu_u(tlmi_vf x) {
    const tlmi_vf x3 = vf_mul(vf_mul(x, x), x);
    return vf_mul(vf_set1(GELU_TANH_SCALE),
                  vf_fmadd(vf_set1(GELU_TANH_CUBIC), x3, x));
}

/* 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)) */
static inline tlmi_vf gelu_s(tlmi_vf x) {
    const tlmi_vf one = vf_set1(1.0f);
    const tlmi_vf e = exp_v(vf_mul(gelu_u(x), vf_set1(-2.0f)));
    return vf_div(one, vf_add(one, e));
}

static void gelu_tanh_forward(float *out, const float *x, int64_t n) {
    const tlmi_vf one = vf_set1(1.0f);
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf v = ld(x + i, k);
        const tlmi_vf e = exp_v(vf_mul(gelu_u(v), vf_set1(-2.0f)));
        st(out + i, vf_div(v, vf_add(one, e)), k);
    }
}

static void gelu_tanh_backward(float *dx, const float *dout, const float *x,
                               int64_t n) {
    const tlmi_vf one = vf_set1(1.0f);
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf v = ld(x + i, k);
        const tlmi_vf s = gelu_s(v);
        /* slope = s + 2 x s (1 - s) du/dx; the second term only where
         * s (1 - s) != 0, as in the reference (no 0 * inf = NaN). */
        const tlmi_vf curve = vf_mul(s, vf_sub(one, s));
        const tlmi_vf du = vf_mul(
            vf_set1(GELU_TANH_SCALE),
            vf_fmadd(vf_set1(3.0f * GELU_TANH_CUBIC), vf_mul(v, v), one));
        tlmi_vf term = vf_mul(vf_mul(vf_add(v, v), curve), du);
        term = vf_select(vf_eq(curve, vf_zero()), vf_zero(), term);
        const tlmi_vf slope = vf_add(s, term);
        st(dx + i, vf_fmadd(ld(dout + i, k), slope, ld(dx + i, k)), k);
    }
}

/* d silu / dx = s (1 + x (1 - s)) */
static inline tlmi_vf silu_slope(tlmi_vf x, tlmi_vf s) {
    const tlmi_vf one = vf_set1(1.0f);
    return vf_mul(s, vf_fmadd(x, vf_sub(one, s), one));
}

static void silu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf v = ld(x + i, k);
        st(out + i, vf_mul(v, sigmoid_v(v)), k);
    }
}

static void silu_backward(float *dx, const float *dout, const float *x,
                          int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf v = ld(x + i, k);
        const tlmi_vf slope = silu_slope(v, sigmoid_v(v));
        st(dx + i, vf_fmadd(ld(dout + i, k), slope, ld(dx + i, k)), k);
    }
}

static void swiglu_forward(float *out, const float *gate, const float *up,
                           int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf g = ld(gate + i, k);
        st(out + i, vf_mul(vf_mul(g, sigmoid_v(g)), ld(up + i, k)), k);
    }
}

static void swiglu_backward(float *dgate, float *dup, const float *dout,
                            const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf g = ld(gate + i, k), d = ld(dout + i, k);
        const tlmi_vf s = sigmoid_v(g);
        if (dgate != NULL) {
            const tlmi_vf t = vf_mul(vf_mul(d, ld(up + i, k)), silu_slope(g, s));
            st(dgate + i, vf_add(ld(dgate + i, k), t), k);
        }
        if (dup != NULL)
            st(dup + i, vf_fmadd(d, vf_mul(g, s), ld(dup + i, k)), k);
    }
}

/* ---- norms ------------------------------------------------------------- */

static inline tlmi_vf ld_or(const float *p, int64_t k, float absent) {
    return p != NULL ? ld(p, k) : vf_set1(absent);
}

static void layer_norm_forward(float *out, float *mean, float *rstd,
                               const float *x, const float *gain,
                               const float *bias, int64_t rows, int64_t cols,
                               float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        float *out_r = out + r * cols;
        tlmi_vf acc = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL)
            acc = vf_add(acc, ld(x_r + c, lanes(cols, c)));
        const float m = (float)((double)vf_hsum(acc) / (double)cols);
        /* Two passes (deviations from the mean), as the reference; the
         * padding lanes hold the mean, so they add 0. */
        const tlmi_vf mv = vf_set1(m);
        acc = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const tlmi_vf d = vf_sub(ld_fill(x_r + c, lanes(cols, c), m), mv);
            acc = vf_fmadd(d, d, acc);
        }
        const float rs = (float)(1.0 / sqrt((double)vf_hsum(acc) /
                                            (double)cols + (double)eps));
        const tlmi_vf rv = vf_set1(rs);
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf xhat = vf_mul(vf_sub(ld(x_r + c, k), mv), rv);
            const tlmi_vf g = ld_or(gain != NULL ? gain + c : NULL, k, 1.0f);
            const tlmi_vf b = ld_or(bias != NULL ? bias + c : NULL, k, 0.0f);
            st(out_r + c, vf_fmadd(xhat, g, b), k);
        }
        mean[r] = m;
        rstd[r] = rs;
    }
}

static void layer_norm_backward_dx(float *dx, const float *dout,
                                   const float *x, const float *gain,
                                   const float *mean, const float *rstd,
                                   int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols, *dout_r = dout + r * cols;
        float *dx_r = dx + r * cols;
        const tlmi_vf mv = vf_set1(mean[r]), rv = vf_set1(rstd[r]);
        tlmi_vf sum_g = vf_zero(), sum_gx = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf xhat = vf_mul(vf_sub(ld(x_r + c, k), mv), rv);
            const tlmi_vf g = vf_mul(ld(dout_r + c, k),
                                     ld_or(gain != NULL ? gain + c : NULL, k,
                                           1.0f));
            sum_g = vf_add(sum_g, g);
            sum_gx = vf_fmadd(g, xhat, sum_gx);
        }
        const tlmi_vf mean_g = vf_set1(vf_hsum(sum_g) / (float)cols);
        const tlmi_vf mean_gx = vf_set1(vf_hsum(sum_gx) / (float)cols);
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf xhat = vf_mul(vf_sub(ld(x_r + c, k), mv), rv);
            const tlmi_vf g = vf_mul(ld(dout_r + c, k),
                                     ld_or(gain != NULL ? gain + c : NULL, k,
                                           1.0f));
            const tlmi_vf t = vf_fnmadd(xhat, mean_gx, vf_sub(g, mean_g));
            st(dx_r + c, vf_fmadd(rv, t, ld(dx_r + c, k)), k);
        }
    }
}

static void layer_norm_backward_params(float *dgain, float *dbias,
                                       const float *dout, const float *x,
                                       const float *mean, const float *rstd,
                                       int64_t rows, int64_t width,
                                       int64_t ld_rows) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * ld_rows, *dout_r = dout + r * ld_rows;
        const tlmi_vf mv = vf_set1(mean[r]), rv = vf_set1(rstd[r]);
        for (int64_t c = 0; c < width; c += TLMI_VL) {
            const int64_t k = lanes(width, c);
            const tlmi_vf d = ld(dout_r + c, k);
            if (dgain != NULL) {
                const tlmi_vf xhat = vf_mul(vf_sub(ld(x_r + c, k), mv), rv);
                st(dgain + c, vf_fmadd(d, xhat, ld(dgain + c, k)), k);
            }
            if (dbias != NULL)
                st(dbias + c, vf_add(ld(dbias + c, k), d), k);
        }
    }
}

static void rms_norm_forward(float *out, float *rstd, const float *x,
                             const float *gain, int64_t rows, int64_t cols,
                             float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        float *out_r = out + r * cols;
        tlmi_vf acc = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const tlmi_vf v = ld(x_r + c, lanes(cols, c));
            acc = vf_fmadd(v, v, acc);
        }
        const float rs = (float)(1.0 / sqrt((double)vf_hsum(acc) /
                                            (double)cols + (double)eps));
        const tlmi_vf rv = vf_set1(rs);
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf y = vf_mul(ld(x_r + c, k), rv);
            st(out_r + c,
               gain != NULL ? vf_mul(y, ld(gain + c, k)) : y, k);
        }
        rstd[r] = rs;
    }
}

static void rms_norm_backward_dx(float *dx, const float *dout,
                                 const float *x, const float *gain,
                                 const float *rstd, int64_t rows,
                                 int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols, *dout_r = dout + r * cols;
        float *dx_r = dx + r * cols;
        const tlmi_vf rv = vf_set1(rstd[r]);
        tlmi_vf sum_gx = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf xhat = vf_mul(ld(x_r + c, k), rv);
            const tlmi_vf g = vf_mul(ld(dout_r + c, k),
                                     ld_or(gain != NULL ? gain + c : NULL, k,
                                           1.0f));
            sum_gx = vf_fmadd(g, xhat, sum_gx);
        }
        const tlmi_vf mean_gx = vf_set1(vf_hsum(sum_gx) / (float)cols);
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf xhat = vf_mul(ld(x_r + c, k), rv);
            const tlmi_vf g = vf_mul(ld(dout_r + c, k),
                                     ld_or(gain != NULL ? gain + c : NULL, k,
                                           1.0f));
            const tlmi_vf t = vf_fnmadd(xhat, mean_gx, g);
            st(dx_r + c, vf_fmadd(rv, t, ld(dx_r + c, k)), k);
        }
    }
}

static void rms_norm_backward_params(float *dgain, const float *dout,
                                     const float *x, const float *rstd,
                                     int64_t rows, int64_t width,
                                     int64_t ld_rows) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * ld_rows, *dout_r = dout + r * ld_rows;
        const tlmi_vf rv = vf_set1(rstd[r]);
        for (int64_t c = 0; c < width; c += TLMI_VL) {
            const int64_t k = lanes(width, c);
            const tlmi_vf xhat = vf_mul(ld(x_r + c, k), rv);
            st(dgain + c, vf_fmadd(ld(dout_r + c, k), xhat, ld(dgain + c, k)),
               k);
        }
    }
}

/* ---- softmax ----------------------------------------------------------- */

static float row_max(const float *x, int64_t cols) {
    tlmi_vf acc = vf_set1(-INFINITY);
    for (int64_t c = 0; c < cols; c += TLMI_VL)
        acc = vf_max(acc, ld_fill(x + c, lanes(cols, c), -INFINITY));
    return vf_hmax(acc);
}

static void softmax_forward(float *out, const float *x, int64_t rows,
                            int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        float *y_r = out + r * cols;
        const tlmi_vf mv = vf_set1(row_max(x_r, cols));
        tlmi_vf sum = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            /* padding -inf: e^(-inf) = 0 adds nothing */
            const tlmi_vf e =
                exp_v(vf_sub(ld_fill(x_r + c, k, -INFINITY), mv));
            sum = vf_add(sum, e);
            st(y_r + c, e, k);
        }
        /* at least 1 (the maximum's own term) */
        const tlmi_vf inv = vf_set1(1.0f / vf_hsum(sum));
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            st(y_r + c, vf_mul(ld(y_r + c, k), inv), k);
        }
    }
}

static void softmax_backward(float *dx, const float *dout, const float *out,
                             int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *g_r = dout + r * cols, *y_r = out + r * cols;
        float *dx_r = dx + r * cols;
        tlmi_vf acc = vf_zero();
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            acc = vf_fmadd(ld(g_r + c, k), ld(y_r + c, k), acc);
        }
        const tlmi_vf dot = vf_set1(vf_hsum(acc));
        for (int64_t c = 0; c < cols; c += TLMI_VL) {
            const int64_t k = lanes(cols, c);
            const tlmi_vf t = vf_sub(ld(g_r + c, k), dot);
            st(dx_r + c, vf_fmadd(ld(y_r + c, k), t, ld(dx_r + c, k)), k);
        }
    }
}

/* ---- cross-entropy ----------------------------------------------------- */

static int is_class(int32_t target, int64_t v, int32_t ignore_index) {
    return target != ignore_index && target >= 0 && (int64_t)target < v;
}

static void cross_entropy_lse(double *lse, const float *logits,
                              const int32_t *targets, int64_t rows,
                              int64_t v, int32_t ignore_index) {
    for (int64_t r = 0; r < rows; r++) {
        lse[r] = 0.0;
        if (!is_class(targets[r], v, ignore_index))
            continue;
        const float *x = logits + r * v;
        const float max = row_max(x, v);
        const tlmi_vf mv = vf_set1(max);
        /* Four sums side by side: V is large (the vocabulary), and the
         * exponentials are independent. */
        tlmi_vf s0 = vf_zero(), s1 = vf_zero(), s2 = vf_zero(), s3 = vf_zero();
        int64_t c = 0;
        for (; c + 4 * TLMI_VL <= v; c += 4 * TLMI_VL) {
            s0 = vf_add(s0, exp_v(vf_sub(vf_load(x + c), mv)));
            s1 = vf_add(s1, exp_v(vf_sub(vf_load(x + c + TLMI_VL), mv)));
            s2 = vf_add(s2, exp_v(vf_sub(vf_load(x + c + 2 * TLMI_VL), mv)));
            s3 = vf_add(s3, exp_v(vf_sub(vf_load(x + c + 3 * TLMI_VL), mv)));
        }
        for (; c < v; c += TLMI_VL)
            s0 = vf_add(s0, exp_v(vf_sub(ld_fill(x + c, lanes(v, c),
                                                 -INFINITY),
                                         mv)));
        const float sum = vf_hsum(vf_add(vf_add(s0, s1), vf_add(s2, s3)));
        lse[r] = (double)max + log((double)sum);
    }
}

static void cross_entropy_backward(float *dlogits, float factor,
                                   const float *logits, const double *lse,
                                   const int32_t *targets, int64_t rows,
                                   int64_t v, int32_t ignore_index) {
    const tlmi_vf f = vf_set1(factor);
    for (int64_t r = 0; r < rows; r++) {
        if (!is_class(targets[r], v, ignore_index))
            continue;
        const float *x = logits + r * v;
        float *dx = dlogits + r * v;
        /* lse = hi + lo: x - hi is exact when x is near lse (the
         * probabilities that matter), lo keeps the rest of lse. */
        const float hi = (float)lse[r];
        const tlmi_vf hv = vf_set1(hi),
                      lv = vf_set1((float)(lse[r] - (double)hi));
        for (int64_t c = 0; c < v; c += TLMI_VL) {
            const int64_t k = lanes(v, c);
            const tlmi_vf p = exp_v(vf_sub(vf_sub(ld(x + c, k), hv), lv));
            st(dx + c, vf_fmadd(p, f, ld(dx + c, k)), k);
        }
        dx[targets[r]] -= factor;
    }
}

/* ---- optimizers -------------------------------------------------------- */

static void adamw_update(float *p, const float *g, float *m, float *v,
                         int64_t n, const tlmi_adamw_coefficients *c) {
    const tlmi_vf b1 = vf_set1(c->beta1), omb1 = vf_set1(c->one_minus_beta1);
    const tlmi_vf b2 = vf_set1(c->beta2), omb2 = vf_set1(c->one_minus_beta2);
    const tlmi_vf step = vf_set1(c->step_size), ibc2 = vf_set1(c->inv_sqrt_bc2);
    const tlmi_vf eps = vf_set1(c->eps), shrink = vf_set1(c->shrink);
    const tlmi_vf scale = vf_set1(c->grad_scale);
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf gi = vf_mul(ld(g + i, k), scale);
        const tlmi_vf mi = vf_fmadd(b1, ld(m + i, k), vf_mul(omb1, gi));
        const tlmi_vf vi = vf_fmadd(b2, ld(v + i, k),
                                    vf_mul(omb2, vf_mul(gi, gi)));
        st(m + i, mi, k);
        st(v + i, vi, k);
        const tlmi_vf denom = vf_fmadd(vf_sqrt(vi), ibc2, eps);
        const tlmi_vf pi = vf_mul(ld(p + i, k), shrink);
        st(p + i, vf_fnmadd(step, vf_div(mi, denom), pi), k);
    }
}

static void sgd_update(float *p, const float *g, float *buf, int64_t n,
                       const tlmi_sgd_coefficients *c) {
    const tlmi_vf lr = vf_set1(c->lr), wd = vf_set1(c->weight_decay);
    const tlmi_vf mom = vf_set1(c->momentum), scale = vf_set1(c->grad_scale);
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        const tlmi_vf pi = ld(p + i, k);
        tlmi_vf gi = vf_mul(ld(g + i, k), scale);
        if (c->weight_decay != 0.0f)
            gi = vf_fmadd(wd, pi, gi);
        if (c->momentum != 0.0f) {
            const tlmi_vf bi = c->first ? gi : vf_fmadd(mom, ld(buf + i, k), gi);
            st(buf + i, bi, k);
            gi = c->nesterov ? vf_fmadd(mom, bi, gi) : bi;
        }
        st(p + i, vf_fnmadd(lr, gi, pi), k);
    }
}

/* ---- elementwise ------------------------------------------------------- */

static void add_k(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(out + i, vf_add(ld(a + i, k), ld(b + i, k)), k);
    }
}

static void sub_k(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(out + i, vf_sub(ld(a + i, k), ld(b + i, k)), k);
    }
}

static void mul_k(float *out, const float *a, const float *b, int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(out + i, vf_mul(ld(a + i, k), ld(b + i, k)), k);
    }
}

static void affine_k(float *out, const float *a, float factor, float offset,
                     int64_t n) {
    const tlmi_vf f = vf_set1(factor), o = vf_set1(offset);
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(out + i, vf_fmadd(ld(a + i, k), f, o), k);
    }
}

static void accumulate_scaled_k(float *dst, const float *src, float factor,
                                int64_t n) {
    const tlmi_vf f = vf_set1(factor);
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(dst + i, vf_fmadd(ld(src + i, k), f, ld(dst + i, k)), k);
    }
}

static void accumulate_product_k(float *dst, const float *a, const float *b,
                                 int64_t n) {
    for (int64_t i = 0; i < n; i += TLMI_VL) {
        const int64_t k = lanes(n, i);
        st(dst + i, vf_fmadd(ld(a + i, k), ld(b + i, k), ld(dst + i, k)), k);
    }
}

const tlmi_pointwise_kernels TLMI_ISA_NAME(tlmi_pointwise) = {
    .exp = exp_k,
    .relu_forward = relu_forward,
    .relu_backward = relu_backward,
    .gelu_tanh_forward = gelu_tanh_forward,
    .gelu_tanh_backward = gelu_tanh_backward,
    .silu_forward = silu_forward,
    .silu_backward = silu_backward,
    .swiglu_forward = swiglu_forward,
    .swiglu_backward = swiglu_backward,
    .layer_norm_forward = layer_norm_forward,
    .layer_norm_backward_dx = layer_norm_backward_dx,
    .layer_norm_backward_params = layer_norm_backward_params,
    .rms_norm_forward = rms_norm_forward,
    .rms_norm_backward_dx = rms_norm_backward_dx,
    .rms_norm_backward_params = rms_norm_backward_params,
    .softmax_forward = softmax_forward,
    .softmax_backward = softmax_backward,
    .cross_entropy_lse = cross_entropy_lse,
    .cross_entropy_backward = cross_entropy_backward,
    .adamw_update = adamw_update,
    .sgd_update = sgd_update,
    .add = add_k,
    .sub = sub_k,
    .mul = mul_k,
    .affine = affine_k,
    .accumulate_scaled = accumulate_scaled_k,
    .accumulate_product = accumulate_product_k,
};

#undef EXP_HI
#undef EXP_LO
#undef GELU_TANH_SCALE
#undef GELU_TANH_CUBIC
