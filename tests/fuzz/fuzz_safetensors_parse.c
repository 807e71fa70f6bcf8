/* Fuzz target: the raw safetensors parser (tlmi_safetensors_parse) on a
 * buffer; every tensor it accepts must lie inside the buffer. */
#include <string.h>

#include "base/host.h"
#include "fuzz.h"
#include "io/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlmi_host host;
    tlmi_host_init_default(&host);
    host.alloc_fn = fuzz_alloc;
    host.free_fn = fuzz_free;
    tlmi_safetensors *st = NULL;
    int status = tlmi_safetensors_parse(&host, "fuzz input", data, size, &st);
    fuzz_check((status == TLM_OK) == (st != NULL), "parse: out set on success");
    if (status != TLM_OK) {
        fuzz_check(host.last_error[0] != '\0', "parse: a failure has a message");
        return 0;
    }
    size_t n = tlmi_safetensors_count(st);
    volatile uint8_t sink = 0;
    for (size_t i = 0; i < n; i++) {
        const tlmi_safetensors_entry *e = tlmi_safetensors_entry_at(st, i);
        fuzz_check(e != NULL, "parse: every entry exists");
        const uint8_t *bytes = e->data;
        fuzz_check(e->nbytes == 0 || (bytes >= data && bytes + e->nbytes <= data + size),
                   "parse: tensor data inside the buffer");
        if (e->nbytes > 0)
            sink ^= bytes[0] ^ bytes[e->nbytes - 1];
        fuzz_check(tlmi_safetensors_find(st, e->name) != NULL,
                   "parse: an entry is found by its name");
    }
    (void)sink;
    tlmi_safetensors_free(st);
    return 0;
}
