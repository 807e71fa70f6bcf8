/*
 * Kernel dispatch: the choice rule as a pure function, the table of each
 * ISA, the effect of the TLM_CPU environment variable on the process (the
 * suite runs this program once per value of TLM_CPU) and of
 * tlm_experimental_set_cpu_mask(), which reach the contexts created after
 * them only.
 */
#define TLM_EXPERIMENTAL

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "autodiff/context.h"
#include "base/cpu.h"
#include "kernels/dispatch.h"
#include "tlm.h"

#define X86_AVX2 (TLM_CPU_SSE2 | TLM_CPU_AVX | TLM_CPU_AVX2 | TLM_CPU_FMA)
#define X86_AVX512 (X86_AVX2 | TLM_CPU_AVX512F | TLM_CPU_AVX512BW)

static void names_round_trip(void **state) {
    (void)state;
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++)
        assert_int_equal(tlmi_isa_from_name(tlmi_isa_name(isa)), isa);
    assert_int_equal(tlmi_isa_from_name("AVX512"), TLMI_ISA_AVX512);
    assert_int_equal(tlmi_isa_from_name("Neon"), TLMI_ISA_NEON);
    assert_int_equal(tlmi_isa_from_name("avx"), -1);
    assert_int_equal(tlmi_isa_from_name("avx22"), -1);
    assert_int_equal(tlmi_isa_from_name(""), -1);
    assert_int_equal(tlmi_isa_from_name(NULL), -1);
    assert_null(tlmi_isa_name(-1));
    assert_null(tlmi_isa_name(TLMI_ISA_COUNT));
}

/* The rule, for CPUs this machine may not be: only ISAs compiled into
 * this build can be chosen, and the cap is a level. */
static void choice_rule(void **state) {
    (void)state;
    /* Scalar whenever nothing else fits. */
    assert_int_equal(tlmi_isa_choose(0, NULL), TLMI_ISA_SCALAR);
    assert_int_equal(tlmi_isa_choose(UINT32_MAX, "scalar"), TLMI_ISA_SCALAR);
    assert_int_equal(tlmi_isa_choose(UINT32_MAX, "SCALAR"), TLMI_ISA_SCALAR);
#if defined(TLMI_HAVE_AVX2) && defined(TLMI_HAVE_AVX512)
    assert_int_equal(tlmi_isa_choose(X86_AVX512, NULL), TLMI_ISA_AVX512);
    assert_int_equal(tlmi_isa_choose(X86_AVX512, ""), TLMI_ISA_AVX512);
    assert_int_equal(tlmi_isa_choose(X86_AVX512, "bogus"), TLMI_ISA_AVX512);
    assert_int_equal(tlmi_isa_choose(X86_AVX512, "avx512"), TLMI_ISA_AVX512);
    assert_int_equal(tlmi_isa_choose(X86_AVX512, "avx2"), TLMI_ISA_AVX2);
    /* neon names level 1, which on x86 is AVX2 */
    assert_int_equal(tlmi_isa_choose(X86_AVX512, "neon"), TLMI_ISA_AVX2);
    /* asking for more than the CPU has gives the best it has */
    assert_int_equal(tlmi_isa_choose(X86_AVX2, "avx512"), TLMI_ISA_AVX2);
    assert_int_equal(tlmi_isa_choose(X86_AVX2, NULL), TLMI_ISA_AVX2);
    /* AVX2 without FMA is not enough */
    assert_int_equal(tlmi_isa_choose(X86_AVX2 & ~(uint32_t)TLM_CPU_FMA, NULL),
                     TLMI_ISA_SCALAR);
    /* AVX-512F needs AVX2 and FMA too */
    assert_int_equal(tlmi_isa_choose(TLM_CPU_AVX512F, NULL), TLMI_ISA_SCALAR);
    /* no NEON kernels in an x86 build */
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, NULL), TLMI_ISA_SCALAR);
#endif
#if defined(TLMI_HAVE_NEON)
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, NULL), TLMI_ISA_NEON);
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, "neon"), TLMI_ISA_NEON);
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, "avx512"), TLMI_ISA_NEON);
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, "avx2"), TLMI_ISA_NEON);
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, "scalar"), TLMI_ISA_SCALAR);
    assert_int_equal(tlmi_isa_choose(TLM_CPU_NEON, "x"), TLMI_ISA_NEON);
    /* no x86 kernels in an Arm build */
    assert_int_equal(tlmi_isa_choose(X86_AVX512, NULL), TLMI_ISA_SCALAR);
