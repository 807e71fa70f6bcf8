/*
 * Tokenizers: building one of the three kinds from its items (character
 * keys or merges), training, encoding, decoding and the accessors.
 * docs/tokenizer.md is the specification.
 */
#include "tokenizer.h"

#include <string.h>

#include "autodiff/context.h"
#include "base/error.h"
#include "base/params.h"
#include "base/utf8.h"

#define EMPTY_KEY UINT64_MAX
#define DEFAULT_BPE_VOCAB 512
#define DEFAULT_MIN_PAIR_COUNT 2

/* U+FFFD REPLACEMENT CHARACTER: what the unknown token decodes to. */
static const unsigned char replacement[3] = {0xEF, 0xBF, 0xBD};

/* The character key at the start of s (n > 0 bytes) and its length: a
 * valid UTF-8 character's scalar value, else TLMI_LONE_BYTE + the byte. */
static inline size_t next_char_key(const unsigned char *s, size_t n,
                                   uint32_t *key) {
    size_t len = tlmi_utf8_decode(s, n, key);
    if (len == 0) {
        *key = TLMI_LONE_BYTE + s[0];
        len = 1;
    }
    return len;
}

static uint64_t pair_key(int32_t left, int32_t right) {
    return ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
}

int32_t tlmi_bpe_rank(const tlm_tokenizer *tok, int32_t left, int32_t right) {
    if (tok->rank_capacity == 0)
        return TLMI_NO_RANK;
    const uint64_t key = pair_key(left, right);
    const size_t mask = tok->rank_capacity - 1;
    size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> tok->rank_shift);
    for (;;) {
        uint64_t k = tok->rank_keys[i];
        if (k == key)
            return tok->rank_values[i];
        if (k == EMPTY_KEY)
            return TLMI_NO_RANK;
        i = (i + 1) & mask;
    }
}

/* --- building ------------------------------------------------------------ */

void tlmi_tokenizer_release(tlm_tokenizer *tok) {
    tlmi_host host = tok->host;
    tlmi_host_free(&host, tok->token_offsets,
                   ((size_t)tok->vocab_size + 1) * sizeof *tok->token_offsets);
    tlmi_host_free(&host, tok->token_data, tok->token_data_size);
    tlmi_host_free(&host, tok->char_keys,
                   (size_t)tok->n_chars * sizeof *tok->char_keys);
    tlmi_host_free(&host, tok->merges,
                   2 * (size_t)tok->n_merges * sizeof *tok->merges);
    if (tok->merge_ids != NULL)
        tlmi_host_free(&host, tok->merge_ids,
                       (size_t)tok->n_merges * sizeof *tok->merge_ids);
    tlmi_host_free(&host, tok->token_table,
                   tok->token_table_capacity * sizeof *tok->token_table);
    tlmi_host_free(&host, tok->rank_keys,
                   tok->rank_capacity * sizeof *tok->rank_keys);
    tlmi_host_free(&host, tok->rank_values,
                   tok->rank_capacity * sizeof *tok->rank_values);
    if (tok->piece_offsets != NULL)
        tlmi_host_free(&host, tok->piece_offsets,
                       ((size_t)tok->vocab_size + 1) * sizeof *tok->piece_offsets);
    tlmi_host_free(&host, tok->piece_data, tok->piece_data_size);
    if (tok->piece_scores != NULL)
        tlmi_host_free(&host, tok->piece_scores,
                       (size_t)tok->vocab_size * sizeof *tok->piece_scores);
    if (tok->piece_types != NULL)
        tlmi_host_free(&host, tok->piece_types, (size_t)tok->vocab_size);
    tlmi_host_free(&host, tok->piece_table,
                   tok->piece_table_capacity * sizeof *tok->piece_table);
    tlmi_host_free(&host, tok->joint_keys,
                   tok->joint_capacity * sizeof *tok->joint_keys);
    tlmi_host_free(&host, tok, sizeof *tok);
}

static int is_char_key(uint32_t key) {
    if (key < TLMI_LONE_BYTE)
        return key < 0xD800 || key > 0xDFFF;
    return key >= TLMI_LONE_BYTE + 0x80 && key <= TLMI_LONE_BYTE + 0xFF;
}

static size_t char_key_length(uint32_t key) {
    if (key >= TLMI_LONE_BYTE)
        return 1;
    return key < 0x80 ? 1 : key < 0x800 ? 2 : key < 0x10000 ? 3 : 4;
}

