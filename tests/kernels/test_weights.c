/*
 * Products with quantized weights (kernels/weights.h,
 * kernels/weights_parallel.h):
 *   - sizes, quantization and dequantization (round trip within half a
 *     quantization step; bf16 bit for bit as base/half.c rounds),
 *     refusal of NaN/Inf weights, validation refusing each defect;
 *   - the scalar references against double-precision products;
 *   - every variant tlmi_weight_kernels_all lists against the scalar
 *     variant of its format on odd sizes, column ranges bit for bit, and
 *     its dequantization bit for bit;
 *   - the driver: the large-m path (dequantized blocks through the
 *     float32 GEMM) and the direct path against double products; the
 *     packed path (W dequantized into the blocked GEMM's B panels) bit
 *     for bit the float32 GEMM on the dequantized W, on odd sizes, and
 *     each variant's dequantize_block bit for bit its dequantize_rows; and
 *     (with --threads, suite "threads") the same bits with 1, 2 and 3
 *     threads.
 *
 * Tolerances (eps = 2^-23):
 *   - int8 variant against the scalar one. Both quantize A the same way
 *     (the scalar prepare is the reference; every int8 variant's prepare
 *     computes the same values), so every group's integer dot product
 *     isum_g is exact in both; C is sum_g isum_g * a_scale_g * w_scale_g
 *     (+ bias), and they differ only in how the float32 products and sums
 *     are rounded and ordered. A SIMD variant may split each group over up
 *     to 16 lanes and add lane totals at the end: at most 16 G + 3
 *     rounded operations on a path (G groups), the reference G + 3; each
 *     is within (that count) eps of the exact value relative to
 *     S = sum_g a_scale_g w_scale_g sum_t |qa qw| + |bias|, so we allow
 *     (17 G + 6) eps S between them.
 *   - bf16 variant against the scalar one: sums of k float32 products in
 *     different orders: 2 (k + 2) eps sum_p |a w| (+ |bias|), as for the
 *     float32 GEMM (test_gemm.c). The variants on bf16 dot-product
 *     instructions (vdpbf16ps, BFDOT) split A in hi = bf16(a) and
 *     lo = bf16(a - hi) (kernels/weights_bf16.h) and add both products:
 *     hi + lo is within 2^-16 |a| of a, so 2^-16 sum_p |a w| more. Their
 *     products of two bf16 are exact; their sums are 2 k terms (the lo
 *     ones at most 2^-8 of the hi ones), rounded to nearest even
 *     (vdpbf16ps) or to odd (BFDOT without FEAT_EBF16, up to a whole ulp,
 *     which the factor 2 above already allows), so we allow
 *     2 (k + 2) eps (1 + 2^-8) + 2^-16 of sum_p |a w|. (Before the split,
 *     A's rounding alone needed 2^-8, 256 times as much; test_weights_bf16.c
 *     checks the split's rounding itself, and our random A has no
 *     denormal lo.)
 *   - scalar int8 against the exact product of the dequantized W and the
 *     float A: the activation quantization error, |a - qa a_scale| <=
 *     a_scale / 2 (1 + 2^-20) per element, times |w|, plus the rounding
 *     above.
 */
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#define TLM_EXPERIMENTAL /* tlm_experimental_set_cpu_mask */
#include "autodiff/context.h"
#include "base/half.h"
#include "base/host.h"
#include "base/threadpool.h"
#include "kernels/dispatch.h"
#include "kernels/scalar/weights.h"
#include "kernels/weights.h"
#include "kernels/weights_parallel.h"
#include "tolerance.h"

