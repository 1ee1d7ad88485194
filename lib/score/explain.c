/* Why pixels were flagged: the mean spectra of the flagged pixels, of their
 * reconstructions and of the bulk over a window, so that a shifted edge can
 * be seen as such (eelsvae_explain_means). */
#include "score_private.h"

#include <math.h>
#include <stdio.h>

#define EXPLAIN "eelsvae_explain_means"

/* The window's channels, as eelsvae_scorer_score() finds them: NaN with NaN
 * is the whole axis; one NaN end alone is a mistake, not "open-ended". */
static eelsvae_status explain_window(const eelsvae_cube *cube, double lo, double hi, size_t *first, size_t *count)
{
    if (isnan(lo) && isnan(hi)) {
        *first = 0;
        *count = cube->ne;
        return EELSVAE_OK;
    }
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         EXPLAIN ": window %g:%g is empty or not finite (both NaN: the whole axis)", lo, hi);
    EVAE_TRY(evae_require_energy_calibrated(cube, EXPLAIN));
    eelsvae_status st = eelsvae_cube_energy_window(cube, lo, hi, first, count);
    if (st == EELSVAE_OK) return st;
    char why[256]; /* copied out: evae_fail rewrites the buffer it would read */
    snprintf(why, sizeof why, "%s", eelsvae_last_error());
    return evae_fail(st, EXPLAIN ": %s", why);
}

static eelsvae_status explain_check(const eelsvae_cube *original, const eelsvae_cube *reconstruction,
                                    const uint8_t *mask, size_t mask_count, size_t *flagged)
{
    if (!original || !reconstruction || !mask)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, EXPLAIN ": NULL cube or mask");
    EVAE_TRY(evae_cube_same_shape(original, reconstruction, EXPLAIN ": original and reconstruction"));
    size_t pixels = evae_cube_pixels(original);
    if (mask_count != pixels)
        return evae_fail(EELSVAE_ERR_DIMENSION, EXPLAIN ": the mask holds %zu pixels, the scan has %zu × %zu",
                         mask_count, original->ny, original->nx);
    size_t n = 0;
    for (size_t p = 0; p < pixels; p++) n += mask[p] != 0;
    if (n == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         EXPLAIN ": no pixel is flagged, so there is nothing to explain; check the mask first");
    *flagged = n;
    return EELSVAE_OK;
}

/* Per-channel sums over the pixels, in double: [0] flagged originals,
 * [1] their reconstructions, [2] flagged residuals, [3] bulk originals,
 * each `count` long in `sums` (zeroed). */
static void explain_sums(const eelsvae_cube *orig, const eelsvae_cube *recon, const uint8_t *mask, size_t first,
                         size_t count, double *sums)
{
    double *f = sums, *r = sums + count, *res = sums + 2 * count, *bulk = sums + 3 * count;
    size_t pixels = evae_cube_pixels(orig), ne = orig->ne;
    for (size_t p = 0; p < pixels; p++) {
        const float *a = orig->data + p * ne + first, *b = recon->data + p * ne + first;
        if (!mask[p]) {
            for (size_t i = 0; i < count; i++) bulk[i] += a[i];
            continue;
        }
        for (size_t i = 0; i < count; i++) {
            f[i] += a[i];
            r[i] += b[i];
            res[i] += (double)a[i] - (double)b[i];
        }
    }
}

static void copy_scaled(double *out, const double *sums, size_t count, double divisor)
{
    if (!out) return;
    for (size_t i = 0; i < count; i++) out[i] = divisor > 0 ? sums[i] / divisor : NAN;
}

eelsvae_status eelsvae_explain_means(const eelsvae_cube *original, const eelsvae_cube *reconstruction,
                                     const uint8_t *mask, size_t mask_count, double window_lo, double window_hi,
                                     double *energy, double *flagged_mean, double *flagged_reconstruction_mean,
                                     double *bulk_mean, double *mean_residual, size_t channels)
{
    size_t flagged = 0, first = 0, count = 0;
    EVAE_TRY(explain_check(original, reconstruction, mask, mask_count, &flagged));
    EVAE_TRY(explain_window(original, window_lo, window_hi, &first, &count));
    if (channels != count)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         EXPLAIN ": the output arrays hold %zu channels, the window holds %zu (channels %zu … %zu)",
                         channels, count, first, first + count - 1);
    EVAE_TRY(evae_check_window_finite(original, reconstruction, first, count, EXPLAIN));
    double *sums = NULL;
    EVAE_TRY(evae_alloc_zeros(count, 4 * sizeof(double), (void **)&sums, EXPLAIN " sums"));
    explain_sums(original, reconstruction, mask, first, count, sums);

    double bulk = (double)(evae_cube_pixels(original) - flagged);
    copy_scaled(flagged_mean, sums, count, (double)flagged);
    copy_scaled(flagged_reconstruction_mean, sums + count, count, (double)flagged);
    copy_scaled(mean_residual, sums + 2 * count, count, (double)flagged);
    copy_scaled(bulk_mean, sums + 3 * count, count, bulk); /* NaN when every pixel is flagged */
    const evae_axis_calibration *e = &original->axis[EELSVAE_AXIS_E];
    if (energy)
        for (size_t i = 0; i < count; i++) energy[i] = e->offset + e->scale * (double)(first + i);
    evae_free(sums);
    return EELSVAE_OK;
}
