/* The JSON reader and writer (lib/io/json.h): valid documents of every kind,
 * malformed ones (each with its exact message and byte offset), every
 * truncation and many corruptions of a valid document, limits, allocation
 * failures, and writer -> reader round trips. */
#define _POSIX_C_SOURCE 200809L /* setlocale's friends, strdup-free */

#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/host.h"
#include "counting_allocator.h"
#include "io/json.h"

/* A host whose allocations are counted (and may fail). */
static void counting_host(tlmi_host *host, counting_allocator *counter) {
    tlmi_host_init_default(host);
    host->alloc_fn = counting_alloc;
    host->free_fn = counting_free;
    host->alloc_user = counter;
}

static int parse_text(tlmi_host *host, const char *text, tlmi_json_doc **doc) {
    return tlmi_json_parse(host, text, strlen(text), NULL, doc);
}

/* Parses `text` expecting failure with exactly `message`. */
static void expect_error_n(const char *text, size_t size, int status,
                           const char *message) {
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    tlmi_json_doc *doc = (tlmi_json_doc *)&counter; /* must become NULL */
    int got = tlmi_json_parse(&host, text, size, NULL, &doc);
    if (got != status || strcmp(host.last_error, message) != 0)
        print_error("input: %.*s\n", (int)size, text);
    assert_int_equal(got, status);
    assert_null(doc);
    assert_string_equal(host.last_error, message);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

static void expect_error(const char *text, const char *message) {
    expect_error_n(text, strlen(text), TLM_E_FORMAT, message);
}

/* ------------------------------------------------------------------------
 * Valid documents
 */

static void scalars_at_top_level(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;

    assert_int_equal(parse_text(&host, "null", &doc), TLM_OK);
    assert_int_equal(tlmi_json_root(doc)->type, TLMI_JSON_NULL);
    tlmi_json_free(doc);

    assert_int_equal(parse_text(&host, " true ", &doc), TLM_OK);
    assert_int_equal(tlmi_json_root(doc)->type, TLMI_JSON_BOOL);
    assert_int_equal(tlmi_json_root(doc)->as.boolean, 1);
    assert_int_equal(tlmi_json_root(doc)->offset, 1);
    tlmi_json_free(doc);

    assert_int_equal(parse_text(&host, "\t\r\nfalse\n", &doc), TLM_OK);
    assert_int_equal(tlmi_json_root(doc)->as.boolean, 0);
    tlmi_json_free(doc);

    assert_int_equal(parse_text(&host, "\"hi\"", &doc), TLM_OK);
    size_t length = 0;
    assert_string_equal(tlmi_json_string(tlmi_json_root(doc), &length), "hi");
    assert_int_equal(length, 2);
    tlmi_json_free(doc);

    assert_int_equal(parse_text(&host, "-0", &doc), TLM_OK);
    const tlmi_json_value *v = tlmi_json_root(doc);
    assert_int_equal(v->type, TLMI_JSON_NUMBER);
    assert_true(v->is_int64);
    assert_int_equal(v->as.number.integer, 0);
    assert_true(signbit(v->as.number.real));
    tlmi_json_free(doc);
}

static void numbers(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    static const struct {
        const char *text;
        double real;
        int is_int64;
        int64_t integer;
    } cases[] = {
        {"0", 0.0, 1, 0},
        {"7", 7.0, 1, 7},
        {"-12", -12.0, 1, -12},
        {"0.5", 0.5, 0, 0},
        {"-0.125", -0.125, 0, 0},
        {"1e3", 1000.0, 1, 1000},
        {"1E+3", 1000.0, 1, 1000},
        {"25e-1", 2.5, 0, 0},
        {"3.0", 3.0, 1, 3},
        {"0.1", 0.1, 0, 0},
        {"1.7976931348623157e308", 1.7976931348623157e308, 0, 0},
        {"4.9e-324", 4.9e-324, 0, 0},
        {"1e-400", 0.0, 1, 0}, /* underflows to zero: accepted */
        {"9223372036854775807", 9223372036854775807.0, 1, INT64_MAX},
        {"-9223372036854775808", -9223372036854775808.0, 1, INT64_MIN},
        {"9223372036854775808", 9223372036854775808.0, 0, 0},
        {"9007199254740993", 9007199254740992.0, 1, 9007199254740993},
        {"1e17", 1e17, 0, 0}, /* integral but above 2^53 in float form */
        {"123456789012345678901234567890", 1.2345678901234568e29, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlmi_json_doc *doc = NULL;
        assert_int_equal(parse_text(&host, cases[i].text, &doc), TLM_OK);
        const tlmi_json_value *v = tlmi_json_root(doc);
        assert_int_equal(v->type, TLMI_JSON_NUMBER);
        if (v->as.number.real != cases[i].real)
            print_error("%s: %.17g\n", cases[i].text, v->as.number.real);
        assert_true(v->as.number.real == cases[i].real);
        assert_int_equal(v->is_int64, cases[i].is_int64);
        if (cases[i].is_int64)
            assert_int_equal(v->as.number.integer, cases[i].integer);
        tlmi_json_free(doc);
    }
}

static void strings_and_escapes(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    static const struct {
        const char *text;
        const char *bytes;
        size_t length;
    } cases[] = {
        {"\"\"", "", 0},
        {"\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"", "\"\\/\b\f\n\r\t", 8},
        {"\"\\u0041\\u00e9\\u20AC\"", "A\xc3\xa9\xe2\x82\xac", 6},
        {"\"\\uD83D\\uDE00\"", "\xf0\x9f\x98\x80", 4}, /* U+1F600 */
        {"\"\\udbff\\udfff\"", "\xf4\x8f\xbf\xbf", 4}, /* U+10FFFF */
        {"\"a\\u0000b\"", "a\0b", 3},                  /* NUL inside */
        {"\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9},
        {"\"\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80\"", "\xef\xbf\xbf\xed\x9f\xbf\xee\x80\x80", 9},
        {"\"\x7f\"", "\x7f", 1}, /* DEL is not a control character in JSON */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        tlmi_json_doc *doc = NULL;
        assert_int_equal(parse_text(&host, cases[i].text, &doc), TLM_OK);
        size_t length = 99;
        const char *bytes = tlmi_json_string(tlmi_json_root(doc), &length);
        assert_non_null(bytes);
        assert_int_equal(length, cases[i].length);
        assert_memory_equal(bytes, cases[i].bytes, length);
        assert_int_equal(bytes[length], '\0');
        tlmi_json_free(doc);
    }
}

static void objects_and_arrays(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    const char *text =
        "{\"name\": \"tlm\", \"dims\": [2, 3, [], {}], \"nested\": {\"x\": "
        "null, \"y\": [true, false]}, \"\": 1, \"k\\u0000z\": 2, \"e\": {}}";
    tlmi_json_doc *doc = NULL;
    assert_int_equal(parse_text(&host, text, &doc), TLM_OK);
    const tlmi_json_value *root = tlmi_json_root(doc);
    assert_int_equal(root->type, TLMI_JSON_OBJECT);
    assert_int_equal(tlmi_json_count(root), 6);
    /* Document order is kept. */
    assert_string_equal(tlmi_json_object_at(root, 0)->key, "name");
    assert_string_equal(tlmi_json_object_at(root, 1)->key, "dims");
    assert_int_equal(tlmi_json_object_at(root, 1)->key_offset, 16);
    assert_null(tlmi_json_object_at(root, 6));
    /* Lookups. */
    assert_string_equal(tlmi_json_string(tlmi_json_object_get(root, "name"), NULL),
                        "tlm");
    const tlmi_json_value *dims = tlmi_json_object_get(root, "dims");
    assert_int_equal(dims->type, TLMI_JSON_ARRAY);
    assert_int_equal(tlmi_json_count(dims), 4);
    assert_int_equal(tlmi_json_array_at(dims, 1)->as.number.integer, 3);
    assert_int_equal(tlmi_json_array_at(dims, 2)->type, TLMI_JSON_ARRAY);
    assert_int_equal(tlmi_json_count(tlmi_json_array_at(dims, 2)), 0);
    assert_int_equal(tlmi_json_array_at(dims, 3)->type, TLMI_JSON_OBJECT);
    assert_null(tlmi_json_array_at(dims, 4));
    assert_null(tlmi_json_array_at(root, 0)); /* not an array */
    const tlmi_json_value *nested = tlmi_json_object_get(root, "nested");
    assert_int_equal(tlmi_json_object_get(nested, "x")->type, TLMI_JSON_NULL);
    assert_int_equal(
        tlmi_json_array_at(tlmi_json_object_get(nested, "y"), 1)->as.boolean, 0);
    assert_int_equal(tlmi_json_object_get(root, "")->as.number.integer, 1);
    assert_null(tlmi_json_object_get(root, "k"));
    assert_int_equal(tlmi_json_object_get_n(root, "k\0z", 3)->as.number.integer, 2);
    assert_null(tlmi_json_object_get(root, "missing"));
    assert_null(tlmi_json_object_get(tlmi_json_object_get(root, "e"), "x"));
    /* Chained lookups through missing values are NULL, not crashes. */
    assert_null(tlmi_json_object_get(tlmi_json_object_get(root, "no"), "x"));
    assert_null(tlmi_json_array_at(NULL, 0));
    assert_null(tlmi_json_string(dims, NULL));
    assert_int_equal(tlmi_json_count(NULL), 0);
    tlmi_json_free(doc);
    tlmi_json_free(NULL);
}

/* An object with many keys: lookups by binary search find each one. */
static void large_object_lookup(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    enum { N = 2000 };
    size_t capacity = (size_t)N * 24 + 8;
    char *text = malloc(capacity);
    assert_non_null(text);
    size_t used = 0;
    text[used++] = '{';
    for (int i = 0; i < N; i++)
        used += (size_t)snprintf(text + used, capacity - used, "%s\"k%d\":%d",
                                 i ? "," : "", (i * 7919) % N, i);
    text[used++] = '}';
    tlmi_json_doc *doc = NULL;
    assert_int_equal(tlmi_json_parse(&host, text, used, NULL, &doc), TLM_OK);
    const tlmi_json_value *root = tlmi_json_root(doc);
    for (int i = 0; i < N; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", (i * 7919) % N);
        const tlmi_json_value *v = tlmi_json_object_get(root, key);
        assert_non_null(v);
        assert_int_equal(v->as.number.integer, i);
    }
    tlmi_json_free(doc);
    /* The same object with one key repeated at the end. */
    used--;
    used += (size_t)snprintf(text + used, capacity - used, ",\"k5\":0}");
    char message[128];
    size_t second = used - 7;
    /* k5 first appears where i * 7919 % N == 5. */
    tlmi_json_doc *bad = NULL;
    assert_int_equal(tlmi_json_parse(&host, text, used, NULL, &bad),
                     TLM_E_FORMAT);
    const char *first = strstr(text, "\"k5\":");
    snprintf(message, sizeof message,
             "json: duplicate key \"k5\" at byte %zu (first at byte %zu)",
             second, (size_t)(first - text));
    assert_string_equal(host.last_error, message);
    free(text);
}

static void checked_conversions(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;
    assert_int_equal(
        parse_text(&host,
                   "{\"i\": 42, \"neg\": -5, \"f\": 2.5, \"e\": 3.0, \"s\": \"x\", "
                   "\"big\": 1e300, \"huge\": 99999999999999999999, \"far\": "
                   "1e17}",
                   &doc),
        TLM_OK);
    const tlmi_json_value *root = tlmi_json_root(doc);
    int64_t i = 0;
    double d = 0.0;
    const char *s = NULL;
    size_t n = 0;
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "i"),
                                         "cfg: i", 0, 100, &i),
                     TLM_OK);
    assert_int_equal(i, 42);
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "e"),
                                         "cfg: e", 0, 100, &i),
                     TLM_OK);
    assert_int_equal(i, 3);
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "neg"),
                                         "cfg: neg", 0, 100, &i),
                     TLM_E_RANGE);
    assert_string_equal(host.last_error, "cfg: neg: -5 at byte 17 is outside 0..100");
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "f"),
                                         "cfg: f", 0, 100, &i),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "cfg: f: expected an integer, found 2.5 at byte 26");
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "s"),
                                         "cfg: s", 0, 100, &i),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "cfg: s: expected an integer, found a string at byte 46");
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "zz"),
                                         "cfg: zz", 0, 100, &i),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error, "cfg: zz: missing (expected an integer)");
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "big"),
                                         "cfg: big", INT64_MIN, INT64_MAX, &i),
                     TLM_E_RANGE);
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "huge"),
                                         "cfg: huge", INT64_MIN, INT64_MAX, &i),
                     TLM_E_RANGE);
    assert_int_equal(tlmi_json_get_int64(&host, tlmi_json_object_get(root, "far"),
                                         "cfg: far", INT64_MIN, INT64_MAX, &i),
                     TLM_E_FORMAT);
    assert_int_equal(tlmi_json_get_double(&host, tlmi_json_object_get(root, "f"),
                                          "cfg: f", &d),
                     TLM_OK);
    assert_true(d == 2.5);
    assert_int_equal(tlmi_json_get_double(&host, tlmi_json_object_get(root, "s"),
                                          "cfg: s", &d),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "cfg: s: expected a number, found a string at byte 46");
    assert_int_equal(tlmi_json_get_string(&host, tlmi_json_object_get(root, "s"),
                                          "cfg: s", &s, &n),
                     TLM_OK);
    assert_string_equal(s, "x");
    assert_int_equal(n, 1);
    assert_int_equal(tlmi_json_get_string(&host, root, "cfg", &s, &n),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "cfg: expected a string, found an object at byte 0");
    tlmi_json_free(doc);
}

