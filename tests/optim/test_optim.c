/*
 * Suite "optim": AdamW and SGD against the update equations evaluated in
 * double, weight decay's default (matrices only) and its overrides,
 * clipping by global norm, non-finite gradients (nothing changes), state
 * save/load (bit-exact resume, malformed buffers rejected), gradient
 * accumulation, a small model trained to a low loss, no allocation in the
 * training calls and clean failure of every allocation.
 *
 * Tolerances: updates match the double-precision reference to 1e-6
 * relative (parameters are kept away from zero); accumulated gradients
 * match the full batch's to 1e-5 relative plus 1e-7 absolute (float sums
 * in another order).
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

#include "counting_allocator.h"
#include "tlm.h"

#define N_PARAMS 3
#define N_STEPS 3
#define MAX_NUMEL 6

/* The example: a matrix W [2, 3] and an embedding-like table E [3, 2]
 * (2-D: decayed by default) and a bias b [3] (1-D: not decayed). */
static const int32_t example_ndim[N_PARAMS] = {2, 1, 2};
static const int64_t example_shape[N_PARAMS][2] = {{2, 3}, {3, 1}, {3, 2}};
static const int64_t example_numel[N_PARAMS] = {6, 3, 6};

static float initial_value(int p, int64_t i) {
    /* |value| in [0.5, 1.6]: relative comparisons stay meaningful. */
    const float v = 0.5f + 0.1f * (float)((p * 7 + i * 3) % 12);
    return (p + i) % 2 ? -v : v;
}

/* The gradient of parameter p, element i, at step s: fixed values, so the
 * library and the reference see the same gradients. */
static float gradient_value(int s, int p, int64_t i) {
    return (float)(0.8 * sin(1.3 * (double)(p * MAX_NUMEL + i) + 0.7 * s + 0.2) +
                   0.05 * (double)(s + 1));
}

typedef struct example {
    tlm_context *ctx;
    tlm_tensor *params[N_PARAMS];
} example;

static void example_create(example *ex, const tlm_context_params *cp) {
    assert_int_equal(tlm_context_create(&ex->ctx, cp), TLM_OK);
    for (int p = 0; p < N_PARAMS; p++) {
        float values[MAX_NUMEL];
        for (int64_t i = 0; i < example_numel[p]; i++)
            values[i] = initial_value(p, i);
        ex->params[p] = NULL;
        assert_int_equal(tlm_tensor_from_f32(&ex->params[p], ex->ctx, example_ndim[p],
                                             example_shape[p], values),
                         TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(ex->params[p], 1), TLM_OK);
    }
}

static void set_gradients(example *ex, int s) {
    for (int p = 0; p < N_PARAMS; p++) {
        float *g = tlm_tensor_grad_data_f32(ex->params[p]);
        assert_non_null(g);
        for (int64_t i = 0; i < example_numel[p]; i++)
            g[i] = gradient_value(s, p, i);
    }
}

/* ---------------------------------------------------------------------- */
/* The reference: the equations of docs/optimizers.md, in double. */

typedef struct reference {
    double p[N_PARAMS][MAX_NUMEL];
    double m[N_PARAMS][MAX_NUMEL];
    double v[N_PARAMS][MAX_NUMEL];
    int decay[N_PARAMS];
    int64_t t;
} reference;

static void reference_init(reference *r) {
    memset(r, 0, sizeof *r);
    for (int p = 0; p < N_PARAMS; p++) {
        for (int64_t i = 0; i < example_numel[p]; i++)
            r->p[p][i] = (double)initial_value(p, i);
        r->decay[p] = example_ndim[p] >= 2;
    }
}

static void reference_step(reference *r, const tlm_optimizer_params *o,
                           double lr, int s) {
    r->t++;
    const double b1 = (double)o->beta1, b2 = (double)o->beta2;
    const double eps = (double)o->eps, mu = (double)o->momentum;
    for (int p = 0; p < N_PARAMS; p++) {
        const double wd = r->decay[p] ? (double)o->weight_decay : 0.0;
        for (int64_t i = 0; i < example_numel[p]; i++) {
            double g = (double)gradient_value(s, p, i);
            double *w = &r->p[p][i], *m = &r->m[p][i], *v = &r->v[p][i];
            if (o->kind == TLM_OPTIMIZER_ADAMW) {
                *w -= lr * wd * *w; /* decoupled weight decay */
                *m = b1 * *m + (1 - b1) * g;
                *v = b2 * *v + (1 - b2) * g * g;
                const double m_hat = *m / (1 - pow(b1, (double)r->t));
                const double v_hat = *v / (1 - pow(b2, (double)r->t));
                *w -= lr * m_hat / (sqrt(v_hat) + eps);
            } else {
                g += wd * *w; /* L2 */
                if (mu != 0.0) {
                    *m = r->t == 1 ? g : mu * *m + g;
                    g = o->nesterov ? g + mu * *m : *m;
                }
                *w -= lr * g;
            }
        }
    }
}

static void assert_close_relative(double got, double want, double rel,
                                  const char *what, int p, int64_t i) {
    if (!(fabs(got - want) <= rel * fabs(want)))
        fail_msg("%s: parameter %d element %lld is %.9g, expected %.9g "
                 "(relative tolerance %g)",
                 what, p, (long long)i, got, want, rel);
}

