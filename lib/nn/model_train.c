/* Training the model: the input transform recorded on the first run, tiles
 * at a stride, a seeded validation split, seeded epochs of shuffled batches,
 * Adam with clipping, the plateau scheduler, early stopping, checkpoints.
 *
 * Every random choice is drawn from a stream derived from (seed, purpose,
 * epoch, batch) alone, never from a generator carried along, so that a run
 * resumed from a checkpoint — even one written mid-epoch — continues with
 * the very draws an uninterrupted run makes. */
#include "model_private.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../core/options_out.h"
#include "../cube/cube_private.h"

/* ---- options ------------------------------------------------------------------ */

eelsvae_status eelsvae_train_options_init_sized(eelsvae_train_options *opt, eelsvae_preset preset, size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: NULL pointer");
    if (preset != EELSVAE_PRESET_PAPER && preset != EELSVAE_PRESET_FAST)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: unknown preset %d", (int)preset);
    /* Filled whole here, then only the caller's struct_size bytes are written. */
    eelsvae_train_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.learning_rate = 1e-3;
    o.validation_fraction = 0.1;
    o.clip_norm = 5.0;
    o.seed = 1;
    o.min_tiles = 64;
    /* A user trains on the SI to be analysed more often than on a clean
     * twin: with 16 disks (9 % of the scan) at 0.9 eV, training on the SI
     * itself gave F1 0.81 with the mode off and 0.97 with it on, the clean
     * twin's 0.969; on a clean SI the mode costs about 20 % more time. */
    o.outlier_cut = 3.0;
    if (preset == EELSVAE_PRESET_PAPER) {
        o.epochs = 60;
        o.batch = 4;
        o.plateau_patience = 5;
        o.early_stop_patience = 0;
        o.tile_stride = 0;
    } else {
        o.epochs = 30;
        o.batch = 16;
        o.plateau_patience = 3;
        o.early_stop_patience = 8;
        o.tile_stride = 8;
    }
    return evae_write_options(opt, struct_size, &o, sizeof o, "train options");
}

static eelsvae_status check_train_options(const eelsvae_train_options *o)
{
    if (o->epochs == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: epochs is 0");
    if (o->batch == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: batch is 0");
    if (!(o->learning_rate > 0.0 && isfinite(o->learning_rate)))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: learning_rate = %g must be finite and > 0",
                         o->learning_rate);
    if (!(o->validation_fraction >= 0.0 && o->validation_fraction < 1.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: validation_fraction = %g must lie in [0, 1)",
                         o->validation_fraction);
    if (!(o->clip_norm >= 0.0 && isfinite(o->clip_norm)))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: clip_norm = %g must be finite and >= 0",
                         o->clip_norm);
    if (o->plateau_patience > INT_MAX)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: plateau_patience = %zu is too large",
                         o->plateau_patience);
    if (o->early_stop_patience > INT_MAX)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "train options: early_stop_patience = %zu is too large",
                         o->early_stop_patience);
    if (!(o->outlier_cut >= 0.0 && isfinite(o->outlier_cut)))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "train options: outlier_cut = %g must be finite and >= 0 (0 = outlier mode off)",
                         o->outlier_cut);
    if (o->checkpoint_every > 0 && (!o->checkpoint_path || !o->checkpoint_path[0]))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "train options: checkpoint_every = %zu needs a checkpoint_path", o->checkpoint_every);
    return EELSVAE_OK;
}

/* The caller's options over the paper preset, checked, preprocess chain included. */
static eelsvae_status read_train_options(const eelsvae_train_options *opt, eelsvae_train_options *o,
                                         eelsvae_preprocess_options *chain)
{
    EVAE_TRY(eelsvae_train_options_init(o, EELSVAE_PRESET_PAPER));
    EVAE_TRY(evae_read_options(o, sizeof *o, opt, "train"));
    EVAE_TRY(check_train_options(o));
    EVAE_TRY(eelsvae_preprocess_options_init(chain, EELSVAE_PRESET_PAPER));
    if (o->preprocess) EVAE_TRY(evae_read_options(chain, sizeof *chain, o->preprocess, "train preprocess"));
    o->preprocess = NULL; /* read into chain; nothing later looks at the caller's copy */
    return evae_model_check_preprocess(chain);
}

/* Prefix the recorded message with which training cube it concerns. */
static eelsvae_status fail_for_cube(eelsvae_status st, size_t i)
{
    char detail[480];
    snprintf(detail, sizeof detail, "%s", eelsvae_last_error());
    return evae_fail(st, "model train: cube %zu: %s", i, detail);
}

