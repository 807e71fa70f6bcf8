/*
 * llama2.c checkpoints (karpathy/llama2.c: run.c's read_checkpoint and
 * memory_map_weights, export.py's legacy_export and version1_export), read
 * into tlm's parameters and written from them. docs/formats-import.md
 * lists what is accepted.
 *
 * Legacy layout (what run.c reads): 7 little-endian int32
 *   dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len
 * (vocab_size < 0: the classifier is not shared with the embedding), then
 * float32 tensors back to back, each holding every layer's copy, linear
 * weights [out, in] as nn.Linear (and tlm) store them; hd = dim / n_heads,
 * K = n_kv_heads * hd:
 *
 *   emb [V, dim]  rms_att [L, dim]  wq [L, dim, dim]  wk [L, K, dim]
 *   wv [L, K, dim]  wo [L, dim, dim]  rms_ffn [L, dim]  w1 [L, F, dim]
 *   w2 [L, dim, F]  w3 [L, F, dim]  rms_final [dim]
 *   freq_cos [seq_len, hd/2]  freq_sin [seq_len, hd/2]  (unused by run.c)
 *   wcls [V, dim]  (unshared only)
 *
 * Version 1 ("ak42"): a 256-byte header (uint32 0x616b3432, int32 version
 * 1, the 7 int32 with a positive vocab_size, uint8 shared_classifier, zero
 * padding), then rms_att, rms_ffn, rms_final, emb, wq, wk, wv, wo, w1, w2,
 * w3 and, unshared only, wcls; no freq_cis tables.
 *
 * Version 2 (export.py version2_export, read by runq.c): the same header
 * with int32 group_size at byte 37 (unaligned), then in float32 rms_att,
 * rms_ffn, rms_final, then each matrix quantized to Q8_0 on its own, one
 * layer's copy at a time: emb, wq[0..L), wk, wv, wo, w1, w2, w3 and,
 * unshared only, wcls; each as int8 q [numel] followed by float32
 * scale [numel / group_size], weight i = q[i] * scale[i / group_size]
 * over the flattened [out, in] matrix (groups may straddle rows). With
 * group_size a multiple of 32 and every matrix width a multiple of 32,
 * the model is built in int8 directly and exactly (a group of 64 is two of
 * tlm's groups of 32 with the same scale); otherwise the weights are
 * dequantized exactly to float32 and quantized again by tlm_model_quantize
 * (logged at TLM_LOG_INFO).
 *
 * w1 is SwiGLU's gate, w3 its up projection and w2 the down projection.
 * run.c rotates interleaved pairs (2i, 2i+1) of each head, as tlm does, so
 * q and k are copied unchanged.
 */
#define _POSIX_C_SOURCE 200809L /* stat, fseeko, ftello */
#define _FILE_OFFSET_BITS 64     /* files past 2 GiB on 32-bit hosts */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "autodiff/context.h"
#include "autodiff/tensor.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "formats.h"
#include "kernels/weights.h"
#include "model.h"

enum l2c_tensor {
    EMB, RMS_ATT, WQ, WK, WV, WO, RMS_FFN, W1, W2, W3, RMS_FINAL,
    FREQ_COS, FREQ_SIN, WCLS, N_TENSORS
};

/* The order of the tensors in each layout (N_TENSORS ends a list). */
static const int legacy_order[N_TENSORS] = {
    EMB, RMS_ATT, WQ, WK, WV, WO, RMS_FFN, W1, W2, W3, RMS_FINAL,
    FREQ_COS, FREQ_SIN, WCLS};
static const int v1_order[N_TENSORS] = {
    RMS_ATT, RMS_FFN, RMS_FINAL, EMB, WQ, WK, WV, WO, W1, W2, W3, WCLS,
    N_TENSORS, N_TENSORS};

/* Values converted per read (a bounded buffer on the stack). */
#define CHUNK 4096

typedef struct l2c_reader {
    tlmi_host *host;
    const char *what;
    const unsigned char *buffer; /* buffer mode */
    FILE *file;                  /* file mode */
    uint64_t size;
    tlmi_llama2c_header h;
    uint64_t start[N_TENSORS]; /* first element of each tensor (version 2:
                                  matrices' byte offset in the file); */
    uint64_t count[N_TENSORS]; /* its element count (0: absent) */
    int direct_int8;           /* version 2: matrices returned in tlm's int8
                                  layout (lib/kernels/weights.h) */
    float *scratch;
    size_t scratch_count;      /* in floats */
    unsigned char *raw;        /* version 2 from a file: one matrix's q and
                                  scales as read */
    size_t raw_bytes;
} l2c_reader;

