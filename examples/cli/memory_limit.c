#include "memory_limit.h"

#include <stddef.h>
#include <string.h>

#include "options.h"

uint64_t cli_memory_limit = 0;

/* The value of `text` (digits and one optional suffix) in bytes; -1 when
 * malformed, 0 or more than 2^64 - 2 bytes. */
static int parse_bytes(const char *text, uint64_t *bytes) {
    if (strcmp(text, "none") == 0) {
        *bytes = UINT64_MAX;
        return 0;
    }
    uint64_t value = 0;
    size_t i = 0;
    for (; text[i] >= '0' && text[i] <= '9'; i++) {
        const uint64_t digit = (uint64_t)(text[i] - '0');
        if (value > (UINT64_MAX - 1 - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    if (i == 0)
        return -1;
    static const char suffixes[] = "KMGT";
    int shift = 0;
    if (text[i] != '\0') {
        const char *found = NULL;
        for (int k = 0; k < 4 && found == NULL; k++)
            if (text[i] == suffixes[k] || text[i] == suffixes[k] + ('a' - 'A'))
                found = &suffixes[k];
        if (found == NULL || text[i + 1] != '\0')
            return -1;
        shift = 10 * (int)(found - suffixes + 1);
    }
    if (value == 0 || value > (UINT64_MAX - 1) >> shift)
        return -1;
    *bytes = value << shift;
    return 0;
}

int cli_set_memory_limit(const char *cmd, const char *text) {
    if (text == NULL)
        return 0;
    uint64_t bytes = 0;
    if (parse_bytes(text, &bytes) != 0)
        return cli_error(CLI_EXIT_USAGE, cmd,
                         "--memory-limit expects a number of bytes above 0 "
                         "with an optional K, M, G or T (powers of 1024), "
                         "e.g. 8G, or 'none', not '%s'",
                         text);
    cli_memory_limit = bytes;
    return 0;
}
