/* A tiny GPT-2-style vocabulary written as encoder.json and vocab.bpe
 * texts, for the tests and fuzz targets that cannot read the real one in
 * the shared data: the 256 bytes (ids 0..255 in byte order, unlike GPT-2),
 * a few merges whose ids run backwards (so that ids are not 256 + rank:
 * the importer must take each merge's id from encoder.json), and
 * <|endoftext|> last. Header-only (static). */
#ifndef TLM_TESTS_GPT2_TINY_VOCAB_H
#define TLM_TESTS_GPT2_TINY_VOCAB_H

#include <stdio.h>
#include <string.h>

/* The merges, in rank order, as byte strings. */
static const char *const tiny_merges[][2] = {
    {"h", "e"},   {" ", "t"},    {" t", "he"}, {"i", "n"},  {"a", "n"},
    {" ", "a"},   {"e", "r"},    {"o", "n"},   {" a", "n"}, {"in", "g"},
    {"r", "e"},   {" ", "s"},    {"1", "2"},   {"12", "3"}, {"\xc3", "\xa9"},
    {" ", " "},   {"  ", "  "},  {"\n", "\n"}, {"'", "s"},  {"t", "h"},
    {"th", "in"}, {"thin", "g"}, {" ", "th"},  {"e", "d"},  {"\"", "\\"},
};
#define TINY_MERGES ((int)(sizeof tiny_merges / sizeof tiny_merges[0]))
/* 256 bytes + merges + <|endoftext|> */
#define TINY_VOCAB (256 + TINY_MERGES + 1)

/* GPT-2's byte alphabet: the character byte b is written as. */
static inline unsigned tiny_code_of(unsigned b) {
    unsigned next = 0x100;
    for (unsigned c = 0; c < 256; c++) {
        int printable = (c >= '!' && c <= '~') || (c >= 0xA1 && c <= 0xAC) ||
                        (c >= 0xAE && c <= 0xFF);
        if (c == b)
            return printable ? c : next;
        if (!printable)
            next++;
    }
    return 0;
}

/* Appends bytes s[0..n) in the alphabet, JSON-escaped when `json`. */
static inline size_t tiny_put_token(char *out, const char *s, size_t n,
                                    int json) {
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned c = tiny_code_of((unsigned char)s[i]);
        if (json && (c == '"' || c == '\\'))
            out[at++] = '\\';
        if (c < 0x80) {
            out[at++] = (char)c;
        } else {
            out[at++] = (char)(0xC0 | (c >> 6));
            out[at++] = (char)(0x80 | (c & 0x3F));
        }
    }
    return at;
}

/* Writes encoder.json's text into out (room for 16384); returns its length. */
static inline size_t tiny_encoder_json(char *out) {
    size_t at = 0;
    out[at++] = '{';
    for (int id = 0; id < TINY_VOCAB; id++) {
        char bytes[64];
        size_t n;
        if (id < 256) {
            bytes[0] = (char)id;
            n = 1;
        } else if (id < 256 + TINY_MERGES) {
            int r = 256 + TINY_MERGES - 1 - id; /* ids run backwards */
            n = (size_t)sprintf(bytes, "%s%s", tiny_merges[r][0],
                                tiny_merges[r][1]);
        } else {
            at += (size_t)sprintf(out + at, "\"<|endoftext|>\": %d}", id);
            break;
        }
        out[at++] = '"';
        at += tiny_put_token(out + at, bytes, n, 1);
        at += (size_t)sprintf(out + at, "\": %d, ", id);
    }
    return at;
}

/* The id of merge r's result in tiny_encoder_json(). */
static inline int tiny_merge_id(int r) { return 256 + TINY_MERGES - 1 - r; }

/* Writes vocab.bpe's text into out (room for 4096); returns its length. */
static inline size_t tiny_vocab_bpe(char *out) {
    size_t at = (size_t)sprintf(out, "#version: 0.2\n");
    for (int r = 0; r < TINY_MERGES; r++) {
        at += tiny_put_token(out + at, tiny_merges[r][0],
                             strlen(tiny_merges[r][0]), 0);
        out[at++] = ' ';
        at += tiny_put_token(out + at, tiny_merges[r][1],
                             strlen(tiny_merges[r][1]), 0);
        out[at++] = '\n';
    }
    return at;
}

#endif
