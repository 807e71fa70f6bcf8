/*
 * What both communicator builds share (dist_mpi.c with MPI, dist_none.c
 * without): the settings' defaults, so the two cannot drift.
 */
#include <string.h>

#include "base/error.h"
#include "base/params.h"
#include "dist.h"

TLM_API int tlm_comm_params_init(tlm_comm_params *params) {
    TLMI_PARAMS_INIT("tlm_comm_params_init", params);
    params->init_mpi = 1;
    params->finalize_mpi = 1;
    params->bucket_bytes = (int64_t)4 << 20;
    return TLM_OK;
}
