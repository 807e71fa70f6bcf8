/*
 * Optimizers: AdamW (decoupled weight decay, Loshchilov & Hutter) and SGD
 * with momentum, Nesterov momentum and L2 weight decay, with PyTorch's
 * semantics; and clipping of gradients by their global norm. The update
 * equations are written out in docs/optimizers.md; the state's saved
 * layout is in optim_state.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "base/params.h"
#include "ops/parallel.h"
#include "optim.h"

/* Carved blocks start on this boundary, like tensor data. */
#define OPTIM_ALIGN 64

static size_t round_up(size_t n) {
    return (n + (OPTIM_ALIGN - 1)) & ~(size_t)(OPTIM_ALIGN - 1);
}

int tlmi_optim_moments(int32_t kind) {
    return kind == TLM_OPTIMIZER_ADAMW ? 2 : 1;
}

TLM_API int tlm_optimizer_params_init_for(tlm_optimizer_params *params,
                                          int32_t kind) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_params_init_for", params);
    if (kind != TLM_OPTIMIZER_ADAMW && kind != TLM_OPTIMIZER_SGD)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_optimizer_params_init_for: kind %d is not "
                                "TLM_OPTIMIZER_ADAMW (0) or TLM_OPTIMIZER_SGD "
                                "(1)",
                                (int)kind);
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->kind = kind;
    params->lr = kind == TLM_OPTIMIZER_ADAMW ? 1e-3f : 1e-2f;
    params->beta1 = 0.9f;
    params->beta2 = 0.999f;
    params->eps = 1e-8f;
    params->weight_decay = kind == TLM_OPTIMIZER_ADAMW ? 0.01f : 0.0f;
    params->momentum = 0.0f;
    params->nesterov = 0;
    params->decay_flags = NULL;
    return TLM_OK;
}

TLM_API int tlm_optimizer_params_init(tlm_optimizer_params *params) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_params_init", params);
    return tlm_optimizer_params_init_for(params, TLM_OPTIMIZER_ADAMW);
}

static int in_unit_interval(float x) { /* [0, 1) */
    return x >= 0.0f && x < 1.0f;
}

int tlmi_optim_check_params(tlmi_host *host, int status, const char *what,
                            const tlm_optimizer_params *p) {
    if (p->kind != TLM_OPTIMIZER_ADAMW && p->kind != TLM_OPTIMIZER_SGD)
        return tlmi_fail(host, status,
                         "%s.kind %d is not TLM_OPTIMIZER_ADAMW (0) or "
                         "TLM_OPTIMIZER_SGD (1)",
                         what, (int)p->kind);
    if (!isfinite(p->lr) || p->lr < 0.0f)
        return tlmi_fail(host, status, "%s.lr %g is not finite and >= 0", what,
                         (double)p->lr);
    if (!isfinite(p->weight_decay) || p->weight_decay < 0.0f)
        return tlmi_fail(host, status,
                         "%s.weight_decay %g is not finite and >= 0", what,
                         (double)p->weight_decay);
    if (p->kind == TLM_OPTIMIZER_ADAMW) {
        if (!in_unit_interval(p->beta1))
            return tlmi_fail(host, status, "%s.beta1 %g is outside [0, 1)",
                             what, (double)p->beta1);
        if (!in_unit_interval(p->beta2))
            return tlmi_fail(host, status, "%s.beta2 %g is outside [0, 1)",
                             what, (double)p->beta2);
        if (!isfinite(p->eps) || p->eps <= 0.0f)
            return tlmi_fail(host, status, "%s.eps %g is not finite and > 0",
                             what, (double)p->eps);
    } else {
        if (!in_unit_interval(p->momentum))
            return tlmi_fail(host, status,
                             "%s.momentum %g is outside [0, 1)", what,
                             (double)p->momentum);
        if (p->nesterov != 0 && p->nesterov != 1)
            return tlmi_fail(host, status, "%s.nesterov %d is not 0 or 1",
                             what, (int)p->nesterov);
        if (p->nesterov && p->momentum == 0.0f)
            return tlmi_fail(host, status,
                             "%s.nesterov is 1 but momentum is 0 (Nesterov "
                             "momentum needs momentum > 0)",
                             what);
    }
    return TLM_OK;
}

