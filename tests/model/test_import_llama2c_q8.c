/*
 * llama2.c "ak42" version 2 checkpoints (export.py version2_export: int8
 * Q8_0, one float32 scale per group of group_size weights of the
 * flattened matrix; what runq.c reads), written here by a small writer
 * that quantizes as export.py's quantize_q80 does, and imported:
 *  - group sizes that are multiples of 32 over widths that are multiples
 *    of 32 give an int8 model directly; every weight is exactly the file's
 *    q * scale, groups straddling rows included;
 *  - smaller group sizes go through float32 (q * scale exactly) and
 *    tlm_model_quantize;
 *  - logits agree with the float32 model of the same q * scale values
 *    (a version 1 file), within the error of quantizing activations;
 *  - malformed files are refused naming the file, the field or tensor.
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

#include "base/endian.h"
#include "temp_dir.h"
#include "tlm.h"
#include "tolerance.h"

typedef struct fixture {
    char dir[512];
    tlm_context *ctx;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || temp_dir_create(f->dir, sizeof f->dir) != 0 ||
        tlm_context_create(&f->ctx, NULL) != TLM_OK) {
        free(f);
        return -1;
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tlm_context_free(f->ctx);
    temp_dir_remove(f->dir);
    free(f);
    return 0;
}

/* A Llama-shaped model with random parameters (norm gains included). */
static tlm_model *llama_model(fixture *f, int32_t dim, int32_t hidden,
                              int32_t tied, int32_t kv_heads) {
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 24;
    config.d_model = dim;
    config.n_heads = 4;
    config.n_kv_heads = kv_heads;
    config.d_ff = hidden;
    config.n_decoder_layers = 2;
    config.max_context = 8;
    config.position = TLM_POSITION_ROTARY;
    config.norm = TLM_NORM_RMS;
    config.activation = TLM_ACTIVATION_SWIGLU;
    config.bias = 0;
    config.tied_output = tied;
    config.init_seed = 5;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, f->ctx, &config), TLM_OK);
    uint32_t seed = 77;
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(m); i++) {
        tlm_tensor *t = NULL;
        assert_int_equal(tlm_model_parameter(m, i, NULL, &t), TLM_OK);
        float *v = tlm_tensor_data_f32(t);
        for (int64_t k = 0; k < tlm_tensor_numel(t); k++) {
            seed = seed * 1664525u + 1013904223u;
            v[k] += (float)((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 24);
        }
    }
    return m;
}

/* The llama2.c file being written: bytes, and the float32 values the
 * quantized weights stand for (q * scale), parameter by parameter, kept
 * to compare against. */
typedef struct l2c_file {
    unsigned char *bytes;
    size_t size, capacity;
} l2c_file;

static void put(l2c_file *o, const void *data, size_t size) {
    if (o->size + size > o->capacity) {
        o->capacity = 2 * (o->size + size) + 4096;
        o->bytes = realloc(o->bytes, o->capacity);
        assert_non_null(o->bytes);
    }
    memcpy(o->bytes + o->size, data, size);
    o->size += size;
}

static void put_f32(l2c_file *o, float value) {
    unsigned char b[4];
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    tlmi_put_u32(b, bits);
    put(o, b, 4);
}

static tlm_tensor *param(tlm_model *m, const char *name) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_model_find_parameter(m, name, &t), TLM_OK);
    return t;
}

/* export.py's quantize_q80 of parameter `name` of `m`: each group of `gs`
 * consecutive weights of the flattened matrix gets scale max|w| / 127 and
 * q = round(w / scale) (half to even, as torch.round); the int8 values are
 * written, then the scales. `m`'s weights become q * scale (so `m` is then
 * the float32 model the file stands for). */
static void put_q80(l2c_file *o, tlm_model *m, const char *name, int32_t gs) {
    tlm_tensor *t = param(m, name);
    float *w = tlm_tensor_data_f32(t);
    const int64_t n = tlm_tensor_numel(t);
    assert_int_equal(n % gs, 0);
    float *scales = malloc(sizeof(float) * (size_t)(n / gs));
    signed char *q = malloc((size_t)n);
    assert_true(scales != NULL && q != NULL);
    for (int64_t g = 0; g < n / gs; g++) {
        float wmax = 0.0f;
        for (int32_t i = 0; i < gs; i++)
            wmax = fmaxf(wmax, fabsf(w[g * gs + i]));
        const float scale = wmax / 127.0f;
        scales[g] = scale;
        for (int32_t i = 0; i < gs; i++) {
            const int64_t k = g * gs + i;
            q[k] = (signed char)(scale > 0.0f ? rintf(w[k] / scale) : 0.0f);
            w[k] = (float)q[k] * scale;
        }
    }
    put(o, q, (size_t)n);
    for (int64_t g = 0; g < n / gs; g++)
        put_f32(o, scales[g]);
    free(scales);
    free(q);
}

