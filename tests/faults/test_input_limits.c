/*
 * Suite "faults": inputs at and past their limits get a status and a
 * message naming the call, never a crash: token ids out of range, prompts
 * longer than the context, sizes whose product overflows size_t (tensors,
 * model configurations, datasets), zero sizes, and paths that do not
 * exist, are directories or are empty files, for every loader and saver.
 * Memory comes from a hook that refuses anything above 256 MB, as a host
 * with a memory budget would.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "temp_dir.h"
#include "tiny_model.h"
#include "tlm.h"

#define BUDGET ((size_t)256 << 20)

static counting_allocator counter;

static void *budget_alloc(void *user, size_t size, size_t alignment) {
    if (size > BUDGET)
        return NULL;
    return counting_alloc(user, size, alignment);
}

static char dir[512];
static tlm_context *ctx;
static tlm_model *model;      /* decoder-only, byte tokenizer attached */
static tlm_tokenizer *bytes;  /* the attached tokenizer */

/* The status must be `expected` and the message (from `message`, or the
 * thread's when NULL) must name `who`. */
static void expect_(int status, int expected, const char *message,
                    const char *who, const char *call, int line) {
    if (message == NULL)
        message = tlm_last_error();
    if (status != expected)
        fail_msg("line %d: %s returned %s, expected %s (%s)", line, call,
                 tlm_status_name(status), tlm_status_name(expected), message);
    if (strstr(message, who) == NULL)
        fail_msg("line %d: %s: message \"%s\" does not name %s", line, call,
                 message, who);
}
#define EXPECT(call, expected, message, who) \
    expect_((call), (expected), (message), (who), #call, __LINE__)

static int setup(void **state) {
    (void)state;
    if (temp_dir_create(dir, sizeof dir) != 0)
        return -1;
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.alloc_fn = budget_alloc;
    cp.free_fn = counting_free;
    cp.alloc_user = &counter;
    cp.n_threads = 1;
    if (tlm_context_create(&ctx, &cp) != TLM_OK)
        return -1;
    if (tiny_byte_model_create(&model, ctx) != TLM_OK)
        return -1;
    bytes = tlm_model_tokenizer(model);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tlm_model_free(model);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
    return counter.live_bytes == 0 ? 0 : -1;
}

static void token_ids_out_of_range(void **state) {
    (void)state;
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, model, NULL), TLM_OK);
    float logits[259] = {0};
    const int32_t bad[3][2] = {{1, -1}, {1, 259}, {INT32_MAX, 2}};
    for (int i = 0; i < 3; i++)
        EXPECT(tlm_session_decode(s, bad[i], 2, logits, 1), TLM_E_RANGE,
               tlm_session_last_error(s), "tlm_session_decode");
    assert_int_equal(tlm_session_position(s), 0); /* nothing consumed */
    char text[8];
    size_t length = 0;
    EXPECT(tlm_tokenizer_decode(bytes, bad[1], 2, text, sizeof text, &length),
           TLM_E_RANGE, tlm_tokenizer_last_error(bytes), "tlm_tokenizer_decode");
    const char *piece;
    EXPECT(tlm_tokenizer_token_bytes(bytes, -5, &piece, &length), TLM_E_RANGE,
           tlm_tokenizer_last_error(bytes), "tlm_tokenizer_token_bytes");
    tlm_token_stream *stream = NULL;
    assert_int_equal(tlm_token_stream_create(&stream, bytes), TLM_OK);
    EXPECT(tlm_token_stream_push(stream, 100000, &piece, &length), TLM_E_RANGE,
           tlm_token_stream_last_error(stream), "tlm_token_stream_push");
    tlm_token_stream_free(stream);
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, ctx, NULL), TLM_OK);
    EXPECT(tlm_sampler_accept(sampler, -1), TLM_E_RANGE,
           tlm_sampler_last_error(sampler), "tlm_sampler_accept");
    /* A token in the history beyond the vocabulary of the logits. */
    assert_int_equal(tlm_sampler_accept(sampler, 1000), TLM_OK);
    tlm_sampler_free(sampler);
    tlm_sampler_params sp;
    tlm_sampler_params_init(&sp);
    sp.repetition_penalty = 1.5f;
    assert_int_equal(tlm_sampler_create(&sampler, ctx, &sp), TLM_OK);
    assert_int_equal(tlm_sampler_accept(sampler, 1000), TLM_OK);
    int32_t token = 0;
    EXPECT(tlm_sampler_sample(sampler, logits, 259, &token, NULL), TLM_E_RANGE,
           tlm_sampler_last_error(sampler), "tlm_sampler_sample");
    assert_int_equal(token, -1);
    tlm_sampler_free(sampler);
    tlm_session_free(s);
}

