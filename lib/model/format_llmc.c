/*
 * llm.c GPT-2 checkpoints (karpathy/llm.c, train_gpt2.c's
 * gpt2_build_from_checkpoint and train_gpt2.py's write_model), read into
 * tlm's parameters and written from them. docs/formats-import.md lists
 * what is accepted.
 *
 * Layout: 256 little-endian int32 (1024 bytes): [0] magic 20240326,
 * [1] version (3: float32, 5: bfloat16), [2] maxT, [3] V, [4] L, [5] NH,
 * [6] C, [7] Vp (V padded, llm.c rounds up to a multiple of 128); then 16
 * tensors back to back, each holding every layer's copy ([L, ...]):
 *
 *   wte [Vp, C]  wpe [maxT, C]  ln1w [L, C]  ln1b [L, C]  qkvw [L, 3C, C]
 *   qkvb [L, 3C]  attprojw [L, C, C]  attprojb [L, C]  ln2w [L, C]
 *   ln2b [L, C]  fcw [L, 4C, C]  fcb [L, 4C]  fcprojw [L, C, 4C]
 *   fcprojb [L, C]  lnfw [C]  lnfb [C]
 *
 * llm.c's linear weights are PyTorch nn.Linear weights, [out, in] as
 * tlm's, and qkvw stacks q, k and v rows; rows V..Vp-1 of wte are padding.
 */
#define _POSIX_C_SOURCE 200809L /* stat, mkdir, fseeko, ftello */
#define _FILE_OFFSET_BITS 64     /* files past 2 GiB on 32-bit hosts */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "base/half.h"
#include "formats.h"
#include "model.h"

enum llmc_tensor {
    WTE, WPE, LN1W, LN1B, QKVW, QKVB, ATTPROJW, ATTPROJB,
    LN2W, LN2B, FCW, FCB, FCPROJW, FCPROJB, LNFW, LNFB, N_TENSORS
};

/* Values converted per read (a bounded buffer on the stack). */
#define CHUNK 4096

typedef struct llmc_reader {
    tlmi_host *host;
    const char *what;
    const unsigned char *buffer; /* buffer mode */
    FILE *file;                  /* file mode */
    uint64_t size;
    int32_t version;
    int64_t maxT, V, L, NH, C, Vp;
    size_t element; /* 4 or 2 bytes */
    uint64_t start[N_TENSORS]; /* first element of each tensor */
    float *scratch;
    size_t scratch_count;
} llmc_reader;

/* Element counts of the 16 tensors (fill_in_parameter_sizes). */
static void tensor_sizes(int64_t maxT, int64_t L, int64_t C, int64_t Vp,
                         uint64_t sizes[N_TENSORS]) {
    const uint64_t c = (uint64_t)C, l = (uint64_t)L;
    sizes[WTE] = (uint64_t)Vp * c;
    sizes[WPE] = (uint64_t)maxT * c;
    sizes[LN1W] = sizes[LN1B] = l * c;
    sizes[QKVW] = l * 3 * c * c;
    sizes[QKVB] = l * 3 * c;
    sizes[ATTPROJW] = l * c * c;
    sizes[ATTPROJB] = l * c;
    sizes[LN2W] = sizes[LN2B] = l * c;
    sizes[FCW] = l * 4 * c * c;
    sizes[FCB] = l * 4 * c;
    sizes[FCPROJW] = l * c * 4 * c;
    sizes[FCPROJB] = l * c;
    sizes[LNFW] = sizes[LNFB] = c;
}

/* Checks one header field against [min, max]. */
static int check_field(llmc_reader *r, int index, const char *name,
                       int64_t value, int64_t min, int64_t max) {
    if (value < min || value > max)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "llm.c checkpoint '%s': header[%d] (%s) is %lld, "
                         "outside %lld..%lld",
                         r->what, index, name, (long long)value,
                         (long long)min, (long long)max);
    return TLM_OK;
}

/* Reads and checks the header (the first 1024 bytes, in `header`) and
 * that the size is exactly header + parameters. */
