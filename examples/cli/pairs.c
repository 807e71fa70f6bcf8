#define _POSIX_C_SOURCE 200809L

#include "pairs.h"

#include <stdlib.h>
#include <string.h>

#include "input_file.h"
#include "options.h"

void cli_pairs_free(cli_pairs *pairs) {
    free(pairs->text);
    free(pairs->span);
    free(pairs->line);
    memset(pairs, 0, sizeof *pairs);
}

int cli_pairs_read(const char *cmd, const char *path, cli_pairs *pairs) {
    memset(pairs, 0, sizeof *pairs);
    if (cli_read_file(cmd, path, CLI_INPUT_TEXT, &pairs->text, &pairs->size) != 0)
        return CLI_EXIT_RUNTIME;
    /* At most one pair per newline, plus a last line without one. */
    size_t lines = 1;
    for (size_t i = 0; i < pairs->size; i++)
        lines += pairs->text[i] == '\n';
    pairs->span = malloc(lines * 4 * sizeof *pairs->span);
    pairs->line = malloc(lines * sizeof *pairs->line);
    if (pairs->span == NULL || pairs->line == NULL) {
        cli_pairs_free(pairs);
        return cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory for the lines of '%s'",
                         path);
    }
    const char *text = pairs->text;
    size_t start = 0, number = 0;
    while (start < pairs->size) {
        number++;
        const char *newline = memchr(text + start, '\n', pairs->size - start);
        const size_t next = newline ? (size_t)(newline - text) + 1 : pairs->size;
        size_t end = newline ? (size_t)(newline - text) : pairs->size;
        if (end > start && text[end - 1] == '\r')
            end--; /* CRLF */
        const char *problem = NULL;
        const char *tab = memchr(text + start, '\t', end - start);
        if (end == start) {
            start = next; /* an empty line */
            continue;
        }
        if (tab == NULL)
            problem = "no TAB: each line is SOURCE<TAB>TARGET";
        else if (memchr(tab + 1, '\t', end - (size_t)(tab + 1 - text)) != NULL)
            problem = "more than one TAB: each line is SOURCE<TAB>TARGET, "
                      "neither holding a TAB";
        else if ((size_t)(tab - text) == start)
            problem = "the source (before the TAB) is empty";
        else if ((size_t)(tab + 1 - text) == end)
            problem = "the target (after the TAB) is empty";
        else if (memchr(text + start, '\r', end - start) != NULL)
            problem = "a carriage return (CR) inside the line";
        if (problem != NULL) {
            const int status = cli_error(CLI_EXIT_RUNTIME, cmd, "%s:%zu: %s", path,
                                         number, problem);
            cli_pairs_free(pairs);
            return status;
        }
        size_t *span = pairs->span + 4 * pairs->n;
        span[0] = start;
        span[1] = (size_t)(tab - text);
        span[2] = span[1] + 1;
        span[3] = end;
        pairs->line[pairs->n++] = number;
        start = next;
    }
    if (pairs->n == 0) {
        cli_pairs_free(pairs);
        return cli_error(CLI_EXIT_RUNTIME, cmd,
                         "'%s' holds no pair (one SOURCE<TAB>TARGET a line)", path);
    }
    return 0;
}

void cli_decoder_free(cli_decoder *d) {
    if (d->others != NULL)
        for (int32_t i = 0; i < d->n_others; i++)
            tlm_session_free(d->others[i]);
    free(d->others);
    tlm_session_free(d->session);
    free(d->ids);
    free(d->out);
    free(d->text);
    memset(d, 0, sizeof *d);
}

