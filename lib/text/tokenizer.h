/*
 * Tokenizers: the handle every kind shares (the bytes of every token, the
 * character table of character-level tokenizers, the merge table of BPE
 * tokenizers), and the pieces the kinds are built from: the pre-split of
 * text into chunks (pretokenize.c), BPE training and the file format
 * (UTF-8 is utf8.h's). docs/tokenizer.md specifies all of it.
 */
#ifndef TLM_LIB_TEXT_TOKENIZER_H
#define TLM_LIB_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"
#include "tlm.h"

/* Longest chunk the pre-split makes, in bytes; also the longest token. */
#define TLMI_CHUNK_MAX 256
/* Largest vocabulary, special tokens included. */
#define TLMI_VOCAB_MAX (1 << 24)
/* Character keys: a Unicode scalar value, or TLMI_LONE_BYTE + b for a byte
 * b that is not part of a valid UTF-8 sequence (b is 0x80..0xFF). */
#define TLMI_LONE_BYTE 0x110000u
/* The three special tokens that end every vocabulary. */
#define TLMI_N_SPECIAL 3
/* "No merge" in rank lookups: above every real rank. */
#define TLMI_NO_RANK INT32_MAX

struct tlm_tokenizer {
    tlmi_host host;
    int32_t kind;       /* a tlm_tokenizer_kind */
    int32_t vocab_size; /* every id, special tokens included */
    int32_t unk_id;     /* character-level only; -1 otherwise */
    int32_t bos_id, eos_id, pad_id;

    /* Bytes of every token: token id's bytes are
     * token_data[token_offsets[id] .. token_offsets[id + 1]). */
    size_t *token_offsets;       /* [vocab_size + 1] */
    unsigned char *token_data;   /* [token_data_size] */
    size_t token_data_size;
    size_t max_token_bytes;      /* longest token */

    /* Character-level: the sorted character keys; ids 0..n_chars-1. */
    int32_t n_chars;
    uint32_t *char_keys;         /* [n_chars] */
    int32_t ascii_ids[128];      /* id of each ASCII character, or unk_id */

    /* BPE: merge r joins merges[2r] and merges[2r+1] into id 256 + r, and
     * an open-addressing table maps a pair to its rank. */
    int32_t n_merges;
    int32_t *merges;             /* [2 * n_merges] */
    uint64_t *rank_keys;         /* [rank_capacity], pair keys or EMPTY */
    int32_t *rank_values;        /* [rank_capacity] */
    size_t rank_capacity;        /* a power of two, or 0 without merges */
    int rank_shift;              /* 64 - log2(rank_capacity) */
};

/* --- pre-split ----------------------------------------------------------- */

/* End of the chunk that starts at `start` (< n): the rules of
 * docs/tokenizer.md. Chunks cover the text without gaps; each is 1 to
 * TLMI_CHUNK_MAX bytes long and never splits a valid UTF-8 character. */
size_t tlmi_chunk_end(const unsigned char *text, size_t n, size_t start);

/* --- building ------------------------------------------------------------ */

/* Builds a tokenizer of `kind` from its items: nothing for byte-level, the
 * sorted character keys for character-level, the merge pairs (2 per merge)
 * for BPE. Every item is validated, so that a file's content can be
 * passed directly: a bad one is TLM_E_FORMAT with a message
 * "<who>: <what> at offset <items_offset + 4 * index>". Messages go to the
 * calling thread and to `host`'s log hook. */
int tlmi_tokenizer_build(tlm_tokenizer **out, const tlmi_host *host,
                         int32_t kind, const uint32_t *items, size_t n_items,
                         const char *who, size_t items_offset);

/* The hooks a new tokenizer gets: the context's, or the C library's
 * allocator and no logging when ctx is NULL; the error text cleared. */
void tlmi_tokenizer_host(tlmi_host *host, const tlm_context *ctx);

/* Rank of merging `left` and `right`, or TLMI_NO_RANK. */
int32_t tlmi_bpe_rank(const tlm_tokenizer *tok, int32_t left, int32_t right);

/* Encodes one chunk (1..TLMI_CHUNK_MAX bytes) with the BPE merges into
 * `ids` (room for n) and returns the number of ids. */
size_t tlmi_bpe_encode_chunk(const tlm_tokenizer *tok,
                             const unsigned char *chunk, size_t n,
                             int32_t *ids);

/* --- BPE training ---------------------------------------------------------- */

/* Merges learned from a corpus, two ids per merge, in rank order. */
typedef struct tlmi_merge_list {
    uint32_t *pairs;   /* [2 * count] of [capacity] */
    size_t capacity;   /* allocated uint32 slots */
    int32_t count;     /* merges */
} tlmi_merge_list;

/* Learns at most `max_merges` merges from `text` (n bytes), stopping when
 * the most frequent pair occurs fewer than `min_count` times. The list's
 * memory comes from `host`; free it with tlmi_merge_list_free(). Failures
 * are recorded on `host` with `who` in the message. */
int tlmi_bpe_train(tlmi_merge_list *merges, tlmi_host *host,
                   const unsigned char *text, size_t n, int32_t max_merges,
                   int64_t min_count, const char *who);

void tlmi_merge_list_free(tlmi_merge_list *merges, const tlmi_host *host);

/* --- file format ----------------------------------------------------------- */

/* Size of the tokenizer's file image. */
size_t tlmi_tokenizer_image_size(const tlm_tokenizer *tok);

/* Writes the file image into `out` (tlmi_tokenizer_image_size bytes). */
void tlmi_tokenizer_write_image(const tlm_tokenizer *tok, unsigned char *out);

/* Reads a file image; `who` starts every message. */
int tlmi_tokenizer_read_image(tlm_tokenizer **out, const tlmi_host *host,
                              const unsigned char *data, size_t size,
                              const char *who);


#endif