static int parse_header(llmc_reader *r, const unsigned char *header,
                        size_t got) {
    if (got < TLMI_LLMC_HEADER_BYTES)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "llm.c checkpoint '%s': %zu bytes, shorter than the "
                         "%d-byte header",
                         r->what, got, TLMI_LLMC_HEADER_BYTES);
    int32_t h[8];
    for (int i = 0; i < 8; i++)
        h[i] = (int32_t)tlmi_get_u32(header + 4 * i);
    if (h[0] != TLMI_LLMC_MAGIC)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "llm.c checkpoint '%s': header[0] (magic) is %d, "
                         "not %d",
                         r->what, (int)h[0], TLMI_LLMC_MAGIC);
    if (h[1] != TLMI_LLMC_VERSION_F32 && h[1] != TLMI_LLMC_VERSION_BF16)
        return tlmi_fail(r->host, TLM_E_UNSUPPORTED,
                         "llm.c checkpoint '%s': header[1] (version) is %d; "
                         "tlm reads version 3 (float32) and 5 (bfloat16)",
                         r->what, (int)h[1]);
    r->version = h[1];
    r->element = h[1] == TLMI_LLMC_VERSION_F32 ? 4 : 2;
    TLMI_TRY(check_field(r, 2, "max_seq_len", h[2], 1, 1 << 24));
    TLMI_TRY(check_field(r, 3, "vocab_size", h[3], 1, INT32_MAX));
    TLMI_TRY(check_field(r, 4, "num_layers", h[4], 1, 4096));
    TLMI_TRY(check_field(r, 5, "num_heads", h[5], 1, 65536));
    TLMI_TRY(check_field(r, 6, "channels", h[6], 1, 1 << 20));
    TLMI_TRY(check_field(r, 7, "padded_vocab_size", h[7], h[3], INT32_MAX));
    if (h[6] % h[5] != 0)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "llm.c checkpoint '%s': header[6] (channels) %d is "
                         "not a multiple of header[5] (num_heads) %d",
                         r->what, (int)h[6], (int)h[5]);
    r->maxT = h[2];
    r->V = h[3];
    r->L = h[4];
    r->NH = h[5];
    r->C = h[6];
    r->Vp = h[7];
    /* With the ranges above no size overflows 64 bits: C^2 L <= 2^52. */
    uint64_t sizes[N_TENSORS];
    tensor_sizes(r->maxT, r->L, r->C, r->Vp, sizes);
    uint64_t total = 0;
    for (int i = 0; i < N_TENSORS; i++) {
        r->start[i] = total;
        total += sizes[i];
    }
    const uint64_t expected = TLMI_LLMC_HEADER_BYTES + total * r->element;
    if (r->size != expected)
        return tlmi_fail(r->host, TLM_E_FORMAT,
                         "llm.c checkpoint '%s': %llu bytes, but its header "
                         "(version %d, maxT %lld, V %lld, Vp %lld, L %lld, "
                         "C %lld) needs exactly %llu",
                         r->what, (unsigned long long)r->size, (int)r->version,
                         (long long)r->maxT, (long long)r->V,
                         (long long)r->Vp, (long long)r->L, (long long)r->C,
                         (unsigned long long)expected);
    return TLM_OK;
}

/* Reads `count` values from element `first` of the parameter area into
 * `dst`, converting bfloat16 chunk by chunk. */
static int read_values(llmc_reader *r, uint64_t first, size_t count,
                       float *dst) {
    const uint64_t offset = TLMI_LLMC_HEADER_BYTES + first * r->element;
    unsigned char chunk[CHUNK * 4];
    if (r->file != NULL && fseeko(r->file, (off_t)offset, SEEK_SET) != 0)
        return tlmi_fail(r->host, TLM_E_IO,
                         "llm.c checkpoint '%s': cannot seek to byte %llu: %s",
                         r->what, (unsigned long long)offset, strerror(errno));
    for (size_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? count - done : CHUNK;
        const unsigned char *bytes = chunk;
        if (r->file != NULL) {
            if (fread(chunk, r->element, n, r->file) != n)
                return tlmi_fail(r->host, TLM_E_IO,
                                 "llm.c checkpoint '%s': reading %zu bytes at "
                                 "byte %llu failed (%s)",
                                 r->what, n * r->element,
                                 (unsigned long long)(offset +
                                                      done * r->element),
                                 ferror(r->file) ? strerror(errno)
                                                 : "the file got shorter");
        } else {
            bytes = r->buffer + offset + done * r->element;
        }
        if (r->element == 4) {
            for (size_t i = 0; i < n; i++) {
                uint32_t bits = tlmi_get_u32(bytes + 4 * i);
                memcpy(&dst[done + i], &bits, sizeof bits);
            }
        } else {
            for (size_t i = 0; i < n; i++)
                dst[done + i] = tlmi_bf16_to_float(tlmi_get_u16(bytes + 2 * i));
        }
        done += n;
    }
    return TLM_OK;
}

