#include "counting_allocator.h"

#include <stdlib.h>
#include <string.h>

/* Each block is preceded by a header recording its size, so that frees can
 * be checked against what was allocated. */
typedef struct block_header {
    size_t size;
    size_t offset; /* from the start of the malloc'd region to the block */
} block_header;

void *counting_alloc(void *user, size_t size, size_t alignment) {
    counting_allocator *counter = user;
    counter->calls++;
    if (counter->fail_at > 0 && (int64_t)counter->calls == counter->fail_at)
        return NULL;
    size_t overhead = sizeof(block_header) + alignment;
    unsigned char *raw = malloc(size + overhead);
    if (raw == NULL)
        return NULL;
    uintptr_t start = (uintptr_t)(raw + sizeof(block_header));
    uintptr_t aligned = (start + alignment - 1) & ~(uintptr_t)(alignment - 1);
    unsigned char *block = raw + (aligned - (uintptr_t)raw);
    block_header header = {size, (size_t)(block - raw)};
    memcpy(block - sizeof header, &header, sizeof header);
    counter->allocations++;
    counter->live_bytes += size;
    if (counter->live_bytes > counter->peak_bytes)
        counter->peak_bytes = counter->live_bytes;
    return block;
}

void counting_free(void *user, void *ptr, size_t size) {
    counting_allocator *counter = user;
    unsigned char *block = ptr;
    block_header header;
    memcpy(&header, block - sizeof header, sizeof header);
    counter->frees++;
    if (header.size != size)
        counter->bad_free_sizes++;
    if (((uintptr_t)block & (sizeof(void *) - 1)) != 0)
        counter->misaligned++;
    counter->live_bytes -= header.size;
    free(block - header.offset);
}
