/* The calls added for the tlm program (attention pictures) with NULL
 * handles and invalid arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *function) {
    if (strstr(tlm_last_error(), function) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), function);
}

static void attention_weights_rejects_bad_arguments(void **state) {
    (void)state;
    const int32_t ids[2] = {1, 2};
    float weights[4 * 2 * 2];
    assert_int_equal(tlm_model_attention_weights(NULL, ids, 2, 0, weights), TLM_E_INVALID);
    assert_message_names("tlm_model_attention_weights");

    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 5;
    config.d_model = 8;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 4;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &config), TLM_OK);
    assert_int_equal(tlm_model_attention_weights(model, NULL, 2, 0, weights), TLM_E_INVALID);
    assert_int_equal(tlm_model_attention_weights(model, ids, 2, 0, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_model_attention_weights(model, ids, 0, 0, weights), TLM_E_RANGE);
    assert_int_equal(tlm_model_attention_weights(model, ids, 5, 0, weights), TLM_E_RANGE);
    assert_int_equal(tlm_model_attention_weights(model, ids, 2, 1, weights), TLM_E_RANGE);
    assert_non_null(strstr(tlm_context_last_error(ctx), "tlm_model_attention_weights"));
    const int32_t bad[2] = {1, -1};
    assert_int_equal(tlm_model_attention_weights(model, bad, 2, 0, weights), TLM_E_RANGE);
    assert_int_equal(tlm_model_attention_weights(model, ids, 2, 0, weights), TLM_OK);
    tlm_model_free(model);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(attention_weights_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
