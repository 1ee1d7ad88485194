/* Writing an options struct into the caller's memory: the counterpart of
 * evae_read_options for the _init_sized()/_get_sized() functions. */
#ifndef EELSVAE_CORE_OPTIONS_OUT_H
#define EELSVAE_CORE_OPTIONS_OUT_H

#include <stddef.h>
#include <string.h>

#include "core.h"

/* Copy the library's filled struct `full` (full_size bytes) into the caller's
 * struct `dst` of caller_size bytes, which a program compiled against an
 * older header may have shorter than ours: only the bytes it has are
 * written. A newer, longer caller struct gets its tail beyond ours zeroed
 * (it is the caller's memory by its own struct_size), so that no field is
 * left indeterminate. struct_size (the first field) becomes caller_size.
 * `what` names the struct in the message ("PCA options"). */
static inline eelsvae_status evae_write_options(void *dst, size_t caller_size, const void *full, size_t full_size,
                                                const char *what)
{
    if (!dst) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL pointer", what);
    if (caller_size < sizeof(size_t))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s: struct_size %zu is smaller than the struct_size field itself (%zu bytes); "
                         "pass the sizeof of the struct",
                         what, caller_size, sizeof(size_t));
    memcpy(dst, full, caller_size < full_size ? caller_size : full_size);
    if (caller_size > full_size) memset((char *)dst + full_size, 0, caller_size - full_size);
    memcpy(dst, &caller_size, sizeof caller_size);
    return EELSVAE_OK;
}

#endif
