/* Datacube handle: creation, calibration, crops, copies, summaries. */
#include "cube_private.h"

#include <math.h>
#include <string.h>

static const char *const axis_names[3] = {"y", "x", "energy"};

static eelsvae_status cube_alloc(size_t ny, size_t nx, size_t ne, eelsvae_cube **out)
{
    if (ny == 0 || nx == 0 || ne == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cube: dimensions %zu × %zu × %zu include a zero", ny, nx,
                         ne);
    size_t samples = 0;
    EVAE_TRY(evae_mul3(ny, nx, ne, &samples, "cube dimensions"));
    eelsvae_cube *c = evae_malloc(sizeof *c);
    if (!c) return evae_fail(EELSVAE_ERR_NOMEM, "cube: cannot allocate its handle");
    memset(c, 0, sizeof *c);
    eelsvae_status st = evae_alloc_array(samples, sizeof(float), (void **)&c->data, "cube samples");
    if (st != EELSVAE_OK) {
        evae_free(c);
        return st;
    }
    c->ny = ny;
    c->nx = nx;
    c->ne = ne;
    for (int a = 0; a < 3; a++) c->axis[a].scale = 1.0;
    strcpy(c->axis[EELSVAE_AXIS_E].units, "eV");
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_create(size_t ny, size_t nx, size_t ne, eelsvae_cube **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cube_create: NULL output pointer");
    eelsvae_cube *c = NULL;
    EVAE_TRY(cube_alloc(ny, nx, ne, &c));
    memset(c->data, 0, evae_cube_samples(c) * sizeof(float));
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_create_from(const float *data, size_t ny, size_t nx, size_t ne, eelsvae_cube **out)
{
    if (!data || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cube_create_from: NULL argument");
    eelsvae_cube *c = NULL;
    EVAE_TRY(cube_alloc(ny, nx, ne, &c));
    memcpy(c->data, data, evae_cube_samples(c) * sizeof(float));
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status evae_cube_alloc_like(const eelsvae_cube *like, size_t ny, size_t nx, size_t ne, eelsvae_cube **out)
{
    eelsvae_cube *c = NULL;
    EVAE_TRY(cube_alloc(ny, nx, ne, &c));
    memcpy(c->axis, like->axis, sizeof c->axis);
    c->energy_calibrated = like->energy_calibrated;
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status evae_cube_same_shape(const eelsvae_cube *a, const eelsvae_cube *b, const char *what)
{
    if (a->ny != b->ny || a->nx != b->nx || a->ne != b->ne)
        return evae_fail(EELSVAE_ERR_DIMENSION, "%s: shapes differ, %zu × %zu × %zu against %zu × %zu × %zu", what,
                         a->ny, a->nx, a->ne, b->ny, b->nx, b->ne);
    return EELSVAE_OK;
}

void eelsvae_cube_free(eelsvae_cube *cube)
{
    if (!cube) return;
    evae_free(cube->data);
    evae_free(cube);
}

void eelsvae_cube_shape(const eelsvae_cube *cube, size_t *ny, size_t *nx, size_t *ne)
{
    if (ny) *ny = cube->ny;
    if (nx) *nx = cube->nx;
    if (ne) *ne = cube->ne;
}

float *eelsvae_cube_data(eelsvae_cube *cube)
{
    return cube->data;
}

const float *eelsvae_cube_data_const(const eelsvae_cube *cube)
{
    return cube->data;
}

eelsvae_status eelsvae_cube_set_axis(eelsvae_cube *cube, eelsvae_axis axis, double offset, double scale,
                                     const char *units)
{
    if (!cube || (unsigned)axis > EELSVAE_AXIS_E)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "set_axis: NULL cube or unknown axis %d", (int)axis);
    if (!isfinite(offset) || !isfinite(scale) || scale == 0.0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s axis: offset %g and scale %g must be finite and the scale non-zero", axis_names[axis],
                         offset, scale);
    if (!units) units = "";
    if (strlen(units) >= EELSVAE_UNITS_MAX)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s axis: units \"%s\" longer than %d characters",
                         axis_names[axis], units, EELSVAE_UNITS_MAX - 1);
    cube->axis[axis].offset = offset;
    cube->axis[axis].scale = scale;
    strcpy(cube->axis[axis].units, units);
    /* Offset 0, scale 1 and no units is how a file says "no calibration". */
    if (axis == EELSVAE_AXIS_E) cube->energy_calibrated = !(offset == 0.0 && scale == 1.0 && units[0] == '\0');
    return EELSVAE_OK;
}

eelsvae_status evae_require_energy_calibrated(const eelsvae_cube *c, const char *what)
{
    if (evae_energy_calibrated(c)) return EELSVAE_OK;
    return evae_fail(EELSVAE_ERR_RANGE,
                     "%s: the cube's energy axis is uncalibrated (channel numbers), so an energy in eV names no "
                     "channel; set it with eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, offset_ev, scale_ev, \"eV\")",
                     what);
}

eelsvae_status eelsvae_cube_axis(const eelsvae_cube *cube, eelsvae_axis axis, double *offset, double *scale,
                                 const char **units)
{
    if (!cube || (unsigned)axis > EELSVAE_AXIS_E)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "axis: NULL cube or unknown axis %d", (int)axis);
    if (offset) *offset = cube->axis[axis].offset;
    if (scale) *scale = cube->axis[axis].scale;
    if (units) *units = cube->axis[axis].units;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_spectrum(const eelsvae_cube *cube, size_t y, size_t x, const float **spectrum)
{
    if (!cube || !spectrum) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "spectrum: NULL argument");
    if (y >= cube->ny || x >= cube->nx)
        return evae_fail(EELSVAE_ERR_RANGE, "spectrum: pixel (%zu, %zu) outside the %zu × %zu scan", y, x, cube->ny,
                         cube->nx);
    *spectrum = cube->data + (y * cube->nx + x) * cube->ne;
    return EELSVAE_OK;
}

eelsvae_status evae_energy_window(const eelsvae_cube *cube, double lo_ev, double hi_ev, size_t *first,
                                    size_t *count, const char *what)
{
    if (!cube || !first || !count) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "energy window: NULL argument");
    if (!isfinite(lo_ev) || !isfinite(hi_ev) || !(hi_ev > lo_ev))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "energy window %g:%g is empty or not finite", lo_ev, hi_ev);
    EVAE_TRY(evae_require_energy_calibrated(cube, what));
    const evae_axis_calibration *e = &cube->axis[EELSVAE_AXIS_E];
    /* Work in channel units; a negative scale (descending axis) swaps ends. */
    double a = (lo_ev - e->offset) / e->scale, b = (hi_ev - e->offset) / e->scale;
    double lo_ch = fmin(a, b), hi_ch = fmax(a, b);
    double last = (double)(cube->ne - 1);
    double axis_lo = e->offset, axis_hi = e->offset + e->scale * last;
    if (lo_ch < -1.0 || hi_ch > last + 1.0)
        return evae_fail(EELSVAE_ERR_RANGE,
                         "energy window %g:%g %s extends past the energy axis %g:%g %s by more than one channel",
                         lo_ev, hi_ev, e->units, fmin(axis_lo, axis_hi), fmax(axis_lo, axis_hi), e->units);
    const double eps = 1e-6;
    double i0 = ceil(lo_ch - eps), i1 = floor(hi_ch + eps);
    if (i0 < 0) i0 = 0;
    if (i1 > last) i1 = last;
    if (i1 < i0)
        return evae_fail(EELSVAE_ERR_RANGE, "energy window %g:%g %s holds no channel of the axis (scale %g)", lo_ev,
                         hi_ev, e->units, e->scale);
    *first = (size_t)i0;
    *count = (size_t)(i1 - i0) + 1;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_energy_window(const eelsvae_cube *cube, double lo_ev, double hi_ev, size_t *first,
                                          size_t *count)
{
    return evae_energy_window(cube, lo_ev, hi_ev, first, count, "eelsvae_cube_energy_window");
}

eelsvae_status eelsvae_cube_crop_energy(const eelsvae_cube *cube, double lo_ev, double hi_ev, eelsvae_cube **out)
{
    size_t first = 0, count = 0;
    EVAE_TRY(evae_energy_window(cube, lo_ev, hi_ev, &first, &count, "eelsvae_cube_crop_energy"));
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "crop_energy: NULL output pointer");
    eelsvae_cube *c = NULL;
    EVAE_TRY(evae_cube_alloc_like(cube, cube->ny, cube->nx, count, &c));
    size_t pixels = evae_cube_pixels(cube);
    for (size_t p = 0; p < pixels; p++)
        memcpy(c->data + p * count, cube->data + p * cube->ne + first, count * sizeof(float));
    c->axis[EELSVAE_AXIS_E].offset = cube->axis[EELSVAE_AXIS_E].offset + cube->axis[EELSVAE_AXIS_E].scale * first;
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_crop(const eelsvae_cube *cube, size_t y0, size_t x0, size_t ny, size_t nx,
                                 eelsvae_cube **out)
{
    if (!cube || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "crop: NULL argument");
    if (ny == 0 || nx == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "crop: %zu × %zu is empty", ny, nx);
    if (y0 >= cube->ny || ny > cube->ny - y0 || x0 >= cube->nx || nx > cube->nx - x0)
        return evae_fail(EELSVAE_ERR_RANGE, "crop: rows %zu+%zu, columns %zu+%zu exceed the %zu × %zu scan", y0, ny,
                         x0, nx, cube->ny, cube->nx);
    eelsvae_cube *c = NULL;
    EVAE_TRY(evae_cube_alloc_like(cube, ny, nx, cube->ne, &c));
    for (size_t y = 0; y < ny; y++)
        memcpy(c->data + y * nx * cube->ne, cube->data + ((y0 + y) * cube->nx + x0) * cube->ne,
               nx * cube->ne * sizeof(float));
    c->axis[EELSVAE_AXIS_Y].offset += cube->axis[EELSVAE_AXIS_Y].scale * (double)y0;
    c->axis[EELSVAE_AXIS_X].offset += cube->axis[EELSVAE_AXIS_X].scale * (double)x0;
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_copy(const eelsvae_cube *cube, eelsvae_cube **out)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "copy: NULL cube");
    return eelsvae_cube_crop(cube, 0, 0, cube->ny, cube->nx, out);
}

