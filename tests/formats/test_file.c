/* Files (lib/base/file.h): reading whole files and mapping them, with clear
 * errors; crash-safe writing that never damages the target and never
 * leaves temporary files behind, whether it succeeds, fails or is
 * aborted; and a commit removes the temporaries dead processes left for
 * the same target, and nothing else. */
#define _POSIX_C_SOURCE 200809L /* mkfifo, fork, setrlimit, sigaction */

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/file.h"
#include "base/host.h"
#include "counting_allocator.h"
#include "temp_dir.h"
#include "tlm.h"

typedef struct fixture {
    char dir[512];
    char path[600];
    counting_allocator counter;
    tlmi_host host;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (f == NULL || temp_dir_create(f->dir, sizeof f->dir) != 0) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof f->path, "%s/target.bin", f->dir);
    tlmi_host_init_default(&f->host);
    f->host.alloc_fn = counting_alloc;
    f->host.free_fn = counting_free;
    f->host.alloc_user = &f->counter;
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    int leaked = f->counter.live_bytes != 0 || f->counter.bad_free_sizes != 0;
    temp_dir_remove(f->dir);
    free(f);
    return leaked ? -1 : 0;
}

static void expect_contents(const char *path, const char *expected) {
    char buf[256];
    long n = read_whole_file(path, buf, sizeof buf);
    assert_int_equal(n, (long)strlen(expected));
    assert_memory_equal(buf, expected, (size_t)n);
}

static void expect_listing(const fixture *f, const char *expected) {
    char names[512];
    temp_dir_count(f->dir, names, sizeof names);
    assert_string_equal(names, expected);
}

/* ------------------------------------------------------------------------
 * Reading
 */

static void read_all_reads_and_terminates(void **state) {
    fixture *f = *state;
    assert_int_equal(write_whole_file(f->path, "hello\0world", 11), 0);
    void *data = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, 1000, &data, &size),
                     TLM_OK);
    assert_int_equal(size, 11);
    assert_memory_equal(data, "hello\0world", 11);
    assert_int_equal(((char *)data)[11], '\0');
    tlmi_file_free_contents(&f->host, data, size);

    /* An empty file: a valid pointer to a single NUL. */
    assert_int_equal(write_whole_file(f->path, "", 0), 0);
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, 1000, &data, &size),
                     TLM_OK);
    assert_int_equal(size, 0);
    assert_non_null(data);
    assert_int_equal(((char *)data)[0], '\0');
    tlmi_file_free_contents(&f->host, data, size);
    tlmi_file_free_contents(&f->host, NULL, 0);
}

static void read_all_errors(void **state) {
    fixture *f = *state;
    void *data = (void *)f;
    size_t size = 99;
    char missing[700], message[900];
    snprintf(missing, sizeof missing, "%s/missing.bin", f->dir);
    assert_int_equal(tlmi_file_read_all(&f->host, missing, 1000, &data, &size),
                     TLM_E_IO);
    assert_null(data);
    assert_int_equal(size, 0);
    snprintf(message, sizeof message,
             "reading '%s': No such file or directory", missing);
    assert_string_equal(f->host.last_error, message);

    assert_int_equal(tlmi_file_read_all(&f->host, f->dir, 1000, &data, &size),
                     TLM_E_IO);
    snprintf(message, sizeof message, "reading '%s': it is a directory", f->dir);
    assert_string_equal(f->host.last_error, message);

    /* A FIFO: refused without blocking on open. */
    char fifo[700];
    snprintf(fifo, sizeof fifo, "%s/fifo", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(tlmi_file_read_all(&f->host, fifo, 1000, &data, &size),
                     TLM_E_IO);
    snprintf(message, sizeof message, "reading '%s': it is not a regular file",
             fifo);
    assert_string_equal(f->host.last_error, message);

    /* Too large for the caller's limit. */
    assert_int_equal(write_whole_file(f->path, "0123456789", 10), 0);
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, 9, &data, &size),
                     TLM_E_IO);
    snprintf(message, sizeof message,
             "reading '%s': the file is 10 bytes, more than the limit of 9",
             f->path);
    assert_string_equal(f->host.last_error, message);
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, 10, &data, &size),
                     TLM_OK);
    tlmi_file_free_contents(&f->host, data, size);

    /* Under a path whose parent is a file. */
    char below[700];
    snprintf(below, sizeof below, "%s/x", f->path);
    assert_int_equal(tlmi_file_read_all(&f->host, below, 10, &data, &size),
                     TLM_E_IO);
    snprintf(message, sizeof message, "reading '%s': Not a directory", below);
    assert_string_equal(f->host.last_error, message);

    /* Unreadable: only meaningful when not running as root. */
    if (geteuid() != 0) {
        assert_int_equal(chmod(f->path, 0), 0);
        assert_int_equal(tlmi_file_read_all(&f->host, f->path, 10, &data, &size),
                         TLM_E_IO);
        snprintf(message, sizeof message, "reading '%s': Permission denied",
                 f->path);
        assert_string_equal(f->host.last_error, message);
        chmod(f->path, 0600);
    }

    assert_int_equal(tlmi_file_read_all(&f->host, NULL, 10, &data, &size),
                     TLM_E_INVALID);
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, 10, NULL, &size),
                     TLM_E_INVALID);
}

