/*
 * A model in a .tlm file (docs/format.md): the sections `config` (JSON),
 * `tensors` (the parameter index) and `data` (64-byte aligned values).
 */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "base/params.h"
#include "io/container.h"
#include "kernels/weights.h"
#include "model.h"
#include "model_config.h"

/* Bytes of one entry of the tensor index. */
static size_t index_entry_size(size_t name_length, int32_t ndim) {
    return 2 + name_length + 4 + 8 * (size_t)ndim + 16;
}

TLM_API int tlm_model_save(const tlm_model *model, const char *path) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_save", model);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_save", path);
    return tlmi_model_save_with(model, path, NULL, 0);
}

int tlmi_model_save_with(const tlm_model *model, const char *path,
                         const tlmi_container_section_spec *extra,
                         int32_t n_extra) {
    tlmi_host *host = &model->ctx->host;
    const int32_t n = model->n_parameters;
    char *config = NULL;
    size_t config_size = 0;
    int status = tlmi_model_config_to_json(host, &model->config,
                                           model->weight_format, &config,
                                           &config_size);
    if (status != TLM_OK)
        return status;

    /* The index, with each tensor's offset in the data section. */
    size_t index_size = 4;
    for (int32_t i = 0; i < n; i++)
        index_size += index_entry_size(strlen(model->parameters[i].name),
                                       model->parameters[i].tensor->ndim);
    unsigned char *index = tlmi_host_alloc(host, index_size, 64);
    tlmi_container_piece *pieces =
        tlmi_host_alloc(host, (size_t)n * sizeof *pieces, 64);
    if (index == NULL || pieces == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "tlm_model_save: out of memory");
        goto done;
    }
    tlmi_put_u32(index, (uint32_t)n);
    size_t at = 4;
    uint64_t offset = 0;
    for (int32_t i = 0; i < n; i++) {
        const tlm_tensor *t = model->parameters[i].tensor;
        const char *name = model->parameters[i].name;
        const size_t length = strlen(name);
        const uint64_t bytes = tlmi_tensor_data_bytes(t);
        offset = (offset + TLMI_CONTAINER_ALIGN - 1) / TLMI_CONTAINER_ALIGN *
                 TLMI_CONTAINER_ALIGN;
        tlmi_put_u16(index + at, (uint16_t)length);
        memcpy(index + at + 2, name, length);
        at += 2 + length;
        index[at] = (unsigned char)t->dtype;
        index[at + 1] = (unsigned char)t->ndim;
        tlmi_put_u16(index + at + 2, 0);
        at += 4;
        for (int32_t d = 0; d < t->ndim; d++, at += 8)
            tlmi_put_u64(index + at, (uint64_t)t->shape[d]);
        tlmi_put_u64(index + at, offset);
        tlmi_put_u64(index + at + 8, bytes);
        at += 16;
        pieces[i].data = t->data;
        pieces[i].size = bytes;
        offset += bytes;
    }
    const tlmi_container_piece config_piece = {config, config_size};
    const tlmi_container_piece index_piece = {index, index_size};
    tlmi_container_section_spec sections[TLMI_CONTAINER_MAX_SECTIONS] = {
        {"config", &config_piece, 1, 1},
        {"tensors", &index_piece, 1, 1},
        {"data", pieces, n, TLMI_CONTAINER_ALIGN},
    };
    int32_t count = 3;
    void *tokenizer = NULL;
    size_t tokenizer_size = 0;
    status = tlmi_model_tokenizer_bytes(model, &tokenizer, &tokenizer_size);
    const tlmi_container_piece tokenizer_piece = {tokenizer, tokenizer_size};
    if (status == TLM_OK && tokenizer != NULL) {
        const tlmi_container_section_spec section = {"tokenizr", &tokenizer_piece, 1, 1};
        sections[count++] = section;
    }
    for (int32_t i = 0; i < n_extra && count < TLMI_CONTAINER_MAX_SECTIONS; i++)
        sections[count++] = extra[i];
    if (status == TLM_OK)
        status = tlmi_container_write(host, "tlm_model_save", path, sections, count);
    if (tokenizer != NULL)
        tlmi_host_free(host, tokenizer, tokenizer_size);
