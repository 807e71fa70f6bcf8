/*
 * The transformer model: its parameters (named as in docs/model.md) and
 * the training forward pass built from the public operations.
 */
#ifndef TLM_LIB_MODEL_MODEL_H
#define TLM_LIB_MODEL_MODEL_H

#include "base/host.h"
#include "tlm.h"

/* Longest parameter name, terminator included. */
#define TLMI_PARAM_NAME_MAX 64

typedef struct tlmi_norm_params {
    tlm_tensor *weight; /* [D] */
    tlm_tensor *bias;   /* [D], LayerNorm with bias only */
} tlmi_norm_params;

typedef struct tlmi_attention_params {
    tlm_tensor *q_weight, *q_bias; /* [H*hd, D], [H*hd] */
    tlm_tensor *k_weight, *k_bias; /* [Hkv*hd, D], [Hkv*hd] */
    tlm_tensor *v_weight, *v_bias; /* [Hkv*hd, D], [Hkv*hd] */
    tlm_tensor *o_weight, *o_bias; /* [D, H*hd], [D] */
} tlmi_attention_params;

typedef struct tlmi_ffn_params {
    tlm_tensor *gate_weight, *gate_bias; /* [F, D], [F]: SwiGLU only */
    tlm_tensor *up_weight, *up_bias;     /* [F, D], [F] */
    tlm_tensor *down_weight, *down_bias; /* [D, F], [D] */
} tlmi_ffn_params;

typedef struct tlmi_layer_params {
    tlmi_norm_params self_attn_norm;
    tlmi_attention_params self_attn;
    tlmi_norm_params cross_attn_norm; /* decoder layers of seq2seq models */
    tlmi_attention_params cross_attn;
    tlmi_norm_params ffn_norm;
    tlmi_ffn_params ffn;
} tlmi_layer_params;

typedef struct tlmi_named_parameter {
    char name[TLMI_PARAM_NAME_MAX];
    tlm_tensor *tensor;
} tlmi_named_parameter;

/* Where tlmi_model_build takes parameter values from: `lookup` returns
 * the data of the parameter `name` with the given shape, or a status after
 * tlmi_fail. With `copy` the parameter is an ordinary trainable tensor
 * holding a copy (a quantized matrix is a copy that does not train);
 * without, it borrows the data read-only. `copied` (or NULL) is told each
 * source range once it has been copied, so that a file mapped for loading
 * can let those pages go and the load never holds the weights twice.
 * The matrices (every 2-D parameter) are in the format `weights`. */
typedef struct tlmi_parameter_source {
    int (*lookup)(void *user, const char *name, int32_t ndim,
                  const int64_t *shape, const void **data);
    void *user;
    int copy;
    void (*copied)(void *user, const void *data, size_t size);
    int32_t weights; /* enum tlm_weight_format of the matrices lookup
                        returns, in the layout of lib/kernels/weights.h;
                        norms and biases always float32 */
} tlmi_parameter_source;

struct tlm_model {
    tlm_context *ctx;          /* owns the parameters; gets the errors */
    void *mapping;             /* a tlmi_file_mapping the parameters borrow
                                  from (memory-mapped load), or NULL */
    tlm_tokenizer *tokenizer;  /* attached copy, or NULL */
    tlm_model_config config;   /* resolved: head_dim, d_ff, n_kv_heads set */
    int32_t weight_format;     /* enum tlm_weight_format of every matrix
                                  (2-D parameter); norms, biases: float32 */

    tlm_tensor *token_embedding;    /* [V, D] */
    tlm_tensor *position_embedding; /* [max_context, D], learned only */
    tlmi_layer_params *encoder;     /* n_encoder_layers */
    tlmi_layer_params *decoder;     /* n_decoder_layers */
    tlmi_norm_params encoder_final_norm; /* pre-norm only */
    tlmi_norm_params decoder_final_norm;
    tlm_tensor *lm_head;            /* [V, D], untied only */

    tlmi_named_parameter *parameters; /* every tensor above, named */
    int32_t n_parameters;
    int32_t parameters_capacity;
    /* The values of every parameter (quantized matrices included), one
     * allocation (so that a large enough model sits on 2 MiB pages: see
     * lib/base/host.c), each tensor a view at a 64-byte aligned offset;
     * NULL for a memory-mapped model, whose parameters borrow the
     * mapping. Gradients are separate. */
    unsigned char *parameter_block;
    size_t parameter_block_bytes;
};

struct tlmi_container;
struct tlmi_container_section_spec;

/* tlm_model_save, with more sections after the model's (a trainer's
 * optimizer and position). */
int tlmi_model_save_with(const tlm_model *model, const char *path,
                         const struct tlmi_container_section_spec *extra,
                         int32_t n_extra);

/* Checks the parameters of a parsed .tlm file for `model` (the same
 * configuration, every tensor present with its shape, float32 and finite)
 * and sets sources[i] (model->n_parameters entries) to where parameter i's
 * values are in the file; changes nothing. */
int tlmi_model_check_parameters(const tlm_model *model, const char *what,
                                const char *path,
                                const struct tlmi_container *checkpoint,
                                const void **sources);

/* Copies the values tlmi_model_check_parameters found into the model's
 * parameters; cannot fail. */
void tlmi_model_copy_parameters(tlm_model *model, const void *const *sources);

/* Attaches the tokenizer saved in `data` (its file format). */
int tlmi_model_attach_tokenizer_bytes(tlm_model *model, const char *what,
                                      const void *data, size_t size);

/* The attached tokenizer in its file format, in host memory (release with
 * tlmi_host_free(&model->ctx->host, *data, size rounded as allocated: the
 * function allocates exactly *size bytes)); NULL/0 when none. */
int tlmi_model_tokenizer_bytes(const tlm_model *model, void **data, size_t *size);

/* tlm_model_create, with parameters initialised (source NULL) or
 * borrowed from `source`. */
int tlmi_model_build(tlm_model **out, tlm_context *ctx,
                     const tlm_model_config *config,
                     const tlmi_parameter_source *source);

#endif
