/* Gradient cases of the shape operations: reshape (a view), transpose,
 * split/merge of attention heads, concat and slice. Each moves values
 * without arithmetic, so the analytic gradient is exact and the finite
 * differences of a linear map are too: errors sit at float rounding. */
#include "grad_check.h"

/* ---- reshape ---- */

static int build_reshape_1_to_4d(tlm_tensor **out, tlm_tensor **in) {
    const int64_t shape[] = {1, 1, 1, 1};
    return tlm_reshape(out, in[0], 4, shape);
}
static int build_reshape_flatten(tlm_tensor **out, tlm_tensor **in) {
    const int64_t shape[] = {21};
    return tlm_reshape(out, in[0], 1, shape);
}
static int build_reshape_same_shape(tlm_tensor **out, tlm_tensor **in) {
    const int64_t shape[] = {13};
    return tlm_reshape(out, in[0], 1, shape);
}
/* A view of a view: 2x3x5 -> 5x6 -> 3x2x5. */
static int build_reshape_chain(tlm_tensor **out, tlm_tensor **in) {
    const int64_t mid[] = {5, 6}, last[] = {3, 2, 5};
    tlm_tensor *view = NULL;
    int status = tlm_reshape(&view, in[0], 2, mid);
    return status ? status : tlm_reshape(out, view, 3, last);
}
/* A view of a result (x * x), not of a leaf. */
static int build_reshape_of_result(tlm_tensor **out, tlm_tensor **in) {
    const int64_t shape[] = {3, 11};
    tlm_tensor *square = NULL;
    int status = tlm_mul(&square, in[0], in[0]);
    return status ? status : tlm_reshape(out, square, 2, shape);
}
/* Two views of one input meet in a product: the input's gradient is the
 * sum of what both views hand back. 3x7 -> 7x3 twice, product -> 21. */
static int build_reshape_two_views(tlm_tensor **out, tlm_tensor **in) {
    const int64_t shape[] = {7, 3}, flat[] = {21};
    tlm_tensor *v1 = NULL, *v2 = NULL, *product = NULL;
    int status = tlm_reshape(&v1, in[0], 2, shape);
    if (status == TLM_OK)
        status = tlm_reshape(&v2, in[0], 2, shape);
    if (status == TLM_OK)
        status = tlm_mul(&product, v1, v2);
    return status ? status : tlm_reshape(out, product, 1, flat);
}

/* ---- transpose ---- */

static int build_transpose(tlm_tensor **out, tlm_tensor **in) {
    return tlm_transpose(out, in[0]);
}
/* transpose(transpose(x)) * y: the identity, checked through two nodes. */
static int build_transpose_twice(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *t = NULL, *product = NULL;
    int status = tlm_transpose(&t, in[0]);
    if (status == TLM_OK)
        status = tlm_mul(&product, t, in[1]); /* in[1] is [N, M] */
    return status ? status : tlm_transpose(out, product);
}

/* ---- split_heads / merge_heads ---- */

static int build_split_1(tlm_tensor **out, tlm_tensor **in) { return tlm_split_heads(out, in[0], 1); }
static int build_split_3(tlm_tensor **out, tlm_tensor **in) { return tlm_split_heads(out, in[0], 3); }
static int build_split_11(tlm_tensor **out, tlm_tensor **in) { return tlm_split_heads(out, in[0], 11); }
static int build_split_8(tlm_tensor **out, tlm_tensor **in) { return tlm_split_heads(out, in[0], 8); }
static int build_merge(tlm_tensor **out, tlm_tensor **in) { return tlm_merge_heads(out, in[0]); }
/* merge(split(x)) with 5 heads: the identity through both ops. */
static int build_merge_of_split(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *heads = NULL;
    int status = tlm_split_heads(&heads, in[0], 5);
    return status ? status : tlm_merge_heads(out, heads);
}

/* ---- concat ---- */

static int build_concat_one(tlm_tensor **out, tlm_tensor **in) {
    return tlm_concat(out, in, 1, 0);
}
static int build_concat_two_axis0(tlm_tensor **out, tlm_tensor **in) {
    return tlm_concat(out, in, 2, 0);
}
static int build_concat_three_last(tlm_tensor **out, tlm_tensor **in) {
    return tlm_concat(out, in, 3, -1);
}
static int build_concat_two_axis1(tlm_tensor **out, tlm_tensor **in) {
    return tlm_concat(out, in, 2, 1);
}
/* The same tensor twice: both shares of the gradient add up. */
static int build_concat_self(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *pair[2] = {in[0], in[0]};
    return tlm_concat(out, pair, 2, 1);
}
/* The most inputs: 16, cycling through three tensors along axis -2. */
static int build_concat_sixteen(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *list[16];
    for (int i = 0; i < 16; i++)
        list[i] = in[i % 3];
    return tlm_concat(out, list, 16, -2);
}

/* ---- slice ---- */

static int build_slice_whole_1(tlm_tensor **out, tlm_tensor **in) { return tlm_slice(out, in[0], 0, 0, 1); }
static int build_slice_cols(tlm_tensor **out, tlm_tensor **in) { return tlm_slice(out, in[0], 1, 2, 4); }
static int build_slice_first_axis(tlm_tensor **out, tlm_tensor **in) { return tlm_slice(out, in[0], -3, 1, 3); }
static int build_slice_last_entry(tlm_tensor **out, tlm_tensor **in) { return tlm_slice(out, in[0], -1, 12, 1); }
static int build_slice_all(tlm_tensor **out, tlm_tensor **in) { return tlm_slice(out, in[0], 0, 0, 3); }
/* Two overlapping slices of one input, concatenated: the overlap's
 * gradient is the sum of both. */