/* Token lengths into token_offsets[1..]: validates the items. */
static int measure_tokens(tlm_tokenizer *t, tlmi_host *host,
                          const uint32_t *items, const char *who,
                          size_t items_offset) {
    size_t *len = t->token_offsets + 1; /* len[id], prefix-summed later */
    if (t->kind == TLM_TOKENIZER_CHAR) {
        for (int32_t i = 0; i < t->n_chars; i++) {
            uint32_t key = items[i];
            size_t at = items_offset + 4 * (size_t)i;
            if (!is_char_key(key))
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: character %d at offset %zu: 0x%X is "
                                 "neither a Unicode scalar value nor a lone "
                                 "byte 0x80..0xFF (0x110080..0x1100FF)",
                                 who, (int)i, at, (unsigned)key);
            if (i > 0 && key <= items[i - 1])
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: character %d at offset %zu: 0x%X does "
                                 "not follow 0x%X in increasing order",
                                 who, (int)i, at, (unsigned)key,
                                 (unsigned)items[i - 1]);
            len[i] = char_key_length(key);
        }
        len[t->unk_id] = sizeof replacement;
    } else {
        for (int32_t b = 0; b < 256; b++)
            len[b] = 1;
        for (int32_t r = 0; r < t->n_merges; r++) {
            size_t at = items_offset + 8 * (size_t)r;
            uint32_t left = items[2 * (size_t)r], right = items[2 * (size_t)r + 1];
            uint32_t limit = 256u + (uint32_t)r;
            if (left >= limit || right >= limit)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: merge %d at offset %zu joins tokens "
                                 "%u and %u, but only tokens 0..%u exist "
                                 "before it",
                                 who, (int)r, left >= limit ? at : at + 4,
                                 (unsigned)left, (unsigned)right,
                                 (unsigned)(limit - 1));
            size_t joined = len[left] + len[right];
            if (joined > TLMI_CHUNK_MAX)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: merge %d at offset %zu makes a token "
                                 "of %zu bytes; tokens have at most %d",
                                 who, (int)r, at, joined, TLMI_CHUNK_MAX);
            len[256 + r] = joined;
        }
    }
    for (int32_t s = 0; s < TLMI_N_SPECIAL; s++)
        len[t->bos_id + s] = 0;
    return TLM_OK;
}

static void fill_tokens(tlm_tokenizer *t, const uint32_t *items) {
    unsigned char *data = t->token_data;
    const size_t *off = t->token_offsets;
    if (t->kind == TLM_TOKENIZER_CHAR) {
        for (int32_t i = 0; i < t->n_chars; i++) {
            uint32_t key = items[i];
            if (key >= TLMI_LONE_BYTE)
                data[off[i]] = (unsigned char)(key - TLMI_LONE_BYTE);
            else
                tlmi_utf8_encode(key, data + off[i]);
        }
        memcpy(data + off[t->unk_id], replacement, sizeof replacement);
        return;
    }
    for (int32_t b = 0; b < 256; b++)
        data[b] = (unsigned char)b;
    for (int32_t r = 0; r < t->n_merges; r++) {
        uint32_t left = items[2 * (size_t)r], right = items[2 * (size_t)r + 1];
        size_t left_len = off[left + 1] - off[left];
        unsigned char *dst = data + off[256 + r];
        memcpy(dst, data + off[left], left_len);
        memcpy(dst + left_len, data + off[right], off[right + 1] - off[right]);
    }
}

