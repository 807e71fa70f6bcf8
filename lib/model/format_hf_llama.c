/*
 * What is Llama about Hugging Face checkpoints (transformers'
 * LlamaForCausalLM / LlamaModel): config.json read and written, the
 * tensor names, and the rows of q and k. The files themselves (the
 * safetensors mapping, shards, release per tensor, the directory written)
 * are format_hf.c's, shared with GPT-2. docs/formats-import.md lists what
 * is accepted.
 *
 * Hugging Face rotates the two halves of each head (x[i] with x[i + hd/2],
 * rotate_half), tlm and llama2.c rotate interleaved pairs (x[2i] with
 * x[2i+1]); the same model therefore stores q's and k's rows in another
 * order per head: tlm row 2i + r is HF row r hd/2 + i (i < hd/2, r in
 * {0, 1}). It is the permutation convert_llama_weights_to_hf.py applies,
 * undone exactly (a reordering of rows: no arithmetic).
 */
#include <stdio.h>
#include <string.h>

#include "base/error.h"
#include "formats.h"
#include "io/json.h"
#include "model.h"
#include "text/tokenizer.h"

int64_t tlmi_hf_rotary_row(int64_t tlm_row, int64_t hd) {
    const int64_t head = tlm_row / hd, j = tlm_row % hd;
    return head * hd + (j % 2) * (hd / 2) + j / 2;
}

int tlmi_hf_is_llama(const tlm_model_config *c) {
    return c->position == TLM_POSITION_ROTARY && c->norm == TLM_NORM_RMS &&
           c->activation == TLM_ACTIVATION_SWIGLU;
}

int tlmi_hf_llama_check_expressible(tlmi_host *host, const char *who,
                                    const tlm_model_config *c) {
    const char *field = NULL, *why = NULL;
    if (c->n_encoder_layers != 0)
        field = "n_encoder_layers", why = "is not 0; Llama has no encoder";
    else if (c->n_decoder_layers < 1)
        field = "n_decoder_layers", why = "is 0; Llama needs a layer";
    else if (c->position != TLM_POSITION_ROTARY)
        field = "position", why = "is not rotary; Llama has rotary "
                                  "positions only";
    else if (c->norm != TLM_NORM_RMS)
        field = "norm", why = "is not RMSNorm; Llama has RMSNorm only";
    else if (c->activation != TLM_ACTIVATION_SWIGLU)
        field = "activation", why = "is not SwiGLU; Llama has SwiGLU "
                                    "(silu) only";
    else if (c->norm_placement != TLM_NORM_PRE)
        field = "norm_placement", why = "is not pre; Llama is pre-norm";
    else if (c->bias != 0)
        field = "bias", why = "is 1; tlm writes Llama without biases";
    if (field != NULL)
        return tlmi_fail(host, TLM_E_UNSUPPORTED, "%s: %s %s", who, field,
                         why);
    return TLM_OK;
}

/* ------------------------------------------------------------------------
 * config.json
 */

static int get_int(tlmi_host *host, const char *what,
                   const tlmi_json_value *root, const char *key, int64_t min,
                   int64_t max, int64_t fallback, int required,
                   int64_t *out) {
    char name[384];
    snprintf(name, sizeof name, "'%.300s': %s", what, key);
    const tlmi_json_value *v = tlmi_json_object_get(root, key);
    *out = fallback;
    if (v == NULL || (!required && v->type == TLMI_JSON_NULL)) {
        if (required)
            return tlmi_fail(host, TLM_E_FORMAT, "%s is missing", name);
        return TLM_OK;
    }
    return tlmi_json_get_int64(host, v, name, min, max, out);
}

static int get_bool(tlmi_host *host, const char *what,
                    const tlmi_json_value *root, const char *key,
                    int fallback, int *out) {
    const tlmi_json_value *v = tlmi_json_object_get(root, key);
    *out = fallback;
    if (v == NULL || v->type == TLMI_JSON_NULL)
        return TLM_OK;
    if (v->type != TLMI_JSON_BOOL)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "'%s': %s is a %s, not a boolean (byte %zu)", what,
                         key, tlmi_json_type_name(v->type), v->offset);
    *out = v->as.boolean;
    return TLM_OK;
}

