/*
 * The optimizer's state as bytes: a small versioned little-endian layout
 * (docs/optimizers.md, "State format") that a checkpoint embeds. Loading
 * checks the whole buffer before it changes anything.
 *
 *   offset  size  field
 *        0     8  magic "TLMOPTIM"
 *        8     4  u32 version (1)
 *       12     4  u32 kind (tlm_optimizer_kind)
 *       16     4  u32 count: number of parameters
 *       20     4  u32 nesterov
 *       24     8  u64 step: steps taken
 *       32    24  f32 lr, beta1, beta2, eps, weight_decay, momentum
 *       56  48*count  per parameter: u32 ndim, u32 decay, u64 numel,
 *                 u64 shape[4] (unused dimensions 0)
 *        .  4*floats  the moments, parameter by parameter: AdamW m then v,
 *                 SGD the momentum buffer (numel f32 each)
 *   size-4     4  u32 CRC-32 (zlib's) of every byte before it
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "base/crc32.h"
#include "base/endian.h"
#include "base/error.h"
#include "optim.h"

#define STATE_MAGIC "TLMOPTIM"
#define STATE_VERSION 1u
#define HEADER_BYTES 56u
#define ENTRY_BYTES 48u
#define CRC_BYTES 4u

size_t tlmi_optim_saved_bytes(int32_t count, size_t state_floats) {
    const size_t fixed = HEADER_BYTES + CRC_BYTES;
    if (count < 0 || (size_t)count > (SIZE_MAX - fixed) / ENTRY_BYTES)
        return 0;
    const size_t known = fixed + (size_t)count * ENTRY_BYTES;
    if (state_floats > (SIZE_MAX - known) / 4)
        return 0;
    return known + state_floats * 4;
}

/* ---------------------------------------------------------------------- */
/* Little-endian fields, whatever the host's byte order. */

static void put_f32(unsigned char *at, float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    tlmi_put_u32(at, bits);
}

static float get_f32(const unsigned char *at) {
    uint32_t bits = tlmi_get_u32(at);
    float x;
    memcpy(&x, &bits, sizeof x);
    return x;
}

/* ---------------------------------------------------------------------- */

static unsigned char *write_head(const tlm_optimizer *opt, unsigned char *out);

TLM_API int tlm_optimizer_state_size(const tlm_optimizer *opt, size_t *size) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_state_size", opt);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_state_size", size);
    *size = opt->saved_bytes;
    return TLM_OK;
}

TLM_API int tlm_optimizer_save_state(const tlm_optimizer *opt, void *buffer,
                                     size_t size) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_save_state", opt);
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_save_state", buffer);
    if (size < opt->saved_bytes)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_optimizer_save_state: size %zu is smaller "
                                "than the %zu bytes of the state "
                                "(tlm_optimizer_state_size)",
                                size, opt->saved_bytes);
    unsigned char *at = write_head(opt, buffer);
    /* The slices of `state` are in parameter order, m before v. */
    for (size_t i = 0; i < opt->state_floats; i++, at += 4)
        put_f32(at, opt->state[i]);
    tlmi_put_u32(at, tlmi_crc32(0, buffer, opt->saved_bytes - CRC_BYTES));
    return TLM_OK;
}

int tlmi_optimizer_state_pieces(const tlm_optimizer *opt, tlmi_host *host,
                                unsigned char **head, size_t *head_size,
                                const float **moments, size_t *moment_bytes,
                                unsigned char crc[4]) {
    *head = NULL;
    *head_size = 0;
    if (!tlmi_host_is_little_endian())
        return TLM_E_UNSUPPORTED;
    const size_t size = HEADER_BYTES + (size_t)opt->count * ENTRY_BYTES;
    unsigned char *bytes = tlmi_host_alloc(host, size, 64);
    if (bytes == NULL)
        return tlmi_fail(host, TLM_E_NOMEM,
                         "tlm_trainer_save: out of memory");
    write_head(opt, bytes);
    *head = bytes;
    *head_size = size;
    *moments = opt->state;
    *moment_bytes = opt->state_floats * sizeof(float);
    uint32_t sum = tlmi_crc32(0, bytes, size);
    sum = tlmi_crc32(sum, opt->state, *moment_bytes);
    tlmi_put_u32(crc, sum);
    return TLM_OK;
}

/* Writes the header and the parameter entries at `out`; returns where the
 * moments go. */