static void prompts_longer_than_the_context(void **state) {
    (void)state;
    tlm_session *s = NULL;
    assert_int_equal(tlm_session_create(&s, model, NULL), TLM_OK);
    int32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    EXPECT(tlm_session_decode(s, ids, 9, NULL, 0), TLM_E_RANGE,
           tlm_session_last_error(s), "tlm_session_decode");
    assert_int_equal(tlm_session_decode(s, ids, 8, NULL, 0), TLM_OK);
    EXPECT(tlm_session_decode(s, ids, 1, NULL, 0), TLM_E_RANGE,
           tlm_session_last_error(s), "tlm_session_decode"); /* cache full */
    assert_int_equal(tlm_session_position(s), 8);
    EXPECT(tlm_session_decode(s, ids, INT32_MAX, NULL, 0), TLM_E_RANGE,
           tlm_session_last_error(s), "tlm_session_decode");
    /* Generation keeps the prompt's last max_context - 1 tokens. */
    tlm_sampler *sampler = NULL;
    assert_int_equal(tlm_sampler_create(&sampler, ctx, NULL), TLM_OK);
    static char prompt[100000];
    memset(prompt, 'a', sizeof prompt);
    tlm_generate_params gp;
    tlm_generate_params_init(&gp);
    gp.max_tokens = 3;
    gp.stop_at_eos = 0;
    int32_t produced = 0;
    assert_int_equal(tlm_generate(s, sampler, bytes, prompt, sizeof prompt, &gp,
                                  &produced), TLM_OK);
    assert_int_equal(produced, 3);
    /* An empty prompt has no token to continue. */
    EXPECT(tlm_generate(s, sampler, bytes, "", 0, &gp, &produced), TLM_E_INVALID,
           tlm_session_last_error(s), "tlm_generate");
    tlm_sampler_free(sampler);
    tlm_session_free(s);
}