int tlmi_bpe_build_ranks(tlm_tokenizer *t, tlmi_host *host, const char *who,
                         const char *unit, size_t first, size_t stride) {
    size_t capacity = 16;
    int bits = 4;
    while (capacity < 2 * (size_t)t->n_merges) {
        capacity *= 2;
        bits++;
    }
    t->rank_keys = tlmi_host_alloc(host, capacity * sizeof *t->rank_keys, 64);
    t->rank_values =
        tlmi_host_alloc(host, capacity * sizeof *t->rank_values, 64);
    if (t->rank_keys == NULL || t->rank_values == NULL) {
        tlmi_host_free(host, t->rank_keys, capacity * sizeof *t->rank_keys);
        tlmi_host_free(host, t->rank_values,
                       capacity * sizeof *t->rank_values);
        t->rank_keys = NULL;
        t->rank_values = NULL;
        return tlmi_fail(host, TLM_E_NOMEM,
                         "%s: out of memory for the merge table of %d "
                         "merges",
                         who, (int)t->n_merges);
    }
    t->rank_capacity = capacity;
    t->rank_shift = 64 - bits;
    for (size_t i = 0; i < capacity; i++)
        t->rank_keys[i] = EMPTY_KEY;
    const size_t mask = capacity - 1;
    for (int32_t r = 0; r < t->n_merges; r++) {
        uint64_t key = pair_key(t->merges[2 * (size_t)r],
                                t->merges[2 * (size_t)r + 1]);
        size_t i = (size_t)((key * 0x9E3779B97F4A7C15ull) >> t->rank_shift);
        while (t->rank_keys[i] != EMPTY_KEY) {
            if (t->rank_keys[i] == key)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: merge %d at %s %zu repeats merge "
                                 "%d (%d + %d)",
                                 who, (int)r, unit, first + stride * (size_t)r,
                                 (int)t->rank_values[i],
                                 (int)t->merges[2 * (size_t)r],
                                 (int)t->merges[2 * (size_t)r + 1]);
            i = (i + 1) & mask;
        }
        t->rank_keys[i] = key;
        t->rank_values[i] = r;
    }
    return TLM_OK;
}

int tlmi_tokenizer_build(tlm_tokenizer **out, const tlmi_host *host_in,
                         int32_t kind, const uint32_t *items, size_t n_items,
                         const char *who, size_t items_offset) {
    *out = NULL;
    tlmi_host host = *host_in;
    host.last_error[0] = '\0';
    int32_t n_regular;
    if (kind == TLM_TOKENIZER_BYTE)
        n_regular = 256;
    else if (kind == TLM_TOKENIZER_CHAR)
        n_regular = (int32_t)n_items + 1; /* the unknown token too */
    else
        n_regular = 256 + (int32_t)(n_items / 2);

    tlm_tokenizer *t = TLMI_HANDLE_ALLOC(&host, tlm_tokenizer);
    if (t == NULL)
        return tlmi_fail(&host, TLM_E_NOMEM,
                         "%s: out of memory for the tokenizer (%zu bytes)",
                         who, sizeof *t);
    t->kind = kind;
    t->vocab_size = n_regular + TLMI_N_SPECIAL;
    t->unk_id = kind == TLM_TOKENIZER_CHAR ? n_regular - 1 : -1;
    t->bos_id = n_regular;
    t->eos_id = n_regular + 1;
    t->pad_id = n_regular + 2;

    const size_t offsets_size =
        ((size_t)t->vocab_size + 1) * sizeof *t->token_offsets;
    int status = TLM_OK;
    t->token_offsets = tlmi_host_alloc(&host, offsets_size, 64);
    if (t->token_offsets == NULL) {
        status = tlmi_fail(&host, TLM_E_NOMEM,
                           "%s: out of memory for the token table (%zu bytes)",
                           who, offsets_size);
        goto fail;
    }
    /* The character keys or merges are kept; counts are set once they
     * are allocated so that a failure frees exactly what exists. */
    if (kind == TLM_TOKENIZER_CHAR && n_items > 0) {
        t->char_keys = tlmi_host_alloc(&host, n_items * sizeof(uint32_t), 64);
        if (t->char_keys != NULL) {
            memcpy(t->char_keys, items, n_items * sizeof(uint32_t));
            t->n_chars = (int32_t)n_items;
        }
    } else if (kind == TLM_TOKENIZER_BPE && n_items > 0) {
        t->merges = tlmi_host_alloc(&host, n_items * sizeof(int32_t), 64);
        if (t->merges != NULL) {
            memcpy(t->merges, items, n_items * sizeof(int32_t));
            t->n_merges = (int32_t)(n_items / 2);
        }
    }
    if (n_items > 0 && t->char_keys == NULL && t->merges == NULL) {
        status = tlmi_fail(&host, TLM_E_NOMEM,
                           "%s: out of memory for %zu vocabulary items", who,
                           n_items);
        goto fail;
    }

    t->token_offsets[0] = 0;
    status = measure_tokens(t, &host, items, who, items_offset);
    if (status != TLM_OK)
        goto fail;
    size_t total = 0;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        size_t len = t->token_offsets[id + 1];
        if (len > t->max_token_bytes)
            t->max_token_bytes = len;
        total += len; /* at most TLMI_VOCAB_MAX * TLMI_CHUNK_MAX */
        t->token_offsets[id + 1] = total;
    }
    t->token_data = tlmi_host_alloc(&host, total, 64);
    if (t->token_data == NULL) {
        status = tlmi_fail(&host, TLM_E_NOMEM,
                           "%s: out of memory for the token bytes (%zu bytes)",
                           who, total);
        goto fail;
    }
    t->token_data_size = total;
    fill_tokens(t, items);

    for (int b = 0; b < 256; b++)
        t->byte_ids[b] = kind == TLM_TOKENIZER_CHAR ? t->unk_id : b;
    if (kind == TLM_TOKENIZER_CHAR) {
        for (int c = 0; c < 128; c++)
            t->ascii_ids[c] = t->unk_id;
        for (int32_t i = 0; i < t->n_chars && t->char_keys[i] < 128; i++)
            t->ascii_ids[t->char_keys[i]] = i;
    }
    if (kind == TLM_TOKENIZER_BPE && t->n_merges > 0) {
        status = tlmi_bpe_build_ranks(t, &host, who, "offset", items_offset,
                                      8);
        if (status != TLM_OK)
            goto fail;
    }
    *out = t;
    return TLM_OK;

