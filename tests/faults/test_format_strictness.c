/*
 * Formats detect what they claim (issue #21, findings 7 and 9;
 * docs/format.md and docs/format-safetensors.md say what is checked).
 *
 * .tlm: every reserved byte of the header and the section table, and
 * every padding byte between and after the sections and between the
 * tensors of the data section, is set nonzero in turn, the checksums made
 * right again (so that the check reached is the one under test); a copied
 * load, a mapped one and a mapped one that skips the data's checksum must
 * all refuse it naming the byte's offset. Files laid out by a writer in
 * this test (checksums right) with a duplicate section, overlapping
 * tensors, a gap between tensors or bytes after the last tensor are
 * refused too.
 *
 * safetensors: a header length one byte short, holes, overlaps, bytes
 * after the last tensor, a header that is no JSON object, shapes written
 * 75.0, 7.5e1, -1 or 1e30, and NaN or infinite weights (refused unless
 * tlm_model_import_params.allow_nonfinite) — each refused with a message
 * naming the file and what is wrong.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/crc32.h"
#include "base/endian.h"
#include "counting_allocator.h"
#include "temp_dir.h"
#include "tlm.h"

static char dir[512];

static int setup(void **state) {
    (void)state;
    return temp_dir_create(dir, sizeof dir) == 0 ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    temp_dir_remove(dir);
    return 0;
}

/* Bytes in memory: a file's contents, or a section being built. */
typedef struct bytes {
    unsigned char *data;
    size_t size;
} bytes;

static bytes read_file(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    bytes out = {NULL, (size_t)ftell(f)};
    fseek(f, 0, SEEK_SET);
    out.data = malloc(out.size);
    assert_non_null(out.data);
    assert_int_equal(fread(out.data, 1, out.size, f), out.size);
    fclose(f);
    return out;
}

static void write_file(const char *path, const void *data, size_t size) {
    FILE *out = fopen(path, "wb");
    assert_non_null(out);
    assert_int_equal(fwrite(data, 1, size, out), size);
    fclose(out);
}

static bytes copy_of(const void *data, size_t size) {
    bytes out = {malloc(size ? size : 1), size};
    assert_non_null(out.data);
    if (size > 0)
        memcpy(out.data, data, size);
    return out;
}

/* ------------------------------------------------------------------------
 * .tlm
 */

enum { HEADER = 64, ENTRY = 32, ALIGN = 64 };

static uint64_t align_up(uint64_t v) {
    return (v + ALIGN - 1) / ALIGN * ALIGN;
}

static uint32_t section_count(const bytes *f) {
    return tlmi_get_u32(f->data + 24);
}

/* Section `kind` of file `f` (NULL when absent). */
static unsigned char *find_section(const bytes *f, const char *kind,
                                   uint64_t *offset, uint64_t *size) {
    for (uint32_t i = 0; i < section_count(f); i++) {
        unsigned char *entry = f->data + HEADER + ENTRY * i;
        if (strncmp((const char *)entry, kind, 8) == 0) {
            *offset = tlmi_get_u64(entry + 8);
            *size = tlmi_get_u64(entry + 16);
            return f->data + *offset;
        }
    }
    return NULL;
}

/* Every section's checksum, the table's and the header's, made right. */
static void fix_checksums(bytes *f) {
    const uint32_t count = section_count(f);
    for (uint32_t i = 0; i < count; i++) {
        unsigned char *entry = f->data + HEADER + ENTRY * i;
        tlmi_put_u32(entry + 24, tlmi_crc32(0, f->data + tlmi_get_u64(entry + 8),
                                       (size_t)tlmi_get_u64(entry + 16)));
    }
    tlmi_put_u32(f->data + 40, tlmi_crc32(0, f->data + HEADER, (size_t)count * ENTRY));
    tlmi_put_u32(f->data + 44, tlmi_crc32(0, f->data, 44));
}

/* A section for build_file. */
typedef struct section_spec {
    const char *kind;
    bytes content;
} section_spec;

/* A .tlm file laid out as the library's writer lays one out, checksums
 * right: what the loader then refuses is what the sections say. */
