/*
 * Fused scaled dot-product attention, softmax(q k^T / sqrt(D) + mask) v,
 * one head at a time without a Tq x Tk matrix (see
 * kernels/scalar/attention.h). The backward pass recomputes the
 * probabilities from the per-row logsumexp the forward pass saves. The
 * kernels are the context's (kernels/attention.h: SIMD where the CPU has
 * it; the bf16 entries, with bf16 products, while the context's
 * products_bf16 is set, see run_begin); the (batch x head) pairs are shared out over the context's
 * thread pool, each head computed whole by one thread, so the results are
 * the same for any thread count.
 *
 * Two layouts of the same operation. tlm_attention: q [B, H, Tq, D],
 * k [B, Hkv, Tk, D], v [B, Hkv, Tk, Dv], result [B, H, Tq, Dv].
 * tlm_multi_head_attention: the heads packed side by side in the last
 * dimension, as the projections make them: q [B, Tq, H*D], k [B, Tk, Hkv*D],
 * v [B, Tk, Hkv*Dv], result [B, Tq, H*Dv]; the kernels read and write each
 * head in place through row strides, so no split or merge copies (nor
 * their gradients) exist. key_mask NULL or [B, Tk] (f32 or i32).
 *
 * Grouped-query attention: Hkv divides H, and query head h reads key/value
 * head h / (H / Hkv) in place (Hkv = H is plain multi-head attention). The
 * forward pass runs over (batch, query head) pairs; the backward pass over
 * (batch, key/value head) pairs, each running its group's query heads in
 * order, so that one thread alone adds into a key/value head's gradient.
 * The result's iparam holds the sizes in the slots of enum
 * attention_slot; shape_of() reads them back.
 */
#include "ops.h"

#include <string.h>

#include "autodiff/context.h"
#include "base/threadpool.h"
#include "kernels/dispatch.h"
#include "kernels/scalar/attention.h"

/* Buffers made at creation, so that neither pass allocates. The kernels'
 * scratch is the context's workspace, one slice per thread, made large
 * enough at creation for the context's kernels. */
typedef struct attention_saved {
    unsigned char *visible; /* [B, Tk] key_mask != 0, or NULL without mask */
    /* Only when the result has a gradient (else NULL): */
    float *lse;             /* [B, H, Tq] saved by forward for backward */
} attention_saved;

/* The result's iparam slots (the layout is the result's op). */
enum attention_slot {
    SLOT_BATCH,  /* B */
    SLOT_HEADS,  /* H */
    SLOT_TQ,     /* Tq */
    SLOT_TK,     /* Tk */
    SLOT_DIM,    /* D, of q and k */
    SLOT_V_DIM,  /* Dv, of v and the result */
    SLOT_CAUSAL, /* 1 with TLM_ATTENTION_CAUSAL */
    SLOT_KV_HEADS, /* Hkv, dividing H */
    SLOT_COUNT
};
_Static_assert(SLOT_COUNT <= sizeof(((tlm_tensor *)0)->iparam) /
                                 sizeof(int64_t),
               "the attention's slots fit a tensor's iparam");

/* The two operations (defined below); tlm_multi_head_attention's is the
 * packed layout. */
static const tlmi_op attention_op;
static const tlmi_op multi_head_op;

/* The sizes a node's iparam holds, and each head's call: one head's
 * sizes and the row strides of its layout. */
typedef struct attention_shape {
    int64_t batch, heads;
    int64_t kv_heads; /* Hkv; query head h reads kv head h / group */
    int64_t group;    /* H / Hkv */
    int packed;
    tlmi_attention_dims head;
} attention_shape;

static attention_shape shape_of(const tlm_tensor *out) {
    const int64_t *slot = out->iparam;
    attention_shape sh = {
        .batch = slot[SLOT_BATCH],
        .heads = slot[SLOT_HEADS],
        .kv_heads = slot[SLOT_KV_HEADS],
        .group = slot[SLOT_HEADS] / slot[SLOT_KV_HEADS],
        .packed = out->op == &multi_head_op,
        .head = {.tq = slot[SLOT_TQ], .tk = slot[SLOT_TK],
                 .dim = slot[SLOT_DIM], .v_dim = slot[SLOT_V_DIM],
                 .causal = (int)slot[SLOT_CAUSAL]},
    };
    /* Packed: the heads side by side in each row; else one after another. */
    const int64_t rows_of = sh.packed ? sh.heads : 1;
    const int64_t kv_rows_of = sh.packed ? sh.kv_heads : 1;
    sh.head.ld_q = rows_of * sh.head.dim;
    sh.head.ld_k = kv_rows_of * sh.head.dim;
    sh.head.ld_v = kv_rows_of * sh.head.v_dim;
    sh.head.ld_out = rows_of * sh.head.v_dim;
    return sh;
}

