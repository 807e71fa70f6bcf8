/*
 * Suite "sampler": the sampling pipeline through the public API, with
 * statistics rather than anecdotes.
 *
 * Frequency tests draw 100000 tokens with a fixed seed and compare the
 * counts with the expected distribution by Pearson's chi-square test at
 * significance p = 0.001: each states its degrees of freedom (categories
 * with a non-zero probability, minus one) and asserts the statistic is
 * below the critical value of that chi-square distribution (table in
 * sampler_reference.c). Every category expects at least 5 draws. A token
 * of probability 0 drawn even once fails the test outright.
 *
 * Exact tests compare tlm_sampler_probabilities() with an independent
 * reference (sampler_reference.c: full sort, then each filter as defined)
 * to 1e-6 absolute, the precision of a float probability.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sampler_reference.h"
#include "tlm.h"
#include "tolerance.h"

#define DRAWS 100000
#define PROB_TOLERANCE 1e-6

static tlm_context *ctx;

static int setup(void **state) {
    (void)state;
    return tlm_context_create(&ctx, NULL);
}

static int teardown(void **state) {
    (void)state;
    tlm_context_free(ctx);
    return 0;
}

static tlm_sampler *make_sampler(const tlm_sampler_params *params) {
    tlm_sampler *s = NULL;
    int status = tlm_sampler_create(&s, ctx, params);
    if (status != TLM_OK)
        fail_msg("tlm_sampler_create: %s", tlm_last_error());
    return s;
}

static tlm_sampler_params settings(float temperature, int32_t top_k,
                                   float top_p, float min_p, uint64_t seed) {
    tlm_sampler_params p;
    tlm_sampler_params_init(&p);
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    p.seed = seed;
    return p;
}

static reference_settings reference_of(const tlm_sampler_params *p) {
    reference_settings r = {(double)p->temperature, p->top_k, (double)p->top_p,
                            (double)p->min_p};
    return r;
}

/* A fixed pseudo-random generator for the tests' own inputs (splitmix64),
 * independent of the library's. */
