/* Generation and scoring called with NULL handles. (tests/sampler/
 * test_generate.c covers bad values with a real model.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *function) {
    if (strstr(tlm_last_error(), function) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), function);
}

static void generation_calls_reject_null(void **state) {
    (void)state;
    double lp = 1;
    int64_t n = 1;
    int32_t produced = 5;
    assert_int_equal(tlm_generate_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_generate_params_init");
    assert_int_equal(tlm_generate(NULL, NULL, NULL, "a", 1, NULL, &produced), TLM_E_INVALID);
    assert_message_names("tlm_generate");
    assert_int_equal(produced, 0);
    assert_int_equal(tlm_score_text(NULL, NULL, "a", 1, &lp, &n), TLM_E_INVALID);
    assert_message_names("tlm_score_text");
    assert_int_equal(tlm_score_continuation(NULL, NULL, "a", 1, "b", 1, &lp), TLM_E_INVALID);
    assert_message_names("tlm_score_continuation");
}

/* tlm_score_tokens: NULL handles and pointers, too few ids, top_k out
 * of range, ids outside the vocabulary, an encoder-only model
 * (tests/sampler/test_calls.c checks continue_session's values). */
static void score_tokens_rejects_bad_args(void **state) {
    (void)state;
    tlm_token_logprob out[4];
    const int32_t ids[3] = {1, 2, 3};
    assert_int_equal(tlm_score_tokens(NULL, ids, 3, 0, out), TLM_E_INVALID);
    assert_message_names("tlm_score_tokens");
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 8;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 16;
    c.n_decoder_layers = 1;
    c.max_context = 8;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    tlm_session *session = NULL;
    assert_int_equal(tlm_session_create(&session, model, NULL), TLM_OK);
    assert_int_equal(tlm_score_tokens(session, NULL, 3, 0, out), TLM_E_INVALID);
    assert_message_names("tlm_score_tokens");
    assert_int_equal(tlm_score_tokens(session, ids, 3, 0, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_score_tokens(session, ids, 1, 0, out), TLM_E_INVALID);
    assert_non_null(strstr(tlm_session_last_error(session), "n = 1"));
    assert_int_equal(tlm_score_tokens(session, ids, 3, -1, out), TLM_E_INVALID);
    assert_int_equal(tlm_score_tokens(session, ids, 3, TLM_TOP_LOGPROBS_MAX + 1, out),
                     TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "top_k"));
    const int32_t outside[3] = {1, 8, 2};
    assert_int_equal(tlm_score_tokens(session, outside, 3, 0, out), TLM_E_RANGE);
    assert_non_null(strstr(tlm_last_error(), "ids[1] = 8"));
    assert_int_equal(tlm_score_tokens(session, ids, 3, TLM_TOP_LOGPROBS_MAX, out), TLM_OK);
    assert_int_equal(out[0].n_top, TLM_TOP_LOGPROBS_MAX < 8 ? TLM_TOP_LOGPROBS_MAX : 8);
    tlm_session_free(session);
    tlm_model_free(model);
    /* An encoder-only model has no next-token scores. */
    c.n_decoder_layers = 0;
    c.n_encoder_layers = 1;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    assert_int_equal(tlm_session_create(&session, model, NULL), TLM_OK);
    assert_int_equal(tlm_score_tokens(session, ids, 3, 0, out), TLM_E_STATE);
    assert_message_names("tlm_score_tokens");
    tlm_session_free(session);
    tlm_model_free(model);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(generation_calls_reject_null),
                                       cmocka_unit_test(score_tokens_rejects_bad_args)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
