/*
 * Packing for the x86 GEMM kernels (gemm.h describes the packed layout),
 * written once with 256-bit AVX and included by each x86 kernel file, so
 * it is compiled with that file's flags. Everything here is static: no
 * symbol compiled with AVX-512 flags can be picked up by baseline code.
 *
 * Packing A and packing B are the same operation seen from two sides: cut
 * a matrix into panels of W indices (rows of op(A), or columns of op(B)),
 * and lay each panel out as kc rows of W floats. Depending on how the
 * matrix is stored, the W values of one p are either contiguous in memory
 * ("direct": op(A) = A^T, op(B) = B) or W separate rows ("transposed":
 * op(A) = A, op(B) = B^T); the second case goes through 8 x 8 transposes
 * in registers.
 *
 * Writes may run up to 8 floats past a panel: the next panel, packed
 * afterwards, overwrites them, and the driver leaves slack after the last.
 */
#ifndef TLM_LIB_KERNELS_X86_PACK_X86_H
#define TLM_LIB_KERNELS_X86_PACK_X86_H

#include <immintrin.h>
#include <stdint.h>

#if defined(__GNUC__)
#define TLMI_INLINE static inline __attribute__((always_inline))
#else
#define TLMI_INLINE static inline
#endif

/* r[i] holds row i of an 8 x 8 block; afterwards r[j] holds column j. */
TLMI_INLINE void transpose8x8(__m256 r[8]) {
    __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]);
    __m256 t1 = _mm256_unpackhi_ps(r[0], r[1]);
    __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]);
    __m256 t3 = _mm256_unpackhi_ps(r[2], r[3]);
    __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]);
    __m256 t5 = _mm256_unpackhi_ps(r[4], r[5]);
    __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]);
    __m256 t7 = _mm256_unpackhi_ps(r[6], r[7]);
    __m256 s0 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s1 = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s2 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s3 = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s4 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s5 = _mm256_shuffle_ps(t4, t6, _MM_SHUFFLE(3, 2, 3, 2));
    __m256 s6 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(1, 0, 1, 0));
    __m256 s7 = _mm256_shuffle_ps(t5, t7, _MM_SHUFFLE(3, 2, 3, 2));
    r[0] = _mm256_permute2f128_ps(s0, s4, 0x20);
    r[1] = _mm256_permute2f128_ps(s1, s5, 0x20);
    r[2] = _mm256_permute2f128_ps(s2, s6, 0x20);
    r[3] = _mm256_permute2f128_ps(s3, s7, 0x20);
    r[4] = _mm256_permute2f128_ps(s0, s4, 0x31);
    r[5] = _mm256_permute2f128_ps(s1, s5, 0x31);
    r[6] = _mm256_permute2f128_ps(s2, s6, 0x31);
    r[7] = _mm256_permute2f128_ps(s3, s7, 0x31);
}

/* Copies W floats (W <= 32). */
TLMI_INLINE void copy_floats(float *d, const float *s, const int W) {
#pragma GCC unroll 4
    for (int r = 0; r + 8 <= W; r += 8)
        _mm256_storeu_ps(d + r, _mm256_loadu_ps(s + r));
    if (W % 8 >= 4)
        _mm_storeu_ps(d + W / 8 * 8, _mm_loadu_ps(s + W / 8 * 8));
    if (W % 4 >= 2) /* two floats through one 64-bit move */
        _mm_storel_pi((__m64 *)(void *)(d + W / 4 * 4),
                      _mm_loadl_pi(_mm_setzero_ps(),
                                   (const __m64 *)(const void *)(s + W / 4 * 4)));
    if (W % 2 == 1)
        d[W - 1] = s[W - 1];
}

/* Direct: dst[panel][p][r] = src[(p0 + p) * ld + idx0 + panel * W + r].
 * Eight values of p at a time across every panel: the source is read as 8
 * sequential rows and each panel written 8 rows at a time. (One p at a time
 * across the panels writes to addresses kc * W floats apart, which for
 * kc = 768, W = 16 all fall in one set of the L1 cache.) */
TLMI_INLINE void pack_direct(float *dst, const float *src, int64_t ld,
                             int64_t idx0, int64_t p0, int64_t count,
                             int64_t kc, const int W) {
    const int64_t full = count / W, rest = count - full * W;
    const float *s = src + p0 * ld + idx0;
    for (int64_t pb = 0; pb < kc; pb += 8) {
        const int64_t pe = kc - pb < 8 ? kc : pb + 8;
        for (int64_t panel = 0; panel < full; panel++)
            for (int64_t p = pb; p < pe; p++)
                copy_floats(dst + panel * kc * W + p * W,
                            s + p * ld + panel * W, W);
    }
    if (rest > 0) {
        float *d = dst + full * kc * W;
        s = src + p0 * ld + idx0 + full * W;
        for (int64_t p = 0; p < kc; p++, s += ld)
            for (int r = 0; r < W; r++)
                d[p * W + r] = r < rest ? s[r] : 0.0f;
    }
}

