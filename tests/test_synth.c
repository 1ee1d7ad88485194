/* Synthetic BiFeO3-like SI: options, axes, determinism, and the physics of
 * the expectation measured here from the cube itself (power-law fits, edge
 * positions, white-line areas, jump ratios, noise moments, row stripes). */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "core/core.h"

/* ---- helpers --------------------------------------------------------------- */

static eelsvae_synth_options small_options(size_t ny, size_t nx)
{
    eelsvae_synth_options o;
    assert_ok(eelsvae_synth_options_init(&o));
    o.ny = ny;
    o.nx = nx;
    return o;
}

typedef struct generated {
    eelsvae_cube *counts, *expected;
    size_t ny, nx, ne;
    double e0, de;
} generated;

static generated generate(const eelsvae_synth_options *o)
{
    generated g;
    memset(&g, 0, sizeof g);
    assert_ok(eelsvae_synth_generate(o, &g.counts, &g.expected));
    eelsvae_cube_shape(g.counts, &g.ny, &g.nx, &g.ne);
    assert_ok(eelsvae_cube_axis(g.counts, EELSVAE_AXIS_E, &g.e0, &g.de, NULL));
    return g;
}

static void generated_free(generated *g)
{
    eelsvae_cube_free(g->counts);
    eelsvae_cube_free(g->expected);
}

static const float *spectrum_of(const eelsvae_cube *c, size_t y, size_t x)
{
    const float *s = NULL;
    assert_ok(eelsvae_cube_spectrum(c, y, x, &s));
    return s;
}

static double energy(const generated *g, size_t i)
{
    return g->e0 + g->de * (double)i;
}

static size_t channel_at(const generated *g, double e)
{
    return (size_t)lround((e - g->e0) / g->de);
}

/* Least-squares fit log s = log a − r·log E over [lo, hi] eV. */
static void fit_power_law(const generated *g, const float *s, double lo, double hi, double *r, double *log_a)
{
    double sx = 0, sy = 0, sxx = 0, sxy = 0, n = 0;
    for (size_t i = channel_at(g, lo); i <= channel_at(g, hi); i++) {
        double x = log(energy(g, i)), y = log(s[i]);
        sx += x;
        sy += y;
        sxx += x * x;
        sxy += x * y;
        n += 1;
    }
    double slope = (n * sxy - sx * sy) / (n * sxx - sx * sx);
    *r = -slope;
    *log_a = (sy - slope * sx) / n;
}

static double power_law_at(double r, double log_a, double e)
{
    return exp(log_a - r * log(e));
}

/* Mean spectrum of a cube, in double. */
static void mean_spectrum(const generated *g, const eelsvae_cube *c, double *out)
{
    memset(out, 0, g->ne * sizeof *out);
    for (size_t y = 0; y < g->ny; y++)
        for (size_t x = 0; x < g->nx; x++) {
            const float *s = spectrum_of(c, y, x);
            for (size_t i = 0; i < g->ne; i++) out[i] += s[i];
        }
    for (size_t i = 0; i < g->ne; i++) out[i] /= (double)(g->ny * g->nx);
}

/* ---- options and axes ----------------------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    eelsvae_synth_options o;
    memset(&o, 0xff, sizeof o);
    assert_ok(eelsvae_synth_options_init(&o));
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.ny, 192);
    assert_int_equal(o.nx, 192);
    assert_true(o.energy_start == 420.0 && o.energy_end == 820.0 && o.dispersion == 0.3);
    assert_true(o.seed == 1 && o.dose == 1000.0 && o.read_noise == 3.0);
    assert_true(o.bg_exponent_min == 3.0 && o.bg_exponent_max == 4.0 && o.thickness_gradient == 0.5);
    assert_true(o.o_edge == 532.0 && o.fe_l3 == 709.5 && o.fe_l2 == 722.5 && o.l3_l2_ratio == 4.0);
    assert_true(o.fe_jump == 2.0 && o.o_jump == 1.0 && o.composition_variation == 0.15);
    assert_true(o.drift == 0.3 && o.stripe_gain == 0.02);
    assert_status(eelsvae_synth_options_init_sized(NULL, sizeof(eelsvae_synth_options)),
                  EELSVAE_ERR_INVALID_ARGUMENT);
}

static void check_axis(const eelsvae_synth_options *o, size_t want_ne, double want_last)
{
    generated g = generate(o);
    assert_int_equal(g.ny, o->ny);
    assert_int_equal(g.nx, o->nx);
    assert_int_equal(g.ne, want_ne);
    const char *units = NULL;
    double off = 0, scale = 0;
    assert_ok(eelsvae_cube_axis(g.counts, EELSVAE_AXIS_E, &off, &scale, &units));
    assert_true(off == o->energy_start && scale == o->dispersion);
    assert_string_equal(units, "eV");
    assert_close(off + scale * (double)(g.ne - 1), want_last, 1e-9, 0);
    for (int a = EELSVAE_AXIS_Y; a <= EELSVAE_AXIS_X; a++) {
        assert_ok(eelsvae_cube_axis(g.counts, (eelsvae_axis)a, &off, &scale, &units));
        assert_true(off == 0.0 && scale == 1.0);
        assert_string_equal(units, "px");
        assert_ok(eelsvae_cube_axis(g.expected, (eelsvae_axis)a, &off, &scale, &units));
        assert_string_equal(units, "px");
    }
    assert_ok(eelsvae_cube_check_finite(g.counts));
    assert_ok(eelsvae_cube_check_finite(g.expected));
    generated_free(&g);
}

static void test_energy_axis(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(2, 3);
    /* 420 + 0.3·i ≤ 820 for i ≤ 1333: 1334 channels, the last at 819.9 eV. */
    check_axis(&o, 1334, 819.9);
    o.dispersion = 0.25; /* 820 is reached exactly: 1601 channels */
    check_axis(&o, 1601, 820.0);
    o.dispersion = 0.7; /* ⌊400 / 0.7⌋ = 571 → 572 channels, last 819.7 */
    check_axis(&o, 572, 819.7);
    o.energy_start = 700.0; /* 700 + 0.3·3 = 700.9 hits the end within rounding */
    o.energy_end = 700.9;
    o.dispersion = 0.3;
    o.o_edge = 700.0;
    o.fe_l3 = 700.5;
    o.fe_l2 = 710.0;
    check_axis(&o, 4, 700.9);
}

