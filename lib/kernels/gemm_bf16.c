/*
 * The variants of the bf16 products (gemm_bf16.h): the scalar entries
 * and the choice among the variants compiled into this build.
 */
#include "gemm_bf16.h"

#include <pthread.h>
#include <stddef.h>

#include "base/cpu.h"
#include "kernels/scalar/matmul.h"
#include "tlm.h"

void tlmi_gemm_bf16_scalar(float *c, const float *a, const float *b,
                           const float *bias, int64_t m, int64_t n,
                           int64_t k, int transpose_a, int transpose_b,
                           int accumulate, float *workspace) {
    (void)workspace;
    tlmi_gemm_bf16(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                   accumulate);
}

void tlmi_gemm_bf16_cols_scalar(float *c, const float *a, const float *b,
                                const float *bias, int64_t m, int64_t n,
                                int64_t k, int transpose_a, int transpose_b,
                                int accumulate, int64_t j_begin,
                                int64_t j_end, float *workspace) {
    (void)workspace;
    tlmi_gemm_bf16_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                        accumulate, j_begin, j_end);
}

size_t tlmi_gemm_bf16_workspace_scalar(int64_t m, int64_t n, int64_t k,
                                       int transpose_a, int transpose_b) {
    (void)m, (void)n, (void)k, (void)transpose_a, (void)transpose_b;
    return 0;
}

/* One variant's entry: its three functions, named after `suffix`. */
#define VARIANT(isa_, name_, features_, suffix, align)                     \
    {                                                                       \
        .isa = (isa_), .name = (name_), .features = (features_),           \
        .gemm = tlmi_gemm_bf16_##suffix,                                    \
        .gemm_workspace = tlmi_gemm_bf16_workspace_##suffix,               \
        .gemm_cols = tlmi_gemm_bf16_cols_##suffix, .gemm_col_align = (align) \
    }

static const tlmi_gemm_bf16_kernels scalar_variant =
    VARIANT(TLMI_ISA_SCALAR, "scalar", 0, scalar, 1);
#if defined(TLMI_HAVE_AVX512_BF16) && defined(TLMI_HAVE_AVX512)
static const tlmi_gemm_bf16_kernels avx512bf16_variant =
    VARIANT(TLMI_ISA_AVX512, "avx512-bf16", TLM_CPU_AVX512BF16, avx512bf16,
            32);
#endif
#if defined(TLMI_HAVE_AVX512)
static const tlmi_gemm_bf16_kernels avx512_variant =
    VARIANT(TLMI_ISA_AVX512, "avx512", 0, avx512, 32);
#endif
#if defined(TLMI_HAVE_AVX2)
static const tlmi_gemm_bf16_kernels avx2_variant =
    VARIANT(TLMI_ISA_AVX2, "avx2", 0, avx2, 16);
#endif
#if defined(TLMI_HAVE_NEON_BF16) && defined(TLMI_HAVE_NEON)
static const tlmi_gemm_bf16_kernels neonbf16_variant =
    VARIANT(TLMI_ISA_NEON, "neon-bf16", TLM_CPU_ARM_BF16, neonbf16, 12);
#endif
#if defined(TLMI_HAVE_NEON)
static const tlmi_gemm_bf16_kernels neon_variant =
    VARIANT(TLMI_ISA_NEON, "neon", 0, neon, 12);
#endif

/* Best first (the first that fits a table is its choice). */
static const tlmi_gemm_bf16_kernels *const compiled[] = {
#if defined(TLMI_HAVE_AVX512_BF16) && defined(TLMI_HAVE_AVX512)
    &avx512bf16_variant,
#endif
#if defined(TLMI_HAVE_AVX512)
    &avx512_variant,
#endif
#if defined(TLMI_HAVE_AVX2)
    &avx2_variant,
#endif
#if defined(TLMI_HAVE_NEON_BF16) && defined(TLMI_HAVE_NEON)
    &neonbf16_variant,
#endif
#if defined(TLMI_HAVE_NEON)
    &neon_variant,
#endif
    &scalar_variant,
};

#define COMPILED_COUNT (sizeof compiled / sizeof compiled[0])

/* Features of the variant and of its ISA's table. */
static uint32_t needs(const tlmi_gemm_bf16_kernels *variant) {
    return variant->features | tlmi_isa_features(variant->isa);
}

static const tlmi_gemm_bf16_kernels *runnable[COMPILED_COUNT + 1];
static pthread_once_t runnable_once = PTHREAD_ONCE_INIT;

static void list_runnable(void) {
    const uint32_t cpu = tlmi_cpu_detect();
    size_t count = 0;
    for (size_t v = 0; v < COMPILED_COUNT; v++)
        if ((cpu & needs(compiled[v])) == needs(compiled[v]))
            runnable[count++] = compiled[v];
    runnable[count] = NULL;
}

const tlmi_gemm_bf16_kernels *const *tlmi_gemm_bf16_all(void) {
    pthread_once(&runnable_once, list_runnable);
    return runnable;
}

const tlmi_gemm_bf16_kernels *tlmi_gemm_bf16_choose(
    const tlmi_kernels *kernels, uint32_t features) {
    for (size_t v = 0; v < COMPILED_COUNT; v++) {
        const tlmi_gemm_bf16_kernels *variant = compiled[v];
        if (variant->isa == kernels->isa &&
            (features & needs(variant)) == needs(variant))
            return variant;
    }
    return &scalar_variant;
}
