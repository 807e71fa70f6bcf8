/*
 * tlm eval: the mean cross-entropy per token (nats) and perplexity of a
 * model on a text file, through tlm_score_text.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "input_file.h"
#include "memory_limit.h"
#include "options.h"

int cmd_eval(int argc, char **argv) {
    const char *data = NULL;
    const char *memory_limit = NULL;
    cli_option options[] = {
        {"data", 0, CLI_STRING, &data, 0, 0, "FILE", "the text to score (required)", 0},
        {"memory-limit", 0, CLI_STRING, &memory_limit, 0, 0, "BYTES", "refuse a session needing more memory than this (K, M, G, T: powers of 1024; 'none'; default: the memory available to the process)", 0},
    };
    cli_command cmd = {"eval", "MODEL --data FILE",
                       "Score a text with a model: loss (mean cross-entropy per token, in nats)\n"
                       "and perplexity (exp of the loss).",
                       options, (int)(sizeof options / sizeof options[0]), 1, 1,
                       "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    if (data == NULL)
        return cli_error(CLI_EXIT_USAGE, "eval", "missing --data FILE (see 'tlm eval --help')");
    status = cli_set_memory_limit("eval", memory_limit);
    if (status != 0)
        return status;
    /* Mapped, not copied: a large text costs page cache, not heap. */
    cli_input text;
    if (cli_input_map("eval", data, CLI_INPUT_TEXT, &text) != 0)
        return CLI_EXIT_RUNTIME;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("eval", positional[0], 1, &ctx, &model) != 0) {
        cli_input_release(&text);
        return CLI_EXIT_RUNTIME;
    }
    tlm_session *session = NULL;
    double logprob = 0;
    int64_t scored = 0;
    if (tlm_session_create(&session, model, NULL) != TLM_OK ||
        tlm_score_text(session, tlm_model_tokenizer(model), text.data, text.size, &logprob,
                       &scored) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, "eval", "%s", tlm_last_error());
    } else if (scored == 0) {
        status = cli_error(CLI_EXIT_RUNTIME, "eval",
                           "'%s' has fewer than two tokens: nothing to score", data);
    } else {
        const double loss = -logprob / (double)scored;
        printf("tokens scored: %lld\nloss: %.4f nats/token\nperplexity: %.3f\n",
               (long long)scored, loss, exp(loss));
    }
    tlm_session_free(session);
    tlm_model_free(model);
    tlm_context_free(ctx);
    cli_input_release(&text);
    return status;
}
