/*
 * The transformer's training forward pass, built from the public
 * operations so that tlm_backward() differentiates it: the embedding and
 * output projection here, the layers walked from layer.c with a backend of
 * autodiff operations (docs/model.md is the specification).
 */
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/graph.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "base/params.h"
#include "kernels/weights.h"
#include "layer.h"
#include "model.h"

/* A quantized model's matrix [rows, cols] as a float32 result on the
 * tape: the graph's operations take float32, and a quantized matrix
 * has no gradient, so nothing flows back through it. */
static int dequantize_forward(tlm_tensor *out) {
    const tlmi_weights w = tlmi_tensor_weights(out->src[0]);
    tlmi_weights_dequantize_rows(out->data, &w, 0, w.rows);
    return TLM_OK;
}

static void dequantize_backward(tlm_tensor *out) { (void)out; }

static const tlmi_op dequantize_op = {"tlm_model_forward: dequantize",
                                      dequantize_forward, dequantize_backward};

/* *out = the parameter `weight` (or NULL) as float32: itself, or its
 * dequantized values. */
static int float_weight(tlm_tensor **out, tlm_tensor *weight) {
    *out = weight;
    if (weight == NULL || weight->dtype == TLM_DTYPE_F32)
        return TLM_OK;
    tlm_tensor *result = NULL;
    int status = tlmi_result_begin(&result, weight->ctx, &dequantize_op,
                                   TLM_DTYPE_F32, 2, weight->shape, &weight, 1);
    return tlmi_result_finish(out, result, status);
}

/* The training graph's layer backend (layer.h): each slot holds a tensor
 * [B, T, width]; each primitive is one public operation, which records
 * itself for tlm_backward(). */
typedef struct graph_exec {
    const tlm_model *model;
    tlm_tensor *slots[TLMI_SLOT_COUNT];
    tlm_tensor *self_mask;   /* self-attention's padding mask [B, T] or NULL */
    tlm_tensor *memory_mask; /* cross-attention's [B, S], or NULL */
    /* The owners of the buffers that the layers' pre-norm outputs and
     * activations share (their values are recomputed when read again:
     * autodiff/tensor.h), NULL until the first is made. */
    tlm_tensor *normed_buffer;
    tlm_tensor *hidden_buffer;
} graph_exec;

/* The buffer a result written to `slot` shares, or NULL when it keeps its
 * own. Only results that are cheap to recompute from inputs the graph
 * keeps share one: a pre-norm sublayer's normalized input (read by its
 * projections) and the feedforward's activation (read by its down
 * projection); recomputing them costs a norm and an activation per layer
 * in backward (under 0.5% of a step's FLOPs at width 384). Post-norm
 * outputs are the residual stream (slot X), kept. */
static tlm_tensor **shared_buffer(graph_exec *g, int slot) {
    if (slot == TLMI_SLOT_NORMED)
        return &g->normed_buffer;
    if (slot == TLMI_SLOT_HIDDEN)
        return &g->hidden_buffer;
    return NULL;
}

/* Ends an operation on `slot` made with shared_buffer's group set. */
static int recomputed(graph_exec *g, int status) {
    g->model->ctx->recompute_group = NULL;
    return status;
}

static void begin_recomputed(graph_exec *g, int slot) {
    g->model->ctx->recompute_group = shared_buffer(g, slot);
}

static int graph_linear(void *exec, int out, int in, tlm_tensor *weight,
                        tlm_tensor *bias) {
    graph_exec *g = exec;
    TLMI_TRY(float_weight(&weight, weight));
    return tlm_matmul(&g->slots[out], g->slots[in], weight, bias,
                      TLM_MATMUL_TRANSPOSE_B);
}

static int graph_layer_norm(void *exec, int out, int in,
                            const tlmi_norm_params *p) {
    graph_exec *g = exec;
    begin_recomputed(g, out);
    return recomputed(g, tlm_layer_norm(&g->slots[out], g->slots[in],
                                        p->weight, p->bias,
                                        g->model->config.norm_eps));
}

static int graph_rms_norm(void *exec, int out, int in,
                          const tlmi_norm_params *p) {
    graph_exec *g = exec;
    begin_recomputed(g, out);
    return recomputed(g, tlm_rms_norm(&g->slots[out], g->slots[in], p->weight,
                                      g->model->config.norm_eps));
}