done:
    if (index != NULL)
        tlmi_host_free(host, index, index_size);
    if (pieces != NULL)
        tlmi_host_free(host, pieces, (size_t)n * sizeof *pieces);
    tlmi_host_free(host, config, config_size + 1);
    if (status != TLM_OK && strstr(tlm_last_error(), "tlm_model_save") == NULL)
        return tlmi_fail_forward(host, status, "tlm_model_save");
    return status;
}

TLM_API int tlm_model_load_params_init(tlm_model_load_params *params) {
    TLMI_PARAMS_INIT("tlm_model_load_params_init", params);
    params->verify_checksums = 1;
    return TLM_OK;
}

/* The parsed index: where each parameter's data is. */
typedef struct index_reader {
    tlmi_host *host;
    const char *what; /* the API call reading, for messages */
    const char *path;
    const unsigned char *index;
    size_t index_size;
    const unsigned char *data;
    uint64_t data_size;
    uint32_t count;
    int32_t found; /* parameters looked up so far */
    const tlmi_file_mapping *mapping; /* the file being copied, or NULL */
    int32_t weights; /* the configuration's enum tlm_weight_format */
    int validate;    /* check quantized values (scales, q, padding) */
    uint64_t index_offset; /* file offsets of the sections, for messages */
    uint64_t data_offset;
} index_reader;

/* Checks the whole index once: entries well formed, and laid out as the
 * writer lays them: in the order of the index, each tensor at the first
 * 64-byte boundary after the one before (the first at 0), the data section
 * ending with the last, the padding between zero. So no two tensors
 * overlap and every byte of the data section is a value or known padding.
 * Names unique is left to the lookup (a duplicate would leave a parameter
 * unmatched, caught by the count check). */
static int check_index(index_reader *r) {
    if (r->index_size < 4)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "%s: the tensor index of '%s' is empty", r->what, r->path);
    r->count = tlmi_get_u32(r->index);
    size_t at = 4;
    uint64_t end = 0; /* of the tensor before, in the data section */
    for (uint32_t i = 0; i < r->count; i++) {
        if (r->index_size - at < 2)
            goto truncated;
        const size_t length = tlmi_get_u16(r->index + at);
        const size_t at_name = at + 2;
        if (r->index_size - at - 2 < length + 4)
            goto truncated;
        const unsigned char dtype = r->index[at + 2 + length];
        const unsigned char ndim = r->index[at + 3 + length];
        const size_t reserved = at + 4 + length;
        if (r->index[reserved] != 0 || r->index[reserved + 1] != 0)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: entry %u of the tensor index of "
                             "'%s' has a nonzero reserved field at offset "
                             "%llu (it must be 0; the file is corrupt)",
                             r->what, (unsigned)i, r->path,
                             (unsigned long long)(r->index_offset + reserved));
        if ((dtype != TLM_DTYPE_F32 && !tlmi_dtype_is_quantized(dtype)) ||
            ndim < 1 || ndim > TLM_MAX_DIMS)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: entry %u of the tensor index of "
                             "'%s' has dtype %u and %u dimensions",
                             r->what, (unsigned)i, r->path, (unsigned)dtype,
                             (unsigned)ndim);
        if (r->index_size - at - 2 - length - 4 < 8 * (size_t)ndim + 16)
            goto truncated;
        at += index_entry_size(length, ndim);
        const uint64_t offset = tlmi_get_u64(r->index + at - 16);
        const uint64_t bytes = tlmi_get_u64(r->index + at - 8);
        if (offset % TLMI_CONTAINER_ALIGN != 0 || offset > r->data_size ||
            bytes > r->data_size - offset)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: entry %u of the tensor index of "
                             "'%s' points outside the data section",
                             r->what, (unsigned)i, r->path);
        const int name_length = length < 100 ? (int)length : 100;
        const char *name = (const char *)r->index + at_name;
        if (offset < end)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: tensor '%.*s' of '%s' (bytes "
                             "%llu..%llu of section 'data') overlaps the one "
                             "before it in the index, which ends at byte %llu "
                             "(tensors must follow each other in the order of "
                             "the index)",
                             r->what, name_length, name, r->path,
                             (unsigned long long)offset,
                             (unsigned long long)(offset + bytes),
                             (unsigned long long)end);
        const uint64_t expected =
            (end + TLMI_CONTAINER_ALIGN - 1) / TLMI_CONTAINER_ALIGN * TLMI_CONTAINER_ALIGN;
        if (offset != expected)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: tensor '%.*s' of '%s' starts at "
                             "byte %llu of section 'data'; the one before it "
                             "ends at %llu, so it must start at %llu (the "
                             "next multiple of %d)",
                             r->what, name_length, name, r->path,
                             (unsigned long long)offset,
                             (unsigned long long)end,
                             (unsigned long long)expected, TLMI_CONTAINER_ALIGN);
        end = offset + bytes;
    }
    if (end != r->data_size)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "%s: the data section of '%s' has %llu "
                         "bytes after its last tensor (at offset %llu of the "
                         "file)",
                         r->what, r->path, (unsigned long long)(r->data_size - end),
                         (unsigned long long)(r->data_offset + end));
    if (at != r->index_size)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "%s: the tensor index of '%s' has %zu "
                         "trailing bytes",
                         r->what, r->path, r->index_size - at);
    return TLM_OK;
