/*
 * Bad arguments to the sequence operations: tlm_embedding,
 * tlm_add_sinusoidal_positions, tlm_rope, tlm_dropout and
 * tlm_cross_entropy. Every failing call returns the exact status, leaves
 * *out NULL and names the function in tlm_last_error().
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"

/* Runs `call`, which writes to `out` (preset to a live tensor so that a
 * call that forgets to clear it is caught), and checks the status, that
 * *out is NULL and that the message names `name`. */
#define EXPECT_FAILS(want, name, call)                                     \
    do {                                                                   \
        out = f->sentinel;                                                 \
        int got_ = (call);                                                 \
        assert_int_equal(got_, (want));                                    \
        assert_null(out);                                                  \
        assert_non_null(strstr(tlm_last_error(), (name)));                 \
    } while (0)

typedef struct fixture {
    tlm_context *ctx;
    tlm_context *other; /* a second context, for inputs from elsewhere */
    tlm_tensor *sentinel;
} fixture;

static tlm_tensor *f32(tlm_context *ctx, int32_t ndim, const int64_t *shape) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, ndim, shape),
                     TLM_OK);
    return t;
}

static tlm_tensor *i32(tlm_context *ctx, int32_t ndim, const int64_t *shape) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_I32, ndim, shape),
                     TLM_OK);
    return t;
}

static int setup(void **state) {
    static fixture f;
    memset(&f, 0, sizeof f);
    if (tlm_context_create(&f.ctx, NULL) != TLM_OK ||
        tlm_context_create(&f.other, NULL) != TLM_OK)
        return -1;
    const int64_t one[1] = {1};
    if (tlm_tensor_create(&f.sentinel, f.ctx, TLM_DTYPE_F32, 1, one) != TLM_OK)
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tlm_context_free(f->ctx);
    tlm_context_free(f->other);
    return 0;
}

/* ---- tlm_embedding ---- */

static void embedding_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    const char *name = "tlm_embedding";
    const int64_t table_shape[2] = {5, 3}, ids_shape[2] = {2, 3};
    tlm_tensor *table = f32(f->ctx, 2, table_shape);
    tlm_tensor *ids = i32(f->ctx, 2, ids_shape);
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_embedding(NULL, table, ids), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), name));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_embedding(&out, NULL, ids));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_embedding(&out, table, NULL));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_embedding(&out, NULL, NULL));

    /* dtypes: a float table and integer ids, not the other way round */
    tlm_tensor *ids_f32 = f32(f->ctx, 2, ids_shape);
    tlm_tensor *table_i32 = i32(f->ctx, 2, table_shape);
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_embedding(&out, table, ids_f32));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_embedding(&out, table_i32, ids));
    assert_non_null(strstr(tlm_last_error(), "table"));

    /* shapes: the table is [V, D]; ids have at most 3 dimensions */
    const int64_t flat[1] = {15}, cube[3] = {5, 3, 1}, four[4] = {2, 1, 1, 3};
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_embedding(&out, f32(f->ctx, 1, flat), ids));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_embedding(&out, f32(f->ctx, 3, cube), ids));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_embedding(&out, table, i32(f->ctx, 4, four)));

    /* inputs from another context */
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_embedding(&out, table, i32(f->other, 2, ids_shape)));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_embedding(&out, f32(f->other, 2, table_shape), ids));

    /* ids outside 0..V-1, at the position they occupy */
    int32_t values[6] = {0, 1, 2, 3, 4, 0};
    values[4] = 5;
    assert_int_equal(tlm_tensor_set_i32(ids, values, 6), TLM_OK);
    EXPECT_FAILS(TLM_E_RANGE, name, tlm_embedding(&out, table, ids));
    assert_non_null(strstr(tlm_last_error(), "ids[1][1] = 5"));
    assert_non_null(strstr(tlm_last_error(), "0..4"));
    values[4] = 4;
    values[0] = -1;
    assert_int_equal(tlm_tensor_set_i32(ids, values, 6), TLM_OK);
    EXPECT_FAILS(TLM_E_RANGE, name, tlm_embedding(&out, table, ids));
    assert_non_null(strstr(tlm_last_error(), "ids[0][0] = -1"));
    values[0] = INT32_MAX;
    assert_int_equal(tlm_tensor_set_i32(ids, values, 6), TLM_OK);
    EXPECT_FAILS(TLM_E_RANGE, name, tlm_embedding(&out, table, ids));
}

/* ---- tlm_add_sinusoidal_positions and tlm_rope share their checks ---- */

