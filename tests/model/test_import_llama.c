/*
 * Llama-family files (lib/model/format_llama2c.c, format_hf_llama.c):
 * round trips tlm -> llama2.c -> tlm and tlm -> Hugging Face Llama -> tlm
 * give identical parameters and logits (tied and untied; grouped-query
 * and multi-query attention), the
 * exported llama2.c bytes checked by a reader written here from the
 * format's description (header, the offset of every weight, the freq_cis
 * block, the size), the q/k permutation against an index formula of its
 * own, both llama2.c layouts read, detection, and every refused input with
 * a message naming the field or size and nothing made or written.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "base/endian.h"
#include "base/half.h"
#include "io/safetensors.h"
#include "model/formats.h"
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

static void path_in(const fixture *f, const char *name, char *out,
                    size_t size) {
    snprintf(out, size, "%s/%s", f->dir, name);
}

static int exists(const char *path) {
    struct stat info;
    return stat(path, &info) == 0;
}

static long file_size(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 ? (long)info.st_size : -1;
}

static void assert_message_has(const char *what) {
    if (strstr(tlm_last_error(), what) == NULL)
        fail_msg("message '%s' does not name '%s'", tlm_last_error(), what);
}

/* The whole file, malloc'd; *size its length. */
static unsigned char *read_file(const char *path, size_t *size) {
    FILE *file = fopen(path, "rb");
    assert_non_null(file);
    fseek(file, 0, SEEK_END);
    long length = ftell(file);
    fseek(file, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)length + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)length, file), (size_t)length);
    fclose(file);
    *size = (size_t)length;
    return data;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *file = fopen(path, "wb");
    assert_non_null(file);
    assert_int_equal(fwrite(data, 1, size, file), size);
    assert_int_equal(fclose(file), 0);
}

/* A Llama-shaped model (rotary, RMSNorm, SwiGLU, no biases, pre-norm)
 * with random parameters, the norm weights included. */
