/*
 * Forward values of the sequence operations (embedding, sinusoidal
 * positions, RoPE, dropout, cross-entropy) against hand-computed results
 * or straightforward double-precision formulas, on small and odd sizes;
 * and the behaviours their documentation promises: re-runs with new input
 * values, evaluation vs training mode, seeds, ignored targets.
 *
 * Tolerances: a result that is one float operation away from exact values
 * is compared to within a few float32 ulps (about 1e-7 relative); longer
 * computations get the bound stated at each check.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

#define PI 3.14159265358979323846

/* ---- helpers ---- */

/* Deterministic values in [-1, 1) (a small LCG: no dependence on libc). */
static float next_value(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 40) / 8388608.0 - 1.0);
}

static tlm_context *new_context(void) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    return ctx;
}

/* A float leaf of `shape` filled with next_value() * scale + shift. */
static tlm_tensor *random_f32(tlm_context *ctx, int32_t ndim,
                              const int64_t *shape, uint64_t seed,
                              float scale, float shift) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, ndim, shape),
                     TLM_OK);
    float *x = tlm_tensor_data_f32(t);
    uint64_t state = seed;
    for (int64_t i = 0; i < tlm_tensor_numel(t); i++)
        x[i] = next_value(&state) * scale + shift;
    return t;
}

static tlm_tensor *ids_tensor(tlm_context *ctx, int32_t ndim,
                              const int64_t *shape, const int32_t *values) {
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_from_i32(&t, ctx, ndim, shape, values),
                     TLM_OK);
    return t;
}

static void assert_shape(tlm_tensor *t, int32_t ndim, const int64_t *shape) {
    int64_t got[TLM_MAX_DIMS];
    assert_int_equal(tlm_tensor_shape(t, got, TLM_MAX_DIMS), ndim);
    for (int32_t i = 0; i < ndim; i++)
        assert_int_equal(got[i], shape[i]);
}

/* |got - want| <= tolerance * max(1, |want|) */
static void assert_close(double got, double want, double tolerance) {
    double scale = fabs(want) > 1.0 ? fabs(want) : 1.0;
    if (!(fabs(got - want) <= tolerance * scale))
        fail_msg("got %.9g, want %.9g (tolerance %.1e)", got, want, tolerance);
}

/* ---- tlm_embedding ---- */

static void embedding_gathers_rows(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    /* table [7, 3]: row v holds 10 v + j + 0.5 */
    const int64_t table_shape[2] = {7, 3};
    tlm_tensor *table = NULL;
    assert_int_equal(tlm_tensor_create(&table, ctx, TLM_DTYPE_F32, 2,
                                       table_shape),
                     TLM_OK);
    float *t = tlm_tensor_data_f32(table);
    for (int v = 0; v < 7; v++)
        for (int j = 0; j < 3; j++)
            t[v * 3 + j] = (float)(10 * v + j) + 0.5f;
    const int64_t ids_shape[2] = {2, 3};
    const int32_t ids_values[6] = {6, 0, 3, 3, 1, 6};
    tlm_tensor *ids = ids_tensor(ctx, 2, ids_shape, ids_values);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_embedding(&out, table, ids), TLM_OK);
    const int64_t want_shape[3] = {2, 3, 3};
    assert_shape(out, 3, want_shape);
    const float *y = tlm_tensor_data_f32(out);
    for (int i = 0; i < 6; i++)
        for (int j = 0; j < 3; j++)
            assert_true(y[i * 3 + j] == (float)(10 * ids_values[i] + j) + 0.5f);

    /* a single id of a one-row table */
    const int64_t one[1] = {1}, one_by_one[2] = {1, 1};
    const int32_t zero = 0;
    tlm_tensor *small = random_f32(ctx, 2, one_by_one, 3, 1.0f, 0.0f);
    assert_int_equal(tlm_embedding(&out, small, ids_tensor(ctx, 1, one, &zero)),
                     TLM_OK);
    assert_shape(out, 2, one_by_one);
    assert_true(tlm_tensor_data_f32(out)[0] == tlm_tensor_data_f32(small)[0]);
    tlm_context_free(ctx);
}

/* Ids [2, 1, 3] give a 4-D result; every row is a copy of its table row. */
static void embedding_of_3d_ids_is_4d(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t table_shape[2] = {4, 5}, ids_shape[3] = {2, 1, 3};
    const int32_t ids_values[6] = {3, 2, 1, 0, 0, 3};
    tlm_tensor *table = random_f32(ctx, 2, table_shape, 11, 1.0f, 0.0f);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_embedding(&out, table,
                                   ids_tensor(ctx, 3, ids_shape, ids_values)),
                     TLM_OK);
    const int64_t want_shape[4] = {2, 1, 3, 5};
    assert_shape(out, 4, want_shape);
    const float *y = tlm_tensor_data_f32(out), *t = tlm_tensor_data_f32(table);
    for (int i = 0; i < 6; i++)
        assert_memory_equal(y + i * 5, t + ids_values[i] * 5,
                            5 * sizeof(float));
    tlm_context_free(ctx);
}

