/*
 * Products with bf16 weights for AVX2 + FMA (16 ymm registers of 8
 * floats): widen and FMA, kernels/weights_bf16_tmpl.c over the vectors of
 * kernels/simd.h, compiled with this file's flags.
 *
 * Widening: one 256-bit load holds 16 bf16, two to a 32-bit lane; a shift
 * left by 16 gives the even elements as floats, a mask of the top halves
 * the odd ones: two operations for 16 weights (a zero-extending load and
 * a shift per 8 would take four), so `prepare` splits each step of 16
 * floats of A into its even and odd elements alike.
 *
 * Tiles: R <= 2 rows of A against one row of W at a time, so that W is
 * read as one sequential stream (rows read side by side measured 1.2-1.5x
 * slower from memory), 2 steps of 16 per turn: 4 R accumulators, 2 R
 * vectors of A, 2 of W (14 of the 16 registers at R = 2).
 * direct_max_m 4: above, the driver's dequantize + float32 GEMM was
 * faster (in cache; docs/performance.md).
 */
#define TLMI_SIMD_AVX2 1
#include "kernels/simd.h"

#include "tlm.h"

#define TLMI_ISA_SUFFIX avx2
#define TLMI_WBF16_NAME "avx2"
#define TLMI_WBF16_ISA TLMI_ISA_AVX2
#define TLMI_WBF16_FEATURES (TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA)
#define TLMI_WBF16_MAX_R 2
#define TLMI_WBF16_J(R) 1
#define TLMI_WBF16_U(R) 2
#define TLMI_WBF16_DIRECT_MAX_M 4
#define TLMI_WBF16_SPLIT 1

static inline void wbf16_pair(const uint16_t *p, tlmi_vf *even,
                              tlmi_vf *odd) {
    __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
#if defined(__GNUC__)
    /* one load for both halves (see the AVX-512 file) */
    __asm__("" : "+x"(v));
#endif
    *even = _mm256_castsi256_ps(_mm256_slli_epi32(v, 16));
    *odd = _mm256_castsi256_ps(
        _mm256_and_si256(v, _mm256_set1_epi32((int)0xffff0000u)));
}

static inline tlmi_vf wbf16_widen(const uint16_t *p) {
    const __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}

/* Nearest even on the bits, as tlmi_float_to_bf16: add 0x7fff plus the
 * lowest kept bit and drop the low 16 bits; a NaN keeps its top bits with
 * the quiet bit set instead. */
static inline void wbf16_narrow(uint16_t *dst, tlmi_vf v) {
    const __m256i bits = _mm256_castps_si256(v);
    const __m256i lsb =
        _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(
        _mm256_add_epi32(bits, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7fff))),
        16);
    const __m256i quiet =
        _mm256_or_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(0x40));
    const __m256i nan = _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
    /* 8 lanes of 32 bits (each < 2^16) to 8 of 16: packus works within
     * 128-bit halves, the permute brings the two results together. */
    const __m256i packed =
        _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
    _mm_storeu_si128((__m128i *)(void *)dst, _mm256_castsi256_si128(packed));
}

#include "kernels/weights_bf16_tmpl.c"
