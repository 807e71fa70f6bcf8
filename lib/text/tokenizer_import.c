/*
 * Reading and writing GPT-2's published tokenizer files (docs/tokenizer.md,
 * "GPT-2"): OpenAI's encoder.json + vocab.bpe (Hugging Face calls the same
 * files vocab.json + merges.txt) and tiktoken's rank file. Tokens in
 * encoder.json and vocab.bpe are written in GPT-2's byte alphabet: each
 * byte is one printable character (bytes_to_unicode() in OpenAI's
 * encoder.py). Every malformed input is TLM_E_FORMAT naming the file and
 * the byte offset or line.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "base/error.h"
#include "base/file.h"
#include "base/grow.h"
#include "base/utf8.h"
#include "io/json.h"
#include "text/tokenizer.h"

/* Largest file read: GPT-2's encoder.json is 1 MB, its vocab.bpe 456 KB. */
#define MAX_FILE_BYTES ((size_t)256 << 20)
#define SPECIAL_TEXT "<|endoftext|>"
#define SPECIAL_LENGTH (sizeof SPECIAL_TEXT - 1)
/* The alphabet's characters are U+0021..U+0143. */
#define ALPHABET_END 0x144

typedef struct alphabet {
    uint32_t code_of[256];            /* byte -> character */
    int16_t byte_of[ALPHABET_END];    /* character -> byte, or -1 */
} alphabet;

/* Printable Latin-1 bytes stand for themselves; the others (controls,
 * space, DEL, NBSP, soft hyphen) become U+0100 onwards, in byte order. */
static void make_alphabet(alphabet *a) {
    uint32_t next = 0x100;
    for (int c = 0; c < ALPHABET_END; c++)
        a->byte_of[c] = -1;
    for (int b = 0; b < 256; b++) {
        int printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) ||
                        (b >= 0xAE && b <= 0xFF);
        a->code_of[b] = printable ? (uint32_t)b : next++;
        a->byte_of[a->code_of[b]] = (int16_t)b;
    }
}

/* Bytes of a token written in the alphabet (s, n UTF-8 bytes) into out
 * (room for TLMI_CHUNK_MAX); returns the count, or SIZE_MAX when a
 * character is not in the alphabet (*bad_at: its offset in s) and
 * SIZE_MAX - 1 when the token is too long. */
static size_t decode_token(const alphabet *a, const char *s, size_t n,
                           unsigned char *out, size_t *bad_at) {
    size_t count = 0, i = 0;
    while (i < n) {
        uint32_t code;
        size_t len = tlmi_utf8_decode((const unsigned char *)s + i, n - i,
                                      &code);
        if (len == 0 || code >= ALPHABET_END || a->byte_of[code] < 0) {
            *bad_at = i;
            return SIZE_MAX;
        }
        if (count == TLMI_CHUNK_MAX)
            return SIZE_MAX - 1;
        out[count++] = (unsigned char)a->byte_of[code];
        i += len;
    }
    return count;
}

/* --- a vocabulary being gathered ---------------------------------------- */

typedef struct gathered {
    tlmi_host *host;
    size_t *offsets;      /* [n_tokens + 1] of [offsets_capacity] */
    size_t offsets_capacity;
    unsigned char *data;  /* [data_capacity] */
    size_t data_capacity;
    int32_t n_tokens;
    int32_t special_id;
    int32_t *merges;      /* [3 * n_merges]: left, right, result id */
    size_t merges_capacity; /* int32 slots allocated */
    int32_t n_merges;
} gathered;

static void gathered_free(gathered *g) {
    tlmi_host_free(g->host, g->offsets,
                   g->offsets_capacity * sizeof *g->offsets);
    tlmi_host_free(g->host, g->data, g->data_capacity);
    tlmi_host_free(g->host, g->merges, g->merges_capacity * sizeof *g->merges);
}

/* Room for n tokens (plus the special one an importer may add) of at most
 * data_bytes bytes. */
