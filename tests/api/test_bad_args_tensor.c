/*
 * Tensor handles and the autodiff engine called with NULL handles, invalid
 * shapes and sizes, wrong element types and stale handles: each returns a
 * status and a message naming the function; none crashes.
 */
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

static int setup(void **state) {
    tlm_context *ctx = NULL;
    if (tlm_context_create(&ctx, NULL) != TLM_OK)
        return -1;
    *state = ctx;
    return 0;
}

static int teardown(void **state) {
    tlm_context_free(*state);
    return 0;
}

static void create_rejects_bad_arguments(void **state) {
    tlm_context *ctx = *state;
    const int64_t shape[2] = {2, 3};
    tlm_tensor *t = (tlm_tensor *)ctx; /* must be overwritten with NULL */

    assert_int_equal(tlm_tensor_create(NULL, ctx, TLM_DTYPE_F32, 2, shape), TLM_E_INVALID);
    assert_message_names("tlm_tensor_create");
    assert_int_equal(tlm_tensor_create(&t, NULL, TLM_DTYPE_F32, 2, shape), TLM_E_INVALID);
    assert_null(t);
    assert_int_equal(tlm_tensor_create(&t, ctx, 7, 2, shape), TLM_E_INVALID);
    assert_message_names("dtype");
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 0, shape), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 5, shape), TLM_E_INVALID);
    assert_message_names("ndim");
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 2, NULL), TLM_E_INVALID);
    const int64_t zero[2] = {2, 0}, negative[2] = {-1, 3};
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 2, zero), TLM_E_INVALID);
    assert_message_names("shape[1]");
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 2, negative), TLM_E_INVALID);
    /* Sizes whose product overflows: a status, not a wrapped allocation. */
    const int64_t huge[4] = {INT64_MAX / 2, 4, 4, 4};
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 4, huge), TLM_E_OVERFLOW);
    const int64_t product[3] = {1 << 30, 1 << 30, 1 << 30};
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 3, product), TLM_E_OVERFLOW);
    assert_message_names("tlm_tensor_create");
    assert_null(t);
    /* Large but representable: the allocator's failure is a status too. */
    const int64_t too_big[2] = {1 << 30, 1 << 28};
    int status = tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, 2, too_big);
    assert_true(status == TLM_E_NOMEM || status == TLM_E_OVERFLOW);
    assert_null(t);

    const float values[6] = {0};
    const int32_t ids[6] = {0};
    assert_int_equal(tlm_tensor_from_f32(&t, ctx, 2, shape, NULL), TLM_E_INVALID);
    assert_message_names("tlm_tensor_from_f32");
    assert_int_equal(tlm_tensor_from_f32(NULL, ctx, 2, shape, values), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_from_f32(&t, NULL, 2, shape, values), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_from_i32(&t, ctx, 2, shape, NULL), TLM_E_INVALID);
    assert_message_names("tlm_tensor_from_i32");
    assert_int_equal(tlm_tensor_from_i32(&t, ctx, 0, shape, ids), TLM_E_INVALID);
    assert_null(t);
    tlm_tensor_free(NULL);
}

static void accessors_reject_null(void **state) {
    (void)state;
    int64_t shape[4];
    float f[1];
    int32_t i[1];
    assert_int_equal(tlm_tensor_ndim(NULL), TLM_E_INVALID);
    assert_message_names("tlm_tensor_ndim");
    assert_int_equal(tlm_tensor_dim(NULL, 0), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_shape(NULL, shape, 4), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_numel(NULL), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_dtype(NULL), TLM_E_INVALID);
    assert_null(tlm_tensor_context(NULL));
    assert_int_equal(tlm_tensor_set_f32(NULL, f, 1), TLM_E_INVALID);
    assert_message_names("tlm_tensor_set_f32");
    assert_int_equal(tlm_tensor_set_i32(NULL, i, 1), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_get_f32(NULL, f, 1), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_get_i32(NULL, i, 1), TLM_E_INVALID);
    assert_null(tlm_tensor_data_f32(NULL));
    assert_null(tlm_tensor_data_i32(NULL));
    assert_int_equal(tlm_tensor_set_requires_grad(NULL, 1), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_requires_grad(NULL), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_get_grad_f32(NULL, f, 1), TLM_E_INVALID);
    assert_message_names("tlm_tensor_get_grad_f32");
    assert_null(tlm_tensor_grad_data_f32(NULL));
}