static int graph_gelu(void *exec, int out, int in, int exact) {
    graph_exec *g = exec;
    begin_recomputed(g, out);
    return recomputed(g, tlm_gelu(&g->slots[out], g->slots[in],
                                  exact ? TLM_GELU_EXACT : TLM_GELU_TANH));
}

static int graph_relu(void *exec, int out, int in) {
    graph_exec *g = exec;
    begin_recomputed(g, out);
    return recomputed(g, tlm_relu(&g->slots[out], g->slots[in]));
}

static int graph_swiglu(void *exec, int out, int gate, int up) {
    graph_exec *g = exec;
    begin_recomputed(g, out);
    return recomputed(g, tlm_swiglu(&g->slots[out], g->slots[gate],
                                    g->slots[up]));
}

/* The residual add X + BRANCH writes over BRANCH: the sublayer's output
 * projection (or its dropout), which nothing reads after the add (the
 * add's backward pass and the projection's read no values of it). */
static int graph_add(void *exec, int out, int a, int b) {
    graph_exec *g = exec;
    tlm_context *ctx = g->model->ctx;
    const tlmi_op *branch_op = g->slots[b]->op;
    if (b == TLMI_SLOT_BRANCH && a != b && branch_op != NULL &&
        (strcmp(branch_op->name, "tlm_matmul") == 0 ||
         strcmp(branch_op->name, "tlm_dropout") == 0))
        ctx->in_place_of = g->slots[b];
    const int status = tlm_add(&g->slots[out], g->slots[a], g->slots[b]);
    ctx->in_place_of = NULL;
    return status;
}

/* Dropout of a sublayer's branch writes over the projection's output,
 * which nothing reads after it (dropout's backward pass reads its mask,
 * the projection's its inputs). */
static int graph_dropout(void *exec, int slot, float rate) {
    graph_exec *g = exec;
    tlm_context *ctx = g->model->ctx;
    const tlmi_op *branch_op = g->slots[slot]->op;
    if (slot == TLMI_SLOT_BRANCH && branch_op != NULL &&
        strcmp(branch_op->name, "tlm_matmul") == 0)
        ctx->in_place_of = g->slots[slot];
    const int status = tlm_dropout(&g->slots[slot], g->slots[slot], rate);
    ctx->in_place_of = NULL;
    return status;
}

/* Multi-head attention of Q [B, Tq, H*hd] over K, V [B, Tk, Hkv*hd]
 * (grouped-query attention when Hkv < H: the operations read each shared
 * key/value head in place). */
static int graph_attend(void *exec, const tlmi_attention_site *site) {
    graph_exec *g = exec;
    const tlm_model_config *c = &g->model->config;
    const int32_t flags = site->causal ? TLM_ATTENTION_CAUSAL : 0;
    tlm_tensor *mask = site->cross ? g->memory_mask : g->self_mask;
    tlm_tensor *q = g->slots[TLMI_SLOT_Q], *k = g->slots[TLMI_SLOT_K];
    tlm_tensor *v = g->slots[TLMI_SLOT_V], *heads;
    if (!site->rotary)
        return tlm_multi_head_attention(&g->slots[TLMI_SLOT_MERGED], q, k, v,
                                        mask, c->n_heads, flags);
    /* Rotary positions rotate each head's own dimensions: split first. */
    TLMI_TRY(tlm_split_heads(&q, q, c->n_heads)); /* [B, H, Tq, hd] */
    TLMI_TRY(tlm_split_heads(&k, k, c->n_kv_heads)); /* [B, Hkv, Tk, hd] */
    TLMI_TRY(tlm_split_heads(&v, v, c->n_kv_heads));
    TLMI_TRY(tlm_rope(&q, q, 0, c->rope_base));
    TLMI_TRY(tlm_rope(&k, k, 0, c->rope_base));
    TLMI_TRY(tlm_attention(&heads, q, k, v, mask, flags));
    return tlm_merge_heads(&g->slots[TLMI_SLOT_MERGED],
                           heads); /* [B, Tq, H*hd] */
}

static const tlmi_layer_backend graph_backend = {
    .linear = graph_linear,
    .layer_norm = graph_layer_norm,
    .rms_norm = graph_rms_norm,
    .gelu = graph_gelu,
    .relu = graph_relu,
    .swiglu = graph_swiglu,
    .add = graph_add,
    .dropout = graph_dropout,
    .store_keys_values = NULL,
    .attend = graph_attend,
    .cross_keys_values_kept = 0,
};