static bytes build_file(const section_spec *sections, uint32_t count) {
    uint64_t end = HEADER + (uint64_t)ENTRY * count;
    uint64_t offsets[16];
    assert_true(count <= 16);
    for (uint32_t i = 0; i < count; i++) {
        offsets[i] = align_up(end);
        end = offsets[i] + sections[i].content.size;
    }
    bytes f = {calloc(1, (size_t)align_up(end)), (size_t)align_up(end)};
    assert_non_null(f.data);
    static const unsigned char magic[8] = {0x89, 'T', 'L', 'M', '\r', '\n', 0x1a, '\n'};
    memcpy(f.data, magic, 8);
    tlmi_put_u32(f.data + 8, 1);
    tlmi_put_u32(f.data + 12, HEADER);
    tlmi_put_u64(f.data + 16, f.size);
    tlmi_put_u32(f.data + 24, count);
    tlmi_put_u64(f.data + 32, HEADER);
    for (uint32_t i = 0; i < count; i++) {
        unsigned char *entry = f.data + HEADER + ENTRY * i;
        strncpy((char *)entry, sections[i].kind, 8);
        tlmi_put_u64(entry + 8, offsets[i]);
        tlmi_put_u64(entry + 16, sections[i].content.size);
        if (sections[i].content.size > 0)
            memcpy(f.data + offsets[i], sections[i].content.data,
                   sections[i].content.size);
    }
    fix_checksums(&f);
    return f;
}

/* The tensor index of a section: where entry i's offset field is, and its
 * data size. */
typedef struct index_entry {
    size_t offset_at; /* in the index section */
    uint64_t offset, size;
} index_entry;

static uint32_t read_index(const bytes *index, index_entry *entries, uint32_t max) {
    const uint32_t count = tlmi_get_u32(index->data);
    assert_true(count <= max);
    size_t at = 4;
    for (uint32_t i = 0; i < count; i++) {
        const size_t length = index->data[at] | (size_t)index->data[at + 1] << 8;
        const int ndim = index->data[at + 3 + length];
        at += 2 + length + 4 + 8 * (size_t)ndim;
        entries[i].offset_at = at;
        entries[i].offset = tlmi_get_u64(index->data + at);
        entries[i].size = tlmi_get_u64(index->data + at + 8);
        at += 16;
    }
    assert_int_equal(at, index->size);
    return count;
}

/* Loads `path` copied, mapped and mapped without the data's checksum
 * (`modes` of those 3, from the first): each must refuse it with
 * TLM_E_FORMAT, a message naming the file and holding `words`, and leave
 * nothing allocated. */
static void expect_refused_modes(const char *path, const char *words, int modes) {
    for (int mode = 0; mode < modes; mode++) {
        counting_allocator counter = {0};
        tlm_context *ctx = NULL;
        assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = mode > 0;
        params.verify_checksums = mode < 2;
        tlm_model *m = NULL;
        const int status = tlm_model_load(&m, ctx, path, &params);
        if (status != TLM_E_FORMAT || m != NULL ||
            strstr(tlm_last_error(), words) == NULL ||
            strstr(tlm_last_error(), path) == NULL)
            fail_msg("load (mode %d) of %s gave %s '%s', expected TLM_E_FORMAT "
                     "with '%s'",
                     mode, path, tlm_status_name(status), tlm_last_error(), words);
        tlm_model_free(m);
        tlm_context_free(ctx);
        assert_int_equal(counter.live_bytes, 0);
    }
}

static void expect_refused(const bytes *f, const char *words, int modes) {
    char path[600];
    snprintf(path, sizeof path, "%s/bad.tlm", dir);
    write_file(path, f->data, f->size);
    expect_refused_modes(path, words, modes);
}

static void expect_loads(const bytes *f) {
    char path[600];
    snprintf(path, sizeof path, "%s/ok.tlm", dir);
    write_file(path, f->data, f->size);
    for (int map = 0; map <= 1; map++) {
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = map;
        tlm_model *m = NULL;
        if (tlm_model_load(&m, ctx, path, &params) != TLM_OK)
            fail_msg("load (map %d): %s", map, tlm_last_error());
        tlm_model_free(m);
        tlm_context_free(ctx);
    }
}

/* A small model saved at `path` and read back. Its data section has
 * padding between tensors: d_model 24 makes the norm vectors 96 bytes. */
static bytes good_tlm(const char *path, int32_t weights) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 12;
    c.d_model = 24;
    c.n_heads = 2;
    c.d_ff = 40;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    if (weights != TLM_WEIGHTS_F32) {
        tlm_model *q = NULL;
        assert_int_equal(tlm_model_quantize(&q, m, weights), TLM_OK);
        tlm_model_free(m);
        m = q;
    }
    assert_int_equal(tlm_model_save(m, path), TLM_OK);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return read_file(path);
}

