/*
 * Recording a failure: the detailed message of the last failure, kept on
 * the failing handle's host and on the calling thread, and the status
 * codes' texts and names (generated from TLM_STATUS_TABLE in tlm.h).
 */
#ifndef TLM_LIB_BASE_ERROR_H
#define TLM_LIB_BASE_ERROR_H

#include <stdarg.h>

#include "host.h"
#include "tlm.h"

/* Records a failure: formats the message into the host's last_error (when
 * host is not NULL) and the calling thread's message, logs it at
 * TLM_LOG_ERROR, and returns `status` so a caller can write
 * `return tlmi_fail(host, TLM_E_INVALID, "...")`. */
int tlmi_fail(tlmi_host *host, int status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

int tlmi_fail_v(tlmi_host *host, int status, const char *format,
                va_list args)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 0)))
#endif
    ;

/* Records a failure on the calling thread only, for calls that have no
 * handle to record it on; returns `status`. */
int tlmi_fail_thread(int status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

/* Records that a callee failed on the caller's behalf, as
 * "<prefix>: <callee's message>": the prefix is formatted from `format`,
 * the callee's message is the calling thread's last message (where every
 * tlmi_fail leaves it). Returns `status`, so a caller writes
 * `return tlmi_fail_forward(host, status, "tlm_x: loading '%s'", path)`. */
int tlmi_fail_forward(tlmi_host *host, int status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* tlmi_fail_forward with the callee's message given, for a callee that
 * keeps its own (a session's or another handle's last error). */
int tlmi_fail_forward_from(tlmi_host *host, int status, const char *message,
                           const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* Records `message` unchanged on `host` (and the thread), for a failure
 * first recorded elsewhere; `message` may be the thread's own buffer or
 * another host's last_error. Returns `status`. */
int tlmi_fail_copy(tlmi_host *host, int status, const char *message);

/* Argument checks, one line each: when `cond` is false the calling
 * function returns tlmi_fail(host, status, format, ...). `host` may be
 * NULL for a call that has no handle yet (the thread records it). */
#define TLMI_CHECK(host, cond, status, ...)                   \
    do {                                                      \
        if (!(cond))                                          \
            return tlmi_fail((host), (status), __VA_ARGS__);  \
    } while (0)

/* Returns TLM_E_INVALID with "<function>: <arg> is NULL" when `arg` is
 * NULL; the message names `arg` as written, so pass the parameter's own
 * name (`function` is a string, a literal or a caller's `what`). */
#define TLMI_CHECK_NOT_NULL(host, function, arg)                          \
    TLMI_CHECK(host, (arg) != NULL, TLM_E_INVALID, "%s: " #arg " is NULL", \
               (function))

/* TLMI_CHECK_NOT_NULL for an output argument, then `*out = cleared`, so
 * that every later failure leaves the caller a known value:
 * TLMI_CHECK_OUT(NULL, "tlm_x_create", out, NULL); */
#define TLMI_CHECK_OUT(host, function, out, cleared) \
    do {                                             \
        TLMI_CHECK_NOT_NULL(host, function, out);    \
        *(out) = (cleared);                          \
    } while (0)

/* Returns TLM_E_INVALID with "<function>: <buffer> is NULL but <size> is
 * <n>" for a NULL buffer paired with a non-zero size (a size_t); both are
 * named as written, like TLMI_CHECK_NOT_NULL. */
#define TLMI_CHECK_BUFFER(host, function, buffer, size)                    \
    TLMI_CHECK(host, (buffer) != NULL || (size) == 0, TLM_E_INVALID,         \
               "%s: " #buffer " is NULL but " #size " is %zu", (function), \
               (size_t)(size))

/* Returns the status of `call` from the calling function when it is not
 * TLM_OK, the failure already recorded by the callee. */
#define TLMI_TRY(call)                  \
    do {                                \
        int tlmi_try_status_ = (call);  \
        if (tlmi_try_status_ != TLM_OK) \
            return tlmi_try_status_;    \
    } while (0)

/* The body of every tlm_*_last_error(handle): the handle's last message,
 * or "<function>: <handle> is NULL" for NULL (`function` a literal):
 * return TLMI_LAST_ERROR("tlm_x_last_error", x); */
#define TLMI_LAST_ERROR(function, handle)                        \
    ((handle) == NULL ? function ": " #handle " is NULL"         \
                      : (const char *)(handle)->host.last_error)

#endif
