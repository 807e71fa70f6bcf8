/*
 * Inference sessions: the transformer's forward pass on plain buffers, with
 * a KV cache. The layers are walked from layer.c, as the training forward
 * walks them, with a backend of the session's kernels (the same the
 * training operations use, in the same order), so a session's logits equal
 * the training forward's; only what is computed once per position differs.
 */
#include <stdint.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "base/layout.h"
#include "base/params.h"
#include "base/threadpool.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_parallel.h"
#include "kernels/weights.h"
#include "kernels/weights_parallel.h"
#include "kernels/scalar/activation.h"
#include "kernels/scalar/attention.h"
#include "kernels/scalar/elementwise.h"
#include "kernels/scalar/embedding.h"
#include "kernels/scalar/position.h"
#include "kernels/scalar/shape.h"
#include "layer.h"
#include "model.h"
#include "session.h"

/* Keys and values of one attention block: [Hkv, capacity, hd] each
 * (Hkv = n_kv_heads: a grouped-query model caches only its key/value
 * heads), head major so that one head's keys are contiguous for the
 * attention kernel. */
typedef struct kv_cache {
    float *k;
    float *v;
} kv_cache;

struct tlm_session {
    tlmi_host host; /* the model's hooks; the session's own error text */
    const tlm_model *model;
    const tlmi_kernels *kernels; /* chosen once, at creation */
    /* The products with a quantized model's matrices (chosen once, at
     * creation, for the model's format); NULL for a float32 model. */
    const tlmi_weight_kernels *weight_kernels;
    int32_t chunk;    /* rows of the scratch buffers */
    int32_t position; /* positions in the decoder's cache */
    /* Decoder positions computed since creation (reset does not clear
     * it): what a test of cache reuse counts. */
    int64_t positions_computed;
    int32_t source_length; /* encoded source positions; 0: none */

    kv_cache *self_cache;  /* [n_decoder_layers], capacity max_context */
    kv_cache *cross_cache; /* [n_decoder_layers] for encoder-decoder */
    unsigned char *source_visible; /* [max_context] padding flags */
    int has_source_mask;

    /* Scratch for `chunk` rows (max_context rows when there is an
     * encoder, which sees its whole input at once). */
    float *x;        /* [rows, D] the residual stream */
    float *normed;   /* [rows, D] */
    float *mean;     /* [rows] */
    float *rstd;     /* [rows] */
    float *q;        /* [rows, H*hd] */
    float *k;        /* [rows, Hkv*hd] */
    float *v;        /* [rows, Hkv*hd] */
    float *heads;    /* [H, rows, hd] */
    float *merged;   /* [rows, H*hd] */
    float *up;       /* [rows, F] */
    float *gate;     /* [rows, F] */
    float *hidden;   /* [rows, F] */
    float *positions;  /* [rows, D] sinusoidal table */
    float *rope_cos;   /* [rows, hd/2] */
    float *rope_sin;   /* [rows, hd/2] */
    unsigned char *attention_workspace; /* the dispatched attention kernel's
                                           scratch, one slice per thread */
    size_t attention_workspace_bytes;   /* of one slice, a multiple of 64 */
    float *workspace;  /* GEMM packing buffers (or the weights driver's
                          workspace) for the largest product, one slot per
                          thread of the pool */
    size_t workspace_bytes;
    tlmi_threadpool *pool;   /* the session's own compute threads */
    float *branch;     /* [rows, D] a sub-layer's output */
    float *memory;     /* [max_context, D] encoder output (seq2seq) */
    kv_cache encoder_cache; /* [Hkv, max_context, hd] the encoder's keys, values */

    /* The layer backend's view (layer.h): the buffers above by slot, and
     * the pass running. */
    float *slots[TLMI_SLOT_COUNT];
    int64_t rows;     /* rows of this pass */
    int64_t first;    /* its first position (decoder) */
    int encoding;     /* the pass is the encoder's */
    const unsigned char *visible; /* the encoder's key padding flags */
    tlmi_attention_hook attention_hook; /* or NULL */
    void *attention_hook_user;

    /* Every buffer above lives in this one allocation (session_layout). */
    unsigned char *block;
    size_t block_bytes;
};

/* The largest GEMM packing buffer a session's product needs, for `rows`
 * input rows on one thread. */
static size_t gemm_workspace(const tlmi_kernels *kernels,
                             const tlm_model_config *c, int64_t rows) {
    const int64_t d = c->d_model, inner = (int64_t)c->n_heads * c->head_dim;
    const int64_t shapes[][2] = {{inner, d}, {d, inner}, {c->d_ff, d},
                                 {d, c->d_ff}, {c->vocab_size, d}};
    size_t bytes = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const size_t need =
            kernels->gemm_workspace(rows, shapes[i][0], shapes[i][1], 0, 1);
        bytes = need > bytes ? need : bytes;
    }
    return bytes;
}

/* `layers` caches of `floats` keys and `floats` values each, and their
 * table, from `layout`: the table, or NULL while measuring. */
static kv_cache *take_caches(tlmi_layout *layout, size_t layers, size_t floats) {
    kv_cache *caches = tlmi_layout_take(layout, layers, sizeof *caches);
    for (size_t l = 0; l < layers; l++) {
        float *k = tlmi_layout_take(layout, floats, sizeof(float));
        float *v = tlmi_layout_take(layout, floats, sizeof(float));
        if (caches != NULL)
            caches[l] = (kv_cache){k, v};
    }
    return caches;
}

