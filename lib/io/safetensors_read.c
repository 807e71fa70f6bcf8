/*
 * The safetensors reader: a strict parser of the header (a JSON object of
 * tensors and metadata), the tables it builds, and the copies of tensor
 * data into floats and ints. The writer is safetensors_write.c.
 */
#include "safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "base/half.h"
#include "json.h"

/* ------------------------------------------------------------------------
 * Element types and byte order
 */

static const struct {
    const char *name;
    int32_t dtype;
    size_t size;
} dtypes[] = {
    {"F32", TLMI_ST_F32, 4},
    {"I32", TLMI_ST_I32, 4},
    {"F16", TLMI_ST_F16, 2},
    {"BF16", TLMI_ST_BF16, 2},
};
#define N_DTYPES (sizeof dtypes / sizeof dtypes[0])

const char *tlmi_st_dtype_name(int32_t dtype) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].name;
    return NULL;
}

size_t tlmi_st_dtype_size(int32_t dtype) {
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtypes[i].dtype == dtype)
            return dtypes[i].size;
    return 0;
}

/* ------------------------------------------------------------------------
 * Reader
 */

typedef struct st_metadata {
    const char *key;
    size_t key_length;
    const char *value;
    size_t value_length;
} st_metadata;

#define SOURCE_MAX 160

struct tlmi_safetensors {
    tlmi_host *host;
    char source[SOURCE_MAX]; /* for messages: "safetensors 'path'" */
    size_t count;
    tlmi_safetensors_entry *entries;        /* by data offset */
    const tlmi_safetensors_entry **by_name; /* sorted by name */
    size_t metadata_count;
    st_metadata *metadata; /* sorted by key */
    char *strings;         /* names, keys and values */
    size_t strings_bytes;
    /* What tlmi_safetensors_open read or mapped. */
    void *buffer;
    size_t buffer_size;
    tlmi_file_mapping mapping;
};

const char *tlmi_st_printable(const char *s, size_t length, char *buf,
                              size_t size) {
    size_t n = length < size - 4 ? length : size - 4;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        buf[i] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (n < length) {
        memcpy(buf + n, "...", 3);
        n += 3;
    }
    buf[n] = '\0';
    return buf;
}

static void make_source(char *buf, size_t size, const char *source) {
    if (source == NULL)
        snprintf(buf, size, "safetensors");
    else
        snprintf(buf, size, "safetensors '%s'", source);
}

/* Everything the parse builds, released together on failure. */
typedef struct parse_state {
    tlmi_host *host;
    const char *source;
    tlmi_safetensors *st;
    uint64_t data_size; /* bytes after the header */
    const unsigned char *data_start;
    char *next_string;
    const char *header; /* the JSON text, for how numbers are written */
    size_t header_size;
} parse_state;

static void release_tables(tlmi_safetensors *st) {
    tlmi_host *host = st->host;
    tlmi_host_free(host, st->entries, st->count * sizeof *st->entries);
    tlmi_host_free(host, (void *)st->by_name, st->count * sizeof *st->by_name);
    tlmi_host_free(host, st->metadata,
                   st->metadata_count * sizeof *st->metadata);
    tlmi_host_free(host, st->strings, st->strings_bytes);
}

static const char *copy_string(parse_state *ps, const char *s, size_t n) {
    char *copy = ps->next_string;
    if (n > 0)
        memcpy(copy, s, n);
    copy[n] = '\0';
    ps->next_string += n + 1;
    return copy;
}