static uint64_t test_random(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [lo, hi). */
static float test_uniform(uint64_t *x, float lo, float hi) {
    const double u = (double)(test_random(x) >> 11) / 9007199254740992.0;
    return (float)((double)lo + u * (double)(hi - lo));
}

/*
 * Draws DRAWS tokens from `logits` with sampler settings `p` and checks:
 * no token outside the support of the reference distribution, the chi-
 * square statistic against it below the p = 0.001 critical value, and the
 * returned log-probability equal to the log of the reference probability.
 */
static void check_frequencies(const float *logits, int32_t vocab,
                              const tlm_sampler_params *p) {
    double penalized[64], expected[64];
    int64_t counts[64] = {0};
    assert_true(vocab <= 64);
    for (int32_t i = 0; i < vocab; i++)
        penalized[i] = (double)logits[i];
    reference_settings r = reference_of(p);
    reference_probabilities(penalized, vocab, &r, expected);
    tlm_sampler *s = make_sampler(p);
    for (int n = 0; n < DRAWS; n++) {
        int32_t token = -1;
        float logprob = 1.0f;
        assert_int_equal(tlm_sampler_sample(s, logits, vocab, &token, &logprob), TLM_OK);
        assert_true(token >= 0 && token < vocab);
        counts[token]++;
        if (expected[token] > 0.0)
            assert_true(fabs((double)logprob - log(expected[token])) < 1e-5);
    }
    int df = 0;
    const double statistic = chi_square(counts, expected, vocab, DRAWS, &df);
    const double critical = chi_square_critical_001(df);
    if (!(statistic < critical))
        fail_msg("chi-square %.3f >= %.3f (df %d, p = 0.001) at T = %g, "
                 "top_k %d, top_p %g, min_p %g",
                 statistic, critical, df, (double)p->temperature, (int)p->top_k,
                 (double)p->top_p, (double)p->min_p);
    print_message("chi-square %7.3f < %.3f (df %2d) at T = %g, top_k %d, top_p %g, "
                  "min_p %g\n",
                  statistic, critical, df, (double)p->temperature, (int)p->top_k,
                  (double)p->top_p, (double)p->min_p);
    tlm_sampler_free(s);
}

/* Eight tokens; at T = 0.5 the least likely expects 21 of 100000 draws. */
static const float eight[8] = {2.0f, 1.5f, 1.0f, 0.5f, 0.0f, -0.5f, -1.0f, -2.0f};

static void defaults_and_get_params(void **state) {
    (void)state;
    tlm_sampler_params p;
    assert_int_equal(tlm_sampler_params_init(&p), TLM_OK);
    assert_int_equal(p.struct_size, sizeof p);
    assert_true(p.temperature == 1.0f);
    assert_int_equal(p.top_k, 0);
    assert_true(p.top_p == 1.0f);
    assert_true(p.min_p == 0.0f);
    assert_true(p.repetition_penalty == 1.0f);
    assert_true(p.frequency_penalty == 0.0f);
    assert_true(p.presence_penalty == 0.0f);
    assert_int_equal(p.penalty_window, 64);
    assert_true(p.seed == 0);

    p.temperature = 0.7f;
    p.top_k = 40;
    p.seed = 99;
    tlm_sampler *s = make_sampler(&p);
    tlm_sampler_params got;
    memset(&got, 0xff, sizeof got);
    tlm_sampler_params_init(&got);
    assert_int_equal(tlm_sampler_get_params(s, &got), TLM_OK);
    assert_memory_equal(&got, &p, sizeof p);
    assert_int_equal(tlm_sampler_set_seed(s, 7), TLM_OK);
    assert_int_equal(tlm_sampler_get_params(s, &got), TLM_OK);
    assert_true(got.seed == 7);
    /* An older caller's shorter struct receives the fields it has. */
    tlm_sampler_params small;
    memset(&small, 0xff, sizeof small);
    small.struct_size = offsetof(tlm_sampler_params, top_p);
    assert_int_equal(tlm_sampler_get_params(s, &small), TLM_OK);
    assert_true(small.temperature == 0.7f);
    assert_int_equal(small.top_k, 40);
    assert_int_equal(small.struct_size, offsetof(tlm_sampler_params, top_p));
    float top_p_bytes;
    memset(&top_p_bytes, 0xff, sizeof top_p_bytes);
    assert_memory_equal(&small.top_p, &top_p_bytes, sizeof top_p_bytes);
    /* NULL settings: all defaults. */
    tlm_sampler *d = make_sampler(NULL);
    assert_int_equal(tlm_sampler_get_params(d, &got), TLM_OK);
    tlm_sampler_params_init(&p);
    assert_memory_equal(&got, &p, sizeof p);
    tlm_sampler_free(d);
    tlm_sampler_free(s);
}

/* Temperatures 0.5, 1 and 2 on eight tokens: the frequencies of 100000
 * draws fit softmax(logits / T). df = 7, critical value 24.322. */
static void frequencies_follow_softmax_at_temperature(void **state) {
    (void)state;
    const float temperatures[3] = {0.5f, 1.0f, 2.0f};
    for (int t = 0; t < 3; t++) {
        tlm_sampler_params p = settings(temperatures[t], 0, 1.0f, 0.0f, 1234 + (uint64_t)t);
        check_frequencies(eight, 8, &p);
    }
}

/* A very high temperature flattens any logits into the uniform
 * distribution: chi-square against 1/8 each, df = 7, critical value
 * 24.322. At T = 1e4 the largest deviation from 1/8 is about 4e-4
 * relative, far below what 100000 draws can see. */
static void very_high_temperature_is_uniform(void **state) {
    (void)state;
    const float temperatures[2] = {1e4f, 1e30f};
    for (int t = 0; t < 2; t++) {
        tlm_sampler_params p = settings(temperatures[t], 0, 1.0f, 0.0f, 77);
        tlm_sampler *s = make_sampler(&p);
        int64_t counts[8] = {0};
        for (int n = 0; n < DRAWS; n++) {
            int32_t token;
            assert_int_equal(tlm_sampler_sample(s, eight, 8, &token, NULL), TLM_OK);
            counts[token]++;
        }
        const double uniform[8] = {0.125, 0.125, 0.125, 0.125,
                                   0.125, 0.125, 0.125, 0.125};
        int df = 0;
        const double statistic = chi_square(counts, uniform, 8, DRAWS, &df);
        assert_int_equal(df, 7);
        assert_true(statistic < chi_square_critical_001(df));
        tlm_sampler_free(s);
    }
}

/* T = 0 and T = 1e-6 both give the argmax, with log-probability 0, on
 * 1000 random logit vectors whose values are 0.05 apart (at T = 1e-6 the
 * runner-up is then e^-50000 times less likely: exactly 0 in double
 * precision). */
static void tiny_temperature_is_argmax(void **state) {
    (void)state;
    tlm_sampler_params greedy = settings(0.0f, 0, 1.0f, 0.0f, 3);
    tlm_sampler_params tiny = settings(1e-6f, 0, 1.0f, 0.0f, 3);
    tlm_sampler *g = make_sampler(&greedy), *t = make_sampler(&tiny);
    uint64_t x = 11;
    float logits[50];
    for (int trial = 0; trial < 1000; trial++) {
        /* A random permutation of -2.45, -2.40, ..., 0.0 (steps of 0.05). */
        for (int i = 0; i < 50; i++)
            logits[i] = -0.05f * (float)i;
        for (int i = 49; i > 0; i--) {
            int j = (int)(test_random(&x) % (uint64_t)(i + 1));
            float tmp = logits[i];
            logits[i] = logits[j];
            logits[j] = tmp;
        }
        int32_t argmax = 0;
        for (int i = 1; i < 50; i++)
            if (logits[i] > logits[argmax])
                argmax = i;
        int32_t token = -1;
        float logprob = 1.0f;
        assert_int_equal(tlm_sampler_sample(g, logits, 50, &token, &logprob), TLM_OK);
        assert_int_equal(token, argmax);
        assert_true(logprob == 0.0f);
        assert_int_equal(tlm_sampler_sample(t, logits, 50, &token, &logprob), TLM_OK);
        assert_int_equal(token, argmax);
        assert_true(logprob == 0.0f);
    }
    tlm_sampler_free(g);
    tlm_sampler_free(t);
}

/* Ties go to the lowest id: in greedy mode, and at the boundary of top-k
 * and top-p (as documented in tlm.h and docs/sampling.md). */
static void ties_resolve_to_lowest_id(void **state) {
    (void)state;
    const float tied[5] = {1.0f, 3.0f, 3.0f, 0.0f, 3.0f};
    tlm_sampler_params p = settings(0.0f, 0, 1.0f, 0.0f, 0);
    tlm_sampler *s = make_sampler(&p);
    for (int n = 0; n < 10; n++) {
        int32_t token = -1;
        assert_int_equal(tlm_sampler_sample(s, tied, 5, &token, NULL), TLM_OK);
        assert_int_equal(token, 1);
    }
    tlm_sampler_free(s);

    float probs[5];
    p = settings(1.0f, 2, 1.0f, 0.0f, 0); /* top-2 of three equal maxima */
    s = make_sampler(&p);
    assert_int_equal(tlm_sampler_probabilities(s, tied, 5, probs), TLM_OK);
    assert_true(fabs((double)probs[1] - 0.5) < PROB_TOLERANCE);
    assert_true(fabs((double)probs[2] - 0.5) < PROB_TOLERANCE);
    assert_true(probs[0] == 0.0f && probs[3] == 0.0f && probs[4] == 0.0f);
    tlm_sampler_free(s);

    /* Three equal maxima of 0.30 each (with 0.10 left): top_p 0.5 needs
     * two of them, ids 1 and 2. */
    const float three[4] = {0.0f, 1.0986123f, 1.0986123f, 1.0986123f};
    p = settings(1.0f, 0, 0.5f, 0.0f, 0);
    s = make_sampler(&p);
    assert_int_equal(tlm_sampler_probabilities(s, three, 4, probs), TLM_OK);
    assert_true(fabs((double)probs[1] - 0.5) < PROB_TOLERANCE);
    assert_true(fabs((double)probs[2] - 0.5) < PROB_TOLERANCE);
    assert_true(probs[0] == 0.0f && probs[3] == 0.0f);
    tlm_sampler_free(s);

    /* Ten equal logits: 0.1 each; top_p 0.35 needs four, ids 0 to 3. */
    const float flat[10] = {0};
    p = settings(1.0f, 0, 0.35f, 0.0f, 0);
    s = make_sampler(&p);
    float flat_probs[10];
    assert_int_equal(tlm_sampler_probabilities(s, flat, 10, flat_probs), TLM_OK);
    for (int i = 0; i < 10; i++)
        assert_true(fabs((double)flat_probs[i] - (i < 4 ? 0.25 : 0.0)) < PROB_TOLERANCE);
    tlm_sampler_free(s);

    /* One likely token and a block of 3000 equal ones behind it (top-p
     * ends inside the block): the lowest ids of the block are kept, as
     * the reference says; and top-k 40 takes ids 0..38 of the block. */
    enum { BLOCK = 3001 };
    static float block[BLOCK];
    static float block_probs[BLOCK];
    static double block_d[BLOCK], expected[BLOCK];
    for (int i = 0; i < BLOCK; i++)
        block[i] = i == 1500 ? 6.0f : -1.0f;
    for (int i = 0; i < BLOCK; i++)
        block_d[i] = (double)block[i];
    const tlm_sampler_params cases[2] = {settings(1.0f, 0, 0.6f, 0.0f, 0),
                                         settings(1.0f, 40, 1.0f, 0.0f, 0)};
    for (int c = 0; c < 2; c++) {
        reference_settings r = reference_of(&cases[c]);
        reference_probabilities(block_d, BLOCK, &r, expected);
        s = make_sampler(&cases[c]);
        assert_int_equal(tlm_sampler_probabilities(s, block, BLOCK, block_probs), TLM_OK);
        for (int i = 0; i < BLOCK; i++) {
            assert_true((block_probs[i] == 0.0f) == (expected[i] == 0.0));
            assert_true(fabs((double)block_probs[i] - expected[i]) < PROB_TOLERANCE);
        }
        assert_true(block_probs[0] > 0.0f && block_probs[BLOCK - 1] == 0.0f);
        tlm_sampler_free(s);
    }
}

/* Ten tokens, the best first in an order that is not the id order. */
static const float ten[10] = {0.3f, 2.2f, -1.0f, 1.4f, 0.9f,
                              2.0f, -0.2f, 1.1f, 0.0f, 0.6f};

/* Top-k with k = 3 keeps ids 1, 5, 3: no other token is ever drawn, and
 * the frequencies fit softmax over those three. df = 2, critical value
 * 13.816. Also at T = 2 and combined with top-p. */
static void top_k_keeps_the_k_best(void **state) {
    (void)state;
    tlm_sampler_params p = settings(1.0f, 3, 1.0f, 0.0f, 5);
    check_frequencies(ten, 10, &p);
    p = settings(2.0f, 5, 1.0f, 0.0f, 6);
    check_frequencies(ten, 10, &p); /* df = 4, critical value 18.467 */
    /* k >= the vocabulary, or >= the possible tokens: no effect. */
    float all[10], top[10];
    tlm_sampler_params off = settings(1.0f, 0, 1.0f, 0.0f, 0);
    tlm_sampler *a = make_sampler(&off);
    assert_int_equal(tlm_sampler_probabilities(a, ten, 10, all), TLM_OK);
    for (int32_t k = 10; k <= 12; k++) {
        p = settings(1.0f, k, 1.0f, 0.0f, 0);
        tlm_sampler *s = make_sampler(&p);
        assert_int_equal(tlm_sampler_probabilities(s, ten, 10, top), TLM_OK);
        assert_memory_equal(all, top, sizeof all);
        tlm_sampler_free(s);
    }
    tlm_sampler_free(a);
}

/* Top-p 0.8 on ten tokens: the nucleus (computed by the reference) is
 * never left, and the frequencies fit it renormalized (df = nucleus - 1,
 * its critical value from the table). */
static void top_p_stays_in_the_nucleus(void **state) {
    (void)state;
    const float tops[3] = {0.8f, 0.5f, 0.95f};
    for (int i = 0; i < 3; i++) {
        tlm_sampler_params p = settings(1.0f, 0, tops[i], 0.0f, 40 + (uint64_t)i);
        check_frequencies(ten, 10, &p);
    }
    /* A top_p below the best token's probability keeps it alone. */
    tlm_sampler_params p = settings(1.0f, 0, 0.01f, 0.0f, 1);
    tlm_sampler *s = make_sampler(&p);
    for (int n = 0; n < 100; n++) {
        int32_t token;
        float logprob;
        assert_int_equal(tlm_sampler_sample(s, ten, 10, &token, &logprob), TLM_OK);
        assert_int_equal(token, 1);
        assert_true(logprob == 0.0f);
    }
    tlm_sampler_free(s);
}

/* Min-p 0.2 (and 0.05, 0.5): only tokens with p >= min_p * p_max. */
static void min_p_keeps_the_likely(void **state) {
    (void)state;
    const float mins[3] = {0.2f, 0.05f, 0.5f};
    for (int i = 0; i < 3; i++) {
        tlm_sampler_params p = settings(1.0f, 0, 1.0f, mins[i], 50 + (uint64_t)i);
        check_frequencies(ten, 10, &p);
    }
    /* Everything together, at T = 1.5. */
    tlm_sampler_params p = settings(1.5f, 6, 0.9f, 0.1f, 60);
    check_frequencies(ten, 10, &p);
}

/* tlm_sampler_probabilities equals the reference on random logits for
 * every combination of settings below, including -inf tokens; and what
 * tlm_sampler_sample draws always has a non-zero probability there, with
 * the log of it as its log-probability. */
static void probabilities_match_reference(void **state) {
    (void)state;
    const float temperatures[4] = {0.0f, 0.3f, 1.0f, 2.5f};
    const int32_t ks[3] = {0, 1, 7};
    const float top_ps[3] = {1.0f, 0.9f, 0.3f};
    const float min_ps[3] = {0.0f, 0.05f, 0.3f};
    uint64_t x = 99;
    float logits[37], probs[37];
    double logits_d[37], expected[37];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < 37; i++) {
            logits[i] = test_uniform(&x, -4.0f, 4.0f);
            if (test_random(&x) % 10 == 0)
                logits[i] = -INFINITY;
            logits_d[i] = (double)logits[i];
        }
        for (int a = 0; a < 4; a++)
            for (int b = 0; b < 3; b++)
                for (int c = 0; c < 3; c++)
                    for (int d = 0; d < 3; d++) {
                        tlm_sampler_params p = settings(temperatures[a], ks[b], top_ps[c],
                                                        min_ps[d], (uint64_t)trial);
                        reference_settings r = reference_of(&p);
                        reference_probabilities(logits_d, 37, &r, expected);
                        tlm_sampler *s = make_sampler(&p);
                        assert_int_equal(tlm_sampler_probabilities(s, logits, 37, probs), TLM_OK);
                        for (int i = 0; i < 37; i++) {
                            if (!(fabs((double)probs[i] - expected[i]) <= PROB_TOLERANCE))
                                fail_msg("trial %d, T %g k %d top_p %g min_p %g: p[%d] "
                                         "= %.9g, reference %.9g",
                                         trial, (double)p.temperature, (int)p.top_k,
                                         (double)p.top_p, (double)p.min_p, i,
                                         (double)probs[i], expected[i]);
                            /* Filtered out means exactly 0. */
                            assert_true((probs[i] == 0.0f) == (expected[i] == 0.0));
                        }
                        for (int n = 0; n < 20; n++) {
                            int32_t token;
                            float logprob;
                            assert_int_equal(tlm_sampler_sample(s, logits, 37, &token, &logprob),
                                             TLM_OK);
                            assert_true(expected[token] > 0.0);
                            assert_true(fabs((double)logprob - log(expected[token])) < 1e-5);
                        }
                        tlm_sampler_free(s);
                    }
    }
}

