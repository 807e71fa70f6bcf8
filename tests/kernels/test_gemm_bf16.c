/*
 * The bf16 products (kernels/gemm_bf16.h): every variant this machine can
 * run (scalar always; avx2, avx512, avx512-bf16, neon, neon-bf16 when
 * built and supported) against the scalar reference tlmi_gemm_bf16, and the
 * reference against its definition.
 *
 * The reference: bitwise tlmi_gemm (the float32 reference, same loops) on
 * copies of A and B rounded element by element with tlmi_float_to_bf16,
 * and different from the float32 product (the rounding happens).
 *
 * The variants: every transpose form, with and without bias and
 * accumulate, sizes 1, 7, 33, 100 in every mix, larger shapes with 1000
 * in each position and across the cache blocks, every remainder of M by
 * the micro-tiles' rows. Tolerance: the variant and the reference both
 * sum the same exact products of the rounded values (plus bias and C) in
 * float32, in different orders, so they differ by at most 2 (K + 2) eps S,
 * S = sum over p of |bf16(op(A)[i, p]) bf16(op(B)[p, j])| + |bias[j]| +
 * |C0[i, j]| (eps = 2^-23), plus 1e-30. A variant that forgot to round
 * would be off by about 2^-9 S, far outside it. The inputs are multiples
 * of 2^-23 in [-1, 1): no denormal, which the bf16 instructions would
 * flush. (BFDOT rounds to odd: at most 1 ulp per addition instead of
 * half, still within the tolerance, which allows twice the
 * nearest-even bound.)
 *
 * Workspace as the variant asks, misaligned in half the calls, with a
 * guard zone after it; C with guard zones on both sides.
 *
 * (The scalar variant is the reference itself: only its column ranges
 * are tested.)
 *
 * Column ranges: a range computes bitwise the columns of the whole
 * product and leaves the others alone, and 2, 3 or 4 ranges cut at
 * multiples of gemm_col_align give the whole product bit for bit.
 * Row ranges (A not transposed): rows computed as a product of their own
 * (more than 8 of them) are bitwise those rows of the whole product.
 *
 * Choice: each table's variant is of its own ISA (so TLM_CPU picks it),
 * and avx512-bf16 (neon-bf16) only where the features allow AVX512_BF16
 * (Arm BF16).
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

#include "base/cpu.h"
#include "base/half.h"
#include "kernels/dispatch.h"
#include "kernels/gemm_bf16.h"
#include "kernels/scalar/matmul.h"
#include "tlm.h"
#include "tolerance.h"

#define GUARD 64 /* floats */
#define GUARD_VALUE 12345.0f

static uint64_t rng_state = 0x2545f4914f6cdd1dull;