static int build_slice_overlap(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *parts[2] = {NULL, NULL};
    int status = tlm_slice(&parts[0], in[0], 1, 0, 5);
    if (status == TLM_OK)
        status = tlm_slice(&parts[1], in[0], 1, 3, 6);
    tlm_tensor *joined = NULL;
    if (status == TLM_OK)
        status = tlm_concat(&joined, parts, 2, 1);
    return status ? status : tlm_slice(out, joined, 1, 1, 9);
}

static const grad_case cases[] = {
    {"tlm_reshape", "1 -> 1x1x1x1", 1, {F32(1)}, build_reshape_1_to_4d, 0, 0},
    {"tlm_reshape", "3x7 -> 21", 1, {F32(3, 7)}, build_reshape_flatten, 0, 0},
    {"tlm_reshape", "13 -> 13 (same shape)", 1, {F32(13)}, build_reshape_same_shape, 0, 0},
    {"tlm_reshape", "view of a view 2x3x5 -> 5x6 -> 3x2x5", 1, {F32(2, 3, 5)}, build_reshape_chain, 0, 0},
    {"tlm_reshape", "view of a result (x*x) 33 -> 3x11", 1, {F32(33)}, build_reshape_of_result, 0, 0},
    {"tlm_reshape", "two views of one input, multiplied", 1, {F32(3, 7)}, build_reshape_two_views, 0, 0},

    {"tlm_transpose", "2-D 1x1", 1, {F32(1, 1)}, build_transpose, 0, 0},
    {"tlm_transpose", "2-D 7x13", 1, {F32(7, 13)}, build_transpose, 0, 0},
    {"tlm_transpose", "3-D 3x5x1", 1, {F32(3, 5, 1)}, build_transpose, 0, 0},
    {"tlm_transpose", "3-D 1x9x33", 1, {F32(1, 9, 33)}, build_transpose, 0, 0},
    {"tlm_transpose", "4-D 2x3x5x7", 1, {F32(2, 3, 5, 7)}, build_transpose, 0, 0},
    {"tlm_transpose", "twice, with a product between, 5x3", 2, {F32(5, 3), F32(3, 5)}, build_transpose_twice, 0, 0},

    {"tlm_split_heads", "1x1x1, 1 head", 1, {F32(1, 1, 1)}, build_split_1, 0, 0},
    {"tlm_split_heads", "2x7x12, 3 heads of 4", 1, {F32(2, 7, 12)}, build_split_3, 0, 0},
    {"tlm_split_heads", "3x5x33, 11 heads of 3", 1, {F32(3, 5, 33)}, build_split_11, 0, 0},
    {"tlm_split_heads", "1x13x8, 8 heads of 1", 1, {F32(1, 13, 8)}, build_split_8, 0, 0},

    {"tlm_merge_heads", "1x1x1x1", 1, {F32(1, 1, 1, 1)}, build_merge, 0, 0},
    {"tlm_merge_heads", "2x3x7x4", 1, {F32(2, 3, 7, 4)}, build_merge, 0, 0},
    {"tlm_merge_heads", "3x5x1x13 (T = 1)", 1, {F32(3, 5, 1, 13)}, build_merge, 0, 0},
    {"tlm_merge_heads", "merge(split(x)) 2x3x35, 5 heads", 1, {F32(2, 3, 35)}, build_merge_of_split, 0, 0},

    {"tlm_concat", "one input [1]", 1, {F32(1)}, build_concat_one, 0, 0},
    {"tlm_concat", "axis 0: 3x5 + 4x5", 2, {F32(3, 5), F32(4, 5)}, build_concat_two_axis0, 0, 0},
    {"tlm_concat", "axis -1: 2x3x1 + 2x3x7 + 2x3x5", 3, {F32(2, 3, 1), F32(2, 3, 7), F32(2, 3, 5)}, build_concat_three_last, 0, 0},
    {"tlm_concat", "axis 1 of 4-D: 2x1x3x2 + 2x4x3x2", 2, {F32(2, 1, 3, 2), F32(2, 4, 3, 2)}, build_concat_two_axis1, 0, 0},
    {"tlm_concat", "axis 0, second input constant: 13 + 7", 2, {F32(13), F32_CONST(7)}, build_concat_two_axis0, 0, 0},
    {"tlm_concat", "the same 3x7 twice on axis 1", 1, {F32(3, 7)}, build_concat_self, 0, 0},
    {"tlm_concat", "16 inputs (3 tensors cycled) on axis -2", 3, {F32(2, 1, 3), F32(2, 2, 3), F32(2, 3, 3)}, build_concat_sixteen, 0, 0},

    {"tlm_slice", "[1] axis 0, 0+1", 1, {F32(1)}, build_slice_whole_1, 0, 0},
    {"tlm_slice", "3x7 axis 1, 2+4", 1, {F32(3, 7)}, build_slice_cols, 0, 0},
    {"tlm_slice", "5x3x9 axis -3, 1+3", 1, {F32(5, 3, 9)}, build_slice_first_axis, 0, 0},
    {"tlm_slice", "2x3x4x13 axis -1, last entry 12+1", 1, {F32(2, 3, 4, 13)}, build_slice_last_entry, 0, 0},
    {"tlm_slice", "3x5 axis 0, all of it 0+3", 1, {F32(3, 5)}, build_slice_all, 0, 0},
    {"tlm_slice", "overlapping slices of 4x9, joined, sliced", 1, {F32(4, 9)}, build_slice_overlap, 0, 0},
};

const grad_case_group grad_cases_shape = {"shape", cases, sizeof cases / sizeof cases[0]};