static void embedding_rerun_sees_new_ids_and_table(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t table_shape[2] = {3, 2}, ids_shape[1] = {3};
    const float first[6] = {1, 2, 3, 4, 5, 6}, second[6] = {-1, -2, -3, -4,
                                                          -5, -6};
    tlm_tensor *table = NULL;
    assert_int_equal(tlm_tensor_from_f32(&table, ctx, 2, table_shape, first),
                     TLM_OK);
    const int32_t ids_first[3] = {0, 1, 2}, ids_second[3] = {2, 2, 0};
    tlm_tensor *ids = ids_tensor(ctx, 1, ids_shape, ids_first);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_embedding(&out, table, ids), TLM_OK);
    float y[6];
    assert_int_equal(tlm_tensor_get_f32(out, y, 6), TLM_OK);
    assert_memory_equal(y, first, sizeof y);

    assert_int_equal(tlm_tensor_set_i32(ids, ids_second, 3), TLM_OK);
    assert_int_equal(tlm_tensor_set_f32(table, second, 6), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    const float want[6] = {-5, -6, -5, -6, -1, -2};
    assert_int_equal(tlm_tensor_get_f32(out, y, 6), TLM_OK);
    assert_memory_equal(y, want, sizeof y);
    tlm_context_free(ctx);
}

/* d sum(out) / d table: each row gets one per occurrence of its id. */
static void embedding_backward_counts_repeated_ids(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t table_shape[2] = {5, 3}, ids_shape[1] = {7};
    const int32_t ids_values[7] = {4, 1, 4, 0, 4, 1, 2};
    const float counts[5] = {1, 2, 1, 0, 3};
    tlm_tensor *table = random_f32(ctx, 2, table_shape, 5, 1.0f, 0.0f);
    assert_int_equal(tlm_tensor_set_requires_grad(table, 1), TLM_OK);
    tlm_tensor *out = NULL, *loss = NULL;
    assert_int_equal(tlm_embedding(&out, table,
                                   ids_tensor(ctx, 1, ids_shape, ids_values)),
                     TLM_OK);
    assert_int_equal(tlm_sum(&loss, out), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[15];
    assert_int_equal(tlm_tensor_get_grad_f32(table, grad, 15), TLM_OK);
    for (int v = 0; v < 5; v++)
        for (int j = 0; j < 3; j++)
            assert_true(grad[v * 3 + j] == counts[v]);
    tlm_context_free(ctx);
}

/* ---- tlm_add_sinusoidal_positions ---- */

static double sinusoid(int64_t position, int64_t pair, int64_t d, int cosine) {
    double angle = (double)position / pow(10000.0, (double)(2 * pair) / (double)d);
    return cosine ? cos(angle) : sin(angle);
}

/* a + PE on [B, T, D] with the position offset + t; PE computed here in
 * double straight from the formula of the documentation. */
static void check_sinusoidal(int32_t ndim, const int64_t *shape,
                             int64_t offset) {
    tlm_context *ctx = new_context();
    tlm_tensor *a = random_f32(ctx, ndim, shape, 7, 1.0f, 0.0f);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_add_sinusoidal_positions(&out, a, offset), TLM_OK);
    assert_shape(out, ndim, shape);
    const int64_t t = shape[ndim - 2], d = shape[ndim - 1];
    const float *x = tlm_tensor_data_f32(a), *y = tlm_tensor_data_f32(out);
    for (int64_t i = 0; i < tlm_tensor_numel(a); i++) {
        int64_t time = (i / d) % t, k = i % d;
        double want = (double)x[i] + sinusoid(offset + time, k / 2, d, k % 2);
        /* one float addition of two values below 2: 2 ulps of 2 */
        assert_close((double)y[i], want, 5e-7);
    }
    tlm_context_free(ctx);
}

static void sinusoidal_matches_formula(void **state) {
    (void)state;
    const int64_t s1[2] = {1, 2}, s2[3] = {2, 5, 6}, s3[4] = {2, 1, 3, 14},
                  s4[2] = {13, 34};
    check_sinusoidal(2, s1, 0);
    check_sinusoidal(3, s2, 7);
    check_sinusoidal(4, s3, 1);
    check_sinusoidal(2, s4, 0);
    /* Large positions: the angle is computed in double, so the values
     * stay correct where a float angle would be off by ~1e-2. */
    check_sinusoidal(3, s2, 1000003);
}

