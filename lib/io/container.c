#include "container.h"

#include <stdio.h>
#include <string.h>

#include "base/crc32.h"
#include "base/endian.h"
#include "base/error.h"
#include "base/file.h"
#include "tlm.h"

static const unsigned char magic[8] = {0x89, 'T', 'L', 'M', '\r', '\n', 0x1a, '\n'};

#define HEADER_SIZE 64
#define ENTRY_SIZE 32

static uint64_t align_up(uint64_t value, uint64_t alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

/* Bytes of a section laid out from its pieces. */
static uint64_t section_size(const tlmi_container_section_spec *s) {
    uint64_t size = 0;
    for (int32_t i = 0; i < s->n_pieces; i++)
        size = align_up(size, s->piece_align ? s->piece_align : 1) + s->pieces[i].size;
    return size;
}

static const unsigned char zeros[TLMI_CONTAINER_ALIGN];

/* Writes `count` zero bytes (count < TLMI_CONTAINER_ALIGN or looped) and
 * folds them into the CRC. */
static int write_padding(tlmi_file_writer *w, uint64_t count, uint32_t *crc) {
    while (count > 0) {
        size_t n = count < sizeof zeros ? (size_t)count : sizeof zeros;
        int status = tlmi_file_writer_write(w, zeros, n);
        if (status != TLM_OK)
            return status;
        if (crc != NULL)
            *crc = tlmi_crc32(*crc, zeros, n);
        count -= n;
    }
    return TLM_OK;
}

int tlmi_container_write(tlmi_host *host, const char *what, const char *path,
                          const tlmi_container_section_spec *sections,
                          int32_t count) {
    if (count < 1 || count > TLMI_CONTAINER_MAX_SECTIONS)
        return tlmi_fail(host, TLM_E_INTERNAL, "%s: %d sections", what, (int)count);
    unsigned char header[HEADER_SIZE] = {0};
    unsigned char table[TLMI_CONTAINER_MAX_SECTIONS * ENTRY_SIZE] = {0};
    const uint64_t table_size = (uint64_t)count * ENTRY_SIZE;
    uint64_t offset = align_up(HEADER_SIZE + table_size, TLMI_CONTAINER_ALIGN);
    /* First pass: offsets, sizes and CRCs (the CRCs are computed over the
     * data as it will be written, padding included). */
    for (int32_t s = 0; s < count; s++) {
        const tlmi_container_section_spec *spec = &sections[s];
        const uint64_t align = spec->piece_align ? spec->piece_align : 1;
        uint64_t size = section_size(spec), at = 0;
        uint32_t crc = 0;
        for (int32_t i = 0; i < spec->n_pieces; i++) {
            uint64_t padded = align_up(at, align);
            while (at < padded) {
                size_t n = padded - at < sizeof zeros ? (size_t)(padded - at) : sizeof zeros;
                crc = tlmi_crc32(crc, zeros, n);
                at += n;
            }
            if (spec->pieces[i].size > 0)
                crc = tlmi_crc32(crc, spec->pieces[i].data, (size_t)spec->pieces[i].size);
            at += spec->pieces[i].size;
        }
        unsigned char *entry = table + (size_t)s * ENTRY_SIZE;
        strncpy((char *)entry, spec->kind, 8);
        tlmi_put_u64(entry + 8, offset);
        tlmi_put_u64(entry + 16, size);
        tlmi_put_u32(entry + 24, crc);
        offset = align_up(offset + size, TLMI_CONTAINER_ALIGN);
    }
    const uint64_t file_size = offset;
    memcpy(header, magic, sizeof magic);
    tlmi_put_u32(header + 8, TLMI_CONTAINER_VERSION);
    tlmi_put_u32(header + 12, HEADER_SIZE);
    tlmi_put_u64(header + 16, file_size);
    tlmi_put_u32(header + 24, (uint32_t)count);
    tlmi_put_u64(header + 32, HEADER_SIZE);
    tlmi_put_u32(header + 40, tlmi_crc32(0, table, (size_t)table_size));
    tlmi_put_u32(header + 44, tlmi_crc32(0, header, 44));

    tlmi_file_writer *w = NULL;
    int status = tlmi_file_writer_open(host, path, &w);
    if (status != TLM_OK)
        return status;
    status = tlmi_file_writer_write(w, header, sizeof header);
    if (status != TLM_OK)
        goto abort;
    status = tlmi_file_writer_write(w, table, (size_t)table_size);
    if (status != TLM_OK)
        goto abort;
    uint64_t written = HEADER_SIZE + table_size;
    for (int32_t s = 0; s < count; s++) {
        const tlmi_container_section_spec *spec = &sections[s];
        const uint64_t start = tlmi_get_u64(table + (size_t)s * ENTRY_SIZE + 8);
        status = write_padding(w, start - written, NULL);
        if (status != TLM_OK)
            goto abort;
        written = start;
        const uint64_t align = spec->piece_align ? spec->piece_align : 1;
        uint64_t at = 0;
        for (int32_t i = 0; i < spec->n_pieces; i++) {
            uint64_t padded = align_up(at, align);
            status = write_padding(w, padded - at, NULL);
            if (status != TLM_OK)
                goto abort;
            at = padded;
            if (spec->pieces[i].size > 0) {
                status = tlmi_file_writer_write(w, spec->pieces[i].data,
                                                (size_t)spec->pieces[i].size);
                if (status != TLM_OK)
                    goto abort;
            }
            at += spec->pieces[i].size;
        }
        written += at;
    }
    status = write_padding(w, file_size - written, NULL);
    if (status != TLM_OK)
        goto abort;
    return tlmi_file_writer_commit(w);

abort:
    tlmi_file_writer_abort(w);
    return status;
}

/* The first nonzero byte of bytes[from..to), or `to`. */
static size_t first_nonzero(const unsigned char *bytes, size_t from, size_t to) {
    while (from < to && bytes[from] == 0)
        from++;
    return from;
}

/* A kind is 1..8 printable ASCII characters, then NUL up to 8 bytes. */
static int kind_is_valid(const unsigned char *kind) {
    int length = 0;
    while (length < 8 && kind[length] != 0) {
        if (kind[length] < 0x21 || kind[length] > 0x7e)
            return 0;
        length++;
    }
    return length > 0 && first_nonzero(kind, (size_t)length, 8) == 8;
}

int tlmi_container_check_padding(tlmi_host *host, const char *what,
                                 const char *source, const unsigned char *bytes,
                                 uint64_t from, uint64_t to,
                                 uint64_t file_offset, const char *after) {
    const size_t at = first_nonzero(bytes, (size_t)from, (size_t)to);
    if (at < to)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' has the nonzero byte 0x%02x at offset %llu, "
                         "in the padding after %s (padding must be 0; the "
                         "file is corrupt)",
                         what, source, (unsigned)bytes[at],
                         (unsigned long long)(file_offset + at), after);
    return TLM_OK;
}