static void test_rejects_bad_options(void **state)
{
    (void)state;
    eelsvae_cube *c = NULL, *e = NULL;
    struct {
        const char *field;
        size_t offset;
        double value;
    } bad[] = {
        {"dispersion", offsetof(eelsvae_synth_options, dispersion), 0.0},
        {"dispersion", offsetof(eelsvae_synth_options, dispersion), -0.3},
        {"dispersion", offsetof(eelsvae_synth_options, dispersion), NAN},
        {"energy_end", offsetof(eelsvae_synth_options, energy_end), 420.0},
        {"energy_end", offsetof(eelsvae_synth_options, energy_end), 300.0},
        {"energy_start", offsetof(eelsvae_synth_options, energy_start), -1.0},
        {"energy_start", offsetof(eelsvae_synth_options, energy_start), INFINITY},
        {"dose", offsetof(eelsvae_synth_options, dose), -1.0},
        {"read_noise", offsetof(eelsvae_synth_options, read_noise), -0.5},
        {"bg_exponent_min", offsetof(eelsvae_synth_options, bg_exponent_min), 0.0},
        {"bg_exponent_min", offsetof(eelsvae_synth_options, bg_exponent_min), 4.5}, /* inverted */
        {"bg_exponent_max", offsetof(eelsvae_synth_options, bg_exponent_max), 10.0},
        {"bg_exponent_max", offsetof(eelsvae_synth_options, bg_exponent_max), 2.0}, /* inverted */
        {"thickness_gradient", offsetof(eelsvae_synth_options, thickness_gradient), 2.5},
        {"o_edge", offsetof(eelsvae_synth_options, o_edge), 400.0},
        {"o_edge", offsetof(eelsvae_synth_options, o_edge), 830.0},
        {"fe_l3", offsetof(eelsvae_synth_options, fe_l3), 900.0},
        {"fe_l3", offsetof(eelsvae_synth_options, fe_l3), NAN},
        {"fe_l2", offsetof(eelsvae_synth_options, fe_l2), 700.0},
        {"l3_l2_ratio", offsetof(eelsvae_synth_options, l3_l2_ratio), 0.0},
        {"fe_jump", offsetof(eelsvae_synth_options, fe_jump), -1.0},
        {"o_jump", offsetof(eelsvae_synth_options, o_jump), -1.0},
        {"composition_variation", offsetof(eelsvae_synth_options, composition_variation), 1.0},
        {"drift", offsetof(eelsvae_synth_options, drift), -0.1},
        {"stripe_gain", offsetof(eelsvae_synth_options, stripe_gain), -0.01},
        {"thickness_variation", offsetof(eelsvae_synth_options, thickness_variation), 1.0},
        {"thickness_variation", offsetof(eelsvae_synth_options, thickness_variation), -0.1},
        {"thickness_variation", offsetof(eelsvae_synth_options, thickness_variation), NAN},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        eelsvae_synth_options o = small_options(4, 4);
        memcpy((char *)&o + bad[k].offset, &bad[k].value, sizeof(double));
        assert_status(eelsvae_synth_generate(&o, &c, &e), EELSVAE_ERR_INVALID_ARGUMENT);
        if (!strstr(eelsvae_last_error(), bad[k].field))
            fail_msg("message \"%s\" does not name %s", eelsvae_last_error(), bad[k].field);
    }
    eelsvae_synth_options o = small_options(0, 4);
    assert_status(eelsvae_synth_generate(&o, &c, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    o = small_options(4, 0);
    assert_status(eelsvae_synth_generate(&o, &c, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    o = small_options(SIZE_MAX / 2, 4);
    assert_status(eelsvae_synth_generate(&o, &c, &e), EELSVAE_ERR_OVERFLOW);
    o = small_options(4, 4);
    o.dispersion = 1e-300; /* an uncountable number of channels */
    assert_status(eelsvae_synth_generate(&o, &c, &e), EELSVAE_ERR_OVERFLOW);
    o = small_options(4, 4);
    assert_status(eelsvae_synth_generate(NULL, &c, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_synth_generate(&o, NULL, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    o.struct_size = 0;
    assert_status(eelsvae_synth_generate(&o, &c, &e), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(c);
    assert_null(e);
}

/* A caller built against a shorter struct gets the defaults of the fields
 * it does not know. */
static void test_short_struct_uses_defaults(void **state)
{
    (void)state;
    eelsvae_synth_options full = small_options(6, 5), old = full;
    old.struct_size = offsetof(eelsvae_synth_options, stripe_gain);
    old.stripe_gain = -7.0; /* beyond struct_size: must not be read */
    generated a = generate(&full), b = generate(&old);
    assert_memory_equal(eelsvae_cube_data(a.counts), eelsvae_cube_data(b.counts), a.ny * a.nx * a.ne * sizeof(float));
    generated_free(&b);
    /* thickness_variation, appended later: an older struct gets 0.05, the
     * ripple the generator had before the field existed. */
    old = full;
    old.struct_size = offsetof(eelsvae_synth_options, thickness_variation);
    old.thickness_variation = 0.9;
    b = generate(&old);
    assert_memory_equal(eelsvae_cube_data(a.counts), eelsvae_cube_data(b.counts), a.ny * a.nx * a.ne * sizeof(float));
    generated_free(&a);
    generated_free(&b);
}

/* The realistic init writes no byte past the caller's struct_size, and
 * differs from the defaults only in the documented nuisance fields. */
static void test_realistic_init(void **state)
{
    (void)state;
    struct {
        eelsvae_synth_options o;
        unsigned char guard[16];
    } box;
    memset(&box, 0xA5, sizeof box);
    size_t old = offsetof(eelsvae_synth_options, thickness_variation);
    assert_ok(eelsvae_synth_options_init_realistic_sized(&box.o, old));
    assert_int_equal(box.o.struct_size, old);
    assert_true(box.o.dose == EELSVAE_SYNTH_REALISTIC_DOSE);
    const unsigned char *tail = (const unsigned char *)&box.o + old;
    for (size_t i = 0; i < sizeof box - old; i++) assert_int_equal(tail[i], 0xA5);
    assert_status(eelsvae_synth_options_init_realistic_sized(NULL, sizeof box.o), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_synth_options_init_realistic_sized(&box.o, 1), EELSVAE_ERR_INVALID_ARGUMENT);

    eelsvae_synth_options d, r;
    assert_ok(eelsvae_synth_options_init(&d));
    assert_ok(eelsvae_synth_options_init_realistic(&r));
    /* the realistic setting is valid, and the scan and the physics are the defaults' */
    assert_true(r.ny == d.ny && r.nx == d.nx && r.seed == d.seed && r.dispersion == d.dispersion);
    assert_true(r.fe_l3 == d.fe_l3 && r.fe_jump == d.fe_jump && r.read_noise == d.read_noise);
    assert_true(r.dose < d.dose && r.thickness_variation > d.thickness_variation);
}

/* thickness_variation: with everything else flat, the noise-free totals
 * vary only by the thickness field, within its amplitude: none at 0, and
 * at 0.25 a relative std above 2 % with max/min ≤ 1.25/0.75. */
static double totals_spread(double variation, double *max_over_min)
{
    eelsvae_synth_options o = small_options(24, 24);
    o.bg_exponent_min = o.bg_exponent_max = 3.0;
    o.thickness_gradient = 0.0, o.composition_variation = 0.0, o.stripe_gain = 0.0, o.drift = 0.0;
    o.thickness_variation = variation;
    generated g = generate(&o);
    float *sum = test_malloc(g.ny * g.nx * sizeof *sum);
    assert_ok(eelsvae_cube_sum_image(g.expected, sum, g.ny * g.nx));
    double mean = 0, sq = 0, lo = INFINITY, hi = 0;
    for (size_t i = 0; i < g.ny * g.nx; i++) mean += sum[i], lo = fmin(lo, sum[i]), hi = fmax(hi, sum[i]);
    mean /= (double)(g.ny * g.nx);
    for (size_t i = 0; i < g.ny * g.nx; i++) sq += (sum[i] - mean) * (sum[i] - mean);
    test_free(sum);
    generated_free(&g);
    *max_over_min = hi / lo;
    return sqrt(sq / (double)(g.ny * g.nx)) / mean;
}

static void test_thickness_variation(void **state)
{
    (void)state;
    double ratio = 0;
    assert_close(totals_spread(0.0, &ratio), 0.0, 1e-6, 0);
    double spread = totals_spread(0.25, &ratio);
    print_message("thickness_variation 0.25: totals std %.3f, max/min %.3f\n", spread, ratio);
    assert_true(spread > 0.02);
    assert_true(ratio <= 1.25 / 0.75 + 1e-6);
}

/* The realistic dose is what docs/synthetic.md derives: the noisy and the
 * noise-free SI, both through the paper's chain (the noisy SI's scaling),
 * agree over 690–730 eV to the paper's PCA 4 normal-pixel PCC, 0.886
 * (measured 0.885 at 48 × 48; the mean over 2304 pixels varies by a few
 * thousandths between seeds). */
static void test_realistic_dose_matches_paper_noise(void **state)
{
    (void)state;
    eelsvae_synth_options o;
    assert_ok(eelsvae_synth_options_init_realistic(&o));
    o.ny = o.nx = 48;
    generated g = generate(&o);
    eelsvae_preprocess_options pp;
    assert_ok(eelsvae_preprocess_options_init(&pp, EELSVAE_PRESET_PAPER));
    assert_ok(eelsvae_cube_preprocess(g.counts, &pp, &pp.scale_lo, &pp.scale_hi));
    pp.use_fixed_scaling = 1;
    assert_ok(eelsvae_cube_preprocess(g.expected, &pp, NULL, NULL));
    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 690.0, so.window_hi = 730.0;
    eelsvae_scorer *scorer = NULL;
    assert_ok(eelsvae_scorer_create(&so, &scorer));
    size_t n = g.ny * g.nx;
    float *pcc = test_malloc(n * sizeof *pcc);
    assert_ok(eelsvae_scorer_score(scorer, g.counts, g.expected, pcc, n, NULL));
    double mean = 0;
    for (size_t i = 0; i < n; i++) mean += pcc[i];
    mean /= (double)n;
    print_message("realistic dose %g: noise PCC %.4f (paper 0.886)\n", o.dose, mean);
    assert_close(mean, 0.886, 0.015, 0);
    test_free(pcc);
    eelsvae_scorer_free(scorer);
    generated_free(&g);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(3, 4);
    int failures = 0;
    for (unsigned long n = 1; n < 16; n++) {
        eelsvae_cube *c = NULL, *e = NULL;
        evae_fail_allocation_after(n);
        eelsvae_status st = eelsvae_synth_generate(&o, &c, &e);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            assert_non_null(c);
            assert_non_null(e);
        } else {
            assert_int_equal(st, EELSVAE_ERR_NOMEM);
            assert_true(eelsvae_last_error()[0] != '\0');
            assert_null(c);
            assert_null(e);
            failures++;
        }
        eelsvae_cube_free(c);
        eelsvae_cube_free(e);
    }
    /* model, workspace, two cube handles and two sample blocks */
    assert_true(failures >= 6);
}

/* ---- determinism ---------------------------------------------------------------- */

static void test_deterministic(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(17, 9);
    assert_ok(eelsvae_set_threads(1));
    generated a = generate(&o);
    assert_ok(eelsvae_set_threads(2));
    generated b = generate(&o);
    size_t bytes = a.ny * a.nx * a.ne * sizeof(float);
    assert_memory_equal(eelsvae_cube_data(a.counts), eelsvae_cube_data(b.counts), bytes);
    assert_memory_equal(eelsvae_cube_data(a.expected), eelsvae_cube_data(b.expected), bytes);
    /* Without the expectation the counts are the same bits. */
    eelsvae_cube *only = NULL;
    assert_ok(eelsvae_synth_generate(&o, &only, NULL));
    assert_memory_equal(eelsvae_cube_data(a.counts), eelsvae_cube_data(only), bytes);
    eelsvae_cube_free(only);
    /* Another seed changes the noise and the maps. */
    o.seed = 2;
    generated c = generate(&o);
    assert_memory_not_equal(eelsvae_cube_data(a.counts), eelsvae_cube_data(c.counts), bytes);
    assert_memory_not_equal(eelsvae_cube_data(a.expected), eelsvae_cube_data(c.expected), bytes);
    generated_free(&a);
    generated_free(&b);
    generated_free(&c);
}

/* ---- physics of the expectation ------------------------------------------------- */

/* Pre-edge (450–520 eV) power-law exponents lie in [min, max], vary across
 * the scan, and equal the single value when min = max. */
static void test_background_exponent(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(32, 32);
    generated g = generate(&o);
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < g.nx; x++) {
            double r = 0, la = 0;
            fit_power_law(&g, spectrum_of(g.expected, y, x), 450, 520, &r, &la);
            lo = fmin(lo, r);
            hi = fmax(hi, r);
        }
    print_message("pre-edge exponent over the scan: %.3f … %.3f (allowed %g … %g)\n", lo, hi, o.bg_exponent_min,
                  o.bg_exponent_max);
    assert_true(lo >= o.bg_exponent_min - 0.01 && hi <= o.bg_exponent_max + 0.01);
    assert_true(hi - lo >= 0.3 * (o.bg_exponent_max - o.bg_exponent_min)); /* it does vary */
    generated_free(&g);

    o = small_options(8, 8);
    o.bg_exponent_min = o.bg_exponent_max = 3.25;
    g = generate(&o);
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < g.nx; x++) {
            double r = 0, la = 0;
            fit_power_law(&g, spectrum_of(g.expected, y, x), 450, 520, &r, &la);
            assert_close(r, 3.25, 0.005, 0);
        }
    generated_free(&g);
}

/* The dose is the background count at energy_start where thickness is 1:
 * with no gradient and no stripes, channel 0 holds dose × (1 ± 5 % ripple). */
static void test_dose_calibration(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(16, 16);
    o.thickness_gradient = 0.0;
    o.stripe_gain = 0.0;
    o.dose = 250.0;
    generated g = generate(&o);
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < g.nx; x++) assert_close(spectrum_of(g.expected, y, x)[0], 250.0, 0, 0.055);
    generated_free(&g);
}

/* Fe L3 maximum: within drift/2 + 2 channels of fe_l3; a large drift moves
 * it by the drift peak to peak. */
static double l3_peak_position(const generated *g, const float *s, double fe_l3)
{
    size_t best = channel_at(g, fe_l3 - 6);
    for (size_t i = best; i <= channel_at(g, fe_l3 + 6); i++)
        if (s[i] > s[best]) best = i;
    /* sub-channel position by a parabola through the top three samples */
    double a = s[best - 1], b = s[best], c = s[best + 1];
    double frac = 0.5 * (a - c) / (a - 2 * b + c);
    return energy(g, best) + frac * g->de;
}

static void test_fe_l3_position_and_drift(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(32, 32);
    generated g = generate(&o);
    double tol = o.drift / 2 + 2 * o.dispersion;
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < g.nx; x++) {
            double p = l3_peak_position(&g, spectrum_of(g.expected, y, x), o.fe_l3);
            assert_close(p, o.fe_l3, tol, 0);
        }
    generated_free(&g);

    o = small_options(24, 6);
    o.drift = 1.5;
    g = generate(&o);
    double lo = HUGE_VAL, hi = -HUGE_VAL;
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < g.nx; x++) {
            double p = l3_peak_position(&g, spectrum_of(g.expected, y, x), o.fe_l3);
            lo = fmin(lo, p);
            hi = fmax(hi, p);
        }
    print_message("L3 peak with drift 1.5 eV: %.3f … %.3f eV\n", lo, hi);
    assert_close(hi - lo, 1.5, 0.1, 0);
    assert_close(0.5 * (lo + hi), o.fe_l3, 0.1, 0); /* the drift is centred */
    generated_free(&g);
}

/* L3/L2 white-line area ratio, measured as an analyst would: fit the
 * pre-edge power law in 680–700 eV and subtract it; model the continuum as
 * Pearson's double step (heights 2:1 at the two maxima, decaying with the
 * fitted exponent, scaled to the excess in 740–750 eV) and subtract it;
 * integrate L3 over [fe_l3 − 10, midpoint] and L2 over [midpoint, fe_l2 + 12].
 * The Lorentzian tail of L3 that reaches past the midpoint adds a fixed
 * fraction ε of the L3 area to the L2 area (a few %: η = 0.5, FWHM 2 eV,
 * 6.5 eV to the midpoint), so the measured 1/ratio is 1/R + ε and the ratio
 * reads low by up to ~15 % at R = 4: hence ±25 % on each ratio. The
 * difference 1/r(2) − 1/r(4) cancels ε and must be 1/2 − 1/4 = 0.25 up to
 * the L2 tails lost outside the windows (a few %): ±8 %. */
static double measure_l3_l2_ratio(const eelsvae_synth_options *o)
{
    generated g = generate(o);
    double *s = NULL;
    assert_ok(evae_alloc_array(g.ne, sizeof *s, (void **)&s, "test"));
    mean_spectrum(&g, g.expected, s);
    float *sf = NULL;
    assert_ok(evae_alloc_array(g.ne, sizeof *sf, (void **)&sf, "test"));
    for (size_t i = 0; i < g.ne; i++) sf[i] = (float)s[i];
    double r = 0, la = 0;
    fit_power_law(&g, sf, 680, 700, &r, &la);
    double p3 = l3_peak_position(&g, sf, o->fe_l3), p2 = l3_peak_position(&g, sf, o->fe_l2);
    /* continuum: C·[2/3·H(E − p3) + 1/3·H(E − p2)]·(E/p3)^−r, C from 740–750 eV */
    double num = 0, den = 0;
    for (size_t i = channel_at(&g, 740); i <= channel_at(&g, 750); i++) {
        double e = energy(&g, i);
        num += s[i] - power_law_at(r, la, e);
        den += pow(e / p3, -r);
    }
    double c = num / den;
    double mid = 0.5 * (o->fe_l3 + o->fe_l2), a3 = 0, a2 = 0;
    for (size_t i = channel_at(&g, o->fe_l3 - 10); i <= channel_at(&g, o->fe_l2 + 12); i++) {
        double e = energy(&g, i);
        double steps = (e >= p3 ? 2.0 / 3.0 : 0.0) + (e >= p2 ? 1.0 / 3.0 : 0.0);
        double line = s[i] - power_law_at(r, la, e) - c * steps * pow(e / p3, -r);
        if (e < mid)
            a3 += line;
        else
            a2 += line;
    }
    evae_free(s);
    evae_free(sf);
    generated_free(&g);
    return a3 / a2;
}

static void test_l3_l2_ratio(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(12, 12);
    double r4 = measure_l3_l2_ratio(&o);
    o.l3_l2_ratio = 2.0;
    double r2 = measure_l3_l2_ratio(&o);
    print_message("measured L3/L2 area ratio: %.3f (set 4), %.3f (set 2)\n", r4, r2);
    assert_close(r4, 4.0, 0, 0.25);
    assert_close(r2, 2.0, 0, 0.25);
    assert_close(1.0 / r2 - 1.0 / r4, 0.25, 0, 0.08);
}

/* Edge jumps over the extrapolated pre-edge power law, per pixel: the O K
 * continuum 30 eV past the onset (beyond its near-edge peaks) and the Fe L3
 * maximum, each within jump·(1 ± composition_variation). */
static void test_edge_jumps(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(16, 16);
    o.drift = 0.0;
    o.o_jump = 1.5;
    o.fe_jump = 3.0;
    generated g = generate(&o);
    double cv = o.composition_variation;
    double o_lo = HUGE_VAL, o_hi = -HUGE_VAL;
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < g.nx; x++) {
            const float *s = spectrum_of(g.expected, y, x);
            double r = 0, la = 0;
            fit_power_law(&g, s, 480, 525, &r, &la);
            size_t i = channel_at(&g, o.o_edge + 30);
            double jump_o = s[i] / power_law_at(r, la, energy(&g, i)) - 1.0;
            assert_true(jump_o >= o.o_jump * (1 - cv) - 0.03 && jump_o <= o.o_jump * (1 + cv) + 0.03);
            o_lo = fmin(o_lo, jump_o);
            o_hi = fmax(o_hi, jump_o);
            fit_power_law(&g, s, 680, 700, &r, &la);
            i = channel_at(&g, o.fe_l3);
            double jump_fe = s[i] / power_law_at(r, la, energy(&g, i)) - 1.0;
            assert_true(jump_fe >= o.fe_jump * (1 - cv) * 0.97 && jump_fe <= o.fe_jump * (1 + cv) * 1.03);
        }
    assert_true(o_hi - o_lo > 0.05 * o.o_jump); /* the O map does vary */
    generated_free(&g);
}

/* O K onset: the steepest rise of the mean spectrum is at o_edge, and the
 * edge follows the option. */
static double steepest_rise(const generated *g, const double *s, double lo, double hi)
{
    size_t best = channel_at(g, lo);
    for (size_t i = best; i < channel_at(g, hi); i++)
        if (s[i + 1] - s[i] > s[best + 1] - s[best]) best = i;
    return energy(g, best) + 0.5 * g->de;
}

static void test_o_edge_onset(void **state)
{
    (void)state;
    for (int k = 0; k < 2; k++) {
        eelsvae_synth_options o = small_options(8, 8);
        o.o_edge = k == 0 ? 532.0 : 536.0;
        generated g = generate(&o);
        double *s = NULL;
        assert_ok(evae_alloc_array(g.ne, sizeof *s, (void **)&s, "test"));
        mean_spectrum(&g, g.expected, s);
        double rise = steepest_rise(&g, s, 515, 555);
        assert_close(rise, o.o_edge, 1.0, 0);
        double before = 0, after = 0;
        for (int d = 3; d <= 8; d++) {
            before += s[channel_at(&g, o.o_edge - d)];
            after += s[channel_at(&g, o.o_edge + d)];
        }
        assert_true(after > (1.0 + 0.5 * o.o_jump) * before);
        evae_free(s);
        generated_free(&g);
    }
}

/* Thickness gradient seen in the z-summed image: right third against left
 * third. With a fixed exponent (so the exponent map does not mix in) the
 * ratio is (1 + g/3)/(1 − g/3) up to the 5 % ripple and the composition maps. */
static double right_left_ratio(const eelsvae_synth_options *o)
{
    generated g = generate(o);
    float *img = NULL;
    assert_ok(evae_alloc_array(g.ny * g.nx, sizeof *img, (void **)&img, "test"));
    assert_ok(eelsvae_cube_sum_image(g.counts, img, g.ny * g.nx));
    double left = 0, right = 0;
    size_t third = g.nx / 3;
    for (size_t y = 0; y < g.ny; y++)
        for (size_t x = 0; x < third; x++) {
            left += img[y * g.nx + x];
            right += img[y * g.nx + g.nx - 1 - x];
        }
    evae_free(img);
    generated_free(&g);
    return right / left;
}

static void test_thickness_gradient(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(30, 30);
    o.bg_exponent_min = o.bg_exponent_max = 3.5;
    /* thirds of 30 columns: u means 4.5/29 and 24.5/29 */
    double gl = (4.5 / 29 - 0.5), gr = (24.5 / 29 - 0.5);
    for (int k = 0; k < 3; k++) {
        double grad = k == 0 ? 0.5 : k == 1 ? 0.0 : -0.8;
        o.thickness_gradient = grad;
        double ratio = right_left_ratio(&o);
        double want = (1 + grad * gr) / (1 + grad * gl);
        print_message("thickness gradient %.2f: right/left sum %.3f (want %.3f)\n", grad, ratio, want);
        assert_close(ratio, want, 0, 0.08);
    }
    /* with the default exponent range the gradient still shows */
    eelsvae_synth_options d = small_options(30, 30);
    assert_true(right_left_ratio(&d) > 1.15);
}

/* Noise: (counts − expected)/√(expected + σ²) has mean 0 and variance 1
 * over 32·32·1334 = 1.37 M samples (standard errors 0.0009 and 0.0012; the
 * tolerances are about 6σ). */
static void test_noise_moments(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(32, 32);
    o.read_noise = 4.0;
    generated g = generate(&o);
    const float *c = eelsvae_cube_data_const(g.counts), *e = eelsvae_cube_data_const(g.expected);
    size_t n = g.ny * g.nx * g.ne;
    double s1 = 0, s2 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(e[i] > 0.0f);
        double z = (c[i] - (double)e[i]) / sqrt(e[i] + 16.0);
        s1 += z;
        s2 += z * z;
    }
    double mean = s1 / (double)n, var = s2 / (double)n - mean * mean;
    print_message("noise: z mean %.5f, variance %.5f over %zu samples\n", mean, var, n);
    assert_close(mean, 0.0, 0.006, 0);
    assert_close(var, 1.0, 0.008, 0);
    generated_free(&g);
}

