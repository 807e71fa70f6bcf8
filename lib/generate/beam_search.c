/*
 * Decoding for encoder-decoder models: beam search over a session's KV
 * cache, greedy decoding being its width-1 case (docs/seq2seq.md).
 *
 * The source is encoded once; every live hypothesis owns a session that has
 * consumed bos and the hypothesis's ids. A step ranks every extension of
 * every live hypothesis by total log-probability, finishes hypotheses on
 * the end id (or at max_length) and keeps the best beam_width others. A
 * child takes over its parent's session when it is the parent's first
 * child; further children get the session of a parent that has no child,
 * as a copy of their own parent (tlm_session_copy), so beam_width sessions
 * are always enough.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/layout.h"
#include "base/params.h"
#include "model/model.h"
#include "model/session.h"
#include "sampler.h"

#define MAX_BEAM_WIDTH 256

/* One extension of a live hypothesis: its total log-probability. */
typedef struct candidate {
    double total;
    int32_t beam;  /* the live hypothesis extended */
    int32_t token;
} candidate;

/* The state of one search; every array lives in one host block. */
typedef struct search {
    tlmi_host *host;
    int32_t width;      /* W */
    int32_t vocab;      /* V */
    int32_t max_length; /* L */
    int32_t eos_id;
    double alpha;       /* length penalty */

    tlm_session **pool; /* [W] sessions: pool[0] is the caller's */
    int32_t *slot;      /* [W] pool index of live hypothesis b */
    int32_t *next_slot; /* [W] */
    unsigned char *used; /* [W] pool entries taken this step */
    float *logits;      /* [W, V] next-token logits of live hypothesis b */
    double *logprobs;   /* [V] log-softmax of one row */
    int32_t *tokens;    /* [W, L] ids of live hypothesis b */
    int32_t *next_tokens; /* [W, L] */
    double *sums;       /* [W] log-probability of live hypothesis b */
    double *next_sums;  /* [W] */
    int32_t *parent;    /* [W] parent of next hypothesis j */
    int32_t *child_token; /* [W] its new id */
    candidate *candidates; /* [W * min(W + 1, V)] */
    int32_t *best;      /* [L] ids of the best finished hypothesis */
    int32_t best_length;
    double best_score;
    int has_best;
    int32_t n_finished;
} search;

TLM_API int tlm_beam_search_params_init(tlm_beam_search_params *params) {
    TLMI_PARAMS_INIT("tlm_beam_search_params_init", params);
    params->beam_width = 4;
    params->max_length = 0;
    params->bos_id = 0;
    params->eos_id = -1;
    params->length_penalty = 0.0f;
    return TLM_OK;
}

/* GNMT's length normalisation: ((5 + len) / 6)^alpha. */
static double length_factor(double alpha, int32_t length) {
    return alpha > 0.0 ? pow((5.0 + (double)length) / 6.0, alpha) : 1.0;
}

