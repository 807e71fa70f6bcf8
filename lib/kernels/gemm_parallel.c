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
    int64_t align;     /* columns per unit of the split */
    char *workspace;   /* slot t at workspace + t * slot */
    size_t slot;
} gemm_job;

static void gemm_task(void *arg, int64_t begin, int64_t end, int thread) {
    const gemm_job *job = arg;
    const int64_t j_begin = begin * job->align;
    int64_t j_end = end * job->align;
    if (j_end > job->n)
        j_end = job->n;
    float *workspace =
        job->slot > 0 ? (float *)(void *)(job->workspace +
                                          (size_t)thread * job->slot)
                      : NULL;
    job->kernels->gemm_cols(job->c, job->a, job->b, job->bias, job->m, job->n,
                            job->k, job->transpose_a, job->transpose_b,
                            job->accumulate, j_begin, j_end, workspace);
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
    const int64_t units = (n + align - 1) / align;
    /* At least TLMI_GEMM_MIN_FLOPS_PER_THREAD per range, or
     * TLMI_GEMM_MIN_B_BYTES_PER_THREAD of B, whichever is fewer units. */
    const double unit_flops = 2.0 * (double)m * (double)k * (double)align;
    const double unit_bytes = (double)sizeof(float) * (double)k * (double)align;
    int64_t grain = 1;
    if (unit_flops < (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD &&
        unit_bytes < (double)TLMI_GEMM_MIN_B_BYTES_PER_THREAD) {
        const double by_flops = (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD / unit_flops;
        const double by_bytes = (double)TLMI_GEMM_MIN_B_BYTES_PER_THREAD / unit_bytes;
        grain = (int64_t)(by_flops < by_bytes ? by_flops : by_bytes) + 1;
    }
    gemm_job job = {
        .kernels = kernels, .c = c, .a = a, .b = b, .bias = bias,
        .m = m, .n = n, .k = k, .transpose_a = transpose_a,
        .transpose_b = transpose_b, .accumulate = accumulate,
        .align = align, .workspace = workspace, .slot = slot,
    };
    tlmi_parallel_for(pool, units, grain, gemm_task, &job);
}
