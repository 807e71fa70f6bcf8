/*
 * Suite "tokenizer": the internals, checked against definitions.
 * - the pre-split rules of docs/tokenizer.md on examples;
 * - incremental BPE training gives exactly the merges of a naive trainer
 *   that recounts every pair after every merge;
 * - BPE encoding gives exactly what applying every merge in rank order to
 *   each chunk gives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32.h"
#include "text/tokenizer.h"
#include "tlm.h"
#include "tok_test_util.h"

/* The chunks of `text`, joined with '|'. */
static void assert_chunks(const char *text, const char *expected) {
    const unsigned char *t = (const unsigned char *)text;
    const size_t n = strlen(text);
    char joined[512];
    size_t at = 0;
    for (size_t start = 0; start < n;) {
        size_t end = tlmi_chunk_end(t, n, start);
        assert_true(end > start && end <= n);
        if (start > 0)
            joined[at++] = '|';
        memcpy(joined + at, text + start, end - start);
        at += end - start;
        start = end;
    }
    joined[at] = '\0';
    assert_string_equal(joined, expected);
}

static void pre_split_rules(void **state) {
    (void)state;
    assert_chunks("Hello world", "Hello| world");
    assert_chunks("Hello, world!", "Hello|,| world|!");
    assert_chunks("don't we'll I'm they're you've he'd 'tis", "don|'t| we|'ll| I|'m| they|'re| you|'ve| he|'d| '|tis");
    assert_chunks("a  b", "a| | b");
    assert_chunks("a   b", "a|  | b");
    assert_chunks("x\n\ny", "x|\n\n|y");
    assert_chunks("x\n\n y", "x|\n\n| y");
    assert_chunks("end.  ", "end|.|  ");
    assert_chunks("x\t y", "x|\t| y");
    assert_chunks("3.14159 and 42x", "3|.|14159| and| 42|x");
    assert_chunks(" ...!? ok", " ...!?| ok");
    assert_chunks("caf\xC3\xA9 na\xC3\xAFve \xE2\x82\xAC" "5", "caf\xC3\xA9| na\xC3\xAFve| \xE2\x82\xAC|5");
    assert_chunks("\x01\x02 \x7F", "\x01\x02| \x7F");
    assert_chunks(" ", " ");
    assert_chunks("a ", "a| ");
    assert_chunks("'", "'");
    assert_chunks("'s", "'s");
    assert_chunks("''s", "''|s");
}

static void long_runs_are_cut_between_characters(void **state) {
    (void)state;
    unsigned char text[1000];
    /* 600 ASCII letters: 256 + 256 + 88. */
    memset(text, 'a', 600);
    assert_int_equal(tlmi_chunk_end(text, 600, 0), 256);
    assert_int_equal(tlmi_chunk_end(text, 600, 256), 512);
    assert_int_equal(tlmi_chunk_end(text, 600, 512), 600);
    /* 'a' then two-byte characters: byte 256 is a continuation byte, so
     * the cut moves back to 255, before the character. */
    text[0] = 'a';
    for (size_t i = 1; i + 1 < 601; i += 2) {
        text[i] = 0xC3;
        text[i + 1] = 0xA9;
    }
    assert_int_equal(tlmi_chunk_end(text, 601, 0), 255);
    /* Four-byte characters after one letter: back to a lead byte. */
    text[0] = 'a';
    for (size_t i = 1; i + 3 < 1000; i += 4)
        memcpy(text + i, "\xF0\x9F\x98\x80", 4);
    size_t end = tlmi_chunk_end(text, 997, 0);
    assert_int_equal(end, 253);
    assert_int_equal(text[end], 0xF0);
    /* Whitespace runs are cut too. */
    memset(text, ' ', 700);
    assert_int_equal(tlmi_chunk_end(text, 700, 0), 256);
}

/* --- BPE against naive references ------------------------------------------- */

typedef struct naive_chunk {
    int32_t ids[TLMI_CHUNK_MAX];
    size_t n;
    int64_t freq;
} naive_chunk;

