/* Placeholder until the DigitalMicrograph reader lands. */
#include "io_private.h"

eelsvae_status evae_dm_count(const char *path, size_t *count, size_t *main_index)
{
    (void)count;
    (void)main_index;
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: DigitalMicrograph files are not read yet", path);
}

eelsvae_status evae_dm_read(const char *path, size_t index, eelsvae_signal **out)
{
    (void)index;
    (void)out;
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: DigitalMicrograph files are not read yet", path);
}
