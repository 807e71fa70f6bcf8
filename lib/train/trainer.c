/*
 * The trainer: one training graph built in the model's context and re-run
 * every step (no allocation after creation), micro-batches accumulated,
 * gradients clipped, the schedule's learning rate, the optimizer update,
 * and checkpoints that resume bit for bit.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/graph.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "base/file.h"
#include "base/params.h"
#include "base/rng.h"
#include "dataset.h"
#include "dist.h"
#include "io/container.h"
#include "io/json.h"
#include "model/model.h"
#include "model/model_config.h"
#include "optim.h"

/* Seeds of the trainer's generators are derived from its seed with these
 * constants, so that sampling, evaluation and dropout draw independent
 * streams. */
#define EVAL_SEED_MIX 0x6576616c75617465ull    /* "evaluate" */
#define DROPOUT_SEED_MIX 0x64726f706f757421ull /* "dropout!" */
/* Data parallelism: each rank's dropout stream is also mixed with its rank
 * (rank 0's is the single-process stream). */
#define RANK_SEED_MIX 0x9e3779b97f4a7c15ull

struct tlm_trainer {
    tlmi_host host; /* the context's hooks; the trainer's own error text */
    tlm_model *model;
    tlm_dataset *data;
    tlm_context *ctx;
    tlm_trainer_params params;
    tlm_optimizer_params optimizer_params;
    tlm_schedule_params schedule;
    int has_schedule;
    tlm_optimizer *optimizer;
    int64_t batch, length, source_length;
    /* The graph's inputs (leaves) and outputs. */
    tlm_tensor *ids, *targets, *source, *source_mask;
    tlm_tensor *logits, *loss, *scaled_loss;
    uint32_t graph_generation; /* the context's generation at the build */
    tlm_tensor *first_node;    /* the trainer's graph on the tape: only */
    tlm_tensor *last_node;     /* these nodes are re-run */
    tlmi_rng rng;              /* training batches */
    int64_t step;
    tlm_tensor **parameters;   /* the model's, for clipping */
    int32_t n_parameters;
    int32_t *decay_flags;
    /* Data parallelism (params.comm): this rank, the number of ranks, and
     * the flat buffer the gradients are averaged in (NULL alone). */
    tlm_comm *comm;
    int32_t rank, ranks;
    float *grad_buffer;
    int64_t grad_floats;
    double allreduce_last_ms, allreduce_total_ms;
};

/* The trainer's optimizer: AdamW with nanoGPT's betas 0.9/0.99 and weight
 * decay 0.1, which differ from tlm_optimizer_params_init()'s PyTorch
 * defaults. tlm_trainer_params_init() points params.optimizer here, so a
 * caller sees these values and starts from them, not from the optimizer's. */
static const tlm_optimizer_params trainer_optimizer = {
    .struct_size = sizeof(tlm_optimizer_params),
    .kind = TLM_OPTIMIZER_ADAMW,
    .lr = 1e-3f,
    .beta1 = 0.9f,
    .beta2 = 0.99f,
    .eps = 1e-8f,
    .weight_decay = 0.1f,
};

TLM_API int tlm_trainer_params_init(tlm_trainer_params *params) {
    TLMI_PARAMS_INIT("tlm_trainer_params_init", params);
    params->batch_size = 12;
    params->accumulation = 1;
    params->grad_clip = 1.0f;
    params->seed = 1;
    params->optimizer = &trainer_optimizer;
    return TLM_OK;
}

TLM_API const char *tlm_trainer_last_error(const tlm_trainer *trainer) {
    return TLMI_LAST_ERROR("tlm_trainer_last_error", trainer);
}

TLM_API int tlm_trainer_allreduce_time(const tlm_trainer *trainer,
                                       double *last_ms, double *total_ms) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_allreduce_time", trainer);
    if (last_ms != NULL)
        *last_ms = trainer->allreduce_last_ms;
    if (total_ms != NULL)
        *total_ms = trainer->allreduce_total_ms;
    return TLM_OK;
}

TLM_API int64_t tlm_trainer_step_count(const tlm_trainer *trainer) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_step_count", trainer);
    return trainer->step;
}

static void free_buffers(tlm_trainer *t) {
    tlm_tensor *inputs[4] = {t->ids, t->targets, t->source, t->source_mask};
    for (int i = 0; i < 4; i++)
        tlm_tensor_free(inputs[i]);
    if (t->parameters != NULL)
        tlmi_host_free(&t->host, t->parameters,
                       (size_t)t->n_parameters * sizeof *t->parameters);
    if (t->decay_flags != NULL)
        tlmi_host_free(&t->host, t->decay_flags,
                       (size_t)t->n_parameters * sizeof *t->decay_flags);
    if (t->grad_buffer != NULL)
        tlmi_host_free(&t->host, t->grad_buffer,
                       (size_t)t->grad_floats * sizeof *t->grad_buffer);
}

TLM_API void tlm_trainer_free(tlm_trainer *trainer) {
    if (trainer == NULL)
        return;
    /* The graph goes with the trainer when nothing was recorded after it. */
    if (trainer->first_node != NULL &&
        trainer->graph_generation == trainer->ctx->generation &&
        trainer->last_node == trainer->ctx->tape_last)
        tlmi_graph_truncate(trainer->ctx, trainer->first_node);
    tlm_optimizer_free(trainer->optimizer);
    free_buffers(trainer);
    tlmi_host host = trainer->host;
    tlmi_host_free(&host, trainer, sizeof *trainer);
    tlmi_context_drop(&host); /* may free the context (tlm_context_free) */
}

/* The context's matrix products, attention's included, in the trainer's
 * precision (params.precision: bf16 sets the context's products_bf16, see
 * ops/matmul.c and ops/attention.c) for the trainer's passes; returns the setting to give
 * back to precision_end afterwards, so the context's other work stays
 * float32. */
static int precision_begin(tlm_trainer *t) {
    const int before = t->ctx->products_bf16;
    t->ctx->products_bf16 = t->params.precision == TLM_PRECISION_BF16;
    return before;
}

static void precision_end(tlm_trainer *t, int before) {
    t->ctx->products_bf16 = before;
}

/* Builds the training graph: inputs -> logits -> loss -> loss / k. The
 * batch tensors' values are filled before each re-run. */
