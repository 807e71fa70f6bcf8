/*
 * SentencePiece's model file (tokenizer.model): a protocol buffer
 * ModelProto (sentencepiece_model.proto), read and written by a small
 * protobuf codec of our own. Read: pieces {piece 1, score 2, type 3},
 * trainer_spec 2 {model_type 3, byte_fallback 35, unk_id 40, bos_id 41,
 * eos_id 42, pad_id 43, unk_surface 44, treat_whitespace_as_suffix 24},
 * normalizer_spec 3 {name 1, precompiled_charsmap 2, add_dummy_prefix 3,
 * remove_extra_whitespaces 4, escape_whitespaces 5,
 * normalization_rule_tsv 6}, denormalizer_spec 5; every other field is
 * skipped by its wire type. Wire types: 0 varint, 1 fixed64,
 * 2 length-delimited, 5 fixed32 (groups, 3 and 4, are refused).
 */
#include <stdio.h>
#include <string.h>

#include "base/endian.h"
#include "base/error.h"
#include "base/grow.h"
#include "text/tokenizer.h"

enum { WIRE_VARINT = 0, WIRE_FIXED64 = 1, WIRE_BYTES = 2, WIRE_FIXED32 = 5 };
enum { MODEL_TYPE_UNIGRAM = 1, MODEL_TYPE_BPE = 2 };

/* One field of a message. */
typedef struct pb_field {
    uint32_t number;
    int wire;
    uint64_t value;              /* varint, fixed32 or fixed64 */
    const unsigned char *bytes;  /* length-delimited */
    size_t length;
    size_t offset;               /* of the field's tag in the file */
} pb_field;

typedef struct pb_reader {
    tlmi_host *host;
    const char *who;
    const unsigned char *data; /* the whole file */
} pb_reader;

static int read_varint(const pb_reader *r, size_t *at, size_t end,
                       uint64_t *value) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*at >= end)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: truncated varint at offset %zu", r->who,
                             *at);
        unsigned char c = r->data[(*at)++];
        if (shift == 63 && (c & 0x7E) != 0)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: varint longer than 64 bits at offset %zu",
                             r->who, *at - 1);
        v |= (uint64_t)(c & 0x7F) << shift;
        if ((c & 0x80) == 0) {
            *value = v;
            return TLM_OK;
        }
    }
    return tlmi_fail(r->host, TLM_E_FORMAT,
                     "%s: varint longer than 10 bytes at offset %zu", r->who,
                     *at);
}

/* The next field of the message that ends at `end`. */
static int next_field(const pb_reader *r, size_t *at, size_t end,
                      pb_field *f) {
    memset(f, 0, sizeof *f);
    f->offset = *at;
    uint64_t tag;
    TLMI_TRY(read_varint(r, at, end, &tag));
    f->wire = (int)(tag & 7);
    if ((tag >> 3) == 0 || (tag >> 3) > 0x1FFFFFFF)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "%s: field number %llu at offset %zu is outside "
                         "1..536870911", r->who,
                         (unsigned long long)(tag >> 3), f->offset);
    f->number = (uint32_t)(tag >> 3);
    switch (f->wire) {
    case WIRE_VARINT:
        return read_varint(r, at, end, &f->value);
    case WIRE_FIXED64:
    case WIRE_FIXED32: {
        size_t size = f->wire == WIRE_FIXED64 ? 8 : 4;
        if (end - *at < size)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: truncated field %u at offset %zu", r->who,
                             (unsigned)f->number, f->offset);
        f->value = size == 8 ? tlmi_get_u64(r->data + *at)
                             : tlmi_get_u32(r->data + *at);
        *at += size;
        return TLM_OK;
    }
    case WIRE_BYTES: {
        uint64_t len;
        TLMI_TRY(read_varint(r, at, end, &len));
        if (len > end - *at)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: field %u at offset %zu is %llu bytes long, "
                             "past the end of its message at offset %zu",
                             r->who, (unsigned)f->number, f->offset,
                             (unsigned long long)len, end);
        f->bytes = r->data + *at;
        f->length = (size_t)len;
        *at += (size_t)len;
        return TLM_OK;
    }
    default:
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "%s: field %u at offset %zu has wire type %d (only "
                         "0, 1, 2 and 5 are read)", r->who,
                         (unsigned)f->number, f->offset, f->wire);
    }
}

