/*
 * Forward values of the shape operations against hand-written results and
 * against straightforward index formulas computed here. The operations
 * only move values, so every comparison is exact (tolerance 0: the result
 * must hold the very same floats).
 *
 * Also: reshape is a view (shares memory both ways, through chains of
 * views, with its own gradient), the copies are not, merge(split(x)) == x,
 * and tlm_context_forward() after tlm_tensor_set_f32 gives the new values.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static int setup(void **state) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    *state = ctx;
    return 0;
}

static int teardown(void **state) {
    tlm_context_free(*state);
    return 0;
}

/* Distinct, exactly representable values: 1, 2, 3, ... scaled by `mult`. */
static void fill_counting(float *x, int64_t n, float mult) {
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(i + 1) * mult;
}

static tlm_tensor *counting(tlm_context *ctx, int32_t ndim,
                            const int64_t *shape, float mult) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, ndim, shape),
                     TLM_OK);
    fill_counting(tlm_tensor_data_f32(t), tlm_tensor_numel(t), mult);
    return t;
}

static void assert_shape(const tlm_tensor *t, int32_t ndim,
                         const int64_t *expected) {
    int64_t shape[TLM_MAX_DIMS];
    assert_int_equal(tlm_tensor_shape(t, shape, TLM_MAX_DIMS), ndim);
    for (int32_t i = 0; i < ndim; i++)
        assert_int_equal(shape[i], expected[i]);
}

/* Exact equality, element by element, with the index in the message. */
static void assert_values(tlm_tensor *t, const float *expected, int64_t n) {
    assert_int_equal(tlm_tensor_numel(t), n);
    const float *got = tlm_tensor_data_f32(t);
    assert_non_null(got);
    for (int64_t i = 0; i < n; i++)
        if (!(got[i] == expected[i]))
            fail_msg("element %lld: got %.9g, expected %.9g", (long long)i,
                     (double)got[i], (double)expected[i]);
}

/* ---- reshape ------------------------------------------------------------ */

static void reshape_is_a_view(void **state) {
    tlm_context *ctx = *state;
    const int64_t s3x4[] = {3, 4}, s12[] = {12}, s2x6[] = {2, 6},
                  s2x2x3[] = {2, 2, 3};
    tlm_tensor *base = counting(ctx, 2, s3x4, 1.0f);
    tlm_tensor *flat = NULL, *view2 = NULL, *view3 = NULL;
    assert_int_equal(tlm_reshape(&flat, base, 1, s12), TLM_OK);
    assert_int_equal(tlm_reshape(&view2, flat, 2, s2x6), TLM_OK);
    assert_int_equal(tlm_reshape(&view3, view2, 3, s2x2x3), TLM_OK);
    assert_shape(flat, 1, s12);
    assert_shape(view2, 2, s2x6);
    assert_shape(view3, 3, s2x2x3);
    float expected[12];
    fill_counting(expected, 12, 1.0f);
    assert_values(view3, expected, 12);

    /* One buffer: the base's, however many views deep. */
    float *data = tlm_tensor_data_f32(base);
    assert_ptr_equal(tlm_tensor_data_f32(flat), data);
    assert_ptr_equal(tlm_tensor_data_f32(view2), data);
    assert_ptr_equal(tlm_tensor_data_f32(view3), data);

    /* Writes through the view reach the base, and the other way round. */
    tlm_tensor_data_f32(view3)[7] = -8.5f;
    assert_true(data[7] == -8.5f);
    data[11] = 100.0f;
    assert_true(tlm_tensor_data_f32(flat)[11] == 100.0f);
    float replacement[12];
    fill_counting(replacement, 12, -0.25f);
    assert_int_equal(tlm_tensor_set_f32(view2, replacement, 12), TLM_OK);
    assert_values(base, replacement, 12);

    /* A re-run leaves the shared values alone. */
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_values(view3, replacement, 12);
    assert_values(base, replacement, 12);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(base);
}

