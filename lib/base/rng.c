#include "rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void tlmi_rng_seed(tlmi_rng *rng, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        rng->state[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t tlmi_rng_next(tlmi_rng *rng) {
    uint64_t *s = rng->state;
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

float tlmi_rng_uniform(tlmi_rng *rng) {
    return (float)(tlmi_rng_next(rng) >> 40) * (1.0f / 16777216.0f);
}

float tlmi_rng_normal(tlmi_rng *rng) {
    /* 1 - u lies in (0, 1], so the logarithm is finite. */
    double u1 = 1.0 - (double)(tlmi_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    double u2 = (double)(tlmi_rng_next(rng) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
