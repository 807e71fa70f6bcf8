/*
 * Quantized weights: sizes, the reference quantization, checks of data
 * read from files, and the list and choice of the product variants
 * (kernels/weights.h).
 */
#include "kernels/weights.h"

#include <float.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/cpu.h"
#include "base/half.h"
#include "kernels/scalar/weights.h"
#include "kernels/weights_bf16.h"

/* ---- Sizes -------------------------------------------------------------- */

size_t tlmi_weights_bytes(int32_t format, int64_t rows, int64_t cols) {
    if (rows < 0 || cols < 0)
        return SIZE_MAX;
    uint64_t per_row; /* bytes of one row */
    switch (format) {
    case TLM_WEIGHTS_F32:
        if ((uint64_t)cols > UINT64_MAX / 4)
            return SIZE_MAX;
        per_row = (uint64_t)cols * 4;
        break;
    case TLM_WEIGHTS_BF16:
        if ((uint64_t)cols > UINT64_MAX / 2)
            return SIZE_MAX;
        per_row = (uint64_t)cols * 2;
        break;
    case TLM_WEIGHTS_INT8:
        /* groups * (32 q bytes + a 4-byte scale) */
        per_row = (uint64_t)tlmi_q8_groups(cols) * (TLMI_Q8_GROUP + 4);
        break;
    default:
        return SIZE_MAX;
    }
    if (per_row != 0 && (uint64_t)rows > UINT64_MAX / per_row)
        return SIZE_MAX;
    const uint64_t bytes = per_row * (uint64_t)rows;
    return bytes >= (uint64_t)SIZE_MAX ? SIZE_MAX : (size_t)bytes;
}

/* ---- Quantization ------------------------------------------------------- */

/* Largest float32 that rounds (nearest even) to a finite bf16: halfway
 * between bf16's largest value 0x7f7f and infinity rounds to even, that
 * is up, so everything below 0x7f7f8000 stays finite. */
#define BF16_FINITE_LIMIT 0x7f7f8000u

static int quantize_bf16(uint16_t *dst, const float *src, int64_t rows,
                         int64_t cols, int64_t *bad_row) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            const float v = src[r * cols + c];
            uint32_t bits;
            memcpy(&bits, &v, sizeof bits);
            if ((bits & 0x7fffffffu) >= BF16_FINITE_LIMIT) {
                *bad_row = r;
                return -1;
            }
            dst[r * cols + c] = tlmi_float_to_bf16(v);
        }
    return 0;
}

static int quantize_int8(void *dst, const float *src, int64_t rows,
                         int64_t cols, int64_t *bad_row) {
    const int64_t groups = tlmi_q8_groups(cols);
    int8_t *q_all = dst;
    float *scale_all = (float *)(void *)((char *)dst +
                                         (size_t)(rows * groups * TLMI_Q8_GROUP));
    for (int64_t r = 0; r < rows; r++) {
        const float *row = src + r * cols;
        int8_t *q = q_all + r * groups * TLMI_Q8_GROUP;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t c0 = g * TLMI_Q8_GROUP;
            const int64_t n = cols - c0 < TLMI_Q8_GROUP ? cols - c0
                                                         : TLMI_Q8_GROUP;
            float amax = 0.0f;
            for (int64_t t = 0; t < n; t++) {
                const float v = fabsf(row[c0 + t]);
                if (!(v <= FLT_MAX)) {
                    *bad_row = r;
                    return -1;
                }
                if (v > amax)
                    amax = v;
            }
            const float scale = amax / 127.0f;
            scale_all[r * groups + g] = scale;
            for (int64_t t = 0; t < TLMI_Q8_GROUP; t++) {
                float x = 0.0f;
                if (t < n && scale > 0.0f) {
                    /* |w / scale| <= 127 up to rounding; a subnormal
                     * max|w| may make it larger (or infinite): clamp
                     * before converting. */
                    x = rintf(row[c0 + t] / scale);
                    x = x > 127.0f ? 127.0f : x < -127.0f ? -127.0f : x;
                }
                q[c0 + t] = (int8_t)x;
            }
        }
    }
    return 0;
}

int tlmi_weights_quantize(void *dst, const float *src, int32_t format,
                          int64_t rows, int64_t cols, int64_t *bad_row) {
    *bad_row = -1;
    switch (format) {
    case TLM_WEIGHTS_BF16:
        return quantize_bf16(dst, src, rows, cols, bad_row);
    case TLM_WEIGHTS_INT8:
        return quantize_int8(dst, src, rows, cols, bad_row);
    case TLM_WEIGHTS_F32:
        memcpy(dst, src, (size_t)rows * (size_t)cols * sizeof(float));
        for (int64_t r = 0; r < rows; r++)
            for (int64_t c = 0; c < cols; c++)
                if (!(fabsf(src[r * cols + c]) <= FLT_MAX)) {
                    *bad_row = r;
                    return -1;
                }
        return 0;
    default:
        return -1;
    }
}

