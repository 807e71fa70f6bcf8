/*
 * The transformer's training forward pass, built from the public
 * operations so that tlm_backward() differentiates it: docs/model.md is the
 * specification, and each function below is one named part of it.
 */
#include <stdio.h>
#include <string.h>

#include "context.h"
#include "error.h"
#include "model.h"
#include "params.h"
#include "tensor.h"

/* Every step below stops at the first failure: the failing operation has
 * already recorded its message on the context. */
#define TRY(call)                  \
    do {                           \
        int status_ = (call);      \
        if (status_ != TLM_OK)     \
            return status_;        \
    } while (0)

/* x [B, T, in] -> x W^T + b [B, T, out] */
static int linear(tlm_tensor **out, tlm_tensor *x, tlm_tensor *weight,
                  tlm_tensor *bias) {
    return tlm_matmul(out, x, weight, bias, TLM_MATMUL_TRANSPOSE_B);
}

static int norm(const tlm_model *m, tlm_tensor **out, tlm_tensor *x,
                const tlmi_norm_params *p) {
    if (m->config.norm == TLM_NORM_RMS)
        return tlm_rms_norm(out, x, p->weight, m->config.norm_eps);
    return tlm_layer_norm(out, x, p->weight, p->bias, m->config.norm_eps);
}

static int dropout(tlm_tensor **x, float rate) {
    if (rate <= 0.0f)
        return TLM_OK;
    return tlm_dropout(x, *x, rate);
}

/* Multi-head attention: queries from x [B, Tq, D], keys and values from kv
 * [B, Tk, D] (kv == x for self-attention). key_mask [B, Tk] or NULL. */
static int attention(const tlm_model *m, tlm_tensor **out, tlm_tensor *x,
                     tlm_tensor *kv, const tlmi_attention_params *p,
                     tlm_tensor *key_mask, int causal, int rotary) {
    const tlm_model_config *c = &m->config;
    const int32_t flags = causal ? TLM_ATTENTION_CAUSAL : 0;
    tlm_tensor *q, *k, *v, *heads, *merged;
    TRY(linear(&q, x, p->q_weight, p->q_bias));  /* [B, Tq, H*hd] */
    TRY(linear(&k, kv, p->k_weight, p->k_bias)); /* [B, Tk, H*hd] */
    TRY(linear(&v, kv, p->v_weight, p->v_bias));
    if (!rotary) {
        TRY(tlm_multi_head_attention(&merged, q, k, v, key_mask, c->n_heads,
                                     flags)); /* [B, Tq, H*hd] */
        return linear(out, merged, p->o_weight, p->o_bias);
    }
    /* Rotary positions rotate each head's own dimensions: split first. */
    TRY(tlm_split_heads(&q, q, c->n_heads)); /* [B, H, Tq, hd] */
    TRY(tlm_split_heads(&k, k, c->n_heads)); /* [B, H, Tk, hd] */
    TRY(tlm_split_heads(&v, v, c->n_heads));
    TRY(tlm_rope(&q, q, 0, c->rope_base));
    TRY(tlm_rope(&k, k, 0, c->rope_base));
    TRY(tlm_attention(&heads, q, k, v, key_mask, flags));
    TRY(tlm_merge_heads(&merged, heads)); /* [B, Tq, H*hd] */
    return linear(out, merged, p->o_weight, p->o_bias);
}

/* Position-wise feedforward: x [B, T, D] -> [B, T, D]. */
static int feedforward(const tlm_model *m, tlm_tensor **out, tlm_tensor *x,
                       const tlmi_ffn_params *p) {
    tlm_tensor *up, *hidden;
    TRY(linear(&up, x, p->up_weight, p->up_bias)); /* [B, T, F] */
    switch (m->config.activation) {
    case TLM_ACTIVATION_SWIGLU: {
        tlm_tensor *gate;
        TRY(linear(&gate, x, p->gate_weight, p->gate_bias));
        TRY(tlm_swiglu(&hidden, gate, up));
        break;
    }
    case TLM_ACTIVATION_RELU:
        TRY(tlm_relu(&hidden, up));
        break;
    case TLM_ACTIVATION_GELU_EXACT:
        TRY(tlm_gelu(&hidden, up, TLM_GELU_EXACT));
        break;
    default:
        TRY(tlm_gelu(&hidden, up, TLM_GELU_TANH));
    }
    return linear(out, hidden, p->down_weight, p->down_bias);
}

/* The sub-layer kinds of a transformer layer. */
enum sublayer { SELF_ATTENTION, CROSS_ATTENTION, FEEDFORWARD };

typedef struct layer_inputs {
    tlm_tensor *self_mask;  /* key padding mask of self-attention, or NULL */
    int causal;             /* decoder self-attention */
    tlm_tensor *memory;     /* encoder output, for cross-attention */
    tlm_tensor *memory_mask;
} layer_inputs;

/* One residual sub-layer with its norm: pre-norm x + f(norm(x)), post-norm
 * norm(x + f(x)). */
static int sublayer(const tlm_model *m, tlm_tensor **x,
                    const tlmi_layer_params *layer, enum sublayer kind,
                    const layer_inputs *in) {
    const int pre = m->config.norm_placement == TLM_NORM_PRE;
    const tlmi_norm_params *n = kind == SELF_ATTENTION    ? &layer->self_attn_norm
                                : kind == CROSS_ATTENTION ? &layer->cross_attn_norm
                                                          : &layer->ffn_norm;
    tlm_tensor *input = *x, *f;
    if (pre)
        TRY(norm(m, &input, *x, n));
    switch (kind) {
    case SELF_ATTENTION:
        TRY(attention(m, &f, input, input, &layer->self_attn, in->self_mask,
                      in->causal, m->config.position == TLM_POSITION_ROTARY));
        break;
    case CROSS_ATTENTION:
        TRY(attention(m, &f, input, in->memory, &layer->cross_attn,
                      in->memory_mask, 0, 0));
        break;
    default:
        TRY(feedforward(m, &f, input, &layer->ffn));
    }
    TRY(dropout(&f, m->config.residual_dropout));
    TRY(tlm_add(x, *x, f));
    if (!pre)
        TRY(norm(m, x, *x, n));
    return TLM_OK;
}

