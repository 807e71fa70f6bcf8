/*
 * Samplers: the next token from the logits of the next token.
 *
 * The pipeline (docs/sampling.md): penalties from the history of accepted
 * tokens -> temperature -> top-k -> top-p -> min-p -> renormalize -> draw.
 * Everything after the input is computed in double precision, so that
 * large penalties, tiny temperatures and logits near FLT_MAX stay finite.
 *
 * The work is O(V) per call plus O(window) for the penalties: top-k is a
 * heap selection, O(V log k); top-p without top-k finds where the nucleus
 * ends from a histogram of the probability mass over z, then a
 * quickselect within that bucket (expected O(V), O(V log V) at worst), so
 * no call sorts the vocabulary. The work buffers are sized to the largest
 * vocabulary seen and reused.
 */
#include "sampler.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "autodiff/context.h"
#include "base/error.h"
#include "base/grow.h"
#include "base/params.h"

/* Room for the first accepted tokens when the history starts growing. */
#define HISTORY_INITIAL 64

TLM_API int tlm_sampler_params_init(tlm_sampler_params *params) {
    TLMI_PARAMS_INIT("tlm_sampler_params_init", params);
    params->temperature = 1.0f;
    params->top_k = 0;
    params->top_p = 1.0f;
    params->min_p = 0.0f;
    params->repetition_penalty = 1.0f;
    params->frequency_penalty = 0.0f;
    params->presence_penalty = 0.0f;
    params->penalty_window = 64;
    params->seed = 0;
    return TLM_OK;
}

/* Every setting inside its domain, or TLM_E_INVALID naming the field.
 * The comparisons are written so that NaN fails them. */
static int check_params(tlmi_host *host, const tlm_sampler_params *p,
                        const char *fn) {
    if (!(isfinite(p->temperature) && p->temperature >= 0.0f))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.temperature %g must be finite and "
                         ">= 0 (0 means greedy)",
                         fn, (double)p->temperature);
    if (p->top_k < 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.top_k %d is negative (0 means off)",
                         fn, (int)p->top_k);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.top_p %g is outside (0, 1] (1 means "
                         "off)",
                         fn, (double)p->top_p);
    if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.min_p %g is outside [0, 1) (0 means "
                         "off)",
                         fn, (double)p->min_p);
    if (!(isfinite(p->repetition_penalty) && p->repetition_penalty >= 1.0f))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.repetition_penalty %g must be "
                         "finite and >= 1 (1 means off)",
                         fn, (double)p->repetition_penalty);
    if (!isfinite(p->frequency_penalty))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.frequency_penalty %g must be finite",
                         fn, (double)p->frequency_penalty);
    if (!isfinite(p->presence_penalty))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.presence_penalty %g must be finite",
                         fn, (double)p->presence_penalty);
    if (p->penalty_window < 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.penalty_window %d is negative (0 "
                         "means every accepted token)",
                         fn, (int)p->penalty_window);
    return TLM_OK;
}

TLM_API int tlm_sampler_create(tlm_sampler **out, tlm_context *ctx,
                               const tlm_sampler_params *given) {
    TLMI_CHECK_OUT(NULL, "tlm_sampler_create", out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_sampler_create", ctx);
    tlm_sampler_params params;
    tlm_sampler_params_init(&params);
    TLMI_TRY(tlmi_params_merge(&ctx->host, "tlm_sampler_create: params",
                               &params, sizeof params, given));
    TLMI_TRY(check_params(&ctx->host, &params, "tlm_sampler_create"));

    tlm_sampler *s = TLMI_HANDLE_ALLOC(&ctx->host, tlm_sampler);
    if (s == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM,
                         "tlm_sampler_create: allocating the sampler (%zu "
                         "bytes) failed",
                         sizeof *s);
    tlmi_context_hold(&s->host);
    s->params = params;
    s->history_max = -1;
    tlmi_rng_seed(&s->rng, params.seed);
    *out = s;
    return TLM_OK;
}

TLM_API void tlm_sampler_free(tlm_sampler *sampler) {
    if (sampler == NULL)
        return;
    tlmi_host host = sampler->host;
    tlmi_host_free(&host, sampler->history,
                   sampler->history_capacity * sizeof *sampler->history);
    tlmi_host_free(&host, sampler->work, sampler->work_bytes);
    tlmi_host_free(&host, sampler, sizeof *sampler);
    tlmi_context_drop(&host); /* may free the context (tlm_context_free) */
}

TLM_API int tlm_sampler_get_params(const tlm_sampler *sampler,
                                   tlm_sampler_params *params) {
    TLMI_PARAMS_GET("tlm_sampler_get_params", sampler, params,
                    sampler->params);
}

TLM_API const char *tlm_sampler_last_error(const tlm_sampler *sampler) {
    return TLMI_LAST_ERROR("tlm_sampler_last_error", sampler);
}

TLM_API int tlm_sampler_set_seed(tlm_sampler *sampler, uint64_t seed) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_sampler_set_seed", sampler);
    sampler->params.seed = seed;
    tlmi_rng_seed(&sampler->rng, seed);
    return TLM_OK;
}

