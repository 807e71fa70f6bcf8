/*
 * Decoding speed with the KV cache, for the Llama-style shapes small
 * models are benchmarked with (RMS norm, rotary positions, SwiGLU, no
 * biases, untied output): ~15M and ~110M parameters, with the matrices in
 * float32, bf16 and int8 (tlm_model_quantize of the same random model).
 * Prints JSON lines:
 *   {"bench":"memory_bandwidth","threads":T,"gb_per_s":...}
 *   {"bench":"decode","model":"15M","weights":"int8","threads":T,...,
 *    "isa":...,"weights_kernel":...,"tokens_per_s":...,
 *    "weight_bytes_per_token":...,"bandwidth_fraction":...,
 *    "weights_fit_in_llc":...}
 *   {"bench":"prefill","model":"15M","weights":"int8","threads":T,...,
 *    "tokens_per_s":...}
 *   {"bench":"decode_formats","model":"15M","threads":T,
 *    "decode_bf16_over_f32":...,"decode_int8_over_f32":...,
 *    "prefill_bf16_over_f32":...,"prefill_int8_over_f32":...,
 *    "cpu_decode_int8_over_f32":...,...}
 *   {"bench":"decode_threads","model":"15M","weights":"int8","threads":T,
 *    "speedup":...}
 *   {"bench":"session_memory","model":"15M","weights":"int8",
 *    "load":"build"|"copy"|"mmap","peak_rss_bytes":...,"ratio_to_f32":...}
 *   {"bench":"decode_gqa","model":"15M","heads":6,"kv_heads":K,
 *    "kv_cache_bytes":...,"tokens_per_s":...}
 * for T = 1 and T = every core (the session's own pool). Per shape and
 * thread count the three formats are timed in rounds (default 5) that
 * alternate them (the first format of a round moves by one each round),
 * each round a prefill (the prompt as one batched pass) and a decode (one
 * token at a time after the prompt) of each format; the lines give the
 * medians, and decode_formats their ratios. At one thread the session
 * runs in the calling thread, and the lines also give the rates in that
 * thread's CPU time (cpu_tokens_per_s, and the cpu_ ratios): on a shared
 * machine the wall-clock rates count the time other processes take from
 * the core, the CPU-time ones do not (both count their use of the caches
 * and of memory bandwidth); on an idle machine the two agree. With more
 * threads cpu_tokens_per_s is 0 and the cpu_ ratios are left out. "isa" is the float32 kernel
 * table of the context, "weights_kernel" the variant of the quantized
 * products the session uses (lib/kernels/weights.h; "gemm" for float32).
 *
 * Decoding one token reads every weight once (the token embedding table:
 * one row), so weight bytes per token (the tensors' real bytes: 4, 2 or
 * 36/32 per weight) over the machine's streaming bandwidth bounds the
 * decode speed; the fraction says how close tlm gets, against the
 * bandwidth measured with as many threads as the decode line. The
 * bandwidth probe reads a buffer of 4x the last-level cache (1 to 4 GiB),
 * five passes, best of. A model whose weights fit in the last-level cache
 * can still beat that bandwidth (weights_fit_in_llc says when).
 * same_size_fraction compares with the same read loop over a buffer the
 * size of the weights, in the same cache regime as decoding.
 *
 * session_memory: the peak resident memory (VmHWM, Linux) of a fresh
 * process (this program run again) that gets the model, creates a
 * one-thread session, runs the prompt and decodes the tokens;
 * ratio_to_f32 is over the float32 model's peak got the same way:
 *  - load "build": the model made in memory (float32: tlm_model_create;
 *    bf16, int8: tlm_model_quantize of the float32 model, which is then
 *    freed and the peak reset), as a program holds a model it made;
 *  - "copy": tlm_model_load of a .tlm file saved in the format (a float32
 *    load is trainable: it holds zeroed gradients beside the weights);
 *  - "mmap": the same file memory-mapped (its pages count once read).
 * baseline_bytes is the process's resident memory before it starts (the
 * program itself), after_load_bytes once it holds the model.
 *
 * The decode_gqa rows (float32, one thread) decode the same shape with
 * K = H, H/2, ..., 1 key/value heads (grouped-query attention) late in a
 * long context, so that the KV cache, n_heads / K times smaller, is a
 * visible part of what each token reads.
 *
 *   bench_decode [--quick] [--gqa] [--no-gqa] [--no-memory] [--rounds N]
 *                [--shapes 15M,110M]
 *   (--quick: the 15M model only, fewer tokens, 3 rounds; --gqa: only the
 *   decode_gqa rows; --no-gqa / --no-memory: leave those rows out)
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "autodiff/context.h"
#include "kernels/dispatch.h"
#include "kernels/weights.h"
#include "tlm.h"

/* The weight formats timed, float32 first (the ratios' reference). */
#define N_FORMATS 3
static const int32_t format_codes[N_FORMATS] = {TLM_WEIGHTS_F32, TLM_WEIGHTS_BF16,
                                               TLM_WEIGHTS_INT8};