TLM_API void tlm_optimizer_free(tlm_optimizer *opt) {
    if (opt == NULL)
        return;
    tlmi_host host = opt->host;
    tlmi_host_free(&host, opt, opt->block_bytes);
    tlmi_context_drop(&host); /* may free the context (tlm_context_free) */
}

/* Checks params[index] is a float leaf of `ctx` (or of any context when
 * *ctx is NULL, which then receives it) that has a gradient. */
static int check_parameter(tlm_tensor *const *tensors, int32_t index,
                           tlm_context **ctx, const char *fn) {
    char what[96];
    snprintf(what, sizeof what, "%s: tensors[%d]", fn, (int)index);
    const tlm_tensor *t = tensors[index];
    int status = tlmi_tensor_check(t, what);
    if (status != TLM_OK)
        return status;
    if (*ctx == NULL)
        *ctx = t->ctx;
    tlmi_host *host = &(*ctx)->host;
    if (t->ctx != *ctx)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s belongs to another context than tensors[0]", what);
    if (!t->is_leaf)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s is the result of an operation; parameters are "
                         "leaf tensors",
                         what);
    if (tlmi_dtype_is_quantized(t->dtype))
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s is a quantized model's %s matrix, which does "
                         "not train; dequantize first: tlm_model_quantize(..., "
                         "TLM_WEIGHTS_F32) or `tlm quantize --to f32`",
                         what, tlmi_dtype_name(t->dtype));
    if (t->dtype != TLM_DTYPE_F32)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s is an i32 tensor; parameters are float", what);
    if (!t->requires_grad || t->grad == NULL)
        return tlmi_fail(host, TLM_E_STATE,
                         "%s has no gradient (call "
                         "tlm_tensor_set_requires_grad(tensor, 1))",
                         what);
    return TLM_OK;
}

TLM_API int tlm_optimizer_create(tlm_optimizer **out,
                                 tlm_tensor *const *tensors, int32_t count,
                                 const tlm_optimizer_params *given) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_create", out);
    *out = NULL;
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_create", tensors);
    if (count < 1)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_optimizer_create: count %d is not "
                                "positive",
                                (int)count);
    tlm_optimizer_params p;
    tlm_optimizer_params_init(&p);
    int status = tlmi_params_merge(NULL, "tlm_optimizer_create: params",
                                   &p, sizeof p, given);
    if (status != TLM_OK)
        return status;
    status = tlmi_optim_check_params(NULL, TLM_E_INVALID,
                                     "tlm_optimizer_create: params",
                                     &p);
    if (status != TLM_OK)
        return status;

    /* The parameters: live float leaves of one context, with gradients,
     * each listed once. */
    tlm_context *ctx = NULL;
    for (int32_t i = 0; i < count; i++) {
        status = check_parameter(tensors, i, &ctx, "tlm_optimizer_create");
        if (status != TLM_OK)
            return status;
        for (int32_t j = 0; j < i; j++)
            if (tensors[j] == tensors[i])
                return tlmi_fail(&ctx->host, TLM_E_INVALID,
                                 "tlm_optimizer_create: tensors[%d] is "
                                 "tensors[%d] again; list each parameter once",
                                 (int)i, (int)j);
    }
    tlmi_host *ctx_host = &ctx->host;
    if (p.decay_flags != NULL)
        for (int32_t i = 0; i < count; i++)
            if (p.decay_flags[i] != 0 && p.decay_flags[i] != 1)
                return tlmi_fail(ctx_host, TLM_E_INVALID,
                                 "tlm_optimizer_create: "
                                 "params.decay_flags[%d] is %d, not 0 or 1",
                                 (int)i, (int)p.decay_flags[i]);

    /* Sizes of the block, every product and sum guarded. */
    const size_t moments = (size_t)tlmi_optim_moments(p.kind);
    const size_t max_floats = SIZE_MAX / sizeof(float);
    size_t state_floats = 0;
    for (int32_t i = 0; i < count; i++) {
        size_t numel = (size_t)tensors[i]->numel;
        if (numel > (max_floats - state_floats) / moments)
            return tlmi_fail(ctx_host, TLM_E_OVERFLOW,
                             "tlm_optimizer_create: the moments of %d "
                             "parameters do not fit in memory arithmetic",
                             (int)count);
        state_floats += numel * moments;
    }
    const size_t head_bytes = round_up(sizeof(tlm_optimizer));
    const size_t entries_bytes =
        round_up((size_t)count * sizeof(tlmi_optim_param));
    const size_t state_bytes = state_floats * sizeof(float);
    const size_t saved_bytes = tlmi_optim_saved_bytes(count, state_floats);
    if (state_bytes > SIZE_MAX - head_bytes - entries_bytes ||
        saved_bytes == 0)
        return tlmi_fail(ctx_host, TLM_E_OVERFLOW,
                         "tlm_optimizer_create: the state of %zu moments "
                         "does not fit in memory arithmetic",
                         state_floats);
    const size_t block_bytes = head_bytes + entries_bytes + state_bytes;

    tlmi_host host = *ctx_host;
    host.last_error[0] = '\0';
    unsigned char *block = tlmi_host_alloc(&host, block_bytes, OPTIM_ALIGN);
    if (block == NULL)
        return tlmi_fail(ctx_host, TLM_E_NOMEM,
                         "tlm_optimizer_create: allocating the state (%zu "
                         "bytes) failed",
                         block_bytes);
    memset(block, 0, block_bytes);
    tlmi_context_hold(&host);
    tlm_optimizer *opt = (tlm_optimizer *)block;
    opt->host = host;
    opt->params = p;
    opt->params.decay_flags = NULL;
    opt->count = count;
    opt->entries = (tlmi_optim_param *)(block + head_bytes);
    opt->state = (float *)(block + head_bytes + entries_bytes);
    opt->state_floats = state_floats;
    opt->block_bytes = block_bytes;
    opt->saved_bytes = saved_bytes;
    float *slice = opt->state;
    for (int32_t i = 0; i < count; i++) {
        tlmi_optim_param *e = &opt->entries[i];
        const tlm_tensor *t = tensors[i];
        e->tensor = tensors[i];
        e->numel = t->numel;
        e->ndim = t->ndim;
        for (int32_t d = 0; d < t->ndim; d++)
            e->shape[d] = t->shape[d];
        e->decay = p.decay_flags != NULL ? p.decay_flags[i]
                                                : (t->ndim >= 2);
        e->m = slice;
        slice += e->numel;
        if (moments == 2) {
            e->v = slice;
            slice += e->numel;
        }
    }
    *out = opt;
    return TLM_OK;
}

