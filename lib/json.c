#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

/* ------------------------------------------------------------------------
 * Memory: the tree is carved from chunks owned by the document; elements
 * of the array or object being parsed wait on a scratch stack and are
 * copied into one contiguous block when it closes.
 */

typedef struct pool_chunk {
    struct pool_chunk *next;
    size_t capacity; /* bytes after the header */
    size_t used;
    size_t bytes; /* allocated size, header included */
} pool_chunk;

#define POOL_ALIGN 16
#define POOL_HEADER \
    ((sizeof(pool_chunk) + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1))
#define POOL_FIRST_CHUNK ((size_t)4096)
#define POOL_LARGEST_CHUNK ((size_t)1 << 20)

struct tlmi_json_doc {
    tlmi_host *host;
    pool_chunk *chunks;
    size_t next_chunk; /* capacity of the next chunk */
    tlmi_json_value root;
};

static void *pool_alloc(tlmi_json_doc *doc, size_t bytes) {
    if (bytes == 0)
        return NULL;
    if (bytes > SIZE_MAX / 2)
        return NULL;
    size_t need = (bytes + POOL_ALIGN - 1) & ~(size_t)(POOL_ALIGN - 1);
    pool_chunk *chunk = doc->chunks;
    if (chunk == NULL || chunk->capacity - chunk->used < need) {
        size_t capacity = doc->next_chunk;
        if (capacity < need)
            capacity = need;
        else if (doc->next_chunk < POOL_LARGEST_CHUNK)
            doc->next_chunk *= 2;
        size_t total = POOL_HEADER + capacity;
        pool_chunk *fresh = tlmi_host_alloc(doc->host, total, POOL_ALIGN);
        if (fresh == NULL)
            return NULL;
        fresh->next = doc->chunks;
        fresh->capacity = capacity;
        fresh->used = 0;
        fresh->bytes = total;
        doc->chunks = fresh;
        chunk = fresh;
    }
    void *block = (unsigned char *)chunk + POOL_HEADER + chunk->used;
    chunk->used += need;
    return block;
}

/* ------------------------------------------------------------------------
 * The parser.
 */

typedef struct parser {
    tlmi_host *host;
    tlmi_json_doc *doc;
    const unsigned char *text;
    size_t size;
    size_t pos;
    int32_t max_depth;
    tlmi_json_member *stack; /* scratch: elements of open containers */
    size_t stack_count;
    size_t stack_capacity;
} parser;

/* How the byte at `pos` reads in a message: 'x', byte 0xNN or end of
 * input. */