static tlm_model *llama_model(fixture *f, int32_t tied, int32_t kv_heads) {
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 13;
    config.d_model = 16;
    config.n_heads = 4;
    config.d_ff = 24;
    config.n_decoder_layers = 2;
    config.max_context = 9;
    config.position = TLM_POSITION_ROTARY;
    config.norm = TLM_NORM_RMS;
    config.activation = TLM_ACTIVATION_SWIGLU;
    config.bias = 0;
    config.tied_output = tied;
    config.init_seed = 11;
    config.n_kv_heads = kv_heads;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, f->ctx, &config), TLM_OK);
    int32_t n = tlm_model_parameter_tensor_count(m);
    uint32_t seed = 4242;
    for (int32_t i = 0; i < n; i++) {
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

static void get_config(tlm_model *m, tlm_model_config *c) {
    tlm_model_config_init(c);
    assert_int_equal(tlm_model_get_config(m, c), TLM_OK);
}

/* Same configuration, identical parameter bytes name by name, and
 * identical logits for every position of a sequence. */
static void assert_same_model(tlm_model *a, tlm_model *b) {
    tlm_model_config ca, cb;
    get_config(a, &ca);
    get_config(b, &cb);
    assert_int_equal(ca.vocab_size, cb.vocab_size);
    assert_int_equal(ca.d_model, cb.d_model);
    assert_int_equal(ca.n_heads, cb.n_heads);
    assert_int_equal(ca.n_kv_heads, cb.n_kv_heads);
    assert_int_equal(ca.d_ff, cb.d_ff);
    assert_int_equal(ca.n_decoder_layers, cb.n_decoder_layers);
    assert_int_equal(ca.max_context, cb.max_context);
    assert_int_equal(ca.position, cb.position);
    assert_int_equal(ca.norm, cb.norm);
    assert_int_equal(ca.activation, cb.activation);
    assert_int_equal(ca.bias, cb.bias);
    assert_int_equal(ca.tied_output, cb.tied_output);
    assert_true(ca.norm_eps == cb.norm_eps);
    assert_true(ca.rope_base == cb.rope_base);
    int32_t n = tlm_model_parameter_tensor_count(a);
    assert_int_equal(n, tlm_model_parameter_tensor_count(b));
    for (int32_t i = 0; i < n; i++) {
        const char *name = NULL;
        tlm_tensor *ta = NULL, *tb = NULL;
        assert_int_equal(tlm_model_parameter(a, i, &name, &ta), TLM_OK);
        assert_int_equal(tlm_model_find_parameter(b, name, &tb), TLM_OK);
        assert_int_equal(tlm_tensor_numel(ta), tlm_tensor_numel(tb));
        if (memcmp(tlm_tensor_data_f32(ta), tlm_tensor_data_f32(tb),
                   (size_t)tlm_tensor_numel(ta) * sizeof(float)) != 0)
            fail_msg("parameter '%s' differs after the round trip", name);
    }
    const int32_t ids[7] = {1, 5, 12, 0, 7, 7, 3};
    const size_t rows = sizeof ids / sizeof ids[0];
    const size_t count = rows * (size_t)ca.vocab_size;
    float *la = calloc(count, sizeof(float)), *lb = calloc(count, sizeof(float));
    assert_non_null(la);
    assert_non_null(lb);
    tlm_model *models[2] = {a, b};
    float *logits[2] = {la, lb};
    for (int k = 0; k < 2; k++) {
        tlm_session *s = NULL;
        assert_int_equal(tlm_session_create(&s, models[k], NULL), TLM_OK);
        assert_int_equal(tlm_session_decode(s, ids, rows, logits[k], (int32_t)rows),
                         TLM_OK);
        tlm_session_free(s);
    }
    assert_int_equal(tlmt_first_non_finite_f32(la, (int64_t)count), -1);
    if (memcmp(la, lb, count * sizeof(float)) != 0)
        fail_msg("the logits differ after the round trip");
    free(la);
    free(lb);
}

static int export_as(tlm_model *m, const char *path, int32_t format) {
    tlm_model_export_params params;
    tlm_model_export_params_init(&params);
    params.format = format;
    return tlm_model_export(m, path, &params);
}

static tlm_model *import_ok(fixture *f, const char *path) {
    tlm_model *m = NULL;
    int status = tlm_model_import(&m, f->ctx, path, NULL);
    if (status != TLM_OK)
        fail_msg("importing '%s': %s", path, tlm_last_error());
    return m;
}

static const float *param(tlm_model *m, const char *name) {
    tlm_tensor *t = NULL;
    if (tlm_model_find_parameter(m, name, &t) != TLM_OK)
        fail_msg("no parameter '%s'", name);
    return tlm_tensor_data_f32(t);
}

static float float_at(const unsigned char *bytes, size_t index) {
    uint32_t bits = tlmi_get_u32(bytes + 4 * index);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

/* Checks `count` floats at element `at` of the file's body against the
 * parameter `name` (the layer's copy when `layer` >= 0). */
static void assert_block(const unsigned char *body, size_t at, tlm_model *m,
                         const char *name, int layer, size_t count) {
    char full[96];
    if (layer >= 0)
        snprintf(full, sizeof full, "decoder.layers.%d.%s", layer, name);
    else
        snprintf(full, sizeof full, "%s", name);
    const float *want = param(m, full);
    for (size_t i = 0; i < count; i++)
        if (float_at(body, at + i) != want[i])
            fail_msg("'%s'[%zu] at float %zu of the body is %g, the model "
                     "has %g",
                     full, i, at + i, (double)float_at(body, at + i),
                     (double)want[i]);
}

/* The legacy llama2.c file `path` read as run.c's memory_map_weights lays
 * it out, every weight compared with the model's. */
static void check_legacy_bytes(const char *path, tlm_model *m, int tied,
                               int kv_heads) {
    tlm_model_config c;
    get_config(m, &c);
    size_t size = 0;
    unsigned char *bytes = read_file(path, &size);
    assert_true(size >= 28);
    const int32_t dim = (int32_t)tlmi_get_u32(bytes);
    const int32_t hidden = (int32_t)tlmi_get_u32(bytes + 4);
    const int32_t layers = (int32_t)tlmi_get_u32(bytes + 8);
    const int32_t heads = (int32_t)tlmi_get_u32(bytes + 12);
    const int32_t kv = (int32_t)tlmi_get_u32(bytes + 16);
    const int32_t vocab = (int32_t)tlmi_get_u32(bytes + 20);
    const int32_t seq = (int32_t)tlmi_get_u32(bytes + 24);
    assert_int_equal(dim, c.d_model);
    assert_int_equal(hidden, c.d_ff);
    assert_int_equal(layers, c.n_decoder_layers);
    assert_int_equal(heads, c.n_heads);
    assert_int_equal(kv, kv_heads);
    assert_int_equal(vocab, tied ? c.vocab_size : -c.vocab_size);
    assert_int_equal(seq, c.max_context);
    const size_t D = (size_t)dim, F = (size_t)hidden, V = (size_t)c.vocab_size;
    const size_t hd = D / (size_t)heads, K = (size_t)kv * hd;
    const unsigned char *body = bytes + 28;
    size_t at = 0;
    assert_block(body, at, m, "token_embedding.weight", -1, V * D);
    at += V * D;
    static const struct {
        const char *name;
        int rows, cols; /* 0: D, 1: F, 2: K */
    } blocks[] = {
        {"self_attn_norm.weight", 0, -1}, {"self_attn.q_proj.weight", 0, 0},
        {"self_attn.k_proj.weight", 2, 0}, {"self_attn.v_proj.weight", 2, 0},
        {"self_attn.o_proj.weight", 0, 0}, {"ffn_norm.weight", 0, -1},
        {"ffn.gate_proj.weight", 1, 0},    {"ffn.down_proj.weight", 0, 1},
        {"ffn.up_proj.weight", 1, 0},
    };
    for (size_t b = 0; b < sizeof blocks / sizeof blocks[0]; b++) {
        const size_t dims[3] = {D, F, K};
        const size_t per = dims[blocks[b].rows] *
                           (blocks[b].cols < 0 ? 1 : dims[blocks[b].cols]);
        for (int l = 0; l < layers; l++) {
            assert_block(body, at, m, blocks[b].name, l, per);
            at += per;
        }
    }
    assert_block(body, at, m, "decoder.final_norm.weight", -1, D);
    at += D;
    /* freq_cis: cos then sin of t * 10000^(-2i/hd), [seq_len, hd/2] each,
     * as export.py's precompute_freqs_cis (float32, so within 1e-5). */
    for (int part = 0; part < 2; part++)
        for (size_t t = 0; t < (size_t)seq; t++)
            for (size_t i = 0; i < hd / 2; i++) {
                const double angle =
                    (double)t * pow(10000.0, -(double)(2 * i) / (double)hd);
                tlmt_assert_close(float_at(body, at), part ? sin(angle) : cos(angle),
                                  1e-5);
                at++;
            }
    if (!tied) {
        assert_block(body, at, m, "lm_head.weight", -1, V * D);
        at += V * D;
    }
    assert_int_equal(size, 28 + 4 * at);
    free(bytes);
}

static void llama2c_round_trip_is_bit_exact(void **state) {
    fixture *f = *state;
    char path[600];
    for (int tied = 0; tied < 2; tied++) {
        tlm_model *m = llama_model(f, tied, 4);
        path_in(f, tied ? "tied.bin" : "untied.bin", path, sizeof path);
        assert_int_equal(export_as(m, path, TLM_MODEL_FORMAT_LLAMA2C), TLM_OK);
        check_legacy_bytes(path, m, tied, 4);
        tlm_model *back = import_ok(f, path); /* detected: no magic */
        assert_same_model(m, back);
        tlm_model_free(back);
        tlm_model_free(m);
    }
}

static void llama2c_round_trip_with_grouped_query_attention(void **state) {
    fixture *f = *state;
    char path[600];
    const int32_t kv[2] = {2, 1};
    for (int k = 0; k < 2; k++) {
        tlm_model *m = llama_model(f, k, kv[k]);
        path_in(f, "gqa.bin", path, sizeof path);
        assert_int_equal(export_as(m, path, TLM_MODEL_FORMAT_LLAMA2C), TLM_OK);
        check_legacy_bytes(path, m, k, kv[k]);
        tlm_model *back = import_ok(f, path);
        assert_same_model(m, back);
        tlm_model_free(back);
        tlm_model_free(m);
    }
}

/* The same weights in export.py's version 1 layout ("ak42"): built here
 * from a legacy file, tensor by tensor. */
static void write_version1(const char *legacy, const char *path, int version,
                           int flag_override) {
    size_t size = 0;
    unsigned char *bytes = read_file(legacy, &size);
    int32_t h[7];
    for (int i = 0; i < 7; i++)
        h[i] = (int32_t)tlmi_get_u32(bytes + 4 * i);
    const int shared = h[5] > 0;
    const size_t D = (size_t)h[0], F = (size_t)h[1], L = (size_t)h[2];
    const size_t V = (size_t)(h[5] > 0 ? (long)h[5] : -(long)h[5]);
    const size_t hd = D / (size_t)h[3], K = (size_t)h[4] * hd;
    const size_t T = (size_t)h[6];
    /* Legacy offsets (floats after the header). */
    size_t emb = 0, rms_att = emb + V * D, wq = rms_att + L * D;
    size_t wk = wq + L * D * D, wv = wk + L * K * D, wo = wv + L * K * D;
    size_t rms_ffn = wo + L * D * D, w1 = rms_ffn + L * D;
    size_t w2 = w1 + L * F * D, w3 = w2 + L * D * F, rms_final = w3 + L * F * D;
    size_t wcls = rms_final + D + 2 * T * (hd / 2);
    const struct {
        size_t at, count;
    } order[] = {
        {rms_att, L * D}, {rms_ffn, L * D}, {rms_final, D}, {emb, V * D},
        {wq, L * D * D},  {wk, L * K * D},  {wv, L * K * D}, {wo, L * D * D},
        {w1, L * F * D},  {w2, L * D * F},  {w3, L * F * D}, {wcls, shared ? 0 : V * D},
    };
    size_t total = 256;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        total += 4 * order[i].count;
    unsigned char *out = calloc(1, total);
    assert_non_null(out);
    tlmi_put_u32(out, 0x616b3432u);
    tlmi_put_u32(out + 4, (uint32_t)version);
    for (int i = 0; i < 7; i++)
        tlmi_put_u32(out + 8 + 4 * i, (uint32_t)(i == 5 ? (int32_t)V : h[i]));
    out[36] = (unsigned char)(flag_override >= 0 ? flag_override : shared);
    size_t pos = 256;
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) {
        memcpy(out + pos, bytes + 28 + 4 * order[i].at, 4 * order[i].count);
        pos += 4 * order[i].count;
    }
    write_file(path, out, total);
    free(out);
    free(bytes);
}

static void llama2c_version1_is_read(void **state) {
    fixture *f = *state;
    char legacy[600], v1[600];
    for (int tied = 0; tied < 2; tied++) {
        tlm_model *m = llama_model(f, tied, 4);
        path_in(f, "legacy.bin", legacy, sizeof legacy);
        path_in(f, "v1.bin", v1, sizeof v1);
        assert_int_equal(export_as(m, legacy, TLM_MODEL_FORMAT_LLAMA2C), TLM_OK);
        write_version1(legacy, v1, 1, -1);
        tlm_model *back = import_ok(f, v1);
        assert_same_model(m, back);
        tlm_model_free(back);
        tlm_model_free(m);
    }
}

/* Imports `path` expecting `status` and a message naming `what`. */
static void assert_import_fails(fixture *f, const char *path, int32_t format,
                                int status, const char *what) {
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    params.format = format;
    tlm_model *m = (tlm_model *)&params; /* must come back NULL */
    int got = tlm_model_import(&m, f->ctx, path, &params);
    if (got != status)
        fail_msg("importing '%s' gave %s (%s), expected %s", path,
                 tlm_status_name(got), tlm_last_error(), tlm_status_name(status));
    assert_null(m);
    assert_message_has(what);
}

/* A legacy file from the 7 fields, the body filled with `floats` values
 * (computed here from the fields, plus `extra`, which may be negative). */
static void write_legacy(const char *path, const int32_t h[7], long extra) {
    const long D = h[0], F = h[1], L = h[2], H = h[3], KV = h[4];
    const long V = h[5] > 0 ? (long)h[5] : -(long)h[5], T = h[6];
    const long hd = H > 0 ? D / H : 0, K = KV * hd;
    long floats = V * D + 2 * L * D + 2 * L * D * D + 2 * L * K * D +
                  3 * L * F * D + D + 2 * T * (hd / 2) + (h[5] < 0 ? V * D : 0);
    floats += extra;
    /* Headers out of range are refused before the size is looked at:
     * their body (2^31 rows for vocab_size INT32_MIN) is left out. */
    if (floats < 0 || floats > (1L << 22))
        floats = 0;
    size_t size = 28 + 4 * (size_t)floats;
    unsigned char *out = calloc(1, size);
    assert_non_null(out);
    for (int i = 0; i < 7; i++)
        tlmi_put_u32(out + 4 * i, (uint32_t)h[i]);
    for (size_t i = 28; i + 4 <= size; i += 4)
        tlmi_put_u32(out + i, 0x3c000000u + (uint32_t)i); /* small floats */
    write_file(path, out, size);
    free(out);
}

static void llama2c_bad_inputs_are_refused(void **state) {
    fixture *f = *state;
    char path[600];
    path_in(f, "bad.bin", path, sizeof path);
    const int32_t good[7] = {16, 24, 2, 4, 4, 13, 9};
    const int32_t L2C = TLM_MODEL_FORMAT_LLAMA2C;
    /* The good one imports (so each refusal below is its one change). */
    write_legacy(path, good, 0);
    tlm_model *m = import_ok(f, path);
    tlm_model_free(m);
    /* Shorter and longer than the header implies: both sizes named, also
     * when the format is detected. */
    write_legacy(path, good, -1);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "needs exactly");
    assert_message_has("truncated");
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "needs exactly");
    write_legacy(path, good, 3);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "too long");
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "too long");
    /* A negative vocab_size (unshared) without the classifier. */
    int32_t h[7];
    memcpy(h, good, sizeof h);
    h[5] = -13;
    write_legacy(path, h, -13 * 16);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "unshared");
    assert_message_has("truncated");
    /* Inconsistent dims. */
    memcpy(h, good, sizeof h);
    h[3] = 5; /* dim 16 is no multiple of 5 heads */
    write_legacy(path, h, 0);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "not a multiple of n_heads");
    memcpy(h, good, sizeof h);
    h[4] = 3; /* 3 kv heads for 4 heads */
    write_legacy(path, h, 0);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "n_kv_heads 3 does not divide n_heads 4");
    memcpy(h, good, sizeof h);
    h[4] = 8;
    write_legacy(path, h, 0);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "n_kv_heads 8 does not divide");
    memcpy(h, good, sizeof h);
    h[0] = 0;
    write_legacy(path, h, 0);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "dim is 0");
    memcpy(h, good, sizeof h);
    h[5] = INT32_MIN;
    write_legacy(path, h, 0);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "vocab_size is -2147483648");
    memcpy(h, good, sizeof h);
    h[0] = 12;
    h[3] = 4; /* head size 3: odd */
    write_legacy(path, h, 0);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "odd");
    /* In the format's ranges but beyond tlm's limits (1024 layers,
     * max_context 2^20): TLM_E_UNSUPPORTED naming the file and the field,
     * not tlm_model_create's TLM_E_INVALID alone. */
    const int32_t deep[7] = {2, 1, 1025, 1, 1, 1, 1};
    write_legacy(path, deep, 0);
    assert_import_fails(f, path, L2C, TLM_E_UNSUPPORTED, "n_decoder_layers");
    assert_message_has("llama2.c checkpoint '");
    assert_message_has(path);
    /* Shorter than a header. */
    write_file(path, "abc", 3);
    assert_import_fails(f, path, L2C, TLM_E_FORMAT, "28-byte header");
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "not a model file tlm knows");
    /* "ak42": versions other than 1, the shared flag, short headers. */
    char legacy[600];
    path_in(f, "legacy.bin", legacy, sizeof legacy);
    write_legacy(legacy, good, 0);
    write_version1(legacy, path, 2, -1); /* version 2 needs a group size */
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "group_size (byte 37) is 0");
    write_version1(legacy, path, 7, -1);
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_UNSUPPORTED,
                        "version 7");
    write_version1(legacy, path, 1, 2);
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "shared_classifier (byte 36) is 2");
    write_version1(legacy, path, 1, 0); /* unshared without wcls */
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "truncated");
    write_file(path, "24ka\1\0\0\0", 8);
    assert_import_fails(f, path, TLM_MODEL_FORMAT_AUTO, TLM_E_FORMAT,
                        "256-byte header");
}