static void read_all_allocation_failure(void **state) {
    fixture *f = *state;
    assert_int_equal(write_whole_file(f->path, "abc", 3), 0);
    f->counter.fail_at = (int64_t)f->counter.calls + 1;
    void *data = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, 10, &data, &size),
                     TLM_E_NOMEM);
    assert_null(data);
    f->counter.fail_at = 0;
}

static void map_readonly(void **state) {
    fixture *f = *state;
    assert_int_equal(write_whole_file(f->path, "mapped bytes", 12), 0);
    tlmi_file_mapping mapping;
    assert_int_equal(tlmi_file_map_readonly(&f->host, f->path, &mapping), TLM_OK);
    assert_int_equal(mapping.size, 12);
    assert_memory_equal(mapping.data, "mapped bytes", 12);
    tlmi_file_unmap(&mapping);
    assert_null(mapping.data);
    tlmi_file_unmap(&mapping); /* twice: harmless */
    tlmi_file_unmap(NULL);

    /* The mapping stays valid after the file is replaced by a rename. */
    assert_int_equal(tlmi_file_map_readonly(&f->host, f->path, &mapping), TLM_OK);
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "new", 3), TLM_OK);
    assert_memory_equal(mapping.data, "mapped bytes", 12);
    tlmi_file_unmap(&mapping);

    assert_int_equal(write_whole_file(f->path, "", 0), 0);
    assert_int_equal(tlmi_file_map_readonly(&f->host, f->path, &mapping), TLM_OK);
    assert_int_equal(mapping.size, 0);
    assert_non_null(mapping.data);
    tlmi_file_unmap(&mapping);

    char message[900];
    assert_int_equal(tlmi_file_map_readonly(&f->host, f->dir, &mapping), TLM_E_IO);
    snprintf(message, sizeof message, "mapping '%s': it is a directory", f->dir);
    assert_string_equal(f->host.last_error, message);
    assert_null(mapping.data);
    char missing[700];
    snprintf(missing, sizeof missing, "%s/missing", f->dir);
    assert_int_equal(tlmi_file_map_readonly(&f->host, missing, &mapping), TLM_E_IO);
    snprintf(message, sizeof message, "mapping '%s': No such file or directory",
             missing);
    assert_string_equal(f->host.last_error, message);
    assert_int_equal(tlmi_file_map_readonly(&f->host, f->path, NULL), TLM_E_INVALID);
}

/* ------------------------------------------------------------------------
 * Crash-safe writing
 */

static void atomic_write_creates_and_replaces(void **state) {
    fixture *f = *state;
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "first", 5), TLM_OK);
    expect_contents(f->path, "first");
    expect_listing(f, "target.bin");
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "second!", 7),
                     TLM_OK);
    expect_contents(f->path, "second!");
    expect_listing(f, "target.bin");
    /* An empty file is a file too. */
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, NULL, 0), TLM_OK);
    expect_contents(f->path, "");
    /* A relative path (no directory part) works in the current
     * directory. */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir(f->dir), 0);
    assert_int_equal(tlmi_file_write_atomic(&f->host, "relative.txt", "r", 1),
                     TLM_OK);
    assert_int_equal(chdir(cwd), 0);
    expect_listing(f, "relative.txt target.bin");
}

