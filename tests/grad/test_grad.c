/*
 * Suite "grad": every differentiable operation's gradient against finite
 * differences (see grad_check.h for the method and the bound), and a check
 * that no operation of the library is left without a case.
 */
#define TLM_EXPERIMENTAL /* tlm_experimental_set_cpu_mask */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "grad_check.h"
#include "ops/ops.h"

static const grad_case_group *const groups[] = {
    &grad_cases_core,       &grad_cases_shape, &grad_cases_activation,
    &grad_cases_norm,       &grad_cases_sequence, &grad_cases_attention,
};
#define N_GROUPS (sizeof groups / sizeof groups[0])

static void run_group(void **state) {
    const grad_case_group *group = *state;
    int failures = 0;
    /* Attention is checked on the scalar table, the reference that
     * accumulates its forward pass in double: the SIMD kernels' float
     * forward pass adds a few ulp of noise to every output, which the
     * finite differences divide by h (one case measured 1.2e-3 against
     * the bound 1e-3). The kernels suite checks the SIMD kernels against
     * this reference, forward and backward. */
    const int scalar_only = strcmp(group->name, "attention") == 0;
    if (scalar_only)
        assert_int_equal(tlm_experimental_set_cpu_mask(0), TLM_OK);
    for (size_t i = 0; i < group->count; i++) {
        const grad_case *c = &group->cases[i];
        grad_result result;
        int failed = grad_check_run(c, 0x5eed0000u + i, &result);
        double bound = c->tolerance > 0 ? c->tolerance : GRAD_TOLERANCE;
        if (!failed && strcmp(result.result_op, c->op) != 0) {
            failed = 1;
            snprintf(result.message, sizeof result.message,
                     "the case is labelled %s but its result came from %s",
                     c->op, result.result_op);
        }
        printf("grad %-30s %-40s %3lld elements, max error %.2e (bound %.0e)%s\n",
               c->op, c->label, (long long)result.checked, result.max_error,
               bound, failed ? " FAILED" : "");
        if (failed) {
            printf("    %s\n", result.message);
            failures++;
        }
    }
    if (scalar_only)
        assert_int_equal(
            tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL),
            TLM_OK);
    assert_int_equal(failures, 0);
}

#define OP_NAME(name) #name,
static const char *const all_ops[] = {TLMI_OP_LIST(OP_NAME)};

/* Every operation the library has (TLMI_OP_LIST) has at least two gradient
 * cases, so a new op cannot ship without its check. */
static void every_op_has_cases(void **state) {
    (void)state;
    int missing = 0;
    for (size_t op = 0; op < sizeof all_ops / sizeof all_ops[0]; op++) {
        int count = 0;
        for (size_t g = 0; g < N_GROUPS; g++)
            for (size_t i = 0; i < groups[g]->count; i++)
                count += strcmp(groups[g]->cases[i].op, all_ops[op]) == 0;
        printf("grad coverage %-30s %d case(s)\n", all_ops[op], count);
        if (count < 2) {
            printf("    %s needs at least two gradient cases\n", all_ops[op]);
            missing++;
        }
    }
    assert_int_equal(missing, 0);
}

int main(void) {
    struct CMUnitTest tests[N_GROUPS + 1];
    for (size_t g = 0; g < N_GROUPS; g++) {
        struct CMUnitTest t = {groups[g]->name, run_group, NULL, NULL,
                               (void *)groups[g]};
        tests[g] = t;
    }
    struct CMUnitTest coverage = cmocka_unit_test(every_op_has_cases);
    tests[N_GROUPS] = coverage;
    return _cmocka_run_group_tests("grad", tests, N_GROUPS + 1, NULL, NULL);
}
