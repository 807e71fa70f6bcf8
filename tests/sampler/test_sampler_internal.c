/*
 * Suite "sampler", with the library's internals: the penalized logits
 * exactly, the work buffer's allocation pattern (none per call after the
 * first for a vocabulary size) and allocation-failure injection.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "generate/sampler.h"
#include "tlm.h"

static tlm_context *counted_context(counting_allocator *counter) {
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, counter), TLM_OK);
    return ctx;
}

/* The hand-computed example of docs/sampling.md and test_sampler.c, to
 * the last bit: every value below is exact in binary floating point.
 * Logits {2, -1, 0.5, 3, 0, -3}, history 0 1 0 3 0 5, repetition 2,
 * frequency 0.5, presence 0.25 (id 5: -3 * 2 - 0.75 = -6.75). */
static void penalized_logits_exact(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_sampler_params p;
    tlm_sampler_params_init(&p);
    p.repetition_penalty = 2.0f;
    p.frequency_penalty = 0.5f;
    p.presence_penalty = 0.25f;
    p.penalty_window = 0;
    tlm_sampler *s = NULL;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_OK);
    const int32_t history[6] = {0, 1, 0, 3, 0, 5};
    for (int i = 0; i < 6; i++)
        assert_int_equal(tlm_sampler_accept(s, history[i]), TLM_OK);
    const float logits[6] = {2.0f, -1.0f, 0.5f, 3.0f, 0.0f, -3.0f};
    const double want[6] = {-0.75, -2.75, 0.5, 0.75, 0.0, -6.75};
    double got[6];
    assert_int_equal(tlmi_sampler_penalized_logits(s, logits, 6, got), TLM_OK);
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == want[i]);
    /* The counts are cleared after use: the same call gives the same. */
    assert_int_equal(tlmi_sampler_penalized_logits(s, logits, 6, got), TLM_OK);
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == want[i]);
    for (int32_t i = 0; i < s->work_vocab; i++)
        assert_int_equal(s->counts[i], 0);

    /* Only the repetition penalty: a zero logit stays zero. */
    tlm_sampler_free(s);
    p.frequency_penalty = 0.0f;
    p.presence_penalty = 0.0f;
    p.repetition_penalty = 1.5f;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_OK);
    for (int i = 0; i < 6; i++)
        assert_int_equal(tlm_sampler_accept(s, i), TLM_OK);
    const double rep[6] = {2.0 / 1.5, -1.5, 0.5 / 1.5, 2.0, 0.0, -4.5};
    assert_int_equal(tlmi_sampler_penalized_logits(s, logits, 6, got), TLM_OK);
    for (int i = 0; i < 6; i++)
        assert_true(got[i] == rep[i]);
    tlm_sampler_free(s);
    tlm_context_free(ctx);
}

/* After the first call for a vocabulary size, sampling allocates nothing
 * for that size or a smaller one; a larger one allocates once. The
 * history of a window allocates until it holds the window, then never;
 * an unbounded one grows geometrically. */
static void no_allocation_per_call(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlm_context *ctx = counted_context(&counter);
    tlm_sampler_params p;
    tlm_sampler_params_init(&p);
    p.top_k = 10;
    p.top_p = 0.9f;
    p.repetition_penalty = 1.3f;
    tlm_sampler *s = NULL;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_OK);
    static float logits[1001];
    float probs[1001];
    for (int i = 0; i < 1001; i++)
        logits[i] = (float)((i * 37) % 101) * 0.05f;
    int32_t token;
    for (int i = 0; i < 64; i++) /* fills the window of 64 */
        assert_int_equal(tlm_sampler_accept(s, i), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, logits, 1000, &token, NULL), TLM_OK);
    const uint64_t after_first = counter.calls;
    for (int n = 0; n < 1000; n++) {
        const int32_t vocab = n % 3 == 0 ? 1000 : (n % 3 == 1 ? 500 : 64);
        assert_int_equal(tlm_sampler_sample(s, logits, vocab, &token, NULL), TLM_OK);
        assert_int_equal(tlm_sampler_probabilities(s, logits, vocab, probs), TLM_OK);
        /* Kept below the smallest vocabulary used, 64. */
        assert_int_equal(tlm_sampler_accept(s, token % 64), TLM_OK);
    }
    assert_int_equal(counter.calls, after_first);
    assert_int_equal(tlm_sampler_sample(s, logits, 1001, &token, NULL), TLM_OK);
    assert_int_equal(counter.calls, after_first + 1);
    tlm_sampler_free(s);

    p.penalty_window = 0;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_OK);
    const uint64_t before = counter.calls;
    for (int i = 0; i < 10000; i++)
        assert_int_equal(tlm_sampler_accept(s, i % 1000), TLM_OK);
    /* 64, 128, ..., 16384: 9 blocks. */
    assert_int_equal(counter.calls - before, 9);
    assert_int_equal(s->history_length, 10000);
    tlm_sampler_free(s);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
    assert_int_equal(counter.misaligned, 0);
}

/* The allocation points in order: the sampler (create), the history
 * (accepts, growing 64 -> 128 for 100 tokens), the work buffer (first
 * sample) and a larger one (probabilities over a larger vocabulary).
 * Failing the N-th of them for N = 1, 2, ... gives TLM_E_NOMEM from the
 * call that needed it, naming that call, and nothing leaks; once N is past
 * them all the scenario succeeds. */
