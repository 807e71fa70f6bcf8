/*
 * The GEMM benchmark: tlm's kernels on the matrix products of three
 * transformer sizes, training (M = batch x context) and decoding (M = 1),
 * against OpenBLAS's cblas_sgemm on one thread when the build found it.
 * One JSON object per line on stdout; docs/performance.md explains them.
 *
 *   bench                 every SIMD ISA this CPU has, each in a child
 *                         process whose OpenBLAS is forced to the matching
 *                         core type (AVX2: Haswell, AVX-512: SkylakeX;
 *                         Debian's OpenBLAS misdetects recent CPUs) and
 *                         limited to one thread
 *   bench --isa NAME      one ISA (scalar, avx2, avx512, neon) in this
 *                         process, OpenBLAS as the environment set it
 *   bench --quick         fewer and smaller shapes (a smoke run)
 *   bench --filter TEXT   only the cases whose name contains TEXT
 *   bench --no-bf16       leave out the bf16 rows (below)
 *   bench --threads N     also time each product split over N threads
 *                         (default 2; 1 turns it off): a line with
 *                         "threads":N per case, with "speedup", its
 *                         throughput over the 1-thread run measured
 *                         alternately with it, and a geometric mean line
 *                         "gemm_threads_geomean"
 *
 * bf16 rows: for each training shape (M > 1), the bf16 product
 * (kernels/gemm_bf16.h: bf16 inputs, float32 sums) of the variant this
 * ISA's table chooses on this CPU, timed alternately with the float32
 * kernel: {"bench":"gemm_bf16", ..., "variant", "gflops",
 * "f32_gflops", "ratio"} (ratio: bf16 throughput over float32's), and a
 * geometric mean line "gemm_bf16_geomean".
 *
 * Times are the best of several repetitions (CLOCK_MONOTONIC), tlm and
 * OpenBLAS alternating; the machine is shared and noisy, so compare the
 * ratios measured in one run.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/host.h"
#include "base/threadpool.h"
#include "base/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_bf16.h"
#include "kernels/gemm_parallel.h"

#if defined(TLM_BENCH_OPENBLAS)
#include <cblas.h>
#endif

typedef struct bench_case {
    const char *name; /* model.layer.pass */
    int64_t m, n, k;
    int transpose_a, transpose_b, accumulate;
    /* Products per call, as tlm_matmul runs a [batch, M, K] input against
     * a 2-D weight: `batch` products of M rows sharing B (nn, nt), or, for
     * the weight's gradient (tn), sharing C and accumulating into it. */
    int batch;
} bench_case;

/* Linear layers as x [M, in] . W [in, out] (nn); their backward passes are
 * dX = dY . W^T (nt, accumulating) and dW = X^T . dY (tn, accumulating).
 * The GPT-2 output layer is tied to the embedding [vocab, 768]: x . E^T. */
