/*
 * Suite "api": the growable-array helper of lib/base/grow.h: the doubling
 * policy, copying on growth, overflow and allocation failure leaving the
 * array as it was, and every block returned to the allocator.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/grow.h"
#include "counting_allocator.h"
#include "tlm.h"

static void counting_host(tlmi_host *host, counting_allocator *counter) {
    memset(counter, 0, sizeof *counter);
    tlmi_host_init_default(host);
    host->alloc_fn = counting_alloc;
    host->free_fn = counting_free;
    host->alloc_user = counter;
}

static void capacities_double(void **state) {
    (void)state;
    assert_int_equal(tlmi_grow_capacity(0, 0), 0);
    assert_int_equal(tlmi_grow_capacity(0, 1), 16);
    assert_int_equal(tlmi_grow_capacity(0, 17), 32);
    assert_int_equal(tlmi_grow_capacity(5, 6), 16);
    assert_int_equal(tlmi_grow_capacity(16, 16), 16);
    assert_int_equal(tlmi_grow_capacity(16, 17), 32);
    assert_int_equal(tlmi_grow_capacity(64, 1000), 1024);
    /* Doubling would overflow: exactly what is needed. */
    assert_int_equal(tlmi_grow_capacity(SIZE_MAX / 2 + 1, SIZE_MAX), SIZE_MAX);
}

static void growth_keeps_elements(void **state) {
    (void)state;
    tlmi_host host;
    counting_allocator counter;
    counting_host(&host, &counter);
    int32_t *values = NULL;
    size_t capacity = 0;
    for (int32_t i = 0; i < 1000; i++) {
        assert_int_equal(tlmi_grow(&host, &values, &capacity, (size_t)i + 1,
                                   sizeof *values),
                         TLM_OK);
        assert_true(capacity >= (size_t)i + 1);
        values[i] = i * 7;
    }
    assert_int_equal(capacity, 1024);
    for (int32_t i = 0; i < 1000; i++)
        assert_int_equal(values[i], i * 7);
    /* 16, 32, ..., 1024: seven blocks, six of them freed on the way. */
    assert_int_equal(counter.allocations, 7);
    assert_int_equal(counter.frees, 6);
    assert_int_equal(tlmi_resize(&host, &values, &capacity, 10, sizeof *values),
                     TLM_OK);
    assert_int_equal(capacity, 10);
    for (int32_t i = 0; i < 10; i++)
        assert_int_equal(values[i], i * 7);
    tlmi_host_free(&host, values, capacity * sizeof *values);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.misaligned, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
}

static void failures_change_nothing(void **state) {
    (void)state;
    tlmi_host host;
    counting_allocator counter;
    counting_host(&host, &counter);
    double *values = NULL;
    size_t capacity = 0;
    assert_int_equal(tlmi_grow(&host, &values, &capacity, 3, sizeof *values),
                     TLM_OK);
    double *before = values;
    assert_int_equal(tlmi_grow(&host, &values, &capacity, SIZE_MAX / 4,
                               sizeof *values),
                     TLM_E_OVERFLOW);
    assert_ptr_equal(values, before);
    assert_int_equal(capacity, 16);
    counter.fail_at = (int64_t)counter.calls + 1;
    assert_int_equal(tlmi_grow(&host, &values, &capacity, 17, sizeof *values),
                     TLM_E_NOMEM);
    assert_ptr_equal(values, before);
    assert_int_equal(capacity, 16);
    tlmi_host_free(&host, values, capacity * sizeof *values);
    assert_int_equal(counter.live_bytes, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(capacities_double),
        cmocka_unit_test(growth_keeps_elements),
        cmocka_unit_test(failures_change_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
