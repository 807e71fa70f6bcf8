#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "context.h"
#include "file.h"
#include "kernels/dispatch.h"
#include "error.h"
#include "gemm_parallel.h"
#include "params.h"
#include "rng.h"
#include "tensor.h"

/* ---------------------------------------------------------------------- */
/* Configuration */

TLM_API int tlm_model_config_init(tlm_model_config *config) {
    if (config == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_config_init: config is NULL");
    memset(config, 0, sizeof *config);
    config->struct_size = sizeof *config;
    config->d_model = 128;
    config->n_heads = 4;
    config->n_decoder_layers = 4;
    config->max_context = 256;
    config->position = TLM_POSITION_LEARNED;
    config->norm = TLM_NORM_LAYER;
    config->norm_placement = TLM_NORM_PRE;
    config->activation = TLM_ACTIVATION_GELU;
    config->bias = 1;
    config->tied_output = 1;
    config->norm_eps = 1e-5f;
    config->rope_base = 10000.0f;
    return TLM_OK;
}

/* Sizes beyond which a configuration is surely a mistake (and whose
 * products stay far from overflow). */
#define MAX_WIDTH (1 << 16)
#define MAX_VOCAB (1 << 24)
#define MAX_LAYERS 1024
#define MAX_CONTEXT (1 << 20)

static int config_fail(const char *field, const char *why, long long value) {
    return tlmi_fail_thread(TLM_E_INVALID,
                            "tlm_model_create: config.%s = %lld %s", field,
                            value, why);
}

/* Checks `c` and resolves its "0 means default" sizes. */
static int resolve_config(tlm_model_config *c) {
    if (c->vocab_size < 1 || c->vocab_size > MAX_VOCAB)
        return config_fail("vocab_size", "is outside 1..16777216 (set it: there is no default)",
                           c->vocab_size);
    if (c->d_model < 1 || c->d_model > MAX_WIDTH)
        return config_fail("d_model", "is outside 1..65536", c->d_model);
    if (c->n_heads < 1 || c->n_heads > c->d_model)
        return config_fail("n_heads", "is outside 1..d_model", c->n_heads);
    if (c->head_dim == 0) {
        if (c->d_model % c->n_heads != 0)
            return tlmi_fail_thread(TLM_E_INVALID,
                                    "tlm_model_create: config.n_heads = %d does "
                                    "not divide config.d_model = %d (or set "
                                    "config.head_dim)",
                                    (int)c->n_heads, (int)c->d_model);
        c->head_dim = c->d_model / c->n_heads;
    }
    if (c->head_dim < 1 || c->head_dim > MAX_WIDTH ||
        (int64_t)c->head_dim * c->n_heads > MAX_WIDTH)
        return config_fail("head_dim", "is outside 1..65536 / n_heads",
                           c->head_dim);
    if (c->d_ff == 0)
        c->d_ff = 4 * c->d_model > MAX_WIDTH ? MAX_WIDTH : 4 * c->d_model;
    if (c->d_ff < 1 || c->d_ff > MAX_WIDTH)
        return config_fail("d_ff", "is outside 1..65536", c->d_ff);
    if (c->n_encoder_layers < 0 || c->n_encoder_layers > MAX_LAYERS)
        return config_fail("n_encoder_layers", "is outside 0..1024",
                           c->n_encoder_layers);
    if (c->n_decoder_layers < 0 || c->n_decoder_layers > MAX_LAYERS)
        return config_fail("n_decoder_layers", "is outside 0..1024",
                           c->n_decoder_layers);
    if (c->n_encoder_layers + c->n_decoder_layers == 0)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_create: config.n_encoder_layers and "
                                "config.n_decoder_layers are both 0");
    if (c->max_context < 1 || c->max_context > MAX_CONTEXT)
        return config_fail("max_context", "is outside 1..1048576",
                           c->max_context);
    if (c->position < TLM_POSITION_LEARNED || c->position > TLM_POSITION_ROTARY)
        return config_fail("position", "is not a tlm_position", c->position);
    if (c->position == TLM_POSITION_SINUSOIDAL && c->d_model % 2 != 0)
        return config_fail("d_model", "must be even for sinusoidal positions",
                           c->d_model);
    if (c->position == TLM_POSITION_ROTARY && c->head_dim % 2 != 0)
        return config_fail("head_dim", "must be even for rotary positions",
                           c->head_dim);
    if (c->norm != TLM_NORM_LAYER && c->norm != TLM_NORM_RMS)
        return config_fail("norm", "is not a tlm_norm", c->norm);
    if (c->norm_placement != TLM_NORM_PRE && c->norm_placement != TLM_NORM_POST)
        return config_fail("norm_placement", "is not a tlm_norm_placement",
                           c->norm_placement);
    if (c->activation < TLM_ACTIVATION_GELU ||
        c->activation > TLM_ACTIVATION_SWIGLU)
        return config_fail("activation", "is not a tlm_activation",
                           c->activation);
    if (c->bias != 0 && c->bias != 1)
        return config_fail("bias", "is not 0 or 1", c->bias);
    if (c->tied_output != 0 && c->tied_output != 1)
        return config_fail("tied_output", "is not 0 or 1", c->tied_output);
    const float rates[2] = {c->embedding_dropout, c->residual_dropout};
    const char *rate_names[2] = {"embedding_dropout", "residual_dropout"};
    for (int i = 0; i < 2; i++)
        if (!(rates[i] >= 0.0f && rates[i] < 1.0f))
            return tlmi_fail_thread(TLM_E_INVALID,
                                    "tlm_model_create: config.%s = %g is "
                                    "outside [0, 1)",
                                    rate_names[i], (double)rates[i]);
    if (!(c->norm_eps > 0.0f) || !isfinite(c->norm_eps))
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_create: config.norm_eps = %g must be "
                                "positive and finite",
                                (double)c->norm_eps);
    if (!(c->rope_base > 1.0f) || !isfinite(c->rope_base))
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_create: config.rope_base = %g must be "
                                "finite and above 1",
                                (double)c->rope_base);
    return TLM_OK;
}