static void put_f32_param(l2c_file *o, tlm_model *m, const char *name) {
    tlm_tensor *t = param(m, name);
    const float *v = tlm_tensor_data_f32(t);
    for (int64_t k = 0; k < tlm_tensor_numel(t); k++)
        put_f32(o, v[k]);
}

/* Writes `m` as export.py's version2_export (version 2, group size `gs`)
 * or, with gs 0, version1_export (float32). */
static void write_l2c(const char *path, tlm_model *m, int32_t gs) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    assert_int_equal(tlm_model_get_config(m, &c), TLM_OK);
    l2c_file o = {NULL, 0, 0};
    unsigned char header[256];
    memset(header, 0, sizeof header);
    const int32_t kv = c.n_kv_heads != 0 ? c.n_kv_heads : c.n_heads;
    const int32_t fields[9] = {(int32_t)0x616b3432, gs > 0 ? 2 : 1, c.d_model, c.d_ff,
                               c.n_decoder_layers, c.n_heads, kv,
                               c.vocab_size, c.max_context};
    for (int i = 0; i < 9; i++)
        tlmi_put_u32(header + 4 * i, (uint32_t)fields[i]);
    header[36] = (unsigned char)c.tied_output;
    if (gs > 0)
        tlmi_put_u32(header + 37, (uint32_t)gs); /* unaligned, as struct.pack */
    put(&o, header, sizeof header);
    char name[96];
    static const char *const norms[2] = {"self_attn_norm.weight", "ffn_norm.weight"};
    for (int k = 0; k < 2; k++)
        for (int32_t l = 0; l < c.n_decoder_layers; l++) {
            snprintf(name, sizeof name, "decoder.layers.%d.%s", (int)l, norms[k]);
            put_f32_param(&o, m, name);
        }
    put_f32_param(&o, m, "decoder.final_norm.weight");
    static const char *const matrices[7] = {
        "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "ffn.gate_proj.weight",    "ffn.down_proj.weight",
        "ffn.up_proj.weight"};
    if (gs > 0)
        put_q80(&o, m, "token_embedding.weight", gs);
    else
        put_f32_param(&o, m, "token_embedding.weight");
    for (int k = 0; k < 7; k++)
        for (int32_t l = 0; l < c.n_decoder_layers; l++) {
            snprintf(name, sizeof name, "decoder.layers.%d.%s", (int)l, matrices[k]);
            if (gs > 0)
                put_q80(&o, m, name, gs);
            else
                put_f32_param(&o, m, name);
        }
    if (!c.tied_output) {
        if (gs > 0)
            put_q80(&o, m, "lm_head.weight", gs);
        else
            put_f32_param(&o, m, "lm_head.weight");
    }
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(o.bytes, 1, o.size, file), o.size);
    assert_int_equal(fclose(file), 0);
    free(o.bytes);
}

static tlm_model *import_ok(fixture *f, const char *path) {
    tlm_model *m = NULL;
    int status = tlm_model_import(&m, f->ctx, path, NULL);
    if (status != TLM_OK)
        fail_msg("importing '%s': %s", path, tlm_last_error());
    return m;
}

/* Every parameter of `got` (read as float32 through tlm_tensor_get_f32)
 * equals `want`'s bit for bit. */
static void assert_same_values(tlm_model *got, tlm_model *want) {
    const int32_t n = tlm_model_parameter_tensor_count(want);
    assert_int_equal(tlm_model_parameter_tensor_count(got), n);
    for (int32_t i = 0; i < n; i++) {
        const char *name = NULL;
        tlm_tensor *w = NULL, *g = NULL;
        assert_int_equal(tlm_model_parameter(want, i, &name, &w), TLM_OK);
        assert_int_equal(tlm_model_find_parameter(got, name, &g), TLM_OK);
        const size_t count = (size_t)tlm_tensor_numel(w);
        assert_int_equal(tlm_tensor_numel(g), (int64_t)count);
        float *a = malloc(count * sizeof(float)), *b = malloc(count * sizeof(float));
        assert_true(a != NULL && b != NULL);
        assert_int_equal(tlm_tensor_get_f32(g, a, count), TLM_OK);
        assert_int_equal(tlm_tensor_get_f32(w, b, count), TLM_OK);
        for (size_t k = 0; k < count; k++)
            if (memcmp(&a[k], &b[k], sizeof(float)) != 0)
                fail_msg("%s[%zu]: imported %.9g, the file's q * scale %.9g", name,
                         k, (double)a[k], (double)b[k]);
        free(a);
        free(b);
    }
}

