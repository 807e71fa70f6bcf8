/*
 * Suite "tokenizer": the three kinds through the public API.
 * - decode(encode(x)) == x for thousands of random byte strings (valid and
 *   invalid UTF-8, empty included) for byte-level and BPE; character-level
 *   gives x with every character it has not seen replaced by U+FFFD;
 * - character-level on tinyshakespeare.txt has nanoGPT's 65 symbols
 *   (skipped when the corpus is absent);
 * - BPE on a small corpus learns the merges worked out by hand below, and
 *   training is deterministic;
 * - special tokens, buffer sizes, and the streaming decoder, whose pieces
 *   never end inside a UTF-8 character and concatenate to the decode.
 * The corpus directories are the program's arguments.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"
#include "tok_test_util.h"

static int g_argc;
static char **g_argv;

enum { N_TEXTS = 3000, MAX_TEXT = 300 };

static tlm_tokenizer *train(int32_t kind, const void *corpus, size_t n,
                            int32_t vocab_size, int32_t min_pair_count) {
    tlm_tokenizer_params params;
    assert_int_equal(tlm_tokenizer_params_init(&params), TLM_OK);
    params.kind = kind;
    params.vocab_size = vocab_size;
    params.min_pair_count = min_pair_count;
    tlm_tokenizer *tok = NULL;
    int status = tlm_tokenizer_train(&tok, NULL, corpus, n, &params);
    if (status != TLM_OK)
        fail_msg("training failed: %s", tlm_last_error());
    return tok;
}

/* encode then decode; returns the decoded length into out (room for
 * 3 * n + 3 bytes) and checks the documented bounds on the ids. */
static size_t encode_decode(tlm_tokenizer *tok, const unsigned char *text,
                            size_t n, int32_t *ids, size_t *n_ids,
                            unsigned char *out) {
    size_t count = 0;
    assert_int_equal(tlm_tokenizer_encode(tok, (const char *)text, n, ids, n, &count),
                     TLM_OK);
    assert_true(count <= n);
    int32_t first_special = tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS);
    for (size_t i = 0; i < count; i++)
        assert_true(ids[i] >= 0 && ids[i] < first_special);
    size_t length = 0;
    assert_int_equal(tlm_tokenizer_decode(tok, ids, count, (char *)out, 3 * n + 3, &length),
                     TLM_OK);
    *n_ids = count;
    return length;
}

static void assert_exact_round_trips(tlm_tokenizer *tok, uint64_t seed) {
    uint64_t rng = seed;
    unsigned char text[MAX_TEXT], out[3 * MAX_TEXT + 3];
    int32_t ids[MAX_TEXT];
    int empty_seen = 0;
    for (int t = 0; t < N_TEXTS; t++) {
        size_t n = test_random_text(&rng, text, MAX_TEXT);
        empty_seen |= n == 0;
        size_t n_ids;
        size_t length = encode_decode(tok, text, n, ids, &n_ids, out);
        if (length != n || memcmp(out, text, n) != 0)
            fail_msg("text %d (%zu bytes) does not round-trip", t, n);
    }
    /* The empty string, whether or not the generator made one. */
    size_t n_ids = 99, length = 99;
    assert_int_equal(tlm_tokenizer_encode(tok, NULL, 0, ids, 0, &n_ids), TLM_OK);
    assert_int_equal(n_ids, 0);
    assert_int_equal(tlm_tokenizer_decode(tok, NULL, 0, (char *)out, 0, &length), TLM_OK);
    assert_int_equal(length, 0);
    (void)empty_seen;
}

