/*
 * Encoder-decoder models in the tlm program: the SOURCE<TAB>TARGET file
 * of `tlm train --pairs`, and a decoder that turns source ids or text into
 * the beam-searched target (`tlm generate` on such a model, and the
 * exact-match check at the end of `tlm train --pairs`). docs/seq2seq.md,
 * "From the command line", describes both.
 */
#ifndef TLM_CLI_PAIRS_H
#define TLM_CLI_PAIRS_H

#include <stddef.h>
#include <stdint.h>

#include <tlm.h>

/* A pairs file read whole. Pair i's source is text[span[4i] ..
 * span[4i+1]) and its target text[span[4i+2] .. span[4i+3]); it was on
 * line line[i] (from 1). */
typedef struct cli_pairs {
    char *text;
    size_t size;
    int64_t n;
    size_t *span; /* [4 n] */
    size_t *line; /* [n] */
} cli_pairs;

/* Reads `path` (a regular file within the text limit): one pair a line,
 * SOURCE<TAB>TARGET, both non-empty, no second TAB. A CR before the
 * newline (a Windows file) is dropped; empty lines are skipped. Anything
 * else prints "tlm CMD: PATH:LINE: what is wrong" and returns
 * CLI_EXIT_RUNTIME (*pairs is then empty). An empty file, or one with no
 * pair, is an error too. */
int cli_pairs_read(const char *cmd, const char *path, cli_pairs *pairs);

void cli_pairs_free(cli_pairs *pairs);

/* Beam search over one model, reusing its sessions from call to call. */
typedef struct cli_decoder {
    tlm_model *model;
    tlm_tokenizer *tok;
    tlm_session *session;
    tlm_session **others; /* beam - 1 more, for the other hypotheses */
    int32_t n_others;
    tlm_beam_search_params params;
    int32_t max_context;
    int32_t *ids;         /* [max_context]: the source, then the result */
    int32_t *out;         /* [max_length] */
    char *text;           /* the decoded target */
    size_t text_capacity;
} cli_decoder;

/* Prepares beam search of width `beam` (1: greedy) with GNMT length
 * penalty `alpha`, producing at most `max_length` ids (0: max_context),
 * the end id included, for an encoder-decoder `model` whose tokenizer has
 * begin and end ids. Prints the error under `cmd` and returns
 * CLI_EXIT_RUNTIME on failure (the decoder is then freed). */
int cli_decoder_init(cli_decoder *d, const char *cmd, tlm_model *model, int32_t beam,
                     float alpha, int32_t max_length);

/* Decodes `n_src` source ids (1..max_context) into *out, *n_out ids (the
 * end id dropped; *ended says whether the hypothesis ended on it). Returns
 * a tlm status (the session's last error says why). */
int cli_decoder_ids(cli_decoder *d, const int32_t *src, size_t n_src,
                    const int32_t **out, size_t *n_out, int *ended);

/* Encodes `length` bytes of source text, decodes it and returns the
 * target as text (*target valid until the next call, NUL-terminated).
 * Prints the error under `cmd` with `where` ("line 3", "--prompt") and
 * returns CLI_EXIT_RUNTIME on failure, CLI_EXIT_USAGE for a source that
 * encodes to no id or to more than max_context ids. */
int cli_decoder_text(cli_decoder *d, const char *cmd, const char *where,
                     const char *source, size_t length, const char **target,
                     size_t *target_length);

/* Frees the sessions and buffers (not the model); a zeroed decoder is
 * ignored. */
void cli_decoder_free(cli_decoder *d);

#endif
