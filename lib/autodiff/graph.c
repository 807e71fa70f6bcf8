/*
 * The autodiff engine: results become nodes of the context's tape as
 * operations run; backward walks the tape in reverse, forward re-runs it.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "context.h"
#include "graph.h"
#include "tensor.h"

int tlmi_op_fail(tlm_context *ctx, int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int result = tlmi_fail_v(ctx ? &ctx->host : NULL, status, format, args);
    va_end(args);
    return result;
}

int tlmi_op_input(const char *op, const char *arg, const tlm_tensor *tensor,
                  int32_t dtype, tlm_context **ctx) {
    char what[96];
    snprintf(what, sizeof what, "%s: %s", op, arg);
    int status = tlmi_tensor_check(tensor, what);
    if (status != TLM_OK)
        return status;
    if (*ctx == NULL)
        *ctx = tensor->ctx;
    else if (tensor->ctx != *ctx)
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: %s belongs to another context", op, arg);
    if (tlmi_dtype_is_quantized(tensor->dtype)) {
        char shape[64];
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: %s %s is a quantized model's %s matrix; "
                            "operations take f32 (tlm_tensor_get_f32 copies "
                            "its values out dequantized)",
                            op, arg,
                            tlmi_shape_string(tensor, shape, sizeof shape),
                            tlmi_dtype_name(tensor->dtype));
    }
    if (dtype >= 0 && tensor->dtype != dtype) {
        char shape[64];
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: %s %s is %s, expected %s", op, arg,
                            tlmi_shape_string(tensor, shape, sizeof shape),
                            tlmi_dtype_name(tensor->dtype),
                            tlmi_dtype_name(dtype));
    }
    return TLM_OK;
}

int tlmi_op_begin(tlm_tensor **out, const char *op, const tlmi_op_arg *args,
                  int32_t n_args, tlm_context **ctx) {
    TLMI_CHECK_NOT_NULL(NULL, op, out);
    *out = NULL;
    *ctx = NULL;
    for (int32_t i = 0; i < n_args; i++) {
        if (args[i].optional && args[i].tensor == NULL)
            continue;
        TLMI_TRY(tlmi_op_input(op, args[i].name, args[i].tensor, args[i].dtype,
                               ctx));
    }
    return TLM_OK;
}

/* Gives back a result that never made it onto the tape, and what it took
 * from the arena. */
static void discard(tlm_context *ctx, tlm_tensor *result) {
    if (ctx->recompute_group != NULL && *ctx->recompute_group == result)
        *ctx->recompute_group = NULL;
    tlmi_arena_rewind(&ctx->arena, result->begin_mark);
    tlmi_context_give_struct(ctx, result);
}

int tlmi_result_values(tlm_tensor *t) {
    if (t == NULL || t->recompute_owner == NULL ||
        t->recompute_owner->recompute_holder == t)
        return TLM_OK;
    int status = t->op->forward(t);
    if (status == TLM_OK)
        t->recompute_owner->recompute_holder = t;
    return status;
}

/* Runs node's forward pass, with its inputs' values in place. */
static int run_forward(tlm_tensor *node) {
    for (int32_t i = 0; i < node->n_src; i++)
        TLMI_TRY(tlmi_result_values(node->src[i]));
    TLMI_TRY(node->op->forward(node));
    if (node->recompute_owner != NULL)
        node->recompute_owner->recompute_holder = node;
    return TLM_OK;
}

