/*
 * The GEMM kernels of gemm.h written once over the vectors of
 * kernels/simd.h: the packed micro-kernel and its narrower variants, the
 * kernels reading A in place, the small-M path (no packing) and the three
 * entry points. A template in the protocol of kernels/simd.h: a per-ISA
 * source (x86/gemm_avx2.c, x86/gemm_avx512.c, arm/gemm_neon.c) defines
 * TLMI_SIMD_<ISA>, TLMI_ISA_SUFFIX, the sizes below and what is really
 * its own, then includes this file, which is compiled with that file's
 * flags. Everything here is static except the entries tlmi_gemm_<isa>,
 * tlmi_gemm_cols_<isa> and tlmi_gemm_workspace_<isa>. The loops around
 * the micro-kernel (cache blocking, the edges of C) are the plain-C
 * driver of gemm_blocked.c.
 *
 * The including file defines (every name below prefixed TLMI_GEMM_: MR
 * is TLMI_GEMM_MR):
 *   MR, NR              the micro-tile: rows of A, columns of B; NR is 1
 *                       to 3 vectors (TLMI_VL floats each)
 *   KC, A_BLOCK, MC, NC cache blocks (tlmi_gemm_blocking in gemm.h)
 *   UNROLL_K            how many steps of p the micro-kernel unrolls
 *   ROW_VARIANTS(X)     X(R) for each number of rows a kernel variant
 *                       computes, increasing, the last MR: a tile of mr
 *                       rows runs the smallest variant R >= mr
 *   SMALL_W(R), SMALL_J(R)  small M: vectors of columns per
 *                       tile of R rows (B not transposed), columns per
 *                       tile of dot products (B transposed)
 * and may define:
 *   COLUMNS             tiles of at most this many columns (4 or fewer)
 *                       run a kernel with vectors down the MR rows of A
 *                       (MR <= TLMI_VL); 0 or undefined: none
 *   DIRECT_ROWS, DIRECT_COLS  1: kernels reading A in place,
 *                       not transposed / transposed (gemm.h), with
 *                       ROWS_MAX_NC, COLS_MAX_NC, DIRECT_MIN_NR,
 *                       B_IN_PLACE_MAX_M, B_IN_PLACE_MAX_N,
 *                       B_IN_PLACE_MIN_NR
 *                       (the blocking's fields; 0 when undefined).
 *                       Without TLMI_VF_MASKED, B read in place must
 *                       only come in full tiles (B_IN_PLACE_MIN_NR
 *                       = NR, or no such reading).
 *   SMALL_DOTS_R        rows per tile of dot products, 3 (default) or 4
 *   SMALL_M             products of at most this many rows (8 by
 *                       default) take the small-M path
 *   HAVE_PACK_PANELS    with pack_panels() below, its own packing
 *   HAVE_FMA_LANES      with fma_lanes() below, its own step of the
 *                       packed kernel for R a multiple of 4
 *
 * Every element of C gets the same operations whatever row variant or
 * width of the micro-kernel computes it: a chain of fused multiply-adds
 * over p from 0 (+ bias) (+ C); only the column kernel, which takes the
 * narrowest last tiles, sums 4 interleaved chains. The edges differ only
 * in how the lanes that exist are stored: with lane masks
 * (TLMI_VF_MASKED), masked vector loads and stores; without, through a
 * buffer, one float at a time.
 */
#ifndef TLMI_ISA_SUFFIX
#error "define TLMI_ISA_SUFFIX and the sizes before including this file"
#endif

#include <stddef.h>
#include <stdint.h>

#include "gemm.h"
#include "simd.h"

/* Short names for the including file's sizes (#undef'd at the end). */
#define MR TLMI_GEMM_MR
#define NR TLMI_GEMM_NR
#define KC TLMI_GEMM_KC
#define MC TLMI_GEMM_MC
#define NC TLMI_GEMM_NC
#define A_BLOCK TLMI_GEMM_A_BLOCK

#ifndef TLMI_INLINE
#if defined(__GNUC__)
#define TLMI_INLINE static inline __attribute__((always_inline))
#else
#define TLMI_INLINE static inline
#endif
#endif

#if defined(__GNUC__)
#define TLMI_GEMM_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
#else
#define TLMI_GEMM_PREFETCH(p) ((void)(p))
#endif

