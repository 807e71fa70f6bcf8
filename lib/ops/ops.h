/*
 * The operations: each file of lib/ops/ defines its descriptors and public
 * functions on the engine's interface (autodiff/graph.h). docs/autodiff.md
 * walks through adding an operation.
 */
#ifndef TLM_LIB_OPS_H
#define TLM_LIB_OPS_H

#include "autodiff/graph.h"

/* Every operation's public name, for the test that each one has a gradient
 * check. Adding an op: add it here. */
#define TLMI_OP_LIST(X)                                                   \
    X(tlm_add) X(tlm_sub) X(tlm_mul) X(tlm_scale) X(tlm_add_scalar)       \
    X(tlm_matmul) X(tlm_reshape) X(tlm_transpose) X(tlm_split_heads)      \
    X(tlm_merge_heads) X(tlm_concat) X(tlm_slice) X(tlm_sum) X(tlm_mean)  \
    X(tlm_relu) X(tlm_gelu) X(tlm_silu) X(tlm_swiglu) X(tlm_layer_norm)   \
    X(tlm_rms_norm) X(tlm_batch_norm) X(tlm_softmax) X(tlm_log_softmax)   \
    X(tlm_embedding) X(tlm_add_sinusoidal_positions) X(tlm_rope)          \
    X(tlm_attention) X(tlm_multi_head_attention) X(tlm_dropout)         \
    X(tlm_cross_entropy)

#endif
