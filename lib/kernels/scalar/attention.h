/* Reference kernels of fused scaled dot-product attention, FlashAttention
 * style: one head at a time, the keys visited in blocks with an online
 * softmax, so that no Tq x Tk matrix is ever formed (memory O(T * D)).
 * These define the result that faster kernels are tested against.
 *
 * Per head: q [Tq, D], k [Tk, D], v [Tk, Dv], out [Tq, Dv], all row-major
 * with row strides ld_q, ld_k, ld_v, ld_out (in floats, at least the row
 * length; the columns between rows are neither read nor written): the
 * sizes of a tlmi_attention_dims (kernels/attention.h).
 * Query i sees key j when j < tlmi_attention_key_limit(i, ...) and, if
 * `visible` is not NULL, visible[j] is non-zero. Scores are
 * q_i . k_j / sqrt(D). A query that sees no key gets a zero output row and
 * no gradient. */
#ifndef TLM_LIB_KERNELS_SCALAR_ATTENTION_H
#define TLM_LIB_KERNELS_SCALAR_ATTENTION_H

#include <stdint.h>

#include "kernels/attention.h" /* tlmi_attention_dims */

/* Keys per block in tlm_attention(): one block's scores (and one output
 * row) are the only scratch. Any block size >= 1 gives the same result
 * up to rounding. */
#define TLMI_ATTENTION_BLOCK 32

/* visible[i] = (mask[i] != 0), the padding mask as flags, so the kernels
 * need not know the mask's dtype. */
void tlmi_attention_visible_f32(unsigned char *visible, const float *mask,
                                int64_t n);
void tlmi_attention_visible_i32(unsigned char *visible, const int32_t *mask,
                                int64_t n);

/* How many leading keys query row i may see before the padding mask: tk,
 * or when causal, i + (tk - tq) + 1 clamped to [0, tk] (query rows are
 * the last tq positions of the tk keys, as with a KV cache). */
int64_t tlmi_attention_key_limit(int64_t i, int64_t tq, int64_t tk,
                                 int causal);

/* One head's forward pass.
 * out [tq, v_dim]: the attention output.
 * lse [tq] or NULL: per row logsumexp of the visible scores, saved for the
 *     backward pass; -INFINITY for a row that sees no key.
 * scores [block], acc [v_dim]: scratch for one block of scores and one
 *     row's running output. Both are double, and so are the running max
 *     and sum: this kernel is the reference faster ones are compared with,
 *     and the gradient check's finite differences need the output exact to
 *     float rounding (float sums over many keys were measurably noisier).
 * visible [tk] or NULL (every key visible). */
void tlmi_attention_forward(float *out, float *lse, double *scores,
                            double *acc, const float *q, const float *k,
                            const float *v, const unsigned char *visible,
                            const tlmi_attention_dims *dims, int64_t block);

/* One head's backward pass, by recomputing the probabilities from `lse`.
 * dq [tq, dim], dk [tk, dim], dv [tk, v_dim] (strides ld_q, ld_k, ld_v):
 *     accumulated into when `accumulate` is 1, overwritten when it is 0
 *     (their rows are cleared first); each may be NULL when that gradient
 *     is not wanted.
 * drow [tq]: scratch, filled with dout_i . out_i.
 * probs [block]: scratch for one block of probabilities.
 * dout [tq, v_dim] (stride ld_out, like out), out and lse as the forward
 * pass left them. */
void tlmi_attention_backward(float *dq, float *dk, float *dv, float *drow,
                             float *probs, const float *dout, const float *q,
                             const float *k, const float *v, const float *out,
                             const float *lse, const unsigned char *visible,
                             const tlmi_attention_dims *dims, int accumulate,
                             int64_t block);

/* The same two passes with bf16 products (issue #22's mixed precision;
 * kernels/attention.h says what the SIMD entries do): the float32
 * reference on operands rounded to bf16, nearest even (base/half.h):
 * q, k, v and dout where the products read them, and
 *   forward:  P = exp(s - m) with m the row's max (taken first, so the
 *             blocks never rescale), a float32 rounded to bf16 for P V,
 *             while l sums the unrounded P (so lse is that of the
 *             rounded q and k alone);
 *   backward: P (float32) rounded for dv = P^T dout; dS = P (dP - drow)
 *             scale from the float32 P, rounded for dq and dk; drow =
 *             dout . out from the unrounded float32 values.
 * Products of two bf16 values are exact (in float, and in double); the
 * sums are the float32 reference's. */
void tlmi_attention_forward_bf16(float *out, float *lse, double *scores,
                                 double *acc, const float *q, const float *k,
                                 const float *v, const unsigned char *visible,
                                 const tlmi_attention_dims *dims,
                                 int64_t block);
void tlmi_attention_backward_bf16(float *dq, float *dk, float *dv,
                                  float *drow, float *probs,
                                  const float *dout, const float *q,
                                  const float *k, const float *v,
                                  const float *out, const float *lse,
                                  const unsigned char *visible,
                                  const tlmi_attention_dims *dims,
                                  int accumulate, int64_t block);

#endif