/* What llama2.c cannot hold is refused naming the field, nothing written. */
static void llama2c_export_refuses_what_run_c_cannot_run(void **state) {
    fixture *f = *state;
    char path[600];
    path_in(f, "refused.bin", path, sizeof path);
    static const struct {
        const char *field;
    } cases[] = {{"position"}, {"norm"}, {"activation"}, {"bias"},
                 {"norm_placement"}, {"norm_eps"}, {"rope_base"},
                 {"head_dim"}, {"n_encoder_layers"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlm_model_config config;
        tlm_model_config_init(&config);
        config.vocab_size = 13;
        config.d_model = 16;
        config.n_heads = 4;
        config.n_decoder_layers = 1;
        config.max_context = 8;
        config.position = TLM_POSITION_ROTARY;
        config.norm = TLM_NORM_RMS;
        config.activation = TLM_ACTIVATION_SWIGLU;
        config.bias = 0;
        const char *field = cases[i].field;
        if (strcmp(field, "position") == 0)
            config.position = TLM_POSITION_LEARNED;
        else if (strcmp(field, "norm") == 0)
            config.norm = TLM_NORM_LAYER;
        else if (strcmp(field, "activation") == 0)
            config.activation = TLM_ACTIVATION_GELU;
        else if (strcmp(field, "bias") == 0)
            config.bias = 1;
        else if (strcmp(field, "norm_placement") == 0)
            config.norm_placement = TLM_NORM_POST;
        else if (strcmp(field, "norm_eps") == 0)
            config.norm_eps = 1e-6f;
        else if (strcmp(field, "rope_base") == 0)
            config.rope_base = 500000.0f;
        else if (strcmp(field, "head_dim") == 0)
            config.head_dim = 8;
        else
            config.n_encoder_layers = 1;
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, f->ctx, &config), TLM_OK);
        assert_int_equal(export_as(m, path, TLM_MODEL_FORMAT_LLAMA2C),
                         TLM_E_UNSUPPORTED);
        assert_message_has(field);
        assert_false(exists(path));
        tlm_model_free(m);
    }
    /* 16-bit weights: run.c reads float32 only. */
    tlm_model *m = llama_model(f, 1, 4);
    tlm_model_export_params params;
    tlm_model_export_params_init(&params);
    params.format = TLM_MODEL_FORMAT_LLAMA2C;
    params.weight_type = TLM_WEIGHT_BF16;
    assert_int_equal(tlm_model_export(m, path, &params), TLM_E_UNSUPPORTED);
    assert_message_has("float32");
    assert_false(exists(path));
    tlm_model_free(m);
}

