/*
 * The JSON reader (RFC 8259, strict): the parser, the document tree and its
 * accessors. The writer is json_write.c; both are declared in json.h.
 */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/error.h"
#include "base/grow.h"
#include "base/utf8.h"

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
        /* 64 entries at first, then doubling. */
        size_t needed = ps->stack_count == 0 ? 64 : ps->stack_count + 1;
        int status = tlmi_grow(ps->host, &ps->stack,
                               &ps->stack_capacity, needed, sizeof *ps->stack);
        if (status == TLM_E_OVERFLOW)
            return fail_nomem(ps, SIZE_MAX);
        if (status != TLM_OK)
            return fail_nomem(ps, tlmi_grow_capacity(ps->stack_capacity, needed) *
                                      sizeof *ps->stack);
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
            uint32_t code;
            size_t seq = tlmi_utf8_decode(t + i, ps->size - i, &code);
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
        unsigned char utf8[4];
        size_t bytes = tlmi_utf8_encode((uint32_t)cp, utf8);
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
    TLMI_TRY(string_pass(ps, NULL, &n, &end));
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

int tlmi_json_number_to_double(const char *text, size_t length,
                               double *out) {
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

/* Skips the digits at *i, at least one (else the failure "expected ..."
 * there). */
static int skip_digits(parser *ps, size_t *i, const char *expected) {
    if (*i >= ps->size || !is_digit(ps->text[*i])) {
        ps->pos = *i;
        return fail_expected(ps, expected);
    }
    while (*i < ps->size && is_digit(ps->text[*i]))
        (*i)++;
    return TLM_OK;
}

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
        int status = skip_digits(ps, &i, "a digit after the decimal point");
        if (status != TLM_OK)
            return status;
    }
    if (i < ps->size && (t[i] == 'e' || t[i] == 'E')) {
        plain = 0;
        i++;
        if (i < ps->size && (t[i] == '+' || t[i] == '-'))
            i++;
        int status = skip_digits(ps, &i, "a digit in the exponent");
        if (status != TLM_OK)
            return status;
    }
    size_t length = i - start;
    if (length > TLMI_JSON_MAX_NUMBER_CHARS)
        return fail_at(ps, start, "number longer than %d characters",
                       TLMI_JSON_MAX_NUMBER_CHARS);
    double real = 0.0;
    if (tlmi_json_number_to_double((const char *)t + start, length, &real) != 0)
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

int tlmi_json_key_compare(const char *a, size_t a_length, const char *b,
                          size_t b_length) {
    size_t n = a_length < b_length ? a_length : b_length;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return a_length < b_length ? -1 : a_length > b_length;
}

static int compare_members(const void *a, const void *b) {
    const tlmi_json_member *x = *(const tlmi_json_member *const *)a;
    const tlmi_json_member *y = *(const tlmi_json_member *const *)b;
    int c = tlmi_json_key_compare(x->key, x->key_length, y->key, y->key_length);
    if (c != 0)
        return c;
    /* Equal keys (an error) in document order, to report the first. */
    return x->key_offset < y->key_offset ? -1 : x->key_offset > y->key_offset;
}

/* bsearch order of a tlmi_json_key against a member of the sorted index. */
static int find_member(const void *key, const void *element) {
    const tlmi_json_key *k = key;
    const tlmi_json_member *m = *(const tlmi_json_member *const *)element;
    return tlmi_json_key_compare(k->bytes, k->length, m->key, m->key_length);
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

/* An object member's key and its ':', up to the value. */
static int parse_key(parser *ps, tlmi_json_member *member, int after_comma) {
    if (peek(ps) != '"')
        return fail_expected(ps, after_comma ? "a string key after ','"
                                             : "a string key or '}'");
    member->key_offset = ps->pos;
    TLMI_TRY(parse_string(ps, &member->key, &member->key_length));
    skip_space(ps);
    if (peek(ps) != ':')
        return fail_expected(ps, "':' after object key");
    ps->pos++;
    skip_space(ps);
    return TLM_OK;
}

/* An array or object, its items gathered on the stack until it closes. */
static int parse_container(parser *ps, int32_t depth, tlmi_json_value *value,
                           int is_object) {
    const int close = is_object ? '}' : ']';
    size_t base = ps->stack_count;
    ps->pos++; /* '[' or '{' */
    skip_space(ps);
    if (peek(ps) == close) {
        ps->pos++;
        return close_container(ps, base, value, is_object);
    }
    int after_comma = 0;
    for (;;) {
        tlmi_json_member item;
        memset(&item, 0, sizeof item);
        if (is_object)
            TLMI_TRY(parse_key(ps, &item, after_comma));
        TLMI_TRY(parse_value(ps, depth, &item.value));
        TLMI_TRY(stack_push(ps, &item));
        skip_space(ps);
        int c = peek(ps);
        if (c == close) {
            ps->pos++;
            return close_container(ps, base, value, is_object);
        }
        if (c != ',')
            return fail_expected(ps, is_object
                                         ? "',' or '}' after object member"
                                         : "',' or ']' after array element");
        ps->pos++;
        skip_space(ps);
        if (!is_object && peek(ps) == ']')
            return fail_expected(ps, "a value after ','");
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
        return parse_container(ps, depth + 1, value, c == '{');
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
    TLMI_CHECK_OUT(host, "json", out, NULL);
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
    if (object->as.object.count == 0)
        return NULL; /* bsearch takes no NULL table */
    const tlmi_json_key wanted = {key, length};
    const tlmi_json_member *const *found =
        bsearch(&wanted, object->as.object.sorted, object->as.object.count,
                sizeof *object->as.object.sorted, find_member);
    return found != NULL ? &(*found)->value : NULL;
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
    TLMI_TRY(expect_type(host, value, what, TLMI_JSON_NUMBER, "a number"));
    *out = value->as.number.real;
    return TLM_OK;
}

int tlmi_json_get_int64(tlmi_host *host, const tlmi_json_value *value,
                        const char *what, int64_t min, int64_t max,
                        int64_t *out) {
    TLMI_TRY(expect_type(host, value, what, TLMI_JSON_NUMBER, "an integer"));
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
    TLMI_TRY(expect_type(host, value, what, TLMI_JSON_STRING, "a string"));
    *bytes = value->as.string.bytes;
    if (length != NULL)
        *length = value->as.string.length;
    return TLM_OK;
}
