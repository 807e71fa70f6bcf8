#include "context.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/cpu.h"
#include "base/error.h"
#include "base/params.h"
#include "graph.h"
#include "kernels/gemm_bf16.h"
#include "tensor.h"

/* Tensor structs come from the host in chunks of this many and are never
 * returned before the context is freed: a handle that outlived its tensor
 * then still points at context memory, where the cleared magic number
 * tells it apart from a live tensor. */
#define STRUCTS_PER_CHUNK 256

struct tlmi_struct_chunk {
    tlmi_struct_chunk *next;
    tlm_tensor tensors[STRUCTS_PER_CHUNK];
};

tlm_tensor *tlmi_context_take_struct(tlm_context *ctx) {
    if (ctx->free_structs == NULL) {
        tlmi_struct_chunk *chunk =
            tlmi_host_alloc(&ctx->host, sizeof *chunk, 64);
        if (chunk == NULL)
            return NULL;
        memset(chunk, 0, sizeof *chunk);
        chunk->next = ctx->structs;
        ctx->structs = chunk;
        for (int i = STRUCTS_PER_CHUNK - 1; i >= 0; i--) {
            chunk->tensors[i].next = ctx->free_structs;
            ctx->free_structs = &chunk->tensors[i];
        }
    }
    tlm_tensor *tensor = ctx->free_structs;
    ctx->free_structs = tensor->next;
    memset(tensor, 0, sizeof *tensor);
    return tensor;
}

void tlmi_context_give_struct(tlm_context *ctx, tlm_tensor *tensor) {
    memset(tensor, 0, sizeof *tensor); /* clears the magic number */
    tensor->next = ctx->free_structs;
    ctx->free_structs = tensor;
}

int tlmi_context_reserve_workspace(tlm_context *ctx, size_t bytes,
                                   const char *what) {
    if (bytes <= ctx->workspace_bytes)
        return TLM_OK;
    void *fresh = tlmi_host_alloc(&ctx->host, bytes, 64);
    if (fresh == NULL)
        return tlmi_fail(&ctx->host, TLM_E_NOMEM,
                         "%s: allocating %zu bytes of kernel workspace failed",
                         what, bytes);
    tlmi_host_free(&ctx->host, ctx->workspace, ctx->workspace_bytes);
    ctx->workspace = fresh;
    ctx->workspace_bytes = bytes;
    return TLM_OK;
}

/* Upper bound on n_threads: far above any machine, low enough that a
 * mistyped value is caught rather than spawning thousands of threads. */
#define TLMI_MAX_THREADS 1024

TLM_API int tlm_context_params_init(tlm_context_params *params) {
    TLMI_PARAMS_INIT("tlm_context_params_init", params);
    params->log_level = TLM_LOG_WARN;
    params->n_threads = 0;
    return TLM_OK;
}

TLM_API int tlm_context_create(tlm_context **out,
                               const tlm_context_params *given) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_create", out);
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

    tlm_context *ctx = TLMI_HANDLE_ALLOC(&host, tlm_context);
    if (ctx == NULL)
        return tlmi_fail_thread(TLM_E_NOMEM,
                                "tlm_context_create: allocating the context "
                                "(%zu bytes) failed",
                                sizeof *ctx);
    atomic_init(&ctx->live_bytes, 0);
    atomic_init(&ctx->references, 1);
    ctx->host.live_bytes = &ctx->live_bytes;
    if (params.memory_limit == 0) {
        tlmi_memory_limit_default("", &ctx->memory_limit);
    } else {
        ctx->memory_limit.bytes = params.memory_limit;
        ctx->memory_limit.source = params.memory_limit == UINT64_MAX
                                       ? "none"
                                       : "tlm_context_params.memory_limit";
    }
    tlmi_arena_init(&ctx->arena);
    ctx->grad_enabled = 1;
    ctx->training = 1;
    tlmi_rng_seed(&ctx->rng, 0);
    ctx->features = tlmi_cpu_usable_features();
    ctx->kernels = tlmi_kernels_choose_with(ctx->features);
    const tlmi_gemm_bf16_kernels *bf16 =
        tlmi_gemm_bf16_choose(ctx->kernels, ctx->features);
    ctx->kernels_bf16 = *ctx->kernels;
    ctx->kernels_bf16.gemm = bf16->gemm;
    ctx->kernels_bf16.gemm_workspace = bf16->gemm_workspace;
    ctx->kernels_bf16.gemm_cols = bf16->gemm_cols;
    ctx->kernels_bf16.gemm_col_align = bf16->gemm_col_align;
    ctx->kernels_bf16.attention_forward = ctx->kernels->attention_forward_bf16;
    ctx->kernels_bf16.attention_backward =
        ctx->kernels->attention_backward_bf16;
    ctx->products_bf16 = 0;
    ctx->n_threads = params.n_threads > 0 ? params.n_threads
                                          : tlmi_default_thread_count();
    status = tlmi_threadpool_create(&ctx->pool, &ctx->host, ctx->n_threads,
                              "tlm_context_create");
    if (status != TLM_OK) {
        tlmi_host_free(&host, ctx, sizeof *ctx);
        return tlmi_fail_thread(status, "tlm_context_create: allocating the "
                                "thread pool failed");
    }
    tlmi_host_log(&ctx->host, TLM_LOG_DEBUG,
                  "tlm_context_create: %d compute thread(s)", ctx->n_threads);
    *out = ctx;
    return TLM_OK;
}

