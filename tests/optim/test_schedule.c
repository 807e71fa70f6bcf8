/*
 * Suite "optim": learning-rate schedules at chosen steps (0, the last
 * warm-up step, the end of warm-up, the middle and end of the decay, and
 * beyond), against the formulas evaluated here in double. Tolerance: the
 * float result within 1e-6 relative (plus 1e-12 absolute for zeros) of
 * the double value.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <cmocka.h>

#include "tlm.h"

static const double pi = 3.14159265358979323846;

static void expect_lr(const tlm_schedule_params *p, int64_t step, double want) {
    float got = -1;
    assert_int_equal(tlm_schedule_lr(p, step, &got), TLM_OK);
    if (!(fabs((double)got - want) <= 1e-6 * fabs(want) + 1e-12))
        fail_msg("step %lld: lr %.9g, expected %.9g", (long long)step,
                 (double)got, want);
}

static void constant_with_and_without_warmup(void **state) {
    (void)state;
    tlm_schedule_params p;
    assert_int_equal(tlm_schedule_params_init(&p), TLM_OK);
    assert_int_equal(p.kind, TLM_SCHEDULE_CONSTANT);
    for (int64_t s = 0; s < 5; s++)
        expect_lr(&p, s, (double)1e-3f);
    expect_lr(&p, INT64_MAX, (double)1e-3f);
    p.lr = 2.0f;
    p.warmup_steps = 4;
    expect_lr(&p, 0, 0.0);
    expect_lr(&p, 1, 0.5);
    expect_lr(&p, 3, 1.5);
    expect_lr(&p, 4, 2.0);
    expect_lr(&p, 1000, 2.0);
    p.warmup_start_factor = 0.25f;
    expect_lr(&p, 0, 0.5);
    expect_lr(&p, 2, 2.0 * (0.25 + 0.75 * 2 / 4));
    expect_lr(&p, 4, 2.0);
}

static void warmup_then_cosine(void **state) {
    (void)state;
    tlm_schedule_params p;
    tlm_schedule_params_init(&p);
    p.kind = TLM_SCHEDULE_COSINE;
    p.lr = 1.0f;
    p.min_lr = 0.1f;
    p.warmup_steps = 10;
    p.decay_end_step = 110;
    const double peak = 1.0, low = (double)0.1f;
    expect_lr(&p, 0, 0.0);                    /* warm-up from 0 */
    expect_lr(&p, 1, 0.1);
    expect_lr(&p, 9, 0.9);                    /* the last warm-up step */
    expect_lr(&p, 10, peak);                  /* the peak, cosine starts */
    expect_lr(&p, 35, low + 0.5 * (1 + cos(pi * 0.25)) * (peak - low));
    expect_lr(&p, 60, low + 0.5 * (peak - low)); /* the middle */
    expect_lr(&p, 109, low + 0.5 * (1 + cos(pi * 0.99)) * (peak - low));
    expect_lr(&p, 110, low);                  /* the end */
    expect_lr(&p, 111, low);                  /* beyond */
    expect_lr(&p, 1000000, low);
    /* Monotone: up during warm-up, down after. */
    float previous = -1;
    for (int64_t s = 0; s <= 120; s++) {
        float lr = 0;
        assert_int_equal(tlm_schedule_lr(&p, s, &lr), TLM_OK);
        if (s <= 10)
            assert_true(lr > previous);
        else
            assert_true(lr <= previous);
        previous = lr;
    }
    /* No warm-up: the cosine starts at step 0. */
    p.warmup_steps = 0;
    p.decay_end_step = 4;
    expect_lr(&p, 0, peak);
    expect_lr(&p, 2, low + 0.5 * (peak - low));
    expect_lr(&p, 4, low);
}

/* nanoGPT's GPT-2 124M settings (train.py): learning_rate 6e-4,
 * min_lr 6e-5, warmup_iters 2000, lr_decay_iters 600000. */
static void nanogpt_settings(void **state) {
    (void)state;
    tlm_schedule_params p;
    tlm_schedule_params_init(&p);
    p.kind = TLM_SCHEDULE_COSINE;
    p.lr = 6e-4f;
    p.min_lr = 6e-5f;
    p.warmup_steps = 2000;
    p.decay_end_step = 600000;
    const double peak = (double)6e-4f, low = (double)6e-5f;
    expect_lr(&p, 1000, peak * 0.5);
    expect_lr(&p, 2000, peak);
    expect_lr(&p, 301000, low + 0.5 * (peak - low));
    expect_lr(&p, 600000, low);
    const int64_t steps[] = {0, 1999, 2000, 301000, 600000, 700000};
    printf("step     lr\n");
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        float lr = 0;
        assert_int_equal(tlm_schedule_lr(&p, steps[i], &lr), TLM_OK);
        printf("%-8lld %.6g\n", (long long)steps[i], (double)lr);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(constant_with_and_without_warmup),
        cmocka_unit_test(warmup_then_cosine),
        cmocka_unit_test(nanogpt_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
