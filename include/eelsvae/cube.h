/**
 * @file cube.h
 * @brief Spectrum-image datacubes: creation, axes, tiles, .npy files,
 *        preprocessing, the synthetic BiFeO3-like SI and anomaly injection.
 *
 * Layout: a cube is ny × nx × ne float32 samples, row-major with energy
 * fastest — sample (y, x, e) is at index (y·nx + x)·ne + e, the layout of a
 * NumPy (y, x, E) array as HyperSpy holds an SI. Each axis has a calibration
 * value(i) = offset + scale·i and a units string.
 *
 * The energy axis is either *calibrated* or *uncalibrated* (its values are
 * channel numbers). It is uncalibrated in a cube from eelsvae_cube_create(),
 * eelsvae_cube_create_from() or eelsvae_cube_load_npy() — although it then
 * reads offset 0, scale 1, units "eV" — and in a cube converted from a
 * signal or file whose energy axis has no calibration (offset 0, scale 1, no
 * units). eelsvae_cube_set_axis() on ::EELSVAE_AXIS_E calibrates it, with any
 * values but offset 0, scale 1 and no units (which make it uncalibrated
 * again); so does loading a file that records a calibration. Crops, copies
 * and other cubes derived from a cube keep its state. The calls that read an
 * energy in eV — eelsvae_cube_energy_window(), eelsvae_cube_crop_energy(),
 * eelsvae_cube_inject_shift(), eelsvae_scorer_score() with a window, eelsvae_model_options_fit() and a model's prepare
 * and train — refuse an uncalibrated axis with ::EELSVAE_ERR_RANGE, rather
 * than read eV as channel numbers; set the axis with
 * `eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, offset_ev, scale_ev, "eV")`.
 */
#ifndef EELSVAE_CUBE_H
#define EELSVAE_CUBE_H

#include <eelsvae/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Axis of a cube. @since 0.1.0 */
typedef enum eelsvae_axis {
    EELSVAE_AXIS_Y = 0, /**< Scan rows (slowest). */
    EELSVAE_AXIS_X = 1, /**< Scan columns. */
    EELSVAE_AXIS_E = 2  /**< Energy loss (fastest). */
} eelsvae_axis;

/** Longest units string an axis keeps, including the terminating NUL. @since 0.1.0 */
#define EELSVAE_UNITS_MAX 16

/** @name Creating and inspecting cubes
 *  @{ */

/**
 * @brief Create a zero-filled cube.
 *
 * Axes start uncalibrated: offset 0, scale 1, units "" (spatial) and
 * "eV" (energy); the energy axis counts as uncalibrated (see the file
 * description) until eelsvae_cube_set_axis() calibrates it.
 * @param ny Rows, ≥ 1.
 * @param nx Columns, ≥ 1.
 * @param ne Energy channels, ≥ 1.
 * @param[out] out The new cube.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a zero dimension),
 *         ::EELSVAE_ERR_OVERFLOW, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_create(size_t ny, size_t nx, size_t ne, eelsvae_cube **out);

/**
 * @brief Create a cube holding a copy of the caller's samples.
 * @param data ny·nx·ne samples in the cube layout; copied.
 * @param ny Rows, ≥ 1.
 * @param nx Columns, ≥ 1.
 * @param ne Energy channels, ≥ 1.
 * @param[out] out The new cube.
 * @return As eelsvae_cube_create().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_create_from(const float *data, size_t ny, size_t nx, size_t ne,
                                                    eelsvae_cube **out);

/**
 * @brief Free a cube. NULL is a no-op.
 * @param cube The cube.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_cube_free(eelsvae_cube *cube);

/**
 * @brief Dimensions of a cube.
 * @param cube The cube.
 * @param[out] ny Rows (may be NULL).
 * @param[out] nx Columns (may be NULL).
 * @param[out] ne Energy channels (may be NULL).
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_cube_shape(const eelsvae_cube *cube, size_t *ny, size_t *nx, size_t *ne);

/**
 * @brief The samples, ny·nx·ne floats in the cube layout, 64-byte aligned.
 * @param cube The cube.
 * @return Pointer valid until the cube is freed.
 * @since 0.1.0
 */
EELSVAE_API float *eelsvae_cube_data(eelsvae_cube *cube);

/**
 * @brief Read-only access to the samples.
 * @param cube The cube.
 * @return Pointer valid until the cube is freed.
 * @since 0.1.0
 */
EELSVAE_API const float *eelsvae_cube_data_const(const eelsvae_cube *cube);

