/*
 * Every GEMM kernel the machine can run (scalar always; AVX2, AVX-512,
 * NEON when this build has them and the CPU supports them), whatever
 * TLM_CPU or the CPU mask say, against the scalar reference tlmi_gemm:
 * every transpose form, with and without bias and accumulate, sizes that
 * are 1, odd, around the micro-tile sizes and across every cache block,
 * every remainder of M by the micro-tile's rows, and on the small-M path
 * every N up to 130 (every remainder by its column tiles). Under valgrind
 * the scalar table, the reference itself, runs only its column ranges
 * (valgrind_scalar_ranges_only).
 *
 * Tolerance: both the kernel and the reference compute each element as a
 * sum of K products plus the bias and the old C, in different orders, so
 * each is within (K + 2) * eps of the exact value relative to
 *   S = sum over p of |op(A)[i, p] * op(B)[p, j]| + |bias[j]| + |C0[i, j]|;
 * the test allows their difference 2 (K + 2) eps S (eps = 2^-23), plus
 * 1e-30 so that S = 0 compares exactly.
 *
 * The workspace is the size the kernel asked for, deliberately misaligned
 * in half the calls, and followed by a guard zone that must stay intact;
 * C has guard zones on both sides too.
 *
 * Column ranges (gemm_cols, what the thread pool runs): at N = 1, 3, 7,
 * 15, 33, 100, 1000, a range computes exactly (bitwise) the columns the
 * whole product computes and leaves the others alone, and cutting the
 * columns into 2, 3 or 4 ranges at multiples of gemm_col_align gives the
 * whole product bit for bit (so any thread count does).
 *
 * Row ranges (the thread pool's other split, A not transposed): rows
 * [i0, i1) computed as a product of their own (more than 8 rows, the
 * small-M path's limit) are bitwise those rows of the whole product,
 * cut into 2 or 3 ranges or after 9 rows, K across the cache blocks.
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

#include "kernels/dispatch.h"
#include "kernels/scalar/matmul.h"
#include "tolerance.h"

#define GUARD 64 /* floats */
#define GUARD_VALUE 12345.0f

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float uniform(void) { /* in [-1, 1) */
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

static const char *form_name(int ta, int tb) {
    static const char *const names[2][2] = {{"nn", "nt"}, {"tn", "tt"}};
    return names[ta][tb];
}

/* One call of `kernels`' GEMM compared with the reference. */
static void check_one(const tlmi_kernels *kernels, int64_t m, int64_t n,
                      int64_t k, int ta, int tb, int with_bias,
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

    const size_t ws_bytes = kernels->gemm_workspace(m, n, k, ta, tb);
    const size_t ws_floats = ws_bytes / sizeof(float) + 1;
    float *ws_block = malloc((ws_floats + GUARD) * sizeof(float));
    assert_non_null(ws_block);
    float *ws = ws_block + (misalign ? 1 : 0);
    for (size_t i = 0; i < GUARD; i++)
        ws_block[ws_floats + i] = GUARD_VALUE;

    tlmi_gemm(want, a, b, bias, m, n, k, ta, tb, accumulate);
    kernels->gemm(got, a, b, bias, m, n, k, ta, tb, accumulate,
                  ws_bytes ? ws : NULL);

    const double eps = (double)FLT_EPSILON;
    double *sums = tlmt_abs_product_sums(a, b, m, n, k, ta, tb);
    assert_non_null(sums);
    for (int64_t i = 0; i < m; i++) {
        for (int64_t j = 0; j < n; j++) {
            double scale = sums[i * n + j];
            if (bias != NULL)
                scale += fabs((double)bias[j]);
            if (accumulate)
                scale += fabs((double)c0[i * n + j]);
            const double tolerance = 2.0 * (double)(k + 2) * eps * scale + 1e-30;
            const double error =
                fabs((double)got[i * n + j] - (double)want[i * n + j]);
            if (!(error <= tolerance)) {
                print_error("%s gemm %s m=%lld n=%lld k=%lld bias=%d "
                            "accumulate=%d: C[%lld, %lld] = %.9g, reference "
                            "%.9g (|difference| %.3g > tolerance %.3g)\n",
                            kernels->name, form_name(ta, tb), (long long)m,
                            (long long)n, (long long)k, with_bias, accumulate,
                            (long long)i, (long long)j, (double)got[i * n + j],
                            (double)want[i * n + j], error, tolerance);
                fail();
            }
        }
    }
    for (int64_t i = 0; i < GUARD; i++) {
        if (got_block[i] != GUARD_VALUE || got[m * n + i] != GUARD_VALUE) {
            print_error("%s gemm %s m=%lld n=%lld k=%lld wrote outside C\n",
                        kernels->name, form_name(ta, tb), (long long)m,
                        (long long)n, (long long)k);
            fail();
        }
        if (ws_block[ws_floats + (size_t)i] != GUARD_VALUE) {
            print_error("%s gemm %s m=%lld n=%lld k=%lld wrote past its "
                        "%zu-byte workspace\n",
                        kernels->name, form_name(ta, tb), (long long)m,
                        (long long)n, (long long)k, ws_bytes);
            fail();
        }
    }
    free(sums);
    free(a);
    free(b);
    free(bias);
    free(c0);
    free(want);
    free(got_block);
    free(ws_block);
}

static const int64_t small_sizes[] = {1, 3, 7, 15, 16, 17, 33, 100};
#define N_SMALL (sizeof small_sizes / sizeof small_sizes[0])

/* Every (m, n, k) from small_sizes and every form; all four combinations
 * of bias and accumulate while m n k <= 16^3, one (taken in turn) above,
 * which keeps the run short under valgrind and qemu. */
static void small_sizes_all_forms(void **state) {
    const tlmi_kernels *kernels = *state;
    int call = 0, turn = 0;
    for (size_t im = 0; im < N_SMALL; im++)
        for (size_t in = 0; in < N_SMALL; in++)
            for (size_t ik = 0; ik < N_SMALL; ik++) {
                const int64_t m = small_sizes[im], n = small_sizes[in],
                              k = small_sizes[ik];
                const int all_flags = m * n * k <= 16 * 16 * 16;
                for (int form = 0; form < 4; form++) {
                    for (int f = 0; f < (all_flags ? 4 : 1); f++, call++) {
                        const int flags = all_flags ? f : turn++ & 3;
                        check_one(kernels, m, n, k, form >> 1, form & 1,
                                  flags & 1, flags >> 1, call & 1);
                    }
                }
            }
}

/* Larger shapes: several micro-tiles with ragged edges, K across a KC
 * block, N across an NC block, M across an MC block, the decode shape. */
static void big_sizes(void **state) {
    const tlmi_kernels *kernels = *state;
    static const int64_t shapes[][3] = {
        {300, 257, 129}, {1, 1000, 768}, {2, 1000, 300}, {8, 515, 200},
        {9, 130, 70},    {61, 2100, 19}, {37, 45, 600},  {400, 40, 31},
        /* A (and B) read in place: M = 1000 rows, 100 of a step's M = 64,
         * N at the limits (256, 512) and past them (513). */
        {1000, 33, 15},  {100, 256, 33}, {200, 512, 7},  {64, 513, 65},
    };
    int call = 0;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int form = 0; form < 4; form++, call++)
            check_one(kernels, shapes[s][0], shapes[s][1], shapes[s][2],
                      form >> 1, form & 1, call & 1, (call >> 1) & 1,
                      call & 1);
}