/* An integer >= 0 from the header, or a message about `field`. */
static int header_count(parse_state *ps, const char *name,
                        const char *field, const tlmi_json_value *value,
                        uint64_t *out) {
    if (value->type != TLMI_JSON_NUMBER)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': %s is %s %s at header byte %zu; "
                         "expected an integer >= 0",
                         ps->source, name, field,
                         value->type == TLMI_JSON_ARRAY ||
                                 value->type == TLMI_JSON_OBJECT
                             ? "an"
                             : "a",
                         tlmi_json_type_name(value->type), value->offset);
    /* Digits only, as the reference reader (serde into usize) demands:
     * 75.0, 7.5e1 and -1 are refused, although the JSON value of the first
     * two is an integer. */
    size_t end = value->offset;
    while (end < ps->header_size && ps->header[end] >= '0' && ps->header[end] <= '9')
        end++;
    const int digits_only =
        end > value->offset &&
        (end == ps->header_size ||
         (ps->header[end] != '.' && ps->header[end] != 'e' && ps->header[end] != 'E'));
    if (!value->is_int64 || value->as.number.integer < 0 || !digits_only) {
        char written[48];
        size_t length = value->offset;
        while (length < ps->header_size && length - value->offset < 40 &&
               strchr("0123456789+-.eE", ps->header[length]) != NULL)
            length++;
        tlmi_st_printable(ps->header + value->offset, length - value->offset,
                          written, sizeof written);
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': %s is %s at header byte %zu; "
                         "expected an integer >= 0 written with digits only",
                         ps->source, name, field, written, value->offset);
    }
    *out = (uint64_t)value->as.number.integer;
    return TLM_OK;
}

static const tlmi_json_value *required_field(parse_state *ps,
                                             const tlmi_json_value *object,
                                             const char *name,
                                             const char *field, int32_t type,
                                             int *status) {
    const tlmi_json_value *value = tlmi_json_object_get(object, field);
    if (value == NULL) {
        *status = tlmi_fail(ps->host, TLM_E_FORMAT,
                            "%s: tensor '%s': the entry at header byte %zu "
                            "has no \"%s\"",
                            ps->source, name, object->offset, field);
        return NULL;
    }
    if (value->type != type) {
        *status = tlmi_fail(
            ps->host, TLM_E_FORMAT,
            "%s: tensor '%s': \"%s\" is %s %s at header byte %zu; expected "
            "%s %s",
            ps->source, name, field,
            value->type == TLMI_JSON_ARRAY || value->type == TLMI_JSON_OBJECT
                ? "an"
                : "a",
            tlmi_json_type_name(value->type), value->offset,
            type == TLMI_JSON_ARRAY ? "an" : "a", tlmi_json_type_name(type));
        return NULL;
    }
    *status = TLM_OK;
    return value;
}

static void shape_text(const tlmi_safetensors_entry *e, char *buf,
                       size_t size) {
    size_t used = (size_t)snprintf(buf, size, "[");
    for (int32_t i = 0; i < e->ndim && used < size; i++)
        used += (size_t)snprintf(buf + used, size - used, "%s%lld",
                                 i ? ", " : "", (long long)e->shape[i]);
    if (used < size)
        snprintf(buf + used, size - used, "]");
}