/**
 * @brief Set the calibration of one axis: value(i) = offset + scale·i.
 *
 * On ::EELSVAE_AXIS_E this makes the energy axis calibrated, unless
 * @p offset is 0, @p scale 1 and @p units empty: those values mean channel
 * numbers, and leave it uncalibrated (see the file description). The
 * values are kept as given: a "keV" axis here stays in keV.
 * @param cube The cube.
 * @param axis Which axis.
 * @param offset Value at index 0 (finite).
 * @param scale Step per index (finite, non-zero).
 * @param units Units string (NULL for ""), shorter than ::EELSVAE_UNITS_MAX.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_set_axis(eelsvae_cube *cube, eelsvae_axis axis, double offset, double scale,
                                                 const char *units);

/**
 * @brief Calibration of one axis.
 * @param cube The cube.
 * @param axis Which axis.
 * @param[out] offset Value at index 0 (may be NULL).
 * @param[out] scale Step per index (may be NULL).
 * @param[out] units Units string owned by the cube (may be NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (unknown axis).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_axis(const eelsvae_cube *cube, eelsvae_axis axis, double *offset,
                                             double *scale, const char **units);

/**
 * @brief Pointer to the spectrum at pixel (y, x): ne contiguous samples.
 * @param cube The cube.
 * @param y Row.
 * @param x Column.
 * @param[out] spectrum Pointer into the cube's samples.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_RANGE.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_spectrum(const eelsvae_cube *cube, size_t y, size_t x,
                                                 const float **spectrum);

/**
 * @brief Which energy channels an energy window covers.
 *
 * The window [lo_ev, hi_ev] keeps every channel i whose energy
 * offset + scale·i lies within it (both ends included, to 1e-6 of a channel).
 * A window may stick out past either end of the axis by up to one channel
 * width (so "420:820" fits an axis 420 … 819.9 eV); a window further out, or
 * covering no channel, is ::EELSVAE_ERR_RANGE, and so is any window on an
 * uncalibrated energy axis (channel numbers: see the file description),
 * with a message saying how to set it.
 * @param cube The cube (its energy axis is used).
 * @param lo_ev Lower end in the energy axis' units.
 * @param hi_ev Upper end, > lo_ev.
 * @param[out] first First channel kept.
 * @param[out] count Number of channels kept, ≥ 1.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_RANGE.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_energy_window(const eelsvae_cube *cube, double lo_ev, double hi_ev,
                                                      size_t *first, size_t *count);

/**
 * @brief New cube holding the channels of an energy window.
 *
 * The channels kept are those of eelsvae_cube_energy_window(); the energy
 * offset is moved to the first one kept. An uncalibrated energy axis is
 * ::EELSVAE_ERR_RANGE, as there.
 * @param cube Source cube.
 * @param lo_ev Lower end of the window.
 * @param hi_ev Upper end of the window.
 * @param[out] out The cropped cube.
 * @return As eelsvae_cube_energy_window(), or ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_crop_energy(const eelsvae_cube *cube, double lo_ev, double hi_ev,
                                                    eelsvae_cube **out);

/**
 * @brief New cube whose every channel is the sum of @p bin adjacent
 *        channels of @p cube (a coarser dispersion, as a detector's binning).
 *
 * Channel k of the result sums channels k·bin … k·bin + bin − 1; channels
 * left over at the top end (ne mod bin) are dropped. The energy axis
 * becomes offset + (bin − 1)·scale / 2 (the centre of the first bin) and
 * bin·scale per channel (an uncalibrated axis stays uncalibrated: channel
 * numbers, now of the bins). Counts stay counts (a sum, not a mean), as
 * HyperSpy's rebin gives.
 * @param cube Source cube.
 * @param bin Channels per bin, 1 … ne.
 * @param[out] out The binned cube.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (NULL, bin 0 or
 *         larger than the channel count), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_bin_energy(const eelsvae_cube *cube, size_t bin, eelsvae_cube **out);

/**
 * @brief New cube holding the pixels y0 … y0+ny−1, x0 … x0+nx−1.
 * @param cube Source cube.
 * @param y0 First row kept.
 * @param x0 First column kept.
 * @param ny Rows kept, ≥ 1.
 * @param nx Columns kept, ≥ 1.
 * @param[out] out The cropped cube; spatial offsets are moved accordingly.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_RANGE, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_crop(const eelsvae_cube *cube, size_t y0, size_t x0, size_t ny, size_t nx,
                                             eelsvae_cube **out);

/**
 * @brief Deep copy, samples and calibration.
 * @param cube Source cube.
 * @param[out] out The copy.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_copy(const eelsvae_cube *cube, eelsvae_cube **out);

/**
 * @brief Sum over energy at every pixel (the "z-summed" image).
 * @param cube The cube.
 * @param[out] image ny·nx values, row-major.
 * @param count Length of @p image; must be ny·nx.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_DIMENSION.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_sum_image(const eelsvae_cube *cube, float *image, size_t count);

/**
 * @brief Mean spectrum over all pixels.
 * @param cube The cube.
 * @param[out] spectrum ne values.
 * @param count Length of @p spectrum; must be ne.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_DIMENSION.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_mean_spectrum(const eelsvae_cube *cube, float *spectrum, size_t count);

/**
 * @brief Check every sample is finite.
 * @param cube The cube.
 * @return ::EELSVAE_OK, or ::EELSVAE_ERR_NUMERIC naming the first pixel and
 *         channel holding NaN or ±Inf.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_check_finite(const eelsvae_cube *cube);
/** @} */