#define EPS ((double)FLT_EPSILON)
#define GUARD 16
#define GUARD_VALUE 12345.0f

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float uniform(void) { /* in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

/* Values in [-1, 1) times a per-row magnitude from 2^-6 to 2^6, so that
 * the scales of the groups differ. */
static float *random_matrix(int64_t rows, int64_t cols) {
    float *x = malloc((size_t)(rows * cols + 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t r = 0; r < rows; r++) {
        const float magnitude = ldexpf(1.0f, (int)(r % 13) - 6);
        for (int64_t c = 0; c < cols; c++)
            x[r * cols + c] = uniform() * magnitude;
    }
    return x;
}

/* A quantized copy of src [rows, cols] in `format` (data malloc'ed). */
static tlmi_weights make_weights(int32_t format, const float *src,
                                 int64_t rows, int64_t cols) {
    const size_t bytes = tlmi_weights_bytes(format, rows, cols);
    assert_true(bytes != SIZE_MAX);
    void *data = malloc(bytes + 1);
    assert_non_null(data);
    int64_t bad_row = 0;
    assert_int_equal(
        tlmi_weights_quantize(data, src, format, rows, cols, &bad_row), 0);
    assert_int_equal(bad_row, -1);
    tlmi_weights w = {.format = format, .rows = rows, .cols = cols,
                      .data = data};
    return w;
}

static float *dequantized(const tlmi_weights *w) {
    float *out = malloc((size_t)(w->rows * w->cols + 1) * sizeof *out);
    assert_non_null(out);
    tlmi_weights_dequantize_rows(out, w, 0, w->rows);
    return out;
}

static const char *format_name(int32_t format) {
    return format == TLM_WEIGHTS_INT8 ? "int8" : "bf16";
}

/* ---- Sizes ----------------------------------------------------------- */

static void bytes_of_each_format(void **state) {
    (void)state;
    assert_int_equal(tlmi_weights_bytes(TLM_WEIGHTS_F32, 3, 5), 60);
    assert_int_equal(tlmi_weights_bytes(TLM_WEIGHTS_BF16, 3, 5), 30);
    /* 5 columns: one group of 32 bytes and a scale per row */
    assert_int_equal(tlmi_weights_bytes(TLM_WEIGHTS_INT8, 3, 5), 3 * 36);
    assert_int_equal(tlmi_weights_bytes(TLM_WEIGHTS_INT8, 2, 64), 2 * 72);
    assert_int_equal(tlmi_weights_bytes(TLM_WEIGHTS_INT8, 2, 65), 2 * 108);
    assert_int_equal(tlmi_weights_bytes(TLM_WEIGHTS_INT8, 0, 65), 0);
    assert_true(tlmi_weights_bytes(TLM_WEIGHTS_INT8, INT64_MAX, 64) ==
                SIZE_MAX);
    assert_true(tlmi_weights_bytes(TLM_WEIGHTS_BF16, INT64_MAX / 2,
                                   INT64_MAX / 2) == SIZE_MAX);
    assert_true(tlmi_weights_bytes(TLM_WEIGHTS_INT8, -1, 4) == SIZE_MAX);
    assert_true(tlmi_weights_bytes(7, 1, 1) == SIZE_MAX);
}

/* ---- Quantization ------------------------------------------------------ */

static void int8_round_trip(void **state) {
    (void)state;
    static const int64_t cols_list[] = {1, 7, 31, 32, 33, 100};
    for (size_t ic = 0; ic < sizeof cols_list / sizeof cols_list[0]; ic++) {
        const int64_t rows = 5, cols = cols_list[ic];
        float *src = random_matrix(rows, cols);
        src[0] = 0.0f; /* a zero, and a group of zeros below */
        if (cols >= 33)
            for (int64_t c = 32; c < cols && c < 64; c++)
                src[1 * cols + c] = 0.0f;
        tlmi_weights w = make_weights(TLM_WEIGHTS_INT8, src, rows, cols);
        float *back = dequantized(&w);
        int64_t bad_row = 0;
        const char *reason = NULL;
        assert_int_equal(tlmi_weights_validate(&w, &bad_row, &reason), 0);
        const int64_t groups = tlmi_q8_groups(cols);
        for (int64_t r = 0; r < rows; r++) {
            const int8_t *q = tlmi_q8_row(&w, r);
            const float *scale = tlmi_q8_scales(&w, r);
            for (int64_t g = 0; g < groups; g++) {
                double amax = 0.0;
                for (int64_t c = g * 32; c < cols && c < g * 32 + 32; c++)
                    amax = fmax(amax, fabs((double)src[r * cols + c]));
                tlmt_assert_close(scale[g], amax / 127.0, amax * 1e-7);
            }
            for (int64_t c = 0; c < groups * 32; c++) {
                if (c >= cols) {
                    assert_int_equal(q[c], 0); /* zero padding */
                    continue;
                }
                assert_true(q[c] >= -127 && q[c] <= 127);
                /* nearest: within half a step (and the roundings of w /
                 * scale and q * scale) */
                const double want = (double)src[r * cols + c];
                const double step = (double)scale[c / 32];
                tlmt_assert_close(back[r * cols + c], want,
                                  0.5 * step * (1 + 1e-6) + 4 * EPS * fabs(want));
                assert_true(back[r * cols + c] ==
                            (float)q[c] * scale[c / 32]);
            }
        }
        free(back);
        free((void *)w.data);
        free(src);
    }
}

static void bf16_round_trip(void **state) {
    (void)state;
    const int64_t rows = 4, cols = 37;
    float *src = random_matrix(rows, cols);
    tlmi_weights w = make_weights(TLM_WEIGHTS_BF16, src, rows, cols);
    float *back = dequantized(&w);
    const uint16_t *v = w.data;
    for (int64_t i = 0; i < rows * cols; i++) {
        assert_int_equal(v[i], tlmi_float_to_bf16(src[i]));
        /* half a unit in the last of 8 significant bits */
        tlmt_assert_close(back[i], src[i], ldexp(fabs((double)src[i]), -8));
    }
    free(back);
    free((void *)w.data);
    free(src);
}

static void quantize_refuses_non_finite(void **state) {
    (void)state;
    const int64_t rows = 3, cols = 40;
    const float bad_values[] = {NAN, INFINITY, -INFINITY};
    for (int format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8; format++)
        for (size_t b = 0; b < 3; b++) {
            float *src = random_matrix(rows, cols);
            src[2 * cols + 35] = bad_values[b];
            void *dst = malloc(tlmi_weights_bytes(format, rows, cols));
            assert_non_null(dst);
            int64_t bad_row = -7;
            assert_int_equal(tlmi_weights_quantize(dst, src, format, rows,
                                                   cols, &bad_row), -1);
            assert_int_equal(bad_row, 2);
            free(dst);
            free(src);
        }
    /* bf16: a finite float32 beyond bf16's range would become infinite */
    float *src = random_matrix(rows, cols);
    src[cols + 1] = FLT_MAX;
    void *dst = malloc(tlmi_weights_bytes(TLM_WEIGHTS_BF16, rows, cols));
    assert_non_null(dst);
    int64_t bad_row = -7;
    assert_int_equal(tlmi_weights_quantize(dst, src, TLM_WEIGHTS_BF16, rows,
                                           cols, &bad_row), -1);
    assert_int_equal(bad_row, 1);
    free(dst);
    free(src);
}

/* Validation: a correct matrix passes, each defect is refused naming the
 * row. */
static void validate_refuses_each_defect(void **state) {
    (void)state;
    const int64_t rows = 4, cols = 40; /* 2 groups, 24 bytes of padding */
    float *src = random_matrix(rows, cols);
    tlmi_weights good = make_weights(TLM_WEIGHTS_INT8, src, rows, cols);
    const size_t bytes = tlmi_weights_bytes(TLM_WEIGHTS_INT8, rows, cols);
    void *copy = malloc(bytes);
    assert_non_null(copy);
    tlmi_weights w = good;
    w.data = copy;
    int64_t bad_row = 0;
    const char *reason = NULL;

    enum { NAN_SCALE, INF_SCALE, NEGATIVE_SCALE, Q_MINUS_128, PADDING, DEFECTS };
    for (int defect = 0; defect < DEFECTS; defect++) {
        memcpy(copy, good.data, bytes);
        assert_int_equal(tlmi_weights_validate(&w, &bad_row, &reason), 0);
        int8_t *q = copy;
        float *scale = (float *)(void *)((char *)copy + rows * 2 * 32);
        switch (defect) {
        case NAN_SCALE: scale[2 * 2 + 1] = NAN; break;
        case INF_SCALE: scale[2 * 2 + 0] = INFINITY; break;
        case NEGATIVE_SCALE: scale[2 * 2 + 1] = -0.5f; break;
        case Q_MINUS_128: q[2 * 64 + 3] = -128; break;
        case PADDING: q[2 * 64 + 40] = 1; break;
        }
        assert_int_equal(tlmi_weights_validate(&w, &bad_row, &reason), -1);
        assert_int_equal(bad_row, 2);
        assert_non_null(reason);
    }
    /* bf16: an infinity or a NaN */
    tlmi_weights b = make_weights(TLM_WEIGHTS_BF16, src, rows, cols);
    assert_int_equal(tlmi_weights_validate(&b, &bad_row, &reason), 0);
    ((uint16_t *)(void *)b.data)[3 * cols + 5] = 0x7f80u;
    assert_int_equal(tlmi_weights_validate(&b, &bad_row, &reason), -1);
    assert_int_equal(bad_row, 3);
    ((uint16_t *)(void *)b.data)[3 * cols + 5] = 0x0000u;
    ((uint16_t *)(void *)b.data)[1 * cols + 7] = 0xffc1u;
    assert_int_equal(tlmi_weights_validate(&b, &bad_row, &reason), -1);
    assert_int_equal(bad_row, 1);
    /* an unknown format */
    b.format = 9;
    assert_int_equal(tlmi_weights_validate(&b, &bad_row, &reason), -1);
    assert_non_null(reason);
    free((void *)b.data);
    free(copy);
    free((void *)good.data);
    free(src);
}

/* ---- Products ---------------------------------------------------------- */

/* The per-element bound S of the int8 tolerance (top of this file) from
 * the scalar variant's prepared activations. */
static double int8_scale_sum(const void *prepared, const tlmi_weights *w,
                             int64_t m, int64_t i, int64_t j) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    const int8_t *qa = tlmi_q8_prepared_row(prepared, k, i);
    const float *sa = tlmi_q8_prepared_scales(prepared, m, k, i);
    const int8_t *qw = tlmi_q8_row(w, j);
    const float *sw = tlmi_q8_scales(w, j);
    double s = 0.0;
    for (int64_t g = 0; g < groups; g++) {
        double abs_sum = 0.0;
        for (int t = 0; t < 32; t++)
            abs_sum += fabs((double)qa[g * 32 + t] * (double)qw[g * 32 + t]);
        s += (double)sa[g] * (double)sw[g] * abs_sum;
    }
    return s;
}

/* The scalar references against double-precision products of the
 * dequantized weights. */
static void scalar_against_double(void **state) {
    (void)state;
    const int64_t m = 3, n = 9, k = 77;
    for (int format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8; format++) {
        const tlmi_weight_kernels *wk =
            format == TLM_WEIGHTS_INT8 ? &tlmi_weights_int8_scalar
                                       : &tlmi_weights_bf16_scalar;
        float *wf = random_matrix(n, k);
        float *a = random_matrix(m, k);
        float *bias = random_matrix(1, n);
        tlmi_weights w = make_weights(format, wf, n, k);
        float *wd = dequantized(&w);
        const size_t prepared_bytes = wk->prepare_bytes(m, k);
        void *prepared = prepared_bytes > 0 ? malloc(prepared_bytes) : NULL;
        if (prepared != NULL)
            wk->prepare(prepared, a, m, k);
        float c[3 * 9];
        wk->product_cols(c, n, prepared != NULL ? prepared : a, a, &w, bias,
                         m, 0, n);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double exact = (double)bias[j], s = fabs((double)bias[j]);
                double quantization = 0.0;
                for (int64_t p = 0; p < k; p++) {
                    exact += (double)a[i * k + p] * (double)wd[j * k + p];
                    s += fabs((double)a[i * k + p] * (double)wd[j * k + p]);
                }
                double tolerance = (double)(k + 3) * EPS * s;
                if (format == TLM_WEIGHTS_INT8) {
                    const float *sa =
                        tlmi_q8_prepared_scales(prepared, m, k, i);
                    for (int64_t p = 0; p < k; p++)
                        quantization += 0.5 * (1 + 1e-6) * (double)sa[p / 32] *
                                        fabs((double)wd[j * k + p]);
                    tolerance = quantization +
                                (double)(tlmi_q8_groups(k) + 3) * EPS *
                                    (int8_scale_sum(prepared, &w, m, i, j) +
                                     fabs((double)bias[j]));
                    /* and the activation quantization does cost something */
                    assert_true(quantization > 0.0);
                }
                tlmt_assert_close(c[i * n + j], exact, tolerance);
            }
        free(prepared);
        free(wd);
        free((void *)w.data);
        free(bias);
        free(a);
        free(wf);
    }
}

