/* The context handle: settings, allocator and log hooks, per-handle error
 * messages, and growable settings structs from older and newer callers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "base/error.h"
#include "base/host.h"
#include "counting_allocator.h"
#include "tlm.h"

static void defaults_work_without_params(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    assert_non_null(ctx);
    assert_true(tlm_context_thread_count(ctx) >= 1);
    assert_string_equal(tlm_context_last_error(ctx), "");
    tlm_context_free(ctx);
}

static void params_init_sets_size_and_defaults(void **state) {
    (void)state;
    tlm_context_params params;
    memset(&params, 0xa5, sizeof params);
    assert_int_equal(tlm_context_params_init(&params), TLM_OK);
    assert_int_equal(params.struct_size, sizeof params);
    assert_null(params.alloc_fn);
    assert_null(params.free_fn);
    assert_null(params.log_fn);
    assert_int_equal(params.log_level, TLM_LOG_WARN);
    assert_int_equal(params.n_threads, 0);
}

static void allocator_hook_gets_every_allocation(void **state) {
    (void)state;
    counting_allocator counter = {0};
    tlm_context_params params;
    counting_context_params(&params, &counter);
    params.n_threads = 3;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    assert_true(counter.allocations >= 1);
    assert_int_equal(tlm_context_thread_count(ctx), 3);
    tlm_context_free(ctx);
    assert_int_equal(counter.allocations, counter.frees);
    assert_int_equal(counter.live_bytes, 0);
    assert_int_equal(counter.bad_free_sizes, 0);
    assert_int_equal(counter.misaligned, 0);
}

static void failing_allocator_gives_nomem(void **state) {
    (void)state;
    counting_allocator counter = {.fail_at = 1};
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_E_NOMEM);
    assert_null(ctx);
    assert_non_null(strstr(tlm_last_error(), "tlm_context_create"));
    assert_int_equal(counter.live_bytes, 0);
}

typedef struct log_record {
    int calls;
    int last_level;
    char last_message[TLMI_MESSAGE_MAX];
} log_record;

static void record_log(void *user, int level, const char *message) {
    log_record *record = user;
    record->calls++;
    record->last_level = level;
    snprintf(record->last_message, sizeof record->last_message, "%s",
             message);
}

static void failures_reach_handle_thread_and_log(void **state) {
    (void)state;
    log_record record = {0};
    tlm_context_params params;
    tlm_context_params_init(&params);
    params.log_fn = record_log;
    params.log_user = &record;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    assert_int_equal(record.calls, 0); /* debug message is below WARN */

    /* Every handle's failures go through tlmi_fail on its host. */
    int status = tlmi_fail(&ctx->host, TLM_E_SHAPE, "op %s: %d != %d", "add",
                           3, 4);
    assert_int_equal(status, TLM_E_SHAPE);
    assert_string_equal(tlm_context_last_error(ctx), "op add: 3 != 4");
    assert_string_equal(tlm_last_error(), "op add: 3 != 4");
    assert_int_equal(record.calls, 1);
    assert_int_equal(record.last_level, TLM_LOG_ERROR);
    assert_string_equal(record.last_message, "op add: 3 != 4");

    /* Messages longer than the buffer are cut, never overflow. */
    char long_text[2 * TLMI_MESSAGE_MAX];
    memset(long_text, 'x', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    tlmi_fail(&ctx->host, TLM_E_INVALID, "%s", long_text);
    assert_int_equal(strlen(tlm_context_last_error(ctx)),
                     TLMI_MESSAGE_MAX - 1);
    tlm_context_free(ctx);
}

static int check_argument(const void *arg) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_example", arg);
    return TLM_OK;
}

typedef struct example_handle {
    int value;
    tlmi_host host;
} example_handle;

