/* safetensors (lib/io/safetensors.h): the golden fixtures read as
 * tests/reference/README.md describes them; write -> read round trips bit
 * for bit; malformed files (truncated, corrupted, inconsistent headers)
 * refused with a specific status and message; allocation failures while
 * reading and writing. The first argument is the fixtures directory. */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/file.h"
#include "base/host.h"
#include "counting_allocator.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "temp_dir.h"

static const char *fixtures_dir = "tests/fixtures";

static void counting_host(tlmi_host *host, counting_allocator *counter) {
    tlmi_host_init_default(host);
    host->alloc_fn = counting_alloc;
    host->free_fn = counting_free;
    host->alloc_user = counter;
}

/* ------------------------------------------------------------------------
 * The fixtures, as tests/reference/README.md's table describes them (V,
 * D, heads x head_dim, F, layers, B x T (Ts), positions), and a few values
 * read from the committed files.
 */

typedef struct fixture_info {
    const char *name;
    int tensors;    /* in the header, __metadata__ not counted */
    int parameters; /* model parameters (each also has a grad.*) */
    int vocab, d_model, n_heads, head_dim, d_ff, n_encoder, n_decoder;
    int batch, seq, src_seq; /* src_seq 0: no encoder input */
    const char *position;
    int32_t ids[6];               /* input.ids, first values */
    uint32_t embedding_bits[3];   /* token_embedding.weight[0, 0..2] */
    uint32_t loss_bits;           /* expected.loss */
} fixture_info;

static const fixture_info fixtures[] = {
    {"encoder_learned_layernorm_gelu_prenorm", 77, 36, 53, 36, 4, 9, 83, 2, 0, 2, 9, 0, "learned", {41, 27, 22, 11, 30, 0}, {0x3d79a6c9u, 0xbd943b01u, 0x3e4a06efu}, 0x40a5c0dbu},
    {"gpt_learned_layernorm_gelu_prenorm", 76, 36, 37, 33, 3, 11, 57, 0, 2, 2, 7, 0, "learned", {26, 2, 12, 30, 9, 34}, {0xbd3f22e8u, 0x3ea4f906u, 0x3e2679efu}, 0x40638821u},
    {"gpt_learned_rmsnorm_gelu_exact_postnorm", 24, 10, 47, 30, 2, 15, 61, 0, 1, 2, 5, 0, "learned", {22, 11, 18, 37, 27, 33}, {0xbe9e2fe6u, 0xbddb9e8fu, 0x3d5d2568u}, 0x40959b21u},
    {"gpt_rotary_rmsnorm_swiglu_prenorm", 46, 21, 43, 24, 3, 10, 46, 0, 2, 2, 8, 0, "rotary", {34, 4, 14, 42, 20, 13}, {0xbda9d8b0u, 0xbe2f77edu, 0x3bf7efb2u}, 0x40946da6u},
    {"gpt_sinusoidal_layernorm_relu_postnorm", 72, 34, 41, 32, 4, 8, 75, 0, 2, 2, 9, 0, "sinusoidal", {23, 36, 13, 4, 17, 7}, {0x3de463bfu, 0x3e603d26u, 0xbe203fc6u}, 0x407a281du},
    {"seq2seq_rotary_rmsnorm_swiglu_postnorm", 84, 39, 61, 48, 4, 14, 67, 1, 2, 2, 5, 9, "rotary", {45, 20, 16, 19, 18, 21}, {0xbc706bb5u, 0xbec44d60u, 0x3e36dcdeu}, 0x409437bcu},
    {"seq2seq_sinusoidal_layernorm_gelu_prenorm", 132, 63, 59, 40, 4, 10, 89, 2, 1, 2, 6, 7, "sinusoidal", {10, 43, 44, 34, 1, 27}, {0x3ddbb848u, 0xbe9436bdu, 0x3d1fcc6au}, 0x4095f3dau},
};
#define N_FIXTURES (sizeof fixtures / sizeof fixtures[0])

static void fixture_path(char *buf, size_t size, const fixture_info *info) {
    snprintf(buf, size, "%s/%s.safetensors", fixtures_dir, info->name);
}

static uint32_t float_bits(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

static void expect_shape(const tlmi_safetensors_entry *e, int32_t dtype,
                         int32_t ndim, int64_t d0, int64_t d1, int64_t d2) {
    assert_non_null(e);
    assert_int_equal(e->dtype, dtype);
    assert_int_equal(e->ndim, ndim);
    int64_t dims[3] = {d0, d1, d2};
    for (int32_t i = 0; i < ndim; i++)
        assert_int_equal(e->shape[i], dims[i]);
}

static int64_t config_int(const tlmi_json_value *config, const char *key) {
    int64_t value = -1;
    tlmi_host host;
    tlmi_host_init_default(&host);
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(config, key),
                                         key, INT64_MIN, INT64_MAX, &value),
                     TLM_OK);
    return value;
}