/* Detection never takes another format's file for a legacy llama2.c one:
 * each is imported as its own format. */
static void llama2c_detection_keeps_other_formats(void **state) {
    fixture *f = *state;
    char path[600];
    tlm_model *m = llama_model(f, 0, 4);
    path_in(f, "model.tlm", path, sizeof path);
    assert_int_equal(tlm_model_save(m, path), TLM_OK);
    tlm_model *back = import_ok(f, path);
    assert_same_model(m, back);
    tlm_model_free(back);
    path_in(f, "model.safetensors", path, sizeof path);
    assert_int_equal(tlm_model_export_safetensors(m, path), TLM_OK);
    back = import_ok(f, path);
    assert_same_model(m, back);
    tlm_model_free(back);
    tlm_model_free(m);
    /* A legacy file with 123 layers has '{' (123) at byte 8, where a
     * safetensors file has its JSON: still llama2.c. */
    const int32_t h[7] = {2, 2, 123, 1, 1, 3, 2};
    path_in(f, "layers123.bin", path, sizeof path);
    write_legacy(path, h, 0);
    assert_int_equal(file_size(path) > 8, 1);
    back = import_ok(f, path);
    tlm_model_config c;
    get_config(back, &c);
    assert_int_equal(c.n_decoder_layers, 123);
    tlm_model_free(back);
}

