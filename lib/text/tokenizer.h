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

/* Longest chunk tlm's own pre-split makes, in bytes; also the longest
 * token of every kind. (GPT-2's pre-split has no limit: longer chunks are
 * encoded by tlmi_bpe_encode_long.) */
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

    /* BPE and GPT-2: the id of each byte's token (b itself for BPE; from
     * the vocabulary for GPT-2). */
    int32_t byte_ids[256];
    /* BPE and GPT-2: merge r joins merges[2r] and merges[2r+1] into id
     * merge_ids[r] (256 + r when merge_ids is NULL, as in BPE), and an
     * open-addressing table maps a pair to its rank. */
    int32_t n_merges;
    int32_t *merges;             /* [2 * n_merges] */
    int32_t *merge_ids;          /* [n_merges] or NULL */

    /* GPT-2: the id of a token's bytes, by open addressing on their hash
     * (tlmi_token_lookup). */
    int32_t *token_table;        /* [token_table_capacity], ids or -1 */
    size_t token_table_capacity; /* a power of two, or 0 */
    uint64_t *rank_keys;         /* [rank_capacity], pair keys or EMPTY */
    int32_t *rank_values;        /* [rank_capacity] */
    size_t rank_capacity;        /* a power of two, or 0 without merges */
    int rank_shift;              /* 64 - log2(rank_capacity) */

    /* SentencePiece (tokenizer_sentencepiece.c): every piece as the model
     * spells it (U+2581 for a space), its score and its type (a
     * TLMI_SP_* value); token_data holds what each id decodes to. A piece
     * is found from its bytes by open addressing (piece_table). */
    size_t *piece_offsets;       /* [vocab_size + 1] */
    unsigned char *piece_data;   /* [piece_data_size] */
    size_t piece_data_size;
    size_t max_piece_bytes;      /* longest piece */
    float *piece_scores;         /* [vocab_size] */
    uint8_t *piece_types;        /* [vocab_size] */
    int32_t *piece_table;        /* [piece_table_capacity], ids or -1 */
    size_t piece_table_capacity; /* a power of two, or 0 */
    /* Pairs of characters that sit side by side inside some NORMAL piece
     * (each character's UTF-8 bytes packed big-endian in 32 bits, the
     * left one high): no merge crosses a boundary between two characters
     * that are not such a pair, so encoding handles the text between
     * those boundaries one part at a time. Open addressing, UINT64_MAX
     * empty. */
    uint64_t *joint_keys;        /* [joint_capacity] */
    size_t joint_capacity;       /* a power of two, or 0 */
    int add_dummy_prefix;        /* a U+2581 before non-empty text */
    int escape_whitespaces;      /* spaces become U+2581 */
    int byte_fallback;           /* unknown characters as <0xNN> pieces */
};

/* --- pre-split ----------------------------------------------------------- */

/* End of the chunk that starts at `start` (< n): the rules of
 * docs/tokenizer.md. Chunks cover the text without gaps; each is 1 to
 * TLMI_CHUNK_MAX bytes long and never splits a valid UTF-8 character. */
size_t tlmi_chunk_end(const unsigned char *text, size_t n, size_t start);

/* Length of the English contraction ('s 't 'm 'd 're 've 'll, lower case
 * only, as GPT-2's case-sensitive pattern has them) at t[s] (s < n), or 0.
 * Both pre-splits (pretokenize.c, pretokenize_gpt2.c) start a chunk with
 * one. */
size_t tlmi_contraction_length(const unsigned char *t, size_t n, size_t s);

/* End of GPT-2's pre-tokenization piece that starts at `start` (< n)
 * (pretokenize_gpt2.c). Pieces cover the text without gaps, have no
 * length limit and never split a valid UTF-8 character. */
size_t tlmi_gpt2_chunk_end(const unsigned char *text, size_t n, size_t start);

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

/* The same for a chunk of any length n >= 1, in O(n log n) with memory
 * from `host`: `ids` (room for n) receives the ids and *n_ids their
 * count. TLM_E_NOMEM (recorded on `host` with `who`) when memory runs out. */
