/* Fuzz target: SentencePiece's ModelProto reader (tlmi_sp_read_model, what
 * tlm_tokenizer_import runs on a tokenizer.model). A failure has a
 * message; a model it accepts encodes and decodes a text, its ModelProto
 * written back reads to the same ids, and its tlm file image reads back. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/host.h"
#include "text/tokenizer.h"

static const char text[] = "Hello, world!  it's 123 \xc3\xa9t\xc3\xa9 \xe4\xb8\xad x\xff\xfe\x00 ";

static void encode_text(tlm_tokenizer *tok, int32_t *ids, size_t *n) {
    fuzz_check(tlm_tokenizer_encode(tok, text, sizeof text - 1, ids, 3 * sizeof text, n) ==
                   TLM_OK,
               "sentencepiece_model: an accepted model encodes");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlmi_host host;
    tlmi_host_init_default(&host);
    host.alloc_fn = fuzz_alloc;
    host.free_fn = fuzz_free;
    tlm_tokenizer *tok = NULL;
    int status = tlmi_sp_read_model(&tok, &host, data, size, "tokenizer.model");
    fuzz_check((status == TLM_OK) == (tok != NULL), "sentencepiece_model: tok set on success");
    if (status != TLM_OK) {
        fuzz_check(strstr(tlm_last_error(), "tokenizer.model") != NULL,
                   "sentencepiece_model: a failure has a message naming the file");
        return 0;
    }
    int32_t ids[3 * sizeof text], again[3 * sizeof text];
    size_t n = 0, m = 0, length = 0;
    encode_text(tok, ids, &n);
    for (size_t i = 0; i < n; i++)
        fuzz_check(ids[i] >= 0 && ids[i] < tlm_tokenizer_vocab_size(tok),
                   "sentencepiece_model: ids inside the vocabulary");
    fuzz_check(tlm_tokenizer_decode(tok, ids, n, NULL, 0, &length) == TLM_OK,
               "sentencepiece_model: ids decode");
    /* Written back as a ModelProto, read again: the same ids. */
    size_t model_size = tlmi_sp_model_size(tok);
    unsigned char *model = malloc(model_size > 0 ? model_size : 1);
    fuzz_check(model != NULL, "sentencepiece_model: test memory");
    tlmi_sp_model_write(tok, model);
    tlm_tokenizer *back = NULL;
    fuzz_check(tlmi_sp_read_model(&back, &host, model, model_size, "written") == TLM_OK,
               "sentencepiece_model: the written model reads back");
    encode_text(back, again, &m);
    fuzz_check(m == n && memcmp(ids, again, n * sizeof *ids) == 0,
               "sentencepiece_model: the written model encodes the same");
    tlm_tokenizer_free(back);
    free(model);
    /* tlm's file image. */
    size_t image_size = 0;
    fuzz_check(tlm_tokenizer_save_memory(tok, NULL, 0, &image_size) == TLM_OK,
               "sentencepiece_model: image size");
    void *image = malloc(image_size);
    fuzz_check(image != NULL, "sentencepiece_model: test memory");
    fuzz_check(tlm_tokenizer_save_memory(tok, image, image_size, &image_size) == TLM_OK,
               "sentencepiece_model: image");
    fuzz_check(tlm_tokenizer_load_memory(&back, NULL, image, image_size) == TLM_OK,
               "sentencepiece_model: the image reads back");
    encode_text(back, again, &m);
    fuzz_check(m == n && memcmp(ids, again, n * sizeof *ids) == 0,
               "sentencepiece_model: the image encodes the same");
    tlm_tokenizer_free(back);
    free(image);
    tlm_tokenizer_free(tok);
    return 0;
}
