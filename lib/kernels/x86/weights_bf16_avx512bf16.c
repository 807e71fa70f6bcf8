/*
 * Products with bf16 weights for AVX-512 BF16: vdpbf16ps multiplies 32
 * pairs of bf16 and adds each pair's two products to one of 16 float32
 * lanes, so one instruction takes a whole 64-byte line of a row of W.
 *
 * `prepare` splits A in two bf16 parts (the layout of weights_bf16.h:
 * hi = bf16(a), lo = bf16(a - hi), both nearest even), and each line of W
 * meets both in two vdpbf16ps into separate accumulators: W is loaded
 * once, so decoding (memory-bound) reads no more. hi + lo is within 2^-16
 * of a (16 significant bits against float32's 24; hi alone, what the
 * instruction would otherwise see, is within 2^-8), which takes the
 * activations' rounding out of the results in practice: the products of
 * two bf16 are exact in float32, and what remains is the float32
 * summation (in a different order from the scalar variant's) and the
 * instruction's own rounding: each addition rounds to nearest even, and
 * denormal inputs and results are treated as zero (a lo below 2^-126,
 * i.e. |a| below about 2^-110, counts as zero). The instruction pairs
 * elements 2l and 2l + 1 of each operand, which for two rows contiguous
 * along k is just their order in memory, so the parts need no other
 * rearrangement.
 *
 * Tiles: R <= 4 rows of A against one row of W at a time (one sequential
 * stream of W), U steps of 32 per turn (below). Terms past the last whole
 * 32 are added in scalar with A as split (hi w + lo w).
 *
 * direct_max_m 8: with one row of A, W is read from memory and the second
 * dot product is nearly free; with several, the product is bound by the
 * loads of A and the dot products, both twice what they were with A
 * rounded (one part), and the driver's dequantize + float32 GEMM
 * measured faster from m = 16 on the 110M shapes (it was slower up to
 * m = 256 before the split; docs/performance.md).
 */
#include <immintrin.h>
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
/* One row of W at a time: W is one sequential stream, which the hardware
 * prefetchers follow best (rows of 1.5-4 KiB read side by side measured
 * 1.2-1.5x slower from memory); 4 accumulators per pair for one or two
 * rows of A, 2 for three or four. */
#define J_OF(R) 1
#define U_OF(R) ((R) <= 2 ? 4 : 2)
/* Weights of W per column block: 16 KiB of bf16 (half of a 32 KiB L1). */
#define BLOCK_ELEMS 8192

static size_t dp_prepare_bytes(int64_t m, int64_t k) {
    return TLMI_BF16_HI_LO_BYTES(m, k);
}

/* hi [m * k] = bf16(a), then lo [m * k] = bf16(a - hi) (a - hi is exact
 * in float32), a chunk at a time through a buffer on the stack. */
static void dp_prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    uint16_t *hi = prepared, *lo = hi + m * k;
    tlmi_bf16_from_float_avx512(hi, a, m * k);
    float rest[256];
    for (int64_t at = 0; at < m * k; at += 256) {
        const int64_t len = m * k - at < 256 ? m * k - at : 256;
        tlmi_bf16_to_float_avx512(rest, hi + at, len);
        for (int64_t i = 0; i < len; i++)
            rest[i] = a[at + i] - rest[i];
        tlmi_bf16_from_float_avx512(lo + at, rest, len);
    }
}

static inline __m512bh load_bh(const uint16_t *p) {
    return (__m512bh)_mm512_loadu_si512((const void *)p);
}

/* Rows [i0, i0 + R) of C x columns [j0, j0 + J); ab is A's hi part,
 * al its lo part. U steps of 32 per turn of the loop (U accumulators per
 * pair of rows and part), then single steps, then the scalar tail. */
