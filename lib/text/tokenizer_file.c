/*
 * The tokenizer file format (docs/tokenizer.md, "File format"): a header
 * of little-endian 32-bit fields, the character keys or the merges, and a
 * CRC-32 of everything before it. Reading validates every field and names
 * the byte offset of what is wrong; any byte string is safe to read.
 */
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "base/crc32.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "tokenizer.h"

#define MAGIC "TLMTOKEN"
#define MAGIC_SIZE 8
/* Version 1: kinds byte, char and BPE. Version 2 adds the GPT-2 kind,
 * whose files are version 2; the other kinds are still written as
 * version 1, so that older libraries read them. */
#define FORMAT_VERSION 3u
#define GPT2_VERSION 2u
/* Version 3 adds the SentencePiece kind, whose body is its ModelProto
 * (the bytes of a tokenizer.model file). */
#define SENTENCEPIECE_VERSION 3u
#define HEADER_SIZE 40
/* Largest tokenizer file read (16M ids of at most a few bytes each fit
 * far below it). */
#define MAX_FILE_BYTES ((size_t)1 << 30)
#define CHECKSUM_SIZE 4
#define NO_ID 0xFFFFFFFFu

/* Field offsets. */
enum {
    AT_VERSION = 8,
    AT_KIND = 12,
    AT_VOCAB = 16,
    AT_BOS = 20,
    AT_EOS = 24,
    AT_PAD = 28,
    AT_UNK = 32,
    AT_COUNT = 36
};

/* Most items a valid file can hold. */
#define MAX_CHARS (TLMI_LONE_BYTE + 256u)
#define MAX_MERGES ((uint32_t)TLMI_VOCAB_MAX - 256u - TLMI_N_SPECIAL)

static size_t item_count(const tlm_tokenizer *tok) {
    if (tok->kind == TLM_TOKENIZER_CHAR)
        return (size_t)tok->n_chars;
    return (size_t)tok->n_merges;
}

static size_t item_size(uint32_t kind) {
    return kind == TLM_TOKENIZER_BPE ? 8 : 4;
}

/* GPT-2 kind: after the header, the length of every token (u32 each),
 * the merges (left, right, result: 3 u32 each), the tokens' bytes. */
static size_t gpt2_body_size(const tlm_tokenizer *tok) {
    return 4 * (size_t)tok->vocab_size + 12 * (size_t)tok->n_merges +
           tok->token_offsets[tok->vocab_size];
}

size_t tlmi_tokenizer_image_size(const tlm_tokenizer *tok) {
    if (tok->kind == TLM_TOKENIZER_SENTENCEPIECE)
        return HEADER_SIZE + tlmi_sp_model_size(tok) + CHECKSUM_SIZE;
    if (tok->kind == TLM_TOKENIZER_GPT2)
        return HEADER_SIZE + gpt2_body_size(tok) + CHECKSUM_SIZE;
    return HEADER_SIZE + item_count(tok) * item_size((uint32_t)tok->kind) +
           CHECKSUM_SIZE;
}

void tlmi_tokenizer_write_image(const tlm_tokenizer *tok, unsigned char *out) {
    memcpy(out, MAGIC, MAGIC_SIZE);
    const int sp = tok->kind == TLM_TOKENIZER_SENTENCEPIECE;
    tlmi_put_u32(out + AT_VERSION,
                 sp ? SENTENCEPIECE_VERSION
                 : tok->kind == TLM_TOKENIZER_GPT2 ? GPT2_VERSION : 1u);
    tlmi_put_u32(out + AT_KIND, (uint32_t)tok->kind);
    tlmi_put_u32(out + AT_VOCAB, (uint32_t)tok->vocab_size);
    tlmi_put_u32(out + AT_BOS, tok->bos_id < 0 ? NO_ID : (uint32_t)tok->bos_id);
    tlmi_put_u32(out + AT_EOS, tok->eos_id < 0 ? NO_ID : (uint32_t)tok->eos_id);
    tlmi_put_u32(out + AT_PAD, tok->pad_id < 0 ? NO_ID : (uint32_t)tok->pad_id);
    tlmi_put_u32(out + AT_UNK, tok->unk_id < 0 ? NO_ID : (uint32_t)tok->unk_id);
    const size_t model_size = sp ? tlmi_sp_model_size(tok) : 0;
    tlmi_put_u32(out + AT_COUNT,
                 sp ? (uint32_t)model_size : (uint32_t)item_count(tok));
    unsigned char *p = out + HEADER_SIZE;
    if (sp) {
        tlmi_sp_model_write(tok, p);
        p += model_size;
    } else if (tok->kind == TLM_TOKENIZER_GPT2) {
        for (int32_t id = 0; id < tok->vocab_size; id++, p += 4)
            tlmi_put_u32(p, (uint32_t)(tok->token_offsets[id + 1] -
                                       tok->token_offsets[id]));
        for (int32_t r = 0; r < tok->n_merges; r++, p += 12) {
            tlmi_put_u32(p, (uint32_t)tok->merges[2 * (size_t)r]);
            tlmi_put_u32(p + 4, (uint32_t)tok->merges[2 * (size_t)r + 1]);
            tlmi_put_u32(p + 8, (uint32_t)tok->merge_ids[r]);
        }
        size_t bytes = tok->token_offsets[tok->vocab_size];
        memcpy(p, tok->token_data, bytes);
        p += bytes;
    } else if (tok->kind == TLM_TOKENIZER_CHAR)
        for (int32_t i = 0; i < tok->n_chars; i++, p += 4)
            tlmi_put_u32(p, tok->char_keys[i]);
    else
        for (size_t i = 0; i < 2 * (size_t)tok->n_merges; i++, p += 4)
            tlmi_put_u32(p, (uint32_t)tok->merges[i]);
    tlmi_put_u32(p, tlmi_crc32(0, out, (size_t)(p - out)));
}

