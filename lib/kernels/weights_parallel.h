/*
 * Products with quantized weights over a thread pool:
 *   C [m, n] = A [m, k] . W^T (+ bias [n]), W [n, k] in a compact format
 * (kernels/weights.h), with the variant `wk` of W's format.
 *
 * Three paths, by m:
 *   - m <= wk->direct_max_m (decoding, small batches): A is prepared once
 *     (int8: quantized per group) by the calling thread into the
 *     workspace, then the columns of C are cut into ranges at multiples of
 *     TLMI_WEIGHTS_COL_ALIGN and each range runs wk->product_cols.
 *   - m > wk->direct_max_m (prefill), when `kernels` has a blocked GEMM
 *     (kernels->gemm_blocking), the variant a dequantize_block and m >=
 *     TLMI_WEIGHTS_PACKED_MIN_M: the "packed" path. The columns of C are
 *     cut into ranges at multiples of the GEMM's NR, and each thread runs
 *     the blocked float32 GEMM (tlmi_gemm_blocked_from) on its range, in
 *     blocks of columns whose packed B fits TLMI_WEIGHTS_PACKED_BLOCK_BYTES
 *     (unless a row of A is a multiple of 4 KiB: weights_parallel.c), with
 *     a pack_b that dequantizes W straight into the packed B panels: no
 *     float32 copy of W exists, W is read once per block of columns, and
 *     A is packed as often as in the float32 product, so the product runs
 *     at the float32 GEMM's speed (or above it: W is smaller to read).
 *   - otherwise, m > wk->direct_max_m: the columns of C are cut into blocks
 *     of TLMI_WEIGHTS_DEQUANT_COLS; for each block a thread dequantizes
 *     those rows of W into its own workspace slot (float32 [cols, k]) and
 *     runs the float32 GEMM of `kernels` on them into a tile of C, then
 *     copies the tile into C. A product of many rows is bound by its
 *     flops, not by reading W, so the float32 GEMM's speed is what counts;
 *     each block of W is dequantized once and reused by all m rows.
 * Either way the cut depends only on the sizes, never on the thread
 * count, and each column is computed by one call: C is bitwise the same
 * for any number of threads.
 */
#ifndef TLM_LIB_KERNELS_WEIGHTS_PARALLEL_H
#define TLM_LIB_KERNELS_WEIGHTS_PARALLEL_H

#include <stddef.h>
#include <stdint.h>

#include "base/threadpool.h"
#include "kernels/dispatch.h"
#include "kernels/weights.h"

/* Columns per unit of the direct path's split. */
#define TLMI_WEIGHTS_COL_ALIGN 16
/* Rows of W (columns of C) dequantized at a time on the large-m path
 * without packing. */
#define TLMI_WEIGHTS_DEQUANT_COLS 128
/* The packed path: for products of at least this many rows (below, the
 * float32 GEMM's small-M path serves the dequantized blocks better), and
 * columns of W dequantized at a time into a scratch block of NR rows. */
#define TLMI_WEIGHTS_PACKED_MIN_M 9
#define TLMI_WEIGHTS_PACK_DEPTH 128
/* The packed path's column blocks: packed B [k, cols] at most this large
 * (at least NR columns), so that it stays in L2 (1 MiB on Zen 4) beside
 * the packed A block. */
#define TLMI_WEIGHTS_PACKED_BLOCK_BYTES (384 * 1024)

/* Workspace bytes tlmi_weights_product_parallel needs for this product
 * with `threads` threads (SIZE_MAX when that overflows). */
size_t tlmi_weights_product_workspace(const tlmi_kernels *kernels,
                                      const tlmi_weight_kernels *wk,
                                      int64_t m, int64_t n, int64_t k,
                                      int threads);

/* C [m, n] = A [m, k] . W^T (+ bias), W [n, k] (n = w->rows, k =
 * w->cols); see the top of this file. `workspace` holds
 * `workspace_bytes`, at least tlmi_weights_product_workspace(kernels, wk,
 * m, n, k, 1) (any alignment); when it has no room for every thread of
 * `pool`, the large-m path runs in the calling thread alone (the same
 * result). wk->format must be w->format. */
void tlmi_weights_product_parallel(tlmi_threadpool *pool,
                                   const tlmi_kernels *kernels,
                                   const tlmi_weight_kernels *wk, float *c,
                                   const float *a, const tlmi_weights *w,
                                   const float *bias, int64_t m,
                                   void *workspace, size_t workspace_bytes);

#endif
