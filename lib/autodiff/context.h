/*
 * The context handle: the host services (allocator, logger, error text)
 * every object created in it shares, the memory of its tensors (a pool of
 * tensor structs and an arena for results) and the autodiff tape.
 */
#ifndef TLM_LIB_AUTODIFF_CONTEXT_H
#define TLM_LIB_AUTODIFF_CONTEXT_H

#include "autodiff/grad_pool.h"
#include "base/arena.h"
#include "base/host.h"
#include "base/memory_limit.h"
#include "base/rng.h"
#include "base/threadpool.h"
#include "kernels/dispatch.h"
#include "tlm.h"

typedef struct tlmi_struct_chunk tlmi_struct_chunk;

struct tlm_context {
    tlmi_host host;
    int n_threads; /* resolved: >= 1 */
    tlmi_threadpool *pool; /* n_threads compute threads (the caller is one) */
    /* The kernels of every op in this context, chosen once at creation
     * (kernels/dispatch.h) and never changed: a workspace sized for them
     * when a node is made fits them when it runs. */
    const tlmi_kernels *kernels;
    /* The CPU features usable at creation (detected & the experimental
     * mask), from which `kernels` was chosen: the variant of the products
     * with quantized weights is chosen from them too
     * (tlmi_weight_kernels_choose, kernels/weights.h). */
    uint32_t features;
    /* `kernels` with its matrix products replaced by the bf16 ones
     * (kernels/gemm_bf16.h, the variant chosen for `kernels` and
     * `features`) and its attention by the table's bf16 entries
     * (kernels/attention.h): what tlm_matmul and the attention ops run
     * while products_bf16 is set, which a trainer with precision
     * TLM_PRECISION_BF16 does around its forward and backward passes.
     * Nodes size the workspace for both tables. */
    tlmi_kernels kernels_bf16;
    int products_bf16;

    tlmi_arena arena;            /* results' data, gradients, saved buffers */
    tlmi_grad_pool grad_pool;    /* pooled results' gradients */
    /* Set by tlm_model_forward while it builds the layers (internal
     * results the caller never sees): results made now have pooled
     * gradients, and when recompute_group is not NULL their data goes in
     * *recompute_group's buffer, to be recomputed when read (tensor.h). */
    int pool_result_grads;
    tlm_tensor **recompute_group;
    /* Set by tlm_model_forward around a residual add or a branch's
     * dropout: the result is written over this result's data (in place),
     * which nothing reads afterwards (a projection's output, or its
     * dropout's: their backward passes read only their inputs or mask).
     * NULL: results get their own data. */
    tlm_tensor *in_place_of;
    tlmi_struct_chunk *structs;  /* every tensor struct ever allocated */
    tlm_tensor *free_structs;    /* structs ready for reuse */

    tlm_tensor *leaves;          /* live leaf tensors (doubly linked) */
    tlm_tensor *tape_first;      /* results, in creation order */
    tlm_tensor *tape_last;
    uint32_t generation;         /* bumped by reset: older results are dead */
    uint32_t backward_mark;      /* bumped by each backward pass */

    int grad_enabled;
    int training;
    tlmi_rng rng;

    /* Scratch memory of the kernels (GEMM packing buffers), shared by
     * every node: grown when a node that needs more is created, never
     * while forward or backward run, kept across resets. */
    void *workspace;
    size_t workspace_bytes;

    /* What creating a model, session, trainer or dataset may not exceed
     * (with what the context already holds), resolved at creation from
     * params.memory_limit or base/memory_limit.h's default. */
    tlmi_memory_limit memory_limit;
    /* Bytes allocated through the host and not freed, by every handle
     * made in the context (host.live_bytes points here). */
    _Atomic int64_t live_bytes;
    /* 1 for the caller's tlm_context_create until tlm_context_free, plus
     * 1 per live model, session, sampler, optimizer, trainer and dataset
     * (tlmi_context_hold / tlmi_context_drop): the context goes when it
     * reaches 0, so no order of frees uses freed memory or leaks. */
    _Atomic int64_t references;
};

/* The table whose products (tlm_matmul's and the attention ops') run
 * now: kernels_bf16 while products_bf16 is set, else the float32 one. */
static inline const tlmi_kernels *
tlmi_context_products(const tlm_context *ctx) {
    return ctx->products_bf16 ? &ctx->kernels_bf16 : ctx->kernels;
}

/* A tensor struct from the pool (zeroed), or NULL when out of memory. */
tlm_tensor *tlmi_context_take_struct(tlm_context *ctx);
/* Returns a struct to the pool; its handle becomes invalid. */
void tlmi_context_give_struct(tlm_context *ctx, tlm_tensor *tensor);

/* A handle made in a context keeps it alive: tlmi_context_hold when the
 * handle's struct is allocated, tlmi_context_drop as the last step of its
 * free (after its last use of the context). `host` is the context's host
 * or a handle's copy of it; the context is found through its live_bytes
 * counter. A host outside any context (a tokenizer's: live_bytes NULL) is
 * ignored. The drop that leaves no reference frees the context. */
void tlmi_context_hold(const tlmi_host *host);
void tlmi_context_drop(const tlmi_host *host);

/* Zeroes the gradients of the leaves only: enough before a backward pass,
 * which clears the gradients of the results it visits itself (the
 * trainer's steps skip zeroing the whole tape that way). */
void tlmi_context_zero_leaf_grads(tlm_context *ctx);

/* One part of what a new object needs, for tlmi_context_check_memory:
 * `held` parts exist already (a trainer's weights), the others are about
 * to be allocated. */
typedef struct tlmi_memory_part {
    const char *name; /* "weights", "activations" */
    double bytes;
    int held;
} tlmi_memory_part;

/* The check before allocating a large object: refuses with TLM_E_NOMEM,
 * recorded on `host` as "<what>: needs X (part a, part b, ...), the limit
 * is Y (<source>)", when the parts not yet held plus what the context
 * already holds (at least the held parts) exceed ctx->memory_limit.
 * Records nothing and returns TLM_OK otherwise. */
int tlmi_context_check_memory(const tlm_context *ctx, tlmi_host *host,
                              const char *what, const tlmi_memory_part *parts,
                              int n_parts);

/* Makes ctx->workspace at least `bytes` long (contents not kept). On
 * failure records "<what>: ..." and returns TLM_E_NOMEM; the old
 * workspace stays. */
int tlmi_context_reserve_workspace(tlm_context *ctx, size_t bytes,
                                   const char *what);

#endif
