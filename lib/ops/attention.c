/*
 * Fused scaled dot-product attention, softmax(q k^T / sqrt(D) + mask) v,
 * one head at a time without a Tq x Tk matrix (see
 * kernels/scalar/attention.h). The backward pass recomputes the
 * probabilities from the per-row logsumexp the forward pass saves. The
 * kernels are the dispatched ones (kernels/attention.h: SIMD where the
 * CPU has it); the (batch x head) pairs are shared out over the context's
 * thread pool, each head computed whole by one thread, so the results are
 * the same for any thread count.
 *
 * Two layouts of the same operation. tlm_attention: q [B, H, Tq, D],
 * k [B, H, Tk, D], v [B, H, Tk, Dv], result [B, H, Tq, Dv].
 * tlm_multi_head_attention: the heads packed side by side in the last
 * dimension, as the projections make them: q [B, Tq, H*D], k [B, Tk, H*D],
 * v [B, Tk, H*Dv], result [B, Tq, H*Dv]; the kernels read and write each
 * head in place through row strides, so no split or merge copies (nor
 * their gradients) exist. key_mask NULL or [B, Tk] (f32 or i32).
 * iparam[0] = B, [1] = H, [2] = Tq, [3] = Tk, [4] = D, [5] = Dv,
 * [6] = causal, [7] = packed layout.
 */
#include "ops.h"

#include <string.h>

#include "context.h"
#include "kernels/dispatch.h"
#include "kernels/scalar/attention.h"
#include "pool.h"

/* Buffers made at creation, so that neither pass allocates. The kernels'
 * scratch is the context's workspace, one slice per thread, made large
 * enough at creation for the active kernels and for the scalar ones (the
 * fallback when the active table changed to one needing more). */
typedef struct attention_saved {
    unsigned char *visible; /* [B, Tk] key_mask != 0, or NULL without mask */
    /* Only when the result has a gradient (else NULL): */
    float *lse;             /* [B, H, Tq] saved by forward for backward */
} attention_saved;

/* One pass over the (batch x head) pairs, shared by the threads: each
 * head is computed whole by one thread, so the results do not depend on
 * the thread count. */
typedef struct attention_run {
    tlm_tensor *out;
    const tlmi_kernels *kernels;
    unsigned char *workspace; /* thread t's slice at t * stride */
    size_t stride;
    float *dq, *dk, *dv; /* backward: the gradients to give, or NULL */
    int accumulate;      /* backward: add into them (else write them) */
} attention_run;

/* Bytes of one thread's slice for `kernels`, a multiple of 64, or
 * SIZE_MAX on overflow. */
static size_t slice_bytes(const tlmi_kernels *kernels, const int64_t *iparam,
                          int backward) {
    const size_t bytes = kernels->attention_workspace(
        iparam[2], iparam[3], iparam[4], iparam[5], backward);
    return bytes > SIZE_MAX - 63 ? SIZE_MAX : (bytes + 63) / 64 * 64;
}

/* Sets run->kernels, ->workspace and ->stride: the active table when the
 * workspace is large enough for it, else the scalar one (which creation
 * made room for). */
static void choose_kernels(attention_run *run, int backward) {
    tlm_context *ctx = run->out->ctx;
    const size_t threads = (size_t)tlmi_pool_threads(ctx->pool);
    const tlmi_kernels *kernels = tlmi_kernels_active();
    size_t stride = slice_bytes(kernels, run->out->iparam, backward);
    if (stride == SIZE_MAX || stride > ctx->workspace_bytes / threads) {
        kernels = tlmi_kernels_for(TLMI_ISA_SCALAR);
        stride = slice_bytes(kernels, run->out->iparam, backward);
    }
    run->kernels = kernels;
    run->workspace = ctx->workspace;
    run->stride = stride;
}

/* Where head `head` (b * H + h) starts in each operand, in floats, and the
 * operands' row strides. */
typedef struct head_offsets {
    int64_t q, k, v, out;
    int64_t ld_q, ld_k, ld_v, ld_out;
} head_offsets;

static head_offsets offsets_of(const tlm_tensor *out, int64_t head) {
    const int64_t heads = out->iparam[1], tq = out->iparam[2],
                  tk = out->iparam[3], dim = out->iparam[4],
                  v_dim = out->iparam[5];
    if (!out->iparam[7])
        return (head_offsets){head * tq * dim, head * tk * dim,
                              head * tk * v_dim, head * tq * v_dim,
                              dim, dim, v_dim, v_dim};
    const int64_t b = head / heads, h = head % heads;
    return (head_offsets){b * tq * heads * dim + h * dim,
                          b * tk * heads * dim + h * dim,
                          b * tk * heads * v_dim + h * v_dim,
                          b * tq * heads * v_dim + h * v_dim,
                          heads * dim, heads * dim, heads * v_dim,
                          heads * v_dim};
}

