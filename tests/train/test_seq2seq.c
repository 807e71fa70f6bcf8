/*
 * Suite "train": decoding for encoder-decoder models on small untrained
 * models whose weights are scaled up so that the distributions are far
 * from uniform.
 * - tlm_session_copy: a copy continues with bit-identical logits;
 * - beam search of width 1 is a hand-written greedy loop over
 *   tlm_session_decode (same ids, same score);
 * - a wider beam scores at least as well as greedy on these models;
 * - the returned score is the returned ids' log-probability recomputed
 *   with a fresh session (plus the end id's when it ended on it), divided
 *   by the length factor: bound 1e-9 relative (the same float logits and
 *   the same double sums);
 * - a beam wide enough to keep every hypothesis finds the best of all of
 *   them (enumerated by brute force), with and without length penalty;
 * - end id and max_length; ties go to the lower id (a uniform model);
 *   non-finite logits are TLM_E_NONFINITE;
 * - a caller's session pool gives the same results as sessions made by
 *   the call; every allocation failure is TLM_E_NOMEM and leaks nothing.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"

enum { V = 7, EOS = 5, BOS = 6, CTX = 8, D = 16 };

static tlm_model *make_model(tlm_context *ctx, int32_t vocab, int encoder_layers,
                             uint64_t seed, float scale) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = vocab;
    c.d_model = D;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_encoder_layers = encoder_layers;
    c.n_decoder_layers = 2;
    c.max_context = CTX;
    c.tied_output = 0;
    c.init_seed = seed;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    const int32_t n = tlm_model_parameter_tensor_count(m);
    for (int32_t i = 0; i < n; i++) {
        const char *name;
        tlm_tensor *t;
        tlm_model_parameter(m, i, &name, &t);
        if (strstr(name, "norm") != NULL)
            continue;
        float *w = tlm_tensor_data_f32(t);
        for (int64_t j = 0; j < tlm_tensor_numel(t); j++)
            w[j] *= scale;
    }
    return m;
}

/* The end id's logit 0: neither always first nor never. */
static void soften_end_id(tlm_model *m) {
    tlm_tensor *head = NULL;
    assert_int_equal(tlm_model_find_parameter(m, "lm_head.weight", &head), TLM_OK);
    memset(tlm_tensor_data_f32(head) + EOS * D, 0, D * sizeof(float));
}

static void make_source(int32_t *src, int n, int seed) {
    for (int i = 0; i < n; i++)
        src[i] = (int32_t)((i * 3 + seed * 5 + i * i * seed) % EOS);
}

static double length_factor(double alpha, int scored) {
    return alpha > 0 ? pow((5.0 + scored) / 6.0, alpha) : 1.0;
}

/* Log-softmax of one row of logits, in double. */
static void log_softmax(double *out, const float *x, int n) {
    double top = (double)-INFINITY, sum = 0;
    for (int i = 0; i < n; i++)
        top = (double)x[i] > top ? (double)x[i] : top;
    for (int i = 0; i < n; i++)
        sum += exp((double)x[i] - top);
    for (int i = 0; i < n; i++)
        out[i] = (double)x[i] - (top + log(sum));
}

/* Greedy decoding written directly on the session: the most likely id
 * (lowest on ties) until the end id or max_length ids. */
static double greedy_loop(tlm_session *s, const int32_t *src, int n_src,
                          int32_t eos, int max_length, double alpha,
                          int32_t *out, int32_t *n_out) {
    const int32_t vocab = V;
    float logits[V];
    double lp[V], sum = 0;
    int32_t bos = BOS;
    assert_int_equal(tlm_session_encode(s, src, n_src, NULL, NULL), TLM_OK);
    assert_int_equal(tlm_session_decode(s, &bos, 1, logits, 1), TLM_OK);
    int scored = 0;
    *n_out = 0;
    for (;;) {
        int32_t best = 0;
        for (int32_t v = 1; v < vocab; v++)
            if (logits[v] > logits[best])
                best = v;
        log_softmax(lp, logits, vocab);
        sum += lp[best];
        scored++;
        if (best == eos)
            break;
        out[(*n_out)++] = best;
        if (scored == max_length)
            break;
        assert_int_equal(tlm_session_decode(s, &best, 1, logits, 1), TLM_OK);
    }
    return sum / length_factor(alpha, scored);
}

