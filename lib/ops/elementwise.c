/*
 * Elementwise operations: add, sub, mul (b repeated over a's leading
 * dimensions), scale and add_scalar.
 */
#include "ops.h"

#include <math.h>

#include "kernels/scalar/elementwise.h"

/* Checks a and b and that b's shape is a's or a suffix of it. */
static int check_pair(const char *op, tlm_tensor *a, tlm_tensor *b,
                      tlm_context **ctx) {
    int status = tlmi_op_input(op, "a", a, TLM_DTYPE_F32, ctx);
    if (status == TLM_OK)
        status = tlmi_op_input(op, "b", b, TLM_DTYPE_F32, ctx);
    if (status != TLM_OK)
        return status;
    int32_t skip = a->ndim - b->ndim;
    int fits = skip >= 0;
    for (int32_t i = 0; fits && i < b->ndim; i++)
        fits = b->shape[i] == a->shape[skip + i];
    if (!fits) {
        char sa[64], sb[64];
        return tlmi_op_fail(*ctx, TLM_E_SHAPE,
                            "%s: b %s is neither a's shape %s nor its "
                            "trailing dimensions",
                            op, tlmi_shape_string(b, sb, sizeof sb),
                            tlmi_shape_string(a, sa, sizeof sa));
    }
    return TLM_OK;
}

static int binary(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                  tlm_tensor *b) {
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "%s: out is NULL", op->name);
    *out = NULL;
    tlm_context *ctx = NULL;
    int status = check_pair(op->name, a, b, &ctx);
    if (status != TLM_OK)
        return status;
    tlm_tensor *srcs[2] = {a, b};
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
                               a->shape, srcs, 2);
    return tlmi_result_finish(out, result, status);
}

/* out = a + b */
static int add_forward(tlm_tensor *out) {
    tlmi_add_forward(out->data, out->src[0]->data, out->src[1]->data,
                     out->numel, out->src[1]->numel);
    return TLM_OK;
}

static void add_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1];
    if (tlmi_wants_grad(a))
        tlmi_accumulate_scaled(a->grad, out->grad, 1.0f, out->numel);
    if (tlmi_wants_grad(b))
        tlmi_accumulate_repeated(b->grad, out->grad, 1.0f, out->numel,
                                 b->numel);
}

static const tlmi_op add_op = {"tlm_add", add_forward, add_backward};

TLM_API int tlm_add(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b) {
    return binary(out, &add_op, a, b);
}

/* out = a - b */
static int sub_forward(tlm_tensor *out) {
    tlmi_sub_forward(out->data, out->src[0]->data, out->src[1]->data,
                     out->numel, out->src[1]->numel);
    return TLM_OK;
}

static void sub_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1];
    if (tlmi_wants_grad(a))
        tlmi_accumulate_scaled(a->grad, out->grad, 1.0f, out->numel);
    if (tlmi_wants_grad(b))
        tlmi_accumulate_repeated(b->grad, out->grad, -1.0f, out->numel,
                                 b->numel);
}

static const tlmi_op sub_op = {"tlm_sub", sub_forward, sub_backward};

TLM_API int tlm_sub(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b) {
    return binary(out, &sub_op, a, b);
}

/* out = a * b */
static int mul_forward(tlm_tensor *out) {
    tlmi_mul_forward(out->data, out->src[0]->data, out->src[1]->data,
                     out->numel, out->src[1]->numel);
    return TLM_OK;
}

static void mul_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1];
    if (tlmi_wants_grad(a))
        tlmi_mul_backward_a(a->grad, out->grad, b->data, out->numel, b->numel);
    if (tlmi_wants_grad(b))
        tlmi_mul_backward_b(b->grad, out->grad, a->data, out->numel, b->numel);
}

static const tlmi_op mul_op = {"tlm_mul", mul_forward, mul_backward};

TLM_API int tlm_mul(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b) {
    return binary(out, &mul_op, a, b);
}

/* out = a * fparam[0] + fparam[1]: scale and add_scalar share it. */
static int affine_forward(tlm_tensor *out) {
    tlmi_affine_forward(out->data, out->src[0]->data, out->fparam[0],
                        out->fparam[1], out->numel);
    return TLM_OK;
}

static void affine_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_accumulate_scaled(a->grad, out->grad, out->fparam[0], out->numel);
}

static const tlmi_op scale_op = {"tlm_scale", affine_forward, affine_backward};
static const tlmi_op add_scalar_op = {"tlm_add_scalar", affine_forward,
                                      affine_backward};

static int affine(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                  float factor, float offset) {
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "%s: out is NULL", op->name);
    *out = NULL;
    tlm_context *ctx = NULL;
    int status = tlmi_op_input(op->name, "a", a, TLM_DTYPE_F32, &ctx);
    if (status != TLM_OK)
        return status;
    if (!isfinite(factor) || !isfinite(offset))
        return tlmi_op_fail(ctx, TLM_E_INVALID, "%s: the %s %g is not finite",
                            op->name, op == &scale_op ? "factor" : "value",
                            (double)(op == &scale_op ? factor : offset));
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
                               a->shape, &a, 1);
    if (status == TLM_OK) {
        result->fparam[0] = factor;
        result->fparam[1] = offset;
    }
    return tlmi_result_finish(out, result, status);
}

TLM_API int tlm_scale(tlm_tensor **out, tlm_tensor *a, float factor) {
    return affine(out, &scale_op, a, factor, 0.0f);
}

TLM_API int tlm_add_scalar(tlm_tensor **out, tlm_tensor *a, float value) {
    return affine(out, &add_scalar_op, a, 1.0f, value);
}