/* A vocabulary of 200000 (larger than GPT-4's) with top-k 40, top-p 0.9
 * alone, min-p alone, and nothing: equal to the reference. */
static void large_vocabulary(void **state) {
    (void)state;
    enum { V = 200000 };
    float *logits = malloc(V * sizeof *logits), *probs = malloc(V * sizeof *probs);
    double *logits_d = malloc(V * sizeof *logits_d), *expected = malloc(V * sizeof *expected);
    assert_non_null(logits);
    assert_non_null(probs);
    assert_non_null(logits_d);
    assert_non_null(expected);
    uint64_t x = 2024;
    for (int i = 0; i < V; i++) {
        /* Heavy tail: a few dozen plausible tokens, most far behind. */
        logits[i] = test_uniform(&x, -6.0f, 2.0f);
        if (test_random(&x) % 5000 == 0)
            logits[i] += 8.0f;
        logits_d[i] = (double)logits[i];
    }
    const tlm_sampler_params cases[4] = {
        settings(0.8f, 40, 1.0f, 0.0f, 1), settings(1.0f, 0, 0.9f, 0.0f, 2),
        settings(1.0f, 0, 1.0f, 0.01f, 3), settings(1.0f, 0, 1.0f, 0.0f, 4)};
    for (int c = 0; c < 4; c++) {
        reference_settings r = reference_of(&cases[c]);
        reference_probabilities(logits_d, V, &r, expected);
        tlm_sampler *s = make_sampler(&cases[c]);
        assert_int_equal(tlm_sampler_probabilities(s, logits, V, probs), TLM_OK);
        double worst = 0.0;
        for (int i = 0; i < V; i++) {
            assert_true((probs[i] == 0.0f) == (expected[i] == 0.0));
            worst = tlmt_worst(worst, fabs((double)probs[i] - expected[i]));
        }
        assert_true(worst < PROB_TOLERANCE);
        for (int n = 0; n < 20; n++) {
            int32_t token;
            assert_int_equal(tlm_sampler_sample(s, logits, V, &token, NULL), TLM_OK);
            assert_true(expected[token] > 0.0);
        }
        tlm_sampler_free(s);
    }
    free(logits);
    free(probs);
    free(logits_d);
    free(expected);
}