static int build_graph(tlm_trainer *t) {
    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = t->ids;
    batch.targets = t->targets;
    batch.src_ids = t->source;
    batch.src_mask = t->source_mask;
    int status = tlm_context_set_grad_enabled(t->ctx, 1);
    tlm_tensor *before = t->ctx->tape_last;
    const int precision = precision_begin(t);
    if (status == TLM_OK)
        status = tlm_model_forward(t->model, &batch, &t->logits, &t->loss);
    precision_end(t, precision);
    if (status == TLM_OK)
        status = tlm_scale(&t->scaled_loss, t->loss,
                           1.0f / (float)t->params.accumulation);
    if (status != TLM_OK)
        return tlmi_fail_forward(&t->host, status,
                                 "tlm_trainer: building the training graph");
    t->graph_generation = t->ctx->generation;
    t->first_node = before != NULL ? before->next : t->ctx->tape_first;
    t->last_node = t->ctx->tape_last;
    return TLM_OK;
}

/* The graph is gone when the context was reset since it was built. */
static int ensure_graph(tlm_trainer *t) {
    if (t->logits != NULL && t->graph_generation == t->ctx->generation)
        return TLM_OK;
    return build_graph(t);
}

/* This rank's slice of one global batch of batch x ranks rows: every rank
 * draws the same rows from the same generator and keeps rows rank x batch
 * .. (rank + 1) x batch - 1. N ranks with batch B/N thus train on exactly
 * the windows one process with batch B would, and the generator's state is
 * the same on every rank (one checkpoint resumes them all). */
static void fill_batch(tlm_trainer *t, int32_t split, tlmi_rng *rng) {
    const int64_t first = (int64_t)t->rank * t->batch;
    const int64_t total = (int64_t)t->ranks * t->batch;
    if (t->data->kind == TLMI_DATASET_STREAM)
        tlmi_dataset_fill_stream(t->data, split, rng, t->batch, t->length, first,
                                 total, t->ids->data, t->targets->data);
    else
        tlmi_dataset_fill_pairs(t->data, split, rng, t->batch, first, total,
                                t->source_length,
                                t->length, t->params.bos_id, t->params.pad_id,
                                t->source->data, t->source_mask->data,
                                t->ids->data, t->targets->data);
}

static int check_params(tlm_trainer *t, const tlm_model_config *c) {
    tlm_trainer_params *p = &t->params;
    const char *what = "tlm_trainer_create";
    if (p->batch_size < 1 || p->batch_size > (1 << 20))
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: params.batch_size %d is "
                         "outside 1..1048576", what, (int)p->batch_size);
    if (p->context < 0 || p->context > c->max_context)
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: params.context %d is "
                         "outside 0..%d (max_context)", what, (int)p->context,
                         (int)c->max_context);
    if (p->accumulation < 1 || p->accumulation > (1 << 20))
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: params.accumulation %d is "
                         "outside 1..1048576", what, (int)p->accumulation);
    if (!(p->grad_clip >= 0.0f) || !isfinite(p->grad_clip))
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: params.grad_clip %g must "
                         "be finite and >= 0", what, (double)p->grad_clip);
    if (!(p->max_grad_norm >= 0.0f) || !isfinite(p->max_grad_norm))
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: params.max_grad_norm %g "
                         "must be finite and >= 0 (0 = off)", what,
                         (double)p->max_grad_norm);
    if (p->precision != TLM_PRECISION_FLOAT32 &&
        p->precision != TLM_PRECISION_BF16)
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: params.precision %d is "
                         "not TLM_PRECISION_FLOAT32 (0) or TLM_PRECISION_BF16 "
                         "(1)", what, (int)p->precision);
    return TLM_OK;
}

/* Sizes of the batch: sequence length (and source length) from the
 * dataset and the settings, checked against the model. */
static int plan_batch(tlm_trainer *t) {
    const tlm_model_config *c = &t->model->config;
    const tlm_dataset *ds = t->data;
    const char *what = "tlm_trainer_create";
    const int seq2seq = c->n_encoder_layers > 0 && c->n_decoder_layers > 0;
    t->batch = t->params.batch_size;
    if (ds->kind == TLMI_DATASET_STREAM) {
        if (seq2seq || c->n_decoder_layers == 0)
            return tlmi_fail(&t->host, TLM_E_INVALID, "%s: a stream of tokens "
                             "trains decoder-only models; this model needs %s",
                             what, seq2seq ? "pairs" : "its own batches");
        t->length = t->params.context ? t->params.context : c->max_context;
        for (int32_t split = 0; split < 2; split++) {
            const int64_t size = tlmi_dataset_part_size(ds, split);
            if (size < t->length + 1 && (split == TLM_SPLIT_TRAIN || size > 0))
                return tlmi_fail(&t->host, TLM_E_RANGE, "%s: the %s part has %lld "
                                 "tokens, fewer than context + 1 = %lld", what,
                                 split ? "validation" : "training",
                                 (long long)size, (long long)t->length + 1);
        }
        return TLM_OK;
    }
    if (!seq2seq)
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: pairs train "
                         "encoder-decoder models", what);
    t->source_length = ds->max_source;
    t->length = ds->max_target;
    if (t->source_length > c->max_context || t->length > c->max_context)
        return tlmi_fail(&t->host, TLM_E_RANGE, "%s: the longest source (%lld) or "
                         "target (%lld) exceeds max_context %d", what,
                         (long long)t->source_length, (long long)t->length,
                         (int)c->max_context);
    const int32_t ids[2] = {t->params.bos_id, t->params.pad_id};
    for (int i = 0; i < 2; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return tlmi_fail(&t->host, TLM_E_RANGE, "%s: params.%s %d is outside "
                             "the vocabulary", what, i ? "pad_id" : "bos_id",
                             (int)ids[i]);
    if (tlmi_dataset_part_size(ds, TLM_SPLIT_TRAIN) < 1)
        return tlmi_fail(&t->host, TLM_E_RANGE, "%s: no training pairs", what);
    return TLM_OK;
}

static int make_inputs(tlm_trainer *t) {
    const int64_t shape[2] = {t->batch, t->length};
    const int64_t source_shape[2] = {t->batch, t->source_length};
    TLMI_TRY(tlm_tensor_create(&t->ids, t->ctx, TLM_DTYPE_I32, 2, shape));
    TLMI_TRY(tlm_tensor_create(&t->targets, t->ctx, TLM_DTYPE_I32, 2, shape));
    if (t->data->kind != TLMI_DATASET_PAIRS)
        return TLM_OK;
    TLMI_TRY(tlm_tensor_create(&t->source, t->ctx, TLM_DTYPE_I32, 2,
                               source_shape));
    TLMI_TRY(tlm_tensor_create(&t->source_mask, t->ctx, TLM_DTYPE_I32, 2,
                               source_shape));
    /* a visible position until the first fill */
    for (int64_t i = 0; i < t->batch * t->source_length; i++)
        ((int32_t *)t->source_mask->data)[i] = 1;
    return TLM_OK;
}

