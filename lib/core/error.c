/* Status names, the thread-local error sentence, version, options reading. */
#include "core.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char last_error[512];

eelsvae_status evae_fail(eelsvae_status status, const char *fmt, ...)
{
    /* Formatted aside first: a message may quote eelsvae_last_error() itself,
     * to add context to what a deeper call reported. */
    char message[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    memcpy(last_error, message, sizeof last_error);
    return status;
}

const char *eelsvae_last_error(void)
{
    return last_error;
}

const char *eelsvae_strerror(eelsvae_status status)
{
    switch (status) {
    case EELSVAE_OK: return "EELSVAE_OK";
    case EELSVAE_ERR_INVALID_ARGUMENT: return "EELSVAE_ERR_INVALID_ARGUMENT";
    case EELSVAE_ERR_NOMEM: return "EELSVAE_ERR_NOMEM";
    case EELSVAE_ERR_OVERFLOW: return "EELSVAE_ERR_OVERFLOW";
    case EELSVAE_ERR_IO: return "EELSVAE_ERR_IO";
    case EELSVAE_ERR_FORMAT: return "EELSVAE_ERR_FORMAT";
    case EELSVAE_ERR_UNSUPPORTED: return "EELSVAE_ERR_UNSUPPORTED";
    case EELSVAE_ERR_DIMENSION: return "EELSVAE_ERR_DIMENSION";
    case EELSVAE_ERR_RANGE: return "EELSVAE_ERR_RANGE";
    case EELSVAE_ERR_NUMERIC: return "EELSVAE_ERR_NUMERIC";
    case EELSVAE_ERR_CANCELLED: return "EELSVAE_ERR_CANCELLED";
    case EELSVAE_ERR_CHECKSUM: return "EELSVAE_ERR_CHECKSUM";
    case EELSVAE_ERR_VERSION: return "EELSVAE_ERR_VERSION";
    case EELSVAE_ERR_INTERNAL: return "EELSVAE_ERR_INTERNAL";
    }
    return "EELSVAE_ERR_UNKNOWN";
}

int eelsvae_version_number(void)
{
    return EELSVAE_VERSION_NUMBER;
}

#define EVAE_STR2(x) #x
#define EVAE_STR(x) EVAE_STR2(x)

const char *eelsvae_version_string(void)
{
    return EVAE_STR(EELSVAE_VERSION_MAJOR) "." EVAE_STR(EELSVAE_VERSION_MINOR) "." EVAE_STR(EELSVAE_VERSION_PATCH);
}

eelsvae_status evae_read_options(void *dst, size_t dst_size, const void *src, const char *what)
{
    if (!src) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s options: NULL pointer", what);
    size_t given = *(const size_t *)src;
    if (given < sizeof(size_t))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s options: struct_size is %zu; fill the struct with its _options_init() first", what,
                         given);
    /* A newer caller may pass a longer struct: fields we do not know are ignored. */
    memcpy(dst, src, given < dst_size ? given : dst_size);
    *(size_t *)dst = dst_size;
    return EELSVAE_OK;
}
