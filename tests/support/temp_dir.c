#define _POSIX_C_SOURCE 200809L /* mkdtemp, nftw-free directory walking */

#include "temp_dir.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int temp_dir_create(char *path, size_t size) {
    const char *base = getenv("TMPDIR");
    if (base == NULL || base[0] == '\0')
        base = "/tmp";
    int n = snprintf(path, size, "%s/tlm-formats-XXXXXX", base);
    if (n < 0 || (size_t)n >= size)
        return -1;
    return mkdtemp(path) != NULL ? 0 : -1;
}

void temp_dir_remove(const char *path) {
    DIR *dir = opendir(path);
    if (dir != NULL) {
        struct dirent *entry;
        while ((entry = readdir(dir)) != NULL) {
            if (strcmp(entry->d_name, ".") == 0 ||
                strcmp(entry->d_name, "..") == 0)
                continue;
            char child[4096];
            snprintf(child, sizeof child, "%s/%s", path, entry->d_name);
            struct stat info;
            if (lstat(child, &info) == 0 && S_ISDIR(info.st_mode)) {
                chmod(child, 0700);
                temp_dir_remove(child);
            } else {
                unlink(child);
            }
        }
        closedir(dir);
    }
    rmdir(path);
}

static int compare_strings(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int temp_dir_count(const char *path, char *names, size_t size) {
    DIR *dir = opendir(path);
    if (dir == NULL)
        return -1;
    char *list[256];
    int count = 0;
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0)
            continue;
        if (count < 256) {
            size_t n = strlen(entry->d_name) + 1;
            list[count] = malloc(n);
            if (list[count] != NULL)
                memcpy(list[count], entry->d_name, n);
        }
        count++;
    }
    closedir(dir);
    int kept = count < 256 ? count : 256;
    qsort(list, (size_t)kept, sizeof list[0], compare_strings);
    if (names != NULL && size > 0) {
        names[0] = '\0';
        size_t used = 0;
        for (int i = 0; i < kept; i++) {
            int n = snprintf(names + used, size - used, "%s%s", i ? " " : "",
                             list[i] ? list[i] : "?");
            if (n < 0 || (size_t)n >= size - used)
                break;
            used += (size_t)n;
        }
    }
    for (int i = 0; i < kept; i++)
        free(list[i]);
    return count;
}

int write_whole_file(const char *path, const void *data, size_t size) {
    FILE *file = fopen(path, "wb");
    if (file == NULL)
        return -1;
    size_t written = size ? fwrite(data, 1, size, file) : 0;
    int closed = fclose(file);
    return written == size && closed == 0 ? 0 : -1;
}

long read_whole_file(const char *path, void *data, size_t capacity) {
    FILE *file = fopen(path, "rb");
    if (file == NULL)
        return -1;
    size_t n = fread(data, 1, capacity, file);
    fclose(file);
    return (long)n;
}
