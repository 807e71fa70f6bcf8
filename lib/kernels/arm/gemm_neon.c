/*
 * GEMM for AArch64 Advanced SIMD (NEON: 32 q registers of 4 floats).
 *
 * Micro-kernel 8 x 12: a tile of C is 8 rows x 3 q registers, 24
 * accumulators; each step of p loads 8 values of the A panel (2 registers)
 * and 12 of the B panel (3 registers) and does 24 FMAs by lane
 * (vfmaq_laneq_f32: acc += b * a[lane]), so A needs no broadcasts. 24 + 5
 * registers of the 32; 24 accumulators cover FMA latency 4 x 2 pipes with
 * room to spare. The shape of OpenBLAS's and BLIS's Cortex-A57+ kernels.
 *
 * Cache blocks: see below.
 *
 * Small M (M <= 8): no packing, as in the x86 files.
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"

#define MR 8
#define NR 12
/* Cache blocking (see gemm.h): K slices of at most KC, A blocks of about
 * A_BLOCK floats (128 KiB) and at most MC rows, B panels of at most NC
 * columns. Typical Arm cores have 64 KiB L1 and 512 KiB - 1 MiB L2; these
 * are educated guesses, not measurements (this file has only run under
 * qemu). */
#define KC 512
#define A_BLOCK (32 * 1024)
#define MC (32 * MR)
#define NC 1536
#define SMALL_M 8

/* ---- Packing (plain C; the compiler vectorizes the contiguous case) --- */

/* Panels of W indices, kc rows of W floats each (see gemm.h). Direct:
 * src[(p0 + p) * ld + idx]; transposed: src[idx * ld + p0 + p]. */
static void pack_panels(float *dst, const float *src, int64_t ld,
                        int transposed, int64_t idx0, int64_t p0,
                        int64_t count, int64_t kc, int W) {
    for (int64_t base = 0; base < count; base += W, dst += kc * W) {
        const int64_t valid = count - base < W ? count - base : W;
        for (int64_t p = 0; p < kc; p++) {
            float *d = dst + p * W;
            int r = 0;
            if (transposed)
                for (; r < valid; r++)
                    d[r] = src[(idx0 + base + r) * ld + p0 + p];
            else
                for (; r < valid; r++)
                    d[r] = src[(p0 + p) * ld + idx0 + base + r];
            for (; r < W; r++)
                d[r] = 0.0f;
        }
    }
}

static void pack_a(float *ap, const float *a, int64_t lda, int transpose_a,
                   int64_t i0, int64_t p0, int64_t mc, int64_t kc) {
    pack_panels(ap, a, lda, !transpose_a, i0, p0, mc, kc, MR);
}

static void pack_b(float *bp, const float *b, int64_t ldb, int transpose_b,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc) {
    pack_panels(bp, b, ldb, transpose_b, j0, p0, nc, kc, NR);
}

/* ---- Micro-kernel ----------------------------------------------------- */

/* Row r of the tile += the B vectors times lane L of register A. */
#define ROW_FMA(r, A, L)                                                    \
    do {                                                                    \
        acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, A, L);                   \
        acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, A, L);                   \
        acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, A, L);                   \
    } while (0)

