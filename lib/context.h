/* The context handle: the host services (allocator, logger, error text)
 * and compute settings that every object created in it shares. */
#ifndef TLM_LIB_CONTEXT_H
#define TLM_LIB_CONTEXT_H

#include "host.h"

struct tlm_context {
    tlmi_host host;
    int n_threads; /* resolved: >= 1 */
};

#endif