/* ---------------------------------------------------------------------- */
/* History of accepted tokens. */

TLM_API int tlm_sampler_reset(tlm_sampler *sampler) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_sampler_reset", sampler);
    sampler->history_length = 0;
    sampler->history_start = 0;
    sampler->history_max = -1;
    return TLM_OK;
}

/* The j-th oldest id of the window, j < history_length. */
static int32_t history_at(const tlm_sampler *s, size_t j) {
    size_t i = s->history_start + j;
    if (i >= s->history_capacity)
        i -= s->history_capacity;
    return s->history[i];
}

/* Room for one more id while the history is not yet a full ring: doubles
 * the capacity, up to the window when there is one. The ring has not
 * wrapped yet (history_start is 0), so the ids keep their places. */
static int grow_history(tlm_sampler *s) {
    const size_t window = (size_t)s->params.penalty_window;
    size_t capacity = s->history_capacity;
    size_t wanted;
    if (capacity == 0) {
        wanted = HISTORY_INITIAL;
    } else {
        if (capacity > SIZE_MAX / 2 / sizeof *s->history)
            return tlmi_fail(&s->host, TLM_E_OVERFLOW,
                             "tlm_sampler_accept: the history of %zu tokens "
                             "cannot grow further (use a penalty_window or "
                             "tlm_sampler_reset)",
                             capacity);
        wanted = capacity * 2;
    }
    if (window > 0 && wanted > window)
        wanted = window;
    if (tlmi_resize(&s->host, &s->history, &s->history_capacity,
                    wanted, sizeof *s->history) != TLM_OK)
        return tlmi_fail(&s->host, TLM_E_NOMEM,
                         "tlm_sampler_accept: growing the history to %zu "
                         "tokens failed",
                         wanted);
    return TLM_OK;
}

TLM_API int tlm_sampler_accept(tlm_sampler *sampler, int32_t token) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_sampler_accept", sampler);
    tlm_sampler *s = sampler;
    if (token < 0)
        return tlmi_fail(&s->host, TLM_E_RANGE,
                         "tlm_sampler_accept: token %d is negative",
                         (int)token);
    const size_t window = (size_t)s->params.penalty_window;
    if (window > 0 && s->history_length == window) {
        /* A full ring (its capacity is the window): the oldest id goes. */
        s->history[s->history_start] = token;
        s->history_start = s->history_start + 1 == window ? 0 : s->history_start + 1;
    } else {
        if (s->history_length == s->history_capacity) {
            int status = grow_history(s);
            if (status != TLM_OK)
                return status;
        }
        s->history[s->history_length++] = token;
    }
    if (token > s->history_max)
        s->history_max = token;
    return TLM_OK;
}

/* ---------------------------------------------------------------------- */
/* The pipeline. */

/* The work buffer for `vocab` ids; reallocated only for a larger
 * vocabulary, and left as it was when that fails. */
