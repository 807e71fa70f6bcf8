/*
 * The fused attention's bf16 entries (attention_forward_bf16,
 * attention_backward_bf16 of each table: issue #22's mixed precision,
 * kernels/attention.h) of every ISA the machine can run against the
 * scalar bf16 reference (tlmi_attention_forward_bf16 and
 * tlmi_attention_backward_bf16, kernels/scalar/attention.h: the float32
 * reference on operands rounded to bf16), on random inputs in [-1, 1]:
 * Tq and Tk among 1, 7, 33, 130, head sizes 1, 7, 64 (and 300 x 300 x 64,
 * 130 under valgrind: several key and query blocks), causal and not, with and without a
 * padding mask, strided rows with sentinels in the gaps, gradients
 * accumulated into or overwritten.
 *
 * What the SIMD entries and the reference share exactly: the rounded q,
 * k, v and dout (rounding is a function of the input). What they do not:
 * P and dS, computed values (float with a polynomial exp2 against double
 * and expf), whose float32 results differ by rounding, about 1e-7
 * relative; where a bf16 rounding boundary lies between the two, the
 * rounded values differ by one bf16 ulp (2^-7 of the value at most).
 * Such "flips" are rare (a boundary within 1e-7 relative: about one P in
 * 10^4) but certain over this test's 10^6 values, so the tolerances have
 * two parts:
 *   - per element, a bound that holds with any flips, and catches gross
 *     errors (a wrong mask, row, stride or block: O(1) differences):
 *       out:  2e-6 (1 + |want|) + 2^-7 (the float32 test's bound, plus
 *             2^-7 sum_j (P_j / l) |v_j|: every term flipped, and
 *             sum_j P_j / l = 1, |v| <= 1);
 *       lse:  2e-6 (1 + |want|) (l sums the unrounded P: no flip);
 *       dq, dk, dv: 2e-5 (1 + M) + 2^-5 (1 + M), M the largest |want| of
 *             the array (the float32 test's bound, plus a few flips of the
 *             largest terms: each moves a term by at most 2^-7 of itself);
 *   - over the whole run, per table and array, the root mean square of
 *     (entry - bf16 reference) at most 0.05 of that of (bf16 reference -
 *     float32 reference), the effect of the rounding itself, which in
 *     turn must be at least 1e-5 of the reference's own RMS, 100 times
 *     float32's rounding (measured: about 2e-3 for out and the gradients,
 *     bf16 keeping 8 bits; 7e-5 for lse, which only q and k's rounding
 *     moves, by a little against its size, log Tk). An entry that
 *     rounded nothing would be at 1, one that missed an operand at a
 *     sizeable fraction of it (measured with the forward's P and the
 *     backward's dS left unrounded on AVX2 and AVX-512: out 0.53, dq
 *     0.43-0.45, dk 0.39-0.55); the correct entries measured 0.0003 to
 *     0.004 (flips and float32 rounding). The test prints the ratios.
 * The gradient check of the float32 formulas is in suite grad (finite
 * differences); finite differences through bf16 rounding would measure
 * the rounding, so the bf16 backward is checked against the reference,
 * which runs the float32 reference's code on rounded operands.
 *
 * Also: the rounding bit for bit on special values (ties, overflow,
 * infinities, denormals, NaNs) through every table's forward entry; a
 * context's kernels_bf16 table runs these entries and its float32
 * table the float32 ones (float32 mode unchanged: test_attention checks
 * those against the float32 reference with the float32 tolerances), and
 * the attention op runs the bf16 entry exactly while the context's
 * products_bf16 is set (a bf16 trainer's passes), the float32 one
 * otherwise.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "base/half.h"
#include "kernels/dispatch.h"
#include "kernels/scalar/attention.h"
#include "tlm.h"

#define OUT_TOL 2e-6
#define OUT_FLIPS 0.0078125 /* 2^-7 */
#define GRAD_TOL 2e-5
#define GRAD_FLIPS 0.03125 /* 2^-5 */
#define RMS_RATIO 0.05
#define MIN_EFFECT 1e-5
#define GUARD 256
#define GUARD_BYTE 0xa5

