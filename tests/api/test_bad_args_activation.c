/*
 * Bad arguments of the activation operations: tlm_relu, tlm_gelu,
 * tlm_silu, tlm_swiglu, tlm_softmax and tlm_log_softmax. Every failing
 * call returns its exact status, leaves *out NULL and names the function
 * in tlm_last_error() (and in the context's message when it has one).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "tlm.h"

/* A non-NULL value *out holds before a call, to see the call clear it. */
static tlm_tensor *garbage(void) { return (tlm_tensor *)(uintptr_t)0x10; }

/* `out` is read through its address: the call in the first argument has
 * run by the time this function body does. */
static void assert_failed(int status, int expected, tlm_tensor *const *out,
                          const char *function) {
    assert_int_equal(status, expected);
    assert_null(*out);
    assert_non_null(strstr(tlm_last_error(), function));
}

/* The one-input operations, called through one signature. */
typedef int (*unary_fn)(tlm_tensor **out, tlm_tensor *a);

static int gelu_tanh(tlm_tensor **out, tlm_tensor *a) {
    return tlm_gelu(out, a, TLM_GELU_TANH);
}
static int gelu_exact(tlm_tensor **out, tlm_tensor *a) {
    return tlm_gelu(out, a, TLM_GELU_EXACT);
}
/* swiglu with `a` as both inputs: its single-tensor checks. */
static int swiglu_same(tlm_tensor **out, tlm_tensor *a) {
    return tlm_swiglu(out, a, a);
}

typedef struct unary_op {
    const char *name;
    unary_fn call;
} unary_op;

static const unary_op unary_ops[] = {
    {"tlm_relu", tlm_relu},
    {"tlm_gelu", gelu_tanh},
    {"tlm_gelu", gelu_exact},
    {"tlm_silu", tlm_silu},
    {"tlm_swiglu", swiglu_same},
    {"tlm_softmax", tlm_softmax},
    {"tlm_log_softmax", tlm_log_softmax},
};
#define N_UNARY (sizeof unary_ops / sizeof unary_ops[0])

typedef struct fixture {
    tlm_context *ctx;
    tlm_tensor *f;    /* f32 [3, 5] */
    tlm_tensor *ids;  /* i32 [3, 5] */
} fixture;

static int setup(void **state) {
    static fixture fx;
    memset(&fx, 0, sizeof fx);
    const int64_t shape[2] = {3, 5};
    if (tlm_context_create(&fx.ctx, NULL) != TLM_OK ||
        tlm_tensor_create(&fx.f, fx.ctx, TLM_DTYPE_F32, 2, shape) != TLM_OK ||
        tlm_tensor_create(&fx.ids, fx.ctx, TLM_DTYPE_I32, 2, shape) != TLM_OK)
        return -1;
    *state = &fx;
    return 0;
}

static int teardown(void **state) {
    fixture *fx = *state;
    tlm_context_free(fx->ctx);
    return 0;
}