/* out[v] = x[v] - log(sum exp x), in double; 0 or TLM_E_NONFINITE. */
static int log_softmax(double *out, const float *x, int32_t n) {
    for (int32_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return TLM_E_NONFINITE;
    double top;
    const double log_sum = tlmi_log_sum_exp(x, n, &top);
    const double lse = top + log_sum;
    for (int32_t i = 0; i < n; i++)
        out[i] = (double)x[i] - lse;
    return TLM_OK;
}

/* Better first: higher total, then lower token id, then lower beam. */
static int candidate_order(const void *pa, const void *pb) {
    const candidate *a = pa, *b = pb;
    if (a->total != b->total)
        return a->total > b->total ? -1 : 1;
    if (a->token != b->token)
        return a->token < b->token ? -1 : 1;
    return (a->beam > b->beam) - (a->beam < b->beam);
}

/* Appends live hypothesis b's best k extensions (ties: lower id) to
 * s->candidates at *count. */
static void add_candidates(search *s, int32_t b, int32_t k, int32_t *count) {
    candidate *top = s->candidates + *count; /* .total holds the logprob */
    int32_t filled = 0;
    for (int32_t v = 0; v < s->vocab; v++) {
        const double lp = s->logprobs[v];
        if (filled == k && lp <= top[k - 1].total)
            continue;
        /* Insertion into the sorted list; an equal value stays before. */
        int32_t at = filled < k ? filled : k - 1;
        while (at > 0 && top[at - 1].total < lp) {
            top[at] = top[at - 1];
            at--;
        }
        top[at].total = lp;
        top[at].beam = b;
        top[at].token = v;
        if (filled < k)
            filled++;
    }
    for (int32_t i = 0; i < filled; i++)
        top[i].total += s->sums[b];
    *count += filled;
}

/* A finished hypothesis: `length` ids of `prefix` plus `last` (if >= 0),
 * log-probability `sum` over `scored` tokens. */
static void finish(search *s, const int32_t *prefix, int32_t length, int32_t last,
                   double sum, int32_t scored) {
    const double score = sum / length_factor(s->alpha, scored);
    s->n_finished++;
    if (s->has_best && !(score > s->best_score))
        return;
    memcpy(s->best, prefix, (size_t)length * sizeof *s->best);
    if (last >= 0)
        s->best[length++] = last;
    s->best_length = length;
    s->best_score = score;
    s->has_best = 1;
}

/* Lays out the search's arrays from `layout` (all NULL while measuring). */
static void search_layout(search *s, tlmi_layout *layout, size_t w, size_t v,
                          size_t l, size_t k) {
    const size_t w_v = tlmi_layout_mul(layout, w, v);
    const size_t w_l = tlmi_layout_mul(layout, w, l);
    const size_t w_k = tlmi_layout_mul(layout, w, k);
#define TAKE(field, count) \
    (s->field = tlmi_layout_take(layout, (count), sizeof *s->field))
    TAKE(pool, w);
    TAKE(slot, w);
    TAKE(next_slot, w);
    TAKE(used, w);
    TAKE(logits, w_v);
    TAKE(logprobs, v);
    TAKE(tokens, w_l);
    TAKE(next_tokens, w_l);
    TAKE(sums, w);
    TAKE(next_sums, w);
    TAKE(parent, w);
    TAKE(child_token, w);
    TAKE(candidates, w_k);
    TAKE(best, l);
#undef TAKE
}

/* The search proper, once buffers and sessions are in place. */
static int run_search(search *s, const int32_t *src_ids, size_t n_src,
                      const int32_t *src_mask, int32_t bos_id) {
    tlm_session *first = s->pool[0];
    int status = tlm_session_encode(first, src_ids, n_src, src_mask, NULL);
    if (status == TLM_OK)
        status = tlm_session_decode(first, &bos_id, 1, s->logits, 1);
    if (status != TLM_OK)
        return tlmi_fail_forward_from(s->host, status,
                                      tlm_session_last_error(first),
                                      "tlm_beam_search");
    const int32_t w = s->width, v = s->vocab, l = s->max_length;
    const int32_t k = w + 1 < v ? w + 1 : v;
    int32_t live = 1;
    s->slot[0] = 0;
    s->sums[0] = 0.0;
    for (int32_t step = 0; live > 0; step++) {
        /* Every live hypothesis's best k extensions, ranked together. */
        int32_t count = 0;
        for (int32_t b = 0; b < live; b++) {
            if (log_softmax(s->logprobs, s->logits + (size_t)b * (size_t)v, v) != TLM_OK)
                return tlmi_fail(s->host, TLM_E_NONFINITE,
                                 "tlm_beam_search: the logits of hypothesis %d at "
                                 "step %d are not finite", (int)b, (int)step);
            add_candidates(s, b, k, &count);
        }
        qsort(s->candidates, (size_t)count, sizeof *s->candidates, candidate_order);
        /* The end id among the first W finishes its parent; the best W
         * others live on (or finish, at max_length). */
        int32_t next = 0, kept = 0;
        for (int32_t i = 0; i < count && kept < w; i++) {
            const candidate *c = &s->candidates[i];
            const int32_t *prefix = s->tokens + (size_t)c->beam * (size_t)l;
            if (c->token == s->eos_id) {
                if (i < w)
                    finish(s, prefix, step, -1, c->total, step + 1);
                continue;
            }
            kept++;
            if (step + 1 == l) {
                finish(s, prefix, step, c->token, c->total, step + 1);
                continue;
            }
            s->parent[next] = c->beam;
            s->child_token[next] = c->token;
            s->next_sums[next] = c->total;
            next++;
        }
        if (next == 0 || s->n_finished >= w)
            break;
        /* No live hypothesis can beat the best finished one: its
         * log-probability only falls, and its length factor is at most
         * max_length's. */
        if (s->has_best &&
            s->best_score >= s->next_sums[0] / length_factor(s->alpha, l))
            break;

        /* Sessions: a parent's first child takes the parent's; the others
         * copy their parent into a session no child has taken. */
        memset(s->used, 0, (size_t)w);
        for (int32_t j = 0; j < next; j++) {
            const int32_t p = s->parent[j];
            s->next_slot[j] = -1;
            if (!s->used[s->slot[p]]) {
                s->used[s->slot[p]] = 1;
                s->next_slot[j] = s->slot[p];
            }
        }
        int32_t free_slot = 0;
        for (int32_t j = 0; j < next; j++) {
            if (s->next_slot[j] >= 0)
                continue;
            while (s->used[free_slot])
                free_slot++;
            s->used[free_slot] = 1;
            s->next_slot[j] = free_slot;
            status = tlm_session_copy(s->pool[free_slot], s->pool[s->slot[s->parent[j]]]);
            if (status != TLM_OK)
                return tlmi_fail_forward_from(
                    s->host, status, tlm_session_last_error(s->pool[free_slot]),
                    "tlm_beam_search");
        }
        /* The children's ids, and one decoder step each. */
        for (int32_t j = 0; j < next; j++) {
            int32_t *ids = s->next_tokens + (size_t)j * (size_t)l;
            memcpy(ids, s->tokens + (size_t)s->parent[j] * (size_t)l,
                   (size_t)step * sizeof *ids);
            ids[step] = s->child_token[j];
            tlm_session *child = s->pool[s->next_slot[j]];
            status = tlm_session_decode(child, &s->child_token[j], 1,
                                        s->logits + (size_t)j * (size_t)v, 1);
            if (status != TLM_OK)
                return tlmi_fail_forward_from(s->host, status,
                                              tlm_session_last_error(child),
                                              "tlm_beam_search");
        }
        int32_t *swap_ids = s->tokens;
        s->tokens = s->next_tokens;
        s->next_tokens = swap_ids;
        double *swap_sums = s->sums;
        s->sums = s->next_sums;
        s->next_sums = swap_sums;
        int32_t *swap_slots = s->slot;
        s->slot = s->next_slot;
        s->next_slot = swap_slots;
        live = next;
    }
    return TLM_OK;
}

/* Checks the caller's session pool: enough distinct sessions of the
 * model, none of them the main one. */
static int check_pool(tlmi_host *host, const tlm_beam_search_params *p,
                      const tlm_session *first, const tlm_model *model) {
    const char *what = "tlm_beam_search";
    if (p->n_sessions < p->beam_width - 1)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.n_sessions %d is fewer "
                         "than beam_width - 1 = %d", what, (int)p->n_sessions,
                         (int)p->beam_width - 1);
    for (int32_t i = 0; i < p->beam_width - 1; i++) {
        const tlm_session *t = p->sessions[i];
        if (t == NULL)
            return tlmi_fail(host, TLM_E_INVALID, "%s: params.sessions[%d] is NULL",
                             what, (int)i);
        if (tlmi_session_model(t) != model)
            return tlmi_fail(host, TLM_E_INVALID, "%s: params.sessions[%d] runs "
                             "another model", what, (int)i);
        if (t == first)
            return tlmi_fail(host, TLM_E_INVALID, "%s: params.sessions[%d] is the "
                             "main session", what, (int)i);
        for (int32_t j = 0; j < i; j++)
            if (p->sessions[j] == t)
                return tlmi_fail(host, TLM_E_INVALID, "%s: params.sessions[%d] and "
                                 "[%d] are the same session", what, (int)j, (int)i);
    }
    return TLM_OK;
}

