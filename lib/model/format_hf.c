/*
 * Hugging Face checkpoints: config.json and model.safetensors (or shards
 * listed by model.safetensors.index.json), read into tlm's parameters and
 * written from them, tensor by tensor. GPT-2 (transformers'
 * GPT2LMHeadModel / GPT2Model) is here; what is Llama about a checkpoint
 * (LlamaForCausalLM: config.json, names, the q/k rows) is
 * format_hf_llama.c's, the files are shared. docs/formats-import.md lists
 * what is accepted.
 *
 * GPT-2's linear layers are Conv1D modules whose weights are stored
 * [in, out], the transpose of tlm's [out, in]; its attention input
 * projection c_attn holds q, k and v side by side ([D, 3D], bias [3D]).
 */
#define _POSIX_C_SOURCE 200809L /* stat, mkdir, fseeko, ftello */
#define _FILE_OFFSET_BITS 64     /* files past 2 GiB on 32-bit hosts */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "base/half.h"
#include "base/params.h"
#include "formats.h"
#include "io/json.h"
#include "io/safetensors.h"
#include "model.h"
#include "text/tokenizer.h"

/* config.json and the index are small; refuse anything absurd. */
#define MAX_JSON_BYTES ((size_t)64 << 20)
#define MAX_PATH_BYTES 4096

/* ------------------------------------------------------------------------
 * What GPT-2 can express
 */

int tlmi_gpt2_check_expressible(tlmi_host *host, const char *who,
                                const tlm_model_config *c, int target) {
    const char *format = target == TLMI_GPT2_LLMC ? "llm.c" : "GPT-2";
    if (c->n_encoder_layers != 0)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: n_encoder_layers is %d; %s has no encoder layers",
                         who, (int)c->n_encoder_layers, format);
    if (c->n_decoder_layers < 1)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: n_decoder_layers is %d; %s needs at least one",
                         who, (int)c->n_decoder_layers, format);
    if (c->position != TLM_POSITION_LEARNED)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: position is not learned; %s has only learned "
                         "positions",
                         who, format);
    if (c->norm != TLM_NORM_LAYER)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: norm is not LayerNorm; %s has only LayerNorm",
                         who, format);
    if (c->norm_placement != TLM_NORM_PRE)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: norm_placement is not pre; %s is pre-norm", who,
                         format);
    if (c->bias != 1)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: bias is %d; %s has biases everywhere", who,
                         (int)c->bias, format);
    if (c->activation == TLM_ACTIVATION_SWIGLU ||
        (target == TLMI_GPT2_LLMC && c->activation != TLM_ACTIVATION_GELU))
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: activation %d is not one %s has (%s)", who,
                         (int)c->activation, format,
                         target == TLMI_GPT2_LLMC
                             ? "tanh GELU only"
                             : "tanh GELU, exact GELU or ReLU");
    if (c->head_dim != 0 && (int64_t)c->head_dim * c->n_heads != c->d_model)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: head_dim %d x n_heads %d is not d_model %d, as "
                         "%s needs",
                         who, (int)c->head_dim, (int)c->n_heads,
                         (int)c->d_model, format);
    if (c->n_kv_heads != 0 && c->n_kv_heads != c->n_heads)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "%s: n_kv_heads %d is not n_heads %d; %s has no "
                         "grouped-query attention",
                         who, (int)c->n_kv_heads, (int)c->n_heads, format);
    if (target == TLMI_GPT2_LLMC) {
        if (c->tied_output != 1)
            return tlmi_fail(host, TLM_E_UNSUPPORTED,
                             "%s: tied_output is 0; llm.c ties the output "
                             "projection to the token embedding",
                             who);
        if (c->d_ff != 0 && (int64_t)c->d_ff != 4 * (int64_t)c->d_model)
            return tlmi_fail(host, TLM_E_UNSUPPORTED,
                             "%s: d_ff %d is not 4 x d_model (%d), as llm.c "
                             "needs",
                             who, (int)c->d_ff, (int)c->d_model);
        if (c->norm_eps != 1e-5f)
            return tlmi_fail(host, TLM_E_UNSUPPORTED,
                             "%s: norm_eps %g is not 1e-5, which llm.c "
                             "fixes",
                             who, (double)c->norm_eps);
    }
    return TLM_OK;
}

/* ------------------------------------------------------------------------
 * config.json
 */

