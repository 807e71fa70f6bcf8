#include "llama2c_q80.h"

#include <math.h>
#include <string.h>

size_t llama2c_q80_encode(unsigned char *out, const float *w, int64_t n,
                          int32_t group_size, float *dequantized) {
    const int64_t groups = n / group_size;
    for (int64_t g = 0; g < groups; g++) {
        const int64_t first = g * group_size;
        float largest = 0.0f;
        for (int32_t i = 0; i < group_size; i++)
            largest = fmaxf(largest, fabsf(w[first + i]));
        const float scale = largest / 127.0f;
        for (int32_t i = 0; i < group_size; i++) {
            const signed char q = (signed char)(scale > 0.0f ? rintf(w[first + i] / scale) : 0.0f);
            out[first + i] = (unsigned char)q;
            if (dequantized != NULL)
                dequantized[first + i] = (float)q * scale;
        }
        uint32_t bits;
        memcpy(&bits, &scale, sizeof bits);
        for (int b = 0; b < 4; b++)
            out[n + 4 * g + b] = (unsigned char)(bits >> (8 * b));
    }
    return (size_t)(n + 4 * groups);
}
