/*
 * Models in files: .tlm save and load (read and memory-mapped) and
 * safetensors export and import give back the same parameters bit for bit
 * and the same logits; corrupted, truncated, version-bumped and otherwise
 * wrong files are each refused with a status and a message that says why.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32.h"
#include "temp_dir.h"
#include "tlm.h"

static char dir[512];

static int setup(void **state) {
    (void)state;
    return temp_dir_create(dir, sizeof dir) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    return 0;
}

static tlm_model *make_model(tlm_context *ctx, int variant) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 53;
    c.d_model = 32;
    c.n_heads = 4;
    c.d_ff = 48;
    c.n_encoder_layers = variant == 1 ? 1 : 0;
    c.n_decoder_layers = 2;
    c.max_context = 12;
    c.position = variant % 3;
    c.activation = variant == 2 ? TLM_ACTIVATION_SWIGLU : TLM_ACTIVATION_GELU;
    c.bias = variant != 2;
    c.tied_output = variant != 2;
    c.init_seed = 0xfeedfacecafebeefull + (uint64_t)variant; /* needs 64 bits */
    /* 3: grouped-query attention (4 heads over 2), 4: multi-query. */
    c.n_kv_heads = variant == 3 ? 2 : variant == 4 ? 1 : 0;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    return m;
}

static void assert_same_models(const tlm_model *a, const tlm_model *b) {
    tlm_model_config ca, cb;
    tlm_model_config_init(&ca);
    tlm_model_config_init(&cb);
    assert_int_equal(tlm_model_get_config(a, &ca), TLM_OK);
    assert_int_equal(tlm_model_get_config(b, &cb), TLM_OK);
    assert_memory_equal(&ca, &cb, sizeof ca);
    int32_t n = tlm_model_parameter_tensor_count(a);
    assert_int_equal(n, tlm_model_parameter_tensor_count(b));
    for (int32_t i = 0; i < n; i++) {
        const char *na, *nb;
        tlm_tensor *ta, *tb;
        tlm_model_parameter(a, i, &na, &ta);
        tlm_model_parameter(b, i, &nb, &tb);
        assert_string_equal(na, nb);
        assert_int_equal(tlm_tensor_numel(ta), tlm_tensor_numel(tb));
        assert_memory_equal(tlm_tensor_data_f32(ta), tlm_tensor_data_f32(tb),
                            (size_t)tlm_tensor_numel(ta) * sizeof(float));
    }
}

/* Logits of a fixed prompt through a session. */
static void logits_of(const tlm_model *m, int encoder, float *logits) {
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    const int32_t ids[5] = {3, 1, 4, 1, 5};
    if (encoder)
        assert_int_equal(tlm_session_encode(s, ids, 5, NULL, NULL), TLM_OK);
    assert_int_equal(tlm_session_decode(s, ids, 5, logits, 5), TLM_OK);
    tlm_session_free(s);
}

static long file_bytes(const char *path, unsigned char **data);

/* Whether `text` occurs in the file at `path`. */
static int file_contains(const char *path, const char *text) {
    unsigned char *data = NULL;
    const long size = file_bytes(path, &data);
    const size_t length = strlen(text);
    int found = 0;
    for (long i = 0; !found && i + (long)length <= size; i++)
        found = memcmp(data + i, text, length) == 0;
    free(data);
    return found;
}