TLM_API const char *tlm_optimizer_last_error(const tlm_optimizer *opt) {
    return TLMI_LAST_ERROR("tlm_optimizer_last_error", opt);
}

TLM_API int tlm_optimizer_get_params(const tlm_optimizer *opt,
                                     tlm_optimizer_params *params) {
    TLMI_PARAMS_GET("tlm_optimizer_get_params", opt, params, opt->params);
}

TLM_API int tlm_optimizer_set_decay(tlm_optimizer *opt, int32_t index,
                                    int32_t flag) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_set_decay", opt);
    if (index < 0 || index >= opt->count)
        return tlmi_fail(&opt->host, TLM_E_RANGE,
                         "tlm_optimizer_set_decay: index %d is outside 0..%d",
                         (int)index, (int)opt->count - 1);
    if (flag != 0 && flag != 1)
        return tlmi_fail(&opt->host, TLM_E_INVALID,
                         "tlm_optimizer_set_decay: flag %d is not 0 or 1",
                         (int)flag);
    opt->entries[index].decay = flag;
    return TLM_OK;
}

TLM_API int tlm_optimizer_get_decay(const tlm_optimizer *opt, int32_t index) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_get_decay", opt);
    if (index < 0 || index >= opt->count)
        return tlmi_fail_thread(TLM_E_RANGE,
                                "tlm_optimizer_get_decay: index %d is outside "
                                "0..%d",
                                (int)index, (int)opt->count - 1);
    return opt->entries[index].decay;
}

TLM_API int64_t tlm_optimizer_step_count(const tlm_optimizer *opt) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_step_count", opt);
    return opt->step;
}

/* ---------------------------------------------------------------------- */
/* The updates. Per-step scalars are computed once in double; the loops
 * (the context's AdamW and SGD kernels, kernels/pointwise.h) run in
 * float over the parameter, its gradient and its moments, on element
 * ranges split across the context's thread pool: every element is
 * updated the same way whatever the split. */

/* One loop over the elements of every parameter laid end to end
 * (parameter i's after those of 0 .. i-1): one parallel loop per step
 * instead of one per parameter, and the parameters below two grains (norm
 * gains, biases, a narrow model's projections), which a loop of their own
 * leaves on one thread, are split too. */
