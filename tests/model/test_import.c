/*
 * tlm_model_import / tlm_model_export (lib/model/model_import.c,
 * format_hf.c, format_llmc.c): round trips bit-exact in float32, 16-bit
 * exports equal to rounding each value, detection from the content, the
 * Hugging Face variants (no prefix, old buffers, an untied lm_head,
 * shards), and every refused input with its message and nothing written.
 * Files written by transformers and llm.c's layout are the golden suite's.
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

#include "autodiff/context.h"
#include "base/endian.h"
#include "base/half.h"
#include "io/safetensors.h"
#include "model/formats.h"
#include "temp_dir.h"
#include "tlm.h"

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

static void path_in(const fixture *f, const char *name, char *out, size_t size) {
    snprintf(out, size, "%s/%s", f->dir, name);
}

static int exists(const char *path) {
    struct stat info;
    return stat(path, &info) == 0;
}

static void assert_message_has(const char *what) {
    if (strstr(tlm_last_error(), what) == NULL)
        fail_msg("message '%s' does not name '%s'", tlm_last_error(), what);
}

/* A GPT-2-shaped model with random parameters (V 11 is not a multiple of
 * 128, so llm.c pads it). */
static tlm_model *gpt2_model(fixture *f, int32_t tied, int32_t activation,
                             int32_t d_ff) {
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 11;
    config.d_model = 8;
    config.n_heads = 2;
    config.d_ff = d_ff;
    config.n_decoder_layers = 2;
    config.max_context = 6;
    config.tied_output = tied;
    config.activation = activation;
    config.init_seed = 7;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, f->ctx, &config), TLM_OK);
    /* Norm weights and biases start constant: give them values too. */
    int32_t n = tlm_model_parameter_tensor_count(m);
    uint32_t seed = 12345;
    for (int32_t i = 0; i < n; i++) {
        tlm_tensor *t = NULL;
        assert_int_equal(tlm_model_parameter(m, i, NULL, &t), TLM_OK);
        float *v = tlm_tensor_data_f32(t);
        for (int64_t k = 0; k < tlm_tensor_numel(t); k++) {
            seed = seed * 1664525u + 1013904223u;
            v[k] += (float)((int32_t)(seed >> 8) - (1 << 23)) / (float)(1 << 23);
        }
    }
    return m;
}

/* Applies `round` to every parameter of `m` (for the expected values of a
 * 16-bit export). */
static void round_parameters(tlm_model *m, int32_t type) {
    int32_t n = tlm_model_parameter_tensor_count(m);
    for (int32_t i = 0; i < n; i++) {
        tlm_tensor *t = NULL;
        assert_int_equal(tlm_model_parameter(m, i, NULL, &t), TLM_OK);
        float *v = tlm_tensor_data_f32(t);
        for (int64_t k = 0; k < tlm_tensor_numel(t); k++)
            v[k] = type == TLM_WEIGHT_F16
                       ? tlmi_half_to_float(tlmi_float_to_half(v[k]))
                       : tlmi_bf16_to_float(tlmi_float_to_bf16(v[k]));
    }
}

/* The two models have the same configuration and identical parameter
 * bytes, name by name. */
static void assert_same_model(tlm_model *a, tlm_model *b) {
    tlm_model_config ca, cb;
    tlm_model_config_init(&ca);
    tlm_model_config_init(&cb);
    assert_int_equal(tlm_model_get_config(a, &ca), TLM_OK);
    assert_int_equal(tlm_model_get_config(b, &cb), TLM_OK);
    assert_int_equal(ca.vocab_size, cb.vocab_size);
    assert_int_equal(ca.d_model, cb.d_model);
    assert_int_equal(ca.n_heads, cb.n_heads);
    assert_int_equal(ca.d_ff, cb.d_ff);
    assert_int_equal(ca.n_decoder_layers, cb.n_decoder_layers);
    assert_int_equal(ca.max_context, cb.max_context);
    assert_int_equal(ca.activation, cb.activation);
    assert_int_equal(ca.tied_output, cb.tied_output);
    assert_true(ca.norm_eps == cb.norm_eps);
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
}

static int export_as(tlm_model *m, const char *path, int32_t format,
                     int32_t type) {
    tlm_model_export_params params;
    tlm_model_export_params_init(&params);
    params.format = format;
    params.weight_type = type;
    return tlm_model_export(m, path, &params);
}

static tlm_model *import_ok(fixture *f, const char *path) {
    tlm_model *m = NULL;
    int status = tlm_model_import(&m, f->ctx, path, NULL);
    if (status != TLM_OK)
        fail_msg("importing '%s': %s", path, tlm_last_error());
    return m;
}

