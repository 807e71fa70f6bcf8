/*
 * Writes the fuzz targets' seed corpora: tests/fuzz/corpus/<target>/, a
 * few small valid inputs each (tiny models as .tlm and safetensors files,
 * tokenizer images, texts, JSON documents, configurations). The files are
 * committed; run this again (fuzz builds build it as make_fuzz_corpus)
 * after a format change:  make_fuzz_corpus tests/fuzz/corpus
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff/context.h"
#include "base/endian.h"
#include "fuzz.h"
#include "io/container.h"
#include "model/model.h"
#include "model/model_config.h"
#include "gpt2_tiny_vocab.h"
#include "llama2c_q80.h"
#include "text/tokenizer.h"
#include "tlm.h"

static const char *root;

static void check(int status, const char *what) {
    if (status != TLM_OK) {
        fprintf(stderr, "make_corpus: %s: %s\n", what, tlm_last_error());
        exit(1);
    }
}

static const char *path_of(const char *target, const char *name) {
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", root, target);
    mkdir(path, 0777);
    snprintf(path, sizeof path, "%s/%s/%s", root, target, name);
    return path;
}

static void write_file(const char *target, const char *name, const void *data,
                       size_t size) {
    FILE *file = fopen(path_of(target, name), "wb");
    if (file == NULL || fwrite(data, 1, size, file) != size || fclose(file) != 0) {
        perror(name);
        exit(1);
    }
}

static void copy_file(const char *from, const char *target, const char *name,
                      size_t keep) {
    FILE *file = fopen(from, "rb");
    static unsigned char buffer[1 << 20];
    size_t size = file ? fread(buffer, 1, sizeof buffer, file) : 0;
    if (file == NULL) {
        perror(from);
        exit(1);
    }
    fclose(file);
    write_file(target, name, buffer, keep > 0 && keep < size ? keep : size);
}

/* Checkpoints of fuzz_training_create's trainer (targets resume and
 * optim_state: the `optim` section is an optimizer state), and fresh
 * AdamW and SGD states over its model's parameters. */
static void write_training(tlm_context *ctx, char *scratch, size_t size) {
    fuzz_training tr;
    fuzz_training_create(&tr, ctx);
    snprintf(scratch, size, "%s/scratch.tlm", root);
    for (int step = 0; step <= 2; step++) {
        if (step == 1)
            continue;
        if (step == 2)
            for (int i = 0; i < 2; i++)
                check(tlm_trainer_step(tr.trainer, NULL), "trainer step");
        check(tlm_trainer_save(tr.trainer, scratch), "trainer save");
        char name[32];
        snprintf(name, sizeof name, "step-%d.tlm", step);
        copy_file(scratch, "resume", name, 0);
        if (step != 2)
            continue;
        /* The optimizer state inside the checkpoint. */
        static unsigned char bytes[1 << 20];
        FILE *file = fopen(scratch, "rb");
        const size_t n = file ? fread(bytes, 1, sizeof bytes, file) : 0;
        if (file != NULL)
            fclose(file);
        tlmi_container container;
        check(tlmi_container_parse(NULL, "make_corpus", scratch, bytes, n, NULL,
                                   &container),
              "checkpoint");
        const tlmi_container_section *optim = tlmi_container_find(&container, "optim");
        check(optim != NULL ? TLM_OK : TLM_E_FORMAT, "optim section");
        write_file("optim_state", "adamw-step-2.bin", optim->data, (size_t)optim->size);
    }
    remove(scratch);
    tlm_tensor *tensors[64];
    const int32_t count = tlm_model_parameter_tensor_count(tr.model);
    for (int32_t i = 0; i < count && i < 64; i++)
        check(tlm_model_parameter(tr.model, i, NULL, &tensors[i]), "parameter");
    for (int k = 0; k < 2; k++) {
        tlm_optimizer_params params;
        tlm_optimizer_params_init(&params);
        params.kind = k == 0 ? TLM_OPTIMIZER_ADAMW : TLM_OPTIMIZER_SGD;
        if (k == 1)
            params.momentum = 0.9f;
        tlm_optimizer *opt = NULL;
        check(tlm_optimizer_create(&opt, tensors, count, &params), "optimizer");
        size_t state_size = 0;
        check(tlm_optimizer_state_size(opt, &state_size), "state size");
        unsigned char *state = malloc(state_size);
        check(state != NULL ? TLM_OK : TLM_E_NOMEM, "state");
        check(tlm_optimizer_save_state(opt, state, state_size), "save state");
        write_file("optim_state", k == 0 ? "adamw-step-0.bin" : "sgd-step-0.bin",
                   state, state_size);
        free(state);
        tlm_optimizer_free(opt);
    }
    fuzz_training_free(&tr);
}