/* ------------------------------------------------------------------------
 * Malformed documents: every message, exactly.
 */

static void syntax_errors(void **state) {
    (void)state;
    expect_error("", "json: expected a value at byte 0 (found end of input)");
    expect_error("   ", "json: expected a value at byte 3 (found end of input)");
    expect_error("{\"a\" 1}",
                 "json: expected ':' after object key at byte 5 (found '1')");
    expect_error("{\"a\"", "json: expected ':' after object key at byte 4 "
                           "(found end of input)");
    expect_error("[1,]", "json: expected a value after ',' at byte 3 (found ']')");
    expect_error("{\"a\":1,}",
                 "json: expected a string key after ',' at byte 7 (found '}')");
    expect_error("[1 2]", "json: expected ',' or ']' after array element at "
                          "byte 3 (found '2')");
    expect_error("{\"a\":1 \"b\":2}", "json: expected ',' or '}' after object "
                                      "member at byte 7 (found '\"')");
    expect_error("{1:2}",
                 "json: expected a string key or '}' at byte 1 (found '1')");
    expect_error("{'a':2}",
                 "json: expected a string key or '}' at byte 1 (found ''')");
    expect_error("[1] x", "json: unexpected data after the document at byte 4 "
                          "(found 'x')");
    expect_error("{} {}", "json: unexpected data after the document at byte 3 "
                          "(found '{')");
    expect_error("tru", "json: expected 'true' at byte 0");
    expect_error("[nul]", "json: expected 'null' at byte 1");
    expect_error("falsy", "json: expected 'false' at byte 0");
    expect_error("True", "json: expected a value at byte 0 (found 'T')");
    expect_error("NaN", "json: expected a value at byte 0 (found 'N')");
    expect_error("[Infinity]", "json: expected a value at byte 1 (found 'I')");
    expect_error("-Infinity",
                 "json: expected a digit after '-' at byte 1 (found 'I')");
    expect_error("// comment\n1", "json: expected a value at byte 0 (found '/')");
    expect_error("[1,/*x*/2]",
                 "json: expected a value at byte 3 (found '/')");
    expect_error("\xef\xbb\xbf{}", "json: byte order mark is not allowed at byte 0");
    expect_error("[1]\x01", "json: unexpected data after the document at byte 3 "
                            "(found byte 0x01)");
    expect_error_n("[1]\0", 4, TLM_E_FORMAT,
                   "json: unexpected data after the document at byte 3 (found "
                   "byte 0x00)");
    expect_error_n("\0", 1, TLM_E_FORMAT,
                   "json: expected a value at byte 0 (found byte 0x00)");
    expect_error("[\xc3\xa9]", "json: expected a value at byte 1 (found byte 0xc3)");
    expect_error("{\"a\":}", "json: expected a value at byte 5 (found '}')");
    expect_error("]", "json: expected a value at byte 0 (found ']')");
    expect_error("[", "json: expected a value at byte 1 (found end of input)");
    expect_error("[\n", "json: expected a value at byte 2 (found end of input)");
    expect_error("{", "json: expected a string key or '}' at byte 1 (found end "
                      "of input)");
    expect_error("\x0c", "json: expected a value at byte 0 (found byte 0x0c)");
}

