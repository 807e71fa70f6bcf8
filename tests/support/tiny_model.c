#include "tiny_model.h"

#include <stddef.h>

int tiny_byte_model_create(tlm_model **model, tlm_context *ctx) {
    *model = NULL;
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 259;
    c.d_model = 16;
    c.n_heads = 2;
    c.n_decoder_layers = 1;
    c.max_context = 8;
    int status = tlm_model_create(model, ctx, &c);
    if (status != TLM_OK)
        return status;
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    tlm_tokenizer *tok = NULL;
    status = tlm_tokenizer_train(&tok, ctx, NULL, 0, &tp);
    if (status == TLM_OK)
        status = tlm_model_set_tokenizer(*model, tok);
    tlm_tokenizer_free(tok);
    if (status != TLM_OK) {
        tlm_model_free(*model);
        *model = NULL;
    }
    return status;
}
