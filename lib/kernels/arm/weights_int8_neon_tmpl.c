/*
 * Products with int8 weights on AArch64 Advanced SIMD (kernels/weights.h),
 * included by weights_int8_neon.c (plain NEON) and
 * weights_int8_neon_dotprod.c (Armv8.2 SDOT) with TLMI_WEIGHTS_SDOT 0 or 1
 * and TLMI_WEIGHTS_VARIANT, the name of the variant's table.
 *
 * A group of 32 weights is two q registers. Its integer dot product with
 * the activations' group into 4 int32 lanes:
 *   - SDOT: vdotq_s32 twice (each lane adds 4 products);
 *   - plain NEON: vmull_s8 and vmlal_s8 multiply 8 byte pairs each into
 *     int16 (two products, at most 2 * 127 * 127 = 32258: no overflow,
 *     since neither side holds -128), vpadalq_s16 adds pairs into int32.
 * The lanes, converted to float, times the group's a_scale * w_scale,
 * accumulate per lane (even and odd groups apart, for the FMA latency);
 * the lanes are added at the end of the row.
 *
 * Register tile: up to 4 rows of A on one row of W at a time, as on x86
 * (each W group loaded once for all rows; W streams once, in order).
 */
#include <arm_neon.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4

static void prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    tlmi_q8_prepare_offset(prepared, a, m, k, 0);
}

/* The 4 int32 lanes of one group's dot product. */
static inline int32x4_t group_dot(int8x16_t a0, int8x16_t a1, int8x16_t w0,
                                  int8x16_t w1) {
#if TLMI_WEIGHTS_SDOT
    return vdotq_s32(vdotq_s32(vdupq_n_s32(0), a0, w0), a1, w1);
#else
    int16x8_t lo = vmull_s8(vget_low_s8(a0), vget_low_s8(w0));
    lo = vmlal_s8(lo, vget_high_s8(a0), vget_high_s8(w0));
    int16x8_t hi = vmull_s8(vget_low_s8(a1), vget_low_s8(w1));
    hi = vmlal_s8(hi, vget_high_s8(a1), vget_high_s8(w1));
    return vpadalq_s16(vpaddlq_s16(lo), hi);
#endif
}

static inline __attribute__((always_inline)) void
step(float32x4_t *acc, const int8_t *const *qa, const float *const *sa,
     const int8_t *qw, const float *sw, int64_t g, int rows) {
    const int8x16_t w0 = vld1q_s8(qw + g * 32);
    const int8x16_t w1 = vld1q_s8(qw + g * 32 + 16);
    for (int r = 0; r < rows; r++) {
        const int8x16_t a0 = vld1q_s8(qa[r] + g * 32);
        const int8x16_t a1 = vld1q_s8(qa[r] + g * 32 + 16);
        const float32x4_t sums = vcvtq_f32_s32(group_dot(a0, a1, w0, w1));
        acc[r] = vfmaq_f32(acc[r], sums, vdupq_n_f32(sa[r][g] * sw[g]));
    }
}

static inline __attribute__((always_inline)) void
tile(float *c, int64_t ldc, const void *prepared, const tlmi_weights *w,
     const float *bias, int64_t m, int64_t i0, int64_t j, int rows) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    const int8_t *qa[TILE_ROWS];
    const float *sa[TILE_ROWS];
    float32x4_t even[TILE_ROWS], odd[TILE_ROWS];
    for (int r = 0; r < rows; r++) {
        qa[r] = tlmi_q8_prepared_row(prepared, k, i0 + r);
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        even[r] = odd[r] = vdupq_n_f32(0.0f);
    }
    const int8_t *qw = tlmi_q8_row(w, j);
    const float *sw = tlmi_q8_scales(w, j);
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2) {
        step(even, qa, sa, qw, sw, g, rows);
        step(odd, qa, sa, qw, sw, g + 1, rows);
    }
    if (g < groups)
        step(even, qa, sa, qw, sw, g, rows);
    for (int r = 0; r < rows; r++) {
        const float sum = vaddvq_f32(vaddq_f32(even[r], odd[r]));
        c[(i0 + r) * ldc + j] = bias != NULL ? sum + bias[j] : sum;
    }
}

static void product_cols(float *c, int64_t ldc, const void *prepared,
                         const float *a, const tlmi_weights *w,
                         const float *bias, int64_t m, int64_t j_begin,
                         int64_t j_end) {
    (void)a;
    for (int64_t j = j_begin; j < j_end; j++) {
        int64_t i = 0;
        for (; i + TILE_ROWS <= m; i += TILE_ROWS)
            tile(c, ldc, prepared, w, bias, m, i, j, TILE_ROWS);
        switch (m - i) {
        case 3: tile(c, ldc, prepared, w, bias, m, i, j, 3); break;
        case 2: tile(c, ldc, prepared, w, bias, m, i, j, 2); break;
        case 1: tile(c, ldc, prepared, w, bias, m, i, j, 1); break;
        default: break;
        }
    }
}

/* Bit for bit the scalar dequantization (q * scale, one rounding). */
static void dequantize_rows(float *out, const tlmi_weights *w,
                            int64_t row_begin, int64_t row_end) {
    const int64_t cols = w->cols, full = cols / 32;
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *q = tlmi_q8_row(w, r);
        const float *scale = tlmi_q8_scales(w, r);
        float *dst = out + (r - row_begin) * cols;
        for (int64_t g = 0; g < full; g++)
            for (int half = 0; half < 2; half++) {
                const int8x16_t v = vld1q_s8(q + g * 32 + half * 16);
                const int16x8_t lo = vmovl_s8(vget_low_s8(v));
                const int16x8_t hi = vmovl_s8(vget_high_s8(v));
                float *d = dst + g * 32 + half * 16;
                vst1q_f32(d, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo))), scale[g]));
                vst1q_f32(d + 4, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo))), scale[g]));
                vst1q_f32(d + 8, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi))), scale[g]));
                vst1q_f32(d + 12, vmulq_n_f32(vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi))), scale[g]));
            }
        for (int64_t col = full * 32; col < cols; col++)
            dst[col] = (float)q[col] * scale[col / 32];
    }
}
