/*
 * Inference sessions: the transformer's forward pass on plain buffers, with
 * a KV cache. The computation mirrors lib/forward.c operation by operation
 * (same kernels, same order), so a session's logits equal the training
 * forward's; only what is computed once per position differs.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "context.h"
#include "error.h"
#include "gemm_parallel.h"
#include "kernels/dispatch.h"
#include "kernels/scalar/activation.h"
#include "kernels/scalar/attention.h"
#include "kernels/scalar/elementwise.h"
#include "kernels/scalar/embedding.h"
#include "kernels/scalar/matmul.h"
#include "kernels/scalar/norm.h"
#include "kernels/scalar/position.h"
#include "kernels/scalar/shape.h"
#include "model.h"
#include "params.h"
#include "pool.h"
#include "session.h"
#include "tensor.h"

#define DEFAULT_CHUNK 64

/* Keys and values of one attention block: [H, capacity, hd] each, head
 * major so that one head's keys are contiguous for the attention kernel. */
typedef struct kv_cache {
    float *k;
    float *v;
} kv_cache;

struct tlm_session {
    tlmi_host host; /* the model's hooks; the session's own error text */
    const tlm_model *model;
    int32_t chunk;    /* rows of the scratch buffers */
    int32_t position; /* positions in the decoder's cache */
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
    float *k;        /* [rows, H*hd] */
    float *v;        /* [rows, H*hd] */
    float *heads;    /* [H, rows, hd] */
    float *merged;   /* [rows, H*hd] */
    float *up;       /* [rows, F] */
    float *gate;     /* [rows, F] */
    float *hidden;   /* [rows, F] */
    float *positions;  /* [rows, D] sinusoidal table */
    float *rope_cos;   /* [rows, hd/2] */
    float *rope_sin;   /* [rows, hd/2] */
    double *scores;    /* [TLMI_ATTENTION_BLOCK] */
    double *accumulator; /* [hd] */
    unsigned char *attention_workspace; /* the dispatched attention kernel's
                                           scratch, one slice per thread */
    size_t attention_workspace_bytes;   /* of one slice, a multiple of 64 */
    float *workspace;  /* GEMM packing buffers for the largest product,
                          one slot per thread of the pool */
    size_t workspace_bytes;
    tlmi_pool *pool;   /* the session's own compute threads */
    float *branch;     /* [rows, D] a sub-layer's output */
    float *memory;     /* [max_context, D] encoder output (seq2seq) */
    kv_cache encoder_cache; /* [H, max_context, hd] the encoder's keys, values */

    /* Every buffer above, for freeing: pointer and size. */
    void *blocks[40];
    size_t block_sizes[40];
    int n_blocks;
};

static void *session_alloc(tlm_session *s, size_t bytes) {
    if (s->n_blocks == (int)(sizeof s->blocks / sizeof s->blocks[0]))
        return NULL;
    void *block = tlmi_host_alloc(&s->host, bytes, 64);
    if (block != NULL) {
        memset(block, 0, bytes);
        s->blocks[s->n_blocks] = block;
        s->block_sizes[s->n_blocks++] = bytes;
    }
    return block;
}

