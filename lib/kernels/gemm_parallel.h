/*
 * Matrix products over a thread pool: the columns of C are cut into
 * ranges at multiples of the kernel's gemm_col_align and each range is
 * computed by one thread with its own packing workspace, so C is bitwise
 * the same whatever the number of threads (see kernels/gemm.h).
 */
#ifndef TLM_LIB_KERNELS_GEMM_PARALLEL_H
#define TLM_LIB_KERNELS_GEMM_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "dispatch.h"

/* Floating-point operations below which a product is not split (a range
 * gets at least this many)... */
#define TLMI_GEMM_MIN_FLOPS_PER_THREAD ((int64_t)1 << 18)
/* ...unless the range streams at least this many bytes of B: a product of
 * one or a few rows (decoding) is bound by reading the weights, not by
 * its flops, and a 288 x 288 matrix (331 KB, 166 kflop) read by two cores
 * takes half the time, which is far more than waking a spinning worker
 * costs. */
#define TLMI_GEMM_MIN_B_BYTES_PER_THREAD ((int64_t)1 << 15)

/* Workspace bytes for `threads` threads each running a product that needs
 * `per_thread` bytes (each slot rounded up to 64 bytes), or SIZE_MAX when
 * that overflows. */
size_t tlmi_gemm_parallel_workspace(size_t per_thread, int threads);

/* C = op(A) . op(B) (+ C) (+ bias), as kernels->gemm computes it, over
 * `pool`. `workspace` holds `workspace_bytes`, at least what
 * kernels->gemm_workspace asks for this product; it is cut into one slot
 * per thread. When it has no slot for every thread, one thread computes
 * the whole product (the same result). */
void tlmi_gemm_parallel(tlmi_threadpool *pool, const tlmi_kernels *kernels,
                        float *c, const float *a, const float *b,
                        const float *bias, int64_t m, int64_t n, int64_t k,
                        int transpose_a, int transpose_b, int accumulate,
                        void *workspace, size_t workspace_bytes);

#endif
