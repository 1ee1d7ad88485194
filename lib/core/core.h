/*
 * Private core of libeelsvae: error reporting, checked sizes, aligned
 * allocation, logging, threads, random numbers, atomic files, CRC-32.
 * Every module includes this; nothing here is exported.
 */
#ifndef EELSVAE_CORE_H
#define EELSVAE_CORE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <eelsvae/eelsvae.h>

#if defined(__GNUC__)
#define EVAE_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define EVAE_PRINTF(fmt_index, first_arg)
#endif

/* ---- errors ------------------------------------------------------------ */

/* Record a failure for eelsvae_last_error() and return its status, so that a
 * failing path reads `return evae_fail(EELSVAE_ERR_RANGE, "...", ...);`. */
eelsvae_status evae_fail(eelsvae_status status, const char *fmt, ...) EVAE_PRINTF(2, 3);

/* Return early when a call fails; its message is already recorded. */
#define EVAE_TRY(call)                                                                                           \
    do {                                                                                                         \
        eelsvae_status evae_try_status_ = (call);                                                                \
        if (evae_try_status_ != EELSVAE_OK) return evae_try_status_;                                             \
    } while (0)

/* Read an options struct the caller may have compiled against an older,
 * shorter definition: copy the bytes it has over defaults, after checking
 * struct_size names at least the struct_size field itself. */
eelsvae_status evae_read_options(void *dst, size_t dst_size, const void *src, const char *what);

/* ---- sizes and memory --------------------------------------------------- */

/* a·b, or EELSVAE_ERR_OVERFLOW naming `what`. */
eelsvae_status evae_mul(size_t a, size_t b, size_t *out, const char *what);
/* a·b·c (and ·d) likewise. */
eelsvae_status evae_mul3(size_t a, size_t b, size_t c, size_t *out, const char *what);
eelsvae_status evae_mul4(size_t a, size_t b, size_t c, size_t d, size_t *out, const char *what);

/* 64-byte aligned memory (never NULL for size 0: at least one line is
 * allocated). Free with evae_free. evae_alloc_array/zeros check n·size. */
void *evae_malloc(size_t bytes);
void evae_free(void *ptr);
eelsvae_status evae_alloc_array(size_t n, size_t size, void **out, const char *what);
eelsvae_status evae_alloc_zeros(size_t n, size_t size, void **out, const char *what);

/* Sort n doubles ascending, in place (no NaN). */
void evae_sort_doubles(double *v, size_t n);
/* The median of n ≥ 1 doubles (no NaN), sorting them in place. */
double evae_median_doubles(double *v, size_t n);

/* Test hook: make the N-th allocation from now fail (0 disables). */
void evae_fail_allocation_after(unsigned long n);

/* ---- logging and threads ----------------------------------------------- */

void evae_log(eelsvae_log_level level, const char *fmt, ...) EVAE_PRINTF(2, 3);
int evae_threads(void);

/* ---- random numbers ----------------------------------------------------- */

/* xoshiro256** seeded through splitmix64 from (seed, stream): independent
 * streams per row or per item make results independent of thread count. */
typedef struct evae_rng {
    uint64_t s[4];
} evae_rng;

void evae_rng_seed(evae_rng *rng, uint64_t seed, uint64_t stream);
uint64_t evae_rng_u64(evae_rng *rng);
double evae_rng_uniform(evae_rng *rng);  /* [0, 1) with 53 bits */
double evae_rng_normal(evae_rng *rng);   /* N(0, 1) */
double evae_rng_poisson(evae_rng *rng, double mean); /* exact Poisson draw */

/* ---- files ------------------------------------------------------------- */

/* Write-to-temporary-then-rename: open a temporary beside `path`; commit
 * flushes, fsyncs, closes and renames over `path`; abort closes and removes
 * the temporary. A failed write never touches the old file. */
typedef struct evae_atomic_file {
    FILE *fp;
    char *path;
    char *tmp_path;
} evae_atomic_file;

eelsvae_status evae_atomic_open(evae_atomic_file *f, const char *path);
eelsvae_status evae_atomic_write(evae_atomic_file *f, const void *data, size_t bytes);
eelsvae_status evae_atomic_commit(evae_atomic_file *f);
void evae_atomic_abort(evae_atomic_file *f);

/* Open a file for reading and find its length; `what` names the kind of
 * file in the message when it is too large to address. */
eelsvae_status evae_open_sized(const char *path, const char *what, FILE **fp, size_t *size);

/* Whole-file read with a size cap; data freed with evae_free. */
eelsvae_status evae_read_file(const char *path, size_t max_bytes, uint8_t **data, size_t *size);

/* CRC-32 (IEEE 802.3, as zlib's crc32), chainable: start with crc = 0. */
uint32_t evae_crc32(uint32_t crc, const void *data, size_t bytes);

#endif /* EELSVAE_CORE_H */
