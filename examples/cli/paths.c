/*
 * The check that no command writes over one of its own inputs (see
 * paths.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "paths.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "options.h"

/* Who a path is: the file's device and inode, or for a file that does
 * not exist yet, its directory's and its last component. */
typedef struct identity {
    int known;    /* 0: neither the file nor its directory exists */
    int exists;   /* the file itself */
    dev_t device;
    ino_t inode;
    const char *name; /* the last component, when !exists */
} identity;

static identity identify(const char *path) {
    identity id = {0, 0, 0, 0, NULL};
    struct stat info;
    if (stat(path, &info) == 0) {
        id.known = id.exists = 1;
        id.device = info.st_dev;
        id.inode = info.st_ino;
        return id;
    }
    const char *slash = strrchr(path, '/');
    id.name = slash == NULL ? path : slash + 1;
    const size_t length = slash == NULL ? 1 : slash == path ? 1 : (size_t)(slash - path);
    char *directory = malloc(length + 1);
    if (directory == NULL)
        return id;
    memcpy(directory, slash == NULL ? "." : path, length);
    directory[length] = '\0';
    if (stat(directory, &info) == 0) {
        id.known = 1;
        id.device = info.st_dev;
        id.inode = info.st_ino;
    }
    free(directory);
    return id;
}

static int same(const identity *a, const identity *b) {
    if (!a->known || !b->known || a->exists != b->exists || a->device != b->device ||
        a->inode != b->inode)
        return 0;
    return a->exists || strcmp(a->name, b->name) == 0;
}

int cli_check_outputs(const char *cmd, const cli_path *inputs, size_t n_inputs,
                      const cli_path *outputs, size_t n_outputs) {
    for (size_t o = 0; o < n_outputs; o++) {
        if (outputs[o].path == NULL || outputs[o].path[0] == '\0')
            continue;
        const identity out = identify(outputs[o].path);
        for (size_t i = 0; i < n_inputs; i++) {
            if (inputs[i].path == NULL || inputs[i].path[0] == '\0')
                continue;
            const identity in = identify(inputs[i].path);
            if (in.exists && same(&out, &in))
                return cli_error(CLI_EXIT_USAGE, cmd,
                                 "the output '%s' (%s) is the same file as the input "
                                 "'%s' (%s): writing it would destroy the input",
                                 outputs[o].path, outputs[o].flag, inputs[i].path,
                                 inputs[i].flag);
        }
        for (size_t other = 0; other < o; other++) {
            if (outputs[other].path == NULL || outputs[other].path[0] == '\0')
                continue;
            const identity earlier = identify(outputs[other].path);
            if (same(&out, &earlier) || strcmp(outputs[o].path, outputs[other].path) == 0)
                return cli_error(CLI_EXIT_USAGE, cmd,
                                 "the outputs '%s' (%s) and '%s' (%s) are the same file",
                                 outputs[other].path, outputs[other].flag, outputs[o].path,
                                 outputs[o].flag);
        }
    }
    return 0;
}