/* Three steps of the library against three of the reference. */
static void check_against_reference(const tlm_optimizer_params *o,
                                    const float *lrs, const char *what) {
    example ex;
    example_create(&ex, NULL);
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, ex.params, N_PARAMS, o), TLM_OK);
    reference r;
    reference_init(&r);
    for (int s = 0; s < N_STEPS; s++) {
        set_gradients(&ex, s);
        const float lr = lrs != NULL ? lrs[s] : TLM_OPTIMIZER_LR_DEFAULT;
        assert_int_equal(tlm_optimizer_step(opt, lr), TLM_OK);
        reference_step(&r, o, lrs != NULL ? (double)lrs[s] : (double)o->lr, s);
        for (int p = 0; p < N_PARAMS; p++) {
            const float *w = tlm_tensor_data_f32(ex.params[p]);
            for (int64_t i = 0; i < example_numel[p]; i++)
                assert_close_relative((double)w[i], r.p[p][i], 1e-6, what, p, i);
        }
    }
    assert_int_equal(tlm_optimizer_step_count(opt), N_STEPS);
    tlm_optimizer_free(opt);
    tlm_context_free(ex.ctx);
}

static void adamw_matches_the_equations(void **state) {
    (void)state;
    tlm_optimizer_params o;
    assert_int_equal(tlm_optimizer_params_init(&o), TLM_OK);
    o.lr = 0.05f;
    o.weight_decay = 0.1f;
    check_against_reference(&o, NULL, "adamw, defaults, lr 0.05, wd 0.1");
    const float lrs[N_STEPS] = {0.02f, 0.04f, 0.01f};
    check_against_reference(&o, lrs, "adamw, lr per step");
    o.beta1 = 0.8f;
    o.beta2 = 0.95f;
    o.eps = 1e-3f;
    o.weight_decay = 0.0f;
    check_against_reference(&o, NULL, "adamw, betas 0.8/0.95, eps 1e-3, no wd");
}

static void sgd_matches_the_equations(void **state) {
    (void)state;
    tlm_optimizer_params o;
    assert_int_equal(tlm_optimizer_params_init_for(&o, TLM_OPTIMIZER_SGD), TLM_OK);
    o.lr = 0.1f;
    check_against_reference(&o, NULL, "sgd");
    o.momentum = 0.9f;
    check_against_reference(&o, NULL, "sgd, momentum 0.9");
    o.nesterov = 1;
    check_against_reference(&o, NULL, "sgd, nesterov 0.9");
    o.weight_decay = 0.05f;
    check_against_reference(&o, NULL, "sgd, nesterov 0.9, wd 0.05");
    o.nesterov = 0;
    check_against_reference(&o, NULL, "sgd, momentum 0.9, wd 0.05");
    o.momentum = 0.0f;
    const float lrs[N_STEPS] = {0.2f, 0.0f, 0.05f};
    check_against_reference(&o, lrs, "sgd, wd 0.05, lr per step");
}

/* With zero gradients an AdamW step is its weight decay alone: matrices
 * shrink by (1 - lr wd), vectors stay bit-identical. */
static void weight_decay_defaults_to_matrices(void **state) {
    (void)state;
    example ex;
    example_create(&ex, NULL);
    tlm_optimizer_params o;
    tlm_optimizer_params_init(&o);
    o.lr = 0.1f;
    o.weight_decay = 0.5f;
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, ex.params, N_PARAMS, &o), TLM_OK);
    assert_int_equal(tlm_optimizer_get_decay(opt, 0), 1);
    assert_int_equal(tlm_optimizer_get_decay(opt, 1), 0);
    assert_int_equal(tlm_optimizer_get_decay(opt, 2), 1);
    /* gradients are zero after requires_grad */
    assert_int_equal(tlm_optimizer_step(opt, TLM_OPTIMIZER_LR_DEFAULT), TLM_OK);
    for (int p = 0; p < N_PARAMS; p++) {
        const float *w = tlm_tensor_data_f32(ex.params[p]);
        for (int64_t i = 0; i < example_numel[p]; i++) {
            const double start = (double)initial_value(p, i);
            if (example_ndim[p] >= 2)
                assert_close_relative((double)w[i], start * (1 - 0.1 * 0.5), 1e-6,
                                      "decay", p, i);
            else
                assert_true(w[i] == initial_value(p, i));
        }
    }
    /* The embedding-like table excluded by the caller: unchanged now. */
    assert_int_equal(tlm_optimizer_set_decay(opt, 2, 0), TLM_OK);
    assert_int_equal(tlm_optimizer_get_decay(opt, 2), 0);
    float before[MAX_NUMEL];
    memcpy(before, tlm_tensor_data_f32(ex.params[2]), sizeof(float) * 6);
    assert_int_equal(tlm_optimizer_step(opt, TLM_OPTIMIZER_LR_DEFAULT), TLM_OK);
    assert_memory_equal(before, tlm_tensor_data_f32(ex.params[2]), sizeof(float) * 6);
    tlm_optimizer_free(opt);

    /* Flags given at creation override the rule: here the bias only. */
    const int32_t flags[N_PARAMS] = {0, 1, 0};
    o.decay_flags = flags;
    assert_int_equal(tlm_optimizer_create(&opt, ex.params, N_PARAMS, &o), TLM_OK);
    for (int p = 0; p < N_PARAMS; p++)
        assert_int_equal(tlm_optimizer_get_decay(opt, p), flags[p]);
    float bias[3], matrix[6];
    memcpy(bias, tlm_tensor_data_f32(ex.params[1]), sizeof bias);
    memcpy(matrix, tlm_tensor_data_f32(ex.params[0]), sizeof matrix);
    assert_int_equal(tlm_optimizer_step(opt, 0.1f), TLM_OK);
    assert_memory_equal(matrix, tlm_tensor_data_f32(ex.params[0]), sizeof matrix);
    for (int i = 0; i < 3; i++)
        assert_close_relative((double)tlm_tensor_data_f32(ex.params[1])[i],
                              (double)bias[i] * (1 - 0.1 * 0.5), 1e-6, "flags", 1, i);
    tlm_optimizer_params got;
    tlm_optimizer_params_init(&got);
    assert_int_equal(tlm_optimizer_get_params(opt, &got), TLM_OK);
    assert_null(got.decay_flags);
    assert_true(got.weight_decay == 0.5f);
    assert_int_equal(got.kind, TLM_OPTIMIZER_ADAMW);
    tlm_optimizer_free(opt);
    tlm_context_free(ex.ctx);
}

