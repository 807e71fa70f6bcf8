/*
 * Generation and scoring: the tokenizer, a session's KV cache and a
 * sampler put together, text in and text out.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/params.h"
#include "model/model.h"
#include "model/session.h"
#include "text/tokenizer.h"

/* Positions scored per session call: bounds the logits buffer to this
 * many rows of the vocabulary. */
#define SCORE_CHUNK 16

TLM_API int tlm_generate_params_init(tlm_generate_params *params) {
    TLMI_PARAMS_INIT("tlm_generate_params_init", params);
    params->max_tokens = 256;
    params->stop_at_eos = 1;
    return TLM_OK;
}

/* Checks that session, tokenizer (and model kind) fit together; the
 * model's configuration in *config. */
static int check_pair(tlm_session *session, tlm_tokenizer *tokenizer,
                      const char *what, tlm_model_config *config) {
    TLMI_CHECK_NOT_NULL(NULL, what, session);
    TLMI_CHECK_NOT_NULL(NULL, what, tokenizer);
    const tlm_model *model = tlmi_session_model(session);
    config->struct_size = sizeof *config;
    tlm_model_get_config(model, config);
    tlmi_host *host = tlmi_session_host(session);
    if (config->n_encoder_layers > 0 || config->n_decoder_layers == 0)
        return tlmi_fail(host, TLM_E_STATE, "%s: the model is not decoder-only",
                         what);
    const int32_t vocab = tlm_tokenizer_vocab_size(tokenizer);
    if (vocab != config->vocab_size)
        return tlmi_fail(host, TLM_E_INVALID, "%s: the tokenizer has %d ids, the "
                         "model's vocabulary %d", what, (int)vocab,
                         (int)config->vocab_size);
    return TLM_OK;
}

/* Encodes `length` bytes into host memory: *ids (release with
 * tlmi_host_free(host, *ids, *capacity * sizeof(int32_t))). When
 * `starts_text`, the begin-of-text id first if the tokenizer adds one
 * (SentencePiece, as llama2.c and Hugging Face do); else the text
 * continues the one before it (SentencePiece: no dummy prefix). */
