/* Preprocessing: Gaussian blur, percentiles, scaling, mean and median
 * filters, and the chain. Expected values come from hand derivations, from
 * brute-force reimplementations written here independently of the library
 * (sorting instead of selection, explicit mirror loops instead of periodic
 * folding), and from SciPy/NumPy through tests/data/preprocess_oracle.py. */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* ---- helpers --------------------------------------------------------------- */

static eelsvae_cube *cube_from(const float *values, size_t ny, size_t nx, size_t ne)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create_from(values, ny, nx, ne, &c));
    return c;
}

static eelsvae_cube *copy_of(const eelsvae_cube *c)
{
    eelsvae_cube *d = NULL;
    assert_ok(eelsvae_cube_copy(c, &d));
    return d;
}

static size_t samples_of(const eelsvae_cube *c)
{
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    return ny * nx * ne;
}

/* Bitwise equality of two cubes' samples. */
static void assert_same_samples(const eelsvae_cube *a, const eelsvae_cube *b)
{
    assert_int_equal(samples_of(a), samples_of(b));
    assert_memory_equal(eelsvae_cube_data_const(a), eelsvae_cube_data_const(b), samples_of(a) * sizeof(float));
}

/* Every sample within atol + rtol·|expected|, naming the first that is not. */
static void assert_samples_close(const float *got, const double *expected, size_t n, double atol, double rtol,
                                 const char *what)
{
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - expected[i]);
        if (!(d <= atol + rtol * fabs(expected[i])))
            fail_msg("%s: sample %zu is %.9g, expected %.9g", what, i, (double)got[i], expected[i]);
    }
}

/* The Gaussian tap weights from their definition: w_k ∝ exp(−k²/2σ²) for
 * |k| ≤ r = int(4σ + 0.5), summing to 1. w must hold 2r + 1 entries; w[k + r]. */
static size_t gaussian_weights(double sigma, double *w, size_t capacity)
{
    size_t r = (size_t)(4.0 * sigma + 0.5);
    assert_true(2 * r + 1 <= capacity);
    double sum = 0.0;
    for (size_t i = 0; i < 2 * r + 1; i++) {
        double k = (double)i - (double)r;
        w[i] = exp(-k * k / (2.0 * sigma * sigma));
        sum += w[i];
    }
    for (size_t i = 0; i < 2 * r + 1; i++) w[i] /= sum;
    return r;
}

/* Mirror an out-of-range index back step by step, the way the boundary is
 * drawn: d c b a | a b c d | d c b a (each step reflects about an edge). */
