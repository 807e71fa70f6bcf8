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
 * src: q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv], key_mask NULL
 * or [B, Tk] (f32 or i32).
 * iparam[0] = B, [1] = H, [2] = Tq, [3] = Tk, [4] = D, [5] = Dv,
 * [6] = causal.
 */
#include "ops.h"

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
    float *dq, *dk, *dv; /* backward: the gradients to add into, or NULL */
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
        run->kernels->attention_forward(
            (float *)out->data + head * tq * v_dim,
            saved->lse != NULL ? saved->lse + head * tq : NULL,
            (const float *)q->data + head * tq * dim,
            (const float *)k->data + head * tk * dim,
            (const float *)v->data + head * tk * v_dim,
            saved->visible != NULL ? saved->visible + b * tk : NULL, tq, tk,
            dim, v_dim, dim, dim, v_dim, v_dim, causal, workspace);
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
        run->kernels->attention_backward(
            run->dq != NULL ? run->dq + head * tq * dim : NULL,
            run->dk != NULL ? run->dk + head * tk * dim : NULL,
            run->dv != NULL ? run->dv + head * tk * v_dim : NULL,
            out->grad + head * tq * v_dim,
            (const float *)q->data + head * tq * dim,
            (const float *)k->data + head * tk * dim,
            (const float *)v->data + head * tk * v_dim,
            (const float *)out->data + head * tq * v_dim,
            saved->lse + head * tq,
            saved->visible != NULL ? saved->visible + b * tk : NULL, tq, tk,
            dim, v_dim, dim, dim, v_dim, v_dim, causal, 1, workspace);
    }
}

static void attention_backward(tlm_tensor *out) {
    tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    if (saved->lse == NULL)
        return; /* not reached: the buffers exist when the result has a grad */
    attention_run run = {
        .out = out,
        .dq = tlmi_wants_grad(q) ? tlmi_grad_accumulator(q) : NULL,
        .dk = tlmi_wants_grad(k) ? tlmi_grad_accumulator(k) : NULL,
        .dv = tlmi_wants_grad(v) ? tlmi_grad_accumulator(v) : NULL};
    if (run.dq == NULL && run.dk == NULL && run.dv == NULL)
        return; /* only the mask asked for a gradient; it never gets one */
    choose_kernels(&run, 1);
    tlmi_parallel_for(out->ctx->pool, out->iparam[0] * out->iparam[1], 1,
                      backward_heads, &run);
}

static const tlmi_op attention_op = {"tlm_attention", attention_forward,
                                     attention_backward};

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
    if (v->shape[2] != k->shape[2])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: v %s must have k %s's Tk = %lld keys "
                            "(dimension 2)",
                            name, sv, sk, (long long)k->shape[2]);
    if (k->shape[3] != q->shape[3])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: k %s must have q %s's D = %lld (the last "
                            "dimension)",
                            name, sk, sq, (long long)q->shape[3]);
    if (mask != NULL && (mask->ndim != 2 || mask->shape[0] != q->shape[0] ||
                         mask->shape[1] != k->shape[2])) {
        char sm[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: key_mask %s must be [%lld, %lld] ([B, Tk] "
                            "of q %s and k %s)",
                            name, tlmi_shape_string(mask, sm, sizeof sm),
                            (long long)q->shape[0], (long long)k->shape[2],
                            sq, sk);
    }
    return TLM_OK;
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

TLM_API int tlm_attention(tlm_tensor **out, tlm_tensor *q, tlm_tensor *k,
                          tlm_tensor *v, tlm_tensor *key_mask, int32_t flags) {
    const char *name = attention_op.name;
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "%s: out is NULL", name);
    *out = NULL;
    tlm_context *ctx = NULL;
    int status = tlmi_op_input(name, "q", q, TLM_DTYPE_F32, &ctx);
    if (status == TLM_OK)
        status = tlmi_op_input(name, "k", k, TLM_DTYPE_F32, &ctx);
    if (status == TLM_OK)
        status = tlmi_op_input(name, "v", v, TLM_DTYPE_F32, &ctx);
    /* The mask may be f32 or i32, the only two dtypes a tensor can have. */
    if (status == TLM_OK && key_mask != NULL)
        status = tlmi_op_input(name, "key_mask", key_mask, -1, &ctx);
    if (status != TLM_OK)
        return status;
    if ((flags & ~(int32_t)TLM_ATTENTION_CAUSAL) != 0)
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "%s: unknown flags 0x%x (only "
                            "TLM_ATTENTION_CAUSAL = 1 is defined)",
                            name, (unsigned)flags);
    status = check_shapes(ctx, name, q, k, v, key_mask);
    if (status != TLM_OK)
        return status;
    const int64_t shape[4] = {q->shape[0], q->shape[1], q->shape[2],
                              v->shape[3]};
    tlm_tensor *srcs[4] = {q, k, v, key_mask};
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, &attention_op, TLM_DTYPE_F32, 4,
                               shape, srcs, 4);
    if (status == TLM_OK) {
        result->iparam[0] = q->shape[0];
        result->iparam[1] = q->shape[1];
        result->iparam[2] = q->shape[2];
        result->iparam[3] = k->shape[2];
        result->iparam[4] = q->shape[3];
        result->iparam[5] = v->shape[3];
        result->iparam[6] = (flags & TLM_ATTENTION_CAUSAL) != 0;
        status = alloc_saved(result, name, key_mask);
    }
    return tlmi_result_finish(out, result, status);
}
