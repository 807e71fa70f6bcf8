/*
 * The pointwise kernels (kernels/pointwise.h) on AArch64 Advanced SIMD:
 * the generic code of kernels/pointwise_impl.h over the vectors of
 * kernels/simd.h.
 */
#define TLMI_SIMD_NEON 1
#define TLMI_PW_TABLE tlmi_pointwise_neon

#include "kernels/pointwise_impl.h"
