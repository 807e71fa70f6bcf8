/*
 * Build check, compiled and never linked (tests/kernels/meson.build): one
 * ISA's three kernel files in a single translation unit, so each template
 * (kernels/<family>_tmpl.c) with its configuration must leave nothing behind that
 * breaks the next one: its short macros (W, MR, NR, ...) #undef'd at its
 * end, everything else TLMI_-prefixed or static with distinct names. The
 * library itself compiles the files apart; this keeps them composable.
 */
#if defined(TLMI_HAVE_AVX2)
#include "kernels/x86/attention_avx2.c"
#include "kernels/x86/gemm_avx2.c"
#include "kernels/x86/pointwise_avx2.c"
#include "kernels/x86/weights_bf16_avx2.c"
#elif defined(TLMI_HAVE_NEON)
#include "kernels/arm/attention_neon.c"
#include "kernels/arm/gemm_neon.c"
#include "kernels/arm/pointwise_neon.c"
#include "kernels/arm/weights_bf16_neon.c"
#endif