/* #pragma GCC unroll with a macro argument. Nothing in a sanitizer
 * build: there every unrolled load and store of the micro-kernels is
 * instrumented on its own, and clang took 200 s of CPU to compile
 * x86/gemm_avx512.c with ASan + UBSan (most of CI's sanitizer build).
 * Unrolling changes the speed only: the same operations in the same order
 * reach every element of C either way. */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define TLMI_GEMM_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define TLMI_GEMM_SANITIZED 1
#endif
#endif
#define TLMI_GEMM_PRAGMA(x) _Pragma(#x)
#ifdef TLMI_GEMM_SANITIZED
#define TLMI_GEMM_UNROLL(n)
#else
#define TLMI_GEMM_UNROLL(n) TLMI_GEMM_PRAGMA(GCC unroll n)
#endif

/* Vectors in a full tile's row. */
#define WMAX (NR / TLMI_VL)
#if NR % TLMI_VL != 0 || WMAX < 1 || WMAX > 3
#error "NR must be 1, 2 or 3 vectors"
#endif

#ifndef TLMI_GEMM_COLUMNS
#define TLMI_GEMM_COLUMNS 0
#endif
#if TLMI_GEMM_COLUMNS > 4 || (TLMI_GEMM_COLUMNS > 0 && MR > TLMI_VL)
#error "the column kernel takes at most 4 columns and MR <= TLMI_VL rows"
#endif
#ifndef TLMI_GEMM_DIRECT_ROWS
#define TLMI_GEMM_DIRECT_ROWS 0
#endif
#ifndef TLMI_GEMM_DIRECT_COLS
#define TLMI_GEMM_DIRECT_COLS 0
#endif
#ifndef TLMI_GEMM_SMALL_DOTS_R
#define TLMI_GEMM_SMALL_DOTS_R 3
#endif
/* Products of at most SMALL_M rows take the small-M path. */
#ifndef TLMI_GEMM_SMALL_M
#define TLMI_GEMM_SMALL_M 8
#endif

/* Loads and stores of the lanes of a mask where the layer has masks
 * (tlmi_vm from vf_lanes); without, only whole vectors come here and the
 * mask is ignored. */
#if defined(TLMI_VF_MASKED)
typedef tlmi_vm gemm_vm;
#define gemm_lanes(n) vf_lanes(n)
#define gemm_load_lanes(m, p) vf_load_mask((m), (p))
#define gemm_store_lanes(p, m, v) vf_store_mask((p), (m), (v))
#else
typedef int gemm_vm;
#define gemm_lanes(n) ((int)(n))
#define gemm_load_lanes(m, p) ((void)(m), vf_load(p))
#define gemm_store_lanes(p, m, v) ((void)(m), vf_store((p), (v)))
#endif

/* ---- Packing ---------------------------------------------------------- */

#if !defined(TLMI_GEMM_HAVE_PACK_PANELS)
/* Panels of W indices, kc rows of W floats each (see gemm.h), in plain C
 * (the compiler vectorizes the contiguous case). Direct:
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
#endif

static void pack_a(float *ap, const float *a, int64_t lda, int transpose_a,
                   int64_t i0, int64_t p0, int64_t mc, int64_t kc) {
    pack_panels(ap, a, lda, !transpose_a, i0, p0, mc, kc, MR);
}

static void pack_b(float *bp, const float *b, int64_t ldb, int transpose_b,
                   int64_t p0, int64_t j0, int64_t kc, int64_t nc) {
    pack_panels(bp, b, ldb, transpose_b, j0, p0, nc, kc, NR);
}

/* ---- Micro-kernel ----------------------------------------------------- */

/* Where the kernels read A: a packed panel (ap[p * MR + r]), or A as
 * stored, not transposed (ap[r * lda + p]) or transposed (ap[p * lda +
 * r]). In the last two, rows r >= mr of a tile do not exist: when `clamp`,
 * they read row 0 again instead (and their results are dropped). */
enum { A_PACKED, A_ROWS, A_COLS };