/* ---- Hugging Face Llama ---- */

/* The permutation alone, against the rule written out here: within each
 * head of hd rows, tlm row 2i + r is HF row r hd/2 + i; a bijection. */
static void rotary_rows_follow_the_half_split_rule(void **state) {
    (void)state;
    const int64_t hds[3] = {2, 4, 10};
    for (int k = 0; k < 3; k++) {
        const int64_t hd = hds[k], heads = 3;
        int seen[30] = {0};
        for (int64_t h = 0; h < heads; h++)
            for (int64_t i = 0; i < hd / 2; i++)
                for (int64_t r = 0; r < 2; r++) {
                    const int64_t tlm_row = h * hd + 2 * i + r;
                    const int64_t hf_row = h * hd + r * (hd / 2) + i;
                    assert_int_equal(tlmi_hf_rotary_row(tlm_row, hd), hf_row);
                    seen[hf_row]++;
                }
        for (int64_t row = 0; row < heads * hd; row++)
            assert_int_equal(seen[row], 1);
    }
}

static void hf_llama_round_trip_is_bit_exact(void **state) {
    fixture *f = *state;
    char dir[600], file[700];
    for (int tied = 0; tied < 2; tied++) {
        tlm_model *m = llama_model(f, tied, 4);
        snprintf(dir, sizeof dir, "%s/llama%d", f->dir, tied);
        assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF), TLM_OK);
        tlm_model *back = import_ok(f, dir);
        assert_same_model(m, back);
        tlm_model_free(back);
        /* The file holds Llama's names, q and k rows permuted per head
         * (tlm row 2i + r at HF row r hd/2 + i), the rest as is. */
        snprintf(file, sizeof file, "%s/model.safetensors", dir);
        tlmi_safetensors *st = NULL;
        assert_int_equal(tlmi_safetensors_open(&f->ctx->host, file,
                                               TLMI_ST_OPEN_READ, &st),
                         TLM_OK);
        const char *names[3][2] = {
            {"model.layers.1.self_attn.q_proj.weight",
             "decoder.layers.1.self_attn.q_proj.weight"},
            {"model.layers.0.self_attn.k_proj.weight",
             "decoder.layers.0.self_attn.k_proj.weight"},
            {"model.layers.0.mlp.gate_proj.weight",
             "decoder.layers.0.ffn.gate_proj.weight"}};
        for (int n = 0; n < 3; n++) {
            const tlmi_safetensors_entry *e = tlmi_safetensors_find(st, names[n][0]);
            assert_non_null(e);
            assert_int_equal(e->ndim, 2);
            const float *want = param(m, names[n][1]);
            const int64_t rows = e->shape[0], cols = e->shape[1], hd = 4;
            for (int64_t row = 0; row < rows; row++) {
                int64_t from = row; /* the tlm row stored at HF row `row` */
                if (n < 2) {
                    const int64_t h = row / hd, j = row % hd;
                    from = h * hd + 2 * (j % (hd / 2)) + j / (hd / 2);
                }
                for (int64_t c = 0; c < cols; c++)
                    assert_true(float_at(e->data, (size_t)(row * cols + c)) ==
                                want[from * cols + c]);
            }
        }
        assert_true((tlmi_safetensors_find(st, "lm_head.weight") != NULL) == !tied);
        assert_non_null(tlmi_safetensors_find(st, "model.embed_tokens.weight"));
        assert_non_null(tlmi_safetensors_find(st, "model.norm.weight"));
        tlmi_safetensors_free(st);
        tlm_model_free(m);
    }
}

