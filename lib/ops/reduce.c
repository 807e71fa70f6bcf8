/*
 * Reductions of a whole tensor to one value: sum and mean. fparam[0] is
 * the factor applied to the sum (1 for sum, 1/numel for mean).
 */
#include "ops.h"

#include "kernels/scalar/reduce.h"

static int reduce_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0];
    ((float *)out->data)[0] = tlmi_sum(a->data, a->numel) * out->fparam[0];
    return TLM_OK;
}

static void reduce_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_add_constant(tlmi_grad_accumulator(a), out->grad[0] * out->fparam[0], a->numel);
}

static const tlmi_op sum_op = {"tlm_sum", reduce_forward, reduce_backward};
static const tlmi_op mean_op = {"tlm_mean", reduce_forward, reduce_backward};

static int reduce(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                  int mean) {
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, op->name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    const int64_t shape[1] = {1};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, 1, shape,
                                   &a, 1);
    if (status == TLM_OK)
        result->fparam[0] = mean ? (float)(1.0 / (double)a->numel) : 1.0f;
    return tlmi_result_finish(out, result, status);
}

TLM_API int tlm_sum(tlm_tensor **out, tlm_tensor *a) {
    return reduce(out, &sum_op, a, 0);
}

TLM_API int tlm_mean(tlm_tensor **out, tlm_tensor *a) {
    return reduce(out, &mean_op, a, 1);
}
