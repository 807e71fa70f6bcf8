/*
 * Matrix product kernels: the signature every ISA's GEMM shares, and the
 * blocked (BLIS-style) driver the SIMD versions plug their packing
 * routines and micro-kernel into.
 *
 * Every kernel computes what the scalar reference tlmi_gemm
 * (kernels/scalar/matmul.h) defines:
 *   C [M, N] = op(A) . op(B) (+ C when accumulate) (+ bias [N] per row),
 * row-major, A [M, K] (or [K, M] when transpose_a), B [K, N] (or [N, K]
 * when transpose_b), M, N, K >= 1. The results differ from the reference
 * only by rounding (another summation order, fused multiply-adds).
 *
 * Workspace: the SIMD kernels pack panels of A and B into `workspace`,
 * which the caller owns (never a static buffer, so two threads or two
 * contexts never share one). Ask the kernel's `gemm_workspace` for the
 * bytes a call needs; 0 means the call needs none and workspace may be
 * NULL. Any alignment works; 64 bytes is fastest.
 */
#ifndef TLM_LIB_KERNELS_GEMM_H
#define TLM_LIB_KERNELS_GEMM_H

#include <stddef.h>
#include <stdint.h>

typedef void (*tlmi_gemm_fn)(float *c, const float *a, const float *b,
                             const float *bias, int64_t m, int64_t n,
                             int64_t k, int transpose_a, int transpose_b,
                             int accumulate, float *workspace);

/* The columns [j_begin, j_end) of the same product (0 <= j_begin <
 * j_end <= N; other columns of C are not touched), for a thread pool that
 * gives each thread its own range and its own workspace (as large as
 * gemm_workspace says for the whole product). Every element of C gets
 * exactly the operations the whole product gives it, bit for bit, when
 * j_begin and j_end are multiples of the table's gemm_col_align (j_end may
 * also be N): then any split of the columns gives the same result.
 * Rows too: an element's operations never depend on M or on the rows
 * around it once M is above the small-M path's 8 rows, so a product of
 * rows [i0, i1) of A not transposed (a + i0 K, c + i0 N, i1 - i0 > 8
 * rows) gives those rows of the whole product bit for bit (the thread
 * pool's row split, kernels/gemm_parallel.h). */
typedef void (*tlmi_gemm_cols_fn)(float *c, const float *a, const float *b,
                                  const float *bias, int64_t m, int64_t n,
                                  int64_t k, int transpose_a, int transpose_b,
                                  int accumulate, int64_t j_begin,
                                  int64_t j_end, float *workspace);

/* Bytes of workspace the matching tlmi_gemm_fn needs for these sizes. */
typedef size_t (*tlmi_gemm_workspace_fn)(int64_t m, int64_t n, int64_t k,
                                         int transpose_a, int transpose_b);

/* ---- The blocked driver ------------------------------------------------
 *
 * Loop nest (BLIS): for each NC-wide column block of B, for each KC-deep
 * slice of K: pack B[KC, NC] into NR-wide panels; for each MC-tall block
 * of A: pack A[MC, KC] into MR-tall panels; then the micro-kernel computes
 * every MR x NR tile of C from one A panel and one B panel. The packed B
 * panel stays in L3/L2, the packed A block in L2, one B micro-panel in L1.
 *
 * The driver itself is plain C: only the three routines below carry ISA
 * code. It works on a column range [j_begin, j_end) of C, so a thread pool
 * can later hand each thread its own range (and its own workspace).
 */

/* Packs op(A)[i0 .. i0+mc, p0 .. p0+kc] into ceil(mc / MR) panels, one
 * after the other, each kc x MR: ap[panel][p][r] = op(A)[i0 + panel*MR + r,
 * p0 + p], rows past mc zero. lda is A's row stride as stored. */
typedef void (*tlmi_pack_a_fn)(float *ap, const float *a, int64_t lda,
                               int transpose_a, int64_t i0, int64_t p0,
                               int64_t mc, int64_t kc);

/* Packs op(B)[p0 .. p0+kc, j0 .. j0+nc] into ceil(nc / NR) panels, each
 * kc x NR: bp[panel][p][c] = op(B)[p0 + p, j0 + panel*NR + c], columns
 * past nc zero. ldb is B's row stride as stored. */
typedef void (*tlmi_pack_b_fn)(float *bp, const float *b, int64_t ldb,
                               int transpose_b, int64_t p0, int64_t j0,
                               int64_t kc, int64_t nc);

/* One MR x NR tile: T = sum over p < kc of ap[p][r] * bp[p][c]; then for
 * r < mr, c < nr: C[r, c] = T[r, c] (+ C[r, c] when load_c) (+ bias[c]
 * when bias is not NULL). c points at the tile, ldc is C's row stride. */
typedef void (*tlmi_micro_fn)(int64_t kc, const float *ap, const float *bp,
                              float *c, int64_t ldc, int mr, int nr,
                              int load_c, const float *bias);

/* The same tile as tlmi_micro_fn, with A read where it is stored instead
 * of from a packed panel: a points at op(A)[i, p0] for the tile's first
 * row i, and op(A)[i + r, p0 + p] is a[r * lda + p] (A not transposed:
 * "rows") or a[p * lda + r] (A transposed: "columns"). Rows r >= mr are
 * never read. B is at b[p * ldb + c]: the packed micro-panel (ldb = NR),
 * or, for a kernel whose blocking says b_in_place, B as stored (columns
 * c >= nr are then never read). Every element of C gets the operations
 * the packed kernel gives it, bit for bit. */
typedef void (*tlmi_micro_direct_fn)(int64_t kc, const float *a, int64_t lda,
                                     const float *b, int64_t ldb, float *c,
                                     int64_t ldc, int mr, int nr, int load_c,
                                     const float *bias);

