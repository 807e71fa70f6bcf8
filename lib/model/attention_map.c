/*
 * Attention maps: the softmax probabilities of one decoder layer's
 * self-attention, for looking at what a model attends to. A session runs
 * the decoder over the sequence in one pass (with the reference kernels)
 * and a hook on its attention writes the chosen layer's probabilities,
 * which the fused attention kernels never store. It is for pictures of
 * short prompts, not for speed.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "base/error.h"
#include "kernels/dispatch.h"
#include "model.h"
#include "session.h"

#define FN "tlm_model_attention_weights"

/* The map being captured: weights [H, total, total] of layer `layer`. */
typedef struct capture {
    int32_t layer;
    int64_t total;
    float *weights;
} capture;

/* Rows first..first+n-1 of the map: softmax(q k^T / sqrt(hd)) over the
 * keys each row sees, in double; the keys it does not see are 0. */
static void capture_probabilities(void *user, const tlmi_attention_view *v) {
    const capture *cap = user;
    if (v->layer != cap->layer)
        return;
    const int64_t total = cap->total, hd = v->head_dim;
    const double scale = 1.0 / sqrt((double)hd);
    const int64_t group = v->n_heads / v->n_kv_heads;
    for (int64_t h = 0; h < v->n_heads; h++) {
        /* The key/value head the query head h shares with its group. */
        const float *kh = v->k + h / group * v->capacity * hd;
        for (int64_t i = 0; i < v->n; i++) {
            const int64_t position = v->first + i;
            const float *q = v->q + h * v->q_head_stride + i * v->ld_q;
            float *row = cap->weights + (h * total + position) * total;
            double max = -(double)INFINITY;
            for (int64_t j = 0; j <= position; j++) {
                double dot = 0.0;
                for (int64_t d = 0; d < hd; d++)
                    dot += (double)q[d] * (double)kh[j * hd + d];
                row[j] = (float)(dot * scale);
                if ((double)row[j] > max)
                    max = (double)row[j];
            }
            double sum = 0.0;
            for (int64_t j = 0; j <= position; j++) {
                const double e = exp((double)row[j] - max);
                row[j] = (float)e;
                sum += e;
            }
            for (int64_t j = 0; j <= position; j++)
                row[j] = (float)((double)row[j] / sum);
            for (int64_t j = position + 1; j < total; j++)
                row[j] = 0.0f; /* causal: later positions are not seen */
        }
    }
}

TLM_API int tlm_model_attention_weights(const tlm_model *model,
                                        const int32_t *ids, size_t n_ids,
                                        int32_t layer, float *weights) {
    /* A length past INT32_MAX is past any max_context: refused below. */
    const int32_t n = n_ids < INT32_MAX ? (int32_t)n_ids : INT32_MAX;
    TLMI_CHECK_NOT_NULL(NULL, FN, model);
    tlmi_host *host = &model->ctx->host;
    const tlm_model_config *c = &model->config;
    TLMI_CHECK_NOT_NULL(host, FN, ids);
    TLMI_CHECK_NOT_NULL(host, FN, weights);
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

    /* One pass over all n positions on one thread, with the reference
     * kernels: the same arithmetic whatever the machine. */
    tlm_session_params params;
    tlm_session_params_init(&params);
    params.chunk_tokens = n;
    params.n_threads = 1;
    tlm_session *session = NULL;
    capture cap = {.layer = layer, .total = n, .weights = weights};
    int status = tlmi_session_create_with(&session, model, &params,
                                          tlmi_kernels_for(TLMI_ISA_SCALAR));
    if (status == TLM_OK) {
        tlmi_session_set_attention_hook(session, capture_probabilities, &cap);
        status = tlm_session_decode(session, ids, n, NULL, 0);
    }
    if (status != TLM_OK) {
        status = tlmi_fail_forward_from(
            host, status,
            session != NULL ? tlm_session_last_error(session) : tlm_last_error(),
            FN);
        tlm_session_free(session);
        return status;
    }
    tlm_session_free(session);
    return TLM_OK;
}
