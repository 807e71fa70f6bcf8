/*
 * GEMM for AVX-512F (32 zmm registers of 16 floats).
 *
 * Micro-kernel 14 x 32: a tile of C is 14 rows x 2 zmm, 28 accumulators;
 * each step of p loads 2 vectors of the B panel and broadcasts 14 values
 * of the A panel (folded into the FMAs as {1to16} memory operands), for
 * 28 FMAs. Why this shape: the tile must hold at least latency x
 * throughput = 4 x 2 = 8 independent accumulators, and the larger it is
 * the fewer loads per FMA (16 per 28 here, 14 per 24 for 12 x 32, 10 per
 * 12 for AVX2's 6 x 16). 14 x 32 keeps 28 of the 32 registers for C, 2
 * for the B vectors and 1 for the broadcast. Measured on the benchmark's
 * training shapes (Zen 5), 12 x 32 is as fast within 1% either way. The
 * kernel alone, on packed data in cache, does about 226 GFLOP/s there;
 * the whole GEMM reaches 80-95% of that.
 * Narrower variants (12, 10, 8, 7 or 4 rows, 16 columns, or vectors down
 * the rows for up to 4 columns) serve the tiles on the edges of C.
 *
 * Cache blocks (tuned on the same machine, see docs/performance.md): K
 * slices up to KC = 1024 deep (fewer passes over C; a 128 KiB B
 * micro-panel, which streams from L2 as well as it would sit in L1), A
 * blocks of about 256 KiB (L2), B panels up to NC = 2048 columns (8 MiB
 * at most, L3). The workspace is at most about 8.3 MiB whatever the sizes.
 *
 * Small M (M <= 8): no packing, like the AVX2 file, with masked loads and
 * stores for the edges.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"
#include "pack_x86.h"

#define MR 14
#define NR 32
/* Cache blocking (see gemm.h): K slices of at most KC, A blocks of about
 * A_BLOCK floats and at most MC rows, B panels of at most NC columns. */
#define KC 1024
#define A_BLOCK (64 * 1024)
#define MC (36 * MR)
#define NC 2048
#define SMALL_M 8

/* ---- Packing ---------------------------------------------------------- */

static void pack_a(float *ap, const float *a, int64_t lda, int transpose_a,
                   int64_t i0, int64_t p0, int64_t mc, int64_t kc) {
    if (transpose_a)
        pack_direct(ap, a, lda, i0, p0, mc, kc, MR);
    else
        pack_transposed(ap, a, lda, i0, p0, mc, kc, MR);
}

static void pack_b(float *bp, const float *b, int64_t ldb, int transpose_b,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc) {
    if (transpose_b)
        pack_transposed(bp, b, ldb, j0, p0, nc, kc, NR);
    else
        pack_direct(bp, b, ldb, j0, p0, nc, kc, NR);
}

/* ---- Micro-kernel ----------------------------------------------------- */

/* Lanes [0, count) of a 16-lane vector, count in 0..16 (more counts as
 * 16). */
TLMI_INLINE __mmask16 lanes(int64_t count) {
    return count >= 16 ? (__mmask16)0xffff
                       : (__mmask16)((1u << (count > 0 ? count : 0)) - 1u);
}

/* The first R rows (R <= MR) and W vectors (1 or 2) of a tile: the full
 * kernel is R = 14, W = 2; the narrower ones serve the tiles on the bottom
 * and right edges of C, so that a tile of 2 rows or 1 column does not
 * cost a full one. Writes rows r < mr and columns c < nr. */
/* Where the kernels read A: a packed panel (ap[p * MR + r]), or A as
 * stored, not transposed (ap[r * lda + p]) or transposed (ap[p * lda +
 * r]). In the last two, rows r >= mr of a tile do not exist: when `clamp`,
 * they read row 0 again instead (and their results are dropped). */
enum { A_PACKED, A_ROWS, A_COLS };

