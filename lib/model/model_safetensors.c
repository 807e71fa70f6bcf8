/* The model's parameters as a safetensors file: export and import. */
#include <stdio.h>
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "io/safetensors.h"
#include "formats.h"
#include "model.h"
#include "model_config.h"

#define CONFIG_KEY "tlm.config"

TLM_API int tlm_model_export_safetensors(const tlm_model *model,
                                         const char *path) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_export_safetensors", model);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_export_safetensors", path);
    tlmi_host *host = &model->ctx->host;
    char *config = NULL;
    size_t config_size = 0;
    tlmi_safetensors_writer *writer = NULL;
    /* A quantized model's values are written dequantized. */
    tlm_model *dequantized = NULL;
    int status = TLM_OK;
    if (model->weight_format != TLM_WEIGHTS_F32) {
        status = tlm_model_quantize(&dequantized, model, TLM_WEIGHTS_F32);
        if (status != TLM_OK)
            goto cleanup;
        model = dequantized;
    }
    status = tlmi_model_config_to_json(host, &model->config, TLM_WEIGHTS_F32, &config,
                                       &config_size);
    if (status != TLM_OK)
        goto cleanup;
    status = tlmi_safetensors_writer_create(host, &writer);
    if (status != TLM_OK)
        goto cleanup;
    status = tlmi_safetensors_writer_add_metadata(writer, CONFIG_KEY, config);
    if (status != TLM_OK)
        goto cleanup;
    for (int32_t i = 0; i < model->n_parameters; i++) {
        const tlm_tensor *t = model->parameters[i].tensor;
        status = tlmi_safetensors_writer_add(writer, model->parameters[i].name,
                                             TLMI_ST_F32, t->ndim, t->shape,
                                             t->data);
        if (status != TLM_OK)
            goto cleanup;
    }
    status = tlmi_safetensors_writer_save(writer, path);
cleanup:
    tlmi_safetensors_writer_free(writer);
    tlm_model_free(dequantized);
    if (config != NULL)
        tlmi_host_free(host, config, config_size + 1);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "tlm_model_export_safetensors");
    return TLM_OK;
}

/* Copies every parameter of `model` from `st`, checking names and shapes. */
static int copy_parameters(tlm_model *model, const tlmi_safetensors *st,
                           const char *path, int32_t allow_nonfinite) {
    tlmi_host *host = &model->ctx->host;
    for (int32_t i = 0; i < model->n_parameters; i++) {
        const char *name = model->parameters[i].name;
        tlm_tensor *t = model->parameters[i].tensor;
        const tlmi_safetensors_entry *entry = tlmi_safetensors_find(st, name);
        if (entry == NULL)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "'%s' lacks the parameter '%s' that its "
                             "configuration requires",
                             path, name);
        int same = entry->ndim == t->ndim;
        for (int32_t d = 0; same && d < t->ndim; d++)
            same = entry->shape[d] == t->shape[d];
        if (!same) {
            char expected[64], got[64];
            tlmi_dims_string(entry->ndim, entry->shape, got, sizeof got);
            return tlmi_fail(host, TLM_E_FORMAT,
                             "'%s': tensor '%s' is %s, the configuration needs %s",
                             path, name, got,
                             tlmi_shape_string(t, expected, sizeof expected));
        }
        if (entry->dtype == TLMI_ST_I32)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "'%s': tensor '%s' holds integers, not floats",
                             path, name);
        const char *value = NULL;
        const int64_t bad =
            allow_nonfinite ? -1 : tlmi_safetensors_first_nonfinite(entry, &value);
        if (bad >= 0)
            return tlmi_import_refuse_nonfinite(host, path, "tensor", name, value,
                                                bad, entry->shape, entry->ndim);
        int status = tlmi_safetensors_copy_f32(st, entry, t->data, t->numel);
        if (status != TLM_OK)
            return status;
    }
    return TLM_OK;
}

TLM_API int tlm_model_import_safetensors(tlm_model **out, tlm_context *ctx,
                                         const char *path) {
    return tlmi_model_import_safetensors(out, ctx, path, 0);
}

int tlmi_model_import_safetensors(tlm_model **out, tlm_context *ctx,
                                  const char *path, int32_t allow_nonfinite) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_import_safetensors", out);
    *out = NULL;
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_import_safetensors", ctx);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_import_safetensors", path);
    tlmi_host *host = &ctx->host;
    tlmi_safetensors *st = NULL;
    tlm_model *model = NULL;
    int status = tlmi_safetensors_open(host, path, TLMI_ST_OPEN_READ, &st);
    if (status != TLM_OK)
        goto cleanup;
    size_t config_length = 0;
    const char *config_text =
        tlmi_safetensors_metadata(st, CONFIG_KEY, &config_length);
    if (config_text == NULL) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "'%s' has no \"%s\" metadata: not a tlm model "
                           "(export it with tlm_model_export_safetensors)",
                           path, CONFIG_KEY);
        goto cleanup;
    }
    tlm_model_config config;
    status = tlmi_model_config_from_json(host, path, config_text,
                                         config_length, &config, NULL);
    if (status != TLM_OK)
        goto cleanup;
    status = tlm_model_create(&model, ctx, &config);
    if (status != TLM_OK)
        goto cleanup;
    status = copy_parameters(model, st, path, allow_nonfinite);
cleanup:
    tlmi_safetensors_free(st);
    if (status != TLM_OK) {
        tlm_model_free(model);
        return tlmi_fail_forward(host, status, "tlm_model_import_safetensors");
    }
    *out = model;
    return TLM_OK;
}