static int encode(tlmi_host *host, const char *what, tlm_tokenizer *tokenizer,
                  const char *text, size_t length, int starts_text,
                  int32_t **ids, size_t *n, size_t *capacity) {
    *ids = NULL;
    const size_t first =
        starts_text && tlmi_tokenizer_adds_bos(tokenizer) ? 1 : 0;
    /* Room for one id per byte, which every kind but SentencePiece (its
     * dummy prefix, byte pieces) keeps to; a second pass with the room the
     * first asked for when not. */
    size_t room = length > 0 ? length : 1;
    for (int pass = 0; pass < 2; pass++) {
        if (room > SIZE_MAX / sizeof **ids - first)
            return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", what);
        *capacity = room + first;
        *ids = tlmi_host_alloc(host, *capacity * sizeof **ids, 64);
        if (*ids == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", what);
        if (first)
            (*ids)[0] = tokenizer->bos_id;
        int status = starts_text
                         ? tlm_tokenizer_encode(tokenizer, text, length,
                                                *ids + first, room, n)
                         : tlmi_tokenizer_encode_continuing(
                               tokenizer, text, length, *ids, room, n);
        if (status == TLM_OK) {
            *n += first;
            return TLM_OK;
        }
        tlmi_host_free(host, *ids, *capacity * sizeof **ids);
        *ids = NULL;
        if (status != TLM_E_RANGE || *n <= room || pass == 1)
            return tlmi_fail_forward(host, status, "%s", what);
        room = *n;
    }
    return TLM_OK; /* not reached */
}

/* Buffers one generation needs: the window of recent ids and one row of
 * logits. */
typedef struct generation {
    tlmi_host *host;
    tlm_session *session;
    int32_t *window;   /* [max_context] */
    int32_t filled;
    float *logits;     /* [vocab] */
    int32_t max_context;
    char *tail;        /* the last bytes handed out, for the stop string */
    size_t tail_size;
    size_t tail_capacity;
} generation;

/* Feeds ids into the session, or, when the cache is full, restarts it
 * from the most recent half of the context. */
static int feed(generation *g, const int32_t *ids, int32_t n) {
    for (int32_t i = 0; i < n; i++) {
        if (g->filled == g->max_context) {
            const int32_t keep = g->max_context / 2;
            memmove(g->window, g->window + g->filled - keep, (size_t)keep * sizeof *g->window);
            g->filled = keep;
        }
        g->window[g->filled++] = ids[i];
    }
    if (tlm_session_position(g->session) + n > g->max_context ||
        tlm_session_position(g->session) + n != g->filled) {
        tlm_session_reset(g->session);
        return tlm_session_decode(g->session, g->window, g->filled, g->logits, 1);
    }
    return tlm_session_decode(g->session, ids, n, g->logits, 1);
}

/* Appends a piece to the tail buffer and reports whether `stop` ends it. */
static int stop_reached(generation *g, const char *stop, size_t stop_length,
                        const char *piece, size_t length) {
    if (stop_length == 0)
        return 0;
    for (size_t i = 0; i < length; i++) {
        if (g->tail_size == g->tail_capacity) {
            memmove(g->tail, g->tail + 1, g->tail_capacity - 1);
            g->tail_size--;
        }
        g->tail[g->tail_size++] = piece[i];
        if (g->tail_size >= stop_length &&
            memcmp(g->tail + g->tail_size - stop_length, stop, stop_length) == 0)
            return 1;
    }
    return 0;
}

TLM_API int tlm_generate(tlm_session *session, tlm_sampler *sampler,
                         tlm_tokenizer *tokenizer, const char *prompt,
                         size_t length, const tlm_generate_params *given,
                         int32_t *n_generated) {
    const char *what = "tlm_generate";
    if (n_generated != NULL)
        *n_generated = 0;
    tlm_model_config config;
    TLMI_TRY(check_pair(session, tokenizer, what, &config));
    tlmi_host *host = tlmi_session_host(session);
    TLMI_CHECK_NOT_NULL(host, what, sampler);
    TLMI_CHECK(host, prompt != NULL || length == 0, TLM_E_INVALID,
               "%s: prompt is NULL", what);
    tlm_generate_params params;
    tlm_generate_params_init(&params);
    int status = tlmi_params_merge(host, "tlm_generate: params", &params, sizeof params,
                               given);
    if (status != TLM_OK)
        return status;
    if (params.max_tokens < 0 || (params.stop_at_eos != 0 && params.stop_at_eos != 1))
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.max_tokens %d must be >= 0 "
                         "and params.stop_at_eos 0 or 1", what, (int)params.max_tokens);
    if (params.continue_session != 0 && params.continue_session != 1)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.continue_session %d must "
                         "be 0 or 1", what, (int)params.continue_session);
    /* Continuing a non-empty session: the prompt follows its positions. */
    const int32_t history = params.continue_session ? tlm_session_position(session) : 0;
    const size_t stop_length = params.stop != NULL ? strlen(params.stop) : 0;
    if (stop_length > 4096)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.stop is longer than 4096 "
                         "bytes", what);

    int32_t *prompt_ids = NULL;
    size_t n_prompt = 0, prompt_capacity = 0;
    status = encode(host, what, tokenizer, prompt, length, history == 0, &prompt_ids,
                    &n_prompt, &prompt_capacity);
    if (status != TLM_OK)
        return status;
    generation g = {host, session, NULL, 0, NULL, config.max_context, NULL, 0,
                    stop_length};
    tlm_token_stream *stream = NULL;
    int32_t produced = 0;
    if (n_prompt == 0) {
        status = tlmi_fail(host, TLM_E_INVALID, "%s: the prompt encodes to no "
                           "token (give at least one character)", what);
        goto cleanup;
    }
    if (params.continue_session &&
        (int64_t)history + (int64_t)n_prompt >= (int64_t)g.max_context) {
        status = tlmi_fail(host, TLM_E_RANGE, "%s: the conversation is full: %d "
                           "positions used and %zu prompt tokens leave no room "
                           "in the context of %d (reset the session)",
                           what, (int)history, n_prompt, (int)g.max_context);
        goto cleanup;
    }
    g.window = tlmi_host_alloc(host, (size_t)g.max_context * sizeof *g.window, 64);
    g.logits = tlmi_host_alloc(host, (size_t)config.vocab_size * sizeof *g.logits, 64);
    g.tail = stop_length ? tlmi_host_alloc(host, stop_length, 1) : NULL;
    if (g.window == NULL || g.logits == NULL || (stop_length && g.tail == NULL)) {
        status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", what);
        goto cleanup;
    }
    status = tlm_token_stream_create(&stream, tokenizer);
    if (status != TLM_OK)
        goto cleanup;
    /* The generated text continues the prompt: its first space stays.
     * After BOS alone (an empty prompt) it starts the text and loses it,
     * as llama2.c's run.c and SentencePiece's decode do. */
    if (length > 0)
        tlmi_token_stream_continue(stream);
    if (!params.continue_session) {
        status = tlm_sampler_reset(sampler);
        if (status != TLM_OK)
            goto cleanup;
    }
    /* The prompt: its last max_context - 1 tokens, in one batched pass
     * (continuing: all of it fits, checked above). */
    const size_t skip = n_prompt >= (size_t)g.max_context ? n_prompt - (size_t)g.max_context + 1 : 0;
    for (size_t i = skip; i < n_prompt; i++) {
        status = tlm_sampler_accept(sampler, prompt_ids[i]);
        if (status != TLM_OK)
            goto cleanup;
    }
    if (params.continue_session) {
        /* No sliding window: the session's own cache is the history. */
        status = tlm_session_decode(session, prompt_ids, n_prompt, g.logits, 1);
    } else {
        tlm_session_reset(session);
        status = feed(&g, prompt_ids + skip, (int32_t)(n_prompt - skip));
    }
    if (status != TLM_OK)
        goto cleanup;
    const int32_t eos = tlm_tokenizer_special_id(tokenizer, TLM_TOKEN_EOS);
    int done = 0;
    while (!done && produced < params.max_tokens) {
        int32_t token = 0;
        float logprob = 0;
        status = tlm_sampler_sample(sampler, g.logits, config.vocab_size, &token, &logprob);
        if (status == TLM_OK)
            status = tlm_sampler_accept(sampler, token);
        const char *piece = NULL;
        size_t piece_length = 0;
        if (status == TLM_OK)
            status = tlm_token_stream_push(stream, token, &piece, &piece_length);
        if (status != TLM_OK)
            goto cleanup;
        produced++;
        if (params.callback != NULL &&
            params.callback(params.callback_user, token, piece, piece_length, logprob))
            done = 1;
        if (stop_reached(&g, params.stop, stop_length, piece, piece_length) ||
            (params.stop_at_eos && token == eos))
            done = 1;
        if (params.continue_session) {
            /* Every token stays in the session, the last one too, so the
             * next turn follows it; a full context ends the turn. */
            status = tlm_session_decode(session, &token, 1, g.logits, 1);
            if (status != TLM_OK)
                goto cleanup;
            if (tlm_session_position(session) >= g.max_context)
                done = 1;
        } else if (!done && produced < params.max_tokens) {
            status = feed(&g, &token, 1);
            if (status != TLM_OK)
                goto cleanup;
        }
    }
    const char *rest = NULL; /* what the stream held back */
    size_t rest_length = 0;
    status = tlm_token_stream_flush(stream, &rest, &rest_length);
    if (status == TLM_OK && rest_length > 0 && params.callback != NULL)
        params.callback(params.callback_user, -1, rest, rest_length, 0.0f);
