/* The optimizer, clipping and schedule calls with NULL handles and invalid
 * arguments: the exact status, and a message that names the call (and the
 * field or index at fault). */
#include <math.h>
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

static void assert_both_name(const tlm_optimizer *opt, const char *function,
                             const char *what) {
    assert_message_names(function);
    assert_message_names(what);
    if (strstr(tlm_optimizer_last_error(opt), function) == NULL)
        fail_msg("handle message '%s' does not name %s",
                 tlm_optimizer_last_error(opt), function);
}

/* A call on a const optimizer records its failure only in the thread's
 * message: the handle's message is left as it was. */
static void assert_thread_only_names(const tlm_optimizer *opt, const char *function,
                                     const char *what) {
    assert_message_names(function);
    assert_message_names(what);
    if (strstr(tlm_optimizer_last_error(opt), function) != NULL)
        fail_msg("a const call wrote the handle message '%s'",
                 tlm_optimizer_last_error(opt));
}

/* A context with a float parameter [2, 2] and a float vector [2] that
 * require gradients. */
typedef struct fixture {
    tlm_context *ctx;
    tlm_tensor *params[2];
} fixture;

static void fixture_create(fixture *f) {
    assert_int_equal(tlm_context_create(&f->ctx, NULL), TLM_OK);
    const int64_t matrix[2] = {2, 2}, vector[1] = {2};
    assert_int_equal(tlm_tensor_create(&f->params[0], f->ctx, TLM_DTYPE_F32, 2, matrix), TLM_OK);
    assert_int_equal(tlm_tensor_create(&f->params[1], f->ctx, TLM_DTYPE_F32, 1, vector), TLM_OK);
    for (int i = 0; i < 2; i++)
        assert_int_equal(tlm_tensor_set_requires_grad(f->params[i], 1), TLM_OK);
}

