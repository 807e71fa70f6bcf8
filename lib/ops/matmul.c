/*
 * Matrix products: x.W and x.W^T with a 2-D weight shared by every row of
 * x, and batched products (one per head) when both sides carry the same
 * leading dimensions. Optional bias on the result's columns.
 *
 * iparam[0] = batch count (1 for a shared 2-D weight), [1] = M, [2] = N,
 * [3] = K, [4] = transpose_b.
 *
 * The products run on the GEMM kernel dispatch chose for this CPU
 * (kernels/dispatch.h), packing into the context's workspace. Creating the
 * node makes the workspace large enough for its forward and backward
 * products, so neither pass allocates.
 */
#include "ops.h"

#include "kernels/dispatch.h"
#include "kernels/scalar/matmul.h"

/* Workspace bytes the active GEMM needs for the node's products: the
 * forward one, and the backward ones when the node has a gradient. */
static size_t matmul_workspace(const tlmi_kernels *kernels, int64_t m,
                               int64_t n, int64_t k, int transpose_b,
                               int with_backward) {
    size_t bytes = kernels->gemm_workspace(m, n, k, 0, transpose_b);
    if (with_backward) {
        size_t da = kernels->gemm_workspace(m, k, n, 0, !transpose_b);
        size_t db = transpose_b ? kernels->gemm_workspace(n, k, m, 1, 0)
                                : kernels->gemm_workspace(k, n, m, 1, 0);
        bytes = da > bytes ? da : bytes;
        bytes = db > bytes ? db : bytes;
    }
    return bytes;
}

/* C = op(A) . op(B) ... (see tlmi_gemm) with the dispatched kernel. Should
 * the kernels have changed since the node was made (a new CPU mask) and
 * need more workspace than there is, the scalar reference does it. */
static void gemm(tlm_context *ctx, float *c, const float *a, const float *b,
                 const float *bias, int64_t m, int64_t n, int64_t k,
                 int transpose_a, int transpose_b, int accumulate) {
    const tlmi_kernels *kernels = tlmi_kernels_active();
    if (kernels->gemm_workspace(m, n, k, transpose_a, transpose_b) <=
        ctx->workspace_bytes)
        kernels->gemm(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                      accumulate, ctx->workspace);
    else
        tlmi_gemm(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                  accumulate);
}

static int matmul_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0], *b = out->src[1], *bias = out->src[2];
    const int64_t batch = out->iparam[0], m = out->iparam[1],
                  n = out->iparam[2], k = out->iparam[3];
    const int transpose_b = (int)out->iparam[4];
    const int64_t b_stride = b->ndim == 2 ? 0 : n * k;
    for (int64_t i = 0; i < batch; i++)
        gemm(out->ctx, (float *)out->data + i * m * n,
                  (const float *)a->data + i * m * k,
                  (const float *)b->data + i * b_stride,
                  bias ? bias->data : 0, m, n, k, 0, transpose_b, 0);
    return TLM_OK;
}

static void matmul_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1], *bias = out->src[2];
    const int64_t batch = out->iparam[0], m = out->iparam[1],
                  n = out->iparam[2], k = out->iparam[3];
    const int transpose_b = (int)out->iparam[4];
    const int64_t b_stride = b->ndim == 2 ? 0 : n * k;
    const float *dc = out->grad;
    for (int64_t i = 0; i < batch; i++) {
        const float *dc_i = dc + i * m * n;
        const float *a_i = (const float *)a->data + i * m * k;
        const float *b_i = (const float *)b->data + i * b_stride;
        /* dA [M, K] += dC [M, N] . op(B)^T */
        if (tlmi_wants_grad(a))
            gemm(out->ctx, a->grad + i * m * k, dc_i, b_i, 0, m, k, n, 0,
                      !transpose_b, 1);
        if (tlmi_wants_grad(b)) {
            float *db_i = b->grad + i * b_stride;
            if (transpose_b) /* dB [N, K] += dC^T [N, M] . A [M, K] */
                gemm(out->ctx, db_i, dc_i, a_i, 0, n, k, m, 1, 0, 1);
            else /* dB [K, N] += A^T [K, M] . dC [M, N] */
                gemm(out->ctx, db_i, a_i, dc_i, 0, k, n, m, 1, 0, 1);
        }
    }
    if (tlmi_wants_grad(bias))
        tlmi_bias_backward(bias->grad, dc, batch * m, n);
}