static int parse_tensor(parse_state *ps, const tlmi_json_member *member,
                        tlmi_safetensors_entry *e) {
    char name[132];
    tlmi_st_printable(member->key, member->key_length, name, sizeof name);
    const tlmi_json_value *info = &member->value;
    int status = TLM_OK;
    if (memchr(member->key, '\0', member->key_length) != NULL)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: the tensor name at header byte %zu contains a "
                         "NUL character",
                         ps->source, member->key_offset);
    if (info->type != TLMI_JSON_OBJECT)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': the entry is %s %s at header "
                         "byte %zu; expected an object with \"dtype\", "
                         "\"shape\" and \"data_offsets\"",
                         ps->source, name,
                         info->type == TLMI_JSON_ARRAY ? "an" : "a",
                         tlmi_json_type_name(info->type), info->offset);

    /* dtype */
    const tlmi_json_value *dtype =
        required_field(ps, info, name, "dtype", TLMI_JSON_STRING, &status);
    if (dtype == NULL)
        return status;
    e->dtype = -1;
    size_t element = 0;
    for (size_t i = 0; i < N_DTYPES; i++)
        if (dtype->as.string.length == strlen(dtypes[i].name) &&
            memcmp(dtype->as.string.bytes, dtypes[i].name,
                   dtype->as.string.length) == 0) {
            e->dtype = dtypes[i].dtype;
            element = dtypes[i].size;
        }
    if (e->dtype < 0) {
        char text[40];
        return tlmi_fail(ps->host, TLM_E_UNSUPPORTED,
                         "%s: tensor '%s': dtype \"%s\" is not supported "
                         "(tlm reads F32, I32, F16 and BF16)",
                         ps->source, name,
                         tlmi_st_printable(dtype->as.string.bytes,
                                           dtype->as.string.length, text,
                                           sizeof text));
    }

    /* shape */
    const tlmi_json_value *shape =
        required_field(ps, info, name, "shape", TLMI_JSON_ARRAY, &status);
    if (shape == NULL)
        return status;
    size_t ndim = shape->as.array.count;
    if (ndim > TLM_MAX_DIMS)
        return tlmi_fail(ps->host, TLM_E_UNSUPPORTED,
                         "%s: tensor '%s': the shape at header byte %zu has "
                         "%zu dimensions; tlm tensors have at most %d",
                         ps->source, name, shape->offset, ndim,
                         TLM_MAX_DIMS);
    e->ndim = (int32_t)ndim;
    for (int i = 0; i < TLM_MAX_DIMS; i++)
        e->shape[i] = 1;
    /* The byte size must fit in a size_t and an int64. */
    uint64_t limit = SIZE_MAX < (uint64_t)INT64_MAX ? (uint64_t)SIZE_MAX
                                                     : (uint64_t)INT64_MAX;
    uint64_t numel = 1;
    int overflow = 0;
    for (size_t i = 0; i < ndim; i++) {
        char field[16];
        snprintf(field, sizeof field, "shape[%zu]", i);
        uint64_t dim = 0;
        status = header_count(ps, name, field, &shape->as.array.items[i], &dim);
        if (status != TLM_OK)
            return status;
        e->shape[i] = (int64_t)dim;
        if (dim != 0 && numel > limit / element / dim)
            overflow = 1;
        else
            numel *= dim;
    }
    if (overflow && numel != 0) {
        char text[120];
        shape_text(e, text, sizeof text);
        return tlmi_fail(ps->host, TLM_E_OVERFLOW,
                         "%s: tensor '%s': shape %s has too many elements "
                         "(its byte size overflows)",
                         ps->source, name, text);
    }
    if (overflow) /* a zero dimension makes the product 0 anyway */
        numel = 0;
    e->numel = (int64_t)numel;
    e->nbytes = (size_t)(numel * element);

    /* data_offsets */
    const tlmi_json_value *offsets = required_field(
        ps, info, name, "data_offsets", TLMI_JSON_ARRAY, &status);
    if (offsets == NULL)
        return status;
    if (offsets->as.array.count != 2)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': data_offsets at header byte %zu "
                         "has %zu numbers; expected [begin, end]",
                         ps->source, name, offsets->offset,
                         offsets->as.array.count);
    status = header_count(ps, name, "data_offsets[0]",
                          &offsets->as.array.items[0], &e->begin);
    if (status == TLM_OK)
        status = header_count(ps, name, "data_offsets[1]",
                              &offsets->as.array.items[1], &e->end);
    if (status != TLM_OK)
        return status;
    if (e->end < e->begin)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] end "
                         "before they begin",
                         ps->source, name, (unsigned long long)e->begin,
                         (unsigned long long)e->end);
    if (e->end > ps->data_size)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] run "
                         "past the end of the data section (%llu bytes)",
                         ps->source, name, (unsigned long long)e->begin,
                         (unsigned long long)e->end,
                         (unsigned long long)ps->data_size);
    if (e->end - e->begin != (uint64_t)e->nbytes) {
        char text[120];
        shape_text(e, text, sizeof text);
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: tensor '%s': data_offsets [%llu, %llu] hold "
                         "%llu bytes but %s %s needs %zu",
                         ps->source, name, (unsigned long long)e->begin,
                         (unsigned long long)e->end,
                         (unsigned long long)(e->end - e->begin),
                         tlmi_st_dtype_name(e->dtype), text, e->nbytes);
    }
    e->data = ps->data_start + e->begin;
    e->name = copy_string(ps, member->key, member->key_length);
    e->name_length = member->key_length;
    return TLM_OK;
}

