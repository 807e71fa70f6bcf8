/*
 * The scalar int8 variant (the reference of every int8 variant) and the
 * activation quantization all int8 variants share (scalar/weights.h).
 */
#include "kernels/scalar/weights.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Groups whose largest |a| is below this are quantized as zeros: 127 /
 * max|a| would overflow float32 below about 3.7e-37, and such activations
 * contribute nothing a float32 product could keep anyway. */
#define TINY_GROUP_MAX 1e-30f
#define ROUNDER 12582912.0f /* 1.5 * 2^23 */

size_t tlmi_q8_prepare_bytes(int64_t m, int64_t k) {
    /* 32 bytes of q and one float scale per group and row; callers size
     * m and k as tensors they hold, so this does not overflow. */
    return (size_t)m * (size_t)tlmi_q8_groups(k) *
           (TLMI_Q8_GROUP + sizeof(float));
}

void tlmi_q8_prepare_offset(void *prepared, const float *a, int64_t m,
                            int64_t k, int offset) {
    const int64_t groups = tlmi_q8_groups(k);
    unsigned char *q_all = prepared;
    float *scale_all =
        (float *)(void *)(q_all + (size_t)(m * groups * TLMI_Q8_GROUP));
    for (int64_t i = 0; i < m; i++) {
        const float *row = a + i * k;
        unsigned char *q = q_all + i * groups * TLMI_Q8_GROUP;
        float *scale = scale_all + i * groups;
        for (int64_t g = 0; g < groups; g++) {
            const int64_t p0 = g * TLMI_Q8_GROUP;
            const int64_t n = k - p0 < TLMI_Q8_GROUP ? k - p0 : TLMI_Q8_GROUP;
            float amax = 0.0f;
            int finite = 1;
            for (int64_t t = 0; t < n; t++) {
                const float v = fabsf(row[p0 + t]);
                if (!(v <= FLT_MAX))
                    finite = 0;
                else if (v > amax)
                    amax = v;
            }
            unsigned char *qg = q + p0;
            if (!finite) {
                memset(qg, offset, TLMI_Q8_GROUP);
                scale[g] = NAN;
                continue;
            }
            if (amax < TINY_GROUP_MAX) {
                memset(qg, offset, TLMI_Q8_GROUP);
                scale[g] = 0.0f;
                continue;
            }
            const float inv = 127.0f / amax;
            scale[g] = amax / 127.0f;
            for (int64_t t = 0; t < TLMI_Q8_GROUP; t++) {
                /* nearest even: adding and subtracting 1.5 * 2^23 leaves
                 * no fraction bits (|x| < 2^22); rintf is a libm call on
                 * baseline x86-64 */
                const float x = t < n ? row[p0 + t] * inv : 0.0f;
                float r = (x + ROUNDER) - ROUNDER;
                /* |a * inv| <= 127 (1 + 2^-23): rounds to 127 at most */
                r = r > 127.0f ? 127.0f : r < -127.0f ? -127.0f : r;
                qg[t] = (unsigned char)((int)r + offset);
            }
        }
    }
}

static void prepare_int8(void *prepared, const float *a, int64_t m,
                         int64_t k) {
    tlmi_q8_prepare_offset(prepared, a, m, k, 0);
}

static void product_cols_int8(float *c, int64_t ldc, const void *prepared,
                              const float *a, const tlmi_weights *w,
                              const float *bias, int64_t m, int64_t j_begin,
                              int64_t j_end) {
    (void)a;
    const int64_t k = w->cols, groups = tlmi_q8_groups(k);
    for (int64_t i = 0; i < m; i++) {
        const int8_t *qa = tlmi_q8_prepared_row(prepared, k, i);
        const float *sa = tlmi_q8_prepared_scales(prepared, m, k, i);
        for (int64_t j = j_begin; j < j_end; j++) {
            const int8_t *qw = tlmi_q8_row(w, j);
            const float *sw = tlmi_q8_scales(w, j);
            float acc = 0.0f;
            for (int64_t g = 0; g < groups; g++) {
                int32_t sum = 0; /* |sum| <= 32 * 127 * 127 */
                for (int t = 0; t < TLMI_Q8_GROUP; t++)
                    sum += (int32_t)qa[g * TLMI_Q8_GROUP + t] *
                           (int32_t)qw[g * TLMI_Q8_GROUP + t];
                acc += (float)sum * (sa[g] * sw[g]);
            }
            c[i * ldc + j] = bias != NULL ? acc + bias[j] : acc;
        }
    }
}

void tlmi_weights_int8_dequantize_rows_scalar(float *out,
                                              const tlmi_weights *w,
                                              int64_t row_begin,
                                              int64_t row_end) {
    const int64_t cols = w->cols;
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *q = tlmi_q8_row(w, r);
        const float *scale = tlmi_q8_scales(w, r);
        float *dst = out + (r - row_begin) * cols;
        for (int64_t c = 0; c < cols; c++)
            dst[c] = (float)q[c] * scale[c / TLMI_Q8_GROUP];
    }
}

static void dequantize_block_int8(float *out, int64_t ld,
                                  const tlmi_weights *w, int64_t row_begin,
                                  int64_t row_end, int64_t col_begin,
                                  int64_t col_end) {
    for (int64_t r = row_begin; r < row_end; r++) {
        const int8_t *q = tlmi_q8_row(w, r);
        const float *scale = tlmi_q8_scales(w, r);
        for (int64_t c = col_begin; c < col_end; c++)
            out[(r - row_begin) * ld + c - col_begin] =
                (float)q[c] * scale[c / TLMI_Q8_GROUP];
    }
}

const tlmi_weight_kernels tlmi_weights_int8_scalar = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_SCALAR,
    .name = "scalar",
    .features = 0,
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare_int8,
    .product_cols = product_cols_int8,
    /* The reference: a small threshold, so that tests reach both paths. */
    .direct_max_m = 4,
    .dequantize_rows = tlmi_weights_int8_dequantize_rows_scalar,
    .dequantize_block = dequantize_block_int8,
};
