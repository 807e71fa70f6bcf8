/*
 * A thin layer of float vectors over one ISA, so the pointwise kernels
 * (kernels/pointwise_tmpl.c), the fused attention
 * (kernels/attention_tmpl.c) and the GEMM (kernels/gemm_tmpl.c) are
 * written once for AVX2, AVX-512 and NEON.
 *
 * The templates' one protocol. A per-ISA source (x86/gemm_avx2.c, ...),
 * compiled with that ISA's flags only, defines
 *   - exactly one of TLMI_SIMD_AVX2, TLMI_SIMD_AVX512, TLMI_SIMD_NEON (the
 *     vectors of this layer),
 *   - TLMI_ISA_SUFFIX, the suffix of the template's entries (avx2, ...):
 *     TLMI_ISA_NAME(tlmi_gemm) is tlmi_gemm_avx2,
 *   - the template's own tuning macros, all named TLMI_<FAMILY>_* (
 *     TLMI_GEMM_MR, TLMI_ATTN_QB, ...; each template lists its own), and
 *     any hook the template offers (a TLMI_<FAMILY>_HAVE_* macro with its
 *     function),
 * then includes the template (kernels/<family>_tmpl.c), which includes
 * this file itself, defines its entries with TLMI_ISA_NAME and keeps
 * everything else static; the short macros a template defines for its own
 * use are #undef'd at its end.
 *
 *   tlmi_vf       TLMI_VL floats          tlmi_vm  a lane mask
 *   vf_load/store (unaligned)             vf_set1, vf_zero, vf_bcast(p)
 *   vf_add sub mul div min max sqrt       vf_fmadd(a, b, c) = a b + c
 *   vf_fnmadd(a, b, c) = c - a b          vf_round (to nearest even)
 *   vf_gt lt eq isnan -> tlmi_vm          vf_select(m, yes, no)
 *   vf_hsum, vf_hmax (across lanes)       vf_pow2i(n) = 2^n, n integral
 *                                         in [-126, 127]; -127 gives 0
 *   vf_round_bf16(a): each lane rounded to bf16 (nearest even, NaNs kept
 *     quiet, as tlmi_float_to_bf16 in base/half.h) and widened back
 * and, where TLMI_VF_MASKED is defined (AVX-512), masked memory access:
 *   vf_lanes(n) -> tlmi_vm of lanes [0, n)   vf_load_mask(m, p) (other
 *   lanes 0), vf_store_mask(p, m, v) (only lanes of m written)
 */
#ifndef TLM_LIB_KERNELS_SIMD_H
#define TLM_LIB_KERNELS_SIMD_H

#include <stdint.h>

/* The entry `name` of the ISA the including file names (see above). */
#define TLMI_ISA_CAT2(name, suffix) name##_##suffix
#define TLMI_ISA_CAT(name, suffix) TLMI_ISA_CAT2(name, suffix)
#define TLMI_ISA_NAME(name) TLMI_ISA_CAT(name, TLMI_ISA_SUFFIX)

#if defined(TLMI_SIMD_AVX512)

#include <immintrin.h>

#define TLMI_VL 16
typedef __m512 tlmi_vf;
typedef __mmask16 tlmi_vm;

