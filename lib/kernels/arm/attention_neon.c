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

/* 2^x for x < 128 (see TLMI_EXP2_* in kernels/attention.h); vmaxq keeps
 * a NaN x. */
static inline VF vf_exp2(VF x) {
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

/* dst[d * ldd + r] = src[r * lds + d] for r, d < 4: rows paired by
 * vtrn, then 64-bit halves. */
#define ATTN_HAVE_TRANSPOSE 1
static inline void vf_transpose(float *dst, int64_t ldd, const float *src,
                                int64_t lds) {
    const VF a = vld1q_f32(src), b = vld1q_f32(src + lds),
             c = vld1q_f32(src + 2 * lds), d = vld1q_f32(src + 3 * lds);
    const float64x2_t t0 = vreinterpretq_f64_f32(vtrn1q_f32(a, b)),
                      t1 = vreinterpretq_f64_f32(vtrn2q_f32(a, b)),
                      t2 = vreinterpretq_f64_f32(vtrn1q_f32(c, d)),
                      t3 = vreinterpretq_f64_f32(vtrn2q_f32(c, d));
    vst1q_f32(dst, vreinterpretq_f32_f64(vtrn1q_f64(t0, t2)));
    vst1q_f32(dst + ldd, vreinterpretq_f32_f64(vtrn1q_f64(t1, t3)));
    vst1q_f32(dst + 2 * ldd, vreinterpretq_f32_f64(vtrn2q_f64(t0, t2)));
    vst1q_f32(dst + 3 * ldd, vreinterpretq_f32_f64(vtrn2q_f64(t1, t3)));
}

#include "kernels/attention_simd.h"
