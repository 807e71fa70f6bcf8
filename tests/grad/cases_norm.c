/* Gradient cases: layer norm, RMS norm and batch norm (training and
 * evaluation mode), with every combination of the optional gain and bias,
 * and an input used twice (as a and as gain) to check accumulation. */
#include "grad_check.h"

#define EPS 1e-5f

static int build_ln(tlm_tensor **out, tlm_tensor **in) {
    return tlm_layer_norm(out, in[0], NULL, NULL, EPS);
}
static int build_ln_gain_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_layer_norm(out, in[0], in[1], in[2], EPS);
}
static int build_ln_gain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_layer_norm(out, in[0], in[1], NULL, EPS);
}
static int build_ln_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_layer_norm(out, in[0], NULL, in[1], EPS);
}
/* x normalized and scaled by itself: x reaches the result twice. */
static int build_ln_self_gain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_layer_norm(out, in[0], in[0], in[1], EPS);
}
static int build_ln_big_eps(tlm_tensor **out, tlm_tensor **in) {
    return tlm_layer_norm(out, in[0], in[1], in[2], 0.5f);
}

static int build_rms(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rms_norm(out, in[0], NULL, EPS);
}
static int build_rms_gain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rms_norm(out, in[0], in[1], EPS);
}
static int build_rms_self_gain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rms_norm(out, in[0], in[0], EPS);
}
/* With C = 1 and a small eps, a / sqrt(a^2 + eps) is flat (its slope is
 * eps / (a^2 + eps)^1.5) and the finite difference only sees rounding: a
 * large eps gives the row-of-one case a gradient worth checking. */
static int build_rms_gain_big_eps(tlm_tensor **out, tlm_tensor **in) {
    return tlm_rms_norm(out, in[0], in[1], 0.5f);
}

static int build_bn(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], NULL, NULL, NULL, NULL, 0.1f, EPS);
}
static int build_bn_gain_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], in[1], in[2], NULL, NULL, 0.1f, EPS);
}
static int build_bn_gain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], in[1], NULL, NULL, NULL, 0.1f, EPS);
}
static int build_bn_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], NULL, in[1], NULL, NULL, 0.1f, EPS);
}
/* Training mode with running statistics: they are updated at every
 * forward (each finite difference too) but never change the result. */
static int build_bn_running(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], in[1], in[2], in[3], in[4], 0.1f, EPS);
}
static int build_bn_running_no_affine(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], NULL, NULL, in[1], in[2], 1.0f, EPS);
}
static int build_bn_running_gain(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], in[1], NULL, in[2], in[3], 0.0f, EPS);
}
static int build_bn_running_bias(tlm_tensor **out, tlm_tensor **in) {
    return tlm_batch_norm(out, in[0], NULL, in[1], in[2], in[3], 0.5f, EPS);
}

/* A running variance: positive (uniform in [0.5, 2]), not checked. */
#define RUNNING_VAR(c) {TLM_DTYPE_F32, 1, {c}, INIT_UNIFORM, 0.5f, 2.0f, 0}

static const grad_case cases[] = {
    /* Layer norm. With C = 1 the result is the bias whatever a is, so the
     * gradients of a and gain are exactly 0 (both sides). */
    {"tlm_layer_norm", "C=1 3x1, gain+bias", 3, {F32(3, 1), F32(1), F32(1)}, build_ln_gain_bias, 0, 0},
    {"tlm_layer_norm", "7, no gain/bias", 1, {F32(7)}, build_ln, 0, 0},
    {"tlm_layer_norm", "3x13, gain+bias", 3, {F32(3, 13), F32(13), F32(13)}, build_ln_gain_bias, 0, 0},
    {"tlm_layer_norm", "2x3x33, gain", 2, {F32(2, 3, 33), F32(33)}, build_ln_gain, 0, 0},
    {"tlm_layer_norm", "5x7, bias", 2, {F32(5, 7), F32(7)}, build_ln_bias, 0, 0},
    {"tlm_layer_norm", "2x2x3x9, gain+bias, eps 0.5", 3, {F32(2, 2, 3, 9), F32(9), F32(9)}, build_ln_big_eps, 0, 0},
    {"tlm_layer_norm", "fan-out a as gain, 13", 2, {F32(13), F32(13)}, build_ln_self_gain, 0, 0},

    /* RMS norm. */
    {"tlm_rms_norm", "C=1 3x1, gain, eps 0.5", 2, {F32(3, 1), F32(1)}, build_rms_gain_big_eps, 0, 0},
    {"tlm_rms_norm", "13, no gain", 1, {F32(13)}, build_rms, 0, 0},
    {"tlm_rms_norm", "3x7, gain", 2, {F32(3, 7), F32(7)}, build_rms_gain, 0, 0},
    {"tlm_rms_norm", "2x3x33, gain", 2, {F32(2, 3, 33), F32(33)}, build_rms_gain, 0, 0},
    {"tlm_rms_norm", "5x1x2x9, no gain", 1, {F32(5, 1, 2, 9)}, build_rms, 0, 0},
    {"tlm_rms_norm", "fan-out a as gain, 7", 1, {F32(7)}, build_rms_self_gain, 0, 0},

    /* Batch norm, training mode: batch statistics. */
    {"tlm_batch_norm", "train C=1 5x1, no gain/bias", 1, {F32(5, 1)}, build_bn, 0, 0},
    {"tlm_batch_norm", "train 7x3, gain+bias", 3, {F32(7, 3), F32(3), F32(3)}, build_bn_gain_bias, 0, 0},
    {"tlm_batch_norm", "train 13x7, gain", 2, {F32(13, 7), F32(7)}, build_bn_gain, 0, 0},
    {"tlm_batch_norm", "train 3x3x9, bias", 2, {F32(3, 3, 9), F32(9)}, build_bn_bias, 0, 0},
    {"tlm_batch_norm", "train 2x5x13, gain+bias, running", 5,
     {F32(2, 5, 13), F32(13), F32(13), F32_CONST(13), RUNNING_VAR(13)}, build_bn_running, 0, 0},
    {"tlm_batch_norm", "train 33x1, running, momentum 1", 3,
     {F32(33, 1), F32_CONST(1), RUNNING_VAR(1)}, build_bn_running_no_affine, 0, 0},

    /* Batch norm, evaluation mode: running statistics, an affine map. */
    {"tlm_batch_norm", "eval C=1 3x1, running", 3,
     {F32(3, 1), F32_CONST(1), RUNNING_VAR(1)}, build_bn_running_no_affine, 0, 1},
    {"tlm_batch_norm", "eval N=1 1x13, gain+bias", 5,
     {F32(1, 13), F32(13), F32(13), F32_CONST(13), RUNNING_VAR(13)}, build_bn_running, 0, 1},
    {"tlm_batch_norm", "eval 4x7, gain+bias", 5,
     {F32(4, 7), F32(7), F32(7), F32_CONST(7), RUNNING_VAR(7)}, build_bn_running, 0, 1},
    {"tlm_batch_norm", "eval 2x3x33, gain", 4,
     {F32(2, 3, 33), F32(33), F32_CONST(33), RUNNING_VAR(33)}, build_bn_running_gain, 0, 1},
    {"tlm_batch_norm", "eval 5x9, bias", 4,
     {F32(5, 9), F32(9), F32_CONST(9), RUNNING_VAR(9)}, build_bn_running_bias, 0, 1},
};

const grad_case_group grad_cases_norm = {"norm", cases, sizeof cases / sizeof cases[0]};