/* Hugging Face model.safetensors of fuzz_hf_config's models (target
 * hf_import), float32, and the untied Llama in bfloat16 and float16. */
static void write_hf_weights(tlm_context *ctx, char *scratch, size_t size) {
    static const char *names[FUZZ_HF_CONFIGS] = {"gpt2", "llama-untied", "llama-tied"};
    for (int which = 0; which < FUZZ_HF_CONFIGS; which++)
        for (int32_t type = TLM_WEIGHT_F32; type <= TLM_WEIGHT_BF16; type++) {
            if (type != TLM_WEIGHT_F32 && which != 1)
                continue;
            tlm_model_config c;
            fuzz_hf_config(which, &c);
            tlm_model *m = NULL;
            check(tlm_model_create(&m, ctx, &c), "hf model");
            tlm_model_export_params ep;
            tlm_model_export_params_init(&ep);
            ep.format = TLM_MODEL_FORMAT_HF;
            ep.weight_type = type;
            snprintf(scratch, size, "%s/scratch-hf", root);
            check(tlm_model_export(m, scratch, &ep), "hf export");
            char inner[4200], name[64];
            snprintf(inner, sizeof inner, "%s/model.safetensors", scratch);
            snprintf(name, sizeof name, "%s-%s.safetensors", names[which],
                     type == TLM_WEIGHT_F32 ? "f32"
                     : type == TLM_WEIGHT_F16 ? "f16" : "bf16");
            copy_file(inner, "hf_import", name, 0);
            remove(inner);
            snprintf(inner, sizeof inner, "%s/config.json", scratch);
            remove(inner);
            remove(scratch);
            tlm_model_free(m);
        }
}

static tlm_model *tiny_model(tlm_context *ctx, int variant) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 24; /* the character tokenizer's: 20 + 4 */
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 8;
    c.n_encoder_layers = variant == 2 ? 1 : 0;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    c.position = variant % 3;
    c.norm = variant == 1 ? TLM_NORM_RMS : TLM_NORM_LAYER;
    c.activation = variant == 1 ? TLM_ACTIVATION_SWIGLU : TLM_ACTIVATION_GELU;
    c.bias = variant != 1;
    c.tied_output = variant != 2;
    c.init_seed = (uint64_t)variant + 1;
    tlm_model *m = NULL;
    check(tlm_model_create(&m, ctx, &c), "model");
    if (variant == 0) {
        tlm_tokenizer_params tp;
        tlm_tokenizer_params_init(&tp);
        tp.kind = TLM_TOKENIZER_CHAR;
        tlm_tokenizer *tok = NULL;
        check(tlm_tokenizer_train(&tok, ctx, "abcdefghijklmnopqrst", 20, &tp),
              "character tokenizer");
        check(tlm_model_set_tokenizer(m, tok), "attach");
        tlm_tokenizer_free(tok);
    }
    return m;
}

/* Appends the float32 values of tlm's parameter `name` to `out`. */
static size_t put_parameter(tlm_model *m, const char *name, unsigned char *out) {
    tlm_tensor *t = NULL;
    check(tlm_model_find_parameter(m, name, &t), name);
    const float *v = tlm_tensor_data_f32(t);
    for (int64_t i = 0; i < tlm_tensor_numel(t); i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        tlmi_put_u32(out + 4 * i, bits);
    }
    return 4 * (size_t)tlm_tensor_numel(t);
}

