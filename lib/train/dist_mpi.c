/*
 * The communicator over MPI (built with the Meson feature `mpi`): a
 * duplicate of MPI_COMM_WORLD whose errors return instead of aborting, and
 * the collectives of data-parallel training. Only the thread that created
 * the communicator calls MPI (MPI_THREAD_SERIALIZED is asked for, which
 * also allows another thread when calls never overlap); the compute
 * thread pool never does.
 */
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include <mpi.h>

#include "base/error.h"
#include "base/params.h"
#include "dist.h"

/* In-flight bucket allreduces at most; the oldest is waited for first. */
#define MAX_IN_FLIGHT 16

struct tlm_comm {
    tlmi_host host;      /* default hooks; the communicator's error text */
    MPI_Comm comm;       /* duplicate of MPI_COMM_WORLD */
    int rank, size;
    int owns_mpi;        /* this communicator called MPI_Init_thread */
    int finalize_mpi;
    int64_t bucket_floats;
};

TLM_API int tlm_comm_available(void) {
    return 1;
}

/* The text of an MPI error code, for messages. */
static const char *mpi_text(int code, char *text, size_t size) {
    int length = 0;
    char buffer[MPI_MAX_ERROR_STRING];
    if (MPI_Error_string(code, buffer, &length) != MPI_SUCCESS || length <= 0)
        snprintf(text, size, "MPI error %d", code);
    else
        snprintf(text, size, "%.*s", length, buffer);
    return text;
}

static int mpi_fail(tlmi_host *host, const char *what, const char *call, int code) {
    char text[256];
    return tlmi_fail(host, TLM_E_IO, "%s: %s failed: %s", what, call,
                     mpi_text(code, text, sizeof text));
}

TLM_API int tlm_comm_create_world(tlm_comm **out, const tlm_comm_params *given) {
    const char *what = "tlm_comm_create_world";
    TLMI_CHECK_NOT_NULL(NULL, what, out);
    *out = NULL;
    tlmi_host host;
    tlmi_host_init_default(&host);
    tlm_comm_params p;
    tlm_comm_params_init(&p);
    int status = tlmi_params_merge(&host, "tlm_comm_create_world: params", &p,
                                   sizeof p, given);
    if (status != TLM_OK)
        return status;
    if (p.init_mpi != 0 && p.init_mpi != 1)
        return tlmi_fail(&host, TLM_E_INVALID, "%s: params.init_mpi %d is not 0 or 1",
                         what, (int)p.init_mpi);
    if (p.finalize_mpi != 0 && p.finalize_mpi != 1)
        return tlmi_fail(&host, TLM_E_INVALID, "%s: params.finalize_mpi %d is not 0 "
                         "or 1", what, (int)p.finalize_mpi);
    if (p.bucket_bytes < 4 || p.bucket_bytes > (int64_t)INT_MAX - 3)
        return tlmi_fail(&host, TLM_E_INVALID, "%s: params.bucket_bytes %lld is "
                         "outside 4..2147483644", what, (long long)p.bucket_bytes);
    int initialized = 0, finalized = 0;
    MPI_Finalized(&finalized);
    if (finalized)
        return tlmi_fail(&host, TLM_E_STATE, "%s: MPI was already finalised in this "
                         "process and cannot be initialised again", what);
    MPI_Initialized(&initialized);
    int owns = 0;
    if (!initialized) {
        if (!p.init_mpi)
            return tlmi_fail(&host, TLM_E_STATE, "%s: MPI is not initialised and "
                             "params.init_mpi is 0", what);
        int provided = 0;
        int code = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided);
        if (code != MPI_SUCCESS)
            return mpi_fail(&host, what, "MPI_Init_thread", code);
        owns = 1;
    }
    tlm_comm *c = TLMI_HANDLE_ALLOC(&host, tlm_comm);
    if (c == NULL) {
        if (owns)
            MPI_Finalize();
        return tlmi_fail(&host, TLM_E_NOMEM, "%s: out of memory", what);
    }
    c->owns_mpi = owns;
    c->finalize_mpi = p.finalize_mpi;
    c->bucket_floats = p.bucket_bytes / 4;
    int code = MPI_Comm_dup(MPI_COMM_WORLD, &c->comm);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_set_errhandler(c->comm, MPI_ERRORS_RETURN);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_rank(c->comm, &c->rank);
    if (code == MPI_SUCCESS)
        code = MPI_Comm_size(c->comm, &c->size);
    if (code != MPI_SUCCESS) {
        status = mpi_fail(&host, what, "duplicating MPI_COMM_WORLD", code);
        c->comm = MPI_COMM_NULL;
        tlm_comm_free(c);
        return status;
    }
    *out = c;
    return TLM_OK;
}