/* One step of the transposed packing: 8 values of p for the W indices of
 * a panel (rows of src at s + r * ld), `valid` of which exist (the others
 * are zeros). */
TLMI_INLINE void transpose_step(float *dst, const float *s, int64_t ld,
                                int64_t valid, const int W) {
    enum { MAX_GROUPS = 4 };
    const int groups = (W + 7) / 8;
    if (W % 8 == 0) {
        /* Groups are independent: transpose and store one at a time. */
#pragma GCC unroll 4
        for (int g = 0; g < groups; g++) {
            __m256 t[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                t[q] = g * 8 + q < valid ? _mm256_loadu_ps(s + (g * 8 + q) * ld)
                                         : _mm256_setzero_ps();
            transpose8x8(t);
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                _mm256_storeu_ps(dst + q * W + g * 8, t[q]);
        }
        return;
    }
    /* The last group runs past W into the next p: store in order of p so
     * that the next p's first group overwrites the excess. */
    __m256 t[MAX_GROUPS][8];
#pragma GCC unroll 4
    for (int g = 0; g < groups; g++) {
#pragma GCC unroll 8
        for (int q = 0; q < 8; q++) {
            const int r = g * 8 + q;
            t[g][q] = r < W && r < valid ? _mm256_loadu_ps(s + r * ld)
                                         : _mm256_setzero_ps();
        }
        transpose8x8(t[g]);
    }
#pragma GCC unroll 8
    for (int q = 0; q < 8; q++)
#pragma GCC unroll 4
        for (int g = 0; g < groups; g++)
            _mm256_storeu_ps(dst + q * W + g * 8, t[g][q]);
}

/* Two steps of 16 values of p for a full panel whose W is a multiple of
 * 8: each group of 8 rows does both halves of the 64-byte lines it reads
 * before the next group. (Group after group at 8 values of p read every
 * line twice, and with K = 512 the 32 rows of a B panel, 2 KiB apart,
 * all fall in 2 sets of L1: the line was gone the second time. In a
 * 64 x 128 x 512 nt product with AVX-512, packing B fell from 21% to 14%
 * of the profile, the whole product about 1% faster.) */
TLMI_INLINE void transpose_step16(float *dst, const float *s, int64_t ld,
                                  const int W) {
#pragma GCC unroll 4
    for (int g = 0; g < W / 8; g++) {
#pragma GCC unroll 2
        for (int half = 0; half < 2; half++) {
            __m256 t[8];
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                t[q] = _mm256_loadu_ps(s + (g * 8 + q) * ld + half * 8);
            transpose8x8(t);
#pragma GCC unroll 8
            for (int q = 0; q < 8; q++)
                _mm256_storeu_ps(dst + (half * 8 + q) * W + g * 8, t[q]);
        }
    }
}

/* Transposed: dst[panel][p][r] = src[(idx0 + panel * W + r) * ld + p0 + p].
 * W <= 32. */
TLMI_INLINE void pack_transposed(float *dst, const float *src, int64_t ld,
                                 int64_t idx0, int64_t p0, int64_t count,
                                 int64_t kc, const int W) {
    const int64_t kc8 = kc & ~(int64_t)7, kc16 = kc & ~(int64_t)15;
    for (int64_t base = 0; base < count; base += W, dst += kc * W) {
        const int64_t valid = count - base < W ? count - base : W;
        const float *s = src + (idx0 + base) * ld + p0;
        if (valid == W && W % 8 == 0) {
            for (int64_t p = 0; p < kc16; p += 16)
                transpose_step16(dst + p * W, s + p, ld, W);
            if (kc16 < kc8)
                transpose_step(dst + kc16 * W, s + kc16, ld, W, W);
        } else if (valid == W) /* every row known present */
            for (int64_t p = 0; p < kc8; p += 8)
                transpose_step(dst + p * W, s + p, ld, W, W);
        else
            for (int64_t p = 0; p < kc8; p += 8)
                transpose_step(dst + p * W, s + p, ld, valid, W);
        for (int64_t p = kc8; p < kc; p++)
            for (int r = 0; r < W; r++)
                dst[p * W + r] = r < valid ? s[r * ld + p] : 0.0f;
    }
}

/* The packing kernels/gemm_tmpl.c asks for: direct or transposed. */
#define TLMI_GEMM_HAVE_PACK_PANELS 1
TLMI_INLINE void pack_panels(float *dst, const float *src, int64_t ld,
                             int transposed, int64_t idx0, int64_t p0,
                             int64_t count, int64_t kc, const int W) {
    if (transposed)
        pack_transposed(dst, src, ld, idx0, p0, count, kc, W);
    else
        pack_direct(dst, src, ld, idx0, p0, count, kc, W);
}

#endif
