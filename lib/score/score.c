/* Per-pixel scores of a cube against its reconstruction, Otsu's threshold of a
 * score map, and the mask on the anomalous side of a threshold. */
#include "../core/options_out.h"
#include "score_private.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

struct eelsvae_scorer {
    eelsvae_scorer_options opt; /* validated copy, struct_size = sizeof */
};

static const char *score_kind_name(eelsvae_score_kind kind)
{
    switch (kind) {
    case EELSVAE_SCORE_PCC: return "PCC";
    case EELSVAE_SCORE_MSE: return "MSE";
    case EELSVAE_SCORE_SPECTRAL_ANGLE: return "spectral angle";
    case EELSVAE_SCORE_CHI2: return "chi-square";
    }
    return "unknown";
}

/* ---- options and handle -------------------------------------------------- */

static void scorer_defaults(eelsvae_scorer_options *opt)
{
    memset(opt, 0, sizeof *opt);
    opt->struct_size = sizeof *opt;
    opt->kind = EELSVAE_SCORE_PCC;
    opt->window_lo = NAN; /* the whole energy axis: no edge is assumed */
    opt->window_hi = NAN;
}

eelsvae_status eelsvae_scorer_options_init_sized(eelsvae_scorer_options *opt, size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "scorer_options_init: NULL options");
    eelsvae_scorer_options o;
    scorer_defaults(&o); /* filled whole; only the caller's struct_size bytes are written */
    return evae_write_options(opt, struct_size, &o, sizeof o, "scorer options");
}

eelsvae_status eelsvae_scorer_create(const eelsvae_scorer_options *opt, eelsvae_scorer **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "scorer_create: NULL output pointer");
    eelsvae_scorer_options o;
    scorer_defaults(&o); /* fields an older caller does not know keep their defaults */
    EVAE_TRY(evae_read_options(&o, sizeof o, opt, "scorer"));
    if (o.kind != EELSVAE_SCORE_PCC && o.kind != EELSVAE_SCORE_MSE && o.kind != EELSVAE_SCORE_SPECTRAL_ANGLE &&
        o.kind != EELSVAE_SCORE_CHI2)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "scorer options: kind %d is not a known score (PCC 0, MSE 1, spectral angle 2, chi-square 3)",
                         (int)o.kind);
    bool whole_axis = isnan(o.window_lo) && isnan(o.window_hi);
    if (!whole_axis && (!isfinite(o.window_lo) || !isfinite(o.window_hi) || !(o.window_hi > o.window_lo)))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "scorer options: window %g:%g is empty or not finite (both NaN: the whole axis)",
                         o.window_lo, o.window_hi);
    eelsvae_scorer *s = evae_malloc(sizeof *s);
    if (!s) return evae_fail(EELSVAE_ERR_NOMEM, "scorer_create: cannot allocate the scorer");
    s->opt = o;
    *out = s;
    return EELSVAE_OK;
}

void eelsvae_scorer_free(eelsvae_scorer *scorer)
{
    evae_free(scorer);
}

eelsvae_direction eelsvae_scorer_direction(const eelsvae_scorer *scorer)
{
    /* NULL cannot report an error here; it answers as the default (PCC) scorer. */
    if (!scorer || scorer->opt.kind == EELSVAE_SCORE_PCC) return EELSVAE_ANOMALOUS_BELOW;
    return EELSVAE_ANOMALOUS_ABOVE;
}

/* ---- one pixel ------------------------------------------------------------ */

/* Each returns the score of two spectra of n samples and sets *degenerate
 * when a rule of the header, not the formula, decided it. All sums are in
 * double: they decide the result. Only the chi-square reads the noise model. */

static double pixel_pcc(const float *a, const float *b, size_t n, const evae_noise_model *noise, int *degenerate)
{
    (void)noise;
    double ma = 0.0, mb = 0.0;
    for (size_t i = 0; i < n; i++) {
        ma += a[i];
        mb += b[i];
    }
    ma /= (double)n;
    mb /= (double)n;
    /* Two passes, so that a constant spectrum gives sxx == 0 exactly: a sum of
     * n equal floats is exact in double, so its mean is that float. */
    double sab = 0.0, saa = 0.0, sbb = 0.0;
    for (size_t i = 0; i < n; i++) {
        double da = a[i] - ma, db = b[i] - mb;
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    if (saa == 0.0 || sbb == 0.0) {
        *degenerate = 1;
        if (saa == 0.0 && sbb == 0.0) return a[0] == b[0] ? 1.0 : 0.0;
        return 0.0;
    }
    double r = sab / (sqrt(saa) * sqrt(sbb));
    return fmax(-1.0, fmin(1.0, r)); /* rounding can leave |r| a hair above 1, as numpy.corrcoef clips */
}

static double pixel_mse(const float *a, const float *b, size_t n, const evae_noise_model *noise, int *degenerate)
{
    (void)noise;
    (void)degenerate;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)a[i] - (double)b[i];
        s += d * d;
    }
    return s / (double)n;
}