/* Every cube present and of one dispersion (the recorded one, once there is). */
static eelsvae_status check_cubes(const eelsvae_model *model, const eelsvae_cube *const *cubes, size_t n_cubes)
{
    for (size_t i = 0; i < n_cubes; i++)
        if (!cubes[i]) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model train: cubes[%zu] is NULL", i);
    double reference = model->transform.recorded ? model->transform.dispersion : cubes[0]->axis[EELSVAE_AXIS_E].scale;
    const char *whose = model->transform.recorded ? "the model's training data" : "cube 0";
    for (size_t i = 0; i < n_cubes; i++) {
        double d = cubes[i]->axis[EELSVAE_AXIS_E].scale;
        if (!evae_model_same_dispersion(d, reference))
            return evae_fail(EELSVAE_ERR_RANGE,
                             "model train: cube %zu has a dispersion of %.9g %s per channel, %s has %.9g", i, d,
                             cubes[i]->axis[EELSVAE_AXIS_E].units, whose, reference);
    }
    return EELSVAE_OK;
}

/* ---- the data ------------------------------------------------------------------ */

typedef struct tile_ref {
    size_t cube, y, x; /* which prepared cube, top-left pixel */
} tile_ref;

typedef struct train_data {
    eelsvae_cube **cubes; /* [n_cubes] cropped and preprocessed */
    size_t n_cubes;
    tile_ref *tiles; /* [n_tiles] in (cube, y, x) order */
    size_t n_tiles;
    size_t *train, n_train; /* indices into tiles, ascending */
    size_t *val, n_val;     /* likewise */
    size_t *order;          /* [n_train] this epoch's order */
    float *x;               /* [batch][T][T][E] gathered tiles */
    /* Outlier mode only (NULL otherwise): */
    size_t *pixel_at;       /* [n_cubes] where each cube's pixels start in the maps below */
    size_t n_pixels;        /* Σ ny·nx */
    uint8_t *outlier;       /* [n_pixels] this epoch's decision: out of the reconstruction term */
    double *error;          /* [n_pixels] Σ of the pixel's error over the tiles holding it */
    uint32_t *hits;         /* [n_pixels] tiles holding it */
    double *sorted;         /* [n_pixels] scratch for the median and the MAD */
    float *recon;           /* [batch][T][T][E] the map pass's reconstructions */
    uint8_t *keep;          /* [batch][T][T] the gathered tiles' pixels in the loss */
    size_t *seq;            /* [batch] consecutive tile indices for the map pass */
} train_data;

static void data_free(train_data *d)
{
    if (d->cubes)
        for (size_t i = 0; i < d->n_cubes; i++) eelsvae_cube_free(d->cubes[i]);
    evae_free(d->cubes);
    evae_free(d->tiles);
    evae_free(d->train);
    evae_free(d->val);
    evae_free(d->order);
    evae_free(d->x);
    evae_free(d->pixel_at);
    evae_free(d->outlier);
    evae_free(d->error);
    evae_free(d->hits);
    evae_free(d->sorted);
    evae_free(d->recon);
    evae_free(d->keep);
    evae_free(d->seq);
    memset(d, 0, sizeof *d);
}

/* Percentiles of all the cubes' samples together (one scaling for all). */
static eelsvae_status joint_percentiles(eelsvae_cube *const *cubes, size_t n, double p_lo, double p_hi, double *lo,
                                        double *hi)
{
    if (n == 1) return eelsvae_cube_percentiles(cubes[0], p_lo, p_hi, lo, hi);
    size_t rows = 0, ne = cubes[0]->ne;
    for (size_t i = 0; i < n; i++) rows += evae_cube_pixels(cubes[i]);
    eelsvae_cube *all = NULL; /* rows × 1 × ne: every spectrum once */
    EVAE_TRY(eelsvae_cube_create(rows, 1, ne, &all));
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(all->data + at, cubes[i]->data, evae_cube_samples(cubes[i]) * sizeof(float));
        at += evae_cube_samples(cubes[i]);
    }
    eelsvae_status st = eelsvae_cube_percentiles(all, p_lo, p_hi, lo, hi);
    eelsvae_cube_free(all);
    return st;
}

/* First training: blur, scale every cube to the percentiles of all of
 * them together (or to the caller's fixed scaling), then the filters. */
static eelsvae_status record_and_apply(evae_model_transform *t, eelsvae_cube **cubes, size_t n)
{
    const eelsvae_preprocess_options *chain = &t->preprocess;
    for (size_t i = 0; i < n; i++) {
        eelsvae_status st = eelsvae_cube_check_finite(cubes[i]);
        if (st != EELSVAE_OK) return fail_for_cube(st, i);
    }
    if (chain->use_fixed_scaling) {
        t->scale_lo = chain->scale_lo;
        t->scale_hi = chain->scale_hi;
        for (size_t i = 0; i < n; i++) EVAE_TRY(evae_model_apply_transform(t, cubes[i]));
        return EELSVAE_OK;
    }
    for (size_t i = 0; i < n; i++)
        EVAE_TRY(eelsvae_cube_gaussian_blur(cubes[i], chain->sigma[0], chain->sigma[1], chain->sigma[2]));
    EVAE_TRY(joint_percentiles(cubes, n, chain->percentile_lo, chain->percentile_hi, &t->scale_lo, &t->scale_hi));
    if (!(t->scale_hi > t->scale_lo))
        return evae_fail(EELSVAE_ERR_NUMERIC,
                         "model train: the %g-th and %g-th percentiles of the blurred training data are both %g; "
                         "the data is too nearly constant to scale",
                         chain->percentile_lo, chain->percentile_hi, t->scale_lo);
    evae_model_transform rest = *t; /* the blur is done: scaling and filters */
    for (int a = 0; a < 3; a++) rest.preprocess.sigma[a] = 0.0;
    for (size_t i = 0; i < n; i++) EVAE_TRY(evae_model_apply_transform(&rest, cubes[i]));
    return EELSVAE_OK;
}

