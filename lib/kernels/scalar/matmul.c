#include "matmul.h"

#include "base/half.h"

void tlmi_gemm(float *c, const float *a, const float *b, const float *bias,
               int64_t m, int64_t n, int64_t k, int transpose_a,
               int transpose_b, int accumulate) {
    tlmi_gemm_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                   accumulate, 0, n);
}

void tlmi_gemm_cols(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate,
                    int64_t j_begin, int64_t j_end) {
    for (int64_t i = 0; i < m; i++) {
        float *c_row = c + i * n;
        if (!accumulate)
            for (int64_t j = j_begin; j < j_end; j++)
                c_row[j] = 0.0f;
        if (bias != 0)
            for (int64_t j = j_begin; j < j_end; j++)
                c_row[j] += bias[j];
        if (!transpose_b) {
            /* i-p-j order: B is read row by row. */
            for (int64_t p = 0; p < k; p++) {
                float a_ip = transpose_a ? a[p * m + i] : a[i * k + p];
                const float *b_row = b + p * n;
                for (int64_t j = j_begin; j < j_end; j++)
                    c_row[j] += a_ip * b_row[j];
            }
        } else {
            for (int64_t j = j_begin; j < j_end; j++) {
                const float *b_row = b + j * k;
                float sum = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    sum += (transpose_a ? a[p * m + i] : a[i * k + p]) * b_row[p];
                c_row[j] += sum;
            }
        }
    }
}

/* x rounded to bf16 and widened back (exactly) to float32. */
static float bf16_rounded(float x) {
    return tlmi_bf16_to_float(tlmi_float_to_bf16(x));
}

void tlmi_gemm_bf16(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate) {
    tlmi_gemm_bf16_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                        accumulate, 0, n);
}

void tlmi_gemm_bf16_cols(float *c, const float *a, const float *b,
                         const float *bias, int64_t m, int64_t n, int64_t k,
                         int transpose_a, int transpose_b, int accumulate,
                         int64_t j_begin, int64_t j_end) {
    for (int64_t i = 0; i < m; i++) {
        float *c_row = c + i * n;
        if (!accumulate)
            for (int64_t j = j_begin; j < j_end; j++)
                c_row[j] = 0.0f;
        if (bias != 0)
            for (int64_t j = j_begin; j < j_end; j++)
                c_row[j] += bias[j];
        if (!transpose_b) {
            for (int64_t p = 0; p < k; p++) {
                const float a_ip =
                    bf16_rounded(transpose_a ? a[p * m + i] : a[i * k + p]);
                const float *b_row = b + p * n;
                for (int64_t j = j_begin; j < j_end; j++)
                    c_row[j] += a_ip * bf16_rounded(b_row[j]);
            }
        } else {
            for (int64_t j = j_begin; j < j_end; j++) {
                const float *b_row = b + j * k;
                float sum = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    sum += bf16_rounded(transpose_a ? a[p * m + i]
                                                    : a[i * k + p]) *
                           bf16_rounded(b_row[p]);
                c_row[j] += sum;
            }
        }
    }
}

void tlmi_bias_backward(float *dbias, const float *dc, int64_t m, int64_t n) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            dbias[j] += dc[i * n + j];
}
