/*
 * Position encodings of a [..., T, D] tensor (D even), position
 * p = offset + t for the second-to-last index t:
 * - tlm_add_sinusoidal_positions adds the fixed sin/cos table of
 *   "Attention Is All You Need";
 * - tlm_rope rotates each pair (2i, 2i+1) by p * base^(-2i/D) (the
 *   interleaved pairing of GPT-J and llama2.c).
 * Positions do not change when the graph is re-run, so both build their
 * table [T, D] once, at creation, in double precision.
 *
 * iparam[0] = offset, [1] = rows (product of the leading dims), [2] = T,
 * [3] = D; fparam[0] = base (RoPE). saved = the sinusoidal table [T, D],
 * or RoPE's cos [T, D/2] followed by its sin [T, D/2].
 */
#include <math.h>

#include "ops.h"

#include "kernels/scalar/elementwise.h"
#include "kernels/scalar/position.h"

/* Positions are exact in double up to 2^53; larger ones would all round
 * to a few values. */
#define MAX_POSITION ((int64_t)1 << 53)

/* Checks `a` [..., T, D] with D even and offset >= 0, offset + T - 1 at
 * most MAX_POSITION. */
static int check_positions(tlm_tensor **out, const char *name, tlm_tensor *a,
                           int64_t offset, tlm_context **ctx) {
    const tlmi_op_arg args[] = {TLMI_OP_INPUT(a, TLM_DTYPE_F32)};
    TLMI_TRY(tlmi_op_begin(out, name, args, 1, ctx));
    char sa[64];
    tlmi_shape_string(a, sa, sizeof sa);
    if (a->ndim < 2)
        return tlmi_op_fail(*ctx, TLM_E_SHAPE,
                            "%s: a %s must have at least 2 dimensions "
                            "[..., T, D]",
                            name, sa);
    const int64_t t = a->shape[a->ndim - 2], d = a->shape[a->ndim - 1];
    if (d % 2 != 0)
        return tlmi_op_fail(*ctx, TLM_E_SHAPE,
                            "%s: a %s has an odd last dimension D = %lld "
                            "(D must be even: dimensions come in pairs)",
                            name, sa, (long long)d);
    if (offset < 0)
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: offset %lld must be >= 0", name,
                            (long long)offset);
    if (offset > MAX_POSITION - (t - 1))
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: offset %lld with T = %lld gives positions "
                            "past 2^53 (not exact in double)",
                            name, (long long)offset, (long long)t);
    return TLM_OK;
}

/* Starts the result [shape of a] and records offset, rows, T, D. */
static int begin_positions(tlm_tensor **result, tlm_context *ctx,
                           const tlmi_op *op, tlm_tensor *a, int64_t offset) {
    int status = tlmi_result_begin(result, ctx, op, TLM_DTYPE_F32, a->ndim,
                                   a->shape, &a, 1);
    if (status != TLM_OK)
        return status;
    const int64_t t = a->shape[a->ndim - 2], d = a->shape[a->ndim - 1];
    (*result)->iparam[0] = offset;
    (*result)->iparam[1] = a->numel / (t * d);
    (*result)->iparam[2] = t;
    (*result)->iparam[3] = d;
    return TLM_OK;
}

/* ---- sinusoidal ---- */

static int sinusoidal_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0];
    const float *pe = out->saved; /* [T, D] */
    tlmi_add_forward(out->data, a->data, pe, out->numel,
                     out->iparam[2] * out->iparam[3]);
    return TLM_OK;
}

static void sinusoidal_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (tlmi_wants_grad(a))
        tlmi_accumulate_scaled(tlmi_grad_accumulator(a), out->grad, 1.0f,
                               out->numel);
}

static const tlmi_op sinusoidal_op = {"tlm_add_sinusoidal_positions",
                                      sinusoidal_forward,
                                      sinusoidal_backward};

TLM_API int tlm_add_sinusoidal_positions(tlm_tensor **out, tlm_tensor *a,
                                         int64_t offset) {
    const char *name = sinusoidal_op.name;
    tlm_context *ctx = NULL;
    TLMI_TRY(check_positions(out, name, a, offset, &ctx));
    tlm_tensor *result = NULL;
    int status = begin_positions(&result, ctx, &sinusoidal_op, a, offset);
    if (status == TLM_OK) {
        const int64_t t = result->iparam[2], d = result->iparam[3];
        float *pe = tlmi_result_alloc(result, (size_t)(t * d) * sizeof(float));
        if (pe == NULL)
            status = tlmi_op_fail(ctx, TLM_E_NOMEM,
                                  "%s: allocating the position table "
                                  "[%lld, %lld] failed",
                                  name, (long long)t, (long long)d);
        else
            tlmi_sinusoidal_table(pe, offset, t, d);
        result->saved = pe;
    }
    return tlmi_result_finish(out, result, status);
}

/* ---- RoPE ---- */

static int rope_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0];
    const int64_t rows = out->iparam[1], t = out->iparam[2],
                  d = out->iparam[3];
    const float *cos_table = out->saved;
    const float *sin_table = cos_table + t * (d / 2);
    tlmi_rope_forward(out->data, a->data, cos_table, sin_table, rows, t, d);
    return TLM_OK;
}

static void rope_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0];
    if (!tlmi_wants_grad(a))
        return;
    const int64_t rows = out->iparam[1], t = out->iparam[2],
                  d = out->iparam[3];
    const float *cos_table = out->saved;
    const float *sin_table = cos_table + t * (d / 2);
    tlmi_rope_backward(tlmi_grad_accumulator(a), out->grad, cos_table, sin_table, rows, t, d);
}

static const tlmi_op rope_op = {"tlm_rope", rope_forward, rope_backward};

TLM_API int tlm_rope(tlm_tensor **out, tlm_tensor *a, int64_t offset,
                     float base) {
    const char *name = rope_op.name;
    tlm_context *ctx = NULL;
    TLMI_TRY(check_positions(out, name, a, offset, &ctx));
    if (!isfinite(base) || !(base > 0.0f))
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "%s: base %g must be finite and > 0", name,
                            (double)base);
    tlm_tensor *result = NULL;
    int status = begin_positions(&result, ctx, &rope_op, a, offset);
    if (status == TLM_OK) {
        const int64_t t = result->iparam[2], d = result->iparam[3];
        result->fparam[0] = base;
        /* cos and sin [T, D/2] each: T * D floats in all */
        float *tables = tlmi_result_alloc(result,
                                          (size_t)(t * d) * sizeof(float));
        if (tables == NULL)
            status = tlmi_op_fail(ctx, TLM_E_NOMEM,
                                  "%s: allocating the rotation tables "
                                  "[%lld, %lld] failed",
                                  name, (long long)t, (long long)(d / 2));
        else
            tlmi_rope_table(tables, tables + t * (d / 2), offset, t, d,
                            (double)base);
        result->saved = tables;
    }
    return tlmi_result_finish(out, result, status);
}
