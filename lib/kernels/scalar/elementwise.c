#include "elementwise.h"

void tlmi_add_forward(float *out, const float *a, const float *b, int64_t n,
                      int64_t bn) {
    for (int64_t row = 0; row < n; row += bn)
        for (int64_t j = 0; j < bn; j++)
            out[row + j] = a[row + j] + b[j];
}

void tlmi_sub_forward(float *out, const float *a, const float *b, int64_t n,
                      int64_t bn) {
    for (int64_t row = 0; row < n; row += bn)
        for (int64_t j = 0; j < bn; j++)
            out[row + j] = a[row + j] - b[j];
}

void tlmi_mul_forward(float *out, const float *a, const float *b, int64_t n,
                      int64_t bn) {
    for (int64_t row = 0; row < n; row += bn)
        for (int64_t j = 0; j < bn; j++)
            out[row + j] = a[row + j] * b[j];
}

void tlmi_affine_forward(float *out, const float *a, float factor,
                         float offset, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        out[i] = a[i] * factor + offset;
}

void tlmi_accumulate_scaled(float *dst, const float *src, float factor,
                            int64_t n) {
    for (int64_t i = 0; i < n; i++)
        dst[i] += src[i] * factor;
}

void tlmi_accumulate_repeated(float *dst, const float *src, float factor,
                              int64_t n, int64_t bn) {
    for (int64_t row = 0; row < n; row += bn)
        for (int64_t j = 0; j < bn; j++)
            dst[j] += src[row + j] * factor;
}

void tlmi_mul_backward_a(float *da, const float *dout, const float *b,
                         int64_t n, int64_t bn) {
    for (int64_t row = 0; row < n; row += bn)
        for (int64_t j = 0; j < bn; j++)
            da[row + j] += dout[row + j] * b[j];
}

void tlmi_mul_backward_b(float *db, const float *dout, const float *a,
                         int64_t n, int64_t bn) {
    for (int64_t row = 0; row < n; row += bn)
        for (int64_t j = 0; j < bn; j++)
            db[j] += dout[row + j] * a[row + j];
}
