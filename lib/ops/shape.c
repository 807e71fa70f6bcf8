/*
 * Shape operations: reshape (a view), transpose of the last two
 * dimensions, the split of channels into attention heads and its inverse,
 * concat and slice along any axis. None computes anything: each forward
 * moves values, each backward moves the gradient back and adds it.
 *
 * Parameters kept on the node (iparam):
 * - transpose:   [0] batch (product of the leading dims), [1] rows M,
 *                [2] cols N
 * - split_heads: [0] B, [1] T, [2] H, [3] D
 * - merge_heads: [0] B, [1] H, [2] T, [3] D
 * - concat:      [0] axis (resolved), [1] rows, [2] inner, [3] total width;
 *                input i spans src[i]->shape[axis] * inner columns
 * - slice:       [0] rows, [1] width, [2] first column, [3] column count,
 *                [4] axis (resolved)
 * where rows/inner/width view a tensor as [rows, width] around an axis
 * (see kernels/scalar/shape.h).
 */
#include <stdio.h>
#include <string.h>

#include "ops.h"

#include "kernels/scalar/shape.h"

/* `axis` counted from the end when negative; -1 when outside the tensor. */
static int32_t resolve_axis(int32_t axis, int32_t ndim) {
    int32_t resolved = axis < 0 ? axis + ndim : axis;
    return resolved >= 0 && resolved < ndim ? resolved : -1;
}

/* The tensor as [rows, axis size, inner]: products of the dims around it.
 * Both are bounded by numel, which fits in int64. */
static void split_at_axis(const tlm_tensor *t, int32_t axis, int64_t *rows,
                          int64_t *inner) {
    *rows = 1;
    *inner = 1;
    for (int32_t i = 0; i < axis; i++)
        *rows *= t->shape[i];
    for (int32_t i = axis + 1; i < t->ndim; i++)
        *inner *= t->shape[i];
}

/* ---- reshape ------------------------------------------------------------ */

/* The values are the input's own (shared data): nothing to compute, on
 * creation or on a re-run. */
static int reshape_forward(tlm_tensor *out) {
    (void)out;
    return TLM_OK;
}

/* The view has its own gradient buffer, of the same length and layout as
 * the input's: hand it over unchanged. */
static void reshape_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (!tlmi_wants_grad(a))
        return;
    int accumulate;
    float *da = tlmi_grad_target(a, &accumulate);
    if (accumulate)
        tlmi_reshape_backward(da, out->grad, out->numel);
    else
        memcpy(da, out->grad, (size_t)out->numel * sizeof(float));
}

static const tlmi_op reshape_op = {"tlm_reshape", reshape_forward,
                                   reshape_backward};

TLM_API int tlm_reshape(tlm_tensor **out, tlm_tensor *a, int32_t ndim,
                        const int64_t *shape) {
    const char *name = reshape_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    /* ndim, NULL shape, sizes < 1 and overflow, named "tlm_reshape: ...". */
    int64_t numel = 0;
    int status = tlmi_shape_numel(&ctx->host, name, TLM_DTYPE_F32, ndim, shape,
                                  &numel);
    if (status != TLM_OK)
        return status;
    if (numel != a->numel) {
        char sa[64], sn[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s has %lld elements but shape %s has "
                            "%lld",
                            name, tlmi_shape_string(a, sa, sizeof sa),
                            (long long)a->numel,
                            tlmi_dims_string(ndim, shape, sn, sizeof sn),
                            (long long)numel);
    }
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, &reshape_op, TLM_DTYPE_F32, ndim,
                               shape, &a, 1);
    /* A reshape of a view shares the view's data, which is already the
     * original tensor's: chains of views all point at one buffer. The data
     * block begin took from the arena stays unused (begin has no way to
     * skip it). */
    if (status == TLM_OK)
        tlmi_result_share_data(result, a);
    return tlmi_result_finish(out, result, status);
}

/* ---- transpose ---------------------------------------------------------- */

static int transpose_forward(tlm_tensor *out) {
    tlmi_transpose_forward(out->data, out->src[0]->data, out->iparam[0],
                           out->iparam[1], out->iparam[2]);
    return TLM_OK;
}

