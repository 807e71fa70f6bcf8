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

/* 2^x for x < 128 (see TLMI_EXP2_* in kernels/attention.h). max(MIN, x)
 * in this order keeps a NaN x. */
static inline VF vf_exp2(VF x) {
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

/* dst[d * ldd + r] = src[r * lds + d] for r, d < 16: pairs of rows
 * interleaved and quadruples gathered within each 128-bit lane (as a 4 x 4
 * transpose per lane), then the lanes themselves transposed 4 x 4. */
#define ATTN_HAVE_TRANSPOSE 1
static inline void vf_transpose(float *dst, int64_t ldd, const float *src,
                                int64_t lds) {
    __m512 t[16], u[16];
    for (int i = 0; i < 16; i += 2) {
        const __m512 a = _mm512_loadu_ps(src + i * lds);
        const __m512 b = _mm512_loadu_ps(src + (i + 1) * lds);
        t[i] = _mm512_unpacklo_ps(a, b);
        t[i + 1] = _mm512_unpackhi_ps(a, b);
    }
    /* u[4 g + m], lane k: rows 4g .. 4g + 3 of column 4k + m */
    for (int g = 0; g < 16; g += 4) {
        u[g] = _mm512_shuffle_ps(t[g], t[g + 2], 0x44);
        u[g + 1] = _mm512_shuffle_ps(t[g], t[g + 2], 0xee);
        u[g + 2] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        u[g + 3] = _mm512_shuffle_ps(t[g + 1], t[g + 3], 0xee);
    }
    for (int m = 0; m < 4; m++) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x44);
        const __m512 v1 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xee);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xee);
        _mm512_storeu_ps(dst + m * ldd, _mm512_shuffle_f32x4(v0, v2, 0x88));
        _mm512_storeu_ps(dst + (4 + m) * ldd,
                         _mm512_shuffle_f32x4(v0, v2, 0xdd));
        _mm512_storeu_ps(dst + (8 + m) * ldd,
                         _mm512_shuffle_f32x4(v1, v3, 0x88));
        _mm512_storeu_ps(dst + (12 + m) * ldd,
                         _mm512_shuffle_f32x4(v1, v3, 0xdd));
    }
}

#include "kernels/attention_simd.h"