static void streaming_writer_commit(void **state) {
    fixture *f = *state;
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "old", 3), TLM_OK);
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_OK);
    assert_non_null(w);
    /* While writing, the target still has its old contents and the
     * temporary file sits beside it. */
    assert_int_equal(tlmi_file_writer_write(w, "new ", 4), TLM_OK);
    assert_int_equal(tlmi_file_writer_write(w, "contents", 8), TLM_OK);
    assert_int_equal(tlmi_file_writer_write(w, NULL, 0), TLM_OK);
    assert_int_equal(tlmi_file_writer_size(w), 12);
    expect_contents(f->path, "old");
    char names[512];
    assert_int_equal(temp_dir_count(f->dir, names, sizeof names), 2);
    char prefix[64];
    snprintf(prefix, sizeof prefix, "target.bin target.bin.tmp-%lld-",
             (long long)getpid());
    assert_int_equal(strncmp(names, prefix, strlen(prefix)), 0);
    assert_int_equal(tlmi_file_writer_commit(w), TLM_OK);
    expect_contents(f->path, "new contents");
    expect_listing(f, "target.bin");

    /* A large file in one call and in many. */
    size_t big = (size_t)3 << 20;
    unsigned char *bytes = malloc(big);
    assert_non_null(bytes);
    for (size_t i = 0; i < big; i++)
        bytes[i] = (unsigned char)(i * 131 + 7);
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_OK);
    for (size_t i = 0; i < big; i += 4096)
        assert_int_equal(tlmi_file_writer_write(w, bytes + i, 4096), TLM_OK);
    assert_int_equal(tlmi_file_writer_commit(w), TLM_OK);
    void *back = NULL;
    size_t size = 0;
    assert_int_equal(tlmi_file_read_all(&f->host, f->path, big, &back, &size),
                     TLM_OK);
    assert_int_equal(size, big);
    assert_memory_equal(back, bytes, big);
    tlmi_file_free_contents(&f->host, back, size);
    free(bytes);
}

static void abort_keeps_the_old_file(void **state) {
    fixture *f = *state;
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "first", 5), TLM_OK);
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_OK);
    assert_int_equal(tlmi_file_writer_write(w, "half of a new fi", 16), TLM_OK);
    tlmi_file_writer_abort(w);
    expect_contents(f->path, "first");
    expect_listing(f, "target.bin");
    tlmi_file_writer_abort(NULL);

    /* Aborting before the first write, and a new file never created. */
    char other[700];
    snprintf(other, sizeof other, "%s/never.bin", f->dir);
    assert_int_equal(tlmi_file_writer_open(&f->host, other, &w), TLM_OK);
    tlmi_file_writer_abort(w);
    expect_listing(f, "target.bin");
}

static void missing_directory_fails_cleanly(void **state) {
    fixture *f = *state;
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "first", 5), TLM_OK);
    char path[700], message[2000];
    snprintf(path, sizeof path, "%s/no/such/dir/out.bin", f->dir);
    tlmi_file_writer *w = (tlmi_file_writer *)f;
    assert_int_equal(tlmi_file_writer_open(&f->host, path, &w), TLM_E_IO);
    assert_null(w);
    snprintf(message, sizeof message,
             "writing '%s': cannot create the temporary file '%s.tmp-%lld-",
             path, path, (long long)getpid());
    assert_int_equal(strncmp(f->host.last_error, message, strlen(message)), 0);
    assert_non_null(strstr(f->host.last_error, "': No such file or directory"));
    assert_int_equal(tlmi_file_write_atomic(&f->host, path, "x", 1), TLM_E_IO);
    expect_contents(f->path, "first");
    expect_listing(f, "target.bin");
}