/* The score of `ids` (plus the end id when ended_on_eos), from a fresh
 * session. */
static double rescore(const tlm_model *m, const int32_t *src, int n_src,
                      const int32_t *ids, int n, int ended_on_eos, double alpha) {
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    float logits[V];
    double lp[V], sum = 0;
    int32_t bos = BOS;
    assert_int_equal(tlm_session_encode(s, src, n_src, NULL, NULL), TLM_OK);
    assert_int_equal(tlm_session_decode(s, &bos, 1, logits, 1), TLM_OK);
    for (int i = 0; i < n; i++) {
        log_softmax(lp, logits, V);
        sum += lp[ids[i]];
        if (i + 1 < n || ended_on_eos)
            assert_int_equal(tlm_session_decode(s, &ids[i], 1, logits, 1), TLM_OK);
    }
    if (ended_on_eos) {
        log_softmax(lp, logits, V);
        sum += lp[EOS];
    }
    tlm_session_free(s);
    return sum / length_factor(alpha, n + ended_on_eos);
}

static void assert_close(double got, double want, double relative) {
    if (!(fabs(got - want) <= relative * fmax(1.0, fabs(want))))
        fail_msg("%.12g differs from %.12g by more than %g relative", got, want,
                 relative);
}

static void copy_continues_identically(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    for (int kind = 0; kind < 2; kind++) { /* decoder-only, encoder-decoder */
        tlm_model *m = make_model(ctx, V, kind, 3, 4.0f);
        tlm_session_params sp;
        tlm_session_params_init(&sp);
        sp.chunk_tokens = 2; /* another chunk size: the state is the same */
        tlm_session *a = NULL, *b = NULL;
        assert_int_equal(tlm_session_create(&a, m, NULL), TLM_OK);
        assert_int_equal(tlm_session_create(&b, m, &sp), TLM_OK);
        const int32_t src[5] = {1, 4, 2, 0, 3}, mask[5] = {1, 1, 1, 0, 1};
        const int32_t other_src[3] = {2, 2, 2};
        const int32_t prompt[3] = {BOS, 2, 1}, junk[4] = {4, 4, 0, 1};
        if (kind == 1) {
            assert_int_equal(tlm_session_encode(a, src, 5, mask, NULL), TLM_OK);
            assert_int_equal(tlm_session_encode(b, other_src, 3, NULL, NULL), TLM_OK);
        }
        assert_int_equal(tlm_session_decode(a, prompt, 3, NULL, 0), TLM_OK);
        assert_int_equal(tlm_session_decode(b, junk, 4, NULL, 0), TLM_OK);
        assert_int_equal(tlm_session_copy(b, a), TLM_OK);
        assert_int_equal(tlm_session_position(b), 3);
        for (int32_t step = 0; step < 3; step++) {
            float la[V], lb[V];
            const int32_t next = (step * 2 + 1) % V;
            assert_int_equal(tlm_session_decode(a, &next, 1, la, 1), TLM_OK);
            assert_int_equal(tlm_session_decode(b, &next, 1, lb, 1), TLM_OK);
            assert_memory_equal(la, lb, sizeof la);
        }
        tlm_session_free(b);
        tlm_session_free(a);
        tlm_model_free(m);
    }
    tlm_context_free(ctx);
}