static const char *const format_names[N_FORMATS] = {"f32", "bf16", "int8"};
#define MAX_ROUNDS 15

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* CPU time of the calling thread (0 where there is no such clock). A
 * one-thread session runs in the calling thread, so this is its work
 * alone: on a shared machine, time other processes take from the core
 * does not count (their use of caches and memory bandwidth still does). */
static double thread_cpu_seconds(void) {
#if defined(CLOCK_THREAD_CPUTIME_ID)
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) == 0)
        return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
#endif
    return 0;
}

/* Eight independent sum chains over [begin, end): the loads, not the
 * adds, are the limit. The widest loads the CPU has (AVX-512, AVX2 on
 * x86-64, through GCC/clang vector types), as decoding's own kernels use:
 * a narrower loop under-measures what one core can stream. */
typedef struct stream_part {
    const float *buffer;
    size_t begin, end; /* in floats, multiples of 128 */
    float result;
} stream_part;

#if defined(__GNUC__) && defined(__x86_64__)
typedef float v16f __attribute__((vector_size(64)));
__attribute__((target("avx512f"))) static float stream_avx512(const float *p, size_t n) {
    v16f s[8] = {{0}};
    for (size_t i = 0; i + 128 <= n; i += 128)
        for (int j = 0; j < 8; j++) {
            v16f x;
            memcpy(&x, p + i + 16 * (size_t)j, sizeof x);
            s[j] += x;
        }
    float total = 0;
    for (int j = 0; j < 8; j++)
        for (int k = 0; k < 16; k++)
            total += s[j][k];
    return total;
}
typedef float v8f __attribute__((vector_size(32)));
__attribute__((target("avx2"))) static float stream_avx2(const float *p, size_t n) {
    v8f s[8] = {{0}};
    for (size_t i = 0; i + 64 <= n; i += 64)
        for (int j = 0; j < 8; j++) {
            v8f x;
            memcpy(&x, p + i + 8 * (size_t)j, sizeof x);
            s[j] += x;
        }
    float total = 0;
    for (int j = 0; j < 8; j++)
        for (int k = 0; k < 8; k++)
            total += s[j][k];
    return total;
}
#endif

static float stream_plain(const float *p, size_t n) {
    float s[8] = {0};
    for (size_t i = 0; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++)
            s[j] += p[i + (size_t)j];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

static void *stream_read(void *arg) {
    stream_part *p = arg;
    const float *from = p->buffer + p->begin;
    const size_t n = p->end - p->begin;
#if defined(__GNUC__) && defined(__x86_64__)
    if (__builtin_cpu_supports("avx512f"))
        p->result = stream_avx512(from, n);
    else if (__builtin_cpu_supports("avx2"))
        p->result = stream_avx2(from, n);
    else
#endif
        p->result = stream_plain(from, n);
    return NULL;
}

/* Streaming read bandwidth over `bytes` with `threads` threads (each a
 * contiguous part), best of five passes: what a matrix-vector product
 * over the weights can get. */
static double measure_bandwidth(size_t bytes, int threads) {
    size_t n = bytes / sizeof(float) / 128 * 128;
    float *buffer = malloc(n * sizeof *buffer);
    if (buffer == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        buffer[i] = (float)(i & 1023) * 1e-3f;
    stream_part parts[64];
    pthread_t ids[64];
    if (threads > 64)
        threads = 64;
    double best = 0;
    volatile float sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double start = now_seconds();
        for (int t = 0; t < threads; t++) {
            parts[t] = (stream_part){buffer, n / 128 * (size_t)t / (size_t)threads * 128,
                                     n / 128 * (size_t)(t + 1) / (size_t)threads * 128, 0};
            if (t > 0 && pthread_create(&ids[t], NULL, stream_read, &parts[t]))
                stream_read(&parts[t]);
        }
        stream_read(&parts[0]);
        for (int t = 1; t < threads; t++)
            pthread_join(ids[t], NULL);
        double rate = (double)(n * sizeof(float)) / (now_seconds() - start) / 1e9;
        for (int t = 0; t < threads; t++)
            sink += parts[t].result;
        best = rate > best ? rate : best;
    }
    (void)sink;
    free(buffer);
    return best;
}

/* The last-level cache in bytes, or 0 when unknown. */
static size_t last_level_cache(void) {
#if defined(_SC_LEVEL3_CACHE_SIZE)
    long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
    if (l3 > 0)
        return (size_t)l3;
#endif
#if defined(_SC_LEVEL2_CACHE_SIZE)
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    if (l2 > 0)
        return (size_t)l2;
#endif
    return 0;
}

typedef struct shape {
    const char *name;
    int32_t d_model, layers, heads, ffn, vocab, context;
} shape;

/* The Llama-style configuration of `sh` with `kv_heads` key/value heads
 * (0: one per query head). */
static tlm_model_config llama_config(const shape *sh, int32_t kv_heads) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = sh->vocab;
    c.d_model = sh->d_model;
    c.n_heads = sh->heads;
    c.n_kv_heads = kv_heads;
    c.d_ff = sh->ffn;
    c.n_decoder_layers = sh->layers;
    c.max_context = sh->context;
    c.position = TLM_POSITION_ROTARY;
    c.norm = TLM_NORM_RMS;
    c.activation = TLM_ACTIVATION_SWIGLU;
    c.bias = 0;
    c.tied_output = 0;
    return c;
}

