/*
 * Fused attention for AArch64 Advanced SIMD (NEON: 32 q registers of 4
 * floats): the generic code of kernels/attention_tmpl.c over the vectors
 * of kernels/simd.h, with 4 query rows x 2 vectors = 8 accumulators in
 * the inner kernels, and a 4 x 4 register transpose for packing keys.
 */
#define TLMI_SIMD_NEON 1
#define TLMI_ISA_SUFFIX neon

#include "kernels/simd.h"

/* dst[d * ldd + r] = src[r * lds + d] for r, d < 4: rows paired by
 * vtrn, then 64-bit halves. */
#define TLMI_ATTN_HAVE_TRANSPOSE 1
static inline void vf_transpose(float *dst, int64_t ldd, const float *src,
                                int64_t lds) {
    const tlmi_vf a = vld1q_f32(src), b = vld1q_f32(src + lds),
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

#include "kernels/attention_tmpl.c"