/* ---------------------------------------------------------------------- */
/* Clipping by global norm. */

static void clipping_by_global_norm(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t shape_a[1] = {2}, shape_b[2] = {1, 2};
    tlm_tensor *a = NULL, *b = NULL;
    assert_int_equal(tlm_tensor_create(&a, ctx, TLM_DTYPE_F32, 1, shape_a), TLM_OK);
    assert_int_equal(tlm_tensor_create(&b, ctx, TLM_DTYPE_F32, 2, shape_b), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(a, 1), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(b, 1), TLM_OK);
    tlm_tensor *both[2] = {a, b};
    float *ga = tlm_tensor_grad_data_f32(a), *gb = tlm_tensor_grad_data_f32(b);
    /* (3, 4, 0, 12): norm 13 */
    const float values[4] = {3, 4, 0, 12};
    memcpy(ga, values, sizeof(float) * 2);
    memcpy(gb, values + 2, sizeof(float) * 2);

    /* Below the threshold (and at +infinity): measured, bit-identical. */
    double norm = -1;
    assert_int_equal(tlm_clip_grad_norm(both, 2, 20.0f, &norm), TLM_OK);
    assert_true(fabs(norm - 13.0) <= 1e-12);
    assert_memory_equal(ga, values, sizeof(float) * 2);
    assert_memory_equal(gb, values + 2, sizeof(float) * 2);
    assert_int_equal(tlm_clip_grad_norm(both, 2, INFINITY, NULL), TLM_OK);
    assert_memory_equal(ga, values, sizeof(float) * 2);

    /* Above: scaled by max_norm / (norm + 1e-6), to norm 6.5. */
    assert_int_equal(tlm_clip_grad_norm(both, 2, 6.5f, &norm), TLM_OK);
    assert_true(fabs(norm - 13.0) <= 1e-12);
    const double factor = 6.5 / (13.0 + 1e-6);
    double after = 0;
    for (int i = 0; i < 4; i++) {
        const double got = (double)(i < 2 ? ga[i] : gb[i - 2]);
        assert_true(fabs(got - (double)values[i] * factor) <= 1e-6 * (double)values[i] + 1e-12);
        after += got * got;
    }
    assert_true(fabs(sqrt(after) - 6.5) <= 1e-5);
    assert_int_equal(tlm_clip_grad_norm(both, 2, 6.5f, &norm), TLM_OK);
    assert_true(fabs(norm - 6.5) <= 1e-5);

    /* A NaN (or an infinity) anywhere: TLM_E_NONFINITE, nothing scaled. */
    memcpy(ga, values, sizeof(float) * 2);
    gb[0] = NAN;
    gb[1] = 12;
    assert_int_equal(tlm_clip_grad_norm(both, 2, 1.0f, &norm), TLM_E_NONFINITE);
    assert_true(isnan(norm));
    assert_memory_equal(ga, values, sizeof(float) * 2);
    assert_true(isnan(gb[0]) && gb[1] == 12.0f);
    assert_non_null(strstr(tlm_last_error(), "tlm_clip_grad_norm"));
    gb[0] = INFINITY;
    assert_int_equal(tlm_clip_grad_norm(both, 2, 1.0f, &norm), TLM_E_NONFINITE);
    assert_true(isinf(norm));
    assert_memory_equal(ga, values, sizeof(float) * 2);
    tlm_context_free(ctx);
}

/* ---------------------------------------------------------------------- */
/* Non-finite gradients: the step changes nothing. */

static unsigned char *saved_state(const tlm_optimizer *opt, size_t *size) {
    assert_int_equal(tlm_optimizer_state_size(opt, size), TLM_OK);
    unsigned char *buffer = malloc(*size);
    assert_non_null(buffer);
    assert_int_equal(tlm_optimizer_save_state(opt, buffer, *size), TLM_OK);
    return buffer;
}

