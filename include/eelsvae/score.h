/**
 * @file score.h
 * @brief Per-pixel anomaly scores, Otsu thresholds, and metrics against a truth mask.
 *
 * A score map is ny·nx floats, row-major; a mask is ny·nx bytes, non-zero
 * meaning anomalous.
 */
#ifndef EELSVAE_SCORE_H
#define EELSVAE_SCORE_H

#include <eelsvae/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/** What a scorer measures between a spectrum and its reconstruction. @since 0.1.0 */
typedef enum eelsvae_score_kind {
    EELSVAE_SCORE_PCC = 0,           /**< Pearson correlation coefficient, −1…1; low = anomalous. */
    EELSVAE_SCORE_MSE = 1,           /**< Mean squared error; high = anomalous. */
    EELSVAE_SCORE_SPECTRAL_ANGLE = 2, /**< Angle between the spectra, radians, 0…π; high = anomalous. */
    EELSVAE_SCORE_CHI2 = 3            /**< Reduced chi-square of the residual against a noise model fitted on
                                           the map itself, ≥ 0; ≈ 1 for a bulk pixel whatever its counts (where
                                           PCC falls as the SI thins); high = anomalous. See
                                           eelsvae_scorer_noise_model(). */
} eelsvae_score_kind;

/** Which side of a threshold is anomalous. @since 0.1.0 */
typedef enum eelsvae_direction {
    EELSVAE_ANOMALOUS_BELOW = 0, /**< score ≤ threshold is anomalous (PCC). */
    EELSVAE_ANOMALOUS_ABOVE = 1  /**< score > threshold is anomalous (MSE, angle). */
} eelsvae_direction;

/**
 * @brief How a scorer scores. Fill with eelsvae_scorer_options_init().
 *
 * Degenerate spectra: for PCC, a window where exactly one of the two
 * spectra is constant scores 0 (no correlation can be measured), and one
 * where both are constant scores 1 when they are equal and 0 otherwise; for
 * the spectral angle, a zero spectrum against a non-zero one scores π/2 and
 * two zero spectra score 0; for the chi-square, a map whose residuals show
 * no noise (most samples of the window reconstructed exactly) is scored
 * with a variance of 1 (the mean squared residual). Every such pixel is
 * counted.
 * @since 0.1.0
 */
typedef struct eelsvae_scorer_options {
    size_t struct_size;       /**< The caller's sizeof(eelsvae_scorer_options), set by init. */
    eelsvae_score_kind kind;  /**< What to measure (default PCC). */
    double window_lo;         /**< Energy window start in the cube's energy units; NaN with window_hi NaN
                                   (the default): the whole energy axis, as no edge is assumed. The paper's
                                   Fe L window is 690 … 730 eV; eelsvae_edge_window() gives any edge's. */
    double window_hi;         /**< Energy window end (default NaN: see window_lo). */
} eelsvae_scorer_options;

