/*
 * tlm generate: stream a completion of a prompt from a trained model, the
 * text appearing as it is produced; --interactive reads one prompt per
 * line from stdin, each continuing the conversation in the same session.
 * An encoder-decoder model (tlm train --pairs) instead reads sources (the
 * prompt, or stdin one per line) and writes each one's beam-searched
 * target on a line.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "input_file.h"
#include "memory_limit.h"
#include "options.h"
#include "pairs.h"

/* Each piece goes out at once, so the text streams. */
static int print_piece(void *user, int32_t token, const char *piece,
                       size_t length, float logprob) {
    (void)user;
    (void)token;
    (void)logprob;
    if (length > 0) {
        fwrite(piece, 1, length, stdout);
        fflush(stdout);
    }
    return 0;
}

int generate_stream(const char *cmd, tlm_model *model, const char *prompt,
                    int32_t tokens, const tlm_sampler_params *sampling,
                    const char *stop) {
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    tlm_session *session = NULL;
    tlm_sampler *sampler = NULL;
    int status = CLI_EXIT_OK;
    if (tlm_session_create(&session, model, NULL) != TLM_OK ||
        tlm_sampler_create(&sampler, tlm_model_context(model), sampling) != TLM_OK) {
        status = cli_error(CLI_EXIT_RUNTIME, cmd, "%s", tlm_last_error());
    } else {
        tlm_generate_params gp;
        tlm_generate_params_init(&gp);
        gp.max_tokens = tokens;
        gp.stop = stop;
        gp.callback = print_piece;
        fputs(prompt, stdout);
        fflush(stdout);
        if (tlm_generate(session, sampler, tok, prompt, strlen(prompt), &gp, NULL) != TLM_OK) {
            fputc('\n', stdout);
            status = cli_error(CLI_EXIT_RUNTIME, cmd, "%s", tlm_last_error());
        }
    }
    tlm_sampler_free(sampler);
    tlm_session_free(session);
    return status;
}

/* Whether the tokenizer starts every text with its begin id (SentencePiece,
 * as llama2.c and Hugging Face do): then an empty prompt is that id alone. */
static int starts_with_bos(const tlm_tokenizer *tok) {
    return tlm_tokenizer_kind(tok) == TLM_TOKENIZER_SENTENCEPIECE;
}

/* "" (the begin id alone, as llama2.c's run.c without a prompt) for a
 * tokenizer that adds one; else "\n" when the tokenizer knows it, else
 * the text of its first token. */
static const char *default_prompt(tlm_tokenizer *tok, char *buf, size_t size) {
    if (starts_with_bos(tok))
        return "";
    int32_t id = -1;
    size_t n = 0;
    const int32_t unk = tlm_tokenizer_kind(tok) == TLM_TOKENIZER_CHAR
                            ? tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK)
                            : -1;
    if (tlm_tokenizer_encode(tok, "\n", 1, &id, 1, &n) == TLM_OK && n == 1 && id != unk)
        return "\n";
    const char *bytes = NULL;
    size_t length = 0;
    if (tlm_tokenizer_token_bytes(tok, 0, &bytes, &length) != TLM_OK || length == 0 ||
        length >= size)
        return "\n";
    memcpy(buf, bytes, length);
    buf[length] = '\0';
    return buf;
}

/* Whether `text` encodes to ids without the tokenizer's unknown id. */
static int knows_text(tlm_tokenizer *tok, const char *text) {
    int32_t ids[8];
    size_t n = 0;
    const int32_t unk = tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK);
    if (tlm_tokenizer_encode(tok, text, strlen(text), ids, 8, &n) != TLM_OK)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (ids[i] == unk)
            return 0;
    return 1;
}

/* --interactive: one conversation in one session. Each line read is a
 * turn that continues the session (tlm_generate's continue_session), so
 * the earlier turns are never computed again; after the first, a turn
 * starts with the newline that ended the previous one on stdout (when
 * the tokenizer knows it), so the model sees what the terminal shows.
 * When the context is full the conversation starts over (a note on
 * stderr): the next turn, or the one that did not fit, runs in an empty
 * session. */
