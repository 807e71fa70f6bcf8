#define _POSIX_C_SOURCE 200809L /* posix_memalign */
#define _DEFAULT_SOURCE /* madvise, MADV_HUGEPAGE */

#include "host.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__linux__)
#include <sys/mman.h>
#endif

/* Blocks of at least this many bytes (weights, caches) are placed on 2 MiB
 * boundaries and offered to the kernel for transparent huge pages. */
#define HUGE_PAGE_BYTES ((size_t)2 << 20)

static void *default_alloc(void *user, size_t size, size_t alignment) {
    (void)user;
    void *ptr = NULL;
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    /* Decoding streams every weight once per token: with 4 KiB pages the
     * walk through a 37 MB output layer ran at half the speed it reaches
     * on 2 MiB pages (llama2.c's run.c gets these for free: its weights
     * are a memory-mapped file, which the page cache maps with 2 MiB
     * entries). Most systems set transparent huge pages to "madvise", so
     * ask for them. The advice is only a hint: failing it changes nothing. */
    if (size >= HUGE_PAGE_BYTES && alignment <= HUGE_PAGE_BYTES) {
        if (posix_memalign(&ptr, HUGE_PAGE_BYTES, size) != 0)
            return NULL;
        madvise(ptr, size / HUGE_PAGE_BYTES * HUGE_PAGE_BYTES, MADV_HUGEPAGE);
        return ptr;
    }
#endif
    if (posix_memalign(&ptr, alignment, size) != 0)
        return NULL;
    return ptr;
}

static void default_free(void *user, void *ptr, size_t size) {
    (void)user;
    (void)size;
    free(ptr);
}

void tlmi_host_init_default(tlmi_host *host) {
    memset(host, 0, sizeof *host);
    host->alloc_fn = default_alloc;
    host->free_fn = default_free;
    host->log_level = TLM_LOG_WARN;
}

void *tlmi_host_alloc(const tlmi_host *host, size_t size, size_t alignment) {
    if (size == 0)
        return NULL;
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    void *ptr = host->alloc_fn(host->alloc_user, size, alignment);
    if (ptr != NULL && host->live_bytes != NULL)
        atomic_fetch_add_explicit(host->live_bytes, (int64_t)size,
                                  memory_order_relaxed);
    return ptr;
}

void tlmi_host_free(const tlmi_host *host, void *ptr, size_t size) {
    if (ptr == NULL)
        return;
    if (host->live_bytes != NULL)
        atomic_fetch_sub_explicit(host->live_bytes, (int64_t)size,
                                  memory_order_relaxed);
    host->free_fn(host->alloc_user, ptr, size);
}

void *tlmi_handle_alloc(const tlmi_host *parent, size_t size,
                        size_t host_offset) {
    unsigned char *handle = tlmi_host_alloc(parent, size, 64);
    if (handle == NULL)
        return NULL;
    memset(handle, 0, size);
    tlmi_host *host = (tlmi_host *)(void *)(handle + host_offset);
    *host = *parent;
    host->last_error[0] = '\0';
    return handle;
}

#if defined(__GNUC__)
__attribute__((format(printf, 3, 0)))
#endif
static void host_log_v(const tlmi_host *host, int level, const char *format,
                       va_list args) {
    if (host == NULL || host->log_fn == NULL || level > host->log_level ||
        level <= TLM_LOG_NONE)
        return;
    char message[TLMI_MESSAGE_MAX];
    vsnprintf(message, sizeof message, format, args);
    host->log_fn(host->log_user, level, message);
}

void tlmi_host_log(const tlmi_host *host, int level, const char *format, ...) {
    va_list args;
    va_start(args, format);
    host_log_v(host, level, format, args);
    va_end(args);
}