int tlmi_hf_get_bool(tlmi_host *host, const char *what,
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

/* "'<file>': <key>" for messages; the file's name is cut short so that
 * the key always fits (a Hugging Face cache path is over 100 bytes). */
static void field_name(char *name, size_t size, const char *what,
                       const char *key) {
    snprintf(name, size, "'%.300s': %s", what, key);
}

static int get_int(tlmi_host *host, const char *what,
                   const tlmi_json_value *root, const char *key, int64_t min,
                   int64_t max, int64_t *out) {
    char name[384];
    field_name(name, sizeof name, what, key);
    const tlmi_json_value *v = tlmi_json_object_get(root, key);
    if (v == NULL)
        return tlmi_fail(host, TLM_E_FORMAT, "%s is missing", name);
    return tlmi_json_get_int64(host, v, name, min, max, out);
}

/* A value tlm cannot compute: refused, naming the field. */
static int refuse(tlmi_host *host, const char *what, const char *key,
                  const char *why) {
    return tlmi_fail(host, TLM_E_UNSUPPORTED, "'%s': %s %s", what, key, why);
}

int tlmi_hf_config_parse(tlmi_host *host, const char *what, const char *text,
                         size_t size, tlm_model_config *config) {
    tlmi_json_limits limits = {MAX_JSON_BYTES, 64};
    tlmi_json_doc *doc = NULL;
    int status = tlmi_json_parse(host, text, size, &limits, &doc);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status, "'%s'", what);
    const tlmi_json_value *root = tlmi_json_root(doc);
    const tlmi_json_value *v = NULL;
    int64_t n_layer = 0, n_head = 0, n_embd = 0, n_positions = 0, vocab = 0;
    int64_t n_inner = 0;
    double eps = 1e-5;
    int tie = 1, flag = 0;
    int32_t activation = TLM_ACTIVATION_GELU;
    if (root->type != TLMI_JSON_OBJECT) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "'%s' holds a JSON %s, not an object", what,
                           tlmi_json_type_name(root->type));
        goto cleanup;
    }
    /* The architecture: GPT-2 or Llama. */
    int llama = 0;
    v = tlmi_json_object_get(root, "model_type");
    const tlmi_json_value *archs = tlmi_json_object_get(root, "architectures");
    const char *first_arch =
        tlmi_json_string(tlmi_json_array_at(archs, 0), NULL);
    if (v != NULL)
        llama = tlmi_json_string(v, NULL) != NULL &&
                strcmp(tlmi_json_string(v, NULL), "llama") == 0;
    else if (first_arch != NULL)
        llama = strncmp(first_arch, "Llama", 5) == 0;
    if (llama) {
        for (size_t i = 0; i < tlmi_json_count(archs); i++) {
            size_t length = 0;
            const char *name =
                tlmi_json_string(tlmi_json_array_at(archs, i), &length);
            if (name == NULL || (strcmp(name, "LlamaForCausalLM") != 0 &&
                                 strcmp(name, "LlamaModel") != 0)) {
                char shown[80];
                status = tlmi_fail(
                    host, TLM_E_UNSUPPORTED,
                    "'%s': unknown architecture '%s' (architectures; with "
                    "model_type llama tlm reads LlamaForCausalLM and "
                    "LlamaModel)",
                    what,
                    name == NULL ? "(not a string)"
                                 : tlmi_st_printable(name, length, shown,
                                                     sizeof shown));
                goto cleanup;
            }
        }
        status = tlmi_hf_llama_config_parse(host, what, root, config);
        goto cleanup;
    }
    if (v != NULL) {
        const char *type = tlmi_json_string(v, NULL);
        if (type == NULL) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "'%s': model_type is not a string", what);
            goto cleanup;
        }
        if (strcmp(type, "gpt2") != 0) {
            char shown[80];
            status = tlmi_fail(host, TLM_E_UNSUPPORTED,
                               "'%s': unknown architecture '%s' (model_type; "
                               "tlm reads gpt2 and llama)",
                               what,
                               tlmi_st_printable(type, strlen(type), shown,
                                                 sizeof shown));
            goto cleanup;
        }
    }
    v = tlmi_json_object_get(root, "architectures");
    if (v != NULL && v->type != TLMI_JSON_NULL) {
        if (v->type != TLMI_JSON_ARRAY) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "'%s': architectures is not an array", what);
            goto cleanup;
        }
        for (size_t i = 0; i < tlmi_json_count(v); i++) {
            size_t length = 0;
            const char *name =
                tlmi_json_string(tlmi_json_array_at(v, i), &length);
            if (name == NULL) {
                status = tlmi_fail(host, TLM_E_FORMAT,
                                   "'%s': architectures[%zu] is not a string",
                                   what, i);
                goto cleanup;
            }
            if (strcmp(name, "GPT2LMHeadModel") != 0 &&
                strcmp(name, "GPT2Model") != 0) {
                char shown[80];
                status = tlmi_fail(host, TLM_E_UNSUPPORTED,
                                   "'%s': unknown architecture '%s' "
                                   "(architectures; tlm reads GPT2LMHeadModel, "
                                   "GPT2Model, LlamaForCausalLM and "
                                   "LlamaModel)",
                                   what,
                                   tlmi_st_printable(name, length, shown,
                                                     sizeof shown));
                goto cleanup;
            }
        }
    }
    if ((status = get_int(host, what, root, "n_layer", 1, 4096, &n_layer)) ||
        (status = get_int(host, what, root, "n_head", 1, 65536, &n_head)) ||
        (status = get_int(host, what, root, "n_embd", 1, 1 << 20, &n_embd)) ||
        (status = get_int(host, what, root, "vocab_size", 1, INT32_MAX,
                          &vocab)))
        goto cleanup;
    /* n_positions, or the old name n_ctx; the message of a missing one
     * names n_positions, the field transformers writes. */
    status = get_int(host, what, root,
                     tlmi_json_object_get(root, "n_positions") != NULL ||
                             tlmi_json_object_get(root, "n_ctx") == NULL
                         ? "n_positions"
                         : "n_ctx",
                     1, 1 << 24, &n_positions);
    if (status != TLM_OK)
        goto cleanup;
    v = tlmi_json_object_get(root, "n_inner");
    if (v != NULL && v->type != TLMI_JSON_NULL &&
        (status = get_int(host, what, root, "n_inner", 1, INT32_MAX,
                          &n_inner)) != TLM_OK)
        goto cleanup;
    v = tlmi_json_object_get(root, "layer_norm_epsilon");
    if (v != NULL) {
        char name[384];
        field_name(name, sizeof name, what, "layer_norm_epsilon");
        if ((status = tlmi_json_get_double(host, v, name, &eps)) != TLM_OK)
            goto cleanup;
        if (!(eps > 0.0 && eps < 1.0)) {
            status = tlmi_fail(host, TLM_E_RANGE,
                               "%s %g is outside (0, 1)", name, eps);
            goto cleanup;
        }
    }
    v = tlmi_json_object_get(root, "activation_function");
    if (v != NULL) {
        const char *name = tlmi_json_string(v, NULL);
        if (name == NULL) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "'%s': activation_function is not a string",
                               what);
            goto cleanup;
        }
        if (strcmp(name, "gelu_new") == 0 ||
            strcmp(name, "gelu_pytorch_tanh") == 0 ||
            strcmp(name, "gelu_fast") == 0)
            activation = TLM_ACTIVATION_GELU;
        else if (strcmp(name, "gelu") == 0)
            activation = TLM_ACTIVATION_GELU_EXACT;
        else if (strcmp(name, "relu") == 0)
            activation = TLM_ACTIVATION_RELU;
        else {
            char shown[64];
            status = tlmi_fail(host, TLM_E_UNSUPPORTED,
                               "'%s': activation_function '%s' is not one "
                               "tlm computes (gelu_new, gelu_pytorch_tanh, "
                               "gelu_fast, gelu, relu)",
                               what,
                               tlmi_st_printable(name, strlen(name), shown,
                                                 sizeof shown));
            goto cleanup;
        }
    }
    if ((status = tlmi_hf_get_bool(host, what, root, "tie_word_embeddings",
                                   1, &tie)) != TLM_OK)
        goto cleanup;
    /* Variants of GPT-2's attention tlm does not compute. */
    if ((status = tlmi_hf_get_bool(host, what, root, "scale_attn_weights",
                                   1, &flag)) != TLM_OK)
        goto cleanup;
    if (!flag) {
        status = refuse(host, what, "scale_attn_weights",
                        "is false; tlm always scales scores by 1/sqrt(hd)");
        goto cleanup;
    }
    if ((status = tlmi_hf_get_bool(host, what, root,
                                   "scale_attn_by_inverse_layer_idx", 0,
                                   &flag)) != TLM_OK)
        goto cleanup;
    if (flag) {
        status = refuse(host, what, "scale_attn_by_inverse_layer_idx",
                        "is true; tlm does not scale scores by layer");
        goto cleanup;
    }
    if ((status = tlmi_hf_get_bool(host, what, root, "add_cross_attention",
                                   0, &flag)) != TLM_OK)
        goto cleanup;
    if (flag) {
        status = refuse(host, what, "add_cross_attention",
                        "is true; a GPT-2 with cross-attention is not "
                        "imported");
        goto cleanup;
    }
    /* reorder_and_upcast_attn only changes the precision of a
     * half-precision run: float32 results are the same, so it is read
     * (checked to be a boolean) and ignored. */
    if ((status = tlmi_hf_get_bool(host, what, root,
                                   "reorder_and_upcast_attn", 0,
                                   &flag)) != TLM_OK)
        goto cleanup;
    if (n_embd % n_head != 0) {
        status = tlmi_fail(host, TLM_E_FORMAT,
                           "'%s': n_embd %lld is not a multiple of n_head "
                           "%lld",
                           what, (long long)n_embd, (long long)n_head);
        goto cleanup;
    }
    tlm_model_config_init(config);
    config->vocab_size = (int32_t)vocab;
    config->d_model = (int32_t)n_embd;
    config->n_heads = (int32_t)n_head;
    config->head_dim = 0;
    config->d_ff = (int32_t)n_inner;
    config->n_encoder_layers = 0;
    config->n_decoder_layers = (int32_t)n_layer;
    config->max_context = (int32_t)n_positions;
    config->position = TLM_POSITION_LEARNED;
    config->norm = TLM_NORM_LAYER;
    config->norm_placement = TLM_NORM_PRE;
    config->activation = activation;
    config->bias = 1;
    config->tied_output = tie;
    config->embedding_dropout = 0.0f;
    config->residual_dropout = 0.0f;
    config->norm_eps = (float)eps;
cleanup:
    tlmi_json_free(doc);
    return status;
}

/* ------------------------------------------------------------------------
 * Import
 */

/* How a tlm parameter is cut from a GPT-2 tensor. */
enum hf_kind {
    HF_COPY = 0,       /* same shape, same layout */
    HF_TRANSPOSE = 1,  /* Conv1D [in, out] -> [out, in] */
    HF_QKV_WEIGHT = 2, /* part `part` of c_attn's [D, 3D], transposed */
    HF_QKV_BIAS = 3,   /* part `part` of c_attn's bias [3D] */
    HF_ROTARY = 4      /* Llama q/k: rows permuted per head
                          (tlmi_hf_rotary_row) */
};

typedef struct hf_layer_tensor {
    const char *tlm; /* after "decoder.layers.{i}." */
    const char *hf;  /* after "h.{i}." */
    int32_t kind;
    int32_t part;
} hf_layer_tensor;

