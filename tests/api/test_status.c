/* Statuses: pinned values, names and texts from one table, and the
 * per-thread message of the last failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <pthread.h>

#include "tlm.h"

/* The pinned values: changing one breaks every program compiled against an
 * older tlm.h, so this list may only grow. */
static void values_are_pinned(void **state) {
    (void)state;
    assert_int_equal(TLM_OK, 0);
    assert_int_equal(TLM_E_INVALID, -1);
    assert_int_equal(TLM_E_NOMEM, -2);
    assert_int_equal(TLM_E_SHAPE, -3);
    assert_int_equal(TLM_E_RANGE, -4);
    assert_int_equal(TLM_E_OVERFLOW, -5);
    assert_int_equal(TLM_E_IO, -6);
    assert_int_equal(TLM_E_FORMAT, -7);
    assert_int_equal(TLM_E_VERSION, -8);
    assert_int_equal(TLM_E_STATE, -9);
    assert_int_equal(TLM_E_UNSUPPORTED, -10);
    assert_int_equal(TLM_E_NONFINITE, -11);
    assert_int_equal(TLM_E_CANCELLED, -12);
    assert_int_equal(TLM_E_THREAD, -13);
    assert_int_equal(TLM_E_INTERNAL, -14);
}

#define COUNT_STATUS(name, value, text) +1
static const int status_count = 0 TLM_STATUS_TABLE(COUNT_STATUS);

static void every_status_has_a_distinct_name_and_text(void **state) {
    (void)state;
    /* Values are 0, -1, ..., -(count-1), without gaps. */
    for (int i = 0; i < status_count; i++) {
        int status = -i;
        const char *name = tlm_status_name(status);
        const char *text = tlm_strerror(status);
        assert_non_null(name);
        assert_non_null(text);
        assert_true(strncmp(name, "TLM_", 4) == 0);
        assert_string_not_equal(name, "TLM_E_UNKNOWN");
        assert_string_not_equal(text, "unknown status");
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(name, tlm_status_name(-j));
            assert_string_not_equal(text, tlm_strerror(-j));
        }
    }
    assert_string_equal(tlm_status_name(TLM_E_NOMEM), "TLM_E_NOMEM");
    assert_string_equal(tlm_status_name(TLM_OK), "TLM_OK");
    assert_string_equal(tlm_strerror(TLM_E_NOMEM), "out of memory");
}

static void unknown_statuses_have_fallback_texts(void **state) {
    (void)state;
    const int unknown[] = {1, 42, -status_count, -1000, INT32_MIN, INT32_MAX};
    for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; i++) {
        assert_string_equal(tlm_strerror(unknown[i]), "unknown status");
        assert_string_equal(tlm_status_name(unknown[i]), "TLM_E_UNKNOWN");
    }
}

static void *fail_in_thread(void *arg) {
    (void)arg;
    /* A NULL out-pointer is a failure with a message on this thread. */
    int status = tlm_context_create(NULL, NULL);
    return (void *)(intptr_t)status;
}

static void last_error_is_per_thread(void **state) {
    (void)state;
    tlm_context_params params;
    tlm_context_params_init(&params);
    params.n_threads = -5;
    tlm_context *ctx = (tlm_context *)&params; /* must be overwritten */
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_E_INVALID);
    assert_null(ctx);
    const char *main_message = tlm_last_error();
    assert_non_null(strstr(main_message, "tlm_context_create"));
    assert_non_null(strstr(main_message, "n_threads -5"));

    pthread_t thread;
    void *result = NULL;
    assert_int_equal(pthread_create(&thread, NULL, fail_in_thread, NULL), 0);
    assert_int_equal(pthread_join(thread, &result), 0);
    assert_int_equal((int)(intptr_t)result, TLM_E_INVALID);
    /* The other thread's failure did not replace this thread's message. */
    assert_non_null(strstr(tlm_last_error(), "n_threads -5"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(values_are_pinned),
        cmocka_unit_test(every_status_has_a_distinct_name_and_text),
        cmocka_unit_test(unknown_statuses_have_fallback_texts),
        cmocka_unit_test(last_error_is_per_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
