/*
 * Suite "tokenizer": the file format of docs/tokenizer.md and allocation
 * failures.
 * - save/load round trips (memory and file) keep every token and give the
 *   same encodings, for every kind;
 * - malformed images are refused with TLM_E_FORMAT and a message naming
 *   the offset (truncated at every length, bad magic, bad checksum, bad
 *   counts, bad ids, unsorted characters, impossible merges, trailing
 *   bytes), a newer version with TLM_E_VERSION; random corruption never
 *   crashes;
 * - with the allocator failing at its 1st, 2nd, ... call, training,
 *   loading, saving and stream creation fail with TLM_E_NOMEM, leak
 *   nothing, and finally succeed.
 */
#define _POSIX_C_SOURCE 200809L /* mkstemp */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"
#include "tok_test_util.h"

enum { MAX_TEXT = 300 };

static tlm_tokenizer *train(tlm_context *ctx, int32_t kind, const void *corpus,
                            size_t n, int32_t vocab_size) {
    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    params.kind = kind;
    params.vocab_size = vocab_size;
    tlm_tokenizer *tok = NULL;
    int status = tlm_tokenizer_train(&tok, ctx, corpus, n, &params);
    if (status != TLM_OK)
        fail_msg("training failed: %s", tlm_last_error());
    return tok;
}

static unsigned char *image_of(tlm_tokenizer *tok, size_t *size) {
    assert_int_equal(tlm_tokenizer_save_memory(tok, NULL, 0, size), TLM_OK);
    unsigned char *image = malloc(*size);
    assert_int_equal(tlm_tokenizer_save_memory(tok, image, *size, size), TLM_OK);
    return image;
}

