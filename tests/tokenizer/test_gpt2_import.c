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

#include "counting_allocator.h"
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

/* Imports `sub` (written by the caller) expecting `status` and a message
 * naming `file` and containing `where`. */
static void assert_import_refused(const char *path, int status,
                                  const char *file, const char *where) {
    tlm_tokenizer *tok = (tlm_tokenizer *)&status;
    int got = tlm_tokenizer_import(&tok, NULL, path);
    if (got != status)
        fail_msg("%s: expected %s, got %s: %s", path, tlm_status_name(status),
                 tlm_status_name(got), tlm_last_error());
    assert_null(tok);
    const char *message = tlm_last_error();
    if (strstr(message, "tlm_tokenizer_import") == NULL ||
        strstr(message, file) == NULL || strstr(message, where) == NULL)
        fail_msg("message '%s' does not name '%s' and '%s'", message, file,
                 where);
}

/* Writes encoder.json text `json` and vocab.bpe text `bpe` into `sub`. */
static const char *pair_dir(const char *sub, const char *json,
                            size_t json_size, const char *bpe,
                            size_t bpe_size) {
    write_in(sub, "encoder.json", json, json_size);
    write_in(sub, "vocab.bpe", bpe, bpe_size);
    return path_in(sub);
}

/* Replaces the first `from` in text (size *n, room 16384) by `to`. */
static void edit(char *text, size_t *n, const char *from, const char *to) {
    char *at = strstr(text, from);
    assert_non_null(at);
    size_t a = strlen(from), b = strlen(to);
    memmove(at + b, at + a, *n - (size_t)(at - text) - a);
    memcpy(at, to, b);
    *n = *n - a + b;
    text[*n] = 0;
}

static void malformed_vocabularies_are_refused(void **state) {
    (void)state;
    char json[16384], bpe[4096], j[16384], b[4096];
    size_t json_size = tiny_encoder_json(json), bpe_size = tiny_vocab_bpe(bpe);
    json[json_size] = 0;
    bpe[bpe_size] = 0;
    size_t n;
    /* Bad JSON: cut short. */
    assert_import_refused(pair_dir("cut", json, json_size - 3, bpe, bpe_size),
                          TLM_E_FORMAT, "encoder.json", "byte");
    /* Not an object. */
    assert_import_refused(pair_dir("array", "[1, 2]", 6, bpe, bpe_size),
                          TLM_E_FORMAT, "encoder.json", "object");
    /* Two keys with one id, and so a gap. */
    memcpy(j, json, json_size + 1);
    n = json_size;
    edit(j, &n, "\"B\": 66,", "\"B\": 65,");
    assert_import_refused(pair_dir("dup", j, n, bpe, bpe_size), TLM_E_FORMAT,
                          "encoder.json", "also the id of the key at byte");
    /* An id past the end (a gap below it). */
    memcpy(j, json, json_size + 1);
    n = json_size;
    edit(j, &n, "\"B\": 66,", "\"B\": 6600,");
    assert_import_refused(pair_dir("gap", j, n, bpe, bpe_size), TLM_E_FORMAT,
                          "encoder.json", "without gaps");
    /* A negative and a fractional id. */
    memcpy(j, json, json_size + 1);
    n = json_size;
    edit(j, &n, "\"B\": 66,", "\"B\": -66,");
    assert_import_refused(pair_dir("negative", j, n, bpe, bpe_size), TLM_E_FORMAT,
                          "encoder.json", "byte");
    memcpy(j, json, json_size + 1);
    n = json_size;
    edit(j, &n, "\"B\": 66,", "\"B\": 66.5,");
    assert_import_refused(pair_dir("frac", j, n, bpe, bpe_size), TLM_E_FORMAT,
                          "encoder.json", "byte");
    /* A key outside the byte alphabet (U+4E00). */
    memcpy(j, json, json_size + 1);
    n = json_size;
    edit(j, &n, "\"B\": 66,", "\"\xe4\xb8\x80\": 66,");
    assert_import_refused(pair_dir("alpha", j, n, bpe, bpe_size),
                          TLM_E_FORMAT, "encoder.json", "byte alphabet");
    /* A missing byte token (its key replaced by a two-byte one). */
    memcpy(j, json, json_size + 1);
    n = json_size;
    edit(j, &n, "\"B\": 66,", "\"BB\": 66,");
    assert_import_refused(pair_dir("nobyte", j, n, bpe, bpe_size),
                          TLM_E_FORMAT, "encoder.json", "0x42");
    /* vocab.bpe: a merge naming a token that does not exist (line 3). */
    memcpy(b, bpe, bpe_size + 1);
    n = bpe_size;
    edit(b, &n, "\xc4\xa0 t\n", "\xc4\xa0 tq\n");
    assert_import_refused(pair_dir("unknown", json, json_size, b, n),
                          TLM_E_FORMAT, "vocab.bpe", "line 3");
    /* A merge whose result is not in the vocabulary (line 2: "h e" ->
     * "h a": "ha" is no token). */
    memcpy(b, bpe, bpe_size + 1);
    n = bpe_size;
    edit(b, &n, "h e\n", "h a\n");
    assert_import_refused(pair_dir("result", json, json_size, b, n),
                          TLM_E_FORMAT, "vocab.bpe", "line 2");
    /* Not two tokens. */
    memcpy(b, bpe, bpe_size + 1);
    n = bpe_size;
    edit(b, &n, "h e\n", "h e x\n");
    assert_import_refused(pair_dir("three", json, json_size, b, n),
                          TLM_E_FORMAT, "vocab.bpe", "line 2");
    memcpy(b, bpe, bpe_size + 1);
    n = bpe_size;
    edit(b, &n, "h e\n", "\n");
    assert_import_refused(pair_dir("blank", json, json_size, b, n),
                          TLM_E_FORMAT, "vocab.bpe", "line 2");
    /* The same merge twice (line 2 repeated as the last line). */
    memcpy(b, bpe, bpe_size + 1);
    n = bpe_size;
    memcpy(b + n, "h e\n", 5);
    n += 4;
    assert_import_refused(pair_dir("twice", json, json_size, b, n),
                          TLM_E_FORMAT, "vocab.bpe", "repeats merge 0");
    /* A JSON file alone, a missing file, a directory without the files. */
    write_in("lone", "encoder.json", json, json_size);
    char lone[4600];
    snprintf(lone, sizeof lone, "%s/encoder.json", path_in("lone"));
    assert_import_refused(lone, TLM_E_FORMAT, "encoder.json", "directory");
    assert_import_refused(path_in("lone"), TLM_E_IO, "lone", "vocab.bpe");
    assert_import_refused(path_in("absent"), TLM_E_IO, "absent", "absent");
}