static const bench_case all_cases[] = {
    /* 4 layers, 128 wide, ffn 512, vocab 65; batch 12 x context 64. */
    {"nano.qkv.fwd", 768, 384, 128, 0, 0, 0, 1},
    {"nano.proj.fwd", 768, 128, 128, 0, 0, 0, 1},
    {"nano.fc.fwd", 768, 512, 128, 0, 0, 0, 1},
    {"nano.fc2.fwd", 768, 128, 512, 0, 0, 0, 1},
    {"nano.head.fwd", 768, 65, 128, 0, 0, 0, 1},
    {"nano.fc.bwd_x", 768, 128, 512, 0, 1, 1, 1},
    {"nano.fc.bwd_w", 128, 512, 768, 1, 0, 1, 1},
    {"nano.qkv.decode", 1, 384, 128, 0, 0, 0, 1},
    {"nano.fc.decode", 1, 512, 128, 0, 0, 0, 1},
    {"nano.fc2.decode", 1, 128, 512, 0, 0, 0, 1},
    {"nano.head.decode", 1, 65, 128, 0, 0, 0, 1},
    /* The products nanoGPT's training step really runs on one thread:
     * each linear layer is 12 products of one sequence (M = 64) against
     * the shared weight, [out, in] and used transposed. */
    {"nanob.q.fwd", 64, 128, 128, 0, 1, 0, 12},
    {"nanob.fc.fwd", 64, 512, 128, 0, 1, 0, 12},
    {"nanob.fc2.fwd", 64, 128, 512, 0, 1, 0, 12},
    {"nanob.head.fwd", 64, 65, 128, 0, 1, 0, 12},
    {"nanob.q.bwd_x", 64, 128, 128, 0, 0, 1, 12},
    {"nanob.fc.bwd_x", 64, 128, 512, 0, 0, 1, 12},
    {"nanob.fc2.bwd_x", 64, 512, 128, 0, 0, 1, 12},
    {"nanob.head.bwd_x", 64, 128, 65, 0, 0, 1, 12},
    {"nanob.q.bwd_w", 128, 128, 64, 1, 0, 1, 12},
    {"nanob.fc.bwd_w", 512, 128, 64, 1, 0, 1, 12},
    {"nanob.fc2.bwd_w", 128, 512, 64, 1, 0, 1, 12},
    {"nanob.head.bwd_w", 65, 128, 64, 1, 0, 1, 12},
    /* 6 layers, 384 wide, ffn 1536, vocab 65; batch 16 x context 256. */
    {"l6d384.qkv.fwd", 4096, 1152, 384, 0, 0, 0, 1},
    {"l6d384.proj.fwd", 4096, 384, 384, 0, 0, 0, 1},
    {"l6d384.fc.fwd", 4096, 1536, 384, 0, 0, 0, 1},
    {"l6d384.fc2.fwd", 4096, 384, 1536, 0, 0, 0, 1},
    {"l6d384.head.fwd", 4096, 65, 384, 0, 0, 0, 1},
    {"l6d384.fc.bwd_x", 4096, 384, 1536, 0, 1, 1, 1},
    {"l6d384.fc.bwd_w", 384, 1536, 4096, 1, 0, 1, 1},
    {"l6d384.fc2.bwd_x", 4096, 1536, 384, 0, 1, 1, 1},
    {"l6d384.fc2.bwd_w", 1536, 384, 4096, 1, 0, 1, 1},
    {"l6d384.qkv.decode", 1, 1152, 384, 0, 0, 0, 1},
    {"l6d384.fc.decode", 1, 1536, 384, 0, 0, 0, 1},
    {"l6d384.fc2.decode", 1, 384, 1536, 0, 0, 0, 1},
    /* GPT-2 small: 768 wide, ffn 3072, vocab 50257; one sequence of 1024. */
    {"gpt2.qkv.fwd", 1024, 2304, 768, 0, 0, 0, 1},
    {"gpt2.fc.fwd", 1024, 3072, 768, 0, 0, 0, 1},
    {"gpt2.fc2.fwd", 1024, 768, 3072, 0, 0, 0, 1},
    {"gpt2.head.fwd", 1024, 50257, 768, 0, 1, 0, 1},
    {"gpt2.fc.bwd_x", 1024, 768, 3072, 0, 1, 1, 1},
    {"gpt2.fc.bwd_w", 768, 3072, 1024, 1, 0, 1, 1},
    {"gpt2.qkv.decode", 1, 2304, 768, 0, 0, 0, 1},
    {"gpt2.fc.decode", 1, 3072, 768, 0, 0, 0, 1},
    {"gpt2.fc2.decode", 1, 768, 3072, 0, 0, 0, 1},
    {"gpt2.head.decode", 1, 50257, 768, 0, 1, 0, 1},
};
#define N_CASES (sizeof all_cases / sizeof all_cases[0])

static const char *form_name(const bench_case *bc) {
    return bc->transpose_a ? "tn" : bc->transpose_b ? "nt" : "nn";
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Times `call_a` and `call_b` alternately (so that a burst of load from
 * elsewhere on the machine hits both alike) after one warm-up call of
 * each: at least 5 rounds and 0.5 s, at most 30 rounds or 6 s; `best_a`
 * and `best_b` are the fastest single calls. */
#define TIME_BOTH(best_a, call_a, best_b, call_b)                           \
    do {                                                                    \
        call_a;                                                             \
        call_b;                                                             \
        double total_ = 0.0;                                                \
        best_a = best_b = 1e300;                                            \
        for (int round_ = 0; round_ < 30; round_++) {                       \
            double t0_ = now_seconds();                                     \
            call_a;                                                         \
            double t1_ = now_seconds();                                     \
            call_b;                                                         \
            double t2_ = now_seconds();                                     \
            if (t1_ - t0_ < best_a)                                         \
                best_a = t1_ - t0_;                                         \
            if (t2_ - t1_ < best_b)                                         \
                best_b = t2_ - t1_;                                         \
            total_ += t2_ - t0_;                                            \
            if ((round_ >= 4 && total_ > 0.5) || total_ > 6.0)              \
                break;                                                      \
        }                                                                   \
    } while (0)

static float *random_floats(int64_t count, uint64_t seed) {
    float *x = malloc((size_t)count * sizeof *x);
    if (x == NULL) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < count; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 40) / (double)(1ull << 23) - 1.0);
    }
    return x;
}

