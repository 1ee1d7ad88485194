/* The noise model of the chi-square score: the variance of a sample as an
 * affine function of its reconstructed value, fitted robustly on the map
 * being scored.
 *
 * Why affine: the preprocessing (a global percentile scaling, linear blurs,
 * an optional spatial mean) maps counts linearly, and the variance of
 * Poisson counts plus Gaussian read noise is affine in their mean, so in
 * prepared units (and in scaled counts) it stays affine in the expected
 * value, which the reconstruction estimates.
 *
 * Why robust: anomalies are a minority of pixels, and their residuals are
 * large; the median of |r| in a bin of similar x̂ does not see them. */
#include "score_private.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum {
    NOISE_MAX_SAMPLES = 1 << 18, /* 32 bins of 8192: a bin variance good to 2 %; a larger map is subsampled */
    NOISE_MAX_BINS = 32,
    NOISE_MIN_PER_BIN = 64 /* fewer samples per bin than this and a median is too noisy */
};
static const double NOISE_FLOOR_FRACTION = 0.01; /* of the mean measured variance */
static const double NOISE_OUTLIER_MADS = 4.0; /* a pixel this far above the map's median is left out of the refit */
static const double MAD_TO_SIGMA = 1.482602218505602; /* 1 / Φ⁻¹(3/4): σ of a normal from its median |r| */
static const uint64_t NOISE_SEED = 0x6e6f697365ull; /* fixed: the same subsample, and model, every run */

typedef struct noise_sample {
    double reconstructed, abs_residual;
} noise_sample;

/* By x̂, then |r|: a total order, so that the bins hold the same samples
 * whatever qsort does with ties. */
static int compare_samples(const void *pa, const void *pb)
{
    const noise_sample *a = pa, *b = pb;
    if (a->reconstructed != b->reconstructed) return a->reconstructed < b->reconstructed ? -1 : 1;
    return (a->abs_residual > b->abs_residual) - (a->abs_residual < b->abs_residual);
}

/* The window samples of a list of pixels: sample i is channel first + i % n
 * of pixel[i / n]. */
typedef struct window_view {
    const eelsvae_cube *original, *reconstruction;
    size_t first, n;
    const size_t *pixel;
} window_view;

static noise_sample sample_at(const window_view *w, size_t index)
{
    size_t at = w->pixel[index / w->n] * w->original->ne + w->first + index % w->n;
    double x = w->original->data[at], xhat = w->reconstruction->data[at];
    return (noise_sample){xhat, fabs(x - xhat)};
}

/* Every sample when there are at most `m`, else m drawn uniformly by a
 * seeded generator (not a stride, which could fall on one channel). */
static void draw_samples(const window_view *w, size_t total, noise_sample *s, size_t m)
{
    if (m == total) {
        for (size_t i = 0; i < m; i++) s[i] = sample_at(w, i);
        return;
    }
    evae_rng rng;
    evae_rng_seed(&rng, NOISE_SEED, 0);
    for (size_t i = 0; i < m; i++) s[i] = sample_at(w, (size_t)(evae_rng_u64(&rng) % total));
}

/* One bin of samples: its mean x̂ and the robust variance (1.4826 · median |r|)².
 * The residual is taken about 0, not the bin's median, as the score takes it. */
static void bin_variance(const noise_sample *s, size_t m, double *scratch, double *centre, double *variance)
{
    double sum = 0.0;
    for (size_t i = 0; i < m; i++) {
        sum += s[i].reconstructed;
        scratch[i] = s[i].abs_residual;
    }
    double median = evae_median_doubles(scratch, m);
    *centre = sum / (double)m;
    *variance = (MAD_TO_SIGMA * median) * (MAD_TO_SIGMA * median);
}

/* Weighted least squares of v on x̂ through the bins whose variance is
 * positive, weights 1/v² (a variance estimate's error grows with it). A
 * constant when the bins share one x̂. */
static void fit_line(const double *centre, const double *variance, size_t bins, evae_noise_model *model)
{
    double sw = 0.0, swx = 0.0, swv = 0.0, sv = 0.0;
    size_t used = 0;
    for (size_t k = 0; k < bins; k++) {
        if (!(variance[k] > 0.0)) continue;
        double w = 1.0 / (variance[k] * variance[k]);
        sw += w;
        swx += w * centre[k];
        swv += w * variance[k];
        sv += variance[k];
        used++;
    }
    model->measurable = used > 0;
    if (!model->measurable) {
        *model = (evae_noise_model){.intercept = 1.0, .slope = 0.0, .floor = 1.0, .measurable = false};
        return;
    }
    double xbar = swx / sw, vbar = swv / sw, sxx = 0.0, sxv = 0.0;
    for (size_t k = 0; k < bins; k++) {
        if (!(variance[k] > 0.0)) continue;
        double w = 1.0 / (variance[k] * variance[k]);
        sxx += w * (centre[k] - xbar) * (centre[k] - xbar);
        sxv += w * (centre[k] - xbar) * (variance[k] - vbar);
    }
    model->slope = sxx > 0.0 ? sxv / sxx : 0.0;
    model->intercept = vbar - model->slope * xbar;
    model->floor = NOISE_FLOOR_FRACTION * sv / (double)used;
}