/* Logits of every position of a fixed id sequence. */
static void logits_of(tlm_model *m, float *logits, int32_t vocab) {
    static const int32_t ids[6] = {1, 7, 3, 18, 0, 11};
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, m, NULL), TLM_OK);
    assert_int_equal(tlm_session_decode(s, ids, 6, logits, 6), TLM_OK);
    tlm_session_free(s);
    (void)vocab;
}

/* Logits [6, V] of the same ids through the graph forward
 * (tlm_model_forward: a quantized linear dequantizes its weight and runs
 * the float32 product, so equal weights give equal logits). */
static void graph_logits_of(tlm_model *m, float *logits, int32_t vocab) {
    static const int32_t ids[6] = {1, 7, 3, 18, 0, 11};
    const int64_t shape[2] = {1, 6};
    tlm_tensor *t = NULL, *out = NULL;
    assert_int_equal(tlm_tensor_from_i32(&t, tlm_model_context(m), 2, shape, ids), TLM_OK);
    tlm_batch batch;
    tlm_batch_init(&batch);
    batch.ids = t;
    if (tlm_model_forward(m, &batch, &out, NULL) != TLM_OK)
        fail_msg("tlm_model_forward: %s", tlm_last_error());
    assert_int_equal(tlm_tensor_get_f32(out, logits, 6 * (size_t)vocab), TLM_OK);
    tlm_context_reset(tlm_model_context(m));
}

/* Imports version 2 of a model with group size `gs` and checks the
 * weights, the format and the logits against the float32 model of the
 * same values. */
static void check_q80(fixture *f, int32_t dim, int32_t hidden, int32_t gs,
                      int32_t tied, int32_t kv_heads) {
    char v2[600], v1[600];
    snprintf(v2, sizeof v2, "%s/q80.bin", f->dir);
    snprintf(v1, sizeof v1, "%s/f32.bin", f->dir);
    tlm_model *m = llama_model(f, dim, hidden, tied, kv_heads);
    write_l2c(v2, m, gs); /* m now holds q * scale */
    write_l2c(v1, m, 0);
    tlm_model *q = import_ok(f, v2);
    tlm_model *dense = import_ok(f, v1);
    assert_int_equal(tlm_model_weight_format(q), TLM_WEIGHTS_INT8);
    assert_int_equal(tlm_model_weight_format(dense), TLM_WEIGHTS_F32);
    const int direct = gs % 32 == 0 && dim % 32 == 0 && hidden % 32 == 0;
    /* The float32 model whose weights the int8 one holds exactly. */
    tlm_model *same = dense;
    if (!direct) /* through float32: the same as quantizing the float32 import */
        assert_int_equal(tlm_model_quantize(&same, dense, TLM_WEIGHTS_INT8), TLM_OK);
    assert_same_values(q, same);
    enum { V = 24, N = 6 };
    float got[N * V], want[N * V];
    /* Graph forward: the weights dequantized into float32, the rest the
     * same float32 code; only the summation order of the products may
     * differ. */
    graph_logits_of(q, got, V);
    graph_logits_of(same, want, V);
    float largest = 0.0f;
    for (int i = 0; i < N * V; i++)
        largest = fmaxf(largest, fabsf(want[i]));
    for (int i = 0; i < N * V; i++)
        tlmt_assert_close(got[i], want[i], 1e-4f * (1.0f + largest));
    /* A session's int8 products quantize the activations too, per group
     * of 32 (relative error up to 1/254 of each group's largest value),
     * through two layers of random weights (no training has made them
     * smooth): measured up to 6% of the logits' size; the bound is 15%
     * and catches a product gone wrong (a wrong scale or group is off by
     * the logits' own size). */
    logits_of(q, got, V);
    logits_of(dense, want, V);
    largest = 0.0f;
    for (int i = 0; i < N * V; i++)
        largest = fmaxf(largest, fabsf(want[i]));
    for (int i = 0; i < N * V; i++)
        tlmt_assert_close(got[i], want[i], 0.15f * (1.0f + largest));
    if (same != dense)
        tlm_model_free(same);
    tlm_model_free(dense);
    tlm_model_free(q);
    tlm_model_free(m);
}

