/*
 * The safetensors writer: tensors and metadata added by name, then the
 * header and the data written to a file or to memory. The reader is
 * safetensors_read.c.
 */
#include "safetensors.h"

#include <string.h>

#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "base/grow.h"
#include "base/utf8.h"
#include "json.h"

/* ------------------------------------------------------------------------
 * Writer
 */

typedef struct st_item {
    char *name; /* host memory, name_length + 1 bytes */
    size_t name_length;
    int32_t dtype;
    int32_t ndim;
    int64_t shape[TLM_MAX_DIMS];
    const void *data;
    size_t nbytes;
    tlmi_st_produce_fn produce; /* with data NULL: fills the bytes on write */
    void *produce_user;
} st_item;

typedef struct st_pair {
    char *key; /* one block: key, NUL, value, NUL */
    size_t key_length;
    size_t value_length;
} st_pair;

struct tlmi_safetensors_writer {
    tlmi_host *host;
    st_item *items;
    size_t count, capacity;
    st_pair *pairs;
    size_t pair_count, pair_capacity;
};

int tlmi_safetensors_writer_create(tlmi_host *host,
                                   tlmi_safetensors_writer **out) {
    if (out == NULL)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: out is NULL");
    *out = NULL;
    if (host == NULL)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: host is NULL");
    tlmi_safetensors_writer *w =
        tlmi_host_alloc(host, sizeof *w, _Alignof(tlmi_safetensors_writer));
    if (w == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "safetensors writer: out of memory");
    memset(w, 0, sizeof *w);
    w->host = host;
    *out = w;
    return TLM_OK;
}

void tlmi_safetensors_writer_free(tlmi_safetensors_writer *w) {
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->count; i++)
        tlmi_host_free(w->host, w->items[i].name, w->items[i].name_length + 1);
    for (size_t i = 0; i < w->pair_count; i++)
        tlmi_host_free(w->host, w->pairs[i].key,
                       w->pairs[i].key_length + w->pairs[i].value_length + 2);
    tlmi_host_free(w->host, w->items, w->capacity * sizeof *w->items);
    tlmi_host_free(w->host, w->pairs, w->pair_capacity * sizeof *w->pairs);
    tlmi_host_free(w->host, w, sizeof *w);
}

/* Makes room for one more element after `count` in a growable array. */
static int grow(tlmi_host *host, void *array, size_t *capacity, size_t count,
                size_t element) {
    int status = tlmi_grow(host, array, capacity, count + 1, element);
    if (status == TLM_E_OVERFLOW)
        return tlmi_fail(host, TLM_E_OVERFLOW,
                         "safetensors writer: too many entries");
    if (status != TLM_OK)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "safetensors writer: out of memory (%zu entries)",
                         tlmi_grow_capacity(*capacity, count + 1));
    return TLM_OK;
}

static int check_utf8(tlmi_host *host, const char *what, const char *s,
                      size_t n) {
    size_t bad = 0;
    if (!tlmi_utf8_valid((const unsigned char *)s, n, &bad))
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: %s is not valid UTF-8 (byte "
                         "%zu)",
                         what, bad);
    return TLM_OK;
}

