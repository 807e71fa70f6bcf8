/*
 * SentencePiece's BPE as a tokenizer kind (docs/tokenizer.md,
 * "SentencePiece"): building one from its pieces, encoding as
 * sentencepiece's bpe_model.cc does (characters as symbols, the adjacent
 * pair whose joined piece scores highest merged first, the leftmost on
 * ties; unknown characters by byte fallback or as one UNK per run),
 * decoding with its leading-space rule, and llama2.c's tokenizer.bin.
 */
#include <math.h>
#include <string.h>

#include "autodiff/context.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/utf8.h"
#include "text/tokenizer.h"

/* U+2581 LOWER ONE EIGHTH BLOCK: SentencePiece's space. */
static const unsigned char space_mark[3] = {0xE2, 0x96, 0x81};
/* U+FFFD: what a byte that starts no valid UTF-8 character becomes. */
static const unsigned char replacement[3] = {0xEF, 0xBF, 0xBD};

#define NONE UINT32_MAX

/* --- the piece table ----------------------------------------------------- */

static uint64_t hash_piece(const unsigned char *s, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001B3ull;
    return h ^ (h >> 29);
}

/* The id of the piece spelled s[0..n), or -1. */
static int32_t piece_lookup(const tlm_tokenizer *t, const unsigned char *s,
                            size_t n) {
    if (n > t->max_piece_bytes)
        return -1;
    const size_t mask = t->piece_table_capacity - 1;
    size_t i = (size_t)hash_piece(s, n) & mask;
    for (;;) {
        int32_t id = t->piece_table[i];
        if (id < 0)
            return -1;
        const size_t at = t->piece_offsets[id];
        if (t->piece_offsets[id + 1] - at == n &&
            memcmp(t->piece_data + at, s, n) == 0)
            return id;
        i = (i + 1) & mask;
    }
}

