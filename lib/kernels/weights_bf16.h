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
 *     `prepare` rounds A to bf16 (nearest even, as tlmi_float_to_bf16) and
 *     the instruction multiplies pairs of bf16 and adds them to float32
 *     lanes. The products of two bf16 are exact in float32, so the error
 *     against the scalar variant is A's rounding (2^-9 relative per term)
 *     plus the summation (and, for these instructions, denormal inputs
 *     and results flushed to zero).
 */
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
