/* Reference reductions. */
#ifndef TLM_LIB_KERNELS_SCALAR_REDUCE_H
#define TLM_LIB_KERNELS_SCALAR_REDUCE_H

#include <stdint.h>

/* Sum of x[0..n), accumulated in double so that long sums stay exact to
 * float precision whatever their length. */
float tlmi_sum(const float *x, int64_t n);

/* dx[i] += value */
void tlmi_add_constant(float *dx, float value, int64_t n);

#endif