fail:
    tlmi_tokenizer_release(t);
    return status;
}

/* --- training ------------------------------------------------------------ */

TLM_API int tlm_tokenizer_params_init(tlm_tokenizer_params *params) {
    TLMI_PARAMS_INIT("tlm_tokenizer_params_init", params);
    params->kind = TLM_TOKENIZER_BPE;
    params->vocab_size = DEFAULT_BPE_VOCAB;
    params->min_pair_count = DEFAULT_MIN_PAIR_COUNT;
    return TLM_OK;
}

void tlmi_tokenizer_host(tlmi_host *host, const tlm_context *ctx) {
    if (ctx != NULL)
        *host = ctx->host;
    else
        tlmi_host_init_default(host);
    host->last_error[0] = '\0';
    /* A tokenizer may outlive its context (tlm.h): its bytes are not
     * added to the context's count, which goes with the context. */
    host->live_bytes = NULL;
}

/* Character keys of the corpus, sorted: a bitmap over every possible key
 * (0x110100 bits), read back in order. */
static int train_chars(tlm_tokenizer **out, tlmi_host *host,
                       const unsigned char *text, size_t n) {
    const char *who = "tlm_tokenizer_train";
    const size_t n_words = (TLMI_LONE_BYTE + 256 + 63) / 64;
    uint64_t *seen = tlmi_host_alloc(host, n_words * sizeof *seen, 64);
    if (seen == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "%s: out of memory for the character set (%zu "
                         "bytes)",
                         who, n_words * sizeof *seen);
    memset(seen, 0, n_words * sizeof *seen);
    size_t i = 0;
    while (i < n) {
        uint32_t key;
        size_t len = next_char_key(text + i, n - i, &key);
        seen[key / 64] |= (uint64_t)1 << (key % 64);
        i += len;
    }
    size_t count = 0;
    for (size_t w = 0; w < n_words; w++)
        for (uint64_t bits = seen[w]; bits != 0; bits &= bits - 1)
            count++;
    uint32_t *keys = NULL;
    if (count > 0) {
        keys = tlmi_host_alloc(host, count * sizeof *keys, 64);
        if (keys == NULL) {
            tlmi_host_free(host, seen, n_words * sizeof *seen);
            return tlmi_fail(host, TLM_E_NOMEM,
                             "%s: out of memory for %zu characters", who,
                             count);
        }
        size_t k = 0;
        for (size_t w = 0; w < n_words; w++)
            for (int b = 0; b < 64; b++)
                if (seen[w] >> b & 1)
                    keys[k++] = (uint32_t)(w * 64 + (size_t)b);
    }
    tlmi_host_free(host, seen, n_words * sizeof *seen);
    int status = tlmi_tokenizer_build(out, host, TLM_TOKENIZER_CHAR, keys,
                                      count, who, 0);
    tlmi_host_free(host, keys, count * sizeof *keys);
    return status;
}