/* Distinct chunks of at least two bytes, with their counts (quadratic
 * and obvious). */
static naive_chunk *naive_chunks(const unsigned char *text, size_t n, size_t *count) {
    naive_chunk *chunks = calloc(n + 1, sizeof *chunks);
    size_t k = 0;
    for (size_t start = 0; start < n;) {
        size_t end = tlmi_chunk_end(text, n, start);
        size_t len = end - start;
        if (len >= 2) {
            size_t j = 0;
            for (; j < k; j++) {
                if (chunks[j].n != len)
                    continue;
                size_t i = 0;
                while (i < len && chunks[j].ids[i] == text[start + i])
                    i++;
                if (i == len)
                    break;
            }
            if (j == k) {
                for (size_t i = 0; i < len; i++)
                    chunks[k].ids[i] = text[start + i];
                chunks[k].n = len;
                k++;
            }
            chunks[j].freq++;
        }
        start = end;
    }
    *count = k;
    return chunks;
}

static void naive_merge(int32_t *ids, size_t *n, int32_t a, int32_t b, int32_t m) {
    size_t w = 0;
    for (size_t i = 0; i < *n;) {
        if (i + 1 < *n && ids[i] == a && ids[i + 1] == b) {
            ids[w++] = m;
            i += 2;
        } else {
            ids[w++] = ids[i++];
        }
    }
    *n = w;
}

typedef struct naive_pair {
    int32_t left, right;
    int64_t count;
} naive_pair;

static int compare_pairs(const void *x, const void *y) {
    const naive_pair *a = x, *b = y;
    if (a->left != b->left)
        return a->left < b->left ? -1 : 1;
    return (a->right > b->right) - (a->right < b->right);
}

/* The definition: recount every pair, take the most frequent (smallest
 * ids on ties), merge it everywhere, repeat. */
static int32_t naive_train(const unsigned char *text, size_t n, int32_t max_merges,
                           int64_t min_count, int32_t *merges) {
    size_t n_chunks;
    naive_chunk *chunks = naive_chunks(text, n, &n_chunks);
    naive_pair *pairs = malloc((n + 1) * sizeof *pairs);
    int32_t done = 0;
    while (done < max_merges) {
        size_t n_pairs = 0;
        for (size_t c = 0; c < n_chunks; c++)
            for (size_t i = 0; i + 1 < chunks[c].n; i++)
                pairs[n_pairs++] =
                    (naive_pair){chunks[c].ids[i], chunks[c].ids[i + 1], chunks[c].freq};
        qsort(pairs, n_pairs, sizeof *pairs, compare_pairs);
        int64_t best = 0;
        naive_pair chosen = {0, 0, 0};
        for (size_t i = 0; i < n_pairs;) {
            naive_pair sum = pairs[i++];
            while (i < n_pairs && compare_pairs(&pairs[i], &sum) == 0)
                sum.count += pairs[i++].count;
            if (sum.count > best) { /* strictly: the first in id order wins ties */
                best = sum.count;
                chosen = sum;
            }
        }
        if (best == 0 || best < min_count)
            break;
        merges[2 * done] = chosen.left;
        merges[2 * done + 1] = chosen.right;
        for (size_t c = 0; c < n_chunks; c++)
            naive_merge(chunks[c].ids, &chunks[c].n, chosen.left, chosen.right, 256 + done);
        done++;
    }
    free(pairs);
    free(chunks);
    return done;
}

/* Random corpora over a few symbols: many repeats and many ties. */
static size_t small_alphabet_corpus(uint64_t *rng, unsigned char *out, size_t len) {
    static const char alphabets[4][8] = {"ab ", "abc \n", "aab,'s ", "xy1 \xC3\xA9."};
    const char *alphabet = alphabets[test_below(rng, 4)];
    const uint32_t size = (uint32_t)strlen(alphabet);
    for (size_t i = 0; i < len; i++)
        out[i] = (unsigned char)alphabet[test_below(rng, size)];
    return len;
}