int tlmi_bpe_encode_long(const tlm_tokenizer *tok, tlmi_host *host,
                         const unsigned char *chunk, size_t n, int32_t *ids,
                         size_t *n_ids, const char *who);

/* --- GPT-2 ---------------------------------------------------------------- */

/* A GPT-2-kind vocabulary, as the importers and the file reader gather
 * it: token id's bytes are data[offsets[id] .. offsets[id + 1]). */
typedef struct tlmi_gpt2_vocab {
    int32_t n_tokens;            /* ids 0..n_tokens-1, the special included */
    const size_t *offsets;       /* [n_tokens + 1] */
    const unsigned char *data;   /* [offsets[n_tokens]] */
    int32_t special_id;          /* <|endoftext|> */
    int32_t n_merges;
    const int32_t *merges;       /* [3 * n_merges]: left, right, result id */
    /* Where merge r came from, for messages: "<unit> <first + stride * r>"
     * ("line" in vocab.bpe, "offset" in a file image). */
    const char *merge_unit;
    size_t merge_first, merge_stride;
} tlmi_gpt2_vocab;

/* Builds a TLM_TOKENIZER_GPT2 tokenizer, validating everything: every
 * token 1..TLMI_CHUNK_MAX bytes, no two tokens with the same bytes, one
 * single-byte token per byte value, merges whose ids exist, whose result
 * is not the special token and whose result's bytes are the left's then
 * the right's, no pair merged twice. A failure is TLM_E_FORMAT
 * "<who>: <what>" (TLM_E_NOMEM when memory runs out). */
int tlmi_gpt2_build(tlm_tokenizer **out, const tlmi_host *host,
                    const tlmi_gpt2_vocab *vocab, const char *who);

/* The id of the GPT-2-kind token whose bytes are s[0..n), or -1. */
int32_t tlmi_token_lookup(const tlm_tokenizer *tok, const unsigned char *s,
                          size_t n);

/* GPT-2's published files in memory (tokenizer_import.c): encoder.json
 * (or vocab.json) and vocab.bpe (or merges.txt), and tiktoken's rank
 * file; the names are for messages. Any bytes are safe to pass. */
int tlmi_gpt2_read_files(tlm_tokenizer **out, tlmi_host *host,
                         const char *vocab_text, size_t vocab_size,
                         const char *vocab_name, const char *merges_text,
                         size_t merges_size, const char *merges_name);
int tlmi_tiktoken_read(tlm_tokenizer **out, tlmi_host *host,
                       const char *text, size_t size, const char *name);

/* Writes a GPT-2-kind tokenizer (another kind is TLM_E_INVALID) into the
 * directory `dir` (created if absent) as its vocabulary JSON and its merge
 * list, under the names given: OpenAI's encoder.json + vocab.bpe, or
 * Hugging Face's vocab.json + merges.txt. Each file is replaced
 * atomically; `tok` is const, so a failure is recorded only for the
 * calling thread, prefixed with `who`. */
int tlmi_gpt2_export(const tlm_tokenizer *tok, const char *dir,
                     const char *vocab_name, const char *merges_name,
                     const char *who);

/* --- SentencePiece ---------------------------------------------------------- */

/* Piece types, numbered as in sentencepiece_model.proto. */
enum {
    TLMI_SP_NORMAL = 1,
    TLMI_SP_UNKNOWN = 2,
    TLMI_SP_CONTROL = 3,
    TLMI_SP_USER_DEFINED = 4,
    TLMI_SP_UNUSED = 5,
    TLMI_SP_BYTE = 6
};

/* A SentencePiece vocabulary as the readers gather it: piece id's bytes
 * are data[offsets[id] .. offsets[id + 1]). Ids are -1 when absent. */
typedef struct tlmi_sp_vocab {
    int32_t n_pieces;
    const size_t *offsets;       /* [n_pieces + 1] */
    const unsigned char *data;
    const float *scores;         /* [n_pieces] */
    const uint8_t *types;        /* [n_pieces], TLMI_SP_* */
    int32_t bos_id, eos_id, pad_id;
    int add_dummy_prefix, escape_whitespaces, byte_fallback;
    const unsigned char *unk_surface; /* what UNK decodes to */
    size_t unk_surface_length;
} tlmi_sp_vocab;

