/* Anomaly injection, as the paper's benchmark does it: a mask of disks, and
 * an energy shift of the part of each masked spectrum inside a window. */
#include "cube_private.h"

#include <math.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- disk mask ------------------------------------------------------------ */

/* Candidate centres drawn in all, over every restart, before giving up;
 * each candidate is checked against at most `count` placed centres. */
#define DISK_DRAW_BUDGET 200000u
/* Candidates for one disk before the placement restarts from scratch (a
 * greedy placement can jam where another arrangement still fits). */
#define DISK_TRIES_PER_DISK 1000u

static int far_enough(const double *centres, size_t placed, double cy, double cx, double min_sq)
{
    for (size_t k = 0; k < placed; k++) {
        double dy = centres[2 * k] - cy, dx = centres[2 * k + 1] - cx;
        if (dy * dy + dx * dx < min_sq) return 0;
    }
    return 1;
}

/* Place every centre uniformly in [lo, hi_y] × [lo, hi_x]; 0 when the
 * budget runs out. */
static int place_centres(evae_rng *rng, size_t count, double lo, double hi_y, double hi_x, double min_sep,
                         double *centres)
{
    double min_sq = min_sep * min_sep;
    unsigned long drawn = 0;
    while (drawn < DISK_DRAW_BUDGET) {
        size_t placed = 0;
        unsigned long tries = 0;
        while (placed < count && tries < DISK_TRIES_PER_DISK && drawn < DISK_DRAW_BUDGET) {
            double cy = lo + (hi_y - lo) * evae_rng_uniform(rng);
            double cx = lo + (hi_x - lo) * evae_rng_uniform(rng);
            drawn++;
            tries++;
            if (!far_enough(centres, placed, cy, cx, min_sq)) continue;
            centres[2 * placed] = cy;
            centres[2 * placed + 1] = cx;
            placed++;
            tries = 0;
        }
        if (placed == count) return 1;
    }
    return 0;
}

static void paint_disks(size_t ny, size_t nx, size_t count, double radius, const double *centres, uint8_t *mask)
{
    memset(mask, 0, ny * nx);
    double r2 = radius * radius;
    for (size_t k = 0; k < count; k++) {
        double cy = centres[2 * k], cx = centres[2 * k + 1];
        /* the disk lies inside the scan, so its bounding box does too */
        size_t y0 = (size_t)ceil(cy - radius), y1 = (size_t)floor(cy + radius);
        size_t x0 = (size_t)ceil(cx - radius), x1 = (size_t)floor(cx + radius);
        for (size_t y = y0; y <= y1 && y < ny; y++)
            for (size_t x = x0; x <= x1 && x < nx; x++) {
                double dy = (double)y - cy, dx = (double)x - cx;
                if (dy * dy + dx * dx <= r2) mask[y * nx + x] = 1;
            }
    }
}

eelsvae_status eelsvae_disk_mask(size_t ny, size_t nx, size_t count, double radius, double min_separation,
                                 uint64_t seed, uint8_t *mask, double *centres)
{
    if (!mask) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "disk_mask: NULL mask");
    if (ny == 0 || nx == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "disk_mask: scan %zu × %zu has a zero", ny, nx);
    if (count == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "disk_mask: count must be ≥ 1");
    if (!isfinite(radius) || !(radius > 0.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "disk_mask: radius %g must be positive and finite", radius);
    if (!isfinite(min_separation) || min_separation < 0.0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "disk_mask: min_separation %g must be ≥ 0 and finite",
                         min_separation);
    size_t pixels = 0, coords = 0;
    EVAE_TRY(evae_mul(ny, nx, &pixels, "disk mask"));
    EVAE_TRY(evae_mul(count, 2, &coords, "disk centres"));
    /* Centres range over [radius, n − 1 − radius] on each axis. */
    double hi_y = (double)(ny - 1) - radius, hi_x = (double)(nx - 1) - radius;
    if (hi_y < radius || hi_x < radius)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "cannot place %zu disks of radius %g at separation %g in a %zu × %zu scan: one disk does "
                         "not fit",
                         count, radius, min_separation, ny, nx);
    double *c = NULL;
    EVAE_TRY(evae_alloc_array(coords, sizeof *c, (void **)&c, "disk centres"));
    evae_rng rng;
    evae_rng_seed(&rng, seed, 0);
    if (!place_centres(&rng, count, radius, hi_y, hi_x, min_separation, c)) {
        evae_free(c);
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "cannot place %zu disks of radius %g at separation %g in a %zu × %zu scan (gave up after "
                         "%u random draws)",
                         count, radius, min_separation, ny, nx, DISK_DRAW_BUDGET);
    }
    paint_disks(ny, nx, count, radius, c, mask);
    if (centres) memcpy(centres, c, coords * sizeof *c);
    evae_free(c);
    return EELSVAE_OK;
}

