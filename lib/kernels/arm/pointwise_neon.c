/*
 * The pointwise kernels (kernels/pointwise.h) on AArch64 Advanced SIMD:
 * the generic code of kernels/pointwise_tmpl.c over the vectors of
 * kernels/simd.h.
 */
#define TLMI_SIMD_NEON 1
#define TLMI_ISA_SUFFIX neon

#include "kernels/pointwise_tmpl.c"
