/*
 * Products with quantized weights over a thread pool (see
 * weights_parallel.h).
 */
#include "kernels/weights_parallel.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

#include "kernels/gemm_parallel.h"

#define ALIGN 64

/* x rounded up to ALIGN, or SIZE_MAX when that overflows. */
static size_t round_up(size_t x) {
    return x > SIZE_MAX - ALIGN ? SIZE_MAX : (x + ALIGN - 1) / ALIGN * ALIGN;
}

static size_t add(size_t x, size_t y) {
    return x > SIZE_MAX - y ? SIZE_MAX : x + y;
}

static size_t mul(size_t x, size_t y) {
    return y != 0 && x > SIZE_MAX / y ? SIZE_MAX : x * y;
}

/* One thread's slot on the large-m path: the dequantized block of W
 * [cols, k] at 0, the tile of C [m, cols] at c_offset, and the GEMM's
 * workspace for the widest block (and for the last, narrower one) at
 * gemm_offset; `bytes` in all (SIZE_MAX on overflow). */
typedef struct slot_layout {
    size_t c_offset, gemm_offset, bytes;
} slot_layout;

static slot_layout slot_layout_of(const tlmi_kernels *kernels, int64_t m,
                                  int64_t n, int64_t k) {
    const int64_t cols = n < TLMI_WEIGHTS_DEQUANT_COLS
                             ? n : TLMI_WEIGHTS_DEQUANT_COLS;
    size_t gemm = kernels->gemm_workspace(m, cols, k, 0, 1);
    if (n % cols != 0) {
        const size_t last = kernels->gemm_workspace(m, n % cols, k, 0, 1);
        if (last > gemm)
            gemm = last;
    }
    slot_layout layout;
    layout.c_offset =
        round_up(mul(mul((size_t)cols, (size_t)k), sizeof(float)));
    layout.gemm_offset = add(layout.c_offset,
                             round_up(mul(mul((size_t)m, (size_t)cols),
                                          sizeof(float))));
    layout.bytes = round_up(add(layout.gemm_offset, gemm));
    return layout;
}

/* Whether a product of m rows takes the packed path: the float32 table
 * has a blocked GEMM to pack into and the variant dequantizes blocks.
 * Products of at most TLMI_WEIGHTS_PACKED_MIN_M - 1 rows keep the
 * dequantized blocks, whose float32 GEMM takes its small-M path there. */
static int packed_path(const tlmi_kernels *kernels,
                       const tlmi_weight_kernels *wk, int64_t m) {
    return m > wk->direct_max_m && m >= TLMI_WEIGHTS_PACKED_MIN_M &&
           kernels->gemm_blocking != NULL && wk->dequantize_block != NULL;
}

/* One thread's slot on the packed path: the blocked GEMM's workspace at
 * 0, the dequantized block of W [NR, TLMI_WEIGHTS_PACK_DEPTH] after it. */
static size_t packed_scratch_offset(const tlmi_gemm_blocking *bl, int64_t m,
                                    int64_t n, int64_t k) {
    return round_up(tlmi_gemm_blocked_workspace(bl, m, n, k));
}

static size_t packed_slot_bytes(const tlmi_gemm_blocking *bl, int64_t m,
                                int64_t n, int64_t k) {
    return round_up(add(packed_scratch_offset(bl, m, n, k),
                        mul(mul((size_t)bl->nr, TLMI_WEIGHTS_PACK_DEPTH),
                            sizeof(float))));
}

size_t tlmi_weights_product_workspace(const tlmi_kernels *kernels,
                                      const tlmi_weight_kernels *wk,
                                      int64_t m, int64_t n, int64_t k,
                                      int threads) {
    if (m <= 0 || n <= 0 || k <= 0)
        return 0;
    if (threads < 1)
        threads = 1;
    /* Slack to align the start to ALIGN. */
    if (m <= wk->direct_max_m)
        return add(round_up(wk->prepare_bytes(m, k)), ALIGN);
    if (packed_path(kernels, wk, m))
        return add(mul(packed_slot_bytes(kernels->gemm_blocking, m, n, k),
                       (size_t)threads),
                   ALIGN);
    return add(mul(slot_layout_of(kernels, m, n, k).bytes, (size_t)threads),
               ALIGN);
}

/* ---- The direct path ----------------------------------------------------- */

typedef struct direct_job {
    const tlmi_weight_kernels *wk;
    float *c;
    const void *prepared;
    const float *a, *bias;
    const tlmi_weights *w;
    int64_t m;
} direct_job;

static void direct_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const direct_job *job = arg;
    const int64_t n = job->w->rows;
    const int64_t j_begin = begin * TLMI_WEIGHTS_COL_ALIGN;
    int64_t j_end = end * TLMI_WEIGHTS_COL_ALIGN;
    if (j_end > n)
        j_end = n;
    job->wk->product_cols(job->c, n, job->prepared, job->a, job->w, job->bias,
                          job->m, j_begin, j_end);
}

/* ---- The large-m path: dequantized blocks through the float32 GEMM -------- */

