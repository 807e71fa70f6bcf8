/*
 * Growable settings structs: merging a caller's struct, which may come from
 * an older or newer tlm.h than the library's, over the library's defaults.
 */
#ifndef TLM_LIB_BASE_PARAMS_H
#define TLM_LIB_BASE_PARAMS_H

#include <stddef.h>
#include <string.h>

#include "error.h"
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

/* The start of every *_params_init(tlm_x_params *params): returns
 * TLM_E_INVALID with "<function>: <params> is NULL" (the argument's own
 * name, as TLMI_CHECK_NOT_NULL writes it) from the calling
 * function for a NULL struct, else zeroes it and sets its struct_size;
 * the caller then sets the fields whose default is not zero. */
#define TLMI_PARAMS_INIT(function, params)                 \
    do {                                                   \
        TLMI_CHECK_NOT_NULL(NULL, function, params);       \
        memset((params), 0, sizeof *(params));             \
        (params)->struct_size = sizeof *(params);          \
    } while (0)

/*
 * The other direction, for structs the library fills (tlm_model_get_config,
 * tlm_sampler_get_params, tlm_optimizer_get_params, tlm_trainer_step's
 * info): tlmi_params_check_out refuses a caller's struct whose struct_size
 * (set by its *_init) is not plausible; tlmi_params_copy_out then copies
 * the library's `value` (library_size bytes): an older caller's struct
 * receives the fields it has, a newer caller's gets zero (the default
 * meaning of any later field) in the fields this library does not know.
 * struct_size keeps the caller's value.
 */
int tlmi_params_check_out(tlmi_host *host, const char *what, const void *out);
void tlmi_params_copy_out(void *out, const void *value, size_t library_size);

/* Both steps, for a getter that has nothing else to do:
 * return tlmi_params_give(NULL, "tlm_x_get_params: params", params,
 *                         &x->params, sizeof x->params); */
int tlmi_params_give(tlmi_host *host, const char *what, void *out,
                     const void *value, size_t library_size);

/* The whole body of such a getter (`function` a literal): "handle is
 * NULL", "out is NULL", then tlmi_params_give of `value` (an lvalue
 * reached through the handle), recorded on the thread.
 * TLMI_PARAMS_GET("tlm_x_get_params", x, params, x->params); */
#define TLMI_PARAMS_GET(function, handle, out, value)                 \
    do {                                                              \
        TLMI_CHECK_NOT_NULL(NULL, function, handle);                  \
        TLMI_CHECK_NOT_NULL(NULL, function, out);                     \
        return tlmi_params_give(NULL, function ": " #out, (out),      \
                                &(value), sizeof(value));             \
    } while (0)

#endif