/* A group holding a NaN or an infinity makes its row's results NaN. */
static void int8_non_finite_activations(void **state) {
    (void)state;
    const int64_t m = 2, n = 3, k = 70;
    float *wf = random_matrix(n, k);
    float *a = random_matrix(m, k);
    a[1 * k + 40] = INFINITY;
    tlmi_weights w = make_weights(TLM_WEIGHTS_INT8, wf, n, k);
    const tlmi_weight_kernels *const *all = tlmi_weight_kernels_all();
    for (size_t v = 0; all[v] != NULL; v++) {
        const tlmi_weight_kernels *wk = all[v];
        if (wk->format != TLM_WEIGHTS_INT8)
            continue;
        void *prepared = malloc(wk->prepare_bytes(m, k));
        assert_non_null(prepared);
        wk->prepare(prepared, a, m, k);
        float c[2 * 3];
        wk->product_cols(c, n, prepared, a, &w, NULL, m, 0, n);
        for (int64_t j = 0; j < n; j++) {
            assert_true(isfinite(c[j]));
            assert_true(isnan(c[n + j]));
        }
        free(prepared);
    }
    free((void *)w.data);
    free(a);
    free(wf);
}

/* The bf16 variants on bf16 dot-product instructions (vdpbf16ps, BFDOT:
 * "avx512-bf16", "neon-bf16") split A in two bf16 parts in `prepare`. */