static void *workspace_for(const tlmi_kernels *kernels, const bench_case *bc) {
    size_t bytes = kernels->gemm_workspace(bc->m, bc->n, bc->k,
                                           bc->transpose_a, bc->transpose_b);
    void *ws = NULL;
    if (bytes > 0 && posix_memalign(&ws, 64, bytes) != 0) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    return ws;
}

static const char *reference_coretype(void) {
    const char *coretype = getenv("OPENBLAS_CORETYPE");
    return coretype != NULL && *coretype != '\0' ? coretype : "default";
}

/* The bf16 row of one case (see the top of this file): the chosen bf16
 * variant against the float32 kernel, alternating. Adds log(ratio) to
 * *log_ratio and log(gflops) to *log_gflops. */
static void bench_bf16(const tlmi_kernels *kernels,
                       const tlmi_gemm_bf16_kernels *variant,
                       const bench_case *bc, const float *a, const float *b,
                       float *c, void *ws, double *log_ratio,
                       double *log_gflops) {
    const int64_t m = bc->m, n = bc->n, k = bc->k, batch = bc->batch;
    const int64_t a_step = m * k;
    const int64_t b_step = bc->transpose_a ? k * n : 0;
    const int64_t c_step = bc->transpose_a ? 0 : m * n;
    const size_t bytes = variant->gemm_workspace(m, n, k, bc->transpose_a,
                                                 bc->transpose_b);
    void *bws = NULL;
    if (bytes > 0 && posix_memalign(&bws, 64, bytes) != 0) {
        fprintf(stderr, "bench: out of memory\n");
        exit(1);
    }
    double best_bf16, best_f32;
    TIME_BOTH(best_bf16,
              for (int64_t i_ = 0; i_ < batch; i_++)
                  variant->gemm(c + i_ * c_step, a + i_ * a_step,
                                b + i_ * b_step, NULL, m, n, k,
                                bc->transpose_a, bc->transpose_b,
                                bc->accumulate, bws),
              best_f32,
              for (int64_t i_ = 0; i_ < batch; i_++)
                  kernels->gemm(c + i_ * c_step, a + i_ * a_step,
                                b + i_ * b_step, NULL, m, n, k,
                                bc->transpose_a, bc->transpose_b,
                                bc->accumulate, ws));
    const double flops = 2.0 * (double)m * (double)n * (double)k * (double)batch;
    const double gflops = flops / best_bf16 * 1e-9;
    const double f32_gflops = flops / best_f32 * 1e-9;
    *log_ratio += log(gflops / f32_gflops);
    *log_gflops += log(gflops);
    printf("{\"bench\":\"gemm_bf16\",\"case\":\"%s\",\"isa\":\"%s\","
           "\"variant\":\"%s\",\"m\":%lld,\"n\":%lld,\"k\":%lld,"
           "\"form\":\"%s\",\"batch\":%d,\"threads\":1,\"gflops\":%.2f,"
           "\"f32_gflops\":%.2f,\"ratio\":%.3f}\n",
           bc->name, kernels->name, variant->name, (long long)m,
           (long long)n, (long long)k, form_name(bc), bc->batch, gflops,
           f32_gflops, gflops / f32_gflops);
    fflush(stdout);
    free(bws);
}