static void hf_round_trip_is_bit_exact(void **state) {
    fixture *f = *state;
    char dir[600];
    const int32_t variants[4][3] = {
        {1, TLM_ACTIVATION_GELU, 0},
        {0, TLM_ACTIVATION_GELU_EXACT, 0},
        {1, TLM_ACTIVATION_RELU, 24},
        {0, TLM_ACTIVATION_GELU, 40},
    };
    for (int v = 0; v < 4; v++) {
        tlm_model *m = gpt2_model(f, variants[v][0], variants[v][1],
                                  variants[v][2]);
        snprintf(dir, sizeof dir, "%s/hf%d", f->dir, v);
        assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32),
                         TLM_OK);
        tlm_model *back = import_ok(f, dir);
        assert_same_model(m, back);
        tlm_model_free(back);
        /* The file and the index-less path of the weights work too. */
        char file[700];
        snprintf(file, sizeof file, "%s/model.safetensors", dir);
        back = import_ok(f, file);
        assert_same_model(m, back);
        tlm_model_free(back);
        tlm_model_free(m);
    }
}

static void llmc_round_trip_is_bit_exact(void **state) {
    fixture *f = *state;
    char path[600];
    path_in(f, "gpt2.bin", path, sizeof path);
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    assert_int_equal(export_as(m, path, TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_F32),
                     TLM_OK);
    /* header + (Vp C + maxT C + L (12 C^2 + 13 C) + 2 C) floats, Vp 128 */
    unsigned char header[32];
    assert_int_equal(read_whole_file(path, header, sizeof header), 32);
    assert_int_equal(tlmi_get_u32(header), 20240326);
    assert_int_equal(tlmi_get_u32(header + 4), 3);
    assert_int_equal(tlmi_get_u32(header + 28), 128);
    struct stat info;
    assert_int_equal(stat(path, &info), 0);
    assert_int_equal(info.st_size,
                     1024 + 4 * (128 * 8 + 6 * 8 + 2 * (12 * 64 + 13 * 8) + 16));
    tlm_model *back = import_ok(f, path);
    assert_same_model(m, back);
    tlm_model_free(back);
    tlm_model_free(m);
}

static void sixteen_bit_exports_round_each_value(void **state) {
    fixture *f = *state;
    char path[600];
    const int32_t cases[3][2] = {{TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F16},
                                 {TLM_MODEL_FORMAT_HF, TLM_WEIGHT_BF16},
                                 {TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_BF16}};
    for (int c = 0; c < 3; c++) {
        tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
        snprintf(path, sizeof path, "%s/half%d", f->dir, c);
        assert_int_equal(export_as(m, path, cases[c][0], cases[c][1]), TLM_OK);
        tlm_model *back = import_ok(f, path);
        round_parameters(m, cases[c][1]);
        assert_same_model(m, back);
        tlm_model_free(back);
        tlm_model_free(m);
    }
}

/* The 16-bit conversions themselves: every half and bfloat16 value comes
 * back from float unchanged, and values between two neighbours round to
 * the nearer one, ties to the even one. */
static void sixteen_bit_rounding(void **state) {
    (void)state;
    for (uint32_t h = 0; h < 65536; h++) {
        float x = tlmi_half_to_float((uint16_t)h);
        if (x != x) { /* NaN stays NaN */
            float y = tlmi_half_to_float(tlmi_float_to_half(x));
            assert_true(y != y);
            continue;
        }
        assert_int_equal(tlmi_float_to_half(x), h);
        float b = tlmi_bf16_to_float((uint16_t)h);
        if (b == b)
            assert_int_equal(tlmi_float_to_bf16(b), h);
        /* The midpoint to the next half up (positive finite, below max). */
        if (h < 0x7bff) {
            float next = tlmi_half_to_float((uint16_t)(h + 1));
            double mid = ((double)x + (double)next) / 2;
            uint16_t expect = (h & 1u) ? (uint16_t)(h + 1) : (uint16_t)h;
            assert_int_equal(tlmi_float_to_half((float)mid), expect);
        }
    }
    assert_int_equal(tlmi_float_to_half(65520.0f), 0x7c00);
    assert_int_equal(tlmi_float_to_half(65519.0f), 0x7bff);
    assert_int_equal(tlmi_float_to_half(1e-9f), 0);
    assert_int_equal(tlmi_float_to_bf16(1.00390625f), 0x3f80); /* tie, even */
    assert_int_equal(tlmi_float_to_bf16(1.01171875f), 0x3f82); /* tie, up */
}