static void width_one_is_greedy(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, V, 2, 7, 4.0f);
    tlm_session *s = NULL, *g = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&g, m, NULL), TLM_OK);
    int ended_early = 0;
    for (int seed = 0; seed < 12; seed++) {
        const double alpha = (double)(0.6f * (float)(seed % 3)); /* as a float */
        int32_t src[6], want[CTX], got[CTX], n_want = 0;
        size_t n_got = 0;
        const int n_src = 2 + seed % 5;
        make_source(src, n_src, seed);
        const int max_length = 3 + seed % 6;
        const int32_t eos = seed % 6; /* a different end id each time */
        const double want_score = greedy_loop(g, src, n_src, eos, max_length, alpha,
                                              want, &n_want);
        tlm_beam_search_params p;
        tlm_beam_search_params_init(&p);
        p.beam_width = 1;
        p.max_length = max_length;
        p.bos_id = BOS;
        p.eos_id = eos;
        p.length_penalty = (float)alpha;
        double score = 0;
        assert_int_equal(tlm_beam_search(s, src, n_src, NULL, &p, got, CTX, &n_got, &score),
                         TLM_OK);
        assert_int_equal(n_got, (size_t)n_want);
        assert_memory_equal(got, want, n_got * sizeof *got);
        assert_close(score, want_score, 1e-12);
        ended_early += n_got < (size_t)max_length;
    }
    printf("greedy: %d of 12 ended on the end id\n", ended_early);
    assert_true(ended_early > 0 && ended_early < 12); /* both endings seen */
    tlm_session_free(g);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void beam_beats_greedy_and_scores_its_ids(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, V, 2, 11, 3.0f);
    soften_end_id(m);
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    int better = 0, cases = 0;
    for (int seed = 0; seed < 10; seed++) {
        for (int a = 0; a < 3; a++) {
            const double alpha = 0.5 * a;
            int32_t src[6], ids[CTX];
            size_t n_ids = 0;
            const int n_src = 1 + seed % 6;
            make_source(src, n_src, seed + 1);
            double scores[3];
            const int widths[3] = {1, 3, 5};
            for (int w = 0; w < 3; w++) {
                tlm_beam_search_params p;
                tlm_beam_search_params_init(&p);
                p.beam_width = widths[w];
                p.bos_id = BOS;
                p.eos_id = EOS;
                p.length_penalty = (float)alpha;
                assert_int_equal(tlm_beam_search(s, src, n_src, NULL, &p, ids, CTX, &n_ids,
                                                 &scores[w]), TLM_OK);
                assert_true(n_ids <= CTX);
                for (size_t i = 0; i < n_ids; i++)
                    assert_true(ids[i] >= 0 && ids[i] < V && ids[i] != EOS);
                const double again = rescore(m, src, n_src, ids, n_ids, n_ids < CTX, alpha);
                assert_close(scores[w], again, 1e-9);
            }
            /* Bound: beam >= greedy on these inputs (not a theorem of beam
             * search, but true here; the margin allows rounding). */
            assert_true(scores[1] >= scores[0] - 1e-12);
            assert_true(scores[2] >= scores[0] - 1e-12);
            better += scores[2] > scores[0] + 1e-9;
            cases++;
        }
    }
    printf("beam: width 5 beat greedy in %d of %d cases\n", better, cases);
    assert_true(better > 0); /* the models are not trivially greedy */
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

/* Every hypothesis of at most L ids over a vocabulary of 5 (eos = 3): a
 * beam of width 128 prunes nothing, so it finds the best of them. */
