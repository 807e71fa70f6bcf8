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
 * is in [0, tlmi_threadpool_threads(pool)): it is the index of the range (two
 * ranges running at once never share it), not of the OS thread running
 * it, since the caller takes the ranges a busy worker has not started.
 *
 * A NULL pool runs everything in the calling thread.
 *
 * Ownership: a pool belongs to the thread that uses its handle (the
 * context's, the session's); one loop at a time, from that thread only.
 * The workers start on the first loop that splits, spin for a few tens of
 * microseconds after each loop, then park on a condition variable.
 */
#ifndef TLM_LIB_BASE_THREADPOOL_H
#define TLM_LIB_BASE_THREADPOOL_H

#include <stdint.h>

#include "host.h"

typedef struct tlmi_threadpool tlmi_threadpool;

/* Computes items [begin, end) (begin < end) as thread `thread`. */
typedef void (*tlmi_task_fn)(void *arg, int64_t begin, int64_t end,
                             int thread);

/* A pool of n_threads compute threads, the calling thread counting as one
 * (so n_threads - 1 workers, started by the first loop that splits;
 * n_threads = 1 has none). On failure records "<what>: ..." in `host` and
 * returns TLM_E_NOMEM (or TLM_E_THREAD when a mutex or condition variable
 * cannot be made); *out stays NULL. `host` must outlive the pool. */
int tlmi_threadpool_create(tlmi_threadpool **out, tlmi_host *host, int n_threads,
                     const char *what);

/* Starts the workers now rather than on the first split loop. A worker
 * that cannot start is logged and the pool runs on with fewer threads
 * (same split, same results); this call also records "<what>: ..." and
 * returns TLM_E_THREAD then. NULL or a 1-thread pool: TLM_OK. */
int tlmi_threadpool_start(tlmi_threadpool *pool, const char *what);

/* The thread count `n_threads = 0` means: the environment variable
 * TLM_THREADS when it holds a positive number (at most 1024), else the
 * cores this process may run on. (Under qemu-user, which hangs in
 * pthread_create, the tests set TLM_THREADS=1.) */
int tlmi_default_thread_count(void);

/* The number of ranges tlmi_parallel_for cuts [0, n) into, and range t of
 * them: for callers that size per-range scratch or check a split. */
int64_t tlmi_threadpool_parts(const tlmi_threadpool *pool, int64_t n, int64_t grain);
void tlmi_threadpool_range(int64_t n, int64_t parts, int64_t t, int64_t *begin,
                     int64_t *end);

/* Bytes tlmi_threadpool_create allocates for a pool of n_threads threads. */
size_t tlmi_threadpool_bytes(int n_threads);

/* Stops and joins the workers and frees the pool. NULL is ignored. */
void tlmi_threadpool_free(tlmi_threadpool *pool);

/* The pool's thread count, >= 1 (1 for NULL). */
int tlmi_threadpool_threads(const tlmi_threadpool *pool);

/* Runs task(arg, begin, end, thread) over [0, n) cut into at most
 * tlmi_threadpool_threads(pool) contiguous ranges of at least `grain` items
 * (grain < 1 counts as 1), and returns when all are done. The cut depends
 * only on n, grain and the thread count. n <= 0 does nothing. Must not be
 * called from inside a task of the same pool. */
void tlmi_parallel_for(tlmi_threadpool *pool, int64_t n, int64_t grain,
                       tlmi_task_fn task, void *arg);

#endif