/* Crop every cube and preprocess it with the recorded transform, or record
 * one in *t on the first training. */
static eelsvae_status prepare_cubes(const eelsvae_model *model, const eelsvae_cube *const *cubes, size_t n,
                                    evae_model_transform *t, train_data *d)
{
    EVAE_TRY(evae_alloc_zeros(n, sizeof *d->cubes, (void **)&d->cubes, "training cubes"));
    d->n_cubes = n;
    /* One energy grid for every cube: the recorded one, or the first cube's. */
    double grid = t->recorded ? t->energy_offset : NAN;
    for (size_t i = 0; i < n; i++) {
        char what[64];
        snprintf(what, sizeof what, "model train: cube %zu", i);
        double first = NAN;
        EVAE_TRY(evae_model_crop(&model->arch, cubes[i], grid, what, &d->cubes[i], &first));
        if (i == 0) grid = first;
    }
    if (t->recorded) {
        for (size_t i = 0; i < n; i++) {
            eelsvae_status st = evae_model_apply_transform(t, d->cubes[i]);
            if (st != EELSVAE_OK) return fail_for_cube(st, i);
        }
        return EELSVAE_OK;
    }
    t->energy_offset = grid;
    t->dispersion = cubes[0]->axis[EELSVAE_AXIS_E].scale;
    return record_and_apply(t, d->cubes, n);
}

static bool tile_excluded(const uint8_t *mask, size_t nx, size_t y0, size_t x0, size_t tile)
{
    if (!mask) return false;
    for (size_t r = 0; r < tile; r++)
        for (size_t c = 0; c < tile; c++)
            if (mask[(y0 + r) * nx + x0 + c]) return true;
    return false;
}

/* Walk every (cube, y, x) tile not touching an excluded pixel; store them
 * when `out` is given. Returns the count. */
static size_t walk_tiles(const train_data *d, const uint8_t *const *exclude, size_t tile, size_t stride,
                         tile_ref *out)
{
    size_t count = 0;
    for (size_t i = 0; i < d->n_cubes; i++) {
        const eelsvae_cube *c = d->cubes[i];
        const uint8_t *mask = exclude ? exclude[i] : NULL;
        if (c->ny < tile || c->nx < tile) continue;
        size_t ny = evae_tile_count(c->ny, tile, stride), nx = evae_tile_count(c->nx, tile, stride);
        for (size_t a = 0; a < ny; a++)
            for (size_t b = 0; b < nx; b++) {
                size_t y0 = evae_tile_origin(a, c->ny, tile, stride), x0 = evae_tile_origin(b, c->nx, tile, stride);
                if (tile_excluded(mask, c->nx, y0, x0, tile)) continue;
                if (out) out[count] = (tile_ref){i, y0, x0};
                count++;
            }
    }
    return count;
}

/* No tile to train on: say whether the scans are too small or the exclusion took them all. */
static eelsvae_status no_tiles(const train_data *d, size_t tile, size_t stride)
{
    for (size_t i = 0; i < d->n_cubes; i++)
        if (d->cubes[i]->ny >= tile && d->cubes[i]->nx >= tile)
            return evae_fail(EELSVAE_ERR_DIMENSION,
                             "model train: no tile left to train on: every %zu × %zu tile at stride %zu touches an "
                             "excluded pixel; exclude fewer pixels",
                             tile, tile, stride);
    const eelsvae_cube *c = d->cubes[0];
    return evae_fail(EELSVAE_ERR_DIMENSION,
                     "model train: the %zu × %zu scan%s smaller than the model's %zu × %zu tile; make the model "
                     "with a tile that fits (eelsvae_model_options_fit() picks one)",
                     c->ny, c->nx, d->n_cubes > 1 ? " (and every other cube's) is" : " is", tile, tile);
}

/* The tiles at the asked stride (at most the tile), or at the largest
 * smaller stride that gives min_tiles, down to 1: a small scan (a line a
 * few pixels wide) still yields enough distinct tiles. */
