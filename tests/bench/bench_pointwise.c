/*
 * The pointwise benchmark: each entry of kernels/pointwise.h on
 * transformer shapes (GPT-2 small's width 768 and feedforward 3072 over
 * 1024 tokens, a char-level and a GPT-2 vocabulary for the
 * cross-entropy, a 10M-parameter AdamW step), for every ISA this CPU
 * runs, one thread. One JSON object per line:
 *
 *   {"bench":"pointwise","kernel":...,"isa":...,"rows":...,"width":...,
 *    "gbytes_per_s":...,"ratio_vs_scalar":...}
 *
 * gbytes_per_s counts the bytes the kernel must read and write once
 * (e.g. 8 per element for a forward activation: x in, out out); the ratio
 * is the scalar table's time over this ISA's, measured in the same run
 * (best of several repetitions, alternating ISAs: the machine is shared).
 *
 *   bench_pointwise           every case
 *   bench_pointwise --quick   smaller shapes (a smoke run)
 */
#define _POSIX_C_SOURCE 200809L

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kernels/dispatch.h"
#include "kernels/pointwise.h"

typedef struct buffers {
    float *x, *y, *dout, *dx, *out, *gain, *bias, *mean, *rstd, *m, *v;
    double *lse;
    int32_t *targets;
} buffers;

enum {
    K_GELU_F, K_GELU_B, K_SILU_F, K_SILU_B, K_SWIGLU_F, K_SWIGLU_B,
    K_RELU_F, K_RELU_B, K_LN_F, K_LN_BDX, K_LN_BPARAMS, K_RMS_F, K_RMS_BDX,
    K_SOFTMAX_F, K_SOFTMAX_B, K_CE_F, K_CE_B, K_ADAMW, K_ADD, K_ACC,
    K_COUNT
};

typedef struct bench_case {
    int kernel;
    const char *name;
    int64_t rows, width;
    double bytes_per_element;
} bench_case;

static const bench_case cases[] = {
    {K_GELU_F, "gelu_tanh_forward", 1024, 3072, 8},
    {K_GELU_B, "gelu_tanh_backward", 1024, 3072, 16},
    {K_SILU_F, "silu_forward", 1024, 3072, 8},
    {K_SILU_B, "silu_backward", 1024, 3072, 16},
    {K_SWIGLU_F, "swiglu_forward", 1024, 3072, 12},
    {K_SWIGLU_B, "swiglu_backward", 1024, 3072, 28},
    {K_RELU_F, "relu_forward", 1024, 3072, 8},
    {K_RELU_B, "relu_backward", 1024, 3072, 16},
    {K_LN_F, "layer_norm_forward", 1024, 768, 8},
    {K_LN_BDX, "layer_norm_backward_dx", 1024, 768, 16},
    {K_LN_BPARAMS, "layer_norm_backward_params", 1024, 768, 8},
    {K_RMS_F, "rms_norm_forward", 1024, 768, 8},
    {K_RMS_BDX, "rms_norm_backward_dx", 1024, 768, 16},
    {K_SOFTMAX_F, "softmax_forward", 1024, 1024, 8},
    {K_SOFTMAX_B, "softmax_backward", 1024, 1024, 16},
    {K_CE_F, "cross_entropy_lse", 768, 65, 4},
    {K_CE_B, "cross_entropy_backward", 768, 65, 12},
    {K_CE_F, "cross_entropy_lse", 64, 50257, 4},
    {K_CE_B, "cross_entropy_backward", 64, 50257, 12},
    {K_ADAMW, "adamw_update", 1, 10000000, 28},
    {K_ADD, "add", 1024, 768, 12},
    {K_ACC, "accumulate_scaled", 1024, 768, 12},
};

