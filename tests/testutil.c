#include "testutil.h"

#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
#include <malloc.h>
#define HAVE_MALLINFO2 1
#else
#define HAVE_MALLINFO2 0
#endif
#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifndef UNDER_ASAN
#define UNDER_ASAN 0
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *tu_tmpdir(void)
{
    static char dir[512];
    if (!dir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/eelsvae-test-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(dir)) {
            perror("mkdtemp");
            exit(1);
        }
    }
    return dir;
}

const char *tu_path(const char *name)
{
    static char buf[8][1024];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, sizeof buf[0], "%s/%s", tu_tmpdir(), name);
    return p;
}

const char *tu_python(void)
{
    static int checked;
    static const char *python;
    if (!checked) {
        checked = 1;
        const char *p = getenv("EELSVAE_PYTHON");
        if (!p || !*p) p = "/usr/bin/python3";
        if (tu_system("%s -c 'import numpy' >/dev/null 2>&1", p) == 0) python = p;
    }
    return python;
}

int tu_system(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    return rc == -1 ? -1 : WEXITSTATUS(rc);
}

void tu_fill_uniform(float *x, size_t n, double lo, double hi, uint64_t seed)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        x[i] = (float)(lo + (hi - lo) * (double)(s >> 11) * 0x1.0p-53);
    }
}

eelsvae_cube *tu_random_cube(size_t ny, size_t nx, size_t ne, uint64_t seed)
{
    eelsvae_cube *c = NULL;
    if (eelsvae_cube_create(ny, nx, ne, &c) != EELSVAE_OK) return NULL;
    tu_fill_uniform(eelsvae_cube_data(c), ny * nx * ne, 0.0, 1.0, seed);
    return c;
}

size_t tu_heap_in_use(void)
{
#if HAVE_MALLINFO2
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#else
    return 0;
#endif
}

int tu_heap_measurable(void)
{
    return HAVE_MALLINFO2 && !UNDER_ASAN;
}