/* The byte of a piece spelled <0xNN> (upper-case hex), or -1. */
static int byte_piece_value(const unsigned char *s, size_t n) {
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    int v = 0;
    for (int k = 3; k < 5; k++) {
        unsigned char c = s[k];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

static const char *type_name(int type) {
    switch (type) {
    case TLMI_SP_NORMAL: return "NORMAL";
    case TLMI_SP_UNKNOWN: return "UNKNOWN";
    case TLMI_SP_CONTROL: return "CONTROL";
    case TLMI_SP_USER_DEFINED: return "USER_DEFINED";
    case TLMI_SP_UNUSED: return "UNUSED";
    default: return "BYTE";
    }
}

/* --- joint character pairs ------------------------------------------------ */

#define NO_JOINT UINT64_MAX

/* A character's bytes (1..4) packed big-endian. */
static uint32_t pack_char(const unsigned char *s, size_t n) {
    uint32_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | s[i];
    return v;
}

static size_t joint_slot(const tlm_tokenizer *t, uint64_t key) {
    return (size_t)((key * 0x9E3779B97F4A7C15ull) >> 20) & (t->joint_capacity - 1);
}

static int is_joint(const tlm_tokenizer *t, uint64_t key) {
    if (t->joint_capacity == 0)
        return 0;
    for (size_t i = joint_slot(t, key);; i = (i + 1) & (t->joint_capacity - 1)) {
        if (t->joint_keys[i] == key)
            return 1;
        if (t->joint_keys[i] == NO_JOINT)
            return 0;
    }
}

/* Length of the character at s[0..n) as encoding splits text: a valid
 * UTF-8 character, else one byte. */
static size_t char_length(const unsigned char *s, size_t n) {
    uint32_t code;
    size_t len = tlmi_utf8_decode(s, n, &code);
    return len > 0 ? len : 1;
}

/* Fills the joint pairs of every NORMAL piece. */
static int build_joints(tlm_tokenizer *t, tlmi_host *host, const char *who) {
    size_t pairs = 0;
    for (int32_t id = 0; id < t->vocab_size; id++)
        if (t->piece_types[id] == TLMI_SP_NORMAL)
            pairs += t->piece_offsets[id + 1] - t->piece_offsets[id];
    size_t capacity = 16;
    while (capacity < 2 * pairs)
        capacity *= 2;
    t->joint_keys = tlmi_host_alloc(host, capacity * sizeof *t->joint_keys, 64);
    if (t->joint_keys == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "%s: out of memory for the character pairs", who);
    t->joint_capacity = capacity;
    for (size_t i = 0; i < capacity; i++)
        t->joint_keys[i] = NO_JOINT;
    for (int32_t id = 0; id < t->vocab_size; id++) {
        if (t->piece_types[id] != TLMI_SP_NORMAL)
            continue;
        const unsigned char *s = t->piece_data + t->piece_offsets[id];
        const size_t n = t->piece_offsets[id + 1] - t->piece_offsets[id];
        size_t a = 0, a_len = char_length(s, n);
        while (a + a_len < n) {
            size_t b = a + a_len, b_len = char_length(s + b, n - b);
            uint64_t key = (uint64_t)pack_char(s + a, a_len) << 32 |
                           pack_char(s + b, b_len);
            if (!is_joint(t, key)) {
                size_t i = joint_slot(t, key);
                while (t->joint_keys[i] != NO_JOINT)
                    i = (i + 1) & (capacity - 1);
                t->joint_keys[i] = key;
            }
            a = b;
            a_len = b_len;
        }
    }
    return TLM_OK;
}

/* --- building ------------------------------------------------------------ */

/* Checks piece id of the vocabulary and returns the length of what it
 * decodes to. */
static int check_piece(tlmi_host *host, const char *who, const tlmi_sp_vocab *v,
                       int32_t id, size_t *decoded) {
    const size_t start = v->offsets[id], end = v->offsets[id + 1];
    const size_t len = end >= start ? end - start : 0;
    if (end < start || len == 0 || len > TLMI_CHUNK_MAX)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: pieces[%d] has %zu bytes; pieces have 1..%d",
                         who, (int)id, len, TLMI_CHUNK_MAX);
    const unsigned char *s = v->data + start;
    const int type = v->types[id];
    if (type < TLMI_SP_NORMAL || type > TLMI_SP_BYTE)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: pieces[%d].type %d is not a SentencePiece type "
                         "(1..6)", who, (int)id, type);
    if (type == TLMI_SP_USER_DEFINED || type == TLMI_SP_UNUSED)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: pieces[%d].type is %s ('%.*s'): tlm encodes "
                         "only NORMAL, UNKNOWN, CONTROL and BYTE pieces",
                         who, (int)id, type_name(type), (int)len, s);
    if (isnan(v->scores[id]))
        return tlmi_fail(host, TLM_E_FORMAT, "%s: pieces[%d].score is NaN",
                         who, (int)id);
    if (type == TLMI_SP_BYTE) {
        if (byte_piece_value(s, len) < 0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: pieces[%d] is of type BYTE but spelled "
                             "'%.*s', not <0xNN>", who, (int)id, (int)len, s);
        if (!v->byte_fallback)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: pieces[%d] is of type BYTE but "
                             "trainer_spec.byte_fallback is false",
                             who, (int)id);
        *decoded = 1;
    } else if (type == TLMI_SP_CONTROL) {
        *decoded = 0;
    } else if (type == TLMI_SP_UNKNOWN) {
        *decoded = v->unk_surface_length;
    } else {
        size_t n = 0;
        for (size_t i = 0; i < len; i++) {
            if (i + 3 <= len && memcmp(s + i, space_mark, 3) == 0)
                i += 2;
            n++;
        }
        *decoded = n;
    }
    return TLM_OK;
}

/* What piece id decodes to, into out (room for its decoded length). */
static void decode_into(const tlmi_sp_vocab *v, int32_t id, unsigned char *out) {
    const unsigned char *s = v->data + v->offsets[id];
    const size_t len = v->offsets[id + 1] - v->offsets[id];
    switch (v->types[id]) {
    case TLMI_SP_BYTE:
        out[0] = (unsigned char)byte_piece_value(s, len);
        return;
    case TLMI_SP_CONTROL:
        return;
    case TLMI_SP_UNKNOWN:
        memcpy(out, v->unk_surface, v->unk_surface_length);
        return;
    default:
        for (size_t i = 0; i < len; i++) {
            if (i + 3 <= len && memcmp(s + i, space_mark, 3) == 0) {
                *out++ = ' ';
                i += 2;
            } else {
                *out++ = s[i];
            }
        }
    }
}

