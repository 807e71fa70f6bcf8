#include "attention.h"

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "base/half.h"
#include "kernels/attention.h"

void tlmi_attention_visible_f32(unsigned char *visible, const float *mask,
                                int64_t n) {
    for (int64_t i = 0; i < n; i++)
        visible[i] = mask[i] != 0.0f;
}

void tlmi_attention_visible_i32(unsigned char *visible, const int32_t *mask,
                                int64_t n) {
    for (int64_t i = 0; i < n; i++)
        visible[i] = mask[i] != 0;
}

int64_t tlmi_attention_key_limit(int64_t i, int64_t tq, int64_t tk,
                                 int causal) {
    if (!causal)
        return tk;
    int64_t limit = i + (tk - tq) + 1;
    return limit < 0 ? 0 : limit > tk ? tk : limit;
}

static float dot(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += a[i] * b[i];
    return sum;
}

static double dot_double(const float *a, const float *b, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)a[i] * (double)b[i];
    return sum;
}

/* ---- bf16 products: the same sums over operands rounded to bf16 ----- */

/* x rounded to bf16 (nearest even) and widened back. */
static float bf16(float x) { return tlmi_bf16_to_float(tlmi_float_to_bf16(x)); }

static float dot_bf16(const float *a, const float *b, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; i++)
        sum += bf16(a[i]) * bf16(b[i]);
    return sum;
}

static double dot_double_bf16(const float *a, const float *b, int64_t n) {
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)bf16(a[i]) * (double)bf16(b[i]);
    return sum;
}

/* y[i] += alpha * bf16(x[i]) (alpha already rounded by the caller) */
static void axpy_bf16(float *y, float alpha, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * bf16(x[i]);
}

/* rows x cols floats at stride ld set to zero (nothing when x is NULL) */
static void clear_rows(float *x, int64_t ld, int64_t rows, int64_t cols) {
    if (x == 0)
        return;
    for (int64_t i = 0; i < rows; i++)
        for (int64_t c = 0; c < cols; c++)
            x[i * ld + c] = 0.0f;
}

/* y[i] += alpha * x[i] */
static void axpy(float *y, float alpha, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] += alpha * x[i];
}

/* Both forward passes: with_bf16 0 (float32) or 1 (bf16 products, see
 * tlmi_attention_forward_bf16). */