static inline tlmi_vf vf_load(const float *p) { return _mm512_loadu_ps(p); }
static inline void vf_store(float *p, tlmi_vf v) { _mm512_storeu_ps(p, v); }
static inline tlmi_vf vf_set1(float x) { return _mm512_set1_ps(x); }
static inline tlmi_vf vf_bcast(const float *p) { return _mm512_set1_ps(*p); }
static inline tlmi_vf vf_zero(void) { return _mm512_setzero_ps(); }
static inline tlmi_vf vf_add(tlmi_vf a, tlmi_vf b) { return _mm512_add_ps(a, b); }
static inline tlmi_vf vf_sub(tlmi_vf a, tlmi_vf b) { return _mm512_sub_ps(a, b); }
static inline tlmi_vf vf_mul(tlmi_vf a, tlmi_vf b) { return _mm512_mul_ps(a, b); }
static inline tlmi_vf vf_div(tlmi_vf a, tlmi_vf b) { return _mm512_div_ps(a, b); }
static inline tlmi_vf vf_min(tlmi_vf a, tlmi_vf b) { return _mm512_min_ps(a, b); }
static inline tlmi_vf vf_max(tlmi_vf a, tlmi_vf b) { return _mm512_max_ps(a, b); }
static inline tlmi_vf vf_sqrt(tlmi_vf a) { return _mm512_sqrt_ps(a); }
static inline tlmi_vf vf_fmadd(tlmi_vf a, tlmi_vf b, tlmi_vf c) {
    return _mm512_fmadd_ps(a, b, c);
}
static inline tlmi_vf vf_fnmadd(tlmi_vf a, tlmi_vf b, tlmi_vf c) {
    return _mm512_fnmadd_ps(a, b, c);
}
static inline tlmi_vf vf_round(tlmi_vf a) {
    return _mm512_roundscale_ps(a, _MM_FROUND_TO_NEAREST_INT |
                                       _MM_FROUND_NO_EXC);
}
static inline tlmi_vm vf_gt(tlmi_vf a, tlmi_vf b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ);
}
static inline tlmi_vm vf_lt(tlmi_vf a, tlmi_vf b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ);
}
static inline tlmi_vm vf_eq(tlmi_vf a, tlmi_vf b) {
    return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ);
}
static inline tlmi_vm vf_isnan(tlmi_vf a) {
    return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q);
}
static inline tlmi_vf vf_select(tlmi_vm m, tlmi_vf yes, tlmi_vf no) {
    return _mm512_mask_blend_ps(m, no, yes);
}
static inline float vf_hsum(tlmi_vf a) { return _mm512_reduce_add_ps(a); }
static inline float vf_hmax(tlmi_vf a) { return _mm512_reduce_max_ps(a); }
/* Lane masks as loads and stores take them (AVX-512 only: code that
 * tests TLMI_VF_MASKED uses them for the edges of arrays). */
#define TLMI_VF_MASKED 1
static inline tlmi_vm vf_lanes(int64_t n) { /* lanes [0, n); n < 0: none */
    return n >= 16 ? (tlmi_vm)0xffff
                   : (tlmi_vm)((1u << (n > 0 ? n : 0)) - 1u);
}
static inline tlmi_vf vf_load_mask(tlmi_vm m, const float *p) {
    return _mm512_maskz_loadu_ps(m, p);
}
static inline void vf_store_mask(float *p, tlmi_vm m, tlmi_vf v) {
    _mm512_mask_storeu_ps(p, m, v);
}
static inline tlmi_vf vf_pow2i(tlmi_vf n) {
    __m512i e = _mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127));
    return _mm512_castsi512_ps(_mm512_slli_epi32(e, 23));
}
/* bits + 0x7fff + (bit 16), or for a NaN its bits with the quiet bit
 * set, then the low half cleared. */
static inline tlmi_vf vf_round_bf16(tlmi_vf a) {
    const __m512i bits = _mm512_castps_si512(a);
    const __m512i odd =
        _mm512_and_si512(_mm512_srli_epi32(bits, 16), _mm512_set1_epi32(1));
    __m512i r =
        _mm512_add_epi32(bits, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd));
    r = _mm512_mask_or_epi32(r, _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q), bits,
                             _mm512_set1_epi32(0x00400000));
    return _mm512_castsi512_ps(
        _mm512_and_si512(r, _mm512_set1_epi32((int)0xffff0000u)));
}

#elif defined(TLMI_SIMD_AVX2)

#include <immintrin.h>

#define TLMI_VL 8
typedef __m256 tlmi_vf;
typedef __m256 tlmi_vm;