static int special_of(tlmi_host *host, const char *who, const tlmi_sp_vocab *v,
                      int32_t id, const char *field, int32_t *out) {
    *out = -1;
    if (id < 0)
        return TLM_OK;
    if (id >= v->n_pieces)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: trainer_spec.%s %d is outside the %d pieces",
                         who, field, (int)id, (int)v->n_pieces);
    if (v->types[id] != TLMI_SP_CONTROL)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: trainer_spec.%s %d names a piece of type %s, "
                         "not CONTROL", who, field, (int)id,
                         type_name(v->types[id]));
    *out = id;
    return TLM_OK;
}

int tlmi_sp_build(tlm_tokenizer **out, const tlmi_host *host_in,
                  const tlmi_sp_vocab *v, const char *who) {
    *out = NULL;
    tlmi_host host = *host_in;
    host.last_error[0] = '\0';
    if (v->n_pieces < 1 || v->n_pieces > TLMI_VOCAB_MAX)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: %d pieces; a SentencePiece model has 1..%d",
                         who, (int)v->n_pieces, TLMI_VOCAB_MAX);
    tlm_tokenizer *t = TLMI_HANDLE_ALLOC(&host, tlm_tokenizer);
    if (t == NULL)
        return tlmi_fail(&host, TLM_E_NOMEM,
                         "%s: out of memory for the tokenizer", who);
    t->kind = TLM_TOKENIZER_SENTENCEPIECE;
    t->vocab_size = v->n_pieces;
    t->unk_id = -1;
    t->add_dummy_prefix = v->add_dummy_prefix != 0;
    t->escape_whitespaces = v->escape_whitespaces != 0;
    t->byte_fallback = v->byte_fallback != 0;
    const size_t n = (size_t)v->n_pieces;
    int status = TLM_OK;
    size_t decoded_total = 0;
    for (int32_t id = 0; id < v->n_pieces; id++) {
        size_t decoded = 0;
        status = check_piece(&host, who, v, id, &decoded);
        if (status != TLM_OK)
            goto fail;
        if (v->types[id] == TLMI_SP_UNKNOWN) {
            if (t->unk_id >= 0) {
                status = tlmi_fail(&host, TLM_E_FORMAT,
                                   "%s: pieces[%d] and pieces[%d] are both "
                                   "of type UNKNOWN", who, (int)t->unk_id,
                                   (int)id);
                goto fail;
            }
            t->unk_id = id;
        }
        decoded_total += decoded;
        size_t len = v->offsets[id + 1] - v->offsets[id];
        if (len > t->max_piece_bytes)
            t->max_piece_bytes = len;
        if (decoded > t->max_token_bytes)
            t->max_token_bytes = decoded;
    }
    if (t->unk_id < 0) {
        status = tlmi_fail(&host, TLM_E_FORMAT,
                           "%s: no piece is of type UNKNOWN; SentencePiece "
                           "needs one", who);
        goto fail;
    }
    status = special_of(&host, who, v, v->bos_id, "bos_id", &t->bos_id);
    if (status == TLM_OK)
        status = special_of(&host, who, v, v->eos_id, "eos_id", &t->eos_id);
    if (status == TLM_OK)
        status = special_of(&host, who, v, v->pad_id, "pad_id", &t->pad_id);
    if (status != TLM_OK)
        goto fail;
    const size_t piece_bytes = v->offsets[n];
    t->piece_offsets = tlmi_host_alloc(&host, (n + 1) * sizeof *t->piece_offsets, 64);
    t->piece_data = tlmi_host_alloc(&host, piece_bytes, 64);
    t->piece_data_size = piece_bytes;
    t->piece_scores = tlmi_host_alloc(&host, n * sizeof *t->piece_scores, 64);
    t->piece_types = tlmi_host_alloc(&host, n, 64);
    t->token_offsets = tlmi_host_alloc(&host, (n + 1) * sizeof *t->token_offsets, 64);
    t->token_data_size = decoded_total > 0 ? decoded_total : 1;
    t->token_data = tlmi_host_alloc(&host, t->token_data_size, 64);
    size_t capacity = 16;
    while (capacity < 2 * n)
        capacity *= 2;
    t->piece_table = tlmi_host_alloc(&host, capacity * sizeof *t->piece_table, 64);
    t->piece_table_capacity = capacity;
    if (t->piece_offsets == NULL || t->piece_data == NULL ||
        t->piece_scores == NULL || t->piece_types == NULL ||
        t->token_offsets == NULL || t->token_data == NULL ||
        t->piece_table == NULL) {
        status = tlmi_fail(&host, TLM_E_NOMEM,
                           "%s: out of memory for %d pieces", who,
                           (int)v->n_pieces);
        goto fail;
    }
    memcpy(t->piece_data, v->data, piece_bytes);
    memcpy(t->piece_scores, v->scores, n * sizeof *t->piece_scores);
    memcpy(t->piece_types, v->types, n);
    for (size_t i = 0; i <= n; i++)
        t->piece_offsets[i] = v->offsets[i];
    for (size_t i = 0; i < capacity; i++)
        t->piece_table[i] = -1;
    t->token_offsets[0] = 0;
    for (int32_t id = 0; id < v->n_pieces; id++) {
        size_t decoded = 0;
        check_piece(&host, who, v, id, &decoded);
        decode_into(v, id, t->token_data + t->token_offsets[id]);
        t->token_offsets[id + 1] = t->token_offsets[id] + decoded;
        const unsigned char *s = v->data + v->offsets[id];
        size_t len = v->offsets[id + 1] - v->offsets[id];
        int32_t other = piece_lookup(t, s, len);
        if (other >= 0) {
            status = tlmi_fail(&host, TLM_E_FORMAT,
                               "%s: pieces[%d] and pieces[%d] are both "
                               "'%.*s'", who, (int)other, (int)id, (int)len,
                               s);
            goto fail;
        }
        size_t i = (size_t)hash_piece(s, len) & (capacity - 1);
        while (t->piece_table[i] >= 0)
            i = (i + 1) & (capacity - 1);
        t->piece_table[i] = id;
    }
    /* Byte fallback looks <0xNN> up as SentencePiece does (the unknown
     * id when the model lacks one). */
    for (int b = 0; b < 256; b++) {
        static const char hex[] = "0123456789ABCDEF";
        unsigned char name[6] = {'<', '0', 'x', (unsigned char)hex[b >> 4],
                                 (unsigned char)hex[b & 15], '>'};
        int32_t id = piece_lookup(t, name, sizeof name);
        t->byte_ids[b] = id >= 0 ? id : t->unk_id;
    }
    status = build_joints(t, &host, who);
    if (status != TLM_OK)
        goto fail;
    *out = t;
    return TLM_OK;