static void allocation_failures_give_nomem(void **state) {
    (void)state;
    static float logits[2000];
    static float probs[2000];
    for (int i = 0; i < 2000; i++)
        logits[i] = (float)(i % 17) * 0.1f;
    int failures = 0, succeeded = 0;
    for (int64_t fail = 1; fail <= 32 && !succeeded; fail++) {
        counting_allocator counter = {0};
        tlm_context *ctx = counted_context(&counter);
        const uint64_t context_bytes = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + fail;
        tlm_sampler_params p;
        tlm_sampler_params_init(&p);
        p.penalty_window = 0;
        p.presence_penalty = 0.5f;
        tlm_sampler *s = (tlm_sampler *)&p;
        int status = tlm_sampler_create(&s, ctx, &p);
        const char *where = "tlm_sampler_create";
        if (status == TLM_OK) {
            where = "tlm_sampler_accept";
            for (int i = 0; i < 100 && status == TLM_OK; i++) {
                status = tlm_sampler_accept(s, i);
                if (status != TLM_OK)
                    assert_int_equal(s->history_length, (size_t)i); /* unchanged */
            }
        }
        if (status == TLM_OK) {
            where = "tlm_sampler_sample";
            int32_t token = 3;
            status = tlm_sampler_sample(s, logits, 1000, &token, NULL);
            if (status != TLM_OK)
                assert_int_equal(token, -1);
        }
        if (status == TLM_OK) {
            where = "tlm_sampler_probabilities";
            status = tlm_sampler_probabilities(s, logits, 2000, probs);
            if (status != TLM_OK) {
                /* The old buffer is kept: smaller vocabularies still work. */
                int32_t token;
                assert_int_equal(tlm_sampler_sample(s, logits, 1000, &token, NULL), TLM_OK);
            }
        }
        if (status == TLM_OK) {
            succeeded = 1;
        } else {
            assert_int_equal(status, TLM_E_NOMEM);
            if (strstr(tlm_last_error(), where) == NULL)
                fail_msg("failure %lld: message '%s' does not name %s",
                         (long long)fail, tlm_last_error(), where);
            if (s != NULL)
                assert_non_null(strstr(tlm_sampler_last_error(s), where));
            failures++;
        }
        counter.fail_at = 0;
        tlm_sampler_free(s);
        assert_int_equal(counter.live_bytes, context_bytes);
        tlm_context_free(ctx);
        assert_int_equal(counter.live_bytes, 0);
        assert_int_equal(counter.bad_free_sizes, 0);
    }
    assert_true(succeeded);
    assert_int_equal(failures, 5);
}

/* A brute-force nucleus: sort by (z desc, id asc), then the shortest
 * prefix whose weights reach target. Marks members in `in`. */
static void brute_nucleus(const double *z, const double *w, int32_t n, double target,
                          unsigned char *in) {
    int32_t order[256];
    for (int32_t i = 0; i < n; i++)
        order[i] = i;
    for (int32_t i = 1; i < n; i++) /* insertion sort, n <= 256 */
        for (int32_t j = i; j > 0; j--) {
            const int32_t a = order[j - 1], b = order[j];
            if (z[b] > z[a] || (z[b] == z[a] && b < a)) {
                order[j - 1] = b;
                order[j] = a;
            } else {
                break;
            }
        }
    memset(in, 0, (size_t)n);
    double mass = 0.0;
    for (int32_t m = 0; m < n && mass < target; m++) {
        in[order[m]] = 1;
        mass += w[order[m]];
    }
}

/* The nucleus selection without a sort, with every partition budget from
 * 0 (the heap alone) to plenty (the quickselect alone), on random values
 * with many ties: the same set as the brute force. */
static void nucleus_selection_every_path(void **state) {
    (void)state;
    uint64_t x = 5;
    double z[256], w[256];
    int32_t ids[256];
    unsigned char in[256];
    for (int trial = 0; trial < 300; trial++) {
        const int32_t n = 1 + (int32_t)(trial % 256);
        double total = 0.0;
        for (int32_t i = 0; i < n; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            z[i] = (double)((x >> 33) % 12) * 0.25; /* 12 values: ties */
            w[i] = exp(z[i]);
            total += w[i];
        }
        const double target = total * (double)(trial % 10 + 1) / 10.5;
        brute_nucleus(z, w, n, target, in);
        for (int budget = 0; budget <= 40; budget += budget < 4 ? 1 : 12) {
            for (int32_t i = 0; i < n; i++)
                ids[i] = n - 1 - i;
            const size_t m = tlmi_sampler_select_nucleus(ids, (size_t)n, z, w, target, budget);
            unsigned char seen[256] = {0};
            for (size_t j = 0; j < m; j++) {
                assert_true(ids[j] >= 0 && ids[j] < n);
                assert_false(seen[ids[j]]);
                seen[ids[j]] = 1;
            }
            assert_memory_equal(seen, in, (size_t)n);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(penalized_logits_exact),
        cmocka_unit_test(no_allocation_per_call),
        cmocka_unit_test(allocation_failures_give_nomem),
        cmocka_unit_test(nucleus_selection_every_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