static int splits_a_to_bf16(const tlmi_weight_kernels *wk) {
    return wk->format == TLM_WEIGHTS_BF16 && strstr(wk->name, "bf16") != NULL;
}

/* The tolerance of a bf16 variant's C against the scalar one's (or the
 * exact product), s = sum_p |a w| (+ |bias|): top of this file. */
static double bf16_tolerance(const tlmi_weight_kernels *wk, int64_t k,
                             double s, int direct) {
    if (direct && splits_a_to_bf16(wk))
        return 2.0 * (double)(k + 2) * EPS * (1.0 + 0x1p-8) * s +
               0x1p-16 * s;
    return 2.0 * (double)(k + 2) * EPS * s;
}

/* One variant against the scalar variant of its format at one size; C
 * has guard zones around it and a row stride larger than n. Then the
 * columns cut into three ranges give the same bits. */
static void check_variant(const tlmi_weight_kernels *wk, int64_t m,
                          int64_t n, int64_t k) {
    const tlmi_weight_kernels *ref = wk->format == TLM_WEIGHTS_INT8
                                         ? &tlmi_weights_int8_scalar
                                         : &tlmi_weights_bf16_scalar;
    float *wf = random_matrix(n, k);
    float *a = random_matrix(m, k);
    float *bias = (n + m + k) % 2 ? random_matrix(1, n) : NULL;
    tlmi_weights w = make_weights(wk->format, wf, n, k);
    const int64_t ldc = n + 3;
    const size_t c_floats = (size_t)(m * ldc + 2 * GUARD);
    float *got_block = malloc(c_floats * sizeof(float));
    float *split_block = malloc(c_floats * sizeof(float));
    float *want = malloc((size_t)(m * ldc) * sizeof(float));
    assert_non_null(got_block);
    assert_non_null(split_block);
    assert_non_null(want);
    for (size_t i = 0; i < c_floats; i++)
        got_block[i] = split_block[i] = GUARD_VALUE;
    float *got = got_block + GUARD, *split = split_block + GUARD;

    void *ref_prepared = NULL, *prepared = NULL;
    if (ref->prepare_bytes(m, k) > 0) {
        ref_prepared = malloc(ref->prepare_bytes(m, k));
        assert_non_null(ref_prepared);
        ref->prepare(ref_prepared, a, m, k);
    }
    if (wk->prepare_bytes(m, k) > 0) {
        prepared = malloc(wk->prepare_bytes(m, k));
        assert_non_null(prepared);
        wk->prepare(prepared, a, m, k);
    }
    ref->product_cols(want, ldc, ref_prepared ? ref_prepared : a, a, &w,
                      bias, m, 0, n);
    wk->product_cols(got, ldc, prepared ? prepared : a, a, &w, bias, m, 0, n);
    const int64_t cut1 = n / 3, cut2 = n - n / 4;
    wk->product_cols(split, ldc, prepared ? prepared : a, a, &w, bias, m,
                     cut2, n);
    wk->product_cols(split, ldc, prepared ? prepared : a, a, &w, bias, m, 0,
                     cut1);
    if (cut1 < cut2)
        wk->product_cols(split, ldc, prepared ? prepared : a, a, &w, bias, m,
                         cut1, cut2);

    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < ldc; j++) {
            const float g = got[i * ldc + j];
            if (j >= n) { /* between rows: untouched */
                assert_true(g == GUARD_VALUE && split[i * ldc + j] == GUARD_VALUE);
                continue;
            }
            double tolerance;
            const double b = bias != NULL ? fabs((double)bias[j]) : 0.0;
            if (wk->format == TLM_WEIGHTS_INT8) {
                const double s = int8_scale_sum(ref_prepared, &w, m, i, j) + b;
                tolerance = (double)(17 * tlmi_q8_groups(k) + 6) * EPS * s;
            } else {
                const uint16_t *wv = w.data;
                double s = b;
                for (int64_t p = 0; p < k; p++)
                    s += fabs((double)a[i * k + p] *
                              (double)tlmi_bf16_to_float(wv[j * k + p]));
                tolerance = bf16_tolerance(wk, k, s, 1);
            }
            tolerance += 1e-30;
            const double error = fabs((double)g - (double)want[i * ldc + j]);
            if (!(error <= tolerance)) {
                print_error("%s %s m=%lld n=%lld k=%lld: C[%lld, %lld] = "
                            "%.9g, scalar %.9g (|difference| %.3g > "
                            "tolerance %.3g)\n",
                            format_name(wk->format), wk->name, (long long)m,
                            (long long)n, (long long)k, (long long)i,
                            (long long)j, (double)g,
                            (double)want[i * ldc + j], error, tolerance);
                fail();
            }
            if (memcmp(&g, &split[i * ldc + j], sizeof g) != 0) {
                print_error("%s %s m=%lld n=%lld k=%lld: C[%lld, %lld] "
                            "differs when the columns are cut at %lld and "
                            "%lld\n",
                            format_name(wk->format), wk->name, (long long)m,
                            (long long)n, (long long)k, (long long)i,
                            (long long)j, (long long)cut1, (long long)cut2);
                fail();
            }
        }
    for (int i = 0; i < GUARD; i++) {
        assert_true(got_block[i] == GUARD_VALUE);
        assert_true(got[m * ldc + i] == GUARD_VALUE);
    }
    if (m == 1) { /* its dequantization: the reference's bits, any rows */
        float *want_rows = dequantized(&w);
        float *rows = malloc((size_t)(n * k) * sizeof *rows);
        assert_non_null(rows);
        const int64_t mid = n / 2;
        wk->dequantize_rows(rows, &w, 0, mid);
        wk->dequantize_rows(rows + mid * k, &w, mid, n);
        assert_memory_equal(rows, want_rows, (size_t)(n * k) * sizeof *rows);
        free(rows);
        free(want_rows);
    }
    free(prepared);
    free(ref_prepared);
    free(want);
    free(split_block);
    free(got_block);
    free((void *)w.data);
    free(bias);
    free(a);
    free(wf);
}

