/*
 * GEMM for AVX2 + FMA (16 ymm registers of 8 floats).
 *
 * Micro-kernel 6 x 16: a tile of C is 6 rows x 2 ymm, 12 accumulators;
 * each step of p loads 2 vectors of the B panel and broadcasts 6 values of
 * the A panel, for 12 FMAs. 12 independent accumulators cover the FMA
 * latency (4-5 cycles) at 2 FMAs per cycle; the 3 registers left hold the
 * B vectors and the broadcast. This is BLIS's Haswell shape.
 *
 * The kernel alone, on packed data in cache, does about 118 GFLOP/s on
 * the benchmark machine (Zen 5); the whole GEMM reaches 80-95% of that.
 * Narrower variants (8 columns, or vectors down the rows for up to 2
 * columns) serve the last tile of a row of C.
 *
 * Cache blocks as for AVX-512 (see that file) but K slices up to KC = 512,
 * so that a B micro-panel (KC x 16 floats, 32 KiB) stays in L1: the
 * kernel alone loses 5% when it streams a 64 KiB one from L2, and whole
 * products measured 1-2% faster than with KC = 1024. A blocks of about
 * 256 KiB, B panels up to NC = 2048 columns; the optimum is flat around
 * these values.
 *
 * Small M (M <= 8, decoding one or a few tokens): no packing; B is
 * streamed once per group of up to 4 rows, straight from memory.
 */
#include <immintrin.h>
#include <stddef.h>
#include <stdint.h>

#include "kernels/gemm.h"
#include "pack_x86.h"

#define MR 6
#define NR 16
/* Cache blocking (see gemm.h): K slices of at most KC, A blocks of about
 * A_BLOCK floats and at most MC rows, B panels of at most NC columns. */
#define KC 512
#define A_BLOCK (64 * 1024)
#define MC (84 * MR)
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

/* The last tile of a row of tiles when it has at most 8 columns: half
 * the FMAs of the full kernel (B panels keep their NR-float rows). */
static void micro_6x8(int64_t kc, const float *ap, const float *bp, float *c,
                      int64_t ldc, int mr, int nr, int load_c,
                      const float *bias) {
    __m256 acc[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
        acc[r] = _mm256_setzero_ps();
#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(bp);
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++)
            acc[r] = _mm256_fmadd_ps(_mm256_broadcast_ss(ap + r), b0, acc[r]);
        ap += MR;
        bp += NR;
    }
    float tile[MR * 8];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++)
        _mm256_storeu_ps(tile + r * 8, acc[r]);
    for (int r = 0; r < mr; r++) {
        float *row = c + r * ldc;
        for (int j = 0; j < nr; j++) {
            float x = tile[r * 8 + j];
            if (bias != NULL)
                x += bias[j];
            if (load_c)
                x += row[j];
            row[j] = x;
        }
    }
}

/* A tile of at most 2 columns the other way round (see the AVX-512 file):
 * vectors run down the 6 rows of the A panel (lanes 6 and 7 read the next
 * row and are ignored), each column's value of B is broadcast, 4 partial
 * sums per column. */