static unsigned char *write_head(const tlm_optimizer *opt, unsigned char *out) {
    const tlm_optimizer_params *p = &opt->params;
    memcpy(out, STATE_MAGIC, 8);
    tlmi_put_u32(out + 8, STATE_VERSION);
    tlmi_put_u32(out + 12, (uint32_t)p->kind);
    tlmi_put_u32(out + 16, (uint32_t)opt->count);
    tlmi_put_u32(out + 20, (uint32_t)p->nesterov);
    tlmi_put_u64(out + 24, (uint64_t)opt->step);
    put_f32(out + 32, p->lr);
    put_f32(out + 36, p->beta1);
    put_f32(out + 40, p->beta2);
    put_f32(out + 44, p->eps);
    put_f32(out + 48, p->weight_decay);
    put_f32(out + 52, p->momentum);
    unsigned char *at = out + HEADER_BYTES;
    for (int32_t i = 0; i < opt->count; i++, at += ENTRY_BYTES) {
        const tlmi_optim_param *e = &opt->entries[i];
        tlmi_put_u32(at, (uint32_t)e->ndim);
        tlmi_put_u32(at + 4, (uint32_t)e->decay);
        tlmi_put_u64(at + 8, (uint64_t)e->numel);
        for (int d = 0; d < TLM_MAX_DIMS; d++)
            tlmi_put_u64(at + 16 + 8 * d, (uint64_t)e->shape[d]);
    }
    return at;
}

/* Checks the saved description of parameter `index` against `e`. */
static int check_entry(tlmi_host *host, const unsigned char *at,
                       int32_t index, const tlmi_optim_param *e) {
    const uint32_t ndim = tlmi_get_u32(at);
    const uint32_t decay = tlmi_get_u32(at + 4);
    const uint64_t numel = tlmi_get_u64(at + 8);
    if (ndim < 1 || ndim > TLM_MAX_DIMS)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: parameter %d has %u "
                         "dimensions (corrupt state)",
                         (int)index, (unsigned)ndim);
    if (decay > 1)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: parameter %d has decay "
                         "flag %u (corrupt state)",
                         (int)index, (unsigned)decay);
    uint64_t product = 1;
    for (uint32_t d = 0; d < TLM_MAX_DIMS; d++) {
        const uint64_t size = tlmi_get_u64(at + 16 + 8 * d);
        if (d >= ndim ? size != 0
                      : (size < 1 || size > (uint64_t)INT64_MAX / product))
            return tlmi_fail(host, TLM_E_FORMAT,
                             "tlm_optimizer_load_state: parameter %d has a "
                             "bad size %llu in dimension %u (corrupt state)",
                             (int)index, (unsigned long long)size,
                             (unsigned)d);
        if (d < ndim)
            product *= size;
    }
    if (product != numel)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: parameter %d has %llu "
                         "elements but its shape holds %llu (corrupt state)",
                         (int)index, (unsigned long long)numel,
                         (unsigned long long)product);
    int same = ndim == (uint32_t)e->ndim;
    for (int32_t d = 0; same && d < e->ndim; d++)
        same = tlmi_get_u64(at + 16 + 8 * d) == (uint64_t)e->shape[d];
    if (!same)
        return tlmi_fail(host, TLM_E_SHAPE,
                         "tlm_optimizer_load_state: parameter %d was saved "
                         "with %llu elements in %u dimensions, this "
                         "optimizer's has %lld in %d",
                         (int)index, (unsigned long long)numel,
                         (unsigned)ndim, (long long)e->numel, (int)e->ndim);
    return TLM_OK;
}

TLM_API int tlm_optimizer_load_state(tlm_optimizer *opt, const void *buffer,
                                     size_t size) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_optimizer_load_state", opt);
    TLMI_CHECK_NOT_NULL(&opt->host, "tlm_optimizer_load_state", buffer);
    tlmi_optim_loaded loaded;
    const int status =
        tlmi_optimizer_check_state(opt, &opt->host, buffer, size, &loaded);
    if (status == TLM_OK)
        tlmi_optimizer_commit_state(opt, &loaded);
    return status;
}

