/*
 * Every fused-attention table entry the machine can run (scalar always;
 * AVX2, AVX-512, NEON when this build has them and the CPU supports them),
 * whatever TLM_CPU or the CPU mask say, against the scalar reference
 * (kernels/scalar/attention.h) on random inputs in [-1, 1]: Tq, Tk, D and
 * Dv among 1, 3, 7, 15, 33, 100, the head sizes 16, 32, 48, 64, 128, and
 * some T = 1000; causal and not, with and without a padding mask (with
 * rows that see no key), Tq < Tk, Tq = Tk and Tq > Tk.
 *
 * Tolerances (every value is O(1) here: outputs are averages of v,
 * gradients sums of at most Tk terms of O(1/Tk) or of O(1)):
 *   out, lse:      |got - want| <= 2e-6 (1 + |want|)
 *   dq, dk, dv:    |got - want| <= 2e-5 (1 + max |want| of that array)
 * The kernels compute in float (scores, the softmax, the sums) with
 * a polynomial exp2 of relative error < 2.5e-7 (measured 7.7e-8); the
 * reference accumulates its forward pass in double and its
 * backward pass in float, in another order. The worst cases, printed by
 * the test, were 0.09 (out, lse) and 0.11 (gradients) of these bounds on
 * AVX2 and AVX-512.
 *
 * Also: row strides longer than the rows with a sentinel NaN in the gaps
 * (never read into a result, never overwritten, inputs unchanged);
 * gradients accumulated into (starting from random values) or overwritten
 * (starting as the sentinel: every element must be written); each
 * may be NULL, the workspace is exactly the size asked for, misaligned in
 * half the calls and followed by a guard zone that must stay intact; and
 * the exp2 of each ISA against exp2() in double. Under valgrind the
 * scalar table runs only the odd sizes (runnable_long).
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
#include "kernels/scalar/attention.h"

#define OUT_TOL 2e-6
#define GRAD_TOL 2e-5
#define EXP_TOL 2.5e-7
#define GUARD 256 /* bytes after the workspace */
#define GUARD_BYTE 0xa5

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

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

/* Worst errors seen, relative to each bound, over the whole run. */
static double worst_out, worst_grad;

/* pad > 0: every array at a row stride longer than its rows (q dim + pad,
 * k dim + 2 pad, v v_dim + pad + 1, out and dout v_dim + 3 pad), the gaps
 * holding a sentinel NaN that must neither reach a result nor be
 * overwritten. accumulate: the backward pass adds into random gradients
 * (1) or overwrites gradients that start as the sentinel (0). */
typedef struct config {
    int64_t tq, tk, dim, v_dim;
    int causal, mask;
    int64_t pad;
    int accumulate;
} config;

static void describe(char *text, size_t size, const tlmi_kernels *kernels,
                     const config *c) {
    snprintf(text, size,
             "%s Tq %lld Tk %lld D %lld Dv %lld causal %d mask %d pad %lld "
             "accumulate %d",
             kernels->name, (long long)c->tq, (long long)c->tk,
             (long long)c->dim, (long long)c->v_dim, c->causal, c->mask,
             (long long)c->pad, c->accumulate);
}

