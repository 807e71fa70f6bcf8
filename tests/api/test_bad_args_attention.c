/* Bad-argument tests of tlm_attention(): NULL out and inputs, wrong
 * dtypes, wrong ranks and mismatched shapes, inputs from two contexts,
 * dead handles, unknown flags and an allocation failure. Every failure
 * returns the exact status, leaves *out NULL and names the function. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"

/* A sentinel that is not NULL, to see *out cleared on failure. */
static tlm_tensor *const NOT_NULL = (tlm_tensor *)&NOT_NULL;

static void assert_message_names(const char *function) {
    assert_non_null(strstr(tlm_last_error(), function));
}

/* Good inputs: q [2, 3, 5, 4], k [2, 3, 7, 4], v [2, 3, 7, 6],
 * masks [2, 7] in f32 and i32, and an i32 tensor shaped like q. */
typedef struct fixture {
    tlm_context *ctx;
    tlm_tensor *q, *k, *v, *mask_f32, *mask_i32, *q_i32, *v_i32, *k_i32;
} fixture;

static tlm_tensor *make(tlm_context *ctx, int32_t dtype, int32_t ndim,
                        int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, dtype, ndim, shape), TLM_OK);
    return t;
}

static int setup(void **state) {
    static fixture f;
    memset(&f, 0, sizeof f);
    if (tlm_context_create(&f.ctx, NULL) != TLM_OK)
        return -1;
    f.q = make(f.ctx, TLM_DTYPE_F32, 4, 2, 3, 5, 4);
    f.k = make(f.ctx, TLM_DTYPE_F32, 4, 2, 3, 7, 4);
    f.v = make(f.ctx, TLM_DTYPE_F32, 4, 2, 3, 7, 6);
    f.mask_f32 = make(f.ctx, TLM_DTYPE_F32, 2, 2, 7, 0, 0);
    f.mask_i32 = make(f.ctx, TLM_DTYPE_I32, 2, 2, 7, 0, 0);
    f.q_i32 = make(f.ctx, TLM_DTYPE_I32, 4, 2, 3, 5, 4);
    f.k_i32 = make(f.ctx, TLM_DTYPE_I32, 4, 2, 3, 7, 4);
    f.v_i32 = make(f.ctx, TLM_DTYPE_I32, 4, 2, 3, 7, 6);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tlm_context_free(f->ctx);
    return 0;
}

/* Calls tlm_attention expecting `status`, *out NULL and a message. */
static void expect_failure(int status, tlm_tensor *q, tlm_tensor *k,
                           tlm_tensor *v, tlm_tensor *mask, int32_t flags) {
    tlm_tensor *out = NOT_NULL;
    assert_int_equal(tlm_attention(&out, q, k, v, mask, flags), status);
    assert_null(out);
    assert_message_names("tlm_attention");
}

static void good_calls_work(void **state) {
    fixture *f = *state;
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_attention(&out, f->q, f->k, f->v, NULL, 0), TLM_OK);
    assert_non_null(out);
    assert_int_equal(tlm_tensor_dim(out, 3), 6);
    assert_int_equal(tlm_attention(&out, f->q, f->k, f->v, f->mask_f32,
                                   TLM_ATTENTION_CAUSAL),
                     TLM_OK);
    assert_int_equal(tlm_attention(&out, f->q, f->k, f->v, f->mask_i32, 0),
                     TLM_OK);
    assert_non_null(out);
}

static void null_out_and_inputs(void **state) {
    fixture *f = *state;
    assert_int_equal(tlm_attention(NULL, f->q, f->k, f->v, NULL, 0),
                     TLM_E_INVALID);
    assert_message_names("tlm_attention");
    expect_failure(TLM_E_INVALID, NULL, f->k, f->v, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, NULL, f->v, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, f->k, NULL, NULL, 0);
    expect_failure(TLM_E_INVALID, NULL, NULL, NULL, NULL, 0);
    assert_non_null(strstr(tlm_last_error(), "q"));
}

static void wrong_dtypes(void **state) {
    fixture *f = *state;
    expect_failure(TLM_E_INVALID, f->q_i32, f->k, f->v, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, f->k_i32, f->v, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, f->k, f->v_i32, f->mask_i32, 0);
}