/* The driver's workspace for the largest product with quantized weights
 * `wk` (all threads' slots), for `rows` input rows. */
static size_t weights_workspace(const tlmi_kernels *kernels,
                                const tlmi_weight_kernels *wk,
                                const tlm_model_config *c, int64_t rows,
                                int threads) {
    const int64_t d = c->d_model, inner = (int64_t)c->n_heads * c->head_dim;
    const int64_t kv_inner = (int64_t)c->n_kv_heads * c->head_dim;
    const int64_t shapes[][2] = {{inner, d}, {kv_inner, d}, {d, inner},
                                 {c->d_ff, d}, {d, c->d_ff}, {c->vocab_size, d}};
    size_t bytes = 0;
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const size_t need = tlmi_weights_product_workspace(
            kernels, wk, rows, shapes[i][0], shapes[i][1], threads);
        bytes = need > bytes ? need : bytes;
    }
    return bytes;
}

/* The weights kernels a session of `model` uses with `kernels`, or NULL
 * for a float32 model. */
static const tlmi_weight_kernels *session_weight_kernels(const tlm_model *model,
                                                         const tlmi_kernels *kernels) {
    if (model->weight_format == TLM_WEIGHTS_F32)
        return NULL;
    return tlmi_weight_kernels_choose(kernels, model->weight_format,
                                      model->ctx->features);
}

/* Lays out the buffers of a session of model configuration `c` with
 * `chunk` rows, `threads` threads, `kernels` and the weights kernels `wk`
 * (NULL: a float32 model) in `layout`: the one description of a
 * session's memory, used to allocate it and by tlm_model_memory_estimate.
 * With a base in the layout it sets s's pointers into that block. */
static void session_layout(tlm_session *s, tlmi_layout *layout,
                           const tlm_model_config *c, int32_t chunk,
                           int threads, const tlmi_kernels *kernels,
                           const tlmi_weight_kernels *wk) {
    const size_t d = (size_t)c->d_model;
    const size_t inner = tlmi_layout_mul(layout, (size_t)c->n_heads,
                                         (size_t)c->head_dim);
    const size_t kv_inner = tlmi_layout_mul(layout, (size_t)c->n_kv_heads,
                                            (size_t)c->head_dim);
    const size_t f = (size_t)c->d_ff, ctx_len = (size_t)c->max_context;
    /* An encoder sees its whole input at once. */
    const size_t rows = c->n_encoder_layers > 0 ? ctx_len : (size_t)chunk;
    const size_t layers = (size_t)c->n_decoder_layers;
    const int seq2seq = c->n_encoder_layers > 0 && c->n_decoder_layers > 0;
    const size_t cache = tlmi_layout_mul(layout, ctx_len, kv_inner);
#define TAKE(field, count) \
    (s->field = tlmi_layout_take(layout, (count), sizeof *s->field))
    s->self_cache = take_caches(layout, layers, cache);
    if (seq2seq) {
        s->cross_cache = take_caches(layout, layers, cache);
        TAKE(memory, tlmi_layout_mul(layout, ctx_len, d));
    }
    if (c->n_encoder_layers > 0) {
        TAKE(encoder_cache.k, cache);
        TAKE(encoder_cache.v, cache);
    }
    const size_t rows_d = tlmi_layout_mul(layout, rows, d);
    const size_t rows_inner = tlmi_layout_mul(layout, rows, inner);
    const size_t rows_kv_inner = tlmi_layout_mul(layout, rows, kv_inner);
    const size_t rows_f = tlmi_layout_mul(layout, rows, f);
    const size_t rope = tlmi_layout_mul(layout, rows, (size_t)(c->head_dim / 2 + 1));
    TAKE(branch, rows_d);
    TAKE(source_visible, ctx_len);
    TAKE(x, rows_d);
    TAKE(normed, rows_d);
    TAKE(mean, rows);
    TAKE(rstd, rows);
    TAKE(q, rows_inner);
    TAKE(k, rows_kv_inner);
    TAKE(v, rows_kv_inner);
    TAKE(heads, rows_inner);
    TAKE(merged, rows_inner);
    TAKE(up, rows_f);
    TAKE(gate, rows_f);
    TAKE(hidden, rows_f);
    TAKE(positions, rows_d);
    TAKE(rope_cos, rope);
    TAKE(rope_sin, rope);
    /* The packing buffers of the largest product, one slot per thread. */
    s->workspace_bytes = tlmi_gemm_parallel_workspace(
        gemm_workspace(kernels, c, (int64_t)rows), threads);
    if (wk != NULL && s->workspace_bytes != SIZE_MAX) {
        /* A quantized model's products go through the weights driver,
         * whose workspace can be the larger. */
        const size_t weights =
            weights_workspace(kernels, wk, c, (int64_t)rows, threads);
        s->workspace_bytes = weights > s->workspace_bytes ? weights
                                                           : s->workspace_bytes;
    }
    if (s->workspace_bytes == SIZE_MAX)
        layout->overflow = 1;
    s->workspace = tlmi_layout_take(layout, s->workspace_bytes, 1);
    /* The attention kernel's scratch for `rows` queries over up to
     * max_context keys, a slice per thread (each works on whole heads). */
    /* A one-row pass of grouped-query attention runs a group of query
     * heads as that many rows (session_attend). */
    const int64_t group = c->n_heads / c->n_kv_heads;
    const size_t attention = kernels->attention_workspace(
        (int64_t)rows > group ? (int64_t)rows : group, (int64_t)ctx_len,
        c->head_dim, c->head_dim, 0);
    if (attention > SIZE_MAX - (TLMI_LAYOUT_ALIGN - 1))
        layout->overflow = 1;
    else
        s->attention_workspace_bytes =
            (attention + TLMI_LAYOUT_ALIGN - 1) / TLMI_LAYOUT_ALIGN *
            TLMI_LAYOUT_ALIGN;
    TAKE(attention_workspace,
         tlmi_layout_mul(layout, s->attention_workspace_bytes, (size_t)threads));
#undef TAKE
}

