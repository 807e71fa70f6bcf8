/* Fuzz target: the optimizer-state reader (tlm_optimizer_load_state,
 * lib/train/optim_state.c) for an AdamW and an SGD optimizer over the
 * parameters of fuzz_training_create's model. A refused state has a
 * message and leaves the optimizer's state (its save_state bytes) as it
 * was; an accepted one saves back to exactly the input. The state's own
 * checksum is made right again after each mutation. */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"

#ifdef TLM_FUZZ_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed) {
    size = LLVMFuzzerMutate(data, size, max_size);
    if (seed % 8 != 0) /* one in 8 keeps a wrong checksum */
        fuzz_fix_optim_state(data, size);
    return size;
}
#endif

/* The optimizer's state as saved: a buffer of *size bytes (free it). */
static unsigned char *saved(tlm_optimizer *opt, size_t *size) {
    fuzz_check(tlm_optimizer_state_size(opt, size) == TLM_OK, "state_size");
    unsigned char *bytes = malloc(*size);
    fuzz_check(bytes != NULL, "malloc");
    fuzz_check(tlm_optimizer_save_state(opt, bytes, *size) == TLM_OK, "save_state");
    return bytes;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static fuzz_training training;
    static tlm_optimizer *optimizers[2];
    if (training.model == NULL) {
        fuzz_training_create(&training, NULL);
        tlm_tensor *tensors[64];
        const int32_t count = tlm_model_parameter_tensor_count(training.model);
        fuzz_check(count <= 64, "parameter count");
        for (int32_t i = 0; i < count; i++)
            fuzz_check(tlm_model_parameter(training.model, i, NULL, &tensors[i]) == TLM_OK,
                       "tlm_model_parameter");
        for (int k = 0; k < 2; k++) {
            tlm_optimizer_params params;
            tlm_optimizer_params_init(&params);
            params.kind = k == 0 ? TLM_OPTIMIZER_ADAMW : TLM_OPTIMIZER_SGD;
            if (k == 1)
                params.momentum = 0.9f; /* a moment to save */
            fuzz_check(tlm_optimizer_create(&optimizers[k], tensors, count, &params) == TLM_OK,
                       "tlm_optimizer_create");
        }
    }
    for (int k = 0; k < 2; k++) {
        size_t before_size = 0, after_size = 0;
        unsigned char *before = saved(optimizers[k], &before_size);
        const int status = tlm_optimizer_load_state(optimizers[k], data, size);
        unsigned char *after = saved(optimizers[k], &after_size);
        if (status != TLM_OK) {
            fuzz_check(tlm_optimizer_last_error(optimizers[k])[0] != '\0',
                       "tlm_optimizer_load_state: a failure has a message");
            fuzz_check(after_size == before_size &&
                           memcmp(after, before, before_size) == 0,
                       "tlm_optimizer_load_state: a failure changes nothing");
        } else {
            fuzz_check(after_size == size && memcmp(after, data, size) == 0,
                       "tlm_optimizer_load_state: an accepted state saves "
                       "back to the same bytes");
        }
        free(before);
        free(after);
    }
    return 0;
}