/* The header's special ids must sit where docs/tokenizer.md puts them. */
static int check_id(tlmi_host *host, const char *who,
                    const unsigned char *data, int at, const char *name,
                    uint32_t expected) {
    uint32_t got = tlmi_get_u32(data + at);
    if (got == expected)
        return TLM_OK;
    return tlmi_fail(host, TLM_E_FORMAT,
                     "%s: %s %u at offset %d, expected %u for this "
                     "vocabulary",
                     who, name, (unsigned)got, at, (unsigned)expected);
}

/* The GPT-2 kind's body (see gpt2_body_size); the header is read. */
static int read_gpt2_image(tlm_tokenizer **out, tlmi_host *host,
                           const unsigned char *data, size_t size,
                           const char *who) {
    const uint32_t vocab = tlmi_get_u32(data + AT_VOCAB);
    const uint32_t count = tlmi_get_u32(data + AT_COUNT);
    if (vocab < 257 || vocab > TLMI_VOCAB_MAX)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: vocabulary size %u at offset %d is outside "
                         "257..%d",
                         who, (unsigned)vocab, AT_VOCAB, TLMI_VOCAB_MAX);
    if (count > TLMI_VOCAB_MAX)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: merge count %u at offset %d is above %d", who,
                         (unsigned)count, AT_COUNT, TLMI_VOCAB_MAX);
    const size_t lengths_at = HEADER_SIZE;
    const size_t merges_at = lengths_at + 4 * (size_t)vocab;
    const size_t bytes_at = merges_at + 12 * (size_t)count;
    if (size < bytes_at + CHECKSUM_SIZE)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: truncated at offset %zu: %u token lengths and "
                         "%u merges need %zu bytes",
                         who, size, (unsigned)vocab, (unsigned)count,
                         bytes_at + CHECKSUM_SIZE);
    size_t total = 0;
    for (uint32_t id = 0; id < vocab; id++) {
        uint32_t len = tlmi_get_u32(data + lengths_at + 4 * (size_t)id);
        if (len == 0 || len > TLMI_CHUNK_MAX)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: token %u's length %u at offset %zu is "
                             "outside 1..%d",
                             who, (unsigned)id, (unsigned)len,
                             lengths_at + 4 * (size_t)id, TLMI_CHUNK_MAX);
        total += len;
    }
    const size_t expected = bytes_at + total + CHECKSUM_SIZE;
    if (size != expected)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: %s at offset %zu: the tokens' lengths make a "
                         "file of %zu bytes",
                         who, size < expected ? "truncated" : "unexpected bytes",
                         size < expected ? size : expected, expected);
    const size_t at_checksum = expected - CHECKSUM_SIZE;
    uint32_t stored = tlmi_get_u32(data + at_checksum);
    uint32_t actual = tlmi_crc32(0, data, at_checksum);
    if (stored != actual)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: checksum 0x%08X at offset %zu does not match "
                         "the content's CRC-32 0x%08X: the data is corrupt",
                         who, (unsigned)stored, at_checksum,
                         (unsigned)actual);
    const uint32_t special = tlmi_get_u32(data + AT_BOS);
    if (special >= vocab)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: special id %u at offset %d is outside 0..%u",
                         who, (unsigned)special, AT_BOS, (unsigned)vocab - 1);
    TLMI_TRY(check_id(host, who, data, AT_EOS, "end-of-text id", special));
    TLMI_TRY(check_id(host, who, data, AT_PAD, "padding id", special));
    TLMI_TRY(check_id(host, who, data, AT_UNK, "unknown id", NO_ID));

    size_t *offsets =
        tlmi_host_alloc(host, ((size_t)vocab + 1) * sizeof *offsets, 64);
    int32_t *merges = count > 0 ? tlmi_host_alloc(
                                      host, 3 * (size_t)count * sizeof *merges, 64)
                                : NULL;
    if (offsets == NULL || (count > 0 && merges == NULL)) {
        tlmi_host_free(host, offsets, ((size_t)vocab + 1) * sizeof *offsets);
        tlmi_host_free(host, merges, 3 * (size_t)count * sizeof *merges);
        return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory reading %u "
                         "tokens", who, (unsigned)vocab);
    }
    offsets[0] = 0;
    for (uint32_t id = 0; id < vocab; id++)
        offsets[id + 1] =
            offsets[id] + tlmi_get_u32(data + lengths_at + 4 * (size_t)id);
    for (size_t i = 0; i < 3 * (size_t)count; i++) {
        uint32_t v = tlmi_get_u32(data + merges_at + 4 * i);
        merges[i] = v > (uint32_t)INT32_MAX ? -1 : (int32_t)v;
    }
    const tlmi_gpt2_vocab v = {(int32_t)vocab, offsets, data + bytes_at,
                               (int32_t)special, (int32_t)count, merges,
                               "offset", merges_at, 12};
    int status = tlmi_gpt2_build(out, host, &v, who);
    tlmi_host_free(host, offsets, ((size_t)vocab + 1) * sizeof *offsets);
    tlmi_host_free(host, merges, 3 * (size_t)count * sizeof *merges);
    return status;
}

