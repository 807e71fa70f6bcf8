/*
 * Attention maps: the softmax probabilities of one decoder layer's
 * self-attention, for looking at what a model attends to. The forward pass
 * runs the layers below the chosen one the plain way (explicit score
 * matrices, one head at a time) with the same reference kernels a session
 * uses; it is for pictures of short prompts, not for speed.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "context.h"
#include "error.h"
#include "kernels/scalar/activation.h"
#include "kernels/scalar/elementwise.h"
#include "kernels/scalar/embedding.h"
#include "kernels/scalar/matmul.h"
#include "kernels/scalar/norm.h"
#include "kernels/scalar/position.h"
#include "kernels/scalar/shape.h"
#include "model.h"
#include "tensor.h"

#define FN "tlm_model_attention_weights"

/* Work buffers for n positions, carved from one allocation. */
typedef struct map_work {
    const tlm_model *model;
    int64_t n;
    float *x;        /* [n, D] residual stream */
    float *normed;   /* [n, D] */
    float *mean;     /* [n] */
    float *rstd;     /* [n] */
    float *q;        /* [n, H*hd] */
    float *k;        /* [n, H*hd] */
    float *v;        /* [n, H*hd] */
    float *qh;       /* [H, n, hd] */
    float *kh;       /* [H, n, hd] */
    float *vh;       /* [H, n, hd] */
    float *attended; /* [H, n, hd] */
    float *merged;   /* [n, H*hd] */
    float *probs;    /* [H, n, n] */
    float *up;       /* [n, F] */
    float *gate;     /* [n, F] */
    float *hidden;   /* [n, F] */
    float *branch;   /* [n, D] */
    float *table;    /* [n, D] sinusoidal positions */
    float *rope_cos; /* [n, hd/2 + 1] */
    float *rope_sin; /* [n, hd/2 + 1] */
} map_work;

static const float *data_of(const tlm_tensor *t) {
    return t != NULL ? (const float *)t->data : NULL;
}

/* out [n, out_features] = in [n, in_features] . W^T + b */
static void linear(float *out, const float *in, const tlm_tensor *weight,
                   const tlm_tensor *bias, int64_t n) {
    tlmi_gemm(out, in, data_of(weight), data_of(bias), n, weight->shape[0],
              weight->shape[1], 0, 1, 0);
}

static void norm(map_work *w, float *out, const float *in,
                 const tlmi_norm_params *p) {
    const tlm_model_config *c = &w->model->config;
    if (c->norm == TLM_NORM_RMS)
        tlmi_rms_norm_forward(out, w->rstd, in, data_of(p->weight), w->n,
                              c->d_model, c->norm_eps);
    else
        tlmi_layer_norm_forward(out, w->mean, w->rstd, in, data_of(p->weight),
                                data_of(p->bias), w->n, c->d_model,
                                c->norm_eps);
}

/* probs [H, n, n] of causal self-attention of the input rows `in` [n, D];
 * with `out` not NULL also the attention block's output [n, D]. */