/* Element counts of the tensors for header `h` (all within 2^58, see the
 * ranges in tlmi_llama2c_parse_header). */
static void tensor_sizes(const tlmi_llama2c_header *h,
                         uint64_t sizes[N_TENSORS]) {
    const uint64_t D = (uint64_t)h->dim, F = (uint64_t)h->hidden_dim;
    const uint64_t L = (uint64_t)h->n_layers, V = (uint64_t)h->vocab_size;
    const uint64_t hd = D / (uint64_t)h->n_heads;
    const uint64_t K = (uint64_t)h->n_kv_heads * hd;
    sizes[EMB] = V * D;
    sizes[RMS_ATT] = sizes[RMS_FFN] = L * D;
    sizes[WQ] = sizes[WO] = L * D * D;
    sizes[WK] = sizes[WV] = L * K * D;
    sizes[W1] = sizes[W2] = sizes[W3] = L * F * D;
    sizes[RMS_FINAL] = D;
    sizes[FREQ_COS] = sizes[FREQ_SIN] =
        h->version == 0 ? (uint64_t)h->seq_len * (hd / 2) : 0;
    sizes[WCLS] = h->shared ? 0 : V * D;
}

/* Version 2 keeps the norms in float32 and quantizes the rest. */
static int is_norm(int tensor) {
    return tensor == RMS_ATT || tensor == RMS_FFN || tensor == RMS_FINAL;
}

/* Copies of a tensor in the file: one per layer, or one. */
static uint64_t copies(const tlmi_llama2c_header *h, int tensor) {
    return tensor == EMB || tensor == WCLS || tensor == RMS_FINAL
               ? 1
               : (uint64_t)h->n_layers;
}

/* Bytes of one copy of a version 2 matrix of `count` weights: int8 values
 * then one float32 scale per group. */
static uint64_t q80_bytes(const tlmi_llama2c_header *h, uint64_t count) {
    return count + 4 * (count / (uint64_t)h->group_size);
}

uint64_t tlmi_llama2c_expected_size(const tlmi_llama2c_header *h) {
    uint64_t sizes[N_TENSORS], total = 0;
    tensor_sizes(h, sizes);
    if (h->version == 2) {
        for (int i = 0; i < N_TENSORS; i++)
            total += is_norm(i) ? 4 * sizes[i]
                                : copies(h, i) *
                                      q80_bytes(h, sizes[i] / copies(h, i));
        return h->header_bytes + total;
    }
    for (int i = 0; i < N_TENSORS; i++)
        total += sizes[i];
    return h->header_bytes + 4 * total;
}

static const char *const l2c_names[N_TENSORS] = {
    "tok_embeddings", "attention_norm", "wq", "wk", "wv", "wo", "ffn_norm",
    "w1", "w2", "w3", "norm", "freq_cis_real", "freq_cis_imag", "output"};

/* Version 2: group_size must divide every quantized copy. */
static int check_group_size(tlmi_host *host, const char *what,
                            const tlmi_llama2c_header *h) {
    uint64_t sizes[N_TENSORS];
    tensor_sizes(h, sizes);
    for (int i = 0; i < N_TENSORS; i++) {
        if (is_norm(i) || sizes[i] == 0)
            continue;
        const uint64_t each = sizes[i] / copies(h, i);
        if (each % (uint64_t)h->group_size != 0)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': group_size %lld does "
                             "not divide the %llu weights of %s",
                             what, (long long)h->group_size,
                             (unsigned long long)each, l2c_names[i]);
    }
    return TLM_OK;
}

static int32_t field_at(const unsigned char *bytes, int index) {
    return (int32_t)tlmi_get_u32(bytes + 4 * index);
}

