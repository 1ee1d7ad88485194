/* Tests of the scoring module: per-pixel scores, Otsu, masks, metrics,
 * ROC-AUC, average precision and histograms — hand-worked cases first, then
 * NumPy / scikit-learn / scikit-image as oracles on random data. */
#include "testutil.h"

#include "core/core.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef M_PI
#define M_PI 3.14159265358979323846
#endif

#define NAN_F ((float)NAN)

/* ---- helpers --------------------------------------------------------------- */

/* A cube of the given samples with energy value(i) = offset + scale·i. */
static eelsvae_cube *cube_of(const float *data, size_t ny, size_t nx, size_t ne, double offset, double scale)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create_from(data, ny, nx, ne, &c));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, offset, scale, "eV"));
    return c;
}

/* tu_random_cube on an energy axis 0, 1, …, ne − 1 eV (a new cube's axis is
 * uncalibrated, and the scorer refuses eV windows on it). */
static eelsvae_cube *random_ev_cube(size_t ny, size_t nx, size_t ne, uint64_t seed)
{
    eelsvae_cube *c = tu_random_cube(ny, nx, ne, seed);
    assert_non_null(c);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 0.0, 1.0, "eV"));
    return c;
}

static eelsvae_scorer *scorer_of(eelsvae_score_kind kind, double lo, double hi)
{
    eelsvae_scorer_options opt;
    assert_ok(eelsvae_scorer_options_init(&opt));
    opt.kind = kind;
    opt.window_lo = lo;
    opt.window_hi = hi;
    eelsvae_scorer *s = NULL;
    assert_ok(eelsvae_scorer_create(&opt, &s));
    return s;
}

/* Score `orig` against `recon` (both ny×nx×ne samples, axis 0,1,2,… eV)
 * over [lo, hi] into `out`; returns the degenerate count. */
static size_t score_samples(eelsvae_score_kind kind, const float *orig, const float *recon, size_t pixels,
                            size_t ne, double lo, double hi, float *out)
{
    eelsvae_cube *a = cube_of(orig, 1, pixels, ne, 0.0, 1.0);
    eelsvae_cube *b = cube_of(recon, 1, pixels, ne, 0.0, 1.0);
    eelsvae_scorer *s = scorer_of(kind, lo, hi);
    size_t degenerate = 12345;
    assert_ok(eelsvae_scorer_score(s, a, b, out, pixels, &degenerate));
    eelsvae_scorer_free(s);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
    return degenerate;
}

/* ---- scorer options ---------------------------------------------------------- */

static void test_options_defaults(void **state)
{
    (void)state;
    eelsvae_scorer_options opt;
    memset(&opt, 0xAB, sizeof opt);
    assert_ok(eelsvae_scorer_options_init(&opt));
    assert_int_equal(opt.struct_size, sizeof opt);
    assert_int_equal(opt.kind, EELSVAE_SCORE_PCC);
    /* NaN … NaN: the whole energy axis (no edge is assumed). */
    assert_true(isnan(opt.window_lo));
    assert_true(isnan(opt.window_hi));

    eelsvae_scorer *s = NULL;
    assert_ok(eelsvae_scorer_create(&opt, &s));
    assert_int_equal(eelsvae_scorer_direction(s), EELSVAE_ANOMALOUS_BELOW);
    eelsvae_scorer_free(s);
    s = scorer_of(EELSVAE_SCORE_MSE, 0, 1);
    assert_int_equal(eelsvae_scorer_direction(s), EELSVAE_ANOMALOUS_ABOVE);
    eelsvae_scorer_free(s);
    s = scorer_of(EELSVAE_SCORE_SPECTRAL_ANGLE, 0, 1);
    assert_int_equal(eelsvae_scorer_direction(s), EELSVAE_ANOMALOUS_ABOVE);
    eelsvae_scorer_free(s);
    eelsvae_scorer_free(NULL);

    /* An older caller's struct that ends after `kind`: the window keeps its
     * default, the whole axis — all 20 channels of a cube on 600 + 10·i eV,
     * not only 690–730 (channels 9…13). Garbage in the fields past
     * struct_size (a window that create would refuse) is not read. */
    opt.kind = EELSVAE_SCORE_MSE;
    opt.window_lo = NAN;
    opt.window_hi = -1.0;
    opt.struct_size = offsetof(eelsvae_scorer_options, window_lo);
    assert_ok(eelsvae_scorer_create(&opt, &s));
    assert_int_equal(eelsvae_scorer_direction(s), EELSVAE_ANOMALOUS_ABOVE);
    float a[20] = {0}, b[20] = {0};
    for (int i = 0; i < 20; i++) b[i] = (i >= 9 && i <= 13) ? 2.0f : 100.0f; /* MSE 4 inside, 10^4 outside */
    eelsvae_cube *ca = cube_of(a, 1, 1, 20, 600.0, 10.0), *cb = cube_of(b, 1, 1, 20, 600.0, 10.0);
    float score = 0;
    assert_ok(eelsvae_scorer_score(s, ca, cb, &score, 1, NULL));
    assert_close(score, (5 * 4.0 + 15 * 1e4) / 20, 0.0, 1e-7); /* every channel: 7501 */
    eelsvae_scorer_free(s);
    /* The paper's window, set by a caller whose struct holds it: channels 9…13 only. */
    s = scorer_of(EELSVAE_SCORE_MSE, 690.0, 730.0);
    assert_ok(eelsvae_scorer_score(s, ca, cb, &score, 1, NULL));
    assert_close(score, 4.0, 0.0, 1e-7);
    eelsvae_scorer_free(s);
    eelsvae_cube_free(ca);
    eelsvae_cube_free(cb);
}

/* ---- PCC ---------------------------------------------------------------------- */

static void test_pcc_by_hand(void **state)
{
    (void)state;
    /* Every pixel compares a = [1, 2, 3] (mean 2, deviations −1, 0, 1, Σd² = 2) with:
     *   [2, 4, 6]: b = 2a                         → r = 1
     *   [3, 2, 1]: deviations 1, 0, −1            → r = −2/2 = −1
     *   [1, 3, 2]: deviations −1, 1, 0; Σdadb = 1 → r = 1/√(2·2) = 0.5
     *   [2, 1, 4]: mean 7/3, deviations −1/3, −4/3, 5/3; Σdadb = 1/3 + 5/3 = 2,
     *              Σdb² = (1 + 16 + 25)/9 = 14/3  → r = 2/√(28/3) = √(3/7) */
    const float orig[] = {1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3};
    const float recon[] = {2, 4, 6, 3, 2, 1, 1, 3, 2, 2, 1, 4};
    float pcc[4] = {0};
    size_t degenerate = score_samples(EELSVAE_SCORE_PCC, orig, recon, 4, 3, 0.0, 2.0, pcc);
    assert_close(pcc[0], 1.0, 1e-7, 0);
    assert_close(pcc[1], -1.0, 1e-7, 0);
    assert_close(pcc[2], 0.5, 1e-7, 0);
    assert_close(pcc[3], sqrt(3.0 / 7.0), 1e-7, 0);
    assert_int_equal(degenerate, 0);
}

static void test_pcc_window_only(void **state)
{
    (void)state;
    /* Energy 100 + 10·i eV, i < 10. The window 125…155 eV holds channels
     * 3, 4, 5 (130, 140, 150 eV) only; 130…150 the same. Everything outside
     * is garbage, NaN and infinity included, and must not matter. */
    float orig[10], recon[10];
    for (int i = 0; i < 10; i++) {
        orig[i] = (float)(1e6 * (i + 1));
        recon[i] = -orig[i];
    }
    orig[0] = NAN_F;
    recon[9] = INFINITY;
    orig[3] = 1, orig[4] = 2, orig[5] = 3;
    recon[3] = 1, recon[4] = 3, recon[5] = 2; /* r = 0.5 (see test_pcc_by_hand) */
    eelsvae_cube *a = cube_of(orig, 1, 1, 10, 100.0, 10.0), *b = cube_of(recon, 1, 1, 10, 100.0, 10.0);
    const double windows[][2] = {{125.0, 155.0}, {130.0, 150.0}, {129.9999999, 150.0000001}};
    for (size_t w = 0; w < 3; w++) {
        eelsvae_scorer *s = scorer_of(EELSVAE_SCORE_PCC, windows[w][0], windows[w][1]);
        float score = 0;
        size_t degenerate = 99;
        assert_ok(eelsvae_scorer_score(s, a, b, &score, 1, &degenerate));
        assert_close(score, 0.5, 1e-7, 0);
        assert_int_equal(degenerate, 0);
        eelsvae_scorer_free(s);
    }
    /* Widened by one channel on the right (160 eV = channel 6: orig 7e6,
     * recon −7e6) the garbage enters and the score changes. */
    eelsvae_scorer *s = scorer_of(EELSVAE_SCORE_PCC, 130.0, 160.0);
    float score = 0;
    assert_ok(eelsvae_scorer_score(s, a, b, &score, 1, NULL));
    assert_true(score < 0.0f);
    eelsvae_scorer_free(s);
    /* Widened on the left to channel 0, NaN enters: NUMERIC. */
    s = scorer_of(EELSVAE_SCORE_PCC, 100.0, 150.0);
    score = 42.0f;
    assert_status(eelsvae_scorer_score(s, a, b, &score, 1, NULL), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "original"));
    assert_close(score, 42.0, 0, 0); /* untouched on failure */
    eelsvae_scorer_free(s);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* Pearson's r of n samples, in double. */
