/*
 * safetensors (https://github.com/huggingface/safetensors), the file
 * format of tlm's models and of the golden fixtures: an unsigned 64-bit
 * little-endian header length N, N bytes of JSON, then the tensors' raw
 * little-endian bytes. The JSON header is an object mapping each tensor's
 * name to {"dtype", "shape", "data_offsets": [begin, end]} (offsets into
 * the data section) and may hold "__metadata__", an object of strings.
 *
 * The reader works on a buffer in memory (a file read whole, or mapped):
 * it checks the header completely and then points into the buffer without
 * copying tensor data. See docs/format-safetensors.md for what is accepted
 * and refused, and the messages.
 */
#ifndef TLM_LIB_IO_SAFETENSORS_H
#define TLM_LIB_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"
#include "tlm.h"

/* Element types tlm reads and writes. F32 and I32 have the values of
 * TLM_DTYPE_F32 and TLM_DTYPE_I32. */
enum tlmi_st_dtype {
    TLMI_ST_F32 = 0,
    TLMI_ST_I32 = 1,
    TLMI_ST_F16 = 2, /* IEEE half; read as float by copy_f32 */
    TLMI_ST_BF16 = 3 /* bfloat16; read as float by copy_f32 */
};

/* The largest header accepted, as the official implementation does. */
#define TLMI_ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)

/* "F32", "I32", "F16", "BF16", or NULL for another value. */
const char *tlmi_st_dtype_name(int32_t dtype);
/* Bytes per element, 0 for an unknown dtype. */
size_t tlmi_st_dtype_size(int32_t dtype);

/* A name for a message: at most `size` - 4 bytes of `s`, control
 * characters as '?', "..." when cut; returns buf. */
const char *tlmi_st_printable(const char *s, size_t length, char *buf,
                              size_t size);

/* ---- Reader ---- */

typedef struct tlmi_safetensors_entry {
    const char *name; /* NUL-terminated; valid UTF-8, no NUL inside */
    size_t name_length;
    int32_t dtype; /* a tlmi_st_dtype */
    int32_t ndim;  /* 0 (a scalar) to TLM_MAX_DIMS */
    int64_t shape[TLM_MAX_DIMS]; /* entries past ndim are 1 */
    int64_t numel;               /* product of the shape; 1 for a scalar */
    const void *data; /* `nbytes` little-endian bytes inside the buffer,
                         not necessarily aligned for the dtype */
    size_t nbytes;
    uint64_t begin; /* data_offsets: relative to the data section */
    uint64_t end;
} tlmi_safetensors_entry;

typedef struct tlmi_safetensors tlmi_safetensors;

/* Parses a safetensors file held in `size` bytes at `data`. The result
 * points into `data`, which must stay valid and unchanged until
 * tlmi_safetensors_free(). `source` names the buffer in messages (a path,
 * or NULL). Status: TLM_OK; TLM_E_FORMAT for a malformed file;
 * TLM_E_UNSUPPORTED for a valid file tlm cannot hold (a dtype other than
 * F32/I32/F16/BF16, more than TLM_MAX_DIMS dimensions); TLM_E_OVERFLOW
 * when a shape's size does not fit in memory arithmetic; TLM_E_NOMEM;
 * TLM_E_INVALID for NULL arguments. Safe on any bytes (a fuzz target). */
int tlmi_safetensors_parse(tlmi_host *host, const char *source,
                           const void *data, size_t size,
                           tlmi_safetensors **out);

/* How tlmi_safetensors_open gets the bytes. */
enum tlmi_st_open_mode {
    TLMI_ST_OPEN_READ = 0, /* read the whole file into host memory */
    TLMI_ST_OPEN_MAP = 1   /* map it read-only (no copy) */
};

/* Reads or maps `path` and parses it; the result owns the memory or the
 * mapping. Statuses of tlmi_safetensors_parse plus TLM_E_IO. */
int tlmi_safetensors_open(tlmi_host *host, const char *path, int mode,
                          tlmi_safetensors **out);

/* Lets the mapped pages of [data, data + size) go when `st` was opened
 * with TLMI_ST_OPEN_MAP and the range lies inside its file (otherwise
 * nothing happens): an importer that has converted a tensor calls it so
 * that the file and the model are not both resident. The pages come back
 * from the file if touched again. */
void tlmi_safetensors_release(const tlmi_safetensors *st, const void *data,
                              size_t size);

/* Frees the parsed file (and what _open read or mapped). NULL ignored. */
void tlmi_safetensors_free(tlmi_safetensors *st);

/* Tensors, in the order of their data in the file. */
size_t tlmi_safetensors_count(const tlmi_safetensors *st);
const tlmi_safetensors_entry *tlmi_safetensors_entry_at(
    const tlmi_safetensors *st, size_t index);