int tlmi_llama2c_parse_header(tlmi_host *host, const char *what,
                              const unsigned char *head, size_t got,
                              uint64_t file_size, tlmi_llama2c_header *h) {
    memset(h, 0, sizeof *h);
    const unsigned char *fields = head;
    if (got >= 4 && tlmi_get_u32(head) == TLMI_LLAMA2C_MAGIC) {
        if (got < TLMI_LLAMA2C_V1_HEADER_BYTES)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': %llu bytes, shorter "
                             "than the %d-byte header of the \"ak42\" format",
                             what, (unsigned long long)file_size,
                             TLMI_LLAMA2C_V1_HEADER_BYTES);
        const int32_t version = field_at(head, 1);
        if (version != 1 && version != 2)
            return tlmi_fail(host, TLM_E_UNSUPPORTED,
                             "llama2.c checkpoint '%s': version %d; tlm reads "
                             "version 1 (float32), version 2 (int8 Q8_0) and "
                             "the legacy format",
                             what, (int)version);
        h->version = version;
        h->header_bytes = TLMI_LLAMA2C_V1_HEADER_BYTES;
        fields = head + 8;
        const unsigned char flag = head[36];
        if (flag > 1)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': shared_classifier (byte "
                             "36) is %u, not 0 or 1",
                             what, (unsigned)flag);
        h->shared = flag;
        if (version == 2) {
            /* export.py packs it right after the flag: byte 37. */
            const int32_t group_size = (int32_t)tlmi_get_u32(head + 37);
            if (group_size < 1 || group_size > (1 << 20))
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "llama2.c checkpoint '%s': version 2 header "
                                 "field group_size (byte 37) is %d, outside "
                                 "1..1048576",
                                 what, (int)group_size);
            h->group_size = group_size;
        }
    } else {
        if (got < TLMI_LLAMA2C_LEGACY_HEADER_BYTES)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': %llu bytes, shorter "
                             "than the 28-byte header",
                             what, (unsigned long long)file_size);
        h->version = 0;
        h->header_bytes = TLMI_LLAMA2C_LEGACY_HEADER_BYTES;
    }
    static const struct {
        const char *name;
        int64_t min, max;
    } ranges[7] = {
        {"dim", 1, 1 << 20},       {"hidden_dim", 1, 1 << 24},
        {"n_layers", 1, 4096},     {"n_heads", 1, 65536},
        {"n_kv_heads", 1, 65536},  {"vocab_size", 1, INT32_MAX},
        {"seq_len", 1, 1 << 24},
    };
    int64_t v[7];
    for (int i = 0; i < 7; i++) {
        v[i] = field_at(fields, i);
        int64_t value = v[i];
        if (i == 5 && h->version == 0 && value < 0)
            value = -value; /* the unshared flag; INT32_MIN stays out of range */
        if (value < ranges[i].min || value > ranges[i].max)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': header field %s is "
                             "%lld, outside %lld..%lld",
                             what, ranges[i].name, (long long)v[i],
                             (long long)ranges[i].min,
                             (long long)ranges[i].max);
        v[i] = value;
    }
    if (h->version == 0)
        h->shared = field_at(fields, 5) > 0;
    h->dim = v[0];
    h->hidden_dim = v[1];
    h->n_layers = v[2];
    h->n_heads = v[3];
    h->n_kv_heads = v[4];
    h->vocab_size = v[5];
    h->seq_len = v[6];
    if (h->dim % h->n_heads != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "llama2.c checkpoint '%s': dim %lld is not a multiple "
                         "of n_heads %lld",
                         what, (long long)h->dim, (long long)h->n_heads);
    if (h->n_kv_heads > h->n_heads || h->n_heads % h->n_kv_heads != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "llama2.c checkpoint '%s': n_kv_heads %lld does not "
                         "divide n_heads %lld",
                         what, (long long)h->n_kv_heads, (long long)h->n_heads);
    if ((h->dim / h->n_heads) % 2 != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "llama2.c checkpoint '%s': the head size dim / "
                         "n_heads = %lld is odd; rotary positions rotate "
                         "pairs",
                         what, (long long)(h->dim / h->n_heads));
    if (h->version == 2)
        TLMI_TRY(check_group_size(host, what, h));
    const uint64_t expected = tlmi_llama2c_expected_size(h);
    h->expected_size = expected;
    if (file_size != expected)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "llama2.c checkpoint '%s': %llu bytes, but its header "
                         "(%s, dim %lld, hidden_dim %lld, n_layers %lld, "
                         "n_heads %lld, n_kv_heads %lld, vocab_size %lld %s, "
                         "seq_len %lld) needs exactly %llu: the file is %s",
                         what, (unsigned long long)file_size,
                         h->version == 0   ? "legacy"
                         : h->version == 1 ? "version 1"
                                           : "version 2",
                         (long long)h->dim, (long long)h->hidden_dim,
                         (long long)h->n_layers, (long long)h->n_heads,
                         (long long)h->n_kv_heads, (long long)h->vocab_size,
                         h->shared ? "shared" : "unshared",
                         (long long)h->seq_len, (unsigned long long)expected,
                         file_size < expected ? "truncated" : "too long");
    return TLM_OK;
}

