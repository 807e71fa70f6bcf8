/*
 * Suite "tokenizer": GPT-2's real vocabulary, from the shared data
 * (argument 1: the shared_data directory, holding gpt2/encoder.json,
 * gpt2/vocab.bpe and tinyshakespeare.txt; skipped, exit 77, when absent)
 * against the fixture (argument 2: gpt2_ids.txt, the ids tiktoken gives,
 * written by tests/reference/make_gpt2_tokenizer_fixture.py):
 * - every fixture text encodes to exactly the expected ids (0 mismatches)
 *   and decodes back to itself;
 * - merge r makes id 256 + r, as in GPT-2's files;
 * - the same vocabulary as a tiktoken rank file (written here, from the
 *   loaded tokenizer), under Hugging Face's file names, through
 *   tlm_tokenizer_save/load, inside a model's .tlm file and through
 *   tlm_tokenizer_export gives the same merges and ids.
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
#include <unistd.h>

#include <cmocka.h>

#include "temp_dir.h"
#include "tlm.h"

typedef struct fixture_text {
    unsigned char *bytes;
    size_t length;
    int32_t *ids;
    size_t n_ids;
} fixture_text;

static const char *data_dir, *fixture_path;
static char gpt2_dir[4096], dir[4096];
static fixture_text *texts;
static size_t n_texts;
static tlm_tokenizer *gpt2;

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

/* Reads gpt2_ids.txt: "text HEX" or "shakespeare OFFSET LENGTH", then
 * "ids ID...", with "#" comment lines. */
static int read_fixture(void) {
    size_t size = 0, shakespeare_size = 0;
    char *text = (char *)read_all(fixture_path, &size);
    char shakespeare_path[4200];
    snprintf(shakespeare_path, sizeof shakespeare_path,
             "%s/tinyshakespeare.txt", data_dir);
    unsigned char *shakespeare = read_all(shakespeare_path, &shakespeare_size);
    if (text == NULL || shakespeare == NULL) {
        free(text);
        free(shakespeare);
        return -1;
    }
    texts = calloc(4096, sizeof *texts);
    for (char *line = strtok(text, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        if (line[0] == '#')
            continue;
        if (strncmp(line, "text ", 5) == 0 || strcmp(line, "text") == 0) {
            fixture_text *t = &texts[n_texts];
            const char *hex = line[4] == ' ' ? line + 5 : "";
            t->length = strlen(hex) / 2;
            t->bytes = malloc(t->length + 1);
            for (size_t i = 0; i < t->length; i++) {
                unsigned v;
                sscanf(hex + 2 * i, "%2x", &v);
                t->bytes[i] = (unsigned char)v;
            }
        } else if (strncmp(line, "shakespeare ", 12) == 0) {
            fixture_text *t = &texts[n_texts];
            size_t offset, length;
            if (sscanf(line + 12, "%zu %zu", &offset, &length) != 2 ||
                offset + length > shakespeare_size)
                return -1;
            t->bytes = malloc(length + 1);
            memcpy(t->bytes, shakespeare + offset, length);
            t->length = length;
        } else if (strncmp(line, "ids", 3) == 0 && n_texts < 4095) {
            fixture_text *t = &texts[n_texts++];
            t->ids = malloc((t->length + 1) * sizeof *t->ids);
            const char *p = line + 3;
            int consumed;
            int id;
            while (sscanf(p, " %d%n", &id, &consumed) == 1) {
                t->ids[t->n_ids++] = id;
                p += consumed;
            }
        }
    }
    free(text);
    free(shakespeare);
    return n_texts > 0 ? 0 : -1;
}

static int setup(void **state) {
    (void)state;
    if (temp_dir_create(dir, sizeof dir) != 0)
        return -1;
    if (tlm_tokenizer_import(&gpt2, NULL, gpt2_dir) != TLM_OK) {
        fprintf(stderr, "import: %s\n", tlm_last_error());
        return -1;
    }
    return read_fixture();
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    for (size_t i = 0; i < n_texts; i++) {
        free(texts[i].bytes);
        free(texts[i].ids);
    }
    free(texts);
    tlm_tokenizer_free(gpt2);
    return 0;
}

/* Number of fixture texts `tok` encodes differently from the fixture
 * (printing the first few), checking decode(encode(x)) == x. */
static size_t mismatches(tlm_tokenizer *tok, const char *what) {
    size_t bad = 0;
    for (size_t i = 0; i < n_texts; i++) {
        const fixture_text *t = &texts[i];
        int32_t *ids = malloc((t->length + 1) * sizeof *ids);
        size_t n_ids = 0, length = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, (const char *)t->bytes,
                                              t->length, ids, t->length,
                                              &n_ids),
                         TLM_OK);
        if (n_ids != t->n_ids ||
            (n_ids > 0 && memcmp(ids, t->ids, n_ids * sizeof *ids) != 0)) {
            if (bad++ < 5) {
                size_t k = 0;
                while (k < n_ids && k < t->n_ids && ids[k] == t->ids[k])
                    k++;
                fprintf(stderr,
                        "%s: fixture text %zu (%zu bytes): %zu ids, expected "
                        "%zu; first difference at id %zu\n",
                        what, i, t->length, n_ids, t->n_ids, k);
            }
        }
        char *back = malloc(t->length + 1);
        assert_int_equal(tlm_tokenizer_decode(tok, ids, n_ids, back,
                                              t->length + 1, &length),
                         TLM_OK);
        assert_int_equal(length, t->length);
        if (length > 0)
            assert_memory_equal(back, t->bytes, length);
        free(back);
        free(ids);
    }
    return bad;
}