/* Under valgrind (TLM_TEST_VALGRIND) a gap's bytes are sampled: its first
 * and last and every 8th between; natively every byte. */
static int gap_step(void) {
    return getenv("TLM_TEST_VALGRIND") != NULL ? 8 : 1;
}

/* Sets byte `at` of a copy of `good` nonzero, fixes the checksums and
 * expects every load to refuse it naming the offset. */
static void expect_byte_refused(const bytes *good, size_t at, int modes) {
    /* A byte past the end would be this test's mistake: say so, rather
     * than write past the copy. */
    if (at >= good->size) {
        fail_msg("byte %zu is past the file's %zu bytes", at, good->size);
        return;
    }
    bytes f = copy_of(good->data, good->size);
    f.data[at] ^= 0x5a;
    fix_checksums(&f);
    char words[64];
    snprintf(words, sizeof words, "at offset %zu", at);
    expect_refused(&f, words, modes);
    free(f.data);
}

static void tlm_reserved_bytes_and_padding_are_zero(void **state) {
    (void)state;
    const int32_t formats[2] = {TLM_WEIGHTS_F32, TLM_WEIGHTS_INT8};
    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/good.tlm", dir);
        bytes good = good_tlm(path, formats[k]);
        expect_loads(&good);
        const uint32_t count = section_count(&good);
        size_t checked = 0;
        /* The header's reserved bytes: 28..31 and 48..63. */
        for (size_t at = 28; at < 32; at++, checked++)
            expect_byte_refused(&good, at, 3);
        for (size_t at = 48; at < HEADER; at++, checked++)
            expect_byte_refused(&good, at, 3);
        /* Each table entry's reserved u32 (summed by the table's checksum,
         * which fix_checksums made right; refused all the same). */
        for (uint32_t s = 0; s < count; s++) {
            const size_t entry = HEADER + (size_t)ENTRY * s;
            for (size_t at = entry + 28; at < entry + ENTRY; at++, checked++)
                expect_byte_refused(&good, at, 3);
        }
        /* Every byte between the table and the first section, between
         * sections, and after the last. */
        uint64_t end = HEADER + (uint64_t)ENTRY * count;
        for (uint32_t s = 0; s <= count; s++) {
            const uint64_t next =
                s < count ? tlmi_get_u64(good.data + HEADER + ENTRY * s + 8) : good.size;
            for (uint64_t at = end; at < next; at++, checked++)
                if ((at - end) % (uint64_t)gap_step() == 0 || at + 1 == next)
                    expect_byte_refused(&good, (size_t)at, 3);
            if (s < count)
                end = next + tlmi_get_u64(good.data + HEADER + ENTRY * s + 16);
        }
        /* The padding between tensors in the data section (summed by its
         * checksum, which fix_checksums made right): refused by every
         * load, the mapped one without checksums too. */
        uint64_t index_offset = 0, index_size = 0, data_offset = 0, data_size = 0;
        unsigned char *index_bytes =
            find_section(&good, "tensors", &index_offset, &index_size);
        assert_non_null(index_bytes);
        assert_non_null(find_section(&good, "data", &data_offset, &data_size));
        bytes index = {index_bytes, (size_t)index_size};
        index_entry entries[64];
        const uint32_t n = read_index(&index, entries, 64);
        size_t data_padding = 0;
        for (uint32_t i = 0; i + 1 < n; i++)
            for (uint64_t from = entries[i].offset + entries[i].size, at = from;
                 at < entries[i + 1].offset; at++, data_padding++)
                if ((at - from) % (uint64_t)gap_step() == 0 || at + 1 == entries[i + 1].offset)
                    expect_byte_refused(&good, (size_t)(data_offset + at), 3);
        assert_true(data_padding > 0);
        print_message("%s: %zu reserved and padding bytes of the container, "
                      "%zu of the data section, each (or every %d-th) refused "
                      "by 3 loads\n",
                      k ? "int8" : "f32", checked, data_padding, gap_step());
        /* The reserved u16 of an index entry (summed by the checksum). */
        bytes f = copy_of(good.data, good.size);
        const size_t reserved = (size_t)index_offset + 4 + 2 +
                                (index.data[4] | (size_t)index.data[5] << 8) + 2;
        f.data[reserved] = 1;
        fix_checksums(&f);
        char words[64];
        snprintf(words, sizeof words, "reserved field at offset %zu", reserved);
        expect_refused(&f, words, 3);
        free(f.data);
        free(good.data);
    }
}

/* The good file's sections, to build variants from. */
typedef struct parts {
    bytes file;
    bytes config, index, data;
} parts;