/* ---------------------------------------------------------------------- */
/* Parameters */

typedef struct builder {
    tlm_model *model;
    tlmi_rng rng;
    int status;
    const tlmi_parameter_source *source; /* NULL: initialise */
} builder;

/* Creates the named parameter [d0] or [d0, d1], fills it (std > 0: normal;
 * std == 0: the constant `fill`) and registers it. Once a step has failed,
 * later calls do nothing and return NULL. */
static tlm_tensor *add_parameter(builder *b, const char *name, int64_t d0,
                                 int64_t d1, float std, float fill) {
    if (b->status != TLM_OK)
        return NULL;
    tlm_model *m = b->model;
    if (m->n_parameters == m->parameters_capacity) {
        int32_t capacity = m->parameters_capacity ? 2 * m->parameters_capacity : 64;
        tlmi_named_parameter *grown = tlmi_host_alloc(
            &m->ctx->host, (size_t)capacity * sizeof *grown, 64);
        if (grown == NULL) {
            b->status = tlmi_fail(&m->ctx->host, TLM_E_NOMEM,
                                  "tlm_model_create: out of memory");
            return NULL;
        }
        if (m->parameters != NULL) {
            memcpy(grown, m->parameters, (size_t)m->n_parameters * sizeof *grown);
            tlmi_host_free(&m->ctx->host, m->parameters,
                           (size_t)m->parameters_capacity * sizeof *grown);
        }
        m->parameters = grown;
        m->parameters_capacity = capacity;
    }
    const int64_t shape[2] = {d0, d1};
    const int32_t ndim = d1 > 0 ? 2 : 1;
    tlm_tensor *t = NULL;
    if (b->source != NULL && !b->source->copy) {
        const void *data = NULL;
        b->status = b->source->lookup(b->source->user, name, ndim, shape, &data);
        if (b->status == TLM_OK)
            b->status = tlmi_tensor_create_borrowed(&t, m->ctx, TLM_DTYPE_F32,
                                                    ndim, shape, data);
        if (b->status != TLM_OK)
            return NULL;
    } else if (b->source != NULL) {
        const void *data = NULL;
        b->status = b->source->lookup(b->source->user, name, ndim, shape, &data);
        if (b->status == TLM_OK)
            b->status = tlm_tensor_create(&t, m->ctx, TLM_DTYPE_F32, ndim, shape);
        if (b->status == TLM_OK)
            b->status = tlm_tensor_set_requires_grad(t, 1);
        if (b->status != TLM_OK) {
            tlm_tensor_free(t);
            return NULL;
        }
        memcpy(t->data, data, (size_t)t->numel * sizeof(float));
    } else {
        b->status = tlm_tensor_create(&t, m->ctx, TLM_DTYPE_F32, ndim, shape);
        if (b->status == TLM_OK)
            b->status = tlm_tensor_set_requires_grad(t, 1);
        if (b->status != TLM_OK) {
            tlm_tensor_free(t);
            return NULL;
        }
        float *values = tlm_tensor_data_f32(t);
        for (int64_t i = 0; i < tlm_tensor_numel(t); i++)
            values[i] = std > 0.0f ? std * tlmi_rng_normal(&b->rng) : fill;
    }
    tlmi_named_parameter *entry = &m->parameters[m->n_parameters++];
    snprintf(entry->name, sizeof entry->name, "%s", name);
    entry->tensor = t;
    return t;
}