/* Every M from 1 to 45 and the training step's 64 and 65 (a sequence of
 * nanoGPT's context): every remainder of M by the micro-tile's rows on
 * every ISA (6, 8, 14), so every row variant of the edge kernels runs,
 * with full and ragged column tiles, bias and accumulate in turn. These
 * small products are also those whose kernels read A, and B not
 * transposed, where they are stored instead of packing them: N = 32 in
 * full tiles, 40 with a ragged one read through masks, 65 with a
 * 1-column tile that needs packed panels after all. */
static void row_remainders(void **state) {
    const tlmi_kernels *kernels = *state;
    static const int64_t ns[] = {32, 40, 65};
    static const int64_t ks[] = {7, 33};
    int call = 0;
    for (int64_t m = 1; m <= 65; m = m == 45 ? 64 : m + 1)
        for (size_t in = 0; in < sizeof ns / sizeof ns[0]; in++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
                for (int form = 0; form < 4; form++, call++)
                    check_one(kernels, m, ns[in], ks[ik], form >> 1,
                              form & 1, call & 1, (call >> 1) & 1,
                              (call >> 2) & 1);
}

/* The small-M path (M <= 8, no packing) at every N from 1 to 130: every
 * remainder of N by every width of its column tiles (up to 8 vectors:
 * 64 columns with AVX2, 128 with AVX-512), whose last columns go through
 * narrower tiles, masks or scalar code. (AVX-512 once left columns 113 to
 * 127 of such a remainder unwritten for 1, 2, 5 and 6 rows.) */
static void small_m_widths(void **state) {
    const tlmi_kernels *kernels = *state;
    int call = 0;
    for (int64_t m = 1; m <= 8; m++)
        for (int64_t n = 1; n <= 130; n++)
            for (int form = 0; form < 3; form++, call++)
                check_one(kernels, m, n, 5, form == 1, form == 2, call & 1,
                          (call >> 1) & 1, 0);
}

/* The product of columns [j_begin, j_end) into c (a copy of c0), with a
 * workspace of its own. */
static void run_cols(const tlmi_kernels *kernels, float *c, const float *a,
                     const float *b, const float *bias, int64_t m, int64_t n,
                     int64_t k, int ta, int tb, int accumulate,
                     int64_t j_begin, int64_t j_end) {
    const size_t ws_bytes = kernels->gemm_workspace(m, n, k, ta, tb);
    float *ws = ws_bytes ? malloc(ws_bytes) : NULL;
    assert_true(ws_bytes == 0 || ws != NULL);
    kernels->gemm_cols(c, a, b, bias, m, n, k, ta, tb, accumulate, j_begin,
                       j_end, ws);
    free(ws);
}

/* Under valgrind (TLM_TEST_VALGRIND set), the scalar table is tested
 * only here and up to N = 100 when another table is tested too (main):
 * its other cases compare tlmi_gemm with itself, and every other table's
 * cases run tlmi_gemm on the same shapes (their reference), under memcheck
 * all the same; its column ranges compute each element on its own. */
static int valgrind_scalar_ranges_only;

static void column_ranges(void **state) {
    const tlmi_kernels *kernels = *state;
    static const int64_t ns[] = {1, 3, 7, 15, 33, 100, 1000};
    static const int64_t ms[] = {1, 3, 9, 33};
    static const int64_t ks[] = {7, 100};
    const int64_t align = kernels->gemm_col_align;
    assert_true(align >= 1);
    const size_t n_count =
        valgrind_scalar_ranges_only && kernels->isa == TLMI_ISA_SCALAR
            ? sizeof ns / sizeof ns[0] - 1
            : sizeof ns / sizeof ns[0];
    int call = 0;
    for (size_t in = 0; in < n_count; in++)
        for (size_t im = 0; im < sizeof ms / sizeof ms[0]; im++)
            for (size_t ik = 0; ik < sizeof ks / sizeof ks[0]; ik++)
                for (int form = 0; form < 4; form++, call++) {
                    const int64_t m = ms[im], n = ns[in], k = ks[ik];
                    const int ta = form >> 1, tb = form & 1;
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
                    run_cols(kernels, full, a, b, bias, m, n, k, ta, tb,
                             accumulate, 0, n);

                    /* One range in the middle (aligned ends, or N): its
                     * columns as in the whole product, others kept. */
                    const int64_t units = (n + align - 1) / align;
                    const int64_t jb = units / 3 * align;
                    const int64_t je = (units * 2 / 3 + 1) * align < n
                                           ? (units * 2 / 3 + 1) * align
                                           : n;
                    memcpy(part, c0, cn * sizeof *part);
                    run_cols(kernels, part, a, b, bias, m, n, k, ta, tb,
                             accumulate, jb, je);
                    for (int64_t i = 0; i < m; i++)
                        for (int64_t j = 0; j < n; j++) {
                            const float want = j >= jb && j < je
                                                   ? full[i * n + j]
                                                   : c0[i * n + j];
                            if (memcmp(&part[i * n + j], &want, sizeof want)) {
                                print_error("%s gemm_cols %s m=%lld n=%lld "
                                            "k=%lld [%lld, %lld): C[%lld, "
                                            "%lld] = %.9g, want %.9g\n",
                                            kernels->name, form_name(ta, tb),
                                            (long long)m, (long long)n,
                                            (long long)k, (long long)jb,
                                            (long long)je, (long long)i,
                                            (long long)j,
                                            (double)part[i * n + j],
                                            (double)want);
                                fail();
                            }
                        }

                    /* Aligned splits into 2, 3 and 4 ranges. */
                    for (int64_t parts = 2; parts <= 4; parts++) {
                        memcpy(part, c0, cn * sizeof *part);
                        for (int64_t t = 0; t < parts; t++) {
                            const int64_t ub = units * t / parts,
                                          ue = units * (t + 1) / parts;
                            const int64_t b0 = ub * align;
                            const int64_t b1 = ue * align < n ? ue * align : n;
                            if (b0 < b1)
                                run_cols(kernels, part, a, b, bias, m, n, k,
                                         ta, tb, accumulate, b0, b1);
                        }
                        if (memcmp(part, full, cn * sizeof *part) != 0) {
                            print_error("%s gemm_cols %s m=%lld n=%lld k=%lld: "
                                        "%lld aligned ranges differ from the "
                                        "whole product\n",
                                        kernels->name, form_name(ta, tb),
                                        (long long)m, (long long)n,
                                        (long long)k, (long long)parts);
                            fail();
                        }
                    }
                    /* And the whole product is the plain entry's. */
                    memcpy(part, c0, cn * sizeof *part);
                    const size_t ws_bytes = kernels->gemm_workspace(m, n, k, ta, tb);
                    float *ws = ws_bytes ? malloc(ws_bytes) : NULL;
                    kernels->gemm(part, a, b, bias, m, n, k, ta, tb,
                                  accumulate, ws);
                    free(ws);
                    assert_memory_equal(part, full, cn * sizeof *part);
                    free(a);
                    free(b);
                    free(bias);
                    free(c0);
                    free(full);
                    free(part);
                }
}

/* Row ranges (what tlmi_gemm_parallel's row split runs, A not
 * transposed): the product of rows [i0, i1) of A, as a product of
 * i1 - i0 rows from a + i0 K into c + i0 N, is bitwise those rows of the
 * whole product, for ranges of more rows than the small-M path takes
 * (SPLIT_MIN_ROWS), cut anywhere (not at multiples of the micro-tile's
 * height), whatever N, K and the K slices. */
#define SPLIT_MIN_ROWS 9

static void row_ranges(void **state) {
    const tlmi_kernels *kernels = *state;
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
            run_cols(kernels, full, a, b, bias, m, n, k, 0, tb, accumulate,
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
                    run_cols(kernels, part + i0 * n, a + i0 * k, b, bias,
                             i1 - i0, n, k, 0, tb, accumulate, 0, n);
                }
                if (memcmp(part, full, cn * sizeof *part) != 0) {
                    print_error("%s %s m=%lld n=%lld k=%lld: rows cut into "
                                "%s differ from the whole product\n",
                                kernels->name, form_name(0, tb), (long long)m,
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
    struct CMUnitTest tests[6 * TLMI_ISA_COUNT];
    static char names[6 * TLMI_ISA_COUNT][64];
    size_t count = 0;
    int tables = 0;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++)
        tables += tlmi_kernels_for(isa) != NULL;
    valgrind_scalar_ranges_only =
        getenv("TLM_TEST_VALGRIND") != NULL && tables > 1;
    printf("test_gemm: kernels tested:");
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels == NULL)
            continue;
        printf(" %s", kernels->name);
        if (isa == TLMI_ISA_SCALAR && valgrind_scalar_ranges_only) {
            printf(" (column ranges only, under valgrind)");
            snprintf(names[count], sizeof names[count], "%s_column_ranges",
                     kernels->name);
            tests[count] = (struct CMUnitTest){names[count], column_ranges,
                                               NULL, NULL, (void *)kernels};
            count++;
            continue;
        }
        snprintf(names[count], sizeof names[count], "%s_small_sizes_all_forms",
                 kernels->name);
        tests[count] = (struct CMUnitTest){names[count], small_sizes_all_forms,
                                           NULL, NULL, (void *)kernels};
        count++;
        snprintf(names[count], sizeof names[count], "%s_big_sizes",
                 kernels->name);
        tests[count] = (struct CMUnitTest){names[count], big_sizes, NULL, NULL,
                                           (void *)kernels};
        count++;
        snprintf(names[count], sizeof names[count], "%s_row_remainders",
                 kernels->name);
        tests[count] = (struct CMUnitTest){names[count], row_remainders, NULL,
                                           NULL, (void *)kernels};
        count++;
        snprintf(names[count], sizeof names[count], "%s_small_m_widths",
                 kernels->name);
        tests[count] = (struct CMUnitTest){names[count], small_m_widths, NULL,
                                           NULL, (void *)kernels};
        count++;
        snprintf(names[count], sizeof names[count], "%s_column_ranges",
                 kernels->name);
        tests[count] = (struct CMUnitTest){names[count], column_ranges, NULL,
                                           NULL, (void *)kernels};
        count++;
        snprintf(names[count], sizeof names[count], "%s_row_ranges",
                 kernels->name);
        tests[count] = (struct CMUnitTest){names[count], row_ranges, NULL,
                                           NULL, (void *)kernels};
        count++;
    }
    printf("\n");
    fflush(stdout);
    return _cmocka_run_group_tests("gemm", tests, count, NULL, NULL);
}