static void compare(const float *got, const float *want, int64_t n,
                    double tol, int per_array, double *worst,
                    const char *what, const char *where) {
    double scale = 1.0;
    if (per_array)
        for (int64_t i = 0; i < n; i++)
            if (1.0 + fabs((double)want[i]) > scale)
                scale = 1.0 + fabs((double)want[i]);
    for (int64_t i = 0; i < n; i++) {
        const double w = (double)want[i], g = (double)got[i];
        if (w == -(double)INFINITY && g == -(double)INFINITY)
            continue;
        const double bound = tol * (per_array ? scale : 1.0 + fabs(w));
        const double err = fabs(g - w);
        if (!(err <= bound)) {
            print_error("%s: %s[%lld] = %.9g, reference %.9g (bound %.3g)\n",
                        where, what, (long long)i, g, w, bound);
            fail();
        }
        if (err / bound > *worst)
            *worst = err / bound;
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

/* rows x cols at stride ld, every element the sentinel; rows x cols of
 * `x` (contiguous) copied in when x is not NULL. */
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

/* The rows of a strided array, contiguous (freed by the caller); fails
 * when a gap lost its sentinel. */
static float *unstride(const float *y, int64_t rows, int64_t cols,
                       int64_t ld, const char *what, const char *where) {
    float *x = malloc((size_t)(rows * cols > 0 ? rows * cols : 1) * sizeof *x);
    assert_non_null(x);
    for (int64_t i = 0; i < rows; i++) {
        memcpy(x + i * cols, y + i * ld, (size_t)cols * sizeof *x);
        for (int64_t c = cols; c < ld; c++)
            if (!is_sentinel(y[i * ld + c])) {
                print_error("%s: %s row %lld column %lld (a gap) written\n",
                            where, what, (long long)i, (long long)c);
                fail();
            }
    }
    return x;
}

/* A workspace of exactly `bytes`, at an offset of 4 bytes when misalign,
 * followed by GUARD bytes of GUARD_BYTE. */
typedef struct workspace {
    unsigned char *block;
    void *start;
    size_t bytes;
} workspace;

static void workspace_make(workspace *w, size_t bytes, int misalign) {
    assert_true(bytes != SIZE_MAX);
    w->bytes = bytes;
    w->block = malloc(bytes + GUARD + 64);
    assert_non_null(w->block);
    unsigned char *start = w->block + (misalign ? 4 : 0);
    memset(start + bytes, GUARD_BYTE, GUARD);
    w->start = start;
}

static void workspace_check(const workspace *w, const char *where) {
    const unsigned char *guard = (const unsigned char *)w->start + w->bytes;
    for (int i = 0; i < GUARD; i++)
        if (guard[i] != GUARD_BYTE) {
            print_error("%s: the kernel wrote past its workspace (byte %d)\n",
                        where, i);
            fail();
        }
    free(w->block);
}

/* One head through `kernels` (at the config's strides) and through the
 * reference (contiguous, accumulating). */
static void check_one(const tlmi_kernels *kernels, const config *c,
                      int misalign, int which_grads) {
    char where[200];
    describe(where, sizeof where, kernels, c);
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
        /* About a third hidden; the first key hidden so that causal rows
         * may see nothing. */
        for (int64_t j = 0; j < tk; j++)
            visible[j] = j != 0 && uniform() > -0.33f;
    }

    /* Forward. */
    float *out_want = malloc((size_t)(tq * v_dim) * sizeof(float));
    float *lse_want = malloc((size_t)tq * sizeof(float));
    float *outs = strided(NULL, tq, v_dim, ld_out);
    float *lse_got = malloc((size_t)tq * sizeof(float));
    double *scores = malloc(TLMI_ATTENTION_BLOCK * sizeof(double));
    double *acc = malloc((size_t)v_dim * sizeof(double));
    assert_true(out_want && lse_want && lse_got && scores && acc);
    /* The reference on contiguous rows, the kernel on strided ones. */
    const tlmi_attention_dims packed = {tq, tk, dim, v_dim, dim, dim,
                                        v_dim, v_dim, c->causal};
    const tlmi_attention_dims dims = {tq, tk, dim, v_dim, ld_q, ld_k,
                                      ld_v, ld_out, c->causal};
    tlmi_attention_forward(out_want, lse_want, scores, acc, q, k, v, visible,
                           &packed, TLMI_ATTENTION_BLOCK);
    workspace w;
    workspace_make(&w, kernels->attention_workspace(tq, tk, dim, v_dim, 0),
                   misalign);
    kernels->attention_forward(outs, lse_got, qs, ks, vs, visible, &dims,
                               w.start);
    workspace_check(&w, where);
    float *out_got = unstride(outs, tq, v_dim, ld_out, "out", where);
    compare(out_got, out_want, tq * v_dim, OUT_TOL, 0, &worst_out, "out",
            where);
    compare(lse_got, lse_want, tq, OUT_TOL, 0, &worst_out, "lse", where);

    /* Backward, from the reference's forward results: the reference
     * accumulates into the starting values (random when accumulating,
     * zero when overwriting), the kernel into the same values or into
     * sentinels it must overwrite. */
    float *dq_want = random_floats(tq * dim), *dk_want = random_floats(tk * dim);
    float *dv_want = random_floats(tk * v_dim);
    if (!c->accumulate) {
        memset(dq_want, 0, (size_t)(tq * dim) * sizeof(float));
        memset(dk_want, 0, (size_t)(tk * dim) * sizeof(float));
        memset(dv_want, 0, (size_t)(tk * v_dim) * sizeof(float));
    }
    float *dqs = strided(c->accumulate ? dq_want : NULL, tq, dim, ld_q),
          *dks = strided(c->accumulate ? dk_want : NULL, tk, dim, ld_k),
          *dvs = strided(c->accumulate ? dv_want : NULL, tk, v_dim, ld_v);
    float *out_ref = strided(out_want, tq, v_dim, ld_out);
    float *drow = malloc((size_t)tq * sizeof(float));
    float *probs = malloc(TLMI_ATTENTION_BLOCK * sizeof(float));
    assert_true(drow && probs);
    const int want_q = which_grads & 1, want_k = which_grads & 2,
              want_v = which_grads & 4;
    tlmi_attention_backward(want_q ? dq_want : NULL, want_k ? dk_want : NULL,
                            want_v ? dv_want : NULL, drow, probs, dout, q, k,
                            v, out_want, lse_want, visible, &packed, 1,
                            TLMI_ATTENTION_BLOCK);
    workspace_make(&w, kernels->attention_workspace(tq, tk, dim, v_dim, 1),
                   !misalign);
    kernels->attention_backward(want_q ? dqs : NULL, want_k ? dks : NULL,
                                want_v ? dvs : NULL, douts, qs, ks, vs,
                                out_ref, lse_want, visible, &dims,
                                c->accumulate, w.start);
    workspace_check(&w, where);
    /* Inputs untouched, gaps included. */
    float *inputs[] = {qs, ks, vs, douts, out_ref};
    const float *originals[] = {q, k, v, dout, out_want};
    const int64_t in_rows[] = {tq, tk, tk, tq, tq},
                  in_cols[] = {dim, dim, v_dim, v_dim, v_dim},
                  in_ld[] = {ld_q, ld_k, ld_v, ld_out, ld_out};
    for (int i = 0; i < 5; i++) {
        float *x = unstride(inputs[i], in_rows[i], in_cols[i], in_ld[i],
                            "input", where);
        assert_memory_equal(x, originals[i],
                            (size_t)(in_rows[i] * in_cols[i]) * sizeof(float));
        free(x);
    }
    if (want_q || c->accumulate) {
        float *g = unstride(dqs, tq, dim, ld_q, "dq", where);
        compare(g, dq_want, tq * dim, GRAD_TOL, 1, &worst_grad, "dq", where);
        free(g);
    }
    if (want_k || c->accumulate) {
        float *g = unstride(dks, tk, dim, ld_k, "dk", where);
        compare(g, dk_want, tk * dim, GRAD_TOL, 1, &worst_grad, "dk", where);
        free(g);
    }
    if (want_v || c->accumulate) {
        float *g = unstride(dvs, tk, v_dim, ld_v, "dv", where);
        compare(g, dv_want, tk * v_dim, GRAD_TOL, 1, &worst_grad, "dv", where);
        free(g);
    }

    free(q), free(k), free(v), free(dout), free(visible);
    free(qs), free(ks), free(vs), free(douts), free(outs), free(out_ref);
    free(out_want), free(lse_want), free(out_got), free(lse_got);
    free(scores), free(acc), free(drow), free(probs);
    free(dqs), free(dks), free(dvs), free(dq_want), free(dk_want),
        free(dv_want);
}

/* Each ISA the machine can run, as a table. */
static int runnable(const tlmi_kernels **out) {
    int n = 0;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        if (kernels != NULL)
            out[n++] = kernels;
    }
    return n;
}

