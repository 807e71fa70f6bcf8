/*
 * Samplers: from the logits of the next token to the next token
 * (penalties, temperature, top-k, top-p, min-p, a seeded draw).
 * docs/sampling.md explains each step.
 */
#ifndef TLM_LIB_GENERATE_SAMPLER_H
#define TLM_LIB_GENERATE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"
#include "base/rng.h"
#include "tlm.h"

/* Buckets of the top-p pre-pass (lib/generate/sampler.c, nucleus_by_buckets). */
#define TLMI_NUCLEUS_BUCKETS 2048

struct tlm_sampler {
    tlmi_host host;            /* the context's hooks; own error text */
    tlm_sampler_params params; /* validated; struct_size is the library's */
    tlmi_rng rng;

    /* Accepted tokens: a ring of the last penalty_window ids when the
     * window is positive (capacity grows up to the window), a growing
     * array when it is 0. */
    int32_t *history;        /* [history_capacity] */
    size_t history_capacity;
    size_t history_length;   /* ids in the window */
    size_t history_start;    /* index of the oldest id */
    int32_t history_max;     /* largest id accepted since the last reset */

    /* One block for the largest vocabulary seen (work_vocab = V). */
    void *work;
    size_t work_bytes;
    int32_t work_vocab;
    double *z;       /* [V] logits after penalties and temperature */
    double *w;       /* [V] exp(z - zmax) of the candidates, by id */
    int32_t *ids;    /* [V] candidate ids */
    int32_t *counts; /* [V] occurrences in the window; all 0 between calls */
    int32_t *scratch; /* [V] the ids of the bucket where top-p ends */
    double bucket_mass[TLMI_NUCLEUS_BUCKETS]; /* top-p pre-pass */
};

/*
 * log(sum_i exp(x[i] - *max)) in double over x[0..n) (n >= 1, no NaN or
 * +inf), storing *max = max_i x[i]: a log-softmax is (x[i] - *max) minus
 * the result. Shared by tlm_log_softmax_at and the beam search.
 */
double tlmi_log_sum_exp(const float *x, int32_t n, double *max);

/*
 * The logits after the penalties of the sampler's history (step 1 of the
 * pipeline), in double precision: out[i] for i < vocab. For tests; the
 * arguments are not checked beyond what the pipeline itself checks.
 */
int tlmi_sampler_penalized_logits(tlm_sampler *s, const float *logits,
                                  int32_t vocab, double *out);

/*
 * Top-p among ids[0..n) without sorting them: moves the nucleus (the
 * smallest set of ids, best ranked first, by z and then by lower id, whose
 * weights w[id] reach `target`) to ids[0..m), unordered, and returns m; n
 * when the weights never reach `target`. A quickselect of at most `budget`
 * partitions, then a heap. Exposed for tests, which force the heap.
 */
size_t tlmi_sampler_select_nucleus(int32_t *ids, size_t n, const double *z,
                                   const double *w, double target,
                                   int budget);

#endif
