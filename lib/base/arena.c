#include "arena.h"

#include <stdint.h>

struct tlmi_arena_chunk {
    tlmi_arena_chunk *next;
    size_t capacity; /* bytes usable after the header */
    size_t used;
};

/* The first chunk holds this much; later ones double, so a graph needs few
 * chunks whatever its size. */
#define FIRST_CHUNK_BYTES ((size_t)1 << 20)

/* The header is padded so that the data starts aligned. */
#define HEADER_BYTES \
    ((sizeof(tlmi_arena_chunk) + TLMI_ARENA_ALIGN - 1) & ~(size_t)(TLMI_ARENA_ALIGN - 1))

static unsigned char *chunk_data(tlmi_arena_chunk *chunk) {
    return (unsigned char *)chunk + HEADER_BYTES;
}

void tlmi_arena_init(tlmi_arena *arena) {
    arena->first = NULL;
    arena->current = NULL;
    arena->total_bytes = 0;
}

static size_t round_up(size_t bytes) {
    return (bytes + TLMI_ARENA_ALIGN - 1) & ~(size_t)(TLMI_ARENA_ALIGN - 1);
}

void *tlmi_arena_alloc(tlmi_arena *arena, const tlmi_host *host, size_t bytes) {
    if (bytes == 0 || bytes > SIZE_MAX / 2 - HEADER_BYTES - TLMI_ARENA_ALIGN)
        return NULL;
    size_t need = round_up(bytes);
    /* Walk the existing chunks first: after a reset, the same requests find
     * the same chunks. */
    tlmi_arena_chunk *chunk = arena->current;
    while (chunk != NULL) {
        if (chunk->capacity - chunk->used >= need) {
            void *block = chunk_data(chunk) + chunk->used;
            chunk->used += need;
            arena->current = chunk;
            return block;
        }
        chunk = chunk->next;
        if (chunk != NULL)
            chunk->used = 0;
    }
    size_t last = FIRST_CHUNK_BYTES / 2;
    tlmi_arena_chunk *tail = arena->first;
    while (tail != NULL && tail->next != NULL)
        tail = tail->next;
    if (tail != NULL)
        last = tail->capacity;
    size_t capacity = last <= SIZE_MAX / 4 ? 2 * last : last;
    if (capacity < need)
        capacity = need;
    tlmi_arena_chunk *fresh =
        tlmi_host_alloc(host, HEADER_BYTES + capacity, TLMI_ARENA_ALIGN);
    if (fresh == NULL)
        return NULL;
    fresh->next = NULL;
    fresh->capacity = capacity;
    fresh->used = need;
    if (tail == NULL)
        arena->first = fresh;
    else
        tail->next = fresh;
    arena->current = fresh;
    arena->total_bytes += capacity;
    return chunk_data(fresh);
}

tlmi_arena_mark tlmi_arena_get_mark(const tlmi_arena *arena) {
    tlmi_arena_mark mark = {arena->current,
                            arena->current ? arena->current->used : 0};
    return mark;
}

void tlmi_arena_rewind(tlmi_arena *arena, tlmi_arena_mark mark) {
    if (mark.chunk == NULL) {
        tlmi_arena_reset(arena);
        return;
    }
    arena->current = mark.chunk;
    mark.chunk->used = mark.used;
}

void tlmi_arena_reset(tlmi_arena *arena) {
    arena->current = arena->first;
    if (arena->first != NULL)
        arena->first->used = 0;
}

void tlmi_arena_release(tlmi_arena *arena, const tlmi_host *host) {
    tlmi_arena_chunk *chunk = arena->first;
    while (chunk != NULL) {
        tlmi_arena_chunk *next = chunk->next;
        tlmi_host_free(host, chunk, HEADER_BYTES + chunk->capacity);
        chunk = next;
    }
    tlmi_arena_init(arena);
}

size_t tlmi_arena_used_bytes(const tlmi_arena *arena) {
    size_t used = 0;
    for (const tlmi_arena_chunk *chunk = arena->first; chunk != NULL;
         chunk = chunk->next) {
        used += chunk->used;
        if (chunk == arena->current)
            break;
    }
    return used;
}
