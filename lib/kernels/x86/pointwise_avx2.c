/*
 * The pointwise kernels (kernels/pointwise.h) on AVX2: the generic code
 * of kernels/pointwise_tmpl.c over the vectors of kernels/simd.h.
 * Compiled with this ISA's flags only (lib/meson.build).
 */
#define TLMI_SIMD_AVX2 1
#define TLMI_ISA_SUFFIX avx2

#include "kernels/pointwise_tmpl.c"