/* Reads `count` float32 values from element `first` of the tensor area. */
static int read_values(l2c_reader *r, uint64_t first, size_t count,
                       float *dst) {
    const uint64_t offset = r->h.header_bytes + 4 * first;
    unsigned char chunk[CHUNK * 4];
    if (r->file != NULL && fseeko(r->file, (off_t)offset, SEEK_SET) != 0)
        return tlmi_fail(r->host, TLM_E_IO,
                         "llama2.c checkpoint '%s': cannot seek to byte %llu: "
                         "%s",
                         r->what, (unsigned long long)offset, strerror(errno));
    for (size_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? count - done : CHUNK;
        const unsigned char *bytes = chunk;
        if (r->file != NULL) {
            if (fread(chunk, 4, n, r->file) != n)
                return tlmi_fail(r->host, TLM_E_IO,
                                 "llama2.c checkpoint '%s': reading %zu bytes "
                                 "at byte %llu failed (%s)",
                                 r->what, 4 * n,
                                 (unsigned long long)(offset + 4 * done),
                                 ferror(r->file) ? strerror(errno)
                                                 : "the file got shorter");
        } else {
            bytes = r->buffer + offset + 4 * done;
        }
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = tlmi_get_u32(bytes + 4 * i);
            memcpy(&dst[done + i], &bits, sizeof bits);
        }
        done += n;
    }
    return TLM_OK;
}

/* Which llama2.c tensor and which layer's copy (0 for single tensors)
 * hold tlm's parameter `name` ([count] elements). */
static int locate(l2c_reader *r, const char *name, size_t count,
                  int *which, uint64_t *copy) {
    int layer = -1, used = 0;
    int tensor = -1;
    if (strcmp(name, "token_embedding.weight") == 0)
        tensor = EMB;
    else if (strcmp(name, "decoder.final_norm.weight") == 0)
        tensor = RMS_FINAL;
    else if (strcmp(name, "lm_head.weight") == 0)
        tensor = WCLS;
    if (tensor >= 0 && r->count[tensor] == count) {
        *which = tensor;
        *copy = 0;
        return TLM_OK;
    }
    if (sscanf(name, "decoder.layers.%d.%n", &layer, &used) == 1 && used > 0 &&
        layer >= 0 && layer < r->h.n_layers) {
        static const struct {
            const char *tlm;
            int tensor;
        } table[] = {
            {"self_attn_norm.weight", RMS_ATT},
            {"self_attn.q_proj.weight", WQ},
            {"self_attn.k_proj.weight", WK},
            {"self_attn.v_proj.weight", WV},
            {"self_attn.o_proj.weight", WO},
            {"ffn_norm.weight", RMS_FFN},
            {"ffn.gate_proj.weight", W1},
            {"ffn.down_proj.weight", W2},
            {"ffn.up_proj.weight", W3},
        };
        for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
            if (strcmp(name + used, table[i].tlm) != 0)
                continue;
            const uint64_t per_layer =
                r->count[table[i].tensor] / (uint64_t)r->h.n_layers;
            if (per_layer != count)
                break;
            *which = table[i].tensor;
            *copy = (uint64_t)layer;
            return TLM_OK;
        }
    }
    return tlmi_fail(r->host, TLM_E_INTERNAL,
                     "llama2.c checkpoint '%s': no llama2.c tensor for tlm's "
                     "'%s' [%zu]",
                     r->what, name, count);
}

/* Makes the float scratch hold at least `count` floats. */
static int reserve_scratch(l2c_reader *r, const char *name, size_t count) {
    if (count <= r->scratch_count)
        return TLM_OK;
    if (r->scratch != NULL)
        tlmi_host_free(r->host, r->scratch, r->scratch_count * sizeof(float));
    r->scratch_count = 0;
    r->scratch = tlmi_host_alloc(r->host, count * sizeof(float), 64);
    if (r->scratch == NULL)
        return tlmi_fail(r->host, TLM_E_NOMEM,
                         "llama2.c checkpoint '%s': out of memory reading "
                         "'%s'",
                         r->what, name);
    r->scratch_count = count;
    return TLM_OK;
}

/* `size` bytes at byte `offset` of the file: in place in buffer mode,
 * else read into r->raw. */
