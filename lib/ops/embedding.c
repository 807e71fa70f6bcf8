/*
 * Embedding lookup: result [..., D] = rows of table [V, D] picked by
 * integer ids [...] (up to 3 dimensions, so the result fits in 4). Ids are
 * checked by every forward pass, since they can change between re-runs.
 *
 * iparam[0] = number of ids, [1] = V, [2] = D.
 */
#include <stdio.h>

#include "ops.h"

#include "kernels/scalar/embedding.h"

static int embedding_forward(tlm_tensor *out) {
    const tlm_tensor *table = out->src[0], *ids = out->src[1];
    const int64_t n = out->iparam[0], v = out->iparam[1], d = out->iparam[2];
    const int64_t bad = tlmi_embedding_first_bad_id(ids->data, n, v);
    if (bad >= 0) {
        char where[96];
        return tlmi_op_fail(out->ctx, TLM_E_RANGE,
                            "tlm_embedding: ids%s = %d is outside 0..%lld "
                            "(the table has %lld rows)",
                            tlmi_index_string(ids, bad, where, sizeof where),
                            (int)((const int32_t *)ids->data)[bad],
                            (long long)(v - 1), (long long)v);
    }
    tlmi_embedding_forward(out->data, table->data, ids->data, n, d);
    return TLM_OK;
}

static void embedding_backward(tlm_tensor *out) {
    tlm_tensor *table = out->src[0];
    const tlm_tensor *ids = out->src[1];
    if (tlmi_wants_grad(table))
        tlmi_embedding_backward(tlmi_grad_accumulator(table), out->grad, ids->data,
                                out->iparam[0], out->iparam[1],
                                out->iparam[2]);
}

static const tlmi_op embedding_op = {"tlm_embedding", embedding_forward,
                                     embedding_backward};

TLM_API int tlm_embedding(tlm_tensor **out, tlm_tensor *table,
                          tlm_tensor *ids) {
    const char *name = embedding_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(table, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(ids, TLM_DTYPE_I32));
    char st[64], si[64];
    tlmi_shape_string(table, st, sizeof st);
    tlmi_shape_string(ids, si, sizeof si);
    if (table->ndim != 2)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: table %s must be 2-D [V, D]", name, st);
    if (ids->ndim > TLM_MAX_DIMS - 1)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: ids %s has %d dimensions; at most %d, so "
                            "that the result [..., D] fits in %d",
                            name, si, (int)ids->ndim, TLM_MAX_DIMS - 1,
                            TLM_MAX_DIMS);
    int64_t shape[TLM_MAX_DIMS];
    for (int32_t i = 0; i < ids->ndim; i++)
        shape[i] = ids->shape[i];
    shape[ids->ndim] = table->shape[1];
    tlm_tensor *srcs[2] = {table, ids};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &embedding_op, TLM_DTYPE_F32,
                                   ids->ndim + 1, shape, srcs, 2);
    if (status == TLM_OK) {
        result->iparam[0] = ids->numel;
        result->iparam[1] = table->shape[0];
        result->iparam[2] = table->shape[1];
    }
    return tlmi_result_finish(out, result, status);
}
