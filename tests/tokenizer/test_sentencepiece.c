/*
 * Suite "tokenizer": SentencePiece tokenizers against the sentencepiece
 * library (fixtures written by tests/reference/make_sentencepiece_fixtures.py;
 * argument 1: the shared_data directory, for the Shakespeare passages,
 * which are skipped when it is absent; argument 2: this directory):
 * - every fixture text encodes to exactly sentencepiece's ids (0
 *   mismatches) from tokenizer.model and from llama2.c's tokenizer.bin,
 *   and after tlm_tokenizer_save/load, tlm_tokenizer_export,
 *   tlm_tokenizer_export_as (SentencePiece and llama2.c forms) and inside
 *   a model's .tlm file; the ids
 *   decode to sentencepiece's decode, and so does a token stream;
 * - a model without byte fallback (one <unk> per run of unknown
 *   characters) matches too;
 * - special ids; refusals (unigram, a normalizer, remove_extra_whitespaces,
 *   user-defined pieces); every truncation of a model file fails cleanly
 *   (a tokenizer.bin cut between tokens is a shorter vocabulary);
 *   export_as refuses what a format cannot hold; allocation failures are
 *   TLM_E_NOMEM and leak nothing.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "temp_dir.h"
#include "tlm.h"

#define MAX_TEXTS 256

typedef struct fixture_text {
    unsigned char *bytes;
    size_t length;
    int32_t *ids[2];           /* bpe, nofallback */
    size_t n_ids[2];
    unsigned char *decoded[2]; /* NULL: the text itself */
    size_t decoded_length[2];
} fixture_text;

static const char *data_dir, *source_dir;
static char dir[4096];
static fixture_text texts[MAX_TEXTS];
static size_t n_texts, n_skipped;

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    unsigned char *data = malloc((size_t)n + 1);
    *size = fread(data, 1, (size_t)n, f);
    data[*size] = 0;
    fclose(f);
    return data;
}

static unsigned char *from_hex(const char *hex, size_t *length) {
    size_t n = strlen(hex) / 2;
    unsigned char *out = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    *length = n;
    return out;
}

static int32_t *parse_ids(const char *s, size_t *n) {
    int32_t *ids = malloc((strlen(s) / 2 + 1) * sizeof *ids);
    *n = 0;
    char *end;
    for (long v = strtol(s, &end, 10); end != s; v = strtol(s, &end, 10)) {
        ids[(*n)++] = (int32_t)v;
        s = end;
    }
    return ids;
}