static void check_fixture(const tlmi_safetensors *st, const fixture_info *info) {
    assert_int_equal(tlmi_safetensors_count(st), info->tensors);
    int V = info->vocab, D = info->d_model;

    /* Entries come in data order, which these files store by name, and
     * are contiguous from offset 0. */
    uint64_t offset = 0;
    int parameters = 0, grads = 0;
    for (size_t i = 0; i < tlmi_safetensors_count(st); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        assert_int_equal(e->begin, offset);
        offset = e->end;
        assert_int_equal(e->end - e->begin, e->nbytes);
        assert_int_equal(e->nbytes, (size_t)e->numel * 4);
        assert_ptr_equal(tlmi_safetensors_find(st, e->name), e);
        if (i > 0)
            assert_true(strcmp(tlmi_safetensors_entry_at(st, i - 1)->name,
                               e->name) < 0);
        if (strncmp(e->name, "grad.", 5) == 0) {
            /* Every gradient matches its parameter's shape. */
            const tlmi_safetensors_entry *p = tlmi_safetensors_find(st, e->name + 5);
            assert_non_null(p);
            assert_int_equal(p->ndim, e->ndim);
            assert_memory_equal(p->shape, e->shape, sizeof p->shape);
            grads++;
        } else if (strncmp(e->name, "input.", 6) != 0 &&
                   strncmp(e->name, "expected.", 9) != 0) {
            assert_int_equal(e->dtype, TLMI_ST_F32);
            parameters++;
        }
    }
    assert_int_equal(parameters, info->parameters);
    assert_int_equal(grads, info->parameters);
    assert_null(tlmi_safetensors_entry_at(st, (size_t)info->tensors));
    assert_null(tlmi_safetensors_find(st, "no.such.tensor"));
    assert_null(tlmi_safetensors_find(st, "grad."));

    /* Names and shapes from the README's table. */
    expect_shape(tlmi_safetensors_find(st, "token_embedding.weight"), TLMI_ST_F32,
                 2, V, D, 0);
    expect_shape(tlmi_safetensors_find(st, "input.ids"), TLMI_ST_I32, 2,
                 info->batch, info->seq, 0);
    expect_shape(tlmi_safetensors_find(st, "input.targets"), TLMI_ST_I32, 2,
                 info->batch, info->seq, 0);
    expect_shape(tlmi_safetensors_find(st, "expected.logits"), TLMI_ST_F32, 3,
                 info->batch, info->seq, V);
    expect_shape(tlmi_safetensors_find(st, "expected.loss"), TLMI_ST_F32, 1, 1,
                 0, 0);
    if (info->src_seq > 0) {
        expect_shape(tlmi_safetensors_find(st, "input.src_ids"), TLMI_ST_I32, 2,
                     info->batch, info->src_seq, 0);
        expect_shape(tlmi_safetensors_find(st, "input.src_mask"), TLMI_ST_I32, 2,
                     info->batch, info->src_seq, 0);
    } else {
        assert_null(tlmi_safetensors_find(st, "input.src_ids"));
    }
    if (strcmp(info->position, "learned") == 0)
        expect_shape(tlmi_safetensors_find(st, "position_embedding.weight"),
                     TLMI_ST_F32, 2, 16, D, 0);
    else
        assert_null(tlmi_safetensors_find(st, "position_embedding.weight"));
    const char *stack = info->n_decoder > 0 ? "decoder" : "encoder";
    char name[128];
    snprintf(name, sizeof name, "%s.layers.0.self_attn.q_proj.weight", stack);
    expect_shape(tlmi_safetensors_find(st, name), TLMI_ST_F32, 2,
                 info->n_heads * info->head_dim, D, 0);
    snprintf(name, sizeof name, "%s.layers.%d.self_attn.q_proj.weight", stack,
             info->n_decoder > 0 ? info->n_decoder : info->n_encoder);
    assert_null(tlmi_safetensors_find(st, name)); /* one layer too many */

    /* A few values. */
    float embedding[3 * 64];
    const tlmi_safetensors_entry *e = tlmi_safetensors_find(st, "token_embedding.weight");
    float *all = malloc((size_t)e->numel * sizeof *all);
    assert_non_null(all);
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, all, e->numel), TLM_OK);
    memcpy(embedding, all, 3 * sizeof *all);
    for (int i = 0; i < 3; i++)
        assert_int_equal(float_bits(embedding[i]), info->embedding_bits[i]);
    free(all);
    float loss = 0.0f;
    assert_int_equal(tlmi_safetensors_copy_f32(
                         st, tlmi_safetensors_find(st, "expected.loss"), &loss, 1),
                     TLM_OK);
    assert_int_equal(float_bits(loss), info->loss_bits);
    int32_t ids[64], targets[64];
    int n = info->batch * info->seq;
    assert_int_equal(tlmi_safetensors_copy_i32(
                         st, tlmi_safetensors_find(st, "input.ids"), ids, n),
                     TLM_OK);
    assert_memory_equal(ids, info->ids, sizeof info->ids);
    int ignored = 0;
    assert_int_equal(tlmi_safetensors_copy_i32(
                         st, tlmi_safetensors_find(st, "input.targets"), targets, n),
                     TLM_OK);
    for (int i = 0; i < n; i++) {
        assert_true(ids[i] >= 0 && ids[i] < V);
        assert_true(targets[i] >= -1 && targets[i] < V);
        ignored += targets[i] == -1;
    }
    assert_true(ignored > 0); /* "every fixture has some -1 targets" */
    /* Norm weights are 1 + N(0, 0.1^2). A post-norm stack has no final
     * norm (docs/model.md). */
    snprintf(name, sizeof name, "%s.final_norm.weight", stack);
    int pre_norm = tlmi_safetensors_find(st, name) != NULL;
    assert_int_equal(pre_norm, strstr(info->name, "prenorm") != NULL);
    snprintf(name, sizeof name, "%s.layers.0.ffn_norm.weight", stack);
    e = tlmi_safetensors_find(st, name);
    expect_shape(e, TLMI_ST_F32, 1, D, 0, 0);
    float norm[64];
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, norm, D), TLM_OK);
    for (int i = 0; i < D; i++)
        assert_true(norm[i] > 0.5f && norm[i] < 1.5f);

    /* The metadata: tlm.config is a JSON object with the configuration. */
    size_t length = 0;
    const char *config_text = tlmi_safetensors_metadata(st, "tlm.config", &length);
    assert_non_null(config_text);
    assert_int_equal(strlen(config_text), length);
    assert_non_null(tlmi_safetensors_metadata(st, "tlm.fixture", NULL));
    assert_non_null(strstr(tlmi_safetensors_metadata(st, "tlm.generator", NULL),
                           "make_fixtures.py"));
    assert_null(tlmi_safetensors_metadata(st, "tlm.missing", NULL));
    assert_int_equal(tlmi_safetensors_metadata_count(st), 3);
    const char *key = NULL, *value = NULL;
    assert_int_equal(tlmi_safetensors_metadata_at(st, 0, &key, &value, NULL), TLM_OK);
    assert_string_equal(key, "tlm.config");
    assert_int_equal(tlmi_safetensors_metadata_at(st, 3, &key, &value, NULL),
                     TLM_E_RANGE);
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;
    assert_int_equal(tlmi_json_parse(&host, config_text, length, NULL, &doc), TLM_OK);
    const tlmi_json_value *config = tlmi_json_root(doc);
    assert_int_equal(config_int(config, "vocab_size"), V);
    assert_int_equal(config_int(config, "d_model"), D);
    assert_int_equal(config_int(config, "n_heads"), info->n_heads);
    assert_int_equal(config_int(config, "head_dim"), info->head_dim);
    assert_int_equal(config_int(config, "d_ff"), info->d_ff);
    assert_int_equal(config_int(config, "n_encoder_layers"), info->n_encoder);
    assert_int_equal(config_int(config, "n_decoder_layers"), info->n_decoder);
    assert_int_equal(config_int(config, "max_context"), 16);
    assert_string_equal(tlmi_json_string(tlmi_json_object_get(config, "position"), NULL),
                        info->position);
    double eps = 0.0;
    assert_int_equal(tlmi_json_get_double(&host, tlmi_json_object_get(config, "norm_eps"),
                                          "norm_eps", &eps),
                     TLM_OK);
    assert_true(eps == 1e-5);
    tlmi_json_free(doc);
}