static void format_is_detected_from_content(void **state) {
    fixture *f = *state;
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    char path[800];
    /* Names that say nothing: the content decides. */
    const int32_t formats[3] = {TLM_MODEL_FORMAT_TLM,
                                TLM_MODEL_FORMAT_SAFETENSORS,
                                TLM_MODEL_FORMAT_LLMC};
    for (int i = 0; i < 3; i++) {
        snprintf(path, sizeof path, "%s/weights%d.dat", f->dir, i);
        assert_int_equal(export_as(m, path, formats[i], TLM_WEIGHT_F32), TLM_OK);
        tlm_model *back = import_ok(f, path);
        assert_same_model(m, back);
        tlm_model_free(back);
    }
    /* A Hugging Face model.safetensors under another name, config.json
     * beside it. */
    char dir[600], renamed[700], config[700];
    path_in(f, "hfdir", dir, sizeof dir);
    assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32), TLM_OK);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    snprintf(renamed, sizeof renamed, "%s/gpt.bin", dir);
    assert_int_equal(rename(path, renamed), 0);
    tlm_model *back = import_ok(f, renamed);
    assert_same_model(m, back);
    tlm_model_free(back);
    /* The configuration given as a path, and as a struct. */
    snprintf(config, sizeof config, "%s/config.json", dir);
    char moved[700];
    snprintf(moved, sizeof moved, "%s/gpt2-config.json", f->dir);
    assert_int_equal(rename(config, moved), 0);
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    assert_int_not_equal(tlm_model_import(&back, f->ctx, renamed, &params), TLM_OK);
    assert_null(back);
    assert_message_has("config.json");
    params.config_path = moved;
    assert_int_equal(tlm_model_import(&back, f->ctx, renamed, &params), TLM_OK);
    assert_same_model(m, back);
    tlm_model_free(back);
    tlm_model_config given;
    tlm_model_config_init(&given);
    assert_int_equal(tlm_model_get_config(m, &given), TLM_OK);
    params.config_path = NULL;
    params.config = &given;
    assert_int_equal(tlm_model_import(&back, f->ctx, renamed, &params), TLM_OK);
    assert_same_model(m, back);
    tlm_model_free(back);
    /* A given configuration GPT-2 cannot express, or not this file's. */
    given.position = TLM_POSITION_ROTARY;
    assert_int_equal(tlm_model_import(&back, f->ctx, renamed, &params),
                     TLM_E_UNSUPPORTED);
    assert_message_has("position");
    given.position = TLM_POSITION_LEARNED;
    given.d_model = 12;
    given.head_dim = 0;
    assert_int_equal(tlm_model_import(&back, f->ctx, renamed, &params), TLM_E_FORMAT);
    assert_message_has("transformer.wte.weight");
    assert_null(back);
    /* config_path for a format that has none. */
    snprintf(path, sizeof path, "%s/weights2.dat", f->dir);
    assert_int_equal(tlm_model_import(&back, f->ctx, path, &params), TLM_E_INVALID);
    assert_message_has("params.config");
    /* Not a model at all. */
    path_in(f, "notes.txt", path, sizeof path);
    assert_int_equal(write_whole_file(path, "hello, world\n", 13), 0);
    assert_int_equal(tlm_model_import(&back, f->ctx, path, NULL), TLM_E_FORMAT);
    assert_message_has("notes.txt");
    tlm_model_free(m);
}

/* ---- Hugging Face files built tensor by tensor ---- */

/* Rewrites the safetensors file `src` as `dst`: tensors renamed by
 * `rename_fn` (NULL drops one), plus an optional extra tensor. */
typedef const char *(*rename_fn)(const char *name, char *buf, size_t size);

static void rewrite(fixture *f, const char *src, const char *dst,
                    rename_fn rename_tensor, const char *extra_name,
                    int32_t extra_ndim, const int64_t *extra_shape,
                    const void *extra_data) {
    tlmi_safetensors *st = NULL;
    tlmi_host *h = &f->ctx->host; /* the internal reader and writer's */
    assert_int_equal(tlmi_safetensors_open(h, src, TLMI_ST_OPEN_READ, &st), TLM_OK);
    tlmi_safetensors_writer *w = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(h, &w), TLM_OK);
    for (size_t i = 0; i < tlmi_safetensors_count(st); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        char buf[128];
        const char *name = rename_tensor ? rename_tensor(e->name, buf, sizeof buf)
                                         : e->name;
        if (name == NULL)
            continue;
        assert_int_equal(tlmi_safetensors_writer_add(w, name, e->dtype, e->ndim,
                                                     e->shape, e->data),
                         TLM_OK);
    }
    if (extra_name != NULL)
        assert_int_equal(tlmi_safetensors_writer_add(w, extra_name, TLMI_ST_F32,
                                                     extra_ndim, extra_shape,
                                                     extra_data),
                         TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_save(w, dst), TLM_OK);
    tlmi_safetensors_writer_free(w);
    tlmi_safetensors_free(st);
}