/* The same vocabulary, merges and encodings of random texts. */
static void assert_same_tokenizer(tlm_tokenizer *a, tlm_tokenizer *b) {
    assert_int_equal(tlm_tokenizer_kind(a), tlm_tokenizer_kind(b));
    assert_int_equal(tlm_tokenizer_vocab_size(a), tlm_tokenizer_vocab_size(b));
    assert_int_equal(tlm_tokenizer_merge_count(a), tlm_tokenizer_merge_count(b));
    for (int32_t id = 0; id < tlm_tokenizer_vocab_size(a); id++) {
        const char *ba, *bb;
        size_t na, nb;
        assert_int_equal(tlm_tokenizer_token_bytes(a, id, &ba, &na), TLM_OK);
        assert_int_equal(tlm_tokenizer_token_bytes(b, id, &bb, &nb), TLM_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(ba, bb, na);
    }
    uint64_t rng = 77;
    unsigned char text[MAX_TEXT];
    int32_t ids_a[MAX_TEXT], ids_b[MAX_TEXT];
    for (int t = 0; t < 500; t++) {
        size_t len = test_random_text(&rng, text, MAX_TEXT), na = 0, nb = 0;
        assert_int_equal(tlm_tokenizer_encode(a, (const char *)text, len, ids_a, MAX_TEXT, &na),
                         TLM_OK);
        assert_int_equal(tlm_tokenizer_encode(b, (const char *)text, len, ids_b, MAX_TEXT, &nb),
                         TLM_OK);
        assert_int_equal(na, nb);
        assert_memory_equal(ids_a, ids_b, na * sizeof *ids_a);
    }
}

static tlm_tokenizer *of_kind(int kind) {
    size_t size;
    unsigned char *corpus = test_random_corpus(kind + 100, 150, MAX_TEXT, &size);
    tlm_tokenizer *tok = train(NULL, kind, corpus, size, 500);
    free(corpus);
    return tok;
}

static void temp_path(char *path, size_t size) {
    const char *dir = getenv("TMPDIR");
    snprintf(path, size, "%s/tlm-tokenizer-XXXXXX", dir != NULL ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
}

static void save_and_load_round_trip(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = of_kind(kind);
        size_t size;
        unsigned char *image = image_of(tok, &size);
        /* Memory. */
        tlm_tokenizer *loaded = NULL;
        assert_int_equal(tlm_tokenizer_load_memory(&loaded, NULL, image, size), TLM_OK);
        assert_same_tokenizer(tok, loaded);
        size_t size_again;
        unsigned char *again = image_of(loaded, &size_again);
        assert_int_equal(size_again, size);
        assert_memory_equal(again, image, size);
        tlm_tokenizer_free(loaded);
        /* File: the same bytes as the memory image. */
        char path[4096];
        temp_path(path, sizeof path);
        assert_int_equal(tlm_tokenizer_save(tok, path), TLM_OK);
        size_t file_size;
        unsigned char *file = test_read_file(path, &file_size);
        assert_int_equal(file_size, size);
        assert_memory_equal(file, image, size);
        assert_int_equal(tlm_tokenizer_load(&loaded, NULL, path), TLM_OK);
        assert_same_tokenizer(tok, loaded);
        tlm_tokenizer_free(loaded);
        remove(path);
        free(file);
        free(again);
        free(image);
        tlm_tokenizer_free(tok);
    }
}

static void byte_level_image_is_as_documented(void **state) {
    (void)state;
    tlm_tokenizer *tok = of_kind(TLM_TOKENIZER_BYTE);
    size_t size;
    unsigned char *image = image_of(tok, &size);
    /* docs/tokenizer.md: magic, version 1, kind 0, 259 ids, BOS 256,
     * EOS 257, PAD 258, no unknown id, no items, CRC-32. */
    assert_int_equal(size, 44);
    assert_memory_equal(image, "TLMTOKEN", 8);
    static const uint32_t fields[8] = {1, 0, 259, 256, 257, 258, 0xFFFFFFFFu, 0};
    for (int i = 0; i < 8; i++)
        assert_int_equal(test_get_u32(image + 8 + 4 * i), fields[i]);
    assert_int_equal(test_get_u32(image + 40), test_crc32(image, 40));
    /* The CRC is zlib's: its check value. */
    assert_int_equal(test_crc32((const unsigned char *)"123456789", 9), 0xCBF43926u);
    free(image);
    tlm_tokenizer_free(tok);
}

/* Loads an image expecting `status` and a message containing `text`. */
static void assert_refused(const unsigned char *image, size_t size, int status,
                           const char *text) {
    tlm_tokenizer *tok = (tlm_tokenizer *)&size;
    int got = tlm_tokenizer_load_memory(&tok, NULL, image, size);
    if (got != status)
        fail_msg("expected %s, got %s: %s", tlm_status_name(status),
                 tlm_status_name(got), tlm_last_error());
    assert_null(tok);
    if (strstr(tlm_last_error(), text) == NULL)
        fail_msg("message '%s' does not say '%s'", tlm_last_error(), text);
    assert_non_null(strstr(tlm_last_error(), "tlm_tokenizer_load_memory"));
}

static void truncated_images_are_refused_at_every_length(void **state) {
    (void)state;
    for (int kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = of_kind(kind);
        size_t size;
        unsigned char *image = image_of(tok, &size);
        for (size_t cut = 0; cut < size; cut++) {
            /* A copy of exactly `cut` bytes, so that reading past it is
             * caught by the sanitizers and valgrind. */
            unsigned char *part = malloc(cut > 0 ? cut : 1);
            memcpy(part, image, cut);
            assert_refused(part, cut, TLM_E_FORMAT, cut < 44 ? "offset" : "truncated");
            free(part);
        }
        free(image);
        tlm_tokenizer_free(tok);
    }
}

/* Edits a field and fixes the checksum, so that the field's own check is
 * what refuses the image. */
static void assert_field_refused(const unsigned char *image, size_t size, size_t at,
                                 uint32_t value, int status, const char *text) {
    unsigned char *copy = malloc(size);
    memcpy(copy, image, size);
    test_set_u32(copy + at, value);
    test_fix_checksum(copy, size);
    assert_refused(copy, size, status, text);
    free(copy);
}

static void malformed_headers_are_refused(void **state) {
    (void)state;
    tlm_tokenizer *tok = of_kind(TLM_TOKENIZER_BPE);
    size_t size;
    unsigned char *image = image_of(tok, &size);
    const uint32_t count = test_get_u32(image + 36);
    const uint32_t vocab = test_get_u32(image + 16);
    assert_int_equal(vocab, 256 + count + 3);
    unsigned char *copy = malloc(size + 1);

    /* Bad magic: any of its bytes. */
    for (size_t i = 0; i < 8; i++) {
        memcpy(copy, image, size);
        copy[i] ^= 0x20;
        assert_refused(copy, size, TLM_E_FORMAT, "magic at offset 0");
    }
    /* Bad checksum: a flipped bit anywhere before it, or in it. */
    for (size_t i = 12; i < size; i += 7) {
        memcpy(copy, image, size);
        copy[i] ^= 0x01;
        assert_refused(copy, size, TLM_E_FORMAT, i >= 40 && i < size - 4 ? "checksum" : "offset");
    }
    memcpy(copy, image, size);
    copy[size - 1] ^= 0x80;
    assert_refused(copy, size, TLM_E_FORMAT, "checksum");
    /* A trailing byte. */
    memcpy(copy, image, size);
    copy[size] = 0;
    assert_refused(copy, size + 1, TLM_E_FORMAT, "unexpected bytes");
    /* Versions: a newer one (version 2 added the GPT-2 kind, 3 the
     * SentencePiece kind; 4 is not known yet), with or without a valid
     * checksum; 0. Versions 2 and 3 read the other kinds as version 1
     * does. */
    assert_field_refused(image, size, 8, 4, TLM_E_VERSION, "version 4 at offset 8");
    {
        memcpy(copy, image, size);
        test_set_u32(copy + 8, 2);
        test_fix_checksum(copy, size);
        tlm_tokenizer *v2 = NULL;
        assert_int_equal(tlm_tokenizer_load_memory(&v2, NULL, copy, size), TLM_OK);
        tlm_tokenizer_free(v2);
    }
    memcpy(copy, image, size);
    test_set_u32(copy + 8, 7);
    assert_refused(copy, size, TLM_E_VERSION, "newer");
    assert_field_refused(image, size, 8, 0, TLM_E_FORMAT, "offset 8");
    /* Kind, counts, vocabulary size and special ids. Kind 3 (GPT-2) needs
     * version 2. */
    assert_field_refused(image, size, 12, 3, TLM_E_FORMAT, "offset 12");
    assert_field_refused(image, size, 12, 4, TLM_E_FORMAT, "offset 12");
    assert_field_refused(image, size, 36, count + 1, TLM_E_FORMAT, "truncated");
    assert_field_refused(image, size, 36, count - 1, TLM_E_FORMAT, "unexpected bytes");
    assert_field_refused(image, size, 36, 0xFFFFFFFFu, TLM_E_FORMAT, "offset 36");
    assert_field_refused(image, size, 16, vocab + 1, TLM_E_FORMAT, "offset 16");
    assert_field_refused(image, size, 20, vocab - 1, TLM_E_FORMAT, "offset 20");
    assert_field_refused(image, size, 24, vocab - 3, TLM_E_FORMAT, "offset 24");
    assert_field_refused(image, size, 28, 0, TLM_E_FORMAT, "offset 28");
    assert_field_refused(image, size, 32, 5, TLM_E_FORMAT, "offset 32");
    /* A byte-level image with items. */
    tlm_tokenizer *byte = of_kind(TLM_TOKENIZER_BYTE);
    size_t byte_size;
    unsigned char *byte_image = image_of(byte, &byte_size);
    assert_field_refused(byte_image, byte_size, 36, 1, TLM_E_FORMAT, "offset 36");
    free(byte_image);
    tlm_tokenizer_free(byte);
    free(copy);
    free(image);
    tlm_tokenizer_free(tok);
}

static void malformed_merges_are_refused(void **state) {
    (void)state;
    tlm_tokenizer *tok = of_kind(TLM_TOKENIZER_BPE);
    size_t size;
    unsigned char *image = image_of(tok, &size);
    const uint32_t count = test_get_u32(image + 36);
    assert_true(count > 20);
    /* Merge 10 (at offset 40 + 8 * 10) naming a token made later. */
    assert_field_refused(image, size, 120, 256 + 10, TLM_E_FORMAT, "merge 10 at offset 120");
    assert_field_refused(image, size, 124, 256 + 12, TLM_E_FORMAT, "merge 10 at offset 124");
    assert_field_refused(image, size, 120, 0xFFFFFFFFu, TLM_E_FORMAT, "merge 10");
    /* Merge 12 repeating merge 3. */
    unsigned char *copy = malloc(size);
    memcpy(copy, image, size);
    memcpy(copy + 40 + 8 * 12, image + 40 + 8 * 3, 8);
    test_fix_checksum(copy, size);
    assert_refused(copy, size, TLM_E_FORMAT, "merge 12 at offset 136 repeats merge 3");
    free(copy);
    free(image);
    tlm_tokenizer_free(tok);

    /* Tokens longer than 256 bytes: 'a' doubled nine times is 512 bytes. */
    unsigned char doubled[44 + 9 * 8];
    memcpy(doubled, "TLMTOKEN", 8);
    const uint32_t header[8] = {1, 2, 256 + 9 + 3, 256 + 9, 256 + 10, 256 + 11,
                                0xFFFFFFFFu, 9};
    for (int i = 0; i < 8; i++)
        test_set_u32(doubled + 8 + 4 * i, header[i]);
    for (uint32_t r = 0; r < 9; r++) {
        test_set_u32(doubled + 40 + 8 * r, r == 0 ? 'a' : 255 + r);
        test_set_u32(doubled + 44 + 8 * r, r == 0 ? 'a' : 255 + r);
    }
    test_fix_checksum(doubled, sizeof doubled);
    assert_refused(doubled, sizeof doubled, TLM_E_FORMAT, "merge 8 at offset 104 makes a token of 512");
    /* The same eight merges (256 bytes at most) are fine. */
    test_set_u32(doubled + 16, 256 + 8 + 3);
    test_set_u32(doubled + 20, 256 + 8);
    test_set_u32(doubled + 24, 256 + 9);
    test_set_u32(doubled + 28, 256 + 10);
    test_set_u32(doubled + 36, 8);
    test_fix_checksum(doubled, sizeof doubled - 8);
    tlm_tokenizer *ok = NULL;
    assert_int_equal(tlm_tokenizer_load_memory(&ok, NULL, doubled, sizeof doubled - 8), TLM_OK);
    const char *bytes;
    size_t n;
    assert_int_equal(tlm_tokenizer_token_bytes(ok, 263, &bytes, &n), TLM_OK);
    assert_int_equal(n, 256);
    tlm_tokenizer_free(ok);
}

static void malformed_characters_are_refused(void **state) {
    (void)state;
    tlm_tokenizer *tok = of_kind(TLM_TOKENIZER_CHAR);
    size_t size;
    unsigned char *image = image_of(tok, &size);
    const uint32_t count = test_get_u32(image + 36);
    assert_true(count > 10);
    const uint32_t c4 = test_get_u32(image + 40 + 4 * 4);
    /* Character 5 not above character 4, or equal to it. */
    assert_field_refused(image, size, 60, c4, TLM_E_FORMAT, "character 5 at offset 60");
    assert_field_refused(image, size, 60, 0, TLM_E_FORMAT, "increasing");
    /* Not characters: a surrogate, beyond U+10FFFF, a lone ASCII byte. */
    assert_field_refused(image, size, 40 + 4 * (count - 1), 0xD800, TLM_E_FORMAT, "offset");
    assert_field_refused(image, size, 40 + 4 * (count - 1), 0x110000u + 0x41, TLM_E_FORMAT,
                         "lone byte");
    assert_field_refused(image, size, 40 + 4 * (count - 1), 0x110100u, TLM_E_FORMAT,
                         "neither");
    assert_field_refused(image, size, 36, 0x200000u, TLM_E_FORMAT, "offset 36");
    free(image);
    tlm_tokenizer_free(tok);
}

static void random_corruption_never_crashes(void **state) {
    (void)state;
    uint64_t rng = 99;
    int loaded = 0, refused = 0;
    for (int kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = of_kind(kind);
        size_t size;
        unsigned char *image = image_of(tok, &size);
        unsigned char *copy = malloc(size);
        for (int t = 0; t < 700; t++) {
            memcpy(copy, image, size);
            int edits = 1 + (int)test_below(&rng, 4);
            for (int e = 0; e < edits; e++) {
                size_t at = test_below(&rng, (uint32_t)size);
                if (test_below(&rng, 2) == 0)
                    copy[at] = (unsigned char)test_below(&rng, 256);
                else if (at + 4 <= size) /* a small number into a field */
                    test_set_u32(copy + (at & ~(size_t)3), test_below(&rng, 600));
            }
            if (t % 2 == 0) /* past the checksum, into the content checks */
                test_fix_checksum(copy, size);
            tlm_tokenizer *got = NULL;
            int status = tlm_tokenizer_load_memory(&got, NULL, copy, size);
            if (status == TLM_OK) {
                loaded++;
                /* Whatever loaded must work. */
                int32_t ids[32];
                size_t n_ids;
                char out[200];
                size_t length;
                assert_int_equal(tlm_tokenizer_encode(got, "a b, c'd 12", 11, ids, 32, &n_ids),
                                 TLM_OK);
                assert_int_equal(tlm_tokenizer_decode(got, ids, n_ids, out, sizeof out, &length),
                                 TLM_OK);
                tlm_tokenizer_free(got);
            } else {
                refused++;
                assert_true(status == TLM_E_FORMAT || status == TLM_E_VERSION);
                assert_null(got);
            }
        }
        free(copy);
        free(image);
        tlm_tokenizer_free(tok);
    }
    assert_true(refused > 0);
    (void)loaded;
}

static void missing_and_unwritable_files(void **state) {
    (void)state;
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_load(&tok, NULL, "/nonexistent-dir/x.tok"), TLM_E_IO);
    assert_non_null(strstr(tlm_last_error(), "/nonexistent-dir/x.tok"));
    /* A file that is not a tokenizer names itself in the message. */
    char path[4096];
    temp_path(path, sizeof path);
    FILE *f = fopen(path, "wb");
    fputs("hello", f);
    fclose(f);
    assert_int_equal(tlm_tokenizer_load(&tok, NULL, path), TLM_E_FORMAT);
    assert_non_null(strstr(tlm_last_error(), path));
    assert_non_null(strstr(tlm_last_error(), "magic"));
    remove(path);
    tok = of_kind(TLM_TOKENIZER_BYTE);
    assert_int_equal(tlm_tokenizer_save(tok, "/nonexistent-dir/x.tok"), TLM_E_IO);
    assert_non_null(strstr(tlm_tokenizer_last_error(tok), "/nonexistent-dir/x.tok"));
    tlm_tokenizer_free(tok);
}

