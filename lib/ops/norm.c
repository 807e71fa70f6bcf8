/*
 * Normalizations over the last dimension C: layer norm and RMS norm
 * normalize each row (one token) by its own statistics; batch norm
 * normalizes each feature by statistics over all rows, and keeps running
 * statistics for evaluation. docs/normalization.md explains the choice.
 *
 * All three: src[0] = a, src[1] = gain (or NULL), src[2] = bias (or NULL,
 * RMS norm has none); iparam[0] = rows (numel / C), iparam[1] = C;
 * fparam[0] = eps. Batch norm also fparam[1] = momentum.
 */
#include <math.h>

#include "ops.h"

#include <string.h>

#include "kernels/scalar/norm.h"
#include "parallel.h"

/* ---- layer and RMS norm on the pool ------------------------------------
 * Their kernels are the context's (kernels/pointwise.h). Forward and
 * the input gradient split rows across the pool; the gain and bias
 * gradients (sums over rows) split columns, each column summing its rows
 * in order: the same bits for any thread count. */

typedef struct norm_job {
    const tlmi_pointwise_kernels *k;
    int rms;
    float *out, *mean, *rstd;   /* forward */
    float *dx, *dgain, *dbias;  /* backward */
    const float *x, *gain, *bias, *dout;
    int64_t rows, cols;
    float eps;
    int zero_dx; /* dx's first contribution: clear each range first */
} norm_job;

static void norm_forward_task(void *arg, int64_t begin, int64_t end,
                              int thread) {
    (void)thread;
    const norm_job *j = arg;
    const int64_t at = begin * j->cols;
    if (j->rms)
        j->k->rms_norm_forward(j->out + at, j->rstd + begin, j->x + at,
                               j->gain, end - begin, j->cols, j->eps);
    else
        j->k->layer_norm_forward(j->out + at, j->mean + begin,
                                 j->rstd + begin, j->x + at, j->gain, j->bias,
                                 end - begin, j->cols, j->eps);
}

static void norm_dx_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const norm_job *j = arg;
    const int64_t at = begin * j->cols;
    if (j->zero_dx)
        memset(j->dx + at, 0, (size_t)((end - begin) * j->cols) * sizeof(float));
    if (j->rms)
        j->k->rms_norm_backward_dx(j->dx + at, j->dout + at, j->x + at,
                                   j->gain, j->rstd + begin, end - begin,
                                   j->cols);
    else
        j->k->layer_norm_backward_dx(j->dx + at, j->dout + at, j->x + at,
                                     j->gain, j->mean + begin,
                                     j->rstd + begin, end - begin, j->cols);
}

/* Columns [begin, end) of dgain and dbias. */
static void norm_params_task(void *arg, int64_t begin, int64_t end,
                             int thread) {
    (void)thread;
    const norm_job *j = arg;
    if (j->rms)
        j->k->rms_norm_backward_params(j->dgain + begin, j->dout + begin,
                                       j->x + begin, j->rstd, j->rows,
                                       end - begin, j->cols);
    else
        j->k->layer_norm_backward_params(
            j->dgain != NULL ? j->dgain + begin : NULL,
            j->dbias != NULL ? j->dbias + begin : NULL, j->dout + begin,
            j->x + begin, j->mean, j->rstd, j->rows, end - begin, j->cols);
}

static void norm_forward(tlm_context *ctx, norm_job *job) {
    job->k = tlmi_pointwise(ctx);
    tlmi_parallel_for(ctx->pool, job->rows, tlmi_row_grain(job->cols),
                      norm_forward_task, job);
}

/* The gradients of a, gain and bias (each may be NULL or want none): dx
 * written by its rows, then the sums over rows into dgain and dbias. */