static void run(const tlmi_pointwise_kernels *k, int kernel, buffers *b,
                int64_t rows, int64_t w) {
    const int64_t n = rows * w;
    static const tlmi_adamw_coefficients adamw = {
        0.9f, 0.1f, 0.999f, 0.001f, 1e-3f, 1.0f, 1e-8f, 1.0f, 1.0f};
    switch (kernel) {
    case K_GELU_F: k->gelu_tanh_forward(b->out, b->x, n); break;
    case K_GELU_B: k->gelu_tanh_backward(b->dx, b->dout, b->x, n); break;
    case K_SILU_F: k->silu_forward(b->out, b->x, n); break;
    case K_SILU_B: k->silu_backward(b->dx, b->dout, b->x, n); break;
    case K_SWIGLU_F: k->swiglu_forward(b->out, b->x, b->y, n); break;
    case K_SWIGLU_B: k->swiglu_backward(b->dx, b->out, b->dout, b->x, b->y, n);
        break;
    case K_RELU_F: k->relu_forward(b->out, b->x, n); break;
    case K_RELU_B: k->relu_backward(b->dx, b->dout, b->x, n); break;
    case K_LN_F:
        k->layer_norm_forward(b->out, b->mean, b->rstd, b->x, b->gain, b->bias,
                              rows, w, 1e-5f);
        break;
    case K_LN_BDX:
        k->layer_norm_backward_dx(b->dx, b->dout, b->x, b->gain, b->mean,
                                  b->rstd, rows, w);
        break;
    case K_LN_BPARAMS:
        k->layer_norm_backward_params(b->m, b->v, b->dout, b->x, b->mean,
                                      b->rstd, rows, w, w);
        break;
    case K_RMS_F:
        k->rms_norm_forward(b->out, b->rstd, b->x, b->gain, rows, w, 1e-5f);
        break;
    case K_RMS_BDX:
        k->rms_norm_backward_dx(b->dx, b->dout, b->x, b->gain, b->rstd, rows, w);
        break;
    case K_SOFTMAX_F: k->softmax_forward(b->out, b->x, rows, w); break;
    case K_SOFTMAX_B: k->softmax_backward(b->dx, b->dout, b->y, rows, w); break;
    case K_CE_F: k->cross_entropy_lse(b->lse, b->x, b->targets, rows, w, -1);
        break;
    case K_CE_B:
        k->cross_entropy_backward(b->dx, 1e-3f, b->x, b->lse, b->targets, rows,
                                  w, -1);
        break;
    case K_ADAMW: k->adamw_update(b->out, b->dout, b->m, b->v, n, &adamw);
        break;
    case K_ADD: k->add(b->out, b->x, b->y, n); break;
    default: k->accumulate_scaled(b->dx, b->dout, 0.5f, n); break;
    }
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Seconds per call: calls repeated for about 20 ms, best of one batch. */
static double time_batch(const tlmi_pointwise_kernels *k, int kernel,
                         buffers *b, int64_t rows, int64_t w, int calls) {
    const double start = now();
    for (int i = 0; i < calls; i++)
        run(k, kernel, b, rows, w);
    return (now() - start) / (double)calls;
}

static float *alloc_floats(int64_t n, float lo, float hi, uint64_t *seed) {
    float *p = malloc((size_t)n * sizeof *p);
    if (p == NULL) {
        fprintf(stderr, "bench_pointwise: out of memory\n");
        exit(1);
    }
    for (int64_t i = 0; i < n; i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = lo + (hi - lo) * (float)((double)(*seed >> 40) /
                                        (double)(1ull << 24));
    }
    return p;
}

int main(int argc, char **argv) {
    const int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    int count = 0;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++)
        if (tlmi_kernels_for(isa) != NULL)
            tables[count++] = tlmi_kernels_for(isa);
    int64_t most = 0;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        if (cases[c].rows * cases[c].width > most)
            most = cases[c].rows * cases[c].width;
    uint64_t seed = 42;
    buffers b;
    b.x = alloc_floats(most, -4.0f, 4.0f, &seed);
    b.y = alloc_floats(most, 0.0f, 0.01f, &seed);
    b.dout = alloc_floats(most, -1.0f, 1.0f, &seed);
    b.dx = alloc_floats(most, -1.0f, 1.0f, &seed);
    b.out = alloc_floats(most, -1.0f, 1.0f, &seed);
    b.m = alloc_floats(most, -0.1f, 0.1f, &seed);
    b.v = alloc_floats(most, 0.0f, 0.1f, &seed);
    b.gain = alloc_floats(4096, 0.5f, 1.5f, &seed);
    b.bias = alloc_floats(4096, -0.5f, 0.5f, &seed);
    b.mean = alloc_floats(4096, -0.1f, 0.1f, &seed);
    b.rstd = alloc_floats(4096, 0.9f, 1.1f, &seed);
    b.lse = malloc(4096 * sizeof *b.lse);
    b.targets = malloc(4096 * sizeof *b.targets);
    if (b.lse == NULL || b.targets == NULL)
        return 1;
    for (int i = 0; i < 4096; i++) {
        b.lse[i] = 11.0;
        b.targets[i] = i % 61;
    }
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const bench_case *bc = &cases[c];
        int64_t rows = bc->rows, w = bc->width;
        if (quick) {
            if (rows > 64)
                rows = 64;
            else if (w > 100000)
                w = 100000;
        }
        const double bytes = bc->bytes_per_element * (double)(rows * w);
        /* calls per batch: about 20 ms on the scalar table */
        const double one = time_batch(&tlmi_pointwise_scalar, bc->kernel, &b,
                                      rows, w, 1);
        int calls = (int)(0.02 / (one > 1e-9 ? one : 1e-9));
        if (calls < 1)
            calls = 1;
        double best[TLMI_ISA_COUNT];
        for (int t = 0; t < count; t++)
            best[t] = 1e30;
        for (int rep = 0; rep < (quick ? 2 : 5); rep++)
            for (int t = 0; t < count; t++) {
                const double s = time_batch(tables[t]->pointwise, bc->kernel,
                                            &b, rows, w, calls);
                if (s < best[t])
                    best[t] = s;
            }
        for (int t = 0; t < count; t++)
            printf("{\"bench\":\"pointwise\",\"kernel\":\"%s\",\"isa\":\"%s\","
                   "\"rows\":%lld,\"width\":%lld,\"gbytes_per_s\":%.2f,"
                   "\"ratio_vs_scalar\":%.2f}\n",
                   bc->name, tables[t]->name, (long long)rows, (long long)w,
                   bytes / best[t] * 1e-9, best[0] / best[t]);
        fflush(stdout);
    }
    free(b.x), free(b.y), free(b.dout), free(b.dx), free(b.out), free(b.m);
    free(b.v), free(b.gain), free(b.bias), free(b.mean), free(b.rstd);
    free(b.lse), free(b.targets);
    return 0;
}
