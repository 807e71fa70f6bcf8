/*
 * What every subcommand of the tlm program shares: a table-driven option
 * parser (numbers read by numbers.h), one-line error reporting, model
 * loading and small text helpers. Files are read by input_file.h and
 * written by output_file.h. Only the public API of
 * tlm is used here, so the program doubles as an example to copy.
 */
#ifndef TLM_CLI_OPTIONS_H
#define TLM_CLI_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <tlm.h>

/* Exit statuses. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_RUNTIME 1 /* the job failed: a file, the library, ... */
#define CLI_EXIT_USAGE 2   /* the command line is wrong */

/* Kinds of option values. */
enum cli_option_kind {
    CLI_FLAG,   /* no value: sets an int to 1 */
    CLI_STRING, /* const char *, never empty: a file, a format, a name */
    CLI_TEXT,   /* const char *, may be empty: a prompt, a title */
    CLI_INT,    /* int32_t in [min, max] */
    CLI_U64,    /* uint64_t (seeds) */
    CLI_FLOAT   /* float in [min, max] */
};

typedef struct cli_option {
    const char *name;  /* long name without "--", e.g. "steps" */
    char short_name;   /* e.g. 'o' for -o, or 0 */
    int kind;          /* a cli_option_kind */
    void *target;      /* int *, const char **, int32_t *, uint64_t *, float * */
    double min, max;   /* CLI_INT and CLI_FLOAT: the accepted range */
    const char *value; /* the value's name in the help, e.g. "N" */
    const char *help;  /* one line */
    int seen;          /* set by the parser when given */
} cli_option;

/* A subcommand's description for the parser and its --help. */
typedef struct cli_command {
    const char *name;      /* "train" */
    const char *usage;     /* "--data FILE [options]" */
    const char *summary;   /* one paragraph */
    cli_option *options;
    int n_options;
    int min_positional;
    int max_positional;
    const char *positional_name; /* "MODEL" */
} cli_command;

/* Parses argv[1..argc-1] (argv[0] is the subcommand's name). Fills the
 * targets, marks options seen, stores positional arguments. Returns -1
 * after printing --help (the caller exits 0), 0 on success, or
 * CLI_EXIT_USAGE after printing one line to stderr. */
int cli_parse(cli_command *cmd, int argc, char **argv, const char **positional,
              int *n_positional);

/* Prints the command's help to `out`. */
void cli_print_help(const cli_command *cmd, FILE *out);

/* The option called `name` in the command's table (NULL if none). */
cli_option *cli_find_option(cli_command *cmd, const char *name);

/* Prints "tlm CMD: message" as one line to stderr and returns `status`. */
int cli_error(int status, const char *cmd, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Creates a context with `threads` compute threads (0: one per core). */
int cli_context(const char *cmd, int32_t threads, tlm_context **ctx);

/* --threads of the commands that load a model to compute with it
 * (generate, eval, attention): the loaded model's context gets this many
 * compute threads; 0 (the default) is one per core. */
extern int32_t cli_threads;

/* Prints "tlm CMD: warning: N characters of WHAT are not in the
 * vocabulary and map to <unk>" when encoding `text` with `tok` gives its
 * unknown id (tokenizers that have one: char, SentencePiece without byte
 * fallback; for SentencePiece one <unk> may stand for a run of
 * characters, and the count is of <unk> pieces). Says nothing otherwise,
 * also when the text cannot be encoded (the library reports that). */
void cli_warn_unknown(const char *cmd, tlm_tokenizer *tok, const char *text,
                      size_t length, const char *what);

/* Loads a .tlm model into a new context. With `need_tokenizer` a model
 * without a tokenizer is an error. On failure prints the error line and
 * returns CLI_EXIT_RUNTIME; *ctx and *model are then NULL. */
int cli_load_model(const char *cmd, const char *path, int need_tokenizer,
                   tlm_context **ctx, tlm_model **model);

/* Seconds on a monotonic clock. */
double cli_now(void);

/* Writes `length` bytes of text into `out` so that it is valid XML
 * character data in UTF-8: &, <, >, " escaped; invalid UTF-8 and control
 * characters written as \xNN; with `visible_space`, a space shows as
 * U+2423 and a newline as U+21B5. */
void cli_xml_text(FILE *out, const char *text, size_t length, int visible_space);

/* Formats seconds as "1h02m", "3m05s" or "12s" into buf. */
void cli_format_duration(char *buf, size_t size, double seconds);

#endif
