/*
 * How much memory this process may use: the default memory limit of a
 * context (docs/reliability.md, "Memory"). The smallest of
 *   - the physical memory (sysconf: _SC_PHYS_PAGES * _SC_PAGESIZE),
 *   - the memory limit of the process's cgroup and of its ancestors:
 *     cgroup v2 `memory.max` under <root>/sys/fs/cgroup/<path>, cgroup v1
 *     `memory.limit_in_bytes` under <root>/sys/fs/cgroup/memory/<path>,
 *     the paths read from <root>/proc/self/cgroup ("max", or v1's huge
 *     "unlimited" number, means none),
 *   - RLIMIT_AS and RLIMIT_DATA when they are set.
 * `root` is "" for the running system; a test points it at a directory of
 * fake files. Nothing here allocates from a host or records an error: a
 * file that is missing or unreadable is simply no limit.
 */
#ifndef TLM_LIB_BASE_MEMORY_LIMIT_H
#define TLM_LIB_BASE_MEMORY_LIMIT_H

#include <stddef.h>
#include <stdint.h>

/* No limit. */
#define TLMI_MEMORY_UNLIMITED UINT64_MAX

typedef struct tlmi_memory_limit {
    uint64_t bytes;     /* TLMI_MEMORY_UNLIMITED when nothing limits */
    const char *source; /* static text naming where `bytes` comes from,
                           e.g. "cgroup memory.max" */
} tlmi_memory_limit;

/* Parses the text of a cgroup limit file: "max" (v2: no limit) gives
 * TLMI_MEMORY_UNLIMITED, a decimal number gives that many bytes (v1 writes
 * "no limit" as a number near 2^63: 2^62 and above count as none), both
 * with an optional final newline. Returns 0, or -1 for anything else
 * (empty, signs, spaces, other text, overflow). */
int tlmi_memory_parse_cgroup_value(const char *text, size_t length,
                                   uint64_t *bytes);

/* The smallest cgroup limit of the process (v2 and v1, the process's
 * cgroup and its ancestors), files under `root`. limit->bytes is
 * TLMI_MEMORY_UNLIMITED when none is found. */
void tlmi_memory_limit_cgroup(const char *root, tlmi_memory_limit *limit);

/* The default limit described above, cgroup files under `root`. */
void tlmi_memory_limit_default(const char *root, tlmi_memory_limit *limit);

/* Writes `bytes` for a message: "412.3 GiB", "3.0 MiB", "512 bytes". */
void tlmi_memory_format(char *buffer, size_t size, double bytes);

#endif