/* A GPT-2 block's tensors, in GPT2Block's order. */
static const hf_layer_tensor layer_tensors[] = {
    {"self_attn_norm.weight", "ln_1.weight", HF_COPY, 0},
    {"self_attn_norm.bias", "ln_1.bias", HF_COPY, 0},
    {"self_attn.q_proj.weight", "attn.c_attn.weight", HF_QKV_WEIGHT, 0},
    {"self_attn.k_proj.weight", "attn.c_attn.weight", HF_QKV_WEIGHT, 1},
    {"self_attn.v_proj.weight", "attn.c_attn.weight", HF_QKV_WEIGHT, 2},
    {"self_attn.q_proj.bias", "attn.c_attn.bias", HF_QKV_BIAS, 0},
    {"self_attn.k_proj.bias", "attn.c_attn.bias", HF_QKV_BIAS, 1},
    {"self_attn.v_proj.bias", "attn.c_attn.bias", HF_QKV_BIAS, 2},
    {"self_attn.o_proj.weight", "attn.c_proj.weight", HF_TRANSPOSE, 0},
    {"self_attn.o_proj.bias", "attn.c_proj.bias", HF_COPY, 0},
    {"ffn_norm.weight", "ln_2.weight", HF_COPY, 0},
    {"ffn_norm.bias", "ln_2.bias", HF_COPY, 0},
    {"ffn.up_proj.weight", "mlp.c_fc.weight", HF_TRANSPOSE, 0},
    {"ffn.up_proj.bias", "mlp.c_fc.bias", HF_COPY, 0},
    {"ffn.down_proj.weight", "mlp.c_proj.weight", HF_TRANSPOSE, 0},
    {"ffn.down_proj.bias", "mlp.c_proj.bias", HF_COPY, 0},
};
#define N_LAYER_TENSORS (sizeof layer_tensors / sizeof layer_tensors[0])

typedef struct hf_shard {
    char *file; /* the name in the index (or the single file's path) */
    size_t file_size;
    char *path;
    size_t path_size;
    tlmi_safetensors *st;
} hf_shard;

typedef struct hf_importer {
    tlmi_host *host;
    const char *path; /* as given, for messages */
    int llama;          /* Llama's names, else GPT-2's */
    const char *prefix; /* "transformer." or "model." */
    tlm_model_config config;
    int32_t tied;
    hf_shard *shards;
    size_t n_shards;
    tlmi_json_doc *index; /* sharded checkpoints */
    const tlmi_json_value *weight_map;
    float *scratch; /* one converted tensor */
    size_t scratch_count;
    int32_t allow_nonfinite;
} hf_importer;

static char *join_path(tlmi_host *host, const char *dir, size_t dir_length,
                       const char *name, size_t *size) {
    size_t name_length = strlen(name);
    *size = dir_length + 1 + name_length + 1;
    char *path = tlmi_host_alloc(host, *size, 1);
    if (path == NULL)
        return NULL;
    memcpy(path, dir, dir_length);
    path[dir_length] = '/';
    memcpy(path + dir_length + 1, name, name_length + 1);
    return path;
}

/* The length of the directory part of `path` ("." when there is none is
 * the caller's: 0 is returned). */
static size_t dir_length(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash == NULL ? 0 : (size_t)(slash - path) + (slash == path);
}

static int is_directory(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 && S_ISDIR(info.st_mode);
}

static int file_exists(const char *path) {
    struct stat info;
    return stat(path, &info) == 0 && S_ISREG(info.st_mode);
}

/* Does `data` start like a JSON object (optional whitespace, '{')? */
static int looks_like_json(const unsigned char *data, size_t size) {
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' ||
                        data[i] == '\t'))
        i++;
    return i < size && data[i] == '{';
}

static int add_shard(hf_importer *im, const char *dir, size_t dir_len,
                     const char *file) {
    for (size_t i = 0; i < im->n_shards; i++)
        if (strcmp(im->shards[i].file, file) == 0)
            return TLM_OK;
    hf_shard *shard = &im->shards[im->n_shards];
    memset(shard, 0, sizeof *shard);
    shard->file_size = strlen(file) + 1;
    shard->file = tlmi_host_alloc(im->host, shard->file_size, 1);
    if (shard->file == NULL)
        return tlmi_fail(im->host, TLM_E_NOMEM, "out of memory");
    memcpy(shard->file, file, shard->file_size);
    im->n_shards++;
    if (dir_len == 0) {
        shard->path = join_path(im->host, ".", 1, file, &shard->path_size);
    } else {
        shard->path = join_path(im->host, dir, dir_len, file, &shard->path_size);
    }
    if (shard->path == NULL)
        return tlmi_fail(im->host, TLM_E_NOMEM, "out of memory");
    return tlmi_safetensors_open(im->host, shard->path, TLMI_ST_OPEN_MAP,
                                 &shard->st);
}

/* Reads model.safetensors.index.json at `index_path` and opens every shard
 * its weight_map names. */
static int open_index(hf_importer *im, const char *index_path) {
    void *text = NULL;
    size_t size = 0;
    int status = tlmi_file_read_all(im->host, index_path, MAX_JSON_BYTES,
                                    &text, &size);
    if (status != TLM_OK)
        return status;
    tlmi_json_limits limits = {MAX_JSON_BYTES, 64};
    status = tlmi_json_parse(im->host, text, size, &limits, &im->index);
    tlmi_file_free_contents(im->host, text, size);
    if (status != TLM_OK)
        return tlmi_fail_forward(im->host, status, "'%s'", index_path);
    im->weight_map = tlmi_json_object_get(tlmi_json_root(im->index),
                                          "weight_map");
    if (im->weight_map == NULL || im->weight_map->type != TLMI_JSON_OBJECT)
        return tlmi_fail(im->host, TLM_E_FORMAT,
                         "'%s' has no \"weight_map\" object: not a "
                         "safetensors index",
                         index_path);
    size_t count = tlmi_json_count(im->weight_map);
    if (count == 0)
        return tlmi_fail(im->host, TLM_E_FORMAT,
                         "'%s': weight_map is empty", index_path);
    im->shards = tlmi_host_alloc(im->host, count * sizeof *im->shards, 64);
    if (im->shards == NULL)
        return tlmi_fail(im->host, TLM_E_NOMEM, "out of memory");
    size_t dir_len = dir_length(index_path);
    for (size_t i = 0; i < count; i++) {
        const tlmi_json_member *m = tlmi_json_object_at(im->weight_map, i);
        size_t length = 0;
        const char *file = tlmi_json_string(&m->value, &length);
        char shown[80];
        if (file == NULL || length == 0 || length != strlen(file) ||
            strchr(file, '/') != NULL || strcmp(file, "..") == 0 ||
            strcmp(file, ".") == 0)
            return tlmi_fail(im->host, TLM_E_FORMAT,
                             "'%s': weight_map entry '%s' is not the name of "
                             "a file in the same directory",
                             index_path,
                             tlmi_st_printable(m->key, m->key_length, shown,
                                               sizeof shown));
        status = add_shard(im, index_path, dir_len, file);
        if (status != TLM_OK)
            return status;
    }
    return TLM_OK;
}

/* The tensor `name` (without the architecture's prefix, "transformer."
 * or "model."), with the prefix or without; NULL when absent. */
static const tlmi_safetensors_entry *find_tensor(hf_importer *im,
                                                 const char *name,
                                                 const tlmi_safetensors **st,
                                                 const char **shard_path) {
    char prefixed[TLMI_PARAM_NAME_MAX + 16];
    snprintf(prefixed, sizeof prefixed, "%s%s", im->prefix, name);
    const char *names[2] = {prefixed, name};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < im->n_shards; i++) {
            if (im->weight_map != NULL) {
                const char *file = tlmi_json_string(
                    tlmi_json_object_get(im->weight_map, names[k]), NULL);
                if (file == NULL || strcmp(file, im->shards[i].file) != 0)
                    continue;
            }
            const tlmi_safetensors_entry *e =
                tlmi_safetensors_find(im->shards[i].st, names[k]);
            if (e != NULL) {
                *st = im->shards[i].st;
                *shard_path = im->shards[i].path;
                return e;
            }
        }
    }
    return NULL;
}

/* Resolves the tlm parameter `name` [shape] to its GPT-2 tensor, checking
 * the tensor exists, holds floats and has the shape the configuration
 * needs. */
typedef struct hf_source {
    const tlmi_safetensors *st;
    const tlmi_safetensors_entry *entry;
    const char *shard_path;
    int32_t kind;
    int32_t part;
} hf_source;

