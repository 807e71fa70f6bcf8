/*
 * Products with quantized weights (issue #19): the layouts of the compact
 * weight formats, their reference quantization, and the variants
 * (implementations, one per format and instruction set) of the products
 * C = A . W^T with such weights, chosen at run time like the float32
 * kernels of dispatch.h. The driver that runs them over a thread pool is
 * weights_parallel.h.
 *
 * Formats (the values of enum tlm_weight_format in tlm.h). W is [rows,
 * cols] = [out features, in features], row-major:
 *   bf16: uint16_t [rows][cols], the top 16 bits of a float32, rounded to
 *         nearest even from float32.
 *   int8: int8_t q[rows][groups * 32], groups = ceil(cols / 32), q past
 *         cols zero, values in -127..127; then float scale[rows][groups]
 *         at byte offset rows * groups * 32:
 *         W[r][c] = q[r][c] * scale[r][c / 32].
 *   Groups of 32 (not 64): 32 int8 values fill one AVX2 register (and two
 *   NEON ones), so a group's integer dot product is one register step on
 *   every ISA; a smaller group follows the weights' range more closely
 *   (the scale costs 4 bytes per 32, 1.125 bytes per weight in all).
 *
 * int8 products quantize the activations too, per row and group of 32
 * ("prepare", once per product): a_scale = max|a| / 127, qa =
 * nearest-even(a * (127 / max|a|)); a group holding a NaN or an infinity
 * gets qa = 0 and a NaN scale, so its row's results are NaN. Each group's
 * dot product is then exact in int32 (at most 32 * 127 * 127), and the
 * variants of a format differ only in the float32 summation of the group
 * sums (scaled by a_scale * w_scale). Larger products (m >
 * direct_max_m) do not quantize A: the driver runs the float32 GEMM on
 * W dequantized into its packed panels (dequantize_block; or on blocks
 * of W rows dequantized to float32), which is faster there and more
 * accurate.
 *
 * Choice: tlmi_weight_kernels_all lists each format's variants best
 * first, and tlmi_weight_kernels_choose takes the first one that fits (a
 * variant fits a table when the features of the variant's ISA are
 * all among those of the table's ISA: the AVX2 variant serves an AVX-512
 * table that has no better variant the CPU can run).
 */
#ifndef TLM_LIB_KERNELS_WEIGHTS_H
#define TLM_LIB_KERNELS_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/dispatch.h"
#include "tlm.h"

#define TLMI_Q8_GROUP 32

/* W [rows, cols] (out features, in features) in a compact format (the
 * layouts above). */
typedef struct tlmi_weights {
    int32_t format;       /* TLM_WEIGHTS_BF16 or TLM_WEIGHTS_INT8 */
    int64_t rows, cols;
    const void *data;
} tlmi_weights;

/* Groups of 32 in a row of `cols` int8 weights. */
static inline int64_t tlmi_q8_groups(int64_t cols) {
    return (cols + TLMI_Q8_GROUP - 1) / TLMI_Q8_GROUP;
}

/* Row r of an int8 matrix's q values (groups * 32 bytes). */
static inline const int8_t *tlmi_q8_row(const tlmi_weights *w, int64_t r) {
    return (const int8_t *)w->data + r * tlmi_q8_groups(w->cols) * TLMI_Q8_GROUP;
}

/* Row r of an int8 matrix's scales (groups floats). */
static inline const float *tlmi_q8_scales(const tlmi_weights *w, int64_t r) {
    const int64_t groups = tlmi_q8_groups(w->cols);
    return (const float *)(const void *)((const char *)w->data +
                                         w->rows * groups * TLMI_Q8_GROUP) +
           r * groups;
}

/* Bytes of a [rows, cols] matrix in `format` (float32 too), or SIZE_MAX
 * when that overflows or the format or a size is invalid (negative). */
size_t tlmi_weights_bytes(int32_t format, int64_t rows, int64_t cols);

/* float32 [rows, cols] -> the format's layout (reference rounding: bf16
 * nearest-even; int8 scale = max|w| / 127, q = nearest-even(w / scale)).
 * Returns 0, or -1 with *bad_row set to a row holding a NaN or an
 * infinity (or, for bf16, a value beyond bf16's range, which would round
 * to an infinity); dst is then partly written. */
int tlmi_weights_quantize(void *dst, const float *src, int32_t format,
                          int64_t rows, int64_t cols, int64_t *bad_row);

/* Rows [row_begin, row_end) as float32 into out [row_end - row_begin,
 * cols]: exactly q * scale (int8), or the bf16 value widened. */
void tlmi_weights_dequantize_rows(float *out, const tlmi_weights *w,
                                  int64_t row_begin, int64_t row_end);

/* Checks a buffer read from a file: int8 scales finite and >= 0, no q of
 * -128, zero padding past cols; bf16 values finite. Returns 0, or -1 with
 * *bad_row (the first bad row) and a static reason string ("scale is NaN
 * or infinite", ...). An unknown format is -1 with *bad_row = -1. */
int tlmi_weights_validate(const tlmi_weights *w, int64_t *bad_row,
                          const char **reason);