static eelsvae_status build_tiles(train_data *d, const uint8_t *const *exclude, size_t tile, size_t stride,
                                  size_t min_tiles)
{
    if (stride == 0 || stride > tile) stride = tile;
    size_t n = walk_tiles(d, exclude, tile, stride, NULL);
    while (n < min_tiles && stride > 1) n = walk_tiles(d, exclude, tile, --stride, NULL);
    if (n == 0) return no_tiles(d, tile, stride);
    EVAE_TRY(evae_alloc_array(n, sizeof *d->tiles, (void **)&d->tiles, "training tiles"));
    d->n_tiles = walk_tiles(d, exclude, tile, stride, d->tiles);
    return EELSVAE_OK;
}

/* ---- random streams ----------------------------------------------------------- */

enum { PURPOSE_SPLIT = 1, PURPOSE_SHUFFLE = 2, PURPOSE_EPSILON = 3 };

/* A generator that depends on (seed, purpose, epoch, batch) only. */
static void stream_rng(evae_rng *rng, uint64_t seed, uint64_t purpose, uint64_t epoch, uint64_t batch)
{
    evae_rng_seed(rng, seed, purpose);
    evae_rng_seed(rng, evae_rng_u64(rng), epoch);
    evae_rng_seed(rng, evae_rng_u64(rng), batch);
}

static void shuffle(size_t *a, size_t n, evae_rng *rng)
{
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(evae_rng_uniform(rng) * (double)i); /* 0 … i − 1 */
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static int compare_size(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    return (x > y) - (x < y);
}

/* The validation split, fixed by the seed: ⌊f·n⌋ tiles (at least one tile
 * stays for training), both sets in ascending tile order. */
static eelsvae_status split_tiles(train_data *d, uint64_t seed, double fraction)
{
    size_t n = d->n_tiles;
    size_t n_val = (size_t)floor(fraction * (double)n);
    if (n_val >= n) n_val = n - 1;
    size_t *perm = NULL;
    EVAE_TRY(evae_alloc_array(n, sizeof *perm, (void **)&perm, "tile split"));
    for (size_t i = 0; i < n; i++) perm[i] = i;
    evae_rng rng;
    stream_rng(&rng, seed, PURPOSE_SPLIT, 0, 0);
    shuffle(perm, n, &rng);
    eelsvae_status st = evae_alloc_array(n_val ? n_val : 1, sizeof *d->val, (void **)&d->val, "validation tiles");
    if (st == EELSVAE_OK) st = evae_alloc_array(n - n_val, sizeof *d->train, (void **)&d->train, "training tiles");
    if (st == EELSVAE_OK) st = evae_alloc_array(n - n_val, sizeof *d->order, (void **)&d->order, "epoch order");
    if (st == EELSVAE_OK) {
        memcpy(d->val, perm, n_val * sizeof *perm);
        memcpy(d->train, perm + n_val, (n - n_val) * sizeof *perm);
        qsort(d->val, n_val, sizeof *perm, compare_size);
        qsort(d->train, n - n_val, sizeof *perm, compare_size);
        d->n_val = n_val;
        d->n_train = n - n_val;
    }
    evae_free(perm);
    return st;
}

/* Copy tiles tiles[idx[0 … count−1]] into x [count][T][T][E]. */
static void gather(const train_data *d, const size_t *idx, size_t count, size_t tile, float *x)
{
    for (size_t k = 0; k < count; k++) {
        const tile_ref *t = &d->tiles[idx[k]];
        const eelsvae_cube *c = d->cubes[t->cube];
        size_t row = tile * c->ne;
        float *dst = x + k * tile * row;
        for (size_t r = 0; r < tile; r++)
            memcpy(dst + r * row, c->data + ((t->y + r) * c->nx + t->x) * c->ne, row * sizeof(float));
    }
}

/* ---- the loop -------------------------------------------------------------------- */

typedef struct train_run {
    eelsvae_model *model;
    train_data *data;
    const eelsvae_train_options *opt;
    size_t batch;   /* tiles per full batch: min(opt batch, training tiles) */
    size_t batches; /* per epoch */
    bool trim;      /* this epoch leaves the outlier pixels out of the reconstruction term */
    struct timespec start;
    size_t steps; /* batches done since this call started (for the ETA) */
} train_run;

static double seconds_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0->tv_nsec);
}

/* ---- outlier mode ----------------------------------------------------------------- */

/* The pixels of tiles tiles[idx[0 … count−1]] that enter the loss, into keep [count][T][T]. */
static void gather_keep(const train_data *d, const size_t *idx, size_t count, size_t tile, uint8_t *keep)
{
    for (size_t k = 0; k < count; k++) {
        const tile_ref *t = &d->tiles[idx[k]];
        const uint8_t *map = d->outlier + d->pixel_at[t->cube];
        size_t nx = d->cubes[t->cube]->nx;
        for (size_t r = 0; r < tile; r++)
            for (size_t c = 0; c < tile; c++) keep[(k * tile + r) * tile + c] = !map[(t->y + r) * nx + t->x + c];
    }
}

