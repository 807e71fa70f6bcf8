/*
 * Bad arguments of the shape operations: tlm_reshape, tlm_transpose,
 * tlm_split_heads, tlm_merge_heads, tlm_concat and tlm_slice. Every call
 * returns its exact status, sets *out to NULL, names the function in
 * tlm_last_error(), and leaves the context usable. (None of these
 * operations takes a float argument, so there is no NaN case.)
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

typedef struct fixture {
    tlm_context *ctx, *other_ctx;
    tlm_tensor *m3x4;    /* f32 [3, 4] */
    tlm_tensor *m3x5;    /* f32 [3, 5] */
    tlm_tensor *v7;      /* f32 [7] */
    tlm_tensor *b2x3x6;  /* f32 [2, 3, 6] */
    tlm_tensor *h2x3x4x5;/* f32 [2, 3, 4, 5] */
    tlm_tensor *ids3x4;  /* i32 [3, 4] */
    tlm_tensor *ids2x3x6;/* i32 [2, 3, 6] */
    tlm_tensor *foreign; /* f32 [3, 4] in other_ctx */
} fixture;

static tlm_tensor *make(tlm_context *ctx, int32_t dtype, int32_t ndim,
                        const int64_t *shape) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, dtype, ndim, shape), TLM_OK);
    return t;
}

static int setup(void **state) {
    static fixture f;
    memset(&f, 0, sizeof f);
    assert_int_equal(tlm_context_create(&f.ctx, NULL), TLM_OK);
    assert_int_equal(tlm_context_create(&f.other_ctx, NULL), TLM_OK);
    const int64_t s34[] = {3, 4}, s35[] = {3, 5}, s7[] = {7},
                  s236[] = {2, 3, 6}, s2345[] = {2, 3, 4, 5};
    f.m3x4 = make(f.ctx, TLM_DTYPE_F32, 2, s34);
    f.m3x5 = make(f.ctx, TLM_DTYPE_F32, 2, s35);
    f.v7 = make(f.ctx, TLM_DTYPE_F32, 1, s7);
    f.b2x3x6 = make(f.ctx, TLM_DTYPE_F32, 3, s236);
    f.h2x3x4x5 = make(f.ctx, TLM_DTYPE_F32, 4, s2345);
    f.ids3x4 = make(f.ctx, TLM_DTYPE_I32, 2, s34);
    f.ids2x3x6 = make(f.ctx, TLM_DTYPE_I32, 3, s236);
    f.foreign = make(f.other_ctx, TLM_DTYPE_F32, 2, s34);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tlm_context_free(f->ctx);
    tlm_context_free(f->other_ctx);
    return 0;
}

/* The thread's last message names `function` and, when not NULL,
 * contains `detail`. */
static void assert_message(const char *function, const char *detail) {
    const char *message = tlm_last_error();
    if (strstr(message, function) == NULL ||
        (detail != NULL && strstr(message, detail) == NULL))
        fail_msg("message \"%s\" lacks \"%s\" or \"%s\"", message, function,
                 detail ? detail : "");
}

/* Runs `call` (which writes to `out`) with out preset to a live handle and
 * checks the status, that out was cleared, and the message. */
#define EXPECT_FAIL(expected, function, detail, call)                        \
    do {                                                                     \
        out = f->v7;                                                         \
        assert_int_equal((call), (expected));                                \
        assert_null(out);                                                    \
        assert_message((function), (detail));                                \
    } while (0)

/* After the failures, the context still builds and re-runs a graph. */
static void assert_context_still_works(fixture *f) {
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_transpose(&out, f->m3x4), TLM_OK);
    assert_non_null(out);
    assert_int_equal(tlm_context_forward(f->ctx), TLM_OK);
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
}

