/* Fuzz target: the Hugging Face config.json reader (tlmi_hf_config_parse,
 * lib/model/format_hf.c), GPT-2 configurations (Llama's have their own
 * target, hf_llama_config). Any input is a status with a message, or a
 * configuration that GPT-2 or Llama can express (that the Hugging Face
 * exporter's checks accept). */
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
    fuzz_check(tlmi_hf_is_llama(&config)
                   ? tlmi_hf_llama_check_expressible(host, "fuzz", &config) ==
                         TLM_OK
                   : tlmi_gpt2_check_expressible(host, "fuzz", &config,
                                                 TLMI_GPT2_HF) == TLM_OK,
               "hf config: a GPT-2 or Llama configuration");
    return 0;
}