static int add_item(tlmi_safetensors_writer *w, const char *name,
                    int32_t dtype, int32_t ndim, const int64_t *shape,
                    const void *data, tlmi_st_produce_fn produce,
                    void *produce_user) {
    if (w == NULL)
        return tlmi_fail(NULL, TLM_E_INVALID,
                         "safetensors writer: writer is NULL");
    tlmi_host *host = w->host;
    if (name == NULL || name[0] == '\0')
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: tensor name is %s",
                         name ? "empty" : "NULL");
    size_t length = strlen(name);
    char shown[132];
    tlmi_st_printable(name, length, shown, sizeof shown);
    TLMI_TRY(check_utf8(host, "a tensor name", name, length));
    if (strcmp(name, "__metadata__") == 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: \"__metadata__\" is reserved "
                         "and cannot name a tensor");
    for (size_t i = 0; i < w->count; i++)
        if (w->items[i].name_length == length &&
            memcmp(w->items[i].name, name, length) == 0)
            return tlmi_fail(host, TLM_E_INVALID,
                             "safetensors writer: tensor '%s' was already "
                             "added",
                             shown);
    size_t element = tlmi_st_dtype_size(dtype);
    if (element == 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: tensor '%s': dtype %d is not "
                         "a tlmi_st_dtype",
                         shown, (int)dtype);
    if (ndim < 0 || ndim > TLM_MAX_DIMS)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: tensor '%s': ndim %d is "
                         "outside 0..%d",
                         shown, (int)ndim, TLM_MAX_DIMS);
    if (shape == NULL && ndim > 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: tensor '%s': shape is NULL",
                         shown);
    uint64_t limit = SIZE_MAX < (uint64_t)INT64_MAX ? (uint64_t)SIZE_MAX
                                                     : (uint64_t)INT64_MAX;
    uint64_t numel = 1;
    int overflow = 0;
    for (int32_t i = 0; i < ndim; i++) {
        if (shape[i] < 0)
            return tlmi_fail(host, TLM_E_INVALID,
                             "safetensors writer: tensor '%s': shape[%d] is "
                             "%lld; sizes must be >= 0",
                             shown, (int)i, (long long)shape[i]);
        uint64_t dim = (uint64_t)shape[i];
        if (dim != 0 && numel > limit / element / dim)
            overflow = 1;
        else
            numel *= dim;
    }
    if (overflow && numel != 0)
        return tlmi_fail(host, TLM_E_OVERFLOW,
                         "safetensors writer: tensor '%s': the shape's byte "
                         "size overflows",
                         shown);
    if (overflow)
        numel = 0;
    size_t nbytes = (size_t)(numel * element);
    if (data == NULL && produce == NULL && nbytes > 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: tensor '%s': data is NULL",
                         shown);
    int status = grow(host, &w->items, &w->capacity, w->count,
                      sizeof *w->items);
    if (status != TLM_OK)
        return status;
    char *copy = tlmi_host_alloc(host, length + 1, 1);
    if (copy == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "safetensors writer: tensor '%s': out of memory",
                         shown);
    memcpy(copy, name, length + 1);
    st_item *item = &w->items[w->count++];
    memset(item, 0, sizeof *item);
    item->name = copy;
    item->name_length = length;
    item->dtype = dtype;
    item->ndim = ndim;
    for (int32_t i = 0; i < ndim; i++)
        item->shape[i] = shape[i];
    item->data = data;
    item->nbytes = nbytes;
    item->produce = produce;
    item->produce_user = produce_user;
    return TLM_OK;
}

int tlmi_safetensors_writer_add(tlmi_safetensors_writer *w, const char *name,
                                int32_t dtype, int32_t ndim,
                                const int64_t *shape, const void *data) {
    return add_item(w, name, dtype, ndim, shape, data, NULL, NULL);
}

int tlmi_safetensors_writer_add_produced(tlmi_safetensors_writer *w,
                                         const char *name, int32_t dtype,
                                         int32_t ndim, const int64_t *shape,
                                         tlmi_st_produce_fn produce,
                                         void *user) {
    if (produce == NULL)
        return tlmi_fail(w ? w->host : NULL, TLM_E_INVALID,
                         "safetensors writer: produce is NULL");
    return add_item(w, name, dtype, ndim, shape, NULL, produce, user);
}

int tlmi_safetensors_writer_add_metadata(tlmi_safetensors_writer *w,
                                         const char *key, const char *value) {
    if (w == NULL)
        return tlmi_fail(NULL, TLM_E_INVALID,
                         "safetensors writer: writer is NULL");
    tlmi_host *host = w->host;
    if (key == NULL || value == NULL)
        return tlmi_fail(host, TLM_E_INVALID,
                         "safetensors writer: metadata %s is NULL",
                         key ? "value" : "key");
    size_t key_length = strlen(key), value_length = strlen(value);
    char shown[100];
    tlmi_st_printable(key, key_length, shown, sizeof shown);
    TLMI_TRY(check_utf8(host, "a metadata key", key, key_length));
    TLMI_TRY(check_utf8(host, "a metadata value", value, value_length));
    for (size_t i = 0; i < w->pair_count; i++)
        if (w->pairs[i].key_length == key_length &&
            memcmp(w->pairs[i].key, key, key_length) == 0)
            return tlmi_fail(host, TLM_E_INVALID,
                             "safetensors writer: metadata key '%s' was "
                             "already added",
                             shown);
    if (key_length > SIZE_MAX / 2 - 2 || value_length > SIZE_MAX / 2)
        return tlmi_fail(host, TLM_E_OVERFLOW,
                         "safetensors writer: metadata too long");
    int status = grow(host, &w->pairs, &w->pair_capacity,
                      w->pair_count, sizeof *w->pairs);
    if (status != TLM_OK)
        return status;
    size_t bytes = key_length + value_length + 2;
    char *block = tlmi_host_alloc(host, bytes, 1);
    if (block == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "safetensors writer: metadata '%s': out of memory",
                         shown);
    memcpy(block, key, key_length + 1);
    memcpy(block + key_length + 1, value, value_length + 1);
    st_pair *pair = &w->pairs[w->pair_count++];
    pair->key = block;
    pair->key_length = key_length;
    pair->value_length = value_length;
    return TLM_OK;
}