static void reshape_of_a_result_follows_reruns(void **state) {
    tlm_context *ctx = *state;
    const int64_t s2x3[] = {2, 3}, s3x2[] = {3, 2}, s6[] = {6};
    tlm_tensor *x = counting(ctx, 2, s2x3, 1.0f);
    tlm_tensor *scaled = NULL, *view = NULL, *after = NULL;
    assert_int_equal(tlm_scale(&scaled, x, 2.0f), TLM_OK);
    assert_int_equal(tlm_reshape(&view, scaled, 2, s3x2), TLM_OK);
    assert_int_equal(tlm_add_scalar(&after, view, 1.0f), TLM_OK);
    assert_ptr_equal(tlm_tensor_data_f32(view), tlm_tensor_data_f32(scaled));
    const float first[6] = {3, 5, 7, 9, 11, 13};
    assert_values(after, first, 6);

    const float fresh[6] = {0.5f, -1, 4, 0, 2.25f, -3};
    assert_int_equal(tlm_tensor_set_f32(x, fresh, 6), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    const float doubled[6] = {1, -2, 8, 0, 4.5f, -6};
    const float plus_one[6] = {2, -1, 9, 1, 5.5f, -5};
    assert_values(view, doubled, 6);
    assert_values(after, plus_one, 6);

    /* A view of that view still shares the result's data. Writing into
     * it writes into the result; a re-run recomputes the result from x. */
    tlm_tensor *flat = NULL;
    assert_int_equal(tlm_reshape(&flat, view, 1, s6), TLM_OK);
    assert_ptr_equal(tlm_tensor_data_f32(flat), tlm_tensor_data_f32(scaled));
    const float written[6] = {9, 9, 9, 9, 9, 9};
    assert_int_equal(tlm_tensor_set_f32(flat, written, 6), TLM_OK);
    assert_values(scaled, written, 6);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_values(scaled, doubled, 6);
    assert_values(flat, doubled, 6);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(x);
}

static void reshape_has_its_own_gradient(void **state) {
    tlm_context *ctx = *state;
    const int64_t s2x3[] = {2, 3}, s6[] = {6};
    tlm_tensor *x = counting(ctx, 2, s2x3, 1.0f);
    tlm_tensor *weights = counting(ctx, 1, s6, 0.5f);
    assert_int_equal(tlm_tensor_set_requires_grad(x, 1), TLM_OK);
    tlm_tensor *view = NULL, *weighted = NULL, *loss = NULL;
    assert_int_equal(tlm_reshape(&view, x, 1, s6), TLM_OK);
    assert_int_equal(tlm_tensor_requires_grad(view), 1);
    float *view_grad = tlm_tensor_grad_data_f32(view);
    assert_non_null(view_grad);
    assert_true(view_grad != tlm_tensor_grad_data_f32(x));
    assert_int_equal(tlm_mul(&weighted, view, weights), TLM_OK);
    assert_int_equal(tlm_sum(&loss, weighted), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    /* d loss / d x = the weights, in x's layout. */
    float grad[6];
    assert_int_equal(tlm_tensor_get_grad_f32(x, grad, 6), TLM_OK);
    for (int i = 0; i < 6; i++)
        assert_true(grad[i] == 0.5f * (float)(i + 1));
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(x);
    tlm_tensor_free(weights);
}

static void reshape_without_recording_is_still_a_view(void **state) {
    tlm_context *ctx = *state;
    const int64_t s5[] = {5}, s1x5x1[] = {1, 5, 1};
    tlm_tensor *x = counting(ctx, 1, s5, 3.0f);
    assert_int_equal(tlm_tensor_set_requires_grad(x, 1), TLM_OK);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 0), TLM_OK);
    tlm_tensor *view = NULL;
    assert_int_equal(tlm_reshape(&view, x, 3, s1x5x1), TLM_OK);
    assert_ptr_equal(tlm_tensor_data_f32(view), tlm_tensor_data_f32(x));
    assert_int_equal(tlm_tensor_requires_grad(view), 0);
    assert_int_equal(tlm_context_set_grad_enabled(ctx, 1), TLM_OK);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(x);
}

/* ---- transpose ---------------------------------------------------------- */

static void transpose_by_hand(void **state) {
    tlm_context *ctx = *state;
    /* [2, 3]: 1 2 3 / 4 5 6  ->  [3, 2]: 1 4 / 2 5 / 3 6 */
    const int64_t s2x3[] = {2, 3}, s3x2[] = {3, 2};
    tlm_tensor *a = counting(ctx, 2, s2x3, 1.0f), *t = NULL;
    assert_int_equal(tlm_transpose(&t, a), TLM_OK);
    assert_shape(t, 2, s3x2);
    const float expected[6] = {1, 4, 2, 5, 3, 6};
    assert_values(t, expected, 6);
    /* A copy, not a view. */
    assert_true(tlm_tensor_data_f32(t) != tlm_tensor_data_f32(a));

    /* [1, 1] stays itself. */
    const int64_t s1x1[] = {1, 1};
    tlm_tensor *one = counting(ctx, 2, s1x1, 7.0f), *t1 = NULL;
    assert_int_equal(tlm_transpose(&t1, one), TLM_OK);
    const float seven[1] = {7};
    assert_values(t1, seven, 1);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(a);
    tlm_tensor_free(one);
}

