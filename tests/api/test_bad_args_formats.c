/* tlm_model_import / tlm_model_export and their settings with NULL
 * handles and invalid arguments: a status and a message naming the call
 * and the argument, nothing written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *what) {
    if (strstr(tlm_last_error(), what) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), what);
}

static tlm_model *small_model(tlm_context *ctx, int32_t position) {
    tlm_model_config config;
    tlm_model_config_init(&config);
    config.vocab_size = 11;
    config.d_model = 8;
    config.n_heads = 2;
    config.n_decoder_layers = 1;
    config.max_context = 4;
    config.position = position;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &config), TLM_OK);
    return m;
}

static void import_export_reject_null(void **state) {
    (void)state;
    assert_int_equal(tlm_model_import_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_model_import_params_init");
    assert_int_equal(tlm_model_export_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_model_export_params_init");
    tlm_model_import_params ip;
    assert_int_equal(tlm_model_import_params_init(&ip), TLM_OK);
    assert_int_equal(ip.struct_size, sizeof ip);
    assert_int_equal(ip.format, TLM_MODEL_FORMAT_AUTO);
    assert_null(ip.config_path);
    assert_null(ip.config);
    tlm_model_export_params ep;
    assert_int_equal(tlm_model_export_params_init(&ep), TLM_OK);
    assert_int_equal(ep.format, TLM_MODEL_FORMAT_AUTO);
    assert_int_equal(ep.weight_type, TLM_WEIGHT_F32);

    tlm_model *m = (tlm_model *)&ip;
    assert_int_equal(tlm_model_import(&m, NULL, "x", NULL), TLM_E_INVALID);
    assert_null(m);
    assert_message_names("tlm_model_import");
    assert_message_names("ctx");
    assert_int_equal(tlm_model_import(NULL, NULL, NULL, NULL), TLM_E_INVALID);
    assert_message_names("out");
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    m = (tlm_model *)&ip;
    assert_int_equal(tlm_model_import(&m, ctx, NULL, NULL), TLM_E_INVALID);
    assert_null(m);
    assert_message_names("path");
    assert_int_equal(tlm_model_export(NULL, "x", &ep), TLM_E_INVALID);
    assert_message_names("tlm_model_export");
    tlm_model *model = small_model(ctx, TLM_POSITION_LEARNED);
    ep.format = TLM_MODEL_FORMAT_LLMC;
    assert_int_equal(tlm_model_export(model, NULL, &ep), TLM_E_INVALID);
    assert_message_names("path");
    tlm_model_free(model);
    tlm_context_free(ctx);
}

static void import_export_reject_bad_values(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model *model = small_model(ctx, TLM_POSITION_LEARNED);
    tlm_model_export_params ep;
    tlm_model_export_params_init(&ep);
    /* AUTO (the default) is for import only. */
    assert_int_equal(tlm_model_export(model, "never.bin", NULL), TLM_E_INVALID);
    assert_message_names("params.format");
    ep.format = 9;
    assert_int_equal(tlm_model_export(model, "never.bin", &ep), TLM_E_INVALID);
    assert_message_names("params.format");
    ep.format = TLM_MODEL_FORMAT_HF;
    ep.weight_type = 3;
    assert_int_equal(tlm_model_export(model, "never.bin", &ep), TLM_E_INVALID);
    assert_message_names("params.weight_type");
    ep.format = TLM_MODEL_FORMAT_LLMC;
    ep.weight_type = TLM_WEIGHT_F16;
    assert_int_equal(tlm_model_export(model, "never.bin", &ep), TLM_E_UNSUPPORTED);
    assert_message_names("float16");
    ep.format = TLM_MODEL_FORMAT_LLAMA2C;
    ep.weight_type = TLM_WEIGHT_F32; /* a GPT-2: llama2.c cannot hold it */
    assert_int_equal(tlm_model_export(model, "never.bin", &ep), TLM_E_UNSUPPORTED);
    assert_message_names("position");
    ep.weight_type = TLM_WEIGHT_F16;
    assert_int_equal(tlm_model_export(model, "never.bin", &ep), TLM_E_UNSUPPORTED);
    assert_message_names("float32");
    ep.format = TLM_MODEL_FORMAT_TLM;
    ep.weight_type = TLM_WEIGHT_BF16;
    assert_int_equal(tlm_model_export(model, "never.bin", &ep), TLM_E_UNSUPPORTED);
    assert_int_equal(access("never.bin", F_OK), -1);
    /* A settings struct from a newer header with an unknown field set. */
    struct {
        tlm_model_export_params known;
        int64_t later;
    } newer;
    memset(&newer, 0, sizeof newer);
    tlm_model_export_params_init(&newer.known);
    newer.known.struct_size = sizeof newer;
    newer.known.format = TLM_MODEL_FORMAT_LLMC;
    newer.later = 1;
    assert_int_equal(tlm_model_export(model, "never.bin", &newer.known),
                     TLM_E_UNSUPPORTED);
    assert_int_equal(access("never.bin", F_OK), -1);
    tlm_model_free(model);

    tlm_model_import_params ip;
    tlm_model_import_params_init(&ip);
    ip.format = -1;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_import(&m, ctx, "x", &ip), TLM_E_INVALID);
    assert_message_names("params.format");
    ip.format = 6; /* one past TLM_MODEL_FORMAT_LLAMA2C */
    assert_int_equal(tlm_model_import(&m, ctx, "x", &ip), TLM_E_INVALID);
    assert_null(m);
    assert_message_names("0..5");
    /* The llama2.c reader with a bad path, and its export with NULL. */
    ip.format = TLM_MODEL_FORMAT_LLAMA2C;
    assert_int_equal(tlm_model_import(&m, ctx, "/nonexistent/model.bin", &ip),
                     TLM_E_IO);
    assert_message_names("/nonexistent/model.bin");
    assert_null(m);
    ip.config_path = "config.json"; /* Hugging Face only */
    assert_int_equal(tlm_model_import(&m, ctx, "x", &ip), TLM_E_INVALID);
    assert_message_names("llama2.c");
    ip.config_path = NULL;
    ip.format = TLM_MODEL_FORMAT_AUTO;
    assert_int_equal(tlm_model_import(&m, ctx, "/nonexistent/model", &ip), TLM_E_IO);
    assert_message_names("/nonexistent/model");
    assert_null(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(import_export_reject_null),
        cmocka_unit_test(import_export_reject_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