TLM_API void tlm_comm_free(tlm_comm *c) {
    if (c == NULL)
        return;
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized && c->comm != MPI_COMM_NULL)
        MPI_Comm_free(&c->comm);
    const int finalize = !finalized && c->owns_mpi && c->finalize_mpi;
    tlmi_host host = c->host;
    tlmi_host_free(&host, c, sizeof *c);
    if (finalize)
        MPI_Finalize();
}

TLM_API int32_t tlm_comm_rank(const tlm_comm *c) {
    TLMI_CHECK(NULL, c != NULL, TLM_E_INVALID, "tlm_comm_rank: comm is NULL");
    return c->rank;
}

TLM_API int32_t tlm_comm_size(const tlm_comm *c) {
    TLMI_CHECK(NULL, c != NULL, TLM_E_INVALID, "tlm_comm_size: comm is NULL");
    return c->size;
}

TLM_API int tlm_comm_any(tlm_comm *c, int32_t flag, int32_t *any) {
    TLMI_CHECK(NULL, c != NULL, TLM_E_INVALID,
               "tlm_comm_any: comm is NULL");
    TLMI_CHECK_NOT_NULL(NULL, "tlm_comm_any", any);
    int mine = flag != 0, result = 0;
    int code = MPI_Allreduce(&mine, &result, 1, MPI_INT, MPI_MAX, c->comm);
    if (code != MPI_SUCCESS)
        return mpi_fail(&c->host, "tlm_comm_any", "MPI_Allreduce", code);
    *any = result;
    return TLM_OK;
}

TLM_API const char *tlm_comm_last_error(const tlm_comm *c) {
    if (c == NULL)
        return "tlm_comm_last_error: comm is NULL";
    return c->host.last_error;
}

int32_t tlmi_dist_rank(const tlm_comm *c) {
    return c->rank;
}

int32_t tlmi_dist_size(const tlm_comm *c) {
    return c->size;
}

int64_t tlmi_dist_bucket_floats(const tlm_comm *c) {
    return c->bucket_floats;
}

int tlmi_dist_sum_f64(tlm_comm *c, tlmi_host *host, const char *what,
                      double *values, int32_t n) {
    int code = MPI_Allreduce(MPI_IN_PLACE, values, n, MPI_DOUBLE, MPI_SUM, c->comm);
    return code == MPI_SUCCESS ? TLM_OK : mpi_fail(host, what, "MPI_Allreduce", code);
}

/* Copies between the parameters' gradients and the flat buffer, for the
 * floats [begin, end) of the concatenation of all gradients; `scale` is
 * applied when unpacking. */
static void copy_range(tlm_tensor *const *params, int32_t n, float *buffer,
                       int64_t begin, int64_t end, int unpack, float scale) {
    int64_t offset = 0;
    for (int32_t i = 0; i < n && offset < end; i++) {
        const int64_t numel = params[i]->numel;
        const int64_t lo = begin > offset ? begin : offset;
        const int64_t hi = end < offset + numel ? end : offset + numel;
        for (int64_t j = lo; j < hi; j++) {
            if (unpack)
                params[i]->grad[j - offset] = buffer[j] * scale;
            else
                buffer[j] = params[i]->grad[j - offset];
        }
        offset += numel;
    }
}

