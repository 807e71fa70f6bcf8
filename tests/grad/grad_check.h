/*
 * Gradient checks: each case builds one operation on random inputs; the
 * harness compares the gradient tlm_backward() computes with central
 * finite differences of the same forward pass.
 *
 * The loss is L = sum(out * R) for a fixed random R, so every output
 * element carries a different weight. Finite differences perturb one input
 * element by +-h (h = GRAD_STEP * max(1, |x|)), re-run the recorded graph
 * with tlm_context_forward() (the context's generator re-seeded each time,
 * so dropout draws the same mask) and evaluate L in double precision from
 * the float32 outputs. Central differences at h and h/2 are combined by
 * Richardson extrapolation, (4 D(h/2) - D(h)) / 3, whose error is O(h^4):
 * h can then be large enough that float32 rounding in the forward pass
 * stays far below the bound. An element passes when
 *
 *     |analytic - numeric| <= tolerance * max(|analytic|, |numeric|, floor)
 *
 * where floor = 0.1 * the RMS of the checked analytic gradient: entries far
 * below the tensor's typical gradient are held to an absolute, not a
 * relative, bound (their finite difference is mostly rounding noise). The
 * default tolerance is GRAD_TOLERANCE.
 */
#ifndef TLM_TESTS_GRAD_CHECK_H
#define TLM_TESTS_GRAD_CHECK_H

#include <stddef.h>
#include <stdint.h>

#include "tlm.h"

#define GRAD_STEP 2e-2
#define GRAD_TOLERANCE 1e-3
/* Elements checked per input at most (chosen at random beyond that). */
#define GRAD_MAX_CHECKS 48
#define GRAD_MAX_INPUTS 6

enum grad_init {
    INIT_NORMAL,    /* standard normal */
    INIT_UNIFORM,   /* uniform in [lo, hi] */
    INIT_AWAY,      /* normal, but |x| >= 0.1: clear of kinks at 0 */
    INIT_IDS,       /* integers uniform in [lo, hi] */
    INIT_MASK       /* 1 with probability 0.7, else 0 (at least one 1 per row) */
};

typedef struct grad_input {
    int32_t dtype;
    int32_t ndim;
    int64_t shape[TLM_MAX_DIMS];
    int32_t init;
    float lo, hi;
    int32_t check; /* 1: requires grad, and its gradient is checked */
} grad_input;

/* Builds the operation under test from in[] (leaf tensors). */
typedef int (*grad_build_fn)(tlm_tensor **out, tlm_tensor **in);

typedef struct grad_case {
    const char *op;    /* the public function tested, e.g. "tlm_add" */
    const char *label; /* what this case covers, e.g. "row vector, 7x33" */
    int32_t n_inputs;
    grad_input inputs[GRAD_MAX_INPUTS];
    grad_build_fn build;
    double tolerance;  /* 0: GRAD_TOLERANCE */
    int32_t eval_mode; /* 1: run with tlm_context_set_training(ctx, 0) */
} grad_case;

/* Shorthands for case tables. */
#define F32(...) {TLM_DTYPE_F32, GRAD_NDIM(__VA_ARGS__), {__VA_ARGS__}, INIT_NORMAL, 0, 0, 1}
#define F32_CONST(...) {TLM_DTYPE_F32, GRAD_NDIM(__VA_ARGS__), {__VA_ARGS__}, INIT_NORMAL, 0, 0, 0}
#define F32_AWAY(...) {TLM_DTYPE_F32, GRAD_NDIM(__VA_ARGS__), {__VA_ARGS__}, INIT_AWAY, 0, 0, 1}
#define F32_RANGE(lo, hi, ...) {TLM_DTYPE_F32, GRAD_NDIM(__VA_ARGS__), {__VA_ARGS__}, INIT_UNIFORM, lo, hi, 1}
#define IDS(lo, hi, ...) {TLM_DTYPE_I32, GRAD_NDIM(__VA_ARGS__), {__VA_ARGS__}, INIT_IDS, lo, hi, 0}
#define MASK_F32(...) {TLM_DTYPE_F32, GRAD_NDIM(__VA_ARGS__), {__VA_ARGS__}, INIT_MASK, 0, 0, 0}
#define GRAD_NDIM(...) ((int32_t)(sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)))

/* Every group of cases: defined in cases_*.c. */
typedef struct grad_case_group {
    const char *name;
    const grad_case *cases;
    size_t count;
} grad_case_group;

extern const grad_case_group grad_cases_core;       /* elementwise, matmul, reduce */
extern const grad_case_group grad_cases_shape;      /* reshape, transpose, heads, concat, slice */
extern const grad_case_group grad_cases_activation; /* relu, gelu, silu, swiglu, softmax */
extern const grad_case_group grad_cases_norm;       /* layer, rms, batch norm */
extern const grad_case_group grad_cases_sequence;   /* embedding, positions, dropout, loss */
extern const grad_case_group grad_cases_attention;  /* fused attention */

typedef struct grad_result {
    double max_error;     /* worst scaled error over checked elements */
    int64_t checked;      /* elements compared */
    const char *result_op; /* the op name of the tensor build returned */
    char message[512];    /* why it failed, if it did */
} grad_result;

/* Runs one case; returns 0 when every checked element passes. */
int grad_check_run(const grad_case *test_case, uint64_t seed,
                   grad_result *result);

#endif