/* Weight decay on the projection matrices only: not on embeddings (a
 * tied output projection is the token embedding) nor on 1-D tensors. */
static int make_optimizer(tlm_trainer *t, const tlm_optimizer_params *given) {
    tlm_model *m = t->model;
    t->n_parameters = m->n_parameters;
    t->parameters = tlmi_host_alloc(&t->host, (size_t)t->n_parameters *
                                                  sizeof *t->parameters, 64);
    t->decay_flags = tlmi_host_alloc(&t->host, (size_t)t->n_parameters *
                                                   sizeof *t->decay_flags, 64);
    if (t->parameters == NULL || t->decay_flags == NULL)
        return tlmi_fail(&t->host, TLM_E_NOMEM, "tlm_trainer_create: out of memory");
    for (int32_t i = 0; i < t->n_parameters; i++) {
        t->parameters[i] = m->parameters[i].tensor;
        t->decay_flags[i] = m->parameters[i].tensor->ndim >= 2 &&
                            strstr(m->parameters[i].name, "embedding") == NULL;
    }
    /* An older or newer caller's struct, as every settings struct. */
    t->optimizer_params = trainer_optimizer;
    int status = tlmi_params_merge(&t->host, "tlm_trainer_create: params.optimizer",
                                   &t->optimizer_params, sizeof t->optimizer_params,
                                   given);
    if (status != TLM_OK)
        return status;
    if (t->optimizer_params.decay_flags == NULL)
        t->optimizer_params.decay_flags = t->decay_flags;
    status = tlm_optimizer_create(&t->optimizer, t->parameters, t->n_parameters,
                                  &t->optimizer_params);
    t->optimizer_params.decay_flags = NULL; /* read only during create */
    if (status != TLM_OK)
        return tlmi_fail_forward(&t->host, status, "tlm_trainer_create");
    return TLM_OK;
}

/* Data parallelism: the rank and size, the gradient buffer, and rank 0's
 * parameters copied to every rank, so all start from the same weights
 * whatever each process initialised. */
static int setup_ranks(tlm_trainer *t) {
    t->comm = t->params.comm;
    t->rank = 0;
    t->ranks = 1;
    if (t->comm == NULL)
        return TLM_OK;
    t->rank = tlmi_dist_rank(t->comm);
    t->ranks = tlmi_dist_size(t->comm);
    if (t->ranks == 1)
        return TLM_OK;
    int64_t total = 0;
    for (int32_t i = 0; i < t->n_parameters; i++) {
        if (t->parameters[i]->grad == NULL)
            return tlmi_fail(&t->host, TLM_E_INTERNAL, "tlm_trainer_create: "
                             "parameter %d has no gradient", (int)i);
        total += t->parameters[i]->numel;
    }
    if (total < 1 || (uint64_t)total > SIZE_MAX / sizeof(float))
        return tlmi_fail(&t->host, TLM_E_OVERFLOW, "tlm_trainer_create: %lld "
                         "gradient floats do not fit in memory", (long long)total);
    t->grad_buffer = tlmi_host_alloc(&t->host, (size_t)total * sizeof(float), 64);
    if (t->grad_buffer == NULL)
        return tlmi_fail(&t->host, TLM_E_NOMEM, "tlm_trainer_create: out of "
                         "memory for the %lld-float gradient buffer of %d ranks",
                         (long long)total, (int)t->ranks);
    t->grad_floats = total;
    for (int32_t i = 0; i < t->n_parameters; i++) {
        int status = tlmi_dist_broadcast_f32(t->comm, &t->host, "tlm_trainer_create: "
                                             "copying rank 0's parameters",
                                             t->parameters[i]->data,
                                             t->parameters[i]->numel);
        if (status != TLM_OK)
            return status;
    }
    return TLM_OK;
}

/* Refuses a batch whose training graph, with the optimizer's state, does
 * not fit in the context's memory limit, before anything is allocated:
 * tlm_model_memory_estimate's training figure, whose weights and
 * gradients the model holds already (its float32 parameters have their
 * gradients from creation). The optimizer counts as AdamW's two moments,
 * SGD's one momentum at most. */
static int check_memory(tlm_trainer *t) {
    const tlm_model_config *c = &t->model->config;
    int64_t length = t->length > t->source_length ? t->length : t->source_length;
    if (length > c->max_context)
        length = c->max_context;
    int64_t total = 0;
    if (tlm_model_memory_estimate(t->model, TLM_MEMORY_TRAINING,
                                  (int32_t)t->batch, (int32_t)length,
                                  &total) != TLM_OK)
        return TLM_OK; /* plan_batch checked the shape: cannot happen */
    const double values = (double)tlm_model_parameter_count(t->model);
    const double activations = (double)total - 16 * values;
    const tlmi_memory_part parts[4] = {
        {"weights", 4 * values, 1},
        {"gradients", 4 * values, 1},
        {"optimizer", 8 * values, 0},
        {"activations", activations > 0 ? activations : 0, 0}};
    return tlmi_context_check_memory(t->ctx, &t->host, "tlm_trainer_create",
                                     parts, 4);
}