static void byte_level_round_trips(void **state) {
    (void)state;
    tlm_tokenizer *tok = train(TLM_TOKENIZER_BYTE, NULL, 0, 0, 0);
    assert_int_equal(tlm_tokenizer_kind(tok), TLM_TOKENIZER_BYTE);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 259);
    assert_int_equal(tlm_tokenizer_merge_count(tok), 0);
    /* id = byte value, for every byte. */
    unsigned char all[256];
    int32_t ids[256];
    size_t n_ids = 0;
    for (int b = 0; b < 256; b++)
        all[b] = (unsigned char)b;
    assert_int_equal(tlm_tokenizer_encode(tok, (const char *)all, 256, ids, 256, &n_ids),
                     TLM_OK);
    assert_int_equal(n_ids, 256);
    for (int b = 0; b < 256; b++) {
        assert_int_equal(ids[b], b);
        const char *bytes;
        size_t length;
        assert_int_equal(tlm_tokenizer_token_bytes(tok, b, &bytes, &length), TLM_OK);
        assert_int_equal(length, 1);
        assert_int_equal((unsigned char)bytes[0], b);
    }
    assert_exact_round_trips(tok, 1);
    tlm_tokenizer_free(tok);
}

static void bpe_round_trips(void **state) {
    (void)state;
    size_t size;
    unsigned char *corpus = test_random_corpus(11, 400, MAX_TEXT, &size);
    tlm_tokenizer *tok = train(TLM_TOKENIZER_BPE, corpus, size, 700, 2);
    assert_int_equal(tlm_tokenizer_kind(tok), TLM_TOKENIZER_BPE);
    int32_t merges = tlm_tokenizer_merge_count(tok);
    /* Training is deterministic, and the corpus is varied enough to fill
     * the budget: every id past the bytes and 3 specials is a merge. */
    assert_int_equal(merges, 700 - 256 - 3);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 256 + merges + 3);
    assert_exact_round_trips(tok, 2);
    /* Every merged token's bytes are its two parts' bytes. */
    for (int32_t r = 0; r < merges; r++) {
        int32_t left, right;
        const char *b, *lb, *rb;
        size_t n, ln, rn;
        assert_int_equal(tlm_tokenizer_merge(tok, r, &left, &right), TLM_OK);
        assert_true(left < 256 + r && right < 256 + r);
        tlm_tokenizer_token_bytes(tok, 256 + r, &b, &n);
        tlm_tokenizer_token_bytes(tok, left, &lb, &ln);
        tlm_tokenizer_token_bytes(tok, right, &rb, &rn);
        assert_int_equal(n, ln + rn);
        assert_memory_equal(b, lb, ln);
        assert_memory_equal(b + ln, rb, rn);
    }
    tlm_tokenizer_free(tok);
    free(corpus);
}

/* --- character level ------------------------------------------------------ */

/* The sorted key of a character: its code point, or 0x110000 + b for a
 * lone byte b. */
static uint32_t char_key(const unsigned char *s, size_t len) {
    if (len == 1 && s[0] >= 0x80)
        return 0x110000u + s[0];
    uint32_t c = len == 1 ? s[0] : len == 2 ? s[0] & 0x1Fu : len == 3 ? s[0] & 0x0Fu : s[0] & 0x07u;
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (s[i] & 0x3Fu);
    return c;
}

