/*
 * What the pointwise ops (activation, elementwise, norm, softmax, loss)
 * share to run their kernels: the context's table of kernels/pointwise.h,
 * and the grains that keep small tensors on one thread when the loops
 * are split over the context's pool (tlmi_parallel_for).
 */
#ifndef TLM_LIB_OPS_PARALLEL_H
#define TLM_LIB_OPS_PARALLEL_H

#include <stdint.h>

#include "autodiff/context.h"
#include "kernels/dispatch.h"

/* Elements a task gets at least: below 2 x this, one thread does all
 * (a parallel loop costs a few microseconds of waking and joining). */
#define TLMI_POINTWISE_GRAIN 32768

/* The pointwise kernels of the context an op runs in. */
static inline const tlmi_pointwise_kernels *
tlmi_pointwise(const tlm_context *ctx) {
    return ctx->kernels->pointwise;
}

/* Rows (of `cols` elements) a task gets at least. */
static inline int64_t tlmi_row_grain(int64_t cols) {
    const int64_t rows = TLMI_POINTWISE_GRAIN / (cols > 0 ? cols : 1);
    return rows > 0 ? rows : 1;
}

#endif
