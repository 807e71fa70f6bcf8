/* Conversions between float and the 16-bit float formats (base/half.h). */
#include "base/half.h"

#include <string.h>

static float float_from_bits(uint32_t bits) {
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static uint32_t bits_of_float(float value) {
    uint32_t bits;
    memcpy(&bits, &value, sizeof bits);
    return bits;
}

/* IEEE binary16 to binary32, exactly (subnormals, infinities, NaNs). */
float tlmi_half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exponent = (h >> 10) & 0x1fu;
    uint32_t mantissa = h & 0x3ffu;
    if (exponent == 0x1f)
        return float_from_bits(sign | 0x7f800000u | (mantissa << 13));
    if (exponent != 0)
        return float_from_bits(sign | ((exponent + 112) << 23) |
                               (mantissa << 13));
    if (mantissa == 0)
        return float_from_bits(sign);
    /* Subnormal: mantissa * 2^-24; normalise it. */
    exponent = 113;
    while ((mantissa & 0x400u) == 0) {
        mantissa <<= 1;
        exponent--;
    }
    return float_from_bits(sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13));
}

uint16_t tlmi_float_to_half(float f) {
    const uint32_t bits = bits_of_float(f);
    const uint16_t sign = (uint16_t)((bits >> 16) & 0x8000u);
    const uint32_t magnitude = bits & 0x7fffffffu;
    if (magnitude >= 0x7f800000u) /* infinity, or NaN kept quiet */
        return (uint16_t)(sign | 0x7c00u |
                          (magnitude > 0x7f800000u ? 0x200u : 0u));
    /* 65520 and above round to infinity (the largest half is 65504). */
    if (magnitude >= 0x477ff000u)
        return (uint16_t)(sign | 0x7c00u);
    const int32_t exponent = (int32_t)(magnitude >> 23) - 127;
    if (exponent < -25) /* below half the smallest subnormal: zero */
        return sign;
    uint32_t mantissa = (magnitude & 0x7fffffu) | 0x800000u; /* 24 bits */
    /* Bits to drop: 13 for a normal half, more for a subnormal one. */
    const int32_t shift = exponent < -14 ? 13 + (-14 - exponent) : 13;
    uint32_t kept = mantissa >> shift;
    const uint32_t rest = mantissa & ((1u << shift) - 1u);
    const uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (kept & 1u)))
        kept++;
    if (exponent < -14) /* subnormal; a carry makes the smallest normal */
        return (uint16_t)(sign | kept);
    /* kept holds the implicit bit at 0x400; a carry into 0x800 moves the
     * exponent up, which the addition below does by itself. */
    return (uint16_t)(sign + (((uint32_t)(exponent + 15) << 10) + kept - 0x400u));
}

float tlmi_bf16_to_float(uint16_t b) {
    return float_from_bits((uint32_t)b << 16);
}

uint16_t tlmi_float_to_bf16(float f) {
    const uint32_t bits = bits_of_float(f);
    if ((bits & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((bits >> 16) | 0x40u);
    const uint32_t rounding = 0x7fffu + ((bits >> 16) & 1u);
    return (uint16_t)((bits + rounding) >> 16);
}