/* Grouped-query decoding: `sh` with `kv_heads` key/value heads, one
 * thread, `tokens` tokens after a prompt that fills the context up to
 * them (so the cache is nearly full), best of three runs. Prints one
 * decode_gqa line; returns tokens/s (0 on failure). */
static double run_gqa(const shape *sh, int32_t kv_heads, int tokens) {
    const int prompt = sh->context - tokens;
    tlm_model_config c = llama_config(sh, kv_heads);
    tlm_context *ctx = NULL;
    tlm_model *m = NULL;
    tlm_session *s = NULL;
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.n_threads = 1;
    if (tlm_context_create(&ctx, NULL) != TLM_OK ||
        tlm_model_create(&m, ctx, &c) != TLM_OK ||
        tlm_session_create(&s, m, &sp) != TLM_OK) {
        fprintf(stderr, "bench_decode: %s\n", tlm_last_error());
        return 0;
    }
    int64_t session_bytes = 0;
    tlm_model_memory_estimate(m, TLM_MEMORY_INFERENCE, 1, sh->context,
                              &session_bytes);
    session_bytes -= 4 * tlm_model_parameter_count(m);
    /* Keys and values, float32, of every layer's key/value heads. */
    const int64_t head_dim = sh->d_model / sh->heads;
    const int64_t per_position = 2LL * sh->layers * kv_heads * head_dim * 4;
    int32_t *ids = malloc((size_t)sh->context * sizeof *ids);
    float *logits = malloc((size_t)sh->vocab * sizeof *logits);
    if (ids == NULL || logits == NULL)
        return 0;
    for (int i = 0; i < sh->context; i++)
        ids[i] = (int32_t)((i * 7919) % sh->vocab);
    double best = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        tlm_session_reset(s);
        tlm_session_decode(s, ids, prompt, logits, 1);
        const double start = now_seconds();
        for (int i = 0; i < tokens; i++)
            if (tlm_session_decode(s, ids + prompt + i, 1, logits, 1) != TLM_OK) {
                fprintf(stderr, "bench_decode: %s\n", tlm_session_last_error(s));
                return 0;
            }
        const double t = now_seconds() - start;
        best = t < best ? t : best;
    }
    const double per_second = tokens / best;
    printf("{\"bench\":\"decode_gqa\",\"model\":\"%s\",\"heads\":%d,"
           "\"kv_heads\":%d,\"threads\":1,\"positions\":\"%d..%d\","
           "\"kv_cache_bytes_per_position\":%lld,\"kv_cache_bytes\":%lld,"
           "\"session_bytes\":%lld,\"parameters\":%lld,\"tokens_per_s\":%.2f}\n",
           sh->name, (int)sh->heads, (int)kv_heads, prompt, sh->context - 1,
           (long long)per_position, (long long)(per_position * sh->context),
           (long long)session_bytes, (long long)tlm_model_parameter_count(m),
           per_second);
    fflush(stdout);
    free(ids);
    free(logits);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return per_second;
}

static int compare_doubles(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The median of values[0..n), n <= MAX_ROUNDS (values left as they are). */
static double median(const double *values, int n) {
    double sorted[MAX_ROUNDS];
    if (n <= 0 || n > MAX_ROUNDS)
        return 0;
    memcpy(sorted, values, (size_t)n * sizeof *sorted);
    qsort(sorted, (size_t)n, sizeof *sorted, compare_doubles);
    return n % 2 ? sorted[n / 2] : 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]);
}

/* Bytes that decoding one token reads from the model's parameters: each
 * tensor's real bytes (float32: 4 per value; bf16: 2; int8: 32 values and
 * their float32 scale per group, lib/kernels/weights.h), except the token
 * embedding of an untied model, of which one row is read. 0 on failure. */
