/*
 * tlm_model_import / tlm_model_export: the format detected from a file's
 * content (never its name) and the call dispatched to the format's module
 * (model_file.c, model_safetensors.c, format_hf.c, format_llmc.c,
 * format_llama2c.c).
 */
#define _POSIX_C_SOURCE 200809L /* stat, mkdir, fseeko, ftello */
#define _FILE_OFFSET_BITS 64     /* files past 2 GiB on 32-bit hosts */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/params.h"
#include "formats.h"
#include "io/json.h"
#include "model.h"

/* How many leading bytes detection reads. */
#define SNIFF_BYTES 64

static const unsigned char tlm_magic[8] = {0x89, 'T', 'L', 'M',
                                           0x0d, 0x0a, 0x1a, 0x0a};

TLM_API int tlm_model_import_params_init(tlm_model_import_params *params) {
    TLMI_PARAMS_INIT("tlm_model_import_params_init", params);
    params->format = TLM_MODEL_FORMAT_AUTO;
    return TLM_OK;
}

TLM_API int tlm_model_export_params_init(tlm_model_export_params *params) {
    TLMI_PARAMS_INIT("tlm_model_export_params_init", params);
    params->format = TLM_MODEL_FORMAT_AUTO;
    params->weight_type = TLM_WEIGHT_F32;
    return TLM_OK;
}

int tlmi_import_build_status(tlmi_host *host, int status, const char *what) {
    if (status != TLM_E_INVALID)
        return status;
    return tlmi_fail_forward(host, TLM_E_UNSUPPORTED,
                             "%s: a configuration tlm cannot hold", what);
}

/* A safetensors header (8-byte length, then '{'): does its JSON mention
 * the key "tlm.config"? Reads the header only (at most the format's
 * limit), since the metadata may sit anywhere in it. */
static int safetensors_has_tlm_config(FILE *file, uint64_t header_length) {
    if (header_length > ((uint64_t)100 << 20))
        return 0;
    static const char key[] = "\"tlm.config\"";
    const size_t key_length = sizeof key - 1;
    char buffer[4096 + sizeof key];
    size_t kept = 0;
    uint64_t left = header_length;
    if (fseek(file, 8, SEEK_SET) != 0)
        return 0;
    while (left > 0) {
        size_t want = left < 4096 ? (size_t)left : 4096;
        size_t got = fread(buffer + kept, 1, want, file);
        if (got == 0)
            return 0;
        size_t total = kept + got;
        for (size_t i = 0; i + key_length <= total; i++)
            if (memcmp(buffer + i, key, key_length) == 0)
                return 1;
        /* Keep the tail, in case the key straddles two reads. */
        kept = total < key_length ? total : key_length - 1;
        memmove(buffer, buffer + total - kept, kept);
        left -= got;
    }
    return 0;
}

/* The format of `path` from its content. */
static int detect(tlmi_host *host, const char *path, int32_t *format) {
    struct stat info;
    if (stat(path, &info) != 0)
        return tlmi_fail(host, TLM_E_IO, "cannot open '%s': %s", path,
                         strerror(errno));
    if (S_ISDIR(info.st_mode)) {
        *format = TLM_MODEL_FORMAT_HF;
        return TLM_OK;
    }
    /* fopen would wait forever on a FIFO; devices are no model files. */
    if (!S_ISREG(info.st_mode))
        return tlmi_fail(host, TLM_E_IO,
                         "'%s' is neither a regular file nor a directory",
                         path);
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return tlmi_fail(host, TLM_E_IO, "cannot open '%s': %s", path,
                         strerror(errno));
    unsigned char head[SNIFF_BYTES] = {0};
    size_t got = fread(head, 1, sizeof head, file);
    int status = TLM_OK;
    size_t i = 0;
    while (i < got && (head[i] == ' ' || head[i] == '\t' || head[i] == '\r' ||
                       head[i] == '\n'))
        i++;
    /* A legacy llama2.c file has no magic: its 7 header fields must be in
     * range and consistent, and imply exactly the file's size. The magics
     * (tlm's, llm.c's, "ak42") are all above 2^20, the largest dim
     * accepted, text (JSON) is too, and a safetensors header length below
     * 4 GiB makes hidden_dim 0, so none of them reads as one. */
    tlmi_llama2c_header legacy;
    memset(&legacy, 0, sizeof legacy);
    if (got >= 8 && memcmp(head, tlm_magic, 8) == 0) {
        *format = TLM_MODEL_FORMAT_TLM;
    } else if (got >= 8 && tlmi_get_u32(head) == TLMI_LLMC_MAGIC &&
               (tlmi_get_u32(head + 4) == TLMI_LLMC_VERSION_F32 ||
                tlmi_get_u32(head + 4) == TLMI_LLMC_VERSION_BF16)) {
        *format = TLM_MODEL_FORMAT_LLMC;
    } else if (got >= 4 && tlmi_get_u32(head) == TLMI_LLAMA2C_MAGIC) {
        *format = TLM_MODEL_FORMAT_LLAMA2C; /* "ak42"; its reader checks */
    } else if (tlmi_llama2c_parse_header(NULL, path, head, got,
                                         (uint64_t)info.st_size,
                                         &legacy) == TLM_OK) {
        /* Before the safetensors test: a legacy llama2.c file with 123
         * layers has '{' at byte 8. */
        *format = TLM_MODEL_FORMAT_LLAMA2C;
    } else if (got >= 9 && head[8] == '{') {
        /* safetensors: tlm's own naming when it carries tlm.config. */
        *format = safetensors_has_tlm_config(file, tlmi_get_u64(head))
                      ? TLM_MODEL_FORMAT_SAFETENSORS
                      : TLM_MODEL_FORMAT_HF;
    } else if (i < got && head[i] == '{') {
        /* JSON: a sharded checkpoint's index ("weight_map"; checked when
         * it is read). */
        *format = TLM_MODEL_FORMAT_HF;
    } else if (got >= 8 && tlmi_get_u32(head) == TLMI_LLMC_MAGIC) {
        *format = TLM_MODEL_FORMAT_LLMC; /* its reader names the version */
    } else {
        /* A legacy llama2.c header whose fields passed but whose size did
         * not: the llama2.c reader's message names both sizes. */
        if (legacy.expected_size != 0)
            status = tlmi_fail_forward(host, TLM_E_FORMAT,
                                       "'%s' is no model file tlm knows by "
                                       "its first bytes; read as a legacy "
                                       "llama2.c checkpoint",
                                       path);
        else
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "'%s' is not a model file tlm knows: not "
                               ".tlm, safetensors, a safetensors index, an "
                               "llm.c checkpoint or a llama2.c checkpoint "
                               "(by its first bytes; a legacy llama2.c "
                               "header must imply the file's size)",
                               path);
    }
    fclose(file);
    return status;
}