static void nonfinite_gradient_changes_nothing(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        example ex;
        example_create(&ex, NULL);
        tlm_optimizer_params o;
        tlm_optimizer_params_init_for(&o, kind);
        o.momentum = kind == TLM_OPTIMIZER_SGD ? 0.9f : 0.0f;
        tlm_optimizer *opt = NULL;
        assert_int_equal(tlm_optimizer_create(&opt, ex.params, N_PARAMS, &o), TLM_OK);
        for (int s = 0; s < 2; s++) {
            set_gradients(&ex, s);
            assert_int_equal(tlm_optimizer_step(opt, 0.01f), TLM_OK);
        }
        for (int bad = 0; bad < 3; bad++) {
            set_gradients(&ex, 2);
            const float poison = bad == 0 ? NAN : (bad == 1 ? INFINITY : -INFINITY);
            tlm_tensor_grad_data_f32(ex.params[2])[5] = poison;
            float before[N_PARAMS][MAX_NUMEL];
            for (int p = 0; p < N_PARAMS; p++)
                memcpy(before[p], tlm_tensor_data_f32(ex.params[p]),
                       sizeof(float) * (size_t)example_numel[p]);
            size_t size_before = 0, size_after = 0;
            unsigned char *state_before = saved_state(opt, &size_before);
            assert_int_equal(tlm_optimizer_step(opt, 0.01f), TLM_E_NONFINITE);
            assert_non_null(strstr(tlm_optimizer_last_error(opt), "tlm_optimizer_step"));
            assert_non_null(strstr(tlm_optimizer_last_error(opt), "parameter 2"));
            assert_non_null(strstr(tlm_last_error(), "[2][1]"));
            for (int p = 0; p < N_PARAMS; p++)
                assert_memory_equal(before[p], tlm_tensor_data_f32(ex.params[p]),
                                    sizeof(float) * (size_t)example_numel[p]);
            unsigned char *state_after = saved_state(opt, &size_after);
            assert_int_equal(size_before, size_after);
            assert_memory_equal(state_before, state_after, size_before);
            assert_int_equal(tlm_optimizer_step_count(opt), 2);
            free(state_before);
            free(state_after);
        }
        tlm_optimizer_free(opt);
        tlm_context_free(ex.ctx);
    }
}

/* ---------------------------------------------------------------------- */
/* Save and load. */

/* Runs steps [from, to) with lrs from a warm-up + cosine schedule. */
static void run_steps(example *ex, tlm_optimizer *opt, int from, int to) {
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = 0.05f;
    schedule.min_lr = 0.005f;
    schedule.warmup_steps = 2;
    schedule.decay_end_step = 8;
    for (int s = from; s < to; s++) {
        assert_int_equal(tlm_optimizer_step_count(opt), s);
        set_gradients(ex, s);
        float lr = 0;
        assert_int_equal(tlm_schedule_lr(&schedule, tlm_optimizer_step_count(opt), &lr), TLM_OK);
        assert_int_equal(tlm_optimizer_step(opt, lr), TLM_OK);
    }
}

static void resume_is_bit_exact(void **state) {
    (void)state;
    tlm_optimizer_params settings[3];
    tlm_optimizer_params_init(&settings[0]);
    settings[0].weight_decay = 0.1f;
    tlm_optimizer_params_init_for(&settings[1], TLM_OPTIMIZER_SGD);
    settings[1].momentum = 0.9f;
    settings[1].nesterov = 1;
    settings[1].weight_decay = 0.01f;
    tlm_optimizer_params_init_for(&settings[2], TLM_OPTIMIZER_SGD);
    settings[2].momentum = 0.5f;
    for (int c = 0; c < 3; c++) {
        /* Uninterrupted: 10 steps. */
        example whole;
        example_create(&whole, NULL);
        tlm_optimizer *opt = NULL;
        assert_int_equal(tlm_optimizer_create(&opt, whole.params, N_PARAMS, &settings[c]), TLM_OK);
        assert_int_equal(tlm_optimizer_set_decay(opt, 2, 0), TLM_OK);
        run_steps(&whole, opt, 0, 10);
        tlm_optimizer_free(opt);

        /* Interrupted after 4: state and parameters saved, then a fresh
         * context, parameters and optimizer (other settings: the state's
         * replace them) continue. */
        example first;
        example_create(&first, NULL);
        assert_int_equal(tlm_optimizer_create(&opt, first.params, N_PARAMS, &settings[c]), TLM_OK);
        assert_int_equal(tlm_optimizer_set_decay(opt, 2, 0), TLM_OK);
        run_steps(&first, opt, 0, 4);
        size_t size = 0;
        unsigned char *buffer = saved_state(opt, &size);
        tlm_optimizer_free(opt);

        example second;
        example_create(&second, NULL);
        for (int p = 0; p < N_PARAMS; p++)
            assert_int_equal(tlm_tensor_set_f32(second.params[p],
                                                tlm_tensor_data_f32(first.params[p]),
                                                example_numel[p]),
                             TLM_OK);
        tlm_optimizer_params other;
        tlm_optimizer_params_init_for(&other, settings[c].kind);
        other.lr = 0.5f;
        other.weight_decay = 0.3f;
        assert_int_equal(tlm_optimizer_create(&opt, second.params, N_PARAMS, &other), TLM_OK);
        assert_int_equal(tlm_optimizer_get_decay(opt, 2), 1);
        assert_int_equal(tlm_optimizer_load_state(opt, buffer, size), TLM_OK);
        assert_int_equal(tlm_optimizer_step_count(opt), 4);
        assert_int_equal(tlm_optimizer_get_decay(opt, 2), 0);
        tlm_optimizer_params got;
        tlm_optimizer_params_init(&got);
        assert_int_equal(tlm_optimizer_get_params(opt, &got), TLM_OK);
        assert_true(got.lr == settings[c].lr);
        assert_true(got.weight_decay == settings[c].weight_decay);
        assert_true(got.momentum == settings[c].momentum);
        assert_int_equal(got.nesterov, settings[c].nesterov);
        /* Saving again gives the same bytes. */
        size_t size_again = 0;
        unsigned char *again = saved_state(opt, &size_again);
        assert_int_equal(size, size_again);
        assert_memory_equal(buffer, again, size);
        run_steps(&second, opt, 4, 10);
        for (int p = 0; p < N_PARAMS; p++)
            assert_memory_equal(tlm_tensor_data_f32(whole.params[p]),
                                tlm_tensor_data_f32(second.params[p]),
                                sizeof(float) * (size_t)example_numel[p]);
        tlm_optimizer_free(opt);
        free(buffer);
        free(again);
        tlm_context_free(whole.ctx);
        tlm_context_free(first.ctx);
        tlm_context_free(second.ctx);
    }
}

