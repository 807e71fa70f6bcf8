/*
 * Fused attention for AVX-512F (32 zmm registers of 16 floats): the
 * generic code of kernels/attention_tmpl.c over the vectors of
 * kernels/simd.h, with 8 query rows x 2 vectors = 16 accumulators in the
 * inner kernels, and a 16 x 16 register transpose for packing keys.
 * Compiled with this ISA's flags only (lib/meson.build).
 */
#define TLMI_SIMD_AVX512 1
#define TLMI_ISA_SUFFIX avx512
#define TLMI_ATTN_QB 8
/* In place up to 3 query rows (attention_tmpl.c, "Few query rows"; a
 * measurement may compile this file with another count). */
#if !defined(TLMI_ATTN_FEW_ROWS)
#define TLMI_ATTN_FEW_ROWS 3
#endif

#include "kernels/simd.h"

/* dst[d * ldd + r] = src[r * lds + d] for r, d < 16: pairs of rows
 * interleaved and quadruples gathered within each 128-bit lane (as a 4 x 4
 * transpose per lane), then the lanes themselves transposed 4 x 4. */
#define TLMI_ATTN_HAVE_TRANSPOSE 1
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

#include "kernels/attention_tmpl.c"
