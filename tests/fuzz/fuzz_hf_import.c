/* Fuzz target: the Hugging Face weights import (tlm_model_import with
 * TLM_MODEL_FORMAT_HF: a model.safetensors read through
 * lib/model/format_hf.c and format_hf_llama.c, GPT-2 and Llama names,
 * F32/F16/BF16, Llama's q/k rows permuted) with each configuration of
 * fuzz_hf_config given (params.config), so the input is the weights file
 * alone. Any input is a status with a message, or a model whose session
 * decodes a token. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size);
    tlm_context *ctx = fuzz_context();
    for (int which = 0; which < FUZZ_HF_CONFIGS; which++) {
        tlm_model_config config;
        fuzz_hf_config(which, &config);
        tlm_model_import_params params;
        tlm_model_import_params_init(&params);
        params.format = TLM_MODEL_FORMAT_HF;
        params.config = &config;
        tlm_model *model = NULL;
        const int status = tlm_model_import(&model, ctx, path, &params);
        fuzz_check_loaded(ctx, "tlm_model_import", status, model);
    }
    return 0;
}
