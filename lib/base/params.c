#include "params.h"

#include <string.h>

#include "error.h"

/* No settings struct will ever be this large; a struct_size above it is
 * an uninitialised struct, whose tail must not be read. */
#define TLMI_PARAMS_MAX_SIZE 4096

int tlmi_params_merge(tlmi_host *host, const char *what, void *defaults,
                      size_t library_size, const void *given) {
    if (given == NULL)
        return TLM_OK;
    size_t given_size;
    memcpy(&given_size, given, sizeof given_size);
    if (given_size < sizeof(size_t))
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: struct_size is %zu, too small (call the "
                         "matching *_params_init first)",
                         what, given_size);
    if (given_size > TLMI_PARAMS_MAX_SIZE)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s: struct_size is %zu, not a plausible settings "
                         "struct (call the matching *_params_init first)",
                         what, given_size);
    if (given_size > library_size) {
        const unsigned char *extra = (const unsigned char *)given;
        for (size_t i = library_size; i < given_size; i++)
            if (extra[i] != 0)
                return tlmi_fail(host, TLM_E_UNSUPPORTED,
                                 "%s: struct_size %zu is larger than this "
                                 "library's %zu and sets fields it does not "
                                 "know (byte %zu is non-zero); update libtlm",
                                 what, given_size, library_size, i);
        given_size = library_size;
    }
    memcpy(defaults, given, given_size);
    memcpy(defaults, &library_size, sizeof library_size);
    return TLM_OK;
}

int tlmi_params_check_out(tlmi_host *host, const char *what, const void *out) {
    size_t out_size;
    memcpy(&out_size, out, sizeof out_size);
    if (out_size < sizeof(size_t) || out_size > TLMI_PARAMS_MAX_SIZE)
        return tlmi_fail(host, TLM_E_INVALID,
                         "%s->struct_size %zu is not plausible (call the "
                         "matching *_init first)",
                         what, out_size);
    return TLM_OK;
}

void tlmi_params_copy_out(void *out, const void *value, size_t library_size) {
    size_t out_size;
    memcpy(&out_size, out, sizeof out_size);
    const size_t size = out_size < library_size ? out_size : library_size;
    memcpy(out, value, size);
    if (out_size > size)
        memset((unsigned char *)out + size, 0, out_size - size);
    memcpy(out, &out_size, sizeof out_size);
}

int tlmi_params_give(tlmi_host *host, const char *what, void *out,
                     const void *value, size_t library_size) {
    TLMI_TRY(tlmi_params_check_out(host, what, out));
    tlmi_params_copy_out(out, value, library_size);
    return TLM_OK;
}
