#include "grad_check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/ops.h" /* TLMI_OP_LIST; struct tlmi_op (autodiff/graph.h) names the op that built a result */

/* The harness's own generator, independent of tlm's. */
static uint64_t next_random(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *state) {
    return (double)(next_random(state) >> 11) * (1.0 / 9007199254740992.0);
}

static double normal(uint64_t *state) {
    double u1 = 1.0 - uniform01(state), u2 = uniform01(state);
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

static void fill_input(const grad_input *spec, tlm_tensor *tensor,
                       uint64_t *state) {
    int64_t n = tlm_tensor_numel(tensor);
    if (spec->dtype == TLM_DTYPE_I32) {
        int32_t *ids = tlm_tensor_data_i32(tensor);
        int64_t span = (int64_t)spec->hi - (int64_t)spec->lo + 1;
        for (int64_t i = 0; i < n; i++)
            ids[i] = (int32_t)((int64_t)spec->lo +
                               (int64_t)(next_random(state) % (uint64_t)span));
        return;
    }
    float *x = tlm_tensor_data_f32(tensor);
    int64_t row = spec->shape[spec->ndim - 1];
    for (int64_t i = 0; i < n; i++) {
        switch (spec->init) {
        case INIT_UNIFORM:
            x[i] = (float)((double)spec->lo +
                           (double)(spec->hi - spec->lo) * uniform01(state));
            break;
        case INIT_AWAY: {
            double v = normal(state);
            if (fabs(v) < 0.1)
                v = v < 0 ? v - 0.1 : v + 0.1;
            x[i] = (float)v;
            break;
        }
        case INIT_MASK:
            x[i] = uniform01(state) < 0.7 ? 1.0f : 0.0f;
            if (i % row == row - 1) /* keep one visible entry per row */
                x[i - (int64_t)(next_random(state) % (uint64_t)row)] = 1.0f;
            break;
        default:
            x[i] = (float)normal(state);
        }
    }
}

/* L = sum(out * R) in double, from the current forward values. */
static double loss_value(tlm_tensor *out, const float *weights) {
    const float *y = tlm_tensor_data_f32(out);
    int64_t n = tlm_tensor_numel(out);
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++)
        sum += (double)y[i] * (double)weights[i];
    return sum;
}

/* (L(x + h) - L(x - h)) / 2h at element `at`, with the perturbed values
 * rounded to float as the graph sees them. Restores x[at]. */
static int central_difference(tlm_context *ctx, tlm_tensor *out,
                              const float *weights, float *x, int64_t at,
                              double h, uint64_t forward_seed,
                              double *slope) {
    const float x0 = x[at];
    const float plus = (float)((double)x0 + h), minus = (float)((double)x0 - h);
    x[at] = plus;
    tlm_context_set_seed(ctx, forward_seed);
    int status = tlm_context_forward(ctx);
    double loss_plus = loss_value(out, weights);
    x[at] = minus;
    tlm_context_set_seed(ctx, forward_seed);
    if (status == TLM_OK)
        status = tlm_context_forward(ctx);
    double loss_minus = loss_value(out, weights);
    x[at] = x0;
    *slope = (loss_plus - loss_minus) / ((double)plus - (double)minus);
    return status != TLM_OK;
}

#define FAIL(...)                                                          \
    do {                                                                   \
        snprintf(result->message, sizeof result->message, __VA_ARGS__);    \
        goto done;                                                         \
    } while (0)

