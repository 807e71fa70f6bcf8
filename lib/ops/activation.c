/*
 * Elementwise activations: relu, gelu (tanh or exact form), silu, and the
 * SwiGLU gate silu(gate) * up. The result has the input's shape; backward
 * recomputes what it needs from the inputs, so nothing is saved.
 *
 * gelu: iparam[0] = the tlm_gelu_form.
 */
#include "ops.h"

#include "kernels/scalar/activation.h"

/* Creates the result of a one-input activation shaped like `a`; `form` is
 * kept in iparam[0] (0 for the ops that have no form). */
static int unary(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                 int64_t form) {
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "%s: out is NULL", op->name);
    *out = NULL;
    tlm_context *ctx = NULL;
    int status = tlmi_op_input(op->name, "a", a, TLM_DTYPE_F32, &ctx);
    if (status != TLM_OK)
        return status;
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
                               a->shape, &a, 1);
    if (status == TLM_OK)
        result->iparam[0] = form;
    return tlmi_result_finish(out, result, status);
}

/* relu */
static int relu_forward(tlm_tensor *out) {
    tlmi_relu_forward(out->data, out->src[0]->data, out->numel);
    return TLM_OK;
}

static void relu_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_relu_backward(a->grad, out->grad, a->data, out->numel);
}

static const tlmi_op relu_op = {"tlm_relu", relu_forward, relu_backward};

TLM_API int tlm_relu(tlm_tensor **out, tlm_tensor *a) {
    return unary(out, &relu_op, a, 0);
}

/* gelu */
static int gelu_forward(tlm_tensor *out) {
    if (out->iparam[0] == TLM_GELU_EXACT)
        tlmi_gelu_exact_forward(out->data, out->src[0]->data, out->numel);
    else
        tlmi_gelu_tanh_forward(out->data, out->src[0]->data, out->numel);
    return TLM_OK;
}

static void gelu_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (!tlmi_wants_grad(a))
        return;
    if (out->iparam[0] == TLM_GELU_EXACT)
        tlmi_gelu_exact_backward(a->grad, out->grad, a->data, out->numel);
    else
        tlmi_gelu_tanh_backward(a->grad, out->grad, a->data, out->numel);
}

static const tlmi_op gelu_op = {"tlm_gelu", gelu_forward, gelu_backward};

TLM_API int tlm_gelu(tlm_tensor **out, tlm_tensor *a, int32_t form) {
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "tlm_gelu: out is NULL");
    *out = NULL;
    if (form != TLM_GELU_TANH && form != TLM_GELU_EXACT) {
        /* The input is checked first so that the message goes to its
         * context when it has a valid one. */
        tlm_context *ctx = NULL;
        int status = tlmi_op_input(gelu_op.name, "a", a, TLM_DTYPE_F32, &ctx);
        if (status != TLM_OK)
            return status;
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "tlm_gelu: form %d is neither TLM_GELU_TANH (%d) "
                            "nor TLM_GELU_EXACT (%d)",
                            (int)form, (int)TLM_GELU_TANH,
                            (int)TLM_GELU_EXACT);
    }
    return unary(out, &gelu_op, a, form);
}

/* silu */
static int silu_forward(tlm_tensor *out) {
    tlmi_silu_forward(out->data, out->src[0]->data, out->numel);
    return TLM_OK;
}

static void silu_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_silu_backward(a->grad, out->grad, a->data, out->numel);
}

static const tlmi_op silu_op = {"tlm_silu", silu_forward, silu_backward};

TLM_API int tlm_silu(tlm_tensor **out, tlm_tensor *a) {
    return unary(out, &silu_op, a, 0);
}

/* swiglu: src[0] = gate, src[1] = up */
static int swiglu_forward(tlm_tensor *out) {
    tlmi_swiglu_forward(out->data, out->src[0]->data, out->src[1]->data,
                        out->numel);
    return TLM_OK;
}

static void swiglu_backward(tlm_tensor *out) {
    tlm_tensor *gate = out->src[0], *up = out->src[1];
    float *dgate = tlmi_wants_grad(gate) ? gate->grad : NULL;
    float *dup = tlmi_wants_grad(up) ? up->grad : NULL;
    if (dgate != NULL || dup != NULL)
        tlmi_swiglu_backward(dgate, dup, out->grad, gate->data, up->data,
                             out->numel);
}

static const tlmi_op swiglu_op = {"tlm_swiglu", swiglu_forward,
                                  swiglu_backward};

TLM_API int tlm_swiglu(tlm_tensor **out, tlm_tensor *gate, tlm_tensor *up) {
    const char *name = swiglu_op.name;
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "%s: out is NULL", name);
    *out = NULL;
    tlm_context *ctx = NULL;
    int status = tlmi_op_input(name, "gate", gate, TLM_DTYPE_F32, &ctx);
    if (status == TLM_OK)
        status = tlmi_op_input(name, "up", up, TLM_DTYPE_F32, &ctx);
    if (status != TLM_OK)
        return status;
    int same = gate->ndim == up->ndim;
    for (int32_t i = 0; same && i < gate->ndim; i++)
        same = gate->shape[i] == up->shape[i];
    if (!same) {
        char sg[64], su[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: up %s must have gate's shape %s", name,
                            tlmi_shape_string(up, su, sizeof su),
                            tlmi_shape_string(gate, sg, sizeof sg));
    }
    tlm_tensor *srcs[2] = {gate, up};
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, &swiglu_op, TLM_DTYPE_F32,
                               gate->ndim, gate->shape, srcs, 2);
    return tlmi_result_finish(out, result, status);
}
