/*
 * Data-parallel training over MPI, run as `mpirun -np 2 test_mpi_train`
 * (suite "mpi"):
 *  - 2 ranks with batch B/2 give the same losses, evaluation and weights as
 *    1 process with batch B, within a float tolerance, after a few steps
 *    with clipping active and many gradient buckets;
 *  - the weights are bit-identical on both ranks;
 *  - only rank 0 writes a checkpoint;
 *  - a 2-rank checkpoint resumes on 2 ranks bit for bit (dropout on, so
 *    each rank's dropout generator must come back), and a 1-process
 *    checkpoint is refused;
 *  - a non-finite loss on one rank makes every rank skip the update.
 */
#define _POSIX_C_SOURCE 200809L

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <mpi.h>

#include "temp_dir.h"
#include "tlm.h"
#include "tolerance.h"

#define BATCH 4 /* the single process's batch; each of 2 ranks takes 2 */
#define STEPS 5
#define TOLERANCE 2e-5f        /* losses, gradient norm: relative */
#define WEIGHT_TOLERANCE 1e-5f /* weights: absolute (see below) */

static int checks, failures, rank;

#define CHECK(cond)                                                            \
    do {                                                                       \
        checks++;                                                              \
        if (!(cond)) {                                                         \
            failures++;                                                        \
            fprintf(stderr, "rank %d: %s:%d: check failed: %s (%s)\n", rank,   \
                    __FILE__, __LINE__, #cond, tlm_last_error());              \
        }                                                                      \
    } while (0)

typedef struct run {
    tlm_context *ctx;
    tlm_model *model;
    tlm_dataset *data;
    tlm_trainer *trainer;
} run;

static void run_open(run *r, tlm_comm *comm, int32_t batch, float dropout) {
    memset(r, 0, sizeof *r);
    tlm_context_params cp;
    tlm_context_params_init(&cp);
    cp.n_threads = 1;
    CHECK(tlm_context_create(&r->ctx, &cp) == TLM_OK);
    tlm_model_config c;
    tlm_model_config_init(&c);
    c.vocab_size = 13;
    c.d_model = 16;
    c.n_heads = 2;
    c.n_encoder_layers = 0;
    c.n_decoder_layers = 2;
    c.max_context = 8;
    c.embedding_dropout = dropout;
    c.residual_dropout = dropout;
    c.init_seed = 7;
    CHECK(tlm_model_create(&r->model, r->ctx, &c) == TLM_OK);
    int32_t ids[600];
    uint32_t x = 12345;
    for (int i = 0; i < 600; i++) { /* a learnable, slightly noisy sequence */
        x = x * 1103515245u + 12345u;
        ids[i] = (int32_t)((i * 3 + (x >> 28 == 0)) % 13);
    }
    tlm_dataset_params dp;
    tlm_dataset_params_init(&dp);
    dp.validation_fraction = 0.2f;
    CHECK(tlm_dataset_from_ids(&r->data, r->ctx, ids, 600, &dp) == TLM_OK);
    tlm_schedule_params schedule;
    tlm_schedule_params_init(&schedule);
    schedule.kind = TLM_SCHEDULE_COSINE;
    schedule.lr = 3e-3f;
    schedule.min_lr = 3e-4f;
    schedule.warmup_steps = 2;
    schedule.decay_end_step = 20;
    tlm_trainer_params tp;
    tlm_trainer_params_init(&tp);
    tp.batch_size = batch;
    tp.accumulation = 2;
    tp.grad_clip = 0.5f; /* below the early gradient norms: clipping acts */
    tp.seed = 3;
    tp.schedule = &schedule;
    tp.comm = comm;
    CHECK(tlm_trainer_create(&r->trainer, r->model, r->data, &tp) == TLM_OK);
}

static void run_close(run *r) {
    tlm_trainer_free(r->trainer);
    tlm_dataset_free(r->data);
    tlm_model_free(r->model);
    tlm_context_free(r->ctx);
}

/* All parameters, concatenated, into a new array of *count floats. */
static float *weights(const run *r, int64_t *count) {
    *count = tlm_model_parameter_count(r->model);
    float *all = malloc((size_t)*count * sizeof *all);
    if (all == NULL)
        return NULL;
    int64_t offset = 0;
    for (int32_t i = 0; i < tlm_model_parameter_tensor_count(r->model); i++) {
        tlm_tensor *t = NULL;
        tlm_model_parameter(r->model, i, NULL, &t);
        tlm_tensor_get_f32(t, all + offset, (size_t)tlm_tensor_numel(t));
        offset += tlm_tensor_numel(t);
    }
    return all;
}

/* 1 process with batch B against 2 ranks with batch B/2. */
static void equivalence(tlm_comm *comm) {
    run one, two;
    run_open(&one, NULL, BATCH, 0.0f);
    run_open(&two, comm, BATCH / 2, 0.0f);
    int clipped = 0;
    for (int s = 0; s < STEPS; s++) {
        tlm_step_info a, b;
        memset(&a, 0, sizeof a);
        memset(&b, 0, sizeof b);
        tlm_step_info_init(&a);
        tlm_step_info_init(&b);
        CHECK(tlm_trainer_step(one.trainer, &a) == TLM_OK);
        CHECK(tlm_trainer_step(two.trainer, &b) == TLM_OK);
        CHECK(fabsf(a.loss - b.loss) <= TOLERANCE * fabsf(a.loss));
        CHECK(fabs(a.grad_norm - b.grad_norm) <= 1e-4 * a.grad_norm);
        CHECK(a.tokens == b.tokens);
        clipped += a.grad_norm > 0.5;
    }
    CHECK(clipped > 0);
    double last = -1, total = -1;
    CHECK(tlm_trainer_allreduce_time(two.trainer, &last, &total) == TLM_OK);
    CHECK(last > 0 && total >= last);
    float e1 = 0, e2 = 0;
    CHECK(tlm_trainer_evaluate(one.trainer, TLM_SPLIT_VALIDATION, 3, &e1) == TLM_OK);
    CHECK(tlm_trainer_evaluate(two.trainer, TLM_SPLIT_VALIDATION, 3, &e2) == TLM_OK);
    CHECK(fabsf(e1 - e2) <= TOLERANCE * fabsf(e1));
    int64_t n = 0;
    float *w1 = weights(&one, &n), *w2 = weights(&two, &n);
    CHECK(w1 != NULL && w2 != NULL);
    if (w1 != NULL && w2 != NULL) {
        /* AdamW divides by sqrt(v): where a gradient is near zero, its
         * rounding (the reduction order differs) moves the update by a
         * fraction of the learning rate, so the tolerance is absolute, a
         * small fraction of what STEPS steps of lr 3e-3 can move. */
        const double worst = tlmt_max_abs_diff_f32(w1, w2, n);
        if (rank == 0)
            printf("equivalence: %lld weights after %d steps, largest "
                   "difference %.3g (tolerance %.3g)\n", (long long)n, STEPS,
                   (double)worst, (double)WEIGHT_TOLERANCE);
        CHECK(worst <= (double)WEIGHT_TOLERANCE);
        /* Identical on both ranks, bit for bit. */
        float *theirs = malloc((size_t)n * sizeof *theirs);
        CHECK(theirs != NULL);
        if (theirs != NULL) {
            memcpy(theirs, w2, (size_t)n * sizeof *theirs);
            MPI_Bcast(theirs, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
            CHECK(memcmp(theirs, w2, (size_t)n * sizeof *theirs) == 0);
            free(theirs);
        }
    }
    free(w1);
    free(w2);
    run_close(&one);
    run_close(&two);
}

static int exists(const char *path) {
    return access(path, F_OK) == 0;
}

/* Checkpoints: only rank 0 writes; 2-rank resume is exact; other rank
 * counts are refused. */
static void checkpoints(tlm_comm *comm) {
    char dir[512], mine[600], shared[600], single[600];
    CHECK(temp_dir_create(dir, sizeof dir) == 0);
    snprintf(mine, sizeof mine, "%s/rank.tlm", dir);
    /* Every rank names its own directory: only rank 0's gets a file. */
    run a;
    run_open(&a, comm, BATCH / 2, 0.1f);
    for (int s = 0; s < 3; s++)
        CHECK(tlm_trainer_step(a.trainer, NULL) == TLM_OK);
    CHECK(tlm_trainer_save(a.trainer, mine) == TLM_OK);
    CHECK(exists(mine) == (rank == 0));
    /* Rank 0's path, for everyone (one machine here). */
    memcpy(shared, mine, sizeof shared);
    MPI_Bcast(shared, (int)sizeof shared, MPI_CHAR, 0, MPI_COMM_WORLD);
    for (int s = 0; s < 3; s++)
        CHECK(tlm_trainer_step(a.trainer, NULL) == TLM_OK);
    int64_t n = 0;
    float *expected = weights(&a, &n);

    run b;
    run_open(&b, comm, BATCH / 2, 0.1f);
    CHECK(tlm_trainer_resume(b.trainer, shared) == TLM_OK);
    CHECK(tlm_trainer_step_count(b.trainer) == 3);
    for (int s = 0; s < 3; s++)
        CHECK(tlm_trainer_step(b.trainer, NULL) == TLM_OK);
    float *got = weights(&b, &n);
    CHECK(expected != NULL && got != NULL &&
          memcmp(expected, got, (size_t)n * sizeof *got) == 0);
    free(expected);
    free(got);

    /* A checkpoint of one process is refused by two ranks, on both. */
    run c;
    run_open(&c, NULL, BATCH, 0.1f);
    snprintf(single, sizeof single, "%s/single.tlm", dir);
    CHECK(tlm_trainer_save(c.trainer, single) == TLM_OK);
    CHECK(tlm_trainer_resume(b.trainer, single) == TLM_E_STATE);
    CHECK(strstr(tlm_trainer_last_error(b.trainer), "rank") != NULL);
    run_close(&a);
    run_close(&b);
    run_close(&c);
    MPI_Barrier(MPI_COMM_WORLD);
    temp_dir_remove(dir);
}

/* A NaN weight on rank 1 alone: both ranks skip the step. */
static void nonfinite(tlm_comm *comm) {
    run r;
    run_open(&r, comm, BATCH / 2, 0.0f);
    tlm_tensor *t = NULL;
    CHECK(tlm_model_parameter(r.model, 0, NULL, &t) == TLM_OK);
    float *data = tlm_tensor_data_f32(t);
    const float saved = data[0];
    if (rank == 1)
        data[0] = NAN;
    tlm_step_info info;
    tlm_step_info_init(&info);
    CHECK(tlm_trainer_step(r.trainer, &info) == TLM_E_NONFINITE);
    CHECK(info.skipped == 1);
    CHECK(tlm_trainer_step_count(r.trainer) == 0);
    data[0] = saved;
    CHECK(tlm_trainer_step(r.trainer, &info) == TLM_OK);
    CHECK(tlm_trainer_step_count(r.trainer) == 1);
    run_close(&r);
}

int main(void) {
    tlm_comm_params params;
    tlm_comm_params_init(&params);
    params.bucket_bytes = 1024; /* many buckets, more than are in flight */
    tlm_comm *comm = NULL;
    if (tlm_comm_create_world(&comm, &params) != TLM_OK) {
        fprintf(stderr, "test_mpi_train: %s\n", tlm_last_error());
        return 1;
    }
    rank = tlm_comm_rank(comm);
    const int size = tlm_comm_size(comm);
    if (size != 2) {
        fprintf(stderr, "test_mpi_train: run it with mpirun -np 2 (size %d)\n", size);
        tlm_comm_free(comm);
        return 1;
    }
    int32_t any = -1;
    CHECK(tlm_comm_any(comm, rank == 1, &any) == TLM_OK && any == 1);
    CHECK(tlm_comm_any(comm, 0, &any) == TLM_OK && any == 0);
    equivalence(comm);
    checkpoints(comm);
    nonfinite(comm);
    int totals[2] = {checks, failures};
    MPI_Allreduce(MPI_IN_PLACE, totals, 2, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
        printf("%d passed, %d failed\n", totals[0] - totals[1], totals[1]);
    tlm_comm_free(comm);
    return totals[1] == 0 ? 0 : 1;
}
