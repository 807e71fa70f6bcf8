/*
 * Files: reading a whole file into memory, mapping one read-only, and
 * crash-safe writing.
 *
 * Crash-safe writing never exposes a half-written file under the target
 * name. The bytes go to a temporary file `<path>.tmp-<pid>-<counter>` in
 * the same directory; commit flushes it to the disk (fsync), renames it
 * over the target (atomic on POSIX file systems) and syncs the directory,
 * so that after a crash or power loss the target holds either its old
 * contents or the complete new ones. Any failure, and abort, removes the
 * temporary file and leaves the target untouched.
 *
 * What is replaced: only a regular file. A target that exists and is
 * anything else (a directory, a character or block device such as
 * /dev/null or /dev/full, a FIFO, a socket) is refused with TLM_E_IO
 * saying what it is, before anything is created; commit checks again
 * just before the rename. A symbolic link is written through: the chain
 * is followed (at most 40 links; relative links from the link's own
 * directory), the link stays, and the file it ends at is replaced, with
 * the temporary file in that file's directory. A dangling link creates
 * the file it names (as a shell redirection does). A replaced file keeps
 * its permission bits, and its owner and group where the process may set
 * them; new files get mode 0666 minus the umask, as fopen() gives. A
 * replaced file with other hard links gets a new inode: the other names
 * keep the old contents (rename replaces one name).
 *
 * A process killed mid-save leaves its temporary file behind; the next
 * successful commit of the same target removes such leftovers: names of
 * exactly that form whose pid names no running process (best-effort, one
 * pass over the directory; see remove_stale_temporaries() in file.c).
 *
 * Every failure returns TLM_E_IO (TLM_E_NOMEM when the allocator fails,
 * TLM_E_INVALID for bad arguments) with a message naming the path and the
 * system's reason, e.g. "writing 'out/model.safetensors': cannot create
 * the temporary file 'out/model.safetensors.tmp-41-0': No such file or
 * directory". POSIX only.
 */
#ifndef TLM_LIB_BASE_FILE_H
#define TLM_LIB_BASE_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "host.h"

/* ---- Reading ---- */

/* Reads the regular file `path` into memory from the host allocator:
 * *data holds *size bytes followed by one NUL byte (handy for text).
 * Files larger than `max_size` bytes are refused. Missing files,
 * directories, other non-regular files and unreadable files are TLM_E_IO
 * with the reason. Release with tlmi_file_free_contents(). */
int tlmi_file_read_all(tlmi_host *host, const char *path, size_t max_size,
                       void **data, size_t *size);

/* Frees what tlmi_file_read_all() returned; NULL is ignored. */
void tlmi_file_free_contents(tlmi_host *host, void *data, size_t size);

/* A read-only memory mapping of a whole file. */
typedef struct tlmi_file_mapping {
    const void *data; /* `size` bytes; never NULL after a successful map */
    size_t size;
    void *base; /* what munmap releases; NULL for an empty file */
} tlmi_file_mapping;

/* Maps the regular file `path` read-only (private mapping). The pages are
 * the file's: a file truncated by another process while mapped makes
 * later accesses fault, so map only files nothing else rewrites in place
 * (tlm's own writer replaces files by rename, which is safe). */
int tlmi_file_map_readonly(tlmi_host *host, const char *path,
                           tlmi_file_mapping *mapping);

/* Lets the pages of [data, data + size) inside `mapping` leave the
 * process's memory (where the system allows it; otherwise nothing): they
 * are read from the file again if touched. A loader that copies a mapped
 * file piece by piece calls it after each piece, so that its resident
 * memory stays one copy of the contents, not two. */
void tlmi_file_mapping_release(const tlmi_file_mapping *mapping,
                               const void *data, size_t size);

/* Releases a mapping; a zeroed or already released mapping is ignored. */
void tlmi_file_unmap(tlmi_file_mapping *mapping);

/* ---- Crash-safe writing ---- */

typedef struct tlmi_file_writer tlmi_file_writer;

/* Starts writing `path`: resolves symbolic links, refuses a target that
 * is not a regular file, creates the temporary file beside the target
 * (with the replaced file's permissions). */
int tlmi_file_writer_open(tlmi_host *host, const char *path,
                          tlmi_file_writer **out);

/* Appends `size` bytes, retrying short and interrupted writes. After a
 * failure the writer keeps the error (and has already removed the
 * temporary file): later writes and the commit return it. */
int tlmi_file_writer_write(tlmi_file_writer *writer, const void *data,
                           size_t size);

/* Bytes written so far. */
uint64_t tlmi_file_writer_size(const tlmi_file_writer *writer);

/* Makes the file durable and puts it in place of the target, then
 * removes the temporaries of the same target left by dead processes;
 * frees the writer whatever the outcome. On failure the target is untouched (except
 * when only the final directory sync fails: the new file is then in place
 * but the status reports that its rename may not survive a crash). */
int tlmi_file_writer_commit(tlmi_file_writer *writer);

/* Discards everything written and frees the writer; NULL is ignored. */
void tlmi_file_writer_abort(tlmi_file_writer *writer);

/* 1 when `a` and `b` both exist and are the same file (the same device
 * and inode after following symbolic links: hard links and different
 * spellings of one path count), else 0. A caller that reads one file and
 * writes another asks it before writing, so an output never replaces its
 * own input. */
int tlmi_file_same(const char *a, const char *b);

/* Writes `size` bytes as the new contents of `path`, crash-safely. */
int tlmi_file_write_atomic(tlmi_host *host, const char *path,
                           const void *data, size_t size);

#endif
