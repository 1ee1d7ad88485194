/**
 * @file io.h
 * @brief The files microscopists have: Gatan DigitalMicrograph .dm3/.dm4,
 *        HyperSpy .hspy (HDF5), Ripple .rpl/.raw and NumPy .npy.
 *
 * A file is read as a *signal*: an N-dimensional array in the element type
 * the file holds, with one calibrated axis per dimension, a title and
 * metadata as key/value strings. The array and its axes are in C order,
 * slowest dimension first, exactly as HyperSpy holds `signal.data` and
 * `signal.axes_manager` (a spectrum image is (y, x, E)). A signal converts
 * to a cube with eelsvae_signal_to_cube(); eelsvae_cube_load() does both in
 * one call for any format, recognised by content rather than by extension.
 *
 * Metadata keys (present when the file records them):
 * `title`, `signal_type`, `acquisition_date` (YYYY-MM-DD),
 * `acquisition_time` (HH:MM:SS), `beam_energy_kev`, `collection_angle_mrad`,
 * `convergence_angle_mrad`, `dispersion_ev`, `exposure_s`, `microscope`;
 * values are strings, numbers written with enough digits to round-trip.
 * `signal_type` is HyperSpy's ("EELS", "EDS_TEM", "CL", …).
 */
#ifndef EELSVAE_IO_H
#define EELSVAE_IO_H

#include <eelsvae/cube.h>

