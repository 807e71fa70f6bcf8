/*
 * The tensor handle: shape, element type, values and gradient, and for a
 * result, the node of the tape that computed it (its operation, inputs,
 * parameters and what the forward pass saved for the backward pass).
 */
#ifndef TLM_LIB_AUTODIFF_TENSOR_H
#define TLM_LIB_AUTODIFF_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/arena.h"
#include "tlm.h"

/* Most inputs one node can have (tlm_concat takes up to this many). */
#define TLMI_MAX_SRC 16
/* Integer and float parameters one node can keep. */
#define TLMI_MAX_PARAMS 8

#define TLMI_TENSOR_MAGIC 0x746c6d54u /* "tlmT" */

typedef struct tlmi_op tlmi_op;

struct tlm_tensor {
    uint32_t magic;      /* TLMI_TENSOR_MAGIC while the handle is valid */
    uint32_t generation; /* results: the context's generation at creation */
    tlm_context *ctx;
    int32_t dtype;
    int32_t ndim;
    int64_t shape[TLM_MAX_DIMS];
    int64_t numel;
    void *data;  /* numel elements; a view points into its base's data */
    float *grad; /* numel floats, or NULL */
    int32_t is_leaf;
    int32_t requires_grad;
    size_t data_bytes; /* leaves: size of `data` as allocated; 0 when the
                          data is borrowed (not owned, not freed) */
    int32_t read_only; /* borrowed read-only memory (a mapped file) */

    /* Results only: the node that computed this tensor. */
    const tlmi_op *op;
    int32_t n_src;
    tlm_tensor *src[TLMI_MAX_SRC];
    int64_t iparam[TLMI_MAX_PARAMS];
    float fparam[TLMI_MAX_PARAMS];
    void *saved; /* filled by forward, read by backward (op-defined) */
    int32_t recorded;     /* on the tape for backward */
    tlmi_arena_mark begin_mark; /* arena before this result, for failures */
    uint32_t needed_mark; /* backward: reachable from the loss */
    int32_t grad_written; /* backward: `grad` holds a contribution of this
                             pass (results' gradients are not cleared up
                             front; see tlmi_grad_target in autodiff/graph.h) */
    int32_t grad_pooled; /* results: the gradient is taken from the
                            context's pool (autodiff/grad_pool.h) when
                            backward first needs it and given back once this
                            node's backward has run; `grad` is NULL between
                            backward passes */
    /* Results whose values are recomputed rather than kept (a norm's or an
     * activation's output in a model's graph): `data` is a buffer shared
     * with the results of the same kind, owned by the first of them
     * (recompute_owner, itself for the first), whose recompute_holder says
     * which result's values it holds now. tlmi_result_values recomputes
     * them before a forward or backward pass reads them. */
    tlm_tensor *recompute_owner;
    const tlm_tensor *recompute_holder;

    /* Results: tape order. Leaves: the context's leaf list. Free structs:
     * the free list (next only). */
    tlm_tensor *next;
    tlm_tensor *prev;
};

/* Size in bytes of one element of `dtype` (TLM_DTYPE_Q8: of its int8
 * value; the group scales come on top). */
size_t tlmi_dtype_size(int32_t dtype);

/* "f32", "i32", "bf16", "q8" for messages. */
const char *tlmi_dtype_name(int32_t dtype);

/* TLM_DTYPE_BF16 and TLM_DTYPE_Q8: a quantized model's matrices, 2-D
 * [rows, cols] (numel = rows * cols), their data in the layout of
 * lib/kernels/weights.h. No gradient, no operation takes them. */
int tlmi_dtype_is_quantized(int32_t dtype);

/* The enum tlm_weight_format of a dtype (TLM_WEIGHTS_F32 for the others)
 * and back (TLM_DTYPE_F32 for TLM_WEIGHTS_F32). */
int32_t tlmi_weight_format_of_dtype(int32_t dtype);
int32_t tlmi_dtype_of_weight_format(int32_t format);

/* Bytes of the tensor's data: numel elements, or a quantized matrix's
 * tlmi_weights_bytes. */
size_t tlmi_tensor_data_bytes(const tlm_tensor *tensor);

/* A quantized matrix as the weights kernels take it. */
struct tlmi_weights tlmi_tensor_weights(const tlm_tensor *tensor);

/* Fills what every tensor struct starts with: its magic, context, dtype
 * and shape, and numel (already checked by tlmi_shape_numel). */
void tlmi_tensor_init_header(tlm_tensor *tensor, tlm_context *ctx,
                             int32_t dtype, int32_t ndim,
                             const int64_t *shape, int64_t numel);

/* Checks `tensor` is a live handle; on failure records "<what>: ..." on
 * the tensor's context (when it can be trusted) or the thread. */
int tlmi_tensor_check(const tlm_tensor *tensor, const char *what);

/* Writes "[2, 3, 4]" into buf. */
const char *tlmi_shape_string(const tlm_tensor *tensor, char *buf,
                              size_t size);

/* The same for a shape that is not a tensor's (ndim dims at `shape`). */
const char *tlmi_dims_string(int32_t ndim, const int64_t *shape, char *buf,
                             size_t size);

/* Writes the multi-index of flat element `at` of `tensor`, e.g. "[1][4]",
 * for messages that point at one element. */
const char *tlmi_index_string(const tlm_tensor *tensor, int64_t at, char *buf,
                              size_t size);

/* A leaf over `data` that it does not own and must not write: the
 * parameters of a memory-mapped model. No gradient can be requested. */
int tlmi_tensor_create_borrowed(tlm_tensor **out, tlm_context *ctx,
                                int32_t dtype, int32_t ndim,
                                const int64_t *shape, const void *data);

/* A writable leaf over `data` that it does not own: a model's parameters,
 * views into the one block the model allocates for all of them. The owner
 * frees `data` after the tensor. Its gradient, when requested, is its own. */
int tlmi_tensor_create_view(tlm_tensor **out, tlm_context *ctx, int32_t dtype,
                            int32_t ndim, const int64_t *shape, void *data);

/* Element count of a shape, or a negative status with a message naming
 * `what` when the shape is invalid or its byte size overflows. */
int tlmi_shape_numel(tlmi_host *host, const char *what, int32_t dtype,
                     int32_t ndim, const int64_t *shape, int64_t *numel);

#endif
