/*
 * Products with quantized weights (kernels/weights_parallel.h) against the
 * float32 product of the same shape with the same kernel table, on the
 * matrices of the 110M Llama shape (n x k = 768 x 768, 2048 x 768,
 * 768 x 2048, 32000 x 768) for m = 1, 2, 4 (decoding, small batches) and
 * m = 64, 256 (prefill), at 1 and 2 threads, for every variant
 * tlmi_weight_kernels_all lists (int8 and bf16).
 *
 * One JSON object per line on stdout:
 *   {"bench":"weights","variant":"avx512-vnni","format":"int8",
 *    "table":"avx512","threads":1,"m":1,"n":768,"k":768,
 *    "weight_gbs":..., "gflops":..., "f32_weight_gbs":..., "f32_gflops":...,
 *    "ratio":...}
 * weight_gbs: bytes of the weights in their format read per second;
 * ratio: float32 time / quantized time (above 1: the quantized product
 * is faster). Times are medians of `rounds` (default 3) rounds, each
 * round timing the quantized product and then the float32 one
 * (alternating), each timing the best of a few sweeps.
 *
 * Decoding reads every matrix of the model once per token, from memory:
 * so that the benchmark does too, each product cycles through enough
 * copies of its matrix to exceed the last-level cache (at least 64 MiB of
 * weights per format), and the time of one product is a sweep over all
 * copies divided by their number.
 *
 *   bench_weights [--quick] [--in-cache] [--rounds N] [--threads LIST] [--variant NAME]
 *                 [--m LIST] [--direct-max-m N] [--shape N,K]
 * --quick: one shape (768 x 768), m = 1 and 64, for a smoke run.
 * --in-cache: one copy of each matrix (the kernels' speed on cached data).
 * --direct-max-m N: the variants' direct path up to m = N (tuning).
 * --shape N,K: that shape only.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/host.h"
#include "base/threadpool.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_parallel.h"
#include "kernels/weights.h"
#include "kernels/weights_parallel.h"

static size_t min_sweep_bytes = (size_t)64 << 20;
#define MIN_SECONDS 0.05

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static float uniform(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "bench_weights: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static int compare_doubles(const void *x, const void *y) {
    const double a = *(const double *)x, b = *(const double *)y;
    return (a > b) - (a < b);
}

/* What one timed product needs. */
typedef struct run {
    tlmi_threadpool *pool;
    const tlmi_kernels *kernels;
    const tlmi_weight_kernels *wk; /* NULL: the float32 product */
    int64_t m, n, k;
    int copies;
    const void *const *weights; /* copies of W: float [n, k] or the format */
    const float *a, *bias;
    float *c;
    void *workspace;
    size_t workspace_bytes;
} run;

static void product(const run *r, int copy) {
    if (r->wk == NULL) {
        tlmi_gemm_parallel(r->pool, r->kernels, r->c, r->a, r->weights[copy],
                           r->bias, r->m, r->n, r->k, 0, 1, 0, r->workspace,
                           r->workspace_bytes);
        return;
    }
    const tlmi_weights w = {.format = r->wk->format, .rows = r->n,
                            .cols = r->k, .data = r->weights[copy]};
    tlmi_weights_product_parallel(r->pool, r->kernels, r->wk, r->c, r->a, &w,
                                  r->bias, r->m, r->workspace,
                                  r->workspace_bytes);
}

/* Seconds per product: the best sweep over all copies of a few (at least
 * 2 sweeps and MIN_SECONDS). */
static double time_product(const run *r) {
    double best = HUGE_VAL, spent = 0.0;
    for (int sweep = 0; sweep < 2 || spent < MIN_SECONDS; sweep++) {
        const double start = now();
        for (int copy = 0; copy < r->copies; copy++)
            product(r, copy);
        const double seconds = (now() - start) / r->copies;
        spent += seconds * r->copies;
        if (seconds < best)
            best = seconds;
        if (sweep > 50)
            break;
    }
    return best;
}

