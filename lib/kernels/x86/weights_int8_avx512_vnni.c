/*
 * Products with int8 weights on AVX-512 VNNI (kernels/weights.h): two
 * groups of 32 weights per zmm register.
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds each 4 products
 * into an int32 lane. The activations are prepared unsigned, u = qa + 128
 * (1..255), so u . w = qa . w + 128 sum(w): each W vector's correction
 * -128 sum(w) per lane is one vpdpbusd of 0x80 bytes with w, computed
 * once and used as the start value of every row's vpdpbusd, which then
 * yields qa . w exactly. The 16 lanes (8 per group), converted to float,
 * are multiplied by their group's a_scale * w_scale and accumulated per
 * lane; the lanes are added at the end of the row.
 *
 * Register tile: up to 4 rows of A and 2 columns of C at a time, each W
 * vector loaded once for all rows, the row blocks inside the column
 * tiles (W streams from memory once). Each C[i][j] gets the same
 * operations whatever tile or range holds it.
 */
#include <immintrin.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4
#define TILE_COLS 2

static void prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    tlmi_q8_prepare_offset(prepared, a, m, k, 128);
}

/* Two consecutive scales (one when `two` is 0, the other lane 0) spread
 * over the lanes of their groups: lanes 0-7 the first, 8-15 the second. */
static inline __m512 spread_scales(const float *s, int two) {
    const __m128 pair = two ? _mm_castpd_ps(_mm_load_sd((const double *)(const void *)s))
                            : _mm_load_ss(s);
    const __m512i index = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1,
                                           0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(index, _mm512_castps128_ps512(pair));
}

static inline __attribute__((always_inline)) void
tile(float *c, int64_t ldc, const void *prepared, const tlmi_weights *w,
     const float *bias, int64_t m, int64_t i0, int64_t j0, int rows,
     int cols) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    const __m512i bias128 = _mm512_set1_epi8((char)0x80);
    const uint8_t *ua[TILE_ROWS];
    const float *sa[TILE_ROWS];
    const int8_t *qw[TILE_COLS];
    const float *sw[TILE_COLS];
    __m512 acc[TILE_ROWS][TILE_COLS];
    for (int r = 0; r < rows; r++) {
        ua[r] = (const uint8_t *)tlmi_q8_prepared_row(prepared, k, i0 + r);
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        for (int j = 0; j < cols; j++)
            acc[r][j] = _mm512_setzero_ps();
    }
    for (int j = 0; j < cols; j++) {
        qw[j] = tlmi_q8_row(w, j0 + j);
        sw[j] = tlmi_q8_scales(w, j0 + j);
    }
    for (int64_t g = 0; g < groups; g += 2) {
        const int two = g + 1 < groups;
        const __mmask64 bytes = two ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
        __m512i wv[TILE_COLS], start[TILE_COLS];
        __m512 swv[TILE_COLS];
        for (int j = 0; j < cols; j++) {
            wv[j] = _mm512_maskz_loadu_epi8(bytes, qw[j] + g * 32);
            start[j] = _mm512_sub_epi32(
                _mm512_setzero_si512(),
                _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias128, wv[j]));
            swv[j] = spread_scales(sw[j] + g, two);
        }
        for (int r = 0; r < rows; r++) {
            const __m512i av = _mm512_maskz_loadu_epi8(bytes, ua[r] + g * 32);
            const __m512 sav = spread_scales(sa[r] + g, two);
            for (int j = 0; j < cols; j++) {
                const __m512 sums = _mm512_cvtepi32_ps(
                    _mm512_dpbusd_epi32(start[j], av, wv[j]));
                acc[r][j] = _mm512_fmadd_ps(sums, _mm512_mul_ps(sav, swv[j]),
                                            acc[r][j]);
            }
        }
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            const float sum = _mm512_reduce_add_ps(acc[r][j]);
            c[(i0 + r) * ldc + j0 + j] =
                bias != NULL ? sum + bias[j0 + j] : sum;
        }
}

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

const tlmi_weight_kernels tlmi_weights_int8_avx512_vnni = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_AVX512,
    .name = "avx512-vnni",
    .features = TLM_CPU_AVX512BW | TLM_CPU_AVX512VL | TLM_CPU_AVX512VNNI,
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 8,
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_scalar,
};
