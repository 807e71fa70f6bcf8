/*
 * tlm quantize: a model file with its matrices stored as int8 (groups of
 * 32 inputs, one float32 scale each), bfloat16 or float32 again
 * (tlm_model_quantize, then tlm_model_save, which writes atomically:
 * OUT is the old file or the new one, never half of one).
 * docs/quantization.md.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "options.h"
#include "paths.h"

/* A --to value, as enum tlm_weight_format; -1 when unknown. */
static int32_t parse_weight_format(const char *name) {
    if (strcmp(name, "int8") == 0)
        return TLM_WEIGHTS_INT8;
    if (strcmp(name, "bf16") == 0)
        return TLM_WEIGHTS_BF16;
    if (strcmp(name, "f32") == 0 || strcmp(name, "float32") == 0)
        return TLM_WEIGHTS_F32;
    return -1;
}

const char *weight_format_text(int32_t format) {
    switch (format) {
    case TLM_WEIGHTS_F32: return "float32";
    case TLM_WEIGHTS_BF16: return "bf16";
    case TLM_WEIGHTS_INT8: return "int8 (groups of 32, float32 scales)";
    default: return "?";
    }
}

static long long file_bytes(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

int cmd_quantize(int argc, char **argv) {
    const char *to = NULL, *out = NULL;
    cli_option options[] = {
        {"to", 0, CLI_STRING, &to, 0, 0, "FORMAT",
         "int8 (groups of 32 inputs, float32 scales), bf16 or f32 (required)", 0},
        {"out", 'o', CLI_STRING, &out, 0, 0, "OUT", "the model file to write (required; not MODEL)", 0},
    };
    cli_command cmd = {"quantize", "MODEL --to int8|bf16|f32 -o OUT",
                       "Write a copy of a model whose matrices (attention, feedforward,\n"
                       "embeddings, output layer) are stored as int8 (symmetric, one\n"
                       "float32 scale per group of 32 inputs), bfloat16 (rounded to\n"
                       "nearest even), or float32 (dequantized, e.g. to train again).\n"
                       "Norm gains and biases stay float32; the tokenizer is kept. A\n"
                       "trainer checkpoint's optimizer state is not copied. The file is\n"
                       "written atomically (docs/quantization.md).",
                       options, 2, 1, 1, "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (to == NULL)
        return cli_error(CLI_EXIT_USAGE, "quantize",
                         "missing --to int8|bf16|f32 (see 'tlm quantize --help')");
    const int32_t format = parse_weight_format(to);
    if (format < 0)
        return cli_error(CLI_EXIT_USAGE, "quantize",
                         "--to '%s': expected int8, bf16 or f32", to);
    if (out == NULL)
        return cli_error(CLI_EXIT_USAGE, "quantize",
                         "missing -o OUT (see 'tlm quantize --help')");
    const cli_path input = {positional[0], "MODEL"}, output = {out, "-o"};
    if (cli_check_outputs("quantize", &input, 1, &output, 1) != 0)
        return CLI_EXIT_USAGE;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL, *quantized = NULL;
    if (cli_load_model("quantize", positional[0], 0, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    const int32_t from = tlm_model_weight_format(model);
    if (tlm_model_quantize(&quantized, model, format) != TLM_OK ||
        tlm_model_save(quantized, out) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "quantize", "%s", tlm_last_error());
    } else {
        printf("%s: %s, %lld bytes\n", positional[0], weight_format_text(from),
               file_bytes(positional[0]));
        printf("%s: %s, %lld bytes\n", out, weight_format_text(format), file_bytes(out));
    }
    tlm_model_free(quantized);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}
