/*
 * Inputs are never outputs: before a command writes anything, every file
 * it writes is compared with every file it reads (and with the other
 * files it writes). Files are compared by device and inode, so a hard
 * link, a symbolic link or another spelling of the same path is caught;
 * an output that does not exist yet is compared by its directory's
 * device and inode and its name.
 */
#ifndef TLM_CLI_PATHS_H
#define TLM_CLI_PATHS_H

#include <stddef.h>

/* A file named on the command line, and where: "--data", "-o", "MODEL". */
typedef struct cli_path {
    const char *path; /* NULL: not given (skipped) */
    const char *flag;
} cli_path;

/* Refuses when an output is the same file as an input, or as another
 * output: prints one line naming both paths and their flags and returns
 * CLI_EXIT_USAGE; 0 when all are distinct. */
int cli_check_outputs(const char *cmd, const cli_path *inputs, size_t n_inputs,
                      const cli_path *outputs, size_t n_outputs);

#endif