/* Low dose without read noise: integer counts, Poisson — the number of zeros
 * matches Σ e^−λ (a Gaussian approximation would not), mean and variance
 * match Σλ. */
static void test_poisson_at_low_dose(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(16, 16);
    o.dose = 1.5;
    o.read_noise = 0.0;
    generated g = generate(&o);
    const float *c = eelsvae_cube_data_const(g.counts), *e = eelsvae_cube_data_const(g.expected);
    size_t n = g.ny * g.nx * g.ne;
    double zeros = 0, want_zeros = 0, zero_var = 0, sum_d = 0, sum_d2 = 0, sum_l = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(c[i] >= 0.0f && c[i] == floorf(c[i]));
        double p0 = exp(-(double)e[i]);
        want_zeros += p0;
        zero_var += p0 * (1 - p0);
        zeros += c[i] == 0.0f;
        double d = c[i] - (double)e[i];
        sum_d += d;
        sum_d2 += d * d;
        sum_l += e[i];
    }
    print_message("zeros %.0f, expected %.1f ± %.1f\n", zeros, want_zeros, sqrt(zero_var));
    assert_close(zeros, want_zeros, 5 * sqrt(zero_var), 0);
    assert_close(sum_d / (double)n, 0.0, 5 * sqrt(sum_l) / (double)n, 0);
    assert_close(sum_d2 / sum_l, 1.0, 0.01, 0);
    generated_free(&g);
}

