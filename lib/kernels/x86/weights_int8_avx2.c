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
 * Register tile: up to 4 rows of A and one column of C (one row of W) at
 * a time, each W group loaded once for all rows; the row of W sits in L1
 * while the row blocks go by, so W streams from memory once per product,
 * as one sequential stream (two rows of W at once measured 40% slower
 * from memory on Zen 4). Each C[i][j] gets the same operations whatever tile or
 * range holds it.
 */
#include <immintrin.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4
/* Software prefetch distance: this many rows of W ahead. */
#define PREFETCH_ROWS 4

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

/* acc[r] += row r's products with group g of one row of W (q values qw,
 * scales sw). */
static inline __attribute__((always_inline)) void
step(__m256 *acc, const int8_t *const *qa, const float *const *sa,
     const int8_t *qw, const float *sw, int64_t g, int rows,
     int64_t prefetch) {
    const __m256i ones = _mm256_set1_epi16(1);
    /* W streams from memory once, and the hardware prefetchers lose it
     * at page boundaries: ask for what comes `prefetch` bytes on */
    _mm_prefetch((const char *)(qw + g * 32 + prefetch), _MM_HINT_T0);
    const __m256i wv =
        _mm256_loadu_si256((const __m256i *)(const void *)(qw + g * 32));
    const __m256i wabs = _mm256_abs_epi8(wv);
    for (int r = 0; r < rows; r++) {
        const __m256i av =
            _mm256_loadu_si256((const __m256i *)(const void *)(qa[r] + g * 32));
        const __m256i pairs =
            _mm256_maddubs_epi16(wabs, _mm256_sign_epi8(av, wv));
        const __m256 sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
        acc[r] = _mm256_fmadd_ps(sums, _mm256_set1_ps(sa[r][g] * sw[g]),
                                 acc[r]);
    }
}

/* C[i0 + r][j] for r < rows (rows <= TILE_ROWS, a constant once inlined,
 * so the loops unroll). Two accumulators per row (even and odd groups)
 * hide the latency of the FMAs. */
static inline __attribute__((always_inline)) void
tile(float *c, int64_t ldc, const void *prepared, const tlmi_weights *w,
     const float *bias, int64_t m, int64_t i0, int64_t j, int rows) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    /* (0 near the end of W: no address past it, not even for a hint) */
    const int64_t prefetch =
        j + PREFETCH_ROWS < w->rows ? PREFETCH_ROWS * groups * 32 : 0;
    const int8_t *qa[TILE_ROWS];
    const float *sa[TILE_ROWS];
    __m256 even[TILE_ROWS], odd[TILE_ROWS];
    for (int r = 0; r < rows; r++) {
        qa[r] = tlmi_q8_prepared_row(prepared, k, i0 + r);
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        even[r] = odd[r] = _mm256_setzero_ps();
    }
    const int8_t *qw = tlmi_q8_row(w, j);
    const float *sw = tlmi_q8_scales(w, j);
    int64_t g = 0;
    for (; g + 2 <= groups; g += 2) {
        step(even, qa, sa, qw, sw, g, rows, prefetch);
        step(odd, qa, sa, qw, sw, g + 1, rows, prefetch);
    }
    if (g < groups)
        step(even, qa, sa, qw, sw, g, rows, prefetch);
    for (int r = 0; r < rows; r++) {
        const float sum = hsum(_mm256_add_ps(even[r], odd[r]));
        c[(i0 + r) * ldc + j] = bias != NULL ? sum + bias[j] : sum;
    }
}

void tlmi_weights_int8_dequantize_rows_avx2(float *out, const tlmi_weights *w,
                                            int64_t row_begin,
                                            int64_t row_end) {
    const int64_t cols = w->cols, full = cols / 32;
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *q = tlmi_q8_row(w, r);
        const float *scale = tlmi_q8_scales(w, r);
        float *dst = out + (r - row_begin) * cols;
        for (int64_t g = 0; g < full; g++) {
            const __m256 s = _mm256_set1_ps(scale[g]);
            for (int part = 0; part < 4; part++) {
                const __m128i bytes = _mm_loadl_epi64(
                    (const __m128i *)(const void *)(q + g * 32 + part * 8));
                const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
                _mm256_storeu_ps(dst + g * 32 + part * 8, _mm256_mul_ps(v, s));
            }
        }
        for (int64_t c = full * 32; c < cols; c++) /* exactly as scalar */
            dst[c] = (float)q[c] * scale[c / 32];
    }
}

void tlmi_weights_int8_dequantize_block_avx2(float *out, int64_t ld,
                                             const tlmi_weights *w,
                                             int64_t row_begin,
                                             int64_t row_end,
                                             int64_t col_begin,
                                             int64_t col_end) {
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *q = tlmi_q8_row(w, r);
        const float *scale = tlmi_q8_scales(w, r);
        float *dst = out + (r - row_begin) * ld - col_begin;
        int64_t c = col_begin;
        for (; c < col_end && c % 8 != 0; c++) /* exactly as scalar */
            dst[c] = (float)q[c] * scale[c / 32];
        /* 8 at a time from a multiple of 8: all in one group of 32 */
        for (; c + 8 <= col_end; c += 8) {
            const __m128i bytes =
                _mm_loadl_epi64((const __m128i *)(const void *)(q + c));
            const __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(bytes));
            _mm256_storeu_ps(dst + c,
                             _mm256_mul_ps(v, _mm256_set1_ps(scale[c / 32])));
        }
        for (; c < col_end; c++)
            dst[c] = (float)q[c] * scale[c / 32];
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

const tlmi_weight_kernels tlmi_weights_int8_avx2 = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_AVX2,
    .name = "avx2",
    .features = 0, /* AVX2 + FMA: the table's own */
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 8, /* measured: see docs/performance.md */
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_avx2,
    .dequantize_block = tlmi_weights_int8_dequantize_block_avx2,
};