/* The JSON header (unpadded) and the size of the data section. */
static int write_header(tlmi_safetensors_writer *w, tlmi_json_writer *json,
                        uint64_t *data_size) {
    tlmi_json_write_object_begin(json);
    if (w->pair_count > 0) {
        tlmi_json_write_key(json, "__metadata__");
        tlmi_json_write_object_begin(json);
        for (size_t i = 0; i < w->pair_count; i++) {
            const st_pair *pair = &w->pairs[i];
            tlmi_json_write_key_n(json, pair->key, pair->key_length);
            tlmi_json_write_string_n(json, pair->key + pair->key_length + 1,
                                     pair->value_length);
        }
        tlmi_json_write_object_end(json);
    }
    uint64_t offset = 0;
    for (size_t i = 0; i < w->count; i++) {
        const st_item *item = &w->items[i];
        if (item->nbytes > UINT64_MAX - offset ||
            offset + item->nbytes > (uint64_t)INT64_MAX)
            return tlmi_fail(w->host, TLM_E_OVERFLOW,
                             "safetensors writer: the data section's size "
                             "overflows");
        tlmi_json_write_key_n(json, item->name, item->name_length);
        tlmi_json_write_object_begin(json);
        tlmi_json_write_key(json, "dtype");
        tlmi_json_write_string(json, tlmi_st_dtype_name(item->dtype));
        tlmi_json_write_key(json, "shape");
        tlmi_json_write_array_begin(json);
        for (int32_t d = 0; d < item->ndim; d++)
            tlmi_json_write_int64(json, item->shape[d]);
        tlmi_json_write_array_end(json);
        tlmi_json_write_key(json, "data_offsets");
        tlmi_json_write_array_begin(json);
        tlmi_json_write_int64(json, (int64_t)offset);
        offset += item->nbytes;
        tlmi_json_write_int64(json, (int64_t)offset);
        tlmi_json_write_array_end(json);
        tlmi_json_write_object_end(json);
    }
    tlmi_json_write_object_end(json);
    *data_size = offset;
    const char *text = NULL;
    size_t size = 0;
    return tlmi_json_writer_result(json, &text, &size);
}

/* Where the bytes go: a file writer or a memory block. */
typedef struct sink {
    tlmi_file_writer *file;
    unsigned char *memory;
    size_t used;
} sink;

static int sink_write(sink *s, const void *data, size_t size) {
    if (size == 0)
        return TLM_OK;
    if (s->file != NULL)
        return tlmi_file_writer_write(s->file, data, size);
    memcpy(s->memory + s->used, data, size);
    s->used += size;
    return TLM_OK;
}

/* A tensor's bytes (`p`, host order) in little-endian order. */
static int sink_bytes(sink *s, const st_item *item, const unsigned char *p) {
    size_t element = tlmi_st_dtype_size(item->dtype);
    if (tlmi_host_is_little_endian() || element == 1)
        return sink_write(s, p, item->nbytes);
    unsigned char chunk[4096];
    for (size_t done = 0; done < item->nbytes;) {
        size_t n = item->nbytes - done < sizeof chunk ? item->nbytes - done
                                                      : sizeof chunk;
        for (size_t i = 0; i < n; i += element)
            for (size_t b = 0; b < element; b++)
                chunk[i + b] = p[done + i + element - 1 - b];
        int status = sink_write(s, chunk, n);
        if (status != TLM_OK)
            return status;
        done += n;
    }
    return TLM_OK;
}

/* A tensor's bytes, produced into a scratch block first when the tensor
 * was added with a producer (one such block at a time). */
static int sink_tensor(tlmi_safetensors_writer *w, sink *s,
                       const st_item *item) {
    if (item->produce == NULL || item->nbytes == 0)
        return sink_bytes(s, item, item->data);
    void *scratch = tlmi_host_alloc(w->host, item->nbytes, 64);
    if (scratch == NULL)
        return tlmi_fail(w->host, TLM_E_NOMEM,
                         "safetensors writer: tensor '%s': out of memory "
                         "(%zu bytes)",
                         item->name, item->nbytes);
    int status = item->produce(item->produce_user, scratch, item->nbytes);
    if (status == TLM_OK)
        status = sink_bytes(s, item, scratch);
    tlmi_host_free(w->host, scratch, item->nbytes);
    return status;
}

