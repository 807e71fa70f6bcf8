/*
 * Decoding speed with the KV cache, for the Llama-style shapes small
 * models are benchmarked with (RMS norm, rotary positions, SwiGLU, no
 * biases, untied output): ~15M and ~110M parameters. Prints JSON lines:
 *   {"bench":"memory_bandwidth","threads":T,"gb_per_s":...}
 *   {"bench":"decode","model":"15M","threads":T,...,"tokens_per_s":...,
 *    "weight_bytes_per_token":...,"bandwidth_fraction":...,
 *    "weights_fit_in_llc":...}
 *   {"bench":"prefill","model":"15M","threads":T,...,"tokens_per_s":...}
 *   {"bench":"decode_threads","model":"15M","threads":T,"speedup":...}
 *   {"bench":"decode_gqa","model":"15M","heads":6,"kv_heads":K,
 *    "kv_cache_bytes":...,"tokens_per_s":...}
 * for T = 1 and T = every core (the session's own pool); the decode_gqa
 * rows (one thread) decode the same shape with K = H, H/2, ..., 1
 * key/value heads (grouped-query attention) late in a long context, so
 * that the KV cache, n_heads / K times smaller, is a visible part of what
 * each token reads. Decoding one
 * token reads every weight once, so weight bytes per token over the
 * machine's streaming bandwidth bounds the decode speed; the fraction
 * says how close tlm gets, against the bandwidth measured with as many
 * threads as the decode line. The bandwidth probe reads a buffer of 4x
 * the last-level cache (1 to 4 GiB; this machine's virtual L3 says 508
 * MiB, so the 512 MiB probe of before partly hit it), five passes, best
 * of. A model whose weights fit in the last-level cache can still beat
 * that bandwidth (weights_fit_in_llc says when). same_size_fraction
 * compares with the same read loop over a buffer the size of the weights,
 * in the same cache regime as decoding.
 *   bench_decode [--quick] [--gqa]   (--quick: the 15M model only, fewer
 *   tokens; --gqa: only the decode_gqa rows)
 */
#define _POSIX_C_SOURCE 200809L

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tlm.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
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

/* Decodes with a session of `threads` threads; returns tokens/s (0 on
 * failure). */
static double run(const shape *sh, int tokens, int prompt, double bandwidth,
                  int threads, size_t llc) {
    tlm_context *ctx = NULL;
    tlm_model_config c = llama_config(sh, 0);
    tlm_model *m = NULL;
    tlm_session *s = NULL;
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.chunk_tokens = prompt;
    sp.n_threads = threads;
    if (tlm_context_create(&ctx, NULL) != TLM_OK ||
        tlm_model_create(&m, ctx, &c) != TLM_OK ||
        tlm_session_create(&s, m, &sp) != TLM_OK) {
        fprintf(stderr, "bench_decode: %s\n", tlm_last_error());
        return 0;
    }
    const int64_t parameters = tlm_model_parameter_count(m);
    int32_t *ids = malloc((size_t)(prompt + tokens) * sizeof *ids);
    float *logits = malloc((size_t)sh->vocab * sizeof *logits);
    for (int i = 0; i < prompt + tokens; i++)
        ids[i] = (int32_t)((i * 7919) % sh->vocab);
    /* Prefill: the prompt as one batched pass. */
    double best_prefill = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        tlm_session_reset(s);
        double start = now_seconds();
        tlm_session_decode(s, ids, prompt, logits, 1);
        double t = now_seconds() - start;
        best_prefill = t < best_prefill ? t : best_prefill;
    }
    /* Decoding: one token at a time after the prompt, best of three
     * runs (the machine is shared). */
    double decode_time = 1e30;
    for (int rep = 0; rep < 3; rep++) {
        tlm_session_reset(s);
        tlm_session_decode(s, ids, prompt, logits, 1);
        double start = now_seconds();
        for (int i = 0; i < tokens; i++)
            if (tlm_session_decode(s, ids + prompt + i, 1, logits, 1) !=
                TLM_OK) {
                fprintf(stderr, "bench_decode: %s\n",
                        tlm_session_last_error(s));
                return 0;
            }
        const double t = now_seconds() - start;
        decode_time = t < decode_time ? t : decode_time;
    }
    const double per_second = tokens / decode_time;
    /* Every weight is read once per token except the token embedding
     * table, of which decoding reads one row. */
    const double weight_bytes =
        4.0 * ((double)parameters - (double)sh->vocab * sh->d_model + sh->d_model);
    /* The same read loop over a buffer as large as the weights: the
     * streaming rate in the cache regime decoding is really in (a cache
     * holding part of the weights between tokens helps both alike). */
    const double same_size = measure_bandwidth((size_t)weight_bytes, threads);
    printf("{\"bench\":\"decode\",\"model\":\"%s\",\"parameters\":%lld,\"d_model\":%d,"
           "\"layers\":%d,\"heads\":%d,\"ffn\":%d,\"vocab\":%d,\"context\":%d,"
           "\"threads\":%d,\"isa\":\"%s\",\"tokens\":%d,\"tokens_per_s\":%.2f,"
           "\"weight_bytes_per_token\":%.0f,\"gb_per_s\":%.2f,"
           "\"bandwidth_fraction\":%.3f,\"weights_fit_in_llc\":%s,"
           "\"same_size_gb_per_s\":%.2f,\"same_size_fraction\":%.3f}\n",
           sh->name, (long long)parameters, sh->d_model, sh->layers, sh->heads, sh->ffn,
           sh->vocab, sh->context, threads, "dispatched", tokens, per_second,
           weight_bytes,
           weight_bytes * per_second / 1e9,
           bandwidth > 0 ? weight_bytes * per_second / 1e9 / bandwidth : 0.0,
           llc > 0 && weight_bytes <= (double)llc ? "true" : "false",
           same_size,
           same_size > 0 ? weight_bytes * per_second / 1e9 / same_size : 0.0);
    printf("{\"bench\":\"prefill\",\"model\":\"%s\",\"threads\":%d,\"prompt_tokens\":%d,"
           "\"tokens_per_s\":%.1f}\n",
           sh->name, threads, prompt, prompt / best_prefill);
    fflush(stdout);
    free(ids);
    free(logits);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return per_second;
}

