/* The public model: life cycle, the input transform (energy crop and
 * preprocessing) and detection (reconstruct, encode, decode). Training is in
 * model_train.c, the file format in model_file.c. */
#include "model_private.h"

#include <math.h>
#include <string.h>

#include "../core/options_out.h"
#include "../cube/cube_private.h"

/* Most tiles the inference net takes at once: big enough to keep the
 * convolutions busy, small enough that the paper preset's activations stay
 * well under a gigabyte per call. */
#define INFER_BATCH 8

/* ---- life cycle --------------------------------------------------------------- */

eelsvae_status evae_model_alloc(const eelsvae_model_options *arch, const evae_cvae_layout *layout,
                                eelsvae_model **out)
{
    eelsvae_model *m = NULL;
    EVAE_TRY(evae_alloc_zeros(1, sizeof *m, (void **)&m, "model"));
    m->arch = *arch;
    m->arch.struct_size = sizeof m->arch;
    m->layout = *layout;
    eelsvae_status st = evae_cvae_create(&m->arch, 1, false, &m->net);
    if (st != EELSVAE_OK) {
        evae_free(m);
        return st;
    }
    *out = m;
    return EELSVAE_OK;
}

eelsvae_status evae_model_alloc_moments(eelsvae_model *model)
{
    if (model->state.m && model->state.v) return EELSVAE_OK;
    size_t n = model->layout.parameters;
    float *m = NULL, *v = NULL;
    EVAE_TRY(evae_alloc_zeros(n, sizeof(float), (void **)&m, "Adam first moments"));
    eelsvae_status st = evae_alloc_zeros(n, sizeof(float), (void **)&v, "Adam second moments");
    if (st != EELSVAE_OK) {
        evae_free(m);
        return st;
    }
    evae_free(model->state.m);
    evae_free(model->state.v);
    model->state.m = m;
    model->state.v = v;
    return EELSVAE_OK;
}

eelsvae_status evae_model_swap_net(eelsvae_model *model, bool training, size_t max_batch)
{
    evae_cvae *net = NULL;
    EVAE_TRY(evae_cvae_create(&model->arch, max_batch, training, &net));
    memcpy(evae_cvae_params(net), evae_cvae_params(model->net), model->layout.parameters * sizeof(float));
    evae_cvae_free(model->net);
    model->net = net;
    model->net_training = training;
    return EELSVAE_OK;
}

eelsvae_status evae_model_check_arch(const eelsvae_model_options *arch, evae_cvae_layout *layout)
{
    EVAE_TRY(evae_cvae_layout_of(arch, layout));
    if (arch->energy_bin < 1 || arch->energy_bin > EVAE_MAX_ENERGY_BIN)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options: energy_bin = %zu (must be 1 … %d)",
                         arch->energy_bin, EVAE_MAX_ENERGY_BIN);
    if (arch->energy_channels > SIZE_MAX / arch->energy_bin)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "model options: energy_channels %zu × energy_bin %zu overflows",
                         arch->energy_channels, arch->energy_bin);
    return EELSVAE_OK;
}

/* The architecture the caller gave, over the paper's defaults, checked. */
static eelsvae_status read_architecture(const eelsvae_model_options *opt, eelsvae_model_options *arch,
                                        evae_cvae_layout *layout)
{
    EVAE_TRY(eelsvae_model_options_init(arch, EELSVAE_PRESET_PAPER));
    EVAE_TRY(evae_read_options(arch, sizeof *arch, opt, "model"));
    return evae_model_check_arch(arch, layout);
}

eelsvae_status eelsvae_model_create(const eelsvae_model_options *opt, uint64_t seed, eelsvae_model **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model create: NULL output pointer");
    eelsvae_model_options arch;
    evae_cvae_layout layout;
    EVAE_TRY(read_architecture(opt, &arch, &layout));
    eelsvae_model *m = NULL;
    EVAE_TRY(evae_model_alloc(&arch, &layout, &m));
    evae_cvae_init_params(m->net, seed);
    *out = m;
    return EELSVAE_OK;
}

void eelsvae_model_free(eelsvae_model *model)
{
    if (!model) return;
    evae_cvae_free(model->net);
    evae_free(model->state.m);
    evae_free(model->state.v);
    evae_free(model);
}