/* The SentencePiece kind's body: the ModelProto (AT_COUNT bytes). */
static int read_sp_image(tlm_tokenizer **out, tlmi_host *host,
                         const unsigned char *data, size_t size,
                         const char *who) {
    const uint32_t model_size = tlmi_get_u32(data + AT_COUNT);
    const size_t expected = HEADER_SIZE + (size_t)model_size + CHECKSUM_SIZE;
    if (model_size > MAX_FILE_BYTES || size != expected)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: %s at offset %zu: a %u-byte model makes a file "
                         "of %zu bytes",
                         who, size < expected ? "truncated" : "unexpected bytes",
                         size < expected ? size : expected,
                         (unsigned)model_size, expected);
    const size_t at_checksum = expected - CHECKSUM_SIZE;
    uint32_t stored = tlmi_get_u32(data + at_checksum);
    uint32_t actual = tlmi_crc32(0, data, at_checksum);
    if (stored != actual)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: checksum 0x%08X at offset %zu does not match "
                         "the content's CRC-32 0x%08X: the data is corrupt",
                         who, (unsigned)stored, at_checksum,
                         (unsigned)actual);
    char model_who[320];
    snprintf(model_who, sizeof model_who, "%.250s: the model at offset %d",
             who, HEADER_SIZE);
    tlm_tokenizer *tok = NULL;
    TLMI_TRY(tlmi_sp_read_model(&tok, host, data + HEADER_SIZE, model_size,
                                model_who));
    /* The header repeats what the model says. */
    const int32_t expect[5] = {tok->vocab_size, tok->bos_id, tok->eos_id,
                               tok->pad_id, tok->unk_id};
    static const char *const names[5] = {"vocabulary size", "begin-of-text id",
                                         "end-of-text id", "padding id",
                                         "unknown id"};
    for (int k = 0; k < 5; k++) {
        int status = check_id(host, who, data, AT_VOCAB + 4 * k, names[k],
                              expect[k] < 0 ? NO_ID : (uint32_t)expect[k]);
        if (status != TLM_OK) {
            tlmi_tokenizer_release(tok);
            return status;
        }
    }
    *out = tok;
    return TLM_OK;
}

