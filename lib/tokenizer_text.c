/*
 * Text for the tokenizers: a strict UTF-8 reader (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF) and the pre-split of text
 * into chunks that BPE merges within (docs/tokenizer.md, "Pre-split").
 */
#include "tokenizer.h"

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

static int is_continuation(unsigned char c) { return (c & 0xC0) == 0x80; }

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
        if (!is_continuation(s[i]))
            return 0;
    uint32_t c = s[0] & (0x7Fu >> len);
    for (size_t i = 1; i < len; i++)
        c = (c << 6) | (s[i] & 0x3Fu);
    *code = c;
    return len;
}

size_t tlmi_utf8_unfinished_tail(const unsigned char *s, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        unsigned char c = s[n - k];
        if (is_continuation(c))
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

/* Byte classes of the pre-split. Every byte of a multi-byte character is
 * >= 0x80 and so a letter: class boundaries never split a character. */
enum { LETTER, DIGIT, SPACE, OTHER };

static int byte_class(unsigned char c) {
    if (c >= 0x80 || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return LETTER;
    if (c >= '0' && c <= '9')
        return DIGIT;
    if (c == ' ' || (c >= '\t' && c <= '\r'))
        return SPACE;
    return OTHER;
}

/* Length of the English contraction ('s 't 'm 'd 're 've 'll) at `s`, or
 * 0. */
static size_t contraction_length(const unsigned char *t, size_t n, size_t s) {
    if (t[s] != '\'' || s + 1 >= n)
        return 0;
    unsigned char a = t[s + 1];
    if (a == 's' || a == 't' || a == 'm' || a == 'd')
        return 2;
    if (s + 2 >= n)
        return 0;
    unsigned char b = t[s + 2];
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') ||
        (a == 'l' && b == 'l'))
        return 3;
    return 0;
}

static size_t run_end(const unsigned char *t, size_t n, size_t i, int cls) {
    while (i < n && byte_class(t[i]) == cls)
        i++;
    return i;
}

size_t tlmi_chunk_end(const unsigned char *t, size_t n, size_t start) {
    size_t end;
    size_t contraction = contraction_length(t, n, start);
    if (contraction > 0) {
        end = start + contraction;
    } else if (t[start] == ' ' && start + 1 < n &&
               byte_class(t[start + 1]) != SPACE) {
        /* A word, number or punctuation run with its leading space. */
        end = run_end(t, n, start + 1, byte_class(t[start + 1]));
    } else if (byte_class(t[start]) != SPACE) {
        end = run_end(t, n, start, byte_class(t[start]));
    } else {
        /* Whitespace: a final space before a non-space is left to start
         * the next chunk (" word"). */
        end = run_end(t, n, start, SPACE);
        if (end < n && end - start >= 2 && t[end - 1] == ' ')
            end--;
    }
    if (end - start > TLMI_CHUNK_MAX) {
        /* Cut a long run, not inside a character: back over at most three
         * continuation bytes to the character's lead byte. */
        end = start + TLMI_CHUNK_MAX;
        for (int back = 0; back < 3 && is_continuation(t[end]); back++)
            end--;
    }
    return end;
}