static void sinusoidal_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    const char *name = "tlm_add_sinusoidal_positions";
    const int64_t shape[3] = {2, 5, 6};
    tlm_tensor *a = f32(f->ctx, 3, shape);
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_add_sinusoidal_positions(NULL, a, 0), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), name));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_add_sinusoidal_positions(&out, NULL, 0));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_add_sinusoidal_positions(&out, i32(f->ctx, 3, shape), 0));

    /* [..., T, D]: at least 2-D, D even */
    const int64_t vector[1] = {6}, odd[3] = {2, 5, 7}, odd_1[2] = {1, 1};
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_add_sinusoidal_positions(&out, f32(f->ctx, 1, vector), 0));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_add_sinusoidal_positions(&out, f32(f->ctx, 3, odd), 0));
    assert_non_null(strstr(tlm_last_error(), "[2, 5, 7]"));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_add_sinusoidal_positions(&out, f32(f->ctx, 2, odd_1), 0));

    /* offset >= 0, and positions exact in double */
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_add_sinusoidal_positions(&out, a, -1));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_add_sinusoidal_positions(&out, a, INT64_MIN));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_add_sinusoidal_positions(&out, a, INT64_MAX));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_add_sinusoidal_positions(&out, a, ((int64_t)1 << 53) - 3));
    /* the last position allowed: offset + T - 1 = 2^53 */
    out = NULL;
    assert_int_equal(
        tlm_add_sinusoidal_positions(&out, a, ((int64_t)1 << 53) - 4), TLM_OK);
    assert_non_null(out);

    /* with a single input there is no other context to clash with: the
     * result lives in the context of a */
    tlm_tensor *foreign = f32(f->other, 3, shape);
    out = NULL;
    assert_int_equal(tlm_add_sinusoidal_positions(&out, foreign, 0), TLM_OK);
    assert_ptr_equal(tlm_tensor_context(out), f->other);
}

static void rope_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    const char *name = "tlm_rope";
    const int64_t shape[4] = {1, 2, 3, 4};
    tlm_tensor *a = f32(f->ctx, 4, shape);
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_rope(NULL, a, 0, 10000.0f), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), name));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, NULL, 0, 10000.0f));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_rope(&out, i32(f->ctx, 4, shape), 0, 10000.0f));

    const int64_t vector[1] = {4}, odd[2] = {3, 5};
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_rope(&out, f32(f->ctx, 1, vector), 0, 10000.0f));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_rope(&out, f32(f->ctx, 2, odd), 0, 10000.0f));
    assert_non_null(strstr(tlm_last_error(), "[3, 5]"));

    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, -1, 10000.0f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, INT64_MAX, 10000.0f));

    /* base finite and > 0 */
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, 0, 0.0f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, 0, -0.0f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, 0, -10000.0f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, 0, NAN));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, 0, INFINITY));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_rope(&out, a, 0, -INFINITY));
    assert_non_null(strstr(tlm_last_error(), "base"));

    /* a result from before a reset is no longer an input */
    tlm_tensor *old = NULL;
    assert_int_equal(tlm_rope(&old, a, 0, 10000.0f), TLM_OK);
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
    EXPECT_FAILS(TLM_E_STATE, name, tlm_rope(&out, old, 0, 10000.0f));
}

/* ---- tlm_dropout ---- */

static void dropout_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    const char *name = "tlm_dropout";
    const int64_t shape[2] = {3, 7};
    tlm_tensor *a = f32(f->ctx, 2, shape);
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_dropout(NULL, a, 0.5f), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), name));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, NULL, 0.5f));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_dropout(&out, i32(f->ctx, 2, shape), 0.5f));

    /* p in [0, 1) */
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, a, 1.0f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, a, 1.5f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, a, -0.1f));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, a, NAN));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, a, INFINITY));
    EXPECT_FAILS(TLM_E_INVALID, name, tlm_dropout(&out, a, -INFINITY));
    assert_non_null(strstr(tlm_last_error(), "p "));

    /* the edges of [0, 1) are accepted */
    out = NULL;
    assert_int_equal(tlm_dropout(&out, a, 0.0f), TLM_OK);
    assert_non_null(out);
    out = NULL;
    assert_int_equal(tlm_dropout(&out, a, nextafterf(1.0f, 0.0f)), TLM_OK);
    assert_non_null(out);

    /* a freed leaf is not an input */
    tlm_tensor *gone = f32(f->ctx, 2, shape);
    tlm_tensor_free(gone);
    EXPECT_FAILS(TLM_E_STATE, name, tlm_dropout(&out, gone, 0.5f));
}

/* ---- tlm_cross_entropy ---- */

