/* Datasets and trainers called with NULL handles and invalid values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *word) {
    if (strstr(tlm_last_error(), word) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), word);
}

static void dataset_calls(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int32_t ids[6] = {1, 2, 3, 4, 5, 6};
    const int64_t offsets[5] = {0, 1, 3, 4, 6};
    tlm_dataset *ds = (tlm_dataset *)ctx;
    assert_int_equal(tlm_dataset_from_ids(&ds, NULL, ids, 6, NULL), TLM_E_INVALID);
    assert_null(ds);
    assert_message_names("tlm_dataset_from_ids");
    assert_int_equal(tlm_dataset_from_ids(NULL, ctx, ids, 6, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_dataset_from_ids(&ds, ctx, NULL, 6, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_dataset_from_ids(&ds, ctx, ids, 0, NULL), TLM_E_INVALID);
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 1.0f;
    assert_int_equal(tlm_dataset_from_ids(&ds, ctx, ids, 6, &dp), TLM_E_INVALID);
    assert_message_names("validation_fraction");
    dp.validation_fraction = NAN;
    assert_int_equal(tlm_dataset_from_ids(&ds, ctx, ids, 6, &dp), TLM_E_INVALID);
    const int32_t negative[2] = {1, -4};
    assert_int_equal(tlm_dataset_from_ids(&ds, ctx, negative, 2, NULL), TLM_E_RANGE);
    assert_message_names("ids[1]");
    assert_int_equal(tlm_dataset_from_pairs(&ds, NULL, ids, offsets, 2, NULL), TLM_E_INVALID);
    assert_message_names("tlm_dataset_from_pairs");
    assert_int_equal(tlm_dataset_from_pairs(&ds, ctx, ids, NULL, 2, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_dataset_from_pairs(&ds, ctx, ids, offsets, 0, NULL), TLM_E_INVALID);
    const int64_t bad_offsets[5] = {0, 2, 2, 4, 6}; /* an empty target */
    assert_int_equal(tlm_dataset_from_pairs(&ds, ctx, ids, bad_offsets, 2, NULL), TLM_E_INVALID);
    assert_message_names("pair 0");
    dp.validation_fraction = 0.5f;
    assert_int_equal(tlm_dataset_from_pairs(&ds, ctx, ids, offsets, 2, &dp), TLM_OK);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_TRAIN), 1);
    assert_int_equal(tlm_dataset_size(ds, TLM_SPLIT_VALIDATION), 1);
    assert_int_equal(tlm_dataset_size(ds, 7), TLM_E_INVALID);
    assert_int_equal(tlm_dataset_size(NULL, TLM_SPLIT_TRAIN), TLM_E_INVALID);
    assert_message_names("tlm_dataset_size");
    tlm_dataset_free(ds);
    tlm_dataset_free(NULL);
    assert_int_equal(tlm_dataset_from_text_file(&ds, NULL, "x.txt", NULL, NULL), TLM_E_INVALID);
    assert_message_names("tlm_dataset_from_text_file");
    assert_int_equal(tlm_dataset_from_text_file(NULL, ctx, "x.txt", NULL, NULL), TLM_E_INVALID);
    tlm_context_free(ctx);
}