TLM_API int tlm_trainer_create(tlm_trainer **out, tlm_model *model,
                               tlm_dataset *dataset,
                               const tlm_trainer_params *given) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_create", out);
    *out = NULL;
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_create", model);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_create", dataset);
    if (model->weight_format != TLM_WEIGHTS_F32)
        return tlmi_fail(&model->ctx->host, TLM_E_UNSUPPORTED,
                         "tlm_trainer_create: the model's weights are %s, "
                         "which do not train; dequantize first: "
                         "tlm_model_quantize(..., TLM_WEIGHTS_F32) or `tlm "
                         "quantize --to f32`",
                         tlmi_weight_format_name(model->weight_format));
    tlm_trainer *t = TLMI_HANDLE_ALLOC(&model->ctx->host, tlm_trainer);
    if (t == NULL)
        return tlmi_fail_thread(TLM_E_NOMEM, "tlm_trainer_create: out of memory");
    tlmi_context_hold(&t->host); /* dropped by tlm_trainer_free */
    t->model = model;
    t->data = dataset;
    t->ctx = model->ctx;
    tlm_trainer_params_init(&t->params);
    int status = tlmi_params_merge(&t->host, "tlm_trainer_create: params",
                                   &t->params, sizeof t->params, given);
    if (status != TLM_OK)
        goto fail;
    status = check_params(t, &model->config);
    if (status != TLM_OK)
        goto fail;
    if (t->params.schedule != NULL) {
        tlm_schedule_params_init(&t->schedule);
        t->has_schedule = 1;
        status = tlmi_params_merge(&t->host, "tlm_trainer_create: params.schedule",
                                   &t->schedule, sizeof t->schedule,
                                   t->params.schedule);
        float probe = 0;
        if (status == TLM_OK)
            status = tlm_schedule_lr(&t->schedule, 0, &probe);
        if (status != TLM_OK)
            goto fail;
    }
    /* Read only during create: the caller's settings, or the trainer's
     * defaults (tlm_trainer_params_init's, also what a caller's struct too
     * old to have the field keeps); NULL means those defaults too. */
    const tlm_optimizer_params *optimizer = t->params.optimizer;
    t->params.schedule = NULL;
    t->params.optimizer = NULL;
    for (int32_t i = 0; i < model->n_parameters; i++)
        if (model->parameters[i].tensor->read_only) {
            status = tlmi_fail(&t->host, TLM_E_STATE, "tlm_trainer_create: the "
                               "model is read-only (memory-mapped); load it "
                               "without memory_map to train it");
            goto fail;
        }
    status = plan_batch(t);
    if (status != TLM_OK)
        goto fail;
    status = check_memory(t);
    if (status != TLM_OK)
        goto fail;
    status = make_optimizer(t, optimizer);
    if (status != TLM_OK)
        goto fail;
    status = make_inputs(t);
    if (status != TLM_OK)
        goto fail;
    status = setup_ranks(t);
    if (status != TLM_OK)
        goto fail;
    tlmi_rng_seed(&t->rng, t->params.seed);
    tlm_context_set_seed(t->ctx, t->params.seed ^ DROPOUT_SEED_MIX ^
                                     ((uint64_t)t->rank * RANK_SEED_MIX));
    status = build_graph(t);
    if (status != TLM_OK)
        goto fail;
    *out = t;
    return TLM_OK;

fail:;
    /* The trainer's message, or the thread's when a callee recorded it
     * elsewhere; copied before the trainer (and its host) is freed. */
    char message[TLMI_MESSAGE_MAX];
    snprintf(message, sizeof message, "%s", t->host.last_error[0]
                                                ? t->host.last_error
                                                : tlm_last_error());
    tlm_trainer_free(t);
    return tlmi_fail_copy(&model->ctx->host, status, message);
}

TLM_API int tlm_step_info_init(tlm_step_info *info) {
    TLMI_PARAMS_INIT("tlm_step_info_init", info);
    return TLM_OK;
}

TLM_API int tlm_trainer_step(tlm_trainer *t, tlm_step_info *info) {
    TLMI_CHECK(NULL, t != NULL, TLM_E_INVALID,
               "tlm_trainer_step: trainer is NULL");
    if (info != NULL)
        TLMI_TRY(tlmi_params_check_out(&t->host, "tlm_trainer_step: info",
                                       info));
    int status = ensure_graph(t);
    if (status != TLM_OK)
        return status;
    tlm_context_set_training(t->ctx, 1);
    tlmi_context_zero_leaf_grads(t->ctx); /* backward clears the results */
    double loss_sum = 0;
    for (int32_t micro = 0; micro < t->params.accumulation; micro++) {
        fill_batch(t, TLM_SPLIT_TRAIN, &t->rng);
        const int precision = precision_begin(t);
        status = tlmi_graph_forward_range(t->ctx, t->first_node, t->last_node);
        if (status == TLM_OK)
            status = tlm_backward(t->scaled_loss);
        precision_end(t, precision);
        if (status != TLM_OK)
            return tlmi_fail_forward(&t->host, status, "tlm_trainer_step");
        loss_sum += (double)((const float *)t->loss->data)[0];
    }
    tlm_step_info result;
    memset(&result, 0, sizeof result);
    result.struct_size = sizeof result;
    if (t->ranks > 1) {
        /* The mean gradient and loss over the ranks, before clipping: a
         * non-finite value on any rank reaches every rank, so all skip the
         * update or none does, and the optimizers stay identical. */
        status = tlmi_dist_average_gradients(t->comm, &t->host, t->parameters,
                                             t->n_parameters, t->grad_buffer,
                                             &t->allreduce_last_ms);
        t->allreduce_total_ms += t->allreduce_last_ms;
        if (status == TLM_OK)
            status = tlmi_dist_sum_f64(t->comm, &t->host, "tlm_trainer_step: "
                                       "summing the loss", &loss_sum, 1);
        if (status != TLM_OK)
            return status;
        loss_sum /= t->ranks;
    }
    result.loss = (float)(loss_sum / t->params.accumulation);
    result.tokens = t->batch * t->length * t->params.accumulation * t->ranks;
    result.grad_norm = tlmi_grad_norm(t->parameters, t->n_parameters);
    float lr = t->optimizer_params.lr;
    if (t->has_schedule)
        tlm_schedule_lr(&t->schedule, t->step, &lr);
    result.lr = lr;
    if (!isfinite(loss_sum) || !isfinite(result.grad_norm)) {
        result.skipped = 1;
        result.step = t->step;
        status = tlmi_fail(&t->host, TLM_E_NONFINITE,
                           "tlm_trainer_step: step %lld: the %s is not finite; "
                           "the update was skipped and the weights are untouched",
                           (long long)t->step + 1,
                           isfinite(loss_sum) ? "gradient" : "loss");
    } else if (t->params.max_grad_norm > 0 &&
               result.grad_norm > (double)t->params.max_grad_norm) {
        result.skipped = 1;
        result.step = t->step;
        status = tlmi_fail(&t->host, TLM_E_RANGE,
                           "tlm_trainer_step: step %lld: the gradient norm %g is "
                           "above max_grad_norm %g; the update was skipped and "
                           "the weights are untouched",
                           (long long)t->step + 1, result.grad_norm,
                           (double)t->params.max_grad_norm);
    } else {
        /* Clipping with the norm measured above (tlm_clip_grad_norm's
         * factor), applied by the optimizer as it reads each gradient. The
         * optimizer holds t->parameters, whose norm is finite here. */
        const float clip = t->params.grad_clip > 0
                               ? tlmi_clip_factor(t->params.grad_clip,
                                                  result.grad_norm)
                               : 1.0f;
        status = tlmi_optimizer_step(t->optimizer, lr, 1, clip);
        if (status != TLM_OK)
            return tlmi_fail_forward(&t->host, status, "tlm_trainer_step");
        t->step++;
        result.step = t->step;
    }
    if (info != NULL)
        tlmi_params_copy_out(info, &result, sizeof result);
    if (t->params.progress != NULL && t->params.progress(t->params.progress_user, &result))
        return tlmi_fail(&t->host, TLM_E_CANCELLED,
                         "tlm_trainer_step: the progress callback asked to stop "
                         "after step %lld", (long long)t->step);
    return status;
}