static void number_errors(void **state) {
    (void)state;
    expect_error("01", "json: leading zeros are not allowed in a number at byte 0");
    expect_error("[-00]", "json: leading zeros are not allowed in a number at byte 2");
    expect_error("-", "json: expected a digit after '-' at byte 1 (found end of "
                      "input)");
    expect_error("[- 1]", "json: expected a digit after '-' at byte 2 (found byte "
                          "0x20)");
    expect_error("1.", "json: expected a digit after the decimal point at byte 2 "
                       "(found end of input)");
    expect_error(".5", "json: expected a value at byte 0 (found '.')");
    expect_error("+1", "json: expected a value at byte 0 (found '+')");
    expect_error("1.e3", "json: expected a digit after the decimal point at byte "
                         "2 (found 'e')");
    expect_error("1e", "json: expected a digit in the exponent at byte 2 (found "
                       "end of input)");
    expect_error("1e+", "json: expected a digit in the exponent at byte 3 (found "
                        "end of input)");
    expect_error("[1E-x]", "json: expected a digit in the exponent at byte 4 "
                           "(found 'x')");
    expect_error("0x10", "json: unexpected data after the document at byte 1 "
                         "(found 'x')");
    expect_error("1e309", "json: number '1e309' is too large for a double at byte 0");
    expect_error("[0, -1.5e400]",
                 "json: number '-1.5e400' is too large for a double at byte 4");
    /* 400 digits: a valid number, larger than any double. */
    char big[420];
    big[0] = '1';
    memset(big + 1, '0', 400);
    big[401] = '\0';
    expect_error(big, "json: number '1000000000000000000000000000000000000000...' "
                      "is too large for a double at byte 0");
    /* Longer than the limit. */
    char *longest = malloc(TLMI_JSON_MAX_NUMBER_CHARS + 8);
    assert_non_null(longest);
    memcpy(longest, "0.", 2);
    memset(longest + 2, '1', TLMI_JSON_MAX_NUMBER_CHARS);
    longest[TLMI_JSON_MAX_NUMBER_CHARS + 2] = '\0';
    expect_error(longest, "json: number longer than 1024 characters at byte 0");
    /* Exactly at the limit: accepted. */
    longest[TLMI_JSON_MAX_NUMBER_CHARS] = '\0';
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;
    assert_int_equal(parse_text(&host, longest, &doc), TLM_OK);
    assert_true(fabs(tlmi_json_root(doc)->as.number.real - 0.1111111111111111) < 1e-15);
    tlmi_json_free(doc);
    free(longest);
}