/* Top-p over more candidates than the 2048 buckets of its pre-pass (the
 * path large vocabularies take), with ties and -inf tokens, for many
 * temperatures and top_p values: equal to the reference. */
static void top_p_over_buckets_matches_reference(void **state) {
    (void)state;
    enum { V = 5000 };
    static float logits[V], probs[V];
    static double logits_d[V], expected[V];
    uint64_t x = 314;
    for (int i = 0; i < V; i++) {
        logits[i] = test_uniform(&x, -8.0f, 8.0f);
        if (test_random(&x) % 10 == 0 && i > 0)
            logits[i] = logits[i - 1 - (int)(test_random(&x) % (uint64_t)i)]; /* a tie */
        if (test_random(&x) % 20 == 0)
            logits[i] = -INFINITY;
        logits_d[i] = (double)logits[i];
    }
    const float temperatures[3] = {0.5f, 1.0f, 3.0f};
    const float top_ps[4] = {0.2f, 0.7f, 0.95f, 0.999f};
    const float min_ps[2] = {0.0f, 0.01f};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 4; b++)
            for (int c = 0; c < 2; c++) {
                tlm_sampler_params p = settings(temperatures[a], 0, top_ps[b], min_ps[c], 9);
                reference_settings r = reference_of(&p);
                reference_probabilities(logits_d, V, &r, expected);
                tlm_sampler *s = make_sampler(&p);
                assert_int_equal(tlm_sampler_probabilities(s, logits, V, probs), TLM_OK);
                for (int i = 0; i < V; i++) {
                    if ((probs[i] == 0.0f) != (expected[i] == 0.0) ||
                        !(fabs((double)probs[i] - expected[i]) <= PROB_TOLERANCE))
                        fail_msg("T %g top_p %g min_p %g: p[%d] = %.9g, reference %.9g",
                                 (double)p.temperature, (double)p.top_p, (double)p.min_p, i,
                                 (double)probs[i], expected[i]);
                }
                tlm_sampler_free(s);
            }
}

