/* Tests of the chi-square score and its noise model: the affine variance
 * fitted on synthetic maps whose noise is known, a score worked by hand
 * from the fitted model, independence of the counts (where PCC is not),
 * and robustness to a minority of anomalous pixels. */
#include "testutil.h"

#include "core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A spectrum with structure (an edge-like step on a decaying background), so
 * that PCC has a shape to correlate: 0.6 … 1.6 over the channels. */
static double base_spectrum(size_t c, size_t ne)
{
    double t = (double)c / (double)ne;
    return 1.0 - 0.4 * t + 0.6 / (1.0 + exp(-(t - 0.5) * 40.0));
}

/* reconstruction[p, c] = level(p) · base(c); original = reconstruction plus
 * Gaussian noise of variance a + b·x̂ (poisson = 0) or a Poisson draw of
 * mean x̂ (poisson = 1: variance x̂). */
typedef struct synthetic {
    size_t ny, nx, ne;
    float *original, *reconstruction;
} synthetic;

static synthetic synthetic_map(size_t ny, size_t nx, size_t ne, const double *level, double a, double b, int poisson,
                               uint64_t seed)
{
    synthetic s = {ny, nx, ne, malloc(ny * nx * ne * sizeof(float)), malloc(ny * nx * ne * sizeof(float))};
    assert_non_null(s.original);
    assert_non_null(s.reconstruction);
    evae_rng rng;
    evae_rng_seed(&rng, seed, 0);
    for (size_t p = 0; p < ny * nx; p++)
        for (size_t c = 0; c < ne; c++) {
            double xhat = level[p] * base_spectrum(c, ne);
            double x = poisson ? evae_rng_poisson(&rng, xhat) : xhat + sqrt(a + b * xhat) * evae_rng_normal(&rng);
            s.reconstruction[p * ne + c] = (float)xhat;
            s.original[p * ne + c] = (float)x;
        }
    return s;
}

static void synthetic_free(synthetic *s)
{
    free(s->original);
    free(s->reconstruction);
}

static eelsvae_cube *cube_of(const float *data, const synthetic *s)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create_from(data, s->ny, s->nx, s->ne, &c));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0.0, 1.0, "eV"));
    return c;
}

static eelsvae_scorer *scorer_of(eelsvae_score_kind kind)
{
    eelsvae_scorer_options opt;
    assert_ok(eelsvae_scorer_options_init(&opt));
    opt.kind = kind;
    eelsvae_scorer *s = NULL;
    assert_ok(eelsvae_scorer_create(&opt, &s));
    return s;
}

/* Score the synthetic map with `kind` into scores (ny·nx); the fitted model
 * into *a, *b when they are not NULL. */
static void score_map(const synthetic *s, eelsvae_score_kind kind, float *scores, double *a, double *b)
{
    eelsvae_cube *orig = cube_of(s->original, s), *recon = cube_of(s->reconstruction, s);
    eelsvae_scorer *scorer = scorer_of(kind);
    size_t degenerate = 99;
    assert_ok(eelsvae_scorer_score(scorer, orig, recon, scores, s->ny * s->nx, &degenerate));
    assert_int_equal(degenerate, 0);
    if (a) assert_ok(eelsvae_scorer_noise_model(scorer, orig, recon, a, b));
    eelsvae_scorer_free(scorer);
    eelsvae_cube_free(orig);
    eelsvae_cube_free(recon);
}

static double mean_of(const float *v, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += v[i];
    return s / (double)n;
}

/* Levels 2 … 12 across the map: a thickness gradient along x. */
static double *gradient_levels(size_t ny, size_t nx)
{
    double *level = malloc(ny * nx * sizeof *level);
    assert_non_null(level);
    for (size_t p = 0; p < ny * nx; p++) level[p] = 2.0 + 10.0 * (double)(p % nx) / (double)(nx - 1);
    return level;
}

/* ---- (a) the fitted model, and bulk scores of 1 ------------------------------- */

static void test_fit_recovers_affine_variance(void **state)
{
    (void)state;
    /* 128 × 128 × 72 = 1 179 648 samples: more than the 2^18 the fit takes,
     * so the seeded subsample is what is tested. Variance 0.3 + 0.2·x̂ over
     * x̂ in 1.2 … 19: 0.5 … 4.1. Each of 32 bins holds 8192 samples, whose
     * robust variance has a relative standard error of about 2 % (MAD's
     * efficiency 37 %); the line through them is good to a few per cent of
     * the variance range, hence the tolerances. */
    size_t ny = 128, nx = 128, ne = 72;
    double *level = gradient_levels(ny, nx);
    synthetic s = synthetic_map(ny, nx, ne, level, 0.3, 0.2, 0, 11);
    float *scores = malloc(ny * nx * sizeof *scores);
    assert_non_null(scores);
    double a = NAN, b = NAN;
    score_map(&s, EELSVAE_SCORE_CHI2, scores, &a, &b);
    assert_close(a, 0.3, 0.05, 0.0);
    assert_close(b, 0.2, 0.0, 0.03);
    /* A bulk pixel's reduced chi-square over 72 channels has mean 1 and
     * standard deviation √(2/72) = 0.17; the map's mean is good to 0.003
     * apart from the model's error. */
    assert_close(mean_of(scores, ny * nx), 1.0, 0.03, 0.0);

    /* Deterministic: the same model and scores twice. */
    float *again = malloc(ny * nx * sizeof *again);
    assert_non_null(again);
    double a2 = NAN, b2 = NAN;
    score_map(&s, EELSVAE_SCORE_CHI2, again, &a2, &b2);
    assert_true(a2 == a && b2 == b);
    assert_memory_equal(scores, again, ny * nx * sizeof *scores);
    free(again);
    free(scores);
    free(level);
    synthetic_free(&s);
}

