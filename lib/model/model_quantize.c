/*
 * A model's matrices in another weight format (docs/quantization.md):
 * tlm_model_quantize builds the copy through tlmi_model_build, with a
 * parameter source that converts each matrix of the original (float32 or
 * quantized) into the target format as the build asks for it, so that
 * the copy is laid out exactly as a loaded model of that format.
 */
#include <string.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/error.h"
#include "kernels/weights.h"
#include "model.h"

/* The parameter source over the original model: one scratch buffer,
 * reused for each matrix (the build copies it out before the next
 * lookup). */
typedef struct converter {
    const tlm_model *model;
    int32_t format;   /* the target's enum tlm_weight_format */
    float *values;    /* [rows, cols] the matrix as float32 */
    size_t values_bytes;
    void *converted;  /* the matrix in the target format */
    size_t converted_bytes;
} converter;

/* Makes *buffer hold at least `bytes` (64-byte aligned). */
static int reserve(tlmi_host *host, void **buffer, size_t *capacity,
                   size_t bytes) {
    if (*capacity >= bytes)
        return TLM_OK;
    tlmi_host_free(host, *buffer, *capacity);
    *capacity = 0;
    *buffer = tlmi_host_alloc(host, bytes, 64);
    if (*buffer == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "tlm_model_quantize: allocating %zu bytes failed",
                         bytes);
    *capacity = bytes;
    return TLM_OK;
}

static int convert(void *user, const char *name, int32_t ndim,
                   const int64_t *shape, const void **data) {
    converter *c = user;
    tlmi_host *host = &c->model->ctx->host;
    const tlm_tensor *t = NULL;
    for (int32_t i = 0; i < c->model->n_parameters && t == NULL; i++)
        if (strcmp(c->model->parameters[i].name, name) == 0)
            t = c->model->parameters[i].tensor;
    /* The same configuration has the same parameters. */
    if (t == NULL || t->ndim != ndim || t->shape[0] != shape[0] ||
        (ndim == 2 && t->shape[1] != shape[1]))
        return tlmi_fail(host, TLM_E_INTERNAL,
                         "tlm_model_quantize: parameter '%s' differs", name);
    if (ndim != 2 || (t->dtype == tlmi_dtype_of_weight_format(c->format))) {
        /* Norms, biases, and matrices already in the format. */
        *data = t->data;
        return TLM_OK;
    }
    const int64_t rows = shape[0], cols = shape[1];
    const float *values = t->data;
    if (t->dtype != TLM_DTYPE_F32) {
        TLMI_TRY(reserve(host, (void **)&c->values, &c->values_bytes,
                         (size_t)rows * (size_t)cols * sizeof(float)));
        const tlmi_weights w = tlmi_tensor_weights(t);
        tlmi_weights_dequantize_rows(c->values, &w, 0, rows);
        values = c->values;
    }
    if (c->format == TLM_WEIGHTS_F32) {
        *data = values;
        return TLM_OK;
    }
    TLMI_TRY(reserve(host, &c->converted, &c->converted_bytes,
                     tlmi_weights_bytes(c->format, rows, cols)));
    int64_t bad_row = 0;
    if (tlmi_weights_quantize(c->converted, values, c->format, rows, cols,
                              &bad_row) != 0)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_quantize: tensor '%s' holds NaN or "
                         "infinity (row %lld); a model with non-finite "
                         "weights cannot be quantized",
                         name, (long long)bad_row);
    *data = c->converted;
    return TLM_OK;
}

TLM_API int tlm_model_quantize(tlm_model **out, const tlm_model *model,
                               int32_t format) {
    TLMI_CHECK_OUT(NULL, "tlm_model_quantize", out, NULL);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_quantize", model);
    tlmi_host *host = &model->ctx->host;
    if (format != TLM_WEIGHTS_F32 && format != TLM_WEIGHTS_BF16 &&
        format != TLM_WEIGHTS_INT8)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_model_quantize: format %d is not a "
                         "tlm_weight_format (0 f32, 1 bf16, 2 int8)",
                         (int)format);
    converter c = {model, format, NULL, 0, NULL, 0};
    const tlmi_parameter_source source = {convert, &c, 1, NULL, format};
    tlm_model *copy = NULL;
    int status = tlmi_model_build(&copy, model->ctx, &model->config, &source);
    tlmi_host_free(host, c.values, c.values_bytes);
    tlmi_host_free(host, c.converted, c.converted_bytes);
    if (status == TLM_OK && model->tokenizer != NULL)
        status = tlm_model_set_tokenizer(copy, model->tokenizer);
    if (status != TLM_OK) {
        tlm_model_free(copy);
        /* convert's refusals name this call already; the build's own
         * (out of memory) and the tokenizer's get it in front. */
        if (strncmp(tlm_last_error(), "tlm_model_quantize", 18) != 0)
            return tlmi_fail_forward(host, status, "tlm_model_quantize");
        return status;
    }
    *out = copy;
    return TLM_OK;
}

TLM_API int32_t tlm_model_weight_format(const tlm_model *model) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_model_weight_format", model);
    return model->weight_format;
}