static void target_is_a_directory(void **state) {
    fixture *f = *state;
    char sub[700];
    snprintf(sub, sizeof sub, "%s/sub", f->dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    char inside[760];
    snprintf(inside, sizeof inside, "%s/keep", sub);
    assert_int_equal(write_whole_file(inside, "k", 1), 0);
    assert_int_equal(tlmi_file_write_atomic(&f->host, sub, "x", 1), TLM_E_IO);
    /* Refused before a temporary file is made (issue #21). */
    assert_non_null(strstr(f->host.last_error, "it is a directory"));
    assert_non_null(strstr(f->host.last_error, sub));
    expect_listing(f, "sub");
    expect_contents(inside, "k");

    /* A path ending in '/' names a directory: refused up front. */
    char slash[760];
    snprintf(slash, sizeof slash, "%s/", sub);
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, slash, &w), TLM_E_INVALID);
    assert_int_equal(tlmi_file_writer_open(&f->host, "", &w), TLM_E_INVALID);
    assert_string_equal(f->host.last_error, "writing a file: path is empty");
    assert_int_equal(tlmi_file_writer_open(&f->host, NULL, &w), TLM_E_INVALID);
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, NULL), TLM_E_INVALID);
    expect_listing(f, "sub");
}

/* A write that fails half-way (the file size limit, as a full disk
 * would): the error names the path and the reason, the temporary file is
 * gone at once, the commit reports the failure and the target is
 * untouched. Runs in a child process, which alone gets the limit. */
static void failing_write_leaves_target_intact(void **state) {
    fixture *f = *state;
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "first", 5), TLM_OK);
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0) {
        struct sigaction ignore;
        memset(&ignore, 0, sizeof ignore);
        ignore.sa_handler = SIG_IGN;
        sigaction(SIGXFSZ, &ignore, NULL);
        struct rlimit limit = {4096, 4096};
        if (setrlimit(RLIMIT_FSIZE, &limit) != 0)
            _exit(10);
        tlmi_host host;
        tlmi_host_init_default(&host);
        tlmi_file_writer *w = NULL;
        if (tlmi_file_writer_open(&host, f->path, &w) != TLM_OK)
            _exit(11);
        static unsigned char block[3000];
        if (tlmi_file_writer_write(w, block, sizeof block) != TLM_OK)
            _exit(12);
        if (tlmi_file_writer_write(w, block, sizeof block) != TLM_E_IO)
            _exit(13); /* the second block passes the limit */
        if (strstr(host.last_error, "File too large") == NULL ||
            strstr(host.last_error, f->path) == NULL ||
            strstr(host.last_error, "writing") == NULL)
            _exit(14);
        if (temp_dir_count(f->dir, NULL, 0) != 1)
            _exit(15); /* the temporary file is already removed */
        if (tlmi_file_writer_write(w, block, 1) != TLM_E_IO)
            _exit(16); /* sticky */
        if (tlmi_file_writer_commit(w) != TLM_E_IO)
            _exit(17);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    expect_contents(f->path, "first");
    expect_listing(f, "target.bin");
}

/* Two writers of the same target at once use different temporary files;
 * the last commit wins and nothing is left over. */
static void concurrent_writers(void **state) {
    fixture *f = *state;
    tlmi_file_writer *a = NULL, *b = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &a), TLM_OK);
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &b), TLM_OK);
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 2);
    assert_int_equal(tlmi_file_writer_write(a, "from a", 6), TLM_OK);
    assert_int_equal(tlmi_file_writer_write(b, "from b", 6), TLM_OK);
    assert_int_equal(tlmi_file_writer_commit(a), TLM_OK);
    expect_contents(f->path, "from a");
    assert_int_equal(tlmi_file_writer_commit(b), TLM_OK);
    expect_contents(f->path, "from b");
    expect_listing(f, "target.bin");
}

/* A stale temporary file with the name the writer would pick (left by a
 * crashed process with the same pid) is skipped, not overwritten. */