/** @name Tiles (sub-images)
 *
 * A cube is cut into T × T-pixel tiles that cover every pixel. Tile (i, j)
 * starts at row min(i·T, ny − T) and column min(j·T, nx − T): when ny or nx
 * is not a multiple of T the last row or column of tiles overlaps its
 * neighbour. Tiles are numbered row-major, i·tiles_x + j, and stored as
 * [tile][T][T][ne], energy fastest.
 *  @{ */

/**
 * @brief How many tiles cover an ny × nx scan.
 *
 * Tiles start every @p stride pixels along each axis (0, s, 2s, …); where
 * the steps miss the far edge, one more tile is placed flush against it, so
 * every pixel is covered. Stride T gives the paper's non-overlapping
 * tiling; a smaller stride gives overlapping tiles.
 * @param ny Rows.
 * @param nx Columns.
 * @param tile Tile side T, 1 ≤ T ≤ min(ny, nx).
 * @param stride Step between tile origins, 1 … T; 0 means T.
 * @param[out] tiles_y Tiles down: ⌈(ny − T) / s⌉ + 1.
 * @param[out] tiles_x Tiles across: ⌈(nx − T) / s⌉ + 1.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (tile 0, stride > T),
 *         ::EELSVAE_ERR_DIMENSION (tile larger than the scan).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_tiling(size_t ny, size_t nx, size_t tile, size_t stride, size_t *tiles_y,
                                          size_t *tiles_x);

/**
 * @brief Copy every tile of a cube into one buffer, row of tiles by row.
 * @param cube The cube.
 * @param tile Tile side T.
 * @param stride Step between tiles (see eelsvae_tiling()); 0 means T.
 * @param[out] tiles tiles_y·tiles_x·T·T·ne floats.
 * @param count Length of @p tiles.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_DIMENSION.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_to_tiles(const eelsvae_cube *cube, size_t tile, size_t stride, float *tiles,
                                                 size_t count);

/**
 * @brief Reassemble a cube from its tiles, blending where tiles overlap.
 *
 * Without overlap (stride T) every pixel is its tile's value. Where tiles
 * overlap, a pixel is the weighted mean of every tile that holds it, the
 * weight of a tile's pixel falling linearly towards the tile's edges
 * (min(r + 1, T − r) · min(c + 1, T − c) at row r, column c of the tile):
 * a pixel passes smoothly from one tile to the next, so a score map shows
 * no seam where the tile coverage changes.
 * @param cube Target cube; its shape decides the tiling. Samples are overwritten.
 * @param tile Tile side T.
 * @param stride Step between tiles, as they were cut; 0 means T.
 * @param tiles tiles_y·tiles_x·T·T·ne floats.
 * @param count Length of @p tiles.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_from_tiles(eelsvae_cube *cube, size_t tile, size_t stride, const float *tiles,
                                                   size_t count);
/** @} */

/** @name NumPy .npy files
 *  @{ */

/** Element type of an array (.npy files hold types 0–11). @since 0.1.0 */
typedef enum eelsvae_dtype {
    EELSVAE_DTYPE_INT8 = 0,    /**< int8 ("i1"). */
    EELSVAE_DTYPE_UINT8 = 1,   /**< uint8 ("u1"). */
    EELSVAE_DTYPE_INT16 = 2,   /**< int16. */
    EELSVAE_DTYPE_UINT16 = 3,  /**< uint16. */
    EELSVAE_DTYPE_INT32 = 4,   /**< int32. */
    EELSVAE_DTYPE_UINT32 = 5,  /**< uint32. */
    EELSVAE_DTYPE_INT64 = 6,   /**< int64. */
    EELSVAE_DTYPE_UINT64 = 7,  /**< uint64. */
    EELSVAE_DTYPE_FLOAT16 = 8, /**< IEEE half precision (read only). */
    EELSVAE_DTYPE_FLOAT32 = 9, /**< float32. */
    EELSVAE_DTYPE_FLOAT64 = 10, /**< float64. */
    EELSVAE_DTYPE_BOOL = 11,   /**< bool ("b1"), one byte 0 or 1. */
    EELSVAE_DTYPE_COMPLEX64 = 12,  /**< Two float32 (real, imaginary); signals only. */
    EELSVAE_DTYPE_COMPLEX128 = 13, /**< Two float64 (real, imaginary); signals only. */
    EELSVAE_DTYPE_RGBA8 = 14       /**< Four uint8 (R, G, B, A), DigitalMicrograph's RGB; signals only. */
} eelsvae_dtype;

