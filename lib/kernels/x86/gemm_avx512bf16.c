/*
 * The bf16 products of kernels/gemm_bf16.h on AVX-512 BF16: vdpbf16ps
 * takes 32 pairs of bf16 from each operand and adds the two products of
 * each pair to one of 16 float32 lanes, so one instruction does the work
 * of two float32 FMAs.
 *
 * The blocked driver of gemm_blocked.c with this file's packing and
 * micro-kernel. The packed panels hold pairs along K: a panel of W
 * indices (MR rows of op(A), or NR columns of op(B)) is ceil(kc / 2)
 * rows of W 32-bit pairs, pair q of index r holding bf16(op[2q][r]) in
 * its low half and bf16(op[2q + 1][r]) in its high half (zero past kc),
 * which is the layout vdpbf16ps multiplies lane by lane. Each panel sits
 * where the driver expects a float32 panel (kc x W floats apart), in the
 * first half of that space. Packing goes through the float32 packing of
 * x86/pack_x86.h, 16 values of p at a time into a buffer on the stack,
 * then vcvtne2ps2bf16 (nearest even, like tlmi_float_to_bf16; the
 * instruction treats float32 denormals as zero, which the product would
 * do anyway) and a widening that interleaves the two rows.
 *
 * Micro-kernel 14 x 32, the float32 AVX-512 kernel's shape: 28
 * accumulators, and each pair step loads 2 vectors of B pairs and
 * broadcasts 14 pairs of A. Variants of 8 and 4 rows and one vector of
 * columns serve the edges; masked stores write only the lanes of C that
 * exist. Every element of C is one chain of vdpbf16ps over the pairs of
 * each K slice whatever the variant, so column ranges starting at
 * multiples of NR give the whole product's bits.
 *
 * Cache blocks: K slices of at most 1024, A blocks of about 256 KiB of
 * bf16 (A_BLOCK counts float32-sized slots, twice the bf16 values they
 * hold), B panels of at most 2048 columns: the float32 kernel's bytes.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"
#include "pack_x86.h"

#define MR 14
#define NR 32
#define KC 1024
#define MC (36 * MR)
#define NC 2048
#define A_BLOCK (2 * 64 * 1024)
/* Values of p packed at a time through the stack buffer (even). */
#define CHUNK 16

#define BF16_PRAGMA(x) _Pragma(#x)
#define BF16_UNROLL(n) BF16_PRAGMA(GCC unroll n)

/* The first `lanes` (0 to 16) lanes of a vector. */
static inline __mmask16 lanes_mask(int lanes) {
    return lanes >= 16 ? (__mmask16)0xffff
           : lanes <= 0 ? (__mmask16)0
                        : (__mmask16)((1u << lanes) - 1u);
}

/* dst[r] = bf16(odd[r]) << 16 | bf16(even[r]) for r < W. */
TLMI_INLINE void pair_row(uint32_t *dst, const float *even, const float *odd,
                          const int W) {
    BF16_UNROLL(2)
    for (int v = 0; v < W; v += 16) {
        const __mmask16 mask = lanes_mask(W - v);
        const __m512 e = _mm512_maskz_loadu_ps(mask, even + v);
        const __m512 o = _mm512_maskz_loadu_ps(mask, odd + v);
        /* 16-bit lanes 0..15: bf16(e), 16..31: bf16(o). */
        const __m512i both = (__m512i)_mm512_cvtne2ps_pbh(o, e);
        const __m512i low =
            _mm512_cvtepu16_epi32(_mm512_castsi512_si256(both));
        const __m512i high =
            _mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(both, 1));
        _mm512_mask_storeu_epi32(
            dst + v, mask, _mm512_or_si512(low, _mm512_slli_epi32(high, 16)));
    }
}

/* Panels of W indices [idx0, idx0 + count) of a matrix as pack_panels
 * (pack_x86.h) reads it, over p in [p0, p0 + kc), in pairs (the layout
 * at the top of this file); indices past count are zero. */
TLMI_INLINE void pack_pairs(float *dst_floats, const float *src, int64_t ld,
                            int transposed, int64_t idx0, int64_t p0,
                            int64_t count, int64_t kc, const int W) {
    /* CHUNK rows of W floats, and the slack pack_panels may write past. */
    float buffer[CHUNK * NR + 16] __attribute__((aligned(64)));
    uint32_t *dst = (uint32_t *)(void *)dst_floats;
    for (int64_t base = 0; base < count; base += W, dst += kc * W) {
        const int64_t valid = count - base < W ? count - base : W;
        for (int64_t pb = 0; pb < kc; pb += CHUNK) {
            const int64_t len = kc - pb < CHUNK ? kc - pb : CHUNK;
            pack_panels(buffer, src, ld, transposed, idx0 + base, p0 + pb,
                        valid, len, W);
            if (len % 2 == 1) /* the last pair's second half */
                memset(buffer + len * W, 0, (size_t)W * sizeof(float));
            for (int64_t q = 0; q < (len + 1) / 2; q++)
                pair_row(dst + (pb / 2 + q) * W, buffer + 2 * q * W,
                         buffer + (2 * q + 1) * W, W);
        }
    }
}