static uint64_t rng_state = 0x243f6a8885a308d3ull;

static float uniform(void) { /* in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng_state >> 40) / (double)(1ull << 23) - 1.0);
}

static float *random_floats(int64_t count) {
    float *x = malloc((size_t)(count > 0 ? count : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < count; i++)
        x[i] = uniform();
    return x;
}

static float *zeros(int64_t count) {
    float *x = calloc((size_t)(count > 0 ? count : 1), sizeof *x);
    assert_non_null(x);
    return x;
}

/* The arrays compared, for the run's sums of squares. */
enum { OUT, LSE, DQ, DK, DV, N_ARRAYS };
static const char *const array_names[N_ARRAYS] = {"out", "lse", "dq", "dk",
                                                  "dv"};

/* Per table and array over the run: sums of squares of (entry - bf16
 * reference), (bf16 reference - float32 reference) and the bf16
 * reference (from zero, for the gradients). */
typedef struct sums {
    double err, effect, ref;
} sums;
static sums totals[TLMI_ISA_COUNT][N_ARRAYS];
static double worst_ratio[N_ARRAYS]; /* worst |err| / per-element bound */

typedef struct config {
    int64_t tq, tk, dim, v_dim;
    int causal, mask;
    int64_t pad;
    int accumulate;
    int grads; /* bit 0 dq, 1 dk, 2 dv */
} config;

/* got against want per element (bound tol (1 + |want|) + flips, or with
 * per_array (tol + flips) (1 + max |want|)), and into the sums: got -
 * want, and the rounding's effect want0 - f32 (want0: the bf16 reference
 * from zero, f32: the float32 one; NULL: no effect counted). */
static void compare(const float *got, const float *want, const float *want0,
                    const float *f32, int64_t n, double tol, double flips,
                    int per_array, int array, sums *sum, const char *where) {
    double scale = 1.0;
    if (per_array)
        for (int64_t i = 0; i < n; i++)
            if (1.0 + fabs((double)want[i]) > scale)
                scale = 1.0 + fabs((double)want[i]);
    for (int64_t i = 0; i < n; i++) {
        const double w = (double)want[i], g = (double)got[i];
        if (w == -(double)INFINITY && g == -(double)INFINITY)
            continue;
        const double bound = per_array ? (tol + flips) * scale
                                       : tol * (1.0 + fabs(w)) + flips;
        const double err = fabs(g - w);
        if (!(err <= bound)) {
            print_error("%s: %s[%lld] = %.9g, bf16 reference %.9g (bound "
                        "%.3g)\n",
                        where, array_names[array], (long long)i, g, w, bound);
            fail();
        }
        if (err / bound > worst_ratio[array])
            worst_ratio[array] = err / bound;
        sum->err += err * err;
        if (f32 != NULL && isfinite(f32[i])) {
            const double e = (double)want0[i] - (double)f32[i];
            sum->effect += e * e;
            sum->ref += (double)want0[i] * (double)want0[i];
        }
    }
}

/* ---- Strided arrays with a sentinel in the gaps ------------------------ */

static const uint32_t SENTINEL_BITS = 0x7fc0dead; /* a quiet NaN */

static float sentinel(void) {
    float x;
    memcpy(&x, &SENTINEL_BITS, sizeof x);
    return x;
}

static int is_sentinel(float x) {
    uint32_t bits;
    memcpy(&bits, &x, sizeof bits);
    return bits == SENTINEL_BITS;
}

static float *strided(const float *x, int64_t rows, int64_t cols,
                      int64_t ld) {
    const int64_t count = rows * ld;
    float *y = malloc((size_t)(count > 0 ? count : 1) * sizeof *y);
    assert_non_null(y);
    for (int64_t i = 0; i < count; i++)
        y[i] = sentinel();
    if (x != NULL)
        for (int64_t i = 0; i < rows; i++)
            memcpy(y + i * ld, x + i * cols, (size_t)cols * sizeof *y);
    return y;
}

/* The rows, contiguous (freed by the caller); fails when a gap lost its
 * sentinel. */
static float *unstride(const float *y, int64_t rows, int64_t cols,
                       int64_t ld, const char *where) {
    float *x = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < rows; i++) {
        memcpy(x + i * cols, y + i * ld, (size_t)cols * sizeof *x);
        for (int64_t c = cols; c < ld; c++)
            if (!is_sentinel(y[i * ld + c])) {
                print_error("%s: row %lld column %lld (a gap) written\n",
                            where, (long long)i, (long long)c);
                fail();
            }
    }
    return x;
}