fail:
    tlmi_tokenizer_release(t);
    return status;
}

int tlmi_tokenizer_adds_bos(const tlm_tokenizer *tok) {
    return tok->kind == TLM_TOKENIZER_SENTENCEPIECE && tok->bos_id >= 0;
}

/* --- encoding -------------------------------------------------------------- */

/* A candidate merge: symbols `left` and `right` (adjacent when pushed)
 * whose joined piece has `score` and `size` bytes. */
typedef struct candidate {
    float score;
    uint32_t left, right;
    uint32_t size;
} candidate;

/* SentencePiece's order: the higher score first, then the leftmost. */
static int comes_first(const candidate *a, const candidate *b) {
    return a->score != b->score ? a->score > b->score : a->left < b->left;
}

static void heap_push(candidate *heap, size_t *size, candidate c) {
    size_t i = (*size)++;
    while (i > 0 && comes_first(&c, &heap[(i - 1) / 2])) {
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
        if (child + 1 < *size && comes_first(&heap[child + 1], &heap[child]))
            child++;
        if (!comes_first(&heap[child], &last))
            break;
        heap[i] = heap[child];
        i = child;
    }
    if (*size > 0)
        heap[i] = last;
    return top;
}

/* Symbols of the normalized text, in a doubly linked list: symbol i is
 * norm[start[i] .. start[i] + len[i]). */
