/*
 * Products with int8 weights on AVX-512 VNNI (kernels/weights.h): two
 * groups of 32 weights per zmm register, sixteen groups per block.
 *
 * vpdpbusd multiplies unsigned by signed bytes and adds each 4 products
 * into an int32 lane. The weights are made unsigned, w + 128 (one xor
 * with 0x80 per W vector, shared by every row of A), and the activations
 * stay signed (qa, -127..127): (w + 128) . qa = w . qa + 128 sum(qa).
 * The correction 128 sum(qa) of a group depends on A alone, so prepare
 * computes it once per product (one int32 per group, appended to the
 * prepared activations) and it is subtracted from the group's sum: w . qa
 * exactly, as in every int8 variant.
 *
 * Per-group scale work, once per 16 groups: the 8 vectors of a block of
 * 16 groups (512 weights) are reduced to one vector of 16 int32 group
 * sums (unpack/add tree, 22 instructions), corrected, converted once,
 * multiplied by the 16 activation scales and FMA'd with the 16 weight
 * scales (both plain vector loads: the scales of consecutive groups are
 * consecutive) into one accumulator per row, whose 16 lanes are added at
 * the end of the row. (Before: per pair of groups a conversion, two
 * scale broadcasts by permutation, a multiply and an FMA per row, and a
 * correction vpdpbusd per W vector.)
 *
 * m = 1 (decoding) runs the AVX2 product instead (vpmaddubsw, 8 groups
 * a block; the prepared activations are its layout plus the
 * corrections): on Zen 4, decoding the 110M Llama shape with int8
 * weights, one thread (least CPU time per token, alternating runs on the
 * loaded machine), it measured 173-191 tokens/s, this product's
 * pre-block version 164-178 (the same within the noise), a 256-bit
 * vpdpbusd version of the AVX2 blocks 170-175, and the blocks below about
 * 120, although they are 1.4-1.7x faster on cached weights: while W
 * streams from memory the AVX2 product keeps the read stream fuller; why,
 * we have not found (docs/performance.md, "After #19").
 *
 * Register tile: up to 4 rows of A and one column of C (one row of W) at
 * a time, each W vector loaded (and made unsigned) once for all rows, the
 * row blocks inside the loop over W's rows (W streams from memory once,
 * as one sequential stream: reading two rows of W at once measured 40%
 * slower from memory on Zen 4). Each C[i][j] gets the same operations
 * whatever tile or range holds it.
 */
#include <immintrin.h>

#include "kernels/scalar/weights.h"

#define TILE_ROWS 4
/* Groups per block: 8 zmm vectors of W. */
#define BLOCK_GROUPS 16
/* Software prefetch distance: this many rows of W ahead. */
#define PREFETCH_ROWS 4

/* The prepared activations (kernels/scalar/weights.h's signed layout),
 * then int32 correction[m][groups] = 128 * (the sum of the group's qa):
 * a group's vpdpbusd sums minus it are the group's w . qa. */
static size_t prepare_bytes(int64_t m, int64_t k) {
    return tlmi_q8_prepare_bytes(m, k) +
           (size_t)m * (size_t)tlmi_q8_groups(k) * sizeof(int32_t);
}

static const int32_t *correction_of(const void *prepared, int64_t m,
                                    int64_t k) {
    return (const int32_t *)(const void *)((const char *)prepared +
                                           tlmi_q8_prepare_bytes(m, k));
}

static void prepare(void *prepared, const float *a, int64_t m, int64_t k) {
    tlmi_q8_prepare_offset(prepared, a, m, k, 0);
    const int64_t groups = tlmi_q8_groups(k);
    int32_t *correction = (int32_t *)(void *)((char *)prepared +
                                              tlmi_q8_prepare_bytes(m, k));
    for (int64_t i = 0; i < m; i++) {
        const int8_t *qa = tlmi_q8_prepared_row(prepared, k, i);
        for (int64_t g = 0; g < groups; g++) {
            int32_t sum = 0;
            for (int t = 0; t < TLMI_Q8_GROUP; t++)
                sum += qa[g * TLMI_Q8_GROUP + t];
            correction[i * groups + g] = 128 * sum;
        }
    }
}

/* The first `n` of 64 bytes (n may be <= 0 or >= 64). */
static inline __mmask64 byte_mask(int64_t n) {
    return n >= 64 ? ~(__mmask64)0
                   : n <= 0 ? 0 : (((__mmask64)1 << n) - 1);
}

/* The first `n` of 16 lanes. */
static inline __mmask16 lane_mask(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff
                   : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
}

/* Lanes [a0+a2, b0+b2, a1+a3, b1+b3] of each 128-bit part. */
static inline __m512i add_pairs32(__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b),
                            _mm512_unpackhi_epi32(a, b));
}

/* Lanes [s0+s2, s1+s3, t0+t2, t1+t3] of each 128-bit part. */
static inline __m512i add_pairs64(__m512i s, __m512i t) {
    return _mm512_add_epi32(_mm512_unpacklo_epi64(s, t),
                            _mm512_unpackhi_epi64(s, t));
}

/* The group sums of a block from its `vectors` vectors (8, or 4 for a
 * block of at most 8 groups; v[i]: lanes 0-7 group 2i, 8-15 group
 * 2i + 1), in group order (lanes past 8 groups, for 4 vectors: copies of
 * the first 8). */