static void stale_temporary_file_is_skipped(void **state) {
    fixture *f = *state;
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_OK);
    char names[512];
    temp_dir_count(f->dir, names, sizeof names);
    tlmi_file_writer_abort(w);
    /* The next name differs only by the counter: create the next few. */
    unsigned long counter = strtoul(strrchr(names, '-') + 1, NULL, 10);
    for (unsigned long i = 1; i <= 3; i++) {
        char stale[800];
        snprintf(stale, sizeof stale, "%s.tmp-%lld-%lu", f->path,
                 (long long)getpid(), counter + i);
        assert_int_equal(write_whole_file(stale, "stale", 5), 0);
    }
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "fresh", 5), TLM_OK);
    expect_contents(f->path, "fresh");
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 4); /* 3 stale + target */
}

/* ------------------------------------------------------------------------
 * Temporaries left by processes killed mid-save
 */

/* opendir() for this program, the library's file.c included (a
 * definition in the executable takes precedence over the C library's):
 * fails while `fail_listing` is set, as when the process is out of file
 * descriptors or memory, the only ways a directory a save has just
 * written into and synced can fail to list. */
static int fail_listing;

DIR *opendir(const char *name) {
    if (fail_listing) {
        errno = EMFILE;
        return NULL;
    }
    int fd;
    do
        fd = open(name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return NULL;
    DIR *directory = fdopendir(fd);
    if (directory == NULL) {
        int error = errno;
        close(fd);
        errno = error;
    }
    return directory;
}

/* The pid of a process that has exited and been waited for: no process
 * has it (until the system hands it out again, after a wrap-around). */
static pid_t dead_pid(void) {
    fflush(NULL);
    pid_t child = fork();
    assert_true(child >= 0);
    if (child == 0)
        _exit(0);
    int status = 0;
    assert_int_equal(waitpid(child, &status, 0), child);
    assert_int_equal(kill(child, 0), -1);
    assert_int_equal(errno, ESRCH);
    return child;
}

/* Creates `<dir>/<name>` holding "stale"; `name` is a printf format. */
#if defined(__GNUC__)
__attribute__((format(printf, 2, 3)))
#endif
static void make_stale(const char *dir, const char *name, ...) {
    char leaf[300], path[1000];
    va_list args;
    va_start(args, name);
    vsnprintf(leaf, sizeof leaf, name, args);
    va_end(args);
    snprintf(path, sizeof path, "%s/%s", dir, leaf);
    assert_int_equal(write_whole_file(path, "stale", 5), 0);
}

static int exists_in(const char *dir, const char *leaf) {
    char path[1000];
    snprintf(path, sizeof path, "%s/%s", dir, leaf);
    struct stat info;
    return lstat(path, &info) == 0;
}

/* Temporaries of a dead process for the same target go at the next
 * successful commit (not at an abort), whichever way the file is
 * written, also for a target named without a directory. */
static void stale_temporaries_of_dead_processes_are_removed(void **state) {
    fixture *f = *state;
    pid_t dead = dead_pid();
    make_stale(f->dir, "target.bin.tmp-%lld-0", (long long)dead);
    make_stale(f->dir, "target.bin.tmp-%lld-17", (long long)dead);
    make_stale(f->dir, "target.bin.tmp-%lld-18446744073709551615",
               (long long)dead);
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 3);
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_OK);
    tlmi_file_writer_abort(w);
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 3);
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "new", 3), TLM_OK);
    expect_contents(f->path, "new");
    expect_listing(f, "target.bin");

    /* The streaming writer, and a second dead process. */
    pid_t dead2 = dead_pid();
    make_stale(f->dir, "target.bin.tmp-%lld-5", (long long)dead);
    make_stale(f->dir, "target.bin.tmp-%lld-6", (long long)dead2);
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_OK);
    assert_int_equal(tlmi_file_writer_write(w, "streamed", 8), TLM_OK);
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 4);
    assert_int_equal(tlmi_file_writer_commit(w), TLM_OK);
    expect_contents(f->path, "streamed");
    expect_listing(f, "target.bin");

    /* A relative target: the current directory is listed. */
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    make_stale(f->dir, "relative.txt.tmp-%lld-2", (long long)dead);
    assert_int_equal(chdir(f->dir), 0);
    int status = tlmi_file_write_atomic(&f->host, "relative.txt", "r", 1);
    assert_int_equal(chdir(cwd), 0);
    assert_int_equal(status, TLM_OK);
    expect_listing(f, "relative.txt target.bin");
}