static double pixel_angle(const float *a, const float *b, size_t n, const evae_noise_model *noise, int *degenerate)
{
    (void)noise;
    double sab = 0.0, saa = 0.0, sbb = 0.0;
    for (size_t i = 0; i < n; i++) {
        sab += (double)a[i] * b[i];
        saa += (double)a[i] * a[i];
        sbb += (double)b[i] * b[i];
    }
    /* A float squared is never 0 in double unless the float is 0, so a zero
     * norm means an all-zero spectrum. */
    if (saa == 0.0 || sbb == 0.0) {
        *degenerate = 1;
        return saa == 0.0 && sbb == 0.0 ? 0.0 : acos(0.0);
    }
    double c = sab / (sqrt(saa) * sqrt(sbb));
    return acos(fmax(-1.0, fmin(1.0, c)));
}

/* (1/n) Σ (a − b)² / v(b): the residual in units of the noise the
 * reconstruction b predicts, ≈ 1 for a bulk pixel whatever its counts. */
static double pixel_chi2(const float *a, const float *b, size_t n, const evae_noise_model *noise, int *degenerate)
{
    *degenerate = !noise->measurable;
    return evae_noise_chi2(a, b, n, noise);
}

typedef double (*pixel_score_fn)(const float *a, const float *b, size_t n, const evae_noise_model *noise,
                                 int *degenerate);

static pixel_score_fn pixel_score_for(eelsvae_score_kind kind)
{
    switch (kind) {
    case EELSVAE_SCORE_PCC: return pixel_pcc;
    case EELSVAE_SCORE_MSE: return pixel_mse;
    case EELSVAE_SCORE_SPECTRAL_ANGLE: return pixel_angle;
    case EELSVAE_SCORE_CHI2: return pixel_chi2;
    }
    return pixel_pcc; /* unreachable: create validated the kind */
}

/* ---- the whole map --------------------------------------------------------- */

static int window_is_finite(const float *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!isfinite(s[i])) return 0;
    return 1;
}

/* Checked before any output is written, so that a failure leaves the
 * caller's buffers untouched. */
eelsvae_status evae_check_window_finite(const eelsvae_cube *orig, const eelsvae_cube *recon, size_t first,
                                        size_t count, const char *what)
{
    size_t pixels = evae_cube_pixels(orig), ne = orig->ne;
    size_t bad = pixels; /* min over an integer: the same answer whatever the thread count */
#pragma omp parallel for schedule(static) reduction(min : bad) num_threads(evae_threads())
    for (size_t p = 0; p < pixels; p++) {
        if (!window_is_finite(orig->data + p * ne + first, count) ||
            !window_is_finite(recon->data + p * ne + first, count))
            bad = p < bad ? p : bad;
    }
    if (bad == pixels) return EELSVAE_OK;
    const eelsvae_cube *which = window_is_finite(orig->data + bad * ne + first, count) ? recon : orig;
    const float *s = which->data + bad * ne + first;
    size_t e = 0;
    while (e < count && isfinite(s[e])) e++;
    return evae_fail(EELSVAE_ERR_NUMERIC, "%s: the %s cube holds %g at pixel (y %zu, x %zu), channel %zu", what,
                     which == orig ? "original" : "reconstruction", (double)s[e], bad / orig->nx, bad % orig->nx,
                     first + e);
}

/* The channels first … first + n − 1 the scorer reads of two cubes of one
 * shape, after checking both hold finite samples there. `caller` names the
 * public function in messages. */
static eelsvae_status scorer_window(const eelsvae_scorer *scorer, const eelsvae_cube *original,
                                    const eelsvae_cube *reconstruction, const char *caller, size_t *first, size_t *n)
{
    *first = 0;
    *n = original->ne;
    if (!isnan(scorer->opt.window_lo)) {
        EVAE_TRY(evae_require_energy_calibrated(original, caller));
        EVAE_TRY(eelsvae_cube_energy_window(original, scorer->opt.window_lo, scorer->opt.window_hi, first, n));
    }
    return evae_check_window_finite(original, reconstruction, *first, *n, caller);
}

