/* Fuzz target: GPT-2's encoder.json + vocab.bpe reader
 * (tlmi_gpt2_read_files, what tlm_tokenizer_import runs on a directory).
 * The input is the encoder.json text, a NUL byte, then the vocab.bpe text
 * (no NUL: all of it is encoder.json and vocab.bpe is empty). A failure
 * has a message; a tokenizer it accepts encodes and decodes a text back
 * and its file image reads back. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/host.h"
#include "text/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const uint8_t *nul = memchr(data, 0, size);
    size_t json_size = nul != NULL ? (size_t)(nul - data) : size;
    const char *bpe = nul != NULL ? (const char *)nul + 1 : "";
    size_t bpe_size = nul != NULL ? size - json_size - 1 : 0;
    tlmi_host host;
    tlmi_host_init_default(&host);
    host.alloc_fn = fuzz_alloc;
    host.free_fn = fuzz_free;
    tlm_tokenizer *tok = NULL;
    int status = tlmi_gpt2_read_files(&tok, &host, (const char *)data,
                                      json_size, "encoder.json", bpe,
                                      bpe_size, "vocab.bpe");
    fuzz_check((status == TLM_OK) == (tok != NULL), "gpt2_vocab: tok set on success");
    if (status != TLM_OK) {
        /* The message (the thread's: the builder records on its own copy
         * of the hooks) names the file at fault. */
        fuzz_check(strstr(tlm_last_error(), "encoder.json") != NULL ||
                       strstr(tlm_last_error(), "vocab.bpe") != NULL,
                   "gpt2_vocab: a failure has a message naming the file");
        return 0;
    }
    static const char text[] = "Hello, world! it's 123 \xc3\xa9t\xc3\xa9   x\xff\xfe";
    int32_t ids[sizeof text];
    size_t n = 0, length = 0;
    fuzz_check(tlm_tokenizer_encode(tok, text, sizeof text - 1, ids, sizeof text, &n) ==
                   TLM_OK,
               "gpt2_vocab: encode works");
    char back[sizeof text];
    fuzz_check(tlm_tokenizer_decode(tok, ids, n, back, sizeof back, &length) == TLM_OK &&
                   length == sizeof text - 1 && memcmp(back, text, length) == 0,
               "gpt2_vocab: decode(encode(x)) == x");
    size_t image_size = 0;
    tlm_tokenizer_save_memory(tok, NULL, 0, &image_size);
    void *image = malloc(image_size);
    if (image != NULL &&
        tlm_tokenizer_save_memory(tok, image, image_size, &image_size) == TLM_OK) {
        tlm_tokenizer *again = NULL;
        fuzz_check(tlm_tokenizer_load_memory(&again, NULL, image, image_size) == TLM_OK,
                   "gpt2_vocab: a saved image reads back");
        tlm_tokenizer_free(again);
    }
    free(image);
    tlm_tokenizer_free(tok);
    return 0;
}