static int ensure_work(tlm_sampler *s, const char *fn, int32_t vocab) {
    if (vocab <= s->work_vocab)
        return TLM_OK;
    const size_t per_id = 2 * sizeof(double) + 3 * sizeof(int32_t);
    if ((size_t)vocab > SIZE_MAX / per_id)
        return tlmi_fail(&s->host, TLM_E_OVERFLOW,
                         "%s: a work buffer for a vocabulary of %d does not "
                         "fit in memory arithmetic",
                         fn, (int)vocab);
    const size_t v = (size_t)vocab, bytes = v * per_id;
    unsigned char *block = tlmi_host_alloc(&s->host, bytes, 64);
    if (block == NULL)
        return tlmi_fail(&s->host, TLM_E_NOMEM,
                         "%s: allocating the work buffer for a vocabulary of "
                         "%d (%zu bytes) failed",
                         fn, (int)vocab, bytes);
    tlmi_host_free(&s->host, s->work, s->work_bytes);
    s->work = block;
    s->work_bytes = bytes;
    s->work_vocab = vocab;
    s->z = (double *)(void *)block;
    s->w = (double *)(void *)(block + v * sizeof(double));
    s->ids = (int32_t *)(void *)(block + 2 * v * sizeof(double));
    s->counts = (int32_t *)(void *)(block + 2 * v * sizeof(double) +
                                    v * sizeof(int32_t));
    s->scratch = (int32_t *)(void *)(block + 2 * v * sizeof(double) +
                                     2 * v * sizeof(int32_t));
    memset(s->counts, 0, v * sizeof(int32_t));
    return TLM_OK;
}

/* Logits: NaN and +inf are errors, -inf is an impossible token, and at
 * least one token must be possible. */
static int check_logits(tlmi_host *host, const char *fn, const float *logits,
                        int32_t vocab) {
    int32_t possible = 0;
    for (int32_t i = 0; i < vocab; i++) {
        const float x = logits[i];
        if (isnan(x) || (isinf(x) && x > 0.0f))
            return tlmi_fail(host, TLM_E_NONFINITE,
                             "%s: logits[%d] is %s (only finite values and "
                             "-inf, an impossible token, are allowed)",
                             fn, (int)i, isnan(x) ? "NaN" : "+inf");
        possible += x > -INFINITY;
    }
    if (possible == 0)
        return tlmi_fail(host, TLM_E_NONFINITE,
                         "%s: every one of the %d logits is -inf: no token is "
                         "possible",
                         fn, (int)vocab);
    return TLM_OK;
}

/* Every id in the penalty window must be a token of this vocabulary. */
static int check_history(tlm_sampler *s, const char *fn, int32_t vocab) {
    if (s->history_max < vocab)
        return TLM_OK;
    for (size_t j = 0; j < s->history_length; j++) {
        const int32_t id = history_at(s, j);
        if (id >= vocab)
            return tlmi_fail(&s->host, TLM_E_RANGE,
                             "%s: token %d in the penalty window (position "
                             "%zu of %zu, oldest first) is outside the "
                             "vocabulary 0..%d (tlm_sampler_reset clears the "
                             "history)",
                             fn, (int)id, j, s->history_length, (int)vocab - 1);
    }
    /* Only evicted ids were that large. */
    s->history_max = -1;
    for (size_t j = 0; j < s->history_length; j++)
        if (history_at(s, j) > s->history_max)
            s->history_max = history_at(s, j);
    return TLM_OK;
}

/* Step 1: repetition, frequency and presence penalties on z, for each
 * distinct id of the window, with its count. s->counts is zero on entry
 * and on exit. */
static void apply_penalties(tlm_sampler *s, double *z) {
    const double r = (double)s->params.repetition_penalty;
    const double freq = (double)s->params.frequency_penalty;
    const double presence = (double)s->params.presence_penalty;
    if ((r == 1.0 && freq == 0.0 && presence == 0.0) || s->history_length == 0)
        return;
    int32_t *counts = s->counts;
    for (size_t j = 0; j < s->history_length; j++)
        counts[history_at(s, j)]++;
    for (size_t j = 0; j < s->history_length; j++) {
        const int32_t id = history_at(s, j);
        const int32_t count = counts[id];
        if (count == 0) /* done at its first occurrence */
            continue;
        double v = z[id];
        if (r != 1.0)
            v = v > 0.0 ? v / r : v * r;
        v -= (double)count * freq + presence;
        z[id] = v;
        counts[id] = 0;
    }
}

/* a ranks before b: a larger value, or the lower id among equal ones. */
static int ranks_before(const double *z, int32_t a, int32_t b) {
    return z[a] > z[b] || (z[a] == z[b] && a < b);
}

/* Restores the heap property below node i of heap[0..n). A max-heap keeps
 * the best-ranked id at the root, a min-heap the worst. */