/* The first R rows (R <= MR) and W vectors (W <= WMAX) of a tile: the
 * full kernel is R = MR, W = WMAX; the narrower ones serve the tiles on
 * the bottom and right edges of C, so that a tile of 2 rows or 1 column
 * does not cost a full one. Writes rows r < mr and columns c < nr. B is
 * the packed panel (mode A_PACKED, rows of NR floats), or, with A
 * unpacked, the panel or B as stored (ldb its row stride; read with masks
 * where the layer has them, so an edge tile reads no column past nr). */
TLMI_INLINE void micro_rows(int64_t kc, const float *ap, int64_t lda,
                            const float *bp, int64_t ldb, float *c,
                            int64_t ldc, int mr, int nr, int load_c,
                            const float *bias, const int R, const int W,
                            const int mode, const int clamp) {
    gemm_vm b_mask[WMAX];
    TLMI_GEMM_UNROLL(3)
    for (int v = 0; v < W; v++)
        b_mask[v] = gemm_lanes(mode == A_PACKED ? TLMI_VL : nr - TLMI_VL * v);
    /* Offsets of the rows of A when it is read unpacked. */
    int64_t row_at[MR];
    TLMI_GEMM_UNROLL(16)
    for (int r = 0; r < R; r++) {
        const int64_t row = clamp && r >= mr ? 0 : r;
        row_at[r] = mode == A_COLS ? row : row * lda;
    }
    const int64_t a_step = mode == A_PACKED ? MR : mode == A_ROWS ? 1 : lda;
    const int64_t b_step = mode == A_PACKED ? NR : ldb;
    tlmi_vf acc[MR][WMAX];
    TLMI_GEMM_UNROLL(16)
    for (int r = 0; r < R; r++)
        TLMI_GEMM_UNROLL(3)
        for (int v = 0; v < W; v++)
            acc[r][v] = vf_zero();
    /* C is read at the end: start fetching it now, a line at a time. */
    for (int r = 0; r < mr; r++)
        TLMI_GEMM_UNROLL(3)
        for (int off = 0; off < W * TLMI_VL; off += 16)
            TLMI_GEMM_PREFETCH(c + r * ldc + off);

    TLMI_GEMM_UNROLL(TLMI_GEMM_UNROLL_K)
    for (int64_t p = 0; p < kc; p++) {
        tlmi_vf b[WMAX];
        TLMI_GEMM_UNROLL(3)
        for (int v = 0; v < W; v++)
            b[v] = mode == A_PACKED
                       ? vf_load(bp + TLMI_VL * v)
                       : gemm_load_lanes(b_mask[v], bp + TLMI_VL * v);
#if defined(TLMI_GEMM_HAVE_FMA_LANES)
        if (mode == A_PACKED && R % 4 == 0) {
            fma_lanes(acc, ap, b, R, W);
        } else
#endif
        {
            TLMI_GEMM_UNROLL(16)
            for (int r = 0; r < R; r++) {
                const tlmi_vf av = vf_bcast(mode == A_PACKED ? ap + r
                                            : clamp ? ap + row_at[r]
                                            : mode == A_ROWS ? ap + r * lda
                                                             : ap + r);
                TLMI_GEMM_UNROLL(3)
                for (int v = 0; v < W; v++)
                    acc[r][v] = vf_fmadd(av, b[v], acc[r][v]);
            }
        }
        ap += a_step;
        bp += b_step;
    }

    if (R == MR && W == WMAX && mr == MR && nr == NR) {
        tlmi_vf bias_v[WMAX];
        TLMI_GEMM_UNROLL(3)
        for (int v = 0; v < WMAX; v++)
            bias_v[v] = bias != NULL ? vf_load(bias + TLMI_VL * v) : vf_zero();
        TLMI_GEMM_UNROLL(16)
        for (int r = 0; r < MR; r++) {
            float *row = c + r * ldc;
            TLMI_GEMM_UNROLL(3)
            for (int v = 0; v < WMAX; v++) {
                tlmi_vf x = vf_add(acc[r][v], bias_v[v]);
                if (load_c)
                    x = vf_add(x, vf_load(row + TLMI_VL * v));
                vf_store(row + TLMI_VL * v, x);
            }
        }
        return;
    }
#if defined(TLMI_VF_MASKED)
    /* A tile on the edge of C: masked columns, rows below mr only. */
    tlmi_vm mask[WMAX];
    tlmi_vf bias_v[WMAX];
    TLMI_GEMM_UNROLL(3)
    for (int v = 0; v < W; v++) {
        mask[v] = vf_lanes(nr - TLMI_VL * v);
        bias_v[v] = bias != NULL ? vf_load_mask(mask[v], bias + TLMI_VL * v)
                                 : vf_zero();
    }
    TLMI_GEMM_UNROLL(16)
    for (int r = 0; r < R; r++) {
        if (r >= mr)
            break;
        float *row = c + r * ldc;
        TLMI_GEMM_UNROLL(3)
        for (int v = 0; v < W; v++) {
            tlmi_vf x = vf_add(acc[r][v], bias_v[v]);
            if (load_c)
                x = vf_add(x, vf_load_mask(mask[v], row + TLMI_VL * v));
            vf_store_mask(row + TLMI_VL * v, mask[v], x);
        }
    }
#else
    /* A tile on the edge of C: each vector through a buffer of one
     * vector, of which only the lanes of columns below nr reach C. Rows
     * below mr only, as above. */
    TLMI_GEMM_UNROLL(16)
    for (int r = 0; r < R; r++) {
        if (r >= mr)
            break;
        float *row = c + r * ldc;
        TLMI_GEMM_UNROLL(3)
        for (int v = 0; v < W; v++) {
            const int j0 = TLMI_VL * v;
            const int lanes = nr - j0 < TLMI_VL ? nr - j0 : TLMI_VL;
            float part[TLMI_VL];
            vf_store(part, acc[r][v]);
            for (int j = 0; j < lanes; j++) {
                float x = part[j];
                if (bias != NULL)
                    x += bias[j0 + j];
                if (load_c)
                    x += row[j0 + j];
                row[j0 + j] = x;
            }
        }
    }
#endif
}