/* A workspace of exactly the size asked for, misaligned by 4 bytes or
 * not, followed by a guard zone. */
static unsigned char *workspace_make(size_t bytes, int misalign,
                                     void **start) {
    assert_true(bytes != SIZE_MAX);
    unsigned char *block = malloc(bytes + GUARD + 64);
    assert_non_null(block);
    unsigned char *s = block + (misalign ? 4 : 0);
    memset(s + bytes, GUARD_BYTE, GUARD);
    *start = s;
    return block;
}

static void workspace_check(unsigned char *block, const void *start,
                            size_t bytes, const char *where) {
    const unsigned char *guard = (const unsigned char *)start + bytes;
    for (int i = 0; i < GUARD; i++)
        if (guard[i] != GUARD_BYTE) {
            print_error("%s: the kernel wrote past its workspace\n", where);
            fail();
        }
    free(block);
}

/* One head through the table's bf16 entries (at the config's strides)
 * and through the bf16 and float32 references (contiguous). */
static void check_one(const tlmi_kernels *kernels, const config *c,
                      int misalign) {
    char where[200];
    snprintf(where, sizeof where,
             "%s bf16 Tq %lld Tk %lld D %lld Dv %lld causal %d mask %d pad "
             "%lld accumulate %d grads %d",
             kernels->name, (long long)c->tq, (long long)c->tk,
             (long long)c->dim, (long long)c->v_dim, c->causal, c->mask,
             (long long)c->pad, c->accumulate, c->grads);
    sums *sum = totals[kernels->isa];
    const int64_t tq = c->tq, tk = c->tk, dim = c->dim, v_dim = c->v_dim;
    const int64_t pad = c->pad;
    const int64_t ld_q = dim + pad, ld_k = dim + 2 * pad,
                  ld_v = v_dim + (pad > 0 ? pad + 1 : 0),
                  ld_out = v_dim + 3 * pad;
    float *q = random_floats(tq * dim), *k = random_floats(tk * dim);
    float *v = random_floats(tk * v_dim), *dout = random_floats(tq * v_dim);
    float *qs = strided(q, tq, dim, ld_q), *ks = strided(k, tk, dim, ld_k),
          *vs = strided(v, tk, v_dim, ld_v),
          *douts = strided(dout, tq, v_dim, ld_out);
    unsigned char *visible = NULL;
    if (c->mask) {
        visible = malloc((size_t)tk);
        assert_non_null(visible);
        for (int64_t j = 0; j < tk; j++)
            visible[j] = j != 0 && uniform() > -0.33f;
    }
    const tlmi_attention_dims packed = {tq, tk, dim, v_dim, dim, dim,
                                        v_dim, v_dim, c->causal};
    const tlmi_attention_dims dims = {tq, tk, dim, v_dim, ld_q, ld_k,
                                      ld_v, ld_out, c->causal};
    double *scores = malloc(TLMI_ATTENTION_BLOCK * sizeof(double));
    double *acc = malloc((size_t)v_dim * sizeof(double));
    float *drow = malloc((size_t)tq * sizeof(float));
    float *probs = malloc(TLMI_ATTENTION_BLOCK * sizeof(float));
    assert_true(scores && acc && drow && probs);

    /* Forward: the references, then the entry. */
    float *out_b = zeros(tq * v_dim), *lse_b = zeros(tq);
    float *out_f = zeros(tq * v_dim), *lse_f = zeros(tq);
    tlmi_attention_forward_bf16(out_b, lse_b, scores, acc, q, k, v, visible,
                                &packed, TLMI_ATTENTION_BLOCK);
    tlmi_attention_forward(out_f, lse_f, scores, acc, q, k, v, visible,
                           &packed, TLMI_ATTENTION_BLOCK);
    float *outs = strided(NULL, tq, v_dim, ld_out), *lse_got = zeros(tq);
    void *ws;
    size_t bytes = kernels->attention_workspace(tq, tk, dim, v_dim, 0);
    unsigned char *block = workspace_make(bytes, misalign, &ws);
    kernels->attention_forward_bf16(outs, lse_got, qs, ks, vs, visible,
                                    &dims, ws);
    workspace_check(block, ws, bytes, where);
    float *out_got = unstride(outs, tq, v_dim, ld_out, where);
    compare(out_got, out_b, out_b, out_f, tq * v_dim, OUT_TOL, OUT_FLIPS, 0,
            OUT, &sum[OUT], where);
    compare(lse_got, lse_b, lse_b, lse_f, tq, OUT_TOL, 0.0, 0, LSE,
            &sum[LSE], where);

    /* Backward from the bf16 reference's forward results: the reference
     * accumulates into the starting values (random or zero), the entry
     * into the same or into sentinels it must overwrite; the rounding's
     * effect from both references' gradients from zero. */
    const int64_t n_q = tq * dim, n_k = tk * dim, n_v = tk * v_dim;
    float *dq_want = random_floats(n_q), *dk_want = random_floats(n_k),
          *dv_want = random_floats(n_v);
    if (!c->accumulate) {
        memset(dq_want, 0, (size_t)n_q * sizeof(float));
        memset(dk_want, 0, (size_t)n_k * sizeof(float));
        memset(dv_want, 0, (size_t)n_v * sizeof(float));
    }
    float *dqs = strided(c->accumulate ? dq_want : NULL, tq, dim, ld_q),
          *dks = strided(c->accumulate ? dk_want : NULL, tk, dim, ld_k),
          *dvs = strided(c->accumulate ? dv_want : NULL, tk, v_dim, ld_v);
    const int want_q = c->grads & 1, want_k = c->grads & 2,
              want_v = c->grads & 4;
    tlmi_attention_backward_bf16(want_q ? dq_want : NULL,
                                 want_k ? dk_want : NULL,
                                 want_v ? dv_want : NULL, drow, probs, dout,
                                 q, k, v, out_b, lse_b, visible, &packed, 1,
                                 TLMI_ATTENTION_BLOCK);
    float *dq_b0 = zeros(n_q), *dk_b0 = zeros(n_k), *dv_b0 = zeros(n_v);
    float *dq_f0 = zeros(n_q), *dk_f0 = zeros(n_k), *dv_f0 = zeros(n_v);
    tlmi_attention_backward_bf16(dq_b0, dk_b0, dv_b0, drow, probs, dout, q,
                                 k, v, out_b, lse_b, visible, &packed, 0,
                                 TLMI_ATTENTION_BLOCK);
    tlmi_attention_backward(dq_f0, dk_f0, dv_f0, drow, probs, dout, q, k, v,
                            out_f, lse_f, visible, &packed, 0,
                            TLMI_ATTENTION_BLOCK);
    float *out_ref = strided(out_b, tq, v_dim, ld_out);
    bytes = kernels->attention_workspace(tq, tk, dim, v_dim, 1);
    block = workspace_make(bytes, !misalign, &ws);
    kernels->attention_backward_bf16(want_q ? dqs : NULL, want_k ? dks : NULL,
                                     want_v ? dvs : NULL, douts, qs, ks, vs,
                                     out_ref, lse_b, visible, &dims,
                                     c->accumulate, ws);
    workspace_check(block, ws, bytes, where);
    /* Inputs untouched (the rounding is in the workspace). */
    float *inputs[] = {qs, ks, vs, douts, out_ref};
    const float *originals[] = {q, k, v, dout, out_b};
    const int64_t in_rows[] = {tq, tk, tk, tq, tq},
                  in_cols[] = {dim, dim, v_dim, v_dim, v_dim},
                  in_ld[] = {ld_q, ld_k, ld_v, ld_out, ld_out};
    for (int i = 0; i < 5; i++) {
        float *x = unstride(inputs[i], in_rows[i], in_cols[i], in_ld[i],
                            where);
        assert_memory_equal(x, originals[i],
                            (size_t)(in_rows[i] * in_cols[i]) * sizeof(float));
        free(x);
    }
    if (want_q || c->accumulate) {
        float *g = unstride(dqs, tq, dim, ld_q, where);
        compare(g, dq_want, dq_b0, want_q ? dq_f0 : NULL, n_q, GRAD_TOL,
                GRAD_FLIPS, 1, DQ, &sum[DQ], where);
        free(g);
    }
    if (want_k || c->accumulate) {
        float *g = unstride(dks, tk, dim, ld_k, where);
        compare(g, dk_want, dk_b0, want_k ? dk_f0 : NULL, n_k, GRAD_TOL,
                GRAD_FLIPS, 1, DK, &sum[DK], where);
        free(g);
    }
    if (want_v || c->accumulate) {
        float *g = unstride(dvs, tk, v_dim, ld_v, where);
        compare(g, dv_want, dv_b0, want_v ? dv_f0 : NULL, n_v, GRAD_TOL,
                GRAD_FLIPS, 1, DV, &sum[DV], where);
        free(g);
    }

    free(q), free(k), free(v), free(dout), free(visible);
    free(qs), free(ks), free(vs), free(douts), free(outs), free(out_ref);
    free(out_b), free(lse_b), free(out_f), free(lse_f), free(out_got),
        free(lse_got);
    free(scores), free(acc), free(drow), free(probs);
    free(dqs), free(dks), free(dvs), free(dq_want), free(dk_want),
        free(dv_want);
    free(dq_b0), free(dk_b0), free(dv_b0), free(dq_f0), free(dk_f0),
        free(dv_f0);
}