/* ---- energy shift ----------------------------------------------------------- */

/* The original spectrum at fractional channel p, linear between channels,
 * held at its end values past either end of the axis. */
static double sample_at(const float *s, size_t ne, double p)
{
    if (!(p > 0.0)) return s[0];
    double last = (double)(ne - 1);
    if (p >= last) return s[ne - 1];
    size_t j = (size_t)p;
    double f = p - (double)j;
    return (1.0 - f) * s[j] + f * s[j + 1];
}

/* Shift one spectrum's window [first, first + count): compute into scratch
 * from the untouched original, then copy back. */
static void shift_spectrum(float *s, size_t ne, size_t first, size_t count, double shift_ch, float *scratch)
{
    for (size_t k = 0; k < count; k++) scratch[k] = (float)sample_at(s, ne, (double)(first + k) - shift_ch);
    memcpy(s + first, scratch, count * sizeof *scratch);
}

eelsvae_status eelsvae_cube_inject_shift(eelsvae_cube *cube, const uint8_t *mask, size_t count, double lo_ev,
                                         double hi_ev, double shift_ev)
{
    if (!cube || !mask) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "inject_shift: NULL argument");
    size_t pixels = evae_cube_pixels(cube);
    if (count != pixels)
        return evae_fail(EELSVAE_ERR_DIMENSION, "inject_shift: mask has %zu entries, the %zu × %zu scan %zu", count,
                         cube->ny, cube->nx, pixels);
    if (!isfinite(shift_ev)) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "inject_shift: shift %g eV is not finite", shift_ev);
    size_t first = 0, window = 0;
    EVAE_TRY(eelsvae_cube_energy_window(cube, lo_ev, hi_ev, &first, &window));
    /* In channels: E − shift lies shift/scale channels below E (the sign of
     * the scale takes care of a descending axis). */
    double shift_ch = shift_ev / cube->axis[EELSVAE_AXIS_E].scale;
    int threads = evae_threads();
    if (threads < 1) threads = 1;
    if ((size_t)threads > pixels) threads = (int)pixels;
    size_t scratch_len = 0;
    EVAE_TRY(evae_mul((size_t)threads, window, &scratch_len, "inject_shift scratch"));
    float *scratch = NULL;
    EVAE_TRY(evae_alloc_array(scratch_len, sizeof *scratch, (void **)&scratch, "inject_shift scratch"));
    size_t ne = cube->ne;
    float *data = cube->data;
    ptrdiff_t n = (ptrdiff_t)pixels;
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads)
#endif
    for (ptrdiff_t p = 0; p < n; p++) {
        if (!mask[p]) continue;
        int t = 0;
#ifdef _OPENMP
        t = omp_get_thread_num();
#endif
        shift_spectrum(data + (size_t)p * ne, ne, first, window, shift_ch, scratch + (size_t)t * window);
    }
    evae_free(scratch);
    return EELSVAE_OK;
}