static int run_isa(int isa, int quick, const char *filter, int threads,
                   int with_bf16) {
    const tlmi_kernels *kernels = tlmi_kernels_for(isa);
    if (kernels == NULL) {
        fprintf(stderr, "bench: this build or CPU has no %s kernels\n",
                tlmi_isa_name(isa) ? tlmi_isa_name(isa) : "such");
        return 1;
    }
#if defined(TLM_BENCH_OPENBLAS)
    openblas_set_num_threads(1);
    const char *ref_core = openblas_get_corename();
#endif
    /* Sums of logarithms for the geometric means: all shapes, then the
     * training (M > 1) and decoding (M = 1) ones apart. */
    double log_ratio = 0.0, log_gflops = 0.0, log_ref = 0.0;
    double log_ratio_part[2] = {0.0, 0.0};
    int counted = 0, rated = 0, rated_part[2] = {0, 0};
    /* The pool for the threaded runs, and their speedups. */
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_threadpool *pool = NULL;
    if (threads > 1 && (tlmi_threadpool_create(&pool, &host, threads, "bench") != 0 ||
                        tlmi_threadpool_start(pool, "bench") != 0)) {
        fprintf(stderr, "bench: %s\n", host.last_error);
        return 1;
    }
    double log_speedup = 0.0, log_speedup_part[2] = {0.0, 0.0};
    int sped = 0, sped_part[2] = {0, 0};
    /* The bf16 variant a context on this CPU would get with this table. */
    const tlmi_gemm_bf16_kernels *bf16 =
        tlmi_gemm_bf16_choose(kernels, tlmi_cpu_detect());
    double log_bf16_ratio = 0.0, log_bf16_gflops = 0.0;
    int bf16_counted = 0;
    for (size_t ci = 0; ci < N_CASES; ci++) {
        const bench_case *bc = &all_cases[ci];
        if (filter != NULL && strstr(bc->name, filter) == NULL)
            continue;
        if (quick && (double)bc->m * (double)bc->n * (double)bc->k > 2e8)
            continue;
        const int64_t m = bc->m, n = bc->n, k = bc->k, batch = bc->batch;
        /* Per product: A advances by a_step, B by b_step, C by c_step. */
        const int64_t a_step = m * k;
        const int64_t b_step = bc->transpose_a ? k * n : 0;
        const int64_t c_step = bc->transpose_a ? 0 : m * n;
        float *a = random_floats(a_step * batch, 1 + ci);
        float *b = random_floats(k * n + b_step * (batch - 1), 1000 + ci);
        float *c = random_floats(m * n + c_step * (batch - 1), 2000 + ci);
        void *ws = workspace_for(kernels, bc);
        const double flops =
            2.0 * (double)m * (double)n * (double)k * (double)batch;

#if defined(TLM_BENCH_OPENBLAS)
        const int lda = (int)(bc->transpose_a ? m : k);
        const int ldb = (int)(bc->transpose_b ? k : n);
#define REFERENCE_CALL                                                      \
    for (int64_t i_ = 0; i_ < batch; i_++)                                  \
    cblas_sgemm(CblasRowMajor, bc->transpose_a ? CblasTrans : CblasNoTrans, \
                bc->transpose_b ? CblasTrans : CblasNoTrans, (int)m, (int)n, \
                (int)k, 1.0f, a + i_ * a_step, lda, b + i_ * b_step, ldb,   \
                bc->accumulate ? 1.0f : 0.0f, c + i_ * c_step, (int)n)
#else
#define REFERENCE_CALL (void)0
#endif
        double best, ref_best;
        TIME_BOTH(best,
                  for (int64_t i_ = 0; i_ < batch; i_++)
                      kernels->gemm(c + i_ * c_step, a + i_ * a_step,
                                    b + i_ * b_step, NULL, m, n, k,
                                    bc->transpose_a, bc->transpose_b,
                                    bc->accumulate, ws),
                  ref_best, REFERENCE_CALL);
        (void)ref_best;
        const double gflops = flops / best * 1e-9;
        log_gflops += log(gflops);
        counted++;
        printf("{\"bench\":\"gemm\",\"case\":\"%s\",\"isa\":\"%s\","
               "\"m\":%lld,\"n\":%lld,\"k\":%lld,\"form\":\"%s\","
               "\"batch\":%d,\"threads\":1,\"gflops\":%.2f",
               bc->name, kernels->name, (long long)m, (long long)n,
               (long long)k, form_name(bc), bc->batch, gflops);
#if defined(TLM_BENCH_OPENBLAS)
        {
            const double ref_gflops = flops / ref_best * 1e-9;
            const double ratio = gflops / ref_gflops;
            log_ratio += log(ratio);
            log_ref += log(ref_gflops);
            rated++;
            log_ratio_part[m == 1] += log(ratio);
            rated_part[m == 1]++;
            printf(",\"ref\":\"openblas\",\"ref_coretype\":\"%s\","
                   "\"ref_core\":\"%s\",\"ref_gflops\":%.2f,\"ratio\":%.3f",
                   reference_coretype(), ref_core, ref_gflops, ratio);
        }
#else
        printf(",\"ref\":null,\"ref_gflops\":null,\"ratio\":null");
#endif
        printf("}\n");
        fflush(stdout);
        if (with_bf16 && m > 1) {
            bench_bf16(kernels, bf16, bc, a, b, c, ws, &log_bf16_ratio,
                       &log_bf16_gflops);
            bf16_counted++;
        }
        if (pool != NULL) {
            /* The same product over the pool, each thread with its own
             * workspace slot, timed alternately with one thread. */
            const size_t need = kernels->gemm_workspace(
                m, n, k, bc->transpose_a, bc->transpose_b);
            const size_t bytes = tlmi_gemm_parallel_workspace(need, threads);
            void *tws = NULL;
            if (bytes > 0 && posix_memalign(&tws, 64, bytes) != 0) {
                fprintf(stderr, "bench: out of memory\n");
                return 1;
            }
            /* Products back to back, as in a forward pass (the workers
             * stay awake between them): runs of `reps` calls, reps such
             * that a run takes about 1 ms on one thread. */
            int reps = (int)(1e-3 / best);
            reps = reps < 1 ? 1 : reps > 1000 ? 1000 : reps;
            double many, one;
            TIME_BOTH(many,
                      for (int r_ = 0; r_ < reps; r_++)
                          for (int64_t i_ = 0; i_ < batch; i_++)
                              tlmi_gemm_parallel(
                                  pool, kernels, c + i_ * c_step,
                                  a + i_ * a_step, b + i_ * b_step, NULL, m,
                                  n, k, bc->transpose_a, bc->transpose_b,
                                  bc->accumulate, tws, bytes),
                      one,
                      for (int r_ = 0; r_ < reps; r_++)
                          for (int64_t i_ = 0; i_ < batch; i_++)
                              kernels->gemm(c + i_ * c_step, a + i_ * a_step,
                                            b + i_ * b_step, NULL, m, n, k,
                                            bc->transpose_a, bc->transpose_b,
                                            bc->accumulate, ws));
            many /= reps;
            one /= reps;
            const double speedup = one / many;
            log_speedup += log(speedup);
            log_speedup_part[m == 1] += log(speedup);
            sped++;
            sped_part[m == 1]++;
            printf("{\"bench\":\"gemm\",\"case\":\"%s\",\"isa\":\"%s\","
                   "\"m\":%lld,\"n\":%lld,\"k\":%lld,\"form\":\"%s\","
                   "\"threads\":%d,\"gflops\":%.2f,\"gflops_1thread\":%.2f,"
                   "\"speedup\":%.3f}\n",
                   bc->name, kernels->name, (long long)m, (long long)n,
                   (long long)k, form_name(bc), threads,
                   flops / many * 1e-9, flops / one * 1e-9, speedup);
            fflush(stdout);
            free(tws);
        }
        free(a);
        free(b);
        free(c);
        free(ws);
    }
    if (sped > 0) {
        printf("{\"bench\":\"gemm_threads_geomean\",\"isa\":\"%s\","
               "\"threads\":%d,\"shapes\":%d,\"speedup\":%.3f",
               kernels->name, threads, sped, exp(log_speedup / sped));
        for (int part = 0; part < 2; part++)
            if (sped_part[part] > 0)
                printf(",\"%s_speedup\":%.3f", part ? "decode" : "train",
                       exp(log_speedup_part[part] / sped_part[part]));
        printf("}\n");
    }
    if (bf16_counted > 0)
        printf("{\"bench\":\"gemm_bf16_geomean\",\"isa\":\"%s\","
               "\"variant\":\"%s\",\"shapes\":%d,\"threads\":1,"
               "\"gflops\":%.2f,\"ratio\":%.3f}\n",
               kernels->name, bf16->name, bf16_counted,
               exp(log_bf16_gflops / bf16_counted),
               exp(log_bf16_ratio / bf16_counted));
    tlmi_threadpool_free(pool);
    if (counted == 0)
        return 0;
    printf("{\"bench\":\"gemm_geomean\",\"isa\":\"%s\",\"shapes\":%d,"
           "\"threads\":1,\"gflops\":%.2f",
           kernels->name, counted, exp(log_gflops / counted));
    if (rated > 0) {
        printf(",\"ref\":\"openblas\",\"ref_coretype\":\"%s\","
               "\"ref_gflops\":%.2f,\"ratio\":%.3f",
               reference_coretype(), exp(log_ref / rated),
               exp(log_ratio / rated));
        for (int part = 0; part < 2; part++)
            if (rated_part[part] > 0)
                printf(",\"%s_shapes\":%d,\"%s_ratio\":%.3f",
                       part ? "decode" : "train", rated_part[part],
                       part ? "decode" : "train",
                       exp(log_ratio_part[part] / rated_part[part]));
    } else
        printf(",\"ref\":null,\"ref_gflops\":null,\"ratio\":null");
    printf("}\n");
    fflush(stdout);
    return 0;
}

