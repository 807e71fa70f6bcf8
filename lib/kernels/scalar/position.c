#include "position.h"

#include <math.h>

void tlmi_sinusoidal_table(float *pe, int64_t offset, int64_t t, int64_t d) {
    for (int64_t i = 0; 2 * i < d; i++) {
        /* 1 / 10000^(2i/D), the frequency of pair i */
        const double frequency =
            pow(10000.0, -(double)(2 * i) / (double)d);
        for (int64_t time = 0; time < t; time++) {
            const double angle = (double)(offset + time) * frequency;
            pe[time * d + 2 * i] = (float)sin(angle);
            pe[time * d + 2 * i + 1] = (float)cos(angle);
        }
    }
}

void tlmi_rope_table(float *cos_table, float *sin_table, int64_t offset,
                     int64_t t, int64_t d, double base) {
    const int64_t half = d / 2;
    for (int64_t i = 0; i < half; i++) {
        const double frequency = pow(base, -(double)(2 * i) / (double)d);
        for (int64_t time = 0; time < t; time++) {
            const double angle = (double)(offset + time) * frequency;
            cos_table[time * half + i] = (float)cos(angle);
            sin_table[time * half + i] = (float)sin(angle);
        }
    }
}

void tlmi_rope_forward(float *out, const float *a, const float *cos_table,
                       const float *sin_table, int64_t rows, int64_t t,
                       int64_t d) {
    const int64_t half = d / 2;
    for (int64_t row = 0; row < rows; row++) {
        for (int64_t time = 0; time < t; time++) {
            const float *x = a + (row * t + time) * d;
            float *y = out + (row * t + time) * d;
            const float *c = cos_table + time * half;
            const float *s = sin_table + time * half;
            for (int64_t i = 0; i < half; i++) {
                const float x0 = x[2 * i], x1 = x[2 * i + 1];
                y[2 * i] = x0 * c[i] - x1 * s[i];
                y[2 * i + 1] = x0 * s[i] + x1 * c[i];
            }
        }
    }
}

void tlmi_rope_backward(float *da, const float *dout, const float *cos_table,
                        const float *sin_table, int64_t rows, int64_t t,
                        int64_t d) {
    const int64_t half = d / 2;
    for (int64_t row = 0; row < rows; row++) {
        for (int64_t time = 0; time < t; time++) {
            const float *g = dout + (row * t + time) * d;
            float *dx = da + (row * t + time) * d;
            const float *c = cos_table + time * half;
            const float *s = sin_table + time * half;
            for (int64_t i = 0; i < half; i++) {
                const float g0 = g[2 * i], g1 = g[2 * i + 1];
                dx[2 * i] += g0 * c[i] + g1 * s[i];
                dx[2 * i + 1] += g1 * c[i] - g0 * s[i];
            }
        }
    }
}
