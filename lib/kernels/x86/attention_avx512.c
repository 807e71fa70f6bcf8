/*
 * Fused attention for AVX-512F (32 zmm registers of 16 floats): the
 * vector operations attention_simd.h is written with, then that file.
 * Panels of 32 keys; 4 query rows x 2 vectors = 8 accumulators.
 */
#include <immintrin.h>

#include "kernels/attention.h"

#define ATTN_ISA avx512
#define ATTN_QB 8 /* 32 registers: 8 query rows x 2 vectors = 16 accumulators */
#define W 16
typedef __m512 VF;

#define vf_zero() _mm512_setzero_ps()
#define vf_set1(x) _mm512_set1_ps(x)
#define vf_load(p) _mm512_loadu_ps(p)
#define vf_store(p, v) _mm512_storeu_ps((p), (v))
#define vf_bcast(p) _mm512_set1_ps(*(p))
#define vf_add(a, b) _mm512_add_ps((a), (b))
#define vf_sub(a, b) _mm512_sub_ps((a), (b))
#define vf_mul(a, b) _mm512_mul_ps((a), (b))
#define vf_max(a, b) _mm512_max_ps((a), (b))
#define vf_fma(a, b, c) _mm512_fmadd_ps((a), (b), (c))
#define vf_hsum(v) _mm512_reduce_add_ps(v)
#define vf_hmax(v) _mm512_reduce_max_ps(v)

/* exp (see attention_simd.h for the method and its error). */
static inline VF vf_exp(VF x) {
    const __mmask16 keep =
        _mm512_cmp_ps_mask(x, _mm512_set1_ps(TLMI_EXP_MIN), _CMP_GE_OQ);
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(TLMI_EXP_MIN)),
                      _mm512_set1_ps(TLMI_EXP_MAX));
    const __m512i n_i =
        _mm512_cvtps_epi32(_mm512_mul_ps(x, _mm512_set1_ps(TLMI_EXP_LOG2E)));
    const VF n = _mm512_cvtepi32_ps(n_i);
    VF r = _mm512_fnmadd_ps(n, _mm512_set1_ps(TLMI_EXP_LN2_HI), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(TLMI_EXP_LN2_LO), r);
    VF p = _mm512_set1_ps(TLMI_EXP_P0);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP_P1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP_P2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP_P3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP_P4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP_P5));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r),
                        _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    const VF scale = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_add_epi32(n_i, _mm512_set1_epi32(127)), 23));
    return _mm512_maskz_mul_ps(keep, p, scale);
}

/* 2^x for x <= 0 (see TLMI_EXP2_* in kernels/attention.h). max(MIN, x)
 * in this order keeps a NaN x. */
static inline VF vf_exp2_nonpos(VF x) {
    x = _mm512_max_ps(_mm512_set1_ps(TLMI_EXP2_MIN), x);
    const __m512i n_i = _mm512_cvtps_epi32(x);
    const VF r = _mm512_sub_ps(x, _mm512_cvtepi32_ps(n_i));
    VF p = _mm512_set1_ps(TLMI_EXP2_C6);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP2_C5));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP2_C4));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP2_C3));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP2_C2));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(TLMI_EXP2_C1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    const VF scale = _mm512_castsi512_ps(_mm512_slli_epi32(
        _mm512_add_epi32(n_i, _mm512_set1_epi32(127)), 23));
    return _mm512_mul_ps(p, scale);
}

#include "kernels/attention_simd.h"