static void reads_every_fixture(void **state) {
    (void)state;
    for (size_t i = 0; i < N_FIXTURES; i++) {
        for (int mode = TLMI_ST_OPEN_READ; mode <= TLMI_ST_OPEN_MAP; mode++) {
            counting_allocator counter = {0};
            tlmi_host host;
            counting_host(&host, &counter);
            char path[1024];
            fixture_path(path, sizeof path, &fixtures[i]);
            tlmi_safetensors *st = NULL;
            int status = tlmi_safetensors_open(&host, path, mode, &st);
            if (status != TLM_OK)
                print_error("%s\n", host.last_error);
            assert_int_equal(status, TLM_OK);
            check_fixture(st, &fixtures[i]);
            tlmi_safetensors_free(st);
            assert_int_equal(counter.live_bytes, 0);
            assert_int_equal(counter.bad_free_sizes, 0);
        }
    }
    /* The encoder-only mask: batch 0 right-padded by 2, batch 1
     * left-padded by 3 (README). */
    tlmi_host host;
    tlmi_host_init_default(&host);
    char path[1024];
    fixture_path(path, sizeof path, &fixtures[0]);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_open(&host, path, TLMI_ST_OPEN_MAP, &st), TLM_OK);
    int32_t mask[18];
    static const int32_t expected[18] = {1, 1, 1, 1, 1, 1, 1, 0, 0,
                                         0, 0, 0, 1, 1, 1, 1, 1, 1};
    assert_int_equal(tlmi_safetensors_copy_i32(st, tlmi_safetensors_find(st, "input.mask"),
                                               mask, 18),
                     TLM_OK);
    assert_memory_equal(mask, expected, sizeof mask);
    /* Wrong counts and dtypes. */
    const tlmi_safetensors_entry *ids = tlmi_safetensors_find(st, "input.ids");
    float wrong[32];
    assert_int_equal(tlmi_safetensors_copy_i32(st, ids, mask, 17), TLM_E_SHAPE);
    assert_string_equal(host.last_error,
                        "safetensors copy_i32: tensor 'input.ids' has 18 values, not 17");
    assert_int_equal(tlmi_safetensors_copy_f32(st, ids, wrong, 18), TLM_E_FORMAT);
    char message[1200];
    snprintf(message, sizeof message,
             "safetensors '%s': tensor 'input.ids' holds I32, not floats", path);
    assert_string_equal(host.last_error, message);
    assert_int_equal(tlmi_safetensors_copy_i32(
                         st, tlmi_safetensors_find(st, "expected.loss"), mask, 1),
                     TLM_E_FORMAT);
    assert_int_equal(tlmi_safetensors_copy_f32(st, NULL, wrong, 1), TLM_E_INVALID);
    tlmi_safetensors_free(st);
    tlmi_safetensors_free(NULL);

    /* Open errors. */
    st = (tlmi_safetensors *)&host;
    assert_int_equal(tlmi_safetensors_open(&host, "/nonexistent/x.safetensors",
                                           TLMI_ST_OPEN_READ, &st),
                     TLM_E_IO);
    assert_null(st);
    assert_string_equal(host.last_error,
                        "reading '/nonexistent/x.safetensors': No such file or directory");
    assert_int_equal(tlmi_safetensors_open(&host, "/nonexistent/x.safetensors",
                                           TLMI_ST_OPEN_MAP, &st),
                     TLM_E_IO);
    assert_int_equal(tlmi_safetensors_open(&host, path, 7, &st), TLM_E_INVALID);
}

/* ------------------------------------------------------------------------
 * Building files by hand
 */

