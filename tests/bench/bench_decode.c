/*
 * Decoding speed with the KV cache, for the Llama-style shapes small
 * models are benchmarked with (RMS norm, rotary positions, SwiGLU, no
 * biases, untied output): ~15M and ~110M parameters. Prints JSON lines:
 *   {"bench":"memory_bandwidth","gb_per_s":...}
 *   {"bench":"decode","model":"15M",...,"tokens_per_s":...,
 *    "weight_bytes_per_token":...,"bandwidth_fraction":...}
 *   {"bench":"prefill","model":"15M",...,"tokens_per_s":...}
 * Decoding one token reads every weight once, so weight bytes per token
 * over the machine's streaming bandwidth bounds the decode speed; the
 * fraction says how close tlm gets. Threads: 1 (tlm's kernels are single
 * threaded today).
 *   bench_decode [--quick]   (--quick: the 15M model only, fewer tokens)
 */
#define _POSIX_C_SOURCE 200809L

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tlm.h"

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Streaming read bandwidth over a buffer larger than the caches, best of
 * a few passes: what a matrix-vector product over the weights can get. */
static double measure_bandwidth(size_t bytes) {
    size_t n = bytes / sizeof(uint64_t);
    uint64_t *buffer = malloc(n * sizeof *buffer);
    if (buffer == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        buffer[i] = (uint64_t)i * 0x9e3779b97f4a7c15ull;
    double best = 0;
    volatile uint64_t sink = 0;
    for (int pass = 0; pass < 5; pass++) {
        double start = now_seconds();
        /* Eight independent integer chains: the loads, not the adds, are
         * the limit. */
        uint64_t s[8] = {0};
        for (size_t i = 0; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++)
                s[j] ^= buffer[i + j];
        sink = s[0] ^ s[1] ^ s[2] ^ s[3] ^ s[4] ^ s[5] ^ s[6] ^ s[7];
        double rate = (double)bytes / (now_seconds() - start) / 1e9;
        best = rate > best ? rate : best;
    }
    (void)sink;
    free(buffer);
    return best;
}

typedef struct shape {
    const char *name;
    int32_t d_model, layers, heads, ffn, vocab, context;
} shape;

static int run(const shape *sh, int tokens, int prompt, double bandwidth) {
    tlm_context *ctx = NULL;
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = sh->vocab;
    c.d_model = sh->d_model;
    c.n_heads = sh->heads;
    c.d_ff = sh->ffn;
    c.n_decoder_layers = sh->layers;
    c.max_context = sh->context;
    c.position = TLM_POSITION_ROTARY;
    c.norm = TLM_NORM_RMS;
    c.activation = TLM_ACTIVATION_SWIGLU;
    c.bias = 0;
    c.tied_output = 0;
    tlm_model *m = NULL;
    tlm_session *s = NULL;
    tlm_session_params sp;
    tlm_session_params_init(&sp);
    sp.chunk_tokens = prompt;
    if (tlm_context_create(&ctx, NULL) != TLM_OK ||
        tlm_model_create(&m, ctx, &c) != TLM_OK ||
        tlm_session_create(&s, m, &sp) != TLM_OK) {
        fprintf(stderr, "bench_decode: %s\n", tlm_last_error());
        return 1;
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
    /* Decoding: one token at a time after the prompt. */
    double start = now_seconds();
    for (int i = 0; i < tokens; i++)
        if (tlm_session_decode(s, ids + prompt + i, 1, logits, 1) != TLM_OK) {
            fprintf(stderr, "bench_decode: %s\n", tlm_session_last_error(s));
            return 1;
        }
    const double decode_time = now_seconds() - start;
    const double per_second = tokens / decode_time;
    const double weight_bytes = 4.0 * (double)parameters;
    printf("{\"bench\":\"decode\",\"model\":\"%s\",\"parameters\":%lld,\"d_model\":%d,"
           "\"layers\":%d,\"heads\":%d,\"ffn\":%d,\"vocab\":%d,\"context\":%d,"
           "\"threads\":1,\"isa\":\"%s\",\"tokens\":%d,\"tokens_per_s\":%.2f,"
           "\"weight_bytes_per_token\":%.0f,\"gb_per_s\":%.2f,"
           "\"bandwidth_fraction\":%.3f}\n",
           sh->name, (long long)parameters, sh->d_model, sh->layers, sh->heads, sh->ffn,
           sh->vocab, sh->context, "dispatched", tokens, per_second, weight_bytes,
           weight_bytes * per_second / 1e9,
           bandwidth > 0 ? weight_bytes * per_second / 1e9 / bandwidth : 0.0);
    printf("{\"bench\":\"prefill\",\"model\":\"%s\",\"threads\":1,\"prompt_tokens\":%d,"
           "\"tokens_per_s\":%.1f}\n",
           sh->name, prompt, prompt / best_prefill);
    fflush(stdout);
    free(ids);
    free(logits);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return 0;
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const double bandwidth = measure_bandwidth((size_t)512 << 20);
    printf("{\"bench\":\"memory_bandwidth\",\"buffer_mib\":512,\"threads\":1,"
           "\"gb_per_s\":%.2f}\n", bandwidth);
    const shape shapes[2] = {
        {"15M", 288, 6, 6, 768, 32000, 256},
        {"110M", 768, 12, 12, 2048, 32000, 1024},
    };
    int status = run(&shapes[0], quick ? 32 : 128, 64, bandwidth);
    if (!quick && status == 0)
        status = run(&shapes[1], 32, 128, bandwidth);
    return status;
}
