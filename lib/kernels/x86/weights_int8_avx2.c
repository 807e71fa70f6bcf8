/*
 * Products with int8 weights on AVX2 (kernels/weights.h): one group of 32
 * weights is one ymm register.
 *
 * Integer dot product of a group without VNNI: vpmaddubsw multiplies
 * unsigned by signed bytes, so the sign moves to the activations
 * ("sign trick"): |w| (vpabsb) times a * sign(w) (vpsignb), pairs added
 * into int16 (at most 2 * 127 * 127 = 32258: never saturates, since
 * neither side holds -128), then vpmaddwd with ones adds pairs into 8
 * int32 lanes (exact: at most 32 * 127 * 127 per group).
 *
 * Per-group scale work, once per 8 groups: the 8 vectors of a block of 8
 * groups (256 weights) are reduced to one vector of the 8 group sums in
 * group order (unpack/add tree, 21 instructions), converted once,
 * multiplied by the 8 activation scales and FMA'd with the 8 weight
 * scales (plain vector loads: consecutive groups' scales are
 * consecutive) into one accumulator per row, whose 8 lanes are added at
 * the end of the row. (Before: a conversion, a broadcast of the scales'
 * product and an FMA per group and row.)
 *
 * Register tile: up to 4 rows of A and one column of C (one row of W) at
 * a time, each W group loaded (and its |w| taken) once for all rows; the row of W sits in L1
 * while the row blocks go by, so W streams from memory once per product,
 * as one sequential stream (two rows of W at once measured 40% slower
 * from memory on Zen 4). Each C[i][j] gets the same operations whatever tile or
 * range holds it.
 */
#include <immintrin.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4
/* Groups per block: 8 ymm vectors of W. */
#define BLOCK_GROUPS 8
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

/* Lanes [a0+a2, b0+b2, a1+a3, b1+b3] of each 128-bit half. */
static inline __m256i add_pairs32(__m256i a, __m256i b) {
    return _mm256_add_epi32(_mm256_unpacklo_epi32(a, b),
                            _mm256_unpackhi_epi32(a, b));
}

/* Lanes [s0+s2, s1+s3, t0+t2, t1+t3] of each 128-bit half. */
static inline __m256i add_pairs64(__m256i s, __m256i t) {
    return _mm256_add_epi32(_mm256_unpacklo_epi64(s, t),
                            _mm256_unpackhi_epi64(s, t));
}

/* The 8 group sums of a block from its 8 vectors (v[i]: group i's 8
 * lanes), in group order. */
static inline __m256i group_sums(const __m256i *v) {
    /* half H of q0: the sums over half H of v0..v3; q1: of v4..v7 */
    const __m256i q0 = add_pairs64(add_pairs32(v[0], v[1]),
                                   add_pairs32(v[2], v[3]));
    const __m256i q1 = add_pairs64(add_pairs32(v[4], v[5]),
                                   add_pairs32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(q0, q1, 0x20),
                            _mm256_permute2x128_si256(q0, q1, 0x31));
}

/* acc[r] += row r's products with the groups [g, g + valid) of one row
 * of W (q values qw, scales sw), valid <= 8 (a constant 8 once inlined
 * for the full blocks; fewer: zero vectors and scales past them, nothing
 * past them read). */
static inline __attribute__((always_inline)) void
block(__m256 *acc, const int8_t *const *qa, const float *const *sa,
      const int8_t *qw, const float *sw, int64_t g, int valid, int rows,
      int64_t prefetch) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i wv[BLOCK_GROUPS], wabs[BLOCK_GROUPS];
    for (int v = 0; v < BLOCK_GROUPS; v++) {
        if (v >= valid) {
            wv[v] = wabs[v] = _mm256_setzero_si256();
            continue;
        }
        /* W streams from memory once, and the hardware prefetchers lose
         * it at page boundaries: ask for what comes `prefetch` bytes on
         * (one hint per 64-byte line) */
        if (v % 2 == 0)
            _mm_prefetch((const char *)(qw + (g + v) * 32 + prefetch),
                         _MM_HINT_T0);
        wv[v] = _mm256_loadu_si256(
            (const __m256i *)(const void *)(qw + (g + v) * 32));
        wabs[v] = _mm256_abs_epi8(wv[v]);
    }
    const __m256i mask = _mm256_cmpgt_epi32(
        _mm256_set1_epi32(valid), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    const __m256 swv = valid == BLOCK_GROUPS ? _mm256_loadu_ps(sw + g)
                                             : _mm256_maskload_ps(sw + g, mask);
    for (int r = 0; r < rows; r++) {
        __m256i sums[BLOCK_GROUPS];
        for (int v = 0; v < BLOCK_GROUPS; v++) {
            if (v >= valid) {
                sums[v] = _mm256_setzero_si256();
                continue;
            }
            const __m256i av = _mm256_loadu_si256(
                (const __m256i *)(const void *)(qa[r] + (g + v) * 32));
            const __m256i pairs =
                _mm256_maddubs_epi16(wabs[v], _mm256_sign_epi8(av, wv[v]));
            sums[v] = _mm256_madd_epi16(pairs, ones);
        }
        const __m256 sav = valid == BLOCK_GROUPS
                               ? _mm256_loadu_ps(sa[r] + g)
                               : _mm256_maskload_ps(sa[r] + g, mask);
        acc[r] = _mm256_fmadd_ps(
            _mm256_mul_ps(_mm256_cvtepi32_ps(group_sums(sums)), sav), swv,
            acc[r]);
    }
}

/* C[i0 + r][j] for r < rows (rows <= TILE_ROWS, a constant once inlined,
 * so the loops unroll). */
static inline __attribute__((always_inline)) void
tile(float *c, int64_t ldc, const void *prepared, const tlmi_weights *w,
     const float *bias, int64_t m, int64_t i0, int64_t j, int rows) {
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    /* (0 near the end of W: no address past it, not even for a hint) */
    const int64_t prefetch =
        j + PREFETCH_ROWS < w->rows ? PREFETCH_ROWS * groups * 32 : 0;
    const int8_t *qa[TILE_ROWS];
    const float *sa[TILE_ROWS];
    __m256 acc[TILE_ROWS];
    for (int r = 0; r < rows; r++) {
        qa[r] = tlmi_q8_prepared_row(prepared, k, i0 + r);
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        acc[r] = _mm256_setzero_ps();
    }
    const int8_t *qw = tlmi_q8_row(w, j);
    const float *sw = tlmi_q8_scales(w, j);
    int64_t g = 0;
    for (; g + BLOCK_GROUPS <= groups; g += BLOCK_GROUPS)
        block(acc, qa, sa, qw, sw, g, BLOCK_GROUPS, rows, prefetch);
    if (g < groups)
        block(acc, qa, sa, qw, sw, g, (int)(groups - g), rows, prefetch);
    for (int r = 0; r < rows; r++) {
        const float sum = hsum(acc[r]);
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

void tlmi_weights_int8_product_cols_avx2(float *c, int64_t ldc,
                                         const void *prepared, const float *a,
                                         const tlmi_weights *w,
                                         const float *bias, int64_t m,
                                         int64_t j_begin, int64_t j_end) {
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
    .product_cols = tlmi_weights_int8_product_cols_avx2,
    .direct_max_m = 8, /* measured: see docs/performance.md */
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_avx2,
    .dequantize_block = tlmi_weights_int8_dequantize_block_avx2,
};