static void transpose_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (!tlmi_wants_grad(a))
        return;
    /* A first contribution is the transpose of dout, written. */
    int accumulate;
    float *da = tlmi_grad_target(a, &accumulate);
    if (accumulate)
        tlmi_transpose_backward(da, out->grad, out->iparam[0], out->iparam[1],
                                out->iparam[2]);
    else
        tlmi_transpose_forward(da, out->grad, out->iparam[0], out->iparam[2],
                               out->iparam[1]);
}

static const tlmi_op transpose_op = {"tlm_transpose", transpose_forward,
                                     transpose_backward};

TLM_API int tlm_transpose(tlm_tensor **out, tlm_tensor *a) {
    const char *name = transpose_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    if (a->ndim < 2) {
        char sa[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s must have 2 to %d dimensions", name,
                            tlmi_shape_string(a, sa, sizeof sa),
                            TLM_MAX_DIMS);
    }
    int64_t shape[TLM_MAX_DIMS];
    int64_t batch = 1;
    for (int32_t i = 0; i < a->ndim; i++)
        shape[i] = a->shape[i];
    for (int32_t i = 0; i < a->ndim - 2; i++)
        batch *= a->shape[i];
    const int64_t rows = a->shape[a->ndim - 2], cols = a->shape[a->ndim - 1];
    shape[a->ndim - 2] = cols;
    shape[a->ndim - 1] = rows;
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &transpose_op, TLM_DTYPE_F32,
                                   a->ndim, shape, &a, 1);
    if (status == TLM_OK) {
        result->iparam[0] = batch;
        result->iparam[1] = rows;
        result->iparam[2] = cols;
    }
    return tlmi_result_finish(out, result, status);
}

/* ---- split_heads / merge_heads ------------------------------------------ */

/* Both ops swap the two middle axes of a 4-D view of their input:
 * iparam = {B, X, Y, D} for an input [B, X, Y, D] and a result
 * [B, Y, X, D] (split_heads: X = T, Y = H; merge_heads: X = H, Y = T). */
static int swap_heads_forward(tlm_tensor *out) {
    tlmi_split_heads_forward(out->data, out->src[0]->data, out->iparam[0],
                             out->iparam[1], out->iparam[2], out->iparam[3]);
    return TLM_OK;
}

static void swap_heads_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (!tlmi_wants_grad(a))
        return;
    /* A first contribution is dout swapped back, written. */
    int accumulate;
    float *da = tlmi_grad_target(a, &accumulate);
    if (accumulate)
        tlmi_split_heads_backward(da, out->grad, out->iparam[0],
                                  out->iparam[1], out->iparam[2],
                                  out->iparam[3]);
    else
        tlmi_split_heads_forward(da, out->grad, out->iparam[0],
                                 out->iparam[2], out->iparam[1],
                                 out->iparam[3]);
}

static const tlmi_op split_heads_op = {"tlm_split_heads", swap_heads_forward,
                                       swap_heads_backward};

TLM_API int tlm_split_heads(tlm_tensor **out, tlm_tensor *a, int32_t n_heads) {
    const char *name = split_heads_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    if (n_heads < 1)
        return tlmi_op_fail(ctx, TLM_E_RANGE, "%s: n_heads %d must be >= 1",
                            name, (int)n_heads);
    char sa[64];
    if (a->ndim != 3)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s must be 3-D [B, T, C]", name,
                            tlmi_shape_string(a, sa, sizeof sa));
    const int64_t channels = a->shape[2];
    if (channels % n_heads != 0)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s has C = %lld channels, not divisible "
                            "by n_heads %d",
                            name, tlmi_shape_string(a, sa, sizeof sa),
                            (long long)channels, (int)n_heads);
    const int64_t batch = a->shape[0], seq = a->shape[1];
    const int64_t head_dim = channels / n_heads;
    const int64_t shape[4] = {batch, n_heads, seq, head_dim};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &split_heads_op, TLM_DTYPE_F32,
                                   4, shape, &a, 1);
    if (status == TLM_OK) {
        result->iparam[0] = batch;
        result->iparam[1] = seq;
        result->iparam[2] = n_heads;
        result->iparam[3] = head_dim;
    }
    return tlmi_result_finish(out, result, status);
}

