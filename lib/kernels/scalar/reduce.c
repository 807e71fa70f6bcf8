#include "reduce.h"

float tlmi_sum(const float *x, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)x[i];
    return (float)sum;
}

void tlmi_add_constant(float *dx, float value, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dx[i] += value;
}
