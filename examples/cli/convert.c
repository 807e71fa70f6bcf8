/*
 * tlm export / tlm import: a model to and from other programs' formats
 * (Hugging Face GPT-2 directories, llm.c checkpoints, tlm's safetensors
 * naming) with tlm_model_export / tlm_model_import. Import attaches
 * GPT-2's tokenizer files found beside the weights, or the tokenizer
 * named by --tokenizer or --tokenizer-from; an HF export writes the
 * model's GPT-2 tokenizer beside its weights.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "options.h"

/* A --format value; -1 when unknown. `allow_auto` for import. */
static int32_t parse_format(const char *name, int allow_auto) {
    static const struct {
        const char *name;
        int32_t format;
    } formats[] = {
        {"auto", TLM_MODEL_FORMAT_AUTO}, {"tlm", TLM_MODEL_FORMAT_TLM},
        {"safetensors", TLM_MODEL_FORMAT_SAFETENSORS},
        {"hf", TLM_MODEL_FORMAT_HF},     {"llmc", TLM_MODEL_FORMAT_LLMC},
    };
    for (size_t i = allow_auto ? 0 : 1; i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(name, formats[i].name) == 0)
            return formats[i].format;
    return -1;
}

int cmd_export(int argc, char **argv) {
    const char *out = NULL, *safetensors = NULL, *format_name = NULL;
    const char *dtype = "f32";
    cli_option options[] = {
        {"format", 0, CLI_STRING, &format_name, 0, 0, "FORMAT", "hf, llmc, safetensors or tlm", 0},
        {"out", 'o', CLI_STRING, &out, 0, 0, "OUT", "the file (llmc, safetensors, tlm) or directory (hf) to write", 0},
        {"dtype", 0, CLI_STRING, &dtype, 0, 0, "TYPE", "f32 (default), f16 (hf) or bf16 (hf, llmc)", 0},
        {"safetensors", 0, CLI_STRING, &safetensors, 0, 0, "OUT", "same as --format safetensors -o OUT", 0},
    };
    cli_command cmd = {"export", "MODEL --format hf|llmc|safetensors|tlm [--dtype f32|f16|bf16] -o OUT",
                       "Write a model in another program's format: a Hugging Face GPT-2\n"
                       "directory (model.safetensors + config.json) that transformers loads,\n"
                       "an llm.c checkpoint (version 3 float32, version 5 bfloat16), or\n"
                       "safetensors with tlm's names and configuration.",
                       options, 4, 1, 1, "MODEL"};
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
        return cli_error(CLI_EXIT_USAGE, "export", "missing --format hf|llmc|safetensors|tlm (see 'tlm export --help')");
    if (out == NULL)
        return cli_error(CLI_EXIT_USAGE, "export", "missing -o OUT (see 'tlm export --help')");
    tlm_model_export_params params;
    tlm_model_export_params_init(&params);
    params.format = parse_format(format_name, 0);
    if (params.format < 0)
        return cli_error(CLI_EXIT_USAGE, "export", "--format '%s' is not hf, llmc, safetensors or tlm", format_name);
    if (strcmp(dtype, "f32") == 0)
        params.weight_type = TLM_WEIGHT_F32;
    else if (strcmp(dtype, "f16") == 0)
        params.weight_type = TLM_WEIGHT_F16;
    else if (strcmp(dtype, "bf16") == 0)
        params.weight_type = TLM_WEIGHT_BF16;
    else
        return cli_error(CLI_EXIT_USAGE, "export", "--dtype '%s' is not f32, f16 or bf16", dtype);
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("export", positional[0], 0, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    if (tlm_model_export(model, out, &params) != TLM_OK)
        status = cli_error(CLI_EXIT_RUNTIME, "export", "%s", tlm_context_last_error(ctx));
    else
        printf("wrote %s (%s, %s, %lld parameters)\n", out, format_name, dtype,
               (long long)tlm_model_parameter_count(model));
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}

/* The directory holding `input` (itself when it is one), when it also
 * holds a GPT-2 tokenizer's two files under OpenAI's or Hugging Face's
 * names; NULL otherwise. The result is `buf`. */
static const char *tokenizer_beside(const char *input, char *buf, size_t size) {
    struct stat st;
    if (stat(input, &st) != 0)
        return NULL;
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
        if (stat(a, &st) == 0 && S_ISREG(st.st_mode) && stat(b, &st) == 0 && S_ISREG(st.st_mode))
            return buf;
    }
    return NULL;
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL, *tokenizer_from = NULL, *format_name = "auto";
    const char *config_path = NULL, *tokenizer_path = NULL;
    cli_option options[] = {
        {"out", 'o', CLI_STRING, &out, 0, 0, "MODEL.tlm", "the .tlm file to write (required)", 0},
        {"format", 0, CLI_STRING, &format_name, 0, 0, "FORMAT", "auto (default: from the content), hf, llmc, safetensors or tlm", 0},
        {"config", 0, CLI_STRING, &config_path, 0, 0, "FILE", "hf: the config.json to use (default: the one beside the weights)", 0},
        {"tokenizer", 0, CLI_STRING, &tokenizer_path, 0, 0, "PATH",
         "attach this tokenizer: a directory with encoder.json + vocab.bpe (or vocab.json + "
         "merges.txt), or a tiktoken rank file (default: those files beside the weights)", 0},
        {"tokenizer-from", 0, CLI_STRING, &tokenizer_from, 0, 0, "MODEL.tlm", "attach the tokenizer of this model", 0},
    };
    cli_command cmd = {"import", "FILE|DIR -o MODEL.tlm [--format FORMAT] [--config FILE] [--tokenizer PATH | --tokenizer-from MODEL.tlm]",
                       "Make a .tlm model from another program's files, the format found from\n"
                       "their content: a Hugging Face GPT-2 directory, its model.safetensors or\n"
                       "model.safetensors.index.json (config.json beside it), an llm.c\n"
                       "checkpoint, or safetensors with tlm's configuration. GPT-2's tokenizer\n"
                       "files found beside the weights (encoder.json + vocab.bpe, or vocab.json +\n"
                       "merges.txt) are attached, so that the model generates text at once.",
                       options, 5, 1, 1, "FILE|DIR"};
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
        return cli_error(CLI_EXIT_USAGE, "import", "--format '%s' is not auto, hf, llmc, safetensors or tlm",
                         format_name);
    params.config_path = config_path;
    char beside[4096];
    const char *found_beside = NULL;
    if (tokenizer_path == NULL && tokenizer_from == NULL)
        found_beside = tokenizer_beside(positional[0], beside, sizeof beside);
    tlm_context *ctx = NULL, *donor_ctx = NULL;
    tlm_model *model = NULL, *donor = NULL;
    tlm_tokenizer *tok = NULL;
    if (cli_context("import", 0, &ctx) != 0)
        return CLI_EXIT_RUNTIME;
    int imported = tlm_model_import(&model, ctx, positional[0], &params) == TLM_OK;
    /* GPT-2's files beside the weights serve a model that came without a
     * tokenizer; a .tlm keeps its own. */
    if (imported && found_beside != NULL && tlm_model_tokenizer(model) == NULL)
        tokenizer_path = found_beside;
    if (!imported) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_last_error());
    } else if (tokenizer_path != NULL && tlm_tokenizer_import(&tok, ctx, tokenizer_path) != TLM_OK) {
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
