/* Gradient cases: elementwise operations, matmul, reductions, and the
 * engine's fan-out (one tensor used twice). */
#include "grad_check.h"

static int build_add(tlm_tensor **out, tlm_tensor **in) { return tlm_add(out, in[0], in[1]); }
static int build_sub(tlm_tensor **out, tlm_tensor **in) { return tlm_sub(out, in[0], in[1]); }
static int build_mul(tlm_tensor **out, tlm_tensor **in) { return tlm_mul(out, in[0], in[1]); }
static int build_scale(tlm_tensor **out, tlm_tensor **in) { return tlm_scale(out, in[0], -1.75f); }
static int build_add_scalar(tlm_tensor **out, tlm_tensor **in) { return tlm_add_scalar(out, in[0], 0.5f); }
static int build_sum(tlm_tensor **out, tlm_tensor **in) { return tlm_sum(out, in[0]); }
static int build_mean(tlm_tensor **out, tlm_tensor **in) { return tlm_mean(out, in[0]); }

/* x * x: the same tensor twice, its gradient the sum of both uses. */
static int build_square(tlm_tensor **out, tlm_tensor **in) { return tlm_mul(out, in[0], in[0]); }

/* (a + b) * a: a reaches the result by two paths. */
static int build_two_paths(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *sum = NULL;
    int status = tlm_add(&sum, in[0], in[1]);
    return status ? status : tlm_mul(out, sum, in[0]);
}

static int build_matmul(tlm_tensor **out, tlm_tensor **in) {
    return tlm_matmul(out, in[0], in[1], NULL, 0);
}
static int build_matmul_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_matmul(out, in[0], in[1], in[2], 0);
}
static int build_matmul_t(tlm_tensor **out, tlm_tensor **in) {
    return tlm_matmul(out, in[0], in[1], NULL, TLM_MATMUL_TRANSPOSE_B);
}
static int build_matmul_t_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_matmul(out, in[0], in[1], in[2], TLM_MATMUL_TRANSPOSE_B);
}

/* Intermediate results used several times, by operations of different
 * kinds and twice by one: the engine does not clear results' gradients
 * before a backward pass, so each one's first share is written and the
 * others added (tlmi_grad_target); a wrong order or a missed first write
 * shows up here. w is a result too (a weight scaled), used as the B of two
 * products. */
static int build_shared_results(tlm_tensor **out, tlm_tensor **in) {
    tlm_tensor *w, *h, *twice, *hg, *t, *hht, *mm, *heads, *merged, *ln,
        *left, *right, *sum;
    int s = tlm_scale(&w, in[1], 0.25f);                  /* [8, 8] */
    s = s ? s : tlm_matmul(&h, in[0], w, NULL, 0);         /* [3, 4, 8] */
    s = s ? s : tlm_add(&twice, h, h);
    s = s ? s : tlm_gelu(&hg, h, TLM_GELU_TANH);
    s = s ? s : tlm_transpose(&t, h);                      /* [3, 8, 4] */
    s = s ? s : tlm_matmul(&hht, h, t, NULL, 0);           /* [3, 4, 4] */
    s = s ? s : tlm_matmul(&mm, hht, h, NULL, 0);          /* [3, 4, 8] */
    s = s ? s : tlm_split_heads(&heads, h, 2);             /* [3, 2, 4, 4] */
    s = s ? s : tlm_merge_heads(&merged, heads);           /* [3, 4, 8] */
    s = s ? s : tlm_layer_norm(&ln, h, NULL, NULL, 1e-5f);
    s = s ? s : tlm_mul(&left, twice, hg);
    s = s ? s : tlm_mul(&right, ln, merged);
    s = s ? s : tlm_add(&sum, left, right);
    s = s ? s : tlm_add(&sum, sum, mm);
    return s ? s : tlm_matmul(out, sum, w, NULL, TLM_MATMUL_TRANSPOSE_B);
}

static const grad_case cases[] = {
    {"tlm_add", "same shape 1", 2, {F32(1), F32(1)}, build_add, 0, 0},
    {"tlm_add", "same shape 7x33", 2, {F32(7, 33), F32(7, 33)}, build_add, 0, 0},
    {"tlm_add", "row vector over 3x5x9", 2, {F32(3, 5, 9), F32(9)}, build_add, 0, 0},
    {"tlm_add", "trailing 5x9 over 3x5x9", 2, {F32(3, 5, 9), F32(5, 9)}, build_add, 0, 0},
    {"tlm_sub", "same shape 13", 2, {F32(13), F32(13)}, build_sub, 0, 0},
    {"tlm_sub", "row vector over 4x7", 2, {F32(4, 7), F32(7)}, build_sub, 0, 0},
    {"tlm_mul", "same shape 2x3x5", 2, {F32(2, 3, 5), F32(2, 3, 5)}, build_mul, 0, 0},
    {"tlm_mul", "row vector over 6x11", 2, {F32(6, 11), F32(11)}, build_mul, 0, 0},
    {"tlm_mul", "fan-out x*x, 17", 1, {F32(17)}, build_square, 0, 0},
    {"tlm_mul", "fan-out (a+b)*a, 3x7", 2, {F32(3, 7), F32(3, 7)}, build_two_paths, 0, 0},
    {"tlm_matmul", "fan-out of results to several ops, 3x4x8 . 8x8", 2, {F32(3, 4, 8), F32(8, 8)}, build_shared_results, 0, 0},
    {"tlm_scale", "1", 1, {F32(1)}, build_scale, 0, 0},
    {"tlm_scale", "3x1x9", 1, {F32(3, 1, 9)}, build_scale, 0, 0},
    {"tlm_add_scalar", "1", 1, {F32(1)}, build_add_scalar, 0, 0},
    {"tlm_add_scalar", "2x2x2x3", 1, {F32(2, 2, 2, 3)}, build_add_scalar, 0, 0},
    {"tlm_sum", "1", 1, {F32(1)}, build_sum, 0, 0},
    {"tlm_sum", "5x33", 1, {F32(5, 33)}, build_sum, 0, 0},
    {"tlm_mean", "7", 1, {F32(7)}, build_mean, 0, 0},
    {"tlm_mean", "3x4x5", 1, {F32(3, 4, 5)}, build_mean, 0, 0},
    {"tlm_matmul", "x.W 1x1 . 1x1", 2, {F32(1, 1), F32(1, 1)}, build_matmul, 0, 0},
    {"tlm_matmul", "x.W 7x9 . 9x5", 2, {F32(7, 9), F32(9, 5)}, build_matmul, 0, 0},
    {"tlm_matmul", "x.W+b 2x3x17 . 17x11", 3, {F32(2, 3, 17), F32(17, 11), F32(11)}, build_matmul_bias, 0, 0},
    {"tlm_matmul", "x.W^T 5x13 . (7x13)^T", 2, {F32(5, 13), F32(7, 13)}, build_matmul_t, 0, 0},
    {"tlm_matmul", "x.W^T+b 3x1x9 . (10x9)^T", 3, {F32(3, 1, 9), F32(10, 9), F32(10)}, build_matmul_t_bias, 0, 0},
    {"tlm_matmul", "batched 2x3x5x7 . 2x3x7x4", 2, {F32(2, 3, 5, 7), F32(2, 3, 7, 4)}, build_matmul, 0, 0},
    {"tlm_matmul", "batched ^T 2x3x5x7 . (2x3x6x7)^T", 2, {F32(2, 3, 5, 7), F32(2, 3, 6, 7)}, build_matmul_t, 0, 0},
};

const grad_case_group grad_cases_core = {"core", cases, sizeof cases / sizeof cases[0]};
