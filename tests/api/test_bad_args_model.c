/* The model calls with NULL handles and invalid arguments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

/* A sentinel that is not NULL, to see *out cleared on failure. */
static tlm_model *const NOT_NULL_MODEL = (tlm_model *)&NOT_NULL_MODEL;

static void assert_message_names(const char *function) {
    if (strstr(tlm_last_error(), function) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), function);
}

static void model_calls_reject_null(void **state) {
    (void)state;
    tlm_model_config config;
    tlm_batch batch;
    tlm_tensor *t = NULL;
    const char *name = NULL;
    assert_int_equal(tlm_model_config_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_model_config_init");
    assert_int_equal(tlm_batch_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_batch_init");
    tlm_model_config_init(&config);
    tlm_batch_init(&batch);
    assert_int_equal(tlm_model_create(NULL, NULL, &config), TLM_E_INVALID);
    assert_message_names("tlm_model_create");
    tlm_model_free(NULL);
    assert_int_equal(tlm_model_get_config(NULL, &config), TLM_E_INVALID);
    assert_message_names("tlm_model_get_config");
    assert_true(tlm_model_parameter_count(NULL) < 0);
    assert_message_names("tlm_model_parameter_count");
    assert_true(tlm_model_parameter_tensor_count(NULL) < 0);
    assert_message_names("tlm_model_parameter_tensor_count");
    assert_int_equal(tlm_model_parameter(NULL, 0, &name, &t), TLM_E_INVALID);
    assert_message_names("tlm_model_parameter");
    assert_int_equal(tlm_model_find_parameter(NULL, "x", &t), TLM_E_INVALID);
    assert_message_names("tlm_model_find_parameter");
    assert_int_equal(tlm_model_export_safetensors(NULL, "x.safetensors"), TLM_E_INVALID);
    assert_message_names("tlm_model_export_safetensors");
    tlm_model *imported = (tlm_model *)&config;
    assert_int_equal(tlm_model_import_safetensors(&imported, NULL, "x.safetensors"), TLM_E_INVALID);
    assert_null(imported);
    assert_message_names("tlm_model_import_safetensors");
    assert_int_equal(tlm_model_import_safetensors(NULL, NULL, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_model_set_tokenizer(NULL, NULL), TLM_E_INVALID);
    assert_message_names("tlm_model_set_tokenizer");
    assert_null(tlm_model_tokenizer(NULL));
    assert_message_names("tlm_model_tokenizer");
    assert_null(tlm_model_context(NULL));
    assert_message_names("tlm_model_context");
    assert_int_equal(tlm_model_save(NULL, "x.tlm"), TLM_E_INVALID);
    assert_message_names("tlm_model_save");
    assert_int_equal(tlm_model_load_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_model_load_params_init");
    tlm_model *loaded = (tlm_model *)&config;
    assert_int_equal(tlm_model_load(&loaded, NULL, "x.tlm", NULL), TLM_E_INVALID);
    assert_null(loaded);
    assert_message_names("tlm_model_load");
    assert_int_equal(tlm_model_load(NULL, NULL, NULL, NULL), TLM_E_INVALID);
    int64_t bytes = 0;
    assert_int_equal(tlm_model_memory_estimate(NULL, TLM_MEMORY_TRAINING, 1, 1, &bytes), TLM_E_INVALID);
    assert_message_names("tlm_model_memory_estimate");
    tlm_tensor *logits = (tlm_tensor *)&batch;
    assert_int_equal(tlm_model_forward(NULL, &batch, &logits, NULL), TLM_E_INVALID);
    assert_null(logits);
    assert_message_names("tlm_model_forward");
    tlm_model *quantized = (tlm_model *)&config;
    assert_int_equal(tlm_model_quantize(&quantized, NULL, TLM_WEIGHTS_INT8), TLM_E_INVALID);
    assert_null(quantized);
    assert_message_names("tlm_model_quantize");
    assert_int_equal(tlm_model_quantize(NULL, NULL, TLM_WEIGHTS_INT8), TLM_E_INVALID);
    assert_int_equal(tlm_model_weight_format(NULL), -1);
    assert_message_names("tlm_model_weight_format");
}

static void model_calls_reject_bad_values(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 11;
    config.d_model = 8;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 4;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &config), TLM_OK);
    tlm_tensor *t = NULL;
    const char *name = NULL;
    int32_t count = tlm_model_parameter_tensor_count(m);
    assert_int_equal(tlm_model_parameter(m, -1, &name, &t), TLM_E_RANGE);
    assert_int_equal(tlm_model_parameter(m, count, &name, &t), TLM_E_RANGE);
    assert_message_names("index");
    assert_int_equal(tlm_model_parameter(m, 0, NULL, NULL), TLM_OK);
    assert_int_equal(tlm_model_find_parameter(m, NULL, &t), TLM_E_INVALID);
    assert_int_equal(tlm_model_find_parameter(m, "nope.weight", &t), TLM_E_RANGE);
    assert_null(t);
    assert_message_names("nope.weight");
    assert_int_equal(tlm_model_find_parameter(m, "token_embedding.weight", NULL), TLM_E_INVALID);
    assert_int_equal(tlm_model_get_config(m, NULL), TLM_E_INVALID);
    tlm_model_config small;
    small.struct_size = 0;
    assert_int_equal(tlm_model_get_config(m, &small), TLM_E_INVALID);
    assert_message_names("struct_size");
    /* An older caller's shorter struct gets the fields it knows. */
    small.struct_size = offsetof(tlm_model_config, n_heads);
    assert_int_equal(tlm_model_get_config(m, &small), TLM_OK);
    assert_int_equal(small.d_model, 8);
    assert_int_equal(small.struct_size, offsetof(tlm_model_config, n_heads));
    /* n_kv_heads 0 resolves to n_heads. */
    tlm_model_config got;
    tlm_model_config_init(&got);
    assert_int_equal(tlm_model_get_config(m, &got), TLM_OK);
    assert_int_equal(got.n_kv_heads, 2);
    tlm_model_free(m);
    /* n_kv_heads must divide n_heads: negative, above it, not dividing. */
    config.n_heads = 4;
    const int32_t bad_kv[] = {-1, 5, 3, 8};
    for (size_t i = 0; i < sizeof bad_kv / sizeof bad_kv[0]; i++) {
        config.n_kv_heads = bad_kv[i];
        m = NOT_NULL_MODEL;
        assert_int_equal(tlm_model_create(&m, ctx, &config), TLM_E_INVALID);
        assert_null(m);
        char want[64];
        snprintf(want, sizeof want, "n_kv_heads = %d", (int)bad_kv[i]);
        assert_message_names(want);
        assert_message_names("n_heads = 4");
    }
    config.n_kv_heads = 1;
    assert_int_equal(tlm_model_create(&m, ctx, &config), TLM_OK);
    tlm_model_free(m);
    config.n_heads = 2;
    config.n_kv_heads = 0;
    tlm_model_load_params params;
    tlm_model_load_params_init(&params);
    params.memory_map = 2;
    tlm_model *loaded = NULL;
    assert_int_equal(tlm_model_load(&loaded, ctx, "x.tlm", &params), TLM_E_INVALID);
    assert_message_names("memory_map");
    /* Weight formats: an unknown one; a float32 model's is F32. */
    assert_int_equal(tlm_model_create(&m, ctx, &config), TLM_OK);
    assert_int_equal(tlm_model_weight_format(m), TLM_WEIGHTS_F32);
    const int32_t bad_formats[] = {-1, 3, 100};
    for (size_t i = 0; i < sizeof bad_formats / sizeof bad_formats[0]; i++) {
        loaded = NOT_NULL_MODEL;
        assert_int_equal(tlm_model_quantize(&loaded, m, bad_formats[i]), TLM_E_INVALID);
        assert_null(loaded);
        assert_message_names("tlm_weight_format");
    }
    tlm_model_free(m);
    tlm_context_free(ctx);
}

static void session_calls_reject_null(void **state) {
    (void)state;
    int32_t ids[2] = {0, 1};
    float logits[2];
    tlm_session *s = (tlm_session *)ids;
    assert_int_equal(tlm_session_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_session_params_init");
    assert_int_equal(tlm_session_create(&s, NULL, NULL), TLM_E_INVALID);
    assert_null(s);
    assert_message_names("tlm_session_create");
    assert_int_equal(tlm_session_create(NULL, NULL, NULL), TLM_E_INVALID);
    tlm_session_free(NULL);
    assert_int_equal(tlm_session_reset(NULL), TLM_E_INVALID);
    assert_message_names("tlm_session_reset");
    assert_true(tlm_session_position(NULL) < 0);
    assert_message_names("tlm_session_position");
    assert_int_equal(tlm_session_encode(NULL, ids, 2, NULL, NULL), TLM_E_INVALID);
    assert_message_names("tlm_session_encode");
    assert_int_equal(tlm_session_decode(NULL, ids, 2, logits, 1), TLM_E_INVALID);
    assert_message_names("tlm_session_decode");
    assert_non_null(strstr(tlm_session_last_error(NULL), "NULL"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(model_calls_reject_null),
        cmocka_unit_test(model_calls_reject_bad_values),
        cmocka_unit_test(session_calls_reject_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
