/*
 * Byte-level BPE training (docs/tokenizer.md, "Training").
 *
 * The corpus is pre-split into chunks and identical chunks are counted
 * once, with their frequency. Every adjacent pair of ids inside a chunk is
 * counted, weighted by the chunk's frequency. Then, repeatedly, the most
 * frequent pair (ties: the smaller left id, then the smaller right id)
 * becomes a new token, replacing its occurrences left to right.
 *
 * Only the chunks that contain the merged pair change, so only they are
 * visited: each pair keeps a list of the chunks it was seen in (entries
 * may be stale; a visit checks), and the counts sit in a max-heap whose
 * entries are checked against the current count when they reach the top
 * (a lazy heap: a count that grew is pushed again; a count that shrank is
 * noticed when its old entry surfaces, and pushed again then).
 */
#include <string.h>

#include "base/error.h"
#include "base/grow.h"
#include "tokenizer.h"

#define EMPTY_KEY UINT64_MAX

typedef struct chunk_rec {
    size_t text_at;  /* first occurrence in the corpus */
    size_t ids_at;   /* its ids in the pool */
    uint64_t hash;   /* of its bytes */
    int64_t freq;    /* occurrences in the corpus */
    uint32_t length; /* bytes at first, then ids after merges */
} chunk_rec;

typedef struct pair_rec {
    int32_t left, right;
    int64_t count;  /* weighted occurrences now */
    int64_t pushed; /* count of its newest heap entry */
    int32_t head;   /* newest node of its chunk list; -1: none */
    int32_t dirty;  /* listed in this merge's dirty pairs */
} pair_rec;

typedef struct list_node {
    int32_t chunk;
    int32_t next;
} list_node;

typedef struct heap_entry {
    int64_t count;
    int32_t pair;
} heap_entry;

typedef struct trainer {
    tlmi_host *host;
    const char *who;
    const unsigned char *text;

    chunk_rec *chunks;
    size_t n_chunks, chunks_cap;
    uint32_t *chunk_table; /* chunk index + 1, or 0 */
    size_t chunk_table_cap;

    int32_t *ids; /* every chunk's ids */
    size_t ids_size;

    pair_rec *pairs;
    size_t n_pairs, pairs_cap;
    uint64_t *pair_keys; /* open addressing: pair key -> index */
    int32_t *pair_index;
    size_t pair_table_cap;
    int pair_shift;

    list_node *nodes;
    size_t n_nodes, nodes_cap;

    heap_entry *heap;
    size_t heap_size, heap_cap;

    int32_t *dirty;
    size_t n_dirty, dirty_cap;
} trainer;

static void trainer_release(trainer *t) {
    const tlmi_host *h = t->host;
    tlmi_host_free(h, t->chunks, t->chunks_cap * sizeof *t->chunks);
    tlmi_host_free(h, t->chunk_table,
                   t->chunk_table_cap * sizeof *t->chunk_table);
    tlmi_host_free(h, t->ids, t->ids_size * sizeof *t->ids);
    tlmi_host_free(h, t->pairs, t->pairs_cap * sizeof *t->pairs);
    tlmi_host_free(h, t->pair_keys, t->pair_table_cap * sizeof *t->pair_keys);
    tlmi_host_free(h, t->pair_index,
                   t->pair_table_cap * sizeof *t->pair_index);
    tlmi_host_free(h, t->nodes, t->nodes_cap * sizeof *t->nodes);
    tlmi_host_free(h, t->heap, t->heap_cap * sizeof *t->heap);
    tlmi_host_free(h, t->dirty, t->dirty_cap * sizeof *t->dirty);
}

static int out_of_memory(trainer *t, const char *what) {
    return tlmi_fail(t->host, TLM_E_NOMEM, "%s: out of memory for %s",
                     t->who, what);
}

static uint64_t mix(uint64_t x) {
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    return x;
}

static uint64_t hash_bytes(const unsigned char *s, size_t n) {
    uint64_t h = 0x9E3779B97F4A7C15ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001B3ull;
    return mix(h);
}

/* --- counting the chunks --------------------------------------------------- */

static int rehash_chunks(trainer *t, size_t capacity) {
    uint32_t *table = tlmi_host_alloc(t->host, capacity * sizeof *table, 64);
    if (table == NULL)
        return out_of_memory(t, "the chunk table");
    memset(table, 0, capacity * sizeof *table);
    for (size_t c = 0; c < t->n_chunks; c++) {
        size_t i = (size_t)t->chunks[c].hash & (capacity - 1);
        while (table[i] != 0)
            i = (i + 1) & (capacity - 1);
        table[i] = (uint32_t)c + 1;
    }
    tlmi_host_free(t->host, t->chunk_table,
                   t->chunk_table_cap * sizeof *t->chunk_table);
    t->chunk_table = table;
    t->chunk_table_cap = capacity;
    return TLM_OK;
}