eelsvae_status eelsvae_model_options_get_sized(const eelsvae_model *model, eelsvae_model_options *opt,
                                               size_t struct_size)
{
    if (!model || !opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model options_get: NULL argument");
    /* Only the caller's struct_size bytes: an older program's struct may be shorter. */
    return evae_write_options(opt, struct_size, &model->arch, sizeof model->arch, "model options_get");
}

size_t eelsvae_model_parameter_count(const eelsvae_model *model)
{
    return model ? model->layout.parameters : 0;
}

/* ---- the input transform ---------------------------------------------------------- */

bool evae_model_same_dispersion(double a, double b)
{
    return fabs(a - b) <= 1e-6 * fabs(b);
}

/* Channels closer than this (in channels) to the wanted grid count as on it. */
#define ON_GRID_CHANNELS 1e-3

/* Where the channels to take begin on the cube's axis, in channels (−1 when
 * the cube starts too late): without a grid, the first channel at or above
 * energy_start, as eelsvae_cube_energy_window() finds it (a start up to one
 * channel before the axis takes channel 0); on a grid, the position of its
 * first energy, snapped to a channel when it lies that close to one. */
static double first_position(const eelsvae_model_options *arch, const evae_axis_calibration *ax, double grid_start)
{
    if (isnan(grid_start)) {
        double pos = (arch->energy_start - ax->offset) / ax->scale;
        return pos < -1.0 ? -1.0 : fmax(0.0, ceil(pos - 1e-6));
    }
    double pos = (grid_start - ax->offset) / ax->scale;
    return fabs(pos - round(pos)) <= ON_GRID_CHANNELS ? round(pos) : pos;
}

/* The crop of evae_model_crop() before binning: energy_channels · energy_bin channels. */
static eelsvae_status crop_channels(const eelsvae_model_options *arch, const eelsvae_cube *raw, double grid_start,
                                    const char *what, eelsvae_cube **out)
{
    const evae_axis_calibration *ax = &raw->axis[EELSVAE_AXIS_E];
    size_t channels = arch->energy_channels * arch->energy_bin; /* checked not to overflow with the architecture */
    if (!(ax->scale > 0.0))
        return evae_fail(EELSVAE_ERR_RANGE, "%s: energy axis scale %g %s; the model needs an increasing energy axis",
                         what, ax->scale, ax->units);
    double axis_end = ax->offset + ax->scale * (double)(raw->ne - 1);
    double pos = first_position(arch, ax, grid_start);
    double start = isnan(grid_start) ? arch->energy_start : grid_start;
    /* On the grid: a plain copy; off it by a fraction f of a channel: linear
     * interpolation, (1 − f)·channel j + f·channel j + 1, which needs one more. */
    double j0 = floor(pos), frac = pos - j0;
    double needed = j0 + (double)(channels - 1) + (frac > 0.0 ? 1.0 : 0.0);
    if (!(j0 >= 0.0 && needed <= (double)(raw->ne - 1)))
        return evae_fail(EELSVAE_ERR_RANGE,
                         "%s: its energy axis %g … %g %s (%zu channels of %g) does not hold the model's %zu channels "
                         "from %g %s (to about %g %s)",
                         what, ax->offset, axis_end, ax->units, raw->ne, ax->scale, channels, start, ax->units,
                         start + ax->scale * (double)(channels - 1), ax->units);
    eelsvae_cube *c = NULL;
    EVAE_TRY(evae_cube_alloc_like(raw, raw->ny, raw->nx, channels, &c));
    size_t pixels = evae_cube_pixels(raw), first = (size_t)j0;
    float w1 = (float)frac, w0 = 1.0f - w1;
    for (size_t p = 0; p < pixels; p++) {
        const float *src = raw->data + p * raw->ne + first;
        float *dst = c->data + p * channels;
        if (frac == 0.0) memcpy(dst, src, channels * sizeof(float));
        else
            for (size_t k = 0; k < channels; k++) dst[k] = w0 * src[k] + w1 * src[k + 1];
    }
    c->axis[EELSVAE_AXIS_E].offset = frac == 0.0 ? ax->offset + ax->scale * j0 : grid_start;
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status evae_model_crop(const eelsvae_model_options *arch, const eelsvae_cube *raw, double grid_start,
                               const char *what, eelsvae_cube **out, double *first_energy)
{
    EVAE_TRY(evae_require_energy_calibrated(raw, what));
    eelsvae_cube *c = NULL;
    EVAE_TRY(crop_channels(arch, raw, grid_start, what, &c));
    if (first_energy) *first_energy = c->axis[EELSVAE_AXIS_E].offset;
    if (arch->energy_bin == 1) {
        *out = c;
        return EELSVAE_OK;
    }
    eelsvae_status st = eelsvae_cube_bin_energy(c, arch->energy_bin, out);
    eelsvae_cube_free(c);
    return st;
}

eelsvae_status evae_model_apply_transform(const evae_model_transform *t, eelsvae_cube *cube)
{
    eelsvae_preprocess_options o = t->preprocess;
    o.struct_size = sizeof o;
    o.use_fixed_scaling = 1;
    o.scale_lo = t->scale_lo;
    o.scale_hi = t->scale_hi;
    return eelsvae_cube_preprocess(cube, &o, NULL, NULL);
}

static eelsvae_status check_side(size_t k, size_t max, const char *name)
{
    if (k == 0 || k % 2 == 0 || k > max)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "preprocess options: %s = %zu must be odd, from 1 to %zu", name,
                         k, max);
    return EELSVAE_OK;
}

eelsvae_status evae_model_check_preprocess(const eelsvae_preprocess_options *o)
{
    static const char *const sigma_names[3] = {"sigma[0] (y)", "sigma[1] (x)", "sigma[2] (energy)"};
    for (int a = 0; a < 3; a++)
        if (!(o->sigma[a] >= 0.0 && o->sigma[a] <= 1e6))
            return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "preprocess options: %s = %g must lie in [0, 1e6]",
                             sigma_names[a], o->sigma[a]);
    if (o->use_fixed_scaling) {
        if (!isfinite(o->scale_lo) || !isfinite(o->scale_hi) || !isfinite(o->scale_hi - o->scale_lo) ||
            !(o->scale_hi > o->scale_lo))
            return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                             "preprocess options: scale_lo = %g and scale_hi = %g must be finite with scale_hi > "
                             "scale_lo",
                             o->scale_lo, o->scale_hi);
    } else if (!(o->percentile_lo >= 0.0 && o->percentile_lo < o->percentile_hi && o->percentile_hi <= 100.0)) {
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "preprocess options: percentile_lo = %g and percentile_hi = %g must satisfy "
                         "0 <= lo < hi <= 100",
                         o->percentile_lo, o->percentile_hi);
    }
    EVAE_TRY(check_side(o->mean_filter, SIZE_MAX, "mean_filter"));
    EVAE_TRY(check_side(o->median_filter, 255, "median_filter"));
    return EELSVAE_OK;
}