static int gathered_alloc(gathered *g, size_t n, size_t data_bytes,
                          const char *who) {
    g->offsets = tlmi_host_alloc(g->host, (n + 2) * sizeof *g->offsets, 64);
    g->data_capacity = data_bytes + SPECIAL_LENGTH;
    g->data = tlmi_host_alloc(g->host, g->data_capacity, 64);
    if (g->offsets == NULL || g->data == NULL) {
        tlmi_host_free(g->host, g->offsets, (n + 2) * sizeof *g->offsets);
        tlmi_host_free(g->host, g->data, g->data_capacity);
        g->offsets = NULL;
        g->data = NULL;
        return tlmi_fail(g->host, TLM_E_NOMEM,
                         "%s: out of memory for %zu tokens", who, n);
    }
    g->offsets_capacity = n + 2;
    g->n_tokens = (int32_t)n;
    return TLM_OK;
}

/* Adds <|endoftext|> as the last id when the vocabulary lacks it. */
static void add_special(gathered *g) {
    if (g->special_id >= 0)
        return;
    size_t at = g->offsets[g->n_tokens];
    memcpy(g->data + at, SPECIAL_TEXT, SPECIAL_LENGTH);
    g->offsets[g->n_tokens + 1] = at + SPECIAL_LENGTH;
    g->special_id = g->n_tokens++;
}

static int add_merge(gathered *g, int32_t left, int32_t right, int32_t id,
                     const char *who) {
    if (tlmi_grow(g->host, &g->merges, &g->merges_capacity,
                  3 * (size_t)g->n_merges + 3, sizeof *g->merges) != TLM_OK)
        return tlmi_fail(g->host, TLM_E_NOMEM,
                         "%s: out of memory for the merges", who);
    int32_t *m = g->merges + 3 * (size_t)g->n_merges++;
    m[0] = left;
    m[1] = right;
    m[2] = id;
    return TLM_OK;
}

static tlmi_gpt2_vocab vocab_of(const gathered *g, const char *unit,
                                size_t first) {
    tlmi_gpt2_vocab v = {g->n_tokens, g->offsets, g->data, g->special_id,
                         g->n_merges, g->merges, unit, first, 1};
    return v;
}

/* --- encoder.json -------------------------------------------------------- */

static int read_encoder(gathered *g, const alphabet *a, const char *path,
                        const char *text, size_t size) {
    tlmi_host *host = g->host;
    char who[300];
    snprintf(who, sizeof who, "tlm_tokenizer_import: '%.250s'", path);
    tlmi_json_doc *doc = NULL;
    int status = tlmi_json_parse(host, text, size, NULL, &doc);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "%s", who);
    const tlmi_json_value *root = tlmi_json_root(doc);
    size_t n = tlmi_json_count(root);
    int32_t *member_of = NULL; /* id -> member index */
    if (root->type != TLMI_JSON_OBJECT) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "%s: the document is a JSON %s, not an object of "
                           "token -> id",
                           who, tlmi_json_type_name(root->type));
        goto done;
    }
    if (n < 256 || n >= (size_t)TLMI_VOCAB_MAX) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "%s: %zu tokens; a byte-level vocabulary has "
                           "256..%d",
                           who, n, TLMI_VOCAB_MAX - 1);
        goto done;
    }
    member_of = tlmi_host_alloc(host, n * sizeof *member_of, 64);
    if (member_of == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", who);
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        member_of[i] = -1;
    size_t data_bytes = 0;
    g->special_id = -1;
    for (size_t m = 0; m < n; m++) {
        const tlmi_json_member *mem = tlmi_json_object_at(root, m);
        const tlmi_json_value *v = &mem->value;
        if (v->type != TLMI_JSON_NUMBER || !v->is_int64 ||
            v->as.number.integer < 0 || v->as.number.integer >= (int64_t)n) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: the id at byte %zu is not an integer in "
                               "0..%zu (ids are 0..n-1 without gaps, n = %zu "
                               "tokens)",
                               who, v->offset, n - 1, n);
            goto done;
        }
        int32_t id = (int32_t)v->as.number.integer;
        if (member_of[id] >= 0) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: id %d at byte %zu is also the id of the "
                               "key at byte %zu",
                               who, (int)id, v->offset,
                               tlmi_json_object_at(root, (size_t)member_of[id])
                                   ->key_offset);
            goto done;
        }
        member_of[id] = (int32_t)m;
        data_bytes += mem->key_length; /* at least the byte count */
        if (mem->key_length == SPECIAL_LENGTH &&
            memcmp(mem->key, SPECIAL_TEXT, SPECIAL_LENGTH) == 0)
            g->special_id = id;
    }
    status = gathered_alloc(g, n, data_bytes, who);
    if (status != TLM_OK)
        goto done;
    g->offsets[0] = 0;
    for (size_t id = 0; id < n; id++) {
        const tlmi_json_member *mem =
            tlmi_json_object_at(root, (size_t)member_of[id]);
        size_t bad_at = 0;
        size_t len = decode_token(a, mem->key, mem->key_length,
                                  g->data + g->offsets[id], &bad_at);
        if (len == SIZE_MAX) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: the key at byte %zu has a character (at "
                               "its byte %zu) outside GPT-2's byte alphabet",
                               who, mem->key_offset, bad_at);
            goto done;
        }
        if (len == SIZE_MAX - 1 || len == 0) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: the key at byte %zu is %s (tokens have "
                               "1..%d bytes)",
                               who, mem->key_offset,
                               len == 0 ? "empty" : "too long",
                               TLMI_CHUNK_MAX);
            goto done;
        }
        g->offsets[id + 1] = g->offsets[id] + len;
    }
    add_special(g);