static void fixture_ids_match(void **state) {
    (void)state;
    assert_int_equal(tlm_tokenizer_kind(gpt2), TLM_TOKENIZER_GPT2);
    assert_int_equal(tlm_tokenizer_vocab_size(gpt2), 50257);
    assert_int_equal(tlm_tokenizer_special_id(gpt2, TLM_TOKEN_EOS), 50256);
    assert_int_equal(tlm_tokenizer_special_id(gpt2, TLM_TOKEN_BOS), 50256);
    assert_int_equal(tlm_tokenizer_special_id(gpt2, TLM_TOKEN_PAD), 50256);
    assert_true(n_texts >= 200);
    assert_int_equal(mismatches(gpt2, "encoder.json + vocab.bpe"), 0);
}

static int same_bytes(tlm_tokenizer *a, int32_t id_a, tlm_tokenizer *b,
                      int32_t id_b) {
    const char *x, *y;
    size_t nx, ny;
    assert_int_equal(tlm_tokenizer_token_bytes(a, id_a, &x, &nx), TLM_OK);
    assert_int_equal(tlm_tokenizer_token_bytes(b, id_b, &y, &ny), TLM_OK);
    return nx == ny && memcmp(x, y, nx) == 0;
}

/* Merge r makes 256 + r, whose bytes are the left's then the right's; the
 * byte tokens are GPT-2's (space is 220, newline 198). */
static void merges_make_256_plus_rank(void **state) {
    (void)state;
    assert_int_equal(tlm_tokenizer_merge_count(gpt2), 50000);
    const char *bytes;
    size_t length;
    assert_int_equal(tlm_tokenizer_token_bytes(gpt2, 220, &bytes, &length), TLM_OK);
    assert_true(length == 1 && bytes[0] == ' ');
    assert_int_equal(tlm_tokenizer_token_bytes(gpt2, 198, &bytes, &length), TLM_OK);
    assert_true(length == 1 && bytes[0] == '\n');
    for (int32_t r = 0; r < 50000; r++) {
        int32_t left, right;
        const char *l, *rr, *m;
        size_t nl, nr, nm;
        assert_int_equal(tlm_tokenizer_merge(gpt2, r, &left, &right), TLM_OK);
        tlm_tokenizer_token_bytes(gpt2, left, &l, &nl);
        tlm_tokenizer_token_bytes(gpt2, right, &rr, &nr);
        tlm_tokenizer_token_bytes(gpt2, 256 + r, &m, &nm);
        assert_int_equal(nm, nl + nr);
        assert_memory_equal(m, l, nl);
        assert_memory_equal(m + nl, rr, nr);
    }
}

static void assert_same_vocabulary(tlm_tokenizer *a, tlm_tokenizer *b) {
    assert_int_equal(tlm_tokenizer_kind(b), TLM_TOKENIZER_GPT2);
    assert_int_equal(tlm_tokenizer_vocab_size(a), tlm_tokenizer_vocab_size(b));
    assert_int_equal(tlm_tokenizer_merge_count(a), tlm_tokenizer_merge_count(b));
    assert_int_equal(tlm_tokenizer_special_id(a, TLM_TOKEN_EOS),
                     tlm_tokenizer_special_id(b, TLM_TOKEN_EOS));
    for (int32_t id = 0; id < tlm_tokenizer_vocab_size(a); id++)
        assert_true(same_bytes(a, id, b, id));
    for (int32_t r = 0; r < tlm_tokenizer_merge_count(a); r++) {
        int32_t la, ra, lb, rb;
        tlm_tokenizer_merge(a, r, &la, &ra);
        tlm_tokenizer_merge(b, r, &lb, &rb);
        assert_int_equal(la, lb);
        assert_int_equal(ra, rb);
    }
}

