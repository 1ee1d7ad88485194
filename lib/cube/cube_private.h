/* The cube's definition, shared by the modules that work on cubes. */
#ifndef EELSVAE_CUBE_PRIVATE_H
#define EELSVAE_CUBE_PRIVATE_H

#include "../core/core.h"

typedef struct evae_axis_calibration {
    double offset;
    double scale;
    char units[EELSVAE_UNITS_MAX];
} evae_axis_calibration;

struct eelsvae_cube {
    size_t ny, nx, ne;
    float *data; /* [ny][nx][ne], 64-byte aligned */
    evae_axis_calibration axis[3];
    /* The energy axis holds a calibration, not channel numbers: set by
     * eelsvae_cube_set_axis() (so by a file's calibration too) unless given
     * offset 0, scale 1 and no units; false in a new cube and a .npy one
     * (zeroed handles); carried along by evae_cube_alloc_like(). */
    bool energy_calibrated;
};

/* Whether a cube's energy axis is calibrated (see energy_calibrated). */
static inline bool evae_energy_calibrated(const eelsvae_cube *c)
{
    return c->energy_calibrated;
}

/* ::EELSVAE_ERR_RANGE naming `what` (the public function) when the cube's
 * energy axis is uncalibrated, so that an eV window would fall on channel
 * numbers; ::EELSVAE_OK otherwise. */
eelsvae_status evae_require_energy_calibrated(const eelsvae_cube *c, const char *what);

/* eelsvae_cube_energy_window(), its calibration refused in the name of
 * `what` (the public function). */
eelsvae_status evae_energy_window(const eelsvae_cube *cube, double lo_ev, double hi_ev, size_t *first,
                                  size_t *count, const char *what);

/* Pixels (ny·nx) and samples (ny·nx·ne) of a valid cube: cannot overflow,
 * since the cube was allocated. */
static inline size_t evae_cube_pixels(const eelsvae_cube *c)
{
    return c->ny * c->nx;
}

static inline size_t evae_cube_samples(const eelsvae_cube *c)
{
    return c->ny * c->nx * c->ne;
}

/* A new cube of the given shape with the calibration of `like` (which may
 * differ in shape); samples uninitialised. */
eelsvae_status evae_cube_alloc_like(const eelsvae_cube *like, size_t ny, size_t nx, size_t ne,
                                    eelsvae_cube **out);

/* Check two cubes have the same shape; the message names `what`. */
eelsvae_status evae_cube_same_shape(const eelsvae_cube *a, const eelsvae_cube *b, const char *what);

/* A .npy file's elements in its own type (float16 widened to float32),
 * native byte order, C order; free with evae_free. */
eelsvae_status evae_npy_read_native(const char *path, size_t *ndim, size_t shape[EELSVAE_NPY_MAX_DIMS],
                                    eelsvae_dtype *dtype, void **data);

/* Tiles of side `tile` at step `stride` (≥ 1) along an axis of n ≥ tile
 * pixels: origins 0, s, 2s, … up to n − tile, plus n − tile itself when the
 * steps miss it, so that every pixel is covered. */
size_t evae_tile_count(size_t n, size_t tile, size_t stride);
/* Origin of tile i of that walk: min(i·stride, n − tile). */
size_t evae_tile_origin(size_t i, size_t n, size_t tile, size_t stride);

#endif
