#define _POSIX_C_SOURCE 200809L

#include "options.h"

#include "input_file.h"
#include "numbers.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "memory_limit.h"

int cli_error(int status, const char *cmd, const char *format, ...) {
    char message[1024];
    va_list args;
    va_start(args, format);
    vsnprintf(message, sizeof message, format, args);
    va_end(args);
    /* One line: a library message never holds a newline, but be sure. */
    for (char *p = message; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (cmd != NULL)
        fprintf(stderr, "tlm %s: %s\n", cmd, message);
    else
        fprintf(stderr, "tlm: %s\n", message);
    return status;
}

cli_option *cli_find_option(cli_command *cmd, const char *name) {
    for (int i = 0; i < cmd->n_options; i++)
        if (strcmp(cmd->options[i].name, name) == 0)
            return &cmd->options[i];
    return NULL;
}

void cli_print_help(const cli_command *cmd, FILE *out) {
    fprintf(out, "usage: tlm %s %s\n\n%s\n", cmd->name, cmd->usage, cmd->summary);
    if (cmd->n_options > 0)
        fputs("\noptions:\n", out);
    for (int i = 0; i < cmd->n_options; i++) {
        const cli_option *o = &cmd->options[i];
        char left[64];
        if (o->short_name != 0)
            snprintf(left, sizeof left, "-%c, --%s%s%s", o->short_name, o->name,
                     o->value ? " " : "", o->value ? o->value : "");
        else
            snprintf(left, sizeof left, "    --%s%s%s", o->name,
                     o->value ? " " : "", o->value ? o->value : "");
        fprintf(out, "  %-28s %s\n", left, o->help);
    }
    fprintf(out, "  %-28s %s\n", "    --max-input-size BYTES",
            "largest text or log read whole, and line of standard input (default "
            "1G for texts, 256M for logs, 1M for a line; K, M, G, T suffixes)");
    fprintf(out, "  %-28s %s\n", "-h, --help", "show this help");
}

/* A refused number: one line saying why and what is accepted. */
static int number_error(const cli_command *cmd, const char *shown, const char *text,
                        int problem, const char *expected) {
    char message[512];
    cli_number_message(message, sizeof message, shown, text, problem, expected);
    return cli_error(CLI_EXIT_USAGE, cmd->name, "%s", message);
}

static int set_value(cli_command *cmd, cli_option *o, const char *shown,
                     const char *text) {
    char expected[160];
    int problem;
    switch (o->kind) {
    case CLI_STRING:
        /* An empty file name would otherwise surface much later, from
         * open() or from the library, without the flag: after a whole
         * training run, in the case of --out. */
        if (text[0] == '\0')
            return cli_error(CLI_EXIT_USAGE, cmd->name, "%s: the value is empty; expected %s",
                             shown, o->value != NULL ? o->value : "a value");
        *(const char **)o->target = text;
        return 0;
    case CLI_TEXT:
        *(const char **)o->target = text;
        return 0;
    case CLI_INT: {
        int64_t v = 0;
        problem = cli_number_int(text, (int64_t)o->min, (int64_t)o->max, &v);
        if (problem != CLI_NUMBER_OK) {
            snprintf(expected, sizeof expected, "a whole number in %.0f..%.0f", o->min,
                     o->max);
            return number_error(cmd, shown, text, problem, expected);
        }
        *(int32_t *)o->target = (int32_t)v;
        return 0;
    }
    case CLI_U64:
        problem = cli_number_u64(text, (uint64_t *)o->target);
        if (problem != CLI_NUMBER_OK)
            return number_error(cmd, shown, text, problem,
                                "a whole number in 0..18446744073709551615");
        return 0;
    case CLI_FLOAT:
        problem = cli_number_float(text, o->min, o->max, (float *)o->target);
        if (problem != CLI_NUMBER_OK) {
            snprintf(expected, sizeof expected,
                     "a decimal number in %g..%g, written like 2, 0.5 or 3e-4", o->min,
                     o->max);
            return number_error(cmd, shown, text, problem, expected);
        }
        return 0;
    default:
        return cli_error(CLI_EXIT_USAGE, cmd->name, "%s takes no value", shown);
    }
}

/* --max-input-size, which every command takes. */
static int set_input_limit(cli_command *cmd, const char *text) {
    uint64_t bytes = 0;
    const int problem = cli_number_size(text, &bytes);
    if (problem != CLI_NUMBER_OK)
        return number_error(cmd, "--max-input-size", text, problem,
                            CLI_NUMBER_SIZE_EXPECTED);
    cli_set_input_limit(bytes);
    return 0;
}

int cli_parse(cli_command *cmd, int argc, char **argv, const char **positional,
              int *n_positional) {
    *n_positional = 0;
    int options_done = 0;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!options_done && (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)) {
            cli_print_help(cmd, stdout);
            return -1;
        }
        if (!options_done && strcmp(arg, "--") == 0) {
            options_done = 1;
            continue;
        }
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (arg[0] == '\0')
                return cli_error(CLI_EXIT_USAGE, cmd->name,
                                 "the %s argument is empty (usage: tlm %s %s)",
                                 cmd->positional_name ? cmd->positional_name : "file",
                                 cmd->name, cmd->usage);
            if (*n_positional >= cmd->max_positional)
                return cli_error(CLI_EXIT_USAGE, cmd->name,
                                 "unexpected argument '%s' (see 'tlm %s --help')",
                                 arg, cmd->name);
            positional[(*n_positional)++] = arg;
            continue;
        }
        cli_option *o = NULL;
        const char *inline_value = NULL;
        char name[64];
        if (arg[1] == '-') {
            const char *eq = strchr(arg + 2, '=');
            size_t len = eq ? (size_t)(eq - (arg + 2)) : strlen(arg + 2);
            if (len < sizeof name) {
                memcpy(name, arg + 2, len);
                name[len] = '\0';
                o = cli_find_option(cmd, name);
            }
            if (eq != NULL)
                inline_value = eq + 1;
        } else if (arg[2] == '\0') {
            for (int k = 0; k < cmd->n_options; k++)
                if (cmd->options[k].short_name == arg[1])
                    o = &cmd->options[k];
        }
        if (o == NULL && arg[1] == '-' && strcmp(name, "max-input-size") == 0) {
            const char *value = inline_value;
            if (value == NULL && i + 1 >= argc)
                return cli_error(CLI_EXIT_USAGE, cmd->name,
                                 "--max-input-size needs a value (BYTES)");
            if (value == NULL)
                value = argv[++i];
            const int status = set_input_limit(cmd, value);
            if (status != 0)
                return status;
            continue;
        }
        if (o == NULL)
            return cli_error(CLI_EXIT_USAGE, cmd->name,
                             "unknown option '%s' (see 'tlm %s --help')", arg,
                             cmd->name);
        char shown[80];
        snprintf(shown, sizeof shown, "--%s", o->name);
        o->seen = 1;
        if (o->kind == CLI_FLAG) {
            if (inline_value != NULL)
                return cli_error(CLI_EXIT_USAGE, cmd->name, "%s takes no value",
                                 shown);
            *(int *)o->target = 1;
            continue;
        }
        const char *value = inline_value;
        if (value == NULL) {
            if (i + 1 >= argc)
                return cli_error(CLI_EXIT_USAGE, cmd->name,
                                 "%s needs a value (%s)", shown,
                                 o->value ? o->value : "a value");
            value = argv[++i];
        }
        int status = set_value(cmd, o, shown, value);
        if (status != 0)
            return status;
    }
    if (*n_positional < cmd->min_positional)
        return cli_error(CLI_EXIT_USAGE, cmd->name,
                         "missing %s (usage: tlm %s %s)",
                         cmd->positional_name ? cmd->positional_name : "argument",
                         cmd->name, cmd->usage);
    return 0;
}

