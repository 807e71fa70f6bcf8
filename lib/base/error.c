#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char thread_error[TLMI_MESSAGE_MAX];

int tlmi_fail_v(tlmi_host *host, int status, const char *format,
                va_list args) {
    vsnprintf(thread_error, sizeof thread_error, format, args);
    if (host != NULL) {
        memcpy(host->last_error, thread_error, TLMI_MESSAGE_MAX);
        if (host->log_fn != NULL && host->log_level >= TLM_LOG_ERROR)
            host->log_fn(host->log_user, TLM_LOG_ERROR, thread_error);
    }
    return status;
}

int tlmi_fail(tlmi_host *host, int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int result = tlmi_fail_v(host, status, format, args);
    va_end(args);
    return result;
}

int tlmi_fail_thread(int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int result = tlmi_fail_v(NULL, status, format, args);
    va_end(args);
    return result;
}

#if defined(__GNUC__)
__attribute__((format(printf, 4, 0)))
#endif
static int fail_forward_v(tlmi_host *host, int status, const char *message,
                          const char *format, va_list args) {
    /* Both texts are copied first: the message is often the buffer that
     * tlmi_fail is about to overwrite. */
    char callee[TLMI_MESSAGE_MAX];
    snprintf(callee, sizeof callee, "%s", message);
    char prefix[TLMI_MESSAGE_MAX];
    vsnprintf(prefix, sizeof prefix, format, args);
    return tlmi_fail(host, status, "%s: %s", prefix, callee);
}

int tlmi_fail_forward(tlmi_host *host, int status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    int result = fail_forward_v(host, status, thread_error, format, args);
    va_end(args);
    return result;
}

int tlmi_fail_forward_from(tlmi_host *host, int status, const char *message,
                           const char *format, ...) {
    va_list args;
    va_start(args, format);
    int result = fail_forward_v(host, status, message, format, args);
    va_end(args);
    return result;
}

int tlmi_fail_copy(tlmi_host *host, int status, const char *message) {
    char copy[TLMI_MESSAGE_MAX];
    snprintf(copy, sizeof copy, "%s", message);
    return tlmi_fail(host, status, "%s", copy);
}

TLM_API const char *tlm_last_error(void) { return thread_error; }

#define TLMI_STATUS_TEXT_CASE(name, value, text) \
    case TLM_##name:                             \
        return text;

TLM_API const char *tlm_strerror(int status) {
    switch (status) {
        TLM_STATUS_TABLE(TLMI_STATUS_TEXT_CASE)
    default:
        return "unknown status";
    }
}

#define TLMI_STATUS_NAME_CASE(name, value, text) \
    case TLM_##name:                             \
        return "TLM_" #name;

TLM_API const char *tlm_status_name(int status) {
    switch (status) {
        TLM_STATUS_TABLE(TLMI_STATUS_NAME_CASE)
    default:
        return "TLM_E_UNKNOWN";
    }
}
