/*
 * Runs a fuzz target once over files instead of under libFuzzer: every
 * regular file named on the command line or found (one level deep) in a
 * directory named there. The normal test builds use it to run each
 * target's seed corpus and its regression inputs (crashes found by
 * fuzzing, kept in tests/fuzz/regressions/<target>/).
 */
#define _POSIX_C_SOURCE 200809L

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int run_file(const char *path) {
    FILE *file = fopen(path, "rb");
    if (file == NULL) {
        perror(path);
        return 1;
    }
    size_t capacity = 1 << 16, size = 0;
    uint8_t *data = malloc(capacity);
    for (;;) {
        if (data == NULL) {
            fclose(file);
            return 1;
        }
        size += fread(data + size, 1, capacity - size, file);
        if (size < capacity)
            break;
        capacity *= 2;
        uint8_t *bigger = realloc(data, capacity);
        if (bigger == NULL)
            free(data);
        data = bigger;
    }
    fclose(file);
    /* A copy of exactly `size` bytes, so that reading past the input is
     * caught by the sanitizers as it is under libFuzzer. */
    uint8_t *exact = malloc(size > 0 ? size : 1);
    if (exact == NULL) {
        free(data);
        return 1;
    }
    memcpy(exact, data, size);
    free(data);
    LLVMFuzzerTestOneInput(exact, size);
    free(exact);
    return 0;
}

int main(int argc, char **argv) {
    int files = 0, failed = 0;
    for (int i = 1; i < argc; i++) {
        struct stat info;
        if (stat(argv[i], &info) != 0) {
            perror(argv[i]);
            failed = 1;
            continue;
        }
        if (!S_ISDIR(info.st_mode)) {
            failed |= run_file(argv[i]);
            files++;
            continue;
        }
        DIR *dir = opendir(argv[i]);
        struct dirent *entry;
        while (dir != NULL && (entry = readdir(dir)) != NULL) {
            if (entry->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof path, "%s/%s", argv[i], entry->d_name);
            failed |= run_file(path);
            files++;
        }
        if (dir != NULL)
            closedir(dir);
    }
    printf("replayed %d inputs\n", files);
    return failed || files == 0;
}