int cli_decoder_init(cli_decoder *d, const char *cmd, tlm_model *model, int32_t beam,
                     float alpha, int32_t max_length) {
    memset(d, 0, sizeof *d);
    d->model = model;
    d->tok = tlm_model_tokenizer(model);
    tlm_model_config config;
    tlm_model_config_init(&config);
    tlm_model_get_config(model, &config);
    d->max_context = config.max_context;
    if (d->tok == NULL)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "the model has no tokenizer");
    const int32_t bos = tlm_tokenizer_special_id(d->tok, TLM_TOKEN_BOS);
    const int32_t eos = tlm_tokenizer_special_id(d->tok, TLM_TOKEN_EOS);
    if (bos < 0 || eos < 0)
        return cli_error(CLI_EXIT_RUNTIME, cmd,
                         "the model's tokenizer has no %s id, which an "
                         "encoder-decoder model's decoder %s",
                         bos < 0 ? "begin" : "end",
                         bos < 0 ? "starts from" : "ends on");
    tlm_beam_search_params_init(&d->params);
    d->params.beam_width = beam;
    d->params.max_length = max_length;
    d->params.bos_id = bos;
    d->params.eos_id = eos;
    d->params.length_penalty = alpha;
    d->ids = malloc((size_t)d->max_context * sizeof *d->ids);
    d->out = malloc((size_t)d->max_context * sizeof *d->out);
    d->others = beam > 1 ? calloc((size_t)beam - 1, sizeof *d->others) : NULL;
    if (d->ids == NULL || d->out == NULL || (beam > 1 && d->others == NULL)) {
        cli_decoder_free(d);
        return cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory");
    }
    int status = tlm_session_create(&d->session, model, NULL);
    for (int32_t i = 0; status == TLM_OK && i < beam - 1; i++) {
        status = tlm_session_create(&d->others[i], model, NULL);
        if (status == TLM_OK)
            d->n_others++;
    }
    if (status != TLM_OK) {
        const int result = cli_error(CLI_EXIT_RUNTIME, cmd, "%s", tlm_last_error());
        cli_decoder_free(d);
        return result;
    }
    d->params.sessions = d->others;
    d->params.n_sessions = d->n_others;
    return 0;
}

int cli_decoder_ids(cli_decoder *d, const int32_t *src, size_t n_src,
                    const int32_t **out, size_t *n_out, int *ended) {
    double score = 0;
    const size_t capacity = (size_t)d->max_context;
    const int status = tlm_beam_search(d->session, src, n_src, NULL, &d->params, d->out,
                                       capacity, n_out, &score);
    if (status != TLM_OK)
        return status;
    const size_t max_length =
        d->params.max_length > 0 ? (size_t)d->params.max_length : capacity;
    *out = d->out;
    *ended = *n_out < max_length;
    return TLM_OK;
}

int cli_decoder_text(cli_decoder *d, const char *cmd, const char *where,
                     const char *source, size_t length, const char **target,
                     size_t *target_length) {
    size_t n_src = 0;
    const int encoded = tlm_tokenizer_encode(d->tok, source, length, d->ids,
                                             (size_t)d->max_context, &n_src);
    if (encoded == TLM_E_RANGE)
        return cli_error(CLI_EXIT_USAGE, cmd,
                         "%s: the source is %zu tokens, more than the model's "
                         "max_context of %d", where, n_src, (int)d->max_context);
    if (encoded != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "%s: %s", where,
                         tlm_tokenizer_last_error(d->tok));
    if (n_src == 0)
        return cli_error(CLI_EXIT_USAGE, cmd, "%s: the source is empty", where);
    const int32_t *ids = NULL;
    size_t n_ids = 0;
    int ended = 0;
    if (cli_decoder_ids(d, d->ids, n_src, &ids, &n_ids, &ended) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "%s: %s", where,
                         tlm_session_last_error(d->session));
    size_t bytes = 0;
    if (tlm_tokenizer_decode(d->tok, ids, n_ids, NULL, 0, &bytes) != TLM_OK &&
        bytes == 0 && n_ids > 0)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "%s: %s", where,
                         tlm_tokenizer_last_error(d->tok));
    if (bytes + 1 > d->text_capacity) {
        char *grown = realloc(d->text, bytes + 1);
        if (grown == NULL)
            return cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory");
        d->text = grown;
        d->text_capacity = bytes + 1;
    }
    if (tlm_tokenizer_decode(d->tok, ids, n_ids, d->text, bytes, &bytes) != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "%s: %s", where,
                         tlm_tokenizer_last_error(d->tok));
    d->text[bytes] = '\0';
    *target = d->text;
    *target_length = bytes;
    return 0;
}