static void cross_entropy_rejects_bad_arguments(void **state) {
    fixture *f = *state;
    const char *name = "tlm_cross_entropy";
    const int64_t logits_shape[3] = {2, 3, 5}, targets_shape[2] = {2, 3};
    tlm_tensor *logits = f32(f->ctx, 3, logits_shape);
    tlm_tensor *targets = i32(f->ctx, 2, targets_shape);
    tlm_tensor *out = NULL;

    assert_int_equal(tlm_cross_entropy(NULL, logits, targets, -1),
                     TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), name));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_cross_entropy(&out, NULL, targets, -1));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_cross_entropy(&out, logits, NULL, -1));

    /* float logits, integer targets */
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_cross_entropy(&out, logits, f32(f->ctx, 2, targets_shape),
                                   -1));
    assert_non_null(strstr(tlm_last_error(), "targets"));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_cross_entropy(&out, i32(f->ctx, 3, logits_shape), targets,
                                   -1));

    /* targets are logits' shape without the last dimension */
    const int64_t t32[2] = {3, 2}, t6[1] = {6}, t235[3] = {2, 3, 5},
                  t2[1] = {2}, v7[1] = {7}, one[1] = {1};
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_cross_entropy(&out, logits, i32(f->ctx, 2, t32), -1));
    assert_non_null(strstr(tlm_last_error(), "[2, 3]"));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_cross_entropy(&out, logits, i32(f->ctx, 1, t6), -1));
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_cross_entropy(&out, logits, i32(f->ctx, 3, t235), -1));
    /* a 1-D logits [V] takes targets [1] */
    EXPECT_FAILS(TLM_E_SHAPE, name,
                 tlm_cross_entropy(&out, f32(f->ctx, 1, v7),
                                   i32(f->ctx, 1, t2), -1));
    out = NULL;
    assert_int_equal(tlm_cross_entropy(&out, f32(f->ctx, 1, v7),
                                       i32(f->ctx, 1, one), -1),
                     TLM_OK);
    assert_non_null(out);

    /* inputs from another context */
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_cross_entropy(&out, logits,
                                   i32(f->other, 2, targets_shape), -1));
    EXPECT_FAILS(TLM_E_INVALID, name,
                 tlm_cross_entropy(&out, f32(f->other, 3, logits_shape),
                                   targets, -1));

    /* targets outside 0..V-1 that are not ignore_index */
    int32_t values[6] = {0, 1, 2, 3, 4, 4};
    values[5] = 5;
    assert_int_equal(tlm_tensor_set_i32(targets, values, 6), TLM_OK);
    EXPECT_FAILS(TLM_E_RANGE, name,
                 tlm_cross_entropy(&out, logits, targets, -1));
    assert_non_null(strstr(tlm_last_error(), "targets[1][2] = 5"));
    values[5] = 4;
    values[1] = -1;
    assert_int_equal(tlm_tensor_set_i32(targets, values, 6), TLM_OK);
    EXPECT_FAILS(TLM_E_RANGE, name,
                 tlm_cross_entropy(&out, logits, targets, -100));
    assert_non_null(strstr(tlm_last_error(), "targets[0][1] = -1"));
    /* ... while the same -1 is accepted as the ignore_index */
    out = NULL;
    assert_int_equal(tlm_cross_entropy(&out, logits, targets, -1), TLM_OK);
    values[1] = INT32_MIN;
    assert_int_equal(tlm_tensor_set_i32(targets, values, 6), TLM_OK);
    EXPECT_FAILS(TLM_E_RANGE, name,
                 tlm_cross_entropy(&out, logits, targets, INT32_MAX));
}

/* ---- data-dependent failures when the graph is re-run ---- */

static void rerun_with_bad_ids_fails_with_range(void **state) {
    fixture *f = *state;
    /* earlier tests left results whose inputs have changed since */
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
    const int64_t table_shape[2] = {4, 2}, ids_shape[1] = {3};
    const int32_t good[3] = {0, 3, 1}, bad[3] = {0, 4, 1};
    tlm_tensor *table = f32(f->ctx, 2, table_shape);
    tlm_tensor *ids = NULL;
    assert_int_equal(tlm_tensor_from_i32(&ids, f->ctx, 1, ids_shape, good),
                     TLM_OK);
    tlm_tensor *rows = NULL;
    assert_int_equal(tlm_embedding(&rows, table, ids), TLM_OK);
    assert_int_equal(tlm_tensor_set_i32(ids, bad, 3), TLM_OK);
    assert_int_equal(tlm_context_forward(f->ctx), TLM_E_RANGE);
    assert_non_null(strstr(tlm_last_error(), "tlm_embedding"));
    assert_non_null(strstr(tlm_last_error(), "ids[1] = 4"));
    assert_non_null(strstr(tlm_context_last_error(f->ctx), "ids[1] = 4"));
    assert_int_equal(tlm_tensor_set_i32(ids, good, 3), TLM_OK);
    assert_int_equal(tlm_context_forward(f->ctx), TLM_OK);

    const int64_t logits_shape[2] = {3, 4};
    tlm_tensor *logits = f32(f->ctx, 2, logits_shape);
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits, ids, -1), TLM_OK);
    assert_int_equal(tlm_tensor_set_i32(ids, bad, 3), TLM_OK);
    /* the embedding fails first: the tape runs in order */
    assert_int_equal(tlm_context_forward(f->ctx), TLM_E_RANGE);
    assert_non_null(strstr(tlm_last_error(), "tlm_embedding"));
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
    assert_int_equal(tlm_tensor_set_i32(ids, good, 3), TLM_OK);
    assert_int_equal(tlm_cross_entropy(&loss, logits, ids, -1), TLM_OK);
    assert_int_equal(tlm_tensor_set_i32(ids, bad, 3), TLM_OK);
    assert_int_equal(tlm_context_forward(f->ctx), TLM_E_RANGE);
    assert_non_null(strstr(tlm_last_error(), "tlm_cross_entropy"));
    assert_non_null(strstr(tlm_last_error(), "targets[1] = 4"));
}