int tlmi_container_parse(tlmi_host *host, const char *what,
                          const char *source, const void *buffer, size_t size,
                          const char *skip_crc_of, tlmi_container *out) {
    const unsigned char *bytes = buffer;
    memset(out, 0, sizeof *out);
    if (size < HEADER_SIZE || memcmp(bytes, magic, sizeof magic) != 0)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' is not a tlm model file (%s)", what, source,
                         size < HEADER_SIZE ? "shorter than a header" : "bad magic");
    const uint32_t version = tlmi_get_u32(bytes + 8);
    if (version > TLMI_CONTAINER_VERSION)
        return tlmi_fail(host, TLM_E_VERSION,
                         "%s: '%s' has format version %u; this library reads "
                         "up to %d",
                         what, source, (unsigned)version, TLMI_CONTAINER_VERSION);
    if (version == 0 || tlmi_get_u32(bytes + 12) != HEADER_SIZE)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' has a malformed header (version %u, header "
                         "size %u)",
                         what, source, (unsigned)version,
                         (unsigned)tlmi_get_u32(bytes + 12));
    /* The reserved bytes are checked before the checksums so that the
     * message names the byte (28..31 are summed, 48..63 are not). */
    const size_t reserved_at = first_nonzero(bytes, 28, 32) < 32
                                   ? first_nonzero(bytes, 28, 32)
                                   : first_nonzero(bytes, 48, HEADER_SIZE);
    if (reserved_at < HEADER_SIZE)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' has the nonzero byte 0x%02x at offset %zu, "
                         "a reserved byte of the header (it must be 0; the "
                         "file is corrupt)",
                         what, source, (unsigned)bytes[reserved_at], reserved_at);
    if (tlmi_get_u32(bytes + 44) != tlmi_crc32(0, bytes, 44))
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: the header of '%s' fails its checksum (the file "
                         "is corrupt)",
                         what, source);
    const uint64_t file_size = tlmi_get_u64(bytes + 16);
    if (file_size != size)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' is %s: %zu bytes, the header says %llu", what,
                         source, size < file_size ? "truncated" : "longer than recorded",
                         size, (unsigned long long)file_size);
    const uint32_t count = tlmi_get_u32(bytes + 24);
    const uint64_t table_offset = tlmi_get_u64(bytes + 32);
    if (count == 0 || count > TLMI_CONTAINER_MAX_SECTIONS ||
        table_offset != HEADER_SIZE ||
        table_offset + (uint64_t)count * ENTRY_SIZE > size)
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' has a malformed section table (%u sections "
                         "at offset %llu)",
                         what, source, (unsigned)count,
                         (unsigned long long)table_offset);
    const unsigned char *table = bytes + table_offset;
    for (uint32_t s = 0; s < count; s++) {
        const size_t entry = (size_t)table_offset + (size_t)s * ENTRY_SIZE;
        const size_t at = first_nonzero(bytes, entry + 28, entry + ENTRY_SIZE);
        if (at < entry + ENTRY_SIZE)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: '%s' has the nonzero byte 0x%02x at offset "
                             "%zu, a reserved byte of section table entry %u "
                             "(it must be 0; the file is corrupt)",
                             what, source, (unsigned)bytes[at], at, (unsigned)s);
    }
    if (tlmi_get_u32(bytes + 40) != tlmi_crc32(0, table, (size_t)count * ENTRY_SIZE))
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: the section table of '%s' fails its checksum (the "
                         "file is corrupt)",
                         what, source);
    /* The layout is exactly the writer's: each section at the first
     * 64-byte boundary after the one before (the first after the table),
     * the file ending at the boundary after the last; the bytes between
     * are zero. So every byte of a file is either summed by a checksum or
     * known. */
    uint64_t previous_end = table_offset + (uint64_t)count * ENTRY_SIZE;
    char previous[32] = "the section table";
    for (uint32_t s = 0; s < count; s++) {
        const unsigned char *entry = table + (size_t)s * ENTRY_SIZE;
        tlmi_container_section *section = &out->sections[s];
        memcpy(section->kind, entry, 8);
        section->kind[8] = '\0';
        const int kind_ok = kind_is_valid(entry);
        for (int i = 0; i < 8 && section->kind[i]; i++)
            if (section->kind[i] < 0x20 || section->kind[i] > 0x7e)
                section->kind[i] = '?';
        if (!kind_ok)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: entry %u of the section table of '%s' (at "
                             "offset %zu) has the kind '%s', which is not 1 "
                             "to 8 printable ASCII characters padded with NUL",
                             what, (unsigned)s, source,
                             (size_t)table_offset + (size_t)s * ENTRY_SIZE,
                             section->kind);
        for (uint32_t k = 0; k < s; k++)
            if (memcmp(entry, table + (size_t)k * ENTRY_SIZE, 8) == 0)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: '%s' has two sections '%s' (entries %u "
                                 "and %u of its section table)",
                                 what, source, section->kind, (unsigned)k,
                                 (unsigned)s);
        section->offset = tlmi_get_u64(entry + 8);
        section->size = tlmi_get_u64(entry + 16);
        section->crc = tlmi_get_u32(entry + 24);
        if (section->offset % TLMI_CONTAINER_ALIGN != 0 ||
            section->offset < previous_end || section->offset > size ||
            section->size > size - section->offset)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: section '%s' of '%s' (offset %llu, %llu bytes) "
                             "lies outside the file, overlaps another or is "
                             "misaligned",
                             what, section->kind, source,
                             (unsigned long long)section->offset,
                             (unsigned long long)section->size);
        const uint64_t expected = align_up(previous_end, TLMI_CONTAINER_ALIGN);
        if (section->offset != expected)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: section '%s' of '%s' starts at offset %llu; "
                             "%s ends at %llu, so it must start at %llu (the "
                             "next multiple of %d)",
                             what, section->kind, source,
                             (unsigned long long)section->offset, previous,
                             (unsigned long long)previous_end,
                             (unsigned long long)expected, TLMI_CONTAINER_ALIGN);
        TLMI_TRY(tlmi_container_check_padding(host, what, source, bytes,
                                              previous_end, section->offset, 0,
                                              previous));
        previous_end = section->offset + section->size;
        snprintf(previous, sizeof previous, "section '%s'", section->kind);
        section->data = bytes + section->offset;
        if (skip_crc_of == NULL ||
            (strcmp(skip_crc_of, TLMI_CONTAINER_SKIP_ALL_CRCS) != 0 &&
             strcmp(section->kind, skip_crc_of) != 0)) {
            if (tlmi_crc32(0, section->data, (size_t)section->size) != section->crc)
                return tlmi_fail(host, TLM_E_FORMAT,
                                 "%s: section '%s' of '%s' fails its checksum "
                                 "(the file is corrupt)",
                                 what, section->kind, source);
        }
    }
    if (size != align_up(previous_end, TLMI_CONTAINER_ALIGN))
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: '%s' is %zu bytes; its last %s ends "
                         "at %llu, so the file must end at %llu (the next "
                         "multiple of %d)",
                         what, source, size, previous,
                         (unsigned long long)previous_end,
                         (unsigned long long)align_up(previous_end,
                                                      TLMI_CONTAINER_ALIGN),
                         TLMI_CONTAINER_ALIGN);
    TLMI_TRY(tlmi_container_check_padding(host, what, source, bytes,
                                          previous_end, size, 0, previous));
    out->version = version;
    out->count = (int32_t)count;
    return TLM_OK;
}

