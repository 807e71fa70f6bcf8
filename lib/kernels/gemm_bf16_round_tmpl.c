/*
 * The bf16 products of kernels/gemm_bf16.h on an ISA without bf16
 * arithmetic: the float32 blocked GEMM of kernels/gemm_tmpl.c with
 * packing routines that round each packed value to bf16 (nearest even,
 * bitwise tlmi_float_to_bf16). Its micro-kernels then multiply bf16
 * values, whose products are exact in float32, so each fused
 * multiply-add adds the exact product to the float32 sum: the
 * definition, in the float32 GEMM's summation order.
 *
 * Included by a per-ISA GEMM file (x86/gemm_avx2.c, x86/gemm_avx512.c,
 * arm/gemm_neon.c) after kernels/gemm_tmpl.c, in the same translation
 * unit: it reuses that template's static pack_a, pack_b and micro and
 * the including file's TLMI_GEMM_* sizes. Every product goes through the
 * packed kernels (never A or B read in place, never the small-M path,
 * which would see unrounded values), so the column alignment is NR.
 * Exports tlmi_gemm_bf16_<isa>, tlmi_gemm_bf16_cols_<isa> and
 * tlmi_gemm_bf16_workspace_<isa>.
 */
#ifndef TLMI_ISA_SUFFIX
#error "include kernels/gemm_tmpl.c (and its sizes) before this file"
#endif

#include <stdint.h>
#include <string.h>

#include "kernels/gemm_bf16.h"

#if defined(__AVX2__)
#include <immintrin.h>
#elif defined(__ARM_NEON)
#include <arm_neon.h>
#endif

/* The bits of x rounded to bf16 (nearest even; NaNs kept, quiet) in the
 * top half of a float32, as tlmi_float_to_bf16 rounds. */
static inline uint32_t TLMI_ISA_NAME(bf16_round_bits)(uint32_t bits) {
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (bits | 0x00400000u) & 0xffff0000u;
    return (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u;
}

/* x[i] = bf16(x[i]) as a float32, for i < n. */
static void TLMI_ISA_NAME(bf16_round_floats)(float *x, int64_t n) {
    int64_t i = 0;
#if defined(__AVX2__)
    const __m256i keep = _mm256_set1_epi32((int)0xffff0000u);
    const __m256i half = _mm256_set1_epi32(0x7fff);
    const __m256i one = _mm256_set1_epi32(1);
    const __m256i magnitude = _mm256_set1_epi32(0x7fffffff);
    const __m256i infinity = _mm256_set1_epi32(0x7f800000);
    const __m256i quiet = _mm256_set1_epi32(0x00400000);
    for (; i + 8 <= n; i += 8) {
        const __m256i v = _mm256_castps_si256(_mm256_loadu_ps(x + i));
        const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(v, 16), one);
        const __m256i rounded = _mm256_and_si256(
            _mm256_add_epi32(v, _mm256_add_epi32(half, odd)), keep);
        /* Magnitudes compare as signed integers: both are below 2^31. */
        const __m256i nan =
            _mm256_cmpgt_epi32(_mm256_and_si256(v, magnitude), infinity);
        const __m256i quieted =
            _mm256_and_si256(_mm256_or_si256(v, quiet), keep);
        _mm256_storeu_ps(x + i, _mm256_castsi256_ps(_mm256_blendv_epi8(
                                    rounded, quieted, nan)));
    }
#elif defined(__ARM_NEON)
    const uint32x4_t keep = vdupq_n_u32(0xffff0000u);
    const uint32x4_t half = vdupq_n_u32(0x7fffu);
    const uint32x4_t one = vdupq_n_u32(1u);
    const uint32x4_t magnitude = vdupq_n_u32(0x7fffffffu);
    const uint32x4_t infinity = vdupq_n_u32(0x7f800000u);
    const uint32x4_t quiet = vdupq_n_u32(0x00400000u);
    for (; i + 4 <= n; i += 4) {
        const uint32x4_t v = vreinterpretq_u32_f32(vld1q_f32(x + i));
        const uint32x4_t odd = vandq_u32(vshrq_n_u32(v, 16), one);
        const uint32x4_t rounded =
            vandq_u32(vaddq_u32(v, vaddq_u32(half, odd)), keep);
        const uint32x4_t nan = vcgtq_u32(vandq_u32(v, magnitude), infinity);
        const uint32x4_t quieted = vandq_u32(vorrq_u32(v, quiet), keep);
        vst1q_f32(x + i, vreinterpretq_f32_u32(vbslq_u32(nan, quieted, rounded)));
    }
#endif
    for (; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, x + i, sizeof bits);
        bits = TLMI_ISA_NAME(bf16_round_bits)(bits);
        memcpy(x + i, &bits, sizeof bits);
    }
}