static void string_errors(void **state) {
    (void)state;
    expect_error("\"abc", "json: unterminated string at byte 4 (it starts at byte 0)");
    expect_error("[\"a\\", "json: unterminated string at byte 4 (it starts at byte 1)");
    expect_error("\"a\\qb\"", "json: invalid escape '\\q' in a string at byte 2");
    expect_error("\"\\'\"", "json: invalid escape '\\'' in a string at byte 1");
    expect_error("\"\\x41\"", "json: invalid escape '\\x' in a string at byte 1");
    expect_error("\"\\\x01\"", "json: invalid escape: '\\' followed by byte 0x01 "
                               "in a string at byte 1");
    expect_error("\"\\u12\"", "json: invalid \\u escape at byte 1 (expected 4 hex "
                              "digits)");
    expect_error("\"\\u12", "json: invalid \\u escape at byte 1 (expected 4 hex "
                            "digits)");
    expect_error("\"\\u00G0\"", "json: invalid \\u escape at byte 1 (expected 4 "
                                "hex digits)");
    expect_error("\"\\U0041\"", "json: invalid escape '\\U' in a string at byte 1");
    expect_error("\"\\uDC00\"", "json: unpaired low surrogate \\uDC00 at byte 1");
    expect_error("\"x\\uD800\"", "json: unpaired high surrogate \\uD800 at byte 2 "
                                 "(expected a \\uDC00-\\uDFFF escape after it)");
    expect_error("\"\\uD800\\u0041\"", "json: unpaired high surrogate \\uD800 at "
                                       "byte 1 (expected a \\uDC00-\\uDFFF "
                                       "escape after it)");
    expect_error("\"\\uD800\\uD800\"", "json: unpaired high surrogate \\uD800 at "
                                       "byte 1 (expected a \\uDC00-\\uDFFF "
                                       "escape after it)");
    expect_error("\"\\uDBFFx\"", "json: unpaired high surrogate \\uDBFF at byte 1 "
                                 "(expected a \\uDC00-\\uDFFF escape after it)");
    expect_error("\"\\ud800\\udc0", "json: unpaired high surrogate \\uD800 at "
                                    "byte 1 (expected a \\uDC00-\\uDFFF escape "
                                    "after it)");
    /* Control characters must be escaped. */
    expect_error("\"a\nb\"", "json: unescaped control character 0x0a in a string "
                             "at byte 2");
    expect_error("\"\t\"", "json: unescaped control character 0x09 in a string "
                           "at byte 1");
    expect_error("\"\x1f\"", "json: unescaped control character 0x1f in a string "
                             "at byte 1");
    expect_error_n("\"a\0\"", 4, TLM_E_FORMAT,
                   "json: unescaped control character 0x00 in a string at byte 2");
    /* A key is a string too. */
    expect_error("{\"a\nb\": 1}", "json: unescaped control character 0x0a in a "
                                  "string at byte 3");
}

