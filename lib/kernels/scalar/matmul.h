/* Reference matrix product. Row-major; op(X) is X or its transpose.
 * C [M, N] = op(A) . op(B) (+ C when accumulate) (+ bias [N] per row).
 * A is [M, K] (or [K, M] when transpose_a), B is [K, N] (or [N, K] when
 * transpose_b). */
#ifndef TLM_LIB_KERNELS_SCALAR_MATMUL_H
#define TLM_LIB_KERNELS_SCALAR_MATMUL_H

#include <stdint.h>

void tlmi_gemm(float *c, const float *a, const float *b, const float *bias,
               int64_t m, int64_t n, int64_t k, int transpose_a,
               int transpose_b, int accumulate);

/* The columns [j_begin, j_end) of C only (0 <= j_begin <= j_end <= N);
 * each element computed exactly as tlmi_gemm computes it. */
void tlmi_gemm_cols(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate,
                    int64_t j_begin, int64_t j_end);

/* The reference of the bf16 products (kernels/gemm_bf16.h): the same as
 * tlmi_gemm and tlmi_gemm_cols with every element of op(A) and op(B)
 * first rounded to bf16 (nearest even, tlmi_float_to_bf16), the products
 * (exact) summed in float32 in the same order. */
void tlmi_gemm_bf16(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate);
void tlmi_gemm_bf16_cols(float *c, const float *a, const float *b,
                         const float *bias, int64_t m, int64_t n, int64_t k,
                         int transpose_a, int transpose_b, int accumulate,
                         int64_t j_begin, int64_t j_end);

/* dbias[j] += sum over rows of dc[row, j], dc [M, N] */
void tlmi_bias_backward(float *dbias, const float *dc, int64_t m, int64_t n);

#endif
