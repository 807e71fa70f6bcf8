/*
 * Products with bf16 weights for AVX-512F (32 zmm registers of 16
 * floats): widen and FMA, kernels/weights_bf16_tmpl.c over the vectors of
 * kernels/simd.h, compiled with this file's flags (no AVX512BW needed).
 *
 * Widening as in weights_bf16_avx2.c: one 512-bit load of 32 bf16, a
 * shift for the even elements and a mask for the odd ones, `prepare`
 * splitting A alike.
 *
 * Tiles: R <= 4 rows of A against one row of W at a time (one sequential
 * stream of W, see the AVX2 file), U = 4, 2, 1 steps of 32 per turn for
 * R = 1, 2, 3-4: 2 R U accumulators (8 FMA chains at R = 1, 2 and 4; 6 at
 * 3). direct_max_m 8: above, dequantize + float32 GEMM was faster.
 */
#define TLMI_SIMD_AVX512 1
#include "kernels/simd.h"

#include "tlm.h"

#define TLMI_ISA_SUFFIX avx512
#define TLMI_WBF16_NAME "avx512"
#define TLMI_WBF16_ISA TLMI_ISA_AVX512
#define TLMI_WBF16_FEATURES                                                 \
    (TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA | TLM_CPU_AVX512F)
#define TLMI_WBF16_MAX_R 4
#define TLMI_WBF16_J(R) 1
#define TLMI_WBF16_U(R) ((R) == 1 ? 4 : (R) == 2 ? 2 : 1)
#define TLMI_WBF16_DIRECT_MAX_M 8
#define TLMI_WBF16_SPLIT 1

static inline void wbf16_pair(const uint16_t *p, tlmi_vf *even,
                              tlmi_vf *odd) {
    __m512i v = _mm512_loadu_si512((const void *)p);
#if defined(__GNUC__)
    /* one load for both halves: without this the compiler folds the load
     * into the shift and the mask, loading the same line twice */
    __asm__("" : "+v"(v));
#endif
    *even = _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
    *odd = _mm512_castsi512_ps(
        _mm512_and_si512(v, _mm512_set1_epi32((int)0xffff0000u)));
}

static inline tlmi_vf wbf16_widen(const uint16_t *p) {
    const __m256i v = _mm256_loadu_si256((const __m256i *)(const void *)p);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(v), 16));
}

/* Nearest even on the bits, as tlmi_float_to_bf16 (see the AVX2 file);
 * vpmovdw (AVX-512F) narrows the 16 lanes. */
static inline void wbf16_narrow(uint16_t *dst, tlmi_vf v) {
    const __m512i bits = _mm512_castps_si512(v);
    const __m512i lsb =
        _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_srli_epi32(
        _mm512_add_epi32(bits, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))),
        16);
    const __m512i quiet =
        _mm512_or_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(0x40));
    const __mmask16 nan = _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
    const __m512i r = _mm512_mask_blend_epi32(nan, rounded, quiet);
    _mm256_storeu_si256((__m256i *)(void *)dst, _mm512_cvtepi32_epi16(r));
}

#include "kernels/weights_bf16_tmpl.c"
