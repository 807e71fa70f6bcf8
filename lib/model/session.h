/* What other modules (generation, scoring) need to know of a session. */
#ifndef TLM_LIB_MODEL_SESSION_H
#define TLM_LIB_MODEL_SESSION_H

#include <stddef.h>

#include "base/host.h"
#include "kernels/dispatch.h"
#include "tlm.h"

/* The model the session runs. */
const tlm_model *tlmi_session_model(const tlm_session *session);

/* The session's host: its hooks, and where its errors are recorded. */
tlmi_host *tlmi_session_host(tlm_session *session);

/* Decoder positions the session has computed since it was created (a
 * reset does not clear the count; tlm_session_copy leaves it alone). */
int64_t tlmi_session_positions_computed(const tlm_session *session);

/* tlm_session_create with the kernel table `kernels` (taken once; the
 * session uses no other). */
int tlmi_session_create_with(tlm_session **out, const tlm_model *model,
                             const tlm_session_params *params,
                             const tlmi_kernels *kernels);

/* What a decoder self-attention is about to attend, for a hook: the
 * pass's rows are positions first..first+n-1; head h's query of row i is
 * q[h * q_head_stride + i * ld_q + 0..head_dim-1] (rotated when rotary),
 * its key of position j is k[(g * capacity + j) * head_dim + ...] with
 * g = h / (n_heads / n_kv_heads), its key/value head (0 <= j < first + n,
 * rotated too). */
typedef struct tlmi_attention_view {
    int32_t layer;
    int64_t first, n;
    int64_t n_heads, n_kv_heads, head_dim;
    const float *q;
    int64_t ld_q, q_head_stride;
    const float *k;
    int64_t capacity;
} tlmi_attention_view;

typedef void (*tlmi_attention_hook)(void *user, const tlmi_attention_view *view);

/* Calls `hook` (NULL: none) before every decoder self-attention of the
 * session's passes. */
void tlmi_session_set_attention_hook(tlm_session *session,
                                     tlmi_attention_hook hook, void *user);

/* Rows a session computes at once when its params say 0 (chunk_tokens). */
#define TLMI_SESSION_DEFAULT_CHUNK 64

/* Bytes tlm_session_create allocates for `model` with these
 * tlm_session_params fields and `kernels`: the session, its buffers (one
 * block, laid out by the same function) and its thread pool. SIZE_MAX on
 * overflow. */
size_t tlmi_session_bytes(const tlm_model *model, const tlmi_kernels *kernels,
                          int32_t chunk_tokens, int32_t n_threads);

#endif