/* Zeroes the session's block except the decoder's self-attention caches:
 * a position's keys and values are written before any query reads them,
 * and pages never written are never made resident, so a session's memory
 * grows with the positions it uses rather than with max_context (the
 * caches of the 110M Llama shape at 1024 positions are 75 MB). The
 * layout puts those caches first, after their table, which this clears
 * too: lay the block out again afterwards. */
static void zero_all_but_self_caches(tlm_session *s, const tlm_model_config *c) {
    unsigned char *const block = s->block;
    const size_t layers = (size_t)c->n_decoder_layers;
    if (layers == 0) {
        memset(block, 0, s->block_bytes);
        return;
    }
    const size_t cache_floats = (size_t)c->max_context *
                                (size_t)c->n_kv_heads * (size_t)c->head_dim;
    unsigned char *const begin = (unsigned char *)s->self_cache[0].k;
    unsigned char *const end =
        (unsigned char *)(s->self_cache[layers - 1].v + cache_floats);
    memset(block, 0, (size_t)(begin - block));
    memset(end, 0, s->block_bytes - (size_t)(end - block));
}

/* The session's thread count: params->n_threads, or the context's. */
static int session_threads(const tlm_model *model, int32_t n_threads) {
    return n_threads > 0 ? (int)n_threads : model->ctx->n_threads;
}

/* The session's chunk: chunk_tokens (0: the default) within max_context. */
static int32_t session_chunk(const tlm_model_config *c, int32_t chunk_tokens) {
    int32_t chunk = chunk_tokens ? chunk_tokens : TLMI_SESSION_DEFAULT_CHUNK;
    return chunk < c->max_context ? chunk : c->max_context;
}

size_t tlmi_session_bytes(const tlm_model *model, const tlmi_kernels *kernels,
                          int32_t chunk_tokens, int32_t n_threads) {
    const int threads = session_threads(model, n_threads);
    tlm_session shape;
    memset(&shape, 0, sizeof shape);
    tlmi_layout layout;
    tlmi_layout_init(&layout, NULL);
    session_layout(&shape, &layout, &model->config,
                   session_chunk(&model->config, chunk_tokens), threads, kernels,
                   session_weight_kernels(model, kernels));
    const size_t block = tlmi_layout_size(&layout);
    const size_t fixed = sizeof(tlm_session) + tlmi_threadpool_bytes(threads);
    return block > SIZE_MAX - fixed ? SIZE_MAX : block + fixed;
}

TLM_API int tlm_session_params_init(tlm_session_params *params) {
    TLMI_PARAMS_INIT("tlm_session_params_init", params);
    return TLM_OK;
}

TLM_API void tlm_session_free(tlm_session *session) {
    if (session == NULL)
        return;
    tlmi_host host = session->host;
    tlmi_threadpool_free(session->pool);
    tlmi_host_free(&host, session->block, session->block_bytes);
    tlmi_host_free(&host, session, sizeof *session);
    tlmi_context_drop(&host); /* may free the context (tlm_context_free) */
}

TLM_API int tlm_session_create(tlm_session **out, const tlm_model *model,
                               const tlm_session_params *given) {
    /* The model's context's kernels (create_with reports a NULL model). */
    return tlmi_session_create_with(out, model, given,
                                    model != NULL ? model->ctx->kernels : NULL);
}

void tlmi_session_set_attention_hook(tlm_session *session,
                                     tlmi_attention_hook hook, void *user) {
    session->attention_hook = hook;
    session->attention_hook_user = user;
}