typedef struct symbols {
    const unsigned char *norm;
    uint32_t *start, *len, *prev, *next;
    candidate *heap;
    size_t heap_size;
} symbols;

static void maybe_push(const tlm_tokenizer *tok, symbols *s, uint32_t left,
                       uint32_t right) {
    if (left == NONE || right == NONE)
        return;
    const uint32_t size = s->len[left] + s->len[right];
    int32_t id = piece_lookup(tok, s->norm + s->start[left], size);
    if (id < 0 || tok->piece_types[id] != TLMI_SP_NORMAL)
        return;
    heap_push(s->heap, &s->heap_size,
              (candidate){tok->piece_scores[id], left, right, size});
}

int tlmi_sp_encode(tlm_tokenizer *tok, const unsigned char *text, size_t n,
                   int32_t **ids_out, size_t *n_ids, size_t *ids_capacity,
                   const char *who) {
    tlmi_host *host = &tok->host;
    *ids_out = NULL;
    *n_ids = 0;
    *ids_capacity = 0;
    /* The normalized text: the dummy prefix, spaces as U+2581, every byte
     * that starts no valid character as U+FFFD (3 bytes each at most). */
    if (n > (UINT32_MAX - 3) / 3)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: %zu bytes of text; SentencePiece tokenizers "
                         "encode at most %u at a time", who, n,
                         (unsigned)((UINT32_MAX - 3) / 3));
    const size_t norm_cap = 3 * n + 3, sym_cap = n + 1;
    unsigned char *norm = tlmi_host_alloc(host, norm_cap, 64);
    uint32_t *arrays = tlmi_host_alloc(host, 4 * sym_cap * sizeof *arrays, 64);
    candidate *heap = tlmi_host_alloc(host, 2 * sym_cap * sizeof *heap, 64);
    const size_t id_cap = norm_cap;
    int32_t *ids = tlmi_host_alloc(host, id_cap * sizeof *ids, 64);
    int status = TLM_OK;
    if (norm == NULL || arrays == NULL || heap == NULL || ids == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM,
                           "%s: out of memory encoding %zu bytes", who, n);
        goto done;
    }
    symbols s = {norm, arrays, arrays + sym_cap, arrays + 2 * sym_cap,
                 arrays + 3 * sym_cap, heap, 0};
    size_t at = 0;
    uint32_t count = 0;
    if (tok->add_dummy_prefix) {
        memcpy(norm, space_mark, 3);
        s.start[0] = 0;
        s.len[0] = 3;
        at = 3;
        count = 1;
    }
    for (size_t i = 0; i < n;) {
        uint32_t code;
        size_t len = tlmi_utf8_decode(text + i, n - i, &code);
        s.start[count] = (uint32_t)at;
        if (len == 0) {
            memcpy(norm + at, replacement, 3);
            at += 3;
            len = 1;
        } else if (text[i] == ' ' && tok->escape_whitespaces) {
            memcpy(norm + at, space_mark, 3);
            at += 3;
        } else {
            memcpy(norm + at, text + i, len);
            at += len;
        }
        s.len[count] = (uint32_t)at - s.start[count];
        count++;
        i += len;
    }
    for (uint32_t i = 0; i < count; i++) {
        s.prev[i] = i > 0 ? i - 1 : NONE;
        s.next[i] = i + 1 < count ? i + 1 : NONE;
    }
    /* The text is merged part by part, split where two characters never
     * sit side by side in a piece: no merge can cross such a boundary, and
     * within a part the order (the higher score, then the leftmost) is the
     * order sentencepiece's single queue over the whole text gives, so
     * the ids are the same while the queue stays small. */
    for (uint32_t i = 0; i < count; i++) {
        const int last = i + 1 == count ||
                         !is_joint(tok, (uint64_t)pack_char(norm + s.start[i], s.len[i]) << 32 |
                                            pack_char(norm + s.start[i + 1], s.len[i + 1]));
        if (!last) {
            maybe_push(tok, &s, i, i + 1);
            continue;
        }
        /* Each merge pops one candidate and pushes at most two: the queue
         * never holds more than twice the part's characters. */
        while (s.heap_size > 0) {
            candidate c = heap_pop(s.heap, &s.heap_size);
            if (s.len[c.left] == 0 || s.next[c.left] != c.right ||
                s.len[c.left] + s.len[c.right] != c.size)
                continue; /* stale: one of the two has merged since */
            s.len[c.left] = c.size;
            s.len[c.right] = 0;
            s.next[c.left] = s.next[c.right];
            if (s.next[c.right] != NONE)
                s.prev[s.next[c.right]] = c.left;
            maybe_push(tok, &s, s.prev[c.left], c.left);
            maybe_push(tok, &s, c.left, s.next[c.left]);
        }
    }
    size_t out = 0;
    int prev_unknown = 0;
    for (uint32_t i = count > 0 ? 0 : NONE; i != NONE; i = s.next[i]) {
        const unsigned char *piece = norm + s.start[i];
        int32_t id = piece_lookup(tok, piece, s.len[i]);
        if (id >= 0 && tok->piece_types[id] != TLMI_SP_UNKNOWN) {
            ids[out++] = id;
            prev_unknown = 0;
        } else if (tok->byte_fallback) {
            for (uint32_t k = 0; k < s.len[i]; k++)
                ids[out++] = tok->byte_ids[piece[k]];
            prev_unknown = 1;
        } else {
            /* A run of unknown characters is one unknown piece. */
            if (!prev_unknown)
                ids[out++] = tok->unk_id;
            prev_unknown = 1;
        }
    }
    *ids_out = ids;
    *n_ids = out;
    *ids_capacity = id_cap;
    ids = NULL;
