/*
 * Matrix products with bf16 inputs and float32 accumulation (issue #22,
 * bf16 mixed-precision training): the same contract as the float32
 * kernels of gemm.h (float32 A, B, C and bias, the transpose flags,
 * accumulate, column ranges for the thread pool, a caller-owned
 * workspace), with the product defined as
 *   C [M, N] = sum over p of bf16(op(A)[i, p]) * bf16(op(B)[p, j])
 *              (+ C when accumulate) (+ bias [N] per row),
 * where bf16(x) is x rounded to bf16, nearest even (tlmi_float_to_bf16,
 * base/half.h), each product is exact in float32 (two 8-bit significands
 * make at most 16 bits) and the sum is taken in float32. Only A and B
 * are rounded: the bias and the C accumulated into stay float32.
 *
 * Variants (one implementation each, chosen at run time like the
 * weights kernels of weights.h):
 *   - "scalar": the reference (kernels/scalar/matmul.h tlmi_gemm_bf16).
 *   - "avx2", "avx512", "neon": the float32 blocked GEMM of that ISA with
 *     packing routines that round every packed value to bf16: its fused
 *     multiply-adds then add exact products, so they compute the
 *     definition, in another summation order. No faster than float32
 *     (a little slower: one more pass over each packed block).
 *   - "avx512-bf16": vdpbf16ps (AVX512_BF16), packing pairs of bf16 along
 *     K and multiplying 32 pairs per instruction, twice the multiply-adds
 *     of float32 FMA per instruction. The instruction treats bf16
 *     denormals (|x| < 2^-126) as zero and flushes denormal results, and
 *     adds each lane's pair of products to the sum one after the other,
 *     each rounded to nearest even.
 *   - "neon-bf16": BFDOT (Armv8.6 BF16) by element, the same pair layout
 *     along K; its additions round to odd (without FEAT_EBF16) and flush
 *     denormals.
 * Against the reference, a variant's results differ only in the order
 * of the float32 summation (and, for the bf16 instructions, denormals
 * flushed and BFDOT's rounding to odd), so
 * the tests hold them to the float32 GEMM's tolerance.
 *
 * Every variant computes each element of C with the same operations
 * whatever column range holds it, when ranges start at multiples of its
 * gemm_col_align, and whatever range of rows (see gemm.h): any split over
 * threads gives the same bits.
 */
#ifndef TLM_LIB_KERNELS_GEMM_BF16_H
#define TLM_LIB_KERNELS_GEMM_BF16_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dispatch.h"
#include "kernels/gemm.h"

typedef struct tlmi_gemm_bf16_kernels {
    int isa;           /* the enum tlmi_isa whose table it goes with */
    const char *name;  /* "scalar", "avx2", "avx512", "avx512-bf16", "neon",
                          "neon-bf16" */
    uint32_t features; /* CPU features it needs beyond its ISA's */
    tlmi_gemm_fn gemm;
    tlmi_gemm_workspace_fn gemm_workspace;
    tlmi_gemm_cols_fn gemm_cols;
    int gemm_col_align;
} tlmi_gemm_bf16_kernels;

/* Every variant compiled into this build that this CPU can run, best
 * first, NULL-terminated (tests, benchmarks). */
const tlmi_gemm_bf16_kernels *const *tlmi_gemm_bf16_all(void);

/* The best variant for a context whose float32 table is `kernels`: one of
 * the table's own ISA whose features are all in `features` (detected &
 * the experimental mask, as the context saw them), so TLM_CPU=avx2 gives
 * the avx2 variant. Never NULL (the scalar one at worst). */
const tlmi_gemm_bf16_kernels *tlmi_gemm_bf16_choose(
    const tlmi_kernels *kernels, uint32_t features);

/* The entries of each ISA (as TLMI_GEMM_DECLARE in gemm.h). */
#define TLMI_GEMM_BF16_DECLARE(isa)                                         \
    void tlmi_gemm_bf16_##isa(float *c, const float *a, const float *b,     \
                              const float *bias, int64_t m, int64_t n,      \
                              int64_t k, int transpose_a, int transpose_b,  \
                              int accumulate, float *workspace);            \
    size_t tlmi_gemm_bf16_workspace_##isa(int64_t m, int64_t n, int64_t k,  \
                                          int transpose_a,                  \
                                          int transpose_b);                 \
    void tlmi_gemm_bf16_cols_##isa(float *c, const float *a,                \
                                   const float *b, const float *bias,       \
                                   int64_t m, int64_t n, int64_t k,         \
                                   int transpose_a, int transpose_b,        \
                                   int accumulate, int64_t j_begin,         \
                                   int64_t j_end, float *workspace)

TLMI_GEMM_BF16_DECLARE(scalar);
#if defined(TLMI_HAVE_AVX2)
TLMI_GEMM_BF16_DECLARE(avx2);
#endif
#if defined(TLMI_HAVE_AVX512)
TLMI_GEMM_BF16_DECLARE(avx512);
#endif
#if defined(TLMI_HAVE_AVX512_BF16)
TLMI_GEMM_BF16_DECLARE(avx512bf16);
#endif
#if defined(TLMI_HAVE_NEON)
TLMI_GEMM_BF16_DECLARE(neon);
#endif
#if defined(TLMI_HAVE_NEON_BF16)
TLMI_GEMM_BF16_DECLARE(neonbf16);
#endif

#endif
