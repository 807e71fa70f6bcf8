/*
 * Pointwise and row-wise kernels of the training and decoding path: the
 * activations, layer and RMS norm, softmax, cross-entropy, the AdamW and
 * SGD updates and the elementwise arithmetic. One table per ISA
 * (tlmi_pointwise_kernels), reached through tlmi_kernels.pointwise.
 *
 * Every entry computes what the scalar reference of kernels/scalar/ (the
 * entries of tlmi_pointwise_scalar) defines, up to rounding: the SIMD
 * versions sum in float vectors (the references often in double), use
 * fused multiply-adds and the vector exponential described below. The
 * tolerances are stated in tests/kernels/test_pointwise.c.
 *
 * Splitting: the ops cut the work into element ranges (elementwise
 * entries) or row ranges (row-wise entries) for the thread pool. Every
 * entry computes an element (or a row) the same way wherever the range
 * starts or ends, the SIMD tails included (they run the vector code on a
 * padded copy), so results are bitwise identical for any thread count.
 * The parameter gradients of the norms (sums over rows) are cut by
 * columns instead: each column sums its rows in row order.
 *
 * Vector exponential (exp entry, and inside GELU, SiLU, SwiGLU, softmax
 * and cross-entropy): x = n ln2 + r, |r| <= ln2 / 2, e^r by a degree-7
 * polynomial (minimax coefficients of the Cephes library's expf), times
 * 2^n built in the exponent bits. Maximum relative error 1.2e-7 (about
 * 1 ulp) for x in [-87, 88], measured against double exp() by
 * tests/kernels/test_pointwise.c (which allows 3e-7); x > 88.376 gives +inf (the true value
 * is within a factor 1.4 of FLT_MAX), x < -87.336 gives 0 (no
 * denormals), NaN gives NaN. GELU's tanh is evaluated through the same
 * exp, as the reference does: 0.5 (1 + tanh(u)) = 1 / (1 + e^(-2u)).
 */
#ifndef TLM_LIB_KERNELS_POINTWISE_H
#define TLM_LIB_KERNELS_POINTWISE_H

#include <stdint.h>

/* The AdamW step's per-parameter coefficients (lib/train/optim.c), with
 * g = grad x grad_scale (clipping's factor, 1 without; the product is
 * rounded before anything else uses it, as if the gradient had been
 * scaled in place first):
 *   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2;
 *   p = p shrink - step_size * m / (sqrt(v) inv_sqrt_bc2 + eps) */
typedef struct tlmi_adamw_coefficients {
    float beta1, one_minus_beta1;
    float beta2, one_minus_beta2;
    float step_size;    /* lr / (1 - beta1^t) */
    float inv_sqrt_bc2; /* 1 / sqrt(1 - beta2^t) */
    float eps;
    float shrink;       /* 1 - lr * weight_decay, or 1 without decay */
    float grad_scale;
} tlmi_adamw_coefficients;

/* SGD with momentum (lib/train/optim.c), g = grad x grad_scale as for AdamW:
 *   g += wd p;  buf = momentum buf + g (buf = g at the first step);
 *   g = nesterov ? g + momentum buf : buf;  p -= lr g */
typedef struct tlmi_sgd_coefficients {
    float lr;
    float weight_decay; /* 0 without decay */
    float momentum;     /* 0: no buffer (buf is not touched) */
    int nesterov;
    int first;          /* the first step: the buffer starts as g */
    float grad_scale;
} tlmi_sgd_coefficients;

