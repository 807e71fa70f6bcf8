/*
 * The bf16 SIMD variants' own checks (kernels/weights_bf16.h); their
 * products against the scalar variant on the contract's odd sizes, with
 * the tolerances derived there, are in test_weights.c with every other
 * variant's. Here:
 *   - the vectorised row conversions of every ISA this CPU runs give
 *     bit for bit what tlmi_float_to_bf16 / tlmi_bf16_to_float give
 *     (nearest even, denormals kept, infinities, NaNs quiet), at every
 *     length around the vector widths;
 *   - dequantize_rows of every bf16 variant: the same bits as the scalar
 *     one, for any range of rows;
 *   - A's split in the variants on bf16 dot-product instructions
 *     (hi = bf16(a), lo = bf16(a - hi), kernels/weights_bf16.h) rounds
 *     both parts to nearest, ties to even: A holds ties (and near-ties) of
 *     hi and of lo; the prepared parts are those bits, and with W the
 *     identity C is hi + lo exactly (at most 17 significant bits); the
 *     widening variants give A itself;
 *   - the choice: with the BF16 feature masked off
 *     (tlm_experimental_set_cpu_mask), a new context's bf16 variant is the
 *     widening one of its table, and with it on the dot-product one.
 */
#define TLM_EXPERIMENTAL
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "base/cpu.h"
#include "base/half.h"
#include "kernels/scalar/weights.h"
#include "kernels/weights.h"
#include "kernels/weights_bf16.h"
#include "tlm.h"

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static uint32_t random_bits(void) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(rng_state >> 32);
}

static float float_of(uint32_t bits) {
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* One ISA's row conversions. */
typedef struct rows_isa {
    const char *name;
    int isa; /* enum tlmi_isa the CPU must run */
    void (*from_float)(uint16_t *dst, const float *src, int64_t n);
    void (*to_float)(float *dst, const uint16_t *src, int64_t n);
} rows_isa;

static const rows_isa rows_isas[] = {
#if defined(TLMI_HAVE_AVX2)
    {"avx2", TLMI_ISA_AVX2, tlmi_bf16_from_float_avx2, tlmi_bf16_to_float_avx2},
#endif
#if defined(TLMI_HAVE_AVX512)
    {"avx512", TLMI_ISA_AVX512, tlmi_bf16_from_float_avx512,
     tlmi_bf16_to_float_avx512},
#endif
#if defined(TLMI_HAVE_NEON)
    {"neon", TLMI_ISA_NEON, tlmi_bf16_from_float_neon, tlmi_bf16_to_float_neon},
#endif
    {NULL, 0, NULL, NULL},
};

#define ROWS_N 1000

/* Every kind of float: random bit patterns (all exponents, NaNs with
 * payloads), ties of the bf16 rounding, denormals, infinities, the
 * largest float (rounds to infinity) and zeros. */
static void fill_special_floats(float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        uint32_t bits = random_bits();
        switch (i % 8) {
        case 1: /* a tie: the dropped 16 bits exactly half */
            bits = (bits & 0xffff0000u) | 0x8000u;
            break;
        case 2: /* a denormal */
            bits &= 0x807fffffu;
            break;
        case 3: /* just below and above a tie */
            bits = (bits & 0xffff0000u) | (i % 16 == 3 ? 0x7fffu : 0x8001u);
            break;
        default:
            break;
        }
        x[i] = float_of(bits);
    }
    const float specials[] = {INFINITY, -INFINITY, NAN, -NAN, 0.0f, -0.0f,
                              3.4028235e38f, -3.4028235e38f,
                              float_of(0x7f800001u), float_of(0xffc00001u)};
    for (size_t i = 0; i < sizeof specials / sizeof specials[0] && (int64_t)i < n;
         i++)
        x[i * 7 % n] = specials[i];
}