int tlmi_tokenizer_read_image(tlm_tokenizer **out, const tlmi_host *host_in,
                              const unsigned char *data, size_t size,
                              const char *who) {
    *out = NULL;
    tlmi_host host = *host_in;
    const size_t magic_checked = size < MAGIC_SIZE ? size : MAGIC_SIZE;
    if (memcmp(data, MAGIC, magic_checked) != 0)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: bad magic at offset 0: not a tlm tokenizer "
                         "(it starts with \"%s\")",
                         who, MAGIC);
    if (size < HEADER_SIZE + CHECKSUM_SIZE)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: truncated at offset %zu: the header and "
                         "checksum need %d bytes",
                         who, size, HEADER_SIZE + CHECKSUM_SIZE);
    uint32_t version = tlmi_get_u32(data + AT_VERSION);
    if (version == 0)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: format version 0 at offset %d is not valid",
                         who, AT_VERSION);
    if (version > FORMAT_VERSION)
        return tlmi_fail(&host, TLM_E_VERSION,
                         "%s: format version %u at offset %d is newer than "
                         "this library's %u; update libtlm",
                         who, (unsigned)version, AT_VERSION, FORMAT_VERSION);
    uint32_t kind = tlmi_get_u32(data + AT_KIND);
    if (kind > TLM_TOKENIZER_SENTENCEPIECE)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: kind %u at offset %d is not a tokenizer kind "
                         "(0 byte, 1 char, 2 BPE, 3 GPT-2, 4 SentencePiece)",
                         who, (unsigned)kind, AT_KIND);
    if (kind == TLM_TOKENIZER_SENTENCEPIECE) {
        if (version < SENTENCEPIECE_VERSION)
            return tlmi_fail(&host, TLM_E_FORMAT,
                             "%s: kind 4 (SentencePiece) at offset %d needs "
                             "format version %u, the file says %u",
                             who, AT_KIND, SENTENCEPIECE_VERSION,
                             (unsigned)version);
        return read_sp_image(out, &host, data, size, who);
    }
    if (kind == TLM_TOKENIZER_GPT2) {
        if (version < GPT2_VERSION)
            return tlmi_fail(&host, TLM_E_FORMAT,
                             "%s: kind 3 (GPT-2) at offset %d needs format "
                             "version %u, the file says %u",
                             who, AT_KIND, GPT2_VERSION, (unsigned)version);
        return read_gpt2_image(out, &host, data, size, who);
    }
    uint32_t count = tlmi_get_u32(data + AT_COUNT);
    uint32_t max_count = kind == TLM_TOKENIZER_BYTE   ? 0
                         : kind == TLM_TOKENIZER_CHAR ? MAX_CHARS
                                                      : MAX_MERGES;
    if (count > max_count)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: item count %u at offset %d is above the %u a "
                         "tokenizer of kind %u can have",
                         who, (unsigned)count, AT_COUNT, (unsigned)max_count,
                         (unsigned)kind);
    const size_t expected =
        HEADER_SIZE + (size_t)count * item_size(kind) + CHECKSUM_SIZE;
    if (size < expected)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: truncated at offset %zu: %u %s need %zu bytes "
                         "in all",
                         who, size, (unsigned)count,
                         kind == TLM_TOKENIZER_CHAR ? "characters" : "merges",
                         expected);
    if (size > expected)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: %zu unexpected bytes after the checksum at "
                         "offset %zu",
                         who, size - expected, expected);
    const size_t at_checksum = expected - CHECKSUM_SIZE;
    uint32_t stored = tlmi_get_u32(data + at_checksum);
    uint32_t actual = tlmi_crc32(0, data, at_checksum);
    if (stored != actual)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: checksum 0x%08X at offset %zu does not match "
                         "the content's CRC-32 0x%08X: the data is corrupt",
                         who, (unsigned)stored, at_checksum,
                         (unsigned)actual);
    uint32_t n_regular = kind == TLM_TOKENIZER_BYTE   ? 256
                         : kind == TLM_TOKENIZER_CHAR ? count + 1
                                                      : 256 + count;
    uint32_t vocab = n_regular + TLMI_N_SPECIAL;
    TLMI_TRY(check_id(&host, who, data, AT_VOCAB, "vocabulary size", vocab));
    TLMI_TRY(check_id(&host, who, data, AT_BOS, "begin-of-text id",
                      n_regular));
    TLMI_TRY(check_id(&host, who, data, AT_EOS, "end-of-text id",
                      n_regular + 1));
    TLMI_TRY(check_id(&host, who, data, AT_PAD, "padding id", n_regular + 2));
    TLMI_TRY(check_id(&host, who, data, AT_UNK, "unknown id",
                      kind == TLM_TOKENIZER_CHAR ? n_regular - 1 : NO_ID));

    size_t n_items = (size_t)count * (kind == TLM_TOKENIZER_BPE ? 2 : 1);
    uint32_t *items = NULL;
    if (n_items > 0) {
        items = tlmi_host_alloc(&host, n_items * sizeof *items, 64);
        if (items == NULL)
            return tlmi_fail(&host, TLM_E_NOMEM,
                             "%s: out of memory reading %zu items", who,
                             n_items);
        for (size_t i = 0; i < n_items; i++)
            items[i] = tlmi_get_u32(data + HEADER_SIZE + 4 * i);
    }
    int status = tlmi_tokenizer_build(out, &host, (int32_t)kind, items,
                                      n_items, who, HEADER_SIZE);
    tlmi_host_free(&host, items, n_items * sizeof *items);
    return status;
}