/* The tile's rows with the narrowest variant that holds them: every row
 * of a tile costs about the same whatever the variant (the kernel is
 * bound by its FMAs), so the last tile of M = 64 runs, say, an 8-row
 * variant instead of paying for 14. With A unpacked, a tile of exactly R
 * rows reads them at fixed offsets, a shorter one through row_at. */
#define TLMI_GEMM_TRY_ROWS(R_)                                              \
    if (mr <= (R_)) {                                                       \
        if (mode != A_PACKED && mr == (R_))                                 \
            micro_rows(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias,  \
                       R_, W, mode, 0);                                     \
        else                                                                \
            micro_rows(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias,  \
                       R_, W, mode, mode != A_PACKED);                      \
        return;                                                             \
    }

TLMI_INLINE void micro_width(int64_t kc, const float *ap, int64_t lda,
                             const float *bp, int64_t ldb, float *c,
                             int64_t ldc, int mr, int nr, int load_c,
                             const float *bias, const int W, const int mode) {
    TLMI_GEMM_ROW_VARIANTS(TLMI_GEMM_TRY_ROWS)
}
#undef TLMI_GEMM_TRY_ROWS

/* The vectors a tile of nr columns needs. */
TLMI_INLINE void micro_any(int64_t kc, const float *ap, int64_t lda,
                           const float *bp, int64_t ldb, float *c,
                           int64_t ldc, int mr, int nr, int load_c,
                           const float *bias, const int mode) {
    if (nr <= TLMI_VL)
        micro_width(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias, 1,
                    mode);
#if WMAX >= 3
    else if (nr <= 2 * TLMI_VL)
        micro_width(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias, 2,
                    mode);
#endif
    else
        micro_width(kc, ap, lda, bp, ldb, c, ldc, mr, nr, load_c, bias,
                    WMAX, mode);
}

#if TLMI_GEMM_COLUMNS > 0
/* A tile of at most TLMI_GEMM_COLUMNS columns (the last of a row of tiles,
 * e.g. column 64 of a 65-token vocabulary) the other way round: vectors
 * run down the MR rows of the A panel (lanes past MR read the next row
 * and are ignored) and each column's value of B is broadcast. The row
 * kernels would spend a full vector per row on one column; this spends
 * one FMA per column, with 4 partial sums per column to hide the FMA
 * latency. */
