/*
 * GPT-2's byte-level BPE as a tokenizer kind (docs/tokenizer.md, "GPT-2"):
 * building one from a vocabulary (any id for any token, merges naming the
 * id they make, one special token), and the BPE of chunks longer than
 * TLMI_CHUNK_MAX, which GPT-2's pre-split leaves whole (a long run of
 * spaces is one piece).
 */
#include <string.h>

#include "autodiff/context.h"
#include "base/error.h"
#include "text/tokenizer.h"

#define NONE SIZE_MAX

/* --- building ------------------------------------------------------------ */

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001B3ull;
    return h ^ (h >> 29);
}

int32_t tlmi_token_lookup(const tlm_tokenizer *t, const unsigned char *s,
                          size_t n) {
    if (t->token_table_capacity == 0)
        return -1;
    const size_t mask = t->token_table_capacity - 1;
    size_t i = (size_t)hash_bytes(s, n) & mask;
    for (;;) {
        int32_t id = t->token_table[i];
        if (id < 0)
            return -1;
        const size_t at = t->token_offsets[id];
        if (t->token_offsets[id + 1] - at == n &&
            memcmp(t->token_data + at, s, n) == 0)
            return id;
        i = (i + 1) & mask;
    }
}

/* The bytes -> id table; two tokens with the same bytes are refused. */
static int build_token_table(tlm_tokenizer *t, tlmi_host *host,
                             const char *who) {
    size_t capacity = 16;
    while (capacity < 2 * (size_t)t->vocab_size)
        capacity *= 2;
    int32_t *table = tlmi_host_alloc(host, capacity * sizeof *table, 64);
    if (table == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "%s: out of memory for the table of %d tokens", who,
                         (int)t->vocab_size);
    for (size_t i = 0; i < capacity; i++)
        table[i] = -1;
    t->token_table = table;
    t->token_table_capacity = capacity;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        const unsigned char *b = t->token_data + t->token_offsets[id];
        size_t len = t->token_offsets[id + 1] - t->token_offsets[id];
        int32_t other = tlmi_token_lookup(t, b, len);
        if (other >= 0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: tokens %d and %d have the same %zu bytes",
                             who, (int)other, (int)id, len);
        size_t i = (size_t)hash_bytes(b, len) & (capacity - 1);
        while (table[i] >= 0)
            i = (i + 1) & (capacity - 1);
        table[i] = id;
    }
    return TLM_OK;
}

static int check_merge(tlm_tokenizer *t, tlmi_host *host, const char *who,
                       const tlmi_gpt2_vocab *v, int32_t r) {
    const size_t place = v->merge_first + v->merge_stride * (size_t)r;
    const int32_t *m = v->merges + 3 * (size_t)r;
    for (int k = 0; k < 3; k++) {
        if (m[k] < 0 || m[k] >= t->vocab_size)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: merge %d at %s %zu names id %d, outside "
                             "0..%d",
                             who, (int)r, v->merge_unit, place, (int)m[k],
                             (int)t->vocab_size - 1);
        if (m[k] == v->special_id)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: merge %d at %s %zu names the special "
                             "token %d",
                             who, (int)r, v->merge_unit, place, (int)m[k]);
    }
    const size_t *off = t->token_offsets;
    size_t left = off[m[0] + 1] - off[m[0]], right = off[m[1] + 1] - off[m[1]];
    if (off[m[2] + 1] - off[m[2]] != left + right ||
        memcmp(t->token_data + off[m[2]], t->token_data + off[m[0]], left) != 0 ||
        memcmp(t->token_data + off[m[2]] + left, t->token_data + off[m[1]],
               right) != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: merge %d at %s %zu joins tokens %d and %d, but "
                         "token %d is not their bytes one after the other",
                         who, (int)r, v->merge_unit, place, (int)m[0],
                         (int)m[1], (int)m[2]);
    return TLM_OK;
}

