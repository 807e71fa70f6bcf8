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

/* y = x with each pair (x0, x1) of each [rows, t, d] row turned by the
 * time's angle, sign = 1, or back by it, sign = -1 (y += that when
 * accumulate). sin * -1 is exact, and x0 c - x1 (-s) is x0 c + x1 s, so
 * both directions round as if written out. */
static void rope_rotate(float *y_all, const float *x_all, const float *cos_table,
                        const float *sin_table, int64_t rows, int64_t t,
                        int64_t d, float sign, int accumulate) {
    const int64_t half = d / 2;
    for (int64_t row = 0; row < rows; row++) {
        for (int64_t time = 0; time < t; time++) {
            const float *x = x_all + (row * t + time) * d;
            float *y = y_all + (row * t + time) * d;
            const float *c = cos_table + time * half;
            const float *s = sin_table + time * half;
            for (int64_t i = 0; i < half; i++) {
                const float x0 = x[2 * i], x1 = x[2 * i + 1];
                const float si = sign * s[i];
                const float y0 = x0 * c[i] - x1 * si;
                const float y1 = x0 * si + x1 * c[i];
                if (accumulate) {
                    y[2 * i] += y0;
                    y[2 * i + 1] += y1;
                } else {
                    y[2 * i] = y0;
                    y[2 * i + 1] = y1;
                }
            }
        }
    }
}

void tlmi_rope_forward(float *out, const float *a, const float *cos_table,
                       const float *sin_table, int64_t rows, int64_t t,
                       int64_t d) {
    rope_rotate(out, a, cos_table, sin_table, rows, t, d, 1.0f, 0);
}

void tlmi_rope_backward(float *da, const float *dout, const float *cos_table,
                        const float *sin_table, int64_t rows, int64_t t,
                        int64_t d) {
    rope_rotate(da, dout, cos_table, sin_table, rows, t, d, -1.0f, 1);
}