int tlmi_container_check_mapped(tlmi_host *host, const char *what,
                                const char *source,
                                const tlmi_file_mapping *mapping,
                                const tlmi_container *container,
                                const char *skip_kind) {
    const size_t piece = (size_t)16 << 20;
    for (int32_t i = 0; i < container->count; i++) {
        const tlmi_container_section *section = &container->sections[i];
        if (skip_kind != NULL && strcmp(section->kind, skip_kind) == 0)
            continue;
        uint32_t crc = 0;
        for (uint64_t at = 0; at < section->size; at += piece) {
            const size_t n = section->size - at < piece ? (size_t)(section->size - at)
                                                        : piece;
            crc = tlmi_crc32(crc, section->data + at, n);
            tlmi_file_mapping_release(mapping, section->data + at, n);
        }
        if (crc != section->crc)
            return tlmi_fail(host, TLM_E_FORMAT,
                             "%s: section '%s' of '%s' fails its checksum "
                             "(the file is corrupt)",
                             what, section->kind, source);
    }
    return TLM_OK;
}

const tlmi_container_section *tlmi_container_find(const tlmi_container *c,
                                                    const char *kind) {
    for (int32_t i = 0; i < c->count; i++)
        if (strcmp(c->sections[i].kind, kind) == 0)
            return &c->sections[i];
    return NULL;
}