done:
    tlmi_host_free(host, norm, norm_cap);
    tlmi_host_free(host, arrays, 4 * sym_cap * sizeof *arrays);
    tlmi_host_free(host, heap, 2 * sym_cap * sizeof *heap);
    tlmi_host_free(host, ids, id_cap * sizeof *ids);
    return status;
}

/* --- decoding -------------------------------------------------------------- */

void tlmi_sp_decode_piece(const tlm_tokenizer *tok, tlmi_sp_decoder *state,
                          int32_t id, const unsigned char **bytes,
                          size_t *length) {
    const size_t off = tok->token_offsets[id];
    *bytes = tok->token_data + off;
    *length = tok->token_offsets[id + 1] - off;
    if (!state->at_start)
        return;
    const int type = tok->piece_types[id];
    if (type == TLMI_SP_CONTROL)
        return; /* decodes to nothing: still at the start */
    state->at_start = 0;
    /* SentencePiece drops the space the dummy prefix stands for: the
     * U+2581 that starts the first (non-byte, non-unknown) piece. */
    const unsigned char *piece = tok->piece_data + tok->piece_offsets[id];
    const size_t piece_len = tok->piece_offsets[id + 1] - tok->piece_offsets[id];
    if (tok->add_dummy_prefix && type == TLMI_SP_NORMAL && piece_len >= 3 &&
        memcmp(piece, space_mark, 3) == 0) {
        (*bytes)++;
        (*length)--;
    }
}

/* --- llama2.c's tokenizer.bin ----------------------------------------------- */

/* llama2.c's export (tokenizer.py) writes the begin and end pieces with a
 * newline on each side. */
static const char bos_text[] = "\n<s>\n", eos_text[] = "\n</s>\n";

