/*
 * Files the tlm program writes itself (SVG pictures, the training log),
 * with the same promises as the library's saves, which the program
 * cannot reach (it links only the public API):
 *
 * - only a regular file is replaced: a path that exists and is a
 *   directory, device, FIFO or socket is refused, naming what it is;
 *   a symbolic link is written through (the link stays, the file at the
 *   end of its chain is written; a dangling link creates the file it
 *   names);
 * - replacing is crash-safe: the text goes to a temporary file
 *   `<target>.tmp-<pid>-<n>` beside the target, which is flushed to the
 *   disk and renamed over the target; a replaced file keeps its
 *   permission bits. Until then the old file is untouched, so a failure
 *   never leaves a truncated or empty file;
 * - appending (a resumed run's log) writes at the end of the existing
 *   file and never truncates it;
 * - every write is checked: the first failure is reported once, as one
 *   line naming the file and the reason, and the file is then never
 *   put in place.
 */
#ifndef TLM_CLI_OUTPUT_FILE_H
#define TLM_CLI_OUTPUT_FILE_H

#include <stdio.h>

typedef struct cli_output cli_output;

/* How cli_output_open() writes. */
enum cli_output_mode {
    CLI_OUTPUT_REPLACE, /* a temporary file, renamed over the target */
    CLI_OUTPUT_APPEND   /* at the end of the target (created if missing) */
};

/* Starts writing `path` for command `cmd`. On failure prints the error
 * line, returns CLI_EXIT_RUNTIME and leaves *out NULL. */
int cli_output_open(cli_output **out, const char *cmd, const char *path,
                    int mode);

/* The stream to write to. Write errors are found by the next
 * cli_output_flush(), cli_output_publish() or cli_output_close(). */
FILE *cli_output_stream(const cli_output *output);

/* Hands what was written to the system (fflush) and checks that no write
 * failed. 0, or CLI_EXIT_RUNTIME after printing the error (once: the
 * failure is kept, and later calls return it silently). */
int cli_output_flush(cli_output *output);

/* Flushes, syncs the file to the disk and, the first time, renames the
 * temporary file over the target (REPLACE mode); the output stays open
 * and further writes go to the file now in place. 0 or CLI_EXIT_RUNTIME
 * (printed). */
int cli_output_publish(cli_output *output);

/* cli_output_publish(), then closes the file and frees `output`. After a
 * failure the temporary file is removed and the target left as it was.
 * 0 or CLI_EXIT_RUNTIME (printed). */
int cli_output_close(cli_output *output);

/* For a file something else writes and this program renames into place
 * (export's --tokenizer-out): the file writing `path` would replace,
 * symbolic links followed (malloc'd, in *target), checked as
 * cli_output_open() checks it. 0, or CLI_EXIT_RUNTIME after printing
 * the error. */
int cli_output_target(const char *cmd, const char *path, char **target);

/* Closes without publishing: a temporary file not yet in place is
 * removed, the target is left as it was. NULL is ignored. */
void cli_output_abort(cli_output *output);

#endif