/* Reads sp_ids.txt (see the generating script). */
static void read_fixture(void) {
    char path[4300];
    snprintf(path, sizeof path, "%s/sp_ids.txt", source_dir);
    size_t size = 0, shakespeare_size = 0;
    char *text = (char *)read_all(path, &size);
    assert_non_null(text);
    snprintf(path, sizeof path, "%s/tinyshakespeare.txt", data_dir);
    unsigned char *shakespeare = read_all(path, &shakespeare_size);
    int skipping = 0;
    for (char *line = strtok(text, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        fixture_text *t = &texts[n_texts];
        if (strncmp(line, "text", 4) == 0) {
            skipping = 0;
            t->bytes = from_hex(line[4] == ' ' ? line + 5 : "", &t->length);
            n_texts++;
        } else if (strncmp(line, "shakespeare ", 12) == 0) {
            size_t offset = 0, length = 0;
            sscanf(line + 12, "%zu %zu", &offset, &length);
            skipping = shakespeare == NULL || offset + length > shakespeare_size;
            if (skipping) {
                n_skipped++;
                continue;
            }
            t->bytes = malloc(length + 1);
            memcpy(t->bytes, shakespeare + offset, length);
            t->length = length;
            n_texts++;
        } else if (!skipping) {
            fixture_text *last = &texts[n_texts - 1];
            int model = strncmp(line, "bpe", 3) == 0 ? 0 : 1;
            const char *rest = strchr(line, ' ') + 1;
            if (strstr(line, "-decoded ") != NULL)
                last->decoded[model] =
                    from_hex(rest, &last->decoded_length[model]);
            else
                last->ids[model] = parse_ids(rest + 4, &last->n_ids[model]);
        }
        assert_true(n_texts < MAX_TEXTS);
    }
    free(text);
    free(shakespeare);
    if (n_skipped > 0)
        printf("# %zu Shakespeare passages skipped: no %s/tinyshakespeare.txt\n",
               n_skipped, data_dir);
}

static tlm_tokenizer *import(const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", source_dir, name);
    tlm_tokenizer *tok = NULL;
    int status = tlm_tokenizer_import(&tok, NULL, path);
    if (status != TLM_OK)
        fail_msg("import %s: %s", path, tlm_last_error());
    assert_int_equal(tlm_tokenizer_kind(tok), TLM_TOKENIZER_SENTENCEPIECE);
    return tok;
}

/* Every text against sentencepiece's ids and decode for `model`. */
static void check_texts(tlm_tokenizer *tok, int model, const char *form) {
    size_t mismatches = 0;
    tlm_token_stream *stream = NULL;
    for (size_t i = 0; i < n_texts; i++) {
        const fixture_text *t = &texts[i];
        size_t capacity = 3 * t->length + 3, n = 0;
        int32_t *ids = malloc(capacity * sizeof *ids);
        assert_int_equal(tlm_tokenizer_encode(tok, (const char *)t->bytes,
                                              t->length, ids, capacity, &n),
                         TLM_OK);
        if (n != t->n_ids[model] ||
            memcmp(ids, t->ids[model], n * sizeof *ids) != 0) {
            mismatches++;
            printf("# %s: text %zu (%zu bytes) encodes to %zu ids, "
                   "sentencepiece %zu\n", form, i, t->length, n,
                   t->n_ids[model]);
        }
        const unsigned char *want = t->decoded[model] ? t->decoded[model] : t->bytes;
        size_t want_length = t->decoded[model] ? t->decoded_length[model] : t->length;
        char *text = malloc(want_length + 64);
        size_t length = 0;
        assert_int_equal(tlm_tokenizer_decode(tok, t->ids[model], t->n_ids[model],
                                              text, want_length + 64, &length),
                         TLM_OK);
        if (length != want_length || memcmp(text, want, length) != 0) {
            mismatches++;
            printf("# %s: text %zu decodes differently\n", form, i);
        }
        /* The stream gives the same bytes. */
        assert_int_equal(tlm_token_stream_create(&stream, tok), TLM_OK);
        size_t at = 0;
        int same = 1;
        for (size_t k = 0; k <= t->n_ids[model]; k++) {
            const char *piece;
            size_t piece_length;
            if (k < t->n_ids[model])
                assert_int_equal(tlm_token_stream_push(stream, t->ids[model][k],
                                                       &piece, &piece_length),
                                 TLM_OK);
            else
                assert_int_equal(tlm_token_stream_flush(stream, &piece,
                                                        &piece_length),
                                 TLM_OK);
            if (at + piece_length > length ||
                memcmp(text + at, piece, piece_length) != 0)
                same = 0;
            at += piece_length;
        }
        tlm_token_stream_free(stream);
        if (!same || at != length) {
            mismatches++;
            printf("# %s: text %zu streams differently\n", form, i);
        }
        free(text);
        free(ids);
    }
    printf("# %s: %zu texts, %zu mismatches\n", form, n_texts, mismatches);
    assert_int_equal(mismatches, 0);
}

static void test_model_file(void **state) {
    (void)state;
    tlm_tokenizer *tok = import("sp_bpe.model");
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 1000);
    check_texts(tok, 0, "tokenizer.model");
    tlm_tokenizer_free(tok);
}

static void test_llama2c_file(void **state) {
    (void)state;
    tlm_tokenizer *tok = import("sp_bpe.bin");
    assert_int_equal(tlm_tokenizer_vocab_size(tok), 1000);
    check_texts(tok, 0, "tokenizer.bin");
    tlm_tokenizer_free(tok);
}

