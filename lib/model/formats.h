/*
 * Other programs' model files (docs/formats-import.md): Hugging Face GPT-2
 * checkpoints (format_hf.c) and llm.c checkpoints (format_llmc.c), read
 * into and written from tlm's parameters; model_import.c detects the
 * format and dispatches tlm_model_import / tlm_model_export.
 */
#ifndef TLM_LIB_MODEL_FORMATS_H
#define TLM_LIB_MODEL_FORMATS_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"
#include "tlm.h"

/* Which program a GPT-2 check is for: the names in messages differ and
 * llm.c fixes more than Hugging Face (tanh GELU, 4 D, eps 1e-5, tied). */
enum tlmi_gpt2_target { TLMI_GPT2_HF = 0, TLMI_GPT2_LLMC = 1 };

/* TLM_OK when `config` (head_dim and d_ff may be 0: resolved) is a GPT-2
 * that `target` can express; else TLM_E_UNSUPPORTED naming the field,
 * "<who>: ..." recorded on `host`. */
int tlmi_gpt2_check_expressible(tlmi_host *host, const char *who,
                                const tlm_model_config *config, int target);

/* A Hugging Face GPT-2 config.json (`size` bytes of `text`) as a tlm
 * configuration. Refuses other architectures ("unknown architecture 'X'")
 * and values tlm cannot compute, naming the field; `what` names the file
 * in messages. Safe on any bytes (a fuzz target). */
int tlmi_hf_config_parse(tlmi_host *host, const char *what, const char *text,
                         size_t size, tlm_model_config *config);

/* Imports a Hugging Face GPT-2 checkpoint: `path` is its directory, its
 * model.safetensors or its model.safetensors.index.json. The configuration
 * is `config` when not NULL, else read from `config_path`, else from the
 * config.json beside the weights. */
int tlmi_hf_import(tlm_model **out, tlm_context *ctx, const char *path,
                   const char *config_path, const tlm_model_config *config);

/* Writes model.safetensors + config.json into the directory `dir`
 * (created if absent), tensors in `weight_type` (a tlm_weight_type). */
int tlmi_hf_export(const tlm_model *model, const char *dir,
                   int32_t weight_type);

/* The llm.c checkpoint magic and versions. */
#define TLMI_LLMC_MAGIC 20240326
#define TLMI_LLMC_VERSION_F32 3
#define TLMI_LLMC_VERSION_BF16 5
#define TLMI_LLMC_HEADER_BYTES 1024

/* Imports an llm.c checkpoint held in `size` bytes at `data` (`what`
 * names it in messages). Safe on any bytes (a fuzz target). */
int tlmi_llmc_import_buffer(tlm_model **out, tlm_context *ctx,
                            const char *what, const void *data, size_t size);

/* Imports the llm.c checkpoint `path`, reading it tensor by tensor. */
int tlmi_llmc_import_file(tlm_model **out, tlm_context *ctx,
                          const char *path);

/* Writes `model` as an llm.c checkpoint: version 3 for TLM_WEIGHT_F32,
 * version 5 for TLM_WEIGHT_BF16. */
int tlmi_llmc_export(const tlm_model *model, const char *path,
                     int32_t weight_type);

#endif