static int expect_wire(const pb_reader *r, const pb_field *f, int wire,
                       const char *name) {
    if (f->wire == wire)
        return TLM_OK;
    return tlmi_fail(r->host, TLM_E_FORMAT,
                     "%s: %s at offset %zu has wire type %d, expected %d",
                     r->who, name, f->offset, f->wire, wire);
}

/* --- reading --------------------------------------------------------------- */

typedef struct model_fields {
    /* pieces, gathered */
    size_t *offsets;
    size_t offsets_capacity;
    unsigned char *data;
    size_t data_capacity;
    float *scores;
    size_t scores_capacity;
    uint8_t *types;
    size_t types_capacity;
    int32_t n_pieces;
    /* trainer_spec (the proto's defaults first) */
    int64_t model_type, unk_id, bos_id, eos_id, pad_id;
    int byte_fallback, whitespace_suffix;
    const unsigned char *unk_surface;
    size_t unk_surface_length;
    size_t model_type_at;
    /* normalizer_spec */
    const unsigned char *name;
    size_t name_length, name_at;
    int add_dummy_prefix, remove_extra_whitespaces, escape_whitespaces;
    size_t charsmap_length, rules_length, charsmap_at, remove_at;
    size_t denormalizer_charsmap, denormalizer_at;
} model_fields;

static int read_piece(const pb_reader *r, model_fields *m, const pb_field *outer) {
    size_t at = (size_t)(outer->bytes - r->data), end = at + outer->length;
    const int32_t id = m->n_pieces;
    const unsigned char *piece = NULL;
    size_t piece_len = 0;
    float score = 0;
    uint64_t type = TLMI_SP_NORMAL;
    char name[64];
    while (at < end) {
        pb_field f;
        TLMI_TRY(next_field(r, &at, end, &f));
        if (f.number == 1) {
            snprintf(name, sizeof name, "pieces[%d].piece", (int)id);
            TLMI_TRY(expect_wire(r, &f, WIRE_BYTES, name));
            piece = f.bytes;
            piece_len = f.length;
        } else if (f.number == 2) {
            snprintf(name, sizeof name, "pieces[%d].score", (int)id);
            TLMI_TRY(expect_wire(r, &f, WIRE_FIXED32, name));
            uint32_t bits = (uint32_t)f.value;
            memcpy(&score, &bits, sizeof score);
        } else if (f.number == 3) {
            snprintf(name, sizeof name, "pieces[%d].type", (int)id);
            TLMI_TRY(expect_wire(r, &f, WIRE_VARINT, name));
            type = f.value;
        }
    }
    if (id >= TLMI_VOCAB_MAX)
        return tlmi_fail(r->host, TLM_E_FORMAT, "%s: more than %d pieces",
                         r->who, TLMI_VOCAB_MAX);
    if (piece_len == 0 || piece_len > TLMI_CHUNK_MAX)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "%s: pieces[%d] at offset %zu has %zu bytes; pieces "
                         "have 1..%d", r->who, (int)id, outer->offset,
                         piece_len, TLMI_CHUNK_MAX);
    const size_t n = (size_t)id + 1;
    if (tlmi_grow(r->host, &m->offsets, &m->offsets_capacity, n + 1,
                  sizeof *m->offsets) != TLM_OK ||
        tlmi_grow(r->host, &m->scores, &m->scores_capacity, n,
                  sizeof *m->scores) != TLM_OK ||
        tlmi_grow(r->host, &m->types, &m->types_capacity, n, 1) != TLM_OK ||
        tlmi_grow(r->host, &m->data, &m->data_capacity,
                  (id > 0 ? m->offsets[id] : 0) + piece_len, 1) != TLM_OK)
        return tlmi_fail(r->host, TLM_E_NOMEM,
                         "%s: out of memory reading %zu pieces", r->who, n);
    if (id == 0)
        m->offsets[0] = 0;
    memcpy(m->data + m->offsets[id], piece, piece_len);
    m->offsets[id + 1] = m->offsets[id] + piece_len;
    m->scores[id] = score;
    m->types[id] = type >= 1 && type <= 6 ? (uint8_t)type : 0;
    m->n_pieces = (int32_t)n;
    return TLM_OK;
}