#endif
}

/* A table for each ISA the CPU has, whatever the mask. */
static void tables_follow_the_cpu(void **state) {
    (void)state;
    const uint32_t cpu = tlmi_cpu_detect();
    assert_int_equal(tlm_experimental_set_cpu_mask(0), TLM_OK);
    for (int isa = 0; isa < TLMI_ISA_COUNT; isa++) {
        const tlmi_kernels *kernels = tlmi_kernels_for(isa);
        const uint32_t needs = tlmi_isa_features(isa);
        if (kernels == NULL) {
            assert_true(isa != TLMI_ISA_SCALAR);
            continue;
        }
        assert_int_equal(cpu & needs, needs);
        assert_int_equal(kernels->isa, isa);
        assert_string_equal(kernels->name, tlmi_isa_name(isa));
        assert_non_null(kernels->gemm);
        assert_non_null(kernels->gemm_workspace);
    }
#if defined(TLMI_HAVE_AVX2)
    if ((cpu & X86_AVX2) == X86_AVX2)
        assert_non_null(tlmi_kernels_for(TLMI_ISA_AVX2));
#endif
#if defined(TLMI_HAVE_AVX512)
    if ((cpu & X86_AVX2) == X86_AVX2 && (cpu & TLM_CPU_AVX512F))
        assert_non_null(tlmi_kernels_for(TLMI_ISA_AVX512));
#endif
#if defined(TLMI_HAVE_NEON)
    assert_non_null(tlmi_kernels_for(TLMI_ISA_NEON));
#endif
    assert_null(tlmi_kernels_for(-1));
    assert_null(tlmi_kernels_for(TLMI_ISA_COUNT));
    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL),
                     TLM_OK);
}

/* What this process should run, worked out independently of dispatch.c
 * from the CPU and TLM_CPU. */
static const char *expected_isa(uint32_t cpu, const char *env) {
    int cap = 2; /* scalar 0, avx2 / neon 1, avx512 2 */
    if (env != NULL) {
        if (strcmp(env, "scalar") == 0)
            cap = 0;
        else if (strcmp(env, "avx2") == 0 || strcmp(env, "neon") == 0)
            cap = 1;
    }
    (void)cpu;
#if defined(TLMI_HAVE_AVX512)
    if (cap >= 2 && (cpu & X86_AVX2) == X86_AVX2 && (cpu & TLM_CPU_AVX512F))
        return "avx512";
#endif
#if defined(TLMI_HAVE_AVX2)
    if (cap >= 1 && (cpu & X86_AVX2) == X86_AVX2)
        return "avx2";
#endif
#if defined(TLMI_HAVE_NEON)
    if (cap >= 1 && (cpu & TLM_CPU_NEON))
        return "neon";
#endif
    return "scalar";
}

static void environment_caps_the_process(void **state) {
    (void)state;
    const char *env = getenv("TLM_CPU");
    const char *want = expected_isa(tlmi_cpu_detect(), env);
    print_message("TLM_CPU=%s: kernels %s (expected %s)\n",
                  env ? env : "(unset)", tlm_experimental_active_isa(), want);
    assert_string_equal(tlm_experimental_active_isa(), want);
    assert_string_equal(tlmi_kernels_choose()->name, want);
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    assert_string_equal(ctx->kernels->name, want);
    tlm_context_free(ctx);
    assert_string_equal(
        tlmi_isa_name(tlmi_isa_choose(tlmi_cpu_detect(), env)), want);
}