/* Where tlm's parameter `name` starts in the parameter area. */
static int locate(llmc_reader *r, const char *name, uint64_t *first) {
    const uint64_t C = (uint64_t)r->C;
    int layer = -1, used = 0;
    if (strcmp(name, "token_embedding.weight") == 0) {
        *first = r->start[WTE]; /* rows 0..V-1; the padding is skipped */
        return TLM_OK;
    }
    if (strcmp(name, "position_embedding.weight") == 0) {
        *first = r->start[WPE];
        return TLM_OK;
    }
    if (strcmp(name, "decoder.final_norm.weight") == 0) {
        *first = r->start[LNFW];
        return TLM_OK;
    }
    if (strcmp(name, "decoder.final_norm.bias") == 0) {
        *first = r->start[LNFB];
        return TLM_OK;
    }
    if (sscanf(name, "decoder.layers.%d.%n", &layer, &used) == 1 && used > 0 &&
        layer >= 0 && layer < r->L) {
        const uint64_t l = (uint64_t)layer;
        const char *part = name + used;
        static const char qkv[3] = {'q', 'k', 'v'};
        for (int p = 0; p < 3; p++) {
            char weight[32], bias[32];
            snprintf(weight, sizeof weight, "self_attn.%c_proj.weight", qkv[p]);
            snprintf(bias, sizeof bias, "self_attn.%c_proj.bias", qkv[p]);
            if (strcmp(part, weight) == 0) {
                *first = r->start[QKVW] + l * 3 * C * C + (uint64_t)p * C * C;
                return TLM_OK;
            }
            if (strcmp(part, bias) == 0) {
                *first = r->start[QKVB] + l * 3 * C + (uint64_t)p * C;
                return TLM_OK;
            }
        }
        static const struct {
            const char *tlm;
            int tensor;
            uint64_t per_layer_in_c; /* elements per layer / C */
        } table[] = {
            {"self_attn_norm.weight", LN1W, 1},
            {"self_attn_norm.bias", LN1B, 1},
            {"self_attn.o_proj.weight", ATTPROJW, 0},
            {"self_attn.o_proj.bias", ATTPROJB, 1},
            {"ffn_norm.weight", LN2W, 1},
            {"ffn_norm.bias", LN2B, 1},
            {"ffn.up_proj.weight", FCW, 0},
            {"ffn.up_proj.bias", FCB, 4},
            {"ffn.down_proj.weight", FCPROJW, 0},
            {"ffn.down_proj.bias", FCPROJB, 1},
        };
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
            if (strcmp(part, table[i].tlm) != 0)
                continue;
            uint64_t per_layer = table[i].per_layer_in_c * C;
            if (table[i].tensor == ATTPROJW)
                per_layer = C * C;
            else if (table[i].tensor == FCW || table[i].tensor == FCPROJW)
                per_layer = 4 * C * C;
            *first = r->start[table[i].tensor] + l * per_layer;
            return TLM_OK;
        }
    }
    return tlmi_fail(r->host, TLM_E_INTERNAL,
                     "llm.c checkpoint '%s': no llm.c tensor for tlm's '%s'",
                     r->what, name);
}

/* tlmi_parameter_source's lookup: the parameter read into the scratch. */
static int lookup(void *user, const char *name, int32_t ndim,
                  const int64_t *shape, const void **data) {
    llmc_reader *r = user;
    uint64_t first = 0;
    TLMI_TRY(locate(r, name, &first));
    size_t count = (size_t)shape[0] * (size_t)(ndim > 1 ? shape[1] : 1);
    if (count > r->scratch_count) {
        if (r->scratch != NULL)
            tlmi_host_free(r->host, r->scratch, r->scratch_count * sizeof(float));
        r->scratch_count = 0;
        r->scratch = tlmi_host_alloc(r->host, count * sizeof(float), 64);
        if (r->scratch == NULL)
            return tlmi_fail(r->host, TLM_E_NOMEM,
                             "llm.c checkpoint '%s': out of memory reading "
                             "'%s'",
                             r->what, name);
        r->scratch_count = count;
    }
    TLMI_TRY(read_values(r, first, count, r->scratch));
    *data = r->scratch;
    return TLM_OK;
}

