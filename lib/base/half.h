/*
 * 16-bit floats: IEEE binary16 ("half", safetensors F16) and bfloat16
 * (the top 16 bits of a binary32, safetensors BF16 and llm.c's version 5
 * checkpoints), to and from float. Widening is exact; narrowing rounds to
 * the nearest value, ties to even, as PyTorch's .to(torch.float16) and
 * .to(torch.bfloat16) do; NaNs stay NaNs (quiet) and overflow gives an
 * infinity.
 */
#ifndef TLM_LIB_BASE_HALF_H
#define TLM_LIB_BASE_HALF_H

#include <stdint.h>

float tlmi_half_to_float(uint16_t h);
uint16_t tlmi_float_to_half(float f);
float tlmi_bf16_to_float(uint16_t b);
uint16_t tlmi_float_to_bf16(float f);

#endif