static int parse_metadata(parse_state *ps, const tlmi_json_value *object,
                          st_metadata *out) {
    if (object->type != TLMI_JSON_OBJECT)
        return tlmi_fail(ps->host, TLM_E_FORMAT,
                         "%s: __metadata__ is %s %s at header byte %zu; "
                         "expected an object of strings",
                         ps->source,
                         object->type == TLMI_JSON_ARRAY ? "an" : "a",
                         tlmi_json_type_name(object->type), object->offset);
    for (size_t i = 0; i < object->as.object.count; i++) {
        const tlmi_json_member *m = &object->as.object.members[i];
        if (m->value.type != TLMI_JSON_STRING) {
            char key[100];
            return tlmi_fail(ps->host, TLM_E_FORMAT,
                             "%s: __metadata__ key '%s' holds %s %s at "
                             "header byte %zu; metadata values must be "
                             "strings",
                             ps->source,
                             tlmi_st_printable(m->key, m->key_length, key,
                                               sizeof key),
                             m->value.type == TLMI_JSON_ARRAY ||
                                     m->value.type == TLMI_JSON_OBJECT
                                 ? "an"
                                 : "a",
                             tlmi_json_type_name(m->value.type),
                             m->value.offset);
        }
        out[i].key = copy_string(ps, m->key, m->key_length);
        out[i].key_length = m->key_length;
        out[i].value = copy_string(ps, m->value.as.string.bytes,
                                   m->value.as.string.length);
        out[i].value_length = m->value.as.string.length;
    }
    return TLM_OK;
}

static int compare_offsets(const void *a, const void *b) {
    const tlmi_safetensors_entry *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return tlmi_json_key_compare(x->name, x->name_length, y->name, y->name_length);
}

static int compare_names(const void *a, const void *b) {
    const tlmi_safetensors_entry *x = *(const tlmi_safetensors_entry *const *)a;
    const tlmi_safetensors_entry *y = *(const tlmi_safetensors_entry *const *)b;
    return tlmi_json_key_compare(x->name, x->name_length, y->name, y->name_length);
}

static int compare_metadata(const void *a, const void *b) {
    const st_metadata *x = a, *y = b;
    return tlmi_json_key_compare(x->key, x->key_length, y->key, y->key_length);
}

/* bsearch orders of a tlmi_json_key against by_name and metadata. */
static int find_name(const void *key, const void *element) {
    const tlmi_json_key *k = key;
    const tlmi_safetensors_entry *e = *(const tlmi_safetensors_entry *const *)element;
    return tlmi_json_key_compare(k->bytes, k->length, e->name, e->name_length);
}

static int find_metadata(const void *key, const void *element) {
    const tlmi_json_key *k = key;
    const st_metadata *m = element;
    return tlmi_json_key_compare(k->bytes, k->length, m->key, m->key_length);
}

