/* Bad arguments of the experimental dispatch calls (outside the ABI
 * promise, but exported, so they are checked like the rest). */
#define TLM_EXPERIMENTAL

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void unknown_mask_bits_are_refused(void **state) {
    (void)state;
    const char *before = tlm_experimental_active_isa();
    assert_int_equal(tlm_experimental_set_cpu_mask(1u << 31), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_experimental_set_cpu_mask"));
    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_CPU_AVX2 | (1u << 12)),
                     TLM_E_INVALID);
    assert_string_equal(tlm_experimental_active_isa(), before);
}

static void any_feature_mask_is_accepted(void **state) {
    (void)state;
    /* Features this CPU lacks are allowed in the mask, never used. */
    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_CPU_NEON | TLM_CPU_AVX2),
                     TLM_OK);
    assert_int_equal(tlm_experimental_set_cpu_mask(0), TLM_OK);
    assert_string_equal(tlm_experimental_active_isa(), "scalar");
    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL),
                     TLM_OK);
    assert_non_null(tlm_experimental_active_isa());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_mask_bits_are_refused),
        cmocka_unit_test(any_feature_mask_is_accepted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