static parts good_parts(void) {
    char path[600];
    snprintf(path, sizeof path, "%s/parts.tlm", dir);
    parts p;
    p.file = good_tlm(path, TLM_WEIGHTS_F32);
    uint64_t offset = 0, size = 0;
    unsigned char *at = find_section(&p.file, "config", &offset, &size);
    p.config = (bytes){at, (size_t)size};
    at = find_section(&p.file, "tensors", &offset, &size);
    p.index = (bytes){at, (size_t)size};
    at = find_section(&p.file, "data", &offset, &size);
    p.data = (bytes){at, (size_t)size};
    return p;
}

static void tlm_sections_are_unique(void **state) {
    (void)state;
    parts p = good_parts();
    /* As written: loads (the writer in this test is the library's). */
    section_spec same[3] = {{"config", p.config}, {"tensors", p.index}, {"data", p.data}};
    bytes f = build_file(same, 3);
    assert_int_equal(f.size, p.file.size);
    assert_memory_equal(f.data, p.file.data, f.size);
    free(f.data);
    /* An unknown kind is skipped (a later version may add some). */
    section_spec extra[4] = {{"config", p.config}, {"tensors", p.index},
                             {"data", p.data}, {"future", p.config}};
    f = build_file(extra, 4);
    expect_loads(&f);
    free(f.data);
    /* A second config (the first used to win), data or unknown section. */
    section_spec twice[4] = {{"config", p.config}, {"tensors", p.index},
                             {"data", p.data}, {"config", p.config}};
    f = build_file(twice, 4);
    expect_refused(&f, "two sections 'config' (entries 0 and 3", 3);
    free(f.data);
    twice[3] = (section_spec){"data", p.data};
    f = build_file(twice, 4);
    expect_refused(&f, "two sections 'data'", 3);
    free(f.data);
    section_spec unknown[5] = {{"config", p.config}, {"tensors", p.index},
                               {"data", p.data}, {"future", p.config},
                               {"future", p.index}};
    f = build_file(unknown, 5);
    expect_refused(&f, "two sections 'future'", 3);
    free(f.data);
    /* A kind that is not NUL-padded ASCII. */
    f = build_file(same, 3);
    f.data[HEADER + 7] = 'x'; /* "config\0x" */
    fix_checksums(&f);
    expect_refused(&f, "printable ASCII characters padded with NUL", 3);
    free(f.data);
    free(p.file.data);
}

static void tlm_tensors_do_not_overlap(void **state) {
    (void)state;
    parts p = good_parts();
    index_entry entries[64];
    const uint32_t n = read_index(&p.index, entries, 64);
    assert_true(n > 3);
    /* Tensor 2 starts where tensor 1 does: overlapping data. */
    bytes index = copy_of(p.index.data, p.index.size);
    tlmi_put_u64(index.data + entries[2].offset_at, entries[1].offset);
    section_spec sections[3] = {{"config", p.config}, {"tensors", index}, {"data", p.data}};
    bytes f = build_file(sections, 3);
    expect_refused(&f, "overlaps the one before it", 3);
    free(f.data);
    /* Tensor 2 inside tensor 1 (a 64-byte boundary within it). */
    assert_true(entries[1].size > 64);
    tlmi_put_u64(index.data + entries[2].offset_at, entries[1].offset + 64);
    f = build_file(sections, 3);
    expect_refused(&f, "overlaps the one before it", 3);
    free(f.data);
    /* Tensors 1 and 2 swapped: out of the index's order (1 now leaves a
     * gap where 2 was). */
    memcpy(index.data, p.index.data, p.index.size);
    tlmi_put_u64(index.data + entries[1].offset_at, entries[2].offset);
    tlmi_put_u64(index.data + entries[2].offset_at, entries[1].offset);
    f = build_file(sections, 3);
    expect_refused(&f, "so it must start at", 3);
    free(f.data);
    /* A gap of 64 unused bytes before tensor 2 (the data section grown). */
    memcpy(index.data, p.index.data, p.index.size);
    for (uint32_t i = 2; i < n; i++)
        tlmi_put_u64(index.data + entries[i].offset_at, entries[i].offset + 64);
    bytes data = {calloc(1, p.data.size + 64), p.data.size + 64};
    assert_non_null(data.data);
    memcpy(data.data, p.data.data, (size_t)entries[2].offset);
    memcpy(data.data + entries[2].offset + 64, p.data.data + entries[2].offset,
           p.data.size - (size_t)entries[2].offset);
    sections[2].content = data;
    f = build_file(sections, 3);
    expect_refused(&f, "so it must start at", 3);
    free(f.data);
    /* 64 bytes after the last tensor. */
    memcpy(data.data, p.data.data, p.data.size);
    memset(data.data + p.data.size, 0, 64);
    sections[1].content = p.index;
    f = build_file(sections, 3);
    expect_refused(&f, "64 bytes after its last tensor", 3);
    free(f.data);
    free(data.data);
    free(index.data);
    free(p.file.data);
}