static void self_attention(map_work *w, float *out, const float *in,
                           const tlmi_attention_params *p, float *probs) {
    const tlm_model_config *c = &w->model->config;
    const int64_t n = w->n, h_count = c->n_heads, hd = c->head_dim;
    linear(w->q, in, p->q_weight, p->q_bias, n);
    linear(w->k, in, p->k_weight, p->k_bias, n);
    tlmi_split_heads_forward(w->qh, w->q, 1, n, h_count, hd);
    tlmi_split_heads_forward(w->kh, w->k, 1, n, h_count, hd);
    if (c->position == TLM_POSITION_ROTARY) {
        tlmi_rope_table(w->rope_cos, w->rope_sin, 0, n, hd,
                        (double)c->rope_base);
        tlmi_rope_forward(w->qh, w->qh, w->rope_cos, w->rope_sin, h_count, n, hd);
        tlmi_rope_forward(w->kh, w->kh, w->rope_cos, w->rope_sin, h_count, n, hd);
    }
    const double scale = 1.0 / sqrt((double)hd);
    for (int64_t h = 0; h < h_count; h++) {
        const float *qh = w->qh + h * n * hd, *kh = w->kh + h * n * hd;
        for (int64_t i = 0; i < n; i++) {
            float *row = probs + (h * n + i) * n;
            double max = -(double)INFINITY;
            for (int64_t j = 0; j <= i; j++) {
                double dot = 0.0;
                for (int64_t d = 0; d < hd; d++)
                    dot += (double)qh[i * hd + d] * (double)kh[j * hd + d];
                row[j] = (float)(dot * scale);
                if ((double)row[j] > max)
                    max = (double)row[j];
            }
            double sum = 0.0;
            for (int64_t j = 0; j <= i; j++) {
                const double e = exp((double)row[j] - max);
                row[j] = (float)e;
                sum += e;
            }
            for (int64_t j = 0; j <= i; j++)
                row[j] = (float)((double)row[j] / sum);
            for (int64_t j = i + 1; j < n; j++)
                row[j] = 0.0f; /* causal: later positions are not seen */
        }
    }
    if (out == NULL)
        return;
    linear(w->v, in, p->v_weight, p->v_bias, n);
    tlmi_split_heads_forward(w->vh, w->v, 1, n, h_count, hd);
    for (int64_t h = 0; h < h_count; h++)
        /* attended_h [n, hd] = probs_h [n, n] . v_h [n, hd] */
        tlmi_gemm(w->attended + h * n * hd, probs + h * n * n,
                  w->vh + h * n * hd, NULL, n, hd, n, 0, 0, 0);
    tlmi_merge_heads_forward(w->merged, w->attended, 1, h_count, n, hd);
    linear(out, w->merged, p->o_weight, p->o_bias, n);
}

static void feedforward(map_work *w, float *out, const float *in,
                        const tlmi_ffn_params *p) {
    const tlm_model_config *c = &w->model->config;
    const int64_t count = w->n * c->d_ff;
    linear(w->up, in, p->up_weight, p->up_bias, w->n);
    switch (c->activation) {
    case TLM_ACTIVATION_SWIGLU:
        linear(w->gate, in, p->gate_weight, p->gate_bias, w->n);
        tlmi_swiglu_forward(w->hidden, w->gate, w->up, count);
        break;
    case TLM_ACTIVATION_RELU:
        tlmi_relu_forward(w->hidden, w->up, count);
        break;
    case TLM_ACTIVATION_GELU_EXACT:
        tlmi_gelu_exact_forward(w->hidden, w->up, count);
        break;
    default:
        tlmi_gelu_tanh_forward(w->hidden, w->up, count);
    }
    linear(out, w->hidden, p->down_weight, p->down_bias, w->n);
}

/* x = x + f, then the post-norm when that is the placement. */
static void residual(map_work *w, const tlmi_norm_params *p) {
    const tlm_model_config *c = &w->model->config;
    const int64_t count = w->n * c->d_model;
    tlmi_add_forward(w->x, w->x, w->branch, count, count);
    if (c->norm_placement == TLM_NORM_POST)
        norm(w, w->x, w->x, p);
}