static void enormous_and_zero_sizes(void **state) {
    (void)state;
    tlm_tensor *t = NULL;
    /* Products that overflow size_t (and int64). */
    const int64_t huge[3][4] = {
        {INT64_MAX, 2, 1, 1},
        {(int64_t)1 << 32, (int64_t)1 << 32, 4, 1},
        {(int64_t)1 << 62, 1, 1, 1},
    };
    for (int i = 0; i < 3; i++) {
        int status = tlm_tensor_create(&t, ctx, 0, 4, huge[i]);
        if (status != TLM_E_OVERFLOW && status != TLM_E_INVALID &&
            status != TLM_E_NOMEM)
            fail_msg("tensor %d: %s (%s)", i, tlm_status_name(status),
                     tlm_last_error());
        assert_null(t);
        assert_non_null(strstr(tlm_last_error(), "tlm_tensor_create"));
    }
    const int64_t zero[2] = {0, 5};
    const int64_t negative[2] = {3, -5};
    EXPECT(tlm_tensor_create(&t, ctx, 0, 2, negative), TLM_E_INVALID, NULL,
           "tlm_tensor_create");
    int status = tlm_tensor_create(&t, ctx, 0, 2, zero);
    if (status == TLM_OK) {
        assert_int_equal(tlm_tensor_numel(t), 0);
        tlm_tensor_free(t);
    } else {
        assert_non_null(strstr(tlm_last_error(), "tlm_tensor_create"));
    }

    /* Model configurations: each size at its limit or past it. */
    tlm_model_config c;
    tlm_model *m = NULL;
    struct {
        int32_t vocab, d_model, heads, d_ff, layers, context;
        int expected;
    } configs[] = {
        {0, 16, 2, 0, 1, 8, TLM_E_INVALID},
        {16777217, 16, 2, 0, 1, 8, TLM_E_INVALID},
        {259, 0, 2, 0, 1, 8, TLM_E_INVALID},
        {259, 16, 0, 0, 1, 8, TLM_E_INVALID},
        {259, 16, 2, -1, 1, 8, TLM_E_INVALID},
        {259, 16, 2, 0, 0, 8, TLM_E_INVALID},
        {259, 16, 2, 0, 1, 0, TLM_E_INVALID},
        {259, 16, 2, 0, 1, INT32_MAX, TLM_E_INVALID},
        {259, INT32_MAX, 1, 0, 1, 8, TLM_E_INVALID},
        {259, 16, 2, INT32_MAX, 1, 8, -1},
        {259, 16, 2, 0, INT32_MAX, 8, -1},
        {16777216, 65536, 1, 0, 1, 8, -1}, /* 2^40 embedding values */
    };
    for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++) {
        tlm_model_config_init(&c);
        c.vocab_size = configs[i].vocab;
        c.d_model = configs[i].d_model;
        c.n_heads = configs[i].heads;
        c.d_ff = configs[i].d_ff;
        c.n_decoder_layers = configs[i].layers;
        c.max_context = configs[i].context;
        status = tlm_model_create(&m, ctx, &c);
        assert_null(m);
        if (configs[i].expected >= 0 ? status != configs[i].expected
                                     : status == TLM_OK)
            fail_msg("config %zu: %s (%s)", i, tlm_status_name(status),
                     tlm_last_error());
        if (strstr(tlm_last_error(), "tlm_model_create") == NULL)
            fail_msg("config %zu: \"%s\"", i, tlm_last_error());
    }
    assert_int_equal(tlm_model_parameter_count(model) > 0, 1);

    /* Datasets: negative, zero and enormous counts. */
    tlm_dataset *data = NULL;
    int32_t ids[4] = {1, 2, 3, 4};
    /* A negative count converted to size_t: the largest possible. */
    EXPECT(tlm_dataset_from_ids(&data, ctx, ids, (size_t)-1, NULL),
           TLM_E_INVALID, NULL, "tlm_dataset_from_ids");
    status = tlm_dataset_from_ids(&data, ctx, ids, (size_t)INT64_MAX, NULL);
    assert_true(status == TLM_E_OVERFLOW || status == TLM_E_INVALID ||
                status == TLM_E_NOMEM);
    assert_non_null(strstr(tlm_last_error(), "tlm_dataset_from_ids"));
    assert_null(data);
    status = tlm_dataset_from_ids(&data, ctx, ids, 0, NULL);
    if (status == TLM_OK)
        tlm_dataset_free(data);
    else
        assert_non_null(strstr(tlm_last_error(), "tlm_dataset_from_ids"));
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 1.0f;
    EXPECT(tlm_dataset_from_ids(&data, ctx, ids, 4, &dp), TLM_E_INVALID, NULL,
           "tlm_dataset_from_ids");
    int64_t offsets[3] = {0, 2, 1}; /* decreasing */
    EXPECT(tlm_dataset_from_pairs(&data, ctx, ids, offsets, 1, NULL),
           TLM_E_INVALID, NULL, "tlm_dataset_from_pairs");
    EXPECT(tlm_dataset_from_pairs(&data, ctx, ids, offsets, INT64_MAX, NULL),
           TLM_E_INVALID, NULL, "tlm_dataset_from_pairs");

    /* Tokenizers: an empty image, an empty text, a huge BPE vocabulary. */
    tlm_tokenizer *tok = NULL;
    EXPECT(tlm_tokenizer_load_memory(&tok, ctx, NULL, 0), TLM_E_FORMAT, NULL,
           "tlm_tokenizer_load");
    size_t n_ids = 99;
    assert_int_equal(tlm_tokenizer_encode(bytes, NULL, 0, NULL, 0, &n_ids), TLM_OK);
    assert_int_equal(n_ids, 0);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.vocab_size = INT32_MAX;
    EXPECT(tlm_tokenizer_train(&tok, ctx, "ab", 2, &tp), TLM_E_INVALID, NULL,
           "tlm_tokenizer_train");
}

