/* An allocator hook for tests: counts allocations and live bytes, checks
 * alignment and sizes on free, and can be told to fail the N-th call; and
 * contexts that allocate through it. */
#ifndef TLM_TESTS_COUNTING_ALLOCATOR_H
#define TLM_TESTS_COUNTING_ALLOCATOR_H

#include <stddef.h>
#include <stdint.h>

#include "tlm.h"

typedef struct counting_allocator {
    uint64_t allocations;    /* successful alloc calls */
    uint64_t frees;          /* free calls */
    uint64_t live_bytes;     /* allocated and not yet freed */
    uint64_t peak_bytes;
    uint64_t misaligned;     /* frees whose pointer was not aligned */
    uint64_t bad_free_sizes; /* frees whose size differs from the alloc's */
    int64_t fail_at;         /* 1-based alloc call to fail; 0: never */
    uint64_t calls;          /* alloc calls, failed ones included */
} counting_allocator;

void *counting_alloc(void *user, size_t size, size_t alignment);
void counting_free(void *user, void *ptr, size_t size);

/* tlm's default context settings, allocating through `counter` (whose
 * fields the caller sets, fail_at included). */
void counting_context_params(tlm_context_params *params,
                             counting_allocator *counter);

/* A context with those settings: tlm_context_create's status. */
int counting_context_create(tlm_context **ctx, counting_allocator *counter);

#endif
