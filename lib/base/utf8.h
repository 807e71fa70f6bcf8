/*
 * Strict UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above
 * U+10FFFF), shared by the JSON reader and the tokenizers.
 */
#ifndef TLM_LIB_BASE_UTF8_H
#define TLM_LIB_BASE_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Length (1..4) of the valid UTF-8 character at the start of `s` (n > 0
 * bytes), storing its code point; 0 when the first byte does not start a
 * valid character (overlong forms, surrogates and values above U+10FFFF
 * are invalid, and so is a character cut short by the end). */
size_t tlmi_utf8_decode(const unsigned char *s, size_t n, uint32_t *code);

/* 1 when all `length` bytes are valid UTF-8; otherwise 0, storing the
 * offset of the first byte that does not start a valid character in *bad
 * (when bad is not NULL). */
int tlmi_utf8_valid(const unsigned char *s, size_t length, size_t *bad);

/* Length (0..3) of the longest suffix of `s` (n bytes) that is the
 * beginning of a valid UTF-8 character still missing bytes. */
size_t tlmi_utf8_unfinished_tail(const unsigned char *s, size_t n);

/* Writes the UTF-8 form of a scalar value (< 0x110000, not a surrogate)
 * into `out` (room for 4) and returns its length. */
size_t tlmi_utf8_encode(uint32_t code, unsigned char *out);

/* 1 for a continuation byte (10xxxxxx). */
static inline int tlmi_utf8_is_continuation(unsigned char c) {
    return (c & 0xC0) == 0x80;
}

#endif