static void forward(float *out, float *lse, double *scores, double *acc,
                    const float *q, const float *k, const float *v,
                    const unsigned char *visible,
                    const tlmi_attention_dims *dims, int64_t block,
                    int with_bf16) {
    const int64_t tq = dims->tq, tk = dims->tk, dim = dims->dim,
                  v_dim = dims->v_dim, ld_q = dims->ld_q, ld_k = dims->ld_k,
                  ld_v = dims->ld_v, ld_out = dims->ld_out;
    const int causal = dims->causal;
    const double scale = 1.0 / sqrt((double)dim);
    const double masked = -(double)INFINITY;
    for (int64_t i = 0; i < tq; i++) {
        const float *q_i = q + i * ld_q;
        /* acc = sum_j exp(s_ij - m) v_j, m the largest score so far, and
         * l = sum_j exp(s_ij - m): out_i = acc / l once every key is in. */
        double m = masked, l = 0.0;
        for (int64_t c = 0; c < v_dim; c++)
            acc[c] = 0.0;
        const int64_t n_keys = tlmi_attention_key_limit(i, tq, tk, causal);
        /* bf16: P is rounded relative to the row's max, as the SIMD
         * kernels compute it, so the max comes first (the blocks below
         * then never raise it). */
        for (int64_t j = 0; with_bf16 && j < n_keys; j++) {
            if (visible != 0 && !visible[j])
                continue;
            const double s = dot_double_bf16(q_i, k + j * ld_k, dim) * scale;
            if (isnan(s) || s > m)
                m = s;
        }
        for (int64_t j0 = 0; j0 < n_keys; j0 += block) {
            const int64_t n = n_keys - j0 < block ? n_keys - j0 : block;
            /* This block's scores; -inf marks a masked key. */
            double block_max = masked;
            for (int64_t jj = 0; jj < n; jj++) {
                const int64_t j = j0 + jj;
                if (visible != 0 && !visible[j]) {
                    scores[jj] = masked;
                    continue;
                }
                scores[jj] = (with_bf16 ? dot_double_bf16(q_i, k + j * ld_k, dim)
                                        : dot_double(q_i, k + j * ld_k, dim)) *
                             scale;
                /* A NaN score makes the max NaN, and through it l and
                 * the row's output: NaN in, NaN out. */
                if (isnan(scores[jj]) || scores[jj] > block_max)
                    block_max = scores[jj];
            }
            if (block_max == masked)
                continue; /* every key of the block is masked */
            if (block_max > m) {
                /* The max grew: rescale what was summed relative to the
                 * old one (exp(-inf) = 0 on the first visible block). */
                const double correction = exp(m - block_max);
                l *= correction;
                for (int64_t c = 0; c < v_dim; c++)
                    acc[c] *= correction;
                m = block_max;
            }
            for (int64_t jj = 0; jj < n; jj++) {
                if (scores[jj] == masked)
                    continue;
                const double p = exp(scores[jj] - m);
                const float *v_j = v + (j0 + jj) * ld_v;
                l += p;
                if (with_bf16) {
                    /* P as a float32 rounded to bf16; l sums the
                     * unrounded P. */
                    const double p_bf16 = (double)bf16((float)p);
                    for (int64_t c = 0; c < v_dim; c++)
                        acc[c] += p_bf16 * (double)bf16(v_j[c]);
                } else {
                    for (int64_t c = 0; c < v_dim; c++)
                        acc[c] += p * (double)v_j[c];
                }
            }
        }
        /* A row that sees no key (l = 0) stays zero, and so does its
         * gradient: the backward pass finds no key to recompute. l is NaN
         * after a NaN score, and so is the row. */
        float *out_i = out + i * ld_out;
        for (int64_t c = 0; c < v_dim; c++)
            out_i[c] = l != 0.0 ? (float)(acc[c] / l) : 0.0f;
        if (lse != 0)
            lse[i] = l != 0.0 ? (float)(m + log(l)) : -INFINITY;
    }
}

void tlmi_attention_forward(float *out, float *lse, double *scores,
                            double *acc, const float *q, const float *k,
                            const float *v, const unsigned char *visible,
                            const tlmi_attention_dims *dims, int64_t block) {
    forward(out, lse, scores, acc, q, k, v, visible, dims, block, 0);
}

void tlmi_attention_forward_bf16(float *out, float *lse, double *scores,
                                 double *acc, const float *q, const float *k,
                                 const float *v, const unsigned char *visible,
                                 const tlmi_attention_dims *dims,
                                 int64_t block) {
    forward(out, lse, scores, acc, q, k, v, visible, dims, block, 1);
}

/* Both backward passes: with_bf16 0 (float32) or 1 (bf16 products, see
 * tlmi_attention_backward_bf16). */