static void pack_a(float *ap, const float *a, int64_t lda, int transpose_a,
                   int64_t i0, int64_t p0, int64_t mc, int64_t kc) {
    pack_pairs(ap, a, lda, !transpose_a, i0, p0, mc, kc, MR);
}

static void pack_b(float *bp, const float *b, int64_t ldb, int transpose_b,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc) {
    pack_pairs(bp, b, ldb, transpose_b, j0, p0, nc, kc, NR);
}

/* The first R rows and W vectors (16 columns each) of a tile from the
 * pair panels: T = sum of the pairs' products; then for r < mr and the
 * nr columns: C = T (+ bias) (+ C when load_c). */
TLMI_INLINE void micro_tile(int64_t kc, const float *ap_floats,
                            const float *bp_floats, float *c, int64_t ldc,
                            int mr, int nr, int load_c, const float *bias,
                            const int R, const int W) {
    const uint32_t *ap = (const uint32_t *)(const void *)ap_floats;
    const uint32_t *bp = (const uint32_t *)(const void *)bp_floats;
    const int64_t pairs = (kc + 1) / 2;
    __m512 acc[MR][2];
    BF16_UNROLL(14)
    for (int r = 0; r < R; r++)
        BF16_UNROLL(2)
        for (int v = 0; v < W; v++)
            acc[r][v] = _mm512_setzero_ps();
    BF16_UNROLL(2)
    for (int64_t q = 0; q < pairs; q++) {
        __m512bh b[2];
        BF16_UNROLL(2)
        for (int v = 0; v < W; v++)
            b[v] = (__m512bh)_mm512_loadu_si512(
                (const void *)(bp + q * NR + 16 * v));
        BF16_UNROLL(14)
        for (int r = 0; r < R; r++) {
            const __m512bh a =
                (__m512bh)_mm512_set1_epi32((int)ap[q * MR + r]);
            BF16_UNROLL(2)
            for (int v = 0; v < W; v++)
                acc[r][v] = _mm512_dpbf16_ps(acc[r][v], a, b[v]);
        }
    }
    __mmask16 mask[2];
    __m512 bias_v[2];
    BF16_UNROLL(2)
    for (int v = 0; v < W; v++) {
        mask[v] = lanes_mask(nr - 16 * v);
        bias_v[v] = bias != NULL ? _mm512_maskz_loadu_ps(mask[v], bias + 16 * v)
                                 : _mm512_setzero_ps();
    }
    BF16_UNROLL(14)
    for (int r = 0; r < R; r++) {
        if (r >= mr)
            break;
        float *row = c + r * ldc;
        BF16_UNROLL(2)
        for (int v = 0; v < W; v++) {
            __m512 x = _mm512_add_ps(acc[r][v], bias_v[v]);
            if (load_c)
                x = _mm512_add_ps(x,
                                  _mm512_maskz_loadu_ps(mask[v], row + 16 * v));
            _mm512_mask_storeu_ps(row + 16 * v, mask[v], x);
        }
    }
}

TLMI_INLINE void micro_width(int64_t kc, const float *ap, const float *bp,
                             float *c, int64_t ldc, int mr, int nr,
                             int load_c, const float *bias, const int W) {
    if (mr <= 4)
        micro_tile(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 4, W);
    else if (mr <= 8)
        micro_tile(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 8, W);
    else
        micro_tile(kc, ap, bp, c, ldc, mr, nr, load_c, bias, MR, W);
}

static void micro(int64_t kc, const float *ap, const float *bp, float *c,
                  int64_t ldc, int mr, int nr, int load_c,
                  const float *bias) {
    if (nr <= 16)
        micro_width(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 1);
    else
        micro_width(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 2);
}

static const tlmi_gemm_blocking blocking = {
    .mr = MR, .nr = NR, .mc = MC, .kc = KC, .nc = NC, .a_block = A_BLOCK,
    .pack_a = pack_a, .pack_b = pack_b, .micro = micro,
};

size_t tlmi_gemm_bf16_workspace_avx512bf16(int64_t m, int64_t n, int64_t k,
                                           int transpose_a, int transpose_b) {
    (void)transpose_a, (void)transpose_b;
    return tlmi_gemm_blocked_workspace(&blocking, m, n, k);
}

void tlmi_gemm_bf16_cols_avx512bf16(float *c, const float *a, const float *b,
                                    const float *bias, int64_t m, int64_t n,
                                    int64_t k, int transpose_a,
                                    int transpose_b, int accumulate,
                                    int64_t j_begin, int64_t j_end,
                                    float *workspace) {
    tlmi_gemm_blocked(&blocking, c, a, b, bias, m, n, k, transpose_a,
                      transpose_b, accumulate, j_begin, j_end, workspace);
}

void tlmi_gemm_bf16_avx512bf16(float *c, const float *a, const float *b,
                               const float *bias, int64_t m, int64_t n,
                               int64_t k, int transpose_a, int transpose_b,
                               int accumulate, float *workspace) {
    tlmi_gemm_bf16_cols_avx512bf16(c, a, b, bias, m, n, k, transpose_a,
                                   transpose_b, accumulate, 0, n, workspace);
}
