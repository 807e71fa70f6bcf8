/*
 * tlm export / tlm import: a model's weights to and from safetensors, the
 * format PyTorch and Hugging Face tools exchange weights in. A
 * safetensors file holds no tokenizer: import can take one from a .tlm.
 */
#include <stdio.h>

#include "commands.h"
#include "options.h"

int cmd_export(int argc, char **argv) {
    const char *out = NULL;
    cli_option options[] = {
        {"safetensors", 0, CLI_STRING, &out, 0, 0, "OUT", "the safetensors file to write (required)", 0},
    };
    cli_command cmd = {"export", "MODEL --safetensors OUT",
                       "Write a model's parameters (and its configuration, as metadata) to a\n"
                       "safetensors file.",
                       options, 1, 1, 1, "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (out == NULL)
        return cli_error(CLI_EXIT_USAGE, "export", "missing --safetensors OUT (see 'tlm export --help')");
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("export", positional[0], 0, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    if (tlm_model_export_safetensors(model, out) != TLM_OK)
        status = cli_error(CLI_EXIT_RUNTIME, "export", "%s", tlm_context_last_error(ctx));
    else
        printf("wrote %s (%lld parameters)\n", out, (long long)tlm_model_parameter_count(model));
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}

int cmd_import(int argc, char **argv) {
    const char *out = NULL, *tokenizer_from = NULL;
    cli_option options[] = {
        {"out", 'o', CLI_STRING, &out, 0, 0, "MODEL.tlm", "the .tlm file to write (required)", 0},
        {"tokenizer-from", 0, CLI_STRING, &tokenizer_from, 0, 0, "MODEL.tlm", "attach the tokenizer of this model", 0},
    };
    cli_command cmd = {"import", "IN.safetensors --out MODEL.tlm [--tokenizer-from MODEL.tlm]",
                       "Make a .tlm model from a safetensors file that carries tlm's\n"
                       "configuration (written by tlm export or laid out as docs/model.md says).",
                       options, 2, 1, 1, "IN.safetensors"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (out == NULL)
        return cli_error(CLI_EXIT_USAGE, "import", "missing --out MODEL.tlm (see 'tlm import --help')");
    tlm_context *ctx = NULL, *donor_ctx = NULL;
    tlm_model *model = NULL, *donor = NULL;
    if (cli_context("import", 0, &ctx) != 0)
        return CLI_EXIT_RUNTIME;
    if (tlm_model_import_safetensors(&model, ctx, positional[0]) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_last_error());
    } else if (tokenizer_from != NULL &&
               cli_load_model("import", tokenizer_from, 1, &donor_ctx, &donor) != 0) {
        status = CLI_EXIT_RUNTIME;
    } else if (donor != NULL &&
               tlm_model_set_tokenizer(model, tlm_model_tokenizer(donor)) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_context_last_error(ctx));
    } else if (tlm_model_save(model, out) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "import", "%s", tlm_context_last_error(ctx));
    } else {
        printf("wrote %s (%lld parameters%s)\n", out, (long long)tlm_model_parameter_count(model),
               donor != NULL ? ", tokenizer attached" : ", no tokenizer");
    }
    tlm_model_free(donor);
    tlm_context_free(donor_ctx);
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}