int tlmi_session_create_with(tlm_session **out, const tlm_model *model,
                             const tlm_session_params *given,
                             const tlmi_kernels *kernels) {
    TLMI_CHECK_OUT(NULL, "tlm_session_create", out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_session_create", model);
    tlm_session_params params;
    tlm_session_params_init(&params);
    TLMI_TRY(tlmi_params_merge(NULL, "tlm_session_create: params", &params,
                               sizeof params, given));
    const tlm_model_config *c = &model->config;
    if (params.chunk_tokens < 0)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_session_create: params.chunk_tokens %d is "
                                "negative",
                                (int)params.chunk_tokens);
    if (params.n_threads < 0 || params.n_threads > 1024)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_session_create: params.n_threads %d is "
                                "outside 0..1024 (0 means the context's "
                                "thread count)",
                                (int)params.n_threads);
    const int threads = session_threads(model, params.n_threads);

    tlm_session *s = TLMI_HANDLE_ALLOC(&model->ctx->host, tlm_session);
    if (s == NULL)
        return tlmi_fail_thread(TLM_E_NOMEM, "tlm_session_create: out of memory");
    tlmi_context_hold(&s->host); /* dropped by tlm_session_free */
    s->model = model;
    s->kernels = kernels;
    s->weight_kernels = session_weight_kernels(model, kernels);
    s->chunk = session_chunk(c, params.chunk_tokens);

    /* Measure, allocate once, then carve the block into the buffers. */
    tlmi_layout layout;
    tlmi_layout_init(&layout, NULL);
    session_layout(s, &layout, c, s->chunk, threads, kernels, s->weight_kernels);
    const size_t bytes = tlmi_layout_size(&layout);
    if (bytes == SIZE_MAX) {
        tlm_session_free(s);
        return tlmi_fail(&model->ctx->host, TLM_E_OVERFLOW,
                         "tlm_session_create: the session's buffers overflow "
                         "size_t");
    }
    const tlmi_memory_part part = {"KV caches and buffers", (double)bytes, 0};
    int status = tlmi_context_check_memory(model->ctx, &model->ctx->host,
                                           "tlm_session_create", &part, 1);
    if (status != TLM_OK) {
        tlm_session_free(s);
        return status;
    }
    s->block = tlmi_host_alloc(&s->host, bytes, TLMI_LAYOUT_ALIGN);
    if (s->block == NULL) {
        tlm_session_free(s);
        return tlmi_fail(&model->ctx->host, TLM_E_NOMEM,
                         "tlm_session_create: allocating the caches and "
                         "buffers (%zu bytes) failed", bytes);
    }
    s->block_bytes = bytes;
    tlmi_layout_init(&layout, s->block);
    session_layout(s, &layout, c, s->chunk, threads, kernels, s->weight_kernels);
    zero_all_but_self_caches(s, c);
    tlmi_layout_init(&layout, s->block);
    session_layout(s, &layout, c, s->chunk, threads, kernels, s->weight_kernels);
    float *const slots[TLMI_SLOT_COUNT] = {
        [TLMI_SLOT_X] = s->x,          [TLMI_SLOT_NORMED] = s->normed,
        [TLMI_SLOT_MEMORY] = s->memory, [TLMI_SLOT_Q] = s->q,
        [TLMI_SLOT_K] = s->k,          [TLMI_SLOT_V] = s->v,
        [TLMI_SLOT_MERGED] = s->merged, [TLMI_SLOT_UP] = s->up,
        [TLMI_SLOT_GATE] = s->gate,    [TLMI_SLOT_HIDDEN] = s->hidden,
        [TLMI_SLOT_BRANCH] = s->branch};
    memcpy(s->slots, slots, sizeof slots);
    status = tlmi_threadpool_create(&s->pool, &s->host, threads,
                                  "tlm_session_create");
    if (status != TLM_OK) {
        tlm_session_free(s);
        return tlmi_fail(&model->ctx->host, status,
                         "tlm_session_create: creating the session's pool "
                         "of %d threads failed", threads);
    }
    *out = s;
    return TLM_OK;
}

TLM_API int tlm_session_reset(tlm_session *session) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_session_reset", session);
    session->position = 0;
    session->source_length = 0;
    return TLM_OK;
}

TLM_API int32_t tlm_session_position(const tlm_session *session) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_session_position", session);
    return session->position;
}

TLM_API const char *tlm_session_last_error(const tlm_session *session) {
    return TLMI_LAST_ERROR("tlm_session_last_error", session);
}

/* ---------------------------------------------------------------------- */
/* The forward pass on s->rows rows of s->x: the layers walked from
 * layer.c with the session's backend below, the embedding and output
 * projection here. */

static const float *data_of(const tlm_tensor *t) {
    return t != NULL ? (const float *)t->data : NULL;
}

/* C [m, n] = A [m, k] . W^T (+ bias) for a parameter W [n, k], float32
 * or quantized (then with the session's weights kernels), over the
 * session's threads (each a range of W's rows: decoding is reading the
 * weights, and the threads share that out). */
static void product(const tlm_session *s, float *c, const float *a,
                    const tlm_tensor *weight, const float *bias, int64_t m) {
    if (weight->dtype == TLM_DTYPE_F32) {
        tlmi_gemm_parallel(s->pool, s->kernels, c, a, data_of(weight), bias, m,
                           weight->shape[0], weight->shape[1], 0, 1, 0,
                           s->workspace, s->workspace_bytes);
        return;
    }
    const tlmi_weights w = tlmi_tensor_weights(weight);
    tlmi_weights_product_parallel(s->pool, s->kernels, s->weight_kernels, c, a,
                                  &w, bias, m, s->workspace, s->workspace_bytes);
}

/* out [end - begin, cols] = rows begin..end-1 of a parameter [rows, cols],
 * float32 or quantized. */
static void parameter_rows(const tlm_session *s, float *out,
                           const tlm_tensor *t, int64_t begin, int64_t end) {
    if (t->dtype == TLM_DTYPE_F32) {
        memcpy(out, data_of(t) + begin * t->shape[1],
               (size_t)((end - begin) * t->shape[1]) * sizeof(float));
        return;
    }
    const tlmi_weights w = tlmi_tensor_weights(t);
    s->weight_kernels->dequantize_rows(out, &w, begin, end);
}

/* The session's row-wise kernels (the same the training ops use). */
static const tlmi_pointwise_kernels *pointwise(const tlm_session *s) {
    return s->kernels->pointwise;
}

/* Copies rows [n, Hkv*hd] into a head-major cache [Hkv, capacity, hd] at
 * rows first..first+n-1. */
