/* CPU feature detection agrees with the compiler's own detection, and
 * every feature bit has a name. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "tlm.h"

static const uint32_t known_features[] = {
    TLM_CPU_SSE2,       TLM_CPU_AVX,        TLM_CPU_AVX2,
    TLM_CPU_FMA,        TLM_CPU_F16C,       TLM_CPU_AVX512F,
    TLM_CPU_AVX512BW,   TLM_CPU_AVX512VL,   TLM_CPU_AVX512VNNI,
    TLM_CPU_AVX512BF16, TLM_CPU_NEON,       TLM_CPU_ARM_FP16,
    TLM_CPU_ARM_DOTPROD, TLM_CPU_ARM_BF16,
};
#define N_KNOWN (sizeof known_features / sizeof known_features[0])

static void every_feature_has_a_unique_name(void **state) {
    (void)state;
    for (size_t i = 0; i < N_KNOWN; i++) {
        const char *name = tlm_cpu_feature_name(known_features[i]);
        assert_non_null(name);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(name,
                                    tlm_cpu_feature_name(known_features[j]));
    }
    assert_string_equal(tlm_cpu_feature_name(TLM_CPU_AVX2), "avx2");
}

static void non_features_have_no_name(void **state) {
    (void)state;
    assert_null(tlm_cpu_feature_name(0));
    assert_null(tlm_cpu_feature_name(TLM_CPU_AVX2 | TLM_CPU_FMA));
    assert_null(tlm_cpu_feature_name(1u << 30));
    assert_null(tlm_cpu_feature_name(UINT32_MAX));
}

static void features_are_consistent(void **state) {
    (void)state;
    uint32_t features = tlm_cpu_features();
    assert_int_equal(features, tlm_cpu_features()); /* cached, stable */
    uint32_t all_known = 0;
    for (size_t i = 0; i < N_KNOWN; i++)
        all_known |= known_features[i];
    assert_int_equal(features & ~all_known, 0);
    /* Each extension implies the one it extends. */
    if (features & TLM_CPU_AVX2)
        assert_true(features & TLM_CPU_AVX);
    if (features & TLM_CPU_AVX512BW)
        assert_true(features & TLM_CPU_AVX512F);
    if (features & TLM_CPU_AVX512F)
        assert_true(features & TLM_CPU_AVX);
    if (features & TLM_CPU_ARM_BF16)
        assert_true(features & TLM_CPU_NEON);
#if defined(__x86_64__)
    assert_true(features & TLM_CPU_SSE2);
    assert_int_equal(features & TLM_CPU_NEON, 0);
#elif defined(__aarch64__)
    assert_true(features & TLM_CPU_NEON);
    assert_int_equal(features & TLM_CPU_AVX, 0);
#endif
}

/* An independent check: the compiler's run-time detection (which also
 * consults XCR0) must agree with ours. */
static void features_agree_with_compiler_builtins(void **state) {
    (void)state;
#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
    __builtin_cpu_init();
    uint32_t features = tlm_cpu_features();
    assert_int_equal(!!(features & TLM_CPU_AVX),
                     !!__builtin_cpu_supports("avx"));
    assert_int_equal(!!(features & TLM_CPU_AVX2),
                     !!__builtin_cpu_supports("avx2"));
    assert_int_equal(!!(features & TLM_CPU_FMA),
                     !!__builtin_cpu_supports("fma"));
    assert_int_equal(!!(features & TLM_CPU_AVX512F),
                     !!__builtin_cpu_supports("avx512f"));
    assert_int_equal(!!(features & TLM_CPU_AVX512BW),
                     !!__builtin_cpu_supports("avx512bw"));
    assert_int_equal(!!(features & TLM_CPU_AVX512VL),
                     !!__builtin_cpu_supports("avx512vl"));
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(every_feature_has_a_unique_name),
        cmocka_unit_test(non_features_have_no_name),
        cmocka_unit_test(features_are_consistent),
        cmocka_unit_test(features_agree_with_compiler_builtins),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
