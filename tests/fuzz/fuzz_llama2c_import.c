/* Fuzz target: the llama2.c checkpoint reader on a buffer
 * (tlmi_llama2c_import_buffer, lib/model/format_llama2c.c), every layout
 * (legacy, "ak42" version 1 and version 2's int8 Q8_0, read directly as
 * int8 or through float32). Any input is a status with a message, or
 * a Llama-shaped decoder whose configuration is the header's; the header
 * fixes the size exactly, so an accepted input is as large as the model
 * it makes. */
#include <string.h>

#include "autodiff/context.h"
#include "base/host.h"
#include "fuzz.h"
#include "model/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_context *ctx = fuzz_context();
    tlmi_host *host = &ctx->host;
    tlm_model *model = NULL;
    int status =
        tlmi_llama2c_import_buffer(&model, ctx, "fuzz input", data, size);
    if (status != TLM_OK) {
        fuzz_check(model == NULL, "llama2c: no model on failure");
        fuzz_check(strstr(host->last_error, "fuzz input") != NULL,
                   "llama2c: a failure has a message naming the file");
        return 0;
    }
    tlm_model_config config;
    tlm_model_config_init(&config);
    fuzz_check(tlm_model_get_config(model, &config) == TLM_OK,
               "llama2c: config");
    fuzz_check(config.position == TLM_POSITION_ROTARY &&
                   config.n_encoder_layers == 0 && config.bias == 0,
               "llama2c: a Llama-shaped decoder");
    fuzz_check(tlmi_llama2c_check_expressible(host, "fuzz", &config) == TLM_OK,
               "llama2c: exportable again");
    tlm_model_free(model);
    return 0;
}