static int count_chunk(trainer *t, size_t at, size_t length) {
    const unsigned char *bytes = t->text + at;
    uint64_t hash = hash_bytes(bytes, length);
    size_t mask = t->chunk_table_cap - 1;
    size_t i = (size_t)hash & mask;
    while (t->chunk_table[i] != 0) {
        chunk_rec *c = &t->chunks[t->chunk_table[i] - 1];
        if (c->hash == hash && c->length == length &&
            memcmp(t->text + c->text_at, bytes, length) == 0) {
            c->freq++;
            return TLM_OK;
        }
        i = (i + 1) & mask;
    }
    if (t->n_chunks >= INT32_MAX - 1)
        return tlmi_fail(t->host, TLM_E_OVERFLOW,
                         "%s: the corpus has more than %d distinct chunks",
                         t->who, INT32_MAX - 1);
    if (tlmi_grow(t->host, &t->chunks, &t->chunks_cap, t->n_chunks + 1,
                  sizeof *t->chunks) != TLM_OK)
        return out_of_memory(t, "the chunks");
    chunk_rec *c = &t->chunks[t->n_chunks];
    c->text_at = at;
    c->ids_at = 0;
    c->hash = hash;
    c->freq = 1;
    c->length = (uint32_t)length;
    t->chunk_table[i] = (uint32_t)++t->n_chunks;
    if (2 * t->n_chunks > t->chunk_table_cap) {
        if (t->chunk_table_cap > SIZE_MAX / 2 / sizeof *t->chunk_table)
            return out_of_memory(t, "the chunk table");
        return rehash_chunks(t, 2 * t->chunk_table_cap);
    }
    return TLM_OK;
}

/* --- pairs ------------------------------------------------------------------ */

static size_t pair_slot(const trainer *t, uint64_t key) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> t->pair_shift);
}

static int rehash_pairs(trainer *t, size_t capacity, int bits) {
    uint64_t *keys = tlmi_host_alloc(t->host, capacity * sizeof *keys, 64);
    int32_t *index = tlmi_host_alloc(t->host, capacity * sizeof *index, 64);
    if (keys == NULL || index == NULL) {
        tlmi_host_free(t->host, keys, capacity * sizeof *keys);
        tlmi_host_free(t->host, index, capacity * sizeof *index);
        return out_of_memory(t, "the pair table");
    }
    for (size_t i = 0; i < capacity; i++)
        keys[i] = EMPTY_KEY;
    tlmi_host_free(t->host, t->pair_keys,
                   t->pair_table_cap * sizeof *t->pair_keys);
    tlmi_host_free(t->host, t->pair_index,
                   t->pair_table_cap * sizeof *t->pair_index);
    t->pair_keys = keys;
    t->pair_index = index;
    t->pair_table_cap = capacity;
    t->pair_shift = 64 - bits;
    for (size_t p = 0; p < t->n_pairs; p++) {
        uint64_t key = ((uint64_t)(uint32_t)t->pairs[p].left << 32) |
                       (uint32_t)t->pairs[p].right;
        size_t i = pair_slot(t, key);
        while (keys[i] != EMPTY_KEY)
            i = (i + 1) & (capacity - 1);
        keys[i] = key;
        index[i] = (int32_t)p;
    }
    return TLM_OK;
}

/* *index receives the index of pair (left, right), added with count 0
 * when it is new. */
static int find_pair(trainer *t, int32_t left, int32_t right,
                     int32_t *index) {
    const uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    const size_t mask = t->pair_table_cap - 1;
    size_t i = pair_slot(t, key);
    while (t->pair_keys[i] != EMPTY_KEY) {
        if (t->pair_keys[i] == key) {
            *index = t->pair_index[i];
            return TLM_OK;
        }
        i = (i + 1) & mask;
    }
    if (t->n_pairs >= INT32_MAX - 1)
        return tlmi_fail(t->host, TLM_E_OVERFLOW,
                         "%s: more than %d distinct pairs", t->who,
                         INT32_MAX - 1);
    if (tlmi_grow(t->host, &t->pairs, &t->pairs_cap, t->n_pairs + 1,
                  sizeof *t->pairs) != TLM_OK)
        return out_of_memory(t, "the pairs");
    int32_t p = (int32_t)t->n_pairs++;
    t->pairs[p] = (pair_rec){left, right, 0, 0, -1, 0};
    t->pair_keys[i] = key;
    t->pair_index[i] = p;
    *index = p;
    if (2 * t->n_pairs > t->pair_table_cap) {
        int bits = 64 - t->pair_shift + 1;
        if (bits > 40)
            return out_of_memory(t, "the pair table");
        return rehash_pairs(t, t->pair_table_cap * 2, bits);
    }
    return TLM_OK;
}