static int runnable(const tlmi_kernels **out) {
    int n = 0;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels != NULL)
            out[n++] = kernels;
    }
    return n;
}

/* Every Tq, Tk among 1, 7, 33, 130 and D among 1, 7, 64 (Dv another of
 * them), the causal/mask variants, strides, accumulate or overwrite and
 * the choice of gradients in turn (periods prime to each other); then
 * 300 x 300 x 64 causal and not. */
static void entries_against_reference(void **state) {
    (void)state;
    static const int64_t lens[] = {1, 7, 33, 130};
    static const int64_t dims[] = {1, 7, 64};
    static const int64_t pads[] = {0, 1, 5};
    const int n_lens = (int)(sizeof lens / sizeof lens[0]),
              n_dims = (int)(sizeof dims / sizeof dims[0]);
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable(tables);
    int count = 0;
    /* Under valgrind (TLM_TEST_VALGRIND) the scalar table, the bf16
     * reference behind a wrapper that carves its workspace and passes the
     * strides, runs only the cases without a length of 130 (every stride,
     * workspace and accumulate case among them) and not the long ones:
     * there it would repeat, under memcheck, the reference that each
     * other table's check runs on the same shapes. */
    const int under_valgrind = getenv("TLM_TEST_VALGRIND") != NULL;
    for (int t = 0; t < n_tables; t++) {
        const int short_only = under_valgrind && n_tables > 1 &&
                               tables[t]->isa == TLMI_ISA_SCALAR;
        int variant = 0;
        for (int a = 0; a < n_lens; a++)
            for (int b = 0; b < n_lens; b++)
                for (int d = 0; d < n_dims; d++, variant++) {
                    if (short_only && (lens[a] > 33 || lens[b] > 33))
                        continue;
                    const config c = {lens[a], lens[b], dims[d],
                                      dims[(d + a + b) % n_dims],
                                      variant & 1, (variant >> 1) & 1,
                                      pads[variant % 3], (variant / 5) & 1,
                                      variant % 7 == 6 ? 1 + variant % 5 : 7};
                    check_one(tables[t], &c, variant & 1);
                    count++;
                }
        /* 130 under valgrind (TLM_TEST_VALGRIND): still 3 key blocks
         * of 64 and 5 query blocks of 32. */
        const int64_t len = under_valgrind ? 130 : 300;
        for (int causal = 0; causal < 2 && !short_only; causal++) {
            const config c = {len, len, 64, 64, causal, !causal, causal * 3,
                              causal, 7};
            check_one(tables[t], &c, causal);
            count++;
        }
    }
    printf("%d calls on %d tables\n", count, n_tables);
}