static int read_bytes(l2c_reader *r, const char *name, uint64_t offset,
                      size_t size, const unsigned char **bytes) {
    if (r->file == NULL) {
        *bytes = r->buffer + offset;
        return TLM_OK;
    }
    if (size > r->raw_bytes) {
        if (r->raw != NULL)
            tlmi_host_free(r->host, r->raw, r->raw_bytes);
        r->raw_bytes = 0;
        r->raw = tlmi_host_alloc(r->host, size, 64);
        if (r->raw == NULL)
            return tlmi_fail(r->host, TLM_E_NOMEM,
                             "llama2.c checkpoint '%s': out of memory reading "
                             "'%s'",
                             r->what, name);
        r->raw_bytes = size;
    }
    if (fseeko(r->file, (off_t)offset, SEEK_SET) != 0 ||
        fread(r->raw, 1, size, r->file) != size)
        return tlmi_fail(r->host, TLM_E_IO,
                         "llama2.c checkpoint '%s': reading %zu bytes at byte "
                         "%llu failed (%s)",
                         r->what, size, (unsigned long long)offset,
                         ferror(r->file) ? strerror(errno)
                                         : "the file got shorter");
    *bytes = r->raw;
    return TLM_OK;
}

/* Version 2: copy `copy` of matrix `tensor`, [rows, cols], as the
 * parameter source returns it: tlm's int8 layout (direct) or float32
 * q * scale. Scales must be finite and >= 0 and q never -128 (export.py
 * writes neither); the message names the tensor and the byte offset. */
static int lookup_q80(l2c_reader *r, const char *name, int tensor,
                      uint64_t copy, int64_t rows, int64_t cols,
                      const void **data) {
    const uint64_t count = (uint64_t)rows * (uint64_t)cols;
    const uint64_t gs = (uint64_t)r->h.group_size;
    const uint64_t offset = r->start[tensor] + copy * q80_bytes(&r->h, count);
    const unsigned char *bytes = NULL;
    TLMI_TRY(read_bytes(r, name, offset, (size_t)q80_bytes(&r->h, count),
                        &bytes));
    const signed char *q = (const signed char *)bytes;
    const unsigned char *scale_bytes = bytes + count;
    for (uint64_t g = 0; g < count / gs; g++) {
        const uint32_t bits = tlmi_get_u32(scale_bytes + 4 * g);
        float s;
        memcpy(&s, &bits, sizeof s);
        if (!(s >= 0.0f && s <= 3.4028235e38f))
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': %s (layer copy %llu) "
                             "scale %llu at byte %llu is %g; scales must be "
                             "finite and not negative",
                             r->what, l2c_names[tensor],
                             (unsigned long long)copy, (unsigned long long)g,
                             (unsigned long long)(offset + count + 4 * g),
                             (double)s);
    }
    for (uint64_t i = 0; i < count; i++)
        if (q[i] == -128)
            return tlmi_fail(r->host, TLM_E_FORMAT,
                             "llama2.c checkpoint '%s': %s (layer copy %llu) "
                             "value at byte %llu is -128, outside Q8_0's "
                             "-127..127",
                             r->what, l2c_names[tensor],
                             (unsigned long long)copy,
                             (unsigned long long)(offset + i));
    if (r->direct_int8) {
        /* cols and the group size are multiples of 32 (direct_int8), so
         * each of tlm's groups of 32 lies inside one row and inside one
         * group of the file, whose scale it takes. Layout of
         * lib/kernels/weights.h: q [rows][cols] (no padding), then
         * scale [rows][cols / 32]. */
        const size_t bytes_out =
            tlmi_weights_bytes(TLM_WEIGHTS_INT8, rows, cols);
        TLMI_TRY(reserve_scratch(r, name, (bytes_out + 3) / 4));
        unsigned char *out = (unsigned char *)r->scratch;
        memcpy(out, q, (size_t)count);
        float *scales = (float *)(out + (size_t)count);
        const int64_t groups = cols / TLMI_Q8_GROUP;
        for (int64_t row = 0; row < rows; row++)
            for (int64_t g = 0; g < groups; g++) {
                const uint64_t first =
                    (uint64_t)row * (uint64_t)cols + (uint64_t)g * TLMI_Q8_GROUP;
                const uint32_t bits =
                    tlmi_get_u32(scale_bytes + 4 * (first / gs));
                memcpy(&scales[row * groups + g], &bits, sizeof bits);
            }
        *data = out;
        return TLM_OK;
    }
    TLMI_TRY(reserve_scratch(r, name, (size_t)count));
    for (uint64_t i = 0; i < count; i++) {
        const uint32_t bits = tlmi_get_u32(scale_bytes + 4 * (i / gs));
        float s;
        memcpy(&s, &bits, sizeof s);
        r->scratch[i] = (float)q[i] * s;
    }
    *data = r->scratch;
    return TLM_OK;
}