static const char *strip_prefix(const char *name, char *buf, size_t size) {
    snprintf(buf, size, "%s",
             strncmp(name, "transformer.", 12) == 0 ? name + 12 : name);
    return buf;
}

static const char *drop_ln2_bias(const char *name, char *buf, size_t size) {
    (void)buf;
    (void)size;
    return strcmp(name, "transformer.h.1.ln_2.bias") == 0 ? NULL : name;
}

static const char *drop_lm_head(const char *name, char *buf, size_t size) {
    (void)buf;
    (void)size;
    return strcmp(name, "lm_head.weight") == 0 ? NULL : name;
}

/* Exports `m` as HF into `dir` and returns the paths of its files. */
static void export_hf(fixture *f, tlm_model *m, const char *name, char *dir,
                      size_t dir_size, char *weights, char *config,
                      size_t size) {
    path_in(f, name, dir, dir_size);
    assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32), TLM_OK);
    snprintf(weights, size, "%s/model.safetensors", dir);
    snprintf(config, size, "%s/config.json", dir);
}

static void hf_variants_import(void **state) {
    fixture *f = *state;
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    char dir[600], weights[700], config[700];
    export_hf(f, m, "plain", dir, sizeof dir, weights, config, sizeof weights);
    /* Names without "transformer.", and old checkpoints' mask buffers. */
    static float mask[36];
    const int64_t mask_shape[4] = {1, 1, 6, 6};
    rewrite(f, weights, weights, strip_prefix, "h.0.attn.bias", 4, mask_shape, mask);
    tlm_model *back = import_ok(f, dir);
    assert_same_model(m, back);
    tlm_model_free(back);
    rewrite(f, weights, weights, NULL, "h.1.attn.masked_bias", 0, NULL, mask);
    back = import_ok(f, dir);
    assert_same_model(m, back);
    tlm_model_free(back);

    /* An untied model: lm_head.weight is read when tie_word_embeddings is
     * false, and is absent from a tied export. */
    tlm_model *untied = gpt2_model(f, 0, TLM_ACTIVATION_GELU, 0);
    export_hf(f, untied, "untied", dir, sizeof dir, weights, config, sizeof weights);
    tlmi_safetensors *st = NULL;
    assert_int_equal(tlmi_safetensors_open(&f->ctx->host, weights,
                                           TLMI_ST_OPEN_READ, &st),
                     TLM_OK);
    assert_non_null(tlmi_safetensors_find(st, "lm_head.weight"));
    assert_null(tlmi_safetensors_find(st, "transformer.lm_head.weight"));
    tlmi_safetensors_free(st);
    back = import_ok(f, dir);
    assert_same_model(untied, back);
    tlm_model_free(back);
    tlm_model_free(untied);

    /* Sharded: two shards and model.safetensors.index.json. */
    export_hf(f, m, "sharded", dir, sizeof dir, weights, config, sizeof weights);
    char shard1[700], shard2[700], index[700];
    snprintf(shard1, sizeof shard1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(shard2, sizeof shard2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    tlmi_host *h = &f->ctx->host;
    assert_int_equal(tlmi_safetensors_open(h, weights, TLMI_ST_OPEN_READ, &st), TLM_OK);
    tlmi_safetensors_writer *w1 = NULL, *w2 = NULL;
    assert_int_equal(tlmi_safetensors_writer_create(h, &w1), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_create(h, &w2), TLM_OK);
    char json[8192];
    size_t used = (size_t)snprintf(json, sizeof json,
                                   "{\"metadata\": {\"total_size\": 0}, \"weight_map\": {");
    for (size_t i = 0; i < tlmi_safetensors_count(st); i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        int second = strstr(e->name, ".h.1.") != NULL || strstr(e->name, "ln_f") != NULL;
        assert_int_equal(tlmi_safetensors_writer_add(second ? w2 : w1, e->name,
                                                     e->dtype, e->ndim, e->shape,
                                                     e->data),
                         TLM_OK);
        used += (size_t)snprintf(json + used, sizeof json - used,
                                 "%s\"%s\": \"model-0000%d-of-00002.safetensors\"",
                                 i ? ", " : "", e->name, second ? 2 : 1);
    }
    snprintf(json + used, sizeof json - used, "}}");
    assert_int_equal(tlmi_safetensors_writer_save(w1, shard1), TLM_OK);
    assert_int_equal(tlmi_safetensors_writer_save(w2, shard2), TLM_OK);
    tlmi_safetensors_writer_free(w1);
    tlmi_safetensors_writer_free(w2);
    tlmi_safetensors_free(st);
    assert_int_equal(unlink(weights), 0);
    assert_int_equal(write_whole_file(index, json, strlen(json)), 0);
    back = import_ok(f, dir); /* the directory */
    assert_same_model(m, back);
    tlm_model_free(back);
    back = import_ok(f, index); /* the index itself */
    assert_same_model(m, back);
    tlm_model_free(back);
    /* A shard the index names that is not there. */
    assert_int_equal(unlink(shard2), 0);
    assert_int_equal(tlm_model_import(&back, f->ctx, index, NULL), TLM_E_IO);
    assert_message_has("model-00002-of-00002.safetensors");
    assert_null(back);
    tlm_model_free(m);
}

/* Replaces `from` by `to` in the config.json at `path`. */
static void edit_config(const char *path, const char *from, const char *to) {
    char text[4096], edited[4096];
    long n = read_whole_file(path, text, sizeof text - 1);
    assert_true(n > 0);
    text[n] = '\0';
    char *at = strstr(text, from);
    if (at == NULL)
        fail_msg("config.json has no '%s': %s", from, text);
    snprintf(edited, sizeof edited, "%.*s%s%s", (int)(at - text), text, to,
             at + strlen(from));
    assert_int_equal(write_whole_file(path, edited, strlen(edited)), 0);
}

/* Import of `dir` fails with `status` and a message holding `what`. */
static void assert_import_fails(fixture *f, const char *dir, int status,
                                const char *what, const char *what2) {
    tlm_model *m = (tlm_model *)f;
    assert_int_equal(tlm_model_import(&m, f->ctx, dir, NULL), status);
    assert_null(m);
    assert_message_has(what);
    if (what2 != NULL)
        assert_message_has(what2);
}

static void hf_bad_inputs_are_refused(void **state) {
    fixture *f = *state;
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    char dir[600], weights[700], config[700];
    struct {
        const char *from, *to;
        int status;
        const char *what, *what2;
    } edits[] = {
        /* a shape that disagrees with the configuration */
        {"\"n_positions\":6", "\"n_positions\":7", TLM_E_FORMAT,
         "transformer.wpe.weight", "[6, 8], the configuration needs [7, 8]"},
        {"\"n_inner\":null", "\"n_inner\":16", TLM_E_FORMAT,
         "transformer.h.0.mlp.c_fc.weight", "[8, 32]"},
        /* a vocabulary that does not match the embedding */
        {"\"vocab_size\":11", "\"vocab_size\":12", TLM_E_FORMAT, "vocab_size 12",
         "11 rows"},
        /* unknown architectures */
        {"\"model_type\":\"gpt2\"", "\"model_type\":\"mistral\"", TLM_E_UNSUPPORTED,
         "unknown architecture 'mistral'", NULL},
        {"\"GPT2LMHeadModel\"", "\"LlamaForCausalLM\"", TLM_E_UNSUPPORTED,
         "unknown architecture 'LlamaForCausalLM'", NULL},
        /* values tlm cannot compute, named */
        {"\"scale_attn_by_inverse_layer_idx\":false",
         "\"scale_attn_by_inverse_layer_idx\":true", TLM_E_UNSUPPORTED,
         "scale_attn_by_inverse_layer_idx", NULL},
        {"\"scale_attn_weights\":true", "\"scale_attn_weights\":false",
         TLM_E_UNSUPPORTED, "scale_attn_weights", NULL},
        {"\"gelu_new\"", "\"silu\"", TLM_E_UNSUPPORTED, "activation_function 'silu'",
         NULL},
        {"\"n_layer\":2", "\"n_layer\":1", TLM_E_FORMAT, "transformer.h.1.",
         "n_layer 1"},
        {"\"n_layer\":2", "\"n_layer\":3", TLM_E_FORMAT, "h.2.ln_1.weight", NULL},
        {"\"n_head\":2", "\"n_head\":3", TLM_E_FORMAT, "n_head", NULL},
        {"\"n_embd\":8", "\"n_embd\":\"8\"", TLM_E_FORMAT, "n_embd", NULL},
        {"\"n_embd\":8,", "", TLM_E_FORMAT, "n_embd is missing", NULL},
        {"\"n_positions\":6,", "", TLM_E_FORMAT, "n_positions is missing", NULL},
        {"\"n_positions\":6,", "\"n_ctx\":7,", TLM_E_FORMAT,
         "transformer.wpe.weight", "the configuration needs [7, 8]"},
        {"{", "[", TLM_E_FORMAT, "config.json", NULL},
    };
    for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "bad%zu", i);
        export_hf(f, m, name, dir, sizeof dir, weights, config, sizeof weights);
        edit_config(config, edits[i].from, edits[i].to);
        assert_import_fails(f, dir, edits[i].status, edits[i].what, edits[i].what2);
    }
    /* A missing tensor. */
    export_hf(f, m, "missing", dir, sizeof dir, weights, config, sizeof weights);
    rewrite(f, weights, weights, drop_ln2_bias, NULL, 0, NULL, NULL);
    assert_import_fails(f, dir, TLM_E_FORMAT, "h.1.ln_2.bias", "lacks");
    /* An untied model whose lm_head is missing: not tied silently. */
    tlm_model *untied = gpt2_model(f, 0, TLM_ACTIVATION_GELU, 0);
    export_hf(f, untied, "no_lm_head", dir, sizeof dir, weights, config, sizeof weights);
    rewrite(f, weights, weights, drop_lm_head, NULL, 0, NULL, NULL);
    assert_import_fails(f, dir, TLM_E_FORMAT, "lm_head.weight", "tie_word_embeddings");
    tlm_model_free(untied);
    /* A layer beyond n_layer, its number too large for any integer. */
    export_hf(f, m, "huge_layer", dir, sizeof dir, weights, config, sizeof weights);
    const int64_t one[1] = {1};
    const float value = 1.0f;
    rewrite(f, weights, weights, NULL,
            "transformer.h.99999999999999999999999.ln_1.weight", 1, one, &value);
    assert_import_fails(f, dir, TLM_E_FORMAT,
                        "transformer.h.99999999999999999999999.ln_1.weight",
                        "n_layer 2");
    /* No config.json, no weights. */
    assert_int_equal(unlink(config), 0);
    assert_import_fails(f, dir, TLM_E_IO, "config.json", NULL);
    assert_int_equal(unlink(weights), 0);
    assert_import_fails(f, dir, TLM_E_IO, "model.safetensors", NULL);
    /* An index without weight_map. */
    char index[700];
    snprintf(index, sizeof index, "%s/model.safetensors.index.json", dir);
    const char *no_map = "{\"metadata\": {}}";
    assert_int_equal(write_whole_file(index, no_map, strlen(no_map)), 0);
    assert_import_fails(f, dir, TLM_E_FORMAT, "weight_map", NULL);
    const char *outside = "{\"weight_map\": {\"a\": \"../x\"}}";
    assert_int_equal(write_whole_file(index, outside, strlen(outside)), 0);
    assert_import_fails(f, dir, TLM_E_FORMAT, "same directory", NULL);
    tlm_model_free(m);
}