static void incremental_training_equals_the_naive_definition(void **state) {
    (void)state;
    uint64_t rng = 2024;
    tlmi_host host;
    tlmi_host_init_default(&host);
    enum { MAX_MERGES = 80 };
    unsigned char text[3000];
    for (int trial = 0; trial < 40; trial++) {
        size_t n;
        if (trial % 2 == 0)
            n = small_alphabet_corpus(&rng, text, 200 + test_below(&rng, 2800));
        else
            n = test_random_text(&rng, text, sizeof text);
        int64_t min_count = 1 + trial % 3;
        int32_t expected[2 * MAX_MERGES];
        int32_t n_expected = naive_train(text, n, MAX_MERGES, min_count, expected);
        tlmi_merge_list list;
        assert_int_equal(tlmi_bpe_train(&list, &host, text, n, MAX_MERGES, min_count, "test"),
                         TLM_OK);
        if (list.count != n_expected)
            fail_msg("trial %d: %d merges, the definition gives %d", trial, (int)list.count,
                     (int)n_expected);
        for (int32_t r = 0; r < n_expected; r++)
            if ((int32_t)list.pairs[2 * r] != expected[2 * r] ||
                (int32_t)list.pairs[2 * r + 1] != expected[2 * r + 1])
                fail_msg("trial %d: merge %d is (%u, %u), the definition's (%d, %d)", trial,
                         (int)r, list.pairs[2 * r], list.pairs[2 * r + 1], expected[2 * r],
                         expected[2 * r + 1]);
        tlmi_merge_list_free(&list, &host);
    }
}

static void encoding_equals_merges_in_rank_order(void **state) {
    (void)state;
    uint64_t rng = 7;
    unsigned char corpus[20000];
    size_t size = 0;
    while (size + 300 <= sizeof corpus) {
        if (test_below(&rng, 3) == 0)
            size += small_alphabet_corpus(&rng, corpus + size, 300);
        else
            size += test_random_text(&rng, corpus + size, 300);
    }
    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    params.vocab_size = 259 + 400;
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_train(&tok, NULL, (const char *)corpus, size, &params), TLM_OK);
    const int32_t merges = tlm_tokenizer_merge_count(tok);
    assert_true(merges > 200);
    unsigned char text[600];
    int32_t ids[600], expected[TLMI_CHUNK_MAX];
    for (int t = 0; t < 800; t++) {
        size_t n = t % 3 == 0 ? small_alphabet_corpus(&rng, text, test_below(&rng, 600))
                              : test_random_text(&rng, text, 300);
        size_t n_ids = 0, at = 0;
        assert_int_equal(tlm_tokenizer_encode(tok, (const char *)text, n, ids,
                                              sizeof ids / sizeof ids[0], &n_ids),
                         TLM_OK);
        for (size_t start = 0; start < n;) {
            size_t end = tlmi_chunk_end(text, n, start), count = end - start;
            for (size_t i = 0; i < count; i++)
                expected[i] = text[start + i];
            for (int32_t r = 0; r < merges; r++) {
                int32_t left, right;
                tlm_tokenizer_merge(tok, r, &left, &right);
                naive_merge(expected, &count, left, right, 256 + r);
            }
            assert_true(at + count <= n_ids);
            assert_memory_equal(ids + at, expected, count * sizeof *expected);
            at += count;
            start = end;
        }
        assert_int_equal(at, n_ids);
    }
    tlm_tokenizer_free(tok);
}

static void crc32_check_value(void **state) {
    (void)state;
    assert_int_equal(tlmi_crc32(0, "123456789", 9), 0xCBF43926u);
    assert_int_equal(tlmi_crc32(0, NULL, 0), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(pre_split_rules),
        cmocka_unit_test(long_runs_are_cut_between_characters),
        cmocka_unit_test(incremental_training_equals_the_naive_definition),
        cmocka_unit_test(encoding_equals_merges_in_rank_order),
        cmocka_unit_test(crc32_check_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