static int dropout(tlm_tensor **x, float rate) {
    if (rate <= 0.0f)
        return TLM_OK;
    return tlm_dropout(x, *x, rate);
}

/* Token embedding plus position encoding: ids [B, T] -> [B, T, D].
 * `tokens` is the token embedding [V, D] as float32 (float_weight), made
 * once per forward: source, target and a tied output layer share it. */
static int embed(const tlm_model *m, tlm_tensor *tokens, tlm_tensor **out,
                 tlm_tensor *ids) {
    TLMI_TRY(tlm_embedding(out, tokens, ids));
    const int64_t t = tlm_tensor_dim(ids, 1);
    if (m->config.position == TLM_POSITION_LEARNED) {
        tlm_tensor *table, *positions; /* rows 0..T of the table: [T, D] */
        TLMI_TRY(float_weight(&table, m->position_embedding));
        TLMI_TRY(tlm_slice(&positions, table, 0, 0, t));
        TLMI_TRY(tlm_add(out, *out, positions));
    } else if (m->config.position == TLM_POSITION_SINUSOIDAL) {
        TLMI_TRY(tlm_add_sinusoidal_positions(out, *out, 0));
    }
    return dropout(out, m->config.embedding_dropout);
}

/* A stack of layers over *x [B, T, D], then its final norm when pre-norm:
 * memory (the encoder's output) given for cross-attention. */
static int stack(const tlm_model *m, tlm_tensor **x,
                 const tlmi_layer_params *layers, int32_t count,
                 const tlmi_norm_params *final_norm, int causal,
                 tlm_tensor *self_mask, tlm_tensor *memory,
                 tlm_tensor *memory_mask) {
    graph_exec g = {
        .model = m, .self_mask = self_mask, .memory_mask = memory_mask};
    g.slots[TLMI_SLOT_X] = *x;
    g.slots[TLMI_SLOT_MEMORY] = memory;
    const tlmi_layer_run run = {.backend = &graph_backend, .exec = &g,
                                .config = &m->config, .causal = causal,
                                .cross = memory != NULL};
    TLMI_TRY(tlmi_layer_stack(&run, layers, count));
    int result;
    TLMI_TRY(tlmi_layer_final_norm(&run, final_norm, TLMI_SLOT_X, &result));
    *x = g.slots[result];
    return TLM_OK;
}

/* Checks one i32 [B, T] input of the batch. */
static int check_ids(tlm_model *m, const char *field, tlm_tensor *t,
                     int64_t batch, int64_t length) {
    char what[96];
    snprintf(what, sizeof what, "tlm_model_forward: batch->%s", field);
    TLMI_TRY(tlmi_tensor_check(t, what));
    char shape[64];
    if (t->ctx != m->ctx)
        return tlmi_fail(&m->ctx->host, TLM_E_INVALID,
                         "%s belongs to another context than the model", what);
    if (t->dtype != TLM_DTYPE_I32 || t->ndim != 2 ||
        (batch > 0 && t->shape[0] != batch) ||
        (length > 0 && t->shape[1] != length))
        return tlmi_fail(&m->ctx->host, TLM_E_SHAPE,
                         "%s %s must be i32 [B, T]%s", what,
                         tlmi_shape_string(t, shape, sizeof shape),
                         batch > 0 ? " matching batch->ids" : "");
    if (t->shape[1] > m->config.max_context)
        return tlmi_fail(&m->ctx->host, TLM_E_RANGE,
                         "%s has length %lld, above max_context %d", what,
                         (long long)t->shape[1], (int)m->config.max_context);
    return TLM_OK;
}

static int layers_forward(tlm_model *m, const tlm_batch *given,
                          tlm_tensor **out, tlm_tensor **token_table);

TLM_API int tlm_batch_init(tlm_batch *batch) {
    TLMI_PARAMS_INIT("tlm_batch_init", batch);
    return TLM_OK;
}

