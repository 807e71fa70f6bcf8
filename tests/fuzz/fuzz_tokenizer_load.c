/* Fuzz target: the tokenizer file reader (tlm_tokenizer_load_memory). A
 * tokenizer it accepts must work: encode and decode a text, and write an
 * image that reads back to the same image. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_context *ctx = fuzz_context();
    tlm_tokenizer *tok = NULL;
    int status = tlm_tokenizer_load_memory(&tok, ctx, data, size);
    fuzz_check((status == TLM_OK) == (tok != NULL), "load: tok set on success");
    if (status != TLM_OK) {
        fuzz_check(tlm_last_error()[0] != '\0', "load: a failure has a message");
        return 0;
    }
    static const char text[] = "Hello, world! 123 \xc3\xa9t\xc3\xa9 \xff\xfe";
    int32_t ids[sizeof text];
    size_t n = 0;
    fuzz_check(tlm_tokenizer_encode(tok, text, sizeof text - 1, ids, sizeof text, &n) == TLM_OK,
               "load: encode works");
    char back[sizeof text * 8];
    size_t length = 0;
    fuzz_check(tlm_tokenizer_decode(tok, ids, n, back, sizeof back, &length) ==
                   TLM_OK || length > sizeof back,
               "load: decode works");
    size_t image_size = 0;
    tlm_tokenizer_save_memory(tok, NULL, 0, &image_size);
    void *image = malloc(image_size);
    if (image != NULL &&
        tlm_tokenizer_save_memory(tok, image, image_size, &image_size) == TLM_OK) {
        tlm_tokenizer *again = NULL;
        fuzz_check(tlm_tokenizer_load_memory(&again, ctx, image, image_size) ==
                       TLM_OK,
                   "load: a saved image reads back");
        fuzz_check(tlm_tokenizer_vocab_size(again) == tlm_tokenizer_vocab_size(tok),
                   "load: the same vocabulary reads back");
        tlm_tokenizer_free(again);
    }
    free(image);
    tlm_tokenizer_free(tok);
    return 0;
}