#define INIT_STD 0.02f

static void add_norm(builder *b, const char *prefix, tlmi_norm_params *norm) {
    const tlm_model_config *c = &b->model->config;
    char name[TLMI_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.weight", prefix);
    norm->weight = add_parameter(b, name, c->d_model, 0, 0.0f, 1.0f);
    if (c->norm == TLM_NORM_LAYER && c->bias) {
        snprintf(name, sizeof name, "%s.bias", prefix);
        norm->bias = add_parameter(b, name, c->d_model, 0, 0.0f, 0.0f);
    }
}

/* A linear projection [out, in] and its bias [out]. */
static void add_linear(builder *b, const char *prefix, const char *proj,
                       int64_t out_features, int64_t in_features, float std,
                       tlm_tensor **weight, tlm_tensor **bias) {
    char name[TLMI_PARAM_NAME_MAX];
    snprintf(name, sizeof name, "%s.%s.weight", prefix, proj);
    *weight = add_parameter(b, name, out_features, in_features, std, 0.0f);
    if (b->model->config.bias) {
        snprintf(name, sizeof name, "%s.%s.bias", prefix, proj);
        *bias = add_parameter(b, name, out_features, 0, 0.0f, 0.0f);
    }
}

static void add_attention(builder *b, const char *prefix,
                          tlmi_attention_params *a, float residual_std) {
    const tlm_model_config *c = &b->model->config;
    const int64_t inner = (int64_t)c->n_heads * c->head_dim;
    add_linear(b, prefix, "q_proj", inner, c->d_model, INIT_STD, &a->q_weight, &a->q_bias);
    add_linear(b, prefix, "k_proj", inner, c->d_model, INIT_STD, &a->k_weight, &a->k_bias);
    add_linear(b, prefix, "v_proj", inner, c->d_model, INIT_STD, &a->v_weight, &a->v_bias);
    add_linear(b, prefix, "o_proj", c->d_model, inner, residual_std, &a->o_weight, &a->o_bias);
}

static void add_ffn(builder *b, const char *prefix, tlmi_ffn_params *f,
                    float residual_std) {
    const tlm_model_config *c = &b->model->config;
    if (c->activation == TLM_ACTIVATION_SWIGLU)
        add_linear(b, prefix, "gate_proj", c->d_ff, c->d_model, INIT_STD,
                   &f->gate_weight, &f->gate_bias);
    add_linear(b, prefix, "up_proj", c->d_ff, c->d_model, INIT_STD, &f->up_weight, &f->up_bias);
    add_linear(b, prefix, "down_proj", c->d_model, c->d_ff, residual_std,
               &f->down_weight, &f->down_bias);
}

/* One layer of a stack, in the order docs/model.md lists its tensors. */
static void add_layer(builder *b, const char *stack, int32_t index,
                      int32_t n_layers, int cross, tlmi_layer_params *layer) {
    const float residual_std = INIT_STD / sqrtf(2.0f * (float)n_layers);
    char prefix[32], part[48]; /* "decoder.layers.1023" + ".cross_attn_norm" */
    snprintf(prefix, sizeof prefix, "%s.layers.%d", stack, (int)index);
    snprintf(part, sizeof part, "%s.self_attn_norm", prefix);
    add_norm(b, part, &layer->self_attn_norm);
    snprintf(part, sizeof part, "%s.self_attn", prefix);
    add_attention(b, part, &layer->self_attn, residual_std);
    if (cross) {
        snprintf(part, sizeof part, "%s.cross_attn_norm", prefix);
        add_norm(b, part, &layer->cross_attn_norm);
        snprintf(part, sizeof part, "%s.cross_attn", prefix);
        add_attention(b, part, &layer->cross_attn, residual_std);
    }
    snprintf(part, sizeof part, "%s.ffn_norm", prefix);
    add_norm(b, part, &layer->ffn_norm);
    snprintf(part, sizeof part, "%s.ffn", prefix);
    add_ffn(b, part, &layer->ffn, residual_std);
}

static void free_parts(tlm_model *m) {
    for (int32_t i = 0; i < m->n_parameters; i++)
        tlm_tensor_free(m->parameters[i].tensor);
    if (m->parameters != NULL)
        tlmi_host_free(&m->ctx->host, m->parameters,
                       (size_t)m->parameters_capacity * sizeof *m->parameters);
    if (m->encoder != NULL)
        tlmi_host_free(&m->ctx->host, m->encoder,
                       (size_t)m->config.n_encoder_layers * sizeof *m->encoder);
    if (m->decoder != NULL)
        tlmi_host_free(&m->ctx->host, m->decoder,
                       (size_t)m->config.n_decoder_layers * sizeof *m->decoder);
}

static tlmi_layer_params *alloc_layers(tlm_model *m, int32_t count) {
    if (count == 0)
        return NULL;
    tlmi_layer_params *layers =
        tlmi_host_alloc(&m->ctx->host, (size_t)count * sizeof *layers, 64);
    if (layers != NULL)
        memset(layers, 0, (size_t)count * sizeof *layers);
    return layers;
}

TLM_API int tlm_model_create(tlm_model **out, tlm_context *ctx,
                             const tlm_model_config *given) {
    return tlmi_model_build(out, ctx, given, NULL);
}

int tlmi_model_build(tlm_model **out, tlm_context *ctx,
                     const tlm_model_config *given,
                     const tlmi_parameter_source *source) {
    if (out == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_create: out is NULL");
    *out = NULL;
    if (ctx == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_create: ctx is NULL");
    if (given == NULL)
        return tlmi_fail(&ctx->host, TLM_E_INVALID,
                         "tlm_model_create: config is NULL (vocab_size has no "
                         "default)");
    tlm_model_config config;
    tlm_model_config_init(&config);
    int status = tlmi_params_merge(&ctx->host, "tlm_model_create: config",
                                   &config, sizeof config, given);
    if (status == TLM_OK)
        status = resolve_config(&config);
    if (status != TLM_OK) {
        /* resolve_config records on the thread; the context gets it too. */
        char message[TLMI_MESSAGE_MAX];
        snprintf(message, sizeof message, "%s", tlm_last_error());
        return tlmi_fail(&ctx->host, status, "%s", message);
    }

    tlm_model *m = tlmi_host_alloc(&ctx->host, sizeof *m, 64);
    if (m == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "tlm_model_create: out of memory");
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->config = config;
    m->encoder = alloc_layers(m, config.n_encoder_layers);
    m->decoder = alloc_layers(m, config.n_decoder_layers);
    if ((config.n_encoder_layers && m->encoder == NULL) ||
        (config.n_decoder_layers && m->decoder == NULL)) {
        free_parts(m);
        tlmi_host_free(&ctx->host, m, sizeof *m);
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "tlm_model_create: out of memory");
    }

    builder b = {m, {{0}}, TLM_OK, source};
    tlmi_rng_seed(&b.rng, config.init_seed);
    m->token_embedding = add_parameter(&b, "token_embedding.weight",
                                       config.vocab_size, config.d_model, INIT_STD, 0);
    if (config.position == TLM_POSITION_LEARNED)
        m->position_embedding = add_parameter(&b, "position_embedding.weight",
                                              config.max_context, config.d_model,
                                              INIT_STD, 0);
    const int seq2seq = config.n_encoder_layers > 0 && config.n_decoder_layers > 0;
    for (int32_t i = 0; i < config.n_encoder_layers; i++)
        add_layer(&b, "encoder", i, config.n_encoder_layers, 0, &m->encoder[i]);
    if (config.n_encoder_layers > 0 && config.norm_placement == TLM_NORM_PRE)
        add_norm(&b, "encoder.final_norm", &m->encoder_final_norm);
    for (int32_t i = 0; i < config.n_decoder_layers; i++)
        add_layer(&b, "decoder", i, config.n_decoder_layers, seq2seq, &m->decoder[i]);
    if (config.n_decoder_layers > 0 && config.norm_placement == TLM_NORM_PRE)
        add_norm(&b, "decoder.final_norm", &m->decoder_final_norm);
    if (!config.tied_output)
        m->lm_head = add_parameter(&b, "lm_head.weight", config.vocab_size,
                                   config.d_model, INIT_STD, 0);
    if (b.status != TLM_OK) {
        char message[TLMI_MESSAGE_MAX];
        snprintf(message, sizeof message, "%s", tlm_last_error());
        free_parts(m);
        tlmi_host_free(&ctx->host, m, sizeof *m);
        return tlmi_fail(&ctx->host, b.status, "tlm_model_create: %s", message);
    }
    *out = m;
    return TLM_OK;
}

TLM_API void tlm_model_free(tlm_model *model) {
    if (model == NULL)
        return;
    free_parts(model);
    tlm_tokenizer_free(model->tokenizer);
    if (model->mapping != NULL) {
        tlmi_file_unmap(model->mapping);
        tlmi_host_free(&model->ctx->host, model->mapping, sizeof(tlmi_file_mapping));
    }
    tlmi_host_free(&model->ctx->host, model, sizeof *model);
}

TLM_API int tlm_model_get_config(const tlm_model *model,
                                 tlm_model_config *config) {
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_get_config: model is NULL");
    if (config == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_get_config: config is NULL");
    int status = tlmi_params_check_out(NULL, "tlm_model_get_config: config", config);
    if (status == TLM_OK)
        tlmi_params_copy_out(config, &model->config, sizeof model->config);
    return status;
}

TLM_API int64_t tlm_model_parameter_count(const tlm_model *model) {
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_parameter_count: model is NULL");
    int64_t total = 0;
    for (int32_t i = 0; i < model->n_parameters; i++)
        total += tlm_tensor_numel(model->parameters[i].tensor);
    return total;
}

TLM_API int32_t tlm_model_parameter_tensor_count(const tlm_model *model) {
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_parameter_tensor_count: model is NULL");
    return model->n_parameters;
}

TLM_API int tlm_model_parameter(const tlm_model *model, int32_t index,
                                const char **name, tlm_tensor **tensor) {
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_parameter: model is NULL");
    if (index < 0 || index >= model->n_parameters)
        return tlmi_fail_thread(TLM_E_RANGE,
                                "tlm_model_parameter: index %d is outside 0..%d",
                                (int)index, (int)model->n_parameters - 1);
    if (name != NULL)
        *name = model->parameters[index].name;
    if (tensor != NULL)
        *tensor = model->parameters[index].tensor;
    return TLM_OK;
}

TLM_API int tlm_model_find_parameter(const tlm_model *model, const char *name,
                                     tlm_tensor **tensor) {
    if (tensor != NULL)
        *tensor = NULL;
    if (model == NULL || name == NULL || tensor == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_find_parameter: %s is NULL",
                                model == NULL ? "model" : name == NULL ? "name" : "tensor");
    for (int32_t i = 0; i < model->n_parameters; i++)
        if (strcmp(model->parameters[i].name, name) == 0) {
            *tensor = model->parameters[i].tensor;
            return TLM_OK;
        }
    return tlmi_fail_thread(TLM_E_RANGE,
                            "tlm_model_find_parameter: the model has no "
                            "parameter named '%.200s'",
                            name);
}

/* ---------------------------------------------------------------------- */
/* Memory estimates */

/* Bytes of the results (values and gradients) and saved buffers that one
 * attention sub-layer creates for n query rows and m key rows. */
static double attention_bytes(const tlm_model_config *c, double n, double m,
                              double batch, int rotary) {
    const double d = c->d_model, inner = (double)c->n_heads * c->head_dim;
    const double heads = c->n_heads;
    double floats = 0;
    floats += 2 * (n * inner + 2 * m * inner); /* q, k, v projections */
    /* Without rotary positions the heads are used in place (see
     * forward.c); with them, split, rotated, and merged back. */
    if (rotary) {
        floats += 2 * (n * inner + 2 * m * inner); /* split into heads */
        floats += 2 * (n * inner + m * inner) + (n + m) * c->head_dim;
        floats += 2 * n * inner;                   /* merged heads */
    }
    floats += 2 * n * inner;              /* attention output */
    floats += 2 * n * heads + n * heads;  /* log-sum-exp, backward scratch */
    floats += m / batch;                  /* padding flags (bytes, rounded up) */
    floats += 2 * n * d;                  /* output projection */
    return floats * 4;
}

static double norm_bytes(const tlm_model_config *c, double n) {
    return (2 * n * c->d_model + 2 * n) * 4;
}

/* One residual step: dropout (when on) and the addition, values and
 * gradients; post-norm adds its norm. */
static double residual_bytes(const tlm_model_config *c, double n) {
    double bytes = 2 * n * c->d_model * 4;
    if (c->residual_dropout > 0)
        bytes += 2 * n * c->d_model * 4 + n * c->d_model;
    return bytes + norm_bytes(c, n);
}

static double ffn_bytes(const tlm_model_config *c, double n) {
    const double f = c->d_ff;
    double floats = 2 * n * f + 2 * n * f + 2 * n * c->d_model;
    if (c->activation == TLM_ACTIVATION_SWIGLU)
        floats += 2 * n * f;
    return floats * 4;
}

TLM_API int tlm_model_memory_estimate(const tlm_model *model, int32_t purpose,
                                      int32_t batch, int32_t context,
                                      int64_t *bytes) {
    if (model == NULL || bytes == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_memory_estimate: %s is NULL",
                                model == NULL ? "model" : "bytes");
    *bytes = 0;
    const tlm_model_config *c = &model->config;
    if (purpose != TLM_MEMORY_INFERENCE && purpose != TLM_MEMORY_TRAINING)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_memory_estimate: purpose %d is not a "
                                "tlm_memory_purpose",
                                (int)purpose);
    if (batch < 1 || context < 1 || context > c->max_context ||
        (purpose == TLM_MEMORY_INFERENCE && batch != 1))
        return tlmi_fail_thread(TLM_E_RANGE,
                                "tlm_model_memory_estimate: batch %d, context %d "
                                "(inference: batch 1; context 1..%d)",
                                (int)batch, (int)context, (int)c->max_context);
    const double parameters = (double)tlm_model_parameter_count(model);
    const double d = c->d_model, inner = (double)c->n_heads * c->head_dim;
    const double f = c->d_ff, v = c->vocab_size, t = context;
    double total;
    if (purpose == TLM_MEMORY_INFERENCE) {
        /* Parameters, the caches and the session's scratch (session.c). */
        const double rows = c->n_encoder_layers > 0 ? c->max_context
                            : (context < 64 ? context : 64);
        double floats = 2.0 * c->n_decoder_layers * c->max_context * inner;
        if (c->n_encoder_layers > 0 && c->n_decoder_layers > 0)
            floats += 2.0 * c->n_decoder_layers * c->max_context * inner +
                      c->max_context * d;
        if (c->n_encoder_layers > 0)
            floats += 2.0 * c->max_context * inner;
        floats += rows * (4 * d + 5 * inner + 3 * f + c->head_dim + 2);
        /* The GEMM kernels' packing buffer for the largest product. */
        const tlmi_kernels *kernels = tlmi_kernels_active();
        const int64_t r = (int64_t)rows;
        const int64_t shapes[5][2] = {{(int64_t)inner, (int64_t)d}, {(int64_t)d, (int64_t)inner},
                                      {(int64_t)f, (int64_t)d}, {(int64_t)d, (int64_t)f},
                                      {c->vocab_size, (int64_t)d}};
        double workspace = 0;
        for (int i = 0; i < 5; i++) {
            double need = (double)kernels->gemm_workspace(r, shapes[i][0], shapes[i][1], 0, 1);
            workspace = need > workspace ? need : workspace;
        }
        /* One packing slot per thread of a session's pool (as many as
         * the context's threads by default), and the pool itself. */
        const int threads = model->ctx->n_threads;
        workspace = (double)tlmi_gemm_parallel_workspace((size_t)workspace,
                                                         threads);
        workspace += 512.0 + (threads - 1) * 64.0;
        /* The attention kernel's scratch, one slice per thread. */
        const size_t attention = kernels->attention_workspace(
            r, (int64_t)c->max_context, c->head_dim, c->head_dim, 0);
        if (attention != SIZE_MAX)
            workspace += (double)((attention + 63) / 64 * 64) * threads;
        total = parameters * 4 + floats * 4 + c->max_context + workspace;
    } else {
        const double n = (double)batch * t;
        const int rotary = c->position == TLM_POSITION_ROTARY;
        const int seq2seq = c->n_encoder_layers > 0 && c->n_decoder_layers > 0;
        const int pre = c->norm_placement == TLM_NORM_PRE;
        /* Parameters, their gradients and AdamW's two moments. */
        total = parameters * 16;
        double stack_bytes = 0;
        /* Embedding, positions and embedding dropout, per stack input. */
        double embed = 2 * n * d * 4;
        if (c->position == TLM_POSITION_LEARNED)
            embed += (2 * t * d + 2 * n * d) * 4;
        else if (c->position == TLM_POSITION_SINUSOIDAL)
            embed += 2 * n * d * 4 + t * d * 4;
        if (c->embedding_dropout > 0)
            embed += 2 * n * d * 4 + n * d;
        /* A layer: two sub-layers, each with its norm (before or after)
         * and residual addition; cross-attention adds a third. */
        const double self_layer = attention_bytes(c, n, n, batch, rotary) +
                                  ffn_bytes(c, n) + 2 * residual_bytes(c, n);
        const double final_norm = pre ? norm_bytes(c, n) : 0;
        if (c->n_encoder_layers > 0)
            stack_bytes += embed + c->n_encoder_layers * self_layer + final_norm;
        if (c->n_decoder_layers > 0) {
            const double cross = seq2seq ? attention_bytes(c, n, n, batch, 0) +
                                               residual_bytes(c, n)
                                         : 0;
            stack_bytes += embed + c->n_decoder_layers * (self_layer + cross) +
                           final_norm;
        }
        /* Logits, values and gradients, and the loss's saved rows. */
        total += stack_bytes + 2 * n * v * 4 + n * 8;
    }
    *bytes = total > 9.0e18 ? INT64_MAX : (int64_t)total;
    return TLM_OK;
}

/* ---------------------------------------------------------------------- */
/* The attached tokenizer */

int tlmi_model_attach_tokenizer_bytes(tlm_model *model, const char *what,
                                      const void *data, size_t size) {
    tlm_tokenizer *copy = NULL;
    int status = tlm_tokenizer_load_memory(&copy, model->ctx, data, size);
    if (status != TLM_OK) {
        char message[TLMI_MESSAGE_MAX];
        snprintf(message, sizeof message, "%s", tlm_last_error());
        return tlmi_fail(&model->ctx->host, status, "%s: %s", what, message);
    }
    if (tlm_tokenizer_vocab_size(copy) != model->config.vocab_size) {
        const int32_t vocab = tlm_tokenizer_vocab_size(copy);
        tlm_tokenizer_free(copy);
        return tlmi_fail(&model->ctx->host, TLM_E_INVALID,
                         "%s: the tokenizer has %d ids, the model's vocabulary "
                         "%d", what, (int)vocab, (int)model->config.vocab_size);
    }
    tlm_tokenizer_free(model->tokenizer);
    model->tokenizer = copy;
    return TLM_OK;
}

int tlmi_model_tokenizer_bytes(const tlm_model *model, void **data, size_t *size) {
    *data = NULL;
    *size = 0;
    if (model->tokenizer == NULL)
        return TLM_OK;
    size_t needed = 0;
    int status = tlm_tokenizer_save_memory(model->tokenizer, NULL, 0, &needed);
    if (status != TLM_OK && status != TLM_E_RANGE)
        return status;
    void *buffer = tlmi_host_alloc(&model->ctx->host, needed, 64);
    if (buffer == NULL)
        return tlmi_fail(&model->ctx->host, TLM_E_NOMEM, "saving the tokenizer: out of memory");
    status = tlm_tokenizer_save_memory(model->tokenizer, buffer, needed, size);
    if (status != TLM_OK) {
        tlmi_host_free(&model->ctx->host, buffer, needed);
        return status;
    }
    *data = buffer;
    return TLM_OK;
}

TLM_API int tlm_model_set_tokenizer(tlm_model *model, tlm_tokenizer *tokenizer) {
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_set_tokenizer: model is NULL");
    if (tokenizer == NULL) {
        tlm_tokenizer_free(model->tokenizer);
        model->tokenizer = NULL;
        return TLM_OK;
    }
    size_t needed = 0;
    int status = tlm_tokenizer_save_memory(tokenizer, NULL, 0, &needed);
    if (status != TLM_OK && status != TLM_E_RANGE)
        return status;
    void *buffer = tlmi_host_alloc(&model->ctx->host, needed, 64);
    if (buffer == NULL)
        return tlmi_fail(&model->ctx->host, TLM_E_NOMEM,
                         "tlm_model_set_tokenizer: out of memory");
    size_t size = 0;
    status = tlm_tokenizer_save_memory(tokenizer, buffer, needed, &size);
    if (status == TLM_OK)
        status = tlmi_model_attach_tokenizer_bytes(model, "tlm_model_set_tokenizer",
                                                   buffer, size);
    tlmi_host_free(&model->ctx->host, buffer, needed);
    return status;
}

TLM_API tlm_context *tlm_model_context(const tlm_model *model) {
    if (model == NULL) {
        tlmi_fail_thread(TLM_E_INVALID, "tlm_model_context: model is NULL");
        return NULL;
    }
    return model->ctx;
}

TLM_API tlm_tokenizer *tlm_model_tokenizer(tlm_model *model) {
    if (model == NULL) {
        tlmi_fail_thread(TLM_E_INVALID, "tlm_model_tokenizer: model is NULL");
        return NULL;
    }
    return model->tokenizer;
}