/* `m` in llama2.c's "ak42" version 1 layout (export.py version1_export),
 * written here since tlm exports the legacy layout only. */
static void write_llama2c_v1(tlm_model *m, const char *name) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    check(tlm_model_get_config(m, &c), "config");
    static unsigned char out[1 << 16];
    memset(out, 0, 256);
    const int32_t fields[9] = {(int32_t)0x616b3432, 1, c.d_model, c.d_ff,
                               c.n_decoder_layers, c.n_heads, c.n_heads,
                               c.vocab_size, c.max_context};
    for (int i = 0; i < 9; i++)
        tlmi_put_u32(out + 4 * i, (uint32_t)fields[i]);
    out[36] = (unsigned char)c.tied_output;
    size_t at = 256;
    static const char *const per_layer[9] = {
        "self_attn_norm.weight", "ffn_norm.weight", NULL,
        "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight",
        "ffn.gate_proj.weight", "ffn.down_proj.weight"};
    char full[96];
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < c.n_decoder_layers; l++) {
            snprintf(full, sizeof full, "decoder.layers.%d.%s", l, per_layer[k]);
            at += put_parameter(m, full, out + at);
        }
    at += put_parameter(m, "decoder.final_norm.weight", out + at);
    at += put_parameter(m, "token_embedding.weight", out + at);
    for (int k = 3; k < 10; k++)
        for (int l = 0; l < c.n_decoder_layers; l++) {
            snprintf(full, sizeof full, "decoder.layers.%d.%s", l,
                     k < 9 ? per_layer[k] : "ffn.up_proj.weight");
            at += put_parameter(m, full, out + at);
        }
    if (!c.tied_output)
        at += put_parameter(m, "lm_head.weight", out + at);
    write_file("llama2c_import", name, out, at);
}

/* Appends tlm's parameter `name` as export.py's quantize_q80 writes it
 * in groups of `gs` (llama2c_q80_encode). */
static size_t put_q80(tlm_model *m, const char *name, int gs, unsigned char *out) {
    tlm_tensor *t = NULL;
    check(tlm_model_find_parameter(m, name, &t), name);
    return llama2c_q80_encode(out, tlm_tensor_data_f32(t), tlm_tensor_numel(t), gs, NULL);
}

/* `m` in llama2.c's "ak42" version 2 layout (export.py version2_export,
 * int8 Q8_0 in groups of `gs`), written here: export.py needs PyTorch. */
