/*
 * Malformed quantized .tlm files (docs/format.md): each field a reader
 * checks is changed in a good int8 (or bf16) file, the checksums made
 * right again so that the check under test is the one that speaks, and
 * the load, copied and memory-mapped, must refuse it with TLM_E_FORMAT and
 * a message naming the file and the tensor or field, and give back every
 * byte it allocated (a counting allocator).
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

#include "base/crc32.h"
#include "counting_allocator.h"
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

static uint64_t get_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static void put_u32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put_u64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* A .tlm file in memory. */
typedef struct file {
    unsigned char *bytes;
    long size;
} file;

static file read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    file out = {NULL, ftell(f)};
    fseek(f, 0, SEEK_SET);
    out.bytes = malloc((size_t)out.size);
    assert_non_null(out.bytes);
    assert_int_equal(fread(out.bytes, 1, (size_t)out.size, f), (size_t)out.size);
    fclose(f);
    return out;
}

static void write_file(const char *path, const file *f) {
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(f->bytes, 1, (size_t)f->size, out), (size_t)f->size);
    fclose(out);
}

/* The section `kind`: its bytes. */
static unsigned char *section(const file *f, const char *kind, uint64_t *size) {
    const uint32_t count = f->bytes[24] | (uint32_t)f->bytes[25] << 8;
    for (uint32_t i = 0; i < count; i++) {
        unsigned char *entry = f->bytes + 64 + 32 * i;
        if (strncmp((const char *)entry, kind, 8) == 0) {
            *size = get_u64(entry + 16);
            return f->bytes + get_u64(entry + 8);
        }
    }
    fail_msg("no section %s", kind);
    return NULL;
}

/* Every section's checksum, the table's and the header's, made right. */
static void fix_checksums(file *f) {
    const uint32_t count = f->bytes[24] | (uint32_t)f->bytes[25] << 8;
    for (uint32_t i = 0; i < count; i++) {
        unsigned char *entry = f->bytes + 64 + 32 * i;
        put_u32(entry + 24, tlmi_crc32(0, f->bytes + get_u64(entry + 8),
                                       (size_t)get_u64(entry + 16)));
    }
    put_u32(f->bytes + 40, tlmi_crc32(0, f->bytes + 64, (size_t)count * 32));
    put_u32(f->bytes + 44, tlmi_crc32(0, f->bytes, 44));
}

/* The index entry of tensor `name`: where its dtype byte is, and its
 * data offset and size fields. */
typedef struct entry {
    unsigned char *dtype;
    unsigned char *offset; /* u64, from the data section's start */
    unsigned char *bytes;  /* u64 */
} entry;

static entry find_entry(const file *f, const char *name) {
    uint64_t size = 0;
    unsigned char *index = section(f, "tensors", &size);
    const uint32_t count = index[0] | (uint32_t)index[1] << 8;
    size_t at = 4;
    for (uint32_t i = 0; i < count; i++) {
        const size_t length = index[at] | (size_t)index[at + 1] << 8;
        const int ndim = index[at + 3 + length];
        const int match = length == strlen(name) && memcmp(index + at + 2, name, length) == 0;
        entry e = {index + at + 2 + length, NULL, NULL};
        at += 2 + length + 4 + 8 * (size_t)ndim;
        e.offset = index + at;
        e.bytes = index + at + 8;
        at += 16;
        if (match)
            return e;
    }
    fail_msg("no tensor %s", name);
    return (entry){NULL, NULL, NULL};
}

/* The data of tensor `name`. */
static unsigned char *tensor_data(const file *f, const char *name) {
    uint64_t size = 0;
    unsigned char *data = section(f, "data", &size);
    return data + get_u64(find_entry(f, name).offset);
}

/* Replaces `from` by `to` (the same length) in the config section. */
static void edit_config(file *f, const char *from, const char *to) {
    uint64_t size = 0;
    unsigned char *config = section(f, "config", &size);
    const size_t length = strlen(from);
    for (uint64_t i = 0; i + length <= size; i++)
        if (memcmp(config + i, from, length) == 0) {
            memcpy(config + i, to, length);
            return;
        }
    fail_msg("config lacks %s", from);
}

/* Loads `f` (written to bad.tlm) copied and mapped: refused with
 * TLM_E_FORMAT, a message holding the file name and `words`, and nothing
 * left allocated. */
static void expect_refused(const file *f, const char *words) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.tlm", dir);
    write_file(path, f);
    for (int map = 0; map <= 1; map++) {
        counting_allocator counter = {0};
        tlm_context *ctx = NULL;
        assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = map;
        tlm_model *m = (tlm_model *)ctx;
        const int status = tlm_model_load(&m, ctx, path, &params);
        /* The message is tlm_model_load's own (not the model build's). */
        if (status != TLM_E_FORMAT || m != NULL ||
            strncmp(tlm_last_error(), "tlm_model_load", 14) != 0 ||
            strstr(tlm_last_error(), words) == NULL ||
            strstr(tlm_last_error(), "bad.tlm") == NULL)
            fail_msg("load (map %d) gave %s '%s', expected TLM_E_FORMAT with '%s'",
                     map, tlm_status_name(status), tlm_last_error(), words);
        if (map == 0)
            print_message("refused: %s\n", tlm_last_error());
        /* (Tensor structs go back to the context's pool: counted when it
         * is freed.) */
        tlm_context_free(ctx);
        assert_int_equal(counter.live_bytes, 0);
    }
}

