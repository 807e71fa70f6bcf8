/*
 * Products with bf16 weights for AVX-512 BF16: vdpbf16ps multiplies 32
 * pairs of bf16 and adds each pair's two products to one of 16 float32
 * lanes, so one instruction takes a whole 64-byte line of a row of W.
 *
 * `prepare` rounds A to bf16 (nearest even, tlmi_bf16_from_float_avx512);
 * the instruction pairs elements 2l and 2l + 1 of each operand, which for
 * two rows contiguous along k is just their order in memory, so A needs
 * no other rearrangement. The products of two bf16 are exact in float32;
 * the instruction rounds each addition to nearest even and treats
 * denormal inputs and results as zero (weights.h's contract: the error
 * is A's rounding plus the summation's).
 *
 * Tiles: R <= 4 rows of A against one row of W at a time (one sequential
 * stream of W), U steps of 32 per turn (below). Terms past the last whole
 * 32 are added in scalar with A as rounded.
 *
 * direct_max_m 256: the instruction does 32 multiply-adds where an FMA
 * does 16, and this direct product measured faster than the driver's
 * dequantize + float32 GEMM (and than the float32 product) up to m = 256
 * on the 110M shapes (docs/performance.md); A's rounding to bf16 is then
 * part of prefill's results too, as it is of decoding's.
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
    return (size_t)m * (size_t)k * sizeof(uint16_t);
}

static void dp_prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    tlmi_bf16_from_float_avx512(prepared, a, m * k);
}

static inline __m512bh load_bh(const uint16_t *p) {
    return (__m512bh)_mm512_loadu_si512((const void *)p);
}

/* Rows [i0, i0 + R) of C x columns [j0, j0 + J); ab is A in bf16. U
 * steps of 32 per turn of the loop (U accumulators per pair of rows),
 * then single steps, then the scalar tail. */
WBF16_INLINE void dp_tile(float *c, int64_t ldc, const uint16_t *ab,
                          const uint16_t *w, const float *bias, int64_t k,
                          int64_t i0, int64_t j0, const int R, const int J,
                          const int U) {
    __m512 acc[MAX_R][MAX_J][MAX_U];
    WBF16_UNROLL(4)
    for (int r = 0; r < R; r++)
        WBF16_UNROLL(4)
        for (int q = 0; q < J; q++)
            WBF16_UNROLL(8)
            for (int u = 0; u < U; u++)
                acc[r][q][u] = _mm512_setzero_ps();
    const uint16_t *arow = ab + i0 * k;
    const uint16_t *wrow = w + j0 * k;
    const int64_t k32 = k / 32 * 32;
    int64_t p = 0;
    for (; p + U * 32 <= k; p += U * 32) {
        WBF16_UNROLL(8)
        for (int u = 0; u < U; u++) {
            __m512bh av[MAX_R];
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++)
                av[r] = load_bh(arow + r * k + p + u * 32);
            WBF16_UNROLL(4)
            for (int q = 0; q < J; q++) {
                const __m512bh wv = load_bh(wrow + q * k + p + u * 32);
                WBF16_UNROLL(4)
                for (int r = 0; r < R; r++)
                    acc[r][q][u] = _mm512_dpbf16_ps(acc[r][q][u], av[r], wv);
            }
        }
    }
    for (; p < k32; p += 32) {
        __m512bh av[MAX_R];
        WBF16_UNROLL(4)
        for (int r = 0; r < R; r++)
            av[r] = load_bh(arow + r * k + p);
        WBF16_UNROLL(4)
        for (int q = 0; q < J; q++) {
            const __m512bh wv = load_bh(wrow + q * k + p);
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++)
                acc[r][q][0] = _mm512_dpbf16_ps(acc[r][q][0], av[r], wv);
        }
    }
    for (int r = 0; r < R; r++) {
        const uint16_t *atail = arow + r * k;
        for (int q = 0; q < J; q++) {
            const uint16_t *wtail = wrow + q * k;
            __m512 total = acc[r][q][0];
            for (int u = 1; u < U; u++)
                total = _mm512_add_ps(total, acc[r][q][u]);
            float sum = _mm512_reduce_add_ps(total);
            for (int64_t t = k32; t < k; t++)
                sum += tlmi_bf16_to_float(atail[t]) *
                       tlmi_bf16_to_float(wtail[t]);
            if (bias != NULL)
                sum += bias[j0 + q];
            c[(i0 + r) * ldc + j0 + q] = sum;
        }
    }
}

WBF16_INLINE void dp_rows(float *c, int64_t ldc, const uint16_t *ab,
                          const uint16_t *w, const float *bias, int64_t k,
                          int64_t i0, int64_t j_begin, int64_t j_end,
                          const int R) {
    const int J = J_OF(R), U = U_OF(R);
    int64_t j = j_begin;
    for (; j + J <= j_end; j += J)
        dp_tile(c, ldc, ab, w, bias, k, i0, j, R, J, U);
    for (; j < j_end; j++)
        dp_tile(c, ldc, ab, w, bias, k, i0, j, R, 1, U);
}

static void dp_product_cols(float *c, int64_t ldc, const void *prepared,
                            const float *a, const tlmi_weights *w,
                            const float *bias, int64_t m, int64_t j_begin,
                            int64_t j_end) {
    (void)a;
    const int64_t k = w->cols;
    const uint16_t *ab = prepared, *wdata = w->data;
    int64_t block = BLOCK_ELEMS / k / 8 * 8;
    if (block < 8)
        block = 8;
    for (int64_t jb = j_begin; jb < j_end; jb += block) {
        const int64_t je = j_end - jb < block ? j_end : jb + block;
        for (int64_t i = 0; i < m;) {
            const int64_t r = m - i < MAX_R ? m - i : MAX_R;
            switch (r) {
            case 4:
                dp_rows(c, ldc, ab, wdata, bias, k, i, jb, je, 4);
                break;
            case 3:
                dp_rows(c, ldc, ab, wdata, bias, k, i, jb, je, 3);
                break;
            case 2:
                dp_rows(c, ldc, ab, wdata, bias, k, i, jb, je, 2);
                break;
            default:
                dp_rows(c, ldc, ab, wdata, bias, k, i, jb, je, 1);
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
    .direct_max_m = 256,
    .dequantize_rows = dp_dequantize_rows,
    .dequantize_block = dp_dequantize_block,
};