static void norm_backward(tlm_context *ctx, norm_job *job, tlm_tensor *a,
                          tlm_tensor *gain, tlm_tensor *bias) {
    job->k = tlmi_pointwise(ctx);
    if (tlmi_wants_grad(a)) {
        int accumulate;
        job->dx = tlmi_grad_target(a, &accumulate);
        job->zero_dx = !accumulate;
    }
    /* After dx's target: an a that is also the gain is cleared once. */
    job->dgain = tlmi_wants_grad(gain) ? tlmi_grad_accumulator(gain) : NULL;
    job->dbias = tlmi_wants_grad(bias) ? tlmi_grad_accumulator(bias) : NULL;
    if (job->dx != NULL)
        tlmi_parallel_for(ctx->pool, job->rows, tlmi_row_grain(job->cols),
                          norm_dx_task, job);
    if (job->dgain != NULL || job->dbias != NULL)
        tlmi_parallel_for(ctx->pool, job->cols, tlmi_row_grain(job->rows),
                          norm_params_task, job);
}

/* Checks that optional `t` (gain or bias) is [C], C = a's last dimension. */
static int check_vector(tlm_context *ctx, const char *op, const char *arg,
                        const tlm_tensor *t, const tlm_tensor *a) {
    const int64_t c = a->shape[a->ndim - 1];
    if (t == NULL || (t->ndim == 1 && t->shape[0] == c))
        return TLM_OK;
    char st[64], sa[64];
    return tlmi_op_fail(ctx, TLM_E_SHAPE,
                        "%s: %s %s must be [%lld] (the last dimension of a "
                        "%s)",
                        op, arg, tlmi_shape_string(t, st, sizeof st),
                        (long long)c, tlmi_shape_string(a, sa, sizeof sa));
}

static int check_eps(tlm_context *ctx, const char *op, float eps) {
    if (isfinite(eps) && eps > 0.0f)
        return TLM_OK;
    return tlmi_op_fail(ctx, TLM_E_INVALID,
                        "%s: eps %g must be finite and > 0", op, (double)eps);
}

/* Begins a norm: its out and inputs (gain and bias optional), then
 * gain's and bias's shapes against a's last dimension. */
static int check_inputs(tlm_tensor **out, const char *op, tlm_tensor *a,
                        tlm_tensor *gain, tlm_tensor *bias,
                        tlm_context **ctx) {
    const tlmi_op_arg args[] = {TLMI_OP_INPUT(a, TLM_DTYPE_F32),
                                TLMI_OP_OPTIONAL(gain, TLM_DTYPE_F32),
                                TLMI_OP_OPTIONAL(bias, TLM_DTYPE_F32)};
    int status = tlmi_op_begin(out, op, args, 3, ctx);
    if (status == TLM_OK)
        status = check_vector(*ctx, op, "gain", gain, a);
    if (status == TLM_OK)
        status = check_vector(*ctx, op, "bias", bias, a);
    return status;
}

/* Float buffer of `count` floats from the result's arena, recording an
 * error on failure. */
static float *alloc_floats(tlm_tensor *result, int64_t count, int *status) {
    if (*status != TLM_OK)
        return NULL;
    float *p = tlmi_result_alloc(result, (size_t)count * sizeof(float));
    if (p == NULL)
        *status = tlmi_op_fail(result->ctx, TLM_E_NOMEM,
                               "%s: allocating %lld saved floats failed",
                               result->op->name, (long long)count);
    return p;
}

/* ---- layer norm ------------------------------------------------------- */

/* saved: [2, rows] floats, per-row mean then per-row rstd. */
static int layer_norm_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0], *gain = out->src[1],
                     *bias = out->src[2];
    const int64_t rows = out->iparam[0], cols = out->iparam[1];
    float *mean = out->saved, *rstd = mean + rows;
    norm_job job = {.rms = 0, .out = out->data, .mean = mean, .rstd = rstd,
                    .x = a->data, .gain = gain ? gain->data : NULL,
                    .bias = bias ? bias->data : NULL, .rows = rows,
                    .cols = cols, .eps = out->fparam[0]};
    norm_forward(out->ctx, &job);
    return TLM_OK;
}

static void layer_norm_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *gain = out->src[1], *bias = out->src[2];
    const int64_t rows = out->iparam[0], cols = out->iparam[1];
    float *mean = out->saved, *rstd = mean + rows;
    norm_job job = {.rms = 0, .mean = mean, .rstd = rstd,
                    .x = a->data, .gain = gain ? gain->data : NULL,
                    .dout = out->grad, .rows = rows, .cols = cols};
    norm_backward(out->ctx, &job, a, gain, bias);
}

