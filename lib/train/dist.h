/*
 * Data-parallel training: the communicator (tlm_comm) and the collective
 * operations the trainer needs. Two implementations share this interface:
 * dist_mpi.c (built with the Meson feature `mpi`) and dist_none.c (without
 * it, where no communicator can be created, so the trainer never reaches
 * the collectives); dist.c holds what both share (the settings' defaults).
 * Nothing here exposes an MPI type.
 */
#ifndef TLM_LIB_TRAIN_DIST_H
#define TLM_LIB_TRAIN_DIST_H

#include <stdint.h>

#include "autodiff/tensor.h"
#include "base/host.h"
#include "tlm.h"

/* The communicator's rank and size (a communicator that exists). */
int32_t tlmi_dist_rank(const tlm_comm *comm);
int32_t tlmi_dist_size(const tlm_comm *comm);

/* Floats per gradient bucket (tlm_comm_params.bucket_bytes / 4). */
int64_t tlmi_dist_bucket_floats(const tlm_comm *comm);

/* In place: values[i] becomes the sum of values[i] over the ranks. */
int tlmi_dist_sum_f64(tlm_comm *comm, tlmi_host *host, const char *what,
                      double *values, int32_t n);

/* Every rank's gradients of `params` become their mean over the ranks:
 * packed into `buffer` (at least the total gradient size), one
 * nonblocking allreduce per bucket of tlmi_dist_bucket_floats() floats
 * started as soon as the bucket is packed, then unpacked and scaled by
 * 1 / size. `*ms` gets the milliseconds the whole exchange took. */
int tlmi_dist_average_gradients(tlm_comm *comm, tlmi_host *host,
                                tlm_tensor *const *params, int32_t n,
                                float *buffer, double *ms);

/* Rank 0's `n` floats are copied to every rank. */
int tlmi_dist_broadcast_f32(tlm_comm *comm, tlmi_host *host, const char *what,
                            float *data, int64_t n);

/* Rank 0 receives every rank's `n` values, rank-major, in `all` (size * n
 * entries; only read on rank 0). */
int tlmi_dist_gather_u64(tlm_comm *comm, tlmi_host *host, const char *what,
                         const uint64_t *mine, int32_t n, uint64_t *all);

#endif