/* Position 0 encodes as [0, 1, 0, 1, ...]: checked by hand. */
static void sinusoidal_first_position_by_hand(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {2, 4};
    tlm_tensor *a = NULL;
    assert_int_equal(tlm_tensor_create(&a, ctx, TLM_DTYPE_F32, 2, shape),
                     TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_add_sinusoidal_positions(&out, a, 0), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    /* t = 0 */
    assert_true(y[0] == 0.0f && y[1] == 1.0f && y[2] == 0.0f && y[3] == 1.0f);
    /* t = 1: pair 0 has frequency 1, pair 1 has 1/100 (10000^(2/4)) */
    assert_close((double)y[4], sin(1.0), 1e-7);
    assert_close((double)y[5], cos(1.0), 1e-7);
    assert_close((double)y[6], sin(0.01), 1e-7);
    assert_close((double)y[7], cos(0.01), 1e-7);
    tlm_context_free(ctx);
}

static void sinusoidal_rerun_sees_new_input(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {3, 2};
    tlm_tensor *a = random_f32(ctx, 2, shape, 1, 1.0f, 0.0f);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_add_sinusoidal_positions(&out, a, 5), TLM_OK);
    const float fresh[6] = {10, 20, 30, 40, 50, 60};
    assert_int_equal(tlm_tensor_set_f32(a, fresh, 6), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    for (int i = 0; i < 6; i++)
        assert_close((double)y[i],
                     (double)fresh[i] + sinusoid(5 + i / 2, 0, 2, i % 2),
                     5e-7);
    tlm_context_free(ctx);
}

/* ---- tlm_rope ---- */

/* angle of pair i at position p: p * base^(-2i/D), in double */
static double rope_angle(int64_t position, int64_t pair, int64_t d,
                         double base) {
    return (double)position * pow(base, -(double)(2 * pair) / (double)d);
}

static void check_rope(int32_t ndim, const int64_t *shape, int64_t offset,
                       float base) {
    tlm_context *ctx = new_context();
    tlm_tensor *a = random_f32(ctx, ndim, shape, 9, 2.0f, 0.0f);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_rope(&out, a, offset, base), TLM_OK);
    assert_shape(out, ndim, shape);
    const int64_t t = shape[ndim - 2], d = shape[ndim - 1];
    const float *x = tlm_tensor_data_f32(a), *y = tlm_tensor_data_f32(out);
    for (int64_t i = 0; i < tlm_tensor_numel(a); i += 2) {
        int64_t time = (i / d) % t, pair = (i % d) / 2;
        double angle = rope_angle(offset + time, pair, d, (double)base);
        double x0 = (double)x[i], x1 = (double)x[i + 1];
        /* two float products and a sum of values below 2, and the table
         * rounded to float: a few ulps */
        assert_close((double)y[i], x0 * cos(angle) - x1 * sin(angle), 1e-6);
        assert_close((double)y[i + 1], x0 * sin(angle) + x1 * cos(angle),
                     1e-6);
    }
    tlm_context_free(ctx);
}

static void rope_matches_formula(void **state) {
    (void)state;
    const int64_t s1[2] = {1, 2}, s2[3] = {3, 5, 6}, s3[4] = {2, 3, 7, 14},
                  s4[2] = {13, 34};
    check_rope(2, s1, 0, 10000.0f);
    check_rope(3, s2, 4, 10000.0f);
    check_rope(4, s3, 1, 500.0f);
    check_rope(2, s4, 0, 10000.0f);
    check_rope(2, s4, 1000003, 10000.0f);
    check_rope(3, s2, 2, 1.0f); /* base 1: every pair turns by p radians */
}

/* By hand: D = 4, base 100: pair 0 turns by p, pair 1 by p / 10. At
 * position 0 nothing turns; a rotation keeps each pair's length. */
static void rope_by_hand(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {2, 4};
    const float a_values[8] = {1, 0, 0, 1, 1, 0, 0, 1};
    tlm_tensor *a = NULL;
    assert_int_equal(tlm_tensor_from_f32(&a, ctx, 2, shape, a_values), TLM_OK);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_rope(&out, a, 0, 100.0f), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    assert_memory_equal(y, a_values, 4 * sizeof(float));
    /* t = 1: (1, 0) turned by 1 rad, (0, 1) turned by 0.1 rad */
    assert_close((double)y[4], cos(1.0), 1e-7);
    assert_close((double)y[5], sin(1.0), 1e-7);
    assert_close((double)y[6], -sin(0.1), 1e-7);
    assert_close((double)y[7], cos(0.1), 1e-7);
    /* offset 3 moves every row three positions on */
    tlm_tensor *later = NULL;
    assert_int_equal(tlm_rope(&later, a, 3, 100.0f), TLM_OK);
    const float *z = tlm_tensor_data_f32(later);
    assert_close((double)z[0], cos(3.0), 1e-7);
    assert_close((double)z[1], sin(3.0), 1e-7);
    assert_close((double)z[4], cos(4.0), 1e-7);
    assert_close((double)z[5], sin(4.0), 1e-7);
    tlm_context_free(ctx);
}

/* What RoPE is for: the dot product of a query at position m and a key at
 * position n depends only on m - n. */
