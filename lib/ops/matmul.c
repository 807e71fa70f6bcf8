/*
 * Matrix products: x.W and x.W^T with a 2-D weight shared by every row of
 * x, and batched products (one per head) when both sides carry the same
 * leading dimensions. Optional bias on the result's columns.
 *
 * iparam[0] = batch count (1 for a shared 2-D weight), [1] = M, [2] = N,
 * [3] = K, [4] = transpose_b.
 *
 * The products run on the context's GEMM kernel (the one dispatch chose
 * for this CPU when the context was made, kernels/dispatch.h), over the context's thread pool: each thread
 * computes a range of C's rows or columns (kernels/gemm_parallel.h; or,
 * for batched products, whole products of the batch), packing into its
 * own slot of the context's workspace, so the results are the same for
 * any number of threads.
 * Creating the node makes the workspace large enough for its forward and
 * backward products on every thread, so neither pass allocates.
 *
 * While the context's products_bf16 is set (a trainer with precision
 * TLM_PRECISION_BF16, around its passes), the products are the bf16 ones
 * of kernels/gemm_bf16.h (bf16 inputs, float32 sums) from the context's
 * kernels_bf16 table; the workspace fits either table.
 */
#include "ops.h"

#include "kernels/dispatch.h"
#include "kernels/gemm_parallel.h"
#include "kernels/scalar/matmul.h"

/* Workspace bytes the context's GEMM needs for the node's products: the
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

/* C = op(A) . op(B) ... (see tlmi_gemm) with the context's kernel over
 * its threads, in the workspace the node's creation made large enough. */
static void gemm(tlm_context *ctx, float *c, const float *a, const float *b,
                 const float *bias, int64_t m, int64_t n, int64_t k,
                 int transpose_a, int transpose_b, int accumulate) {
    tlmi_gemm_parallel(ctx->pool, tlmi_context_products(ctx), c, a, b, bias,
                       m, n, k, transpose_a, transpose_b, accumulate,
                       ctx->workspace, ctx->workspace_bytes);
}

/* A batch of products, whole products per thread: item i is
 * C_i = op(A_i) . op(B_i) (+ C_i) (+ bias), A_i at a + i * a_stride ... */
typedef struct batch_job {
    tlm_context *ctx;
    const tlmi_kernels *kernels;
    float *c;
    const float *a, *b, *bias;
    int64_t c_stride, a_stride, b_stride;
    int64_t m, n, k;
    int transpose_a, transpose_b, accumulate;
    size_t slot; /* workspace bytes per thread */
} batch_job;

static void batch_task(void *arg, int64_t begin, int64_t end, int thread) {
    const batch_job *job = arg;
    float *workspace =
        job->slot > 0 ? (float *)(void *)((char *)job->ctx->workspace +
                                          (size_t)thread * job->slot)
                      : NULL;
    for (int64_t i = begin; i < end; i++)
        job->kernels->gemm(job->c + i * job->c_stride,
                           job->a + i * job->a_stride,
                           job->b + i * job->b_stride, job->bias, job->m,
                           job->n, job->k, job->transpose_a, job->transpose_b,
                           job->accumulate, workspace);
}

/* `batch` products (see batch_job): over the threads by whole products
 * when there are at least as many as threads, else each one split by
 * columns. Both give every element of C the same operations. */
static void gemm_batch(tlm_context *ctx, int64_t batch, float *c,
                       int64_t c_stride, const float *a, int64_t a_stride,
                       const float *b, int64_t b_stride, const float *bias,
                       int64_t m, int64_t n, int64_t k, int transpose_a,
                       int transpose_b, int accumulate) {
    const tlmi_kernels *kernels = tlmi_context_products(ctx);
    const int threads = tlmi_threadpool_threads(ctx->pool);
    const size_t need =
        kernels->gemm_workspace(m, n, k, transpose_a, transpose_b);
    const size_t slot = tlmi_gemm_parallel_workspace(need, 1);
    if (batch >= threads && threads > 1 &&
        tlmi_gemm_parallel_workspace(need, threads) <= ctx->workspace_bytes) {
        batch_job job = {
            .ctx = ctx, .kernels = kernels, .c = c, .a = a, .b = b,
            .bias = bias, .c_stride = c_stride, .a_stride = a_stride,
            .b_stride = b_stride, .m = m, .n = n, .k = k,
            .transpose_a = transpose_a, .transpose_b = transpose_b,
            .accumulate = accumulate, .slot = slot,
        };
        const double flops = 2.0 * (double)m * (double)n * (double)k;
        int64_t grain = 1;
        if (flops < (double)TLMI_GEMM_MIN_FLOPS_PER_THREAD)
            grain = (int64_t)((double)TLMI_GEMM_MIN_FLOPS_PER_THREAD /
                              (flops > 1.0 ? flops : 1.0)) + 1;
        tlmi_parallel_for(ctx->pool, batch, grain, batch_task, &job);
        return;
    }
    for (int64_t i = 0; i < batch; i++)
        gemm(ctx, c + i * c_stride, a + i * a_stride, b + i * b_stride, bias,
             m, n, k, transpose_a, transpose_b, accumulate);
}

