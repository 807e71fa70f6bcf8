#include "layout.h"

#include <stdint.h>

void tlmi_layout_init(tlmi_layout *layout, void *base) {
    layout->base = base;
    layout->size = 0;
    layout->overflow = 0;
}

size_t tlmi_layout_mul(tlmi_layout *layout, size_t a, size_t b) {
    if (a != 0 && b > SIZE_MAX / a) {
        layout->overflow = 1;
        return 0;
    }
    return a * b;
}

void *tlmi_layout_take(tlmi_layout *layout, size_t count, size_t element_size) {
    const size_t bytes = tlmi_layout_mul(layout, count, element_size);
    if (layout->overflow || bytes == 0)
        return NULL;
    const size_t rounded_limit = SIZE_MAX - (TLMI_LAYOUT_ALIGN - 1);
    if (bytes > rounded_limit || bytes > rounded_limit - layout->size) {
        layout->overflow = 1;
        return NULL;
    }
    const size_t offset = layout->size;
    layout->size += (bytes + TLMI_LAYOUT_ALIGN - 1) / TLMI_LAYOUT_ALIGN *
                    TLMI_LAYOUT_ALIGN;
    return layout->base != NULL ? layout->base + offset : NULL;
}

size_t tlmi_layout_size(const tlmi_layout *layout) {
    return layout->overflow ? SIZE_MAX : layout->size;
}
