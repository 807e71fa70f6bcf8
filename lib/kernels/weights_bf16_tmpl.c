/*
 * Products with bf16 weights by widening and FMA, written once for AVX2,
 * AVX-512 and NEON over the vectors of kernels/simd.h (its protocol: the
 * including file picks the ISA and TLMI_ISA_SUFFIX, then includes this
 * file). See kernels/weights_bf16.h for what the variants compute and
 * kernels/weights.h for the layout and the contract.
 *
 * The including file defines
 *   TLMI_WBF16_NAME, TLMI_WBF16_ISA, TLMI_WBF16_FEATURES   the variant's
 *       name, enum tlmi_isa and the CPU features it needs,
 *   TLMI_WBF16_MAX_R        rows of A per tile (at most 4),
 *   TLMI_WBF16_J(R)         rows of W per tile of R rows of A (at most 8;
 *                           1 keeps W one sequential stream),
 *   TLMI_WBF16_U(R)         steps of 2 VL per turn of the loop (at most 4),
 *   TLMI_WBF16_DIRECT_MAX_M the variant's direct_max_m,
 *   TLMI_WBF16_SPLIT        1 when wbf16_pair gives the even and the odd
 *                           elements (A is then permuted alike by
 *                           `prepare`), 0 when it gives the two halves,
 * and three static inline functions:
 *   wbf16_pair(p, &first, &second)  2 * TLMI_VL bf16 at p widened to two
 *                                   float vectors (halves or even/odd),
 *   wbf16_widen(p)                  TLMI_VL bf16 at p, in order,
 *   wbf16_narrow(dst, v)            TLMI_VL floats to bf16, nearest even.
 *
 * The product: C(i, j) is the dot product of row i of A and row j of W,
 * both contiguous along k. A tile holds R rows of A and J rows of W, 2 U
 * accumulators per pair (one per half of each 2 * TLMI_VL step, U steps
 * per turn, so that even a single pair keeps 2 U FMA chains going); the
 * last k % (2 VL) terms are added in scalar after the horizontal sum. Each C(i, j) gets
 * the same operations whatever R, J or the column range, so any split of
 * the columns over threads gives the same bits. Columns go in blocks of
 * about BLOCK_ELEMS weights, so that a block of W serves every tile of
 * rows of A from L1.
 */
#include <stddef.h>
#include <stdint.h>

#include "base/half.h"
#include "kernels/simd.h"
#include "kernels/weights_bf16.h"

#if defined(__GNUC__)
#define WBF16_INLINE static inline __attribute__((always_inline))
#else
#define WBF16_INLINE static inline
#endif
#define WBF16_PRAGMA(x) _Pragma(#x)
#define WBF16_UNROLL(n) WBF16_PRAGMA(GCC unroll n)

#define STEP (2 * TLMI_VL)
#define MAX_R TLMI_WBF16_MAX_R
#define MAX_J 8
#define MAX_U 4
/* Weights of W per column block: 16 KiB of bf16 (half of a 32 KiB L1). */
#define BLOCK_ELEMS 8192

#if MAX_R < 1 || MAX_R > 4
#error "TLMI_WBF16_MAX_R must be 1 to 4"
#endif

/* ---- Rows of bf16 and float32 ----------------------------------------- */

void TLMI_ISA_NAME(tlmi_bf16_to_float)(float *dst, const uint16_t *src,
                                       int64_t n) {
    int64_t i = 0;
    for (; i + TLMI_VL <= n; i += TLMI_VL)
        vf_store(dst + i, wbf16_widen(src + i));
    for (; i < n; i++)
        dst[i] = tlmi_bf16_to_float(src[i]);
}

void TLMI_ISA_NAME(tlmi_bf16_from_float)(uint16_t *dst, const float *src,
                                         int64_t n) {
    int64_t i = 0;
    for (; i + TLMI_VL <= n; i += TLMI_VL)
        wbf16_narrow(dst + i, vf_load(src + i));
    for (; i < n; i++)
        dst[i] = tlmi_float_to_bf16(src[i]);
}

/* ---- The variant's entries -------------------------------------------- */

/* A as the kernel reads it: with SPLIT, each whole step of 2 VL floats of
 * a row becomes its even elements then its odd ones (what wbf16_pair
 * gives of W); the last k % (2 VL) stay as they are. */