static int compare_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static void char_level_replaces_unseen_characters(void **state) {
    (void)state;
    size_t size;
    unsigned char *corpus = test_random_corpus(21, 300, MAX_TEXT, &size);
    tlm_tokenizer *tok = train(TLM_TOKENIZER_CHAR, corpus, size, 0, 0);
    assert_int_equal(tlm_tokenizer_kind(tok), TLM_TOKENIZER_CHAR);
    const int32_t vocab = tlm_tokenizer_vocab_size(tok);
    const int32_t unk = tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK);
    assert_int_equal(unk, vocab - 4);
    assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS), vocab - 3);

    /* The vocabulary: the corpus's characters, sorted by key. */
    uint32_t *keys = malloc((size_t)unk * sizeof *keys);
    for (int32_t id = 0; id < unk; id++) {
        const char *b;
        size_t n;
        assert_int_equal(tlm_tokenizer_token_bytes(tok, id, &b, &n), TLM_OK);
        assert_true(n >= 1 && n <= 4);
        keys[id] = char_key((const unsigned char *)b, n);
        if (id > 0)
            assert_true(keys[id] > keys[id - 1]);
    }
    uint32_t *corpus_keys = malloc(size * sizeof *corpus_keys);
    size_t n_corpus_keys = 0;
    for (size_t i = 0; i < size;) {
        size_t len = test_utf8_length(corpus + i, size - i);
        if (len == 0)
            len = 1;
        corpus_keys[n_corpus_keys++] = char_key(corpus + i, len);
        i += len;
    }
    qsort(corpus_keys, n_corpus_keys, sizeof *corpus_keys, compare_u32);
    size_t distinct = 0;
    for (size_t i = 0; i < n_corpus_keys; i++)
        if (i == 0 || corpus_keys[i] != corpus_keys[i - 1])
            corpus_keys[distinct++] = corpus_keys[i];
    assert_int_equal(distinct, (size_t)unk);
    assert_memory_equal(corpus_keys, keys, distinct * sizeof *keys);

    const char *b;
    size_t n;
    assert_int_equal(tlm_tokenizer_token_bytes(tok, unk, &b, &n), TLM_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(b, "\xEF\xBF\xBD", 3);

    /* Random texts: each character the vocabulary has comes back, each
     * other one becomes U+FFFD, one id per character. */
    uint64_t rng = 3;
    unsigned char text[MAX_TEXT], out[3 * MAX_TEXT + 3], expected[3 * MAX_TEXT + 3];
    int32_t ids[MAX_TEXT];
    size_t unknown_seen = 0;
    for (int t = 0; t < N_TEXTS; t++) {
        size_t len = test_random_text(&rng, text, MAX_TEXT);
        size_t n_expected = 0, n_chars = 0, n_unknown = 0;
        for (size_t i = 0; i < len;) {
            size_t cl = test_utf8_length(text + i, len - i);
            if (cl == 0)
                cl = 1;
            uint32_t key = char_key(text + i, cl);
            if (bsearch(&key, keys, (size_t)unk, sizeof *keys, compare_u32) != NULL) {
                memcpy(expected + n_expected, text + i, cl);
                n_expected += cl;
            } else {
                memcpy(expected + n_expected, "\xEF\xBF\xBD", 3);
                n_expected += 3;
                n_unknown++;
            }
            n_chars++;
            i += cl;
        }
        size_t n_ids = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, (const char *)text, len, ids, len, &n_ids),
                         TLM_OK);
        assert_int_equal(n_ids, n_chars);
        size_t unk_count = 0;
        for (size_t i = 0; i < n_ids; i++) {
            assert_true(ids[i] >= 0 && ids[i] <= unk);
            unk_count += ids[i] == unk;
        }
        assert_int_equal(unk_count, n_unknown);
        unknown_seen += n_unknown;
        size_t length = 0;
        assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, (char *)out, sizeof out, &length),
                         TLM_OK);
        assert_int_equal(length, n_expected);
        assert_memory_equal(out, expected, n_expected);
        if (n_unknown == 0)
            assert_memory_equal(out, text, len);
    }
    assert_true(unknown_seen > 0); /* the unknown path was exercised */
    free(keys);
    free(corpus_keys);
    tlm_tokenizer_free(tok);
    free(corpus);
}