static void direct_int8_groups_of_64(void **state) {
    fixture *f = *state;
    check_q80(f, 64, 96, 64, 1, 4);
    check_q80(f, 64, 96, 64, 0, 2); /* unshared classifier, grouped kv */
}

static void direct_int8_groups_straddling_rows(void **state) {
    fixture *f = *state;
    /* width 32, groups of 64 (and 128): each group covers two (four) rows */
    check_q80(f, 32, 64, 64, 0, 4);
    check_q80(f, 32, 64, 128, 1, 4);
}

static void small_groups_go_through_float32(void **state) {
    fixture *f = *state;
    check_q80(f, 32, 64, 16, 1, 4);
    check_q80(f, 16, 24, 8, 0, 2); /* widths not multiples of 32 */
    check_q80(f, 64, 96, 32, 1, 4); /* groups of 32: direct */
}

static void assert_import_fails(fixture *f, const char *path, int status,
                                const char *what) {
    tlm_model *m = (tlm_model *)f; /* must come back NULL */
    int got = tlm_model_import(&m, f->ctx, path, NULL);
    if (got != status)
        fail_msg("importing '%s' gave %s (%s), expected %s", path,
                 tlm_status_name(got), tlm_last_error(), tlm_status_name(status));
    assert_null(m);
    if (strstr(tlm_last_error(), what) == NULL || strstr(tlm_last_error(), path) == NULL)
        fail_msg("message '%s' does not name '%s' and the file", tlm_last_error(), what);
}

static unsigned char *read_all(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    fseek(file, 0, SEEK_END);
    *size = (size_t)ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *b = malloc(*size + 16);
    assert_non_null(b);
    assert_int_equal(fread(b, 1, *size, file), *size);
    fclose(file);
    return b;
}

static void write_all(const char *path, const unsigned char *b, size_t size) {
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(b, 1, size, file), size);
    assert_int_equal(fclose(file), 0);
}

static void bad_version2_files_are_refused(void **state) {
    fixture *f = *state;
    char good[600], bad[600];
    snprintf(good, sizeof good, "%s/good.bin", f->dir);
    snprintf(bad, sizeof bad, "%s/bad.bin", f->dir);
    tlm_model *m = llama_model(f, 32, 64, 1, 4);
    write_l2c(good, m, 32);
    tlm_model_free(m);
    size_t size = 0;
    unsigned char *b = read_all(good, &size);
    /* Layout: 256 header, norms 4 * (2 * 2 * 32 + 32), then the embedding's
     * 24 * 32 int8 values and its 24 scales. */
    const size_t emb_q = 256 + 4 * (2 * 2 * 32 + 32), emb_s = emb_q + 24 * 32;
    unsigned char *c = malloc(size + 16);
    assert_non_null(c);
    static const int32_t bad_groups[3] = {0, -32, 48};
    for (int i = 0; i < 3; i++) {
        memcpy(c, b, size);
        tlmi_put_u32(c + 37, (uint32_t)bad_groups[i]);
        write_all(bad, c, size);
        assert_import_fails(f, bad, TLM_E_FORMAT,
                            i < 2 ? "group_size (byte 37)" : "group_size 48 does not divide");
    }
    write_all(bad, b, size - 1);
    assert_import_fails(f, bad, TLM_E_FORMAT, "truncated");
    memcpy(c, b, size);
    c[size] = 0;
    write_all(bad, c, size + 1);
    assert_import_fails(f, bad, TLM_E_FORMAT, "too long");
    static const float bad_scales[3] = {NAN, INFINITY, -0.5f};
    for (int i = 0; i < 3; i++) {
        memcpy(c, b, size);
        uint32_t bits;
        memcpy(&bits, &bad_scales[i], sizeof bits);
        tlmi_put_u32(c + emb_s + 4 * 3, bits);
        write_all(bad, c, size);
        assert_import_fails(f, bad, TLM_E_FORMAT, "tok_embeddings (layer copy 0) scale 3");
    }
    memcpy(c, b, size);
    c[emb_q + 5] = 0x80;
    write_all(bad, c, size);
    assert_import_fails(f, bad, TLM_E_FORMAT, "is -128");
    free(c);
    free(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(direct_int8_groups_of_64, setup, teardown),
        cmocka_unit_test_setup_teardown(direct_int8_groups_straddling_rows, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(small_groups_go_through_float32, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_version2_files_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