typedef struct tlmi_gemm_blocking {
    int mr, nr;     /* micro-tile: rows of A, columns of B */
    /* Cache blocks. K is cut into the fewest slices of at most kc, of
     * equal depth; the A block then gets as many rows (a multiple of mr,
     * at most mc) as fit in a_block floats. nc % nr == 0. */
    int64_t mc, kc, nc;
    int64_t a_block;
    tlmi_pack_a_fn pack_a;
    tlmi_pack_b_fn pack_b;
    tlmi_micro_fn micro;
    /* Optional (NULL: A is always packed): kernels reading A unpacked,
     * for A not transposed (micro_a_rows) and transposed (micro_a_cols),
     * used in column blocks of at most rows_max_nc (cols_max_nc) columns
     * for the tiles of more than direct_min_nr columns (the others run
     * `micro` on a packed block, packed only if such a tile comes).
     * Skipping the packing of A pays when each A block serves few column
     * tiles, as in the M = 64 products of a training step; across many,
     * the packed panel reads faster. */
    tlmi_micro_direct_fn micro_a_rows, micro_a_cols;
    int64_t rows_max_nc, cols_max_nc;
    int direct_min_nr;
    /* With A read in place, B not transposed may be too (no packing at
     * all) for products of at most b_in_place_max_m rows (0: never) and
     * b_in_place_max_n columns whose column block has no tile narrower
     * than NR of b_in_place_min_nr columns or fewer (at least
     * direct_min_nr). */
    int64_t b_in_place_max_m, b_in_place_max_n;
    int b_in_place_min_nr;
} tlmi_gemm_blocking;

/* Bytes of workspace tlmi_gemm_blocked needs for these sizes (whatever the
 * column range): one packed A block and one packed B panel, plus slack to
 * align each to 64 bytes. */
size_t tlmi_gemm_blocked_workspace(const tlmi_gemm_blocking *blocking,
                                   int64_t m, int64_t n, int64_t k);

/* Columns [j_begin, j_end) of C (see the top of this file for the rest). */
void tlmi_gemm_blocked(const tlmi_gemm_blocking *blocking, float *c,
                       const float *a, const float *b, const float *bias,
                       int64_t m, int64_t n, int64_t k, int transpose_a,
                       int transpose_b, int accumulate, int64_t j_begin,
                       int64_t j_end, float *workspace);

/* Packs the B block of tlmi_gemm_blocked_from (as tlmi_pack_b_fn does for
 * B transposed: bp[panel][p][c] = W[j0 + panel*NR + c][p0 + p], columns
 * past nc zero) from a B that is not a float32 array: `source` is what the
 * caller gave tlmi_gemm_blocked_from (for example a quantized W [N, K]
 * and a scratch buffer). */
typedef void (*tlmi_pack_b_from_fn)(void *source, float *bp, int64_t p0,
                                    int64_t j0, int64_t kc, int64_t nc);

/* Columns [j_begin, j_end) of C [M, N] = A [M, K] . W^T (+ bias), A not
 * transposed, C written (not accumulated), where pack_b_from packs each
 * block of W [N, K]: the same loops, micro-kernels and so the same bits
 * as tlmi_gemm_blocked on the float32 W (transpose_b) when pack_b_from
 * packs the same values. Same workspace as tlmi_gemm_blocked. */
void tlmi_gemm_blocked_from(const tlmi_gemm_blocking *blocking, float *c,
                            const float *a, tlmi_pack_b_from_fn pack_b_from,
                            void *source, const float *bias, int64_t m,
                            int64_t n, int64_t k, int64_t j_begin,
                            int64_t j_end, float *workspace);

/* ---- The kernels of each ISA ----------------------------------------- */

/* Declares the three entries of one ISA: tlmi_gemm_<isa> (the whole
 * product), tlmi_gemm_workspace_<isa> (the bytes it needs) and
 * tlmi_gemm_cols_<isa> (columns [j_begin, j_end) of C only). */
#define TLMI_GEMM_DECLARE(isa)                                              \
    void tlmi_gemm_##isa(float *c, const float *a, const float *b,          \
                         const float *bias, int64_t m, int64_t n, int64_t k,\
                         int transpose_a, int transpose_b, int accumulate,  \
                         float *workspace);                                 \
    size_t tlmi_gemm_workspace_##isa(int64_t m, int64_t n, int64_t k,       \
                                     int transpose_a, int transpose_b);     \
    void tlmi_gemm_cols_##isa(float *c, const float *a, const float *b,     \
                              const float *bias, int64_t m, int64_t n,      \
                              int64_t k, int transpose_a, int transpose_b,  \
                              int accumulate, int64_t j_begin,              \
                              int64_t j_end, float *workspace)

/* Scalar: the reference itself (needs no workspace). */
TLMI_GEMM_DECLARE(scalar);
/* The SIMD ones also export their blocking (tlmi_gemm_blocking_<isa>),
 * for products whose B is packed from another format
 * (tlmi_gemm_blocked_from). */
#define TLMI_GEMM_DECLARE_BLOCKING(isa)                                     \
    extern const tlmi_gemm_blocking tlmi_gemm_blocking_##isa
#if defined(TLMI_HAVE_AVX2)
TLMI_GEMM_DECLARE(avx2);
TLMI_GEMM_DECLARE_BLOCKING(avx2);
#endif
#if defined(TLMI_HAVE_AVX512)
TLMI_GEMM_DECLARE(avx512);
TLMI_GEMM_DECLARE_BLOCKING(avx512);
#endif
#if defined(TLMI_HAVE_NEON)
TLMI_GEMM_DECLARE(neon);
TLMI_GEMM_DECLARE_BLOCKING(neon);
#endif

#endif