/* -inf marks an impossible token: never drawn, probability 0. */
static void minus_infinity_is_never_drawn(void **state) {
    (void)state;
    const float masked[6] = {-INFINITY, 0.0f, -INFINITY, 0.5f, -INFINITY, 0.1f};
    tlm_sampler_params p = settings(1.0f, 0, 1.0f, 0.0f, 8);
    check_frequencies(masked, 6, &p); /* df = 2, critical value 13.816 */
    p = settings(0.0f, 0, 1.0f, 0.0f, 8);
    tlm_sampler *s = make_sampler(&p);
    const float one[3] = {-INFINITY, -INFINITY, -7.0f};
    int32_t token;
    assert_int_equal(tlm_sampler_sample(s, one, 3, &token, NULL), TLM_OK);
    assert_int_equal(token, 2);
    tlm_sampler_free(s);
}

/* Penalties, computed by hand. Logits {2, -1, 0.5, 3, 0}, history
 * 0 1 0 3 0 (id 0 three times, ids 1 and 3 once), repetition penalty 2,
 * frequency 0.5, presence 0.25:
 *   id 0:  2 / 2 = 1,   1 - (3 * 0.5 + 0.25) = -0.75
 *   id 1: -1 * 2 = -2, -2 - (1 * 0.5 + 0.25) = -2.75
 *   id 2:  0.5 (not in the history)
 *   id 3:  3 / 2 = 1.5, 1.5 - 0.75 = 0.75
 *   id 4:  0 (not in the history)
 * With a window of 2 only "3 0" count: id 0 -> 1 - 0.75 = 0.25, id 1 stays
 * -1, id 3 -> 0.75. The probabilities must be softmax of those logits. */
static const float penalty_logits[5] = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f};
static const int32_t penalty_history[5] = {0, 1, 0, 3, 0};

static void check_softmax_of(tlm_sampler *s, const double *want) {
    float probs[5];
    double expected[5], total = 0.0;
    for (int i = 0; i < 5; i++)
        total += exp(want[i]);
    for (int i = 0; i < 5; i++)
        expected[i] = exp(want[i]) / total;
    assert_int_equal(tlm_sampler_probabilities(s, penalty_logits, 5, probs), TLM_OK);
    for (int i = 0; i < 5; i++)
        if (!(fabs((double)probs[i] - expected[i]) <= PROB_TOLERANCE))
            fail_msg("p[%d] = %.9g, expected %.9g", i, (double)probs[i], expected[i]);
}