/* Zero dose: the counts are pure read noise, N(0, σ²). */
static void test_read_noise_alone(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(16, 16);
    o.dose = 0.0;
    o.read_noise = 5.0;
    generated g = generate(&o);
    const float *c = eelsvae_cube_data_const(g.counts), *e = eelsvae_cube_data_const(g.expected);
    size_t n = g.ny * g.nx * g.ne;
    double s1 = 0, s2 = 0, s4 = 0;
    for (size_t i = 0; i < n; i++) {
        assert_true(e[i] == 0.0f);
        s1 += c[i];
        s2 += (double)c[i] * c[i];
        s4 += (double)c[i] * c[i] * c[i] * c[i];
    }
    double var = s2 / (double)n;
    /* n = 341504: sd of the mean 5/√n = 0.0086, of the variance 25·√(2/n) = 0.06 */
    assert_close(s1 / (double)n, 0.0, 0.05, 0);
    assert_close(var, 25.0, 0.4, 0);
    assert_close(s4 / (double)n / (var * var), 3.0, 0.05, 0); /* Gaussian kurtosis */
    generated_free(&g);
}

/* Row stripes: row sums against the mean of their two neighbours. The smooth
 * maps barely curve over one row, so log q_y = l_y − (l_{y−1} + l_{y+1})/2
 * with l = log gain, whose variance is 1.5·stripe_gain². The q are
 * correlated (lag-1 covariance −σ², lag-2 σ²/4), so Σq² over N rows has a
 * relative sd of √(8.75/N)/1.5: with N = 510 the σ estimate is good to
 * ±4.4 %; tolerance 20 %. The same holds in the noisy counts (each row sum
 * holds ≈ 10⁶ counts, 0.1 % shot noise), and no stripes give q ≈ 1. */