/* Gather a batch's tiles into d->x; returns its keep mask in trimmed epochs, else NULL. */
static const uint8_t *gather_batch(const train_run *run, const size_t *idx, size_t count)
{
    train_data *d = run->data;
    size_t tile = run->model->arch.tile;
    gather(d, idx, count, tile, d->x);
    if (!run->trim) return NULL;
    gather_keep(d, idx, count, tile, d->keep);
    return d->keep;
}

static eelsvae_status alloc_outlier_maps(train_data *d, size_t batch, size_t tile_floats, size_t tile)
{
    EVAE_TRY(evae_alloc_array(d->n_cubes, sizeof *d->pixel_at, (void **)&d->pixel_at, "outlier map"));
    d->n_pixels = 0;
    for (size_t i = 0; i < d->n_cubes; i++) {
        d->pixel_at[i] = d->n_pixels;
        d->n_pixels += evae_cube_pixels(d->cubes[i]);
    }
    EVAE_TRY(evae_alloc_zeros(d->n_pixels, sizeof *d->outlier, (void **)&d->outlier, "outlier map"));
    EVAE_TRY(evae_alloc_array(d->n_pixels, sizeof *d->error, (void **)&d->error, "outlier errors"));
    EVAE_TRY(evae_alloc_array(d->n_pixels, sizeof *d->hits, (void **)&d->hits, "outlier errors"));
    EVAE_TRY(evae_alloc_array(d->n_pixels, sizeof *d->sorted, (void **)&d->sorted, "outlier errors"));
    EVAE_TRY(evae_alloc_array(tile_floats, sizeof *d->recon, (void **)&d->recon, "outlier reconstructions"));
    EVAE_TRY(evae_alloc_array(batch * tile * tile, sizeof *d->keep, (void **)&d->keep, "outlier batch mask"));
    return evae_alloc_array(batch, sizeof *d->seq, (void **)&d->seq, "outlier batch");
}

/* 1 − the Pearson correlation of a spectrum and its reconstruction over n
 * channels, what detection scores: blind to the pixel's intensity, which
 * varies with thickness, and alive to a change of shape. A constant
 * spectrum (no correlation to measure) counts as uncorrelated. */
static double shape_error(const float *x, const float *r, size_t n)
{
    double sx = 0.0, sr = 0.0;
    for (size_t e = 0; e < n; e++) sx += x[e], sr += r[e];
    double mx = sx / (double)n, mr = sr / (double)n, xx = 0.0, rr = 0.0, xr = 0.0;
    for (size_t e = 0; e < n; e++) {
        double a = (double)x[e] - mx, b = (double)r[e] - mr;
        xx += a * a, rr += b * b, xr += a * b;
    }
    return xx > 0.0 && rr > 0.0 ? 1.0 - xr / sqrt(xx * rr) : 1.0;
}

/* Add each pixel's shape error of `count` tiles from `first` on. */
static void accumulate_errors(train_data *d, size_t first, size_t count, size_t tile)
{
    size_t ne = d->cubes[0]->ne;
    for (size_t k = 0; k < count; k++) {
        const tile_ref *t = &d->tiles[first + k];
        size_t nx = d->cubes[t->cube]->nx, at = d->pixel_at[t->cube];
        for (size_t r = 0; r < tile; r++)
            for (size_t c = 0; c < tile; c++) {
                size_t from = ((k * tile + r) * tile + c) * ne;
                size_t p = at + (t->y + r) * nx + t->x + c;
                d->error[p] += shape_error(d->x + from, d->recon + from, ne);
                d->hits[p]++;
            }
    }
}

/* median + k · 1.4826 · MAD of v[0 … n−1] (reordered in place); +∞ where
 * the MAD is 0 (no spread to judge an outlier by) or n is 0. */
static double robust_cut(double *v, size_t n, double k)
{
    if (n == 0) return INFINITY;
    double median = evae_median_doubles(v, n);
    for (size_t i = 0; i < n; i++) v[i] = fabs(v[i] - median);
    double mad = evae_median_doubles(v, n);
    return mad > 0.0 ? median + k * 1.4826 * mad : INFINITY;
}

/* The outlier map from the current weights: every tile reconstructed with
 * z = μ, each pixel's mean error over its tiles against the robust cut.
 * It depends on the weights alone, so a run resumed at an epoch boundary
 * makes the very map an uninterrupted run makes. */
