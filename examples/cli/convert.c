/*
 * tlm export / tlm import: a model to and from other programs' formats
 * (Hugging Face GPT-2 and Llama directories, llm.c and llama2.c
 * checkpoints, tlm's safetensors naming) with tlm_model_export /
 * tlm_model_import. Import attaches the tokenizer files found beside the
 * weights (GPT-2's pair, a SentencePiece tokenizer.model, or a llama2.c
 * tokenizer.bin whose size is the model's), or the tokenizer named by
 * --tokenizer or --tokenizer-from; an HF export writes the model's
 * tokenizer beside its weights, a llama2.c export with --tokenizer-out.
 */
#define _POSIX_C_SOURCE 200809L /* lstat */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "commands.h"
#include "options.h"
#include "output_file.h"
#include "paths.h"

/* A --format value; -1 when unknown. `allow_auto` for import. */
static int32_t parse_format(const char *name, int allow_auto) {
    static const struct {
        const char *name;
        int32_t format;
    } formats[] = {
        {"auto", TLM_MODEL_FORMAT_AUTO}, {"tlm", TLM_MODEL_FORMAT_TLM},
        {"safetensors", TLM_MODEL_FORMAT_SAFETENSORS},
        {"hf", TLM_MODEL_FORMAT_HF},     {"llmc", TLM_MODEL_FORMAT_LLMC},
        {"llama2c", TLM_MODEL_FORMAT_LLAMA2C},
    };
    for (size_t i = allow_auto ? 0 : 1; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(name, formats[i].name) == 0)
            return formats[i].format;
    return -1;
}

/* Writes the model's tokenizer (the caller checked it has one) as
 * llama2.c's tokenizer.bin: a SentencePiece tokenizer only. */
static int write_llama2c_tokenizer(tlm_model *model, const char *path) {
    const tlm_tokenizer *tok = tlm_model_tokenizer(model);
    if (tlm_tokenizer_kind(tok) != TLM_TOKENIZER_SENTENCEPIECE)
        return cli_error(CLI_EXIT_RUNTIME, "export",
                         "--tokenizer-out: the model's tokenizer is not a SentencePiece one; "
                         "llama2.c's tokenizer.bin holds only those");
    if (tlm_tokenizer_export_as(tok, path, TLM_TOKENIZER_FORMAT_LLAMA2C) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, "export", "--tokenizer-out: %s", tlm_last_error());
    return 0;
}

/* A name beside `target` that nothing uses, for the tokenizer.bin while
 * the model is written: `<target>.tmp-<pid>-<n>`, the form of the
 * library's temporaries, so that what a killed run leaves reads as one
 * (and a later library save of `target` itself clears it). 0, or -1 (and an empty `buf`) when none
 * fits in `size` or none of 100 is free. */
