/*
 * The text the training benchmarks (bench_train, time_to_quality) train
 * on, as character-level token ids: the file's distinct bytes numbered in
 * increasing order (65 symbols for tiny Shakespeare, as nanoGPT's
 * shakespeare_char/prepare.py numbers them).
 *
 * Compiled into each program with the program's c_args, so that
 * TLM_BENCH_SOURCE_ROOT names the source tree for the default path.
 */
#ifndef TLM_BENCH_TEXT_H
#define TLM_BENCH_TEXT_H

#include <stdint.h>

/* The exit status of a benchmark that skips (meson's "skipped"). */
#define BENCH_TEXT_SKIPPED 77

typedef struct bench_text {
    int32_t *ids;   /* (count) one id a byte of the file */
    int64_t count;
    int32_t vocab;  /* distinct bytes in the file */
} bench_text;

/* The path to read: `given` (a --data option) when not NULL, else
 * $TLM_BENCH_DATA when set and not empty, else
 * ../shared/data/tinyshakespeare.txt beside the source tree. */
const char *bench_text_path(const char *given);

/* Reads `path` into `out` (free it with bench_text_free). Returns 0;
 * BENCH_TEXT_SKIPPED when the file cannot be opened; 1 when it cannot be
 * read, is empty or memory runs out. Each failure is said on stderr,
 * prefixed with `program`. */
int bench_text_read(const char *program, const char *path, bench_text *out);

void bench_text_free(bench_text *text);

#endif