TLMI_INLINE void micro_rows(int64_t kc, const float *ap, int64_t lda,
                            const float *bp, int64_t ldb, float *c,
                            int64_t ldc, int mr, int nr, int load_c,
                            const float *bias, const int R, const int W,
                            const int mode, const int clamp) {
    /* B: a packed panel (ldb = NR, no mask needed), or, with A unpacked,
     * possibly B as stored (ldb its row stride), read with masks so that
     * an edge tile reads no column past nr. */
    const __mmask16 b_mask0 = mode == A_PACKED ? (__mmask16)0xffff
                                               : lanes(nr);
    const __mmask16 b_mask1 = mode == A_PACKED ? (__mmask16)0xffff
                                               : lanes(nr - 16);
    /* Offsets of the rows of A when it is read unpacked. */
    int64_t row_at[MR];
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        const int64_t row = clamp && r >= mr ? 0 : r;
        row_at[r] = mode == A_ROWS ? row * lda : row;
    }
    const int64_t a_step = mode == A_PACKED ? MR : mode == A_ROWS ? 1 : lda;
    __m512 acc[MR][2];
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        acc[r][0] = _mm512_setzero_ps();
        acc[r][1] = _mm512_setzero_ps();
    }
    /* C is read at the end: start fetching it now. */
    for (int r = 0; r < mr; r++) {
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);
        if (W == 2)
            _mm_prefetch((const char *)(c + r * ldc + 16), _MM_HINT_T0);
    }

#pragma GCC unroll 2
    for (int64_t p = 0; p < kc; p++) {
        const __m512 b0 = mode == A_PACKED
                              ? _mm512_loadu_ps(bp)
                              : _mm512_maskz_loadu_ps(b_mask0, bp);
        const __m512 b1 = W == 1           ? b0
                          : mode == A_PACKED ? _mm512_loadu_ps(bp + 16)
                                             : _mm512_maskz_loadu_ps(
                                                   b_mask1, bp + 16);
#pragma GCC unroll 14
        for (int r = 0; r < R; r++) {
            const __m512 av = _mm512_set1_ps(
                mode == A_PACKED ? ap[r]
                : clamp          ? ap[row_at[r]]
                : mode == A_ROWS ? ap[r * lda]
                                 : ap[r]);
            acc[r][0] = _mm512_fmadd_ps(av, b0, acc[r][0]);
            if (W == 2)
                acc[r][1] = _mm512_fmadd_ps(av, b1, acc[r][1]);
        }
        ap += a_step;
        bp += mode == A_PACKED ? NR : ldb;
    }

    if (R == MR && W == 2 && mr == MR && nr == NR) {
        __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
        if (bias != NULL) {
            bias0 = _mm512_loadu_ps(bias);
            bias1 = _mm512_loadu_ps(bias + 16);
        }
#pragma GCC unroll 14
        for (int r = 0; r < MR; r++) {
            float *row = c + r * ldc;
            __m512 x0 = _mm512_add_ps(acc[r][0], bias0);
            __m512 x1 = _mm512_add_ps(acc[r][1], bias1);
            if (load_c) {
                x0 = _mm512_add_ps(x0, _mm512_loadu_ps(row));
                x1 = _mm512_add_ps(x1, _mm512_loadu_ps(row + 16));
            }
            _mm512_storeu_ps(row, x0);
            _mm512_storeu_ps(row + 16, x1);
        }
        return;
    }
    /* A tile on the edge of C: masked columns, rows below mr only. */
    const __mmask16 m0 = lanes(nr), m1 = lanes(nr - 16);
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias != NULL) {
        bias0 = _mm512_maskz_loadu_ps(m0, bias);
        if (W == 2)
            bias1 = _mm512_maskz_loadu_ps(m1, bias + 16);
    }
#pragma GCC unroll 14
    for (int r = 0; r < R; r++) {
        if (r >= mr)
            break;
        float *row = c + r * ldc;
        __m512 x0 = _mm512_add_ps(acc[r][0], bias0);
        if (load_c)
            x0 = _mm512_add_ps(x0, _mm512_maskz_loadu_ps(m0, row));
        _mm512_mask_storeu_ps(row, m0, x0);
        if (W == 2) {
            __m512 x1 = _mm512_add_ps(acc[r][1], bias1);
            if (load_c)
                x1 = _mm512_add_ps(x1, _mm512_maskz_loadu_ps(m1, row + 16));
            _mm512_mask_storeu_ps(row + 16, m1, x1);
        }
    }
}

/* A tile of at most 4 columns (the last of a row of tiles, e.g. column
 * 64 of a 65-token vocabulary) the other way round: vectors run down the
 * 14 rows of the A panel (lanes 14 and 15 read the next row and are
 * ignored) and each column's value of B is broadcast. The row kernels
 * would spend a full 16-column vector per row on one column; this spends
 * one FMA per column, with 4 partial sums per column to hide the FMA
 * latency. */