static inline tlmi_vf vf_load(const float *p) { return _mm256_loadu_ps(p); }
static inline void vf_store(float *p, tlmi_vf v) { _mm256_storeu_ps(p, v); }
static inline tlmi_vf vf_set1(float x) { return _mm256_set1_ps(x); }
static inline tlmi_vf vf_bcast(const float *p) { return _mm256_broadcast_ss(p); }
static inline tlmi_vf vf_zero(void) { return _mm256_setzero_ps(); }
static inline tlmi_vf vf_add(tlmi_vf a, tlmi_vf b) { return _mm256_add_ps(a, b); }
static inline tlmi_vf vf_sub(tlmi_vf a, tlmi_vf b) { return _mm256_sub_ps(a, b); }
static inline tlmi_vf vf_mul(tlmi_vf a, tlmi_vf b) { return _mm256_mul_ps(a, b); }
static inline tlmi_vf vf_div(tlmi_vf a, tlmi_vf b) { return _mm256_div_ps(a, b); }
static inline tlmi_vf vf_min(tlmi_vf a, tlmi_vf b) { return _mm256_min_ps(a, b); }
static inline tlmi_vf vf_max(tlmi_vf a, tlmi_vf b) { return _mm256_max_ps(a, b); }
static inline tlmi_vf vf_sqrt(tlmi_vf a) { return _mm256_sqrt_ps(a); }
static inline tlmi_vf vf_fmadd(tlmi_vf a, tlmi_vf b, tlmi_vf c) {
    return _mm256_fmadd_ps(a, b, c);
}
static inline tlmi_vf vf_fnmadd(tlmi_vf a, tlmi_vf b, tlmi_vf c) {
    return _mm256_fnmadd_ps(a, b, c);
}
static inline tlmi_vf vf_round(tlmi_vf a) {
    return _mm256_round_ps(a, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}
static inline tlmi_vm vf_gt(tlmi_vf a, tlmi_vf b) {
    return _mm256_cmp_ps(a, b, _CMP_GT_OQ);
}
static inline tlmi_vm vf_lt(tlmi_vf a, tlmi_vf b) {
    return _mm256_cmp_ps(a, b, _CMP_LT_OQ);
}
static inline tlmi_vm vf_eq(tlmi_vf a, tlmi_vf b) {
    return _mm256_cmp_ps(a, b, _CMP_EQ_OQ);
}
static inline tlmi_vm vf_isnan(tlmi_vf a) {
    return _mm256_cmp_ps(a, a, _CMP_UNORD_Q);
}
static inline tlmi_vf vf_select(tlmi_vm m, tlmi_vf yes, tlmi_vf no) {
    return _mm256_blendv_ps(no, yes, m);
}
static inline float vf_hsum(tlmi_vf a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a),
                          _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline float vf_hmax(tlmi_vf a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a),
                          _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}
static inline tlmi_vf vf_pow2i(tlmi_vf n) {
    __m256i e = _mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127));
    return _mm256_castsi256_ps(_mm256_slli_epi32(e, 23));
}
/* bits + 0x7fff + (bit 16), the low half cleared; a NaN's top half with
 * its quiet bit set instead (blended by byte mask). Magnitudes compare as
 * signed integers (both below 2^31). */
static inline tlmi_vf vf_round_bf16(tlmi_vf a) {
    const __m256i bits = _mm256_castps_si256(a);
    const __m256i keep = _mm256_set1_epi32((int)0xffff0000u);
    const __m256i odd =
        _mm256_and_si256(_mm256_srli_epi32(bits, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_and_si256(
        _mm256_add_epi32(bits, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)),
        keep);
    const __m256i nan = _mm256_cmpgt_epi32(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x7fffffff)),
        _mm256_set1_epi32(0x7f800000));
    const __m256i quieted = _mm256_and_si256(
        _mm256_or_si256(bits, _mm256_set1_epi32(0x00400000)), keep);
    return _mm256_castsi256_ps(_mm256_blendv_epi8(rounded, quieted, nan));
}

#elif defined(TLMI_SIMD_NEON)

#include <arm_neon.h>

#define TLMI_VL 4
typedef float32x4_t tlmi_vf;
typedef uint32x4_t tlmi_vm;