static void rope_dot_products_depend_on_distance(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {1, 10};
    tlm_tensor *q = random_f32(ctx, 2, shape, 21, 1.0f, 0.0f);
    tlm_tensor *k = random_f32(ctx, 2, shape, 22, 1.0f, 0.0f);
    tlm_tensor *q5 = NULL, *k2 = NULL, *q40 = NULL, *k37 = NULL;
    assert_int_equal(tlm_rope(&q5, q, 5, 10000.0f), TLM_OK);
    assert_int_equal(tlm_rope(&k2, k, 2, 10000.0f), TLM_OK);
    assert_int_equal(tlm_rope(&q40, q, 40, 10000.0f), TLM_OK);
    assert_int_equal(tlm_rope(&k37, k, 37, 10000.0f), TLM_OK);
    double near = 0.0, far = 0.0, norm_q = 0.0, norm_q40 = 0.0;
    for (int i = 0; i < 10; i++) {
        near += (double)tlm_tensor_data_f32(q5)[i] *
                (double)tlm_tensor_data_f32(k2)[i];
        far += (double)tlm_tensor_data_f32(q40)[i] *
               (double)tlm_tensor_data_f32(k37)[i];
        norm_q += (double)tlm_tensor_data_f32(q)[i] *
                  (double)tlm_tensor_data_f32(q)[i];
        norm_q40 += (double)tlm_tensor_data_f32(q40)[i] *
                    (double)tlm_tensor_data_f32(q40)[i];
    }
    assert_close(near, far, 1e-5);
    assert_close(norm_q40, norm_q, 1e-6);
    tlm_context_free(ctx);
}

static void rope_rerun_sees_new_input(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {3, 2};
    tlm_tensor *a = random_f32(ctx, 2, shape, 1, 1.0f, 0.0f);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_rope(&out, a, 1, 10000.0f), TLM_OK);
    const float fresh[6] = {1, 0, 0, 2, -3, 0};
    assert_int_equal(tlm_tensor_set_f32(a, fresh, 6), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    const float *y = tlm_tensor_data_f32(out);
    /* D = 2: one pair, turned by p = 1, 2, 3 radians */
    assert_close((double)y[0], cos(1.0), 1e-7);
    assert_close((double)y[1], sin(1.0), 1e-7);
    assert_close((double)y[2], -2.0 * sin(2.0), 2e-7);
    assert_close((double)y[3], 2.0 * cos(2.0), 2e-7);
    assert_close((double)y[4], -3.0 * cos(3.0), 2e-7);
    assert_close((double)y[5], -3.0 * sin(3.0), 2e-7);
    tlm_context_free(ctx);
}

/* The gradient is the upstream gradient turned back by the same angle. */
static void rope_backward_rotates_back(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[3] = {2, 3, 6};
    tlm_tensor *a = random_f32(ctx, 3, shape, 31, 1.0f, 0.0f);
    tlm_tensor *w = random_f32(ctx, 3, shape, 32, 1.0f, 0.0f);
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    tlm_tensor *out = NULL, *weighted = NULL, *loss = NULL;
    assert_int_equal(tlm_rope(&out, a, 2, 10000.0f), TLM_OK);
    assert_int_equal(tlm_mul(&weighted, out, w), TLM_OK);
    assert_int_equal(tlm_sum(&loss, weighted), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[36];
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, 36), TLM_OK);
    const float *g = tlm_tensor_data_f32(w);
    for (int i = 0; i < 36; i += 2) {
        double angle = rope_angle(2 + (i / 6) % 3, (i % 6) / 2, 6, 10000.0);
        double g0 = (double)g[i], g1 = (double)g[i + 1];
        assert_close((double)grad[i], g0 * cos(angle) + g1 * sin(angle), 1e-6);
        assert_close((double)grad[i + 1], -g0 * sin(angle) + g1 * cos(angle),
                     1e-6);
    }
    tlm_context_free(ctx);
}

/* ---- tlm_dropout ---- */

/* a [n] of values 1..7 (never 0, so a dropped element shows as 0) */
static tlm_tensor *nonzero_input(tlm_context *ctx, int64_t n) {
    const int64_t shape[1] = {n};
    tlm_tensor *a = NULL;
    assert_int_equal(tlm_tensor_create(&a, ctx, TLM_DTYPE_F32, 1, shape),
                     TLM_OK);
    float *x = tlm_tensor_data_f32(a);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)(1 + i % 7) * (i % 2 ? -0.25f : 1.0f);
    return a;
}

/* Over 100k elements the number dropped is binomial(n, p): within 6
 * standard deviations of n p (a false alarm about once in 10^9 runs; the
 * seed is fixed anyway). Kept elements are a / (1 - p) to float rounding. */