static int converse(tlm_model *model, int32_t tokens, const tlm_sampler_params *sampling,
                    const char *stop) {
    tlm_tokenizer *tok = tlm_model_tokenizer(model);
    tlm_model_config config;
    tlm_model_config_init(&config);
    tlm_model_get_config(model, &config);
    tlm_session *session = NULL;
    tlm_sampler *sampler = NULL;
    if (tlm_session_create(&session, model, NULL) != TLM_OK ||
        tlm_sampler_create(&sampler, tlm_model_context(model), sampling) != TLM_OK) {
        const int status = cli_error(CLI_EXIT_RUNTIME, "generate", "%s", tlm_last_error());
        tlm_sampler_free(sampler);
        tlm_session_free(session);
        return status;
    }
    const int newline = knows_text(tok, "\n");
    char *line = NULL, *turn = NULL;
    size_t capacity = 0, number = 0, turn_capacity = 0;
    const int show = isatty(fileno(stdin));
    int status = CLI_EXIT_OK;
    for (;;) {
        if (show) {
            fputs("> ", stderr);
            fflush(stderr);
        }
        /* At most --max-input-size bytes a line: stdin may be /dev/zero or
         * a stream without newlines. */
        const int got = cli_read_line("generate", stdin, &line, &capacity, &number);
        if (got != 1) {
            status = got < 0 ? CLI_EXIT_RUNTIME : status;
            break;
        }
        if (line[0] == '\0')
            continue;
        cli_warn_unknown("generate", tok, line, strlen(line), "the line");
        for (int attempt = 0; attempt < 2; attempt++) {
            const int starts = tlm_session_position(session) == 0;
            const size_t length = strlen(line) + (starts || !newline ? 0 : 1);
            if (length + 1 > turn_capacity) {
                char *grown = realloc(turn, length + 1);
                if (grown == NULL) {
                    status = cli_error(CLI_EXIT_RUNTIME, "generate", "out of memory");
                    break;
                }
                turn = grown;
                turn_capacity = length + 1;
            }
            snprintf(turn, turn_capacity, "%s%s", length > strlen(line) ? "\n" : "", line);
            tlm_generate_params gp;
            tlm_generate_params_init(&gp);
            gp.max_tokens = tokens;
            gp.stop = stop;
            gp.callback = print_piece;
            gp.continue_session = 1;
            fputs(line, stdout);
            fflush(stdout);
            const int result = tlm_generate(session, sampler, tok, turn, length, &gp, NULL);
            if (result == TLM_E_RANGE && !starts && attempt == 0) {
                /* The turn does not fit after the conversation: start over. */
                fprintf(stderr, "tlm generate: the context of %d positions is full; "
                        "starting a new conversation\n", (int)config.max_context);
                tlm_session_reset(session);
                tlm_sampler_reset(sampler);
                continue;
            }
            if (result != TLM_OK)
                status = cli_error(CLI_EXIT_RUNTIME, "generate", "%s", tlm_last_error());
            break;
        }
        fputc('\n', stdout);
        fflush(stdout);
        if (status != 0)
            break;
        if (tlm_session_position(session) >= config.max_context) {
            fprintf(stderr, "tlm generate: the context of %d positions is full; "
                    "starting a new conversation\n", (int)config.max_context);
            tlm_session_reset(session);
            tlm_sampler_reset(sampler);
        }
    }
    free(turn);
    free(line);
    tlm_sampler_free(sampler);
    tlm_session_free(session);
    return status;
}

/* An encoder-decoder model: the target of `prompt`, or of every line of
 * stdin when there is none, one line each, in order. A source that cannot
 * be decoded (empty, longer than max_context) stops the run with its line
 * number; the targets already written stay. */