TLM_API int tlm_tokenizer_train(tlm_tokenizer **out, tlm_context *ctx,
                                const char *corpus, size_t length,
                                const tlm_tokenizer_params *given) {
    const char *who = "tlm_tokenizer_train";
    TLMI_CHECK_OUT(NULL, who, out, NULL);
    tlmi_host host;
    tlmi_tokenizer_host(&host, ctx);
    TLMI_CHECK_BUFFER(&host, who, corpus, length);
    tlm_tokenizer_params params;
    tlm_tokenizer_params_init(&params);
    TLMI_TRY(tlmi_params_merge(&host, "tlm_tokenizer_train: params", &params,
                               sizeof params, given));
    const unsigned char *text = (const unsigned char *)corpus;
    switch (params.kind) {
    case TLM_TOKENIZER_BYTE:
        return tlmi_tokenizer_build(out, &host, TLM_TOKENIZER_BYTE, NULL, 0,
                                    who, 0);
    case TLM_TOKENIZER_CHAR:
        return train_chars(out, &host, text, length);
    case TLM_TOKENIZER_BPE:
        break;
    case TLM_TOKENIZER_GPT2:
        return tlmi_fail(&host, TLM_E_INVALID,
                         "%s: params.kind 3 (GPT-2) is not trained: read "
                         "GPT-2's vocabulary with tlm_tokenizer_import()",
                         who);
    case TLM_TOKENIZER_SENTENCEPIECE:
        return tlmi_fail(&host, TLM_E_INVALID,
                         "%s: params.kind 4 (SentencePiece) is not trained: "
                         "read a tokenizer.model or tokenizer.bin with "
                         "tlm_tokenizer_import()",
                         who);
    default:
        return tlmi_fail(&host, TLM_E_INVALID,
                         "%s: params.kind %d is not a tlm_tokenizer_kind "
                         "(0 byte, 1 char, 2 BPE, 3 GPT-2, 4 SentencePiece)",
                         who, (int)params.kind);
    }
    const int32_t smallest = 256 + TLMI_N_SPECIAL;
    if (params.vocab_size < smallest || params.vocab_size > TLMI_VOCAB_MAX)
        return tlmi_fail(&host, TLM_E_INVALID,
                         "%s: params.vocab_size %d is outside %d..%d (256 "
                         "bytes + merges + %d special tokens)",
                         who, (int)params.vocab_size, (int)smallest,
                         TLMI_VOCAB_MAX, TLMI_N_SPECIAL);
    if (params.min_pair_count < 1)
        return tlmi_fail(&host, TLM_E_INVALID,
                         "%s: params.min_pair_count %d is below 1", who,
                         (int)params.min_pair_count);
    tlmi_merge_list merges;
    TLMI_TRY(tlmi_bpe_train(&merges, &host, text, length,
                            params.vocab_size - smallest,
                            params.min_pair_count, who));
    int status = tlmi_tokenizer_build(out, &host, TLM_TOKENIZER_BPE,
                                      merges.pairs, 2 * (size_t)merges.count,
                                      who, 0);
    tlmi_merge_list_free(&merges, &host);
    return status;
}

TLM_API void tlm_tokenizer_free(tlm_tokenizer *tok) {
    if (tok != NULL)
        tlmi_tokenizer_release(tok);
}

/* --- accessors ------------------------------------------------------------- */

TLM_API const char *tlm_tokenizer_last_error(const tlm_tokenizer *tok) {
    return TLMI_LAST_ERROR("tlm_tokenizer_last_error", tok);
}

TLM_API int32_t tlm_tokenizer_kind(const tlm_tokenizer *tok) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_tokenizer_kind", tok);
    return tok->kind;
}

TLM_API int32_t tlm_tokenizer_vocab_size(const tlm_tokenizer *tok) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_tokenizer_vocab_size", tok);
    return tok->vocab_size;
}