/* A config.json deep in a directory with a long name (as in Hugging
 * Face's cache, models--gpt2/snapshots/<40 hex digits>/): the message
 * still names the field after the path. */
static void hf_messages_name_the_field_after_a_long_path(void **state) {
    fixture *f = *state;
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    char name[160], dir[700], weights[800], config[800];
    memset(name, 'x', 150);
    name[150] = '\0';
    export_hf(f, m, name, dir, sizeof dir, weights, config, sizeof weights);
    edit_config(config, "\"n_embd\":8", "\"n_embd\":\"8\"");
    assert_import_fails(f, dir, TLM_E_FORMAT, "n_embd", "config.json");
    export_hf(f, m, name, dir, sizeof dir, weights, config, sizeof weights);
    edit_config(config, "\"n_embd\":8,", "");
    assert_import_fails(f, dir, TLM_E_FORMAT, "n_embd is missing", NULL);
    export_hf(f, m, name, dir, sizeof dir, weights, config, sizeof weights);
    edit_config(config, "\"layer_norm_epsilon\":", "\"layer_norm_epsilon\":-");
    assert_import_fails(f, dir, TLM_E_RANGE, "layer_norm_epsilon", NULL);
    tlm_model_free(m);
}

/* A model without a GPT-2 tokenizer is not exported beside another
 * model's tokenizer files, which transformers and tlm import would pair
 * with it; nothing is written. */
