/* Forward (and backward) values of tlm_attention() against a naive
 * attention written here in double precision: the whole Tq x Tk score
 * matrix, its softmax, the weighted sum of v, and the textbook gradients
 * of that. Also what the doc comment promises: the causal rule
 * j <= i + (Tk - Tq), the padding mask (f32 or i32, non-zero = visible),
 * zeros for a query that sees no key, re-running the graph after changing
 * inputs, no allocation on re-runs, and a result that does not depend on
 * the kernel's key block size. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <math.h>

#include "counting_allocator.h"
#include "kernels/scalar/attention.h"
#include "tlm.h"
#include "tolerance.h"

/* Outputs and gradients are O(1) here (inputs in [-2, 2], weights of
 * averages): compare with |got - ref| <= TOL * max(1, |ref|). The active
 * kernels (SIMD, float, polynomial exp, or the double-accumulating scalar
 * reference) sum at most 100 terms here, each within a few ulp, so 1e-5
 * leaves a margin over rounding. */
#define TOL 1e-5

enum mask_kind { MASK_NONE, MASK_F32, MASK_I32 };

typedef struct config {
    int64_t b, h, tq, tk, d, dv;
    int causal;
    int mask;    /* an enum mask_kind */
    int64_t hkv; /* key/value heads (grouped-query attention); 0: h */
} config;

/* Key/value heads of `c`: query head h reads head h / (H / Hkv). */
static int64_t kv_heads(const config *c) { return c->hkv ? c->hkv : c->h; }

/* One problem: inputs as the library sees them, plus the mask as flags. */
typedef struct problem {
    config c;
    float *q, *k, *v, *dout;
    float *mask_f32;
    int32_t *mask_i32;
    unsigned char *visible; /* [B, Tk], all 1 without a mask */
} problem;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double uniform(double lo, double hi) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    double u = (double)(rng_state >> 11) * (1.0 / 9007199254740992.0);
    return lo + (hi - lo) * u;
}

static void *checked_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size);
    assert_non_null(p);
    return p;
}

static float *random_floats(int64_t n, double lo, double hi) {
    float *x = checked_calloc((size_t)n, sizeof *x);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)uniform(lo, hi);
    return x;
}

/* Random inputs; the mask hides about a third of the keys, with values
 * that are not just 0 and 1 (f32: -0.0 counts as zero; i32: 0..3). */
static problem make_problem(config c) {
    problem p = {0};
    p.c = c;
    p.q = random_floats(c.b * c.h * c.tq * c.d, -2, 2);
    p.k = random_floats(c.b * kv_heads(&c) * c.tk * c.d, -2, 2);
    p.v = random_floats(c.b * kv_heads(&c) * c.tk * c.dv, -2, 2);
    p.dout = random_floats(c.b * c.h * c.tq * c.dv, -1, 1);
    p.visible = checked_calloc((size_t)(c.b * c.tk), 1);
    if (c.mask == MASK_F32)
        p.mask_f32 = checked_calloc((size_t)(c.b * c.tk), sizeof(float));
    if (c.mask == MASK_I32)
        p.mask_i32 = checked_calloc((size_t)(c.b * c.tk), sizeof(int32_t));
    static const float shown_f32[4] = {1.0f, 0.5f, -2.5f, 7.0f};
    static const int32_t shown_i32[4] = {1, 1, 3, -2};
    for (int64_t i = 0; i < c.b * c.tk; i++) {
        const int hidden = c.mask != MASK_NONE && uniform(0, 1) < 0.33;
        const int pick = (int)uniform(0, 4) & 3;
        p.visible[i] = (unsigned char)!hidden;
        if (c.mask == MASK_F32)
            p.mask_f32[i] = hidden ? (pick & 1 ? -0.0f : 0.0f) : shown_f32[pick];
        if (c.mask == MASK_I32)
            p.mask_i32[i] = hidden ? 0 : shown_i32[pick];
    }
    return p;
}

static void free_problem(problem *p) {
    free(p->q);
    free(p->k);
    free(p->v);
    free(p->dout);
    free(p->mask_f32);
    free(p->mask_i32);
    free(p->visible);
}

/* The rule of the doc comment, written independently of the kernel's. */
static int sees(const problem *p, int64_t b, int64_t i, int64_t j) {
    if (p->c.causal && j > i + (p->c.tk - p->c.tq))
        return 0;
    return p->visible[b * p->c.tk + j];
}

/* Naive attention in double: out [B, H, Tq, Dv]; with dq/dk/dv not NULL
 * also the gradients of sum(out * dout). */
