/* Files (lib/file.h): reading whole files and mapping them, with clear
 * errors; crash-safe writing that never damages the target and never
 * leaves temporary files behind, whether it succeeds, fails or is
 * aborted. */
#define _POSIX_C_SOURCE 200809L /* mkfifo, fork, setrlimit, sigaction */

#include <errno.h>
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

#include "counting_allocator.h"
#include "file.h"
#include "host.h"
#include "temp_dir.h"

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
    assert_non_null(strstr(f->host.last_error, "renaming the temporary file"));
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