static void sift_down(int32_t *heap, size_t n, size_t i, const double *z,
                      int max_heap) {
    for (;;) {
        size_t top = i;
        const size_t left = 2 * i + 1, right = left + 1;
        if (left < n && (max_heap ? ranks_before(z, heap[left], heap[top])
                                  : ranks_before(z, heap[top], heap[left])))
            top = left;
        if (right < n && (max_heap ? ranks_before(z, heap[right], heap[top])
                                   : ranks_before(z, heap[top], heap[right])))
            top = right;
        if (top == i)
            return;
        const int32_t t = heap[i];
        heap[i] = heap[top];
        heap[top] = t;
        i = top;
    }
}

static void make_heap(int32_t *heap, size_t n, const double *z, int max_heap) {
    for (size_t i = n / 2; i-- > 0;)
        sift_down(heap, n, i, z, max_heap);
}

/* Top-k: the k best-ranked of ids[0..n) into ids[0..k), best first, with a
 * min-heap of the k best so far (O(n log k)). 0 < k < n. */
static void select_top_k(int32_t *ids, size_t n, size_t k, const double *z) {
    make_heap(ids, k, z, 0);
    for (size_t i = k; i < n; i++) {
        if (ranks_before(z, ids[i], ids[0])) {
            ids[0] = ids[i];
            sift_down(ids, k, 0, z, 0);
        }
    }
    /* Heap sort: the worst goes to the end each time, so best first. */
    for (size_t end = k; end-- > 1;) {
        const int32_t t = ids[0];
        ids[0] = ids[end];
        ids[end] = t;
        sift_down(ids, end, 0, z, 0);
    }
}

/* The best-ranked ids of ids[0..n) whose weights first reach `need`, by
 * popping a max-heap: they move to ids[0..m), best first; returns m (all n
 * when the weights never reach `need`). O(n + m log n). */
static size_t pop_nucleus(int32_t *ids, size_t n, const double *z,
                          const double *w, double need) {
    make_heap(ids, n, z, 1);
    double mass = 0.0;
    size_t heap = n, m = 0;
    /* The popped ids collect at the end, the best last. */
    while (heap > 0 && mass < need) {
        const int32_t best = ids[0];
        mass += w[best];
        ids[0] = ids[--heap];
        ids[heap] = best;
        sift_down(ids, heap, 0, z, 1);
        m++;
    }
    for (size_t a = heap, b = n - 1; a < b; a++, b--) {
        const int32_t t = ids[a];
        ids[a] = ids[b];
        ids[b] = t;
    }
    memmove(ids, ids + heap, m * sizeof *ids);
    return m;
}

/* Partitions allowed before the heap takes over: twice the depth of a
 * balanced recursion, plus a margin. */
static int nucleus_budget(size_t n) {
    int budget = 16;
    for (size_t k = n; k > 1; k /= 2)
        budget += 2;
    return budget;
}

/*
 * Top-p without a sort: moves the nucleus of ids[0..n) (the smallest set
 * of best-ranked ids whose weights reach `target`) to ids[0..m), in no
 * particular order, and returns m. A quickselect on the rank that carries
 * the weight of each part: a part wholly inside the nucleus is kept
 * without looking at its order, a part wholly outside is dropped, so the
 * expected work is O(n) however large the nucleus. After `budget`
 * partitions (crafted logits can make them go badly) the rest is left to
 * pop_nucleus, O(n log n).
 */