int tlmi_optimizer_check_state(const tlm_optimizer *opt, tlmi_host *host,
                               const void *buffer, size_t size,
                               tlmi_optim_loaded *loaded) {
    const unsigned char *in = buffer;
    if (size < 12)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: %zu bytes is too short "
                         "for an optimizer state (truncated)",
                         size);
    if (memcmp(in, STATE_MAGIC, 8) != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: the buffer does not "
                         "start with \"" STATE_MAGIC "\": not an optimizer "
                         "state");
    const uint32_t version = tlmi_get_u32(in + 8);
    if (version > STATE_VERSION)
        return tlmi_fail(host, TLM_E_VERSION,
                         "tlm_optimizer_load_state: state version %u is "
                         "newer than this library's %u; update libtlm",
                         (unsigned)version, STATE_VERSION);
    if (version == 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: state version 0 does "
                         "not exist (corrupt state)");
    if (size < HEADER_BYTES)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: %zu bytes is shorter than "
                         "the %u-byte header (truncated)",
                         size, HEADER_BYTES);
    const uint32_t kind = tlmi_get_u32(in + 12);
    if (kind != TLM_OPTIMIZER_ADAMW && kind != TLM_OPTIMIZER_SGD)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: kind %u is unknown "
                         "(corrupt state)",
                         (unsigned)kind);
    if (kind != (uint32_t)opt->params.kind)
        return tlmi_fail(host, TLM_E_INVALID,
                         "tlm_optimizer_load_state: the state is of an %s "
                         "optimizer, this one is %s",
                         kind == TLM_OPTIMIZER_ADAMW ? "AdamW" : "SGD",
                         opt->params.kind == TLM_OPTIMIZER_ADAMW ? "AdamW"
                                                                 : "SGD");
    const uint32_t count = tlmi_get_u32(in + 16);
    if (count != (uint32_t)opt->count)
        return tlmi_fail(host, TLM_E_SHAPE,
                         "tlm_optimizer_load_state: the state has %u "
                         "parameters, this optimizer %d",
                         (unsigned)count, (int)opt->count);
    /* Same count as ours, so the sizes below cannot overflow. */
    if (size < HEADER_BYTES + (size_t)count * ENTRY_BYTES)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: %zu bytes end inside the "
                         "parameter table (truncated)",
                         size);
    for (int32_t i = 0; i < opt->count; i++) {
        int status = check_entry(host, in + HEADER_BYTES + (size_t)i * ENTRY_BYTES,
                                 i, &opt->entries[i]);
        if (status != TLM_OK)
            return status;
    }
    if (size != opt->saved_bytes)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: %zu bytes, but a state "
                         "of these parameters has %zu (%s)",
                         size, opt->saved_bytes,
                         size < opt->saved_bytes ? "truncated"
                                                 : "trailing bytes");
    const uint32_t stored_crc = tlmi_get_u32(in + size - CRC_BYTES);
    const uint32_t crc = tlmi_crc32(0, in, size - CRC_BYTES);
    if (stored_crc != crc)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: checksum 0x%08x does not "
                         "match the contents' 0x%08x (corrupt state)",
                         (unsigned)stored_crc, (unsigned)crc);

    /* The values: settings, step, moments. */
    tlm_optimizer_params p = opt->params;
    p.kind = (int32_t)kind;
    p.nesterov = (int32_t)tlmi_get_u32(in + 20);
    p.lr = get_f32(in + 32);
    p.beta1 = get_f32(in + 36);
    p.beta2 = get_f32(in + 40);
    p.eps = get_f32(in + 44);
    p.weight_decay = get_f32(in + 48);
    p.momentum = get_f32(in + 52);
    int status = tlmi_optim_check_params(host, TLM_E_FORMAT,
                                         "tlm_optimizer_load_state: saved "
                                         "settings",
                                         &p);
    if (status != TLM_OK)
        return status;
    const uint64_t step = tlmi_get_u64(in + 24);
    if (step > (uint64_t)INT64_MAX)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "tlm_optimizer_load_state: step count %llu is out "
                         "of range (corrupt state)",
                         (unsigned long long)step);
    const unsigned char *moments =
        in + HEADER_BYTES + (size_t)count * ENTRY_BYTES;
    for (int32_t i = 0; i < opt->count; i++) {
        const tlmi_optim_param *e = &opt->entries[i];
        /* Offsets of this parameter's moments among all the floats. */
        const size_t m_at = (size_t)(e->m - opt->state);
        for (int64_t j = 0; j < e->numel; j++) {
            const float m = get_f32(moments + 4 * (m_at + (size_t)j));
            if (!isfinite(m))
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "tlm_optimizer_load_state: moment %lld of "
                                 "parameter %d is not finite (corrupt state)",
                                 (long long)j, (int)i);
        }
        if (e->v == NULL)
            continue;
        const size_t v_at = (size_t)(e->v - opt->state);
        for (int64_t j = 0; j < e->numel; j++) {
            const float v = get_f32(moments + 4 * (v_at + (size_t)j));
            if (!isfinite(v) || v < 0.0f)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "tlm_optimizer_load_state: second moment "
                                 "%lld of parameter %d is %g, not finite and "
                                 ">= 0 (corrupt state)",
                                 (long long)j, (int)i, (double)v);
        }
    }

    loaded->params = p;
    loaded->step = (int64_t)step;
    loaded->bytes = in;
    return TLM_OK;
}

/* Cannot fail: everything was checked by tlmi_optimizer_check_state. */
void tlmi_optimizer_commit_state(tlm_optimizer *opt,
                                 const tlmi_optim_loaded *loaded) {
    const unsigned char *in = loaded->bytes;
    const unsigned char *moments =
        in + HEADER_BYTES + (size_t)opt->count * ENTRY_BYTES;
    opt->params = loaded->params;
    opt->step = loaded->step;
    for (int32_t i = 0; i < opt->count; i++)
        opt->entries[i].decay =
            (int32_t)tlmi_get_u32(in + HEADER_BYTES + (size_t)i * ENTRY_BYTES + 4);
    for (size_t i = 0; i < opt->state_floats; i++)
        opt->state[i] = get_f32(moments + 4 * i);
}