typedef struct optim_job {
    const tlm_optimizer *opt;
    const tlmi_pointwise_kernels *k;
    const tlmi_adamw_coefficients *adamw; /* [2]: without, with decay; */
    const tlmi_sgd_coefficients *sgd;     /* or NULL, and these for SGD */
} optim_job;

static void optim_task(void *arg, int64_t begin, int64_t end, int thread) {
    (void)thread;
    const optim_job *j = arg;
    int64_t at = 0; /* the first element of parameter i */
    for (int32_t i = 0; i < j->opt->count && at < end; i++) {
        const tlmi_optim_param *e = &j->opt->entries[i];
        const int64_t lo = begin > at ? begin - at : 0;
        const int64_t hi = end - at < e->numel ? end - at : e->numel;
        at += e->numel;
        if (lo >= hi)
            continue;
        float *p = (float *)e->tensor->data + lo;
        const float *g = e->tensor->grad + lo;
        float *m = e->m != NULL ? e->m + lo : NULL; /* SGD: may be none */
        if (j->adamw != NULL)
            j->k->adamw_update(p, g, m, e->v + lo, hi - lo,
                               &j->adamw[e->decay != 0]);
        else
            j->k->sgd_update(p, g, m, hi - lo, &j->sgd[e->decay != 0]);
    }
}

/* Index of the first non-finite value of g[0..n), or -1. */
static int64_t first_nonfinite(const float *g, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(g[i]))
            return i;
    return -1;
}

TLM_API int tlm_optimizer_step(tlm_optimizer *opt, float lr) {
    return tlmi_optimizer_step(opt, lr, 0, 1.0f);
}

int tlmi_optimizer_step(tlm_optimizer *opt, float lr, int grads_finite,
                        float grad_scale) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_step", opt);
    if (!isfinite(lr))
        return tlmi_fail(&opt->host, TLM_E_INVALID,
                         "tlm_optimizer_step: lr %g is not finite (pass "
                         "TLM_OPTIMIZER_LR_DEFAULT for the settings' lr)",
                         (double)lr);
    if (opt->step == INT64_MAX)
        return tlmi_fail(&opt->host, TLM_E_STATE,
                         "tlm_optimizer_step: the step count would overflow");
    const double rate = lr < 0.0f ? (double)opt->params.lr : (double)lr;

    /* Everything is checked before anything changes. */
    for (int32_t i = 0; i < opt->count; i++) {
        const tlmi_optim_param *e = &opt->entries[i];
        const tlm_tensor *t = e->tensor;
        /* A freed handle's struct may have been reused: the shape check
         * keeps the update inside the memory it then names. */
        int same = t->magic == TLMI_TENSOR_MAGIC && t->is_leaf &&
                   t->dtype == TLM_DTYPE_F32 && t->ndim == e->ndim &&
                   t->numel == e->numel;
        for (int32_t d = 0; same && d < e->ndim; d++)
            same = t->shape[d] == e->shape[d];
        if (!same)
            return tlmi_fail(&opt->host, TLM_E_STATE,
                             "tlm_optimizer_step: parameter %d was freed "
                             "(parameters must outlive their optimizer)",
                             (int)i);
        if (!t->requires_grad || t->grad == NULL)
            return tlmi_fail(&opt->host, TLM_E_STATE,
                             "tlm_optimizer_step: parameter %d no longer "
                             "requires a gradient",
                             (int)i);
    }
    for (int32_t i = 0; !grads_finite && i < opt->count; i++) {
        const tlm_tensor *t = opt->entries[i].tensor;
        int64_t at = first_nonfinite(t->grad, t->numel);
        if (at >= 0) {
            char index[64];
            tlmi_index_string(t, at, index, sizeof index);
            return tlmi_fail(&opt->host, TLM_E_NONFINITE,
                             "tlm_optimizer_step: the gradient of parameter "
                             "%d holds %g at %s; nothing was updated",
                             (int)i, (double)t->grad[at], index);
        }
    }

    const tlm_optimizer_params *p = &opt->params;
    const double t = (double)(opt->step + 1);
    /* Coefficients without ([0]) and with ([1]) weight decay. */
    tlmi_adamw_coefficients adamw[2];
    tlmi_sgd_coefficients sgd[2];
    for (int decay = 0; decay < 2; decay++) {
        const double wd = decay ? (double)p->weight_decay : 0.0;
        if (p->kind == TLM_OPTIMIZER_ADAMW) {
            const double bc1 = 1.0 - pow((double)p->beta1, t);
            const double bc2 = 1.0 - pow((double)p->beta2, t);
            const tlmi_adamw_coefficients c = {
                p->beta1, (float)(1.0 - (double)p->beta1),
                p->beta2, (float)(1.0 - (double)p->beta2),
                (float)(rate / bc1), (float)(1.0 / sqrt(bc2)),
                p->eps, (float)(1.0 - rate * wd), grad_scale};
            adamw[decay] = c;
        } else {
            const tlmi_sgd_coefficients c = {(float)rate, (float)wd,
                                             p->momentum, p->nesterov,
                                             opt->step == 0, grad_scale};
            sgd[decay] = c;
        }
    }
    /* The parameters all live in one context (tlm_optimizer_create checks),
     * whose pool and kernels run the loop. */
    int64_t total = 0;
    for (int32_t i = 0; i < opt->count; i++)
        total += opt->entries[i].numel;
    tlm_context *ctx = opt->entries[0].tensor->ctx;
    optim_job job = {
        opt, tlmi_pointwise(ctx),
        p->kind == TLM_OPTIMIZER_ADAMW ? adamw : NULL,
        p->kind == TLM_OPTIMIZER_ADAMW ? NULL : sgd};
    tlmi_parallel_for(ctx->pool, total, TLMI_POINTWISE_GRAIN, optim_task,
                      &job);
    opt->step++;
    return TLM_OK;
}

