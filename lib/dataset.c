#include "dataset.h"

#include <math.h>
#include <string.h>

#include "context.h"
#include "error.h"

static int check_fraction(tlmi_host *host, const char *what, float fraction) {
    if (!(fraction >= 0.0f && fraction < 1.0f))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: validation_fraction %g is outside [0, 1)", what,
                         (double)fraction);
    return TLM_OK;
}

static tlm_dataset *new_dataset(tlmi_host *host, int32_t kind) {
    tlm_dataset *ds = tlmi_host_alloc(host, sizeof *ds, 64);
    if (ds != NULL) {
        memset(ds, 0, sizeof *ds);
        ds->host = *host;
        ds->host.last_error[0] = '\0';
        ds->kind = kind;
    }
    return ds;
}

TLM_API void tlm_dataset_free(tlm_dataset *ds) {
    if (ds == NULL)
        return;
    tlmi_host host = ds->host;
    if (ds->ids != NULL)
        tlmi_host_free(&host, ds->ids, (size_t)ds->count * sizeof *ds->ids);
    if (ds->offsets != NULL)
        tlmi_host_free(&host, ds->offsets,
                       (size_t)(2 * ds->n_pairs + 1) * sizeof *ds->offsets);
    tlmi_host_free(&host, ds, sizeof *ds);
}

/* Copies `count` ids, all >= 0. */
static int copy_ids(tlm_dataset *ds, const char *what, const int32_t *ids,
                    int64_t count) {
    if (count < 1 || (uint64_t)count > SIZE_MAX / 8)
        return tlmi_fail(&ds->host, TLM_E_INVALID, "%s: count %lld is not "
                         "positive or too large", what, (long long)count);
    for (int64_t i = 0; i < count; i++)
        if (ids[i] < 0)
            return tlmi_fail(&ds->host, TLM_E_RANGE, "%s: ids[%lld] = %d is "
                             "negative", what, (long long)i, (int)ids[i]);
    ds->ids = tlmi_host_alloc(&ds->host, (size_t)count * sizeof *ds->ids, 64);
    if (ds->ids == NULL)
        return tlmi_fail(&ds->host, TLM_E_NOMEM, "%s: out of memory", what);
    memcpy(ds->ids, ids, (size_t)count * sizeof *ids);
    ds->count = count;
    return TLM_OK;
}

TLM_API int tlm_dataset_from_ids(tlm_dataset **out, tlm_context *ctx,
                                 const int32_t *ids, int64_t count,
                                 float validation_fraction) {
    const char *what = "tlm_dataset_from_ids";
    if (out == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "%s: out is NULL", what);
    *out = NULL;
    if (ctx == NULL || ids == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "%s: %s is NULL", what,
                                ctx == NULL ? "ctx" : "ids");
    int status = check_fraction(&ctx->host, what, validation_fraction);
    if (status != TLM_OK)
        return status;
    tlm_dataset *ds = new_dataset(&ctx->host, TLMI_DATASET_STREAM);
    if (ds == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "%s: out of memory", what);
    status = copy_ids(ds, what, ids, count);
    if (status != TLM_OK) {
        tlmi_fail(&ctx->host, status, "%s", ds->host.last_error);
        tlm_dataset_free(ds);
        return status;
    }
    ds->train_end = count - (int64_t)floor((double)count * (double)validation_fraction);
    *out = ds;
    return TLM_OK;
}