static double pcc_of(const float *a, const float *b, size_t n)
{
    double ma = 0, mb = 0, sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < n; i++) ma += a[i], mb += b[i];
    ma /= (double)n, mb /= (double)n;
    for (size_t i = 0; i < n; i++) {
        sab += (a[i] - ma) * (b[i] - mb);
        saa += (a[i] - ma) * (a[i] - ma);
        sbb += (b[i] - mb) * (b[i] - mb);
    }
    return sab / sqrt(saa * sbb);
}

static void test_default_window_is_whole_axis(void **state)
{
    (void)state;
    /* 600 + 10·i eV, i < 20: 690…730 eV is channels 9…13. There orig = 1…5 and
     * recon = 5…1 (r = −1); elsewhere recon equals orig. The default window
     * (NaN … NaN) takes all 20 channels, so r is that of the whole spectra
     * (positive: 15 of 20 channels agree); the paper's 690–730 eV, asked
     * for explicitly, still gives −1. */
    float orig[20], recon[20];
    for (int i = 0; i < 20; i++) orig[i] = recon[i] = (float)((i * 7) % 11);
    for (int i = 0; i < 5; i++) {
        orig[9 + i] = (float)(1 + i);
        recon[9 + i] = (float)(5 - i);
    }
    const double whole = pcc_of(orig, recon, 20);
    assert_true(whole > 0.5 && whole < 1.0);
    eelsvae_cube *a = cube_of(orig, 1, 1, 20, 600.0, 10.0), *b = cube_of(recon, 1, 1, 20, 600.0, 10.0);
    eelsvae_scorer_options opt;
    assert_ok(eelsvae_scorer_options_init(&opt));
    assert_true(isnan(opt.window_lo) && isnan(opt.window_hi));
    eelsvae_scorer *s = NULL;
    assert_ok(eelsvae_scorer_create(&opt, &s));
    float score = 0;
    size_t degenerate = 99;
    assert_ok(eelsvae_scorer_score(s, a, b, &score, 1, &degenerate));
    assert_close(score, whole, 1e-6, 0);
    assert_int_equal(degenerate, 0);

    /* The whole axis reads no eV: an uncalibrated cube (channel numbers) scores
     * the same, where any eV window refuses it. */
    eelsvae_cube *ua = NULL, *ub = NULL;
    assert_ok(eelsvae_cube_create_from(orig, 1, 1, 20, &ua));
    assert_ok(eelsvae_cube_create_from(recon, 1, 1, 20, &ub));
    float raw = 0;
    assert_ok(eelsvae_scorer_score(s, ua, ub, &raw, 1, NULL));
    assert_close(raw, score, 0, 0);
    eelsvae_scorer_free(s);

    s = scorer_of(EELSVAE_SCORE_PCC, 690.0, 730.0);
    assert_ok(eelsvae_scorer_score(s, a, b, &score, 1, NULL));
    assert_close(score, -1.0, 1e-7, 0);
    assert_status(eelsvae_scorer_score(s, ua, ub, &raw, 1, NULL), EELSVAE_ERR_RANGE);
    eelsvae_scorer_free(s);
    /* An explicit window over the whole axis (600 … 790 eV) is the default's result. */
    s = scorer_of(EELSVAE_SCORE_PCC, 600.0, 790.0);
    assert_ok(eelsvae_scorer_score(s, a, b, &raw, 1, NULL));
    assert_close(raw, whole, 1e-6, 0);
    eelsvae_scorer_free(s);
    eelsvae_cube_free(ua);
    eelsvae_cube_free(ub);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* ---- MSE and spectral angle ---------------------------------------------------- */

static void test_mse_and_angle_by_hand(void **state)
{
    (void)state;
    /* pixel  a          b             MSE                  angle
     *   0   [1,2,3]    [3,2,1]     (4+0+4)/3 = 8/3      acos(10/14)
     *   1   [1,0,0]    [0,1,0]     (1+1+0)/3 = 2/3      π/2
     *   2   [1,1,0]    [1,0,0]     (0+1+0)/3 = 1/3      acos(1/√2) = π/4
     *   3   [1,2,3]    [-1,-2,-3]  (4+16+36)/3 = 56/3   π            */
    const float orig[] = {1, 2, 3, 1, 0, 0, 1, 1, 0, 1, 2, 3};
    const float recon[] = {3, 2, 1, 0, 1, 0, 1, 0, 0, -1, -2, -3};
    float mse[4] = {0}, angle[4] = {0};
    assert_int_equal(score_samples(EELSVAE_SCORE_MSE, orig, recon, 4, 3, 0.0, 2.0, mse), 0);
    assert_close(mse[0], 8.0 / 3.0, 0, 1e-7);
    assert_close(mse[1], 2.0 / 3.0, 0, 1e-7);
    assert_close(mse[2], 1.0 / 3.0, 0, 1e-7);
    assert_close(mse[3], 56.0 / 3.0, 0, 1e-7);
    assert_int_equal(score_samples(EELSVAE_SCORE_SPECTRAL_ANGLE, orig, recon, 4, 3, 0.0, 2.0, angle), 0);
    assert_close(angle[0], acos(10.0 / 14.0), 1e-6, 0);
    assert_close(angle[1], M_PI / 2, 1e-6, 0);
    assert_close(angle[2], M_PI / 4, 1e-6, 0);
    assert_close(angle[3], M_PI, 1e-6, 0);
}

static void test_degenerate_cases(void **state)
{
    (void)state;
    /* PCC: pixel 0 constant vs varying → 0; 1 varying vs constant → 0;
     * 2 equal constants → 1; 3 different constants → 0; 4 ordinary
     * ([1,2,3] vs [1,3,2] → 0.5, not counted). Four degenerate pixels. */
    const float orig[] = {2, 2, 2, 1, 2, 3, 2, 2, 2, 2, 2, 2, 1, 2, 3};
    const float recon[] = {1, 2, 3, 5, 5, 5, 2, 2, 2, 3, 3, 3, 1, 3, 2};
    float pcc[5] = {0};
    size_t degenerate = score_samples(EELSVAE_SCORE_PCC, orig, recon, 5, 3, 0.0, 2.0, pcc);
    assert_close(pcc[0], 0.0, 0, 0);
    assert_close(pcc[1], 0.0, 0, 0);
    assert_close(pcc[2], 1.0, 0, 0);
    assert_close(pcc[3], 0.0, 0, 0);
    assert_close(pcc[4], 0.5, 1e-7, 0);
    assert_int_equal(degenerate, 4);

    /* Large constant offsets must still count as constant (a sum of equal
     * floats is exact in double). */
    const float big_orig[] = {1e7f + 1, 1e7f + 1, 1e7f + 1, 1e7f + 1};
    const float big_recon[] = {1, 2, 3, 4};
    float r = 5;
    assert_int_equal(score_samples(EELSVAE_SCORE_PCC, big_orig, big_recon, 1, 4, 0.0, 3.0, &r), 1);
    assert_close(r, 0.0, 0, 0);

    /* Spectral angle: zero vs non-zero → π/2, both zero → 0, non-zero vs
     * zero → π/2; pixel 3 ordinary (parallel spectra, angle 0). */
    const float a[] = {0, 0, 0, 0, 0, 0, 1, 2, 3, 1, 2, 3};
    const float b[] = {1, 2, 3, 0, 0, 0, 0, 0, 0, 2, 4, 6};
    float angle[4] = {0};
    degenerate = score_samples(EELSVAE_SCORE_SPECTRAL_ANGLE, a, b, 4, 3, 0.0, 2.0, angle);
    assert_close(angle[0], M_PI / 2, 1e-7, 0);
    assert_close(angle[1], 0.0, 0, 0);
    assert_close(angle[2], M_PI / 2, 1e-7, 0);
    assert_close(angle[3], 0.0, 1e-6, 0); /* acos near 1 turns a 1e-16 rounding into ~1e-8 rad */
    assert_int_equal(degenerate, 3);

    /* MSE has no degenerate case, even for constant or zero spectra. */
    float mse[4] = {0};
    assert_int_equal(score_samples(EELSVAE_SCORE_MSE, a, b, 4, 3, 0.0, 2.0, mse), 0);
    assert_close(mse[0], 14.0 / 3.0, 0, 1e-7);
    assert_close(mse[1], 0.0, 0, 0);
}

static void test_score_deterministic_across_threads(void **state)
{
    (void)state;
    eelsvae_cube *a = random_ev_cube(17, 13, 64, 11), *b = random_ev_cube(17, 13, 64, 12);
    /* The chi-square too: its noise model's second pass scores pixels in parallel. */
    eelsvae_score_kind kinds[] = {EELSVAE_SCORE_PCC, EELSVAE_SCORE_CHI2};
    for (size_t k = 0; k < 2; k++) {
        eelsvae_scorer *s = scorer_of(kinds[k], 5.0, 50.0);
        float one[17 * 13], two[17 * 13];
        int saved = eelsvae_threads();
        assert_ok(eelsvae_set_threads(1));
        assert_ok(eelsvae_scorer_score(s, a, b, one, 17 * 13, NULL));
        assert_ok(eelsvae_set_threads(2));
        assert_ok(eelsvae_scorer_score(s, a, b, two, 17 * 13, NULL));
        assert_memory_equal(one, two, sizeof one);
        assert_ok(eelsvae_set_threads(saved));
        eelsvae_scorer_free(s);
    }
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* ---- Otsu ---------------------------------------------------------------------- */

static void test_otsu_by_hand(void **state)
{
    (void)state;
    double t = -1;
    /* {0, 1.5, 3, 3, 3}, 3 bins over [0, 3]: edges 0, 1, 2, 3, counts
     * [1, 1, 3] (3 sits on the last edge, which the last bin holds), centres
     * 0.5, 1.5, 2.5.
     *   split after bin 0: w1 = 1, m1 = 0.5; w2 = 4, m2 = (1.5 + 7.5)/4 = 2.25;
     *                      1·4·1.75² = 12.25
     *   split after bin 1: w1 = 2, m1 = 1;   w2 = 3, m2 = 2.5; 2·3·1.5² = 13.5
     * → the centre of bin 1, 1.5. */
    const float up[] = {0, 1.5f, 3, 3, 3};
    assert_ok(eelsvae_otsu_threshold(up, 5, 3, &t));
    assert_close(t, 1.5, 0, 0);
    /* Mirrored, {0, 0, 0, 1.5, 3}: counts [3, 1, 1], variances 13.5, 12.25 → 0.5. */
    const float down[] = {0, 0, 0, 1.5f, 3};
    assert_ok(eelsvae_otsu_threshold(down, 5, 3, &t));
    assert_close(t, 0.5, 0, 0);
    /* {0, 0.25, 1.25, 3.75, 4}, 4 bins over [0, 4]: counts [2, 1, 0, 2].
     * Splits after bin 1 and bin 2 part the values alike (bin 2 is empty), so
     * their variances are equal (3·2·(5/6 − 3.5)² = 42.67 > 2·3·(0.5 − 17/6)²
     * = 32.67 after bin 0); argmax keeps the first: centre 1.5. */
    const float tie[] = {0, 0.25f, 1.25f, 3.75f, 4};
    assert_ok(eelsvae_otsu_threshold(tie, 5, 4, &t));
    assert_close(t, 1.5, 0, 0);
    /* Two bins leave a single split: the first centre, 1 for [0, 4]. */
    const float two[] = {0, 1, 3, 4};
    assert_ok(eelsvae_otsu_threshold(two, 4, 2, &t));
    assert_close(t, 1.0, 0, 0);
    /* All equal, or a single score: that value. */
    const float same[] = {0.7f, 0.7f, 0.7f};
    assert_ok(eelsvae_otsu_threshold(same, 3, 256, &t));
    assert_close(t, 0.7f, 0, 0);
    assert_ok(eelsvae_otsu_threshold(same, 1, 2, &t));
    assert_close(t, 0.7f, 0, 0);
}

static void test_threshold_mask(void **state)
{
    (void)state;
    const float s[] = {0.1f, 0.5f, 0.5f, 0.9f, -3.0f};
    uint8_t m[5] = {7, 7, 7, 7, 7};
    assert_ok(eelsvae_threshold_mask(s, 5, 0.5f, EELSVAE_ANOMALOUS_BELOW, m));
    const uint8_t below[] = {1, 1, 1, 0, 1};
    assert_memory_equal(m, below, 5);
    assert_ok(eelsvae_threshold_mask(s, 5, 0.5f, EELSVAE_ANOMALOUS_ABOVE, m));
    const uint8_t above[] = {0, 0, 0, 1, 0};
    assert_memory_equal(m, above, 5);
    /* Otsu's threshold is a bin centre; the mask takes it as given. */
    assert_ok(eelsvae_threshold_mask(s, 5, INFINITY, EELSVAE_ANOMALOUS_BELOW, m));
    const uint8_t all[] = {1, 1, 1, 1, 1};
    assert_memory_equal(m, all, 5);
}

/* ---- metrics -------------------------------------------------------------------- */

static eelsvae_metrics metrics_of(const uint8_t *pred, const uint8_t *truth, size_t n)
{
    eelsvae_metrics m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    assert_ok(eelsvae_metrics_compute(pred, truth, n, &m));
    return m;
}

static void test_metrics_by_hand(void **state)
{
    (void)state;
    /*            0  1  2  3  4  5  6  7  8  9
     * predicted  1  1  1  0  0  0  0  0  0  0
     * truth      1  1  0  1  0  0  0  0  0  1
     * TP = 2 (0, 1), FP = 1 (2), FN = 2 (3, 9), TN = 5.
     * P = 2/3, R = 1/2, F1 = 2·(1/3)/(7/6) = 4/7, IoU = 2/5.
     * Any non-zero byte means anomalous. */
    const uint8_t pred[10] = {1, 255, 7, 0, 0, 0, 0, 0, 0, 0};
    const uint8_t truth[10] = {1, 1, 0, 2, 0, 0, 0, 0, 0, 128};
    eelsvae_metrics m = metrics_of(pred, truth, 10);
    assert_int_equal(m.struct_size, sizeof m);
    assert_int_equal(m.true_positive, 2);
    assert_int_equal(m.false_positive, 1);
    assert_int_equal(m.false_negative, 2);
    assert_int_equal(m.true_negative, 5);
    assert_close(m.precision, 2.0 / 3.0, 1e-15, 0);
    assert_close(m.recall, 0.5, 1e-15, 0);
    assert_close(m.f1, 4.0 / 7.0, 1e-15, 0);
    assert_close(m.iou, 0.4, 1e-15, 0);

    /* Both masks empty: everything agrees, all ratios 1. */
    const uint8_t none[10] = {0};
    m = metrics_of(none, none, 10);
    assert_int_equal(m.true_negative, 10);
    assert_close(m.precision, 1.0, 0, 0);
    assert_close(m.recall, 1.0, 0, 0);
    assert_close(m.f1, 1.0, 0, 0);
    assert_close(m.iou, 1.0, 0, 0);
    /* Nothing predicted, something true: P's denominator is 0 → 0; R = 0. */
    m = metrics_of(none, truth, 10);
    assert_int_equal(m.false_negative, 4);
    assert_close(m.precision, 0.0, 0, 0);
    assert_close(m.recall, 0.0, 0, 0);
    assert_close(m.f1, 0.0, 0, 0);
    assert_close(m.iou, 0.0, 0, 0);
    /* Something predicted, nothing true: R's denominator is 0 → 0; P = 0. */
    m = metrics_of(pred, none, 10);
    assert_int_equal(m.false_positive, 3);
    assert_close(m.precision, 0.0, 0, 0);
    assert_close(m.recall, 0.0, 0, 0);
    assert_close(m.f1, 0.0, 0, 0);
    assert_close(m.iou, 0.0, 0, 0);
}

static void test_metrics_struct_size(void **state)
{
    (void)state;
    const uint8_t pred[4] = {1, 1, 0, 0}, truth[4] = {1, 0, 1, 0};
    /* An older, shorter struct ending after precision: recall, f1, iou untouched. */
    eelsvae_metrics m;
    memset(&m, 0, sizeof m);
    m.recall = m.f1 = m.iou = -7.0;
    m.struct_size = offsetof(eelsvae_metrics, recall);
    assert_ok(eelsvae_metrics_compute(pred, truth, 4, &m));
    assert_int_equal(m.struct_size, offsetof(eelsvae_metrics, recall));
    assert_int_equal(m.true_positive, 1);
    assert_int_equal(m.true_negative, 1);
    assert_close(m.precision, 0.5, 0, 0);
    assert_close(m.recall, -7.0, 0, 0);
    assert_close(m.iou, -7.0, 0, 0);
    /* A newer, longer struct: what follows ours is left alone. */
    struct {
        eelsvae_metrics m;
        double later;
    } big;
    memset(&big, 0, sizeof big);
    big.m.struct_size = sizeof big;
    big.later = -9.0;
    assert_ok(eelsvae_metrics_compute(pred, truth, 4, &big.m));
    assert_int_equal(big.m.struct_size, sizeof big);
    assert_close(big.m.iou, 1.0 / 3.0, 1e-15, 0);
    assert_close(big.later, -9.0, 0, 0);
    /* Too short to hold the counts, or unset. */
    m.struct_size = offsetof(eelsvae_metrics, true_negative);
    assert_status(eelsvae_metrics_compute(pred, truth, 4, &m), EELSVAE_ERR_INVALID_ARGUMENT);
    m.struct_size = 0;
    assert_status(eelsvae_metrics_compute(pred, truth, 4, &m), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* ---- ROC-AUC and average precision --------------------------------------------- */

static void test_roc_auc_by_hand(void **state)
{
    (void)state;
    double auc = -1;
    /* Negatives {1, 2}, positives {2, 2}. Each positive beats negative 1 (1)
     * and ties negative 2 (½): U = 2·1.5 = 3 of 4 pairs → 0.75. */
    const float tied[] = {1, 2, 2, 2};
    const uint8_t truth[] = {0, 0, 1, 1};
    assert_ok(eelsvae_roc_auc(tied, truth, 4, EELSVAE_ANOMALOUS_ABOVE, &auc));
    assert_close(auc, 0.75, 0, 0);
    /* Low scores anomalous: −score; positives now lose to −1 and tie −2: 0.25. */
    assert_ok(eelsvae_roc_auc(tied, truth, 4, EELSVAE_ANOMALOUS_BELOW, &auc));
    assert_close(auc, 0.25, 0, 0);
    /* scikit-learn's docs example: neg {0.1, 0.4}, pos {0.35, 0.8}: pairs won
     * 0.35>0.1, 0.8>0.1, 0.8>0.4 → 3/4. */
    const float docs[] = {0.1f, 0.4f, 0.35f, 0.8f};
    assert_ok(eelsvae_roc_auc(docs, truth, 4, EELSVAE_ANOMALOUS_ABOVE, &auc));
    assert_close(auc, 0.75, 0, 0);
    /* Perfect separation, interleaved input order, three classes of ties. */
    const float perfect[] = {0.9f, 0.1f, 0.9f, 0.1f, 0.5f, 0.1f};
    const uint8_t ptruth[] = {1, 0, 1, 0, 1, 0};
    assert_ok(eelsvae_roc_auc(perfect, ptruth, 6, EELSVAE_ANOMALOUS_ABOVE, &auc));
    assert_close(auc, 1.0, 0, 0);
    assert_ok(eelsvae_roc_auc(perfect, ptruth, 6, EELSVAE_ANOMALOUS_BELOW, &auc));
    assert_close(auc, 0.0, 0, 0);
    /* All scores equal: every pair ties → 0.5. */
    const float flat[] = {3, 3, 3, 3};
    assert_ok(eelsvae_roc_auc(flat, truth, 4, EELSVAE_ANOMALOUS_ABOVE, &auc));
    assert_close(auc, 0.5, 0, 0);
}

static void test_pr_auc_by_hand(void **state)
{
    (void)state;
    double ap = -1;
    /* scikit-learn's docs example, scores 0.1 0.4 0.35 0.8, truth 0 0 1 1.
     * Thresholds from the top: 0.8 → TP 1 of 1 predicted: P = 1, R = ½;
     * 0.4 → P = ½, R = ½ (no recall step); 0.35 → P = 2/3, R = 1; 0.1 no step.
     * AP = ½·1 + ½·(2/3) = 5/6. */
    const float docs[] = {0.1f, 0.4f, 0.35f, 0.8f};
    const uint8_t truth[] = {0, 0, 1, 1};
    assert_ok(eelsvae_pr_auc(docs, truth, 4, EELSVAE_ANOMALOUS_ABOVE, &ap));
    assert_close(ap, 5.0 / 6.0, 1e-15, 0);
    /* BELOW ranks by −score: 0.1 (neg), 0.35 (pos: P = ½, R = ½), 0.4 (neg),
     * 0.8 (pos: P = 2/4, R = 1) → AP = ½·½ + ½·½ = ½. */
    assert_ok(eelsvae_pr_auc(docs, truth, 4, EELSVAE_ANOMALOUS_BELOW, &ap));
    assert_close(ap, 0.5, 1e-15, 0);
    /* A tie is one threshold: scores 2 2 1 1, truth 0 1 1 0 → at 2: P = ½,
     * R = ½; at 1: P = 2/4, R = 1 → AP = ½. (Taking the positive of a tie
     * first would give 1·½ + ½·½ = ¾.) */
    const float tied[] = {2, 2, 1, 1};
    const uint8_t ttruth[] = {0, 1, 1, 0};
    assert_ok(eelsvae_pr_auc(tied, ttruth, 4, EELSVAE_ANOMALOUS_ABOVE, &ap));
    assert_close(ap, 0.5, 1e-15, 0);
    /* No normal pixel: precision is always 1 → AP = 1. */
    const uint8_t all[] = {1, 1, 1, 1};
    assert_ok(eelsvae_pr_auc(docs, all, 4, EELSVAE_ANOMALOUS_ABOVE, &ap));
    assert_close(ap, 1.0, 1e-15, 0);
}

/* ---- histograms ------------------------------------------------------------------ */

static void test_histogram_by_hand(void **state)
{
    (void)state;
    /* 4 bins over [0, 1]: [0, .25) [.25, .5) [.5, .75) [.75, 1]; outside values
     * clamp into the end bins.
     *  score  −1   0   .24  .25  .5   .99  1    2    −inf  inf
     *  truth   0   1   0    0    1    0    1    1    0     1
     *  bin     0   0   0    1    2    3    3    3    0     3  */
    const float s[] = {-1, 0, 0.24f, 0.25f, 0.5f, 0.99f, 1, 2, -INFINITY, INFINITY};
    const uint8_t truth[] = {0, 1, 0, 0, 1, 0, 1, 1, 0, 1};
    uint64_t normal[4], anomalous[4];
    memset(normal, 0xFF, sizeof normal);
    memset(anomalous, 0xFF, sizeof anomalous);
    assert_ok(eelsvae_score_histogram(s, truth, 10, 0.0, 1.0, 4, normal, anomalous));
    const uint64_t want_normal[] = {3, 1, 0, 1}, want_anomalous[] = {1, 0, 1, 3};
    assert_memory_equal(normal, want_normal, sizeof normal);
    assert_memory_equal(anomalous, want_anomalous, sizeof anomalous);
    /* One bin takes everything. */
    uint64_t n1 = 0, a1 = 0;
    assert_ok(eelsvae_score_histogram(s, truth, 10, 0.0, 1.0, 1, &n1, &a1));
    assert_int_equal(n1, 5);
    assert_int_equal(a1, 5);
}

/* ---- bad input -------------------------------------------------------------------- */

static void test_bad_input(void **state)
{
    (void)state;
    eelsvae_scorer_options opt;
    eelsvae_scorer *s = NULL;
    assert_status(eelsvae_scorer_options_init_sized(NULL, sizeof(eelsvae_scorer_options)),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(eelsvae_scorer_options_init(&opt));
    assert_status(eelsvae_scorer_create(NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_scorer_create(&opt, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    opt.struct_size = 0;
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(eelsvae_scorer_options_init(&opt));
    opt.kind = (eelsvae_score_kind)7;
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(eelsvae_scorer_options_init(&opt));
    opt.window_lo = 730, opt.window_hi = 690;
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    opt.window_lo = NAN; /* one end NaN: only both NaN mean the whole axis */
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    opt.window_lo = 690, opt.window_hi = NAN;
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    opt.window_lo = -INFINITY, opt.window_hi = INFINITY;
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(s);

    /* Scoring: a 2×3×10 cube on 0…9 eV. */
    eelsvae_cube *a = random_ev_cube(2, 3, 10, 1), *b = random_ev_cube(2, 3, 10, 2);
    eelsvae_cube *other = tu_random_cube(3, 2, 10, 3), *shorter = tu_random_cube(2, 3, 9, 4);
    s = scorer_of(EELSVAE_SCORE_PCC, 2.0, 6.0);
    float out[6];
    for (int i = 0; i < 6; i++) out[i] = 42.0f;
    assert_status(eelsvae_scorer_score(NULL, a, b, out, 6, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_scorer_score(s, NULL, b, out, 6, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_scorer_score(s, a, NULL, out, 6, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_scorer_score(s, a, b, NULL, 6, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_scorer_score(s, a, b, out, 5, NULL), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_scorer_score(s, a, other, out, 6, NULL), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_scorer_score(s, a, shorter, out, 6, NULL), EELSVAE_ERR_DIMENSION);
    eelsvae_scorer *outside = scorer_of(EELSVAE_SCORE_PCC, 20.0, 30.0);
    assert_status(eelsvae_scorer_score(outside, a, b, out, 6, NULL), EELSVAE_ERR_RANGE);
    eelsvae_scorer_free(outside);
    outside = scorer_of(EELSVAE_SCORE_PCC, 690.0, 730.0); /* the paper's Fe L window, far past 0 … 9 eV */
    assert_status(eelsvae_scorer_score(outside, a, b, out, 6, NULL), EELSVAE_ERR_RANGE);
    eelsvae_scorer_free(outside);
    /* An uncalibrated original (channel numbers): refused by any eV window (the
     * default, the whole axis, reads no eV: see test_default_window_is_whole_axis). */
    eelsvae_cube *channels = tu_random_cube(2, 3, 10, 5);
    assert_status(eelsvae_scorer_score(s, channels, b, out, 6, NULL), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_scorer_score"));
    assert_non_null(strstr(eelsvae_last_error(), "uncalibrated"));
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_set_axis"));
    eelsvae_cube_free(channels);
    /* A NaN in the reconstruction at pixel (1, 2), channel 4: named. */
    eelsvae_cube_data(b)[(1 * 3 + 2) * 10 + 4] = NAN_F;
    assert_status(eelsvae_scorer_score(s, a, b, out, 6, NULL), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "reconstruction"));
    assert_non_null(strstr(eelsvae_last_error(), "y 1, x 2"));
    /* An infinity in the original at an earlier pixel (0, 1) is reported first. */
    eelsvae_cube_data(a)[(0 * 3 + 1) * 10 + 2] = -INFINITY;
    assert_status(eelsvae_scorer_score(s, a, b, out, 6, NULL), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "original"));
    assert_non_null(strstr(eelsvae_last_error(), "y 0, x 1"));
    for (int i = 0; i < 6; i++) assert_close(out[i], 42.0, 0, 0); /* untouched by every failure */
    eelsvae_scorer_free(s);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
    eelsvae_cube_free(other);
    eelsvae_cube_free(shorter);

    /* Otsu. */
    const float v[] = {0.1f, 0.2f, NAN_F};
    double t = 42;
    assert_status(eelsvae_otsu_threshold(NULL, 2, 4, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_otsu_threshold(v, 2, 4, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_otsu_threshold(v, 0, 4, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_otsu_threshold(v, 2, 1, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_otsu_threshold(v, 2, 0, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_otsu_threshold(v, 3, 4, &t), EELSVAE_ERR_NUMERIC);
    const float inf[] = {0.1f, INFINITY};
    assert_status(eelsvae_otsu_threshold(inf, 2, 4, &t), EELSVAE_ERR_NUMERIC);
    assert_close(t, 42, 0, 0);

    /* Masks. */
    uint8_t mask[3] = {0};
    assert_status(eelsvae_threshold_mask(NULL, 3, 0.5, EELSVAE_ANOMALOUS_BELOW, mask), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_threshold_mask(v, 3, 0.5, EELSVAE_ANOMALOUS_BELOW, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_threshold_mask(v, 0, 0.5, EELSVAE_ANOMALOUS_BELOW, mask), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_threshold_mask(v, 3, NAN, EELSVAE_ANOMALOUS_BELOW, mask), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_threshold_mask(v, 3, 0.5, (eelsvae_direction)5, mask), EELSVAE_ERR_INVALID_ARGUMENT);

    /* Metrics. */
    eelsvae_metrics m;
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    const uint8_t p[3] = {1, 0, 1};
    assert_status(eelsvae_metrics_compute(NULL, p, 3, &m), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_metrics_compute(p, NULL, 3, &m), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_metrics_compute(p, p, 3, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_metrics_compute(p, p, 0, &m), EELSVAE_ERR_INVALID_ARGUMENT);

    /* ROC-AUC and AP: NULLs, no scores, an empty class, NaN, bad direction. */
    const float f[3] = {0.1f, 0.2f, 0.3f};
    const uint8_t ones[3] = {1, 1, 1}, zeros[3] = {0, 0, 0};
    double r = 42;
    assert_status(eelsvae_roc_auc(NULL, p, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_roc_auc(f, NULL, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_roc_auc(f, p, 3, EELSVAE_ANOMALOUS_ABOVE, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_roc_auc(f, p, 0, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_roc_auc(f, ones, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_roc_auc(f, zeros, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_roc_auc(v, p, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_NUMERIC);
    assert_status(eelsvae_roc_auc(f, p, 3, (eelsvae_direction)-1, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pr_auc(NULL, p, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pr_auc(f, NULL, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pr_auc(f, p, 3, EELSVAE_ANOMALOUS_ABOVE, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pr_auc(f, p, 0, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pr_auc(f, zeros, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pr_auc(v, p, 3, EELSVAE_ANOMALOUS_ABOVE, &r), EELSVAE_ERR_NUMERIC);
    assert_close(r, 42, 0, 0);

    /* Histograms. */
    uint64_t hn[2] = {9, 9}, ha[2] = {9, 9};
    assert_status(eelsvae_score_histogram(NULL, p, 3, 0, 1, 2, hn, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, NULL, 3, 0, 1, 2, hn, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, p, 3, 0, 1, 2, NULL, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, p, 3, 0, 1, 2, hn, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, p, 0, 0, 1, 2, hn, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, p, 3, 0, 1, 0, hn, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, p, 3, 1, 1, 2, hn, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(f, p, 3, 0, INFINITY, 2, hn, ha), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_histogram(v, p, 3, 0, 1, 2, hn, ha), EELSVAE_ERR_NUMERIC);
    assert_true(hn[0] == 9 && hn[1] == 9 && ha[0] == 9 && ha[1] == 9);
}

/* ---- explaining the flagged pixels ------------------------------------------------- */

/* The hand-built case: 2 × 2 pixels, 4 channels at 100 + 0.5·i eV; the top
 * row flagged. Over the window 100.5 … 101.5 eV (channels 1 … 3):
 *   flagged originals [2, 3, 4] and [4, 5, 6]   → mean [3, 4, 5]
 *   their reconstructions [1, 1, 1], [2, 2, 2] → mean [1.5, 1.5, 1.5]
 *   residual                                    → [1.5, 2.5, 3.5]
 *   bulk [10, 10, 10] and [0, 20, 0]            → mean [5, 15, 5]
 * Channel 0 holds NaN (bulk original) and infinity (flagged reconstruction):
 * outside the window they must not matter. */
static const float explain_orig[] = {5, 2, 3, 4, 3, 4, 5, 6, NAN_F, 10, 10, 10, 7, 0, 20, 0};
static const float explain_recon[] = {INFINITY, 1, 1, 1, 9, 2, 2, 2, 9, 8, 8, 8, 9, 7, 7, 7};
static const uint8_t explain_mask[] = {1, 2, 0, 0}; /* any non-zero byte flags */

typedef struct explain_out {
    double energy[4], flagged[4], recon[4], bulk[4], residual[4];
} explain_out;

static eelsvae_status explain_into(const eelsvae_cube *a, const eelsvae_cube *b, const uint8_t *mask, size_t mask_count,
                                   double lo, double hi, explain_out *o, size_t channels)
{
    return eelsvae_explain_means(a, b, mask, mask_count, lo, hi, o->energy, o->flagged, o->recon, o->bulk,
                                 o->residual, channels);
}

static void test_explain_means_by_hand(void **state)
{
    (void)state;
    eelsvae_cube *a = cube_of(explain_orig, 2, 2, 4, 100.0, 0.5), *b = cube_of(explain_recon, 2, 2, 4, 100.0, 0.5);
    const double energy[] = {100.5, 101.0, 101.5}, flagged[] = {3, 4, 5}, recon[] = {1.5, 1.5, 1.5},
                 bulk[] = {5, 15, 5}, residual[] = {1.5, 2.5, 3.5};
    explain_out o;
    assert_ok(explain_into(a, b, explain_mask, 4, 100.5, 101.5, &o, 3));
    for (size_t i = 0; i < 3; i++) {
        assert_close(o.energy[i], energy[i], 1e-12, 0);
        assert_close(o.flagged[i], flagged[i], 1e-12, 0);
        assert_close(o.recon[i], recon[i], 1e-12, 0);
        assert_close(o.bulk[i], bulk[i], 1e-12, 0);
        assert_close(o.residual[i], residual[i], 1e-12, 0);
    }
    /* Outputs may be NULL: the one asked for is the same. */
    double only[3] = {0};
    assert_ok(eelsvae_explain_means(a, b, explain_mask, 4, 100.5, 101.5, NULL, NULL, NULL, only, NULL, 3));
    for (size_t i = 0; i < 3; i++) assert_close(only[i], bulk[i], 1e-12, 0);
    /* Every pixel flagged: no bulk, so its mean is NaN; the rest are defined
     * (here over the last two channels, free of NaN and infinity). */
    const uint8_t all[] = {1, 1, 1, 1};
    assert_ok(explain_into(a, b, all, 4, 101.0, 101.5, &o, 2));
    assert_true(isnan(o.bulk[0]) && isnan(o.bulk[1]));
    assert_close(o.flagged[0], (3 + 5 + 10 + 20) / 4.0, 1e-12, 0);
    assert_close(o.recon[1], (1 + 2 + 8 + 7) / 4.0, 1e-12, 0);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

static void test_explain_means_whole_axis(void **state)
{
    (void)state;
    /* NaN … NaN is every channel, as for the scorer; the means against a
     * naive loop over a random cube and a striped mask. */
    enum { NY = 5, NX = 7, NE = 11 };
    eelsvae_cube *a = tu_calibrated_cube(NY, NX, NE, 3), *b = tu_calibrated_cube(NY, NX, NE, 4);
    uint8_t mask[NY * NX];
    size_t n_flagged = 0;
    for (size_t p = 0; p < NY * NX; p++) n_flagged += mask[p] = p % 3 == 0;
    double energy[NE], flagged[NE], recon[NE], bulk[NE], residual[NE];
    assert_ok(eelsvae_explain_means(a, b, mask, NY * NX, NAN, NAN, energy, flagged, recon, bulk, residual, NE));
    const float *x = eelsvae_cube_data_const(a), *y = eelsvae_cube_data_const(b);
    for (size_t i = 0; i < NE; i++) {
        double sf = 0, sr = 0, sb = 0;
        for (size_t p = 0; p < NY * NX; p++) {
            if (mask[p]) sf += x[p * NE + i], sr += y[p * NE + i];
            else sb += x[p * NE + i];
        }
        assert_close(energy[i], 280.5 + 0.05 * (double)i, 1e-9, 0);
        assert_close(flagged[i], sf / (double)n_flagged, 1e-12, 1e-12);
        assert_close(recon[i], sr / (double)n_flagged, 1e-12, 1e-12);
        assert_close(bulk[i], sb / (double)(NY * NX - n_flagged), 1e-12, 1e-12);
        assert_close(residual[i], flagged[i] - recon[i], 1e-12, 1e-12);
    }
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

static void test_explain_means_errors(void **state)
{
    (void)state;
    eelsvae_cube *a = cube_of(explain_orig, 2, 2, 4, 100.0, 0.5), *b = cube_of(explain_recon, 2, 2, 4, 100.0, 0.5);
    explain_out o;
    for (size_t i = 0; i < 4; i++) o.flagged[i] = 42;
    const uint8_t none[] = {0, 0, 0, 0};
    assert_status(explain_into(a, b, none, 4, 100.5, 101.5, &o, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "no pixel is flagged"));
    assert_status(explain_into(a, b, explain_mask, 3, 100.5, 101.5, &o, 3), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "mask holds 3 pixels"));
    assert_status(explain_into(a, b, explain_mask, 4, 100.5, 101.5, &o, 4), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "the window holds 3"));
    assert_status(explain_into(a, b, explain_mask, 4, 200.0, 210.0, &o, 3), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_explain_means"));
    assert_status(explain_into(a, b, explain_mask, 4, NAN, 101.5, &o, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(explain_into(a, b, explain_mask, 4, 101.5, 100.5, &o, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(explain_into(NULL, b, explain_mask, 4, 100.5, 101.5, &o, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(explain_into(a, b, NULL, 4, 100.5, 101.5, &o, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    /* The whole axis takes in channel 0: the NaN of the original (the first
     * in row-major order is the flagged reconstruction's infinity, pixel 0). */
    assert_status(explain_into(a, b, explain_mask, 4, NAN, NAN, &o, 4), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "reconstruction cube holds inf at pixel (y 0, x 0), channel 0"));
    eelsvae_cube *small = cube_of(explain_orig, 1, 2, 4, 100.0, 0.5);
    assert_status(explain_into(a, small, explain_mask, 4, 100.5, 101.5, &o, 3), EELSVAE_ERR_DIMENSION);
    /* An uncalibrated energy axis takes no eV window. */
    eelsvae_cube *raw = NULL;
    assert_ok(eelsvae_cube_create_from(explain_orig, 2, 2, 4, &raw));
    assert_status(explain_into(raw, raw, explain_mask, 4, 1.0, 3.0, &o, 3), EELSVAE_ERR_RANGE);
    for (size_t i = 0; i < 4; i++) assert_close(o.flagged[i], 42, 0, 0); /* untouched on every failure */
    evae_fail_allocation_after(1);
    assert_status(explain_into(a, b, explain_mask, 4, 100.5, 101.5, &o, 3), EELSVAE_ERR_NOMEM);
    evae_fail_allocation_after(0);
    eelsvae_cube_free(raw);
    eelsvae_cube_free(small);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    eelsvae_scorer_options opt;
    assert_ok(eelsvae_scorer_options_init(&opt));
    eelsvae_scorer *s = NULL;
    evae_fail_allocation_after(1);
    assert_status(eelsvae_scorer_create(&opt, &s), EELSVAE_ERR_NOMEM);
    assert_null(s);
    const float v[] = {0.1f, 0.9f, 0.5f, 0.3f};
    const uint8_t truth[] = {0, 1, 1, 0};
    double t = 42;
    for (unsigned long k = 1; k <= 2; k++) {
        evae_fail_allocation_after(k);
        assert_status(eelsvae_otsu_threshold(v, 4, 8, &t), EELSVAE_ERR_NOMEM);
    }
    evae_fail_allocation_after(1);
    assert_status(eelsvae_roc_auc(v, truth, 4, EELSVAE_ANOMALOUS_ABOVE, &t), EELSVAE_ERR_NOMEM);
    evae_fail_allocation_after(1);
    assert_status(eelsvae_pr_auc(v, truth, 4, EELSVAE_ANOMALOUS_ABOVE, &t), EELSVAE_ERR_NOMEM);
    evae_fail_allocation_after(0);
    assert_close(t, 42, 0, 0);
    assert_ok(eelsvae_otsu_threshold(v, 4, 8, &t)); /* and the hook is off again */
}

/* ---- oracles ---------------------------------------------------------------------- */

/* Look up "name value" in the oracle's output; fails the test if absent. */
static double oracle_value(const char *text, const char *name)
{
    size_t len = strlen(name);
    for (const char *line = text; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (strncmp(line, name, len) == 0 && line[len] == ' ') return strtod(line + len + 1, NULL);
    fail_msg("oracle output has no %s", name);
    return NAN;
}

static int oracle_has(const char *text, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "\n%s ", name);
    return strstr(text, key) != NULL || strncmp(text, key + 1, strlen(key + 1)) == 0;
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    static char buf[1 << 16];
    size_t got = fread(buf, 1, sizeof buf - 1, f);
    buf[got] = '\0';
    fclose(f);
    assert_true(got < sizeof buf - 1);
    return buf;
}

#define ORACLE_N 3000
#define ORACLE_NY 6
#define ORACLE_NX 7
#define ORACLE_NE 48

static void test_against_oracles(void **state)
{
    (void)state;
    const char *python = tu_python();
    if (!python) tu_skip("no /usr/bin/python3 with NumPy (set EELSVAE_PYTHON)");
    char script[1200];
    snprintf(script, sizeof script, "%s/score_oracle.py", tu_data_dir());
    if (tu_system("%s -c 'import sklearn' >/dev/null 2>&1", python) != 0)
        tu_skip("scikit-learn is not installed for the oracle");

    /* Scores: normal pixels ~ U[0.6, 1), anomalous ~ U[0.2, 0.8), one in
     * three rounded to 0.01 so that ties occur within and across classes. */
    static float scores[ORACLE_N];
    static uint8_t truth[ORACLE_N];
    float u[ORACLE_N];
    tu_fill_uniform(u, ORACLE_N, 0.0, 1.0, 77);
    tu_fill_uniform(scores, ORACLE_N, 0.0, 1.0, 78);
    for (size_t i = 0; i < ORACLE_N; i++) {
        truth[i] = u[i] < 0.12f;
        scores[i] = truth[i] ? 0.2f + 0.6f * scores[i] : 0.6f + 0.4f * scores[i];
        if (i % 3 == 0) scores[i] = roundf(scores[i] * 100.0f) / 100.0f;
    }
    tu_write_file(tu_path("scores.f32"), scores, sizeof scores);
    tu_write_file(tu_path("truth.u8"), truth, sizeof truth);

    /* Cubes on 680 + 1.25·i eV: the window 690…730 is channels 8…40. The
     * reconstruction is the original plus noise, anti-correlated at some pixels. */
    const size_t pixels = ORACLE_NY * ORACLE_NX;
    eelsvae_cube *a = tu_random_cube(ORACLE_NY, ORACLE_NX, ORACLE_NE, 5);
    eelsvae_cube *b = tu_random_cube(ORACLE_NY, ORACLE_NX, ORACLE_NE, 6);
    assert_ok(eelsvae_cube_set_axis(a, EELSVAE_AXIS_E, 680.0, 1.25, "eV"));
    float *pa = eelsvae_cube_data(a), *pb = eelsvae_cube_data(b);
    for (size_t p = 0; p < pixels; p++)
        for (size_t e = 0; e < ORACLE_NE; e++) {
            float x = pa[p * ORACLE_NE + e], noise = pb[p * ORACLE_NE + e] - 0.5f;
            pb[p * ORACLE_NE + e] = (p % 5 == 0 ? 1.0f - x : 10.0f * x) + 0.3f * (float)(p % 4) * noise;
        }
    tu_write_file(tu_path("orig.f32"), pa, pixels * ORACLE_NE * sizeof(float));
    tu_write_file(tu_path("recon.f32"), pb, pixels * ORACLE_NE * sizeof(float));

    const int bins = 256;
    int rc = tu_system("%s %s %s %d %d %d %d %d 680 1.25 690 730", python, script, tu_tmpdir(), ORACLE_N, bins,
                       ORACLE_NY, ORACLE_NX, ORACLE_NE);
    assert_int_equal(rc, 0);
    const char *text = read_text(tu_path("oracle.txt"));
    assert_close(oracle_value(text, "window_channels"), 33, 0, 0);

    double v = 0;
    assert_ok(eelsvae_roc_auc(scores, truth, ORACLE_N, EELSVAE_ANOMALOUS_ABOVE, &v));
    assert_close(v, oracle_value(text, "roc_above"), 1e-6, 0);
    assert_ok(eelsvae_roc_auc(scores, truth, ORACLE_N, EELSVAE_ANOMALOUS_BELOW, &v));
    assert_close(v, oracle_value(text, "roc_below"), 1e-6, 0);
    assert_true(v > 0.8); /* the data are built to separate */
    assert_ok(eelsvae_pr_auc(scores, truth, ORACLE_N, EELSVAE_ANOMALOUS_ABOVE, &v));
    assert_close(v, oracle_value(text, "ap_above"), 1e-6, 0);
    assert_ok(eelsvae_pr_auc(scores, truth, ORACLE_N, EELSVAE_ANOMALOUS_BELOW, &v));
    assert_close(v, oracle_value(text, "ap_below"), 1e-6, 0);
    assert_ok(eelsvae_otsu_threshold(scores, ORACLE_N, (size_t)bins, &v));
    assert_close(v, oracle_value(text, "otsu_numpy"), 1e-6, 0);
    if (oracle_has(text, "otsu_skimage"))
        assert_close(v, oracle_value(text, "otsu_skimage"), 1e-6, 0);
    else
        print_message("note: skimage not importable; Otsu checked against the NumPy transcription only\n");

    eelsvae_score_kind kinds[] = {EELSVAE_SCORE_PCC, EELSVAE_SCORE_MSE, EELSVAE_SCORE_SPECTRAL_ANGLE};
    const char *names[] = {"pcc", "mse", "angle"};
    float map[ORACLE_NY * ORACLE_NX];
    for (int k = 0; k < 3; k++) {
        eelsvae_scorer *s = scorer_of(kinds[k], 690.0, 730.0);
        size_t degenerate = 99;
        assert_ok(eelsvae_scorer_score(s, a, b, map, pixels, &degenerate));
        assert_int_equal(degenerate, 0);
        for (size_t p = 0; p < pixels; p++) {
            char key[32];
            snprintf(key, sizeof key, "%s_%zu", names[k], p);
            assert_close(map[p], oracle_value(text, key), 1e-6, 1e-6);
        }
        eelsvae_scorer_free(s);
    }
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* The Otsu transcription must agree with skimage on awkward data too: few
 * distinct values, huge offsets, negative ranges, many bins. */
static void test_otsu_against_skimage_edge_cases(void **state)
{
    (void)state;
    const char *python = tu_python();
    if (!python) tu_skip("no /usr/bin/python3 with NumPy (set EELSVAE_PYTHON)");
    if (tu_system("%s -c 'import skimage' >/dev/null 2>&1", python) != 0)
        tu_skip("scikit-image is not installed; the NumPy transcription is checked in test_against_oracles");
    enum { N = 500, CASES = 4 };
    static float data[CASES][N];
    tu_fill_uniform(data[0], N, -1.0, 1.0, 3);
    for (size_t i = 0; i < N; i++) {
        data[1][i] = (float)(i % 3);                   /* three values */
        data[2][i] = 1000.0f + data[0][i] * 1e-3f;     /* narrow range far from 0 */
        data[3][i] = data[0][i] * data[0][i] * data[0][i]; /* skewed */
    }
    tu_write_file(tu_path("otsu_cases.f32"), data, sizeof data);
    const size_t bins[] = {2, 3, 17, 256, 1000};
    char script[1200];
    snprintf(script, sizeof script, "%s/score_otsu_cases.py", tu_data_dir());
    assert_int_equal(tu_system("%s %s %s %d %d 2 3 17 256 1000 > %s", python, script, tu_path("otsu_cases.f32"), CASES,
                               N, tu_path("otsu_cases.txt")),
                     0);
    const char *text = read_text(tu_path("otsu_cases.txt"));
    for (int c = 0; c < CASES; c++)
        for (int b = 0; b < 5; b++) {
            char *end = NULL;
            double want = strtod(text, &end);
            assert_true(end != text);
            text = end;
            double got = 0;
            assert_ok(eelsvae_otsu_threshold(data[c], N, bins[b], &got));
            assert_close(got, want, 0, 0); /* the same float32 bin centre, bit for bit */
        }
}

/* ---- threshold rules ------------------------------------------------------------- */

static eelsvae_threshold_rule parsed(const char *text)
{
    eelsvae_threshold_rule r = {.struct_size = sizeof r};
    assert_ok(eelsvae_threshold_rule_parse(text, &r));
    return r;
}

/* The default rule is Benjamini–Hochberg at 1 %, the rule whose false-alarm
 * rate docs/scores.md measures, and the same string every call. */
static void test_threshold_rule_default(void **state)
{
    (void)state;
    const char *text = eelsvae_threshold_rule_default();
    assert_non_null(text);
    assert_ptr_equal(text, eelsvae_threshold_rule_default());
    eelsvae_threshold_rule r = parsed(text);
    assert_int_equal(r.kind, EELSVAE_THRESHOLD_FDR);
    assert_true(r.parameter == 0.01);
}

static void test_threshold_rule_parse(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        eelsvae_threshold_kind kind;
        double parameter;
    } good[] = {{"otsu", EELSVAE_THRESHOLD_OTSU, 0},
                {"otsu:128", EELSVAE_THRESHOLD_OTSU, 128},
                {"value:0.9", EELSVAE_THRESHOLD_VALUE, 0.9},
                {"value:-2e-3", EELSVAE_THRESHOLD_VALUE, -2e-3},
                {"contamination:0.01", EELSVAE_THRESHOLD_CONTAMINATION, 0.01},
                {"contamination:0.5", EELSVAE_THRESHOLD_CONTAMINATION, 0.5},
                {"fdr:0.01", EELSVAE_THRESHOLD_FDR, 0.01}};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        eelsvae_threshold_rule r = parsed(good[i].text);
        assert_int_equal(r.kind, good[i].kind);
        assert_true(r.parameter == good[i].parameter);
    }
    /* each refusal names the rule and says what is wanted */
    static const char *const bad[][2] = {{"fdr", "needs a number"},       {"fdr:0", "0 < Q < 1"},
                                         {"fdr:1", "0 < Q < 1"},          {"fdr:0.01x", "not a number"},
                                         {"contamination:0.6", "0 < F"},  {"contamination:0", "0 < F"},
                                         {"value:nan", "finite"},         {"otsu:1", "2 … 65536"},
                                         {"otsu:2.5", "whole number"},    {"triangle", "otsu, value:X"},
                                         {"", "otsu, value:X"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        eelsvae_threshold_rule r = {.struct_size = sizeof r};
        assert_status(eelsvae_threshold_rule_parse(bad[i][0], &r), EELSVAE_ERR_INVALID_ARGUMENT);
        if (!strstr(eelsvae_last_error(), bad[i][1]) || !strstr(eelsvae_last_error(), "eelsvae_threshold_rule_parse"))
            fail_msg("\"%s\": message \"%s\" does not say \"%s\"", bad[i][0], eelsvae_last_error(), bad[i][1]);
    }
    /* a caller's struct that ends before parameter gets only its kind */
    struct {
        eelsvae_threshold_rule r;
        unsigned char canary[16];
    } box;
    memset(&box, 0xA5, sizeof box);
    box.r.struct_size = offsetof(eelsvae_threshold_rule, parameter);
    assert_ok(eelsvae_threshold_rule_parse("fdr:0.05", &box.r));
    assert_int_equal(box.r.kind, EELSVAE_THRESHOLD_FDR);
    const unsigned char *bytes = (const unsigned char *)&box;
    for (size_t i = offsetof(eelsvae_threshold_rule, parameter); i < sizeof box; i++) assert_int_equal(bytes[i], 0xA5);
}

/* Flagged pixels of a map under a rule. */
static size_t flagged_by(const float *scores, size_t n, eelsvae_direction dir, const char *rule, double *threshold)
{
    eelsvae_threshold_rule r = parsed(rule);
    assert_ok(eelsvae_threshold_select(scores, n, dir, &r, threshold));
    uint8_t *mask = malloc(n);
    assert_non_null(mask);
    assert_ok(eelsvae_threshold_mask(scores, n, *threshold, dir, mask));
    size_t count = 0;
    for (size_t i = 0; i < n; i++) count += mask[i];
    free(mask);
    return count;
}

static void test_threshold_value_and_contamination(void **state)
{
    (void)state;
    float s[100];
    for (size_t i = 0; i < 100; i++) s[i] = (float)((i * 37) % 100); /* 0 … 99, shuffled */
    double t = 0;
    assert_int_equal(flagged_by(s, 100, EELSVAE_ANOMALOUS_BELOW, "value:9.5", &t), 10); /* 0 … 9 */
    assert_true(t == 9.5);
    /* ⌈0.05 · 100⌉ = 5 most anomalous: 0 … 4 below, 95 … 99 above */
    assert_int_equal(flagged_by(s, 100, EELSVAE_ANOMALOUS_BELOW, "contamination:0.05", &t), 5);
    assert_true(t == 4.0);
    assert_int_equal(flagged_by(s, 100, EELSVAE_ANOMALOUS_ABOVE, "contamination:0.05", &t), 5);
    assert_true(t < 95.0 && t > 94.0);
    /* ⌈0.001 · 100⌉ = 1: one pixel, never none */
    assert_int_equal(flagged_by(s, 100, EELSVAE_ANOMALOUS_BELOW, "contamination:0.001", &t), 1);
    /* ties: every score as anomalous as the k-th is flagged */
    float tied[6] = {1, 1, 1, 5, 6, 7};
    assert_int_equal(flagged_by(tied, 6, EELSVAE_ANOMALOUS_BELOW, "contamination:0.2", &t), 3);
    /* otsu through the rule is eelsvae_otsu_threshold */
    double direct = 0;
    assert_ok(eelsvae_otsu_threshold(s, 100, 256, &direct));
    flagged_by(s, 100, EELSVAE_ANOMALOUS_BELOW, "otsu", &t);
    assert_true(t == direct);
}

static void test_score_p_values(void **state)
{
    (void)state;
    /* Distances from a perfect reconstruction d = e^(i/10), i = 0 … 10: log d =
     * 0, 0.1, …, 1, median 0.5, |log d − 0.5| = 0, .1, .1, …, .5, .5, MAD 0.3;
     * the spread is 1.4826 · 0.3. PCC (anomalous below) is 1 − d. */
    float pcc[11], dist[11];
    for (int i = 0; i <= 10; i++) {
        dist[i] = (float)exp(i / 10.0);
        pcc[i] = 1.0f - dist[i];
    }
    double p[11];
    const double spread = 1.4826 * 0.3;
    assert_ok(eelsvae_score_p_values(dist, 11, EELSVAE_ANOMALOUS_ABOVE, p, 11));
    for (int i = 0; i <= 10; i++) assert_close(p[i], 0.5 * erfc((i / 10.0 - 0.5) / spread / sqrt(2.0)), 1e-6, 0);
    assert_close(p[10], 0.1305, 2e-4, 0); /* Φ(−0.5 / 0.44478) = Φ(−1.124), from a table */
    assert_close(p[5], 0.5, 1e-6, 0);
    assert_ok(eelsvae_score_p_values(pcc, 11, EELSVAE_ANOMALOUS_BELOW, p, 11));
    assert_close(p[10], 0.1305, 2e-4, 0); /* the lowest PCC, the farthest */
    assert_close(p[0], 1.0 - 0.1305, 2e-4, 0);
    /* a perfect reconstruction is far from the bulk on the good side, not −∞ */
    dist[0] = 0.0f;
    assert_ok(eelsvae_score_p_values(dist, 11, EELSVAE_ANOMALOUS_ABOVE, p, 11));
    assert_true(p[0] > 0.999 && isfinite(p[0]));
    /* no distance: a PCC above 1, a negative score above */
    pcc[2] = 1.5f;
    assert_status(eelsvae_score_p_values(pcc, 11, EELSVAE_ANOMALOUS_BELOW, p, 11), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "score 2 is 1.5"));
    dist[3] = -0.5f;
    assert_status(eelsvae_score_p_values(dist, 11, EELSVAE_ANOMALOUS_ABOVE, p, 11), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_score_p_values(dist, 11, EELSVAE_ANOMALOUS_ABOVE, p, 10), EELSVAE_ERR_DIMENSION);
    float flat[5] = {1, 1, 1, 2, 3};
    assert_status(eelsvae_score_p_values(flat, 5, EELSVAE_ANOMALOUS_ABOVE, p, 5), EELSVAE_ERR_NUMERIC);
    dist[3] = NAN;
    assert_status(eelsvae_score_p_values(dist, 11, EELSVAE_ANOMALOUS_ABOVE, p, 11), EELSVAE_ERR_NUMERIC);
}

/* Benjamini–Hochberg against a naive oracle, and what it does with and
 * without anomalies: a normal bulk alone flags nothing, where Otsu always
 * splits. */
static double normal_quantile(double u) /* bisection on erfc: slow, exact enough */
{
    double lo = -10, hi = 10;
    for (int i = 0; i < 200; i++) {
        double mid = 0.5 * (lo + hi);
        if (0.5 * erfc(-mid / sqrt(2.0)) < u) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

static void test_threshold_fdr(void **state)
{
    (void)state;
    enum { N = 1000 };
    static float s[N];
    /* a bulk of PCC about 0.98: 1 − PCC log-normal (0.02 · e^(0.25 z)) at exact
     * normal quantiles z, shuffled */
    for (size_t i = 0; i < N; i++)
        s[(i * 617) % N] = (float)(1.0 - 0.02 * exp(0.25 * normal_quantile((i + 0.5) / N)));
    double t = 0;
    assert_int_equal(flagged_by(s, N, EELSVAE_ANOMALOUS_BELOW, "fdr:0.01", &t), 0);
    assert_true(isinf(t) && t < 0);
    assert_true(flagged_by(s, N, EELSVAE_ANOMALOUS_BELOW, "otsu", &t) > 100); /* Otsu splits it anyway */

    /* 20 anomalous pixels at PCC 0.8 … 0.9: found, and nothing else at 1 % */
    for (size_t i = 0; i < 20; i++) s[i * 50] = (float)(0.8 + 0.005 * (double)i);
    size_t got = flagged_by(s, N, EELSVAE_ANOMALOUS_BELOW, "fdr:0.01", &t);
    assert_int_equal(got, 20);
    /* the naive oracle: sort the p-values, largest k with p_(k) ≤ k·Q/n */
    static double p[N];
    assert_ok(eelsvae_score_p_values(s, N, EELSVAE_ANOMALOUS_BELOW, p, N));
    for (size_t i = 1; i < N; i++) /* insertion sort: the oracle shares no code with the library */
        for (size_t j = i; j > 0 && p[j - 1] > p[j]; j--) {
            double x = p[j];
            p[j] = p[j - 1];
            p[j - 1] = x;
        }
    static const double rates[] = {0.001, 0.01, 0.05, 0.2};
    for (size_t r = 0; r < 4; r++) {
        size_t k = 0;
        for (size_t i = N; i > 0 && !k; i--)
            if (p[i - 1] <= (double)i * rates[r] / N) k = i;
        char rule[32];
        snprintf(rule, sizeof rule, "fdr:%g", rates[r]);
        assert_int_equal(flagged_by(s, N, EELSVAE_ANOMALOUS_BELOW, rule, &t), k);
    }
    /* the same map as a distance (anomalous above) flags the same pixels */
    for (size_t i = 0; i < N; i++) s[i] = 1.0f - s[i];
    assert_int_equal(flagged_by(s, N, EELSVAE_ANOMALOUS_ABOVE, "fdr:0.01", &t), 20);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_defaults),
        cmocka_unit_test(test_pcc_by_hand),
        cmocka_unit_test(test_pcc_window_only),
        cmocka_unit_test(test_default_window_is_whole_axis),
        cmocka_unit_test(test_threshold_rule_default),
        cmocka_unit_test(test_threshold_rule_parse),
        cmocka_unit_test(test_threshold_value_and_contamination),
        cmocka_unit_test(test_score_p_values),
        cmocka_unit_test(test_threshold_fdr),
        cmocka_unit_test(test_mse_and_angle_by_hand),
        cmocka_unit_test(test_degenerate_cases),
        cmocka_unit_test(test_score_deterministic_across_threads),
        cmocka_unit_test(test_otsu_by_hand),
        cmocka_unit_test(test_threshold_mask),
        cmocka_unit_test(test_metrics_by_hand),
        cmocka_unit_test(test_metrics_struct_size),
        cmocka_unit_test(test_roc_auc_by_hand),
        cmocka_unit_test(test_pr_auc_by_hand),
        cmocka_unit_test(test_histogram_by_hand),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_explain_means_by_hand),
        cmocka_unit_test(test_explain_means_whole_axis),
        cmocka_unit_test(test_explain_means_errors),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_against_oracles),
        cmocka_unit_test(test_otsu_against_skimage_edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
