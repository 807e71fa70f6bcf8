/*
 * Other programs' model files (docs/formats-import.md): Hugging Face GPT-2
 * and Llama checkpoints (format_hf.c, format_hf_llama.c), llm.c
 * checkpoints (format_llmc.c) and llama2.c checkpoints
 * (format_llama2c.c), read
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

/* A Hugging Face GPT-2 or Llama config.json (`size` bytes of `text`) as
 * a tlm configuration, decided by model_type / architectures. Refuses
 * other architectures ("unknown architecture 'X'") and values tlm cannot
 * compute, naming the field; `what` names the file in messages. Safe on
 * any bytes (fuzz targets hf_config, hf_llama_config). */
int tlmi_hf_config_parse(tlmi_host *host, const char *what, const char *text,
                         size_t size, tlm_model_config *config);

/* Imports a Hugging Face GPT-2 or Llama checkpoint: `path` is its directory, its
 * model.safetensors or its model.safetensors.index.json. The configuration
 * is `config` when not NULL, else read from `config_path`, else from the
 * config.json beside the weights. A NaN or infinite weight is refused
 * unless `allow_nonfinite`. */
int tlmi_hf_import(tlm_model **out, tlm_context *ctx, const char *path,
                   const char *config_path, const tlm_model_config *config,
                   int32_t allow_nonfinite);

/* tlm_model_import_safetensors, refusing a NaN or infinite weight unless
 * `allow_nonfinite` (model_safetensors.c). */
int tlmi_model_import_safetensors(tlm_model **out, tlm_context *ctx,
                                  const char *path, int32_t allow_nonfinite);

/* The refusal of a NaN or infinite weight, one message for every
 * importer: "'<path>': <kind> '<name>' has <value> at element N [i, j]
 * (non-finite weights are refused; ...)", where `element` is the flat
 * index into `shape` (`ndim` sizes, row-major) and `kind` says what
 * `name` names ("tensor" in the file, "parameter" of the model).
 * Returns TLM_E_FORMAT. */
int tlmi_import_refuse_nonfinite(tlmi_host *host, const char *path,
                                 const char *kind, const char *name,
                                 const char *value, int64_t element,
                                 const int64_t *shape, int32_t ndim);

/* Writes model.safetensors + config.json into the directory `dir`
 * (created if absent), tensors in `weight_type` (a tlm_weight_type). */
int tlmi_hf_export(const tlm_model *model, const char *dir,
                   int32_t weight_type);

/* ---- Hugging Face Llama (format_hf_llama.c; the files are format_hf.c's) */

struct tlmi_json_value;
struct tlmi_json_writer;

/* The HF row of tlm's q/k row `tlm_row` (heads of `hd` rows): tlm row
 * 2i + r of a head is HF row r hd/2 + i (half-split rotary layout). */
int64_t tlmi_hf_rotary_row(int64_t tlm_row, int64_t hd);

/* 1 when the configuration's position, norm and activation are Llama's
 * (rotary, RMSNorm, SwiGLU): HF import and export use Llama's names. */
int tlmi_hf_is_llama(const tlm_model_config *config);

/* TLM_OK when a Llama config.json and names can express `config`; else
 * TLM_E_UNSUPPORTED naming the field. */
int tlmi_hf_llama_check_expressible(tlmi_host *host, const char *who,
                                    const tlm_model_config *config);

/* config.json's optional boolean `key` of object `root`: `fallback` when
 * absent or null, TLM_E_FORMAT naming the file `what` and the key when
 * not a boolean. */
int tlmi_hf_get_bool(tlmi_host *host, const char *what,
                     const struct tlmi_json_value *root, const char *key,
                     int fallback, int *out);

/* A LlamaForCausalLM config.json's object `root` as a tlm configuration
 * (n_kv_heads from num_key_value_heads); refuses (naming the field)
 * rope_scaling, a rope_type other than default, biases, hidden_act other
 * than silu. */
int tlmi_hf_llama_config_parse(tlmi_host *host, const char *what,
                               const struct tlmi_json_value *root,
                               tlm_model_config *config);

