#include "tolerance.h"

#include <math.h>
#include <stdlib.h>

double tlmt_worst(double worst, double error) {
    if (isnan(worst) || isnan(error))
        return (double)NAN;
    return error > worst ? error : worst;
}

double tlmt_max_abs_f32(const float *x, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        m = tlmt_worst(m, fabs((double)x[i]));
    return m;
}

double tlmt_max_abs_diff_f32(const float *a, const float *b, int64_t n) {
    double m = 0.0;
    for (int64_t i = 0; i < n; i++)
        m = tlmt_worst(m, fabs((double)a[i] - (double)b[i]));
    return m;
}

int64_t tlmt_first_beyond(const float *got, const double *want, int64_t n,
                          double atol, double rtol) {
    for (int64_t i = 0; i < n; i++)
        if (!(fabs((double)got[i] - want[i]) <= atol + rtol * fabs(want[i])))
            return i;
    return -1;
}

int64_t tlmt_first_non_finite_f32(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return i;
    return -1;
}

int tlmt_close(double got, double want, double tol) {
    return fabs(got - want) <= tol;
}

double *tlmt_abs_product_sums(const float *a, const float *b, int64_t m,
                              int64_t n, int64_t k, int ta, int tb) {
    double *sums = malloc((size_t)(m * n > 0 ? m * n : 1) * sizeof *sums);
    double *abs_a = malloc((size_t)(m * k > 0 ? m * k : 1) * sizeof *abs_a);
    double *abs_b = malloc((size_t)(k * n > 0 ? k * n : 1) * sizeof *abs_b);
    if (sums == NULL || abs_a == NULL || abs_b == NULL) {
        free(sums);
        free(abs_a);
        free(abs_b);
        return NULL;
    }
    /* abs_a[i * k + p] = |op(A)[i, p]|, abs_b[p * n + j] = |op(B)[p, j]|. */
    for (int64_t i = 0; i < m; i++)
        for (int64_t p = 0; p < k; p++)
            abs_a[i * k + p] = fabs((double)(ta ? a[p * m + i] : a[i * k + p]));
    for (int64_t p = 0; p < k; p++)
        for (int64_t j = 0; j < n; j++)
            abs_b[p * n + j] = fabs((double)(tb ? b[j * k + p] : b[p * n + j]));
    /* Row i of S gains |op(A)[i, p]| times row p of |op(B)|, p in order:
     * each S[i, j] is its own sum over p = 0, 1, ... (the loop over j
     * vectorizes without reordering any sum). */
    for (int64_t i = 0; i < m; i++) {
        double *row = sums + i * n;
        for (int64_t j = 0; j < n; j++)
            row[j] = 0.0;
        for (int64_t p = 0; p < k; p++) {
            const double x = abs_a[i * k + p];
            const double *b_row = abs_b + p * n;
            for (int64_t j = 0; j < n; j++)
                row[j] += x * b_row[j];
        }
    }
    free(abs_a);
    free(abs_b);
    return sums;
}
