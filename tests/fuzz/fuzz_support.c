#define _POSIX_C_SOURCE 200809L /* mkstemp, posix_memalign */

#include "fuzz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/crc32.h"
#include "base/endian.h"

#ifdef TLM_FUZZ_LIBFUZZER
size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
#endif

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

void fuzz_check_loaded(tlm_context *ctx, const char *call, int status,
                       tlm_model *model) {
    char what[160];
    snprintf(what, sizeof what, "%s: model set exactly on success", call);
    fuzz_check((status == TLM_OK) == (model != NULL), what);
    if (status != TLM_OK) {
        snprintf(what, sizeof what, "%s: a failure has a message", call);
        fuzz_check(tlm_context_last_error(ctx)[0] != '\0', what);
        return;
    }
    tlm_session *session = NULL;
    if (tlm_session_create(&session, model, NULL) == TLM_OK) {
        int32_t id = 0;
        tlm_session_decode(session, &id, 1, NULL, 0);
        tlm_session_free(session);
    }
    tlm_model_free(model);
}

/* The .tlm layout (lib/io/container.c): a 64-byte header (magic at 0, file
 * size u64 at 16, section count u32 at 24, table offset u64 at 32, table
 * CRC u32 at 40, header CRC u32 at 44 over bytes 0..43), then 32-byte
 * table entries (kind 8 bytes, offset u64 at 8, size u64 at 16, CRC u32
 * at 24). */
#define TLM_HEADER 64u
#define TLM_ENTRY 32u
#define TLM_MAX_SECTIONS 64u
/* The optimizer state: magic "TLMOPTIM", ..., CRC u32 in its last 4. */
#define OPTIM_MIN 60u

void fuzz_fix_optim_state(uint8_t *data, size_t size) {
    if (size >= OPTIM_MIN && memcmp(data, "TLMOPTIM", 8) == 0)
        tlmi_put_u32(data + size - 4, tlmi_crc32(0, data, size - 4));
}

void fuzz_fix_tlm(uint8_t *data, size_t size, unsigned int seed) {
    static const unsigned char magic[8] = {0x89, 'T', 'L', 'M', '\r', '\n', 0x1a, '\n'};
    if (seed % 8 == 0 || size < TLM_HEADER || memcmp(data, magic, 8) != 0)
        return;
    if (seed / 8 % 4 != 0) /* mostly: the size the file has */
        tlmi_put_u64(data + 16, (uint64_t)size);
    const uint64_t table = tlmi_get_u64(data + 32);
    uint32_t count = tlmi_get_u32(data + 24);
    if (count > TLM_MAX_SECTIONS)
        count = TLM_MAX_SECTIONS;
    if (table <= size && (size - table) / TLM_ENTRY < count)
        count = (uint32_t)((size - table) / TLM_ENTRY);
    if (table <= size) {
        for (uint32_t i = 0; i < count; i++) {
            uint8_t *entry = data + table + (size_t)i * TLM_ENTRY;
            const uint64_t offset = tlmi_get_u64(entry + 8);
            const uint64_t length = tlmi_get_u64(entry + 16);
            if (offset > size || length > size - offset)
                continue;
            if (memcmp(entry, "optim\0\0\0", 8) == 0)
                fuzz_fix_optim_state(data + offset, (size_t)length);
            tlmi_put_u32(entry + 24, tlmi_crc32(0, data + offset, (size_t)length));
        }
        tlmi_put_u32(data + 40, tlmi_crc32(0, data + table, (size_t)count * TLM_ENTRY));
    }
    tlmi_put_u32(data + 44, tlmi_crc32(0, data, 44));
}

size_t fuzz_mutate_tlm(uint8_t *data, size_t size, size_t max_size,
                       unsigned int seed) {
#ifdef TLM_FUZZ_LIBFUZZER
    size = LLVMFuzzerMutate(data, size, max_size);
#else
    (void)max_size;
#endif
    fuzz_fix_tlm(data, size, seed);
    return size;
}

void fuzz_training_create(fuzz_training *out, tlm_context *ctx) {
    if (ctx == NULL)
        ctx = fuzz_context();
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 16;
    c.d_model = 8;
    c.n_heads = 2;
    c.d_ff = 8;
    c.n_decoder_layers = 1;
    c.max_context = 4;
    c.residual_dropout = 0.1f;
    c.init_seed = 1;
    int32_t ids[64];
    for (int i = 0; i < 64; i++)
        ids[i] = (int32_t)((i * 5 + i / 7) % 16);
    tlm_trainer_params params;
    tlm_trainer_params_init(&params);
    params.batch_size = 2;
    params.seed = 3;
    memset(out, 0, sizeof *out);
    if (tlm_model_create(&out->model, ctx, &c) != TLM_OK ||
        tlm_dataset_from_ids(&out->data, ctx, ids, 64, NULL) != TLM_OK ||
        tlm_trainer_create(&out->trainer, out->model, out->data, &params) != TLM_OK) {
        fprintf(stderr, "fuzz: no trainer: %s\n", tlm_last_error());
        abort();
    }
}

void fuzz_training_free(fuzz_training *training) {
    tlm_trainer_free(training->trainer);
    tlm_dataset_free(training->data);
    tlm_model_free(training->model);
}

void fuzz_hf_config(int which, tlm_model_config *c) {
    tlm_model_config_init(c);
    c->vocab_size = 5;
    c->n_heads = 2;
    c->n_decoder_layers = 1;
    if (which == 0) { /* GPT-2: learned positions, LayerNorm, GELU, biases */
        c->d_model = 4;
        c->max_context = 3;
        return;
    }
    c->d_model = 8;
    c->d_ff = 12;
    c->max_context = 4;
    c->position = TLM_POSITION_ROTARY;
    c->norm = TLM_NORM_RMS;
    c->activation = TLM_ACTIVATION_SWIGLU;
    c->bias = 0;
    c->tied_output = which == 2;
}