static void bad_paths_for_every_loader_and_saver(void **state) {
    (void)state;
    char missing[700], nested[700], empty[700], slash[700];
    snprintf(missing, sizeof missing, "%s/missing.tlm", dir);
    snprintf(nested, sizeof nested, "%s/no/such/dir/file", dir);
    snprintf(empty, sizeof empty, "%s/empty", dir);
    snprintf(slash, sizeof slash, "%s/", dir);
    assert_int_equal(write_whole_file(empty, "", 0), 0);
    tlm_model *m = NULL;
    tlm_tokenizer *tok = NULL;
    tlm_model_load_params lp;
    tlm_model_load_params_init(&lp);
    for (int map = 0; map < 2; map++) {
        lp.memory_map = map;
        EXPECT(tlm_model_load(&m, ctx, missing, &lp), TLM_E_IO,
               tlm_context_last_error(ctx), "missing.tlm");
        EXPECT(tlm_model_load(&m, ctx, dir, &lp), TLM_E_IO,
               tlm_context_last_error(ctx), "directory");
        EXPECT(tlm_model_load(&m, ctx, empty, &lp), TLM_E_FORMAT,
               tlm_context_last_error(ctx), "empty");
        EXPECT(tlm_model_load(&m, ctx, "/dev/null", &lp), TLM_E_IO,
               tlm_context_last_error(ctx), "/dev/null");
    }
    EXPECT(tlm_model_import_safetensors(&m, ctx, missing), TLM_E_IO,
           tlm_context_last_error(ctx), "missing.tlm");
    EXPECT(tlm_model_import_safetensors(&m, ctx, dir), TLM_E_IO,
           tlm_context_last_error(ctx), "directory");
    EXPECT(tlm_model_import_safetensors(&m, ctx, empty), TLM_E_FORMAT,
           tlm_context_last_error(ctx), "empty");
    EXPECT(tlm_tokenizer_load(&tok, ctx, missing), TLM_E_IO, NULL, "missing.tlm");
    EXPECT(tlm_tokenizer_load(&tok, ctx, dir), TLM_E_IO, NULL, "directory");
    EXPECT(tlm_tokenizer_load(&tok, ctx, empty), TLM_E_FORMAT, NULL, "empty");
    assert_null(m);
    assert_null(tok);

    /* Savers: into a missing directory, onto a directory, a path ending
     * in '/'; the directory is left as it was. */
    const char *targets[3] = {nested, dir, slash};
    const int statuses[3] = {TLM_E_IO, TLM_E_IO, TLM_E_INVALID};
    for (int i = 0; i < 3; i++) {
        EXPECT(tlm_model_save(model, targets[i]), statuses[i],
               tlm_context_last_error(ctx), targets[i]);
        EXPECT(tlm_model_export_safetensors(model, targets[i]), statuses[i],
               tlm_context_last_error(ctx), targets[i]);
        EXPECT(tlm_tokenizer_save(bytes, targets[i]), statuses[i],
               tlm_tokenizer_last_error(bytes), targets[i]);
    }
    tlm_dataset *data = NULL;
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = i;
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.25f;
    assert_int_equal(tlm_dataset_from_ids(&data, ctx, ids, 64, &dp), TLM_OK);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 2;
    params.context = 4;
    tlm_trainer *trainer = NULL;
    assert_int_equal(tlm_trainer_create(&trainer, model, data, &params), TLM_OK);
    for (int i = 0; i < 3; i++)
        EXPECT(tlm_trainer_save(trainer, targets[i]), statuses[i],
               tlm_trainer_last_error(trainer), targets[i]);
    EXPECT(tlm_trainer_resume(trainer, missing), TLM_E_IO,
           tlm_trainer_last_error(trainer), "missing.tlm");
    EXPECT(tlm_trainer_resume(trainer, dir), TLM_E_IO,
           tlm_trainer_last_error(trainer), "directory");
    EXPECT(tlm_trainer_resume(trainer, empty), TLM_E_FORMAT,
           tlm_trainer_last_error(trainer), "empty");
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    char names[256];
    assert_int_equal(temp_dir_count(dir, names, sizeof names), 1);
    assert_string_equal(names, "empty");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(token_ids_out_of_range),
        cmocka_unit_test(prompts_longer_than_the_context),
        cmocka_unit_test(enormous_and_zero_sizes),
        cmocka_unit_test(bad_paths_for_every_loader_and_saver),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