static void wide_beam_is_exhaustive(void **state) {
    (void)state;
    enum { SMALL_V = 5, SMALL_EOS = 3, L = 3 };
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, SMALL_V, 1, 5, 4.0f);
    tlm_session *s = NULL, *fresh = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&fresh, m, NULL), TLM_OK);
    for (int seed = 0; seed < 4; seed++) {
        const int32_t src[3] = {seed % 3, (seed + 1) % 5, 2};
        for (int a = 0; a < 2; a++) {
            const double alpha = a ? 1.0 : 0.0;
            /* Brute force: prefixes of 0..L-1 non-end ids then the end id,
             * and every L non-end ids. */
            double best = (double)-INFINITY;
            const int32_t letters[4] = {0, 1, 2, 4};
            for (int length = 0; length <= L; length++) {
                int combos = 1;
                for (int i = 0; i < length; i++)
                    combos *= 4;
                for (int code = 0; code < combos; code++) {
                    int32_t ids[L];
                    for (int i = 0, c = code; i < length; i++, c /= 4)
                        ids[i] = letters[c % 4];
                    const int ends = length < L;
                    float logits[SMALL_V];
                    double lp[SMALL_V], sum = 0;
                    int32_t bos = 4;
                    assert_int_equal(tlm_session_encode(fresh, src, 3, NULL, NULL), TLM_OK);
                    assert_int_equal(tlm_session_decode(fresh, &bos, 1, logits, 1), TLM_OK);
                    for (int i = 0; i < length + ends; i++) {
                        log_softmax(lp, logits, SMALL_V);
                        const int32_t id = i < length ? ids[i] : SMALL_EOS;
                        sum += lp[id];
                        if (i + 1 < length + ends)
                            assert_int_equal(tlm_session_decode(fresh, &id, 1, logits, 1),
                                             TLM_OK);
                    }
                    const double score = sum / length_factor(alpha, length + ends);
                    /* a NaN score stays the best, and fails the comparison */
                    best = isnan(score) || score > best ? score : best;
                }
            }
            tlm_beam_search_params p;
            tlm_beam_search_params_init(&p);
            p.beam_width = 128;
            p.max_length = L;
            p.bos_id = 4;
            p.eos_id = SMALL_EOS;
            p.length_penalty = (float)alpha;
            int32_t ids[L];
            size_t n_ids = 0;
            double score = 0;
            assert_int_equal(tlm_beam_search(s, src, 3, NULL, &p, ids, L, &n_ids, &score),
                             TLM_OK);
            assert_close(score, best, 1e-9);
        }
    }
    tlm_session_free(fresh);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

/* A model whose output projection is zero predicts the uniform
 * distribution: every step is a tie, which goes to the lowest id. */
