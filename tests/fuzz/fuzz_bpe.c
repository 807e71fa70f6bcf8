/* Fuzz target: BPE encoding of arbitrary bytes with a fixed tokenizer
 * (trained once on a small corpus): decode(encode(x)) == x, never more ids
 * than bytes, every id inside the vocabulary and never a special token;
 * the token stream gives the same bytes in pieces. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

static tlm_tokenizer *tokenizer(void) {
    static tlm_tokenizer *tok;
    if (tok == NULL) {
        static const char corpus[] =
            "the quick brown fox jumps over the lazy dog. The dog sleeps; "
            "the fox runs away!! 1234 5678 -- \xc3\xa9t\xc3\xa9 \xe6\x97\xa5"
            "\xe6\x9c\xac \xf0\x9f\x99\x82 don't can't it's    tabs\t\tnewlines\n\n";
        tlm_tokenizer_params params;
        tlm_tokenizer_params_init(&params);
        params.vocab_size = 400;
        params.min_pair_count = 1;
        fuzz_check(tlm_tokenizer_train(&tok, NULL, corpus, sizeof corpus - 1,
                                       &params) == TLM_OK,
                   "bpe: training the fixed tokenizer");
    }
    return tok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    tlm_tokenizer *tok = tokenizer();
    const int32_t vocab = tlm_tokenizer_vocab_size(tok);
    int32_t *ids = malloc((size > 0 ? size : 1) * sizeof *ids);
    char *back = malloc(size > 0 ? size : 1);
    fuzz_check(ids != NULL && back != NULL, "bpe: test memory");
    size_t n = 0;
    fuzz_check(tlm_tokenizer_encode(tok, (const char *)data, size, ids, size, &n) ==
                   TLM_OK,
               "bpe: encode never fails");
    fuzz_check(n <= size, "bpe: no more ids than bytes");
    for (size_t i = 0; i < n; i++)
        fuzz_check(ids[i] >= 0 && ids[i] < vocab - 3, "bpe: ids are ordinary tokens");
    size_t length = 0;
    fuzz_check(tlm_tokenizer_decode(tok, ids, n, back, size, &length) == TLM_OK,
               "bpe: decode of encode succeeds");
    fuzz_check(length == size && (size == 0 || memcmp(back, data, size) == 0),
               "bpe: decode(encode(x)) == x");
    tlm_token_stream *stream = NULL;
    if (tlm_token_stream_create(&stream, tok) == TLM_OK) {
        size_t at = 0;
        const char *piece;
        size_t piece_length;
        for (size_t i = 0; i <= n; i++) {
            int status = i < n ? tlm_token_stream_push(stream, ids[i], &piece, &piece_length)
                               : tlm_token_stream_flush(stream, &piece, &piece_length);
            fuzz_check(status == TLM_OK, "bpe: the stream takes every id");
            fuzz_check(piece_length <= size - at &&
                           memcmp(piece, data + at, piece_length) == 0,
                       "bpe: the stream's pieces are the text");
            at += piece_length;
        }
        fuzz_check(at == size, "bpe: the stream gives every byte");
        tlm_token_stream_free(stream);
    }
    free(ids);
    free(back);
    return 0;
}