static float uniform(void) { /* in [-1, 1), a multiple of 2^-23 */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

static float *random_floats(int64_t count) {
    float *x = malloc((size_t)count * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < count; i++)
        x[i] = uniform();
    return x;
}

static float rounded(float x) {
    return tlmi_bf16_to_float(tlmi_float_to_bf16(x));
}

static const char *form_name(int ta, int tb) {
    static const char *const names[2][2] = {{"nn", "nt"}, {"tn", "tt"}};
    return names[ta][tb];
}

/* ---- The reference ----------------------------------------------------- */

static void reference_is_float32_on_rounded(void **state) {
    (void)state;
    static const int64_t shapes[][3] = {{1, 1, 1}, {7, 33, 100}, {33, 7, 1},
                                        {100, 33, 7}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int form = 0; form < 4; form++) {
            const int64_t m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
            const int ta = form >> 1, tb = form & 1;
            float *a = random_floats(m * k), *b = random_floats(k * n);
            float *bias = random_floats(n), *c0 = random_floats(m * n);
            float *ar = malloc((size_t)(m * k) * sizeof *ar);
            float *br = malloc((size_t)(k * n) * sizeof *br);
            float *got = malloc((size_t)(m * n) * sizeof *got);
            float *want = malloc((size_t)(m * n) * sizeof *want);
            float *plain = malloc((size_t)(m * n) * sizeof *plain);
            assert_true(ar && br && got && want && plain);
            for (int64_t i = 0; i < m * k; i++)
                ar[i] = rounded(a[i]);
            for (int64_t i = 0; i < k * n; i++)
                br[i] = rounded(b[i]);
            const size_t bytes = (size_t)(m * n) * sizeof(float);
            memcpy(got, c0, bytes);
            memcpy(want, c0, bytes);
            memcpy(plain, c0, bytes);
            tlmi_gemm_bf16(got, a, b, bias, m, n, k, ta, tb, form & 1);
            tlmi_gemm(want, ar, br, bias, m, n, k, ta, tb, form & 1);
            tlmi_gemm(plain, a, b, bias, m, n, k, ta, tb, form & 1);
            assert_memory_equal(got, want, bytes);
            if (k >= 7) /* the inputs' rounding shows in the result */
                assert_memory_not_equal(got, plain, bytes);
            free(a), free(b), free(bias), free(c0), free(ar), free(br);
            free(got), free(want), free(plain);
        }
}

/* ---- The variants against the reference -------------------------------- */

static void check_one(const tlmi_gemm_bf16_kernels *variant, int64_t m,
                      int64_t n, int64_t k, int ta, int tb, int with_bias,
                      int accumulate, int misalign) {
    float *a = random_floats(m * k);
    float *b = random_floats(k * n);
    float *bias = with_bias ? random_floats(n) : NULL;
    float *c0 = random_floats(m * n);
    float *want = malloc((size_t)(m * n) * sizeof *want);
    float *got_block = malloc((size_t)(m * n + 2 * GUARD) * sizeof *got_block);
    assert_non_null(want);
    assert_non_null(got_block);
    float *got = got_block + GUARD;
    memcpy(want, c0, (size_t)(m * n) * sizeof *want);
    for (int64_t i = 0; i < GUARD; i++)
        got_block[i] = got[m * n + i] = GUARD_VALUE;
    memcpy(got, c0, (size_t)(m * n) * sizeof *got);

    const size_t ws_bytes = variant->gemm_workspace(m, n, k, ta, tb);
    const size_t ws_floats = ws_bytes / sizeof(float) + 1;
    float *ws_block = malloc((ws_floats + GUARD) * sizeof(float));
    assert_non_null(ws_block);
    float *ws = ws_block + (misalign ? 1 : 0);
    for (size_t i = 0; i < GUARD; i++)
        ws_block[ws_floats + i] = GUARD_VALUE;

    tlmi_gemm_bf16(want, a, b, bias, m, n, k, ta, tb, accumulate);
    variant->gemm(got, a, b, bias, m, n, k, ta, tb, accumulate,
                  ws_bytes ? ws : NULL);

    /* bf16(A) and bf16(B), for the tolerance's S. */
    float *ar = malloc((size_t)(m * k) * sizeof *ar);
    float *br = malloc((size_t)(k * n) * sizeof *br);
    assert_non_null(ar);
    assert_non_null(br);
    for (int64_t i = 0; i < m * k; i++)
        ar[i] = rounded(a[i]);
    for (int64_t i = 0; i < k * n; i++)
        br[i] = rounded(b[i]);
    double *sums = tlmt_abs_product_sums(ar, br, m, n, k, ta, tb);
    assert_non_null(sums);
    const double eps = (double)FLT_EPSILON;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double scale = sums[i * n + j];
            if (bias != NULL)
                scale += fabs((double)bias[j]);
            if (accumulate)
                scale += fabs((double)c0[i * n + j]);
            const double tolerance =
                2.0 * (double)(k + 2) * eps * scale + 1e-30;
            const double error =
                fabs((double)got[i * n + j] - (double)want[i * n + j]);
            if (!(error <= tolerance)) {
                print_error("%s gemm_bf16 %s m=%lld n=%lld k=%lld bias=%d "
                            "accumulate=%d: C[%lld, %lld] = %.9g, reference "
                            "%.9g (|difference| %.3g > tolerance %.3g)\n",
                            variant->name, form_name(ta, tb), (long long)m,
                            (long long)n, (long long)k, with_bias, accumulate,
                            (long long)i, (long long)j, (double)got[i * n + j],
                            (double)want[i * n + j], error, tolerance);
                fail();
            }
        }
    for (int64_t i = 0; i < GUARD; i++) {
        if (got_block[i] != GUARD_VALUE || got[m * n + i] != GUARD_VALUE) {
            print_error("%s gemm_bf16 %s m=%lld n=%lld k=%lld wrote outside "
                        "C\n", variant->name, form_name(ta, tb), (long long)m,
                        (long long)n, (long long)k);
            fail();
        }
        if (ws_block[ws_floats + (size_t)i] != GUARD_VALUE) {
            print_error("%s gemm_bf16 %s m=%lld n=%lld k=%lld wrote past its "
                        "%zu-byte workspace\n", variant->name,
                        form_name(ta, tb), (long long)m, (long long)n,
                        (long long)k, ws_bytes);
            fail();
        }
    }
    free(sums);
    free(a);
    free(b);
    free(ar);
    free(br);
    free(bias);
    free(c0);
    free(want);
    free(got_block);
    free(ws_block);
}