cleanup:
    if (status != TLM_OK && host->last_error[0] == '\0')
        tlmi_fail_forward(host, status, "%s", what);
    tlm_token_stream_free(stream);
    if (g.tail != NULL)
        tlmi_host_free(host, g.tail, stop_length);
    if (g.logits != NULL)
        tlmi_host_free(host, g.logits, (size_t)config.vocab_size * sizeof *g.logits);
    if (g.window != NULL)
        tlmi_host_free(host, g.window, (size_t)g.max_context * sizeof *g.window);
    tlmi_host_free(host, prompt_ids, prompt_capacity * sizeof *prompt_ids);
    if (n_generated != NULL)
        *n_generated = produced;
    return status;
}

/* Fills *entry for the row `logits` [vocab] and the token `id` it
 * predicts, whose log-probability `logprob` tlm_log_softmax_at has just
 * computed (and checked the row with): the log-sum-exp of the row is
 * logits[id] - logprob, so it is not summed again. Also the rank of `id`
 * and the top_k best ids (a partial insertion sort; ties: lower id
 * first). */
static void describe_position(const float *logits, int32_t id, float logprob,
                              int32_t vocab, int32_t top_k,
                              tlm_token_logprob *entry) {
    double log_total = (double)logits[id] - (double)logprob;
    if (!isfinite(log_total)) {
        /* logits[id] is -infinity: sum the row after all. */
        float max = -INFINITY;
        for (int32_t j = 0; j < vocab; j++)
            max = logits[j] > max ? logits[j] : max;
        double total = 0;
        for (int32_t j = 0; j < vocab; j++)
            total += exp((double)logits[j] - (double)max);
        log_total = (double)max + log(total);
    }
    memset(entry, 0, sizeof *entry);
    entry->id = id;
    entry->logprob = logprob;
    int32_t rank = 0;
    for (int32_t j = 0; j < vocab; j++) {
        if (logits[j] > logits[id] || (logits[j] == logits[id] && j < id))
            rank++;
        /* Insert j among the best so far when it beats the last kept. */
        int32_t at = entry->n_top;
        while (at > 0 && logits[j] > logits[entry->top_ids[at - 1]])
            at--;
        if (at >= top_k)
            continue;
        const int32_t kept = entry->n_top < top_k ? entry->n_top : top_k - 1;
        memmove(entry->top_ids + at + 1, entry->top_ids + at,
                (size_t)(kept - at) * sizeof *entry->top_ids);
        entry->top_ids[at] = j;
        entry->n_top = kept + 1;
    }
    entry->rank = rank;
    for (int32_t t = 0; t < entry->n_top; t++)
        entry->top_logprobs[t] =
            (float)((double)logits[entry->top_ids[t]] - log_total);
}