/* A number in (low, high), `fallback` when absent. */
static int get_real(tlmi_host *host, const char *what,
                    const tlmi_json_value *root, const char *key, double low,
                    double high, double fallback, double *out) {
    char name[384];
    snprintf(name, sizeof name, "'%.300s': %s", what, key);
    const tlmi_json_value *v = tlmi_json_object_get(root, key);
    *out = fallback;
    if (v == NULL)
        return TLM_OK;
    TLMI_TRY(tlmi_json_get_double(host, v, name, out));
    if (!(*out > low && *out < high))
        return tlmi_fail(host, TLM_E_RANGE, "%s %g is outside (%g, %g)", name,
                         *out, low, high);
    return TLM_OK;
}

int tlmi_hf_llama_config_parse(tlmi_host *host, const char *what,
                               const tlmi_json_value *root,
                               tlm_model_config *config,
                               int32_t *n_kv_heads) {
    int64_t hidden = 0, inter = 0, layers = 0, heads = 0, kv = 0, vocab = 0;
    int64_t positions = 0, head_dim = 0;
    double eps = 0.0, theta = 0.0;
    int tie = 0, flag = 0;
    TLMI_TRY(get_int(host, what, root, "hidden_size", 1, 1 << 20, 0, 1,
                     &hidden));
    TLMI_TRY(get_int(host, what, root, "intermediate_size", 1, 1 << 24, 0, 1,
                     &inter));
    TLMI_TRY(get_int(host, what, root, "num_hidden_layers", 1, 4096, 0, 1,
                     &layers));
    TLMI_TRY(get_int(host, what, root, "num_attention_heads", 1, 65536, 0, 1,
                     &heads));
    TLMI_TRY(get_int(host, what, root, "num_key_value_heads", 1, 65536, heads,
                     0, &kv));
    TLMI_TRY(get_int(host, what, root, "vocab_size", 1, INT32_MAX, 0, 1,
                     &vocab));
    TLMI_TRY(get_int(host, what, root, "max_position_embeddings", 1, 1 << 24,
                     0, 1, &positions));
    TLMI_TRY(get_int(host, what, root, "head_dim", 1, 1 << 16, 0, 0,
                     &head_dim));
    /* transformers' LlamaConfig default ε is 1e-6. */
    TLMI_TRY(get_real(host, what, root, "rms_norm_eps", 0.0, 1.0, 1e-6, &eps));
    TLMI_TRY(get_bool(host, what, root, "tie_word_embeddings", 0, &tie));
    /* The rotary base: rope_theta (transformers 4), or
     * rope_parameters.rope_theta with rope_type "default" (5). */
    TLMI_TRY(get_real(host, what, root, "rope_theta", 1.0, 1e12, 10000.0,
                      &theta));
    const tlmi_json_value *v = tlmi_json_object_get(root, "rope_parameters");
    if (v != NULL && v->type != TLMI_JSON_NULL) {
        if (v->type != TLMI_JSON_OBJECT)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "'%s': rope_parameters is a %s, not an object",
                             what, tlmi_json_type_name(v->type));
        const tlmi_json_value *type = tlmi_json_object_get(v, "rope_type");
        const char *name = tlmi_json_string(type, NULL);
        if (type != NULL && (name == NULL || strcmp(name, "default") != 0))
            return tlmi_fail(host, TLM_E_UNSUPPORTED,
                             "'%s': rope_parameters.rope_type is not "
                             "\"default\"; tlm computes plain rotary "
                             "positions, no scaling",
                             what);
        TLMI_TRY(get_real(host, what, v, "rope_theta", 1.0, 1e12, theta,
                          &theta));
    }
    v = tlmi_json_object_get(root, "rope_scaling");
    if (v != NULL && v->type != TLMI_JSON_NULL)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "'%s': rope_scaling is not null; tlm computes plain "
                         "rotary positions, no scaling",
                         what);
    v = tlmi_json_object_get(root, "hidden_act");
    if (v != NULL) {
        const char *name = tlmi_json_string(v, NULL);
        if (name == NULL || strcmp(name, "silu") != 0)
            return tlmi_fail(host, TLM_E_UNSUPPORTED,
                             "'%s': hidden_act is not \"silu\"; tlm's SwiGLU "
                             "gates with silu",
                             what);
    }
    TLMI_TRY(get_bool(host, what, root, "attention_bias", 0, &flag));
    if (flag)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "'%s': attention_bias is true; tlm reads Llama "
                         "without biases",
                         what);
    TLMI_TRY(get_bool(host, what, root, "mlp_bias", 0, &flag));
    if (flag)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "'%s': mlp_bias is true; tlm reads Llama without "
                         "biases",
                         what);
    if (head_dim == 0) {
        if (hidden % heads != 0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "'%s': hidden_size %lld is not a multiple of "
                             "num_attention_heads %lld",
                             what, (long long)hidden, (long long)heads);
        head_dim = hidden / heads;
    }
    if (head_dim % 2 != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "'%s': head_dim %lld is odd; rotary positions rotate "
                         "pairs",
                         what, (long long)head_dim);
    if (kv > heads || heads % kv != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "'%s': num_key_value_heads %lld does not divide "
                         "num_attention_heads %lld",
                         what, (long long)kv, (long long)heads);
    tlm_model_config_init(config);
    config->vocab_size = (int32_t)vocab;
    config->d_model = (int32_t)hidden;
    config->n_heads = (int32_t)heads;
    config->head_dim = head_dim * heads == hidden ? 0 : (int32_t)head_dim;
    config->d_ff = (int32_t)inter;
    config->n_encoder_layers = 0;
    config->n_decoder_layers = (int32_t)layers;
    config->max_context = (int32_t)positions;
    config->position = TLM_POSITION_ROTARY;
    config->norm = TLM_NORM_RMS;
    config->norm_placement = TLM_NORM_PRE;
    config->activation = TLM_ACTIVATION_SWIGLU;
    config->bias = 0;
    config->tied_output = tie;
    config->embedding_dropout = 0.0f;
    config->residual_dropout = 0.0f;
    config->norm_eps = (float)eps;
    config->rope_base = (float)theta;
    *n_kv_heads = (int32_t)kv;
    return TLM_OK;
}

