/*
 * Crash-safe, checked writing of the files the tlm program writes itself
 * (see output_file.h). The same rules as the library's writer in
 * lib/base/file.c, written again on plain POSIX calls because the
 * program uses only the public API.
 */
#define _POSIX_C_SOURCE 200809L /* fdopen, fsync, lstat, readlink, O_CLOEXEC */

#include "output_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.h"

struct cli_output {
    const char *cmd;
    char *path;   /* as the command line gave it (for messages) */
    char *target; /* `path` with symbolic links followed */
    char *temp;   /* the temporary file; NULL when appending or once in place */
    FILE *stream;
    int failed;   /* a failure was reported: never put the file in place */
};

/* Most symbolic links followed (Linux's own limit). */
#define MAX_LINK_HOPS 40

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

static char *copy_text(const char *text, size_t length) {
    char *copy = malloc(length + 1);
    if (copy != NULL) {
        memcpy(copy, text, length);
        copy[length] = '\0';
    }
    return copy;
}

/* The text of the symbolic link `link_path` (malloc'd), or NULL. */
static char *read_link(const char *link_path, size_t hint) {
    size_t capacity = hint > 0 ? hint + 1 : 256;
    for (;;) {
        char *text = malloc(capacity);
        if (text == NULL)
            return NULL;
        const ssize_t length = readlink(link_path, text, capacity);
        if (length >= 0 && (size_t)length < capacity) {
            text[length] = '\0';
            return text;
        }
        free(text);
        if (length < 0 || capacity > ((size_t)1 << 20))
            return NULL;
        capacity *= 2;
    }
}

/* The file writing `path` writes: `path` itself or the end of its chain
 * of symbolic links (a relative link read from the link's directory). A
 * regular file or nothing yet; anything else is refused. 0, or
 * CLI_EXIT_RUNTIME after printing the error. */
static int resolve_target(const char *cmd, const char *path, char **target,
                          int *exists, struct stat *info) {
    *target = NULL;
    *exists = 0;
    char *current = copy_text(path, strlen(path));
    if (current == NULL)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory");
    for (int hop = 0;; hop++) {
        if (lstat(current, info) != 0) {
            const int error = errno;
            if (error == ENOENT)
                break;
            const int status = cli_error(CLI_EXIT_RUNTIME, cmd, "cannot write '%s': %s",
                                         current, strerror(error));
            free(current);
            return status;
        }
        if (!S_ISLNK(info->st_mode)) {
            *exists = 1;
            break;
        }
        if (hop == MAX_LINK_HOPS) {
            free(current);
            return cli_error(CLI_EXIT_RUNTIME, cmd,
                             "cannot write '%s': more than %d symbolic links in a "
                             "chain (a loop?)",
                             path, MAX_LINK_HOPS);
        }
        char *text = read_link(current, info->st_size > 0 ? (size_t)info->st_size : 0);
        if (text == NULL) {
            const int status = cli_error(CLI_EXIT_RUNTIME, cmd,
                                         "cannot write '%s': reading the symbolic "
                                         "link '%s': %s",
                                         path, current, strerror(errno));
            free(current);
            return status;
        }
        const char *slash = strrchr(current, '/');
        const size_t keep =
            text[0] == '/' || slash == NULL ? 0 : (size_t)(slash - current) + 1;
        const size_t length = strlen(text);
        char *next = malloc(keep + length + 1);
        if (next != NULL) {
            memcpy(next, current, keep);
            memcpy(next + keep, text, length + 1);
        }
        free(text);
        free(current);
        if (next == NULL)
            return cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory");
        current = next;
    }
    const size_t length = strlen(current);
    if (length == 0 || current[length - 1] == '/' || (*exists && !S_ISREG(info->st_mode))) {
        const char *kind = *exists ? file_kind(info->st_mode) : "a directory";
        const int status =
            strcmp(current, path) != 0
                ? cli_error(CLI_EXIT_RUNTIME, cmd,
                            "cannot write '%s': it is a symbolic link to '%s', which "
                            "is %s; tlm replaces only regular files",
                            path, current, kind)
                : cli_error(CLI_EXIT_RUNTIME, cmd,
                            "cannot write '%s': it is %s; tlm replaces only regular "
                            "files",
                            path, kind);
        free(current);
        return status;
    }
    *target = current;
    return 0;
}

static void output_free(cli_output *o) {
    free(o->path);
    free(o->target);
    free(o->temp);
    free(o);
}

/* Reports the first failure (once) and marks the output failed. */
static int output_fail(cli_output *o, const char *doing, int error) {
    if (!o->failed)
        cli_error(CLI_EXIT_RUNTIME, o->cmd, "writing '%s' failed: %s%s%s", o->path,
                  doing, error != 0 ? ": " : "", error != 0 ? strerror(error) : "");
    o->failed = 1;
    return CLI_EXIT_RUNTIME;
}

/* Creates the temporary file beside o->target: `<target>.tmp-<pid>-<n>`,
 * a name nobody uses (O_EXCL). Returns the descriptor or -1 (errno). */