static void forward_heads(void *arg, int64_t begin, int64_t end,
                          int thread) {
    const attention_run *run = arg;
    const tlm_tensor *out = run->out;
    const tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    const int64_t heads = out->iparam[1], tq = out->iparam[2],
                  tk = out->iparam[3], dim = out->iparam[4],
                  v_dim = out->iparam[5];
    const int causal = (int)out->iparam[6];
    void *workspace = run->workspace + (size_t)thread * run->stride;
    for (int64_t head = begin; head < end; head++) {
        const int64_t b = head / heads;
        const head_offsets at = offsets_of(out, head);
        run->kernels->attention_forward(
            (float *)out->data + at.out,
            saved->lse != NULL ? saved->lse + head * tq : NULL,
            (const float *)q->data + at.q, (const float *)k->data + at.k,
            (const float *)v->data + at.v,
            saved->visible != NULL ? saved->visible + b * tk : NULL, tq, tk,
            dim, v_dim, at.ld_q, at.ld_k, at.ld_v, at.ld_out, causal,
            workspace);
    }
}

static int attention_forward(tlm_tensor *out) {
    const tlm_tensor *mask = out->src[3];
    const attention_saved *saved = out->saved;
    if (mask != NULL) {
        /* Re-read each run: the mask is an input like any other. */
        if (mask->dtype == TLM_DTYPE_I32)
            tlmi_attention_visible_i32(saved->visible, mask->data, mask->numel);
        else
            tlmi_attention_visible_f32(saved->visible, mask->data, mask->numel);
    }
    attention_run run = {.out = out};
    choose_kernels(&run, 0);
    tlmi_parallel_for(out->ctx->pool, out->iparam[0] * out->iparam[1], 1,
                      forward_heads, &run);
    return TLM_OK;
}

static void backward_heads(void *arg, int64_t begin, int64_t end,
                           int thread) {
    const attention_run *run = arg;
    const tlm_tensor *out = run->out;
    tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    const int64_t heads = out->iparam[1], tq = out->iparam[2],
                  tk = out->iparam[3], dim = out->iparam[4],
                  v_dim = out->iparam[5];
    const int causal = (int)out->iparam[6];
    void *workspace = run->workspace + (size_t)thread * run->stride;
    for (int64_t head = begin; head < end; head++) {
        const int64_t b = head / heads;
        const head_offsets at = offsets_of(out, head);
        run->kernels->attention_backward(
            run->dq != NULL ? run->dq + at.q : NULL,
            run->dk != NULL ? run->dk + at.k : NULL,
            run->dv != NULL ? run->dv + at.v : NULL, out->grad + at.out,
            (const float *)q->data + at.q, (const float *)k->data + at.k,
            (const float *)v->data + at.v,
            (const float *)out->data + at.out, saved->lse + head * tq,
            saved->visible != NULL ? saved->visible + b * tk : NULL, tq, tk,
            dim, v_dim, at.ld_q, at.ld_k, at.ld_v, at.ld_out, causal,
            run->accumulate, workspace);
    }
}

/* The kernels write the three gradients (a first share of each, every
 * element written once over the heads) or add into all of them. Adding is
 * the way when any of them already holds a share, or when two of q, k, v
 * are one tensor (one call would write its gradient twice); then those that
 * hold none yet are cleared first. */
static void attention_backward(tlm_tensor *out) {
    tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    if (saved->lse == NULL)
        return; /* not reached: the buffers exist when the result has a grad */
    tlm_tensor *const inputs[3] = {q, k, v};
    float *grads[3] = {NULL, NULL, NULL};
    int first[3] = {0, 0, 0}, accumulate = q == k || q == v || k == v;
    for (int i = 0; i < 3; i++) {
        if (!tlmi_wants_grad(inputs[i]))
            continue;
        int adds;
        grads[i] = tlmi_grad_target(inputs[i], &adds);
        first[i] = !adds;
        accumulate |= adds;
    }
    if (grads[0] == NULL && grads[1] == NULL && grads[2] == NULL)
        return; /* only the mask asked for a gradient; it never gets one */
    for (int i = 0; accumulate && i < 3; i++)
        if (first[i])
            memset(grads[i], 0, (size_t)inputs[i]->numel * sizeof(float));
    attention_run run = {.out = out, .dq = grads[0], .dk = grads[1],
                         .dv = grads[2], .accumulate = accumulate};
    choose_kernels(&run, 1);
    tlmi_parallel_for(out->ctx->pool, out->iparam[0] * out->iparam[1], 1,
                      backward_heads, &run);
}

