#include "dataset.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "base/crc32.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "base/params.h"

TLM_API int tlm_dataset_params_init(tlm_dataset_params *params) {
    TLMI_PARAMS_INIT("tlm_dataset_params_init", params);
    params->validation_fraction = 0.1f;
    params->use_cache = 1;
    return TLM_OK;
}

/* The caller's settings over the defaults, checked. */
static int merge_params(tlmi_host *host, const char *what, tlm_dataset_params *p,
                        const tlm_dataset_params *given) {
    char field[96];
    snprintf(field, sizeof field, "%s: params", what);
    tlm_dataset_params_init(p);
    TLMI_TRY(tlmi_params_merge(host, field, p, sizeof *p, given));
    if (!(p->validation_fraction >= 0.0f && p->validation_fraction < 1.0f))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: params.validation_fraction %g is outside [0, 1)", what,
                         (double)p->validation_fraction);
    if (p->use_cache != 0 && p->use_cache != 1)
        return tlmi_fail(host, TLM_E_INVALID, "%s: params.use_cache %d is not 0 or 1",
                         what, (int)p->use_cache);
    return TLM_OK;
}

static tlm_dataset *new_dataset(tlmi_host *host, int32_t kind) {
    tlm_dataset *ds = TLMI_HANDLE_ALLOC(host, tlm_dataset);
    if (ds != NULL) {
        tlmi_context_hold(&ds->host); /* dropped by tlm_dataset_free */
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
    tlmi_context_drop(&host); /* may free the context (tlm_context_free) */
}

/* The memory limit's check (autodiff/context.h) for a dataset of `count`
 * ids (and `n_offsets` offsets of pairs), before anything is copied. */
static int check_memory(tlm_context *ctx, tlmi_host *host, const char *what,
                        int64_t count, int64_t n_offsets) {
    const tlmi_memory_part parts[2] = {
        {"token ids", (double)count * sizeof(int32_t), 0},
        {"pair offsets", (double)n_offsets * sizeof(int64_t), 0}};
    return tlmi_context_check_memory(ctx, host, what, parts,
                                     n_offsets > 0 ? 2 : 1);
}

/* Copies `count` ids, all >= 0, after the memory limit's check for them
 * and `n_offsets` offsets of pairs (copied by the caller). */
static int copy_ids(tlm_dataset *ds, tlm_context *ctx, const char *what,
                    const int32_t *ids, int64_t count, int64_t n_offsets) {
    if (count < 1 || (uint64_t)count > SIZE_MAX / 8)
        return tlmi_fail(&ds->host, TLM_E_INVALID, "%s: count %lld is not "
                         "positive or too large", what, (long long)count);
    TLMI_TRY(check_memory(ctx, &ds->host, what, count, n_offsets));
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
                                 const int32_t *ids, size_t count_given,
                                 const tlm_dataset_params *params) {
    /* Past INT64_MAX is past any buffer: copy_ids refuses it as too large. */
    const int64_t count = count_given > (size_t)INT64_MAX ? INT64_MAX
                                                          : (int64_t)count_given;
    const char *what = "tlm_dataset_from_ids";
    TLMI_CHECK_OUT(NULL, what, out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, what, ctx);
    TLMI_CHECK_NOT_NULL(NULL, what, ids);
    tlm_dataset_params p;
    TLMI_TRY(merge_params(&ctx->host, what, &p, params));
    tlm_dataset *ds = new_dataset(&ctx->host, TLMI_DATASET_STREAM);
    if (ds == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM, "%s: out of memory", what);
    int status = copy_ids(ds, ctx, what, ids, count, 0);
    if (status != TLM_OK) {
        tlmi_fail_copy(&ctx->host, status, ds->host.last_error);
        tlm_dataset_free(ds);
        return status;
    }
    ds->train_end = count - (int64_t)floor((double)count * (double)p.validation_fraction);
    *out = ds;
    return TLM_OK;
}

TLM_API int tlm_dataset_from_pairs(tlm_dataset **out, tlm_context *ctx,
                                   const int32_t *ids, const int64_t *offsets,
                                   int64_t n_pairs, const tlm_dataset_params *params) {
    const char *what = "tlm_dataset_from_pairs";
    TLMI_CHECK_OUT(NULL, what, out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, what, ctx);
    TLMI_CHECK_NOT_NULL(NULL, what, ids);
    TLMI_CHECK_NOT_NULL(NULL, what, offsets);
    tlm_dataset_params p;
    TLMI_TRY(merge_params(&ctx->host, what, &p, params));
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
    int status = copy_ids(ds, ctx, what, ids, offsets[2 * n_pairs],
                          2 * n_pairs + 1);
    if (status != TLM_OK)
        goto fail;
    const size_t bytes = (size_t)(2 * n_pairs + 1) * sizeof *offsets;
    ds->offsets = tlmi_host_alloc(&ds->host, bytes, 64);
    if (ds->offsets == NULL) {
        status = tlmi_fail(&ds->host, TLM_E_NOMEM, "%s: out of memory", what);
        goto fail;
    }
    memcpy(ds->offsets, offsets, bytes);
    ds->n_pairs = n_pairs;
    const double held_out = (double)n_pairs * (double)p.validation_fraction;
    ds->train_pairs = n_pairs - (int64_t)floor(held_out + 0.5);
    ds->max_source = (int32_t)longest_source;
    ds->max_target = (int32_t)longest_target;
    *out = ds;
    return TLM_OK;

fail:
    /* Copied to the context before the dataset (and its host) goes. */
    tlmi_fail_copy(&ctx->host, status, ds->host.last_error);
    tlm_dataset_free(ds);
    return status;
}

int64_t tlmi_dataset_part_size(const tlm_dataset *ds, int32_t split) {
    if (ds->kind == TLMI_DATASET_STREAM)
        return split == TLM_SPLIT_TRAIN ? ds->train_end : ds->count - ds->train_end;
    return split == TLM_SPLIT_TRAIN ? ds->train_pairs : ds->n_pairs - ds->train_pairs;
}

TLM_API int64_t tlm_dataset_size(const tlm_dataset *ds, int32_t split) {
    TLMI_CHECK(NULL, ds != NULL, TLM_E_INVALID,
               "tlm_dataset_size: dataset is NULL");
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
                              int64_t first_row, int64_t total,
                              int32_t *ids, int32_t *targets) {
    const int64_t first = split == TLM_SPLIT_TRAIN ? 0 : ds->train_end;
    const int64_t size = tlmi_dataset_part_size(ds, split);
    for (int64_t row = 0; row < total; row++) {
        const int64_t start = first + uniform_below(rng, size - length);
        const int64_t b = row - first_row;
        if (b < 0 || b >= batch)
            continue; /* another rank's row */
        memcpy(ids + b * length, ds->ids + start, (size_t)length * sizeof *ids);
        memcpy(targets + b * length, ds->ids + start + 1,
               (size_t)length * sizeof *targets);
    }
}

void tlmi_dataset_fill_pairs(const tlm_dataset *ds, int32_t split,
                             tlmi_rng *rng, int64_t batch, int64_t first_row,
                             int64_t total, int64_t source_length,
                             int64_t length, int32_t bos_id, int32_t pad_id,
                             int32_t *source, int32_t *source_mask,
                             int32_t *ids, int32_t *targets) {
    const int64_t first = split == TLM_SPLIT_TRAIN ? 0 : ds->train_pairs;
    const int64_t size = tlmi_dataset_part_size(ds, split);
    for (int64_t row = 0; row < total; row++) {
        const int64_t pair = first + uniform_below(rng, size);
        const int64_t b = row - first_row;
        if (b < 0 || b >= batch)
            continue; /* another rank's row */
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

/* ---------------------------------------------------------------------- */
/* Text files and their cache of ids: `<path>.tlmtok` holds a 40-byte
 * header (magic "TLMTOKS\0", version 1, the text's size and CRC-32, the
 * tokenizer's CRC-32, the id count), the ids as little-endian u32, and the
 * CRC-32 of everything before it. */

#define CACHE_MAGIC "TLMTOKS"
#define CACHE_HEADER 40
#define MAX_TEXT_BYTES ((size_t)1 << 36)

static uint32_t tokenizer_crc(tlm_tokenizer *tok, tlmi_host *host, int *status) {
    size_t size = 0;
    *status = tlm_tokenizer_save_memory(tok, NULL, 0, &size);
    if (*status != TLM_OK && *status != TLM_E_RANGE)
        return 0;
    void *bytes = tlmi_host_alloc(host, size, 64);
    if (bytes == NULL) {
        *status = tlmi_fail(host, TLM_E_NOMEM, "tlm_dataset_from_text_file: out of memory");
        return 0;
    }
    *status = tlm_tokenizer_save_memory(tok, bytes, size, &size);
    uint32_t crc = tlmi_crc32(0, bytes, size);
    tlmi_host_free(host, bytes, size);
    return crc;
}

/* Ids from a valid cache for this text and tokenizer, or NULL. */
static int32_t *read_cache(tlmi_host *host, const char *cache_path, uint64_t text_size,
                           uint32_t text_crc, uint32_t tok_crc, int64_t *count) {
    void *data = NULL;
    size_t size = 0;
    tlmi_host quiet = *host;
    quiet.log_fn = NULL; /* a missing cache is normal */
    if (tlmi_file_read_all(&quiet, cache_path, MAX_TEXT_BYTES * 4 + 64, &data, &size) != TLM_OK)
        return NULL;
    const unsigned char *b = data;
    int32_t *ids = NULL;
    if (size >= CACHE_HEADER + 4 && memcmp(b, CACHE_MAGIC, 8) == 0 &&
        tlmi_get_u32(b + 8) == 1 && tlmi_get_u64(b + 12) == text_size &&
        tlmi_get_u32(b + 20) == text_crc && tlmi_get_u32(b + 24) == tok_crc) {
        const uint64_t n = tlmi_get_u64(b + 28);
        if (n > 0 && n <= (size - CACHE_HEADER - 4) / 4 && size == CACHE_HEADER + 4 * n + 4 &&
            tlmi_get_u32(b + size - 4) == tlmi_crc32(0, b, size - 4)) {
            ids = tlmi_host_alloc(host, (size_t)n * sizeof *ids, 64);
            if (ids != NULL) {
                for (uint64_t i = 0; i < n; i++)
                    ids[i] = (int32_t)tlmi_get_u32(b + CACHE_HEADER + 4 * i);
                *count = (int64_t)n;
            }
        }
    }
    tlmi_file_free_contents(host, data, size);
    return ids;
}

static void write_cache(tlmi_host *host, const char *cache_path, uint64_t text_size,
                        uint32_t text_crc, uint32_t tok_crc, const int32_t *ids,
                        int64_t count) {
    const size_t size = CACHE_HEADER + 4 * (size_t)count + 4;
    unsigned char *b = tlmi_host_alloc(host, size, 64);
    if (b == NULL)
        return;
    memset(b, 0, CACHE_HEADER);
    memcpy(b, CACHE_MAGIC, 8);
    tlmi_put_u32(b + 8, 1);
    tlmi_put_u64(b + 12, text_size);
    tlmi_put_u32(b + 20, text_crc);
    tlmi_put_u32(b + 24, tok_crc);
    tlmi_put_u64(b + 28, (uint64_t)count);
    for (int64_t i = 0; i < count; i++)
        tlmi_put_u32(b + CACHE_HEADER + 4 * i, (uint32_t)ids[i]);
    tlmi_put_u32(b + size - 4, tlmi_crc32(0, b, size - 4));
    tlmi_host quiet = *host;
    char saved[TLMI_MESSAGE_MAX];
    memcpy(saved, host->last_error, sizeof saved);
    if (tlmi_file_write_atomic(&quiet, cache_path, b, size) != TLM_OK)
        tlmi_host_log(host, TLM_LOG_WARN, "tlm_dataset_from_text_file: cannot write the "
                      "cache '%s': %s", cache_path, quiet.last_error);
    memcpy(host->last_error, saved, sizeof saved);
    tlmi_host_free(host, b, size);
}

TLM_API int tlm_dataset_from_text_file(tlm_dataset **out, tlm_context *ctx,
                                       const char *path, tlm_tokenizer *tokenizer,
                                       const tlm_dataset_params *params) {
    const char *what = "tlm_dataset_from_text_file";
    TLMI_CHECK_OUT(NULL, what, out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, what, ctx);
    TLMI_CHECK_NOT_NULL(NULL, what, path);
    TLMI_CHECK_NOT_NULL(NULL, what, tokenizer);
    tlm_dataset_params p;
    TLMI_TRY(merge_params(&ctx->host, what, &p, params));
    tlmi_host *host = &ctx->host;
    void *text = NULL;
    size_t size = 0;
    int32_t *ids = NULL;
    size_t ids_bytes = 0;
    int64_t count = 0;
    char cache_path[4096 + 8];
    int status = tlmi_file_read_all(host, path, MAX_TEXT_BYTES, &text, &size);
    if (status != TLM_OK)
        return status;
    if (size == 0) {
        status = tlmi_fail(host, TLM_E_INVALID, "%s: '%s' is empty", what, path);
        goto cleanup;
    }
    const uint32_t text_crc = tlmi_crc32(0, text, size);
    const uint32_t tok_crc = tokenizer_crc(tokenizer, host, &status);
    if (status != TLM_OK)
        goto cleanup;
    int have_path =
        p.use_cache && snprintf(cache_path, sizeof cache_path, "%s.tlmtok",
                                path) < (int)sizeof cache_path;
    /* A cache name that leads back to the text itself (a symbolic or
     * hard link) would replace the text with ids: no cache then. */
    if (have_path && tlmi_file_same(path, cache_path)) {
        tlmi_host_log(host, TLM_LOG_WARN,
                      "%s: the cache '%s' is the text file '%s' itself; "
                      "not using a cache",
                      what, cache_path, path);
        have_path = 0;
    }
    if (have_path)
        ids = read_cache(host, cache_path, size, text_crc, tok_crc, &count);
    if (ids != NULL) {
        ids_bytes = (size_t)count * sizeof *ids;
    } else {
        /* The text (held), its ids and the dataset's copy of them. */
        const tlmi_memory_part parts[3] = {
            {"text", (double)size, 1},
            {"token ids", (double)size * sizeof *ids, 0},
            {"the dataset's copy", (double)size * sizeof *ids, 0}};
        status = tlmi_context_check_memory(ctx, host, what, parts, 3);
        if (status != TLM_OK)
            goto cleanup;
        ids_bytes = size * sizeof *ids;
        ids = tlmi_host_alloc(host, ids_bytes, 64);
        if (ids == NULL) {
            status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory for %zu ids", what, size);
            goto cleanup;
        }
        size_t n = 0;
        status = tlm_tokenizer_encode(tokenizer, text, size, ids, size, &n);
        if (status == TLM_E_RANGE && n > size) {
            /* A SentencePiece tokenizer can give more ids than bytes (its
             * dummy prefix, byte pieces): encode again with room for all. */
            tlmi_host_free(host, ids, ids_bytes);
            ids_bytes = n * sizeof *ids;
            ids = tlmi_host_alloc(host, ids_bytes, 64);
            if (ids == NULL) {
                status = tlmi_fail(host, TLM_E_NOMEM, "%s: out of memory for %zu ids", what,
                                   n);
                goto cleanup;
            }
            status = tlm_tokenizer_encode(tokenizer, text, size, ids, n, &n);
        }
        if (status != TLM_OK)
            goto cleanup;
        count = (int64_t)n;
        if (have_path)
            write_cache(host, cache_path, size, text_crc, tok_crc, ids, count);
    }
    /* The text goes before the dataset copies the ids. */
    tlmi_file_free_contents(host, text, size);
    text = NULL;
    status = tlm_dataset_from_ids(out, ctx, ids, (size_t)count, &p);

cleanup:
    tlmi_file_free_contents(host, text, size);
    tlmi_host_free(host, ids, ids_bytes);
    return status;
}