/* out[..., j, i] = a[..., i, j] for 3-D and 4-D with odd sizes. */
static void check_transpose(tlm_context *ctx, int32_t ndim,
                            const int64_t *shape) {
    tlm_tensor *a = counting(ctx, ndim, shape, 0.5f), *t = NULL;
    assert_int_equal(tlm_transpose(&t, a), TLM_OK);
    int64_t swapped[TLM_MAX_DIMS];
    memcpy(swapped, shape, (size_t)ndim * sizeof shape[0]);
    swapped[ndim - 2] = shape[ndim - 1];
    swapped[ndim - 1] = shape[ndim - 2];
    assert_shape(t, ndim, swapped);
    const int64_t m = shape[ndim - 2], n = shape[ndim - 1];
    const int64_t batch = tlm_tensor_numel(a) / (m * n);
    const float *x = tlm_tensor_data_f32(a), *y = tlm_tensor_data_f32(t);
    for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++)
                assert_true(y[(b * n + j) * m + i] == x[(b * m + i) * n + j]);
    tlm_tensor_free(a);
}

static void transpose_by_formula(void **state) {
    tlm_context *ctx = *state;
    const int64_t s3d[] = {3, 5, 7}, s4d[] = {2, 3, 13, 9},
                  s4d_ones[] = {1, 1, 1, 33};
    check_transpose(ctx, 3, s3d);
    check_transpose(ctx, 4, s4d);
    check_transpose(ctx, 4, s4d_ones);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
}

/* ---- split_heads / merge_heads ------------------------------------------ */

static void split_and_merge_by_hand(void **state) {
    tlm_context *ctx = *state;
    /* [1, 2, 4], 2 heads of 2: t0 = 1 2 | 3 4, t1 = 5 6 | 7 8.
     * Head 0 takes 1 2 / 5 6, head 1 takes 3 4 / 7 8. */
    const int64_t s1x2x4[] = {1, 2, 4}, s1x2x2x2[] = {1, 2, 2, 2};
    tlm_tensor *a = counting(ctx, 3, s1x2x4, 1.0f), *heads = NULL,
               *merged = NULL;
    assert_int_equal(tlm_split_heads(&heads, a, 2), TLM_OK);
    assert_shape(heads, 4, s1x2x2x2);
    const float split[8] = {1, 2, 5, 6, 3, 4, 7, 8};
    assert_values(heads, split, 8);

    /* And merge of that [1, 2, 2, 2] directly. */
    tlm_tensor *h = counting(ctx, 4, s1x2x2x2, 1.0f);
    assert_int_equal(tlm_merge_heads(&merged, h), TLM_OK);
    assert_shape(merged, 3, s1x2x4);
    const float merge[8] = {1, 2, 5, 6, 3, 4, 7, 8};
    assert_values(merged, merge, 8);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(a);
    tlm_tensor_free(h);
}

static void split_heads_by_formula(void **state) {
    tlm_context *ctx = *state;
    const int64_t B = 3, T = 5, H = 11, D = 3;
    const int64_t shape[] = {B, T, H * D}, expected_shape[] = {B, H, T, D};
    tlm_tensor *a = counting(ctx, 3, shape, 0.25f), *heads = NULL;
    assert_int_equal(tlm_split_heads(&heads, a, (int32_t)H), TLM_OK);
    assert_shape(heads, 4, expected_shape);
    const float *x = tlm_tensor_data_f32(a), *y = tlm_tensor_data_f32(heads);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++)
                for (int64_t d = 0; d < D; d++)
                    assert_true(y[((b * H + h) * T + t) * D + d] ==
                                x[(b * T + t) * H * D + h * D + d]);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(a);
}