static double stripe_sigma(const generated *g, const eelsvae_cube *c)
{
    double *rows = NULL;
    assert_ok(evae_alloc_array(g->ny, sizeof *rows, (void **)&rows, "test"));
    for (size_t y = 0; y < g->ny; y++) {
        double s = 0;
        for (size_t x = 0; x < g->nx; x++) {
            const float *sp = spectrum_of(c, y, x);
            for (size_t i = 0; i < g->ne; i++) s += sp[i];
        }
        rows[y] = log(s);
    }
    double q2 = 0;
    for (size_t y = 1; y + 1 < g->ny; y++) {
        double q = rows[y] - 0.5 * (rows[y - 1] + rows[y + 1]);
        q2 += q * q;
    }
    evae_free(rows);
    return sqrt(q2 / (double)(g->ny - 2) / 1.5);
}

static void test_row_stripes(void **state)
{
    (void)state;
    eelsvae_synth_options o = small_options(512, 2);
    o.stripe_gain = 0.05;
    generated g = generate(&o);
    double se = stripe_sigma(&g, g.expected), sc = stripe_sigma(&g, g.counts);
    print_message("row gain σ: %.4f (expected), %.4f (counts), set 0.05\n", se, sc);
    assert_close(se, 0.05, 0, 0.2);
    assert_close(sc, 0.05, 0, 0.2);
    /* a row's gain multiplies every pixel of that row alike */
    for (size_t y = 0; y + 1 < g.ny; y += 17) {
        double r0 = spectrum_of(g.expected, y, 0)[0], r1 = spectrum_of(g.expected, y, 1)[0];
        double n0 = spectrum_of(g.expected, y + 1, 0)[0], n1 = spectrum_of(g.expected, y + 1, 1)[0];
        assert_close(r0 / r1, n0 / n1, 0, 0.01); /* neighbouring pixels differ by smooth maps only */
    }
    generated_free(&g);
    o.stripe_gain = 0.0;
    g = generate(&o);
    assert_true(stripe_sigma(&g, g.expected) < 0.002);
    generated_free(&g);
}

