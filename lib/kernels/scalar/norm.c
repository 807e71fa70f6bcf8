#include "norm.h"

#include <math.h>
#include <stddef.h>

void tlmi_layer_norm_forward(float *out, float *mean, float *rstd,
                             const float *x, const float *gain,
                             const float *bias, int64_t rows, int64_t cols,
                             float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        float *out_r = out + r * cols;
        double sum = 0.0;
        for (int64_t c = 0; c < cols; c++)
            sum += (double)x_r[c];
        const double m = sum / (double)cols;
        /* Two passes: the mean of squared deviations does not cancel
         * catastrophically the way mean(x^2) - mean(x)^2 does. */
        double squares = 0.0;
        for (int64_t c = 0; c < cols; c++) {
            const double d = (double)x_r[c] - m;
            squares += d * d;
        }
        const double rs = 1.0 / sqrt(squares / (double)cols + (double)eps);
        for (int64_t c = 0; c < cols; c++) {
            double v = ((double)x_r[c] - m) * rs;
            if (gain != NULL)
                v *= (double)gain[c];
            if (bias != NULL)
                v += (double)bias[c];
            out_r[c] = (float)v;
        }
        mean[r] = (float)m;
        rstd[r] = (float)rs;
    }
}

void tlmi_layer_norm_backward(float *dx, float *dgain, float *dbias,
                              const float *dout, const float *x,
                              const float *gain, const float *mean,
                              const float *rstd, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        const float *dout_r = dout + r * cols;
        const double m = (double)mean[r], rs = (double)rstd[r];
        double sum_g = 0.0, sum_gx = 0.0;
        for (int64_t c = 0; c < cols; c++) {
            const double xhat = ((double)x_r[c] - m) * rs;
            const double d = (double)dout_r[c];
            const double g = gain != NULL ? d * (double)gain[c] : d;
            sum_g += g;
            sum_gx += g * xhat;
            if (dgain != NULL)
                dgain[c] += (float)(d * xhat);
            if (dbias != NULL)
                dbias[c] += dout_r[c];
        }
        if (dx == NULL)
            continue;
        const double mean_g = sum_g / (double)cols;
        const double mean_gx = sum_gx / (double)cols;
        float *dx_r = dx + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            const double xhat = ((double)x_r[c] - m) * rs;
            const double d = (double)dout_r[c];
            const double g = gain != NULL ? d * (double)gain[c] : d;
            dx_r[c] += (float)(rs * (g - mean_g - xhat * mean_gx));
        }
    }
}

void tlmi_rms_norm_forward(float *out, float *rstd, const float *x,
                           const float *gain, int64_t rows, int64_t cols,
                           float eps) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        float *out_r = out + r * cols;
        double squares = 0.0;
        for (int64_t c = 0; c < cols; c++)
            squares += (double)x_r[c] * (double)x_r[c];
        const double rs = 1.0 / sqrt(squares / (double)cols + (double)eps);
        for (int64_t c = 0; c < cols; c++) {
            double v = (double)x_r[c] * rs;
            if (gain != NULL)
                v *= (double)gain[c];
            out_r[c] = (float)v;
        }
        rstd[r] = (float)rs;
    }
}

void tlmi_rms_norm_backward(float *dx, float *dgain, const float *dout,
                            const float *x, const float *gain,
                            const float *rstd, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *x_r = x + r * cols;
        const float *dout_r = dout + r * cols;
        const double rs = (double)rstd[r];
        double sum_gx = 0.0;
        for (int64_t c = 0; c < cols; c++) {
            const double xhat = (double)x_r[c] * rs;
            const double d = (double)dout_r[c];
            const double g = gain != NULL ? d * (double)gain[c] : d;
            sum_gx += g * xhat;
            if (dgain != NULL)
                dgain[c] += (float)(d * xhat);
        }
        if (dx == NULL)
            continue;
        const double mean_gx = sum_gx / (double)cols;
        float *dx_r = dx + r * cols;
        for (int64_t c = 0; c < cols; c++) {
            const double xhat = (double)x_r[c] * rs;
            const double d = (double)dout_r[c];
            const double g = gain != NULL ? d * (double)gain[c] : d;
            dx_r[c] += (float)(rs * (g - xhat * mean_gx));
        }
    }
}

