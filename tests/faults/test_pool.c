/*
 * Suites "faults" and "threads": the compute thread pool (lib/base/threadpool.h) and
 * the matrix products split over it (lib/kernels/gemm_parallel.h).
 *
 * - Every item of [0, n) is computed exactly once, by the range
 *   tlmi_threadpool_range says, each range at least `grain` items, for 1 to 4
 *   threads and assorted n and grain.
 * - Thousands of back-to-back loops (workers still spinning) and loops
 *   after a pause (workers parked) give the right sums.
 * - Two pools driven by two threads at once do not disturb each other.
 * - A product split over 2 or 3 threads (by columns or by rows) is
 *   bitwise the 1-thread product, for every ISA the machine runs and every
 *   bf16 variant, decode (M = 1) and training shapes; products split by
 *   rows exactly when gemm_parallel.h says.
 * - Allocation failures in tlmi_threadpool_create are reported without a leak.
 * - TLM_THREADS sets the default thread count.
 *
 * scripts/test.sh runs this suite under ThreadSanitizer: the pool's
 * hand-over of jobs must be free of data races, not only give the right
 * numbers.
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "base/host.h"
#include "base/threadpool.h"
#include "counting_allocator.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_parallel.h"
#include "tlm.h"

/* ---- Coverage of the split --------------------------------------------- */

#define MAX_ITEMS 1001

typedef struct cover {
    int visits[MAX_ITEMS];
    int64_t begin[8], end[8]; /* range of each thread index */
    int calls[8];
} cover;

static void cover_task(void *arg, int64_t begin, int64_t end, int thread) {
    cover *c = arg;
    c->begin[thread] = begin;
    c->end[thread] = end;
    c->calls[thread]++;
    for (int64_t i = begin; i < end; i++)
        c->visits[i]++;
}

static void split_covers_each_item_once(void **state) {
    (void)state;
    static const int64_t sizes[] = {0, 1, 2, 3, 7, 100, 1001};
    static const int64_t grains[] = {0, 1, 3, 50};
    tlmi_host host;
    tlmi_host_init_default(&host);
    for (int threads = 1; threads <= 4; threads++) {
        tlmi_threadpool *pool = NULL;
        assert_int_equal(tlmi_threadpool_create(&pool, &host, threads, "test"),
                         TLM_OK);
        assert_int_equal(tlmi_threadpool_threads(pool), threads);
        for (size_t in = 0; in < sizeof sizes / sizeof sizes[0]; in++)
            for (size_t ig = 0; ig < sizeof grains / sizeof grains[0]; ig++) {
                const int64_t n = sizes[in], grain = grains[ig];
                cover *c = calloc(1, sizeof *c);
                assert_non_null(c);
                tlmi_parallel_for(pool, n, grain, cover_task, c);
                for (int64_t i = 0; i < n; i++)
                    assert_int_equal(c->visits[i], 1);
                const int64_t parts = tlmi_threadpool_parts(pool, n, grain);
                assert_true(parts <= threads);
                assert_true(n == 0 ? parts == 0 : parts >= 1);
                for (int64_t t = 0; t < 8; t++) {
                    if (t >= parts) {
                        assert_int_equal(c->calls[t], 0);
                        continue;
                    }
                    int64_t begin, end;
                    tlmi_threadpool_range(n, parts, t, &begin, &end);
                    assert_int_equal(c->calls[t], 1);
                    assert_int_equal(c->begin[t], begin);
                    assert_int_equal(c->end[t], end);
                    if (parts > 1)
                        assert_true(end - begin >= (grain > 1 ? grain : 1));
                }
                free(c);
            }
        tlmi_threadpool_free(pool);
    }
}

/* ---- Many loops, spinning and parked workers ---------------------------- */

typedef struct sums {
    int64_t partial[4];
    const int32_t *values;
} sums;

static void sum_task(void *arg, int64_t begin, int64_t end, int thread) {
    sums *s = arg;
    int64_t total = 0;
    for (int64_t i = begin; i < end; i++)
        total += s->values[i];
    s->partial[thread] = total;
}

