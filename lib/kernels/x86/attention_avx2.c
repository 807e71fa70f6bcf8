/*
 * Fused attention for AVX2 + FMA (16 ymm registers of 8 floats): the
 * vector operations attention_simd.h is written with, then that file.
 * Its inner kernels use 8 accumulators (4 query rows x 2 vectors).
 */
#include <immintrin.h>

#include "kernels/attention.h"

#define ATTN_ISA avx2
#define ATTN_QB 6 /* 6 query rows x 2 vectors = 12 accumulators */
#define W 8
typedef __m256 VF;

#define vf_zero() _mm256_setzero_ps()
#define vf_set1(x) _mm256_set1_ps(x)
#define vf_load(p) _mm256_loadu_ps(p)
#define vf_store(p, v) _mm256_storeu_ps((p), (v))
#define vf_bcast(p) _mm256_broadcast_ss(p)
#define vf_add(a, b) _mm256_add_ps((a), (b))
#define vf_sub(a, b) _mm256_sub_ps((a), (b))
#define vf_mul(a, b) _mm256_mul_ps((a), (b))
#define vf_max(a, b) _mm256_max_ps((a), (b))
#define vf_fma(a, b, c) _mm256_fmadd_ps((a), (b), (c))

static inline float vf_hsum(VF v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

static inline float vf_hmax(VF v) {
    __m128 x = _mm_max_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    x = _mm_max_ps(x, _mm_movehl_ps(x, x));
    x = _mm_max_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* 2^x for x < 128 (see TLMI_EXP2_* in kernels/attention.h). max(MIN, x)
 * in this order keeps a NaN x. */
static inline VF vf_exp2(VF x) {
    x = _mm256_max_ps(_mm256_set1_ps(TLMI_EXP2_MIN), x);
    const __m256i n_i = _mm256_cvtps_epi32(x);
    const VF r = _mm256_sub_ps(x, _mm256_cvtepi32_ps(n_i));
    VF p = _mm256_set1_ps(TLMI_EXP2_C6);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP2_C5));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP2_C4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP2_C3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP2_C2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP2_C1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    const VF scale = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(n_i, _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(p, scale);
}

/* dst[d * ldd + r] = src[r * lds + d] for r, d < 8: pairs of rows
 * interleaved, then quadruples, then the 128-bit halves swapped. */
#define ATTN_HAVE_TRANSPOSE 1
static inline void vf_transpose(float *dst, int64_t ldd, const float *src,
                                int64_t lds) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        const __m256 a = _mm256_loadu_ps(src + i * lds);
        const __m256 b = _mm256_loadu_ps(src + (i + 1) * lds);
        t[i] = _mm256_unpacklo_ps(a, b);     /* a0 b0 a1 b1 | a4 b4 a5 b5 */
        t[i + 1] = _mm256_unpackhi_ps(a, b); /* a2 b2 a3 b3 | a6 b6 a7 b7 */
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);     /* column 0 | 4 */
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee); /* 1 | 5 */
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44); /* 2 | 6 */
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee); /* 3 | 7 */
    }
    for (int d = 0; d < 4; d++) {
        _mm256_storeu_ps(dst + d * ldd,
                         _mm256_permute2f128_ps(u[d], u[d + 4], 0x20));
        _mm256_storeu_ps(dst + (d + 4) * ldd,
                         _mm256_permute2f128_ps(u[d], u[d + 4], 0x31));
    }
}

#include "kernels/attention_simd.h"