/* The tables of the longer cases (head sizes, long sequences, few query
 * rows): every runnable one, but under valgrind (TLM_TEST_VALGRIND) not
 * the scalar table when there is another. The scalar table is the
 * reference behind a wrapper that carves its workspace and passes the
 * strides, which the odd sizes (every stride, workspace and accumulate
 * case, kept) exercise; in the longer cases it would only repeat the
 * reference that each other table's check runs on the same shapes, under
 * memcheck all the same, at twice the cost of another table's check. */
static int runnable_long(const tlmi_kernels **out) {
    const int n = runnable(out);
    if (getenv("TLM_TEST_VALGRIND") == NULL || n < 2 ||
        out[0]->isa != TLMI_ISA_SCALAR)
        return n;
    for (int t = 1; t < n; t++)
        out[t - 1] = out[t];
    return n - 1;
}

static const int64_t odd_sizes[] = {1, 3, 7, 15, 33, 100};
#define N_ODD (int)(sizeof odd_sizes / sizeof odd_sizes[0])

/* Every Tq, Tk, D among the odd sizes (Dv another of them), each with one
 * of the four causal/mask variants in turn, one choice of gradients, one
 * of three strides (contiguous, a gap of 1, a gap of 5) and accumulate or
 * overwrite (alternating with a period prime to the others). */
