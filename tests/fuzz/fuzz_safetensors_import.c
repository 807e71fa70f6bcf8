/* Fuzz target: tlm_model_import_safetensors (lib/model/model_safetensors.c on
 * top of the safetensors reader), through a file. Any input is a status
 * with a message, or a model whose session decodes a token. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size);
    tlm_context *ctx = fuzz_context();
    tlm_model *model = NULL;
    const int status = tlm_model_import_safetensors(&model, ctx, path);
    fuzz_check_loaded(ctx, "tlm_model_import_safetensors", status, model);
    return 0;
}
