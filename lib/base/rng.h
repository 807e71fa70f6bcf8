/*
 * The seedable random number generator every handle that needs randomness
 * owns (no global state): xoshiro256** seeded through splitmix64, so runs
 * reproduce from a seed on every platform.
 */
#ifndef TLM_LIB_BASE_RNG_H
#define TLM_LIB_BASE_RNG_H

#include <stdint.h>

typedef struct tlmi_rng {
    uint64_t state[4];
} tlmi_rng;

void tlmi_rng_seed(tlmi_rng *rng, uint64_t seed);
uint64_t tlmi_rng_next(tlmi_rng *rng);
/* Uniform in [0, 1), 24 random bits. */
float tlmi_rng_uniform(tlmi_rng *rng);
/* Standard normal (Box-Muller). */
float tlmi_rng_normal(tlmi_rng *rng);

#endif