static void mask_restricts_and_restores(void **state) {
    (void)state;
    const char *env = getenv("TLM_CPU");
    const uint32_t cpu = tlmi_cpu_detect();
    const char *before = tlm_experimental_active_isa();

    assert_int_equal(tlm_experimental_set_cpu_mask(0), TLM_OK);
    assert_string_equal(tlm_experimental_active_isa(), "scalar");

    /* AVX2's features only: AVX2 at most, and never more than TLM_CPU. */
    assert_int_equal(tlm_experimental_set_cpu_mask(X86_AVX2), TLM_OK);
    assert_string_equal(tlm_experimental_active_isa(),
                        expected_isa(cpu & X86_AVX2, env));

    /* A bit that is no feature: refused, nothing changes. */
    assert_int_equal(tlm_experimental_set_cpu_mask(1u << 30), TLM_E_INVALID);
    assert_non_null(strstr(tlm_last_error(), "tlm_experimental_set_cpu_mask"));
    assert_string_equal(tlm_experimental_active_isa(),
                        expected_isa(cpu & X86_AVX2, env));

    /* A mask cannot add what the CPU lacks. */
    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL),
                     TLM_OK);
    assert_string_equal(tlm_experimental_active_isa(), before);
    assert_string_equal(tlm_experimental_active_isa(), expected_isa(cpu, env));
}

/* A context keeps the kernels it chose at creation: a matrix product made
 * under the scalar mask still runs on the scalar kernels after the mask
 * allows more (its workspace was sized for them), and a context created
 * after the change gets the new choice. */
static void context_keeps_its_kernels(void **state) {
    (void)state;
    enum { M = 40, K = 30, N = 50 };
    static float a_data[M * K], b_data[K * N], want[M * N];
    for (int i = 0; i < M * K; i++)
        a_data[i] = (float)(i % 13) * 0.25f - 1.5f;
    for (int i = 0; i < K * N; i++)
        b_data[i] = (float)(i % 7) * 0.5f - 1.0f;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double sum = 0.0;
            for (int p = 0; p < K; p++)
                sum += (double)a_data[i * K + p] * (double)b_data[p * N + j];
            want[i * N + j] = (float)sum;
        }

    assert_int_equal(tlm_experimental_set_cpu_mask(0), TLM_OK); /* scalar */
    tlm_context *ctx = NULL;
    assert_int_equal(tlm_context_create(&ctx, NULL), TLM_OK);
    tlm_tensor *a = NULL, *b = NULL, *c = NULL;
    const int64_t a_shape[2] = {M, K}, b_shape[2] = {K, N};
    assert_int_equal(tlm_tensor_from_f32(&a, ctx, 2, a_shape, a_data), TLM_OK);
    assert_int_equal(tlm_tensor_from_f32(&b, ctx, 2, b_shape, b_data), TLM_OK);
    assert_int_equal(tlm_matmul(&c, a, b, NULL, 0), TLM_OK);

    assert_string_equal(ctx->kernels->name, "scalar");

    assert_int_equal(tlm_experimental_set_cpu_mask(TLM_EXPERIMENTAL_CPU_MASK_ALL),
                     TLM_OK);
    assert_int_equal(tlm_context_forward(ctx), TLM_OK);
    assert_string_equal(ctx->kernels->name, "scalar");
    const float *got = tlm_tensor_data_f32(c);
    /* Not assert_float_equal: cmocka 1.1's passes a NaN. */
    for (int i = 0; i < M * N; i++)
        assert_true(got[i] - want[i] <= 1e-3f && want[i] - got[i] <= 1e-3f);
    tlm_context_free(ctx);

    tlm_context *later = NULL;
    assert_int_equal(tlm_context_create(&later, NULL), TLM_OK);
    assert_string_equal(later->kernels->name, tlm_experimental_active_isa());
    tlm_context_free(later);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(environment_caps_the_process),
        cmocka_unit_test(names_round_trip),
        cmocka_unit_test(choice_rule),
        cmocka_unit_test(tables_follow_the_cpu),
        cmocka_unit_test(mask_restricts_and_restores),
        cmocka_unit_test(context_keeps_its_kernels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