static void optimizer_calls_reject_null(void **state) {
    (void)state;
    fixture f;
    fixture_create(&f);
    tlm_optimizer_params params;
    assert_int_equal(tlm_optimizer_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_params_init");
    assert_int_equal(tlm_optimizer_params_init_for(NULL, TLM_OPTIMIZER_SGD), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_params_init_for");
    assert_int_equal(tlm_optimizer_params_init(&params), TLM_OK);

    tlm_optimizer *opt = (tlm_optimizer *)&params;
    assert_int_equal(tlm_optimizer_create(NULL, f.params, 2, NULL), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_create");
    assert_int_equal(tlm_optimizer_create(&opt, NULL, 2, NULL), TLM_E_INVALID);
    assert_null(opt);
    assert_message_names("tlm_optimizer_create: tensors");
    tlm_tensor *with_null[2] = {f.params[0], NULL};
    assert_int_equal(tlm_optimizer_create(&opt, with_null, 2, NULL), TLM_E_INVALID);
    assert_message_names("tensors[1]");
    tlm_optimizer_free(NULL);
    assert_non_null(strstr(tlm_optimizer_last_error(NULL), "NULL"));
    assert_int_equal(tlm_optimizer_get_params(NULL, &params), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_get_params");
    assert_int_equal(tlm_optimizer_set_decay(NULL, 0, 1), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_set_decay");
    assert_true(tlm_optimizer_get_decay(NULL, 0) < 0);
    assert_message_names("tlm_optimizer_get_decay");
    assert_true(tlm_optimizer_step_count(NULL) < 0);
    assert_message_names("tlm_optimizer_step_count");
    assert_int_equal(tlm_optimizer_step(NULL, 0.1f), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_step");
    size_t size = 0;
    unsigned char buffer[64] = {0};
    assert_int_equal(tlm_optimizer_state_size(NULL, &size), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_state_size");
    assert_int_equal(tlm_optimizer_save_state(NULL, buffer, sizeof buffer), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_save_state");
    assert_int_equal(tlm_optimizer_load_state(NULL, buffer, sizeof buffer), TLM_E_INVALID);
    assert_message_names("tlm_optimizer_load_state");

    /* NULL pointers beside a live handle. */
    assert_int_equal(tlm_optimizer_create(&opt, f.params, 2, NULL), TLM_OK);
    assert_int_equal(tlm_optimizer_get_params(opt, NULL), TLM_E_INVALID);
    assert_thread_only_names(opt, "tlm_optimizer_get_params", "params");
    assert_int_equal(tlm_optimizer_state_size(opt, NULL), TLM_E_INVALID);
    assert_thread_only_names(opt, "tlm_optimizer_state_size", "size");
    assert_int_equal(tlm_optimizer_save_state(opt, NULL, 1000), TLM_E_INVALID);
    assert_thread_only_names(opt, "tlm_optimizer_save_state", "buffer");
    assert_int_equal(tlm_optimizer_load_state(opt, NULL, 1000), TLM_E_INVALID);
    assert_both_name(opt, "tlm_optimizer_load_state", "buffer");
    tlm_optimizer_free(opt);

    double norm = 1;
    assert_int_equal(tlm_clip_grad_norm(NULL, 2, 1.0f, &norm), TLM_E_INVALID);
    assert_message_names("tlm_clip_grad_norm");
    assert_true(norm == 0.0);
    assert_int_equal(tlm_clip_grad_norm(with_null, 2, 1.0f, &norm), TLM_E_INVALID);
    assert_message_names("tlm_clip_grad_norm: tensors[1]");

    float lr = 1;
    tlm_schedule_params schedule;
    assert_int_equal(tlm_schedule_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_schedule_params_init");
    assert_int_equal(tlm_schedule_params_init(&schedule), TLM_OK);
    assert_int_equal(tlm_schedule_lr(NULL, 0, &lr), TLM_E_INVALID);
    assert_message_names("tlm_schedule_lr");
    assert_int_equal(tlm_schedule_lr(&schedule, 0, NULL), TLM_E_INVALID);
    assert_message_names("tlm_schedule_lr: lr");
    tlm_context_free(f.ctx);
}

static void expect_create_fails(tlm_tensor *const *params, int32_t count,
                                const tlm_optimizer_params *settings,
                                int status, const char *what) {
    tlm_optimizer *opt = (tlm_optimizer *)&count;
    assert_int_equal(tlm_optimizer_create(&opt, params, count, settings), status);
    assert_null(opt);
    assert_message_names("tlm_optimizer_create");
    assert_message_names(what);
}

static void create_rejects_bad_settings(void **state) {
    (void)state;
    fixture f;
    fixture_create(&f);
    tlm_optimizer_params p;
    assert_int_equal(tlm_optimizer_params_init_for(&p, 2), TLM_E_INVALID);
    assert_message_names("kind 2");
    assert_int_equal(tlm_optimizer_params_init_for(&p, -1), TLM_E_INVALID);

#define BAD_ADAMW(field, value)                                    \
    do {                                                           \
        tlm_optimizer_params_init(&p);        \
        p.field = value;                                           \
        expect_create_fails(f.params, 2, &p, TLM_E_INVALID, #field); \
    } while (0)
#define BAD_SGD(field, value)                                      \
    do {                                                           \
        tlm_optimizer_params_init_for(&p, TLM_OPTIMIZER_SGD);          \
        p.field = value;                                           \
        expect_create_fails(f.params, 2, &p, TLM_E_INVALID, #field); \
    } while (0)
    BAD_ADAMW(kind, 7);
    BAD_ADAMW(kind, -1);
    BAD_ADAMW(lr, -0.1f);
    BAD_ADAMW(lr, NAN);
    BAD_ADAMW(lr, INFINITY);
    BAD_ADAMW(beta1, 1.0f);
    BAD_ADAMW(beta1, -0.1f);
    BAD_ADAMW(beta1, NAN);
    BAD_ADAMW(beta2, 1.0f);
    BAD_ADAMW(beta2, 1.5f);
    BAD_ADAMW(eps, 0.0f);
    BAD_ADAMW(eps, -1e-8f);
    BAD_ADAMW(eps, INFINITY);
    BAD_ADAMW(weight_decay, -0.01f);
    BAD_ADAMW(weight_decay, NAN);
    BAD_SGD(lr, -1.0f);
    BAD_SGD(momentum, 1.0f);
    BAD_SGD(momentum, -0.5f);
    BAD_SGD(momentum, NAN);
    BAD_SGD(nesterov, 2);
    BAD_SGD(nesterov, -1);
    BAD_SGD(weight_decay, INFINITY);
#undef BAD_ADAMW
#undef BAD_SGD
    /* Nesterov without momentum. */
    tlm_optimizer_params_init_for(&p, TLM_OPTIMIZER_SGD);
    p.nesterov = 1;
    expect_create_fails(f.params, 2, &p, TLM_E_INVALID, "nesterov");
    /* Decay flags other than 0 and 1. */
    tlm_optimizer_params_init(&p);
    const int32_t flags[2] = {1, 2};
    p.decay_flags = flags;
    expect_create_fails(f.params, 2, &p, TLM_E_INVALID, "decay_flags[1]");
    /* Settings structs: uninitialised, or newer with unknown fields set. */
    tlm_optimizer_params_init(&p);
    p.struct_size = 0;
    expect_create_fails(f.params, 2, &p, TLM_E_INVALID, "struct_size");
    struct {
        tlm_optimizer_params params;
        uint64_t newer_field;
    } newer;
    memset(&newer, 0, sizeof newer);
    tlm_optimizer_params_init(&newer.params);
    newer.params.struct_size = sizeof newer;
    newer.newer_field = 1;
    expect_create_fails(f.params, 2, &newer.params, TLM_E_UNSUPPORTED, "struct_size");
    /* The same with the unknown tail zero is accepted; so is an older,
     * shorter struct (the rest keeps the defaults). */
    newer.newer_field = 0;
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, f.params, 2, &newer.params), TLM_OK);
    tlm_optimizer_free(opt);
    tlm_optimizer_params_init_for(&p, TLM_OPTIMIZER_SGD);
    p.struct_size = offsetof(tlm_optimizer_params, beta1);
    p.beta1 = 5.0f; /* beyond struct_size: not read */
    assert_int_equal(tlm_optimizer_create(&opt, f.params, 2, &p), TLM_OK);
    tlm_optimizer_params got;
    tlm_optimizer_params_init(&got);
    assert_int_equal(tlm_optimizer_get_params(opt, &got), TLM_OK);
    assert_int_equal(got.kind, TLM_OPTIMIZER_SGD);
    assert_true(got.beta1 == 0.9f);
    tlm_optimizer_free(opt);
    tlm_context_free(f.ctx);
}

static void create_rejects_bad_parameters(void **state) {
    (void)state;
    fixture f;
    fixture_create(&f);
    expect_create_fails(f.params, 0, NULL, TLM_E_INVALID, "count 0");
    expect_create_fails(f.params, -3, NULL, TLM_E_INVALID, "count -3");
    /* Listed twice. */
    tlm_tensor *twice[3] = {f.params[0], f.params[1], f.params[0]};
    expect_create_fails(twice, 3, NULL, TLM_E_INVALID, "tensors[2] is tensors[0]");
    /* An integer tensor, a result, a tensor without gradient. */
    const int64_t shape[1] = {2};
    tlm_tensor *ids = NULL, *plain = NULL, *sum = NULL;
    assert_int_equal(tlm_tensor_create(&ids, f.ctx, TLM_DTYPE_I32, 1, shape), TLM_OK);
    assert_int_equal(tlm_tensor_create(&plain, f.ctx, TLM_DTYPE_F32, 1, shape), TLM_OK);
    assert_int_equal(tlm_add(&sum, f.params[1], f.params[1]), TLM_OK);
    tlm_tensor *with_ids[2] = {f.params[0], ids};
    expect_create_fails(with_ids, 2, NULL, TLM_E_INVALID, "tensors[1] is an i32");
    tlm_tensor *with_result[2] = {sum, f.params[0]};
    expect_create_fails(with_result, 2, NULL, TLM_E_INVALID, "tensors[0] is the result");
    tlm_tensor *with_plain[2] = {f.params[0], plain};
    expect_create_fails(with_plain, 2, NULL, TLM_E_STATE, "tensors[1] has no gradient");
    /* Two contexts. */
    tlm_context *other = NULL;
    assert_int_equal(tlm_context_create(&other, NULL), TLM_OK);
    tlm_tensor *foreign = NULL;
    assert_int_equal(tlm_tensor_create(&foreign, other, TLM_DTYPE_F32, 1, shape), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(foreign, 1), TLM_OK);
    tlm_tensor *mixed[2] = {f.params[0], foreign};
    expect_create_fails(mixed, 2, NULL, TLM_E_INVALID, "another context");
    /* A freed tensor. */
    tlm_tensor_free(plain);
    tlm_tensor *with_freed[2] = {f.params[0], plain};
    expect_create_fails(with_freed, 2, NULL, TLM_E_STATE, "tensors[1]");

    /* Clipping takes the same checks. */
    double norm = 0;
    assert_int_equal(tlm_clip_grad_norm(with_ids, 2, 1.0f, &norm), TLM_E_INVALID);
    assert_message_names("tlm_clip_grad_norm: tensors[1]");
    tlm_tensor *no_grad = NULL;
    assert_int_equal(tlm_tensor_create(&no_grad, f.ctx, TLM_DTYPE_F32, 1, shape), TLM_OK);
    tlm_tensor *with_no_grad[2] = {f.params[0], no_grad};
    assert_int_equal(tlm_clip_grad_norm(with_no_grad, 2, 1.0f, &norm), TLM_E_STATE);
    assert_message_names("has no gradient");
    assert_int_equal(tlm_clip_grad_norm(mixed, 2, 1.0f, &norm), TLM_E_INVALID);
    assert_message_names("another context");
    tlm_context_free(other);
    tlm_context_free(f.ctx);
}

static void optimizer_calls_reject_bad_values(void **state) {
    (void)state;
    fixture f;
    fixture_create(&f);
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, f.params, 2, NULL), TLM_OK);
    assert_string_equal(tlm_optimizer_last_error(opt), "");

    assert_int_equal(tlm_optimizer_set_decay(opt, -1, 1), TLM_E_RANGE);
    assert_both_name(opt, "tlm_optimizer_set_decay", "index -1");
    assert_int_equal(tlm_optimizer_set_decay(opt, 2, 1), TLM_E_RANGE);
    assert_both_name(opt, "tlm_optimizer_set_decay", "index 2 is outside 0..1");
    assert_int_equal(tlm_optimizer_set_decay(opt, 0, 2), TLM_E_INVALID);
    assert_both_name(opt, "tlm_optimizer_set_decay", "flag 2");
    assert_int_equal(tlm_optimizer_get_decay(opt, 2), TLM_E_RANGE);
    assert_thread_only_names(opt, "tlm_optimizer_get_decay", "index 2");
    assert_int_equal(tlm_optimizer_get_decay(opt, -5), TLM_E_RANGE);

    tlm_optimizer_params got;
    got.struct_size = 0;
    assert_int_equal(tlm_optimizer_get_params(opt, &got), TLM_E_INVALID);
    assert_thread_only_names(opt, "tlm_optimizer_get_params", "struct_size");
    /* An older caller's shorter struct gets the fields it knows. */
    got.struct_size = offsetof(tlm_optimizer_params, beta1);
    got.beta1 = 7.0f;
    assert_int_equal(tlm_optimizer_get_params(opt, &got), TLM_OK);
    assert_true(got.lr == 1e-3f);
    assert_true(got.beta1 == 7.0f);
    assert_int_equal(got.struct_size, offsetof(tlm_optimizer_params, beta1));

    assert_int_equal(tlm_optimizer_step(opt, NAN), TLM_E_INVALID);
    assert_both_name(opt, "tlm_optimizer_step", "lr");
    assert_int_equal(tlm_optimizer_step(opt, INFINITY), TLM_E_INVALID);
    assert_int_equal(tlm_optimizer_step(opt, -INFINITY), TLM_E_INVALID);
    assert_int_equal(tlm_optimizer_step_count(opt), 0);

    size_t size = 0;
    assert_int_equal(tlm_optimizer_state_size(opt, &size), TLM_OK);
    unsigned char buffer[512];
    assert_true(size <= sizeof buffer);
    assert_int_equal(tlm_optimizer_save_state(opt, buffer, size - 1), TLM_E_INVALID);
    assert_thread_only_names(opt, "tlm_optimizer_save_state", "smaller");
    assert_int_equal(tlm_optimizer_save_state(opt, buffer, size), TLM_OK);
    assert_int_equal(tlm_optimizer_load_state(opt, buffer, 3), TLM_E_FORMAT);
    assert_both_name(opt, "tlm_optimizer_load_state", "truncated");
    assert_int_equal(tlm_optimizer_load_state(opt, buffer, size), TLM_OK);

    /* A parameter that stopped requiring its gradient, then one freed. */
    assert_int_equal(tlm_tensor_set_requires_grad(f.params[1], 0), TLM_OK);
    assert_int_equal(tlm_optimizer_step(opt, 0.1f), TLM_E_STATE);
    assert_both_name(opt, "tlm_optimizer_step", "parameter 1");
    assert_int_equal(tlm_tensor_set_requires_grad(f.params[1], 1), TLM_OK);
    assert_int_equal(tlm_optimizer_step(opt, 0.1f), TLM_OK);
    tlm_tensor_free(f.params[1]);
    assert_int_equal(tlm_optimizer_step(opt, 0.1f), TLM_E_STATE);
    assert_both_name(opt, "tlm_optimizer_step", "freed");
    /* Its struct reused by a tensor of another shape: still refused. */
    const int64_t shape[1] = {5};
    tlm_tensor *reuse = NULL;
    assert_int_equal(tlm_tensor_create(&reuse, f.ctx, TLM_DTYPE_F32, 1, shape), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(reuse, 1), TLM_OK);
    assert_int_equal(tlm_optimizer_step(opt, 0.1f), TLM_E_STATE);
    assert_int_equal(tlm_optimizer_step_count(opt), 1);
    tlm_optimizer_free(opt);
    tlm_context_free(f.ctx);
}

static void clip_rejects_bad_values(void **state) {
    (void)state;
    fixture f;
    fixture_create(&f);
    double norm = 0;
    assert_int_equal(tlm_clip_grad_norm(f.params, 0, 1.0f, &norm), TLM_E_INVALID);
    assert_message_names("tlm_clip_grad_norm: count 0");
    assert_int_equal(tlm_clip_grad_norm(f.params, -1, 1.0f, &norm), TLM_E_INVALID);
    const float bad[4] = {0.0f, -1.0f, NAN, -INFINITY};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(tlm_clip_grad_norm(f.params, 2, bad[i], &norm), TLM_E_INVALID);
        assert_message_names("tlm_clip_grad_norm: max_norm");
    }
    assert_int_equal(tlm_clip_grad_norm(f.params, 2, 1.0f, NULL), TLM_OK);
    tlm_context_free(f.ctx);
}

static void schedule_rejects_bad_values(void **state) {
    (void)state;
    float lr = 0;
    tlm_schedule_params p;
#define BAD(setup, what)                                                 \
    do {                                                                 \
        tlm_schedule_params_init(&p);                                    \
        p.kind = TLM_SCHEDULE_COSINE;                                    \
        p.decay_end_step = 100;                                          \
        setup;                                                           \
        lr = 1;                                                          \
        assert_int_equal(tlm_schedule_lr(&p, 0, &lr), TLM_E_INVALID);    \
        assert_true(lr == 0.0f);                                         \
        assert_message_names("tlm_schedule_lr");                         \
        assert_message_names(what);                                      \
    } while (0)
    BAD(p.kind = 2, "kind 2");
    BAD(p.kind = -1, "kind -1");
    BAD(p.lr = -1.0f, "lr");
    BAD(p.lr = NAN, "lr");
    BAD(p.lr = INFINITY, "lr");
    BAD(p.min_lr = -0.5f, "min_lr");
    BAD(p.min_lr = 0.01f, "min_lr"); /* above lr = 1e-3 */
    BAD(p.min_lr = NAN, "min_lr");
    BAD(p.warmup_start_factor = 1.5f, "warmup_start_factor");
    BAD(p.warmup_start_factor = -0.1f, "warmup_start_factor");
    BAD(p.warmup_start_factor = NAN, "warmup_start_factor");
    BAD(p.warmup_steps = -1, "warmup_steps");
    BAD(p.decay_end_step = 0, "decay_end_step");
    BAD((p.warmup_steps = 100, p.decay_end_step = 100), "decay_end_step 100");
    BAD(p.struct_size = 0, "struct_size");
#undef BAD
    /* A constant schedule ignores min_lr and decay_end_step. */
    tlm_schedule_params_init(&p);
    p.min_lr = 5.0f;
    assert_int_equal(tlm_schedule_lr(&p, 3, &lr), TLM_OK);
    assert_true(lr == 1e-3f);
    assert_int_equal(tlm_schedule_lr(&p, -1, &lr), TLM_E_INVALID);
    assert_message_names("tlm_schedule_lr: step -1");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(optimizer_calls_reject_null),
        cmocka_unit_test(create_rejects_bad_settings),
        cmocka_unit_test(create_rejects_bad_parameters),
        cmocka_unit_test(optimizer_calls_reject_bad_values),
        cmocka_unit_test(clip_rejects_bad_values),
        cmocka_unit_test(schedule_rejects_bad_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