static void hf_llama_round_trip_with_grouped_query_attention(void **state) {
    fixture *f = *state;
    char dir[600];
    const int32_t kv[2] = {2, 1};
    for (int k = 0; k < 2; k++) {
        tlm_model *m = llama_model(f, k, kv[k]);
        snprintf(dir, sizeof dir, "%s/gqa%d", f->dir, k);
        assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF), TLM_OK);
        tlm_model *back = import_ok(f, dir);
        assert_same_model(m, back);
        tlm_model_free(back);
        tlm_model_free(m);
    }
}

/* 16-bit exports import as each value rounded to nearest even, and an
 * index (model.safetensors.index.json) is followed with Llama's names. */
static void hf_llama_sixteen_bits_and_index(void **state) {
    fixture *f = *state;
    char dir[600], index[700];
    for (int32_t type = TLM_WEIGHT_F16; type <= TLM_WEIGHT_BF16; type++) {
        tlm_model *m = llama_model(f, 0, 2);
        snprintf(dir, sizeof dir, "%s/half%d", f->dir, (int)type);
        tlm_model_export_params params;
        tlm_model_export_params_init(&params);
        params.format = TLM_MODEL_FORMAT_HF;
        params.weight_type = type;
        assert_int_equal(tlm_model_export(m, dir, &params), TLM_OK);
        /* An index naming the one file for every tensor. */
        tlm_model *plain = import_ok(f, dir);
        snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
        FILE *file = fopen(index, "w");
        assert_non_null(file);
        fprintf(file, "{\"metadata\": {}, \"weight_map\": {");
        int32_t n = tlm_model_parameter_tensor_count(plain);
        for (int32_t i = 0; i < n; i++) {
            const char *name = NULL;
            assert_int_equal(tlm_model_parameter(plain, i, &name, NULL), TLM_OK);
            char hf[96];
            int rotary = 0;
            assert_true(tlmi_hf_llama_name(name, hf, sizeof hf, &rotary));
            fprintf(file, "%s\"%s%s\": \"model.safetensors\"", i ? ", " : "",
                    strcmp(hf, "lm_head.weight") == 0 ? "" : "model.", hf);
        }
        fprintf(file, "}}");
        assert_int_equal(fclose(file), 0);
        tlm_model *back = import_ok(f, index);
        for (int32_t i = 0; i < n; i++) {
            const char *name = NULL;
            tlm_tensor *want = NULL, *got = NULL, *again = NULL;
            assert_int_equal(tlm_model_parameter(m, i, &name, &want), TLM_OK);
            assert_int_equal(tlm_model_find_parameter(back, name, &got), TLM_OK);
            assert_int_equal(tlm_model_find_parameter(plain, name, &again), TLM_OK);
            const float *w = tlm_tensor_data_f32(want);
            const float *g = tlm_tensor_data_f32(got);
            const float *a = tlm_tensor_data_f32(again);
            for (int64_t k = 0; k < tlm_tensor_numel(want); k++) {
                const float rounded =
                    type == TLM_WEIGHT_F16
                        ? tlmi_half_to_float(tlmi_float_to_half(w[k]))
                        : tlmi_bf16_to_float(tlmi_float_to_bf16(w[k]));
                if (g[k] != rounded || a[k] != rounded)
                    fail_msg("'%s'[%lld] is %g, rounded it is %g", name,
                             (long long)k, (double)g[k], (double)rounded);
            }
        }
        tlm_model_free(back);
        tlm_model_free(plain);
        tlm_model_free(m);
    }
}