static int matmul_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0], *b = out->src[1], *bias = out->src[2];
    const int64_t batch = out->iparam[0], m = out->iparam[1],
                  n = out->iparam[2], k = out->iparam[3];
    const int transpose_b = (int)out->iparam[4];
    const int64_t b_stride = b->ndim == 2 ? 0 : n * k;
    gemm_batch(out->ctx, batch, (float *)out->data, m * n,
               (const float *)a->data, m * k, (const float *)b->data,
               b_stride, bias ? bias->data : 0, m, n, k, 0, transpose_b, 0);
    return TLM_OK;
}

static void matmul_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *b = out->src[1], *bias = out->src[2];
    const int64_t batch = out->iparam[0], m = out->iparam[1],
                  n = out->iparam[2], k = out->iparam[3];
    const int transpose_b = (int)out->iparam[4];
    const int64_t b_stride = b->ndim == 2 ? 0 : n * k;
    const float *dc = out->grad;
    tlm_context *ctx = out->ctx;
    int accumulate;
    /* dA [M, K] (+)= dC [M, N] . op(B)^T */
    if (tlmi_wants_grad(a)) {
        float *da = tlmi_grad_target(a, &accumulate);
        gemm_batch(ctx, batch, da, m * k, dc, m * n, (const float *)b->data,
                   b_stride, 0, m, k, n, 0, !transpose_b, accumulate);
    }
    if (tlmi_wants_grad(b)) {
        /* dB [N, K] (+)= dC^T [N, M] . A [M, K], or
         * dB [K, N] (+)= A^T [K, M] . dC [M, N], per item of a batched b;
         * a shared 2-D b has batch 1 (its rows are all of a's, see
         * tlm_matmul), so it is one product too. */
        const float *x = transpose_b ? dc : (const float *)a->data;
        const float *y = transpose_b ? (const float *)a->data : dc;
        const int64_t x_stride = transpose_b ? m * n : m * k;
        const int64_t y_stride = transpose_b ? m * k : m * n;
        const int64_t rows = transpose_b ? n : k, cols = transpose_b ? k : n;
        float *db = tlmi_grad_target(b, &accumulate);
        gemm_batch(ctx, batch, db, b_stride, x, x_stride, y, y_stride, 0,
                   rows, cols, m, 1, 0, accumulate);
    }
    if (tlmi_wants_grad(bias))
        tlmi_bias_backward(tlmi_grad_accumulator(bias), dc, batch * m, n);
}

static const tlmi_op matmul_op = {"tlm_matmul", matmul_forward,
                                  matmul_backward};

TLM_API int tlm_matmul(tlm_tensor **out, tlm_tensor *a, tlm_tensor *b,
                       tlm_tensor *bias, int32_t flags) {
    const char *name = matmul_op.name;
    tlm_context *ctx = NULL;
    TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32),
                     TLMI_OP_INPUT(b, TLM_DTYPE_F32),
                     TLMI_OP_OPTIONAL(bias, TLM_DTYPE_F32));
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
    int64_t batch = 1, rows = m;
    for (int32_t i = 0; i < a->ndim - 2; i++)
        batch *= a->shape[i];
    /* A 2-D b is shared by every item: a's leading dimensions are then
     * rows of one product (M = batch x m), so B is packed once, not once
     * per item, and the weight's gradient is one product over all rows. */
    if (b->ndim == 2) {
        rows = batch * m;
        batch = 1;
    }
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
    int status = tlmi_result_begin(&result, ctx, &matmul_op, TLM_DTYPE_F32,
                                   a->ndim, shape, srcs, 3);
    if (status == TLM_OK) {
        result->iparam[0] = batch;
        result->iparam[1] = rows;
        result->iparam[2] = n;
        result->iparam[3] = k;
        result->iparam[4] = transpose_b;
        const size_t f32_bytes = matmul_workspace(
            ctx->kernels, rows, n, k, transpose_b, result->requires_grad);
        const size_t bf16_bytes = matmul_workspace(
            &ctx->kernels_bf16, rows, n, k, transpose_b, result->requires_grad);
        status = tlmi_context_reserve_workspace(
            ctx,
            tlmi_gemm_parallel_workspace(
                f32_bytes > bf16_bytes ? f32_bytes : bf16_bytes,
                tlmi_threadpool_threads(ctx->pool)),
            name);
    }
    return tlmi_result_finish(out, result, status);
}
