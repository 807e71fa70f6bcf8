/* Fuzz target: the Hugging Face config.json reader on Llama
 * configurations (tlmi_hf_config_parse -> tlmi_hf_llama_config_parse,
 * lib/model/format_hf_llama.c; the seeds are LlamaForCausalLM configs).
 * Any input is a status with a message, or a configuration the Llama
 * exporter accepts whose heads divide its width or set head_dim. */
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
        fuzz_check(host->last_error[0] != '\0',
                   "hf llama config: a failure has a message");
        return 0;
    }
    if (!tlmi_hf_is_llama(&config))
        return 0; /* a GPT-2 configuration: hf_config's */
    fuzz_check(tlmi_hf_llama_check_expressible(host, "fuzz", &config) == TLM_OK,
               "hf llama config: a Llama configuration");
    fuzz_check(config.head_dim != 0 || config.d_model % config.n_heads == 0,
               "hf llama config: heads divide the width");
    fuzz_check((config.head_dim != 0 ? config.head_dim
                                     : config.d_model / config.n_heads) % 2 == 0,
               "hf llama config: an even head size");
    return 0;
}