static int resolve(hf_importer *im, const char *name, int32_t ndim,
                   const int64_t *shape, hf_source *src) {
    char hf[TLMI_PARAM_NAME_MAX + 16];
    src->kind = HF_COPY;
    src->part = 0;
    int layer = -1, used = 0, rotary = 0;
    if (im->llama) {
        if (!tlmi_hf_llama_name(name, hf, sizeof hf, &rotary))
            return tlmi_fail(im->host, TLM_E_INTERNAL,
                             "'%s': no Llama tensor for tlm's '%s'", im->path,
                             name);
        src->kind = rotary ? HF_ROTARY : HF_COPY;
    } else if (strcmp(name, "token_embedding.weight") == 0)
        snprintf(hf, sizeof hf, "wte.weight");
    else if (strcmp(name, "position_embedding.weight") == 0)
        snprintf(hf, sizeof hf, "wpe.weight");
    else if (strcmp(name, "decoder.final_norm.weight") == 0)
        snprintf(hf, sizeof hf, "ln_f.weight");
    else if (strcmp(name, "decoder.final_norm.bias") == 0)
        snprintf(hf, sizeof hf, "ln_f.bias");
    else if (strcmp(name, "lm_head.weight") == 0)
        snprintf(hf, sizeof hf, "lm_head.weight");
    else if (sscanf(name, "decoder.layers.%d.%n", &layer, &used) == 1 &&
             used > 0) {
        const hf_layer_tensor *t = NULL;
        for (size_t i = 0; i < N_LAYER_TENSORS && t == NULL; i++)
            if (strcmp(name + used, layer_tensors[i].tlm) == 0)
                t = &layer_tensors[i];
        if (t == NULL)
            return tlmi_fail(im->host, TLM_E_INTERNAL,
                             "'%s': no GPT-2 tensor for tlm's '%s'", im->path,
                             name);
        snprintf(hf, sizeof hf, "h.%d.%s", layer, t->hf);
        src->kind = t->kind;
        src->part = t->part;
    } else {
        return tlmi_fail(im->host, TLM_E_INTERNAL,
                         "'%s': no GPT-2 tensor for tlm's '%s'", im->path,
                         name);
    }
    src->entry = find_tensor(im, hf, &src->st, &src->shard_path);
    if (src->entry == NULL)
        return tlmi_fail(im->host, TLM_E_FORMAT,
                         "'%s' lacks the tensor '%s' (or '%s%s') "
                         "that the configuration needs",
                         im->path, hf, im->prefix, hf);
    /* The shape the GPT-2 tensor must have. */
    int64_t want[2] = {shape[0], ndim > 1 ? shape[1] : 1};
    int32_t want_ndim = ndim;
    if (src->kind == HF_TRANSPOSE) {
        want[0] = shape[1];
        want[1] = shape[0];
    } else if (src->kind == HF_QKV_WEIGHT) {
        want[0] = shape[1];
        want[1] = 3 * shape[0];
    } else if (src->kind == HF_QKV_BIAS) {
        want[0] = 3 * shape[0];
    }
    const tlmi_safetensors_entry *e = src->entry;
    int same = e->ndim == want_ndim;
    for (int32_t d = 0; same && d < want_ndim; d++)
        same = e->shape[d] == want[d];
    if (!same) {
        char got[64], needed[64];
        tlmi_dims_string(e->ndim, e->shape, got, sizeof got);
        tlmi_dims_string(want_ndim, want, needed, sizeof needed);
        return tlmi_fail(im->host, TLM_E_FORMAT,
                         "'%s': tensor '%s' is %s, the configuration needs %s",
                         src->shard_path, e->name, got, needed);
    }
    if (e->dtype != TLMI_ST_F32 && e->dtype != TLMI_ST_F16 &&
        e->dtype != TLMI_ST_BF16)
        return tlmi_fail(im->host, TLM_E_UNSUPPORTED,
                         "'%s': tensor '%s' is %s; tlm imports F32, F16 and "
                         "BF16 weights",
                         src->shard_path, e->name, tlmi_st_dtype_name(e->dtype));
    return TLM_OK;
}

/* Element `index` of a float tensor, converted to float. */
static float element(const tlmi_safetensors_entry *e, size_t index) {
    const unsigned char *p = e->data;
    if (e->dtype == TLMI_ST_F32) {
        uint32_t bits = tlmi_get_u32(p + 4 * index);
        float value;
        memcpy(&value, &bits, sizeof value);
        return value;
    }
    uint16_t bits = tlmi_get_u16(p + 2 * index);
    return e->dtype == TLMI_ST_F16 ? tlmi_half_to_float(bits)
                                   : tlmi_bf16_to_float(bits);
}

/* tlmi_parameter_source's lookup: the parameter converted into the
 * importer's scratch buffer. */
static int lookup(void *user, const char *name, int32_t ndim,
                  const int64_t *shape, const void **data) {
    hf_importer *im = user;
    hf_source src;
    TLMI_TRY(resolve(im, name, ndim, shape, &src));
    /* c_attn's three parts come from one tensor: checked once. */
    if (!im->allow_nonfinite &&
        !((src.kind == HF_QKV_WEIGHT || src.kind == HF_QKV_BIAS) && src.part > 0)) {
        const char *value = NULL;
        const int64_t bad = tlmi_safetensors_first_nonfinite(src.entry, &value);
        char printable[132];
        if (bad >= 0)
            return tlmi_import_refuse_nonfinite(
                im->host, src.shard_path, "tensor",
                tlmi_st_printable(src.entry->name, src.entry->name_length, printable,
                                  sizeof printable),
                value, bad, src.entry->shape, src.entry->ndim);
    }
    size_t count = (size_t)shape[0] * (size_t)(ndim > 1 ? shape[1] : 1);
    if (src.kind == HF_COPY && src.entry->dtype == TLMI_ST_F32 &&
        tlmi_host_is_little_endian()) {
        /* The mapped bytes are the values already (the builder copies
         * them with memcpy, so they need not be aligned). */
        *data = src.entry->data;
        return TLM_OK;
    }
    if (count > im->scratch_count) {
        if (im->scratch != NULL)
            tlmi_host_free(im->host, im->scratch,
                           im->scratch_count * sizeof(float));
        im->scratch_count = 0;
        im->scratch = tlmi_host_alloc(im->host, count * sizeof(float), 64);
        if (im->scratch == NULL)
            return tlmi_fail(im->host, TLM_E_NOMEM,
                             "'%s': out of memory converting '%s'", im->path,
                             src.entry->name);
        im->scratch_count = count;
    }
    float *dst = im->scratch;
    const tlmi_safetensors_entry *e = src.entry;
    if (src.kind == HF_COPY) {
        TLMI_TRY(tlmi_safetensors_copy_f32(src.st, e, dst, (int64_t)count));
    } else if (src.kind == HF_ROTARY) {
        /* [heads * hd, D]: tlm's row r from HF's row rotary_row(r). */
        const int64_t hd = im->config.head_dim != 0
                               ? im->config.head_dim
                               : im->config.d_model / im->config.n_heads;
        const size_t rows = (size_t)shape[0], cols = (size_t)shape[1];
        for (size_t r = 0; r < rows; r++) {
            const size_t from = (size_t)tlmi_hf_rotary_row((int64_t)r, hd);
            for (size_t c = 0; c < cols; c++)
                dst[r * cols + c] = element(e, from * cols + c);
        }
    } else if (src.kind == HF_QKV_BIAS) {
        size_t n = (size_t)shape[0];
        for (size_t o = 0; o < n; o++)
            dst[o] = element(e, (size_t)src.part * n + o);
    } else {
        /* dst [out, in] from the source [in, total] (total = out for a
         * plain transpose, 3 out for c_attn, whose part p holds columns
         * p*out .. p*out+out-1). Reads the source row by row. */
        size_t out = (size_t)shape[0], in = (size_t)shape[1];
        size_t total = (size_t)e->shape[1];
        size_t first = src.kind == HF_QKV_WEIGHT ? (size_t)src.part * out : 0;
        for (size_t i = 0; i < in; i++)
            for (size_t o = 0; o < out; o++)
                dst[o * in + i] = element(e, i * total + first + o);
    }
    /* Converted: the file's pages may go (c_attn's once its last part,
     * v, is read). */
    if (!((src.kind == HF_QKV_WEIGHT || src.kind == HF_QKV_BIAS) &&
          src.part < 2))
        tlmi_safetensors_release(src.st, e->data, e->nbytes);
    *data = dst;
    return TLM_OK;
}

/* tlmi_parameter_source's copied: a tensor the builder copied straight
 * from a mapped shard lets its pages go (a range in the scratch buffer is
 * inside no shard and is ignored). */