static void merge_of_split_is_identity(void **state) {
    tlm_context *ctx = *state;
    const int64_t sizes[][4] = {{1, 1, 1, 1}, {2, 7, 3, 5}, {3, 1, 13, 1},
                                {1, 9, 7, 1}};
    for (size_t c = 0; c < sizeof sizes / sizeof sizes[0]; c++) {
        const int64_t B = sizes[c][0], T = sizes[c][1], H = sizes[c][2],
                      D = sizes[c][3];
        const int64_t shape[] = {B, T, H * D};
        tlm_tensor *x = counting(ctx, 3, shape, -1.5f), *heads = NULL,
                   *back = NULL;
        assert_int_equal(tlm_split_heads(&heads, x, (int32_t)H), TLM_OK);
        assert_int_equal(tlm_merge_heads(&back, heads), TLM_OK);
        assert_shape(back, 3, shape);
        assert_values(back, tlm_tensor_data_f32(x), B * T * H * D);
        /* And split(merge(h)) == h. */
        tlm_tensor *again = NULL;
        assert_int_equal(tlm_split_heads(&again, back, (int32_t)H), TLM_OK);
        assert_values(again, tlm_tensor_data_f32(heads), B * T * H * D);
        assert_int_equal(tlm_context_reset(ctx), TLM_OK);
        tlm_tensor_free(x);
    }
}

/* ---- concat ------------------------------------------------------------- */

static void concat_by_hand(void **state) {
    tlm_context *ctx = *state;
    const int64_t s2x2[] = {2, 2}, s2x3[] = {2, 3}, s1x2[] = {1, 2};
    /* a = 1 2 / 3 4, b = 10 20 30 / 40 50 60, c = 100 200 */
    tlm_tensor *a = counting(ctx, 2, s2x2, 1.0f);
    tlm_tensor *b = counting(ctx, 2, s2x3, 10.0f);
    tlm_tensor *c = counting(ctx, 2, s1x2, 100.0f);

    tlm_tensor *ab[2] = {a, b}, *rows = NULL, *cols = NULL, *cols_neg = NULL;
    assert_int_equal(tlm_concat(&cols, ab, 2, 1), TLM_OK);
    const int64_t s2x5[] = {2, 5};
    assert_shape(cols, 2, s2x5);
    const float by_cols[10] = {1, 2, 10, 20, 30, 3, 4, 40, 50, 60};
    assert_values(cols, by_cols, 10);
    assert_int_equal(tlm_concat(&cols_neg, ab, 2, -1), TLM_OK);
    assert_values(cols_neg, by_cols, 10);

    tlm_tensor *aca[3] = {a, c, a};
    assert_int_equal(tlm_concat(&rows, aca, 3, 0), TLM_OK);
    const int64_t s5x2[] = {5, 2};
    assert_shape(rows, 2, s5x2);
    const float by_rows[10] = {1, 2, 3, 4, 100, 200, 1, 2, 3, 4};
    assert_values(rows, by_rows, 10);

    /* One input: a copy with its own memory. */
    tlm_tensor *alone = NULL;
    assert_int_equal(tlm_concat(&alone, &b, 1, 0), TLM_OK);
    assert_values(alone, tlm_tensor_data_f32(b), 6);
    assert_true(tlm_tensor_data_f32(alone) != tlm_tensor_data_f32(b));
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(a);
    tlm_tensor_free(b);
    tlm_tensor_free(c);
}

/* Joining along the middle axis of [2, n_i, 3]: out[p, q, r] comes from
 * the input whose range of axis 1 holds q. */
static void concat_middle_axis_by_formula(void **state) {
    tlm_context *ctx = *state;
    const int64_t lengths[3] = {1, 7, 5};
    tlm_tensor *in[3];
    for (int i = 0; i < 3; i++) {
        const int64_t shape[] = {2, lengths[i], 3};
        in[i] = counting(ctx, 3, shape, (float)(i + 1));
    }
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_concat(&out, in, 3, 1), TLM_OK);
    const int64_t expected_shape[] = {2, 13, 3};
    assert_shape(out, 3, expected_shape);
    const float *y = tlm_tensor_data_f32(out);
    for (int64_t p = 0; p < 2; p++) {
        int64_t q = 0;
        for (int i = 0; i < 3; i++) {
            const float *x = tlm_tensor_data_f32(in[i]);
            for (int64_t k = 0; k < lengths[i]; k++, q++)
                for (int64_t r = 0; r < 3; r++)
                    assert_true(y[(p * 13 + q) * 3 + r] ==
                                x[(p * lengths[i] + k) * 3 + r]);
        }
    }
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    for (int i = 0; i < 3; i++)
        tlm_tensor_free(in[i]);
}

/* ---- slice -------------------------------------------------------------- */

