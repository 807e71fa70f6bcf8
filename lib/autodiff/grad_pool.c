/*
 * The pool of pooled results' gradient buffers (grad_pool.h). A model's
 * graph has a handful of distinct gradient sizes ([B, T, D], [B, T, d_ff],
 * ...) and at most a few buffers of each are in use at once, so a list
 * searched for an exact size is enough.
 */
#include "grad_pool.h"

struct tlmi_grad_block {
    tlmi_grad_block *next;
    float *data; /* numel floats, 64-byte aligned */
    int64_t numel;
    int in_use;
    int idle_trims; /* trims since a backward pass last took it */
};

float *tlmi_grad_pool_take(tlmi_grad_pool *pool, const tlmi_host *host,
                           int64_t numel) {
    for (tlmi_grad_block *b = pool->blocks; b != NULL; b = b->next) {
        if (!b->in_use && b->numel == numel) {
            b->in_use = 1;
            b->idle_trims = 0;
            pool->taken = 1;
            return b->data;
        }
    }
    tlmi_grad_block *block = tlmi_host_alloc(host, sizeof *block, 16);
    if (block == NULL)
        return NULL;
    const size_t bytes = (size_t)numel * sizeof(float);
    block->data = tlmi_host_alloc(host, bytes, 64);
    if (block->data == NULL) {
        tlmi_host_free(host, block, sizeof *block);
        return NULL;
    }
    block->numel = numel;
    block->in_use = 1;
    block->idle_trims = 0;
    pool->taken = 1;
    block->next = pool->blocks;
    pool->blocks = block;
    pool->bytes += bytes;
    return block->data;
}

void tlmi_grad_pool_give(tlmi_grad_pool *pool, float *grad) {
    for (tlmi_grad_block *b = pool->blocks; b != NULL; b = b->next) {
        if (b->data == grad) {
            b->in_use = 0;
            return;
        }
    }
}

void tlmi_grad_pool_trim(tlmi_grad_pool *pool, const tlmi_host *host) {
    if (!pool->taken)
        return;
    pool->taken = 0;
    tlmi_grad_block **link = &pool->blocks;
    while (*link != NULL) {
        tlmi_grad_block *block = *link;
        if (block->in_use || block->idle_trims < TLMI_GRAD_POOL_IDLE_TRIMS) {
            block->idle_trims += !block->in_use;
            link = &block->next;
            continue;
        }
        *link = block->next;
        const size_t bytes = (size_t)block->numel * sizeof(float);
        pool->bytes -= bytes;
        tlmi_host_free(host, block->data, bytes);
        tlmi_host_free(host, block, sizeof *block);
    }
}

void tlmi_grad_pool_release(tlmi_grad_pool *pool, const tlmi_host *host) {
    while (pool->blocks != NULL) {
        tlmi_grad_block *block = pool->blocks;
        pool->blocks = block->next;
        tlmi_host_free(host, block->data, (size_t)block->numel * sizeof(float));
        tlmi_host_free(host, block, sizeof *block);
    }
    pool->bytes = 0;
}
