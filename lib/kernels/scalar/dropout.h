/* Reference kernels of dropout. The keep mask is one byte per element:
 * the backward pass needs only whether an element survived, and a byte
 * costs a quarter of a float mask. */
#ifndef TLM_LIB_KERNELS_SCALAR_DROPOUT_H
#define TLM_LIB_KERNELS_SCALAR_DROPOUT_H

#include <stdint.h>

#include "base/rng.h"

/* One uniform u per element, in order, from rng: keep[i] = u >= p;
 * out[i] = keep[i] ? a[i] * scale : 0, scale being 1 / (1 - p).
 * out, keep and a have n elements; out may be a (a model's graph drops
 * out its projections in place). */
void tlmi_dropout_forward(float *out, uint8_t *keep, const float *a, float p,
                          float scale, int64_t n, tlmi_rng *rng);

/* da[i] += keep[i] ? dout[i] * scale : 0 */
void tlmi_dropout_backward(float *da, const float *dout, const uint8_t *keep,
                           float scale, int64_t n);

#endif