/**
 * @brief Fill scorer options with the defaults (PCC over the whole energy
 *        axis), writing only the caller's @p struct_size bytes.
 *
 * Call it through eelsvae_scorer_options_init(), which passes the caller's
 * own sizeof (see @ref page_abi).
 * @param opt Options to fill: the first min(@p struct_size,
 *            sizeof(eelsvae_scorer_options)) bytes get the defaults, any
 *            bytes beyond the library's struct up to @p struct_size are
 *            zeroed, and struct_size is set to @p struct_size.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, a
 *         @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_scorer_options_init_sized(eelsvae_scorer_options *opt, size_t struct_size);

/**
 * @brief Fill scorer options with the defaults: PCC over the whole energy
 *        axis (the caller's sizeof).
 *
 * A macro over eelsvae_scorer_options_init_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param opt Options to fill (an ::eelsvae_scorer_options pointer, not NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_scorer_options_init(opt) eelsvae_scorer_options_init_sized((opt), sizeof *(opt))

/**
 * @brief Create a scorer.
 * @param opt Options (struct_size read first).
 * @param[out] out The scorer.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_scorer_create(const eelsvae_scorer_options *opt, eelsvae_scorer **out);

/**
 * @brief Free a scorer. NULL is a no-op.
 * @param scorer The scorer.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_scorer_free(eelsvae_scorer *scorer);

/**
 * @brief The side of a threshold that is anomalous for this scorer's kind.
 * @param scorer The scorer (NULL answers as the default PCC scorer).
 * @return ::EELSVAE_ANOMALOUS_BELOW for PCC, ::EELSVAE_ANOMALOUS_ABOVE otherwise
 *         (MSE, spectral angle, chi-square).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_direction eelsvae_scorer_direction(const eelsvae_scorer *scorer);

/**
 * @brief Score every pixel of a cube against its reconstruction.
 *
 * Only the channels of eelsvae_cube_energy_window(original, window_lo,
 * window_hi) are read; samples outside the window may hold anything. The
 * chi-square takes two passes: it fits the noise model of
 * eelsvae_scorer_noise_model() on the whole map, then scores each pixel.
 * @param scorer The scorer.
 * @param original The input cube; its energy axis places the window.
 * @param reconstruction Same shape as @p original.
 * @param[out] scores ny·nx floats.
 * @param count Length of @p scores.
 * @param[out] degenerate Pixels that met a degenerate case (may be NULL).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL pointer),
 *         ::EELSVAE_ERR_DIMENSION (shapes differ, or @p count is not ny·nx),
 *         ::EELSVAE_ERR_RANGE (window outside the energy axis),
 *         ::EELSVAE_ERR_NUMERIC (a non-finite sample in the window; the message
 *         names the first such pixel (y, x) in row-major order and the cube).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_scorer_score(const eelsvae_scorer *scorer, const eelsvae_cube *original,
                                                const eelsvae_cube *reconstruction, float *scores, size_t count,
                                                size_t *degenerate);

/**
 * @brief The noise model the chi-square score divides by, as fitted on a map.
 *
 * The variance of a sample is modelled as affine in its reconstructed value
 * x̂: v(x̂) = @p intercept + @p slope · x̂. Poisson counts with Gaussian read
 * noise have a variance affine in their mean, and the preprocessing
 * (percentile scaling, blurs, a spatial mean) is linear, so the model holds
 * in prepared units as in scaled counts. The fit is robust, as anomalies
 * are a minority: the window's (pixel, channel) samples — at most 2¹⁸, drawn
 * by a fixed-seed generator on a larger map, so the fit is deterministic —
 * are sorted by x̂ into up to 32 bins of equal count (at least 64 samples
 * each); a bin's variance is (1.4826 · median |x − x̂|)², and the line is
 * the least-squares fit through the bins' (mean x̂, variance) weighted by
 * 1 / variance² (one bin, or bins of one x̂: a constant). That fit is
 * made twice: the second time without the pixels whose chi-square under
 * the first is a robust outlier of the map (above its median + 4 · 1.4826 ·
 * MAD), as a bin's median alone is moved by a few per cent of anomalous
 * samples (5 % make a variance up to 13 % too large). The chi-square
 * score of a pixel is then (1/n) Σ (x − x̂)² / max(v(x̂), f) over its n
 * window channels, with the floor f = 1 % of the bins' mean variance, so
 * that no division blows up. Any score kind's scorer may be asked; only
 * the window is read.
 * @param scorer The scorer: its window.
 * @param original The input cube.
 * @param reconstruction Same shape as @p original.
 * @param[out] intercept a, the variance at x̂ = 0 (may be negative, where
 *             an offset was subtracted).
 * @param[out] slope b, the variance per unit of x̂.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL pointer),
 *         ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_RANGE, ::EELSVAE_ERR_NUMERIC
 *         (a non-finite sample, as eelsvae_scorer_score(); or residuals
 *         that show no noise: most samples reconstructed exactly),
 *         ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_scorer_noise_model(const eelsvae_scorer *scorer, const eelsvae_cube *original,
                                                      const eelsvae_cube *reconstruction, double *intercept,
                                                      double *slope);

/**
 * @brief Why pixels were flagged: per energy channel of a window, the mean
 *        spectrum of the flagged pixels, the mean of their reconstructions,
 *        the mean of the unflagged (bulk) pixels and the mean residual.
 *
 * The window is found as eelsvae_scorer_score() finds it: NaN with NaN is
 * the whole energy axis, otherwise eelsvae_cube_energy_window(original,
 * window_lo, window_hi), whose channel count the caller asks first and
 * passes as @p channels (the cube's ne for the whole axis). A shifted edge
 * shows as an edge of @p flagged_mean displaced from that of @p bulk_mean;
 * @p flagged_reconstruction_mean is what the model expected there.
 * All sums are in double. Any output may be NULL; on failure none is written.
 * @param original The scored cube; its energy axis places the window.
 * @param reconstruction Same shape as @p original.
 * @param mask ny·nx bytes, non-zero = flagged (as eelsvae_threshold_mask() writes).
 * @param mask_count Length of @p mask, = ny·nx.
 * @param window_lo Energy window start in the cube's energy units, or NaN
 *        (with @p window_hi NaN: the whole axis).
 * @param window_hi Energy window end, or NaN.
 * @param[out] energy Energy of each channel, offset + scale·i in the energy
 *        axis' units (eV once calibrated; channel numbers on an uncalibrated
 *        axis, which only the whole-axis window accepts).
 * @param[out] flagged_mean Mean over the flagged pixels of the original.
 * @param[out] flagged_reconstruction_mean Mean over the flagged pixels of the reconstruction.
 * @param[out] bulk_mean Mean over the unflagged pixels of the original;
 *        NaN in every channel when every pixel is flagged.
 * @param[out] mean_residual Mean over the flagged pixels of original −
 *        reconstruction (= flagged_mean − flagged_reconstruction_mean).
 * @param channels Length of each output array: the window's channel count.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL cube or mask,
 *         one window end NaN, an empty window, no pixel flagged),
 *         ::EELSVAE_ERR_DIMENSION (shapes differ, @p mask_count is not ny·nx,
 *         @p channels is not the window's channel count — the message gives
 *         it), ::EELSVAE_ERR_RANGE (window outside the energy axis, or on an
 *         uncalibrated one), ::EELSVAE_ERR_NUMERIC (a non-finite sample in the
 *         window, named as by eelsvae_scorer_score()), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_explain_means(const eelsvae_cube *original, const eelsvae_cube *reconstruction,
                                                 const uint8_t *mask, size_t mask_count, double window_lo,
                                                 double window_hi, double *energy, double *flagged_mean,
                                                 double *flagged_reconstruction_mean, double *bulk_mean,
                                                 double *mean_residual, size_t channels);

/**
 * @brief Otsu's threshold of a set of scores.
 *
 * The scores are binned in @p bins equal bins between their minimum and
 * maximum; the threshold is the centre of the bin that maximises the
 * between-class variance (the first such bin on a tie), as scikit-image's
 * threshold_otsu(scores, nbins=bins) computes it for a float32 array —
 * bin edges and centres in float32 as NumPy makes them, so the result is
 * the same float. All-equal scores give that value.
 * @param scores n finite values.
 * @param n Count, ≥ 1.
 * @param bins Number of bins, ≥ 2 (scikit-image uses 256).
 * @param[out] threshold The threshold.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NUMERIC, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_otsu_threshold(const float *scores, size_t n, size_t bins, double *threshold);

/**
 * @brief Mask of the anomalous side of a threshold.
 * @param scores n values.
 * @param n Count.
 * @param threshold The threshold.
 * @param direction Which side is anomalous.
 * @param[out] mask n bytes, 1 = anomalous (0 where a score is NaN).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL pointer,
 *         n = 0, a NaN threshold, an unknown direction).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_threshold_mask(const float *scores, size_t n, double threshold,
                                                  eelsvae_direction direction, uint8_t *mask);

/** How a threshold is chosen. @since 0.1.0 */
typedef enum eelsvae_threshold_kind {
    EELSVAE_THRESHOLD_OTSU = 0,          /**< Otsu's split of the score histogram (the paper's); parameter:
                                              bins, 0 for 256. Always splits, anomalies or not. */
    EELSVAE_THRESHOLD_VALUE = 1,         /**< A fixed score; parameter: the score. */
    EELSVAE_THRESHOLD_CONTAMINATION = 2, /**< The ⌈F · n⌉ most anomalous pixels (more where scores tie), as
                                              PyOD's detectors take a contamination; parameter: F in (0, 0.5]. */
    EELSVAE_THRESHOLD_FDR = 3            /**< Benjamini–Hochberg at rate Q over the p-values of
                                              eelsvae_score_p_values(); parameter: Q in (0, 1). */
} eelsvae_threshold_kind;

