/*
 * Products with bf16 weights for Armv8.6 BF16 (FEAT_BF16, +bf16): BFDOT
 * takes two registers of 8 bf16, multiplies them pair by pair (pair l:
 * elements 2l and 2l + 1) and adds each pair's two products to float32
 * lane l of the accumulator.
 *
 * `prepare` splits A in two bf16 parts (the layout of weights_bf16.h:
 * hi = bf16(a), lo = bf16(a - hi), nearest even) and each load of W
 * meets both in two BFDOT into separate accumulators (W read once). hi +
 * lo is within 2^-16 of a (hi alone within 2^-8); for two rows
 * contiguous along k the pairs are their order in memory, so the parts
 * need no other rearrangement. The products of two bf16 are exact;
 * BFDOT's additions round (to odd, in the Armv8.6 definition without
 * FEAT_EBF16) and flush denormals to zero (a lo below 2^-126 counts as
 * zero): against the scalar variant, the float32 summation in another
 * order and that rounding.
 *
 * Tiles: R <= 4 rows of A against one row of W at a time, U steps of 8
 * per turn (below); terms past the last whole 8 are added in scalar with
 * A as split (hi w + lo w). direct_max_m 4, as the scalar variant's: not
 * measured on Arm hardware (only run under qemu).
 */
#include <arm_neon.h>
#include <stddef.h>
#include <stdint.h>

#include "base/half.h"
#include "kernels/weights_bf16.h"
#include "tlm.h"

#define WBF16_INLINE static inline __attribute__((always_inline))
#define WBF16_PRAGMA(x) _Pragma(#x)
#define WBF16_UNROLL(n) WBF16_PRAGMA(GCC unroll n)
#define MAX_R 4
#define MAX_J 1
#define MAX_U 8
/* One row of W at a time (one sequential stream of W, as the x86 files),
 * 8 accumulators for one or two rows of A, 2 x 4 for three or four. */
#define J_OF(R) 1
#define U_OF(R) ((R) <= 2 ? 4 : 2)
/* Weights of W per column block: 16 KiB of bf16. */
#define BLOCK_ELEMS 8192

static size_t dp_prepare_bytes(int64_t m, int64_t k) {
    return TLMI_BF16_HI_LO_BYTES(m, k);
}

/* hi [m * k] = bf16(a), then lo [m * k] = bf16(a - hi) (a - hi is exact
 * in float32), a chunk at a time through a buffer on the stack. */
static void dp_prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    uint16_t *hi = prepared, *lo = hi + m * k;
    tlmi_bf16_from_float_neon(hi, a, m * k);
    float rest[256];
    for (int64_t at = 0; at < m * k; at += 256) {
        const int64_t len = m * k - at < 256 ? m * k - at : 256;
        tlmi_bf16_to_float_neon(rest, hi + at, len);
        for (int64_t i = 0; i < len; i++)
            rest[i] = a[at + i] - rest[i];
        tlmi_bf16_from_float_neon(lo + at, rest, len);
    }
}

static inline bfloat16x8_t load_bh(const uint16_t *p) {
    return vreinterpretq_bf16_u16(vld1q_u16(p));
}

/* Rows [i0, i0 + R) of C x columns [j0, j0 + J); ab is A's hi part, al
 * its lo part. U steps of 8 per turn of the loop (U accumulators per pair
 * of rows and part), then single steps, then the scalar tail. */