static void penalties_as_specified(void **state) {
    (void)state;
    tlm_sampler_params p = settings(1.0f, 0, 1.0f, 0.0f, 0);
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.penalty_window = 0;
    tlm_sampler *s = make_sampler(&p);
    const double none[5] = {2.0, -1.0, 0.5, 3.0, 0.0};
    check_softmax_of(s, none); /* nothing accepted yet */
    for (int i = 0; i < 5; i++)
        assert_int_equal(tlm_sampler_accept(s, penalty_history[i]), TLM_OK);
    const double all[5] = {-0.75, -2.75, 0.5, 0.75, 0.0};
    check_softmax_of(s, all);
    /* Sampling does not record the token it returns. */
    int32_t token;
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_OK);
    check_softmax_of(s, all);
    assert_int_equal(tlm_sampler_reset(s), TLM_OK);
    check_softmax_of(s, none);
    tlm_sampler_free(s);

    p.penalty_window = 2;
    s = make_sampler(&p);
    for (int i = 0; i < 5; i++)
        assert_int_equal(tlm_sampler_accept(s, penalty_history[i]), TLM_OK);
    const double window[5] = {0.25, -1.0, 0.5, 0.75, 0.0};
    check_softmax_of(s, window);
    tlm_sampler_free(s);

    /* Greedy decoding switches away from a repeated token: "3 3" makes
     * id 3 3 / 2 - (2 * 0.5 + 0.25) = 0.25, below id 0's 2. */
    p.temperature = 0.0f;
    s = make_sampler(&p);
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_OK);
    assert_int_equal(token, 3);
    assert_int_equal(tlm_sampler_accept(s, 3), TLM_OK);
    assert_int_equal(tlm_sampler_accept(s, 3), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_OK);
    assert_int_equal(token, 0);
    tlm_sampler_free(s);
}

/* A token accepted earlier but outside a smaller vocabulary is an error
 * while it is in the window, and not once it has left it. */
static void history_outside_vocabulary(void **state) {
    (void)state;
    tlm_sampler_params p = settings(1.0f, 0, 1.0f, 0.0f, 0);
    p.penalty_window = 2;
    tlm_sampler *s = make_sampler(&p);
    int32_t token = 5;
    assert_int_equal(tlm_sampler_accept(s, 9), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_E_RANGE);
    assert_int_equal(token, -1);
    assert_non_null(strstr(tlm_sampler_last_error(s), "token 9"));
    assert_int_equal(tlm_sampler_accept(s, 1), TLM_OK);
    assert_int_equal(tlm_sampler_accept(s, 2), TLM_OK); /* 9 leaves the window */
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_OK);
    assert_int_equal(tlm_sampler_accept(s, 7), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_E_RANGE);
    assert_int_equal(tlm_sampler_reset(s), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, penalty_logits, 5, &token, NULL), TLM_OK);
    tlm_sampler_free(s);
}

/* A long window keeps exactly its last tokens: 1000 accepts through a
 * window of 100 leave the counts of the last 100. */
static void window_keeps_last_tokens(void **state) {
    (void)state;
    tlm_sampler_params p = settings(1.0f, 0, 1.0f, 0.0f, 0);
    p.frequency_penalty = 1.0f;
    p.penalty_window = 100;
    tlm_sampler *s = make_sampler(&p);
    /* Ids 0..9 in turn, 1000 times, then id 0 50 times. */
    for (int i = 0; i < 1000; i++)
        assert_int_equal(tlm_sampler_accept(s, i % 10), TLM_OK);
    for (int i = 0; i < 50; i++)
        assert_int_equal(tlm_sampler_accept(s, 0), TLM_OK);
    /* The window: accepts 951..1000 of the cycle (ids 0..9 five times
     * each) and 50 zeros: id 0 55 times, the others 5 times. */
    const float flat[10] = {0};
    float probs[10];
    assert_int_equal(tlm_sampler_probabilities(s, flat, 10, probs), TLM_OK);
    double total = exp(-55.0) + 9.0 * exp(-5.0);
    assert_true(fabs((double)probs[0] - exp(-55.0) / total) < PROB_TOLERANCE);
    for (int i = 1; i < 10; i++)
        assert_true(fabs((double)probs[i] - exp(-5.0) / total) < PROB_TOLERANCE);
    tlm_sampler_free(s);
}

/* The same seed gives the same stream; tlm_sampler_set_seed restarts it;
 * different seeds give different streams. */
static void seeds_reproduce(void **state) {
    (void)state;
    enum { N = 1000 };
    static int32_t first[N], second[N], third[N];
    const float flat[8] = {0};
    tlm_sampler_params p = settings(1.0f, 0, 1.0f, 0.0f, 42);
    tlm_sampler *a = make_sampler(&p), *b = make_sampler(&p);
    p.seed = 43;
    tlm_sampler *c = make_sampler(&p);
    for (int i = 0; i < N; i++) {
        assert_int_equal(tlm_sampler_sample(a, flat, 8, &first[i], NULL), TLM_OK);
        assert_int_equal(tlm_sampler_sample(b, flat, 8, &second[i], NULL), TLM_OK);
        assert_int_equal(tlm_sampler_sample(c, flat, 8, &third[i], NULL), TLM_OK);
    }
    assert_memory_equal(first, second, sizeof first);
    /* Reset clears the history only, not the generator: a and b go on
     * with the same draws. */
    assert_int_equal(tlm_sampler_reset(a), TLM_OK);
    for (int i = 0; i < 10; i++) {
        int32_t ta, tb;
        assert_int_equal(tlm_sampler_sample(a, flat, 8, &ta, NULL), TLM_OK);
        assert_int_equal(tlm_sampler_sample(b, flat, 8, &tb, NULL), TLM_OK);
        assert_int_equal(ta, tb);
    }
    /* Two independent uniform streams over 8 tokens agree at a position
     * with probability 1/8: about 875 of 1000 differ; fewer than 700
     * would be a 13-sigma event. */
    int differ = 0;
    for (int i = 0; i < N; i++)
        differ += first[i] != third[i];
    assert_true(differ > 700);
    /* Reseeding restarts the stream, whatever was drawn before. */
    assert_int_equal(tlm_sampler_set_seed(b, 42), TLM_OK);
    for (int i = 0; i < N; i++) {
        int32_t token;
        assert_int_equal(tlm_sampler_sample(b, flat, 8, &token, NULL), TLM_OK);
        assert_int_equal(token, first[i]);
    }
    /* A sampler created with one seed and another reseeded to it agree. */
    assert_int_equal(tlm_sampler_set_seed(c, 42), TLM_OK);
    for (int i = 0; i < 10; i++)
        assert_int_equal(tlm_sampler_sample(c, flat, 8, &third[i], NULL), TLM_OK);
    assert_memory_equal(third, first, 10 * sizeof *first);
    tlm_sampler_free(a);
    tlm_sampler_free(b);
    tlm_sampler_free(c);
}