/* The mean loss over n_batches batches of `split` drawn from a generator
 * seeded with `seed`, dropout off; `what` names the public call. */
static int evaluate_from_seed(tlm_trainer *t, const char *what, int32_t split,
                              int32_t n_batches, uint64_t seed, float *loss) {
    if (split != TLM_SPLIT_TRAIN && split != TLM_SPLIT_VALIDATION)
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: split %d is not a "
                         "tlm_split", what, (int)split);
    if (n_batches < 1)
        return tlmi_fail(&t->host, TLM_E_INVALID, "%s: n_batches %d < 1", what,
                         (int)n_batches);
    const int64_t size = tlmi_dataset_part_size(t->data, split);
    if (size < (t->data->kind == TLMI_DATASET_STREAM ? t->length + 1 : 1))
        return tlmi_fail(&t->host, TLM_E_RANGE, "%s: the %s part is too small "
                         "to evaluate on", what,
                         split ? "validation" : "training");
    int status = ensure_graph(t);
    if (status != TLM_OK)
        return status;
    tlmi_rng rng;
    tlmi_rng_seed(&rng, seed);
    tlm_context_set_training(t->ctx, 0);
    double sum = 0;
    const int precision = precision_begin(t);
    for (int32_t i = 0; status == TLM_OK && i < n_batches; i++) {
        fill_batch(t, split, &rng);
        status = tlmi_graph_forward_range(t->ctx, t->first_node, t->last_node);
        sum += (double)((const float *)t->loss->data)[0];
    }
    precision_end(t, precision);
    tlm_context_set_training(t->ctx, 1);
    if (status != TLM_OK)
        return tlmi_fail_forward(&t->host, status, "%s", what);
    if (t->ranks > 1) { /* each rank evaluated its slice of the batches */
        status = tlmi_dist_sum_f64(t->comm, &t->host, what, &sum, 1);
        if (status != TLM_OK)
            return status;
        sum /= t->ranks;
    }
    *loss = (float)(sum / n_batches);
    return TLM_OK;
}

TLM_API int tlm_trainer_evaluate(tlm_trainer *t, int32_t split,
                                 int32_t n_batches, float *loss) {
    TLMI_CHECK(NULL, t != NULL, TLM_E_INVALID,
               "tlm_trainer_evaluate: trainer is NULL");
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_evaluate", loss);
    return evaluate_from_seed(t, "tlm_trainer_evaluate", split, n_batches,
                              t->params.seed ^ EVAL_SEED_MIX ^ (uint64_t)split,
                              loss);
}

TLM_API int tlm_trainer_evaluate_seeded(tlm_trainer *t, int32_t split,
                                        int32_t n_batches, uint64_t seed,
                                        float *loss) {
    TLMI_CHECK(NULL, t != NULL, TLM_E_INVALID,
               "tlm_trainer_evaluate_seeded: trainer is NULL");
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_evaluate_seeded", loss);
    /* Mixed with the split like tlm_trainer_evaluate's seed, so one seed
     * gives unrelated windows in the two parts. */
    return evaluate_from_seed(t, "tlm_trainer_evaluate_seeded", split, n_batches,
                              seed ^ EVAL_SEED_MIX ^ (uint64_t)split, loss);
}

/* ---------------------------------------------------------------------- */
/* Checkpoints: the model's sections, then `optim` (the optimizer's state)
 * and `trainer` (JSON: the step and the generators' states). */

static void rng_to_hex(const tlmi_rng *rng, char *text) {
    for (int i = 0; i < 4; i++)
        snprintf(text + 16 * i, 17, "%016llx", (unsigned long long)rng->state[i]);
}

static int rng_from_hex(const char *text, size_t length, tlmi_rng *rng) {
    if (length != 64)
        return -1;
    for (int i = 0; i < 4; i++) {
        uint64_t v = 0;
        for (int j = 0; j < 16; j++) {
            char c = text[16 * i + j];
            int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
            if (digit < 0)
                return -1;
            v = v << 4 | (uint64_t)digit;
        }
        rng->state[i] = v;
    }
    /* xoshiro256** never leaves the all-zero state: it would draw 0
     * forever (every batch from the same position). */
    if ((rng->state[0] | rng->state[1] | rng->state[2] | rng->state[3]) == 0)
        return -2;
    return 0;
}

/* Data parallelism: every rank's dropout generator, gathered on rank 0
 * (as ranks x 64 hex digits), so the checkpoint resumes every rank. */
static int gather_dropout(tlm_trainer *t, char **hex, size_t *hex_size) {
    *hex = NULL;
    *hex_size = 0;
    const size_t n = (size_t)t->ranks;
    uint64_t *all = tlmi_host_alloc(&t->host, n * 4 * sizeof *all, 64);
    char *text = tlmi_host_alloc(&t->host, n * 64 + 1, 64);
    int status = all == NULL || text == NULL
                     ? tlmi_fail(&t->host, TLM_E_NOMEM, "tlm_trainer_save: out of memory")
                     : TLM_OK;
    /* Collective even when this rank is out of memory: the others wait. */
    uint64_t fallback[4] = {0, 0, 0, 0};
    int gathered = tlmi_dist_gather_u64(t->comm, &t->host, "tlm_trainer_save: "
                                        "gathering the dropout generators",
                                        t->ctx->rng.state, 4,
                                        all != NULL ? all : fallback);
    if (status == TLM_OK)
        status = gathered;
    if (status == TLM_OK && t->rank == 0) {
        for (size_t r = 0; r < n; r++) {
            tlmi_rng rng;
            memcpy(rng.state, all + 4 * r, sizeof rng.state);
            rng_to_hex(&rng, text + 64 * r);
        }
        *hex = text;
        *hex_size = n * 64 + 1;
        text = NULL;
    }
    if (all != NULL)
        tlmi_host_free(&t->host, all, n * 4 * sizeof *all);
    if (text != NULL)
        tlmi_host_free(&t->host, text, n * 64 + 1);
    return status;
}