static void store_heads(float *cache, const float *rows, int64_t n,
                        int64_t first, int64_t capacity, int64_t n_heads,
                        int64_t head_dim) {
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < n; i++)
            memcpy(cache + (h * capacity + first + i) * head_dim,
                   rows + i * n_heads * head_dim + h * head_dim,
                   (size_t)head_dim * sizeof(float));
}

/* The layer backend (layer.h): slots are the session's buffers, each of
 * s->rows rows. Every buffer was sized at creation, so no primitive can
 * fail: they all return TLM_OK, and the walks' statuses need no check. */

static int session_linear(void *exec, int out, int in, tlm_tensor *weight,
                          tlm_tensor *bias) {
    tlm_session *s = exec;
    product(s, s->slots[out], s->slots[in], weight, data_of(bias), s->rows);
    return TLM_OK;
}

static int session_layer_norm(void *exec, int out, int in,
                              const tlmi_norm_params *p) {
    tlm_session *s = exec;
    const tlm_model_config *c = &s->model->config;
    pointwise(s)->layer_norm_forward(s->slots[out], s->mean, s->rstd,
                                     s->slots[in], data_of(p->weight),
                                     data_of(p->bias), s->rows, c->d_model,
                                     c->norm_eps);
    return TLM_OK;
}

static int session_rms_norm(void *exec, int out, int in,
                            const tlmi_norm_params *p) {
    tlm_session *s = exec;
    const tlm_model_config *c = &s->model->config;
    pointwise(s)->rms_norm_forward(s->slots[out], s->rstd, s->slots[in],
                                   data_of(p->weight), s->rows, c->d_model,
                                   c->norm_eps);
    return TLM_OK;
}

/* The activations work on [rows, F]. */
static int session_gelu(void *exec, int out, int in, int exact) {
    tlm_session *s = exec;
    const int64_t count = s->rows * s->model->config.d_ff;
    if (exact)
        tlmi_gelu_exact_forward(s->slots[out], s->slots[in], count);
    else
        pointwise(s)->gelu_tanh_forward(s->slots[out], s->slots[in], count);
    return TLM_OK;
}

static int session_relu(void *exec, int out, int in) {
    tlm_session *s = exec;
    pointwise(s)->relu_forward(s->slots[out], s->slots[in],
                               s->rows * s->model->config.d_ff);
    return TLM_OK;
}

static int session_swiglu(void *exec, int out, int gate, int up) {
    tlm_session *s = exec;
    pointwise(s)->swiglu_forward(s->slots[out], s->slots[gate], s->slots[up],
                                 s->rows * s->model->config.d_ff);
    return TLM_OK;
}

/* The residual addition, on [rows, D]. */
static int session_add(void *exec, int out, int a, int b) {
    tlm_session *s = exec;
    pointwise(s)->add(s->slots[out], s->slots[a], s->slots[b],
                      s->rows * s->model->config.d_model);
    return TLM_OK;
}

/* Where a site's keys and values are: the encoder's own, a decoder
 * layer's self-attention cache (its rows so far at 0..first-1), or its
 * cross-attention cache of the encoded source. */
static kv_cache *site_cache(tlm_session *s, const tlmi_attention_site *site) {
    if (s->encoding && !site->cross)
        return &s->encoder_cache;
    return site->cross ? &s->cross_cache[site->layer]
                       : &s->self_cache[site->layer];
}

/* K and V [rows, Hkv*hd] into the site's cache at the pass's positions,
 * keys rotated for those positions when rotary. */
static int session_store_keys_values(void *exec,
                                     const tlmi_attention_site *site) {
    tlm_session *s = exec;
    const tlm_model_config *c = &s->model->config;
    const int64_t h_count = c->n_kv_heads, hd = c->head_dim;
    const int64_t capacity = c->max_context, n = s->rows;
    const int64_t first = s->encoding || site->cross ? 0 : s->first;
    kv_cache *cache = site_cache(s, site);
    store_heads(cache->k, s->k, n, first, capacity, h_count, hd);
    store_heads(cache->v, s->v, n, first, capacity, h_count, hd);
    if (site->rotary) {
        tlmi_rope_table(s->rope_cos, s->rope_sin, first, n, hd,
                        (double)c->rope_base);
        for (int64_t h = 0; h < h_count; h++) {
            float *rows = cache->k + (h * capacity + first) * hd;
            tlmi_rope_forward(rows, rows, s->rope_cos, s->rope_sin, 1, n, hd);
        }
    }
    return TLM_OK;
}

/* One attention call of the session: queries [n, H*hd] (row stride
 * ld_q), keys and values in a head-major cache [Hkv, capacity, hd] (query
 * head h reads key/value head h / (H / Hkv), in place), the heads written
 * side by side into s->merged [n, H*hd]. */
typedef struct session_attention {
    tlm_session *s;
    const float *q;
    int64_t ld_q, q_head_stride; /* head h's queries at q + h * stride */
    const kv_cache *cache;
    int64_t n, tk, capacity;
    int causal;
    const unsigned char *visible;
    /* One row with grouped-query attention: each call takes a key/value
     * head's whole group of query heads as `group` query rows (they are
     * consecutive, hd apart), so its keys and values are read once per
     * token, not once per query head. */
    int grouped_rows;
} session_attention;

