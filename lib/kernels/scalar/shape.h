/* Reference kernels of the shape operations: pure data movement, so each
 * backward is the same movement in reverse, accumulated.
 *
 * Transpose and the head split/merge are one permutation in disguise: the
 * swap of the two middle axes of a [outer, X, Y, inner] array. A transpose
 * of [..., M, N] is that with X = M, Y = N, inner = 1; split_heads of
 * [B, T, H*D] reads it as [B, T, H, D] and swaps T and H; merge_heads swaps
 * them back.
 *
 * Concat and slice work on the input seen as [rows, width]: rows is the
 * product of the dimensions before the axis, width the axis's size times
 * the product of the dimensions after it, so an axis range is a contiguous
 * column range of every row. */
#ifndef TLM_LIB_KERNELS_SCALAR_SHAPE_H
#define TLM_LIB_KERNELS_SCALAR_SHAPE_H

#include <stdint.h>

/* da [n] += dout [n]: a reshape's gradient, the same values in the same
 * order (only the shape differs). */
void tlmi_reshape_backward(float *da, const float *dout, int64_t n);

/* out [batch, cols, rows] = a [batch, rows, cols] with the last two swapped */
void tlmi_transpose_forward(float *out, const float *a, int64_t batch,
                            int64_t rows, int64_t cols);
/* da [batch, rows, cols] += dout [batch, cols, rows] transposed back */
void tlmi_transpose_backward(float *da, const float *dout, int64_t batch,
                             int64_t rows, int64_t cols);

/* out [B, H, T, D] from a [B, T, H*D]: head h takes columns h*D..h*D+D-1.
 * The two middle axes of a [B, X, Y, D] swapped, so merge_heads (a
 * [B, H, T, D] to [B, T, H*D]) is the same call with seq = H, n_head = T. */
void tlmi_split_heads_forward(float *out, const float *a, int64_t batch,
                              int64_t seq, int64_t n_head, int64_t head_dim);
/* da [B, T, H*D] += dout [B, H, T, D] merged back (likewise for merge_heads
 * with seq = H, n_head = T) */
void tlmi_split_heads_backward(float *da, const float *dout, int64_t batch,
                               int64_t seq, int64_t n_head, int64_t head_dim);

/* Places one input of a concat: out [rows, total] columns
 * start..start+width-1 = a [rows, width]. */
void tlmi_concat_forward(float *out, const float *a, int64_t rows,
                         int64_t total, int64_t start, int64_t width);
/* da [rows, width] += columns start..start+width-1 of dout [rows, total]:
 * one input's share of the concat's gradient. */
void tlmi_concat_backward(float *da, const float *dout, int64_t rows,
                          int64_t total, int64_t start, int64_t width);

/* out [rows, length] = columns start..start+length-1 of a [rows, width] */
void tlmi_slice_forward(float *out, const float *a, int64_t rows,
                        int64_t width, int64_t start, int64_t length);
/* da [rows, width] columns start..start+length-1 += dout [rows, length];
 * the other columns of da are left as they are (their gradient is 0). */
void tlmi_slice_backward(float *da, const float *dout, int64_t rows,
                         int64_t width, int64_t start, int64_t length);

#endif
