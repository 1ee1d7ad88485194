/**
 * @file base.h
 * @brief Version, status codes, error text, threads and logging: what every
 *        other public header builds on. Include eelsvae.h rather than this.
 *
 * Conventions that hold for every public function:
 * - a fallible call returns ::eelsvae_status (0 = ::EELSVAE_OK) and writes
 *   its results through out-pointers; on failure the out-pointers are left
 *   untouched unless documented otherwise;
 * - eelsvae_last_error() then gives a sentence, private to the calling
 *   thread, naming what was wrong (file, offset, dimension);
 * - `*_free(NULL)` is a no-op;
 * - the library never prints, exits or aborts; it reports through status
 *   codes and the optional log callback.
 */
#ifndef EELSVAE_BASE_H
#define EELSVAE_BASE_H

#include <stddef.h>
#include <stdint.h>

/** @name Version
 *  @{ */
/** Major version: bumped on an ABI break (it is the soname's number). @since 0.1.0 */
#define EELSVAE_VERSION_MAJOR 0
/** Minor version: bumped when symbols or options are appended. @since 0.1.0 */
#define EELSVAE_VERSION_MINOR 1
/** Patch version: bumped for fixes only. @since 0.1.0 */
#define EELSVAE_VERSION_PATCH 0
/** The version as one number, major·10000 + minor·100 + patch. @since 0.1.0 */
#define EELSVAE_VERSION_NUMBER \
    (EELSVAE_VERSION_MAJOR * 10000 + EELSVAE_VERSION_MINOR * 100 + EELSVAE_VERSION_PATCH)
/** @} */

/** @cond INTERNAL */
#if defined(EELSVAE_BUILDING_LIBRARY) && defined(__GNUC__)
#define EELSVAE_API __attribute__((visibility("default")))
#else
#define EELSVAE_API
#endif
/** @endcond */

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief Status returned by every fallible call.
 *
 * The values are fixed and only ever appended to.
 * @since 0.1.0
 */
typedef enum eelsvae_status {
    EELSVAE_OK = 0,                /**< Success. */
    EELSVAE_ERR_INVALID_ARGUMENT = 1, /**< A NULL pointer, a zero size or a value out of its domain. */
    EELSVAE_ERR_NOMEM = 2,         /**< An allocation failed. */
    EELSVAE_ERR_OVERFLOW = 3,      /**< A product of dimensions does not fit in size_t. */
    EELSVAE_ERR_IO = 4,            /**< Opening, reading, writing or renaming a file failed. */
    EELSVAE_ERR_FORMAT = 5,        /**< A file is truncated, corrupt or not of the expected format. */
    EELSVAE_ERR_UNSUPPORTED = 6,   /**< A well-formed input uses a feature this version does not handle. */
    EELSVAE_ERR_DIMENSION = 7,     /**< Shapes do not agree (tile larger than cube, mask of the wrong size, …). */
    EELSVAE_ERR_RANGE = 8,         /**< An energy window or index lies outside its axis. */
    EELSVAE_ERR_NUMERIC = 9,       /**< NaN or infinity in the input, or a numerical routine failed. */
    EELSVAE_ERR_CANCELLED = 10,    /**< A callback asked to stop. */
    EELSVAE_ERR_CHECKSUM = 11,     /**< A stored checksum does not match the contents. */
    EELSVAE_ERR_VERSION = 12,      /**< A file was written by an incompatible version. */
    EELSVAE_ERR_INTERNAL = 13      /**< A bug in the library; please report it. */
} eelsvae_status;

/** Opaque spectrum-image datacube (see cube.h). @since 0.1.0 */
typedef struct eelsvae_cube eelsvae_cube;
/** Opaque fitted PCA basis (see pca.h). @since 0.1.0 */
typedef struct eelsvae_pca eelsvae_pca;
/** Opaque per-pixel scorer (see score.h). @since 0.1.0 */
typedef struct eelsvae_scorer eelsvae_scorer;
/** Opaque 3-D convolutional VAE (see model.h). @since 0.1.0 */
typedef struct eelsvae_model eelsvae_model;

/**
 * @brief Version of the library actually loaded, as ::EELSVAE_VERSION_NUMBER.
 * @return major·10000 + minor·100 + patch of the running library.
 * @since 0.1.0
 */
EELSVAE_API int eelsvae_version_number(void);

/**
 * @brief Version of the loaded library as a string, e.g. "0.1.0".
 * @return A static string; never NULL.
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_version_string(void);

/**
 * @brief Name of a status code, e.g. "EELSVAE_ERR_FORMAT".
 * @param status Any value; unknown values give "EELSVAE_ERR_UNKNOWN".
 * @return A static string; never NULL.
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_strerror(eelsvae_status status);

/**
 * @brief Detail of the last failure on the calling thread.
 *
 * The text names what was wrong: the file and byte offset, the dimension,
 * the value. It is overwritten by the next failing call on the same thread
 * and is not cleared by successful calls.
 * @return A thread-local string (empty when nothing has failed yet);
 *         never NULL, valid until the next library call on this thread.
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_last_error(void);

/**
 * @brief Set how many threads the library's parallel work may use.
 *
 * Applies to OpenMP loops and to the BLAS and FFT calls the library makes.
 * Results are deterministic for a given seed and thread count.
 * @param threads 1 or more; 0 means "all available cores".
 * @return ::EELSVAE_OK.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_set_threads(int threads);

/**
 * @brief Number of threads the library's parallel work uses.
 * @return The value last set by eelsvae_set_threads(), resolved to a count.
 * @since 0.1.0
 */
EELSVAE_API int eelsvae_threads(void);

/** Severity of a log line. @since 0.1.0 */
typedef enum eelsvae_log_level {
    EELSVAE_LOG_DEBUG = 0, /**< Detail for developers. */
    EELSVAE_LOG_INFO = 1,  /**< Progress of long work. */
    EELSVAE_LOG_WARN = 2   /**< Something suspicious that did not fail. */
} eelsvae_log_level;

/**
 * @brief Receives the library's log lines.
 * @param user The pointer given to eelsvae_set_log_callback().
 * @param level Severity.
 * @param message One line without a trailing newline.
 * @since 0.1.0
 */
typedef void (*eelsvae_log_fn)(void *user, eelsvae_log_level level, const char *message);

/**
 * @brief Install a process-wide log callback (NULL removes it).
 *
 * Without a callback the library is silent. The callback may be called
 * from any thread that calls into the library; install it before starting
 * threads that use the library.
 * @param fn Callback or NULL.
 * @param user Passed back to @p fn unchanged.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_set_log_callback(eelsvae_log_fn fn, void *user);

/**
 * @brief Progress of long work; return non-zero to cancel it.
 *
 * A call that is cancelled stops soon after, frees what it allocated and
 * returns ::EELSVAE_ERR_CANCELLED.
 * @param user The pointer given with the callback.
 * @param stage A short name of the work, e.g. "synthesise".
 * @param done Units of work finished so far.
 * @param total Units of work in all.
 * @return 0 to continue, non-zero to cancel.
 * @since 0.1.0
 */
typedef int (*eelsvae_progress_fn)(void *user, const char *stage, size_t done, size_t total);

/**
 * @brief Release memory the library allocated and handed to the caller
 *        (for example by eelsvae_npy_read()). NULL is a no-op.
 * @param ptr Pointer returned by the library.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_free(void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* EELSVAE_BASE_H */