/* Frees the context itself, once nothing refers to it: the leaves still
 * alive (the caller's tensors; every handle's are gone), the arena, the
 * workspace, the pool and the tensor structs. */
static void destroy(tlm_context *ctx) {
    while (ctx->leaves != NULL)
        tlm_tensor_free(ctx->leaves);
    tlmi_arena_release(&ctx->arena, &ctx->host);
    tlmi_grad_pool_release(&ctx->grad_pool, &ctx->host);
    tlmi_host_free(&ctx->host, ctx->workspace, ctx->workspace_bytes);
    tlmi_threadpool_free(ctx->pool);
    while (ctx->structs != NULL) {
        tlmi_struct_chunk *chunk = ctx->structs;
        ctx->structs = chunk->next;
        tlmi_host_free(&ctx->host, chunk, sizeof *chunk);
    }
    tlmi_host host = ctx->host;
    host.live_bytes = NULL; /* the counter is in *ctx, which goes now */
    tlmi_host_free(&host, ctx, sizeof *ctx);
}

static tlm_context *context_of(const tlmi_host *host) {
    if (host == NULL || host->live_bytes == NULL)
        return NULL;
    return (tlm_context *)(void *)((char *)host->live_bytes -
                                   offsetof(tlm_context, live_bytes));
}

void tlmi_context_hold(const tlmi_host *host) {
    tlm_context *ctx = context_of(host);
    if (ctx != NULL)
        atomic_fetch_add(&ctx->references, 1);
}

void tlmi_context_drop(const tlmi_host *host) {
    tlm_context *ctx = context_of(host);
    if (ctx != NULL && atomic_fetch_sub(&ctx->references, 1) == 1)
        destroy(ctx);
}

TLM_API void tlm_context_free(tlm_context *ctx) {
    if (ctx == NULL)
        return;
    const int64_t handles = atomic_load(&ctx->references) - 1;
    if (handles > 0)
        tlmi_host_log(&ctx->host, TLM_LOG_DEBUG,
                      "tlm_context_free: %lld handle(s) still alive; the "
                      "context goes with the last of them",
                      (long long)handles);
    tlmi_context_drop(&ctx->host);
}

/* Bytes allocated in the context and not freed (0 if the count went
 * below 0, which a free with the wrong size would do). */
static int64_t live_bytes(const tlm_context *ctx) {
    const int64_t live =
        atomic_load_explicit(&((tlm_context *)ctx)->live_bytes,
                             memory_order_relaxed);
    return live > 0 ? live : 0;
}

int tlmi_context_check_memory(const tlm_context *ctx, tlmi_host *host,
                              const char *what, const tlmi_memory_part *parts,
                              int n_parts) {
    double held = 0, fresh = 0;
    for (int i = 0; i < n_parts; i++) {
        if (parts[i].held)
            held += parts[i].bytes;
        else
            fresh += parts[i].bytes;
    }
    /* What the context holds besides the held parts (models, datasets,
     * tensors made before; not tokenizers, which may outlive it): counted
     * as well. */
    const double live = (double)live_bytes(ctx);
    const double other = live > held ? live - held : 0;
    const double needed = held + other + fresh;
    const uint64_t limit = ctx->memory_limit.bytes;
    if (limit == TLMI_MEMORY_UNLIMITED || needed <= (double)limit)
        return TLM_OK;
    char list[320] = "";
    size_t used = 0;
    char amount[32];
    for (int i = 0; i <= n_parts && used < sizeof list; i++) {
        const char *name = i < n_parts ? parts[i].name : "held by the context already";
        const double bytes = i < n_parts ? parts[i].bytes : other;
        if (i == n_parts && other <= 0)
            break;
        tlmi_memory_format(amount, sizeof amount, bytes);
        const int n = snprintf(list + used, sizeof list - used, "%s%s %s",
                               used > 0 ? ", " : "", name, amount);
        if (n < 0)
            break;
        used += (size_t)n;
    }
    char needed_text[32], limit_text[32];
    tlmi_memory_format(needed_text, sizeof needed_text, needed);
    tlmi_memory_format(limit_text, sizeof limit_text, (double)limit);
    return tlmi_fail(host, TLM_E_NOMEM, "%s: needs %s (%s), the limit is %s (%s)",
                     what, needed_text, list, limit_text,
                     ctx->memory_limit.source);
}