/* ---- allocation failures ---- */

typedef int (*build_fn)(tlm_tensor **out, tlm_tensor *x, tlm_tensor *ids);

static int build_embedding(tlm_tensor **out, tlm_tensor *x, tlm_tensor *ids) {
    return tlm_embedding(out, x, ids);
}
static int build_sinusoidal(tlm_tensor **out, tlm_tensor *x, tlm_tensor *ids) {
    (void)ids;
    return tlm_add_sinusoidal_positions(out, x, 2);
}
static int build_rope(tlm_tensor **out, tlm_tensor *x, tlm_tensor *ids) {
    (void)ids;
    return tlm_rope(out, x, 2, 10000.0f);
}
static int build_dropout(tlm_tensor **out, tlm_tensor *x, tlm_tensor *ids) {
    (void)ids;
    return tlm_dropout(out, x, 0.25f);
}
static int build_cross_entropy(tlm_tensor **out, tlm_tensor *x,
                               tlm_tensor *ids) {
    return tlm_cross_entropy(out, x, ids, -1);
}

/* Every allocation the operation makes fails in turn: each failure is
 * TLM_E_NOMEM with *out NULL, and nothing leaks. The context's arena
 * starts with one chunk of 1 MiB; the sizes below make the result fill it
 * (or leave it one 64-byte block) so that the buffers the operation saves
 * need a second chunk, whose allocation can then fail on its own. */
static void allocation_failures_give_nomem(void **state) {
    (void)state;
    static const struct {
        const char *name;
        build_fn build;
        int64_t x_shape[2]; /* float input; ids are zeros [x_shape[0]] */
        int min_failures;   /* allocations the operation depends on */
    } ops[] = {
        {"tlm_embedding", build_embedding, {8, 6}, 1},
        /* result 1 MiB, then the table [T, D] */
        {"tlm_add_sinusoidal_positions", build_sinusoidal, {512, 512}, 2},
        {"tlm_rope", build_rope, {512, 512}, 2},
        /* result 1 MiB, then the saved struct */
        {"tlm_dropout", build_dropout, {512, 512}, 2},
        /* result 1 MiB - 64 bytes, the struct in the last block, then the
         * mask */
        {"tlm_dropout", build_dropout, {16, 16383}, 2},
        /* small result and struct, then 1 MiB of log-sum-exp */
        {"tlm_cross_entropy", build_cross_entropy, {131072, 1}, 2},
    };
    for (size_t op = 0; op < sizeof ops / sizeof ops[0]; op++) {
        int failures = 0, succeeded = 0;
        for (int64_t fail = 1; fail <= 64 && !succeeded; fail++) {
            counting_allocator counter = {0};
            tlm_context *ctx = NULL;
            assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
            tlm_tensor *x = f32(ctx, 2, ops[op].x_shape);
            tlm_tensor *ids = i32(ctx, 1, ops[op].x_shape);
            counter.fail_at = (int64_t)counter.calls + fail;
            tlm_tensor *out = x;
            int status = ops[op].build(&out, x, ids);
            if (status == TLM_OK) {
                assert_non_null(out);
                succeeded = 1;
            } else {
                assert_int_equal(status, TLM_E_NOMEM);
                assert_null(out);
                assert_non_null(strstr(tlm_last_error(), ops[op].name));
                failures++;
            }
            tlm_context_free(ctx);
            assert_int_equal(counter.live_bytes, 0);
        }
        assert_true(succeeded);
        assert_true(failures >= ops[op].min_failures);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedding_rejects_bad_arguments),
        cmocka_unit_test(sinusoidal_rejects_bad_arguments),
        cmocka_unit_test(rope_rejects_bad_arguments),
        cmocka_unit_test(dropout_rejects_bad_arguments),
        cmocka_unit_test(cross_entropy_rejects_bad_arguments),
        cmocka_unit_test(rerun_with_bad_ids_fails_with_range),
        cmocka_unit_test(allocation_failures_give_nomem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