/* pack_a and pack_b of gemm_tmpl.c, then every packed value rounded:
 * ceil(mc / MR) panels of kc x MR, ceil(nc / NR) of kc x NR. */
static void TLMI_ISA_NAME(bf16_pack_a)(float *ap, const float *a,
                                       int64_t lda, int transpose_a,
                                       int64_t i0, int64_t p0, int64_t mc,
                                       int64_t kc) {
    pack_a(ap, a, lda, transpose_a, i0, p0, mc, kc);
    const int64_t panels = (mc + TLMI_GEMM_MR - 1) / TLMI_GEMM_MR;
    TLMI_ISA_NAME(bf16_round_floats)(ap, panels * TLMI_GEMM_MR * kc);
}

static void TLMI_ISA_NAME(bf16_pack_b)(float *bp, const float *b,
                                       int64_t ldb, int transpose_b,
                                       int64_t p0, int64_t j0, int64_t kc,
                                       int64_t nc) {
    pack_b(bp, b, ldb, transpose_b, p0, j0, kc, nc);
    const int64_t panels = (nc + TLMI_GEMM_NR - 1) / TLMI_GEMM_NR;
    TLMI_ISA_NAME(bf16_round_floats)(bp, panels * TLMI_GEMM_NR * kc);
}

/* The float32 blocking with the rounding packs and no in-place kernels. */
static const tlmi_gemm_blocking TLMI_ISA_NAME(bf16_blocking) = {
    .mr = TLMI_GEMM_MR, .nr = TLMI_GEMM_NR, .mc = TLMI_GEMM_MC,
    .kc = TLMI_GEMM_KC, .nc = TLMI_GEMM_NC, .a_block = TLMI_GEMM_A_BLOCK,
    .pack_a = TLMI_ISA_NAME(bf16_pack_a),
    .pack_b = TLMI_ISA_NAME(bf16_pack_b),
    .micro = micro,
};

size_t TLMI_ISA_NAME(tlmi_gemm_bf16_workspace)(int64_t m, int64_t n,
                                               int64_t k, int transpose_a,
                                               int transpose_b) {
    (void)transpose_a, (void)transpose_b;
    return tlmi_gemm_blocked_workspace(&TLMI_ISA_NAME(bf16_blocking), m, n,
                                       k);
}

void TLMI_ISA_NAME(tlmi_gemm_bf16_cols)(float *c, const float *a,
                                        const float *b, const float *bias,
                                        int64_t m, int64_t n, int64_t k,
                                        int transpose_a, int transpose_b,
                                        int accumulate, int64_t j_begin,
                                        int64_t j_end, float *workspace) {
    tlmi_gemm_blocked(&TLMI_ISA_NAME(bf16_blocking), c, a, b, bias, m, n, k,
                      transpose_a, transpose_b, accumulate, j_begin, j_end,
                      workspace);
}

void TLMI_ISA_NAME(tlmi_gemm_bf16)(float *c, const float *a, const float *b,
                                   const float *bias, int64_t m, int64_t n,
                                   int64_t k, int transpose_a,
                                   int transpose_b, int accumulate,
                                   float *workspace) {
    TLMI_ISA_NAME(tlmi_gemm_bf16_cols)(c, a, b, bias, m, n, k, transpose_a,
                                       transpose_b, accumulate, 0, n,
                                       workspace);
}