/* A file with `header` as its JSON and `data_size` data bytes (i * 3). */
static unsigned char *make_file(const char *header, size_t data_size,
                                size_t *size) {
    size_t n = strlen(header);
    *size = 8 + n + data_size;
    unsigned char *file = malloc(*size + 1);
    assert_non_null(file);
    for (int i = 0; i < 8; i++)
        file[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(file + 8, header, n);
    for (size_t i = 0; i < data_size; i++)
        file[8 + n + i] = (unsigned char)(i * 3);
    return file;
}

static void expect_parse_error(const char *header, size_t data_size, int status,
                               const char *message) {
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    size_t size = 0;
    unsigned char *file = make_file(header, data_size, &size);
    tlmi_safetensors *st = (tlmi_safetensors *)&counter;
    int got = tlmi_safetensors_parse(&host, "t.st", file, size, &st);
    if (got != status || strcmp(host.last_error, message) != 0)
        print_error("header: %s\n", header);
    assert_int_equal(got, status);
    assert_null(st);
    assert_string_equal(host.last_error, message);
    assert_int_equal(counter.live_bytes, 0);
    free(file);
}

static void malformed_headers(void **state) {
    (void)state;
    const char *P = "safetensors 't.st': ";
    char m[600];
#define EXPECT(header, data, status, text)              \
    do {                                                 \
        snprintf(m, sizeof m, "%s%s", P, text);          \
        expect_parse_error(header, data, status, m);     \
    } while (0)

    /* A header that does not start with '{' is no safetensors file. */
    expect_parse_error("[]", 0, TLM_E_FORMAT,
                       "'t.st' is not a safetensors file (its header, at byte 8, "
                       "does not start with '{')");
    expect_parse_error(" {}", 0, TLM_E_FORMAT,
                       "'t.st' is not a safetensors file (its header, at byte 8, "
                       "does not start with '{')");
    expect_parse_error("\"x\"", 0, TLM_E_FORMAT,
                       "'t.st' is not a safetensors file (its header, at byte 8, "
                       "does not start with '{')");
    EXPECT("{", 0, TLM_E_FORMAT,
           "JSON header (from file byte 8): json: expected a string key or '}' "
           "at byte 1 (found end of input)");
    EXPECT("{} x", 0, TLM_E_FORMAT,
           "JSON header (from file byte 8): json: unexpected data after the "
           "document at byte 3 (found 'x')");
    EXPECT("{\"a\": {\"dtype\": \"F32\"} x", 0, TLM_E_FORMAT,
           "JSON header (from file byte 8): json: expected ',' or '}' after "
           "object member at byte 23 (found 'x')");
    EXPECT("{\"a\":1,\"a\":2}", 0, TLM_E_FORMAT,
           "JSON header (from file byte 8): json: duplicate key \"a\" at byte 7 "
           "(first at byte 1)");
    /* Padding: spaces are fine, NULs are not JSON. */
    expect_parse_error("{}\x01", 0, TLM_E_FORMAT,
                       "safetensors 't.st': JSON header (from file byte 8): json: "
                       "unexpected data after the document at byte 2 (found byte "
                       "0x01)");
    EXPECT("{\"a\": 5}", 0, TLM_E_FORMAT,
           "tensor 'a': the entry is a number at header byte 6; expected an "
           "object with \"dtype\", \"shape\" and \"data_offsets\"");
    EXPECT("{\"a\": {\"shape\": [], \"data_offsets\": [0, 4]}}", 4, TLM_E_FORMAT,
           "tensor 'a': the entry at header byte 6 has no \"dtype\"");
    EXPECT("{\"a\": {\"dtype\": 1, \"shape\": [], \"data_offsets\": [0, 4]}}", 4,
           TLM_E_FORMAT,
           "tensor 'a': \"dtype\" is a number at header byte 16; expected a string");
    EXPECT("{\"a\": {\"dtype\": \"F64\", \"shape\": [], \"data_offsets\": [0, 8]}}", 8,
           TLM_E_UNSUPPORTED,
           "tensor 'a': dtype \"F64\" is not supported (tlm reads F32, I32, F16 "
           "and BF16)");
    EXPECT("{\"a\": {\"dtype\": \"f32\", \"shape\": [], \"data_offsets\": [0, 4]}}", 4,
           TLM_E_UNSUPPORTED,
           "tensor 'a': dtype \"f32\" is not supported (tlm reads F32, I32, F16 "
           "and BF16)");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"data_offsets\": [0, 4]}}", 4, TLM_E_FORMAT,
           "tensor 'a': the entry at header byte 6 has no \"shape\"");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": 4, \"data_offsets\": [0, 4]}}", 4,
           TLM_E_FORMAT,
           "tensor 'a': \"shape\" is a number at header byte 32; expected an array");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1,1,1,1,1], \"data_offsets\": "
           "[0, 4]}}",
           4, TLM_E_UNSUPPORTED,
           "tensor 'a': the shape at header byte 32 has 5 dimensions; tlm tensors "
           "have at most 4");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, -1], \"data_offsets\": [0, 4]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': shape[1] is -1 at header byte 36; expected an integer >= 0 written with digits only");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [2.5], \"data_offsets\": [0, 4]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': shape[0] is 2.5 at header byte 33; expected an integer >= 0 written with digits only");
    /* Integral values written otherwise are refused, as the reference
     * reader refuses them. */
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1.0], \"data_offsets\": [0, 4]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': shape[0] is 1.0 at header byte 33; expected an integer "
           ">= 0 written with digits only");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1E0], \"data_offsets\": [0, 4]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': shape[0] is 1E0 at header byte 33; expected an integer "
           ">= 0 written with digits only");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [\"2\"], \"data_offsets\": [0, 4]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': shape[0] is a string at header byte 33; expected an "
           "integer >= 0");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [4294967296, 4294967296], "
           "\"data_offsets\": [0, 4]}}",
           4, TLM_E_OVERFLOW,
           "tensor 'a': shape [4294967296, 4294967296] has too many elements "
           "(its byte size overflows)");
    EXPECT("{\"a\": {\"dtype\": \"BF16\", \"shape\": [9223372036854775807], "
           "\"data_offsets\": [0, 4]}}",
           4, TLM_E_OVERFLOW,
           "tensor 'a': shape [9223372036854775807] has too many elements (its "
           "byte size overflows)");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1e30], \"data_offsets\": [0, 4]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': shape[0] is 1e30 at header byte 33; "
           "expected an integer >= 0 written with digits only");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1]}}", 4, TLM_E_FORMAT,
           "tensor 'a': the entry at header byte 6 has no \"data_offsets\"");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0]}}", 4,
           TLM_E_FORMAT,
           "tensor 'a': data_offsets at header byte 53 has 1 numbers; expected "
           "[begin, end]");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": {}}}", 4,
           TLM_E_FORMAT,
           "tensor 'a': \"data_offsets\" is an object at header byte 53; expected "
           "an array");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [-4, 0]}}",
           4, TLM_E_FORMAT,
           "tensor 'a': data_offsets[0] is -4 at header byte 54; expected an "
           "integer >= 0 written with digits only");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 4]}}",
           8, TLM_E_FORMAT, "tensor 'a': data_offsets [8, 4] end before they begin");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}}",
           7, TLM_E_FORMAT,
           "tensor 'a': data_offsets [4, 8] run past the end of the data section "
           "(7 bytes)");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [0, "
           "18446744073709551615]}}",
           7, TLM_E_FORMAT,
           "tensor 'a': data_offsets[1] is 18446744073709551615 at header byte "
           "57; expected an integer >= 0 written with digits only");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [2, 3], \"data_offsets\": [0, 20]}}",
           24, TLM_E_FORMAT,
           "tensor 'a': data_offsets [0, 20] hold 20 bytes but F32 [2, 3] needs 24");
    EXPECT("{\"a\": {\"dtype\": \"F16\", \"shape\": [], \"data_offsets\": [0, 4]}}", 4,
           TLM_E_FORMAT,
           "tensor 'a': data_offsets [0, 4] hold 4 bytes but F16 [] needs 2");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
           "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [4, 12]}}",
           12, TLM_E_FORMAT,
           "tensors 'a' (data_offsets [0, 8]) and 'b' ([4, 12]) overlap (the tensors must "
           "cover the data section exactly)");
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
           "\"b\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}}",
           8, TLM_E_FORMAT,
           "tensors 'a' (data_offsets [0, 8]) and 'b' ([0, 8]) overlap (the tensors must "
           "cover the data section exactly)");
    /* An empty tensor inside another one overlaps it. */
    EXPECT("{\"a\": {\"dtype\": \"F32\", \"shape\": [2], \"data_offsets\": [0, 8]}, "
           "\"b\": {\"dtype\": \"F32\", \"shape\": [0], \"data_offsets\": [4, 4]}}",
           8, TLM_E_FORMAT,
           "tensors 'a' (data_offsets [0, 8]) and 'b' ([4, 4]) overlap (the tensors must "
           "cover the data section exactly)");
    EXPECT("{\"__metadata__\": [\"a\"]}", 0, TLM_E_FORMAT,
           "__metadata__ is an array at header byte 17; expected an object of "
           "strings");
    EXPECT("{\"__metadata__\": {\"ok\": \"yes\", \"n\": 5}}", 0, TLM_E_FORMAT,
           "__metadata__ key 'n' holds a number at header byte 36; metadata "
           "values must be strings");
    EXPECT("{\"__metadata__\": {\"o\": {\"x\": \"y\"}}}", 0, TLM_E_FORMAT,
           "__metadata__ key 'o' holds an object at header byte 23; metadata "
           "values must be strings");
    EXPECT("{\"a\\u0000b\": {\"dtype\": \"F32\", \"shape\": [], \"data_offsets\": "
           "[0, 4]}}",
           4, TLM_E_FORMAT,
           "the tensor name at header byte 1 contains a NUL character");
    /* The first problem in header order is the one reported. */
    EXPECT("{\"z\": {\"dtype\": \"X\", \"shape\": [], \"data_offsets\": [0, 4]}, "
           "\"a\": 1}",
           4, TLM_E_UNSUPPORTED,
           "tensor 'z': dtype \"X\" is not supported (tlm reads F32, I32, F16 and "
           "BF16)");
#undef EXPECT
}

static void length_prefix_errors(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_safetensors *st = NULL;
    unsigned char bytes[64] = {0};
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 5, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "the data is not a safetensors file (5 bytes; the header "
                        "length alone takes 8)");
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 0, &st), TLM_E_FORMAT);
    /* Header length larger than what follows: no safetensors file (text
     * gives such a length). */
    uint64_t n = 100000001;
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 64, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "the data is not a safetensors file (its first 8 bytes give "
                        "a header length of 100000001, but 56 bytes follow them)");
    memset(bytes, 0xff, 8);
    assert_int_equal(tlmi_safetensors_parse(&host, "t.st", bytes, 64, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "'t.st' is not a safetensors file (its first 8 bytes give a "
                        "header length of 18446744073709551615, but 56 bytes follow "
                        "them)");
    memset(bytes, 0, 8);
    bytes[0] = 57;
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 64, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "the data is not a safetensors file (its first 8 bytes give "
                        "a header length of 57, but 56 bytes follow them)");
    /* Larger than the 100 MB limit, in a file that long: refused before
     * anything past the length is read (so a short buffer stands in for
     * the file here). */
    for (int i = 0; i < 8; i++)
        bytes[i] = (unsigned char)(n >> (8 * i));
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 200000000, &st),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "safetensors: the header length 100000001 is more than the "
                        "limit of 100000000 bytes");
    /* Zero: no JSON object. */
    memset(bytes, 0, 8);
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 8, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "the data is not a safetensors file (its header, at byte 8, "
                        "does not start with '{')");
    /* The smallest valid file: "{}" padded to 8. */
    memcpy(bytes, "\x08\0\0\0\0\0\0\0{}      ", 16);
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 16, &st), TLM_OK);
    assert_int_equal(tlmi_safetensors_count(st), 0);
    assert_int_equal(tlmi_safetensors_metadata_count(st), 0);
    assert_null(tlmi_safetensors_find(st, "x"));
    assert_null(tlmi_safetensors_metadata(st, "x", NULL));
    tlmi_safetensors_free(st);
    /* Bad arguments. */
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, bytes, 16, NULL), TLM_E_INVALID);
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, NULL, 16, &st), TLM_E_INVALID);
    assert_int_equal(tlmi_safetensors_parse(NULL, NULL, bytes, 16, &st), TLM_E_INVALID);
}