static void malformed_tiktoken_files_are_refused(void **state) {
    (void)state;
    /* 256 byte tokens, rank = byte, then "ab" (YWI=) rank 256. */
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char good[8192];
    size_t n = 0;
    for (int byte = 0; byte < 256; byte++)
        n += (size_t)sprintf(good + n, "%c%c== %d\n", digits[byte >> 2],
                             digits[(byte & 3) << 4], byte);
    n += (size_t)sprintf(good + n, "YWI= 256\n");
    write_in("tt", "good.tiktoken", good, n);
    char path[4600];
    snprintf(path, sizeof path, "%s/good.tiktoken", path_in("tt"));
    tlm_tokenizer *tok = NULL;
    if (tlm_tokenizer_import(&tok, NULL, path) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 258);
    assert_int_equal(tlm_tokenizer_merge_count(tok), 1);
    assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_EOS), 257);
    int32_t ids[8];
    assert_int_equal(encode(tok, "xab", 3, ids), 2);
    assert_int_equal(ids[1], 256);
    tlm_tokenizer_free(tok);

    static const struct {
        const char *from, *to, *where;
    } cases[] = {
        {"YWI= 256", "YW!= 256", "bad base64"},   /* not the alphabet */
        {"YWI= 256", "YWI 256", "bad base64"},    /* not padded */
        {"YWI= 256", "YWJ= 256", "bad base64"},   /* non-zero padding bits */
        {"YWI= 256", "YWI= 300", "without gaps"}, /* a gap */
        {"YWI= 256", "YWI= 255", "also on line"}, /* a rank twice */
        {"YWI= 256", "YWI=  256", "line 257"},    /* two spaces */
        {"YWI= 256", "YWI= 0256", "line 257"},    /* a leading zero */
        {"YWI= 256", "YWI= -1", "line 257"},
        {"YWI= 256", "QQ== 256", "same"},         /* "A" twice */
        {"YWI= 256", "YWI=", "line 257"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char bad[8192];
        memcpy(bad, good, n + 1);
        size_t m = n;
        edit(bad, &m, cases[c].from, cases[c].to);
        write_in("tt", "bad.tiktoken", bad, m);
        snprintf(path, sizeof path, "%s/bad.tiktoken", path_in("tt"));
        assert_import_refused(path, TLM_E_FORMAT, "bad.tiktoken",
                              cases[c].where);
    }
    /* Too few lines for the 256 bytes. */
    write_in("tt", "short.tiktoken", good, 40);
    snprintf(path, sizeof path, "%s/short.tiktoken", path_in("tt"));
    assert_import_refused(path, TLM_E_FORMAT, "short.tiktoken", "lines");
}