eelsvae_status eelsvae_model_prepare(const eelsvae_model *model, const eelsvae_cube *raw, eelsvae_cube **prepared)
{
    if (!model || !raw || !prepared) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model prepare: NULL argument");
    const evae_model_transform *t = &model->transform;
    if (!t->recorded)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "model prepare: the model has not been trained, so it has no input transform to apply");
    double dispersion = raw->axis[EELSVAE_AXIS_E].scale;
    if (!evae_model_same_dispersion(dispersion, t->dispersion))
        return evae_fail(EELSVAE_ERR_RANGE,
                         "model prepare: the cube's dispersion %.9g %s per channel differs from the training data's "
                         "%.9g",
                         dispersion, raw->axis[EELSVAE_AXIS_E].units, t->dispersion);
    size_t tile = model->arch.tile;
    if (raw->ny < tile || raw->nx < tile)
        return evae_fail(EELSVAE_ERR_DIMENSION, "model prepare: the %zu × %zu scan is smaller than a %zu × %zu tile",
                         raw->ny, raw->nx, tile, tile);
    eelsvae_cube *c = NULL;
    EVAE_TRY(evae_model_crop(&model->arch, raw, t->energy_offset, "model prepare", &c, NULL));
    eelsvae_status st = evae_model_apply_transform(t, c);
    if (st != EELSVAE_OK) {
        eelsvae_cube_free(c);
        return st;
    }
    *prepared = c;
    return EELSVAE_OK;
}

