/* Fuzz target: tlm_model_import_safetensors (lib/model/model_safetensors.c on
 * top of the safetensors reader), through a file. */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size);
    tlm_context *ctx = fuzz_context();
    tlm_model *model = NULL;
    int status = tlm_model_import_safetensors(&model, ctx, path);
    fuzz_check((status == TLM_OK) == (model != NULL),
               "import: model set exactly on success");
    if (status != TLM_OK)
        fuzz_check(tlm_context_last_error(ctx)[0] != '\0',
                   "import: a failure has a message");
    tlm_model_free(model);
    return 0;
}
