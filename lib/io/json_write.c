/*
 * The JSON writer: builds a document in a growing buffer, checking that
 * keys and values come in a valid order, with doubles that read back
 * exactly. The reader is json_read.c; both are declared in json.h.
 */
#include "json.h"

#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "base/grow.h"
#include "base/utf8.h"

/* ------------------------------------------------------------------------
 * Writer.
 */

/* Per-level flags of the writer. */
#define LEVEL_OBJECT 1u   /* an object (else an array) */
#define LEVEL_HAS_ITEMS 2u /* something was written: next needs a comma */
#define LEVEL_AFTER_KEY 4u /* a key was written: its value comes next */

/* The writer's first buffer, in bytes. */
#define WRITER_INITIAL ((size_t)256)

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
    if (need < WRITER_INITIAL)
        need = WRITER_INITIAL;
    if (tlmi_grow(w->host, &w->data, &w->capacity, need, 1) != TLM_OK)
        return writer_fail(w, TLM_E_NOMEM,
                           "out of memory (growing the buffer to %zu bytes)",
                           tlmi_grow_capacity(w->capacity, need));
    w->data[w->size] = '\0';
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
    TLMI_TRY(begin_item(w, 0, what));
    TLMI_TRY(writer_reserve(w, n));
    append(w, text, n);
    end_item(w, 0);
    return TLM_OK;
}

static int open_container(tlmi_json_writer *w, int is_object) {
    const char *what = is_object ? "object" : "array";
    TLMI_TRY(begin_item(w, 0, what));
    if (w->depth >= TLMI_JSON_WRITER_MAX_DEPTH)
        return writer_fail(w, TLM_E_RANGE, "nesting deeper than %d levels",
                           TLMI_JSON_WRITER_MAX_DEPTH);
    int status = writer_reserve(w, 1);
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
    TLMI_TRY(writer_reserve(w, 1));
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
        uint32_t code;
        size_t seq = tlmi_utf8_decode(u + i, length - i, &code);
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
    TLMI_TRY(writer_reserve(w, out));
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

/* A quoted key and its ':' (is_key), or a quoted string value. */
static int write_text_item(tlmi_json_writer *w, int is_key, const char *text,
                           size_t length) {
    const char *what = is_key ? "key" : "string";
    TLMI_TRY(begin_item(w, is_key, what));
    if (text == NULL && length > 0)
        return writer_fail(w, TLM_E_INVALID, "%s is NULL", what);
    int status = write_quoted(w, text ? text : "", length);
    if (status == TLM_OK && is_key) {
        status = writer_reserve(w, 1);
        if (status == TLM_OK)
            append(w, ":", 1);
    }
    if (status != TLM_OK)
        return status;
    end_item(w, is_key);
    return TLM_OK;
}

/* A NUL-terminated key or string that is NULL: the writer's first error
 * stays, else this one. */
static int null_text(tlmi_json_writer *w, const char *what) {
    if (w->status != TLM_OK)
        return w->status;
    return writer_fail(w, TLM_E_INVALID, "%s is NULL", what);
}

int tlmi_json_write_key_n(tlmi_json_writer *writer, const char *key,
                          size_t length) {
    return write_text_item(writer, 1, key, length);
}

int tlmi_json_write_key(tlmi_json_writer *writer, const char *key) {
    if (key == NULL)
        return null_text(writer, "key");
    return tlmi_json_write_key_n(writer, key, strlen(key));
}

int tlmi_json_write_string_n(tlmi_json_writer *writer, const char *string,
                             size_t length) {
    return write_text_item(writer, 0, string, length);
}

int tlmi_json_write_string(tlmi_json_writer *writer, const char *string) {
    if (string == NULL)
        return null_text(writer, "string");
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
            (tlmi_json_number_to_double(buf, n, &back) == 0 && back == value))
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
        if (digits == 9 || (tlmi_json_number_to_double(buf, n, &back) == 0 &&
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