/* Every (m, n, k) from 1, 7, 33, 100, every form; every combination of
 * bias and accumulate while m n k <= 7^3 * 33, one in turn above. */
static void odd_sizes_all_forms(void **state) {
    const tlmi_gemm_bf16_kernels *variant = *state;
    static const int64_t sizes[] = {1, 7, 33, 100};
    const size_t count = sizeof sizes / sizeof sizes[0];
    int call = 0, turn = 0;
    for (size_t im = 0; im < count; im++)
        for (size_t in = 0; in < count; in++)
            for (size_t ik = 0; ik < count; ik++) {
                const int64_t m = sizes[im], n = sizes[in], k = sizes[ik];
                const int all_flags = m * n * k <= 7 * 7 * 33;
                for (int form = 0; form < 4; form++)
                    for (int f = 0; f < (all_flags ? 4 : 1); f++, call++) {
                        const int flags = all_flags ? f : turn++ & 3;
                        check_one(variant, m, n, k, form >> 1, form & 1,
                                  flags & 1, flags >> 1, call & 1);
                    }
            }
}

/* 1000 in each position, K across a KC block (1024) into two slices,
 * some odd (the last pair of a slice half empty), N across an NC block
 * (2048), M across an A block (600 rows of K = 31). */
static void big_sizes(void **state) {
    const tlmi_gemm_bf16_kernels *variant = *state;
    static const int64_t shapes[][3] = {
        {1000, 33, 7}, {7, 1000, 33}, {33, 7, 1000}, {100, 257, 129},
        {37, 45, 1100}, {61, 2100, 19}, {600, 40, 31},
    };
    int call = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int form = 0; form < 4; form++, call++)
            check_one(variant, shapes[s][0], shapes[s][1], shapes[s][2],
                      form >> 1, form & 1, call & 1, (call >> 1) & 1,
                      call & 1);
}

/* Every M from 1 to 30 and 64, 65: every remainder by the micro-tiles'
 * rows (6, 8, 14) and so every row variant; N in full tiles (32), with a
 * ragged one (40) and a 1-column one (65). */
static void row_remainders(void **state) {
    const tlmi_gemm_bf16_kernels *variant = *state;
    static const int64_t ns[] = {32, 40, 65};
    int call = 0;
    for (int64_t m = 1; m <= 65; m = m == 30 ? 64 : m + 1)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
            for (int form = 0; form < 4; form++, call++)
                check_one(variant, m, ns[in], call % 3 ? 33 : 8, form >> 1,
                          form & 1, call & 1, (call >> 1) & 1,
                          (call >> 2) & 1);
}

