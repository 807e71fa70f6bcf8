/*
 * The fuzz targets' common parts. Each target defines
 * LLVMFuzzerTestOneInput (libFuzzer's entry point); built with
 * -fsanitize=fuzzer it is fuzzed, built with replay.c it runs the files of
 * its corpus and regressions once (the normal test builds do that).
 * A target may abort on a violated property (that is a finding); the
 * library may not, whatever the input.
 */
#ifndef TLM_TESTS_FUZZ_H
#define TLM_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "tlm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A context whose allocator refuses any single allocation above 64 MB (a
 * host with a memory budget): a tiny input claiming an enormous model gets
 * TLM_E_NOMEM instead of exhausting the machine. Created once. */
tlm_context *fuzz_context(void);

/* The hooks of fuzz_context(), for internal calls that take a tlmi_host. */
void *fuzz_alloc(void *user, size_t size, size_t alignment);
void fuzz_free(void *user, void *ptr, size_t size);

/* Writes the input to this process's scratch file and returns its path. */
const char *fuzz_write_temp(const uint8_t *data, size_t size);

/* Aborts with a message when `condition` is false. */
void fuzz_check(int condition, const char *what);

#endif