/* Where score_range puts what it scores: a sum and a count, and, when
 * `detail` is not NULL, each position's entry (detail[p] for position p). */
typedef struct score_sink {
    double sum;
    int64_t scored;
    tlm_token_logprob *detail;
    int32_t top_k;
} score_sink;

/* Feeds ids[first .. first+count) into the session and scores, for every
 * position p in that range with p >= score_from, log p(ids[p+1] | ...)
 * into *sink (when p + 1 < n). `logits` holds SCORE_CHUNK rows. */
static int score_range(tlm_session *session, const int32_t *ids, int64_t n,
                       int64_t first, int64_t count, int64_t score_from,
                       int32_t vocab, float *logits, score_sink *sink) {
    for (int64_t at = first; at < first + count; at += SCORE_CHUNK) {
        const int32_t rows = (int32_t)(first + count - at < SCORE_CHUNK ? first + count - at : SCORE_CHUNK);
        int status = tlm_session_decode(session, ids + at, rows, logits, rows);
        if (status != TLM_OK)
            return status;
        for (int32_t r = 0; r < rows; r++) {
            const int64_t p = at + r;
            if (p < score_from || p + 1 >= n)
                continue;
            float lp = 0;
            const float *row = logits + (int64_t)r * vocab;
            status = tlm_log_softmax_at(row, vocab, ids[p + 1], &lp);
            if (status != TLM_OK)
                return status;
            if (sink->detail != NULL)
                describe_position(row, ids[p + 1], lp, vocab, sink->top_k,
                                  &sink->detail[p]);
            sink->sum += (double)lp;
            sink->scored++;
        }
    }
    return TLM_OK;
}

