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

/* What every loader's or importer's result must satisfy: `model` is set
 * exactly when `status` (of `call`) is TLM_OK, a failure has a message in
 * `ctx`, and a model is usable: a session decodes one token. Frees the
 * model. */
void fuzz_check_loaded(tlm_context *ctx, const char *call, int status,
                       tlm_model *model);

/* Makes the checksums of a .tlm file (docs/format.md, lib/io/container.c)
 * right again after a mutation, so that mutations reach the parsers behind
 * them: every section's CRC-32 (and first, in an `optim` section holding
 * an optimizer state, that state's own CRC), the section table's and the
 * header's, and the header's file size. `seed` (libFuzzer's) leaves one
 * input in 8 as mutated, so the checksum and size checks are fuzzed too.
 * Anything that is not a .tlm file is left alone. */
void fuzz_fix_tlm(uint8_t *data, size_t size, unsigned int seed);

/* The CRC-32 at the end of an optimizer state (lib/train/optim_state.c),
 * made right when `data` starts like one. */
void fuzz_fix_optim_state(uint8_t *data, size_t size);

/* libFuzzer's custom mutator for targets whose input is a .tlm file:
 * libFuzzer's own mutation (only in the libFuzzer build, where
 * TLM_FUZZ_LIBFUZZER is defined), then fuzz_fix_tlm. A target defines
 * LLVMFuzzerCustomMutator as a call to this, under TLM_FUZZ_LIBFUZZER. */
size_t fuzz_mutate_tlm(uint8_t *data, size_t size, size_t max_size,
                       unsigned int seed);

/* The small model, data set and trainer behind the checkpoint and
 * optimizer-state targets and their seeds (make_corpus.c writes
 * checkpoints of this trainer): created once in fuzz_context()'s budget
 * when `ctx` is NULL, or in `ctx`. */
typedef struct fuzz_training {
    tlm_model *model;
    tlm_dataset *data;
    tlm_trainer *trainer;
} fuzz_training;
void fuzz_training_create(fuzz_training *out, tlm_context *ctx);
void fuzz_training_free(fuzz_training *training);

/* The configurations of the Hugging Face imports that target hf_import
 * tries on every input (make_corpus.c exports its seeds from models of
 * these): 0 a GPT-2, 1 an untied Llama, 2 a tied one. */
#define FUZZ_HF_CONFIGS 3
void fuzz_hf_config(int which, tlm_model_config *config);

#endif
