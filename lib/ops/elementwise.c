/*
 * Elementwise operations: add, sub, mul (b repeated over a's leading
 * dimensions), scale and add_scalar.
 *
 * The kernels are the context's (kernels/pointwise.h). Results and
 * a's gradient are split over element ranges across the context's pool;
 * a repeated b's gradient (a sum over a's rows) is split over b's
 * elements, each summing its rows in order: the same bits for any thread
 * count.
 */
#include "ops.h"

#include <math.h>

#include "parallel.h"

/* Checks a and b and that b's shape is a's or a suffix of it. */
static int check_pair(const char *op, tlm_tensor *a, tlm_tensor *b,
                      tlm_context *ctx) {
    int32_t skip = a->ndim - b->ndim;
    int fits = skip >= 0;
    for (int32_t i = 0; fits && i < b->ndim; i++)
        fits = b->shape[i] == a->shape[skip + i];
    if (!fits) {
        char sa[64], sb[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: b %s is neither a's shape %s nor its "
                            "trailing dimensions",
                            op, tlmi_shape_string(b, sb, sizeof sb),
                            tlmi_shape_string(a, sa, sizeof sa));
    }
    return TLM_OK;
}

static int binary(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                  tlm_tensor *b) {
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, op->name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(b, TLM_DTYPE_F32));
    TLMI_TRY(check_pair(op->name, a, b, ctx));
    tlm_tensor *srcs[2] = {a, b};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
                               a->shape, srcs, 2);
    return tlmi_result_finish(out, result, status);
}

enum ew_kind { EW_ADD, EW_SUB, EW_MUL, EW_AFFINE, EW_ACC_SCALED,
               EW_ACC_PRODUCT };

/* out[i] = a[i] (op) b[i % bn] over elements, or (reduce) out[j] += sum
 * over rows of a[r bn + j] (op) b[r bn + j] over b's elements. */
typedef struct ew_job {
    const tlmi_pointwise_kernels *k;
    int kind;
    float *out;
    const float *a, *b;
    float factor, offset;
    int64_t n, bn;
} ew_job;

static void ew_segment(const ew_job *j, float *out, const float *a,
                       const float *b, int64_t len) {
    const tlmi_pointwise_kernels *k = j->k;
    switch (j->kind) {
    case EW_ADD: k->add(out, a, b, len); break;
    case EW_SUB: k->sub(out, a, b, len); break;
    case EW_MUL: k->mul(out, a, b, len); break;
    case EW_AFFINE: k->affine(out, a, j->factor, j->offset, len); break;
    case EW_ACC_SCALED: k->accumulate_scaled(out, a, j->factor, len); break;
    case EW_ACC_PRODUCT: k->accumulate_product(out, a, b, len); break;
    default: break;
    }
}

/* Elements [begin, end) of out, cut where b starts over. */
static void ew_map_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const ew_job *j = arg;
    for (int64_t i = begin; i < end;) {
        const int64_t col = i % j->bn;
        int64_t len = j->bn - col;
        if (len > end - i)
            len = end - i;
        ew_segment(j, j->out + i, j->a + i, j->b != NULL ? j->b + col : NULL,
                   len);
        i += len;
    }
}

/* Elements [begin, end) of the [bn] out, summing a's rows in order. */
static void ew_reduce_task(void *arg, int64_t begin, int64_t end,
                           int thread) {
    (void)thread;
    const ew_job *j = arg;
    for (int64_t row = 0; row < j->n; row += j->bn)
        ew_segment(j, j->out + begin, j->a + row + begin,
                   j->b != NULL ? j->b + row + begin : NULL, end - begin);
}

static void ew_map(tlm_context *ctx, int kind, float *out, const float *a,
                   const float *b, float factor, float offset, int64_t n,
                   int64_t bn) {
    ew_job job = {tlmi_pointwise(ctx), kind, out, a, b, factor, offset, n, bn};
    tlmi_parallel_for(ctx->pool, n, TLMI_POINTWISE_GRAIN, ew_map_task, &job);
}

static void ew_reduce(tlm_context *ctx, int kind, float *out, const float *a,
                      const float *b, float factor, int64_t n, int64_t bn) {
    ew_job job = {tlmi_pointwise(ctx), kind, out, a, b, factor, 0.0f, n, bn};
    tlmi_parallel_for(ctx->pool, bn, tlmi_row_grain(n / bn), ew_reduce_task,
                      &job);
}