/* --- allocation failures ------------------------------------------------- */

typedef int (*allocating_call)(tlm_context *ctx, void *arg, tlm_tokenizer **made);

typedef struct corpus_arg {
    const unsigned char *data;
    size_t size;
    int32_t kind;
    const char *path;
    tlm_tokenizer *tok;
} corpus_arg;

static int call_train(tlm_context *ctx, void *arg, tlm_tokenizer **made) {
    corpus_arg *c = arg;
    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    params.kind = c->kind;
    params.vocab_size = 400;
    return tlm_tokenizer_train(made, ctx, (const char *)c->data, c->size, &params);
}

static int call_load_memory(tlm_context *ctx, void *arg, tlm_tokenizer **made) {
    corpus_arg *c = arg;
    return tlm_tokenizer_load_memory(made, ctx, c->data, c->size);
}

static int call_load(tlm_context *ctx, void *arg, tlm_tokenizer **made) {
    corpus_arg *c = arg;
    return tlm_tokenizer_load(made, ctx, c->path);
}

static int call_save(tlm_context *ctx, void *arg, tlm_tokenizer **made) {
    (void)ctx;
    corpus_arg *c = arg;
    *made = NULL;
    return tlm_tokenizer_save(c->tok, c->path);
}

/* Runs `call` with the allocator failing at its 1st, 2nd, ... call from
 * then on, until it succeeds; every failure is TLM_E_NOMEM and leaves the
 * memory as it was. Returns the number of allocations the call makes. */
