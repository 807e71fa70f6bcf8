#include "model.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "base/file.h"
#include "base/grow.h"
#include "base/layout.h"
#include "base/params.h"
#include "base/rng.h"
#include "kernels/dispatch.h"
#include "kernels/weights.h"
#include "layer.h"
#include "session.h"

/* ---------------------------------------------------------------------- */
/* Configuration */

TLM_API int tlm_model_config_init(tlm_model_config *config) {
    TLMI_PARAMS_INIT("tlm_model_config_init", config);
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
    if (c->n_kv_heads == 0)
        c->n_kv_heads = c->n_heads;
    if (c->n_kv_heads < 1 || c->n_kv_heads > c->n_heads ||
        c->n_heads % c->n_kv_heads != 0)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_model_create: config.n_kv_heads = %d must "
                                "be 0 (n_heads) or divide config.n_heads = %d "
                                "(grouped-query attention)",
                                (int)c->n_kv_heads, (int)c->n_heads);
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
    int counting;     /* first pass: only add up block_bytes */
    size_t block_bytes; /* counting: the block's size so far; then the
                           offset of the next parameter in the block */
    int source_failed;  /* the status is the source's lookup's, whose
                           message names its own caller and file
                           (tlm_model_load, an importer, tlm_model_quantize):
                           passed on without a "tlm_model_create" prefix */
} builder;

/* The bytes of parameter [d0] or [d0, d1] (d1 0): a matrix in the
 * model's weight format, anything else float32. */
static size_t parameter_bytes(int32_t format, int64_t d0, int64_t d1) {
    if (d1 > 0 && format != TLM_WEIGHTS_F32)
        return tlmi_weights_bytes(format, d0, d1);
    return (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1) * sizeof(float);
}

/* A parameter's share of the block: its values rounded up to 64 bytes,
 * so that every tensor starts on a cache line (the kernels' alignment);
 * SIZE_MAX when that does not fit (an int8 matrix of few columns takes up
 * to 9 times its float32 bytes, so the float32 bound below is not enough,
 * and rounding SIZE_MAX up would wrap to 0). */
static size_t block_share(int32_t format, int64_t d0, int64_t d1) {
    const size_t bytes = parameter_bytes(format, d0, d1);
    if (bytes > SIZE_MAX - (TLMI_LAYOUT_ALIGN - 1))
        return SIZE_MAX;
    return (bytes + TLMI_LAYOUT_ALIGN - 1) / TLMI_LAYOUT_ALIGN * TLMI_LAYOUT_ALIGN;
}

/* Creates the named parameter [d0] or [d0, d1], fills it (std > 0: normal;
 * std == 0: the constant `fill`) and registers it. Once a step has failed,
 * later calls do nothing and return NULL. */