static void test_no_byte_fallback(void **state) {
    (void)state;
    tlm_tokenizer *tok = import("sp_nofallback.model");
    check_texts(tok, 1, "no byte fallback");
    tlm_tokenizer_free(tok);
}

static void test_special_ids(void **state) {
    (void)state;
    const char *names[] = {"sp_bpe.model", "sp_bpe.bin"};
    for (int k = 0; k < 2; k++) {
        tlm_tokenizer *tok = import(names[k]);
        assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK), 0);
        assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS), 1);
        assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_EOS), 2);
        assert_int_equal(tlm_tokenizer_special_id(tok, TLM_TOKEN_PAD), TLM_E_RANGE);
        /* BOS and EOS decode to nothing, and the first piece after BOS
         * loses its leading space. */
        int32_t ids[16];
        size_t n = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, "Hello world", 11, ids + 1,
                                              15, &n), TLM_OK);
        ids[0] = 1;
        ids[n + 1] = 2;
        char text[64];
        size_t length = 0;
        assert_int_equal(tlm_tokenizer_decode(tok, ids, n + 2, text, sizeof text,
                                              &length), TLM_OK);
        assert_int_equal(length, 11);
        assert_memory_equal(text, "Hello world", 11);
        /* The unknown piece decodes to " \u2047 ". */
        int32_t unk = 0;
        assert_int_equal(tlm_tokenizer_decode(tok, &unk, 1, text, sizeof text,
                                              &length), TLM_OK);
        assert_int_equal(length, 5);
        assert_memory_equal(text, " \xE2\x81\x87 ", 5);
        tlm_tokenizer_free(tok);
    }
}

/* Writes the tokenizer in every form that holds it and checks each reads
 * back to the same ids. */
static void test_round_trips(void **state) {
    (void)state;
    tlm_tokenizer *tok = import("sp_bpe.model");
    char path[4300];
    /* tlm's own file. */
    snprintf(path, sizeof path, "%s/sp.tok", dir);
    assert_int_equal(tlm_tokenizer_save(tok, path), TLM_OK);
    tlm_tokenizer *loaded = NULL;
    assert_int_equal(tlm_tokenizer_load(&loaded, NULL, path), TLM_OK);
    check_texts(loaded, 0, "tlm_tokenizer_save/load");
    tlm_tokenizer_free(loaded);
    /* tokenizer.model through export (a directory). */
    snprintf(path, sizeof path, "%s/exported", dir);
    assert_int_equal(tlm_tokenizer_export(tok, path), TLM_OK);
    assert_int_equal(tlm_tokenizer_import(&loaded, NULL, path), TLM_OK);
    check_texts(loaded, 0, "tlm_tokenizer_export");
    tlm_tokenizer_free(loaded);
    /* export_as: SentencePiece, llama2.c, tlm. */
    const int32_t formats[3] = {TLM_TOKENIZER_FORMAT_SENTENCEPIECE,
                                TLM_TOKENIZER_FORMAT_LLAMA2C,
                                TLM_TOKENIZER_FORMAT_TLM};
    for (int k = 0; k < 3; k++) {
        snprintf(path, sizeof path, "%s/as%d", dir, k);
        assert_int_equal(tlm_tokenizer_export_as(tok, path, formats[k]), TLM_OK);
        assert_int_equal(tlm_tokenizer_import(&loaded, NULL, path), TLM_OK);
        check_texts(loaded, 0, "tlm_tokenizer_export_as");
        tlm_tokenizer_free(loaded);
    }
    /* The llama2.c form written from the .bin is byte-identical to it. */
    tlm_tokenizer *bin = import("sp_bpe.bin");
    snprintf(path, sizeof path, "%s/again.bin", dir);
    if (tlm_tokenizer_export_as(bin, path, TLM_TOKENIZER_FORMAT_LLAMA2C) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    size_t a_size = 0, b_size = 0;
    unsigned char *a = read_all(path, &a_size);
    char original[4300];
    snprintf(original, sizeof original, "%s/sp_bpe.bin", source_dir);
    unsigned char *b = read_all(original, &b_size);
    assert_int_equal(a_size, b_size);
    assert_memory_equal(a, b, a_size);
    free(a);
    free(b);
    tlm_tokenizer_free(bin);
    /* A format that cannot hold the kind, and the other way round. */
    snprintf(path, sizeof path, "%s/gpt2", dir);
    assert_int_equal(tlm_tokenizer_export_as(tok, path, TLM_TOKENIZER_FORMAT_GPT2),
                     TLM_E_UNSUPPORTED);
    tlm_tokenizer *bytes = NULL;
    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    params.kind = TLM_TOKENIZER_BYTE;
    assert_int_equal(tlm_tokenizer_train(&bytes, NULL, "", 0, &params), TLM_OK);
    snprintf(path, sizeof path, "%s/bytes.bin", dir);
    assert_int_equal(tlm_tokenizer_export_as(bytes, path, TLM_TOKENIZER_FORMAT_LLAMA2C),
                     TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "kind 0"));
    assert_int_equal(tlm_tokenizer_export_as(bytes, path,
                                             TLM_TOKENIZER_FORMAT_SENTENCEPIECE),
                     TLM_E_UNSUPPORTED);
    assert_int_equal(temp_dir_count(dir, NULL, 0), 6); /* nothing more written */
    tlm_tokenizer_free(bytes);
    tlm_tokenizer_free(tok);
}