#ifdef __cplusplus
extern "C" {
#endif

/** A file format. @since 0.1.0 */
typedef enum eelsvae_format {
    EELSVAE_FORMAT_UNKNOWN = 0, /**< Not a format this library reads. */
    EELSVAE_FORMAT_NPY = 1,     /**< NumPy .npy (no calibration). */
    EELSVAE_FORMAT_DM3 = 2,     /**< Gatan DigitalMicrograph 3 (read only). */
    EELSVAE_FORMAT_DM4 = 3,     /**< Gatan DigitalMicrograph 4 (read only). */
    EELSVAE_FORMAT_HSPY = 4,    /**< HyperSpy HDF5 (.hspy, .hdf5); needs the library built with HDF5. */
    EELSVAE_FORMAT_RPL = 5      /**< Ripple .rpl header with its .raw data (Lispix, HyperSpy). */
} eelsvae_format;

/** Most dimensions a signal may have. @since 0.1.0 */
#define EELSVAE_SIGNAL_MAX_DIMS 8

/** A signal: an N-D array with axes, title and metadata (opaque). @since 0.1.0 */
typedef struct eelsvae_signal eelsvae_signal;

/**
 * @brief Recognise a file's format from its first bytes (not its name).
 *
 * An .rpl header is recognised by its text; its .raw file is found beside it.
 * @param path File name.
 * @param[out] format The format, ::EELSVAE_FORMAT_UNKNOWN when none matches.
 * @return ::EELSVAE_OK (also for an unknown format), ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_IO.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_format_detect(const char *path, eelsvae_format *format);

/**
 * @brief Short name of a format ("npy", "dm3", "dm4", "hspy", "rpl", "unknown").
 * @param format The format.
 * @return A static string.
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_format_name(eelsvae_format format);

/**
 * @brief Whether this build can read and write a format.
 * @param format The format.
 * @return 1 when supported (HDF5 is an optional dependency), 0 otherwise.
 * @since 0.1.0
 */
EELSVAE_API int eelsvae_format_supported(eelsvae_format format);

/** @name Reading signals
 *  @{ */

/**
 * @brief How many signals a file holds, and which one is the main one.
 *
 * A DigitalMicrograph file may hold several images (a thumbnail, a survey
 * image, the spectrum image): the main one is the spectrum image when there
 * is one, else the largest image that is not a thumbnail. Thumbnails are not
 * counted: index i is the i-th other image in the file's ImageList order
 * (HyperSpy's list order). Other formats hold one signal.
 * @param path File name.
 * @param[out] count Number of signals, ≥ 1.
 * @param[out] main_index Index of the main signal (may be NULL).
 * @return As eelsvae_signal_load().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_file_signals(const char *path, size_t *count, size_t *main_index);

/**
 * @brief Read the main signal of a file (any readable format).
 * @param path File name.
 * @param[out] out The signal.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_IO, ::EELSVAE_ERR_FORMAT (naming the
 *         byte offset or the HDF5 object), ::EELSVAE_ERR_UNSUPPORTED (an
 *         unknown format, a data type this library does not read, a build
 *         without HDF5), ::EELSVAE_ERR_DIMENSION (a 0-D .npy array),
 *         ::EELSVAE_ERR_OVERFLOW, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_load(const char *path, eelsvae_signal **out);

/**
 * @brief Read one signal of a file by index (see eelsvae_file_signals()).
 * @param path File name.
 * @param index Index of the signal, below the count.
 * @param[out] out The signal.
 * @return As eelsvae_signal_load(), or ::EELSVAE_ERR_RANGE for a bad index.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_load_index(const char *path, size_t index, eelsvae_signal **out);

/** @} */

/** @name Creating, inspecting and writing signals
 *  @{ */

/**
 * @brief Create a signal holding a copy of an array.
 *
 * Axes start uncalibrated (offset 0, scale 1, no name or units) and
 * navigation-flagged, except the last one, which is the signal axis.
 * @param dtype Element type (not ::EELSVAE_DTYPE_FLOAT16).
 * @param ndim Dimensions, 1 … ::EELSVAE_SIGNAL_MAX_DIMS.
 * @param shape @p ndim sizes, each ≥ 1.
 * @param data The elements in native byte order, C order; copied. NULL gives zeros.
 * @param[out] out The signal.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_OVERFLOW, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_create(eelsvae_dtype dtype, size_t ndim, const size_t *shape,
                                                 const void *data, eelsvae_signal **out);

/**
 * @brief A float32 (y, x, E) signal from a cube, with its calibration;
 *        signal type "EELS".
 *
 * An uncalibrated energy axis (see cube.h) is given no units, so that a
 * file written from the signal reads back uncalibrated rather than in eV.
 * @param cube The cube.
 * @param[out] out The signal.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_from_cube(const eelsvae_cube *cube, eelsvae_signal **out);

/**
 * @brief Free a signal. NULL is a no-op.
 * @param signal The signal.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_signal_free(eelsvae_signal *signal);

/**
 * @brief Dimensions and element type.
 * @param signal The signal.
 * @param[out] ndim Number of dimensions (may be NULL).
 * @param[out] shape ::EELSVAE_SIGNAL_MAX_DIMS entries, the first @p ndim set (may be NULL).
 * @param[out] dtype Element type (may be NULL).
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_signal_shape(const eelsvae_signal *signal, size_t *ndim,
                                      size_t shape[EELSVAE_SIGNAL_MAX_DIMS], eelsvae_dtype *dtype);

/**
 * @brief The elements, C order, native byte order, 64-byte aligned.
 * @param signal The signal.
 * @return Pointer valid until the signal is freed.
 * @since 0.1.0
 */
EELSVAE_API const void *eelsvae_signal_data(const eelsvae_signal *signal);

/**
 * @brief One element as a double, whatever the element type.
 *
 * 64-bit integers beyond 2^53 are rounded to the nearest double.
 * @param signal The signal.
 * @param index Flat index in C order, below the product of the shape.
 * @param[out] value The element.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL pointer),
 *         ::EELSVAE_ERR_RANGE (@p index past the last element; the message
 *         gives both), ::EELSVAE_ERR_UNSUPPORTED (complex or RGBA elements,
 *         which are not one number).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_value(const eelsvae_signal *signal, size_t index, double *value);

/**
 * @brief Bytes of one element of a type.
 * @param dtype Element type.
 * @return The size in bytes, 0 for an unknown type.
 * @since 0.1.0
 */
EELSVAE_API size_t eelsvae_dtype_size(eelsvae_dtype dtype);

/**
 * @brief NumPy's name of an element type ("uint16", "float32", "complex64", "rgba8", …).
 * @param dtype Element type.
 * @return A static string ("unknown" for an unknown type).
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_dtype_name(eelsvae_dtype dtype);

/**
 * @brief Calibration of one axis: value(i) = offset + scale·i.
 * @param signal The signal.
 * @param axis Axis index, below ndim (C order, slowest first).
 * @param[out] offset Value at index 0 (may be NULL).
 * @param[out] scale Step per index (may be NULL).
 * @param[out] name Axis name, e.g. "Energy loss", "x", "y" (may be NULL; "" when unnamed).
 * @param[out] units Units, e.g. "eV", "nm" (may be NULL; "" when none); units
 *                   longer than ::EELSVAE_UNITS_MAX − 1 bytes are cut at a
 *                   UTF-8 character boundary.
 * @param[out] navigate 1 for a navigation axis, 0 for a signal axis (may be NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_RANGE.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_axis(const eelsvae_signal *signal, size_t axis, double *offset,
                                               double *scale, const char **name, const char **units,
                                               int *navigate);

/**
 * @brief Set the calibration of one axis.
 * @param signal The signal.
 * @param axis Axis index, below ndim.
 * @param offset Value at index 0 (finite).
 * @param scale Step per index (finite, non-zero).
 * @param name Axis name (NULL for ""), shorter than 64 bytes.
 * @param units Units (NULL for ""), shorter than ::EELSVAE_UNITS_MAX.
 * @param navigate 1 for a navigation axis, 0 for a signal axis.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_RANGE.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_set_axis(eelsvae_signal *signal, size_t axis, double offset, double scale,
                                                   const char *name, const char *units, int navigate);

/**
 * @brief Number of metadata entries.
 * @param signal The signal.
 * @return The count.
 * @since 0.1.0
 */
EELSVAE_API size_t eelsvae_signal_metadata_count(const eelsvae_signal *signal);

/**
 * @brief One metadata entry, in the order they were read or set.
 * @param signal The signal.
 * @param index Below eelsvae_signal_metadata_count().
 * @param[out] key The key (owned by the signal).
 * @param[out] value The value (owned by the signal).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_RANGE.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_metadata_at(const eelsvae_signal *signal, size_t index, const char **key,
                                                      const char **value);

/**
 * @brief The value of a metadata key.
 * @param signal The signal.
 * @param key The key.
 * @return The value (owned by the signal), or NULL when absent.
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_signal_metadata_get(const eelsvae_signal *signal, const char *key);

/**
 * @brief Set (add or replace) a metadata entry.
 * @param signal The signal.
 * @param key Non-empty key.
 * @param value Value.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_metadata_set(eelsvae_signal *signal, const char *key, const char *value);

/**
 * @brief Convert a signal to a float32 (y, x, E) cube with its calibration.
 *
 * The signal axis (the one not flagged navigate; the last one if all are)
 * becomes E; 1-D signals become 1 × 1 × E and 2-D ones 1 × nx × E; a 4-D or
 * larger signal, or one with several signal axes, is
 * ::EELSVAE_ERR_DIMENSION. Complex and RGB elements are ::EELSVAE_ERR_UNSUPPORTED.
 *
 * The cube's energy axis is in eV: an axis in "keV" has its offset and
 * scale multiplied by 1000, one in "meV" divided by 1000, and its units
 * become "eV" (units are matched exactly: "MeV" is not "meV"). Any other
 * units are kept as they are, and an energy window on the cube is then read
 * in them. An energy axis without calibration (offset 0, scale 1, no units,
 * as eelsvae_signal_create() leaves it) is kept so, and the cube's energy
 * axis is uncalibrated (channel numbers): it converts, but the calls that
 * take an energy in eV refuse it until eelsvae_cube_set_axis() calibrates
 * it (see cube.h). The signal itself is not changed.
 * @param signal The signal.
 * @param[out] out The cube.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_UNSUPPORTED,
 *         ::EELSVAE_ERR_RANGE (a keV or meV axis whose offset or scale is
 *         not a finite, non-zero number in eV), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_to_cube(const eelsvae_signal *signal, eelsvae_cube **out);

/**
 * @brief Write a signal, in the format named by the file's extension:
 *        .npy, .hspy/.hdf5 or .rpl (with its .raw beside it), atomically.
 *
 * A .npy file keeps the data and element type only.
 * @param signal The signal.
 * @param path File name.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (an unknown extension),
 *         ::EELSVAE_ERR_UNSUPPORTED (a type the format cannot hold, HDF5 not
 *         built), ::EELSVAE_ERR_IO.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_signal_save(const eelsvae_signal *signal, const char *path);

/** @} */

/** @name Cubes from and to any format
 *  @{ */

/**
 * @brief Load the main signal of any readable file as a cube.
 *
 * The file is read as by eelsvae_signal_load() and converted as by
 * eelsvae_signal_to_cube(): a keV or meV energy axis becomes eV, and an
 * energy axis the file does not calibrate is loaded uncalibrated (channel
 * numbers), not refused. A .npy file must be 3-D and is left uncalibrated,
 * as eelsvae_cube_load_npy(). Set an uncalibrated energy axis with
 * `eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, offset_ev, scale_ev, "eV")`
 * before an energy window, a score or a model (they refuse it with
 * ::EELSVAE_ERR_RANGE).
 * @param path File name.
 * @param[out] out The cube.
 * @return As eelsvae_signal_load() and eelsvae_signal_to_cube().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_load(const char *path, eelsvae_cube **out);

/**
 * @brief Save a cube in the format named by the extension (see eelsvae_signal_save()).
 * @param cube The cube.
 * @param path File name.
 * @return As eelsvae_signal_save().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_cube_save(const eelsvae_cube *cube, const char *path);

/**
 * @brief A 2-D map (a score map, a mask) as a signal with the spatial
 *        calibration of a cube: (y, x), both axes signal axes ("y", "x"),
 *        so that HyperSpy opens it as a Signal2D. Add a title and metadata
 *        before eelsvae_signal_save(), or use eelsvae_map_save().
 * @param map ny·nx elements of @p dtype, row-major (copied).
 * @param dtype Element type.
 * @param like Cube whose ny, nx and spatial axes the map has.
 * @param[out] out The signal.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_map_to_signal(const void *map, eelsvae_dtype dtype, const eelsvae_cube *like,
                                                 eelsvae_signal **out);

/**
 * @brief Save a 2-D map (a score map, a mask) with the spatial calibration
 *        of a cube: eelsvae_map_to_signal() with a title, saved.
 * @param map ny·nx elements of @p dtype, row-major.
 * @param dtype Element type.
 * @param like Cube whose ny, nx and spatial axes the map has.
 * @param title Title (NULL for none).
 * @param path File name (.npy, .hspy or .rpl).
 * @return As eelsvae_signal_save().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_map_save(const void *map, eelsvae_dtype dtype, const eelsvae_cube *like,
                                            const char *title, const char *path);

/** @} */

#ifdef __cplusplus
}
#endif

#endif