static void attend_heads(void *arg, int64_t begin, int64_t end, int thread) {
    const session_attention *a = arg;
    tlm_session *s = a->s;
    const int64_t h_count = s->model->config.n_heads;
    const int64_t group = h_count / s->model->config.n_kv_heads;
    const int64_t hd = s->model->config.head_dim;
    void *workspace =
        s->attention_workspace + (size_t)thread * s->attention_workspace_bytes;
    if (a->grouped_rows) {
        /* Units are key/value heads; one row sees every key, so the group's
         * rows are not causal among themselves. */
        const tlmi_attention_dims rows = {group, a->tk, hd, hd, hd, hd, hd,
                                          hd, 0};
        for (int64_t g = begin; g < end; g++)
            s->kernels->attention_forward(
                s->merged + g * group * hd, NULL,
                a->q + g * group * a->q_head_stride,
                a->cache->k + g * a->capacity * hd,
                a->cache->v + g * a->capacity * hd, a->visible, &rows,
                workspace);
        return;
    }
    const tlmi_attention_dims dims = {a->n, a->tk, hd, hd, a->ld_q, hd, hd,
                                      h_count * hd, a->causal};
    for (int64_t h = begin; h < end; h++)
        s->kernels->attention_forward(
            s->merged + h * hd, NULL, a->q + h * a->q_head_stride,
            a->cache->k + h / group * a->capacity * hd,
            a->cache->v + h / group * a->capacity * hd, a->visible, &dims,
            workspace);
}

/* Below this many multiply-adds (n x tk x hd) a head is not worth handing
 * to another thread. */
#define SESSION_ATTENTION_MIN_WORK 65536

/* Attention of the rows' queries in s->q over the site's cache, into
 * s->merged. The heads are shared out over the session's threads, each
 * computed whole by one (the same result for any thread count). */
static int session_attend(void *exec, const tlmi_attention_site *site) {
    tlm_session *s = exec;
    const tlm_model_config *c = &s->model->config;
    const int64_t h_count = c->n_heads, hd = c->head_dim, n = s->rows;
    const int64_t offset = s->encoding ? 0 : s->first;
    session_attention a = {.s = s, .q = s->q, .ld_q = h_count * hd,
                           .q_head_stride = hd, .cache = site_cache(s, site),
                           .n = n, .capacity = c->max_context,
                           .causal = site->causal};
    if (s->encoding) {
        a.tk = n;
        a.visible = s->visible;
    } else if (site->cross) {
        a.tk = s->source_length;
        a.visible = s->has_source_mask ? s->source_visible : NULL;
    } else {
        a.tk = offset + n;
    }
    if (site->rotary) {
        /* Rotation works on each head's own rows: split them out first. */
        tlmi_split_heads_forward(s->heads, s->q, 1, n, h_count, hd); /* [H, n, hd] */
        tlmi_rope_table(s->rope_cos, s->rope_sin, offset, n, hd, (double)c->rope_base);
        tlmi_rope_forward(s->heads, s->heads, s->rope_cos, s->rope_sin, h_count, n, hd);
        a.q = s->heads;
        a.ld_q = hd;
        a.q_head_stride = n * hd;
    }
    if (s->attention_hook != NULL && !s->encoding && !site->cross) {
        const tlmi_attention_view view = {
            .layer = site->layer, .first = offset, .n = n, .n_heads = h_count,
            .n_kv_heads = c->n_kv_heads, .head_dim = hd, .q = a.q, .ld_q = a.ld_q,
            .q_head_stride = a.q_head_stride, .k = a.cache->k,
            .capacity = a.capacity};
        s->attention_hook(s->attention_hook_user, &view);
    }
    const int64_t work = n * a.tk * hd;
    const int64_t grain = work >= SESSION_ATTENTION_MIN_WORK
                              ? 1
                              : (SESSION_ATTENTION_MIN_WORK + work - 1) / work;
    /* One row: the group's query heads are hd apart in a's queries (both
     * layouts), so a key/value head's group is one call. */
    const int64_t group = h_count / c->n_kv_heads;
    a.grouped_rows = n == 1 && group > 1 && a.q_head_stride == hd;
    tlmi_parallel_for(s->pool, a.grouped_rows ? c->n_kv_heads : h_count,
                      a.grouped_rows ? (grain + group - 1) / group : grain,
                      attend_heads, &a);
    return TLM_OK;
}

static const tlmi_layer_backend session_backend = {
    .linear = session_linear,
    .layer_norm = session_layer_norm,
    .rms_norm = session_rms_norm,
    .gelu = session_gelu,
    .relu = session_relu,
    .swiglu = session_swiglu,
    .add = session_add,
    .dropout = NULL,
    .store_keys_values = session_store_keys_values,
    .attend = session_attend,
    .cross_keys_values_kept = 1,
};

/* How the session runs the decoder (causal) or the encoder (causal 0). */
static tlmi_layer_run session_run(tlm_session *s, int decoder) {
    const tlm_model_config *c = &s->model->config;
    const tlmi_layer_run run = {
        .backend = &session_backend, .exec = s, .config = c,
        .causal = decoder,
        .cross = decoder && c->n_encoder_layers > 0};
    return run;
}