/* Temporaries of running processes are kept: the parent's (an init
 * process's, pid 1, too) and this process's own with other counters (a
 * thread of ours could be writing them); the dead one beside them goes. */
static void temporaries_of_running_processes_are_kept(void **state) {
    fixture *f = *state;
    pid_t dead = dead_pid();
    long long self = (long long)getpid(), parent = (long long)getppid();
    make_stale(f->dir, "target.bin.tmp-%lld-0", parent);
    make_stale(f->dir, "target.bin.tmp-%lld-999999", parent);
    make_stale(f->dir, "target.bin.tmp-%lld-999999", self);
    make_stale(f->dir, "target.bin.tmp-1-3");
    make_stale(f->dir, "target.bin.tmp-%lld-4", (long long)dead);
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "x", 1), TLM_OK);
    char leaf[100];
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%lld-0", parent);
    assert_true(exists_in(f->dir, leaf));
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%lld-999999", parent);
    assert_true(exists_in(f->dir, leaf));
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%lld-999999", self);
    assert_true(exists_in(f->dir, leaf));
    assert_true(exists_in(f->dir, "target.bin.tmp-1-3"));
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%lld-4", (long long)dead);
    assert_false(exists_in(f->dir, leaf));
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 5);
    /* And a second save keeps them again. */
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "y", 1), TLM_OK);
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), 5);
}

/* Copies `pattern` into `out` with every 'D' replaced by `pid`. */
static void expand_pid(char *out, size_t size, const char *pattern,
                       const char *pid) {
    size_t used = 0, pid_length = strlen(pid);
    for (const char *p = pattern; *p != '\0'; p++) {
        const char *piece = *p == 'D' ? pid : p;
        size_t length = *p == 'D' ? pid_length : 1;
        assert_true(used + length < size);
        memcpy(out + used, piece, length);
        used += length;
    }
    out[used] = '\0';
}

/* Only names of exactly the form `<base>.tmp-<pid>-<counter>` are
 * temporaries: every near miss stays, even with a dead pid in it. */
static void near_miss_names_are_kept(void **state) {
    fixture *f = *state;
    pid_t dead = dead_pid();
    char d[32];
    snprintf(d, sizeof d, "%lld", (long long)dead);
    const char *formats[] = {
        "target.bin.tmp-",
        "target.bin.tmp-12",
        "target.bin.tmp-12-",
        "target.bin.tmp-x-1",
        "target.bin.tmp-12-3x",
        "target.bin.tmp--1-2",
        "target.bin.tmp-D",
        "target.bin.tmp-D-",
        "target.bin.tmp-D-3x",
        "target.bin.tmp-D-1-2",
        "target.bin.tmp-D-1.bak",
        "target.bin.tmp-D-1 ",
        "target.bin.tmp-D--1",
        "target.bin.tmp-D-+1",
        "target.bin.tmp-D-01",
        "target.bin.tmp-0D-1",
        "target.bin.tmp-+D-1",
        "target.bin.tmp- D-1",
        "target.bin.tmp--D-1",
        "target.bin.tmp-0-1",
        "target.bin.tmp-00-1",
        "target.bin.tmp-4294967296D-1",
        "target.bin.tmp-99999999999999999999-1",
        "target.bin.tmp-D-123456789012345678901",
        "target.bin.TMP-D-1",
        "target.bin.tmpx-D-1",
        "target.bin.tmp_D-1",
        "target.bin-tmp-D-1",
        "target.bintmp-D-1",
        "other.bin.tmp-D-1",
        "target.bin2.tmp-D-1",
        "target.bi.tmp-D-1",
        "xtarget.bin.tmp-D-1",
        ".target.bin.tmp-D-1",
        "target.bin.tmp-D-1.tmp-D-2",
    };
    size_t count = sizeof formats / sizeof formats[0];
    char leaf[200];
    for (size_t i = 0; i < count; i++) {
        expand_pid(leaf, sizeof leaf, formats[i], d);
        make_stale(f->dir, "%s", leaf);
    }
    /* The one real leftover among them goes. */
    make_stale(f->dir, "target.bin.tmp-%s-1", d);
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), (int)count + 1);
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "x", 1), TLM_OK);
    for (size_t i = 0; i < count; i++) {
        expand_pid(leaf, sizeof leaf, formats[i], d);
        if (!exists_in(f->dir, leaf))
            fail_msg("'%s' was removed", leaf);
    }
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%s-1", d);
    assert_false(exists_in(f->dir, leaf));
    assert_int_equal(temp_dir_count(f->dir, NULL, 0), (int)count + 1);
}