/* ------------------------------------------------------------------------
 * Names
 */

/* The layer tensors: tlm's name after "decoder.layers.N.", Llama's after
 * "layers.N.", and whether the rows are rotary-permuted. */
static const struct {
    const char *tlm, *hf;
    int rotary;
} layer_names[] = {
    {"self_attn_norm.weight", "input_layernorm.weight", 0},
    {"self_attn.q_proj.weight", "self_attn.q_proj.weight", 1},
    {"self_attn.k_proj.weight", "self_attn.k_proj.weight", 1},
    {"self_attn.v_proj.weight", "self_attn.v_proj.weight", 0},
    {"self_attn.o_proj.weight", "self_attn.o_proj.weight", 0},
    {"ffn_norm.weight", "post_attention_layernorm.weight", 0},
    {"ffn.gate_proj.weight", "mlp.gate_proj.weight", 0},
    {"ffn.up_proj.weight", "mlp.up_proj.weight", 0},
    {"ffn.down_proj.weight", "mlp.down_proj.weight", 0},
};

size_t tlmi_hf_llama_layer_count(void) {
    return sizeof layer_names / sizeof layer_names[0];
}

const char *tlmi_hf_llama_layer_name(size_t index) {
    return layer_names[index].tlm;
}

int tlmi_hf_llama_name(const char *tlm, char *hf, size_t size, int *rotary) {
    int layer = -1, used = 0;
    *rotary = 0;
    if (strcmp(tlm, "token_embedding.weight") == 0) {
        snprintf(hf, size, "embed_tokens.weight");
        return 1;
    }
    if (strcmp(tlm, "decoder.final_norm.weight") == 0) {
        snprintf(hf, size, "norm.weight");
        return 1;
    }
    if (strcmp(tlm, "lm_head.weight") == 0) {
        snprintf(hf, size, "lm_head.weight");
        return 1;
    }
    if (sscanf(tlm, "decoder.layers.%d.%n", &layer, &used) == 1 && used > 0)
        for (size_t i = 0; i < sizeof layer_names / sizeof layer_names[0]; i++)
            if (strcmp(tlm + used, layer_names[i].tlm) == 0) {
                snprintf(hf, size, "layers.%d.%s", layer, layer_names[i].hf);
                *rotary = layer_names[i].rotary;
                return 1;
            }
    return 0;
}

/* ------------------------------------------------------------------------
 * Writing config.json
 */

