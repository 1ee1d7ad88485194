/* Thread count and the log callback. */
#include "core.h"

#include <stdio.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Set by eelsvae_set_threads; 0 = every core. Plain globals: the API asks
 * callers to configure before starting threads that use the library. */
static int thread_setting;
static eelsvae_log_fn log_fn;
static void *log_user;

extern void openblas_set_num_threads(int);

static int available_cores(void)
{
#ifdef _OPENMP
    return omp_get_max_threads(); /* honours OMP_NUM_THREADS */
#else
    return 1;
#endif
}

eelsvae_status eelsvae_set_threads(int threads)
{
    if (threads < 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "thread count %d is negative", threads);
    thread_setting = threads;
    openblas_set_num_threads(evae_threads());
    return EELSVAE_OK;
}

int eelsvae_threads(void)
{
    return evae_threads();
}

int evae_threads(void)
{
    return thread_setting > 0 ? thread_setting : available_cores();
}

void eelsvae_set_log_callback(eelsvae_log_fn fn, void *user)
{
    log_fn = fn;
    log_user = user;
}

void evae_log(eelsvae_log_level level, const char *fmt, ...)
{
    if (!log_fn) return;
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    log_fn(log_user, level, line);
}