static void backward(float *dq, float *dk, float *dv, float *drow,
                     float *probs, const float *dout, const float *q,
                     const float *k, const float *v, const float *out,
                     const float *lse, const unsigned char *visible,
                     const tlmi_attention_dims *dims, int accumulate,
                     int64_t block, int with_bf16) {
    const int64_t tq = dims->tq, tk = dims->tk, dim = dims->dim,
                  v_dim = dims->v_dim, ld_q = dims->ld_q, ld_k = dims->ld_k,
                  ld_v = dims->ld_v, ld_out = dims->ld_out;
    const int causal = dims->causal;
    const float scale = (float)(1.0 / sqrt((double)dim));
    if (!accumulate) {
        /* Overwrite: the sums below start from zero. */
        clear_rows(dq, ld_q, tq, dim);
        clear_rows(dk, ld_k, tk, dim);
        clear_rows(dv, ld_v, tk, v_dim);
    }
    /* drow_i = dout_i . out_i = sum_j p_ij (dout_i . v_j): the softmax's
     * backward term, computed once per row instead of per key. */
    for (int64_t i = 0; i < tq; i++)
        drow[i] = dot(dout + i * ld_out, out + i * ld_out, v_dim);
    /* Key blocks outside, queries inside (FlashAttention-2): dk and dv of
     * one block collect every query's share. */
    for (int64_t j0 = 0; j0 < tk; j0 += block) {
        const int64_t n = tk - j0 < block ? tk - j0 : block;
        /* Causal: the first query that sees key j0 (earlier ones see none
         * of this block). */
        int64_t i_first = causal ? j0 - (tk - tq) : 0;
        if (i_first < 0)
            i_first = 0;
        for (int64_t i = i_first; i < tq; i++) {
            const int64_t limit = tlmi_attention_key_limit(i, tq, tk, causal);
            const int64_t n_i = limit - j0 < n ? limit - j0 : n;
            const float *q_i = q + i * ld_q;
            const float *dout_i = dout + i * ld_out;
            /* p_ij = exp(s_ij - lse_i), 0 for a masked key. */
            for (int64_t jj = 0; jj < n_i; jj++) {
                const int64_t j = j0 + jj;
                const float *k_j = k + j * ld_k;
                probs[jj] = visible != 0 && !visible[j]
                                ? 0.0f
                                : expf((with_bf16 ? dot_bf16(q_i, k_j, dim)
                                                  : dot(q_i, k_j, dim)) *
                                           scale -
                                       lse[i]);
            }
            for (int64_t jj = 0; jj < n_i; jj++) {
                const float p = probs[jj];
                if (p == 0.0f)
                    continue; /* masked (or underflowed): no share */
                const int64_t j = j0 + jj;
                if (with_bf16) {
                    /* P and dS rounded where a product takes them (dS
                     * from the float32 P); drow stays float32. */
                    if (dv != 0)
                        axpy_bf16(dv + j * ld_v, bf16(p), dout_i, v_dim);
                    if (dq == 0 && dk == 0)
                        continue;
                    const float ds =
                        p * (dot_bf16(dout_i, v + j * ld_v, v_dim) - drow[i]);
                    const float g = bf16(scale * ds);
                    if (dq != 0)
                        axpy_bf16(dq + i * ld_q, g, k + j * ld_k, dim);
                    if (dk != 0)
                        axpy_bf16(dk + j * ld_k, g, q_i, dim);
                    continue;
                }
                if (dv != 0)
                    axpy(dv + j * ld_v, p, dout_i, v_dim);
                if (dq == 0 && dk == 0)
                    continue;
                /* ds_ij = p_ij (dp_ij - drow_i), dp_ij = dout_i . v_j: the
                 * gradient of the score s_ij. */
                const float ds =
                    p * (dot(dout_i, v + j * ld_v, v_dim) - drow[i]);
                if (dq != 0)
                    axpy(dq + i * ld_q, scale * ds, k + j * ld_k, dim);
                if (dk != 0)
                    axpy(dk + j * ld_k, scale * ds, q_i, dim);
            }
        }
    }
}

void tlmi_attention_backward(float *dq, float *dk, float *dv, float *drow,
                             float *probs, const float *dout, const float *q,
                             const float *k, const float *v, const float *out,
                             const float *lse, const unsigned char *visible,
                             const tlmi_attention_dims *dims, int accumulate,
                             int64_t block) {
    backward(dq, dk, dv, drow, probs, dout, q, k, v, out, lse, visible, dims,
             accumulate, block, 0);
}