/* ---- (b) one pixel by hand ------------------------------------------------------ */

static void test_score_by_hand(void **state)
{
    (void)state;
    /* Pixel 0 gets a residual of +1.5 in every channel; its score is
     * (1/n) Σ 1.5² / (a + b·x̂_c) with the model the scorer reports. The
     * floor, 1 % of the mean variance, is far below a = 0.3 here. */
    size_t ny = 48, nx = 48, ne = 40;
    double *level = gradient_levels(ny, nx);
    synthetic s = synthetic_map(ny, nx, ne, level, 0.3, 0.2, 0, 12);
    for (size_t c = 0; c < ne; c++) s.original[c] = s.reconstruction[c] + 1.5f;
    float *scores = malloc(ny * nx * sizeof *scores);
    assert_non_null(scores);
    double a = NAN, b = NAN;
    score_map(&s, EELSVAE_SCORE_CHI2, scores, &a, &b);
    assert_true(a > 0.1);
    double expected = 0.0;
    for (size_t c = 0; c < ne; c++) {
        double r = (double)s.original[c] - (double)s.reconstruction[c];
        expected += r * r / (a + b * (double)s.reconstruction[c]);
    }
    expected /= (double)ne;
    assert_close(scores[0], expected, 0.0, 1e-6);
    assert_true(scores[0] > 2.0); /* well above the bulk's 1 */
    free(scores);
    free(level);
    synthetic_free(&s);
}

/* ---- (c) the counts do not move the bulk's score --------------------------------- */

static void test_independent_of_counts(void **state)
{
    (void)state;
    /* Poisson counts, left half at mean level 80, right half at 20 (4× fewer
     * counts): variance = x̂, so the model should be about 0 + 1·x̂. The
     * chi-square's bulk mean is 1 on both halves; PCC is lower on the
     * thin half, which is what one global threshold on PCC flags first. */
    size_t ny = 64, nx = 64, ne = 64;
    double *level = malloc(ny * nx * sizeof *level);
    assert_non_null(level);
    for (size_t p = 0; p < ny * nx; p++) level[p] = p % nx < nx / 2 ? 80.0 : 20.0;
    synthetic s = synthetic_map(ny, nx, ne, level, 0.0, 0.0, 1, 13);
    float *chi2 = malloc(ny * nx * sizeof *chi2), *pcc = malloc(ny * nx * sizeof *pcc);
    assert_non_null(chi2);
    assert_non_null(pcc);
    double a = NAN, b = NAN;
    score_map(&s, EELSVAE_SCORE_CHI2, chi2, &a, &b);
    score_map(&s, EELSVAE_SCORE_PCC, pcc, NULL, NULL);
    assert_close(b, 1.0, 0.0, 0.05);
    assert_close(a, 0.0, 2.0, 0.0); /* 2 = 2 % of the thick half's variance */
    double chi_thick = 0, chi_thin = 0, pcc_thick = 0, pcc_thin = 0;
    for (size_t p = 0; p < ny * nx; p++) {
        int thick = p % nx < nx / 2;
        (thick ? &chi_thick : &chi_thin)[0] += chi2[p];
        (thick ? &pcc_thick : &pcc_thin)[0] += pcc[p];
    }
    size_t half = ny * nx / 2;
    chi_thick /= half, chi_thin /= half, pcc_thick /= half, pcc_thin /= half;
    assert_close(chi_thick, 1.0, 0.03, 0.0);
    assert_close(chi_thin, 1.0, 0.03, 0.0);
    assert_close(chi_thin / chi_thick, 1.0, 0.03, 0.0);
    /* PCC follows the counts: 1 − PCC is about 3× larger on the thin half
     * (noise variance ∝ counts against a signal variance ∝ counts²). */
    assert_true(1.0 - pcc_thin > 2.0 * (1.0 - pcc_thick));
    free(chi2);
    free(pcc);
    free(level);
    synthetic_free(&s);
}

/* ---- (d) 5 % anomalous pixels hardly move the fit --------------------------------- */