eelsvae_status eelsvae_scorer_noise_model(const eelsvae_scorer *scorer, const eelsvae_cube *original,
                                          const eelsvae_cube *reconstruction, double *intercept, double *slope)
{
    if (!scorer || !original || !reconstruction || !intercept || !slope)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_scorer_noise_model: NULL scorer, cube or output");
    EVAE_TRY(evae_cube_same_shape(original, reconstruction, "eelsvae_scorer_noise_model: original and reconstruction"));
    size_t first = 0, n = 0;
    EVAE_TRY(scorer_window(scorer, original, reconstruction, "eelsvae_scorer_noise_model", &first, &n));
    evae_noise_model model;
    EVAE_TRY(evae_noise_model_fit(original, reconstruction, first, n, &model));
    if (!model.measurable)
        return evae_fail(EELSVAE_ERR_NUMERIC,
                         "eelsvae_scorer_noise_model: the residuals show no noise (most samples of the window are "
                         "reconstructed exactly), so no variance can be fitted");
    *intercept = model.intercept;
    *slope = model.slope;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_scorer_score(const eelsvae_scorer *scorer, const eelsvae_cube *original,
                                    const eelsvae_cube *reconstruction, float *scores, size_t count,
                                    size_t *degenerate)
{
    if (!scorer || !original || !reconstruction || !scores)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "score: NULL scorer, cube or score buffer");
    EVAE_TRY(evae_cube_same_shape(original, reconstruction, "score: original and reconstruction"));
    size_t pixels = evae_cube_pixels(original);
    if (count != pixels)
        return evae_fail(EELSVAE_ERR_DIMENSION, "score: buffer holds %zu scores, the scan has %zu × %zu pixels",
                         count, original->ny, original->nx);
    size_t first = 0, n = 0;
    EVAE_TRY(scorer_window(scorer, original, reconstruction, "eelsvae_scorer_score", &first, &n));
    /* The chi-square's first pass: the noise the map's own residuals show. */
    evae_noise_model noise = {.intercept = 1.0, .slope = 0.0, .floor = 1.0, .measurable = true};
    if (scorer->opt.kind == EELSVAE_SCORE_CHI2) EVAE_TRY(evae_noise_model_fit(original, reconstruction, first, n, &noise));

    pixel_score_fn score_pixel = pixel_score_for(scorer->opt.kind);
    size_t ne = original->ne, n_degenerate = 0;
#pragma omp parallel for schedule(static) reduction(+ : n_degenerate) num_threads(evae_threads())
    for (size_t p = 0; p < pixels; p++) {
        int deg = 0;
        scores[p] = (float)score_pixel(original->data + p * ne + first, reconstruction->data + p * ne + first, n,
                                       &noise, &deg);
        n_degenerate += (size_t)deg;
    }
    if (n_degenerate > 0)
        evae_log(EELSVAE_LOG_DEBUG, "score: %zu of %zu pixels met a degenerate %s case", n_degenerate, pixels,
                 score_kind_name(scorer->opt.kind));
    if (degenerate) *degenerate = n_degenerate;
    return EELSVAE_OK;
}

/* ---- Otsu ------------------------------------------------------------------ */

/* A transcription of scikit-image's threshold_otsu on a float32 image, which
 * bins with numpy.histogram. NumPy works in the image's type: the edges are
 * linspace(min, max, bins + 1) computed in double and rounded to float32; a
 * value's bin is first estimated in float32 as (v − min)·(bins / (max − min))
 * truncated, then moved by at most one bin so that edge_i ≤ v < edge_i+1 (the
 * last bin also holds max); the centres are (edge_i + edge_i+1) / 2 in
 * float32. Reproducing those steps, not just their intent, keeps the result
 * bit-identical even when the range is so narrow that float32 edges repeat.
 * The between-class variance is then evaluated in double as NumPy does. */

static void otsu_edges(float lo, float hi, size_t bins, float *edges)
{
    double step = ((double)hi - (double)lo) / (double)bins;
    for (size_t i = 0; i < bins; i++) edges[i] = (float)((double)i * step + (double)lo);
    edges[bins] = hi;
}

static size_t otsu_bin(float v, float lo, float norm, const float *edges, size_t bins)
{
    float f = (v - lo) * norm; /* float32, as NumPy's f_indices */
    /* NaN only where max − min overflows float32 (norm 0 times an infinity). */
    size_t i = !(f > 0.0f) ? 0 : f >= (float)bins ? bins : (size_t)f;
    if (i == bins) i--;
    if (i > 0 && v < edges[i]) i--;
    if (i + 1 < bins && v >= edges[i + 1]) i++;
    return i;
}

