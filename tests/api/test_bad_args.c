/*
 * Every public function, called with NULL handles and invalid arguments,
 * returns a status (or a documented fallback) and leaves a message; none
 * crashes. tests/abi/check_exports.sh fails when an exported function is
 * not named in this file, so a new public function needs a case here.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

/* A failing call must say which function failed. */
static void assert_message_names(const char *function) {
    assert_non_null(strstr(tlm_last_error(), function));
}

static void version_calls_take_no_input(void **state) {
    (void)state;
    assert_true(tlm_version_number() > 0);
    assert_non_null(tlm_version_string());
}

static void status_calls_accept_any_int(void **state) {
    (void)state;
    assert_non_null(tlm_strerror(INT32_MIN));
    assert_non_null(tlm_strerror(INT32_MAX));
    assert_non_null(tlm_status_name(INT32_MIN));
    assert_non_null(tlm_status_name(INT32_MAX));
    assert_non_null(tlm_last_error());
}

static void cpu_calls_accept_any_value(void **state) {
    (void)state;
    (void)tlm_cpu_features();
    assert_null(tlm_cpu_feature_name(0));
    assert_null(tlm_cpu_feature_name(UINT32_MAX));
}

static void context_calls_reject_null(void **state) {
    (void)state;
    assert_int_equal(tlm_context_params_init(NULL), TLM_E_INVALID);
    assert_message_names("tlm_context_params_init");

    assert_int_equal(tlm_context_create(NULL, NULL), TLM_E_INVALID);
    assert_message_names("tlm_context_create");

    tlm_context_free(NULL);

    assert_non_null(tlm_context_last_error(NULL));
    assert_non_null(strstr(tlm_context_last_error(NULL), "NULL"));

    assert_int_equal(tlm_context_thread_count(NULL), TLM_E_INVALID);
    assert_message_names("tlm_context_thread_count");
}

static void context_create_rejects_garbage_params(void **state) {
    (void)state;
    tlm_context_params params;
    memset(&params, 0xff, sizeof params); /* never initialised */
    tlm_context *ctx = (tlm_context *)&params;
    /* a struct_size of all one bits is no plausible settings struct */
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_E_INVALID);
    assert_null(ctx);
    assert_message_names("tlm_context_create");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_calls_take_no_input),
        cmocka_unit_test(status_calls_accept_any_int),
        cmocka_unit_test(cpu_calls_accept_any_value),
        cmocka_unit_test(context_calls_reject_null),
        cmocka_unit_test(context_create_rejects_garbage_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