static void odd_sizes_against_reference(void **state) {
    (void)state;
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable(tables);
    int count = 0;
    for (int t = 0; t < n_tables; t++) {
        int variant = 0;
        for (int a = 0; a < N_ODD; a++)
            for (int b = 0; b < N_ODD; b++)
                for (int d = 0; d < N_ODD; d++, variant++) {
                    static const int64_t pads[] = {0, 1, 5};
                    const config c = {odd_sizes[a], odd_sizes[b],
                                      odd_sizes[d],
                                      odd_sizes[(d + a + 1) % N_ODD],
                                      variant & 1, (variant >> 1) & 1,
                                      pads[variant % 3], (variant / 7) & 1};
                    /* Mostly every gradient; sometimes only some. */
                    const int grads = variant % 5 == 4 ? 1 + variant % 7 : 7;
                    check_one(tables[t], &c, variant & 1, grads);
                    count++;
                }
    }
    printf("odd sizes: %d calls on %d tables\n", count, n_tables);
}

/* The head sizes of interest at T = 64 and 130 (two key blocks and a
 * tail), all four variants, each contiguous and overwriting and as one of
 * 4 heads of [T, 4 D] projections (stride 4 D and more) accumulating. */
static void head_sizes_against_reference(void **state) {
    (void)state;
    static const int64_t dims[] = {16, 32, 48, 64, 128};
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable_long(tables);
    for (int t = 0; t < n_tables; t++)
        for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
            for (int variant = 0; variant < 4; variant++) {
                const int64_t len = variant < 2 ? 64 : 130;
                const config c = {len, len, dims[d], dims[d], variant & 1,
                                  variant >> 1, 0, 0};
                check_one(tables[t], &c, 0, 7);
                const config heads = {len, len, dims[d], dims[d], variant & 1,
                                      variant >> 1, 3 * dims[d], 1};
                check_one(tables[t], &heads, 1, 7);
            }
}

/* T = 1000: many key blocks, long sums. */
/* T = 1000; 300 under valgrind (tests/meson.build's setup says so in
 * TLM_TEST_VALGRIND), where these cases took two thirds of the test's
 * four minutes: 300 keys are still 5 key blocks of 64 and 10 query blocks
 * of 32, every path of the long cases. */