static void check_dropout_statistics(float p) {
    const int64_t n = 100000;
    tlm_context *ctx = new_context();
    tlm_tensor *a = nonzero_input(ctx, n);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_dropout(&out, a, p), TLM_OK);
    const float *x = tlm_tensor_data_f32(a), *y = tlm_tensor_data_f32(out);
    int64_t dropped = 0;
    const double scale = 1.0 / (1.0 - (double)p);
    for (int64_t i = 0; i < n; i++) {
        if (y[i] == 0.0f)
            dropped++;
        else
            assert_close((double)y[i], (double)x[i] * scale, 3e-7);
    }
    const double mean = (double)n * (double)p;
    const double sd = sqrt((double)n * (double)p * (1.0 - (double)p));
    if (!(fabs((double)dropped - mean) <= 6.0 * sd))
        fail_msg("p = %g: %lld of %lld dropped, expected %.0f +- %.0f",
                 (double)p, (long long)dropped, (long long)n, mean, 6.0 * sd);
    tlm_context_free(ctx);
}

static void dropout_drops_a_fraction_p(void **state) {
    (void)state;
    check_dropout_statistics(0.1f);
    check_dropout_statistics(0.3f);
    check_dropout_statistics(0.5f);
    check_dropout_statistics(0.9f);
}

static void dropout_is_identity_in_eval_mode_and_for_p_0(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    tlm_tensor *a = nonzero_input(ctx, 1001);
    tlm_tensor *out = NULL;
    /* training, p = 0 */
    assert_int_equal(tlm_dropout(&out, a, 0.0f), TLM_OK);
    assert_memory_equal(tlm_tensor_data_f32(out), tlm_tensor_data_f32(a),
                        1001 * sizeof(float));
    /* evaluation mode, p = 0.5 */
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_dropout(&out, a, 0.5f), TLM_OK);
    assert_memory_equal(tlm_tensor_data_f32(out), tlm_tensor_data_f32(a),
                        1001 * sizeof(float));
    tlm_context_free(ctx);
}

/* The zero pattern of dropout(a, p) built fresh in a context seeded with
 * `seed`. */
static void dropout_pattern(uint64_t seed, float p, uint8_t *pattern,
                            int64_t n) {
    tlm_context *ctx = new_context();
    assert_int_equal(tlm_context_set_seed(ctx, seed), TLM_OK);
    tlm_tensor *a = nonzero_input(ctx, n);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_dropout(&out, a, p), TLM_OK);
    for (int64_t i = 0; i < n; i++)
        pattern[i] = tlm_tensor_data_f32(out)[i] != 0.0f;
    tlm_context_free(ctx);
}

static void dropout_mask_follows_the_seed(void **state) {
    (void)state;
    enum { N = 333 };
    uint8_t first[N], again[N], other[N];
    dropout_pattern(42, 0.5f, first, N);
    dropout_pattern(42, 0.5f, again, N);
    dropout_pattern(43, 0.5f, other, N);
    assert_memory_equal(first, again, N);
    assert_memory_not_equal(first, other, N);
}

/* Every forward pass draws a new mask; seeding before a re-run repeats
 * one; the mode is read at each pass. */
static void dropout_rerun_draws_a_fresh_mask(void **state) {
    (void)state;
    enum { N = 257 };
    tlm_context *ctx = new_context();
    assert_int_equal(tlm_context_set_seed(ctx, 7), TLM_OK);
    tlm_tensor *a = nonzero_input(ctx, N);
    tlm_tensor *out = NULL;
    assert_int_equal(tlm_dropout(&out, a, 0.5f), TLM_OK);
    float first[N], second[N], third[N];
    assert_int_equal(tlm_tensor_get_f32(out, first, N), TLM_OK);

    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_int_equal(tlm_tensor_get_f32(out, second, N), TLM_OK);
    assert_memory_not_equal(first, second, sizeof first);

    assert_int_equal(tlm_context_set_seed(ctx, 7), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_int_equal(tlm_tensor_get_f32(out, third, N), TLM_OK);
    assert_memory_equal(first, third, sizeof first);

    /* evaluation mode: the same node now copies its (new) input */
    float fresh[N];
    for (int i = 0; i < N; i++)
        fresh[i] = (float)(i + 1);
    assert_int_equal(tlm_tensor_set_f32(a, fresh, N), TLM_OK);
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_memory_equal(tlm_tensor_data_f32(out), fresh, sizeof fresh);

    /* and back in training mode, built in evaluation mode: masks again */
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    assert_int_equal(tlm_dropout(&out, a, 0.5f), TLM_OK);
    assert_memory_equal(tlm_tensor_data_f32(out), fresh, sizeof fresh);
    assert_int_equal(tlm_context_set_training(ctx, 1), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    int dropped = 0;
    for (int i = 0; i < N; i++) {
        float y = tlm_tensor_data_f32(out)[i];
        dropped += y == 0.0f;
        assert_true(y == 0.0f || y == fresh[i] * 2.0f);
    }
    assert_true(dropped > 0 && dropped < N);
    tlm_context_free(ctx);
}

/* The gradient goes through the kept elements, scaled, and nowhere else;
 * in evaluation mode it passes unchanged. */
static void dropout_backward_uses_the_mask(void **state) {
    (void)state;
    enum { N = 101 };
    tlm_context *ctx = new_context();
    tlm_tensor *a = nonzero_input(ctx, N);
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    tlm_tensor *out = NULL, *loss = NULL;
    assert_int_equal(tlm_dropout(&out, a, 0.2f), TLM_OK);
    assert_int_equal(tlm_sum(&loss, out), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[N];
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, N), TLM_OK);
    const float scale = (float)(1.0 / (1.0 - (double)0.2f));
    for (int i = 0; i < N; i++)
        assert_true(grad[i] ==
                    (tlm_tensor_data_f32(out)[i] != 0.0f ? scale : 0.0f));

    assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(a, grad, N), TLM_OK);
    for (int i = 0; i < N; i++)
        assert_true(grad[i] == 1.0f);
    tlm_context_free(ctx);
}

