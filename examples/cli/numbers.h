/*
 * Every number the tlm program reads, in one place: option values (whole
 * numbers, decimals, byte sizes with a K/M/G/T suffix), environment
 * variables and the numbers of a training log. The rules are strict and
 * the same everywhere: the whole text and nothing else (no surrounding
 * space, no hexadecimal, no inf or nan), within range, and a decimal that
 * is not zero must not underflow to zero as a float. On a refusal the
 * parser says why, so that the message can say what is accepted.
 */
#ifndef TLM_CLI_NUMBERS_H
#define TLM_CLI_NUMBERS_H

#include <stddef.h>
#include <stdint.h>

/* Why a number was refused (CLI_NUMBER_OK: it was not). */
enum cli_number_problem {
    CLI_NUMBER_OK = 0,
    CLI_NUMBER_EMPTY,     /* "" */
    CLI_NUMBER_SPACE,     /* " 5", "5 ": white space around the number */
    CLI_NUMBER_HEX,       /* "0x10" */
    CLI_NUMBER_NOT_FINITE,/* "inf", "nan" */
    CLI_NUMBER_SYNTAX,    /* anything else that is not a number of the kind */
    CLI_NUMBER_OVERFLOW,  /* too large for the type (ERANGE) */
    CLI_NUMBER_UNDERFLOW, /* not zero, but zero (or denormal) as a float */
    CLI_NUMBER_RANGE      /* a number, outside [min, max] */
};

/* A whole number in [min, max]: an optional sign and decimal digits. */
int cli_number_int(const char *text, int64_t min, int64_t max, int64_t *value);

/* A non-negative whole number up to UINT64_MAX: decimal digits only. */
int cli_number_u64(const char *text, uint64_t *value);

/* A decimal number in [min, max], stored as a float: an optional sign,
 * digits with an optional point, an optional exponent (3, 0.5, .5, 3e-4,
 * 1E+2). */
int cli_number_float(const char *text, double min, double max, float *value);

/* A byte count: a whole number with an optional binary suffix K, M, G or
 * T (KiB, MiB, GiB, TiB; in any case, optionally followed by "i", "B" or
 * "iB"), at least 1 and at most 2^62. */
int cli_number_size(const char *text, uint64_t *bytes);

/* What cli_number_size() accepts, for the messages of the flags that
 * take a byte count (--max-input-size, --memory-limit). */
#define CLI_NUMBER_SIZE_EXPECTED                                                        \
    "a byte count from 1 to 4611686018427387904 with an optional K, M, G or T "       \
    "(binary: 1K = 1024), e.g. 8G"

/* Why `text` was refused as `expected` (e.g. "a decimal number in 0..10,
 * such as 3e-4"), for `what` (e.g. "--lr"), into buf: "--lr: '1e-50' is
 * too small (it underflows to 0); expected a decimal number ...". */
void cli_number_message(char *buf, size_t size, const char *what, const char *text,
                        int problem, const char *expected);

/* The length of the JSON number (RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?
 * ([eE][+-]?[0-9]+)?) that `text` starts with, its value in *value; 0
 * when `text` does not start with one, or when its value overflows. */
size_t cli_number_json(const char *text, double *value);

#endif