static void write_llama2c_v2(tlm_model *m, int gs, const char *name) {
    tlm_model_config c;
    tlm_model_config_init(&c);
    check(tlm_model_get_config(m, &c), "config");
    static unsigned char out[1 << 16];
    memset(out, 0, 256);
    const int32_t fields[9] = {(int32_t)0x616b3432, 2, c.d_model, c.d_ff,
                               c.n_decoder_layers, c.n_heads, c.n_heads,
                               c.vocab_size, c.max_context};
    for (int i = 0; i < 9; i++)
        tlmi_put_u32(out + 4 * i, (uint32_t)fields[i]);
    out[36] = (unsigned char)c.tied_output;
    tlmi_put_u32(out + 37, (uint32_t)gs);
    size_t at = 256;
    static const char *const norms[2] = {"self_attn_norm.weight", "ffn_norm.weight"};
    static const char *const matrices[7] = {
        "self_attn.q_proj.weight", "self_attn.k_proj.weight", "self_attn.v_proj.weight",
        "self_attn.o_proj.weight", "ffn.gate_proj.weight",    "ffn.down_proj.weight",
        "ffn.up_proj.weight"};
    char full[96];
    for (int k = 0; k < 2; k++)
        for (int l = 0; l < c.n_decoder_layers; l++) {
            snprintf(full, sizeof full, "decoder.layers.%d.%s", l, norms[k]);
            at += put_parameter(m, full, out + at);
        }
    at += put_parameter(m, "decoder.final_norm.weight", out + at);
    at += put_q80(m, "token_embedding.weight", gs, out + at);
    for (int k = 0; k < 7; k++)
        for (int l = 0; l < c.n_decoder_layers; l++) {
            snprintf(full, sizeof full, "decoder.layers.%d.%s", l, matrices[k]);
            at += put_q80(m, full, gs, out + at);
        }
    if (!c.tied_output)
        at += put_q80(m, "lm_head.weight", gs, out + at);
    write_file("llama2c_import", name, out, at);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    root = argv[1];
    mkdir(root, 0777);
    tlm_context *ctx = NULL;
    check(tlm_context_create(&ctx, NULL), "context");
    char scratch[4096];
    for (int variant = 0; variant < 3; variant++) {
        tlm_model *m = tiny_model(ctx, variant);
        char name[64];
        snprintf(scratch, sizeof scratch, "%s/scratch.tlm", root);
        check(tlm_model_save(m, scratch), "save");
        snprintf(name, sizeof name, "tiny-%d.tlm", variant);
        copy_file(scratch, "model_load", name, 0);
        if (variant == 0)
            copy_file(scratch, "model_load", "truncated.tlm", 300);
        remove(scratch);
        /* Quantized models (docs/format.md, the "weights" field): int8 of
         * every variant, bf16 of the first. */
        for (int32_t format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8; format++) {
            if (format == TLM_WEIGHTS_BF16 && variant != 0)
                continue;
            tlm_model *q = NULL;
            check(tlm_model_quantize(&q, m, format), "quantize");
            snprintf(scratch, sizeof scratch, "%s/scratch.tlm", root);
            check(tlm_model_save(q, scratch), "save quantized");
            snprintf(name, sizeof name, "tiny-%d-%s.tlm", variant,
                     format == TLM_WEIGHTS_BF16 ? "bf16" : "int8");
            copy_file(scratch, "model_load", name, 0);
            remove(scratch);
            tlm_model_free(q);
        }
        snprintf(scratch, sizeof scratch, "%s/scratch.safetensors", root);
        check(tlm_model_export_safetensors(m, scratch), "export");
        snprintf(name, sizeof name, "tiny-%d.safetensors", variant);
        copy_file(scratch, "safetensors_import", name, 0);
        copy_file(scratch, "safetensors_parse", name, 0);
        remove(scratch);
        char *json = NULL;
        size_t size = 0;
        check(tlmi_model_config_to_json(&ctx->host, &m->config, TLM_WEIGHTS_F32, &json, &size),
              "config");
        snprintf(name, sizeof name, "config-%d.json", variant);
        write_file("model_config", name, json, size);
        write_file("json", name, json, size);
        tlmi_host_free(&ctx->host, json, size + 1);
        tlm_model_free(m);
    }
    /* A tiny GPT-2 as llm.c checkpoints (float32, bfloat16) and its
     * Hugging Face config.json, with hand-written variants. */
    {
        tlm_model_config c;
        tlm_model_config_init(&c);
        c.vocab_size = 5;
        c.d_model = 4;
        c.n_heads = 2;
        c.n_decoder_layers = 1;
        c.max_context = 3;
        tlm_model *m = NULL;
        check(tlm_model_create(&m, ctx, &c), "gpt2");
        tlm_model_export_params ep;
        tlm_model_export_params_init(&ep);
        ep.format = TLM_MODEL_FORMAT_LLMC;
        const char *llmc_names[2] = {"tiny-f32.bin", "tiny-bf16.bin"};
        for (int v = 0; v < 2; v++) {
            ep.weight_type = v == 0 ? TLM_WEIGHT_F32 : TLM_WEIGHT_BF16;
            snprintf(scratch, sizeof scratch, "%s/scratch.bin", root);
            check(tlm_model_export(m, scratch, &ep), "llmc");
            copy_file(scratch, "llmc_import", llmc_names[v], 0);
            if (v == 0)
                copy_file(scratch, "llmc_import", "truncated.bin", 1100);
            remove(scratch);
        }
        ep.format = TLM_MODEL_FORMAT_HF;
        ep.weight_type = TLM_WEIGHT_F32;
        snprintf(scratch, sizeof scratch, "%s/scratch-hf", root);
        check(tlm_model_export(m, scratch, &ep), "hf");
        char inner[4200];
        snprintf(inner, sizeof inner, "%s/config.json", scratch);
        copy_file(inner, "hf_config", "exported.json", 0);
        remove(inner);
        snprintf(inner, sizeof inner, "%s/model.safetensors", scratch);
        remove(inner);
        remove(scratch);
        static const char *configs[] = {
            "{\"model_type\": \"gpt2\", \"n_layer\": 2, \"n_head\": 2, "
            "\"n_embd\": 8, \"n_ctx\": 16, \"vocab_size\": 10, "
            "\"activation_function\": \"gelu\", \"n_inner\": 12, "
            "\"tie_word_embeddings\": false}",
            "{\"architectures\": [\"GPT2Model\"], \"n_layer\": 1, "
            "\"n_head\": 1, \"n_embd\": 4, \"n_positions\": 8, "
            "\"vocab_size\": 3, \"layer_norm_epsilon\": 1e-6, "
            "\"activation_function\": \"relu\"}",
            "{\"model_type\": \"llama\"}",
        };
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
            char name[32];
            snprintf(name, sizeof name, "handmade-%zu.json", i);
            write_file("hf_config", name, configs[i], strlen(configs[i]));
        }
        tlm_model_free(m);
    }

    /* A Llama-shaped model 32 wide: llama2.c version 2 files whose groups
     * (32, and 64 straddling rows) become tlm's int8 groups directly. */
    {
        tlm_model_config c;
        tlm_model_config_init(&c);
        c.vocab_size = 6;
        c.d_model = 32;
        c.n_heads = 2;
        c.d_ff = 32;
        c.n_decoder_layers = 1;
        c.max_context = 4;
        c.position = TLM_POSITION_ROTARY;
        c.norm = TLM_NORM_RMS;
        c.activation = TLM_ACTIVATION_SWIGLU;
        c.bias = 0;
        c.tied_output = 1;
        tlm_model *m = NULL;
        check(tlm_model_create(&m, ctx, &c), "llama 32");
        write_llama2c_v2(m, 32, "v2-g32-tied.bin");
        write_llama2c_v2(m, 64, "v2-g64-tied.bin");
        tlm_model_free(m);
    }

    /* Tiny Llama-shaped models, tied and untied: llama2.c files (legacy
     * as tlm exports them, version 1 written here, one truncated) and
     * their Hugging Face Llama config.json, with hand-written variants. */
    for (int tied = 0; tied < 2; tied++) {
        tlm_model_config c;
        tlm_model_config_init(&c);
        c.vocab_size = 5;
        c.d_model = 8;
        c.n_heads = 2;
        c.d_ff = 12;
        c.n_decoder_layers = 1 + tied;
        c.max_context = 4;
        c.position = TLM_POSITION_ROTARY;
        c.norm = TLM_NORM_RMS;
        c.activation = TLM_ACTIVATION_SWIGLU;
        c.bias = 0;
        c.tied_output = tied;
        tlm_model *m = NULL;
        check(tlm_model_create(&m, ctx, &c), "llama");
        tlm_model_export_params ep;
        tlm_model_export_params_init(&ep);
        ep.format = TLM_MODEL_FORMAT_LLAMA2C;
        snprintf(scratch, sizeof scratch, "%s/scratch.bin", root);
        check(tlm_model_export(m, scratch, &ep), "llama2c");
        copy_file(scratch, "llama2c_import", tied ? "legacy-tied.bin" : "legacy-untied.bin", 0);
        if (!tied)
            copy_file(scratch, "llama2c_import", "legacy-truncated.bin", 600);
        remove(scratch);
        write_llama2c_v1(m, tied ? "v1-tied.bin" : "v1-untied.bin");
        /* Groups of 4: read through float32, then quantized again. */
        write_llama2c_v2(m, 4, tied ? "v2-g4-tied.bin" : "v2-g4-untied.bin");
        ep.format = TLM_MODEL_FORMAT_HF;
        snprintf(scratch, sizeof scratch, "%s/scratch-hf", root);
        check(tlm_model_export(m, scratch, &ep), "hf llama");
        char inner[4200];
        snprintf(inner, sizeof inner, "%s/config.json", scratch);
        copy_file(inner, "hf_llama_config", tied ? "exported-tied.json" : "exported-untied.json", 0);
        remove(inner);
        snprintf(inner, sizeof inner, "%s/model.safetensors", scratch);
        remove(inner);
        remove(scratch);
        tlm_model_free(m);
    }
    {
        static const char *configs[] = {
            /* transformers 4's spelling, grouped-query attention */
            "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_act\":\"silu\","
            "\"hidden_size\":64,\"intermediate_size\":172,"
            "\"max_position_embeddings\":256,\"model_type\":\"llama\","
            "\"num_attention_heads\":8,\"num_hidden_layers\":5,"
            "\"num_key_value_heads\":4,\"rms_norm_eps\":1e-05,"
            "\"rope_scaling\":null,\"rope_theta\":10000.0,"
            "\"tie_word_embeddings\":true,\"vocab_size\":512}",
            /* transformers 5's, head_dim given */
            "{\"model_type\":\"llama\",\"hidden_size\":16,\"head_dim\":8,"
            "\"intermediate_size\":24,\"num_hidden_layers\":1,"
            "\"num_attention_heads\":4,\"max_position_embeddings\":9,"
            "\"vocab_size\":13,\"rope_parameters\":{\"rope_theta\":500000.0,"
            "\"rope_type\":\"default\"},\"attention_bias\":false}",
            "{\"architectures\":[\"LlamaModel\"],\"hidden_size\":4,"
            "\"intermediate_size\":4,\"num_hidden_layers\":1,"
            "\"num_attention_heads\":1,\"max_position_embeddings\":2,"
            "\"vocab_size\":2,\"rope_scaling\":{\"type\":\"linear\"}}",
        };
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
            char name[32];
            snprintf(name, sizeof name, "handmade-%zu.json", i);
            write_file("hf_llama_config", name, configs[i], strlen(configs[i]));
        }
    }

    /* A hand-made safetensors file: 8-byte header length, JSON, data. */
    static const char header[] =
        "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        "\"__metadata__\":{\"k\":\"v\"}}";
    unsigned char st_small[8 + sizeof header - 1 + 8];
    memset(st_small, 0, sizeof st_small);
    st_small[0] = (unsigned char)(sizeof header - 1);
    memcpy(st_small + 8, header, sizeof header - 1);
    const float values[2] = {1.0f, 2.0f};
    memcpy(st_small + 8 + sizeof header - 1, values, sizeof values);
    write_file("safetensors_parse", "handmade.safetensors", st_small,
               sizeof st_small);

    static const char corpus[] =
        "the quick brown fox jumps over the lazy dog. The dog sleeps; the fox "
        "runs away!! 1234 5678 \xc3\xa9t\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac";
    const int kinds[3] = {TLM_TOKENIZER_BYTE, TLM_TOKENIZER_CHAR, TLM_TOKENIZER_BPE};
    const char *names[3] = {"byte.tok", "char.tok", "bpe.tok"};
    for (int k = 0; k < 3; k++) {
        tlm_tokenizer_params tp;
        tlm_tokenizer_params_init(&tp);
        tp.kind = kinds[k];
        tp.vocab_size = 300;
        tlm_tokenizer *tok = NULL;
        check(tlm_tokenizer_train(&tok, ctx, corpus, sizeof corpus - 1, &tp), "tok");
        static unsigned char image[1 << 16];
        size_t size = 0;
        check(tlm_tokenizer_save_memory(tok, image, sizeof image, &size), "image");
        write_file("tokenizer_load", names[k], image, size);
        tlm_tokenizer_free(tok);
    }
    write_file("bpe", "text.txt", corpus, sizeof corpus - 1);
    write_file("bpe", "spaces.txt", "  a  bb\t\n\n 12 345 don't", 23);
    write_file("bpe", "binary.bin", "\xff\xfe\x00\x01\xc3\x28\xf0\x9f\x99", 9);

    static const char *json[] = {
        "{}", "[]", "[1, -2.5e3, true, false, null, \"x\\u00e9\\ud83d\\ude42\"]",
        "{\"a\": {\"b\": [[], {}]}, \"c\": \"\\n\\t\\\"\"}",
        "123456789012345678901234567890", "\"\\ud800\"", "[1,2,",
    };
    for (size_t i = 0; i < sizeof json / sizeof json[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "snippet-%zu.json", i);
        write_file("json", name, json[i], strlen(json[i]));
    }
    /* GPT-2: the tiny vocabulary as encoder.json NUL vocab.bpe, the same
     * as a tiktoken file (ids rank order here: bytes, then merge results
     * by id), and texts for the round trip. */
    static char gpt2_json[16384], gpt2_bpe[4096], gpt2_pair[20480];
    size_t json_size = tiny_encoder_json(gpt2_json);
    size_t bpe_size = tiny_vocab_bpe(gpt2_bpe);
    memcpy(gpt2_pair, gpt2_json, json_size);
    gpt2_pair[json_size] = 0;
    memcpy(gpt2_pair + json_size + 1, gpt2_bpe, bpe_size);
    write_file("gpt2_vocab", "tiny.bin", gpt2_pair, json_size + 1 + bpe_size);
    write_file("gpt2_vocab", "json-only.json", gpt2_json, json_size);
    {
        tlmi_host host;
        tlmi_host_init_default(&host);
        tlm_tokenizer *tok = NULL;
        check(tlmi_gpt2_read_files(&tok, &host, gpt2_json, json_size, "encoder.json",
                                   gpt2_bpe, bpe_size, "vocab.bpe"),
              "gpt2 tokenizer");
        static unsigned char image[1 << 16];
        size_t size = 0;
        check(tlm_tokenizer_save_memory(tok, image, sizeof image, &size), "gpt2 image");
        write_file("tokenizer_load", "gpt2.tok", image, size);
        tlm_tokenizer_free(tok);
    }
    {
        static const char digits[] =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        static char rank_file[8192];
        size_t n = 0;
        for (int byte = 0; byte < 256; byte++)
            n += (size_t)sprintf(rank_file + n, "%c%c== %d\n", digits[byte >> 2],
                                 digits[(byte & 3) << 4], byte);
        n += (size_t)sprintf(rank_file + n, "aGU= 256\nIHQ= 257\nIHRoZQ== 258\n");
        write_file("tiktoken", "tiny.tiktoken", rank_file, n);
    }
    write_file("gpt2_roundtrip", "text.txt", corpus, sizeof corpus - 1);
    static const char gpt2_spaces[] = "   the  thing\n\n\n x  \t ";
    static const char gpt2_special[] = "<|endoftext|>'s 'S \xff\xc3";
    write_file("gpt2_roundtrip", "spaces.txt", gpt2_spaces, sizeof gpt2_spaces - 1);
    write_file("gpt2_roundtrip", "special.txt", gpt2_special, sizeof gpt2_special - 1);
    write_training(ctx, scratch, sizeof scratch);
    write_hf_weights(ctx, scratch, sizeof scratch);
    tlm_context_free(ctx);
    return 0;
}
