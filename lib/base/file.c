#define _POSIX_C_SOURCE 200809L /* open flags, fsync, mmap, strerror_r */
#define _DEFAULT_SOURCE /* madvise and MADV_DONTNEED (glibc, musl) */

#include "file.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "error.h"

/* The system's text for `error`, thread-safely. */
static const char *error_text(int error, char *buf, size_t size) {
#if defined(__GLIBC__) && defined(_GNU_SOURCE)
    return strerror_r(error, buf, size); /* the GNU variant */
#else
    if (strerror_r(error, buf, size) != 0)
        snprintf(buf, size, "error %d", error);
    return buf;
#endif
}

/* Largest single read or write request (Linux transfers at most about
 * 2 GiB per call anyway). */
#define IO_CHUNK ((size_t)1 << 30)

/* ------------------------------------------------------------------------
 * Reading
 */

/* Opens `path` for reading and checks it is a regular file. O_NONBLOCK
 * keeps open() from waiting on a FIFO; it does nothing to regular files. */
static int open_regular(tlmi_host *host, const char *path, const char *verb,
                        int *fd_out, struct stat *info) {
    char reason[128];
    TLMI_CHECK_NOT_NULL(host, verb, path);
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        int error = errno;
        return tlmi_fail(host, TLM_E_IO, "%s '%s': %s", verb, path,
                         error_text(error, reason, sizeof reason));
    }
    if (fstat(fd, info) != 0) {
        int error = errno;
        close(fd);
        return tlmi_fail(host, TLM_E_IO, "%s '%s': %s", verb, path,
                         error_text(error, reason, sizeof reason));
    }
    if (S_ISDIR(info->st_mode)) {
        close(fd);
        return tlmi_fail(host, TLM_E_IO, "%s '%s': it is a directory", verb,
                         path);
    }
    if (!S_ISREG(info->st_mode)) {
        close(fd);
        return tlmi_fail(host, TLM_E_IO,
                         "%s '%s': it is not a regular file", verb, path);
    }
    if (info->st_size < 0 || (uintmax_t)info->st_size > SIZE_MAX - 1) {
        close(fd);
        return tlmi_fail(host, TLM_E_IO,
                         "%s '%s': its size %lld does not fit in memory",
                         verb, path, (long long)info->st_size);
    }
    *fd_out = fd;
    return TLM_OK;
}

int tlmi_file_read_all(tlmi_host *host, const char *path, size_t max_size,
                       void **data, size_t *size) {
    TLMI_CHECK(host, data != NULL && size != NULL, TLM_E_INVALID,
               "reading a file: data or size is NULL");
    *data = NULL;
    *size = 0;
    int fd = -1;
    struct stat info;
    TLMI_TRY(open_regular(host, path, "reading", &fd, &info));
    size_t expected = (size_t)info.st_size;
    if (expected > max_size) {
        close(fd);
        return tlmi_fail(host, TLM_E_IO,
                         "reading '%s': the file is %zu bytes, more than "
                         "the limit of %zu",
                         path, expected, max_size);
    }
    unsigned char *buffer = tlmi_host_alloc(host, expected + 1, 64);
    if (buffer == NULL) {
        close(fd);
        return tlmi_fail(host, TLM_E_NOMEM,
                         "reading '%s': out of memory (allocating %zu bytes)",
                         path, expected + 1);
    }
    /* Read what fstat promised, then make sure nothing follows: a file
     * that changes size while being read is an error, not a silent cut. */
    size_t done = 0;
    char reason[128];
    int status = TLM_OK;
    for (;;) {
        size_t want = expected - done;
        unsigned char extra;
        unsigned char *into = want > 0 ? buffer + done : &extra;
        if (want == 0)
            want = 1;
        ssize_t n = read(fd, into, want < IO_CHUNK ? want : IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int error = errno;
            status = tlmi_fail(host, TLM_E_IO, "reading '%s': %s", path,
                               error_text(error, reason, sizeof reason));
            break;
        }
        if (into == &extra) {
            if (n > 0)
                status = tlmi_fail(host, TLM_E_IO,
                                   "reading '%s': the file grew while it "
                                   "was read (expected %zu bytes)",
                                   path, expected);
            break;
        }
        if (n == 0) {
            status = tlmi_fail(host, TLM_E_IO,
                               "reading '%s': the file shrank while it was "
                               "read (%zu of %zu bytes)",
                               path, done, expected);
            break;
        }
        done += (size_t)n;
    }
    close(fd);
    if (status != TLM_OK) {
        tlmi_host_free(host, buffer, expected + 1);
        return status;
    }
    buffer[expected] = '\0';
    *data = buffer;
    *size = expected;
    return TLM_OK;
}

