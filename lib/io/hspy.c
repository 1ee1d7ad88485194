/* Placeholder until the HDF5 reader and writer land. */
#include "io_private.h"

int evae_hspy_available(void)
{
    return 0;
}

eelsvae_status evae_hspy_read(const char *path, eelsvae_signal **out)
{
    (void)out;
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: this libeelsvae was built without HDF5, so it cannot read .hspy",
                     path);
}

eelsvae_status evae_hspy_write(const eelsvae_signal *s, const char *path)
{
    (void)s;
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: this libeelsvae was built without HDF5, so it cannot write .hspy",
                     path);
}