static void accessors_check_types_counts_axes(void **state) {
    tlm_context *ctx = *state;
    const int64_t shape[3] = {2, 3, 5};
    tlm_tensor *x = NULL, *ids = NULL;
    assert_int_equal(tlm_tensor_create(&x, ctx, TLM_DTYPE_F32, 3, shape), TLM_OK);
    assert_int_equal(tlm_tensor_create(&ids, ctx, TLM_DTYPE_I32, 3, shape), TLM_OK);
    float f[30];
    int32_t i[30];
    int64_t out_shape[2];
    assert_int_equal(tlm_tensor_dim(x, 3), TLM_E_RANGE);
    assert_message_names("tlm_tensor_dim");
    assert_int_equal(tlm_tensor_dim(x, -4), TLM_E_RANGE);
    assert_int_equal(tlm_tensor_dim(x, -1), 5);
    assert_int_equal(tlm_tensor_shape(x, NULL, 3), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_shape(x, out_shape, 2), TLM_E_RANGE);
    assert_int_equal(tlm_tensor_set_f32(x, f, 29), TLM_E_SHAPE);
    assert_message_names("count 29");
    assert_int_equal(tlm_tensor_set_f32(x, NULL, 30), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_set_i32(x, i, 30), TLM_E_INVALID); /* f32 tensor */
    assert_int_equal(tlm_tensor_get_i32(x, i, 30), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_set_f32(ids, f, 30), TLM_E_INVALID); /* i32 tensor */
    assert_int_equal(tlm_tensor_get_f32(ids, f, 30), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_get_f32(x, f, -1), TLM_E_SHAPE);
    assert_null(tlm_tensor_data_i32(x));
    assert_null(tlm_tensor_data_f32(ids));
    assert_int_equal(tlm_tensor_set_requires_grad(ids, 1), TLM_E_INVALID);
    assert_message_names("tlm_tensor_set_requires_grad");
    assert_int_equal(tlm_tensor_set_requires_grad(x, 2), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_get_grad_f32(x, f, 30), TLM_E_STATE); /* none yet */
    assert_null(tlm_tensor_grad_data_f32(x));
    assert_int_equal(tlm_tensor_set_requires_grad(x, 1), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(x, NULL, 30), TLM_E_INVALID);
    assert_int_equal(tlm_tensor_get_grad_f32(x, f, 31), TLM_E_SHAPE);
    assert_int_equal(tlm_tensor_get_grad_f32(x, f, 30), TLM_OK);
    tlm_tensor_free(x);
    tlm_tensor_free(ids);
}

static void engine_rejects_bad_arguments(void **state) {
    tlm_context *ctx = *state;
    assert_int_equal(tlm_backward(NULL), TLM_E_INVALID);
    assert_message_names("tlm_backward");
    assert_int_equal(tlm_context_zero_grad(NULL), TLM_E_INVALID);
    assert_message_names("tlm_context_zero_grad");
    assert_int_equal(tlm_context_forward(NULL), TLM_E_INVALID);
    assert_message_names("tlm_context_forward");
    assert_int_equal(tlm_context_reset(NULL), TLM_E_INVALID);
    assert_message_names("tlm_context_reset");
    assert_int_equal(tlm_context_set_grad_enabled(NULL, 1), TLM_E_INVALID);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 5), TLM_E_INVALID);
    assert_message_names("tlm_context_set_grad_enabled");
    assert_int_equal(tlm_context_set_training(NULL, 1), TLM_E_INVALID);
    assert_int_equal(tlm_context_set_training(ctx, -1), TLM_E_INVALID);
    assert_message_names("tlm_context_set_training");
    assert_int_equal(tlm_context_set_seed(NULL, 1), TLM_E_INVALID);
    assert_message_names("tlm_context_set_seed");
    assert_true(tlm_context_arena_bytes(NULL) < 0);
    assert_message_names("tlm_context_arena_bytes");
    assert_true(tlm_context_arena_bytes(ctx) >= 0);
}

static void backward_needs_a_recorded_scalar(void **state) {
    tlm_context *ctx = *state;
    const int64_t shape[1] = {3};
    const float values[3] = {1, 2, 3};
    tlm_tensor *x = NULL, *y = NULL, *s = NULL;
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 1, shape, values), TLM_OK);
    /* A leaf is no loss. */
    assert_int_equal(tlm_backward(x), TLM_E_SHAPE);
    assert_message_names("tlm_backward");
    /* Nothing requires a gradient. */
    assert_int_equal(tlm_sum(&s, x), TLM_OK);
    assert_int_equal(tlm_backward(s), TLM_E_STATE);
    assert_int_equal(tlm_tensor_set_requires_grad(x, 1), TLM_OK);
    /* Not a scalar. */
    assert_int_equal(tlm_scale(&y, x, 2.0f), TLM_OK);
    assert_int_equal(tlm_backward(y), TLM_E_SHAPE);
    assert_message_names("[3]");
    /* Recording off: nothing to go back through. */
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 0), TLM_OK);
    assert_int_equal(tlm_sum(&s, x), TLM_OK);
    assert_int_equal(tlm_backward(s), TLM_E_STATE);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 1), TLM_OK);
    /* Results are not flagged by hand. */
    assert_int_equal(tlm_tensor_set_requires_grad(y, 1), TLM_E_STATE);
    tlm_context_reset(ctx);
    tlm_tensor_free(x);
}

static void stale_handles_are_refused(void **state) {
    tlm_context *ctx = *state;
    const int64_t shape[1] = {4};
    tlm_tensor *x = NULL, *y = NULL, *z = NULL;
    assert_int_equal(tlm_tensor_create(&x, ctx, TLM_DTYPE_F32, 1, shape), TLM_OK);
    assert_int_equal(tlm_scale(&y, x, 3.0f), TLM_OK);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    /* y died with the reset; its slot is not reused yet. */
    assert_int_equal(tlm_tensor_numel(y), TLM_E_STATE);
    assert_message_names("tlm_tensor_numel");
    assert_int_equal(tlm_scale(&z, y, 1.0f), TLM_E_STATE);
    assert_message_names("tlm_scale");
    assert_null(z);
    /* Leaves survive a reset. */
    assert_int_equal(tlm_tensor_numel(x), 4);
    tlm_tensor_free(x);
    assert_int_equal(tlm_tensor_numel(x), TLM_E_STATE);
    assert_int_equal(tlm_scale(&z, x, 1.0f), TLM_E_STATE);
    tlm_tensor_free(x); /* a second free is ignored */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(create_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test(accessors_reject_null),
        cmocka_unit_test_setup_teardown(accessors_check_types_counts_axes, setup, teardown),
        cmocka_unit_test_setup_teardown(engine_rejects_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(backward_needs_a_recorded_scalar, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_handles_are_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