static int64_t fail_each_allocation(counting_allocator *counter, tlm_context *ctx,
                                    allocating_call call, void *arg) {
    const uint64_t live_before = counter->live_bytes;
    for (int64_t n = 1;; n++) {
        assert_true(n < 100000);
        counter->fail_at = (int64_t)counter->calls + n;
        tlm_tokenizer *made = (tlm_tokenizer *)counter;
        int status = call(ctx, arg, &made);
        counter->fail_at = 0;
        if (status == TLM_OK) {
            tlm_tokenizer_free(made);
            assert_int_equal(counter->live_bytes, live_before);
            return n - 1;
        }
        if (status != TLM_E_NOMEM)
            fail_msg("failure at allocation %lld gave %s: %s", (long long)n,
                     tlm_status_name(status), tlm_last_error());
        assert_null(made);
        assert_non_null(strstr(tlm_last_error(), "out of memory"));
        assert_int_equal(counter->live_bytes, live_before);
    }
}

static void allocation_failures_are_clean(void **state) {
    (void)state;
    counting_allocator counter;
    memset(&counter, 0, sizeof counter);
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);

    size_t size;
    unsigned char *corpus = test_random_corpus(7, 40, MAX_TEXT, &size);
    for (int32_t kind = 0; kind < 3; kind++) {
        corpus_arg arg = {corpus, size, kind, NULL, NULL};
        int64_t n = fail_each_allocation(&counter, ctx, call_train, &arg);
        assert_true(n >= 2); /* at least the handle and its tables */
    }

    for (int32_t kind = 0; kind < 3; kind++) {
        tlm_tokenizer *tok = train(ctx, kind, corpus, size, 400);
        size_t image_size;
        unsigned char *image = image_of(tok, &image_size);
        corpus_arg arg = {image, image_size, kind, NULL, tok};
        fail_each_allocation(&counter, ctx, call_load_memory, &arg);
        char path[4096];
        temp_path(path, sizeof path);
        arg.path = path;
        fail_each_allocation(&counter, ctx, call_save, &arg);
        fail_each_allocation(&counter, ctx, call_load, &arg);
        remove(path);
        /* A stream: its struct, then its buffer. */
        const uint64_t live_before = counter.live_bytes;
        for (int64_t n = 1;; n++) {
            counter.fail_at = (int64_t)counter.calls + n;
            tlm_token_stream *stream = (tlm_token_stream *)&arg;
            int status = tlm_token_stream_create(&stream, tok);
            counter.fail_at = 0;
            if (status == TLM_OK) {
                tlm_token_stream_free(stream);
                break;
            }
            assert_int_equal(status, TLM_E_NOMEM);
            assert_null(stream);
            assert_int_equal(counter.live_bytes, live_before);
        }
        assert_int_equal(counter.live_bytes, live_before);
        free(image);
        tlm_tokenizer_free(tok);
    }
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
    assert_int_equal(counter.misaligned, 0);
    free(corpus);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(save_and_load_round_trip),
        cmocka_unit_test(byte_level_image_is_as_documented),
        cmocka_unit_test(truncated_images_are_refused_at_every_length),
        cmocka_unit_test(malformed_headers_are_refused),
        cmocka_unit_test(malformed_merges_are_refused),
        cmocka_unit_test(malformed_characters_are_refused),
        cmocka_unit_test(random_corruption_never_crashes),
        cmocka_unit_test(missing_and_unwritable_files),
        cmocka_unit_test(allocation_failures_are_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