/* ids -> s->x [n, D]: token embedding plus positions offset..offset+n-1. */
static void embed(tlm_session *s, const int32_t *ids, int64_t n, int64_t offset) {
    const tlm_model *m = s->model;
    const int64_t d = m->config.d_model;
    if (m->token_embedding->dtype == TLM_DTYPE_F32) {
        tlmi_embedding_forward(s->x, data_of(m->token_embedding), ids, n, d);
    } else {
        /* A quantized table: only the looked-up rows, dequantized. */
        for (int64_t i = 0; i < n; i++)
            parameter_rows(s, s->x + i * d, m->token_embedding, ids[i], ids[i] + 1);
    }
    if (m->config.position == TLM_POSITION_LEARNED) {
        const float *rows = data_of(m->position_embedding) + offset * d;
        if (m->position_embedding->dtype != TLM_DTYPE_F32) {
            /* s->branch [rows, D] is free until the first sublayer. */
            parameter_rows(s, s->branch, m->position_embedding, offset, offset + n);
            rows = s->branch;
        }
        tlmi_add_forward(s->x, s->x, rows, n * d, n * d);
    } else if (m->config.position == TLM_POSITION_SINUSOIDAL) {
        tlmi_sinusoidal_table(s->positions, offset, n, d);
        tlmi_add_forward(s->x, s->x, s->positions, n * d, n * d);
    }
}

/* The stack's output after its final norm (pre-norm): s->normed or s->x. */
static const float *final_output(tlm_session *s, const tlmi_layer_run *run,
                                 const tlmi_norm_params *final_norm) {
    int result;
    tlmi_layer_final_norm(run, final_norm, TLMI_SLOT_NORMED, &result);
    return s->slots[result];
}

/* logits [rows, V] of the last `rows` of y [n, D]. */
static void project(tlm_session *s, float *logits, const float *y, int64_t n,
                    int64_t rows) {
    const tlm_model *m = s->model;
    const tlm_tensor *head = m->config.tied_output ? m->token_embedding : m->lm_head;
    product(s, logits, y + (n - rows) * m->config.d_model, head, NULL, rows);
}

static int check_ids(tlm_session *s, const char *what, const int32_t *ids,
                     int32_t n) {
    const int32_t v = s->model->config.vocab_size;
    for (int32_t i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= v)
            return tlmi_fail(&s->host, TLM_E_RANGE,
                             "%s: ids[%d] = %d is outside 0..%d", what, (int)i,
                             (int)ids[i], (int)v - 1);
    return TLM_OK;
}

TLM_API int tlm_session_encode(tlm_session *s, const int32_t *src_ids,
                               size_t n_ids, const int32_t *src_mask,
                               float *logits) {
    /* A length past INT32_MAX is past any max_context: refused below. */
    const int32_t n = n_ids < INT32_MAX ? (int32_t)n_ids : INT32_MAX;
    TLMI_CHECK(NULL, s != NULL, TLM_E_INVALID,
               "tlm_session_encode: session is NULL");
    const tlm_model *m = s->model;
    const tlm_model_config *c = &m->config;
    TLMI_CHECK(&s->host, c->n_encoder_layers != 0, TLM_E_STATE,
               "tlm_session_encode: the model has no encoder");
    TLMI_CHECK_NOT_NULL(&s->host, "tlm_session_encode", src_ids);
    if (n < 1 || n > c->max_context)
        return tlmi_fail(&s->host, TLM_E_RANGE,
                         "tlm_session_encode: n = %d is outside 1..%d "
                         "(max_context)",
                         (int)n, (int)c->max_context);
    const int seq2seq = c->n_decoder_layers > 0;
    if (seq2seq && logits != NULL)
        return tlmi_fail(&s->host, TLM_E_INVALID,
                         "tlm_session_encode: logits must be NULL for an "
                         "encoder-decoder model (the decoder produces them)");
    TLMI_TRY(check_ids(s, "tlm_session_encode: src_ids", src_ids, n));
    if (src_mask != NULL)
        tlmi_attention_visible_i32(s->source_visible, src_mask, n);
    s->has_source_mask = src_mask != NULL;

    /* The encoder over all n positions at once, bidirectional, keys
     * masked by the source's padding. */
    s->encoding = 1;
    s->rows = n;
    s->first = 0;
    s->visible = src_mask != NULL ? s->source_visible : NULL;
    embed(s, src_ids, n, 0);
    const tlmi_layer_run encoder = session_run(s, 0);
    tlmi_layer_stack(&encoder, m->encoder, c->n_encoder_layers);
    const float *y = final_output(s, &encoder, &m->encoder_final_norm);
    s->encoding = 0;
    if (!seq2seq) {
        if (logits != NULL)
            project(s, logits, y, n, n);
        return TLM_OK;
    }
    /* Every decoder layer's cross-attention keys and values, once. */
    memcpy(s->memory, y, (size_t)n * (size_t)c->d_model * sizeof(float));
    const tlmi_layer_run decoder = session_run(s, 1);
    for (int32_t l = 0; l < c->n_decoder_layers; l++) {
        const tlmi_attention_site site = {.layer = l, .cross = 1};
        tlmi_layer_keys_values(&decoder, &m->decoder[l].cross_attn,
                               TLMI_SLOT_MEMORY, &site);
    }
    s->source_length = n;
    s->position = 0;
    return TLM_OK;
}