static tlm_tensor *add_parameter(builder *b, const char *name, int64_t d0,
                                 int64_t d1, float std, float fill) {
    if (b->status != TLM_OK)
        return NULL;
    tlm_model *m = b->model;
    const int32_t format = d1 > 0 ? m->weight_format : TLM_WEIGHTS_F32;
    const int32_t dtype = tlmi_dtype_of_weight_format(format);
    if (b->counting) {
        /* resolve_config's limits keep one tensor far below SIZE_MAX on
         * 64-bit hosts; the sum is checked for 32-bit ones. */
        if (d0 > (int64_t)(SIZE_MAX / sizeof(float) - TLMI_LAYOUT_ALIGN) /
                     (d1 > 0 ? d1 : 1) ||
            block_share(format, d0, d1) == SIZE_MAX ||
            block_share(format, d0, d1) > SIZE_MAX - b->block_bytes)
            b->status = tlmi_fail(&m->ctx->host, TLM_E_NOMEM,
                                  "tlm_model_create: the parameters do not "
                                  "fit in the address space");
        else
            b->block_bytes += block_share(format, d0, d1);
        return NULL;
    }
    if (m->n_parameters == m->parameters_capacity) {
        /* Room for 64 parameters at first, then doubling. */
        size_t capacity = (size_t)m->parameters_capacity;
        size_t needed = capacity == 0 ? 64 : capacity + 1;
        if (tlmi_grow(&m->ctx->host, &m->parameters, &capacity, needed,
                      sizeof *m->parameters) != TLM_OK) {
            b->status = tlmi_fail(&m->ctx->host, TLM_E_NOMEM,
                                  "tlm_model_create: out of memory");
            return NULL;
        }
        m->parameters_capacity = (int32_t)capacity;
    }
    const int64_t shape[2] = {d0, d1};
    const int32_t ndim = d1 > 0 ? 2 : 1;
    tlm_tensor *t = NULL;
    if (b->source != NULL && !b->source->copy) {
        const void *data = NULL;
        b->status = b->source->lookup(b->source->user, name, ndim, shape, &data);
        b->source_failed = b->status != TLM_OK;
        if (b->status == TLM_OK)
            b->status = tlmi_tensor_create_borrowed(&t, m->ctx, dtype, ndim,
                                                    shape, data);
        if (b->status != TLM_OK)
            return NULL;
    } else {
        /* A trainable parameter: the source's values copied, or drawn. */
        const void *data = NULL;
        if (b->source != NULL) {
            b->status = b->source->lookup(b->source->user, name, ndim, shape,
                                          &data);
            b->source_failed = b->status != TLM_OK;
        }
        if (b->status == TLM_OK)
            b->status = tlmi_tensor_create_view(&t, m->ctx, dtype, ndim,
                                                shape,
                                                m->parameter_block + b->block_bytes);
        if (b->status == TLM_OK)
            b->block_bytes += block_share(format, d0, d1);
        /* A quantized model does not train (its norms and biases no
         * more than its matrices). */
        if (b->status == TLM_OK && m->weight_format == TLM_WEIGHTS_F32)
            b->status = tlm_tensor_set_requires_grad(t, 1);
        if (b->status != TLM_OK) {
            tlm_tensor_free(t);
            return NULL;
        }
        float *values = t->data;
        if (b->source != NULL) {
            const size_t bytes = parameter_bytes(format, d0, d1);
            memcpy(values, data, bytes);
            if (b->source->copied != NULL)
                b->source->copied(b->source->user, data, bytes);
        }
        else
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
    const int64_t kv_inner = (int64_t)c->n_kv_heads * c->head_dim;
    add_linear(b, prefix, "q_proj", inner, c->d_model, INIT_STD, &a->q_weight, &a->q_bias);
    add_linear(b, prefix, "k_proj", kv_inner, c->d_model, INIT_STD, &a->k_weight, &a->k_bias);
    add_linear(b, prefix, "v_proj", kv_inner, c->d_model, INIT_STD, &a->v_weight, &a->v_bias);
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
    tlmi_host_free(&m->ctx->host, m->parameter_block, m->parameter_block_bytes);
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
    TLMI_CHECK_OUT(NULL, "tlm_model_create", out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_create", ctx);
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
        return tlmi_fail_copy(&ctx->host, status, tlm_last_error());
    }

    if (source != NULL && source->weights != TLM_WEIGHTS_F32 &&
        source->weights != TLM_WEIGHTS_BF16 && source->weights != TLM_WEIGHTS_INT8)
        return tlmi_fail(&ctx->host, TLM_E_INTERNAL,
                         "tlm_model_create: weight format %d",
                         (int)source->weights);
    tlm_model *m = tlmi_host_alloc(&ctx->host, sizeof *m, 64);
    if (m == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "tlm_model_create: out of memory");
    memset(m, 0, sizeof *m);
    m->ctx = ctx;
    m->config = config;
    m->weight_format = source != NULL ? source->weights : TLM_WEIGHTS_F32;
    m->encoder = alloc_layers(m, config.n_encoder_layers);
    m->decoder = alloc_layers(m, config.n_decoder_layers);
    if ((config.n_encoder_layers && m->encoder == NULL) ||
        (config.n_decoder_layers && m->decoder == NULL)) {
        free_parts(m);
        tlmi_host_free(&ctx->host, m, sizeof *m);
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "tlm_model_create: out of memory");
    }

    /* Two passes over the same tensors: the first adds up the block that
     * holds every trainable parameter, the second makes the tensors. */
    builder b = {m, {{0}}, TLM_OK, source, 1, 0, 0};
    const int trainable = source == NULL || source->copy;
    for (int pass = trainable ? 0 : 1; pass < 2; pass++) {
        if (pass == 1 && trainable && b.status == TLM_OK) {
            /* A float32 model's parameters get gradients of their size
             * (tlm_tensor_set_requires_grad); a quantized one none. */
            const tlmi_memory_part parts[2] = {
                {"weights", (double)b.block_bytes, 0},
                {"gradients", (double)b.block_bytes, 0}};
            status = tlmi_context_check_memory(
                ctx, &ctx->host, "tlm_model_create", parts,
                m->weight_format == TLM_WEIGHTS_F32 ? 2 : 1);
            if (status != TLM_OK) {
                free_parts(m);
                tlmi_host_free(&ctx->host, m, sizeof *m);
                return status;
            }
            m->parameter_block = tlmi_host_alloc(&ctx->host, b.block_bytes,
                                                 TLMI_LAYOUT_ALIGN);
            if (m->parameter_block == NULL)
                b.status = tlmi_fail(&ctx->host, TLM_E_NOMEM,
                                     "tlm_model_create: allocating %zu bytes "
                                     "of parameters failed", b.block_bytes);
            m->parameter_block_bytes = b.block_bytes;
        }
        b.counting = pass == 0;
        b.block_bytes = 0;
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
    }
    if (b.status != TLM_OK) {
        free_parts(m);
        tlmi_host_free(&ctx->host, m, sizeof *m);
        if (b.source_failed)
            return b.status;
        return tlmi_fail_forward(&ctx->host, b.status, "tlm_model_create");
    }
    tlmi_context_hold(&ctx->host);
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
    tlmi_host host = model->ctx->host;
    tlmi_host_free(&host, model, sizeof *model);
    tlmi_context_drop(&host); /* may free the context (tlm_context_free) */
}