static int save_checkpoint(tlm_trainer *t, const char *path, const char *rank_rngs);

/* Collective: every rank learns whether any rank failed. Returns `status`,
 * or the exchange's own failure, or, when this rank succeeded (and the
 * exchange too) but another rank did not, `failed_status` with the message
 * "<what>: <failure> '<path>'". */
static int ranks_agree(tlm_trainer *t, const char *what, int status,
                       int failed_status, const char *failure,
                       const char *path) {
    double failed = status != TLM_OK;
    int agreed = tlmi_dist_sum_f64(t->comm, &t->host, what, &failed, 1);
    if (status == TLM_OK && agreed != TLM_OK)
        status = agreed;
    if (status == TLM_OK && failed > 0)
        status = tlmi_fail(&t->host, failed_status, "%s: %s '%s'", what,
                           failure, path);
    return status;
}

TLM_API int tlm_trainer_save(tlm_trainer *t, const char *path) {
    TLMI_CHECK(NULL, t != NULL, TLM_E_INVALID,
               "tlm_trainer_save: trainer is NULL");
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_save", path);
    if (t->ranks == 1)
        return save_checkpoint(t, path, NULL);
    /* Collective: the dropout generators are gathered, rank 0 writes, and
     * every rank returns rank 0's status. */
    char *hex = NULL;
    size_t hex_size = 0;
    int status = gather_dropout(t, &hex, &hex_size);
    if (status == TLM_OK && t->rank == 0)
        status = save_checkpoint(t, path, hex);
    if (hex != NULL)
        tlmi_host_free(&t->host, hex, hex_size);
    status = ranks_agree(t, "tlm_trainer_save", status, TLM_E_IO,
                         "rank 0 (or another rank) could not write", path);
    return status;
}

static int save_checkpoint(tlm_trainer *t, const char *path, const char *rank_rngs) {
    /* The optimizer's state goes to the file in pieces, its moments from
     * where they are (on little-endian hosts): a serialised copy would hold
     * the AdamW state twice, twice the parameters' size, while saving. */
    size_t state_size = 0;
    unsigned char *head = NULL;
    size_t head_size = 0;
    const float *moments = NULL;
    size_t moment_bytes = 0;
    unsigned char crc[4];
    void *state = NULL;
    /* Set when a call that records its message on another handle (the
     * optimizer's public calls, the model's save) failed: that message is
     * forwarded to the trainer. The trainer's own last error cannot tell,
     * as it may hold an earlier failure's text. */
    int failed_elsewhere = 0;
    int status = tlmi_optimizer_state_pieces(t->optimizer, &t->host, &head, &head_size,
                                             &moments, &moment_bytes, crc);
    if (status == TLM_E_UNSUPPORTED) {
        status = tlm_optimizer_state_size(t->optimizer, &state_size);
        failed_elsewhere = status != TLM_OK;
        state = status == TLM_OK ? tlmi_host_alloc(&t->host, state_size, 64) : NULL;
        if (status == TLM_OK && state == NULL)
            status = tlmi_fail(&t->host, TLM_E_NOMEM, "tlm_trainer_save: out of memory");
        if (status == TLM_OK) {
            status = tlm_optimizer_save_state(t->optimizer, state, state_size);
            failed_elsewhere = status != TLM_OK;
        }
    }
    tlmi_json_writer w;
    tlmi_json_writer_init(&w, &t->host);
    char sampling[65], dropout[65];
    rng_to_hex(&t->rng, sampling);
    rng_to_hex(&t->ctx->rng, dropout);
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_key(&w, "step");
    tlmi_json_write_int64(&w, t->step);
    tlmi_json_write_key(&w, "sampling_rng");
    tlmi_json_write_string(&w, sampling);
    tlmi_json_write_key(&w, "dropout_rng");
    tlmi_json_write_string(&w, dropout);
    tlmi_json_write_key(&w, "ranks");
    tlmi_json_write_int64(&w, t->ranks);
    if (rank_rngs != NULL) {
        tlmi_json_write_key(&w, "rank_dropout_rngs");
        tlmi_json_write_string(&w, rank_rngs);
    }
    tlmi_json_write_object_end(&w);
    const char *json = NULL;
    size_t json_size = 0;
    if (status == TLM_OK)
        status = tlmi_json_writer_result(&w, &json, &json_size);
    if (status == TLM_OK) {
        const tlmi_container_piece optim_pieces[3] = {
            {state != NULL ? state : (const void *)head, state != NULL ? state_size : head_size},
            {moments, moment_bytes},
            {crc, sizeof crc},
        };
        const tlmi_container_piece trainer_piece = {json, json_size};
        const tlmi_container_section_spec extra[2] = {
            {"optim", optim_pieces, state != NULL ? 1 : 3, 1},
            {"trainer", &trainer_piece, 1, 1},
        };
        status = tlmi_model_save_with(t->model, path, extra, 2);
        failed_elsewhere = status != TLM_OK;
    }
    tlmi_json_writer_release(&w);
    if (state != NULL)
        tlmi_host_free(&t->host, state, state_size);
    if (head != NULL)
        tlmi_host_free(&t->host, head, head_size);
    if (failed_elsewhere)
        tlmi_fail_forward(&t->host, status, "tlm_trainer_save");
    return status;
}

/* The keys save_checkpoint writes in the `trainer` section. Any other is
 * refused: a misspelt key ("rank" for "ranks") would otherwise be ignored
 * and its default used, and a newer writer's setting is not one this
 * reader can honour. */
static const char *const position_keys[] = {
    "step", "sampling_rng", "dropout_rng", "ranks", "rank_dropout_rngs"};

static int check_position_keys(tlm_trainer *t, const char *where,
                               const tlmi_json_value *root) {
    const size_t n_keys = sizeof position_keys / sizeof position_keys[0];
    for (size_t i = 0; i < tlmi_json_count(root); i++) {
        const tlmi_json_member *m = tlmi_json_object_at(root, i);
        size_t k = 0;
        while (k < n_keys && (strlen(position_keys[k]) != m->key_length ||
                              memcmp(position_keys[k], m->key, m->key_length) != 0))
            k++;
        if (k == n_keys)
            return tlmi_fail(&t->host, TLM_E_FORMAT,
                             "%s: unknown key \"%.60s\" at byte %zu of the "
                             "section (known: step, sampling_rng, dropout_rng, "
                             "ranks, rank_dropout_rngs)",
                             where, m->key, m->key_offset);
    }
    return TLM_OK;
}