/* Fills `st` from the parsed header. */
static int build(parse_state *ps, const tlmi_json_value *root) {
    tlmi_safetensors *st = ps->st;
    tlmi_host *host = ps->host;
    if (root->type != TLMI_JSON_OBJECT)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: the header is %s %s; expected an object",
                         ps->source,
                         root->type == TLMI_JSON_ARRAY ? "an" : "a",
                         tlmi_json_type_name(root->type));
    /* Count, and size the strings. Every size here is bounded by the
     * header's, which is at most 100 MB. */
    const tlmi_json_value *metadata = NULL;
    size_t strings = 0;
    for (size_t i = 0; i < root->as.object.count; i++) {
        const tlmi_json_member *m = &root->as.object.members[i];
        if (m->key_length == 12 && memcmp(m->key, "__metadata__", 12) == 0) {
            metadata = &m->value;
            for (size_t j = 0; j < tlmi_json_count(metadata); j++) {
                const tlmi_json_member *pair = &metadata->as.object.members[j];
                strings += pair->key_length + 1;
                if (pair->value.type == TLMI_JSON_STRING)
                    strings += pair->value.as.string.length + 1;
            }
        } else {
            st->count++;
            strings += m->key_length + 1;
        }
    }
    size_t metadata_count = metadata ? tlmi_json_count(metadata) : 0;
    if (st->count > 0) {
        st->entries = tlmi_host_alloc(host, st->count * sizeof *st->entries,
                                      _Alignof(tlmi_safetensors_entry));
        st->by_name = st->entries ? tlmi_host_alloc(host,
                                                    st->count * sizeof *st->by_name,
                                                    _Alignof(void *))
                                  : NULL;
        if (st->by_name == NULL)
            goto nomem;
        memset(st->entries, 0, st->count * sizeof *st->entries);
    }
    if (metadata_count > 0) {
        st->metadata = tlmi_host_alloc(host, metadata_count * sizeof *st->metadata,
                                       _Alignof(st_metadata));
        if (st->metadata == NULL)
            goto nomem;
        st->metadata_count = metadata_count;
    }
    if (strings > 0) {
        st->strings = tlmi_host_alloc(host, strings, 1);
        if (st->strings == NULL)
            goto nomem;
        st->strings_bytes = strings;
    }
    ps->next_string = st->strings;

    /* Tensors and metadata, in header order so the first problem in the
     * file is the one reported. */
    size_t k = 0;
    for (size_t i = 0; i < root->as.object.count; i++) {
        const tlmi_json_member *m = &root->as.object.members[i];
        int status = &m->value == metadata
                         ? parse_metadata(ps, metadata, st->metadata)
                         : parse_tensor(ps, m, &st->entries[k++]);
        if (status != TLM_OK)
            return status;
    }

    /* The layout the reference implementation demands: the tensors,
     * sorted by their offsets, cover the data section exactly: the first
     * begins at 0, each begins where the one before ends, the last ends
     * at the end of the file. No holes, no overlaps, no bytes after. */
    if (st->count > 0)
        qsort(st->entries, st->count, sizeof *st->entries, compare_offsets);
    uint64_t covered = 0;
    for (size_t i = 0; i < st->count; i++) {
        const tlmi_safetensors_entry *e = &st->entries[i];
        if (e->begin != covered) {
            char a[132], b[132];
            if (i == 0)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: the first tensor by offset, '%s', has "
                                 "data_offsets [%llu, %llu]; it must begin at "
                                 "0 (the tensors must cover the data section "
                                 "exactly)",
                                 ps->source,
                                 tlmi_st_printable(e->name, e->name_length, b, sizeof b),
                                 (unsigned long long)e->begin,
                                 (unsigned long long)e->end);
            const tlmi_safetensors_entry *p = &st->entries[i - 1];
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: tensors '%s' (data_offsets [%llu, %llu]) "
                             "and '%s' ([%llu, %llu]) %s (the tensors must "
                             "cover the data section exactly)",
                             ps->source,
                             tlmi_st_printable(p->name, p->name_length, a, sizeof a),
                             (unsigned long long)p->begin,
                             (unsigned long long)p->end,
                             tlmi_st_printable(e->name, e->name_length, b, sizeof b),
                             (unsigned long long)e->begin,
                             (unsigned long long)e->end,
                             e->begin < covered ? "overlap" : "leave a hole between them");
        }
        covered = e->end;
        st->by_name[i] = e;
    }
    if (covered != ps->data_size)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: the data section has %llu bytes, its tensors "
                         "cover %llu; the rest, from file byte %llu, belongs "
                         "to no tensor (a wrong header length, or a truncated "
                         "or appended file)",
                         ps->source, (unsigned long long)ps->data_size,
                         (unsigned long long)covered,
                         (unsigned long long)(8 + ps->header_size + covered));
    if (st->count > 0)
        qsort(st->by_name, st->count, sizeof *st->by_name, compare_names);
    if (st->metadata_count > 0)
        qsort(st->metadata, st->metadata_count, sizeof *st->metadata,
              compare_metadata);
    return TLM_OK;