TLM_API int tlm_model_get_config(const tlm_model *model,
                                 tlm_model_config *config) {
    TLMI_PARAMS_GET("tlm_model_get_config", model, config, model->config);
}

TLM_API int64_t tlm_model_parameter_count(const tlm_model *model) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_parameter_count", model);
    int64_t total = 0;
    for (int32_t i = 0; i < model->n_parameters; i++)
        total += tlm_tensor_numel(model->parameters[i].tensor);
    return total;
}

TLM_API int32_t tlm_model_parameter_tensor_count(const tlm_model *model) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_parameter_tensor_count", model);
    return model->n_parameters;
}

TLM_API int tlm_model_parameter(const tlm_model *model, int32_t index,
                                const char **name, tlm_tensor **tensor) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_parameter", model);
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
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_find_parameter", model);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_find_parameter", name);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_find_parameter", tensor);
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

/* The training graph's activations, counted by walking the layer
 * (layer.c) with primitives that each add what its autodiff operation
 * creates in forward.c's graph: the result's data (none for a residual
 * add, which writes over the projection it adds; one buffer per stack for
 * the pre-norm outputs and one for the activations, recomputed when read)
 * and what it saves for the backward pass. The results' gradients are
 * pooled (autodiff/grad_pool.h): a result's gradient is taken when its
 * first consumer's backward runs and given back after its own, and the
 * pool keeps, for each buffer size, the most buffers of that size in use
 * at once. In a sublayer's backward pass those are the residual stream's,
 * the branch's (or the gradient it is being passed to), and at its widest
 * point the attention's query, key and value gradients or the
 * feedforward's activation and its inputs': counted per sublayer by size,
 * the pool's size being the largest count of each. Every slot has B*T
 * rows. */
#define GRAD_SIZES 8
typedef struct graph_bytes {
    const tlm_model_config *config;
    double rows;   /* B*T */
    double batch;  /* B */
    double bytes;  /* results' data and saved buffers */
    double normed; /* the shared buffers: pre-norm outputs, activations */
    double hidden;
    /* Gradient buffer sizes (floats): the current sublayer's total of
     * each, and the largest total of each so far. */
    double grad_floats[GRAD_SIZES];
    double grad_now[GRAD_SIZES];
    double grad_peak[GRAD_SIZES];
    int n_grad_sizes;
} graph_bytes;

/* The current sublayer's gradients of `floats` floats grow by `count`. */
static void count_grad(graph_bytes *g, double floats, double count) {
    int i = 0;
    while (i < g->n_grad_sizes && g->grad_floats[i] != floats)
        i++;
    if (i == GRAD_SIZES)
        i = GRAD_SIZES - 1; /* more sizes than any layer has: lump them */
    if (i == g->n_grad_sizes) {
        g->grad_floats[i] = floats;
        g->n_grad_sizes++;
    }
    g->grad_now[i] += floats * count;
}

/* A result of `floats` floats: its data unless `kept` is 0. */
static void count_result(graph_bytes *g, double floats, int kept) {
    if (kept)
        g->bytes += floats * 4;
}