static void rows_match_the_reference(void **state) {
    (void)state;
    float *src = malloc(ROWS_N * sizeof *src);
    uint16_t *bf = malloc((ROWS_N + 1) * sizeof *bf);
    float *back = malloc((ROWS_N + 1) * sizeof *back);
    assert_non_null(src);
    assert_non_null(bf);
    assert_non_null(back);
    fill_special_floats(src, ROWS_N);
    int tested = 0;
    for (const rows_isa *r = rows_isas; r->name != NULL; r++) {
        if (tlmi_kernels_for(r->isa) == NULL)
            continue; /* this CPU cannot run it */
        tested++;
        /* every length up to 70 (the vectors and their tails), then all */
        for (int64_t n = 0; n <= ROWS_N; n = n < 70 ? n + 1 : ROWS_N + 1) {
            const int64_t len = n > ROWS_N ? ROWS_N : n;
            bf[len] = 0xabcd;
            r->from_float(bf, src, len);
            assert_int_equal(bf[len], 0xabcd); /* nothing past the end */
            for (int64_t i = 0; i < len; i++)
                if (bf[i] != tlmi_float_to_bf16(src[i])) {
                    uint32_t bits;
                    memcpy(&bits, &src[i], sizeof bits);
                    print_error("%s: bf16(0x%08x) = 0x%04x, reference "
                                "0x%04x\n",
                                r->name, (unsigned)bits, (unsigned)bf[i],
                                (unsigned)tlmi_float_to_bf16(src[i]));
                    fail();
                }
            back[len] = 42.0f;
            r->to_float(back, bf, len);
            assert_true(back[len] == 42.0f);
            for (int64_t i = 0; i < len; i++) {
                const float want = tlmi_bf16_to_float(bf[i]);
                assert_memory_equal(&back[i], &want, sizeof want);
            }
        }
    }
    print_message("row conversions checked for %d ISA(s)\n", tested);
    free(back);
    free(bf);
    free(src);
}

/* A bf16 [rows, cols] matrix of random finite values. */
static uint16_t *random_bf16(int64_t rows, int64_t cols) {
    uint16_t *w = malloc((size_t)(rows * cols + 1) * sizeof *w);
    assert_non_null(w);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = tlmi_float_to_bf16(
            ldexpf((float)(int32_t)random_bits() / 2147483648.0f,
                   (int)(i % 11) - 5));
    return w;
}

static void dequantize_rows_match_scalar(void **state) {
    (void)state;
    const int64_t rows = 9, cols = 77;
    uint16_t *data = random_bf16(rows, cols);
    const tlmi_weights w = {.format = TLM_WEIGHTS_BF16, .rows = rows,
                            .cols = cols, .data = data};
    float *want = malloc((size_t)(rows * cols) * sizeof *want);
    float *got = malloc((size_t)(rows * cols + 1) * sizeof *got);
    assert_non_null(want);
    assert_non_null(got);
    tlmi_weights_bf16_dequantize_rows_scalar(want, &w, 0, rows);
    for (const tlmi_weight_kernels *const *v = tlmi_weight_kernels_all();
         *v != NULL; v++) {
        const tlmi_weight_kernels *wk = *v;
        if (wk->format != TLM_WEIGHTS_BF16)
            continue;
        const int64_t ranges[][2] = {{0, rows}, {2, 5}, {8, 9}, {3, 3}};
        for (size_t r = 0; r < sizeof ranges / sizeof ranges[0]; r++) {
            const int64_t begin = ranges[r][0], end = ranges[r][1];
            const int64_t count = (end - begin) * cols;
            got[count] = 42.0f;
            wk->dequantize_rows(got, &w, begin, end);
            assert_true(got[count] == 42.0f);
            if (count > 0)
                assert_memory_equal(got, want + begin * cols,
                                    (size_t)count * sizeof *got);
        }
    }
    free(got);
    free(want);
    free(data);
}

/* The variants on bf16 dot-product instructions, which split A. */
static int splits_a_to_bf16(const tlmi_weight_kernels *wk) {
    return strstr(wk->name, "bf16") != NULL;
}

/* The parts of the split as the reference rounds them. */
static uint16_t hi_of(float a) { return tlmi_float_to_bf16(a); }
static uint16_t lo_of(float a) {
    return tlmi_float_to_bf16(a - tlmi_bf16_to_float(hi_of(a)));
}

/* A [m, k] of ties and near-ties of both parts, W the identity [k, k] in
 * bf16: C = A as the variant splits it (hi + lo), since every other term
 * is an exact zero. */