int tlmi_gpt2_build(tlm_tokenizer **out, const tlmi_host *host_in,
                    const tlmi_gpt2_vocab *v, const char *who) {
    *out = NULL;
    tlmi_host host = *host_in;
    host.last_error[0] = '\0';
    if (v->n_tokens < 257 || v->n_tokens > TLMI_VOCAB_MAX)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: %d tokens: a GPT-2 vocabulary has 257..%d (256 "
                         "bytes, merges, a special token)",
                         who, (int)v->n_tokens, TLMI_VOCAB_MAX);
    if (v->special_id < 0 || v->special_id >= v->n_tokens)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: special token id %d is outside 0..%d", who,
                         (int)v->special_id, (int)v->n_tokens - 1);
    /* Two merges may make the same token ("ab" + "c", "a" + "bc"); a pair
     * merged twice is refused by tlmi_bpe_build_ranks. */
    if (v->n_merges < 0 || v->n_merges > TLMI_VOCAB_MAX)
        return tlmi_fail(&host, TLM_E_FORMAT, "%s: %d merges (at most %d)",
                         who, (int)v->n_merges, TLMI_VOCAB_MAX);
    tlm_tokenizer *t = TLMI_HANDLE_ALLOC(&host, tlm_tokenizer);
    if (t == NULL)
        return tlmi_fail(&host, TLM_E_NOMEM,
                         "%s: out of memory for the tokenizer", who);
    t->kind = TLM_TOKENIZER_GPT2;
    t->vocab_size = v->n_tokens;
    t->unk_id = -1;
    t->bos_id = t->eos_id = t->pad_id = v->special_id;
    int status = TLM_OK;
    const size_t n_offsets = (size_t)v->n_tokens + 1;
    const size_t total = v->offsets[v->n_tokens];
    t->token_offsets =
        tlmi_host_alloc(&host, n_offsets * sizeof *t->token_offsets, 64);
    t->token_data = tlmi_host_alloc(&host, total > 0 ? total : 1, 64);
    if (t->token_offsets == NULL || t->token_data == NULL) {
        tlmi_host_free(&host, t->token_offsets,
                       n_offsets * sizeof *t->token_offsets);
        tlmi_host_free(&host, t->token_data, total > 0 ? total : 1);
        t->token_offsets = NULL;
        t->token_data = NULL;
        status = tlmi_fail(&host, TLM_E_NOMEM,
                           "%s: out of memory for %d tokens", who,
                           (int)v->n_tokens);
        goto fail;
    }
    t->token_data_size = total > 0 ? total : 1;
    memcpy(t->token_data, v->data, total);
    for (int b = 0; b < 256; b++)
        t->byte_ids[b] = -1;
    for (int32_t id = 0; id <= v->n_tokens; id++) {
        t->token_offsets[id] = v->offsets[id];
        if (id == v->n_tokens)
            break;
        size_t len = v->offsets[id + 1] - v->offsets[id];
        if (v->offsets[id + 1] < v->offsets[id] || len == 0 ||
            len > TLMI_CHUNK_MAX) {
            status = tlmi_fail(&host, TLM_E_FORMAT,
                               "%s: token %d has %zu bytes; tokens have 1..%d",
                               who, (int)id,
                               v->offsets[id + 1] < v->offsets[id] ? 0 : len,
                               TLMI_CHUNK_MAX);
            goto fail;
        }
        if (len > t->max_token_bytes)
            t->max_token_bytes = len;
        if (len == 1 && id != v->special_id)
            t->byte_ids[v->data[v->offsets[id]]] = id;
    }
    status = build_token_table(t, &host, who);
    if (status != TLM_OK)
        goto fail;
    for (int b = 0; b < 256; b++)
        if (t->byte_ids[b] < 0) {
            status = tlmi_fail(&host, TLM_E_FORMAT,
                               "%s: no token is the single byte 0x%02X; a "
                               "byte-level vocabulary has all 256",
                               who, b);
            goto fail;
        }
    if (v->n_merges > 0) {
        const size_t n = (size_t)v->n_merges;
        t->merges = tlmi_host_alloc(&host, 2 * n * sizeof *t->merges, 64);
        t->merge_ids = tlmi_host_alloc(&host, n * sizeof *t->merge_ids, 64);
        if (t->merges == NULL || t->merge_ids == NULL) {
            tlmi_host_free(&host, t->merges, 2 * n * sizeof *t->merges);
            tlmi_host_free(&host, t->merge_ids, n * sizeof *t->merge_ids);
            t->merges = t->merge_ids = NULL;
            status = tlmi_fail(&host, TLM_E_NOMEM,
                               "%s: out of memory for %d merges", who,
                               (int)v->n_merges);
            goto fail;
        }
        t->n_merges = v->n_merges;
        for (int32_t r = 0; r < v->n_merges; r++) {
            status = check_merge(t, &host, who, v, r);
            if (status != TLM_OK)
                goto fail;
            t->merges[2 * (size_t)r] = v->merges[3 * (size_t)r];
            t->merges[2 * (size_t)r + 1] = v->merges[3 * (size_t)r + 1];
            t->merge_ids[r] = v->merges[3 * (size_t)r + 2];
        }
        status = tlmi_bpe_build_ranks(t, &host, who, v->merge_unit,
                                      v->merge_first, v->merge_stride);
        if (status != TLM_OK)
            goto fail;
    }
    *out = t;
    return TLM_OK;
