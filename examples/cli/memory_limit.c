#include "memory_limit.h"

#include <stddef.h>
#include <string.h>

#include "numbers.h"
#include "options.h"

uint64_t cli_memory_limit = 0;

int cli_set_memory_limit(const char *cmd, const char *text) {
    if (text == NULL)
        return 0;
    if (strcmp(text, "none") == 0) {
        cli_memory_limit = UINT64_MAX;
        return 0;
    }
    uint64_t bytes = 0;
    const int problem = cli_number_size(text, &bytes);
    if (problem != CLI_NUMBER_OK) {
        char message[512];
        cli_number_message(message, sizeof message, "--memory-limit", text, problem,
                           CLI_NUMBER_SIZE_EXPECTED ", or 'none'");
        return cli_error(CLI_EXIT_USAGE, cmd, "%s", message);
    }
    cli_memory_limit = bytes;
    return 0;
}