static int transduce(tlm_model *model, const char *prompt, int32_t beam, float alpha,
                     int32_t max_length) {
    cli_decoder d;
    if (cli_decoder_init(&d, "generate", model, beam, alpha, max_length) != 0)
        return CLI_EXIT_RUNTIME;
    const char *target = NULL;
    size_t length = 0;
    int status = CLI_EXIT_OK;
    if (prompt != NULL) {
        cli_warn_unknown("generate", d.tok, prompt, strlen(prompt), "the source");
        status = cli_decoder_text(&d, "generate", "--prompt", prompt, strlen(prompt),
                                  &target, &length);
        if (status == 0) {
            fwrite(target, 1, length, stdout);
            fputc('\n', stdout);
        }
        cli_decoder_free(&d);
        return status;
    }
    char *line = NULL;
    size_t capacity = 0, number = 0;
    for (;;) {
        const int got = cli_read_line("generate", stdin, &line, &capacity, &number);
        if (got != 1) {
            status = got < 0 ? CLI_EXIT_RUNTIME : status;
            break;
        }
        size_t n = strlen(line);
        if (n > 0 && line[n - 1] == '\r')
            line[--n] = '\0'; /* CRLF */
        char where[48];
        snprintf(where, sizeof where, "line %zu of standard input", number);
        cli_warn_unknown("generate", d.tok, line, n, where);
        status = cli_decoder_text(&d, "generate", where, line, n, &target, &length);
        if (status != 0)
            break;
        fwrite(target, 1, length, stdout);
        fputc('\n', stdout);
        fflush(stdout); /* a pipe reading line by line gets each at once */
    }
    free(line);
    cli_decoder_free(&d);
    return status;
}