static void micro_columns(int64_t kc, const float *ap, const float *bp,
                          float *c, int64_t ldc, int mr, int nr, int load_c,
                          const float *bias) {
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int j = 0; j < 4; j++)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[j][u] = _mm512_setzero_ps();
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const __m512 a = _mm512_loadu_ps(ap + (p + u) * MR);
#pragma GCC unroll 4
            for (int j = 0; j < 4; j++)
                if (j < nr)
                    acc[j][u] = _mm512_fmadd_ps(
                        a, _mm512_set1_ps(bp[(p + u) * NR + j]), acc[j][u]);
        }
    }
    for (; p < kc; p++) {
        const __m512 a = _mm512_loadu_ps(ap + p * MR);
#pragma GCC unroll 4
        for (int j = 0; j < 4; j++)
            if (j < nr)
                acc[j][0] = _mm512_fmadd_ps(a, _mm512_set1_ps(bp[p * NR + j]),
                                            acc[j][0]);
    }
    float column[16];
    for (int j = 0; j < nr; j++) {
        _mm512_storeu_ps(column,
                         _mm512_add_ps(_mm512_add_ps(acc[j][0], acc[j][1]),
                                       _mm512_add_ps(acc[j][2], acc[j][3])));
        for (int r = 0; r < mr; r++) {
            float x = column[r];
            if (bias != NULL)
                x += bias[j];
            if (load_c)
                x += c[r * ldc + j];
            c[r * ldc + j] = x;
        }
    }
}

/* The tile's rows with the narrowest variant that holds them: every
 * row of a tile costs about the same whatever the variant (the kernel is
 * bound by its FMAs), so the last tile of M = 64 (8 rows) runs the 8-row
 * one instead of paying for 14. Each row of C gets the same operations in
 * any variant. With A unpacked, a tile of exactly R rows reads them at
 * fixed offsets, a shorter one through row_at. */
#define ROWS_VARIANT(R_)                                                    \
    do {                                                                    \
        if (mode != A_PACKED && mr == (R_))                                 \
            micro_rows(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias, R_, \
                       W, mode, 0);                                         \
        else                                                                \
            micro_rows(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias, R_, \
                       W, mode, mode != A_PACKED);                          \
    } while (0)

TLMI_INLINE void micro_width(int64_t kc, const float *ap, int64_t lda,
                             const float *bp, int64_t ldb, float *c,
                             int64_t ldc, int mr, int nr, int load_c,
                             const float *bias, const int W, const int mode) {
    if (mr > 12)
        ROWS_VARIANT(14);
    else if (mr > 10)
        ROWS_VARIANT(12);
    else if (mr > 8)
        ROWS_VARIANT(10);
    else if (mr > 7)
        ROWS_VARIANT(8);
    else if (mr > 4)
        ROWS_VARIANT(7);
    else
        ROWS_VARIANT(4);
}
#undef ROWS_VARIANT

static void micro_14x32(int64_t kc, const float *ap, const float *bp,
                        float *c, int64_t ldc, int mr, int nr, int load_c,
                        const float *bias) {
    if (nr <= 4)
        micro_columns(kc, ap, bp, c, ldc, mr, nr, load_c, bias);
    else if (nr > 16)
        micro_width(kc, ap, MR, bp, NR, c, ldc, mr, nr, load_c, bias, 2,
                    A_PACKED);
    else
        micro_width(kc, ap, MR, bp, NR, c, ldc, mr, nr, load_c, bias, 1,
                    A_PACKED);
}

/* A read in place, not transposed and transposed: tiles of more than 4
 * columns only (the column kernel reads a packed panel; direct_min_nr
 * below). */
static void micro_14x32_a_rows(int64_t kc, const float *a, int64_t lda,
                               const float *b, int64_t ldb, float *c,
                               int64_t ldc, int mr, int nr, int load_c,
                               const float *bias) {
    if (nr > 16)
        micro_width(kc, a, lda, b, ldb, c, ldc, mr, nr, load_c, bias, 2,
                    A_ROWS);
    else
        micro_width(kc, a, lda, b, ldb, c, ldc, mr, nr, load_c, bias, 1,
                    A_ROWS);
}

static void micro_14x32_a_cols(int64_t kc, const float *a, int64_t lda,
                               const float *b, int64_t ldb, float *c,
                               int64_t ldc, int mr, int nr, int load_c,
                               const float *bias) {
    if (nr > 16)
        micro_width(kc, a, lda, b, ldb, c, ldc, mr, nr, load_c, bias, 2,
                    A_COLS);
    else
        micro_width(kc, a, lda, b, ldb, c, ldc, mr, nr, load_c, bias, 1,
                    A_COLS);
}