static const tlmi_op merge_heads_op = {"tlm_merge_heads", swap_heads_forward,
                                       swap_heads_backward};

TLM_API int tlm_merge_heads(tlm_tensor **out, tlm_tensor *a) {
    const char *name = merge_heads_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    if (a->ndim != 4) {
        char sa[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s must be 4-D [B, H, T, D]", name,
                            tlmi_shape_string(a, sa, sizeof sa));
    }
    const int64_t batch = a->shape[0], n_heads = a->shape[1],
                  seq = a->shape[2], head_dim = a->shape[3];
    /* H * D <= numel: no overflow. */
    const int64_t shape[3] = {batch, seq, n_heads * head_dim};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &merge_heads_op, TLM_DTYPE_F32,
                                   3, shape, &a, 1);
    if (status == TLM_OK) {
        result->iparam[0] = batch;
        result->iparam[1] = n_heads;
        result->iparam[2] = seq;
        result->iparam[3] = head_dim;
    }
    return tlmi_result_finish(out, result, status);
}

/* ---- concat ------------------------------------------------------------- */

static int concat_forward(tlm_tensor *out) {
    const int32_t axis = (int32_t)out->iparam[0];
    const int64_t rows = out->iparam[1], inner = out->iparam[2],
                  total = out->iparam[3];
    int64_t start = 0;
    for (int32_t i = 0; i < out->n_src; i++) {
        const tlm_tensor *a = out->src[i];
        const int64_t width = a->shape[axis] * inner;
        tlmi_concat_forward(out->data, a->data, rows, total, start, width);
        start += width;
    }
    return TLM_OK;
}

/* Each input gets its own columns of the gradient; an input given twice
 * gets both shares added. */
static void concat_backward(tlm_tensor *out) {
    const int32_t axis = (int32_t)out->iparam[0];
    const int64_t rows = out->iparam[1], inner = out->iparam[2],
                  total = out->iparam[3];
    int64_t start = 0;
    for (int32_t i = 0; i < out->n_src; i++) {
        tlm_tensor *a = out->src[i];
        const int64_t width = a->shape[axis] * inner;
        if (tlmi_wants_grad(a))
            tlmi_concat_backward(tlmi_grad_accumulator(a), out->grad, rows,
                                 total, start, width);
        start += width;
    }
}

static const tlmi_op concat_op = {"tlm_concat", concat_forward,
                                  concat_backward};

