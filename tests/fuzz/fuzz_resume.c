/* Fuzz target: the checkpoint reader (tlm_trainer_resume, lib/train/
 * trainer.c: the model's sections, `optim`, `trainer`) on a trainer of
 * fuzz_training_create's shape, whose checkpoints are the seeds. A failure
 * has a message and changes nothing: the step and every weight are as
 * before (docs/reliability.md, "Resume is all-or-nothing"). Mutations go
 * through fuzz_mutate_tlm, which makes the checksums right again. */
#include <string.h>

#include "autodiff/tensor.h"
#include "base/crc32.h"
#include "fuzz.h"

#ifdef TLM_FUZZ_LIBFUZZER
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed) {
    return fuzz_mutate_tlm(data, size, max_size, seed);
}
#endif

/* CRC-32 of every parameter's values, in order. */
static uint32_t weights_crc(const tlm_model *model) {
    uint32_t crc = 0;
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(model); i++) {
        tlm_tensor *t = NULL;
        fuzz_check(tlm_model_parameter(model, i, NULL, &t) == TLM_OK,
                   "tlm_model_parameter");
        crc = tlmi_crc32(crc, t->data, (size_t)t->numel * sizeof(float));
    }
    return crc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fuzz_training training;
    if (training.trainer == NULL)
        fuzz_training_create(&training, NULL);
    const char *path = fuzz_write_temp(data, size);
    const int64_t step = tlm_trainer_step_count(training.trainer);
    const uint32_t weights = weights_crc(training.model);
    const int status = tlm_trainer_resume(training.trainer, path);
    if (status != TLM_OK) {
        fuzz_check(tlm_trainer_last_error(training.trainer)[0] != '\0',
                   "tlm_trainer_resume: a failure has a message");
        fuzz_check(tlm_trainer_step_count(training.trainer) == step,
                   "tlm_trainer_resume: a failure leaves the step");
        fuzz_check(weights_crc(training.model) == weights,
                   "tlm_trainer_resume: a failure leaves the weights");
        return 0;
    }
    /* A resumed trainer takes a step (its generators are usable). */
    tlm_trainer_step(training.trainer, NULL);
    return 0;
}
