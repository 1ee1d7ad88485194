/* Placeholder until the Ripple reader and writer land. */
#include "io_private.h"

eelsvae_status evae_rpl_read(const char *path, eelsvae_signal **out)
{
    (void)out;
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: Ripple files are not read yet", path);
}

eelsvae_status evae_rpl_write(const eelsvae_signal *s, const char *path)
{
    (void)s;
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: Ripple files are not written yet", path);
}