/* The section layout is the writer's: a section moved to a later
 * boundary (the file grown to match) is refused, naming both offsets. */
static void tlm_sections_follow_each_other(void **state) {
    (void)state;
    parts p = good_parts();
    section_spec sections[3] = {{"config", p.config}, {"tensors", p.index}, {"data", p.data}};
    bytes f = build_file(sections, 3);
    bytes moved = {calloc(1, f.size + 64), f.size + 64};
    assert_non_null(moved.data);
    uint64_t offset = 0, size = 0;
    find_section(&f, "data", &offset, &size);
    memcpy(moved.data, f.data, (size_t)offset);
    memcpy(moved.data + offset + 64, f.data + offset, f.size - (size_t)offset);
    tlmi_put_u64(moved.data + 16, moved.size);
    tlmi_put_u64(moved.data + HEADER + 2 * ENTRY + 8, offset + 64);
    fix_checksums(&moved);
    char words[96];
    snprintf(words, sizeof words, "starts at offset %llu",
             (unsigned long long)(offset + 64));
    expect_refused(&moved, words, 3);
    free(moved.data);
    free(f.data);
    free(p.file.data);
}

/* ------------------------------------------------------------------------
 * safetensors
 */

/* A safetensors file from its header text (padded with spaces to
 * `header_size` when that is larger) and data. */
static bytes safetensors_file(const char *header, size_t header_size,
                              const void *data, size_t data_size) {
    const size_t text = strlen(header);
    if (header_size < text)
        header_size = text;
    bytes f = {malloc(8 + header_size + data_size + 1), 8 + header_size + data_size};
    assert_non_null(f.data);
    tlmi_put_u64(f.data, header_size);
    memset(f.data + 8, ' ', header_size);
    memcpy(f.data + 8, header, text);
    if (data_size > 0)
        memcpy(f.data + 8 + header_size, data, data_size);
    return f;
}

/* Imports `f` (written to `name` in the temporary directory) as
 * `format`: refused with `status` and a message naming the file and
 * holding `words`; nothing left allocated. */
static void expect_import_refused(const bytes *f, const char *name, int32_t format,
                                  int status_wanted, const char *words) {
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    write_file(path, f->data, f->size);
    counting_allocator counter = {0};
    tlm_context *ctx = NULL;
    assert_int_equal(counting_context_create(&ctx, &counter), TLM_OK);
    tlm_model_import_params params;
    tlm_model_import_params_init(&params);
    params.format = format;
    tlm_model *m = NULL;
    const int status = tlm_model_import(&m, ctx, path, &params);
    if (status != status_wanted || m != NULL ||
        strstr(tlm_last_error(), words) == NULL ||
        strstr(tlm_last_error(), name) == NULL)
        fail_msg("import of %s gave %s '%s', expected %s with '%s'", name,
                 tlm_status_name(status), tlm_last_error(),
                 tlm_status_name(status_wanted), words);
    print_message("refused: %s\n", tlm_last_error());
    tlm_model_free(m);
    tlm_context_free(ctx);
    assert_int_equal(counter.live_bytes, 0);
}

static const float values[6] = {1, 2, 3, 4, 5, 6};

