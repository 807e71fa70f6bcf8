/*
 * Products with int8 weights on AVX2 (kernels/weights.h): one group of 32
 * weights is one ymm register.
 *
 * Integer dot product of a group without VNNI: vpmaddubsw multiplies
 * unsigned by signed bytes, so the sign moves to the activations
 * ("sign trick"): |w| (vpabsb) times a * sign(w) (vpsignb), pairs added
 * into int16 (at most 2 * 127 * 127 = 32258: never saturates, since
 * neither side holds -128), then vpmaddwd with ones adds pairs into 8
 * int32 lanes. The lanes, converted to float, are multiplied by the
 * group's a_scale * w_scale and accumulated per lane; the 8 lanes are
 * added at the end of the row.
 *
 * Register tile: up to 4 rows of A and 2 columns of C (rows of W) at a
 * time, each W group loaded once for all rows; the columns of one tile
 * sit in L1 while the row blocks go by, so W streams from memory once
 * per product. Each C[i][j] gets the same operations whatever tile or
 * range holds it.
 */
#include <immintrin.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4
#define TILE_COLS 2

static void prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    tlmi_q8_prepare_offset(prepared, a, m, k, 0);
}

static inline float hsum(__m256 v) {
    __m128 x = _mm_add_ps(_mm256_castps256_ps128(v),
                          _mm256_extractf128_ps(v, 1));
    x = _mm_add_ps(x, _mm_movehl_ps(x, x));
    x = _mm_add_ss(x, _mm_movehdup_ps(x));
    return _mm_cvtss_f32(x);
}

/* C[i0 + r][j0 + c] for r < rows, c < cols (rows <= TILE_ROWS, cols <=
 * TILE_COLS; constants once inlined, so the loops unroll). */
static inline __attribute__((always_inline)) void
tile(float *c, int64_t ldc, const void *prepared, const tlmi_weights *w,
     const float *bias, int64_t m, int64_t i0, int64_t j0, int rows,
     int cols) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    const __m256i ones = _mm256_set1_epi16(1);
    const int8_t *qa[TILE_ROWS];
    const float *sa[TILE_ROWS];
    const int8_t *qw[TILE_COLS];
    const float *sw[TILE_COLS];
    __m256 acc[TILE_ROWS][TILE_COLS];
    for (int r = 0; r < rows; r++) {
        qa[r] = tlmi_q8_prepared_row(prepared, k, i0 + r);
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        for (int j = 0; j < cols; j++)
            acc[r][j] = _mm256_setzero_ps();
    }
    for (int j = 0; j < cols; j++) {
        qw[j] = tlmi_q8_row(w, j0 + j);
        sw[j] = tlmi_q8_scales(w, j0 + j);
    }
    for (int64_t g = 0; g < groups; g++) {
        __m256i wv[TILE_COLS], wabs[TILE_COLS];
        for (int j = 0; j < cols; j++) {
            wv[j] = _mm256_loadu_si256((const __m256i *)(const void *)(qw[j] + g * 32));
            wabs[j] = _mm256_abs_epi8(wv[j]);
        }
        for (int r = 0; r < rows; r++) {
            const __m256i av = _mm256_loadu_si256(
                (const __m256i *)(const void *)(qa[r] + g * 32));
            for (int j = 0; j < cols; j++) {
                const __m256i pairs =
                    _mm256_maddubs_epi16(wabs[j], _mm256_sign_epi8(av, wv[j]));
                const __m256 sums =
                    _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
                const __m256 d = _mm256_set1_ps(sa[r][g] * sw[j][g]);
                acc[r][j] = _mm256_fmadd_ps(sums, d, acc[r][j]);
            }
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            const float sum = hsum(acc[r][j]);
            c[(i0 + r) * ldc + j0 + j] =
                bias != NULL ? sum + bias[j0 + j] : sum;
        }
}

/* All row blocks for columns [j0, j0 + cols). */
static inline __attribute__((always_inline)) void
column_tile(float *c, int64_t ldc, const void *prepared,
            const tlmi_weights *w, const float *bias, int64_t m, int64_t j0,
            int cols) {
    int64_t i = 0;
    for (; i + TILE_ROWS <= m; i += TILE_ROWS)
        tile(c, ldc, prepared, w, bias, m, i, j0, TILE_ROWS, cols);
    switch (m - i) {
    case 3: tile(c, ldc, prepared, w, bias, m, i, j0, 3, cols); break;
    case 2: tile(c, ldc, prepared, w, bias, m, i, j0, 2, cols); break;
    case 1: tile(c, ldc, prepared, w, bias, m, i, j0, 1, cols); break;
    default: break;
    }
}

static void product_cols(float *c, int64_t ldc, const void *prepared,
                         const float *a, const tlmi_weights *w,
                         const float *bias, int64_t m, int64_t j_begin,
                         int64_t j_end) {
    (void)a;
    int64_t j = j_begin;
    for (; j + TILE_COLS <= j_end; j += TILE_COLS)
        column_tile(c, ldc, prepared, w, bias, m, j, TILE_COLS);
    if (j < j_end)
        column_tile(c, ldc, prepared, w, bias, m, j, 1);
}

const tlmi_weight_kernels tlmi_weights_int8_avx2 = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_AVX2,
    .name = "avx2",
    .features = 0, /* AVX2 + FMA: the table's own */
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 8,
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_scalar,
};