/* The tensors must cover the data section exactly, as the reference
 * implementation demands: holes and trailing bytes are refused. Empty
 * tensors may sit where the one before ends; entries come in data order. */
static void holes_are_refused(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    size_t size = 0;
    unsigned char *file = make_file(
        "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [8, 12]}, "
        "\"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
        "\"z\": {\"dtype\": \"F32\", \"shape\": [0, 7], \"data_offsets\": [12, 12]}}",
        16, &size);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, file, size, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "safetensors: tensors 'a' (data_offsets [0, 4]) and 'b' "
                        "([8, 12]) leave a hole between them (the tensors must "
                        "cover the data section exactly)");
    free(file);
    file = make_file(
        "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}, "
        "\"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
        "\"z\": {\"dtype\": \"F32\", \"shape\": [0, 7], \"data_offsets\": [8, 8]}}",
        16, &size);
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, file, size, &st), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "safetensors: the data section has 16 bytes, its tensors "
                        "cover 8; the rest, from file byte 202, belongs to no "
                        "tensor (a wrong header length, or a truncated or "
                        "appended file)");
    free(file);
    file = make_file(
        "{\"b\": {\"dtype\": \"F32\", \"shape\": [1], \"data_offsets\": [4, 8]}, "
        "\"a\": {\"dtype\": \"I32\", \"shape\": [1], \"data_offsets\": [0, 4]}, "
        "\"z\": {\"dtype\": \"F32\", \"shape\": [0, 7], \"data_offsets\": [8, 8]}}",
        8, &size);
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, file, size, &st), TLM_OK);
    /* Data order, not header order. */
    assert_string_equal(tlmi_safetensors_entry_at(st, 0)->name, "a");
    assert_string_equal(tlmi_safetensors_entry_at(st, 1)->name, "b");
    assert_string_equal(tlmi_safetensors_entry_at(st, 2)->name, "z");
    const tlmi_safetensors_entry *z = tlmi_safetensors_find(st, "z");
    assert_int_equal(z->numel, 0);
    assert_int_equal(z->nbytes, 0);
    assert_int_equal(tlmi_safetensors_copy_f32(st, z, NULL, 0), TLM_OK);
    tlmi_safetensors_free(st);
    free(file);
}

/* ------------------------------------------------------------------------
 * Round trips
 */

static uint16_t float_to_half_exact(float value) {
    /* For the test values only: exact halves (normal range). */
    uint32_t bits = float_bits(value);
    uint32_t sign = (bits >> 16) & 0x8000u;
    int exponent = (int)((bits >> 23) & 0xff) - 127 + 15;
    uint32_t mantissa = (bits >> 13) & 0x3ffu;
    if ((bits & 0x7fffffffu) == 0)
        return (uint16_t)sign;
    return (uint16_t)(sign | (uint32_t)exponent << 10 | mantissa);
}

/* A writer holding every dtype, a scalar, an empty tensor, a 4-D tensor
 * and metadata with escapes and non-ASCII text. */
typedef struct sample {
    float f32[2 * 3 * 4];
    int32_t i32[5];
    uint16_t f16[9];
    uint16_t bf16[6];
    float scalar;
    float four_d[1 * 2 * 1 * 3];
} sample;

static void fill_sample(sample *s) {
    for (int i = 0; i < 24; i++)
        s->f32[i] = (float)i * 0.37f - 3.0f;
    s->f32[5] = -0.0f;
    s->f32[6] = 1e-45f; /* subnormal */
    s->f32[7] = 3.4028235e38f;
    memcpy(&s->f32[8], &(uint32_t){0x7fc00001u}, 4); /* a NaN payload */
    s->f32[9] = INFINITY;
    int32_t ints[5] = {0, -1, INT32_MAX, INT32_MIN, 42};
    memcpy(s->i32, ints, sizeof ints);
    /* 1, -2, 65504, 2^-24, max subnormal, +inf, -inf, NaN, -0 */
    uint16_t halves[9] = {0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff,
                          0x7c00, 0xfc00, 0x7e00, 0x8000};
    memcpy(s->f16, halves, sizeof halves);
    uint16_t brains[6] = {0x3f80, 0x4049, 0xc2f7, 0x0001, 0x7f80, 0x8000};
    memcpy(s->bf16, brains, sizeof brains);
    s->scalar = 2.5f;
    for (int i = 0; i < 6; i++)
        s->four_d[i] = (float)(i + 1);
}

static int add_sample(tlmi_safetensors_writer *w, const sample *s) {
    int64_t shape_f32[3] = {2, 3, 4}, shape_i32[1] = {5}, shape_f16[2] = {3, 3},
            shape_bf16[1] = {6}, shape_empty[2] = {0, 5}, shape_4d[4] = {1, 2, 1, 3};
    int status = TLM_OK;
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add_metadata(w, "tlm.config",
                                                      "{\"d_model\": 64, \"s\": \"q\\\"\"}");
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "weights", TLMI_ST_F32, 3, shape_f32,
                                             s->f32);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "ids", TLMI_ST_I32, 1, shape_i32,
                                             s->i32);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "scalar", TLMI_ST_F32, 0, NULL,
                                             &s->scalar);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "empty", TLMI_ST_F32, 2, shape_empty,
                                             NULL);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "four.d", TLMI_ST_F32, 4, shape_4d,
                                             s->four_d);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "caf\xc3\xa9 \"x\"\n", TLMI_ST_F32, 1,
                                             shape_4d + 3, s->four_d);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "half", TLMI_ST_F16, 2, shape_f16,
                                             s->f16);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add(w, "brain", TLMI_ST_BF16, 1, shape_bf16,
                                             s->bf16);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add_metadata(w, "note",
                                                      "tab\there, \xe2\x82\xac, \\ and \x01");
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add_metadata(w, "", "empty key");
    return status;
}