static void reference(const problem *p, double *out, double *dq, double *dk,
                      double *dv) {
    const config c = p->c;
    const double scale = 1.0 / sqrt((double)c.d);
    double *prob = checked_calloc((size_t)(c.tq * c.tk), sizeof(double));
    double *dprob = checked_calloc((size_t)(c.tq * c.tk), sizeof(double));
    for (int64_t b = 0; b < c.b; b++)
        for (int64_t h = 0; h < c.h; h++) {
            const int64_t head = b * c.h + h;
            /* The shared key/value head of query head h's group. */
            const int64_t kv = b * kv_heads(&c) + h / (c.h / kv_heads(&c));
            const float *q = p->q + head * c.tq * c.d;
            const float *k = p->k + kv * c.tk * c.d;
            const float *v = p->v + kv * c.tk * c.dv;
            const float *dout = p->dout + head * c.tq * c.dv;
            double *o = out + head * c.tq * c.dv;
            /* prob = softmax over visible keys of q k^T * scale */
            for (int64_t i = 0; i < c.tq; i++) {
                double max = -HUGE_VAL, sum = 0.0;
                for (int64_t j = 0; j < c.tk; j++) {
                    double s = 0.0;
                    for (int64_t e = 0; e < c.d; e++)
                        s += (double)q[i * c.d + e] * (double)k[j * c.d + e];
                    prob[i * c.tk + j] = s * scale;
                    if (sees(p, b, i, j) && s * scale > max)
                        max = s * scale;
                }
                for (int64_t j = 0; j < c.tk; j++) {
                    double e = sees(p, b, i, j) ? exp(prob[i * c.tk + j] - max) : 0.0;
                    prob[i * c.tk + j] = e;
                    sum += e;
                }
                for (int64_t j = 0; j < c.tk; j++)
                    prob[i * c.tk + j] = sum > 0 ? prob[i * c.tk + j] / sum : 0.0;
                for (int64_t e = 0; e < c.dv; e++) {
                    double acc = 0.0;
                    for (int64_t j = 0; j < c.tk; j++)
                        acc += prob[i * c.tk + j] * (double)v[j * c.dv + e];
                    o[i * c.dv + e] = acc;
                }
            }
            if (dq == NULL)
                continue;
            /* dv = prob^T dout; dprob = dout v^T;
             * dscore = prob * (dprob - sum_j prob * dprob) */
            double *dq_h = dq + head * c.tq * c.d, *dk_h = dk + kv * c.tk * c.d;
            double *dv_h = dv + kv * c.tk * c.dv;
            for (int64_t i = 0; i < c.tq; i++) {
                double row = 0.0;
                for (int64_t j = 0; j < c.tk; j++) {
                    double dp = 0.0;
                    for (int64_t e = 0; e < c.dv; e++) {
                        dp += (double)dout[i * c.dv + e] * (double)v[j * c.dv + e];
                        dv_h[j * c.dv + e] += prob[i * c.tk + j] * (double)dout[i * c.dv + e];
                    }
                    dprob[i * c.tk + j] = dp;
                    row += prob[i * c.tk + j] * dp;
                }
                for (int64_t j = 0; j < c.tk; j++) {
                    double ds = prob[i * c.tk + j] * (dprob[i * c.tk + j] - row) * scale;
                    for (int64_t e = 0; e < c.d; e++) {
                        dq_h[i * c.d + e] += ds * (double)k[j * c.d + e];
                        dk_h[j * c.d + e] += ds * (double)q[i * c.d + e];
                    }
                }
            }
        }
    free(prob);
    free(dprob);
}

static void assert_close(const float *got, const double *want, int64_t n,
                         double tol, const char *what, const config *c) {
    for (int64_t i = 0; i < n; i++) {
        double bound = tol * (fabs(want[i]) > 1.0 ? fabs(want[i]) : 1.0);
        if (!(fabs((double)got[i] - want[i]) <= bound))
            fail_msg("%s [%lld]: got %.9g, want %.9g (B %lld H %lld Tq %lld "
                     "Tk %lld D %lld Dv %lld causal %d mask %d)",
                     what, (long long)i, (double)got[i], want[i],
                     (long long)c->b, (long long)c->h, (long long)c->tq,
                     (long long)c->tk, (long long)c->d, (long long)c->dv,
                     c->causal, c->mask);
    }
}

/* The library's side of a problem: leaves, and the attention result. */
typedef struct graph {
    tlm_context *ctx;
    tlm_tensor *q, *k, *v, *mask, *out;
} graph;

static void build_graph(graph *g, tlm_context *ctx, const problem *p,
                        int requires_grad) {
    const config c = p->c;
    const int64_t hkv = kv_heads(&c);
    const int64_t sq[4] = {c.b, c.h, c.tq, c.d}, sk[4] = {c.b, hkv, c.tk, c.d},
                  sv[4] = {c.b, hkv, c.tk, c.dv}, sm[2] = {c.b, c.tk};
    g->ctx = ctx;
    g->mask = NULL;
    assert_int_equal(tlm_tensor_from_f32(&g->q, ctx, 4, sq, p->q), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&g->k, ctx, 4, sk, p->k), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&g->v, ctx, 4, sv, p->v), TLM_OK);
    if (c.mask == MASK_F32)
        assert_int_equal(tlm_tensor_from_f32(&g->mask, ctx, 2, sm, p->mask_f32), TLM_OK);
    if (c.mask == MASK_I32)
        assert_int_equal(tlm_tensor_from_i32(&g->mask, ctx, 2, sm, p->mask_i32), TLM_OK);
    if (requires_grad) {
        assert_int_equal(tlm_tensor_set_requires_grad(g->q, 1), TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(g->k, 1), TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(g->v, 1), TLM_OK);
    }
    assert_int_equal(tlm_attention(&g->out, g->q, g->k, g->v, g->mask,
                                   c.causal ? TLM_ATTENTION_CAUSAL : 0),
                     TLM_OK);
    assert_non_null(g->out);
    int64_t shape[4];
    assert_int_equal(tlm_tensor_shape(g->out, shape, 4), 4);
    assert_int_equal(shape[0], c.b);
    assert_int_equal(shape[1], c.h);
    assert_int_equal(shape[2], c.tq);
    assert_int_equal(shape[3], c.dv);
}

