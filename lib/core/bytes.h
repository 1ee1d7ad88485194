/* Little-endian encoding of fixed-width values, for the library's binary
 * files (PCA bases, models): the same bytes whatever the host's order. */
#ifndef EELSVAE_CORE_BYTES_H
#define EELSVAE_CORE_BYTES_H

#include <stdint.h>
#include <string.h>

static inline void evae_put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline void evae_put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint32_t evae_get_u32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) v |= (uint32_t)p[i] << (8 * i);
    return v;
}

static inline uint64_t evae_get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static inline void evae_put_f64(uint8_t *p, double d)
{
    uint64_t v = 0;
    memcpy(&v, &d, sizeof v);
    evae_put_u64(p, v);
}

static inline double evae_get_f64(const uint8_t *p)
{
    uint64_t v = evae_get_u64(p);
    double d = 0;
    memcpy(&d, &v, sizeof d);
    return d;
}

#endif
