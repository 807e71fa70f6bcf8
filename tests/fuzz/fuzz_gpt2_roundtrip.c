/* Fuzz target: arbitrary bytes through a GPT-2-kind tokenizer (the tiny
 * vocabulary of tests/tokenizer/gpt2_tiny_vocab.h, read once):
 * decode(encode(x)) == x, never more ids than bytes, every id inside the
 * vocabulary and never <|endoftext|>, even for the text "<|endoftext|>". */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "base/host.h"
#include "gpt2_tiny_vocab.h"
#include "text/tokenizer.h"

static tlm_tokenizer *tokenizer(void) {
    static tlm_tokenizer *tok;
    if (tok == NULL) {
        static char json[16384], bpe[4096];
        size_t json_size = tiny_encoder_json(json), bpe_size = tiny_vocab_bpe(bpe);
        tlmi_host host;
        tlmi_host_init_default(&host);
        fuzz_check(tlmi_gpt2_read_files(&tok, &host, json, json_size, "encoder.json", bpe,
                                        bpe_size, "vocab.bpe") == TLM_OK,
                   "gpt2_roundtrip: reading the tiny vocabulary");
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_tokenizer *tok = tokenizer();
    int32_t *ids = malloc((size > 0 ? size : 1) * sizeof *ids);
    char *back = malloc(size > 0 ? size : 1);
    fuzz_check(ids != NULL && back != NULL, "gpt2_roundtrip: test memory");
    size_t n = 0, length = 0;
    fuzz_check(tlm_tokenizer_encode(tok, (const char *)data, size, ids, size, &n) == TLM_OK,
               "gpt2_roundtrip: encode never fails");
    fuzz_check(n <= size, "gpt2_roundtrip: no more ids than bytes");
    for (size_t i = 0; i < n; i++)
        fuzz_check(ids[i] >= 0 && ids[i] < TINY_VOCAB - 1,
                   "gpt2_roundtrip: ids are ordinary tokens");
    fuzz_check(tlm_tokenizer_decode(tok, ids, n, back, size, &length) == TLM_OK &&
                   length == size && (size == 0 || memcmp(back, data, size) == 0),
               "gpt2_roundtrip: decode(encode(x)) == x");
    free(ids);
    free(back);
    return 0;
}