/* The loss sum(out * dout), so that dout is out's gradient. */
static tlm_tensor *build_loss(graph *g, const problem *p) {
    const config c = p->c;
    const int64_t so[4] = {c.b, c.h, c.tq, c.dv};
    tlm_tensor *weights = NULL, *weighted = NULL, *loss = NULL;
    assert_int_equal(tlm_tensor_from_f32(&weights, g->ctx, 4, so, p->dout), TLM_OK);
    assert_int_equal(tlm_mul(&weighted, g->out, weights), TLM_OK);
    assert_int_equal(tlm_sum(&loss, weighted), TLM_OK);
    return loss;
}

static void run_backward(graph *g, const problem *p) {
    assert_int_equal(tlm_backward(build_loss(g, p)), TLM_OK);
}

static const config configs[] = {
    /* b  h   tq   tk   d  dv causal mask */
    {1, 1, 1, 1, 1, 1, 0, MASK_NONE, 0},
    {1, 1, 1, 1, 1, 1, 1, MASK_NONE, 0},
    {2, 3, 7, 7, 5, 3, 0, MASK_NONE, 0},
    {2, 3, 7, 7, 5, 3, 1, MASK_NONE, 0},
    {1, 2, 33, 33, 8, 5, 1, MASK_F32, 0},
    {2, 2, 100, 100, 16, 9, 1, MASK_I32, 0},
    {2, 2, 100, 100, 7, 13, 0, MASK_F32, 0},
    {2, 1, 7, 13, 4, 6, 0, MASK_F32, 0},   /* cross-attention */
    {3, 1, 13, 7, 3, 2, 0, MASK_I32, 0},   /* more queries than keys */
    {1, 2, 5, 70, 8, 8, 1, MASK_I32, 0},   /* KV cache: 5 new over 70 */
    {1, 1, 1, 33, 3, 2, 1, MASK_NONE, 0},  /* one decode step */
    {1, 1, 9, 4, 3, 2, 1, MASK_NONE, 0},   /* Tq > Tk: 5 rows see nothing */
    /* Grouped-query (hkv < h) and multi-query (hkv 1) attention. */
    {2, 4, 7, 7, 5, 3, 1, MASK_F32, 2},
    {2, 6, 33, 33, 8, 5, 0, MASK_I32, 3},
    {1, 3, 5, 70, 8, 8, 1, MASK_I32, 1}, /* KV cache: 5 new over 70 */
    {3, 5, 1, 33, 3, 2, 1, MASK_NONE, 1},  /* one decode step */
};
#define N_CONFIGS (sizeof configs / sizeof configs[0])

static double *reference_out(const problem *p) {
    const config c = p->c;
    double *out = checked_calloc((size_t)(c.b * c.h * c.tq * c.dv), sizeof(double));
    reference(p, out, NULL, NULL, NULL);
    return out;
}

/* Every config, recording on (the path that saves lse) and off. */
static void forward_matches_naive_reference(void **state) {
    (void)state;
    for (size_t n = 0; n < N_CONFIGS; n++) {
        problem p = make_problem(configs[n]);
        double *want = reference_out(&p);
        for (int recording = 0; recording <= 1; recording++) {
            tlm_context *ctx = NULL;
            assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
            assert_int_equal(tlm_context_set_grad_enabled(ctx, recording), TLM_OK);
            graph g;
            build_graph(&g, ctx, &p, recording);
            assert_close(tlm_tensor_data_f32(g.out), want,
                         tlm_tensor_numel(g.out), TOL, "out", &p.c);
            tlm_context_free(ctx);
        }
        free(want);
        free_problem(&p);
    }
}