static void long_sequences_against_reference(void **state) {
    (void)state;
    const int64_t len = getenv("TLM_TEST_VALGRIND") != NULL ? 300 : 1000;
    const config configs[] = {
        {len, len, 64, 64, 1, 0, 0, 1},
        {len, len, 64, 64, 1, 0, 192, 0}, /* one head of [T, 4 x 64] */
        {len, len, 33, 15, 0, 1, 2, 0},
        {7, len, 16, 16, 1, 1, 48, 1},  /* a few queries over a long cache */
        {len, 100, 7, 3, 1, 0, 1, 0},   /* Tq > Tk: early rows see nothing */
        {100, len, 48, 48, 0, 0, 0, 0}, /* Tq < Tk, not causal */
    };
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable_long(tables);
    for (int t = 0; t < n_tables; t++)
        for (size_t i = 0; i < sizeof configs / sizeof configs[0]; i++)
            check_one(tables[t], &configs[i], (int)i & 1, 7);
}

/* The in-place path for few query rows (attention_tmpl.c, "Few query
 * rows": up to 2 rows, 3 on AVX-512) and the blocked path just past it:
 * 1 to 4 query rows over 1, 7, 33 and 1000 keys (300 under valgrind), head
 * sizes around the vector widths (1, 7, 8 as in stories260K, 17, 33, 48,
 * 64), each causal/mask variant in turn and strided rows (the sentinels
 * between rows must never be read into a result). */
static void few_query_rows_against_reference(void **state) {
    (void)state;
    const int64_t long_keys = getenv("TLM_TEST_VALGRIND") != NULL ? 300 : 1000;
    const int64_t keys[] = {1, 7, 33, long_keys};
    static const int64_t dims[] = {1, 7, 8, 17, 33, 48, 64};
    static const int64_t pads[] = {0, 1, 5};
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable_long(tables);
    int count = 0;
    for (int t = 0; t < n_tables; t++) {
        int variant = 0;
        for (int64_t tq = 1; tq <= 4; tq++)
            for (size_t b = 0; b < sizeof keys / sizeof keys[0]; b++)
                for (size_t d = 0; d < sizeof dims / sizeof dims[0];
                     d++, variant++) {
                    const config c = {tq, keys[b], dims[d],
                                      dims[(d + b) % (sizeof dims / sizeof dims[0])],
                                      variant & 1, (variant >> 1) & 1,
                                      pads[variant % 3], 0};
                    /* The backward pass only now and then: it has no
                     * path of its own for few rows. */
                    check_one(tables[t], &c, variant & 1, variant % 4 == 0 ? 7 : 0);
                    count++;
                }
    }
    printf("few query rows: %d calls on %d tables\n", count, n_tables);
}

/* NaN in, NaN out, on every table, causal and not: a NaN in query row QN
 * makes that output row and its lse NaN, and its dq row NaN; a NaN in key
 * KN makes every row that sees it NaN (causal: rows >= KN; else all) and
 * leaves the others finite. (A NaN turned into zeros would hide broken
 * weights from the trainer's non-finite check.) */
static void nan_propagates(void **state) {
    (void)state;
    enum { T = 40, D = 16, QN = 5, KN = 9 };
    const tlmi_kernels *tables[TLMI_ISA_COUNT];
    const int n_tables = runnable(tables);
    for (int t = 0; t < n_tables; t++) {
        const tlmi_kernels *kern = tables[t];
        for (int which = 0; which < 4; which++) {
            const int causal = which < 2, in_q = which % 2 == 0;
            float *q = random_floats(T * D), *k = random_floats(T * D);
            float *v = random_floats(T * D), *dout = random_floats(T * D);
            float *out = malloc(T * D * sizeof *out), *lse = malloc(T * sizeof *lse);
            float *dq = malloc(T * D * sizeof *dq), *dk = malloc(T * D * sizeof *dk);
            float *dv = malloc(T * D * sizeof *dv);
            assert_true(out && lse && dq && dk && dv);
            if (in_q)
                q[QN * D + 3] = NAN;
            else
                k[KN * D] = NAN;
            workspace w;
            workspace_make(&w, kern->attention_workspace(T, T, D, D, 1), 0);
            const tlmi_attention_dims dims = {T, T, D, D, D, D, D, D, causal};
            kern->attention_forward(out, lse, q, k, v, NULL, &dims, w.start);
            kern->attention_backward(dq, dk, dv, dout, q, k, v, out, lse, NULL,
                                     &dims, 0, w.start);
            workspace_check(&w, kern->name);
            for (int i = 0; i < T; i++) {
                const int bad = in_q ? i == QN : !causal || i >= KN;
                for (int c = 0; c < D; c++)
                    if (bad != (isnan(out[i * D + c]) != 0)) {
                        print_error("%s: NaN in %s (causal %d): out[%d][%d] "
                                    "= %g\n",
                                    kern->name, in_q ? "q" : "k", causal, i,
                                    c, (double)out[i * D + c]);
                        fail();
                    }
                assert_true(bad == (isnan(lse[i]) != 0));
            }
            if (in_q)
                for (int c = 0; c < D; c++)
                    assert_true(isnan(dq[QN * D + c]));
            free(q), free(k), free(v), free(dout), free(out), free(lse);
            free(dq), free(dk), free(dv);
        }
    }
}

