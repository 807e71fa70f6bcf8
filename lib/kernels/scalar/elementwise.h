/* Reference kernels of the elementwise operations. `b` of length bn is
 * repeated over a of length n (bn divides n): b[i % bn]. */
#ifndef TLM_LIB_KERNELS_SCALAR_ELEMENTWISE_H
#define TLM_LIB_KERNELS_SCALAR_ELEMENTWISE_H

#include <stdint.h>

void tlmi_add_forward(float *out, const float *a, const float *b, int64_t n,
                      int64_t bn);
void tlmi_sub_forward(float *out, const float *a, const float *b, int64_t n,
                      int64_t bn);
void tlmi_mul_forward(float *out, const float *a, const float *b, int64_t n,
                      int64_t bn);
/* out = a * factor + offset */
void tlmi_affine_forward(float *out, const float *a, float factor,
                         float offset, int64_t n);

/* dst[i] += src[i] * factor */
void tlmi_accumulate_scaled(float *dst, const float *src, float factor,
                            int64_t n);
/* dst[i % bn] += src[i] * factor: the gradient of a repeated operand */
void tlmi_accumulate_repeated(float *dst, const float *src, float factor,
                              int64_t n, int64_t bn);
/* da[i] += dout[i] * b[i % bn] */
void tlmi_mul_backward_a(float *da, const float *dout, const float *b,
                         int64_t n, int64_t bn);
/* db[i % bn] += dout[i] * a[i] */
void tlmi_mul_backward_b(float *db, const float *dout, const float *a,
                         int64_t n, int64_t bn);

#endif