static void micro_columns(int64_t kc, const float *ap, const float *bp,
                          float *c, int64_t ldc, int mr, int nr, int load_c,
                          const float *bias) {
    tlmi_vf acc[TLMI_GEMM_COLUMNS][4];
    TLMI_GEMM_UNROLL(4)
    for (int j = 0; j < TLMI_GEMM_COLUMNS; j++)
        TLMI_GEMM_UNROLL(4)
        for (int u = 0; u < 4; u++)
            acc[j][u] = vf_zero();
    int64_t p = 0;
    for (; p + 4 <= kc; p += 4) {
        TLMI_GEMM_UNROLL(4)
        for (int u = 0; u < 4; u++) {
            const tlmi_vf a = vf_load(ap + (p + u) * MR);
            TLMI_GEMM_UNROLL(4)
            for (int j = 0; j < TLMI_GEMM_COLUMNS; j++)
                if (j < nr)
                    acc[j][u] = vf_fmadd(a, vf_bcast(bp + (p + u) * NR + j),
                                         acc[j][u]);
        }
    }
    for (; p < kc; p++) {
        const tlmi_vf a = vf_load(ap + p * MR);
        TLMI_GEMM_UNROLL(4)
        for (int j = 0; j < TLMI_GEMM_COLUMNS; j++)
            if (j < nr)
                acc[j][0] = vf_fmadd(a, vf_bcast(bp + p * NR + j), acc[j][0]);
    }
    float column[TLMI_VL];
    for (int j = 0; j < nr; j++) {
        vf_store(column, vf_add(vf_add(acc[j][0], acc[j][1]),
                                vf_add(acc[j][2], acc[j][3])));
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
#endif

/* The packed kernel (tlmi_micro_fn). */
static void micro(int64_t kc, const float *ap, const float *bp, float *c,
                  int64_t ldc, int mr, int nr, int load_c,
                  const float *bias) {
#if TLMI_GEMM_COLUMNS > 0
    if (nr <= TLMI_GEMM_COLUMNS) {
        micro_columns(kc, ap, bp, c, ldc, mr, nr, load_c, bias);
        return;
    }
#endif
    micro_any(kc, ap, MR, bp, NR, c, ldc, mr, nr, load_c, bias, A_PACKED);
}

/* A read in place (tlmi_micro_direct_fn), not transposed (micro_a_rows)
 * and transposed (micro_a_cols): tiles of more than TLMI_GEMM_DIRECT_MIN_NR
 * columns only (the narrower ones run `micro` on a packed panel). */
#define TLMI_GEMM_DIRECT_KERNEL(name, mode)                                 \
    static void name(int64_t kc, const float *a, int64_t lda,               \
                     const float *b, int64_t ldb, float *c, int64_t ldc,    \
                     int mr, int nr, int load_c, const float *bias) {       \
        micro_any(kc, a, lda, b, ldb, c, ldc, mr, nr, load_c, bias, mode);  \
    }
#if TLMI_GEMM_DIRECT_ROWS
TLMI_GEMM_DIRECT_KERNEL(micro_a_rows, A_ROWS)
#endif
#if TLMI_GEMM_DIRECT_COLS
TLMI_GEMM_DIRECT_KERNEL(micro_a_cols, A_COLS)
#endif

#ifndef TLMI_GEMM_ROWS_MAX_NC
#define TLMI_GEMM_ROWS_MAX_NC 0
#endif
#ifndef TLMI_GEMM_COLS_MAX_NC
#define TLMI_GEMM_COLS_MAX_NC 0
#endif
#ifndef TLMI_GEMM_DIRECT_MIN_NR
#define TLMI_GEMM_DIRECT_MIN_NR 0
#endif
#ifndef TLMI_GEMM_B_IN_PLACE_MAX_M
#define TLMI_GEMM_B_IN_PLACE_MAX_M 0
#endif
#ifndef TLMI_GEMM_B_IN_PLACE_MAX_N
#define TLMI_GEMM_B_IN_PLACE_MAX_N 0
#endif
#ifndef TLMI_GEMM_B_IN_PLACE_MIN_NR
#define TLMI_GEMM_B_IN_PLACE_MIN_NR 0
#endif

/* Exported (gemm.h) for tlmi_gemm_blocked_from; `blocking` here. */
#define blocking TLMI_ISA_NAME(tlmi_gemm_blocking)
const tlmi_gemm_blocking blocking = {
    .mr = MR, .nr = NR, .mc = MC, .kc = KC, .nc = NC, .a_block = A_BLOCK,
    .pack_a = pack_a, .pack_b = pack_b, .micro = micro,
#if TLMI_GEMM_DIRECT_ROWS
    .micro_a_rows = micro_a_rows,
#endif
#if TLMI_GEMM_DIRECT_COLS
    .micro_a_cols = micro_a_cols,
#endif
    .rows_max_nc = TLMI_GEMM_ROWS_MAX_NC, .cols_max_nc = TLMI_GEMM_COLS_MAX_NC,
    .direct_min_nr = TLMI_GEMM_DIRECT_MIN_NR,
    .b_in_place_max_m = TLMI_GEMM_B_IN_PLACE_MAX_M,
    .b_in_place_max_n = TLMI_GEMM_B_IN_PLACE_MAX_N,
    .b_in_place_min_nr = TLMI_GEMM_B_IN_PLACE_MIN_NR,
};

/* ---- Small M: no packing ---------------------------------------------- */

/* Writes one value of C: the sum, plus bias, plus C when accumulating. */
TLMI_INLINE void finish_scalar(float *c, float sum, int accumulate,
                               const float *bias, int64_t j) {
    if (bias != NULL)
        sum += bias[j];
    if (accumulate)
        sum += *c;
    *c = sum;
}

/* B not transposed: rows [i0, i0 + R) and columns [j0, j0 + TLMI_VL W)
 * of C (when `masked`, the last vector limited to the lanes of `last`),
 * A(i, p) at a[i * as + p * ps]; each step of p broadcasts R values of A
 * against W vectors of row p of B. R <= 4, W <= 8. */
TLMI_INLINE void small_rows_tile(float *c, const float *a, const float *b,
                                 const float *bias, int64_t n, int64_t k,
                                 int64_t as, int64_t ps, int accumulate,
                                 int64_t i0, int64_t j0, const int64_t last,
                                 const int R, const int W, const int masked) {
    const gemm_vm last_mask = gemm_lanes(last);
    tlmi_vf acc[4][8];
    TLMI_GEMM_UNROLL(4)
    for (int r = 0; r < R; r++)
        TLMI_GEMM_UNROLL(8)
        for (int v = 0; v < W; v++)
            acc[r][v] = vf_zero();
    const float *brow = b + j0;
    const float *arow = a + i0 * as;
    for (int64_t p = 0; p < k; p++, brow += n, arow += ps) {
        tlmi_vf bv[8];
        TLMI_GEMM_UNROLL(8)
        for (int v = 0; v < W; v++)
            bv[v] = masked && v == W - 1
                        ? gemm_load_lanes(last_mask, brow + TLMI_VL * v)
                        : vf_load(brow + TLMI_VL * v);
        TLMI_GEMM_UNROLL(4)
        for (int r = 0; r < R; r++) {
            const tlmi_vf av = vf_bcast(arow + r * as);
            TLMI_GEMM_UNROLL(8)
            for (int v = 0; v < W; v++)
                acc[r][v] = vf_fmadd(av, bv[v], acc[r][v]);
        }
    }
    TLMI_GEMM_UNROLL(4)
    for (int r = 0; r < R; r++) {
        float *crow = c + (i0 + r) * n + j0;
        TLMI_GEMM_UNROLL(8)
        for (int v = 0; v < W; v++) {
            float *out = crow + TLMI_VL * v;
            const float *bias_v = bias != NULL ? bias + j0 + TLMI_VL * v
                                               : NULL;
            const gemm_vm m = masked && v == W - 1 ? last_mask
                                                   : gemm_lanes(TLMI_VL);
            tlmi_vf x = acc[r][v];
            if (bias_v != NULL)
                x = vf_add(x, gemm_load_lanes(m, bias_v));
            if (accumulate)
                x = vf_add(x, gemm_load_lanes(m, out));
            gemm_store_lanes(out, m, x);
        }
    }
}

/* Rows [i0, i0 + R) of C, columns [j_begin, j_end). A column gets the
 * same operations in any tile, so any j_begin that is a multiple of
 * TLMI_VL gives the same bits. (Cutting K into slices, so that rows of B
 * are read further at a time, measured no faster.) */
TLMI_INLINE void small_rows(float *c, const float *a, const float *b,
                            const float *bias, int64_t n, int64_t k,
                            int64_t as, int64_t ps, int accumulate,
                            int64_t i0, int64_t j_begin, int64_t j_end,
                            const int R) {
    const int W = TLMI_GEMM_SMALL_W(R);
    int64_t j = j_begin;
    for (; j + TLMI_VL * W <= j_end; j += TLMI_VL * W)
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j,
                        TLMI_VL, R, W, 0);
#if defined(TLMI_VF_MASKED)
    /* The rest in one tile as wide as needed (up to W <= 8 vectors), its
     * last vector masked. */
    if (j == j_end)
        return;
    const int64_t rest = j_end - j;
    const int64_t last = rest - (rest - 1) / TLMI_VL * TLMI_VL;
    switch ((rest + TLMI_VL - 1) / TLMI_VL) {
#define TLMI_GEMM_REST_CASE(w)                                              \
    case w:                                                                 \
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j,     \
                        last, R, w, 1);                                     \
        break;
        TLMI_GEMM_REST_CASE(1)
        TLMI_GEMM_REST_CASE(2)
        TLMI_GEMM_REST_CASE(3)
        TLMI_GEMM_REST_CASE(4)
        TLMI_GEMM_REST_CASE(5)
        TLMI_GEMM_REST_CASE(6)
        TLMI_GEMM_REST_CASE(7)
        TLMI_GEMM_REST_CASE(8)
#undef TLMI_GEMM_REST_CASE
    default:
        break;
    }
#else
    /* One vector at a time, then the last columns one by one. */
    for (; j + TLMI_VL <= j_end; j += TLMI_VL)
        small_rows_tile(c, a, b, bias, n, k, as, ps, accumulate, i0, j,
                        TLMI_VL, R, 1, 0);
    for (; j < j_end; j++) {
        for (int r = 0; r < R; r++) {
            float sum = 0.0f;
            for (int64_t p = 0; p < k; p++)
                sum += a[(i0 + r) * as + p * ps] * b[p * n + j];
            finish_scalar(c + (i0 + r) * n + j, sum, accumulate, bias, j);
        }
    }
#endif
}