int tlmi_sp_read_llama2c(tlm_tokenizer **out, const tlmi_host *host_in,
                         const unsigned char *data, size_t size,
                         const char *who) {
    *out = NULL;
    tlmi_host host = *host_in;
    if (size < 4)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: truncated at offset %zu: the max_token_length "
                         "header needs 4 bytes", who, size);
    const uint32_t max_len = tlmi_get_u32(data);
    if (max_len == 0 || max_len > TLMI_CHUNK_MAX)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: max_token_length %u at offset 0 is outside "
                         "1..%d", who, (unsigned)max_len, TLMI_CHUNK_MAX);
    /* First pass: count the tokens and check their lengths. */
    size_t n = 0, bytes = 0;
    for (size_t at = 4; at < size;) {
        if (size - at < 8)
            return tlmi_fail(&host, TLM_E_FORMAT,
                             "%s: truncated at offset %zu: token %zu's score "
                             "and length need 8 bytes", who, size, n);
        uint32_t len = tlmi_get_u32(data + at + 4);
        if (len == 0 || len > max_len)
            return tlmi_fail(&host, TLM_E_FORMAT,
                             "%s: token %zu's length %u at offset %zu is "
                             "outside 1..%u (max_token_length)", who, n,
                             (unsigned)len, at + 4, (unsigned)max_len);
        if (size - at - 8 < len)
            return tlmi_fail(&host, TLM_E_FORMAT,
                             "%s: truncated at offset %zu: token %zu needs %u "
                             "bytes", who, size, n, (unsigned)len);
        at += 8 + len;
        bytes += 3 * (size_t)len; /* a space becomes 3 bytes */
        if (++n > TLMI_VOCAB_MAX)
            return tlmi_fail(&host, TLM_E_FORMAT,
                             "%s: more than %d tokens", who, TLMI_VOCAB_MAX);
    }
    if (n < 3)
        return tlmi_fail(&host, TLM_E_FORMAT,
                         "%s: %zu tokens; llama2.c's ids 0, 1, 2 are unknown, "
                         "begin and end", who, n);
    size_t *offsets = tlmi_host_alloc(&host, (n + 1) * sizeof *offsets, 64);
    unsigned char *text = tlmi_host_alloc(&host, bytes, 64);
    float *scores = tlmi_host_alloc(&host, n * sizeof *scores, 64);
    uint8_t *types = tlmi_host_alloc(&host, n, 64);
    int status = TLM_OK;
    if (offsets == NULL || text == NULL || scores == NULL || types == NULL) {
        status = tlmi_fail(&host, TLM_E_NOMEM,
                           "%s: out of memory reading %zu tokens", who, n);
        goto done;
    }
    offsets[0] = 0;
    int byte_pieces = 0;
    size_t at = 4;
    for (size_t id = 0; id < n; id++) {
        uint32_t bits = tlmi_get_u32(data + at);
        memcpy(&scores[id], &bits, sizeof bits);
        uint32_t len = tlmi_get_u32(data + at + 4);
        const unsigned char *s = data + at + 8;
        at += 8 + len;
        unsigned char *p = text + offsets[id];
        if (id == 1 && len == sizeof bos_text - 1 && memcmp(s, bos_text, len) == 0) {
            s++;
            len -= 2;
        } else if (id == 2 && len == sizeof eos_text - 1 &&
                   memcmp(s, eos_text, len) == 0) {
            s++;
            len -= 2;
        }
        /* Spaces were U+2581 in the model. */
        for (uint32_t k = 0; k < len; k++) {
            if (s[k] == ' ') {
                memcpy(p, space_mark, 3);
                p += 3;
            } else {
                *p++ = s[k];
            }
        }
        offsets[id + 1] = (size_t)(p - text);
        const size_t piece_len = offsets[id + 1] - offsets[id];
        types[id] = id == 0 ? TLMI_SP_UNKNOWN
                    : id <= 2 ? TLMI_SP_CONTROL
                    : byte_piece_value(text + offsets[id], piece_len) >= 0
                        ? TLMI_SP_BYTE
                        : TLMI_SP_NORMAL;
        byte_pieces |= types[id] == TLMI_SP_BYTE;
    }
    static const unsigned char unk_surface[] = " \xE2\x81\x87 ";
    const tlmi_sp_vocab v = {(int32_t)n, offsets, text, scores, types,
                             1, 2, -1, 1, 1, byte_pieces,
                             unk_surface, sizeof unk_surface - 1};
    status = tlmi_sp_build(out, &host, &v, who);
done:
    tlmi_host_free(&host, offsets, (n + 1) * sizeof *offsets);
    tlmi_host_free(&host, text, bytes);
    tlmi_host_free(&host, scores, n * sizeof *scores);
    tlmi_host_free(&host, types, n);
    return status;
}