static void copied(void *user, const void *data, size_t size) {
    hf_importer *im = user;
    for (size_t i = 0; i < im->n_shards; i++)
        tlmi_safetensors_release(im->shards[i].st, data, size);
}

/* Is `name` "<layers>.<N>.<rest>" (layers "h" for GPT-2, "layers" for
 * Llama) with N >= n_layers? The digits come from the file, so they are
 * read without sscanf (whose overflow is undefined). */
static int layer_beyond(const char *name, const char *layers,
                        int32_t n_layers) {
    const size_t n = strlen(layers);
    if (strncmp(name, layers, n) != 0 || name[n] != '.' || name[n + 1] < '0' ||
        name[n + 1] > '9')
        return 0;
    int64_t layer = 0;
    const char *p = name + n + 1;
    for (; *p >= '0' && *p <= '9'; p++)
        if (layer <= n_layers) /* past n_layers the value no longer matters */
            layer = layer * 10 + (*p - '0');
    return *p == '.' && layer >= n_layers;
}

/* check_checkpoint's tensor shapes for Llama: every parameter resolved
 * with the shape tlm_model_create will give it. */
static int check_llama_checkpoint(hf_importer *im, const tlm_model_config *c) {
    const int64_t D = c->d_model, H = c->n_heads;
    const int64_t hd = c->head_dim != 0 ? c->head_dim : D / H;
    const int64_t K = (int64_t)tlmi_config_kv_heads(c) * hd;
    const int64_t F = c->d_ff, V = c->vocab_size;
    hf_source src;
    int64_t shape[2] = {V, D};
    TLMI_TRY(resolve(im, "token_embedding.weight", 2, shape, &src));
    char name[TLMI_PARAM_NAME_MAX];
    for (int32_t l = 0; l < c->n_decoder_layers; l++)
        for (size_t i = 0; i < tlmi_hf_llama_layer_count(); i++) {
            const char *t = tlmi_hf_llama_layer_name(i);
            int32_t ndim = 2;
            if (strstr(t, "norm") != NULL) {
                ndim = 1;
                shape[0] = D;
            } else if (strncmp(t, "self_attn.q_proj", 16) == 0) {
                shape[0] = H * hd, shape[1] = D;
            } else if (strncmp(t, "self_attn.k_proj", 16) == 0 ||
                       strncmp(t, "self_attn.v_proj", 16) == 0) {
                shape[0] = K, shape[1] = D;
            } else if (strncmp(t, "self_attn.o_proj", 16) == 0) {
                shape[0] = D, shape[1] = H * hd;
            } else if (strncmp(t, "ffn.down_proj", 13) == 0) {
                shape[0] = D, shape[1] = F;
            } else {
                shape[0] = F, shape[1] = D;
            }
            snprintf(name, sizeof name, "decoder.layers.%d.%s", (int)l, t);
            TLMI_TRY(resolve(im, name, ndim, shape, &src));
        }
    shape[0] = D;
    TLMI_TRY(resolve(im, "decoder.final_norm.weight", 1, shape, &src));
    if (!c->tied_output) {
        shape[0] = V;
        shape[1] = D;
        TLMI_TRY(resolve(im, "lm_head.weight", 2, shape, &src));
    }
    return TLM_OK;
}

/* Checks the checkpoint against the configuration before anything is
 * allocated: the vocabulary, the layers present, every tensor's shape. */
static int check_checkpoint(hf_importer *im, const tlm_model_config *c) {
    const tlmi_safetensors *st = NULL;
    const char *shard_path = NULL;
    const tlmi_safetensors_entry *wte =
        find_tensor(im, im->llama ? "embed_tokens.weight" : "wte.weight", &st,
                    &shard_path);
    if (wte != NULL && wte->ndim == 2 && wte->shape[0] != c->vocab_size)
        return tlmi_fail(im->host, TLM_E_FORMAT,
                         "'%s': the configuration's vocab_size %d does not "
                         "match the %lld rows of the token embedding '%s'",
                         shard_path, (int)c->vocab_size,
                         (long long)wte->shape[0], wte->name);
    for (size_t s = 0; s < im->n_shards; s++) {
        const tlmi_safetensors *shard = im->shards[s].st;
        for (size_t i = 0; i < tlmi_safetensors_count(shard); i++) {
            const char *name = tlmi_safetensors_entry_at(shard, i)->name;
            const size_t prefix = strlen(im->prefix);
            if (strncmp(name, im->prefix, prefix) == 0)
                name += prefix;
            if (layer_beyond(name, im->llama ? "layers" : "h",
                             c->n_decoder_layers))
                return tlmi_fail(im->host, TLM_E_FORMAT,
                                 "'%s': tensor '%s' belongs to a layer the "
                                 "configuration does not have (n_layer %d)",
                                 im->shards[s].path,
                                 tlmi_safetensors_entry_at(shard, i)->name,
                                 (int)c->n_decoder_layers);
        }
    }
    if (im->llama)
        return check_llama_checkpoint(im, c);
    const int64_t D = c->d_model;
    const int64_t F = c->d_ff != 0 ? c->d_ff : 4 * D;
    const int64_t V = c->vocab_size, T = c->max_context;
    hf_source src;
    int64_t shape[2] = {V, D};
    TLMI_TRY(resolve(im, "token_embedding.weight", 2, shape, &src));
    shape[0] = T;
    TLMI_TRY(resolve(im, "position_embedding.weight", 2, shape, &src));
    char name[TLMI_PARAM_NAME_MAX];
    for (int32_t l = 0; l < c->n_decoder_layers; l++)
        for (size_t i = 0; i < N_LAYER_TENSORS; i++) {
            const hf_layer_tensor *t = &layer_tensors[i];
            int32_t ndim = strstr(t->tlm, "weight") && !strstr(t->tlm, "norm")
                               ? 2
                               : 1;
            int64_t rows = D, cols = D;
            if (strncmp(t->tlm, "ffn.up_proj", 11) == 0)
                rows = F;
            if (strncmp(t->tlm, "ffn.down_proj.weight", 20) == 0)
                cols = F;
            shape[0] = rows;
            shape[1] = cols;
            snprintf(name, sizeof name, "decoder.layers.%d.%s", (int)l, t->tlm);
            TLMI_TRY(resolve(im, name, ndim, shape, &src));
        }
    shape[0] = D;
    TLMI_TRY(resolve(im, "decoder.final_norm.weight", 1, shape, &src));
    TLMI_TRY(resolve(im, "decoder.final_norm.bias", 1, shape, &src));
    if (!c->tied_output) {
        shape[0] = V;
        shape[1] = D;
        TLMI_TRY(resolve(im, "lm_head.weight", 2, shape, &src));
    }
    return TLM_OK;
}

/* Reads the configuration from `path`. */
static int read_config_file(tlmi_host *host, const char *path,
                            tlm_model_config *config) {
    void *text = NULL;
    size_t size = 0;
    int status = tlmi_file_read_all(host, path, MAX_JSON_BYTES, &text, &size);
    if (status != TLM_OK)
        return tlmi_fail_forward(host, status,
                                 "reading the configuration");
    status = tlmi_hf_config_parse(host, path, text, size, config);
    tlmi_file_free_contents(host, text, size);
    return status;
}

/* Opens the weights `path` names: a directory, a safetensors file or an
 * index. *weights_dir gets the directory they are in (its length). */