nomem:
    return tlmi_fail(host, TLM_E_NOMEM,
                     "%s: out of memory (tables for %zu tensors)", ps->source,
                     st->count);
}

int tlmi_safetensors_parse(tlmi_host *host, const char *source,
                           const void *data, size_t size,
                           tlmi_safetensors **out) {
    TLMI_CHECK_OUT(host, "safetensors", out, NULL);
    TLMI_CHECK_NOT_NULL(host, "safetensors", host);
    if (data == NULL && size > 0)
        return tlmi_fail(host, TLM_E_INVALID, "safetensors: data is NULL");
    char name[SOURCE_MAX];
    make_source(name, sizeof name, source);
    const unsigned char *bytes = data;

    /* A text file, or anything else, fails one of the first two tests:
     * its first 8 bytes read as a length are huge, and byte 8 is no '{'. */
    char file[SOURCE_MAX + 8];
    if (source == NULL)
        snprintf(file, sizeof file, "the data");
    else
        snprintf(file, sizeof file, "'%s'", source);
    if (size < 8)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s is not a safetensors file (%zu bytes; the "
                         "header length alone takes 8)",
                         file, size);
    uint64_t header = tlmi_get_u64(bytes);
    if (header > size - 8)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s is not a safetensors file (its first 8 bytes "
                         "give a header length of %llu, but %zu bytes "
                         "follow them)",
                         file, (unsigned long long)header, size - 8);
    if (header > TLMI_ST_MAX_HEADER)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: the header length %llu is more than the limit "
                         "of %llu bytes",
                         name, (unsigned long long)header,
                         (unsigned long long)TLMI_ST_MAX_HEADER);
    if (header == 0 || bytes[8] != '{')
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s is not a safetensors file (its header, at byte "
                         "8, does not start with '{')",
                         file);

    tlmi_json_limits limits = {(size_t)header ? (size_t)header : 1, 64};
    tlmi_json_doc *doc = NULL;
    int status = tlmi_json_parse(host, (const char *)bytes + 8, (size_t)header,
                                 &limits, &doc);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status,
                                 "%s: JSON header (from file byte 8)", name);

    tlmi_safetensors *st = tlmi_host_alloc(host, sizeof *st,
                                           _Alignof(tlmi_safetensors));
    if (st == NULL) {
        tlmi_json_free(doc);
        return tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory", name);
    }
    memset(st, 0, sizeof *st);
    st->host = host;
    memcpy(st->source, name, sizeof name);
    parse_state ps = {host, st->source, st, (uint64_t)(size - 8 - header),
                      bytes + 8 + header, NULL, (const char *)bytes + 8,
                      (size_t)header};
    status = build(&ps, tlmi_json_root(doc));
    tlmi_json_free(doc);
    if (status != TLM_OK) {
        release_tables(st);
        tlmi_host_free(host, st, sizeof *st);
        return status;
    }
    *out = st;
    return TLM_OK;
}

int tlmi_safetensors_open(tlmi_host *host, const char *path, int mode,
                          tlmi_safetensors **out) {
    TLMI_CHECK_OUT(host, "safetensors", out, NULL);
    TLMI_CHECK_NOT_NULL(host, "safetensors", host);
    if (mode != TLMI_ST_OPEN_READ && mode != TLMI_ST_OPEN_MAP)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors: open mode %d is neither READ (0) nor "
                         "MAP (1)",
                         mode);
    tlmi_safetensors *st = NULL;
    int status;
    if (mode == TLMI_ST_OPEN_MAP) {
        tlmi_file_mapping mapping;
        status = tlmi_file_map_readonly(host, path, &mapping);
        if (status != TLM_OK)
            return status;
        status = tlmi_safetensors_parse(host, path, mapping.data,
                                        mapping.size, &st);
        if (status != TLM_OK) {
            tlmi_file_unmap(&mapping);
            return status;
        }
        st->mapping = mapping;
    } else {
        void *buffer = NULL;
        size_t size = 0;
        status = tlmi_file_read_all(host, path, SIZE_MAX - 1, &buffer, &size);
        if (status != TLM_OK)
            return status;
        status = tlmi_safetensors_parse(host, path, buffer, size, &st);
        if (status != TLM_OK) {
            tlmi_file_free_contents(host, buffer, size);
            return status;
        }
        st->buffer = buffer;
        st->buffer_size = size;
    }
    *out = st;
    return TLM_OK;
}