static void backward_matches_naive_reference(void **state) {
    (void)state;
    for (size_t n = 0; n < N_CONFIGS; n++) {
        const config c = configs[n];
        problem p = make_problem(c);
        const int64_t nq = c.b * c.h * c.tq * c.d,
                      nk = c.b * kv_heads(&c) * c.tk * c.d,
                      nv = c.b * kv_heads(&c) * c.tk * c.dv;
        double *out = checked_calloc((size_t)(c.b * c.h * c.tq * c.dv), sizeof(double));
        double *dq = checked_calloc((size_t)nq, sizeof(double));
        double *dk = checked_calloc((size_t)nk, sizeof(double));
        double *dv = checked_calloc((size_t)nv, sizeof(double));
        reference(&p, out, dq, dk, dv);
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        graph g;
        build_graph(&g, ctx, &p, 1);
        run_backward(&g, &p);
        assert_close(tlm_tensor_grad_data_f32(g.q), dq, nq, TOL, "dq", &c);
        assert_close(tlm_tensor_grad_data_f32(g.k), dk, nk, TOL, "dk", &c);
        assert_close(tlm_tensor_grad_data_f32(g.v), dv, nv, TOL, "dv", &c);
        tlm_context_free(ctx);
        free(out);
        free(dq);
        free(dk);
        free(dv);
        free_problem(&p);
    }
}

/* D = 4 (scale 1/2), q = [2, 0, 0, 0]: scores 0 and ln 3, so the weights
 * are 1/4 and 3/4 and the output 4/4 + 3 * 8/4 = 7; causally, row 0 sees
 * key 0 alone (4) and row 1 both (7). */
static void hand_computed_values(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const float ln3 = (float)log(3.0);
    const float qd[8] = {2, 0, 0, 0, 2, 0, 0, 0};
    const float kd[8] = {0, 5, 5, 5, ln3, 0, 0, 0};
    /* q . k_0 = 0 whatever k_0's other entries; v two columns */
    const float vd[4] = {4, -1, 8, 1};
    const int64_t sq[4] = {1, 1, 2, 4}, sk[4] = {1, 1, 2, 4}, sv[4] = {1, 1, 2, 2};
    tlm_tensor *q, *k, *v, *out, *causal;
    assert_int_equal(tlm_tensor_from_f32(&q, ctx, 4, sq, qd), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&k, ctx, 4, sk, kd), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&v, ctx, 4, sv, vd), TLM_OK);
    assert_int_equal(tlm_attention(&out, q, k, v, NULL, 0), TLM_OK);
    assert_int_equal(tlm_attention(&causal, q, k, v, NULL, TLM_ATTENTION_CAUSAL), TLM_OK);
    const float *o = tlm_tensor_data_f32(out), *oc = tlm_tensor_data_f32(causal);
    tlmt_assert_close(o[0], 7.0, 1e-5);
    tlmt_assert_close(o[1], 0.5, 1e-5);
    tlmt_assert_close(o[2], 7.0, 1e-5);
    tlmt_assert_close(o[3], 0.5, 1e-5);
    tlmt_assert_close(oc[0], 4.0, 1e-6);
    tlmt_assert_close(oc[1], -1.0, 1e-6);
    tlmt_assert_close(oc[2], 7.0, 1e-5);
    tlmt_assert_close(oc[3], 0.5, 1e-5);

    /* An i32 mask hiding key 1: every row gets v_0. With key 0 hidden
     * instead, the causal row 0 sees nothing and is zero. */
    const int64_t sm[2] = {1, 2};
    const int32_t hide_1[2] = {7, 0}, hide_0[2] = {0, -1};
    tlm_tensor *m1, *m0, *o1, *o0;
    assert_int_equal(tlm_tensor_from_i32(&m1, ctx, 2, sm, hide_1), TLM_OK);
    assert_int_equal(tlm_tensor_from_i32(&m0, ctx, 2, sm, hide_0), TLM_OK);
    assert_int_equal(tlm_attention(&o1, q, k, v, m1, 0), TLM_OK);
    assert_int_equal(tlm_attention(&o0, q, k, v, m0, TLM_ATTENTION_CAUSAL), TLM_OK);
    const float want1[4] = {4, -1, 4, -1}, want0[4] = {0, 0, 8, 1};
    for (int i = 0; i < 4; i++) {
        tlmt_assert_close(tlm_tensor_data_f32(o1)[i], want1[i], 1e-6);
        tlmt_assert_close(tlm_tensor_data_f32(o0)[i], want0[i], 1e-6);
    }
    tlm_context_free(ctx);
}

static int all_finite(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(x[i]))
            return 0;
    return 1;
}

static int all_zero(const float *x, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (x[i] != 0.0f)
            return 0;
    return 1;
}

/* Batch 1's keys are all masked, and with Tq > Tk the first causal rows of
 * batch 0 see no key: exact zeros, zero gradients, no NaN anywhere. */