static void reshape_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;
    const int64_t s12[] = {12}, s2x6[] = {2, 6}, s13[] = {13},
                  s5[] = {1, 1, 1, 1, 12}, zero[] = {0, 12},
                  negative[] = {-2, -6}, huge[] = {INT64_MAX, 2};

    assert_int_equal(tlm_reshape(NULL, f->m3x4, 1, s12), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_reshape"));

    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "a is NULL",
                tlm_reshape(&out, NULL, 1, s12));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "i32",
                tlm_reshape(&out, f->ids3x4, 1, s12));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "ndim 0",
                tlm_reshape(&out, f->m3x4, 0, s12));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "ndim 5",
                tlm_reshape(&out, f->m3x4, 5, s5));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "ndim -1",
                tlm_reshape(&out, f->m3x4, -1, s12));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "shape is NULL",
                tlm_reshape(&out, f->m3x4, 2, NULL));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "shape[0] is 0",
                tlm_reshape(&out, f->m3x4, 2, zero));
    /* -2 x -6 = 12: sizes are checked one by one, not only their product. */
    EXPECT_FAIL(TLM_E_INVALID, "tlm_reshape", "shape[0] is -2",
                tlm_reshape(&out, f->m3x4, 2, negative));
    EXPECT_FAIL(TLM_E_OVERFLOW, "tlm_reshape", "overflows",
                tlm_reshape(&out, f->m3x4, 2, huge));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_reshape", "[3, 4] has 12 elements",
                tlm_reshape(&out, f->m3x4, 1, s13));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_reshape", "[13]",
                tlm_reshape(&out, f->m3x4, 1, s13));
    /* The message is on the context too. */
    assert_non_null(strstr(tlm_context_last_error(f->ctx), "tlm_reshape"));

    /* A freed leaf and a result from before a reset are not live. */
    tlm_tensor *leaf = make(f->ctx, TLM_DTYPE_F32, 2, s2x6);
    tlm_tensor_free(leaf);
    EXPECT_FAIL(TLM_E_STATE, "tlm_reshape", "not a live tensor",
                tlm_reshape(&out, leaf, 1, s12));
    tlm_tensor *stale = NULL;
    assert_int_equal(tlm_reshape(&stale, f->m3x4, 2, s2x6), TLM_OK);
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
    EXPECT_FAIL(TLM_E_STATE, "tlm_reshape", NULL,
                tlm_reshape(&out, stale, 1, s12));
    assert_context_still_works(f);
}

static void transpose_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_transpose(NULL, f->m3x4), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_transpose"));

    EXPECT_FAIL(TLM_E_INVALID, "tlm_transpose", "a is NULL",
                tlm_transpose(&out, NULL));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_transpose", "i32",
                tlm_transpose(&out, f->ids3x4));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_transpose", "[7]",
                tlm_transpose(&out, f->v7));
    assert_context_still_works(f);
}

static void split_heads_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_split_heads(NULL, f->b2x3x6, 2), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_split_heads"));

    EXPECT_FAIL(TLM_E_INVALID, "tlm_split_heads", "a is NULL",
                tlm_split_heads(&out, NULL, 2));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_split_heads", "i32",
                tlm_split_heads(&out, f->ids2x3x6, 2));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_split_heads", "n_heads 0",
                tlm_split_heads(&out, f->b2x3x6, 0));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_split_heads", "n_heads -3",
                tlm_split_heads(&out, f->b2x3x6, -3));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_split_heads", "n_heads -2147483648",
                tlm_split_heads(&out, f->b2x3x6, INT32_MIN));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_split_heads", "[3, 4] must be 3-D",
                tlm_split_heads(&out, f->m3x4, 2));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_split_heads", "[2, 3, 4, 5] must be 3-D",
                tlm_split_heads(&out, f->h2x3x4x5, 2));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_split_heads", "not divisible by n_heads 4",
                tlm_split_heads(&out, f->b2x3x6, 4));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_split_heads", "C = 6",
                tlm_split_heads(&out, f->b2x3x6, 12));
    assert_context_still_works(f);
}

static void merge_heads_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_merge_heads(NULL, f->h2x3x4x5), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_merge_heads"));

    EXPECT_FAIL(TLM_E_INVALID, "tlm_merge_heads", "a is NULL",
                tlm_merge_heads(&out, NULL));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_merge_heads", "i32",
                tlm_merge_heads(&out, f->ids3x4));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_merge_heads", "[2, 3, 6] must be 4-D",
                tlm_merge_heads(&out, f->b2x3x6));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_merge_heads", "[7] must be 4-D",
                tlm_merge_heads(&out, f->v7));
    assert_context_still_works(f);
}