/* zlib's CRC-32, to forge buffers whose checksum is right. */
static uint32_t crc32_reference(const unsigned char *bytes, size_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        crc ^= bytes[i];
        for (int k = 0; k < 8; k++)
            crc = (crc & 1u) ? 0xEDB88320u ^ (crc >> 1) : crc >> 1;
    }
    return crc ^ 0xFFFFFFFFu;
}

static void put_u32_le(unsigned char *at, uint32_t x) {
    for (int i = 0; i < 4; i++)
        at[i] = (unsigned char)(x >> (8 * i));
}

static void reseal(unsigned char *buffer, size_t size) {
    put_u32_le(buffer + size - 4, crc32_reference(buffer, size - 4));
}

static void expect_rejected(tlm_optimizer *opt, const unsigned char *buffer,
                            size_t size, int status, const char *needle,
                            const unsigned char *reference_state,
                            size_t reference_size) {
    assert_int_equal(tlm_optimizer_load_state(opt, buffer, size), status);
    const char *message = tlm_optimizer_last_error(opt);
    if (strstr(message, "tlm_optimizer_load_state") == NULL ||
        strstr(message, needle) == NULL)
        fail_msg("message '%s' lacks '%s'", message, needle);
    /* The optimizer is as it was. */
    size_t now_size = 0;
    unsigned char *now = saved_state(opt, &now_size);
    assert_int_equal(now_size, reference_size);
    assert_memory_equal(now, reference_state, reference_size);
    free(now);
}

static void malformed_states_are_rejected(void **state) {
    (void)state;
    example ex;
    example_create(&ex, NULL);
    tlm_optimizer_params o;
    tlm_optimizer_params_init(&o);
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, ex.params, N_PARAMS, &o), TLM_OK);
    run_steps(&ex, opt, 0, 2);
    size_t size = 0;
    unsigned char *good = saved_state(opt, &size);
    /* 56-byte header, 48 bytes per parameter, 2 x 15 moments, CRC. */
    assert_int_equal(size, 56 + 3 * 48 + 4 * 30 + 4);
    assert_memory_equal(good, "TLMOPTIM", 8);

    /* A different optimizer state to load into, so that "unchanged" is
     * visible. */
    tlm_optimizer *target = NULL;
    assert_int_equal(tlm_optimizer_create(&target, ex.params, N_PARAMS, &o), TLM_OK);
    size_t target_size = 0;
    unsigned char *target_state = saved_state(target, &target_size);

    unsigned char *bad = malloc(size + 1);
    assert_non_null(bad);
    /* Truncated anywhere, or a byte too many. */
    const size_t cuts[] = {0, 7, 11, 12, 55, 56, 100, 56 + 3 * 48, size - 5, size - 1};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++)
        expect_rejected(target, good, cuts[c], TLM_E_FORMAT, "truncated", target_state,
                        target_size);
    memcpy(bad, good, size);
    bad[size] = 0;
    expect_rejected(target, bad, size + 1, TLM_E_FORMAT, "trailing", target_state,
                    target_size);
    /* Not a state. */
    memcpy(bad, good, size);
    bad[3] = 'X';
    expect_rejected(target, bad, size, TLM_E_FORMAT, "TLMOPTIM", target_state, target_size);
    /* A newer version, even a short one. */
    memcpy(bad, good, size);
    put_u32_le(bad + 8, 2);
    expect_rejected(target, bad, size, TLM_E_VERSION, "version 2", target_state,
                    target_size);
    expect_rejected(target, bad, 12, TLM_E_VERSION, "newer", target_state, target_size);
    put_u32_le(bad + 8, 0);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "version 0", target_state,
                    target_size);
    /* One flipped bit in a moment: the checksum. */
    memcpy(bad, good, size);
    bad[56 + 3 * 48 + 17] ^= 0x10;
    expect_rejected(target, bad, size, TLM_E_FORMAT, "checksum", target_state,
                    target_size);
    /* Forged with a right checksum: bad values. */
    memcpy(bad, good, size);
    put_u32_le(bad + 12, 7); /* kind */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "kind 7", target_state, target_size);
    memcpy(bad, good, size);
    put_u32_le(bad + 36, 0x40000000u); /* beta1 = 2 */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "beta1", target_state, target_size);
    memcpy(bad, good, size);
    put_u32_le(bad + 56 + 3 * 48 + 4 * 2, 0x7FC00000u); /* a NaN m */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "moment 2 of parameter 0 is not finite",
                    target_state, target_size);
    memcpy(bad, good, size);
    put_u32_le(bad + 56 + 3 * 48 + 4 * 10, 0xBF800000u); /* v = -1 */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "second moment", target_state,
                    target_size);
    memcpy(bad, good, size);
    put_u32_le(bad + 56 + 48 + 4, 2); /* decay flag 2 */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "decay", target_state, target_size);
    memcpy(bad, good, size);
    put_u32_le(bad + 56 + 48 + 8, 4); /* numel 4, shape [3] */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_FORMAT, "elements", target_state,
                    target_size);
    /* Shapes that are valid but not this optimizer's: TLM_E_SHAPE. */
    memcpy(bad, good, size);
    put_u32_le(bad + 56 + 16, 3); /* W [2, 3] saved as [3, 3]... */
    put_u32_le(bad + 56 + 8, 9);  /* ...with 9 elements */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_SHAPE, "parameter 0", target_state,
                    target_size);
    memcpy(bad, good, size);
    put_u32_le(bad + 16, 2); /* two parameters */
    reseal(bad, size);
    expect_rejected(target, bad, size, TLM_E_SHAPE, "2 parameters", target_state,
                    target_size);

    /* The state of another optimizer: other shapes, other kind. */
    const int64_t shape[2] = {3, 2};
    tlm_tensor *transposed = NULL;
    assert_int_equal(tlm_tensor_create(&transposed, ex.ctx, TLM_DTYPE_F32, 2, shape), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(transposed, 1), TLM_OK);
    tlm_tensor *others[N_PARAMS] = {transposed, ex.params[1], ex.params[2]};
    tlm_optimizer *other = NULL;
    assert_int_equal(tlm_optimizer_create(&other, others, N_PARAMS, &o), TLM_OK);
    assert_int_equal(tlm_optimizer_load_state(other, good, size), TLM_E_SHAPE);
    tlm_optimizer_free(other);
    assert_int_equal(tlm_optimizer_create(&other, ex.params, 2, &o), TLM_OK);
    assert_int_equal(tlm_optimizer_load_state(other, good, size), TLM_E_SHAPE);
    tlm_optimizer_free(other);
    tlm_optimizer_params sgd;
    tlm_optimizer_params_init_for(&sgd, TLM_OPTIMIZER_SGD);
    assert_int_equal(tlm_optimizer_create(&other, ex.params, N_PARAMS, &sgd), TLM_OK);
    assert_int_equal(tlm_optimizer_load_state(other, good, size), TLM_E_INVALID);
    assert_non_null(strstr(tlm_optimizer_last_error(other), "AdamW"));
    tlm_optimizer_free(other);

    /* The good buffer still loads. */
    assert_int_equal(tlm_optimizer_load_state(target, good, size), TLM_OK);
    assert_int_equal(tlm_optimizer_step_count(target), 2);
    free(bad);
    free(good);
    free(target_state);
    tlm_optimizer_free(target);
    tlm_optimizer_free(opt);
    tlm_context_free(ex.ctx);
}