static double decode_weight_bytes(const tlm_model *m) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    if (tlm_model_get_config(m, &c) != TLM_OK)
        return 0;
    const int32_t count = tlm_model_parameter_tensor_count(m);
    double total = 0;
    for (int32_t i = 0; i < count; i++) {
        const char *name = NULL;
        tlm_tensor *t = NULL;
        int64_t dims[8];
        if (tlm_model_parameter(m, i, &name, &t) != TLM_OK)
            return 0;
        const int32_t rank = tlm_tensor_shape(t, dims, 8);
        const int64_t numel = tlm_tensor_numel(t);
        const int32_t dtype = tlm_tensor_dtype(t);
        if (rank < 1 || numel < 0)
            return 0;
        double bytes = 4.0 * (double)numel;
        if ((dtype == TLM_DTYPE_BF16 || dtype == TLM_DTYPE_Q8) && dims[rank - 1] > 0) {
            const int64_t cols = dims[rank - 1];
            const size_t b = tlmi_weights_bytes(
                dtype == TLM_DTYPE_BF16 ? TLM_WEIGHTS_BF16 : TLM_WEIGHTS_INT8,
                numel / cols, cols);
            bytes = b == SIZE_MAX ? 0 : (double)b;
        }
        if (strcmp(name, "token_embedding.weight") == 0 && !c.tied_output && dims[0] > 0)
            bytes /= (double)dims[0];
        total += bytes;
    }
    return total;
}

/* The variant of the products with `format` weights a session of a model
 * in `ctx` runs (the choice session.c makes); "gemm" for float32. */
static const char *weights_kernel_name(const tlm_context *ctx, int32_t format) {
    if (format == TLM_WEIGHTS_F32)
        return "gemm";
    const tlmi_weight_kernels *wk =
        tlmi_weight_kernels_choose(ctx->kernels, format, ctx->features);
    return wk != NULL && wk->name != NULL ? wk->name : "unknown";
}

/* What one shape's formats share at one thread count. */
typedef struct format_set {
    const shape *sh;
    tlm_model *models[N_FORMATS];
    double weight_bytes[N_FORMATS];
    const char *kernel[N_FORMATS];
    const char *isa;
    int tokens, prompt, rounds;
} format_set;

/* The formats of `set` with sessions of `threads` threads, timed in rounds
 * that alternate them; prints a decode and a prefill line per format (the
 * medians) and the decode_formats line. rate[f] receives format f's median
 * decode tokens/s. Returns 0, or 1 on failure (the reason printed). */