/* The default 192 × 192 × 1334 SI: time printed, not asserted (target ≤ 3 s
 * on two cores). */
static void test_default_size_timing(void **state)
{
    (void)state;
    eelsvae_synth_options o;
    assert_ok(eelsvae_synth_options_init(&o));
    assert_ok(eelsvae_set_threads(2));
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&o, &c, NULL));
    clock_gettime(CLOCK_MONOTONIC, &t1);
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    print_message("default SI %zu × %zu × %zu generated in %.2f s on %d threads\n", ny, nx, ne,
                  (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec), eelsvae_threads());
    assert_int_equal(ne, 1334);
    eelsvae_cube_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_energy_axis),
        cmocka_unit_test(test_rejects_bad_options),
        cmocka_unit_test(test_short_struct_uses_defaults),
        cmocka_unit_test(test_realistic_init),
        cmocka_unit_test(test_thickness_variation),
        cmocka_unit_test(test_realistic_dose_matches_paper_noise),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_background_exponent),
        cmocka_unit_test(test_dose_calibration),
        cmocka_unit_test(test_fe_l3_position_and_drift),
        cmocka_unit_test(test_l3_l2_ratio),
        cmocka_unit_test(test_edge_jumps),
        cmocka_unit_test(test_o_edge_onset),
        cmocka_unit_test(test_thickness_gradient),
        cmocka_unit_test(test_noise_moments),
        cmocka_unit_test(test_poisson_at_low_dose),
        cmocka_unit_test(test_read_noise_alone),
        cmocka_unit_test(test_row_stripes),
        cmocka_unit_test(test_default_size_timing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