/* Bytes of one thread's slice for `kernels`, a multiple of 64, or
 * SIZE_MAX on overflow. */
static size_t slice_bytes(const tlmi_kernels *kernels,
                          const tlmi_attention_dims *d, int backward) {
    const size_t bytes = kernels->attention_workspace(d->tq, d->tk, d->dim,
                                                      d->v_dim, backward);
    return bytes > SIZE_MAX - 63 ? SIZE_MAX : (bytes + 63) / 64 * 64;
}

/* One pass over the (batch x head) pairs, shared by the threads: each
 * head is computed whole by one thread, so the results do not depend on
 * the thread count. The forward pass shares out query heads; the backward
 * pass key/value heads, each with its group of query heads. */
typedef struct attention_run {
    tlm_tensor *out;
    attention_shape shape;
    const tlmi_kernels *kernels;
    unsigned char *workspace; /* thread t's slice at t * stride */
    size_t stride;
    float *dq, *dk, *dv; /* backward: the gradients to give, or NULL */
    int accumulate;      /* backward: add into them (else write them) */
    int backward;        /* the backward kernel, else the forward one */
} attention_run;

/* Sets run->shape, ->kernels, ->workspace and ->stride: the context's
 * table (its kernels_bf16 while products_bf16 is set: a bf16 trainer's
 * passes, bf16 products in the attention as in tlm_matmul), in the
 * workspace alloc_saved made large enough for it (both tables' attention
 * has the same workspace function). */
static void run_begin(attention_run *run, int backward) {
    tlm_context *ctx = run->out->ctx;
    run->shape = shape_of(run->out);
    run->kernels = tlmi_context_products(ctx);
    run->workspace = ctx->workspace;
    run->stride = slice_bytes(ctx->kernels, &run->shape.head, backward);
    run->backward = backward;
}

/* Where query head `head` (b * H + h) and its key/value head (b * Hkv +
 * h / group) start in each operand, in floats. */
typedef struct head_offsets {
    int64_t q, k, v, out;
} head_offsets;

static head_offsets offsets_of(const attention_shape *sh, int64_t head) {
    const tlmi_attention_dims *d = &sh->head;
    const int64_t b = head / sh->heads, h = head % sh->heads;
    const int64_t kv = h / sh->group;
    if (!sh->packed) {
        const int64_t kv_head = b * sh->kv_heads + kv;
        return (head_offsets){head * d->tq * d->dim, kv_head * d->tk * d->dim,
                              kv_head * d->tk * d->v_dim,
                              head * d->tq * d->v_dim};
    }
    return (head_offsets){b * d->tq * d->ld_q + h * d->dim,
                          b * d->tk * d->ld_k + kv * d->dim,
                          b * d->tk * d->ld_v + kv * d->v_dim,
                          b * d->tq * d->ld_out + h * d->v_dim};
}

/* The forward kernel over query heads begin..end-1 (b * H + h), or the
 * backward kernel over key/value heads begin..end-1 (b * Hkv + g) and
 * each one's group of query heads in order, in thread `thread`'s slice of
 * the workspace. */
