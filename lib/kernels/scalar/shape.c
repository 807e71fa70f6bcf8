#include "shape.h"

#include <string.h>

/* dst [outer, Y, X, inner] = src [outer, X, Y, inner] with X and Y swapped
 * (or dst += that when accumulate). */
static void swap_middle_axes(float *dst, const float *src, int64_t outer,
                             int64_t x, int64_t y, int64_t inner,
                             int accumulate) {
    const int64_t block = x * y * inner;
    for (int64_t o = 0; o < outer; o++) {
        const float *s = src + o * block;
        float *d = dst + o * block;
        for (int64_t i = 0; i < x; i++)
            for (int64_t j = 0; j < y; j++) {
                const float *from = s + (i * y + j) * inner;
                float *to = d + (j * x + i) * inner;
                if (accumulate)
                    for (int64_t k = 0; k < inner; k++)
                        to[k] += from[k];
                else
                    for (int64_t k = 0; k < inner; k++)
                        to[k] = from[k];
            }
    }
}

void tlmi_reshape_backward(float *da, const float *dout, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        da[i] += dout[i];
}

void tlmi_transpose_forward(float *out, const float *a, int64_t batch,
                            int64_t rows, int64_t cols) {
    swap_middle_axes(out, a, batch, rows, cols, 1, 0);
}

void tlmi_transpose_backward(float *da, const float *dout, int64_t batch,
                             int64_t rows, int64_t cols) {
    /* dout is [batch, cols, rows]: swapping back lands on a's layout. */
    swap_middle_axes(da, dout, batch, cols, rows, 1, 1);
}

void tlmi_split_heads_forward(float *out, const float *a, int64_t batch,
                              int64_t seq, int64_t n_head, int64_t head_dim) {
    swap_middle_axes(out, a, batch, seq, n_head, head_dim, 0);
}

void tlmi_split_heads_backward(float *da, const float *dout, int64_t batch,
                               int64_t seq, int64_t n_head, int64_t head_dim) {
    swap_middle_axes(da, dout, batch, n_head, seq, head_dim, 1);
}

void tlmi_concat_forward(float *out, const float *a, int64_t rows,
                         int64_t total, int64_t start, int64_t width) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(out + r * total + start, a + r * width,
               (size_t)width * sizeof(float));
}

void tlmi_concat_backward(float *da, const float *dout, int64_t rows,
                          int64_t total, int64_t start, int64_t width) {
    for (int64_t r = 0; r < rows; r++) {
        const float *from = dout + r * total + start;
        float *to = da + r * width;
        for (int64_t j = 0; j < width; j++)
            to[j] += from[j];
    }
}

void tlmi_slice_forward(float *out, const float *a, int64_t rows,
                        int64_t width, int64_t start, int64_t length) {
    for (int64_t r = 0; r < rows; r++)
        memcpy(out + r * length, a + r * width + start,
               (size_t)length * sizeof(float));
}

void tlmi_slice_backward(float *da, const float *dout, int64_t rows,
                         int64_t width, int64_t start, int64_t length) {
    for (int64_t r = 0; r < rows; r++) {
        const float *from = dout + r * length;
        float *to = da + r * width + start;
        for (int64_t j = 0; j < length; j++)
            to[j] += from[j];
    }
}
