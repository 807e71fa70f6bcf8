/*
 * The training run of the training benchmarks (bench_train,
 * time_to_quality), through the public API only: a character-level
 * decoder-only GPT as nanoGPT's model.py builds it (GELU, layer norm,
 * learned positions, no biases, output tied to the token embedding) and
 * nanoGPT's optimizer (AdamW, betas 0.9/0.99, weight decay 0.1, gradient
 * clipping at 1) with a linear warm-up and cosine decay to min_lr.
 */
#ifndef TLM_BENCH_GPT_H
#define TLM_BENCH_GPT_H

#include <stdint.h>

#include "bench_text.h"
#include "tlm.h"

/* What may differ between the benchmarks' runs. */
typedef struct bench_gpt_recipe {
    int32_t layers, heads, width, context;
    int gelu_exact;          /* 1: erf GELU (nanoGPT's nn.GELU()); 0: tanh form */
    float dropout;           /* after the embedding and every sub-layer */
    uint64_t seed;           /* initialisation, batches and dropout */
    int32_t threads;         /* 0: the library's default */
    int32_t batch, accumulation;
    float lr, min_lr;
    int32_t warmup_steps;    /* below decay_end_step */
    int32_t decay_end_step;  /* where the cosine reaches min_lr */
    int decay_embeddings;    /* 1: nanoGPT's groups (every tensor of 2+
                              * dimensions); 0: the trainer's default,
                              * which leaves the embeddings out */
    int32_t precision;       /* an enum tlm_precision */
} bench_gpt_recipe;

typedef struct bench_gpt_run {
    tlm_context *ctx;
    tlm_model *model;
    tlm_dataset *data;     /* the text, split 90/10 */
    tlm_trainer *trainer;
} bench_gpt_run;

/* Context, model, dataset and trainer for `recipe` on `text`. Returns 0,
 * or 1 after saying on stderr (prefixed with `program`) which call failed
 * and why; free `run` with bench_gpt_run_free either way. */
int bench_gpt_run_create(bench_gpt_run *run, const char *program,
                         const bench_gpt_recipe *recipe, const bench_text *text);

void bench_gpt_run_free(bench_gpt_run *run);

#endif