/* An int32 field (negative values are 10-byte varints). */
static int64_t as_int32(uint64_t v) { return (int64_t)(int32_t)(uint32_t)v; }

static int read_trainer(const pb_reader *r, model_fields *m, const pb_field *outer) {
    size_t at = (size_t)(outer->bytes - r->data), end = at + outer->length;
    while (at < end) {
        pb_field f;
        TLMI_TRY(next_field(r, &at, end, &f));
        const char *name = NULL;
        switch (f.number) {
        case 3: name = "trainer_spec.model_type"; break;
        case 24: name = "trainer_spec.treat_whitespace_as_suffix"; break;
        case 35: name = "trainer_spec.byte_fallback"; break;
        case 40: name = "trainer_spec.unk_id"; break;
        case 41: name = "trainer_spec.bos_id"; break;
        case 42: name = "trainer_spec.eos_id"; break;
        case 43: name = "trainer_spec.pad_id"; break;
        case 44:
            TLMI_TRY(expect_wire(r, &f, WIRE_BYTES, "trainer_spec.unk_surface"));
            m->unk_surface = f.bytes;
            m->unk_surface_length = f.length;
            continue;
        default:
            continue;
        }
        TLMI_TRY(expect_wire(r, &f, WIRE_VARINT, name));
        switch (f.number) {
        case 3: m->model_type = as_int32(f.value); m->model_type_at = f.offset; break;
        case 24: m->whitespace_suffix = f.value != 0; break;
        case 35: m->byte_fallback = f.value != 0; break;
        case 40: m->unk_id = as_int32(f.value); break;
        case 41: m->bos_id = as_int32(f.value); break;
        case 42: m->eos_id = as_int32(f.value); break;
        default: m->pad_id = as_int32(f.value); break;
        }
    }
    return TLM_OK;
}

static int read_normalizer(const pb_reader *r, model_fields *m,
                           const pb_field *outer, int denormalizer) {
    size_t at = (size_t)(outer->bytes - r->data), end = at + outer->length;
    while (at < end) {
        pb_field f;
        TLMI_TRY(next_field(r, &at, end, &f));
        if (denormalizer) {
            if (f.number == 2 && f.wire == WIRE_BYTES && f.length > 0) {
                m->denormalizer_charsmap = f.length;
                m->denormalizer_at = f.offset;
            }
            continue;
        }
        switch (f.number) {
        case 1:
            TLMI_TRY(expect_wire(r, &f, WIRE_BYTES, "normalizer_spec.name"));
            m->name = f.bytes;
            m->name_length = f.length;
            m->name_at = f.offset;
            break;
        case 2:
            TLMI_TRY(expect_wire(r, &f, WIRE_BYTES,
                                 "normalizer_spec.precompiled_charsmap"));
            m->charsmap_length = f.length;
            m->charsmap_at = f.offset;
            break;
        case 3:
        case 4:
        case 5:
            TLMI_TRY(expect_wire(r, &f, WIRE_VARINT,
                                 f.number == 3 ? "normalizer_spec.add_dummy_prefix"
                                 : f.number == 4 ? "normalizer_spec.remove_extra_whitespaces"
                                                 : "normalizer_spec.escape_whitespaces"));
            if (f.number == 3)
                m->add_dummy_prefix = f.value != 0;
            else if (f.number == 4) {
                m->remove_extra_whitespaces = f.value != 0;
                m->remove_at = f.offset;
            } else
                m->escape_whitespaces = f.value != 0;
            break;
        case 6:
            TLMI_TRY(expect_wire(r, &f, WIRE_BYTES,
                                 "normalizer_spec.normalization_rule_tsv"));
            m->rules_length = f.length;
            break;
        default:
            break;
        }
    }
    return TLM_OK;
}

