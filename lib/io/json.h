/*
 * JSON (RFC 8259) for tlm's files: a strict reader of documents held in
 * memory, producing a read-only tree (json_read.c), and a small writer into
 * a growable buffer (json_write.c).
 *
 * The reader accepts exactly the RFC's grammar and nothing more: no
 * comments, no trailing commas, no byte order mark, no NaN/Infinity, no
 * leading zeros, no unescaped control characters in strings, only valid
 * UTF-8 (no overlong forms, no encoded surrogates) and \u escapes whose
 * surrogates come in pairs. It also refuses, as errors: duplicate keys in
 * an object, numbers too large for a double, numbers longer than
 * TLMI_JSON_MAX_NUMBER_CHARS characters, nesting deeper than the depth
 * limit and documents larger than the size limit. Every failure returns
 * TLM_E_FORMAT (TLM_E_NOMEM when the allocator fails) with a message such
 * as "json: expected ':' after object key at byte 57 (found '}')"; byte
 * offsets count from 0 at the start of the document.
 *
 * The tree lives in memory owned by the document (chunks from the host
 * allocator) and is freed with it. Strings are decoded to UTF-8, stored
 * with their length (they may contain NUL bytes, from \u0000) and a
 * terminating NUL. Arrays and objects keep their elements in document
 * order; objects also keep a sorted index, so a lookup by key is a binary
 * search.
 */
#ifndef TLM_LIB_IO_JSON_H
#define TLM_LIB_IO_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"

enum tlmi_json_type {
    TLMI_JSON_NULL = 0,
    TLMI_JSON_BOOL = 1,
    TLMI_JSON_NUMBER = 2,
    TLMI_JSON_STRING = 3,
    TLMI_JSON_ARRAY = 4,
    TLMI_JSON_OBJECT = 5
};

/* Default limits, and the largest depth a caller may ask for (the reader
 * recurses once per level). */
#define TLMI_JSON_DEFAULT_MAX_BYTES ((size_t)256 << 20)
#define TLMI_JSON_DEFAULT_MAX_DEPTH 128
#define TLMI_JSON_MAX_DEPTH_LIMIT 1024
/* Longest number accepted, in characters of the document. */
#define TLMI_JSON_MAX_NUMBER_CHARS 1024

typedef struct tlmi_json_value tlmi_json_value;
typedef struct tlmi_json_member tlmi_json_member;

struct tlmi_json_value {
    int32_t type;     /* a tlmi_json_type */
    int32_t is_int64; /* numbers: 1 when `integer` holds the exact value */
    size_t offset;    /* byte where the value starts in the document */
    union {
        int32_t boolean; /* 0 or 1 */
        struct {
            double real;     /* nearest double */
            int64_t integer; /* exact value when is_int64 */
        } number;
        struct {
            const char *bytes; /* UTF-8, `length` bytes, then a NUL */
            size_t length;
        } string;
        struct {
            const tlmi_json_value *items;
            size_t count;
        } array;
        struct {
            const tlmi_json_member *members;      /* document order */
            const tlmi_json_member *const *sorted; /* by key, for lookups */
            size_t count;
        } object;
    } as;
};

struct tlmi_json_member {
    const char *key; /* UTF-8, `key_length` bytes, then a NUL */
    size_t key_length;
    size_t key_offset; /* byte where the key's opening quote is */
    tlmi_json_value value;
};

/* Limits for tlmi_json_parse; fields left 0 take the defaults. */
typedef struct tlmi_json_limits {
    size_t max_bytes;  /* largest document accepted */
    int32_t max_depth; /* most nested arrays/objects, 1..LIMIT */
} tlmi_json_limits;

typedef struct tlmi_json_doc tlmi_json_doc;

/* Parses `size` bytes at `text` (not NUL-terminated; NUL bytes in it are
 * errors). `limits` may be NULL for the defaults. On success *out is the
 * document; on failure *out is NULL and the status is TLM_E_FORMAT,
 * TLM_E_NOMEM or TLM_E_INVALID (bad arguments), with a message on `host`.
 * The document does not point into `text`, which may be freed. */
int tlmi_json_parse(tlmi_host *host, const char *text, size_t size,
                    const tlmi_json_limits *limits, tlmi_json_doc **out);

/* The document's top-level value. */
const tlmi_json_value *tlmi_json_root(const tlmi_json_doc *doc);

/* Frees the document and every value in it. NULL is ignored. */
void tlmi_json_free(tlmi_json_doc *doc);

/* "null", "boolean", "number", "string", "array", "object" ("?" else). */
const char *tlmi_json_type_name(int32_t type);

/* ---- Accessors. They accept NULL values (and then return NULL/0) so that
 * lookups can be chained; none of them records an error. ---- */

/* The order of sorted keys (and of the safetensors reader's names):
 * bytewise as memcmp, a proper prefix before the longer string. */
int tlmi_json_key_compare(const char *a, size_t a_length, const char *b,
                          size_t b_length);

/* A key to look up with bsearch in tables sorted by tlmi_json_key_compare. */
typedef struct tlmi_json_key {
    const char *bytes;
    size_t length;
} tlmi_json_key;

/* The member `key` of an object, or NULL when `object` is not an object
 * or has no such key. `key` is a NUL-terminated string; the _n form takes
 * a length, for keys that contain NUL bytes. */
const tlmi_json_value *tlmi_json_object_get(const tlmi_json_value *object,
                                            const char *key);
const tlmi_json_value *tlmi_json_object_get_n(const tlmi_json_value *object,
                                              const char *key, size_t length);

