#include "context.h"

#include <string.h>

#include "cpu.h"
#include "error.h"
#include "params.h"

/* Upper bound on n_threads: far above any machine, low enough that a
 * mistyped value is caught rather than spawning thousands of threads. */
#define TLMI_MAX_THREADS 1024

TLM_API int tlm_context_params_init(tlm_context_params *params) {
    if (params == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_context_params_init: params is NULL");
    memset(params, 0, sizeof *params);
    params->struct_size = sizeof *params;
    params->log_level = TLM_LOG_WARN;
    params->n_threads = 0;
    return TLM_OK;
}

TLM_API int tlm_context_create(tlm_context **out,
                               const tlm_context_params *given) {
    if (out == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_context_create: out is NULL");
    *out = NULL;

    tlm_context_params params;
    tlm_context_params_init(&params);
    int status = tlmi_params_merge(NULL, "tlm_context_create: params",
                                   &params, sizeof params, given);
    if (status != TLM_OK)
        return status;

    if ((params.alloc_fn == NULL) != (params.free_fn == NULL))
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_context_create: params.alloc_fn and "
                                "params.free_fn must both be set or both be "
                                "NULL");
    if (params.log_level < TLM_LOG_NONE || params.log_level > TLM_LOG_DEBUG)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_context_create: params.log_level %d is "
                                "not a tlm_log_level (0..4)",
                                (int)params.log_level);
    if (params.n_threads < 0 || params.n_threads > TLMI_MAX_THREADS)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_context_create: params.n_threads %d is "
                                "outside 0..%d (0 means one per core)",
                                (int)params.n_threads, TLMI_MAX_THREADS);

    tlmi_host host;
    tlmi_host_init_default(&host);
    if (params.alloc_fn != NULL) {
        host.alloc_fn = params.alloc_fn;
        host.free_fn = params.free_fn;
        host.alloc_user = params.alloc_user;
    }
    host.log_fn = params.log_fn;
    host.log_user = params.log_user;
    host.log_level = params.log_level;

    tlm_context *ctx = tlmi_host_alloc(&host, sizeof *ctx, 64);
    if (ctx == NULL)
        return tlmi_fail_thread(TLM_E_NOMEM,
                                "tlm_context_create: allocating the context "
                                "(%zu bytes) failed",
                                sizeof *ctx);
    memset(ctx, 0, sizeof *ctx);
    ctx->host = host;
    ctx->n_threads = params.n_threads > 0 ? params.n_threads
                                          : tlmi_cpu_core_count();
    tlmi_host_log(&ctx->host, TLM_LOG_DEBUG,
                  "tlm_context_create: %d compute thread(s)", ctx->n_threads);
    *out = ctx;
    return TLM_OK;
}

TLM_API void tlm_context_free(tlm_context *ctx) {
    if (ctx == NULL)
        return;
    tlmi_host host = ctx->host;
    tlmi_host_free(&host, ctx, sizeof *ctx);
}

TLM_API const char *tlm_context_last_error(const tlm_context *ctx) {
    if (ctx == NULL)
        return "tlm_context_last_error: ctx is NULL";
    return ctx->host.last_error;
}

TLM_API int tlm_context_thread_count(const tlm_context *ctx) {
    if (ctx == NULL)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_context_thread_count: ctx is NULL");
    return ctx->n_threads;
}
