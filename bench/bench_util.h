/* Small pieces the bench programs share (they are not part of the library). */
#ifndef EELSVAE_BENCH_UTIL_H
#define EELSVAE_BENCH_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

/* A positive integer option value, or exit(2) naming the option. */
static inline size_t parse_size(const char *opt, const char *v)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = v ? strtoull(v, &end, 10) : 0;
    if (!v || errno || *end || n == 0) {
        fprintf(stderr, "%s needs a positive integer\n", opt);
        exit(2);
    }
    return (size_t)n;
}

#endif