/* Token embedding plus position encoding: ids [B, T] -> [B, T, D]. */
static int embed(const tlm_model *m, tlm_tensor **out, tlm_tensor *ids) {
    TRY(tlm_embedding(out, m->token_embedding, ids));
    const int64_t t = tlm_tensor_dim(ids, 1);
    if (m->config.position == TLM_POSITION_LEARNED) {
        tlm_tensor *positions; /* rows 0..T of the table: [T, D] */
        TRY(tlm_slice(&positions, m->position_embedding, 0, 0, t));
        TRY(tlm_add(out, *out, positions));
    } else if (m->config.position == TLM_POSITION_SINUSOIDAL) {
        TRY(tlm_add_sinusoidal_positions(out, *out, 0));
    }
    return dropout(out, m->config.embedding_dropout);
}

/* A stack of layers over x, then its final norm when pre-norm. */
static int stack(const tlm_model *m, tlm_tensor **x,
                 const tlmi_layer_params *layers, int32_t count,
                 const tlmi_norm_params *final_norm, const layer_inputs *in) {
    for (int32_t i = 0; i < count; i++) {
        TRY(sublayer(m, x, &layers[i], SELF_ATTENTION, in));
        if (in->memory != NULL)
            TRY(sublayer(m, x, &layers[i], CROSS_ATTENTION, in));
        TRY(sublayer(m, x, &layers[i], FEEDFORWARD, in));
    }
    if (m->config.norm_placement == TLM_NORM_PRE)
        TRY(norm(m, x, *x, final_norm));
    return TLM_OK;
}

/* Checks one i32 [B, T] input of the batch. */
static int check_ids(tlm_model *m, const char *field, tlm_tensor *t,
                     int64_t batch, int64_t length) {
    char what[96];
    snprintf(what, sizeof what, "tlm_model_forward: batch->%s", field);
    int status = tlmi_tensor_check(t, what);
    if (status != TLM_OK)
        return status;
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

TLM_API int tlm_batch_init(tlm_batch *batch) {
    if (batch == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_batch_init: batch is NULL");
    memset(batch, 0, sizeof *batch);
    batch->struct_size = sizeof *batch;
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
                                m == NULL ? "model" : given == NULL ? "batch" : "logits");
    tlm_batch batch;
    tlm_batch_init(&batch);
    TRY(tlmi_params_merge(&m->ctx->host, "tlm_model_forward: batch", &batch,
                          sizeof batch, given));
    const tlm_model_config *c = &m->config;
    const int has_encoder = c->n_encoder_layers > 0;
    const int has_decoder = c->n_decoder_layers > 0;
    TRY(check_ids(m, "ids", batch.ids, 0, 0));
    const int64_t b = batch.ids->shape[0], t = batch.ids->shape[1];
    if (batch.targets != NULL)
        TRY(check_ids(m, "targets", batch.targets, b, t));
    if (batch.mask != NULL) {
        if (has_decoder)
            return tlmi_fail(&m->ctx->host, TLM_E_INVALID,
                             "tlm_model_forward: batch->mask is for encoder-only "
                             "models; a decoder's own input is causal");
        TRY(check_ids(m, "mask", batch.mask, b, t));
    }
    if (has_encoder && has_decoder) {
        if (batch.src_ids == NULL)
            return tlmi_fail(&m->ctx->host, TLM_E_INVALID,
                             "tlm_model_forward: batch->src_ids is NULL (an "
                             "encoder-decoder model needs a source)");
        TRY(check_ids(m, "src_ids", batch.src_ids, b, 0));
        if (batch.src_mask != NULL)
            TRY(check_ids(m, "src_mask", batch.src_mask, b,
                          batch.src_ids->shape[1]));
    } else if (batch.src_ids != NULL || batch.src_mask != NULL) {
        return tlmi_fail(&m->ctx->host, TLM_E_INVALID,
                         "tlm_model_forward: batch->src_ids/src_mask are for "
                         "encoder-decoder models");
    }

    tlm_tensor *y;
    if (has_encoder && !has_decoder) {
        layer_inputs in = {batch.mask, 0, NULL, NULL};
        TRY(embed(m, &y, batch.ids));
        TRY(stack(m, &y, m->encoder, c->n_encoder_layers,
                  &m->encoder_final_norm, &in));
    } else {
        layer_inputs in = {NULL, 1, NULL, batch.src_mask};
        if (has_encoder) {
            layer_inputs enc_in = {batch.src_mask, 0, NULL, NULL};
            tlm_tensor *memory;
            TRY(embed(m, &memory, batch.src_ids));
            TRY(stack(m, &memory, m->encoder, c->n_encoder_layers,
                      &m->encoder_final_norm, &enc_in));
            in.memory = memory;
        }
        TRY(embed(m, &y, batch.ids));
        TRY(stack(m, &y, m->decoder, c->n_decoder_layers,
                  &m->decoder_final_norm, &in));
    }
    tlm_tensor *head = c->tied_output ? m->token_embedding : m->lm_head;
    TRY(tlm_matmul(logits, y, head, NULL, TLM_MATMUL_TRANSPOSE_B)); /* [B, T, V] */
    if (batch.targets != NULL && loss != NULL)
        TRY(tlm_cross_entropy(loss, *logits, batch.targets, -1));
    return TLM_OK;
}