static void safetensors_data_section_is_covered_exactly(void **state) {
    (void)state;
    const int32_t formats[2] = {TLM_MODEL_FORMAT_SAFETENSORS, TLM_MODEL_FORMAT_HF};
    for (int k = 0; k < 2; k++) {
        const int32_t format = formats[k];
        /* Two tensors, 8 and 16 bytes. */
        bytes f = safetensors_file(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            128, values, 24);
        /* The header length one byte short: the JSON still ends before
         * it, and every tensor would shift by a byte. */
        tlmi_put_u64(f.data, 127);
        expect_import_refused(&f, "short.safetensors", format, TLM_E_FORMAT,
                              "cover 24; the rest, from file byte 159, belongs to no tensor");
        tlmi_put_u64(f.data, 128);
        free(f.data);
        /* Bytes after the last tensor. */
        float more[8] = {0};
        f = safetensors_file(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}",
            128, more, 28);
        expect_import_refused(&f, "tail.safetensors", format, TLM_E_FORMAT,
                              "cover 24; the rest, from file byte 160, belongs to no tensor");
        free(f.data);
        /* A hole between the tensors. */
        f = safetensors_file(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[12,28]}}",
            128, more, 28);
        expect_import_refused(&f, "hole.safetensors", format, TLM_E_FORMAT,
                              "leave a hole between them");
        free(f.data);
        /* The first tensor not at 0. */
        f = safetensors_file(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            96, more, 12);
        expect_import_refused(&f, "start.safetensors", format, TLM_E_FORMAT,
                              "it must begin at 0");
        free(f.data);
        /* Overlapping tensors. */
        f = safetensors_file(
            "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[4,20]}}",
            128, more, 20);
        expect_import_refused(&f, "overlap.safetensors", format, TLM_E_FORMAT,
                              "overlap");
        free(f.data);
    }
}

static void safetensors_header_is_a_json_object(void **state) {
    (void)state;
    /* A text file: its first 8 bytes give a huge header length. */
    const char *text = "hello world, this is a small text file\n";
    bytes f = copy_of(text, strlen(text));
    expect_import_refused(&f, "small.txt", TLM_MODEL_FORMAT_SAFETENSORS,
                          TLM_E_FORMAT, "small.txt' is not a safetensors file (");
    expect_import_refused(&f, "small.txt", TLM_MODEL_FORMAT_HF, TLM_E_FORMAT,
                          "small.txt' is not a safetensors file (");
    free(f.data);
    /* A length that fits, but no JSON object after it. */
    f = safetensors_file("[1, 2]", 8, NULL, 0);
    expect_import_refused(&f, "array.safetensors", TLM_MODEL_FORMAT_SAFETENSORS,
                          TLM_E_FORMAT, "is not a safetensors file (its header, at byte 8, "
                                        "does not start with '{')");
    free(f.data);
    /* Too short for a length. */
    f = copy_of("abc", 3);
    expect_import_refused(&f, "tiny.safetensors", TLM_MODEL_FORMAT_SAFETENSORS,
                          TLM_E_FORMAT, "is not a safetensors file (3 bytes");
    free(f.data);
}

static void safetensors_shapes_are_integers(void **state) {
    (void)state;
    static const char *const shapes[] = {"75.0", "7.5e1", "-1", "1e30", "2.0", "2e0"};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        char header[200];
        snprintf(header, sizeof header,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[%s],\"data_offsets\":[0,8]}}",
                 shapes[i]);
        bytes f = safetensors_file(header, 96, values, 8);
        char words[120];
        snprintf(words, sizeof words, "shape[0] is %s at header byte", shapes[i]);
        expect_import_refused(&f, "shape.safetensors", TLM_MODEL_FORMAT_HF,
                              TLM_E_FORMAT, words);
        free(f.data);
        snprintf(header, sizeof header,
                 "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,%s]}}",
                 shapes[i][0] == '7' ? "8.0" : shapes[i]);
        f = safetensors_file(header, 96, values, 8);
        expect_import_refused(&f, "offsets.safetensors", TLM_MODEL_FORMAT_HF,
                              TLM_E_FORMAT, "data_offsets[1] is");
        free(f.data);
    }
}

/* A tlm safetensors export of a small model at `path`, read back. */
static bytes exported(const char *path) {
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 12;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 16;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    assert_int_equal(tlm_model_export_safetensors(m, path), TLM_OK);
    tlm_model_free(m);
    tlm_context_free(ctx);
    return read_file(path);
}

/* Where tensor `name`'s data starts in safetensors file `f` (its
 * data_offsets' begin, found in the header text). */
static size_t tensor_at(const bytes *f, const char *name) {
    const size_t header = (size_t)tlmi_get_u64(f->data);
    char key[160];
    snprintf(key, sizeof key, "\"%s\":", name);
    char *text = malloc(header + 1);
    assert_non_null(text);
    memcpy(text, f->data + 8, header);
    text[header] = '\0';
    const char *entry = strstr(text, key);
    assert_non_null(entry);
    const char *offsets = strstr(entry, "\"data_offsets\":[");
    assert_non_null(offsets);
    const size_t begin = (size_t)strtoull(offsets + 16, NULL, 10);
    free(text);
    return 8 + header + begin;
}

