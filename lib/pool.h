/*
 * The compute thread pool a handle owns (a context, a session): a fixed
 * set of worker threads that run one parallel loop at a time for the
 * thread that owns the handle. No global state: two contexts have two
 * pools.
 *
 * Determinism: tlmi_parallel_for splits [0, n) into contiguous ranges, at
 * most one per thread, and a range is always computed by exactly one call
 * of the task. A task must compute every item of its range the same way
 * whatever the range is (no sums across items that the split would cut
 * differently), so that results are bitwise identical for any number of
 * threads. Per-thread scratch is indexed by the `thread` argument, which
 * is in [0, tlmi_pool_threads(pool)).
 *
 * A NULL pool runs everything in the calling thread.
 */
#ifndef TLM_LIB_POOL_H
#define TLM_LIB_POOL_H

#include <stdint.h>

#include "host.h"

typedef struct tlmi_pool tlmi_pool;

/* Computes items [begin, end) (begin < end) as thread `thread`. */
typedef void (*tlmi_task_fn)(void *arg, int64_t begin, int64_t end,
                             int thread);

/* A pool of n_threads compute threads, the calling thread counting as one
 * (so n_threads - 1 workers are started; n_threads = 1 starts none). On
 * failure records "<what>: ..." in `host` and returns TLM_E_NOMEM (or
 * TLM_E_IO when a thread cannot be started); *out stays NULL. */
int tlmi_pool_create(tlmi_pool **out, tlmi_host *host, int n_threads,
                     const char *what);

/* Stops and joins the workers and frees the pool. NULL is ignored. */
void tlmi_pool_free(tlmi_pool *pool);

/* The pool's thread count, >= 1 (1 for NULL). */
int tlmi_pool_threads(const tlmi_pool *pool);

/* Runs task(arg, begin, end, thread) over [0, n) cut into at most
 * tlmi_pool_threads(pool) contiguous ranges of at least `grain` items
 * (grain < 1 counts as 1), and returns when all are done. The cut depends
 * only on n, grain and the thread count. n <= 0 does nothing. Must not be
 * called from inside a task of the same pool. */
void tlmi_parallel_for(tlmi_pool *pool, int64_t n, int64_t grain,
                       tlmi_task_fn task, void *arg);

#endif