static int open_weights(hf_importer *im, const char *path, char **dir_path,
                        size_t *dir_size) {
    tlmi_host *host = im->host;
    char *candidate = NULL;
    size_t candidate_size = 0;
    int status = TLM_OK;
    if (is_directory(path)) {
        *dir_size = strlen(path) + 1;
        *dir_path = tlmi_host_alloc(host, *dir_size, 1);
        if (*dir_path == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        memcpy(*dir_path, path, *dir_size);
        candidate = join_path(host, path, strlen(path), "model.safetensors",
                              &candidate_size);
        if (candidate == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        if (file_exists(candidate)) {
            status = TLM_OK;
        } else {
            tlmi_host_free(host, candidate, candidate_size);
            candidate = join_path(host, path, strlen(path),
                                  "model.safetensors.index.json",
                                  &candidate_size);
            if (candidate == NULL)
                return tlmi_fail(host, TLM_E_NOMEM, "out of memory");
            if (!file_exists(candidate)) {
                tlmi_host_free(host, candidate, candidate_size);
                return tlmi_fail(host, TLM_E_IO,
                                 "'%s' holds neither model.safetensors nor "
                                 "model.safetensors.index.json",
                                 path);
            }
        }
    } else {
        size_t length = dir_length(path);
        const char *dir = length == 0 ? "." : path;
        if (length == 0)
            length = 1;
        *dir_size = length + 1;
        *dir_path = tlmi_host_alloc(host, *dir_size, 1);
        if (*dir_path == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        memcpy(*dir_path, dir, length);
        (*dir_path)[length] = '\0';
        candidate_size = strlen(path) + 1;
        candidate = tlmi_host_alloc(host, candidate_size, 1);
        if (candidate == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        memcpy(candidate, path, candidate_size);
    }
    /* An index or a safetensors file: the content says which. */
    unsigned char head[16] = {0};
    size_t got = 0;
    FILE *file = fopen(candidate, "rb");
    if (file == NULL) {
        status = tlmi_fail(host, TLM_E_IO, "cannot open '%s': %s", candidate,
                           strerror(errno));
        goto cleanup;
    }
    got = fread(head, 1, sizeof head, file);
    fclose(file);
    if (looks_like_json(head, got)) {
        status = open_index(im, candidate);
    } else {
        im->shards = tlmi_host_alloc(host, sizeof *im->shards, 64);
        if (im->shards == NULL) {
            status = tlmi_fail(host, TLM_E_NOMEM, "out of memory");
            goto cleanup;
        }
        memset(im->shards, 0, sizeof *im->shards);
        im->n_shards = 1;
        hf_shard *shard = &im->shards[0];
        shard->file = candidate;
        shard->file_size = candidate_size;
        shard->path = candidate;
        shard->path_size = 0; /* shared with `file` */
        candidate = NULL;
        status = tlmi_safetensors_open(host, shard->path, TLMI_ST_OPEN_MAP,
                                       &shard->st);
    }
cleanup:
    if (candidate != NULL)
        tlmi_host_free(host, candidate, candidate_size);
    return status;
}

static void release(hf_importer *im) {
    for (size_t i = 0; i < im->n_shards; i++) {
        hf_shard *shard = &im->shards[i];
        tlmi_safetensors_free(shard->st);
        if (shard->path != NULL && shard->path_size != 0)
            tlmi_host_free(im->host, shard->path, shard->path_size);
        if (shard->file != NULL)
            tlmi_host_free(im->host, shard->file, shard->file_size);
    }
    if (im->shards != NULL) {
        size_t count = im->weight_map != NULL ? tlmi_json_count(im->weight_map)
                                              : 1;
        tlmi_host_free(im->host, im->shards, count * sizeof *im->shards);
    }
    tlmi_json_free(im->index);
    if (im->scratch != NULL)
        tlmi_host_free(im->host, im->scratch, im->scratch_count * sizeof(float));
}

int tlmi_hf_import(tlm_model **out, tlm_context *ctx, const char *path,
                   const char *config_path, const tlm_model_config *given,
                   int32_t allow_nonfinite) {
    tlmi_host *host = &ctx->host;
    hf_importer im;
    memset(&im, 0, sizeof im);
    im.host = host;
    im.allow_nonfinite = allow_nonfinite;
    im.path = path;
    im.prefix = "transformer.";
    char *dir = NULL, *config_file = NULL;
    size_t dir_size = 0, config_file_size = 0;
    tlm_model *model = NULL;
    int status = open_weights(&im, path, &dir, &dir_size);
    if (status != TLM_OK)
        goto cleanup;
    if (given != NULL) {
        tlm_model_config_init(&im.config);
        status = tlmi_params_merge(host, "config", &im.config,
                                   sizeof im.config, given);
        /* The shapes checked before tlm_model_create divide by it. */
        if (status == TLM_OK && im.config.n_heads < 1)
            status = tlmi_fail(host, TLM_E_INVALID,
                               "config: n_heads is %d; it must be >= 1",
                               (int)im.config.n_heads);
        /* Its position, norm and activation say whose names to read. */
        if (status == TLM_OK)
            status = tlmi_hf_is_llama(&im.config)
                         ? tlmi_hf_llama_check_expressible(host, "config",
                                                           &im.config)
                         : tlmi_gpt2_check_expressible(
                               host, "config", &im.config, TLMI_GPT2_HF);
    } else if (config_path != NULL) {
        status = read_config_file(host, config_path, &im.config);
    } else {
        config_file = join_path(host, dir, strlen(dir), "config.json",
                                &config_file_size);
        status = config_file == NULL
                     ? tlmi_fail(host, TLM_E_NOMEM, "out of memory")
                     : read_config_file(host, config_file, &im.config);
    }
    if (status != TLM_OK)
        goto cleanup;
    im.llama = tlmi_hf_is_llama(&im.config);
    if (im.llama)
        im.prefix = "model.";
    /* An untied output needs its own weights: transformers would start a
     * missing lm_head from random values, tlm refuses. */
    if (!im.config.tied_output) {
        const tlmi_safetensors *st = NULL;
        const char *shard_path = NULL;
        if (find_tensor(&im, "lm_head.weight", &st, &shard_path) == NULL) {
            status = tlmi_fail(host, TLM_E_FORMAT,
                               "'%s' lacks the tensor 'lm_head.weight' that "
                               "the configuration needs "
                               "(tie_word_embeddings is false)",
                               path);
            goto cleanup;
        }
    }
    status = check_checkpoint(&im, &im.config);
    if (status != TLM_OK)
        goto cleanup;
    const tlmi_parameter_source source = {lookup, &im, 1, copied, TLM_WEIGHTS_F32};
    {
        char what[320];
        snprintf(what, sizeof what, "Hugging Face checkpoint '%.280s'", path);
        status = tlmi_import_build_status(
            host, tlmi_model_build(&model, ctx, &im.config, &source), what);
    }
cleanup:
    release(&im);
    if (dir != NULL)
        tlmi_host_free(host, dir, dir_size);
    if (config_file != NULL)
        tlmi_host_free(host, config_file, config_file_size);
    if (status != TLM_OK)
        return status;
    *out = model;
    return TLM_OK;
}

/* ------------------------------------------------------------------------
 * Export
 */

/* One GPT-2 tensor to write, computed from tlm's parameters. */
typedef struct hf_out {
    int32_t kind;           /* an hf_kind; QKV: from parts[0..2] */
    const tlm_tensor *parts[3];
    int32_t weight_type;    /* a tlm_weight_type */
    int64_t head_dim;       /* HF_ROTARY: rows per head */
} hf_out;


static void put_value(void *dst, size_t index, float value, int32_t type) {
    if (type == TLM_WEIGHT_F32) {
        ((float *)dst)[index] = value;
    } else {
        ((uint16_t *)dst)[index] = type == TLM_WEIGHT_F16
                                       ? tlmi_float_to_half(value)
                                       : tlmi_float_to_bf16(value);
    }
}

/* tlmi_st_produce_fn: the GPT-2 tensor's values, in the file's dtype. */
static int produce(void *user, void *dst, size_t nbytes) {
    const hf_out *o = user;
    (void)nbytes;
    const tlm_tensor *t = o->parts[0];
    const float *w = t->data;
    size_t rows = (size_t)t->shape[0];
    size_t cols = t->ndim > 1 ? (size_t)t->shape[1] : 1;
    switch (o->kind) {
    case HF_COPY:
        for (size_t i = 0; i < rows * cols; i++)
            put_value(dst, i, w[i], o->weight_type);
        break;
    case HF_ROTARY: /* tlm row r goes to HF row rotary_row(r) */
        for (size_t r = 0; r < rows; r++) {
            const size_t to = (size_t)tlmi_hf_rotary_row((int64_t)r, o->head_dim);
            for (size_t c = 0; c < cols; c++)
                put_value(dst, to * cols + c, w[r * cols + c], o->weight_type);
        }
        break;
    case HF_TRANSPOSE: /* [out, in] -> [in, out] */
        for (size_t r = 0; r < rows; r++)
            for (size_t c = 0; c < cols; c++)
                put_value(dst, c * rows + r, w[r * cols + c], o->weight_type);
        break;
    case HF_QKV_WEIGHT: /* three [D, D] -> [D, 3D], part p at columns pD.. */
        for (int p = 0; p < 3; p++) {
            const float *part = o->parts[p]->data;
            for (size_t r = 0; r < rows; r++)
                for (size_t c = 0; c < cols; c++)
                    put_value(dst, c * 3 * rows + (size_t)p * rows + r,
                              part[r * cols + c], o->weight_type);
        }
        break;
    default: /* HF_QKV_BIAS: three [D] -> [3D] */
        for (int p = 0; p < 3; p++) {
            const float *part = o->parts[p]->data;
            for (size_t r = 0; r < rows; r++)
                put_value(dst, (size_t)p * rows + r, part[r], o->weight_type);
        }
        break;
    }
    return TLM_OK;
}

static const tlm_tensor *parameter(const tlm_model *model, const char *name) {
    for (int32_t i = 0; i < model->n_parameters; i++)
        if (strcmp(model->parameters[i].name, name) == 0)
            return model->parameters[i].tensor;
    return NULL;
}

/* Adds the GPT-2 tensor `hf` ("transformer." + hf), made from tlm's
 * parameter(s) `tlm` by `kind`. */
static int add_out(tlmi_safetensors_writer *writer, const tlm_model *model,
                   hf_out *out, const char *hf, const char *tlm, int32_t kind,
                   int32_t weight_type) {
    tlmi_host *host = &model->ctx->host;
    char name[TLMI_PARAM_NAME_MAX + 16];
    out->kind = kind;
    out->weight_type = weight_type;
    int n_parts = kind == HF_QKV_WEIGHT || kind == HF_QKV_BIAS ? 3 : 1;
    for (int p = 0; p < n_parts; p++) {
        static const char letters[3] = {'q', 'k', 'v'};
        char part[TLMI_PARAM_NAME_MAX];
        snprintf(part, sizeof part, "%s", tlm);
        if (n_parts == 3) {
            char *x = strstr(part, "q_proj");
            if (x != NULL)
                *x = letters[p];
        }
        out->parts[p] = parameter(model, part);
        if (out->parts[p] == NULL)
            return tlmi_fail(host, TLM_E_INTERNAL,
                             "the model has no parameter '%s'", part);
    }
    const tlm_tensor *t = out->parts[0];
    int64_t shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 1};
    if (kind == HF_TRANSPOSE) {
        shape[0] = t->shape[1];
        shape[1] = t->shape[0];
    } else if (kind == HF_QKV_WEIGHT) {
        shape[0] = t->shape[1];
        shape[1] = 3 * t->shape[0];
    } else if (kind == HF_QKV_BIAS) {
        shape[0] = 3 * t->shape[0];
    }
    snprintf(name, sizeof name, "transformer.%s", hf);
    if (strcmp(hf, "lm_head.weight") == 0)
        snprintf(name, sizeof name, "%s", hf);
    static const int32_t dtypes[3] = {TLMI_ST_F32, TLMI_ST_F16, TLMI_ST_BF16};
    return tlmi_safetensors_writer_add_produced(
        writer, name, dtypes[weight_type], t->ndim, shape, produce, out);
}

/* Adds Llama's tensor for tlm's parameter `tlm` ("model." + its Llama
 * name; lm_head.weight as is), q and k rows permuted. */
static int add_llama_out(tlmi_safetensors_writer *writer,
                         const tlm_model *model, hf_out *out, const char *tlm,
                         int32_t weight_type) {
    tlmi_host *host = &model->ctx->host;
    char hf[TLMI_PARAM_NAME_MAX + 16], name[TLMI_PARAM_NAME_MAX + 32];
    int rotary = 0;
    if (!tlmi_hf_llama_name(tlm, hf, sizeof hf, &rotary))
        return tlmi_fail(host, TLM_E_INTERNAL, "no Llama name for '%s'", tlm);
    out->kind = rotary ? HF_ROTARY : HF_COPY;
    out->weight_type = weight_type;
    out->head_dim = model->config.head_dim;
    out->parts[0] = parameter(model, tlm);
    if (out->parts[0] == NULL)
        return tlmi_fail(host, TLM_E_INTERNAL,
                         "the model has no parameter '%s'", tlm);
    if (strcmp(hf, "lm_head.weight") == 0)
        snprintf(name, sizeof name, "%s", hf);
    else
        snprintf(name, sizeof name, "model.%s", hf);
    const tlm_tensor *t = out->parts[0];
    int64_t shape[2] = {t->shape[0], t->ndim > 1 ? t->shape[1] : 1};
    static const int32_t dtypes[3] = {TLMI_ST_F32, TLMI_ST_F16, TLMI_ST_BF16};
    return tlmi_safetensors_writer_add_produced(
        writer, name, dtypes[weight_type], t->ndim, shape, produce, out);
}

/* Every Llama tensor of `model`, in transformers' order of parameters. */
static int add_llama_outs(tlmi_safetensors_writer *writer,
                          const tlm_model *model, hf_out *outs,
                          int32_t weight_type) {
    size_t k = 0;
    TLMI_TRY(add_llama_out(writer, model, &outs[k++], "token_embedding.weight",
                           weight_type));
    char tlm[TLMI_PARAM_NAME_MAX];
    for (int32_t l = 0; l < model->config.n_decoder_layers; l++)
        for (size_t i = 0; i < tlmi_hf_llama_layer_count(); i++) {
            snprintf(tlm, sizeof tlm, "decoder.layers.%d.%s", (int)l,
                     tlmi_hf_llama_layer_name(i));
            TLMI_TRY(add_llama_out(writer, model, &outs[k++], tlm,
                                   weight_type));
        }
    TLMI_TRY(add_llama_out(writer, model, &outs[k++],
                           "decoder.final_norm.weight", weight_type));
    if (!model->config.tied_output)
        TLMI_TRY(add_llama_out(writer, model, &outs[k++], "lm_head.weight",
                               weight_type));
    return TLM_OK;
}

/* config.json as transformers' GPT2Config writes it. */
static int write_config(const tlm_model *model, const char *path,
                        int32_t weight_type) {
    tlmi_host *host = &model->ctx->host;
    const tlm_model_config *c = &model->config;
    static const char *activations[] = {"gelu_new", "gelu", "relu"};
    static const char *dtypes[] = {"float32", "float16", "bfloat16"};
    tlmi_json_writer w;
    tlmi_json_writer_init(&w, host);
    if (tlmi_hf_is_llama(c)) {
        tlmi_hf_llama_write_config(model, weight_type, &w);
        goto written;
    }
    tlmi_json_write_object_begin(&w);
    tlmi_json_write_key(&w, "activation_function");
    tlmi_json_write_string(&w, activations[c->activation]);
    tlmi_json_write_key(&w, "architectures");
    tlmi_json_write_array_begin(&w);
    tlmi_json_write_string(&w, "GPT2LMHeadModel");
    tlmi_json_write_array_end(&w);
    tlmi_json_write_key(&w, "attn_pdrop");
    tlmi_json_write_double(&w, 0.0);
    /* GPT-2's <|endoftext|> is 50256; a smaller vocabulary has no such
     * id (transformers warns about one outside the vocabulary). */
    tlmi_json_write_key(&w, "bos_token_id");
    if (c->vocab_size > 50256)
        tlmi_json_write_int64(&w, 50256);
    else
        tlmi_json_write_null(&w);
    tlmi_json_write_key(&w, "embd_pdrop");
    tlmi_json_write_float(&w, c->embedding_dropout);
    tlmi_json_write_key(&w, "eos_token_id");
    if (c->vocab_size > 50256)
        tlmi_json_write_int64(&w, 50256);
    else
        tlmi_json_write_null(&w);
    tlmi_json_write_key(&w, "initializer_range");
    tlmi_json_write_double(&w, 0.02);
    tlmi_json_write_key(&w, "layer_norm_epsilon");
    tlmi_json_write_float(&w, c->norm_eps);
    tlmi_json_write_key(&w, "model_type");
    tlmi_json_write_string(&w, "gpt2");
    tlmi_json_write_key(&w, "n_embd");
    tlmi_json_write_int64(&w, c->d_model);
    tlmi_json_write_key(&w, "n_head");
    tlmi_json_write_int64(&w, c->n_heads);
    tlmi_json_write_key(&w, "n_inner");
    if (c->d_ff == 4 * c->d_model)
        tlmi_json_write_null(&w);
    else
        tlmi_json_write_int64(&w, c->d_ff);
    tlmi_json_write_key(&w, "n_layer");
    tlmi_json_write_int64(&w, c->n_decoder_layers);
    tlmi_json_write_key(&w, "n_positions");
    tlmi_json_write_int64(&w, c->max_context);
    tlmi_json_write_key(&w, "reorder_and_upcast_attn");
    tlmi_json_write_bool(&w, 0);
    tlmi_json_write_key(&w, "resid_pdrop");
    tlmi_json_write_float(&w, c->residual_dropout);
    tlmi_json_write_key(&w, "scale_attn_by_inverse_layer_idx");
    tlmi_json_write_bool(&w, 0);
    tlmi_json_write_key(&w, "scale_attn_weights");
    tlmi_json_write_bool(&w, 1);
    tlmi_json_write_key(&w, "tie_word_embeddings");
    tlmi_json_write_bool(&w, c->tied_output);
    tlmi_json_write_key(&w, "torch_dtype");
    tlmi_json_write_string(&w, dtypes[weight_type]);
    tlmi_json_write_key(&w, "use_cache");
    tlmi_json_write_bool(&w, 1);
    tlmi_json_write_key(&w, "vocab_size");
    tlmi_json_write_int64(&w, c->vocab_size);
    tlmi_json_write_object_end(&w);
written:;
    const char *text = NULL;
    size_t size = 0;
    int status = tlmi_json_writer_result(&w, &text, &size);
    if (status == TLM_OK)
        status = tlmi_file_write_atomic(host, path, text, size);
    tlmi_json_writer_release(&w);
    return status;
}

int tlmi_hf_export(const tlm_model *model, const char *dir,
                   int32_t weight_type) {
    tlmi_host *host = &model->ctx->host;
    const tlm_model_config *c = &model->config;
    /* The model decides the architecture: Llama's shape gets Llama's
     * names, anything else must be a GPT-2. */
    const int llama = tlmi_hf_is_llama(c);
    if (llama)
        TLMI_TRY(tlmi_hf_llama_check_expressible(host, "the model", c));
    else
        TLMI_TRY(tlmi_gpt2_check_expressible(host, "the model", c,
                                             TLMI_GPT2_HF));
    const int32_t L = c->n_decoder_layers;
    const size_t n_out =
        llama ? 1 + (size_t)L * tlmi_hf_llama_layer_count() + 1 +
                    (c->tied_output ? 0 : 1)
              : 2 + (size_t)L * 12 + 2 + (c->tied_output ? 0 : 1);
    hf_out *outs = NULL;
    tlmi_safetensors_writer *writer = NULL;
    char *path = NULL;
    size_t path_size = 0;
    int status = TLM_OK;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        return tlmi_fail(host, TLM_E_IO, "cannot create the directory '%s': %s",
                         dir, strerror(errno));
    if (!is_directory(dir))
        return tlmi_fail(host, TLM_E_IO, "'%s' exists and is not a directory",
                         dir);
    /* Without a GPT-2 tokenizer no tokenizer files are written, so ones
     * already there (another model's) would be paired with these weights
     * by transformers and by tlm import. */
    const int32_t kind =
        model->tokenizer != NULL ? tlm_tokenizer_kind(model->tokenizer) : -1;
    const int writes_gpt2 = kind == TLM_TOKENIZER_GPT2;
    const int writes_sp = kind == TLM_TOKENIZER_SENTENCEPIECE;
    static const char *const tokenizer_files[] = {
        "vocab.json", "merges.txt", "encoder.json", "vocab.bpe",
        "tokenizer.model"};
    for (size_t i = 0; i < 5; i++) {
        if (i < 4 ? writes_gpt2 : writes_sp)
            continue;
        char *stale = join_path(host, dir, strlen(dir), tokenizer_files[i],
                                &path_size);
        if (stale == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        const int exists = file_exists(stale);
        tlmi_host_free(host, stale, path_size);
        if (exists)
            return tlmi_fail(host, TLM_E_STATE,
                             "'%s' holds %s, a tokenizer this model (which "
                             "has no %s tokenizer) would be paired with: "
                             "export into another directory, or remove it",
                             dir, tokenizer_files[i],
                             i < 4 ? "GPT-2" : "SentencePiece");
    }
    outs = tlmi_host_alloc(host, n_out * sizeof *outs, 64);
    if (outs == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        goto cleanup;
    }
    memset(outs, 0, n_out * sizeof *outs);
    status = tlmi_safetensors_writer_create(host, &writer);
    if (status == TLM_OK)
        status = tlmi_safetensors_writer_add_metadata(writer, "format", "pt");
    size_t k = 0;
    if (status == TLM_OK && llama) {
        status = add_llama_outs(writer, model, outs, weight_type);
        goto save;
    }
    if (status == TLM_OK)
        status = add_out(writer, model, &outs[k++], "wte.weight",
                         "token_embedding.weight", HF_COPY, weight_type);
    if (status == TLM_OK)
        status = add_out(writer, model, &outs[k++], "wpe.weight",
                         "position_embedding.weight", HF_COPY, weight_type);
    for (int32_t l = 0; l < L && status == TLM_OK; l++) {
        for (size_t i = 0; i < N_LAYER_TENSORS && status == TLM_OK; i++) {
            const hf_layer_tensor *t = &layer_tensors[i];
            /* c_attn is written once, from q (its k and v rows skipped). */
            if ((t->kind == HF_QKV_WEIGHT || t->kind == HF_QKV_BIAS) &&
                t->part != 0)
                continue;
            char hf[TLMI_PARAM_NAME_MAX], tlm[TLMI_PARAM_NAME_MAX];
            snprintf(hf, sizeof hf, "h.%d.%s", (int)l, t->hf);
            snprintf(tlm, sizeof tlm, "decoder.layers.%d.%s", (int)l, t->tlm);
            status = add_out(writer, model, &outs[k++], hf, tlm, t->kind,
                             weight_type);
        }
    }
    if (status == TLM_OK)
        status = add_out(writer, model, &outs[k++], "ln_f.weight",
                         "decoder.final_norm.weight", HF_COPY, weight_type);
    if (status == TLM_OK)
        status = add_out(writer, model, &outs[k++], "ln_f.bias",
                         "decoder.final_norm.bias", HF_COPY, weight_type);
    if (status == TLM_OK && !c->tied_output)
        status = add_out(writer, model, &outs[k++], "lm_head.weight",
                         "lm_head.weight", HF_COPY, weight_type);
save:
    if (status != TLM_OK)
        goto cleanup;
    path = join_path(host, dir, strlen(dir), "model.safetensors", &path_size);
    if (path == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        goto cleanup;
    }
    status = tlmi_safetensors_writer_save(writer, path);
    if (status != TLM_OK)
        goto cleanup;
    tlmi_host_free(host, path, path_size);
    path = join_path(host, dir, strlen(dir), "config.json", &path_size);
    if (path == NULL) {
        status = tlmi_fail(host, TLM_E_NOMEM, "out of memory");
        goto cleanup;
    }
    status = write_config(model, path, weight_type);
    /* The directory is a complete model for transformers only with the
     * tokenizer files beside the weights, under the names its GPT-2
     * tokenizers look for. */
    if (status == TLM_OK && writes_gpt2) {
        status = tlmi_gpt2_export(model->tokenizer, dir, "vocab.json",
                                  "merges.txt", "tlm_model_export");
        if (status != TLM_OK)
            status = tlmi_fail_copy(host, status, tlm_last_error());
    }
    /* A SentencePiece tokenizer as tokenizer.model, which transformers'
     * LlamaTokenizer reads. */
    if (status == TLM_OK && writes_sp) {
        status = tlm_tokenizer_export(model->tokenizer, dir);
        if (status != TLM_OK)
            status = tlmi_fail_copy(host, status, tlm_last_error());
    }
cleanup:
    tlmi_safetensors_writer_free(writer);
    if (outs != NULL)
        tlmi_host_free(host, outs, n_out * sizeof *outs);
    if (path != NULL)
        tlmi_host_free(host, path, path_size);
    return status;
}