TLM_API int tlm_session_params_init(tlm_session_params *params) {
    if (params == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_session_params_init: params is NULL");
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    return TLM_OK;
}

TLM_API void tlm_session_free(tlm_session *session) {
    if (session == NULL)
        return;
    tlmi_host host = session->host;
    tlmi_pool_free(session->pool);
    for (int i = session->n_blocks - 1; i >= 0; i--)
        tlmi_host_free(&host, session->blocks[i], session->block_sizes[i]);
    tlmi_host_free(&host, session, sizeof *session);
}

TLM_API int tlm_session_create(tlm_session **out, const tlm_model *model,
                               const tlm_session_params *given) {
    if (out == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_session_create: out is NULL");
    *out = NULL;
    if (model == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_session_create: model is NULL");
    tlm_session_params params;
    tlm_session_params_init(&params);
    int status = tlmi_params_merge(NULL, "tlm_session_create: params", &params,
                                   sizeof params, given);
    if (status != TLM_OK)
        return status;
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
    const int threads = params.n_threads > 0 ? (int)params.n_threads
                                             : model->ctx->n_threads;
    int32_t chunk = params.chunk_tokens ? params.chunk_tokens : DEFAULT_CHUNK;
    if (chunk > c->max_context)
        chunk = c->max_context;

    tlmi_host host = model->ctx->host;
    host.last_error[0] = '\0';
    tlm_session *s = tlmi_host_alloc(&host, sizeof *s, 64);
    if (s == NULL)
        return tlmi_fail_thread(TLM_E_NOMEM, "tlm_session_create: out of memory");
    memset(s, 0, sizeof *s);
    s->host = host;
    s->model = model;
    s->chunk = chunk;

    const size_t d = (size_t)c->d_model, inner = (size_t)c->n_heads * (size_t)c->head_dim;
    const size_t f = (size_t)c->d_ff, ctx_len = (size_t)c->max_context;
    const size_t rows = c->n_encoder_layers > 0 ? ctx_len : (size_t)chunk;
    const size_t layers = (size_t)c->n_decoder_layers;
    const int seq2seq = c->n_encoder_layers > 0 && c->n_decoder_layers > 0;
    int ok = 1;
#define ALLOC(field, count)                                                   \
    do {                                                                      \
        if (ok) {                                                             \
            s->field = session_alloc(s, (count) * sizeof *s->field);          \
            ok = s->field != NULL;                                            \
        }                                                                     \
    } while (0)
    /* One block for all layers' caches: [layers][2][H, max_context, hd]. */
    if (layers > 0)
        ALLOC(self_cache, layers);
    float *caches = NULL;
    if (ok && layers > 0) {
        caches = session_alloc(s, layers * 2 * ctx_len * inner * sizeof(float));
        ok = caches != NULL;
    }
    for (size_t l = 0; ok && l < layers; l++) {
        s->self_cache[l].k = caches + (2 * l) * ctx_len * inner;
        s->self_cache[l].v = caches + (2 * l + 1) * ctx_len * inner;
    }
    if (seq2seq) {
        ALLOC(cross_cache, layers);
        float *cross = NULL;
        if (ok) {
            cross = session_alloc(s, layers * 2 * ctx_len * inner * sizeof(float));
            ok = cross != NULL;
        }
        for (size_t l = 0; ok && l < layers; l++) {
            s->cross_cache[l].k = cross + (2 * l) * ctx_len * inner;
            s->cross_cache[l].v = cross + (2 * l + 1) * ctx_len * inner;
        }
        ALLOC(memory, ctx_len * d);
    }
    if (c->n_encoder_layers > 0) {
        ALLOC(encoder_cache.k, ctx_len * inner);
        ALLOC(encoder_cache.v, ctx_len * inner);
    }
    ALLOC(branch, rows * d);
    ALLOC(source_visible, ctx_len);
    ALLOC(x, rows * d);
    ALLOC(normed, rows * d);
    ALLOC(mean, rows);
    ALLOC(rstd, rows);
    ALLOC(q, rows * inner);
    ALLOC(k, rows * inner);
    ALLOC(v, rows * inner);
    ALLOC(heads, rows * inner);
    ALLOC(merged, rows * inner);
    ALLOC(up, rows * f);
    ALLOC(gate, rows * f);
    ALLOC(hidden, rows * f);
    ALLOC(positions, rows * d);
    ALLOC(rope_cos, rows * (size_t)(c->head_dim / 2 + 1));
    ALLOC(rope_sin, rows * (size_t)(c->head_dim / 2 + 1));
    ALLOC(scores, (size_t)TLMI_ATTENTION_BLOCK);
    ALLOC(accumulator, (size_t)c->head_dim);
    if (ok) {
        /* The largest packing buffer any product of the session needs. */
        const tlmi_kernels *kernels = tlmi_kernels_active();
        const int64_t r = (int64_t)rows;
        const int64_t shapes[][2] = {{(int64_t)inner, (int64_t)d}, {(int64_t)d, (int64_t)inner},
                                     {(int64_t)f, (int64_t)d}, {(int64_t)d, (int64_t)f},
                                     {c->vocab_size, (int64_t)d}};
        size_t bytes = 0;
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            size_t need = kernels->gemm_workspace(r, shapes[i][0], shapes[i][1], 0, 1);
            bytes = need > bytes ? need : bytes;
        }
        bytes = tlmi_gemm_parallel_workspace(bytes, threads);
        if (bytes > 0) {
            s->workspace = bytes < SIZE_MAX ? session_alloc(s, bytes) : NULL;
            ok = s->workspace != NULL;
            s->workspace_bytes = bytes;
        }
        /* The attention kernel's scratch for `rows` queries over up to
         * max_context keys, for one head per thread. */
        size_t attention = kernels->attention_workspace(
            r, (int64_t)ctx_len, c->head_dim, c->head_dim, 0);
        attention = attention > SIZE_MAX - 63 ? SIZE_MAX
                                              : (attention + 63) / 64 * 64;
        if (ok && attention != SIZE_MAX && attention > 0) {
            s->attention_workspace =
                attention <= SIZE_MAX / (size_t)threads
                    ? session_alloc(s, attention * (size_t)threads)
                    : NULL;
            ok = s->attention_workspace != NULL;
            s->attention_workspace_bytes = attention;
        }
    }
#undef ALLOC
    if (!ok) {
        tlm_session_free(s);
        return tlmi_fail(&model->ctx->host, TLM_E_NOMEM,
                         "tlm_session_create: allocating the caches and "
                         "buffers failed");
    }
    status = tlmi_pool_create(&s->pool, &s->host, threads,
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
    if (session == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_session_reset: session is NULL");
    session->position = 0;
    session->source_length = 0;
    return TLM_OK;
}

TLM_API int32_t tlm_session_position(const tlm_session *session) {
    if (session == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_session_position: session is NULL");
    return session->position;
}

TLM_API const char *tlm_session_last_error(const tlm_session *session) {
    if (session == NULL)
        return "tlm_session_last_error: session is NULL";
    return session->host.last_error;
}

/* ---------------------------------------------------------------------- */
/* The forward pass on `n` rows of s->x, mirroring lib/forward.c. */

static const float *data_of(const tlm_tensor *t) {
    return t != NULL ? (const float *)t->data : NULL;
}

/* C [m, n] = A [m, k] . B^T (+ bias) with the dispatched kernel over the
 * session's threads (each a range of B's rows: decoding is reading the
 * weights, and the threads share that out), or the reference when the
 * workspace is too small for it (the kernels changed since the session
 * was made). */
static void gemm_nt(const tlm_session *s, float *c, const float *a,
                    const float *b, const float *bias, int64_t m, int64_t n,
                    int64_t k) {
    tlmi_gemm_parallel(s->pool, tlmi_kernels_active(), c, a, b, bias, m, n,
                       k, 0, 1, 0, s->workspace, s->workspace_bytes);
}

/* out [n, out_features] = in [n, in_features] . W^T + b */
static void linear(const tlm_session *s, float *out, const float *in,
                   const tlm_tensor *weight, const tlm_tensor *bias, int64_t n) {
    gemm_nt(s, out, in, data_of(weight), data_of(bias), n, weight->shape[0],
            weight->shape[1]);
}

/* The active ISA's row-wise kernels (the same the training ops use). */
static const tlmi_pointwise_kernels *pointwise(void) {
    return tlmi_kernels_active()->pointwise;
}

static void norm(const tlm_session *s, float *out, const float *in,
                 const tlmi_norm_params *p, int64_t n) {
    const tlm_model_config *c = &s->model->config;
    if (c->norm == TLM_NORM_RMS)
        pointwise()->rms_norm_forward(out, s->rstd, in, data_of(p->weight), n,
                              c->d_model, c->norm_eps);
    else
        pointwise()->layer_norm_forward(out, s->mean, s->rstd, in, data_of(p->weight),
                                data_of(p->bias), n, c->d_model, c->norm_eps);
}

/* Copies rows [n, H*hd] into a head-major cache [H, capacity, hd] at rows
 * first..first+n-1. */
static void store_heads(float *cache, const float *rows, int64_t n,
                        int64_t first, int64_t capacity, int64_t n_heads,
                        int64_t head_dim) {
    for (int64_t h = 0; h < n_heads; h++)
        for (int64_t i = 0; i < n; i++)
            memcpy(cache + (h * capacity + first + i) * head_dim,
                   rows + i * n_heads * head_dim + h * head_dim,
                   (size_t)head_dim * sizeof(float));
}

/* One attention call of the session: queries [n, H*hd] (row stride
 * ld_q), keys and values in a head-major cache, the heads written side by
 * side into s->merged [n, H*hd]. */
typedef struct session_attention {
    tlm_session *s;
    const tlmi_kernels *kernels;
    const float *q;
    int64_t ld_q, q_head_stride; /* head h's queries at q + h * stride */
    const kv_cache *cache;
    int64_t n, tk, capacity;
    int causal;
    const unsigned char *visible;
} session_attention;

static void attend_heads(void *arg, int64_t begin, int64_t end, int thread) {
    const session_attention *a = arg;
    tlm_session *s = a->s;
    const int64_t h_count = s->model->config.n_heads;
    const int64_t hd = s->model->config.head_dim;
    void *workspace =
        s->attention_workspace + (size_t)thread * s->attention_workspace_bytes;
    for (int64_t h = begin; h < end; h++)
        a->kernels->attention_forward(
            s->merged + h * hd, NULL, a->q + h * a->q_head_stride,
            a->cache->k + h * a->capacity * hd,
            a->cache->v + h * a->capacity * hd, a->visible, a->n, a->tk, hd,
            hd, a->ld_q, hd, hd, h_count * hd, a->causal, workspace);
}

/* Below this many multiply-adds (n x tk x hd) a head is not worth handing
 * to another thread. */
#define SESSION_ATTENTION_MIN_WORK 65536

/* Self- or cross-attention of `n` query rows in s->normed (or the input
 * given), keys/values in `cache` rows 0..tk-1; result [n, D] added into
 * `out` via the output projection. The heads are shared out over the
 * session's threads, each computed whole by one (the same result for any
 * thread count). */
static void attend(tlm_session *s, float *out, const float *in,
                   const tlmi_attention_params *p, const kv_cache *cache,
                   int64_t n, int64_t tk, int64_t capacity, int causal,
                   const unsigned char *visible, int rotary, int64_t offset) {
    const tlm_model_config *c = &s->model->config;
    const int64_t h_count = c->n_heads, hd = c->head_dim;
    linear(s, s->q, in, p->q_weight, p->q_bias, n);
    session_attention a = {.s = s, .q = s->q, .ld_q = h_count * hd,
                           .q_head_stride = hd, .cache = cache, .n = n,
                           .tk = tk, .capacity = capacity, .causal = causal,
                           .visible = visible};
    if (rotary) {
        /* Rotation works on each head's own rows: split them out first. */
        tlmi_split_heads_forward(s->heads, s->q, 1, n, h_count, hd); /* [H, n, hd] */
        tlmi_rope_table(s->rope_cos, s->rope_sin, offset, n, hd, (double)c->rope_base);
        tlmi_rope_forward(s->heads, s->heads, s->rope_cos, s->rope_sin, h_count, n, hd);
        a.q = s->heads;
        a.ld_q = hd;
        a.q_head_stride = n * hd;
    }
    /* The dispatched kernel when its scratch fits (the kernels may have
     * changed since the session was made), else the reference, one head at
     * a time. */
    a.kernels = tlmi_kernels_active();
    if (a.kernels->attention_workspace(n, tk, hd, hd, 0) <=
        s->attention_workspace_bytes) {
        const int64_t work = n * tk * hd;
        const int64_t grain =
            work >= SESSION_ATTENTION_MIN_WORK
                ? 1
                : (SESSION_ATTENTION_MIN_WORK + work - 1) / work;
        tlmi_parallel_for(s->pool, h_count, grain, attend_heads, &a);
    } else {
        for (int64_t h = 0; h < h_count; h++)
            tlmi_attention_forward(
                s->merged + h * hd, NULL, s->scores, s->accumulator,
                a.q + h * a.q_head_stride, cache->k + h * capacity * hd,
                cache->v + h * capacity * hd, visible, n, tk, hd, hd, a.ld_q,
                hd, hd, h_count * hd, causal, TLMI_ATTENTION_BLOCK);
    }
    linear(s, out, s->merged, p->o_weight, p->o_bias, n);
}

/* New keys and values of rows `in` [n, D] into `cache` at first..first+n-1,
 * rotated for positions offset.. when rotary. */
static void cache_keys_values(tlm_session *s, const float *in,
                              const tlmi_attention_params *p, kv_cache *cache,
                              int64_t n, int64_t first, int64_t capacity,
                              int rotary) {
    const tlm_model_config *c = &s->model->config;
    const int64_t h_count = c->n_heads, hd = c->head_dim;
    linear(s, s->k, in, p->k_weight, p->k_bias, n);
    linear(s, s->v, in, p->v_weight, p->v_bias, n);
    store_heads(cache->k, s->k, n, first, capacity, h_count, hd);
    store_heads(cache->v, s->v, n, first, capacity, h_count, hd);
    if (rotary) {
        tlmi_rope_table(s->rope_cos, s->rope_sin, first, n, hd, (double)c->rope_base);
        for (int64_t h = 0; h < h_count; h++) {
            float *rows = cache->k + (h * capacity + first) * hd;
            tlmi_rope_forward(rows, rows, s->rope_cos, s->rope_sin, 1, n, hd);
        }
    }
}

static void feedforward(tlm_session *s, float *out, const float *in,
                        const tlmi_ffn_params *p, int64_t n) {
    const tlm_model_config *c = &s->model->config;
    const int64_t count = n * c->d_ff;
    linear(s, s->up, in, p->up_weight, p->up_bias, n);
    switch (c->activation) {
    case TLM_ACTIVATION_SWIGLU:
        linear(s, s->gate, in, p->gate_weight, p->gate_bias, n);
        pointwise()->swiglu_forward(s->hidden, s->gate, s->up, count);
        break;
    case TLM_ACTIVATION_RELU:
        pointwise()->relu_forward(s->hidden, s->up, count);
        break;
    case TLM_ACTIVATION_GELU_EXACT:
        tlmi_gelu_exact_forward(s->hidden, s->up, count);
        break;
    default:
        pointwise()->gelu_tanh_forward(s->hidden, s->up, count);
    }
    linear(s, out, s->hidden, p->down_weight, p->down_bias, n);
}

/* x = x + f, then the post-norm when that is the placement. */
static void residual(tlm_session *s, float *x, const float *f,
                     const tlmi_norm_params *n_params, int64_t n) {
    const tlm_model_config *c = &s->model->config;
    const int64_t count = n * c->d_model;
    pointwise()->add(x, x, f, count);
    if (c->norm_placement == TLM_NORM_POST)
        norm(s, x, x, n_params, n);
}

/* ids -> s->x [n, D]: token embedding plus positions offset..offset+n-1. */
static void embed(tlm_session *s, const int32_t *ids, int64_t n, int64_t offset) {
    const tlm_model *m = s->model;
    const int64_t d = m->config.d_model;
    tlmi_embedding_forward(s->x, data_of(m->token_embedding), ids, n, d);
    if (m->config.position == TLM_POSITION_LEARNED) {
        const float *rows = data_of(m->position_embedding) + offset * d;
        tlmi_add_forward(s->x, s->x, rows, n * d, n * d);
    } else if (m->config.position == TLM_POSITION_SINUSOIDAL) {
        tlmi_sinusoidal_table(s->positions, offset, n, d);
        tlmi_add_forward(s->x, s->x, s->positions, n * d, n * d);
    }
}

/* The input after the final norm (pre-norm), in s->normed or s->x. */
static const float *final_output(tlm_session *s, const tlmi_norm_params *final_norm,
                                 int64_t n) {
    if (s->model->config.norm_placement != TLM_NORM_PRE)
        return s->x;
    norm(s, s->normed, s->x, final_norm, n);
    return s->normed;
}

/* logits [rows, V] of the last `rows` of y [n, D]. */
static void project(tlm_session *s, float *logits, const float *y, int64_t n,
                    int64_t rows) {
    const tlm_model *m = s->model;
    const tlm_tensor *head = m->config.tied_output ? m->token_embedding : m->lm_head;
    gemm_nt(s, logits, y + (n - rows) * m->config.d_model, data_of(head), NULL,
            rows, m->config.vocab_size, m->config.d_model);
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

/* The encoder over s->x [n, D], bidirectional, keys masked by visible. */
static void encoder_stack(tlm_session *s, int64_t n, const unsigned char *visible) {
    const tlm_model *m = s->model;
    const tlm_model_config *c = &m->config;
    const int pre = c->norm_placement == TLM_NORM_PRE;
    const int rotary = c->position == TLM_POSITION_ROTARY;
    for (int32_t l = 0; l < c->n_encoder_layers; l++) {
        const tlmi_layer_params *layer = &m->encoder[l];
        const float *in = s->x;
        if (pre) {
            norm(s, s->normed, s->x, &layer->self_attn_norm, n);
            in = s->normed;
        }
        const int64_t capacity = c->max_context;
        cache_keys_values(s, in, &layer->self_attn, &s->encoder_cache, n, 0,
                          capacity, rotary);
        attend(s, s->branch, in, &layer->self_attn, &s->encoder_cache, n, n,
               capacity, 0, visible, rotary, 0);
        residual(s, s->x, s->branch, &layer->self_attn_norm, n);
        in = s->x;
        if (pre) {
            norm(s, s->normed, s->x, &layer->ffn_norm, n);
            in = s->normed;
        }
        feedforward(s, s->branch, in, &layer->ffn, n);
        residual(s, s->x, s->branch, &layer->ffn_norm, n);
    }
}

TLM_API int tlm_session_encode(tlm_session *s, const int32_t *src_ids,
                               size_t n_ids, const int32_t *src_mask,
                               float *logits) {
    /* A length past INT32_MAX is past any max_context: refused below. */
    const int32_t n = n_ids < INT32_MAX ? (int32_t)n_ids : INT32_MAX;
    if (s == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_session_encode: session is NULL");
    const tlm_model *m = s->model;
    const tlm_model_config *c = &m->config;
    if (c->n_encoder_layers == 0)
        return tlmi_fail(&s->host, TLM_E_STATE,
                         "tlm_session_encode: the model has no encoder");
    if (src_ids == NULL)
        return tlmi_fail(&s->host, TLM_E_INVALID, "tlm_session_encode: src_ids is NULL");
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
    int status = check_ids(s, "tlm_session_encode: src_ids", src_ids, n);
    if (status != TLM_OK)
        return status;
    if (src_mask != NULL)
        tlmi_attention_visible_i32(s->source_visible, src_mask, n);
    s->has_source_mask = src_mask != NULL;
    const unsigned char *visible = src_mask != NULL ? s->source_visible : NULL;

    embed(s, src_ids, n, 0);
    encoder_stack(s, n, visible);
    const float *y = final_output(s, &m->encoder_final_norm, n);
    if (!seq2seq) {
        if (logits != NULL)
            project(s, logits, y, n, n);
        return TLM_OK;
    }
    memcpy(s->memory, y, (size_t)n * (size_t)c->d_model * sizeof(float));
    for (int32_t l = 0; l < c->n_decoder_layers; l++)
        cache_keys_values(s, s->memory, &m->decoder[l].cross_attn,
                          &s->cross_cache[l], n, 0, c->max_context, 0);
    s->source_length = n;
    s->position = 0;
    return TLM_OK;
}

TLM_API int tlm_session_decode(tlm_session *s, const int32_t *ids, size_t n_ids,
                               float *logits, int32_t logits_rows) {
    /* A length past INT32_MAX is past any max_context: refused below. */
    const int32_t n = n_ids < INT32_MAX ? (int32_t)n_ids : INT32_MAX;
    if (s == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_session_decode: session is NULL");
    const tlm_model *m = s->model;
    const tlm_model_config *c = &m->config;
    if (c->n_decoder_layers == 0)
        return tlmi_fail(&s->host, TLM_E_STATE,
                         "tlm_session_decode: the model has no decoder (use "
                         "tlm_session_encode)");
    const int seq2seq = c->n_encoder_layers > 0;
    if (seq2seq && s->source_length == 0)
        return tlmi_fail(&s->host, TLM_E_STATE,
                         "tlm_session_decode: encode a source first "
                         "(tlm_session_encode)");
    if (ids == NULL)
        return tlmi_fail(&s->host, TLM_E_INVALID, "tlm_session_decode: ids is NULL");
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
    int status = check_ids(s, "tlm_session_decode: ids", ids, n);
    if (status != TLM_OK)
        return status;

    const int pre = c->norm_placement == TLM_NORM_PRE;
    const int rotary = c->position == TLM_POSITION_ROTARY;
    const unsigned char *source_visible = s->has_source_mask ? s->source_visible : NULL;
    /* Chunks of at most s->chunk positions; each sees the cache so far. */
    for (int32_t done = 0; done < n;) {
        const int64_t count = n - done < s->chunk ? n - done : s->chunk;
        const int64_t first = s->position;
        embed(s, ids + done, count, first);
        for (int32_t l = 0; l < c->n_decoder_layers; l++) {
            const tlmi_layer_params *layer = &m->decoder[l];
            const float *in = s->x;
            if (pre) {
                norm(s, s->normed, s->x, &layer->self_attn_norm, count);
                in = s->normed;
            }
            cache_keys_values(s, in, &layer->self_attn, &s->self_cache[l], count,
                              first, c->max_context, rotary);
            attend(s, s->branch, in, &layer->self_attn, &s->self_cache[l], count,
                   first + count, c->max_context, 1, NULL, rotary, first);
            residual(s, s->x, s->branch, &layer->self_attn_norm, count);
            if (seq2seq) {
                in = s->x;
                if (pre) {
                    norm(s, s->normed, s->x, &layer->cross_attn_norm, count);
                    in = s->normed;
                }
                attend(s, s->branch, in, &layer->cross_attn, &s->cross_cache[l],
                       count, s->source_length, c->max_context, 0,
                       source_visible, 0, 0);
                residual(s, s->x, s->branch, &layer->cross_attn_norm, count);
            }
            in = s->x;
            if (pre) {
                norm(s, s->normed, s->x, &layer->ffn_norm, count);
                in = s->normed;
            }
            feedforward(s, s->branch, in, &layer->ffn, count);
            residual(s, s->x, s->branch, &layer->ffn_norm, count);
        }
        s->position += (int32_t)count;
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
            const float *y = final_output(s, &m->decoder_final_norm, count);
            project(s, dest, y, count, wanted);
        }
    }
    return TLM_OK;
}

const tlm_model *tlmi_session_model(const tlm_session *session) {
    return session->model;
}

tlmi_host *tlmi_session_host(tlm_session *session) { return &session->host; }

/* Copies rows 0..rows-1 of every head of a [H, capacity, hd] cache. */
static void copy_cache_rows(float *dst, const float *src, int64_t rows,
                            int64_t capacity, int64_t n_heads, int64_t head_dim) {
    for (int64_t h = 0; h < n_heads; h++)
        memcpy(dst + h * capacity * head_dim, src + h * capacity * head_dim,
               (size_t)(rows * head_dim) * sizeof(float));
}

TLM_API int tlm_session_copy(tlm_session *dst, const tlm_session *src) {
    if (dst == NULL || src == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_session_copy: %s is NULL",
                                dst == NULL ? "dst" : "src");
    if (dst->model != src->model)
        return tlmi_fail(&dst->host, TLM_E_INVALID,
                         "tlm_session_copy: dst and src run different models");
    if (dst == src)
        return TLM_OK;
    const tlm_model_config *c = &src->model->config;
    const int64_t h_count = c->n_heads, hd = c->head_dim, capacity = c->max_context;
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