static const char *describe_at(const parser *ps, size_t pos, char *buf,
                               size_t size) {
    if (pos >= ps->size)
        return "end of input";
    unsigned char c = ps->text[pos];
    if (c > 0x20 && c < 0x7f)
        snprintf(buf, size, "'%c'", (char)c);
    else
        snprintf(buf, size, "byte 0x%02x", (unsigned)c);
    return buf;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int fail_at(parser *ps, size_t pos, const char *format, ...) {
    char what[256];
    va_list args;
    va_start(args, format);
    vsnprintf(what, sizeof what, format, args);
    va_end(args);
    return tlmi_fail(ps->host, TLM_E_FORMAT, "json: %s at byte %zu", what,
                     pos);
}

/* "json: WHAT at byte N (NOTE)". */
static int fail_note(parser *ps, size_t pos, const char *what,
                     const char *note) {
    return tlmi_fail(ps->host, TLM_E_FORMAT, "json: %s at byte %zu (%s)",
                     what, pos, note);
}

/* "json: expected X at byte N (found Y)". */
static int fail_expected(parser *ps, const char *expected) {
    char buf[24];
    const char *found = describe_at(ps, ps->pos, buf, sizeof buf);
    return tlmi_fail(ps->host, TLM_E_FORMAT,
                     "json: expected %s at byte %zu (found %s)", expected,
                     ps->pos, found);
}

static int fail_nomem(parser *ps, size_t bytes) {
    return tlmi_fail(ps->host, TLM_E_NOMEM,
                     "json: out of memory at byte %zu (allocating %zu bytes)",
                     ps->pos, bytes);
}

static void skip_space(parser *ps) {
    while (ps->pos < ps->size) {
        unsigned char c = ps->text[ps->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        ps->pos++;
    }
}

static int peek(const parser *ps) {
    return ps->pos < ps->size ? ps->text[ps->pos] : -1;
}

static int stack_push(parser *ps, const tlmi_json_member *member) {
    if (ps->stack_count == ps->stack_capacity) {
        size_t capacity = ps->stack_capacity ? 2 * ps->stack_capacity : 64;
        if (capacity > SIZE_MAX / sizeof *ps->stack)
            return fail_nomem(ps, SIZE_MAX);
        tlmi_json_member *grown = tlmi_host_alloc(
            ps->host, capacity * sizeof *grown, _Alignof(tlmi_json_member));
        if (grown == NULL)
            return fail_nomem(ps, capacity * sizeof *grown);
        if (ps->stack_count > 0)
            memcpy(grown, ps->stack, ps->stack_count * sizeof *grown);
        tlmi_host_free(ps->host, ps->stack,
                       ps->stack_capacity * sizeof *ps->stack);
        ps->stack = grown;
        ps->stack_capacity = capacity;
    }
    ps->stack[ps->stack_count++] = *member;
    return TLM_OK;
}

/* ---- Strings ---- */

static int hex_value(int c) {
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Four hex digits at `pos`, or -1. */
static long read_hex4(const parser *ps, size_t pos) {
    if (pos > ps->size || ps->size - pos < 4)
        return -1;
    long value = 0;
    for (size_t i = 0; i < 4; i++) {
        int digit = hex_value(ps->text[pos + i]);
        if (digit < 0)
            return -1;
        value = value * 16 + digit;
    }
    return value;
}

/* Length of the valid UTF-8 sequence at s[0..avail), or 0 (RFC 3629:
 * no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_sequence(const unsigned char *s, size_t avail) {
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t length;
    unsigned char low = 0x80, high = 0xbf; /* range of the second byte */
    if (c >= 0xc2 && c <= 0xdf) {
        length = 2;
    } else if (c >= 0xe0 && c <= 0xef) {
        length = 3;
        if (c == 0xe0)
            low = 0xa0;
        else if (c == 0xed)
            high = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        length = 4;
        if (c == 0xf0)
            low = 0x90;
        else if (c == 0xf4)
            high = 0x8f;
    } else {
        return 0;
    }
    if (avail < length)
        return 0;
    if (s[1] < low || s[1] > high)
        return 0;
    for (size_t i = 2; i < length; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return length;
}

int tlmi_json_utf8_valid(const char *bytes, size_t length, size_t *bad) {
    const unsigned char *u = (const unsigned char *)bytes;
    for (size_t i = 0; i < length;) {
        size_t seq = utf8_sequence(u + i, length - i);
        if (seq == 0) {
            if (bad != NULL)
                *bad = i;
            return 0;
        }
        i += seq;
    }
    return 1;
}

static size_t utf8_encode(unsigned long cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xc0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xe0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        out[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    out[0] = (char)(0xf0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    out[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/*
 * One pass over the string whose opening quote is at ps->pos. With
 * out == NULL it validates, reporting the first error, and sets *length
 * to the decoded size; with out it decodes (the string is known valid).
 * Either way *end is the position after the closing quote.
 */
static int string_pass(parser *ps, char *out, size_t *length, size_t *end) {
    const unsigned char *t = ps->text;
    size_t start = ps->pos;
    size_t i = start + 1;
    size_t n = 0;
    for (;;) {
        if (i >= ps->size)
            return tlmi_fail(ps->host, TLM_E_FORMAT,
                             "json: unterminated string at byte %zu (it "
                             "starts at byte %zu)",
                             i, start);
        unsigned char c = t[i];
        if (c == '"')
            break;
        if (c < 0x20)
            return fail_at(ps, i,
                           "unescaped control character 0x%02x in a string",
                           (unsigned)c);
        if (c >= 0x80) {
            size_t seq = utf8_sequence(t + i, ps->size - i);
            if (seq == 0)
            {
                char note[32];
                snprintf(note, sizeof note, "byte 0x%02x", (unsigned)c);
                return fail_note(ps, i, "invalid UTF-8 in a string", note);
            }
            if (out != NULL)
                memcpy(out + n, t + i, seq);
            n += seq;
            i += seq;
            continue;
        }
        if (c != '\\') {
            if (out != NULL)
                out[n] = (char)c;
            n++;
            i++;
            continue;
        }
        /* An escape. */
        if (i + 1 >= ps->size)
            return tlmi_fail(ps->host, TLM_E_FORMAT,
                             "json: unterminated string at byte %zu (it "
                             "starts at byte %zu)",
                             i + 1, start);
        unsigned char e = t[i + 1];
        char simple = 0;
        switch (e) {
        case '"': simple = '"'; break;
        case '\\': simple = '\\'; break;
        case '/': simple = '/'; break;
        case 'b': simple = '\b'; break;
        case 'f': simple = '\f'; break;
        case 'n': simple = '\n'; break;
        case 'r': simple = '\r'; break;
        case 't': simple = '\t'; break;
        case 'u': break;
        default:
            if (e > 0x20 && e < 0x7f)
                return fail_at(ps, i, "invalid escape '\\%c' in a string",
                               (char)e);
            return fail_at(ps, i,
                           "invalid escape: '\\' followed by byte 0x%02x "
                           "in a string",
                           (unsigned)e);
        }
        if (e != 'u') {
            if (out != NULL)
                out[n] = simple;
            n++;
            i += 2;
            continue;
        }
        long cp = read_hex4(ps, i + 2);
        if (cp < 0)
            return fail_note(ps, i, "invalid \\u escape",
                             "expected 4 hex digits");
        size_t consumed = 6;
        if (cp >= 0xdc00 && cp <= 0xdfff)
            return fail_at(ps, i, "unpaired low surrogate \\u%04lX", cp);
        if (cp >= 0xd800 && cp <= 0xdbff) {
            long low = -1;
            if (i + 7 < ps->size && t[i + 6] == '\\' && t[i + 7] == 'u')
                low = read_hex4(ps, i + 8);
            if (low < 0xdc00 || low > 0xdfff)
            {
                char what[64];
                snprintf(what, sizeof what, "unpaired high surrogate \\u%04lX",
                         cp);
                return fail_note(ps, i, what,
                                 "expected a \\uDC00-\\uDFFF escape after it");
            }
            cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
            consumed = 12;
        }
        char utf8[4];
        size_t bytes = utf8_encode((unsigned long)cp, utf8);
        if (out != NULL)
            memcpy(out + n, utf8, bytes);
        n += bytes;
        i += consumed;
    }
    *length = n;
    *end = i + 1;
    return TLM_OK;
}

static int parse_string(parser *ps, const char **bytes, size_t *length) {
    size_t n = 0, end = 0;
    int status = string_pass(ps, NULL, &n, &end);
    if (status != TLM_OK)
        return status;
    char *copy = pool_alloc(ps->doc, n + 1);
    if (copy == NULL)
        return fail_nomem(ps, n + 1);
    string_pass(ps, copy, &n, &end);
    copy[n] = '\0';
    *bytes = copy;
    *length = n;
    ps->pos = end;
    return TLM_OK;
}

/* ---- Numbers ---- */

/* strtod on `length` characters of JSON number text, whatever the C
 * locale's decimal point. Returns 0 on success. */
static int number_to_double(const char *text, size_t length, double *out) {
    char buf[TLMI_JSON_MAX_NUMBER_CHARS + 16];
    if (length > TLMI_JSON_MAX_NUMBER_CHARS)
        return -1;
    memcpy(buf, text, length);
    buf[length] = '\0';
    char *end = NULL;
    double value = strtod(buf, &end);
    if (end != buf + length) {
        /* The locale's decimal point is not '.': substitute it. */
        const char *point = localeconv()->decimal_point;
        size_t point_length = strlen(point);
        const char *dot = memchr(text, '.', length);
        if (dot == NULL || point_length == 0 ||
            length - 1 + point_length > sizeof buf - 1)
            return -1;
        size_t before = (size_t)(dot - text);
        memcpy(buf, text, before);
        memcpy(buf + before, point, point_length);
        memcpy(buf + before + point_length, dot + 1, length - before - 1);
        buf[length - 1 + point_length] = '\0';
        value = strtod(buf, &end);
        if (end != buf + length - 1 + point_length)
            return -1;
    }
    *out = value;
    return 0;
}

static int is_digit(int c) { return c >= '0' && c <= '9'; }

static int parse_number(parser *ps, tlmi_json_value *value) {
    const unsigned char *t = ps->text;
    size_t start = ps->pos;
    size_t i = start;
    int negative = 0, plain = 1;
    if (i < ps->size && t[i] == '-') {
        negative = 1;
        i++;
    }
    if (i >= ps->size || !is_digit(t[i])) {
        ps->pos = i;
        return fail_expected(ps, "a digit after '-'");
    }
    /* Integer part, accumulated exactly while it fits in an int64. */
    uint64_t magnitude = 0;
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    int fits = 1;
    if (t[i] == '0') {
        i++;
        if (i < ps->size && is_digit(t[i]))
            return fail_at(ps, i - 1, "leading zeros are not allowed in a "
                                      "number");
    } else {
        while (i < ps->size && is_digit(t[i])) {
            uint64_t digit = (uint64_t)(t[i] - '0');
            if (magnitude > (limit - digit) / 10)
                fits = 0;
            else
                magnitude = magnitude * 10 + digit;
            i++;
        }
    }
    if (i < ps->size && t[i] == '.') {
        plain = 0;
        i++;
        if (i >= ps->size || !is_digit(t[i])) {
            ps->pos = i;
            return fail_expected(ps, "a digit after the decimal point");
        }
        while (i < ps->size && is_digit(t[i]))
            i++;
    }
    if (i < ps->size && (t[i] == 'e' || t[i] == 'E')) {
        plain = 0;
        i++;
        if (i < ps->size && (t[i] == '+' || t[i] == '-'))
            i++;
        if (i >= ps->size || !is_digit(t[i])) {
            ps->pos = i;
            return fail_expected(ps, "a digit in the exponent");
        }
        while (i < ps->size && is_digit(t[i]))
            i++;
    }
    size_t length = i - start;
    if (length > TLMI_JSON_MAX_NUMBER_CHARS)
        return fail_at(ps, start, "number longer than %d characters",
                       TLMI_JSON_MAX_NUMBER_CHARS);
    double real = 0.0;
    if (number_to_double((const char *)t + start, length, &real) != 0)
        return fail_at(ps, start, "number '%.*s' could not be converted",
                       (int)(length > 40 ? 40 : length),
                       (const char *)t + start);
    if (isinf(real))
        return fail_at(ps, start, "number '%.*s%s' is too large for a double",
                       (int)(length > 40 ? 40 : length),
                       (const char *)t + start, length > 40 ? "..." : "");
    value->type = TLMI_JSON_NUMBER;
    value->as.number.real = real;
    value->as.number.integer = 0;
    value->is_int64 = 0;
    if (plain && fits) {
        value->is_int64 = 1;
        value->as.number.integer =
            negative ? (magnitude == (uint64_t)INT64_MAX + 1
                            ? INT64_MIN
                            : -(int64_t)magnitude)
                     : (int64_t)magnitude;
    } else if (!plain && real == floor(real) && fabs(real) <= 9007199254740992.0) {
        value->is_int64 = 1;
        value->as.number.integer = (int64_t)real;
    }
    ps->pos = i;
    return TLM_OK;
}

/* ---- Values ---- */

static int parse_value(parser *ps, int32_t depth, tlmi_json_value *value);

static int literal(parser *ps, const char *word, size_t length) {
    if (ps->size - ps->pos < length ||
        memcmp(ps->text + ps->pos, word, length) != 0) {
        return fail_at(ps, ps->pos, "expected '%s'", word);
    }
    ps->pos += length;
    return TLM_OK;
}

static int compare_members(const void *a, const void *b) {
    const tlmi_json_member *x = *(const tlmi_json_member *const *)a;
    const tlmi_json_member *y = *(const tlmi_json_member *const *)b;
    size_t n = x->key_length < y->key_length ? x->key_length : y->key_length;
    int c = n ? memcmp(x->key, y->key, n) : 0;
    if (c != 0)
        return c;
    if (x->key_length != y->key_length)
        return x->key_length < y->key_length ? -1 : 1;
    /* Equal keys (an error) in document order, to report the first. */
    return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

/* A key for a message: at most 64 bytes, control characters as '?'. */
static void printable_key(const tlmi_json_member *m, char *buf, size_t size) {
    size_t n = m->key_length < size - 4 ? m->key_length : size - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)m->key[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < m->key_length) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
}

/* Moves the `count` elements on top of the stack into the tree. */
static int close_container(parser *ps, size_t base, tlmi_json_value *value,
                           int is_object) {
    size_t count = ps->stack_count - base;
    /* (The stack is NULL until the first element is pushed.) */
    const tlmi_json_member *top = count > 0 ? ps->stack + base : NULL;
    if (!is_object) {
        value->type = TLMI_JSON_ARRAY;
        value->as.array.items = NULL;
        value->as.array.count = count;
        if (count == 0)
            return TLM_OK;
        tlmi_json_value *items = pool_alloc(ps->doc, count * sizeof *items);
        if (items == NULL)
            return fail_nomem(ps, count * sizeof *items);
        for (size_t i = 0; i < count; i++)
            items[i] = top[i].value;
        value->as.array.items = items;
        ps->stack_count = base;
        return TLM_OK;
    }
    value->type = TLMI_JSON_OBJECT;
    value->as.object.members = NULL;
    value->as.object.sorted = NULL;
    value->as.object.count = count;
    if (count == 0)
        return TLM_OK;
    tlmi_json_member *members = pool_alloc(ps->doc, count * sizeof *members);
    const tlmi_json_member **sorted =
        members ? pool_alloc(ps->doc, count * sizeof *sorted) : NULL;
    if (sorted == NULL)
        return fail_nomem(ps, count * (sizeof *members + sizeof *sorted));
    memcpy(members, top, count * sizeof *members);
    for (size_t i = 0; i < count; i++)
        sorted[i] = &members[i];
    qsort(sorted, count, sizeof *sorted, compare_members);
    /* Duplicates sit side by side; report the one that comes first in
     * the document. */
    const tlmi_json_member *duplicate = NULL, *original = NULL;
    for (size_t i = 1; i < count; i++) {
        const tlmi_json_member *a = sorted[i - 1], *b = sorted[i];
        if (a->key_length == b->key_length &&
            (a->key_length == 0 ||
             memcmp(a->key, b->key, a->key_length) == 0) &&
            (duplicate == NULL || b->key_offset < duplicate->key_offset)) {
            duplicate = b;
            original = a;
        }
    }
    if (duplicate != NULL) {
        char key[72];
        printable_key(duplicate, key, sizeof key);
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "json: duplicate key \"%s\" at byte %zu (first at "
                         "byte %zu)",
                         key, duplicate->key_offset, original->key_offset);
    }
    value->as.object.members = members;
    value->as.object.sorted = sorted;
    ps->stack_count = base;
    return TLM_OK;
}

static int parse_array(parser *ps, int32_t depth, tlmi_json_value *value) {
    size_t base = ps->stack_count;
    ps->pos++; /* '[' */
    skip_space(ps);
    if (peek(ps) == ']') {
        ps->pos++;
        return close_container(ps, base, value, 0);
    }
    for (;;) {
        tlmi_json_member element;
        memset(&element, 0, sizeof element);
        int status = parse_value(ps, depth, &element.value);
        if (status == TLM_OK)
            status = stack_push(ps, &element);
        if (status != TLM_OK)
            return status;
        skip_space(ps);
        int c = peek(ps);
        if (c == ']') {
            ps->pos++;
            return close_container(ps, base, value, 0);
        }
        if (c != ',')
            return fail_expected(ps, "',' or ']' after array element");
        ps->pos++;
        skip_space(ps);
        if (peek(ps) == ']')
            return fail_expected(ps, "a value after ','");
    }
}

static int parse_object(parser *ps, int32_t depth, tlmi_json_value *value) {
    size_t base = ps->stack_count;
    ps->pos++; /* '{' */
    skip_space(ps);
    if (peek(ps) == '}') {
        ps->pos++;
        return close_container(ps, base, value, 1);
    }
    int after_comma = 0;
    for (;;) {
        if (peek(ps) != '"')
            return fail_expected(ps, after_comma ? "a string key after ','"
                                                 : "a string key or '}'");
        tlmi_json_member member;
        memset(&member, 0, sizeof member);
        member.key_offset = ps->pos;
        int status = parse_string(ps, &member.key, &member.key_length);
        if (status != TLM_OK)
            return status;
        skip_space(ps);
        if (peek(ps) != ':')
            return fail_expected(ps, "':' after object key");
        ps->pos++;
        skip_space(ps);
        status = parse_value(ps, depth, &member.value);
        if (status == TLM_OK)
            status = stack_push(ps, &member);
        if (status != TLM_OK)
            return status;
        skip_space(ps);
        int c = peek(ps);
        if (c == '}') {
            ps->pos++;
            return close_container(ps, base, value, 1);
        }
        if (c != ',')
            return fail_expected(ps, "',' or '}' after object member");
        ps->pos++;
        skip_space(ps);
        after_comma = 1;
    }
}

/* `depth` counts the containers around this value. */
static int parse_value(parser *ps, int32_t depth, tlmi_json_value *value) {
    skip_space(ps);
    value->offset = ps->pos;
    value->is_int64 = 0;
    int c = peek(ps);
    switch (c) {
    case '{':
    case '[':
        if (depth >= ps->max_depth)
            return fail_at(ps, ps->pos, "nesting deeper than %d levels",
                           (int)ps->max_depth);
        return c == '{' ? parse_object(ps, depth + 1, value)
                        : parse_array(ps, depth + 1, value);
    case '"':
        value->type = TLMI_JSON_STRING;
        return parse_string(ps, &value->as.string.bytes,
                            &value->as.string.length);
    case 't':
        value->type = TLMI_JSON_BOOL;
        value->as.boolean = 1;
        return literal(ps, "true", 4);
    case 'f':
        value->type = TLMI_JSON_BOOL;
        value->as.boolean = 0;
        return literal(ps, "false", 5);
    case 'n':
        value->type = TLMI_JSON_NULL;
        return literal(ps, "null", 4);
    default:
        if (c == '-' || is_digit(c))
            return parse_number(ps, value);
        return fail_expected(ps, "a value");
    }
}

int tlmi_json_parse(tlmi_host *host, const char *text, size_t size,
                    const tlmi_json_limits *limits, tlmi_json_doc **out) {
    if (out == NULL)
        return tlmi_fail(host, TLM_E_INVALID, "json: out is NULL");
    *out = NULL;
    if (text == NULL && size > 0)
        return tlmi_fail(host, TLM_E_INVALID, "json: text is NULL");
    size_t max_bytes = TLMI_JSON_DEFAULT_MAX_BYTES;
    int32_t max_depth = TLMI_JSON_DEFAULT_MAX_DEPTH;
    if (limits != NULL) {
        if (limits->max_bytes != 0)
            max_bytes = limits->max_bytes;
        if (limits->max_depth != 0)
            max_depth = limits->max_depth;
    }
    if (max_depth < 1 || max_depth > TLMI_JSON_MAX_DEPTH_LIMIT)
        return tlmi_fail(host, TLM_E_INVALID,
                         "json: max_depth %d is outside 1..%d",
                         (int)max_depth, TLMI_JSON_MAX_DEPTH_LIMIT);
    if (size > max_bytes)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "json: the document is %zu bytes, more than the "
                         "limit of %zu",
                         size, max_bytes);

    tlmi_json_doc *doc = tlmi_host_alloc(host, sizeof *doc, _Alignof(tlmi_json_doc));
    if (doc == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "json: out of memory (allocating %zu bytes)",
                         sizeof *doc);
    memset(doc, 0, sizeof *doc);
    doc->host = host;
    /* Small documents need one small chunk; large ones start bigger. */
    doc->next_chunk = POOL_FIRST_CHUNK;
    while (doc->next_chunk < size && doc->next_chunk < POOL_LARGEST_CHUNK)
        doc->next_chunk *= 2;

    parser ps;
    memset(&ps, 0, sizeof ps);
    ps.host = host;
    ps.doc = doc;
    ps.text = (const unsigned char *)text;
    ps.size = size;
    ps.max_depth = max_depth;

    int status;
    if (size >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
        status = fail_at(&ps, 0, "byte order mark is not allowed");
    else
        status = parse_value(&ps, 0, &doc->root);
    if (status == TLM_OK) {
        skip_space(&ps);
        if (ps.pos < ps.size) {
            char buf[24], note[40];
            snprintf(note, sizeof note, "found %s",
                     describe_at(&ps, ps.pos, buf, sizeof buf));
            status = fail_note(&ps, ps.pos, "unexpected data after the document",
                               note);
        }
    }
    tlmi_host_free(host, ps.stack, ps.stack_capacity * sizeof *ps.stack);
    if (status != TLM_OK) {
        tlmi_json_free(doc);
        return status;
    }
    *out = doc;
    return TLM_OK;
}

const tlmi_json_value *tlmi_json_root(const tlmi_json_doc *doc) {
    return doc ? &doc->root : NULL;
}

void tlmi_json_free(tlmi_json_doc *doc) {
    if (doc == NULL)
        return;
    tlmi_host *host = doc->host;
    pool_chunk *chunk = doc->chunks;
    while (chunk != NULL) {
        pool_chunk *next = chunk->next;
        tlmi_host_free(host, chunk, chunk->bytes);
        chunk = next;
    }
    tlmi_host_free(host, doc, sizeof *doc);
}

/* ------------------------------------------------------------------------
 * Accessors.
 */

const char *tlmi_json_type_name(int32_t type) {
    switch (type) {
    case TLMI_JSON_NULL: return "null";
    case TLMI_JSON_BOOL: return "boolean";
    case TLMI_JSON_NUMBER: return "number";
    case TLMI_JSON_STRING: return "string";
    case TLMI_JSON_ARRAY: return "array";
    case TLMI_JSON_OBJECT: return "object";
    default: return "?";
    }
}

const tlmi_json_value *tlmi_json_object_get_n(const tlmi_json_value *object,
                                              const char *key, size_t length) {
    if (object == NULL || object->type != TLMI_JSON_OBJECT || key == NULL)
        return NULL;
    size_t lo = 0, hi = object->as.object.count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const tlmi_json_member *m = object->as.object.sorted[mid];
        size_t n = m->key_length < length ? m->key_length : length;
        int c = n ? memcmp(m->key, key, n) : 0;
        if (c == 0 && m->key_length != length)
            c = m->key_length < length ? -1 : 1;
        if (c == 0)
            return &m->value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const tlmi_json_value *tlmi_json_object_get(const tlmi_json_value *object,
                                            const char *key) {
    return key ? tlmi_json_object_get_n(object, key, strlen(key)) : NULL;
}

const tlmi_json_member *tlmi_json_object_at(const tlmi_json_value *object,
                                            size_t index) {
    if (object == NULL || object->type != TLMI_JSON_OBJECT ||
        index >= object->as.object.count)
        return NULL;
    return &object->as.object.members[index];
}

const tlmi_json_value *tlmi_json_array_at(const tlmi_json_value *array,
                                          size_t index) {
    if (array == NULL || array->type != TLMI_JSON_ARRAY ||
        index >= array->as.array.count)
        return NULL;
    return &array->as.array.items[index];
}

size_t tlmi_json_count(const tlmi_json_value *value) {
    if (value == NULL)
        return 0;
    if (value->type == TLMI_JSON_ARRAY)
        return value->as.array.count;
    if (value->type == TLMI_JSON_OBJECT)
        return value->as.object.count;
    return 0;
}

const char *tlmi_json_string(const tlmi_json_value *value, size_t *length) {
    if (value == NULL || value->type != TLMI_JSON_STRING)
        return NULL;
    if (length != NULL)
        *length = value->as.string.length;
    return value->as.string.bytes;
}

static int expect_type(tlmi_host *host, const tlmi_json_value *value,
                       const char *what, int32_t type, const char *expected) {
    if (what == NULL)
        what = "json value";
    if (value == NULL)
        return tlmi_fail(host, TLM_E_FORMAT, "%s: missing (expected %s)",
                         what, expected);
    if (value->type != type)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: expected %s, found %s %s at byte %zu", what,
                         expected,
                         value->type == TLMI_JSON_ARRAY ||
                                 value->type == TLMI_JSON_OBJECT
                             ? "an"
                             : "a",
                         tlmi_json_type_name(value->type), value->offset);
    return TLM_OK;
}

int tlmi_json_get_double(tlmi_host *host, const tlmi_json_value *value,
                         const char *what, double *out) {
    int status = expect_type(host, value, what, TLMI_JSON_NUMBER, "a number");
    if (status != TLM_OK)
        return status;
    *out = value->as.number.real;
    return TLM_OK;
}

int tlmi_json_get_int64(tlmi_host *host, const tlmi_json_value *value,
                        const char *what, int64_t min, int64_t max,
                        int64_t *out) {
    int status = expect_type(host, value, what, TLMI_JSON_NUMBER, "an integer");
    if (status != TLM_OK)
        return status;
    if (what == NULL)
        what = "json value";
    if (!value->is_int64) {
        double real = value->as.number.real;
        if (real != floor(real))
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: expected an integer, found %.17g at byte "
                             "%zu",
                             what, real, value->offset);
        if (fabs(real) < 9223372036854775808.0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: %.17g at byte %zu is above 2^53 and "
                             "written with a fraction or exponent: it may "
                             "not be the exact integer meant",
                             what, real, value->offset);
        return tlmi_fail(host, TLM_E_RANGE,
                         "%s: %.17g at byte %zu is outside %lld..%lld", what,
                         real, value->offset, (long long)min, (long long)max);
    }
    int64_t v = value->as.number.integer;
    if (v < min || v > max)
        return tlmi_fail(host, TLM_E_RANGE,
                         "%s: %lld at byte %zu is outside %lld..%lld", what,
                         (long long)v, value->offset, (long long)min,
                         (long long)max);
    *out = v;
    return TLM_OK;
}

int tlmi_json_get_string(tlmi_host *host, const tlmi_json_value *value,
                         const char *what, const char **bytes,
                         size_t *length) {
    int status = expect_type(host, value, what, TLMI_JSON_STRING, "a string");
    if (status != TLM_OK)
        return status;
    *bytes = value->as.string.bytes;
    if (length != NULL)
        *length = value->as.string.length;
    return TLM_OK;
}

/* ------------------------------------------------------------------------
 * Writer.
 */

/* Per-level flags of the writer. */
#define LEVEL_OBJECT 1u   /* an object (else an array) */
#define LEVEL_HAS_ITEMS 2u /* something was written: next needs a comma */
#define LEVEL_AFTER_KEY 4u /* a key was written: its value comes next */

void tlmi_json_writer_init(tlmi_json_writer *writer, tlmi_host *host) {
    memset(writer, 0, sizeof *writer);
    writer->host = host;
}

void tlmi_json_writer_release(tlmi_json_writer *writer) {
    if (writer == NULL)
        return;
    tlmi_host_free(writer->host, writer->data, writer->capacity);
    tlmi_host *host = writer->host;
    tlmi_json_writer_init(writer, host);
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 4)))
#endif
static int writer_fail(tlmi_json_writer *w, int status, const char *format,
                       ...) {
    char what[256];
    va_list args;
    va_start(args, format);
    vsnprintf(what, sizeof what, format, args);
    va_end(args);
    w->status = tlmi_fail(w->host, status, "json writer: %s", what);
    return w->status;
}

static int writer_reserve(tlmi_json_writer *w, size_t extra) {
    if (extra > SIZE_MAX - w->size - 1)
        return writer_fail(w, TLM_E_OVERFLOW, "the document size overflows");
    size_t need = w->size + extra + 1;
    if (need <= w->capacity)
        return TLM_OK;
    size_t capacity = w->capacity ? w->capacity : 256;
    while (capacity < need)
        capacity = capacity <= SIZE_MAX / 2 ? capacity * 2 : need;
    char *grown = tlmi_host_alloc(w->host, capacity, 1);
    if (grown == NULL)
        return writer_fail(w, TLM_E_NOMEM,
                           "out of memory (growing the buffer to %zu bytes)",
                           capacity);
    if (w->size > 0)
        memcpy(grown, w->data, w->size);
    grown[w->size] = '\0';
    tlmi_host_free(w->host, w->data, w->capacity);
    w->data = grown;
    w->capacity = capacity;
    return TLM_OK;
}

static void append(tlmi_json_writer *w, const char *bytes, size_t n) {
    /* Room was reserved by the caller. */
    memcpy(w->data + w->size, bytes, n);
    w->size += n;
    w->data[w->size] = '\0';
}

/* Checks that a value may come now and writes the comma before it.
 * `is_key` for keys. */
static int begin_item(tlmi_json_writer *w, int is_key, const char *what) {
    if (w->status != TLM_OK)
        return w->status;
    if (w->depth == 0) {
        if (is_key)
            return writer_fail(w, TLM_E_STATE, "key outside an object");
        if (w->root_written)
            return writer_fail(w, TLM_E_STATE,
                               "%s after the complete document", what);
        return TLM_OK;
    }
    uint8_t *level = &w->level[w->depth - 1];
    if (*level & LEVEL_OBJECT) {
        if (is_key && (*level & LEVEL_AFTER_KEY))
            return writer_fail(w, TLM_E_STATE,
                               "key where the previous key's value is due");
        if (!is_key && !(*level & LEVEL_AFTER_KEY))
            return writer_fail(w, TLM_E_STATE,
                               "%s in an object without a key", what);
    } else if (is_key) {
        return writer_fail(w, TLM_E_STATE, "key inside an array");
    }
    if ((*level & LEVEL_HAS_ITEMS) && !(*level & LEVEL_AFTER_KEY)) {
        int status = writer_reserve(w, 1);
        if (status != TLM_OK)
            return status;
        append(w, ",", 1);
    }
    return TLM_OK;
}

/* Records that a value (or key) was written at the current level. */
static void end_item(tlmi_json_writer *w, int is_key) {
    if (w->depth == 0) {
        w->root_written = 1;
        return;
    }
    uint8_t *level = &w->level[w->depth - 1];
    *level |= LEVEL_HAS_ITEMS;
    if (is_key)
        *level |= LEVEL_AFTER_KEY;
    else
        *level &= (uint8_t)~LEVEL_AFTER_KEY;
}

static int write_raw_value(tlmi_json_writer *w, const char *text, size_t n,
                           const char *what) {
    int status = begin_item(w, 0, what);
    if (status == TLM_OK)
        status = writer_reserve(w, n);
    if (status != TLM_OK)
        return status;
    append(w, text, n);
    end_item(w, 0);
    return TLM_OK;
}

static int open_container(tlmi_json_writer *w, int is_object) {
    const char *what = is_object ? "object" : "array";
    int status = begin_item(w, 0, what);
    if (status != TLM_OK)
        return status;
    if (w->depth >= TLMI_JSON_WRITER_MAX_DEPTH)
        return writer_fail(w, TLM_E_RANGE, "nesting deeper than %d levels",
                           TLMI_JSON_WRITER_MAX_DEPTH);
    status = writer_reserve(w, 1);
    if (status != TLM_OK)
        return status;
    append(w, is_object ? "{" : "[", 1);
    w->level[w->depth++] = is_object ? LEVEL_OBJECT : 0;
    return TLM_OK;
}

static int close_container_w(tlmi_json_writer *w, int is_object) {
    if (w->status != TLM_OK)
        return w->status;
    const char *what = is_object ? "object" : "array";
    if (w->depth == 0)
        return writer_fail(w, TLM_E_STATE, "end of %s with none open", what);
    uint8_t level = w->level[w->depth - 1];
    if (((level & LEVEL_OBJECT) != 0) != (is_object != 0))
        return writer_fail(w, TLM_E_STATE, "end of %s inside an %s", what,
                           is_object ? "array" : "object");
    if (level & LEVEL_AFTER_KEY)
        return writer_fail(w, TLM_E_STATE,
                           "end of object after a key without its value");
    int status = writer_reserve(w, 1);
    if (status != TLM_OK)
        return status;
    append(w, is_object ? "}" : "]", 1);
    w->depth--;
    end_item(w, 0);
    return TLM_OK;
}

int tlmi_json_write_object_begin(tlmi_json_writer *writer) {
    return open_container(writer, 1);
}
int tlmi_json_write_object_end(tlmi_json_writer *writer) {
    return close_container_w(writer, 1);
}
int tlmi_json_write_array_begin(tlmi_json_writer *writer) {
    return open_container(writer, 0);
}
int tlmi_json_write_array_end(tlmi_json_writer *writer) {
    return close_container_w(writer, 0);
}

/* The escaped form of `length` bytes, quoted. */
static int write_quoted(tlmi_json_writer *w, const char *s, size_t length) {
    const unsigned char *u = (const unsigned char *)s;
    /* Validate first, and size the output: at most 6 bytes per input. */
    size_t out = 2;
    for (size_t i = 0; i < length;) {
        unsigned char c = u[i];
        size_t seq = utf8_sequence(u + i, length - i);
        if (seq == 0)
            return writer_fail(w, TLM_E_INVALID,
                               "string is not valid UTF-8 at byte %zu (0x%02x)",
                               i, (unsigned)c);
        if (c < 0x20)
            out += (c == '\b' || c == '\f' || c == '\n' || c == '\r' ||
                    c == '\t')
                       ? 2
                       : 6;
        else if (c == '"' || c == '\\')
            out += 2;
        else
            out += seq;
        i += seq;
    }
    int status = writer_reserve(w, out);
    if (status != TLM_OK)
        return status;
    char *p = w->data + w->size;
    *p++ = '"';
    for (size_t i = 0; i < length; i++) {
        unsigned char c = u[i];
        if (c == '"' || c == '\\') {
            *p++ = '\\';
            *p++ = (char)c;
        } else if (c < 0x20) {
            *p++ = '\\';
            switch (c) {
            case '\b': *p++ = 'b'; break;
            case '\f': *p++ = 'f'; break;
            case '\n': *p++ = 'n'; break;
            case '\r': *p++ = 'r'; break;
            case '\t': *p++ = 't'; break;
            default: {
                static const char hex[] = "0123456789abcdef";
                *p++ = 'u';
                *p++ = '0';
                *p++ = '0';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 15];
            }
            }
        } else {
            *p++ = (char)c;
        }
    }
    *p++ = '"';
    w->size = (size_t)(p - w->data);
    w->data[w->size] = '\0';
    return TLM_OK;
}

int tlmi_json_write_key_n(tlmi_json_writer *writer, const char *key,
                          size_t length) {
    int status = begin_item(writer, 1, "key");
    if (status != TLM_OK)
        return status;
    if (key == NULL && length > 0)
        return writer_fail(writer, TLM_E_INVALID, "key is NULL");
    status = write_quoted(writer, key ? key : "", length);
    if (status == TLM_OK)
        status = writer_reserve(writer, 1);
    if (status != TLM_OK)
        return status;
    append(writer, ":", 1);
    end_item(writer, 1);
    return TLM_OK;
}

int tlmi_json_write_key(tlmi_json_writer *writer, const char *key) {
    if (key == NULL) {
        if (writer->status != TLM_OK)
            return writer->status;
        return writer_fail(writer, TLM_E_INVALID, "key is NULL");
    }
    return tlmi_json_write_key_n(writer, key, strlen(key));
}

int tlmi_json_write_string_n(tlmi_json_writer *writer, const char *string,
                             size_t length) {
    int status = begin_item(writer, 0, "string");
    if (status != TLM_OK)
        return status;
    if (string == NULL && length > 0)
        return writer_fail(writer, TLM_E_INVALID, "string is NULL");
    status = write_quoted(writer, string ? string : "", length);
    if (status != TLM_OK)
        return status;
    end_item(writer, 0);
    return TLM_OK;
}

int tlmi_json_write_string(tlmi_json_writer *writer, const char *string) {
    if (string == NULL) {
        if (writer->status != TLM_OK)
            return writer->status;
        return writer_fail(writer, TLM_E_INVALID, "string is NULL");
    }
    return tlmi_json_write_string_n(writer, string, strlen(string));
}

int tlmi_json_write_int64(tlmi_json_writer *writer, int64_t value) {
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%lld", (long long)value);
    return write_raw_value(writer, buf, (size_t)n, "number");
}

/* "%.*g" of `value` with '.' as decimal point whatever the locale. */
static size_t format_g(char *buf, double value, int digits) {
    int n = snprintf(buf, 32, "%.*g", digits, value);
    if (n <= 0 || n >= 32)
        return 0;
    const char *point = localeconv()->decimal_point;
    size_t point_length = strlen(point);
    if (point_length > 0 && !(point_length == 1 && point[0] == '.')) {
        char *at = strstr(buf, point);
        if (at != NULL) {
            *at = '.';
            memmove(at + 1, at + point_length, strlen(at + point_length) + 1);
            n = (int)strlen(buf);
        }
    }
    return (size_t)n;
}

size_t tlmi_json_format_double(char *buf, double value, int max_digits) {
    if (!isfinite(value))
        return 0;
    if (max_digits < 1 || max_digits > 17)
        max_digits = 17;
    size_t n = 0;
    /* The fewest digits that read back as the same value. */
    for (int digits = 1; digits <= max_digits; digits++) {
        n = format_g(buf, value, digits);
        double back = 0.0;
        if (digits == max_digits ||
            (number_to_double(buf, n, &back) == 0 && back == value))
            break;
    }
    return n;
}

int tlmi_json_write_double(tlmi_json_writer *writer, double value) {
    if (writer->status != TLM_OK)
        return writer->status;
    if (!isfinite(value))
        return writer_fail(writer, TLM_E_NONFINITE,
                           "%s is not a JSON number",
                           isnan(value) ? "NaN" : "an infinity");
    char buf[32];
    size_t n = tlmi_json_format_double(buf, value, 17);
    return write_raw_value(writer, buf, n, "number");
}

int tlmi_json_write_float(tlmi_json_writer *writer, float value) {
    if (writer->status != TLM_OK)
        return writer->status;
    double wide = (double)value;
    if (!isfinite(wide))
        return writer_fail(writer, TLM_E_NONFINITE,
                           "%s is not a JSON number",
                           isnan(wide) ? "NaN" : "an infinity");
    /* The fewest digits that give back the same float when read as a
     * double and rounded to float, as a reader of the file does. */
    char buf[32];
    size_t n = 0;
    for (int digits = 1; digits <= 9; digits++) {
        n = format_g(buf, wide, digits);
        double back = 0.0;
        if (digits == 9 || (number_to_double(buf, n, &back) == 0 &&
                            (float)back == value))
            break;
    }
    return write_raw_value(writer, buf, n, "number");
}

int tlmi_json_write_bool(tlmi_json_writer *writer, int value) {
    return value ? write_raw_value(writer, "true", 4, "boolean")
                 : write_raw_value(writer, "false", 5, "boolean");
}

int tlmi_json_write_null(tlmi_json_writer *writer) {
    return write_raw_value(writer, "null", 4, "null");
}

int tlmi_json_writer_result(tlmi_json_writer *writer, const char **text,
                            size_t *size) {
    if (writer->status != TLM_OK)
        return writer->status;
    if (writer->depth != 0 || !writer->root_written)
        return tlmi_fail(writer->host, TLM_E_STATE,
                         "json writer: the document is incomplete (%d "
                         "container%s open)",
                         (int)writer->depth, writer->depth == 1 ? "" : "s");
    *text = writer->data;
    *size = writer->size;
    return TLM_OK;
}