int tlmi_dist_average_gradients(tlm_comm *c, tlmi_host *host,
                                tlm_tensor *const *params, int32_t n,
                                float *buffer, double *ms) {
    const double start = MPI_Wtime();
    int64_t total = 0;
    for (int32_t i = 0; i < n; i++)
        total += params[i]->numel;
    const int64_t bucket = c->bucket_floats;
    /* Buckets from the end: the last parameters' gradients (the output
     * layers) are the first that backward completes. */
    MPI_Request requests[MAX_IN_FLIGHT];
    int64_t bounds[MAX_IN_FLIGHT][2];
    int in_flight = 0, oldest = 0, code = MPI_SUCCESS;
    for (int64_t end = total; end > 0 && code == MPI_SUCCESS;) {
        const int64_t begin = end - bucket > 0 ? end - bucket : 0;
        if (in_flight == MAX_IN_FLIGHT) {
            code = MPI_Wait(&requests[oldest], MPI_STATUS_IGNORE);
            copy_range(params, n, buffer, bounds[oldest][0], bounds[oldest][1], 1,
                       1.0f / (float)c->size);
            oldest = (oldest + 1) % MAX_IN_FLIGHT;
            in_flight--;
            if (code != MPI_SUCCESS)
                break;
        }
        copy_range(params, n, buffer, begin, end, 0, 1.0f);
        const int slot = (oldest + in_flight) % MAX_IN_FLIGHT;
        code = MPI_Iallreduce(MPI_IN_PLACE, buffer + begin, (int)(end - begin),
                              MPI_FLOAT, MPI_SUM, c->comm, &requests[slot]);
        if (code != MPI_SUCCESS)
            break;
        bounds[slot][0] = begin;
        bounds[slot][1] = end;
        in_flight++;
        /* Let the library progress the earlier buckets while packing. */
        int done = 0;
        MPI_Test(&requests[oldest], &done, MPI_STATUS_IGNORE);
        if (done) {
            requests[oldest] = MPI_REQUEST_NULL;
        }
        end = begin;
    }
    while (in_flight > 0) {
        int wait_code = MPI_Wait(&requests[oldest], MPI_STATUS_IGNORE);
        if (code == MPI_SUCCESS)
            code = wait_code;
        copy_range(params, n, buffer, bounds[oldest][0], bounds[oldest][1], 1,
                   1.0f / (float)c->size);
        oldest = (oldest + 1) % MAX_IN_FLIGHT;
        in_flight--;
    }
    *ms = (MPI_Wtime() - start) * 1e3;
    return code == MPI_SUCCESS ? TLM_OK
                               : mpi_fail(host, "tlm_trainer_step: averaging the "
                                          "gradients", "MPI_Iallreduce", code);
}

int tlmi_dist_broadcast_f32(tlm_comm *c, tlmi_host *host, const char *what,
                            float *data, int64_t n) {
    for (int64_t done = 0; done < n;) {
        const int64_t chunk = n - done < INT_MAX ? n - done : INT_MAX;
        int code = MPI_Bcast(data + done, (int)chunk, MPI_FLOAT, 0, c->comm);
        if (code != MPI_SUCCESS)
            return mpi_fail(host, what, "MPI_Bcast", code);
        done += chunk;
    }
    return TLM_OK;
}

int tlmi_dist_gather_u64(tlm_comm *c, tlmi_host *host, const char *what,
                         const uint64_t *mine, int32_t n, uint64_t *all) {
    int code = MPI_Gather(mine, n, MPI_UINT64_T, all, n, MPI_UINT64_T, 0, c->comm);
    return code == MPI_SUCCESS ? TLM_OK : mpi_fail(host, what, "MPI_Gather", code);
}