static void concat_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;
    tlm_tensor *pair[2] = {f->m3x4, f->m3x5};
    tlm_tensor *rows_differ[2] = {f->m3x4, f->m3x5};
    tlm_tensor *with_null[3] = {f->m3x4, NULL, f->m3x4};
    tlm_tensor *with_ids[2] = {f->m3x4, f->ids3x4};
    tlm_tensor *with_foreign[2] = {f->m3x4, f->foreign};
    tlm_tensor *ndim_differ[2] = {f->m3x4, f->v7};
    tlm_tensor *seventeen[17];
    for (int i = 0; i < 17; i++)
        seventeen[i] = f->m3x4;

    assert_int_equal(tlm_concat(NULL, pair, 2, 1), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_concat"));

    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "inputs is NULL",
                tlm_concat(&out, NULL, 2, 0));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "count 0",
                tlm_concat(&out, pair, 0, 0));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "count -1",
                tlm_concat(&out, pair, -1, 0));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "count 17",
                tlm_concat(&out, seventeen, 17, 0));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "inputs[1] is NULL",
                tlm_concat(&out, with_null, 3, 0));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "inputs[1]",
                tlm_concat(&out, with_ids, 2, 0));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_concat", "another context",
                tlm_concat(&out, with_foreign, 2, 0));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_concat", "axis 2",
                tlm_concat(&out, pair, 2, 2));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_concat", "axis -3",
                tlm_concat(&out, pair, 2, -3));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_concat", "axis 2147483647",
                tlm_concat(&out, pair, 2, INT32_MAX));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_concat", "axis -2147483648",
                tlm_concat(&out, pair, 2, INT32_MIN));
    /* [3, 4] and [3, 5] join on axis 1 (or -1), not on axis 0. */
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_concat", "inputs[1] [3, 5]",
                tlm_concat(&out, rows_differ, 2, 0));
    EXPECT_FAIL(TLM_E_SHAPE, "tlm_concat", "inputs[1] [7]",
                tlm_concat(&out, ndim_differ, 2, 0));
    /* 16 is allowed. */
    assert_int_equal(tlm_concat(&out, seventeen, 16, 0), TLM_OK);
    assert_int_equal(tlm_tensor_dim(out, 0), 48);
    assert_int_equal(tlm_concat(&out, pair, 2, -1), TLM_OK);
    assert_int_equal(tlm_tensor_dim(out, 1), 9);
    assert_context_still_works(f);
}

static void slice_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_slice(NULL, f->m3x4, 1, 0, 2), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_slice"));

    EXPECT_FAIL(TLM_E_INVALID, "tlm_slice", "a is NULL",
                tlm_slice(&out, NULL, 0, 0, 1));
    EXPECT_FAIL(TLM_E_INVALID, "tlm_slice", "i32",
                tlm_slice(&out, f->ids3x4, 0, 0, 1));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "axis 2",
                tlm_slice(&out, f->m3x4, 2, 0, 1));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "axis -3",
                tlm_slice(&out, f->m3x4, -3, 0, 1));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "start -1",
                tlm_slice(&out, f->m3x4, 1, -1, 2));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "length 0",
                tlm_slice(&out, f->m3x4, 1, 0, 0));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "length -2",
                tlm_slice(&out, f->m3x4, 1, 0, -2));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "start 3 + length 2 exceeds axis 1",
                tlm_slice(&out, f->m3x4, 1, 3, 2));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "(size 4)",
                tlm_slice(&out, f->m3x4, -1, 3, 2));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "start 4 + length 1",
                tlm_slice(&out, f->m3x4, 1, 4, 1));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "length 5",
                tlm_slice(&out, f->m3x4, 1, 0, 5));
    /* start + length would overflow int64: still a range error. */
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "start 9223372036854775807",
                tlm_slice(&out, f->m3x4, 1, INT64_MAX, 1));
    EXPECT_FAIL(TLM_E_RANGE, "tlm_slice", "length 9223372036854775807",
                tlm_slice(&out, f->m3x4, 1, 1, INT64_MAX));
    /* The edges that are allowed. */
    assert_int_equal(tlm_slice(&out, f->m3x4, 1, 3, 1), TLM_OK);
    assert_int_equal(tlm_slice(&out, f->m3x4, -2, 0, 3), TLM_OK);
    assert_context_still_works(f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(reshape_rejects_bad_arguments),
        cmocka_unit_test(transpose_rejects_bad_arguments),
        cmocka_unit_test(split_heads_rejects_bad_arguments),
        cmocka_unit_test(merge_heads_rejects_bad_arguments),
        cmocka_unit_test(concat_rejects_bad_arguments),
        cmocka_unit_test(slice_rejects_bad_arguments),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
