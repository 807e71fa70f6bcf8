/*
 * Samplers: from the logits of the next token to the next token
 * (penalties, temperature, top-k, top-p, min-p, a seeded draw).
 * docs/sampling.md explains each step.
 */
#ifndef TLM_LIB_SAMPLER_H
#define TLM_LIB_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"
#include "rng.h"
#include "tlm.h"

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
};

/*
 * The logits after the penalties of the sampler's history (step 1 of the
 * pipeline), in double precision: out[i] for i < vocab. For tests; the
 * arguments are not checked beyond what the pipeline itself checks.
 */
int tlmi_sampler_penalized_logits(tlm_sampler *s, const float *logits,
                                  int32_t vocab, double *out);

#endif