static size_t wbf16_prepare_bytes(int64_t m, int64_t k) {
#if TLMI_WBF16_SPLIT
    return (size_t)m * (size_t)k * sizeof(float);
#else
    (void)m, (void)k;
    return 0;
#endif
}

static void wbf16_prepare(void *prepared, const float *a, int64_t m, int64_t k) {
#if TLMI_WBF16_SPLIT
    float *out = prepared;
    const int64_t kv = k / STEP * STEP;
    for (int64_t i = 0; i < m; i++) {
        const float *row = a + i * k;
        float *dst = out + i * k;
        for (int64_t p = 0; p < kv; p += STEP)
            for (int l = 0; l < TLMI_VL; l++) {
                dst[p + l] = row[p + 2 * l];
                dst[p + TLMI_VL + l] = row[p + 2 * l + 1];
            }
        for (int64_t p = kv; p < k; p++)
            dst[p] = row[p];
    }
#else
    (void)prepared, (void)a, (void)m, (void)k;
#endif
}

/* Rows [i0, i0 + R) of C x columns [j0, j0 + J), U steps of 2 VL per
 * turn of the loop (2 U accumulators per pair of rows), then single
 * steps, then the scalar tail. ap is A as prepared, a as given (the tail
 * reads it), w the bf16 rows of W. */
WBF16_INLINE void wbf16_dots_tile(float *c, int64_t ldc, const float *ap,
                                  const float *a, const uint16_t *w,
                                  const float *bias, int64_t k, int64_t i0,
                                  int64_t j0, const int R, const int J,
                                  const int U) {
    tlmi_vf acc[MAX_R][MAX_J][2 * MAX_U];
    WBF16_UNROLL(4)
    for (int r = 0; r < R; r++)
        WBF16_UNROLL(8)
        for (int q = 0; q < J; q++)
            WBF16_UNROLL(8)
            for (int u = 0; u < 2 * U; u++)
                acc[r][q][u] = vf_zero();
    const float *arow = ap + i0 * k;
    const uint16_t *wrow = w + j0 * k;
    const int64_t kv = k / STEP * STEP;
    int64_t p = 0;
    for (; p + U * STEP <= k; p += U * STEP) {
        WBF16_UNROLL(4)
        for (int u = 0; u < U; u++) {
            tlmi_vf a0[MAX_R], a1[MAX_R];
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++) {
                a0[r] = vf_load(arow + r * k + p + u * STEP);
                a1[r] = vf_load(arow + r * k + p + u * STEP + TLMI_VL);
            }
            WBF16_UNROLL(8)
            for (int q = 0; q < J; q++) {
                tlmi_vf w0, w1;
                wbf16_pair(wrow + q * k + p + u * STEP, &w0, &w1);
                WBF16_UNROLL(4)
                for (int r = 0; r < R; r++) {
                    acc[r][q][2 * u] = vf_fmadd(a0[r], w0, acc[r][q][2 * u]);
                    acc[r][q][2 * u + 1] =
                        vf_fmadd(a1[r], w1, acc[r][q][2 * u + 1]);
                }
            }
        }
    }
    for (; p < kv; p += STEP) {
        tlmi_vf a0[MAX_R], a1[MAX_R];
        WBF16_UNROLL(4)
        for (int r = 0; r < R; r++) {
            a0[r] = vf_load(arow + r * k + p);
            a1[r] = vf_load(arow + r * k + p + TLMI_VL);
        }
        WBF16_UNROLL(8)
        for (int q = 0; q < J; q++) {
            tlmi_vf w0, w1;
            wbf16_pair(wrow + q * k + p, &w0, &w1);
            WBF16_UNROLL(4)
            for (int r = 0; r < R; r++) {
                acc[r][q][0] = vf_fmadd(a0[r], w0, acc[r][q][0]);
                acc[r][q][1] = vf_fmadd(a1[r], w1, acc[r][q][1]);
            }
        }
    }
    for (int r = 0; r < R; r++) {
        const float *atail = a + (i0 + r) * k;
        for (int q = 0; q < J; q++) {
            const uint16_t *wtail = wrow + q * k;
            tlmi_vf total = acc[r][q][0];
            for (int u = 1; u < 2 * U; u++)
                total = vf_add(total, acc[r][q][u]);
            float sum = vf_hsum(total);
            for (int64_t t = kv; t < k; t++)
                sum += atail[t] * tlmi_bf16_to_float(wtail[t]);
            if (bias != NULL)
                sum += bias[j0 + q];
            c[(i0 + r) * ldc + j0 + q] = sum;
        }
    }
}