/** Most dimensions a .npy array may have here. @since 0.1.0 */
#define EELSVAE_NPY_MAX_DIMS 8

/**
 * @brief Read a .npy file of any numeric dtype into float32.
 *
 * Handles header versions 1.0, 2.0 and 3.0, both byte orders and C or
 * Fortran order; the result is always C order. Integers wider than 24 bits
 * are rounded to the nearest float.
 * @param path File name.
 * @param[out] ndim Number of dimensions (0 … ::EELSVAE_NPY_MAX_DIMS).
 * @param[out] shape ::EELSVAE_NPY_MAX_DIMS entries; the first @p ndim are set.
 * @param[out] dtype The file's element type (may be NULL).
 * @param[out] data The samples, freed with eelsvae_free().
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_IO, ::EELSVAE_ERR_FORMAT (naming the
 *         byte offset), ::EELSVAE_ERR_UNSUPPORTED (e.g. a structured dtype),
 *         ::EELSVAE_ERR_OVERFLOW, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_npy_read(const char *path, size_t *ndim, size_t shape[EELSVAE_NPY_MAX_DIMS],
                                            eelsvae_dtype *dtype, float **data);

/**
 * @brief Write an array as a .npy file (version 1.0, little-endian, C order).
 *
 * The file is written to a temporary name beside @p path and renamed over
 * it, so a failure leaves any old file intact.
 * @param path File name.
 * @param dtype Element type of @p data (any but ::EELSVAE_DTYPE_FLOAT16).
 * @param data Elements in native byte order, C order.
 * @param ndim Number of dimensions, ≤ ::EELSVAE_NPY_MAX_DIMS.
 * @param shape @p ndim sizes.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_IO, ::EELSVAE_ERR_OVERFLOW,
 *         ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_npy_write(const char *path, eelsvae_dtype dtype, const void *data, size_t ndim,
                                             const size_t *shape);

/**
 * @brief Load a 3-D .npy array (y, x, E) as a cube.
 *
 * A .npy file has no calibration: the axes are left uncalibrated for the
 * caller to set with eelsvae_cube_set_axis().
 * @param path File name.
 * @param[out] out The cube.
 * @return As eelsvae_npy_read(), or ::EELSVAE_ERR_DIMENSION when the array is
 *         not 3-D or has a zero-sized dimension.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_load_npy(const char *path, eelsvae_cube **out);

/**
 * @brief Save a cube as a float32 (y, x, E) .npy file, atomically.
 * @param cube The cube.
 * @param path File name.
 * @return As eelsvae_npy_write().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_save_npy(const eelsvae_cube *cube, const char *path);
/** @} */

/** @name Preprocessing
 *  @{ */

