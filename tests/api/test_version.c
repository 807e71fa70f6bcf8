/* The version macros and the run-time version calls agree. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static void version_number_matches_header(void **state) {
    (void)state;
    assert_int_equal(tlm_version_number(), TLM_VERSION_NUMBER);
    assert_int_equal(TLM_VERSION_NUMBER, TLM_VERSION_MAJOR * 10000 +
                                             TLM_VERSION_MINOR * 100 +
                                             TLM_VERSION_PATCH);
}

static void version_string_matches_parts(void **state) {
    (void)state;
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", TLM_VERSION_MAJOR,
             TLM_VERSION_MINOR, TLM_VERSION_PATCH);
    assert_string_equal(TLM_VERSION_STRING, expected);
    /* An MPI build (-Dmpi=enabled) says so; a default build adds nothing. */
    if (tlm_comm_available())
        strcat(expected, "+mpi");
    assert_string_equal(tlm_version_string(), expected);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(version_number_matches_header),
        cmocka_unit_test(version_string_matches_parts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