typedef struct tlmi_pointwise_kernels {
    /* out[i] = e^x[i] (the vector exponential, exposed for its test) */
    void (*exp)(float *out, const float *x, int64_t n);

    /* ---- activations (kernels/scalar/activation.h): n elements;
     * backward ADDS into dx (dgate, dup; either may be NULL). */
    void (*relu_forward)(float *out, const float *x, int64_t n);
    void (*relu_backward)(float *dx, const float *dout, const float *x,
                          int64_t n);
    void (*gelu_tanh_forward)(float *out, const float *x, int64_t n);
    void (*gelu_tanh_backward)(float *dx, const float *dout, const float *x,
                               int64_t n);
    void (*silu_forward)(float *out, const float *x, int64_t n);
    void (*silu_backward)(float *dx, const float *dout, const float *x,
                          int64_t n);
    void (*swiglu_forward)(float *out, const float *gate, const float *up,
                           int64_t n);
    void (*swiglu_backward)(float *dgate, float *dup, const float *dout,
                            const float *gate, const float *up, int64_t n);

    /* ---- norms (kernels/scalar/norm.h): rows x cols, row-major; gain and
     * bias [cols] may be NULL. */
    void (*layer_norm_forward)(float *out, float *mean, float *rstd,
                               const float *x, const float *gain,
                               const float *bias, int64_t rows, int64_t cols,
                               float eps);
    /* dx += the input gradient, per row */
    void (*layer_norm_backward_dx)(float *dx, const float *dout,
                                   const float *x, const float *gain,
                                   const float *mean, const float *rstd,
                                   int64_t rows, int64_t cols);
    /* For `width` columns starting where the pointers point, rows of
     * stride ld: dgain[c] += sum over rows of dout xhat, dbias[c] += sum
     * of dout, rows taken in order (either may be NULL). */
    void (*layer_norm_backward_params)(float *dgain, float *dbias,
                                       const float *dout, const float *x,
                                       const float *mean, const float *rstd,
                                       int64_t rows, int64_t width,
                                       int64_t ld);
    void (*rms_norm_forward)(float *out, float *rstd, const float *x,
                             const float *gain, int64_t rows, int64_t cols,
                             float eps);
    void (*rms_norm_backward_dx)(float *dx, const float *dout,
                                 const float *x, const float *gain,
                                 const float *rstd, int64_t rows,
                                 int64_t cols);
    void (*rms_norm_backward_params)(float *dgain, const float *dout,
                                     const float *x, const float *rstd,
                                     int64_t rows, int64_t width, int64_t ld);

    /* ---- softmax over rows (kernels/scalar/softmax.h) */
    void (*softmax_forward)(float *out, const float *x, int64_t rows,
                            int64_t cols);
    void (*softmax_backward)(float *dx, const float *dout, const float *out,
                             int64_t rows, int64_t cols);

    /* ---- cross-entropy (kernels/scalar/loss.h), rows x v logits.
     * lse[r] = log sum exp of row r when its target is a class (not
     * ignore_index, inside 0..v-1), 0 otherwise. */
    void (*cross_entropy_lse)(double *lse, const float *logits,
                              const int32_t *targets, int64_t rows,
                              int64_t v, int32_t ignore_index);
    /* On rows whose target is a class: dlogits += (exp(logits - lse) -
     * onehot(target)) * factor. */
    void (*cross_entropy_backward)(float *dlogits, float factor,
                                   const float *logits, const double *lse,
                                   const int32_t *targets, int64_t rows,
                                   int64_t v, int32_t ignore_index);

    /* ---- optimizers (lib/train/optim.c): n elements */
    void (*adamw_update)(float *p, const float *g, float *m, float *v,
                         int64_t n, const tlmi_adamw_coefficients *c);
    void (*sgd_update)(float *p, const float *g, float *buf, int64_t n,
                       const tlmi_sgd_coefficients *c);

    /* ---- elementwise (kernels/scalar/elementwise.h), n elements, every
     * operand n long (the ops cut a repeated operand into rows). out may
     * be a or b: element i is read before it is written (a model's
     * residual add writes over its branch). */
    void (*add)(float *out, const float *a, const float *b, int64_t n);
    void (*sub)(float *out, const float *a, const float *b, int64_t n);
    void (*mul)(float *out, const float *a, const float *b, int64_t n);
    /* out = a * factor + offset */
    void (*affine)(float *out, const float *a, float factor, float offset,
                   int64_t n);
    /* dst += src * factor */
    void (*accumulate_scaled)(float *dst, const float *src, float factor,
                              int64_t n);
    /* dst += a * b */
    void (*accumulate_product)(float *dst, const float *a, const float *b,
                               int64_t n);
} tlmi_pointwise_kernels;

/* The reference entries (kernels/scalar/pointwise.c). */
extern const tlmi_pointwise_kernels tlmi_pointwise_scalar;
#if defined(TLMI_HAVE_AVX2)
extern const tlmi_pointwise_kernels tlmi_pointwise_avx2;
#endif
#if defined(TLMI_HAVE_AVX512)
extern const tlmi_pointwise_kernels tlmi_pointwise_avx512;
#endif
#if defined(TLMI_HAVE_NEON)
extern const tlmi_pointwise_kernels tlmi_pointwise_neon;
#endif

#endif