/* Records that chunk `c` contains pair `p` (unless it was just recorded). */
static int list_chunk(trainer *t, int32_t p, int32_t c) {
    int32_t head = t->pairs[p].head;
    if (head >= 0 && t->nodes[head].chunk == c)
        return TLM_OK;
    if (t->n_nodes >= INT32_MAX - 1)
        return tlmi_fail(t->host, TLM_E_OVERFLOW,
                         "%s: more than %d pair occurrences", t->who,
                         INT32_MAX - 1);
    if (tlmi_grow(t->host, &t->nodes, &t->nodes_cap, t->n_nodes + 1,
                  sizeof *t->nodes) != TLM_OK)
        return out_of_memory(t, "the chunk lists");
    t->nodes[t->n_nodes] = (list_node){c, head};
    t->pairs[p].head = (int32_t)t->n_nodes++;
    return TLM_OK;
}

/* --- the heap ------------------------------------------------------------- */

/* Whether entry x comes out before y: higher count, then the smaller pair. */
static int heap_before(const trainer *t, heap_entry x, heap_entry y) {
    if (x.count != y.count)
        return x.count > y.count;
    const pair_rec *a = &t->pairs[x.pair], *b = &t->pairs[y.pair];
    if (a->left != b->left)
        return a->left < b->left;
    return a->right < b->right;
}

static void sift_down(trainer *t, size_t i) {
    heap_entry *h = t->heap;
    for (;;) {
        size_t best = i, l = 2 * i + 1, r = l + 1;
        if (l < t->heap_size && heap_before(t, h[l], h[best]))
            best = l;
        if (r < t->heap_size && heap_before(t, h[r], h[best]))
            best = r;
        if (best == i)
            return;
        heap_entry tmp = h[i];
        h[i] = h[best];
        h[best] = tmp;
        i = best;
    }
}

static int heap_push(trainer *t, int32_t p) {
    if (tlmi_grow(t->host, &t->heap, &t->heap_cap, t->heap_size + 1,
                  sizeof *t->heap) != TLM_OK)
        return out_of_memory(t, "the pair heap");
    heap_entry e = {t->pairs[p].count, p};
    t->pairs[p].pushed = e.count;
    size_t i = t->heap_size++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!heap_before(t, e, t->heap[parent]))
            break;
        t->heap[i] = t->heap[parent];
        i = parent;
    }
    t->heap[i] = e;
    return TLM_OK;
}

static heap_entry heap_pop(trainer *t) {
    heap_entry top = t->heap[0];
    t->heap[0] = t->heap[--t->heap_size];
    sift_down(t, 0);
    return top;
}

/* --- merging ------------------------------------------------------------------- */

static int add_pair_count(trainer *t, int32_t left, int32_t right,
                          int64_t freq, int32_t chunk, int32_t new_id) {
    int32_t p;
    TLMI_TRY(find_pair(t, left, right, &p));
    pair_rec *rec = &t->pairs[p];
    rec->count += freq;
    if (rec->count > rec->pushed && !rec->dirty) {
        if (tlmi_grow(t->host, &t->dirty, &t->dirty_cap,
                      t->n_dirty + 1, sizeof *t->dirty) != TLM_OK)
            return out_of_memory(t, "the changed pairs");
        t->pairs[p].dirty = 1;
        t->dirty[t->n_dirty++] = p;
    }
    if (left == new_id || right == new_id)
        return list_chunk(t, p, chunk);
    return TLM_OK;
}