static const tlmi_op attention_op = {"tlm_attention", attention_forward,
                                     attention_backward};
static const tlmi_op multi_head_op = {"tlm_multi_head_attention",
                                      attention_forward, attention_backward};

/* The checks both layouts share: v has k's Tk keys (dimension `axis` of
 * both) and key_mask, when given, is [B, Tk]. sq, sk, sv: the shapes as
 * text. */
static int check_keys_and_mask(tlm_context *ctx, const char *name,
                               const tlm_tensor *q, const tlm_tensor *k,
                               const tlm_tensor *v, const tlm_tensor *mask,
                               int32_t axis, const char *sq, const char *sk,
                               const char *sv) {
    if (v->shape[axis] != k->shape[axis])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: v %s must have k %s's Tk = %lld keys "
                            "(dimension %d)",
                            name, sv, sk, (long long)k->shape[axis],
                            (int)axis);
    if (mask != NULL && (mask->ndim != 2 || mask->shape[0] != q->shape[0] ||
                         mask->shape[1] != k->shape[axis])) {
        char sm[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: key_mask %s must be [%lld, %lld] ([B, Tk] "
                            "of q %s and k %s)",
                            name, tlmi_shape_string(mask, sm, sizeof sm),
                            (long long)q->shape[0], (long long)k->shape[axis],
                            sq, sk);
    }
    return TLM_OK;
}

/* Checks the shapes of q, k, v and key_mask against each other. */
static int check_shapes(tlm_context *ctx, const char *name,
                        const tlm_tensor *q, const tlm_tensor *k,
                        const tlm_tensor *v, const tlm_tensor *mask) {
    char sq[64], sk[64], sv[64];
    tlmi_shape_string(q, sq, sizeof sq);
    tlmi_shape_string(k, sk, sizeof sk);
    tlmi_shape_string(v, sv, sizeof sv);
    if (q->ndim != 4 || k->ndim != 4 || v->ndim != 4)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must all be 4-D "
                            "[B, H, T, D]",
                            name, sq, sk, sv);
    if (k->shape[0] != q->shape[0] || k->shape[1] != q->shape[1] ||
        v->shape[0] != q->shape[0] || v->shape[1] != q->shape[1])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must have the same "
                            "B and H (the first two dimensions)",
                            name, sq, sk, sv);
    if (k->shape[3] != q->shape[3])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: k %s must have q %s's D = %lld (the last "
                            "dimension)",
                            name, sk, sq, (long long)q->shape[3]);
    return check_keys_and_mask(ctx, name, q, k, v, mask, 2, sq, sk, sv);
}

/* Checks the shapes of tlm_multi_head_attention's q [B, Tq, H*D],
 * k [B, Tk, H*D], v [B, Tk, H*Dv] and key_mask [B, Tk]. */
static int check_packed_shapes(tlm_context *ctx, const char *name,
                               const tlm_tensor *q, const tlm_tensor *k,
                               const tlm_tensor *v, const tlm_tensor *mask,
                               int32_t n_heads) {
    char sq[64], sk[64], sv[64];
    tlmi_shape_string(q, sq, sizeof sq);
    tlmi_shape_string(k, sk, sizeof sk);
    tlmi_shape_string(v, sv, sizeof sv);
    if (q->ndim != 3 || k->ndim != 3 || v->ndim != 3)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must all be 3-D "
                            "[B, T, heads x D]",
                            name, sq, sk, sv);
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must have the same B "
                            "(dimension 0)",
                            name, sq, sk, sv);
    if (k->shape[2] != q->shape[2])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: k %s must have q %s's last dimension %lld",
                            name, sk, sq, (long long)q->shape[2]);
    if (n_heads < 1 || q->shape[2] % n_heads != 0 ||
        v->shape[2] % n_heads != 0)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: n_heads %d must be >= 1 and divide the last "
                            "dimensions of q %s and v %s",
                            name, (int)n_heads, sq, sv);
    return check_keys_and_mask(ctx, name, q, k, v, mask, 1, sq, sk, sv);
}

/* Allocates the saved struct and its buffers, and makes the context's
 * workspace large enough for every thread's slice; a status. */