/* ---- tlm_cross_entropy ---- */

/* The loss by its definition, in double: mean over non-ignored rows of
 * log(sum_j exp(x_j)) - x_target (shifted by the row's max). Also the
 * gradient of that mean, when grad is not NULL. */
static double reference_cross_entropy(const float *logits,
                                      const int32_t *targets, int64_t rows,
                                      int64_t v, int32_t ignore_index,
                                      double *grad) {
    double total = 0.0;
    int64_t valid = 0;
    for (int64_t r = 0; r < rows; r++)
        valid += targets[r] != ignore_index;
    for (int64_t r = 0; r < rows; r++) {
        const float *x = logits + r * v;
        double max = (double)x[0], sum = 0.0;
        for (int64_t j = 1; j < v; j++)
            max = fmax(max, (double)x[j]);
        for (int64_t j = 0; j < v; j++)
            sum += exp((double)x[j] - max);
        double lse = max + log(sum);
        for (int64_t j = 0; grad != NULL && j < v; j++)
            grad[r * v + j] =
                targets[r] == ignore_index
                    ? 0.0
                    : (exp((double)x[j] - lse) - (j == targets[r])) /
                          (double)valid;
        if (targets[r] == ignore_index)
            continue;
        total += lse - (double)x[targets[r]];
    }
    return valid ? total / (double)valid : 0.0;
}

static void check_cross_entropy(int32_t ndim, const int64_t *shape,
                                float scale, float shift,
                                const int32_t *targets,
                                int32_t ignore_index) {
    tlm_context *ctx = new_context();
    tlm_tensor *logits = random_f32(ctx, ndim, shape, 17, scale, shift);
    const int64_t v = shape[ndim - 1];
    const int64_t rows = tlm_tensor_numel(logits) / v;
    tlm_tensor *t = ids_tensor(ctx, ndim > 1 ? ndim - 1 : 1,
                               ndim > 1 ? shape : (const int64_t[]){1},
                               targets);
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits, t, ignore_index),
                     TLM_OK);
    const int64_t one[1] = {1};
    assert_shape(loss, 1, one);
    double want = reference_cross_entropy(tlm_tensor_data_f32(logits),
                                          targets, rows, v, ignore_index,
                                          NULL);
    /* computed in double, rounded once */
    assert_close((double)tlm_tensor_data_f32(loss)[0], want, 2e-7);
    tlm_context_free(ctx);
}

static void cross_entropy_matches_formula(void **state) {
    (void)state;
    const int64_t s1[1] = {7}, s2[2] = {3, 13}, s3[3] = {2, 3, 33},
                  s4[4] = {2, 1, 2, 5};
    const int32_t t1[1] = {4};
    const int32_t t2[3] = {12, 0, 5};
    const int32_t t3[6] = {1, 32, 0, 17, 9, 9};
    const int32_t t4[4] = {4, 0, 3, 1};
    check_cross_entropy(1, s1, 1.0f, 0.0f, t1, -100); /* 1-D logits */
    check_cross_entropy(2, s2, 3.0f, 0.0f, t2, -100);
    check_cross_entropy(3, s3, 1.0f, 0.0f, t3, -100);
    check_cross_entropy(4, s4, 10.0f, 0.0f, t4, -100);
    /* large logits: the max-shifted log-sum-exp does not overflow */
    check_cross_entropy(2, s2, 5.0f, 1000.0f, t2, -100);
    check_cross_entropy(2, s2, 50.0f, -3000.0f, t2, -100);
    /* V = 1: the only class has probability 1 */
    const int64_t s5[2] = {3, 1};
    const int32_t t5[3] = {0, 0, 0};
    check_cross_entropy(2, s5, 4.0f, 0.0f, t5, -100);
}