static void base64(const unsigned char *in, size_t n, char *out) {
    static const char digits[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = digits[v >> 18];
        out[o++] = digits[(v >> 12) & 63];
        out[o++] = i + 1 < n ? digits[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? digits[v & 63] : '=';
    }
    out[o] = 0;
}

/* The vocabulary as a tiktoken rank file (rank = id, no special token),
 * written from the loaded tokenizer: the merges derived from the ranks are
 * GPT-2's, and the ids are the same. */
static void tiktoken_file_gives_the_same_ids(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/gpt2.tiktoken", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (int32_t id = 0; id < 50256; id++) {
        const char *bytes;
        size_t length;
        char encoded[400];
        tlm_tokenizer_token_bytes(gpt2, id, &bytes, &length);
        base64((const unsigned char *)bytes, length, encoded);
        fprintf(f, "%s %d\n", encoded, (int)id);
    }
    fclose(f);
    tlm_tokenizer *tok = NULL;
    if (tlm_tokenizer_import(&tok, NULL, path) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    assert_same_vocabulary(gpt2, tok);
    assert_int_equal(mismatches(tok, "tiktoken file"), 0);
    tlm_tokenizer_free(tok);
}

static void hugging_face_names_work(void **state) {
    (void)state;
    char sub[4200], from[4200], to[4300];
    snprintf(sub, sizeof sub, "%s/hf", dir);
    assert_int_equal(mkdir(sub, 0777), 0);
    snprintf(from, sizeof from, "%s/encoder.json", gpt2_dir);
    snprintf(to, sizeof to, "%s/vocab.json", sub);
    assert_int_equal(symlink(from, to), 0);
    snprintf(from, sizeof from, "%s/vocab.bpe", gpt2_dir);
    snprintf(to, sizeof to, "%s/merges.txt", sub);
    assert_int_equal(symlink(from, to), 0);
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_import(&tok, NULL, sub), TLM_OK);
    assert_same_vocabulary(gpt2, tok);
    tlm_tokenizer_free(tok);
}

static void save_load_and_model_files_keep_the_ids(void **state) {
    (void)state;
    char path[4200];
    snprintf(path, sizeof path, "%s/gpt2.tok", dir);
    assert_int_equal(tlm_tokenizer_save(gpt2, path), TLM_OK);
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_load(&tok, NULL, path), TLM_OK);
    assert_same_vocabulary(gpt2, tok);
    assert_int_equal(mismatches(tok, "tlm_tokenizer_load"), 0);
    tlm_tokenizer_free(tok);
    /* tlm_tokenizer_import reads tlm's own files too. */
    assert_int_equal(tlm_tokenizer_import(&tok, NULL, path), TLM_OK);
    assert_same_vocabulary(gpt2, tok);
    tlm_tokenizer_free(tok);

    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 50257;
    config.d_model = 8;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 16;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &config), TLM_OK);
    assert_int_equal(tlm_model_set_tokenizer(model, gpt2), TLM_OK);
    snprintf(path, sizeof path, "%s/gpt2.tlm", dir);
    assert_int_equal(tlm_model_save(model, path), TLM_OK);
    tlm_model_free(model);
    model = NULL;
    if (tlm_model_load(&model, ctx, path, NULL) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    tok = tlm_model_tokenizer(model);
    assert_non_null(tok);
    assert_same_vocabulary(gpt2, tok);
    assert_int_equal(mismatches(tok, "model file"), 0);
    tlm_model_free(model);
    tlm_context_free(ctx);
}

/* tlm_tokenizer_export writes files that import to the same tokenizer;
 * vocab.bpe comes out byte for byte as GPT-2's. */
static void export_round_trips(void **state) {
    (void)state;
    char sub[4200], path[4300], original[4300];
    snprintf(sub, sizeof sub, "%s/exported", dir);
    if (tlm_tokenizer_export(gpt2, sub) != TLM_OK)
        fail_msg("%s", tlm_last_error());
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_import(&tok, NULL, sub), TLM_OK);
    assert_same_vocabulary(gpt2, tok);
    assert_int_equal(mismatches(tok, "exported"), 0);
    tlm_tokenizer_free(tok);
    size_t a_size = 0, b_size = 0;
    snprintf(path, sizeof path, "%s/vocab.bpe", sub);
    snprintf(original, sizeof original, "%s/vocab.bpe", gpt2_dir);
    unsigned char *a = read_all(path, &a_size), *b = read_all(original, &b_size);
    assert_non_null(a);
    assert_non_null(b);
    assert_int_equal(a_size, b_size);
    assert_memory_equal(a, b, a_size);
    free(a);
    free(b);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s SHARED_DATA_DIR FIXTURE\n", argv[0]);
        return 1;
    }
    data_dir = argv[1];
    fixture_path = argv[2];
    snprintf(gpt2_dir, sizeof gpt2_dir, "%s/gpt2", data_dir);
    char probe[4200];
    snprintf(probe, sizeof probe, "%s/encoder.json", gpt2_dir);
    if (access(probe, R_OK) != 0) {
        printf("skipped: no GPT-2 vocabulary in %s (Meson option "
               "shared_data)\n", gpt2_dir);
        return 77;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fixture_ids_match),
        cmocka_unit_test(merges_make_256_plus_rank),
        cmocka_unit_test(tiktoken_file_gives_the_same_ids),
        cmocka_unit_test(hugging_face_names_work),
        cmocka_unit_test(save_load_and_model_files_keep_the_ids),
        cmocka_unit_test(export_round_trips),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