/* The raw log-softmax helper, against hand-computed values. */
static void log_softmax_at_values(void **state) {
    (void)state;
    /* {0, ln 3}: probabilities 1/4 and 3/4. */
    const float two[2] = {0.0f, 1.0986123f};
    float lp = 1.0f;
    assert_int_equal(tlm_log_softmax_at(two, 2, 0, &lp), TLM_OK);
    assert_true(fabs((double)lp - log(0.25)) < 1e-6);
    assert_int_equal(tlm_log_softmax_at(two, 2, 1, &lp), TLM_OK);
    assert_true(fabs((double)lp - log(0.75)) < 1e-6);
    /* Stable for large logits: {1000, 0} gives 0 and -1000. */
    const float far[2] = {1000.0f, 0.0f};
    assert_int_equal(tlm_log_softmax_at(far, 2, 0, &lp), TLM_OK);
    assert_true(fabs((double)lp) < 1e-6);
    assert_int_equal(tlm_log_softmax_at(far, 2, 1, &lp), TLM_OK);
    assert_true(fabs((double)lp + 1000.0) < 1e-3);
    /* An impossible token has log-probability -inf. */
    const float masked[3] = {-INFINITY, 1.0f, 1.0f};
    assert_int_equal(tlm_log_softmax_at(masked, 3, 0, &lp), TLM_OK);
    assert_true(isinf(lp) && lp < 0.0f);
    assert_int_equal(tlm_log_softmax_at(masked, 3, 2, &lp), TLM_OK);
    assert_true(fabs((double)lp - log(0.5)) < 1e-6);
    /* Independent of the sampler's settings: the model's own score. */
    tlm_sampler_params p = settings(0.5f, 2, 1.0f, 0.0f, 1);
    tlm_sampler *s = make_sampler(&p);
    int32_t token;
    float filtered;
    assert_int_equal(tlm_sampler_sample(s, eight, 8, &token, &filtered), TLM_OK);
    assert_int_equal(tlm_log_softmax_at(eight, 8, token, &lp), TLM_OK);
    double total = 0.0;
    for (int i = 0; i < 8; i++)
        total += exp((double)eight[i]);
    assert_true(fabs((double)lp - ((double)eight[token] - log(total))) < 1e-6);
    tlm_sampler_free(s);
}

/* docs/sampling.md's worked example: "Every morning I go to" school, work,
 * the, church, bed, sleep, a, my. Every table printed there, to its three
 * decimals (tolerance 0.0005 plus float rounding). */