/* Uniform logits give log V, whatever their common value. */
static void cross_entropy_of_uniform_logits_is_log_v(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {3, 13}, t_shape[1] = {3};
    float x[39];
    for (int i = 0; i < 39; i++)
        x[i] = 2.5f;
    tlm_tensor *logits = NULL;
    assert_int_equal(tlm_tensor_from_f32(&logits, ctx, 2, shape, x), TLM_OK);
    const int32_t targets[3] = {0, 7, 12};
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits,
                                       ids_tensor(ctx, 1, t_shape, targets),
                                       -1),
                     TLM_OK);
    assert_close((double)tlm_tensor_data_f32(loss)[0], log(13.0), 2e-7);
    tlm_context_free(ctx);
}

/* Ignored rows leave the mean; rows are ignored by value whatever it is
 * (here -1, and a class index used as ignore_index). */
static void cross_entropy_ignores_rows(void **state) {
    (void)state;
    const int64_t shape[3] = {2, 3, 7};
    const int32_t some[6] = {3, -1, 6, -1, 0, 2};
    check_cross_entropy(3, shape, 2.0f, 0.0f, some, -1);
    const int32_t class_two[6] = {2, 1, 2, 5, 2, 0};
    check_cross_entropy(3, shape, 2.0f, 0.0f, class_two, 2);

    /* by hand: logits of row 0 are [0, log 3] (probabilities 1/4, 3/4),
     * row 1 is ignored: the loss is -log(3/4) */
    tlm_context *ctx = new_context();
    const int64_t small[2] = {2, 2}, t_shape[1] = {2};
    const float x[4] = {0.0f, (float)log(3.0), 100.0f, -100.0f};
    tlm_tensor *logits = NULL;
    assert_int_equal(tlm_tensor_from_f32(&logits, ctx, 2, small, x), TLM_OK);
    const int32_t targets[2] = {1, -7};
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits,
                                       ids_tensor(ctx, 1, t_shape, targets),
                                       -7),
                     TLM_OK);
    assert_close((double)tlm_tensor_data_f32(loss)[0], -log(0.75), 2e-7);
    tlm_context_free(ctx);
}

/* Every row ignored: loss 0 and a zero gradient. */
static void cross_entropy_all_ignored_is_zero(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {5, 9}, t_shape[1] = {5};
    tlm_tensor *logits = random_f32(ctx, 2, shape, 3, 4.0f, 0.0f);
    assert_int_equal(tlm_tensor_set_requires_grad(logits, 1), TLM_OK);
    const int32_t targets[5] = {-100, -100, -100, -100, -100};
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits,
                                       ids_tensor(ctx, 1, t_shape, targets),
                                       -100),
                     TLM_OK);
    assert_true(tlm_tensor_data_f32(loss)[0] == 0.0f);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    float grad[45];
    assert_int_equal(tlm_tensor_get_grad_f32(logits, grad, 45), TLM_OK);
    for (int i = 0; i < 45; i++)
        assert_true(grad[i] == 0.0f);
    tlm_context_free(ctx);
}

/* d loss / d logits = (softmax - onehot) / n_valid on valid rows, 0 on
 * ignored ones: against the double formula, on a size the finite
 * differences of the gradient check cannot resolve. */
static void cross_entropy_gradient_matches_formula(void **state) {
    (void)state;
    enum { ROWS = 7, V = 33 };
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {ROWS, V}, t_shape[1] = {ROWS};
    tlm_tensor *logits = random_f32(ctx, 2, shape, 8, 3.0f, 0.0f);
    assert_int_equal(tlm_tensor_set_requires_grad(logits, 1), TLM_OK);
    const int32_t targets[ROWS] = {5, -1, 32, 0, -1, 17, 5};
    tlm_tensor *loss = NULL, *scaled = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits,
                                       ids_tensor(ctx, 1, t_shape, targets),
                                       -1),
                     TLM_OK);
    /* an upstream gradient other than 1 */
    assert_int_equal(tlm_scale(&scaled, loss, -2.5f), TLM_OK);
    assert_int_equal(tlm_backward(scaled), TLM_OK);
    static float grad[ROWS * V];
    static double want[ROWS * V];
    assert_int_equal(tlm_tensor_get_grad_f32(logits, grad, ROWS * V), TLM_OK);
    reference_cross_entropy(tlm_tensor_data_f32(logits), targets, ROWS, V, -1,
                            want);
    for (int i = 0; i < ROWS * V; i++) {
        if (targets[i / V] == -1)
            assert_true(grad[i] == 0.0f);
        /* float softmax and products: 1e-6 of the largest entry (0.5) */
        assert_close((double)grad[i], -2.5 * want[i], 5e-7);
    }
    tlm_context_free(ctx);
}