static eelsvae_status refresh_outliers(const train_run *run, size_t epoch)
{
    train_data *d = run->data;
    size_t tile = run->model->arch.tile;
    memset(d->error, 0, d->n_pixels * sizeof *d->error);
    memset(d->hits, 0, d->n_pixels * sizeof *d->hits);
    for (size_t i = 0; i < d->n_tiles; i += run->batch) {
        size_t b = d->n_tiles - i < run->batch ? d->n_tiles - i : run->batch;
        for (size_t k = 0; k < b; k++) d->seq[k] = i + k;
        gather(d, d->seq, b, tile, d->x);
        EVAE_TRY(evae_cvae_reconstruct(run->model->net, d->x, b, d->recon));
        accumulate_errors(d, i, b, tile);
    }
    size_t n = 0;
    for (size_t p = 0; p < d->n_pixels; p++)
        if (d->hits[p]) d->sorted[n++] = d->error[p] / d->hits[p];
    double cut = robust_cut(d->sorted, n, run->opt->outlier_cut);
    size_t out = 0;
    for (size_t p = 0; p < d->n_pixels; p++) {
        d->outlier[p] = d->hits[p] && d->error[p] / d->hits[p] > cut;
        out += d->outlier[p];
    }
    evae_log(EELSVAE_LOG_INFO,
             "model train: epoch %zu: %zu of %zu pixels (%.2f %%) left out as outliers (error > %.4g)", epoch, out,
             n, n ? 100.0 * (double)out / (double)n : 0.0, cut);
    return EELSVAE_OK;
}

/* Outlier mode trims from the epoch after the warm-up, a third of the epochs rounded up. */
static bool trims(const eelsvae_train_options *o, size_t epoch)
{
    return o->outlier_cut > 0.0 && epoch > (o->epochs + 2) / 3;
}

/* Mean validation loss per tile with z = μ; NaN without validation tiles. */
static eelsvae_status validation_loss(const train_run *run, double *out)
{
    const train_data *d = run->data;
    if (d->n_val == 0) {
        *out = NAN;
        return EELSVAE_OK;
    }
    evae_cvae *net = run->model->net;
    double sum = 0.0;
    for (size_t i = 0; i < d->n_val; i += run->batch) {
        size_t b = d->n_val - i < run->batch ? d->n_val - i : run->batch;
        const uint8_t *keep = gather_batch(run, d->val + i, b);
        evae_cvae_losses l;
        EVAE_TRY(evae_cvae_evaluate_masked(net, d->x, keep, b, NULL, NULL, &l));
        sum += l.loss * (double)b;
    }
    *out = sum / (double)d->n_val;
    return EELSVAE_OK;
}

/* The loss of a step must be finite, and so must its gradient norm. */
static eelsvae_status diverged(eelsvae_status st, size_t epoch, size_t batch)
{
    char detail[400];
    snprintf(detail, sizeof detail, "%s", st == EELSVAE_OK ? "the gradient norm is not finite" : eelsvae_last_error());
    return evae_fail(EELSVAE_ERR_NUMERIC, "model train: the loss diverged at epoch %zu, batch %zu: %s", epoch, batch,
                     detail);
}

/* One optimiser step on batch b of the epoch (b 0-based). */
static eelsvae_status train_step(train_run *run, size_t epoch, size_t b)
{
    eelsvae_model *m = run->model;
    evae_train_state *s = &m->state;
    train_data *d = run->data;
    size_t first = b * run->batch;
    size_t count = d->n_train - first < run->batch ? d->n_train - first : run->batch;
    const uint8_t *keep = gather_batch(run, d->order + first, count);
    evae_rng rng;
    stream_rng(&rng, s->seed, PURPOSE_EPSILON, epoch, b);
    evae_cvae_losses l;
    eelsvae_status st = evae_cvae_forward_backward_masked(m->net, d->x, keep, count, NULL, &rng, &l);
    if (st == EELSVAE_ERR_NUMERIC || (st == EELSVAE_OK && !isfinite(l.loss))) return diverged(st, epoch, b + 1);
    if (st != EELSVAE_OK) return st;
    float *grads = evae_cvae_grads(m->net);
    size_t n = m->layout.parameters;
    double norm = evae_clip_grad_norm(grads, n, run->opt->clip_norm > 0.0 ? run->opt->clip_norm : INFINITY);
    if (!isfinite(norm)) return diverged(EELSVAE_OK, epoch, b + 1);
    EVAE_TRY(evae_adam_step(&s->adam, evae_cvae_params(m->net), grads, s->m, s->v, n));
    s->sum_loss += l.loss * (double)count;
    s->sum_rec += l.reconstruction * (double)count;
    s->sum_kl += l.kl * (double)count;
    s->batches_done = b + 1;
    run->steps++;
    return EELSVAE_OK;
}

/* Means per tile of the epoch in progress into the progress record. */
static void fill_progress(const train_run *run, size_t epoch, eelsvae_train_progress *p)
{
    const evae_train_state *s = &run->model->state;
    memset(p, 0, sizeof *p);
    p->struct_size = sizeof *p;
    p->epoch = epoch;
    p->epochs = run->opt->epochs;
    p->batch = (size_t)s->batches_done;
    p->batches = run->batches;
    size_t seen = p->batch == run->batches ? run->data->n_train : p->batch * run->batch;
    p->loss = s->sum_loss / (double)seen;
    p->reconstruction = s->sum_rec / (double)seen;
    p->kl = s->sum_kl / (double)seen;
    p->validation_loss = NAN;
    p->learning_rate = s->adam.lr;
    p->elapsed_seconds = seconds_since(&run->start);
    size_t left = (run->opt->epochs - epoch) * run->batches + (run->batches - p->batch);
    p->eta_seconds = run->steps ? p->elapsed_seconds / (double)run->steps * (double)left : 0.0;
}