int cli_context(const char *cmd, int32_t threads, tlm_context **ctx) {
    tlm_context_params params;
    tlm_context_params_init(&params);
    params.n_threads = threads;
    params.memory_limit = cli_memory_limit; /* --memory-limit */
    int status = tlm_context_create(ctx, &params);
    if (status != TLM_OK)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "%s", tlm_last_error());
    return 0;
}

int32_t cli_threads = 0;

void cli_warn_unknown(const char *cmd, tlm_tokenizer *tok, const char *text,
                      size_t length, const char *what) {
    const int32_t unk = tlm_tokenizer_special_id(tok, TLM_TOKEN_UNK);
    if (unk < 0 || length == 0)
        return;
    /* One id per byte is room enough for every kind but SentencePiece;
     * then once more with the room it asked for. */
    size_t room = length + 2, n = 0;
    int32_t *ids = NULL;
    int status = TLM_E_RANGE;
    for (int pass = 0; pass < 2 && status == TLM_E_RANGE; pass++) {
        free(ids);
        ids = malloc(room * sizeof *ids);
        if (ids == NULL)
            return;
        status = tlm_tokenizer_encode(tok, text, length, ids, room, &n);
        if (status == TLM_E_RANGE && n > room)
            room = n;
    }
    size_t unknown = 0;
    if (status == TLM_OK)
        for (size_t i = 0; i < n; i++)
            unknown += ids[i] == unk;
    free(ids);
    if (unknown == 0)
        return;
    const int pieces = tlm_tokenizer_kind(tok) != TLM_TOKENIZER_CHAR;
    fprintf(stderr, "tlm %s: warning: %zu %s of %s %s not in the vocabulary and "
            "map%s to <unk>\n", cmd, unknown,
            pieces ? (unknown == 1 ? "piece" : "pieces")
                   : (unknown == 1 ? "character" : "characters"),
            what, unknown == 1 ? "is" : "are", unknown == 1 ? "s" : "");
}