/* The rounding itself, bit for bit, on every table: one query over one
 * key (P = 1, l = 1, so out = bf16(v) exactly) with values that test
 * it: ties to even both ways, carries into the exponent, the largest
 * float (rounds to infinity), infinities, denormals, NaNs (one whose
 * rounding by carry alone would make -0), random values; out must be
 * tlmi_float_to_bf16's rounding (NaN as NaN; zeros of either sign equal,
 * as the sum starts from +0). */
static void rounding_bits(void **state) {
    (void)state;
    static const uint32_t special[] = {
        0x3f808000u, 0x3f818000u, 0x3f808001u, 0x3f807fffu, 0xbf808000u,
        0x3fffffffu, 0x7f7fffffu, 0xff7fffffu, 0x7f800000u, 0xff800000u,
        0x00000001u, 0x00018000u, 0x80028000u, 0x7fffffffu, 0xffc00001u,
        0x7f800001u, 0x00000000u, 0x3f800000u};
    enum { N_SPECIAL = sizeof special / sizeof special[0], N_V = 45 };
    float v[N_V], q = 1.0f, k = 1.0f;
    for (int c = 0; c < N_V; c++) {
        if (c < N_SPECIAL)
            memcpy(&v[c], &special[c], sizeof v[c]);
        else
            v[c] = uniform() * 1e3f;
    }
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable(tables);
    for (int t = 0; t < n_tables; t++) {
        const tlmi_attention_dims dims = {1, 1, 1, N_V, 1, 1, N_V, N_V, 0};
        const size_t bytes = tables[t]->attention_workspace(1, 1, 1, N_V, 0);
        void *ws = malloc(bytes);
        assert_non_null(ws);
        float out[N_V], lse;
        tables[t]->attention_forward_bf16(out, &lse, &q, &k, v, NULL, &dims,
                                          ws);
        free(ws);
        for (int c = 0; c < N_V; c++) {
            const float want = tlmi_bf16_to_float(tlmi_float_to_bf16(v[c]));
            const int ok = isnan(want) ? isnan(out[c]) != 0
                                       : memcmp(&out[c], &want, sizeof want) ==
                                                 0 ||
                                             (want == 0.0f && out[c] == 0.0f);
            if (!ok) {
                print_error("%s: bf16(%.9g) gave %.9g, want %.9g\n",
                            tables[t]->name, (double)v[c], (double)out[c],
                            (double)want);
                fail();
            }
        }
    }
}

