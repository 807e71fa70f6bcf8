/*
 * Run-time kernel dispatch: one table of function pointers per instruction
 * set (ISA), and the choice of the table a new context uses.
 *
 * Each context chooses its table once, when it is created
 * (tlmi_kernels_choose, stored in struct tlm_context), from
 *   - the CPU's features (tlmi_cpu_detect: CPUID + XGETBV, or HWCAP),
 *   - a mask set by tlm_experimental_set_cpu_mask() (all features by
 *     default),
 *   - the environment variable TLM_CPU=scalar|avx2|avx512|neon, a cap on
 *     the ISA level,
 * all three read at that moment, as the best ISA whose features are all
 * present and allowed, at or below the cap. Levels: scalar 0, avx2 and
 * neon 1, avx512 2. A name the library does not know leaves the level
 * uncapped; an ISA the CPU lacks is never chosen. There is no global
 * table: changing the mask changes the choice of contexts created after
 * it, never the table of a live context, so a graph or a session never
 * sees its kernels change underneath it (and sizes its workspaces for
 * its own table only).
 *
 * Adding a kernel: a field in tlmi_kernels, filled in every table of
 * dispatch.c (the scalar reference at least).
 */
#ifndef TLM_LIB_KERNELS_DISPATCH_H
#define TLM_LIB_KERNELS_DISPATCH_H

#include <stdint.h>

#include "attention.h"
#include "gemm.h"
#include "pointwise.h"

enum tlmi_isa {
    TLMI_ISA_SCALAR = 0,
    TLMI_ISA_AVX2 = 1,   /* x86: AVX2 + FMA */
    TLMI_ISA_AVX512 = 2, /* x86: AVX-512F (+ AVX2, FMA) */
    TLMI_ISA_NEON = 3,   /* AArch64 Advanced SIMD */
    TLMI_ISA_COUNT
};

typedef struct tlmi_kernels {
    int isa;          /* enum tlmi_isa */
    const char *name; /* "scalar", "avx2", "avx512", "neon" */
    tlmi_gemm_fn gemm;
    tlmi_gemm_workspace_fn gemm_workspace;
    /* Column ranges of a product, for the thread pool (see gemm.h): split
     * points at multiples of gemm_col_align give bitwise the same C. */
    tlmi_gemm_cols_fn gemm_cols;
    int gemm_col_align;
    /* The blocked GEMM's loops and routines (gemm.h), for products whose B
     * is packed from another format (quantized weights); NULL: none
     * (scalar). */
    const tlmi_gemm_blocking *gemm_blocking;
    /* activations, norms, softmax, cross-entropy, optimizers, elementwise */
    const tlmi_pointwise_kernels *pointwise;
    /* Fused attention of one head (attention.h). */
    tlmi_attention_forward_fn attention_forward;
    tlmi_attention_backward_fn attention_backward;
    tlmi_attention_workspace_fn attention_workspace;
    /* The same with bf16 products (attention.h; the same workspace): what
     * a context's kernels_bf16 table runs as its attention. */
    tlmi_attention_forward_fn attention_forward_bf16;
    tlmi_attention_backward_fn attention_backward_bf16;
} tlmi_kernels;

/* The table a context created now gets (never NULL): the choice above,
 * made afresh at each call from the mask and TLM_CPU of the moment. */
const tlmi_kernels *tlmi_kernels_choose(void);

/* The features a context created now may use (detected & the mask), and
 * the table tlmi_kernels_choose gives for them: a context reads the
 * features once and keeps them for the weights kernels (weights.h), which
 * are chosen from the same features as its table. */
uint32_t tlmi_cpu_usable_features(void);
const tlmi_kernels *tlmi_kernels_choose_with(uint32_t features);

/* The table of one ISA whatever the mask, or NULL when this build has no
 * such kernels or this CPU cannot run them. For tests and benchmarks. */
const tlmi_kernels *tlmi_kernels_for(int isa);

/* Name of an ISA ("avx2"), or NULL when isa is not an enum tlmi_isa. */
const char *tlmi_isa_name(int isa);

/* The enum tlmi_isa named `name` (any case), or -1. */
int tlmi_isa_from_name(const char *name);

/* Features an ISA needs (0 for scalar). */
uint32_t tlmi_isa_features(int isa);

/* The choice described at the top of this file, as a pure function:
 * `features` are the usable features (detected & mask), `cap_name` the
 * value of TLM_CPU or NULL. Only ISAs compiled into this build count. */
int tlmi_isa_choose(uint32_t features, const char *cap_name);

#endif
