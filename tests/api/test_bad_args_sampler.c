/* The sampler calls with NULL handles and pointers and invalid values:
 * each returns its documented status and a message naming the call (and
 * the field or position at fault). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static tlm_context *ctx;

static int setup(void **state) {
    (void)state;
    return tlm_context_create(&ctx, NULL);
}

static int teardown(void **state) {
    (void)state;
    tlm_context_free(ctx);
    return 0;
}

static void assert_message_names(const char *what) {
    if (strstr(tlm_last_error(), what) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), what);
}

static void assert_sampler_message_names(const tlm_sampler *s, const char *what) {
    if (strstr(tlm_sampler_last_error(s), what) == NULL)
        fail_msg("sampler message '%s' does not name %s", tlm_sampler_last_error(s), what);
    assert_message_names(what);
}

static void sampler_calls_reject_null(void **state) {
    (void)state;
    const float logits[3] = {0.0f, 1.0f, 2.0f};
    float probs[3], logprob = 0.0f;
    int32_t token = 7;
    tlm_sampler_params params;
    assert_int_equal(tlm_sampler_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_sampler_params_init");
    tlm_sampler_params_init(&params);

    tlm_sampler *s = (tlm_sampler *)&params;
    assert_int_equal(tlm_sampler_create(NULL, ctx, &params), TLM_E_INVALID);
    assert_message_names("tlm_sampler_create");
    assert_int_equal(tlm_sampler_create(&s, NULL, &params), TLM_E_INVALID);
    assert_null(s);
    assert_message_names("tlm_sampler_create: ctx");
    tlm_sampler_free(NULL);

    assert_int_equal(tlm_sampler_get_params(NULL, &params), TLM_E_INVALID);
    assert_message_names("tlm_sampler_get_params");
    assert_int_equal(tlm_sampler_accept(NULL, 0), TLM_E_INVALID);
    assert_message_names("tlm_sampler_accept");
    assert_int_equal(tlm_sampler_reset(NULL), TLM_E_INVALID);
    assert_message_names("tlm_sampler_reset");
    assert_int_equal(tlm_sampler_set_seed(NULL, 1), TLM_E_INVALID);
    assert_message_names("tlm_sampler_set_seed");
    assert_int_equal(tlm_sampler_sample(NULL, logits, 3, &token, &logprob), TLM_E_INVALID);
    assert_int_equal(token, -1);
    assert_message_names("tlm_sampler_sample");
    assert_int_equal(tlm_sampler_probabilities(NULL, logits, 3, probs), TLM_E_INVALID);
    assert_message_names("tlm_sampler_probabilities");
    assert_non_null(strstr(tlm_sampler_last_error(NULL), "NULL"));
    assert_non_null(strstr(tlm_sampler_last_error(NULL), "tlm_sampler_last_error"));

    assert_int_equal(tlm_log_softmax_at(NULL, 3, 0, &logprob), TLM_E_INVALID);
    assert_message_names("tlm_log_softmax_at: logits");
    assert_int_equal(tlm_log_softmax_at(logits, 3, 0, NULL), TLM_E_INVALID);
    assert_message_names("tlm_log_softmax_at: logprob");

    /* NULL pointers with a valid sampler: also in its own message. */
    assert_int_equal(tlm_sampler_create(&s, ctx, NULL), TLM_OK);
    assert_string_equal(tlm_sampler_last_error(s), "");
    assert_int_equal(tlm_sampler_get_params(s, NULL), TLM_E_INVALID);
    assert_message_names("tlm_sampler_get_params: params");
    token = 7;
    assert_int_equal(tlm_sampler_sample(s, NULL, 3, &token, &logprob), TLM_E_INVALID);
    assert_int_equal(token, -1);
    assert_sampler_message_names(s, "tlm_sampler_sample: logits");
    assert_int_equal(tlm_sampler_sample(s, logits, 3, NULL, &logprob), TLM_E_INVALID);
    assert_sampler_message_names(s, "tlm_sampler_sample: token");
    assert_int_equal(tlm_sampler_probabilities(s, NULL, 3, probs), TLM_E_INVALID);
    assert_sampler_message_names(s, "tlm_sampler_probabilities: logits");
    assert_int_equal(tlm_sampler_probabilities(s, logits, 3, NULL), TLM_E_INVALID);
    assert_sampler_message_names(s, "tlm_sampler_probabilities: probs");
    /* logprob may be NULL. */
    assert_int_equal(tlm_sampler_sample(s, logits, 3, &token, NULL), TLM_OK);
    tlm_sampler_free(s);
}