done:
    tlmi_host_free(host, member_of, n * sizeof *member_of);
    tlmi_json_free(doc);
    return status;
}

/* --- vocab.bpe ------------------------------------------------------------ */

static int read_merges(gathered *g, const tlm_tokenizer *base,
                       const alphabet *a, const char *path, const char *text,
                       size_t size, size_t *first_line) {
    tlmi_host *host = g->host;
    char who[300];
    snprintf(who, sizeof who, "tlm_tokenizer_import: '%.250s'", path);
    size_t at = 0, line = 0;
    *first_line = 0;
    while (at < size) {
        line++;
        const char *s = text + at;
        const char *nl = memchr(s, '\n', size - at);
        size_t len = nl != NULL ? (size_t)(nl - s) : size - at;
        at += len + (nl != NULL);
        if (len > 0 && s[len - 1] == '\r')
            len--;
        if (line == 1 && len >= 8 && memcmp(s, "#version", 8) == 0)
            continue;
        if (len == 0 && at >= size)
            break; /* the final newline */
        if (*first_line == 0)
            *first_line = line;
        const char *space = memchr(s, ' ', len);
        if (len == 0 || space == NULL || space == s || space == s + len - 1 ||
            memchr(space + 1, ' ', len - (size_t)(space + 1 - s)) != NULL)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: line %zu is not two tokens separated by "
                             "one space",
                             who, line);
        unsigned char bytes[2 * TLMI_CHUNK_MAX];
        size_t bad_at = 0;
        size_t left_len = decode_token(a, s, (size_t)(space - s), bytes,
                                       &bad_at);
        size_t right_len =
            left_len >= SIZE_MAX - 1
                ? left_len
                : decode_token(a, space + 1, len - (size_t)(space + 1 - s),
                               bytes + left_len, &bad_at);
        if (left_len >= SIZE_MAX - 1 || right_len >= SIZE_MAX - 1)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: line %zu: a token has a character outside "
                             "GPT-2's byte alphabet, or is too long",
                             who, line);
        int32_t left = tlmi_token_lookup(base, bytes, left_len);
        int32_t right = tlmi_token_lookup(base, bytes + left_len, right_len);
        if (left < 0 || right < 0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: line %zu: the %s token '%.*s' is not in the "
                             "vocabulary",
                             who, line, left < 0 ? "left" : "right",
                             left < 0 ? (int)(space - s)
                                      : (int)(len - (size_t)(space + 1 - s)),
                             left < 0 ? s : space + 1);
        int32_t result = left_len + right_len <= TLMI_CHUNK_MAX
                             ? tlmi_token_lookup(base, bytes,
                                                 left_len + right_len)
                             : -1;
        if (result < 0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: line %zu: the merge of '%.*s' makes a "
                             "token that is not in the vocabulary",
                             who, line, (int)len, s);
        TLMI_TRY(add_merge(g, left, right, result, who));
    }
    if (*first_line == 0)
        *first_line = line + 1;
    return TLM_OK;
}

/* --- tiktoken ------------------------------------------------------------- */