static void char_level_shakespeare_has_65_symbols(void **state) {
    (void)state;
    size_t size;
    unsigned char *corpus = test_shakespeare(g_argc, g_argv, &size);
    if (corpus == NULL)
        skip();
    tlm_tokenizer *tok = train(TLM_TOKENIZER_CHAR, corpus, size, 0, 0);
    /* nanoGPT's shakespeare_char vocabulary, in sorted order. */
    static const char chars[] = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "abcdefghijklmnopqrstuvwxyz";
    assert_int_equal(sizeof chars - 1, 65);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 65 + 1 + 3);
    assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK), 65);
    for (int32_t id = 0; id < 65; id++) {
        const char *b;
        size_t n;
        assert_int_equal(tlm_tokenizer_token_bytes(tok, id, &b, &n), TLM_OK);
        assert_int_equal(n, 1);
        assert_int_equal(b[0], chars[id]);
    }
    int32_t *ids = malloc(size * sizeof *ids);
    unsigned char *out = malloc(size);
    size_t n_ids = 0, length = 0;
    assert_int_equal(tlm_tokenizer_encode(tok, (const char *)corpus, size, ids, size, &n_ids),
                     TLM_OK);
    assert_int_equal(n_ids, size); /* ASCII: one id per byte */
    assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, (char *)out, size, &length), TLM_OK);
    assert_int_equal(length, size);
    assert_memory_equal(out, corpus, size);
    free(out);
    free(ids);
    tlm_tokenizer_free(tok);
    free(corpus);
}

/* --- BPE ------------------------------------------------------------------ */

/*
 * The corpus "hug pug hug bug hugs bug" pre-splits into the chunks
 *   "hug" x1, " pug" x1, " hug" x1, " bug" x2, " hugs" x1
 * (a word keeps its leading space). Pair counts are weighted by the chunk
 * counts; ties go to the smaller left id, then the smaller right id
 * (' ' = 32, 'b' = 98, 'g' = 103, 'h' = 104, 'p' = 112, 's' = 115,
 * 'u' = 117).
 *
 * 1. (u,g) occurs in all six words: 6. Merge -> 256 "ug".
 * 2. (h,256) in "hug", " hug", " hugs": 3; ( ,h) 2, ( ,b) 2, (b,256) 2.
 *    Merge -> 257 "hug".
 * 3. ( ,257) 2 (" hug", " hugs"), ( ,b) 2, (b,256) 2: a three-way tie;
 *    (32,98) has the smallest ids. Merge -> 258 " b".
 * 4. ( ,257) 2 and (258,256) 2 (" bug" twice): (32,257) first.
 *    Merge -> 259 " hug".
 * 5. (258,256) 2. Merge -> 260 " bug".
 * 6. Left: ( ,p) 1, (p,256) 1, (259,s) 1: below min_pair_count 2, stop.
 * With min_pair_count 1 it goes on with the ties at 1:
 * 6. (32,112) -> 261 " p"; 7. (259,115) beats (261,256) -> 262 " hugs";
 * 8. (261,256) -> 263 " pug"; then every chunk is one token.
 */
static const char hug_corpus[] = "hug pug hug bug hugs bug";
static const int32_t hug_merges[8][2] = {
    {117, 103}, {104, 256}, {32, 98}, {32, 257}, {258, 256},
    {32, 112}, {259, 115}, {261, 256},
};
static const char *const hug_tokens[8] = {
    "ug", "hug", " b", " hug", " bug", " p", " hugs", " pug",
};

static void assert_hug_merges(tlm_tokenizer *tok, int32_t expected) {
    assert_int_equal(tlm_tokenizer_merge_count(tok), expected);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 256 + expected + 3);
    for (int32_t r = 0; r < expected; r++) {
        int32_t left, right;
        assert_int_equal(tlm_tokenizer_merge(tok, r, &left, &right), TLM_OK);
        assert_int_equal(left, hug_merges[r][0]);
        assert_int_equal(right, hug_merges[r][1]);
        const char *b;
        size_t n;
        assert_int_equal(tlm_tokenizer_token_bytes(tok, 256 + r, &b, &n), TLM_OK);
        assert_int_equal(n, strlen(hug_tokens[r]));
        assert_memory_equal(b, hug_tokens[r], n);
    }
}

