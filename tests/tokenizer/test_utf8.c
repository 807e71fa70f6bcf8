/*
 * Suite "tokenizer": the strict UTF-8 reader and writer of utf8.h (used
 * by the JSON reader and the tokenizers), checked on chosen valid and
 * invalid sequences (overlong forms, surrogates, truncated characters,
 * values above U+10FFFF) and against an independent reader.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/utf8.h"
#include "tok_test_util.h"

static size_t decode(const char *s, size_t n, uint32_t *code) {
    *code = 0xFFFFFFFFu;
    return tlmi_utf8_decode((const unsigned char *)s, n, code);
}

static void utf8_reader_is_strict(void **state) {
    (void)state;
    uint32_t c;
    assert_int_equal(decode("A", 1, &c), 1);
    assert_int_equal(c, 'A');
    assert_int_equal(decode("\xC3\xA9", 2, &c), 2);
    assert_int_equal(c, 0xE9);
    assert_int_equal(decode("\xE2\x82\xAC", 3, &c), 3);
    assert_int_equal(c, 0x20AC);
    assert_int_equal(decode("\xF0\x9F\x98\x80", 4, &c), 4);
    assert_int_equal(c, 0x1F600);
    assert_int_equal(decode("\xF4\x8F\xBF\xBF", 4, &c), 4);
    assert_int_equal(c, 0x10FFFF);
    assert_int_equal(decode("\xEF\xBF\xBD", 3, &c), 3);
    /* Invalid: overlong forms, surrogates, above U+10FFFF, stray
     * continuation bytes, bytes never used, missing bytes. */
    const char *invalid[] = {
        "\xC0\x80", "\xC1\xBF", "\xE0\x80\x80", "\xE0\x9F\xBF", "\xF0\x80\x80\x80",
        "\xF0\x8F\xBF\xBF", "\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80",
        "\xF5\x80\x80\x80", "\xFF", "\x80", "\xBF", "\xC3", "\xE2\x82", "\xC3" "A",
        "\xE2\x82" "A", "\xF0\x9F\x98",
    };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid[0]; i++)
        assert_int_equal(decode(invalid[i], strlen(invalid[i]), &c), 0);
    /* The test's own reader agrees on every 1..4-byte string over a set of
     * interesting bytes. */
    static const unsigned char bytes[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0,
                                          0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0,
                                          0xF4, 0xF5, 0xFF};
    const size_t nb = sizeof bytes;
    for (size_t a = 0; a < nb; a++)
        for (size_t b = 0; b < nb; b++)
            for (size_t d = 0; d < nb; d++)
                for (size_t e = 0; e < nb; e++) {
                    unsigned char s[4] = {bytes[a], bytes[b], bytes[d], bytes[e]};
                    for (size_t n = 1; n <= 4; n++)
                        assert_int_equal(tlmi_utf8_decode(s, n, &c), test_utf8_length(s, n));
                }
}

static size_t tail(const char *s) {
    return tlmi_utf8_unfinished_tail((const unsigned char *)s, strlen(s));
}

