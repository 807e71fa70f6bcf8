#include "tolerance.h"

#include <math.h>

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
