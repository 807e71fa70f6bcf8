/*
 * The services a handle gets from the program that embeds tlm: memory
 * (through the allocator hook), logging (through the log hook) and the
 * detailed message of its last failure (recorded by error.h's tlmi_fail).
 * Every handle embeds one tlm_host,
 * copied from its settings or inherited from its parent handle, so two
 * libraries in one process can give tlm different hooks.
 */
#ifndef TLM_LIB_BASE_HOST_H
#define TLM_LIB_BASE_HOST_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "tlm.h"

/* Longest detailed error message kept, terminator included. */
#define TLMI_MESSAGE_MAX 512

typedef struct tlmi_host {
    tlm_alloc_fn alloc_fn;
    tlm_free_fn free_fn;
    void *alloc_user;
    tlm_log_fn log_fn;
    void *log_user;
    int log_level;
    /* Bytes allocated through this host and not yet freed, added up for
     * every handle of one context (the context's counter, which handles
     * made in it copy; NULL: not counted). Read by the memory limit's
     * check (autodiff/context.h: tlmi_context_check_memory). */
    _Atomic int64_t *live_bytes;
    char last_error[TLMI_MESSAGE_MAX];
} tlmi_host;

/* Hooks of a host that uses the C library and logs nothing. */
void tlmi_host_init_default(tlmi_host *host);

/* Memory from the host's allocator: `size` bytes aligned to `alignment`
 * (a power of two; values below sizeof(void *) are raised to it). Returns
 * NULL when size is 0 or the hook fails. Does not record an error. */
void *tlmi_host_alloc(const tlmi_host *host, size_t size, size_t alignment);

/* Releases memory from tlmi_host_alloc; `size` must be the requested size.
 * NULL is ignored. */
void tlmi_host_free(const tlmi_host *host, void *ptr, size_t size);

/* A new handle: `size` bytes from `parent`'s allocator, aligned to 64 and
 * zeroed, whose tlmi_host (at byte `host_offset`) is a copy of `parent`
 * with no error recorded. NULL when the allocator fails; nothing is
 * recorded, so each caller words its own message. Use TLMI_HANDLE_ALLOC. */
void *tlmi_handle_alloc(const tlmi_host *parent, size_t size,
                        size_t host_offset);

/* tlmi_handle_alloc for a handle type with a `host` member:
 * tlm_trainer *t = TLMI_HANDLE_ALLOC(&model->ctx->host, tlm_trainer); */
#define TLMI_HANDLE_ALLOC(parent, type)                        \
    ((type *)tlmi_handle_alloc((parent), sizeof(type),         \
                               offsetof(type, host)))

/* Sends a formatted message to the log hook when `level` passes the
 * host's threshold. `host` may be NULL (nothing is logged). */
void tlmi_host_log(const tlmi_host *host, int level, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

#endif