/* Scores ids[from .. n) given everything before, in windows of the
 * context keeping half a context of history. */
static int score_ids(tlm_session *session, const int32_t *ids, int64_t n,
                     int64_t from, int32_t max_context, int32_t vocab,
                     float *logits, score_sink *sink) {
    /* Position p predicts ids[p + 1]: positions from - 1 .. n - 2. */
    int64_t next = from > 0 ? from - 1 : 0;
    while (next < n - 1) {
        const int64_t history = next >= max_context / 2 ? max_context / 2 : next;
        const int64_t start = next - history;
        const int64_t end = start + max_context < n ? start + max_context : n;
        tlm_session_reset(session);
        int status = score_range(session, ids, n, start, end - start, next, vocab,
                                 logits, sink);
        if (status != TLM_OK)
            return status;
        next = end; /* every position before `end` is scored */
    }
    return TLM_OK;
}

TLM_API int tlm_score_text(tlm_session *session, tlm_tokenizer *tokenizer,
                           const char *text, size_t length, double *logprob,
                           int64_t *n_scored) {
    const char *what = "tlm_score_text";
    tlm_model_config config;
    TLMI_TRY(check_pair(session, tokenizer, what, &config));
    tlmi_host *host = tlmi_session_host(session);
    TLMI_CHECK_NOT_NULL(host, what, logprob);
    TLMI_CHECK_NOT_NULL(host, what, n_scored);
    TLMI_CHECK(host, text != NULL || length == 0, TLM_E_INVALID,
               "%s: text is NULL", what);
    *logprob = 0;
    *n_scored = 0;
    int32_t *ids = NULL;
    size_t n = 0, capacity = 0;
    int status = encode(host, what, tokenizer, text, length, 1, &ids, &n,
                        &capacity);
    if (status != TLM_OK)
        return status;
    const size_t logits_bytes = (size_t)SCORE_CHUNK * (size_t)config.vocab_size * sizeof(float);
    score_sink sink = {0, 0, NULL, 0};
    float *logits = tlmi_host_alloc(host, logits_bytes, 64);
    if (logits == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", what);
        goto cleanup;
    }
    status = score_ids(session, ids, (int64_t)n, 1, config.max_context,
                       config.vocab_size, logits, &sink);
cleanup:
    if (logits != NULL)
        tlmi_host_free(host, logits, logits_bytes);
    tlmi_host_free(host, ids, capacity * sizeof *ids);
    if (status == TLM_OK) {
        *logprob = sink.sum;
        *n_scored = sink.scored;
    }
    return status;
}