void tlmi_file_free_contents(tlmi_host *host, void *data, size_t size) {
    if (data != NULL)
        tlmi_host_free(host, data, size + 1);
}

static const unsigned char empty_file[1] = {0};

int tlmi_file_map_readonly(tlmi_host *host, const char *path,
                           tlmi_file_mapping *mapping) {
    TLMI_CHECK_NOT_NULL(host, "mapping a file", mapping);
    memset(mapping, 0, sizeof *mapping);
    int fd = -1;
    struct stat info;
    TLMI_TRY(open_regular(host, path, "mapping", &fd, &info));
    size_t size = (size_t)info.st_size;
    if (size == 0) {
        close(fd);
        mapping->data = empty_file;
        return TLM_OK;
    }
    void *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int error = errno;
    close(fd);
    if (base == MAP_FAILED) {
        char reason[128];
        return tlmi_fail(host, TLM_E_IO, "mapping '%s': %s", path,
                         error_text(error, reason, sizeof reason));
    }
    mapping->data = base;
    mapping->size = size;
    mapping->base = base;
    return TLM_OK;
}

void tlmi_file_mapping_release(const tlmi_file_mapping *mapping,
                               const void *data, size_t size) {
#ifdef MADV_DONTNEED
    if (mapping == NULL || mapping->base == NULL || size == 0)
        return;
    /* Whole pages strictly inside the range: a page shared with a
     * neighbouring range that is still to be read stays. */
    const long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    const uintptr_t base = (uintptr_t)mapping->base;
    const uintptr_t from = (uintptr_t)data;
    if (from < base || size > mapping->size || from - base > mapping->size - size)
        return;
    const uintptr_t first = (from + (uintptr_t)page - 1) / (uintptr_t)page * (uintptr_t)page;
    const uintptr_t end = (from + size) / (uintptr_t)page * (uintptr_t)page;
    /* A private read-only mapping of the file: dropping clean pages only
     * forgets them (the file is untouched), so the advice is harmless. */
    if (end > first)
        (void)madvise((void *)first, (size_t)(end - first), MADV_DONTNEED);
#else
    (void)mapping;
    (void)data;
    (void)size;
#endif
}

void tlmi_file_unmap(tlmi_file_mapping *mapping) {
    if (mapping == NULL)
        return;
    if (mapping->base != NULL)
        munmap(mapping->base, mapping->size);
    memset(mapping, 0, sizeof *mapping);
}

/* ------------------------------------------------------------------------
 * Crash-safe writing
 */

struct tlmi_file_writer {
    tlmi_host *host;
    int fd;          /* -1 once closed */
    int status;      /* first failure, sticky */
    uint64_t written;
    size_t bytes;    /* allocated size of this struct and its strings */
    char *path;      /* the target as the caller named it (for messages) */
    char *target;    /* the file replaced: `path` with symbolic links followed */
    char *temp;      /* the temporary file beside `target` */
    char *directory; /* the directory holding both, to sync */
};

/* Distinguishes temporary files of one process (several threads may
 * write at once). */
static atomic_ulong temp_counter;

/* Closes and removes the temporary file (once). */
static void discard_temp(tlmi_file_writer *w) {
    if (w->fd >= 0) {
        close(w->fd);
        w->fd = -1;
        unlink(w->temp);
    }
}

static int writer_fail_errno(tlmi_file_writer *w, int error,
                             const char *doing) {
    char reason[128];
    w->status = tlmi_fail(w->host, TLM_E_IO,
                          "writing '%s': %s the temporary file '%s': %s",
                          w->path, doing, w->temp,
                          error_text(error, reason, sizeof reason));
    discard_temp(w);
    return w->status;
}

