/* Reference kernels of softmax and log-softmax over the last dimension.
 * x, out, dx and dout are [rows, cols] (every leading dimension folded
 * into rows). Both subtract the row's maximum before exponentiating, so
 * logits of any finite magnitude (1e4 beside -1e4) give finite results.
 * Backward ADDS into dx and reads the forward result `out` (the
 * derivatives are simplest in terms of it). */
#ifndef TLM_LIB_KERNELS_SCALAR_SOFTMAX_H
#define TLM_LIB_KERNELS_SCALAR_SOFTMAX_H

#include <stdint.h>

/* out = exp(x - max) / sum(exp(x - max)) per row */
void tlmi_softmax_forward(float *out, const float *x, int64_t rows,
                          int64_t cols);
/* dx += out * (dout - sum(dout * out)) per row */
void tlmi_softmax_backward(float *dx, const float *dout, const float *out,
                           int64_t rows, int64_t cols);

/* out = x - max - log(sum(exp(x - max))) per row: never log(softmax),
 * which would be log(0) = -inf for a logit far below the maximum. */
void tlmi_log_softmax_forward(float *out, const float *x, int64_t rows,
                              int64_t cols);
/* dx += dout - exp(out) * sum(dout) per row (exp(out) is the softmax) */
void tlmi_log_softmax_backward(float *dx, const float *dout,
                               const float *out, int64_t rows, int64_t cols);

#endif