int tlmi_result_begin(tlm_tensor **out, tlm_context *ctx, const tlmi_op *op,
                      int32_t dtype, int32_t ndim, const int64_t *shape,
                      tlm_tensor *const *srcs, int32_t n_src) {
    *out = NULL;
    if (n_src > TLMI_MAX_SRC)
        return tlmi_op_fail(ctx, TLM_E_INTERNAL, "%s: %d inputs", op->name,
                            (int)n_src);
    int64_t numel = 0;
    int status = tlmi_shape_numel(&ctx->host, op->name, dtype, ndim, shape,
                                  &numel);
    if (status != TLM_OK)
        return status;
    tlm_tensor *result = tlmi_context_take_struct(ctx);
    if (result == NULL)
        return tlmi_op_fail(ctx, TLM_E_NOMEM,
                            "%s: allocating a tensor struct failed", op->name);
    tlmi_tensor_init_header(result, ctx, dtype, ndim, shape, numel);
    result->generation = ctx->generation;
    result->op = op;
    result->n_src = n_src;
    int any_grad = 0;
    for (int32_t i = 0; i < n_src; i++) {
        result->src[i] = srcs[i];
        any_grad |= tlmi_wants_grad(srcs[i]);
    }
    /* Everything this result takes from the arena comes after this mark,
     * so a failure gives it all back. */
    result->begin_mark = tlmi_arena_get_mark(&ctx->arena);
    size_t bytes = (size_t)numel * tlmi_dtype_size(dtype);
    tlm_tensor *owner =
        ctx->recompute_group != NULL ? *ctx->recompute_group : NULL;
    const tlm_tensor *overwritten = ctx->in_place_of;
    if (owner != NULL && owner->numel == numel && owner->dtype == dtype) {
        result->data = owner->data; /* recomputed when read */
        result->recompute_owner = owner;
    } else if (overwritten != NULL && overwritten->numel == numel &&
               overwritten->dtype == dtype &&
               overwritten->recompute_owner == NULL) {
        result->data = overwritten->data;
    } else {
        result->data = tlmi_arena_alloc(&ctx->arena, &ctx->host, bytes);
        if (result->data == NULL)
            goto nomem;
        if (ctx->recompute_group != NULL) {
            result->recompute_owner = result;
            *ctx->recompute_group = result;
        }
    }
    result->recorded = ctx->grad_enabled;
    if (ctx->grad_enabled && any_grad && dtype == TLM_DTYPE_F32) {
        if (ctx->pool_result_grads) {
            result->grad_pooled = 1; /* taken in backward (grad_pool.h) */
        } else {
            result->grad = tlmi_arena_alloc(&ctx->arena, &ctx->host,
                                            (size_t)numel * sizeof(float));
            if (result->grad == NULL)
                goto nomem;
        }
        result->requires_grad = 1;
    }
    *out = result;
    return TLM_OK;

nomem:
    discard(ctx, result);
    return tlmi_op_fail(ctx, TLM_E_NOMEM,
                        "%s: allocating the result (%zu bytes) failed",
                        op->name, bytes);
}

void tlmi_result_share_data(tlm_tensor *out, tlm_tensor *base) {
    out->data = base->data;
}

void *tlmi_result_alloc(tlm_tensor *out, size_t bytes) {
    tlm_context *ctx = out->ctx;
    return tlmi_arena_alloc(&ctx->arena, &ctx->host, bytes);
}

int tlmi_result_finish(tlm_tensor **out, tlm_tensor *result, int status) {
    *out = NULL;
    if (result == NULL)
        return status;
    tlm_context *ctx = result->ctx;
    if (status == TLM_OK)
        status = run_forward(result);
    if (status != TLM_OK) {
        discard(ctx, result);
        return status;
    }
    result->prev = ctx->tape_last;
    result->next = NULL;
    if (ctx->tape_last != NULL)
        ctx->tape_last->next = result;
    else
        ctx->tape_first = result;
    ctx->tape_last = result;
    *out = result;
    return TLM_OK;
}

/* A node's inputs may have been freed (leaves) since it was recorded: its
 * structs stay in the context's pool, so the magic number can be read. */
static int check_node_inputs(const tlm_tensor *node, const char *caller) {
    for (int32_t i = 0; i < node->n_src; i++) {
        const tlm_tensor *src = node->src[i];
        if (src != NULL && src->magic != TLMI_TENSOR_MAGIC)
            return tlmi_op_fail(node->ctx, TLM_E_STATE,
                                "%s: input %d of a %s result was freed after "
                                "the result was recorded",
                                caller, (int)i, node->op->name);
    }
    return TLM_OK;
}

/* A pooled result's gradient buffer, taken when backward first needs it. */
static int take_pooled_grad(tlm_tensor *t) {
    if (!t->grad_pooled || t->grad != NULL)
        return TLM_OK;
    tlm_context *ctx = t->ctx;
    t->grad = tlmi_grad_pool_take(&ctx->grad_pool, &ctx->host, t->numel);
    if (t->grad == NULL)
        return tlmi_op_fail(ctx, TLM_E_NOMEM,
                            "tlm_backward: allocating the gradient of a %s "
                            "result (%zu bytes) failed",
                            t->op->name, (size_t)t->numel * sizeof(float));
    return TLM_OK;
}

void tlmi_graph_give_grad(tlm_tensor *t) {
    if (t->grad_pooled && t->grad != NULL) {
        tlmi_grad_pool_give(&t->ctx->grad_pool, t->grad);
        t->grad = NULL;
    }
}

/* Before node's backward pass: the values it reads (recomputed ones
 * among them) in place, and a gradient buffer for each input of this
 * pass that has none yet. */
static int prepare_backward(tlm_tensor *node, uint32_t mark) {
    TLMI_TRY(tlmi_result_values(node));
    for (int32_t i = 0; i < node->n_src; i++) {
        tlm_tensor *src = node->src[i];
        if (src == NULL)
            continue;
        TLMI_TRY(tlmi_result_values(src));
        if (!src->is_leaf && src->needed_mark == mark)
            TLMI_TRY(take_pooled_grad(src));
    }
    return TLM_OK;
}