void tlmi_batch_norm_train_forward(float *out, float *mean, float *rstd,
                                   double *stats, const float *x,
                                   const float *gain, const float *bias,
                                   int64_t rows, int64_t cols, float eps) {
    double *batch_mean = stats, *batch_var = stats + cols;
    for (int64_t c = 0; c < cols; c++)
        batch_mean[c] = batch_var[c] = 0.0;
    /* Row by row, so x is read in memory order; the per-column sums are
     * what the [2, cols] scratch is for. */
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            batch_mean[c] += (double)x[r * cols + c];
    for (int64_t c = 0; c < cols; c++)
        batch_mean[c] /= (double)rows;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const double d = (double)x[r * cols + c] - batch_mean[c];
            batch_var[c] += d * d;
        }
    for (int64_t c = 0; c < cols; c++) {
        batch_var[c] /= (double)rows;
        mean[c] = (float)batch_mean[c];
        rstd[c] = (float)(1.0 / sqrt(batch_var[c] + (double)eps));
    }
    tlmi_batch_norm_normalize(out, x, mean, rstd, gain, bias, rows, cols);
}

void tlmi_batch_norm_eval_forward(float *out, float *mean, float *rstd,
                                  const float *x, const float *gain,
                                  const float *bias,
                                  const float *running_mean,
                                  const float *running_var, int64_t rows,
                                  int64_t cols, float eps) {
    for (int64_t c = 0; c < cols; c++) {
        mean[c] = running_mean[c];
        rstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
    }
    tlmi_batch_norm_normalize(out, x, mean, rstd, gain, bias, rows, cols);
}

void tlmi_batch_norm_normalize(float *out, const float *x, const float *mean,
                               const float *rstd, const float *gain,
                               const float *bias, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            double v = ((double)x[r * cols + c] - (double)mean[c]) *
                       (double)rstd[c];
            if (gain != NULL)
                v *= (double)gain[c];
            if (bias != NULL)
                v += (double)bias[c];
            out[r * cols + c] = (float)v;
        }
}

void tlmi_batch_norm_update_running(float *running_mean, float *running_var,
                                    const double *stats, int64_t rows,
                                    int64_t cols, float momentum) {
    const double keep = 1.0 - (double)momentum, take = (double)momentum;
    /* PyTorch's convention: the running variance estimates the population
     * variance, so it takes the unbiased batch variance (Bessel). */
    const double bessel = (double)rows / (double)(rows - 1);
    for (int64_t c = 0; c < cols; c++) {
        running_mean[c] =
            (float)(keep * (double)running_mean[c] + take * stats[c]);
        running_var[c] = (float)(keep * (double)running_var[c] +
                                 take * stats[cols + c] * bessel);
    }
}

void tlmi_batch_norm_backward(float *dx, float *dgain, float *dbias,
                              double *sums, const float *dout,
                              const float *x, const float *gain,
                              const float *mean, const float *rstd,
                              int64_t rows, int64_t cols, int training) {
    double *sum_dout = sums, *sum_dout_xhat = sums + cols;
    for (int64_t c = 0; c < cols; c++)
        sum_dout[c] = sum_dout_xhat[c] = 0.0;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const double xhat =
                ((double)x[r * cols + c] - (double)mean[c]) * (double)rstd[c];
            const double d = (double)dout[r * cols + c];
            sum_dout[c] += d;
            sum_dout_xhat[c] += d * xhat;
        }
    for (int64_t c = 0; c < cols; c++) {
        if (dgain != NULL)
            dgain[c] += (float)sum_dout_xhat[c];
        if (dbias != NULL)
            dbias[c] += (float)sum_dout[c];
    }
    if (dx == NULL)
        return;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const double scale =
                (gain != NULL ? (double)gain[c] : 1.0) * (double)rstd[c];
            const double d = (double)dout[r * cols + c];
            if (training) {
                const double xhat = ((double)x[r * cols + c] -
                                     (double)mean[c]) * (double)rstd[c];
                dx[r * cols + c] +=
                    (float)(scale * (d - sum_dout[c] / (double)rows -
                                     xhat * sum_dout_xhat[c] / (double)rows));
            } else {
                dx[r * cols + c] += (float)(scale * d);
            }
        }
}