static void cross_entropy_rerun_sees_new_logits_and_targets(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    const int64_t shape[2] = {2, 3}, t_shape[1] = {2};
    const float first[6] = {0, 0, 0, 1, 2, 3};
    tlm_tensor *logits = NULL;
    assert_int_equal(tlm_tensor_from_f32(&logits, ctx, 2, shape, first),
                     TLM_OK);
    const int32_t targets_first[2] = {0, 2};
    tlm_tensor *targets = ids_tensor(ctx, 1, t_shape, targets_first);
    tlm_tensor *loss = NULL;
    assert_int_equal(tlm_cross_entropy(&loss, logits, targets, -1), TLM_OK);
    assert_close((double)tlm_tensor_data_f32(loss)[0],
                 reference_cross_entropy(first, targets_first, 2, 3, -1, NULL),
                 2e-7);

    const float second[6] = {5, -5, 0, 0.5f, 0.25f, 0};
    const int32_t targets_second[2] = {-1, 1};
    assert_int_equal(tlm_tensor_set_f32(logits, second, 6), TLM_OK);
    assert_int_equal(tlm_tensor_set_i32(targets, targets_second, 2), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_close((double)tlm_tensor_data_f32(loss)[0],
                 reference_cross_entropy(second, targets_second, 2, 3, -1,
                                         NULL),
                 2e-7);
    /* and all rows ignored on a re-run */
    const int32_t none[2] = {-1, -1};
    assert_int_equal(tlm_tensor_set_i32(targets, none, 2), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_true(tlm_tensor_data_f32(loss)[0] == 0.0f);
    tlm_context_free(ctx);
}

/* An embedding, positions, RoPE, dropout and the loss in one graph, as a
 * language model strings them; re-run with new token ids. */
static void the_ops_compose(void **state) {
    (void)state;
    tlm_context *ctx = new_context();
    /* V = D = 12: the embedded tokens serve directly as logits */
    const int64_t table_shape[2] = {12, 12}, ids_shape[2] = {2, 5};
    tlm_tensor *table = random_f32(ctx, 2, table_shape, 4, 1.0f, 0.0f);
    const int32_t ids_first[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 11};
    const int32_t ids_second[10] = {11, 9, 8, 7, 6, 5, 4, 3, 2, 0};
    tlm_tensor *ids = ids_tensor(ctx, 2, ids_shape, ids_first);
    assert_int_equal(tlm_tensor_set_requires_grad(table, 1), TLM_OK);
    tlm_tensor *x = NULL, *p = NULL, *r = NULL, *d = NULL, *loss = NULL;
    assert_int_equal(tlm_embedding(&x, table, ids), TLM_OK);
    assert_int_equal(tlm_add_sinusoidal_positions(&p, x, 0), TLM_OK);
    assert_int_equal(tlm_rope(&r, p, 0, 10000.0f), TLM_OK);
    assert_int_equal(tlm_dropout(&d, r, 0.1f), TLM_OK);
    assert_int_equal(tlm_cross_entropy(&loss, d, ids, -1), TLM_OK);
    assert_true(isfinite(tlm_tensor_data_f32(loss)[0]));
    assert_int_equal(tlm_backward(loss), TLM_OK);
    assert_int_equal(tlm_tensor_set_i32(ids, ids_second, 10), TLM_OK);
    assert_int_equal(tlm_context_set_training(ctx, 0), TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    /* evaluation mode: d = r exactly, so the loss is the formula's on r */
    assert_memory_equal(tlm_tensor_data_f32(d), tlm_tensor_data_f32(r),
                        120 * sizeof(float));
    assert_close((double)tlm_tensor_data_f32(loss)[0],
                 reference_cross_entropy(tlm_tensor_data_f32(r), ids_second,
                                         10, 12, -1, NULL),
                 2e-7);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(embedding_gathers_rows),
        cmocka_unit_test(embedding_of_3d_ids_is_4d),
        cmocka_unit_test(embedding_rerun_sees_new_ids_and_table),
        cmocka_unit_test(embedding_backward_counts_repeated_ids),
        cmocka_unit_test(sinusoidal_matches_formula),
        cmocka_unit_test(sinusoidal_first_position_by_hand),
        cmocka_unit_test(sinusoidal_rerun_sees_new_input),
        cmocka_unit_test(rope_matches_formula),
        cmocka_unit_test(rope_by_hand),
        cmocka_unit_test(rope_dot_products_depend_on_distance),
        cmocka_unit_test(rope_rerun_sees_new_input),
        cmocka_unit_test(rope_backward_rotates_back),
        cmocka_unit_test(dropout_drops_a_fraction_p),
        cmocka_unit_test(dropout_is_identity_in_eval_mode_and_for_p_0),
        cmocka_unit_test(dropout_mask_follows_the_seed),
        cmocka_unit_test(dropout_rerun_draws_a_fresh_mask),
        cmocka_unit_test(dropout_backward_uses_the_mask),
        cmocka_unit_test(cross_entropy_matches_formula),
        cmocka_unit_test(cross_entropy_of_uniform_logits_is_log_v),
        cmocka_unit_test(cross_entropy_ignores_rows),
        cmocka_unit_test(cross_entropy_all_ignored_is_zero),
        cmocka_unit_test(cross_entropy_gradient_matches_formula),
        cmocka_unit_test(cross_entropy_rerun_sees_new_logits_and_targets),
        cmocka_unit_test(the_ops_compose),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
