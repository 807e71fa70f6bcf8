#include "softmax.h"

#include <math.h>

static float row_max(const float *x, int64_t cols) {
    float max = x[0];
    for (int64_t j = 1; j < cols; j++)
        if (x[j] > max)
            max = x[j];
    return max;
}

/* The sum of exp(x - max) over a row, in double. */
static double sum_exp(const float *x, int64_t cols, float max) {
    double sum = 0.0;
    for (int64_t j = 0; j < cols; j++)
        sum += exp((double)x[j] - (double)max);
    return sum;
}

/* Softmax, or log-softmax when `log_output`, over each row of x [rows,
 * cols]. exp and the sum in double: each output is rounded once, and long
 * rows stay exact to float precision. The sum is at least 1 (the
 * maximum's own term), so never 0. The differences x - max are exact in
 * double even for FLT_MAX beside -FLT_MAX. */
static void softmax_rows(float *out, const float *x, int64_t rows,
                         int64_t cols, int log_output) {
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        float *yr = out + r * cols;
        const float max = row_max(xr, cols);
        const double sum = sum_exp(xr, cols, max);
        if (log_output) {
            /* log(sum) is in [0, log(cols)]: the shift applied to every
             * entry after the maximum is taken out. */
            const double log_sum = log(sum);
            for (int64_t j = 0; j < cols; j++)
                yr[j] = (float)(((double)xr[j] - (double)max) - log_sum);
        } else {
            const double inv = 1.0 / sum;
            for (int64_t j = 0; j < cols; j++)
                yr[j] = (float)(exp((double)xr[j] - (double)max) * inv);
        }
    }
}

void tlmi_softmax_forward(float *out, const float *x, int64_t rows,
                          int64_t cols) {
    softmax_rows(out, x, rows, cols, 0);
}

void tlmi_softmax_backward(float *dx, const float *dout, const float *out,
                           int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = dout + r * cols, *yr = out + r * cols;
        float *dxr = dx + r * cols;
        double dot = 0.0;
        for (int64_t j = 0; j < cols; j++)
            dot += (double)gr[j] * (double)yr[j];
        for (int64_t j = 0; j < cols; j++)
            dxr[j] += (float)((double)yr[j] * ((double)gr[j] - dot));
    }
}

void tlmi_log_softmax_forward(float *out, const float *x, int64_t rows,
                              int64_t cols) {
    softmax_rows(out, x, rows, cols, 1);
}

void tlmi_log_softmax_backward(float *dx, const float *dout,
                               const float *out, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++) {
        const float *gr = dout + r * cols, *yr = out + r * cols;
        float *dxr = dx + r * cols;
        double total = 0.0;
        for (int64_t j = 0; j < cols; j++)
            total += (double)gr[j];
        for (int64_t j = 0; j < cols; j++)
            dxr[j] += (float)((double)gr[j] - (double)expf(yr[j]) * total);
    }
}
