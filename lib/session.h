/* What other modules (generation, scoring) need to know of a session. */
#ifndef TLM_LIB_SESSION_H
#define TLM_LIB_SESSION_H

#include <stddef.h>

#include "host.h"
#include "kernels/dispatch.h"
#include "tlm.h"

/* The model the session runs. */
const tlm_model *tlmi_session_model(const tlm_session *session);

/* The session's host: its hooks, and where its errors are recorded. */
tlmi_host *tlmi_session_host(tlm_session *session);

/* Bytes tlm_session_create allocates for `model` with these
 * tlm_session_params fields and `kernels`: the session, its buffers (one
 * block, laid out by the same function) and its thread pool. SIZE_MAX on
 * overflow. */
size_t tlmi_session_bytes(const tlm_model *model, const tlmi_kernels *kernels,
                          int32_t chunk_tokens, int32_t n_threads);

#endif