static int base64_value(unsigned char c) {
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

/* Strict base64 (with padding) of s[0..n) into out (room for
 * TLMI_CHUNK_MAX); the count, or SIZE_MAX with *bad_at. */
static size_t decode_base64(const char *s, size_t n, unsigned char *out,
                            size_t *bad_at) {
    if (n == 0 || n % 4 != 0 || n / 4 * 3 > TLMI_CHUNK_MAX + 2) {
        *bad_at = n;
        return SIZE_MAX;
    }
    size_t count = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int k = 0; k < 4; k++) {
            unsigned char c = (unsigned char)s[i + (size_t)k];
            if (c == '=' && i + 4 == n && k >= 2) {
                v[k] = 0;
                pad++;
                continue;
            }
            v[k] = base64_value(c);
            if (v[k] < 0 || pad > 0) {
                *bad_at = i + (size_t)k;
                return SIZE_MAX;
            }
        }
        uint32_t bits = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 |
                        (uint32_t)v[2] << 6 | (uint32_t)v[3];
        /* The bits the padding drops must be zero (canonical base64). */
        if ((pad == 1 && (bits & 0xFF) != 0) ||
            (pad == 2 && (bits & 0xFFFF) != 0)) {
            *bad_at = i + 3 - (size_t)pad;
            return SIZE_MAX;
        }
        unsigned char b[3] = {(unsigned char)(bits >> 16),
                              (unsigned char)(bits >> 8), (unsigned char)bits};
        for (int k = 0; k < 3 - pad; k++) {
            if (count == TLMI_CHUNK_MAX) {
                *bad_at = i;
                return SIZE_MAX;
            }
            out[count++] = b[k];
        }
    }
    return count;
}

/* The merge that makes token `id` (bytes b[0..n), n >= 2): tiktoken's
 * BPE of those bytes with the tokens of lower rank joins the adjacent
 * pair whose bytes make the lowest-ranked token; when it ends in two
 * parts, they are the merge. *left = -1 when it does not (the token is
 * then only produced when a whole piece is that token). */
static void derive_merge(const tlm_tokenizer *base, int32_t id,
                         const unsigned char *b, size_t n, int32_t *left,
                         int32_t *right) {
    size_t starts[TLMI_CHUNK_MAX + 1]; /* part k is b[starts[k]..starts[k+1]) */
    size_t parts = n;
    for (size_t i = 0; i <= n; i++)
        starts[i] = i;
    while (parts > 2) {
        int32_t best = INT32_MAX;
        size_t at = 0;
        for (size_t k = 0; k + 1 < parts; k++) {
            int32_t r = tlmi_token_lookup(base, b + starts[k],
                                          starts[k + 2] - starts[k]);
            if (r >= 0 && r < id && r < best) {
                best = r;
                at = k;
            }
        }
        if (best == INT32_MAX)
            break;
        memmove(starts + at + 1, starts + at + 2,
                (parts - at - 1) * sizeof *starts);
        parts--;
    }
    *left = -1;
    if (parts != 2)
        return;
    *left = tlmi_token_lookup(base, b, starts[1]);
    *right = tlmi_token_lookup(base, b + starts[1], n - starts[1]);
    if (*left < 0 || *right < 0 || *left >= id || *right >= id)
        *left = -1;
}