WBF16_INLINE void dp_tile(float *c, int64_t ldc, const uint16_t *ab,
                          const uint16_t *al, const uint16_t *w,
                          const float *bias, int64_t k, int64_t i0,
                          int64_t j0, const int R, const int J, const int U) {
    __m512 acc[MAX_R][MAX_J][MAX_U], acc_lo[MAX_R][MAX_J][MAX_U];
    WBF16_UNROLL(4)
    for (int r = 0; r < R; r++)
        WBF16_UNROLL(4)
        for (int q = 0; q < J; q++)
            WBF16_UNROLL(8)
            for (int u = 0; u < U; u++)
                acc[r][q][u] = acc_lo[r][q][u] = _mm512_setzero_ps();
    const uint16_t *arow = ab + i0 * k, *alrow = al + i0 * k;
    const uint16_t *wrow = w + j0 * k;
    const int64_t k32 = k / 32 * 32;
    int64_t p = 0;
    for (; p + U * 32 <= k; p += U * 32) {
        WBF16_UNROLL(8)
        for (int u = 0; u < U; u++) {
            __m512bh av[MAX_R], avl[MAX_R];
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++) {
                av[r] = load_bh(arow + r * k + p + u * 32);
                avl[r] = load_bh(alrow + r * k + p + u * 32);
            }
            WBF16_UNROLL(4)
            for (int q = 0; q < J; q++) {
                const __m512bh wv = load_bh(wrow + q * k + p + u * 32);
                WBF16_UNROLL(4)
                for (int r = 0; r < R; r++) {
                    acc[r][q][u] = _mm512_dpbf16_ps(acc[r][q][u], av[r], wv);
                    acc_lo[r][q][u] =
                        _mm512_dpbf16_ps(acc_lo[r][q][u], avl[r], wv);
                }
            }
        }
    }
    for (; p < k32; p += 32) {
        __m512bh av[MAX_R], avl[MAX_R];
        WBF16_UNROLL(4)
        for (int r = 0; r < R; r++) {
            av[r] = load_bh(arow + r * k + p);
            avl[r] = load_bh(alrow + r * k + p);
        }
        WBF16_UNROLL(4)
        for (int q = 0; q < J; q++) {
            const __m512bh wv = load_bh(wrow + q * k + p);
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++) {
                acc[r][q][0] = _mm512_dpbf16_ps(acc[r][q][0], av[r], wv);
                acc_lo[r][q][0] =
                    _mm512_dpbf16_ps(acc_lo[r][q][0], avl[r], wv);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const uint16_t *atail = arow + r * k, *altail = alrow + r * k;
        for (int q = 0; q < J; q++) {
            const uint16_t *wtail = wrow + q * k;
            __m512 total = acc[r][q][0], total_lo = acc_lo[r][q][0];
            for (int u = 1; u < U; u++) {
                total = _mm512_add_ps(total, acc[r][q][u]);
                total_lo = _mm512_add_ps(total_lo, acc_lo[r][q][u]);
            }
            float sum = _mm512_reduce_add_ps(_mm512_add_ps(total, total_lo));
            for (int64_t t = k32; t < k; t++) {
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

/* Dequantizing is widening: the AVX-512F rows. */
static void dp_dequantize_rows(float *out, const tlmi_weights *w,
                               int64_t row_begin, int64_t row_end) {
    const uint16_t *data = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        tlmi_bf16_to_float_avx512(out + (r - row_begin) * w->cols,
                                  data + r * w->cols, w->cols);
}

static void dp_dequantize_block(float *out, int64_t ld, const tlmi_weights *w,
                                int64_t row_begin, int64_t row_end,
                                int64_t col_begin, int64_t col_end) {
    const uint16_t *data = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        tlmi_bf16_to_float_avx512(out + (r - row_begin) * ld,
                                  data + r * w->cols + col_begin,
                                  col_end - col_begin);
}

const tlmi_weight_kernels tlmi_weights_bf16_avx512bf16 = {
    .format = TLM_WEIGHTS_BF16,
    .isa = TLMI_ISA_AVX512,
    .name = "avx512-bf16",
    .features = TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA | TLM_CPU_AVX512F |
                TLM_CPU_AVX512BF16,
    .prepare_bytes = dp_prepare_bytes,
    .prepare = dp_prepare,
    .product_cols = dp_product_cols,
    .direct_max_m = 8,
    .dequantize_rows = dp_dequantize_rows,
    .dequantize_block = dp_dequantize_block,
};