static int alloc_saved(tlm_tensor *result, const char *name,
                       const tlm_tensor *mask) {
    const int64_t batch = result->iparam[0], heads = result->iparam[1],
                  tq = result->iparam[2], tk = result->iparam[3];
    attention_saved *saved = tlmi_result_alloc(result, sizeof *saved);
    if (saved == NULL)
        goto nomem;
    *saved = (attention_saved){0};
    result->saved = saved;
    /* Every count below is at most the element count of an input or of
     * the result, all of which tlmi_shape_numel bounded to a quarter of
     * SIZE_MAX bytes: doubling them cannot overflow. */
    if (mask != NULL) {
        saved->visible = tlmi_result_alloc(result, (size_t)(batch * tk));
        if (saved->visible == NULL)
            goto nomem;
    }
    /* The backward pass runs only on a result with a gradient. */
    const int backward = result->grad != NULL;
    if (backward) {
        saved->lse = tlmi_result_alloc(result, (size_t)(batch * heads * tq) *
                                                   sizeof(float));
        if (saved->lse == NULL)
            goto nomem;
    }
    size_t slice = slice_bytes(tlmi_kernels_active(), result->iparam, backward);
    const size_t scalar = slice_bytes(tlmi_kernels_for(TLMI_ISA_SCALAR),
                                      result->iparam, backward);
    if (scalar > slice)
        slice = scalar;
    const size_t threads = (size_t)tlmi_pool_threads(result->ctx->pool);
    if (slice == SIZE_MAX || slice > SIZE_MAX / threads)
        return tlmi_op_fail(result->ctx, TLM_E_OVERFLOW,
                            "%s: the kernels' workspace for Tq %lld, Tk %lld, "
                            "D %lld, Dv %lld and %zu threads overflows",
                            name, (long long)tq, (long long)tk,
                            (long long)result->iparam[4],
                            (long long)result->iparam[5], threads);
    return tlmi_context_reserve_workspace(result->ctx, slice * threads, name);
nomem:
    return tlmi_op_fail(result->ctx, TLM_E_NOMEM,
                        "%s: allocating the saved buffers failed", name);
}

/* Both public functions: n_heads 0 for tlm_attention's layout. */
static int attention_create(tlm_tensor **out, const tlmi_op *op,
                            tlm_tensor *q, tlm_tensor *k, tlm_tensor *v,
                            tlm_tensor *key_mask, int32_t n_heads,
                            int32_t flags) {
    const char *name = op->name;
    tlm_context *ctx = NULL;
    /* The mask may be f32 or i32, the only two dtypes a tensor can have. */
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(q, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(k, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(v, TLM_DTYPE_F32),
                     TLMI_OP_OPTIONAL(key_mask, -1));
    if ((flags & ~(int32_t)TLM_ATTENTION_CAUSAL) != 0)
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "%s: unknown flags 0x%x (only "
                            "TLM_ATTENTION_CAUSAL = 1 is defined)",
                            name, (unsigned)flags);
    const int packed = op == &multi_head_op;
    int status = packed ? check_packed_shapes(ctx, name, q, k, v, key_mask,
                                              n_heads)
                        : check_shapes(ctx, name, q, k, v, key_mask);
    if (status != TLM_OK)
        return status;
    int64_t iparam[8];
    if (packed) {
        iparam[0] = q->shape[0];
        iparam[1] = n_heads;
        iparam[2] = q->shape[1];
        iparam[3] = k->shape[1];
        iparam[4] = q->shape[2] / n_heads;
        iparam[5] = v->shape[2] / n_heads;
    } else {
        iparam[0] = q->shape[0];
        iparam[1] = q->shape[1];
        iparam[2] = q->shape[2];
        iparam[3] = k->shape[2];
        iparam[4] = q->shape[3];
        iparam[5] = v->shape[3];
    }
    iparam[6] = (flags & TLM_ATTENTION_CAUSAL) != 0;
    iparam[7] = packed;
    const int64_t heads_first[4] = {iparam[0], iparam[1], iparam[2],
                                    iparam[5]};
    const int64_t side_by_side[3] = {iparam[0], iparam[2], v->shape[2]};
    tlm_tensor *srcs[4] = {q, k, v, key_mask};
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32,
                               packed ? 3 : 4,
                               packed ? side_by_side : heads_first, srcs, 4);
    if (status == TLM_OK) {
        memcpy(result->iparam, iparam, sizeof iparam);
        status = alloc_saved(result, name, key_mask);
    }
    return tlmi_result_finish(out, result, status);
}

TLM_API int tlm_attention(tlm_tensor **out, tlm_tensor *q, tlm_tensor *k,
                          tlm_tensor *v, tlm_tensor *key_mask, int32_t flags) {
    return attention_create(out, &attention_op, q, k, v, key_mask, 0, flags);
}

TLM_API int tlm_multi_head_attention(tlm_tensor **out, tlm_tensor *q,
                                     tlm_tensor *k, tlm_tensor *v,
                                     tlm_tensor *key_mask, int32_t n_heads,
                                     int32_t flags) {
    return attention_create(out, &multi_head_op, q, k, v, key_mask, n_heads,
                            flags);
}
