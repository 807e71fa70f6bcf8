/* A model configuration as JSON: the object stored in .tlm files (the
 * `config` section) and in safetensors exports (`tlm.config`), with the
 * field names and values of docs/model.md, and the weight format of its
 * matrices (docs/format.md). */
#ifndef TLM_LIB_MODEL_MODEL_CONFIG_H
#define TLM_LIB_MODEL_MODEL_CONFIG_H

#include <stddef.h>

#include "base/host.h"
#include "tlm.h"

/* Writes `config` as a JSON object into host memory: *text (NUL-terminated)
 * of *size bytes, released with tlmi_host_free(host, *text, *size + 1).
 * `weights` (an enum tlm_weight_format) is written as "weights" when it
 * is not TLM_WEIGHTS_F32, so that float32 files are as they always were. */
int tlmi_model_config_to_json(tlmi_host *host, const tlm_model_config *config,
                              int32_t weights, char **text, size_t *size);

/* Reads a configuration from JSON text. Every field must be present with a
 * valid value; unknown fields are refused (a newer writer's setting this
 * library cannot honour). `what` names the source in messages. The result
 * is not yet validated as a whole: tlm_model_create does that. *weights
 * gets the "weights" field (TLM_WEIGHTS_F32 when absent); with weights
 * NULL, only float32 is accepted (a reader of float32 values). */
int tlmi_model_config_from_json(tlmi_host *host, const char *what,
                                const char *text, size_t size,
                                tlm_model_config *config, int32_t *weights);

/* The name of an enum tlm_weight_format as files and messages give it
 * ("f32", "bf16", "int8"), or "unknown". */
const char *tlmi_weight_format_name(int32_t format);

#endif