static void hf_export_refuses_stale_tokenizer_files(void **state) {
    fixture *f = *state;
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    static const char *const names[] = {"vocab.json", "merges.txt",
                                        "encoder.json", "vocab.bpe"};
    for (size_t i = 0; i < 4; i++) {
        char dir[600], stale[700], weights[700];
        char name[32];
        snprintf(name, sizeof name, "stale%zu", i);
        path_in(f, name, dir, sizeof dir);
        assert_int_equal(mkdir(dir, 0777), 0);
        snprintf(stale, sizeof stale, "%s/%s", dir, names[i]);
        assert_int_equal(write_whole_file(stale, "{}", 2), 0);
        assert_int_equal(export_as(m, dir, TLM_MODEL_FORMAT_HF, TLM_WEIGHT_F32),
                         TLM_E_STATE);
        assert_message_has(names[i]);
        snprintf(weights, sizeof weights, "%s/model.safetensors", dir);
        assert_false(exists(weights));
    }
    tlm_model_free(m);
}

/* Paths that are not model files fail at once, naming the path: a FIFO
 * (fopen would wait forever for a writer), a device, a directory read as
 * an llm.c checkpoint. */
static void non_files_are_refused_without_waiting(void **state) {
    fixture *f = *state;
    char fifo[600];
    path_in(f, "fifo", fifo, sizeof fifo);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    for (int32_t format = TLM_MODEL_FORMAT_AUTO; format <= TLM_MODEL_FORMAT_LLMC;
         format++) {
        if (format == TLM_MODEL_FORMAT_HF)
            continue; /* a file given as HF is a model.safetensors: mapped */
        params.format = format;
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_import(&m, f->ctx, fifo, &params), TLM_E_IO);
        assert_null(m);
        assert_message_has(fifo);
        m = NULL;
        assert_int_equal(tlm_model_import(&m, f->ctx, "/dev/zero", &params), TLM_E_IO);
        assert_null(m);
    }
    params.format = TLM_MODEL_FORMAT_LLMC;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_import(&m, f->ctx, f->dir, &params), TLM_E_IO);
    assert_message_has("a directory");
}