void tlmi_attention_backward_bf16(float *dq, float *dk, float *dv,
                                  float *drow, float *probs,
                                  const float *dout, const float *q,
                                  const float *k, const float *v,
                                  const float *out, const float *lse,
                                  const unsigned char *visible,
                                  const tlmi_attention_dims *dims,
                                  int accumulate, int64_t block) {
    backward(dq, dk, dv, drow, probs, dout, q, k, v, out, lse, visible, dims,
             accumulate, block, 1);
}

/* ---- The scalar table's entries (kernels/attention.h) -----------------
 * The reference itself, its scratch carved from the workspace: forward
 * scores [block] and acc [v_dim] (double), backward drow [tq] and probs
 * [block] (float). */

size_t tlmi_attention_workspace_scalar(int64_t tq, int64_t tk, int64_t dim,
                                       int64_t v_dim, int backward) {
    (void)tk, (void)dim;
    if (tq < 0 || v_dim < 0 ||
        (uint64_t)v_dim > SIZE_MAX / sizeof(double) - TLMI_ATTENTION_BLOCK - 1 ||
        (uint64_t)tq > SIZE_MAX / sizeof(float) - TLMI_ATTENTION_BLOCK)
        return SIZE_MAX;
    /* + 8: the doubles start at the first 8-byte boundary of a workspace
     * that may be only 4-byte aligned. */
    const size_t forward =
        ((size_t)TLMI_ATTENTION_BLOCK + (size_t)v_dim) * sizeof(double) + 8;
    const size_t back =
        ((size_t)tq + (size_t)TLMI_ATTENTION_BLOCK) * sizeof(float);
    return backward && back > forward ? back : forward;
}

void tlmi_attention_forward_scalar(float *out, float *lse, const float *q,
                                   const float *k, const float *v,
                                   const unsigned char *visible,
                                   const tlmi_attention_dims *dims,
                                   void *workspace) {
    double *scores =
        (double *)(((uintptr_t)workspace + 7) & ~(uintptr_t)7);
    tlmi_attention_forward(out, lse, scores, scores + TLMI_ATTENTION_BLOCK,
                           q, k, v, visible, dims, TLMI_ATTENTION_BLOCK);
}

void tlmi_attention_backward_scalar(float *dq, float *dk, float *dv,
                                    const float *dout, const float *q,
                                    const float *k, const float *v,
                                    const float *out, const float *lse,
                                    const unsigned char *visible,
                                    const tlmi_attention_dims *dims,
                                    int accumulate, void *workspace) {
    float *probs = workspace;
    tlmi_attention_backward(dq, dk, dv, probs + TLMI_ATTENTION_BLOCK, probs,
                            dout, q, k, v, out, lse, visible, dims,
                            accumulate, TLMI_ATTENTION_BLOCK);
}

void tlmi_attention_forward_bf16_scalar(float *out, float *lse,
                                        const float *q, const float *k,
                                        const float *v,
                                        const unsigned char *visible,
                                        const tlmi_attention_dims *dims,
                                        void *workspace) {
    double *scores =
        (double *)(((uintptr_t)workspace + 7) & ~(uintptr_t)7);
    tlmi_attention_forward_bf16(out, lse, scores,
                                scores + TLMI_ATTENTION_BLOCK, q, k, v,
                                visible, dims, TLMI_ATTENTION_BLOCK);
}

void tlmi_attention_backward_bf16_scalar(
    float *dq, float *dk, float *dv, const float *dout, const float *q,
    const float *k, const float *v, const float *out, const float *lse,
    const unsigned char *visible, const tlmi_attention_dims *dims,
    int accumulate, void *workspace) {
    float *probs = workspace;
    tlmi_attention_backward_bf16(dq, dk, dv, probs + TLMI_ATTENTION_BLOCK,
                                 probs, dout, q, k, v, out, lse, visible,
                                 dims, accumulate, TLMI_ATTENTION_BLOCK);
}

void tlmi_attention_exp2_scalar(float *y, const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        y[i] = exp2f(x[i]);
}