static void wrong_ranks_and_shapes(void **state) {
    fixture *f = *state;
    tlm_context *ctx = f->ctx;
    /* not 4-D */
    expect_failure(TLM_E_SHAPE, make(ctx, TLM_DTYPE_F32, 3, 6, 5, 4, 0), f->k, f->v, NULL, 0);
    expect_failure(TLM_E_SHAPE, f->q, make(ctx, TLM_DTYPE_F32, 3, 6, 7, 4, 0), f->v, NULL, 0);
    expect_failure(TLM_E_SHAPE, f->q, f->k, make(ctx, TLM_DTYPE_F32, 2, 42, 6, 0, 0), NULL, 0);
    /* B or H differ */
    expect_failure(TLM_E_SHAPE, f->q, make(ctx, TLM_DTYPE_F32, 4, 1, 3, 7, 4), f->v, NULL, 0);
    expect_failure(TLM_E_SHAPE, f->q, make(ctx, TLM_DTYPE_F32, 4, 2, 2, 7, 4), f->v, NULL, 0);
    expect_failure(TLM_E_SHAPE, f->q, f->k, make(ctx, TLM_DTYPE_F32, 4, 3, 3, 7, 6), NULL, 0);
    expect_failure(TLM_E_SHAPE, f->q, f->k, make(ctx, TLM_DTYPE_F32, 4, 2, 1, 7, 6), NULL, 0);
    expect_failure(TLM_E_SHAPE, make(ctx, TLM_DTYPE_F32, 4, 2, 4, 5, 4), f->k, f->v, NULL, 0);
    /* v's Tk is not k's */
    expect_failure(TLM_E_SHAPE, f->q, f->k, make(ctx, TLM_DTYPE_F32, 4, 2, 3, 8, 6), NULL, 0);
    /* k's D is not q's */
    expect_failure(TLM_E_SHAPE, f->q, make(ctx, TLM_DTYPE_F32, 4, 2, 3, 7, 5), f->v, NULL, 0);
    assert_non_null(strstr(tlm_last_error(), "[2, 3, 7, 5]"));
    /* the mask must be [B, Tk] */
    expect_failure(TLM_E_SHAPE, f->q, f->k, f->v, make(ctx, TLM_DTYPE_F32, 1, 7, 0, 0, 0), 0);
    expect_failure(TLM_E_SHAPE, f->q, f->k, f->v, make(ctx, TLM_DTYPE_I32, 2, 2, 8, 0, 0), 0);
    expect_failure(TLM_E_SHAPE, f->q, f->k, f->v, make(ctx, TLM_DTYPE_F32, 2, 1, 7, 0, 0), 0);
    expect_failure(TLM_E_SHAPE, f->q, f->k, f->v, make(ctx, TLM_DTYPE_I32, 3, 2, 1, 7, 0), 0);
    assert_non_null(strstr(tlm_last_error(), "key_mask"));
    /* Grouped-query attention: 3 query heads over 1 key/value head is
     * good; k and v with different head counts, or a count not dividing
     * H, name both head counts. */
    tlm_tensor *k1 = make(ctx, TLM_DTYPE_F32, 4, 2, 1, 7, 4);
    tlm_tensor *v1 = make(ctx, TLM_DTYPE_F32, 4, 2, 1, 7, 6);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_attention(&out, f->q, k1, v1, f->mask_i32, 0), TLM_OK);
    assert_int_equal(tlm_tensor_dim(out, 1), 3);
    expect_failure(TLM_E_SHAPE, f->q, k1, f->v, NULL, 0);
    assert_non_null(strstr(tlm_last_error(), "Hkv 1 (k), 3 (v), H 3"));
    expect_failure(TLM_E_SHAPE, f->q, make(ctx, TLM_DTYPE_F32, 4, 2, 2, 7, 4),
                   make(ctx, TLM_DTYPE_F32, 4, 2, 2, 7, 6), NULL, 0);
    assert_non_null(strstr(tlm_last_error(), "Hkv 2 (k), 2 (v), H 3"));
}

