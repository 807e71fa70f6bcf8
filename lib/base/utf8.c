/*
 * Strict UTF-8: the one reader and writer of the library (utf8.h).
 */
#include "utf8.h"

/* Range of the byte after a lead byte: tighter than 80..BF for the leads
 * whose shortest or longest forms are invalid. */
static int second_byte_ok(unsigned char lead, unsigned char second) {
    switch (lead) {
    case 0xE0: return second >= 0xA0 && second <= 0xBF; /* no overlong */
    case 0xED: return second >= 0x80 && second <= 0x9F; /* no surrogates */
    case 0xF0: return second >= 0x90 && second <= 0xBF; /* no overlong */
    case 0xF4: return second >= 0x80 && second <= 0x8F; /* <= U+10FFFF */
    default: return second >= 0x80 && second <= 0xBF;
    }
}

/* Length of the character a lead byte starts; 0 when it cannot start one
 * of two or more bytes (ASCII, continuation bytes, C0, C1, F5..FF). */
static size_t lead_length(unsigned char c) {
    if (c >= 0xC2 && c <= 0xDF)
        return 2;
    if (c >= 0xE0 && c <= 0xEF)
        return 3;
    if (c >= 0xF0 && c <= 0xF4)
        return 4;
    return 0;
}

size_t tlmi_utf8_decode(const unsigned char *s, size_t n, uint32_t *code) {
    if (s[0] < 0x80) {
        *code = s[0];
        return 1;
    }
    size_t len = lead_length(s[0]);
    if (len == 0 || n < len || !second_byte_ok(s[0], s[1]))
        return 0;
    for (size_t i = 2; i < len; i++)
        if (!tlmi_utf8_is_continuation(s[i]))
            return 0;
    uint32_t c = s[0] & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (s[i] & 0x3Fu);
    *code = c;
    return len;
}

int tlmi_utf8_valid(const unsigned char *s, size_t length, size_t *bad) {
    for (size_t i = 0; i < length;) {
        uint32_t code;
        size_t len = tlmi_utf8_decode(s + i, length - i, &code);
        if (len == 0) {
            if (bad != NULL)
                *bad = i;
            return 0;
        }
        i += len;
    }
    return 1;
}

size_t tlmi_utf8_unfinished_tail(const unsigned char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = s[n - k];
        if (tlmi_utf8_is_continuation(c))
            continue; /* look further back for the lead */
        size_t len = lead_length(c);
        if (len <= k)
            return 0; /* ASCII, an invalid byte, or a finished sequence */
        if (k >= 2 && !second_byte_ok(c, s[n - k + 1]))
            return 0;
        return k; /* bytes after the lead are continuations (checked) */
    }
    return 0;
}

size_t tlmi_utf8_encode(uint32_t code, unsigned char *out) {
    if (code < 0x80) {
        out[0] = (unsigned char)code;
        return 1;
    }
    if (code < 0x800) {
        out[0] = (unsigned char)(0xC0 | (code >> 6));
        out[1] = (unsigned char)(0x80 | (code & 0x3F));
        return 2;
    }
    if (code < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (code >> 12));
        out[1] = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (code & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (code >> 18));
    out[1] = (unsigned char)(0x80 | ((code >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((code >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (code & 0x3F));
    return 4;
}
