/*
 * Kernel tables and the choice of one for a new context (see dispatch.h).
 */
#define TLM_EXPERIMENTAL /* this file implements the experimental calls */

#include "dispatch.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>

#include "base/cpu.h"
#include "base/error.h"
#include "kernels/scalar/matmul.h"
#include "tlm.h"

/* ---- The scalar table: the reference kernels themselves --------------- */

void tlmi_gemm_scalar(float *c, const float *a, const float *b,
                      const float *bias, int64_t m, int64_t n, int64_t k,
                      int transpose_a, int transpose_b, int accumulate,
                      float *workspace) {
    (void)workspace;
    tlmi_gemm(c, a, b, bias, m, n, k, transpose_a, transpose_b, accumulate);
}

void tlmi_gemm_cols_scalar(float *c, const float *a, const float *b,
                           const float *bias, int64_t m, int64_t n, int64_t k,
                           int transpose_a, int transpose_b, int accumulate,
                           int64_t j_begin, int64_t j_end, float *workspace) {
    (void)workspace;
    tlmi_gemm_cols(c, a, b, bias, m, n, k, transpose_a, transpose_b,
                   accumulate, j_begin, j_end);
}

size_t tlmi_gemm_workspace_scalar(int64_t m, int64_t n, int64_t k,
                                  int transpose_a, int transpose_b) {
    (void)m, (void)n, (void)k, (void)transpose_a, (void)transpose_b;
    return 0;
}

static const tlmi_kernels scalar_kernels = {
    .isa = TLMI_ISA_SCALAR,
    .name = "scalar",
    .gemm = tlmi_gemm_scalar,
    .gemm_workspace = tlmi_gemm_workspace_scalar,
    .gemm_cols = tlmi_gemm_cols_scalar,
    .gemm_col_align = 1,
    .pointwise = &tlmi_pointwise_scalar,
    .attention_forward = tlmi_attention_forward_scalar,
    .attention_backward = tlmi_attention_backward_scalar,
    .attention_workspace = tlmi_attention_workspace_scalar,
    .attention_forward_bf16 = tlmi_attention_forward_bf16_scalar,
    .attention_backward_bf16 = tlmi_attention_backward_bf16_scalar,
};

#if defined(TLMI_HAVE_AVX2)
static const tlmi_kernels avx2_kernels = {
    .isa = TLMI_ISA_AVX2,
    .name = "avx2",
    .gemm = tlmi_gemm_avx2,
    .gemm_workspace = tlmi_gemm_workspace_avx2,
    .gemm_cols = tlmi_gemm_cols_avx2,
    .gemm_col_align = 16, /* the micro-tile's width (small M: 8) */
    .gemm_blocking = &tlmi_gemm_blocking_avx2,
    .pointwise = &tlmi_pointwise_avx2,
    .attention_forward = tlmi_attention_forward_avx2,
    .attention_backward = tlmi_attention_backward_avx2,
    .attention_workspace = tlmi_attention_workspace_avx2,
    .attention_forward_bf16 = tlmi_attention_forward_bf16_avx2,
    .attention_backward_bf16 = tlmi_attention_backward_bf16_avx2,
};
#endif

#if defined(TLMI_HAVE_AVX512)
static const tlmi_kernels avx512_kernels = {
    .isa = TLMI_ISA_AVX512,
    .name = "avx512",
    .gemm = tlmi_gemm_avx512,
    .gemm_workspace = tlmi_gemm_workspace_avx512,
    .gemm_cols = tlmi_gemm_cols_avx512,
    .gemm_col_align = 32, /* the micro-tile's width (small M: 16) */
    .gemm_blocking = &tlmi_gemm_blocking_avx512,
    .pointwise = &tlmi_pointwise_avx512,
    .attention_forward = tlmi_attention_forward_avx512,
    .attention_backward = tlmi_attention_backward_avx512,
    .attention_workspace = tlmi_attention_workspace_avx512,
    .attention_forward_bf16 = tlmi_attention_forward_bf16_avx512,
    .attention_backward_bf16 = tlmi_attention_backward_bf16_avx512,
};
#endif

#if defined(TLMI_HAVE_NEON)
static const tlmi_kernels neon_kernels = {
    .isa = TLMI_ISA_NEON,
    .name = "neon",
    .gemm = tlmi_gemm_neon,
    .gemm_workspace = tlmi_gemm_workspace_neon,
    .gemm_cols = tlmi_gemm_cols_neon,
    .gemm_col_align = 12, /* the micro-tile's width (small M: 4) */
    .gemm_blocking = &tlmi_gemm_blocking_neon,
    .pointwise = &tlmi_pointwise_neon,
    .attention_forward = tlmi_attention_forward_neon,
    .attention_backward = tlmi_attention_backward_neon,
    .attention_workspace = tlmi_attention_workspace_neon,
    .attention_forward_bf16 = tlmi_attention_forward_bf16_neon,
    .attention_backward_bf16 = tlmi_attention_backward_bf16_neon,
};
#endif