static void unknown_flags(void **state) {
    fixture *f = *state;
    expect_failure(TLM_E_INVALID, f->q, f->k, f->v, NULL, 2);
    expect_failure(TLM_E_INVALID, f->q, f->k, f->v, NULL, TLM_ATTENTION_CAUSAL | 4);
    expect_failure(TLM_E_INVALID, f->q, f->k, f->v, f->mask_f32, -1);
    expect_failure(TLM_E_INVALID, f->q, f->k, f->v, NULL, INT32_MIN);
    assert_non_null(strstr(tlm_last_error(), "flags"));
}

static void inputs_from_another_context(void **state) {
    fixture *f = *state;
    tlm_context *other = NULL;
    assert_int_equal(tlm_context_create(&other, NULL), TLM_OK);
    tlm_tensor *q2 = make(other, TLM_DTYPE_F32, 4, 2, 3, 5, 4);
    tlm_tensor *k2 = make(other, TLM_DTYPE_F32, 4, 2, 3, 7, 4);
    tlm_tensor *v2 = make(other, TLM_DTYPE_F32, 4, 2, 3, 7, 6);
    tlm_tensor *m2 = make(other, TLM_DTYPE_I32, 2, 2, 7, 0, 0);
    expect_failure(TLM_E_INVALID, q2, f->k, f->v, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, k2, f->v, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, f->k, v2, NULL, 0);
    expect_failure(TLM_E_INVALID, f->q, f->k, f->v, m2, 0);
    assert_non_null(strstr(tlm_last_error(), "another context"));
    tlm_context_free(other);
}

static void dead_handles(void **state) {
    fixture *f = *state;
    tlm_tensor *old = NULL;
    assert_int_equal(tlm_attention(&old, f->q, f->k, f->v, NULL, 0), TLM_OK);
    /* a result from before a reset */
    assert_int_equal(tlm_context_reset(f->ctx), TLM_OK);
    expect_failure(TLM_E_STATE, f->q, f->k, f->v, old, 0);
    tlm_tensor *freed = make(f->ctx, TLM_DTYPE_F32, 4, 2, 3, 7, 4);
    tlm_tensor_free(freed); /* its struct goes back to the pool */
    /* reading a freed handle is what this diagnostic is for; the pool
     * keeps the memory, so this is defined behaviour here */
    expect_failure(TLM_E_STATE, f->q, freed, f->v, NULL, 0);
}

/* The saved buffers come from the arena: when the arena cannot grow, the
 * call fails with TLM_E_NOMEM and gives everything back. */
static void allocation_failure(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    /* Tk = 2^20 + 1 keys: the result [1, 1, 1, 1] fits the arena's first
     * chunk (1 MiB), the mask's visibility flags (Tk bytes) do not. */
    const int64_t tk = ((int64_t)1 << 20) + 1;
    tlm_tensor *q = make(ctx, TLM_DTYPE_F32, 4, 1, 1, 1, 1);
    tlm_tensor *k = make(ctx, TLM_DTYPE_F32, 4, 1, 1, tk, 1);
    tlm_tensor *v = make(ctx, TLM_DTYPE_F32, 4, 1, 1, tk, 1);
    tlm_tensor *mask = make(ctx, TLM_DTYPE_I32, 2, 1, tk, 0, 0);
    counter.fail_at = (int64_t)counter.calls + 2; /* the second chunk */
    tlm_tensor *out = NOT_NULL;
    assert_int_equal(tlm_attention(&out, q, k, v, mask, 0), TLM_E_NOMEM);
    assert_null(out);
    assert_message_names("tlm_attention");
    /* once memory is back, the same call works */
    counter.fail_at = 0;
    assert_int_equal(tlm_attention(&out, q, k, v, mask, 0), TLM_OK);
    assert_non_null(out);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(good_calls_work, setup, teardown),
        cmocka_unit_test_setup_teardown(null_out_and_inputs, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_dtypes, setup, teardown),
        cmocka_unit_test_setup_teardown(wrong_ranks_and_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(unknown_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(inputs_from_another_context, setup, teardown),
        cmocka_unit_test_setup_teardown(dead_handles, setup, teardown),
        cmocka_unit_test(allocation_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