/* One implementation (variant) of the products with one format's
 * weights. */
typedef struct tlmi_weight_kernels {
    int32_t format;     /* TLM_WEIGHTS_BF16 or TLM_WEIGHTS_INT8 */
    int isa;            /* the enum tlmi_isa whose table it goes with */
    const char *name;   /* "scalar", "avx2", "avx512-vnni", "avx512-bf16",
                           "neon", "neon-dotprod", ... (benchmarks print it) */
    uint32_t features;  /* CPU features it needs (enum tlm_cpu_feature) */
    /* A [m, k] float32 converted once per product into `prepared` (int8:
     * activations quantized per group of 32; bf16: may be a copy or
     * nothing); bytes 0 = prepared is A (prepare is then never called). */
    size_t (*prepare_bytes)(int64_t m, int64_t k);
    void (*prepare)(void *prepared, const float *a, int64_t m, int64_t k);
    /* C[i][j] = sum_p A[i][p] * W[j][p] (+ bias[j]) for i < m and j in
     * [j_begin, j_end), C row stride ldc; A as prepared (and as given, a
     * [m, W.cols]). Each C[i][j] is the same bits whatever the range that
     * holds j (so any split of the columns over threads gives the same
     * result). Used for m <= direct_max_m. */
    void (*product_cols)(float *c, int64_t ldc, const void *prepared,
                         const float *a, const tlmi_weights *w,
                         const float *bias, int64_t m, int64_t j_begin,
                         int64_t j_end);
    int64_t direct_max_m;   /* above: the driver runs the float32 GEMM
                               of the context's table on W dequantized
                               (see dequantize_block) */
    void (*dequantize_rows)(float *out, const tlmi_weights *w,
                            int64_t row_begin, int64_t row_end);
    /* Optional (NULL: the driver uses dequantize_rows as above): W[r][c]
     * for r in [row_begin, row_end), c in [col_begin, col_end) into
     * out[(r - row_begin) * ld + c - col_begin], the bits dequantize_rows
     * gives. With it, above direct_max_m the driver packs W straight into
     * the float32 GEMM's B panels (tlmi_gemm_blocked_from), one small
     * block at a time, and no float32 copy of W exists. */
    void (*dequantize_block)(float *out, int64_t ld, const tlmi_weights *w,
                             int64_t row_begin, int64_t row_end,
                             int64_t col_begin, int64_t col_end);
} tlmi_weight_kernels;

/* Every variant compiled into this build that this CPU can run,
 * NULL-terminated, each format's best first (tests, benchmarks). */
const tlmi_weight_kernels *const *tlmi_weight_kernels_all(void);

/* The best variant of `format` for a context whose float32 table is
 * `kernels`, among those whose ISA's features are all among the table's
 * ISA's (the table's own, AVX2 under AVX-512, scalar) and whose features
 * are all in `features` (detected & the experimental mask, as the context
 * saw them at creation). Never NULL: the scalar variant, also for an
 * unknown format (whose products then must not be asked for). */
const tlmi_weight_kernels *tlmi_weight_kernels_choose(
    const tlmi_kernels *kernels, int32_t format, uint32_t features);

/* The variants of each ISA (scalar ones: kernels/scalar/weights.h); bf16
 * SIMD variants are declared the same way. */
#if defined(TLMI_HAVE_AVX2)
extern const tlmi_weight_kernels tlmi_weights_int8_avx2;
#endif
#if defined(TLMI_HAVE_AVX2) || defined(TLMI_HAVE_AVX512_VNNI)
/* The AVX2 dequantization, bit for bit the scalar one (every x86 int8
 * variant's; the VNNI table is built only where AVX2's is). */
void tlmi_weights_int8_dequantize_rows_avx2(float *out, const tlmi_weights *w,
                                            int64_t row_begin,
                                            int64_t row_end);
/* The AVX2 product_cols on signed prepared activations (the layout of
 * kernels/scalar/weights.h, offset 0; data a variant appends after it is
 * ignored): the avx512-vnni variant's for m = 1 (see there). */
void tlmi_weights_int8_product_cols_avx2(float *c, int64_t ldc,
                                         const void *prepared, const float *a,
                                         const tlmi_weights *w,
                                         const float *bias, int64_t m,
                                         int64_t j_begin, int64_t j_end);
void tlmi_weights_int8_dequantize_block_avx2(float *out, int64_t ld,
                                             const tlmi_weights *w,
                                             int64_t row_begin,
                                             int64_t row_end,
                                             int64_t col_begin,
                                             int64_t col_end);
#endif
#if defined(TLMI_HAVE_AVX512_VNNI)
extern const tlmi_weight_kernels tlmi_weights_int8_avx512_vnni;
#endif
#if defined(TLMI_HAVE_NEON)
extern const tlmi_weight_kernels tlmi_weights_int8_neon;
#endif
#if defined(TLMI_HAVE_NEON_DOTPROD)
extern const tlmi_weight_kernels tlmi_weights_int8_neon_dotprod;
#endif

#endif