TLM_API int tlm_beam_search(tlm_session *session, const int32_t *src_ids,
                            size_t n_src, const int32_t *src_mask,
                            const tlm_beam_search_params *given, int32_t *ids,
                            size_t capacity, size_t *n_ids, double *score) {
    const char *what = "tlm_beam_search";
    if (n_ids != NULL)
        *n_ids = 0;
    if (score != NULL)
        *score = 0.0;
    TLMI_CHECK_NOT_NULL(NULL, what, session);
    tlmi_host *host = tlmi_session_host(session);
    TLMI_CHECK_NOT_NULL(host, what, ids);
    TLMI_CHECK_NOT_NULL(host, what, n_ids);
    TLMI_CHECK_NOT_NULL(host, what, src_ids);
    const tlm_model *model = tlmi_session_model(session);
    const tlm_model_config *c = &model->config;
    if (c->n_encoder_layers == 0 || c->n_decoder_layers == 0)
        return tlmi_fail(host, TLM_E_STATE, "%s: the model is not encoder-decoder "
                         "(%d encoder and %d decoder layers)", what,
                         (int)c->n_encoder_layers, (int)c->n_decoder_layers);
    tlm_beam_search_params p;
    tlm_beam_search_params_init(&p);
    int status = tlmi_params_merge(host, "tlm_beam_search: params", &p, sizeof p, given);
    if (status != TLM_OK)
        return status;
    if (p.beam_width < 1 || p.beam_width > MAX_BEAM_WIDTH)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.beam_width %d is outside "
                         "1..%d", what, (int)p.beam_width, MAX_BEAM_WIDTH);
    if (p.max_length < 0 || p.max_length > c->max_context)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.max_length %d is outside "
                         "0..%d (max_context; 0 means max_context)", what,
                         (int)p.max_length, (int)c->max_context);
    if (p.bos_id < 0 || p.bos_id >= c->vocab_size)
        return tlmi_fail(host, TLM_E_RANGE, "%s: params.bos_id %d is outside 0..%d",
                         what, (int)p.bos_id, (int)c->vocab_size - 1);
    if (p.eos_id < -1 || p.eos_id >= c->vocab_size)
        return tlmi_fail(host, TLM_E_RANGE, "%s: params.eos_id %d is outside -1..%d "
                         "(-1: none)", what, (int)p.eos_id, (int)c->vocab_size - 1);
    if (!isfinite(p.length_penalty) || p.length_penalty < 0.0f ||
        p.length_penalty > 100.0f)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.length_penalty %g is "
                         "outside 0..100", what, (double)p.length_penalty);
    if (p.beam_width > 1 && p.sessions != NULL) {
        status = check_pool(host, &p, session, model);
        if (status != TLM_OK)
            return status;
    } else if (p.n_sessions != 0 && p.sessions == NULL) {
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.sessions is NULL but "
                         "params.n_sessions is %d", what, (int)p.n_sessions);
    }

    const int32_t w = p.beam_width, v = c->vocab_size;
    const int32_t l = p.max_length ? p.max_length : c->max_context;
    const int32_t k = w + 1 < v ? w + 1 : v;
    search s;
    memset(&s, 0, sizeof s);
    tlmi_layout layout;
    tlmi_layout_init(&layout, NULL);
    search_layout(&s, &layout, (size_t)w, (size_t)v, (size_t)l, (size_t)k);
    const size_t total = tlmi_layout_size(&layout);
    if (total == SIZE_MAX)
        return tlmi_fail(host, TLM_E_OVERFLOW, "%s: the search's buffers (width %d, "
                         "vocabulary %d) overflow size_t", what, (int)w, (int)v);
    unsigned char *block = tlmi_host_alloc(host, total, 64);
    if (block == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory for the search's "
                         "buffers (%zu bytes)", what, total);
    memset(block, 0, total);
    tlmi_layout_init(&layout, block);
    search_layout(&s, &layout, (size_t)w, (size_t)v, (size_t)l, (size_t)k);
    s.host = host;
    s.width = w;
    s.vocab = v;
    s.max_length = l;
    s.eos_id = p.eos_id;
    s.alpha = (double)p.length_penalty;

    /* The sessions: the caller's, then the pool's or new ones. */
    const int own = w > 1 && p.sessions == NULL;
    s.pool[0] = session;
    for (int32_t i = 1; i < w; i++) {
        if (!own) {
            s.pool[i] = p.sessions[i - 1];
            continue;
        }
        status = tlm_session_create(&s.pool[i], model, NULL);
        if (status != TLM_OK) {
            status = tlmi_fail_forward(host, status, "tlm_beam_search");
            goto cleanup;
        }
    }
    status = run_search(&s, src_ids, n_src, src_mask, p.bos_id);
    if (status != TLM_OK)
        goto cleanup;
    *n_ids = (size_t)s.best_length;
    if (score != NULL)
        *score = s.best_score;
    if ((size_t)s.best_length > capacity) {
        status = tlmi_fail(host, TLM_E_RANGE, "%s: the result has %d ids, more "
                           "than capacity %zu", what, (int)s.best_length,
                           capacity);
        goto cleanup;
    }
    memcpy(ids, s.best, (size_t)s.best_length * sizeof *ids);

cleanup:
    if (own)
        for (int32_t i = 1; i < w; i++)
            tlm_session_free(s.pool[i]);
    tlmi_host_free(host, block, total);
    return status;
}