typedef struct block_job {
    const tlmi_kernels *kernels;
    const tlmi_weight_kernels *wk;
    float *c;
    const float *a, *bias;
    const tlmi_weights *w;
    int64_t m;
    char *slots;
    slot_layout slot;
} block_job;

static void block_task(void *arg, int64_t begin, int64_t end, int thread) {
    const block_job *job = arg;
    const int64_t n = job->w->rows, k = job->w->cols, m = job->m;
    char *slot = job->slots + (size_t)thread * job->slot.bytes;
    float *w_block = (float *)(void *)slot;
    float *c_tile = (float *)(void *)(slot + job->slot.c_offset);
    float *gemm_workspace = (float *)(void *)(slot + job->slot.gemm_offset);
    for (int64_t block = begin; block < end; block++) {
        const int64_t j0 = block * TLMI_WEIGHTS_DEQUANT_COLS;
        const int64_t j1 = j0 + TLMI_WEIGHTS_DEQUANT_COLS < n
                               ? j0 + TLMI_WEIGHTS_DEQUANT_COLS : n;
        const int64_t cols = j1 - j0;
        job->wk->dequantize_rows(w_block, job->w, j0, j1);
        /* c_tile [m, cols] = A [m, k] . w_block^T (w_block [cols, k]) */
        job->kernels->gemm(c_tile, job->a, w_block,
                           job->bias != NULL ? job->bias + j0 : NULL, m, cols,
                           k, 0, 1, 0, gemm_workspace);
        for (int64_t i = 0; i < m; i++)
            memcpy(job->c + i * n + j0, c_tile + i * cols,
                   (size_t)cols * sizeof(float));
    }
}

/* ---- The packed path: W dequantized straight into the GEMM's B panels -- */

/* What pack_from_weights reads: the weights, and the calling thread's
 * scratch block of W [NR, TLMI_WEIGHTS_PACK_DEPTH] floats. */
typedef struct weights_source {
    const tlmi_weight_kernels *wk;
    const tlmi_weights *w;
    const tlmi_gemm_blocking *blocking;
    float *scratch;
} weights_source;

/* tlmi_pack_b_from_fn: the B block [kc, nc] at (p0, j0), B = W^T. Each
 * NR-wide panel is dequantized TLMI_WEIGHTS_PACK_DEPTH columns of W at a
 * time into the scratch (in L1), then packed from there by the ISA's own
 * pack_b (B transposed): panel[p][c] = W[j0 + jr + c][p0 + p]. */
static void pack_from_weights(void *arg, float *bp, int64_t p0, int64_t j0,
                              int64_t kc, int64_t nc) {
    const weights_source *source = arg;
    const tlmi_gemm_blocking *bl = source->blocking;
    for (int64_t jr = 0; jr < nc; jr += bl->nr) {
        const int64_t cols = nc - jr < bl->nr ? nc - jr : bl->nr;
        float *panel = bp + jr * kc;
        for (int64_t pp = 0; pp < kc; pp += TLMI_WEIGHTS_PACK_DEPTH) {
            const int64_t depth = kc - pp < TLMI_WEIGHTS_PACK_DEPTH
                                      ? kc - pp : TLMI_WEIGHTS_PACK_DEPTH;
            source->wk->dequantize_block(source->scratch, depth, source->w,
                                         j0 + jr, j0 + jr + cols, p0 + pp,
                                         p0 + pp + depth);
            /* rows pp .. pp + depth of the panel (kc x NR, row stride NR) */
            bl->pack_b(panel + pp * bl->nr, source->scratch, depth, 1, 0, 0,
                       depth, cols);
        }
    }
}

/* Columns of C per call of the blocked GEMM on the packed path: as many
 * multiples of NR as keep the packed B block [k, cols] within
 * TLMI_WEIGHTS_PACKED_BLOCK_BYTES (at least NR), so that it stays in L2
 * while the rows of A go by (the GEMM's own column block, NC = 2048 on
 * AVX-512, packs 6 MiB of B at k = 768, which L2 does not hold). Except
 * when a row of A is a multiple of 4 KiB: narrow blocks let the GEMM read
 * A in place (its direct kernels), and rows 4 KiB apart fall in the same
 * L1 sets (measured at k = 1024 and 2048: 20% slower than one block). */
static int64_t packed_block_cols(const tlmi_gemm_blocking *bl, int64_t k) {
    if (k * (int64_t)sizeof(float) % 4096 == 0)
        return INT64_MAX;
    const int64_t cols = TLMI_WEIGHTS_PACKED_BLOCK_BYTES /
                         (k * (int64_t)sizeof(float)) / bl->nr * bl->nr;
    return cols < bl->nr ? bl->nr : cols;
}

typedef struct packed_job {
    const tlmi_gemm_blocking *blocking;
    const tlmi_weight_kernels *wk;
    float *c;
    const float *a, *bias;
    const tlmi_weights *w;
    int64_t m;
    char *slots;
    size_t slot_bytes, scratch_offset;
} packed_job;