static int read_tiktoken(gathered *g, const char *path, const char *text,
                         size_t size) {
    tlmi_host *host = g->host;
    char who[300];
    snprintf(who, sizeof who, "tlm_tokenizer_import: '%.250s'", path);
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        n += text[i] == '\n';
    if (size > 0 && text[size - 1] != '\n')
        n++;
    if (n < 256 || n >= (size_t)TLMI_VOCAB_MAX)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: %zu lines; a tiktoken rank file has one token "
                         "per line, 256..%d of them",
                         who, n, TLMI_VOCAB_MAX - 1);
    size_t *at_of = tlmi_host_alloc(host, n * sizeof *at_of, 64); /* rank -> line start */
    size_t *line_of = tlmi_host_alloc(host, n * sizeof *line_of, 64);
    int status = TLM_OK;
    if (at_of == NULL || line_of == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", who);
        goto done;
    }
    for (size_t r = 0; r < n; r++)
        at_of[r] = SIZE_MAX;
    size_t at = 0, line = 0;
    while (at < size) {
        line++;
        const char *s = text + at;
        const char *nl = memchr(s, '\n', size - at);
        size_t len = nl != NULL ? (size_t)(nl - s) : size - at;
        const char *space = memchr(s, ' ', len);
        size_t digits = space != NULL ? len - (size_t)(space + 1 - s) : 0;
        uint64_t rank = 0;
        int ok = space != NULL && digits > 0 && digits <= 9 &&
                 (digits == 1 || space[1] != '0');
        for (size_t k = 0; ok && k < digits; k++) {
            char c = space[1 + k];
            ok = c >= '0' && c <= '9';
            rank = rank * 10 + (uint64_t)(c - '0');
        }
        if (!ok) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: line %zu (byte %zu) is not a base64 "
                               "token, one space and a decimal rank",
                               who, line, at);
            goto done;
        }
        if (rank >= n) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: line %zu (byte %zu): rank %llu is not "
                               "below the %zu tokens (ranks are 0..n-1 "
                               "without gaps)",
                               who, line, at, (unsigned long long)rank, n);
            goto done;
        }
        if (at_of[rank] != SIZE_MAX) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: line %zu (byte %zu): rank %llu is also "
                               "on line %zu",
                               who, line, at, (unsigned long long)rank,
                               line_of[rank]);
            goto done;
        }
        at_of[rank] = at;
        line_of[rank] = line;
        at += len + (nl != NULL);
    }
    status = gathered_alloc(g, n, size, who); /* base64 is longer */
    if (status != TLM_OK)
        goto done;
    g->offsets[0] = 0;
    g->special_id = -1;
    for (size_t r = 0; r < n; r++) {
        const char *s = text + at_of[r];
        const char *space = memchr(s, ' ', size - at_of[r]);
        size_t bad_at = 0;
        size_t len = decode_base64(s, (size_t)(space - s),
                                   g->data + g->offsets[r], &bad_at);
        if (len == SIZE_MAX) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "%s: line %zu (byte %zu): bad base64 at byte "
                               "%zu (canonical, padded, at most %d bytes "
                               "decoded)",
                               who, line_of[r], at_of[r], at_of[r] + bad_at,
                               TLMI_CHUNK_MAX);
            goto done;
        }
        g->offsets[r + 1] = g->offsets[r] + len;
    }
    add_special(g);
done:
    tlmi_host_free(host, at_of, n * sizeof *at_of);
    tlmi_host_free(host, line_of, n * sizeof *line_of);
    return status;
}

/* --- the public calls ---------------------------------------------------- */

static int read_file(tlmi_host *host, const char *path, void **data,
                     size_t *size) {
    int status = tlmi_file_read_all(host, path, MAX_FILE_BYTES, data, size);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "tlm_tokenizer_import");
    return TLM_OK;
}

