/*
 * Data-parallel training throughput: run under `mpirun -np N` (N = 1, 2),
 * it trains a small decoder-only model (4 layers, 4 heads, width 128,
 * context 64, 12 sequences per rank: nanoGPT's CPU config) on synthetic
 * ids for a few steps after a warm-up, one compute thread per rank, and
 * rank 0 prints one JSON line:
 *   {"bench":"train_mpi","ranks":N,"tokens_per_s":...,"allreduce_ms_per_step":...}
 * tokens_per_s counts the tokens of all ranks; allreduce_ms_per_step is the
 * time the trainer spent averaging gradients (tlm_trainer_allreduce_time).
 * Without mpirun it runs as one rank. Arguments: [steps] (default 20).
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "tlm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int fail(const char *what, const char *message) {
    fprintf(stderr, "bench_train_mpi: %s: %s\n", what, message);
    return 1;
}

int main(int argc, char **argv) {
    const int steps = argc > 1 ? atoi(argv[1]) : 20;
    if (steps < 1 || steps > 100000)
        return fail("usage", "bench_train_mpi [steps 1..100000]");
    tlm_comm *comm = NULL;
    int rank = 0, ranks = 1;
    if (getenv("OMPI_COMM_WORLD_SIZE") != NULL || getenv("PMI_SIZE") != NULL) {
        if (tlm_comm_create_world(&comm, NULL) != TLM_OK)
            return fail("tlm_comm_create_world", tlm_last_error());
        rank = tlm_comm_rank(comm);
        ranks = tlm_comm_size(comm);
    }
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.n_threads = 1;
    tlm_context *ctx = NULL;
    tlm_model *model = NULL;
    tlm_dataset *data = NULL;
    tlm_trainer *trainer = NULL;
    int status = tlm_context_create(&ctx, &cp);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 65;
    c.d_model = 128;
    c.n_heads = 4;
    c.n_encoder_layers = 0;
    c.n_decoder_layers = 4;
    c.max_context = 64;
    if (status == TLM_OK)
        status = tlm_model_create(&model, ctx, &c);
    enum { N_IDS = 200000 };
    static int32_t ids[N_IDS];
    uint32_t x = 1;
    for (int i = 0; i < N_IDS; i++) {
        x = x * 1664525u + 1013904223u;
        ids[i] = (int32_t)((x >> 16) % 65);
    }
    if (status == TLM_OK)
        status = tlm_dataset_from_ids(&data, ctx, ids, N_IDS, NULL);
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = 12;
    tp.comm = comm;
    if (status == TLM_OK)
        status = tlm_trainer_create(&trainer, model, data, &tp);
    for (int i = 0; status == TLM_OK && i < 3; i++) /* warm-up */
        status = tlm_trainer_step(trainer, NULL);
    double before = 0, after = 0;
    tlm_trainer_allreduce_time(trainer, NULL, &before);
    const double start = now();
    int64_t tokens = 0;
    tlm_step_info info;
    tlm_step_info_init(&info);
    for (int i = 0; status == TLM_OK && i < steps; i++) {
        status = tlm_trainer_step(trainer, &info);
        tokens += info.tokens;
    }
    const double seconds = now() - start;
    tlm_trainer_allreduce_time(trainer, NULL, &after);
    if (status != TLM_OK)
        fprintf(stderr, "bench_train_mpi: %s\n", trainer != NULL
                    ? tlm_trainer_last_error(trainer) : tlm_last_error());
    else if (rank == 0)
        printf("{\"bench\":\"train_mpi\",\"ranks\":%d,\"params\":%lld,"
               "\"batch_per_rank\":12,\"context\":64,\"steps\":%d,"
               "\"tokens_per_s\":%.0f,\"ms_per_step\":%.2f,"
               "\"allreduce_ms_per_step\":%.3f}\n",
               ranks, (long long)tlm_model_parameter_count(model), steps,
               (double)tokens / seconds, 1e3 * seconds / steps,
               (after - before) / steps);
    tlm_trainer_free(trainer);
    tlm_dataset_free(data);
    tlm_model_free(model);
    tlm_context_free(ctx);
    tlm_comm_free(comm);
    return status == TLM_OK ? 0 : 1;
}