static void slice_by_hand(void **state) {
    tlm_context *ctx = *state;
    /* [3, 4]: 1 2 3 4 / 5 6 7 8 / 9 10 11 12 */
    const int64_t s3x4[] = {3, 4};
    tlm_tensor *a = counting(ctx, 2, s3x4, 1.0f);
    tlm_tensor *cols = NULL, *rows = NULL, *last = NULL;
    assert_int_equal(tlm_slice(&cols, a, 1, 1, 2), TLM_OK);
    const int64_t s3x2[] = {3, 2};
    assert_shape(cols, 2, s3x2);
    const float mid_cols[6] = {2, 3, 6, 7, 10, 11};
    assert_values(cols, mid_cols, 6);

    assert_int_equal(tlm_slice(&rows, a, -2, 1, 2), TLM_OK);
    const int64_t s2x4[] = {2, 4};
    assert_shape(rows, 2, s2x4);
    const float low_rows[8] = {5, 6, 7, 8, 9, 10, 11, 12};
    assert_values(rows, low_rows, 8);

    assert_int_equal(tlm_slice(&last, a, -1, 3, 1), TLM_OK);
    const float last_col[3] = {4, 8, 12};
    assert_values(last, last_col, 3);

    /* A copy: changing a does not change the slice until a re-run. */
    assert_true(tlm_tensor_data_f32(rows) != tlm_tensor_data_f32(a) + 4);
    tlm_tensor_data_f32(a)[5] = -6.0f;
    assert_values(cols, mid_cols, 6);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    const float mid_cols_after[6] = {2, 3, -6, 7, 10, 11};
    assert_values(cols, mid_cols_after, 6);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(a);
}

static void slice_by_formula(void **state) {
    tlm_context *ctx = *state;
    const int64_t shape[] = {3, 5, 7, 9};
    tlm_tensor *a = counting(ctx, 4, shape, 1.0f);
    const float *x = tlm_tensor_data_f32(a);
    /* Every axis, through its positive and negative name. */
    for (int32_t axis = 0; axis < 4; axis++) {
        const int64_t start = shape[axis] / 2, length = (shape[axis] + 1) / 2;
        for (int named = 0; named < 2; named++) {
            tlm_tensor *s = NULL;
            assert_int_equal(tlm_slice(&s, a, named ? axis - 4 : axis, start,
                                       length),
                             TLM_OK);
            int64_t sliced[4] = {shape[0], shape[1], shape[2], shape[3]};
            sliced[axis] = length;
            assert_shape(s, 4, sliced);
            const float *y = tlm_tensor_data_f32(s);
            int64_t at = 0;
            for (int64_t i = 0; i < sliced[0]; i++)
                for (int64_t j = 0; j < sliced[1]; j++)
                    for (int64_t k = 0; k < sliced[2]; k++)
                        for (int64_t l = 0; l < sliced[3]; l++, at++) {
                            int64_t idx[4] = {i, j, k, l};
                            idx[axis] += start;
                            const int64_t from =
                                ((idx[0] * shape[1] + idx[1]) * shape[2] +
                                 idx[2]) * shape[3] + idx[3];
                            assert_true(y[at] == x[from]);
                        }
        }
    }
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(a);
}

/* ---- re-running a graph ------------------------------------------------- */

/* A graph of every op: x [2, 3, 4] -> split into 2 heads -> transpose
 * each head -> merge -> reshape -> slice, concatenated with a view of x,
 * sliced again. After new values in x and tlm_context_forward(), every
 * node holds what a fresh build on the new values gives. */
