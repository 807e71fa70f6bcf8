/*
 * Status codes: their texts and names (generated from TLM_STATUS_TABLE in
 * tlm.h) and the per-thread detailed message of the last failure.
 */
#ifndef TLM_LIB_ERROR_H
#define TLM_LIB_ERROR_H

#include "tlm.h"

/* The calling thread's message buffer, TLMI_MESSAGE_MAX bytes. */
char *tlmi_thread_error_buffer(void);

/* Records a failure on the calling thread only, for calls that have no
 * handle to record it on; returns `status`. */
int tlmi_fail_thread(int status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

#endif