/* --- public calls -------------------------------------------------------- */

TLM_API int tlm_tokenizer_save_memory(tlm_tokenizer *tok, void *buffer,
                                      size_t capacity, size_t *size) {
    const char *who = "tlm_tokenizer_save_memory";
    tlmi_host *host = tok != NULL ? &tok->host : NULL;
    TLMI_CHECK_OUT(host, who, size, 0);
    TLMI_CHECK_NOT_NULL(host, who, tok);
    TLMI_CHECK_BUFFER(host, who, buffer, capacity);
    *size = tlmi_tokenizer_image_size(tok);
    if (buffer == NULL)
        return TLM_OK;
    if (capacity < *size)
        return tlmi_fail(host, TLM_E_RANGE,
                         "%s: the image takes %zu bytes but the buffer has "
                         "%zu",
                         who, *size, capacity);
    tlmi_tokenizer_write_image(tok, buffer);
    return TLM_OK;
}

TLM_API int tlm_tokenizer_save(tlm_tokenizer *tok, const char *path) {
    const char *who = "tlm_tokenizer_save";
    TLMI_CHECK_NOT_NULL(NULL, who, tok);
    TLMI_CHECK_NOT_NULL(&tok->host, who, path);
    size_t size = tlmi_tokenizer_image_size(tok);
    unsigned char *image = tlmi_host_alloc(&tok->host, size, 64);
    if (image == NULL)
        return tlmi_fail(&tok->host, TLM_E_NOMEM,
                         "%s: out of memory for the %zu-byte image", who,
                         size);
    tlmi_tokenizer_write_image(tok, image);
    /* Crash-safe: a temporary file renamed over the target (lib/base/file.h). */
    int status = tlmi_file_write_atomic(&tok->host, path, image, size);
    if (status != TLM_OK)
        status = tlmi_fail_forward(&tok->host, status, "%s", who);
    tlmi_host_free(&tok->host, image, size);
    return status;
}

TLM_API int tlm_tokenizer_load_memory(tlm_tokenizer **out, tlm_context *ctx,
                                      const void *data, size_t size) {
    const char *who = "tlm_tokenizer_load_memory";
    TLMI_CHECK_OUT(NULL, who, out, NULL);
    tlmi_host host;
    tlmi_tokenizer_host(&host, ctx);
    TLMI_CHECK_BUFFER(&host, who, data, size);
    static const unsigned char nothing[1] = {0};
    return tlmi_tokenizer_read_image(out, &host,
                                     data != NULL ? data : nothing, size,
                                     who);
}

TLM_API int tlm_tokenizer_load(tlm_tokenizer **out, tlm_context *ctx,
                               const char *path) {
    TLMI_CHECK_OUT(NULL, "tlm_tokenizer_load", out, NULL);
    tlmi_host host;
    tlmi_tokenizer_host(&host, ctx);
    TLMI_CHECK_NOT_NULL(&host, "tlm_tokenizer_load", path);
    char who[256];
    snprintf(who, sizeof who, "tlm_tokenizer_load: '%.200s'", path);
    /* Regular files only (a directory or a FIFO is refused, not read). */
    void *data = NULL;
    size_t size = 0;
    int status = tlmi_file_read_all(&host, path, MAX_FILE_BYTES, &data, &size);
    if (status != TLM_OK)
        return tlmi_fail_forward(&host, status, "tlm_tokenizer_load");
    status = tlmi_tokenizer_read_image(out, &host, data, size, who);
    tlmi_file_free_contents(&host, data, size);
    return status;
}
