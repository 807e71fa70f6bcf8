#include "error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char thread_error[TLMI_MESSAGE_MAX];

char *tlmi_thread_error_buffer(void) { return thread_error; }

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
