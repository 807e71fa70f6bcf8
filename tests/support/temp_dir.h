/* Scratch directories for the file tests: created fresh under $TMPDIR (or
 * /tmp), listed, and removed with everything in them. */
#ifndef TLM_TESTS_TEMP_DIR_H
#define TLM_TESTS_TEMP_DIR_H

#include <stddef.h>

/* Creates a new directory and writes its path into `path` (`size` bytes).
 * Returns 0, or -1 on failure. */
int temp_dir_create(char *path, size_t size);

/* Removes `path` and everything below it. */
void temp_dir_remove(const char *path);

/* Number of entries in directory `path` ("." and ".." not counted), or -1.
 * When `names` is not NULL, their names separated by spaces, sorted. */
int temp_dir_count(const char *path, char *names, size_t size);

/* Writes `size` bytes as the whole contents of `path` (plain stdio, for
 * setting up a test). Returns 0 or -1. */
int write_whole_file(const char *path, const void *data, size_t size);

/* Reads up to `capacity` bytes of `path` into `data`; returns the count
 * read, or -1 when the file cannot be opened. */
long read_whole_file(const char *path, void *data, size_t capacity);

#endif
