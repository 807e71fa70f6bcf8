/*
 * Fused attention for AVX2 + FMA (16 ymm registers of 8 floats): the
 * generic code of kernels/attention_tmpl.c over the vectors of
 * kernels/simd.h, with 6 query rows x 2 vectors = 12 accumulators in the
 * inner kernels, and an 8 x 8 register transpose for packing keys.
 * Compiled with this ISA's flags only (lib/meson.build).
 */
#define TLMI_SIMD_AVX2 1
#define TLMI_ISA_SUFFIX avx2
#define TLMI_ATTN_QB 6

#include "kernels/simd.h"

/* dst[d * ldd + r] = src[r * lds + d] for r, d < 8: pairs of rows
 * interleaved, then quadruples, then the 128-bit halves swapped. */
#define TLMI_ATTN_HAVE_TRANSPOSE 1
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

#include "kernels/attention_tmpl.c"