/* One invalid value per field: TLM_E_INVALID and a message naming it. */
static void create_rejects_each_bad_setting(void **state) {
    (void)state;
    static const struct {
        const char *field;
        float temperature, top_p, min_p, repetition, frequency, presence;
        int32_t top_k, window;
    } cases[] = {
        {"params.temperature", -0.5f, 1, 0, 1, 0, 0, 0, 64},
        {"params.temperature", NAN, 1, 0, 1, 0, 0, 0, 64},
        {"params.temperature", INFINITY, 1, 0, 1, 0, 0, 0, 64},
        {"params.top_k", 1, 1, 0, 1, 0, 0, -1, 64},
        {"params.top_p", 1, 0.0f, 0, 1, 0, 0, 0, 64},
        {"params.top_p", 1, -0.1f, 0, 1, 0, 0, 0, 64},
        {"params.top_p", 1, 1.5f, 0, 1, 0, 0, 0, 64},
        {"params.top_p", 1, NAN, 0, 1, 0, 0, 0, 64},
        {"params.min_p", 1, 1, -0.1f, 1, 0, 0, 0, 64},
        {"params.min_p", 1, 1, 1.0f, 1, 0, 0, 0, 64},
        {"params.min_p", 1, 1, NAN, 1, 0, 0, 0, 64},
        {"params.repetition_penalty", 1, 1, 0, 0.5f, 0, 0, 0, 64},
        {"params.repetition_penalty", 1, 1, 0, 0.0f, 0, 0, 0, 64},
        {"params.repetition_penalty", 1, 1, 0, INFINITY, 0, 0, 0, 64},
        {"params.repetition_penalty", 1, 1, 0, NAN, 0, 0, 0, 64},
        {"params.frequency_penalty", 1, 1, 0, 1, NAN, 0, 0, 64},
        {"params.frequency_penalty", 1, 1, 0, 1, -INFINITY, 0, 0, 64},
        {"params.presence_penalty", 1, 1, 0, 1, 0, NAN, 0, 64},
        {"params.presence_penalty", 1, 1, 0, 1, 0, INFINITY, 0, 64},
        {"params.penalty_window", 1, 1, 0, 1, 0, 0, 0, -1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlm_sampler_params p;
        tlm_sampler_params_init(&p);
        p.temperature = cases[i].temperature;
        p.top_p = cases[i].top_p;
        p.min_p = cases[i].min_p;
        p.repetition_penalty = cases[i].repetition;
        p.frequency_penalty = cases[i].frequency;
        p.presence_penalty = cases[i].presence;
        p.top_k = cases[i].top_k;
        p.penalty_window = cases[i].window;
        tlm_sampler *s = (tlm_sampler *)&p;
        assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_E_INVALID);
        assert_null(s);
        assert_message_names("tlm_sampler_create");
        assert_message_names(cases[i].field);
        /* The context records it too. */
        assert_non_null(strstr(tlm_context_last_error(ctx), cases[i].field));
    }
    /* The edges of each domain are accepted. */
    tlm_sampler_params p;
    tlm_sampler_params_init(&p);
    p.temperature = 0.0f;
    p.top_p = 1.0f;
    p.min_p = 0.999f;
    p.repetition_penalty = 1.0f;
    p.frequency_penalty = -2.0f;
    p.presence_penalty = -2.0f;
    p.penalty_window = 0;
    tlm_sampler *s = NULL;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_OK);
    tlm_sampler_free(s);
    p.temperature = 1e-30f;
    p.top_p = 1e-30f;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_OK);
    tlm_sampler_free(s);

    /* Malformed and future structs. */
    tlm_sampler_params_init(&p);
    p.struct_size = 0;
    assert_int_equal(tlm_sampler_create(&s, ctx, &p), TLM_E_INVALID);
    assert_message_names("struct_size");
    struct {
        tlm_sampler_params known;
        uint64_t future_field;
    } newer;
    memset(&newer, 0, sizeof newer);
    tlm_sampler_params_init(&newer.known);
    newer.known.struct_size = sizeof newer;
    assert_int_equal(tlm_sampler_create(&s, ctx, &newer.known), TLM_OK); /* zero tail */
    tlm_sampler_params back;
    tlm_sampler_params_init(&back);
    assert_int_equal(tlm_sampler_get_params(s, &back), TLM_OK);
    tlm_sampler_free(s);
    newer.future_field = 1;
    assert_int_equal(tlm_sampler_create(&s, ctx, &newer.known), TLM_E_UNSUPPORTED);
    assert_null(s);
    assert_message_names("tlm_sampler_create");

    /* get_params with an implausible struct_size. */
    assert_int_equal(tlm_sampler_create(&s, ctx, NULL), TLM_OK);
    back.struct_size = 0;
    assert_int_equal(tlm_sampler_get_params(s, &back), TLM_E_INVALID);
    assert_message_names("struct_size");
    back.struct_size = 1u << 20;
    assert_int_equal(tlm_sampler_get_params(s, &back), TLM_E_INVALID);
    assert_message_names("tlm_sampler_get_params");
    tlm_sampler_free(s);
}

