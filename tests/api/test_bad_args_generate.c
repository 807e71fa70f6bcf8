/* Generation and scoring called with NULL handles. (tests/sampler/
 * test_generate.c covers bad values with a real model.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void assert_message_names(const char *function) {
    if (strstr(tlm_last_error(), function) == NULL)
        fail_msg("message '%s' does not name %s", tlm_last_error(), function);
}

static void generation_calls_reject_null(void **state) {
    (void)state;
    double lp = 1;
    int64_t n = 1;
    int32_t produced = 5;
    assert_int_equal(tlm_generate_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_generate_params_init");
    assert_int_equal(tlm_generate(NULL, NULL, NULL, "a", 1, NULL, &produced), TLM_E_INVALID);
    assert_message_names("tlm_generate");
    assert_int_equal(produced, 0);
    assert_int_equal(tlm_score_text(NULL, NULL, "a", 1, &lp, &n), TLM_E_INVALID);
    assert_message_names("tlm_score_text");
    assert_int_equal(tlm_score_continuation(NULL, NULL, "a", 1, "b", 1, &lp), TLM_E_INVALID);
    assert_message_names("tlm_score_continuation");
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(generation_calls_reject_null)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