static void end_id_max_length_and_ties(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, V, 1, 2, 1.0f);
    tlm_tensor *head = NULL;
    assert_int_equal(tlm_model_find_parameter(m, "lm_head.weight", &head), TLM_OK);
    memset(tlm_tensor_data_f32(head), 0, (size_t)tlm_tensor_numel(head) * sizeof(float));
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    const int32_t src[2] = {1, 2};
    const double uniform = log(1.0 / V);
    for (int width = 1; width <= 4; width += 3) {
        tlm_beam_search_params p;
        tlm_beam_search_params_init(&p);
        p.beam_width = width;
        p.bos_id = BOS;
        int32_t ids[CTX];
        size_t n_ids = 99;
        double score = 0;
        /* The end id is the lowest id: nothing is produced. */
        p.eos_id = 0;
        assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, &score),
                         TLM_OK);
        assert_int_equal(n_ids, 0);
        assert_close(score, uniform, 1e-12);
        /* No end id: max_length ids, all 0 (the lowest). */
        p.eos_id = -1;
        p.max_length = 5;
        assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, &score),
                         TLM_OK);
        assert_int_equal(n_ids, 5);
        for (int i = 0; i < 5; i++)
            assert_int_equal(ids[i], 0);
        assert_close(score, 5 * uniform, 1e-12);
        /* With a length penalty, the same ids score less badly. */
        p.length_penalty = 1.0f;
        assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, &score),
                         TLM_OK);
        assert_close(score, 5 * uniform / (10.0 / 6.0), 1e-12);
        /* max_length 1; and 0 means max_context. */
        p.length_penalty = 0.0f;
        p.max_length = 1;
        assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, &score),
                         TLM_OK);
        assert_int_equal(n_ids, 1);
        p.max_length = 0;
        assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, &score),
                         TLM_OK);
        assert_int_equal(n_ids, CTX);
        /* An end id that is not the lowest: max_length wins (ties). */
        p.eos_id = EOS;
        assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, &score),
                         TLM_OK);
        assert_int_equal(n_ids, CTX);
    }
    /* Logits that are not finite: a status, not a result. */
    tlm_beam_search_params p;
    tlm_beam_search_params_init(&p);
    p.bos_id = BOS;
    tlm_tensor_data_f32(head)[3] = NAN;
    int32_t ids[CTX];
    size_t n_ids = 99;
    assert_int_equal(tlm_beam_search(s, src, 2, NULL, &p, ids, CTX, &n_ids, NULL),
                     TLM_E_NONFINITE);
    assert_non_null(strstr(tlm_session_last_error(s), "not finite"));
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void pool_and_allocation_failures(void **state) {
    (void)state;
    counting_allocator counter;
    memset(&counter, 0, sizeof counter);
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    tlm_model *m = make_model(ctx, V, 2, 13, 3.0f);
    tlm_session *s = NULL, *pool[4] = {NULL, NULL, NULL, NULL};
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    for (int i = 0; i < 4; i++)
        assert_int_equal(tlm_session_create(&pool[i], m, NULL), TLM_OK);
    const int32_t src[4] = {0, 3, 1, 2};
    tlm_beam_search_params p;
    tlm_beam_search_params_init(&p);
    p.beam_width = 5;
    p.bos_id = BOS;
    p.eos_id = EOS;
    p.length_penalty = 0.6f;
    int32_t want[CTX], got[CTX];
    size_t n_want = 0, n_got = 0;
    double want_score = 0, got_score = 0;
    assert_int_equal(tlm_beam_search(s, src, 4, NULL, &p, want, CTX, &n_want, &want_score),
                     TLM_OK);
    /* The caller's pool: one allocation (the search's buffers). */
    p.sessions = pool;
    p.n_sessions = 4;
    const uint64_t calls = counter.calls;
    assert_int_equal(tlm_beam_search(s, src, 4, NULL, &p, got, CTX, &n_got, &got_score),
                     TLM_OK);
    assert_int_equal(counter.calls - calls, 1);
    assert_int_equal(n_got, n_want);
    assert_memory_equal(got, want, (size_t)n_got * sizeof *got);
    assert_true(got_score == want_score);
    /* tlm_session_copy allocates nothing. */
    const uint64_t before_copy = counter.calls;
    assert_int_equal(tlm_session_copy(pool[0], s), TLM_OK);
    assert_int_equal(counter.calls, before_copy);

    /* Every allocation of a search (with and without a pool) fails in
     * turn: TLM_E_NOMEM, nothing leaked, and the session still works. */
    for (int with_pool = 0; with_pool < 2; with_pool++) {
        p.sessions = with_pool ? pool : NULL;
        p.n_sessions = with_pool ? 4 : 0;
        const uint64_t live = counter.live_bytes;
        int failures = 0;
        for (int64_t n = 1;; n++) {
            counter.fail_at = (int64_t)counter.calls + n;
            const int status = tlm_beam_search(s, src, 4, NULL, &p, got, CTX, &n_got, &got_score);
            counter.fail_at = 0;
            assert_int_equal(counter.live_bytes, live);
            if (status == TLM_OK)
                break;
            assert_int_equal(status, TLM_E_NOMEM);
            assert_non_null(strstr(tlm_session_last_error(s), "tlm_beam_search"));
            failures++;
        }
        assert_int_equal(n_got, n_want);
        assert_memory_equal(got, want, (size_t)n_got * sizeof *got);
        printf("allocation failures %s a pool: %d, each TLM_E_NOMEM\n",
               with_pool ? "with" : "without", failures);
        assert_true(failures >= 1);
    }
    for (int i = 0; i < 4; i++)
        tlm_session_free(pool[i]);
    tlm_session_free(s);
    tlm_model_free(m);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(copy_continues_identically),
        cmocka_unit_test(width_one_is_greedy),
        cmocka_unit_test(beam_beats_greedy_and_scores_its_ids),
        cmocka_unit_test(wide_beam_is_exhaustive),
        cmocka_unit_test(end_id_max_length_and_ties),
        cmocka_unit_test(pool_and_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
