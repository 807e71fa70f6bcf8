#if defined(__linux__)
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#endif

#include "cpu.h"

#include <stdatomic.h>
#include <stddef.h>

#include "tlm.h"

#if defined(__linux__)
#include <sched.h>
#endif
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

/* XCR0: which register states the OS saves on context switch. Written as
 * asm so this file needs no -mxsave. */
static uint64_t read_xcr0(void) {
    uint32_t eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((uint64_t)edx << 32) | eax;
}

static uint32_t detect_x86(void) {
    unsigned eax, ebx, ecx, edx;
    uint32_t features = 0;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx))
        return 0;
    if (edx & (1u << 26))
        features |= TLM_CPU_SSE2;
    const int has_osxsave = (ecx & (1u << 27)) != 0;
    const int has_avx = (ecx & (1u << 28)) != 0;
    const int has_fma = (ecx & (1u << 12)) != 0;
    const int has_f16c = (ecx & (1u << 29)) != 0;
    if (!has_osxsave)
        return features;
    const uint64_t xcr0 = read_xcr0();
    const int os_ymm = (xcr0 & 0x6) == 0x6;    /* SSE and AVX state */
    const int os_zmm = (xcr0 & 0xe6) == 0xe6;  /* plus opmask, ZMM0-31 */
    if (!os_ymm || !has_avx)
        return features;
    features |= TLM_CPU_AVX;
    if (has_fma)
        features |= TLM_CPU_FMA;
    if (has_f16c)
        features |= TLM_CPU_F16C;
    unsigned max_leaf = __get_cpuid_max(0, NULL);
    if (max_leaf < 7)
        return features;
    __cpuid_count(7, 0, eax, ebx, ecx, edx);
    const unsigned leaf7_max_subleaf = eax;
    if (ebx & (1u << 5))
        features |= TLM_CPU_AVX2;
    if (os_zmm && (ebx & (1u << 16))) {
        features |= TLM_CPU_AVX512F;
        if (ebx & (1u << 30))
            features |= TLM_CPU_AVX512BW;
        if (ebx & (1u << 31))
            features |= TLM_CPU_AVX512VL;
        if (ecx & (1u << 11))
            features |= TLM_CPU_AVX512VNNI;
        if (leaf7_max_subleaf >= 1) {
            __cpuid_count(7, 1, eax, ebx, ecx, edx);
            if (eax & (1u << 5))
                features |= TLM_CPU_AVX512BF16;
        }
    }
    return features;
}
#endif

#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
/* From the kernel's uapi asm/hwcap.h; spelled out so any libc works. */
#define TLMI_HWCAP_ASIMD (1ul << 1)
#define TLMI_HWCAP_FPHP (1ul << 9)
#define TLMI_HWCAP_ASIMDHP (1ul << 10)
#define TLMI_HWCAP_ASIMDDP (1ul << 20)
#define TLMI_HWCAP2_BF16 (1ul << 14) /* AT_HWCAP2 */

static uint32_t detect_arm(void) {
    unsigned long hwcap = getauxval(AT_HWCAP);
    uint32_t features = TLM_CPU_NEON; /* AArch64 requires Advanced SIMD */
    (void)TLMI_HWCAP_ASIMD;
    if ((hwcap & TLMI_HWCAP_FPHP) && (hwcap & TLMI_HWCAP_ASIMDHP))
        features |= TLM_CPU_ARM_FP16;
    if (hwcap & TLMI_HWCAP_ASIMDDP)
        features |= TLM_CPU_ARM_DOTPROD;
#if defined(AT_HWCAP2)
    if (getauxval(AT_HWCAP2) & TLMI_HWCAP2_BF16)
        features |= TLM_CPU_ARM_BF16;
#endif
    return features;
}
#elif defined(__aarch64__)
static uint32_t detect_arm(void) { return TLM_CPU_NEON; }
#endif

static uint32_t detect_now(void) {
#if defined(__x86_64__) || defined(__i386__)
    return detect_x86();
#elif defined(__aarch64__)
    return detect_arm();
#else
    return 0;
#endif
}

/* Bit 31 marks "detected"; no feature uses it. */
#define DETECTED_MARK (1u << 31)
static atomic_uint_least32_t detected_features;

uint32_t tlmi_cpu_detect(void) {
    uint32_t cached = (uint32_t)atomic_load_explicit(&detected_features,
                                                     memory_order_relaxed);
    if (cached & DETECTED_MARK)
        return cached & ~DETECTED_MARK;
    /* Racing threads compute the same value; storing it twice is fine. */
    uint32_t features = detect_now();
    atomic_store_explicit(&detected_features, features | DETECTED_MARK,
                          memory_order_relaxed);
    return features;
}

int tlmi_cpu_core_count(void) {
#if defined(__linux__)
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int count = CPU_COUNT(&set);
        if (count > 0)
            return count;
    }
#endif
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    return online > 0 ? (int)(online > 1024 ? 1024 : online) : 1;
}

TLM_API uint32_t tlm_cpu_features(void) { return tlmi_cpu_detect(); }

struct feature_name {
    uint32_t bit;
    const char *name;
};

static const struct feature_name feature_names[] = {
    {TLM_CPU_SSE2, "sse2"},
    {TLM_CPU_AVX, "avx"},
    {TLM_CPU_AVX2, "avx2"},
    {TLM_CPU_FMA, "fma"},
    {TLM_CPU_F16C, "f16c"},
    {TLM_CPU_AVX512F, "avx512f"},
    {TLM_CPU_AVX512BW, "avx512bw"},
    {TLM_CPU_AVX512VL, "avx512vl"},
    {TLM_CPU_AVX512VNNI, "avx512vnni"},
    {TLM_CPU_AVX512BF16, "avx512bf16"},
    {TLM_CPU_NEON, "neon"},
    {TLM_CPU_ARM_FP16, "fp16"},
    {TLM_CPU_ARM_DOTPROD, "dotprod"},
    {TLM_CPU_ARM_BF16, "bf16"},
};

TLM_API const char *tlm_cpu_feature_name(uint32_t feature) {
    for (size_t i = 0; i < sizeof feature_names / sizeof feature_names[0]; i++)
        if (feature_names[i].bit == feature)
            return feature_names[i].name;
    return NULL;
}