static int is_file(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

static int import_file(tlm_tokenizer **out, tlmi_host *host,
                       const char *path);

/* tokenizer.model, or encoder.json + vocab.bpe (or vocab.json +
 * merges.txt) in `dir`. */
static int import_directory(tlm_tokenizer **out, tlmi_host *host,
                            const char *dir) {
    char vocab_path[4096], merges_path[4096];
    snprintf(vocab_path, sizeof vocab_path, "%s/tokenizer.model", dir);
    if (is_file(vocab_path))
        return import_file(out, host, vocab_path);
    snprintf(vocab_path, sizeof vocab_path, "%s/encoder.json", dir);
    snprintf(merges_path, sizeof merges_path, "%s/vocab.bpe", dir);
    if (!is_file(vocab_path)) {
        snprintf(vocab_path, sizeof vocab_path, "%s/vocab.json", dir);
        snprintf(merges_path, sizeof merges_path, "%s/merges.txt", dir);
        if (!is_file(vocab_path))
            return tlmi_fail(host, TLM_E_IO,
                             "tlm_tokenizer_import: the directory '%.200s' "
                             "holds neither tokenizer.model nor "
                             "encoder.json + vocab.bpe nor "
                             "vocab.json + merges.txt",
                             dir);
    }
    void *text = NULL, *merges_text = NULL;
    size_t size = 0, merges_size = 0;
    int status = read_file(host, vocab_path, &text, &size);
    if (status == TLM_OK)
        status = read_file(host, merges_path, &merges_text, &merges_size);
    if (status == TLM_OK)
        status = tlmi_gpt2_read_files(out, host, text, size, vocab_path,
                                      merges_text, merges_size, merges_path);
    tlmi_file_free_contents(host, text, size);
    tlmi_file_free_contents(host, merges_text, merges_size);
    return status;
}

int tlmi_gpt2_read_files(tlm_tokenizer **out, tlmi_host *host,
                         const char *vocab_text, size_t vocab_size,
                         const char *vocab_name, const char *merges_text,
                         size_t merges_size, const char *merges_name) {
    *out = NULL;
    alphabet a;
    make_alphabet(&a);
    gathered g;
    memset(&g, 0, sizeof g);
    g.host = host;
    tlm_tokenizer *base = NULL;
    size_t first_line = 0;
    char who[300];
    int status = read_encoder(&g, &a, vocab_name, vocab_text, vocab_size);
    if (status == TLM_OK) {
        snprintf(who, sizeof who, "tlm_tokenizer_import: '%.250s'",
                 vocab_name);
        tlmi_gpt2_vocab v = vocab_of(&g, "line", 1);
        status = tlmi_gpt2_build(&base, host, &v, who);
    }
    if (status == TLM_OK)
        status = read_merges(&g, base, &a, merges_name, merges_text,
                             merges_size, &first_line);
    if (status == TLM_OK) {
        snprintf(who, sizeof who, "tlm_tokenizer_import: '%.250s'",
                 merges_name);
        tlmi_gpt2_vocab v = vocab_of(&g, "line", first_line);
        status = tlmi_gpt2_build(out, host, &v, who);
    }
    tlm_tokenizer_free(base);
    gathered_free(&g);
    return status;
}

int tlmi_tiktoken_read(tlm_tokenizer **out, tlmi_host *host,
                       const char *text, size_t size, const char *path) {
    *out = NULL;
    gathered g;
    memset(&g, 0, sizeof g);
    g.host = host;
    tlm_tokenizer *base = NULL;
    char who[300];
    snprintf(who, sizeof who, "tlm_tokenizer_import: '%.250s'", path);
    int status = read_tiktoken(&g, path, text, size);
    if (status == TLM_OK) {
        tlmi_gpt2_vocab v = vocab_of(&g, "rank", 0);
        status = tlmi_gpt2_build(&base, host, &v, who);
    }
    for (int32_t id = 0; status == TLM_OK && id < g.n_tokens; id++) {
        size_t len = g.offsets[id + 1] - g.offsets[id];
        if (id == g.special_id || len < 2)
            continue;
        int32_t left, right;
        derive_merge(base, id, g.data + g.offsets[id], len, &left, &right);
        if (left >= 0)
            status = add_merge(&g, left, right, id, who);
    }
    if (status == TLM_OK) {
        tlmi_gpt2_vocab v = vocab_of(&g, "derived merge", 0);
        status = tlmi_gpt2_build(out, host, &v, who);
    }
    tlm_tokenizer_free(base);
    gathered_free(&g);
    return status;
}

TLM_API int tlm_tokenizer_import(tlm_tokenizer **out, tlm_context *ctx,
                                 const char *path) {
    const char *who = "tlm_tokenizer_import";
    TLMI_CHECK_OUT(NULL, who, out, NULL);
    tlmi_host host;
    tlmi_tokenizer_host(&host, ctx);
    TLMI_CHECK_NOT_NULL(&host, who, path);
    struct stat st;
    if (stat(path, &st) != 0)
        return tlmi_fail(&host, TLM_E_IO, "%s: cannot read '%.200s': %s",
                         who, path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return import_directory(out, &host, path);
    return import_file(out, &host, path);
}

static int import_file(tlm_tokenizer **out, tlmi_host *host,
                       const char *path) {
    const char *who = "tlm_tokenizer_import";
    void *data = NULL;
    size_t size = 0;
    TLMI_TRY(read_file(host, path, &data, &size));
    const char *text = data;
    char file_who[300];
    snprintf(file_who, sizeof file_who, "%s: '%.250s'", who, path);
    size_t first = 0;
    while (first < size && (text[first] == ' ' || text[first] == '\n' ||
                            text[first] == '\r' || text[first] == '\t'))
        first++;
    int status;
    const unsigned char *bytes = data;
    if (size >= 8 && memcmp(text, "TLMTOKEN", 8) == 0)
        status = tlmi_tokenizer_read_image(out, host, data, size, file_who);
    /* llama2.c's tokenizer.bin starts with a small little-endian int32
     * (max_token_length); a ModelProto with its first field, pieces
     * (tag 0x0A), whose body cannot start with two zero bytes. Neither
     * text format has zero bytes. */
    else if (size >= 4 && bytes[2] == 0 && bytes[3] == 0)
        status = tlmi_sp_read_llama2c(out, host, bytes, size, file_who);
    else if (size >= 2 && bytes[0] == 0x0A)
        status = tlmi_sp_read_model(out, host, bytes, size, file_who);
    else if (first < size && text[first] == '{')
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "%s: a JSON file alone is not a tokenizer: give "
                           "the directory that holds encoder.json and "
                           "vocab.bpe (or vocab.json and merges.txt)",
                           file_who);
    else
        status = tlmi_tiktoken_read(out, host, text, size, path);
    tlmi_file_free_contents(host, data, size);
    return status;
}

/* --- export ---------------------------------------------------------------- */

/* Appends token id's bytes in the alphabet (UTF-8) to buf (room for
 * 2 * TLMI_CHUNK_MAX); returns the length. */
static size_t encode_token(const alphabet *a, const tlm_tokenizer *tok,
                           int32_t id, char *buf) {
    size_t n = 0;
    for (size_t i = tok->token_offsets[id]; i < tok->token_offsets[id + 1];
         i++)
        n += tlmi_utf8_encode(a->code_of[tok->token_data[i]],
                              (unsigned char *)buf + n);
    return n;
}

int tlmi_gpt2_export(const tlm_tokenizer *tok, const char *dir,
                     const char *vocab_name, const char *merges_name,
                     const char *who) {
    tlmi_host host = tok->host; /* tok is const: messages go to the thread */
    if (tok->kind != TLM_TOKENIZER_GPT2)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "%s: the tokenizer is of kind %d; only GPT-2 "
                                "tokenizers (kind 3) are written as "
                                "encoder.json + vocab.bpe",
                                who, (int)tok->kind);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tlmi_fail_thread(TLM_E_IO, "%s: cannot create the directory "
                                "'%.200s': %s", who, dir, strerror(errno));
    alphabet a;
    make_alphabet(&a);
    char left[2 * TLMI_CHUNK_MAX], right[2 * TLMI_CHUNK_MAX];
    tlmi_json_writer w;
    tlmi_json_writer_init(&w, &host);
    tlmi_json_write_object_begin(&w);
    for (int32_t id = 0; id < tok->vocab_size; id++) {
        tlmi_json_write_key_n(&w, left, encode_token(&a, tok, id, left));
        tlmi_json_write_int64(&w, id);
    }
    tlmi_json_write_object_end(&w);
    const char *json = NULL;
    size_t json_size = 0;
    int status = tlmi_json_writer_result(&w, &json, &json_size);
    /* vocab.bpe: a version line, then "left right" per merge. */
    char *merges = NULL;
    size_t merges_size = 0, merges_capacity = 0;
    static const char header[] = "#version: 0.2\n";
    if (status == TLM_OK &&
        tlmi_grow(&host, &merges, &merges_capacity, sizeof header,
                  1) != TLM_OK)
        status = TLM_E_NOMEM;
    if (status == TLM_OK) {
        memcpy(merges, header, sizeof header - 1);
        merges_size = sizeof header - 1;
    }
    for (int32_t r = 0; status == TLM_OK && r < tok->n_merges; r++) {
        size_t l = encode_token(&a, tok, tok->merges[2 * (size_t)r], left);
        size_t n = encode_token(&a, tok, tok->merges[2 * (size_t)r + 1], right);
        if (tlmi_grow(&host, &merges, &merges_capacity,
                      merges_size + l + n + 2, 1) != TLM_OK) {
            status = TLM_E_NOMEM;
            break;
        }
        memcpy(merges + merges_size, left, l);
        merges[merges_size + l] = ' ';
        memcpy(merges + merges_size + l + 1, right, n);
        merges[merges_size + l + 1 + n] = '\n';
        merges_size += l + n + 2;
    }
    char path[4096];
    if (status == TLM_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, merges_name);
        status = tlmi_file_write_atomic(&host, path, merges, merges_size);
    }
    if (status == TLM_OK) {
        snprintf(path, sizeof path, "%s/%s", dir, vocab_name);
        status = tlmi_file_write_atomic(&host, path, json, json_size);
    }
    if (status != TLM_OK)
        tlmi_fail_thread(status, "%s: %s", who,
                         host.last_error[0] != '\0' ? host.last_error
                                                    : "out of memory");
    tlmi_host_free(&host, merges, merges_capacity);
    tlmi_json_writer_release(&w);
    return status;
}

