/*
 * Dropout. Whether it applies is decided by each forward pass, not at
 * creation: the context may switch between training and evaluation mode
 * between re-runs of the graph. In training mode with p > 0 every forward
 * pass draws a fresh mask from the context's generator (so
 * tlm_context_set_seed() before a re-run reproduces a mask); otherwise
 * the input is copied through.
 *
 * fparam[0] = p, [1] = 1 / (1 - p). saved = a dropout_saved.
 */
#include <string.h>

#include "ops.h"

#include "kernels/scalar/dropout.h"
#include "kernels/scalar/elementwise.h"

typedef struct dropout_saved {
    uint8_t *keep; /* [numel], allocated at creation when p > 0 */
    int32_t masked; /* the last forward pass applied `keep` */
} dropout_saved;

static int dropout_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0];
    dropout_saved *saved = out->saved;
    const float p = out->fparam[0];
    saved->masked = out->ctx->training && p > 0.0f;
    if (saved->masked)
        tlmi_dropout_forward(out->data, saved->keep, a->data, p,
                             out->fparam[1], out->numel, &out->ctx->rng);
    else if (out->data != a->data) /* in place: nothing to copy */
        memcpy(out->data, a->data, (size_t)out->numel * sizeof(float));
    return TLM_OK;
}

static void dropout_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    const dropout_saved *saved = out->saved;
    if (!tlmi_wants_grad(a))
        return;
    float *da = tlmi_grad_accumulator(a);
    if (saved->masked)
        tlmi_dropout_backward(da, out->grad, saved->keep, out->fparam[1],
                              out->numel);
    else
        tlmi_accumulate_scaled(da, out->grad, 1.0f, out->numel);
}

static const tlmi_op dropout_op = {"tlm_dropout", dropout_forward,
                                   dropout_backward};

TLM_API int tlm_dropout(tlm_tensor **out, tlm_tensor *a, float p) {
    const char *name = dropout_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    /* Written so that NaN fails too. */
    if (!(p >= 0.0f && p < 1.0f))
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "%s: p %g is outside [0, 1)", name, (double)p);
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &dropout_op, TLM_DTYPE_F32,
                                   a->ndim, a->shape, &a, 1);
    if (status == TLM_OK) {
        result->fparam[0] = p;
        result->fparam[1] = (float)(1.0 / (1.0 - (double)p));
        dropout_saved *saved = tlmi_result_alloc(result, sizeof *saved);
        if (saved != NULL) {
            saved->masked = 0;
            /* Even in evaluation mode: training may be switched on before
             * the graph is re-run. */
            saved->keep = p > 0.0f
                              ? tlmi_result_alloc(result, (size_t)a->numel)
                              : NULL;
        }
        if (saved == NULL || (p > 0.0f && saved->keep == NULL))
            status = tlmi_op_fail(ctx, TLM_E_NOMEM,
                                  "%s: allocating the mask (%lld bytes) "
                                  "failed",
                                  name, (long long)a->numel);
        result->saved = saved;
    }
    return tlmi_result_finish(out, result, status);
}