static void micro_8x12(int64_t kc, const float *ap, const float *bp,
                       float *c, int64_t ldc, int mr, int nr, int load_c,
                       const float *bias) {
    float32x4_t acc[MR][3];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 3; v++)
            acc[r][v] = vdupq_n_f32(0.0f);

    for (int64_t p = 0; p < kc; p++) {
        const float32x4_t a0 = vld1q_f32(ap), a1 = vld1q_f32(ap + 4);
        const float32x4_t b0 = vld1q_f32(bp), b1 = vld1q_f32(bp + 4),
                          b2 = vld1q_f32(bp + 8);
        ROW_FMA(0, a0, 0);
        ROW_FMA(1, a0, 1);
        ROW_FMA(2, a0, 2);
        ROW_FMA(3, a0, 3);
        ROW_FMA(4, a1, 0);
        ROW_FMA(5, a1, 1);
        ROW_FMA(6, a1, 2);
        ROW_FMA(7, a1, 3);
        ap += MR;
        bp += NR;
    }

    if (mr == MR && nr == NR) {
        float32x4_t bias_v[3];
        for (int v = 0; v < 3; v++)
            bias_v[v] = bias != NULL ? vld1q_f32(bias + 4 * v)
                                     : vdupq_n_f32(0.0f);
        for (int r = 0; r < MR; r++) {
            float *row = c + r * ldc;
            for (int v = 0; v < 3; v++) {
                float32x4_t x = vaddq_f32(acc[r][v], bias_v[v]);
                if (load_c)
                    x = vaddq_f32(x, vld1q_f32(row + 4 * v));
                vst1q_f32(row + 4 * v, x);
            }
        }
        return;
    }
    /* A tile on the edge of C: through a buffer, only the valid part. */
    float tile[MR * NR];
    for (int r = 0; r < MR; r++)
        for (int v = 0; v < 3; v++)
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

static const tlmi_gemm_blocking blocking = {
    .mr = MR, .nr = NR, .mc = MC, .kc = KC, .nc = NC, .a_block = A_BLOCK,
    .pack_a = pack_a, .pack_b = pack_b, .micro = micro_8x12,
};

/* ---- Small M: no packing ---------------------------------------------- */

static inline void finish_scalar(float *c, float sum, int accumulate,
                                 const float *bias, int64_t j) {
    if (bias != NULL)
        sum += bias[j];
    if (accumulate)
        sum += *c;
    *c = sum;
}

/* B not transposed: rows [i0, i0 + R) x columns [j0, j0 + 4 W) of C, R <= 4,
 * W <= 8; A(i, p) at a[i * as + p * ps]. */
static inline void small_rows_tile(float *c, const float *a, const float *b,
                                   const float *bias, int64_t n, int64_t k,
                                   int64_t as, int64_t ps, int accumulate,
                                   int64_t i0, int64_t j0, int R, int W) {
    float32x4_t acc[4][8];
    for (int r = 0; r < R; r++)
        for (int v = 0; v < W; v++)
            acc[r][v] = vdupq_n_f32(0.0f);
    const float *brow = b + j0;
    const float *arow = a + i0 * as;
    for (int64_t p = 0; p < k; p++, brow += n, arow += ps) {
        for (int r = 0; r < R; r++) {
            const float av = arow[r * as];
            for (int v = 0; v < W; v++)
                acc[r][v] = vfmaq_n_f32(acc[r][v], vld1q_f32(brow + 4 * v), av);
        }
    }
    for (int r = 0; r < R; r++) {
        float *crow = c + (i0 + r) * n + j0;
        for (int v = 0; v < W; v++) {
            float32x4_t x = acc[r][v];
            if (bias != NULL)
                x = vaddq_f32(x, vld1q_f32(bias + j0 + 4 * v));
            if (accumulate)
                x = vaddq_f32(x, vld1q_f32(crow + 4 * v));
            vst1q_f32(crow + 4 * v, x);
        }
    }
}

/* Columns [j_begin, j_end); a column gets the same operations in any
 * tile (the last ones, past a multiple of 4, are scalar). */
static void small_rows(float *c, const float *a, const float *b,
                       const float *bias, int64_t n, int64_t k, int64_t as,
                       int64_t ps, int accumulate, int64_t i0,
                       int64_t j_begin, int64_t j_end, int R) {
    const int W = R == 1 ? 8 : 4;
    int64_t j = j_begin;
    for (; j + 4 * W <= j_end; j += 4 * W)
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j, R, W);
    for (; j + 4 <= j_end; j += 4)
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j, R, 1);
    for (; j < j_end; j++) {
        for (int r = 0; r < R; r++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < k; p++)
                sum += a[(i0 + r) * as + p * ps] * b[p * n + j];
            finish_scalar(c + (i0 + r) * n + j, sum, accumulate, bias, j);
        }
    }
}