/* Indexed by enum tlmi_isa; NULL where this build has no kernels. */
static const tlmi_kernels *const compiled[TLMI_ISA_COUNT] = {
    [TLMI_ISA_SCALAR] = &scalar_kernels,
#if defined(TLMI_HAVE_AVX2)
    [TLMI_ISA_AVX2] = &avx2_kernels,
#endif
#if defined(TLMI_HAVE_AVX512)
    [TLMI_ISA_AVX512] = &avx512_kernels,
#endif
#if defined(TLMI_HAVE_NEON)
    [TLMI_ISA_NEON] = &neon_kernels,
#endif
};

static const char *const isa_names[TLMI_ISA_COUNT] = {
    [TLMI_ISA_SCALAR] = "scalar",
    [TLMI_ISA_AVX2] = "avx2",
    [TLMI_ISA_AVX512] = "avx512",
    [TLMI_ISA_NEON] = "neon",
};

/* The level TLM_CPU caps. */
static const int isa_levels[TLMI_ISA_COUNT] = {
    [TLMI_ISA_SCALAR] = 0,
    [TLMI_ISA_AVX2] = 1,
    [TLMI_ISA_AVX512] = 2,
    [TLMI_ISA_NEON] = 1,
};

static const uint32_t isa_needs[TLMI_ISA_COUNT] = {
    [TLMI_ISA_SCALAR] = 0,
    [TLMI_ISA_AVX2] = TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA,
    [TLMI_ISA_AVX512] =
        TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA | TLM_CPU_AVX512F,
    [TLMI_ISA_NEON] = TLM_CPU_NEON,
};

/* Every bit of enum tlm_cpu_feature. */
#define KNOWN_FEATURES                                                      \
    ((uint32_t)(TLM_CPU_SSE2 | TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA |   \
                TLM_CPU_F16C | TLM_CPU_AVX512F | TLM_CPU_AVX512BW |         \
                TLM_CPU_AVX512VL | TLM_CPU_AVX512VNNI |                     \
                TLM_CPU_AVX512BF16 | TLM_CPU_NEON | TLM_CPU_ARM_FP16 |      \
                TLM_CPU_ARM_DOTPROD | TLM_CPU_ARM_BF16))

const char *tlmi_isa_name(int isa) {
    return isa >= 0 && isa < TLMI_ISA_COUNT ? isa_names[isa] : NULL;
}

static int lower(int ch) { return ch >= 'A' && ch <= 'Z' ? ch - 'A' + 'a' : ch; }

int tlmi_isa_from_name(const char *name) {
    if (name == NULL)
        return -1;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const char *x = isa_names[isa], *y = name;
        while (*x != '\0' && *x == lower((unsigned char)*y))
            x++, y++;
        if (*x == '\0' && *y == '\0')
            return isa;
    }
    return -1;
}

uint32_t tlmi_isa_features(int isa) {
    return isa >= 0 && isa < TLMI_ISA_COUNT ? isa_needs[isa] : 0;
}

int tlmi_isa_choose(uint32_t features, const char *cap_name) {
    int cap = TLMI_ISA_COUNT; /* above every level */
    const int named = tlmi_isa_from_name(cap_name);
    if (named >= 0)
        cap = isa_levels[named];
    int best = TLMI_ISA_SCALAR;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        if (compiled[isa] == NULL || isa_levels[isa] > cap ||
            (features & isa_needs[isa]) != isa_needs[isa])
            continue;
        if (isa_levels[isa] > isa_levels[best])
            best = isa;
    }
    return best;
}

const tlmi_kernels *tlmi_kernels_for(int isa) {
    if (isa < 0 || isa >= TLMI_ISA_COUNT || compiled[isa] == NULL)
        return NULL;
    if ((tlmi_cpu_detect() & isa_needs[isa]) != isa_needs[isa])
        return NULL;
    return compiled[isa];
}

/* ---- The choice for a new context -------------------------------------
 * The mask is a setting, not a table: each context reads it (with the CPU's
 * features and TLM_CPU) once, when it is created, and keeps the table it
 * chose for its whole life. */

static atomic_uint_least32_t cpu_mask = UINT32_MAX;

uint32_t tlmi_cpu_usable_features(void) {
    return tlmi_cpu_detect() & (uint32_t)atomic_load(&cpu_mask);
}

const tlmi_kernels *tlmi_kernels_choose_with(uint32_t features) {
    return compiled[tlmi_isa_choose(features, getenv("TLM_CPU"))];
}

const tlmi_kernels *tlmi_kernels_choose(void) {
    return tlmi_kernels_choose_with(tlmi_cpu_usable_features());
}

TLM_API int tlm_experimental_set_cpu_mask(uint32_t mask) {
    if (mask != TLM_EXPERIMENTAL_CPU_MASK_ALL && (mask & ~KNOWN_FEATURES) != 0)
        return tlmi_fail_thread(TLM_E_INVALID,
                                "tlm_experimental_set_cpu_mask: mask 0x%08x "
                                "has bits 0x%08x that are not CPU features",
                                (unsigned)mask,
                                (unsigned)(mask & ~KNOWN_FEATURES));
    atomic_store(&cpu_mask, mask);
    return TLM_OK;
}

TLM_API const char *tlm_experimental_active_isa(void) {
    return tlmi_kernels_choose()->name;
}