/**
 * @brief Gaussian blur, separable, in place.
 *
 * The kernel is truncated at 4σ and the edges are mirrored (half-sample
 * symmetric), as scipy.ndimage.gaussian_filter does by default. σ = 0
 * leaves an axis alone. A kernel longer than its axis keeps mirroring, as
 * SciPy does. On failure the cube is unchanged.
 * @param cube The cube.
 * @param sigma_y σ along rows, in pixels, 0 ≤ σ ≤ 1e6.
 * @param sigma_x σ along columns, in pixels, 0 ≤ σ ≤ 1e6.
 * @param sigma_e σ along energy, in channels, 0 ≤ σ ≤ 1e6.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_gaussian_blur(eelsvae_cube *cube, double sigma_y, double sigma_x,
                                                      double sigma_e);

/**
 * @brief Percentiles of all samples, with NumPy's default (linear) interpolation.
 * @param cube The cube.
 * @param p_lo Lower percentile, 0 ≤ p_lo < p_hi.
 * @param p_hi Upper percentile, ≤ 100.
 * @param[out] v_lo Value at p_lo.
 * @param[out] v_hi Value at p_hi.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NUMERIC
 *         (a NaN or ±Inf sample, naming its pixel and channel), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_percentiles(const eelsvae_cube *cube, double p_lo, double p_hi,
                                                    double *v_lo, double *v_hi);

/**
 * @brief Min-max scaling in place: v ↦ clamp((v − lo) / (hi − lo), 0, 1).
 *
 * NaN samples stay NaN.
 * @param cube The cube.
 * @param lo Value mapped to 0, finite.
 * @param hi Value mapped to 1, finite, > lo, with hi − lo finite.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_scale(eelsvae_cube *cube, double lo, double hi);

/**
 * @brief k × k spatial mean filter on every energy channel, in place.
 *
 * Each pixel becomes the mean of the k × k block of pixels nearest it:
 * centred where the scan allows, shifted inward at its edges (along an
 * axis shorter than k, the whole axis). Every pixel so averages the same
 * number of distinct pixels and keeps the same share of the noise. This
 * differs from scipy.ndimage.uniform_filter, which mirrors the edges and so
 * counts an edge pixel twice: after its 3 × 3 mean an edge pixel keeps 5/3
 * and a corner 25/9 of the bulk's noise variance, which on a noisy SI put a
 * one-pixel frame of false alarms around the scan (see @ref page_preprocessing).
 * @param cube The cube.
 * @param k Odd window side, ≥ 1 (1 leaves the cube unchanged).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_mean_filter(eelsvae_cube *cube, size_t k);

/**
 * @brief k × k spatial median filter on every energy channel, in place.
 *
 * Edges are mirrored (half-sample symmetric), as scipy.ndimage.median_filter.
 * @param cube The cube.
 * @param k Odd window side, 1 ≤ k ≤ 255 (1 leaves the cube unchanged).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_median_filter(eelsvae_cube *cube, size_t k);

/** Which preset an options struct is filled with. @since 0.1.0 */
typedef enum eelsvae_preset {
    EELSVAE_PRESET_PAPER = 0, /**< The paper's values. */
    EELSVAE_PRESET_FAST = 1   /**< Smaller and quicker, meeting the same detection targets. */
} eelsvae_preset;

/**
 * @brief The preprocessing chain: blur, then robust scaling, then spatial filters.
 *
 * Fill with eelsvae_preprocess_options_init(); the paper's chain is
 * σ = 0.5 on every axis, scaling to the 1st and 99th percentiles clipped to
 * [0, 1], then a 3 × 3 mean filter.
 * @since 0.1.0
 */
typedef struct eelsvae_preprocess_options {
    size_t struct_size;     /**< The caller's sizeof(eelsvae_preprocess_options), set by init. */
    double sigma[3];        /**< Gaussian σ per axis (y, x, E), pixels/channels, ≤ 1e6; 0 = no blur. */
    double percentile_lo;   /**< Percentile mapped to 0 (paper: 1). */
    double percentile_hi;   /**< Percentile mapped to 1 (paper: 99). */
    int use_fixed_scaling;  /**< Non-zero: scale with scale_lo/scale_hi below instead of percentiles. */
    double scale_lo;        /**< Value mapped to 0 when use_fixed_scaling. */
    double scale_hi;        /**< Value mapped to 1 when use_fixed_scaling. */
    size_t mean_filter;     /**< Spatial mean filter side (odd; 1 = none; paper: 3). */
    size_t median_filter;   /**< Spatial median filter side (odd, ≤ 255; 1 = none), applied after the mean filter. */
} eelsvae_preprocess_options;