static void bpe_learns_the_hand_computed_merges(void **state) {
    (void)state;
    const size_t n = strlen(hug_corpus);
    tlm_tokenizer *tok = train(TLM_TOKENIZER_BPE, hug_corpus, n, 300, 2);
    assert_hug_merges(tok, 5);
    /* Encoding applies them: "hug bug hugs" -> hug, " bug", " hug", s. */
    int32_t ids[16];
    size_t n_ids = 0;
    assert_int_equal(tlm_tokenizer_encode(tok, "hug bug hugs", 12, ids, 16, &n_ids), TLM_OK);
    assert_int_equal(n_ids, 4);
    assert_int_equal(ids[0], 257);
    assert_int_equal(ids[1], 260);
    assert_int_equal(ids[2], 259);
    assert_int_equal(ids[3], 's');
    tlm_tokenizer_free(tok);

    /* A vocabulary of 262 ids leaves room for three merges. */
    tok = train(TLM_TOKENIZER_BPE, hug_corpus, n, 262, 2);
    assert_hug_merges(tok, 3);
    tlm_tokenizer_free(tok);

    tok = train(TLM_TOKENIZER_BPE, hug_corpus, n, 1000, 1);
    assert_hug_merges(tok, 8);
    tlm_tokenizer_free(tok);

    /* No corpus, no merges. */
    tok = train(TLM_TOKENIZER_BPE, NULL, 0, 1000, 1);
    assert_int_equal(tlm_tokenizer_merge_count(tok), 0);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 259);
    tlm_tokenizer_free(tok);
}

static unsigned char *image_of(tlm_tokenizer *tok, size_t *size) {
    assert_int_equal(tlm_tokenizer_save_memory(tok, NULL, 0, size), TLM_OK);
    unsigned char *image = malloc(*size);
    assert_int_equal(tlm_tokenizer_save_memory(tok, image, *size, size), TLM_OK);
    return image;
}

static void bpe_training_is_deterministic(void **state) {
    (void)state;
    size_t size;
    unsigned char *corpus = test_random_corpus(31, 300, MAX_TEXT, &size);
    tlm_tokenizer *a = train(TLM_TOKENIZER_BPE, corpus, size, 600, 2);
    tlm_tokenizer *b = train(TLM_TOKENIZER_BPE, corpus, size, 600, 2);
    size_t size_a, size_b;
    unsigned char *image_a = image_of(a, &size_a);
    unsigned char *image_b = image_of(b, &size_b);
    assert_int_equal(size_a, size_b);
    assert_memory_equal(image_a, image_b, size_a);
    /* A smaller vocabulary is a prefix of the same merge list. */
    tlm_tokenizer *c = train(TLM_TOKENIZER_BPE, corpus, size, 400, 2);
    int32_t merges = tlm_tokenizer_merge_count(c);
    assert_int_equal(merges, 400 - 259);
    for (int32_t r = 0; r < merges; r++) {
        int32_t la, ra, lc, rc;
        tlm_tokenizer_merge(a, r, &la, &ra);
        tlm_tokenizer_merge(c, r, &lc, &rc);
        assert_int_equal(la, lc);
        assert_int_equal(ra, rc);
    }
    free(image_a);
    free(image_b);
    tlm_tokenizer_free(a);
    tlm_tokenizer_free(b);
    tlm_tokenizer_free(c);
    free(corpus);
}

static void bpe_on_shakespeare(void **state) {
    (void)state;
    size_t size;
    unsigned char *corpus = test_shakespeare(g_argc, g_argv, &size);
    if (corpus == NULL)
        skip();
    tlm_tokenizer *tok = train(TLM_TOKENIZER_BPE, corpus, size, 512, 2);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 512);
    int32_t left, right;
    /* The most frequent pair of the play: a space before 't'. */
    assert_int_equal(tlm_tokenizer_merge(tok, 0, &left, &right), TLM_OK);
    assert_int_equal(left, ' ');
    assert_int_equal(right, 't');
    int32_t *ids = malloc(size * sizeof *ids);
    unsigned char *out = malloc(size);
    size_t n_ids = 0, length = 0;
    assert_int_equal(tlm_tokenizer_encode(tok, (const char *)corpus, size, ids, size, &n_ids),
                     TLM_OK);
    /* 253 merges compress the play (1115394 bytes) to 0.51 ids per byte;
     * training and encoding are deterministic, so the count is exact. */
    assert_int_equal(n_ids, 569986);
    assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, (char *)out, size, &length), TLM_OK);
    assert_int_equal(length, size);
    assert_memory_equal(out, corpus, size);
    free(out);
    free(ids);
    tlm_tokenizer_free(tok);
    free(corpus);
}