static void a_splits_to_nearest_even(void **state) {
    (void)state;
    const int64_t m = 3, k = 70; /* whole vectors and a tail */
    float *a = malloc((size_t)(m * k) * sizeof *a);
    float *c = malloc((size_t)(m * k) * sizeof *c);
    uint16_t *identity = calloc((size_t)(k * k), sizeof *identity);
    assert_non_null(a);
    assert_non_null(c);
    assert_non_null(identity);
    for (int64_t j = 0; j < k; j++)
        identity[j * k + j] = 0x3f80; /* 1.0 */
    /* Hand-checked: {a, hi, lo}.
     * Ties of hi: 1 + 2^-8 lies halfway between 1 and 1 + 2^-7 and goes to
     * 1 (even), lo = 2^-8; 1 + 3 * 2^-8 halfway between 1 + 2^-7 and
     * 1 + 2^-6 goes up to 1 + 2^-6 (even), lo = -2^-8; the same negated
     * and scaled by 2^-20 and 2^30; above and below a tie.
     * Ties of lo (hi = 1): a - hi = 2^-10 + 2^-18 lies halfway between
     * 2^-10 and 2^-10 + 2^-17 (lo's step there) and goes to 2^-10 (even);
     * 2^-10 + 3 * 2^-18 goes up to 2^-10 + 2^-16; with hi rounded up,
     * a - hi = -(2^-10 + 2^-18) goes to -2^-10. */
    const float ties[][3] = {
        {1.0f + 0x1p-8f, 1.0f, 0x1p-8f},
        {1.0f + 3 * 0x1p-8f, 1.0f + 0x1p-6f, -0x1p-8f},
        {-(1.0f + 0x1p-8f), -1.0f, -0x1p-8f},
        {-(1.0f + 3 * 0x1p-8f), -(1.0f + 0x1p-6f), 0x1p-8f},
        {(1.0f + 0x1p-8f) * 0x1p-20f, 0x1p-20f, 0x1p-28f},
        {(1.0f + 3 * 0x1p-8f) * 0x1p30f, (1.0f + 0x1p-6f) * 0x1p30f,
         -0x1p22f},
        /* above the tie, and below one: a - hi = -/+(2^-8 - 2^-20) has
         * 12 significant bits and rounds to -/+2^-8 */
        {1.0f + 0x1p-8f + 0x1p-20f, 1.0f + 0x1p-7f, -0x1p-8f},
        {1.0f + 3 * 0x1p-8f - 0x1p-20f, 1.0f + 0x1p-7f, 0x1p-8f},
        {1.0f + 0x1p-10f + 0x1p-18f, 1.0f, 0x1p-10f},
        {1.0f + 0x1p-10f + 3 * 0x1p-18f, 1.0f, 0x1p-10f + 0x1p-16f},
        {1.0f + 0x1p-7f - 0x1p-10f - 0x1p-18f, 1.0f + 0x1p-7f, -0x1p-10f},
        {-(1.0f + 0x1p-10f + 3 * 0x1p-18f), -1.0f, -(0x1p-10f + 0x1p-16f)},
    };
    const int64_t n_ties = (int64_t)(sizeof ties / sizeof ties[0]);
    for (int64_t i = 0; i < m * k; i++) {
        if (i % k < n_ties) {
            a[i] = ties[i % k][0];
            assert_true(tlmi_bf16_to_float(hi_of(a[i])) == ties[i % k][1]);
            assert_true(tlmi_bf16_to_float(lo_of(a[i])) == ties[i % k][2]);
        } else {
            /* random ties of hi (odd rows) or of lo (even rows) at the
             * exponents where lo is a normal number too (a denormal lo
             * would be flushed to zero by the instructions) */
            uint32_t bits = random_bits();
            bits = (i / k) % 2 ? (bits & 0xffff0000u) | 0x8000u
                               : (bits & 0xffffff00u) | 0x80u;
            bits = (bits & 0x807fffffu) | ((uint32_t)(20 + i % 200) << 23);
            a[i] = float_of(bits);
        }
    }
    const tlmi_weights w = {.format = TLM_WEIGHTS_BF16, .rows = k, .cols = k,
                            .data = identity};
    int splitting_variants = 0;
    for (const tlmi_weight_kernels *const *v = tlmi_weight_kernels_all();
         *v != NULL; v++) {
        const tlmi_weight_kernels *wk = *v;
        if (wk->format != TLM_WEIGHTS_BF16)
            continue;
        const size_t bytes = wk->prepare_bytes(m, k);
        void *prepared = bytes > 0 ? malloc(bytes) : NULL;
        if (bytes > 0) {
            assert_non_null(prepared);
            wk->prepare(prepared, a, m, k);
        }
        const int splits = splits_a_to_bf16(wk);
        splitting_variants += splits;
        if (splits) { /* the parts themselves: hi [m * k], then lo */
            assert_int_equal(bytes, TLMI_BF16_HI_LO_BYTES(m, k));
            const uint16_t *hi = prepared, *lo = hi + m * k;
            for (int64_t i = 0; i < m * k; i++) {
                if (hi[i] != hi_of(a[i]) || lo[i] != lo_of(a[i])) {
                    print_error("%s: A[%lld, %lld] = %a splits into %04x "
                                "%04x, want %04x %04x\n",
                                wk->name, (long long)(i / k),
                                (long long)(i % k), (double)a[i], hi[i],
                                lo[i], hi_of(a[i]), lo_of(a[i]));
                    fail();
                }
            }
        }
        wk->product_cols(c, k, bytes > 0 ? prepared : a, a, &w, NULL, m, 0,
                         k);
        for (int64_t i = 0; i < m * k; i++) {
            const float want =
                splits ? tlmi_bf16_to_float(hi_of(a[i])) +
                             tlmi_bf16_to_float(lo_of(a[i]))
                       : a[i];
            if (!(c[i] == want)) {
                print_error("%s: A[%lld, %lld] = %a gives %a, want %a\n",
                            wk->name, (long long)(i / k), (long long)(i % k),
                            (double)a[i], (double)c[i], (double)want);
                fail();
            }
        }
        free(prepared);
    }
    print_message("%d variant(s) split A into two bf16\n", splitting_variants);
    free(identity);
    free(c);
    free(a);
}