static void null_out_is_invalid(void **state) {
    fixture *fx = *state;
    for (size_t i = 0; i < N_UNARY; i++) {
        assert_int_equal(unary_ops[i].call(NULL, fx->f), TLM_E_INVALID);
        assert_non_null(strstr(tlm_last_error(), unary_ops[i].name));
        assert_non_null(strstr(tlm_last_error(), "out"));
    }
    assert_int_equal(tlm_gelu(NULL, fx->f, 7), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_gelu"));
    assert_int_equal(tlm_swiglu(NULL, fx->f, fx->f), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_swiglu"));
}

static void null_input_is_invalid(void **state) {
    fixture *fx = *state;
    tlm_tensor *out;
    for (size_t i = 0; i < N_UNARY; i++) {
        out = garbage();
        assert_failed(unary_ops[i].call(&out, NULL), TLM_E_INVALID, &out,
                      unary_ops[i].name);
        assert_non_null(strstr(tlm_last_error(), "NULL"));
    }
    out = garbage();
    assert_failed(tlm_swiglu(&out, NULL, fx->f), TLM_E_INVALID, &out,
                  "tlm_swiglu: gate");
    out = garbage();
    assert_failed(tlm_swiglu(&out, fx->f, NULL), TLM_E_INVALID, &out,
                  "tlm_swiglu: up");
    out = garbage();
    assert_failed(tlm_swiglu(&out, NULL, NULL), TLM_E_INVALID, &out,
                  "tlm_swiglu");
    /* A bad form does not hide the NULL input, and vice versa. */
    out = garbage();
    assert_failed(tlm_gelu(&out, NULL, 5), TLM_E_INVALID, &out, "tlm_gelu");
}

static void integer_input_is_invalid(void **state) {
    fixture *fx = *state;
    tlm_tensor *out;
    for (size_t i = 0; i < N_UNARY; i++) {
        out = garbage();
        assert_failed(unary_ops[i].call(&out, fx->ids), TLM_E_INVALID, &out,
                      unary_ops[i].name);
        assert_non_null(strstr(tlm_last_error(), "i32"));
        assert_non_null(strstr(tlm_context_last_error(fx->ctx),
                               unary_ops[i].name));
    }
    out = garbage();
    assert_failed(tlm_swiglu(&out, fx->ids, fx->f), TLM_E_INVALID, &out,
                  "tlm_swiglu: gate");
    out = garbage();
    assert_failed(tlm_swiglu(&out, fx->f, fx->ids), TLM_E_INVALID, &out,
                  "tlm_swiglu: up");
}

static void gelu_rejects_unknown_forms(void **state) {
    fixture *fx = *state;
    const int32_t forms[] = {-1, 2, 3, 100, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof forms / sizeof forms[0]; i++) {
        tlm_tensor *out = garbage();
        assert_failed(tlm_gelu(&out, fx->f, forms[i]), TLM_E_INVALID, &out,
                      "tlm_gelu");
        assert_non_null(strstr(tlm_last_error(), "form"));
        assert_non_null(strstr(tlm_context_last_error(fx->ctx), "tlm_gelu"));
    }
    /* Both known forms work. */
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_gelu(&out, fx->f, TLM_GELU_TANH), TLM_OK);
    assert_non_null(out);
    out = NULL;
    assert_int_equal(tlm_gelu(&out, fx->f, TLM_GELU_EXACT), TLM_OK);
    assert_non_null(out);
}

static void swiglu_rejects_mismatched_shapes(void **state) {
    fixture *fx = *state; /* gate [3, 5] */
    const int64_t other_shapes[][3] = {
        {3, 4, 0}, /* last dimension differs */
        {5, 3, 0}, /* the transpose */
        {15, 0, 0}, /* same count, other rank */
        {5, 0, 0}, /* only the trailing dimension */
        {1, 3, 5}, /* an extra leading 1 */
    };
    const int32_t ranks[] = {2, 2, 1, 1, 3};
    for (size_t i = 0; i < sizeof ranks / sizeof ranks[0]; i++) {
        tlm_tensor *up = NULL;
        assert_int_equal(tlm_tensor_create(&up, fx->ctx, TLM_DTYPE_F32,
                                           ranks[i], other_shapes[i]),
                         TLM_OK);
        tlm_tensor *out = garbage();
        assert_failed(tlm_swiglu(&out, fx->f, up), TLM_E_SHAPE, &out,
                      "tlm_swiglu");
        assert_non_null(strstr(tlm_last_error(), "[3, 5]"));
        out = garbage();
        assert_failed(tlm_swiglu(&out, up, fx->f), TLM_E_SHAPE, &out,
                      "tlm_swiglu");
        tlm_tensor_free(up);
    }
}

static void swiglu_rejects_another_context(void **state) {
    fixture *fx = *state;
    tlm_context *other = NULL;
    tlm_tensor *foreign = NULL;
    const int64_t shape[2] = {3, 5};
    assert_int_equal(tlm_context_create(&other, NULL), TLM_OK);
    assert_int_equal(tlm_tensor_create(&foreign, other, TLM_DTYPE_F32, 2,
                                       shape),
                     TLM_OK);
    tlm_tensor *out = garbage();
    assert_failed(tlm_swiglu(&out, fx->f, foreign), TLM_E_INVALID, &out,
                  "tlm_swiglu");
    assert_non_null(strstr(tlm_last_error(), "another context"));
    out = garbage();
    assert_failed(tlm_swiglu(&out, foreign, fx->f), TLM_E_INVALID, &out,
                  "tlm_swiglu");
    assert_non_null(strstr(tlm_last_error(), "another context"));
    tlm_context_free(other);
}

/* A result from before tlm_context_reset() is refused, not read. */
static void stale_result_is_a_state_error(void **state) {
    fixture *fx = *state;
    for (size_t i = 0; i < N_UNARY; i++) {
        tlm_tensor *stale = NULL;
        assert_int_equal(tlm_relu(&stale, fx->f), TLM_OK);
        assert_int_equal(tlm_context_reset(fx->ctx), TLM_OK);
        tlm_tensor *out = garbage();
        assert_failed(unary_ops[i].call(&out, stale), TLM_E_STATE, &out,
                      unary_ops[i].name);
    }
    tlm_tensor *stale = NULL;
    assert_int_equal(tlm_silu(&stale, fx->f), TLM_OK);
    assert_int_equal(tlm_context_reset(fx->ctx), TLM_OK);
    tlm_tensor *out = garbage();
    assert_failed(tlm_swiglu(&out, fx->f, stale), TLM_E_STATE, &out,
                  "tlm_swiglu: up");
    out = garbage();
    assert_failed(tlm_gelu(&out, stale, TLM_GELU_EXACT), TLM_E_STATE, &out,
                  "tlm_gelu");
}

/* Failed calls leave nothing on the tape: the graph still re-runs. */
static void failures_leave_the_tape_usable(void **state) {
    fixture *fx = *state;
    assert_int_equal(tlm_context_reset(fx->ctx), TLM_OK);
    tlm_tensor *good = NULL, *out = garbage();
    assert_int_equal(tlm_softmax(&good, fx->f), TLM_OK);
    assert_failed(tlm_gelu(&out, good, 9), TLM_E_INVALID, &out, "tlm_gelu");
    out = garbage();
    assert_failed(tlm_log_softmax(&out, fx->ids), TLM_E_INVALID, &out,
                  "tlm_log_softmax");
    assert_int_equal(tlm_context_forward(fx->ctx), TLM_OK);
    out = NULL;
    assert_int_equal(tlm_log_softmax(&out, good), TLM_OK);
    assert_non_null(out);
    assert_int_equal(tlm_context_forward(fx->ctx), TLM_OK);
}

/* When the arena cannot grow, each operation fails with TLM_E_NOMEM and
 * keeps nothing. */
static void allocation_failure_is_nomem(void **state) {
    (void)state;
    for (size_t i = 0; i < N_UNARY; i++) {
        counting_allocator counter = {0};
        tlm_context_params params;
        counting_context_params(&params, &counter);
        params.n_threads = 1;
        tlm_context *ctx = NULL;
        tlm_tensor *a = NULL;
        const int64_t shape[2] = {4, 9};
        assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
        assert_int_equal(tlm_tensor_create(&a, ctx, TLM_DTYPE_F32, 2, shape),
                         TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
        counter.fail_at = (int64_t)counter.calls + 1;
        tlm_tensor *out = garbage();
        assert_failed(unary_ops[i].call(&out, a), TLM_E_NOMEM, &out,
                      unary_ops[i].name);
        counter.fail_at = 0;
        assert_int_equal(unary_ops[i].call(&out, a), TLM_OK);
        assert_non_null(out);
        tlm_context_free(ctx);
        assert_int_equal(counter.live_bytes, 0);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(null_out_is_invalid),
        cmocka_unit_test(null_input_is_invalid),
        cmocka_unit_test(integer_input_is_invalid),
        cmocka_unit_test(gelu_rejects_unknown_forms),
        cmocka_unit_test(swiglu_rejects_mismatched_shapes),
        cmocka_unit_test(swiglu_rejects_another_context),
        cmocka_unit_test(stale_result_is_a_state_error),
        cmocka_unit_test(failures_leave_the_tape_usable),
        cmocka_unit_test(allocation_failure_is_nomem),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