truncated:
    return tlmi_fail(r->host, TLM_E_FORMAT,
                     "%s: the tensor index of '%s' is truncated",
                     r->what, r->path);
}

/* The padding between the tensors of an index check_index accepted is
 * zero. Checked once every tensor's size has been (by lookup), so that a
 * wrong size is reported as such rather than as its bytes in the
 * padding. */
static int check_index_padding(const index_reader *r) {
    size_t at = 4;
    uint64_t end = 0;
    char previous[128] = "the start of section 'data'";
    for (uint32_t i = 0; i < r->count; i++) {
        const size_t length = tlmi_get_u16(r->index + at);
        const int name_length = length < 100 ? (int)length : 100;
        const char *name = (const char *)r->index + at + 2;
        at += index_entry_size(length, r->index[at + 3 + length]);
        const uint64_t offset = tlmi_get_u64(r->index + at - 16);
        TLMI_TRY(tlmi_container_check_padding(r->host, r->what,
                                              r->path, r->data, end, offset,
                                              r->data_offset, previous));
        end = offset + tlmi_get_u64(r->index + at - 8);
        snprintf(previous, sizeof previous, "tensor '%.*s'", name_length, name);
    }
    return TLM_OK;
}

static int lookup(void *user, const char *name, int32_t ndim,
                  const int64_t *shape, const void **data) {
    index_reader *r = user;
    const size_t wanted = strlen(name);
    size_t at = 4;
    for (uint32_t i = 0; i < r->count; i++) {
        const size_t length = tlmi_get_u16(r->index + at);
        const unsigned char *entry_name = r->index + at + 2;
        const int32_t entry_dtype = r->index[at + 2 + length];
        const int32_t entry_ndim = r->index[at + 3 + length];
        const unsigned char *dims = r->index + at + 2 + length + 4;
        at += index_entry_size(length, entry_ndim);
        if (length != wanted || memcmp(entry_name, name, length) != 0)
            continue;
        int same = entry_ndim == ndim;
        uint64_t numel = 1;
        for (int32_t d = 0; d < entry_ndim; d++) {
            const uint64_t size = tlmi_get_u64(dims + 8 * d);
            same = same && (int64_t)size == shape[d];
            numel = size < UINT64_MAX / (numel ? numel : 1) ? numel * size : UINT64_MAX;
        }
        const uint64_t offset = tlmi_get_u64(r->index + at - 16);
        const uint64_t bytes = tlmi_get_u64(r->index + at - 8);
        if (!same)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: tensor '%s' of '%s' does not have "
                             "the shape its configuration needs",
                             r->what, name, r->path);
        /* The matrices are in the configuration's format, the rest f32. */
        const int32_t format = ndim == 2 ? r->weights : TLM_WEIGHTS_F32;
        const int32_t dtype = tlmi_dtype_of_weight_format(format);
        if (entry_dtype != dtype)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: tensor '%s' of '%s' has dtype %s; "
                             "%s needs %s",
                             r->what, name, r->path, tlmi_dtype_name(entry_dtype),
                             ndim == 2 ? "the configuration's \"weights\""
                                       : "a vector (norm or bias)",
                             tlmi_dtype_name(dtype));
        const uint64_t needed =
            format == TLM_WEIGHTS_F32
                ? (numel <= UINT64_MAX / sizeof(float) ? numel * sizeof(float)
                                                       : UINT64_MAX)
                : (uint64_t)tlmi_weights_bytes(format, shape[0], shape[1]);
        if (bytes != needed)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "%s: tensor '%s' of '%s' has %llu bytes "
                             "of data; its shape and dtype %s need %llu",
                             r->what, name, r->path, (unsigned long long)bytes,
                             tlmi_dtype_name(dtype), (unsigned long long)needed);
        if (format != TLM_WEIGHTS_F32 && r->validate) {
            const tlmi_weights w = {format, shape[0], shape[1], r->data + offset};
            int64_t bad_row = 0;
            const char *reason = "";
            if (tlmi_weights_validate(&w, &bad_row, &reason) != 0)
                return tlmi_fail(r->host, TLM_E_FORMAT,
                                 "%s: tensor '%s' of '%s' (its "
                                 "data at byte %llu of section 'data'), row "
                                 "%lld: %s",
                                 r->what, name, r->path, (unsigned long long)offset,
                                 (long long)bad_row, reason);
        }
        *data = r->data + offset;
        r->found++;
        return TLM_OK;
    }
    return tlmi_fail(r->host, TLM_E_FORMAT,
                     "%s: '%s' lacks the parameter '%s'", r->what, r->path,
                     name);
}