/* Input t's share of the gradient g [n]: factor * g, or g * other when
 * other is not NULL. t has n elements, or is repeated over g and has its
 * trailing tn; other has n elements, or its trailing on repeated. The
 * first contribution writes, the later ones add (see tlmi_grad_target). */
static void ew_grad(tlm_context *ctx, tlm_tensor *t, const float *g,
                    const float *other, float factor, int64_t n, int64_t tn,
                    int64_t on) {
    int accumulate;
    if (tn == n) {
        float *dt = tlmi_grad_target(t, &accumulate);
        if (other != NULL)
            ew_map(ctx, accumulate ? EW_ACC_PRODUCT : EW_MUL, dt, g, other,
                   1.0f, 0.0f, n, on);
        else
            ew_map(ctx, accumulate ? EW_ACC_SCALED : EW_AFFINE, dt, g, NULL,
                   factor, 0.0f, n, n);
        return;
    }
    /* A sum over g's rows, which adds row by row. */
    ew_reduce(ctx, other != NULL ? EW_ACC_PRODUCT : EW_ACC_SCALED,
              tlmi_grad_accumulator(t), g, other, factor, n, tn);
}

/* out = a + b, or a - b: the two ops share their functions, and the op
 * says which */
static const tlmi_op add_op, sub_op;

static int add_sub_forward(tlm_tensor *out) {
    ew_map(out->ctx, out->op == &sub_op ? EW_SUB : EW_ADD, out->data,
           out->src[0]->data, out->src[1]->data, 1.0f, 0.0f, out->numel,
           out->src[1]->numel);
    return TLM_OK;
}

static void add_sub_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1];
    if (tlmi_wants_grad(a))
        ew_grad(out->ctx, a, out->grad, NULL, 1.0f, out->numel, out->numel, 0);
    if (tlmi_wants_grad(b))
        ew_grad(out->ctx, b, out->grad, NULL, out->op == &sub_op ? -1.0f : 1.0f,
                out->numel, b->numel, 0);
}

static const tlmi_op add_op = {"tlm_add", add_sub_forward, add_sub_backward};
static const tlmi_op sub_op = {"tlm_sub", add_sub_forward, add_sub_backward};

TLM_API int tlm_add(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b) {
    return binary(out, &add_op, a, b);
}

TLM_API int tlm_sub(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b) {
    return binary(out, &sub_op, a, b);
}

/* out = a * b */
static int mul_forward(tlm_tensor *out) {
    ew_map(out->ctx, EW_MUL, out->data, out->src[0]->data, out->src[1]->data,
           1.0f, 0.0f, out->numel, out->src[1]->numel);
    return TLM_OK;
}

static void mul_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1];
    if (tlmi_wants_grad(a))
        ew_grad(out->ctx, a, out->grad, b->data, 1.0f, out->numel,
                out->numel, b->numel);
    if (tlmi_wants_grad(b))
        ew_grad(out->ctx, b, out->grad, a->data, 1.0f, out->numel, b->numel,
                out->numel);
}

static const tlmi_op mul_op = {"tlm_mul", mul_forward, mul_backward};

TLM_API int tlm_mul(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b) {
    return binary(out, &mul_op, a, b);
}

/* out = a * fparam[0] + fparam[1]: scale and add_scalar share it. */
static int affine_forward(tlm_tensor *out) {
    ew_map(out->ctx, EW_AFFINE, out->data, out->src[0]->data, NULL,
           out->fparam[0], out->fparam[1], out->numel, out->numel);
    return TLM_OK;
}

static void affine_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        ew_grad(out->ctx, a, out->grad, NULL, out->fparam[0], out->numel,
                out->numel, 0);
}

static const tlmi_op scale_op = {"tlm_scale", affine_forward, affine_backward};
static const tlmi_op add_scalar_op = {"tlm_add_scalar", affine_forward,
                                      affine_backward};

static int affine(tlm_tensor **out, const tlmi_op *op, tlm_tensor *a,
                  float factor, float offset) {
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, op->name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32));
    if (!isfinite(factor) || !isfinite(offset))
        return tlmi_op_fail(ctx, TLM_E_INVALID, "%s: the %s %g is not finite",
                            op->name, op == &scale_op ? "factor" : "value",
                            (double)(op == &scale_op ? factor : offset));
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, op, TLM_DTYPE_F32, a->ndim,
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
