/*
 * The compute thread pool (see threadpool.h).
 *
 * n_threads - 1 worker threads and the caller, thread 0. The workers are
 * started on the first loop that really splits (so a pool whose loops all
 * stay in one range never starts a thread), then wait for work: a short
 * spin (SPIN_NS) on the job counter, so that the back-to-back loops of one
 * forward pass do not pay a wake-up each, then they park on a condition
 * variable and cost nothing. The caller waits for the workers the same
 * way. On a machine whose other cores are busy, spinning longer would
 * steal the time the other threads need.
 *
 * One job at a time: the caller writes the job (task, argument, size,
 * split) and its `ticket` (generation, number of ranges, next range to
 * take), then bumps `generation`. Ranges are taken in order by a
 * compare-and-swap on the ticket, by the caller as much as by the workers:
 * on a loaded machine a worker that is not scheduled in time simply finds
 * every range taken, and the caller has done the work alone (two threads
 * are then not much slower than one). Who computes a range does not
 * matter: range t is always the same items, computed by one call with
 * thread index t, so results are the same whatever thread ran it. A
 * worker reads the job fields only after taking a range, and the caller
 * writes the next job only after every range is done (`remaining` = 0),
 * so the fields need no lock.
 *
 * Should a worker fail to start, the pool logs it, keeps the threads it
 * has and runs on with them; a pool with no workers runs every loop in
 * the caller. The split does not change, so neither do the results.
 */
#define _POSIX_C_SOURCE 200809L

#include "threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define CPU_RELAX() __asm__ __volatile__("yield")
#else
#define CPU_RELAX() ((void)0)
#endif

#include "cpu.h"
#include "error.h"
#include "tlm.h"

/* How long a waiting thread spins before it parks, in nanoseconds. */
#define SPIN_NS 20000
/* Spin iterations between two looks at the clock. */
#define SPIN_CHECK 64

/* Upper bound on a pool's threads (as tlm_context_create checks). */
#define MAX_THREADS 1024

typedef struct worker {
    struct tlmi_threadpool *pool;
    int index; /* 1 .. n_threads - 1 */
} worker;

struct tlmi_threadpool {
    tlmi_host *host;
    int n_threads;
    int started;      /* workers running: 0 .. n_threads - 1 */
    int start_tried;  /* the workers were started (or tried) */

    pthread_mutex_t mutex;
    pthread_cond_t wake; /* a new generation (or stop) for the workers */
    pthread_cond_t done; /* remaining reached 0, for the caller */
    int sync_ready;      /* mutex and conditions initialised */

    atomic_uint_fast64_t generation; /* one per job */
    /* generation (low 32 bits) << 32 | ranges << 16 | next range */
    atomic_uint_fast64_t ticket;
    atomic_int remaining;            /* ranges of the job not yet done */
    atomic_int sleepers;             /* workers parked on `wake` */
    atomic_int stop;

    /* The job (written by the caller between jobs only). */
    tlmi_task_fn task;
    void *arg;
    int64_t n;
    int64_t parts;

    pthread_t *threads; /* [n_threads - 1] */
    worker *workers;    /* [n_threads - 1] */
};

/* ---- The split --------------------------------------------------------- */

/* Range `t` of `parts` over [0, n): the first n % parts ranges get one
 * item more. Depends only on n, parts and t (and overflows for no n). */
static void range_of(int64_t n, int64_t parts, int64_t t, int64_t *begin,
                     int64_t *end) {
    const int64_t base = n / parts, extra = n % parts;
    *begin = t * base + (t < extra ? t : extra);
    *end = *begin + base + (t < extra ? 1 : 0);
}

/* ---- Waiting ----------------------------------------------------------- */

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Spins until the generation differs from `seen` or SPIN_NS passed;
 * returns the generation last read. */
static uint_fast64_t spin_for_job(tlmi_threadpool *pool, uint_fast64_t seen) {
    int64_t deadline = -1;
    for (int i = 1;; i++) {
        const uint_fast64_t g =
            atomic_load_explicit(&pool->generation, memory_order_acquire);
        if (g != seen || atomic_load_explicit(&pool->stop,
                                              memory_order_relaxed))
            return g;
        if (i % SPIN_CHECK == 0) {
            const int64_t t = now_ns();
            if (deadline < 0)
                deadline = t + SPIN_NS;
            else if (t >= deadline)
                return g;
        }
        CPU_RELAX();
    }
}

/* Takes and runs ranges of job `g` until none is left; returns how many
 * this thread ran. */
static int run_ranges(tlmi_threadpool *pool, uint32_t g) {
    int ran = 0;
    uint_fast64_t ticket =
        atomic_load_explicit(&pool->ticket, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(ticket >> 32) != g)
            return ran; /* that job is over */
        const int64_t parts = (int64_t)((ticket >> 16) & 0xffff);
        const int64_t t = (int64_t)(ticket & 0xffff);
        if (t >= parts)
            return ran;
        if (!atomic_compare_exchange_weak_explicit(
                &pool->ticket, &ticket, ticket + 1, memory_order_acq_rel,
                memory_order_acquire))
            continue;
        int64_t begin, end;
        range_of(pool->n, parts, t, &begin, &end);
        pool->task(pool->arg, begin, end, (int)t);
        atomic_fetch_sub_explicit(&pool->remaining, 1, memory_order_acq_rel);
        ran++;
        ticket = atomic_load_explicit(&pool->ticket, memory_order_acquire);
    }
}