/* params->config instead of config.json: a Llama-shaped configuration
 * reads Llama's names. */
static void hf_llama_given_config_reads_llama_names(void **state) {
    fixture *f = *state;
    char dir[600], config_path[700];
    tlm_model *m = llama_model(f, 1, 2);
    snprintf(dir, sizeof dir, "%s/given", f->dir);
    assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF), TLM_OK);
    snprintf(config_path, sizeof config_path, "%s/config.json", dir);
    assert_int_equal(remove(config_path), 0);
    tlm_model_config config;
    get_config(m, &config);
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    params.config = &config;
    tlm_model *back = NULL;
    assert_int_equal(tlm_model_import(&back, f->ctx, dir, &params), TLM_OK);
    assert_same_model(m, back);
    tlm_model_free(back);
    /* With biases it is neither GPT-2 nor Llama: refused by name. */
    config.bias = 1;
    assert_int_equal(tlm_model_import(&back, f->ctx, dir, &params),
                     TLM_E_UNSUPPORTED);
    assert_message_has("bias");
    assert_null(back);
    /* No heads: refused as the caller's mistake (it divided by zero). */
    config.bias = 0;
    config.head_dim = 0;
    config.n_heads = 0;
    assert_int_equal(tlm_model_import(&back, f->ctx, dir, &params),
                     TLM_E_INVALID);
    assert_message_has("n_heads");
    assert_null(back);
    tlm_model_free(m);
}

/* Replaces the first `from` in the file by `to`. */
static void edit_file(const char *path, const char *from, const char *to) {
    size_t size = 0;
    unsigned char *text = read_file(path, &size);
    text[size] = '\0';
    char *at = strstr((char *)text, from);
    if (at == NULL)
        fail_msg("'%s' does not hold '%s'", path, from);
    size_t before = (size_t)(at - (char *)text), from_length = strlen(from);
    size_t to_length = strlen(to);
    char *out = malloc(size - from_length + to_length + 1);
    assert_non_null(out);
    memcpy(out, text, before);
    memcpy(out + before, to, to_length);
    memcpy(out + before + to_length, at + from_length, size - before - from_length);
    write_file(path, out, size - from_length + to_length);
    free(out);
    free(text);
}