size_t tlmi_sampler_select_nucleus(int32_t *ids, size_t n, const double *z,
                                   const double *w, double target,
                                   int budget) {
    size_t lo = 0, hi = n; /* ids[0..lo) are in, ids[hi..n) out */
    double need = target;  /* mass still to take from ids[lo..hi) */
    while (need > 0.0 && lo < hi) {
        if (hi - lo == 1)
            return hi;
        if (budget-- == 0)
            return lo + pop_nucleus(ids + lo, hi - lo, z, w, need);
        /* Median of three by rank as the pivot, moved to ids[hi - 1]. */
        size_t a = lo, b = lo + (hi - lo) / 2, c = hi - 1, median;
        if (ranks_before(z, ids[a], ids[b]))
            median = ranks_before(z, ids[b], ids[c]) ? b
                     : (ranks_before(z, ids[a], ids[c]) ? c : a);
        else
            median = ranks_before(z, ids[a], ids[c]) ? a
                     : (ranks_before(z, ids[b], ids[c]) ? c : b);
        int32_t pivot = ids[median];
        ids[median] = ids[c];
        ids[c] = pivot;
        /* ids[lo..i): ranked before the pivot, with their mass. Written
         * without branches (the comparisons are unpredictable): each id
         * is swapped to i, which advances only past the better ones. */
        size_t i = lo;
        double mass = 0.0;
        const double zp = z[pivot];
        for (size_t j = lo; j < c; j++) {
            const int32_t x = ids[j];
            const double zx = z[x];
            const int before = (zx > zp) | ((zx == zp) & (x < pivot));
            ids[j] = ids[i];
            ids[i] = x;
            mass += before ? w[x] : 0.0;
            i += (size_t)before;
        }
        ids[c] = ids[i];
        ids[i] = pivot;
        if (mass >= need) {
            hi = i; /* the nucleus ends among the better ones */
        } else if (mass + w[pivot] >= need) {
            return i + 1; /* it ends with the pivot */
        } else {
            need -= mass + w[pivot];
            lo = i + 1; /* they are all in; it ends further down */
        }
    }
    return lo;
}

/* The widest span of z the buckets of nucleus_by_buckets() cover: tokens
 * e^-64 (1.6e-28) times less likely than the best share the last one. */
#define NUCLEUS_SPAN 64.0

/*
 * Top-p on unsorted candidates s->ids[0..n): the nucleus to ids[0..m),
 * unordered; returns m. One pass adds each token's weight to the bucket
 * of its z (buckets of equal width below zmax, so a bucket's tokens all
 * rank before the next bucket's); the cumulative masses of the buckets
 * locate the bucket where the nucleus ends. A second pass keeps the
 * tokens of the buckets before it and sets aside those of that bucket,
 * among which tlmi_sampler_select_nucleus() finds the rest. Two passes
 * over the candidates, without branches that depend on the data.
 */
static size_t nucleus_by_buckets(tlm_sampler *s, size_t n, double zmax,
                                 double zmin, double target) {
    int32_t *ids = s->ids, *crossing = s->scratch;
    const double *z = s->z, *w = s->w;
    double span = zmax - zmin;
    if (span > NUCLEUS_SPAN)
        span = NUCLEUS_SPAN;
    const double last = TLMI_NUCLEUS_BUCKETS - 1;
    const double scale = span > 0.0 ? last / span : HUGE_VAL;
    /* Few candidates (fewer than buckets to clear), or every z equal or
     * too nearly so for buckets: the quickselect alone. */
    if (n <= TLMI_NUCLEUS_BUCKETS || !isfinite(scale))
        return tlmi_sampler_select_nucleus(ids, n, z, w, target,
                                           nucleus_budget(n));
    double *mass = s->bucket_mass;
    memset(mass, 0, sizeof s->bucket_mass);
    for (size_t j = 0; j < n; j++) {
        const double d = (zmax - z[ids[j]]) * scale;
        mass[d < last ? (size_t)d : TLMI_NUCLEUS_BUCKETS - 1] += w[ids[j]];
    }
    size_t end = 0; /* the bucket where the cumulative mass reaches target */
    double before = 0.0;
    while (end < TLMI_NUCLEUS_BUCKETS - 1 && before + mass[end] < target)
        before += mass[end++];
    size_t m = 0, q = 0;
    for (size_t j = 0; j < n; j++) {
        const int32_t x = ids[j];
        const double d = (zmax - z[x]) * scale;
        const size_t b = d < last ? (size_t)d : TLMI_NUCLEUS_BUCKETS - 1;
        ids[m] = x; /* m <= j: only ids already read are overwritten */
        m += (size_t)(b < end);
        crossing[q] = x;
        q += (size_t)(b == end);
    }
    memcpy(ids + m, crossing, q * sizeof *ids);
    return m + tlmi_sampler_select_nucleus(ids + m, q, z, w, target - before,
                                           nucleus_budget(q));
}

/* What the pipeline leaves for the draw: s->ids[0..n) with weights
 * s->w[id] summing to total, or, in greedy mode, one id. */
typedef struct kept_tokens {
    size_t n;
    double total;
    double zmax;    /* the largest z; w = exp(z - zmax) */
    int32_t greedy; /* the argmax when the temperature is 0, else -1 */
} kept_tokens;