/* B transposed, A not: C(i, j) is the dot product of row i of A and row j
 * of B, both contiguous. Rows [i0, i0 + R) x columns [j0, j0 + J), R <= 4,
 * J <= 8. */
TLMI_INLINE void small_dots_tile(float *c, const float *a, const float *b,
                                 const float *bias, int64_t n, int64_t k,
                                 int accumulate, int64_t i0, int64_t j0,
                                 const int R, const int J) {
    tlmi_vf acc[4][8];
    TLMI_GEMM_UNROLL(4)
    for (int r = 0; r < R; r++)
        TLMI_GEMM_UNROLL(8)
        for (int q = 0; q < J; q++)
            acc[r][q] = vf_zero();
    const float *arow = a + i0 * k;
    const float *brow = b + j0 * k;
    const int64_t kv = k / TLMI_VL * TLMI_VL;
    for (int64_t p = 0; p < kv; p += TLMI_VL) {
        tlmi_vf av[4];
        TLMI_GEMM_UNROLL(4)
        for (int r = 0; r < R; r++)
            av[r] = vf_load(arow + r * k + p);
        TLMI_GEMM_UNROLL(8)
        for (int q = 0; q < J; q++) {
            const tlmi_vf bv = vf_load(brow + q * k + p);
            /* The rows of the next tile: B streams from memory when it is
             * large, and rows of 1-3 KiB are too short for the hardware
             * prefetchers to ramp up on each of J interleaved streams. One
             * row at a time (J = 1) is a single sequential stream, which
             * they follow best: no software prefetch then. */
            if (J > 1)
                TLMI_GEMM_PREFETCH(brow + (q + J) * k + p);
            TLMI_GEMM_UNROLL(4)
            for (int r = 0; r < R; r++)
                acc[r][q] = vf_fmadd(av[r], bv, acc[r][q]);
        }
    }
#if defined(TLMI_VF_MASKED)
    if (kv < k) { /* the last K % TLMI_VL terms, masked */
        const tlmi_vm mask = vf_lanes(k - kv);
        tlmi_vf av[4];
        TLMI_GEMM_UNROLL(4)
        for (int r = 0; r < R; r++)
            av[r] = vf_load_mask(mask, arow + r * k + kv);
        TLMI_GEMM_UNROLL(8)
        for (int q = 0; q < J; q++) {
            const tlmi_vf bv = vf_load_mask(mask, brow + q * k + kv);
            TLMI_GEMM_UNROLL(4)
            for (int r = 0; r < R; r++)
                acc[r][q] = vf_fmadd(av[r], bv, acc[r][q]);
        }
    }
#endif
    for (int r = 0; r < R; r++) {
        for (int q = 0; q < J; q++) {
            float sum = vf_hsum(acc[r][q]);
#if !defined(TLMI_VF_MASKED)
            for (int64_t p = kv; p < k; p++)
                sum += arow[r * k + p] * brow[q * k + p];
#endif
            finish_scalar(c + (i0 + r) * n + j0 + q, sum, accumulate, bias,
                          j0 + q);
        }
    }
}