TLM_API int tlm_concat(tlm_tensor **out, tlm_tensor *const *inputs,
                       int32_t count, int32_t axis) {
    const char *name = concat_op.name;
    tlm_context *ctx = NULL;
    TLMI_CHECK_OUT(NULL, name, out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, name, inputs);
    if (count < 1 || count > TLMI_MAX_SRC)
        return tlmi_op_fail(NULL, TLM_E_INVALID,
                            "%s: count %d is outside 1..%d", name, (int)count,
                            TLMI_MAX_SRC);
    for (int32_t i = 0; i < count; i++) {
        char arg[32];
        snprintf(arg, sizeof arg, "inputs[%d]", (int)i);
        int status = tlmi_op_input(name, arg, inputs[i], TLM_DTYPE_F32, &ctx);
        if (status != TLM_OK)
            return status;
    }
    const tlm_tensor *first = inputs[0];
    char s0[64], si[64];
    tlmi_shape_string(first, s0, sizeof s0);
    const int32_t resolved = resolve_axis(axis, first->ndim);
    if (resolved < 0)
        return tlmi_op_fail(ctx, TLM_E_RANGE,
                            "%s: axis %d is outside inputs[0] %s (%d-D)",
                            name, (int)axis, s0, (int)first->ndim);
    int64_t shape[TLM_MAX_DIMS];
    for (int32_t d = 0; d < first->ndim; d++)
        shape[d] = first->shape[d];
    for (int32_t i = 1; i < count; i++) {
        const tlm_tensor *a = inputs[i];
        int same = a->ndim == first->ndim;
        for (int32_t d = 0; same && d < first->ndim; d++)
            same = d == resolved || a->shape[d] == first->shape[d];
        if (!same)
            return tlmi_op_fail(ctx, TLM_E_SHAPE,
                                "%s: inputs[%d] %s does not match inputs[0] "
                                "%s outside axis %d",
                                name, (int)i,
                                tlmi_shape_string(a, si, sizeof si), s0,
                                (int)resolved);
        /* Each size fits on its own; 16 of them added may not. */
        if (a->shape[resolved] > INT64_MAX - shape[resolved])
            return tlmi_op_fail(ctx, TLM_E_OVERFLOW,
                                "%s: the joined axis %d overflows", name,
                                (int)resolved);
        shape[resolved] += a->shape[resolved];
    }
    int64_t rows = 1, inner = 1;
    split_at_axis(first, resolved, &rows, &inner);
    tlm_tensor *result = NULL;
    /* begin checks the joined shape's element count for overflow. */
    int status = tlmi_result_begin(&result, ctx, &concat_op, TLM_DTYPE_F32,
                                   first->ndim, shape, inputs, count);
    if (status == TLM_OK) {
        result->iparam[0] = resolved;
        result->iparam[1] = rows;
        result->iparam[2] = inner;
        result->iparam[3] = shape[resolved] * inner;
    }
    return tlmi_result_finish(out, result, status);
}

/* ---- slice -------------------------------------------------------------- */

static int slice_forward(tlm_tensor *out) {
    tlmi_slice_forward(out->data, out->src[0]->data, out->iparam[0],
                       out->iparam[1], out->iparam[2], out->iparam[3]);
    return TLM_OK;
}

static void slice_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_slice_backward(tlmi_grad_accumulator(a), out->grad,
                            out->iparam[0], out->iparam[1], out->iparam[2],
                            out->iparam[3]);
}

static const tlmi_op slice_op = {"tlm_slice", slice_forward, slice_backward};

TLM_API int tlm_slice(tlm_tensor **out, tlm_tensor *a, int32_t axis,
                      int64_t start, int64_t length) {
    const char *name = slice_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    char sa[64];
    tlmi_shape_string(a, sa, sizeof sa);
    const int32_t resolved = resolve_axis(axis, a->ndim);
    if (resolved < 0)
        return tlmi_op_fail(ctx, TLM_E_RANGE,
                            "%s: axis %d is outside a %s (%d-D)", name,
                            (int)axis, sa, (int)a->ndim);
    const int64_t size = a->shape[resolved];
    if (start < 0)
        return tlmi_op_fail(ctx, TLM_E_RANGE, "%s: start %lld must be >= 0",
                            name, (long long)start);
    if (length < 1)
        return tlmi_op_fail(ctx, TLM_E_RANGE, "%s: length %lld must be >= 1",
                            name, (long long)length);
    /* start + length <= size, written so that it cannot overflow. */
    if (length > size || start > size - length)
        return tlmi_op_fail(ctx, TLM_E_RANGE,
                            "%s: start %lld + length %lld exceeds axis %d of "
                            "a %s (size %lld)",
                            name, (long long)start, (long long)length,
                            (int)resolved, sa, (long long)size);
    int64_t shape[TLM_MAX_DIMS];
    for (int32_t d = 0; d < a->ndim; d++)
        shape[d] = a->shape[d];
    shape[resolved] = length;
    int64_t rows = 1, inner = 1;
    split_at_axis(a, resolved, &rows, &inner);
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &slice_op, TLM_DTYPE_F32,
                                   a->ndim, shape, &a, 1);
    if (status == TLM_OK) {
        result->iparam[0] = rows;
        result->iparam[1] = size * inner;
        result->iparam[2] = start * inner;
        result->iparam[3] = length * inner;
        result->iparam[4] = resolved;
    }
    return tlmi_result_finish(out, result, status);
}
