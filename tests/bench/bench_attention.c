/*
 * The attention benchmark: the fused flash-style kernels of the dispatch
 * table (kernels/attention.h) against a naive materialized attention
 * written here, on one thread, causal, at T = 64 .. 1024.
 *
 * Naive forward, per head: S = Q K^T (the GEMM of the same ISA's table as
 * the fused kernel of that line: what a machine with only that ISA would
 * run), scaled and masked, row softmax (expf), O = P V; it keeps P
 * [T, T] for the backward pass: dP = dO V^T, dV = P^T dO,
 * dS = P * (dP - rowsum(dO * O)) * scale, dQ = dS K, dK = dS^T Q. Both
 * backward passes overwrite their gradients (fused: accumulate 0).
 * The fused kernels never form a T x T matrix: their scratch grows
 * linearly in T (bytes_scratch) while the naive one grows as T^2
 * (naive_bytes_scratch).
 *
 * One JSON object per line on stdout:
 *   {"bench":"attention","isa":...,
 *    "pass":"forward"|"backward"|"forward_backward","t":T,
 *    "heads":H,"d":D,"causal":1,"threads":1,"tokens_per_s":...,
 *    "naive_tokens_per_s":...,"ratio_vs_naive":...,"bytes_scratch":...,
 *    "naive_bytes_scratch":...,"naive_isa":...,"max_diff":...,
 *    "precision":"float32"|"bf16"}
 * tokens_per_s is T over the time of one pass over the H heads
 * (forward_backward: one forward then one backward, as in training);
 * max_diff the largest difference between the fused and the naive results
 * (out, or dq, dk, dv).
 *
 *   bench_attention              every ISA this CPU has but scalar
 *   bench_attention --isa NAME   one ISA (scalar, avx2, avx512, neon)
 *   bench_attention --quick      T = 64 and 128 only, fewer repetitions
 *   bench_attention --bf16       the fused kernels' bf16 entries (bf16
 *                                products, what --precision bf16 trains
 *                                with; max_diff then measures the
 *                                rounding against the float32 naive one)
 *
 * Times are the best of several repetitions (at least 5) of the thread's
 * CPU time (CLOCK_THREAD_CPUTIME_ID, which leaves out the time other
 * processes had the core), fused and naive alternating; the machine is
 * shared and noisy, so compare the ratios measured in one run.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/dispatch.h"

#define HEADS 4
#define DIM 64

/* The calling thread's CPU time: on a machine shared with other work, the
 * time the thread was descheduled (tens of milliseconds at a time there)
 * is not counted. */
static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void *checked_malloc(size_t bytes) {
    void *p = malloc(bytes > 0 ? bytes : 1);
    if (p == NULL) {
        fprintf(stderr, "bench_attention: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static float *random_floats(int64_t count, uint64_t seed) {
    float *x = checked_malloc((size_t)count * sizeof *x);
    uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < count; i++) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(state >> 40) / (double)(1ull << 23) - 1.0);
    }
    return x;
}