static inline __attribute__((always_inline)) __m512i
group_sums(const __m512i *v, int vectors) {
    /* part L of q0: the sums over part L of v0..v3; q1: of v4..v7 */
    const __m512i q0 = add_pairs64(add_pairs32(v[0], v[1]),
                                   add_pairs32(v[2], v[3]));
    const __m512i q1 = vectors == 8 ? add_pairs64(add_pairs32(v[4], v[5]),
                                                  add_pairs32(v[6], v[7]))
                                    : q0;
    /* parts 0 + 1 (even groups) and 2 + 3 (odd groups): groups
     * 0 2 4 6 | 1 3 5 7 | 8 10 12 14 | 9 11 13 15 */
    const __m512i sums = _mm512_add_epi32(
        _mm512_shuffle_i32x4(q0, q1, _MM_SHUFFLE(2, 0, 2, 0)),
        _mm512_shuffle_i32x4(q0, q1, _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512i order = _mm512_set_epi32(15, 11, 14, 10, 13, 9, 12, 8,
                                           7, 3, 6, 2, 5, 1, 4, 0);
    return _mm512_permutexvar_epi32(order, sums);
}

/* acc[r] += row r's products with the groups [g, g + valid) of one row
 * of W (q values qw, scales sw), valid <= 16, in `vectors` vectors (8;
 * 4 when valid <= 8). Full blocks inline with constants (plain loads);
 * the last one masks its loads (zeros past the groups: their scales are
 * loaded as 0 too, so nothing past them is ever read or added). */
static inline __attribute__((always_inline)) void
block(__m512 *acc, const int8_t *const *qa, const int32_t *const *correction,
      const float *const *sa, const int8_t *qw, const float *sw, int64_t g,
      int64_t valid, int vectors, int rows, int64_t prefetch) {
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const int64_t bytes = valid * TLMI_Q8_GROUP;
    __m512i wu[8];
    for (int v = 0; v < vectors; v++) {
        /* W streams from memory once, and the hardware prefetchers lose
         * it at page boundaries: ask for what comes `prefetch` bytes on */
        if (64 * v < bytes)
            _mm_prefetch((const char *)(qw + g * 32 + 64 * v + prefetch),
                         _MM_HINT_T0);
        wu[v] = _mm512_xor_si512(
            _mm512_maskz_loadu_epi8(byte_mask(bytes - 64 * v),
                                    qw + g * 32 + 64 * v),
            bias);
    }
    const __mmask16 groups_mask = lane_mask(valid);
    const __m512 swv = _mm512_maskz_loadu_ps(groups_mask, sw + g);
    for (int r = 0; r < rows; r++) {
        __m512i dots[8];
        for (int v = 0; v < vectors; v++)
            dots[v] = _mm512_dpbusd_epi32(
                _mm512_setzero_si512(), wu[v],
                _mm512_maskz_loadu_epi8(byte_mask(bytes - 64 * v),
                                        qa[r] + g * 32 + 64 * v));
        const __m512i exact = _mm512_sub_epi32(
            group_sums(dots, vectors),
            _mm512_maskz_loadu_epi32(groups_mask, correction[r] + g));
        const __m512 sav = _mm512_maskz_loadu_ps(groups_mask, sa[r] + g);
        acc[r] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(exact), sav),
                                 swv, acc[r]);
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
    const int32_t *correction[TILE_ROWS];
    const float *sa[TILE_ROWS];
    __m512 acc[TILE_ROWS];
    const int32_t *correction_all = correction_of(prepared, m, k);
    for (int r = 0; r < rows; r++) {
        qa[r] = tlmi_q8_prepared_row(prepared, k, i0 + r);
        correction[r] = correction_all + (i0 + r) * groups;
        sa[r] = tlmi_q8_prepared_scales(prepared, m, k, i0 + r);
        acc[r] = _mm512_setzero_ps();
    }
    const int8_t *qw = tlmi_q8_row(w, j);
    const float *sw = tlmi_q8_scales(w, j);
    int64_t g = 0;
    for (; g + BLOCK_GROUPS <= groups; g += BLOCK_GROUPS)
        block(acc, qa, correction, sa, qw, sw, g, BLOCK_GROUPS, 8, rows,
              prefetch);
    if (g + 8 < groups)
        block(acc, qa, correction, sa, qw, sw, g, groups - g, 8, rows,
              prefetch);
    else if (g < groups)
        block(acc, qa, correction, sa, qw, sw, g, groups - g, 4, rows,
              prefetch);
    for (int r = 0; r < rows; r++) {
        const float sum = _mm512_reduce_add_ps(acc[r]);
        c[(i0 + r) * ldc + j] = bias != NULL ? sum + bias[j] : sum;
    }
}
static void product_cols(float *c, int64_t ldc, const void *prepared,
                         const float *a, const tlmi_weights *w,
                         const float *bias, int64_t m, int64_t j_begin,
                         int64_t j_end) {
    if (m == 1) { /* see the top of this file */
        tlmi_weights_int8_product_cols_avx2(c, ldc, prepared, a, w, bias, m,
                                            j_begin, j_end);
        return;
    }
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
    .prepare_bytes = prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 64, /* measured: see docs/performance.md */
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_avx2,
    .dequantize_block = dequantize_block,
};