int cli_load_model(const char *cmd, const char *path, int need_tokenizer,
                   tlm_context **ctx, tlm_model **model) {
    *model = NULL;
    if (cli_context(cmd, cli_threads, ctx) != 0)
        return CLI_EXIT_RUNTIME;
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        tlm_context_free(*ctx);
        *ctx = NULL;
        return cli_error(CLI_EXIT_RUNTIME, cmd, "'%s' is a directory, not a model", path);
    }
    /* Every command that loads a model here only reads it: the file is
     * mapped and the parameters used in place (read-only), so a model is
     * in memory once, without the gradient buffers a trainable copy has
     * (for GPT-2 124M, 475 MiB instead of 950). tlm train loads its own. */
    tlm_model_load_params load;
    tlm_model_load_params_init(&load);
    load.memory_map = 1;
    if (tlm_model_load(model, *ctx, path, &load) != TLM_OK) {
        cli_error(CLI_EXIT_RUNTIME, cmd, "%s", tlm_last_error());
        tlm_context_free(*ctx);
        *ctx = NULL;
        return CLI_EXIT_RUNTIME;
    }
    if (need_tokenizer && tlm_model_tokenizer(*model) == NULL) {
        tlm_model_free(*model);
        tlm_context_free(*ctx);
        *model = NULL;
        *ctx = NULL;
        return cli_error(CLI_EXIT_RUNTIME, cmd,
                         "'%s' has no tokenizer (import it with "
                         "'tlm import ... --tokenizer-from MODEL.tlm')",
                         path);
    }
    return 0;
}

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Length of the valid UTF-8 character at p (1..4), or 0. */
static size_t utf8_length(const unsigned char *p, size_t left) {
    size_t n;
    uint32_t cp;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        n = 2;
        cp = p[0] & 0x1Fu;
    } else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
        n = 3;
        cp = p[0] & 0x0Fu;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        n = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (n > left)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0u) != 0x80u)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3Fu);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp == 0xFFFE || cp == 0xFFFF)
        return 0;
    return n;
}

void cli_xml_text(FILE *out, const char *text, size_t length, int visible_space) {
    const unsigned char *p = (const unsigned char *)text;
    size_t i = 0;
    while (i < length) {
        const unsigned char c = p[i];
        if (visible_space && c == ' ') {
            fputs("\xE2\x90\xA3", out); /* U+2423 OPEN BOX */
            i++;
            continue;
        }
        if (visible_space && c == '\n') {
            fputs("\xE2\x86\xB5", out); /* U+21B5 */
            i++;
            continue;
        }
        switch (c) {
        case '&': fputs("&amp;", out); i++; continue;
        case '<': fputs("&lt;", out); i++; continue;
        case '>': fputs("&gt;", out); i++; continue;
        case '"': fputs("&quot;", out); i++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7F) {
            if (c == '\t' || c == '\n')
                fputc(c, out);
            else
                fprintf(out, "\\x%02X", (unsigned)c);
            i++;
            continue;
        }
        const size_t n = utf8_length(p + i, length - i);
        if (n == 0) {
            fprintf(out, "\\x%02X", (unsigned)c);
            i++;
            continue;
        }
        fwrite(p + i, 1, n, out);
        i += n;
    }
}

void cli_format_duration(char *buf, size_t size, double seconds) {
    if (!(seconds >= 0) || seconds > 1e7) {
        snprintf(buf, size, "?");
        return;
    }
    const long s = (long)(seconds + 0.5);
    if (s >= 3600)
        snprintf(buf, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
    else if (s >= 60)
        snprintf(buf, size, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(buf, size, "%lds", s);
}