int tlmi_model_check_parameters(const tlm_model *model, const char *what,
                                const char *path,
                                const tlmi_container *checkpoint,
                                const void **sources) {
    tlmi_host *host = &model->ctx->host;
    const tlmi_container_section *config = tlmi_container_find(checkpoint, "config");
    const tlmi_container_section *index = tlmi_container_find(checkpoint, "tensors");
    const tlmi_container_section *data = tlmi_container_find(checkpoint, "data");
    if (config == NULL || index == NULL || data == NULL)
        return tlmi_fail(host, TLM_E_FORMAT, "%s: '%s' holds no model", what, path);
    tlm_model_config saved;
    char source[300];
    snprintf(source, sizeof source, "%s: '%s'", what, path);
    int32_t weights = TLM_WEIGHTS_F32;
    int status = tlmi_model_config_from_json(host, source, (const char *)config->data,
                                             (size_t)config->size, &saved,
                                             &weights);
    if (status != TLM_OK)
        return status;
    if (weights != TLM_WEIGHTS_F32)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: '%s' holds %s weights, which do not train; "
                         "dequantize first: tlm_model_quantize(..., "
                         "TLM_WEIGHTS_F32) or `tlm quantize --to f32`",
                         what, path, tlmi_weight_format_name(weights));
    saved.struct_size = model->config.struct_size;
    if (memcmp(&saved, &model->config, sizeof saved) != 0)
        return tlmi_fail(host, TLM_E_STATE,
                         "%s: '%s' was saved from a model with another "
                         "configuration",
                         what, path);
    index_reader reader = {host, what, path, index->data, (size_t)index->size,
                           data->data, data->size, 0, 0, NULL,
                           TLM_WEIGHTS_F32, 0, index->offset, data->offset};
    status = check_index(&reader);
    if (status == TLM_OK && reader.count != (uint32_t)model->n_parameters)
        return tlmi_fail(host, TLM_E_FORMAT, "%s: '%s' holds %u tensors, the "
                         "model has %d", what, path, (unsigned)reader.count,
                         (int)model->n_parameters);
    /* Every parameter is found and checked, and the padding between them;
     * nothing is overwritten here. */
    for (int32_t i = 0; status == TLM_OK && i < model->n_parameters; i++) {
        const tlm_tensor *t = model->parameters[i].tensor;
        status = lookup(&reader, model->parameters[i].name, t->ndim, t->shape,
                        &sources[i]);
        if (status == TLM_OK && t->read_only)
            return tlmi_fail(host, TLM_E_STATE, "%s: the model is read-only "
                             "(memory-mapped)", what);
        for (int64_t j = 0; status == TLM_OK && j < t->numel; j++) {
            float value;
            memcpy(&value, (const unsigned char *)sources[i] + 4 * (size_t)j,
                   sizeof value);
            if (!isfinite(value))
                return tlmi_fail(host, TLM_E_FORMAT, "%s: '%s': value %lld of "
                                 "tensor '%s' (section 'data') is not finite",
                                 what, path, (long long)j,
                                 model->parameters[i].name);
        }
    }
    if (status == TLM_OK)
        status = check_index_padding(&reader);
    return status;
}