static const tlmi_op layer_norm_op = {"tlm_layer_norm", layer_norm_forward,
                                      layer_norm_backward};

TLM_API int tlm_layer_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                           tlm_tensor *bias, float eps) {
    const char *name = layer_norm_op.name;
    tlm_context *ctx = NULL;
    TLMI_TRY(check_inputs(out, name, a, gain, bias, &ctx));
    TLMI_TRY(check_eps(ctx, name, eps));
    const int64_t cols = a->shape[a->ndim - 1], rows = a->numel / cols;
    tlm_tensor *srcs[3] = {a, gain, bias};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &layer_norm_op, TLM_DTYPE_F32,
                                   a->ndim, a->shape, srcs, 3);
    if (status == TLM_OK) {
        result->iparam[0] = rows;
        result->iparam[1] = cols;
        result->fparam[0] = eps;
        /* rows <= numel, whose byte size the tensor already fits. */
        result->saved = alloc_floats(result, 2 * rows, &status);
    }
    return tlmi_result_finish(out, result, status);
}

/* ---- RMS norm --------------------------------------------------------- */

/* saved: [rows] floats, per-row rstd. */
static int rms_norm_forward(tlm_tensor *out) {
    const tlm_tensor *a = out->src[0], *gain = out->src[1];
    norm_job job = {.rms = 1, .out = out->data, .rstd = out->saved,
                    .x = a->data, .gain = gain ? gain->data : NULL,
                    .rows = out->iparam[0], .cols = out->iparam[1],
                    .eps = out->fparam[0]};
    norm_forward(out->ctx, &job);
    return TLM_OK;
}

static void rms_norm_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *gain = out->src[1];
    norm_job job = {.rms = 1, .rstd = out->saved,
                    .x = a->data, .gain = gain ? gain->data : NULL,
                    .dout = out->grad, .rows = out->iparam[0],
                    .cols = out->iparam[1]};
    norm_backward(out->ctx, &job, a, gain, NULL);
}

static const tlmi_op rms_norm_op = {"tlm_rms_norm", rms_norm_forward,
                                    rms_norm_backward};

TLM_API int tlm_rms_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                         float eps) {
    const char *name = rms_norm_op.name;
    tlm_context *ctx = NULL;
    TLMI_TRY(check_inputs(out, name, a, gain, NULL, &ctx));
    TLMI_TRY(check_eps(ctx, name, eps));
    const int64_t cols = a->shape[a->ndim - 1], rows = a->numel / cols;
    tlm_tensor *srcs[2] = {a, gain};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &rms_norm_op, TLM_DTYPE_F32,
                                   a->ndim, a->shape, srcs, 2);
    if (status == TLM_OK) {
        result->iparam[0] = rows;
        result->iparam[1] = cols;
        result->fparam[0] = eps;
        result->saved = alloc_floats(result, rows, &status);
    }
    return tlmi_result_finish(out, result, status);
}

/* ---- batch norm ------------------------------------------------------- */

/* The running statistics are buffers the forward pass reads or updates in
 * place, not inputs of the graph: they are kept here rather than in
 * src[], so that they never receive a gradient nor make the result
 * require one. */
typedef struct batch_norm_saved {
    float *mean;   /* [C]: the mean forward normalized with */
    float *rstd;   /* [C]: 1 / sqrt(variance + eps) it used */
    double *sums;  /* [2, C]: batch statistics, then backward's sums */
    tlm_tensor *running_mean, *running_var; /* [C] each, or both NULL */
    int training;  /* the mode of the last successful forward */
} batch_norm_saved;

