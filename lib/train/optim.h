/*
 * The optimizer handle: its settings, the parameters it updates and their
 * state. Everything lives in one allocation, carved at creation:
 *
 *   [struct tlm_optimizer][tlmi_optim_param x count][moments (floats)]
 *
 * The moments of parameter i are one slice of `state`: AdamW keeps m then v
 * (numel floats each), SGD keeps its momentum buffer (numel floats).
 */
#ifndef TLM_LIB_TRAIN_OPTIM_H
#define TLM_LIB_TRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "base/host.h"
#include "tlm.h"

typedef struct tlmi_optim_param {
    tlm_tensor *tensor;
    int64_t numel;
    int64_t shape[TLM_MAX_DIMS]; /* unused dimensions are 0 */
    int32_t ndim;
    int32_t decay; /* 1: weight decay applies */
    float *m;      /* [numel] AdamW first moment, SGD momentum buffer */
    float *v;      /* [numel] AdamW second moment; NULL for SGD */
} tlmi_optim_param;

struct tlm_optimizer {
    tlmi_host host;              /* the context's hooks; own error text */
    tlm_optimizer_params params; /* resolved; decay_flags is NULL */
    int64_t step;                /* steps taken */
    int32_t count;               /* parameters */
    tlmi_optim_param *entries;   /* [count] */
    float *state;                /* [state_floats] every moment */
    size_t state_floats;
    size_t block_bytes;          /* the whole allocation */
    size_t saved_bytes;          /* tlm_optimizer_state_size() */
};

/* Moment arrays a parameter has: 2 for AdamW, 1 for SGD. */
int tlmi_optim_moments(int32_t kind);

/* Checks the settings `p` as tlm_optimizer_create() does; on failure
 * records "<what>.field ..." with `status` on `host` and returns it. */
int tlmi_optim_check_params(tlmi_host *host, int status, const char *what,
                            const tlm_optimizer_params *p);

/* Bytes tlm_optimizer_save_state() writes for `count` parameters with
 * `state_floats` moments in total, or 0 when it overflows size_t. */
size_t tlmi_optim_saved_bytes(int32_t count, size_t state_floats);

/* An optimizer state that tlmi_optimizer_check_state found valid for
 * `opt`: its settings, its step and the bytes it was read from (which must
 * stay until the commit). */
typedef struct tlmi_optim_loaded {
    tlm_optimizer_params params;
    int64_t step;
    const unsigned char *bytes;
} tlmi_optim_loaded;

/* tlm_optimizer_load_state in two halves, so a caller (the trainer's
 * resume) can check every part of a checkpoint before it changes any:
 * the check reads the whole state (layout, shapes, checksum, settings,
 * finite moments) and changes nothing, its failures recorded on `host`;
 * the commit copies it into `opt` and cannot fail. */
int tlmi_optimizer_check_state(const tlm_optimizer *opt, tlmi_host *host,
                               const void *buffer, size_t size,
                               tlmi_optim_loaded *loaded);
void tlmi_optimizer_commit_state(tlm_optimizer *opt,
                                 const tlmi_optim_loaded *loaded);

/* tlm_optimizer_save_state()'s bytes as three pieces to write one after
 * another, without copying the moments (on a little-endian host, where
 * their bytes in memory are the saved ones; elsewhere TLM_E_UNSUPPORTED,
 * and the caller serialises with tlm_optimizer_save_state()): `head` (the
 * header and the parameter entries, head_size bytes from `host`, which
 * also gets the message of a failure; freed by the caller with
 * tlmi_host_free), the moments in place
 * (moment_bytes), and the 4-byte checksum written into `crc`. A trainer
 * checkpoint of a large model is then written without a second copy of
 * the AdamW state (for GPT-2 124M, 950 MB). */
int tlmi_optimizer_state_pieces(const tlm_optimizer *opt, tlmi_host *host,
                                unsigned char **head, size_t *head_size,
                                const float **moments, size_t *moment_bytes,
                                unsigned char crc[4]);

/* tlm_optimizer_step(); grads_finite 1 skips its scan for non-finite
 * gradients, for a caller that has just measured their norm over the same
 * parameters and found it finite (the sum of squares of floats in double
 * is finite exactly when every value is). The update uses every gradient
 * times grad_scale (rounded first: the same result as scaling the
 * gradients in place, without a pass over them); 1 for none. */
int tlmi_optimizer_step(tlm_optimizer *opt, float lr, int grads_finite,
                        float grad_scale);

/* The global gradient norm of tlm_clip_grad_norm(): the square root of the
 * sum of squares in double, in a fixed order (eight partial sums over the
 * elements, see optim.c), so the same bits on every run. */
double tlmi_grad_norm(tlm_tensor *const *params, int32_t count);

/* Clipping's factor: max_norm / (norm + 1e-6) when that is below 1, else 1,
 * given the (finite) norm tlmi_grad_norm() measured. */
float tlmi_clip_factor(float max_norm, double norm);

/* The scaling half of tlm_clip_grad_norm(): multiplies every gradient by
 * tlmi_clip_factor(). */
void tlmi_scale_grads_to_norm(tlm_tensor *const *params, int32_t count,
                              float max_norm, double norm);

#endif
