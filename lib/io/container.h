/*
 * The .tlm container (docs/format.md): a header, a section table and
 * 64-byte aligned sections, each with its CRC-32. This module writes and
 * checks the container; what the sections hold is up to their users (the
 * model's config, tensor index and data; a tokenizer; training state).
 */
#ifndef TLM_LIB_IO_CONTAINER_H
#define TLM_LIB_IO_CONTAINER_H

#include <stddef.h>
#include <stdint.h>

#include "base/file.h"
#include "base/host.h"

#define TLMI_CONTAINER_VERSION 1
#define TLMI_CONTAINER_ALIGN 64
#define TLMI_CONTAINER_MAX_SECTIONS 64

/* One contiguous piece of a section being written. */
typedef struct tlmi_container_piece {
    const void *data;
    uint64_t size;
} tlmi_container_piece;

/* A section to write: its pieces are laid end to end, each starting at a
 * multiple of `piece_align` from the section's start (zero padding
 * between; 1 for none). */
typedef struct tlmi_container_section_spec {
    const char *kind; /* up to 8 ASCII characters */
    const tlmi_container_piece *pieces;
    int32_t n_pieces;
    uint32_t piece_align;
} tlmi_container_section_spec;

/* Writes a .tlm file crash-safely (temporary file, fsync, rename). `what`
 * names the caller for messages. */
int tlmi_container_write(tlmi_host *host, const char *what, const char *path,
                          const tlmi_container_section_spec *sections,
                          int32_t count);

/* A section found in a file. */
typedef struct tlmi_container_section {
    char kind[9];
    const unsigned char *data; /* inside the checked buffer */
    uint64_t offset;           /* from the start of the file */
    uint64_t size;
    uint32_t crc;
} tlmi_container_section;

typedef struct tlmi_container {
    uint32_t version;
    int32_t count;
    tlmi_container_section sections[TLMI_CONTAINER_MAX_SECTIONS];
} tlmi_container;

/* Checks the container in `buffer` (a file's `size` bytes): magic,
 * version, sizes, reserved bytes (zero), table (kinds unique), the layout
 * (each section at the first 64-byte boundary after the one before, the
 * file ending at the boundary after the last, zero padding between), and
 * every section's CRC
 * except, when skip_crc_of is not NULL, the section of that kind, or every
 * section when it is TLMI_CONTAINER_SKIP_ALL_CRCS (for a caller that checks
 * them itself, piece by piece, from a mapped file). `source`
 * names the file in messages. */
#define TLMI_CONTAINER_SKIP_ALL_CRCS "*"

int tlmi_container_parse(tlmi_host *host, const char *what,
                          const char *source, const void *buffer, size_t size,
                          const char *skip_crc_of, tlmi_container *out);

/* For a container parsed from a mapped file with
 * TLMI_CONTAINER_SKIP_ALL_CRCS: checks every section's CRC (except the
 * section of kind `skip_kind`, when not NULL) in pieces, letting each
 * piece's pages go once summed, so that the check never makes the whole
 * file resident. Messages as tlmi_container_parse's. */
int tlmi_container_check_mapped(tlmi_host *host, const char *what,
                                const char *source,
                                const tlmi_file_mapping *mapping,
                                const tlmi_container *container,
                                const char *skip_kind);

/* Checks that bytes[from..to) are zero (alignment padding); otherwise
 * fails naming the byte's offset in the file (`file_offset` + its index)
 * and what the padding follows (`after`, e.g. "section 'config'"). */
int tlmi_container_check_padding(tlmi_host *host, const char *what,
                                 const char *source, const unsigned char *bytes,
                                 uint64_t from, uint64_t to,
                                 uint64_t file_offset, const char *after);

/* The first section of `kind`, or NULL. */
const tlmi_container_section *tlmi_container_find(const tlmi_container *c,
                                                    const char *kind);

#endif