static int batch_norm_forward(tlm_tensor *out) {
    const char *name = out->op->name;
    tlm_context *ctx = out->ctx;
    batch_norm_saved *saved = out->saved;
    const tlm_tensor *a = out->src[0], *gain = out->src[1],
                     *bias = out->src[2];
    tlm_tensor *running_mean = saved->running_mean,
               *running_var = saved->running_var;
    const int64_t rows = out->iparam[0], cols = out->iparam[1];
    const float eps = out->fparam[0], momentum = out->fparam[1];
    const int training = ctx->training;
    if (running_mean != NULL) {
        /* They are not on the tape: check they are still alive. */
        int status = tlmi_tensor_check(running_mean,
                                       "tlm_batch_norm: running_mean");
        if (status == TLM_OK)
            status = tlmi_tensor_check(running_var,
                                       "tlm_batch_norm: running_var");
        if (status != TLM_OK)
            return status;
        if (running_mean->dtype != TLM_DTYPE_F32 ||
            running_var->dtype != TLM_DTYPE_F32 ||
            running_mean->numel != cols || running_var->numel != cols)
            return tlmi_op_fail(ctx, TLM_E_STATE,
                                "%s: running_mean or running_var is no "
                                "longer the [%lld] f32 tensor it was given "
                                "as",
                                name, (long long)cols);
    }
    char sa[64];
    if (training) {
        if (rows < 2)
            return tlmi_op_fail(ctx, TLM_E_SHAPE,
                                "%s: a %s has %lld value(s) per feature; "
                                "training mode needs at least 2",
                                name, tlmi_shape_string(a, sa, sizeof sa),
                                (long long)rows);
        tlmi_batch_norm_train_forward(out->data, saved->mean, saved->rstd,
                                      saved->sums, a->data,
                                      gain ? gain->data : NULL,
                                      bias ? bias->data : NULL, rows, cols,
                                      eps);
        if (running_mean != NULL)
            tlmi_batch_norm_update_running(running_mean->data,
                                           running_var->data, saved->sums,
                                           rows, cols, momentum);
    } else {
        if (running_mean == NULL)
            return tlmi_op_fail(ctx, TLM_E_INVALID,
                                "%s: evaluation mode needs running_mean and "
                                "running_var, which are NULL",
                                name);
        const float *var = running_var->data;
        for (int64_t c = 0; c < cols; c++)
            if (!((double)var[c] + (double)eps > 0.0))
                return tlmi_op_fail(ctx, TLM_E_RANGE,
                                    "%s: running_var[%lld] = %g: running_var "
                                    "+ eps (%g) must be positive",
                                    name, (long long)c, (double)var[c],
                                    (double)eps);
        tlmi_batch_norm_eval_forward(out->data, saved->mean, saved->rstd,
                                     a->data, gain ? gain->data : NULL,
                                     bias ? bias->data : NULL,
                                     running_mean->data, var, rows, cols,
                                     eps);
    }
    saved->training = training;
    return TLM_OK;
}

static void batch_norm_backward(tlm_tensor *out) {
    tlm_tensor *a = out->src[0], *gain = out->src[1], *bias = out->src[2];
    batch_norm_saved *saved = out->saved;
    tlmi_batch_norm_backward(tlmi_wants_grad(a) ? tlmi_grad_accumulator(a)
                                                : NULL,
                             tlmi_wants_grad(gain) ? tlmi_grad_accumulator(gain)
                                                   : NULL,
                             tlmi_wants_grad(bias) ? tlmi_grad_accumulator(bias)
                                                   : NULL,
                             saved->sums, out->grad, a->data,
                             gain ? gain->data : NULL, saved->mean,
                             saved->rstd, out->iparam[0], out->iparam[1],
                             saved->training);
}

static const tlmi_op batch_norm_op = {"tlm_batch_norm", batch_norm_forward,
                                      batch_norm_backward};

/* Checks the running statistics: both or neither, f32 [C], and buffers of
 * their own (the forward pass writes them). */