/* The run's sums (see the top): per table and array, RMS(entry - bf16
 * reference) <= RMS_RATIO RMS(bf16 - float32 reference), and the latter
 * at least MIN_EFFECT of the reference's RMS. */
static void rounding_is_there(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable(tables);
    int failed = 0;
    for (int t = 0; t < n_tables; t++)
        for (int a = 0; a < N_ARRAYS; a++) {
            const sums *s = &totals[tables[t]->isa][a];
            const double ratio = sqrt(s->err / s->effect),
                         effect = sqrt(s->effect / s->ref);
            printf("%s %s: RMS(entry - bf16 ref) / RMS(bf16 ref - f32 ref) "
                   "%.3g, RMS(bf16 ref - f32 ref) / RMS(ref) %.3g\n",
                   tables[t]->name, array_names[a], ratio, effect);
            if (!(s->effect > 0.0 && s->ref > 0.0 && effect >= MIN_EFFECT &&
                  ratio <= RMS_RATIO))
                failed++;
        }
    printf("worst error / per-element bound: out %.3g, lse %.3g, dq %.3g, "
           "dk %.3g, dv %.3g\n",
           worst_ratio[OUT], worst_ratio[LSE], worst_ratio[DQ],
           worst_ratio[DK], worst_ratio[DV]);
    assert_int_equal(failed, 0);
}

