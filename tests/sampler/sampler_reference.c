#include "sampler_reference.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

/* qsort has no context argument: the values being sorted, for the
 * comparison only. Tests are single-threaded. */
static const double *sort_values;

/* Larger value first, then the lower id. */
static int by_value_then_id(const void *pa, const void *pb) {
    const int32_t a = *(const int32_t *)pa, b = *(const int32_t *)pb;
    if (sort_values[a] > sort_values[b])
        return -1;
    if (sort_values[a] < sort_values[b])
        return 1;
    return (a > b) - (a < b);
}

void reference_probabilities(const double *logits, int32_t vocab,
                             const reference_settings *settings,
                             double *probs) {
    double *z = malloc((size_t)vocab * sizeof *z);
    int32_t *order = malloc((size_t)vocab * sizeof *order);
    assert_non_null(z);
    assert_non_null(order);
    for (int32_t i = 0; i < vocab; i++) {
        probs[i] = 0.0;
        z[i] = settings->temperature > 0.0 ? logits[i] / settings->temperature
                                           : logits[i];
        order[i] = i;
    }
    sort_values = z;
    qsort(order, (size_t)vocab, sizeof *order, by_value_then_id);
    int32_t n = 0; /* possible tokens: a prefix of the order */
    while (n < vocab && z[order[n]] > -HUGE_VAL)
        n++;
    assert_true(n > 0);
    if (settings->temperature == 0.0) {
        probs[order[0]] = 1.0;
        goto done;
    }
    if (settings->top_k > 0 && settings->top_k < n)
        n = settings->top_k;
    double total = 0.0;
    for (int32_t j = 0; j < n; j++)
        total += exp(z[order[j]] - z[order[0]]);
    for (int32_t j = 0; j < n; j++)
        probs[order[j]] = exp(z[order[j]] - z[order[0]]) / total;
    if (settings->top_p < 1.0) {
        /* The smallest prefix whose probability mass reaches top_p. */
        double mass = 0.0;
        int32_t m = 0;
        while (m < n && mass < settings->top_p)
            mass += probs[order[m++]];
        for (int32_t j = m; j < n; j++)
            probs[order[j]] = 0.0;
        n = m;
    }
    if (settings->min_p > 0.0) {
        const double p_max = probs[order[0]];
        for (int32_t j = 0; j < n; j++)
            if (probs[order[j]] < settings->min_p * p_max)
                probs[order[j]] = 0.0;
    }
    total = 0.0;
    for (int32_t j = 0; j < n; j++)
        total += probs[order[j]];
    for (int32_t j = 0; j < n; j++)
        probs[order[j]] /= total;
done:
    free(z);
    free(order);
}

double chi_square_critical_001(int df) {
    /* Upper 0.1% points of the chi-square distribution (standard tables,
     * e.g. NIST/SEMATECH e-Handbook 1.3.6.7.4). */
    static const double table[30] = {
        10.828, 13.816, 16.266, 18.467, 20.515, 22.458, 24.322, 26.124,
        27.877, 29.588, 31.264, 32.909, 34.528, 36.123, 37.697, 39.252,
        40.790, 42.312, 43.820, 45.315, 46.797, 48.268, 49.728, 51.179,
        52.620, 54.052, 55.476, 56.892, 58.301, 59.703};
    assert_true(df >= 1 && df <= 30);
    return table[df - 1];
}

double chi_square(const int64_t *counts, const double *probs, int32_t vocab,
                  int64_t n, int *df) {
    double statistic = 0.0;
    int categories = 0;
    for (int32_t i = 0; i < vocab; i++) {
        if (probs[i] == 0.0) {
            if (counts[i] != 0)
                fail_msg("token %d, of probability 0, was drawn %lld times",
                         (int)i, (long long)counts[i]);
            continue;
        }
        const double expected = probs[i] * (double)n;
        assert_true(expected >= 5.0);
        const double d = (double)counts[i] - expected;
        statistic += d * d / expected;
        categories++;
    }
    *df = categories - 1;
    return statistic;
}
