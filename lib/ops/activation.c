/*
 * Elementwise activations: relu, gelu (tanh or exact form), silu, and the
 * SwiGLU gate silu(gate) * up. The result has the input's shape; backward
 * recomputes what it needs from the inputs, so nothing is saved.
 *
 * relu, gelu, silu: iparam[0] = the act_kind of the forward kernel (for
 * gelu, chosen by its tlm_gelu_form).
 *
 * The kernels are the context's (kernels/pointwise.h; the exact GELU
 * is the scalar reference everywhere), run over element ranges split
 * across the context's thread pool.
 */
#include "ops.h"

#include <string.h>

#include "kernels/scalar/activation.h"
#include "parallel.h"

/* Creates the result of a one-input activation shaped like `a`; the
 * act_kind of its forward kernel is kept in iparam[0] (the backward one is
 * the next kind). */
static int unary(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                 int64_t forward_kind) {
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, op->name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
                                   a->shape, &a, 1);
    if (status == TLM_OK)
        result->iparam[0] = forward_kind;
    return tlmi_result_finish(out, result, status);
}

enum act_kind {
    RELU_FORWARD, RELU_BACKWARD,
    GELU_TANH_FORWARD, GELU_TANH_BACKWARD,
    GELU_EXACT_FORWARD, GELU_EXACT_BACKWARD,
    SILU_FORWARD, SILU_BACKWARD,
    SWIGLU_FORWARD, SWIGLU_BACKWARD
};
/* unary_backward runs the kind after its result's forward kind. */
_Static_assert(RELU_BACKWARD == RELU_FORWARD + 1 &&
                   GELU_TANH_BACKWARD == GELU_TANH_FORWARD + 1 &&
                   GELU_EXACT_BACKWARD == GELU_EXACT_FORWARD + 1 &&
                   SILU_BACKWARD == SILU_FORWARD + 1,
               "each activation's backward kind follows its forward kind");

/* One pass of an activation over elements [0, n): out or dx (and dup)
 * from x (and up) and dout. NULL gradients are skipped; the backward
 * kernels add, so a gradient's first contribution (zero_dx, zero_dup)
 * clears each range right before the kernel adds into it, while it is in
 * cache. */
typedef struct act_job {
    const tlmi_pointwise_kernels *k;
    int kind;
    float *out, *dx, *dup;
    const float *x, *up, *dout;
    int zero_dx, zero_dup;
} act_job;

/* Offsets p by `at` unless it is NULL. */
static float *at_f(float *p, int64_t at) { return p != NULL ? p + at : NULL; }

static void act_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const act_job *j = arg;
    const tlmi_pointwise_kernels *k = j->k;
    const int64_t n = end - begin;
    float *out = at_f(j->out, begin), *dx = at_f(j->dx, begin),
          *dup = at_f(j->dup, begin);
    const float *x = j->x + begin;
    const float *up = j->up != NULL ? j->up + begin : NULL;
    const float *dout = j->dout != NULL ? j->dout + begin : NULL;
    if (j->zero_dx)
        memset(dx, 0, (size_t)n * sizeof(float));
    if (j->zero_dup)
        memset(dup, 0, (size_t)n * sizeof(float));
    switch (j->kind) {
    case RELU_FORWARD: k->relu_forward(out, x, n); break;
    case RELU_BACKWARD: k->relu_backward(dx, dout, x, n); break;
    case GELU_TANH_FORWARD: k->gelu_tanh_forward(out, x, n); break;
    case GELU_TANH_BACKWARD: k->gelu_tanh_backward(dx, dout, x, n); break;
    case GELU_EXACT_FORWARD: tlmi_gelu_exact_forward(out, x, n); break;
    case GELU_EXACT_BACKWARD: tlmi_gelu_exact_backward(dx, dout, x, n); break;
    case SILU_FORWARD: k->silu_forward(out, x, n); break;
    case SILU_BACKWARD: k->silu_backward(dx, dout, x, n); break;
    case SWIGLU_FORWARD: k->swiglu_forward(out, x, up, n); break;
    case SWIGLU_BACKWARD: k->swiglu_backward(dx, dup, dout, x, up, n); break;
    default: break;
    }
}

/* A forward pass into `result`, or a backward pass giving src[0] (and, for
 * swiglu, src[1]) their share where they want a gradient. */
static void act_run(tlm_tensor *out, int kind, float *result) {
    tlm_tensor *x = out->src[0], *up = out->src[1]; /* up: swiglu's */
    act_job job = {tlmi_pointwise(out->ctx), kind, result, NULL, NULL,
                   x->data, up != NULL ? up->data : NULL,
                   out->grad, 0, 0};
    /* Ranges are disjoint, so clearing per range equals clearing first. A
     * gradient given twice (swiglu(x, x)) is cleared by the first only. */
    int accumulate;
    if (result == NULL && tlmi_wants_grad(x)) {
        job.dx = tlmi_grad_target(x, &accumulate);
        job.zero_dx = !accumulate;
    }
    if (result == NULL && tlmi_wants_grad(up)) {
        job.dup = tlmi_grad_target(up, &accumulate);
        job.zero_dup = !accumulate;
    }
    if (result == NULL && job.dx == NULL && job.dup == NULL)
        return;
    tlmi_parallel_for(out->ctx->pool, out->numel, TLMI_POINTWISE_GRAIN,
                      act_task, &job);
}

/* relu, gelu and silu: the kernel pair their result names */
static int unary_forward(tlm_tensor *out) {
    act_run(out, (int)out->iparam[0], out->data);
    return TLM_OK;
}

static void unary_backward(tlm_tensor *out) {
    act_run(out, (int)out->iparam[0] + 1, NULL);
}

/* relu */
static const tlmi_op relu_op = {"tlm_relu", unary_forward, unary_backward};

TLM_API int tlm_relu(tlm_tensor **out, tlm_tensor *a) {
    return unary(out, &relu_op, a, RELU_FORWARD);
}

/* gelu */
static const tlmi_op gelu_op = {"tlm_gelu", unary_forward, unary_backward};

TLM_API int tlm_gelu(tlm_tensor **out, tlm_tensor *a, int32_t form) {
    TLMI_CHECK_OUT(NULL, "tlm_gelu", out, NULL);
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
    return unary(out, &gelu_op, a,
                 form == TLM_GELU_EXACT ? GELU_EXACT_FORWARD : GELU_TANH_FORWARD);
}

/* silu */
static const tlmi_op silu_op = {"tlm_silu", unary_forward, unary_backward};

TLM_API int tlm_silu(tlm_tensor **out, tlm_tensor *a) {
    return unary(out, &silu_op, a, SILU_FORWARD);
}

/* swiglu: src[0] = gate, src[1] = up */
static int swiglu_forward(tlm_tensor *out) {
    act_run(out, SWIGLU_FORWARD, out->data);
    return TLM_OK;
}

static void swiglu_backward(tlm_tensor *out) {
    act_run(out, SWIGLU_BACKWARD, NULL);
}

static const tlmi_op swiglu_op = {"tlm_swiglu", swiglu_forward,
                                  swiglu_backward};

TLM_API int tlm_swiglu(tlm_tensor **out, tlm_tensor *gate, tlm_tensor *up) {
    const char *name = swiglu_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(gate, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(up, TLM_DTYPE_F32));
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
    int status = tlmi_result_begin(&result, ctx, &swiglu_op, TLM_DTYPE_F32,
                                   gate->ndim, gate->shape, srcs, 2);
    return tlmi_result_finish(out, result, status);
}
