/*
 * --memory-limit BYTES: the memory limit of the contexts the tlm program
 * creates (tlm_context_params::memory_limit), shared by the commands that
 * take the flag (train, generate, eval). Without it the library's default
 * holds: the memory available to the process.
 */
#ifndef TLM_CLI_MEMORY_LIMIT_H
#define TLM_CLI_MEMORY_LIMIT_H

#include <stdint.h>

/* The limit cli_context() gives every context: 0 (the library's default)
 * until cli_set_memory_limit() is called. */
extern uint64_t cli_memory_limit;

/* Parses `text` ("8G", "512M", "1048576", "none") and sets
 * cli_memory_limit: a byte count as --max-input-size takes it
 * (cli_number_size: K, M, G or T, powers of 1024), or "none" for no limit.
 * NULL leaves the default. Returns 0, or CLI_EXIT_USAGE after printing
 * one line naming `cmd`. */
int cli_set_memory_limit(const char *cmd, const char *text);

#endif
