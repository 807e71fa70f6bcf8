/*
 * Products with int8 weights on plain AArch64 Advanced SIMD (vmull_s8,
 * vpadalq_s16): weights_int8_neon_tmpl.c without SDOT.
 */
#define TLMI_WEIGHTS_SDOT 0
#include "weights_int8_neon_tmpl.c"

const tlmi_weight_kernels tlmi_weights_int8_neon = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_NEON,
    .name = "neon",
    .features = 0, /* Advanced SIMD: the table's own */
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 8, /* a guess: not measured on Arm hardware */
    .dequantize_rows = dequantize_rows,
};