/**
 * @brief Fill preprocessing options with a preset, writing only the
 *        caller's @p struct_size bytes.
 *
 * Call it through eelsvae_preprocess_options_init(), which passes the
 * caller's own sizeof: a program compiled against an older, shorter struct
 * gets its fields filled and nothing past them written (see @ref page_abi).
 * @param opt Options to fill: the first min(@p struct_size,
 *            sizeof(eelsvae_preprocess_options)) bytes get the preset, any
 *            bytes beyond the library's struct up to @p struct_size are
 *            zeroed, and struct_size is set to @p struct_size.
 * @param preset ::EELSVAE_PRESET_PAPER or ::EELSVAE_PRESET_FAST (the same chain).
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, an
 *         unknown preset, a @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_preprocess_options_init_sized(eelsvae_preprocess_options *opt,
                                                                 eelsvae_preset preset, size_t struct_size);

/**
 * @brief Fill preprocessing options with a preset (the caller's sizeof).
 *
 * A macro over eelsvae_preprocess_options_init_sized() that passes
 * `sizeof *(opt)`, so that a newer library never writes past the struct the
 * program was compiled with. @p opt is evaluated once (sizeof does not
 * evaluate its operand).
 * @param opt Options to fill (an ::eelsvae_preprocess_options pointer, not NULL).
 * @param preset ::EELSVAE_PRESET_PAPER or ::EELSVAE_PRESET_FAST (the same chain).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_preprocess_options_init(opt, preset) \
    eelsvae_preprocess_options_init_sized((opt), (preset), sizeof *(opt))

/**
 * @brief Apply the preprocessing chain in place.
 *
 * Order: blur, scaling (to the percentiles of the blurred cube, or to
 * scale_lo/scale_hi when use_fixed_scaling), mean filter, median filter.
 * Returns the scaling actually used, so that the identical transform can be
 * applied to another cube (set use_fixed_scaling with these values).
 *
 * The options in use are checked first (the percentiles only without
 * use_fixed_scaling, scale_lo/scale_hi only with it), then the samples, and
 * all memory is taken before the cube is touched: every failure leaves the
 * cube unchanged, except ::EELSVAE_ERR_NUMERIC for percentiles that
 * coincide only after the blur, which leaves it blurred.
 * @param cube The cube.
 * @param opt Options (struct_size read first).
 * @param[out] scale_lo Value mapped to 0 (may be NULL).
 * @param[out] scale_hi Value mapped to 1 (may be NULL).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (naming the field),
 *         ::EELSVAE_ERR_NUMERIC (a NaN or ±Inf sample; a constant cube cannot
 *         be scaled to its percentiles), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_preprocess(eelsvae_cube *cube, const eelsvae_preprocess_options *opt,
                                                   double *scale_lo, double *scale_hi);

/**
 * @brief The noise PCC below which eelsvae_preprocess_options_choose_spatial()
 *        pools with a 3 × 3 mean: noise above about a tenth of the window's
 *        variance after the blur (0.95² ≈ 0.90).
 *
 * Chosen on the realistic synthetic SI at doses 9 … 1000 (@ref page_preprocessing,
 * PCA 4 over the Fe L edge): at noise PCC 0.87 PCA without the mean ranks
 * a 2.4 eV shift at average precision 0.58 and with it at 1.00; at 0.94 the
 * mean takes a 0.9 eV shift from 0.26 to 0.95; from 0.985 it is worse at
 * every shift, and it always costs F1 by smearing each region's rim.
 * @since 0.1.0
 */
#define EELSVAE_MEAN_FILTER_BELOW_PCC 0.95

/**
 * @brief The noise PCC from which eelsvae_preprocess_options_choose_spatial()
 *        leaves the spatial blur out (sigma on y and x 0): noise below about
 *        2 % of the window's variance after the fast preset's blur
 *        (0.99² ≈ 0.98).
 *
 * Chosen on the synthetic SI, plain and realistic, at doses 250 … 4000
 * (@ref page_preprocessing, PCA 4 over 690–730 eV): from an estimate of
 * 0.995 up, the σ 0.5 blur ranks no shift better and costs F1 at the
 * default rule (plain SI at dose 1000: 0.92 against 1.00 at 2.4 eV) by
 * mixing each region into a one-pixel ring around it; at 0.982 it still
 * pays (a 0.9 eV shift: F1 1.00 against 0.41), as on the Nion SI's Ti L
 * edge (0.986: ROC-AUC 0.96 against 0.92); at 0.991 it trades ranking for F1.
 * @since 0.1.0
 */
#define EELSVAE_SPATIAL_BLUR_BELOW_PCC 0.99

/**
 * @brief Choose the chain's spatial smoothing for this SI's noise: a 3 × 3
 *        mean where the noise would hide the signal, no spatial blur where
 *        the noise is negligible, the blur of @p opt in between.
 *
 * Estimates, from the raw cube alone, the median over pixels of the PCC
 * between each spectrum over @p lo_ev … @p hi_ev and its noise-free
 * expectation after the blur of @p opt (the quantity a perfect
 * reconstruction would score, so the bulk's PCC at best): per pixel, the
 * noise variance N from the second differences along energy (white noise:
 * var(x[i−1] − 2x[i] + x[i+1]) = 6N; a spectrum that is smooth at the
 * channel scale adds little), the signal variance S as the rest of the
 * window's variance, and PCC = √(S / (S + g·N)) with g the share of the
 * noise variance the blur passes. Spectra constant over the window are left
 * out. On the synthetic SI the estimate is within 0.02 of the PCC measured
 * against the noise-free cube; sharp features at a coarse dispersion (white
 * lines a channel or two wide) count as noise and bias it low.
 *
 * Then sets @p opt's mean_filter to 3 when the estimate is below
 * ::EELSVAE_MEAN_FILTER_BELOW_PCC, else 1, whatever it held, and sigma[0]
 * and sigma[1] to 0 when it is at least ::EELSVAE_SPATIAL_BLUR_BELOW_PCC
 * (else they keep their value); no other field changes. The thresholds were
 * set with the fast preset's blur (σ 0.5 on every axis), which is the chain
 * to pass. Call it on the raw cube, before eelsvae_cube_preprocess(), with
 * the window the detection scores.
 * @param opt Options whose blur (sigma) is read and whose mean_filter,
 *            sigma[0] and sigma[1] are set (struct_size read first).
 * @param cube The raw cube (counts; a calibrated energy axis unless the window is the whole axis).
 * @param lo_ev Low end of the window, eV; NaN with @p hi_ev NaN: the whole
 *              energy axis (no calibration needed), as the scorer's window.
 * @param hi_ev High end of the window, eV; the window must hold at least 8 channels.
 * @param[out] noise_pcc The estimate, for the blur @p opt held on entry (may be NULL).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (NULL, bad options,
 *         an empty window), ::EELSVAE_ERR_RANGE (uncalibrated energy axis, a
 *         window outside it or of fewer than 8 channels),
 *         ::EELSVAE_ERR_NUMERIC (every spectrum constant over the window),
 *         ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_preprocess_options_choose_spatial(eelsvae_preprocess_options *opt,
                                                                    const eelsvae_cube *cube, double lo_ev,
                                                                    double hi_ev, double *noise_pcc);
/** @} */

