/*
 * tlm eval: the mean cross-entropy per token (nats) and perplexity of a
 * model on a text file, through tlm_score_text; with --logprobs, each
 * token's log-probability and its best alternatives as JSON lines,
 * through tlm_score_tokens.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "commands.h"
#include "input_file.h"
#include "memory_limit.h"
#include "options.h"

/* Writes a token's bytes as a JSON string: quote, backslash and control
 * characters escaped, a byte that does not start a valid UTF-8 character
 * as U+FFFD (the exact bytes are in the line's "bytes" array). */
static void print_json_text(const char *text, size_t length) {
    const unsigned char *b = (const unsigned char *)text;
    putchar('"');
    for (size_t i = 0; i < length;) {
        const unsigned c = b[i];
        size_t need = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 && c >= 0xC2 ? 2
                                : (c & 0xF0) == 0xE0 ? 3
                                : (c & 0xF8) == 0xF0 && c <= 0xF4 ? 4 : 0;
        for (size_t k = 1; k < need; k++)
            if (i + k >= length || (b[i + k] & 0xC0) != 0x80)
                need = 0;
        /* Overlong three-byte forms and surrogates, too-large four-byte. */
        if (need == 3 && ((c == 0xE0 && b[i + 1] < 0xA0) || (c == 0xED && b[i + 1] >= 0xA0)))
            need = 0;
        if (need == 4 && ((c == 0xF0 && b[i + 1] < 0x90) || (c == 0xF4 && b[i + 1] >= 0x90)))
            need = 0;
        if (need == 0) {
            fputs("\\ufffd", stdout);
            i++;
        } else if (need == 1 && (c == '"' || c == '\\')) {
            printf("\\%c", (int)c);
            i++;
        } else if (need == 1 && c < 0x20) {
            printf("\\u%04x", c);
            i++;
        } else {
            fwrite(b + i, 1, need, stdout);
            i += need;
        }
    }
    putchar('"');
}

/* "token": its text, "bytes": its bytes, "id", "logprob". */
static void print_token_fields(tlm_tokenizer *tok, int32_t id, float logprob) {
    const char *bytes = NULL;
    size_t length = 0;
    if (tlm_tokenizer_token_bytes(tok, id, &bytes, &length) != TLM_OK)
        length = 0;
    fputs("\"token\": ", stdout);
    print_json_text(bytes, length);
    fputs(", \"bytes\": [", stdout);
    for (size_t i = 0; i < length; i++)
        printf(i ? ", %u" : "%u", (unsigned)(unsigned char)bytes[i]);
    printf("], \"id\": %d, \"logprob\": %.9g", (int)id, (double)logprob);
}

/* --logprobs: one JSON line per scored token (tlm_score_tokens). A
 * SentencePiece text starts with its begin id, as tlm_score_text does. */
static int print_logprobs(tlm_model *model, const cli_input *text, int32_t top_k) {
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    const int32_t bos = tlm_tokenizer_kind(tok) == TLM_TOKENIZER_SENTENCEPIECE
                            ? tlm_tokenizer_special_id(tok, TLM_TOKEN_BOS)
                            : -1;
    const size_t first = bos >= 0 ? 1 : 0;
    size_t room = text->size + 2, n = 0;
    int32_t *ids = NULL;
    int status = TLM_E_RANGE;
    for (int pass = 0; pass < 2 && status == TLM_E_RANGE; pass++) {
        free(ids);
        ids = malloc((room + first) * sizeof *ids);
        if (ids == NULL)
            return cli_error(CLI_EXIT_RUNTIME, "eval", "out of memory");
        status = tlm_tokenizer_encode(tok, text->data, text->size, ids + first, room, &n);
        if (status == TLM_E_RANGE && n > room)
            room = n;
    }
    if (status != TLM_OK) {
        free(ids);
        return cli_error(CLI_EXIT_RUNTIME, "eval", "%s", tlm_tokenizer_last_error(tok));
    }
    if (first)
        ids[0] = bos;
    n += first;
    if (n < 2) {
        free(ids);
        return cli_error(CLI_EXIT_RUNTIME, "eval", "the text has fewer than two "
                         "tokens: nothing to score");
    }
    tlm_token_logprob *out = malloc((n - 1) * sizeof *out);
    tlm_session *session = NULL;
    int result = CLI_EXIT_OK;
    if (out == NULL) {
        result = cli_error(CLI_EXIT_RUNTIME, "eval", "out of memory");
    } else if (tlm_session_create(&session, model, NULL) != TLM_OK ||
               tlm_score_tokens(session, ids, n, top_k, out) != TLM_OK) {
        result = cli_error(CLI_EXIT_RUNTIME, "eval", "%s", tlm_last_error());
    } else {
        for (size_t i = 0; i + 1 < n; i++) {
            printf("{\"position\": %zu, ", i + 1);
            print_token_fields(tok, out[i].id, out[i].logprob);
            printf(", \"rank\": %d, \"top\": [", (int)out[i].rank);
            for (int32_t t = 0; t < out[i].n_top; t++) {
                fputs(t ? ", {" : "{", stdout);
                print_token_fields(tok, out[i].top_ids[t], out[i].top_logprobs[t]);
                putchar('}');
            }
            fputs("]}\n", stdout);
        }
    }
    tlm_session_free(session);
    free(out);
    free(ids);
    return result;
}

int cmd_eval(int argc, char **argv) {
    const char *data = NULL;
    const char *memory_limit = NULL;
    int logprobs = 0;
    int32_t top_k = 0;
    cli_option options[] = {
        {"data", 0, CLI_STRING, &data, 0, 0, "FILE", "the text to score (required)", 0},
        {"logprobs", 0, CLI_FLAG, &logprobs, 0, 0, NULL, "print each token's log-probability as a JSON line", 0},
        {"top-k", 0, CLI_INT, &top_k, 0, TLM_TOP_LOGPROBS_MAX, "N", "with --logprobs: the N most probable alternatives per token (0..20; default 0)", 0},
        {"threads", 0, CLI_INT, &cli_threads, 0, 1024, "N", "compute threads; 0 = one per core (default)", 0},
        {"memory-limit", 0, CLI_STRING, &memory_limit, 0, 0, "BYTES", "refuse a session needing more memory than this (K, M, G, T: powers of 1024; 'none'; default: the memory available to the process)", 0},
    };
    cli_command cmd = {"eval", "MODEL --data FILE [--logprobs [--top-k N]]",
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
    if (top_k > 0 && !logprobs)
        return cli_error(CLI_EXIT_USAGE, "eval", "--top-k needs --logprobs");
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
    cli_warn_unknown("eval", tlm_model_tokenizer(model), text.data, text.size,
                     "the text");
    tlm_session *session = NULL;
    double logprob = 0;
    int64_t scored = 0;
    if (logprobs) {
        status = print_logprobs(model, &text, top_k);
    } else if (tlm_session_create(&session, model, NULL) != TLM_OK ||
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