/* --- special tokens and buffers -------------------------------------------------- */

static tlm_tokenizer *tokenizer_of_kind(int kind) {
    static const char corpus[] = "the cat sat on the mat; the hat sat <|endoftext|>\n";
    return train(kind, corpus, sizeof corpus - 1, 280, 2);
}

static void special_tokens_are_last_and_decode_to_nothing(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = tokenizer_of_kind(kind);
        const int32_t v = tlm_tokenizer_vocab_size(tok);
        const int32_t bos = tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS);
        const int32_t eos = tlm_tokenizer_special_id(tok, TLM_TOKEN_EOS);
        const int32_t pad = tlm_tokenizer_special_id(tok, TLM_TOKEN_PAD);
        assert_int_equal(bos, v - 3);
        assert_int_equal(eos, v - 2);
        assert_int_equal(pad, v - 1);
        for (int32_t id = bos; id < v; id++) {
            const char *b = NULL;
            size_t n = 9;
            assert_int_equal(tlm_tokenizer_token_bytes(tok, id, &b, &n), TLM_OK);
            assert_non_null(b);
            assert_int_equal(n, 0);
        }
        /* Text that spells out special-token-like markers is plain text. */
        const char *text = "<|endoftext|> the cat";
        int32_t ids[64];
        size_t n_ids = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, text, strlen(text), ids, 64, &n_ids), TLM_OK);
        int32_t framed[66];
        framed[0] = bos;
        memcpy(framed + 1, ids, n_ids * sizeof *ids);
        framed[n_ids + 1] = eos;
        framed[n_ids + 2] = pad;
        for (size_t i = 0; i < n_ids; i++)
            assert_true(ids[i] < bos);
        char out[64];
        size_t length = 0;
        assert_int_equal(tlm_tokenizer_decode(tok, framed, n_ids + 3, out, sizeof out, &length),
                         TLM_OK);
        assert_int_equal(length, strlen(text));
        assert_memory_equal(out, text, length);
        tlm_tokenizer_free(tok);
    }
}

static void buffers_report_the_size_needed(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = tokenizer_of_kind(kind);
        const char *text = "the cat sat on the mat, caf\xC3\xA9 \xE2\x82\xAC";
        const size_t len = strlen(text);
        int32_t ids[64], few[3] = {-1, -1, -1};
        size_t needed = 0, n_ids = 0;
        /* A size query, then the real call. */
        assert_int_equal(tlm_tokenizer_encode(tok, text, len, NULL, 0, &needed), TLM_OK);
        assert_int_equal(tlm_tokenizer_encode(tok, text, len, ids, 64, &n_ids), TLM_OK);
        assert_int_equal(needed, n_ids);
        assert_true(n_ids <= len && n_ids > 3);
        /* Too small: the first ids, the size needed, TLM_E_RANGE. */
        size_t got = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, text, len, few, 2, &got), TLM_E_RANGE);
        assert_int_equal(got, n_ids);
        assert_int_equal(few[0], ids[0]);
        assert_int_equal(few[1], ids[1]);
        assert_int_equal(few[2], -1);
        assert_non_null(strstr(tlm_tokenizer_last_error(tok), "room for 2"));

        char out[64], small[5];
        size_t length = 0;
        assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, NULL, 0, &length), TLM_OK);
        size_t full = length;
        assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, out, sizeof out, &length), TLM_OK);
        assert_int_equal(length, full);
        memset(small, '#', sizeof small);
        assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, small, 4, &length), TLM_E_RANGE);
        assert_int_equal(length, full);
        assert_memory_equal(small, out, 4);
        assert_int_equal(small[4], '#');
        /* An id out of range: its position in the message, nothing
         * written. */
        int32_t bad[3] = {ids[0], tlm_tokenizer_vocab_size(tok), ids[1]};
        memset(small, '#', sizeof small);
        assert_int_equal(tlm_tokenizer_decode(tok, bad, 3, small, 5, &length), TLM_E_RANGE);
        assert_int_equal(length, 0);
        assert_int_equal(small[0], '#');
        assert_non_null(strstr(tlm_tokenizer_last_error(tok), "ids[1]"));
        tlm_tokenizer_free(tok);
    }
}