static void run_cols(const tlmi_gemm_bf16_kernels *variant, float *c,
                     const float *a, const float *b, const float *bias,
                     int64_t m, int64_t n, int64_t k, int ta, int tb,
                     int accumulate, int64_t j_begin, int64_t j_end) {
    const size_t ws_bytes = variant->gemm_workspace(m, n, k, ta, tb);
    float *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    assert_true(ws_bytes == 0 || ws != NULL);
    variant->gemm_cols(c, a, b, bias, m, n, k, ta, tb, accumulate, j_begin,
                       j_end, ws);
    free(ws);
}

static void column_ranges(void **state) {
    const tlmi_gemm_bf16_kernels *variant = *state;
    static const int64_t ns[] = {1, 7, 33, 100, 1000};
    static const int64_t ms[] = {1, 9, 33};
    static const int64_t ks[] = {7, 100};
    const int64_t align = variant->gemm_col_align;
    assert_true(align >= 1);
    /* The scalar variant computes every element on its own: N up to 100
     * shows that, and keeps its run short. */
    const size_t n_count = variant->isa == TLMI_ISA_SCALAR
                               ? sizeof ns / sizeof ns[0] - 1
                               : sizeof ns / sizeof ns[0];
    int call = 0;
    for (size_t in = 0; in < n_count; in++)
        for (size_t im = 0; im < sizeof ms / sizeof ms[0]; im++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
                for (int form = 0; form < 4; form++, call++) {
                    const int64_t m = ms[im], n = ns[in], k = ks[ik];
                    const int ta = form >> 1, tb = form & 1;
                    const int accumulate = (call >> 1) & 1;
                    const size_t cn = (size_t)(m * n);
                    float *a = random_floats(m * k);
                    float *b = random_floats(k * n);
                    float *bias = call & 1 ? random_floats(n) : NULL;
                    float *c0 = random_floats(m * n);
                    float *full = malloc(cn * sizeof *full);
                    float *part = malloc(cn * sizeof *part);
                    assert_non_null(full);
                    assert_non_null(part);
                    memcpy(full, c0, cn * sizeof *full);
                    run_cols(variant, full, a, b, bias, m, n, k, ta, tb,
                             accumulate, 0, n);

                    /* One range in the middle: its columns as in the
                     * whole product, the others untouched. */
                    const int64_t units = (n + align - 1) / align;
                    const int64_t jb = units / 3 * align;
                    const int64_t je = (units * 2 / 3 + 1) * align < n
                                           ? (units * 2 / 3 + 1) * align
                                           : n;
                    memcpy(part, c0, cn * sizeof *part);
                    run_cols(variant, part, a, b, bias, m, n, k, ta, tb,
                             accumulate, jb, je);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++) {
                            const float want = j >= jb && j < je
                                                   ? full[i * n + j]
                                                   : c0[i * n + j];
                            if (memcmp(&part[i * n + j], &want, sizeof want)) {
                                print_error("%s gemm_bf16_cols %s m=%lld "
                                            "n=%lld k=%lld [%lld, %lld): "
                                            "C[%lld, %lld] = %.9g, want "
                                            "%.9g\n", variant->name,
                                            form_name(ta, tb), (long long)m,
                                            (long long)n, (long long)k,
                                            (long long)jb, (long long)je,
                                            (long long)i, (long long)j,
                                            (double)part[i * n + j],
                                            (double)want);
                                fail();
                            }
                        }

                    for (int64_t parts = 2; parts <= 4; parts++) {
                        memcpy(part, c0, cn * sizeof *part);
                        for (int64_t t = 0; t < parts; t++) {
                            const int64_t b0 = units * t / parts * align;
                            const int64_t e = units * (t + 1) / parts * align;
                            const int64_t b1 = e < n ? e : n;
                            if (b0 < b1)
                                run_cols(variant, part, a, b, bias, m, n, k,
                                         ta, tb, accumulate, b0, b1);
                        }
                        if (memcmp(part, full, cn * sizeof *part) != 0) {
                            print_error("%s gemm_bf16_cols %s m=%lld n=%lld "
                                        "k=%lld: %lld aligned ranges differ "
                                        "from the whole product\n",
                                        variant->name, form_name(ta, tb),
                                        (long long)m, (long long)n,
                                        (long long)k, (long long)parts);
                            fail();
                        }
                    }
                    /* The plain entry is the whole range. */
                    memcpy(part, c0, cn * sizeof *part);
                    const size_t ws_bytes =
                        variant->gemm_workspace(m, n, k, ta, tb);
                    float *ws = ws_bytes ? malloc(ws_bytes) : NULL;
                    variant->gemm(part, a, b, bias, m, n, k, ta, tb,
                                  accumulate, ws);
                    free(ws);
                    assert_memory_equal(part, full, cn * sizeof *part);
                    free(a), free(b), free(bias), free(c0);
                    free(full), free(part);
                }
}