/* Member `index` of an object in document order, or NULL. */
const tlmi_json_member *tlmi_json_object_at(const tlmi_json_value *object,
                                            size_t index);

/* Element `index` of an array, or NULL when out of range or not an array. */
const tlmi_json_value *tlmi_json_array_at(const tlmi_json_value *array,
                                          size_t index);

/* Number of array elements or object members; 0 for other values. */
size_t tlmi_json_count(const tlmi_json_value *value);

/* The bytes of a string (NUL-terminated) and, when `length` is not NULL,
 * their count; NULL when `value` is not a string. */
const char *tlmi_json_string(const tlmi_json_value *value, size_t *length);

/* ---- Checked conversions. On failure they record "<what>: ..." on `host`
 * with the value's byte offset and return the status; `what` names the
 * value for the message (e.g. "tlm.config: d_model"). ---- */

/* A number as a double. TLM_E_FORMAT when `value` is missing (NULL) or
 * not a number. */
int tlmi_json_get_double(tlmi_host *host, const tlmi_json_value *value,
                         const char *what, double *out);

/* A number that is an integer in [min, max]. Integers written with a
 * fraction or exponent ("3.0", "1e3") are accepted when the value is
 * integral and at most 2^53 in magnitude. TLM_E_FORMAT when missing, not
 * a number or not an integer; TLM_E_RANGE when outside [min, max]. */
int tlmi_json_get_int64(tlmi_host *host, const tlmi_json_value *value,
                        const char *what, int64_t min, int64_t max,
                        int64_t *out);

/* A string (bytes and length, as tlmi_json_string). TLM_E_FORMAT when
 * missing or not a string. */
int tlmi_json_get_string(tlmi_host *host, const tlmi_json_value *value,
                         const char *what, const char **bytes,
                         size_t *length);

/* ---- Writer ---- */

/* Deepest nesting the writer produces. */
#define TLMI_JSON_WRITER_MAX_DEPTH 64

/*
 * Writes one compact JSON document into a growable buffer:
 *
 *     tlmi_json_writer w;
 *     tlmi_json_writer_init(&w, host);
 *     tlmi_json_write_object_begin(&w);
 *     tlmi_json_write_key(&w, "d_model");
 *     tlmi_json_write_int64(&w, 64);
 *     tlmi_json_write_object_end(&w);
 *     if (tlmi_json_writer_result(&w, &text, &size) == TLM_OK) ... use text
 *     tlmi_json_writer_release(&w);
 *
 * Errors are sticky: the first failure is recorded on the host and every
 * later call (result included) returns it without writing, so a sequence
 * of writes can be checked once at the end. Misuse (a value where a key is
 * needed, an unbalanced end, a second top-level value) is TLM_E_STATE;
 * strings that are not valid UTF-8 are TLM_E_INVALID; NaN and infinities
 * are TLM_E_NONFINITE (JSON cannot represent them).
 *
 * Floats and doubles are written with the fewest significant digits that
 * read back to the same value (at most 9 for a float, 17 for a double),
 * with '.' as the decimal point whatever the C locale.
 */
typedef struct tlmi_json_writer {
    tlmi_host *host;
    char *data; /* NUL-terminated after `size` bytes */
    size_t size;
    size_t capacity;
    int status;
    int32_t depth;
    int32_t root_written;
    uint8_t level[TLMI_JSON_WRITER_MAX_DEPTH]; /* per open container */
} tlmi_json_writer;

void tlmi_json_writer_init(tlmi_json_writer *writer, tlmi_host *host);
/* Frees the buffer; the writer may be initialised again. */
void tlmi_json_writer_release(tlmi_json_writer *writer);

int tlmi_json_write_object_begin(tlmi_json_writer *writer);
int tlmi_json_write_object_end(tlmi_json_writer *writer);
int tlmi_json_write_array_begin(tlmi_json_writer *writer);
int tlmi_json_write_array_end(tlmi_json_writer *writer);
/* A key inside an object; the next call writes its value. */
int tlmi_json_write_key(tlmi_json_writer *writer, const char *key);
int tlmi_json_write_key_n(tlmi_json_writer *writer, const char *key,
                          size_t length);
int tlmi_json_write_string(tlmi_json_writer *writer, const char *string);
int tlmi_json_write_string_n(tlmi_json_writer *writer, const char *string,
                             size_t length);
int tlmi_json_write_int64(tlmi_json_writer *writer, int64_t value);
int tlmi_json_write_double(tlmi_json_writer *writer, double value);
int tlmi_json_write_float(tlmi_json_writer *writer, float value);
int tlmi_json_write_bool(tlmi_json_writer *writer, int value);
int tlmi_json_write_null(tlmi_json_writer *writer);

/* The finished document: TLM_OK and the text (NUL-terminated, owned by
 * the writer until release) when exactly one complete value was written;
 * the sticky error, or TLM_E_STATE when the document is incomplete. */
int tlmi_json_writer_result(tlmi_json_writer *writer, const char **text,
                            size_t *size);

/* strtod on `length` characters of JSON number text, whatever the C
 * locale's decimal point. Returns 0 on success, -1 when the text is not
 * a number or longer than TLMI_JSON_MAX_NUMBER_CHARS. Shared by the reader
 * and the writer's round-trip check. */
int tlmi_json_number_to_double(const char *text, size_t length, double *out);

/* Writes into `buf` (32 bytes) the shortest text of `value` that reads
 * back as the same double, with at most `max_digits` (1..17) significant
 * digits and '.' as decimal point, NUL-terminated. Returns the length, or
 * 0 when `value` is not finite. */
size_t tlmi_json_format_double(char *buf, double value, int max_digits);

#endif