TLM_API int tlm_model_forward(tlm_model *m, const tlm_batch *given,
                              tlm_tensor **logits, tlm_tensor **loss) {
    if (logits != NULL)
        *logits = NULL;
    if (loss != NULL)
        *loss = NULL;
    if (m == NULL || given == NULL || logits == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_model_forward: %s is NULL",
                                m == NULL       ? "model"
                                : given == NULL ? "batch"
                                                : "logits");
    tlm_batch batch;
    tlm_batch_init(&batch);
    TLMI_TRY(tlmi_params_merge(&m->ctx->host, "tlm_model_forward: batch",
                               &batch, sizeof batch, given));
    const tlm_model_config *c = &m->config;
    const int has_encoder = c->n_encoder_layers > 0;
    const int has_decoder = c->n_decoder_layers > 0;
    TLMI_TRY(check_ids(m, "ids", batch.ids, 0, 0));
    const int64_t b = batch.ids->shape[0], t = batch.ids->shape[1];
    if (batch.targets != NULL)
        TLMI_TRY(check_ids(m, "targets", batch.targets, b, t));
    if (batch.mask != NULL) {
        if (has_decoder)
            return tlmi_fail(
                &m->ctx->host, TLM_E_INVALID,
                "tlm_model_forward: batch->mask is for encoder-only "
                "models; a decoder's own input is causal");
        TLMI_TRY(check_ids(m, "mask", batch.mask, b, t));
    }
    if (has_encoder && has_decoder) {
        if (batch.src_ids == NULL)
            return tlmi_fail(&m->ctx->host, TLM_E_INVALID,
                             "tlm_model_forward: batch->src_ids is NULL (an "
                             "encoder-decoder model needs a source)");
        TLMI_TRY(check_ids(m, "src_ids", batch.src_ids, b, 0));
        if (batch.src_mask != NULL)
            TLMI_TRY(check_ids(m, "src_mask", batch.src_mask, b,
                               batch.src_ids->shape[1]));
    } else if (batch.src_ids != NULL || batch.src_mask != NULL) {
        return tlmi_fail(&m->ctx->host, TLM_E_INVALID,
                         "tlm_model_forward: batch->src_ids/src_mask are for "
                         "encoder-decoder models");
    }

    /* The layers' results are internal: their gradients are pooled
     * (autodiff/grad_pool.h). The logits and the loss, which the caller
     * gets, keep theirs. */
    tlm_tensor *y = NULL, *tokens = NULL;
    const int pooled = m->ctx->pool_result_grads;
    m->ctx->pool_result_grads = 1;
    int status = layers_forward(m, &batch, &y, &tokens);
    m->ctx->pool_result_grads = pooled;
    if (status != TLM_OK)
        return status;
    tlm_tensor *head = tokens;
    if (!c->tied_output)
        TLMI_TRY(float_weight(&head, m->lm_head));
    TLMI_TRY(tlm_matmul(logits, y, head, NULL,
                        TLM_MATMUL_TRANSPOSE_B)); /* [B, T, V] */
    if (batch.targets != NULL && loss != NULL)
        TLMI_TRY(tlm_cross_entropy(loss, *logits, batch.targets, -1));
    return TLM_OK;
}

/* The embeddings and the stacks of tlm_model_forward: *out [B, T, D] is
 * the last stack's output, *token_table the token embedding as float32. */
static int layers_forward(tlm_model *m, const tlm_batch *given,
                          tlm_tensor **out, tlm_tensor **token_table) {
    const tlm_batch batch = *given;
    const tlm_model_config *c = &m->config;
    const int has_encoder = c->n_encoder_layers > 0;
    const int has_decoder = c->n_decoder_layers > 0;
    tlm_tensor *y, *tokens;
    TLMI_TRY(float_weight(&tokens, m->token_embedding));
    *token_table = tokens;
    if (has_encoder && !has_decoder) {
        TLMI_TRY(embed(m, tokens, &y, batch.ids));
        TLMI_TRY(stack(m, &y, m->encoder, c->n_encoder_layers,
                       &m->encoder_final_norm, 0, batch.mask, NULL, NULL));
    } else {
        tlm_tensor *memory = NULL;
        if (has_encoder) {
            TLMI_TRY(embed(m, tokens, &memory, batch.src_ids));
            TLMI_TRY(stack(m, &memory, m->encoder, c->n_encoder_layers,
                           &m->encoder_final_norm, 0, batch.src_mask, NULL,
                           NULL));
        }
        TLMI_TRY(embed(m, tokens, &y, batch.ids));
        TLMI_TRY(stack(m, &y, m->decoder, c->n_decoder_layers,
                       &m->decoder_final_norm, 1, NULL, memory,
                       batch.src_mask));
    }
    *out = y;
    return TLM_OK;
}
