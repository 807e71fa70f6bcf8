#include "layout.h"

#include <stdint.h>

void tlmi_layout_init(tlmi_layout *layout, void *base) {
    layout->base = base;
    layout->end = 0;
    layout->overflow = 0;
}

size_t tlmi_layout_mul(tlmi_layout *layout, size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) {
        layout->overflow = 1;
        return 0;
    }
    return a * b;
}

/* n rounded up to the alignment; n <= SIZE_MAX - (TLMI_LAYOUT_ALIGN - 1). */
static size_t aligned(size_t n) {
    return (n + TLMI_LAYOUT_ALIGN - 1) / TLMI_LAYOUT_ALIGN * TLMI_LAYOUT_ALIGN;
}

size_t tlmi_layout_offset(tlmi_layout *layout, size_t count, size_t element_size) {
    const size_t bytes = tlmi_layout_mul(layout, count, element_size);
    if (layout->overflow)
        return 0;
    /* Both the start and the end of the buffer must round up in size_t. */
    const size_t rounded_limit = SIZE_MAX - (TLMI_LAYOUT_ALIGN - 1);
    const size_t start = aligned(layout->end);
    if (bytes > rounded_limit || bytes > rounded_limit - start) {
        layout->overflow = 1;
        return 0;
    }
    if (bytes != 0)
        layout->end = start + bytes;
    return start;
}

void *tlmi_layout_take(tlmi_layout *layout, size_t count, size_t element_size) {
    const size_t offset = tlmi_layout_offset(layout, count, element_size);
    if (layout->overflow || count == 0 || element_size == 0 || layout->base == NULL)
        return NULL;
    return layout->base + offset;
}

size_t tlmi_layout_size(const tlmi_layout *layout) {
    return layout->overflow ? SIZE_MAX : aligned(layout->end);
}

size_t tlmi_layout_end(const tlmi_layout *layout) {
    return layout->overflow ? SIZE_MAX : layout->end;
}
