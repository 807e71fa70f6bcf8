#include "grow.h"

#include <stdint.h>
#include <string.h>

#include "tlm.h"

/* First capacity of an empty array. */
#define GROW_INITIAL 16

size_t tlmi_grow_capacity(size_t capacity, size_t needed) {
    if (needed <= capacity)
        return capacity;
    size_t grown = capacity < GROW_INITIAL ? GROW_INITIAL : capacity;
    while (grown < needed)
        grown = grown <= SIZE_MAX / 2 ? 2 * grown : needed;
    return grown;
}

int tlmi_resize(const tlmi_host *host, void *array, size_t *capacity,
                size_t new_capacity, size_t elem_size) {
    if (elem_size != 0 && new_capacity > SIZE_MAX / elem_size)
        return TLM_E_OVERFLOW;
    void *moved = tlmi_host_alloc(host, new_capacity * elem_size, 64);
    if (moved == NULL)
        return TLM_E_NOMEM;
    /* The caller's pointer (an int32_t *, a struct's...) is read and
     * written with memcpy: through a void ** it would be an access of
     * another type, which C's aliasing rules do not allow. */
    void *old;
    memcpy(&old, array, sizeof old);
    if (old != NULL) {
        size_t kept = *capacity < new_capacity ? *capacity : new_capacity;
        memcpy(moved, old, kept * elem_size);
        tlmi_host_free(host, old, *capacity * elem_size);
    }
    memcpy(array, &moved, sizeof moved);
    *capacity = new_capacity;
    return TLM_OK;
}

int tlmi_grow(const tlmi_host *host, void *array, size_t *capacity,
              size_t needed, size_t elem_size) {
    if (needed <= *capacity)
        return TLM_OK;
    return tlmi_resize(host, array, capacity,
                       tlmi_grow_capacity(*capacity, needed), elem_size);
}
