/*
 * Growable arrays through the host's allocator: the one doubling policy
 * and the one overflow-checked move to a bigger block.
 */
#ifndef TLM_LIB_BASE_GROW_H
#define TLM_LIB_BASE_GROW_H

#include <stddef.h>

#include "host.h"

/* The capacity tlmi_grow moves to so that `needed` elements fit: the
 * current one when it suffices, else doubled (from 16 at least) until it
 * does, or exactly `needed` when doubling would overflow. */
size_t tlmi_grow_capacity(size_t capacity, size_t needed);

/* `array` is the address of the caller's pointer to its elements
 * (&t->pairs, of any object pointer type). Moves that pointer's block
 * (*capacity elements of elem_size bytes, or NULL with capacity 0) to a new 64-byte aligned block of `new_capacity` elements,
 * copying the first min(*capacity, new_capacity) and freeing the old
 * block. Returns TLM_OK, TLM_E_OVERFLOW (the size overflows size_t) or
 * TLM_E_NOMEM, and on failure leaves the pointer and *capacity as they were.
 * Records no error: the caller says what was growing. */
int tlmi_resize(const tlmi_host *host, void *array, size_t *capacity,
                size_t new_capacity, size_t elem_size);

/* Makes room for `needed` elements in *array: nothing when they already
 * fit, else tlmi_resize to tlmi_grow_capacity(*capacity, needed). Same
 * results as tlmi_resize. */
int tlmi_grow(const tlmi_host *host, void *array, size_t *capacity,
              size_t needed, size_t elem_size);

#endif
