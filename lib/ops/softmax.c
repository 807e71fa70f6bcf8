/*
 * Softmax and log-softmax over the last dimension. Backward reads the
 * forward result (out->data), which every forward run recomputes, so
 * nothing else is saved.
 *
 * iparam[0] = rows (every leading dimension folded), [1] = cols (the last
 * dimension).
 */
#include "ops.h"

#include "kernels/scalar/softmax.h"
#include "parallel.h"

/* Softmax runs the context's kernels (kernels/pointwise.h) on row
 * ranges split across the context's pool; log-softmax the reference. */
typedef struct softmax_job {
    const tlmi_pointwise_kernels *k;
    int backward;
    float *out;         /* forward: the result; backward: dx */
    const float *x;     /* forward: the input; backward: the result */
    const float *dout;  /* backward */
    int64_t cols;
} softmax_job;

static void softmax_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const softmax_job *j = arg;
    const int64_t at = begin * j->cols;
    if (j->backward)
        j->k->softmax_backward(j->out + at, j->dout + at, j->x + at,
                               end - begin, j->cols);
    else
        j->k->softmax_forward(j->out + at, j->x + at, end - begin, j->cols);
}

static void softmax_run(tlm_tensor *out, softmax_job *job) {
    job->k = tlmi_pointwise(out->ctx);
    job->cols = out->iparam[1];
    tlmi_parallel_for(out->ctx->pool, out->iparam[0],
                      tlmi_row_grain(job->cols), softmax_task, job);
}

static int softmax_forward(tlm_tensor *out) {
    softmax_job job = {.out = out->data, .x = out->src[0]->data};
    softmax_run(out, &job);
    return TLM_OK;
}

static void softmax_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (!tlmi_wants_grad(a))
        return;
    softmax_job job = {.backward = 1, .out = tlmi_grad_accumulator(a), .x = out->data,
                       .dout = out->grad};
    softmax_run(out, &job);
}

static int log_softmax_forward(tlm_tensor *out) {
    tlmi_log_softmax_forward(out->data, out->src[0]->data, out->iparam[0],
                             out->iparam[1]);
    return TLM_OK;
}

static void log_softmax_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_log_softmax_backward(tlmi_grad_accumulator(a), out->grad, out->data,
                                  out->iparam[0], out->iparam[1]);
}

static const tlmi_op softmax_op = {"tlm_softmax", softmax_forward,
                                   softmax_backward};
static const tlmi_op log_softmax_op = {"tlm_log_softmax", log_softmax_forward,
                                       log_softmax_backward};

static int rowwise(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a) {
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, op->name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
                                   a->shape, &a, 1);
    if (status == TLM_OK) {
        /* Every dimension is at least 1, so cols divides numel exactly. */
        const int64_t cols = a->shape[a->ndim - 1];
        result->iparam[0] = a->numel / cols;
        result->iparam[1] = cols;
    }
    return tlmi_result_finish(out, result, status);
}

TLM_API int tlm_softmax(tlm_tensor **out, tlm_tensor *a) {
    return rowwise(out, &softmax_op, a);
}

TLM_API int tlm_log_softmax(tlm_tensor **out, tlm_tensor *a) {
    return rowwise(out, &log_softmax_op, a);
}