static float max_diff(const float *a, const float *b, int64_t n) {
    float worst = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float d = fabsf(a[i] - b[i]);
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* The largest max_diff of the fused gradients g[0..2] (dq, dk, dv)
 * against the naive ones g[3..5]. */
static float grad_diff(float *const g[6], int64_t n) {
    float worst = 0.0f;
    for (int i = 0; i < 3; i++) {
        const float d = max_diff(g[i], g[i + 3], n);
        if (d > worst)
            worst = d;
    }
    return worst;
}

/* Keeps the shortest of the times seen: the fused pass ran from t0 to
 * t1, the naive one from t1 to t2. */
static void keep_best(double *fused_best, double *naive_best, double t0,
                      double t1, double t2) {
    if (t1 - t0 < *fused_best)
        *fused_best = t1 - t0;
    if (t2 - t1 < *naive_best)
        *naive_best = t2 - t1;
}

/* ---- The naive attention ---------------------------------------------- */

typedef struct naive {
    const tlmi_kernels *gemm; /* the table whose GEMM it uses */
    int64_t t, d;
    float *p;    /* [H, T, T] probabilities, kept for backward */
    float *dp;   /* [T, T] one head's dP, then dS */
    float *ws;   /* GEMM workspace */
    size_t p_bytes, dp_bytes, ws_bytes;
} naive;

static void naive_make(naive *nv, const tlmi_kernels *gemm, int64_t t,
                       int64_t d) {
    nv->gemm = gemm;
    nv->t = t;
    nv->d = d;
    nv->p_bytes = (size_t)(HEADS * t * t) * sizeof(float);
    nv->dp_bytes = (size_t)(t * t) * sizeof(float);
    const int64_t shapes[][5] = {
        {t, t, d, 0, 1}, {t, d, t, 0, 0}, {t, d, t, 1, 0}};
    nv->ws_bytes = 0;
    for (int i = 0; i < 3; i++) {
        const size_t b = gemm->gemm_workspace(shapes[i][0], shapes[i][1],
                                              shapes[i][2], (int)shapes[i][3],
                                              (int)shapes[i][4]);
        if (b > nv->ws_bytes)
            nv->ws_bytes = b;
    }
    nv->p = checked_malloc(nv->p_bytes);
    nv->dp = checked_malloc(nv->dp_bytes);
    nv->ws = checked_malloc(nv->ws_bytes);
}

static void naive_free(naive *nv) {
    free(nv->p), free(nv->dp), free(nv->ws);
}

static void naive_forward(naive *nv, float *out, const float *q,
                          const float *k, const float *v) {
    const int64_t t = nv->t, d = nv->d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t h = 0; h < HEADS; h++) {
        float *p = nv->p + h * t * t;
        const float *qh = q + h * t * d, *kh = k + h * t * d,
                    *vh = v + h * t * d;
        nv->gemm->gemm(p, qh, kh, NULL, t, t, d, 0, 1, 0, nv->ws);
        for (int64_t i = 0; i < t; i++) {
            float *row = p + i * t;
            float m = -INFINITY, sum = 0.0f;
            for (int64_t j = 0; j <= i; j++) {
                row[j] *= scale;
                if (row[j] > m)
                    m = row[j];
            }
            for (int64_t j = 0; j <= i; j++) {
                row[j] = expf(row[j] - m);
                sum += row[j];
            }
            const float inv = 1.0f / sum;
            for (int64_t j = 0; j <= i; j++)
                row[j] *= inv;
            for (int64_t j = i + 1; j < t; j++)
                row[j] = 0.0f;
        }
        nv->gemm->gemm(out + h * t * d, p, vh, NULL, t, d, t, 0, 0, 0,
                       nv->ws);
    }
}

static void naive_backward(naive *nv, float *dq, float *dk, float *dv,
                           const float *dout, const float *q, const float *k,
                           const float *v, const float *out) {
    const int64_t t = nv->t, d = nv->d;
    const float scale = 1.0f / sqrtf((float)d);
    for (int64_t h = 0; h < HEADS; h++) {
        const float *p = nv->p + h * t * t;
        const float *qh = q + h * t * d, *kh = k + h * t * d,
                    *vh = v + h * t * d, *oh = out + h * t * d,
                    *gh = dout + h * t * d;
        float *ds = nv->dp;
        nv->gemm->gemm(ds, gh, vh, NULL, t, t, d, 0, 1, 0, nv->ws);
        nv->gemm->gemm(dv + h * t * d, p, gh, NULL, t, d, t, 1, 0, 0, nv->ws);
        for (int64_t i = 0; i < t; i++) {
            float drow = 0.0f;
            for (int64_t c = 0; c < d; c++)
                drow += gh[i * d + c] * oh[i * d + c];
            for (int64_t j = 0; j < t; j++)
                ds[i * t + j] = p[i * t + j] * (ds[i * t + j] - drow) * scale;
        }
        nv->gemm->gemm(dq + h * t * d, ds, kh, NULL, t, d, t, 0, 0, 0, nv->ws);
        nv->gemm->gemm(dk + h * t * d, ds, qh, NULL, t, d, t, 1, 0, 0, nv->ws);
    }
}

