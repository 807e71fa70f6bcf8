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

/* exp (see attention_simd.h for the method and its error). */
static inline VF vf_exp(VF x) {
    const VF under = _mm256_cmp_ps(x, _mm256_set1_ps(TLMI_EXP_MIN), _CMP_LT_OQ);
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(TLMI_EXP_MIN)),
                      _mm256_set1_ps(TLMI_EXP_MAX));
    const __m256i n_i =
        _mm256_cvtps_epi32(_mm256_mul_ps(x, _mm256_set1_ps(TLMI_EXP_LOG2E)));
    const VF n = _mm256_cvtepi32_ps(n_i);
    VF r = _mm256_fnmadd_ps(n, _mm256_set1_ps(TLMI_EXP_LN2_HI), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(TLMI_EXP_LN2_LO), r);
    VF p = _mm256_set1_ps(TLMI_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(TLMI_EXP_P5));
    p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r),
                        _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const VF scale = _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_add_epi32(n_i, _mm256_set1_epi32(127)), 23));
    return _mm256_andnot_ps(under, _mm256_mul_ps(p, scale));
}

#include "kernels/attention_simd.h"