/* The checks before the penalties read the logits and the history, and
 * room for the vocabulary in the work arrays. */
static int prepare_step(tlm_sampler *s, const char *fn, const float *logits,
                        int32_t vocab) {
    TLMI_TRY(check_logits(&s->host, fn, logits, vocab));
    TLMI_TRY(check_history(s, fn, vocab));
    return ensure_work(s, fn, vocab);
}

/* Checks the arguments the pipeline reads and runs steps 1 to 5: the
 * penalties, the temperature and the filters. */
static int run_pipeline(tlm_sampler *s, const char *fn, const float *logits,
                        int32_t vocab, kept_tokens *kept) {
    TLMI_CHECK_NOT_NULL(&s->host, fn, logits);
    if (vocab < 1)
        return tlmi_fail(&s->host, TLM_E_INVALID,
                         "%s: vocab %d must be at least 1", fn, (int)vocab);
    TLMI_TRY(prepare_step(s, fn, logits, vocab));
    const tlm_sampler_params *p = &s->params;
    double *z = s->z, *w = s->w;
    int32_t *ids = s->ids;

    /* 1. Penalties. */
    for (int32_t i = 0; i < vocab; i++)
        z[i] = (double)logits[i];
    apply_penalties(s, z);

    /* 2. Temperature; 0 is the argmax, the lowest id among equals. */
    kept->greedy = -1;
    if (p->temperature == 0.0f) {
        int32_t best = -1;
        for (int32_t i = 0; i < vocab; i++)
            if (z[i] > -HUGE_VAL && (best < 0 || z[i] > z[best]))
                best = i;
        kept->greedy = best;
        kept->n = 0;
        kept->total = 1.0;
        kept->zmax = z[best];
        return TLM_OK;
    }
    size_t n = 0;
    const double t = (double)p->temperature;
    for (int32_t i = 0; i < vocab; i++) {
        if (z[i] > -HUGE_VAL) {
            if (t != 1.0)
                z[i] /= t;
            ids[n++] = i;
        }
    }

    /* 3. Top-k over the possible tokens. */
    int sorted = 0;
    if (p->top_k > 0 && (size_t)p->top_k < n) {
        select_top_k(ids, n, (size_t)p->top_k, z);
        n = (size_t)p->top_k;
        sorted = 1;
    }
    double zmax = z[ids[0]], zmin = z[ids[0]];
    if (!sorted) {
        for (size_t j = 1; j < n; j++) {
            const double v = z[ids[j]];
            zmax = v > zmax ? v : zmax;
            zmin = v < zmin ? v : zmin;
        }
    }
    double total = 0.0;
    for (size_t j = 0; j < n; j++) {
        w[ids[j]] = exp(z[ids[j]] - zmax);
        total += w[ids[j]];
    }

    /* 4. Top-p: the best-ranked tokens until their mass reaches top_p. */
    if (p->top_p < 1.0f) {
        const double target = (double)p->top_p * total;
        if (sorted) {
            double mass = 0.0;
            size_t m = 0;
            while (m < n && mass < target)
                mass += w[ids[m++]];
            n = m;
        } else {
            n = nucleus_by_buckets(s, n, zmax, zmin, target);
        }
    }

    /* 5. Min-p: p >= min_p * p_max, that is w >= min_p since the most
     * probable token, kept by every filter, has w = 1. */
    if (p->min_p > 0.0f) {
        const double threshold = (double)p->min_p;
        size_t m = 0;
        for (size_t j = 0; j < n; j++)
            if (w[ids[j]] >= threshold)
                ids[m++] = ids[j];
        n = m;
    }
    total = 0.0;
    for (size_t j = 0; j < n; j++)
        total += w[ids[j]];
    kept->n = n;
    kept->total = total;
    kept->zmax = zmax;
    return TLM_OK;
}

