/*
 * Suite "faults": where a library save writes (issue #21, finding 1).
 * Every save goes through one crash-safe writer (lib/base/file.c); these
 * cases check its promises through the public savers: a target that
 * exists and is not a regular file (a FIFO, a socket, a directory, a
 * character device such as /dev/null or /dev/full, also behind a link)
 * is refused with TLM_E_IO and a message naming the path and saying what
 * it is, and nothing is created; a symbolic link is written through (the
 * chain stays, the file at its end is replaced); a dangling link creates
 * the file it names; a replaced file keeps its permission bits; a hard
 * link is one name among several (the others keep the old contents); a
 * dataset's id cache never replaces the text it caches. None of this
 * needs root: the refusals happen before anything is created.
 */
#define _XOPEN_SOURCE 700 /* S_IF* file types, symlink, mkfifo */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "counting_allocator.h"
#include "temp_dir.h"
#include "tiny_model.h"
#include "tlm.h"

static counting_allocator counter;
static char dir[512];
static tlm_context *ctx;
static tlm_model *model; /* decoder-only, byte tokenizer attached */

static int setup(void **state) {
    (void)state;
    if (temp_dir_create(dir, sizeof dir) != 0)
        return -1;
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.alloc_fn = counting_alloc;
    cp.free_fn = counting_free;
    cp.alloc_user = &counter;
    cp.n_threads = 1;
    if (tlm_context_create(&ctx, &cp) != TLM_OK)
        return -1;
    if (tiny_byte_model_create(&model, ctx) != TLM_OK)
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    tlm_model_free(model);
    tlm_context_free(ctx);
    temp_dir_remove(dir);
    return counter.live_bytes == 0 ? 0 : -1;
}

static void path_in(char *out, size_t size, const char *name) {
    snprintf(out, size, "%s/%s", dir, name);
}

/* A fresh subdirectory of the scratch directory for one case. */
static void case_dir(char *out, size_t size, const char *name) {
    path_in(out, size, name);
    assert_int_equal(mkdir(out, 0700), 0);
}

static void expect_refused(int status, const char *path, const char *kind) {
    const char *message = tlm_last_error();
    if (status != TLM_E_IO)
        fail_msg("saving to '%s' returned %s, expected TLM_E_IO (%s)", path,
                 tlm_status_name(status), message);
    if (strstr(message, path) == NULL || strstr(message, kind) == NULL)
        fail_msg("saving to '%s': message \"%s\" does not name the path and "
                 "'%s'",
                 path, message, kind);
}

static mode_t file_type(const char *path) {
    struct stat info;
    assert_int_equal(lstat(path, &info), 0);
    return info.st_mode & S_IFMT;
}

/* A FIFO, a socket and a directory made here: refused by every saver,
 * left as they were, and no temporary file beside them. */
