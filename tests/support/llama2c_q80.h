/* llama2.c's int8 Q8_0 encoding (export.py's quantize_q80, the matrices
 * of a version 2 "ak42" checkpoint), written in C for the tests and the
 * fuzz corpus: export.py needs PyTorch. */
#ifndef TLM_TESTS_LLAMA2C_Q80_H
#define TLM_TESTS_LLAMA2C_Q80_H

#include <stddef.h>
#include <stdint.h>

/* Encodes w [n] (n a multiple of group_size) as export.py does: each group
 * of group_size consecutive values gets scale max|w| / 127 and
 * q = round(w / scale), half to even (torch.round); writes the n int8
 * values, then the n / group_size float32 scales little-endian, to `out`
 * and returns the bytes written. When `dequantized` is not NULL it
 * receives q * scale [n], the values the file stands for (it may be w). */
size_t llama2c_q80_encode(unsigned char *out, const float *w, int64_t n,
                          int32_t group_size, float *dequantized);

#endif
