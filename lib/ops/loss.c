/*
 * Cross-entropy fused with its log-softmax: logits [..., V] against
 * integer targets [...] (logits' shape without its last dimension; a 1-D
 * logits [V] takes targets [1]). Result [1]: the mean over rows whose
 * target is not ignore_index of lse(row) - row[target]. Targets are
 * checked by every forward pass, since they can change between re-runs.
 *
 * iparam[0] = rows, [1] = V, [2] = ignore_index. saved = a ce_saved.
 */
#include <stdio.h>
#include <string.h>

#include "ops.h"

#include "kernels/scalar/loss.h"
#include "parallel.h"

typedef struct ce_saved {
    double *lse;     /* [rows]: each valid row's log-sum-exp */
    int64_t n_valid; /* rows whose target is not ignore_index */
} ce_saved;

/* The context's kernels (kernels/pointwise.h) on row ranges split
 * across the context's pool; the loss, a sum over rows, is then added up
 * in row order by one thread. */
typedef struct ce_job {
    const tlmi_pointwise_kernels *k;
    float *dlogits;       /* backward */
    double *lse;
    const float *logits;
    const int32_t *targets;
    float factor;         /* backward: dloss / n_valid */
    int64_t v;
    int32_t ignore_index;
    int zero;             /* backward: dlogits' first contribution */
} ce_job;

static void ce_forward_task(void *arg, int64_t begin, int64_t end,
                            int thread) {
    (void)thread;
    const ce_job *j = arg;
    j->k->cross_entropy_lse(j->lse + begin, j->logits + begin * j->v,
                            j->targets + begin, end - begin, j->v,
                            j->ignore_index);
}

static void ce_backward_task(void *arg, int64_t begin, int64_t end,
                             int thread) {
    (void)thread;
    const ce_job *j = arg;
    /* The kernel adds; a first contribution clears its rows just before. */
    if (j->zero)
        memset(j->dlogits + begin * j->v, 0,
               (size_t)((end - begin) * j->v) * sizeof(float));
    j->k->cross_entropy_backward(j->dlogits + begin * j->v, j->factor,
                                 j->logits + begin * j->v, j->lse + begin,
                                 j->targets + begin, end - begin, j->v,
                                 j->ignore_index);
}

static int cross_entropy_forward(tlm_tensor *out) {
    const tlm_tensor *logits = out->src[0], *targets = out->src[1];
    const int64_t rows = out->iparam[0], v = out->iparam[1];
    const int32_t ignore_index = (int32_t)out->iparam[2];
    const int64_t bad = tlmi_cross_entropy_first_bad_target(
        targets->data, rows, v, ignore_index);
    if (bad >= 0) {
        char where[96];
        return tlmi_op_fail(out->ctx, TLM_E_RANGE,
                            "tlm_cross_entropy: targets%s = %d is outside "
                            "0..%lld and is not ignore_index (%d)",
                            tlmi_index_string(targets, bad, where, sizeof where),
                            (int)((const int32_t *)targets->data)[bad],
                            (long long)(v - 1), (int)ignore_index);
    }
    ce_saved *saved = out->saved;
    ce_job job = {tlmi_pointwise(out->ctx), NULL, saved->lse, logits->data,
                  targets->data, 0.0f, v, ignore_index, 0};
    tlmi_parallel_for(out->ctx->pool, rows, tlmi_row_grain(v),
                      ce_forward_task, &job);
    const int32_t *t = targets->data;
    const float *x = logits->data;
    double total = 0.0;
    int64_t count = 0;
    for (int64_t r = 0; r < rows; r++)
        if (t[r] != ignore_index) { /* checked: then a class */
            total += saved->lse[r] - (double)x[r * v + t[r]];
            count++;
        }
    saved->n_valid = count;
    ((float *)out->data)[0] =
        count > 0 ? (float)(total / (double)count) : 0.0f;
    return TLM_OK;
}

static void cross_entropy_backward(tlm_tensor *out) {
    tlm_tensor *logits = out->src[0];
    const tlm_tensor *targets = out->src[1];
    const ce_saved *saved = out->saved;
    if (!tlmi_wants_grad(logits) || saved->n_valid <= 0)
        return;
    const int64_t v = out->iparam[1];
    int accumulate;
    float *dlogits = tlmi_grad_target(logits, &accumulate);
    ce_job job = {tlmi_pointwise(out->ctx), dlogits, saved->lse, logits->data,
                  targets->data,
                  (float)((double)out->grad[0] / (double)saved->n_valid), v,
                  (int32_t)out->iparam[2], !accumulate};
    tlmi_parallel_for(out->ctx->pool, out->iparam[0], tlmi_row_grain(v),
                      ce_backward_task, &job);
}

static const tlmi_op cross_entropy_op = {"tlm_cross_entropy",
                                         cross_entropy_forward,
                                         cross_entropy_backward};

TLM_API int tlm_cross_entropy(tlm_tensor **out, tlm_tensor *logits,
                              tlm_tensor *targets, int32_t ignore_index) {
    const char *name = cross_entropy_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(logits, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(targets, TLM_DTYPE_I32));
    /* targets must be logits' shape without its last dimension, or [1]
     * for a 1-D logits (a tensor has at least one dimension). */
    const int32_t want_ndim = logits->ndim > 1 ? logits->ndim - 1 : 1;
    int fits = targets->ndim == want_ndim;
    for (int32_t i = 0; fits && i < want_ndim; i++)
        fits = targets->shape[i] == (logits->ndim > 1 ? logits->shape[i] : 1);
    if (!fits) {
        char sl[64], st[64], want[64] = "[1]";
        if (logits->ndim > 1) {
            tlm_tensor view = *logits;
            view.ndim = logits->ndim - 1;
            tlmi_shape_string(&view, want, sizeof want);
        }
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: targets %s must be %s (logits %s without "
                            "its last dimension)",
                            name, tlmi_shape_string(targets, st, sizeof st),
                            want, tlmi_shape_string(logits, sl, sizeof sl));
    }
    const int64_t v = logits->shape[logits->ndim - 1];
    const int64_t rows = logits->numel / v;
    const int64_t shape[1] = {1};
    tlm_tensor *srcs[2] = {logits, targets};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &cross_entropy_op,
                                   TLM_DTYPE_F32, 1, shape, srcs, 2);
    if (status == TLM_OK) {
        result->iparam[0] = rows;
        result->iparam[1] = v;
        result->iparam[2] = ignore_index;
        ce_saved *saved = tlmi_result_alloc(result, sizeof *saved);
        if (saved != NULL) {
            saved->n_valid = 0;
            saved->lse = tlmi_result_alloc(result,
                                           (size_t)rows * sizeof(double));
        }
        if (saved == NULL || saved->lse == NULL)
            status = tlmi_op_fail(ctx, TLM_E_NOMEM,
                                  "%s: allocating the saved log-sum-exp "
                                  "(%lld rows) failed",
                                  name, (long long)rows);
        result->saved = saved;
    }
    return tlmi_result_finish(out, result, status);
}