static int run_threads(const format_set *set, int threads, double bandwidth, size_t llc,
                       double *rate) {
    const shape *sh = set->sh;
    const int tokens = set->tokens, prompt = set->prompt, rounds = set->rounds;
    tlm_session *sessions[N_FORMATS] = {NULL};
    double decode[N_FORMATS][MAX_ROUNDS], prefill[N_FORMATS][MAX_ROUNDS];
    double decode_cpu[N_FORMATS][MAX_ROUNDS], prefill_cpu[N_FORMATS][MAX_ROUNDS];
    double decode_median[N_FORMATS] = {0}, prefill_median[N_FORMATS] = {0};
    double decode_cpu_median[N_FORMATS] = {0}, prefill_cpu_median[N_FORMATS] = {0};
    int32_t *ids = malloc((size_t)(prompt + tokens) * sizeof *ids);
    float *logits = malloc((size_t)sh->vocab * sizeof *logits);
    int failed = ids == NULL || logits == NULL;
    for (int i = 0; !failed && i < prompt + tokens; i++)
        ids[i] = (int32_t)((i * 7919) % sh->vocab);
    for (int f = 0; f < N_FORMATS && !failed; f++) {
        tlm_session_params sp;
        tlm_session_params_init(&sp);
        sp.chunk_tokens = prompt;
        sp.n_threads = threads;
        if (tlm_session_create(&sessions[f], set->models[f], &sp) != TLM_OK) {
            fprintf(stderr, "bench_decode: %s: %s\n", format_names[f], tlm_last_error());
            failed = 1;
        }
    }
    /* A first pass of each, untimed: the pool's threads start and the
     * cache's pages are touched. */
    for (int f = 0; f < N_FORMATS && !failed; f++) {
        tlm_session_reset(sessions[f]);
        failed = tlm_session_decode(sessions[f], ids, (size_t)prompt, logits, 1) != TLM_OK ||
                 tlm_session_decode(sessions[f], ids + prompt, 1, logits, 1) != TLM_OK;
    }
    /* Round r starts with format r mod 3: each format is timed first,
     * second and third alike, so that a change of load on the shared
     * machine touches them all. */
    for (int r = 0; r < rounds && !failed; r++)
        for (int i = 0; i < N_FORMATS && !failed; i++) {
            const int f = (i + r) % N_FORMATS;
            tlm_session *s = sessions[f];
            tlm_session_reset(s);
            double start = now_seconds(), cpu_start = thread_cpu_seconds();
            failed = tlm_session_decode(s, ids, (size_t)prompt, logits, 1) != TLM_OK;
            prefill[f][r] = prompt / (now_seconds() - start);
            prefill_cpu[f][r] = prompt / (thread_cpu_seconds() - cpu_start + 1e-12);
            tlm_session_reset(s);
            failed = failed || tlm_session_decode(s, ids, (size_t)prompt, logits, 1) != TLM_OK;
            start = now_seconds();
            cpu_start = thread_cpu_seconds();
            for (int t = 0; t < tokens && !failed; t++)
                failed = tlm_session_decode(s, ids + prompt + t, 1, logits, 1) != TLM_OK;
            decode[f][r] = tokens / (now_seconds() - start);
            decode_cpu[f][r] = tokens / (thread_cpu_seconds() - cpu_start + 1e-12);
            if (failed)
                fprintf(stderr, "bench_decode: %s: %s\n", format_names[f],
                        tlm_session_last_error(s));
        }
    for (int f = 0; f < N_FORMATS && !failed; f++) {
        decode_median[f] = median(decode[f], rounds);
        prefill_median[f] = median(prefill[f], rounds);
        decode_cpu_median[f] = median(decode_cpu[f], rounds);
        prefill_cpu_median[f] = median(prefill_cpu[f], rounds);
        rate[f] = decode_median[f];
        const double bytes = set->weight_bytes[f];
        const double gb_per_s = bytes * decode_median[f] / 1e9;
        /* The same read loop over a buffer as large as the weights: the
         * streaming rate in the cache regime decoding is really in (a
         * cache holding part of the weights between tokens helps both
         * alike). */
        const double same_size = measure_bandwidth((size_t)bytes, threads);
        printf("{\"bench\":\"decode\",\"model\":\"%s\",\"weights\":\"%s\","
               "\"parameters\":%lld,\"d_model\":%d,\"layers\":%d,\"heads\":%d,"
               "\"ffn\":%d,\"vocab\":%d,\"context\":%d,\"threads\":%d,\"isa\":\"%s\","
               "\"weights_kernel\":\"%s\",\"rounds\":%d,\"prompt_tokens\":%d,"
               "\"tokens\":%d,\"tokens_per_s\":%.2f,\"weight_bytes_per_token\":%.0f,"
               "\"gb_per_s\":%.2f,\"bandwidth_fraction\":%.3f,\"weights_fit_in_llc\":%s,"
               "\"same_size_gb_per_s\":%.2f,\"same_size_fraction\":%.3f,"
               "\"cpu_tokens_per_s\":%.2f}\n",
               sh->name, format_names[f],
               (long long)tlm_model_parameter_count(set->models[f]), sh->d_model,
               sh->layers, sh->heads, sh->ffn, sh->vocab, sh->context, threads, set->isa,
               set->kernel[f], rounds, prompt, tokens, decode_median[f], bytes, gb_per_s,
               bandwidth > 0 ? gb_per_s / bandwidth : 0.0,
               llc > 0 && bytes <= (double)llc ? "true" : "false", same_size,
               same_size > 0 ? gb_per_s / same_size : 0.0,
               threads == 1 ? decode_cpu_median[f] : 0.0);
        printf("{\"bench\":\"prefill\",\"model\":\"%s\",\"weights\":\"%s\",\"threads\":%d,"
               "\"isa\":\"%s\",\"weights_kernel\":\"%s\",\"rounds\":%d,"
               "\"prompt_tokens\":%d,\"tokens_per_s\":%.1f,\"cpu_tokens_per_s\":%.1f}\n",
               sh->name, format_names[f], threads, set->isa, set->kernel[f], rounds, prompt,
               prefill_median[f], threads == 1 ? prefill_cpu_median[f] : 0.0);
        fflush(stdout);
    }
    if (!failed) {
        printf("{\"bench\":\"decode_formats\",\"model\":\"%s\",\"threads\":%d,\"rounds\":%d",
               sh->name, threads, rounds);
        for (int f = 1; f < N_FORMATS; f++)
            printf(",\"decode_%s_over_f32\":%.3f,\"prefill_%s_over_f32\":%.3f",
                   format_names[f], decode_median[f] / decode_median[0], format_names[f],
                   prefill_median[f] / prefill_median[0]);
        if (threads == 1) /* the same ratios in CPU time (see thread_cpu_seconds) */
            for (int f = 1; f < N_FORMATS; f++)
                printf(",\"cpu_decode_%s_over_f32\":%.3f,\"cpu_prefill_%s_over_f32\":%.3f",
                       format_names[f], decode_cpu_median[f] / decode_cpu_median[0],
                       format_names[f], prefill_cpu_median[f] / prefill_cpu_median[0]);
        printf("}\n");
        fflush(stdout);
    }
    for (int f = 0; f < N_FORMATS; f++)
        tlm_session_free(sessions[f]);
    free(ids);
    free(logits);
    return failed;
}

/* The kB value of a "Field:" line of /proc/self/status (VmRSS, VmHWM), or
 * -1 where there is no such file (not Linux). */
static long long status_kib(const char *field) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long long value = -1;
    const size_t length = strlen(field);
    while (f != NULL && fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, field, length) == 0 && line[length] == ':') {
            if (sscanf(line + length + 1, "%lld", &value) != 1)
                value = -1;
            break;
        }
    if (f != NULL)
        fclose(f);
    return value;
}