/* Index of the first maximum of the between-class variance of the split
 * after bin i (i = 0 … bins−2), from cumulative sums in the order NumPy's
 * cumsum takes them. Scratch: w1, m1, var12, bins doubles each. */
static size_t otsu_best_split(const double *counts, const float *centres, size_t bins, double *w1, double *m1,
                              double *var12)
{
    double cw = 0.0, cm = 0.0;
    for (size_t i = 0; i < bins; i++) {
        cw += counts[i];
        cm += counts[i] * (double)centres[i];
        w1[i] = cw;
        m1[i] = cm / cw; /* NaN while cw is 0 (only a run of empty leading bins) */
    }
    double w2 = 0.0, s2 = 0.0; /* the upper class, bins j … bins−1 */
    for (size_t j = bins - 1; j >= 1; j--) {
        w2 += counts[j];
        s2 += counts[j] * (double)centres[j];
        double d = m1[j - 1] - s2 / w2; /* w2 > 0: the last bin holds the maximum */
        var12[j - 1] = (w1[j - 1] * w2) * (d * d); /* grouped as NumPy evaluates it */
    }
    /* np.argmax: the first maximum, or the first NaN, which an empty leading
     * bin (0/0 in mean1) produces when float32 edges repeat at the bottom. */
    size_t best = 0;
    for (size_t i = 0; i + 1 < bins; i++) {
        if (isnan(var12[i])) return i;
        if (var12[i] > var12[best]) best = i;
    }
    return best;
}

eelsvae_status eelsvae_otsu_threshold(const float *scores, size_t n, size_t bins, double *threshold)
{
    if (!scores || !threshold) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "otsu: NULL scores or threshold");
    if (n == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "otsu: no scores");
    if (bins < 2) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "otsu: %zu bins; at least 2 are needed", bins);
    if (bins > SIZE_MAX / (8 * sizeof(double))) /* so that no buffer size below can overflow */
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "otsu: %zu bins are more than memory can hold", bins);
    float lo = scores[0], hi = scores[0];
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(scores[i]))
            return evae_fail(EELSVAE_ERR_NUMERIC, "otsu: score %zu is %g", i, (double)scores[i]);
        lo = scores[i] < lo ? scores[i] : lo;
        hi = scores[i] > hi ? scores[i] : hi;
    }
    if (lo == hi) {
        *threshold = lo; /* one value: skimage returns it */
        return EELSVAE_OK;
    }
    float *edges = NULL;
    double *buf = NULL;
    EVAE_TRY(evae_alloc_array(2 * bins + 1, sizeof(float), (void **)&edges, "otsu edges and centres"));
    eelsvae_status st = evae_alloc_array(bins, 4 * sizeof(double), (void **)&buf, "otsu histogram");
    if (st != EELSVAE_OK) {
        evae_free(edges);
        return st;
    }
    float *centres = edges + bins + 1;
    double *counts = buf, *w1 = buf + bins, *m1 = buf + 2 * bins, *var12 = buf + 3 * bins;
    memset(counts, 0, bins * sizeof(double));
    otsu_edges(lo, hi, bins, edges);
    for (size_t i = 0; i < bins; i++) centres[i] = (edges[i] + edges[i + 1]) / 2.0f;
    float norm = (float)((double)bins / (double)(hi - lo)); /* NumPy: float64 of a float32 range, used in float32 */
    for (size_t i = 0; i < n; i++) counts[otsu_bin(scores[i], lo, norm, edges, bins)] += 1.0;
    size_t best = otsu_best_split(counts, centres, bins, w1, m1, var12);
    *threshold = centres[best];
    evae_free(buf);
    evae_free(edges);
    return EELSVAE_OK;
}

/* ---- masks ----------------------------------------------------------------- */

eelsvae_status eelsvae_threshold_mask(const float *scores, size_t n, double threshold, eelsvae_direction direction,
                                      uint8_t *mask)
{
    if (!scores || !mask) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "threshold_mask: NULL scores or mask");
    if (n == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "threshold_mask: no scores");
    if (isnan(threshold)) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "threshold_mask: the threshold is NaN");
    if (direction != EELSVAE_ANOMALOUS_BELOW && direction != EELSVAE_ANOMALOUS_ABOVE)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "threshold_mask: direction %d is not known", (int)direction);
    if (direction == EELSVAE_ANOMALOUS_BELOW)
        for (size_t i = 0; i < n; i++) mask[i] = (double)scores[i] <= threshold;
    else
        for (size_t i = 0; i < n; i++) mask[i] = (double)scores[i] > threshold;
    return EELSVAE_OK;
}