fail:
    tlmi_tokenizer_release(t);
    return status;
}

/* --- long chunks ------------------------------------------------------------ */

/* A candidate merge: the pair starting at `at` (an index of the chunk's
 * bytes, which stay in text order) has rank `rank`. */
typedef struct candidate {
    int32_t rank;
    size_t at;
} candidate;

static int comes_first(candidate a, candidate b) {
    return a.rank != b.rank ? a.rank < b.rank : a.at < b.at;
}

static void heap_push(candidate *heap, size_t *size, candidate c) {
    size_t i = (*size)++;
    while (i > 0 && comes_first(c, heap[(i - 1) / 2])) {
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = c;
}

static candidate heap_pop(candidate *heap, size_t *size) {
    candidate top = heap[0];
    candidate last = heap[--*size];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= *size)
            break;
        if (child + 1 < *size && comes_first(heap[child + 1], heap[child]))
            child++;
        if (!comes_first(heap[child], last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*size > 0)
        heap[i] = last;
    return top;
}

/* The same merges as tlmi_bpe_encode_chunk (the lowest rank first, the
 * leftmost of equal ranks), over a doubly linked list of the chunk's
 * tokens and a heap of candidate pairs; a candidate whose pair has changed
 * since it was pushed is skipped when it surfaces. */
int tlmi_bpe_encode_long(const tlm_tokenizer *tok, tlmi_host *host,
                         const unsigned char *chunk, size_t n, int32_t *ids,
                         size_t *n_ids, const char *who) {
    size_t *next = tlmi_host_alloc(host, n * sizeof *next, 64);
    size_t *prev = tlmi_host_alloc(host, n * sizeof *prev, 64);
    candidate *heap = tlmi_host_alloc(host, 2 * n * sizeof *heap, 64);
    if (next == NULL || prev == NULL || heap == NULL) {
        tlmi_host_free(host, next, n * sizeof *next);
        tlmi_host_free(host, prev, n * sizeof *prev);
        tlmi_host_free(host, heap, 2 * n * sizeof *heap);
        return tlmi_fail(host, TLM_E_NOMEM,
                         "%s: out of memory encoding a %zu-byte piece", who,
                         n);
    }
    size_t heap_size = 0;
    for (size_t i = 0; i < n; i++) {
        ids[i] = tok->byte_ids[chunk[i]];
        next[i] = i + 1 < n ? i + 1 : NONE;
        prev[i] = i > 0 ? i - 1 : NONE;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        int32_t rank = tlmi_bpe_rank(tok, ids[i], ids[i + 1]);
        if (rank != TLMI_NO_RANK)
            heap_push(heap, &heap_size, (candidate){rank, i});
    }
    /* At most n - 1 pairs to start with, and each of the at most n - 1
     * merges pops one entry and pushes two: the heap never holds more
     * than 2n entries. */
    while (heap_size > 0) {
        candidate c = heap_pop(heap, &heap_size);
        size_t i = c.at, j = next[i];
        if (ids[i] < 0 || j == NONE ||
            tlmi_bpe_rank(tok, ids[i], ids[j]) != c.rank)
            continue; /* stale */
        ids[i] = tok->merge_ids != NULL ? tok->merge_ids[c.rank]
                                        : 256 + c.rank;
        ids[j] = -1;
        next[i] = next[j];
        if (next[j] != NONE)
            prev[next[j]] = i;
        if (prev[i] != NONE) {
            int32_t rank = tlmi_bpe_rank(tok, ids[prev[i]], ids[i]);
            if (rank != TLMI_NO_RANK)
                heap_push(heap, &heap_size, (candidate){rank, prev[i]});
        }
        if (next[i] != NONE) {
            int32_t rank = tlmi_bpe_rank(tok, ids[i], ids[next[i]]);
            if (rank != TLMI_NO_RANK)
                heap_push(heap, &heap_size, (candidate){rank, i});
        }
    }
    size_t count = 0;
    for (size_t i = 0; i != NONE; i = next[i])
        ids[count++] = ids[i];
    *n_ids = count;
    tlmi_host_free(host, next, n * sizeof *next);
    tlmi_host_free(host, prev, n * sizeof *prev);
    tlmi_host_free(host, heap, 2 * n * sizeof *heap);
    return TLM_OK;
}
