/*
 * The context's pool of gradient buffers for results whose gradient is
 * only needed during backward (the intermediate values of a model's
 * forward pass): a result takes a buffer when backward first gives it a
 * contribution and gives it back once its own backward has passed the
 * gradient on. A training step thus holds the gradients of the few
 * results between the one being differentiated and its consumers, not one
 * per result of the graph. Buffers are kept for the next backward pass and
 * freed with the context.
 */
#ifndef TLM_LIB_AUTODIFF_GRAD_POOL_H
#define TLM_LIB_AUTODIFF_GRAD_POOL_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"

typedef struct tlmi_grad_block tlmi_grad_block;

typedef struct tlmi_grad_pool {
    tlmi_grad_block *blocks; /* every buffer, in use or not */
    size_t bytes;            /* floats of all buffers, in bytes */
    int taken;               /* a buffer was taken since the last trim */
} tlmi_grad_pool;

/* Trims after which a buffer nobody took is freed (tlmi_grad_pool_trim). */
#define TLMI_GRAD_POOL_IDLE_TRIMS 4

/* A free buffer of exactly `numel` floats (contents undefined), a new one
 * when none is free, or NULL when the host allocator fails. */
float *tlmi_grad_pool_take(tlmi_grad_pool *pool, const tlmi_host *host,
                           int64_t numel);

/* Gives back a buffer from tlmi_grad_pool_take. */
void tlmi_grad_pool_give(tlmi_grad_pool *pool, float *grad);

/* At a context reset: frees the free buffers that no backward pass has
 * taken since the last TLMI_GRAD_POOL_IDLE_TRIMS trims that followed one
 * (a reset after forward passes alone trims nothing). Buffers are matched
 * by exact size, so without this a loop whose batches change shape (a
 * sequence length per batch) would keep buffers for every shape it ever
 * saw; a loop of one shape takes every buffer each step and keeps them. */
void tlmi_grad_pool_trim(tlmi_grad_pool *pool, const tlmi_host *host);

/* Frees every buffer (none may be in use afterwards). */
void tlmi_grad_pool_release(tlmi_grad_pool *pool, const tlmi_host *host);

#endif