void tlmi_weights_dequantize_rows(float *out, const tlmi_weights *w,
                                  int64_t row_begin, int64_t row_end) {
    if (w->format == TLM_WEIGHTS_INT8)
        tlmi_weights_int8_dequantize_rows_scalar(out, w, row_begin, row_end);
    else if (w->format == TLM_WEIGHTS_BF16)
        tlmi_weights_bf16_dequantize_rows_scalar(out, w, row_begin, row_end);
    else if (w->format == TLM_WEIGHTS_F32)
        memcpy(out, (const float *)w->data + row_begin * w->cols,
               (size_t)(row_end - row_begin) * (size_t)w->cols *
                   sizeof(float));
}

/* ---- Checks of data read from files ------------------------------------ */

int tlmi_weights_validate(const tlmi_weights *w, int64_t *bad_row,
                          const char **reason) {
    *bad_row = -1;
    *reason = NULL;
    if (w->format == TLM_WEIGHTS_BF16) {
        const uint16_t *v = w->data;
        for (int64_t r = 0; r < w->rows; r++)
            for (int64_t c = 0; c < w->cols; c++)
                if ((v[r * w->cols + c] & 0x7f80u) == 0x7f80u) {
                    *bad_row = r;
                    *reason = "a bf16 value is NaN or infinite";
                    return -1;
                }
        return 0;
    }
    if (w->format != TLM_WEIGHTS_INT8) {
        *reason = "unknown weight format";
        return -1;
    }
    const int64_t groups = tlmi_q8_groups(w->cols);
    for (int64_t r = 0; r < w->rows; r++) {
        const float *scale = tlmi_q8_scales(w, r);
        for (int64_t g = 0; g < groups; g++) {
            if (!(scale[g] <= FLT_MAX)) {
                *bad_row = r;
                *reason = "a group's scale is NaN or infinite";
                return -1;
            }
            if (scale[g] < 0.0f) {
                *bad_row = r;
                *reason = "a group's scale is negative";
                return -1;
            }
        }
        const int8_t *q = tlmi_q8_row(w, r);
        for (int64_t c = 0; c < groups * TLMI_Q8_GROUP; c++) {
            if (q[c] == -128) {
                *bad_row = r;
                *reason = "a q value is -128 (int8 weights are -127..127)";
                return -1;
            }
            if (c >= w->cols && q[c] != 0) {
                *bad_row = r;
                *reason = "the padding past the last column is not zero";
                return -1;
            }
        }
    }
    return 0;
}

/* ---- Variants ----------------------------------------------------------- */

/* Every variant compiled into this build, each format's best first. */
static const tlmi_weight_kernels *const compiled[] = {
#if defined(TLMI_HAVE_AVX512_VNNI)
    &tlmi_weights_int8_avx512_vnni,
#endif
#if defined(TLMI_HAVE_AVX2)
    &tlmi_weights_int8_avx2,
#endif
#if defined(TLMI_HAVE_NEON_DOTPROD)
    &tlmi_weights_int8_neon_dotprod,
#endif
#if defined(TLMI_HAVE_NEON)
    &tlmi_weights_int8_neon,
#endif
    &tlmi_weights_int8_scalar,
#if defined(TLMI_HAVE_AVX512_BF16)
    &tlmi_weights_bf16_avx512bf16,
#endif
#if defined(TLMI_HAVE_AVX512)
    &tlmi_weights_bf16_avx512,
#endif
#if defined(TLMI_HAVE_AVX2)
    &tlmi_weights_bf16_avx2,
#endif
#if defined(TLMI_HAVE_NEON_BF16)
    &tlmi_weights_bf16_neonbf16,
#endif
#if defined(TLMI_HAVE_NEON)
    &tlmi_weights_bf16_neon,
#endif
    &tlmi_weights_bf16_scalar,
};

#define COMPILED_COUNT (sizeof compiled / sizeof compiled[0])

/* Features of the variant and of its ISA's table. */
static uint32_t needs(const tlmi_weight_kernels *wk) {
    return wk->features | tlmi_isa_features(wk->isa);
}

static const tlmi_weight_kernels *runnable[COMPILED_COUNT + 1];
static pthread_once_t runnable_once = PTHREAD_ONCE_INIT;

static void list_runnable(void) {
    const uint32_t cpu = tlmi_cpu_detect();
    size_t count = 0;
    for (size_t v = 0; v < COMPILED_COUNT; v++)
        if ((cpu & needs(compiled[v])) == needs(compiled[v]))
            runnable[count++] = compiled[v];
    runnable[count] = NULL;
}

const tlmi_weight_kernels *const *tlmi_weight_kernels_all(void) {
    pthread_once(&runnable_once, list_runnable);
    return runnable;
}

const tlmi_weight_kernels *tlmi_weight_kernels_choose(
    const tlmi_kernels *kernels, int32_t format, uint32_t features) {
    const uint32_t table = tlmi_isa_features(kernels->isa);
    for (size_t v = 0; v < COMPILED_COUNT; v++) {
        const tlmi_weight_kernels *wk = compiled[v];
        const uint32_t isa_needs = tlmi_isa_features(wk->isa);
        if (wk->format == format && (isa_needs & ~table) == 0 &&
            (features & needs(wk)) == needs(wk))
            return wk;
    }
    return format == TLM_WEIGHTS_BF16 ? &tlmi_weights_bf16_scalar
                                      : &tlmi_weights_int8_scalar;
}