static int parse_list(const char *text, int64_t *out, int max) {
    int count = 0;
    char *end;
    while (count < max) {
        const long long v = strtoll(text, &end, 10);
        if (end == text || v < 1)
            break;
        out[count++] = v;
        if (*end != ',')
            break;
        text = end + 1;
    }
    return count;
}

int main(int argc, char **argv) {
    int rounds = 3, quick = 0;
    int64_t thread_list[4] = {1, 2};
    int thread_count = 2;
    int64_t m_list[8] = {1, 2, 4, 64, 256};
    int m_count = 5, m_given = 0;
    const char *only = NULL;
    int64_t direct_max_m = -1;
    int64_t one_shape[2] = {0, 0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--in-cache") == 0)
            min_sweep_bytes = 1;
        else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc)
            rounds = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            thread_count = parse_list(argv[++i], thread_list, 4);
        else if (strcmp(argv[i], "--m") == 0 && i + 1 < argc)
            m_count = parse_list(argv[++i], m_list, 8), m_given = 1;
        else if (strcmp(argv[i], "--shape") == 0 && i + 1 < argc) {
            int64_t nk[2];
            if (parse_list(argv[++i], nk, 2) != 2) {
                fprintf(stderr, "bench_weights: --shape N,K\n");
                return 2;
            }
            one_shape[0] = nk[0], one_shape[1] = nk[1];
        } else if (strcmp(argv[i], "--direct-max-m") == 0 && i + 1 < argc)
            direct_max_m = atoll(argv[++i]);
        else if (strcmp(argv[i], "--variant") == 0 && i + 1 < argc)
            only = argv[++i];
        else {
            fprintf(stderr, "usage: bench_weights [--quick] [--in-cache] [--rounds N] "
                            "[--threads LIST] [--m LIST] [--variant NAME] "
                            "[--direct-max-m N] [--shape N,K]\n");
            return 2;
        }
    }
    if (rounds < 1)
        rounds = 1;
    if (quick && !m_given) {
        m_list[0] = 1, m_list[1] = 64;
        m_count = 2;
    }
    int64_t shapes[][2] = {
        {768, 768}, {2048, 768}, {768, 2048}, {32000, 768}};
    int shape_count = quick ? 1 : 4;
    if (one_shape[0] > 0) {
        shapes[0][0] = one_shape[0], shapes[0][1] = one_shape[1];
        shape_count = 1;
    }
    const tlmi_kernels *kernels = tlmi_kernels_choose();
    const tlmi_weight_kernels *const *all = tlmi_weight_kernels_all();
    tlmi_host host;
    tlmi_host_init_default(&host);

    for (int s = 0; s < shape_count; s++) {
        const int64_t n = shapes[s][0], k = shapes[s][1];
        const size_t f32_bytes = (size_t)(n * k) * sizeof(float);
        const int f32_copies = (int)((min_sweep_bytes + f32_bytes - 1) / f32_bytes);
        float *source = checked_malloc(f32_bytes);
        for (int64_t i = 0; i < n * k; i++)
            source[i] = uniform() * 0.05f;
        const void **f32 = checked_malloc((size_t)f32_copies * sizeof *f32);
        for (int copy = 0; copy < f32_copies; copy++) {
            float *w = checked_malloc(f32_bytes);
            memcpy(w, source, f32_bytes);
            f32[copy] = w;
        }
        float *bias = checked_malloc((size_t)n * sizeof(float));
        for (int64_t j = 0; j < n; j++)
            bias[j] = uniform();
        for (size_t v = 0; all[v] != NULL; v++) {
            tlmi_weight_kernels variant = *all[v];
            const tlmi_weight_kernels *wk = &variant;
            if (only != NULL && strcmp(only, wk->name) != 0)
                continue;
            if (direct_max_m >= 0)
                variant.direct_max_m = direct_max_m;
            const size_t q_bytes = tlmi_weights_bytes(wk->format, n, k);
            const int q_copies = (int)((min_sweep_bytes + q_bytes - 1) / q_bytes);
            const void **q = checked_malloc((size_t)q_copies * sizeof *q);
            for (int copy = 0; copy < q_copies; copy++) {
                void *data = checked_malloc(q_bytes);
                int64_t bad_row;
                if (tlmi_weights_quantize(data, source, wk->format, n, k,
                                          &bad_row) != 0) {
                    fprintf(stderr, "bench_weights: quantize failed\n");
                    return 1;
                }
                q[copy] = data;
            }
            for (int t = 0; t < thread_count; t++) {
                const int threads = (int)thread_list[t];
                tlmi_threadpool *pool = NULL;
                if (threads > 1 &&
                    (tlmi_threadpool_create(&pool, &host, threads, "bench") != 0 ||
                     tlmi_threadpool_start(pool, "bench") != 0)) {
                    fprintf(stderr, "bench_weights: no thread pool\n");
                    return 1;
                }
                for (int im = 0; im < m_count; im++) {
                    const int64_t m = m_list[im];
                    /* the scalar variants' direct products are slow: the
                     * largest shape at m > 1 is left out for them */
                    if (wk->isa == TLMI_ISA_SCALAR && m <= wk->direct_max_m &&
                        n * k > 2048 * 768 && m > 1)
                        continue;
                    float *a = checked_malloc((size_t)(m * k) * sizeof(float));
                    for (int64_t i = 0; i < m * k; i++)
                        a[i] = uniform();
                    float *c = checked_malloc((size_t)(m * n) * sizeof(float));
                    size_t ws_f32 = tlmi_gemm_parallel_workspace(
                        kernels->gemm_workspace(m, n, k, 0, 1), threads);
                    size_t ws_q = tlmi_weights_product_workspace(
                        kernels, wk, m, n, k, threads);
                    const size_t ws_bytes = ws_f32 > ws_q ? ws_f32 : ws_q;
                    void *ws = checked_malloc(ws_bytes);
                    run fr = {.pool = pool, .kernels = kernels, .wk = NULL,
                              .m = m, .n = n, .k = k, .copies = f32_copies,
                              .weights = (const void *const *)f32, .a = a,
                              .bias = bias, .c = c, .workspace = ws,
                              .workspace_bytes = ws_bytes};
                    run qr = fr;
                    qr.wk = wk;
                    qr.copies = q_copies;
                    qr.weights = (const void *const *)q;
                    double *qt = checked_malloc((size_t)rounds * sizeof(double));
                    double *ft = checked_malloc((size_t)rounds * sizeof(double));
                    for (int round = 0; round < rounds; round++) {
                        qt[round] = time_product(&qr);
                        ft[round] = time_product(&fr);
                    }
                    qsort(qt, (size_t)rounds, sizeof *qt, compare_doubles);
                    qsort(ft, (size_t)rounds, sizeof *ft, compare_doubles);
                    const double q_s = qt[rounds / 2], f_s = ft[rounds / 2];
                    const double flops = 2.0 * (double)m * (double)n * (double)k;
                    printf("{\"bench\":\"weights\",\"variant\":\"%s\","
                           "\"format\":\"%s\",\"table\":\"%s\",\"threads\":%d,"
                           "\"m\":%lld,\"n\":%lld,\"k\":%lld,"
                           "\"weight_gbs\":%.2f,\"gflops\":%.2f,"
                           "\"f32_weight_gbs\":%.2f,\"f32_gflops\":%.2f,"
                           "\"ratio\":%.3f,\"rounds\":%d}\n",
                           wk->name,
                           wk->format == TLM_WEIGHTS_INT8 ? "int8" : "bf16",
                           kernels->name, threads, (long long)m, (long long)n,
                           (long long)k, (double)q_bytes / q_s * 1e-9,
                           flops / q_s * 1e-9,
                           (double)f32_bytes / f_s * 1e-9, flops / f_s * 1e-9,
                           f_s / q_s, rounds);
                    fflush(stdout);
                    free(ft);
                    free(qt);
                    free(ws);
                    free(c);
                    free(a);
                }
                tlmi_threadpool_free(pool);
            }
            for (int copy = 0; copy < q_copies; copy++)
                free((void *)q[copy]);
            free(q);
        }
        for (int copy = 0; copy < f32_copies; copy++)
            free((void *)f32[copy]);
        free(f32);
        free(bias);
        free(source);
    }
    return 0;
}
