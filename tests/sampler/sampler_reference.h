/*
 * Test helpers of the sampler suite: an independent reference of the
 * sampling pipeline (written the obvious way: a full sort, then each
 * filter as its definition reads) and a chi-square goodness-of-fit check.
 */
#ifndef TLM_TESTS_SAMPLER_REFERENCE_H
#define TLM_TESTS_SAMPLER_REFERENCE_H

#include <stdint.h>

/* Settings of the reference pipeline; the logits are already penalized. */
typedef struct reference_settings {
    double temperature; /* 0: argmax, lowest id among equals */
    int32_t top_k;      /* 0: off */
    double top_p;       /* 1: off */
    double min_p;       /* 0: off */
} reference_settings;

/* The final distribution over `vocab` ids into probs (0 for filtered
 * tokens). -inf logits are impossible tokens. */
void reference_probabilities(const double *logits, int32_t vocab,
                             const reference_settings *settings,
                             double *probs);

/* Critical value of the chi-square distribution with `df` degrees of
 * freedom at significance p = 0.001 (upper tail), df 1..30. */
double chi_square_critical_001(int df);

/*
 * Pearson's chi-square statistic of `counts` (n draws in total) against
 * the expected probabilities `probs` over `vocab` ids. Ids of probability 0
 * must never have been drawn (a failure otherwise) and do not count as
 * categories; every category must expect at least 5 draws (a design check
 * of the test). `df` receives the degrees of freedom, categories - 1.
 */
double chi_square(const int64_t *counts, const double *probs, int32_t vocab,
                  int64_t n, int *df);

#endif