void tlmi_model_copy_parameters(tlm_model *model, const void *const *sources) {
    for (int32_t i = 0; i < model->n_parameters; i++) {
        tlm_tensor *t = model->parameters[i].tensor;
        memcpy(t->data, sources[i], (size_t)t->numel * sizeof(float));
    }
}

/* A parameter has been copied out of the mapped file: its pages may go. */
static void release_copied(void *user, const void *data, size_t size) {
    const index_reader *r = user;
    tlmi_file_mapping_release(r->mapping, data, size);
}

TLM_API int tlm_model_load(tlm_model **out, tlm_context *ctx, const char *path,
                           const tlm_model_load_params *given) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_load", out);
    *out = NULL;
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_load", ctx);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_load", path);
    tlmi_host *host = &ctx->host;
    tlm_model_load_params params;
    tlm_model_load_params_init(&params);
    int status = tlmi_params_merge(host, "tlm_model_load: params", &params,
                                   sizeof params, given);
    if (status != TLM_OK)
        return status;
    if ((params.memory_map != 0 && params.memory_map != 1) ||
        (params.verify_checksums != 0 && params.verify_checksums != 1))
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_load: params.memory_map and "
                         "params.verify_checksums must be 0 or 1");

    /* The file is mapped either way. A memory-mapped model keeps the
     * mapping and borrows its parameters from it; a plain load copies each
     * parameter out and lets the copied pages go (reading the whole file
     * into a buffer first would hold the weights twice at the peak). */
    tlm_model *model = NULL;
    tlmi_file_mapping *mapping = tlmi_host_alloc(host, sizeof *mapping, 64);
    if (mapping == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "tlm_model_load: out of memory");
    memset(mapping, 0, sizeof *mapping);
    status = tlmi_file_map_readonly(host, path, mapping);
    if (status != TLM_OK)
        goto cleanup;
    /* The sections' checksums are checked below, piece by piece (the data
     * section's skipped when a mapped load asks). */
    tlmi_container checkpoint;
    status = tlmi_container_parse(host, "tlm_model_load", path, mapping->data,
                                   mapping->size, TLMI_CONTAINER_SKIP_ALL_CRCS,
                                   &checkpoint);
    if (status != TLM_OK)
        goto cleanup;
    /* Summed piece by piece and let go, so that the sections a model does
     * not use (a trainer checkpoint's optimizer state, twice the
     * parameters' size) are never held. */
    status = tlmi_container_check_mapped(host, "tlm_model_load", path, mapping,
                                         &checkpoint,
                                         params.memory_map && !params.verify_checksums
                                             ? "data" : NULL);
    if (status != TLM_OK)
        goto cleanup;
    const tlmi_container_section *config =
        tlmi_container_find(&checkpoint, "config");
    const tlmi_container_section *index =
        tlmi_container_find(&checkpoint, "tensors");
    const tlmi_container_section *data =
        tlmi_container_find(&checkpoint, "data");
    if (config == NULL || index == NULL || data == NULL) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "tlm_model_load: '%s' lacks its '%s' section", path,
                           config == NULL ? "config" : index == NULL ? "tensors" : "data");
        goto cleanup;
    }
    tlm_model_config model_config;
    char what[300];
    snprintf(what, sizeof what, "tlm_model_load: '%s'", path);
    int32_t weights = TLM_WEIGHTS_F32;
    status = tlmi_model_config_from_json(host, what, (const char *)config->data,
                                         (size_t)config->size, &model_config,
                                         &weights);
    if (status != TLM_OK)
        goto cleanup;
    index_reader reader = {host, "tlm_model_load", path, NULL, 0, NULL, 0, 0,
                           0, NULL, weights, 1, 0, 0};
    /* An instant mapped load (no checksums) trusts the values as it
     * trusts float32 ones: garbage in gives garbage logits, never UB. */
    reader.validate = !params.memory_map || params.verify_checksums;
    reader.mapping = params.memory_map ? NULL : mapping;
    reader.index = index->data;
    reader.index_size = (size_t)index->size;
    reader.data = data->data;
    reader.data_size = data->size;
    reader.index_offset = index->offset;
    reader.data_offset = data->offset;
    status = check_index(&reader);
    if (status != TLM_OK)
        goto cleanup;
    const tlmi_parameter_source source = {lookup, &reader, !params.memory_map,
                                          release_copied, weights};
    status = tlmi_model_build(&model, ctx, &model_config, &source);
    if (status != TLM_OK) {
        /* The build's own refusals (the memory limit, out of memory) say
         * tlm_model_create: name the file in front; a lookup's name it. */
        if (strncmp(tlm_last_error(), "tlm_model_create", 16) == 0)
            status = tlmi_fail_forward(host, status, "tlm_model_load: '%s'", path);
        goto cleanup;
    }
    if ((uint32_t)reader.found != reader.count) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "tlm_model_load: '%s' holds %u tensors, the "
                           "configuration has %d parameters",
                           path, (unsigned)reader.count, (int)reader.found);
        goto cleanup;
    }
    status = check_index_padding(&reader);
    if (status != TLM_OK)
        goto cleanup;
    const tlmi_container_section *tokenizer =
        tlmi_container_find(&checkpoint, "tokenizr");
    if (tokenizer != NULL) {
        /* The tokenizer's own offsets count from its section's start. */
        snprintf(what, sizeof what,
                 "tlm_model_load: '%s', section 'tokenizr' at byte %llu", path,
                 (unsigned long long)tokenizer->offset);
        status = tlmi_model_attach_tokenizer_bytes(model, what, tokenizer->data,
                                                   (size_t)tokenizer->size);
    }
cleanup:
    if (status != TLM_OK || !params.memory_map) {
        if (status != TLM_OK)
            tlm_model_free(model);
        tlmi_file_unmap(mapping);
        tlmi_host_free(host, mapping, sizeof *mapping);
        mapping = NULL;
    }
    if (status != TLM_OK)
        return status;
    model->mapping = mapping;
    *out = model;
    return TLM_OK;
}