static int create_temporary(cli_output *o) {
    static unsigned counter;
    const size_t size = strlen(o->target) + 64;
    o->temp = malloc(size);
    if (o->temp == NULL) {
        errno = ENOMEM;
        return -1;
    }
    int fd = -1;
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(o->temp, size, "%s.tmp-%ld-%u", o->target, (long)getpid(), counter++);
        do
            fd = open(o->temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
        while (fd < 0 && errno == EINTR);
        if (fd >= 0 || errno != EEXIST)
            break;
    }
    if (fd < 0) {
        const int error = errno;
        free(o->temp);
        o->temp = NULL;
        errno = error;
    }
    return fd;
}

int cli_output_open(cli_output **out, const char *cmd, const char *path, int mode) {
    *out = NULL;
    if (path == NULL || path[0] == '\0')
        return cli_error(CLI_EXIT_RUNTIME, cmd, "cannot write a file with an empty name");
    cli_output *o = calloc(1, sizeof *o);
    if (o == NULL || (o->path = copy_text(path, strlen(path))) == NULL) {
        free(o);
        return cli_error(CLI_EXIT_RUNTIME, cmd, "out of memory");
    }
    o->cmd = cmd;
    struct stat old;
    int exists = 0;
    if (resolve_target(cmd, path, &o->target, &exists, &old) != 0) {
        output_free(o);
        return CLI_EXIT_RUNTIME;
    }
    int fd;
    if (mode == CLI_OUTPUT_APPEND) {
        do
            fd = open(o->target, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0666);
        while (fd < 0 && errno == EINTR);
    } else {
        fd = create_temporary(o);
        /* The replaced file's permission bits (its owner: only root may
         * give a file away, and the program does not try). */
        if (fd >= 0 && exists && fchmod(fd, old.st_mode & 07777) != 0) {
            const int error = errno;
            close(fd);
            unlink(o->temp);
            fd = -1;
            errno = error;
        }
    }
    if (fd < 0) {
        const int error = errno;
        cli_error(CLI_EXIT_RUNTIME, cmd, "cannot write '%s': %s%s%s%s", path,
                  o->temp != NULL ? "creating the temporary file '" : "",
                  o->temp != NULL ? o->temp : "", o->temp != NULL ? "': " : "",
                  strerror(error));
        output_free(o);
        return CLI_EXIT_RUNTIME;
    }
    o->stream = fdopen(fd, mode == CLI_OUTPUT_APPEND ? "a" : "w");
    if (o->stream == NULL) {
        const int error = errno;
        close(fd);
        if (o->temp != NULL)
            unlink(o->temp);
        cli_error(CLI_EXIT_RUNTIME, cmd, "cannot write '%s': %s", path, strerror(error));
        output_free(o);
        return CLI_EXIT_RUNTIME;
    }
    *out = o;
    return 0;
}

int cli_output_target(const char *cmd, const char *path, char **target) {
    struct stat info;
    int exists = 0;
    return resolve_target(cmd, path, target, &exists, &info);
}

FILE *cli_output_stream(const cli_output *o) {
    return o->stream;
}

int cli_output_flush(cli_output *o) {
    if (o->failed)
        return CLI_EXIT_RUNTIME;
    errno = 0;
    if (fflush(o->stream) != 0 || ferror(o->stream))
        return output_fail(o, "a write failed", errno);
    return 0;
}

/* fsync of the directory holding `file`, so that a rename in it is on
 * the disk. File systems that cannot sync a directory say EINVAL. */
static int sync_directory_of(const char *file) {
    const char *slash = strrchr(file, '/');
    char *directory = slash == NULL ? copy_text(".", 1)
                                    : copy_text(file, slash == file ? 1 : (size_t)(slash - file));
    if (directory == NULL)
        return ENOMEM;
    int fd;
    do
        fd = open(directory, O_RDONLY | O_CLOEXEC);
    while (fd < 0 && errno == EINTR);
    free(directory);
    if (fd < 0)
        return errno;
    int error = 0;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS)
        error = errno;
    close(fd);
    return error;
}

int cli_output_publish(cli_output *o) {
    if (cli_output_flush(o) != 0)
        return CLI_EXIT_RUNTIME;
    int result;
    do
        result = fsync(fileno(o->stream));
    while (result != 0 && errno == EINTR);
    if (result != 0)
        return output_fail(o, "syncing it to the disk", errno);
    if (o->temp == NULL)
        return 0;
    /* Something may have been put at the target since it was checked. */
    struct stat now;
    if (lstat(o->target, &now) == 0 && !S_ISREG(now.st_mode))
        return output_fail(o, S_ISDIR(now.st_mode) ? "it became a directory"
                                                    : "it became something other than a "
                                                      "regular file",
                           0);
    if (rename(o->temp, o->target) != 0)
        return output_fail(o, "renaming the temporary file over it", errno);
    free(o->temp);
    o->temp = NULL;
    const int error = sync_directory_of(o->target);
    if (error != 0)
        return output_fail(o, "the file is in place, but syncing its directory failed", error);
    return 0;
}

int cli_output_close(cli_output *o) {
    int status = cli_output_publish(o);
    if (fclose(o->stream) != 0 && status == 0)
        status = output_fail(o, "closing it", errno);
    if (o->temp != NULL)
        unlink(o->temp);
    output_free(o);
    return status;
}

void cli_output_abort(cli_output *o) {
    if (o == NULL)
        return;
    fclose(o->stream);
    if (o->temp != NULL)
        unlink(o->temp);
    output_free(o);
}