static void rerun_gives_the_new_result(void **state) {
    tlm_context *ctx = *state;
    const int64_t s2x3x4[] = {2, 3, 4}, s2x12[] = {2, 12};
    tlm_tensor *x = counting(ctx, 3, s2x3x4, 1.0f);

    tlm_tensor *heads = NULL, *flipped = NULL, *merged = NULL, *part = NULL,
               *view = NULL, *joined = NULL, *middle = NULL;
    assert_int_equal(tlm_split_heads(&heads, x, 2), TLM_OK);   /* [2,2,3,2] */
    assert_int_equal(tlm_transpose(&flipped, heads), TLM_OK);  /* [2,2,2,3] */
    assert_int_equal(tlm_merge_heads(&merged, flipped), TLM_OK); /* [2,2,6] */
    const int64_t s2x12b[] = {2, 12};
    tlm_tensor *merged_flat = NULL;
    assert_int_equal(tlm_reshape(&merged_flat, merged, 2, s2x12b), TLM_OK);
    assert_int_equal(tlm_slice(&part, merged_flat, 1, 3, 7), TLM_OK); /* [2,7] */
    assert_int_equal(tlm_reshape(&view, x, 2, s2x12), TLM_OK);
    tlm_tensor *pair[2] = {part, view};
    assert_int_equal(tlm_concat(&joined, pair, 2, -1), TLM_OK); /* [2,19] */
    assert_int_equal(tlm_slice(&middle, joined, 0, 1, 1), TLM_OK); /* [1,19] */

    const int n_nodes = 8;
    tlm_tensor *nodes[8] = {heads, flipped, merged, merged_flat, part, view,
                            joined, middle};
    float before[8][40];
    for (int i = 0; i < n_nodes; i++)
        assert_int_equal(tlm_tensor_get_f32(nodes[i], before[i],
                                            tlm_tensor_numel(nodes[i])),
                         TLM_OK);

    /* New values, re-run. */
    float fresh[24];
    for (int i = 0; i < 24; i++)
        fresh[i] = (float)((i * 7) % 24) - 11.5f;
    assert_int_equal(tlm_tensor_set_f32(x, fresh, 24), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    float rerun[8][40];
    for (int i = 0; i < n_nodes; i++)
        assert_int_equal(tlm_tensor_get_f32(nodes[i], rerun[i],
                                            tlm_tensor_numel(nodes[i])),
                         TLM_OK);

    /* A fresh build on a second tensor holding the new values. */
    tlm_tensor *y = NULL;
    assert_int_equal(tlm_tensor_from_f32(&y, ctx, 3, s2x3x4, fresh), TLM_OK);
    tlm_tensor *f_heads = NULL, *f_flipped = NULL, *f_merged = NULL,
               *f_flat = NULL, *f_part = NULL, *f_view = NULL,
               *f_joined = NULL, *f_middle = NULL;
    assert_int_equal(tlm_split_heads(&f_heads, y, 2), TLM_OK);
    assert_int_equal(tlm_transpose(&f_flipped, f_heads), TLM_OK);
    assert_int_equal(tlm_merge_heads(&f_merged, f_flipped), TLM_OK);
    assert_int_equal(tlm_reshape(&f_flat, f_merged, 2, s2x12b), TLM_OK);
    assert_int_equal(tlm_slice(&f_part, f_flat, 1, 3, 7), TLM_OK);
    assert_int_equal(tlm_reshape(&f_view, y, 2, s2x12), TLM_OK);
    tlm_tensor *f_pair[2] = {f_part, f_view};
    assert_int_equal(tlm_concat(&f_joined, f_pair, 2, -1), TLM_OK);
    assert_int_equal(tlm_slice(&f_middle, f_joined, 0, 1, 1), TLM_OK);
    tlm_tensor *fresh_nodes[8] = {f_heads, f_flipped, f_merged, f_flat,
                                  f_part, f_view, f_joined, f_middle};
    int changed = 0;
    for (int i = 0; i < n_nodes; i++) {
        const int64_t n = tlm_tensor_numel(nodes[i]);
        assert_values(fresh_nodes[i], rerun[i], n);
        changed += memcmp(before[i], rerun[i], (size_t)n * sizeof(float)) != 0;
    }
    assert_int_equal(changed, n_nodes); /* every node saw the new values */

    /* Spot-check by hand: x[0, 1, :] = fresh[4..7] is row 0, columns
     * 4..7 of the view, i.e. columns 11..14 of joined (7 + 4). */
    float joined_values[38];
    assert_int_equal(tlm_tensor_get_f32(joined, joined_values, 38), TLM_OK);
    for (int j = 0; j < 4; j++)
        assert_true(joined_values[7 + 4 + j] == fresh[4 + j]);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(x);
    tlm_tensor_free(y);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(reshape_is_a_view, setup, teardown),
        cmocka_unit_test_setup_teardown(reshape_of_a_result_follows_reruns,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(reshape_has_its_own_gradient, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reshape_without_recording_is_still_a_view,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(transpose_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(transpose_by_formula, setup, teardown),
        cmocka_unit_test_setup_teardown(split_and_merge_by_hand, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(split_heads_by_formula, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(merge_of_split_is_identity, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(concat_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(concat_middle_axis_by_formula, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(slice_by_hand, setup, teardown),
        cmocka_unit_test_setup_teardown(slice_by_formula, setup, teardown),
        cmocka_unit_test_setup_teardown(rerun_gives_the_new_result, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
