/*
 * The elementwise operations, matmul and the reductions called with NULL,
 * wrong types, mismatched shapes and foreign tensors.
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
    tlm_context *ctx, *other;
    tlm_tensor *a23, *b23, *row3, *row2, *ids23, *foreign23;
} fixture;

static tlm_tensor *make(tlm_context *ctx, int32_t dtype, int32_t ndim,
                        int64_t d0, int64_t d1) {
    const int64_t shape[2] = {d0, d1};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, dtype, ndim, ndim == 1 ? &shape[1] : shape), TLM_OK);
    return t;
}

static int setup(void **state) {
    static fixture f;
    if (tlm_context_create(&f.ctx, NULL) != TLM_OK ||
        tlm_context_create(&f.other, NULL) != TLM_OK)
        return -1;
    f.a23 = make(f.ctx, TLM_DTYPE_F32, 2, 2, 3);
    f.b23 = make(f.ctx, TLM_DTYPE_F32, 2, 2, 3);
    f.row3 = make(f.ctx, TLM_DTYPE_F32, 1, 1, 3);
    f.row2 = make(f.ctx, TLM_DTYPE_F32, 1, 1, 2);
    f.ids23 = make(f.ctx, TLM_DTYPE_I32, 2, 2, 3);
    f.foreign23 = make(f.other, TLM_DTYPE_F32, 2, 2, 3);
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    tlm_context_free(f->ctx);
    tlm_context_free(f->other);
    return 0;
}

/* `out` is read after the call (argument order is unspecified in C). */
static void assert_fails(int status, int expected, tlm_tensor *const *out,
                         const char *function) {
    assert_int_equal(status, expected);
    assert_null(*out);
    if (strstr(tlm_last_error(), function) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), function);
}

typedef int (*binary_fn)(tlm_tensor **, tlm_tensor *, tlm_tensor *);

static void check_binary(fixture *f, binary_fn fn, const char *name) {
    tlm_tensor *out = f->a23; /* must be overwritten with NULL */
    assert_int_equal(fn(NULL, f->a23, f->b23), TLM_E_INVALID);
    out = f->a23;
    assert_fails(fn(&out, NULL, f->b23), TLM_E_INVALID, &out, name);
    out = f->a23;
    assert_fails(fn(&out, f->a23, NULL), TLM_E_INVALID, &out, name);
    assert_fails(fn(&out, f->ids23, f->b23), TLM_E_INVALID, &out, name);
    assert_fails(fn(&out, f->a23, f->ids23), TLM_E_INVALID, &out, name);
    assert_fails(fn(&out, f->a23, f->row2), TLM_E_SHAPE, &out, name);
    assert_fails(fn(&out, f->row3, f->a23), TLM_E_SHAPE, &out, name); /* b larger */
    assert_fails(fn(&out, f->a23, f->foreign23), TLM_E_INVALID, &out, name);
    assert_int_equal(fn(&out, f->a23, f->row3), TLM_OK);
    assert_non_null(out);
}

static void binary_ops(void **state) {
    fixture *f = *state;
    check_binary(f, tlm_add, "tlm_add");
    check_binary(f, tlm_sub, "tlm_sub");
    check_binary(f, tlm_mul, "tlm_mul");
}

