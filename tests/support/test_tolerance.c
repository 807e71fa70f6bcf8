/*
 * Suite "api" (test "tolerance"): the tolerance helpers every numeric test uses. A NaN
 * anywhere, in the computed values or in the reference, must come out as a
 * NaN maximum or an out-of-bounds index, never as error 0.
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tolerance.h"

static void worst_keeps_nan(void **state) {
    (void)state;
    assert_true(tlmt_worst(0.0, 2.0) == 2.0);
    assert_true(tlmt_worst(3.0, 2.0) == 3.0);
    assert_true(isnan(tlmt_worst(0.0, (double)NAN)));
    assert_true(isnan(tlmt_worst((double)NAN, 5.0)));
    assert_true(isinf(tlmt_worst(1.0, (double)INFINITY)));
}

static void maxima_are_nan_when_any_element_is(void **state) {
    (void)state;
    const float a[5] = {1.0f, -4.0f, 2.0f, 0.5f, 3.0f};
    float b[5] = {1.0f, -4.5f, 2.0f, 0.5f, 3.0f};
    assert_true(tlmt_max_abs_f32(a, 5) == 4.0);
    assert_true(tlmt_max_abs_diff_f32(a, b, 5) == 0.5);
    assert_true(tlmt_max_abs_f32(a, 0) == 0.0);
    for (int at = 0; at < 5; at++) {
        float poisoned[5];
        for (int i = 0; i < 5; i++)
            poisoned[i] = i == at ? NAN : a[i];
        assert_true(isnan(tlmt_max_abs_f32(poisoned, 5)));
        assert_true(isnan(tlmt_max_abs_diff_f32(poisoned, b, 5)));
        assert_true(isnan(tlmt_max_abs_diff_f32(b, poisoned, 5)));
    }
    float all_nan[3] = {NAN, NAN, NAN};
    assert_true(isnan(tlmt_max_abs_diff_f32(all_nan, all_nan, 3)));
    /* inf - inf is NaN: two infinite outputs do not agree to error 0 */
    float inf[1] = {INFINITY};
    assert_true(isnan(tlmt_max_abs_diff_f32(inf, inf, 1)));
    /* and a NaN maximum fails a bound written as !(error <= bound) */
    assert_false(tlmt_max_abs_diff_f32(all_nan, b, 3) <= 1e-3);
}

static void first_beyond_finds_nan(void **state) {
    (void)state;
    const double want[4] = {1.0, 2.0, -3.0, 100.0};
    float got[4] = {1.0f, 2.0f, -3.0f, 100.05f};
    assert_int_equal(tlmt_first_beyond(got, want, 4, 1e-6, 1e-3), -1);
    assert_int_equal(tlmt_first_beyond(got, want, 4, 1e-6, 1e-4), 3);
    got[1] = NAN;
    assert_int_equal(tlmt_first_beyond(got, want, 4, 1e-6, 1e-3), 1);
    got[1] = 2.0f;
    const double nan_want[4] = {1.0, 2.0, (double)NAN, 100.0};
    assert_int_equal(tlmt_first_beyond(got, nan_want, 4, 1.0, 1.0), 2);
}

static void first_non_finite_finds_nan_and_infinity(void **state) {
    (void)state;
    float x[4] = {0.0f, -1.0f, 3e38f, -0.0f};
    assert_int_equal(tlmt_first_non_finite_f32(x, 4), -1);
    x[2] = NAN;
    assert_int_equal(tlmt_first_non_finite_f32(x, 4), 2);
    x[1] = -INFINITY;
    assert_int_equal(tlmt_first_non_finite_f32(x, 4), 1);
    assert_int_equal(tlmt_first_non_finite_f32(x, 0), -1);
}

static void assert_close_passes_within_bound(void **state) {
    (void)state;
    tlmt_assert_close(1.0f, 1.0, 0);
    tlmt_assert_close(2.0 + 1e-7, 2.0, 1e-6);
    tlmt_assert_close(-5.0f, -5.5, 0.5);
}

/* tlmt_assert_close fails exactly when tlmt_close is 0 (tolerance_assert.c),
 * so NaN on either side, however wide the bound, must give 0. Checked
 * without forking a failing child: fork hangs under qemu-user, where the
 * api suite runs for the aarch64 build. */
static void close_is_false_on_nan(void **state) {
    (void)state;
    assert_int_equal(tlmt_close((double)NAN, 1.0, 1e30), 0);
    assert_int_equal(tlmt_close(1.0, (double)NAN, 1e30), 0);
    assert_int_equal(tlmt_close((double)NAN, (double)NAN, (double)INFINITY), 0);
    assert_int_equal(tlmt_close(1.0, 1.5, 0.5), 1);
    assert_int_equal(tlmt_close(1.0, 1.5, 0.4), 0);
}

/* tlmt_abs_product_sums is bit for bit the naive loop over op(A) and
 * op(B), in every transpose form and at sizes 1 and odd ones. */
static void abs_product_sums_are_the_naive_sums(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {7, 1, 33},
                                        {1, 9, 4}};
    float a[7 * 33], b[33 * 9];
    uint64_t x = 12345;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int form = 0; form < 4; form++) {
            const int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            const int ta = form >> 1, tb = form & 1;
            /* signed values with all 24 bits of the significand used */
            for (int64_t i = 0; i < m * k; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                a[i] = (float)((double)(x >> 40) / (double)(1ull << 23) - 1.0);
            }
            for (int64_t i = 0; i < k * n; i++) {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                b[i] = (float)((double)(x >> 40) / (double)(1ull << 21) - 4.0);
            }
            double *sums = tlmt_abs_product_sums(a, b, m, n, k, ta, tb);
            assert_non_null(sums);
            for (int64_t i = 0; i < m; i++)
                for (int64_t j = 0; j < n; j++) {
                    double want = 0.0;
                    for (int64_t p = 0; p < k; p++)
                        want += fabs((double)(ta ? a[p * m + i] : a[i * k + p]) *
                                     (double)(tb ? b[j * k + p] : b[p * n + j]));
                    assert_memory_equal(&sums[i * n + j], &want, sizeof want);
                }
            free(sums);
        }
    /* A NaN in A makes its row's sums NaN, which no bound accepts. */
    const float a2[2] = {1.0f, NAN}, b2[2] = {1.0f, 2.0f};
    double *sums = tlmt_abs_product_sums(a2, b2, 2, 1, 1, 0, 0);
    assert_non_null(sums);
    assert_true(sums[0] == 1.0);
    assert_true(isnan(sums[1]));
    free(sums);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(worst_keeps_nan),
        cmocka_unit_test(maxima_are_nan_when_any_element_is),
        cmocka_unit_test(first_beyond_finds_nan),
        cmocka_unit_test(first_non_finite_finds_nan_and_infinity),
        cmocka_unit_test(assert_close_passes_within_bound),
        cmocka_unit_test(close_is_false_on_nan),
        cmocka_unit_test(abs_product_sums_are_the_naive_sums),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
