/* Helpers shared by the tokenizer tests: a seeded generator, random texts
 * of several flavours and corpora of them, an independent strict UTF-8
 * reader, the corpus locator, and a CRC-32 for crafting files. Header-only
 * (static). */
#ifndef TLM_TESTS_TOK_TEST_UTIL_H
#define TLM_TESTS_TOK_TEST_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* splitmix64: small, seedable, the same everywhere. */
static inline uint64_t test_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint32_t test_below(uint64_t *state, uint32_t n) {
    return (uint32_t)(test_next(state) % n);
}

/* Appends the UTF-8 form of code point c (any value up to 0x10FFFF,
 * surrogates included, which then come out as invalid bytes). */
static inline size_t test_put_utf8(unsigned char *out, uint32_t c) {
    if (c < 0x80) {
        out[0] = (unsigned char)c;
        return 1;
    }
    if (c < 0x800) {
        out[0] = (unsigned char)(0xC0 | (c >> 6));
        out[1] = (unsigned char)(0x80 | (c & 0x3F));
        return 2;
    }
    if (c < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (c >> 12));
        out[1] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (c & 0x3F));
        return 3;
    }
    out[0] = (unsigned char)(0xF0 | (c >> 18));
    out[1] = (unsigned char)(0x80 | ((c >> 12) & 0x3F));
    out[2] = (unsigned char)(0x80 | ((c >> 6) & 0x3F));
    out[3] = (unsigned char)(0x80 | (c & 0x3F));
    return 4;
}

/* A random text of at most `max` bytes (max >= 4) in one of five
 * flavours: random bytes; random code points of every UTF-8 length;
 * English-like words, numbers, punctuation and whitespace; the same with
 * accented letters and emoji; and the text flavours with random bytes
 * spliced in. Returns its length (0 happens). */
static inline size_t test_random_text(uint64_t *rng, unsigned char *out,
                                      size_t max) {
    static const char *const words[] = {
        "the", "of", "and", "to", "in", "thou", "art", "don't", "we'll",
        "HELLO", "caf\xC3\xA9", "na\xC3\xAFve", "\xE2\x82\xAC" "5",
        "\xF0\x9F\x98\x80", "3.14", "1999", "--", "!!", "?", "\n", "\n\n",
        "\t", "   ", "it's", "Stra\xC3\x9F" "e", "\xE6\x97\xA5\xE6\x9C\xAC",
    };
    const size_t n_words = sizeof words / sizeof words[0];
    size_t len = test_below(rng, (uint32_t)max + 1);
    uint32_t flavour = test_below(rng, 5);
    size_t n = 0;
    while (n + 4 <= len) {
        switch (flavour) {
        case 0:
            out[n++] = (unsigned char)test_below(rng, 256);
            break;
        case 1: {
            static const uint32_t limits[4] = {0x80, 0x800, 0x10000, 0x110000};
            uint32_t c = test_below(rng, limits[test_below(rng, 4)]);
            n += test_put_utf8(out + n, c);
            break;
        }
        default: {
            const char *w = words[test_below(rng, (uint32_t)n_words)];
            size_t wl = strlen(w);
            if (test_below(rng, 3) != 0 && n + 1 + wl <= len)
                out[n++] = ' ';
            if (n + wl > len)
                goto done;
            memcpy(out + n, w, wl);
            n += wl;
            if (flavour == 4 && n < len && test_below(rng, 4) == 0)
                out[n++] = (unsigned char)(0x80 + test_below(rng, 128));
            break;
        }
        }
    }
done:
    return n;
}

/* `count` random texts of at most `max_text` bytes each, concatenated;
 * *size receives the length. The caller frees it. */
static inline unsigned char *test_random_corpus(uint64_t seed, int count,
                                                size_t max_text, size_t *size) {
    unsigned char *corpus = malloc((size_t)count * max_text);
    uint64_t rng = seed;
    size_t n = 0;
    for (int i = 0; i < count; i++)
        n += test_random_text(&rng, corpus + n, max_text);
    *size = n;
    return corpus;
}

/* Length of the valid UTF-8 character at s (n > 0 bytes), or 0 when s[0]
 * does not start one: written from the definition (shortest form, no
 * surrogates, at most U+10FFFF), not from the library's tables. */
static inline size_t test_utf8_length(const unsigned char *s, size_t n) {
    if (s[0] < 0x80)
        return 1;
    size_t len = (s[0] & 0xE0) == 0xC0   ? 2
                 : (s[0] & 0xF0) == 0xE0 ? 3
                 : (s[0] & 0xF8) == 0xF0 ? 4
                                         : 0;
    if (len == 0 || n < len)
        return 0;
    uint32_t c = s[0] & (len == 2 ? 0x1Fu : len == 3 ? 0x0Fu : 0x07u);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3Fu);
    }
    static const uint32_t smallest[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (c < smallest[len] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    return len;
}

/* The contents of a file, or NULL (size 0) when it cannot be read. */
static inline unsigned char *test_read_file(const char *path, size_t *size) {
    *size = 0;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    unsigned char *buf = malloc(cap);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    *size = n;
    return buf;
}

/* tinyshakespeare.txt from the first of the directories given on the
 * command line that has it, or NULL. */
static inline unsigned char *test_shakespeare(int argc, char **argv,
                                              size_t *size) {
    for (int i = 1; i < argc; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tinyshakespeare.txt", argv[i]);
        unsigned char *data = test_read_file(path, size);
        if (data != NULL)
            return data;
    }
    *size = 0;
    return NULL;
}

/* CRC-32 as zlib computes it (reflected polynomial 0xEDB88320). */
static inline uint32_t test_crc32(const unsigned char *data, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= data[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1u) ? (crc >> 1) ^ 0xEDB88320u : crc >> 1;
    }
    return crc ^ 0xFFFFFFFFu;
}

static inline uint32_t test_get_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static inline void test_set_u32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)v;
    p[1] = (unsigned char)(v >> 8);
    p[2] = (unsigned char)(v >> 16);
    p[3] = (unsigned char)(v >> 24);
}

/* Rewrites the checksum (the last 4 bytes) after an edit. */
static inline void test_fix_checksum(unsigned char *image, size_t size) {
    test_set_u32(image + size - 4, test_crc32(image, size - 4));
}

#endif
