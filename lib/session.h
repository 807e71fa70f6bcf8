/* What other modules (generation, scoring) need to know of a session. */
#ifndef TLM_LIB_SESSION_H
#define TLM_LIB_SESSION_H

#include "host.h"
#include "tlm.h"

/* The model the session runs. */
const tlm_model *tlmi_session_model(const tlm_session *session);

/* The session's host: its hooks, and where its errors are recorded. */
tlmi_host *tlmi_session_host(tlm_session *session);

#endif