/* Reads the `trainer` section without changing the trainer. */
static int read_position(tlm_trainer *t, const char *path,
                         const tlmi_container_section *section, int64_t *step_out,
                         tlmi_rng *sampling, tlmi_rng *dropout) {
    /* Every message names the file and the section; JSON offsets count
     * from the section's start, which is at this byte of the file. */
    char where[600];
    snprintf(where, sizeof where,
             "tlm_trainer_resume: '%s', section 'trainer' at byte %llu", path,
             (unsigned long long)section->offset);
    char what[640];
    int64_t step = 0;
    tlmi_json_doc *doc = NULL;
    int status = tlmi_json_parse(&t->host, (const char *)section->data,
                                 (size_t)section->size, NULL, &doc);
    if (status != TLM_OK) {
        tlmi_fail_forward(&t->host, status, "%s", where);
        goto cleanup;
    }
    const tlmi_json_value *root = tlmi_json_root(doc);
    if (root->type != TLMI_JSON_OBJECT) {
        status = tlmi_fail(&t->host, TLM_E_FORMAT, "%s: is a JSON %s, not an "
                           "object", where, tlmi_json_type_name(root->type));
        goto cleanup;
    }
    status = check_position_keys(t, where, root);
    if (status != TLM_OK)
        goto cleanup;
    const tlmi_json_value *step_value = tlmi_json_object_get(root, "step");
    snprintf(what, sizeof what, "%s: step", where);
    status = step_value == NULL
                 ? tlmi_fail(&t->host, TLM_E_FORMAT, "%s: no step", where)
                 : tlmi_json_get_int64(&t->host, step_value, what, 0, INT64_MAX,
                                       &step);
    if (status != TLM_OK)
        goto cleanup;
    const char *names[2] = {"sampling_rng", "dropout_rng"};
    tlmi_rng *rngs[2] = {sampling, dropout};
    for (int i = 0; i < 2; i++) {
        size_t length = 0;
        const tlmi_json_value *v = tlmi_json_object_get(root, names[i]);
        const char *text = v != NULL ? tlmi_json_string(v, &length) : NULL;
        const int parsed = text != NULL ? rng_from_hex(text, length, rngs[i]) : -1;
        if (parsed != 0) {
            status = tlmi_fail(&t->host, TLM_E_FORMAT, "%s: %s %s", where,
                               names[i],
                               parsed == -2 ? "is all zeros (a generator that "
                                              "would draw 0 forever)"
                                            : "is missing or not 64 hex digits");
            goto cleanup;
        }
    }
    /* Data parallelism: the same number of ranks, each with its own
     * dropout generator (a checkpoint without "ranks" is from one). */
    int64_t ranks = 1;
    const tlmi_json_value *ranks_value = tlmi_json_object_get(root, "ranks");
    if (ranks_value != NULL) {
        snprintf(what, sizeof what, "%s: ranks", where);
        status = tlmi_json_get_int64(&t->host, ranks_value, what, 1, INT32_MAX,
                                     &ranks);
        if (status != TLM_OK)
            goto cleanup;
    }
    if (ranks != t->ranks) {
        status = tlmi_fail(&t->host, TLM_E_STATE, "tlm_trainer_resume: '%s' was "
                           "written by a run of %lld rank(s); resume it with the "
                           "same number (this run has %d)", path, (long long)ranks,
                           (int)t->ranks);
        goto cleanup;
    }
    if (ranks > 1) {
        size_t length = 0;
        const tlmi_json_value *v = tlmi_json_object_get(root, "rank_dropout_rngs");
        const char *text = v != NULL ? tlmi_json_string(v, &length) : NULL;
        if (text == NULL || length != (size_t)ranks * 64 ||
            rng_from_hex(text + (size_t)t->rank * 64, 64, dropout) != 0)
            status = tlmi_fail(&t->host, TLM_E_FORMAT, "%s: no valid "
                               "rank_dropout_rngs for %lld ranks (64 hex "
                               "digits each, not all zeros)",
                               where, (long long)ranks);
    }
cleanup:
    tlmi_json_free(doc);
    *step_out = step;
    return status;
}

/* A tokenizer in its file format, in host memory (freed by the caller
 * with the size in *size). */
static int tokenizer_bytes(tlmi_host *host, tlm_tokenizer *tok,
                           void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    size_t needed = 0;
    int status = tlm_tokenizer_save_memory(tok, NULL, 0, &needed);
    if (status != TLM_OK && status != TLM_E_RANGE)
        return tlmi_fail_forward(host, status, "tlm_trainer_resume");
    *data = tlmi_host_alloc(host, needed > 0 ? needed : 1, 64);
    if (*data == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "tlm_trainer_resume: out of memory");
    *size = needed;
    size_t written = 0;
    status = tlm_tokenizer_save_memory(tok, *data, needed, &written);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "tlm_trainer_resume");
    return TLM_OK;
}

/* Reads the checkpoint's `tokenizr` section, if it has one, without
 * changing the model: the tokenizer must load and fit the model's
 * vocabulary, and, when the model has a tokenizer, be the same one (the
 * ids the checkpoint was trained on would otherwise mean other text).
 * *attach is the checkpoint's tokenizer when the model has none (resume
 * then attaches it, as tlm_model_load would), NULL otherwise. */
