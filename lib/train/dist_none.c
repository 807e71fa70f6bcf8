/*
 * The communicator in a build without MPI: the public functions exist (the
 * ABI is the same in every build) and say that this build cannot do it.
 * No communicator can be created, so the collectives are never reached.
 */

#include "base/error.h"
#include "dist.h"

#define NO_MPI "this tlm was built without MPI (configure with -Dmpi=enabled " \
               "and install an MPI library, e.g. Debian's libopenmpi-dev)"

TLM_API int tlm_comm_available(void) {
    return 0;
}

TLM_API int tlm_comm_create_world(tlm_comm **out, const tlm_comm_params *params) {
    (void)params;
    TLMI_CHECK_NOT_NULL(NULL, "tlm_comm_create_world", out);
    *out = NULL;
    return tlmi_fail_thread(TLM_E_UNSUPPORTED, "tlm_comm_create_world: " NO_MPI);
}

TLM_API void tlm_comm_free(tlm_comm *comm) {
    (void)comm;
}

TLM_API int32_t tlm_comm_rank(const tlm_comm *comm) {
    (void)comm;
    return tlmi_fail_thread(TLM_E_INVALID, "tlm_comm_rank: comm is NULL (%s)", NO_MPI);
}

TLM_API int32_t tlm_comm_size(const tlm_comm *comm) {
    (void)comm;
    return tlmi_fail_thread(TLM_E_INVALID, "tlm_comm_size: comm is NULL (%s)", NO_MPI);
}

TLM_API int tlm_comm_any(tlm_comm *comm, int32_t flag, int32_t *any) {
    (void)comm;
    (void)flag;
    if (any != NULL)
        *any = 0;
    return tlmi_fail_thread(TLM_E_INVALID, "tlm_comm_any: comm is NULL (%s)", NO_MPI);
}

TLM_API const char *tlm_comm_last_error(const tlm_comm *comm) {
    (void)comm;
    return "tlm_comm_last_error: comm is NULL";
}

int32_t tlmi_dist_rank(const tlm_comm *comm) {
    (void)comm;
    return 0;
}

int32_t tlmi_dist_size(const tlm_comm *comm) {
    (void)comm;
    return 1;
}

int64_t tlmi_dist_bucket_floats(const tlm_comm *comm) {
    (void)comm;
    return 1;
}

int tlmi_dist_sum_f64(tlm_comm *comm, tlmi_host *host, const char *what,
                      double *values, int32_t n) {
    (void)comm;
    (void)values;
    (void)n;
    return tlmi_fail(host, TLM_E_UNSUPPORTED, "%s: %s", what, NO_MPI);
}

int tlmi_dist_average_gradients(tlm_comm *comm, tlmi_host *host,
                                tlm_tensor *const *params, int32_t n,
                                float *buffer, double *ms) {
    (void)comm;
    (void)params;
    (void)n;
    (void)buffer;
    *ms = 0;
    return tlmi_fail(host, TLM_E_UNSUPPORTED, "tlm_trainer_step: %s", NO_MPI);
}

int tlmi_dist_broadcast_f32(tlm_comm *comm, tlmi_host *host, const char *what,
                            float *data, int64_t n) {
    (void)comm;
    (void)data;
    (void)n;
    return tlmi_fail(host, TLM_E_UNSUPPORTED, "%s: %s", what, NO_MPI);
}

int tlmi_dist_gather_u64(tlm_comm *comm, tlmi_host *host, const char *what,
                         const uint64_t *mine, int32_t n, uint64_t *all) {
    (void)comm;
    (void)mine;
    (void)n;
    (void)all;
    return tlmi_fail(host, TLM_E_UNSUPPORTED, "%s: %s", what, NO_MPI);
}