/* --- streaming decoder ----------------------------------------------------------- */

/* Whether offset `at` of text (n bytes) is a character boundary: not inside
 * a valid multi-byte character (an invalid byte is a character alone). */
static int is_boundary(const unsigned char *text, size_t n, size_t at) {
    size_t i = 0;
    while (i < at) {
        size_t len = test_utf8_length(text + i, n - i);
        i += len == 0 ? 1 : len;
    }
    return i == at;
}

/* Pushes `ids`, checking every piece, then flushes; the pieces must
 * concatenate to the tokenizer's decode. */
static void assert_stream_matches(tlm_tokenizer *tok, tlm_token_stream *stream,
                                  const int32_t *ids, size_t n_ids) {
    size_t full_length = 0;
    assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, NULL, 0, &full_length), TLM_OK);
    unsigned char *full = malloc(full_length + 1);
    unsigned char *joined = malloc(full_length + 1);
    assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, (char *)full, full_length, &full_length),
                     TLM_OK);
    size_t at = 0;
    for (size_t i = 0; i <= n_ids; i++) {
        const char *piece = NULL;
        size_t length = 99;
        if (i < n_ids)
            assert_int_equal(tlm_token_stream_push(stream, ids[i], &piece, &length), TLM_OK);
        else
            assert_int_equal(tlm_token_stream_flush(stream, &piece, &length), TLM_OK);
        assert_non_null(piece);
        assert_true(at + length <= full_length);
        memcpy(joined + at, piece, length);
        at += length;
        /* A piece never ends inside a character, except for what the
         * flush gives back at the very end. */
        if (i < n_ids && !is_boundary(full, full_length, at))
            fail_msg("piece %zu ends at %zu, inside a character", i, at);
    }
    assert_int_equal(at, full_length);
    assert_memory_equal(joined, full, full_length);
    free(full);
    free(joined);
}