static int import(tlm_model **out, tlm_context *ctx, llmc_reader *r,
                  const unsigned char *header, size_t header_size) {
    int status = parse_header(r, header, header_size);
    if (status != TLM_OK)
        return status;
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = (int32_t)r->V;
    config.d_model = (int32_t)r->C;
    config.n_heads = (int32_t)r->NH;
    config.head_dim = 0;
    config.d_ff = (int32_t)(4 * r->C);
    config.n_encoder_layers = 0;
    config.n_decoder_layers = (int32_t)r->L;
    config.max_context = (int32_t)r->maxT;
    config.position = TLM_POSITION_LEARNED;
    config.norm = TLM_NORM_LAYER;
    config.norm_placement = TLM_NORM_PRE;
    config.activation = TLM_ACTIVATION_GELU; /* llm.c's tanh GELU */
    config.bias = 1;
    config.tied_output = 1;
    config.embedding_dropout = 0.0f;
    config.residual_dropout = 0.0f;
    config.norm_eps = 1e-5f;
    const tlmi_parameter_source source = {lookup, r, 1, NULL, TLM_WEIGHTS_F32};
    char what[320];
    snprintf(what, sizeof what, "llm.c checkpoint '%.280s'", r->what);
    status = tlmi_import_build_status(
        r->host, tlmi_model_build(out, ctx, &config, &source), what);
    if (r->scratch != NULL)
        tlmi_host_free(r->host, r->scratch, r->scratch_count * sizeof(float));
    return status;
}

int tlmi_llmc_import_buffer(tlm_model **out, tlm_context *ctx,
                            const char *what, const void *data, size_t size) {
    llmc_reader r;
    memset(&r, 0, sizeof r);
    r.host = &ctx->host;
    r.what = what != NULL ? what : "(buffer)";
    r.buffer = data;
    r.size = size;
    if (data == NULL && size > 0)
        return tlmi_fail(r.host, TLM_E_INVALID, "llm.c import: data is NULL");
    return import(out, ctx, &r, data, size);
}

int tlmi_llmc_import_file(tlm_model **out, tlm_context *ctx,
                          const char *path) {
    llmc_reader r;
    memset(&r, 0, sizeof r);
    r.host = &ctx->host;
    r.what = path;
    /* Checked before opening: fopen would wait forever on a FIFO, and a
     * directory would read as 0 bytes. */
    struct stat info;
    if (stat(path, &info) != 0)
        return tlmi_fail(r.host, TLM_E_IO, "cannot open '%s': %s", path,
                         strerror(errno));
    if (!S_ISREG(info.st_mode))
        return tlmi_fail(r.host, TLM_E_IO,
                         "llm.c checkpoint '%s' is not a regular file%s", path,
                         S_ISDIR(info.st_mode) ? " (a directory)" : "");
    r.file = fopen(path, "rb");
    if (r.file == NULL)
        return tlmi_fail(r.host, TLM_E_IO, "cannot open '%s': %s", path,
                         strerror(errno));
    unsigned char header[TLMI_LLMC_HEADER_BYTES];
    size_t got = fread(header, 1, sizeof header, r.file);
    int status = TLM_OK;
    if (fseeko(r.file, 0, SEEK_END) != 0 || ftello(r.file) < 0) {
        status = tlmi_fail(r.host, TLM_E_IO, "cannot size '%s': %s", path,
                           strerror(errno));
    } else {
        r.size = (uint64_t)ftello(r.file);
        status = import(out, ctx, &r, header, got);
    }
    fclose(r.file);
    return status;
}

/* ------------------------------------------------------------------------
 * Export
 */

typedef struct llmc_writer {
    tlmi_file_writer *file;
    int32_t version;
} llmc_writer;

/* Writes `count` values (zeros when `values` is NULL) in the file's
 * element type, little-endian, converted chunk by chunk. */
static int emit(llmc_writer *w, const float *values, size_t count) {
    unsigned char chunk[CHUNK * 4];
    for (size_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? count - done : CHUNK;
        if (w->version == TLMI_LLMC_VERSION_F32) {
            for (size_t i = 0; i < n; i++) {
                uint32_t bits = 0;
                if (values != NULL)
                    memcpy(&bits, &values[done + i], sizeof bits);
                tlmi_put_u32(chunk + 4 * i, bits);
            }
            TLMI_TRY(tlmi_file_writer_write(w->file, chunk, 4 * n));
        } else {
            for (size_t i = 0; i < n; i++)
                tlmi_put_u16(chunk + 2 * i,
                             values != NULL ? tlmi_float_to_bf16(values[done + i])
                                            : 0);
            TLMI_TRY(tlmi_file_writer_write(w->file, chunk, 2 * n));
        }
        done += n;
    }
    return TLM_OK;
}