static void llmc_bad_inputs_are_refused(void **state) {
    fixture *f = *state;
    tlm_model *m = gpt2_model(f, 1, TLM_ACTIVATION_GELU, 0);
    char path[600], bad[600];
    path_in(f, "good.bin", path, sizeof path);
    path_in(f, "bad.bin", bad, sizeof bad);
    assert_int_equal(export_as(m, path, TLM_MODEL_FORMAT_LLMC, TLM_WEIGHT_F32), TLM_OK);
    static unsigned char bytes[1 << 16];
    long size = read_whole_file(path, bytes, sizeof bytes);
    assert_true(size > 1024 && size < (long)sizeof bytes);
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    params.format = TLM_MODEL_FORMAT_LLMC;
    struct {
        int field;
        int32_t value;
        int status;
        const char *what;
    } cases[] = {
        {0, 20240327, TLM_E_FORMAT, "header[0] (magic)"},
        {1, 4, TLM_E_UNSUPPORTED, "header[1] (version) is 4"},
        {2, 0, TLM_E_FORMAT, "header[2] (max_seq_len) is 0"},
        {3, -1, TLM_E_FORMAT, "header[3] (vocab_size)"},
        {4, 5000, TLM_E_FORMAT, "header[4] (num_layers)"},
        {5, 0, TLM_E_FORMAT, "header[5] (num_heads)"},
        {5, 3, TLM_E_FORMAT, "not a multiple of header[5]"},
        {6, -8, TLM_E_FORMAT, "header[6] (channels)"},
        {7, 10, TLM_E_FORMAT, "header[7] (padded_vocab_size) is 10"},
        {7, 256, TLM_E_FORMAT, "needs exactly"},
        {1, 5, TLM_E_FORMAT, "needs exactly"}, /* bf16 header, f32 data */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        unsigned char copy[1024];
        memcpy(copy, bytes, sizeof copy);
        tlmi_put_u32(copy + 4 * cases[i].field, (uint32_t)cases[i].value);
        FILE *file = fopen(bad, "wb");
        assert_non_null(file);
        assert_int_equal(fwrite(copy, 1, sizeof copy, file), sizeof copy);
        assert_int_equal(fwrite(bytes + 1024, 1, (size_t)size - 1024, file),
                         (size_t)size - 1024);
        fclose(file);
        tlm_model *back = (tlm_model *)f;
        assert_int_equal(tlm_model_import(&back, f->ctx, bad, &params),
                         cases[i].status);
        assert_null(back);
        assert_message_has(cases[i].what);
        assert_message_has("bad.bin");
    }
    /* Truncated, and one byte too many. */
    assert_int_equal(write_whole_file(bad, bytes, (size_t)size - 1), 0);
    assert_import_fails(f, bad, TLM_E_FORMAT, "needs exactly", NULL);
    assert_int_equal(write_whole_file(bad, bytes, 1000), 0);
    tlm_model *back = NULL;
    assert_int_equal(tlm_model_import(&back, f->ctx, bad, &params), TLM_E_FORMAT);
    assert_message_has("shorter than the 1024-byte header");
    bytes[size] = 0;
    assert_int_equal(write_whole_file(bad, bytes, (size_t)size + 1), 0);
    assert_import_fails(f, bad, TLM_E_FORMAT, "needs exactly", NULL);
    /* The buffer reader (the fuzz target's) agrees. */
    assert_int_equal(tlmi_llmc_import_buffer(&back, f->ctx, "buf", bytes,
                                             (size_t)size),
                     TLM_OK);
    assert_same_model(m, back);
    tlm_model_free(back);
    tlm_model_free(m);
}

