/* Fuzz target: tiktoken's rank file reader (tlmi_tiktoken_read, what
 * tlm_tokenizer_import runs on such a file). A failure has a message; a
 * tokenizer it accepts encodes and decodes a text back. */
#include <string.h>

#include "fuzz.h"
#include "base/host.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlmi_host host;
    tlmi_host_init_default(&host);
    host.alloc_fn = fuzz_alloc;
    host.free_fn = fuzz_free;
    tlm_tokenizer *tok = NULL;
    int status = tlmi_tiktoken_read(&tok, &host, (const char *)data, size,
                                    "fuzz.tiktoken");
    fuzz_check((status == TLM_OK) == (tok != NULL), "tiktoken: tok set on success");
    if (status != TLM_OK) {
        /* The message (the thread's: the builder records on its own copy
         * of the hooks) names the file. */
        fuzz_check(strstr(tlm_last_error(), "fuzz.tiktoken") != NULL,
                   "tiktoken: a failure has a message naming the file");
        return 0;
    }
    static const char text[] = "Hello, world! it's 123 \xc3\xa9t\xc3\xa9   x\xff\xfe";
    int32_t ids[sizeof text];
    size_t n = 0, length = 0;
    char back[sizeof text];
    fuzz_check(tlm_tokenizer_encode(tok, text, sizeof text - 1, ids, sizeof text, &n) ==
                       TLM_OK &&
                   tlm_tokenizer_decode(tok, ids, n, back, sizeof back, &length) ==
                       TLM_OK &&
                   length == sizeof text - 1 && memcmp(back, text, length) == 0,
               "tiktoken: decode(encode(x)) == x");
    tlm_tokenizer_free(tok);
    return 0;
}
