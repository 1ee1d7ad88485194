/* Checked size arithmetic and 64-byte aligned allocation. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

#define EVAE_ALIGN 64

/* Allocation-failure injection for tests (issue: the SQLite discipline). */
static _Thread_local unsigned long fail_countdown;

void evae_fail_allocation_after(unsigned long n)
{
    fail_countdown = n;
}

eelsvae_status evae_mul(size_t a, size_t b, size_t *out, const char *what)
{
    if (b != 0 && a > SIZE_MAX / b)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: %zu × %zu does not fit in size_t", what, a, b);
    *out = a * b;
    return EELSVAE_OK;
}

eelsvae_status evae_mul3(size_t a, size_t b, size_t c, size_t *out, const char *what)
{
    size_t ab = 0;
    EVAE_TRY(evae_mul(a, b, &ab, what));
    return evae_mul(ab, c, out, what);
}

eelsvae_status evae_mul4(size_t a, size_t b, size_t c, size_t d, size_t *out, const char *what)
{
    size_t abc = 0;
    EVAE_TRY(evae_mul3(a, b, c, &abc, what));
    return evae_mul(abc, d, out, what);
}

void *evae_malloc(size_t bytes)
{
    if (fail_countdown > 0 && --fail_countdown == 0) return NULL;
    size_t rounded = (bytes + EVAE_ALIGN - 1) / EVAE_ALIGN * EVAE_ALIGN;
    if (rounded < bytes) return NULL; /* wrapped */
    if (rounded == 0) rounded = EVAE_ALIGN;
    return aligned_alloc(EVAE_ALIGN, rounded);
}

void evae_free(void *ptr)
{
    free(ptr);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

void evae_sort_doubles(double *v, size_t n)
{
    qsort(v, n, sizeof *v, compare_doubles);
}

double evae_median_doubles(double *v, size_t n)
{
    evae_sort_doubles(v, n);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void eelsvae_free(void *ptr)
{
    evae_free(ptr);
}

eelsvae_status evae_alloc_array(size_t n, size_t size, void **out, const char *what)
{
    size_t bytes = 0;
    EVAE_TRY(evae_mul(n, size, &bytes, what));
    void *p = evae_malloc(bytes);
    if (!p) return evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate %zu bytes", what, bytes);
    *out = p;
    return EELSVAE_OK;
}

eelsvae_status evae_alloc_zeros(size_t n, size_t size, void **out, const char *what)
{
    void *p = NULL;
    EVAE_TRY(evae_alloc_array(n, size, &p, what));
    memset(p, 0, n * size);
    *out = p;
    return EELSVAE_OK;
}
