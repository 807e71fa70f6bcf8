#define _POSIX_C_SOURCE 200809L /* mkstemp, posix_memalign */

#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define FUZZ_BUDGET ((size_t)64 << 20)

void *fuzz_alloc(void *user, size_t size, size_t alignment) {
    (void)user;
    if (size == 0 || size > FUZZ_BUDGET)
        return NULL;
    void *ptr = NULL;
    if (alignment < sizeof(void *))
        alignment = sizeof(void *);
    return posix_memalign(&ptr, alignment, size) == 0 ? ptr : NULL;
}

void fuzz_free(void *user, void *ptr, size_t size) {
    (void)user;
    (void)size;
    free(ptr);
}

tlm_context *fuzz_context(void) {
    static tlm_context *ctx;
    if (ctx == NULL) {
        tlm_context_params params;
        tlm_context_params_init(&params);
        params.alloc_fn = fuzz_alloc;
        params.free_fn = fuzz_free;
        params.n_threads = 1;
        if (tlm_context_create(&ctx, &params) != TLM_OK) {
            fprintf(stderr, "fuzz: no context: %s\n", tlm_last_error());
            abort();
        }
    }
    return ctx;
}

static char temp_path[64];

static void remove_temp(void) {
    if (temp_path[0] != '\0')
        unlink(temp_path);
}

const char *fuzz_write_temp(const uint8_t *data, size_t size) {
    if (temp_path[0] == '\0') {
        const char *base = getenv("TMPDIR");
        snprintf(temp_path, sizeof temp_path, "%.40s/tlm-fuzz-XXXXXX",
                 base != NULL && base[0] != '\0' ? base : "/tmp");
        int fd = mkstemp(temp_path);
        if (fd < 0) {
            perror("fuzz: mkstemp");
            abort();
        }
        close(fd);
        atexit(remove_temp);
    }
    FILE *file = fopen(temp_path, "wb");
    if (file == NULL || (size > 0 && fwrite(data, 1, size, file) != size) ||
        fclose(file) != 0) {
        perror("fuzz: writing the input");
        abort();
    }
    return temp_path;
}

void fuzz_check(int condition, const char *what) {
    if (!condition) {
        fprintf(stderr, "fuzz: property violated: %s\n", what);
        abort();
    }
}