static void *worker_main(void *arg) {
    worker *self = arg;
    tlmi_threadpool *pool = self->pool;
    uint_fast64_t seen = 0;
    for (;;) {
        uint_fast64_t g = spin_for_job(pool, seen);
        if (g == seen && !atomic_load(&pool->stop)) {
            pthread_mutex_lock(&pool->mutex);
            atomic_fetch_add(&pool->sleepers, 1);
            while ((g = atomic_load(&pool->generation)) == seen &&
                   !atomic_load(&pool->stop))
                pthread_cond_wait(&pool->wake, &pool->mutex);
            atomic_fetch_sub(&pool->sleepers, 1);
            pthread_mutex_unlock(&pool->mutex);
        }
        if (atomic_load(&pool->stop))
            return NULL;
        seen = g;
        if (run_ranges(pool, (uint32_t)g) > 0 &&
            atomic_load_explicit(&pool->remaining, memory_order_acquire) == 0) {
            /* Possibly the last range: the caller may be parked. */
            pthread_mutex_lock(&pool->mutex);
            pthread_cond_signal(&pool->done);
            pthread_mutex_unlock(&pool->mutex);
        }
    }
}

/* ---- Creation ---------------------------------------------------------- */

size_t tlmi_threadpool_bytes(int n_threads) {
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    if (n_threads <= 1)
        return sizeof(tlmi_threadpool);
    const size_t count = (size_t)(n_threads - 1);
    return sizeof(tlmi_threadpool) + count * sizeof(((tlmi_threadpool *)0)->threads[0]) +
           count * sizeof(((tlmi_threadpool *)0)->workers[0]);
}

int tlmi_threadpool_create(tlmi_threadpool **out, tlmi_host *host, int n_threads,
                     const char *what) {
    *out = NULL;
    if (n_threads < 1)
        n_threads = 1;
    if (n_threads > MAX_THREADS)
        n_threads = MAX_THREADS;
    tlmi_threadpool *pool = tlmi_host_alloc(host, sizeof *pool, 64);
    if (pool == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "%s: allocating the thread pool "
                         "(%zu bytes) failed", what, sizeof *pool);
    memset(pool, 0, sizeof *pool);
    pool->host = host;
    pool->n_threads = n_threads;
    atomic_init(&pool->generation, 0);
    atomic_init(&pool->ticket, 0);
    atomic_init(&pool->remaining, 0);
    atomic_init(&pool->sleepers, 0);
    atomic_init(&pool->stop, 0);
    if (n_threads > 1) {
        const size_t count = (size_t)(n_threads - 1);
        pool->threads = tlmi_host_alloc(host, count * sizeof *pool->threads, 64);
        pool->workers = tlmi_host_alloc(host, count * sizeof *pool->workers, 64);
        if (pool->threads == NULL || pool->workers == NULL) {
            tlmi_threadpool_free(pool);
            return tlmi_fail(host, TLM_E_NOMEM, "%s: allocating the thread "
                             "pool's %zu workers failed", what, count);
        }
        if (pthread_mutex_init(&pool->mutex, NULL) != 0) {
            tlmi_threadpool_free(pool);
            return tlmi_fail(host, TLM_E_THREAD, "%s: creating the thread "
                             "pool's mutex failed", what);
        }
        if (pthread_cond_init(&pool->wake, NULL) != 0) {
            pthread_mutex_destroy(&pool->mutex);
            tlmi_threadpool_free(pool);
            return tlmi_fail(host, TLM_E_THREAD, "%s: creating the thread "
                             "pool's condition variable failed", what);
        }
        if (pthread_cond_init(&pool->done, NULL) != 0) {
            pthread_cond_destroy(&pool->wake);
            pthread_mutex_destroy(&pool->mutex);
            tlmi_threadpool_free(pool);
            return tlmi_fail(host, TLM_E_THREAD, "%s: creating the thread "
                             "pool's condition variable failed", what);
        }
        pool->sync_ready = 1;
    }
    *out = pool;
    return TLM_OK;
}

/* Starts the workers (once). Returns the number running. */
static int start_workers(tlmi_threadpool *pool) {
    if (pool->start_tried)
        return pool->started;
    pool->start_tried = 1;
    for (int i = 0; i < pool->n_threads - 1; i++) {
        pool->workers[i].pool = pool;
        pool->workers[i].index = i + 1;
        const int error = pthread_create(&pool->threads[i], NULL, worker_main,
                                         &pool->workers[i]);
        if (error != 0) {
            tlmi_host_log(pool->host, TLM_LOG_WARN,
                          "thread pool: starting worker %d of %d failed "
                          "(error %d); loops run on %d thread(s)",
                          i + 1, pool->n_threads - 1, error, i + 1);
            break;
        }
        pool->started = i + 1;
    }
    return pool->started;
}