/* The decode_gqa rows of `sh`: every divisor of its heads, largest
 * first. */
static int gqa_rows(const shape *sh, int tokens) {
    for (int32_t kv = sh->heads; kv >= 1; kv--)
        if (sh->heads % kv == 0 && run_gqa(sh, kv, tokens) <= 0)
            return 1;
    return 0;
}

int main(int argc, char **argv) {
    int quick = 0, gqa_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            quick = 1;
        } else if (strcmp(argv[i], "--gqa") == 0) {
            gqa_only = 1;
        } else {
            fprintf(stderr, "usage: bench_decode [--quick] [--gqa]\n");
            return 2;
        }
    }
    const shape shapes[2] = {
        {"15M", 288, 6, 6, 768, 32000, 256},
        {"110M", 768, 12, 12, 2048, 32000, 1024},
    };
    if (gqa_only) {
        for (int si = 0; si < (quick ? 1 : 2); si++)
            if (gqa_rows(&shapes[si], si == 0 ? 64 : 32) != 0)
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
    double bandwidth[2] = {0, 0};
    for (int i = 0; i < (all > 1 ? 2 : 1); i++) {
        bandwidth[i] = measure_bandwidth(buffer, counts[i]);
        printf("{\"bench\":\"memory_bandwidth\",\"buffer_mib\":%zu,"
               "\"llc_mib\":%zu,\"threads\":%d,\"gb_per_s\":%.2f}\n",
               buffer >> 20, llc >> 20, counts[i], bandwidth[i]);
    }
    for (int si = 0; si < (quick ? 1 : 2); si++) {
        const int tokens = si == 0 ? (quick ? 32 : 128) : 32;
        const int prompt = si == 0 ? 64 : 128;
        double rate[2] = {0, 0};
        for (int i = 0; i < (all > 1 ? 2 : 1); i++) {
            rate[i] = run(&shapes[si], tokens, prompt, bandwidth[i],
                          counts[i], llc);
            if (rate[i] <= 0)
                return 1;
        }
        if (all > 1)
            printf("{\"bench\":\"decode_threads\",\"model\":\"%s\","
                   "\"threads\":%d,\"speedup\":%.3f}\n",
                   shapes[si].name, all, rate[1] / rate[0]);
        fflush(stdout);
    }
    for (int si = 0; si < (quick ? 1 : 2); si++)
        if (gqa_rows(&shapes[si], si == 0 ? 64 : 32) != 0)
            return 1;
    return 0;
}