static void packed_task(void *arg, int64_t begin, int64_t end, int thread) {
    const packed_job *job = arg;
    const tlmi_gemm_blocking *bl = job->blocking;
    const int64_t n = job->w->rows, k = job->w->cols;
    char *slot = job->slots + (size_t)thread * job->slot_bytes;
    weights_source source = {
        .wk = job->wk, .w = job->w, .blocking = bl,
        .scratch = (float *)(void *)(slot + job->scratch_offset)};
    const int64_t j_begin = begin * bl->nr;
    const int64_t j_end = end * bl->nr < n ? end * bl->nr : n;
    const int64_t step = packed_block_cols(bl, k);
    for (int64_t j = j_begin; j < j_end; j += step) {
        const int64_t j_stop = j_end - j <= step ? j_end : j + step;
        tlmi_gemm_blocked_from(bl, job->c, job->a, pack_from_weights, &source,
                               job->bias, job->m, n, k, j, j_stop,
                               (float *)(void *)slot);
        if (j_stop == j_end)
            break;
    }
}

/* Units of `align` columns of C per range: at least the flops or the
 * bytes of W worth waking a thread for, whichever is fewer (as in
 * gemm_parallel.c). */
static int64_t grain_of(const tlmi_weights *w, int64_t m, int64_t align) {
    const double unit_flops = 2.0 * (double)m * (double)w->cols * (double)align;
    const double unit_bytes =
        (double)tlmi_weights_bytes(w->format, align, w->cols);
    if (unit_flops >= (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD ||
        unit_bytes >= (double)TLMI_GEMM_MIN_B_BYTES_PER_THREAD)
        return 1;
    const double by_flops = (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD / unit_flops;
    const double by_bytes =
        (double)TLMI_GEMM_MIN_B_BYTES_PER_THREAD / unit_bytes;
    return (int64_t)(by_flops < by_bytes ? by_flops : by_bytes) + 1;
}

void tlmi_weights_product_parallel(tlmi_threadpool *pool,
                                   const tlmi_kernels *kernels,
                                   const tlmi_weight_kernels *wk, float *c,
                                   const float *a, const tlmi_weights *w,
                                   const float *bias, int64_t m,
                                   void *workspace, size_t workspace_bytes) {
    const int64_t n = w->rows, k = w->cols;
    if (m <= 0 || n <= 0)
        return;
    if (k <= 0) { /* an empty sum: C is the bias (or zero) */
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                c[i * n + j] = bias != NULL ? bias[j] : 0.0f;
        return;
    }
    assert(wk->format == w->format);
    assert(workspace_bytes >=
           tlmi_weights_product_workspace(kernels, wk, m, n, k, 1));
    /* Align the workspace's start to ALIGN (the sizes include the slack). */
    const uintptr_t address = (uintptr_t)workspace;
    const size_t skip = (size_t)((ALIGN - address % ALIGN) % ALIGN);
    char *base = (char *)workspace + skip;
    const size_t usable = workspace_bytes - skip;

    if (m <= wk->direct_max_m) {
        const void *prepared = a;
        if (wk->prepare_bytes(m, k) > 0) {
            wk->prepare(base, a, m, k);
            prepared = base;
        }
        direct_job job = {.wk = wk, .c = c, .prepared = prepared, .a = a,
                          .bias = bias, .w = w, .m = m};
        const int64_t units = (n + TLMI_WEIGHTS_COL_ALIGN - 1) /
                              TLMI_WEIGHTS_COL_ALIGN;
        tlmi_parallel_for(pool, units, grain_of(w, m, TLMI_WEIGHTS_COL_ALIGN),
                          direct_task, &job);
        return;
    }

    if (packed_path(kernels, wk, m)) {
        const tlmi_gemm_blocking *bl = kernels->gemm_blocking;
        packed_job job = {
            .blocking = bl, .wk = wk, .c = c, .a = a, .bias = bias, .w = w,
            .m = m, .slots = base,
            .slot_bytes = packed_slot_bytes(bl, m, n, k),
            .scratch_offset = packed_scratch_offset(bl, m, n, k)};
        /* Ranges at multiples of NR: every tile of C is the same, so the
         * split never changes a bit. */
        const int64_t units = (n + bl->nr - 1) / bl->nr;
        if (usable / job.slot_bytes < (size_t)tlmi_threadpool_threads(pool)) {
            packed_task(&job, 0, units, 0); /* one slot: this thread alone */
            return;
        }
        tlmi_parallel_for(pool, units, grain_of(w, m, bl->nr), packed_task,
                          &job);
        return;
    }

    const slot_layout slot = slot_layout_of(kernels, m, n, k);
    const int64_t blocks = (n + TLMI_WEIGHTS_DEQUANT_COLS - 1) /
                           TLMI_WEIGHTS_DEQUANT_COLS;
    block_job job = {.kernels = kernels, .wk = wk, .c = c, .a = a,
                     .bias = bias, .w = w, .m = m, .slots = base,
                     .slot = slot};
    if (usable / slot.bytes < (size_t)tlmi_threadpool_threads(pool)) {
        block_task(&job, 0, blocks, 0); /* one slot: this thread alone */
        return;
    }
    tlmi_parallel_for(pool, blocks, 1, block_task, &job);
}