/** @name Synthetic BiFeO3-like spectrum image
 *  @{ */

/**
 * @brief Knobs of the synthetic SI (see @ref page_synthetic).
 *
 * Fill with eelsvae_synth_options_init(); every field has a documented default.
 * @since 0.1.0
 */
typedef struct eelsvae_synth_options {
    size_t struct_size;       /**< The caller's sizeof(eelsvae_synth_options), set by init. */
    size_t ny;                /**< Rows (default 192). */
    size_t nx;                /**< Columns (default 192). */
    double energy_start;      /**< First channel, eV, > drift/2 (default 420). */
    double energy_end;        /**< Last channel at most, eV (default 820). */
    double dispersion;        /**< eV per channel (default 0.3). */
    uint64_t seed;            /**< Seed; same seed → same bits (default 1). */
    double dose;              /**< Mean counts per channel of the background at energy_start where thickness is 1 (default 1000). */
    double read_noise;        /**< Gaussian read noise σ, counts (default 3). */
    double bg_exponent_min;   /**< Power-law exponent r range: r varies smoothly in … (default 3.0) */
    double bg_exponent_max;   /**< … [min, max] across the scan (default 4.0). */
    double thickness_gradient;/**< Relative thickness change from left to right edge: thickness ∝ 1 + g·(x/(nx−1) − ½), |g| ≤ 1.5 (default 0.5). */
    double o_edge;            /**< O K edge onset, eV (default 532). */
    double fe_l3;             /**< Fe L3 white line, eV (default 709.5). */
    double fe_l2;             /**< Fe L2 white line, eV, > fe_l3 (default 722.5). */
    double l3_l2_ratio;       /**< L3/L2 white-line area ratio, the L3 crystal-field shoulder included (default 4). */
    double fe_jump;           /**< Fe signal at fe_l3 over the local background (power law + O K continuum), times the Fe map (default 2). */
    double o_jump;            /**< O K continuum step over the local background, times the O map (default 1). */
    double composition_variation; /**< Relative amplitude of the smooth Fe and O maps, in [0, 1) (default 0.15). */
    double drift;             /**< Energy drift along the slow scan (rows), eV peak to peak (default 0.3). */
    double stripe_gain;       /**< σ of the per-row gain (horizontal stripes), in [0, 1]; gains are clipped at 0.05 (default 0.02). */
    double thickness_variation; /**< Relative amplitude of the smooth random thickness field that multiplies the gradient, in [0, 1) (default 0.05; appended in 0.1.0, so a shorter caller struct gets the default). */
} eelsvae_synth_options;

/**
 * @brief Fill synthetic-SI options with their defaults, writing only the
 *        caller's @p struct_size bytes.
 *
 * Call it through eelsvae_synth_options_init(), which passes the caller's
 * own sizeof (see @ref page_abi).
 * @param opt Options to fill: the first min(@p struct_size,
 *            sizeof(eelsvae_synth_options)) bytes get the defaults, any bytes
 *            beyond the library's struct up to @p struct_size are zeroed, and
 *            struct_size is set to @p struct_size.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, a
 *         @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_synth_options_init_sized(eelsvae_synth_options *opt, size_t struct_size);

/**
 * @brief Fill synthetic-SI options with their defaults (the caller's sizeof).
 *
 * A macro over eelsvae_synth_options_init_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param opt Options to fill (an ::eelsvae_synth_options pointer, not NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_synth_options_init(opt) eelsvae_synth_options_init_sized((opt), sizeof *(opt))

/**
 * @brief Dose of the realistic synthetic setting: the dose at which the mean
 *        PCC over pixels between the noisy and the noise-free SI over
 *        690–730 eV, both after the paper's preprocessing chain, is the
 *        paper's PCA 4 normal-pixel PCC, 0.886 (derived by
 *        tools/derive_realistic_dose.py; see @ref page_synthetic).
 * @since 0.1.0
 */