static void every_variant_against_scalar(void **state) {
    (void)state;
    static const int64_t ms[] = {1, 2, 3, 4, 5, 7, 33};
    static const int64_t ks[] = {1, 7, 31, 32, 33, 100, 777, 1000};
    static const int64_t ns[] = {1, 7, 33, 100};
    const tlmi_weight_kernels *const *all = tlmi_weight_kernels_all();
    int int8_variants = 0, bf16_variants = 0;
    for (size_t v = 0; all[v] != NULL; v++) {
        const tlmi_weight_kernels *wk = all[v];
        int8_variants += wk->format == TLM_WEIGHTS_INT8;
        bf16_variants += wk->format == TLM_WEIGHTS_BF16;
        print_message("variant %s %s (direct up to m = %lld)\n",
                      format_name(wk->format), wk->name,
                      (long long)wk->direct_max_m);
        for (size_t im = 0; im < sizeof ms / sizeof ms[0]; im++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
                for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
                    check_variant(wk, ms[im], ns[in], ks[ik]);
    }
    assert_true(int8_variants >= 1 && bf16_variants >= 1);
}

/* Choice: never NULL, the format asked for, scalar for the scalar table
 * or no features, and only variants the features allow. */
static void choice_follows_table_and_features(void **state) {
    (void)state;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels == NULL)
            continue;
        for (int format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8;
             format++) {
            const uint32_t all_features = tlmi_cpu_usable_features();
            const tlmi_weight_kernels *wk =
                tlmi_weight_kernels_choose(kernels, format, all_features);
            assert_non_null(wk);
            assert_int_equal(wk->format, format);
            assert_true((wk->features & ~all_features) == 0);
            assert_true((tlmi_isa_features(wk->isa) &
                         ~tlmi_isa_features(isa)) == 0);
            if (isa == TLMI_ISA_SCALAR)
                assert_int_equal(wk->isa, TLMI_ISA_SCALAR);
            const tlmi_weight_kernels *none =
                tlmi_weight_kernels_choose(kernels, format, 0);
            assert_int_equal(none->isa, TLMI_ISA_SCALAR);
            print_message("%s table: %s %s\n", kernels->name,
                          format_name(format), wk->name);
        }
    }
}

