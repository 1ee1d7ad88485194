/* xoshiro256** with splitmix64 seeding; normal and Poisson variates. */
#include "core.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

void evae_rng_seed(evae_rng *rng, uint64_t seed, uint64_t stream)
{
    /* Mix the stream number in through its own splitmix step so that
     * neighbouring (seed, stream) pairs give unrelated states. */
    uint64_t mix = stream;
    uint64_t state = seed ^ splitmix64(&mix);
    for (int i = 0; i < 4; i++) rng->s[i] = splitmix64(&state);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t evae_rng_u64(evae_rng *rng)
{
    uint64_t *s = rng->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

double evae_rng_uniform(evae_rng *rng)
{
    return (double)(evae_rng_u64(rng) >> 11) * 0x1.0p-53;
}

double evae_rng_normal(evae_rng *rng)
{
    /* Box–Muller, one value per pair: simple and stream-position stable. */
    double u1 = 1.0 - evae_rng_uniform(rng); /* (0, 1] keeps log finite */
    double u2 = evae_rng_uniform(rng);
    return sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2);
}

/* Small means: count uniform products until they drop below e^−mean. */
static double poisson_multiplication(evae_rng *rng, double mean)
{
    double limit = exp(-mean), product = 1.0;
    double k = -1.0;
    do {
        k += 1.0;
        product *= evae_rng_uniform(rng);
    } while (product > limit);
    return k;
}

/* Large means: Hörmann's transformed rejection with squeeze (PTRS, 1993). */
static double poisson_ptrs(evae_rng *rng, double mean)
{
    double slam = sqrt(mean), loglam = log(mean);
    double b = 0.931 + 2.53 * slam;
    double a = -0.059 + 0.02483 * b;
    double inv_alpha = 1.1239 + 1.1328 / (b - 3.4);
    double vr = 0.9277 - 3.6224 / (b - 2.0);
    for (;;) {
        double u = evae_rng_uniform(rng) - 0.5;
        double v = evae_rng_uniform(rng);
        double us = 0.5 - fabs(u);
        double k = floor((2.0 * a / us + b) * u + mean + 0.43);
        if (us >= 0.07 && v <= vr) return k;
        if (k < 0.0 || (us < 0.013 && v > us)) continue;
        if (log(v) + log(inv_alpha) - log(a / (us * us) + b) <= -mean + k * loglam - lgamma(k + 1.0)) return k;
    }
}

double evae_rng_poisson(evae_rng *rng, double mean)
{
    if (!(mean > 0.0)) return 0.0;
    return mean < 10.0 ? poisson_multiplication(rng, mean) : poisson_ptrs(rng, mean);
}
