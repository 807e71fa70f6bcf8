/* Apart from counting_allocator.c so that a test of the allocator alone
 * need not link tlm. */
#include "counting_allocator.h"

void counting_context_params(tlm_context_params *params,
                             counting_allocator *counter) {
    tlm_context_params_init(params);
    params->alloc_fn = counting_alloc;
    params->free_fn = counting_free;
    params->alloc_user = counter;
}

int counting_context_create(tlm_context **ctx, counting_allocator *counter) {
    tlm_context_params params;
    counting_context_params(&params, counter);
    return tlm_context_create(ctx, &params);
}
