/* Fuzz target: the Hugging Face GPT-2 config.json reader
 * (tlmi_hf_config_parse, lib/model/format_hf.c). Any input is a status
 * with a message, or a configuration that GPT-2 can express (that the
 * Hugging Face exporter's check, tlmi_gpt2_check_expressible, accepts). */
#include "autodiff/context.h"
#include "base/host.h"
#include "fuzz.h"
#include "model/formats.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_context *ctx = fuzz_context();
    tlmi_host *host = &ctx->host;
    tlm_model_config config;
    tlm_model_config_init(&config);
    int status = tlmi_hf_config_parse(host, "fuzz input", (const char *)data,
                                      size, &config);
    if (status != TLM_OK) {
        fuzz_check(host->last_error[0] != '\0', "hf config: a failure has a message");
        return 0;
    }
    fuzz_check(tlmi_gpt2_check_expressible(host, "fuzz", &config,
                                           TLMI_GPT2_HF) == TLM_OK,
               "hf config: a GPT-2 configuration");
    return 0;
}