/* ---- The choice -------------------------------------------------------- */

static void choice(void **state) {
    (void)state;
    const uint32_t cpu = tlmi_cpu_detect();
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *table = tlmi_kernels_for(isa);
        if (table == NULL)
            continue;
        const tlmi_gemm_bf16_kernels *chosen =
            tlmi_gemm_bf16_choose(table, cpu);
        assert_int_equal(chosen->isa, isa);
        /* Without AVX512_BF16 the table's rounding variant, named as
         * the table. */
        const tlmi_gemm_bf16_kernels *plain = tlmi_gemm_bf16_choose(
            table, cpu & ~(uint32_t)(TLM_CPU_AVX512BF16 | TLM_CPU_ARM_BF16));
        assert_int_equal(plain->isa, isa);
        assert_string_equal(plain->name, table->name);
        if (isa == TLMI_ISA_AVX512 && (cpu & TLM_CPU_AVX512BF16))
            assert_string_equal(chosen->name, "avx512-bf16");
#if defined(TLMI_HAVE_NEON_BF16)
        if (isa == TLMI_ISA_NEON && (cpu & TLM_CPU_ARM_BF16))
            assert_string_equal(chosen->name, "neon-bf16");
#endif
    }
    /* The context's choice follows TLM_CPU (the dispatch test's runs). */
    const tlmi_kernels *table = tlmi_kernels_choose();
    assert_int_equal(
        tlmi_gemm_bf16_choose(table, tlmi_cpu_usable_features())->isa,
        table->isa);
}

/* Row ranges (what tlmi_gemm_parallel's row split runs, A not
 * transposed): the product of rows [i0, i1) of A, as a product of
 * i1 - i0 rows from a + i0 K into c + i0 N, is bitwise those rows of the
 * whole product, for ranges of more rows than the float32 kernels'
 * small-M path takes (SPLIT_MIN_ROWS; the bf16 ones have none, the split
 * keeps to it anyway), cut anywhere (not at multiples of the micro-tile's
 * height), whatever N, K and the K slices. */
#define SPLIT_MIN_ROWS 9