static void micro_columns(int64_t kc, const float *ap, const float *bp,
                          float *c, int64_t ldc, int mr, int nr, int load_c,
                          const float *bias) {
    __m256 acc[2][4];
#pragma GCC unroll 2
    for (int j = 0; j < 2; j++)
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++)
            acc[j][u] = _mm256_setzero_ps();
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
#pragma GCC unroll 4
        for (int u = 0; u < 4; u++) {
            const __m256 a = _mm256_loadu_ps(ap + (p + u) * MR);
#pragma GCC unroll 2
            for (int j = 0; j < 2; j++)
                if (j < nr)
                    acc[j][u] = _mm256_fmadd_ps(
                        a, _mm256_broadcast_ss(bp + (p + u) * NR + j),
                        acc[j][u]);
        }
    }
    for (; p < kc; p++) {
        const __m256 a = _mm256_loadu_ps(ap + p * MR);
#pragma GCC unroll 2
        for (int j = 0; j < 2; j++)
            if (j < nr)
                acc[j][0] = _mm256_fmadd_ps(
                    a, _mm256_broadcast_ss(bp + p * NR + j), acc[j][0]);
    }
    float column[8];
    for (int j = 0; j < nr; j++) {
        _mm256_storeu_ps(column,
                         _mm256_add_ps(_mm256_add_ps(acc[j][0], acc[j][1]),
                                       _mm256_add_ps(acc[j][2], acc[j][3])));
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

/* The first R rows (R <= MR) of a full-width tile: R = 6 is the kernel
 * proper, the narrower ones serve the last tile of a column of tiles
 * (M = 64 ends with 4 rows), whose rows would otherwise cost as much as
 * 6. Each row of C gets the same operations whatever R. Writes rows
 * r < mr and columns c < nr. */
/* Where the kernel reads A: a packed panel (ap[p * MR + r]), or A as
 * stored, not transposed (ap[r * lda + p]). There rows r >= mr of a tile
 * do not exist: when `clamp`, they read row 0 again instead (and their
 * results are dropped). */
enum { A_PACKED, A_ROWS };

TLMI_INLINE void micro_rows(int64_t kc, const float *ap, int64_t lda,
                            const float *bp, int64_t ldb, float *c,
                            int64_t ldc, int mr, int nr, int load_c,
                            const float *bias, const int R, const int mode,
                            const int clamp) {
    /* B: the packed panel, or, with A unpacked, B as stored in tiles of
     * NR columns (b_in_place_min_nr below), ldb its row stride. */
    const int64_t b_step = mode == A_PACKED ? NR : ldb;
    int64_t row_at[MR];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        const int64_t row = clamp && r >= mr ? 0 : r;
        row_at[r] = row * lda;
    }
    const int64_t a_step = mode == A_PACKED ? MR : 1;
    __m256 acc[MR][2];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        acc[r][0] = _mm256_setzero_ps();
        acc[r][1] = _mm256_setzero_ps();
    }
    /* C is read at the end: start fetching it now. */
    for (int r = 0; r < mr; r++)
        _mm_prefetch((const char *)(c + r * ldc), _MM_HINT_T0);

#pragma GCC unroll 4
    for (int64_t p = 0; p < kc; p++) {
        const __m256 b0 = _mm256_loadu_ps(bp);
        const __m256 b1 = _mm256_loadu_ps(bp + 8);
#pragma GCC unroll 6
        for (int r = 0; r < R; r++) {
            const __m256 av = _mm256_broadcast_ss(
                mode == A_PACKED ? ap + r
                : clamp          ? ap + row_at[r]
                                 : ap + r * lda);
            acc[r][0] = _mm256_fmadd_ps(av, b0, acc[r][0]);
            acc[r][1] = _mm256_fmadd_ps(av, b1, acc[r][1]);
        }
        ap += a_step;
        bp += b_step;
    }

    if (R == MR && mr == MR && nr == NR) {
        __m256 bias0 = _mm256_setzero_ps(), bias1 = _mm256_setzero_ps();
        if (bias != NULL) {
            bias0 = _mm256_loadu_ps(bias);
            bias1 = _mm256_loadu_ps(bias + 8);
        }
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            float *row = c + r * ldc;
            __m256 x0 = _mm256_add_ps(acc[r][0], bias0);
            __m256 x1 = _mm256_add_ps(acc[r][1], bias1);
            if (load_c) {
                x0 = _mm256_add_ps(x0, _mm256_loadu_ps(row));
                x1 = _mm256_add_ps(x1, _mm256_loadu_ps(row + 8));
            }
            _mm256_storeu_ps(row, x0);
            _mm256_storeu_ps(row + 8, x1);
        }
        return;
    }
    /* A tile on the edge of C: through a buffer, only the valid part. */
    float tile[MR * NR];
#pragma GCC unroll 6
    for (int r = 0; r < R; r++) {
        _mm256_storeu_ps(tile + r * NR, acc[r][0]);
        _mm256_storeu_ps(tile + r * NR + 8, acc[r][1]);
    }
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

/* The rows of a full-width tile with the narrowest variant that holds
 * them; with A unpacked, a tile of exactly R rows reads them at fixed
 * offsets, a shorter one through row_at. */
