/*
 * Suite "sampler": the calls users reach for (issue #20).
 * - tlm_score_tokens: every entry is log_softmax of the session's own
 *   logits at that position, its top alternatives are the best ids in
 *   order, and the entries sum to tlm_score_text's total, within one
 *   context and across windows.
 * - tlm_generate with continue_session: a chat loop of five turns computes
 *   each position once (the session's counter of computed positions equals
 *   the conversation's length, not the sum of re-fed prefixes), and each
 *   turn's greedy text equals a generation from scratch over the whole
 *   conversation so far.
 * An untrained model with a byte tokenizer is enough (text and ids
 * correspond one to one).
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

#include "model/session.h"
#include "tlm.h"
#include "tolerance.h"

typedef struct pair {
    tlm_context *ctx;
    tlm_tokenizer *tok;
    tlm_model *model;
    tlm_session *session;
} pair;

static void make_pair(pair *p, int32_t max_context) {
    assert_int_equal(tlm_context_create(&p->ctx, NULL), TLM_OK);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    assert_int_equal(tlm_tokenizer_train(&p->tok, NULL, NULL, 0, &tp), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = tlm_tokenizer_vocab_size(p->tok);
    c.d_model = 16;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_decoder_layers = 1;
    c.max_context = max_context;
    c.init_seed = 11;
    if (tlm_model_create(&p->model, p->ctx, &c) != TLM_OK)
        fail_msg("model: %s", tlm_last_error());
    assert_int_equal(tlm_session_create(&p->session, p->model, NULL), TLM_OK);
}

static void free_pair(pair *p) {
    tlm_session_free(p->session);
    tlm_model_free(p->model);
    tlm_tokenizer_free(p->tok);
    tlm_context_free(p->ctx);
}

static size_t encode(pair *p, const char *text, int32_t *ids, size_t capacity) {
    size_t n = 0;
    assert_int_equal(tlm_tokenizer_encode(p->tok, text, strlen(text), ids, capacity, &n),
                     TLM_OK);
    return n;
}

static void per_token_matches_logits(void **state) {
    (void)state;
    pair p;
    make_pair(&p, 64);
    const char *text = "The cat sat on the mat.";
    int32_t ids[64];
    const size_t n = encode(&p, text, ids, 64);
    const int32_t vocab = tlm_tokenizer_vocab_size(p.tok);
    tlm_token_logprob out[64];
    assert_int_equal(tlm_score_tokens(p.session, ids, n, 5, out), TLM_OK);
    /* The same ids through the session by hand: every position's logits. */
    float *logits = malloc(n * (size_t)vocab * sizeof *logits);
    assert_non_null(logits);
    assert_int_equal(tlm_session_reset(p.session), TLM_OK);
    assert_int_equal(tlm_session_decode(p.session, ids, n, logits, (int32_t)n), TLM_OK);
    double sum = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        const float *row = logits + i * (size_t)vocab;
        float want = 0;
        assert_int_equal(tlm_log_softmax_at(row, vocab, ids[i + 1], &want), TLM_OK);
        assert_int_equal(out[i].id, ids[i + 1]);
        tlmt_assert_close(out[i].logprob, want, 1e-5);
        assert_int_equal(out[i].n_top, 5);
        int32_t rank = 0;
        for (int32_t j = 0; j < vocab; j++)
            rank += row[j] > row[ids[i + 1]] || (row[j] == row[ids[i + 1]] && j < ids[i + 1]);
        assert_int_equal(out[i].rank, rank);
        for (int32_t t = 0; t < out[i].n_top; t++) {
            const int32_t id = out[i].top_ids[t];
            float lp = 0;
            assert_int_equal(tlm_log_softmax_at(row, vocab, id, &lp), TLM_OK);
            tlmt_assert_close(out[i].top_logprobs[t], lp, 1e-5);
            /* Exactly t ids rank above the t-th alternative. */
            int32_t above = 0;
            for (int32_t j = 0; j < vocab; j++)
                above += row[j] > row[id] || (row[j] == row[id] && j < id);
            assert_int_equal(above, t);
        }
        if (out[i].rank < out[i].n_top)
            assert_int_equal(out[i].top_ids[out[i].rank], out[i].id);
        sum += (double)out[i].logprob;
    }
    double total = 0;
    int64_t scored = 0;
    assert_int_equal(tlm_score_text(p.session, p.tok, text, strlen(text), &total, &scored),
                     TLM_OK);
    assert_int_equal(scored, (int64_t)n - 1);
    tlmt_assert_close(sum, total, 1e-4);
    /* top_k 0: no alternatives, the same scores. */
    tlm_token_logprob bare[64];
    assert_int_equal(tlm_score_tokens(p.session, ids, n, 0, bare), TLM_OK);
    for (size_t i = 0; i + 1 < n; i++) {
        assert_int_equal(bare[i].n_top, 0);
        assert_true(bare[i].logprob == out[i].logprob);
    }
    free(logits);
    free_pair(&p);
}

/* Longer than the context: the windows of tlm_score_text, entry by entry
 * summing to its total. */