static void rows_that_see_nothing_are_zero(void **state) {
    (void)state;
    const config c = {2, 2, 6, 4, 3, 5, 1, MASK_F32, 0};
    problem p = make_problem(c);
    for (int64_t j = 0; j < c.tk; j++) {
        p.mask_f32[j] = 1.0f;
        p.visible[j] = 1;
        p.mask_f32[c.tk + j] = j % 2 ? 0.0f : -0.0f;
        p.visible[c.tk + j] = 0;
    }
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    graph g;
    build_graph(&g, ctx, &p, 1);
    run_backward(&g, &p);
    const float *o = tlm_tensor_data_f32(g.out);
    const float *dq = tlm_tensor_grad_data_f32(g.q), *dk = tlm_tensor_grad_data_f32(g.k),
                *dv = tlm_tensor_grad_data_f32(g.v);
    const int64_t head_out = c.tq * c.dv, head_q = c.tq * c.d;
    assert_true(all_finite(o, tlm_tensor_numel(g.out)));
    assert_true(all_finite(dq, tlm_tensor_numel(g.q)));
    assert_true(all_finite(dk, tlm_tensor_numel(g.k)));
    assert_true(all_finite(dv, tlm_tensor_numel(g.v)));
    /* batch 1: both heads, everything zero */
    assert_true(all_zero(o + c.h * head_out, c.h * head_out));
    assert_true(all_zero(dq + c.h * head_q, c.h * head_q));
    assert_true(all_zero(dk + c.h * c.tk * c.d, c.h * c.tk * c.d));
    assert_true(all_zero(dv + c.h * c.tk * c.dv, c.h * c.tk * c.dv));
    /* batch 0: rows 0 and 1 see nothing (j <= i - 2), rows 2.. do */
    for (int64_t h = 0; h < c.h; h++) {
        assert_true(all_zero(o + h * head_out, 2 * c.dv));
        assert_true(all_zero(dq + h * head_q, 2 * c.d));
        assert_false(all_zero(o + h * head_out + 2 * c.dv, c.dv));
    }
    double *want = reference_out(&p);
    assert_close(o, want, tlm_tensor_numel(g.out), TOL, "out", &c);
    free(want);
    tlm_context_free(ctx);
    free_problem(&p);
}

/* The kernel with key blocks of 1, 5, 32, 64 and more than Tk: the same
 * values (the library uses TLMI_ATTENTION_BLOCK). */
static void block_size_does_not_matter(void **state) {
    (void)state;
    const config c = {1, 1, 100, 100, 6, 7, 1, MASK_I32, 0};
    problem p = make_problem(c);
    double *out = checked_calloc((size_t)(c.tq * c.dv), sizeof(double));
    double *dq = checked_calloc((size_t)(c.tq * c.d), sizeof(double));
    double *dk = checked_calloc((size_t)(c.tk * c.d), sizeof(double));
    double *dv = checked_calloc((size_t)(c.tk * c.dv), sizeof(double));
    reference(&p, out, dq, dk, dv);
    const int64_t blocks[] = {1, 5, 32, TLMI_ATTENTION_BLOCK, 64, 1000};
    float *first = NULL;
    for (size_t n = 0; n < sizeof blocks / sizeof blocks[0]; n++) {
        const int64_t block = blocks[n];
        float *o = checked_calloc((size_t)(c.tq * c.dv), sizeof(float));
        float *lse = checked_calloc((size_t)c.tq, sizeof(float));
        double *scores = checked_calloc((size_t)block, sizeof(double));
        double *acc = checked_calloc((size_t)c.dv, sizeof(double));
        float *probs = checked_calloc((size_t)block, sizeof(float));
        float *drow = checked_calloc((size_t)c.tq, sizeof(float));
        float *gq = checked_calloc((size_t)(c.tq * c.d), sizeof(float));
        float *gk = checked_calloc((size_t)(c.tk * c.d), sizeof(float));
        float *gv = checked_calloc((size_t)(c.tk * c.dv), sizeof(float));
        const tlmi_attention_dims dims = {c.tq, c.tk, c.d, c.dv, c.d, c.d,
                                          c.dv, c.dv, 1};
        tlmi_attention_forward(o, lse, scores, acc, p.q, p.k, p.v, p.visible,
                               &dims, block);
        assert_close(o, out, c.tq * c.dv, TOL, "out", &c);
        tlmi_attention_backward(gq, gk, gv, drow, probs, p.dout, p.q, p.k,
                                p.v, o, lse, p.visible, &dims, 1, block);
        assert_close(gq, dq, c.tq * c.d, TOL, "dq", &c);
        assert_close(gk, dk, c.tk * c.d, TOL, "dk", &c);
        assert_close(gv, dv, c.tk * c.dv, TOL, "dv", &c);
        if (first == NULL) {
            first = o;
        } else {
            /* Different blocks only change rounding, in double. */
            for (int64_t i = 0; i < c.tq * c.dv; i++)
                tlmt_assert_close(o[i], first[i], 1e-6);
            free(o);
        }
        free(lse);
        free(scores);
        free(acc);
        free(probs);
        free(drow);
        free(gq);
        free(gk);
        free(gv);
    }
    free(first);
    free(out);
    free(dq);
    free(dk);
    free(dv);
    free_problem(&p);
}

/* Very large scores (inputs x 40): the online softmax subtracts the
 * running max, so nothing overflows. The SIMD kernels compute the scores
 * in float: scores of magnitude ~1e4 carry absolute errors of ~1e-3, which
 * become relative errors of the probabilities (3.4e-4 measured on AVX-512),
 * hence LARGE_TOL here instead of TOL. */
