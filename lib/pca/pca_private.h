/* The PCA basis and the helpers its fit, its use (project, reconstruct) and
 * its file share. Nothing here is exported.
 *
 * The matrix PCA works on is A = D_a·X·D_b − 1·μᵀ: X the cube as P spectra
 * × ne channels, D_a = diag(1/sqrt(aG)) and D_b = diag(1/sqrt(bH)) the
 * Poisson weights (identities without Poisson normalisation), μ the mean of
 * the weighted spectra (zero without centring). A is never formed: every
 * product is taken on X itself and the weights and the mean are applied to
 * the small factors (A·V = D_a·(X·(D_b·V)) − 1·(μᵀV)), so no centred or
 * normalised copy of the cube ever exists. */
#ifndef EELSVAE_PCA_PRIVATE_H
#define EELSVAE_PCA_PRIVATE_H

#include <math.h>

#include "../cube/cube_private.h"

struct eelsvae_pca {
    size_t k;             /* components kept */
    size_t ne;            /* channels */
    int center;           /* the mean spectrum was subtracted */
    int poisson;          /* HyperSpy's normalize_poissonian_noise was applied */
    uint64_t pixels;      /* spectra in the fitted cube */
    double total_ss;      /* sum of squares of A for the fitted cube */
    float *mean;          /* [ne] μ, mean of the weighted spectra; zeros without centring */
    float *channel_root;  /* [ne] sqrt(bH), root of each channel's sum over the fitted
                           * cube; ones without Poisson normalisation */
    float *components;    /* [k][ne] orthonormal rows */
    double *singular;     /* [k] singular values of A, decreasing */
    double *ratio;        /* [k] singular² / total_ss */
};

/* Most channels a basis may have: BLAS takes int sizes, and ne·8 must fit. */
#define EVAE_PCA_MAX_CHANNELS ((size_t)INT32_MAX / 8)

/* A basis with every array allocated (contents unset). */
eelsvae_status evae_pca_alloc(size_t k, size_t ne, eelsvae_pca **out);

/* Spectra per tile: a tile and its products stay in a core's L2 cache. The
 * count depends on ne only, so the fixed partition of the sums (and the
 * bits of the result) never depends on the thread count. */
size_t evae_pca_tile_rows(size_t ne);

/* Sum of a spectrum in double, in an order that vectorises but is fixed. */
double evae_pca_sum_row(const float *x, size_t n);

/* HyperSpy's weight of a spectrum with sum aG: 1/sqrt(aG), and 0 for an
 * empty spectrum (its 0/0 = 0). */
static inline float evae_pca_row_weight(double sum)
{
    return sum > 0.0 ? (float)(1.0 / sqrt(sum)) : 0.0f;
}

/* Under Poisson normalisation: the spectrum's sum when it is finite and
 * non-negative, or a negative value (the spectrum is unusable). */
double evae_pca_poisson_sum(const float *x, size_t n);

/* First channel of a spectrum that is non-finite (or negative when
 * `negative` is set), or n when none is. */
size_t evae_pca_bad_channel(const float *x, size_t n, int negative);

/* Let the library's OpenMP threads each call single-threaded BLAS: returns
 * the BLAS thread count to give back to evae_pca_blas_restore(). */
int evae_pca_blas_single(void);
void evae_pca_blas_restore(int saved);

/* Index of the calling OpenMP thread (0 without OpenMP). */
int evae_pca_thread_index(void);

#endif