/* ---- detection ------------------------------------------------------------------- */

/* A net that takes up to min(wanted, INFER_BATCH) tiles, grown on demand.
 * The const calls use it: a model handle is not shared between threads
 * without the caller's lock (model.h). */
static eelsvae_status inference_net(const eelsvae_model *model, size_t wanted, evae_cvae **net)
{
    eelsvae_model *m = (eelsvae_model *)model;
    if (wanted > INFER_BATCH) wanted = INFER_BATCH;
    if (evae_cvae_max_batch(m->net) < wanted) EVAE_TRY(evae_model_swap_net(m, false, wanted));
    *net = m->net;
    return EELSVAE_OK;
}

/* Tiles of a prepared cube at a stride, and the floats of one tile. */
static eelsvae_status prepared_tiles(const eelsvae_model *model, const eelsvae_cube *prepared, size_t stride,
                                     const char *what, size_t *tiles, size_t *tile_floats)
{
    size_t tile = model->arch.tile, channels = model->arch.energy_channels;
    if (prepared->ne != channels)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "%s: the cube has %zu energy channels, the model takes %zu (use eelsvae_model_prepare)", what,
                         prepared->ne, channels);
    if (prepared->ny < tile || prepared->nx < tile)
        return evae_fail(EELSVAE_ERR_DIMENSION, "%s: the %zu × %zu scan is smaller than a %zu × %zu tile", what,
                         prepared->ny, prepared->nx, tile, tile);
    size_t ty = 0, tx = 0;
    EVAE_TRY(eelsvae_tiling(prepared->ny, prepared->nx, tile, stride, &ty, &tx));
    *tiles = ty * tx;
    return evae_mul3(tile, tile, channels, tile_floats, "tile");
}

/* Every tile of the cube in one buffer [tiles][T][T][E]. */
static eelsvae_status cut_tiles(const eelsvae_model *model, const eelsvae_cube *prepared, size_t stride, size_t tiles,
                                size_t tile_floats, float **out)
{
    size_t total = 0;
    EVAE_TRY(evae_mul(tiles, tile_floats, &total, "tile buffer"));
    float *buf = NULL;
    EVAE_TRY(evae_alloc_array(total, sizeof(float), (void **)&buf, "tile buffer"));
    eelsvae_status st = eelsvae_cube_to_tiles(prepared, model->arch.tile, stride, buf, total);
    if (st != EELSVAE_OK) {
        evae_free(buf);
        return st;
    }
    *out = buf;
    return EELSVAE_OK;
}

/* Reconstruct the tiles in place, a batch at a time through a scratch. */
static eelsvae_status reconstruct_tiles(const eelsvae_model *model, float *buf, size_t tiles, size_t tile_floats)
{
    evae_cvae *net = NULL;
    EVAE_TRY(inference_net(model, tiles, &net));
    size_t batch = evae_cvae_max_batch(net);
    float *scratch = NULL;
    EVAE_TRY(evae_alloc_array(batch * tile_floats, sizeof(float), (void **)&scratch, "reconstruction batch"));
    eelsvae_status st = EELSVAE_OK;
    for (size_t i = 0; i < tiles && st == EELSVAE_OK; i += batch) {
        size_t b = tiles - i < batch ? tiles - i : batch;
        float *x = buf + i * tile_floats;
        st = evae_cvae_reconstruct(net, x, b, scratch);
        if (st == EELSVAE_OK) memcpy(x, scratch, b * tile_floats * sizeof(float));
    }
    evae_free(scratch);
    return st;
}