void tlmi_safetensors_free(tlmi_safetensors *st) {
    if (st == NULL)
        return;
    tlmi_host *host = st->host;
    release_tables(st);
    tlmi_file_free_contents(host, st->buffer, st->buffer_size);
    tlmi_file_unmap(&st->mapping);
    tlmi_host_free(host, st, sizeof *st);
}

size_t tlmi_safetensors_count(const tlmi_safetensors *st) {
    return st ? st->count : 0;
}

const tlmi_safetensors_entry *tlmi_safetensors_entry_at(
    const tlmi_safetensors *st, size_t index) {
    if (st == NULL || index >= st->count)
        return NULL;
    return &st->entries[index];
}

const tlmi_safetensors_entry *tlmi_safetensors_find(
    const tlmi_safetensors *st, const char *name) {
    if (st == NULL || name == NULL)
        return NULL;
    if (st->count == 0)
        return NULL; /* bsearch takes no NULL table */
    const tlmi_json_key wanted = {name, strlen(name)};
    const tlmi_safetensors_entry *const *found =
        bsearch(&wanted, st->by_name, st->count, sizeof *st->by_name, find_name);
    return found != NULL ? *found : NULL;
}

const char *tlmi_safetensors_metadata(const tlmi_safetensors *st,
                                      const char *key, size_t *length) {
    if (st == NULL || key == NULL)
        return NULL;
    if (st->metadata_count == 0)
        return NULL; /* bsearch takes no NULL table */
    const tlmi_json_key wanted = {key, strlen(key)};
    const st_metadata *found = bsearch(&wanted, st->metadata, st->metadata_count,
                                       sizeof *st->metadata, find_metadata);
    if (found == NULL)
        return NULL;
    if (length != NULL)
        *length = found->value_length;
    return found->value;
}

size_t tlmi_safetensors_metadata_count(const tlmi_safetensors *st) {
    return st ? st->metadata_count : 0;
}

int tlmi_safetensors_metadata_at(const tlmi_safetensors *st, size_t index,
                                 const char **key, const char **value,
                                 size_t *value_length) {
    if (st == NULL || key == NULL || value == NULL)
        return tlmi_fail(st ? st->host : NULL, TLM_E_INVALID,
                         "safetensors metadata: NULL argument");
    if (index >= st->metadata_count)
        return tlmi_fail(st->host, TLM_E_RANGE,
                         "%s: metadata index %zu is outside 0..%zu",
                         st->source, index, st->metadata_count);
    *key = st->metadata[index].key;
    *value = st->metadata[index].value;
    if (value_length != NULL)
        *value_length = st->metadata[index].value_length;
    return TLM_OK;
}

int64_t tlmi_safetensors_first_nonfinite(const tlmi_safetensors_entry *entry,
                                         const char **value) {
    /* Non-finite: every exponent bit set (F32 8 bits, F16 5, BF16 8); a
     * NaN has fraction bits too. */
    const unsigned char *p = entry->data;
    for (int64_t i = 0; i < entry->numel; i++) {
        uint32_t exponent, fraction, negative;
        if (entry->dtype == TLMI_ST_F32) {
            const uint32_t bits = tlmi_get_u32(p + 4 * (size_t)i);
            exponent = (bits & 0x7f800000u) == 0x7f800000u;
            fraction = bits & 0x7fffffu;
            negative = bits >> 31;
        } else if (entry->dtype == TLMI_ST_F16) {
            const uint32_t bits = tlmi_get_u16(p + 2 * (size_t)i);
            exponent = (bits & 0x7c00u) == 0x7c00u;
            fraction = bits & 0x3ffu;
            negative = bits >> 15;
        } else if (entry->dtype == TLMI_ST_BF16) {
            const uint32_t bits = tlmi_get_u16(p + 2 * (size_t)i);
            exponent = (bits & 0x7f80u) == 0x7f80u;
            fraction = bits & 0x7fu;
            negative = bits >> 15;
        } else {
            return -1; /* integers are always finite */
        }
        if (exponent) {
            *value = fraction != 0 ? "NaN" : negative ? "-infinity" : "infinity";
            return i;
        }
    }
    return -1;
}