/* a * b into *out, false on overflow. */
static int mul_size(size_t a, size_t b, size_t *out) {
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

TLM_API int tlm_model_attention_weights(const tlm_model *model,
                                        const int32_t *ids, size_t n_ids,
                                        int32_t layer, float *weights) {
    /* A length past INT32_MAX is past any max_context: refused below. */
    const int32_t n = n_ids < INT32_MAX ? (int32_t)n_ids : INT32_MAX;
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, FN ": model is NULL");
    tlmi_host *host = &model->ctx->host;
    const tlm_model_config *c = &model->config;
    if (ids == NULL)
        return tlmi_fail(host, TLM_E_INVALID, FN ": ids is NULL");
    if (weights == NULL)
        return tlmi_fail(host, TLM_E_INVALID, FN ": weights is NULL");
    if (c->n_encoder_layers != 0 || c->n_decoder_layers < 1)
        return tlmi_fail(host, TLM_E_STATE,
                         FN ": the model is not decoder-only (%d encoder and "
                            "%d decoder layers)",
                         (int)c->n_encoder_layers, (int)c->n_decoder_layers);
    if (n < 1 || n > c->max_context)
        return tlmi_fail(host, TLM_E_RANGE,
                         FN ": n = %d is outside 1..%d (max_context)", (int)n,
                         (int)c->max_context);
    if (layer < 0 || layer >= c->n_decoder_layers)
        return tlmi_fail(host, TLM_E_RANGE,
                         FN ": layer %d is outside 0..%d", (int)layer,
                         (int)c->n_decoder_layers - 1);
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab_size)
            return tlmi_fail(host, TLM_E_RANGE,
                             FN ": ids[%d] = %d is outside 0..%d", (int)i,
                             (int)ids[i], (int)c->vocab_size - 1);

    /* Sizes in floats; every product is checked. */
    const size_t rows = (size_t)n, d = (size_t)c->d_model;
    const size_t inner = (size_t)c->n_heads * (size_t)c->head_dim;
    const size_t half = (size_t)c->head_dim / 2 + 1;
    size_t nd = 0, ni = 0, nf = 0, nn = 0, hnn = 0, nh = 0, total = 0;
    int ok = mul_size(rows, d, &nd) && mul_size(rows, inner, &ni) &&
             mul_size(rows, (size_t)c->d_ff, &nf) &&
             mul_size(rows, rows, &nn) &&
             mul_size(nn, (size_t)c->n_heads, &hnn) &&
             mul_size(rows, half, &nh);
    /* x, normed, branch, table: 4 nd; q, k, v, qh, kh, vh, attended,
     * merged: 8 ni; up, gate, hidden: 3 nf; probs; mean, rstd; rope. */
    const size_t parts[] = {nd, nd, nd, nd, ni, ni, ni, ni, ni, ni, ni, ni,
                            nf, nf, nf, hnn, rows, rows, nh, nh};
    for (size_t i = 0; ok && i < sizeof parts / sizeof parts[0]; i++) {
        ok = parts[i] <= SIZE_MAX - total;
        total += ok ? parts[i] : 0;
    }
    size_t bytes = 0;
    if (!ok || !mul_size(total, sizeof(float), &bytes))
        return tlmi_fail(host, TLM_E_OVERFLOW,
                         FN ": the work buffers for %d positions overflow "
                            "size_t",
                         (int)n);
    float *block = tlmi_host_alloc(host, bytes, 64);
    if (block == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         FN ": allocating %zu bytes of work buffers failed",
                         bytes);
    map_work w;
    w.model = model;
    w.n = n;
    float *next = block;
    float **fields[] = {&w.x, &w.normed, &w.branch, &w.table, &w.q, &w.k,
                        &w.v, &w.qh, &w.kh, &w.vh, &w.attended, &w.merged,
                        &w.up, &w.gate, &w.hidden, &w.probs, &w.mean,
                        &w.rstd, &w.rope_cos, &w.rope_sin};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        *fields[i] = next;
        next += parts[i];
    }

    /* Embedding and positions 0..n-1. */
    const int64_t count = (int64_t)nd;
    tlmi_embedding_forward(w.x, data_of(model->token_embedding), ids, n,
                           c->d_model);
    if (c->position == TLM_POSITION_LEARNED) {
        tlmi_add_forward(w.x, w.x, data_of(model->position_embedding), count,
                         count);
    } else if (c->position == TLM_POSITION_SINUSOIDAL) {
        tlmi_sinusoidal_table(w.table, 0, n, c->d_model);
        tlmi_add_forward(w.x, w.x, w.table, count, count);
    }
    /* The layers below `layer` in full, then `layer`'s attention. */
    const int pre = c->norm_placement == TLM_NORM_PRE;
    for (int32_t l = 0; l <= layer; l++) {
        const tlmi_layer_params *p = &model->decoder[l];
        const float *in = w.x;
        if (pre) {
            norm(&w, w.normed, w.x, &p->self_attn_norm);
            in = w.normed;
        }
        if (l == layer) {
            self_attention(&w, NULL, in, &p->self_attn, weights);
            break;
        }
        self_attention(&w, w.branch, in, &p->self_attn, w.probs);
        residual(&w, &p->self_attn_norm);
        in = w.x;
        if (pre) {
            norm(&w, w.normed, w.x, &p->ffn_norm);
            in = w.normed;
        }
        feedforward(&w, w.branch, in, &p->ffn);
        residual(&w, &p->ffn_norm);
    }
    tlmi_host_free(host, block, bytes);
    return TLM_OK;
}