static int64_t parallel_sum(tlmi_threadpool *pool, const int32_t *values,
                            int64_t n) {
    sums s = {{0, 0, 0, 0}, values};
    tlmi_parallel_for(pool, n, 1, sum_task, &s);
    return s.partial[0] + s.partial[1] + s.partial[2] + s.partial[3];
}

static void sleep_ms(long ms) {
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void many_loops_and_pauses(void **state) {
    (void)state;
    enum { N = 257 };
    int32_t values[N];
    int64_t prefix[N + 1];
    prefix[0] = 0;
    for (int i = 0; i < N; i++) {
        values[i] = i * 7 - 300;
        prefix[i + 1] = prefix[i] + values[i];
    }
    tlmi_host host;
    tlmi_host_init_default(&host);
    for (int threads = 2; threads <= 4; threads++) {
        tlmi_threadpool *pool = NULL;
        assert_int_equal(tlmi_threadpool_create(&pool, &host, threads, "test"),
                         TLM_OK);
        /* Back to back: the workers find the next job while spinning. */
        for (int round = 0; round < 2000; round++) {
            const int n = N - round % 5;
            assert_int_equal(parallel_sum(pool, values, n), prefix[n]);
        }
        /* After a pause: the workers have parked and must be woken. */
        for (int round = 0; round < 5; round++) {
            sleep_ms(3);
            assert_int_equal(parallel_sum(pool, values, N), prefix[N]);
        }
        tlmi_threadpool_free(pool);
    }
    /* A pool that never splits a loop never starts a thread, and frees. */
    tlmi_threadpool *idle = NULL;
    assert_int_equal(tlmi_threadpool_create(&idle, &host, 4, "test"), TLM_OK);
    assert_int_equal(parallel_sum(idle, values, 1), prefix[1]);
    tlmi_threadpool_free(idle);
    /* Started explicitly. */
    assert_int_equal(tlmi_threadpool_create(&idle, &host, 3, "test"), TLM_OK);
    assert_int_equal(tlmi_threadpool_start(idle, "test"), TLM_OK);
    assert_int_equal(parallel_sum(idle, values, N), prefix[N]);
    tlmi_threadpool_free(idle);
    assert_int_equal(tlmi_threadpool_start(NULL, "test"), TLM_OK);
    assert_int_equal(tlmi_threadpool_threads(NULL), 1);
    /* A NULL pool runs the loop in the caller. */
    assert_int_equal(parallel_sum(NULL, values, N), prefix[N]);
}

/* ---- Two pools, two owner threads ------------------------------------- */

typedef struct owner {
    int threads;
    int ok;
} owner;

static void *owner_main(void *arg) {
    owner *o = arg;
    enum { N = 999 };
    int32_t values[N];
    int64_t want = 0;
    for (int i = 0; i < N; i++)
        want += values[i] = (i % 13) - 6 + o->threads;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_threadpool *pool = NULL;
    o->ok = tlmi_threadpool_create(&pool, &host, o->threads, "test") == TLM_OK;
    for (int round = 0; o->ok && round < 500; round++)
        o->ok = parallel_sum(pool, values, N) == want;
    tlmi_threadpool_free(pool);
    return NULL;
}

static void two_pools_in_two_threads(void **state) {
    (void)state;
    owner owners[2] = {{2, 0}, {3, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, owner_main,
                                        &owners[i]), 0);
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        assert_true(owners[i].ok);
    }
}

/* ---- Threaded products are the 1-thread product, bit for bit ----------- */

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static float *random_floats(int64_t count) {
    float *x = malloc((size_t)count * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < count; i++) {
        rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
    }
    return x;
}

/* The products of `kernels` over 1, 2 and 3 threads, each compared bit
 * for bit with the 1-thread one, for nn, nt and tn forms of every shape. */
