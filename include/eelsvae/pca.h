/**
 * @file pca.h
 * @brief PCA basis of a spectrum image: fit, project, reconstruct, save, load.
 *
 * The cube is seen as a matrix of ny·nx spectra (rows) by ne channels. The
 * fit finds the k leading right singular vectors of that matrix (after
 * optional Poisson normalisation and centring) by randomized block Krylov
 * iteration with a convergence test, finishing each pass with a LAPACKE SVD
 * of the small projected matrix. Each pass reads the cube once; the centred
 * or normalised matrix is never formed (the mean and the weights are
 * applied to the small factors). Besides the cube, the fit holds ny·nx ×
 * min(4(k + 10), ne) floats (far less than a cube when ne ≫ k) and small
 * matrices; project and reconstruct hold only their outputs.
 */
#ifndef EELSVAE_PCA_H
#define EELSVAE_PCA_H

#include <eelsvae/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * @brief How a PCA basis is fitted. Fill with eelsvae_pca_options_init().
 * @since 0.1.0
 */
typedef struct eelsvae_pca_options {
    size_t struct_size;     /**< The caller's sizeof(eelsvae_pca_options), set by init. */
    size_t components;      /**< k, the number of components kept (default 4). */
    int center;             /**< Non-zero: subtract the mean spectrum first (default 1). */
    int poisson_normalize;  /**< Non-zero: weight as HyperSpy's normalize_poissonian_noise: each sample
                                 x is divided by sqrt(aG)·sqrt(bH), aG its spectrum's sum and bH its
                                 channel's sum over the cube (an empty spectrum or channel gives 0);
                                 the data must be non-negative. Centring, if asked for too, applies
                                 to the normalised data (default 0). */
    uint64_t seed;          /**< Seed of the starting subspace (default 1). */
    double tolerance;       /**< The iteration stops when, within one pass over the cube, none of the
                                 k leading singular values moves by more than this fraction; it also
                                 stops when the change stalls below 1e-4, the level float32 data can
                                 resolve (default 1e-3: the Krylov iteration converges fast enough
                                 that the values are then much closer than this to their limit). */
    size_t max_iterations;  /**< Cap on passes over the cube after the statistics pass (default 50). */
    double trim_fraction;   /**< A robust fit, for a cube that holds its own anomalies (the paper fits
                                 PCA on the SI it scores): f in (0, 0.5) fits 1, 2, … k components in
                                 turn, each on the spectra whose squared reconstruction error under the
                                 fit before lies within the lowest 1 − f of all, and the k-component
                                 basis on the last such set. Anomalous pixels, up to about f of the
                                 scan, then cannot claim a component of their own and stay badly
                                 reconstructed. 0 fits every spectrum: the plain PCA of the paper, of
                                 HyperSpy's decomposition and of scikit-learn (default 0.1). */
} eelsvae_pca_options;

/**
 * @brief Fill PCA options with their defaults, writing only the caller's
 *        @p struct_size bytes.
 *
 * Call it through eelsvae_pca_options_init(), which passes the caller's own
 * sizeof (see @ref page_abi).
 * @param opt Options to fill: the first min(@p struct_size,
 *            sizeof(eelsvae_pca_options)) bytes get the defaults, any bytes
 *            beyond the library's struct up to @p struct_size are zeroed, and
 *            struct_size is set to @p struct_size.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, a
 *         @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_options_init_sized(eelsvae_pca_options *opt, size_t struct_size);

/**
 * @brief Fill PCA options with their defaults (the caller's sizeof).
 *
 * A macro over eelsvae_pca_options_init_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param opt Options to fill (an ::eelsvae_pca_options pointer, not NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_pca_options_init(opt) eelsvae_pca_options_init_sized((opt), sizeof *(opt))

/**
 * @brief Fit a k-component basis to a cube.
 * @param cube The data (ny·nx spectra of ne channels).
 * @param opt Options (struct_size read first).
 * @param[out] out The basis.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (k = 0 or k > min(ny·nx, ne),
 *         a negative or non-finite tolerance, max_iterations = 0),
 *         ::EELSVAE_ERR_NUMERIC (non-finite data, or negative data under
 *         Poisson normalisation, naming the pixel; an SVD failure),
 *         ::EELSVAE_ERR_UNSUPPORTED (ne beyond the BLAS index range),
 *         ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_fit(const eelsvae_cube *cube, const eelsvae_pca_options *opt,
                                           eelsvae_pca **out);

/**
 * @brief Free a basis. NULL is a no-op.
 * @param pca The basis.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_pca_free(eelsvae_pca *pca);

/**
 * @brief Number of components and channels of a basis.
 * @param pca The basis.
 * @param[out] components k (may be NULL).
 * @param[out] channels ne (may be NULL).
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_pca_shape(const eelsvae_pca *pca, size_t *components, size_t *channels);

/**
 * @brief The components, k rows of ne floats, orthonormal, row-major.
 * @param pca The basis.
 * @return Pointer valid until the basis is freed.
 * @since 0.1.0
 */
EELSVAE_API const float *eelsvae_pca_components(const eelsvae_pca *pca);

/**
 * @brief Fraction of the (centred, normalised) variance each component explains.
 * @param pca The basis.
 * @param[out] ratios k values, decreasing.
 * @param count Length of @p ratios; must be k.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_DIMENSION.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_explained_variance_ratio(const eelsvae_pca *pca, double *ratios,
                                                                size_t count);

/**
 * @brief Coordinates of every spectrum of a cube in the basis.
 *
 * The cube need not be the one fitted, but must have the same ne; the
 * fitted mean and channel weights sqrt(bH) are applied. Under Poisson
 * normalisation each spectrum's own weight sqrt(aG) is its sum in @p cube,
 * as HyperSpy computes it.
 * @param pca The basis.
 * @param cube The data.
 * @param[out] scores ny·nx·k floats, pixel-major.
 * @param count Length of @p scores; must be ny·nx·k.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_DIMENSION
 *         (ne or @p count), ::EELSVAE_ERR_NUMERIC (a non-finite sample, or a
 *         negative one under Poisson normalisation, naming the pixel),
 *         ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_project(const eelsvae_pca *pca, const eelsvae_cube *cube, float *scores,
                                               size_t count);

/**
 * @brief Rank-k reconstruction of a cube, in its original units.
 *
 * scores·components, plus the mean, with the Poisson weights undone
 * (sqrt(aG) of each spectrum of @p cube, the fitted sqrt(bH)) as
 * HyperSpy's get_decomposition_model does.
 * @param pca The basis.
 * @param cube The data (same ne as fitted).
 * @param[out] out New cube with the calibration of @p cube.
 * @return As eelsvae_pca_project().
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_reconstruct(const eelsvae_pca *pca, const eelsvae_cube *cube,
                                                   eelsvae_cube **out);

/**
 * @brief Save a basis: versioned header, CRC-32 checksum, atomic rename.
 * @param pca The basis.
 * @param path File name; an old file survives a failed save intact.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_IO,
 *         ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_save(const eelsvae_pca *pca, const char *path);

/**
 * @brief Load a basis written by eelsvae_pca_save().
 * @param path File name.
 * @param[out] out The basis.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_IO,
 *         ::EELSVAE_ERR_FORMAT (not a basis file, truncated, or sizes that do
 *         not match its length, naming the offset), ::EELSVAE_ERR_VERSION,
 *         ::EELSVAE_ERR_CHECKSUM, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pca_load(const char *path, eelsvae_pca **out);

#ifdef __cplusplus
}
#endif

#endif /* EELSVAE_PCA_H */
