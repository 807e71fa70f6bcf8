/*
 * A checked layout carver: the buffers of a workspace laid out one after
 * another in a single allocation, each at a 64-byte boundary.
 *
 * Describe the buffers once, in a function that takes the base of the
 * block (NULL to measure it): run it with NULL to learn the total size,
 * allocate that many bytes, and run it again with the block to get the
 * pointers. Sizes are checked for overflow; after an overflow every later
 * step is a no-op and tlmi_layout_size() reports SIZE_MAX.
 *
 * A kernel that keeps offsets rather than pointers (the attention
 * templates, whose workspace is the caller's) measures with base NULL and
 * reads each buffer's place with tlmi_layout_offset().
 */
#ifndef TLM_LIB_BASE_LAYOUT_H
#define TLM_LIB_BASE_LAYOUT_H

#include <stddef.h>

/* The alignment of every buffer and of the total size. */
#define TLMI_LAYOUT_ALIGN 64

typedef struct tlmi_layout {
    unsigned char *base; /* the block, or NULL while measuring */
    size_t end;          /* where the last buffer ends, in bytes */
    int overflow;
} tlmi_layout;

/* Starts a layout over `base` (NULL: only measure). */
void tlmi_layout_init(tlmi_layout *layout, void *base);

/* a * b, or 0 and the layout marked overflowed. */
size_t tlmi_layout_mul(tlmi_layout *layout, size_t a, size_t b);

/* The next `count` elements of `element_size` bytes: their place in the
 * block, or NULL while measuring, after an overflow, or when count is 0. */
void *tlmi_layout_take(tlmi_layout *layout, size_t count, size_t element_size);

/* The next `count` elements of `element_size` bytes: their offset from
 * the base, a multiple of 64 (0 after an overflow; when count is 0, where
 * the next buffer would start, and nothing is taken). */
size_t tlmi_layout_offset(tlmi_layout *layout, size_t count, size_t element_size);

/* Total bytes (a multiple of 64), or SIZE_MAX after an overflow. */
size_t tlmi_layout_size(const tlmi_layout *layout);

/* Bytes up to the end of the last buffer (the total without the last
 * buffer's padding), or SIZE_MAX after an overflow. */
size_t tlmi_layout_end(const tlmi_layout *layout);

#endif