static void check_threaded_products(const tlmi_kernels *kernels,
                                    tlmi_threadpool *const *pools) {
    /* Column splits (M <= N, or A transposed), and row splits (M > N):
     * a 65-column output layer (nanoGPT CPU's has M = 768), rows
     * cut near the minimum of 16 (50 and 40 rows in 2 ranges), and an M
     * not a multiple of any micro-tile's height. */
    static const int64_t shapes[][3] = {
        {1, 1000, 300}, {3, 515, 64}, {100, 257, 129}, {64, 1000, 40},
        {200, 33, 70}, {120, 65, 64}, {50, 20, 300}, {40, 7, 1000},
        {301, 40, 32},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int form = 0; form < 3; form++) { /* nn, nt, tn */
            const int ta = form == 2, tb = form == 1;
            const int64_t m = shapes[s][0], n = shapes[s][1],
                          k = shapes[s][2];
            const size_t cn = (size_t)(m * n);
            float *a = random_floats(m * k), *b = random_floats(k * n);
            float *bias = random_floats(n), *c0 = random_floats(m * n);
            float *c[4];
            const size_t need = kernels->gemm_workspace(m, n, k, ta, tb);
            const size_t bytes = tlmi_gemm_parallel_workspace(need, 3);
            void *ws = bytes ? aligned_alloc(64, (bytes + 63) / 64 * 64)
                             : NULL;
            for (int t = 1; t <= 3; t++) {
                c[t] = malloc(cn * sizeof(float));
                assert_non_null(c[t]);
                memcpy(c[t], c0, cn * sizeof(float));
                tlmi_gemm_parallel(pools[t], kernels, c[t], a, b,
                                   s % 3 == 2 ? NULL : bias, m, n, k, ta, tb,
                                   (int)(s & 1), ws, bytes);
            }
            for (int t = 2; t <= 3; t++)
                if (memcmp(c[t], c[1], cn * sizeof(float)) != 0) {
                    print_error("%s: %lld x %lld x %lld form %d on %d "
                                "threads (split by %s) differs from 1 "
                                "thread\n",
                                kernels->name, (long long)m, (long long)n,
                                (long long)k, form, t,
                                tlmi_gemm_split_rows(pools[t], m, n, k, ta)
                                    ? "rows" : "columns");
                    fail();
                }
            for (int t = 1; t <= 3; t++)
                free(c[t]);
            free(ws);
            free(a);
            free(b);
            free(bias);
            free(c0);
        }
}

static void threaded_gemm_is_bitwise_single(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_threadpool *pools[4] = {NULL, NULL, NULL, NULL};
    for (int t = 1; t <= 3; t++)
        assert_int_equal(tlmi_threadpool_create(&pools[t], &host, t, "test"), TLM_OK);
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels != NULL)
            check_threaded_products(kernels, pools);
    }
    /* The bf16 products (bf16 training) through the same split: a table
     * with a bf16 variant's GEMM, as a context with matmul_bf16 has. Not
     * the scalar one: the float32 scalar loops on rounded operands, whose
     * splits the scalar table above shows, and slow under valgrind. */
    for (const tlmi_gemm_bf16_kernels *const *v = tlmi_gemm_bf16_all();
         *v != NULL; v++) {
        const tlmi_kernels *base = tlmi_kernels_for((*v)->isa);
        if (base == NULL || (*v)->isa == TLMI_ISA_SCALAR)
            continue;
        tlmi_kernels table = *base;
        table.name = (*v)->name;
        table.gemm = (*v)->gemm;
        table.gemm_workspace = (*v)->gemm_workspace;
        table.gemm_cols = (*v)->gemm_cols;
        table.gemm_col_align = (*v)->gemm_col_align;
        check_threaded_products(&table, pools);
    }
    for (int t = 1; t <= 3; t++)
        tlmi_threadpool_free(pools[t]);
}

/* Which products split by rows: A not transposed, M > N, and two ranges
 * of at least 16 rows and TLMI_GEMM_MIN_FLOPS_PER_THREAD. */