TLM_API int32_t tlm_tokenizer_special_id(tlm_tokenizer *tok, int32_t which) {
    const char *who = "tlm_tokenizer_special_id";
    TLMI_CHECK_NOT_NULL(NULL, who, tok);
    static const char *const names[] = {"begin-of-text", "end-of-text",
                                        "padding"};
    switch (which) {
    case TLM_TOKEN_BOS:
    case TLM_TOKEN_EOS:
    case TLM_TOKEN_PAD: {
        int32_t id = which == TLM_TOKEN_BOS   ? tok->bos_id
                     : which == TLM_TOKEN_EOS ? tok->eos_id
                                              : tok->pad_id;
        if (id < 0)
            return tlmi_fail(&tok->host, TLM_E_RANGE,
                             "%s: the SentencePiece model has no %s id "
                             "(trainer_spec says -1)",
                             who, names[which]);
        return id;
    }
    case TLM_TOKEN_UNK:
        if (tok->unk_id < 0)
            return tlmi_fail(&tok->host, TLM_E_RANGE,
                             "%s: only character-level and SentencePiece "
                             "tokenizers have an unknown token "
                             "(TLM_TOKEN_UNK)",
                             who);
        return tok->unk_id;
    default:
        return tlmi_fail(&tok->host, TLM_E_INVALID,
                         "%s: which %d is not a tlm_special_token (0..3)",
                         who, (int)which);
    }
}

TLM_API int tlm_tokenizer_token_bytes(tlm_tokenizer *tok, int32_t id,
                                      const char **bytes, size_t *length) {
    const char *who = "tlm_tokenizer_token_bytes";
    if (bytes == NULL || length == NULL || tok == NULL) {
        tlmi_host *host = tok != NULL ? &tok->host : NULL;
        if (bytes != NULL)
            *bytes = NULL;
        if (length != NULL)
            *length = 0;
        return tlmi_fail(host, TLM_E_INVALID, "%s: %s is NULL", who,
                         bytes == NULL ? "bytes"
                         : length == NULL ? "length" : "tok");
    }
    *bytes = NULL;
    *length = 0;
    if (id < 0 || id >= tok->vocab_size)
        return tlmi_fail(&tok->host, TLM_E_RANGE,
                         "%s: id %d is outside 0..%d", who, (int)id,
                         (int)tok->vocab_size - 1);
    *bytes = (const char *)tok->token_data + tok->token_offsets[id];
    *length = tok->token_offsets[id + 1] - tok->token_offsets[id];
    return TLM_OK;
}

TLM_API int32_t tlm_tokenizer_merge_count(const tlm_tokenizer *tok) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_tokenizer_merge_count", tok);
    return tok->n_merges;
}

TLM_API int tlm_tokenizer_merge(tlm_tokenizer *tok, int32_t rank,
                                int32_t *left, int32_t *right) {
    const char *who = "tlm_tokenizer_merge";
    tlmi_host *host = tok != NULL ? &tok->host : NULL;
    TLMI_CHECK_NOT_NULL(host, who, left);
    TLMI_CHECK_NOT_NULL(host, who, right);
    TLMI_CHECK_NOT_NULL(host, who, tok);
    if (rank < 0 || rank >= tok->n_merges)
        return tlmi_fail(&tok->host, TLM_E_RANGE,
                         "%s: rank %d is outside 0..%d (the tokenizer has "
                         "%d merges)",
                         who, (int)rank, (int)tok->n_merges - 1,
                         (int)tok->n_merges);
    *left = tok->merges[2 * (size_t)rank];
    *right = tok->merges[2 * (size_t)rank + 1];
    return TLM_OK;
}

/* --- encoding ----------------------------------------------------------------- */

size_t tlmi_bpe_encode_chunk(const tlm_tokenizer *tok,
                             const unsigned char *chunk, size_t n,
                             int32_t *ids) {
    for (size_t i = 0; i < n; i++)
        ids[i] = tok->byte_ids[chunk[i]];
    if (n < 2 || tok->n_merges == 0)
        return n;
    /* ranks[i]: rank of merging ids[i] and ids[i + 1]. Each step merges
     * the lowest-ranked pair, leftmost first; new pairs always rank after
     * the merge that made them, so this applies the merges in rank order,
     * each over the whole chunk from left to right, as training did. */
    int32_t ranks[TLMI_CHUNK_MAX];
    for (size_t i = 0; i + 1 < n; i++)
        ranks[i] = tlmi_bpe_rank(tok, ids[i], ids[i + 1]);
    while (n > 1) {
        int32_t best = TLMI_NO_RANK;
        size_t at = 0;
        for (size_t i = 0; i + 1 < n; i++)
            if (ranks[i] < best) {
                best = ranks[i];
                at = i;
            }
        if (best == TLMI_NO_RANK)
            break;
        ids[at] = tok->merge_ids != NULL ? tok->merge_ids[best] : 256 + best;
        memmove(ids + at + 1, ids + at + 2, (n - at - 2) * sizeof *ids);
        if (at + 3 < n)
            memmove(ranks + at + 1, ranks + at + 2,
                    (n - at - 3) * sizeof *ranks);
        n--;
        if (at + 1 < n)
            ranks[at] = tlmi_bpe_rank(tok, ids[at], ids[at + 1]);
        if (at > 0)
            ranks[at - 1] = tlmi_bpe_rank(tok, ids[at - 1], ids[at]);
    }
    return n;
}

