/* The communicator (tlm_comm_*) and tlm_trainer_allreduce_time called with
 * NULL handles and invalid settings, in builds with and without MPI. No
 * call here initialises MPI: they all fail before that. */
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

static void comm_calls(void **state) {
    (void)state;
    assert_int_equal(tlm_comm_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_comm_params_init");
    tlm_comm_params params;
    assert_int_equal(tlm_comm_params_init(&params), TLM_OK);
    assert_int_equal(params.struct_size, sizeof params);
    assert_int_equal(params.init_mpi, 1);
    assert_int_equal(params.finalize_mpi, 1);
    assert_int_equal(params.bucket_bytes, 4 << 20);

    assert_int_equal(tlm_comm_create_world(NULL, &params), TLM_E_INVALID);
    assert_message_names("tlm_comm_create_world");
    tlm_comm *comm = (tlm_comm *)&params;
    const int available = tlm_comm_available();
    assert_true(available == 0 || available == 1);
    const int32_t bad_sizes[2] = {0, 3};
    for (int i = 0; i < 2; i++) { /* never reaches MPI_Init */
        params.bucket_bytes = bad_sizes[i];
        assert_int_equal(tlm_comm_create_world(&comm, &params),
                         available ? TLM_E_INVALID : TLM_E_UNSUPPORTED);
        assert_null(comm);
        assert_message_names(available ? "bucket_bytes" : "without MPI");
    }
    tlm_comm_params_init(&params);
    params.init_mpi = 2;
    assert_int_equal(tlm_comm_create_world(&comm, &params),
                     available ? TLM_E_INVALID : TLM_E_UNSUPPORTED);
    tlm_comm_params_init(&params);
    params.finalize_mpi = -1;
    assert_int_equal(tlm_comm_create_world(&comm, &params),
                     available ? TLM_E_INVALID : TLM_E_UNSUPPORTED);
    params.struct_size = 0;
    assert_int_equal(tlm_comm_create_world(&comm, &params),
                     available ? TLM_E_INVALID : TLM_E_UNSUPPORTED);

    assert_true(tlm_comm_rank(NULL) == TLM_E_INVALID);
    assert_message_names("tlm_comm_rank");
    assert_true(tlm_comm_size(NULL) == TLM_E_INVALID);
    assert_message_names("tlm_comm_size");
    int32_t any = 5;
    assert_int_equal(tlm_comm_any(NULL, 1, &any), TLM_E_INVALID);
    assert_message_names("tlm_comm_any");
    assert_int_equal(tlm_comm_any(NULL, 1, NULL), TLM_E_INVALID);
    assert_non_null(strstr(tlm_comm_last_error(NULL), "NULL"));
    tlm_comm_free(NULL);

    double last = -1, total = -1;
    assert_int_equal(tlm_trainer_allreduce_time(NULL, &last, &total), TLM_E_INVALID);
    assert_message_names("tlm_trainer_allreduce_time");
}

/* A trainer without a communicator spends no time in allreduce, and a
 * trainer's settings carry the communicator at their end. */
static void trainer_without_comm(void **state) {
    (void)state;
    tlm_trainer_params tp;
    assert_int_equal(tlm_trainer_params_init(&tp), TLM_OK);
    assert_null(tp.comm);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 5;
    c.d_model = 8;
    c.n_heads = 2;
    c.n_encoder_layers = 0;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *model = NULL;
    assert_int_equal(tlm_model_create(&model, ctx, &c), TLM_OK);
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = i % 5;
    tlm_dataset *data = NULL;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.25f;
    assert_int_equal(tlm_dataset_from_ids(&data, ctx, ids, 64, &dp), TLM_OK);
    tp.batch_size = 2;
    tlm_trainer *trainer = NULL;
    assert_int_equal(tlm_trainer_create(&trainer, model, data, &tp), TLM_OK);
    assert_int_equal(tlm_trainer_step(trainer, NULL), TLM_OK);
    double last = -1, total = -1;
    assert_int_equal(tlm_trainer_allreduce_time(trainer, &last, &total), TLM_OK);
    assert_true(last == 0 && total == 0);
    assert_int_equal(tlm_trainer_allreduce_time(trainer, NULL, NULL), TLM_OK);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(comm_calls),
        cmocka_unit_test(trainer_without_comm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