/**
 * @brief A threshold rule: a kind and its parameter.
 *        eelsvae_threshold_rule_parse() reads the programs' spelling.
 * @since 0.1.0
 */
typedef struct eelsvae_threshold_rule {
    size_t struct_size;          /**< sizeof(eelsvae_threshold_rule); set by the caller. */
    eelsvae_threshold_kind kind; /**< Which rule. */
    double parameter;            /**< Its parameter (see ::eelsvae_threshold_kind). */
} eelsvae_threshold_rule;

/**
 * @brief Read a rule as the programs' --threshold spells it: "otsu"
 *        ("otsu:BINS"), "value:X", "contamination:F" or "fdr:Q".
 * @param text The rule.
 * @param[in,out] rule struct_size set by the caller; the fields within it are written.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (unknown rule, a
 *         missing or malformed number, a parameter out of its range — the
 *         message says which and the range).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_threshold_rule_parse(const char *text, eelsvae_threshold_rule *rule);

/**
 * @brief The rule detection uses where the caller names none: "fdr:0.01".
 *
 * The pixels that differ from the map's own bulk at a 1 % false-discovery
 * rate (eelsvae_score_p_values()): on anomaly-free synthetic SIs it flags at
 * most 0.07 % of the pixels (five seeds, the VAE and PCA), where Otsu's
 * split, the paper's rule, flags 15–43 %; see docs/scores.md. The programs
 * and the Python package take their default from here.
 * @return A static string for eelsvae_threshold_rule_parse().
 * @since 0.1.0
 */