static int32_t char_id(const tlm_tokenizer *tok, uint32_t key) {
    size_t lo = 0, hi = (size_t)tok->n_chars;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (tok->char_keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < (size_t)tok->n_chars && tok->char_keys[lo] == key)
        return (int32_t)lo;
    return tok->unk_id;
}

/* Appends ids while they fit; counts them all. */
typedef struct id_sink {
    int32_t *ids;
    size_t capacity;
    size_t count;
} id_sink;

static void put_id(id_sink *sink, int32_t id) {
    if (sink->count < sink->capacity)
        sink->ids[sink->count] = id;
    sink->count++;
}

/* `starts_text`: 0 when the text continues other text (SentencePiece's
 * dummy prefix is left out). */
static int encode_text(tlm_tokenizer *tok, const unsigned char *text,
                       size_t n, int starts_text, id_sink *sink,
                       const char *who) {
    if (tok->kind == TLM_TOKENIZER_BYTE) {
        for (size_t i = 0; i < n; i++)
            put_id(sink, text[i]);
        return TLM_OK;
    }
    if (tok->kind == TLM_TOKENIZER_CHAR) {
        size_t i = 0;
        while (i < n) {
            if (text[i] < 0x80) {
                put_id(sink, tok->ascii_ids[text[i]]);
                i++;
                continue;
            }
            uint32_t key;
            size_t len = next_char_key(text + i, n - i, &key);
            put_id(sink, char_id(tok, key));
            i += len;
        }
        return TLM_OK;
    }
    if (tok->kind == TLM_TOKENIZER_SENTENCEPIECE) {
        if (n == 0)
            return TLM_OK;
        int32_t *ids = NULL;
        size_t count = 0, capacity = 0;
        TLMI_TRY(tlmi_sp_encode(tok, text, n, starts_text, &ids, &count,
                                &capacity, who));
        for (size_t i = 0; i < count; i++)
            put_id(sink, ids[i]);
        tlmi_host_free(&tok->host, ids, capacity * sizeof *ids);
        return TLM_OK;
    }
    /* BPE and GPT-2: BPE within each piece of the pre-split. Only GPT-2's
     * pieces can be longer than TLMI_CHUNK_MAX. */
    const int gpt2 = tok->kind == TLM_TOKENIZER_GPT2;
    int32_t chunk_ids[TLMI_CHUNK_MAX];
    size_t start = 0;
    while (start < n) {
        size_t end = gpt2 ? tlmi_gpt2_chunk_end(text, n, start)
                          : tlmi_chunk_end(text, n, start);
        size_t len = end - start;
        /* A piece that is a token is that token, as in tiktoken (which
         * looks the piece up before merging). */
        int32_t whole = gpt2 && len <= tok->max_token_bytes
                            ? tlmi_token_lookup(tok, text + start, len)
                            : -1;
        if (whole >= 0 && whole != tok->eos_id) {
            put_id(sink, whole);
        } else if (len <= TLMI_CHUNK_MAX) {
            size_t count =
                tlmi_bpe_encode_chunk(tok, text + start, len, chunk_ids);
            for (size_t i = 0; i < count; i++)
                put_id(sink, chunk_ids[i]);
        } else {
            int32_t *ids = len <= SIZE_MAX / sizeof *ids
                               ? tlmi_host_alloc(&tok->host, len * sizeof *ids, 64)
                               : NULL;
            if (ids == NULL)
                return tlmi_fail(&tok->host, TLM_E_NOMEM,
                                 "%s: out of memory for a %zu-byte piece",
                                 who, len);
            size_t count = 0;
            int status = tlmi_bpe_encode_long(tok, &tok->host, text + start,
                                              len, ids, &count, who);
            for (size_t i = 0; i < count; i++)
                put_id(sink, ids[i]);
            tlmi_host_free(&tok->host, ids, len * sizeof *ids);
            if (status != TLM_OK)
                return status;
        }
        start = end;
    }
    return TLM_OK;
}

