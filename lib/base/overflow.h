/*
 * Size arithmetic that reports overflow instead of wrapping. The flag is
 * sticky, so a whole size computation is checked once at its end:
 *
 *     int overflow = 0;
 *     size_t bytes = tlmi_mul_size(tlmi_mul_size(w, v, &overflow),
 *                                  sizeof(float), &overflow);
 *     if (overflow) ...
 */
#ifndef TLM_LIB_BASE_OVERFLOW_H
#define TLM_LIB_BASE_OVERFLOW_H

#include <stddef.h>
#include <stdint.h>

/* a * b, or 0 with *overflow set when it does not fit a size_t. */
static inline size_t tlmi_mul_size(size_t a, size_t b, int *overflow) {
    if (b != 0 && a > SIZE_MAX / b) {
        *overflow = 1;
        return 0;
    }
    return a * b;
}

#endif