/* B transposed, A not: dot products of rows of A and rows of B. Rows
 * [i0, i0 + R) x columns [j0, j0 + J), R <= 4, J <= 8. */
static inline void small_dots_tile(float *c, const float *a, const float *b,
                                   const float *bias, int64_t n, int64_t k,
                                   int accumulate, int64_t i0, int64_t j0,
                                   int R, int J) {
    float32x4_t acc[4][8];
    for (int r = 0; r < R; r++)
        for (int q = 0; q < J; q++)
            acc[r][q] = vdupq_n_f32(0.0f);
    const float *arow = a + i0 * k;
    const float *brow = b + j0 * k;
    const int64_t k4 = k & ~(int64_t)3;
    for (int64_t p = 0; p < k4; p += 4) {
        float32x4_t av[4];
        for (int r = 0; r < R; r++)
            av[r] = vld1q_f32(arow + r * k + p);
        for (int q = 0; q < J; q++) {
            const float32x4_t bv = vld1q_f32(brow + q * k + p);
            for (int r = 0; r < R; r++)
                acc[r][q] = vfmaq_f32(acc[r][q], av[r], bv);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < J; q++) {
            float sum = vaddvq_f32(acc[r][q]);
            for (int64_t p = k4; p < k; p++)
                sum += arow[r * k + p] * brow[q * k + p];
            finish_scalar(c + (i0 + r) * n + j0 + q, sum, accumulate, bias,
                          j0 + q);
        }
    }
}

static void small_dots(float *c, const float *a, const float *b,
                       const float *bias, int64_t n, int64_t k,
                       int accumulate, int64_t i0, int64_t j_begin,
                       int64_t j_end, int R) {
    const int J = R == 1 ? 8 : 4;
    int64_t j = j_begin;
    for (; j + J <= j_end; j += J)
        small_dots_tile(c, a, b, bias, n, k, accumulate, i0, j, R, J);
    for (; j < j_end; j++)
        small_dots_tile(c, a, b, bias, n, k, accumulate, i0, j, R, 1);
}

static void gemm_small(float *c, const float *a, const float *b,
                       const float *bias, int64_t m, int64_t n, int64_t k,
                       int transpose_a, int transpose_b, int accumulate,
                       int64_t j_begin, int64_t j_end) {
    /* A(i, p): a[i * k + p], or a[p * m + i] when transposed. */
    const int64_t as = transpose_a ? 1 : k, ps = transpose_a ? m : 1;
    for (int64_t i = 0; i < m;) {
        const int R = m - i >= 4 ? 4 : (int)(m - i);
        if (transpose_b)
            small_dots(c, a, b, bias, n, k, accumulate, i, j_begin, j_end, R);
        else
            small_rows(c, a, b, bias, n, k, as, ps, accumulate, i, j_begin,
                       j_end, R);
        i += R;
    }
}

/* ---- Entry points ----------------------------------------------------- */

static int use_small(int64_t m, int transpose_a, int transpose_b) {
    return m <= SMALL_M && !(transpose_a && transpose_b);
}

size_t tlmi_gemm_neon_workspace(int64_t m, int64_t n, int64_t k,
                                int transpose_a, int transpose_b) {
    if (use_small(m, transpose_a, transpose_b))
        return 0;
    return tlmi_gemm_blocked_workspace(&blocking, m, n, k);
}

void tlmi_gemm_neon_cols(float *c, const float *a, const float *b,
                         const float *bias, int64_t m, int64_t n, int64_t k,
                         int transpose_a, int transpose_b, int accumulate,
                         int64_t j_begin, int64_t j_end, float *workspace) {
    if (use_small(m, transpose_a, transpose_b))
        gemm_small(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                   accumulate, j_begin, j_end);
    else
        tlmi_gemm_blocked(&blocking, c, a, b, bias, m, n, k, transpose_a,
                          transpose_b, accumulate, j_begin, j_end, workspace);
}

void tlmi_gemm_neon(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate,
                    float *workspace) {
    tlmi_gemm_neon_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                        accumulate, 0, n, workspace);
}
