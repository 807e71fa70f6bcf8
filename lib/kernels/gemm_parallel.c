/*
 * Matrix products over a thread pool (see gemm_parallel.h).
 */
#include "gemm_parallel.h"

#include <assert.h>
#include <stdint.h>

#define SLOT_ALIGN 64

static size_t slot_bytes(size_t per_thread) {
    return (per_thread + SLOT_ALIGN - 1) / SLOT_ALIGN * SLOT_ALIGN;
}

size_t tlmi_gemm_parallel_workspace(size_t per_thread, int threads) {
    if (per_thread > SIZE_MAX - SLOT_ALIGN)
        return SIZE_MAX;
    const size_t slot = slot_bytes(per_thread);
    if (threads < 1)
        threads = 1;
    if (slot != 0 && (size_t)threads > SIZE_MAX / slot)
        return SIZE_MAX;
    return slot * (size_t)threads;
}

typedef struct gemm_job {
    const tlmi_kernels *kernels;
    float *c;
    const float *a, *b, *bias;
    int64_t m, n, k;
    int transpose_a, transpose_b, accumulate;
    int64_t align;     /* columns per unit of a column split */
    char *workspace;   /* slot t at workspace + t * slot */
    size_t slot;
} gemm_job;

static float *slot_of(const gemm_job *job, int thread) {
    return job->slot > 0 ? (float *)(void *)(job->workspace +
                                             (size_t)thread * job->slot)
                         : NULL;
}

/* Units [begin, end) of a column split: columns begin * align .. */
static void gemm_cols_task(void *arg, int64_t begin, int64_t end,
                           int thread) {
    const gemm_job *job = arg;
    const int64_t j_begin = begin * job->align;
    int64_t j_end = end * job->align;
    if (j_end > job->n)
        j_end = job->n;
    job->kernels->gemm_cols(job->c, job->a, job->b, job->bias, job->m, job->n,
                            job->k, job->transpose_a, job->transpose_b,
                            job->accumulate, j_begin, j_end,
                            slot_of(job, thread));
}

/* Rows [begin, end) of a row split (A not transposed): the product of
 * those rows of A and all of B, every column. */
static void gemm_rows_task(void *arg, int64_t begin, int64_t end,
                           int thread) {
    const gemm_job *job = arg;
    job->kernels->gemm_cols(job->c + begin * job->n, job->a + begin * job->k,
                            job->b, job->bias, end - begin, job->n, job->k,
                            0, job->transpose_b, job->accumulate, 0, job->n,
                            slot_of(job, thread));
}

/* Units of `unit_flops` flops and `unit_bytes` bytes of B a range gets at
 * least: TLMI_GEMM_MIN_FLOPS_PER_THREAD, or TLMI_GEMM_MIN_B_BYTES_PER_THREAD
 * of B, whichever is fewer units. */
static int64_t grain_of(double unit_flops, double unit_bytes) {
    if (unit_flops >= (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD ||
        unit_bytes >= (double)TLMI_GEMM_MIN_B_BYTES_PER_THREAD)
        return 1;
    const double by_flops = (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD / unit_flops;
    const double by_bytes = (double)TLMI_GEMM_MIN_B_BYTES_PER_THREAD / unit_bytes;
    return (int64_t)(by_flops < by_bytes ? by_flops : by_bytes) + 1;
}

void tlmi_gemm_parallel(tlmi_threadpool *pool, const tlmi_kernels *kernels,
                        float *c, const float *a, const float *b,
                        const float *bias, int64_t m, int64_t n, int64_t k,
                        int transpose_a, int transpose_b, int accumulate,
                        void *workspace, size_t workspace_bytes) {
    if (m <= 0 || n <= 0)
        return;
    const size_t need =
        kernels->gemm_workspace(m, n, k, transpose_a, transpose_b);
    /* Callers size the workspace from the same table (the context's or the
     * session's, fixed at creation), so it always holds one slot. */
    assert(need <= workspace_bytes);
    const size_t slot = need > 0 ? slot_bytes(need) : 0;
    if (slot > 0 && workspace_bytes / slot < (size_t)tlmi_threadpool_threads(pool)) {
        /* No slot for every thread: the whole product in this one (the
         * same result, whatever the split would have been). */
        kernels->gemm_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                           accumulate, 0, n, workspace);
        return;
    }
    const int64_t align = kernels->gemm_col_align > 0
                              ? kernels->gemm_col_align : 1;
    gemm_job job = {
        .kernels = kernels, .c = c, .a = a, .b = b, .bias = bias,
        .m = m, .n = n, .k = k, .transpose_a = transpose_a,
        .transpose_b = transpose_b, .accumulate = accumulate,
        .align = align, .workspace = workspace, .slot = slot,
    };
    if (tlmi_gemm_split_rows(pool, m, n, k, transpose_a)) {
        tlmi_parallel_for(pool, m, tlmi_gemm_row_grain(n, k), gemm_rows_task,
                          &job);
        return;
    }
    const int64_t units = (n + align - 1) / align;
    const int64_t grain =
        grain_of(2.0 * (double)m * (double)k * (double)align,
                 (double)sizeof(float) * (double)k * (double)align);
    tlmi_parallel_for(pool, units, grain, gemm_cols_task, &job);
}

int64_t tlmi_gemm_row_grain(int64_t n, int64_t k) {
    const double row_flops = 2.0 * (double)n * (double)k;
    int64_t grain = TLMI_GEMM_MIN_ROWS_PER_THREAD;
    if (row_flops * (double)grain < (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD)
        grain = (int64_t)((double)TLMI_GEMM_MIN_FLOPS_PER_THREAD /
                          (row_flops > 1.0 ? row_flops : 1.0)) + 1;
    return grain;
}

int tlmi_gemm_split_rows(const tlmi_threadpool *pool, int64_t m, int64_t n,
                         int64_t k, int transpose_a) {
    if (transpose_a || m <= n)
        return 0;
    return tlmi_threadpool_parts(pool, m, tlmi_gemm_row_grain(n, k)) > 1;
}