static void hf_llama_bad_configs_are_refused(void **state) {
    fixture *f = *state;
    char dir[600], config[700], saved[700];
    tlm_model *m = llama_model(f, 1, 4);
    snprintf(dir, sizeof dir, "%s/bad", f->dir);
    assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF), TLM_OK);
    tlm_model_free(m);
    snprintf(config, sizeof config, "%s/config.json", dir);
    snprintf(saved, sizeof saved, "%s/good.json", f->dir);
    size_t size = 0;
    unsigned char *good = read_file(config, &size);
    write_file(saved, good, size);
    static const struct {
        const char *from, *to;
        int status;
        const char *message;
    } cases[] = {
        {"\"hidden_size\":16,", "", TLM_E_FORMAT, "hidden_size is missing"},
        {"\"num_hidden_layers\":2,", "", TLM_E_FORMAT, "num_hidden_layers is missing"},
        {"\"vocab_size\":13", "\"vocab_size\":\"13\"", TLM_E_FORMAT, "vocab_size"},
        {"\"rope_scaling\":null", "\"rope_scaling\":{\"type\":\"linear\",\"factor\":2}",
         TLM_E_UNSUPPORTED, "rope_scaling"},
        {"\"rope_type\":\"default\"", "\"rope_type\":\"yarn\"", TLM_E_UNSUPPORTED,
         "rope_type"},
        {"\"attention_bias\":false", "\"attention_bias\":true", TLM_E_UNSUPPORTED,
         "attention_bias"},
        {"\"mlp_bias\":false", "\"mlp_bias\":true", TLM_E_UNSUPPORTED, "mlp_bias"},
        {"\"hidden_act\":\"silu\"", "\"hidden_act\":\"gelu\"", TLM_E_UNSUPPORTED,
         "hidden_act"},
        {"\"num_key_value_heads\":4", "\"num_key_value_heads\":3", TLM_E_FORMAT,
         "num_key_value_heads 3 does not divide"},
        {"\"LlamaForCausalLM\"", "\"LlamaForSequenceClassification\"",
         TLM_E_UNSUPPORTED, "LlamaForSequenceClassification"},
        {"\"tie_word_embeddings\":true", "\"tie_word_embeddings\":false",
         TLM_E_FORMAT, "lm_head.weight"},
        {"\"intermediate_size\":24", "\"intermediate_size\":25", TLM_E_FORMAT,
         "mlp.gate_proj.weight"},
        /* In config.json's range, beyond tlm's (max_context 1..2^20): the
         * file named, not TLM_E_INVALID as if the caller were wrong. */
        {"\"max_position_embeddings\":9", "\"max_position_embeddings\":2000000",
         TLM_E_UNSUPPORTED, "Hugging Face checkpoint '"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(config, good, size);
        edit_file(config, cases[i].from, cases[i].to);
        assert_import_fails(f, dir, TLM_MODEL_FORMAT_AUTO, cases[i].status,
                            cases[i].message);
    }
    free(good);
}

/* A model without a SentencePiece tokenizer is not exported beside a
 * tokenizer.model (another model's): refused before anything is written. */
static void hf_llama_export_refuses_a_stale_tokenizer_model(void **state) {
    fixture *f = *state;
    char dir[600], stale[700], weights[700];
    snprintf(dir, sizeof dir, "%s/stale", f->dir);
    assert_int_equal(mkdir(dir, 0777), 0);
    snprintf(stale, sizeof stale, "%s/tokenizer.model", dir);
    write_file(stale, "x", 1);
    tlm_model *m = llama_model(f, 1, 4);
    assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF), TLM_E_STATE);
    assert_message_has("tokenizer.model");
    snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
    assert_false(exists(weights));
    tlm_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(llama2c_round_trip_is_bit_exact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            llama2c_round_trip_with_grouped_query_attention, setup, teardown),
        cmocka_unit_test_setup_teardown(llama2c_version1_is_read, setup, teardown),
        cmocka_unit_test_setup_teardown(llama2c_bad_inputs_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            llama2c_export_refuses_what_run_c_cannot_run, setup, teardown),
        cmocka_unit_test_setup_teardown(llama2c_detection_keeps_other_formats,
                                        setup, teardown),
        cmocka_unit_test(rotary_rows_follow_the_half_split_rule),
        cmocka_unit_test_setup_teardown(hf_llama_round_trip_is_bit_exact, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            hf_llama_round_trip_with_grouped_query_attention, setup, teardown),
        cmocka_unit_test_setup_teardown(hf_llama_sixteen_bits_and_index, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(hf_llama_given_config_reads_llama_names,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(hf_llama_bad_configs_are_refused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            hf_llama_export_refuses_a_stale_tokenizer_model, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