/* The BF16 feature of this architecture (0 where there is none). */
static uint32_t bf16_feature(void) {
#if defined(__x86_64__) || defined(__i386__)
    return TLM_CPU_AVX512BF16;
#elif defined(__aarch64__)
    return TLM_CPU_ARM_BF16;
#else
    return 0;
#endif
}

/* The bf16 variant a context created now chooses. */
static const tlmi_weight_kernels *context_choice(void) {
    tlm_context_params params;
    assert_int_equal(tlm_context_params_init(&params), TLM_OK);
    params.n_threads = 1;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    const tlmi_weight_kernels *wk = tlmi_weight_kernels_choose(
        ctx->kernels, TLM_WEIGHTS_BF16, ctx->features);
    tlm_context_free(ctx);
    return wk;
}

static void mask_selects_the_fallback(void **state) {
    (void)state;
    const uint32_t bf16 = bf16_feature();
    const tlmi_weight_kernels *full = context_choice();
    assert_int_equal(
        tlm_experimental_set_cpu_mask(tlm_cpu_features() & ~bf16), TLM_OK);
    const tlmi_weight_kernels *masked = context_choice();
    assert_int_equal(
        tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL), TLM_OK);
    print_message("bf16 variant: %s; with the BF16 feature masked: %s\n",
                  full->name, masked->name);
    assert_int_equal(masked->format, TLM_WEIGHTS_BF16);
    assert_true((masked->features & bf16) == 0);
    assert_false(splits_a_to_bf16(masked));
    /* the same table (the mask took nothing else away) */
    assert_int_equal(masked->isa, full->isa);
    /* Without the mask, the dot-product variant of the table, when this
     * build has one and the CPU runs it (tlmi_weight_kernels_all lists
     * only those). */
    const tlmi_weight_kernels *dot = NULL;
    for (const tlmi_weight_kernels *const *v = tlmi_weight_kernels_all();
         *v != NULL; v++)
        if ((*v)->format == TLM_WEIGHTS_BF16 && splits_a_to_bf16(*v) &&
            (*v)->isa == full->isa)
            dot = *v;
    if (dot != NULL)
        assert_ptr_equal(full, dot);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rows_match_the_reference),
        cmocka_unit_test(dequantize_rows_match_scalar),
        cmocka_unit_test(a_splits_to_nearest_even),
        cmocka_unit_test(mask_selects_the_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