/* What tlm cannot reproduce exactly is TLM_E_UNSUPPORTED naming the field. */
static int check_supported(const pb_reader *r, const model_fields *m) {
    if (m->model_type != MODEL_TYPE_BPE) {
        static const char *const names[] = {"?", "UNIGRAM", "BPE", "WORD", "CHAR"};
        const char *name = m->model_type >= 1 && m->model_type <= 4
                               ? names[m->model_type] : "unknown";
        return tlmi_fail(r->host, TLM_E_UNSUPPORTED,
                         "%s: trainer_spec.model_type is %lld (%s%s): tlm "
                         "reads only BPE (2) SentencePiece models",
                         r->who, (long long)m->model_type, name,
                         m->model_type_at == 0 ? ", the default" : "");
    }
    const int identity = m->name_length == 8 && memcmp(m->name, "identity", 8) == 0;
    if (!identity || m->charsmap_length > 0 || m->rules_length > 0)
        return tlmi_fail(r->host, TLM_E_UNSUPPORTED,
                         "%s: normalizer_spec.name is '%.*s'%s: tlm does not "
                         "normalize text, so it reads only models with the "
                         "identity normalizer", r->who,
                         (int)(m->name_length < 64 ? m->name_length : 64),
                         m->name != NULL ? (const char *)m->name : "",
                         m->charsmap_length > 0 ? " with a precompiled_charsmap"
                         : m->rules_length > 0 ? " with a normalization_rule_tsv"
                                               : "");
    if (m->remove_extra_whitespaces)
        return tlmi_fail(r->host, TLM_E_UNSUPPORTED,
                         "%s: normalizer_spec.remove_extra_whitespaces is "
                         "true%s: tlm keeps every space",
                         r->who, m->remove_at == 0 ? " (the default)" : "");
    if (m->whitespace_suffix)
        return tlmi_fail(r->host, TLM_E_UNSUPPORTED,
                         "%s: trainer_spec.treat_whitespace_as_suffix is true: "
                         "tlm puts the space mark before words only", r->who);
    if (m->denormalizer_charsmap > 0)
        return tlmi_fail(r->host, TLM_E_UNSUPPORTED,
                         "%s: denormalizer_spec at offset %zu has a "
                         "precompiled_charsmap: tlm does not denormalize",
                         r->who, m->denormalizer_at);
    return TLM_OK;
}