/* ---- The fused kernels ------------------------------------------------ */

static void fused_forward(const tlmi_kernels *kernels, float *out, float *lse,
                          const float *q, const float *k, const float *v,
                          int64_t t, int64_t d, void *ws) {
    const tlmi_attention_dims dims = {t, t, d, d, d, d, d, d, 1};
    for (int64_t h = 0; h < HEADS; h++)
        kernels->attention_forward(out + h * t * d, lse + h * t, q + h * t * d,
                                   k + h * t * d, v + h * t * d, NULL, &dims,
                                   ws);
}

static void fused_backward(const tlmi_kernels *kernels, float *dq, float *dk,
                           float *dv, const float *dout, const float *q,
                           const float *k, const float *v, const float *out,
                           const float *lse, int64_t t, int64_t d, void *ws) {
    const tlmi_attention_dims dims = {t, t, d, d, d, d, d, d, 1};
    for (int64_t h = 0; h < HEADS; h++)
        kernels->attention_backward(
            dq + h * t * d, dk + h * t * d, dv + h * t * d, dout + h * t * d,
            q + h * t * d, k + h * t * d, v + h * t * d, out + h * t * d,
            lse + h * t, NULL, &dims, 0, ws);
}

/* "float32", or "bf16" when main swapped in the bf16 entries. */
static const char *precision = "float32";

static void print_line(const tlmi_kernels *kernels, const naive *nv,
                       const char *pass, int64_t t, double fused_s,
                       double naive_s, size_t bytes, size_t naive_bytes,
                       float diff) {
    printf("{\"bench\":\"attention\",\"isa\":\"%s\",\"pass\":\"%s\","
           "\"t\":%lld,\"heads\":%d,\"d\":%d,\"causal\":1,\"threads\":1,"
           "\"tokens_per_s\":%.0f,\"naive_tokens_per_s\":%.0f,"
           "\"ratio_vs_naive\":%.2f,\"bytes_scratch\":%zu,"
           "\"naive_bytes_scratch\":%zu,\"naive_isa\":\"%s\","
           "\"max_diff\":%.2e,\"precision\":\"%s\"}\n",
           kernels->name, pass, (long long)t, HEADS, DIM,
           (double)t / fused_s, (double)t / naive_s, naive_s / fused_s, bytes,
           naive_bytes, nv->gemm->name, (double)diff, precision);
    fflush(stdout);
}