TLM_API int tlm_context_memory_limit(const tlm_context *ctx, uint64_t *bytes) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_memory_limit", ctx);
    TLMI_CHECK_OUT(NULL, "tlm_context_memory_limit", bytes, 0);
    *bytes = ctx->memory_limit.bytes;
    return TLM_OK;
}

TLM_API int tlm_context_memory_in_use(const tlm_context *ctx, uint64_t *bytes) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_memory_in_use", ctx);
    TLMI_CHECK_OUT(NULL, "tlm_context_memory_in_use", bytes, 0);
    *bytes = (uint64_t)live_bytes(ctx);
    return TLM_OK;
}

TLM_API const char *tlm_context_last_error(const tlm_context *ctx) {
    return TLMI_LAST_ERROR("tlm_context_last_error", ctx);
}

TLM_API int32_t tlm_context_thread_count(const tlm_context *ctx) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_thread_count", ctx);
    return ctx->n_threads;
}

TLM_API int tlm_context_reset(tlm_context *ctx) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_reset", ctx);
    tlm_tensor *node = ctx->tape_first;
    while (node != NULL) {
        tlm_tensor *next = node->next;
        tlmi_graph_give_grad(node);
        tlmi_context_give_struct(ctx, node);
        node = next;
    }
    ctx->tape_first = NULL;
    ctx->tape_last = NULL;
    ctx->generation++;
    tlmi_arena_reset(&ctx->arena);
    tlmi_grad_pool_trim(&ctx->grad_pool, &ctx->host);
    return TLM_OK;
}

void tlmi_context_zero_leaf_grads(tlm_context *ctx) {
    for (tlm_tensor *leaf = ctx->leaves; leaf != NULL; leaf = leaf->next)
        if (leaf->grad != NULL)
            memset(leaf->grad, 0, (size_t)leaf->numel * sizeof(float));
}

TLM_API int tlm_context_zero_grad(tlm_context *ctx) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_zero_grad", ctx);
    tlmi_context_zero_leaf_grads(ctx);
    for (tlm_tensor *node = ctx->tape_first; node != NULL; node = node->next)
        if (node->grad != NULL)
            memset(node->grad, 0, (size_t)node->numel * sizeof(float));
    return TLM_OK;
}

/* Checks the arguments of a setter of one of the context's 0/1 switches;
 * `name` is the value's argument. */
static int check_switch(tlm_context *ctx, const char *function,
                        const char *name, int value) {
    TLMI_CHECK_NOT_NULL(NULL, function, ctx);
    TLMI_CHECK(&ctx->host, value == 0 || value == 1, TLM_E_INVALID,
               "%s: %s %d is not 0 or 1", function, name, value);
    return TLM_OK;
}

TLM_API int tlm_context_set_grad_enabled(tlm_context *ctx, int32_t enabled) {
    TLMI_TRY(check_switch(ctx, "tlm_context_set_grad_enabled", "enabled",
                          enabled));
    ctx->grad_enabled = enabled;
    return TLM_OK;
}

TLM_API int tlm_context_set_training(tlm_context *ctx, int32_t training) {
    TLMI_TRY(check_switch(ctx, "tlm_context_set_training", "training",
                          training));
    ctx->training = training;
    return TLM_OK;
}

TLM_API int tlm_context_set_seed(tlm_context *ctx, uint64_t seed) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_set_seed", ctx);
    tlmi_rng_seed(&ctx->rng, seed);
    return TLM_OK;
}

TLM_API int64_t tlm_context_arena_bytes(const tlm_context *ctx) {
    TLMI_CHECK_NOT_NULL(NULL, "tlm_context_arena_bytes", ctx);
    return (int64_t)(ctx->arena.total_bytes + ctx->grad_pool.bytes);
}
