/* Shared helpers for the cmocka tests. */
#ifndef EELSVAE_TESTUTIL_H
#define EELSVAE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <eelsvae/eelsvae.h>

/* Fail the test with the library's message unless `call` returns EELSVAE_OK. */
#define assert_ok(call)                                                                                          \
    do {                                                                                                         \
        eelsvae_status tu_st_ = (call);                                                                          \
        if (tu_st_ != EELSVAE_OK)                                                                                \
            fail_msg("%s returned %s: %s", #call, eelsvae_strerror(tu_st_), eelsvae_last_error());               \
    } while (0)

/* Assert `call` fails with `expected` and leaves a non-empty message. */
#define assert_status(call, expected)                                                                            \
    do {                                                                                                         \
        eelsvae_status tu_st_ = (call);                                                                          \
        if (tu_st_ != (expected))                                                                                \
            fail_msg("%s returned %s, expected %s (%s)", #call, eelsvae_strerror(tu_st_),                        \
                     eelsvae_strerror(expected), eelsvae_last_error());                                          \
        assert_true(eelsvae_last_error()[0] != '\0');                                                            \
    } while (0)

/* |a − b| ≤ atol + rtol·|b|, with a message naming both values. */
#define assert_close(a, b, atol, rtol)                                                                           \
    do {                                                                                                         \
        double tu_a_ = (double)(a), tu_b_ = (double)(b);                                                         \
        double tu_d_ = tu_a_ - tu_b_;                                                                            \
        if (tu_d_ < 0) tu_d_ = -tu_d_;                                                                           \
        double tu_m_ = tu_b_ < 0 ? -tu_b_ : tu_b_;                                                               \
        if (!(tu_d_ <= (atol) + (rtol) * tu_m_))                                                                 \
            fail_msg("%s = %.9g, expected %s = %.9g (atol %g, rtol %g)", #a, tu_a_, #b, tu_b_, (double)(atol),   \
                     (double)(rtol));                                                                            \
    } while (0)

/* A fresh directory for this test process's files (created once, under
 * $TMPDIR or /tmp); the path stays valid for the whole process. */
const char *tu_tmpdir(void);

/* tu_path("x.npy") → "<tmpdir>/x.npy" in a static rotating buffer. */
const char *tu_path(const char *name);

/* The Python with NumPy (Debian's /usr/bin/python3), or NULL when it or
 * NumPy is missing; tests that need it skip, saying so. */
const char *tu_python(void);

/* Run a shell command built printf-style; returns its exit status. */
int tu_system(const char *fmt, ...);

/* Skip the current test with a reason printed on stderr. */
#define tu_skip(reason)                                                                                          \
    do {                                                                                                         \
        print_message("skipped: %s\n", reason);                                                                  \
        skip();                                                                                                  \
    } while (0)

/* Heap bytes in use (glibc's main arena plus mmapped blocks), for tests that
 * check a memory estimate; tu_heap_measurable() is false where that cannot be
 * watched (no mallinfo2 before glibc 2.33, or AddressSanitizer's own malloc). */
size_t tu_heap_in_use(void);
int tu_heap_measurable(void);

/* Deterministic pseudo-random floats in [lo, hi). */
void tu_fill_uniform(float *x, size_t n, double lo, double hi, uint64_t seed);

/* A new cube of random samples in [0, 1). */
eelsvae_cube *tu_random_cube(size_t ny, size_t nx, size_t ne, uint64_t seed);

#endif
