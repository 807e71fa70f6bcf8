/*
 * Suite "tokenizer": the GPT-2 tokenizer kind without the real vocabulary
 * (tests/tokenizer/gpt2_tiny_vocab.h's tiny one):
 * - tlm_tokenizer_import reads encoder.json + vocab.bpe and Hugging Face's
 *   vocab.json + merges.txt; merge ids come from encoder.json;
 * - every malformed input is TLM_E_FORMAT naming the file and the line or
 *   byte; missing files are TLM_E_IO;
 * - decode(encode(x)) == x on random bytes; the BPE of long pieces (heap)
 *   equals the BPE of short ones (array);
 * - save/load, a model's .tlm file and tlm_tokenizer_export keep the ids;
 * - the generated Unicode tables classify known code points.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "gpt2_tiny_vocab.h"
#include "temp_dir.h"
#include "text/tokenizer.h"
#include "text/unicode.h"
#include "tlm.h"
#include "tok_test_util.h"

static char dir[4096];

static int setup(void **state) {
    (void)state;
    return temp_dir_create(dir, sizeof dir);
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    return 0;
}

static void write_in(const char *sub, const char *name, const void *data,
                     size_t size) {
    char path[4500];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    assert_int_equal(write_whole_file(path, data, size), 0);
}

static const char *path_in(const char *sub) {
    static char path[4500];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    return path;
}

/* A directory holding the tiny vocabulary under the given names. */
static const char *tiny_dir(const char *sub, const char *vocab_name,
                            const char *merges_name) {
    static char json[16384], bpe[4096];
    write_in(sub, vocab_name, json, tiny_encoder_json(json));
    write_in(sub, merges_name, bpe, tiny_vocab_bpe(bpe));
    return path_in(sub);
}

static tlm_tokenizer *tiny(void) {
    tlm_tokenizer *tok = NULL;
    int status = tlm_tokenizer_import(
        &tok, NULL, tiny_dir("tiny", "encoder.json", "vocab.bpe"));
    if (status != TLM_OK)
        fail_msg("import: %s", tlm_last_error());
    return tok;
}

static size_t encode(tlm_tokenizer *tok, const char *text, size_t n,
                     int32_t *ids) {
    size_t n_ids = 0;
    assert_int_equal(tlm_tokenizer_encode(tok, text, n, ids, n, &n_ids),
                     TLM_OK);
    return n_ids;
}

static void check_round_trip(tlm_tokenizer *tok, const char *text, size_t n) {
    int32_t *ids = malloc((n + 1) * sizeof *ids);
    char *back = malloc(n + 1);
    size_t n_ids = encode(tok, text, n, ids), length = 0;
    assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, back, n + 1,
                                          &length),
                     TLM_OK);
    assert_int_equal(length, n);
    assert_memory_equal(back, text, n);
    free(ids);
    free(back);
}

static void test_tiny_import(void **state) {
    (void)state;
    tlm_tokenizer *tok = tiny();
    assert_int_equal(tlm_tokenizer_kind(tok), TLM_TOKENIZER_GPT2);
    assert_int_equal(tlm_tokenizer_vocab_size(tok), TINY_VOCAB);
    assert_int_equal(tlm_tokenizer_merge_count(tok), TINY_MERGES);
    for (int which = TLM_TOKEN_BOS; which <= TLM_TOKEN_PAD; which++)
        assert_int_equal(tlm_tokenizer_special_id(tok, which), TINY_VOCAB - 1);
    assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK), TLM_E_RANGE);
    const char *bytes;
    size_t length;
    assert_int_equal(tlm_tokenizer_token_bytes(tok, TINY_VOCAB - 1, &bytes,
                                               &length),
                     TLM_OK);
    assert_int_equal(length, 13);
    assert_memory_equal(bytes, "<|endoftext|>", 13);
    /* " the thing": " the" by ranks 0 ("he"), 1 (" t"), 2; " thing" by
     * rank 1 (" t", before "th" of rank 19 can form), 3 ("in"), 9
     * ("ing"); each with the id encoder.json gives it. */
    int32_t ids[64];
    assert_int_equal(encode(tok, " the thing", 10, ids), 4);
    assert_int_equal(ids[0], tiny_merge_id(2));
    assert_int_equal(ids[1], tiny_merge_id(1));
    assert_int_equal(ids[2], 'h');
    assert_int_equal(ids[3], tiny_merge_id(9));
    /* A piece that is a token is that token, even when the merges would
     * not make it ("thing" alone: "th" rank 19, then "in", "ing"...). */
    assert_int_equal(encode(tok, "thing", 5, ids), 1);
    assert_int_equal(ids[0], tiny_merge_id(21));
    int32_t left, right;
    assert_int_equal(tlm_tokenizer_merge(tok, 2, &left, &right), TLM_OK);
    assert_int_equal(left, tiny_merge_id(1));
    assert_int_equal(right, tiny_merge_id(0));
    /* The special token's text is plain text to encode. */
    size_t n = encode(tok, "<|endoftext|>", 13, ids);
    for (size_t i = 0; i < n; i++)
        assert_int_not_equal(ids[i], TINY_VOCAB - 1);
    check_round_trip(tok, "<|endoftext|>", 13);
    tlm_tokenizer_free(tok);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_import),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