eelsvae_status eelsvae_cube_sum_image(const eelsvae_cube *cube, float *image, size_t count)
{
    if (!cube || !image) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "sum_image: NULL argument");
    size_t pixels = evae_cube_pixels(cube);
    if (count != pixels)
        return evae_fail(EELSVAE_ERR_DIMENSION, "sum_image: buffer holds %zu values, the scan has %zu pixels", count,
                         pixels);
    for (size_t p = 0; p < pixels; p++) {
        const float *s = cube->data + p * cube->ne;
        double sum = 0.0;
        for (size_t e = 0; e < cube->ne; e++) sum += s[e];
        image[p] = (float)sum;
    }
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_mean_spectrum(const eelsvae_cube *cube, float *spectrum, size_t count)
{
    if (!cube || !spectrum) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "mean_spectrum: NULL argument");
    if (count != cube->ne)
        return evae_fail(EELSVAE_ERR_DIMENSION, "mean_spectrum: buffer holds %zu values, the cube has %zu channels",
                         count, cube->ne);
    double *sum = NULL;
    EVAE_TRY(evae_alloc_zeros(cube->ne, sizeof *sum, (void **)&sum, "mean spectrum"));
    size_t pixels = evae_cube_pixels(cube);
    for (size_t p = 0; p < pixels; p++) {
        const float *s = cube->data + p * cube->ne;
        for (size_t e = 0; e < cube->ne; e++) sum[e] += s[e];
    }
    for (size_t e = 0; e < cube->ne; e++) spectrum[e] = (float)(sum[e] / (double)pixels);
    evae_free(sum);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_check_finite(const eelsvae_cube *cube)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "check_finite: NULL cube");
    size_t n = evae_cube_samples(cube);
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(cube->data[i])) {
            /* The energy too: a cube cropped to a model's range numbers its channels afresh. */
            size_t p = i / cube->ne, e = i % cube->ne;
            const evae_axis_calibration *ax = &cube->axis[EELSVAE_AXIS_E];
            return evae_fail(EELSVAE_ERR_NUMERIC, "sample at pixel (y %zu, x %zu), channel %zu (%g %s) is %g",
                             p / cube->nx, p % cube->nx, e, ax->offset + ax->scale * (double)e, ax->units,
                             (double)cube->data[i]);
        }
    }
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_bin_energy(const eelsvae_cube *cube, size_t bin, eelsvae_cube **out)
{
    if (!cube || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_cube_bin_energy: NULL argument");
    if (bin == 0 || bin > cube->ne)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_cube_bin_energy: bin %zu; it must lie in 1 … %zu, the cube's channel count", bin,
                         cube->ne);
    size_t ne = cube->ne / bin, pixels = evae_cube_pixels(cube);
    eelsvae_cube *c = NULL;
    EVAE_TRY(evae_cube_alloc_like(cube, cube->ny, cube->nx, ne, &c));
    for (size_t p = 0; p < pixels; p++) {
        const float *src = cube->data + p * cube->ne;
        float *dst = c->data + p * ne;
        for (size_t k = 0; k < ne; k++) {
            double sum = 0.0; /* a double sum: bins of thousands of channels stay exact to float */
            for (size_t j = 0; j < bin; j++) sum += src[k * bin + j];
            dst[k] = (float)sum;
        }
    }
    evae_axis_calibration *e = &c->axis[EELSVAE_AXIS_E];
    if (evae_energy_calibrated(c)) { /* channel numbers stay channel numbers (of the bins) */
        e->offset += e->scale * (double)(bin - 1) / 2.0;
        e->scale *= (double)bin;
    }
    *out = c;
    return EELSVAE_OK;
}