#define LARGE_TOL 2e-3
static void large_scores_stay_finite(void **state) {
    (void)state;
    const config c = {1, 2, 37, 37, 4, 3, 1, MASK_NONE, 0};
    problem p = make_problem(c);
    for (int64_t i = 0; i < c.b * c.h * c.tq * c.d; i++)
        p.q[i] *= 40.0f;
    for (int64_t i = 0; i < c.b * c.h * c.tk * c.d; i++)
        p.k[i] *= 40.0f;
    double *want = reference_out(&p);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    graph g;
    build_graph(&g, ctx, &p, 1);
    run_backward(&g, &p);
    assert_close(tlm_tensor_data_f32(g.out), want, tlm_tensor_numel(g.out), LARGE_TOL, "out", &c);
    assert_true(all_finite(tlm_tensor_grad_data_f32(g.q), tlm_tensor_numel(g.q)));
    assert_true(all_finite(tlm_tensor_grad_data_f32(g.k), tlm_tensor_numel(g.k)));
    assert_true(all_finite(tlm_tensor_grad_data_f32(g.v), tlm_tensor_numel(g.v)));
    free(want);
    tlm_context_free(ctx);
    free_problem(&p);
}

/* Change q, k, v and the mask with tlm_tensor_set_*, re-run the tape: the
 * result follows, with no allocation on the re-runs (forward or backward). */
static void rerun_sees_new_inputs_without_allocating(void **state) {
    (void)state;
    const config c = {2, 2, 33, 40, 5, 3, 1, MASK_I32, 0};
    problem p = make_problem(c);
    counting_allocator counter = {0};
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    graph g;
    build_graph(&g, ctx, &p, 1);
    tlm_tensor *loss = build_loss(&g, &p);
    assert_int_equal(tlm_backward(loss), TLM_OK);
    const uint64_t calls = counter.calls;

    for (int round = 0; round < 3; round++) {
        problem fresh = make_problem(c);
        /* keep the dout weights of the loss the graph was built with */
        for (int64_t i = 0; i < c.b * c.h * c.tq * c.dv; i++)
            fresh.dout[i] = p.dout[i];
        assert_int_equal(tlm_tensor_set_f32(g.q, fresh.q, tlm_tensor_numel(g.q)), TLM_OK);
        assert_int_equal(tlm_tensor_set_f32(g.k, fresh.k, tlm_tensor_numel(g.k)), TLM_OK);
        assert_int_equal(tlm_tensor_set_f32(g.v, fresh.v, tlm_tensor_numel(g.v)), TLM_OK);
        assert_int_equal(tlm_tensor_set_i32(g.mask, fresh.mask_i32, c.b * c.tk), TLM_OK);
        assert_int_equal(tlm_context_forward(ctx), TLM_OK);
        double *want = reference_out(&fresh);
        assert_close(tlm_tensor_data_f32(g.out), want, tlm_tensor_numel(g.out),
                     TOL, "out after re-run", &c);
        free(want);

        /* backward after the re-run: gradients of the new values */
        const int64_t nq = tlm_tensor_numel(g.q), nk = tlm_tensor_numel(g.k),
                      nv = tlm_tensor_numel(g.v);
        double *out = checked_calloc((size_t)tlm_tensor_numel(g.out), sizeof(double));
        double *dq = checked_calloc((size_t)nq, sizeof(double));
        double *dk = checked_calloc((size_t)nk, sizeof(double));
        double *dv = checked_calloc((size_t)nv, sizeof(double));
        reference(&fresh, out, dq, dk, dv);
        assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        assert_close(tlm_tensor_grad_data_f32(g.q), dq, nq, TOL, "dq after re-run", &c);
        assert_close(tlm_tensor_grad_data_f32(g.k), dk, nk, TOL, "dk after re-run", &c);
        assert_close(tlm_tensor_grad_data_f32(g.v), dv, nv, TOL, "dv after re-run", &c);
        free(out);
        free(dq);
        free(dk);
        free(dv);
        free_problem(&fresh);
    }
    assert_int_equal(counter.calls, calls);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
    free_problem(&p);
}

/* Attention has no mode-dependent behaviour: evaluation mode gives the
 * same values as training mode. */
static void evaluation_mode_gives_the_same_values(void **state) {
    (void)state;
    problem p = make_problem((config){2, 1, 9, 11, 4, 3, 1, MASK_F32, 0});
    float first[2 * 9 * 3];
    for (int training = 1; training >= 0; training--) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        assert_int_equal(tlm_context_set_training(ctx, training), TLM_OK);
        graph g;
        build_graph(&g, ctx, &p, 0);
        if (training)
            assert_int_equal(tlm_tensor_get_f32(g.out, first, 2 * 9 * 3), TLM_OK);
        else
            assert_memory_equal(tlm_tensor_data_f32(g.out), first, sizeof first);
        tlm_context_free(ctx);
    }
    free_problem(&p);
}

/* One tensor as q, k and v, and a float mask that asks for a gradient
 * (it never gets one: masks are not differentiated). */