static void save_load_round_trips(void **state) {
    (void)state;
    for (int variant = 0; variant < 5; variant++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model *m = make_model(ctx, variant);
        char path[600], st_path[600];
        snprintf(path, sizeof path, "%s/model%d.tlm", dir, variant);
        snprintf(st_path, sizeof st_path, "%s/model%d.safetensors", dir, variant);
        /* Variant 1 carries a tokenizer (53 ids: 49 characters + 4). */
        tlm_tokenizer *tok = NULL;
        if (variant == 1) {
            char corpus[49];
            for (int i = 0; i < 49; i++)
                corpus[i] = (char)('0' + i);
            tlm_tokenizer_params tp;
            tlm_tokenizer_params_init(&tp);
            tp.kind = TLM_TOKENIZER_CHAR;
            assert_int_equal(tlm_tokenizer_train(&tok, ctx, corpus, 49, &tp), TLM_OK);
            assert_int_equal(tlm_tokenizer_vocab_size(tok), 53);
            assert_int_equal(tlm_model_set_tokenizer(m, tok), TLM_OK);
            tlm_tokenizer_free(tok); /* the model keeps its own copy */
        }
        assert_int_equal(tlm_model_save(m, path), TLM_OK);
        assert_int_equal(tlm_model_export_safetensors(m, st_path), TLM_OK);
        /* The configuration names n_kv_heads only when it is not n_heads,
         * so that multi-head files stay as they were. */
        assert_int_equal(file_contains(path, "\"n_kv_heads\""), variant >= 3);
        assert_int_equal(file_contains(st_path, "n_kv_heads"), variant >= 3);
        float expected[5 * 53], got[5 * 53];
        logits_of(m, variant == 1, expected);

        tlm_model *loaded = NULL, *mapped = NULL, *fast = NULL, *imported = NULL;
        assert_int_equal(tlm_model_load(&loaded, ctx, path, NULL), TLM_OK);
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = 1;
        assert_int_equal(tlm_model_load(&mapped, ctx, path, &params), TLM_OK);
        params.verify_checksums = 0;
        assert_int_equal(tlm_model_load(&fast, ctx, path, &params), TLM_OK);
        assert_int_equal(tlm_model_import_safetensors(&imported, ctx, st_path), TLM_OK);
        tlm_model *copies[4] = {loaded, mapped, fast, imported};
        for (int i = 0; i < 3; i++) {
            tlm_tokenizer *t = tlm_model_tokenizer(copies[i]);
            if (variant != 1) {
                assert_null(t);
                continue;
            }
            assert_non_null(t);
            int32_t ids[3];
            size_t n = 0;
            assert_int_equal(tlm_tokenizer_encode(t, "012", 3, ids, 3, &n), TLM_OK);
            assert_int_equal(ids[2], 2);
        }
        for (int i = 0; i < 4; i++) {
            assert_same_models(m, copies[i]);
            logits_of(copies[i], variant == 1, got);
            assert_memory_equal(expected, got, sizeof got);
        }
        /* A loaded model trains; a mapped one is read-only. */
        tlm_tensor *p = NULL;
        assert_int_equal(tlm_model_find_parameter(loaded, "token_embedding.weight", &p), TLM_OK);
        assert_int_equal(tlm_tensor_requires_grad(p), 1);
        assert_int_equal(tlm_model_find_parameter(mapped, "token_embedding.weight", &p), TLM_OK);
        assert_int_equal(tlm_tensor_requires_grad(p), 0);
        float one = 1.0f;
        const int64_t numel = tlm_tensor_numel(p);
        float *buffer = calloc((size_t)numel, sizeof *buffer);
        assert_int_equal(tlm_tensor_set_f32(p, buffer, numel), TLM_E_STATE);
        assert_int_equal(tlm_tensor_set_requires_grad(p, 1), TLM_E_STATE);
        (void)one;
        free(buffer);
        for (int i = 0; i < 4; i++)
            tlm_model_free(copies[i]);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

static long file_bytes(const char *path, unsigned char **data) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    *data = malloc((size_t)size);
    assert_int_equal(fread(*data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    return size;
}

static void write_bytes(const char *path, const unsigned char *data, long size) {
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, (size_t)size, f), (size_t)size);
    fclose(f);
}

static void expect_refused(tlm_context *ctx, const char *path, int status,
                           const char *words) {
    tlm_model *m = (tlm_model *)ctx;
    for (int map = 0; map <= 1; map++) {
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = map;
        int got = tlm_model_load(&m, ctx, path, &params);
        if (got != status || m != NULL || strstr(tlm_last_error(), words) == NULL)
            fail_msg("load (map %d) of %s gave %s '%s', expected %s with '%s'", map,
                     path, tlm_status_name(got), tlm_last_error(),
                     tlm_status_name(status), words);
    }
}

static void bad_files_are_refused(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *m = make_model(ctx, 0);
    char path[600], bad[600];
    snprintf(path, sizeof path, "%s/good.tlm", dir);
    snprintf(bad, sizeof bad, "%s/bad.tlm", dir);
    assert_int_equal(tlm_model_save(m, path), TLM_OK);
    unsigned char *bytes = NULL;
    long size = file_bytes(path, &bytes);
    unsigned char *copy = malloc((size_t)size);

    /* A flipped bit in the parameters: the data checksum. */
    memcpy(copy, bytes, (size_t)size);
    copy[size - 100] ^= 0x10;
    write_bytes(bad, copy, size);
    expect_refused(ctx, bad, TLM_E_FORMAT, "section 'data'");
    /* ... which a mapped load told to skip that checksum accepts. */
    tlm_model_load_params params;
    tlm_model_load_params_init(&params);
    params.memory_map = 1;
    params.verify_checksums = 0;
    tlm_model *unchecked = NULL;
    assert_int_equal(tlm_model_load(&unchecked, ctx, bad, &params), TLM_OK);
    tlm_model_free(unchecked);

    /* Truncated at several lengths, including inside the header. */
    const long cuts[] = {0, 5, 63, 64, 100, size / 2, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        write_bytes(bad, bytes, cuts[i]);
        expect_refused(ctx, bad, TLM_E_FORMAT, cuts[i] < 64 ? "not a tlm model" : "truncated");
    }
    /* A newer format version (header checksum fixed up). */
    memcpy(copy, bytes, (size_t)size);
    copy[8] = 2;
    uint32_t crc = tlmi_crc32(0, copy, 44);
    for (int i = 0; i < 4; i++)
        copy[44 + i] = (unsigned char)(crc >> (8 * i));
    write_bytes(bad, copy, size);
    expect_refused(ctx, bad, TLM_E_VERSION, "format version 2");
    /* A damaged header and a damaged section table. */
    memcpy(copy, bytes, (size_t)size);
    copy[20] ^= 1;
    write_bytes(bad, copy, size);
    expect_refused(ctx, bad, TLM_E_FORMAT, "header");
    memcpy(copy, bytes, (size_t)size);
    copy[70] ^= 1;
    write_bytes(bad, copy, size);
    expect_refused(ctx, bad, TLM_E_FORMAT, "section table");
    /* Not a model at all; a directory; nothing. */
    write_bytes(bad, (const unsigned char *)"hello, world\n", 13);
    expect_refused(ctx, bad, TLM_E_FORMAT, "not a tlm model");
    expect_refused(ctx, dir, TLM_E_IO, dir);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/missing.tlm", dir);
    expect_refused(ctx, missing, TLM_E_IO, "missing.tlm");
    /* A safetensors file that is not a tlm model. */
    write_bytes(bad, bytes, 0);
    tlm_model *imported = (tlm_model *)ctx;
    assert_int_equal(tlm_model_import_safetensors(&imported, ctx, bad), TLM_E_FORMAT);
    assert_null(imported);
    assert_int_equal(tlm_model_save(m, dir), TLM_E_IO); /* a directory */
    free(copy);
    free(bytes);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(save_load_round_trips),
        cmocka_unit_test(bad_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