int tlmi_threadpool_start(tlmi_threadpool *pool, const char *what) {
    if (pool == NULL || pool->n_threads < 2)
        return TLM_OK;
    const int running = start_workers(pool);
    if (running < pool->n_threads - 1)
        return tlmi_fail(pool->host, TLM_E_THREAD,
                         "%s: only %d of the thread pool's %d worker threads "
                         "could be started", what, running,
                         pool->n_threads - 1);
    return TLM_OK;
}

void tlmi_threadpool_free(tlmi_threadpool *pool) {
    if (pool == NULL)
        return;
    if (pool->started > 0) {
        pthread_mutex_lock(&pool->mutex);
        atomic_store(&pool->stop, 1);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
        for (int i = 0; i < pool->started; i++)
            pthread_join(pool->threads[i], NULL);
    }
    if (pool->sync_ready) {
        pthread_cond_destroy(&pool->done);
        pthread_cond_destroy(&pool->wake);
        pthread_mutex_destroy(&pool->mutex);
    }
    if (pool->n_threads > 1) {
        const size_t count = (size_t)(pool->n_threads - 1);
        tlmi_host_free(pool->host, pool->threads,
                       count * sizeof *pool->threads);
        tlmi_host_free(pool->host, pool->workers,
                       count * sizeof *pool->workers);
    }
    tlmi_host_free(pool->host, pool, sizeof *pool);
}

int tlmi_threadpool_threads(const tlmi_threadpool *pool) {
    return pool != NULL ? pool->n_threads : 1;
}

int tlmi_default_thread_count(void) {
    const char *value = getenv("TLM_THREADS");
    if (value != NULL && *value != '\0') {
        char *end = NULL;
        const long n = strtol(value, &end, 10);
        if (*end == '\0' && n > 0)
            return n > MAX_THREADS ? MAX_THREADS : (int)n;
    }
    return tlmi_cpu_core_count();
}

/* ---- Loops ------------------------------------------------------------- */

int64_t tlmi_threadpool_parts(const tlmi_threadpool *pool, int64_t n, int64_t grain) {
    if (n <= 0)
        return 0;
    if (grain < 1)
        grain = 1;
    /* Every range at least `grain` items: at most n / grain of them. */
    const int64_t chunks = n / grain > 1 ? n / grain : 1;
    const int threads = tlmi_threadpool_threads(pool);
    return chunks < threads ? chunks : threads;
}

void tlmi_threadpool_range(int64_t n, int64_t parts, int64_t t, int64_t *begin,
                     int64_t *end) {
    range_of(n, parts, t, begin, end);
}

void tlmi_parallel_for(tlmi_threadpool *pool, int64_t n, int64_t grain,
                       tlmi_task_fn task, void *arg) {
    const int64_t parts = tlmi_threadpool_parts(pool, n, grain);
    if (parts <= 0)
        return;
    if (parts == 1) {
        task(arg, 0, n, 0);
        return;
    }
    /* Fewer workers than ranges (some could not start): the caller runs
     * the ranges no worker takes, the same ranges, so the same results. */
    const int workers = start_workers(pool);
    if (workers == 0) {
        for (int64_t t = 0; t < parts; t++) {
            int64_t begin, end;
            range_of(n, parts, t, &begin, &end);
            task(arg, begin, end, (int)t);
        }
        return;
    }
    pool->task = task;
    pool->arg = arg;
    pool->n = n;
    pool->parts = parts;
    atomic_store_explicit(&pool->remaining, (int)parts, memory_order_relaxed);
    const uint_fast64_t g =
        atomic_load_explicit(&pool->generation, memory_order_relaxed) + 1;
    atomic_store_explicit(&pool->ticket,
                          (uint_fast64_t)(uint32_t)g << 32 |
                              (uint_fast64_t)parts << 16,
                          memory_order_release);
    atomic_store_explicit(&pool->generation, g, memory_order_seq_cst);
    if (atomic_load(&pool->sleepers) > 0) {
        pthread_mutex_lock(&pool->mutex);
        pthread_cond_broadcast(&pool->wake);
        pthread_mutex_unlock(&pool->mutex);
    }
    /* The caller takes ranges too, from the first. */
    run_ranges(pool, (uint32_t)g);

    /* Wait: spin a little, then park. */
    int64_t deadline = -1;
    for (int i = 1;
         atomic_load_explicit(&pool->remaining, memory_order_acquire) != 0;
         i++) {
        if (i % SPIN_CHECK == 0) {
            const int64_t t = now_ns();
            if (deadline < 0) {
                deadline = t + SPIN_NS;
            } else if (t >= deadline) {
                pthread_mutex_lock(&pool->mutex);
                while (atomic_load(&pool->remaining) != 0)
                    pthread_cond_wait(&pool->done, &pool->mutex);
                pthread_mutex_unlock(&pool->mutex);
                break;
            }
        }
        CPU_RELAX();
    }
}
