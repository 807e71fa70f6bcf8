/*
 * The autodiff engine's interface to the operations built on it: the
 * descriptor of an operation (its forward and backward passes), the
 * checks of its inputs, the creation of its result node on the tape, where
 * a backward pass puts each input's share of the gradient, and re-running
 * or dropping part of the tape (the trainer's graph). graph.c implements
 * it; lib/ops/ uses it (docs/autodiff.md walks through adding an
 * operation).
 */
#ifndef TLM_LIB_AUTODIFF_GRAPH_H
#define TLM_LIB_AUTODIFF_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "context.h"
#include "tensor.h"

struct tlmi_op {
    const char *name; /* the public function, e.g. "tlm_add" */
    /* Computes out->data from out->src[], out->iparam/fparam and fills
     * out->saved. Runs at creation and on every tlm_context_forward().
     * Returns TLM_OK or a status after tlmi_fail() on out->ctx->host. */
    int (*forward)(tlm_tensor *out);
    /* Given out->grad, adds each input's share to the gradient of src[i]
     * where tlmi_wants_grad(src[i]), reaching it only through
     * tlmi_grad_target or tlmi_grad_accumulator (inputs used twice, or by
     * several nodes, accumulate). */
    void (*backward)(tlm_tensor *out);
};

/* Checks an input of operation `op` (for messages): a live tensor of
 * `dtype` (or any dtype if dtype < 0) in the same context as *ctx; sets
 * *ctx from the first input it sees. Messages read "tlm_add: a ...". */
int tlmi_op_input(const char *op, const char *arg, const tlm_tensor *tensor,
                  int32_t dtype, tlm_context **ctx);

/* One input of an operation for tlmi_op_begin: its name in messages, the
 * tensor, the dtype it must have (-1: any), and whether NULL means absent
 * (an optional input) rather than an error. */
typedef struct tlmi_op_arg {
    const char *name;
    const tlm_tensor *tensor;
    int32_t dtype;
    int optional;
} tlmi_op_arg;

/* An input named as written in the call: TLMI_OP_INPUT(a, TLM_DTYPE_F32). */
#define TLMI_OP_INPUT(tensor, dtype) {#tensor, (tensor), (dtype), 0}
#define TLMI_OP_OPTIONAL(tensor, dtype) {#tensor, (tensor), (dtype), 1}

/* The prologue of every public operation: fails with "<op>: out is NULL"
 * when `out` is NULL, sets *out to NULL, then checks each input in order
 * with tlmi_op_input (skipping absent optional ones) and sets *ctx to
 * their context. Returns TLM_OK or the first failure's status. */
int tlmi_op_begin(tlm_tensor **out, const char *op, const tlmi_op_arg *args,
                  int32_t n_args, tlm_context **ctx);

/* tlmi_op_begin with the inputs listed in place, returning from the
 * calling function on failure:
 * TLMI_OP_PROLOGUE(out, name, &ctx, TLMI_OP_INPUT(a, TLM_DTYPE_F32)); */
#define TLMI_OP_PROLOGUE(out, op, ctx, ...)                                 \
    do {                                                                    \
        const tlmi_op_arg tlmi_op_args_[] = {__VA_ARGS__};                  \
        const int32_t tlmi_op_n_args_ =                                     \
            (int32_t)(sizeof tlmi_op_args_ / sizeof tlmi_op_args_[0]);      \
        TLMI_TRY(tlmi_op_begin((out), (op), tlmi_op_args_, tlmi_op_n_args_, \
                               (ctx)));                                     \
    } while (0)

/* Records an error about operation `op` on the context (or the thread if
 * ctx is NULL); returns status. */
int tlmi_op_fail(tlm_context *ctx, int status, const char *format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

/* Starts a result of `op`: a struct from the pool, its data (and its
 * gradient when an input requires one and recording is on) from the
 * arena, the inputs recorded. `srcs` may contain NULL for absent optional
 * inputs. On failure *out is NULL and nothing is kept. */
int tlmi_result_begin(tlm_tensor **out, tlm_context *ctx, const tlmi_op *op,
                      int32_t dtype, int32_t ndim, const int64_t *shape,
                      tlm_tensor *const *srcs, int32_t n_src);

/* The result shares `base`'s data instead of owning a copy (a view). Call
 * between begin and finish. */
void tlmi_result_share_data(tlm_tensor *out, tlm_tensor *base);

/* Memory from the arena that lives as long as the result (saved values,
 * backward scratch). NULL on allocation failure. */
void *tlmi_result_alloc(tlm_tensor *out, size_t bytes);

/* Runs the forward pass and puts the result on the tape. On failure the
 * result is discarded and *out set to NULL. Always pass the status of the
 * steps before: finish cleans up after a failed begin/alloc too. */
int tlmi_result_finish(tlm_tensor **out, tlm_tensor *result, int status);

/* True when tensor t has a gradient to accumulate into. */
static inline int tlmi_wants_grad(const tlm_tensor *t) {
    return t != NULL && t->requires_grad && (t->grad != NULL || t->grad_pooled);
}

/* Where a backward pass puts input t's share of the gradient (t wants
 * one). Gradients of results are not cleared before tlm_backward: the
 * first contribution of a pass must write every element, the others add.
 * *accumulate says which (always 1 for a leaf, whose gradient adds up over
 * passes until it is zeroed). Call once per contribution, right before
 * making it: the call records that the gradient now holds one. */
float *tlmi_grad_target(tlm_tensor *t, int *accumulate);

/* tlmi_grad_target for a kernel that can only add: clears the gradient
 * first when this is its first contribution. */
float *tlmi_grad_accumulator(tlm_tensor *t);

/* Makes sure a result's `data` holds its values: a recomputed result
 * (tensor.h) whose shared buffer holds another result's runs its forward
 * pass again (its inputs are always kept results, never recomputed ones,
 * so this does not recurse). TLM_OK or the forward pass's failure. */
int tlmi_result_values(tlm_tensor *t);

/* Gives a pooled result's gradient back to the context's pool (nothing
 * for other tensors). */
void tlmi_graph_give_grad(tlm_tensor *t);

/* Re-runs the tape's nodes from `first` to `last` only (one graph among
 * others on the tape). */
int tlmi_graph_forward_range(tlm_context *ctx, tlm_tensor *first,
                             tlm_tensor *last);

/* Drops `first` and every node after it from the tape, and gives back the
 * arena memory they took (the tape must end with the dropped graph). */
void tlmi_graph_truncate(tlm_context *ctx, tlm_tensor *first);

#endif
