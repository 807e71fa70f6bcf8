/* tlm_multi_head_attention(): bad arguments (NULL out and inputs, wrong
 * dtypes, ranks and shapes, n_heads that does not divide, unknown flags,
 * inputs from two contexts), each failing with the exact status, *out NULL
 * and a message naming the function; and its definition: bit for bit the
 * same values and gradients as tlm_split_heads, tlm_attention and
 * tlm_merge_heads, with and without a mask, causal and not, Tq != Tk and
 * Dv != D. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

/* A sentinel that is not NULL, to see *out cleared on failure. */
static tlm_tensor *const NOT_NULL = (tlm_tensor *)&NOT_NULL;

static tlm_tensor *make(tlm_context *ctx, int32_t dtype, int32_t ndim,
                        int64_t d0, int64_t d1, int64_t d2) {
    const int64_t shape[3] = {d0, d1, d2};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, dtype, ndim, shape), TLM_OK);
    return t;
}

static void expect_failure(int status, tlm_tensor *q, tlm_tensor *k,
                           tlm_tensor *v, tlm_tensor *mask, int32_t heads,
                           int32_t flags) {
    tlm_tensor *out = NOT_NULL;
    assert_int_equal(
        tlm_multi_head_attention(&out, q, k, v, mask, heads, flags), status);
    assert_null(out);
    assert_non_null(strstr(tlm_last_error(), "tlm_multi_head_attention"));
}

static void bad_arguments(void **state) {
    (void)state;
    tlm_context *ctx = NULL, *other = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    assert_int_equal(tlm_context_create(&other, NULL), TLM_OK);
    /* Good: B 2, Tq 5, Tk 7, 3 heads of D 4 and Dv 2. */
    tlm_tensor *q = make(ctx, TLM_DTYPE_F32, 3, 2, 5, 12);
    tlm_tensor *k = make(ctx, TLM_DTYPE_F32, 3, 2, 7, 12);
    tlm_tensor *v = make(ctx, TLM_DTYPE_F32, 3, 2, 7, 6);
    tlm_tensor *mask = make(ctx, TLM_DTYPE_I32, 2, 2, 7, 0);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_multi_head_attention(&out, q, k, v, mask, 3,
                                              TLM_ATTENTION_CAUSAL),
                     TLM_OK);
    assert_int_equal(tlm_tensor_ndim(out), 3);
    assert_int_equal(tlm_tensor_dim(out, 1), 5);
    assert_int_equal(tlm_tensor_dim(out, 2), 6);

    assert_int_equal(tlm_multi_head_attention(NULL, q, k, v, NULL, 3, 0),
                     TLM_E_INVALID);
    expect_failure(TLM_E_INVALID, NULL, k, v, NULL, 3, 0);
    expect_failure(TLM_E_INVALID, q, NULL, v, NULL, 3, 0);
    expect_failure(TLM_E_INVALID, q, k, NULL, NULL, 3, 0);
    expect_failure(TLM_E_INVALID, make(ctx, TLM_DTYPE_I32, 3, 2, 5, 12), k,
                   v, NULL, 3, 0);
    expect_failure(TLM_E_INVALID, q, k, v, NULL, 3, 2); /* unknown flag */
    /* ranks */
    expect_failure(TLM_E_SHAPE, make(ctx, TLM_DTYPE_F32, 2, 10, 12, 0), k, v,
                   NULL, 3, 0);
    /* B, Tk, D */
    expect_failure(TLM_E_SHAPE, q, make(ctx, TLM_DTYPE_F32, 3, 1, 7, 12), v,
                   NULL, 3, 0);
    expect_failure(TLM_E_SHAPE, q, k, make(ctx, TLM_DTYPE_F32, 3, 2, 8, 6),
                   NULL, 3, 0);
    expect_failure(TLM_E_SHAPE, q, make(ctx, TLM_DTYPE_F32, 3, 2, 7, 9), v,
                   NULL, 3, 0);
    assert_non_null(strstr(tlm_last_error(), "[2, 7, 9]"));
    /* n_heads: not dividing q's or v's width, zero, negative */
    expect_failure(TLM_E_SHAPE, q, k, v, NULL, 5, 0);
    expect_failure(TLM_E_SHAPE, q, k, v, NULL, 4, 0); /* divides 12, not 6 */
    expect_failure(TLM_E_SHAPE, q, k, v, NULL, 0, 0);
    expect_failure(TLM_E_SHAPE, q, k, v, NULL, -3, 0);
    assert_non_null(strstr(tlm_last_error(), "n_heads -3"));
    /* the mask must be [B, Tk] */
    expect_failure(TLM_E_SHAPE, q, k, v, make(ctx, TLM_DTYPE_F32, 2, 2, 5, 0),
                   3, 0);
    /* Grouped-query attention: 3 query heads over 1 key/value head of D 4
     * (Dv 5) is good; Hkv 2 does not divide 3; v's width 7 is not a
     * multiple of k's Hkv 3; the message names n_heads and both shapes. */
    assert_int_equal(tlm_multi_head_attention(&out,
                                              q, make(ctx, TLM_DTYPE_F32, 3, 2, 7, 4),
                                              make(ctx, TLM_DTYPE_F32, 3, 2, 7, 5),
                                              NULL, 3, 0),
                     TLM_OK);
    assert_int_equal(tlm_tensor_dim(out, 2), 15);
    expect_failure(TLM_E_SHAPE, q, make(ctx, TLM_DTYPE_F32, 3, 2, 7, 8),
                   make(ctx, TLM_DTYPE_F32, 3, 2, 7, 4), NULL, 3, 0);
    assert_non_null(strstr(tlm_last_error(), "Hkv = 2"));
    assert_non_null(strstr(tlm_last_error(), "n_heads 3"));
    assert_non_null(strstr(tlm_last_error(), "[2, 7, 8]"));
    expect_failure(TLM_E_SHAPE, q, k, make(ctx, TLM_DTYPE_F32, 3, 2, 7, 7),
                   NULL, 3, 0);
    assert_non_null(strstr(tlm_last_error(), "[2, 7, 7]"));
    assert_non_null(strstr(tlm_last_error(), "Hkv = 3"));
    /* two contexts */
    expect_failure(TLM_E_INVALID, q, make(other, TLM_DTYPE_F32, 3, 2, 7, 12),
                   v, NULL, 3, 0);
    tlm_context_free(other);
    tlm_context_free(ctx);
}