static void run_t(const tlmi_kernels *kernels, int64_t t, int quick) {
    const int64_t d = DIM, n = HEADS * t * d;
    float *q = random_floats(n, 1), *k = random_floats(n, 2),
          *v = random_floats(n, 3), *dout = random_floats(n, 4);
    float *out = checked_malloc((size_t)n * sizeof(float));
    float *out_naive = checked_malloc((size_t)n * sizeof(float));
    float *lse = checked_malloc((size_t)(HEADS * t) * sizeof(float));
    float *g[6];
    for (int i = 0; i < 6; i++)
        g[i] = checked_malloc((size_t)n * sizeof(float));
    const size_t fwd_bytes = kernels->attention_workspace(t, t, d, d, 0);
    const size_t bwd_bytes = kernels->attention_workspace(t, t, d, d, 1);
    void *ws = checked_malloc(bwd_bytes);
    naive nv;
    naive_make(&nv, kernels, t, d);

    /* About 0.3 s per measurement (less with --quick), at least 5 runs. */
    const double flops = 4.0 * (double)(HEADS * t * t * d);
    int reps = (int)(2e9 * (quick ? 0.05 : 0.3) / flops);
    if (reps < 5)
        reps = 5;

    double fused_best = (double)INFINITY, naive_best = (double)INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        fused_forward(kernels, out, lse, q, k, v, t, d, ws);
        double t1 = now_seconds();
        naive_forward(&nv, out_naive, q, k, v);
        double t2 = now_seconds();
        keep_best(&fused_best, &naive_best, t0, t1, t2);
    }
    print_line(kernels, &nv, "forward", t, fused_best, naive_best, fwd_bytes,
               nv.p_bytes + nv.ws_bytes, max_diff(out, out_naive, n));

    fused_best = naive_best = (double)INFINITY;
    for (int r = 0; r < reps; r++) {
        /* Garbage in the gradients: both passes overwrite them. */
        for (int i = 0; i < 6; i++)
            memset(g[i], 0x7f, (size_t)n * sizeof(float));
        double t0 = now_seconds();
        fused_backward(kernels, g[0], g[1], g[2], dout, q, k, v, out, lse, t,
                       d, ws);
        double t1 = now_seconds();
        naive_backward(&nv, g[3], g[4], g[5], dout, q, k, v, out_naive);
        double t2 = now_seconds();
        keep_best(&fused_best, &naive_best, t0, t1, t2);
    }
    print_line(kernels, &nv, "backward", t, fused_best, naive_best,
               bwd_bytes, nv.p_bytes + nv.dp_bytes + nv.ws_bytes,
               grad_diff(g, n));

    /* Training: one forward, then one backward from its results. */
    fused_best = naive_best = (double)INFINITY;
    for (int r = 0; r < reps; r++) {
        double t0 = now_seconds();
        fused_forward(kernels, out, lse, q, k, v, t, d, ws);
        fused_backward(kernels, g[0], g[1], g[2], dout, q, k, v, out, lse, t,
                       d, ws);
        double t1 = now_seconds();
        naive_forward(&nv, out_naive, q, k, v);
        naive_backward(&nv, g[3], g[4], g[5], dout, q, k, v, out_naive);
        double t2 = now_seconds();
        keep_best(&fused_best, &naive_best, t0, t1, t2);
    }
    const float out_diff = max_diff(out, out_naive, n),
                g_diff = grad_diff(g, n),
                diff = g_diff > out_diff ? g_diff : out_diff;
    print_line(kernels, &nv, "forward_backward", t, fused_best, naive_best,
               bwd_bytes, nv.p_bytes + nv.dp_bytes + nv.ws_bytes, diff);

    naive_free(&nv);
    free(q), free(k), free(v), free(dout), free(out), free(out_naive),
        free(lse), free(ws);
    for (int i = 0; i < 6; i++)
        free(g[i]);
}

/* *copy = *kernels with the bf16 attention entries in place of the
 * float32 ones (as a context's kernels_bf16 has them); returns copy. */
static const tlmi_kernels *with_bf16(const tlmi_kernels *kernels,
                                     tlmi_kernels *copy) {
    *copy = *kernels;
    copy->attention_forward = kernels->attention_forward_bf16;
    copy->attention_backward = kernels->attention_backward_bf16;
    return copy;
}

int main(int argc, char **argv) {
    int quick = 0, only = -1, bf16 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = 1;
        else if (strcmp(argv[i], "--bf16") == 0)
            bf16 = 1;
        else if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc)
            only = tlmi_isa_from_name(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--bf16] [--isa "
                            "scalar|avx2|avx512|neon]\n", argv[0]);
            return 2;
        }
    }
    if (bf16)
        precision = "bf16";
    tlmi_kernels swapped;
    static const int64_t lengths[] = {64, 128, 256, 512, 1024};
    const int n_lengths = quick ? 2 : 5;
    int ran = 0;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        if (only >= 0 ? isa != only : isa == TLMI_ISA_SCALAR)
            continue;
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels == NULL)
            continue;
        for (int i = 0; i < n_lengths; i++)
            run_t(bf16 ? with_bf16(kernels, &swapped) : kernels, lengths[i],
                  quick);
        ran++;
    }
    if (ran == 0 && only < 0) /* no SIMD here: the scalar table */
        for (int i = 0; i < n_lengths; i++)
            run_t(bf16 ? with_bf16(tlmi_kernels_for(TLMI_ISA_SCALAR), &swapped)
                       : tlmi_kernels_for(TLMI_ISA_SCALAR),
                  lengths[i], quick);
    return 0;
}
