/*
 * The transformer layer of layer.h: the one place where a sublayer's norm,
 * projections, activation and residual are chosen (docs/model.md is the
 * specification).
 */
#include "layer.h"

#include "base/error.h"

static int norm(const tlmi_layer_run *run, int out, int in,
                const tlmi_norm_params *p) {
    if (run->config->norm == TLM_NORM_RMS)
        return run->backend->rms_norm(run->exec, out, in, p);
    return run->backend->layer_norm(run->exec, out, in, p);
}

int tlmi_layer_keys_values(const tlmi_layer_run *run,
                           const tlmi_attention_params *p, int source,
                           const tlmi_attention_site *site) {
    const tlmi_layer_backend *b = run->backend;
    TLMI_TRY(b->linear(run->exec, TLMI_SLOT_K, source, p->k_weight, p->k_bias));
    TLMI_TRY(b->linear(run->exec, TLMI_SLOT_V, source, p->v_weight, p->v_bias));
    if (b->store_keys_values != NULL)
        TLMI_TRY(b->store_keys_values(run->exec, site));
    return TLM_OK;
}

/* BRANCH = attention of `in`'s queries over the site's keys and values,
 * projected from `in` (self-attention) or the memory (cross-attention). */
static int attention(const tlmi_layer_run *run, int in,
                     const tlmi_attention_params *p,
                     const tlmi_attention_site *site) {
    const tlmi_layer_backend *b = run->backend;
    TLMI_TRY(b->linear(run->exec, TLMI_SLOT_Q, in, p->q_weight, p->q_bias));
    if (!site->cross || !b->cross_keys_values_kept)
        TLMI_TRY(tlmi_layer_keys_values(
            run, p, site->cross ? TLMI_SLOT_MEMORY : in, site));
    TLMI_TRY(b->attend(run->exec, site));
    return b->linear(run->exec, TLMI_SLOT_BRANCH, TLMI_SLOT_MERGED, p->o_weight,
                     p->o_bias);
}

/* BRANCH = the position-wise feedforward of `in`. */
static int feedforward(const tlmi_layer_run *run, int in,
                       const tlmi_ffn_params *p) {
    const tlmi_layer_backend *b = run->backend;
    void *e = run->exec;
    TLMI_TRY(b->linear(e, TLMI_SLOT_UP, in, p->up_weight, p->up_bias));
    switch (run->config->activation) {
    case TLM_ACTIVATION_SWIGLU:
        TLMI_TRY(
            b->linear(e, TLMI_SLOT_GATE, in, p->gate_weight, p->gate_bias));
        TLMI_TRY(b->swiglu(e, TLMI_SLOT_HIDDEN, TLMI_SLOT_GATE, TLMI_SLOT_UP));
        break;
    case TLM_ACTIVATION_RELU:
        TLMI_TRY(b->relu(e, TLMI_SLOT_HIDDEN, TLMI_SLOT_UP));
        break;
    case TLM_ACTIVATION_GELU_EXACT:
        TLMI_TRY(b->gelu(e, TLMI_SLOT_HIDDEN, TLMI_SLOT_UP, 1));
        break;
    default:
        TLMI_TRY(b->gelu(e, TLMI_SLOT_HIDDEN, TLMI_SLOT_UP, 0));
    }
    return b->linear(e, TLMI_SLOT_BRANCH, TLMI_SLOT_HIDDEN, p->down_weight,
                     p->down_bias);
}

/* The sublayer kinds, in the order a layer runs them. */
enum sublayer { SELF_ATTENTION, CROSS_ATTENTION, FEEDFORWARD };

/* One residual sublayer with its norm: pre-norm X + f(norm(X)), post-norm
 * norm(X + f(X)). */
static int sublayer(const tlmi_layer_run *run, const tlmi_layer_params *layer,
                    int32_t index, enum sublayer kind) {
    const tlmi_layer_backend *b = run->backend;
    const tlm_model_config *c = run->config;
    const int pre = c->norm_placement == TLM_NORM_PRE;
    const tlmi_norm_params *n = kind == SELF_ATTENTION ? &layer->self_attn_norm
                                : kind == CROSS_ATTENTION
                                    ? &layer->cross_attn_norm
                                    : &layer->ffn_norm;
    int in = TLMI_SLOT_X;
    if (pre) {
        TLMI_TRY(norm(run, TLMI_SLOT_NORMED, TLMI_SLOT_X, n));
        in = TLMI_SLOT_NORMED;
    }
    if (kind == FEEDFORWARD) {
        TLMI_TRY(feedforward(run, in, &layer->ffn));
    } else {
        const int cross = kind == CROSS_ATTENTION;
        const tlmi_attention_site site = {
            .layer = index,
            .cross = cross,
            .causal = !cross && run->causal,
            .rotary = !cross && c->position == TLM_POSITION_ROTARY};
        TLMI_TRY(attention(
            run, in, cross ? &layer->cross_attn : &layer->self_attn, &site));
    }
    if (b->dropout != NULL && c->residual_dropout > 0.0f)
        TLMI_TRY(b->dropout(run->exec, TLMI_SLOT_BRANCH, c->residual_dropout));
    TLMI_TRY(b->add(run->exec, TLMI_SLOT_X, TLMI_SLOT_X, TLMI_SLOT_BRANCH));
    if (!pre)
        TLMI_TRY(norm(run, TLMI_SLOT_X, TLMI_SLOT_X, n));
    return TLM_OK;
}

int tlmi_layer_forward(const tlmi_layer_run *run,
                       const tlmi_layer_params *layer, int32_t index) {
    TLMI_TRY(sublayer(run, layer, index, SELF_ATTENTION));
    if (run->cross)
        TLMI_TRY(sublayer(run, layer, index, CROSS_ATTENTION));
    return sublayer(run, layer, index, FEEDFORWARD);
}

int tlmi_layer_stack(const tlmi_layer_run *run,
                     const tlmi_layer_params *layers, int32_t count) {
    for (int32_t i = 0; i < count; i++)
        TLMI_TRY(tlmi_layer_forward(run, &layers[i], i));
    return TLM_OK;
}

int tlmi_layer_final_norm(const tlmi_layer_run *run,
                          const tlmi_norm_params *final_norm, int out,
                          int *result) {
    *result = TLMI_SLOT_X;
    if (run->config->norm_placement != TLM_NORM_PRE)
        return TLM_OK;
    TLMI_TRY(norm(run, out, TLMI_SLOT_X, final_norm));
    *result = out;
    return TLM_OK;
}