static void run_heads(void *arg, int64_t begin, int64_t end, int thread) {
    const attention_run *run = arg;
    const tlm_tensor *out = run->out;
    const tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    const attention_shape *sh = &run->shape;
    const tlmi_attention_dims *d = &sh->head;
    void *workspace = run->workspace + (size_t)thread * run->stride;
    /* Backward: the query heads of key/value heads begin..end-1. */
    const int64_t first = run->backward ? begin * sh->group : begin;
    const int64_t last = run->backward ? end * sh->group : end;
    for (int64_t head = first; head < last; head++) {
        const int64_t b = head / sh->heads;
        const head_offsets at = offsets_of(sh, head);
        const unsigned char *visible =
            saved->visible != NULL ? saved->visible + b * d->tk : NULL;
        if (!run->backward)
            run->kernels->attention_forward(
                (float *)out->data + at.out,
                saved->lse != NULL ? saved->lse + head * d->tq : NULL,
                (const float *)q->data + at.q, (const float *)k->data + at.k,
                (const float *)v->data + at.v, visible, d, workspace);
        else
            run->kernels->attention_backward(
                run->dq != NULL ? run->dq + at.q : NULL,
                run->dk != NULL ? run->dk + at.k : NULL,
                run->dv != NULL ? run->dv + at.v : NULL, out->grad + at.out,
                (const float *)q->data + at.q, (const float *)k->data + at.k,
                (const float *)v->data + at.v,
                (const float *)out->data + at.out, saved->lse + head * d->tq,
                visible, d, run->accumulate, workspace);
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
    run_begin(&run, 0);
    tlmi_parallel_for(out->ctx->pool, run.shape.batch * run.shape.heads, 1,
                      run_heads, &run);
    return TLM_OK;
}

/* The kernels write the three gradients (a first share of each, every
 * element written once over the heads) or add into all of them. Adding is
 * the way when any of them already holds a share, when two of q, k, v
 * are one tensor (one call would write its gradient twice), or when query
 * heads share key/value heads (each of the group adds its share of dk and
 * dv); then those that hold none yet are cleared first. */
static void attention_backward(tlm_tensor *out) {
    tlm_tensor *q = out->src[0], *k = out->src[1], *v = out->src[2];
    const attention_saved *saved = out->saved;
    if (saved->lse == NULL)
        return; /* not reached: the buffers exist when the result has a grad */
    tlm_tensor *const inputs[3] = {q, k, v};
    float *grads[3] = {NULL, NULL, NULL};
    int first[3] = {0, 0, 0};
    int accumulate = q == k || q == v || k == v ||
                     out->iparam[SLOT_KV_HEADS] != out->iparam[SLOT_HEADS];
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
    run_begin(&run, 1);
    tlmi_parallel_for(out->ctx->pool, run.shape.batch * run.shape.kv_heads, 1,
                      run_heads, &run);
}

static const tlmi_op attention_op = {"tlm_attention", attention_forward,
                                     attention_backward};
static const tlmi_op multi_head_op = {"tlm_multi_head_attention",
                                      attention_forward, attention_backward};

/* Room for a shape as text (tlmi_shape_string). */
#define SHAPE_TEXT 64

/* Writes the shapes of q, k and v as text into sq, sk and sv (each
 * SHAPE_TEXT chars) and checks that all three are `ndim`-D, the
 * dimensions `layout` names. */
static int check_ndims(tlm_context *ctx, const char *name, const tlm_tensor *q,
                       const tlm_tensor *k, const tlm_tensor *v, int32_t ndim,
                       const char *layout, char *sq, char *sk, char *sv) {
    tlmi_shape_string(q, sq, SHAPE_TEXT);
    tlmi_shape_string(k, sk, SHAPE_TEXT);
    tlmi_shape_string(v, sv, SHAPE_TEXT);
    if (q->ndim != ndim || k->ndim != ndim || v->ndim != ndim)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must all be %d-D %s",
                            name, sq, sk, sv, (int)ndim, layout);
    return TLM_OK;
}

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
    char sq[SHAPE_TEXT], sk[SHAPE_TEXT], sv[SHAPE_TEXT];
    TLMI_TRY(check_ndims(ctx, name, q, k, v, 4, "[B, H, T, D]", sq, sk, sv));
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must have the same B "
                            "(dimension 0)",
                            name, sq, sk, sv);
    if (v->shape[1] != k->shape[1] || k->shape[1] < 1 ||
        q->shape[1] % k->shape[1] != 0)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: k %s and v %s must have the same number of "
                            "key/value heads Hkv (dimension 1), dividing q "
                            "%s's H: Hkv %lld (k), %lld (v), H %lld",
                            name, sk, sv, sq, (long long)k->shape[1],
                            (long long)v->shape[1], (long long)q->shape[1]);
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
    char sq[SHAPE_TEXT], sk[SHAPE_TEXT], sv[SHAPE_TEXT];
    TLMI_TRY(check_ndims(ctx, name, q, k, v, 3, "[B, T, heads x D]", sq, sk,
                         sv));
    if (k->shape[0] != q->shape[0] || v->shape[0] != q->shape[0])
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: q %s, k %s and v %s must have the same B "
                            "(dimension 0)",
                            name, sq, sk, sv);
    if (n_heads < 1 || q->shape[2] % n_heads != 0)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: n_heads %d must be >= 1 and divide the last "
                            "dimension of q %s",
                            name, (int)n_heads, sq);
    /* Hkv key/value heads of q's head width D, dividing H. */
    const int64_t dim = q->shape[2] / n_heads;
    const int64_t kv_heads = k->shape[2] / dim;
    if (k->shape[2] % dim != 0 || kv_heads < 1)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: k %s's last dimension must be Hkv x D, a "
                            "multiple of q %s's head width D = %lld (n_heads "
                            "%d)",
                            name, sk, sq, (long long)dim, (int)n_heads);
    if (n_heads % kv_heads != 0)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: k %s holds Hkv = %lld key/value heads of D "
                            "%lld, which does not divide n_heads %d",
                            name, sk, (long long)kv_heads, (long long)dim,
                            (int)n_heads);
    if (v->shape[2] % kv_heads != 0)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: v %s's last dimension must be Hkv x Dv for "
                            "k %s's Hkv = %lld key/value heads (n_heads %d)",
                            name, sv, sk, (long long)kv_heads, (int)n_heads);
    return check_keys_and_mask(ctx, name, q, k, v, mask, 1, sq, sk, sv);
}