int cmd_generate(int argc, char **argv) {
    const char *prompt = NULL, *stop = NULL;
    int32_t tokens = 200, top_k = 0;
    float temperature = 0.8f, top_p = 1.0f, min_p = 0.0f, repeat = 1.0f;
    uint64_t seed = 0;
    int interactive = 0;
    int32_t beam = 4;
    float length_penalty = 0.6f;
    const char *memory_limit = NULL;
    cli_option options[] = {
        {"prompt", 'p', CLI_TEXT, &prompt, 0, 0, "TEXT", "text to continue (default: a newline; SentencePiece: BOS alone); encoder-decoder: the source (default: each line of stdin)", 0},
        {"tokens", 'n', CLI_INT, &tokens, 1, 1000000000, "N", "tokens to generate at most (default 200; encoder-decoder: the model's max_context, end id included)", 0},
        {"beam", 'b', CLI_INT, &beam, 1, 256, "N", "encoder-decoder: beam width; 1 = greedy (default 4)", 0},
        {"length-penalty", 0, CLI_FLOAT, &length_penalty, 0, 10, "X", "encoder-decoder: GNMT length penalty alpha; 0 = none (default 0.6)", 0},
        {"temperature", 't', CLI_FLOAT, &temperature, 0, 100, "X", "0 = greedy; higher = more random (default 0.8)", 0},
        {"top-k", 0, CLI_INT, &top_k, 0, 2000000000, "N", "keep the N most probable tokens; 0 = off", 0},
        {"top-p", 0, CLI_FLOAT, &top_p, 1e-6, 1, "X", "nucleus: keep the top mass X; 1 = off", 0},
        {"min-p", 0, CLI_FLOAT, &min_p, 0, 0.999999, "X", "drop tokens below X times the best; 0 = off", 0},
        {"repeat-penalty", 0, CLI_FLOAT, &repeat, 1, 100, "X", "penalise recent tokens; 1 = off", 0},
        {"seed", 's', CLI_U64, &seed, 0, 0, "N", "sampling seed (default 0)", 0},
        {"stop", 0, CLI_STRING, &stop, 0, 0, "TEXT", "stop once TEXT has been produced", 0},
        {"interactive", 'i', CLI_FLAG, &interactive, 0, 0, NULL, "read prompts from stdin, one per line", 0},
        {"memory-limit", 0, CLI_STRING, &memory_limit, 0, 0, "BYTES", "refuse a session needing more memory than this (K, M, G, T: powers of 1024; 'none'; default: the memory available to the process)", 0},
        {"threads", 0, CLI_INT, &cli_threads, 0, 1024, "N", "compute threads; 0 = one per core (default)", 0},
    };
    cli_command cmd = {"generate", "MODEL [options]",
                       "Generate text from a model written by tlm train (or imported), streaming\n"
                       "it to stdout as it is produced. An encoder-decoder model (tlm train\n"
                       "--pairs) writes the beam-searched target of --prompt, or of each line\n"
                       "of stdin, one line each.",
                       options, (int)(sizeof options / sizeof options[0]), 1, 1, "MODEL"};
    const char *positional[1];
    int n_positional = 0;
    int status = cli_parse(&cmd, argc, argv, positional, &n_positional);
    if (status != 0)
        return status < 0 ? 0 : status;
    status = cli_set_memory_limit("generate", memory_limit);
    if (status != 0)
        return status;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    if (cli_load_model("generate", positional[0], 1, &ctx, &model) != 0)
        return CLI_EXIT_RUNTIME;
    tlm_model_config config;
    tlm_model_config_init(&config);
    tlm_model_get_config(model, &config);
    const int seq2seq = config.n_encoder_layers > 0 && config.n_decoder_layers > 0;
    /* Options of the other kind of model are refused by name, never
     * ignored: sampling continues a text, beam search decodes a source. */
    static const char *const sampling_only[] = {"temperature", "top-k", "top-p", "min-p",
                                                "repeat-penalty", "seed", "stop",
                                                "interactive"};
    static const char *const beam_only[] = {"beam", "length-penalty"};
    const size_t n_sampling = sizeof sampling_only / sizeof *sampling_only;
    const size_t n_beam = sizeof beam_only / sizeof *beam_only;
    for (size_t i = 0; status == 0 && seq2seq && i < n_sampling; i++)
        if (cli_find_option(&cmd, sampling_only[i])->seen)
            status = cli_error(CLI_EXIT_USAGE, "generate",
                               "--%s: '%s' is an encoder-decoder model, decoded by beam "
                               "search (--beam, --length-penalty), one target per "
                               "source line of stdin or for --prompt; sampling options "
                               "are for decoder-only models", sampling_only[i],
                               positional[0]);
    for (size_t i = 0; status == 0 && !seq2seq && i < n_beam; i++)
        if (cli_find_option(&cmd, beam_only[i])->seen)
            status = cli_error(CLI_EXIT_USAGE, "generate",
                               "--%s: '%s' is a %s model, which samples a continuation "
                               "(--temperature, --top-k, ...); beam search decodes the "
                               "sources of encoder-decoder models (tlm train --pairs)",
                               beam_only[i], positional[0],
                               config.n_encoder_layers == 0 ? "decoder-only" : "encoder-only");
    if (status == 0 && seq2seq && cli_find_option(&cmd, "tokens")->seen &&
        tokens > config.max_context)
        status = cli_error(CLI_EXIT_USAGE, "generate",
                           "--tokens %d is more than the max_context %d of '%s' (an "
                           "encoder-decoder model's targets are at most that long)",
                           (int)tokens, (int)config.max_context, positional[0]);
    if (status != 0 || seq2seq) {
        if (status == 0)
            status = transduce(model, prompt, beam, length_penalty,
                               cli_find_option(&cmd, "tokens")->seen ? tokens : 0);
        tlm_model_free(model);
        tlm_context_free(ctx);
        return status;
    }
    tlm_sampler_params sp;
    tlm_sampler_params_init(&sp);
    sp.temperature = temperature;
    sp.top_k = top_k;
    sp.top_p = top_p;
    sp.min_p = min_p;
    sp.repetition_penalty = repeat;
    sp.seed = seed;
    char first[64];
    if (prompt == NULL)
        prompt = default_prompt(tlm_model_tokenizer(model), first, sizeof first);
    if (prompt[0] == '\0' && !starts_with_bos(tlm_model_tokenizer(model)))
        status = cli_error(CLI_EXIT_USAGE, "generate",
                           "--prompt: the value is empty, and the model's tokenizer puts no "
                           "begin-of-sequence id before it; give a text to continue (or "
                           "leave --prompt out for the default)");
    else if (!interactive) {
        cli_warn_unknown("generate", tlm_model_tokenizer(model), prompt, strlen(prompt),
                         "the prompt");
        status = generate_stream("generate", model, prompt, tokens, &sp, stop);
        if (status == 0)
            fputc('\n', stdout);
    } else {
        status = converse(model, tokens, &sp, stop);
    }
    tlm_model_free(model);
    tlm_context_free(ctx);
    return status;
}