static void docs_worked_example(void **state) {
    (void)state;
    static const float morning[8] = {3.1f, 2.9f, 2.2f, 1.4f, 0.9f, 0.5f, 0.1f, -0.4f};
    static const struct {
        float temperature, top_p, min_p;
        int32_t top_k;
        int penalized; /* history "work work the", r 1.3, freq 0.2, presence 0.1 */
        double probs[8];
    } rows[] = {
        {1.0f, 1.0f, 0.0f, 0, 0, {0.374, 0.306, 0.152, 0.068, 0.041, 0.028, 0.019, 0.011}},
        {0.0f, 1.0f, 0.0f, 0, 0, {1, 0, 0, 0, 0, 0, 0, 0}},
        {0.2f, 1.0f, 0.0f, 0, 0, {0.725, 0.267, 0.008, 0.000, 0.000, 0.000, 0.000, 0.000}},
        {0.8f, 1.0f, 0.0f, 0, 0, {0.423, 0.330, 0.137, 0.051, 0.027, 0.016, 0.010, 0.005}},
        {1.5f, 1.0f, 0.0f, 0, 0, {0.295, 0.258, 0.162, 0.095, 0.068, 0.052, 0.040, 0.029}},
        {1.0f, 1.0f, 0.0f, 3, 0, {0.449, 0.368, 0.183, 0, 0, 0, 0, 0}},
        {1.0f, 0.85f, 0.0f, 0, 0, {0.415, 0.340, 0.169, 0.076, 0, 0, 0, 0}},
        {1.0f, 1.0f, 0.1f, 0, 0, {0.397, 0.325, 0.161, 0.073, 0.044, 0, 0, 0}},
        {1.0f, 1.0f, 0.0f, 0, 1, {0.531, 0.135, 0.096, 0.097, 0.059, 0.039, 0.026, 0.016}},
        {0.8f, 0.95f, 0.05f, 40, 0, {0.437, 0.341, 0.142, 0.052, 0.028, 0, 0, 0}},
    };
    for (size_t r = 0; r < sizeof rows / sizeof rows[0]; r++) {
        tlm_sampler_params p = settings(rows[r].temperature, rows[r].top_k, rows[r].top_p,
                                        rows[r].min_p, 0);
        if (rows[r].penalized) {
            p.repetition_penalty = 1.3f;
            p.frequency_penalty = 0.2f;
            p.presence_penalty = 0.1f;
        }
        tlm_sampler *s = make_sampler(&p);
        if (rows[r].penalized) {
            assert_int_equal(tlm_sampler_accept(s, 1), TLM_OK); /* work */
            assert_int_equal(tlm_sampler_accept(s, 1), TLM_OK); /* work */
            assert_int_equal(tlm_sampler_accept(s, 2), TLM_OK); /* the */
        }
        float probs[8];
        assert_int_equal(tlm_sampler_probabilities(s, morning, 8, probs), TLM_OK);
        for (int i = 0; i < 8; i++) {
            if (!(fabs((double)probs[i] - rows[r].probs[i]) <= 0.0005 + PROB_TOLERANCE))
                fail_msg("row %d token %d: %.4f, docs/sampling.md says %.3f", (int)r, i,
                         (double)probs[i], rows[r].probs[i]);
            /* A 0 in the docs (not 0.000) is a filtered token: exactly 0. */
            if (rows[r].probs[i] == 0.0 && (rows[r].top_k || rows[r].top_p < 1.0f ||
                                            rows[r].min_p > 0.0f || rows[r].temperature == 0.0f))
                assert_true(probs[i] == 0.0f);
        }
        tlm_sampler_free(s);
    }
    /* The raw softmax row is also the model's own score. */
    float lp;
    assert_int_equal(tlm_log_softmax_at(morning, 8, 0, &lp), TLM_OK);
    assert_true(fabs(exp((double)lp) - 0.374) < 0.0005);
}

/* Logits at +-FLT_MAX, the smallest positive temperature and the largest
 * penalties stay finite: a valid token, finite log-probability, and
 * probabilities that sum to 1. */
static void extreme_values_stay_finite(void **state) {
    (void)state;
    const float huge[4] = {FLT_MAX, -FLT_MAX, 0.0f, FLT_MAX};
    const float temperatures[3] = {1e-45f, 1.0f, FLT_MAX};
    for (int t = 0; t < 3; t++) {
        tlm_sampler_params p = settings(temperatures[t], 0, 0.5f, 0.0f, 1);
        p.repetition_penalty = FLT_MAX;
        p.frequency_penalty = -FLT_MAX;
        p.presence_penalty = FLT_MAX;
        p.penalty_window = 0;
        tlm_sampler *s = make_sampler(&p);
        for (int i = 0; i < 100; i++)
            assert_int_equal(tlm_sampler_accept(s, i % 3), TLM_OK);
        float probs[4], logprob;
        int32_t token;
        assert_int_equal(tlm_sampler_probabilities(s, huge, 4, probs), TLM_OK);
        double total = 0.0;
        for (int i = 0; i < 4; i++) {
            assert_true(isfinite(probs[i]) && probs[i] >= 0.0f);
            total += (double)probs[i];
        }
        assert_true(fabs(total - 1.0) < 1e-6);
        for (int n = 0; n < 100; n++) {
            assert_int_equal(tlm_sampler_sample(s, huge, 4, &token, &logprob), TLM_OK);
            assert_true(token >= 0 && token < 4);
            assert_true(probs[token] > 0.0f);
            assert_true(isfinite(logprob) && logprob <= 0.0f);
        }
        tlm_sampler_free(s);
    }
    /* The model's own score: finite where representable, -inf below
     * -FLT_MAX, never NaN. */
    float lp;
    assert_int_equal(tlm_log_softmax_at(huge, 4, 0, &lp), TLM_OK);
    assert_true(fabs((double)lp - log(0.5)) < 1e-6);
    assert_int_equal(tlm_log_softmax_at(huge, 4, 2, &lp), TLM_OK);
    assert_true(fabs((double)lp + (double)FLT_MAX) <= (double)FLT_MAX * 1e-6);
    assert_int_equal(tlm_log_softmax_at(huge, 4, 1, &lp), TLM_OK);
    assert_true(isinf(lp) && lp < 0.0f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_and_get_params),
        cmocka_unit_test(frequencies_follow_softmax_at_temperature),
        cmocka_unit_test(very_high_temperature_is_uniform),
        cmocka_unit_test(tiny_temperature_is_argmax),
        cmocka_unit_test(ties_resolve_to_lowest_id),
        cmocka_unit_test(top_k_keeps_the_k_best),
        cmocka_unit_test(top_p_stays_in_the_nucleus),
        cmocka_unit_test(min_p_keeps_the_likely),
        cmocka_unit_test(probabilities_match_reference),
        cmocka_unit_test(large_vocabulary),
        cmocka_unit_test(top_p_over_buckets_matches_reference),
        cmocka_unit_test(minus_infinity_is_never_drawn),
        cmocka_unit_test(penalties_as_specified),
        cmocka_unit_test(history_outside_vocabulary),
        cmocka_unit_test(window_keeps_last_tokens),
        cmocka_unit_test(seeds_reproduce),
        cmocka_unit_test(log_softmax_at_values),
        cmocka_unit_test(docs_worked_example),
        cmocka_unit_test(extreme_values_stay_finite),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