/* Replaces pair (a, b) by `m` in every chunk that contains it. */
static int apply_merge(trainer *t, int32_t p, int32_t m) {
    const int32_t a = t->pairs[p].left, b = t->pairs[p].right;
    for (int32_t node = t->pairs[p].head; node >= 0;
         node = t->nodes[node].next) {
        const int32_t c = t->nodes[node].chunk;
        int32_t *ids = t->ids + t->chunks[c].ids_at;
        const size_t len = t->chunks[c].length;
        const int64_t freq = t->chunks[c].freq;
        size_t first = 0;
        while (first + 1 < len && !(ids[first] == a && ids[first + 1] == b))
            first++;
        if (first + 1 >= len)
            continue; /* a stale entry: merged away earlier */
        for (size_t i = 0; i + 1 < len; i++) {
            int32_t q;
            int status = find_pair(t, ids[i], ids[i + 1], &q);
            if (status != TLM_OK)
                return status;
            t->pairs[q].count -= freq;
        }
        size_t w = 0;
        for (size_t i = 0; i < len;) {
            if (i + 1 < len && ids[i] == a && ids[i + 1] == b) {
                ids[w++] = m;
                i += 2;
            } else {
                ids[w++] = ids[i++];
            }
        }
        t->chunks[c].length = (uint32_t)w;
        for (size_t i = 0; i + 1 < w; i++) {
            int status = add_pair_count(t, ids[i], ids[i + 1], freq, c, m);
            if (status != TLM_OK)
                return status;
        }
    }
    t->pairs[p].count = 0;
    t->pairs[p].head = -1;
    for (size_t d = 0; d < t->n_dirty; d++) {
        int32_t q = t->dirty[d];
        t->pairs[q].dirty = 0;
        if (t->pairs[q].count > t->pairs[q].pushed) {
            int status = heap_push(t, q);
            if (status != TLM_OK)
                return status;
        }
    }
    t->n_dirty = 0;
    return TLM_OK;
}

static int prepare(trainer *t, size_t n) {
    int status = rehash_chunks(t, 1024);
    if (status != TLM_OK)
        return status;
    size_t start = 0;
    while (start < n) {
        size_t end = tlmi_chunk_end(t->text, n, start);
        if (end - start >= 2) { /* a single byte has no pair */
            status = count_chunk(t, start, end - start);
            if (status != TLM_OK)
                return status;
        }
        start = end;
    }
    size_t total = 0;
    for (size_t c = 0; c < t->n_chunks; c++) {
        t->chunks[c].ids_at = total;
        total += t->chunks[c].length; /* at most n */
    }
    if (total > 0) {
        t->ids = tlmi_host_alloc(t->host, total * sizeof *t->ids, 64);
        if (t->ids == NULL)
            return out_of_memory(t, "the chunks' ids");
        t->ids_size = total;
    }
    status = rehash_pairs(t, 1024, 10);
    if (status != TLM_OK)
        return status;
    for (size_t c = 0; c < t->n_chunks; c++) {
        const chunk_rec *rec = &t->chunks[c];
        int32_t *ids = t->ids + rec->ids_at;
        for (uint32_t i = 0; i < rec->length; i++)
            ids[i] = t->text[rec->text_at + i];
        for (uint32_t i = 0; i + 1 < rec->length; i++) {
            int32_t p;
            status = find_pair(t, ids[i], ids[i + 1], &p);
            if (status != TLM_OK)
                return status;
            t->pairs[p].count += t->chunks[c].freq;
            status = list_chunk(t, p, (int32_t)c);
            if (status != TLM_OK)
                return status;
        }
    }
    for (size_t p = 0; p < t->n_pairs; p++) {
        status = heap_push(t, (int32_t)p);
        if (status != TLM_OK)
            return status;
    }
    return TLM_OK;
}

void tlmi_merge_list_free(tlmi_merge_list *merges, const tlmi_host *host) {
    tlmi_host_free(host, merges->pairs, merges->capacity * sizeof *merges->pairs);
    merges->pairs = NULL;
    merges->capacity = 0;
    merges->count = 0;
}

int tlmi_bpe_train(tlmi_merge_list *merges, tlmi_host *host,
                   const unsigned char *text, size_t n, int32_t max_merges,
                   int64_t min_count, const char *who) {
    memset(merges, 0, sizeof *merges);
    trainer t;
    memset(&t, 0, sizeof t);
    t.host = host;
    t.who = who;
    t.text = text;
    int status = prepare(&t, n);
    while (status == TLM_OK && merges->count < max_merges &&
           t.heap_size > 0) {
        heap_entry top = heap_pop(&t);
        pair_rec *rec = &t.pairs[top.pair];
        if (top.count != rec->count) {
            /* Stale: the count shrank since this entry was pushed. */
            if (top.count == rec->pushed && rec->count > 0)
                status = heap_push(&t, top.pair);
            continue;
        }
        if (rec->count < min_count)
            break; /* the most frequent pair is not frequent enough */
        const int32_t m = 256 + merges->count;
        if (tlmi_grow(host, &merges->pairs, &merges->capacity,
                      2 * (size_t)merges->count + 2,
                      sizeof *merges->pairs) != TLM_OK) {
            status = out_of_memory(&t, "the merges");
            break;
        }
        merges->pairs[2 * merges->count] = (uint32_t)rec->left;
        merges->pairs[2 * merges->count + 1] = (uint32_t)rec->right;
        merges->count++;
        status = apply_merge(&t, top.pair, m);
    }
    trainer_release(&t);
    if (status != TLM_OK)
        tlmi_merge_list_free(merges, host);
    return status;
}