int tlmi_import_refuse_nonfinite(tlmi_host *host, const char *path,
                                 const char *kind, const char *name,
                                 const char *value, int64_t element,
                                 const int64_t *shape, int32_t ndim) {
    /* The element's index per dimension, row-major: "[1, 6]". */
    char index[160] = "";
    size_t used = 0;
    int64_t stride = 1;
    for (int32_t d = 0; d < ndim; d++)
        stride *= shape[d];
    int64_t rest = element;
    for (int32_t d = 0; d < ndim && stride > 0 && used < sizeof index; d++) {
        stride /= shape[d];
        const int64_t at = stride > 0 ? rest / stride : 0;
        rest -= at * stride;
        used += (size_t)snprintf(index + used, sizeof index - used, "%s%lld",
                                 d > 0 ? ", " : " [", (long long)at);
    }
    if (ndim > 0 && used < sizeof index)
        snprintf(index + used, sizeof index - used, "]");
    return tlmi_fail(host, TLM_E_FORMAT,
                     "'%s': %s '%s' has %s at element %lld%s (non-finite "
                     "weights are refused; tlm import --allow-nonfinite or "
                     "tlm_model_import_params.allow_nonfinite accepts them "
                     "for debugging)",
                     path, kind, name, value, (long long)element, index);
}

/* An llm.c or llama2.c import's float32 parameters are all finite
 * (safetensors imports check the file's tensors as they read them).
 * Quantized matrices are validated by their reader. */
static int check_finite_parameters(const tlm_model *model, const char *path) {
    for (int32_t p = 0; p < model->n_parameters; p++) {
        const tlm_tensor *t = model->parameters[p].tensor;
        if (t->dtype != TLM_DTYPE_F32)
            continue;
        const float *values = t->data;
        int64_t bad = 0;
        while (bad < t->numel && isfinite(values[bad]))
            bad++;
        if (bad < t->numel)
            return tlmi_import_refuse_nonfinite(
                &model->ctx->host, path, "parameter", model->parameters[p].name,
                isnan(values[bad]) ? "NaN" : values[bad] < 0 ? "-infinity" : "infinity",
                bad, t->shape, t->ndim);
    }
    return TLM_OK;
}