/* After the last batch: validation, scheduler, early stopping, the epoch
 * closed in the state, a checkpoint. Sets *stop for early stopping. */
static eelsvae_status end_epoch(train_run *run, size_t epoch, eelsvae_train_progress *p, bool *stop)
{
    eelsvae_model *m = run->model;
    evae_train_state *s = &m->state;
    const eelsvae_train_options *o = run->opt;
    EVAE_TRY(validation_loss(run, &p->validation_loss));
    p->epoch_done = 1;
    double metric = run->data->n_val ? p->validation_loss : p->loss;
    if (o->plateau_patience > 0 && evae_plateau_step(&s->plateau, metric, &s->adam.lr))
        evae_log(EELSVAE_LOG_INFO, "model train: learning rate lowered to %g after epoch %zu", s->adam.lr, epoch);
    *stop = o->early_stop_patience > 0 && evae_early_stop_step(&s->early, metric);
    s->epochs_done = epoch;
    s->batches_done = 0;
    s->sum_loss = s->sum_rec = s->sum_kl = 0.0;
    evae_log(EELSVAE_LOG_INFO,
             "model train: epoch %zu/%zu: loss %.6g (reconstruction %.6g, KL %.6g), validation %.6g, lr %g, %.1f s",
             epoch, o->epochs, p->loss, p->reconstruction, p->kl, p->validation_loss, s->adam.lr, p->elapsed_seconds);
    if (*stop)
        evae_log(EELSVAE_LOG_INFO, "model train: early stop after epoch %zu (best epoch %lld)", epoch,
                 (long long)s->early.best_epoch + 1);
    if (o->checkpoint_every > 0 && epoch % o->checkpoint_every == 0)
        EVAE_TRY(eelsvae_model_save(m, o->checkpoint_path, 1));
    return EELSVAE_OK;
}

static eelsvae_status run_epoch(train_run *run, size_t epoch, bool *stop)
{
    evae_train_state *s = &run->model->state;
    train_data *d = run->data;
    run->trim = trims(run->opt, epoch);
    if (run->trim) EVAE_TRY(refresh_outliers(run, epoch));
    memcpy(d->order, d->train, d->n_train * sizeof *d->order);
    evae_rng rng;
    stream_rng(&rng, s->seed, PURPOSE_SHUFFLE, epoch, 0);
    shuffle(d->order, d->n_train, &rng);
    for (size_t b = (size_t)s->batches_done; b < run->batches; b++) {
        EVAE_TRY(train_step(run, epoch, b));
        eelsvae_train_progress p;
        fill_progress(run, epoch, &p);
        if (b + 1 == run->batches) EVAE_TRY(end_epoch(run, epoch, &p, stop));
        if (run->opt->progress && run->opt->progress(run->opt->progress_user, &p))
            return evae_fail(EELSVAE_ERR_CANCELLED,
                             "model train: cancelled by the progress callback at epoch %zu, batch %zu", epoch, b + 1);
    }
    return EELSVAE_OK;
}

/* Fresh state for a first run; the caller's patience values on a resume;
 * a mid-epoch position that this run cannot continue is dropped. */
static void start_state(eelsvae_model *m, const eelsvae_train_options *o, const train_data *d)
{
    evae_train_state *s = &m->state;
    if (!s->started) {
        evae_adam_init(&s->adam, o->learning_rate);
        evae_plateau_init(&s->plateau, (int)o->plateau_patience);
        evae_early_stop_init(&s->early, (int)o->early_stop_patience, 0.0);
        s->epochs_done = s->batches_done = 0;
        s->sum_loss = s->sum_rec = s->sum_kl = 0.0;
        memset(s->m, 0, m->layout.parameters * sizeof *s->m);
        memset(s->v, 0, m->layout.parameters * sizeof *s->v);
    }
    s->plateau.patience = (int)o->plateau_patience;
    s->early.patience = (int)o->early_stop_patience;
    if (s->batches_done > 0 && (s->seed != o->seed || s->batch != o->batch || s->tiles_train != d->n_train ||
                                s->tiles_val != d->n_val || s->batches_done * o->batch >= d->n_train)) {
        evae_log(EELSVAE_LOG_WARN,
                 "model train: the seed, batch size or tiles differ from the interrupted epoch %llu's; it restarts",
                 (unsigned long long)s->epochs_done + 1);
        s->batches_done = 0;
        s->sum_loss = s->sum_rec = s->sum_kl = 0.0;
    }
    s->seed = o->seed;
    s->batch = o->batch;
    s->tiles_train = d->n_train;
    s->tiles_val = d->n_val;
    s->started = true;
}

