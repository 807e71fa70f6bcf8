/* The training benchmarks' text as character ids (bench_text.h). */
#include "bench_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TLM_BENCH_SOURCE_ROOT
#define TLM_BENCH_SOURCE_ROOT "."
#endif

const char *bench_text_path(const char *given) {
    if (given != NULL)
        return given;
    const char *from_environment = getenv("TLM_BENCH_DATA");
    if (from_environment != NULL && from_environment[0] != '\0')
        return from_environment;
    return TLM_BENCH_SOURCE_ROOT "/../shared/data/tinyshakespeare.txt";
}

/* The whole stream in a buffer that doubles as it fills (a file whose
 * size cannot be asked, a pipe, reads as well). NULL on a read error or
 * when memory runs out. */
static unsigned char *read_all(FILE *f, size_t *length) {
    size_t capacity = (size_t)1 << 20;
    unsigned char *bytes = malloc(capacity);
    *length = 0;
    while (bytes != NULL) {
        if (*length == capacity) {
            unsigned char *grown = capacity <= SIZE_MAX / 2 ? realloc(bytes, capacity * 2)
                                                            : NULL;
            if (grown == NULL)
                break;
            bytes = grown;
            capacity *= 2;
        }
        const size_t got = fread(bytes + *length, 1, capacity - *length, f);
        *length += got;
        if (got == 0 && !ferror(f))
            return bytes; /* the end of the file */
        if (got == 0)
            break;
    }
    free(bytes);
    return NULL;
}

int bench_text_read(const char *program, const char *path, bench_text *out) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: cannot open '%s': skipped (give --data PATH or set "
                "TLM_BENCH_DATA)\n", program, path);
        return BENCH_TEXT_SKIPPED;
    }
    size_t length = 0;
    unsigned char *bytes = read_all(f, &length);
    fclose(f);
    if (bytes != NULL && length > 0 && length <= (size_t)INT64_MAX / sizeof *out->ids)
        out->ids = malloc(length * sizeof *out->ids);
    if (out->ids == NULL) {
        free(bytes);
        fprintf(stderr, "%s: cannot read '%s' (empty, unreadable, too large or "
                "out of memory)\n", program, path);
        return 1;
    }
    /* map[byte]: -1 absent, then the byte's rank among the present ones */
    int32_t map[256];
    for (int i = 0; i < 256; i++)
        map[i] = -1;
    for (size_t i = 0; i < length; i++)
        map[bytes[i]] = 0;
    for (int i = 0; i < 256; i++)
        if (map[i] == 0)
            map[i] = out->vocab++;
    for (size_t i = 0; i < length; i++)
        out->ids[i] = map[bytes[i]];
    out->count = (int64_t)length;
    free(bytes);
    return 0;
}

void bench_text_free(bench_text *text) {
    free(text->ids);
    memset(text, 0, sizeof *text);
}