int tlmi_sp_write_llama2c(const tlm_tokenizer *tok, tlmi_host *host,
                          unsigned char **data, size_t *size,
                          const char *who) {
    *data = NULL;
    *size = 0;
    if (tok->kind != TLM_TOKENIZER_SENTENCEPIECE)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: the tokenizer is of kind %d; llama2.c's "
                         "tokenizer.bin holds only SentencePiece tokenizers "
                         "(kind 4)", who, (int)tok->kind);
    /* tokenizer.bin has no field for these: the reader assumes them. */
    const char *field = NULL;
    if (tok->unk_id != 0 || tok->bos_id != 1 || tok->eos_id != 2)
        field = "trainer_spec.unk_id/bos_id/eos_id (tokenizer.bin fixes "
                "them at 0, 1, 2)";
    else if (tok->pad_id >= 0)
        field = "trainer_spec.pad_id (tokenizer.bin has no padding id)";
    else if (!tok->add_dummy_prefix)
        field = "normalizer_spec.add_dummy_prefix false";
    else if (!tok->escape_whitespaces)
        field = "normalizer_spec.escape_whitespaces false";
    else if (tok->token_offsets[1] - tok->token_offsets[0] != 5 ||
             memcmp(tok->token_data + tok->token_offsets[0],
                    " \xE2\x81\x87 ", 5) != 0)
        field = "trainer_spec.unk_surface (tokenizer.bin has the default)";
    size_t total = 4, max_len = 0;
    int byte_pieces = 0;
    for (int32_t id = 0; field == NULL && id < tok->vocab_size; id++) {
        const unsigned char *s = tok->piece_data + tok->piece_offsets[id];
        size_t len = tok->piece_offsets[id + 1] - tok->piece_offsets[id];
        size_t out_len = len + (id == 1 || id == 2 ? 2 : 0);
        for (size_t k = 0; k < len; k++) {
            if (s[k] == ' ')
                field = "pieces: a piece with a literal space (tokenizer.bin "
                        "writes U+2581 as a space)";
            if (k + 3 <= len && memcmp(s + k, space_mark, 3) == 0) {
                out_len -= 2;
                k += 2;
            }
        }
        int is_byte = tok->piece_types[id] == TLMI_SP_BYTE;
        byte_pieces |= is_byte;
        int looks_byte = byte_piece_value(s, len) >= 0;
        if (id > 2 && (looks_byte != is_byte || tok->piece_types[id] == TLMI_SP_CONTROL ||
                       tok->piece_types[id] == TLMI_SP_UNKNOWN))
            field = "pieces[].type (tokenizer.bin has types only by id and "
                    "spelling)";
        total += 8 + out_len;
        if (out_len > max_len)
            max_len = out_len;
    }
    if (field == NULL && byte_pieces != tok->byte_fallback)
        field = "trainer_spec.byte_fallback without byte pieces";
    if (field != NULL)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: llama2.c's tokenizer.bin cannot hold %s", who,
                         field);
    unsigned char *buf = tlmi_host_alloc(host, total, 64);
    if (buf == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory for %zu bytes",
                         who, total);
    tlmi_put_u32(buf, (uint32_t)max_len);
    unsigned char *p = buf + 4;
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        const unsigned char *s = tok->piece_data + tok->piece_offsets[id];
        size_t len = tok->piece_offsets[id + 1] - tok->piece_offsets[id];
        uint32_t bits;
        memcpy(&bits, &tok->piece_scores[id], sizeof bits);
        tlmi_put_u32(p, bits);
        unsigned char *len_at = p + 4;
        unsigned char *q = p + 8;
        if (id == 1 || id == 2)
            *q++ = '\n';
        for (size_t k = 0; k < len; k++) {
            if (k + 3 <= len && memcmp(s + k, space_mark, 3) == 0) {
                *q++ = ' ';
                k += 2;
            } else {
                *q++ = s[k];
            }
        }
        if (id == 1 || id == 2)
            *q++ = '\n';
        tlmi_put_u32(len_at, (uint32_t)(q - p - 8));
        p = q;
    }
    *data = buf;
    *size = total;
    return TLM_OK;
}