/* Random bytes of every flavour round-trip; the heap BPE of long pieces
 * equals the array BPE of short ones on every chunk. */
static void round_trips_and_long_pieces(void **state) {
    (void)state;
    tlm_tokenizer *tok = tiny();
    uint64_t rng = 17;
    unsigned char text[600];
    for (int round = 0; round < 2000; round++) {
        size_t n = test_random_text(&rng, text, sizeof text);
        check_round_trip(tok, (const char *)text, n);
        int32_t a[600], b[600];
        size_t chunk = n < TLMI_CHUNK_MAX ? n : TLMI_CHUNK_MAX, count = 0;
        if (chunk == 0)
            continue;
        size_t na = tlmi_bpe_encode_chunk(tok, text, chunk, a);
        assert_int_equal(tlmi_bpe_encode_long(tok, &tok->host, text, chunk,
                                              b, &count, "test"),
                         TLM_OK);
        assert_int_equal(na, count);
        assert_memory_equal(a, b, na * sizeof *a);
    }
    /* Long runs of one character: spaces, and space pairs. */
    char spaces[5000];
    memset(spaces, ' ', sizeof spaces);
    spaces[4999] = 'x';
    check_round_trip(tok, spaces, sizeof spaces);
    int32_t ids[5000];
    size_t n_ids = encode(tok, spaces, sizeof spaces, ids);
    /* 4998 spaces by "    " (rank 16) then "  ", then " x"? No: " " +
     * "x" has no merge, so " ", "x". */
    assert_int_equal(n_ids, 4998 / 4 + 1 + 1 + 1);
    tlm_tokenizer_free(tok);
}

/* A GPT-2 image through save/load, in a model's .tlm, and exported. */
static void storage_keeps_the_ids(void **state) {
    (void)state;
    tlm_tokenizer *tok = tiny();
    static const char text[] = " the thing's 123 caf\xc3\xa9  \n\n x\xff";
    int32_t want[64], got[64];
    size_t n = encode(tok, text, sizeof text - 1, want);
    size_t size = 0;
    assert_int_equal(tlm_tokenizer_save_memory(tok, NULL, 0, &size), TLM_OK);
    unsigned char *image = malloc(size);
    assert_int_equal(tlm_tokenizer_save_memory(tok, image, size, &size), TLM_OK);
    assert_int_equal(test_get_u32(image + 8), 2); /* version 2 */
    assert_int_equal(test_get_u32(image + 12), TLM_TOKENIZER_GPT2);
    tlm_tokenizer *back = NULL;
    assert_int_equal(tlm_tokenizer_load_memory(&back, NULL, image, size), TLM_OK);
    assert_int_equal(encode(back, text, sizeof text - 1, got), n);
    assert_memory_equal(got, want, n * sizeof *got);
    tlm_tokenizer_free(back);
    /* Every truncation and flipped bits are refused, never crash. */
    for (size_t cut = 0; cut < size; cut++) {
        unsigned char *part = malloc(cut > 0 ? cut : 1);
        memcpy(part, image, cut);
        assert_int_equal(tlm_tokenizer_load_memory(&back, NULL, part, cut),
                         TLM_E_FORMAT);
        free(part);
    }
    uint64_t rng = 5;
    for (int round = 0; round < 500; round++) {
        unsigned char *copy = malloc(size);
        memcpy(copy, image, size);
        size_t at = 8 + test_below(&rng, (uint32_t)(size - 12));
        copy[at] ^= (unsigned char)(1u << test_below(&rng, 8));
        test_fix_checksum(copy, size);
        int status = tlm_tokenizer_load_memory(&back, NULL, copy, size);
        assert_true(status == TLM_OK || status == TLM_E_FORMAT ||
                    status == TLM_E_VERSION);
        tlm_tokenizer_free(back);
        free(copy);
    }
    free(image);

    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = TINY_VOCAB;
    config.d_model = 8;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 8;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &config), TLM_OK);
    assert_int_equal(tlm_model_set_tokenizer(model, tok), TLM_OK);
    char path[4600];
    snprintf(path, sizeof path, "%s/tiny.tlm", dir);
    assert_int_equal(tlm_model_save(model, path), TLM_OK);
    tlm_model_free(model);
    assert_int_equal(tlm_model_load(&model, ctx, path, NULL), TLM_OK);
    assert_int_equal(tlm_tokenizer_kind(tlm_model_tokenizer(model)),
                     TLM_TOKENIZER_GPT2);
    assert_int_equal(encode(tlm_model_tokenizer(model), text, sizeof text - 1, got), n);
    assert_memory_equal(got, want, n * sizeof *got);
    tlm_model_free(model);
    tlm_context_free(ctx);

    /* Export, then import: the same ids (merge ids included). */
    snprintf(path, sizeof path, "%s/exported/sub", dir);
    assert_int_equal(tlm_tokenizer_export(tok, path), TLM_E_IO); /* no parent */
    assert_non_null(strstr(tlm_last_error(), "tlm_tokenizer_export"));
    snprintf(path, sizeof path, "%s/exported", dir);
    assert_int_equal(tlm_tokenizer_export(tok, path), TLM_OK);
    assert_int_equal(tlm_tokenizer_import(&back, NULL, path), TLM_OK);
    assert_int_equal(tlm_tokenizer_vocab_size(back), TINY_VOCAB);
    assert_int_equal(encode(back, text, sizeof text - 1, got), n);
    assert_memory_equal(got, want, n * sizeof *got);
    tlm_tokenizer_free(back);
    tlm_tokenizer_free(tok);
}