static void utf8_errors(void **state) {
    (void)state;
    static const struct {
        const char *text;
        const char *message;
    } cases[] = {
        {"\"\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0x80)"},
        {"\"\xbf\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xbf)"},
        {"\"\xc0\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xc0)"},
        {"\"\xc1\xbf\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xc1)"},
        {"\"a\xc3\"", "json: invalid UTF-8 in a string at byte 2 (byte 0xc3)"},
        {"\"\xc3(\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xc3)"},
        {"\"\xe0\x80\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xe0)"},
        {"\"\xe0\x9f\xbf\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xe0)"},
        {"\"\xed\xa0\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xed)"},
        {"\"\xed\xbf\xbf\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xed)"},
        {"\"\xe2\x82\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xe2)"},
        {"\"\xf0\x80\x80\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xf0)"},
        {"\"\xf0\x8f\xbf\xbf\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xf0)"},
        {"\"\xf4\x90\x80\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xf4)"},
        {"\"\xf5\x80\x80\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xf5)"},
        {"\"\xf8\x88\x80\x80\x80\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xf8)"},
        {"\"\xfe\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xfe)"},
        {"\"\xff\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xff)"},
        {"\"\xf0\x9f\x98\"", "json: invalid UTF-8 in a string at byte 1 (byte 0xf0)"},
        {"{\"ok\": \"\xc3\xa9\", \"bad\xe9\": 1}",
         "json: invalid UTF-8 in a string at byte 17 (byte 0xe9)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        expect_error(cases[i].text, cases[i].message);
}

static void duplicate_keys(void **state) {
    (void)state;
    expect_error("{\"a\":1,\"a\":2}",
                 "json: duplicate key \"a\" at byte 7 (first at byte 1)");
    expect_error("{\"a\":1,\"b\":2,\"c\":3,\"b\":4,\"a\":5}",
                 "json: duplicate key \"b\" at byte 19 (first at byte 7)");
    expect_error("[{}, {\"x\": {\"k\": 1, \"k\": 1}}]",
                 "json: duplicate key \"k\" at byte 20 (first at byte 12)");
    /* The same key spelled with an escape is the same key. */
    expect_error("{\"A\":1,\"\\u0041\":2}",
                 "json: duplicate key \"A\" at byte 7 (first at byte 1)");
    expect_error("{\"\":1,\"\":2}",
                 "json: duplicate key \"\" at byte 6 (first at byte 1)");
    /* Control characters are not printed raw. */
    expect_error("{\"a\\nb\":1,\"a\\nb\":2}",
                 "json: duplicate key \"a?b\" at byte 10 (first at byte 1)");
    /* Keys that differ only after a NUL are different. */
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;
    assert_int_equal(parse_text(&host, "{\"a\\u0000b\":1,\"a\\u0000c\":2,\"a\":3}",
                                &doc),
                     TLM_OK);
    tlmi_json_free(doc);
}

static void depth_limit(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    enum { BOMB = 100000 };
    char *text = malloc(2 * BOMB + 1);
    assert_non_null(text);
    /* A depth bomb stops at the limit, without recursing further. */
    memset(text, '[', BOMB);
    tlmi_json_doc *doc = NULL;
    assert_int_equal(tlmi_json_parse(&host, text, BOMB, NULL, &doc), TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "json: nesting deeper than 128 levels at byte 128");
    for (size_t i = 0; i < BOMB; i++)
        text[i] = i % 2 ? '[' : '{';
    assert_int_equal(tlmi_json_parse(&host, text, BOMB, NULL, &doc), TLM_E_FORMAT);
    /* "{[{[..." fails at the second byte: an object needs a key. */
    assert_string_equal(host.last_error,
                        "json: expected a string key or '}' at byte 1 (found '[')");
    /* Exactly 128 levels: accepted; 129: refused. */
    memset(text, '[', 128);
    memset(text + 128, ']', 128);
    assert_int_equal(tlmi_json_parse(&host, text, 256, NULL, &doc), TLM_OK);
    const tlmi_json_value *v = tlmi_json_root(doc);
    int depth = 0;
    while (v != NULL && v->type == TLMI_JSON_ARRAY) {
        depth++;
        v = tlmi_json_array_at(v, 0);
    }
    assert_int_equal(depth, 128);
    tlmi_json_free(doc);
    memset(text, '[', 129);
    memset(text + 129, ']', 129);
    assert_int_equal(tlmi_json_parse(&host, text, 258, NULL, &doc), TLM_E_FORMAT);
    /* Custom limits. */
    tlmi_json_limits limits = {0, 2};
    assert_int_equal(tlmi_json_parse(&host, "[[1]]", 5, &limits, &doc), TLM_OK);
    tlmi_json_free(doc);
    assert_int_equal(tlmi_json_parse(&host, "[{\"a\":[]}]", 10, &limits, &doc),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "json: nesting deeper than 2 levels at byte 6");
    limits.max_depth = TLMI_JSON_MAX_DEPTH_LIMIT + 1;
    assert_int_equal(tlmi_json_parse(&host, "1", 1, &limits, &doc), TLM_E_INVALID);
    assert_string_equal(host.last_error, "json: max_depth 1025 is outside 1..1024");
    limits.max_depth = TLMI_JSON_MAX_DEPTH_LIMIT;
    memset(text, '[', BOMB);
    assert_int_equal(tlmi_json_parse(&host, text, BOMB, &limits, &doc),
                     TLM_E_FORMAT);
    assert_string_equal(host.last_error,
                        "json: nesting deeper than 1024 levels at byte 1024");
    free(text);
}

static void size_limit_and_arguments(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;
    tlmi_json_limits limits = {10, 0};
    assert_int_equal(tlmi_json_parse(&host, "[1,2,3,4,5]", 11, &limits, &doc),
                     TLM_E_FORMAT);
    assert_null(doc);
    assert_string_equal(host.last_error,
                        "json: the document is 11 bytes, more than the limit of 10");
    assert_int_equal(tlmi_json_parse(&host, "[1,2,3,4]", 9, &limits, &doc), TLM_OK);
    tlmi_json_free(doc);
    assert_int_equal(tlmi_json_parse(&host, "1", 1, NULL, NULL), TLM_E_INVALID);
    assert_int_equal(tlmi_json_parse(&host, NULL, 1, NULL, &doc), TLM_E_INVALID);
    assert_string_equal(host.last_error, "json: text is NULL");
}

/* A document with every kind of value; every proper prefix is invalid
 * (the top level is an object) and must fail cleanly with an offset. */
static const char rich_document[] =
    "{\"name\": \"tlm \\u00e9\\uD83D\\uDE00 \\\"q\\\" \\\\ \\/ \\b\\f\\n\\r\\t\", "
    "\"utf8\": \"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\", "
    "\"ints\": [0, -1, 42, 9223372036854775807, -9223372036854775808], "
    "\"reals\": [0.5, -1.25e-3, 6.02E+23, 1e-400, -0.0], "
    "\"flags\": [true, false, null], \"empty\": {}, \"none\": [], "
    "\"nested\": {\"a\": {\"b\": [[1], [2, {\"c\": \"d\"}]]}}}";

static void every_truncation_fails(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    size_t size = sizeof rich_document - 1;
    tlmi_json_doc *doc = NULL;
    assert_int_equal(tlmi_json_parse(&host, rich_document, size, NULL, &doc),
                     TLM_OK);
    tlmi_json_free(doc);
    for (size_t cut = 0; cut < size; cut++) {
        /* Copy the prefix so that reading past it is caught by sanitizers
         * and valgrind. */
        char *prefix = malloc(cut ? cut : 1);
        assert_non_null(prefix);
        memcpy(prefix, rich_document, cut);
        doc = NULL;
        int status = tlmi_json_parse(&host, prefix, cut, NULL, &doc);
        if (status != TLM_E_FORMAT)
            print_error("prefix of %zu bytes: status %d\n", cut, status);
        assert_int_equal(status, TLM_E_FORMAT);
        assert_null(doc);
        assert_non_null(strstr(host.last_error, " at byte "));
        assert_int_equal(strncmp(host.last_error, "json: ", 6), 0);
        free(prefix);
    }
    assert_int_equal(counter.live_bytes, 0);
}

/* Every byte replaced by characters that matter to the grammar: the
 * result is a document or an error, never a crash or a leak. */
static void corruptions_never_crash(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    static const unsigned char replacements[] = {
        '{', '}', '[', ']', '"', '\\', ',', ':', '0', '-', 'e', '.', 'u',
        ' ', 0x00, 0x1f, 0x80, 0xc3, 0xed, 0xf4, 0xff};
    size_t size = sizeof rich_document - 1;
    char *copy = malloc(size);
    assert_non_null(copy);
    int ok = 0, failed = 0;
    for (size_t i = 0; i < size; i++) {
        for (size_t r = 0; r < sizeof replacements; r++) {
            memcpy(copy, rich_document, size);
            copy[i] = (char)replacements[r];
            tlmi_json_doc *doc = NULL;
            int status = tlmi_json_parse(&host, copy, size, NULL, &doc);
            if (status == TLM_OK) {
                ok++;
                tlmi_json_free(doc);
            } else {
                assert_int_equal(status, TLM_E_FORMAT);
                assert_null(doc);
                failed++;
            }
        }
    }
    assert_true(ok > 0);
    assert_true(failed > 0);
    assert_int_equal(counter.live_bytes, 0);
    free(copy);
}

/* Fail the N-th allocation, for every N: always TLM_E_NOMEM, no leak. */
static void allocation_failures(void **state) {
    (void)state;
    size_t size = sizeof rich_document - 1;
    int failures = 0;
    for (int64_t n = 1;; n++) {
        counting_allocator counter = {.fail_at = n};
        tlmi_host host;
        counting_host(&host, &counter);
        tlmi_json_doc *doc = NULL;
        int status = tlmi_json_parse(&host, rich_document, size, NULL, &doc);
        if (status == TLM_OK) {
            assert_true((int64_t)counter.calls < n);
            tlmi_json_free(doc);
            assert_int_equal(counter.live_bytes, 0);
            break;
        }
        assert_int_equal(status, TLM_E_NOMEM);
        assert_null(doc);
        assert_non_null(strstr(host.last_error, "out of memory"));
        assert_int_equal(counter.live_bytes, 0);
        assert_int_equal(counter.bad_free_sizes, 0);
        failures++;
    }
    assert_true(failures >= 2);

    /* A document big enough to grow the scratch stack and several
     * chunks. */
    enum { N = 3000 };
    size_t capacity = (size_t)N * 40;
    char *text = malloc(capacity);
    assert_non_null(text);
    size_t used = 0;
    text[used++] = '[';
    for (int i = 0; i < N; i++)
        used += (size_t)snprintf(text + used, capacity - used,
                                 "%s{\"k%d\":\"v%d\"}", i ? "," : "", i, i);
    text[used++] = ']';
    failures = 0;
    for (int64_t n = 1;; n++) {
        counting_allocator counter = {.fail_at = n};
        tlmi_host host;
        counting_host(&host, &counter);
        tlmi_json_doc *doc = NULL;
        int status = tlmi_json_parse(&host, text, used, NULL, &doc);
        if (status == TLM_OK) {
            assert_int_equal(tlmi_json_count(tlmi_json_root(doc)), N);
            tlmi_json_free(doc);
            assert_int_equal(counter.live_bytes, 0);
            break;
        }
        assert_int_equal(status, TLM_E_NOMEM);
        assert_int_equal(counter.live_bytes, 0);
        failures++;
    }
    assert_true(failures >= 5);
    free(text);
}

/* ------------------------------------------------------------------------
 * Writer
 */

static void writer_output(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_writer w;
    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_key(&w, "s");
    tlmi_json_write_string(&w, "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9");
    tlmi_json_write_key(&w, "n");
    tlmi_json_write_array_begin(&w);
    tlmi_json_write_int64(&w, INT64_MIN);
    tlmi_json_write_int64(&w, 0);
    tlmi_json_write_double(&w, 0.1);
    tlmi_json_write_double(&w, -2.5e-300);
    tlmi_json_write_double(&w, 1e21);
    tlmi_json_write_double(&w, 1.0);
    tlmi_json_write_double(&w, -0.0);
    tlmi_json_write_float(&w, 0.1f);
    tlmi_json_write_float(&w, 16777216.0f);
    tlmi_json_write_float(&w, 3.4028235e38f);
    tlmi_json_write_double(&w, 1.0 / 3.0);
    tlmi_json_write_array_end(&w);
    tlmi_json_write_key(&w, "e");
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_object_end(&w);
    tlmi_json_write_key(&w, "a");
    tlmi_json_write_array_begin(&w);
    tlmi_json_write_bool(&w, 1);
    tlmi_json_write_bool(&w, 0);
    tlmi_json_write_null(&w);
    tlmi_json_write_array_begin(&w);
    tlmi_json_write_array_end(&w);
    tlmi_json_write_array_end(&w);
    tlmi_json_write_key_n(&w, "k\0z", 3);
    tlmi_json_write_string_n(&w, "v\0w", 3);
    tlmi_json_write_object_end(&w);
    const char *text = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_json_writer_result(&w, &text, &size), TLM_OK);
    const char *expected =
        "{\"s\":\"q\\\"b\\\\s/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f \xc3\xa9\","
        "\"n\":[-9223372036854775808,0,0.1,-2.5e-300,1e+21,1,-0,0.1,16777216,"
        "3.4028235e+38,0.3333333333333333],\"e\":{},\"a\":[true,false,null,[]],"
        "\"k\\u0000z\":\"v\\u0000w\"}";
    assert_string_equal(text, expected);
    assert_int_equal(size, strlen(expected));

    /* Read back: the same values. */
    tlmi_json_doc *doc = NULL;
    assert_int_equal(tlmi_json_parse(&host, text, size, NULL, &doc), TLM_OK);
    const tlmi_json_value *root = tlmi_json_root(doc);
    size_t n = 0;
    assert_string_equal(tlmi_json_string(tlmi_json_object_get(root, "s"), &n),
                        "q\"b\\s/\b\f\n\r\t\x01\x1f\x7f \xc3\xa9");
    const tlmi_json_value *numbers = tlmi_json_object_get(root, "n");
    assert_int_equal(tlmi_json_array_at(numbers, 0)->as.number.integer, INT64_MIN);
    assert_true(tlmi_json_array_at(numbers, 2)->as.number.real == 0.1);
    assert_true((float)tlmi_json_array_at(numbers, 7)->as.number.real == 0.1f);
    assert_true((float)tlmi_json_array_at(numbers, 9)->as.number.real ==
                3.4028235e38f);
    assert_true(tlmi_json_array_at(numbers, 10)->as.number.real == 1.0 / 3.0);
    assert_true(signbit(tlmi_json_array_at(numbers, 6)->as.number.real));
    assert_non_null(tlmi_json_object_get_n(root, "k\0z", 3));
    tlmi_json_free(doc);
    tlmi_json_writer_release(&w);
    tlmi_json_writer_release(&w); /* released twice: harmless */
}

/* splitmix64, for reproducible random bit patterns. */
static uint64_t next_random(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

/* Random doubles and floats of every magnitude read back bit for bit;
 * random byte strings read back byte for byte. */
static void writer_round_trip(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlmi_host host;
    counting_host(&host, &counter);
    enum { N = 4000 };
    double *doubles = malloc(N * sizeof *doubles);
    float *floats = malloc(N * sizeof *floats);
    assert_non_null(doubles);
    assert_non_null(floats);
    uint64_t seed = 12345;
    for (int i = 0; i < N; i++) {
        double d;
        float f;
        do {
            uint64_t bits = next_random(&seed);
            memcpy(&d, &bits, sizeof d);
        } while (!isfinite(d));
        do {
            uint32_t bits = (uint32_t)next_random(&seed);
            memcpy(&f, &bits, sizeof f);
        } while (!isfinite(f));
        doubles[i] = d;
        floats[i] = f;
    }
    doubles[0] = 5e-324; /* smallest subnormal */
    doubles[1] = 1.7976931348623157e308;
    floats[0] = 1e-45f;
    floats[1] = 3.4028235e38f;

    tlmi_json_writer w;
    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_key(&w, "d");
    tlmi_json_write_array_begin(&w);
    for (int i = 0; i < N; i++)
        tlmi_json_write_double(&w, doubles[i]);
    tlmi_json_write_array_end(&w);
    tlmi_json_write_key(&w, "f");
    tlmi_json_write_array_begin(&w);
    for (int i = 0; i < N; i++)
        tlmi_json_write_float(&w, floats[i]);
    tlmi_json_write_array_end(&w);
    /* Strings of random bytes made valid: every ASCII byte including
     * controls and NUL, and multi-byte characters. */
    tlmi_json_write_key(&w, "s");
    tlmi_json_write_array_begin(&w);
    char strings[64][40];
    size_t lengths[64];
    for (int i = 0; i < 64; i++) {
        size_t n = 0;
        while (n < 32) {
            uint64_t r = next_random(&seed);
            if (r % 5 == 0) {
                memcpy(strings[i] + n, "\xe2\x82\xac", 3);
                n += 3;
            } else {
                strings[i][n++] = (char)(r % 128);
            }
        }
        lengths[i] = n;
        tlmi_json_write_string_n(&w, strings[i], n);
    }
    tlmi_json_write_array_end(&w);
    tlmi_json_write_object_end(&w);
    const char *text = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_json_writer_result(&w, &text, &size), TLM_OK);

    tlmi_json_doc *doc = NULL;
    assert_int_equal(tlmi_json_parse(&host, text, size, NULL, &doc), TLM_OK);
    const tlmi_json_value *root = tlmi_json_root(doc);
    const tlmi_json_value *d = tlmi_json_object_get(root, "d");
    const tlmi_json_value *f = tlmi_json_object_get(root, "f");
    const tlmi_json_value *s = tlmi_json_object_get(root, "s");
    assert_int_equal(tlmi_json_count(d), N);
    assert_int_equal(tlmi_json_count(f), N);
    for (int i = 0; i < N; i++) {
        double back = tlmi_json_array_at(d, (size_t)i)->as.number.real;
        float fback = (float)tlmi_json_array_at(f, (size_t)i)->as.number.real;
        assert_memory_equal(&back, &doubles[i], sizeof back);
        assert_memory_equal(&fback, &floats[i], sizeof fback);
    }
    for (int i = 0; i < 64; i++) {
        size_t n = 0;
        const char *bytes = tlmi_json_string(tlmi_json_array_at(s, (size_t)i), &n);
        assert_int_equal(n, lengths[i]);
        assert_memory_equal(bytes, strings[i], n);
    }
    /* Shortest forms: no more digits than needed. */
    char buf[32];
    assert_int_equal(tlmi_json_format_double(buf, 0.3, 17), 3);
    assert_string_equal(buf, "0.3");
    assert_int_equal(tlmi_json_format_double(buf, 123456789.0, 17), 9);
    assert_int_equal(tlmi_json_format_double(buf, (double)NAN, 17), 0);
    tlmi_json_free(doc);
    tlmi_json_writer_release(&w);
    assert_int_equal(counter.live_bytes, 0);
    free(doubles);
    free(floats);
}

static void writer_misuse(void **state) {
    (void)state;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_writer w;
    const char *text = NULL;
    size_t size = 0;

    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_object_begin(&w);
    assert_int_equal(tlmi_json_write_int64(&w, 1), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: number in an object without a key");
    /* Sticky: later calls return the same error. */
    assert_int_equal(tlmi_json_write_key(&w, "a"), TLM_E_STATE);
    assert_int_equal(tlmi_json_writer_result(&w, &text, &size), TLM_E_STATE);
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_array_begin(&w);
    assert_int_equal(tlmi_json_write_key(&w, "a"), TLM_E_STATE);
    assert_string_equal(host.last_error, "json writer: key inside an array");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_key(&w, "a"), TLM_E_STATE);
    assert_string_equal(host.last_error, "json writer: key outside an object");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_key(&w, "a");
    assert_int_equal(tlmi_json_write_key(&w, "b"), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: key where the previous key's value is due");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_key(&w, "a");
    assert_int_equal(tlmi_json_write_object_end(&w), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: end of object after a key without its value");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_array_begin(&w);
    assert_int_equal(tlmi_json_write_object_end(&w), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: end of object inside an array");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_array_end(&w), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: end of array with none open");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_int64(&w, 1), TLM_OK);
    assert_int_equal(tlmi_json_write_int64(&w, 2), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: number after the complete document");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_writer_result(&w, &text, &size), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: the document is incomplete (0 containers open)");
    tlmi_json_write_array_begin(&w);
    tlmi_json_write_array_begin(&w);
    assert_int_equal(tlmi_json_writer_result(&w, &text, &size), TLM_E_STATE);
    assert_string_equal(host.last_error,
                        "json writer: the document is incomplete (2 containers open)");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_array_begin(&w);
    assert_int_equal(tlmi_json_write_double(&w, (double)NAN), TLM_E_NONFINITE);
    assert_string_equal(host.last_error, "json writer: NaN is not a JSON number");
    tlmi_json_writer_release(&w);
    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_float(&w, -INFINITY), TLM_E_NONFINITE);
    assert_string_equal(host.last_error,
                        "json writer: an infinity is not a JSON number");
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_string(&w, "ok\xc3("), TLM_E_INVALID);
    assert_string_equal(host.last_error,
                        "json writer: string is not valid UTF-8 at byte 2 (0xc3)");
    tlmi_json_writer_release(&w);
    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_string(&w, "\xed\xa0\x80"), TLM_E_INVALID);
    tlmi_json_writer_release(&w);
    tlmi_json_writer_init(&w, &host);
    assert_int_equal(tlmi_json_write_string(&w, NULL), TLM_E_INVALID);
    tlmi_json_writer_release(&w);

    tlmi_json_writer_init(&w, &host);
    for (int i = 0; i < TLMI_JSON_WRITER_MAX_DEPTH; i++)
        assert_int_equal(tlmi_json_write_array_begin(&w), TLM_OK);
    assert_int_equal(tlmi_json_write_array_begin(&w), TLM_E_RANGE);
    assert_string_equal(host.last_error,
                        "json writer: nesting deeper than 64 levels");
    tlmi_json_writer_release(&w);
}