/* A context records the features it may use (the CPU's, less the
 * experimental mask of the moment), and the choice from them leaves out
 * the variants that need a masked feature. */
static void context_features_follow_the_mask(void **state) {
    (void)state;
    const uint32_t masks[] = {TLM_EXPERIMENTAL_CPU_MASK_ALL,
                              ~(uint32_t)(TLM_CPU_AVX512VNNI | TLM_CPU_ARM_DOTPROD),
                              0};
    for (size_t im = 0; im < sizeof masks / sizeof masks[0]; im++) {
        assert_int_equal(tlm_experimental_set_cpu_mask(
                             masks[im] == TLM_EXPERIMENTAL_CPU_MASK_ALL
                                 ? masks[im]
                                 : masks[im] & tlm_cpu_features()),
                         TLM_OK);
        tlm_context_params params;
        assert_int_equal(tlm_context_params_init(&params), TLM_OK);
        params.n_threads = 1;
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
        assert_true((ctx->features & ~masks[im]) == 0);
        assert_true((ctx->features & ~tlm_cpu_features()) == 0);
        const tlmi_weight_kernels *wk =
            tlmi_weight_kernels_choose(ctx->kernels, TLM_WEIGHTS_INT8,
                                       ctx->features);
        assert_true((wk->features & ~ctx->features) == 0);
        if (masks[im] == 0)
            assert_int_equal(wk->isa, TLMI_ISA_SCALAR);
        print_message("mask 0x%08x: table %s, int8 %s\n", (unsigned)masks[im],
                      ctx->kernels->name, wk->name);
        tlm_context_free(ctx);
    }
    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL),
                     TLM_OK);
}

/* ---- The driver -------------------------------------------------------- */

/* C of the driver with `threads` threads (pool NULL for 1). */
static float *drive(const tlmi_kernels *kernels,
                    const tlmi_weight_kernels *wk, const tlmi_weights *w,
                    const float *a, const float *bias, int64_t m,
                    int threads, int one_slot) {
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlmi_threadpool *pool = NULL;
    if (threads > 1)
        assert_int_equal(tlmi_threadpool_create(&pool, &host, threads, "test"),
                         0);
    const size_t bytes = tlmi_weights_product_workspace(
        kernels, wk, m, w->rows, w->cols, one_slot ? 1 : threads);
    char *workspace = malloc(bytes + 1);
    assert_non_null(workspace);
    float *c = malloc((size_t)(m * w->rows) * sizeof *c);
    assert_non_null(c);
    /* one byte off the allocator's alignment */
    tlmi_weights_product_parallel(pool, kernels, wk, c, a, w, bias, m,
                                  workspace + 1, bytes);
    free(workspace);
    tlmi_threadpool_free(pool);
    return c;
}

/* Both paths of the driver against double products of the dequantized
 * weights: the large-m path within the float32 GEMM's bound, the direct
 * path also within the activations' quantization error (int8). */