EELSVAE_API const char *eelsvae_threshold_rule_default(void);

/**
 * @brief One-sided p-value of every pixel against the bulk of the map itself.
 *
 * Each score is read as a distance from a perfect reconstruction, d = 1 −
 * score for ::EELSVAE_ANOMALOUS_BELOW (PCC) and d = score for
 * ::EELSVAE_ANOMALOUS_ABOVE (MSE, angle, chi-square), and the bulk's log d
 * is taken as normal, with the map's median as centre and 1.4826 × the
 * median absolute deviation as spread — estimates that a few per cent of
 * anomalous pixels do not move. The logarithm matters: these scores are
 * sums of squared residuals at heart, skewed and heavy-tailed where a model
 * fits part of the bulk worse than the rest, and log d is close to normal.
 * p is the chance that a bulk pixel lies at least as far (1 − p is the
 * normal law's CDF at the pixel's log d). This is the reference for a model
 * fitted on the map it scores (PCA) and for one trained on it; it assumes
 * most of the map is bulk, and that the bulk's score does not depend on
 * where the pixel is (PCC falls where the SI is thinner; the chi-square
 * score does not).
 * @param scores n finite scores.
 * @param n Count, ≥ 1.
 * @param direction Which side is anomalous.
 * @param[out] p n p-values in [0, 1].
 * @param p_count Length of @p p, = @p n.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (also a score that is
 *         no distance: above 1 below, negative above), ::EELSVAE_ERR_DIMENSION,
 *         ::EELSVAE_ERR_NUMERIC (a non-finite score, or no spread: half the
 *         scores equally far from a perfect reconstruction).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_score_p_values(const float *scores, size_t n, eelsvae_direction direction,
                                                  double *p, size_t p_count);

/**
 * @brief The threshold a rule chooses for a score map; eelsvae_threshold_mask()
 *        then flags the pixels.
 *
 * Where the rule flags nothing (an FDR rule and no pixel significant) the
 * threshold is −∞ (::EELSVAE_ANOMALOUS_BELOW) or +∞.
 * @param scores n finite scores.
 * @param n Count, ≥ 1.
 * @param direction Which side is anomalous.
 * @param rule The rule.
 * @param[out] threshold The threshold.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NUMERIC, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_threshold_select(const float *scores, size_t n, eelsvae_direction direction,
                                                    const eelsvae_threshold_rule *rule, double *threshold);

/**
 * @brief Agreement of a predicted mask with the truth.
 *
 * Where a ratio's denominator is 0 the ratio is defined as 0 (and
 * precision = recall = F1 = IoU = 1 when both masks are empty).
 * @since 0.1.0
 */
