/*
 * The scalar variants of the products with quantized weights (the
 * references every SIMD variant is tested against), and the activation
 * quantization every int8 variant shares (kernels/weights.h).
 *
 * Prepared activations of the int8 variants, for A [m, k] with groups =
 * ceil(k / 32):
 *   int8_t qa[m][groups * 32] (q past k zero; uint8_t qa + 128 with
 *   offset 128, for a variant whose instruction wants unsigned
 *   activations), then float scale[m][groups] at byte offset
 *   m * groups * 32. A variant may append data of its own after these
 *   (its prepare_bytes says how much; avx512-vnni: per-group sums).
 * A[i][p] ~ qa[i][p] * scale[i][p / 32]; a group holding a NaN or an
 * infinity has qa = 0 and scale NaN.
 */
#ifndef TLM_LIB_KERNELS_SCALAR_WEIGHTS_H
#define TLM_LIB_KERNELS_SCALAR_WEIGHTS_H

#include <stddef.h>
#include <stdint.h>

#include "kernels/weights.h"

/* Bytes of prepared int8 activations for A [m, k] (either form). */
size_t tlmi_q8_prepare_bytes(int64_t m, int64_t k);

/* Quantizes A [m, k] per group of 32 into the layout above: signed
 * (offset 0) or unsigned (offset 128). Every int8 variant's prepare
 * computes exactly these values. */
void tlmi_q8_prepare_offset(void *prepared, const float *a, int64_t m,
                            int64_t k, int offset);

/* Row i's quantized activations and scales in prepared data. */
static inline const int8_t *tlmi_q8_prepared_row(const void *prepared,
                                                 int64_t k, int64_t i) {
    return (const int8_t *)prepared + i * tlmi_q8_groups(k) * TLMI_Q8_GROUP;
}
static inline const float *tlmi_q8_prepared_scales(const void *prepared,
                                                   int64_t m, int64_t k,
                                                   int64_t i) {
    const int64_t groups = tlmi_q8_groups(k);
    return (const float *)(const void *)((const char *)prepared +
                                         m * groups * TLMI_Q8_GROUP) +
           i * groups;
}

/* Dequantizes rows [row_begin, row_end) of an int8 or bf16 matrix (the
 * dequantize_rows of the scalar variants; tlmi_weights_dequantize_rows). */
void tlmi_weights_int8_dequantize_rows_scalar(float *out,
                                              const tlmi_weights *w,
                                              int64_t row_begin,
                                              int64_t row_end);
void tlmi_weights_bf16_dequantize_rows_scalar(float *out,
                                              const tlmi_weights *w,
                                              int64_t row_begin,
                                              int64_t row_end);

/* The references: int8 sums each group's products in int32 and the group
 * sums, times a_scale * w_scale, in float32 in group order; bf16 sums the
 * float32 products in order of p. Both then add the bias. */
extern const tlmi_weight_kernels tlmi_weights_int8_scalar;
extern const tlmi_weight_kernels tlmi_weights_bf16_scalar;

#endif