static int check_tokenizer(tlm_trainer *t, const char *path,
                           const tlmi_container_section *section,
                           tlm_tokenizer **attach) {
    *attach = NULL;
    if (section == NULL)
        return TLM_OK;
    char where[600];
    snprintf(where, sizeof where,
             "tlm_trainer_resume: '%s', section 'tokenizr' at byte %llu", path,
             (unsigned long long)section->offset);
    tlm_tokenizer *saved = NULL;
    int status = tlm_tokenizer_load_memory(&saved, t->ctx, section->data,
                                           (size_t)section->size);
    if (status != TLM_OK)
        return tlmi_fail_forward(&t->host, status, "%s", where);
    const int32_t vocab = tlm_tokenizer_vocab_size(saved);
    if (vocab != t->model->config.vocab_size) {
        tlm_tokenizer_free(saved);
        return tlmi_fail(&t->host, TLM_E_FORMAT, "%s: the tokenizer has %d "
                         "ids, the model's vocabulary %d", where, (int)vocab,
                         (int)t->model->config.vocab_size);
    }
    if (t->model->tokenizer == NULL) {
        *attach = saved;
        return TLM_OK;
    }
    /* Both in the file format, so that equal tokenizers compare equal
     * whichever writer produced the section. */
    void *mine = NULL, *theirs = NULL;
    size_t mine_size = 0, theirs_size = 0;
    status = tokenizer_bytes(&t->host, t->model->tokenizer, &mine, &mine_size);
    if (status == TLM_OK)
        status = tokenizer_bytes(&t->host, saved, &theirs, &theirs_size);
    if (status == TLM_OK &&
        (mine_size != theirs_size || memcmp(mine, theirs, mine_size) != 0))
        status = tlmi_fail(&t->host, TLM_E_STATE, "%s: the checkpoint was "
                           "trained with another tokenizer than the model's "
                           "(resume into the model loaded from the checkpoint, "
                           "or attach the same tokenizer)", where);
    if (mine != NULL)
        tlmi_host_free(&t->host, mine, mine_size > 0 ? mine_size : 1);
    if (theirs != NULL)
        tlmi_host_free(&t->host, theirs, theirs_size > 0 ? theirs_size : 1);
    tlm_tokenizer_free(saved);
    return status;
}

/* Resuming is all or nothing: every section is checked (the model's
 * parameters, the optimizer state, the trainer's position, the
 * tokenizer) before the first change, and the changes (copies) cannot
 * fail. */
TLM_API int tlm_trainer_resume(tlm_trainer *t, const char *path) {
    TLMI_CHECK(NULL, t != NULL, TLM_E_INVALID,
               "tlm_trainer_resume: trainer is NULL");
    TLMI_CHECK_NOT_NULL(NULL, "tlm_trainer_resume", path);
    /* The file is mapped, its checksums summed piece by piece, and the
     * parameters and the optimizer state copied from the mapping: reading
     * it whole would hold the weights and both moments a second time. */
    tlmi_file_mapping mapping;
    memset(&mapping, 0, sizeof mapping);
    const size_t sources_size = (size_t)t->model->n_parameters * sizeof(const void *);
    const void **sources = NULL;
    int64_t step = 0;
    tlmi_rng sampling, dropout;
    tlmi_optim_loaded optim_state;
    memset(&sampling, 0, sizeof sampling);
    memset(&dropout, 0, sizeof dropout);
    memset(&optim_state, 0, sizeof optim_state);
    const tlmi_container_section *data = NULL;
    tlm_tokenizer *tokenizer = NULL; /* the checkpoint's, for a model without */
    int status = tlmi_file_map_readonly(&t->host, path, &mapping);
    if (status != TLM_OK)
        goto agree; /* every rank still agrees below */
    tlmi_container checkpoint;
    status = tlmi_container_parse(&t->host, "tlm_trainer_resume", path, mapping.data,
                                   mapping.size, TLMI_CONTAINER_SKIP_ALL_CRCS,
                                   &checkpoint);
    if (status == TLM_OK)
        status = tlmi_container_check_mapped(&t->host, "tlm_trainer_resume", path,
                                             &mapping, &checkpoint, NULL);
    if (status != TLM_OK)
        goto agree;
    const tlmi_container_section *optim = tlmi_container_find(&checkpoint, "optim");
    const tlmi_container_section *position =
        tlmi_container_find(&checkpoint, "trainer");
    if (optim == NULL || position == NULL) {
        status = tlmi_fail(&t->host, TLM_E_FORMAT, "tlm_trainer_resume: '%s' is "
                           "a model, not a training checkpoint (no %s section)",
                           path, optim == NULL ? "optim" : "trainer");
        goto agree;
    }
    status = read_position(t, path, position, &step, &sampling, &dropout);
    if (status != TLM_OK)
        goto agree;
    sources = tlmi_host_alloc(&t->host, sources_size > 0 ? sources_size : 1, 64);
    if (sources == NULL) {
        status = tlmi_fail(&t->host, TLM_E_NOMEM, "tlm_trainer_resume: out of memory");
        goto agree;
    }
    status = tlmi_model_check_parameters(t->model, "tlm_trainer_resume", path,
                                         &checkpoint, sources);
    if (status != TLM_OK) {
        /* Its messages start "tlm_trainer_resume:" and name the file. */
        tlmi_fail_copy(&t->host, status, tlm_last_error());
        goto agree;
    }
    status = tlmi_optimizer_check_state(t->optimizer, &t->host, optim->data,
                                        (size_t)optim->size, &optim_state);
    if (status != TLM_OK) {
        tlmi_fail_forward(&t->host, status, "tlm_trainer_resume: '%s', section "
                          "'optim'", path);
        goto agree;
    }
    /* The trainer counts the steps it took, the optimizer the updates it
     * made: one per step, so the two agree in every checkpoint it writes. */
    if (optim_state.step != step) {
        status = tlmi_fail(&t->host, TLM_E_FORMAT, "tlm_trainer_resume: '%s': "
                           "section 'trainer' says step %lld, section 'optim' "
                           "(the optimizer's step) %lld; they must be equal",
                           path, (long long)step, (long long)optim_state.step);
        goto agree;
    }
    /* After the configuration's check, which explains a checkpoint of
     * another vocabulary better than the tokenizer's size would. */
    status = check_tokenizer(t, path, tlmi_container_find(&checkpoint, "tokenizr"),
                             &tokenizer);
    if (status != TLM_OK)
        goto agree;
    data = tlmi_container_find(&checkpoint, "data");
agree:
    if (t->ranks > 1) /* all ranks resume, or none does and all fail */
        status = ranks_agree(t, "tlm_trainer_resume", status, TLM_E_STATE,
                             "another rank could not resume from", path);
    if (status == TLM_OK) {
        /* Commit: copies only, none can fail. */
        tlmi_model_copy_parameters(t->model, sources);
        if (data != NULL)
            tlmi_file_mapping_release(&mapping, data->data, (size_t)data->size);
        tlmi_optimizer_commit_state(t->optimizer, &optim_state);
        t->step = step;
        t->rng = sampling;
        t->ctx->rng = dropout;
        if (tokenizer != NULL) {
            t->model->tokenizer = tokenizer; /* the model had none */
            tokenizer = NULL;
        }
    }
    tlm_tokenizer_free(tokenizer);
    if (sources != NULL)
        tlmi_host_free(&t->host, sources, sources_size > 0 ? sources_size : 1);
    tlmi_file_unmap(&mapping);
    return status;
}
