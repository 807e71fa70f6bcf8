/*
 * Fused scaled dot-product attention, softmax(q k^T / sqrt(D) + mask) v,
 * one head at a time without a Tq x Tk matrix (see
 * kernels/scalar/attention.h). The backward pass recomputes the
 * probabilities from the per-row logsumexp the forward pass saves.
 *
 * src: q [B, H, Tq, D], k [B, H, Tk, D], v [B, H, Tk, Dv], key_mask NULL
 * or [B, Tk] (f32 or i32).
 * iparam[0] = B, [1] = H, [2] = Tq, [3] = Tk, [4] = D, [5] = Dv,
 * [6] = causal.
 */
#include "ops.h"

#include "kernels/scalar/attention.h"

/* Buffers made at creation, so that neither pass allocates. */
typedef struct attention_saved {
    unsigned char *visible; /* [B, Tk] key_mask != 0, or NULL without mask */
    double *scores;         /* [TLMI_ATTENTION_BLOCK] forward scratch */
    double *acc;            /* [Dv] forward scratch */
    /* Only when the result has a gradient (else NULL): */
    float *lse;             /* [B, H, Tq] saved by forward for backward */
    float *drow;            /* [Tq] backward scratch */
    float *probs;           /* [TLMI_ATTENTION_BLOCK] backward scratch */
} attention_saved;

static int attention_forward(tlm_tensor *out) {
    const tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2],
                     *mask = out->src[3];
    const attention_saved *saved = out->saved;
    const int64_t batch = out->iparam[0], heads = out->iparam[1],
                  tq = out->iparam[2], tk = out->iparam[3],
                  dim = out->iparam[4], v_dim = out->iparam[5];
    const int causal = (int)out->iparam[6];
    if (mask != NULL) {
        /* Re-read each run: the mask is an input like any other. */
        if (mask->dtype == TLM_DTYPE_I32)
            tlmi_attention_visible_i32(saved->visible, mask->data, mask->numel);
        else
            tlmi_attention_visible_f32(saved->visible, mask->data, mask->numel);
    }
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++) {
            const int64_t head = b * heads + h;
            tlmi_attention_forward(
                (float *)out->data + head * tq * v_dim,
                saved->lse != NULL ? saved->lse + head * tq : NULL,
                saved->scores, saved->acc,
                (const float *)q->data + head * tq * dim,
                (const float *)k->data + head * tk * dim,
                (const float *)v->data + head * tk * v_dim,
                saved->visible != NULL ? saved->visible + b * tk : NULL, tq,
                tk, dim, v_dim, causal, TLMI_ATTENTION_BLOCK);
        }
    return TLM_OK;
}

static void attention_backward(tlm_tensor *out) {
    tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    const int64_t batch = out->iparam[0], heads = out->iparam[1],
                  tq = out->iparam[2], tk = out->iparam[3],
                  dim = out->iparam[4], v_dim = out->iparam[5];
    const int causal = (int)out->iparam[6];
    if (saved->lse == NULL)
        return; /* not reached: the buffers exist when the result has a grad */
    const int want_q = tlmi_wants_grad(q), want_k = tlmi_wants_grad(k),
              want_v = tlmi_wants_grad(v);
    if (!want_q && !want_k && !want_v)
        return; /* only the mask asked for a gradient; it never gets one */
    for (int64_t b = 0; b < batch; b++)
        for (int64_t h = 0; h < heads; h++) {
            const int64_t head = b * heads + h;
            tlmi_attention_backward(
                want_q ? q->grad + head * tq * dim : NULL,
                want_k ? k->grad + head * tk * dim : NULL,
                want_v ? v->grad + head * tk * v_dim : NULL, saved->drow,
                saved->probs, out->grad + head * tq * v_dim,
                (const float *)q->data + head * tq * dim,
                (const float *)k->data + head * tk * dim,
                (const float *)v->data + head * tk * v_dim,
                (const float *)out->data + head * tq * v_dim,
                saved->lse + head * tq,
                saved->visible != NULL ? saved->visible + b * tk : NULL, tq,
                tk, dim, v_dim, causal, TLMI_ATTENTION_BLOCK);
        }
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

/* Allocates the saved struct and its buffers; a status. */
static int alloc_saved(tlm_tensor *result, const char *name,
                       const tlm_tensor *mask) {
    const int64_t batch = result->iparam[0], heads = result->iparam[1],
                  tq = result->iparam[2], tk = result->iparam[3],
                  v_dim = result->iparam[5];
    const size_t block_floats = TLMI_ATTENTION_BLOCK;
    attention_saved *saved = tlmi_result_alloc(result, sizeof *saved);
    if (saved == NULL)
        goto nomem;
    *saved = (attention_saved){0};
    result->saved = saved;
    /* Every count below is at most the element count of an input or of
     * the result, all of which tlmi_shape_numel bounded to a quarter of
     * SIZE_MAX bytes: doubling them cannot overflow. */
    saved->scores = tlmi_result_alloc(result, block_floats * sizeof(double));
    saved->acc = tlmi_result_alloc(result, (size_t)v_dim * sizeof(double));
    if (saved->scores == NULL || saved->acc == NULL)
        goto nomem;
    if (mask != NULL) {
        saved->visible = tlmi_result_alloc(result, (size_t)(batch * tk));
        if (saved->visible == NULL)
            goto nomem;
    }
    /* The backward pass runs only on a result with a gradient. */
    if (result->grad != NULL) {
        saved->lse = tlmi_result_alloc(result, (size_t)(batch * heads * tq) *
                                                   sizeof(float));
        saved->drow = tlmi_result_alloc(result, (size_t)tq * sizeof(float));
        saved->probs = tlmi_result_alloc(result, block_floats * sizeof(float));
        if (saved->lse == NULL || saved->drow == NULL || saved->probs == NULL)
            goto nomem;
    }
    return TLM_OK;
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