int tlmi_sp_read_model(tlm_tokenizer **out, const tlmi_host *host_in,
                       const unsigned char *data, size_t size,
                       const char *who) {
    *out = NULL;
    tlmi_host host = *host_in;
    pb_reader r = {&host, who, data};
    model_fields m;
    memset(&m, 0, sizeof m);
    m.model_type = MODEL_TYPE_UNIGRAM;
    m.unk_id = 0;
    m.bos_id = 1;
    m.eos_id = 2;
    m.pad_id = -1;
    m.add_dummy_prefix = m.remove_extra_whitespaces = m.escape_whitespaces = 1;
    static const unsigned char default_surface[] = " \xE2\x81\x87 ";
    m.unk_surface = default_surface;
    m.unk_surface_length = sizeof default_surface - 1;
    int status = TLM_OK;
    for (size_t at = 0; at < size && status == TLM_OK;) {
        pb_field f;
        status = next_field(&r, &at, size, &f);
        if (status != TLM_OK)
            break;
        if (f.number < 1 || f.number > 5 || f.number == 4)
            continue;
        static const char *const names[] = {"", "pieces", "trainer_spec",
                                            "normalizer_spec", "",
                                            "denormalizer_spec"};
        status = expect_wire(&r, &f, WIRE_BYTES, names[f.number]);
        if (status != TLM_OK)
            break;
        if (f.number == 1)
            status = read_piece(&r, &m, &f);
        else if (f.number == 2)
            status = read_trainer(&r, &m, &f);
        else
            status = read_normalizer(&r, &m, &f, f.number == 5);
    }
    if (status == TLM_OK && m.n_pieces == 0)
        status = tlmi_fail(&host, TLM_E_FORMAT,
                           "%s: no pieces (field 1): not a SentencePiece "
                           "model", who);
    if (status == TLM_OK)
        status = check_supported(&r, &m);
    if (status == TLM_OK && m.unk_surface_length > TLMI_CHUNK_MAX)
        status = tlmi_fail(&host, TLM_E_FORMAT,
                           "%s: trainer_spec.unk_surface has %zu bytes (at "
                           "most %d)", who, m.unk_surface_length,
                           TLMI_CHUNK_MAX);
    if (status == TLM_OK) {
        for (int32_t id = 0; id < m.n_pieces; id++)
            if (m.types[id] == 0) {
                status = tlmi_fail(&host, TLM_E_FORMAT,
                                   "%s: pieces[%d].type is not a "
                                   "SentencePiece type (1..6)", who, (int)id);
                break;
            }
    }
    if (status == TLM_OK) {
        /* trainer_spec.unk_id must name the UNKNOWN piece. */
        if (m.unk_id < 0 || m.unk_id >= m.n_pieces ||
            m.types[m.unk_id] != TLMI_SP_UNKNOWN)
            status = tlmi_fail(&host, TLM_E_FORMAT,
                               "%s: trainer_spec.unk_id %lld is not a piece "
                               "of type UNKNOWN", who, (long long)m.unk_id);
    }
    const int64_t specials[3] = {m.bos_id, m.eos_id, m.pad_id};
    for (int k = 0; k < 3 && status == TLM_OK; k++)
        if (specials[k] >= m.n_pieces)
            status = tlmi_fail(&host, TLM_E_FORMAT,
                               "%s: trainer_spec.%s %lld is outside the %d "
                               "pieces", who,
                               k == 0 ? "bos_id" : k == 1 ? "eos_id" : "pad_id",
                               (long long)specials[k], (int)m.n_pieces);
    if (status == TLM_OK) {
        const tlmi_sp_vocab v = {
            m.n_pieces, m.offsets, m.data, m.scores, m.types,
            m.bos_id < 0 ? -1 : (int32_t)m.bos_id,
            m.eos_id < 0 ? -1 : (int32_t)m.eos_id,
            m.pad_id < 0 ? -1 : (int32_t)m.pad_id,
            m.add_dummy_prefix, m.escape_whitespaces, m.byte_fallback,
            m.unk_surface, m.unk_surface_length};
        status = tlmi_sp_build(out, &host, &v, who);
    }
    tlmi_host_free(&host, m.offsets, m.offsets_capacity * sizeof *m.offsets);
    tlmi_host_free(&host, m.data, m.data_capacity);
    tlmi_host_free(&host, m.scores, m.scores_capacity * sizeof *m.scores);
    tlmi_host_free(&host, m.types, m.types_capacity);
    return status;
}

/* --- writing ----------------------------------------------------------------- */

/* Writes into out when it is not NULL; counts bytes either way. */
typedef struct pb_writer {
    unsigned char *out;
    size_t size;
} pb_writer;

static void put_bytes(pb_writer *w, const void *p, size_t n) {
    if (w->out != NULL)
        memcpy(w->out + w->size, p, n);
    w->size += n;
}

static void put_varint(pb_writer *w, uint64_t v) {
    unsigned char buf[10];
    size_t n = 0;
    do {
        buf[n] = (unsigned char)(v & 0x7F);
        v >>= 7;
        if (v != 0)
            buf[n] |= 0x80;
        n++;
    } while (v != 0);
    put_bytes(w, buf, n);
}

