/* Reference kernels of the normalizations. Every input is row-major
 * [rows, cols]: cols is the normalized (layer, RMS) or per-feature (batch)
 * last dimension C, rows everything before it. gain and bias are [cols]
 * and may be NULL (gain 1, bias 0). Sums are taken in double so that the
 * statistics of long rows or large batches stay accurate to float
 * precision; saved statistics are float.
 *
 * Backward functions ADD to dx, dgain and dbias (a tensor used twice
 * collects both shares); any of them may be NULL when that gradient is not
 * wanted. They read only dout and forward values, never a gradient
 * buffer, so dx and dgain may be the same buffer (gain == x). */
#ifndef TLM_LIB_KERNELS_SCALAR_NORM_H
#define TLM_LIB_KERNELS_SCALAR_NORM_H

#include <stdint.h>

/* out = (x - mean) * rstd * gain + bias per row, with the biased variance
 * (mean of squared deviations). mean, rstd [rows]: saved for backward. */
void tlmi_layer_norm_forward(float *out, float *mean, float *rstd,
                             const float *x, const float *gain,
                             const float *bias, int64_t rows, int64_t cols,
                             float eps);

/* With xhat = (x - mean) * rstd and g = dout * gain, per row:
 * dx += rstd * (g - mean(g) - xhat * mean(g * xhat)),
 * dgain += dout * xhat and dbias += dout summed over rows. */
void tlmi_layer_norm_backward(float *dx, float *dgain, float *dbias,
                              const float *dout, const float *x,
                              const float *gain, const float *mean,
                              const float *rstd, int64_t rows, int64_t cols);

/* out = x * rstd * gain per row, rstd = 1 / sqrt(mean(x^2) + eps) [rows]
 * saved for backward. */
void tlmi_rms_norm_forward(float *out, float *rstd, const float *x,
                           const float *gain, int64_t rows, int64_t cols,
                           float eps);

/* With xhat = x * rstd and g = dout * gain, per row:
 * dx += rstd * (g - xhat * mean(g * xhat)); dgain += dout * xhat summed
 * over rows. */
void tlmi_rms_norm_backward(float *dx, float *dgain, const float *dout,
                            const float *x, const float *gain,
                            const float *rstd, int64_t rows, int64_t cols);

/* Training mode. stats [2, cols] (double scratch) receives the batch mean
 * (row 0) and the biased batch variance (row 1) of every column over all
 * rows, which the running statistics' update reads afterwards; mean and
 * rstd [cols] are saved for backward; out as in
 * tlmi_batch_norm_normalize(). */
void tlmi_batch_norm_train_forward(float *out, float *mean, float *rstd,
                                   double *stats, const float *x,
                                   const float *gain, const float *bias,
                                   int64_t rows, int64_t cols, float eps);

/* Evaluation mode: mean = running_mean, rstd = 1 / sqrt(running_var +
 * eps) [cols], saved for backward; out as in tlmi_batch_norm_normalize().
 * The caller has checked running_var + eps > 0. */
void tlmi_batch_norm_eval_forward(float *out, float *mean, float *rstd,
                                  const float *x, const float *gain,
                                  const float *bias,
                                  const float *running_mean,
                                  const float *running_var, int64_t rows,
                                  int64_t cols, float eps);

/* out[r, c] = (x[r, c] - mean[c]) * rstd[c] * gain[c] + bias[c] */
void tlmi_batch_norm_normalize(float *out, const float *x, const float *mean,
                               const float *rstd, const float *gain,
                               const float *bias, int64_t rows, int64_t cols);

/* running = (1 - momentum) * running + momentum * batch, from stats of
 * tlmi_batch_norm_train_forward(); the variance enters unbiased,
 * var * rows / (rows - 1), so rows must be at least 2. */
void tlmi_batch_norm_update_running(float *running_mean, float *running_var,
                                    const double *stats, int64_t rows,
                                    int64_t cols, float momentum);

/* training = 1: the statistics depended on x, so with xhat = (x - mean) *
 * rstd and per-column sums over the rows S1 = sum(dout), S2 = sum(dout *
 * xhat) (kept in sums [2, cols], double scratch):
 * dx += gain * rstd * (dout - S1 / rows - xhat * S2 / rows).
 * training = 0: mean and rstd were constants: dx += dout * gain * rstd.
 * Both: dgain += S2, dbias += S1. */
void tlmi_batch_norm_backward(float *dx, float *dgain, float *dbias,
                              double *sums, const float *dout,
                              const float *x, const float *gain,
                              const float *mean, const float *rstd,
                              int64_t rows, int64_t cols, int training);

#endif