TLMI_INLINE void small_dots(float *c, const float *a, const float *b,
                            const float *bias, int64_t n, int64_t k,
                            int accumulate, int64_t i0, int64_t j_begin,
                            int64_t j_end, const int R) {
    const int J = TLMI_GEMM_SMALL_J(R);
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
    /* Tiles of 4 rows (3 for B transposed unless TLMI_GEMM_SMALL_DOTS_R is 4),
     * then what is left; R a constant in each call, for the unrolling. */
    const int64_t r_max = transpose_b ? TLMI_GEMM_SMALL_DOTS_R : 4;
#define TLMI_GEMM_SMALL_TILE(R)                                             \
    case R:                                                                 \
        if (transpose_b)                                                    \
            small_dots(c, a, b, bias, n, k, accumulate, i, j_begin, j_end,  \
                       R);                                                  \
        else                                                                \
            small_rows(c, a, b, bias, n, k, as, ps, accumulate, i, j_begin, \
                       j_end, R);                                           \
        break;
    for (int64_t i = 0; i < m;) {
        const int64_t r = m - i < r_max ? m - i : r_max;
        switch (r) {
            TLMI_GEMM_SMALL_TILE(4)
            TLMI_GEMM_SMALL_TILE(3)
            TLMI_GEMM_SMALL_TILE(2)
            TLMI_GEMM_SMALL_TILE(1)
        default:
            break;
        }
        i += r;
    }
#undef TLMI_GEMM_SMALL_TILE
}