/* A model carries its SentencePiece tokenizer through its .tlm file. */
static void test_model_carries_tokenizer(void **state) {
    (void)state;
    tlm_tokenizer *tok = import("sp_bpe.model");
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = tlm_tokenizer_vocab_size(tok);
    c.d_model = 8;
    c.n_heads = 1;
    c.d_ff = 16;
    c.n_decoder_layers = 1;
    c.max_context = 8;
    tlm_model *model = NULL, *loaded = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    assert_int_equal(tlm_model_set_tokenizer(model, tok), TLM_OK);
    char path[4300];
    snprintf(path, sizeof path, "%s/model.tlm", dir);
    assert_int_equal(tlm_model_save(model, path), TLM_OK);
    assert_int_equal(tlm_model_load(&loaded, ctx, path, NULL), TLM_OK);
    tlm_tokenizer *carried = tlm_model_tokenizer(loaded);
    assert_non_null(carried);
    assert_int_equal(tlm_tokenizer_kind(carried), TLM_TOKENIZER_SENTENCEPIECE);
    check_texts(carried, 0, "inside a .tlm model");
    tlm_model_free(loaded);
    tlm_model_free(model);
    tlm_context_free(ctx);
    tlm_tokenizer_free(tok);
    remove(path);
}

/* --- hand-made ModelProtos --------------------------------------------- */

typedef struct proto {
    unsigned char b[4096];
    size_t n;
} proto;

static void varint(proto *p, uint64_t v) {
    do {
        p->b[p->n++] = (unsigned char)((v & 0x7F) | (v >= 0x80 ? 0x80 : 0));
        v >>= 7;
    } while (v != 0);
}

static void field_bytes(proto *p, unsigned number, const void *s, size_t n) {
    varint(p, (uint64_t)number << 3 | 2);
    varint(p, n);
    memcpy(p->b + p->n, s, n);
    p->n += n;
}

static void field_int(proto *p, unsigned number, uint64_t v) {
    varint(p, (uint64_t)number << 3);
    varint(p, v);
}

static void add_piece(proto *p, const char *piece, int type) {
    proto m = {{0}, 0};
    field_bytes(&m, 1, piece, strlen(piece));
    m.b[m.n++] = 2 << 3 | 5;
    memset(m.b + m.n, 0, 4);
    m.n += 4;
    if (type != 1)
        field_int(&m, 3, (uint64_t)type);
    field_bytes(p, 1, m.b, m.n);
}

/* A tiny model: <unk> <s> </s> a b ab, then a user piece when asked;
 * trainer and normalizer fields as given (-1: absent). */