static void driver_paths_against_double(void **state) {
    (void)state;
    const int64_t n = 300, k = 70; /* 3 blocks of W rows, the last short */
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels == NULL)
            continue;
        for (int format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8;
             format++) {
            const tlmi_weight_kernels *wk = tlmi_weight_kernels_choose(
                kernels, format, tlmi_cpu_usable_features());
            const int64_t ms[] = {1, wk->direct_max_m, wk->direct_max_m + 1,
                                  wk->direct_max_m + 9};
            float *wf = random_matrix(n, k);
            float *bias = random_matrix(1, n);
            tlmi_weights w = make_weights(format, wf, n, k);
            float *wd = dequantized(&w);
            for (size_t im = 0; im < 4; im++) {
                const int64_t m = ms[im];
                float *a = random_matrix(m, k);
                float *c = drive(kernels, wk, &w, a, bias, m, 1, 0);
                const int direct = m <= wk->direct_max_m;
                for (int64_t i = 0; i < m; i++)
                    for (int64_t j = 0; j < n; j++) {
                        double exact = (double)bias[j], s = fabs((double)bias[j]);
                        double amax = 0.0, wsum = 0.0;
                        for (int64_t p = 0; p < k; p++) {
                            const double x = (double)a[i * k + p] *
                                             (double)wd[j * k + p];
                            exact += x;
                            s += fabs(x);
                            amax = fmax(amax, fabs((double)a[i * k + p]));
                            wsum += fabs((double)wd[j * k + p]);
                        }
                        /* int8 direct: each activation off by at most half
                         * a step of its group (at most max|a| / 254), and
                         * the float sums of 16 lanes per group */
                        double tolerance =
                            direct && format == TLM_WEIGHTS_INT8
                                ? amax / 254.0 * (1 + 1e-6) * wsum +
                                      (double)(17 * tlmi_q8_groups(k) + 6) *
                                          EPS * 2 * s
                                : bf16_tolerance(wk, k, s, direct);
                        tlmt_assert_close(c[i * n + j], exact, tolerance);
                    }
                free(c);
                free(a);
            }
            free(wd);
            free((void *)w.data);
            free(bias);
            free(wf);
        }
    }
}

/* Every variant's dequantize_block (where it has one): bit for bit
 * dequantize_rows on odd row and column ranges, nothing written past
 * the block's columns in a row of stride ld. */
static void dequantize_block_matches_rows(void **state) {
    (void)state;
    const int64_t n = 21, k = 203;
    const int64_t ranges[][2] = {{0, 203}, {0, 1}, {5, 6}, {3, 40}, {31, 97},
                                 {32, 160}, {64, 203}, {200, 203}};
    const tlmi_weight_kernels *const *all = tlmi_weight_kernels_all();
    for (size_t v = 0; all[v] != NULL; v++) {
        const tlmi_weight_kernels *wk = all[v];
        if (wk->dequantize_block == NULL)
            continue;
        float *wf = random_matrix(n, k);
        tlmi_weights w = make_weights(wk->format, wf, n, k);
        float *rows = dequantized(&w);
        const int64_t ld = k + 3;
        float *out = malloc((size_t)(n * ld) * sizeof *out);
        assert_non_null(out);
        for (size_t t = 0; t < sizeof ranges / sizeof ranges[0]; t++) {
            const int64_t c0 = ranges[t][0], c1 = ranges[t][1];
            const int64_t r0 = (int64_t)t % 3, r1 = n - (int64_t)t % 2;
            for (int64_t i = 0; i < n * ld; i++)
                out[i] = GUARD_VALUE;
            wk->dequantize_block(out, ld, &w, r0, r1, c0, c1);
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = 0; c < ld; c++) {
                    const float got = out[(r - r0) * ld + c];
                    const float want = c < c1 - c0 ? rows[r * k + c0 + c]
                                                   : GUARD_VALUE;
                    if (memcmp(&got, &want, sizeof got) != 0) {
                        print_error("%s %s: rows %lld..%lld columns "
                                    "%lld..%lld: [%lld][%lld] %g, want %g\n",
                                    format_name(wk->format), wk->name,
                                    (long long)r0, (long long)r1,
                                    (long long)c0, (long long)c1,
                                    (long long)r, (long long)c, (double)got,
                                    (double)want);
                        fail();
                    }
                }
        }
        free(out);
        free(rows);
        free((void *)w.data);
        free(wf);
    }
}

/* The packed path: for every table with a blocked GEMM and every variant
 * it may be given (its ISA's or scalar) that dequantizes blocks, the
 * driver's C for m above the direct path is bit for bit the float32 GEMM
 * of the table on the dequantized W (the same loops, micro-kernels and
 * packed values), on odd sizes: K across several slices and several
 * TLMI_WEIGHTS_PACK_DEPTH chunks of a slice, N not a multiple of NR, N
 * over several of the packed path's column blocks. */