static void stream_holds_back_unfinished_characters(void **state) {
    (void)state;
    tlm_tokenizer *tok = train(TLM_TOKENIZER_BYTE, NULL, 0, 0, 0);
    tlm_token_stream *s = NULL;
    assert_int_equal(tlm_token_stream_create(&s, tok), TLM_OK);
    const char *piece;
    size_t n;
    /* The euro sign E2 82 AC comes out whole, after its last byte; a
     * special token in between changes nothing. */
    assert_int_equal(tlm_token_stream_push(s, 0xE2, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tlm_token_stream_push(s, 256, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tlm_token_stream_push(s, 0x82, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tlm_token_stream_push(s, 0xAC, &piece, &n), TLM_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(piece, "\xE2\x82\xAC", 3);
    /* E2 then 'A': E2 can no longer be finished and goes out as it is. */
    assert_int_equal(tlm_token_stream_push(s, 0xE2, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tlm_token_stream_push(s, 'A', &piece, &n), TLM_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(piece, "\xE2" "A", 2);
    /* ED A0 would be a surrogate: ED goes out at once with A0. */
    assert_int_equal(tlm_token_stream_push(s, 0xED, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tlm_token_stream_push(s, 0xA0, &piece, &n), TLM_OK);
    assert_int_equal(n, 2);
    /* A lone continuation byte or an invalid lead is not held. */
    assert_int_equal(tlm_token_stream_push(s, 0x80, &piece, &n), TLM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tlm_token_stream_push(s, 0xFF, &piece, &n), TLM_OK);
    assert_int_equal(n, 1);
    /* F0 9F 98 then flush: the unfinished bytes, as they are. */
    assert_int_equal(tlm_token_stream_push(s, 0xF0, &piece, &n), TLM_OK);
    assert_int_equal(tlm_token_stream_push(s, 0x9F, &piece, &n), TLM_OK);
    assert_int_equal(tlm_token_stream_push(s, 0x98, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    assert_int_equal(tlm_token_stream_flush(s, &piece, &n), TLM_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(piece, "\xF0\x9F\x98", 3);
    /* After a flush the stream starts afresh. */
    assert_int_equal(tlm_token_stream_push(s, 0x80, &piece, &n), TLM_OK);
    assert_int_equal(n, 1);
    assert_int_equal(tlm_token_stream_flush(s, &piece, &n), TLM_OK);
    assert_int_equal(n, 0);
    /* A bad id changes nothing. */
    assert_int_equal(tlm_token_stream_push(s, 0xC3, &piece, &n), TLM_OK);
    assert_int_equal(tlm_token_stream_push(s, 999, &piece, &n), TLM_E_RANGE);
    assert_int_equal(tlm_token_stream_push(s, 0xA9, &piece, &n), TLM_OK);
    assert_int_equal(n, 2);
    assert_memory_equal(piece, "\xC3\xA9", 2);
    tlm_token_stream_free(s);
    tlm_tokenizer_free(tok);
}

static void stream_pieces_concatenate_to_the_decode(void **state) {
    (void)state;
    size_t size;
    unsigned char *corpus = test_random_corpus(41, 200, MAX_TEXT, &size);
    for (int kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = train(kind, corpus, size, 600, 2);
        tlm_token_stream *s = NULL;
        assert_int_equal(tlm_token_stream_create(&s, tok), TLM_OK);
        const int32_t v = tlm_tokenizer_vocab_size(tok);
        uint64_t rng = 5 + (uint64_t)kind;
        unsigned char text[MAX_TEXT];
        int32_t ids[MAX_TEXT];
        for (int t = 0; t < 1000; t++) {
            size_t n_ids = 0;
            if (t % 2 == 0) {
                /* Random ids, special tokens included. */
                n_ids = test_below(&rng, 60);
                for (size_t i = 0; i < n_ids; i++)
                    ids[i] = (int32_t)test_below(&rng, (uint32_t)v);
            } else {
                /* The ids of a random text. */
                size_t len = test_random_text(&rng, text, MAX_TEXT);
                assert_int_equal(tlm_tokenizer_encode(tok, (const char *)text, len, ids, MAX_TEXT,
                                                      &n_ids),
                                 TLM_OK);
            }
            assert_stream_matches(tok, s, ids, n_ids);
        }
        tlm_token_stream_free(s);
        tlm_tokenizer_free(tok);
    }
    free(corpus);
}

int main(int argc, char **argv) {
    g_argc = argc;
    g_argv = argv;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(byte_level_round_trips),
        cmocka_unit_test(bpe_round_trips),
        cmocka_unit_test(char_level_replaces_unseen_characters),
        cmocka_unit_test(char_level_shakespeare_has_65_symbols),
        cmocka_unit_test(bpe_learns_the_hand_computed_merges),
        cmocka_unit_test(bpe_training_is_deterministic),
        cmocka_unit_test(bpe_on_shakespeare),
        cmocka_unit_test(special_tokens_are_last_and_decode_to_nothing),
        cmocka_unit_test(buffers_report_the_size_needed),
        cmocka_unit_test(stream_holds_back_unfinished_characters),
        cmocka_unit_test(stream_pieces_concatenate_to_the_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