/* Deterministic values in [-1, 1). */
static void fill(tlm_tensor *t, uint32_t seed) {
    const int64_t n = tlm_tensor_numel(t);
    float values[512];
    assert_true(n <= 512);
    for (int64_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        values[i] = (float)(seed >> 8) / (float)(1u << 23) - 1.0f;
    }
    assert_int_equal(tlm_tensor_set_f32(t, values, n), TLM_OK);
}

typedef struct run {
    float out[512], dq[512], dk[512], dv[512];
} run;

/* out = attention of q [B, Tq, H*D], k, v, then backward of
 * sum(out * weights), by either route. */
static void attend(run *r, int packed, int64_t tq, int64_t tk, int heads,
                   int64_t dim, int64_t v_dim, int with_mask, int32_t flags) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t b = 2;
    tlm_tensor *q = make(ctx, TLM_DTYPE_F32, 3, b, tq, heads * dim);
    tlm_tensor *k = make(ctx, TLM_DTYPE_F32, 3, b, tk, heads * dim);
    tlm_tensor *v = make(ctx, TLM_DTYPE_F32, 3, b, tk, heads * v_dim);
    tlm_tensor *w = make(ctx, TLM_DTYPE_F32, 3, b, tq, heads * v_dim);
    fill(q, 1), fill(k, 2), fill(v, 3), fill(w, 4);
    tlm_tensor *mask = NULL;
    if (with_mask) {
        int32_t visible[64];
        for (int64_t i = 0; i < b * tk; i++)
            visible[i] = (int32_t)(i % 5 != 3);
        mask = make(ctx, TLM_DTYPE_I32, 2, b, tk, 0);
        assert_int_equal(tlm_tensor_set_i32(mask, visible, b * tk), TLM_OK);
    }
    tlm_tensor *inputs[3] = {q, k, v};
    for (int i = 0; i < 3; i++)
        assert_int_equal(tlm_tensor_set_requires_grad(inputs[i], 1), TLM_OK);
    tlm_tensor *out = NULL, *weighted = NULL, *loss = NULL;
    if (packed) {
        assert_int_equal(
            tlm_multi_head_attention(&out, q, k, v, mask, heads, flags),
            TLM_OK);
    } else {
        tlm_tensor *qh = NULL, *kh = NULL, *vh = NULL, *heads_out = NULL;
        assert_int_equal(tlm_split_heads(&qh, q, heads), TLM_OK);
        assert_int_equal(tlm_split_heads(&kh, k, heads), TLM_OK);
        assert_int_equal(tlm_split_heads(&vh, v, heads), TLM_OK);
        assert_int_equal(tlm_attention(&heads_out, qh, kh, vh, mask, flags),
                         TLM_OK);
        assert_int_equal(tlm_merge_heads(&out, heads_out), TLM_OK);
    }
    assert_int_equal(tlm_mul(&weighted, out, w), TLM_OK);
    assert_int_equal(tlm_sum(&loss, weighted), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_int_equal(tlm_tensor_get_f32(out, r->out, tlm_tensor_numel(out)),
                     TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(q, r->dq, tlm_tensor_numel(q)),
                     TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(k, r->dk, tlm_tensor_numel(k)),
                     TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(v, r->dv, tlm_tensor_numel(v)),
                     TLM_OK);
    tlm_context_free(ctx);
}

static void same_as_split_attention_merge(void **state) {
    (void)state;
    static const struct {
        int64_t tq, tk;
        int heads;
        int64_t dim, v_dim;
        int mask;
        int32_t flags;
    } shapes[] = {
        {7, 7, 2, 4, 4, 0, TLM_ATTENTION_CAUSAL},
        {5, 9, 3, 3, 2, 1, 0},
        {9, 4, 1, 5, 3, 1, TLM_ATTENTION_CAUSAL},
        {1, 6, 4, 2, 1, 0, TLM_ATTENTION_CAUSAL},
        {11, 11, 2, 8, 5, 1, TLM_ATTENTION_CAUSAL},
    };
    static run packed, split;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        memset(&packed, 0, sizeof packed);
        memset(&split, 0, sizeof split);
        attend(&packed, 1, shapes[s].tq, shapes[s].tk, shapes[s].heads,
               shapes[s].dim, shapes[s].v_dim, shapes[s].mask,
               shapes[s].flags);
        attend(&split, 0, shapes[s].tq, shapes[s].tk, shapes[s].heads,
               shapes[s].dim, shapes[s].v_dim, shapes[s].mask,
               shapes[s].flags);
        assert_memory_equal(packed.out, split.out, sizeof packed.out);
        assert_memory_equal(packed.dq, split.dq, sizeof packed.dq);
        assert_memory_equal(packed.dk, split.dk, sizeof packed.dk);
        assert_memory_equal(packed.dv, split.dv, sizeof packed.dv);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bad_arguments),
        cmocka_unit_test(same_as_split_attention_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
