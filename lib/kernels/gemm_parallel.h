/*
 * Matrix products over a thread pool: C is cut into ranges of columns (at
 * multiples of the kernel's gemm_col_align) or of rows, and each range is
 * computed by one thread with its own packing workspace, so C is bitwise
 * the same whatever the number of threads (see kernels/gemm.h: a column
 * range gets the whole product's operations; so does a row range, since
 * no kernel's operations on an element depend on the rows around it,
 * once a range has more rows than the small-M path takes).
 *
 * Which: each thread packs (or streams) all of the operand the split does
 * not cut. A column split repeats A [M, K] on every thread, a row split B
 * [K, N]; the blocked kernels pack A whenever it is transposed for them,
 * read in column blocks wider than their direct kernels take, or rounded
 * to bf16 (every bf16 kernel packs it), so with M > N (the training
 * step's products: M = batch x context rows against N of 65 to 4 x width
 * columns) the row split repeats less. It needs a row range of A to be
 * contiguous (A not transposed): the weights' gradients (A^T . dC) keep
 * the column split.
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

/* Rows a row range gets at least: more than any kernel's small-M path
 * takes (8), so a range computes its rows as the whole product does. */
#define TLMI_GEMM_MIN_ROWS_PER_THREAD 16

/* The rows a range of a row split gets at least for N columns and depth
 * K: TLMI_GEMM_MIN_ROWS_PER_THREAD, or more to reach
 * TLMI_GEMM_MIN_FLOPS_PER_THREAD. */
int64_t tlmi_gemm_row_grain(int64_t n, int64_t k);

/* 1 when tlmi_gemm_parallel splits this product by rows over `pool`: A
 * not transposed, M > N, and at least two ranges of tlmi_gemm_row_grain
 * rows. */
int tlmi_gemm_split_rows(const tlmi_threadpool *pool, int64_t m, int64_t n,
                         int64_t k, int transpose_a);

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