/* Rows [i0, i0 + R) of C, columns [j_begin, j_end): tiles of J rows of W,
 * then one at a time. */
WBF16_INLINE void wbf16_dots_rows(float *c, int64_t ldc, const float *ap,
                            const float *a, const uint16_t *w,
                            const float *bias, int64_t k, int64_t i0,
                            int64_t j_begin, int64_t j_end, const int R) {
    const int J = TLMI_WBF16_J(R), U = TLMI_WBF16_U(R);
    int64_t j = j_begin;
    for (; j + J <= j_end; j += J)
        wbf16_dots_tile(c, ldc, ap, a, w, bias, k, i0, j, R, J, U);
    for (; j < j_end; j++)
        wbf16_dots_tile(c, ldc, ap, a, w, bias, k, i0, j, R, 1, U);
}

static void wbf16_product_cols(float *c, int64_t ldc, const void *prepared,
                         const float *a, const tlmi_weights *w,
                         const float *bias, int64_t m, int64_t j_begin,
                         int64_t j_end) {
    const int64_t k = w->cols;
    const uint16_t *wdata = w->data;
#if TLMI_WBF16_SPLIT
    const float *ap = prepared;
#else
    (void)prepared;
    const float *ap = a;
#endif
    /* Column blocks: a multiple of 8 rows of W, about BLOCK_ELEMS. */
    int64_t block = BLOCK_ELEMS / k / 8 * 8;
    if (block < 8)
        block = 8;
    for (int64_t jb = j_begin; jb < j_end; jb += block) {
        const int64_t je = j_end - jb < block ? j_end : jb + block;
        for (int64_t i = 0; i < m;) {
            const int64_t r = m - i < MAX_R ? m - i : MAX_R;
            switch (r) {
#if MAX_R >= 4
            case 4:
                wbf16_dots_rows(c, ldc, ap, a, wdata, bias, k, i, jb, je, 4);
                break;
#endif
#if MAX_R >= 3
            case 3:
                wbf16_dots_rows(c, ldc, ap, a, wdata, bias, k, i, jb, je, 3);
                break;
#endif
#if MAX_R >= 2
            case 2:
                wbf16_dots_rows(c, ldc, ap, a, wdata, bias, k, i, jb, je, 2);
                break;
#endif
            default:
                wbf16_dots_rows(c, ldc, ap, a, wdata, bias, k, i, jb, je, 1);
                break;
            }
            i += r;
        }
    }
}

static void wbf16_dequantize_rows(float *out, const tlmi_weights *w,
                            int64_t row_begin, int64_t row_end) {
    const uint16_t *data = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        TLMI_ISA_NAME(tlmi_bf16_to_float)(out + (r - row_begin) * w->cols,
                                          data + r * w->cols, w->cols);
}

static void wbf16_dequantize_block(float *out, int64_t ld,
                                   const tlmi_weights *w, int64_t row_begin,
                                   int64_t row_end, int64_t col_begin,
                                   int64_t col_end) {
    const uint16_t *data = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        TLMI_ISA_NAME(tlmi_bf16_to_float)(out + (r - row_begin) * ld,
                                          data + r * w->cols + col_begin,
                                          col_end - col_begin);
}

const tlmi_weight_kernels TLMI_ISA_NAME(tlmi_weights_bf16) = {
    .format = TLM_WEIGHTS_BF16,
    .isa = TLMI_WBF16_ISA,
    .name = TLMI_WBF16_NAME,
    .features = TLMI_WBF16_FEATURES,
    .prepare_bytes = wbf16_prepare_bytes,
    .prepare = wbf16_prepare,
    .product_cols = wbf16_product_cols,
    .direct_max_m = TLMI_WBF16_DIRECT_MAX_M,
    .dequantize_rows = wbf16_dequantize_rows,
    .dequantize_block = wbf16_dequantize_block,
};

#undef WBF16_INLINE
#undef WBF16_PRAGMA
#undef WBF16_UNROLL
#undef STEP
#undef MAX_R
#undef MAX_J
#undef MAX_U
#undef BLOCK_ELEMS
