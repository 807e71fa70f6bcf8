/*
 * The blocked GEMM driver (see gemm.h): cache blocking and the loops
 * around an ISA's packing routines and micro-kernel. Plain C, compiled
 * for the baseline ISA like the rest of the library.
 */
#include "gemm.h"

#include <stddef.h>
#include <stdint.h>

static int64_t min64(int64_t x, int64_t y) { return x < y ? x : y; }

static int64_t round_up(int64_t x, int64_t multiple) {
    return (x + multiple - 1) / multiple * multiple;
}

/* The depth of the K slices: the fewest slices of at most bl->kc, all of
 * the same depth (but the last), so that no slice is much thinner than
 * the others (each slice reads and writes C once more). */
static int64_t slice_depth(const tlmi_gemm_blocking *bl, int64_t k) {
    const int64_t slices = (k + bl->kc - 1) / bl->kc;
    return (k + slices - 1) / slices;
}

/* Rows of the A block for slices of depth kc: what fits in bl->a_block
 * floats, a multiple of mr, between mr and bl->mc. */
static int64_t block_rows(const tlmi_gemm_blocking *bl, int64_t kc) {
    int64_t rows = bl->a_block / kc / bl->mr * bl->mr;
    return rows < bl->mr ? bl->mr : rows > bl->mc ? bl->mc : rows;
}

/* Floats of the packed A block and of the packed B panel. */
static int64_t a_block_floats(const tlmi_gemm_blocking *bl, int64_t m,
                              int64_t k) {
    const int64_t kc = slice_depth(bl, k);
    return round_up(min64(m, block_rows(bl, kc)), bl->mr) * kc;
}

static int64_t b_panel_floats(const tlmi_gemm_blocking *bl, int64_t n,
                              int64_t k) {
    return round_up(min64(n, bl->nc), bl->nr) * slice_depth(bl, k);
}

#define WORKSPACE_ALIGN 64

static float *align_up(float *p) {
    uintptr_t address = (uintptr_t)p;
    uintptr_t aligned = (address + WORKSPACE_ALIGN - 1) &
                        ~(uintptr_t)(WORKSPACE_ALIGN - 1);
    return p + (aligned - address) / sizeof(float);
}

/* Packing routines may write up to this many floats past a block. */
#define PACK_SLACK 16

/* Where the B panel starts, counted from the aligned A block. */
static int64_t b_offset(const tlmi_gemm_blocking *bl, int64_t m, int64_t k) {
    return round_up(a_block_floats(bl, m, k) + PACK_SLACK,
                    WORKSPACE_ALIGN / (int64_t)sizeof(float));
}

size_t tlmi_gemm_blocked_workspace(const tlmi_gemm_blocking *bl, int64_t m,
                                   int64_t n, int64_t k) {
    return WORKSPACE_ALIGN +
           (size_t)(b_offset(bl, m, k) + b_panel_floats(bl, n, k) +
                    PACK_SLACK) *
               sizeof(float);
}

/* tlmi_gemm_blocked, or with pack_b_from set, tlmi_gemm_blocked_from (b
 * is then unused, transpose_b 1). */