static void trainer_calls(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 10;
    c.d_model = 8;
    c.n_heads = 2;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    int32_t ids[40];
    for (int i = 0; i < 40; i++)
        ids[i] = i % 10;
    tlm_dataset *ds = NULL, *tiny = NULL;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.25f;
    assert_int_equal(tlm_dataset_from_ids(&ds, ctx, ids, 40, &dp), TLM_OK);
    dp.validation_fraction = 0.0f;
    assert_int_equal(tlm_dataset_from_ids(&tiny, ctx, ids, 4, &dp), TLM_OK);

    assert_int_equal(tlm_dataset_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_dataset_params_init");
    assert_int_equal(tlm_step_info_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_step_info_init");
    assert_int_equal(tlm_trainer_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_trainer_params_init");
    tlm_trainer *t = (tlm_trainer *)ctx;
    assert_int_equal(tlm_trainer_create(&t, NULL, ds, NULL), TLM_E_INVALID);
    assert_null(t);
    assert_message_names("tlm_trainer_create");
    assert_int_equal(tlm_trainer_create(NULL, m, ds, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_trainer_create(&t, m, NULL, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_trainer_create(&t, m, tiny, NULL), TLM_E_RANGE); /* < T + 1 */
    assert_message_names("context + 1");
    tlm_trainer_params p;
    tlm_trainer_params_init(&p);
    p.batch_size = 0;
    assert_int_equal(tlm_trainer_create(&t, m, ds, &p), TLM_E_INVALID);
    assert_message_names("batch_size");
    tlm_trainer_params_init(&p);
    p.context = 5;
    assert_int_equal(tlm_trainer_create(&t, m, ds, &p), TLM_E_INVALID);
    assert_message_names("context");
    tlm_trainer_params_init(&p);
    p.grad_clip = -1;
    assert_int_equal(tlm_trainer_create(&t, m, ds, &p), TLM_E_INVALID);
    tlm_trainer_params_init(&p);
    p.max_grad_norm = -1;
    assert_int_equal(tlm_trainer_create(&t, m, ds, &p), TLM_E_INVALID);
    assert_message_names("max_grad_norm");
    p.max_grad_norm = NAN;
    assert_int_equal(tlm_trainer_create(&t, m, ds, &p), TLM_E_INVALID);
    tlm_trainer_params_init(&p);
    p.accumulation = 0;
    assert_int_equal(tlm_trainer_create(&t, m, ds, &p), TLM_E_INVALID);
    assert_null(t);

    assert_int_equal(tlm_trainer_create(&t, m, ds, NULL), TLM_OK);
    float loss = 0;
    tlm_step_info info;
    info.struct_size = 0;
    assert_int_equal(tlm_trainer_step(NULL, NULL), TLM_E_INVALID);
    assert_message_names("tlm_trainer_step");
    assert_int_equal(tlm_trainer_step(t, &info), TLM_E_INVALID);
    assert_int_equal(tlm_trainer_evaluate(NULL, TLM_SPLIT_TRAIN, 1, &loss), TLM_E_INVALID);
    assert_message_names("tlm_trainer_evaluate");
    assert_int_equal(tlm_trainer_evaluate(t, 3, 1, &loss), TLM_E_INVALID);
    assert_int_equal(tlm_trainer_evaluate(t, TLM_SPLIT_TRAIN, 0, &loss), TLM_E_INVALID);
    assert_int_equal(tlm_trainer_evaluate(t, TLM_SPLIT_TRAIN, 1, NULL), TLM_E_INVALID);
    assert_int_equal(tlm_trainer_evaluate_seeded(NULL, TLM_SPLIT_TRAIN, 1, 5, &loss),
                     TLM_E_INVALID);
    assert_message_names("tlm_trainer_evaluate_seeded");
    assert_int_equal(tlm_trainer_evaluate_seeded(t, 3, 1, 5, &loss), TLM_E_INVALID);
    assert_string_equal(tlm_trainer_last_error(t),
                        "tlm_trainer_evaluate_seeded: split 3 is not a tlm_split");
    assert_int_equal(tlm_trainer_evaluate_seeded(t, TLM_SPLIT_TRAIN, 0, 5, &loss),
                     TLM_E_INVALID);
    assert_int_equal(tlm_trainer_evaluate_seeded(t, TLM_SPLIT_TRAIN, 1, 5, NULL),
                     TLM_E_INVALID);
    assert_true(tlm_trainer_step_count(NULL) < 0);
    assert_message_names("tlm_trainer_step_count");
    assert_int_equal(tlm_trainer_save(NULL, "x.tlm"), TLM_E_INVALID);
    assert_message_names("tlm_trainer_save");
    assert_int_equal(tlm_trainer_resume(NULL, "x.tlm"), TLM_E_INVALID);
    assert_message_names("tlm_trainer_resume");
    assert_int_equal(tlm_trainer_resume(t, "/nonexistent/x.tlm"), TLM_E_IO);
    assert_non_null(strstr(tlm_trainer_last_error(t), "x.tlm"));
    assert_non_null(strstr(tlm_trainer_last_error(NULL), "NULL"));
    tlm_trainer_free(t);
    tlm_trainer_free(NULL);
    tlm_dataset_free(ds);
    tlm_dataset_free(tiny);
    tlm_model_free(m);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(dataset_calls),
        cmocka_unit_test(trainer_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
