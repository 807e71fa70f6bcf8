/*
 * The pre-split of text into chunks that BPE merges within
 * (docs/tokenizer.md, "Pre-split").
 */
#include "base/utf8.h"
#include "tokenizer.h"

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

size_t tlmi_contraction_length(const unsigned char *t, size_t n, size_t s) {
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
    size_t contraction = tlmi_contraction_length(t, n, start);
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
        for (int back = 0; back < 3 && tlmi_utf8_is_continuation(t[end]); back++)
            end--;
    }
    return end;
}