TLM_API int tlm_dataset_from_pairs(tlm_dataset **out, tlm_context *ctx,
                                   const int32_t *ids, const int64_t *offsets,
                                   int64_t n_pairs, float validation_fraction) {
    const char *what = "tlm_dataset_from_pairs";
    if (out == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "%s: out is NULL", what);
    *out = NULL;
    if (ctx == NULL || ids == NULL || offsets == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "%s: %s is NULL", what,
                                ctx == NULL ? "ctx" : ids == NULL ? "ids" : "offsets");
    int status = check_fraction(&ctx->host, what, validation_fraction);
    if (status != TLM_OK)
        return status;
    if (n_pairs < 1 || n_pairs > INT32_MAX)
        return tlmi_fail(&ctx->host, TLM_E_INVALID, "%s: n_pairs %lld is outside "
                         "1..2^31-1", what, (long long)n_pairs);
    if (offsets[0] != 0)
        return tlmi_fail(&ctx->host, TLM_E_INVALID, "%s: offsets[0] is %lld, not 0",
                         what, (long long)offsets[0]);
    int64_t longest_source = 0, longest_target = 0;
    for (int64_t i = 0; i < 2 * n_pairs; i++) {
        const int64_t length = offsets[i + 1] - offsets[i];
        if (length < 1 || length > INT32_MAX)
            return tlmi_fail(&ctx->host, TLM_E_INVALID,
                             "%s: %s of pair %lld has length %lld (offsets "
                             "must increase)",
                             what, i % 2 ? "the target" : "the source",
                             (long long)(i / 2), (long long)length);
        if (i % 2 == 0 && length > longest_source)
            longest_source = length;
        if (i % 2 == 1 && length > longest_target)
            longest_target = length;
    }
    tlm_dataset *ds = new_dataset(&ctx->host, TLMI_DATASET_PAIRS);
    if (ds == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "%s: out of memory", what);
    status = copy_ids(ds, what, ids, offsets[2 * n_pairs]);
    if (status == TLM_OK) {
        const size_t bytes = (size_t)(2 * n_pairs + 1) * sizeof *offsets;
        ds->offsets = tlmi_host_alloc(&ds->host, bytes, 64);
        if (ds->offsets == NULL)
            status = tlmi_fail(&ds->host, TLM_E_NOMEM, "%s: out of memory", what);
        else
            memcpy(ds->offsets, offsets, bytes);
    }
    if (status != TLM_OK) {
        tlmi_fail(&ctx->host, status, "%s", ds->host.last_error);
        tlm_dataset_free(ds);
        return status;
    }
    ds->n_pairs = n_pairs;
    ds->train_pairs = n_pairs - (int64_t)floor((double)n_pairs * (double)validation_fraction + 0.5);
    ds->max_source = (int32_t)longest_source;
    ds->max_target = (int32_t)longest_target;
    *out = ds;
    return TLM_OK;
}

int64_t tlmi_dataset_part_size(const tlm_dataset *ds, int32_t split) {
    if (ds->kind == TLMI_DATASET_STREAM)
        return split == TLM_SPLIT_TRAIN ? ds->train_end : ds->count - ds->train_end;
    return split == TLM_SPLIT_TRAIN ? ds->train_pairs : ds->n_pairs - ds->train_pairs;
}

TLM_API int64_t tlm_dataset_size(const tlm_dataset *ds, int32_t split) {
    if (ds == NULL)
        return tlmi_fail_thread(TLM_E_INVALID, "tlm_dataset_size: dataset is NULL");
    if (split != TLM_SPLIT_TRAIN && split != TLM_SPLIT_VALIDATION)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_dataset_size: split %d is not a tlm_split",
                                (int)split);
    return tlmi_dataset_part_size(ds, split);
}

/* Uniform in [0, n) without modulo bias worth noticing (n << 2^64). */
static int64_t uniform_below(tlmi_rng *rng, int64_t n) {
    return (int64_t)(tlmi_rng_next(rng) % (uint64_t)n);
}

void tlmi_dataset_fill_stream(const tlm_dataset *ds, int32_t split,
                              tlmi_rng *rng, int64_t batch, int64_t length,
                              int32_t *ids, int32_t *targets) {
    const int64_t first = split == TLM_SPLIT_TRAIN ? 0 : ds->train_end;
    const int64_t size = tlmi_dataset_part_size(ds, split);
    for (int64_t b = 0; b < batch; b++) {
        const int64_t start = first + uniform_below(rng, size - length);
        memcpy(ids + b * length, ds->ids + start, (size_t)length * sizeof *ids);
        memcpy(targets + b * length, ds->ids + start + 1,
               (size_t)length * sizeof *targets);
    }
}

void tlmi_dataset_fill_pairs(const tlm_dataset *ds, int32_t split,
                             tlmi_rng *rng, int64_t batch, int64_t source_length,
                             int64_t length, int32_t bos_id, int32_t pad_id,
                             int32_t *source, int32_t *source_mask,
                             int32_t *ids, int32_t *targets) {
    const int64_t first = split == TLM_SPLIT_TRAIN ? 0 : ds->train_pairs;
    const int64_t size = tlmi_dataset_part_size(ds, split);
    for (int64_t b = 0; b < batch; b++) {
        const int64_t pair = first + uniform_below(rng, size);
        const int64_t *o = ds->offsets + 2 * pair;
        const int64_t ns = o[1] - o[0], nt = o[2] - o[1];
        for (int64_t i = 0; i < source_length; i++) {
            source[b * source_length + i] = i < ns ? ds->ids[o[0] + i] : pad_id;
            source_mask[b * source_length + i] = i < ns;
        }
        for (int64_t i = 0; i < length; i++) {
            ids[b * length + i] = i == 0 ? bos_id : i <= nt - 1 ? ds->ids[o[1] + i - 1] : pad_id;
            targets[b * length + i] = i < nt ? ds->ids[o[1] + i] : -1;
        }
    }
}