static inline tlmi_vf vf_load(const float *p) { return vld1q_f32(p); }
static inline void vf_store(float *p, tlmi_vf v) { vst1q_f32(p, v); }
static inline tlmi_vf vf_set1(float x) { return vdupq_n_f32(x); }
static inline tlmi_vf vf_bcast(const float *p) { return vld1q_dup_f32(p); }
static inline tlmi_vf vf_zero(void) { return vdupq_n_f32(0.0f); }
static inline tlmi_vf vf_add(tlmi_vf a, tlmi_vf b) { return vaddq_f32(a, b); }
static inline tlmi_vf vf_sub(tlmi_vf a, tlmi_vf b) { return vsubq_f32(a, b); }
static inline tlmi_vf vf_mul(tlmi_vf a, tlmi_vf b) { return vmulq_f32(a, b); }
static inline tlmi_vf vf_div(tlmi_vf a, tlmi_vf b) { return vdivq_f32(a, b); }
static inline tlmi_vf vf_min(tlmi_vf a, tlmi_vf b) { return vminq_f32(a, b); }
static inline tlmi_vf vf_max(tlmi_vf a, tlmi_vf b) { return vmaxq_f32(a, b); }
static inline tlmi_vf vf_sqrt(tlmi_vf a) { return vsqrtq_f32(a); }
static inline tlmi_vf vf_fmadd(tlmi_vf a, tlmi_vf b, tlmi_vf c) {
    return vfmaq_f32(c, a, b);
}
static inline tlmi_vf vf_fnmadd(tlmi_vf a, tlmi_vf b, tlmi_vf c) {
    return vfmsq_f32(c, a, b);
}
static inline tlmi_vf vf_round(tlmi_vf a) { return vrndnq_f32(a); }
static inline tlmi_vm vf_gt(tlmi_vf a, tlmi_vf b) { return vcgtq_f32(a, b); }
static inline tlmi_vm vf_lt(tlmi_vf a, tlmi_vf b) { return vcltq_f32(a, b); }
static inline tlmi_vm vf_eq(tlmi_vf a, tlmi_vf b) { return vceqq_f32(a, b); }
static inline tlmi_vm vf_isnan(tlmi_vf a) {
    return vmvnq_u32(vceqq_f32(a, a));
}
static inline tlmi_vf vf_select(tlmi_vm m, tlmi_vf yes, tlmi_vf no) {
    return vbslq_f32(m, yes, no);
}
static inline float vf_hsum(tlmi_vf a) { return vaddvq_f32(a); }
static inline float vf_hmax(tlmi_vf a) { return vmaxvq_f32(a); }
static inline tlmi_vf vf_pow2i(tlmi_vf n) {
    int32x4_t e = vaddq_s32(vcvtnq_s32_f32(n), vdupq_n_s32(127));
    return vreinterpretq_f32_s32(vshlq_n_s32(e, 23));
}
/* As the AVX2 one, with a bitwise select. */
static inline tlmi_vf vf_round_bf16(tlmi_vf a) {
    const uint32x4_t bits = vreinterpretq_u32_f32(a);
    const uint32x4_t keep = vdupq_n_u32(0xffff0000u);
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(bits, 16), vdupq_n_u32(1u));
    const uint32x4_t rounded =
        vandq_u32(vaddq_u32(bits, vaddq_u32(vdupq_n_u32(0x7fffu), odd)), keep);
    const uint32x4_t nan = vcgtq_u32(vandq_u32(bits, vdupq_n_u32(0x7fffffffu)),
                                     vdupq_n_u32(0x7f800000u));
    const uint32x4_t quieted =
        vandq_u32(vorrq_u32(bits, vdupq_n_u32(0x00400000u)), keep);
    return vreinterpretq_f32_u32(vbslq_u32(nan, quieted, rounded));
}

#else
#error "define TLMI_SIMD_AVX2, TLMI_SIMD_AVX512 or TLMI_SIMD_NEON"
#endif

/* The first n < TLMI_VL floats of p, the other lanes `fill`. */
static inline tlmi_vf vf_load_part(const float *p, int64_t n, float fill) {
    float lanes[TLMI_VL];
    for (int64_t i = 0; i < TLMI_VL; i++)
        lanes[i] = i < n ? p[i] : fill;
    return vf_load(lanes);
}

/* Stores the first n < TLMI_VL lanes of v. */
static inline void vf_store_part(float *p, tlmi_vf v, int64_t n) {
    float lanes[TLMI_VL];
    vf_store(lanes, v);
    for (int64_t i = 0; i < n; i++)
        p[i] = lanes[i];
}

#endif
