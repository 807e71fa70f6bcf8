/* Fuzz target: the model configuration reader
 * (tlmi_model_config_from_json), the JSON a .tlm file and a safetensors
 * export carry. An accepted configuration goes to tlm_model_create with a
 * bounded memory budget; one that creates a model must write back to JSON
 * that reads again to the same configuration. */
#include <string.h>

#include "autodiff/context.h"
#include "base/host.h"
#include "fuzz.h"
#include "model/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_context *ctx = fuzz_context();
    tlmi_host *host = &ctx->host;
    tlm_model_config config;
    tlm_model_config_init(&config);
    int32_t weights = -1;
    int status = tlmi_model_config_from_json(host, "fuzz input", (const char *)data,
                                             size, &config, &weights);
    if (status != TLM_OK) {
        fuzz_check(host->last_error[0] != '\0', "config: a failure has a message");
        return 0;
    }
    fuzz_check(weights >= TLM_WEIGHTS_F32 && weights <= TLM_WEIGHTS_INT8,
               "config: a weight format read is one of enum tlm_weight_format");
    tlm_model *model = NULL;
    if (tlm_model_create(&model, ctx, &config) != TLM_OK)
        return 0;
    tlm_model_config resolved;
    tlm_model_config_init(&resolved);
    fuzz_check(tlm_model_get_config(model, &resolved) == TLM_OK, "config: get");
    char *text = NULL;
    size_t length = 0;
    if (tlmi_model_config_to_json(host, &resolved, weights, &text, &length) ==
        TLM_OK) {
        tlm_model_config again;
        tlm_model_config_init(&again);
        int32_t weights_again = -1;
        fuzz_check(tlmi_model_config_from_json(host, "written", text, length,
                                               &again, &weights_again) == TLM_OK,
                   "config: what is written reads back");
        fuzz_check(weights_again == weights, "config: the weight format reads back");
        fuzz_check(memcmp(&again, &resolved, sizeof again) == 0,
                   "config: the same configuration reads back");
        tlmi_host_free(host, text, length + 1);
    }
    tlm_model_free(model);
    return 0;
}