/* Lets the peak resident memory (VmHWM) start again from the current
 * resident memory (Linux 4.0 and later); 0 or -1. */
static int reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f == NULL)
        return -1;
    const int wrote = fputs("5", f) >= 0;
    return fclose(f) == 0 && wrote ? 0 : -1;
}

/* The child of session_memory (this program run with --session-memory):
 * the model in `format` ("f32", "bf16", "int8"), by `load`:
 *  - "build": made in memory, as a program that creates or quantizes a
 *    model holds it: `path` (the float32 file) memory-mapped, then a
 *    float32 model created with its configuration (tlm_model_create: no
 *    gradients) or tlm_model_quantize of it; the mapped model freed and
 *    the peak reset, so that only the model made counts;
 *  - "copy": tlm_model_load of `path` (the file in that format);
 *  - "mmap": the same, memory-mapped (the default checksums);
 * then a one-thread session over `prompt` ids and `tokens` more one at a
 * time. Prints "baseline after_load peak" (resident bytes) on stdout. */
static int session_memory_child(const char *path, const char *load, const char *format,
                                int prompt, int tokens) {
    const long long baseline = status_kib("VmRSS");
    tlm_context *ctx = NULL;
    tlm_model *m = NULL, *source = NULL;
    tlm_session *s = NULL;
    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    const int build = strcmp(load, "build") == 0;
    lp.memory_map = build || strcmp(load, "mmap") == 0;
    lp.verify_checksums = !build;
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.n_threads = 1;
    sp.chunk_tokens = prompt;
    tlm_model_config c;
    tlm_model_config_init(&c);
    int32_t code = -1;
    for (int f = 0; f < N_FORMATS; f++)
        if (strcmp(format, format_names[f]) == 0)
            code = format_codes[f];
    int status = code < 0 ? TLM_E_INVALID : tlm_context_create(&ctx, NULL);
    if (status == TLM_OK)
        status = tlm_model_load(build ? &source : &m, ctx, path, &lp);
    if (status == TLM_OK && build) {
        status = tlm_model_get_config(source, &c);
        if (status == TLM_OK)
            status = code == TLM_WEIGHTS_F32 ? tlm_model_create(&m, ctx, &c)
                                             : tlm_model_quantize(&m, source, code);
        tlm_model_free(source);
        if (status == TLM_OK && reset_peak_rss() != 0)
            status = TLM_E_IO;
    }
    const long long after_load = status_kib("VmRSS");
    if (status == TLM_OK)
        status = tlm_session_create(&s, m, &sp);
    if (status == TLM_OK)
        status = tlm_model_get_config(m, &c);
    int32_t *ids = malloc((size_t)(prompt + tokens) * sizeof *ids);
    float *logits = status == TLM_OK ? malloc((size_t)c.vocab_size * sizeof *logits) : NULL;
    if (status == TLM_OK && (ids == NULL || logits == NULL))
        status = TLM_E_NOMEM;
    for (int i = 0; status == TLM_OK && i < prompt + tokens; i++)
        ids[i] = (int32_t)((i * 7919) % c.vocab_size);
    if (status == TLM_OK)
        status = tlm_session_decode(s, ids, (size_t)prompt, logits, 1);
    for (int i = 0; status == TLM_OK && i < tokens; i++)
        status = tlm_session_decode(s, ids + prompt + i, 1, logits, 1);
    const long long peak = status_kib("VmHWM");
    if (status == TLM_OK)
        printf("%lld %lld %lld\n", baseline * 1024, after_load * 1024, peak * 1024);
    else
        fprintf(stderr, "bench_decode --session-memory %s %s %s: %s\n", path, load, format,
                s != NULL ? tlm_session_last_error(s) : tlm_last_error());
    free(ids);
    free(logits);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return status == TLM_OK ? 0 : 1;
}

/* Runs this program again (a fresh process, so that nothing of this one's
 * memory counts) as session_memory_child; bytes[0..3) receives its
 * baseline, after-load and peak resident bytes. Returns 0 or -1. */