/* Llama's name (without the "model." prefix; lm_head.weight as is) of
 * tlm's parameter `tlm` into `hf`; *rotary says whether its rows are
 * permuted (q and k). 0 when tlm's name has no Llama counterpart. */
int tlmi_hf_llama_name(const char *tlm, char *hf, size_t size, int *rotary);

/* tlm's names of one decoder layer's parameters (after
 * "decoder.layers.N."), Llama's order. */
size_t tlmi_hf_llama_layer_count(void);
const char *tlmi_hf_llama_layer_name(size_t index);

/* Writes a LlamaForCausalLM config.json object for `model`. */
int tlmi_hf_llama_write_config(const tlm_model *model, int32_t weight_type,
                               struct tlmi_json_writer *writer);

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

/* The status of tlmi_model_build for a configuration read from a file:
 * its TLM_E_INVALID (tlm_model_create's limits, which the formats' own
 * ranges exceed: a 1025-layer or 2^21-position header) becomes
 * TLM_E_UNSUPPORTED with `what` (naming the file) before the message:
 * the file is not a bad argument, tlm cannot hold it. */
int tlmi_import_build_status(tlmi_host *host, int status, const char *what);

/* n_kv_heads of a configuration, 0 (the default) read as n_heads. */
static inline int32_t tlmi_config_kv_heads(const tlm_model_config *c) {
    return c->n_kv_heads != 0 ? c->n_kv_heads : c->n_heads;
}

/* llama2.c checkpoints: the "ak42" magic (little-endian uint32) and the
 * header sizes of the two layouts. */
#define TLMI_LLAMA2C_MAGIC 0x616b3432u
#define TLMI_LLAMA2C_LEGACY_HEADER_BYTES 28
#define TLMI_LLAMA2C_V1_HEADER_BYTES 256

/* A llama2.c header as read: the 7 fields (vocab_size positive), the
 * layout and whether the classifier is the embedding. */
typedef struct tlmi_llama2c_header {
    int32_t version;       /* 0: legacy, 1 or 2: "ak42" version 1 or 2 */
    int32_t shared;        /* 1: wcls is the token embedding */
    uint64_t header_bytes; /* 28 or 256 */
    uint64_t expected_size; /* what the fields imply; 0 until they passed */
    int64_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
        seq_len;
    int64_t group_size;    /* version 2 (Q8_0): weights per scale; else 0 */
} tlmi_llama2c_header;

/* Reads and checks the header in the first `got` bytes of a `file_size`
 * byte file: every field's range, heads dividing dim, n_kv_heads dividing
 * n_heads, an even head size, version 2's group size dividing every
 * quantized tensor, the file size exactly what the header
 * implies. Recorded on `host` (NULL: the thread only) as "llama2.c
 * checkpoint '<what>': ..." when not TLM_OK; h->expected_size is set
 * once the fields passed, so a caller can tell a wrong size from a
 * header that is no llama2.c header. */
int tlmi_llama2c_parse_header(tlmi_host *host, const char *what,
                              const unsigned char *head, size_t got,
                              uint64_t file_size, tlmi_llama2c_header *h);

/* The file size the header implies. */
uint64_t tlmi_llama2c_expected_size(const tlmi_llama2c_header *h);

/* The tlm configuration of a llama2.c header. */
void tlmi_llama2c_config(const tlmi_llama2c_header *h,
                         tlm_model_config *config);

/* Imports a llama2.c checkpoint held in `size` bytes at `data`. Safe on
 * any bytes (a fuzz target). */
int tlmi_llama2c_import_buffer(tlm_model **out, tlm_context *ctx,
                               const char *what, const void *data,
                               size_t size);

/* Imports the llama2.c checkpoint `path`, reading it tensor by tensor. */
int tlmi_llama2c_import_file(tlm_model **out, tlm_context *ctx,
                             const char *path);

/* TLM_OK when llama2.c's legacy format (run.c) can hold `config`; else
 * TLM_E_UNSUPPORTED naming the field, "<who>: ..." on `host`. */
int tlmi_llama2c_check_expressible(tlmi_host *host, const char *who,
                                   const tlm_model_config *config);

/* Writes `model` as a legacy llama2.c checkpoint (float32), atomically. */
int tlmi_llama2c_export(const tlm_model *model, const char *path);

#endif