eelsvae_status eelsvae_model_reconstruct(const eelsvae_model *model, const eelsvae_cube *prepared, size_t stride,
                                         eelsvae_cube **reconstruction)
{
    if (!model || !prepared || !reconstruction)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model reconstruct: NULL argument");
    size_t tiles = 0, tile_floats = 0;
    EVAE_TRY(prepared_tiles(model, prepared, stride, "model reconstruct", &tiles, &tile_floats));
    float *buf = NULL;
    EVAE_TRY(cut_tiles(model, prepared, stride, tiles, tile_floats, &buf));
    eelsvae_cube *out = NULL;
    eelsvae_status st = evae_cube_alloc_like(prepared, prepared->ny, prepared->nx, prepared->ne, &out);
    if (st == EELSVAE_OK) st = reconstruct_tiles(model, buf, tiles, tile_floats);
    if (st == EELSVAE_OK) st = eelsvae_cube_from_tiles(out, model->arch.tile, stride, buf, tiles * tile_floats);
    evae_free(buf);
    if (st != EELSVAE_OK) {
        eelsvae_cube_free(out);
        return st;
    }
    *reconstruction = out;
    return EELSVAE_OK;
}

/* μ and log σ² of every tile, a batch at a time. */
static eelsvae_status encode_tiles(const eelsvae_model *model, const float *buf, size_t tiles, size_t tile_floats,
                                   float *mu, float *logvar)
{
    size_t latent = model->arch.latent;
    evae_cvae *net = NULL;
    EVAE_TRY(inference_net(model, tiles, &net));
    size_t batch = evae_cvae_max_batch(net);
    float *mulv = NULL; /* [batch][2L] */
    EVAE_TRY(evae_alloc_array(batch * 2 * latent, sizeof(float), (void **)&mulv, "latent batch"));
    eelsvae_status st = EELSVAE_OK;
    for (size_t i = 0; i < tiles && st == EELSVAE_OK; i += batch) {
        size_t b = tiles - i < batch ? tiles - i : batch;
        st = evae_cvae_encode(net, buf + i * tile_floats, b, mulv);
        for (size_t k = 0; k < b && st == EELSVAE_OK; k++) {
            memcpy(mu + (i + k) * latent, mulv + k * 2 * latent, latent * sizeof(float));
            if (logvar) memcpy(logvar + (i + k) * latent, mulv + k * 2 * latent + latent, latent * sizeof(float));
        }
    }
    evae_free(mulv);
    return st;
}

eelsvae_status eelsvae_model_encode(const eelsvae_model *model, const eelsvae_cube *prepared, float *mu,
                                    float *logvar, size_t count)
{
    if (!model || !prepared || !mu) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model encode: NULL argument");
    size_t tiles = 0, tile_floats = 0, need = 0;
    EVAE_TRY(prepared_tiles(model, prepared, 0, "model encode", &tiles, &tile_floats));
    EVAE_TRY(evae_mul(tiles, model->arch.latent, &need, "latent codes"));
    if (count != need)
        return evae_fail(EELSVAE_ERR_DIMENSION, "model encode: count is %zu, %zu tiles × latent %zu need %zu", count,
                         tiles, model->arch.latent, need);
    float *buf = NULL;
    EVAE_TRY(cut_tiles(model, prepared, 0, tiles, tile_floats, &buf));
    eelsvae_status st = encode_tiles(model, buf, tiles, tile_floats, mu, logvar);
    evae_free(buf);
    return st;
}

eelsvae_status eelsvae_model_decode(const eelsvae_model *model, const float *z, size_t n, float *tiles, size_t count)
{
    if (!model) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model decode: NULL model");
    size_t tile_floats = 0, need = 0;
    EVAE_TRY(evae_mul3(model->arch.tile, model->arch.tile, model->arch.energy_channels, &tile_floats, "tile"));
    EVAE_TRY(evae_mul(n, tile_floats, &need, "decoded tiles"));
    if (count != need)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "model decode: count is %zu, %zu vectors × %zu floats per tile need %zu", count, n,
                         tile_floats, need);
    if (n == 0) return EELSVAE_OK;
    if (!z || !tiles) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model decode: NULL argument");
    evae_cvae *net = NULL;
    EVAE_TRY(inference_net(model, n, &net));
    size_t batch = evae_cvae_max_batch(net), latent = model->arch.latent;
    for (size_t i = 0; i < n; i += batch) {
        size_t b = n - i < batch ? n - i : batch;
        EVAE_TRY(evae_cvae_decode(net, z + i * latent, b, tiles + i * tile_floats));
    }
    return EELSVAE_OK;
}