static void test_fit_robust_to_anomalies(void **state)
{
    (void)state;
    size_t ny = 64, nx = 64, ne = 64;
    double *level = gradient_levels(ny, nx);
    synthetic s = synthetic_map(ny, nx, ne, level, 0.3, 0.2, 0, 14);
    float *scores = malloc(ny * nx * sizeof *scores);
    assert_non_null(scores);
    double a0 = NAN, b0 = NAN, a = NAN, b = NAN;
    score_map(&s, EELSVAE_SCORE_CHI2, scores, &a0, &b0);
    /* Every 20th pixel (5 %) gets a spectrum 1.5× as intense and shifted by
     * 4 channels — a composition and a chemical shift the model did not learn. */
    size_t anomalous = 0;
    for (size_t p = 0; p < ny * nx; p += 20, anomalous++)
        for (size_t c = 0; c < ne; c++) {
            size_t from = c >= 4 ? c - 4 : 0;
            float noise = s.original[p * ne + c] - s.reconstruction[p * ne + c];
            s.original[p * ne + c] = 1.5f * s.reconstruction[p * ne + from] + noise;
        }
    score_map(&s, EELSVAE_SCORE_CHI2, scores, &a, &b);
    /* A fraction ε of outliers, all beyond the median, moves a bin's median
     * |r| to the clean quantile 0.5 / (1 − ε): for ε = 5 %, |z| = 0.716 instead
     * of 0.674, a variance (0.716 / 0.674)² = 1.13× too large — which the
     * first pass of the fit suffers. The second pass leaves out the pixels
     * the first finds anomalous, so the line moves by less than 5 %, about
     * the fit's own noise here. */
    double at_mean = a0 + b0 * 7.0 * 1.1; /* mean level 7 × the spectrum's mean 1.1 */
    assert_close(a, a0, 0.05 * at_mean, 0.0);
    assert_close(b, b0, 0.0, 0.05);
    /* And the anomalies stand out: at the thinnest (x̂ ≈ 2, v ≈ 0.7) the
     * residual 0.5·x̂ ≈ 1 alone adds about 1.4 to the bulk's 1 (whose spread
     * over 64 channels is √(2/64) = 0.18), and the bulk is back at 1. */
    double anomalous_min = INFINITY, bulk_mean = 0.0;
    for (size_t p = 0; p < ny * nx; p++) {
        if (p % 20 == 0) anomalous_min = fmin(anomalous_min, scores[p]);
        else bulk_mean += scores[p];
    }
    bulk_mean /= (double)(ny * nx - anomalous);
    assert_close(bulk_mean, 1.0, 0.02, 0.0);
    assert_true(anomalous_min > 1.5);
    free(scores);
    free(level);
    synthetic_free(&s);
}

/* ---- kinds, degenerate maps, arguments --------------------------------------------- */

static void test_direction_and_degenerate(void **state)
{
    (void)state;
    eelsvae_scorer *chi2 = scorer_of(EELSVAE_SCORE_CHI2);
    assert_int_equal(eelsvae_scorer_direction(chi2), EELSVAE_ANOMALOUS_ABOVE);

    /* A perfect reconstruction shows no noise: the variance falls back to 1,
     * so the score is the mean squared residual (0), every pixel counted;
     * the model itself cannot be fitted. */
    float x[2 * 3 * 4];
    for (size_t i = 0; i < 24; i++) x[i] = (float)(i % 5);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create_from(x, 2, 3, 4, &c));
    float scores[6];
    size_t degenerate = 0;
    assert_ok(eelsvae_scorer_score(chi2, c, c, scores, 6, &degenerate));
    assert_int_equal(degenerate, 6);
    for (size_t p = 0; p < 6; p++) assert_true(scores[p] == 0.0f);
    double a = 0, b = 0;
    assert_status(eelsvae_scorer_noise_model(chi2, c, c, &a, &b), EELSVAE_ERR_NUMERIC);
    assert_status(eelsvae_scorer_noise_model(chi2, c, c, NULL, &b), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_scorer_noise_model(NULL, c, c, &a, &b), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube *other = NULL;
    assert_ok(eelsvae_cube_create_from(x, 3, 2, 4, &other));
    assert_status(eelsvae_scorer_noise_model(chi2, c, other, &a, &b), EELSVAE_ERR_DIMENSION);
    x[5] = NAN;
    eelsvae_cube *bad = NULL;
    assert_ok(eelsvae_cube_create_from(x, 2, 3, 4, &bad));
    assert_status(eelsvae_scorer_noise_model(chi2, c, bad, &a, &b), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "reconstruction"));
    eelsvae_cube_free(bad);
    eelsvae_cube_free(other);
    eelsvae_cube_free(c);
    eelsvae_scorer_free(chi2);

    /* The next kind is not known, and the message lists the known ones. */
    eelsvae_scorer_options opt;
    assert_ok(eelsvae_scorer_options_init(&opt));
    opt.kind = (eelsvae_score_kind)4;
    eelsvae_scorer *s = NULL;
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "chi-square 3"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fit_recovers_affine_variance),
        cmocka_unit_test(test_score_by_hand),
        cmocka_unit_test(test_independent_of_counts),
        cmocka_unit_test(test_fit_robust_to_anomalies),
        cmocka_unit_test(test_direction_and_degenerate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
