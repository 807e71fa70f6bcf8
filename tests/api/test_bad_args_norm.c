/*
 * Bad arguments of the normalizations (tlm_layer_norm, tlm_rms_norm,
 * tlm_batch_norm): each call fails with its exact status, leaves *out
 * NULL and a message that names the function (and the shapes, for shape
 * errors).
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

typedef struct fixture {
    tlm_context *ctx, *other_ctx;
    tlm_tensor *a;        /* [3, 7] f32 */
    tlm_tensor *a_one;    /* [1, 7] f32: one row */
    tlm_tensor *a_i32;    /* [3, 7] i32 */
    tlm_tensor *vec;      /* [7] f32: gain */
    tlm_tensor *vec2;     /* [7] f32: bias */
    tlm_tensor *rm, *rv;  /* [7] f32: running statistics */
    tlm_tensor *short_v;  /* [5] f32 */
    tlm_tensor *matrix;   /* [1, 7] f32: right size, wrong rank */
    tlm_tensor *vec_i32;  /* [7] i32 */
    tlm_tensor *foreign;  /* [7] f32 in other_ctx */
} fixture;

static int setup(void **state) {
    static fixture f;
    memset(&f, 0, sizeof f);
    const int64_t s37[2] = {3, 7}, s17[2] = {1, 7}, s7[1] = {7}, s5[1] = {5};
    const float ones[7] = {1, 1, 1, 1, 1, 1, 1};
    if (tlm_context_create(&f.ctx, NULL) != TLM_OK ||
        tlm_context_create(&f.other_ctx, NULL) != TLM_OK ||
        tlm_tensor_create(&f.a, f.ctx, TLM_DTYPE_F32, 2, s37) != TLM_OK ||
        tlm_tensor_create(&f.a_one, f.ctx, TLM_DTYPE_F32, 2, s17) != TLM_OK ||
        tlm_tensor_create(&f.a_i32, f.ctx, TLM_DTYPE_I32, 2, s37) != TLM_OK ||
        tlm_tensor_create(&f.vec, f.ctx, TLM_DTYPE_F32, 1, s7) != TLM_OK ||
        tlm_tensor_create(&f.vec2, f.ctx, TLM_DTYPE_F32, 1, s7) != TLM_OK ||
        tlm_tensor_create(&f.rm, f.ctx, TLM_DTYPE_F32, 1, s7) != TLM_OK ||
        tlm_tensor_from_f32(&f.rv, f.ctx, 1, s7, ones) != TLM_OK ||
        tlm_tensor_create(&f.short_v, f.ctx, TLM_DTYPE_F32, 1, s5) != TLM_OK ||
        tlm_tensor_create(&f.matrix, f.ctx, TLM_DTYPE_F32, 2, s17) != TLM_OK ||
        tlm_tensor_create(&f.vec_i32, f.ctx, TLM_DTYPE_I32, 1, s7) != TLM_OK ||
        tlm_tensor_create(&f.foreign, f.other_ctx, TLM_DTYPE_F32, 1, s7) != TLM_OK)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tlm_context_free(f->ctx);
    tlm_context_free(f->other_ctx);
    return 0;
}

/* Something to overwrite: a result pointer that is not NULL. */
static tlm_tensor *const not_null = (tlm_tensor *)&not_null;

/* Leaves a thread message that names none of the norm functions, so each
 * check below sees the message of its own call. */
static void clear_message(void) {
    assert_int_equal(tlm_context_thread_count(NULL), TLM_E_INVALID);
    assert_null(strstr(tlm_last_error(), "norm"));
}

/* `call` (which writes `out`) fails with `expected`, sets out to NULL and
 * leaves a message naming `name`. */
#define EXPECT_FAIL(expected, name, call)                      \
    do {                                                       \
        clear_message();                                       \
        out = not_null;                                        \
        assert_int_equal((call), (expected));                  \
        assert_null(out);                                      \
        assert_non_null(strstr(tlm_last_error(), (name)));     \
    } while (0)

static void assert_message_has(const char *text) {
    assert_non_null(strstr(tlm_last_error(), text));
}

/* ---- tlm_layer_norm ---- */