static void gemm_split_by_rows_when_m_exceeds_n(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_threadpool *one = NULL, *two = NULL;
    assert_int_equal(tlmi_threadpool_create(&one, &host, 1, "test"), TLM_OK);
    assert_int_equal(tlmi_threadpool_create(&two, &host, 2, "test"), TLM_OK);
    assert_true(tlmi_gemm_split_rows(two, 768, 128, 128, 0));
    assert_true(tlmi_gemm_split_rows(two, 768, 65, 128, 0));
    assert_true(tlmi_gemm_split_rows(two, 4096, 1536, 384, 0));
    assert_false(tlmi_gemm_split_rows(two, 768, 65, 128, 1)); /* A^T */
    assert_false(tlmi_gemm_split_rows(two, 128, 768, 128, 0)); /* M < N */
    assert_false(tlmi_gemm_split_rows(two, 128, 128, 128, 0)); /* M = N */
    assert_false(tlmi_gemm_split_rows(two, 31, 8, 1000, 0)); /* < 2 x 16 */
    assert_false(tlmi_gemm_split_rows(two, 100, 2, 2, 0)); /* few flops */
    assert_false(tlmi_gemm_split_rows(one, 768, 128, 128, 0));
    assert_false(tlmi_gemm_split_rows(NULL, 768, 128, 128, 0));
    assert_int_equal(tlmi_gemm_row_grain(1000, 1000),
                     TLMI_GEMM_MIN_ROWS_PER_THREAD);
    /* 2 x 2 x 2 = 8 flops a row: 2^18 / 8 + 1 rows. */
    assert_int_equal(tlmi_gemm_row_grain(2, 2),
                     TLMI_GEMM_MIN_FLOPS_PER_THREAD / 8 + 1);
    tlmi_threadpool_free(one);
    tlmi_threadpool_free(two);
}

/* ---- Failures and settings ---------------------------------------------- */

static void allocation_failures_are_reported(void **state) {
    (void)state;
    for (int64_t fail_at = 1; fail_at <= 3; fail_at++) {
        counting_allocator counter = {0};
        counter.fail_at = fail_at;
        tlmi_host host;
        tlmi_host_init_default(&host);
        host.alloc_fn = counting_alloc;
        host.free_fn = counting_free;
        host.alloc_user = &counter;
        tlmi_threadpool *pool = (tlmi_threadpool *)&counter; /* must be reset to NULL */
        assert_int_equal(tlmi_threadpool_create(&pool, &host, 4, "test_pool"),
                         TLM_E_NOMEM);
        assert_null(pool);
        assert_non_null(strstr(host.last_error, "test_pool: allocating"));
        assert_int_equal(counter.live_bytes, 0);
    }
}

static void environment_sets_default(void **state) {
    (void)state;
    assert_int_equal(setenv("TLM_THREADS", "3", 1), 0);
    assert_int_equal(tlmi_default_thread_count(), 3);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    assert_int_equal(tlm_context_thread_count(ctx), 3);
    tlm_context_free(ctx);
    assert_int_equal(setenv("TLM_THREADS", "1", 1), 0);
    assert_int_equal(tlmi_default_thread_count(), 1);
    assert_int_equal(setenv("TLM_THREADS", "0", 1), 0);
    const int cores = tlmi_default_thread_count();
    assert_true(cores >= 1);
    assert_int_equal(setenv("TLM_THREADS", "many", 1), 0);
    assert_int_equal(tlmi_default_thread_count(), cores);
    assert_int_equal(setenv("TLM_THREADS", "99999", 1), 0);
    assert_int_equal(tlmi_default_thread_count(), 1024);
    assert_int_equal(unsetenv("TLM_THREADS"), 0);
    assert_int_equal(tlmi_default_thread_count(), cores);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(split_covers_each_item_once),
        cmocka_unit_test(many_loops_and_pauses),
        cmocka_unit_test(two_pools_in_two_threads),
        cmocka_unit_test(threaded_gemm_is_bitwise_single),
        cmocka_unit_test(gemm_split_by_rows_when_m_exceeds_n),
        cmocka_unit_test(allocation_failures_are_reported),
        cmocka_unit_test(environment_sets_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
