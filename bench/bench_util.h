/* Small pieces the bench programs share (they are not part of the library). */
#ifndef EELSVAE_BENCH_UTIL_H
#define EELSVAE_BENCH_UTIL_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

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

/* The directory a bench writes its exchange files to: `keep` (created if
 * missing), or a fresh one under $TMPDIR; exits with a message on failure. */
static inline void bench_work_dir(const char *prog, const char *keep, char *dir, size_t size)
{
    if (keep) {
        snprintf(dir, size, "%s", keep);
        if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: cannot create %s: %s\n", prog, dir, strerror(errno));
            exit(1);
        }
        return;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, size, "%s/%s-XXXXXX", tmp && *tmp ? tmp : "/tmp", prog);
    if (!mkdtemp(dir)) {
        fprintf(stderr, "%s: cannot create a directory under /tmp: %s\n", prog, strerror(errno));
        exit(1);
    }
}

#endif