static int check_running(tlm_context **ctx, const char *name, tlm_tensor *a,
                         tlm_tensor *gain, tlm_tensor *bias,
                         tlm_tensor *running_mean, tlm_tensor *running_var) {
    int status = TLM_OK;
    if (running_mean != NULL)
        status = tlmi_op_input(name, "running_mean", running_mean,
                               TLM_DTYPE_F32, ctx);
    if (status == TLM_OK && running_var != NULL)
        status = tlmi_op_input(name, "running_var", running_var,
                               TLM_DTYPE_F32, ctx);
    if (status != TLM_OK)
        return status;
    if ((running_mean == NULL) != (running_var == NULL))
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: running_mean and running_var must both be "
                            "given or both be NULL (%s is NULL)",
                            name,
                            running_mean == NULL ? "running_mean"
                                                 : "running_var");
    if (running_mean == NULL)
        return TLM_OK;
    status = check_vector(*ctx, name, "running_mean", running_mean, a);
    if (status == TLM_OK)
        status = check_vector(*ctx, name, "running_var", running_var, a);
    if (status != TLM_OK)
        return status;
    tlm_tensor *const others[3] = {a, gain, bias};
    for (int i = 0; i < 3; i++)
        if (others[i] == running_mean || others[i] == running_var)
            return tlmi_op_fail(*ctx, TLM_E_INVALID,
                                "%s: running_mean and running_var are "
                                "updated in place and must not be a, gain "
                                "or bias",
                                name);
    if (running_mean == running_var)
        return tlmi_op_fail(*ctx, TLM_E_INVALID,
                            "%s: running_mean and running_var are the same "
                            "tensor",
                            name);
    return TLM_OK;
}

TLM_API int tlm_batch_norm(tlm_tensor **out, tlm_tensor *a, tlm_tensor *gain,
                           tlm_tensor *bias, tlm_tensor *running_mean,
                           tlm_tensor *running_var, float momentum,
                           float eps) {
    const char *name = batch_norm_op.name;
    tlm_context *ctx = NULL;
    TLMI_TRY(check_inputs(out, name, a, gain, bias, &ctx));
    TLMI_TRY(check_running(&ctx, name, a, gain, bias, running_mean,
                           running_var));
    /* Written so that NaN fails too. */
    if (!(momentum >= 0.0f && momentum <= 1.0f))
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "%s: momentum %g must be in [0, 1]", name,
                            (double)momentum);
    TLMI_TRY(check_eps(ctx, name, eps));
    const int64_t cols = a->shape[a->ndim - 1], rows = a->numel / cols;
    /* The mode is read again at every forward; these are the errors a
     * caller should hear about when building the graph. */
    char sa[64];
    if (ctx->training && rows < 2)
        return tlmi_op_fail(ctx, TLM_E_SHAPE,
                            "%s: a %s has %lld value(s) per feature; training "
                            "mode needs at least 2 (batch statistics)",
                            name, tlmi_shape_string(a, sa, sizeof sa),
                            (long long)rows);
    if (!ctx->training && running_mean == NULL)
        return tlmi_op_fail(ctx, TLM_E_INVALID,
                            "%s: evaluation mode needs running_mean and "
                            "running_var, which are NULL",
                            name);
    tlm_tensor *srcs[3] = {a, gain, bias};
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, ctx, &batch_norm_op, TLM_DTYPE_F32,
                                   a->ndim, a->shape, srcs, 3);
    batch_norm_saved *saved = NULL;
    if (status == TLM_OK) {
        result->iparam[0] = rows;
        result->iparam[1] = cols;
        result->fparam[0] = eps;
        result->fparam[1] = momentum;
        saved = tlmi_result_alloc(result, sizeof *saved);
        if (saved == NULL)
            status = tlmi_op_fail(ctx, TLM_E_NOMEM,
                                  "%s: allocating saved state failed", name);
    }
    if (status == TLM_OK) {
        result->saved = saved;
        saved->running_mean = running_mean;
        saved->running_var = running_var;
        saved->training = ctx->training;
        saved->mean = alloc_floats(result, 2 * cols, &status);
        saved->rstd = saved->mean != NULL ? saved->mean + cols : NULL;
        /* cols <= numel: 2 * cols doubles are 4 times the floats of a,
         * within the size bound tlmi_shape_numel enforced. */
        if (status == TLM_OK) {
            saved->sums =
                tlmi_result_alloc(result, 2 * (size_t)cols * sizeof(double));
            if (saved->sums == NULL)
                status = tlmi_op_fail(ctx, TLM_E_NOMEM,
                                      "%s: allocating %lld doubles of "
                                      "scratch failed",
                                      name, (long long)(2 * cols));
        }
    }
    return tlmi_result_finish(out, result, status);
}
