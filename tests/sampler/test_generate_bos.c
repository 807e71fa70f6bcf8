/*
 * Suites "sampler" and "tokenizer": generation and scoring put the
 * begin-of-text id before the text for a SentencePiece tokenizer (as
 * llama2.c and Hugging Face do), and nothing changes for the other kinds.
 * An untrained model is enough: the scores are checked against the
 * session fed by hand. Argument 1: the SentencePiece fixture
 * (tests/tokenizer/sp_bpe.model).
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

#include "tlm.h"
#include "tolerance.h"

static const char *model_path;

typedef struct pair {
    tlm_context *ctx;
    tlm_tokenizer *tok;
    tlm_model *model;
    tlm_session *session;
} pair;

static void make_pair(pair *p, int sentencepiece) {
    assert_int_equal(tlm_context_create(&p->ctx, NULL), TLM_OK);
    if (sentencepiece) {
        assert_int_equal(tlm_tokenizer_import(&p->tok, NULL, model_path), TLM_OK);
    } else {
        tlm_tokenizer_params tp;
        tlm_tokenizer_params_init(&tp);
        tp.kind = TLM_TOKENIZER_BYTE;
        assert_int_equal(tlm_tokenizer_train(&p->tok, NULL, NULL, 0, &tp), TLM_OK);
    }
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = tlm_tokenizer_vocab_size(p->tok);
    c.d_model = 16;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_decoder_layers = 1;
    c.max_context = 64;
    c.init_seed = 5;
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

/* log p of ids[1..n) given what precedes each, fed by hand. */
static double score_by_hand(pair *p, const int32_t *ids, size_t n) {
    const int32_t vocab = tlm_tokenizer_vocab_size(p->tok);
    float *logits = malloc(n * (size_t)vocab * sizeof *logits);
    tlm_session_reset(p->session);
    assert_int_equal(tlm_session_decode(p->session, ids, n, logits, (int32_t)n), TLM_OK);
    double sum = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        float lp = 0;
        assert_int_equal(tlm_log_softmax_at(logits + i * (size_t)vocab, vocab,
                                            ids[i + 1], &lp), TLM_OK);
        sum += (double)lp;
    }
    free(logits);
    return sum;
}

static void check_scoring(int sentencepiece) {
    pair p;
    make_pair(&p, sentencepiece);
    const char *text = "Hello world, hello tlm";
    int32_t ids[64];
    size_t n = 0;
    assert_int_equal(tlm_tokenizer_encode(p.tok, text, strlen(text), ids + 1, 63, &n),
                     TLM_OK);
    double logprob = 0;
    int64_t scored = 0;
    assert_int_equal(tlm_score_text(p.session, p.tok, text, strlen(text), &logprob,
                                    &scored), TLM_OK);
    if (sentencepiece) {
        /* [BOS, text...]: every token of the text is scored. */
        ids[0] = tlm_tokenizer_special_id(p.tok, TLM_TOKEN_BOS);
        assert_int_equal(scored, (int64_t)n);
        tlmt_assert_close(logprob, score_by_hand(&p, ids, n + 1), 1e-4);
    } else {
        assert_int_equal(scored, (int64_t)n - 1);
        tlmt_assert_close(logprob, score_by_hand(&p, ids + 1, n), 1e-4);
    }
    free_pair(&p);
}

static void scoring_puts_bos_first_for_sentencepiece(void **state) {
    (void)state;
    check_scoring(1);
}

static void scoring_is_unchanged_for_other_kinds(void **state) {
    (void)state;
    check_scoring(0);
}

typedef struct collected {
    int32_t tokens[16];
    int n;
    char text[1024];
    size_t length;
} collected;

static int collect(void *user, int32_t token, const char *piece, size_t length,
                   float logprob) {
    (void)logprob;
    collected *c = user;
    if (token >= 0 && c->n < 16)
        c->tokens[c->n++] = token;
    memcpy(c->text + c->length, piece, length);
    c->length += length;
    return 0;
}

static void check_generation(int sentencepiece) {
    pair p;
    make_pair(&p, sentencepiece);
    tlm_sampler_params sp;
    tlm_sampler_params_init(&sp);
    sp.temperature = 0.0f;
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, p.ctx, &sp), TLM_OK);
    const char *prompt = "Once upon";
    int32_t ids[64];
    size_t n = 0;
    assert_int_equal(tlm_tokenizer_encode(p.tok, prompt, strlen(prompt), ids, 64, &n),
                     TLM_OK);
    collected out;
    memset(&out, 0, sizeof out);
    tlm_generate_params gp;
    tlm_generate_params_init(&gp);
    gp.max_tokens = 6;
    gp.stop_at_eos = 0;
    gp.callback = collect;
    gp.callback_user = &out;
    int32_t produced = 0;
    assert_int_equal(tlm_generate(p.session, sampler, p.tok, prompt, strlen(prompt),
                                  &gp, &produced), TLM_OK);
    assert_int_equal(produced, 6);
    /* The prompt and the first 5 tokens were fed (the last one is not):
     * with BOS one more. */
    assert_int_equal(tlm_session_position(p.session),
                     (int64_t)n + 5 + (sentencepiece ? 1 : 0));
    /* The continuation keeps every token's bytes, its first space too. */
    char expected[1024];
    size_t length = 0;
    for (int i = 0; i < out.n; i++) {
        const char *bytes;
        size_t len;
        assert_int_equal(tlm_tokenizer_token_bytes(p.tok, out.tokens[i], &bytes, &len),
                         TLM_OK);
        memcpy(expected + length, bytes, len);
        length += len;
    }
    assert_int_equal(out.length, length);
    assert_memory_equal(out.text, expected, length);
    tlm_sampler_free(sampler);
    free_pair(&p);
}

static void generation_puts_bos_first_for_sentencepiece(void **state) {
    (void)state;
    check_generation(1);
}

static void generation_is_unchanged_for_other_kinds(void **state) {
    (void)state;
    check_generation(0);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s SP_MODEL\n", argv[0]);
        return 1;
    }
    model_path = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scoring_puts_bos_first_for_sentencepiece),
        cmocka_unit_test(scoring_is_unchanged_for_other_kinds),
        cmocka_unit_test(generation_puts_bos_first_for_sentencepiece),
        cmocka_unit_test(generation_is_unchanged_for_other_kinds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
