/*
 * The memory-limit calls (issue #21) with NULL and invalid arguments:
 * TLM_E_INVALID with a message naming the call, outputs cleared; and the
 * context's memory_limit setting kept from creation to the getter.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void memory_calls_reject_null(void **state) {
    (void)state;
    uint64_t bytes = 5;
    assert_int_equal(tlm_context_memory_limit(NULL, &bytes), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_context_memory_limit: ctx is NULL"));
    bytes = 5;
    assert_int_equal(tlm_context_memory_in_use(NULL, &bytes), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_context_memory_in_use: ctx is NULL"));

    tlm_context_params params;
    tlm_context_params_init(&params);
    params.memory_limit = 123456789;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    assert_int_equal(tlm_context_memory_limit(ctx, NULL), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_context_memory_limit: bytes is NULL"));
    assert_int_equal(tlm_context_memory_in_use(ctx, NULL), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_context_memory_in_use: bytes is NULL"));
    assert_int_equal(tlm_context_memory_limit(ctx, &bytes), TLM_OK);
    assert_true(bytes == 123456789u);
    assert_int_equal(tlm_context_memory_in_use(ctx, &bytes), TLM_OK);
    assert_true(bytes > 0); /* the thread pool at least */
    tlm_context_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(memory_calls_reject_null),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