/* Uniform in [0, 1) with 53 random bits. */
static double uniform53(tlmi_rng *rng) {
    return (double)(tlmi_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
}

TLM_API int tlm_sampler_sample(tlm_sampler *sampler, const float *logits,
                               int32_t vocab, int32_t *token, float *logprob) {
    static const char fn[] = "tlm_sampler_sample";
    if (token != NULL)
        *token = -1;
    TLMI_CHECK_NOT_NULL(NULL, fn, sampler);
    tlm_sampler *s = sampler;
    TLMI_CHECK_NOT_NULL(&s->host, fn, token);
    kept_tokens kept;
    TLMI_TRY(run_pipeline(s, fn, logits, vocab, &kept));
    if (kept.greedy >= 0) {
        *token = kept.greedy;
        if (logprob != NULL)
            *logprob = 0.0f;
        return TLM_OK;
    }
    /* 6. Draw: the first id whose cumulative weight passes u * total. A
     * zero weight never passes; rounding that leaves u * total beyond the
     * sum falls back on the last id with a weight. */
    const double *w = s->w;
    const int32_t *ids = s->ids;
    const double target = uniform53(&s->rng) * kept.total;
    double cumulative = 0.0;
    int32_t chosen = -1;
    for (size_t j = 0; j < kept.n; j++) {
        cumulative += w[ids[j]];
        if (w[ids[j]] > 0.0)
            chosen = ids[j];
        if (cumulative > target)
            break;
    }
    if (chosen < 0)
        return tlmi_fail(&s->host, TLM_E_INTERNAL,
                         "%s: no token kept a positive weight", fn);
    *token = chosen;
    if (logprob != NULL)
        *logprob = (float)((s->z[chosen] - kept.zmax) - log(kept.total));
    return TLM_OK;
}

TLM_API int tlm_sampler_probabilities(tlm_sampler *sampler,
                                      const float *logits, int32_t vocab,
                                      float *probs) {
    static const char fn[] = "tlm_sampler_probabilities";
    TLMI_CHECK_NOT_NULL(NULL, fn, sampler);
    tlm_sampler *s = sampler;
    TLMI_CHECK_NOT_NULL(&s->host, fn, probs);
    kept_tokens kept;
    TLMI_TRY(run_pipeline(s, fn, logits, vocab, &kept));
    memset(probs, 0, (size_t)vocab * sizeof *probs);
    if (kept.greedy >= 0) {
        probs[kept.greedy] = 1.0f;
        return TLM_OK;
    }
    for (size_t j = 0; j < kept.n; j++) {
        const int32_t id = s->ids[j];
        probs[id] = (float)(s->w[id] / kept.total);
    }
    return TLM_OK;
}

int tlmi_sampler_penalized_logits(tlm_sampler *s, const float *logits,
                                  int32_t vocab, double *out) {
    static const char fn[] = "tlmi_sampler_penalized_logits";
    TLMI_TRY(prepare_step(s, fn, logits, vocab));
    for (int32_t i = 0; i < vocab; i++)
        out[i] = (double)logits[i];
    apply_penalties(s, out);
    return TLM_OK;
}

/* ---------------------------------------------------------------------- */

double tlmi_log_sum_exp(const float *x, int32_t n, double *max) {
    double top = -HUGE_VAL;
    for (int32_t i = 0; i < n; i++)
        if ((double)x[i] > top)
            top = (double)x[i];
    double sum = 0.0;
    for (int32_t i = 0; i < n; i++)
        sum += exp((double)x[i] - top);
    *max = top;
    return log(sum);
}

TLM_API int tlm_log_softmax_at(const float *logits, int32_t vocab, int32_t id,
                               float *logprob) {
    static const char fn[] = "tlm_log_softmax_at";
    TLMI_CHECK_NOT_NULL(NULL, fn, logprob);
    TLMI_CHECK_NOT_NULL(NULL, fn, logits);
    if (vocab < 1)
        return tlmi_fail_thread(TLM_E_INVALID, "%s: vocab %d must be at least 1",
                                fn, (int)vocab);
    if (id < 0 || id >= vocab)
        return tlmi_fail_thread(TLM_E_RANGE, "%s: id %d is outside 0..%d", fn,
                                (int)id, (int)vocab - 1);
    TLMI_TRY(check_logits(NULL, fn, logits, vocab));
    if (logits[id] == -INFINITY) {
        *logprob = -INFINITY;
        return TLM_OK;
    }
    double max;
    const double log_sum = tlmi_log_sum_exp(logits, vocab, &max);
    const double value = ((double)logits[id] - max) - log_sum;
    /* Below the float range (logits -FLT_MAX against FLT_MAX) is -inf,
     * written out rather than left to the conversion. */
    *logprob = value < -(double)FLT_MAX ? -INFINITY : (float)value;
    return TLM_OK;
}
