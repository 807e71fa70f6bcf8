/*
 * The SIMD variants of the products with bf16 weights (weights.h), and
 * the vectorised conversions between float32 and bf16 rows they are built
 * on (reusable by anything that converts whole rows: bf16 training, file
 * readers).
 *
 * Two kinds of variant:
 *   - widen and FMA ("avx2", "avx512", "neon"; kernels/weights_bf16_tmpl.c):
 *     each bf16 weight becomes the float32 it stands for (its 16 bits
 *     moved to the top of a 32-bit lane, exact) and meets A in float32 in
 *     a fused multiply-add. Against the scalar variant only the order of
 *     the float32 summation differs.
 *   - bf16 dot products ("avx512-bf16": vdpbf16ps; "neon-bf16": BFDOT):
 *     the instruction multiplies pairs of bf16 and adds them to float32
 *     lanes, so A must be bf16 too. `prepare` splits it in two parts,
 *     uint16_t hi[m][k] = bf16(a), then lo[m][k] = bf16(a - hi) (both
 *     nearest even, as tlmi_float_to_bf16; a - hi is exact in float32),
 *     and each load of W meets both (two instructions, W read once).
 *     hi + lo is within 2^-16 of a relative (hi alone: 2^-8, which moved
 *     a 110M model's perplexity by 0.04%, docs/quantization.md). The
 *     products of two bf16 are exact in float32, so against the scalar
 *     variant: that 2^-16, the float32 summation in another order, and
 *     the instruction's rounding (vdpbf16ps: nearest even; BFDOT without
 *     FEAT_EBF16: to odd; both flush denormal inputs and results, so a lo
 *     below 2^-126 counts as zero).
 */
/* Bytes of the prepared A of the dot-product variants: hi, then lo. */
#define TLMI_BF16_HI_LO_BYTES(m, k) (2 * (size_t)(m) * (size_t)(k) * 2)
#ifndef TLM_LIB_KERNELS_WEIGHTS_BF16_H
#define TLM_LIB_KERNELS_WEIGHTS_BF16_H

#include <stdint.h>

#include "kernels/weights.h"

/* Declares one ISA's conversions, bitwise what tlmi_float_to_bf16 and
 * tlmi_bf16_to_float (base/half.h) give element by element (nearest even,
 * denormals kept, NaNs quiet):
 *   tlmi_bf16_from_float_<isa>: dst[i] = bf16(src[i]) for i < n,
 *   tlmi_bf16_to_float_<isa>:   dst[i] = float(src[i]) for i < n. */
#define TLMI_BF16_ROWS_DECLARE(isa)                                        \
    void tlmi_bf16_from_float_##isa(uint16_t *dst, const float *src,       \
                                    int64_t n);                            \
    void tlmi_bf16_to_float_##isa(float *dst, const uint16_t *src,         \
                                  int64_t n)

#if defined(TLMI_HAVE_AVX2)
TLMI_BF16_ROWS_DECLARE(avx2);
extern const tlmi_weight_kernels tlmi_weights_bf16_avx2;
#endif
/* (The BF16 variants' files, compiled with only their own TLMI_HAVE_*,
 * use the rows of the ISA below them.) */
#if defined(TLMI_HAVE_AVX512) || defined(TLMI_HAVE_AVX512_BF16)
TLMI_BF16_ROWS_DECLARE(avx512);
#endif
#if defined(TLMI_HAVE_AVX512)
extern const tlmi_weight_kernels tlmi_weights_bf16_avx512;
#endif
#if defined(TLMI_HAVE_AVX512_BF16)
extern const tlmi_weight_kernels tlmi_weights_bf16_avx512bf16;
#endif
#if defined(TLMI_HAVE_NEON) || defined(TLMI_HAVE_NEON_BF16)
TLMI_BF16_ROWS_DECLARE(neon);
#endif
#if defined(TLMI_HAVE_NEON)
extern const tlmi_weight_kernels tlmi_weights_bf16_neon;
#endif
#if defined(TLMI_HAVE_NEON_BF16)
extern const tlmi_weight_kernels tlmi_weights_bf16_neonbf16;
#endif

#endif