/* Allocates the saved struct and its buffers, and makes the context's
 * workspace large enough for every thread's slice; a status. */
static int alloc_saved(tlm_tensor *result, const char *name,
                       const tlm_tensor *mask) {
    const attention_shape sh = shape_of(result);
    const int64_t batch = sh.batch, heads = sh.heads, tq = sh.head.tq,
                  tk = sh.head.tk;
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
    const int backward = result->requires_grad;
    if (backward) {
        saved->lse = tlmi_result_alloc(result, (size_t)(batch * heads * tq) *
                                                   sizeof(float));
        if (saved->lse == NULL)
            goto nomem;
    }
    const size_t slice =
        slice_bytes(result->ctx->kernels, &sh.head, backward);
    const size_t threads = (size_t)tlmi_threadpool_threads(result->ctx->pool);
    if (slice == SIZE_MAX || slice > SIZE_MAX / threads)
        return tlmi_op_fail(result->ctx, TLM_E_OVERFLOW,
                            "%s: the kernels' workspace for Tq %lld, Tk %lld, "
                            "D %lld, Dv %lld and %zu threads overflows",
                            name, (long long)tq, (long long)tk,
                            (long long)sh.head.dim,
                            (long long)sh.head.v_dim, threads);
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
    int64_t slot[SLOT_COUNT];
    if (packed) {
        slot[SLOT_BATCH] = q->shape[0];
        slot[SLOT_HEADS] = n_heads;
        slot[SLOT_TQ] = q->shape[1];
        slot[SLOT_TK] = k->shape[1];
        slot[SLOT_DIM] = q->shape[2] / n_heads;
        slot[SLOT_KV_HEADS] = k->shape[2] / slot[SLOT_DIM];
        slot[SLOT_V_DIM] = v->shape[2] / slot[SLOT_KV_HEADS];
    } else {
        slot[SLOT_BATCH] = q->shape[0];
        slot[SLOT_HEADS] = q->shape[1];
        slot[SLOT_TQ] = q->shape[2];
        slot[SLOT_TK] = k->shape[2];
        slot[SLOT_DIM] = q->shape[3];
        slot[SLOT_V_DIM] = v->shape[3];
        slot[SLOT_KV_HEADS] = k->shape[1];
    }
    slot[SLOT_CAUSAL] = (flags & TLM_ATTENTION_CAUSAL) != 0;
    const int64_t heads_first[4] = {slot[SLOT_BATCH], slot[SLOT_HEADS],
                                    slot[SLOT_TQ], slot[SLOT_V_DIM]};
    const int64_t side_by_side[3] = {slot[SLOT_BATCH], slot[SLOT_TQ],
                                     slot[SLOT_HEADS] * slot[SLOT_V_DIM]};
    tlm_tensor *srcs[4] = {q, k, v, key_mask};
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32,
                               packed ? 3 : 4,
                               packed ? side_by_side : heads_first, srcs, 4);
    if (status == TLM_OK) {
        memcpy(result->iparam, slot, sizeof slot);
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