static int staging_name(char *buf, size_t size, const char *target) {
    for (int n = 0; n < 100; n++) {
        struct stat info;
        const int length = snprintf(buf, size, "%s.tmp-%ld-%d", target, (long)getpid(), n);
        if (length < 0 || (size_t)length >= size)
            break;
        if (lstat(buf, &info) != 0 && errno == ENOENT)
            return 0;
    }
    buf[0] = '\0';
    return -1;
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *safetensors = NULL, *format_name = NULL;
    const char *dtype = "f32", *tokenizer_out = NULL;
    cli_option options[] = {
        {"format", 0, CLI_STRING, &format_name, 0, 0, "FORMAT", "hf, llama2c, llmc, safetensors or tlm", 0},
        {"out", 'o', CLI_STRING, &out, 0, 0, "OUT", "the file (llama2c, llmc, safetensors, tlm) or directory (hf) to write", 0},
        {"dtype", 0, CLI_STRING, &dtype, 0, 0, "TYPE", "f32 (default), f16 (hf) or bf16 (hf, llmc)", 0},
        {"safetensors", 0, CLI_STRING, &safetensors, 0, 0, "OUT", "same as --format safetensors -o OUT", 0},
        {"tokenizer-out", 0, CLI_STRING, &tokenizer_out, 0, 0, "FILE",
         "llama2c: also write the model's SentencePiece tokenizer as llama2.c's tokenizer.bin", 0},
    };
    cli_command cmd = {"export", "MODEL --format hf|llama2c|llmc|safetensors|tlm [--dtype f32|f16|bf16] -o OUT "
                       "[--tokenizer-out FILE]",
                       "Write a model in another program's format: a Hugging Face GPT-2 or\n"
                       "Llama directory (model.safetensors + config.json, and the model's\n"
                       "tokenizer) that transformers loads, a llama2.c checkpoint (the legacy\n"
                       "float32 format run.c reads; Llama-shaped models: rotary, RMSNorm,\n"
                       "SwiGLU, no biases), an llm.c checkpoint (version 3 float32, version 5\n"
                       "bfloat16), or safetensors with tlm's names and configuration.",
                       options, 5, 1, 1, "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (safetensors != NULL) {
        if (out != NULL || (format_name != NULL && strcmp(format_name, "safetensors") != 0))
            return cli_error(CLI_EXIT_USAGE, "export",
                             "--safetensors OUT is --format safetensors -o OUT: give one or the other");
        out = safetensors;
        format_name = "safetensors";
    }
    if (format_name == NULL)
        return cli_error(CLI_EXIT_USAGE, "export",
                         "missing --format hf|llama2c|llmc|safetensors|tlm (see 'tlm export --help')");
    if (out == NULL)
        return cli_error(CLI_EXIT_USAGE, "export", "missing -o OUT (see 'tlm export --help')");
    tlm_model_export_params params;
    tlm_model_export_params_init(&params);
    params.format = parse_format(format_name, 0);
    if (params.format < 0)
        return cli_error(CLI_EXIT_USAGE, "export", "--format '%s' is not hf, llama2c, llmc, safetensors or tlm",
                         format_name);
    if (tokenizer_out != NULL && params.format != TLM_MODEL_FORMAT_LLAMA2C)
        return cli_error(CLI_EXIT_USAGE, "export",
                         "--tokenizer-out is for --format llama2c (hf writes the tokenizer into its directory)");
    if (strcmp(dtype, "f32") == 0)
        params.weight_type = TLM_WEIGHT_F32;
    else if (strcmp(dtype, "f16") == 0)
        params.weight_type = TLM_WEIGHT_F16;
    else if (strcmp(dtype, "bf16") == 0)
        params.weight_type = TLM_WEIGHT_BF16;
    else
        return cli_error(CLI_EXIT_USAGE, "export", "--dtype '%s' is not f32, f16 or bf16", dtype);
    /* hf writes a directory: its files are the outputs that could be MODEL. */
    char hf_weights[4200] = "", hf_config[4200] = "";
    if (params.format == TLM_MODEL_FORMAT_HF) {
        snprintf(hf_weights, sizeof hf_weights, "%s/model.safetensors", out);
        snprintf(hf_config, sizeof hf_config, "%s/config.json", out);
    }
    const cli_path input = {positional[0], "MODEL"};
    const cli_path outputs[4] = {{out, safetensors != NULL ? "--safetensors" : "-o"},
                                 {tokenizer_out, "--tokenizer-out"},
                                 {hf_weights[0] ? hf_weights : NULL, "-o"},
                                 {hf_config[0] ? hf_config : NULL, "-o"}};
    if (cli_check_outputs("export", &input, 1, outputs, 4) != 0)
        return CLI_EXIT_USAGE;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("export", positional[0], 0, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    /* The tokenizer first, under a staging name: it is what fails for a
     * model of another tokenizer kind; it takes its own name only once
     * the model is written, so that a model the format refuses leaves
     * no tokenizer.bin either. */
    char staged[4200] = "";
    /* The staged file is renamed over the file --tokenizer-out leads to,
     * which must be a regular file (or none yet), like every output. */
    char *tokenizer_target = NULL;
    if (tokenizer_out != NULL &&
        cli_output_target("export", tokenizer_out, &tokenizer_target) != 0)
        status = CLI_EXIT_RUNTIME;
    else if (tokenizer_out != NULL &&
             staging_name(staged, sizeof staged, tokenizer_target) != 0)
        status = cli_error(CLI_EXIT_RUNTIME, "export",
                           "--tokenizer-out '%s': no free name for the file while the "
                           "model is written (the path is too long, or 100 are taken)",
                           tokenizer_out);
    else if (tokenizer_out != NULL && tlm_model_tokenizer(model) == NULL)
        status = cli_error(CLI_EXIT_RUNTIME, "export", "--tokenizer-out: the model carries no tokenizer");
    else if (tokenizer_out != NULL && write_llama2c_tokenizer(model, staged) != 0)
        status = CLI_EXIT_RUNTIME;
    else if (tlm_model_export(model, out, &params) != TLM_OK)
        status = cli_error(CLI_EXIT_RUNTIME, "export", "%s", tlm_context_last_error(ctx));
    else if (tokenizer_out != NULL && rename(staged, tokenizer_target) != 0)
        status = cli_error(CLI_EXIT_RUNTIME, "export", "--tokenizer-out: cannot rename '%s' to '%s': %s",
                           staged, tokenizer_out, strerror(errno));
    else
        printf("wrote %s (%s, %s, %lld parameters)\n", out, format_name, dtype,
               (long long)tlm_model_parameter_count(model));
    if (status != 0 && staged[0] != '\0') /* a name no file had: this run's */
        remove(staged);
    if (status == 0 && tokenizer_out != NULL)
        printf("wrote %s (llama2.c tokenizer)\n", tokenizer_out);
    free(tokenizer_target);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}

/* Does the file `path` read as a llama2.c checkpoint (format given, or
 * the "ak42" magic, or none of the other formats' first bytes: the rule
 * of tlm_model_import's detection)? */
static int is_llama2c_file(const char *path, int32_t format) {
    if (format == TLM_MODEL_FORMAT_LLAMA2C)
        return 1;
    if (format != TLM_MODEL_FORMAT_AUTO)
        return 0;
    unsigned char head[28] = {0}; /* a legacy header */
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return 0;
    size_t got = fread(head, 1, sizeof head, file);
    fclose(file);
    uint32_t first = (uint32_t)head[0] | (uint32_t)head[1] << 8 | (uint32_t)head[2] << 16 |
                     (uint32_t)head[3] << 24;
    if (got >= 4 && first == 0x616b3432u) /* "ak42" */
        return 1;
    size_t i = 0;
    while (i < got && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' || head[i] == '\n'))
        i++;
    /* safetensors: a length below 4 GiB (bytes 4..7 zero, where a legacy
     * llama2.c header has hidden_dim), then '{'. */
    const int safetensors = head[8] == '{' && head[4] == 0 && head[5] == 0 && head[6] == 0 && head[7] == 0;
    const int json = i < got && head[i] == '{'; /* i == got: all white space */
    return got >= 28 && head[0] != 0x89 && first != 20240326u && !safetensors && !json;
}

/* Kinds of tokenizer files found beside the weights. */
enum { BESIDE_NONE, BESIDE_GPT2, BESIDE_SENTENCEPIECE, BESIDE_LLAMA2C };

/* The tokenizer beside `input` (in the directory holding it, or in it
 * when it is one): GPT-2's two files under OpenAI's or Hugging Face's
 * names (the directory is returned), else a SentencePiece tokenizer.model
 * (Hugging Face Llama), else, when `input` is a llama2.c file, a
 * tokenizer.bin (those two are returned as files). NULL when none; the
 * result is `buf`, *kind says which. */
static const char *tokenizer_beside(const char *input, int32_t format, char *buf, size_t size,
                                    int *kind) {
    struct stat st;
    *kind = BESIDE_NONE;
    if (stat(input, &st) != 0)
        return NULL;
    const int is_dir = S_ISDIR(st.st_mode);
    int n;
    if (S_ISDIR(st.st_mode)) {
        n = snprintf(buf, size, "%s", input);
    } else {
        const char *slash = strrchr(input, '/');
        n = slash == NULL ? snprintf(buf, size, ".")
                          : snprintf(buf, size, "%.*s", (int)(slash - input + (slash == input)), input);
    }
    if (n < 0 || (size_t)n >= size)
        return NULL;
    static const char *const pairs[2][2] = {{"encoder.json", "vocab.bpe"},
                                            {"vocab.json", "merges.txt"}};
    for (int i = 0; i < 2; i++) {
        char a[4096], b[4096];
        if (snprintf(a, sizeof a, "%s/%s", buf, pairs[i][0]) >= (int)sizeof a ||
            snprintf(b, sizeof b, "%s/%s", buf, pairs[i][1]) >= (int)sizeof b)
            return NULL;
        if (stat(a, &st) == 0 && S_ISREG(st.st_mode) && stat(b, &st) == 0 && S_ISREG(st.st_mode)) {
            *kind = BESIDE_GPT2;
            return buf;
        }
    }
    const int llama2c = !is_dir && is_llama2c_file(input, format);
    const char *name = llama2c ? "tokenizer.bin" : "tokenizer.model";
    char file[4096];
    if (snprintf(file, sizeof file, "%s/%s", buf, name) >= (int)sizeof file || stat(file, &st) != 0 ||
        !S_ISREG(st.st_mode))
        return NULL;
    snprintf(buf, size, "%s", file);
    *kind = llama2c ? BESIDE_LLAMA2C : BESIDE_SENTENCEPIECE;
    return buf;
}

/* A llama2.c tokenizer.bin beside the checkpoint: attached only when it
 * reads and its size is the model's; otherwise a one-line note (it may
 * be another model's). *tok gets it, or stays NULL. */
static void attach_llama2c_beside(tlm_context *ctx, const tlm_model *model, const char *path,
                                  tlm_tokenizer **tok) {
    tlm_tokenizer *found = NULL;
    if (tlm_tokenizer_import(&found, ctx, path) != TLM_OK) {
        fprintf(stderr, "tlm import: note: %s not attached: %s\n", path, tlm_last_error());
        return;
    }
    tlm_model_config config;
    tlm_model_config_init(&config);
    tlm_model_get_config(model, &config);
    if (tlm_tokenizer_vocab_size(found) != config.vocab_size) {
        fprintf(stderr, "tlm import: note: %s not attached: it has %d ids, the model's vocabulary %d\n",
                path, (int)tlm_tokenizer_vocab_size(found), (int)config.vocab_size);
        tlm_tokenizer_free(found);
        return;
    }
    *tok = found;
}

/* What the library says while importing, as notes on stderr: a llama2.c
 * Q8_0 file whose groups tlm cannot take over as they are is dequantized
 * and quantized again (TLM_LOG_INFO), which the user should hear of.
 * Errors are left to the command's own one-line message. */
static void print_import_note(void *user, int level, const char *message) {
    (void)user;
    if (level != TLM_LOG_ERROR)
        fprintf(stderr, "tlm import: note: %s\n", message);
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL, *tokenizer_from = NULL, *format_name = "auto";
    const char *config_path = NULL, *tokenizer_path = NULL;
    int allow_nonfinite = 0;
    cli_option options[] = {
        {"out", 'o', CLI_STRING, &out, 0, 0, "MODEL.tlm", "the .tlm file to write (required)", 0},
        {"format", 0, CLI_STRING, &format_name, 0, 0, "FORMAT",
         "auto (default: from the content), hf, llama2c, llmc, safetensors or tlm", 0},
        {"config", 0, CLI_STRING, &config_path, 0, 0, "FILE", "hf: the config.json to use (default: the one beside the weights)", 0},
        {"tokenizer", 0, CLI_STRING, &tokenizer_path, 0, 0, "PATH",
         "attach this tokenizer: a directory with encoder.json + vocab.bpe (or vocab.json + "
         "merges.txt), a tiktoken rank file, a SentencePiece tokenizer.model or a llama2.c "
         "tokenizer.bin; its size must be the model's (default: those files beside the weights)", 0},
        {"tokenizer-from", 0, CLI_STRING, &tokenizer_from, 0, 0, "MODEL.tlm", "attach the tokenizer of this model", 0},
        {"allow-nonfinite", 0, CLI_FLAG, &allow_nonfinite, 0, 0, NULL,
         "accept NaN or infinite weights (for debugging; refused by default)", 0},
    };
    cli_command cmd = {"import", "FILE|DIR -o MODEL.tlm [--format FORMAT] [--config FILE] [--tokenizer PATH | --tokenizer-from MODEL.tlm] [--allow-nonfinite]",
                       "Make a .tlm model from another program's files, the format found from\n"
                       "their content: a Hugging Face GPT-2 or Llama directory, its\n"
                       "model.safetensors or model.safetensors.index.json (config.json beside\n"
                       "it), a llama2.c checkpoint (legacy or \"ak42\" version 1), an llm.c\n"
                       "checkpoint, or safetensors with tlm's configuration. Tokenizer files\n"
                       "found beside the weights are attached, so that the model generates text\n"
                       "at once: GPT-2's (encoder.json + vocab.bpe, or vocab.json + merges.txt),\n"
                       "a SentencePiece tokenizer.model, or beside a llama2.c checkpoint a\n"
                       "tokenizer.bin whose size is the model's vocabulary (else a note).",
                       options, 6, 1, 1, "FILE|DIR"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (out == NULL)
        return cli_error(CLI_EXIT_USAGE, "import", "missing --out MODEL.tlm (see 'tlm import --help')");
    if (tokenizer_path != NULL && tokenizer_from != NULL)
        return cli_error(CLI_EXIT_USAGE, "import", "--tokenizer and --tokenizer-from both name a tokenizer: give one");
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    params.format = parse_format(format_name, 1);
    if (params.format < 0)
        return cli_error(CLI_EXIT_USAGE, "import", "--format '%s' is not auto, hf, llama2c, llmc, safetensors or tlm",
                         format_name);
    params.config_path = config_path;
    params.allow_nonfinite = allow_nonfinite;
    char beside[4096];
    const char *found_beside = NULL;
    int beside_kind = BESIDE_NONE;
    if (tokenizer_path == NULL && tokenizer_from == NULL)
        found_beside = tokenizer_beside(positional[0], params.format, beside, sizeof beside, &beside_kind);
    /* What the import reads: the weights (for a directory, the files in
     * it that name the model), the configuration, the tokenizer files. */
    char in_config[4200] = "", in_weights[4200] = "", in_index[4200] = "";
    struct stat weights_info;
    const int weights_dir = stat(positional[0], &weights_info) == 0 &&
                            S_ISDIR(weights_info.st_mode);
    if (weights_dir) {
        snprintf(in_config, sizeof in_config, "%s/config.json", positional[0]);
        snprintf(in_weights, sizeof in_weights, "%s/model.safetensors", positional[0]);
        snprintf(in_index, sizeof in_index, "%s/model.safetensors.index.json", positional[0]);
    } else {
        const char *slash = strrchr(positional[0], '/');
        snprintf(in_config, sizeof in_config, "%.*s/config.json",
                 slash == NULL ? 1 : (int)(slash - positional[0]),
                 slash == NULL ? "." : positional[0]);
    }
    const cli_path inputs[8] = {{positional[0], "FILE|DIR"}, {in_config, "FILE|DIR"},
                                {in_weights, "FILE|DIR"},   {in_index, "FILE|DIR"},
                                {config_path, "--config"},  {tokenizer_path, "--tokenizer"},
                                {tokenizer_from, "--tokenizer-from"},
                                {found_beside, "the tokenizer beside FILE"}};
    const cli_path output = {out, "-o"};
    if (cli_check_outputs("import", inputs, 8, &output, 1) != 0)
        return CLI_EXIT_USAGE;
    tlm_context *ctx = NULL, *donor_ctx = NULL;
    tlm_model *model = NULL, *donor = NULL;
    tlm_tokenizer *tok = NULL;
    tlm_context_params context_params;
    tlm_context_params_init(&context_params);
    context_params.log_fn = print_import_note;
    context_params.log_level = TLM_LOG_INFO;
    if (tlm_context_create(&ctx, &context_params) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_last_error());
    int imported = tlm_model_import(&model, ctx, positional[0], &params) == TLM_OK;
    /* GPT-2's files beside the weights serve a model that came without a
     * tokenizer; a .tlm keeps its own. */
    if (imported && found_beside != NULL && tlm_model_tokenizer(model) == NULL) {
        if (beside_kind == BESIDE_LLAMA2C)
            attach_llama2c_beside(ctx, model, found_beside, &tok);
        tokenizer_path = found_beside;
    }
    if (!imported) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_last_error());
    } else if (tokenizer_path != NULL && beside_kind != BESIDE_LLAMA2C &&
               tlm_tokenizer_import(&tok, ctx, tokenizer_path) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_last_error());
    } else if (tokenizer_from != NULL &&
               cli_load_model("import", tokenizer_from, 1, &donor_ctx, &donor) != 0) {
        status = CLI_EXIT_RUNTIME;
    } else if (tok != NULL && tlm_model_set_tokenizer(model, tok) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "the tokenizer '%s' does not fit the model: %s",
                           tokenizer_path, tlm_context_last_error(ctx));
    } else if (donor != NULL &&
               tlm_model_set_tokenizer(model, tlm_model_tokenizer(donor)) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_context_last_error(ctx));
    } else if (tlm_model_save(model, out) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_context_last_error(ctx));
    } else {
        char attached[4200] = ", no tokenizer";
        if (tok != NULL)
            snprintf(attached, sizeof attached, ", tokenizer from %s", tokenizer_path);
        else if (donor != NULL)
            snprintf(attached, sizeof attached, ", tokenizer from %s", tokenizer_from);
        else if (tlm_model_tokenizer(model) != NULL)
            snprintf(attached, sizeof attached, ", its own tokenizer");
        printf("wrote %s (%lld parameters%s)\n", out, (long long)tlm_model_parameter_count(model), attached);
    }
    tlm_tokenizer_free(tok);
    tlm_model_free(donor);
    tlm_context_free(donor_ctx);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}
