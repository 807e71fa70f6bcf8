/*
 * The scalar table of kernels/pointwise.h: the reference kernels of
 * activation.c, norm.c, softmax.c, loss.c and elementwise.c under the
 * table's signatures, and the reference optimizer updates.
 */
#include "kernels/pointwise.h"

#include <math.h>
#include <stddef.h>

#include "activation.h"
#include "elementwise.h"
#include "loss.h"
#include "norm.h"
#include "softmax.h"

static void exp_scalar(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = expf(x[i]);
}

static void layer_norm_backward_dx_scalar(float *dx, const float *dout,
                                          const float *x, const float *gain,
                                          const float *mean,
                                          const float *rstd, int64_t rows,
                                          int64_t cols) {
    tlmi_layer_norm_backward(dx, NULL, NULL, dout, x, gain, mean, rstd, rows,
                             cols);
}

static void layer_norm_backward_params_scalar(float *dgain, float *dbias,
                                              const float *dout,
                                              const float *x,
                                              const float *mean,
                                              const float *rstd, int64_t rows,
                                              int64_t width, int64_t ld) {
    /* The sums of tlmi_layer_norm_backward, on a column range. */
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * ld, *dout_r = dout + r * ld;
        const double m = (double)mean[r], rs = (double)rstd[r];
        for (int64_t c = 0; c < width; c++) {
            const double xhat = ((double)x_r[c] - m) * rs;
            if (dgain != NULL)
                dgain[c] += (float)((double)dout_r[c] * xhat);
            if (dbias != NULL)
                dbias[c] += dout_r[c];
        }
    }
}

static void rms_norm_backward_dx_scalar(float *dx, const float *dout,
                                        const float *x, const float *gain,
                                        const float *rstd, int64_t rows,
                                        int64_t cols) {
    tlmi_rms_norm_backward(dx, NULL, dout, x, gain, rstd, rows, cols);
}

static void rms_norm_backward_params_scalar(float *dgain, const float *dout,
                                            const float *x, const float *rstd,
                                            int64_t rows, int64_t width,
                                            int64_t ld) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * ld, *dout_r = dout + r * ld;
        const double rs = (double)rstd[r];
        for (int64_t c = 0; c < width; c++)
            dgain[c] += (float)((double)dout_r[c] * ((double)x_r[c] * rs));
    }
}

static void cross_entropy_lse_scalar(double *lse, const float *logits,
                                     const int32_t *targets, int64_t rows,
                                     int64_t v, int32_t ignore_index) {
    /* The reference forward, one row at a time (its loss is not needed). */
    for (int64_t r = 0; r < rows; r++) {
        float loss;
        int64_t n_valid;
        tlmi_cross_entropy_forward(&loss, lse + r, &n_valid, logits + r * v,
                                   targets + r, 1, v, ignore_index);
    }
}

static void cross_entropy_backward_scalar(float *dlogits, float factor,
                                          const float *logits,
                                          const double *lse,
                                          const int32_t *targets,
                                          int64_t rows, int64_t v,
                                          int32_t ignore_index) {
    /* dloss / n_valid with n_valid = 1 is factor itself. */
    tlmi_cross_entropy_backward(dlogits, factor, logits, lse, targets, 1,
                                rows, v, ignore_index);
}

static void adamw_update_scalar(float *p, const float *g, float *m, float *v,
                                int64_t n, const tlmi_adamw_coefficients *c) {
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i] * c->grad_scale;
        const float mi = c->beta1 * m[i] + c->one_minus_beta1 * gi;
        const float vi = c->beta2 * v[i] + c->one_minus_beta2 * (gi * gi);
        m[i] = mi;
        v[i] = vi;
        const float denom = sqrtf(vi) * c->inv_sqrt_bc2 + c->eps;
        p[i] = p[i] * c->shrink - c->step_size * (mi / denom);
    }
}

static void sgd_update_scalar(float *p, const float *g, float *buf,
                              int64_t n, const tlmi_sgd_coefficients *c) {
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i] * c->grad_scale;
        if (c->weight_decay != 0.0f)
            gi += c->weight_decay * p[i];
        if (c->momentum != 0.0f) {
            const float bi = c->first ? gi : c->momentum * buf[i] + gi;
            buf[i] = bi;
            gi = c->nesterov ? gi + c->momentum * bi : bi;
        }
        p[i] -= c->lr * gi;
    }
}

static void add_scalar(float *out, const float *a, const float *b,
                       int64_t n) {
    tlmi_add_forward(out, a, b, n, n);
}

static void sub_scalar(float *out, const float *a, const float *b,
                       int64_t n) {
    tlmi_sub_forward(out, a, b, n, n);
}

static void mul_scalar(float *out, const float *a, const float *b,
                       int64_t n) {
    tlmi_mul_forward(out, a, b, n, n);
}

static void accumulate_product_scalar(float *dst, const float *a,
                                      const float *b, int64_t n) {
    tlmi_mul_backward_a(dst, a, b, n, n);
}

const tlmi_pointwise_kernels tlmi_pointwise_scalar = {
    .exp = exp_scalar,
    .relu_forward = tlmi_relu_forward,
    .relu_backward = tlmi_relu_backward,
    .gelu_tanh_forward = tlmi_gelu_tanh_forward,
    .gelu_tanh_backward = tlmi_gelu_tanh_backward,
    .silu_forward = tlmi_silu_forward,
    .silu_backward = tlmi_silu_backward,
    .swiglu_forward = tlmi_swiglu_forward,
    .swiglu_backward = tlmi_swiglu_backward,
    .layer_norm_forward = tlmi_layer_norm_forward,
    .layer_norm_backward_dx = layer_norm_backward_dx_scalar,
    .layer_norm_backward_params = layer_norm_backward_params_scalar,
    .rms_norm_forward = tlmi_rms_norm_forward,
    .rms_norm_backward_dx = rms_norm_backward_dx_scalar,
    .rms_norm_backward_params = rms_norm_backward_params_scalar,
    .softmax_forward = tlmi_softmax_forward,
    .softmax_backward = tlmi_softmax_backward,
    .cross_entropy_lse = cross_entropy_lse_scalar,
    .cross_entropy_backward = cross_entropy_backward_scalar,
    .adamw_update = adamw_update_scalar,
    .sgd_update = sgd_update_scalar,
    .add = add_scalar,
    .sub = sub_scalar,
    .mul = mul_scalar,
    .affine = tlmi_affine_forward,
    .accumulate_scaled = tlmi_accumulate_scaled,
    .accumulate_product = accumulate_product_scalar,
};