static void make_model(proto *p, int model_type, const char *normalizer,
                       int remove_extra, int user_piece) {
    p->n = 0;
    add_piece(p, "<unk>", 2);
    add_piece(p, "<s>", 3);
    add_piece(p, "</s>", 3);
    add_piece(p, "a", 1);
    add_piece(p, "b", 1);
    add_piece(p, "ab", 1);
    if (user_piece)
        add_piece(p, "<user>", 4);
    proto t = {{0}, 0};
    if (model_type >= 0)
        field_int(&t, 3, (uint64_t)model_type);
    field_int(&t, 999, 5); /* an unknown field is skipped */
    field_bytes(p, 2, t.b, t.n);
    proto n = {{0}, 0};
    if (normalizer != NULL)
        field_bytes(&n, 1, normalizer, strlen(normalizer));
    if (remove_extra >= 0)
        field_int(&n, 4, (uint64_t)remove_extra);
    field_bytes(p, 3, n.b, n.n);
}

static int import_bytes(const proto *p, const char *name) {
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    assert_int_equal(write_whole_file(path, p->b, p->n), 0);
    tlm_tokenizer *tok = NULL;
    int status = tlm_tokenizer_import(&tok, NULL, path);
    if (status == TLM_OK) {
        int32_t ids[8];
        size_t n = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, "ab ba", 5, ids, 8, &n), TLM_OK);
        /* "▁" is unknown here: <unk> for it, "ab", <unk>, "b", "a". */
        assert_int_equal(n, 5);
        assert_int_equal(ids[1], 5);
        tlm_tokenizer_free(tok);
    } else {
        assert_null(tok);
    }
    return status;
}

static void test_refusals(void **state) {
    (void)state;
    proto p;
    make_model(&p, 2, "identity", 0, 0);
    assert_int_equal(import_bytes(&p, "good.model"), TLM_OK);
    make_model(&p, 1, "identity", 0, 0);
    assert_int_equal(import_bytes(&p, "unigram.model"), TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "model_type"));
    make_model(&p, -1, "identity", 0, 0);
    assert_int_equal(import_bytes(&p, "default.model"), TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "UNIGRAM"));
    make_model(&p, 2, "nmt_nfkc", 0, 0);
    assert_int_equal(import_bytes(&p, "nfkc.model"), TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "normalizer_spec.name"));
    make_model(&p, 2, "identity", -1, 0);
    assert_int_equal(import_bytes(&p, "extra.model"), TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "remove_extra_whitespaces"));
    make_model(&p, 2, "identity", 0, 1);
    assert_int_equal(import_bytes(&p, "user.model"), TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "USER_DEFINED"));
    /* The committed unigram model. */
    char path[4300];
    snprintf(path, sizeof path, "%s/sp_unigram.model", source_dir);
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_import(&tok, NULL, path), TLM_E_UNSUPPORTED);
    assert_non_null(strstr(tlm_last_error(), "trainer_spec.model_type"));
    assert_non_null(strstr(tlm_last_error(), "sp_unigram.model"));
    assert_null(tok);
}

/* Every proper prefix of each file fails with a status, never a crash. */
static void test_truncations(void **state) {
    (void)state;
    const char *names[] = {"sp_nofallback.model", "sp_bpe.bin"};
    for (int k = 0; k < 2; k++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", source_dir, names[k]);
        size_t size = 0;
        unsigned char *data = read_all(path, &size);
        assert_non_null(data);
        snprintf(path, sizeof path, "%s/cut", dir);
        size_t step = k == 0 ? 1 : 7;
        for (size_t n = 4; n < size; n += step) {
            assert_int_equal(write_whole_file(path, data, n), 0);
            tlm_tokenizer *tok = NULL;
            int status = tlm_tokenizer_import(&tok, NULL, path);
            /* tokenizer.bin has no count: cut between two tokens, it is a
             * shorter vocabulary. */
            if (status == TLM_OK && k == 1) {
                assert_true(tlm_tokenizer_vocab_size(tok) < 1000);
                tlm_tokenizer_free(tok);
                continue;
            }
            if (status == TLM_OK)
                fail_msg("%s cut at %zu bytes was read", names[k], n);
            assert_null(tok);
        }
        free(data);
    }
}