static void check_sample(const tlmi_safetensors *st, const sample *s) {
    assert_int_equal(tlmi_safetensors_count(st), 8);
    /* Insertion order is data order. */
    static const char *const order[] = {"weights", "ids", "scalar", "empty",
                                        "four.d", "caf\xc3\xa9 \"x\"\n", "half",
                                        "brain"};
    for (size_t i = 0; i < 8; i++)
        assert_string_equal(tlmi_safetensors_entry_at(st, i)->name, order[i]);
    const tlmi_safetensors_entry *e = tlmi_safetensors_find(st, "weights");
    expect_shape(e, TLMI_ST_F32, 3, 2, 3, 4);
    assert_int_equal(e->begin, 0);
    float f[24];
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, f, 24), TLM_OK);
    assert_memory_equal(f, s->f32, sizeof f); /* bit for bit, NaN included */
    int32_t ints[5];
    e = tlmi_safetensors_find(st, "ids");
    expect_shape(e, TLMI_ST_I32, 1, 5, 0, 0);
    assert_int_equal(tlmi_safetensors_copy_i32(st, e, ints, 5), TLM_OK);
    assert_memory_equal(ints, s->i32, sizeof ints);
    e = tlmi_safetensors_find(st, "scalar");
    assert_int_equal(e->ndim, 0);
    assert_int_equal(e->numel, 1);
    assert_int_equal(e->shape[0], 1);
    float scalar = 0.0f;
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, &scalar, 1), TLM_OK);
    assert_true(scalar == 2.5f);
    e = tlmi_safetensors_find(st, "empty");
    expect_shape(e, TLMI_ST_F32, 2, 0, 5, 0);
    assert_int_equal(e->nbytes, 0);
    e = tlmi_safetensors_find(st, "four.d");
    assert_int_equal(e->ndim, 4);
    assert_int_equal(e->shape[3], 3);
    assert_non_null(tlmi_safetensors_find(st, "caf\xc3\xa9 \"x\"\n"));
    /* F16 and BF16 become floats exactly. */
    e = tlmi_safetensors_find(st, "half");
    expect_shape(e, TLMI_ST_F16, 2, 3, 3, 0);
    assert_int_equal(e->nbytes, 18);
    float h[9];
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, h, 9), TLM_OK);
    assert_true(h[0] == 1.0f);
    assert_true(h[1] == -2.0f);
    assert_true(h[2] == 65504.0f);
    assert_true(h[3] == ldexpf(1.0f, -24));
    assert_true(h[4] == ldexpf(1023.0f, -24));
    assert_true(isinf(h[5]) && h[5] > 0);
    assert_true(isinf(h[6]) && h[6] < 0);
    assert_true(isnan(h[7]));
    assert_true(h[8] == 0.0f && signbit(h[8]));
    e = tlmi_safetensors_find(st, "brain");
    float b[6];
    assert_int_equal(tlmi_safetensors_copy_f32(st, e, b, 6), TLM_OK);
    assert_true(b[0] == 1.0f);
    assert_true(b[1] == 3.140625f);
    assert_true(b[2] == -123.5f);
    assert_true(b[3] == ldexpf(1.0f, -133));
    assert_true(isinf(b[4]));
    assert_true(b[5] == 0.0f && signbit(b[5]));
    /* Every half in the normal range converts back to itself. */
    for (uint32_t bits = 0x0400; bits < 0x7c00; bits += 7)
        assert_int_equal(float_to_half_exact(ldexpf(1.0f + (float)(bits & 0x3ff) / 1024.0f,
                                                     (int)(bits >> 10) - 15)),
                         bits);
    /* Metadata, sorted by key. */
    assert_int_equal(tlmi_safetensors_metadata_count(st), 3);
    assert_string_equal(tlmi_safetensors_metadata(st, "tlm.config", NULL),
                        "{\"d_model\": 64, \"s\": \"q\\\"\"}");
    assert_string_equal(tlmi_safetensors_metadata(st, "note", NULL),
                        "tab\there, \xe2\x82\xac, \\ and \x01");
    assert_string_equal(tlmi_safetensors_metadata(st, "", NULL), "empty key");
    const char *key = NULL, *value = NULL;
    size_t length = 0;
    assert_int_equal(tlmi_safetensors_metadata_at(st, 0, &key, &value, &length), TLM_OK);
    assert_string_equal(key, "");
    assert_int_equal(tlmi_safetensors_metadata_at(st, 2, &key, &value, &length), TLM_OK);
    assert_string_equal(key, "tlm.config");
}

/* The sample written to memory through `host`: *data, *size bytes, for
 * tlmi_host_free. */
static void sample_in_memory(tlmi_host *host, sample *s, void **data,
                             size_t *size) {
    fill_sample(s);
    tlmi_safetensors_writer *w = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(host, &w), TLM_OK);
    assert_int_equal(add_sample(w, s), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_to_memory(w, data, size), TLM_OK);
    tlmi_safetensors_writer_free(w);
}

static void round_trip_in_memory(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    sample s;
    void *data = NULL;
    size_t size = 0;
    sample_in_memory(&host, &s, &data, &size);
    const unsigned char *bytes = data;
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--)
        header = header << 8 | bytes[i];
    assert_int_equal(header % 8, 0);
    assert_int_equal(bytes[8], '{');
    /* __metadata__ comes first. */
    assert_memory_equal(bytes + 8, "{\"__metadata__\":{", 17);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_parse(&host, "memory", data, size, &st), TLM_OK);
    check_sample(st, &s);
    assert_int_equal(size, 8 + header + (24 + 5 + 1 + 0 + 6 + 3) * 4 + 9 * 2 + 6 * 2);

    /* The same file at an odd address: the tensors are unaligned there. */
    unsigned char *shifted = malloc(size + 1);
    assert_non_null(shifted);
    memcpy(shifted + 1, data, size);
    tlmi_safetensors *odd = NULL;
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, shifted + 1, size, &odd), TLM_OK);
    check_sample(odd, &s);
    tlmi_safetensors_free(odd);
    free(shifted);

    /* Writing the parsed file again gives the same bytes. */
    tlmi_safetensors_writer *again = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(&host, &again), TLM_OK);
    /* (metadata in the original insertion order) */
    assert_int_equal(tlmi_safetensors_writer_add_metadata(
                         again, "tlm.config", tlmi_safetensors_metadata(st, "tlm.config", NULL)),
                     TLM_OK);
    for (size_t i = 0; i < tlmi_safetensors_count(st); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        assert_int_equal(tlmi_safetensors_writer_add(again, e->name, e->dtype, e->ndim,
                                                     e->shape, e->data),
                         TLM_OK);
    }
    assert_int_equal(tlmi_safetensors_writer_add_metadata(
                         again, "note", tlmi_safetensors_metadata(st, "note", NULL)),
                     TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_add_metadata(again, "", "empty key"), TLM_OK);
    void *data2 = NULL;
    size_t size2 = 0;
    assert_int_equal(tlmi_safetensors_writer_to_memory(again, &data2, &size2), TLM_OK);
    assert_int_equal(size2, size);
    assert_memory_equal(data2, data, size);
    tlmi_host_free(&host, data2, size2);
    tlmi_safetensors_writer_free(again);

    tlmi_safetensors_free(st);
    tlmi_host_free(&host, data, size);
    tlmi_safetensors_writer_free(NULL);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