enum { D = 48 }; /* not a multiple of 32: rows end in 16 bytes of padding */

#define MATRIX "decoder.layers.0.ffn.up_proj.weight" /* [80, 48] */
#define BIAS "decoder.layers.0.ffn.up_proj.bias"

/* A good file of `format` at `path`, read back. */
static file good_file(int32_t format, const char *path) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 40;
    c.d_model = D;
    c.n_heads = 2;
    c.d_ff = 80;
    c.n_decoder_layers = 1;
    c.max_context = 8;
    tlm_model *m = NULL, *q = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    assert_int_equal(tlm_model_quantize(&q, m, format), TLM_OK);
    assert_int_equal(tlm_model_save(q, path), TLM_OK);
    tlm_model_free(q);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return read_file(path);
}

static void malformed_quantized_files_are_refused(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/good.tlm", dir);
    const file good = good_file(TLM_WEIGHTS_INT8, path);
    file f = {malloc((size_t)good.size), good.size};
    assert_non_null(f.bytes);
#define FRESH() memcpy(f.bytes, good.bytes, (size_t)good.size)

    /* The good file loads, both ways. */
    for (int map = 0; map <= 1; map++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = map;
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_load(&m, ctx, path, &params), TLM_OK);
        assert_int_equal(tlm_model_weight_format(m), TLM_WEIGHTS_INT8);
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
    /* A matrix stored as f32 while the configuration says int8. */
    FRESH();
    *find_entry(&f, MATRIX).dtype = 0;
    fix_checksums(&f);
    expect_refused(&f, MATRIX "' of");
    /* A bias (a vector) stored as q8. */
    FRESH();
    *find_entry(&f, BIAS).dtype = 3;
    fix_checksums(&f);
    expect_refused(&f, BIAS);
    /* An unknown dtype code. */
    FRESH();
    *find_entry(&f, MATRIX).dtype = 9;
    fix_checksums(&f);
    expect_refused(&f, "dtype 9");
    /* An unknown weight format, and one that disagrees with the tensors. */
    FRESH();
    edit_config(&f, "\"int8\"", "\"int4\"");
    fix_checksums(&f);
    expect_refused(&f, "\"weights\" has the unknown value \"int4\"");
    FRESH();
    edit_config(&f, "\"int8\"", "\"bf16\"");
    fix_checksums(&f);
    expect_refused(&f, "has dtype q8");
    /* A data size that does not match the shape (a scale row short). */
    FRESH();
    {
        const entry e = find_entry(&f, MATRIX);
        put_u64(e.bytes, get_u64(e.bytes) - 4);
    }
    fix_checksums(&f);
    expect_refused(&f, "bytes of data");
    /* Scales: NaN, infinite, negative (row 5, group 1). q values: -128;
     * padding past the 48 columns not zero (row 7). */
    const size_t groups = (D + 31) / 32;
    const size_t scales_at = 80 * groups * 32;
    const float bad_scales[3] = {NAN, INFINITY, -0.5f};
    for (int i = 0; i < 3; i++) {
        FRESH();
        memcpy(tensor_data(&f, MATRIX) + scales_at + (5 * groups + 1) * 4,
               &bad_scales[i], 4);
        fix_checksums(&f);
        expect_refused(&f, MATRIX "' of");
        expect_refused(&f, "row 5");
    }
    FRESH();
    tensor_data(&f, MATRIX)[3 * groups * 32 + 10] = 0x80;
    fix_checksums(&f);
    expect_refused(&f, "row 3");
    FRESH();
    tensor_data(&f, MATRIX)[7 * groups * 32 + D + 3] = 1;
    fix_checksums(&f);
    expect_refused(&f, "row 7");
    free(good.bytes);

    /* bf16: a NaN value (0x7fc0 in row 2). */
    const file good16 = good_file(TLM_WEIGHTS_BF16, path);
    free(f.bytes);
    f.bytes = malloc((size_t)good16.size);
    assert_non_null(f.bytes);
    f.size = good16.size;
    memcpy(f.bytes, good16.bytes, (size_t)good16.size);
    unsigned char *values = tensor_data(&f, MATRIX);
    values[(2 * D + 4) * 2] = 0xc0;
    values[(2 * D + 4) * 2 + 1] = 0x7f;
    fix_checksums(&f);
    expect_refused(&f, "row 2");
    free(good16.bytes);
    free(f.bytes);
#undef FRESH
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(malformed_quantized_files_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