static void writer_allocation_failures(void **state) {
    (void)state;
    int failures = 0;
    for (int64_t n = 1;; n++) {
        counting_allocator counter = {.fail_at = n};
        tlmi_host host;
        counting_host(&host, &counter);
        tlmi_json_writer w;
        tlmi_json_writer_init(&w, &host);
        tlmi_json_write_array_begin(&w);
        for (int i = 0; i < 500; i++) {
            tlmi_json_write_string(&w, "a string long enough to grow the buffer");
            tlmi_json_write_double(&w, i * 0.1);
        }
        tlmi_json_write_array_end(&w);
        const char *text = NULL;
        size_t size = 0;
        int status = tlmi_json_writer_result(&w, &text, &size);
        tlmi_json_writer_release(&w);
        assert_int_equal(counter.live_bytes, 0);
        if (status == TLM_OK)
            break;
        assert_int_equal(status, TLM_E_NOMEM);
        assert_non_null(strstr(host.last_error, "json writer: out of memory"));
        failures++;
    }
    assert_true(failures >= 5);
}

/* A C locale whose decimal point is ',' must change nothing. Skipped when
 * the system has no such locale. */
static void decimal_comma_locale(void **state) {
    (void)state;
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
                                        "fr_FR.utf8", "de_DE", "fr_FR"};
    const char *found = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !found; i++)
        if (setlocale(LC_NUMERIC, names[i]) != NULL)
            found = names[i];
    if (found == NULL || strcmp(localeconv()->decimal_point, ",") != 0) {
        setlocale(LC_NUMERIC, "C");
        skip();
    }
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_json_doc *doc = NULL;
    assert_int_equal(parse_text(&host, "[0.5, 1.25e2]", &doc), TLM_OK);
    assert_true(tlmi_json_array_at(tlmi_json_root(doc), 0)->as.number.real == 0.5);
    assert_true(tlmi_json_array_at(tlmi_json_root(doc), 1)->as.number.real == 125.0);
    tlmi_json_free(doc);
    tlmi_json_writer w;
    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_array_begin(&w);
    tlmi_json_write_double(&w, 0.1);
    tlmi_json_write_float(&w, 2.5f);
    tlmi_json_write_array_end(&w);
    const char *text = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_json_writer_result(&w, &text, &size), TLM_OK);
    assert_string_equal(text, "[0.1,2.5]");
    tlmi_json_writer_release(&w);
    setlocale(LC_NUMERIC, "C");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scalars_at_top_level),
        cmocka_unit_test(numbers),
        cmocka_unit_test(strings_and_escapes),
        cmocka_unit_test(objects_and_arrays),
        cmocka_unit_test(large_object_lookup),
        cmocka_unit_test(checked_conversions),
        cmocka_unit_test(syntax_errors),
        cmocka_unit_test(number_errors),
        cmocka_unit_test(string_errors),
        cmocka_unit_test(utf8_errors),
        cmocka_unit_test(duplicate_keys),
        cmocka_unit_test(depth_limit),
        cmocka_unit_test(size_limit_and_arguments),
        cmocka_unit_test(every_truncation_fails),
        cmocka_unit_test(corruptions_never_crash),
        cmocka_unit_test(allocation_failures),
        cmocka_unit_test(writer_output),
        cmocka_unit_test(writer_round_trip),
        cmocka_unit_test(writer_misuse),
        cmocka_unit_test(writer_allocation_failures),
        cmocka_unit_test(decimal_comma_locale),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