static size_t mirror(long i, size_t n)
{
    long len = (long)n;
    while (i < 0 || i >= len) i = i < 0 ? -i - 1 : 2 * len - 1 - i;
    return (size_t)i;
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* ---- options ----------------------------------------------------------------- */

static void test_options_init(void **state)
{
    (void)state;
    eelsvae_preset presets[2] = {EELSVAE_PRESET_PAPER, EELSVAE_PRESET_FAST};
    for (int i = 0; i < 2; i++) {
        eelsvae_preprocess_options o;
        memset(&o, 0xAB, sizeof o);
        assert_ok(eelsvae_preprocess_options_init(&o, presets[i]));
        assert_int_equal(o.struct_size, sizeof o);
        for (int a = 0; a < 3; a++) assert_true(o.sigma[a] == 0.5);
        assert_true(o.percentile_lo == 1.0);
        assert_true(o.percentile_hi == 99.0);
        assert_int_equal(o.use_fixed_scaling, 0);
        /* the fast preset leaves out the spatial mean (preprocess.c says why) */
        assert_int_equal(o.mean_filter, presets[i] == EELSVAE_PRESET_PAPER ? 3 : 1);
        assert_int_equal(o.median_filter, 1);
    }
    assert_status(
        eelsvae_preprocess_options_init_sized(NULL, EELSVAE_PRESET_PAPER, sizeof(eelsvae_preprocess_options)),
        EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_preprocess_options o;
    assert_status(eelsvae_preprocess_options_init(&o, (eelsvae_preset)7), EELSVAE_ERR_INVALID_ARGUMENT);
}

/* ---- Gaussian blur ------------------------------------------------------------- */

/* A unit impulse blurred along energy alone gives the normalised kernel. */
static void test_blur_impulse_1d(void **state)
{
    (void)state;
    enum { NE = 31, CENTRE = 15 };
    float v[NE] = {0};
    v[CENTRE] = 1.0f;
    eelsvae_cube *c = cube_from(v, 1, 1, NE);
    assert_ok(eelsvae_cube_gaussian_blur(c, 0.0, 0.0, 2.5));
    double w[64];
    size_t r = gaussian_weights(2.5, w, 64);
    assert_int_equal(r, 10);
    double expected[NE];
    for (int e = 0; e < NE; e++) {
        int k = e - CENTRE;
        expected[e] = (k >= -(int)r && k <= (int)r) ? w[k + (int)r] : 0.0;
    }
    assert_samples_close(eelsvae_cube_data(c), expected, NE, 1e-7, 1e-5, "blurred impulse");
    eelsvae_cube_free(c);
}

/* In 3-D the impulse response is the product of the three 1-D kernels. */
static void test_blur_impulse_3d(void **state)
{
    (void)state;
    enum { NY = 13, NX = 15, NE = 17 };
    const double sy = 1.0, sx = 0.7, se = 1.2;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(NY, NX, NE, &c));
    eelsvae_cube_data(c)[(6 * NX + 7) * NE + 8] = 1.0f;
    assert_ok(eelsvae_cube_gaussian_blur(c, sy, sx, se));
    double wy[64], wx[64], we[64];
    long ry = (long)gaussian_weights(sy, wy, 64), rx = (long)gaussian_weights(sx, wx, 64),
         re = (long)gaussian_weights(se, we, 64);
    assert_int_equal(ry, 4);
    assert_int_equal(rx, 3);
    assert_int_equal(re, 5);
    double *expected = calloc(NY * NX * NE, sizeof *expected);
    assert_non_null(expected);
    for (long y = 0; y < NY; y++)
        for (long x = 0; x < NX; x++)
            for (long e = 0; e < NE; e++) {
                long dy = y - 6, dx = x - 7, de = e - 8;
                if (labs(dy) <= ry && labs(dx) <= rx && labs(de) <= re)
                    expected[(y * NX + x) * NE + e] = wy[dy + ry] * wx[dx + rx] * we[de + re];
            }
    assert_samples_close(eelsvae_cube_data(c), expected, NY * NX * NE, 1e-8, 1e-5, "3-D impulse");
    free(expected);
    eelsvae_cube_free(c);
}

/* Weights sum to 1, so a constant stays put, even when every kernel is
 * longer than its axis (radii 8, 12, 40 on axes of 4, 5, 6). */
static void test_blur_constant(void **state)
{
    (void)state;
    enum { N = 4 * 5 * 6 };
    float v[N];
    for (int i = 0; i < N; i++) v[i] = 2.5f;
    eelsvae_cube *c = cube_from(v, 4, 5, 6);
    assert_ok(eelsvae_cube_gaussian_blur(c, 2.0, 3.0, 10.0));
    const float *d = eelsvae_cube_data(c);
    for (int i = 0; i < N; i++) assert_close(d[i], 2.5, 0.0, 1e-6);
    eelsvae_cube_free(c);
}

/* An axis of length 2, σ = 2 (radius 8, four times the axis). Mirroring
 * a0 a1 outwards gives … a1 a0 | a0 a1 | a1 a0 | a0 a1 …: position q reads a0
 * when q mod 4 is 0 or 3 and a1 when it is 1 or 2. So out[i] = a0·S0(i) +
 * a1·S1(i), S0(i) summing the weights w_k with (i + k) mod 4 ∈ {0, 3}. */
static void test_blur_reflect_length_two(void **state)
{
    (void)state;
    const float a[2] = {3.0f, 7.0f};
    eelsvae_cube *c = cube_from(a, 1, 2, 1); /* the length-2 axis is x */
    assert_ok(eelsvae_cube_gaussian_blur(c, 0.0, 2.0, 0.0));
    double w[64];
    long r = (long)gaussian_weights(2.0, w, 64);
    assert_int_equal(r, 8);
    for (long i = 0; i < 2; i++) {
        double s0 = 0.0, s1 = 0.0;
        for (long k = -r; k <= r; k++) {
            long q = ((i + k) % 4 + 4) % 4;
            if (q == 0 || q == 3)
                s0 += w[k + r];
            else
                s1 += w[k + r];
        }
        assert_close(eelsvae_cube_data(c)[i], a[0] * s0 + a[1] * s1, 1e-6, 1e-6);
    }
    /* And by symmetry the two outputs mirror each other around the mean. */
    assert_close(eelsvae_cube_data(c)[0] + eelsvae_cube_data(c)[1], 10.0, 1e-5, 0.0);
    eelsvae_cube_free(c);
}

/* An axis of length 3 along energy, σ = 1 (radius 4): mirroring a b c gives
 * period 6, a b c c b a, i.e. q mod 6 = 0,5 → a; 1,4 → b; 2,3 → c. */
static void test_blur_reflect_length_three(void **state)
{
    (void)state;
    const float v[3] = {1.0f, 4.0f, 10.0f};
    const int which[6] = {0, 1, 2, 2, 1, 0};
    eelsvae_cube *c = cube_from(v, 1, 1, 3);
    assert_ok(eelsvae_cube_gaussian_blur(c, 0.0, 0.0, 1.0));
    double w[64];
    long r = (long)gaussian_weights(1.0, w, 64);
    assert_int_equal(r, 4);
    for (long i = 0; i < 3; i++) {
        double expected = 0.0;
        for (long k = -r; k <= r; k++) expected += w[k + r] * v[which[((i + k) % 6 + 6) % 6]];
        assert_close(eelsvae_cube_data(c)[i], expected, 1e-6, 1e-6);
    }
    eelsvae_cube_free(c);
}

/* σ below 1/8 gives radius 0: the identity, bit for bit; σ = 0 skips. */
static void test_blur_tiny_sigma(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(4, 5, 6, 11);
    eelsvae_cube *orig = copy_of(c);
    assert_ok(eelsvae_cube_gaussian_blur(c, 0.1, 0.0, 0.12));
    assert_same_samples(c, orig);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

static void test_blur_bad_input(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(3, 4, 5, 3);
    eelsvae_cube *orig = copy_of(c);
    assert_status(eelsvae_cube_gaussian_blur(NULL, 1, 1, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_gaussian_blur(c, -0.5, 1, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "sigma_y"));
    assert_status(eelsvae_cube_gaussian_blur(c, 1, -1e-9, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "sigma_x"));
    assert_status(eelsvae_cube_gaussian_blur(c, 1, 1, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "sigma_e"));
    assert_status(eelsvae_cube_gaussian_blur(c, INFINITY, 1, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_gaussian_blur(c, 1, 1, 1e7), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_same_samples(c, orig);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

/* ---- percentiles ------------------------------------------------------------- */

/* 1 … 100 in a scrambled order: position h = 99·p/100, so p = 1 → 1.99,
 * p = 99 → 99.01, p = 50 → 50.5, p = 0 → 1, p = 100 → 100. */
static void test_percentiles_one_to_hundred(void **state)
{
    (void)state;
    float v[100];
    for (int i = 0; i < 100; i++) v[i] = (float)((i * 37) % 100 + 1); /* 37 is coprime to 100 */
    eelsvae_cube *c = cube_from(v, 4, 5, 5);
    double lo = 0, hi = 0;
    assert_ok(eelsvae_cube_percentiles(c, 1, 99, &lo, &hi));
    assert_close(lo, 1.99, 1e-12, 1e-12);
    assert_close(hi, 99.01, 1e-12, 1e-12);
    assert_ok(eelsvae_cube_percentiles(c, 0, 100, &lo, &hi));
    assert_true(lo == 1.0 && hi == 100.0);
    assert_ok(eelsvae_cube_percentiles(c, 50, 50.5, &lo, &hi));
    assert_close(lo, 50.5, 1e-12, 0);
    assert_close(hi, 50.995, 1e-12, 0); /* h = 49.995 */
    /* The cube itself is untouched by the selection on its copy. */
    for (int i = 0; i < 100; i++) assert_true(eelsvae_cube_data(c)[i] == v[i]);
    eelsvae_cube_free(c);
}

/* {4, 1, 3, 2}: p = 25 sits at h = 3·0.25 = 0.75 between 1 and 2 → 1.75;
 * p = 75 at h = 2.25 between 3 and 4 → 3.25; p = 40 at h = 1.2 → 2.2. */
static void test_percentiles_interpolation(void **state)
{
    (void)state;
    const float v[4] = {4, 1, 3, 2};
    eelsvae_cube *c = cube_from(v, 2, 1, 2);
    double lo = 0, hi = 0;
    assert_ok(eelsvae_cube_percentiles(c, 25, 75, &lo, &hi));
    assert_close(lo, 1.75, 1e-12, 0);
    assert_close(hi, 3.25, 1e-12, 0);
    assert_ok(eelsvae_cube_percentiles(c, 40, 41, &lo, &hi));
    assert_close(lo, 2.2, 1e-12, 0);
    assert_close(hi, 2.23, 1e-12, 0);
    /* Adjacent positions: h = 1.2 → 2.2 and h = 2.1 → 3.1. */
    assert_ok(eelsvae_cube_percentiles(c, 40, 70, &lo, &hi));
    assert_close(lo, 2.2, 1e-12, 0);
    assert_close(hi, 3.1, 1e-12, 0);
    eelsvae_cube_free(c);
    /* One sample: every percentile is that sample. */
    const float one = -3.5f;
    c = cube_from(&one, 1, 1, 1);
    assert_ok(eelsvae_cube_percentiles(c, 0, 100, &lo, &hi));
    assert_true(lo == -3.5 && hi == -3.5);
    eelsvae_cube_free(c);
}

/* Selection against a full sort on 200 018 samples, a third of them tied on
 * a 1/64 grid, across the whole range of percentile pairs. */
static void test_percentiles_against_sort(void **state)
{
    (void)state;
    enum { NY = 7, NX = 13, NE = 2198, N = NY * NX * NE };
    eelsvae_cube *c = tu_random_cube(NY, NX, NE, 99);
    float *d = eelsvae_cube_data(c);
    for (size_t i = 0; i < N; i += 3) d[i] = floorf((d[i] - 0.3f) * 640.0f) / 64.0f;
    float *sorted = malloc(N * sizeof *sorted);
    assert_non_null(sorted);
    memcpy(sorted, d, N * sizeof *sorted);
    qsort(sorted, N, sizeof *sorted, compare_floats);
    const double pairs[][2] = {{0, 100}, {1, 99}, {0.1, 99.9}, {25, 75}, {49.999, 50}, {50, 50.001},
                               {0, 1e-4}, {99.9999, 100}, {33.3, 33.4}};
    for (size_t t = 0; t < sizeof pairs / sizeof pairs[0]; t++) {
        double got[2] = {0, 0};
        assert_ok(eelsvae_cube_percentiles(c, pairs[t][0], pairs[t][1], &got[0], &got[1]));
        for (int s = 0; s < 2; s++) {
            double h = (double)(N - 1) * pairs[t][s] / 100.0;
            size_t below = (size_t)floor(h);
            size_t above = below + 1 < N ? below + 1 : below;
            double expected = sorted[below] + (h - floor(h)) * (sorted[above] - sorted[below]);
            assert_close(got[s], expected, 1e-9, 1e-9);
        }
    }
    free(sorted);
    eelsvae_cube_free(c);
}

static void test_percentiles_bad_input(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(3, 4, 5, 5);
    double lo = -7, hi = -7;
    assert_status(eelsvae_cube_percentiles(NULL, 1, 99, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, 1, 99, NULL, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, 1, 99, &lo, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, 50, 50, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, 60, 40, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, -1, 40, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, 1, 100.5, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_percentiles(c, NAN, 99, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
    /* A NaN at pixel (y 1, x 2), channel 3 is named. */
    eelsvae_cube_data(c)[(1 * 4 + 2) * 5 + 3] = NAN;
    assert_status(eelsvae_cube_percentiles(c, 1, 99, &lo, &hi), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "y 1, x 2"));
    assert_non_null(strstr(eelsvae_last_error(), "channel 3"));
    eelsvae_cube_data(c)[(1 * 4 + 2) * 5 + 3] = -INFINITY;
    assert_status(eelsvae_cube_percentiles(c, 1, 99, &lo, &hi), EELSVAE_ERR_NUMERIC);
    /* Outputs untouched on failure. */
    assert_true(lo == -7 && hi == -7);
    eelsvae_cube_free(c);
}

/* ---- scaling ------------------------------------------------------------------ */

/* lo = 0.5, hi = 2.5: (v − 0.5)/2, clamped. */
static void test_scale(void **state)
{
    (void)state;
    const float v[6] = {-1.0f, 0.5f, 1.0f, 1.5f, 2.5f, 9.0f};
    const double expected[6] = {0.0, 0.0, 0.25, 0.5, 1.0, 1.0};
    eelsvae_cube *c = cube_from(v, 1, 2, 3);
    assert_ok(eelsvae_cube_scale(c, 0.5, 2.5));
    assert_samples_close(eelsvae_cube_data(c), expected, 6, 1e-7, 0, "scaled");
    eelsvae_cube_free(c);

    /* A range so small its reciprocal overflows: lo still maps to 0 (not
     * NaN from 0·∞), anything above to 1. */
    const float edge[3] = {0.0f, 1e-30f, -1.0f};
    const double edge_expected[3] = {0.0, 1.0, 0.0};
    c = cube_from(edge, 1, 1, 3);
    assert_ok(eelsvae_cube_scale(c, 0.0, 1e-310));
    assert_samples_close(eelsvae_cube_data(c), edge_expected, 3, 0, 0, "scaled with a tiny range");
    eelsvae_cube_free(c);

    c = cube_from(v, 1, 2, 3);
    eelsvae_cube *orig = copy_of(c);
    assert_status(eelsvae_cube_scale(NULL, 0, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_scale(c, 1, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_scale(c, 2, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_scale(c, NAN, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_scale(c, 0, INFINITY), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_scale(c, -1e308, 1e308), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_same_samples(c, orig);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

/* ---- mean filter ---------------------------------------------------------------- */

/* 3 × 3 image 1 … 9 (channel 1 holds ten times channel 0). Columns first:
 * the window over (p, q, r) with mirrored edges gives (2p + q)/3, (p + q + r)/3,
 * (q + 2r)/3, so the columns become [[2,3,4],[4,5,6],[6,7,8]]; the same along
 * rows gives [[7,9,11],[13,15,17],[19,21,23]]/3. */
static void test_mean_filter_by_hand(void **state)
{
    (void)state;
    /* One row of 5 pixels, 2 channels, k = 3: the windows are pixels 0–2,
     * 0–2, 1–3, 2–4, 2–4 (shifted inward at the ends, never mirrored), so
     * 1 2 3 4 5 → 2 2 3 4 4; the column of one pixel is left alone. */
    float v[10];
    for (int i = 0; i < 5; i++) {
        v[2 * i] = (float)(i + 1);
        v[2 * i + 1] = 10.0f * (float)(i + 1);
    }
    eelsvae_cube *c = cube_from(v, 1, 5, 2);
    assert_ok(eelsvae_cube_mean_filter(c, 3));
    const double want[5] = {2, 2, 3, 4, 4};
    double expected[10];
    for (int i = 0; i < 5; i++) {
        expected[2 * i] = want[i];
        expected[2 * i + 1] = 10.0 * want[i];
    }
    assert_samples_close(eelsvae_cube_data(c), expected, 10, 1e-6, 1e-6, "3-wide mean along a row");
    eelsvae_cube_free(c);
}

/* Noise falls alike everywhere: on independent unit-variance noise every
 * pixel of a 3 × 3 mean, the frame and corners included, averages nine
 * distinct pixels, so its variance over many channels is 1/9 (a mirrored
 * window would leave an edge 5/27 and a corner 25/81). */
static void test_mean_filter_uniform_noise(void **state)
{
    (void)state;
    enum { NY = 5, NX = 4, NE = 20000 };
    eelsvae_cube *c = tu_random_cube(NY, NX, NE, 77); /* uniform on [0, 1): variance 1/12 */
    assert_ok(eelsvae_cube_mean_filter(c, 3));
    const float *d = eelsvae_cube_data(c);
    for (size_t p = 0; p < NY * NX; p++) {
        double m = 0, v = 0;
        for (size_t e = 0; e < NE; e++) m += d[p * NE + e];
        m /= NE;
        for (size_t e = 0; e < NE; e++) v += (d[p * NE + e] - m) * (d[p * NE + e] - m);
        v /= NE - 1;
        if (!(fabs(v * 12.0 * 9.0 - 1.0) < 0.05))
            fail_msg("pixel %zu: variance %.5f x 108 = %.3f, expected 1 (nine distinct pixels)", p, v, v * 108.0);
    }
    eelsvae_cube_free(c);
}

/* The window of pixel i on an axis of n: k wide (all n when shorter),
 * centred, shifted inward at the ends. */
static void inward_window(size_t i, size_t n, size_t k, size_t *first, size_t *width)
{
    size_t w = k < n ? k : n, r = k / 2;
    size_t f = i > r ? i - r : 0;
    if (f + w > n) f = n - w;
    *first = f;
    *width = w;
}

/* Brute force: average the window's pixels in double. */
static void brute_mean(const float *src, size_t ny, size_t nx, size_t ne, size_t k, double *out)
{
    for (size_t y = 0; y < ny; y++)
        for (size_t x = 0; x < nx; x++) {
            size_t fy, wy, fx, wx;
            inward_window(y, ny, k, &fy, &wy);
            inward_window(x, nx, k, &fx, &wx);
            for (size_t e = 0; e < ne; e++) {
                double s = 0.0;
                for (size_t v = fy; v < fy + wy; v++)
                    for (size_t u = fx; u < fx + wx; u++) s += src[(v * nx + u) * ne + e];
                out[(y * nx + x) * ne + e] = s / (double)(wy * wx);
            }
        }
}

/* Windows up to many times wider than the cube (k = 21 on 3 × 4), where
 * each pixel averages the whole axis. */
static void test_mean_filter_brute_force(void **state)
{
    (void)state;
    const struct {
        size_t ny, nx, ne;
    } shapes[] = {{7, 6, 5}, {3, 4, 2}};
    const size_t sides[] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 21};
    double expected[7 * 6 * 5];
    for (size_t s = 0; s < 2; s++)
        for (size_t t = 0; t < sizeof sides / sizeof sides[0]; t++) {
            size_t ny = shapes[s].ny, nx = shapes[s].nx, ne = shapes[s].ne;
            eelsvae_cube *c = tu_random_cube(ny, nx, ne, 21 + t);
            brute_mean(eelsvae_cube_data(c), ny, nx, ne, sides[t], expected);
            assert_ok(eelsvae_cube_mean_filter(c, sides[t]));
            assert_samples_close(eelsvae_cube_data(c), expected, ny * nx * ne, 1e-6, 1e-5, "mean filter");
            eelsvae_cube_free(c);
        }
}

/* ---- median filter -------------------------------------------------------------- */

/* [[9,1,5],[2,8,3],[7,4,6]] with mirrored edges. E.g. at (0, 0) the window
 * holds a00 four times, a01 and a10 twice, a11 once: 1 1 2 2 [8] 9 9 9 9;
 * at (2, 1): 2 8 3 / 7 4 6 / 7 4 6 → 2 3 4 4 [6] 6 7 7 8. */
static void test_median_filter_by_hand(void **state)
{
    (void)state;
    const float v[9] = {9, 1, 5, 2, 8, 3, 7, 4, 6};
    const double expected[9] = {8, 5, 5, 7, 5, 5, 7, 6, 6};
    eelsvae_cube *c = cube_from(v, 3, 3, 1);
    assert_ok(eelsvae_cube_median_filter(c, 3));
    assert_samples_close(eelsvae_cube_data(c), expected, 9, 0, 0, "3x3 median");
    eelsvae_cube_free(c);
    /* k = 1 is the identity. */
    c = cube_from(v, 3, 3, 1);
    assert_ok(eelsvae_cube_median_filter(c, 1));
    assert_memory_equal(eelsvae_cube_data(c), v, sizeof v);
    eelsvae_cube_free(c);
}

/* Brute force: sort the k × k mirrored window, take the middle. */
static void brute_median(const float *src, size_t ny, size_t nx, size_t ne, size_t k, double *out)
{
    long r = (long)k / 2;
    float *w = malloc(k * k * sizeof *w);
    assert_non_null(w);
    for (size_t y = 0; y < ny; y++)
        for (size_t x = 0; x < nx; x++)
            for (size_t e = 0; e < ne; e++) {
                size_t t = 0;
                for (long dy = -r; dy <= r; dy++)
                    for (long dx = -r; dx <= r; dx++)
                        w[t++] = src[(mirror((long)y + dy, ny) * nx + mirror((long)x + dx, nx)) * ne + e];
                qsort(w, t, sizeof *w, compare_floats);
                out[(y * nx + x) * ne + e] = w[t / 2];
            }
    free(w);
}

static void test_median_filter_brute_force(void **state)
{
    (void)state;
    enum { NY = 7, NX = 6, NE = 37, N = NY * NX * NE };
    const size_t sides[] = {3, 5, 7, 17};
    static double expected[N];
    for (size_t t = 0; t < sizeof sides / sizeof sides[0]; t++) {
        eelsvae_cube *c = tu_random_cube(NY, NX, NE, 31 + t);
        /* Ties too: half the samples on a coarse grid. */
        float *d = eelsvae_cube_data(c);
        for (size_t i = 0; i < N; i += 2) d[i] = floorf(d[i] * 4.0f);
        brute_median(d, NY, NX, NE, sides[t], expected);
        assert_ok(eelsvae_cube_median_filter(c, sides[t]));
        assert_samples_close(eelsvae_cube_data(c), expected, N, 0, 0, "median filter");
        eelsvae_cube_free(c);
    }
}

static void test_filters_bad_input(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(3, 4, 5, 3);
    eelsvae_cube *orig = copy_of(c);
    assert_status(eelsvae_cube_mean_filter(NULL, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_mean_filter(c, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_mean_filter(c, 2), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_mean_filter(c, 4), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_median_filter(NULL, 3), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_median_filter(c, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_median_filter(c, 6), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_median_filter(c, 257), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_same_samples(c, orig);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

/* ---- SciPy / NumPy oracle ----------------------------------------------------------- */

enum { OY = 9, OX = 11, OE = 37, ON = OY * OX * OE };

static void write_raw(const char *path, const float *data, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, sizeof(float), n, f), n);
    assert_int_equal(fclose(f), 0);
}

static void read_raw_as_double(const char *path, double *out, size_t n)
{
    float *tmp = malloc(n * sizeof *tmp);
    assert_non_null(tmp);
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("oracle output %s is missing", path);
    assert_int_equal(fread(tmp, sizeof(float), n, f), n);
    assert_int_equal(fgetc(f), EOF);
    fclose(f);
    for (size_t i = 0; i < n; i++) out[i] = tmp[i];
    free(tmp);
}

static void read_pair(const char *path, double *a, double *b)
{
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("oracle output %s is missing", path);
    assert_int_equal(fscanf(f, "%lf %lf", a, b), 2);
    fclose(f);
}

static const double oracle_blurs[][3] = {
    {0.5, 0.5, 0.5}, {1.3, 0.0, 2.2}, {3.0, 0.8, 0.0}, /* radius 12 > 9 rows and 11 columns */
    {0.0, 5.0, 12.0},                                   /* radii 20 > 11 and 48 > 37 */
    {0.2, 0.1, 0.3},
};
static const size_t oracle_means[] = {3, 5, 25};
static const size_t oracle_medians[] = {3, 5, 27};
static const double oracle_percentiles[][2] = {{1, 99}, {0, 100}, {37.5, 62.5}, {0.3, 0.35}};
/* σy, σx, σe, p_lo, p_hi, mean, median */
static const double oracle_chains[][7] = {{0.5, 0.5, 0.5, 1, 99, 3, 1}, {1.0, 0.7, 2.0, 5, 95, 5, 3}};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static char *oracle_arguments(void)
{
    static char args[2048];
    size_t used = 0;
    args[0] = '\0';
    for (size_t i = 0; i < COUNT(oracle_blurs); i++)
        used += (size_t)snprintf(args + used, sizeof args - used, " --blur %.17g,%.17g,%.17g", oracle_blurs[i][0],
                                 oracle_blurs[i][1], oracle_blurs[i][2]);
    for (size_t i = 0; i < COUNT(oracle_means); i++)
        used += (size_t)snprintf(args + used, sizeof args - used, " --mean %zu", oracle_means[i]);
    for (size_t i = 0; i < COUNT(oracle_medians); i++)
        used += (size_t)snprintf(args + used, sizeof args - used, " --median %zu", oracle_medians[i]);
    for (size_t i = 0; i < COUNT(oracle_percentiles); i++)
        used += (size_t)snprintf(args + used, sizeof args - used, " --percentile %.17g,%.17g",
                                 oracle_percentiles[i][0], oracle_percentiles[i][1]);
    for (size_t i = 0; i < COUNT(oracle_chains); i++) {
        used += (size_t)snprintf(args + used, sizeof args - used, " --chain ");
        for (int j = 0; j < 7; j++)
            used += (size_t)snprintf(args + used, sizeof args - used, "%s%.17g", j ? "," : "", oracle_chains[i][j]);
    }
    assert_true(used < sizeof args);
    return args;
}

static const char *oracle_script(void)
{
    static char path[1024];
    const char *data = getenv("EELSVAE_TEST_DATA");
    if (data && *data)
        snprintf(path, sizeof path, "%s/preprocess_oracle.py", data);
    else
        snprintf(path, sizeof path, "%s", "tests/data/preprocess_oracle.py");
    return path;
}

static void compare_with_oracle(eelsvae_cube *c, const char *file, const char *what)
{
    static double expected[ON];
    read_raw_as_double(tu_path(file), expected, ON);
    assert_samples_close(eelsvae_cube_data(c), expected, ON, 1e-6, 1e-5, what);
}

static void test_scipy_oracle(void **state)
{
    (void)state;
    const char *py = tu_python();
    if (!py) tu_skip("no /usr/bin/python3 with NumPy; SciPy oracle not run");
    if (tu_system("%s -c 'import scipy.ndimage' >/dev/null 2>&1", py) != 0)
        tu_skip("SciPy is not installed; SciPy oracle not run");
    /* Values spread over [-3, 5) so that the scaling and clipping bite. */
    eelsvae_cube *input = tu_random_cube(OY, OX, OE, 2024);
    float *d = eelsvae_cube_data(input);
    for (size_t i = 0; i < ON; i++) d[i] = 8.0f * d[i] - 3.0f;
    write_raw(tu_path("pp_input.f32"), d, ON);
    int rc = tu_system("%s %s %s %d %d %d %s%s", py, oracle_script(), tu_path("pp_input.f32"), OY, OX, OE,
                       tu_tmpdir(), oracle_arguments());
    assert_int_equal(rc, 0);

    char name[64];
    for (size_t i = 0; i < COUNT(oracle_blurs); i++) {
        eelsvae_cube *c = copy_of(input);
        assert_ok(eelsvae_cube_gaussian_blur(c, oracle_blurs[i][0], oracle_blurs[i][1], oracle_blurs[i][2]));
        snprintf(name, sizeof name, "blur_%zu.f32", i);
        compare_with_oracle(c, name, name);
        eelsvae_cube_free(c);
    }
    for (size_t i = 0; i < COUNT(oracle_means); i++) {
        eelsvae_cube *c = copy_of(input);
        assert_ok(eelsvae_cube_mean_filter(c, oracle_means[i]));
        snprintf(name, sizeof name, "mean_%zu.f32", i);
        compare_with_oracle(c, name, name);
        eelsvae_cube_free(c);
    }
    for (size_t i = 0; i < COUNT(oracle_medians); i++) {
        eelsvae_cube *c = copy_of(input);
        assert_ok(eelsvae_cube_median_filter(c, oracle_medians[i]));
        snprintf(name, sizeof name, "median_%zu.f32", i);
        compare_with_oracle(c, name, name);
        eelsvae_cube_free(c);
    }
    for (size_t i = 0; i < COUNT(oracle_percentiles); i++) {
        double lo = 0, hi = 0, want_lo = 0, want_hi = 0;
        assert_ok(eelsvae_cube_percentiles(input, oracle_percentiles[i][0], oracle_percentiles[i][1], &lo, &hi));
        snprintf(name, sizeof name, "percentile_%zu.txt", i);
        read_pair(tu_path(name), &want_lo, &want_hi);
        assert_close(lo, want_lo, 1e-12, 1e-12);
        assert_close(hi, want_hi, 1e-12, 1e-12);
    }
    for (size_t i = 0; i < COUNT(oracle_chains); i++) {
        const double *ch = oracle_chains[i];
        eelsvae_preprocess_options o;
        assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
        for (int a = 0; a < 3; a++) o.sigma[a] = ch[a];
        o.percentile_lo = ch[3];
        o.percentile_hi = ch[4];
        o.mean_filter = (size_t)ch[5];
        o.median_filter = (size_t)ch[6];
        eelsvae_cube *c = copy_of(input);
        double lo = 0, hi = 0, want_lo = 0, want_hi = 0;
        assert_ok(eelsvae_cube_preprocess(c, &o, &lo, &hi));
        snprintf(name, sizeof name, "chain_%zu.txt", i);
        read_pair(tu_path(name), &want_lo, &want_hi);
        /* The blurred cube is float32 here and float64 in SciPy. */
        assert_close(lo, want_lo, 1e-6, 1e-5);
        assert_close(hi, want_hi, 1e-6, 1e-5);
        snprintf(name, sizeof name, "chain_%zu.f32", i);
        compare_with_oracle(c, name, name);
        eelsvae_cube_free(c);
    }
    eelsvae_cube_free(input);
}

/* ---- the chain --------------------------------------------------------------------- */

/* The returned scaling, fed back as fixed scaling, reproduces the output bit
 * for bit; and it equals the percentiles of the blurred input. */
static void test_chain_fixed_scaling_round_trip(void **state)
{
    (void)state;
    eelsvae_cube *a = tu_random_cube(12, 10, 29, 7);
    eelsvae_cube *b = copy_of(a);
    eelsvae_cube *blurred = copy_of(a);
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
    o.median_filter = 3;
    double lo = 0, hi = 0;
    assert_ok(eelsvae_cube_preprocess(a, &o, &lo, &hi));

    double want_lo = 0, want_hi = 0;
    assert_ok(eelsvae_cube_gaussian_blur(blurred, 0.5, 0.5, 0.5));
    assert_ok(eelsvae_cube_percentiles(blurred, 1, 99, &want_lo, &want_hi));
    assert_true(lo == want_lo && hi == want_hi);
    assert_true(hi > lo);

    o.use_fixed_scaling = 1;
    o.scale_lo = lo;
    o.scale_hi = hi;
    double lo2 = 0, hi2 = 0;
    assert_ok(eelsvae_cube_preprocess(b, &o, &lo2, &hi2));
    assert_true(lo2 == lo && hi2 == hi);
    assert_same_samples(a, b);

    /* The output is in [0, 1] (scaling clips, the filters average or pick). */
    const float *d = eelsvae_cube_data(a);
    for (size_t i = 0; i < samples_of(a); i++) assert_true(d[i] >= 0.0f && d[i] <= 1.0f);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
    eelsvae_cube_free(blurred);
}

/* The chain equals its steps applied one by one through the public calls. */
static void test_chain_equals_steps(void **state)
{
    (void)state;
    eelsvae_cube *a = tu_random_cube(8, 9, 23, 8);
    eelsvae_cube *b = copy_of(a);
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_FAST));
    o.sigma[1] = 1.5;
    o.percentile_lo = 2;
    o.percentile_hi = 97;
    o.mean_filter = 5;
    o.median_filter = 3;
    assert_ok(eelsvae_cube_preprocess(a, &o, NULL, NULL));
    double lo = 0, hi = 0;
    assert_ok(eelsvae_cube_gaussian_blur(b, 0.5, 1.5, 0.5));
    assert_ok(eelsvae_cube_percentiles(b, 2, 97, &lo, &hi));
    assert_ok(eelsvae_cube_scale(b, lo, hi));
    assert_ok(eelsvae_cube_mean_filter(b, 5));
    assert_ok(eelsvae_cube_median_filter(b, 3));
    assert_same_samples(a, b);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* A caller built against an older, shorter struct: the fields past its
 * struct_size are not read (median_filter keeps its default of 1). */
static void test_chain_short_struct(void **state)
{
    (void)state;
    eelsvae_cube *a = tu_random_cube(6, 7, 11, 9);
    eelsvae_cube *b = copy_of(a);
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
    assert_ok(eelsvae_cube_preprocess(a, &o, NULL, NULL));
    o.struct_size = offsetof(eelsvae_preprocess_options, median_filter);
    o.median_filter = 4; /* invalid, but beyond struct_size */
    assert_ok(eelsvae_cube_preprocess(b, &o, NULL, NULL));
    assert_same_samples(a, b);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* Results do not depend on the thread count. */
static void test_thread_count_independence(void **state)
{
    (void)state;
    eelsvae_cube *ref = NULL;
    const int counts[] = {1, 2, 3};
    for (size_t t = 0; t < 3; t++) {
        assert_ok(eelsvae_set_threads(counts[t]));
        eelsvae_cube *c = tu_random_cube(17, 13, 41, 5);
        eelsvae_preprocess_options o;
        assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
        o.sigma[0] = 1.7;
        o.median_filter = 3;
        assert_ok(eelsvae_cube_preprocess(c, &o, NULL, NULL));
        assert_ok(eelsvae_cube_median_filter(c, 5));
        if (!ref) {
            ref = c;
        } else {
            assert_same_samples(c, ref);
            eelsvae_cube_free(c);
        }
    }
    assert_ok(eelsvae_set_threads(0));
    eelsvae_cube_free(ref);
}

typedef void (*options_edit)(eelsvae_preprocess_options *o);
static void bad_sigma(eelsvae_preprocess_options *o) { o->sigma[1] = -1.0; }
static void nan_sigma(eelsvae_preprocess_options *o) { o->sigma[2] = NAN; }
static void crossed_percentiles(eelsvae_preprocess_options *o) { o->percentile_lo = 99; o->percentile_hi = 1; }
static void equal_percentiles(eelsvae_preprocess_options *o) { o->percentile_lo = 50; o->percentile_hi = 50; }
static void negative_percentile(eelsvae_preprocess_options *o) { o->percentile_lo = -0.5; }
static void big_percentile(eelsvae_preprocess_options *o) { o->percentile_hi = 100.5; }
static void crossed_scaling(eelsvae_preprocess_options *o)
{
    o->use_fixed_scaling = 1;
    o->scale_lo = 1;
    o->scale_hi = 0;
}
static void nan_scaling(eelsvae_preprocess_options *o) { o->use_fixed_scaling = 1; o->scale_lo = NAN; }
static void even_mean(eelsvae_preprocess_options *o) { o->mean_filter = 2; }
static void zero_mean(eelsvae_preprocess_options *o) { o->mean_filter = 0; }
static void even_median(eelsvae_preprocess_options *o) { o->median_filter = 4; }
static void zero_median(eelsvae_preprocess_options *o) { o->median_filter = 0; }
static void zero_struct_size(eelsvae_preprocess_options *o) { o->struct_size = 0; }

static void test_chain_bad_input(void **state)
{
    (void)state;
    const struct {
        options_edit edit;
        const char *field; /* the message must name it */
    } cases[] = {
        {bad_sigma, "sigma[1]"},           {nan_sigma, "sigma[2]"},
        {crossed_percentiles, "percentile_lo"}, {equal_percentiles, "percentile_hi"},
        {negative_percentile, "percentile_lo"}, {big_percentile, "percentile_hi"},
        {crossed_scaling, "scale_hi"},     {nan_scaling, "scale_lo"},
        {even_mean, "mean_filter"},        {zero_mean, "mean_filter"},
        {even_median, "median_filter"},    {zero_median, "median_filter"},
        {zero_struct_size, "struct_size"},
    };
    eelsvae_cube *c = tu_random_cube(5, 6, 7, 4);
    eelsvae_cube *orig = copy_of(c);
    for (size_t i = 0; i < COUNT(cases); i++) {
        eelsvae_preprocess_options o;
        assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
        cases[i].edit(&o);
        double lo = -5, hi = -5;
        assert_status(eelsvae_cube_preprocess(c, &o, &lo, &hi), EELSVAE_ERR_INVALID_ARGUMENT);
        if (!strstr(eelsvae_last_error(), cases[i].field))
            fail_msg("case %zu: message \"%s\" does not name %s", i, eelsvae_last_error(), cases[i].field);
        assert_true(lo == -5 && hi == -5);
        assert_same_samples(c, orig);
    }
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
    assert_status(eelsvae_cube_preprocess(NULL, &o, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_preprocess(c, NULL, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);

    /* Non-finite samples: NUMERIC naming the pixel, cube unchanged. */
    eelsvae_cube_data(c)[(2 * 6 + 5) * 7 + 6] = INFINITY;
    eelsvae_cube *with_inf = copy_of(c);
    assert_status(eelsvae_cube_preprocess(c, &o, NULL, NULL), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "y 2, x 5"));
    assert_same_samples(c, with_inf);
    eelsvae_cube_free(with_inf);
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);

    /* A constant cube cannot be scaled to its percentiles (NUMERIC, cube
     * unchanged), but can with fixed scaling. */
    c = NULL;
    assert_ok(eelsvae_cube_create(4, 4, 9, &c));
    for (size_t i = 0; i < 4 * 4 * 9; i++) eelsvae_cube_data(c)[i] = 3.0f;
    assert_status(eelsvae_cube_preprocess(c, &o, NULL, NULL), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "constant"));
    for (size_t i = 0; i < 4 * 4 * 9; i++) assert_true(eelsvae_cube_data(c)[i] == 3.0f);
    o.use_fixed_scaling = 1;
    o.scale_lo = 2.0;
    o.scale_hi = 4.0;
    assert_ok(eelsvae_cube_preprocess(c, &o, NULL, NULL));
    for (size_t i = 0; i < 4 * 4 * 9; i++) assert_close(eelsvae_cube_data(c)[i], 0.5, 1e-6, 0);
    eelsvae_cube_free(c);
}

/* Every allocation may fail: each call then reports NOMEM with a message
 * and leaves the cube exactly as it was. */
/* ---- choosing the spatial mean by the noise ---------------------------------- */

/* Median over pixels of the PCC between `noisy` and `truth` over channels
 * first … first + n − 1, both blurred by σ = 0.5 on every axis (scaling does
 * not change a PCC): the quantity the estimate predicts, measured. */
static double measured_noise_pcc(const eelsvae_cube *noisy, const eelsvae_cube *truth, size_t first, size_t n)
{
    eelsvae_cube *a = copy_of(noisy), *b = copy_of(truth);
    assert_ok(eelsvae_cube_gaussian_blur(a, 0.5, 0.5, 0.5));
    assert_ok(eelsvae_cube_gaussian_blur(b, 0.5, 0.5, 0.5));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(a, &ny, &nx, &ne);
    double *pcc = malloc(ny * nx * sizeof *pcc);
    assert_non_null(pcc);
    for (size_t p = 0; p < ny * nx; p++) {
        const float *u = eelsvae_cube_data_const(a) + p * ne + first, *v = eelsvae_cube_data_const(b) + p * ne + first;
        double mu = 0, mv = 0, uv = 0, uu = 0, vv = 0;
        for (size_t i = 0; i < n; i++) mu += u[i], mv += v[i];
        mu /= (double)n;
        mv /= (double)n;
        for (size_t i = 0; i < n; i++) {
            uv += (u[i] - mu) * (v[i] - mv);
            uu += (u[i] - mu) * (u[i] - mu);
            vv += (v[i] - mv) * (v[i] - mv);
        }
        pcc[p] = uv / sqrt(uu * vv);
    }
    double m = evae_median_doubles(pcc, ny * nx);
    free(pcc);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
    return m;
}

/* On the realistic synthetic SI at a dose where the mean is needed, one near
 * its threshold and the default one, where the blur is not needed, the
 * estimate from the noisy cube alone is within 0.02 of the PCC measured
 * against the noise-free cube, and the choice follows it; the caller's
 * mean_filter is overwritten, the spatial sigma zeroed or kept, nothing else
 * changes. */
static void test_choose_spatial_synthetic(void **state)
{
    (void)state;
    const double doses[] = {9.0, 60.0, 1000.0};
    const size_t want[] = {3, 1, 1};
    const double want_sigma[] = {0.5, 0.5, 0.0};
    for (size_t d = 0; d < 3; d++) {
        eelsvae_synth_options so;
        assert_ok(eelsvae_synth_options_init_realistic(&so));
        so.ny = so.nx = 20;
        so.dose = doses[d];
        eelsvae_cube *noisy = NULL, *truth = NULL;
        assert_ok(eelsvae_synth_generate(&so, &noisy, &truth));
        size_t first = 0, n = 0;
        assert_ok(eelsvae_cube_energy_window(noisy, 690, 730, &first, &n));
        eelsvae_preprocess_options o, before;
        assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_FAST));
        o.mean_filter = 7;
        before = o;
        double estimate = -1;
        assert_ok(eelsvae_preprocess_options_choose_spatial(&o, noisy, 690, 730, &estimate));
        double measured = measured_noise_pcc(noisy, truth, first, n);
        if (!(fabs(estimate - measured) <= 0.02))
            fail_msg("dose %g: estimated noise PCC %.4f, measured %.4f", doses[d], estimate, measured);
        assert_int_equal(o.mean_filter, want[d]);
        assert_int_equal(o.mean_filter, estimate < EELSVAE_MEAN_FILTER_BELOW_PCC ? 3 : 1);
        assert_true(o.sigma[0] == want_sigma[d] && o.sigma[1] == want_sigma[d]);
        assert_true(o.sigma[0] == (estimate >= EELSVAE_SPATIAL_BLUR_BELOW_PCC ? 0.0 : 0.5));
        before.mean_filter = o.mean_filter;
        before.sigma[0] = before.sigma[1] = want_sigma[d];
        assert_memory_equal(&o, &before, sizeof o);
        eelsvae_cube_free(noisy);
        eelsvae_cube_free(truth);
    }
}

/* By hand: a straight line has no curvature, so no noise (PCC 1); an
 * alternating ±1 is all curvature (|Δ²| = 4, N = 16/6 > its variance 1), so
 * no signal (PCC 0), whatever the blur. The median of {1, 1, 0} pixels is 1
 * (no mean, no spatial blur) and of {0, 0, 1} is 0 (the mean, the blur
 * kept); a constant pixel is left out of the median. */
static void test_choose_spatial_by_hand(void **state)
{
    (void)state;
    enum { NE = 12 };
    float v[4][NE];
    for (int i = 0; i < NE; i++) {
        v[0][i] = (float)i;              /* line */
        v[1][i] = (i % 2) ? 1.0f : -1.0f; /* alternating */
        v[2][i] = 5.0f;                  /* constant: left out */
        v[3][i] = (float)i;
    }
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_FAST));
    const int rows[2][4] = {{0, 3, 1, 2}, {1, 1, 0, 2}};
    const double want[2] = {1.0, 0.0};
    for (int c = 0; c < 2; c++) {
        float data[4 * NE];
        for (int p = 0; p < 4; p++) memcpy(data + p * NE, v[rows[c][p]], sizeof v[0]);
        eelsvae_cube *cube = cube_from(data, 2, 2, NE);
        assert_ok(eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, 100.0, 1.0, "eV"));
        double pcc = -1;
        o.sigma[0] = o.sigma[1] = 0.5;
        o.sigma[2] = 0.0;
        assert_ok(eelsvae_preprocess_options_choose_spatial(&o, cube, 100, 100 + NE - 1, &pcc));
        assert_true(fabs(pcc - want[c]) < 1e-12);
        assert_int_equal(o.mean_filter, c == 0 ? 1 : 3);
        assert_true(o.sigma[0] == (c == 0 ? 0.0 : 0.5) && o.sigma[1] == o.sigma[0] && o.sigma[2] == 0.0);
        eelsvae_cube_free(cube);
    }
}

/* Refusals: NULLs, bad options, an uncalibrated axis, a window of too few
 * channels or outside the axis, a cube constant over the window. */
static void test_choose_spatial_bad_input(void **state)
{
    (void)state;
    eelsvae_cube *cube = tu_random_cube(3, 3, 40, 5);
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_FAST));
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(&o, cube, 0, 10, NULL), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_preprocess_options_choose_spatial"));
    /* The whole axis needs no calibration, and equals its window in eV. */
    double whole = -1, window = -2;
    assert_ok(eelsvae_preprocess_options_choose_spatial(&o, cube, NAN, NAN, &whole));
    assert_ok(eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, 0.0, 1.0, "eV"));
    assert_ok(eelsvae_preprocess_options_choose_spatial(&o, cube, 0, 39, &window));
    assert_true(whole == window && whole >= 0.0 && whole <= 1.0);
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(NULL, cube, 0, 10, NULL),
                     EELSVAE_ERR_INVALID_ARGUMENT);
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(&o, NULL, 0, 10, NULL),
                     EELSVAE_ERR_INVALID_ARGUMENT);
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(&o, cube, 0, 5, NULL), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "at least 8"));
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(&o, cube, 100, 200, NULL), EELSVAE_ERR_RANGE);
    o.sigma[2] = -1;
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(&o, cube, 0, 10, NULL),
                     EELSVAE_ERR_INVALID_ARGUMENT);
    o.sigma[2] = 0.5;
    float flat[2 * 2 * 10];
    for (size_t i = 0; i < sizeof flat / sizeof *flat; i++) flat[i] = 2.0f;
    eelsvae_cube *constant = cube_from(flat, 2, 2, 10);
    assert_ok(eelsvae_cube_set_axis(constant, EELSVAE_AXIS_E, 0.0, 1.0, "eV"));
    assert_int_equal(eelsvae_preprocess_options_choose_spatial(&o, constant, 0, 9, NULL), EELSVAE_ERR_NUMERIC);
    eelsvae_cube_free(constant);
    eelsvae_cube_free(cube);
}

static void test_allocation_failures(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(6, 5, 9, 12);
    eelsvae_cube *orig = copy_of(c);
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
    o.median_filter = 5;
    for (int which = 0; which < 5; which++) {
        int failures = 0;
        for (unsigned long n = 1;; n++) {
            assert_true(n < 50);
            double lo = 0, hi = 0;
            evae_fail_allocation_after(n);
            eelsvae_status st = EELSVAE_OK;
            switch (which) {
            case 0: st = eelsvae_cube_preprocess(c, &o, NULL, NULL); break;
            case 1: st = eelsvae_cube_gaussian_blur(c, 1, 2, 3); break;
            case 2: st = eelsvae_cube_percentiles(c, 1, 99, &lo, &hi); break;
            case 3: st = eelsvae_cube_mean_filter(c, 3); break;
            default: st = eelsvae_cube_median_filter(c, 5); break;
            }
            evae_fail_allocation_after(0);
            if (st == EELSVAE_OK) break;
            assert_int_equal(st, EELSVAE_ERR_NOMEM);
            assert_true(eelsvae_last_error()[0] != '\0');
            assert_same_samples(c, orig);
            failures++;
        }
        assert_true(failures >= 1);
        eelsvae_cube_free(c);
        c = copy_of(orig);
    }
    eelsvae_cube_free(c);
    eelsvae_cube_free(orig);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_options_init),
        cmocka_unit_test(test_blur_impulse_1d),
        cmocka_unit_test(test_blur_impulse_3d),
        cmocka_unit_test(test_blur_constant),
        cmocka_unit_test(test_blur_reflect_length_two),
        cmocka_unit_test(test_blur_reflect_length_three),
        cmocka_unit_test(test_blur_tiny_sigma),
        cmocka_unit_test(test_blur_bad_input),
        cmocka_unit_test(test_percentiles_one_to_hundred),
        cmocka_unit_test(test_percentiles_interpolation),
        cmocka_unit_test(test_percentiles_against_sort),
        cmocka_unit_test(test_percentiles_bad_input),
        cmocka_unit_test(test_scale),
        cmocka_unit_test(test_mean_filter_by_hand),
        cmocka_unit_test(test_mean_filter_uniform_noise),
        cmocka_unit_test(test_mean_filter_brute_force),
        cmocka_unit_test(test_median_filter_by_hand),
        cmocka_unit_test(test_median_filter_brute_force),
        cmocka_unit_test(test_filters_bad_input),
        cmocka_unit_test(test_scipy_oracle),
        cmocka_unit_test(test_chain_fixed_scaling_round_trip),
        cmocka_unit_test(test_chain_equals_steps),
        cmocka_unit_test(test_chain_short_struct),
        cmocka_unit_test(test_thread_count_independence),
        cmocka_unit_test(test_chain_bad_input),
        cmocka_unit_test(test_choose_spatial_synthetic),
        cmocka_unit_test(test_choose_spatial_by_hand),
        cmocka_unit_test(test_choose_spatial_bad_input),
        cmocka_unit_test(test_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