static void self_attention_and_mask_without_gradient(void **state) {
    (void)state;
    const config c = {2, 2, 7, 7, 4, 4, 1, MASK_F32, 0};
    problem p = make_problem(c);
    /* the same values for q, k and v, as one tensor will be */
    for (int64_t i = 0; i < c.b * c.h * c.tq * c.d; i++)
        p.k[i] = p.v[i] = p.q[i];
    const int64_t nx = c.b * c.h * c.tq * c.d;
    double *out = checked_calloc((size_t)nx, sizeof(double));
    double *dq = checked_calloc((size_t)nx, sizeof(double));
    double *dk = checked_calloc((size_t)nx, sizeof(double));
    double *dv = checked_calloc((size_t)nx, sizeof(double));
    reference(&p, out, dq, dk, dv);
    for (int64_t i = 0; i < nx; i++)
        dq[i] += dk[i] + dv[i]; /* the three shares of one tensor */

    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t sx[4] = {c.b, c.h, c.tq, c.d}, sm[2] = {c.b, c.tk};
    tlm_tensor *x, *mask;
    graph g = {ctx, NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 4, sx, p.q), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&mask, ctx, 2, sm, p.mask_f32), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(x, 1), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(mask, 1), TLM_OK);
    assert_int_equal(tlm_attention(&g.out, x, x, x, mask, TLM_ATTENTION_CAUSAL), TLM_OK);
    assert_close(tlm_tensor_data_f32(g.out), out, nx, TOL, "out", &c);
    run_backward(&g, &p);
    assert_close(tlm_tensor_grad_data_f32(x), dq, nx, TOL, "dx", &c);
    assert_true(all_zero(tlm_tensor_grad_data_f32(mask), c.b * c.tk));
    tlm_context_free(ctx);
    free(out);
    free(dq);
    free(dk);
    free(dv);
    free_problem(&p);
}

/* Grouped-query attention's gradients over 1, 2 and 3 threads: the same
 * bits (each key/value head's gradient is summed over its group in one
 * order, by one thread), for both layouts. */
static void grouped_gradients_do_not_depend_on_threads(void **state) {
    (void)state;
    const config c = {3, 6, 9, 9, 4, 3, 1, MASK_F32, 2};
    problem p = make_problem(c);
    const int64_t nq = c.b * c.h * c.tq * c.d, nk = c.b * 2 * c.tk * c.d,
                  nv = c.b * 2 * c.tk * c.dv;
    float *first[3] = {NULL, NULL, NULL};
    for (int32_t threads = 1; threads <= 3; threads++) {
        tlm_context_params params;
        tlm_context_params_init(&params);
        params.n_threads = threads;
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
        graph g;
        build_graph(&g, ctx, &p, 1);
        run_backward(&g, &p);
        const float *got[3] = {tlm_tensor_grad_data_f32(g.q),
                               tlm_tensor_grad_data_f32(g.k),
                               tlm_tensor_grad_data_f32(g.v)};
        const int64_t counts[3] = {nq, nk, nv};
        for (int i = 0; i < 3; i++) {
            if (threads == 1) {
                first[i] = checked_calloc((size_t)counts[i], sizeof(float));
                memcpy(first[i], got[i], (size_t)counts[i] * sizeof(float));
            } else {
                assert_memory_equal(first[i], got[i],
                                    (size_t)counts[i] * sizeof(float));
            }
        }
        tlm_context_free(ctx);
    }
    for (int i = 0; i < 3; i++)
        free(first[i]);
    free_problem(&p);
}

/* [B, H, T, D] -> [B, T, H*D] (the packed layout), in floats. */
static float *pack(const float *x, int64_t b, int64_t h, int64_t t, int64_t d) {
    float *y = checked_calloc((size_t)(b * h * t * d), sizeof *y);
    for (int64_t i = 0; i < b * h * t * d; i++) {
        const int64_t e = i % d, row = i / d % t, head = i / (d * t) % h,
                      batch = i / (d * t * h);
        y[((batch * t + row) * h + head) * d + e] = x[i];
    }
    return y;
}

/* Checks packed got [B, T, H*D] against the split-layout reference. */
static void assert_packed_close(const float *got, const double *want, int64_t b,
                                int64_t h, int64_t t, int64_t d,
                                const char *what, const config *c) {
    double *packed = checked_calloc((size_t)(b * h * t * d), sizeof *packed);
    for (int64_t i = 0; i < b * h * t * d; i++) {
        const int64_t e = i % d, row = i / d % t, head = i / (d * t) % h,
                      batch = i / (d * t * h);
        packed[((batch * t + row) * h + head) * d + e] = want[i];
    }
    assert_close(got, packed, b * h * t * d, TOL, what, c);
    free(packed);
}

/* tlm_multi_head_attention with Hkv < H: q [B, Tq, H*D] over k, v
 * [B, Tk, Hkv*D] read in place gives the reference's values and gradients. */