/* ---------------------------------------------------------------------- */
/* Gradient accumulation: k micro-batches with loss / k give the gradient
 * of one batch k times as large. */

#define ACC_ROWS 8
#define ACC_K 4

static float acc_input(int64_t row, int64_t col) {
    return (float)sin(0.9 * (double)row + 1.7 * (double)col) + 0.1f * (float)col;
}

static float acc_target(int64_t row) {
    return (float)cos(0.5 * (double)row) * 2.0f;
}

/* mean((x W + b - y)^2) over rows [first, first + rows), scaled by
 * `factor`, back-propagated into W and b. */
static void accumulate(tlm_context *ctx, tlm_tensor *w, tlm_tensor *b,
                       int64_t first, int64_t rows, float factor) {
    const int64_t x_shape[2] = {rows, 3}, y_shape[2] = {rows, 1};
    float xs[ACC_ROWS * 3], ys[ACC_ROWS];
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t c = 0; c < 3; c++)
            xs[r * 3 + c] = acc_input(first + r, c);
        ys[r] = acc_target(first + r);
    }
    tlm_tensor *x = NULL, *y = NULL, *out = NULL, *err = NULL, *sq = NULL,
               *loss = NULL, *scaled = NULL;
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 2, x_shape, xs), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&y, ctx, 2, y_shape, ys), TLM_OK);
    assert_int_equal(tlm_matmul(&out, x, w, b, 0), TLM_OK);
    assert_int_equal(tlm_sub(&err, out, y), TLM_OK);
    assert_int_equal(tlm_mul(&sq, err, err), TLM_OK);
    assert_int_equal(tlm_mean(&loss, sq), TLM_OK);
    assert_int_equal(tlm_scale(&scaled, loss, factor), TLM_OK);
    assert_int_equal(tlm_backward(scaled), TLM_OK);
    assert_int_equal(tlm_context_reset(ctx), TLM_OK);
    tlm_tensor_free(x);
    tlm_tensor_free(y);
}

