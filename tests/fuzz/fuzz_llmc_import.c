/* Fuzz target: the llm.c checkpoint reader on a buffer
 * (tlmi_llmc_import_buffer, lib/model/format_llmc.c). Any input is a
 * status with a message, or a GPT-2 model whose configuration is the
 * header's; the header fixes the size exactly, so an accepted input is as
 * large as the model it makes. */
#include "autodiff/context.h"
#include "base/host.h"
#include "fuzz.h"
#include "model/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_context *ctx = fuzz_context();
    tlmi_host *host = &ctx->host;
    tlm_model *model = NULL;
    int status = tlmi_llmc_import_buffer(&model, ctx, "fuzz input", data, size);
    if (status != TLM_OK) {
        fuzz_check(model == NULL, "llmc: no model on failure");
        fuzz_check(host->last_error[0] != '\0', "llmc: a failure has a message");
        return 0;
    }
    tlm_model_config config;
    tlm_model_config_init(&config);
    fuzz_check(tlm_model_get_config(model, &config) == TLM_OK, "llmc: config");
    fuzz_check(config.tied_output == 1 && config.n_encoder_layers == 0,
               "llmc: a tied GPT-2");
    tlm_model_free(model);
    return 0;
}