/* With the allocator failing at its 1st, 2nd, ... call, importing both
 * forms, encoding, saving and loading fail with TLM_E_NOMEM and leak
 * nothing, until they succeed. */
static void test_allocation_failures(void **state) {
    (void)state;
    counting_allocator counter;
    memset(&counter, 0, sizeof counter);
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    const char *names[2] = {"sp_nofallback.model", "sp_bpe.bin"};
    tlm_tokenizer *toks[2] = {NULL, NULL};
    for (int m = 0; m < 2; m++) {
        char path[4300];
        snprintf(path, sizeof path, "%s/%s", source_dir, names[m]);
        int64_t failures = 0;
        for (int64_t k = 1;; k++) {
            const uint64_t live = counter.live_bytes;
            counter.fail_at = (int64_t)counter.calls + k;
            int status = tlm_tokenizer_import(&toks[m], ctx, path);
            counter.fail_at = 0;
            if (status == TLM_OK)
                break;
            assert_int_equal(status, TLM_E_NOMEM);
            assert_null(toks[m]);
            assert_int_equal(counter.live_bytes, live);
            failures++;
        }
        assert_true(failures >= 5);
    }
    static const char text[] = "Hello world, ÿþ it is  ä¸­";
    int32_t ids[3 * sizeof text];
    size_t n = 0;
    for (int64_t k = 1;; k++) {
        const uint64_t live = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + k;
        int status = tlm_tokenizer_encode(toks[1], text, sizeof text - 1, ids,
                                          3 * sizeof text, &n);
        counter.fail_at = 0;
        assert_int_equal(counter.live_bytes, live);
        if (status == TLM_OK)
            break;
        assert_int_equal(status, TLM_E_NOMEM);
    }
    assert_true(n > 0);
    unsigned char image[65536];
    size_t size = 0;
    assert_int_equal(tlm_tokenizer_save_memory(toks[1], image, sizeof image, &size), TLM_OK);
    for (int64_t k = 1;; k++) {
        const uint64_t live = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + k;
        tlm_tokenizer *loaded = NULL;
        int status = tlm_tokenizer_load_memory(&loaded, ctx, image, size);
        counter.fail_at = 0;
        if (status == TLM_OK) {
            tlm_tokenizer_free(loaded);
            break;
        }
        assert_int_equal(status, TLM_E_NOMEM);
        assert_int_equal(counter.live_bytes, live);
    }
    char out[4300];
    snprintf(out, sizeof out, "%s/alloc.bin", dir);
    for (int64_t k = 1;; k++) {
        const uint64_t live = counter.live_bytes;
        counter.fail_at = (int64_t)counter.calls + k;
        int status = tlm_tokenizer_export_as(toks[1], out, TLM_TOKENIZER_FORMAT_LLAMA2C);
        counter.fail_at = 0;
        assert_int_equal(counter.live_bytes, live);
        if (status == TLM_OK)
            break;
        assert_int_equal(status, TLM_E_NOMEM);
    }
    remove(out);
    tlm_tokenizer_free(toks[0]);
    tlm_tokenizer_free(toks[1]);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

static int setup(void **state) {
    (void)state;
    if (temp_dir_create(dir, sizeof dir) != 0)
        return -1;
    read_fixture();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    for (size_t i = 0; i < n_texts; i++) {
        free(texts[i].bytes);
        for (int m = 0; m < 2; m++) {
            free(texts[i].ids[m]);
            free(texts[i].decoded[m]);
        }
    }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SHARED_DATA_DIR FIXTURE_DIR\n", argv[0]);
        return 1;
    }
    data_dir = argv[1];
    source_dir = argv[2];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model_file),
        cmocka_unit_test(test_llama2c_file),
        cmocka_unit_test(test_no_byte_fallback),
        cmocka_unit_test(test_special_ids),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_model_carries_tokenizer),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_truncations),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