static void nonfinite_weights_are_refused(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    bytes good = exported(path);
    const char *name = "decoder.layers.0.ffn.up_proj.weight"; /* [16, 8] */
    const size_t at = tensor_at(&good, name);
    static const struct {
        uint32_t bits;
        const char *word;
    } bad[3] = {{0x7fc00000u, "NaN"}, {0x7f800000u, "infinity"}, {0xff800000u, "-infinity"}};
    for (int k = 0; k < 3; k++) {
        bytes f = copy_of(good.data, good.size);
        tlmi_put_u32(f.data + at + 4 * 19, bad[k].bits); /* element 19: [2, 3] */
        char words[200];
        snprintf(words, sizeof words, "tensor '%s' has %s at element 19 [2, 3]",
                 name, bad[k].word);
        expect_import_refused(&f, "nan.safetensors", TLM_MODEL_FORMAT_AUTO,
                              TLM_E_FORMAT, words);
        /* tlm_model_import_safetensors refuses it too. */
        tlm_context *ctx = NULL;
        assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
        tlm_model *m = NULL;
        char file[600];
        snprintf(file, sizeof file, "%s/nan.safetensors", dir);
        assert_int_equal(tlm_model_import_safetensors(&m, ctx, file), TLM_E_FORMAT);
        assert_non_null(strstr(tlm_last_error(), words));
        /* allow_nonfinite imports it, value and all. */
        tlm_model_import_params params;
        tlm_model_import_params_init(&params);
        assert_int_equal(params.allow_nonfinite, 0);
        params.allow_nonfinite = 1;
        assert_int_equal(tlm_model_import(&m, ctx, file, &params), TLM_OK);
        tlm_model_free(m);
        params.allow_nonfinite = 2;
        m = NULL;
        assert_int_equal(tlm_model_import(&m, ctx, file, &params), TLM_E_INVALID);
        assert_null(m);
        tlm_context_free(ctx);
        free(f.data);
    }
    free(good.data);
}

/* A Hugging Face GPT-2 checkpoint with one NaN, in F32 and BF16: refused
 * naming the file's tensor (GPT-2's name) and element. */
static void nonfinite_hf_weights_are_refused(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/hf", dir);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 12;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    const int32_t types[2] = {TLM_WEIGHT_F32, TLM_WEIGHT_BF16};
    for (int k = 0; k < 2; k++) {
        tlm_model_export_params out;
        tlm_model_export_params_init(&out);
        out.format = TLM_MODEL_FORMAT_HF;
        out.weight_type = types[k];
        assert_int_equal(tlm_model_export(m, path, &out), TLM_OK);
        char file[700];
        snprintf(file, sizeof file, "%s/model.safetensors", path);
        bytes f = read_file(file);
        /* c_attn.weight is [8, 24]: element 30 is [1, 6]. */
        const size_t at = tensor_at(&f, "transformer.h.0.attn.c_attn.weight");
        if (k == 0)
            tlmi_put_u32(f.data + at + 4 * 30, 0x7fc00001u);
        else
            f.data[at + 2 * 30] = 0x80, f.data[at + 2 * 30 + 1] = 0x7f; /* +inf */
        write_file(file, f.data, f.size);
        free(f.data);
        tlm_model *back = NULL;
        assert_int_equal(tlm_model_import(&back, ctx, path, NULL), TLM_E_FORMAT);
        assert_null(back);
        if (strstr(tlm_last_error(), "c_attn.weight' has") == NULL ||
            strstr(tlm_last_error(), k == 0 ? "NaN at element 30 [1, 6]"
                                            : "infinity at element 30 [1, 6]") == NULL)
            fail_msg("unexpected message: %s", tlm_last_error());
        print_message("refused: %s\n", tlm_last_error());
        tlm_model_import_params params;
        tlm_model_import_params_init(&params);
        params.allow_nonfinite = 1;
        assert_int_equal(tlm_model_import(&back, ctx, path, &params), TLM_OK);
        tlm_model_free(back);
    }
    tlm_model_free(m);
    tlm_context_free(ctx);
}

/* llm.c and llama2.c checkpoints with a NaN (or -inf) as their first
 * weight (the token embedding's element 0, right after the header):
 * refused naming tlm's parameter; allow_nonfinite imports them. */
