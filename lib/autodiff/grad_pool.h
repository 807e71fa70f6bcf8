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
} tlmi_grad_pool;

/* A free buffer of exactly `numel` floats (contents undefined), a new one
 * when none is free, or NULL when the host allocator fails. */
float *tlmi_grad_pool_take(tlmi_grad_pool *pool, const tlmi_host *host,
                           int64_t numel);

/* Gives back a buffer from tlmi_grad_pool_take. */
void tlmi_grad_pool_give(tlmi_grad_pool *pool, float *grad);

/* Frees every buffer (none may be in use afterwards). */
void tlmi_grad_pool_release(tlmi_grad_pool *pool, const tlmi_host *host);

#endif
