#include "numbers.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int is_digit(char c) { return c >= '0' && c <= '9'; }

static int is_space(char c) {
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Digits from p: how many. */
static size_t count_digits(const char *p) {
    size_t n = 0;
    while (is_digit(p[n]))
        n++;
    return n;
}

/* The problem every kind shares: empty, white space around it, or a form
 * strtod would take but a decimal is not (hexadecimal, inf, nan). */
static int common_problem(const char *text) {
    if (text == NULL || text[0] == '\0')
        return CLI_NUMBER_EMPTY;
    if (is_space(text[0]) || is_space(text[strlen(text) - 1]))
        return CLI_NUMBER_SPACE;
    const char *p = text + (text[0] == '+' || text[0] == '-');
    if (p[0] == '0' && lower(p[1]) == 'x')
        return CLI_NUMBER_HEX;
    /* "inf", "infinity", "nan", "nan(...)" in any case: p[1] is read
     * only when p[0] is a letter, p[2] only when p[1] is one. */
    if ((lower(p[0]) == 'i' && lower(p[1]) == 'n' && lower(p[2]) == 'f') ||
        (lower(p[0]) == 'n' && lower(p[1]) == 'a' && lower(p[2]) == 'n'))
        return CLI_NUMBER_NOT_FINITE;
    return CLI_NUMBER_OK;
}

int cli_number_int(const char *text, int64_t min, int64_t max, int64_t *value) {
    int problem = common_problem(text);
    if (problem != CLI_NUMBER_OK)
        return problem;
    const char *p = text + (text[0] == '+' || text[0] == '-');
    const size_t digits = count_digits(p);
    if (digits == 0 || p[digits] != '\0')
        return CLI_NUMBER_SYNTAX;
    errno = 0;
    char *end = NULL;
    const long long v = strtoll(text, &end, 10);
    if (errno == ERANGE)
        return CLI_NUMBER_OVERFLOW;
    if (errno != 0 || *end != '\0')
        return CLI_NUMBER_SYNTAX;
    if (v < min || v > max)
        return CLI_NUMBER_RANGE;
    *value = (int64_t)v;
    return CLI_NUMBER_OK;
}

int cli_number_u64(const char *text, uint64_t *value) {
    int problem = common_problem(text);
    if (problem != CLI_NUMBER_OK)
        return problem;
    if (text[0] == '-')
        return CLI_NUMBER_RANGE; /* strtoull would wrap "-1" around */
    const char *p = text + (text[0] == '+');
    const size_t digits = count_digits(p);
    if (digits == 0 || p[digits] != '\0')
        return CLI_NUMBER_SYNTAX;
    errno = 0;
    char *end = NULL;
    const unsigned long long v = strtoull(p, &end, 10);
    if (errno == ERANGE || v > UINT64_MAX)
        return CLI_NUMBER_OVERFLOW;
    if (errno != 0 || *end != '\0')
        return CLI_NUMBER_SYNTAX;
    *value = (uint64_t)v;
    return CLI_NUMBER_OK;
}

/* The length of a decimal number at p: [+-]?(D+(.D*)?|.D+)([eE][+-]?D+)?,
 * or 0. */
static size_t scan_decimal(const char *p) {
    size_t n = (p[0] == '+' || p[0] == '-');
    const size_t whole = count_digits(p + n);
    n += whole;
    size_t fraction = 0;
    if (p[n] == '.') {
        fraction = count_digits(p + n + 1);
        n += 1 + fraction;
    }
    if (whole == 0 && fraction == 0)
        return 0;
    if (p[n] == 'e' || p[n] == 'E') {
        size_t e = n + 1;
        e += (p[e] == '+' || p[e] == '-');
        const size_t exponent = count_digits(p + e);
        if (exponent == 0)
            return 0;
        n = e + exponent;
    }
    return n;
}

int cli_number_float(const char *text, double min, double max, float *value) {
    int problem = common_problem(text);
    if (problem != CLI_NUMBER_OK)
        return problem;
    const size_t length = scan_decimal(text);
    if (length == 0 || text[length] != '\0')
        return CLI_NUMBER_SYNTAX;
    errno = 0;
    char *end = NULL;
    const double v = strtod(text, &end);
    if (*end != '\0')
        return CLI_NUMBER_SYNTAX;
    /* ERANGE: beyond a double (HUGE_VAL) or below a normal double. */
    if (errno == ERANGE)
        return fabs(v) >= 1.0 ? CLI_NUMBER_OVERFLOW : CLI_NUMBER_UNDERFLOW;
    if (fabs(v) > (double)FLT_MAX)
        return v > max || v < min ? CLI_NUMBER_RANGE : CLI_NUMBER_OVERFLOW;
    /* Not zero as written, but zero or a denormal as a float: 1e-50 would
     * silently become 0 (a learning rate of 0 trains nothing). */
    if (v != 0.0 && fabs(v) < (double)FLT_MIN)
        return CLI_NUMBER_UNDERFLOW;
    if (v < min || v > max)
        return CLI_NUMBER_RANGE;
    *value = (float)v;
    return CLI_NUMBER_OK;
}

int cli_number_size(const char *text, uint64_t *bytes) {
    int problem = common_problem(text);
    if (problem != CLI_NUMBER_OK)
        return problem;
    const size_t digits = count_digits(text);
    if (digits == 0)
        return CLI_NUMBER_SYNTAX;
    const char *suffix = text + digits;
    unsigned shift = 0;
    switch (lower(suffix[0])) {
    case '\0': break;
    case 'k': shift = 10; break;
    case 'm': shift = 20; break;
    case 'g': shift = 30; break;
    case 't': shift = 40; break;
    default: return CLI_NUMBER_SYNTAX;
    }
    if (shift != 0) { /* K, Ki, KB or KiB (and so on), in any case */
        const char *rest = suffix + 1;
        rest += lower(rest[0]) == 'i';
        rest += lower(rest[0]) == 'b';
        if (rest[0] != '\0')
            return CLI_NUMBER_SYNTAX;
    }
    errno = 0;
    char *end = NULL;
    const unsigned long long v = strtoull(text, &end, 10);
    const uint64_t limit = (uint64_t)1 << 62;
    if (errno == ERANGE || v > (limit >> shift))
        return CLI_NUMBER_OVERFLOW;
    if (end != suffix)
        return CLI_NUMBER_SYNTAX;
    if (v == 0)
        return CLI_NUMBER_RANGE;
    *bytes = (uint64_t)v << shift;
    return CLI_NUMBER_OK;
}

void cli_number_message(char *buf, size_t size, const char *what, const char *text,
                        int problem, const char *expected) {
    const char *shown = text != NULL ? text : "";
    switch (problem) {
    case CLI_NUMBER_EMPTY:
        snprintf(buf, size, "%s: the value is empty; expected %s", what, expected);
        break;
    case CLI_NUMBER_SPACE:
        snprintf(buf, size, "%s: '%s' has white space around it; expected %s", what,
                 shown, expected);
        break;
    case CLI_NUMBER_HEX:
        snprintf(buf, size, "%s: '%s' is hexadecimal; expected %s", what, shown, expected);
        break;
    case CLI_NUMBER_NOT_FINITE:
        snprintf(buf, size, "%s: '%s' is not a finite number; expected %s", what, shown,
                 expected);
        break;
    case CLI_NUMBER_OVERFLOW:
        snprintf(buf, size, "%s: '%s' is too large (it overflows); expected %s", what,
                 shown, expected);
        break;
    case CLI_NUMBER_UNDERFLOW:
        snprintf(buf, size,
                 "%s: '%s' is too small (it underflows to 0: the smallest float is "
                 "about 1.2e-38); expected %s",
                 what, shown, expected);
        break;
    case CLI_NUMBER_RANGE:
        snprintf(buf, size, "%s: '%s' is out of range; expected %s", what, shown, expected);
        break;
    default:
        snprintf(buf, size, "%s: '%s' is not a valid value; expected %s", what, shown,
                 expected);
        break;
    }
}

size_t cli_number_json(const char *text, double *value) {
    size_t n = text[0] == '-';
    if (text[n] == '0')
        n++;
    else if (text[n] >= '1' && text[n] <= '9')
        n += count_digits(text + n);
    else
        return 0;
    if (text[n] == '.') {
        const size_t fraction = count_digits(text + n + 1);
        if (fraction == 0)
            return 0;
        n += 1 + fraction;
    }
    if (text[n] == 'e' || text[n] == 'E') {
        size_t e = n + 1;
        e += (text[e] == '+' || text[e] == '-');
        const size_t exponent = count_digits(text + e);
        if (exponent == 0)
            return 0;
        n = e + exponent;
    }
    /* strtod reads at most the n characters checked above: the grammar
     * it accepts is a superset, and the character after them is not one
     * it could continue with. */
    errno = 0;
    char *end = NULL;
    const double v = strtod(text, &end);
    if ((size_t)(end - text) != n || (errno == ERANGE && fabs(v) >= 1.0))
        return 0;
    *value = v;
    return n;
}
