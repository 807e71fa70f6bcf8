/* Fuzz target: llama2.c's tokenizer.bin reader (tlmi_sp_read_llama2c,
 * what tlm_tokenizer_import runs on a tokenizer.bin). A failure has a
 * message; a file it accepts encodes a text, and written back in the same
 * form (when the form can hold it) reads to the same ids. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/host.h"
#include "text/tokenizer.h"

static const char text[] = "Hello, world!  it's 123 \xc3\xa9t\xc3\xa9 x\xff ";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlmi_host host;
    tlmi_host_init_default(&host);
    host.alloc_fn = fuzz_alloc;
    host.free_fn = fuzz_free;
    tlm_tokenizer *tok = NULL;
    int status = tlmi_sp_read_llama2c(&tok, &host, data, size, "tokenizer.bin");
    fuzz_check((status == TLM_OK) == (tok != NULL), "llama2c_tokenizer: tok set on success");
    if (status != TLM_OK) {
        fuzz_check(strstr(tlm_last_error(), "tokenizer.bin") != NULL,
                   "llama2c_tokenizer: a failure has a message naming the file");
        return 0;
    }
    int32_t ids[3 * sizeof text], again[3 * sizeof text];
    size_t n = 0, m = 0;
    fuzz_check(tlm_tokenizer_encode(tok, text, sizeof text - 1, ids, 3 * sizeof text, &n) ==
                   TLM_OK,
               "llama2c_tokenizer: an accepted file encodes");
    unsigned char *written = NULL;
    size_t written_size = 0;
    if (tlmi_sp_write_llama2c(tok, &host, &written, &written_size, "write") == TLM_OK) {
        tlm_tokenizer *back = NULL;
        fuzz_check(tlmi_sp_read_llama2c(&back, &host, written, written_size, "written") ==
                       TLM_OK,
                   "llama2c_tokenizer: the written file reads back");
        fuzz_check(tlm_tokenizer_encode(back, text, sizeof text - 1, again,
                                        3 * sizeof text, &m) == TLM_OK &&
                       m == n && memcmp(ids, again, n * sizeof *ids) == 0,
                   "llama2c_tokenizer: the written file encodes the same");
        tlm_tokenizer_free(back);
        tlmi_host_free(&host, written, written_size);
    }
    tlm_tokenizer_free(tok);
    return 0;
}