static const tlmi_gemm_blocking blocking = {
    .mr = MR, .nr = NR, .mc = MC, .kc = KC, .nc = NC, .a_block = A_BLOCK,
    .pack_a = pack_a, .pack_b = pack_b, .micro = micro_14x32,
    .micro_a_rows = micro_14x32_a_rows, .micro_a_cols = micro_14x32_a_cols,
    .rows_max_nc = 512, .cols_max_nc = 256, .direct_min_nr = 4,
    .b_in_place_max_m = 256, .b_in_place_max_n = INT64_MAX,
    .b_in_place_min_nr = 4,
};

/* ---- Small M: no packing ---------------------------------------------- */

/* The sum plus bias plus C (when accumulating), on the lanes of `mask`. */
TLMI_INLINE void finish_vector(float *c, __m512 sum, int accumulate,
                               const float *bias, __mmask16 mask) {
    if (bias != NULL)
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, bias));
    if (accumulate)
        sum = _mm512_add_ps(sum, _mm512_maskz_loadu_ps(mask, c));
    _mm512_mask_storeu_ps(c, mask, sum);
}

/* B not transposed: rows [i0, i0 + R) and columns [j0, j0 + 16 W) of C
 * (when `masked`, the last vector limited to `last` lanes), A(i, p) at
 * a[i * as + p * ps]; each step of p broadcasts R values of A against W
 * vectors of row p of B. */
TLMI_INLINE void small_rows_tile(float *c, const float *a, const float *b,
                                 const float *bias, int64_t n, int64_t k,
                                 int64_t as, int64_t ps, int accumulate,
                                 int64_t i0, int64_t j0, __mmask16 last,
                                 const int R, const int W, const int masked) {
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int v = 0; v < W; v++)
            acc[r][v] = _mm512_setzero_ps();
    const float *brow = b + j0;
    const float *arow = a + i0 * as;
    for (int64_t p = 0; p < k; p++, brow += n, arow += ps) {
        __m512 bv[8];
#pragma GCC unroll 8
        for (int v = 0; v < W; v++)
            bv[v] = masked && v == W - 1
                        ? _mm512_maskz_loadu_ps(last, brow + 16 * v)
                        : _mm512_loadu_ps(brow + 16 * v);
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m512 av = _mm512_set1_ps(arow[r * as]);
#pragma GCC unroll 8
            for (int v = 0; v < W; v++)
                acc[r][v] = _mm512_fmadd_ps(av, bv[v], acc[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float *crow = c + (i0 + r) * n + j0;
#pragma GCC unroll 8
        for (int v = 0; v < W; v++)
            finish_vector(crow + 16 * v, acc[r][v], accumulate,
                          bias ? bias + j0 + 16 * v : NULL,
                          masked && v == W - 1 ? last : (__mmask16)0xffff);
    }
}

/* Rows [i0, i0 + R) of C, columns [j_begin, j_end). (Cutting K into
 * slices, so that rows of B are read further at a time, measured no
 * faster.) Every column gets the same operations in any tile. */
TLMI_INLINE void small_rows(float *c, const float *a, const float *b,
                            const float *bias, int64_t n, int64_t k,
                            int64_t as, int64_t ps, int accumulate,
                            int64_t i0, int64_t j_begin, int64_t j_end,
                            const int R) {
    /* Keep R x W <= 24 accumulators. */
    const int W = R <= 2 ? 8 : 6;
    int64_t j = j_begin;
    for (; j + 16 * W <= j_end; j += 16 * W)
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j,
                        (__mmask16)0xffff, R, W, 0);
    if (j == j_end)
        return;
    /* The rest in one tile as wide as needed, its last vector masked. */
    const __mmask16 last = lanes(j_end - j - (j_end - j - 1) / 16 * 16);
    switch ((j_end - j + 15) / 16) {
#define REST_CASE(w)                                                        \
    case w:                                                                 \
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j,     \
                        last, R, w, 1);                                     \
        break;
        REST_CASE(1)
        REST_CASE(2)
        REST_CASE(3)
        REST_CASE(4)
        REST_CASE(5)
        REST_CASE(6)
        REST_CASE(7)
#undef REST_CASE
    default:
        break;
    }
}

/* B transposed, A not: C(i, j) is the dot product of row i of A and row j
 * of B, both contiguous. Rows [i0, i0 + R) x columns [j0, j0 + J). */
