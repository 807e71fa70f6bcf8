#define _POSIX_C_SOURCE 200809L /* O_CLOEXEC, mmap */

#include "input_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "options.h"

/* The defaults: a text as large as tlm trains on in practice (mapped, so
 * it costs page cache, not heap); a log of millions of steps; a prompt far
 * longer than any model's context. */
static uint64_t limits[3] = {(uint64_t)1 << 30, (uint64_t)256 << 20, (uint64_t)1 << 20};
static const char *const kind_names[3] = {"a text", "a training log", "a line of input"};

void cli_set_input_limit(uint64_t bytes) {
    for (size_t i = 0; i < sizeof limits / sizeof limits[0]; i++)
        limits[i] = bytes;
}

uint64_t cli_input_limit(int kind) {
    return kind >= 0 && kind < 3 ? limits[kind] : limits[CLI_INPUT_TEXT];
}

static const char *kind_name(int kind) {
    return kind >= 0 && kind < 3 ? kind_names[kind] : kind_names[CLI_INPUT_TEXT];
}

/* What a file that is not regular is, for the message. */
static const char *file_type(mode_t mode) {
    if (S_ISFIFO(mode))
        return "a FIFO (named pipe)";
    if (S_ISCHR(mode))
        return "a character device";
    if (S_ISBLK(mode))
        return "a block device";
    if (S_ISSOCK(mode))
        return "a socket";
    return "not a regular file";
}

/* Opens `path` for reading, checked: a regular file within the limit of
 * `kind`. O_NONBLOCK keeps open() from waiting for a FIFO's writer; it
 * changes nothing for a regular file. Returns the descriptor, or -1 after
 * printing why. */
static int open_input(const char *cmd, const char *path, int kind, size_t *size) {
    int fd;
    do
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    while (fd < 0 && errno == EINTR);
    if (fd < 0) {
        cli_error(CLI_EXIT_RUNTIME, cmd, "cannot read '%s': %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        cli_error(CLI_EXIT_RUNTIME, cmd, "cannot read '%s': %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    if (S_ISDIR(st.st_mode)) {
        cli_error(CLI_EXIT_RUNTIME, cmd, "'%s' is a directory, not a text file", path);
        close(fd);
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        cli_error(CLI_EXIT_RUNTIME, cmd,
                  "'%s' is %s: tlm reads %s only from a regular file, whose size is "
                  "known", path, file_type(st.st_mode), kind_name(kind));
        close(fd);
        return -1;
    }
    const uint64_t limit = cli_input_limit(kind);
    if (st.st_size < 0 || (uint64_t)st.st_size > limit || (uint64_t)st.st_size >= SIZE_MAX) {
        cli_error(CLI_EXIT_RUNTIME, cmd,
                  "'%s' is %lld bytes, more than the limit of %llu bytes for %s "
                  "(raise it with --max-input-size BYTES)",
                  path, (long long)st.st_size, (unsigned long long)limit, kind_name(kind));
        close(fd);
        return -1;
    }
    *size = (size_t)st.st_size;
    return fd;
}

int cli_input_map(const char *cmd, const char *path, int kind, cli_input *input) {
    input->data = "";
    input->size = 0;
    input->mapped = NULL;
    size_t size = 0;
    const int fd = open_input(cmd, path, kind, &size);
    if (fd < 0)
        return CLI_EXIT_RUNTIME;
    if (size == 0) {
        close(fd);
        return 0;
    }
    void *base = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int error = errno;
    close(fd);
    if (base == MAP_FAILED)
        return cli_error(CLI_EXIT_RUNTIME, cmd, "cannot map '%s': %s", path, strerror(error));
    input->data = base;
    input->size = size;
    input->mapped = base;
    return 0;
}

void cli_input_release(cli_input *input) {
    if (input->mapped != NULL)
        munmap(input->mapped, input->size);
    input->data = "";
    input->size = 0;
    input->mapped = NULL;
}

int cli_read_file(const char *cmd, const char *path, int kind, char **data, size_t *size) {
    *data = NULL;
    *size = 0;
    size_t expected = 0;
    const int fd = open_input(cmd, path, kind, &expected);
    if (fd < 0)
        return CLI_EXIT_RUNTIME;
    char *buffer = malloc(expected + 1);
    if (buffer == NULL) {
        close(fd);
        return cli_error(CLI_EXIT_RUNTIME, cmd, "'%s' (%zu bytes) does not fit in memory",
                         path, expected);
    }
    /* Read the size fstat gave, then one byte more: a file that grows
     * while it is read is refused rather than read without end. */
    size_t used = 0;
    int status = 0;
    for (;;) {
        char extra;
        const int at_end = used == expected;
        const ssize_t got = read(fd, at_end ? &extra : buffer + used,
                                 at_end ? 1 : expected - used);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            status = cli_error(CLI_EXIT_RUNTIME, cmd, "reading '%s' failed: %s", path,
                               strerror(errno));
            break;
        }
        if (at_end) {
            if (got > 0)
                status = cli_error(CLI_EXIT_RUNTIME, cmd,
                                   "'%s' grew while it was read (it had %zu bytes)",
                                   path, expected);
            break;
        }
        if (got == 0) {
            status = cli_error(CLI_EXIT_RUNTIME, cmd,
                               "'%s' shrank while it was read (%zu of %zu bytes)",
                               path, used, expected);
            break;
        }
        used += (size_t)got;
    }
    close(fd);
    if (status != 0) {
        free(buffer);
        return status;
    }
    buffer[used] = '\0';
    *data = buffer;
    *size = used;
    return 0;
}

int cli_read_line(const char *cmd, FILE *in, char **line, size_t *capacity,
                  size_t *number) {
    const uint64_t limit = cli_input_limit(CLI_INPUT_LINE);
    size_t used = 0;
    int c = EOF;
    (*number)++;
    while ((c = getc(in)) != EOF && c != '\n') {
        if (c == '\0')
            return cli_error(-1, cmd, "line %zu of standard input holds a NUL byte",
                             *number);
        if ((uint64_t)used >= limit)
            return cli_error(-1, cmd,
                             "line %zu of standard input is longer than the limit of "
                             "%llu bytes (raise it with --max-input-size BYTES)",
                             *number, (unsigned long long)limit);
        if (used + 1 >= *capacity) {
            const size_t grown = *capacity < 256 ? 256 : *capacity * 2;
            char *bigger = realloc(*line, grown);
            if (bigger == NULL)
                return cli_error(-1, cmd,
                                 "line %zu of standard input does not fit in memory",
                                 *number);
            *line = bigger;
            *capacity = grown;
        }
        (*line)[used++] = (char)c;
    }
    if (ferror(in))
        return cli_error(-1, cmd, "reading line %zu of standard input failed", *number);
    if (c == EOF && used == 0)
        return 0;
    if (*capacity == 0) {
        *line = malloc(1);
        if (*line == NULL)
            return cli_error(-1, cmd, "line %zu of standard input does not fit in memory",
                             *number);
        *capacity = 1;
    }
    (*line)[used] = '\0';
    return 1;
}
