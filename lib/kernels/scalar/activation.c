#include "activation.h"

#include <math.h>

/* sqrt(2 / pi), the scale inside GPT-2's tanh approximation. */
#define GELU_TANH_SCALE 0.7978845608028654f
#define GELU_TANH_CUBIC 0.044715f
/* 1 / sqrt(2) and 1 / sqrt(2 pi), for the normal CDF and pdf. */
#define INV_SQRT2 0.7071067811865476f
#define INV_SQRT_2PI 0.3989422804014327f

void tlmi_relu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void tlmi_relu_backward(float *dx, const float *dout, const float *x,
                        int64_t n) {
    /* x > 0 is false at 0 and at NaN: the derivative there is 0. */
    for (int64_t i = 0; i < n; i++)
        if (x[i] > 0.0f)
            dx[i] += dout[i];
}

/* GPT-2's 0.5 x (1 + tanh(u)) evaluated as x / (1 + exp(-2u)), the same
 * function (1 + tanh(u) = 2 sigmoid(2u)): 1 + tanhf(u) cancels to 0 or
 * to a few bits for u below about -4, where the result is tiny but not
 * zero. exp overflowing to infinity gives exactly -0, never a NaN. */
static float gelu_tanh_u(float x) {
    return GELU_TANH_SCALE * (x + GELU_TANH_CUBIC * x * x * x);
}

void tlmi_gelu_tanh_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] / (1.0f + expf(-2.0f * gelu_tanh_u(x[i])));
}

void tlmi_gelu_tanh_backward(float *dx, const float *dout, const float *x,
                             int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        /* s = 0.5 (1 + tanh(u)), and 0.5 (1 - tanh(u)^2) = 2 s (1 - s) */
        float s = 1.0f / (1.0f + expf(-2.0f * gelu_tanh_u(v)));
        float slope = s;
        /* s (1 - s) is exactly 0 in float for x above about 5 and below
         * about -10; skipping the term there keeps 0 * du from becoming
         * 0 * inf = NaN once v * v overflows (|x| > 1.8e19). */
        float curve = s * (1.0f - s);
        if (curve != 0.0f) {
            float du = GELU_TANH_SCALE *
                       (1.0f + 3.0f * GELU_TANH_CUBIC * v * v);
            slope += 2.0f * v * curve * du;
        }
        dx[i] += dout[i] * slope;
    }
}

/* Phi(x) = 0.5 (1 + erf(x / sqrt 2)), written as 0.5 erfc(-x / sqrt 2):
 * the same function, without the cancellation 1 + erf suffers for large
 * negative x (where x Phi(x) is tiny but not zero). */
static float normal_cdf(float x) { return 0.5f * erfcf(-x * INV_SQRT2); }

void tlmi_gelu_exact_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * normal_cdf(x[i]);
}

void tlmi_gelu_exact_backward(float *dx, const float *dout, const float *x,
                              int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float pdf = INV_SQRT_2PI * expf(-0.5f * v * v);
        dx[i] += dout[i] * (normal_cdf(v) + v * pdf);
    }
}

/* 1 / (1 + e^-x): e^-x overflows to infinity for x below about -88, which
 * gives exactly 0, never a NaN. */
static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* d silu / dx = s + x s (1 - s) with s = sigmoid(x) */
static float silu_slope(float x, float s) { return s * (1.0f + x * (1.0f - s)); }

void tlmi_silu_forward(float *out, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = x[i] * sigmoid(x[i]);
}

void tlmi_silu_backward(float *dx, const float *dout, const float *x,
                        int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dx[i] += dout[i] * silu_slope(x[i], sigmoid(x[i]));
}

void tlmi_swiglu_forward(float *out, const float *gate, const float *up,
                         int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = gate[i] * sigmoid(gate[i]) * up[i];
}

void tlmi_swiglu_backward(float *dgate, float *dup, const float *dout,
                          const float *gate, const float *up, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        float g = gate[i];
        float s = sigmoid(g);
        if (dgate != 0)
            dgate[i] += dout[i] * up[i] * silu_slope(g, s);
        if (dup != 0)
            dup[i] += dout[i] * g * s;
    }
}
