/*
 * Products with bf16 weights for AArch64 Advanced SIMD (32 q registers of
 * 4 floats): widen and FMA, kernels/weights_bf16_tmpl.c over the vectors
 * of kernels/simd.h.
 *
 * Widening: one 128-bit load of 8 bf16; SHLL and SHLL2 by 16
 * (vshll_n_u16, vshll_high_n_u16) widen each half to 4 floats, in order,
 * so A is read as given (no `prepare`).
 *
 * Tiles as in the AVX-512 file (the register file has the same 32
 * entries): R <= 4 rows of A against one row of W at a time, U = 4, 2, 1
 * steps per turn. direct_max_m 4, as the scalar variant's. Not measured
 * on Arm hardware (only run under qemu).
 */
#define TLMI_SIMD_NEON 1
#include "kernels/simd.h"

#include "tlm.h"

#define TLMI_ISA_SUFFIX neon
#define TLMI_WBF16_NAME "neon"
#define TLMI_WBF16_ISA TLMI_ISA_NEON
#define TLMI_WBF16_FEATURES TLM_CPU_NEON
#define TLMI_WBF16_MAX_R 4
#define TLMI_WBF16_J(R) 1
#define TLMI_WBF16_U(R) ((R) == 1 ? 4 : (R) == 2 ? 2 : 1)
#define TLMI_WBF16_DIRECT_MAX_M 4
#define TLMI_WBF16_SPLIT 0

static inline void wbf16_pair(const uint16_t *p, tlmi_vf *low,
                              tlmi_vf *high) {
    const uint16x8_t v = vld1q_u16(p);
    *low = vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(v), 16));
    *high = vreinterpretq_f32_u32(vshll_high_n_u16(v, 16));
}

static inline tlmi_vf wbf16_widen(const uint16_t *p) {
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16));
}

/* Nearest even on the bits, as tlmi_float_to_bf16 (see the AVX2 file). */
static inline void wbf16_narrow(uint16_t *dst, tlmi_vf v) {
    const uint32x4_t bits = vreinterpretq_u32_f32(v);
    const uint32x4_t lsb = vandq_u32(vshrq_n_u32(bits, 16), vdupq_n_u32(1));
    const uint32x4_t rounded =
        vshrq_n_u32(vaddq_u32(bits, vaddq_u32(lsb, vdupq_n_u32(0x7fff))), 16);
    const uint32x4_t quiet = vorrq_u32(vshrq_n_u32(bits, 16), vdupq_n_u32(0x40));
    const uint32x4_t number = vceqq_f32(v, v); /* all ones unless NaN */
    vst1_u16(dst, vmovn_u32(vbslq_u32(number, rounded, quiet)));
}

#include "kernels/weights_bf16_tmpl.c"