static void per_token_across_windows(void **state) {
    (void)state;
    pair p;
    make_pair(&p, 16);
    const char *text = "a longer text than sixteen positions, scored in windows";
    int32_t ids[64];
    const size_t n = encode(&p, text, ids, 64);
    tlm_token_logprob out[64];
    assert_int_equal(tlm_score_tokens(p.session, ids, n, 3, out), TLM_OK);
    double sum = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        assert_int_equal(out[i].id, ids[i + 1]);
        assert_true(out[i].logprob <= 0);
        assert_true(out[i].top_logprobs[0] >= out[i].logprob);
        sum += (double)out[i].logprob;
    }
    double total = 0;
    int64_t scored = 0;
    assert_int_equal(tlm_score_text(p.session, p.tok, text, strlen(text), &total, &scored),
                     TLM_OK);
    tlmt_assert_close(sum, total, 1e-4);
    free_pair(&p);
}

typedef struct transcript {
    char text[512];
    size_t length;
    int32_t tokens;
} transcript;

static int collect(void *user, int32_t token, const char *piece, size_t length,
                   float logprob) {
    (void)logprob;
    transcript *t = user;
    if (token >= 0)
        t->tokens++;
    assert_true(t->length + length < sizeof t->text);
    memcpy(t->text + t->length, piece, length);
    t->length += length;
    t->text[t->length] = '\0';
    return 0;
}

static void chat_reuses_the_cache(void **state) {
    (void)state;
    pair p;
    make_pair(&p, 96);
    tlm_sampler_params sp;
    tlm_sampler_params_init(&sp);
    sp.temperature = 0; /* greedy */
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, p.ctx, &sp), TLM_OK);
    tlm_session *scratch = NULL;
    assert_int_equal(tlm_session_create(&scratch, p.model, NULL), TLM_OK);
    static const char *const turns[5] = {"Hi. ", "How are you? ", "Fine. ",
                                         "Bye? ", "Ok. "};
    char conversation[1024] = "";
    const int64_t computed_before = tlmi_session_positions_computed(p.session);
    int64_t total_tokens = 0;
    for (int turn = 0; turn < 5; turn++) {
        tlm_generate_params gp;
        tlm_generate_params_init(&gp);
        gp.max_tokens = 6;
        gp.stop_at_eos = 0;
        gp.continue_session = 1;
        gp.callback = collect;
        transcript said = {{0}, 0, 0};
        gp.callback_user = &said;
        int32_t produced = 0;
        assert_int_equal(tlm_generate(p.session, sampler, p.tok, turns[turn],
                                      strlen(turns[turn]), &gp, &produced),
                         TLM_OK);
        assert_int_equal(produced, 6);
        total_tokens += (int64_t)strlen(turns[turn]) + produced;
        assert_int_equal(tlm_session_position(p.session), total_tokens);

        /* From scratch over the conversation so far: the same text. */
        strcat(conversation, turns[turn]);
        transcript fresh = {{0}, 0, 0};
        gp.continue_session = 0;
        gp.callback_user = &fresh;
        assert_int_equal(tlm_generate(scratch, sampler, p.tok, conversation,
                                      strlen(conversation), &gp, NULL),
                         TLM_OK);
        assert_int_equal(fresh.tokens, said.tokens);
        assert_int_equal(fresh.length, said.length);
        assert_memory_equal(fresh.text, said.text, said.length);
        assert_true(strlen(conversation) + said.length < sizeof conversation);
        strcat(conversation, said.text);
    }
    /* Each position computed once: 5 prompts and 30 tokens, not the sum
     * of re-fed prefixes. */
    assert_int_equal(tlmi_session_positions_computed(p.session) - computed_before,
                     total_tokens);
    /* Continuing the scratch session (which a plain call left holding the
     * conversation minus its last token) is not what the test relies on;
     * a full context is refused and changes nothing. */
    char big[128];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    tlm_generate_params gp;
    tlm_generate_params_init(&gp);
    gp.continue_session = 1;
    const int32_t position = tlm_session_position(p.session);
    assert_int_equal(tlm_generate(p.session, sampler, p.tok, big, strlen(big), &gp, NULL),
                     TLM_E_RANGE);
    assert_int_equal(tlm_session_position(p.session), position);
    assert_non_null(strstr(tlm_last_error(), "conversation is full"));
    gp.continue_session = 2;
    assert_int_equal(tlm_generate(p.session, sampler, p.tok, "x", 1, &gp, NULL),
                     TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "continue_session"));
    gp.continue_session = 1;
    /* Generation stops, TLM_OK, when the context fills up. */
    gp.max_tokens = 1000;
    gp.stop_at_eos = 0;
    int32_t produced = 0;
    assert_int_equal(tlm_generate(p.session, sampler, p.tok, "x", 1, &gp, &produced), TLM_OK);
    assert_int_equal(tlm_session_position(p.session), 96);
    assert_int_equal(produced, 96 - position - 1);
    tlm_session_free(scratch);
    tlm_sampler_free(sampler);
    free_pair(&p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(per_token_matches_logits),
        cmocka_unit_test(per_token_across_windows),
        cmocka_unit_test(chat_reuses_the_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