static void gemm_blocked(const tlmi_gemm_blocking *bl, float *c,
                         const float *a, const float *b,
                         tlmi_pack_b_from_fn pack_b_from, void *source,
                         const float *bias, int64_t m, int64_t n, int64_t k,
                         int transpose_a, int transpose_b, int accumulate,
                         int64_t j_begin, int64_t j_end, float *workspace) {
    const int64_t lda = transpose_a ? m : k;
    const int64_t ldb = transpose_b ? k : n;
    float *ap = align_up(workspace);
    float *bp = ap + b_offset(bl, m, k);
    const int64_t depth = slice_depth(bl, k), rows = block_rows(bl, depth);
    const tlmi_micro_direct_fn direct_kernel =
        transpose_a ? bl->micro_a_cols : bl->micro_a_rows;
    const int64_t direct_max_nc = transpose_a ? bl->cols_max_nc
                                              : bl->rows_max_nc;

    for (int64_t jc = j_begin; jc < j_end; jc += bl->nc) {
        const int64_t nc = min64(bl->nc, j_end - jc);
        const tlmi_micro_direct_fn direct =
            nc <= direct_max_nc ? direct_kernel : NULL;
        const int64_t edge = nc % bl->nr;
        const int b_in_place = direct != NULL && pack_b_from == NULL &&
                               !transpose_b &&
                               m <= bl->b_in_place_max_m &&
                               n <= bl->b_in_place_max_n &&
                               (edge == 0 || edge > bl->b_in_place_min_nr);
        for (int64_t pc = 0; pc < k; pc += depth) {
            const int64_t kc = min64(depth, k - pc);
            /* The first slice of K writes C (or adds to it) and adds the
             * bias; the later ones add to what it left. */
            const int load_c = pc > 0 || accumulate;
            const float *bias_pc = pc == 0 ? bias : NULL;
            if (pack_b_from != NULL)
                pack_b_from(source, bp, pc, jc, kc, nc);
            else if (!b_in_place)
                bl->pack_b(bp, b, ldb, transpose_b, pc, jc, kc, nc);
            for (int64_t ic = 0; ic < m; ic += rows) {
                const int64_t mc = min64(rows, m - ic);
                /* A is packed up front, or, with a direct kernel, only
                 * when a tile needs the packed one. */
                int packed = direct == NULL;
                if (packed)
                    bl->pack_a(ap, a, lda, transpose_a, ic, pc, mc, kc);
                /* One B micro-panel (kc x NR) stays in L1 while the
                 * A block streams past it from L2. */
                for (int64_t jr = 0; jr < nc; jr += bl->nr) {
                    const int nr = (int)min64(bl->nr, nc - jr);
                    const float *bias_tile = bias_pc ? bias_pc + jc + jr : NULL;
                    if (direct != NULL && nr > bl->direct_min_nr) {
                        for (int64_t ir = 0; ir < mc; ir += bl->mr) {
                            const int mr = (int)min64(bl->mr, mc - ir);
                            const int64_t i = ic + ir;
                            direct(kc,
                                   transpose_a ? a + pc * lda + i
                                               : a + i * lda + pc,
                                   lda,
                                   b_in_place ? b + pc * ldb + jc + jr
                                              : bp + jr * kc,
                                   b_in_place ? ldb : bl->nr,
                                   c + i * n + jc + jr, n, mr, nr, load_c,
                                   bias_tile);
                        }
                        continue;
                    }
                    if (!packed) {
                        bl->pack_a(ap, a, lda, transpose_a, ic, pc, mc, kc);
                        packed = 1;
                    }
                    for (int64_t ir = 0; ir < mc; ir += bl->mr) {
                        const int mr = (int)min64(bl->mr, mc - ir);
                        bl->micro(kc, ap + ir * kc, bp + jr * kc,
                                  c + (ic + ir) * n + jc + jr, n, mr, nr,
                                  load_c, bias_tile);
                    }
                }
            }
        }
    }
}

void tlmi_gemm_blocked(const tlmi_gemm_blocking *bl, float *c,
                       const float *a, const float *b, const float *bias,
                       int64_t m, int64_t n, int64_t k, int transpose_a,
                       int transpose_b, int accumulate, int64_t j_begin,
                       int64_t j_end, float *workspace) {
    gemm_blocked(bl, c, a, b, NULL, NULL, bias, m, n, k, transpose_a,
                 transpose_b, accumulate, j_begin, j_end, workspace);
}

void tlmi_gemm_blocked_from(const tlmi_gemm_blocking *bl, float *c,
                            const float *a, tlmi_pack_b_from_fn pack_b_from,
                            void *source, const float *bias, int64_t m,
                            int64_t n, int64_t k, int64_t j_begin,
                            int64_t j_end, float *workspace) {
    gemm_blocked(bl, c, a, NULL, pack_b_from, source, bias, m, n, k, 0, 1, 0,
                 j_begin, j_end, workspace);
}