static int check_copy(const tlmi_safetensors *st,
                      const tlmi_safetensors_entry *entry, const void *dst,
                      int64_t count, const char *what) {
    tlmi_host *host = st ? st->host : NULL;
    if (st == NULL || entry == NULL)
        return tlmi_fail(host, TLM_E_INVALID, "%s: st or entry is NULL", what);
    char name[132];
    tlmi_st_printable(entry->name, entry->name_length, name, sizeof name);
    if (count != entry->numel)
        return tlmi_fail(host, TLM_E_SHAPE,
                         "%s: tensor '%s' has %lld values, not %lld", what,
                         name, (long long)entry->numel, (long long)count);
    if (dst == NULL && count > 0)
        return tlmi_fail(host, TLM_E_INVALID, "%s: dst is NULL", what);
    return TLM_OK;
}

/* n little-endian 4-byte elements (F32 or I32) from the file into dst,
 * bit for bit. */
static void copy_le32(void *dst, const unsigned char *p, size_t n) {
    if (tlmi_host_is_little_endian()) {
        if (n > 0)
            memcpy(dst, p, n * 4);
        return;
    }
    unsigned char *out = dst;
    for (size_t i = 0; i < n; i++) {
        const uint32_t bits = tlmi_get_u32(p + 4 * i);
        memcpy(out + 4 * i, &bits, 4);
    }
}

/* The tensor holds another dtype than the copy makes (`wanted`). */
static int wrong_dtype(const tlmi_safetensors *st,
                       const tlmi_safetensors_entry *entry,
                       const char *wanted) {
    char name[132];
    return tlmi_fail(st->host, TLM_E_FORMAT, "%s: tensor '%s' holds %s, not %s",
                     st->source,
                     tlmi_st_printable(entry->name, entry->name_length, name,
                                       sizeof name),
                     tlmi_st_dtype_name(entry->dtype), wanted);
}

int tlmi_safetensors_copy_f32(const tlmi_safetensors *st,
                              const tlmi_safetensors_entry *entry,
                              float *dst, int64_t count) {
    TLMI_TRY(check_copy(st, entry, dst, count, "safetensors copy_f32"));
    const unsigned char *p = entry->data;
    size_t n = (size_t)count;
    switch (entry->dtype) {
    case TLMI_ST_F32:
        copy_le32(dst, p, n);
        return TLM_OK;
    case TLMI_ST_F16:
        for (size_t i = 0; i < n; i++, p += 2)
            dst[i] = tlmi_half_to_float(tlmi_get_u16(p));
        return TLM_OK;
    case TLMI_ST_BF16:
        for (size_t i = 0; i < n; i++, p += 2)
            dst[i] = tlmi_bf16_to_float(tlmi_get_u16(p));
        return TLM_OK;
    default:
        return wrong_dtype(st, entry, "floats");
    }
}

int tlmi_safetensors_copy_i32(const tlmi_safetensors *st,
                              const tlmi_safetensors_entry *entry,
                              int32_t *dst, int64_t count) {
    TLMI_TRY(check_copy(st, entry, dst, count, "safetensors copy_i32"));
    if (entry->dtype != TLMI_ST_I32)
        return wrong_dtype(st, entry, "I32");
    copy_le32(dst, entry->data, (size_t)count);
    return TLM_OK;
}

void tlmi_safetensors_release(const tlmi_safetensors *st, const void *data,
                              size_t size) {
    if (st != NULL)
        tlmi_file_mapping_release(&st->mapping, data, size);
}
