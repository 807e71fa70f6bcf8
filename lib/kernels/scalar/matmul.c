#include "matmul.h"

#include "base/half.h"

void tlmi_gemm(float *c, const float *a, const float *b, const float *bias,
               int64_t m, int64_t n, int64_t k, int transpose_a,
               int transpose_b, int accumulate) {
    tlmi_gemm_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                   accumulate, 0, n);
}

/* x, or x rounded to bf16 and widened back (exactly) to float32. */
static inline float operand(float x, int round_bf16) {
    return round_bf16 ? tlmi_bf16_to_float(tlmi_float_to_bf16(x)) : x;
}

/* The one loop nest of both references: tlmi_gemm_bf16 is, by
 * construction, tlmi_gemm on the rounded operands. */
static void gemm_cols(float *c, const float *a, const float *b,
                      const float *bias, int64_t m, int64_t n, int64_t k,
                      int transpose_a, int transpose_b, int accumulate,
                      int64_t j_begin, int64_t j_end, int round_bf16) {
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
                const float a_ip =
                    operand(transpose_a ? a[p * m + i] : a[i * k + p], round_bf16);
                const float *b_row = b + p * n;
                for (int64_t j = j_begin; j < j_end; j++)
                    c_row[j] += a_ip * operand(b_row[j], round_bf16);
            }
        } else {
            for (int64_t j = j_begin; j < j_end; j++) {
                const float *b_row = b + j * k;
                float sum = 0.0f;
                for (int64_t p = 0; p < k; p++)
                    sum += operand(transpose_a ? a[p * m + i] : a[i * k + p],
                                   round_bf16) *
                           operand(b_row[p], round_bf16);
                c_row[j] += sum;
            }
        }
    }
}

void tlmi_gemm_cols(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate,
                    int64_t j_begin, int64_t j_end) {
    gemm_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b, accumulate,
              j_begin, j_end, 0);
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
    gemm_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b, accumulate,
              j_begin, j_end, 1);
}

void tlmi_bias_backward(float *dbias, const float *dc, int64_t m, int64_t n) {
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++)
            dbias[j] += dc[i * n + j];
}