/* The end of a sublayer: its gradients by size against the peaks; the
 * next starts with the residual stream's and its branch's. */
static void count_sublayer_end(graph_bytes *g) {
    for (int i = 0; i < g->n_grad_sizes; i++) {
        if (g->grad_peak[i] < g->grad_now[i])
            g->grad_peak[i] = g->grad_now[i];
        g->grad_now[i] = 0;
    }
    count_grad(g, g->rows * g->config->d_model, 2);
}

static int count_linear(void *exec, int out, int in, tlm_tensor *weight,
                        tlm_tensor *bias) {
    (void)out, (void)in, (void)bias;
    graph_bytes *g = exec;
    count_result(g, g->rows * (double)weight->shape[0], 1);
    return TLM_OK;
}

/* The result (shared when pre-norm), its gradient and the rows' saved
 * statistics. */
static int count_norm(void *exec, int out, int in, const tlmi_norm_params *p) {
    (void)in, (void)p;
    graph_bytes *g = exec;
    const double floats = g->rows * g->config->d_model;
    const int shared = out == TLMI_SLOT_NORMED;
    if (shared && floats * 4 > g->normed)
        g->normed = floats * 4;
    count_result(g, floats, !shared);
    g->bytes += 2 * g->rows * 4;
    return TLM_OK;
}

/* The activation (shared buffer) of `inputs` projections: its gradient
 * and its inputs' are held together. */
static void count_hidden(graph_bytes *g, double inputs) {
    const double floats = g->rows * g->config->d_ff;
    if (floats * 4 > g->hidden)
        g->hidden = floats * 4;
    count_grad(g, floats, 1 + inputs);
}

static int count_gelu(void *exec, int out, int in, int exact) {
    (void)out, (void)in, (void)exact;
    count_hidden(exec, 1);
    return TLM_OK;
}

static int count_relu(void *exec, int out, int in) {
    (void)out, (void)in;
    count_hidden(exec, 1);
    return TLM_OK;
}

static int count_swiglu(void *exec, int out, int gate, int up) {
    (void)out, (void)gate, (void)up;
    count_hidden(exec, 2);
    return TLM_OK;
}

/* The residual add's result is the stream's next value (its gradient
 * counts in the next sublayer); the branch's gradient is replaced by the
 * stream's before the branch is differentiated. */
static int count_add(void *exec, int out, int a, int b) {
    (void)out, (void)a;
    graph_bytes *g = exec;
    const double floats = g->rows * g->config->d_model;
    if (b != TLMI_SLOT_BRANCH)
        g->bytes += floats * 4;
    count_sublayer_end(g);
    return TLM_OK;
}

/* The result (written over the branch's projection) and the one-byte
 * keep mask. */
static int count_dropout(void *exec, int slot, float rate) {
    (void)rate;
    graph_bytes *g = exec;
    count_result(g, g->rows * g->config->d_model, slot != TLMI_SLOT_BRANCH);
    g->bytes += g->rows * g->config->d_model;
    return TLM_OK;
}

/* Queries and keys have the same rows (cross-attention: the source as
 * long as the target). Without rotary positions the heads are used in
 * place (see forward.c: graph_attend()); with them, split, rotated and
 * merged back. */
static int count_attend(void *exec, const tlmi_attention_site *site) {
    graph_bytes *g = exec;
    const tlm_model_config *c = g->config;
    const double n = g->rows, m = g->rows;
    const double inner = (double)c->n_heads * c->head_dim, heads = c->n_heads;
    const double kv_inner = (double)c->n_kv_heads * c->head_dim;
    if (site->rotary) {
        count_result(g, n * inner + 2 * m * kv_inner, 1); /* split heads */
        count_result(g, n * inner + m * kv_inner, 1);     /* rotated */
        g->bytes += (n + m) * c->head_dim * 4;            /* rotation table */
        count_result(g, n * inner, 1);                    /* merged heads */
    }
    count_result(g, n * inner, 1); /* attention output */
    count_grad(g, n * inner, 1);   /* the queries' gradient */
    count_grad(g, m * kv_inner, 2); /* the keys' and values' */
    /* log-sum-exp, backward scratch, padding flags (bytes, rounded up) */
    g->bytes += (2 * n * heads + n * heads + m / g->batch) * 4;
    return TLM_OK;
}

