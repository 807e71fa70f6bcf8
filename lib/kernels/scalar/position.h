/* Reference kernels of the position encodings: the fixed sinusoidal table
 * added to the input, and rotary embeddings (RoPE). Both act on the last
 * two dimensions [T, D] of a tensor; `rows` counts the leading entries
 * (the product of the other dimensions). Tables depend only on the
 * positions, so they are built once when the node is created. */
#ifndef TLM_LIB_KERNELS_SCALAR_POSITION_H
#define TLM_LIB_KERNELS_SCALAR_POSITION_H

#include <stdint.h>

/* pe [T, D] (D even), position p = offset + t:
 * pe[t, 2i] = sin(p / 10000^(2i/D)), pe[t, 2i+1] = cos(same), evaluated
 * in double and rounded once, so large positions keep their accuracy. */
void tlmi_sinusoidal_table(float *pe, int64_t offset, int64_t t, int64_t d);

/* cos_table, sin_table [T, D/2]: cos and sin of the angle
 * (offset + t) * base^(-2i/D) of pair i at time t, in double, rounded. */
void tlmi_rope_table(float *cos_table, float *sin_table, int64_t offset,
                     int64_t t, int64_t d, double base);

/* out, a [rows, T, D]: each pair (a[2i], a[2i+1]) at time t rotated by
 * the angle of the tables:
 * out[2i] = a[2i] c - a[2i+1] s, out[2i+1] = a[2i] s + a[2i+1] c. */
void tlmi_rope_forward(float *out, const float *a, const float *cos_table,
                       const float *sin_table, int64_t rows, int64_t t,
                       int64_t d);

/* da [rows, T, D] += dout rotated by the negative angle (the transpose of
 * the rotation): da[2i] += g0 c + g1 s, da[2i+1] += -g0 s + g1 c. */
void tlmi_rope_backward(float *da, const float *dout, const float *cos_table,
                        const float *sin_table, int64_t rows, int64_t t,
                        int64_t d);

#endif