/* Writes `size` bytes made by a writer of tok's image to `path`
 * atomically; failures go to the calling thread. */
static int write_image(const tlm_tokenizer *tok, const char *path, int32_t format,
                       const char *who) {
    tlmi_host host = tok->host; /* tok is const */
    host.last_error[0] = '\0';
    unsigned char *data = NULL;
    size_t size = 0;
    int status = TLM_OK;
    if (format == TLM_TOKENIZER_FORMAT_LLAMA2C) {
        status = tlmi_sp_write_llama2c(tok, &host, &data, &size, who);
    } else {
        size = format == TLM_TOKENIZER_FORMAT_TLM ? tlmi_tokenizer_image_size(tok)
                                                  : tlmi_sp_model_size(tok);
        data = tlmi_host_alloc(&host, size, 64);
        if (data == NULL)
            status = tlmi_fail(&host, TLM_E_NOMEM,
                               "%s: out of memory for %zu bytes", who, size);
        else if (format == TLM_TOKENIZER_FORMAT_TLM)
            tlmi_tokenizer_write_image(tok, data);
        else
            tlmi_sp_model_write(tok, data);
    }
    if (status == TLM_OK) {
        status = tlmi_file_write_atomic(&host, path, data, size);
        if (status != TLM_OK)
            tlmi_fail_forward(&host, status, "%s", who);
    }
    if (data != NULL)
        tlmi_host_free(&host, data, size);
    if (status != TLM_OK)
        tlmi_fail_thread(status, "%s", host.last_error);
    return status;
}