/* tlmi_parameter_source's lookup: the parameter read into the scratch. */
static int lookup(void *user, const char *name, int32_t ndim,
                  const int64_t *shape, const void **data) {
    l2c_reader *r = user;
    size_t count = (size_t)shape[0] * (size_t)(ndim > 1 ? shape[1] : 1);
    int tensor = -1;
    uint64_t copy = 0;
    TLMI_TRY(locate(r, name, count, &tensor, &copy));
    if (r->h.version == 2 && !is_norm(tensor))
        return lookup_q80(r, name, tensor, copy, shape[0],
                          ndim > 1 ? shape[1] : 1, data);
    TLMI_TRY(reserve_scratch(r, name, count));
    TLMI_TRY(read_values(r, r->start[tensor] + copy * (uint64_t)count, count,
                         r->scratch));
    *data = r->scratch;
    return TLM_OK;
}

void tlmi_llama2c_config(const tlmi_llama2c_header *h,
                         tlm_model_config *config) {
    tlm_model_config_init(config);
    config->vocab_size = (int32_t)h->vocab_size;
    config->d_model = (int32_t)h->dim;
    config->n_heads = (int32_t)h->n_heads;
    config->n_kv_heads = (int32_t)h->n_kv_heads;
    config->head_dim = 0;
    config->d_ff = (int32_t)h->hidden_dim;
    config->n_encoder_layers = 0;
    config->n_decoder_layers = (int32_t)h->n_layers;
    config->max_context = (int32_t)h->seq_len;
    config->position = TLM_POSITION_ROTARY;
    config->norm = TLM_NORM_RMS;
    config->norm_placement = TLM_NORM_PRE;
    config->activation = TLM_ACTIVATION_SWIGLU;
    config->bias = 0;
    config->tied_output = h->shared;
    config->embedding_dropout = 0.0f;
    config->residual_dropout = 0.0f;
    config->norm_eps = 1e-5f; /* run.c's rmsnorm */
    config->rope_base = 10000.0f;
}

static int import(tlm_model **out, tlm_context *ctx, l2c_reader *r,
                  const unsigned char *head, size_t got) {
    TLMI_TRY(tlmi_llama2c_parse_header(r->host, r->what, head, got, r->size,
                                       &r->h));
    uint64_t sizes[N_TENSORS];
    tensor_sizes(&r->h, sizes);
    const int *order = r->h.version == 0 ? legacy_order : v1_order;
    uint64_t total = 0, byte = r->h.header_bytes;
    for (int i = 0; i < N_TENSORS && order[i] != N_TENSORS; i++) {
        const int t = order[i];
        r->count[t] = sizes[t];
        if (r->h.version == 2 && !is_norm(t)) {
            /* Matrices: byte offsets, after every norm (v1_order lists the
             * norms first). */
            r->start[t] = byte;
            byte += copies(&r->h, t) * q80_bytes(&r->h, sizes[t] / copies(&r->h, t));
            continue;
        }
        r->start[t] = total;
        total += sizes[t];
        byte += 4 * sizes[t];
    }
    tlm_model_config config;
    tlmi_llama2c_config(&r->h, &config);
    /* Direct int8 when every group of 32 of a row lies in one Q8_0 group:
     * the group size a multiple of 32, every width (dim, hidden_dim) too. */
    r->direct_int8 = r->h.version == 2 && r->h.group_size % TLMI_Q8_GROUP == 0 &&
                     r->h.dim % TLMI_Q8_GROUP == 0 &&
                     r->h.hidden_dim % TLMI_Q8_GROUP == 0;
    tlmi_parameter_source source = {lookup, r, 1, NULL, TLM_WEIGHTS_F32};
    if (r->direct_int8)
        source.weights = TLM_WEIGHTS_INT8;
    char what[320];
    snprintf(what, sizeof what, "llama2.c checkpoint '%.280s'", r->what);
    tlm_model *built = NULL;
    int status = tlmi_import_build_status(
        r->host, tlmi_model_build(&built, ctx, &config, &source), what);
    if (r->scratch != NULL)
        tlmi_host_free(r->host, r->scratch, r->scratch_count * sizeof(float));
    if (r->raw != NULL)
        tlmi_host_free(r->host, r->raw, r->raw_bytes);
    r->scratch = NULL;
    r->raw = NULL;
    if (status == TLM_OK && r->h.version == 2 && !r->direct_int8) {
        tlmi_host_log(r->host, TLM_LOG_INFO,
                      "%s: Q8_0 group size %lld, dim %lld, hidden_dim %lld: "
                      "not groups of 32 tlm can take over as they are; "
                      "dequantized exactly to float32, then quantized again "
                      "to int8 (groups of 32)",
                      what, (long long)r->h.group_size, (long long)r->h.dim,
                      (long long)r->h.hidden_dim);
        tlm_model *quantized = NULL;
        status = tlm_model_quantize(&quantized, built, TLM_WEIGHTS_INT8);
        if (status != TLM_OK)
            status = tlmi_fail_forward(r->host, status, "%s", what);
        tlm_model_free(built);
        built = quantized;
    }
    *out = built;
    return status;
}