static void layer_norm_bad_args(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;
    const char *name = "tlm_layer_norm";

    clear_message();
    assert_int_equal(tlm_layer_norm(NULL, f->a, f->vec, f->vec2, 1e-5f), TLM_E_INVALID);
    assert_message_has(name);
    assert_message_has("out");

    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, NULL, f->vec, f->vec2, 1e-5f));
    assert_message_has(" a ");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, NULL, NULL, NULL, 1e-5f));
    /* wrong dtype */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a_i32, f->vec, f->vec2, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->vec_i32, f->vec2, 1e-5f));
    assert_message_has("gain");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->vec, f->vec_i32, 1e-5f));
    assert_message_has("bias");
    /* mismatched shapes */
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_layer_norm(&out, f->a, f->short_v, f->vec2, 1e-5f));
    assert_message_has("gain [5] must be [7]");
    assert_message_has("[3, 7]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_layer_norm(&out, f->a, f->vec, f->short_v, 1e-5f));
    assert_message_has("bias [5] must be [7]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_layer_norm(&out, f->a, f->matrix, NULL, 1e-5f));
    assert_message_has("gain [1, 7]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_layer_norm(&out, f->a, NULL, f->matrix, 1e-5f));
    /* another context */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->foreign, NULL, 1e-5f));
    assert_message_has("another context");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, NULL, f->foreign, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->foreign, f->vec, NULL, 1e-5f));
    /* bad eps */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->vec, f->vec2, NAN));
    assert_message_has("eps");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->vec, f->vec2, INFINITY));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->vec, f->vec2, 0.0f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_layer_norm(&out, f->a, f->vec, f->vec2, -1e-5f));

    /* The same arguments, corrected, succeed: the failures were the
     * arguments, not the fixture. */
    assert_int_equal(tlm_layer_norm(&out, f->a, f->vec, f->vec2, 1e-5f), TLM_OK);
    assert_non_null(out);
    assert_int_equal(tlm_layer_norm(&out, f->foreign, NULL, NULL, 1e-5f), TLM_OK);
}

/* ---- tlm_rms_norm ---- */

static void rms_norm_bad_args(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;
    const char *name = "tlm_rms_norm";

    clear_message();
    assert_int_equal(tlm_rms_norm(NULL, f->a, f->vec, 1e-6f), TLM_E_INVALID);
    assert_message_has(name);

    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, NULL, f->vec, 1e-6f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, NULL, NULL, 1e-6f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a_i32, NULL, 1e-6f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->vec_i32, 1e-6f));
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_rms_norm(&out, f->a, f->short_v, 1e-6f));
    assert_message_has("gain [5] must be [7]");
    assert_message_has("[3, 7]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_rms_norm(&out, f->a, f->matrix, 1e-6f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->foreign, 1e-6f));
    assert_message_has("another context");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->foreign, f->vec, 1e-6f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->vec, NAN));
    assert_message_has("eps");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->vec, -INFINITY));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->vec, INFINITY));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->vec, 0.0f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_rms_norm(&out, f->a, f->vec, -1.0f));

    assert_int_equal(tlm_rms_norm(&out, f->a, f->vec, 1e-6f), TLM_OK);
    assert_non_null(out);
}

/* ---- tlm_batch_norm ---- */