TLM_API int tlm_model_import(tlm_model **out, tlm_context *ctx,
                             const char *path,
                             const tlm_model_import_params *given) {
    TLMI_CHECK_OUT(NULL, "tlm_model_import", out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_import", ctx);
    tlmi_host *host = &ctx->host;
    TLMI_CHECK_NOT_NULL(host, "tlm_model_import", path);
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    TLMI_TRY(tlmi_params_merge(host, "tlm_model_import: params", &params,
                               sizeof params, given));
    if (params.format < TLM_MODEL_FORMAT_AUTO ||
        params.format > TLM_MODEL_FORMAT_LLAMA2C)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_import: params.format %d is not a "
                         "tlm_model_format (0..5)",
                         (int)params.format);
    if (params.allow_nonfinite != 0 && params.allow_nonfinite != 1)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_import: params.allow_nonfinite is %d; it "
                         "must be 0 or 1",
                         (int)params.allow_nonfinite);
    int32_t format = params.format;
    if (format == TLM_MODEL_FORMAT_AUTO) {
        int status = detect(host, path, &format);
        if (status != TLM_OK)
            return tlmi_fail_forward(host, status, "tlm_model_import");
    }
    if ((params.config_path != NULL || params.config != NULL) &&
        format != TLM_MODEL_FORMAT_HF)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_import: params.config_path and "
                         "params.config apply to Hugging Face checkpoints, "
                         "but '%s' is %s",
                         path,
                         format == TLM_MODEL_FORMAT_TLM ? "a .tlm file"
                         : format == TLM_MODEL_FORMAT_LLMC
                             ? "an llm.c checkpoint"
                         : format == TLM_MODEL_FORMAT_LLAMA2C
                             ? "a llama2.c checkpoint"
                             : "a tlm safetensors export");
    int status = TLM_OK;
    switch (format) {
    case TLM_MODEL_FORMAT_TLM:
        status = tlm_model_load(out, ctx, path, NULL);
        break;
    case TLM_MODEL_FORMAT_SAFETENSORS:
        status = tlmi_model_import_safetensors(out, ctx, path,
                                               params.allow_nonfinite);
        break;
    case TLM_MODEL_FORMAT_HF:
        status = tlmi_hf_import(out, ctx, path, params.config_path,
                                params.config, params.allow_nonfinite);
        break;
    case TLM_MODEL_FORMAT_LLAMA2C:
        status = tlmi_llama2c_import_file(out, ctx, path);
        break;
    default:
        status = tlmi_llmc_import_file(out, ctx, path);
        break;
    }
    if (status == TLM_OK && !params.allow_nonfinite &&
        (format == TLM_MODEL_FORMAT_LLAMA2C || format == TLM_MODEL_FORMAT_LLMC)) {
        status = check_finite_parameters(*out, path);
        if (status != TLM_OK) {
            tlm_model_free(*out);
            *out = NULL;
        }
    }
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "tlm_model_import");
    return TLM_OK;
}

TLM_API int tlm_model_export(const tlm_model *model, const char *path,
                             const tlm_model_export_params *given) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_export", model);
    tlmi_host *host = &model->ctx->host;
    TLMI_CHECK_NOT_NULL(host, "tlm_model_export", path);
    tlm_model_export_params params;
    tlm_model_export_params_init(&params);
    TLMI_TRY(tlmi_params_merge(host, "tlm_model_export: params", &params,
                               sizeof params, given));
    if (params.format <= TLM_MODEL_FORMAT_AUTO ||
        params.format > TLM_MODEL_FORMAT_LLAMA2C)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_export: params.format %d is not a "
                         "tlm_model_format to write (1..5; AUTO is for "
                         "import)",
                         (int)params.format);
    if (params.weight_type < TLM_WEIGHT_F32 ||
        params.weight_type > TLM_WEIGHT_BF16)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_export: params.weight_type %d is not a "
                         "tlm_weight_type (0..2)",
                         (int)params.weight_type);
    int32_t format = params.format, type = params.weight_type;
    if ((format == TLM_MODEL_FORMAT_TLM ||
         format == TLM_MODEL_FORMAT_SAFETENSORS) &&
        type != TLM_WEIGHT_F32)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "tlm_model_export: params.weight_type: tlm's own "
                         "formats take TLM_WEIGHT_F32 (a .tlm file keeps the "
                         "model's weight format, safetensors get float32; "
                         "tlm_model_quantize converts a model to bf16 or "
                         "int8)");
    if (format == TLM_MODEL_FORMAT_LLMC && type == TLM_WEIGHT_F16)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "tlm_model_export: params.weight_type: llm.c "
                         "checkpoints hold float32 (version 3) or bfloat16 "
                         "(version 5), not float16");
    if (format == TLM_MODEL_FORMAT_LLAMA2C && type != TLM_WEIGHT_F32)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "tlm_model_export: params.weight_type: llama2.c's "
                         "legacy checkpoints (what run.c reads) hold float32 "
                         "only");
    /* Other formats get a quantized model's dequantized values (the
     * export's weight_type converts them from there). */
    tlm_model *dequantized = NULL;
    if (format != TLM_MODEL_FORMAT_TLM && model->weight_format != TLM_WEIGHTS_F32) {
        const int quantized = tlm_model_quantize(&dequantized, model, TLM_WEIGHTS_F32);
        if (quantized != TLM_OK)
            return tlmi_fail_forward(host, quantized, "tlm_model_export");
        model = dequantized;
    }
    int status = TLM_OK;
    switch (format) {
    case TLM_MODEL_FORMAT_TLM:
        status = tlm_model_save(model, path);
        break;
    case TLM_MODEL_FORMAT_SAFETENSORS:
        status = tlm_model_export_safetensors(model, path);
        break;
    case TLM_MODEL_FORMAT_HF:
        status = tlmi_hf_export(model, path, type);
        break;
    case TLM_MODEL_FORMAT_LLAMA2C:
        status = tlmi_llama2c_export(model, path);
        break;
    default:
        status = tlmi_llmc_export(model, path, type);
        break;
    }
    tlm_model_free(dequantized);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "tlm_model_export");
    return TLM_OK;
}