/* Runs this program again with --isa and OpenBLAS set up for it. */
static int run_child(const char *self, int isa, const char *coretype,
                     int argc, char **argv) {
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench: fork");
        return 1;
    }
    if (pid == 0) {
        char *args[16];
        int n = 0;
        args[n++] = (char *)self;
        args[n++] = (char *)"--isa";
        args[n++] = (char *)tlmi_isa_name(isa);
        for (int i = 1; i < argc && n < 15; i++)
            args[n++] = argv[i];
        args[n] = NULL;
        setenv("OPENBLAS_CORETYPE", coretype, 1);
        setenv("OPENBLAS_NUM_THREADS", "1", 1);
        setenv("OMP_NUM_THREADS", "1", 1);
        execvp(self, args);
        perror("bench: exec");
        _exit(127);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0)
        return 1;
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int isa = -1, quick = 0, threads = 2, with_bf16 = 1;
    const char *filter = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--isa") == 0 && i + 1 < argc) {
            isa = tlmi_isa_from_name(argv[++i]);
            if (isa < 0) {
                fprintf(stderr, "bench: unknown ISA %s\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
            threads = atoi(argv[++i]);
            if (threads < 1 || threads > 64) {
                fprintf(stderr, "bench: --threads %s is not 1..64\n", argv[i]);
                return 2;
            }
        } else if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--no-bf16") == 0) {
            with_bf16 = 0;
        } else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
            filter = argv[++i];
        } else {
            fprintf(stderr,
                    "usage: %s [--isa scalar|avx2|avx512|neon] [--quick] "
                    "[--filter TEXT] [--threads N] [--no-bf16]\n",
                    argv[0]);
            return 2;
        }
    }
    if (isa >= 0)
        return run_isa(isa, quick, filter, threads, with_bf16);

    /* Every SIMD ISA of this CPU, each against its OpenBLAS core type. */
    static const struct {
        int isa;
        const char *coretype;
    } plan[] = {
        {TLMI_ISA_AVX2, "Haswell"},
        {TLMI_ISA_AVX512, "SkylakeX"},
        {TLMI_ISA_NEON, "ARMV8"},
    };
    /* Forward --quick, --filter, --threads and --no-bf16 to the children. */
    char *forwarded[10];
    char threads_text[16];
    snprintf(threads_text, sizeof threads_text, "%d", threads);
    int n_forwarded = 1;
    forwarded[0] = argv[0];
    if (quick)
        forwarded[n_forwarded++] = (char *)"--quick";
    if (filter != NULL) {
        forwarded[n_forwarded++] = (char *)"--filter";
        forwarded[n_forwarded++] = (char *)filter;
    }
    forwarded[n_forwarded++] = (char *)"--threads";
    forwarded[n_forwarded++] = threads_text;
    if (!with_bf16)
        forwarded[n_forwarded++] = (char *)"--no-bf16";
    forwarded[n_forwarded] = NULL;
    int failed = 0, ran = 0;
    for (size_t i = 0; i < sizeof plan / sizeof plan[0]; i++) {
        if (tlmi_kernels_for(plan[i].isa) == NULL)
            continue;
        ran++;
        failed |= run_child(argv[0], plan[i].isa, plan[i].coretype,
                            n_forwarded, forwarded);
    }
    if (ran == 0)
        failed |= run_isa(TLMI_ISA_SCALAR, quick, filter, threads, with_bf16);
    return failed;
}