static int session_memory(const char *path, const char *load, const char *format,
                          int prompt, int tokens, long long bytes[3]) {
    char prompt_text[16], tokens_text[16];
    snprintf(prompt_text, sizeof prompt_text, "%d", prompt);
    snprintf(tokens_text, sizeof tokens_text, "%d", tokens);
    int out[2];
    if (pipe(out) != 0)
        return -1;
    fflush(stdout);
    const pid_t pid = fork();
    if (pid < 0) {
        close(out[0]);
        close(out[1]);
        return -1;
    }
    if (pid == 0) {
        dup2(out[1], STDOUT_FILENO);
        close(out[0]);
        close(out[1]);
        execl("/proc/self/exe", "bench_decode", "--session-memory", path, load, format,
              prompt_text, tokens_text, (char *)NULL);
        _exit(127);
    }
    close(out[1]);
    FILE *in = fdopen(out[0], "r");
    int got = 0;
    if (in != NULL) {
        got = fscanf(in, "%lld %lld %lld", &bytes[0], &bytes[1], &bytes[2]);
        fclose(in);
    } else {
        close(out[0]);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return got == 3 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* The session_memory lines of `set`'s formats: each model saved in its
 * format to a temporary directory, then loaded by a fresh process per
 * format and load mode. Returns 0, or 1 on failure. */
static int memory_rows(const format_set *set) {
    if (status_kib("VmHWM") < 0) {
        fprintf(stderr, "bench_decode: no /proc/self/status: no session_memory lines\n");
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[4096], paths[N_FORMATS][4200];
    snprintf(dir, sizeof dir, "%s/tlm-bench-decode.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("bench_decode: mkdtemp");
        return 1;
    }
    int failed = 0, saved = 0;
    for (; saved < N_FORMATS && !failed; saved++) {
        snprintf(paths[saved], sizeof paths[saved], "%s/%s.tlm", dir, format_names[saved]);
        if (tlm_model_save(set->models[saved], paths[saved]) != TLM_OK) {
            fprintf(stderr, "bench_decode: %s\n", tlm_last_error());
            failed = 1;
        }
    }
    static const char *const loads[3] = {"build", "copy", "mmap"};
    for (int l = 0; l < 3 && !failed; l++) {
        long long bytes[N_FORMATS][3];
        for (int f = 0; f < N_FORMATS && !failed; f++) {
            /* "build" makes every format from the float32 file. */
            failed = session_memory(paths[l == 0 ? 0 : f], loads[l], format_names[f],
                                    set->prompt, set->tokens, bytes[f]) != 0;
            if (failed) {
                fprintf(stderr, "bench_decode: the session_memory child failed on %s\n",
                        paths[f]);
                break;
            }
            printf("{\"bench\":\"session_memory\",\"model\":\"%s\",\"weights\":\"%s\","
                   "\"load\":\"%s\",\"threads\":1,\"positions\":%d,\"context\":%d,"
                   "\"baseline_bytes\":%lld,\"after_load_bytes\":%lld,"
                   "\"peak_rss_bytes\":%lld,\"ratio_to_f32\":%.3f}\n",
                   set->sh->name, format_names[f], loads[l], set->prompt + set->tokens,
                   set->sh->context, bytes[f][0], bytes[f][1], bytes[f][2],
                   bytes[0][2] > 0 ? (double)bytes[f][2] / (double)bytes[0][2] : 0.0);
            fflush(stdout);
        }
    }
    for (int f = 0; f < saved; f++)
        remove(paths[f]);
    rmdir(dir);
    return failed;
}

/* Every row of one shape: the model in float32 (random weights), bf16
 * and int8 (tlm_model_quantize of it), each thread count of `counts`.
 * Returns 0, or 1 on failure. */
static int run_shape(const shape *sh, int tokens, int prompt, int rounds, const int *counts,
                     int n_counts, const double *bandwidth, size_t llc, int memory) {
    format_set set;
    memset(&set, 0, sizeof set);
    set.sh = sh;
    set.tokens = tokens;
    set.prompt = prompt;
    set.rounds = rounds;
    tlm_context *ctx = NULL;
    tlm_model_config c = llama_config(sh, 0);
    int failed = tlm_context_create(&ctx, NULL) != TLM_OK ||
                 tlm_model_create(&set.models[0], ctx, &c) != TLM_OK;
    for (int f = 1; f < N_FORMATS && !failed; f++)
        failed = tlm_model_quantize(&set.models[f], set.models[0], format_codes[f]) != TLM_OK;
    if (failed)
        fprintf(stderr, "bench_decode: %s\n", tlm_last_error());
    for (int f = 0; f < N_FORMATS && !failed; f++) {
        set.weight_bytes[f] = decode_weight_bytes(set.models[f]);
        set.kernel[f] = weights_kernel_name(ctx, format_codes[f]);
        failed = set.weight_bytes[f] <= 0 ||
                 tlm_model_weight_format(set.models[f]) != format_codes[f];
        if (failed)
            fprintf(stderr, "bench_decode: the %s model is not what was asked\n",
                    format_names[f]);
    }
    if (!failed) {
        const char *isa = tlmi_isa_name(ctx->kernels->isa);
        set.isa = isa != NULL ? isa : "unknown";
    }
    double rate[4][N_FORMATS];
    for (int i = 0; i < n_counts && i < 4 && !failed; i++)
        failed = run_threads(&set, counts[i], bandwidth[i], llc, rate[i]);
    for (int i = 1; i < n_counts && i < 4 && !failed; i++)
        for (int f = 0; f < N_FORMATS; f++)
            printf("{\"bench\":\"decode_threads\",\"model\":\"%s\",\"weights\":\"%s\","
                   "\"threads\":%d,\"speedup\":%.3f}\n",
                   sh->name, format_names[f], counts[i], rate[i][f] / rate[0][f]);
    fflush(stdout);
    if (memory && !failed)
        failed = memory_rows(&set);
    for (int f = N_FORMATS - 1; f >= 0; f--)
        tlm_model_free(set.models[f]);
    tlm_context_free(ctx);
    return failed;
}

/* The decode_gqa rows of `sh`: every divisor of its heads, largest
 * first. */
static int gqa_rows(const shape *sh, int tokens) {
    for (int32_t kv = sh->heads; kv >= 1; kv--)
        if (sh->heads % kv == 0 && run_gqa(sh, kv, tokens) <= 0)
            return 1;
    return 0;
}

static int usage(void) {
    fprintf(stderr, "usage: bench_decode [--quick] [--gqa] [--no-gqa] [--no-memory] "
                    "[--rounds N] [--shapes 15M,110M]\n");
    return 2;
}

int main(int argc, char **argv) {
    int quick = 0, gqa_only = 0, gqa = 1, memory = 1, rounds = 0;
    const char *shape_list = "15M,110M";
    if (argc == 7 && strcmp(argv[1], "--session-memory") == 0)
        return session_memory_child(argv[2], argv[3], argv[4], atoi(argv[5]), atoi(argv[6]));
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--gqa") == 0) {
            gqa_only = 1;
        } else if (strcmp(argv[i], "--no-gqa") == 0) {
            gqa = 0;
        } else if (strcmp(argv[i], "--no-memory") == 0) {
            memory = 0;
        } else if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
            rounds = atoi(argv[++i]);
            if (rounds < 1 || rounds > MAX_ROUNDS) {
                fprintf(stderr, "bench_decode: --rounds expects 1..%d\n", MAX_ROUNDS);
                return 2;
            }
        } else if (strcmp(argv[i], "--shapes") == 0 && i + 1 < argc) {
            shape_list = argv[++i];
        } else {
            return usage();
        }
    }
    if (rounds == 0)
        rounds = quick ? 3 : 5;
    const shape shapes[2] = {
        {"15M", 288, 6, 6, 768, 32000, 256},
        {"110M", 768, 12, 12, 2048, 32000, 1024},
    };
    int wanted[2];
    for (int si = 0; si < 2; si++) {
        /* A name in the comma-separated list (so that "15M" is not found
         * inside "115M"). */
        const size_t n = strlen(shapes[si].name);
        wanted[si] = 0;
        for (const char *p = shape_list; (p = strstr(p, shapes[si].name)) != NULL; p += n)
            if ((p == shape_list || p[-1] == ',') && (p[n] == ',' || p[n] == '\0'))
                wanted[si] = 1;
        if (quick && si > 0)
            wanted[si] = 0;
    }
    if (gqa_only) {
        for (int si = 0; si < 2; si++)
            if (wanted[si] && gqa_rows(&shapes[si], si == 0 ? 64 : 32) != 0)
                return 1;
        return 0;
    }
    tlm_context *probe = NULL;
    if (tlm_context_create(&probe, NULL) != TLM_OK) {
        fprintf(stderr, "bench_decode: %s\n", tlm_last_error());
        return 1;
    }
    const int all = tlm_context_thread_count(probe);
    tlm_context_free(probe);
    const size_t llc = last_level_cache();
    size_t buffer = llc * 4;
    buffer = buffer < ((size_t)1 << 30) ? (size_t)1 << 30
             : buffer > ((size_t)4 << 30) ? (size_t)4 << 30 : buffer;
    const int counts[2] = {1, all};
    const int n_counts = all > 1 ? 2 : 1;
    double bandwidth[2] = {0, 0};
    for (int i = 0; i < n_counts; i++) {
        bandwidth[i] = measure_bandwidth(buffer, counts[i]);
        printf("{\"bench\":\"memory_bandwidth\",\"buffer_mib\":%zu,"
               "\"llc_mib\":%zu,\"threads\":%d,\"gb_per_s\":%.2f}\n",
               buffer >> 20, llc >> 20, counts[i], bandwidth[i]);
    }
    fflush(stdout);
    /* 128 prompt positions in one pass, then 128 (15M; 32 with --quick)
     * or 64 (110M) tokens one at a time. */
    for (int si = 0; si < 2; si++)
        if (wanted[si] && run_shape(&shapes[si], si == 0 ? (quick ? 32 : 128) : 64, 128,
                                    rounds, counts, n_counts, bandwidth, llc, memory) != 0)
            return 1;
    for (int si = 0; si < 2 && gqa; si++)
        if (wanted[si] && gqa_rows(&shapes[si], si == 0 ? 64 : 32) != 0)
            return 1;
    return 0;
}
