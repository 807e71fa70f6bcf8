/* Fuzz target: the .tlm loader (lib/model/model_file.c, lib/io/container.c),
 * through the file: read into memory (memory_map 0) and mapped
 * (memory_map 1). A loaded model must be usable: a session decodes one
 * token. Under libFuzzer the mutations go through fuzz_mutate_tlm, which
 * makes the checksums right again: otherwise nearly every mutation dies at
 * a CRC and the section and tensor-index parsers are never reached. */
#include "fuzz.h"

#ifdef TLM_FUZZ_LIBFUZZER
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size,
                               unsigned int seed) {
    return fuzz_mutate_tlm(data, size, max_size, seed);
}
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = fuzz_write_temp(data, size);
    tlm_context *ctx = fuzz_context();
    for (int map = 0; map < 2; map++) {
        tlm_model_load_params params;
        tlm_model_load_params_init(&params);
        params.memory_map = map;
        tlm_model *model = NULL;
        const int status = tlm_model_load(&model, ctx, path, &params);
        fuzz_check_loaded(ctx, "tlm_model_load", status, model);
    }
    return 0;
}
