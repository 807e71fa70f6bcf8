/*
 * The scalar bf16 variant: the reference of every bf16 variant
 * (scalar/weights.h).
 */
#include "kernels/scalar/weights.h"

#include <stddef.h>
#include <stdint.h>

#include "base/half.h"

static size_t prepare_bytes_bf16(int64_t m, int64_t k) {
    (void)m, (void)k;
    return 0; /* the product reads A as given */
}

static void prepare_bf16(void *prepared, const float *a, int64_t m,
                         int64_t k) {
    (void)prepared, (void)a, (void)m, (void)k;
}

static void product_cols_bf16(float *c, int64_t ldc, const void *prepared,
                              const float *a, const tlmi_weights *w,
                              const float *bias, int64_t m, int64_t j_begin,
                              int64_t j_end) {
    (void)prepared;
    const int64_t k = w->cols;
    const uint16_t *wdata = w->data;
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = j_begin; j < j_end; j++) {
            const uint16_t *wrow = wdata + j * k;
            float acc = 0.0f;
            for (int64_t p = 0; p < k; p++)
                acc += a[i * k + p] * tlmi_bf16_to_float(wrow[p]);
            c[i * ldc + j] = bias != NULL ? acc + bias[j] : acc;
        }
}

void tlmi_weights_bf16_dequantize_rows_scalar(float *out,
                                              const tlmi_weights *w,
                                              int64_t row_begin,
                                              int64_t row_end) {
    const int64_t cols = w->cols;
    const uint16_t *wdata = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        for (int64_t c = 0; c < cols; c++)
            out[(r - row_begin) * cols + c] =
                tlmi_bf16_to_float(wdata[r * cols + c]);
}

static void dequantize_block_bf16(float *out, int64_t ld,
                                  const tlmi_weights *w, int64_t row_begin,
                                  int64_t row_end, int64_t col_begin,
                                  int64_t col_end) {
    const uint16_t *wdata = w->data;
    for (int64_t r = row_begin; r < row_end; r++)
        for (int64_t c = col_begin; c < col_end; c++)
            out[(r - row_begin) * ld + c - col_begin] =
                tlmi_bf16_to_float(wdata[r * w->cols + c]);
}

const tlmi_weight_kernels tlmi_weights_bf16_scalar = {
    .format = TLM_WEIGHTS_BF16,
    .isa = TLMI_ISA_SCALAR,
    .name = "scalar",
    .features = 0,
    .prepare_bytes = prepare_bytes_bf16,
    .prepare = prepare_bf16,
    .product_cols = product_cols_bf16,
    .direct_max_m = 4,
    .dequantize_rows = tlmi_weights_bf16_dequantize_rows_scalar,
    .dequantize_block = dequantize_block_bf16,
};