static void unexpressible_models_are_refused(void **state) {
    fixture *f = *state;
    struct {
        int32_t format;
        const char *field;
    } cases[] = {
        {TLM_MODEL_FORMAT_HF, "position"}, {TLM_MODEL_FORMAT_LLMC, "position"},
        {TLM_MODEL_FORMAT_HF, "norm"},     {TLM_MODEL_FORMAT_HF, "norm_placement"},
        {TLM_MODEL_FORMAT_HF, "bias"},     {TLM_MODEL_FORMAT_HF, "activation"},
        {TLM_MODEL_FORMAT_HF, "n_encoder_layers"},
        {TLM_MODEL_FORMAT_HF, "head_dim"},
        {TLM_MODEL_FORMAT_LLMC, "tied_output"},
        {TLM_MODEL_FORMAT_LLMC, "d_ff"},
        {TLM_MODEL_FORMAT_LLMC, "activation"},
        {TLM_MODEL_FORMAT_LLMC, "norm_eps"},
        /* GPT-2 has no grouped-query attention, in either file form. */
        {TLM_MODEL_FORMAT_HF, "n_kv_heads"},
        {TLM_MODEL_FORMAT_LLMC, "n_kv_heads"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlm_model_config config;
        tlm_model_config_init(&config);
        config.vocab_size = 11;
        config.d_model = 8;
        config.n_heads = 2;
        config.n_decoder_layers = 1;
        config.max_context = 4;
        const char *field = cases[i].field;
        if (strcmp(field, "position") == 0)
            config.position = TLM_POSITION_ROTARY;
        else if (strcmp(field, "norm") == 0)
            config.norm = TLM_NORM_RMS;
        else if (strcmp(field, "norm_placement") == 0)
            config.norm_placement = TLM_NORM_POST;
        else if (strcmp(field, "bias") == 0)
            config.bias = 0;
        else if (strcmp(field, "activation") == 0)
            config.activation = cases[i].format == TLM_MODEL_FORMAT_HF
                                    ? TLM_ACTIVATION_SWIGLU
                                    : TLM_ACTIVATION_RELU;
        else if (strcmp(field, "n_encoder_layers") == 0)
            config.n_encoder_layers = 1;
        else if (strcmp(field, "head_dim") == 0)
            config.head_dim = 2;
        else if (strcmp(field, "tied_output") == 0)
            config.tied_output = 0;
        else if (strcmp(field, "d_ff") == 0)
            config.d_ff = 16;
        else if (strcmp(field, "n_kv_heads") == 0)
            config.n_kv_heads = 1;
        else
            config.norm_eps = 1e-6f;
        tlm_model *m = NULL;
        assert_int_equal(tlm_model_create(&m, f->ctx, &config), TLM_OK);
        char path[600];
        path_in(f, "never", path, sizeof path);
        assert_int_equal(export_as(m, path, cases[i].format, TLM_WEIGHT_F32),
                         TLM_E_UNSUPPORTED);
        assert_message_has(field);
        assert_message_has("tlm_model_export");
        assert_false(exists(path));
        tlm_model_free(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(hf_round_trip_is_bit_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(llmc_round_trip_is_bit_exact, setup, teardown),
        cmocka_unit_test(sixteen_bit_rounding),
        cmocka_unit_test_setup_teardown(sixteen_bit_exports_round_each_value, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(format_is_detected_from_content, setup, teardown),
        cmocka_unit_test_setup_teardown(hf_variants_import, setup, teardown),
        cmocka_unit_test_setup_teardown(hf_bad_inputs_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(hf_messages_name_the_field_after_a_long_path,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(hf_export_refuses_stale_tokenizer_files, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(non_files_are_refused_without_waiting, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(llmc_bad_inputs_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unexpressible_models_are_refused, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