/* ---- Entry points ----------------------------------------------------- */

static int use_small(int64_t m, int transpose_a, int transpose_b) {
    return m <= TLMI_GEMM_SMALL_M && !(transpose_a && transpose_b);
}

size_t TLMI_ISA_NAME(tlmi_gemm_workspace)(int64_t m, int64_t n, int64_t k,
                              int transpose_a, int transpose_b) {
    if (use_small(m, transpose_a, transpose_b))
        return 0;
    return tlmi_gemm_blocked_workspace(&blocking, m, n, k);
}

void TLMI_ISA_NAME(tlmi_gemm_cols)(float *c, const float *a, const float *b,
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

void TLMI_ISA_NAME(tlmi_gemm)(float *c, const float *a, const float *b,
                  const float *bias, int64_t m, int64_t n, int64_t k,
                  int transpose_a, int transpose_b, int accumulate,
                  float *workspace) {
    TLMI_ISA_NAME(tlmi_gemm_cols)(c, a, b, bias, m, n, k, transpose_a,
                                  transpose_b, accumulate, 0, n, workspace);
}

#undef TLMI_GEMM_PREFETCH
#undef TLMI_GEMM_PRAGMA
#undef TLMI_GEMM_UNROLL
#undef TLMI_GEMM_DIRECT_KERNEL
#undef WMAX
#undef gemm_lanes
#undef gemm_load_lanes
#undef gemm_store_lanes
#undef MR
#undef NR
#undef KC
#undef MC
#undef NC
#undef A_BLOCK
#undef blocking
