/*
 * What the tlm program reads itself, bounded: a text or a log read as a
 * whole must be a regular file (a FIFO, a device such as /dev/zero or a
 * socket could be read forever) no larger than a limit, and a line of
 * standard input is no longer than one. Large texts are memory-mapped
 * read-only rather than copied to the heap. The library's own loaders
 * (models, tokenizer files, config.json) keep their own limits
 * (docs/reliability.md).
 */
#ifndef TLM_CLI_INPUT_FILE_H
#define TLM_CLI_INPUT_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What is read, each with its default limit (docs/cli.md). */
enum cli_input_kind {
    CLI_INPUT_TEXT, /* a text to train on or score, the demo's corpus: 1 GiB */
    CLI_INPUT_LOG,  /* a training log for tlm plot: 256 MiB */
    CLI_INPUT_LINE  /* one line of standard input (a prompt): 1 MiB */
};

/* --max-input-size: from now on `bytes` is the limit of every kind. */
void cli_set_input_limit(uint64_t bytes);

/* The limit of a cli_input_kind, in bytes. */
uint64_t cli_input_limit(int kind);

/* A whole file, mapped read-only (or an empty string for an empty
 * file). `data` is not NUL-terminated. */
typedef struct cli_input {
    const char *data;
    size_t size;
    void *mapped; /* what munmap gets, or NULL */
} cli_input;

/* Maps `path` (a regular file within the limit of `kind`). On failure
 * prints the error line under `cmd` and returns CLI_EXIT_RUNTIME; *input
 * is then empty. */
int cli_input_map(const char *cmd, const char *path, int kind, cli_input *input);

/* Unmaps; an empty or released input is ignored. */
void cli_input_release(cli_input *input);

/* Reads `path` (a regular file within the limit of `kind`) into memory
 * (malloc'd, NUL-terminated; *size excludes the terminator). On failure
 * prints the error line and returns CLI_EXIT_RUNTIME. */
int cli_read_file(const char *cmd, const char *path, int kind, char **data, size_t *size);

/* Reads the next line of `in` (without its newline) into *line (grown
 * with realloc; *capacity its size). Returns 1 for a line, 0 at the end,
 * or -1 after printing why: a line longer than the limit of
 * CLI_INPUT_LINE, a NUL byte, a read error. *number counts the lines, for
 * the messages. */
int cli_read_line(const char *cmd, FILE *in, char **line, size_t *capacity,
                  size_t *number);

#endif