/* Removing is best-effort: a leftover that cannot be unlinked (here a
 * directory with a temporary's name) and a directory that cannot be
 * listed leave the save successful, its messages and errno untouched. */
static void cleanup_failures_do_not_fail_the_save(void **state) {
    fixture *f = *state;
    pid_t dead = dead_pid();
    char leaf[100], path[800];
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%lld-5", (long long)dead);
    snprintf(path, sizeof path, "%s/%s", f->dir, leaf);
    assert_int_equal(mkdir(path, 0700), 0);
    make_stale(f->dir, "target.bin.tmp-%lld-4", (long long)dead);
    make_stale(f->dir, "target.bin.tmp-%lld-6", (long long)dead);
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, NULL, &w), TLM_E_INVALID);
    errno = EDOM;
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "x", 1), TLM_OK);
    assert_int_equal(errno, EDOM);
    assert_string_equal(f->host.last_error, "writing a file: path is NULL");
    assert_string_equal(tlm_last_error(), "writing a file: path is NULL");
    expect_contents(f->path, "x");
    assert_true(exists_in(f->dir, leaf)); /* could not go */
    char expected[200];
    snprintf(expected, sizeof expected, "target.bin %s", leaf);
    expect_listing(f, expected); /* the two files beside it went */
    assert_int_equal(rmdir(path), 0);

    /* A directory that cannot be listed (opendir() fails, see above). */
    make_stale(f->dir, "target.bin.tmp-%lld-7", (long long)dead);
    snprintf(leaf, sizeof leaf, "target.bin.tmp-%lld-7", (long long)dead);
    fail_listing = 1;
    errno = EDOM;
    int status = tlmi_file_write_atomic(&f->host, f->path, "y", 1);
    int error = errno;
    fail_listing = 0;
    assert_int_equal(status, TLM_OK);
    assert_int_equal(error, EDOM);
    assert_string_equal(f->host.last_error, "writing a file: path is NULL");
    assert_string_equal(tlm_last_error(), "writing a file: path is NULL");
    expect_contents(f->path, "y");
    assert_true(exists_in(f->dir, leaf));
    /* Once the directory can be listed, the next save removes it. */
    assert_int_equal(tlmi_file_write_atomic(&f->host, f->path, "z", 1), TLM_OK);
    expect_listing(f, "target.bin");
}

static void writer_allocation_failure(void **state) {
    fixture *f = *state;
    f->counter.fail_at = (int64_t)f->counter.calls + 1;
    tlmi_file_writer *w = NULL;
    assert_int_equal(tlmi_file_writer_open(&f->host, f->path, &w), TLM_E_NOMEM);
    assert_null(w);
    f->counter.fail_at = 0;
    expect_listing(f, "");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(read_all_reads_and_terminates, setup, teardown),
        cmocka_unit_test_setup_teardown(read_all_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(read_all_allocation_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(map_readonly, setup, teardown),
        cmocka_unit_test_setup_teardown(atomic_write_creates_and_replaces, setup, teardown),
        cmocka_unit_test_setup_teardown(streaming_writer_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(abort_keeps_the_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(missing_directory_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(target_is_a_directory, setup, teardown),
        cmocka_unit_test_setup_teardown(failing_write_leaves_target_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(concurrent_writers, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_temporary_file_is_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(writer_allocation_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(stale_temporaries_of_dead_processes_are_removed, setup, teardown),
        cmocka_unit_test_setup_teardown(temporaries_of_running_processes_are_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(near_miss_names_are_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(cleanup_failures_do_not_fail_the_save, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