/* The 2^x of each ISA against exp2() in double over [-125, 100], exactly
 * 0 from -127 down (to -inf), and NaN kept. */
static void exp2_error(void **state) {
    (void)state;
#if defined(TLMI_HAVE_AVX2) || defined(TLMI_HAVE_AVX512) || defined(TLMI_HAVE_NEON)
    const int64_t n = 1 << 20;
    float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y);
    assert_true(x && y);
    for (int64_t i = 0; i < n; i++)
        x[i] = -125.0f + 225.0f * (float)((double)i / (double)(n - 1));
    x[n / 2] = 0.0f;
    static const struct {
        int isa;
        void (*fn)(float *, const float *, int64_t);
    } fns[] = {
#if defined(TLMI_HAVE_AVX2)
        {TLMI_ISA_AVX2, tlmi_attention_exp2_avx2},
#endif
#if defined(TLMI_HAVE_AVX512)
        {TLMI_ISA_AVX512, tlmi_attention_exp2_avx512},
#endif
#if defined(TLMI_HAVE_NEON)
        {TLMI_ISA_NEON, tlmi_attention_exp2_neon},
#endif
    };
    for (size_t f = 0; f < sizeof fns / sizeof fns[0]; f++) {
        if (tlmi_kernels_for(fns[f].isa) == NULL)
            continue;
        fns[f].fn(y, x, n);
        double worst = 0.0;
        for (int64_t i = 0; i < n; i++) {
            const double want = exp2((double)x[i]);
            const double err = fabs((double)y[i] - want) / want;
            if (isnan(err) || err > worst) /* a NaN stays the worst */
                worst = err;
        }
        printf("exp2 %s: max relative error %.3g over [-125, 100]\n",
               tlmi_isa_name(fns[f].isa), worst);
        assert_true(worst < EXP_TOL);
        assert_true(y[n / 2] == 1.0f);
        const float low[5] = {-127.0f, -127.4f, -200.0f, -1e30f, -INFINITY};
        float low_y[5];
        fns[f].fn(low_y, low, 5);
        for (int i = 0; i < 5; i++)
            assert_true(low_y[i] == 0.0f);
        const float nan_in = NAN;
        float nan_out = 0.0f;
        fns[f].fn(&nan_out, &nan_in, 1);
        assert_true(isnan(nan_out));
    }
    free(x), free(y);
#endif
}

static void print_worst(void **state) {
    (void)state;
    printf("worst error / bound: out and lse %.3g, gradients %.3g\n",
           worst_out, worst_grad);
    assert_true(worst_out <= 1.0 && worst_grad <= 1.0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(exp2_error),
        cmocka_unit_test(nan_propagates),
        cmocka_unit_test(odd_sizes_against_reference),
        cmocka_unit_test(head_sizes_against_reference),
        cmocka_unit_test(long_sequences_against_reference),
        cmocka_unit_test(few_query_rows_against_reference),
        cmocka_unit_test(print_worst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