TLM_API int tlm_backward(tlm_tensor *loss) {
    int status = tlmi_tensor_check(loss, "tlm_backward: loss");
    if (status != TLM_OK)
        return status;
    tlm_context *ctx = loss->ctx;
    char shape[64];
    if (loss->numel != 1 || loss->dtype != TLM_DTYPE_F32)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "tlm_backward: loss %s must be a one-element "
                            "f32 tensor",
                            tlmi_shape_string(loss, shape, sizeof shape));
    if (loss->is_leaf || !loss->requires_grad || !loss->recorded)
        return tlmi_op_fail(ctx, TLM_E_STATE,
                            "tlm_backward: loss does not depend on any tensor "
                            "that requires a gradient (or was computed with "
                            "recording off)");

    /* Reverse creation order is a reverse topological order: mark what the
     * loss depends on. Those results' gradients are not cleared here: the
     * first contribution an input receives writes its gradient, the later
     * ones add to it (tlmi_grad_target), so a gradient costs no separate
     * pass over memory. */
    uint32_t mark = ++ctx->backward_mark;
    if (mark == 0)
        mark = ++ctx->backward_mark;
    loss->needed_mark = mark;
    for (tlm_tensor *node = loss; node != NULL; node = node->prev) {
        if (node->needed_mark != mark || !node->requires_grad)
            continue;
        status = check_node_inputs(node, "tlm_backward");
        if (status != TLM_OK)
            return status;
        node->grad_written = 0;
        for (int32_t i = 0; i < node->n_src; i++) {
            tlm_tensor *src = node->src[i];
            if (src != NULL && !src->is_leaf)
                src->needed_mark = mark;
        }
    }
    status = take_pooled_grad(loss);
    if (status != TLM_OK)
        return status;
    loss->grad[0] = 1.0f;
    loss->grad_written = 1;
    for (tlm_tensor *node = loss; node != NULL; node = node->prev) {
        if (node->needed_mark != mark || !node->requires_grad)
            continue;
        /* Every node that uses this one came later and has run: a gradient
         * nobody wrote is zero (the loss does not depend on it after all,
         * e.g. through integer ids or an unrecorded node). */
        if (!node->grad_written) {
            status = take_pooled_grad(node);
            if (status != TLM_OK)
                return status;
            memset(node->grad, 0, (size_t)node->numel * sizeof(float));
            node->grad_written = 1;
        }
        if (node->recorded) {
            status = prepare_backward(node, mark);
            if (status != TLM_OK)
                return status;
            node->op->backward(node);
        }
        /* Passed on to the inputs: nothing reads it any more. */
        tlmi_graph_give_grad(node);
    }
    return TLM_OK;
}

float *tlmi_grad_target(tlm_tensor *t, int *accumulate) {
    if (t->is_leaf || t->grad_written) {
        *accumulate = 1;
    } else {
        *accumulate = 0;
        t->grad_written = 1;
    }
    return t->grad;
}

float *tlmi_grad_accumulator(tlm_tensor *t) {
    int accumulate;
    float *grad = tlmi_grad_target(t, &accumulate);
    if (!accumulate)
        memset(grad, 0, (size_t)t->numel * sizeof(float));
    return grad;
}

int tlmi_graph_forward_range(tlm_context *ctx, tlm_tensor *first,
                             tlm_tensor *last) {
    (void)ctx;
    for (tlm_tensor *node = first; node != NULL; node = node->next) {
        int status = check_node_inputs(node, "forward");
        if (status == TLM_OK)
            status = run_forward(node);
        if (status != TLM_OK)
            return status;
        if (node == last)
            break;
    }
    return TLM_OK;
}

void tlmi_graph_truncate(tlm_context *ctx, tlm_tensor *first) {
    tlmi_arena_mark mark = first->begin_mark;
    tlm_tensor *before = first->prev;
    for (tlm_tensor *node = first; node != NULL;) {
        tlm_tensor *next = node->next;
        tlmi_graph_give_grad(node);
        tlmi_context_give_struct(ctx, node);
        node = next;
    }
    ctx->tape_last = before;
    if (before != NULL)
        before->next = NULL;
    else
        ctx->tape_first = NULL;
    tlmi_arena_rewind(&ctx->arena, mark);
}

TLM_API int tlm_context_forward(tlm_context *ctx) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_forward", ctx);
    for (tlm_tensor *node = ctx->tape_first; node != NULL; node = node->next) {
        int status = check_node_inputs(node, "tlm_context_forward");
        if (status == TLM_OK)
            status = run_forward(node);
        if (status != TLM_OK)
            return status;
    }
    return TLM_OK;
}
