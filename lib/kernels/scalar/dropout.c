#include "dropout.h"

void tlmi_dropout_forward(float *out, uint8_t *keep, const float *a, float p,
                          float scale, int64_t n, tlmi_rng *rng) {
    for (int64_t i = 0; i < n; i++) {
        const int kept = tlmi_rng_uniform(rng) >= p;
        keep[i] = (uint8_t)kept;
        out[i] = kept ? a[i] * scale : 0.0f;
    }
}

void tlmi_dropout_backward(float *da, const float *dout, const uint8_t *keep,
                           float scale, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (keep[i])
            da[i] += dout[i] * scale;
}