static void sample_rejects_bad_values(void **state) {
    (void)state;
    tlm_sampler *s = NULL;
    assert_int_equal(tlm_sampler_create(&s, ctx, NULL), TLM_OK);
    float logits[6] = {0.0f, 1.0f, 2.0f, 3.0f, 4.0f, 5.0f}, probs[6];
    int32_t token = 0;
    float logprob = 0.0f;

    /* vocab <= 0 */
    const int32_t vocabs[3] = {0, -1, INT32_MIN};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(tlm_sampler_sample(s, logits, vocabs[i], &token, &logprob),
                         TLM_E_INVALID);
        assert_sampler_message_names(s, "tlm_sampler_sample: vocab");
        assert_int_equal(tlm_sampler_probabilities(s, logits, vocabs[i], probs),
                         TLM_E_INVALID);
        assert_sampler_message_names(s, "tlm_sampler_probabilities: vocab");
        assert_int_equal(tlm_log_softmax_at(logits, vocabs[i], 0, &logprob),
                         TLM_E_INVALID);
        assert_message_names("tlm_log_softmax_at: vocab");
    }

    /* NaN and +inf, with their position. */
    const float bad[2] = {NAN, INFINITY};
    for (int b = 0; b < 2; b++) {
        logits[3] = bad[b];
        token = 0;
        assert_int_equal(tlm_sampler_sample(s, logits, 5, &token, &logprob), TLM_E_NONFINITE);
        assert_int_equal(token, -1);
        assert_sampler_message_names(s, "tlm_sampler_sample: logits[3]");
        assert_int_equal(tlm_sampler_probabilities(s, logits, 5, probs), TLM_E_NONFINITE);
        assert_sampler_message_names(s, "tlm_sampler_probabilities: logits[3]");
        assert_int_equal(tlm_log_softmax_at(logits, 5, 0, &logprob), TLM_E_NONFINITE);
        assert_message_names("tlm_log_softmax_at: logits[3]");
    }
    /* Every logit -inf: no token possible. */
    for (int i = 0; i < 5; i++)
        logits[i] = -INFINITY;
    assert_int_equal(tlm_sampler_sample(s, logits, 5, &token, &logprob), TLM_E_NONFINITE);
    assert_sampler_message_names(s, "tlm_sampler_sample: every");
    assert_int_equal(tlm_sampler_probabilities(s, logits, 5, probs), TLM_E_NONFINITE);
    assert_sampler_message_names(s, "tlm_sampler_probabilities: every");
    assert_int_equal(tlm_log_softmax_at(logits, 5, 0, &logprob), TLM_E_NONFINITE);
    assert_message_names("tlm_log_softmax_at: every");
    /* Greedy too. */
    tlm_sampler_params greedy;
    tlm_sampler_params_init(&greedy);
    greedy.temperature = 0.0f;
    tlm_sampler *g = NULL;
    assert_int_equal(tlm_sampler_create(&g, ctx, &greedy), TLM_OK);
    assert_int_equal(tlm_sampler_sample(g, logits, 5, &token, NULL), TLM_E_NONFINITE);
    tlm_sampler_free(g);

    /* Ids out of range. */
    for (int i = 0; i < 5; i++)
        logits[i] = (float)i;
    assert_int_equal(tlm_log_softmax_at(logits, 5, 5, &logprob), TLM_E_RANGE);
    assert_message_names("tlm_log_softmax_at: id 5");
    assert_int_equal(tlm_log_softmax_at(logits, 5, -1, &logprob), TLM_E_RANGE);
    assert_message_names("tlm_log_softmax_at: id -1");
    assert_int_equal(tlm_sampler_accept(s, -1), TLM_E_RANGE);
    assert_sampler_message_names(s, "tlm_sampler_accept: token -1");
    assert_int_equal(tlm_sampler_accept(s, INT32_MIN), TLM_E_RANGE);
    assert_int_equal(tlm_sampler_accept(s, 5), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, logits, 5, &token, &logprob), TLM_E_RANGE);
    assert_sampler_message_names(s, "tlm_sampler_sample: token 5");
    assert_int_equal(tlm_sampler_probabilities(s, logits, 5, probs), TLM_E_RANGE);
    assert_sampler_message_names(s, "tlm_sampler_probabilities: token 5");
    assert_int_equal(tlm_sampler_sample(s, logits, 6, &token, &logprob), TLM_OK);
    assert_int_equal(tlm_sampler_reset(s), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, logits, 5, &token, &logprob), TLM_OK);
    assert_int_equal(tlm_sampler_set_seed(s, UINT64_MAX), TLM_OK);
    assert_int_equal(tlm_sampler_sample(s, logits, 5, &token, &logprob), TLM_OK);
    assert_true(token >= 0 && token < 5);
    tlm_sampler_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sampler_calls_reject_null),
        cmocka_unit_test(create_rejects_each_bad_setting),
        cmocka_unit_test(sample_rejects_bad_values),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
