/*
 * Growable settings structs: merging a caller's struct, which may come from
 * an older or newer tlm.h than the library's, over the library's defaults.
 */
#ifndef TLM_LIB_PARAMS_H
#define TLM_LIB_PARAMS_H

#include <stddef.h>

#include "host.h"

/*
 * `defaults` (of `library_size` bytes, its first member a size_t
 * struct_size) is overwritten with the caller's struct `given`, whose size
 * is read from its own struct_size:
 * - smaller than the library's (an older caller): the tail keeps defaults;
 * - larger (a newer caller): accepted only if every byte this library does
 *   not know is zero, since a non-zero one is a setting it cannot honour.
 * `given` may be NULL (all defaults). `what` names the call and argument
 * for messages, e.g. "tlm_context_create: params".
 */
int tlmi_params_merge(tlmi_host *host, const char *what, void *defaults,
                      size_t library_size, const void *given);

#endif