static void round_trip_through_files(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    sample s;
    fill_sample(&s);
    tlmi_safetensors_writer *w = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(&host, &w), TLM_OK);
    assert_int_equal(add_sample(w, &s), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_save(w, path), TLM_OK);
    for (int mode = TLMI_ST_OPEN_READ; mode <= TLMI_ST_OPEN_MAP; mode++) {
        tlmi_safetensors *st = NULL;
        assert_int_equal(tlmi_safetensors_open(&host, path, mode, &st), TLM_OK);
        check_sample(st, &s);
        tlmi_safetensors_free(st);
    }
    /* The writer can save again; the file is replaced whole. */
    s.f32[0] = 123.0f;
    assert_int_equal(tlmi_safetensors_writer_save(w, path), TLM_OK);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_open(&host, path, TLMI_ST_OPEN_READ, &st), TLM_OK);
    check_sample(st, &s);
    tlmi_safetensors_free(st);
    char names[256];
    assert_int_equal(temp_dir_count(dir, names, sizeof names), 1);
    assert_string_equal(names, "model.safetensors");

    /* A fixture read and written again reads back the same. */
    char fixture[1024], copy[600];
    fixture_path(fixture, sizeof fixture, &fixtures[5]);
    snprintf(copy, sizeof copy, "%s/copy.safetensors", dir);
    tlmi_safetensors *original = NULL;
    assert_int_equal(tlmi_safetensors_open(&host, fixture, TLMI_ST_OPEN_MAP, &original),
                     TLM_OK);
    tlmi_safetensors_writer *again = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(&host, &again), TLM_OK);
    for (size_t i = 0; i < tlmi_safetensors_metadata_count(original); i++) {
        const char *key = NULL, *value = NULL;
        assert_int_equal(tlmi_safetensors_metadata_at(original, i, &key, &value, NULL),
                         TLM_OK);
        assert_int_equal(tlmi_safetensors_writer_add_metadata(again, key, value), TLM_OK);
    }
    for (size_t i = 0; i < tlmi_safetensors_count(original); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(original, i);
        assert_int_equal(tlmi_safetensors_writer_add(again, e->name, e->dtype, e->ndim,
                                                     e->shape, e->data),
                         TLM_OK);
    }
    assert_int_equal(tlmi_safetensors_writer_save(again, copy), TLM_OK);
    tlmi_safetensors *back = NULL;
    assert_int_equal(tlmi_safetensors_open(&host, copy, TLMI_ST_OPEN_READ, &back), TLM_OK);
    check_fixture(back, &fixtures[5]);
    for (size_t i = 0; i < tlmi_safetensors_count(original); i++) {
        const tlmi_safetensors_entry *a = tlmi_safetensors_entry_at(original, i);
        const tlmi_safetensors_entry *b = tlmi_safetensors_entry_at(back, i);
        assert_string_equal(a->name, b->name);
        assert_int_equal(a->begin, b->begin);
        assert_int_equal(a->nbytes, b->nbytes);
        assert_memory_equal(a->data, b->data, a->nbytes);
    }
    tlmi_safetensors_free(back);
    tlmi_safetensors_free(original);
    tlmi_safetensors_writer_free(again);

    /* Saving into a missing directory fails and creates nothing. */
    char bad[700];
    snprintf(bad, sizeof bad, "%s/missing/x.safetensors", dir);
    assert_int_equal(tlmi_safetensors_writer_save(w, bad), TLM_E_IO);
    assert_int_equal(temp_dir_count(dir, NULL, 0), 2);

    tlmi_safetensors_writer_free(w);
    assert_int_equal(counter.live_bytes, 0);
    temp_dir_remove(dir);
}

static void writer_refuses_bad_tensors(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_safetensors_writer *w = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(&host, &w), TLM_OK);
    float data[4] = {0};
    int64_t shape[5] = {2, 2, 1, 1, 1};
    assert_int_equal(tlmi_safetensors_writer_add(w, "a", TLMI_ST_F32, 2, shape, data),
                     TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_add(w, "a", TLMI_ST_F32, 2, shape, data),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: tensor 'a' was already added");
    assert_int_equal(tlmi_safetensors_writer_add(w, "__metadata__", TLMI_ST_F32, 2,
                                                 shape, data),
                     TLM_E_INVALID);
    assert_int_equal(tlmi_safetensors_writer_add(w, "", TLMI_ST_F32, 2, shape, data),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error, "safetensors writer: tensor name is empty");
    assert_int_equal(tlmi_safetensors_writer_add(w, NULL, TLMI_ST_F32, 2, shape, data),
                     TLM_E_INVALID);
    assert_int_equal(tlmi_safetensors_writer_add(w, "bad\xff", TLMI_ST_F32, 2, shape,
                                                 data),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: a tensor name is not valid UTF-8 (byte 3)");
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", 7, 2, shape, data),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: tensor 'b': dtype 7 is not a tlmi_st_dtype");
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", TLMI_ST_F32, 5, shape, data),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: tensor 'b': ndim 5 is outside 0..4");
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", TLMI_ST_F32, -1, shape, data),
                     TLM_E_INVALID);
    int64_t negative[2] = {2, -2};
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", TLMI_ST_F32, 2, negative, data),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: tensor 'b': shape[1] is -2; sizes must be >= 0");
    int64_t huge[2] = {INT64_MAX, 2};
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", TLMI_ST_F32, 2, huge, data),
                     TLM_E_OVERFLOW);
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", TLMI_ST_F32, 2, shape, NULL),
                     TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: tensor 'b': data is NULL");
    assert_int_equal(tlmi_safetensors_writer_add(w, "b", TLMI_ST_F32, 2, NULL, data),
                     TLM_E_INVALID);
    assert_int_equal(tlmi_safetensors_writer_add_metadata(w, "k", "v"), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_add_metadata(w, "k", "w"), TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "safetensors writer: metadata key 'k' was already added");
    assert_int_equal(tlmi_safetensors_writer_add_metadata(w, "k2", "\xc0\x80"),
                     TLM_E_INVALID);
    assert_int_equal(tlmi_safetensors_writer_add_metadata(w, NULL, "v"), TLM_E_INVALID);
    /* The refused calls changed nothing: the file has "a" and "k". */
    void *file = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_safetensors_writer_to_memory(w, &file, &size), TLM_OK);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, file, size, &st), TLM_OK);
    assert_int_equal(tlmi_safetensors_count(st), 1);
    assert_int_equal(tlmi_safetensors_metadata_count(st), 1);
    tlmi_safetensors_free(st);
    tlmi_host_free(&host, file, size);
    /* An empty writer makes a valid empty file. */
    tlmi_safetensors_writer_free(w);
    assert_int_equal(tlmi_safetensors_writer_create(&host, &w), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_to_memory(w, &file, &size), TLM_OK);
    assert_int_equal(size, 16);
    assert_memory_equal(file, "\x08\0\0\0\0\0\0\0{}      ", 16);
    tlmi_host_free(&host, file, size);
    tlmi_safetensors_writer_free(w);
    assert_int_equal(tlmi_safetensors_writer_create(&host, NULL), TLM_E_INVALID);
}

/* ------------------------------------------------------------------------
 * Truncation and corruption
 */

static int acceptable_failure(int status) {
    return status == TLM_E_FORMAT || status == TLM_E_UNSUPPORTED ||
           status == TLM_E_OVERFLOW;
}

/* A parsed file's entries must lie inside the buffer. */
static void check_inside(const tlmi_safetensors *st, const unsigned char *data,
                         size_t size) {
    for (size_t i = 0; i < tlmi_safetensors_count(st); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        const unsigned char *p = e->data;
        assert_true(p >= data && p + e->nbytes <= data + size);
    }
}