/* What a file that is not a regular file is, for messages. */
static const char *file_kind(mode_t mode) {
    if (S_ISDIR(mode))
        return "a directory";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

/* Most symbolic links followed from a target (Linux's own limit). */
#define MAX_LINK_HOPS 40

/* A copy of `text` from the host's allocator, `length` bytes + NUL. */
static char *copy_string(tlmi_host *host, const char *text, size_t length) {
    char *copy = tlmi_host_alloc(host, length + 1, 1);
    if (copy != NULL) {
        memcpy(copy, text, length);
        copy[length] = '\0';
    }
    return copy;
}

static void free_string(tlmi_host *host, char *text) {
    if (text != NULL)
        tlmi_host_free(host, text, strlen(text) + 1);
}

/* The file a save of `path` replaces: `path` itself, or, if it is a
 * symbolic link, the file at the end of its chain (a relative link is
 * read from the link's own directory). A dangling link gives the name
 * it points to: the save creates that file, as a shell redirection
 * would. The result (*target, from the host's allocator, released with
 * free_string) is a regular file or does not exist yet: anything else
 * (a directory, device, FIFO or socket) is refused with TLM_E_IO, and
 * *info says whether it exists (*exists) and its mode and owner. */
static int resolve_target(tlmi_host *host, const char *path, char **target,
                          int *exists, struct stat *info) {
    char reason[128];
    const int saved_errno = errno; /* a missing target is no error */
    *target = NULL;
    *exists = 0;
    char *current = copy_string(host, path, strlen(path));
    if (current == NULL)
        return tlmi_fail(host, TLM_E_NOMEM, "writing '%s': out of memory",
                         path);
    for (int hop = 0;; hop++) {
        if (lstat(current, info) != 0) {
            int error = errno;
            if (error == ENOENT)
                break; /* a new file (its directory is checked later) */
            int status = tlmi_fail(host, TLM_E_IO, "writing '%s': %s%s%s: %s",
                                   path, hop > 0 ? "its link target '" : "",
                                   hop > 0 ? current : "", hop > 0 ? "'" : "",
                                   error_text(error, reason, sizeof reason));
            free_string(host, current);
            return status;
        }
        if (!S_ISLNK(info->st_mode)) {
            *exists = 1;
            break;
        }
        if (hop == MAX_LINK_HOPS) {
            free_string(host, current);
            return tlmi_fail(host, TLM_E_IO,
                             "writing '%s': more than %d symbolic links in "
                             "a chain (a loop?)",
                             path, MAX_LINK_HOPS);
        }
        /* The link's text; st_size is its length on most systems, but
         * grow the buffer until readlink() leaves room to spare. */
        size_t capacity = info->st_size > 0 ? (size_t)info->st_size + 1 : 256;
        char *text = NULL;
        ssize_t length;
        for (;;) {
            text = tlmi_host_alloc(host, capacity, 1);
            if (text == NULL) {
                free_string(host, current);
                return tlmi_fail(host, TLM_E_NOMEM,
                                 "writing '%s': out of memory", path);
            }
            length = readlink(current, text, capacity);
            if (length < 0 || (size_t)length < capacity)
                break;
            tlmi_host_free(host, text, capacity);
            if (capacity > ((size_t)1 << 20)) {
                free_string(host, current);
                return tlmi_fail(host, TLM_E_IO,
                                 "writing '%s': a symbolic link in its "
                                 "chain is too long",
                                 path);
            }
            capacity *= 2;
        }
        if (length < 0) {
            int error = errno;
            tlmi_host_free(host, text, capacity);
            int status = tlmi_fail(host, TLM_E_IO,
                                   "writing '%s': reading the symbolic link "
                                   "'%s': %s",
                                   path, current,
                                   error_text(error, reason, sizeof reason));
            free_string(host, current);
            return status;
        }
        /* Absolute text replaces the path; relative text replaces the
         * last component of the link's own path. */
        const char *slash = strrchr(current, '/');
        size_t keep = text[0] == '/' || slash == NULL
                          ? 0
                          : (size_t)(slash - current) + 1;
        char *next = tlmi_host_alloc(host, keep + (size_t)length + 1, 1);
        if (next != NULL) {
            memcpy(next, current, keep);
            memcpy(next + keep, text, (size_t)length);
            next[keep + (size_t)length] = '\0';
        }
        tlmi_host_free(host, text, capacity);
        free_string(host, current);
        if (next == NULL)
            return tlmi_fail(host, TLM_E_NOMEM, "writing '%s': out of memory",
                             path);
        current = next;
    }
    const int linked = strcmp(current, path) != 0;
    size_t length = strlen(current);
    if (length == 0 || current[length - 1] == '/' ||
        (*exists && !S_ISREG(info->st_mode))) {
        const char *kind = *exists ? file_kind(info->st_mode) : "a directory";
        int status =
            linked ? tlmi_fail(host, TLM_E_IO,
                               "writing '%s': it is a symbolic link to '%s', "
                               "which is %s; tlm replaces only regular files",
                               path, current, kind)
                   : tlmi_fail(host, TLM_E_IO,
                               "writing '%s': it is %s; tlm replaces only "
                               "regular files",
                               path, kind);
        free_string(host, current);
        return status;
    }
    *target = current;
    errno = saved_errno;
    return TLM_OK;
}

int tlmi_file_writer_open(tlmi_host *host, const char *path,
                          tlmi_file_writer **out) {
    TLMI_CHECK_NOT_NULL(host, "writing a file", out);
    *out = NULL;
    TLMI_CHECK_NOT_NULL(host, "writing a file", path);
    size_t path_length = strlen(path);
    if (path_length == 0)
        return tlmi_fail(host, TLM_E_INVALID, "writing a file: path is empty");
    if (path[path_length - 1] == '/')
        return tlmi_fail(host, TLM_E_INVALID,
                         "writing '%s': the path names a directory", path);
    /* ".tmp-" + pid + "-" + counter, each number at most 20 digits. */
    const size_t suffix_max = 5 + 20 + 1 + 20;
    if (path_length > (SIZE_MAX - sizeof(tlmi_file_writer) - suffix_max - 4) / 4)
        return tlmi_fail(host, TLM_E_INVALID, "writing a file: path too long");
    char *target = NULL;
    int exists = 0;
    struct stat old;
    memset(&old, 0, sizeof old);
    TLMI_TRY(resolve_target(host, path, &target, &exists, &old));
    size_t target_length = strlen(target);
    if (target_length > (SIZE_MAX - sizeof(tlmi_file_writer) - suffix_max -
                         4 - path_length) / 3) {
        free_string(host, target);
        return tlmi_fail(host, TLM_E_INVALID, "writing a file: path too long");
    }
    /* The directory part of the target: up to the last '/', "/" or ".". */
    const char *slash = strrchr(target, '/');
    size_t directory_length = slash == NULL ? 1
                              : slash == target ? 1
                                                : (size_t)(slash - target);
    size_t bytes = sizeof(tlmi_file_writer) + (path_length + 1) +
                   (target_length + 1) + (target_length + suffix_max + 1) +
                   (directory_length + 1);
    tlmi_file_writer *w = tlmi_host_alloc(host, bytes, _Alignof(tlmi_file_writer));
    if (w == NULL) {
        free_string(host, target);
        return tlmi_fail(host, TLM_E_NOMEM,
                         "writing '%s': out of memory (allocating %zu bytes)",
                         path, bytes);
    }
    memset(w, 0, sizeof *w);
    w->host = host;
    w->fd = -1;
    w->bytes = bytes;
    w->path = (char *)(w + 1);
    w->target = w->path + path_length + 1;
    w->temp = w->target + target_length + 1;
    w->directory = w->temp + target_length + suffix_max + 1;
    memcpy(w->path, path, path_length + 1);
    memcpy(w->target, target, target_length + 1);
    free_string(host, target);
    if (slash == NULL) {
        memcpy(w->directory, ".", 2);
    } else {
        memcpy(w->directory, w->target, directory_length);
        w->directory[directory_length] = '\0';
    }

    /* A name nobody else uses: O_EXCL refuses an existing file (left by a
     * crashed process that had the same pid), and the next number is
     * tried. */
    int error = 0;
    for (int attempt = 0; attempt < 100; attempt++) {
        unsigned long counter = atomic_fetch_add(&temp_counter, 1);
        snprintf(w->temp, target_length + suffix_max + 1, "%s.tmp-%lld-%lu",
                 w->target, (long long)getpid(), counter);
        do
            w->fd = open(w->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                         0666);
        while (w->fd < 0 && errno == EINTR);
        error = errno;
        if (w->fd >= 0 || error != EEXIST)
            break;
    }
    if (w->fd < 0) {
        char reason[128];
        int status = tlmi_fail(host, TLM_E_IO,
                               "writing '%s': cannot create the temporary "
                               "file '%s': %s",
                               path, w->temp,
                               error_text(error, reason, sizeof reason));
        tlmi_host_free(host, w, w->bytes);
        return status;
    }
    /* A replaced file keeps its permission bits, and its owner and group
     * where this process may set them (only root may give a file away;
     * the group only to one of its own groups): a chown failure is not
     * an error, the file is then ours as a new one would be. chown
     * first, since it may clear set-user-ID bits that chmod restores. */
    if (exists) {
        if (old.st_uid != geteuid() || old.st_gid != getegid())
            (void)!fchown(w->fd, old.st_uid, old.st_gid);
        if (fchmod(w->fd, old.st_mode & 07777) != 0) {
            int status = writer_fail_errno(w, errno, "setting the permissions of");
            tlmi_host_free(host, w, w->bytes);
            return status;
        }
    }
    *out = w;
    return TLM_OK;
}

int tlmi_file_writer_write(tlmi_file_writer *w, const void *data,
                           size_t size) {
    TLMI_CHECK(NULL, w != NULL, TLM_E_INVALID,
               "writing a file: writer is NULL");
    if (w->status != TLM_OK)
        return w->status;
    if (data == NULL && size > 0) {
        w->status = tlmi_fail(w->host, TLM_E_INVALID,
                              "writing '%s': data is NULL", w->path);
        discard_temp(w);
        return w->status;
    }
    const unsigned char *bytes = data;
    while (size > 0) {
        ssize_t n = write(w->fd, bytes, size < IO_CHUNK ? size : IO_CHUNK);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return writer_fail_errno(w, errno, "writing");
        if (n == 0)
            return writer_fail_errno(w, ENOSPC, "writing");
        bytes += n;
        size -= (size_t)n;
        w->written += (uint64_t)n;
    }
    return TLM_OK;
}

uint64_t tlmi_file_writer_size(const tlmi_file_writer *writer) {
    return writer ? writer->written : 0;
}

void tlmi_file_writer_abort(tlmi_file_writer *writer) {
    if (writer == NULL)
        return;
    discard_temp(writer);
    tlmi_host_free(writer->host, writer, writer->bytes);
}

/* fsync of the directory, so the rename itself is on the disk. File
 * systems that cannot sync a directory say EINVAL: nothing more to do. */
static int sync_directory(const char *directory) {
    int fd;
    do
        fd = open(directory, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return errno;
    int error = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        error = errno;
    close(fd);
    return error;
}

/* Reads the decimal number at *text as tlm's writer prints one: digits
 * only, no sign, no leading zero (except "0" itself), at most 20 digits.
 * Moves *text past it. Returns 0 when there is no such number; otherwise
 * 1, with the value in *value, saturated at UINTMAX_MAX. */
static int read_decimal(const char **text, uintmax_t *value) {
    const char *s = *text;
    size_t digits = 0;
    uintmax_t v = 0;
    while (s[digits] >= '0' && s[digits] <= '9') {
        unsigned d = (unsigned)(s[digits] - '0');
        v = v > (UINTMAX_MAX - d) / 10 ? UINTMAX_MAX : v * 10 + d;
        digits++;
    }
    if (digits == 0 || digits > 20 || (digits > 1 && s[0] == '0'))
        return 0;
    *text = s + digits;
    *value = v;
    return 1;
}

/* The pid in `name` if it is exactly `<base>.tmp-<pid>-<counter>` (the
 * form tlmi_file_writer_open() gives temporaries, pid > 0), else 0. */
static pid_t temporary_owner(const char *name, const char *base,
                             size_t base_length) {
    if (strncmp(name, base, base_length) != 0 ||
        strncmp(name + base_length, ".tmp-", 5) != 0)
        return 0;
    const char *s = name + base_length + 5;
    uintmax_t pid, counter;
    if (!read_decimal(&s, &pid) || *s != '-')
        return 0;
    s++;
    if (!read_decimal(&s, &counter) || *s != '\0')
        return 0;
    if (pid == 0 || pid > (uintmax_t)INTMAX_MAX ||
        (intmax_t)(pid_t)pid != (intmax_t)pid)
        return 0; /* not a pid this system can have */
    return (pid_t)pid;
}

/* After a successful commit: removes the temporaries of the same target
 * that processes killed mid-save left behind (`<base>.tmp-<pid>-<n>`
 * beside it, whose pid names no running process). Another process's save
 * in progress is kept (kill(pid, 0) succeeds, or fails with EPERM: the
 * process exists), and so are this process's own (a thread of ours may
 * be writing it; skipped without asking the kernel) and every name not of
 * exactly that form. A dead process's pid reused by a new process only
 * delays the removal until that one exits.
 *
 * Best-effort: a directory that cannot be listed or a file that cannot be
 * removed is left alone, silently; the save has succeeded, and neither
 * its status nor any error message changes (errno is restored too).
 *
 * Cost: one opendir/readdir pass over the target's directory per commit,
 * a string comparison per entry, one kill(pid, 0) per name of the
 * temporary form and one unlink per dead owner: small next to writing
 * and fsyncing the file itself, even in a directory of thousands of
 * checkpoints. Nothing from the host's allocator (opendir() has its own
 * buffer); unlinkat() on the listed directory's fd builds no paths.
 *
 * Limits: a pid is only meaningful in this PID namespace on this host. A
 * process in another one (another container, or another host sharing the
 * directory) writing the same path at the same moment looks dead, so its
 * temporary may be removed while it writes; its own rename then fails and
 * its save returns TLM_E_IO, and the target is never damaged. */
static void remove_stale_temporaries(const tlmi_file_writer *w) {
    int saved_errno = errno;
    const char *slash = strrchr(w->target, '/');
    const char *base = slash == NULL ? w->target : slash + 1;
    size_t base_length = strlen(base);
    pid_t self = getpid();
    DIR *directory = opendir(w->directory);
    if (directory == NULL) {
        errno = saved_errno;
        return;
    }
    int directory_fd = dirfd(directory);
    struct dirent *entry;
    for (;;) {
        errno = 0;
        entry = readdir(directory);
        if (entry == NULL)
            break; /* the end, or an error: both end the best effort */
        pid_t owner = temporary_owner(entry->d_name, base, base_length);
        if (owner <= 0 || owner == self)
            continue;
        if (kill(owner, 0) == 0 || errno != ESRCH)
            continue; /* running (EPERM: someone else's), or unknown */
        if (directory_fd >= 0)
            unlinkat(directory_fd, entry->d_name, 0);
    }
    closedir(directory);
    errno = saved_errno;
}

int tlmi_file_writer_commit(tlmi_file_writer *w) {
    TLMI_CHECK(NULL, w != NULL, TLM_E_INVALID,
               "writing a file: writer is NULL");
    int status = w->status;
    if (status != TLM_OK)
        goto cleanup;
    int result;
    do
        result = fsync(w->fd);
    while (result != 0 && errno == EINTR);
    if (result != 0) {
        status = writer_fail_errno(w, errno, "syncing");
        goto cleanup;
    }
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0 && errno != EINTR) {
        int error = errno;
        unlink(w->temp);
        status = writer_fail_errno(w, error, "closing");
        goto cleanup;
    }
    /* The target was checked when the writer opened; something may have
     * put a directory, device or FIFO there since (rename would replace
     * a device or FIFO, as root even in /dev). */
    struct stat now;
    const int saved_errno = errno;
    if (lstat(w->target, &now) != 0)
        errno = saved_errno; /* gone since: rename makes it anew */
    else if (!S_ISREG(now.st_mode)) {
        unlink(w->temp);
        status = tlmi_fail(w->host, TLM_E_IO,
                           "writing '%s': '%s' became %s while it was "
                           "written; tlm replaces only regular files",
                           w->path, w->target, file_kind(now.st_mode));
        goto cleanup;
    }
    if (rename(w->temp, w->target) != 0) {
        int error = errno;
        unlink(w->temp);
        char reason[128];
        status = tlmi_fail(w->host, TLM_E_IO,
                           "writing '%s': renaming the temporary file '%s' "
                           "over it: %s",
                           w->path, w->temp,
                           error_text(error, reason, sizeof reason));
        goto cleanup;
    }
    int error = sync_directory(w->directory);
    if (error != 0) {
        char reason[128];
        status = tlmi_fail(w->host, TLM_E_IO,
                           "writing '%s': the file is in place but "
                           "syncing its directory '%s' failed, so the "
                           "change may not survive a crash: %s",
                           w->path, w->directory,
                           error_text(error, reason, sizeof reason));
        goto cleanup;
    }
    remove_stale_temporaries(w);
cleanup:
    discard_temp(w); /* after a failure: no-op if already discarded */
    tlmi_host_free(w->host, w, w->bytes);
    return status;
}

int tlmi_file_same(const char *a, const char *b) {
    struct stat first, second;
    if (a == NULL || b == NULL || stat(a, &first) != 0 || stat(b, &second) != 0)
        return 0;
    return first.st_dev == second.st_dev && first.st_ino == second.st_ino;
}

int tlmi_file_write_atomic(tlmi_host *host, const char *path,
                           const void *data, size_t size) {
    tlmi_file_writer *writer = NULL;
    int status = tlmi_file_writer_open(host, path, &writer);
    if (status != TLM_OK)
        return status;
    status = tlmi_file_writer_write(writer, data, size);
    if (status != TLM_OK) {
        tlmi_file_writer_abort(writer);
        return status;
    }
    return tlmi_file_writer_commit(writer);
}