/* ---------------------------------------------------------------------- */

TLM_API int tlm_clip_grad_norm(tlm_tensor *const *tensors, int32_t count,
                               float max_norm, double *norm) {
    if (norm != NULL)
        *norm = 0.0;
    TLMI_CHECK_NOT_NULL(NULL, "tlm_clip_grad_norm", tensors);
    if (count < 1)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_clip_grad_norm: count %d is not positive",
                                (int)count);
    if (isnan(max_norm) || max_norm <= 0.0f)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_clip_grad_norm: max_norm %g is not > 0",
                                (double)max_norm);
    tlm_context *ctx = NULL;
    for (int32_t i = 0; i < count; i++) {
        int status = check_parameter(tensors, i, &ctx, "tlm_clip_grad_norm");
        if (status != TLM_OK)
            return status;
    }

    const double total = tlmi_grad_norm(tensors, count);
    if (norm != NULL)
        *norm = total;
    if (!isfinite(total))
        return tlmi_fail(&ctx->host, TLM_E_NONFINITE,
                         "tlm_clip_grad_norm: the gradients' norm is %g; "
                         "nothing was scaled",
                         total);
    tlmi_scale_grads_to_norm(tensors, count, max_norm, total);
    return TLM_OK;
}

/* Partial sums of the squares: one running sum made eight independent
 * ones (element j of each parameter into sum j % 8), so that the additions
 * do not wait on each other; added up in a fixed order at the end. */
enum { NORM_LANES = 8 };

double tlmi_grad_norm(tlm_tensor *const *params, int32_t count) {
    double lane[NORM_LANES] = {0};
    for (int32_t i = 0; i < count; i++) {
        const float *g = params[i]->grad;
        const int64_t n = params[i]->numel;
        int64_t j = 0;
        for (; j + NORM_LANES <= n; j += NORM_LANES)
            for (int l = 0; l < NORM_LANES; l++)
                lane[l] += (double)g[j + l] * (double)g[j + l];
        for (int l = 0; j < n; j++, l++)
            lane[l] += (double)g[j] * (double)g[j];
    }
    double sum = 0.0;
    for (int l = 0; l < NORM_LANES; l++)
        sum += lane[l];
    return sqrt(sum);
}

float tlmi_clip_factor(float max_norm, double norm) {
    const double coefficient = (double)max_norm / (norm + 1e-6);
    return coefficient < 1.0 ? (float)coefficient : 1.0f;
}

void tlmi_scale_grads_to_norm(tlm_tensor *const *params, int32_t count,
                              float max_norm, double norm) {
    const float factor = tlmi_clip_factor(max_norm, norm);
    if (factor < 1.0f) {
        for (int32_t i = 0; i < count; i++) {
            float *g = params[i]->grad;
            const int64_t n = params[i]->numel;
            for (int64_t j = 0; j < n; j++)
                g[j] *= factor;
        }
    }
}