static void accumulation_matches_one_large_batch(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    const int64_t w_shape[2] = {3, 1}, b_shape[1] = {1};
    const float w0[3] = {0.3f, -0.6f, 0.9f}, b0[1] = {0.1f};
    tlm_tensor *w = NULL, *b = NULL;
    assert_int_equal(tlm_tensor_from_f32(&w, ctx, 2, w_shape, w0), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&b, ctx, 1, b_shape, b0), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(w, 1), TLM_OK);
    assert_int_equal(tlm_tensor_set_requires_grad(b, 1), TLM_OK);

    accumulate(ctx, w, b, 0, ACC_ROWS, 1.0f);
    float full_w[3], full_b[1];
    assert_int_equal(tlm_tensor_get_grad_f32(w, full_w, 3), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(b, full_b, 1), TLM_OK);

    assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
    for (int64_t k = 0; k < ACC_K; k++)
        accumulate(ctx, w, b, k * (ACC_ROWS / ACC_K), ACC_ROWS / ACC_K, 1.0f / ACC_K);
    float acc_w[3], acc_b[1];
    assert_int_equal(tlm_tensor_get_grad_f32(w, acc_w, 3), TLM_OK);
    assert_int_equal(tlm_tensor_get_grad_f32(b, acc_b, 1), TLM_OK);
    for (int i = 0; i < 4; i++) {
        const double want = (double)(i < 3 ? full_w[i] : full_b[0]);
        const double got = (double)(i < 3 ? acc_w[i] : acc_b[0]);
        printf("gradient %d: one batch %.9g, %d micro-batches %.9g\n", i, want, ACC_K, got);
        assert_true(fabs(got - want) <= 1e-5 * fabs(want) + 1e-7);
        assert_true(fabs(want) > 1e-3); /* a real comparison */
    }
    tlm_context_free(ctx);
}

/* ---------------------------------------------------------------------- */
/* A small model trained with AdamW, clipping and a schedule. */

#define FIT_ROWS 64
#define FIT_HIDDEN 16

static tlm_tensor *random_parameter(tlm_context *ctx, int32_t ndim, int64_t d0,
                                    int64_t d1, float scale, uint64_t *seed) {
    const int64_t shape[2] = {d0, d1};
    tlm_tensor *t = NULL;
    assert_int_equal(tlm_tensor_create(&t, ctx, TLM_DTYPE_F32, ndim, shape), TLM_OK);
    float *w = tlm_tensor_data_f32(t);
    for (int64_t i = 0; i < tlm_tensor_numel(t); i++) {
        *seed = *seed * 6364136223846793005ull + 1442695040888963407ull;
        w[i] = ((float)(*seed >> 40) / 16777216.0f - 0.5f) * 2.0f * scale;
    }
    assert_int_equal(tlm_tensor_set_requires_grad(t, 1), TLM_OK);
    return t;
}

static void adamw_trains_a_small_model(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    /* y = sin(2 x0) + x0 x1 on a grid over [-1, 1]^2. */
    float xs[FIT_ROWS * 2], ys[FIT_ROWS];
    double mean_y = 0;
    for (int r = 0; r < FIT_ROWS; r++) {
        const double x0 = -1.0 + 2.0 * (r % 8) / 7.0, x1 = -1.0 + 2.0 * (r / 8) / 7.0;
        xs[2 * r] = (float)x0;
        xs[2 * r + 1] = (float)x1;
        ys[r] = (float)(sin(2.0 * x0) + x0 * x1);
        mean_y += (double)ys[r] / FIT_ROWS;
    }
    double variance = 0;
    for (int r = 0; r < FIT_ROWS; r++)
        variance += ((double)ys[r] - mean_y) * ((double)ys[r] - mean_y) / FIT_ROWS;
    const int64_t x_shape[2] = {FIT_ROWS, 2}, y_shape[2] = {FIT_ROWS, 1};
    tlm_tensor *x = NULL, *y = NULL;
    assert_int_equal(tlm_tensor_from_f32(&x, ctx, 2, x_shape, xs), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&y, ctx, 2, y_shape, ys), TLM_OK);
    uint64_t seed = 11;
    tlm_tensor *params[4];
    params[0] = random_parameter(ctx, 2, 2, FIT_HIDDEN, 0.8f, &seed);
    params[1] = random_parameter(ctx, 1, FIT_HIDDEN, 0, 0.1f, &seed);
    params[2] = random_parameter(ctx, 2, FIT_HIDDEN, 1, 0.3f, &seed);
    params[3] = random_parameter(ctx, 1, 1, 0, 0.1f, &seed);

    tlm_tensor *h = NULL, *a = NULL, *out = NULL, *err = NULL, *sq = NULL, *loss = NULL;
    assert_int_equal(tlm_matmul(&h, x, params[0], params[1], 0), TLM_OK);
    assert_int_equal(tlm_gelu(&a, h, TLM_GELU_TANH), TLM_OK);
    assert_int_equal(tlm_matmul(&out, a, params[2], params[3], 0), TLM_OK);
    assert_int_equal(tlm_sub(&err, out, y), TLM_OK);
    assert_int_equal(tlm_mul(&sq, err, err), TLM_OK);
    assert_int_equal(tlm_mean(&loss, sq), TLM_OK);

    tlm_optimizer_params o;
    tlm_optimizer_params_init(&o);
    o.weight_decay = 1e-4f;
    tlm_optimizer *opt = NULL;
    assert_int_equal(tlm_optimizer_create(&opt, params, 4, &o), TLM_OK);
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = 0.03f;
    schedule.min_lr = 0.003f;
    schedule.warmup_steps = 20;
    schedule.decay_end_step = 600;
    const float first = tlm_tensor_data_f32(loss)[0];
    for (int step = 0; step < 600; step++) {
        if (step > 0)
            assert_int_equal(tlm_context_forward(ctx), TLM_OK);
        assert_int_equal(tlm_context_zero_grad(ctx), TLM_OK);
        assert_int_equal(tlm_backward(loss), TLM_OK);
        assert_int_equal(tlm_clip_grad_norm(params, 4, 1.0f, NULL), TLM_OK);
        float lr = 0;
        assert_int_equal(tlm_schedule_lr(&schedule, step, &lr), TLM_OK);
        assert_int_equal(tlm_optimizer_step(opt, lr), TLM_OK);
    }
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    const float last = tlm_tensor_data_f32(loss)[0];
    printf("regression: target variance %.4f, mse %.4f -> %.6f\n", variance,
           (double)first, (double)last);
    /* Bound: under 1% of the target's variance (a constant predictor's
     * mean squared error). */
    assert_true((double)last < 0.01 * variance);
    tlm_optimizer_free(opt);
    tlm_context_free(ctx);
}