static const float *values_of(const tlm_tensor *t) { return t->data; }

/* Every layer's copy of one tensor, `pick` choosing it in the layer. */
static int emit_layers(llmc_writer *w, const tlm_model *m, int tensor) {
    const int32_t L = m->config.n_decoder_layers;
    for (int32_t l = 0; l < L; l++) {
        const tlmi_layer_params *p = &m->decoder[l];
        const tlm_tensor *parts[3] = {NULL, NULL, NULL};
        switch (tensor) {
        case LN1W: parts[0] = p->self_attn_norm.weight; break;
        case LN1B: parts[0] = p->self_attn_norm.bias; break;
        case QKVW:
            parts[0] = p->self_attn.q_weight;
            parts[1] = p->self_attn.k_weight;
            parts[2] = p->self_attn.v_weight;
            break;
        case QKVB:
            parts[0] = p->self_attn.q_bias;
            parts[1] = p->self_attn.k_bias;
            parts[2] = p->self_attn.v_bias;
            break;
        case ATTPROJW: parts[0] = p->self_attn.o_weight; break;
        case ATTPROJB: parts[0] = p->self_attn.o_bias; break;
        case LN2W: parts[0] = p->ffn_norm.weight; break;
        case LN2B: parts[0] = p->ffn_norm.bias; break;
        case FCW: parts[0] = p->ffn.up_weight; break;
        case FCB: parts[0] = p->ffn.up_bias; break;
        case FCPROJW: parts[0] = p->ffn.down_weight; break;
        default: parts[0] = p->ffn.down_bias; break;
        }
        for (int k = 0; k < 3 && parts[k] != NULL; k++)
            TLMI_TRY(emit(w, values_of(parts[k]), (size_t)parts[k]->numel));
    }
    return TLM_OK;
}

int tlmi_llmc_export(const tlm_model *model, const char *path,
                     int32_t weight_type) {
    tlmi_host *host = &model->ctx->host;
    const tlm_model_config *c = &model->config;
    TLMI_TRY(tlmi_gpt2_check_expressible(host, "the model", c,
                                         TLMI_GPT2_LLMC));
    /* llm.c pads the vocabulary to a multiple of 128. */
    const int64_t Vp = ((int64_t)c->vocab_size + 127) / 128 * 128;
    if (Vp > INT32_MAX)
        return tlmi_fail(host, TLM_E_UNSUPPORTED,
                         "the model: vocab_size %d padded to %lld does not "
                         "fit llm.c's int32 header",
                         (int)c->vocab_size, (long long)Vp);
    llmc_writer w = {NULL, weight_type == TLM_WEIGHT_BF16
                               ? TLMI_LLMC_VERSION_BF16
                               : TLMI_LLMC_VERSION_F32};
    unsigned char header[TLMI_LLMC_HEADER_BYTES];
    memset(header, 0, sizeof header);
    const int32_t fields[8] = {TLMI_LLMC_MAGIC, w.version, c->max_context,
                               c->vocab_size, c->n_decoder_layers,
                               c->n_heads, c->d_model, (int32_t)Vp};
    for (int i = 0; i < 8; i++)
        tlmi_put_u32(header + 4 * i, (uint32_t)fields[i]);
    TLMI_TRY(tlmi_file_writer_open(host, path, &w.file));
    int status = tlmi_file_writer_write(w.file, header, sizeof header);
    if (status == TLM_OK)
        status = emit(&w, values_of(model->token_embedding),
                      (size_t)model->token_embedding->numel);
    if (status == TLM_OK) /* the padding rows */
        status = emit(&w, NULL, (size_t)(Vp - c->vocab_size) *
                                    (size_t)c->d_model);
    if (status == TLM_OK)
        status = emit(&w, values_of(model->position_embedding),
                      (size_t)model->position_embedding->numel);
    for (int t = LN1W; t <= FCPROJB && status == TLM_OK; t++)
        status = emit_layers(&w, model, t);
    if (status == TLM_OK)
        status = emit(&w, values_of(model->decoder_final_norm.weight),
                      (size_t)c->d_model);
    if (status == TLM_OK)
        status = emit(&w, values_of(model->decoder_final_norm.bias),
                      (size_t)c->d_model);
    if (status != TLM_OK) {
        tlmi_file_writer_abort(w.file);
        return status;
    }
    return tlmi_file_writer_commit(w.file);
}