static void put_tag(pb_writer *w, uint32_t number, int wire) {
    put_varint(w, (uint64_t)number << 3 | (uint64_t)wire);
}

static void put_int(pb_writer *w, uint32_t number, int64_t v) {
    put_tag(w, number, WIRE_VARINT);
    put_varint(w, (uint64_t)v); /* negative: 10 bytes, as protobuf does */
}

static void put_string(pb_writer *w, uint32_t number, const void *s, size_t n) {
    put_tag(w, number, WIRE_BYTES);
    put_varint(w, n);
    put_bytes(w, s, n);
}

/* Size of a submessage's body: written once into a counter. */
typedef void (*body_fn)(pb_writer *w, const tlm_tokenizer *tok, int32_t arg);

static void put_message(pb_writer *w, uint32_t number, body_fn body,
                        const tlm_tokenizer *tok, int32_t arg) {
    pb_writer counter = {NULL, 0};
    body(&counter, tok, arg);
    put_tag(w, number, WIRE_BYTES);
    put_varint(w, counter.size);
    body(w, tok, arg);
}

static void piece_body(pb_writer *w, const tlm_tokenizer *tok, int32_t id) {
    put_string(w, 1, tok->piece_data + tok->piece_offsets[id],
               tok->piece_offsets[id + 1] - tok->piece_offsets[id]);
    uint32_t bits;
    memcpy(&bits, &tok->piece_scores[id], sizeof bits);
    unsigned char b[4];
    tlmi_put_u32(b, bits);
    put_tag(w, 2, WIRE_FIXED32);
    put_bytes(w, b, 4);
    if (tok->piece_types[id] != TLMI_SP_NORMAL)
        put_int(w, 3, tok->piece_types[id]);
}

static void put_piece_name(pb_writer *w, uint32_t number,
                           const tlm_tokenizer *tok, int32_t id) {
    if (id >= 0)
        put_string(w, number, tok->piece_data + tok->piece_offsets[id],
                   tok->piece_offsets[id + 1] - tok->piece_offsets[id]);
}

static void trainer_body(pb_writer *w, const tlm_tokenizer *tok, int32_t unused) {
    (void)unused;
    put_int(w, 3, MODEL_TYPE_BPE);
    put_int(w, 4, tok->vocab_size);
    put_int(w, 35, tok->byte_fallback);
    put_int(w, 40, tok->unk_id);
    put_int(w, 41, tok->bos_id);
    put_int(w, 42, tok->eos_id);
    put_int(w, 43, tok->pad_id);
    /* What UNK decodes to is its surface. */
    put_string(w, 44, tok->token_data + tok->token_offsets[tok->unk_id],
               tok->token_offsets[tok->unk_id + 1] - tok->token_offsets[tok->unk_id]);
    /* sentencepiece finds its special ids by these names. */
    put_piece_name(w, 45, tok, tok->unk_id);
    put_piece_name(w, 46, tok, tok->bos_id);
    put_piece_name(w, 47, tok, tok->eos_id);
    put_piece_name(w, 48, tok, tok->pad_id);
}

static void normalizer_body(pb_writer *w, const tlm_tokenizer *tok, int32_t unused) {
    (void)unused;
    put_string(w, 1, "identity", 8);
    put_int(w, 3, tok->add_dummy_prefix);
    put_int(w, 4, 0);
    put_int(w, 5, tok->escape_whitespaces);
}

static void model_body(pb_writer *w, const tlm_tokenizer *tok) {
    for (int32_t id = 0; id < tok->vocab_size; id++)
        put_message(w, 1, piece_body, tok, id);
    put_message(w, 2, trainer_body, tok, 0);
    put_message(w, 3, normalizer_body, tok, 0);
}

size_t tlmi_sp_model_size(const tlm_tokenizer *tok) {
    pb_writer w = {NULL, 0};
    model_body(&w, tok);
    return w.size;
}

void tlmi_sp_model_write(const tlm_tokenizer *tok, unsigned char *out) {
    pb_writer w = {out, 0};
    model_body(&w, tok);
}