/* Builds a TLM_TOKENIZER_SENTENCEPIECE tokenizer, validating everything
 * (pieces 1..TLMI_CHUNK_MAX bytes and all different, one UNKNOWN piece,
 * byte pieces spelled <0xNN> and only with byte fallback, no piece type
 * tlm cannot encode exactly, finite scores). TLM_E_FORMAT or
 * TLM_E_UNSUPPORTED "<who>: <what>"; TLM_E_NOMEM. */
int tlmi_sp_build(tlm_tokenizer **out, const tlmi_host *host,
                  const tlmi_sp_vocab *vocab, const char *who);

/* SentencePiece's ModelProto (a tokenizer.model file) in memory
 * (sentencepiece_model.c); any bytes are safe to pass. */
int tlmi_sp_read_model(tlm_tokenizer **out, const tlmi_host *host,
                       const unsigned char *data, size_t size,
                       const char *who);

/* Size of the ModelProto that describes a SentencePiece tokenizer, and
 * writing it (tlmi_sp_model_size bytes) into `out`. */
size_t tlmi_sp_model_size(const tlm_tokenizer *tok);
void tlmi_sp_model_write(const tlm_tokenizer *tok, unsigned char *out);

/* llama2.c's tokenizer.bin in memory; any bytes are safe to pass. */
int tlmi_sp_read_llama2c(tlm_tokenizer **out, const tlmi_host *host,
                         const unsigned char *data, size_t size,
                         const char *who);

/* Writes a SentencePiece tokenizer in llama2.c's tokenizer.bin form into
 * host memory (*data, *size; release with tlmi_host_free(host, *data,
 * *size)). A tokenizer the form cannot hold is TLM_E_UNSUPPORTED naming
 * the field (recorded on `host` with `who`). */
int tlmi_sp_write_llama2c(const tlm_tokenizer *tok, tlmi_host *host,
                          unsigned char **data, size_t *size,
                          const char *who);

/* SentencePiece's encoding of text[0..n) (n >= 1) into host memory:
 * *ids (room for *capacity, release with tlmi_host_free) and their count
 * *n_ids. TLM_E_NOMEM recorded on tok->host with `who`. */
int tlmi_sp_encode(tlm_tokenizer *tok, const unsigned char *text, size_t n,
                   int32_t **ids, size_t *n_ids, size_t *capacity,
                   const char *who);

/* Decoding state of SentencePiece's rule that drops the leading space of
 * the first piece (docs/tokenizer.md, "SentencePiece"). */
typedef struct tlmi_sp_decoder {
    int at_start; /* nothing has been decoded yet */
} tlmi_sp_decoder;

/* The bytes id decodes to in this position (a view into the tokenizer),
 * advancing the state. */
void tlmi_sp_decode_piece(const tlm_tokenizer *tok, tlmi_sp_decoder *state,
                          int32_t id, const unsigned char **bytes,
                          size_t *length);

/* Whether generation and scoring put the begin-of-text id before the
 * encoded text (SentencePiece tokenizers, as llama2.c and Hugging Face
 * do). */
int tlmi_tokenizer_adds_bos(const tlm_tokenizer *tok);

/* Marks a stream as continuing text that was decoded elsewhere (a
 * prompt): its first piece keeps its leading space. */
void tlmi_token_stream_continue(tlm_token_stream *stream);

/* Frees a tokenizer built by either builder (tlm_tokenizer_free()). */
void tlmi_tokenizer_release(tlm_tokenizer *tok);

/* Builds the pair -> rank table of tok->merges; a repeated pair is
 * TLM_E_FORMAT naming merge r at "<unit> <first + stride * r>". */
int tlmi_bpe_build_ranks(tlm_tokenizer *tok, tlmi_host *host,
                         const char *who, const char *unit, size_t first,
                         size_t stride);

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
