/* What the score module's files share: the check that a window of two cubes
 * holds only finite samples, and the noise model behind the chi-square score
 * (noise.c). Nothing here is exported. */
#ifndef EELSVAE_SCORE_PRIVATE_H
#define EELSVAE_SCORE_PRIVATE_H

#include <stdbool.h>
#include <stddef.h>

#include "../cube/cube_private.h"

/* ::EELSVAE_ERR_NUMERIC naming `what` (the public function), the first pixel
 * (y, x) in row-major order, the cube and the channel where either cube holds
 * a non-finite sample in channels first … first + count − 1; ::EELSVAE_OK
 * otherwise. The cubes have the same shape. */
eelsvae_status evae_check_window_finite(const eelsvae_cube *orig, const eelsvae_cube *recon, size_t first,
                                        size_t count, const char *what);

/* Variance of a sample as a function of its reconstructed value x̂:
 * v(x̂) = max(intercept + slope·x̂, floor). */
typedef struct evae_noise_model {
    double intercept, slope;
    double floor;     /* > 0: keeps every division finite */
    bool measurable;  /* false: the residuals showed no spread; v ≡ 1 */
} evae_noise_model;

/* Fit the model on the samples first … first + n − 1 of every pixel (the
 * window, already checked finite), then again without the pixels the first
 * fit finds anomalous. Fails only for want of memory. */
eelsvae_status evae_noise_model_fit(const eelsvae_cube *original, const eelsvae_cube *reconstruction, size_t first,
                                    size_t n, evae_noise_model *model);

/* The reduced chi-square (1/n) Σ (x − x̂)² / v(x̂) of one spectrum. */
double evae_noise_chi2(const float *x, const float *xhat, size_t n, const evae_noise_model *model);

static inline double evae_noise_variance(const evae_noise_model *m, double reconstructed)
{
    double v = m->intercept + m->slope * reconstructed;
    return v > m->floor ? v : m->floor;
}

#endif
