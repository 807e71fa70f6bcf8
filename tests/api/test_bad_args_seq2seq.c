/* Session copies and beam search called with NULL handles, mismatched
 * sessions and invalid settings. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *message, const char *word) {
    if (strstr(message, word) == NULL)
        fail_msg("message '%s' does not name %s", message, word);
}

static tlm_model *small_model(tlm_context *ctx, int encoder_layers) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 10;
    c.d_model = 8;
    c.n_heads = 2;
    c.n_encoder_layers = encoder_layers;
    c.n_decoder_layers = 1;
    c.max_context = 6;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    return m;
}

static void session_copy_calls(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = small_model(ctx, 1), *other = small_model(ctx, 1);
    tlm_session *a = NULL, *b = NULL, *c = NULL;
    assert_int_equal(tlm_session_create(&a, m, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&b, m, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&c, other, NULL), TLM_OK);
    assert_int_equal(tlm_session_copy(NULL, a), TLM_E_INVALID);
    assert_message_names(tlm_last_error(), "tlm_session_copy");
    assert_message_names(tlm_last_error(), "dst");
    assert_int_equal(tlm_session_copy(b, NULL), TLM_E_INVALID);
    assert_message_names(tlm_last_error(), "src");
    assert_int_equal(tlm_session_copy(c, a), TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(c), "different models");
    assert_int_equal(tlm_session_copy(a, a), TLM_OK);
    assert_int_equal(tlm_session_copy(b, a), TLM_OK);
    tlm_session_free(c);
    tlm_session_free(b);
    tlm_session_free(a);
    tlm_model_free(other);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void beam_search_calls(void **state) {
    (void)state;
    assert_int_equal(tlm_beam_search_params_init(NULL), TLM_E_INVALID);
    assert_message_names(tlm_last_error(), "tlm_beam_search_params_init");
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = small_model(ctx, 1), *gpt = small_model(ctx, 0),
              *other = small_model(ctx, 1);
    tlm_session *s = NULL, *g = NULL, *o = NULL, *extra = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&g, gpt, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&o, other, NULL), TLM_OK);
    assert_int_equal(tlm_session_create(&extra, m, NULL), TLM_OK);
    tlm_beam_search_params p;
    assert_int_equal(tlm_beam_search_params_init(&p), TLM_OK);
    assert_int_equal(p.beam_width, 4);
    assert_int_equal(p.eos_id, -1);
    p.eos_id = 1;
    p.bos_id = 2;
    const int32_t src[3] = {3, 4, 5};
    int32_t ids[6];
    size_t n = 99;
    double score = 1;

    assert_int_equal(tlm_beam_search(NULL, src, 3, NULL, &p, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_last_error(), "tlm_beam_search");
    assert_message_names(tlm_last_error(), "session");
    assert_int_equal(n, 0);
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &p, NULL, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "ids");
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &p, ids, 6, NULL, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "n_ids");
    assert_int_equal(tlm_beam_search(s, NULL, 3, NULL, &p, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "src_ids");
    /* Not an encoder-decoder model. */
    assert_int_equal(tlm_beam_search(g, src, 3, NULL, &p, ids, 6, &n, &score),
                     TLM_E_STATE);
    assert_message_names(tlm_session_last_error(g), "encoder-decoder");
    /* Source ids and length. */
    assert_int_equal(tlm_beam_search(s, src, 0, NULL, &p, ids, 6, &n, &score),
                     TLM_E_RANGE);
    assert_message_names(tlm_session_last_error(s), "tlm_beam_search");
    assert_int_equal(tlm_beam_search(s, src, 7, NULL, &p, ids, 6, &n, &score),
                     TLM_E_RANGE);
    const int32_t bad_src[2] = {3, 10};
    assert_int_equal(tlm_beam_search(s, bad_src, 2, NULL, &p, ids, 6, &n, &score),
                     TLM_E_RANGE);
    assert_message_names(tlm_session_last_error(s), "ids[1] = 10");

    /* Settings. */
    tlm_beam_search_params q = p;
    q.beam_width = 0;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "beam_width");
    q.beam_width = 257;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    q = p;
    q.max_length = -1;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "max_length");
    q.max_length = 7;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    q = p;
    q.bos_id = 10;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_RANGE);
    assert_message_names(tlm_session_last_error(s), "bos_id");
    q = p;
    q.eos_id = -2;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_RANGE);
    assert_message_names(tlm_session_last_error(s), "eos_id");
    q = p;
    q.length_penalty = -0.5f;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "length_penalty");
    q.length_penalty = NAN;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    q = p;
    q.struct_size = sizeof q + 8; /* a newer caller's unknown, non-zero bytes */
    unsigned char bigger[sizeof(tlm_beam_search_params) + 8];
    memset(bigger, 0xff, sizeof bigger);
    memcpy(bigger, &q, sizeof q);
    const tlm_beam_search_params *newer = (const void *)bigger;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, newer, ids, 6, &n, &score),
                     TLM_E_UNSUPPORTED);

    /* The session pool. */
    tlm_session *pool[3] = {extra, NULL, NULL};
    q = p;
    q.beam_width = 3;
    q.sessions = pool;
    q.n_sessions = 1;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "n_sessions");
    q.n_sessions = 3;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "sessions[1] is NULL");
    pool[1] = o;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "another model");
    pool[1] = s;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "main session");
    pool[1] = extra;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "same session");
    q.sessions = NULL;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, &score),
                     TLM_E_INVALID);
    assert_message_names(tlm_session_last_error(s), "sessions is NULL");

    /* A capacity too small for the result: RANGE, and how many are needed. */
    q = p;
    q.eos_id = -1;
    q.max_length = 4;
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 2, &n, &score),
                     TLM_E_RANGE);
    assert_int_equal(n, 4);
    assert_message_names(tlm_session_last_error(s), "capacity");
    /* And the same call with room succeeds. */
    assert_int_equal(tlm_beam_search(s, src, 3, NULL, &q, ids, 6, &n, NULL), TLM_OK);
    assert_int_equal(n, 4);

    tlm_session_free(extra);
    tlm_session_free(o);
    tlm_session_free(g);
    tlm_session_free(s);
    tlm_model_free(other);
    tlm_model_free(gpt);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(session_copy_calls),
        cmocka_unit_test(beam_search_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