int tlmi_llama2c_import_buffer(tlm_model **out, tlm_context *ctx,
                               const char *what, const void *data,
                               size_t size) {
    l2c_reader r;
    memset(&r, 0, sizeof r);
    r.host = &ctx->host;
    r.what = what != NULL ? what : "(buffer)";
    r.buffer = data;
    r.size = size;
    if (data == NULL && size > 0)
        return tlmi_fail(r.host, TLM_E_INVALID,
                         "llama2.c import: data is NULL");
    return import(out, ctx, &r, data, size);
}

int tlmi_llama2c_import_file(tlm_model **out, tlm_context *ctx,
                             const char *path) {
    l2c_reader r;
    memset(&r, 0, sizeof r);
    r.host = &ctx->host;
    r.what = path;
    /* Checked before opening: fopen would wait forever on a FIFO. */
    struct stat info;
    if (stat(path, &info) != 0)
        return tlmi_fail(r.host, TLM_E_IO, "cannot open '%s': %s", path,
                         strerror(errno));
    if (!S_ISREG(info.st_mode))
        return tlmi_fail(r.host, TLM_E_IO,
                         "llama2.c checkpoint '%s' is not a regular file%s",
                         path, S_ISDIR(info.st_mode) ? " (a directory)" : "");
    r.file = fopen(path, "rb");
    if (r.file == NULL)
        return tlmi_fail(r.host, TLM_E_IO, "cannot open '%s': %s", path,
                         strerror(errno));
    unsigned char head[TLMI_LLAMA2C_V1_HEADER_BYTES];
    size_t got = fread(head, 1, sizeof head, r.file);
    int status = TLM_OK;
    if (fseeko(r.file, 0, SEEK_END) != 0 || ftello(r.file) < 0) {
        status = tlmi_fail(r.host, TLM_E_IO, "cannot size '%s': %s", path,
                           strerror(errno));
    } else {
        r.size = (uint64_t)ftello(r.file);
        status = import(out, ctx, &r, head, got);
    }
    fclose(r.file);
    return status;
}

/* ------------------------------------------------------------------------
 * Export
 */

int tlmi_llama2c_check_expressible(tlmi_host *host, const char *who,
                                   const tlm_model_config *c) {
    const char *why = NULL, *field = NULL;
    if (c->n_encoder_layers != 0)
        field = "n_encoder_layers", why = "is not 0; llama2.c has no encoder";
    else if (c->n_decoder_layers < 1)
        field = "n_decoder_layers", why = "is 0; llama2.c needs a layer";
    else if (c->position != TLM_POSITION_ROTARY)
        field = "position", why = "is not rotary; llama2.c has rotary "
                                  "positions only";
    else if (c->norm != TLM_NORM_RMS)
        field = "norm", why = "is not RMSNorm; llama2.c has RMSNorm only";
    else if (c->norm_placement != TLM_NORM_PRE)
        field = "norm_placement", why = "is not pre; llama2.c is pre-norm";
    else if (c->activation != TLM_ACTIVATION_SWIGLU)
        field = "activation", why = "is not SwiGLU; llama2.c has SwiGLU only";
    else if (c->bias != 0)
        field = "bias", why = "is 1; llama2.c has no biases";
    else if (c->head_dim != 0 &&
             (int64_t)c->head_dim * c->n_heads != c->d_model)
        field = "head_dim",
        why = "x n_heads is not d_model; llama2.c's head size is dim / "
              "n_heads";
    else if (c->norm_eps != 1e-5f)
        field = "norm_eps", why = "is not 1e-5, which run.c fixes";
    else if (c->rope_base != 10000.0f)
        field = "rope_base", why = "is not 10000, which run.c fixes";
    if (field != NULL)
        return tlmi_fail(host, TLM_E_UNSUPPORTED, "%s: %s %s", who, field,
                         why);
    return TLM_OK;
}

typedef struct l2c_writer {
    tlmi_file_writer *file;
} l2c_writer;

