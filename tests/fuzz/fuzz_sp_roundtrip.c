/* Fuzz target: arbitrary bytes through a SentencePiece tokenizer (a small
 * byte-fallback BPE model built here, with equal scores to exercise the
 * leftmost-first rule): the ids equal those of a plain quadratic
 * re-implementation of sentencepiece's merge loop (the best-scoring
 * adjacent pair that makes a NORMAL piece, the leftmost on ties), and
 * decode(encode(x)) is x with every byte that starts no valid UTF-8
 * character replaced by U+FFFD, as sentencepiece does. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/host.h"
#include "base/utf8.h"
#include "text/tokenizer.h"

#define SPACE "\xE2\x96\x81"

static const char *const normal[] = {
    SPACE, "a", "b", "e", "h", "t", "\xC3\xA9", SPACE "t", "th", SPACE "th",
    "he", "the", SPACE "the", "ab", "ba", "aba", "bab", SPACE SPACE,
    SPACE SPACE SPACE, "ee", "eee", "\xEF\xBF\xBD",
};
#define N_NORMAL (sizeof normal / sizeof normal[0])
#define N_PIECES (3 + 256 + N_NORMAL)

static tlm_tokenizer *tokenizer(void) {
    static tlm_tokenizer *tok;
    if (tok != NULL)
        return tok;
    static size_t offsets[N_PIECES + 1];
    static unsigned char data[4096];
    static float scores[N_PIECES];
    static uint8_t types[N_PIECES];
    size_t at = 0;
    for (size_t id = 0; id < N_PIECES; id++) {
        char piece[16];
        if (id < 3) {
            static const char *const special[3] = {"<unk>", "<s>", "</s>"};
            strcpy(piece, special[id]);
            types[id] = id == 0 ? TLMI_SP_UNKNOWN : TLMI_SP_CONTROL;
        } else if (id < 259) {
            static const char hex[] = "0123456789ABCDEF";
            unsigned b = (unsigned)(id - 3);
            piece[0] = '<'; piece[1] = '0'; piece[2] = 'x';
            piece[3] = hex[b >> 4]; piece[4] = hex[b & 15]; piece[5] = '>';
            piece[6] = 0;
            types[id] = TLMI_SP_BYTE;
        } else {
            strcpy(piece, normal[id - 259]);
            types[id] = TLMI_SP_NORMAL;
        }
        /* Scores in three tiers: ties between different merges. */
        scores[id] = -(float)((id * 7) % 3);
        offsets[id] = at;
        memcpy(data + at, piece, strlen(piece));
        at += strlen(piece);
    }
    offsets[N_PIECES] = at;
    static const unsigned char surface[] = " \xE2\x81\x87 ";
    const tlmi_sp_vocab v = {(int32_t)N_PIECES, offsets, data, scores, types, 1, 2, -1,
                             1, 1, 1, surface, sizeof surface - 1};
    tlmi_host host;
    tlmi_host_init_default(&host);
    fuzz_check(tlmi_sp_build(&tok, &host, &v, "sp_roundtrip") == TLM_OK,
               "sp_roundtrip: building the model");
    return tok;
}

/* The id of a NORMAL piece spelled s[0..n), or -1 (linear search). */
static int32_t normal_id(const tlm_tokenizer *tok, const unsigned char *s, size_t n) {
    for (int32_t id = 0; id < tok->vocab_size; id++)
        if (tok->piece_types[id] == TLMI_SP_NORMAL &&
            tok->piece_offsets[id + 1] - tok->piece_offsets[id] == n &&
            memcmp(tok->piece_data + tok->piece_offsets[id], s, n) == 0)
            return id;
    return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 4096)
        return 0; /* the reference is quadratic */
    tlm_tokenizer *tok = tokenizer();
    /* The normalized text and its characters. */
    unsigned char *norm = malloc(3 * size + 3);
    size_t *start = malloc((size + 1) * sizeof *start), *len = malloc((size + 1) * sizeof *len);
    int32_t *ids = malloc((3 * size + 3) * sizeof *ids), *want = malloc((3 * size + 3) * sizeof *want);
    char *back = malloc(3 * size + 3);
    fuzz_check(norm && start && len && ids && want && back, "sp_roundtrip: test memory");
    size_t at = 0, count = 0, n_want = 0;
    if (size > 0) {
        memcpy(norm, SPACE, 3);
        start[0] = 0;
        len[0] = 3;
        at = 3;
        count = 1;
    }
    for (size_t i = 0; i < size;) {
        uint32_t code;
        size_t l = tlmi_utf8_decode(data + i, size - i, &code);
        start[count] = at;
        if (l == 0) {
            memcpy(norm + at, "\xEF\xBF\xBD", 3);
            at += 3;
            l = 1;
        } else if (data[i] == ' ') {
            memcpy(norm + at, SPACE, 3);
            at += 3;
        } else {
            memcpy(norm + at, data + i, l);
            at += l;
        }
        len[count] = at - start[count];
        count++;
        i += l;
    }
    const size_t norm_size = at;
    /* The reference merge loop: the best pair, the leftmost on ties. */
    for (;;) {
        size_t best = SIZE_MAX;
        float best_score = 0;
        for (size_t k = 0; k + 1 < count; k++) {
            int32_t id = normal_id(tok, norm + start[k], len[k] + len[k + 1]);
            if (id >= 0 && (best == SIZE_MAX || tok->piece_scores[id] > best_score)) {
                best = k;
                best_score = tok->piece_scores[id];
            }
        }
        if (best == SIZE_MAX)
            break;
        len[best] += len[best + 1];
        memmove(start + best + 1, start + best + 2, (count - best - 2) * sizeof *start);
        memmove(len + best + 1, len + best + 2, (count - best - 2) * sizeof *len);
        count--;
    }
    for (size_t k = 0; k < count; k++) {
        int32_t id = len[k] > 0 ? normal_id(tok, norm + start[k], len[k]) : -1;
        if (id >= 0)
            want[n_want++] = id;
        else
            for (size_t b = 0; b < len[k]; b++)
                want[n_want++] = 3 + norm[start[k] + b];
    }
    size_t n = 0, length = 0;
    fuzz_check(tlm_tokenizer_encode(tok, (const char *)data, size, ids, 3 * size + 3, &n) ==
                   TLM_OK,
               "sp_roundtrip: encode never fails");
    fuzz_check(n == n_want && memcmp(ids, want, n * sizeof *ids) == 0,
               "sp_roundtrip: the ids of sentencepiece's merge order");
    /* Decoding drops the dummy prefix's space. */
    fuzz_check(tlm_tokenizer_decode(tok, ids, n, back, 3 * size + 3, &length) == TLM_OK,
               "sp_roundtrip: decode");
    size_t k = 0, ok = 1;
    for (size_t i = size > 0 ? 3 : 0; i < norm_size; i++) {
        if (i + 3 <= norm_size && memcmp(norm + i, SPACE, 3) == 0) {
            ok &= k < length && back[k++] == ' ';
            i += 2;
        } else {
            ok &= k < length && (unsigned char)back[k++] == norm[i];
        }
    }
    fuzz_check(ok && k == length, "sp_roundtrip: decode(encode(x)) == x with U+FFFD");
    free(norm);
    free(start);
    free(len);
    free(ids);
    free(want);
    free(back);
    return 0;
}