WBF16_INLINE void dp_tile(float *c, int64_t ldc, const uint16_t *ab,
                          const uint16_t *al, const uint16_t *w,
                          const float *bias, int64_t k, int64_t i0,
                          int64_t j0, const int R, const int J, const int U) {
    float32x4_t acc[MAX_R][MAX_J][MAX_U], acc_lo[MAX_R][MAX_J][MAX_U];
    WBF16_UNROLL(4)
    for (int r = 0; r < R; r++)
        WBF16_UNROLL(4)
        for (int q = 0; q < J; q++)
            WBF16_UNROLL(8)
            for (int u = 0; u < U; u++)
                acc[r][q][u] = acc_lo[r][q][u] = vdupq_n_f32(0.0f);
    const uint16_t *arow = ab + i0 * k, *alrow = al + i0 * k;
    const uint16_t *wrow = w + j0 * k;
    const int64_t k8 = k / 8 * 8;
    int64_t p = 0;
    for (; p + U * 8 <= k; p += U * 8) {
        WBF16_UNROLL(8)
        for (int u = 0; u < U; u++) {
            bfloat16x8_t av[MAX_R], avl[MAX_R];
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++) {
                av[r] = load_bh(arow + r * k + p + u * 8);
                avl[r] = load_bh(alrow + r * k + p + u * 8);
            }
            WBF16_UNROLL(4)
            for (int q = 0; q < J; q++) {
                const bfloat16x8_t wv = load_bh(wrow + q * k + p + u * 8);
                WBF16_UNROLL(4)
                for (int r = 0; r < R; r++) {
                    acc[r][q][u] = vbfdotq_f32(acc[r][q][u], av[r], wv);
                    acc_lo[r][q][u] =
                        vbfdotq_f32(acc_lo[r][q][u], avl[r], wv);
                }
            }
        }
    }
    for (; p < k8; p += 8) {
        bfloat16x8_t av[MAX_R], avl[MAX_R];
        WBF16_UNROLL(4)
        for (int r = 0; r < R; r++) {
            av[r] = load_bh(arow + r * k + p);
            avl[r] = load_bh(alrow + r * k + p);
        }
        WBF16_UNROLL(4)
        for (int q = 0; q < J; q++) {
            const bfloat16x8_t wv = load_bh(wrow + q * k + p);
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++) {
                acc[r][q][0] = vbfdotq_f32(acc[r][q][0], av[r], wv);
                acc_lo[r][q][0] = vbfdotq_f32(acc_lo[r][q][0], avl[r], wv);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint16_t *atail = arow + r * k, *altail = alrow + r * k;
        for (int q = 0; q < J; q++) {
            const uint16_t *wtail = wrow + q * k;
            float32x4_t total = acc[r][q][0], total_lo = acc_lo[r][q][0];
            for (int u = 1; u < U; u++) {
                total = vaddq_f32(total, acc[r][q][u]);
                total_lo = vaddq_f32(total_lo, acc_lo[r][q][u]);
            }
            float sum = vaddvq_f32(vaddq_f32(total, total_lo));
            for (int64_t t = k8; t < k; t++) {
                const float wt = tlmi_bf16_to_float(wtail[t]);
                sum += tlmi_bf16_to_float(atail[t]) * wt +
                       tlmi_bf16_to_float(altail[t]) * wt;
            }
            if (bias != NULL)
                sum += bias[j0 + q];
            c[(i0 + r) * ldc + j0 + q] = sum;
        }
    }
}

WBF16_INLINE void dp_rows(float *c, int64_t ldc, const uint16_t *ab,
                          const uint16_t *al, const uint16_t *w, const float *bias, int64_t k,
                          int64_t i0, int64_t j_begin, int64_t j_end,
                          const int R) {
    const int J = J_OF(R), U = U_OF(R);
    int64_t j = j_begin;
    for (; j + J <= j_end; j += J)
        dp_tile(c, ldc, ab, al, w, bias, k, i0, j, R, J, U);
    for (; j < j_end; j++)
        dp_tile(c, ldc, ab, al, w, bias, k, i0, j, R, 1, U);
}

static void dp_product_cols(float *c, int64_t ldc, const void *prepared,
                            const float *a, const tlmi_weights *w,
                            const float *bias, int64_t m, int64_t j_begin,
                            int64_t j_end) {
    (void)a;
    const int64_t k = w->cols;
    const uint16_t *ab = prepared, *al = ab + m * k, *wdata = w->data;
    int64_t block = BLOCK_ELEMS / k / 8 * 8;
    if (block < 8)
        block = 8;
    for (int64_t jb = j_begin; jb < j_end; jb += block) {
        const int64_t je = j_end - jb < block ? j_end : jb + block;
        for (int64_t i = 0; i < m;) {
            const int64_t r = m - i < MAX_R ? m - i : MAX_R;
            switch (r) {
            case 4:
                dp_rows(c, ldc, ab, al, wdata, bias, k, i, jb, je, 4);
                break;
            case 3:
                dp_rows(c, ldc, ab, al, wdata, bias, k, i, jb, je, 3);
                break;
            case 2:
                dp_rows(c, ldc, ab, al, wdata, bias, k, i, jb, je, 2);
                break;
            default:
                dp_rows(c, ldc, ab, al, wdata, bias, k, i, jb, je, 1);
                break;
            }
            i += r;
        }
    }
}

/* Dequantizing is widening: the NEON rows. */
static void dp_dequantize_rows(float *out, const tlmi_weights *w,
                               int64_t row_begin, int64_t row_end) {
    const uint16_t *data = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        tlmi_bf16_to_float_neon(out + (r - row_begin) * w->cols,
                                data + r * w->cols, w->cols);
}

const tlmi_weight_kernels tlmi_weights_bf16_neonbf16 = {
    .format = TLM_WEIGHTS_BF16,
    .isa = TLMI_ISA_NEON,
    .name = "neon-bf16",
    .features = TLM_CPU_NEON | TLM_CPU_ARM_BF16,
    .prepare_bytes = dp_prepare_bytes,
    .prepare = dp_prepare,
    .product_cols = dp_product_cols,
    .direct_max_m = 4,
    .dequantize_rows = dp_dequantize_rows,
};