static const tlmi_op matmul_op = {"tlm_matmul", matmul_forward,
                                  matmul_backward};

TLM_API int tlm_matmul(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b,
                       tlm_tensor *bias, int32_t flags) {
    const char *name = matmul_op.name;
    if (out == NULL)
        return tlmi_op_fail(NULL, TLM_E_INVALID, "%s: out is NULL", name);
    *out = NULL;
    tlm_context *ctx = NULL;
    int status = tlmi_op_input(name, "a", a, TLM_DTYPE_F32, &ctx);
    if (status == TLM_OK)
        status = tlmi_op_input(name, "b", b, TLM_DTYPE_F32, &ctx);
    if (status == TLM_OK && bias != NULL)
        status = tlmi_op_input(name, "bias", bias, TLM_DTYPE_F32, &ctx);
    if (status != TLM_OK)
        return status;
    if ((flags & ~(int32_t)TLM_MATMUL_TRANSPOSE_B) != 0)
        return tlmi_op_fail(ctx, TLM_E_INVALID, "%s: unknown flags 0x%x",
                            name, (unsigned)flags);
    const int transpose_b = (flags & TLM_MATMUL_TRANSPOSE_B) != 0;
    char sa[64], sb[64];
    tlmi_shape_string(a, sa, sizeof sa);
    tlmi_shape_string(b, sb, sizeof sb);
    if (a->ndim < 2 || b->ndim < 2)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s and b %s must both have at least 2 "
                            "dimensions",
                            name, sa, sb);
    const int64_t m = a->shape[a->ndim - 2], k = a->shape[a->ndim - 1];
    const int64_t b_k = transpose_b ? b->shape[b->ndim - 1] : b->shape[b->ndim - 2];
    const int64_t n = transpose_b ? b->shape[b->ndim - 2] : b->shape[b->ndim - 1];
    if (b_k != k)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s has K = %lld but b %s%s has K = %lld",
                            name, sa, (long long)k, sb,
                            transpose_b ? " (transposed)" : "",
                            (long long)b_k);
    int64_t batch = 1;
    for (int32_t i = 0; i < a->ndim - 2; i++)
        batch *= a->shape[i];
    if (b->ndim > 2) {
        int same = b->ndim == a->ndim;
        for (int32_t i = 0; same && i < a->ndim - 2; i++)
            same = a->shape[i] == b->shape[i];
        if (!same)
            return tlmi_op_fail(ctx, TLM_E_SHAPE,
                                "%s: batched b %s must have a %s's leading "
                                "dimensions",
                                name, sb, sa);
    }
    if (bias != NULL && (bias->ndim != 1 || bias->shape[0] != n)) {
        char sbias[64];
        return tlmi_op_fail(ctx, TLM_E_SHAPE, "%s: bias %s must be [%lld]",
                            name, tlmi_shape_string(bias, sbias, sizeof sbias),
                            (long long)n);
    }
    int64_t shape[TLM_MAX_DIMS];
    for (int32_t i = 0; i < a->ndim; i++)
        shape[i] = a->shape[i];
    shape[a->ndim - 1] = n;
    tlm_tensor *srcs[3] = {a, b, bias};
    tlm_tensor *result = NULL;
    status = tlmi_result_begin(&result, ctx, &matmul_op, TLM_DTYPE_F32,
                               a->ndim, shape, srcs, 3);
    if (status == TLM_OK) {
        result->iparam[0] = batch;
        result->iparam[1] = m;
        result->iparam[2] = n;
        result->iparam[3] = k;
        result->iparam[4] = transpose_b;
        status = tlmi_context_reserve_workspace(
            ctx,
            matmul_workspace(tlmi_kernels_active(), m, n, k, transpose_b,
                             result->grad != NULL),
            name);
    }
    return tlmi_result_finish(out, result, status);
}
