/*
 * The arena a context carves results, gradients and saved buffers from: a
 * list of chunks from the host allocator, filled front to back and rewound
 * by a reset. Chunks are kept across resets, so a loop that makes the same
 * allocations after every reset stops allocating after its first pass.
 */
#ifndef TLM_LIB_BASE_ARENA_H
#define TLM_LIB_BASE_ARENA_H

#include <stddef.h>

#include "host.h"

/* Every block starts on this boundary: a cache line, and the widest SIMD
 * register (AVX-512) loads aligned. */
#define TLMI_ARENA_ALIGN 64

typedef struct tlmi_arena_chunk tlmi_arena_chunk;

typedef struct tlmi_arena {
    tlmi_arena_chunk *first;
    tlmi_arena_chunk *current;
    size_t total_bytes; /* capacity of all chunks */
} tlmi_arena;

/* A position in the arena, to rewind to after a failed operation. */
typedef struct tlmi_arena_mark {
    tlmi_arena_chunk *chunk;
    size_t used;
} tlmi_arena_mark;

void tlmi_arena_init(tlmi_arena *arena);

/* `bytes` (> 0) aligned to TLMI_ARENA_ALIGN, or NULL when the host
 * allocator fails. Contents are not cleared. */
void *tlmi_arena_alloc(tlmi_arena *arena, const tlmi_host *host, size_t bytes);

tlmi_arena_mark tlmi_arena_get_mark(const tlmi_arena *arena);
void tlmi_arena_rewind(tlmi_arena *arena, tlmi_arena_mark mark);

/* Everything allocated becomes free; the chunks are kept. */
void tlmi_arena_reset(tlmi_arena *arena);

/* Bytes handed out since the last reset (alignment padding included). */
size_t tlmi_arena_used_bytes(const tlmi_arena *arena);

/* Returns every chunk to the host. */
void tlmi_arena_release(tlmi_arena *arena, const tlmi_host *host);

#endif
