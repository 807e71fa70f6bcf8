/*
 * The compute thread pool (see pool.h). This first version runs every
 * loop in the calling thread; the worker threads replace it.
 */
#include "pool.h"

#include <stddef.h>

#include "tlm.h"

struct tlmi_pool {
    tlmi_host *host;
    int n_threads;
};

int tlmi_pool_create(tlmi_pool **out, tlmi_host *host, int n_threads,
                     const char *what) {
    *out = NULL;
    tlmi_pool *pool = tlmi_host_alloc(host, sizeof *pool, 64);
    if (pool == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "%s: allocating the thread pool "
                         "(%zu bytes) failed", what, sizeof *pool);
    pool->host = host;
    pool->n_threads = n_threads > 1 ? n_threads : 1;
    *out = pool;
    return TLM_OK;
}

void tlmi_pool_free(tlmi_pool *pool) {
    if (pool != NULL)
        tlmi_host_free(pool->host, pool, sizeof *pool);
}

int tlmi_pool_threads(const tlmi_pool *pool) {
    return pool != NULL ? pool->n_threads : 1;
}

void tlmi_parallel_for(tlmi_pool *pool, int64_t n, int64_t grain,
                       tlmi_task_fn task, void *arg) {
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t parts = (n + grain - 1) / grain;
    const int threads = tlmi_pool_threads(pool);
    if (parts > threads)
        parts = threads;
    for (int64_t t = 0; t < parts; t++)
        task(arg, n * t / parts, n * (t + 1) / parts, (int)t);
}