static void unary_ops(void **state) {
    fixture *f = *state;
    tlm_tensor *out = f->a23;
    assert_int_equal(tlm_scale(NULL, f->a23, 2.0f), TLM_E_INVALID);
    assert_fails(tlm_scale(&out, NULL, 2.0f), TLM_E_INVALID, &out, "tlm_scale");
    assert_fails(tlm_scale(&out, f->ids23, 2.0f), TLM_E_INVALID, &out, "tlm_scale");
    assert_fails(tlm_scale(&out, f->a23, NAN), TLM_E_INVALID, &out, "tlm_scale");
    assert_fails(tlm_scale(&out, f->a23, INFINITY), TLM_E_INVALID, &out, "tlm_scale");
    assert_int_equal(tlm_add_scalar(NULL, f->a23, 1.0f), TLM_E_INVALID);
    assert_fails(tlm_add_scalar(&out, NULL, 1.0f), TLM_E_INVALID, &out, "tlm_add_scalar");
    assert_fails(tlm_add_scalar(&out, f->ids23, 1.0f), TLM_E_INVALID, &out, "tlm_add_scalar");
    assert_fails(tlm_add_scalar(&out, f->a23, -INFINITY), TLM_E_INVALID, &out, "tlm_add_scalar");
    assert_int_equal(tlm_sum(NULL, f->a23), TLM_E_INVALID);
    assert_fails(tlm_sum(&out, NULL), TLM_E_INVALID, &out, "tlm_sum");
    assert_fails(tlm_sum(&out, f->ids23), TLM_E_INVALID, &out, "tlm_sum");
    assert_int_equal(tlm_mean(NULL, f->a23), TLM_E_INVALID);
    assert_fails(tlm_mean(&out, NULL), TLM_E_INVALID, &out, "tlm_mean");
    assert_fails(tlm_mean(&out, f->ids23), TLM_E_INVALID, &out, "tlm_mean");
}

static void matmul_checks_shapes(void **state) {
    fixture *f = *state;
    tlm_tensor *out = f->a23;
    tlm_tensor *w34 = make(f->ctx, TLM_DTYPE_F32, 2, 3, 4);
    tlm_tensor *w43 = make(f->ctx, TLM_DTYPE_F32, 2, 4, 3);
    tlm_tensor *bias4 = make(f->ctx, TLM_DTYPE_F32, 1, 1, 4);
    tlm_tensor *bias5 = make(f->ctx, TLM_DTYPE_F32, 1, 1, 5);
    assert_int_equal(tlm_matmul(NULL, f->a23, w34, NULL, 0), TLM_E_INVALID);
    assert_fails(tlm_matmul(&out, NULL, w34, NULL, 0), TLM_E_INVALID, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, NULL, NULL, 0), TLM_E_INVALID, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->ids23, w34, NULL, 0), TLM_E_INVALID, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, w43, NULL, 0), TLM_E_SHAPE, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, w34, NULL, TLM_MATMUL_TRANSPOSE_B), TLM_E_SHAPE, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, w34, bias5, 0), TLM_E_SHAPE, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, w34, f->ids23, 0), TLM_E_INVALID, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, w34, NULL, 0x10), TLM_E_INVALID, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->row3, w34, NULL, 0), TLM_E_SHAPE, &out, "tlm_matmul");
    assert_fails(tlm_matmul(&out, f->a23, f->foreign23, NULL, TLM_MATMUL_TRANSPOSE_B), TLM_E_INVALID, &out, "tlm_matmul");
    /* Batched: leading dimensions must agree. */
    const int64_t a_shape[3] = {2, 5, 3}, b_shape[3] = {3, 3, 4};
    tlm_tensor *a = NULL, *b = NULL;
    assert_int_equal(tlm_tensor_create(&a, f->ctx, TLM_DTYPE_F32, 3, a_shape), TLM_OK);
    assert_int_equal(tlm_tensor_create(&b, f->ctx, TLM_DTYPE_F32, 3, b_shape), TLM_OK);
    assert_fails(tlm_matmul(&out, a, b, NULL, 0), TLM_E_SHAPE, &out, "tlm_matmul");
    assert_int_equal(tlm_matmul(&out, f->a23, w34, bias4, 0), TLM_OK);
    assert_int_equal(tlm_matmul(&out, f->a23, w43, bias4, TLM_MATMUL_TRANSPOSE_B), TLM_OK);
    assert_int_equal(tlm_tensor_dim(out, -1), 4);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(binary_ops),
        cmocka_unit_test(unary_ops),
        cmocka_unit_test(matmul_checks_shapes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