static void packed_grouped_matches_reference(void **state) {
    (void)state;
    const config configs_packed[] = {{2, 4, 6, 8, 3, 5, 1, MASK_I32, 2},
                                     {1, 3, 7, 7, 2, 4, 1, MASK_NONE, 1},
                                     {2, 6, 5, 9, 4, 3, 0, MASK_F32, 3}};
    for (size_t n = 0; n < sizeof configs_packed / sizeof configs_packed[0]; n++) {
        const config c = configs_packed[n];
        const int64_t hkv = kv_heads(&c);
        problem p = make_problem(c);
        double *out = checked_calloc((size_t)(c.b * c.h * c.tq * c.dv), sizeof(double));
        double *dq = checked_calloc((size_t)(c.b * c.h * c.tq * c.d), sizeof(double));
        double *dk = checked_calloc((size_t)(c.b * hkv * c.tk * c.d), sizeof(double));
        double *dv = checked_calloc((size_t)(c.b * hkv * c.tk * c.dv), sizeof(double));
        reference(&p, out, dq, dk, dv);
        float *q = pack(p.q, c.b, c.h, c.tq, c.d), *k = pack(p.k, c.b, hkv, c.tk, c.d);
        float *v = pack(p.v, c.b, hkv, c.tk, c.dv);
        float *dout = pack(p.dout, c.b, c.h, c.tq, c.dv);
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        const int64_t sq[3] = {c.b, c.tq, c.h * c.d}, sk[3] = {c.b, c.tk, hkv * c.d},
                      sv[3] = {c.b, c.tk, hkv * c.dv}, so[3] = {c.b, c.tq, c.h * c.dv},
                      sm[2] = {c.b, c.tk};
        tlm_tensor *tq, *tk, *tv, *mask = NULL, *result, *weights, *weighted, *loss;
        assert_int_equal(tlm_tensor_from_f32(&tq, ctx, 3, sq, q), TLM_OK);
        assert_int_equal(tlm_tensor_from_f32(&tk, ctx, 3, sk, k), TLM_OK);
        assert_int_equal(tlm_tensor_from_f32(&tv, ctx, 3, sv, v), TLM_OK);
        if (c.mask == MASK_F32)
            assert_int_equal(tlm_tensor_from_f32(&mask, ctx, 2, sm, p.mask_f32), TLM_OK);
        if (c.mask == MASK_I32)
            assert_int_equal(tlm_tensor_from_i32(&mask, ctx, 2, sm, p.mask_i32), TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(tq, 1), TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(tk, 1), TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(tv, 1), TLM_OK);
        assert_int_equal(tlm_multi_head_attention(&result, tq, tk, tv, mask,
                                                  (int32_t)c.h,
                                                  c.causal ? TLM_ATTENTION_CAUSAL : 0),
                         TLM_OK);
        int64_t shape[3];
        assert_int_equal(tlm_tensor_shape(result, shape, 3), 3);
        assert_int_equal(shape[2], c.h * c.dv);
        assert_packed_close(tlm_tensor_data_f32(result), out, c.b, c.h, c.tq,
                            c.dv, "packed out", &c);
        assert_int_equal(tlm_tensor_from_f32(&weights, ctx, 3, so, dout), TLM_OK);
        assert_int_equal(tlm_mul(&weighted, result, weights), TLM_OK);
        assert_int_equal(tlm_sum(&loss, weighted), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        assert_packed_close(tlm_tensor_grad_data_f32(tq), dq, c.b, c.h, c.tq,
                            c.d, "packed dq", &c);
        assert_packed_close(tlm_tensor_grad_data_f32(tk), dk, c.b, hkv, c.tk,
                            c.d, "packed dk", &c);
        assert_packed_close(tlm_tensor_grad_data_f32(tv), dv, c.b, hkv, c.tk,
                            c.dv, "packed dv", &c);
        tlm_context_free(ctx);
        free(q);
        free(k);
        free(v);
        free(dout);
        free(out);
        free(dq);
        free(dk);
        free(dv);
        free_problem(&p);
    }
}

/* `--threads` runs only the case that starts threads, which
 * tests/meson.build registers apart as values_attention_threads in suite
 * "threads": the aarch64 run under qemu-user leaves that suite out (its
 * emulated workers spin too slowly for a test's time limit). */
int main(int argc, char **argv) {
    const struct CMUnitTest threaded[] = {
        cmocka_unit_test(grouped_gradients_do_not_depend_on_threads),
    };
    if (argc > 1 && strcmp(argv[1], "--threads") == 0)
        return cmocka_run_group_tests(threaded, NULL, NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(hand_computed_values),
        cmocka_unit_test(forward_matches_naive_reference),
        cmocka_unit_test(backward_matches_naive_reference),
        cmocka_unit_test(rows_that_see_nothing_are_zero),
        cmocka_unit_test(block_size_does_not_matter),
        cmocka_unit_test(large_scores_stay_finite),
        cmocka_unit_test(rerun_sees_new_inputs_without_allocating),
        cmocka_unit_test(evaluation_mode_gives_the_same_values),
        cmocka_unit_test(self_attention_and_mask_without_gradient),
        cmocka_unit_test(packed_grouped_matches_reference),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