/* Writes `count` float32 values little-endian, chunk by chunk. */
static int emit(l2c_writer *w, const float *values, size_t count) {
    unsigned char chunk[CHUNK * 4];
    for (size_t done = 0; done < count;) {
        size_t n = count - done < CHUNK ? count - done : CHUNK;
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = 0;
            memcpy(&bits, &values[done + i], sizeof bits);
            tlmi_put_u32(chunk + 4 * i, bits);
        }
        TLMI_TRY(tlmi_file_writer_write(w->file, chunk, 4 * n));
        done += n;
    }
    return TLM_OK;
}

static int emit_tensor(l2c_writer *w, const tlm_tensor *t) {
    return emit(w, t->data, (size_t)t->numel);
}

/* Every layer's copy of one tensor. */
static int emit_layers(l2c_writer *w, const tlm_model *m, int tensor) {
    for (int32_t l = 0; l < m->config.n_decoder_layers; l++) {
        const tlmi_layer_params *p = &m->decoder[l];
        const tlm_tensor *t = NULL;
        switch (tensor) {
        case RMS_ATT: t = p->self_attn_norm.weight; break;
        case WQ: t = p->self_attn.q_weight; break;
        case WK: t = p->self_attn.k_weight; break;
        case WV: t = p->self_attn.v_weight; break;
        case WO: t = p->self_attn.o_weight; break;
        case RMS_FFN: t = p->ffn_norm.weight; break;
        case W1: t = p->ffn.gate_weight; break;
        case W2: t = p->ffn.down_weight; break;
        default: t = p->ffn.up_weight; break;
        }
        TLMI_TRY(emit_tensor(w, t));
    }
    return TLM_OK;
}

/* export.py's freqs_cos / freqs_sin [seq_len, hd/2], row by row:
 * cos and sin of t * 10000^(-2i/hd), computed in float32 as
 * precompute_freqs_cis does. run.c skips them; they are written so that
 * the file is the one legacy_export makes. */
static int emit_freq(l2c_writer *w, int32_t seq_len, int32_t hd, int sine) {
    float row[CHUNK];
    const int32_t half = hd / 2;
    for (int32_t t = 0; t < seq_len; t++) {
        for (int32_t start = 0; start < half; start += CHUNK) {
            int32_t n = half - start < CHUNK ? half - start : CHUNK;
            for (int32_t i = 0; i < n; i++) {
                /* Each float32 step rounded once, as torch's are. */
                const float exponent = (float)(2 * (start + i)) / (float)hd;
                const float base = (float)pow(10000.0, (double)exponent);
                const float angle = (float)t * (1.0f / base);
                row[i] = (float)(sine ? sin((double)angle) : cos((double)angle));
            }
            TLMI_TRY(emit(w, row, (size_t)n));
        }
    }
    return TLM_OK;
}

int tlmi_llama2c_export(const tlm_model *model, const char *path) {
    tlmi_host *host = &model->ctx->host;
    const tlm_model_config *c = &model->config;
    TLMI_TRY(tlmi_llama2c_check_expressible(host, "the model", c));
    const int32_t hd = c->d_model / c->n_heads;
    const int32_t fields[7] = {c->d_model,
                               c->d_ff,
                               c->n_decoder_layers,
                               c->n_heads,
                               tlmi_config_kv_heads(c),
                               c->tied_output ? c->vocab_size
                                              : -c->vocab_size,
                               c->max_context};
    unsigned char header[TLMI_LLAMA2C_LEGACY_HEADER_BYTES];
    for (int i = 0; i < 7; i++)
        tlmi_put_u32(header + 4 * i, (uint32_t)fields[i]);
    l2c_writer w = {NULL};
    TLMI_TRY(tlmi_file_writer_open(host, path, &w.file));
    int status = tlmi_file_writer_write(w.file, header, sizeof header);
    if (status == TLM_OK)
        status = emit_tensor(&w, model->token_embedding);
    for (int t = RMS_ATT; t <= W3 && status == TLM_OK; t++)
        status = emit_layers(&w, model, t);
    if (status == TLM_OK)
        status = emit_tensor(&w, model->decoder_final_norm.weight);
    if (status == TLM_OK)
        status = emit_freq(&w, c->max_context, hd, 0);
    if (status == TLM_OK)
        status = emit_freq(&w, c->max_context, hd, 1);
    if (status == TLM_OK && !c->tied_output)
        status = emit_tensor(&w, model->lm_head);
    if (status != TLM_OK) {
        tlmi_file_writer_abort(w.file);
        return status;
    }
    return tlmi_file_writer_commit(w.file);
}