#define EELSVAE_SYNTH_REALISTIC_DOSE 9.0

/**
 * @brief Fill synthetic-SI options with the realistic setting, writing only
 *        the caller's @p struct_size bytes.
 *
 * The defaults of eelsvae_synth_options_init_sized(), then the dose at which
 * the noise matches the paper's real data and the nuisance magnitudes
 * measured on real SIs (@ref page_synthetic derives each):
 * dose ::EELSVAE_SYNTH_REALISTIC_DOSE, no left-right thickness gradient but a
 * smooth thickness field (thickness_variation), row gain σ 3 %, an energy
 * drift of 0.75 eV over the scan and a background exponent r in 1.8 … 3.0.
 * Call it through eelsvae_synth_options_init_realistic().
 * @param opt Options to fill, as for eelsvae_synth_options_init_sized(): a
 *            field beyond @p struct_size is not written.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, a
 *         @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_synth_options_init_realistic_sized(eelsvae_synth_options *opt, size_t struct_size);

/**
 * @brief Fill synthetic-SI options with the realistic setting (the caller's sizeof).
 *
 * A macro over eelsvae_synth_options_init_realistic_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param opt Options to fill (an ::eelsvae_synth_options pointer, not NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_synth_options_init_realistic(opt) eelsvae_synth_options_init_realistic_sized((opt), sizeof *(opt))

/**
 * @brief Generate a synthetic BiFeO3-like SI in raw counts.
 *
 * The energy axis is energy_start + dispersion·i for every i with
 * energy_start + dispersion·i ≤ energy_end; spatial axes are in pixels.
 * @param opt Options (struct_size read first).
 * @param[out] counts The noisy SI (Poisson + read noise).
 * @param[out] expected The noise-free expectation (NULL if not wanted).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (naming the field),
 *         ::EELSVAE_ERR_OVERFLOW, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_synth_generate(const eelsvae_synth_options *opt, eelsvae_cube **counts,
                                                  eelsvae_cube **expected);
/** @} */

/** @name Anomaly injection
 *  @{ */

/**
 * @brief Mark `count` disks of a given radius in an ny × nx mask.
 *
 * Centres are drawn uniformly (seeded) so that every disk lies inside the
 * scan (radius ≤ cy ≤ ny − 1 − radius, likewise cx) and centres are at
 * least min_separation apart; pixel (y, x) is in a disk when
 * (y − cy)² + (x − cx)² ≤ radius². Placement is random and sequential with
 * restarts and gives up after a bounded number of draws, so a layout close
 * to the densest packing may be refused although one exists.
 * @param ny Rows.
 * @param nx Columns.
 * @param count Number of disks, ≥ 1.
 * @param radius Radius in pixels, > 0.
 * @param min_separation Least distance between centres, pixels.
 * @param seed Seed.
 * @param[out] mask ny·nx bytes, 1 inside a disk, 0 outside.
 * @param[out] centres 2·count doubles (cy, cx) per disk, or NULL.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_DIMENSION
 *         (the disks cannot be placed).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_disk_mask(size_t ny, size_t nx, size_t count, double radius,
                                             double min_separation, uint64_t seed, uint8_t *mask, double *centres);

/**
 * @brief Shift the part of each masked spectrum inside an energy window.
 *
 * For every pixel with mask ≠ 0 and every channel i whose energy E lies in
 * [lo_ev, hi_ev], the new sample is the original spectrum evaluated at
 * E − shift_ev by linear interpolation between channels (the original is
 * read outside the window too, and held at its end value past either end
 * of the axis). Channels outside the window are untouched. The window is
 * found as by eelsvae_cube_energy_window(), so an uncalibrated energy axis
 * is ::EELSVAE_ERR_RANGE.
 * @param cube The cube, modified in place.
 * @param mask ny·nx bytes.
 * @param count Length of @p mask.
 * @param lo_ev Window start.
 * @param hi_ev Window end.
 * @param shift_ev Shift, eV (positive moves features up in energy).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_RANGE, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_inject_shift(eelsvae_cube *cube, const uint8_t *mask, size_t count,
                                                     double lo_ev, double hi_ev, double shift_ev);
/** @} */

#ifdef __cplusplus
}
#endif

#endif /* EELSVAE_CUBE_H */