/* The tensor named `name`, or NULL. */
const tlmi_safetensors_entry *tlmi_safetensors_find(
    const tlmi_safetensors *st, const char *name);

/* The metadata value of `key` (NUL-terminated; its length in *length when
 * not NULL), or NULL when absent. */
const char *tlmi_safetensors_metadata(const tlmi_safetensors *st,
                                      const char *key, size_t *length);
/* Metadata pairs, sorted by key. Returns TLM_E_RANGE past the end. */
size_t tlmi_safetensors_metadata_count(const tlmi_safetensors *st);
int tlmi_safetensors_metadata_at(const tlmi_safetensors *st, size_t index,
                                 const char **key, const char **value,
                                 size_t *value_length);

/* The flat index of the first element of a float tensor (F32, F16, BF16)
 * that is NaN or infinite, with *value "NaN", "infinity" or "-infinity";
 * -1 when every element is finite, and for I32. Imports refuse such a
 * tensor (tlmi_import_refuse_nonfinite, lib/model/formats.h) unless the
 * caller allows it (tlm_model_import_params::allow_nonfinite). */
int64_t tlmi_safetensors_first_nonfinite(const tlmi_safetensors_entry *entry,
                                         const char **value);

/* Copies a tensor's values as floats into `dst` (`count` must equal
 * numel): F32 as is, F16 and BF16 converted exactly. The source may be
 * unaligned. TLM_E_SHAPE for a wrong count, TLM_E_FORMAT for I32. */
int tlmi_safetensors_copy_f32(const tlmi_safetensors *st,
                              const tlmi_safetensors_entry *entry,
                              float *dst, int64_t count);

/* Copies an I32 tensor into `dst` (`count` must equal numel). */
int tlmi_safetensors_copy_i32(const tlmi_safetensors *st,
                              const tlmi_safetensors_entry *entry,
                              int32_t *dst, int64_t count);

/* ---- Writer ---- */

/*
 * Collects tensors and metadata, then writes a safetensors file:
 * "__metadata__" first (when there is any), then the tensors in the order
 * they were added, their data contiguous in that order from offset 0. The
 * header is padded with spaces to a multiple of 8 bytes, so the data
 * section starts 8-byte aligned in the file; a tensor is aligned for its
 * dtype when the tensors before it have sizes that are multiples of 4
 * (always true of F32/I32; add F16/BF16 tensors last to keep it).
 */
typedef struct tlmi_safetensors_writer tlmi_safetensors_writer;

int tlmi_safetensors_writer_create(tlmi_host *host,
                                   tlmi_safetensors_writer **out);
void tlmi_safetensors_writer_free(tlmi_safetensors_writer *writer);

/* Adds a tensor. `name` (copied) is non-empty valid UTF-8, not
 * "__metadata__" and not already added; ndim is 0..TLM_MAX_DIMS, sizes
 * >= 0. `data` (numel values of `dtype`, in the host's byte order) is NOT
 * copied: it must stay valid until the file is written. */
int tlmi_safetensors_writer_add(tlmi_safetensors_writer *writer,
                                const char *name, int32_t dtype,
                                int32_t ndim, const int64_t *shape,
                                const void *data);

/* Fills `dst` with a tensor's `nbytes` bytes (host byte order) when the
 * file is written; returns a status after tlmi_fail on failure. */
typedef int (*tlmi_st_produce_fn)(void *user, void *dst, size_t nbytes);

/* Adds a tensor whose bytes `produce` computes while the file is written
 * (into a scratch block of the tensor's size, freed after it), so that a
 * converted copy of every tensor never exists at once. `user` must stay
 * valid until the file is written. */
int tlmi_safetensors_writer_add_produced(tlmi_safetensors_writer *writer,
                                         const char *name, int32_t dtype,
                                         int32_t ndim, const int64_t *shape,
                                         tlmi_st_produce_fn produce,
                                         void *user);

/* Adds a metadata pair (both copied; valid UTF-8; keys unique). */
int tlmi_safetensors_writer_add_metadata(tlmi_safetensors_writer *writer,
                                         const char *key, const char *value);

/* Writes the file to `path` crash-safely (lib/base/file.h). The writer stays
 * usable (it can write again). */
int tlmi_safetensors_writer_save(tlmi_safetensors_writer *writer,
                                 const char *path);

/* Serialises into memory from the host allocator: release with
 * tlmi_host_free(host, *data, *size). */
int tlmi_safetensors_writer_to_memory(tlmi_safetensors_writer *writer,
                                      void **data, size_t *size);

#endif