static void special_files_are_refused(void **state) {
    (void)state;
    char sub[600], fifo[700], sock[700], folder[700];
    case_dir(sub, sizeof sub, "special");
    snprintf(fifo, sizeof fifo, "%s/fifo", sub);
    snprintf(sock, sizeof sock, "%s/sock", sub);
    snprintf(folder, sizeof folder, "%s/folder", sub);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(mkdir(folder, 0700), 0);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_un address;
    memset(&address, 0, sizeof address);
    address.sun_family = AF_UNIX;
    const int have_socket = strlen(sock) < sizeof address.sun_path;
    if (have_socket) {
        memcpy(address.sun_path, sock, strlen(sock) + 1);
        assert_int_equal(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
    }
    close(fd);

    expect_refused(tlm_model_save(model, fifo), fifo, "FIFO");
    expect_refused(tlm_model_export_safetensors(model, fifo), fifo, "FIFO");
    expect_refused(tlm_tokenizer_save(tlm_model_tokenizer(model), fifo), fifo, "FIFO");
    expect_refused(tlm_model_save(model, folder), folder, "a directory");
    if (have_socket)
        expect_refused(tlm_model_save(model, sock), sock, "a socket");
    assert_int_equal(file_type(fifo), S_IFIFO);
    assert_int_equal(file_type(folder), S_IFDIR);
    if (have_socket)
        assert_int_equal(file_type(sock), S_IFSOCK);
    assert_int_equal(temp_dir_count(sub, NULL, 0), have_socket ? 3 : 2);
    assert_int_equal(temp_dir_count(folder, NULL, 0), 0);
}

/* The trainer's checkpoint goes through the same writer. */
static void trainer_save_is_refused(void **state) {
    (void)state;
    char fifo[600];
    path_in(fifo, sizeof fifo, "trainer-fifo");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = i % 7;
    tlm_dataset *data = NULL;
    assert_int_equal(tlm_dataset_from_ids(&data, ctx, ids, 64, NULL), TLM_OK);
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = 2;
    tp.context = 4;
    tlm_trainer *trainer = NULL;
    assert_int_equal(tlm_trainer_create(&trainer, model, data, &tp), TLM_OK);
    expect_refused(tlm_trainer_save(trainer, fifo), fifo, "FIFO");
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    assert_int_equal(file_type(fifo), S_IFIFO);
}

/* /dev/null and /dev/full are character devices for every user. They
 * are reached through links made here, never named directly: the writer
 * this replaced renamed its temporary over whatever the path named, and
 * run as root on such a build, a direct save would replace the system's
 * /dev/null with a regular file (the finding itself). Through a link,
 * the old writer replaced only the link. The message names the link and
 * what it leads to. */
static void devices_are_refused(void **state) {
    (void)state;
    const char *devices[2] = {"/dev/null", "/dev/full"};
    for (int i = 0; i < 2; i++) {
        char link_path[600];
        path_in(link_path, sizeof link_path, i == 0 ? "null-link" : "full-link");
        assert_int_equal(symlink(devices[i], link_path), 0);
        expect_refused(tlm_model_save(model, link_path), link_path,
                       "character device");
        expect_refused(tlm_model_export_safetensors(model, link_path), devices[i],
                       "character device");
        assert_int_equal(file_type(link_path), S_IFLNK);
        assert_int_equal(file_type(devices[i]), S_IFCHR);
    }
}

static int load_ok(const char *path) {
    tlm_model *loaded = NULL;
    int status = tlm_model_load(&loaded, ctx, path, NULL);
    tlm_model_free(loaded);
    return status == TLM_OK;
}

/* a -> b (relative) -> inner/c (relative, another directory) -> file:
 * the links stay, the file at the end becomes the model, and the
 * temporary lived in inner/ (nothing is left in either directory). */
static void symlink_chain_is_written_through(void **state) {
    (void)state;
    char sub[600], inner[700], a[700], b[700], c[800];
    case_dir(sub, sizeof sub, "chain");
    snprintf(inner, sizeof inner, "%s/inner", sub);
    assert_int_equal(mkdir(inner, 0700), 0);
    snprintf(a, sizeof a, "%s/a", sub);
    snprintf(b, sizeof b, "%s/b", sub);
    snprintf(c, sizeof c, "%s/c", inner);
    assert_int_equal(write_whole_file(c, "old", 3), 0);
    assert_int_equal(symlink("b", a), 0);
    assert_int_equal(symlink("inner/c", b), 0);
    assert_int_equal(tlm_model_save(model, a), TLM_OK);
    assert_int_equal(file_type(a), S_IFLNK);
    assert_int_equal(file_type(b), S_IFLNK);
    assert_int_equal(file_type(c), S_IFREG);
    assert_true(load_ok(c));
    char names[256];
    assert_int_equal(temp_dir_count(sub, names, sizeof names), 3);
    assert_string_equal(names, "a b inner");
    assert_int_equal(temp_dir_count(inner, names, sizeof names), 1);
    assert_string_equal(names, "c");

    /* A dangling link creates the file it names. */
    char dangling[700], named[700];
    snprintf(dangling, sizeof dangling, "%s/dangling", sub);
    snprintf(named, sizeof named, "%s/inner/new.tlm", sub);
    assert_int_equal(symlink("inner/new.tlm", dangling), 0);
    assert_int_equal(tlm_model_save(model, dangling), TLM_OK);
    assert_int_equal(file_type(dangling), S_IFLNK);
    assert_int_equal(file_type(named), S_IFREG);
    assert_true(load_ok(dangling));

    /* A loop is refused. */
    char loop1[700], loop2[700];
    snprintf(loop1, sizeof loop1, "%s/loop1", sub);
    snprintf(loop2, sizeof loop2, "%s/loop2", sub);
    assert_int_equal(symlink("loop2", loop1), 0);
    assert_int_equal(symlink("loop1", loop2), 0);
    expect_refused(tlm_model_save(model, loop1), loop1, "symbolic links");
}

/* A replaced file keeps its permission bits (0600 and 0640 are not what
 * any usual umask gives a new file). */
static void permissions_are_kept(void **state) {
    (void)state;
    const mode_t modes[2] = {0600, 0640};
    for (int i = 0; i < 2; i++) {
        char path[600];
        path_in(path, sizeof path, i == 0 ? "private.tlm" : "group.tlm");
        assert_int_equal(write_whole_file(path, "old", 3), 0);
        assert_int_equal(chmod(path, modes[i]), 0);
        assert_int_equal(tlm_model_save(model, path), TLM_OK);
        struct stat info;
        assert_int_equal(stat(path, &info), 0);
        assert_int_equal(info.st_mode & 07777, modes[i]);
        assert_int_equal(info.st_uid, geteuid());
        assert_true(load_ok(path));
    }
}

/* A hard link is one name of a file: saving to it replaces that name,
 * and the other name keeps the old contents (nothing is written into
 * the shared inode, so no name ever holds a half-written file). */
static void hard_link_keeps_the_other_name(void **state) {
    (void)state;
    char first[600], second[600];
    path_in(first, sizeof first, "first.tlm");
    path_in(second, sizeof second, "second.tlm");
    assert_int_equal(write_whole_file(first, "old", 3), 0);
    assert_int_equal(link(first, second), 0);
    assert_int_equal(tlm_model_save(model, second), TLM_OK);
    char contents[8];
    assert_int_equal(read_whole_file(first, contents, sizeof contents), 3);
    assert_memory_equal(contents, "old", 3);
    assert_true(load_ok(second));
}

/* `<text>.tlmtok`, the dataset's id cache, linked to the text itself:
 * the cache is skipped and the text survives. */
static void dataset_cache_never_replaces_its_text(void **state) {
    (void)state;
    char text[600], cache[700];
    path_in(text, sizeof text, "corpus.txt");
    snprintf(cache, sizeof cache, "%s.tlmtok", text);
    const char words[] = "the cat sat on the mat; the dog sat on the log.\n";
    assert_int_equal(write_whole_file(text, words, sizeof words - 1), 0);
    assert_int_equal(symlink("corpus.txt", cache), 0);
    tlm_dataset *data = NULL;
    assert_int_equal(tlm_dataset_from_text_file(&data, ctx, text,
                                                tlm_model_tokenizer(model), NULL),
                     TLM_OK);
    tlm_dataset_free(data);
    char contents[128];
    assert_int_equal(read_whole_file(text, contents, sizeof contents),
                     (long)(sizeof words - 1));
    assert_memory_equal(contents, words, sizeof words - 1);
    assert_int_equal(file_type(cache), S_IFLNK);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(special_files_are_refused),
        cmocka_unit_test(trainer_save_is_refused),
        cmocka_unit_test(devices_are_refused),
        cmocka_unit_test(symlink_chain_is_written_through),
        cmocka_unit_test(permissions_are_kept),
        cmocka_unit_test(hard_link_keeps_the_other_name),
        cmocka_unit_test(dataset_cache_never_replaces_its_text),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