/* The error idiom's tools (lib/base/error.h, lib/base/host.h) keep today's texts. */
static void error_idiom_helpers(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);

    assert_int_equal(check_argument(NULL), TLM_E_INVALID);
    assert_string_equal(tlm_last_error(), "tlm_example: arg is NULL");
    assert_int_equal(check_argument(ctx), TLM_OK);

    /* Forwarding: "<prefix>: <callee's message>" on the caller's host. */
    tlmi_fail_thread(TLM_E_IO, "reading 'x': no such file");
    int status = tlmi_fail_forward(&ctx->host, TLM_E_IO, "tlm_example: '%s'",
                                   "x");
    assert_int_equal(status, TLM_E_IO);
    assert_string_equal(tlm_context_last_error(ctx),
                        "tlm_example: 'x': reading 'x': no such file");
    assert_string_equal(tlm_last_error(), tlm_context_last_error(ctx));

    /* The callee's message may be the caller's own last error. */
    tlmi_fail_forward_from(&ctx->host, TLM_E_IO, ctx->host.last_error, "outer");
    assert_string_equal(tlm_context_last_error(ctx),
                        "outer: tlm_example: 'x': reading 'x': no such file");

    /* Long texts are cut exactly as one snprintf of the whole would. */
    char prefix[400], callee[400], whole[2 * TLMI_MESSAGE_MAX];
    memset(prefix, 'p', sizeof prefix - 1);
    prefix[sizeof prefix - 1] = '\0';
    memset(callee, 'c', sizeof callee - 1);
    callee[sizeof callee - 1] = '\0';
    snprintf(whole, sizeof whole, "%s: %s", prefix, callee);
    whole[TLMI_MESSAGE_MAX - 1] = '\0';
    tlmi_fail_thread(TLM_E_FORMAT, "%s", callee);
    tlmi_fail_forward(&ctx->host, TLM_E_FORMAT, "%s", prefix);
    assert_string_equal(tlm_context_last_error(ctx), whole);

    /* A new handle: zeroed, the parent's hooks, no error recorded. */
    example_handle *handle = TLMI_HANDLE_ALLOC(&ctx->host, example_handle);
    assert_non_null(handle);
    assert_int_equal(handle->value, 0);
    assert_ptr_equal(handle->host.alloc_fn, ctx->host.alloc_fn);
    assert_int_equal(handle->host.log_level, ctx->host.log_level);
    assert_string_equal(handle->host.last_error, "");
    tlmi_host_free(&ctx->host, handle, sizeof *handle);
    tlm_context_free(ctx);
}

static void log_threshold_filters_levels(void **state) {
    (void)state;
    log_record record = {0};
    tlm_context_params params;
    tlm_context_params_init(&params);
    params.log_fn = record_log;
    params.log_user = &record;
    params.log_level = TLM_LOG_DEBUG;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    assert_int_equal(record.calls, 1); /* the thread count, at DEBUG */
    assert_int_equal(record.last_level, TLM_LOG_DEBUG);
    tlm_context_free(ctx);

    record.calls = 0;
    params.log_level = TLM_LOG_NONE;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_OK);
    tlmi_fail(&ctx->host, TLM_E_INVALID, "quiet");
    assert_int_equal(record.calls, 0);
    assert_string_equal(tlm_context_last_error(ctx), "quiet");
    tlm_context_free(ctx);
}

/* A caller compiled against an older tlm.h passes a shorter struct: the
 * fields it does not know keep their defaults. */
static void older_caller_struct_keeps_defaults(void **state) {
    (void)state;
    struct {
        tlm_context_params params;
        unsigned char guard[16];
    } buffer;
    memset(&buffer, 0x7f, sizeof buffer); /* garbage past the old size */
    tlm_context_params_init(&buffer.params);
    buffer.params.struct_size = offsetof(tlm_context_params, log_level);
    buffer.params.n_threads = 0x7f7f7f7f; /* beyond the old size: ignored */
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &buffer.params), TLM_OK);
    assert_true(tlm_context_thread_count(ctx) >= 1);
    assert_true(tlm_context_thread_count(ctx) < 0x7f7f7f7f);
    tlm_context_free(ctx);
}

/* A caller compiled against a newer tlm.h passes a longer struct: accepted
 * when the unknown tail is zero, refused when it sets something. */
static void newer_caller_struct_checked(void **state) {
    (void)state;
    struct {
        tlm_context_params params;
        uint64_t newer_field;
    } newer;
    memset(&newer, 0, sizeof newer);
    tlm_context_params_init(&newer.params);
    newer.params.struct_size = sizeof newer;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, &newer.params), TLM_OK);
    tlm_context_free(ctx);

    newer.newer_field = 1;
    assert_int_equal(tlm_context_create(&ctx, &newer.params),
                     TLM_E_UNSUPPORTED);
    assert_null(ctx);
    assert_non_null(strstr(tlm_last_error(), "struct_size"));
}

static void invalid_settings_are_rejected(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    tlm_context_params params;

    tlm_context_params_init(&params);
    params.struct_size = 0;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "struct_size"));

    tlm_context_params_init(&params);
    params.alloc_fn = counting_alloc; /* without free_fn */
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "free_fn"));

    tlm_context_params_init(&params);
    params.log_level = 9;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "log_level"));

    tlm_context_params_init(&params);
    params.n_threads = 100000;
    assert_int_equal(tlm_context_create(&ctx, &params), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "n_threads"));
    assert_null(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_work_without_params),
        cmocka_unit_test(params_init_sets_size_and_defaults),
        cmocka_unit_test(allocator_hook_gets_every_allocation),
        cmocka_unit_test(failing_allocator_gives_nomem),
        cmocka_unit_test(failures_reach_handle_thread_and_log),
        cmocka_unit_test(error_idiom_helpers),
        cmocka_unit_test(log_threshold_filters_levels),
        cmocka_unit_test(older_caller_struct_keeps_defaults),
        cmocka_unit_test(newer_caller_struct_checked),
        cmocka_unit_test(invalid_settings_are_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