TLMI_INLINE void small_dots_tile(float *c, const float *a, const float *b,
                                 const float *bias, int64_t n, int64_t k,
                                 int accumulate, int64_t i0, int64_t j0,
                                 const int R, const int J) {
    __m512 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int q = 0; q < J; q++)
            acc[r][q] = _mm512_setzero_ps();
    const float *arow = a + i0 * k;
    const float *brow = b + j0 * k;
    const int64_t k16 = k & ~(int64_t)15;
    for (int64_t p = 0; p < k16; p += 16) {
        __m512 av[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            av[r] = _mm512_loadu_ps(arow + r * k + p);
#pragma GCC unroll 8
        for (int q = 0; q < J; q++) {
            const __m512 bv = _mm512_loadu_ps(brow + q * k + p);
            /* The rows of the next tile: B streams from memory when it is
             * large (the decode step's output layer), and rows of 3 KiB
             * are too short for the hardware prefetchers to ramp up. */
            _mm_prefetch((const char *)(brow + (q + J) * k + p), _MM_HINT_T0);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][q] = _mm512_fmadd_ps(av[r], bv, acc[r][q]);
        }
    }
    if (k16 < k) { /* the last K % 16 terms, masked */
        const __mmask16 mask = lanes(k - k16);
        __m512 av[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            av[r] = _mm512_maskz_loadu_ps(mask, arow + r * k + k16);
#pragma GCC unroll 8
        for (int q = 0; q < J; q++) {
            const __m512 bv = _mm512_maskz_loadu_ps(mask, brow + q * k + k16);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][q] = _mm512_fmadd_ps(av[r], bv, acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < J; q++) {
            float sum = _mm512_reduce_add_ps(acc[r][q]);
            if (bias != NULL)
                sum += bias[j0 + q];
            float *out = c + (i0 + r) * n + j0 + q;
            if (accumulate)
                sum += *out;
            *out = sum;
        }
    }
}

TLMI_INLINE void small_dots(float *c, const float *a, const float *b,
                            const float *bias, int64_t n, int64_t k,
                            int accumulate, int64_t i0, int64_t j_begin,
                            int64_t j_end, const int R) {
    const int J = R == 1 ? 8 : R == 2 ? 6 : 4;
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
    if (transpose_b) {
        for (int64_t i = 0; i < m;) {
            const int64_t rest = m - i;
            if (rest >= 3) {
                small_dots(c, a, b, bias, n, k, accumulate, i, j_begin, j_end, 3);
                i += 3;
            } else if (rest == 2) {
                small_dots(c, a, b, bias, n, k, accumulate, i, j_begin, j_end, 2);
                i += 2;
            } else {
                small_dots(c, a, b, bias, n, k, accumulate, i, j_begin, j_end, 1);
                i += 1;
            }
        }
        return;
    }
    /* A(i, p): a[i * k + p], or a[p * m + i] when transposed. */
    const int64_t as = transpose_a ? 1 : k, ps = transpose_a ? m : 1;
    for (int64_t i = 0; i < m;) {
        const int64_t rest = m - i;
        if (rest >= 4) {
            small_rows(c, a, b, bias, n, k, as, ps, accumulate, i, j_begin,
                       j_end, 4);
            i += 4;
        } else if (rest == 3) {
            small_rows(c, a, b, bias, n, k, as, ps, accumulate, i, j_begin,
                       j_end, 3);
            i += 3;
        } else if (rest == 2) {
            small_rows(c, a, b, bias, n, k, as, ps, accumulate, i, j_begin,
                       j_end, 2);
            i += 2;
        } else {
            small_rows(c, a, b, bias, n, k, as, ps, accumulate, i, j_begin,
                       j_end, 1);
            i += 1;
        }
    }
}

/* ---- Entry points ----------------------------------------------------- */

static int use_small(int64_t m, int transpose_a, int transpose_b) {
    return m <= SMALL_M && !(transpose_a && transpose_b);
}

size_t tlmi_gemm_avx512_workspace(int64_t m, int64_t n, int64_t k,
                                  int transpose_a, int transpose_b) {
    if (use_small(m, transpose_a, transpose_b))
        return 0;
    return tlmi_gemm_blocked_workspace(&blocking, m, n, k);
}

void tlmi_gemm_avx512_cols(float *c, const float *a, const float *b,
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

void tlmi_gemm_avx512(float *c, const float *a, const float *b,
                      const float *bias, int64_t m, int64_t n, int64_t k,
                      int transpose_a, int transpose_b, int accumulate,
                      float *workspace) {
    tlmi_gemm_avx512_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                          accumulate, 0, n, workspace);
}