/* The header (built by the caller) and the data into `s`. */
static int emit(tlmi_safetensors_writer *w, sink *s, const char *header,
                size_t header_length, size_t padded) {
    unsigned char length[8];
    tlmi_put_u64(length, (uint64_t)padded);
    int status = sink_write(s, length, 8);
    if (status == TLM_OK)
        status = sink_write(s, header, header_length);
    static const char spaces[8] = {' ', ' ', ' ', ' ', ' ', ' ', ' ', ' '};
    if (status == TLM_OK)
        status = sink_write(s, spaces, padded - header_length);
    for (size_t i = 0; status == TLM_OK && i < w->count; i++)
        status = sink_tensor(w, s, &w->items[i]);
    return status;
}

/* Builds the header; *padded is its length rounded up to 8, *total the
 * file's size. */
static int prepare(tlmi_safetensors_writer *w, tlmi_json_writer *json,
                   size_t *padded, uint64_t *total) {
    tlmi_json_writer_init(json, w->host);
    uint64_t data_size = 0;
    TLMI_TRY(write_header(w, json, &data_size));
    size_t rounded = (json->size + 7) & ~(size_t)7;
    if (rounded > TLMI_ST_MAX_HEADER)
        return tlmi_fail(w->host, TLM_E_RANGE,
                         "safetensors writer: the header would be %zu bytes, "
                         "more than the format's limit of %llu",
                         rounded, (unsigned long long)TLMI_ST_MAX_HEADER);
    if (data_size > UINT64_MAX - 8 - rounded)
        return tlmi_fail(w->host, TLM_E_OVERFLOW,
                         "safetensors writer: the file's size overflows");
    *padded = rounded;
    *total = 8 + rounded + data_size;
    return TLM_OK;
}

int tlmi_safetensors_writer_save(tlmi_safetensors_writer *w,
                                 const char *path) {
    if (w == NULL)
        return tlmi_fail(NULL, TLM_E_INVALID,
                         "safetensors writer: writer is NULL");
    tlmi_json_writer json;
    size_t padded = 0;
    uint64_t total = 0;
    tlmi_file_writer *file = NULL;
    int status = prepare(w, &json, &padded, &total);
    if (status != TLM_OK)
        goto cleanup;
    status = tlmi_file_writer_open(w->host, path, &file);
    if (status != TLM_OK)
        goto cleanup;
    sink s = {file, NULL, 0};
    status = emit(w, &s, json.data, json.size, padded);
    if (status == TLM_OK)
        status = tlmi_file_writer_commit(file);
    else
        tlmi_file_writer_abort(file);

cleanup:
    tlmi_json_writer_release(&json);
    return status;
}

int tlmi_safetensors_writer_to_memory(tlmi_safetensors_writer *w,
                                      void **data, size_t *size) {
    if (w == NULL || data == NULL || size == NULL)
        return tlmi_fail(w ? w->host : NULL, TLM_E_INVALID,
                         "safetensors writer: NULL argument");
    *data = NULL;
    *size = 0;
    tlmi_json_writer json;
    size_t padded = 0;
    uint64_t total = 0;
    unsigned char *memory = NULL;
    int status = prepare(w, &json, &padded, &total);
    if (status != TLM_OK)
        goto cleanup;
    if (total > SIZE_MAX) {
        status = tlmi_fail(w->host, TLM_E_OVERFLOW,
                           "safetensors writer: %llu bytes do not fit in "
                           "memory",
                           (unsigned long long)total);
        goto cleanup;
    }
    memory = tlmi_host_alloc(w->host, (size_t)total, 64);
    if (memory == NULL) {
        status = tlmi_fail(w->host, TLM_E_NOMEM,
                           "safetensors writer: out of memory "
                           "(allocating %llu bytes)",
                           (unsigned long long)total);
        goto cleanup;
    }
    sink s = {NULL, memory, 0};
    status = emit(w, &s, json.data, json.size, padded);

cleanup:
    tlmi_json_writer_release(&json);
    if (status != TLM_OK) {
        tlmi_host_free(w->host, memory, (size_t)total);
        return status;
    }
    *data = memory;
    *size = (size_t)total;
    return TLM_OK;
}