/* ---------------------------------------------------------------------- */
/* Memory: nothing allocated after creation; every allocation failure is
 * clean. */

static void training_calls_allocate_nothing(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlm_context_params cp;
    counting_context_params(&cp, &counter);
    for (int kind = 0; kind < 2; kind++) {
        example ex;
        example_create(&ex, &cp);
        tlm_optimizer_params o;
        tlm_optimizer_params_init_for(&o, kind);
        o.momentum = kind == TLM_OPTIMIZER_SGD ? 0.9f : 0.0f;
        tlm_optimizer *opt = NULL;
        assert_int_equal(tlm_optimizer_create(&opt, ex.params, N_PARAMS, &o), TLM_OK);
        size_t size = 0;
        assert_int_equal(tlm_optimizer_state_size(opt, &size), TLM_OK);
        unsigned char *buffer = malloc(size);
        assert_non_null(buffer);
        const uint64_t calls = counter.calls;
        tlm_schedule_params schedule;
        tlm_schedule_params_init(&schedule);
        schedule.kind = TLM_SCHEDULE_COSINE;
        schedule.warmup_steps = 2;
        schedule.decay_end_step = 5;
        for (int s = 0; s < 5; s++) {
            set_gradients(&ex, s);
            double norm = 0;
            assert_int_equal(tlm_clip_grad_norm(ex.params, N_PARAMS, 0.5f, &norm), TLM_OK);
            float lr = 0;
            assert_int_equal(tlm_schedule_lr(&schedule, s, &lr), TLM_OK);
            assert_int_equal(tlm_optimizer_step(opt, lr), TLM_OK);
            assert_int_equal(tlm_optimizer_save_state(opt, buffer, size), TLM_OK);
            assert_int_equal(tlm_optimizer_load_state(opt, buffer, size), TLM_OK);
        }
        tlm_tensor_grad_data_f32(ex.params[0])[0] = NAN;
        assert_int_equal(tlm_optimizer_step(opt, 0.1f), TLM_E_NONFINITE);
        assert_int_equal(counter.calls, calls);
        free(buffer);
        tlm_optimizer_free(opt);
        tlm_context_free(ex.ctx);
        assert_int_equal(counter.live_bytes, 0);
    }
    assert_int_equal(counter.bad_free_sizes, 0);
    assert_int_equal(counter.misaligned, 0);
}

static void allocation_failures_are_clean(void **state) {
    (void)state;
    for (int kind = 0; kind < 2; kind++) {
        int created = 0;
        for (int64_t n = 1; n < 1000 && !created; n++) {
            /* The context and parameters get their memory first; then
             * the n-th allocation of tlm_optimizer_create fails. */
            counting_allocator counter = {0};
            tlm_context_params cp;
            counting_context_params(&cp, &counter);
            example ex;
            example_create(&ex, &cp);
            counter.fail_at = (int64_t)counter.calls + n;
            tlm_optimizer_params o;
            tlm_optimizer_params_init_for(&o, kind);
            tlm_optimizer *opt = (tlm_optimizer *)&counter;
            int status = tlm_optimizer_create(&opt, ex.params, N_PARAMS, &o);
            if (status == TLM_OK) {
                created = 1;
                set_gradients(&ex, 0);
                assert_int_equal(tlm_optimizer_step(opt, 0.01f), TLM_OK);
                size_t size = 0;
                assert_int_equal(tlm_optimizer_state_size(opt, &size), TLM_OK);
                unsigned char *buffer = malloc(size);
                assert_non_null(buffer);
                assert_int_equal(tlm_optimizer_save_state(opt, buffer, size), TLM_OK);
                assert_int_equal(tlm_optimizer_load_state(opt, buffer, size), TLM_OK);
                free(buffer);
                printf("kind %d: created after %lld failed allocations\n", kind,
                       (long long)(n - 1));
            } else {
                assert_int_equal(status, TLM_E_NOMEM);
                assert_null(opt);
                assert_non_null(strstr(tlm_last_error(), "tlm_optimizer_create"));
            }
            tlm_optimizer_free(opt);
            tlm_context_free(ex.ctx);
            assert_int_equal(counter.live_bytes, 0);
            assert_int_equal(counter.bad_free_sizes, 0);
        }
        assert_true(created);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(adamw_matches_the_equations),
        cmocka_unit_test(sgd_matches_the_equations),
        cmocka_unit_test(weight_decay_defaults_to_matrices),
        cmocka_unit_test(clipping_by_global_norm),
        cmocka_unit_test(nonfinite_gradient_changes_nothing),
        cmocka_unit_test(resume_is_bit_exact),
        cmocka_unit_test(malformed_states_are_rejected),
        cmocka_unit_test(accumulation_matches_one_large_batch),
        cmocka_unit_test(adamw_trains_a_small_model),
        cmocka_unit_test(training_calls_allocate_nothing),
        cmocka_unit_test(allocation_failures_are_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