static void every_truncation_fails(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    sample s;
    void *data = NULL;
    size_t size = 0;
    sample_in_memory(&host, &s, &data, &size);
    /* Every prefix of a small file: each one an error, read within its
     * bounds (a copy of exactly that length). */
    for (size_t cut = 0; cut < size; cut++) {
        unsigned char *prefix = malloc(cut ? cut : 1);
        assert_non_null(prefix);
        memcpy(prefix, data, cut);
        tlmi_safetensors *st = NULL;
        int status = tlmi_safetensors_parse(&host, NULL, prefix, cut, &st);
        if (status != TLM_E_FORMAT)
            print_error("cut at %zu: %d %s\n", cut, status, host.last_error);
        assert_int_equal(status, TLM_E_FORMAT);
        assert_null(st);
        free(prefix);
    }
    tlmi_host_free(&host, data, size);

    /* A fixture, cut at a few hundred lengths. */
    char path[1024];
    fixture_path(path, sizeof path, &fixtures[2]);
    void *fixture = NULL;
    size_t fixture_size = 0;
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    fixture = malloc(200000);
    assert_non_null(fixture);
    fixture_size = fread(fixture, 1, 200000, file);
    fclose(file);
    assert_true(fixture_size > 1000);
    for (size_t cut = 0; cut < fixture_size; cut += cut < 3200 ? 13 : 997) {
        unsigned char *prefix = malloc(cut ? cut : 1);
        assert_non_null(prefix);
        memcpy(prefix, fixture, cut);
        tlmi_safetensors *st = NULL;
        assert_int_equal(tlmi_safetensors_parse(&host, NULL, prefix, cut, &st),
                         TLM_E_FORMAT);
        free(prefix);
    }
    /* One byte short: the last tensor runs past the end. */
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_parse(&host, NULL, fixture, fixture_size - 1, &st),
                     TLM_E_FORMAT);
    assert_non_null(strstr(host.last_error, "tensor 'token_embedding.weight': "
                                            "data_offsets [70004, 75644] run past "
                                            "the end of the data section (75643 bytes)"));
    free(fixture);
    assert_int_equal(counter.live_bytes, 0);
}

static void corruptions_never_crash(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    sample s;
    void *data = NULL;
    size_t size = 0;
    sample_in_memory(&host, &s, &data, &size);
    static const unsigned char replacements[] = {
        0x00, 0x01, 0x07, 0x08, 0x7f, 0x80, 0xff, '0', '9', '-', '"', '[', ']',
        '{', '}', ',', ':', 'e', ' ', '\\'};
    unsigned char *copy = malloc(size);
    assert_non_null(copy);
    int ok = 0, failed = 0;
    for (size_t i = 0; i < size; i++) {
        for (size_t r = 0; r < sizeof replacements; r++) {
            memcpy(copy, data, size);
            copy[i] = replacements[r];
            tlmi_safetensors *st = NULL;
            int status = tlmi_safetensors_parse(&host, NULL, copy, size, &st);
            if (status == TLM_OK) {
                check_inside(st, copy, size);
                tlmi_safetensors_free(st);
                ok++;
            } else {
                assert_true(acceptable_failure(status));
                assert_null(st);
                failed++;
            }
        }
    }
    assert_true(ok > 0);
    assert_true(failed > 0);
    free(copy);
    tlmi_host_free(&host, data, size);
    assert_int_equal(counter.live_bytes, 0);
}

/* ------------------------------------------------------------------------
 * Allocation failures
 */

static void allocation_failures_while_reading(void **state) {
    (void)state;
    char path[1024];
    fixture_path(path, sizeof path, &fixtures[6]);
    for (int mode = TLMI_ST_OPEN_READ; mode <= TLMI_ST_OPEN_MAP; mode++) {
        int failures = 0;
        for (int64_t n = 1;; n++) {
            counting_allocator counter = {.fail_at = n};
            tlmi_host host;
            counting_host(&host, &counter);
            tlmi_safetensors *st = NULL;
            int status = tlmi_safetensors_open(&host, path, mode, &st);
            if (status == TLM_OK) {
                check_fixture(st, &fixtures[6]);
                tlmi_safetensors_free(st);
                assert_int_equal(counter.live_bytes, 0);
                break;
            }
            assert_int_equal(status, TLM_E_NOMEM);
            assert_null(st);
            assert_non_null(strstr(host.last_error, "out of memory"));
            assert_int_equal(counter.live_bytes, 0);
            assert_int_equal(counter.bad_free_sizes, 0);
            failures++;
        }
        assert_true(failures >= 5);
    }
}

static void allocation_failures_while_writing(void **state) {
    (void)state;
    char dir[512], path[600];
    assert_int_equal(temp_dir_create(dir, sizeof dir), 0);
    snprintf(path, sizeof path, "%s/out.safetensors", dir);
    sample s;
    fill_sample(&s);
    /* A previous version of the file, which every failure must keep. */
    assert_int_equal(write_whole_file(path, "previous", 8), 0);
    int failures = 0;
    for (int64_t n = 1;; n++) {
        counting_allocator counter = {.fail_at = n};
        tlmi_host host;
        counting_host(&host, &counter);
        tlmi_safetensors_writer *w = NULL;
        int status = tlmi_safetensors_writer_create(&host, &w);
        if (status == TLM_OK)
            status = add_sample(w, &s);
        if (status == TLM_OK)
            status = tlmi_safetensors_writer_save(w, path);
        tlmi_safetensors_writer_free(w);
        assert_int_equal(counter.live_bytes, 0);
        assert_int_equal(counter.bad_free_sizes, 0);
        if (status == TLM_OK)
            break;
        assert_int_equal(status, TLM_E_NOMEM);
        assert_non_null(strstr(host.last_error, "out of memory"));
        char contents[16];
        assert_int_equal(read_whole_file(path, contents, sizeof contents), 8);
        assert_memory_equal(contents, "previous", 8);
        assert_int_equal(temp_dir_count(dir, NULL, 0), 1);
        failures++;
    }
    assert_true(failures >= 5);
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_open(&host, path, TLMI_ST_OPEN_READ, &st), TLM_OK);
    check_sample(st, &s);
    tlmi_safetensors_free(st);
    assert_int_equal(temp_dir_count(dir, NULL, 0), 1);
    temp_dir_remove(dir);

    /* The same into memory. */
    failures = 0;
    for (int64_t n = 1;; n++) {
        counting_allocator counter = {.fail_at = n};
        counting_host(&host, &counter);
        tlmi_safetensors_writer *w = NULL;
        int status = tlmi_safetensors_writer_create(&host, &w);
        if (status == TLM_OK)
            status = add_sample(w, &s);
        void *data = NULL;
        size_t size = 0;
        if (status == TLM_OK)
            status = tlmi_safetensors_writer_to_memory(w, &data, &size);
        tlmi_safetensors_writer_free(w);
        if (status == TLM_OK) {
            tlmi_host_free(&host, data, size);
            assert_int_equal(counter.live_bytes, 0);
            break;
        }
        assert_int_equal(status, TLM_E_NOMEM);
        assert_null(data);
        assert_int_equal(counter.live_bytes, 0);
        failures++;
    }
    assert_true(failures >= 5);
}

int main(int argc, char **argv) {
    if (argc > 1)
        fixtures_dir = argv[1];
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reads_every_fixture),
        cmocka_unit_test(malformed_headers),
        cmocka_unit_test(length_prefix_errors),
        cmocka_unit_test(holes_are_refused),
        cmocka_unit_test(round_trip_in_memory),
        cmocka_unit_test(round_trip_through_files),
        cmocka_unit_test(writer_refuses_bad_tensors),
        cmocka_unit_test(every_truncation_fails),
        cmocka_unit_test(corruptions_never_crash),
        cmocka_unit_test(allocation_failures_while_reading),
        cmocka_unit_test(allocation_failures_while_writing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