static void row_ranges(void **state) {
    const tlmi_gemm_bf16_kernels *variant = *state;
    static const int64_t shapes[][3] = {
        {18, 7, 100}, {40, 33, 7}, {101, 40, 33}, {151, 65, 16},
        {29, 1, 33}, {20, 9, 1100},
    };
    int call = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int tb = 0; tb < 2; tb++, call++) {
            const int64_t m = shapes[s][0], n = shapes[s][1],
                          k = shapes[s][2];
            const int with_bias = call & 1, accumulate = (call >> 1) & 1;
            const size_t cn = (size_t)(m * n);
            float *a = random_floats(m * k);
            float *b = random_floats(k * n);
            float *bias = with_bias ? random_floats(n) : NULL;
            float *c0 = random_floats(m * n);
            float *full = malloc(cn * sizeof *full);
            float *part = malloc(cn * sizeof *part);
            assert_non_null(full);
            assert_non_null(part);
            memcpy(full, c0, cn * sizeof *full);
            run_cols(variant, full, a, b, bias, m, n, k, 0, tb, accumulate,
                     0, n);
            /* 2 and 3 equal ranges, and one of SPLIT_MIN_ROWS rows first. */
            for (int64_t parts = 1; parts <= 3; parts++) {
                if (m / (parts > 1 ? parts : 2) < SPLIT_MIN_ROWS)
                    continue;
                memcpy(part, c0, cn * sizeof *part);
                for (int64_t t = 0; t < (parts > 1 ? parts : 2); t++) {
                    int64_t i0, i1;
                    if (parts == 1) { /* [0, 9) and [9, M) */
                        i0 = t == 0 ? 0 : SPLIT_MIN_ROWS;
                        i1 = t == 0 ? SPLIT_MIN_ROWS : m;
                    } else {
                        i0 = m * t / parts;
                        i1 = m * (t + 1) / parts;
                    }
                    run_cols(variant, part + i0 * n, a + i0 * k, b, bias,
                             i1 - i0, n, k, 0, tb, accumulate, 0, n);
                }
                if (memcmp(part, full, cn * sizeof *part) != 0) {
                    print_error("%s %s m=%lld n=%lld k=%lld: rows cut into "
                                "%s differ from the whole product\n",
                                variant->name, form_name(0, tb), (long long)m,
                                (long long)n, (long long)k,
                                parts == 1 ? "9 + the rest"
                                : parts == 2 ? "2 ranges" : "3 ranges");
                    fail();
                }
            }
            free(a);
            free(b);
            free(bias);
            free(c0);
            free(full);
            free(part);
        }
}

int main(void) {
    enum { PER_VARIANT = 5, MAX_VARIANTS = 8 };
    struct CMUnitTest tests[2 + PER_VARIANT * MAX_VARIANTS];
    static char names[PER_VARIANT * MAX_VARIANTS][64];
    size_t count = 0;
    tests[count++] = (struct CMUnitTest){"reference_is_float32_on_rounded",
                                         reference_is_float32_on_rounded,
                                         NULL, NULL, NULL};
    tests[count++] = (struct CMUnitTest){"choice", choice, NULL, NULL, NULL};
    static const struct {
        const char *suffix;
        CMUnitTestFunction run;
    } cases[PER_VARIANT] = {{"odd_sizes_all_forms", odd_sizes_all_forms},
                            {"big_sizes", big_sizes},
                            {"row_remainders", row_remainders},
                            {"row_ranges", row_ranges},
                            {"column_ranges", column_ranges}};
    const tlmi_gemm_bf16_kernels *const *all = tlmi_gemm_bf16_all();
    printf("test_gemm_bf16: variants tested:");
    size_t named = 0;
    for (size_t v = 0; all[v] != NULL && v < MAX_VARIANTS; v++) {
        printf(" %s", all[v]->name);
        /* The scalar variant is the reference: only its ranges. */
        const int first = all[v]->isa == TLMI_ISA_SCALAR ? PER_VARIANT - 2 : 0;
        for (int c = first; c < PER_VARIANT; c++, named++) {
            snprintf(names[named], sizeof names[named], "%s_%s",
                     all[v]->name, cases[c].suffix);
            tests[count++] = (struct CMUnitTest){names[named], cases[c].run,
                                                 NULL, NULL,
                                                 (void *)all[v]};
        }
    }
    printf("\n");
    fflush(stdout);
    return _cmocka_run_group_tests("gemm_bf16", tests, count, NULL, NULL);
}