static void batch_norm_bad_args(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;
    const char *name = "tlm_batch_norm";
    tlm_tensor *a = f->a, *g = f->vec, *b = f->vec2, *rm = f->rm, *rv = f->rv;

    clear_message();
    assert_int_equal(tlm_batch_norm(NULL, a, g, b, rm, rv, 0.1f, 1e-5f), TLM_E_INVALID);
    assert_message_has(name);

    /* NULL and wrong-dtype inputs */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, NULL, g, b, rm, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, f->a_i32, g, b, rm, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, f->vec_i32, b, rm, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, f->vec_i32, rm, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, f->vec_i32, rv, 0.1f, 1e-5f));
    assert_message_has("running_mean");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, f->vec_i32, 0.1f, 1e-5f));
    assert_message_has("running_var");
    /* running statistics: both or neither */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, NULL, 0.1f, 1e-5f));
    assert_message_has("running_var is NULL");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, NULL, rv, 0.1f, 1e-5f));
    assert_message_has("running_mean is NULL");
    /* ... and buffers of their own */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rm, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, g, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, b, 0.1f, 1e-5f));
    /* mismatched shapes */
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_batch_norm(&out, a, f->short_v, b, rm, rv, 0.1f, 1e-5f));
    assert_message_has("gain [5] must be [7]");
    assert_message_has("[3, 7]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_batch_norm(&out, a, g, f->short_v, rm, rv, 0.1f, 1e-5f));
    assert_message_has("bias [5]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_batch_norm(&out, a, g, b, f->short_v, rv, 0.1f, 1e-5f));
    assert_message_has("running_mean [5]");
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_batch_norm(&out, a, g, b, rm, f->matrix, 0.1f, 1e-5f));
    assert_message_has("running_var [1, 7]");
    /* another context */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, f->foreign, b, rm, rv, 0.1f, 1e-5f));
    assert_message_has("another context");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, f->foreign, rm, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, f->foreign, rv, 0.1f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, f->foreign, 0.1f, 1e-5f));
    /* bad momentum and eps */
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, NAN, 1e-5f));
    assert_message_has("momentum");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, -0.01f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, 1.01f, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, INFINITY, 1e-5f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, NAN));
    assert_message_has("eps");
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, 0.0f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, -1.0f));
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, INFINITY));
    /* training mode needs at least two rows */
    EXPECT_FAIL(TLM_E_SHAPE, name, tlm_batch_norm(&out, f->a_one, g, b, rm, rv, 0.1f, 1e-5f));
    assert_message_has("[1, 7]");
    assert_message_has("at least 2");

    /* Evaluation mode: running statistics required, and a usable variance. */
    assert_int_equal(tlm_context_set_training(f->ctx, 0), TLM_OK);
    EXPECT_FAIL(TLM_E_INVALID, name, tlm_batch_norm(&out, a, g, b, NULL, NULL, 0.1f, 1e-5f));
    assert_message_has("evaluation mode");
    float var[7] = {1, 1, 1, -2, 1, 1, 1};
    assert_int_equal(tlm_tensor_set_f32(rv, var, 7), TLM_OK);
    EXPECT_FAIL(TLM_E_RANGE, name, tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, 1e-5f));
    assert_message_has("running_var[3]");
    var[3] = NAN;
    assert_int_equal(tlm_tensor_set_f32(rv, var, 7), TLM_OK);
    EXPECT_FAIL(TLM_E_RANGE, name, tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, 1e-5f));
    var[3] = 1.0f;
    assert_int_equal(tlm_tensor_set_f32(rv, var, 7), TLM_OK);
    /* One row is fine in evaluation mode. */
    assert_int_equal(tlm_batch_norm(&out, f->a_one, g, b, rm, rv, 0.1f, 1e-5f), TLM_OK);
    assert_non_null(out);
    assert_int_equal(tlm_context_set_training(f->ctx, 1), TLM_OK);

    assert_int_equal(tlm_batch_norm(&out, a, g, b, rm, rv, 0.1f, 1e-5f), TLM_OK);
    assert_non_null(out);
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, NULL, NULL, 0.0f, 1e-5f), TLM_OK);
    assert_int_equal(tlm_batch_norm(&out, a, NULL, NULL, NULL, NULL, 1.0f, 1e-5f), TLM_OK);
}

/* A freed tensor, or a result from before a reset, is refused by all
 * three (TLM_E_STATE), never read. */
static void norms_reject_dead_tensors(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL, *result = NULL, *dead = NULL;
    const int64_t s7[1] = {7};
    assert_int_equal(tlm_layer_norm(&result, f->a, NULL, NULL, 1e-5f), TLM_OK);
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
    EXPECT_FAIL(TLM_E_STATE, "tlm_layer_norm", tlm_layer_norm(&out, result, NULL, NULL, 1e-5f));
    EXPECT_FAIL(TLM_E_STATE, "tlm_rms_norm", tlm_rms_norm(&out, result, NULL, 1e-5f));
    EXPECT_FAIL(TLM_E_STATE, "tlm_batch_norm", tlm_batch_norm(&out, result, NULL, NULL, NULL, NULL, 0.1f, 1e-5f));

    assert_int_equal(tlm_tensor_create(&dead, f->ctx, TLM_DTYPE_F32, 1, s7), TLM_OK);
    tlm_tensor_free(dead);
    EXPECT_FAIL(TLM_E_STATE, "tlm_layer_norm", tlm_layer_norm(&out, f->a, dead, NULL, 1e-5f));
    EXPECT_FAIL(TLM_E_STATE, "tlm_rms_norm", tlm_rms_norm(&out, f->a, dead, 1e-5f));
    EXPECT_FAIL(TLM_E_STATE, "tlm_batch_norm", tlm_batch_norm(&out, f->a, NULL, NULL, dead, f->rv, 0.1f, 1e-5f));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(layer_norm_bad_args),
        cmocka_unit_test(rms_norm_bad_args),
        cmocka_unit_test(batch_norm_bad_args),
        cmocka_unit_test(norms_reject_dead_tensors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