int tlmi_hf_llama_write_config(const tlm_model *model, int32_t weight_type,
                               tlmi_json_writer *w) {
    const tlm_model_config *c = &model->config;
    static const char *dtypes[] = {"float32", "float16", "bfloat16"};
    /* BOS/EOS from the tokenizer when it has them (SentencePiece: its
     * ids; tlm's own kinds: their specials), else none. */
    int32_t bos = -1, eos = -1;
    if (model->tokenizer != NULL) {
        bos = tlm_tokenizer_special_id(model->tokenizer, TLM_TOKEN_BOS);
        eos = tlm_tokenizer_special_id(model->tokenizer, TLM_TOKEN_EOS);
    }
    tlmi_json_write_object_begin(w);
    tlmi_json_write_key(w, "architectures");
    tlmi_json_write_array_begin(w);
    tlmi_json_write_string(w, "LlamaForCausalLM");
    tlmi_json_write_array_end(w);
    tlmi_json_write_key(w, "attention_bias");
    tlmi_json_write_bool(w, 0);
    tlmi_json_write_key(w, "attention_dropout");
    tlmi_json_write_double(w, 0.0);
    tlmi_json_write_key(w, "bos_token_id");
    if (bos >= 0)
        tlmi_json_write_int64(w, bos);
    else
        tlmi_json_write_null(w);
    tlmi_json_write_key(w, "dtype");
    tlmi_json_write_string(w, dtypes[weight_type]);
    tlmi_json_write_key(w, "eos_token_id");
    if (eos >= 0)
        tlmi_json_write_int64(w, eos);
    else
        tlmi_json_write_null(w);
    tlmi_json_write_key(w, "head_dim");
    tlmi_json_write_int64(w, c->head_dim);
    tlmi_json_write_key(w, "hidden_act");
    tlmi_json_write_string(w, "silu");
    tlmi_json_write_key(w, "hidden_size");
    tlmi_json_write_int64(w, c->d_model);
    tlmi_json_write_key(w, "initializer_range");
    tlmi_json_write_double(w, 0.02);
    tlmi_json_write_key(w, "intermediate_size");
    tlmi_json_write_int64(w, c->d_ff);
    tlmi_json_write_key(w, "max_position_embeddings");
    tlmi_json_write_int64(w, c->max_context);
    tlmi_json_write_key(w, "mlp_bias");
    tlmi_json_write_bool(w, 0);
    tlmi_json_write_key(w, "model_type");
    tlmi_json_write_string(w, "llama");
    tlmi_json_write_key(w, "num_attention_heads");
    tlmi_json_write_int64(w, c->n_heads);
    tlmi_json_write_key(w, "num_hidden_layers");
    tlmi_json_write_int64(w, c->n_decoder_layers);
    tlmi_json_write_key(w, "num_key_value_heads");
    tlmi_json_write_int64(w, tlmi_config_kv_heads(c));
    tlmi_json_write_key(w, "pretraining_tp");
    tlmi_json_write_int64(w, 1);
    tlmi_json_write_key(w, "rms_norm_eps");
    tlmi_json_write_float(w, c->norm_eps);
    /* Both spellings of the rotary base: transformers 5 reads
     * rope_parameters, 4 reads rope_theta and rope_scaling. */
    tlmi_json_write_key(w, "rope_parameters");
    tlmi_json_write_object_begin(w);
    tlmi_json_write_key(w, "rope_theta");
    tlmi_json_write_float(w, c->rope_base);
    tlmi_json_write_key(w, "rope_type");
    tlmi_json_write_string(w, "default");
    tlmi_json_write_object_end(w);
    tlmi_json_write_key(w, "rope_scaling");
    tlmi_json_write_null(w);
    tlmi_json_write_key(w, "rope_theta");
    tlmi_json_write_float(w, c->rope_base);
    tlmi_json_write_key(w, "tie_word_embeddings");
    tlmi_json_write_bool(w, c->tied_output);
    tlmi_json_write_key(w, "torch_dtype");
    tlmi_json_write_string(w, dtypes[weight_type]);
    tlmi_json_write_key(w, "use_cache");
    tlmi_json_write_bool(w, 1);
    tlmi_json_write_key(w, "vocab_size");
    tlmi_json_write_int64(w, c->vocab_size);
    return tlmi_json_write_object_end(w);
}
