#define _POSIX_C_SOURCE 200809L /* sysconf, getrlimit */
#define _DEFAULT_SOURCE         /* _SC_PHYS_PAGES on glibc */

#include "memory_limit.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Longest file read here: /proc/self/cgroup of a v1 system lists a dozen
 * hierarchies; a limit file is one number. */
#define SMALL_FILE_MAX 8192
#define PATH_MAX_BYTES 4096

/* v1 writes "no limit" as LONG_MAX rounded down to a page (about 2^63);
 * no machine has 2^62 bytes, so anything from there on is no limit. */
#define CGROUP_V1_UNLIMITED ((uint64_t)1 << 62)

int tlmi_memory_parse_cgroup_value(const char *text, size_t length,
                                   uint64_t *bytes) {
    if (length > 0 && text[length - 1] == '\n')
        length--;
    if (length == 3 && memcmp(text, "max", 3) == 0) {
        *bytes = TLMI_MEMORY_UNLIMITED;
        return 0;
    }
    if (length == 0 || length > 20)
        return -1;
    uint64_t value = 0;
    for (size_t i = 0; i < length; i++) {
        if (text[i] < '0' || text[i] > '9')
            return -1;
        const uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    *bytes = value >= CGROUP_V1_UNLIMITED ? TLMI_MEMORY_UNLIMITED : value;
    return 0;
}

/* Reads at most SMALL_FILE_MAX - 1 bytes of `path` into `buffer`
 * (terminated); the length, or -1 when it cannot be read or is longer. */
static long read_small_file(const char *path, char *buffer) {
    const int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t used = 0;
    for (;;) {
        const ssize_t got = read(fd, buffer + used, SMALL_FILE_MAX - 1 - used);
        if (got < 0) {
            close(fd);
            return -1;
        }
        if (got == 0)
            break;
        used += (size_t)got;
        if (used == SMALL_FILE_MAX - 1) {
            close(fd);
            return -1;
        }
    }
    close(fd);
    buffer[used] = '\0';
    return (long)used;
}

/* The smallest limit in `file` of the cgroup directory `base` + `path`
 * and of each of its ancestors up to `base`. */
static uint64_t smallest_on_path(const char *base, const char *path,
                                 size_t path_length, const char *file) {
    uint64_t smallest = TLMI_MEMORY_UNLIMITED;
    char dir[PATH_MAX_BYTES];
    char text[SMALL_FILE_MAX];
    for (;;) {
        while (path_length > 0 && path[path_length - 1] == '/')
            path_length--;
        char full[PATH_MAX_BYTES + 64];
        const int n = snprintf(dir, sizeof dir, "%s/%.*s", base, (int)path_length, path);
        if (n > 0 && (size_t)n < sizeof dir &&
            snprintf(full, sizeof full, "%s/%s", dir, file) < (int)sizeof full) {
            uint64_t value = 0;
            const long length = read_small_file(full, text);
            if (length >= 0 &&
                tlmi_memory_parse_cgroup_value(text, (size_t)length, &value) == 0 &&
                value < smallest)
                smallest = value;
        }
        if (path_length == 0)
            return smallest;
        while (path_length > 0 && path[path_length - 1] != '/')
            path_length--;
    }
}

/* Whether the comma-separated `list` of `length` bytes names `name`. */
static int list_has(const char *list, size_t length, const char *name) {
    const size_t name_length = strlen(name);
    size_t start = 0;
    for (size_t i = 0; i <= length; i++)
        if (i == length || list[i] == ',') {
            if (i - start == name_length &&
                memcmp(list + start, name, name_length) == 0)
                return 1;
            start = i + 1;
        }
    return 0;
}

void tlmi_memory_limit_cgroup(const char *root, tlmi_memory_limit *limit) {
    limit->bytes = TLMI_MEMORY_UNLIMITED;
    limit->source = "none";
    char path[PATH_MAX_BYTES];
    char table[SMALL_FILE_MAX];
    if (snprintf(path, sizeof path, "%s/proc/self/cgroup", root) >= (int)sizeof path)
        return;
    const long length = read_small_file(path, table);
    if (length < 0)
        return;
    char v2_base[PATH_MAX_BYTES], v1_base[PATH_MAX_BYTES];
    snprintf(v2_base, sizeof v2_base, "%s/sys/fs/cgroup", root);
    snprintf(v1_base, sizeof v1_base, "%s/sys/fs/cgroup/memory", root);
    /* Lines "id:controllers:path"; v2's is "0::path". */
    const char *line = table;
    const char *end = table + length;
    while (line < end) {
        const char *newline = memchr(line, '\n', (size_t)(end - line));
        const char *line_end = newline != NULL ? newline : end;
        const char *colon1 = memchr(line, ':', (size_t)(line_end - line));
        const char *colon2 = colon1 != NULL
                                 ? memchr(colon1 + 1, ':', (size_t)(line_end - colon1 - 1))
                                 : NULL;
        if (colon2 != NULL && colon2[1] == '/') {
            const char *controllers = colon1 + 1;
            const size_t controllers_length = (size_t)(colon2 - controllers);
            const char *cgroup = colon2 + 1;
            const size_t cgroup_length = (size_t)(line_end - cgroup);
            uint64_t value = TLMI_MEMORY_UNLIMITED;
            const char *source = NULL;
            if (controllers_length == 0 && colon1 - line == 1 && line[0] == '0') {
                value = smallest_on_path(v2_base, cgroup, cgroup_length, "memory.max");
                source = "cgroup memory.max";
            } else if (list_has(controllers, controllers_length, "memory")) {
                value = smallest_on_path(v1_base, cgroup, cgroup_length,
                                         "memory.limit_in_bytes");
                source = "cgroup memory.limit_in_bytes";
            }
            if (source != NULL && value < limit->bytes) {
                limit->bytes = value;
                limit->source = source;
            }
        }
        line = line_end + 1;
    }
}

/* Lowers `limit` to `bytes` (naming `source`) when that is smaller. */
static void lower(tlmi_memory_limit *limit, uint64_t bytes, const char *source) {
    if (bytes < limit->bytes) {
        limit->bytes = bytes;
        limit->source = source;
    }
}

static void lower_to_rlimit(tlmi_memory_limit *limit, int resource,
                            const char *source) {
    struct rlimit r;
    if (getrlimit(resource, &r) == 0 && r.rlim_cur != RLIM_INFINITY)
        lower(limit, (uint64_t)r.rlim_cur, source);
}

void tlmi_memory_limit_default(const char *root, tlmi_memory_limit *limit) {
    limit->bytes = TLMI_MEMORY_UNLIMITED;
    limit->source = "none";
#if defined(_SC_PHYS_PAGES) && defined(_SC_PAGESIZE)
    const long pages = sysconf(_SC_PHYS_PAGES);
    const long page_size = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page_size > 0 &&
        (uint64_t)pages <= UINT64_MAX / (uint64_t)page_size)
        lower(limit, (uint64_t)pages * (uint64_t)page_size, "physical memory");
#endif
    tlmi_memory_limit cgroup;
    tlmi_memory_limit_cgroup(root, &cgroup);
    lower(limit, cgroup.bytes, cgroup.source);
    lower_to_rlimit(limit, RLIMIT_AS, "RLIMIT_AS");
#if defined(RLIMIT_DATA)
    lower_to_rlimit(limit, RLIMIT_DATA, "RLIMIT_DATA");
#endif
}

void tlmi_memory_format(char *buffer, size_t size, double bytes) {
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    if (!(bytes >= 1024.0)) {
        snprintf(buffer, size, "%.0f bytes", bytes > 0 ? bytes : 0.0);
        return;
    }
    int unit = -1;
    while (bytes >= 1024.0 && unit < 5) {
        bytes /= 1024.0;
        unit++;
    }
    snprintf(buffer, size, "%.1f %s", bytes, units[unit]);
}