typedef struct eelsvae_metrics {
    size_t struct_size;    /**< sizeof(eelsvae_metrics); set by the caller. */
    size_t true_positive;  /**< Anomalous in both. */
    size_t false_positive; /**< Predicted anomalous, truly normal. */
    size_t false_negative; /**< Predicted normal, truly anomalous. */
    size_t true_negative;  /**< Normal in both. */
    double precision;      /**< TP / (TP + FP). */
    double recall;         /**< TP / (TP + FN). */
    double f1;             /**< 2·P·R / (P + R). */
    double iou;            /**< TP / (TP + FP + FN). */
} eelsvae_metrics;

/**
 * @brief Count agreement of a predicted mask with the truth.
 * @param predicted n bytes, non-zero = anomalous.
 * @param truth n bytes, non-zero = anomalous.
 * @param n Count, ≥ 1.
 * @param[in,out] metrics struct_size set by the caller, at least
 *        offsetof(eelsvae_metrics, true_negative) + sizeof(size_t); every
 *        field that lies wholly within struct_size is filled, the rest (and
 *        struct_size) are left as they were.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_metrics_compute(const uint8_t *predicted, const uint8_t *truth, size_t n,
                                                   eelsvae_metrics *metrics);

/**
 * @brief Area under the ROC curve of scores against the truth.
 *
 * Computed exactly as the Mann–Whitney statistic with tied scores counted
 * one half; the direction says which way anomalies lean (for
 * ::EELSVAE_ANOMALOUS_BELOW the AUC of −score), as scikit-learn's
 * roc_auc_score(truth, ±score).
 * @param scores n values, not NaN (infinities rank as such).
 * @param truth n bytes, non-zero = anomalous.
 * @param n Count.
 * @param direction Which side is anomalous.
 * @param[out] auc 0…1 (0.5 is chance).
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a class is empty, a NULL
 *         pointer, n = 0), ::EELSVAE_ERR_NUMERIC (a NaN score), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_roc_auc(const float *scores, const uint8_t *truth, size_t n,
                                           eelsvae_direction direction, double *auc);

/**
 * @brief Area under the precision–recall curve, as average precision.
 *
 * AP = Σ (R_i − R_{i−1}) · P_i over the distinct score thresholds, as
 * scikit-learn's average_precision_score(truth, s) with s = score
 * (::EELSVAE_ANOMALOUS_ABOVE) or −score (::EELSVAE_ANOMALOUS_BELOW).
 * @param scores n values, not NaN.
 * @param truth n bytes, non-zero = anomalous.
 * @param n Count.
 * @param direction Which side is anomalous.
 * @param[out] ap 0…1.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (no anomalous pixel, a NULL
 *         pointer, n = 0), ::EELSVAE_ERR_NUMERIC (a NaN score), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_pr_auc(const float *scores, const uint8_t *truth, size_t n,
                                          eelsvae_direction direction, double *ap);

/**
 * @brief Histograms of the scores of truly normal and truly anomalous pixels.
 *
 * @p bins equal bins over [lo, hi], each holding [left, right) except the
 * last, which holds hi too; values outside (infinities included) are
 * clamped into the end bins.
 * @param scores n values, not NaN.
 * @param truth n bytes, non-zero = anomalous.
 * @param n Count.
 * @param lo Left edge of the first bin.
 * @param hi Right edge of the last bin, > lo.
 * @param bins Number of bins, ≥ 1.
 * @param[out] normal bins counts of truly normal pixels.
 * @param[out] anomalous bins counts of truly anomalous pixels.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_NUMERIC (a NaN score).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_score_histogram(const float *scores, const uint8_t *truth, size_t n, double lo,
                                                   double hi, size_t bins, uint64_t *normal, uint64_t *anomalous);

#ifdef __cplusplus
}
#endif

#endif /* EELSVAE_SCORE_H */
