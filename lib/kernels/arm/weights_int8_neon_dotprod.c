/*
 * Products with int8 weights on Armv8.2 with the dot product (SDOT,
 * vdotq_s32; compiled with +dotprod, chosen only where HWCAP reports
 * asimddp): weights_int8_neon_tmpl.c with SDOT.
 */
#define TLMI_WEIGHTS_SDOT 1
#include "weights_int8_neon_tmpl.c"

const tlmi_weight_kernels tlmi_weights_int8_neon_dotprod = {
    .format = TLM_WEIGHTS_INT8,
    .isa = TLMI_ISA_NEON,
    .name = "neon-dotprod",
    .features = TLM_CPU_ARM_DOTPROD,
    .prepare_bytes = tlmi_q8_prepare_bytes,
    .prepare = prepare,
    .product_cols = product_cols,
    .direct_max_m = 8, /* a guess: not measured on Arm hardware */
    .dequantize_rows = dequantize_rows,
};
