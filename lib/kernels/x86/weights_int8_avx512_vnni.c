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
 * Register tile: up to 4 rows of A and one column of C (one row of W) at
 * a time, each W vector loaded once for all rows, the row blocks inside
 * the loop over W's rows (W streams from memory once, as one sequential
 * stream: reading two rows of W at once measured 40% slower from memory
 * on Zen 4). Each C[i][j] gets the same
 * operations whatever tile or range holds it.
 */
#include <immintrin.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4
/* Software prefetch distance: this many rows of W ahead. */
#define PREFETCH_ROWS 4

static void prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    tlmi_q8_prepare_offset(prepared, a, m, k, 128);
}

/* Two consecutive scales (one when `two` is 0, the other lane 0) spread
 * over the lanes of their groups: lanes 0-7 the first, 8-15 the second. */
static inline __m512 spread_scales(const float *s, int two) {
    const __m512 pair = _mm512_maskz_loadu_ps(two ? 0x3 : 0x1, s);
    const __m512i index = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1,
                                           0, 0, 0, 0, 0, 0, 0, 0);
    return _mm512_permutexvar_ps(index, pair);
}

/* acc[r] += row r's products with the groups g and g + 1 (g alone when
 * `two` is 0) of one row of W (q values qw, scales sw). */
static inline __attribute__((always_inline)) void
step(__m512 *acc, const uint8_t *const *ua, const float *const *sa,
     const int8_t *qw, const float *sw, int64_t g, int two, int rows,
     int64_t prefetch) {
    const __mmask64 bytes = two ? ~(__mmask64)0 : (__mmask64)0xffffffffu;
    /* W streams from memory once, and the hardware prefetchers lose it
     * at page boundaries: ask for what comes `prefetch` bytes on */
    _mm_prefetch((const char *)(qw + g * 32 + prefetch), _MM_HINT_T0);
    const __m512i wv = _mm512_maskz_loadu_epi8(bytes, qw + g * 32);
    const __m512i start = _mm512_sub_epi32(
        _mm512_setzero_si512(),
        _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                            _mm512_set1_epi8((char)0x80), wv));
    const __m512 swv = spread_scales(sw + g, two);
    for (int r = 0; r < rows; r++) {
        const __m512i av = _mm512_maskz_loadu_epi8(bytes, ua[r] + g * 32);
        const __m512 sums =
            _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start, av, wv));
        acc[r] = _mm512_fmadd_ps(
            sums, _mm512_mul_ps(spread_scales(sa[r] + g, two), swv), acc[r]);
    }
}

/* C[i0 + r][j] for r < rows (rows <= TILE_ROWS, a constant once inlined,
 * so the loops unroll). Two accumulators per row (groups 4t, 4t + 1 in
 * one, 4t + 2, 4t + 3 in the other) hide the latency of the FMAs. */
static inline __attribute__((always_inline)) void
tile(float *c, int64_t ldc, const void *prepared, const tlmi_weights *w,
     const float *bias, int64_t m, int64_t i0, int64_t j, int rows) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    /* (0 near the end of W: no address past it, not even for a hint) */
    const int64_t prefetch =
        j + PREFETCH_ROWS < w->rows ? PREFETCH_ROWS * groups * 32 : 0;
    const uint8_t *ua[TILE_ROWS];
    const float *sa[TILE_ROWS];
    __m512 even[TILE_ROWS], odd[TILE_ROWS];
    for (int r = 0; r < rows; r++) {
        ua[r] = (const uint8_t *)tlmi_q8_prepared_row(prepared, k, i0 + r);
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        even[r] = odd[r] = _mm512_setzero_ps();
    }
    const int8_t *qw = tlmi_q8_row(w, j);
    const float *sw = tlmi_q8_scales(w, j);
    int64_t g = 0;
    for (; g + 4 <= groups; g += 4) {
        step(even, ua, sa, qw, sw, g, 1, rows, prefetch);
        step(odd, ua, sa, qw, sw, g + 2, 1, rows, prefetch);
    }
    if (g < groups)
        step(even, ua, sa, qw, sw, g, g + 1 < groups, rows, prefetch);
    if (g + 2 < groups)
        step(odd, ua, sa, qw, sw, g + 2, g + 3 < groups, rows, prefetch);
    for (int r = 0; r < rows; r++) {
        const float sum = _mm512_reduce_add_ps(_mm512_add_ps(even[r], odd[r]));
        c[(i0 + r) * ldc + j] = bias != NULL ? sum + bias[j] : sum;
    }
}

static void product_cols(float *c, int64_t ldc, const void *prepared,
                         const float *a, const tlmi_weights *w,
                         const float *bias, int64_t m, int64_t j_begin,
                         int64_t j_end) {
    (void)a;
    /* one row of W at a time, all row blocks of A on it while it sits in
     * L1: W streams from memory once */
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

/* dequantize_block with 16 lanes: each group of 32 inside the block in
 * two steps with one scale (the AVX2 one's bits: q * scale, one rounding),
 * the ragged ends as scalar. */
static void dequantize_block(float *out, int64_t ld, const tlmi_weights *w,
                             int64_t row_begin, int64_t row_end,
                             int64_t col_begin, int64_t col_end) {
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *q = tlmi_q8_row(w, r);
        const float *scale = tlmi_q8_scales(w, r);
        float *dst = out + (r - row_begin) * ld - col_begin;
        int64_t c = col_begin;
        for (; c < col_end && c % 16 != 0; c++)
            dst[c] = (float)q[c] * scale[c / 32];
        for (; c + 16 <= col_end; c += 16) {
            const __m128i bytes =
                _mm_loadu_si128((const __m128i *)(const void *)(q + c));
            const __m512 v = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(bytes));
            _mm512_storeu_ps(dst + c,
                             _mm512_mul_ps(v, _mm512_set1_ps(scale[c / 32])));
        }
        for (; c < col_end; c++)
            dst[c] = (float)q[c] * scale[c / 32];
    }
}

const tlmi_weight_kernels tlmi_weights_int8_avx512_vnni = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_AVX512,
    .name = "avx512-vnni",
    .features = TLM_CPU_AVX512BW | TLM_CPU_AVX512VL | TLM_CPU_AVX512VNNI,
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 64, /* measured: see docs/performance.md */
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_avx2,
    .dequantize_block = dequantize_block,
};