/* One fit through the samples of the first `kept` pixels of w's list. */
static eelsvae_status fit_pixels(const window_view *w, size_t kept, evae_noise_model *model)
{
    size_t total = 0;
    EVAE_TRY(evae_mul(kept, w->n, &total, "noise model samples"));
    size_t m = total < NOISE_MAX_SAMPLES ? total : NOISE_MAX_SAMPLES;
    size_t bins = m / NOISE_MIN_PER_BIN;
    bins = bins < 1 ? 1 : bins > NOISE_MAX_BINS ? NOISE_MAX_BINS : bins;
    noise_sample *s = NULL;
    double *scratch = NULL;
    EVAE_TRY(evae_alloc_array(m, sizeof *s, (void **)&s, "noise model samples"));
    /* room for the largest bin, and the bins' centres and variances after it */
    size_t per_bin = (m + bins - 1) / bins;
    eelsvae_status st = evae_alloc_array(per_bin + 2 * bins, sizeof *scratch, (void **)&scratch, "noise model bins");
    if (st != EELSVAE_OK) {
        evae_free(s);
        return st;
    }
    draw_samples(w, total, s, m);
    qsort(s, m, sizeof *s, compare_samples);
    double *centre = scratch + per_bin, *variance = centre + bins;
    for (size_t k = 0; k < bins; k++) {
        size_t lo = k * m / bins, hi = (k + 1) * m / bins; /* quantile bins: equal counts */
        bin_variance(s + lo, hi - lo, scratch, &centre[k], &variance[k]);
    }
    fit_line(centre, variance, bins, model);
    evae_free(scratch);
    evae_free(s);
    return EELSVAE_OK;
}

double evae_noise_chi2(const float *x, const float *xhat, size_t n, const evae_noise_model *model)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)x[i] - (double)xhat[i];
        s += d * d / evae_noise_variance(model, xhat[i]);
    }
    return s / (double)n;
}

/* Shorten w's list (all pixels, in order) to the pixels whose chi-square
 * under `model` is no robust outlier of the map: at most its median +
 * NOISE_OUTLIER_MADS · 1.4826 · MAD. A map without spread keeps them all. */
static eelsvae_status keep_bulk_pixels(const window_view *w, size_t pixels, const evae_noise_model *model,
                                       size_t *pixel, size_t *kept)
{
    double *score = NULL;
    EVAE_TRY(evae_alloc_array(pixels, 2 * sizeof *score, (void **)&score, "noise model pixel scores"));
    double *sorted = score + pixels;
    size_t ne = w->original->ne;
#pragma omp parallel for schedule(static) num_threads(evae_threads())
    for (size_t p = 0; p < pixels; p++)
        score[p] = evae_noise_chi2(w->original->data + p * ne + w->first, w->reconstruction->data + p * ne + w->first,
                                   w->n, model);
    memcpy(sorted, score, pixels * sizeof *sorted);
    double median = evae_median_doubles(sorted, pixels);
    for (size_t p = 0; p < pixels; p++) sorted[p] = fabs(score[p] - median);
    double mad = evae_median_doubles(sorted, pixels), cut = median + NOISE_OUTLIER_MADS * MAD_TO_SIGMA * mad;
    *kept = 0;
    for (size_t p = 0; p < pixels; p++)
        if (mad == 0.0 || !(score[p] > cut)) pixel[(*kept)++] = p;
    evae_free(score);
    return EELSVAE_OK;
}

eelsvae_status evae_noise_model_fit(const eelsvae_cube *original, const eelsvae_cube *reconstruction, size_t first,
                                    size_t n, evae_noise_model *model)
{
    size_t pixels = evae_cube_pixels(original), *pixel = NULL;
    EVAE_TRY(evae_alloc_array(pixels, sizeof *pixel, (void **)&pixel, "noise model pixel list"));
    for (size_t p = 0; p < pixels; p++) pixel[p] = p;
    window_view w = {original, reconstruction, first, n, pixel};
    size_t kept = pixels;
    eelsvae_status st = fit_pixels(&w, pixels, model);
    /* Second pass without the pixels the first model finds anomalous: the
     * median resists a few per cent of outlying samples only up to a bias
     * (5 % inflate a variance by up to 13 %), and whole anomalous pixels
     * are easy to see once scored. */
    if (st == EELSVAE_OK && model->measurable) st = keep_bulk_pixels(&w, pixels, model, pixel, &kept);
    if (st == EELSVAE_OK && kept < pixels && kept > 0) {
        evae_noise_model refit;
        st = fit_pixels(&w, kept, &refit);
        if (st == EELSVAE_OK && refit.measurable) *model = refit;
    }
    evae_free(pixel);
    return st;
}