static int encode_ids(tlm_tokenizer *tok, const char *text, size_t length,
                      int32_t *ids, size_t capacity, size_t *n_ids,
                      int starts_text) {
    const char *who = "tlm_tokenizer_encode";
    tlmi_host *host = tok != NULL ? &tok->host : NULL;
    TLMI_CHECK_OUT(host, who, n_ids, 0);
    TLMI_CHECK_NOT_NULL(host, who, tok);
    TLMI_CHECK_BUFFER(host, who, ids, capacity);
    TLMI_CHECK_BUFFER(host, who, text, length);
    id_sink sink = {ids, capacity, 0};
    TLMI_TRY(encode_text(tok, (const unsigned char *)text, length,
                         starts_text, &sink, who));
    *n_ids = sink.count;
    if (sink.count > capacity && ids != NULL)
        return tlmi_fail(host, TLM_E_RANGE,
                         "%s: the text encodes to %zu ids but ids has room "
                         "for %zu",
                         who, sink.count, capacity);
    return TLM_OK;
}

TLM_API int tlm_tokenizer_encode(tlm_tokenizer *tok, const char *text,
                                 size_t length, int32_t *ids,
                                 size_t capacity, size_t *n_ids) {
    return encode_ids(tok, text, length, ids, capacity, n_ids, 1);
}

int tlmi_tokenizer_encode_continuing(tlm_tokenizer *tok, const char *text,
                                     size_t length, int32_t *ids,
                                     size_t capacity, size_t *n_ids) {
    return encode_ids(tok, text, length, ids, capacity, n_ids, 0);
}

/* --- decoding --------------------------------------------------------------- */

TLM_API int tlm_tokenizer_decode(tlm_tokenizer *tok, const int32_t *ids,
                                 size_t n_ids, char *text, size_t capacity,
                                 size_t *length) {
    const char *who = "tlm_tokenizer_decode";
    tlmi_host *host = tok != NULL ? &tok->host : NULL;
    TLMI_CHECK_OUT(host, who, length, 0);
    TLMI_CHECK_NOT_NULL(host, who, tok);
    TLMI_CHECK_BUFFER(host, who, text, capacity);
    TLMI_CHECK_BUFFER(host, who, ids, n_ids);
    size_t total = 0;
    const int sp = tok->kind == TLM_TOKENIZER_SENTENCEPIECE;
    tlmi_sp_decoder state = {1};
    for (size_t i = 0; i < n_ids; i++) {
        int32_t id = ids[i];
        if (id < 0 || id >= tok->vocab_size)
            return tlmi_fail(host, TLM_E_RANGE,
                             "%s: ids[%zu] = %d is outside the vocabulary "
                             "0..%d",
                             who, i, (int)id, (int)tok->vocab_size - 1);
        size_t len = tok->token_offsets[id + 1] - tok->token_offsets[id];
        if (sp) {
            const unsigned char *bytes;
            tlmi_sp_decode_piece(tok, &state, id, &bytes, &len);
        }
        if (len > SIZE_MAX - total)
            return tlmi_fail(host, TLM_E_OVERFLOW,
                             "%s: the decoded length overflows at ids[%zu]",
                             who, i);
        total += len;
    }
    *length = total;
    if (text == NULL)
        return TLM_OK;
    size_t at = 0;
    state.at_start = 1;
    for (size_t i = 0; i < n_ids && at < capacity; i++) {
        const unsigned char *bytes = tok->token_data + tok->token_offsets[ids[i]];
        size_t len = tok->token_offsets[ids[i] + 1] - tok->token_offsets[ids[i]];
        if (sp)
            tlmi_sp_decode_piece(tok, &state, ids[i], &bytes, &len);
        if (len > capacity - at)
            len = capacity - at;
        memcpy(text + at, bytes, len);
        at += len;
    }
    if (total > capacity)
        return tlmi_fail(host, TLM_E_RANGE,
                         "%s: the ids decode to %zu bytes but text has room "
                         "for %zu",
                         who, total, capacity);
    return TLM_OK;
}