static int check_sentencepiece(const tlm_tokenizer *tok, const char *who,
                               const char *what) {
    if (tok->kind == TLM_TOKENIZER_SENTENCEPIECE)
        return TLM_OK;
    return tlmi_fail_thread(TLM_E_UNSUPPORTED,
                            "%s: the tokenizer is of kind %d; only "
                            "SentencePiece tokenizers (kind 4) are written "
                            "as %s", who, (int)tok->kind, what);
}

TLM_API int tlm_tokenizer_export(const tlm_tokenizer *tok, const char *dir) {
    const char *who = "tlm_tokenizer_export";
    TLMI_CHECK_NOT_NULL(NULL, who, tok);
    TLMI_CHECK_NOT_NULL(NULL, who, dir);
    if (tok->kind != TLM_TOKENIZER_SENTENCEPIECE)
        return tlmi_gpt2_export(tok, dir, "encoder.json", "vocab.bpe", who);
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tlmi_fail_thread(TLM_E_IO, "%s: cannot create the directory "
                                "'%.200s': %s", who, dir, strerror(errno));
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.model", dir);
    return write_image(tok, path, TLM_TOKENIZER_FORMAT_SENTENCEPIECE, who);
}

TLM_API int tlm_tokenizer_export_as(const tlm_tokenizer *tok, const char *path,
                                    int32_t format) {
    const char *who = "tlm_tokenizer_export_as";
    TLMI_CHECK_NOT_NULL(NULL, who, tok);
    TLMI_CHECK_NOT_NULL(NULL, who, path);
    switch (format) {
    case TLM_TOKENIZER_FORMAT_TLM:
        return write_image(tok, path, format, who);
    case TLM_TOKENIZER_FORMAT_GPT2:
        if (tok->kind != TLM_TOKENIZER_GPT2)
            return tlmi_fail_thread(TLM_E_UNSUPPORTED,
                                    "%s: the tokenizer is of kind %d; only "
                                    "GPT-2 tokenizers (kind 3) are written as "
                                    "encoder.json + vocab.bpe",
                                    who, (int)tok->kind);
        return tlmi_gpt2_export(tok, path, "encoder.json", "vocab.bpe", who);
    case TLM_TOKENIZER_FORMAT_SENTENCEPIECE:
        TLMI_TRY(check_sentencepiece(tok, who, "tokenizer.model"));
        return write_image(tok, path, format, who);
    case TLM_TOKENIZER_FORMAT_LLAMA2C:
        TLMI_TRY(check_sentencepiece(tok, who, "llama2.c's tokenizer.bin"));
        return write_image(tok, path, format, who);
    default:
        return tlmi_fail_thread(TLM_E_INVALID,
                                "%s: format %d is not a tlm_tokenizer_format "
                                "(0 tlm, 1 GPT-2, 2 SentencePiece, 3 "
                                "llama2.c)", who, (int)format);
    }
}
