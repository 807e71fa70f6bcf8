/*
 * GPT-2's pre-tokenization (docs/tokenizer.md, "GPT-2"): the pieces the
 * regular expression
 *     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * finds when it is applied repeatedly from the start of the text, the
 * first alternative that matches at a position winning (as tiktoken's and
 * Python's regex engines do). Written as a scanner over characters:
 * a valid UTF-8 character has the class of its code point
 * (text/unicode.h); each byte that does not start a valid UTF-8 character
 * is one character of class "other" (what the pattern does on the text
 * decoded with Python's errors="surrogateescape": a lone surrogate is
 * neither a letter, a number nor a space).
 */
#include "base/utf8.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

/* Class of every ASCII byte. */
static const unsigned char ascii_class[128] = {
#define O TLMI_UNI_OTHER
#define L TLMI_UNI_LETTER
#define N TLMI_UNI_NUMBER
#define S TLMI_UNI_SPACE
    O, O, O, O, O, O, O, O, O, S, S, S, S, S, O, O, /* \t..\r */
    O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O,
    S, O, O, O, O, O, O, O, O, O, O, O, O, O, O, O, /* space */
    N, N, N, N, N, N, N, N, N, N, O, O, O, O, O, O, /* 0-9 */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* A-O */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* P-Z */
    O, L, L, L, L, L, L, L, L, L, L, L, L, L, L, L, /* a-o */
    L, L, L, L, L, L, L, L, L, L, L, O, O, O, O, O, /* p-z */
#undef O
#undef L
#undef N
#undef S
};

/* Class and byte length of the character at t[i] (i < n). */
static inline int char_class(const unsigned char *t, size_t n, size_t i,
                             size_t *length) {
    if (t[i] < 0x80) {
        *length = 1;
        return ascii_class[t[i]];
    }
    uint32_t code;
    size_t len = tlmi_utf8_decode(t + i, n - i, &code);
    if (len == 0) {
        *length = 1; /* an invalid byte: one "other" character */
        return TLMI_UNI_OTHER;
    }
    *length = len;
    return tlmi_unicode_class(code);
}

/* End of the run of characters of class `cls` (or, when `cls` is OTHER,
 * of characters that are neither letters, numbers nor spaces) from i. */
static size_t class_run_end(const unsigned char *t, size_t n, size_t i,
                            int cls) {
    while (i < n) {
        size_t len;
        if (char_class(t, n, i, &len) != cls)
            break;
        i += len;
    }
    return i;
}

size_t tlmi_gpt2_chunk_end(const unsigned char *t, size_t n, size_t start) {
    size_t contraction = tlmi_contraction_length(t, n, start);
    if (contraction > 0)
        return start + contraction;
    size_t len;
    int cls = char_class(t, n, start, &len);
    if (cls != TLMI_UNI_SPACE)
        return class_run_end(t, n, start + len, cls);
    /* A space: " ?\p{L}+", " ?\p{N}+" and " ?[^\s\p{L}\p{N}]+" take it
     * with the run that follows it. */
    if (t[start] == ' ' && start + 1 < n) {
        size_t next_len;
        int next = char_class(t, n, start + 1, &next_len);
        if (next != TLMI_UNI_SPACE)
            return class_run_end(t, n, start + 1 + next_len, next);
    }
    /* Whitespace: "\s+(?!\S)" takes the run but its last character when a
     * non-space follows (that character then starts the next piece, as
     * " word" or alone), the whole run at the end of the text; "\s+" takes
     * a single whitespace character before a non-space. */
    size_t last = start, i = start + len;
    while (i < n) {
        size_t l;
        if (char_class(t, n, i, &l) != TLMI_UNI_SPACE)
            break;
        last = i;
        i += l;
    }
    if (i < n && last > start)
        return last;
    return i;
}