int grad_check_run(const grad_case *test_case, uint64_t seed,
                   grad_result *result) {
    memset(result, 0, sizeof *result);
    const double tolerance =
        test_case->tolerance > 0 ? test_case->tolerance : GRAD_TOLERANCE;
    const uint64_t forward_seed = 1234;
    uint64_t state = seed;
    int passed = 0;
    tlm_context *ctx = NULL;
    tlm_tensor *in[GRAD_MAX_INPUTS] = {0};
    float *analytic = NULL;
    if (tlm_context_create(&ctx, NULL) != TLM_OK)
        FAIL("context: %s", tlm_last_error());
    if (test_case->eval_mode)
        tlm_context_set_training(ctx, 0);
    tlm_context_set_seed(ctx, forward_seed);

    for (int32_t i = 0; i < test_case->n_inputs; i++) {
        const grad_input *spec = &test_case->inputs[i];
        if (tlm_tensor_create(&in[i], ctx, spec->dtype, spec->ndim,
                              spec->shape) != TLM_OK)
            FAIL("input %d: %s", (int)i, tlm_last_error());
        fill_input(spec, in[i], &state);
        if (spec->check && tlm_tensor_set_requires_grad(in[i], 1) != TLM_OK)
            FAIL("input %d: %s", (int)i, tlm_last_error());
    }

    tlm_tensor *out = NULL;
    if (test_case->build(&out, in) != TLM_OK)
        FAIL("build: %s", tlm_last_error());
    result->result_op = out->op != NULL ? out->op->name : "(leaf)";

    int64_t n_out = tlm_tensor_numel(out);
    tlm_tensor *weights = NULL, *weighted = NULL, *loss = NULL;
    int64_t weights_shape[TLM_MAX_DIMS];
    int32_t out_ndim = tlm_tensor_shape(out, weights_shape, TLM_MAX_DIMS);
    if (tlm_tensor_create(&weights, ctx, TLM_DTYPE_F32, out_ndim,
                          weights_shape) != TLM_OK)
        FAIL("weights: %s", tlm_last_error());
    float *r = tlm_tensor_data_f32(weights);
    for (int64_t i = 0; i < n_out; i++)
        r[i] = (float)normal(&state);
    if (tlm_mul(&weighted, out, weights) != TLM_OK ||
        tlm_sum(&loss, weighted) != TLM_OK)
        FAIL("loss: %s", tlm_last_error());
    if (tlm_backward(loss) != TLM_OK)
        FAIL("backward: %s", tlm_last_error());

    for (int32_t i = 0; i < test_case->n_inputs; i++) {
        if (!test_case->inputs[i].check)
            continue;
        int64_t n = tlm_tensor_numel(in[i]);
        free(analytic);
        analytic = malloc((size_t)n * sizeof *analytic);
        if (analytic == NULL || tlm_tensor_get_grad_f32(in[i], analytic, n) != TLM_OK)
            FAIL("input %d: reading the gradient: %s", (int)i, tlm_last_error());
        int64_t checks = n < GRAD_MAX_CHECKS ? n : GRAD_MAX_CHECKS;
        int64_t index[GRAD_MAX_CHECKS];
        for (int64_t c = 0; c < checks; c++)
            index[c] = n <= GRAD_MAX_CHECKS ? c : (int64_t)(next_random(&state) % (uint64_t)n);
        double square_sum = 0.0;
        for (int64_t c = 0; c < checks; c++)
            square_sum += (double)analytic[index[c]] * (double)analytic[index[c]];
        double floor = 0.1 * sqrt(square_sum / (double)checks);
        if (floor < 1e-6)
            floor = 1e-6;
        float *x = tlm_tensor_data_f32(in[i]);
        for (int64_t c = 0; c < checks; c++) {
            int64_t at = index[c];
            float x0 = x[at];
            double h = GRAD_STEP * (fabs((double)x0) > 1.0 ? fabs((double)x0) : 1.0);
            double slope_h = 0.0, slope_half = 0.0;
            if (central_difference(ctx, out, r, x, at, h, forward_seed, &slope_h) ||
                central_difference(ctx, out, r, x, at, h / 2, forward_seed, &slope_half))
                FAIL("forward: %s", tlm_last_error());
            /* Richardson: the h^2 error terms of the two estimates cancel. */
            double numeric = (4.0 * slope_half - slope_h) / 3.0;
            double a = (double)analytic[at];
            double scale = fabs(a) > fabs(numeric) ? fabs(a) : fabs(numeric);
            if (scale < floor)
                scale = floor;
            double error = fabs(a - numeric) / scale;
            if (error > result->max_error)
                result->max_error = error;
            result->checked++;
            if (!(error <= tolerance))
                FAIL("input %d element %lld: analytic %.7g, numeric %.7g, "
                     "scaled error %.3g > %.1e",
                     (int)i, (long long)at, a, numeric, error, tolerance);
        }
    }
    passed = 1;
done:
    free(analytic);
    tlm_context_free(ctx);
    return passed ? 0 : 1;
}