static const tlmi_layer_backend count_backend = {
    .linear = count_linear,
    .layer_norm = count_norm,
    .rms_norm = count_norm,
    .gelu = count_gelu,
    .relu = count_relu,
    .swiglu = count_swiglu,
    .add = count_add,
    .dropout = count_dropout,
    .store_keys_values = NULL,
    .attend = count_attend,
    .cross_keys_values_kept = 0,
};

/* Bytes of a stack's layers and final norm in the training graph; *grads
 * the pooled gradients its backward pass holds at most. */
static double stack_bytes(const tlm_model *model, const tlmi_layer_params *layers,
                          int32_t count, const tlmi_norm_params *final_norm,
                          int decoder, double rows, double batch,
                          double *grads) {
    const tlm_model_config *c = &model->config;
    graph_bytes g = {.config = c, .rows = rows, .batch = batch};
    const tlmi_layer_run run = {
        .backend = &count_backend, .exec = &g, .config = c,
        .causal = decoder, .cross = decoder && c->n_encoder_layers > 0};
    int result;
    count_grad(&g, rows * c->d_model, 2);
    tlmi_layer_stack(&run, layers, count);
    tlmi_layer_final_norm(&run, final_norm, TLMI_SLOT_X, &result);
    count_sublayer_end(&g);
    *grads = 0;
    for (int i = 0; i < g.n_grad_sizes; i++)
        *grads += g.grad_peak[i] * 4;
    return g.bytes + g.normed + g.hidden;
}

TLM_API int tlm_model_memory_estimate(const tlm_model *model, int32_t purpose,
                                      int32_t batch, int32_t context,
                                      int64_t *bytes) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_memory_estimate", model);
    TLMI_CHECK_OUT(NULL, "tlm_model_memory_estimate", bytes, 0);
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
    /* What the parameters take: 4 bytes a value, or a quantized matrix's
     * own bytes. */
    double parameter_bytes = 0;
    for (int32_t i = 0; i < model->n_parameters; i++)
        parameter_bytes += (double)tlmi_tensor_data_bytes(model->parameters[i].tensor);
    const double d = c->d_model, v = c->vocab_size, t = context;
    double total;
    if (purpose == TLM_MEMORY_INFERENCE) {
        /* The parameters and what a session (with the context's threads
         * and `context` rows per chunk) allocates, from the function that
         * lays it out. The kernel table is taken once, as a session does. */
        const int32_t chunk = context < TLMI_SESSION_DEFAULT_CHUNK
                                  ? context
                                  : TLMI_SESSION_DEFAULT_CHUNK;
        const size_t session =
            tlmi_session_bytes(model, model->ctx->kernels, chunk, 0);
        total = parameter_bytes + (session == SIZE_MAX ? 1e19 : (double)session);
    } else {
        const double n = (double)batch * t;
        /* Parameters, their gradients and AdamW's two moments. */
        total = parameters * 16;
        /* Embedding, positions and embedding dropout, per stack input
         * (their gradients come from the pool, counted with the stacks'). */
        double embed = n * d * 4;
        if (c->position == TLM_POSITION_LEARNED)
            embed += (t * d + n * d) * 4;
        else if (c->position == TLM_POSITION_SINUSOIDAL)
            embed += n * d * 4 + t * d * 4;
        if (c->embedding_dropout > 0)
            embed += n * d * 4 + n * d;
        double encoder_grads = 0, decoder_grads = 0;
        if (c->n_encoder_layers > 0)
            total += embed + stack_bytes(model, model->encoder,
                                         c->n_encoder_layers,
                                         &model->encoder_final_norm, 0, n,
                                         batch, &encoder_grads);
        if (c->n_decoder_layers > 0)
            total += embed + stack_bytes(model, model->decoder,
                                         c->n_decoder_layers,
                                         &model->decoder_final_norm, 1, n,
                                         batch, &decoder_grads);
        /* The gradient pool: the larger stack's; an encoder-decoder's
         * decoder holds the memory's gradient besides. */
        total += encoder_grads > decoder_grads ? encoder_grads : decoder_grads;
        if (c->n_encoder_layers > 0 && c->n_decoder_layers > 0)
            total += n * d * 4;
        /* Logits, values and gradients, and the loss's saved rows. */
        total += 2 * n * v * 4 + n * 8;
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
    if (status != TLM_OK)
        return tlmi_fail_forward(&model->ctx->host, status, "%s", what);
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
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_set_tokenizer", model);
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
