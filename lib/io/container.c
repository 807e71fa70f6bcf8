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
    if (tlmi_get_u32(bytes + 40) != tlmi_crc32(0, table, (size_t)count * ENTRY_SIZE))
        return tlmi_fail(host, TLM_E_FORMAT,
                         "%s: the section table of '%s' fails its checksum (the "
                         "file is corrupt)",
                         what, source);
    uint64_t previous_end = table_offset + (uint64_t)count * ENTRY_SIZE;
    for (uint32_t s = 0; s < count; s++) {
        const unsigned char *entry = table + (size_t)s * ENTRY_SIZE;
        tlmi_container_section *section = &out->sections[s];
        memcpy(section->kind, entry, 8);
        section->kind[8] = '\0';
        for (int i = 0; i < 8 && section->kind[i]; i++)
            if (section->kind[i] < 0x20 || section->kind[i] > 0x7e)
                section->kind[i] = '?';
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
        previous_end = section->offset + section->size;
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