TLM_API int tlm_score_continuation(tlm_session *session,
                                   tlm_tokenizer *tokenizer,
                                   const char *prompt, size_t prompt_length,
                                   const char *continuation,
                                   size_t continuation_length,
                                   double *logprob) {
    const char *what = "tlm_score_continuation";
    tlm_model_config config;
    TLMI_TRY(check_pair(session, tokenizer, what, &config));
    tlmi_host *host = tlmi_session_host(session);
    TLMI_CHECK_NOT_NULL(host, what, logprob);
    TLMI_CHECK(host, prompt != NULL || prompt_length == 0, TLM_E_INVALID,
               "%s: prompt is NULL", what);
    TLMI_CHECK(host, continuation != NULL || continuation_length == 0,
               TLM_E_INVALID, "%s: continuation is NULL", what);
    *logprob = 0;
    /* Prompt and continuation encoded apart, then joined: the
     * continuation's tokens are exactly its own (SentencePiece: encoded as
     * continuing the prompt, without the dummy prefix). */
    int32_t *a = NULL, *b = NULL, *joined = NULL;
    float *logits = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0, joined_bytes = 0;
    const size_t logits_bytes = (size_t)SCORE_CHUNK * (size_t)config.vocab_size * sizeof(float);
    score_sink sink = {0, 0, NULL, 0};
    int status = encode(host, what, tokenizer, prompt, prompt_length, 1, &a,
                        &na, &ca);
    if (status != TLM_OK)
        goto cleanup;
    status = encode(host, what, tokenizer, continuation, continuation_length, 0,
                    &b, &nb, &cb);
    if (status != TLM_OK)
        goto cleanup;
    if (na == 0) {
        status = tlmi_fail(host, TLM_E_INVALID, "%s: the prompt encodes to no token",
                           what);
        goto cleanup;
    }
    joined_bytes = (na + nb) * sizeof(int32_t);
    joined = tlmi_host_alloc(host, joined_bytes, 64);
    logits = tlmi_host_alloc(host, logits_bytes, 64);
    if (joined == NULL || logits == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", what);
        goto cleanup;
    }
    if (nb > 0) {
        memcpy(joined, a, na * sizeof *a);
        memcpy(joined + na, b, nb * sizeof *b);
        status = score_ids(session, joined, (int64_t)(na + nb), (int64_t)na,
                           config.max_context, config.vocab_size, logits, &sink);
    }
cleanup:
    if (logits != NULL)
        tlmi_host_free(host, logits, logits_bytes);
    if (joined != NULL)
        tlmi_host_free(host, joined, joined_bytes);
    if (b != NULL)
        tlmi_host_free(host, b, cb * sizeof *b);
    if (a != NULL)
        tlmi_host_free(host, a, ca * sizeof *a);
    if (status == TLM_OK)
        *logprob = sink.sum;
    return status;
}

TLM_API int tlm_score_tokens(tlm_session *session, const int32_t *ids,
                             size_t n, int32_t top_k,
                             tlm_token_logprob *out) {
    const char *what = "tlm_score_tokens";
    TLMI_CHECK_NOT_NULL(NULL, what, session);
    tlmi_host *host = tlmi_session_host(session);
    TLMI_CHECK_NOT_NULL(host, what, ids);
    TLMI_CHECK_NOT_NULL(host, what, out);
    tlm_model_config config;
    config.struct_size = sizeof config;
    tlm_model_get_config(tlmi_session_model(session), &config);
    if (config.n_encoder_layers > 0 || config.n_decoder_layers == 0)
        return tlmi_fail(host, TLM_E_STATE, "%s: the model is not decoder-only",
                         what);
    TLMI_CHECK(host, n >= 2 && n <= (size_t)INT64_MAX / sizeof *out,
               TLM_E_INVALID, "%s: n = %zu; give 2 or more ids (the first is "
               "context only)", what, n);
    TLMI_CHECK(host, top_k >= 0 && top_k <= TLM_TOP_LOGPROBS_MAX, TLM_E_INVALID,
               "%s: top_k = %d must be in 0..%d", what, (int)top_k,
               TLM_TOP_LOGPROBS_MAX);
    for (size_t i = 0; i < n; i++)
        TLMI_CHECK(host, ids[i] >= 0 && ids[i] < config.vocab_size, TLM_E_RANGE,
                   "%s: ids[%zu] = %d is outside the vocabulary 0..%d", what, i,
                   (int)ids[i], (int)config.vocab_size - 1);
    const size_t logits_bytes = (size_t)SCORE_CHUNK * (size_t)config.vocab_size * sizeof(float);
    float *logits = tlmi_host_alloc(host, logits_bytes, 64);
    if (logits == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", what);
    /* detail[p] is position p's entry: out[p] scores ids[p + 1]. */
    score_sink sink = {0, 0, out, top_k};
    int status = score_ids(session, ids, (int64_t)n, 1, config.max_context,
                           config.vocab_size, logits, &sink);
    tlmi_host_free(host, logits, logits_bytes);
    if (status != TLM_OK) {
        memset(out, 0, (n - 1) * sizeof *out);
        if (host->last_error[0] == '\0')
            tlmi_fail_forward(host, status, "%s", what);
    }
    return status;
}