/* A context's float32 table runs the float32 attention, its
 * kernels_bf16 table the bf16 entries of the same ISA, and products_bf16
 * starts at 0 (float32). */
static void context_tables(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const tlmi_kernels *f32 = ctx->kernels, *bf16 = &ctx->kernels_bf16;
    assert_int_equal(ctx->products_bf16, 0);
    assert_true(bf16->attention_forward == f32->attention_forward_bf16);
    assert_true(bf16->attention_backward == f32->attention_backward_bf16);
    assert_true(bf16->attention_workspace == f32->attention_workspace);
    assert_true(f32->attention_forward != f32->attention_forward_bf16);
    assert_true(f32->attention_backward != f32->attention_backward_bf16);
    tlm_context_free(ctx);
}

/* The attention op (tlm_attention, 2 heads of 37 x 16, causal) while the
 * context's products_bf16 is set gives the bits of the table's bf16
 * entry, and otherwise those of its float32 entry; the two differ. */
static void op_follows_products_bf16(void **state) {
    (void)state;
    enum { H = 2, T = 37, D = 16 };
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    float *x[3];
    tlm_tensor *qkv[3];
    const int64_t shape[4] = {1, H, T, D};
    for (int i = 0; i < 3; i++) {
        x[i] = random_floats(H * T * D);
        assert_int_equal(tlm_tensor_from_f32(&qkv[i], ctx, 4, shape, x[i]),
                         TLM_OK);
    }
    const tlmi_attention_dims dims = {T, T, D, D, D, D, D, D, 1};
    const size_t bytes = ctx->kernels->attention_workspace(T, T, D, D, 0);
    void *ws = malloc(bytes);
    assert_non_null(ws);
    float want[2][H * T * D], lse[T];
    for (int bf = 0; bf < 2; bf++) {
        tlmi_attention_forward_fn fn = bf ? ctx->kernels->attention_forward_bf16
                                          : ctx->kernels->attention_forward;
        for (int h = 0; h < H; h++)
            fn(want[bf] + h * T * D, lse, x[0] + h * T * D, x[1] + h * T * D,
               x[2] + h * T * D, NULL, &dims, ws);
        ctx->products_bf16 = bf;
        tlm_tensor *out = NULL;
        assert_int_equal(tlm_attention(&out, qkv[0], qkv[1], qkv[2], NULL,
                                       TLM_ATTENTION_CAUSAL),
                         TLM_OK);
        const float *got = tlm_tensor_data_f32(out);
        assert_non_null(got);
        assert_memory_equal(got, want[bf], sizeof want[bf]);
        ctx->products_bf16 = 0;
    }
    assert_memory_not_equal(want[0], want[1], sizeof want[0]);
    free(ws);
    for (int i = 0; i < 3; i++)
        free(x[i]);
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(context_tables),
        cmocka_unit_test(op_follows_products_bf16),
        cmocka_unit_test(rounding_bits),
        cmocka_unit_test(entries_against_reference),
        cmocka_unit_test(rounding_is_there),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
