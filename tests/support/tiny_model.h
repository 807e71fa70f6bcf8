/* The smallest useful model for tests of files and limits: decoder-only,
 * 259 ids (bytes and the specials), d_model 16, 2 heads, 1 layer, context
 * 8, with a byte tokenizer attached. */
#ifndef TLM_TESTS_TINY_MODEL_H
#define TLM_TESTS_TINY_MODEL_H

#include "tlm.h"

/* tlm_model_create's status, or the tokenizer's; *model is NULL on
 * failure. */
int tiny_byte_model_create(tlm_model **model, tlm_context *ctx);

#endif