#define ROWS_VARIANT(R_)                                                    \
    do {                                                                    \
        if (mode != A_PACKED && mr == (R_))                                 \
            micro_rows(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias,   \
                       R_, mode, 0);                                        \
        else                                                                \
            micro_rows(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias,   \
                       R_, mode, mode != A_PACKED);                         \
    } while (0)

TLMI_INLINE void micro_full_width(int64_t kc, const float *ap, int64_t lda,
                                  const float *bp, int64_t ldb, float *c,
                                  int64_t ldc, int mr, int nr, int load_c,
                                  const float *bias, const int mode) {
    if (mr > 4)
        ROWS_VARIANT(6);
    else if (mr > 2)
        ROWS_VARIANT(4);
    else
        ROWS_VARIANT(2);
}
#undef ROWS_VARIANT

static void micro_6x16(int64_t kc, const float *ap, const float *bp,
                       float *c, int64_t ldc, int mr, int nr, int load_c,
                       const float *bias) {
    if (nr <= 2)
        micro_columns(kc, ap, bp, c, ldc, mr, nr, load_c, bias);
    else if (nr <= 8)
        micro_6x8(kc, ap, bp, c, ldc, mr, nr, load_c, bias);
    else
        micro_full_width(kc, ap, MR, bp, NR, c, ldc, mr, nr, load_c, bias,
                         A_PACKED);
}

/* A read in place when not transposed: tiles of more than 8 columns only
 * (the narrower kernels read a packed panel; direct_min_nr below). A
 * transposed is always packed: reading it in place measured no faster
 * with AVX2 (0.97-1.04x on the training step's products). */
static void micro_6x16_a_rows(int64_t kc, const float *a, int64_t lda,
                              const float *bp, int64_t ldb, float *c,
                              int64_t ldc, int mr, int nr, int load_c,
                              const float *bias) {
    micro_full_width(kc, a, lda, bp, ldb, c, ldc, mr, nr, load_c, bias,
                     A_ROWS);
}

static const tlmi_gemm_blocking blocking = {
    .mr = MR, .nr = NR, .mc = MC, .kc = KC, .nc = NC, .a_block = A_BLOCK,
    .pack_a = pack_a, .pack_b = pack_b, .micro = micro_6x16,
    .micro_a_rows = micro_6x16_a_rows, .rows_max_nc = 512,
    .direct_min_nr = 8, .b_in_place_max_m = 256, .b_in_place_max_n = 256,
    .b_in_place_min_nr = NR,
};

/* ---- Small M: no packing ---------------------------------------------- */

/* Writes one value of C: the sum, plus C when accumulating, plus bias. */
TLMI_INLINE void finish_scalar(float *c, float sum, int accumulate,
                               const float *bias, int64_t j) {
    if (bias != NULL)
        sum += bias[j];
    if (accumulate)
        sum += *c;
    *c = sum;
}

TLMI_INLINE __m256 finish_vector(const float *c, __m256 sum, int accumulate,
                                 const float *bias) {
    if (bias != NULL)
        sum = _mm256_add_ps(sum, _mm256_loadu_ps(bias));
    if (accumulate)
        sum = _mm256_add_ps(sum, _mm256_loadu_ps(c));
    return sum;
}

/* B not transposed: rows [i0, i0 + R) and columns [j0, j0 + 8 W) of C,
 * A(i, p) at a[i * as + p * ps]; each step of p broadcasts R values of A
 * against W vectors of row p of B. */
TLMI_INLINE void small_rows_tile(float *c, const float *a, const float *b,
                                 const float *bias, int64_t n, int64_t k,
                                 int64_t as, int64_t ps, int accumulate,
                                 int64_t i0, int64_t j0, const int R,
                                 const int W) {
    __m256 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int v = 0; v < W; v++)
            acc[r][v] = _mm256_setzero_ps();
    const float *brow = b + j0;
    const float *arow = a + i0 * as;
    for (int64_t p = 0; p < k; p++, brow += n, arow += ps) {
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            const __m256 av = _mm256_broadcast_ss(arow + r * as);
#pragma GCC unroll 8
            for (int v = 0; v < W; v++)
                acc[r][v] = _mm256_fmadd_ps(av, _mm256_loadu_ps(brow + 8 * v),
                                            acc[r][v]);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        float *crow = c + (i0 + r) * n + j0;
#pragma GCC unroll 8
        for (int v = 0; v < W; v++)
            _mm256_storeu_ps(crow + 8 * v,
                             finish_vector(crow + 8 * v, acc[r][v], accumulate,
                                           bias ? bias + j0 + 8 * v : NULL));
    }
}