static eelsvae_status run_training(eelsvae_model *m, train_data *d, const eelsvae_train_options *o,
                                   const evae_model_transform *t)
{
    train_run run = {m, d, o, 0, 0, false, {0, 0}, 0};
    run.batch = o->batch < d->n_train ? o->batch : d->n_train;
    run.batches = (d->n_train + run.batch - 1) / run.batch;
    size_t tile_floats = 0;
    EVAE_TRY(evae_mul4(run.batch, m->arch.tile, m->arch.tile, m->arch.energy_channels, &tile_floats, "batch"));
    EVAE_TRY(evae_alloc_array(tile_floats, sizeof(float), (void **)&d->x, "training batch"));
    if (o->outlier_cut > 0.0) EVAE_TRY(alloc_outlier_maps(d, run.batch, tile_floats, m->arch.tile));
    if (!m->net_training || evae_cvae_max_batch(m->net) != run.batch) EVAE_TRY(evae_model_swap_net(m, true, run.batch));
    EVAE_TRY(evae_model_alloc_moments(m));
    /* Everything is allocated: from here the model changes. */
    m->transform = *t;
    m->transform.recorded = true;
    start_state(m, o, d);
    clock_gettime(CLOCK_MONOTONIC, &run.start);
    evae_log(EELSVAE_LOG_INFO,
             "model train: %zu tiles (%zu training, %zu validation) from %zu cube(s), batch %zu, epochs %llu … %zu",
             d->n_tiles, d->n_train, d->n_val, d->n_cubes, run.batch, (unsigned long long)m->state.epochs_done + 1,
             o->epochs);
    bool stop = false;
    for (size_t epoch = (size_t)m->state.epochs_done + 1; epoch <= o->epochs && !stop; epoch++)
        EVAE_TRY(run_epoch(&run, epoch, &stop));
    return EELSVAE_OK;
}

/* Nothing left to do: the epochs are done, or early stopping has fired. */
static bool training_finished(const eelsvae_model *m, const eelsvae_train_options *o)
{
    const evae_train_state *s = &m->state;
    if (!s->started) return false;
    if (s->epochs_done >= o->epochs) return true;
    return o->early_stop_patience > 0 && s->early.stop;
}

static eelsvae_status nothing_to_do(const eelsvae_model *m, const eelsvae_train_options *o)
{
    evae_log(EELSVAE_LOG_INFO, "model train: nothing to do after epoch %llu of %zu",
             (unsigned long long)m->state.epochs_done, o->epochs);
    return EELSVAE_OK;
}

/* The epochs, raised so that training takes at least min_steps optimiser
 * steps: a small scan gives few batches per epoch. */
static size_t epochs_for_steps(const eelsvae_train_options *o, size_t n_train)
{
    size_t batch = o->batch < n_train ? o->batch : n_train;
    size_t batches = (n_train + batch - 1) / batch;
    size_t need = o->min_steps / batches + (o->min_steps % batches != 0);
    return need > o->epochs ? need : o->epochs;
}

eelsvae_status eelsvae_model_train(eelsvae_model *model, const eelsvae_cube *const *cubes,
                                   const uint8_t *const *exclude, size_t n_cubes, const eelsvae_train_options *opt)
{
    if (!model || !cubes) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model train: NULL argument");
    if (n_cubes == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "model train: n_cubes is 0");
    eelsvae_train_options o;
    evae_model_transform t = model->transform;
    EVAE_TRY(read_train_options(opt, &o, &t.preprocess));
    if (model->transform.recorded) t = model->transform; /* a trained model keeps its transform */
    EVAE_TRY(check_cubes(model, cubes, n_cubes));
    /* With min_steps the epochs depend on the tile count: known only below. */
    if (o.min_steps == 0 && training_finished(model, &o)) return nothing_to_do(model, &o);
    train_data d;
    memset(&d, 0, sizeof d);
    eelsvae_status st = prepare_cubes(model, cubes, n_cubes, &t, &d);
    if (st == EELSVAE_OK) st = build_tiles(&d, exclude, model->arch.tile, o.tile_stride, o.min_tiles);
    if (st == EELSVAE_OK) st = split_tiles(&d, o.seed, o.validation_fraction);
    if (st == EELSVAE_OK) o.epochs = epochs_for_steps(&o, d.n_train);
    if (st == EELSVAE_OK) st = training_finished(model, &o) ? nothing_to_do(model, &o) : run_training(model, &d, &o, &t);
    data_free(&d);
    /* Give the gradient block back; a failure to swap leaves the (working)
     * training net in place, so it is not an error. */
    if (model->net_training) {
        char keep[512];
        snprintf(keep, sizeof keep, "%s", eelsvae_last_error());
        if (evae_model_swap_net(model, false, 1) != EELSVAE_OK && st != EELSVAE_OK)
            evae_fail(st, "%s", keep);
    }
    return st;
}
