/*
 * Fused attention kernels of one head: the signatures every ISA's table
 * entry shares (see kernels/scalar/attention.h for the semantics, which
 * every entry follows: causal or not, the padding flags `visible`, Tq <= or
 * > Tk with the queries as the last Tq positions, lse saved by the forward
 * pass and used by the backward pass, gradients accumulated into or overwritten).
 *
 * Per head: q [tq, dim], k [tk, dim], v [tk, v_dim], out [tq, v_dim],
 * row-major with row strides (in floats) ld_q >= dim, ld_k >= dim,
 * ld_v >= v_dim, ld_out >= v_dim: row i of q at q + i * ld_q, and so on,
 * so that a caller can run one head of [B, T, H * hd] projections in place
 * (head h at column h * hd, stride H * hd) without split/merge copies. The
 * columns between rows are neither read into a result nor written. Each
 * gradient has the layout (and stride) of its value: dq ld_q, dk ld_k,
 * dv ld_v, dout ld_out. lse is contiguous [tq]. tq, tk, dim, v_dim >= 1.
 *
 * Workspace: each call packs what it needs (keys transposed into panels,
 * padded rows, running sums) into `workspace`, which the caller owns and
 * sizes with the table's `attention_workspace`: O((tq + tk) * (dim +
 * v_dim)) bytes, never a tq x tk matrix. Any alignment of 4 bytes works;
 * 64 is fastest. One workspace per thread: a call uses only its own.
 *
 * The SIMD entries (attention_tmpl.c) compute in float with a polynomial
 * exp; the results differ from the double-accumulating reference by
 * rounding (tests/kernels/test_attention.c states the tolerances).
 */
#ifndef TLM_LIB_KERNELS_ATTENTION_H
#define TLM_LIB_KERNELS_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* The sizes of one head's call (all of them >= 1; strides in floats). */
typedef struct tlmi_attention_dims {
    int64_t tq, tk;                   /* query rows, key (and value) rows */
    int64_t dim, v_dim;               /* q and k columns, v and out columns */
    int64_t ld_q, ld_k, ld_v, ld_out; /* row strides, >= the columns */
    int causal;                       /* 1: query i sees keys up to
                                         tk - tq + i only */
} tlmi_attention_dims;

/* Bytes of workspace one call needs: the forward pass alone (backward 0)
 * or either pass (backward 1). SIZE_MAX when the count overflows. */
typedef size_t (*tlmi_attention_workspace_fn)(int64_t tq, int64_t tk,
                                              int64_t dim, int64_t v_dim,
                                              int backward);

/* out [tq, v_dim] (stride ld_out); lse [tq] or NULL (logsumexp of each
 * row's visible scores, -INFINITY for a row that sees no key, whose output
 * is zero). */
typedef void (*tlmi_attention_forward_fn)(
    float *out, float *lse, const float *q, const float *k, const float *v,
    const unsigned char *visible, const tlmi_attention_dims *dims,
    void *workspace);

/* dq [tq, dim], dk [tk, dim], dv [tk, v_dim], each may be NULL: with
 * accumulate 1 the gradients are added into them; with accumulate 0 every
 * element of each non-NULL one is overwritten (zero where no query or key
 * contributes), so the caller need not clear them first. dout [tq, v_dim]
 * (stride ld_out, like out), out and lse as the forward pass left them. */
typedef void (*tlmi_attention_backward_fn)(
    float *dq, float *dk, float *dv, const float *dout, const float *q,
    const float *k, const float *v, const float *out, const float *lse,
    const unsigned char *visible, const tlmi_attention_dims *dims,
    int accumulate, void *workspace);

/* The SIMD kernels' exp2 (attention_tmpl.c keeps its scores in base 2):
 * x raised to at least MIN (NaN kept), n = round(x), r = x - n in
 * [-1/2, 1/2] (exact), 2^r ~ 1 + r (C1 + r (C2 + r (C3 + r (C4 + r (C5 +
 * r C6))))), times 2^n built in the exponent bits; n = -127 gives the
 * bits of 0, so x <= -127 and -inf give exactly 0. No upper clamp: x must
 * stay below 128 (softmax arguments are at most a rounding error above
 * 0). The coefficients are a minimax fit of relative error 2e-9 on
 * [-1/2, 1/2] (Lawson's iteration, computed for tlm). */
#define TLMI_EXP2_C1 6.9314720286e-01f
#define TLMI_EXP2_C2 2.4022647914e-01f
#define TLMI_EXP2_C3 5.5503324708e-02f
#define TLMI_EXP2_C4 9.6184373583e-03f
#define TLMI_EXP2_C5 1.3398874557e-03f
#define TLMI_EXP2_C6 1.5353362058e-04f
#define TLMI_EXP2_MIN -127.0f

/* Declares the entries of one ISA: the float32 ones, the bf16 ones
 * (forward_bf16, backward_bf16: the same contract and workspace, with
 * the six products q k^T, P V, dout V^T, P^T dout, dS K and dS^T Q taking
 * bf16 inputs, q, k, v, dout, P and dS rounded to bf16 nearest even
 * before the product reads them, summed in float32; the softmax, lse,
 * scaling and drow = dout . out stay float32; issue #22's mixed
 * precision, see attention_tmpl.c "bf16 products"). */
#define TLMI_ATTENTION_DECLARE(isa)                                         \
    size_t tlmi_attention_workspace_##isa(int64_t tq, int64_t tk,           \
                                          int64_t dim, int64_t v_dim,       \
                                          int backward);                    \
    void tlmi_attention_forward_##isa(                                      \
        float *out, float *lse, const float *q, const float *k,             \
        const float *v, const unsigned char *visible,                       \
        const tlmi_attention_dims *dims, void *workspace);                  \
    void tlmi_attention_backward_##isa(                                     \
        float *dq, float *dk, float *dv, const float *dout, const float *q, \
        const float *k, const float *v, const float *out, const float *lse, \
        const unsigned char *visible, const tlmi_attention_dims *dims,      \
        int accumulate, void *workspace);                                   \
    void tlmi_attention_forward_bf16_##isa(                                 \
        float *out, float *lse, const float *q, const float *k,             \
        const float *v, const unsigned char *visible,                       \
        const tlmi_attention_dims *dims, void *workspace);                  \
    void tlmi_attention_backward_bf16_##isa(                                \
        float *dq, float *dk, float *dv, const float *dout, const float *q, \
        const float *k, const float *v, const float *out, const float *lse, \
        const unsigned char *visible, const tlmi_attention_dims *dims,      \
        int accumulate, void *workspace);                                   \
    /* y[i] = 2^x[i] with the kernel's polynomial, for the tests. */        \
    void tlmi_attention_exp2_##isa(float *y, const float *x, int64_t n)

/* Scalar: the double-accumulating reference (kernels/scalar/attention.c),
 * its scratch carved from the workspace. Its exp2 entry is exp2f. Its
 * bf16 entries are the reference on rounded operands
 * (tlmi_attention_forward_bf16, tlmi_attention_backward_bf16). */
TLMI_ATTENTION_DECLARE(scalar);

#if defined(TLMI_HAVE_AVX2)
TLMI_ATTENTION_DECLARE(avx2);
#endif
#if defined(TLMI_HAVE_AVX512)
TLMI_ATTENTION_DECLARE(avx512);
#endif
#if defined(TLMI_HAVE_NEON)
TLMI_ATTENTION_DECLARE(neon);
#endif

#endif
