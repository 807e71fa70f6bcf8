/*
 * The bf16 products of kernels/gemm_bf16.h on Armv8.6 BF16 (FEAT_BF16,
 * +bf16): BFDOT multiplies pairs of bf16 and adds each pair's two
 * products to a float32 lane; its by-element form takes one pair of a
 * second register for every lane, which is a broadcast of one row of A.
 *
 * The blocked driver of gemm_blocked.c with the pair layout of
 * x86/gemm_avx512bf16.c (a panel of W indices is ceil(kc / 2) rows of W
 * 32-bit pairs, bf16(op[2q][r]) in the low half, bf16(op[2q + 1][r]) in
 * the high half, zero past kc; each panel where the driver expects a
 * float32 one) and a micro-kernel of 8 rows x 12 columns, the float32
 * NEON kernel's shape: 24 accumulators, and each pair step loads 3
 * registers of B pairs and 2 of A pairs (8 rows), for 24 BFDOT. The
 * packing rounds in plain C (nearest even, as tlmi_float_to_bf16).
 *
 * BFDOT's sum of the two products and the lane rounds to odd (Armv8.6
 * without FEAT_EBF16) and flushes denormals; against the reference:
 * that rounding and another order of the float32 sums. Only run under
 * qemu: not measured on Arm hardware.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "kernels/gemm.h"
#include "kernels/gemm_bf16.h"

#define MR 8
#define NR 12
#define KC 512
#define MC (32 * MR)
#define NC 1536
#define A_BLOCK (2 * 32 * 1024)

#define BF16_INLINE static inline __attribute__((always_inline))
#define BF16_PRAGMA(x) _Pragma(#x)
#define BF16_UNROLL(n) BF16_PRAGMA(GCC unroll n)

/* x rounded to bf16, nearest even, NaNs quiet (tlmi_float_to_bf16). */
BF16_INLINE uint32_t bf16_bits(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    if ((bits & 0x7fffffffu) > 0x7f800000u)
        return (bits >> 16) | 0x40u;
    return (bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16;
}

/* Panels of W indices [idx0, idx0 + count) over p in [p0, p0 + kc), in
 * pairs: op[p][r] is src[(idx0 + r) * ld + p0 + p] when transposed, else
 * src[(p0 + p) * ld + idx0 + r]. */
static void pack_pairs(float *dst_floats, const float *src, int64_t ld,
                       int transposed, int64_t idx0, int64_t p0,
                       int64_t count, int64_t kc, const int W) {
    uint32_t *dst = (uint32_t *)(void *)dst_floats;
    const int64_t pairs = (kc + 1) / 2;
    for (int64_t base = 0; base < count; base += W, dst += kc * W) {
        const int64_t valid = count - base < W ? count - base : W;
        for (int64_t q = 0; q < pairs; q++) {
            const int64_t p = 2 * q;
            const int second = p + 1 < kc;
            for (int r = 0; r < W; r++) {
                uint32_t pair = 0;
                if (r < valid) {
                    const int64_t i = idx0 + base + r;
                    const float even = transposed ? src[i * ld + p0 + p]
                                                  : src[(p0 + p) * ld + i];
                    pair = bf16_bits(even);
                    if (second) {
                        const float odd = transposed
                                              ? src[i * ld + p0 + p + 1]
                                              : src[(p0 + p + 1) * ld + i];
                        pair |= bf16_bits(odd) << 16;
                    }
                }
                dst[q * W + r] = pair;
            }
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

BF16_INLINE bfloat16x8_t load_pairs(const uint32_t *p) {
    return vreinterpretq_bf16_u32(vld1q_u32(p));
}

/* One step of row g's 4 rows: acc[g + l][v] += pairs of B . pair l of a. */
#define ROWS_OF(g, a)                                                       \
    BF16_UNROLL(3)                                                          \
    for (int v = 0; v < W; v++) {                                           \
        acc[g][v] = vbfdotq_laneq_f32(acc[g][v], b[v], a, 0);               \
        acc[g + 1][v] = vbfdotq_laneq_f32(acc[g + 1][v], b[v], a, 1);       \
        acc[g + 2][v] = vbfdotq_laneq_f32(acc[g + 2][v], b[v], a, 2);       \
        acc[g + 3][v] = vbfdotq_laneq_f32(acc[g + 3][v], b[v], a, 3);       \
    }

/* The 8 rows and W vectors (4 columns each) of a tile; stores rows
 * r < mr and columns c < nr: C = T (+ bias) (+ C when load_c). */
BF16_INLINE void micro_tile(int64_t kc, const float *ap_floats,
                            const float *bp_floats, float *c, int64_t ldc,
                            int mr, int nr, int load_c, const float *bias,
                            const int W) {
    const uint32_t *ap = (const uint32_t *)(const void *)ap_floats;
    const uint32_t *bp = (const uint32_t *)(const void *)bp_floats;
    const int64_t pairs = (kc + 1) / 2;
    float32x4_t acc[MR][3];
    BF16_UNROLL(8)
    for (int r = 0; r < MR; r++)
        BF16_UNROLL(3)
        for (int v = 0; v < W; v++)
            acc[r][v] = vdupq_n_f32(0.0f);
    for (int64_t q = 0; q < pairs; q++) {
        bfloat16x8_t b[3];
        BF16_UNROLL(3)
        for (int v = 0; v < W; v++)
            b[v] = load_pairs(bp + q * NR + 4 * v);
        const bfloat16x8_t a0 = load_pairs(ap + q * MR);
        const bfloat16x8_t a1 = load_pairs(ap + q * MR + 4);
        ROWS_OF(0, a0)
        ROWS_OF(4, a1)
    }
    float tile[MR * NR];
    BF16_UNROLL(8)
    for (int r = 0; r < MR; r++)
        BF16_UNROLL(3)
        for (int v = 0; v < W; v++)
            vst1q_f32(tile + r * NR + 4 * v, acc[r][v]);
    for (int r = 0; r < mr; r++) {
        float *row = c + r * ldc;
        for (int j = 0; j < nr; j++) {
            float x = tile[r * NR + j];
            if (bias != NULL)
                x += bias[j];
            if (load_c)
                x += row[j];
            row[j] = x;
        }
    }
}
#undef ROWS_OF

static void micro(int64_t kc, const float *ap, const float *bp, float *c,
                  int64_t ldc, int mr, int nr, int load_c,
                  const float *bias) {
    if (nr <= 4)
        micro_tile(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 1);
    else if (nr <= 8)
        micro_tile(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 2);
    else
        micro_tile(kc, ap, bp, c, ldc, mr, nr, load_c, bias, 3);
}

static const tlmi_gemm_blocking blocking = {
    .mr = MR, .nr = NR, .mc = MC, .kc = KC, .nc = NC, .a_block = A_BLOCK,
    .pack_a = pack_a, .pack_b = pack_b, .micro = micro,
};

size_t tlmi_gemm_bf16_workspace_neonbf16(int64_t m, int64_t n, int64_t k,
                                         int transpose_a, int transpose_b) {
    (void)transpose_a, (void)transpose_b;
    return tlmi_gemm_blocked_workspace(&blocking, m, n, k);
}

void tlmi_gemm_bf16_cols_neonbf16(float *c, const float *a, const float *b,
                                  const float *bias, int64_t m, int64_t n,
                                  int64_t k, int transpose_a, int transpose_b,
                                  int accumulate, int64_t j_begin,
                                  int64_t j_end, float *workspace) {
    tlmi_gemm_blocked(&blocking, c, a, b, bias, m, n, k, transpose_a,
                      transpose_b, accumulate, j_begin, j_end, workspace);
}

void tlmi_gemm_bf16_neonbf16(float *c, const float *a, const float *b,
                             const float *bias, int64_t m, int64_t n,
                             int64_t k, int transpose_a, int transpose_b,
                             int accumulate, float *workspace) {
    tlmi_gemm_bf16_cols_neonbf16(c, a, b, bias, m, n, k, transpose_a,
                                 transpose_b, accumulate, 0, n, workspace);
}
