/*
 * The trainer clips by handing the optimizer the clipping factor
 * (tlmi_optimizer_step's grad_scale) instead of scaling every gradient in
 * place first: the weights and moments must come out bit for bit as with
 * tlm_clip_grad_norm() followed by tlm_optimizer_step(), for AdamW and the
 * SGD forms, on steps where clipping acts and where it does not.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"
#include "train/optim.h"

enum { PARAMS = 3, MAX_ELEMENTS = 64 };

static const int64_t shapes[PARAMS][2] = {{5, 7}, {7, 1}, {3, 3}};

typedef struct side {
    tlm_context *ctx;
    tlm_tensor *params[PARAMS];
    tlm_optimizer *opt;
} side;

static float value(uint32_t *seed, float scale) {
    *seed = *seed * 1664525u + 1013904223u;
    return scale * ((float)(*seed >> 8) / (float)(1u << 23) - 1.0f);
}

static void side_create(side *s, const tlm_optimizer_params *op) {
    memset(s, 0, sizeof *s);
    assert_int_equal(tlm_context_create(&s->ctx, NULL), TLM_OK);
    uint32_t seed = 7;
    for (int i = 0; i < PARAMS; i++) {
        float data[MAX_ELEMENTS];
        const int64_t n = shapes[i][0] * shapes[i][1];
        for (int64_t j = 0; j < n; j++)
            data[j] = value(&seed, 1.0f);
        const int32_t ndim = shapes[i][1] == 1 ? 1 : 2;
        assert_int_equal(tlm_tensor_from_f32(&s->params[i], s->ctx, ndim,
                                             shapes[i], data),
                         TLM_OK);
        assert_int_equal(tlm_tensor_set_requires_grad(s->params[i], 1),
                         TLM_OK);
    }
    assert_int_equal(tlm_optimizer_create(&s->opt, s->params, PARAMS, op),
                     TLM_OK);
}

/* The same gradients on both sides: large at odd steps (clipping acts),
 * small at even ones (it does not). */
static void set_grads(side *s, int step) {
    uint32_t seed = 100u + (uint32_t)step;
    const float scale = step % 2 ? 3.0f : 0.01f;
    for (int i = 0; i < PARAMS; i++) {
        float *g = tlm_tensor_grad_data_f32(s->params[i]);
        assert_non_null(g);
        const int64_t n = tlm_tensor_numel(s->params[i]);
        for (int64_t j = 0; j < n; j++)
            g[j] = value(&seed, scale);
    }
}

static void assert_same(const side *a, const side *b) {
    for (int i = 0; i < PARAMS; i++)
        assert_memory_equal(tlm_tensor_data_f32(a->params[i]),
                            tlm_tensor_data_f32(b->params[i]),
                            (size_t)tlm_tensor_numel(a->params[i]) *
                                sizeof(float));
}

static void check(const tlm_optimizer_params *op) {
    const float max_norm = 0.5f;
    side in_place, folded;
    side_create(&in_place, op);
    side_create(&folded, op);
    for (int step = 0; step < 6; step++) {
        set_grads(&in_place, step);
        set_grads(&folded, step);
        double norm = 0.0;
        assert_int_equal(tlm_clip_grad_norm(in_place.params, PARAMS, max_norm,
                                            &norm),
                         TLM_OK);
        assert_int_equal(tlm_optimizer_step(in_place.opt, 0.01f), TLM_OK);
        const double measured = tlmi_grad_norm(folded.params, PARAMS);
        assert_true(measured == norm);
        const float factor = tlmi_clip_factor(max_norm, measured);
        assert_true(step % 2 ? factor < 1.0f : factor == 1.0f);
        assert_int_equal(tlmi_optimizer_step(folded.opt, 0.01f, 1, factor),
                         TLM_OK);
        assert_same(&in_place, &folded);
    }
    side *sides[2] = {&in_place, &folded};
    for (int s = 0; s < 2; s++) {
        tlm_optimizer_free(sides[s]->opt);
        tlm_context_free(sides[s]->ctx);
    }
}

static void clipping_folded_into_the_step(void **state) {
    (void)state;
    tlm_optimizer_params op;
    assert_int_equal(tlm_optimizer_params_init(&op),
                     TLM_OK);
    op.weight_decay = 0.1f;
    check(&op);
    assert_int_equal(tlm_optimizer_params_init_for(&op, TLM_OPTIMIZER_SGD),
                     TLM_OK);
    op.weight_decay = 0.1f;
    check(&op);
    op.momentum = 0.9f;
    check(&op);
    op.nesterov = 1;
    check(&op);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(clipping_folded_into_the_step),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