static void packed_path_same_bits_as_float32_gemm(void **state) {
    (void)state;
    const int64_t sizes[][3] = {/* m (over direct_max_m), n, k */
                                {9, 1, 1},     {10, 7, 7},   {11, 33, 31},
                                {12, 100, 33}, {23, 70, 129}, {33, 47, 300},
                                {40, 65, 1100},
                                /* several column blocks of the packed
                                 * path (TLMI_WEIGHTS_PACKED_BLOCK_BYTES),
                                 * and rows of A 4 KiB long: one block */
                                {9, 200, 700}, {10, 130, 1024}};
    const tlmi_weight_kernels *const *all = tlmi_weight_kernels_all();
    int checked = 0;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels == NULL || kernels->gemm_blocking == NULL)
            continue;
        for (size_t v = 0; all[v] != NULL; v++) {
            const tlmi_weight_kernels *wk = all[v];
            if (wk->dequantize_block == NULL ||
                (wk->isa != isa && wk->isa != TLMI_ISA_SCALAR))
                continue;
            for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
                const int64_t m = sizes[t][0] + wk->direct_max_m,
                              n = sizes[t][1], k = sizes[t][2];
                float *wf = random_matrix(n, k);
                float *bias = random_matrix(1, n);
                float *a = random_matrix(m, k);
                tlmi_weights w = make_weights(wk->format, wf, n, k);
                float *wd = dequantized(&w);
                float *c = drive(kernels, wk, &w, a, t % 2 ? bias : NULL, m,
                                 1, 0);
                const size_t bytes = kernels->gemm_workspace(m, n, k, 0, 1);
                float *ws = malloc(bytes + 1);
                float *want = malloc((size_t)(m * n) * sizeof *want);
                assert_non_null(ws);
                assert_non_null(want);
                kernels->gemm(want, a, wd, t % 2 ? bias : NULL, m, n, k, 0, 1,
                              0, ws);
                if (memcmp(c, want, (size_t)(m * n) * sizeof *c) != 0) {
                    print_error("%s %s %s m=%lld n=%lld k=%lld: not the "
                                "float32 GEMM's bits\n",
                                kernels->name, format_name(wk->format),
                                wk->name, (long long)m, (long long)n,
                                (long long)k);
                    fail();
                }
                checked++;
                free(want);
                free(ws);
                free(c);
                free(wd);
                free((void *)w.data);
                free(a);
                free(bias);
                free(wf);
            }
        }
    }
    (void)checked; /* 0 on a build with no SIMD table */
}

/* 1, 2 and 3 threads (and a workspace with one slot only): the same
 * bits, on both paths, for every table's choice. Suite "threads". */
static void driver_same_bits_any_threads(void **state) {
    (void)state;
    const int64_t n = 1000, k = 96;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels == NULL)
            continue;
        for (int format = TLM_WEIGHTS_BF16; format <= TLM_WEIGHTS_INT8;
             format++) {
            const tlmi_weight_kernels *wk = tlmi_weight_kernels_choose(
                kernels, format, tlmi_cpu_usable_features());
            float *wf = random_matrix(n, k);
            float *bias = random_matrix(1, n);
            tlmi_weights w = make_weights(format, wf, n, k);
            /* direct, just above it (packed from m = 9), well above */
            const int64_t ms[] = {1, wk->direct_max_m + 3,
                                  wk->direct_max_m + 40};
            for (size_t im = 0; im < 3; im++) {
                const int64_t m = ms[im];
                float *a = random_matrix(m, k);
                float *one = drive(kernels, wk, &w, a, bias, m, 1, 0);
                for (int threads = 2; threads <= 4; threads++) {
                    /* 4: three threads with a one-slot workspace */
                    float *c = drive(kernels, wk, &w, a, bias, m,
                                     threads == 4 ? 3 : threads, threads == 4);
                    if (memcmp(one, c, (size_t)(m * n) * sizeof *c) != 0) {
                        print_error("%s %s m=%lld: threads %d differ from 1\n",
                                    kernels->name, wk->name, (long long)m,
                                    threads);
                        fail();
                    }
                    free(c);
                }
                free(one);
                free(a);
            }
            free((void *)w.data);
            free(bias);
            free(wf);
        }
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "--threads") == 0) {
        const struct CMUnitTest threaded[] = {
            cmocka_unit_test(driver_same_bits_any_threads),
        };
        return cmocka_run_group_tests(threaded, NULL, NULL);
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bytes_of_each_format),
        cmocka_unit_test(int8_round_trip),
        cmocka_unit_test(bf16_round_trip),
        cmocka_unit_test(quantize_refuses_non_finite),
        cmocka_unit_test(validate_refuses_each_defect),
        cmocka_unit_test(scalar_against_double),
        cmocka_unit_test(int8_non_finite_activations),
        cmocka_unit_test(choice_follows_table_and_features),
        cmocka_unit_test(context_features_follow_the_mask),
        cmocka_unit_test(every_variant_against_scalar),
        cmocka_unit_test(driver_paths_against_double),
        cmocka_unit_test(dequantize_block_matches_rows),
        cmocka_unit_test(packed_path_same_bits_as_float32_gemm),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