TLM_API int tlm_session_decode(tlm_session *s, const int32_t *ids, size_t n_ids,
                               float *logits, int32_t logits_rows) {
    /* A length past INT32_MAX is past any max_context: refused below. */
    const int32_t n = n_ids < INT32_MAX ? (int32_t)n_ids : INT32_MAX;
    TLMI_CHECK(NULL, s != NULL, TLM_E_INVALID,
               "tlm_session_decode: session is NULL");
    const tlm_model *m = s->model;
    const tlm_model_config *c = &m->config;
    TLMI_CHECK(&s->host, c->n_decoder_layers != 0, TLM_E_STATE,
               "tlm_session_decode: the model has no decoder (use "
               "tlm_session_encode)");
    const int seq2seq = c->n_encoder_layers > 0;
    if (seq2seq && s->source_length == 0)
        return tlmi_fail(&s->host, TLM_E_STATE,
                         "tlm_session_decode: encode a source first "
                         "(tlm_session_encode)");
    TLMI_CHECK_NOT_NULL(&s->host, "tlm_session_decode", ids);
    if (n < 1)
        return tlmi_fail(&s->host, TLM_E_RANGE, "tlm_session_decode: n = %d < 1",
                         (int)n);
    if (logits_rows != 0 && logits_rows != 1 && logits_rows != n)
        return tlmi_fail(&s->host, TLM_E_INVALID,
                         "tlm_session_decode: logits_rows = %d must be 0, 1 or "
                         "n = %d",
                         (int)logits_rows, (int)n);
    if (logits_rows > 0 && logits == NULL)
        return tlmi_fail(&s->host, TLM_E_INVALID,
                         "tlm_session_decode: logits is NULL");
    if ((int64_t)s->position + n > c->max_context)
        return tlmi_fail(&s->host, TLM_E_RANGE,
                         "tlm_session_decode: %d more positions after %d would "
                         "pass max_context %d (reset the session, or start "
                         "again from a shorter window)",
                         (int)n, (int)s->position, (int)c->max_context);
    TLMI_TRY(check_ids(s, "tlm_session_decode: ids", ids, n));

    const tlmi_layer_run decoder = session_run(s, 1);
    /* Chunks of at most s->chunk positions; each sees the cache so far. */
    for (int32_t done = 0; done < n;) {
        const int64_t count = n - done < s->chunk ? n - done : s->chunk;
        s->rows = count;
        s->first = s->position;
        embed(s, ids + done, count, s->first);
        tlmi_layer_stack(&decoder, m->decoder, c->n_decoder_layers);
        s->position += (int32_t)count;
        s->positions_computed += count;
        done += (int32_t)count;
        /* Logits of this chunk's rows that were asked for. */
        int64_t wanted = 0;
        float *dest = logits;
        if (logits_rows == n && n > 1) {
            wanted = count;
            dest = logits + (int64_t)(done - count) * c->vocab_size;
        } else if (logits_rows >= 1 && done == n) {
            wanted = 1;
        }
        if (wanted > 0) {
            const float *y = final_output(s, &decoder, &m->decoder_final_norm);
            project(s, dest, y, count, wanted);
        }
    }
    return TLM_OK;
}

const tlm_model *tlmi_session_model(const tlm_session *session) {
    return session->model;
}

tlmi_host *tlmi_session_host(tlm_session *session) { return &session->host; }

int64_t tlmi_session_positions_computed(const tlm_session *session) {
    return session->positions_computed;
}

/* Copies rows 0..rows-1 of every head of a [Hkv, capacity, hd] cache. */
static void copy_cache_rows(float *dst, const float *src, int64_t rows,
                            int64_t capacity, int64_t n_heads, int64_t head_dim) {
    for (int64_t h = 0; h < n_heads; h++)
        memcpy(dst + h * capacity * head_dim, src + h * capacity * head_dim,
               (size_t)(rows * head_dim) * sizeof(float));
}

TLM_API int tlm_session_copy(tlm_session *dst, const tlm_session *src) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_session_copy", dst);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_session_copy", src);
    if (dst->model != src->model)
        return tlmi_fail(&dst->host, TLM_E_INVALID,
                         "tlm_session_copy: dst and src run different models");
    if (dst == src)
        return TLM_OK;
    const tlm_model_config *c = &src->model->config;
    const int64_t h_count = c->n_kv_heads, hd = c->head_dim;
    const int64_t capacity = c->max_context;
    /* The decoder's keys and values of the positions seen so far. */
    for (int32_t l = 0; l < c->n_decoder_layers; l++) {
        copy_cache_rows(dst->self_cache[l].k, src->self_cache[l].k, src->position,
                        capacity, h_count, hd);
        copy_cache_rows(dst->self_cache[l].v, src->self_cache[l].v, src->position,
                        capacity, h_count, hd);
    }
    /* The encoded source: its output, padding flags and the cross-attention
     * keys and values every decoder layer computed from it. */
    if (src->cross_cache != NULL && src->source_length > 0) {
        const int64_t n = src->source_length;
        for (int32_t l = 0; l < c->n_decoder_layers; l++) {
            copy_cache_rows(dst->cross_cache[l].k, src->cross_cache[l].k, n,
                            capacity, h_count, hd);
            copy_cache_rows(dst->cross_cache[l].v, src->cross_cache[l].v, n,
                            capacity, h_count, hd);
        }
        memcpy(dst->memory, src->memory, (size_t)(n * c->d_model) * sizeof(float));
        memcpy(dst->source_visible, src->source_visible, (size_t)n);
    }
    dst->has_source_mask = src->has_source_mask;
    dst->source_length = src->source_length;
    dst->position = src->position;
    return TLM_OK;
}
