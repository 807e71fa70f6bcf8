/*
 * Fused attention for AArch64 Advanced SIMD (NEON: 32 q registers of 4
 * floats): the vector operations attention_simd.h is written with, then
 * that file. Panels of 8 keys; 4 query rows x 2 vectors = 8 accumulators.
 */
#include <arm_neon.h>

#include "kernels/attention.h"

#define ATTN_ISA neon
#define W 4
typedef float32x4_t VF;

#define vf_zero() vdupq_n_f32(0.0f)
#define vf_set1(x) vdupq_n_f32(x)
#define vf_load(p) vld1q_f32(p)
#define vf_store(p, v) vst1q_f32((p), (v))
#define vf_bcast(p) vld1q_dup_f32(p)
#define vf_add(a, b) vaddq_f32((a), (b))
#define vf_sub(a, b) vsubq_f32((a), (b))
#define vf_mul(a, b) vmulq_f32((a), (b))
#define vf_max(a, b) vmaxq_f32((a), (b))
#define vf_fma(a, b, c) vfmaq_f32((c), (a), (b))
#define vf_hsum(v) vaddvq_f32(v)
#define vf_hmax(v) vmaxvq_f32(v)

/* exp (see attention_simd.h for the method and its error). */
static inline VF vf_exp(VF x) {
    const uint32x4_t keep = vcgeq_f32(x, vdupq_n_f32(TLMI_EXP_MIN));
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(TLMI_EXP_MIN)), vdupq_n_f32(TLMI_EXP_MAX));
    const int32x4_t n_i =
        vcvtnq_s32_f32(vmulq_f32(x, vdupq_n_f32(TLMI_EXP_LOG2E)));
    const VF n = vcvtq_f32_s32(n_i);
    VF r = vfmsq_f32(x, n, vdupq_n_f32(TLMI_EXP_LN2_HI));
    r = vfmsq_f32(r, n, vdupq_n_f32(TLMI_EXP_LN2_LO));
    VF p = vdupq_n_f32(TLMI_EXP_P0);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP_P1), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP_P2), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP_P3), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP_P4), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP_P5), p, r);
    p = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), p, vmulq_f32(r, r));
    const VF scale = vreinterpretq_f32_s32(
        vshlq_n_s32(vaddq_s32(n_i, vdupq_n_s32(127)), 23));
    return vreinterpretq_f32_u32(
        vandq_u32(keep, vreinterpretq_u32_f32(vmulq_f32(p, scale))));
}

/* 2^x for x <= 0 (see TLMI_EXP2_* in kernels/attention.h); vmaxq keeps
 * a NaN x. */
static inline VF vf_exp2_nonpos(VF x) {
    x = vmaxq_f32(vdupq_n_f32(TLMI_EXP2_MIN), x);
    const int32x4_t n_i = vcvtnq_s32_f32(x);
    const VF r = vsubq_f32(x, vcvtq_f32_s32(n_i));
    VF p = vdupq_n_f32(TLMI_EXP2_C6);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP2_C5), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP2_C4), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP2_C3), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP2_C2), p, r);
    p = vfmaq_f32(vdupq_n_f32(TLMI_EXP2_C1), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.0f), p, r);
    const VF scale = vreinterpretq_f32_s32(
        vshlq_n_s32(vaddq_s32(n_i, vdupq_n_s32(127)), 23));
    return vmulq_f32(p, scale);
}

#include "kernels/attention_simd.h"
