/* What the score module's files share: the check that a window of two cubes
 * holds only finite samples. */
#ifndef EELSVAE_SCORE_PRIVATE_H
#define EELSVAE_SCORE_PRIVATE_H

#include "../cube/cube_private.h"

/* ::EELSVAE_ERR_NUMERIC naming `what` (the public function), the first pixel
 * (y, x) in row-major order, the cube and the channel where either cube holds
 * a non-finite sample in channels first … first + count − 1; ::EELSVAE_OK
 * otherwise. The cubes have the same shape. */
eelsvae_status evae_check_window_finite(const eelsvae_cube *orig, const eelsvae_cube *recon, size_t first,
                                        size_t count, const char *what);

#endif