static void nonfinite_checkpoint_weights_are_refused(void **state) {
    (void)state;
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 12;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 32;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *gpt2 = NULL;
    assert_int_equal(tlm_model_create(&gpt2, ctx, &c), TLM_OK);
    c.position = TLM_POSITION_ROTARY;
    c.norm = TLM_NORM_RMS;
    c.activation = TLM_ACTIVATION_SWIGLU;
    c.bias = 0;
    c.tied_output = 0;
    tlm_model *llama = NULL;
    assert_int_equal(tlm_model_create(&llama, ctx, &c), TLM_OK);
    static const struct {
        int32_t format;
        size_t header; /* bytes before the token embedding */
        const char *name;
        uint32_t bits;
        const char *word;
    } cases[2] = {{TLM_MODEL_FORMAT_LLMC, 1024, "ckpt.bin", 0x7fc00000u, "NaN"},
                  {TLM_MODEL_FORMAT_LLAMA2C, 28, "stories.bin", 0xff800000u, "-infinity"}};
    for (int k = 0; k < 2; k++) {
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, cases[k].name);
        tlm_model_export_params out;
        tlm_model_export_params_init(&out);
        out.format = cases[k].format;
        assert_int_equal(tlm_model_export(k == 0 ? gpt2 : llama, path, &out), TLM_OK);
        bytes f = read_file(path);
        tlmi_put_u32(f.data + cases[k].header, cases[k].bits);
        write_file(path, f.data, f.size);
        free(f.data);
        tlm_model *back = NULL;
        assert_int_equal(tlm_model_import(&back, ctx, path, NULL), TLM_E_FORMAT);
        assert_null(back);
        char words[200];
        snprintf(words, sizeof words,
                 "parameter 'token_embedding.weight' has %s at element 0 [0, 0]",
                 cases[k].word);
        if (strstr(tlm_last_error(), words) == NULL ||
            strstr(tlm_last_error(), cases[k].name) == NULL)
            fail_msg("unexpected message: %s", tlm_last_error());
        print_message("refused: %s\n", tlm_last_error());
        tlm_model_import_params params;
        tlm_model_import_params_init(&params);
        params.allow_nonfinite = 1;
        assert_int_equal(tlm_model_import(&back, ctx, path, &params), TLM_OK);
        tlm_model_free(back);
    }
    tlm_model_free(llama);
    tlm_model_free(gpt2);
    tlm_context_free(ctx);
}

/* A damaged tokenizer section (its checksum made right, so the
 * tokenizer's own reader meets the damage) is refused naming the file and
 * the section, not only the tokenizer's offset within it. */
static void tlm_tokenizer_errors_name_the_file(void **state) {
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/with_tokenizer.tlm", dir);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tokenizer_params tp;
    tlm_tokenizer_params_init(&tp);
    tp.kind = TLM_TOKENIZER_BYTE;
    tlm_tokenizer *tok = NULL;
    assert_int_equal(tlm_tokenizer_train(&tok, ctx, NULL, 0, &tp), TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = tlm_tokenizer_vocab_size(tok);
    c.d_model = 16;
    c.n_heads = 2;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    tlm_model *m = NULL;
    assert_int_equal(tlm_model_create(&m, ctx, &c), TLM_OK);
    assert_int_equal(tlm_model_set_tokenizer(m, tok), TLM_OK);
    assert_int_equal(tlm_model_save(m, path), TLM_OK);
    tlm_model_free(m);
    tlm_tokenizer_free(tok);
    tlm_context_free(ctx);

    bytes f = read_file(path);
    uint64_t offset = 0, size = 0;
    unsigned char *section = find_section(&f, "tokenizr", &offset, &size);
    assert_non_null(section);
    assert_true(size > 8);
    memset(section, 0xee, 8); /* the tokenizer file's magic */
    fix_checksums(&f);
    char words[96];
    snprintf(words, sizeof words, "section 'tokenizr' at byte %llu",
             (unsigned long long)offset);
    expect_refused(&f, words, 3);
    free(f.data);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tlm_reserved_bytes_and_padding_are_zero),
        cmocka_unit_test(tlm_sections_are_unique),
        cmocka_unit_test(tlm_tensors_do_not_overlap),
        cmocka_unit_test(tlm_sections_follow_each_other),
        cmocka_unit_test(tlm_tokenizer_errors_name_the_file),
        cmocka_unit_test(safetensors_data_section_is_covered_exactly),
        cmocka_unit_test(safetensors_header_is_a_json_object),
        cmocka_unit_test(safetensors_shapes_are_integers),
        cmocka_unit_test(nonfinite_weights_are_refused),
        cmocka_unit_test(nonfinite_hf_weights_are_refused),
        cmocka_unit_test(nonfinite_checkpoint_weights_are_refused),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