/* Known code points of each class in the generated tables. */
static void unicode_classes(void **state) {
    (void)state;
    static const struct {
        uint32_t code;
        int cls;
    } known[] = {
        {'A', TLMI_UNI_LETTER},     {'z', TLMI_UNI_LETTER},
        {0xE9, TLMI_UNI_LETTER},    {0x4E00, TLMI_UNI_LETTER},
        {0x9FFF, TLMI_UNI_LETTER},  {0xAC00, TLMI_UNI_LETTER},
        {0x0628, TLMI_UNI_LETTER},  {0x0E01, TLMI_UNI_LETTER},
        {0x20000, TLMI_UNI_LETTER}, {0x1D400, TLMI_UNI_LETTER},
        {0xAA, TLMI_UNI_LETTER},    {0x02B0, TLMI_UNI_LETTER}, /* Lm */
        {'0', TLMI_UNI_NUMBER},     {'9', TLMI_UNI_NUMBER},
        {0x0661, TLMI_UNI_NUMBER},  {0x0967, TLMI_UNI_NUMBER},
        {0xFF11, TLMI_UNI_NUMBER},  {0x2160, TLMI_UNI_NUMBER}, /* Nl */
        {0xBD, TLMI_UNI_NUMBER},    {0xB2, TLMI_UNI_NUMBER},   /* No */
        {' ', TLMI_UNI_SPACE},      {'\t', TLMI_UNI_SPACE},
        {'\r', TLMI_UNI_SPACE},     {0x0B, TLMI_UNI_SPACE},
        {0x85, TLMI_UNI_SPACE},     {0xA0, TLMI_UNI_SPACE},
        {0x1680, TLMI_UNI_SPACE},   {0x2003, TLMI_UNI_SPACE},
        {0x2028, TLMI_UNI_SPACE},   {0x3000, TLMI_UNI_SPACE},
        {0x1C, TLMI_UNI_OTHER},     {0x200B, TLMI_UNI_OTHER}, /* not White_Space */
        {0xFEFF, TLMI_UNI_OTHER},   {'_', TLMI_UNI_OTHER},
        {'\'', TLMI_UNI_OTHER},     {0x0301, TLMI_UNI_OTHER}, /* Mn */
        {0x1F600, TLMI_UNI_OTHER},  {0x200D, TLMI_UNI_OTHER},
        {0xD800, TLMI_UNI_OTHER},   {0xE000, TLMI_UNI_OTHER},
        {0x10FFFF, TLMI_UNI_OTHER}, {0x110000, TLMI_UNI_OTHER},
        {0xFFFFFFFFu, TLMI_UNI_OTHER},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (tlmi_unicode_class(known[i].code) != known[i].cls)
            fail_msg("U+%04X: class %d, expected %d", (unsigned)known[i].code,
                     tlmi_unicode_class(known[i].code), known[i].cls);
    assert_string_equal(tlmi_unicode_version, "15.0.0");
    for (size_t i = 0; i < tlmi_unicode_range_count; i++) {
        assert_true(tlmi_unicode_ranges[i].first <= tlmi_unicode_ranges[i].last);
        if (i > 0)
            assert_true(tlmi_unicode_ranges[i - 1].last <
                        tlmi_unicode_ranges[i].first);
    }
}

/* With the allocator failing at its 1st, 2nd, ... call, importing (both
 * formats), exporting and encoding a long piece fail with TLM_E_NOMEM and
 * leak nothing, until they succeed. */
static void allocation_failures_are_clean(void **state) {
    (void)state;
    counting_allocator counter;
    memset(&counter, 0, sizeof counter);
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    const char *paths[2];
    paths[0] = tiny_dir("alloc", "encoder.json", "vocab.bpe");
    static char rank_path[4600];
    {
        static const char digits[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        char rank_file[8192];
        size_t n = 0;
        for (int byte = 0; byte < 256; byte++)
            n += (size_t)sprintf(rank_file + n, "%c%c== %d\n", digits[byte >> 2],
                                 digits[(byte & 3) << 4], byte);
        n += (size_t)sprintf(rank_file + n, "aGU= 256\nIHQ= 257\nIHRoZQ== 258\n");
        write_in("alloc", "tiny.tiktoken", rank_file, n);
        snprintf(rank_path, sizeof rank_path, "%s/tiny.tiktoken", path_in("alloc"));
        paths[1] = rank_path;
    }
    tlm_tokenizer *tok = NULL;
    for (int p = 0; p < 2; p++) {
        int64_t failures = 0;
        for (int64_t k = 1;; k++) {
            const uint64_t live = counter.live_bytes;
            counter.fail_at = (int64_t)counter.calls + k;
            tok = (tlm_tokenizer *)&counter;
            int status = tlm_tokenizer_import(&tok, ctx, paths[p]);
            counter.fail_at = 0;
            if (status == TLM_OK)
                break;
            assert_int_equal(status, TLM_E_NOMEM);
            assert_null(tok);
            assert_int_equal(counter.live_bytes, live);
            failures++;
        }
        assert_true(failures >= 3);
        if (p == 0)
            break; /* keep the tiny tokenizer; the rank file is checked below */
    }
    for (int64_t k = 1;; k++) {
        const uint64_t live = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + k;
        tlm_tokenizer *other = (tlm_tokenizer *)&counter;
        int status = tlm_tokenizer_import(&other, ctx, paths[1]);
        counter.fail_at = 0;
        if (status == TLM_OK) {
            tlm_tokenizer_free(other);
            break;
        }
        assert_int_equal(status, TLM_E_NOMEM);
        assert_int_equal(counter.live_bytes, live);
    }
    char out[4600];
    snprintf(out, sizeof out, "%s/alloc-export", dir);
    for (int64_t k = 1;; k++) {
        const uint64_t live = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + k;
        int status = tlm_tokenizer_export(tok, out);
        counter.fail_at = 0;
        assert_int_equal(counter.live_bytes, live);
        if (status == TLM_OK)
            break;
        assert_int_equal(status, TLM_E_NOMEM);
    }
    char spaces[2000];
    memset(spaces, ' ', sizeof spaces);
    int32_t ids[2000];
    size_t n_ids = 0;
    for (int64_t k = 1;; k++) {
        const uint64_t live = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + k;
        int status = tlm_tokenizer_encode(tok, spaces, sizeof spaces, ids,
                                          sizeof spaces, &n_ids);
        counter.fail_at = 0;
        assert_int_equal(counter.live_bytes, live);
        if (status == TLM_OK)
            break;
        assert_int_equal(status, TLM_E_NOMEM);
        assert_non_null(strstr(tlm_tokenizer_last_error(tok), "2000-byte piece"));
    }
    assert_int_equal(n_ids, 500); /* 2000 spaces by "    " */
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiny_import),
        cmocka_unit_test(malformed_vocabularies_are_refused),
        cmocka_unit_test(malformed_tiktoken_files_are_refused),
        cmocka_unit_test(round_trips_and_long_pieces),
        cmocka_unit_test(storage_keeps_the_ids),
        cmocka_unit_test(unicode_classes),
        cmocka_unit_test(allocation_failures_are_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