static void unfinished_tails(void **state) {
    (void)state;
    assert_int_equal(tail(""), 0);
    assert_int_equal(tail("abc"), 0);
    assert_int_equal(tail("ab\xC3"), 1);
    assert_int_equal(tail("ab\xC3\xA9"), 0);
    assert_int_equal(tail("\xE2"), 1);
    assert_int_equal(tail("\xE2\x82"), 2);
    assert_int_equal(tail("\xE2\x82\xAC"), 0);
    assert_int_equal(tail("x\xF0\x9F\x98"), 3);
    assert_int_equal(tail("\xF0\x9F"), 2);
    assert_int_equal(tail("\xF0\x9F\x98\x80"), 0);
    /* Cannot be finished: not held. */
    assert_int_equal(tail("\xE0\x80"), 0); /* overlong */
    assert_int_equal(tail("\xED\xA0"), 0); /* surrogate */
    assert_int_equal(tail("\xF4\x90"), 0); /* above U+10FFFF */
    assert_int_equal(tail("\xF5"), 0);
    assert_int_equal(tail("\xC0"), 0);
    assert_int_equal(tail("\x80"), 0);
    assert_int_equal(tail("\x80\x80\x80"), 0);
    assert_int_equal(tail("\xC3\x80\x80"), 0);
    /* A tail is held exactly when it is a proper prefix of the UTF-8 form
     * of some scalar value: all such prefixes are enumerated from the
     * definition and every short string over interesting bytes checked. */
    unsigned char *prefix2 = calloc(1 << 16, 1);
    unsigned char *prefix3 = calloc(1 << 24, 1);
    unsigned char prefix1[256] = {0};
    for (uint32_t c = 0x80; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        unsigned char u[4];
        size_t len = test_put_utf8(u, c);
        prefix1[u[0]] = 1;
        if (len > 2)
            prefix2[u[0] << 8 | u[1]] = 1;
        if (len > 3)
            prefix3[(size_t)u[0] << 16 | (size_t)u[1] << 8 | u[2]] = 1;
    }
    static const unsigned char bytes[] = {0x41, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0,
                                          0xC2, 0xDF, 0xE0, 0xE2, 0xED, 0xF0, 0xF4, 0xF5};
    const size_t nb = sizeof bytes;
    for (size_t a = 0; a < nb; a++)
        for (size_t b = 0; b < nb; b++)
            for (size_t d = 0; d < nb; d++) {
                unsigned char s[3] = {bytes[a], bytes[b], bytes[d]};
                for (size_t n = 1; n <= 3; n++) {
                    const unsigned char *e = s + n; /* one past the end */
                    size_t expected = 0;
                    if (prefix1[e[-1]])
                        expected = 1;
                    if (n >= 2 && prefix2[e[-2] << 8 | e[-1]])
                        expected = 2;
                    if (n >= 3 && prefix3[(size_t)e[-3] << 16 | (size_t)e[-2] << 8 | e[-1]])
                        expected = 3;
                    size_t k = tlmi_utf8_unfinished_tail(s, n);
                    if (k != expected)
                        fail_msg("tail of %02X %02X %02X (n=%zu): %zu, expected %zu", s[0],
                                 s[1], s[2], n, k, expected);
                }
            }
    free(prefix2);
    free(prefix3);
}

/* Every scalar value encodes to what the test's own writer gives and
 * decodes back to itself. */
static void encode_round_trips(void **state) {
    (void)state;
    for (uint32_t c = 0; c < 0x110000; c++) {
        if (c >= 0xD800 && c <= 0xDFFF)
            continue;
        unsigned char got[4], want[4];
        size_t len = tlmi_utf8_encode(c, got);
        assert_int_equal(len, test_put_utf8(want, c));
        assert_memory_equal(got, want, len);
        uint32_t back = 0xFFFFFFFFu;
        assert_int_equal(tlmi_utf8_decode(got, len, &back), len);
        assert_int_equal(back, c);
    }
}

static size_t first_bad(const char *s) {
    size_t bad = 12345;
    if (tlmi_utf8_valid((const unsigned char *)s, strlen(s), &bad))
        return (size_t)-1;
    return bad;
}

static void whole_strings(void **state) {
    (void)state;
    assert_true(tlmi_utf8_valid((const unsigned char *)"", 0, NULL));
    assert_int_equal(first_bad("plain"), (size_t)-1);
    assert_int_equal(first_bad("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"), (size_t)-1);
    assert_int_equal(first_bad("ab\xC0\x80"), 2);          /* overlong */
    assert_int_equal(first_bad("\xC3\xA9\xED\xA0\x80"), 2);  /* surrogate */
    assert_int_equal(first_bad("x\xF4\x90\x80\x80"), 1);     /* > U+10FFFF */
    assert_int_equal(first_bad("abc\xE2\x82"), 3);         /* truncated */
    assert_int_equal(first_bad("\x80"), 0);                 /* stray */
    assert_false(tlmi_utf8_valid((const unsigned char *)"\xFF", 1, NULL));
    /* NUL is a valid character: the length counts, not the terminator. */
    assert_true(tlmi_utf8_valid((const unsigned char *)"a\0b", 3, NULL));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(utf8_reader_is_strict),
        cmocka_unit_test(unfinished_tails),
        cmocka_unit_test(encode_round_trips),
        cmocka_unit_test(whole_strings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