/* Rows [i0, i0 + R) of C, columns [j_begin, j_end). A column gets the
 * same operations in any tile, so any j_begin that is a multiple of 8
 * gives the same bits (the last ones, past a multiple of 8, are
 * scalar). */
TLMI_INLINE void small_rows(float *c, const float *a, const float *b,
                            const float *bias, int64_t n, int64_t k,
                            int64_t as, int64_t ps, int accumulate,
                            int64_t i0, int64_t j_begin, int64_t j_end,
                            const int R) {
    /* Keep R x W <= 12 accumulators. */
    const int W = R == 1 ? 8 : R == 2 ? 6 : R == 3 ? 4 : 3;
    int64_t j = j_begin;
    for (; j + 8 * W <= j_end; j += 8 * W)
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j, R, W);
    for (; j + 8 <= j_end; j += 8)
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

TLMI_INLINE float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* B transposed, A not: C(i, j) is the dot product of row i of A and row j
 * of B, both contiguous. Rows [i0, i0 + R) x columns [j0, j0 + J). */
TLMI_INLINE void small_dots_tile(float *c, const float *a, const float *b,
                                 const float *bias, int64_t n, int64_t k,
                                 int accumulate, int64_t i0, int64_t j0,
                                 const int R, const int J) {
    __m256 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 8
        for (int q = 0; q < J; q++)
            acc[r][q] = _mm256_setzero_ps();
    const float *arow = a + i0 * k;
    const float *brow = b + j0 * k;
    const int64_t k8 = k & ~(int64_t)7;
    for (int64_t p = 0; p < k8; p += 8) {
        __m256 av[4];
#pragma GCC unroll 4
        for (int r = 0; r < R; r++)
            av[r] = _mm256_loadu_ps(arow + r * k + p);
#pragma GCC unroll 8
        for (int q = 0; q < J; q++) {
            const __m256 bv = _mm256_loadu_ps(brow + q * k + p);
            /* The rows of the next tile (see the AVX-512 file). */
            _mm_prefetch((const char *)(brow + (q + J) * k + p), _MM_HINT_T0);
#pragma GCC unroll 4
            for (int r = 0; r < R; r++)
                acc[r][q] = _mm256_fmadd_ps(av[r], bv, acc[r][q]);
        }
    }
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < J; q++) {
            float sum = hsum(acc[r][q]);
            for (int64_t p = k8; p < k; p++)
                sum += arow[r * k + p] * brow[q * k + p];
            finish_scalar(c + (i0 + r) * n + j0 + q, sum, accumulate, bias,
                          j0 + q);
        }
    }
}

TLMI_INLINE void small_dots(float *c, const float *a, const float *b,
                            const float *bias, int64_t n, int64_t k,
                            int accumulate, int64_t i0, int64_t j_begin,
                            int64_t j_end, const int R) {
    const int J = R == 1 ? 8 : R == 2 ? 4 : 3;
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

size_t tlmi_gemm_avx2_workspace(int64_t m, int64_t n, int64_t k,
                                int transpose_a, int transpose_b) {
    if (use_small(m, transpose_a, transpose_b))
        return 0;
    return tlmi_gemm_blocked_workspace(&blocking, m, n, k);
}

void tlmi_gemm_avx2_cols(float *c, const float *a, const float *b,
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

void tlmi_gemm_avx2(float *c, const float *a, const float *b,
                    const float *bias, int64_t m, int64_t n, int64_t k,
                    int transpose_a, int transpose_b, int accumulate,
                    float *workspace) {
    tlmi_gemm_avx2_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                        accumulate, 0, n, workspace);
}
