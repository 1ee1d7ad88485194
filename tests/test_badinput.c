/* The bad-input catalogue across the public API: non-finite samples,
 * all-zero spectra, constant cubes, 1 × 1 × E and N × N × 1 cubes,
 * dimensions whose product overflows size_t, tiles larger than the cube,
 * energy windows outside the axis, a model applied to another energy axis,
 * masks of the wrong shape, output paths that do not exist or cannot be
 * written, and a disk that fills up in the middle of a write.
 *
 * Every case asserts the documented status, a message that names the
 * offending thing (pixel, dimension, path), and that nothing is lost: the
 * input cube, the model, out-pointers and old files stay as they were.
 *
 * The non-finite policy under test (see the docs' "Bad input" section):
 * every call that computes a result from samples — percentiles, the
 * preprocessing chain, PCA fit/project/reconstruct, scoring, model
 * training and prepare — rejects NaN and ±Inf with EELSVAE_ERR_NUMERIC
 * naming the first offending pixel (y, x) in row-major order and its
 * channel; only the samples a call reads are checked (a scorer reads its
 * window, a model its energy range). Elementwise transforms (scale) leave
 * NaN as NaN, and a thresholded NaN score is not anomalous. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "testutil.h"
#include "core/core.h"        /* evae_fail, to clear the message before each case */
#include "nn/model_private.h" /* the parameter block, to check a failed call left it alone */

/* ---- helpers ---------------------------------------------------------------------- */

/* Fail unless the message holds every one of the NULL-terminated needles.
 * EELSVAE_TEST_VERBOSE=1 prints every call with its message. */
static void assert_message_names(const char *call, const char *const *needles)
{
    const char *msg = eelsvae_last_error();
    const char *verbose = getenv("EELSVAE_TEST_VERBOSE");
    if (verbose && *verbose == '1') print_message("%s\n    -> %s\n", call, msg);
    for (; *needles; needles++)
        if (!strstr(msg, *needles)) fail_msg("%s: message \"%s\" does not name \"%s\"", call, msg, *needles);
}

/* The call fails with `status`, and its fresh message names each needle. */
#define assert_fails(call, status, ...)                                                                              \
    do {                                                                                                             \
        evae_fail(EELSVAE_OK, "%s", "");                                                                             \
        assert_status(call, status);                                                                                 \
        assert_message_names(#call, (const char *const[]){__VA_ARGS__, NULL});                                       \
    } while (0)

static const double SENTINEL = -12345.0;

/* A cube of distinct, positive, non-constant samples; energy axis e0 + de·i eV. */
static eelsvae_cube *ramp_cube(size_t ny, size_t nx, size_t ne, double e0, double de)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(ny, nx, ne, &c));
    float *d = eelsvae_cube_data(c);
    for (size_t y = 0; y < ny; y++)
        for (size_t x = 0; x < nx; x++)
            for (size_t e = 0; e < ne; e++)
                d[(y * nx + x) * ne + e] = 1.0f + (float)((y * 7 + x * 3 + e * 5) % 11) + 0.25f * (float)e;
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, e0, de, "eV"));
    return c;
}

static eelsvae_cube *filled_cube(size_t ny, size_t nx, size_t ne, float value)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(ny, nx, ne, &c));
    float *d = eelsvae_cube_data(c);
    for (size_t i = 0; i < ny * nx * ne; i++) d[i] = value;
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 700.0, 1.0, "eV"));
    return c;
}

static size_t samples(const eelsvae_cube *c)
{
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    return ny * nx * ne;
}

/* A byte copy of a cube's samples, to check a failed call left them alone. */
static float *snapshot(const eelsvae_cube *c)
{
    size_t n = samples(c);
    float *s = malloc(n * sizeof *s);
    assert_non_null(s);
    memcpy(s, eelsvae_cube_data_const(c), n * sizeof *s);
    return s;
}

static void assert_unchanged(const eelsvae_cube *c, float *snap)
{
    assert_memory_equal(eelsvae_cube_data_const(c), snap, samples(c) * sizeof *snap);
    free(snap);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) fail_msg("cannot open %s: %s", path, strerror(errno));
    unsigned char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 65536;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0) break;
    }
    fclose(fp);
    *size = n;
    return buf;
}

static void spit(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) fail_msg("cannot create %s: %s", path, strerror(errno));
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Files in `dir` whose name holds ".tmp." (the atomic writers' temporaries). */
static size_t temporaries_in(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* snprintf into an array, failing the test if the text does not fit. */
#define FORMAT(buf, ...)                                                                                             \
    do {                                                                                                             \
        if ((size_t)snprintf(buf, sizeof buf, __VA_ARGS__) >= sizeof buf) fail_msg("%s: text too long", #buf);      \
    } while (0)

static char *join(char *buf, size_t size, const char *dir, const char *name)
{
    if ((size_t)snprintf(buf, size, "%s/%s", dir, name) >= size) fail_msg("%s/%s: path too long", dir, name);
    return buf;
}

/* A synthetic SI of ny × ny pixels on e0 … e1 eV at `dispersion` eV per channel. */
static eelsvae_cube *synth(size_t ny, double e0, double e1, double dispersion)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = s.nx = ny;
    s.energy_start = e0;
    s.energy_end = e1;
    s.dispersion = dispersion;
    s.o_edge = e0 + 4.0;
    s.seed = 3;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&s, &c, NULL));
    return c;
}

static void tiny_train_options(eelsvae_train_options *t)
{
    assert_ok(eelsvae_train_options_init(t, EELSVAE_PRESET_FAST));
    t->epochs = 1;
    t->batch = 4;
    t->tile_stride = 4;
    t->validation_fraction = 0.0;
    t->early_stop_patience = 0;
    t->seed = 7;
}

static eelsvae_status train_on(eelsvae_model *m, const eelsvae_cube *c)
{
    eelsvae_train_options t;
    tiny_train_options(&t);
    const eelsvae_cube *cubes[1] = {c};
    return eelsvae_model_train(m, cubes, NULL, 1, &t);
}

/* A copy of the model's parameters, to check a failed call changed none. */
static float *params_copy(const eelsvae_model *m)
{
    size_t n = eelsvae_model_parameter_count(m);
    float *p = malloc(n * sizeof *p);
    assert_non_null(p);
    memcpy(p, evae_cvae_params(m->net), n * sizeof *p);
    return p;
}

static void assert_params_unchanged(const eelsvae_model *m, float *copy)
{
    assert_memory_equal(evae_cvae_params(m->net), copy, eelsvae_model_parameter_count(m) * sizeof *copy);
    free(copy);
}

/* Shared by the model cases: a tiny model trained one epoch on a 16 × 16
 * SI of 686 … 737 eV at 1 eV per channel (its 32 channels start at 695). */
static struct {
    eelsvae_model *model;
    eelsvae_cube *train_cube;
} fx;

static int group_setup(void **state)
{
    (void)state;
    eelsvae_set_threads(1);
    fx.train_cube = synth(16, 686.0, 737.0, 1.0);
    fx.model = tu_tiny_model(5);
    return train_on(fx.model, fx.train_cube) == EELSVAE_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    eelsvae_model_free(fx.model);
    eelsvae_cube_free(fx.train_cube);
    return 0;
}

/* ---- NaN and ±Inf ---------------------------------------------------------------------- */

/* The first bad sample in row-major order is at pixel (1, 4), channel 7
 * (energy 707 eV); a second one, NaN, sits later at (3, 0), channel 0. */
static eelsvae_cube *cube_with_bad_samples(float bad)
{
    eelsvae_cube *c = ramp_cube(5, 6, 12, 700.0, 1.0);
    float *d = eelsvae_cube_data(c);
    d[(1 * 6 + 4) * 12 + 7] = bad;
    d[(3 * 6 + 0) * 12 + 0] = NAN;
    return c;
}

static void check_cube_calls_reject(float bad)
{
    eelsvae_cube *c = cube_with_bad_samples(bad);
    eelsvae_cube *clean = ramp_cube(5, 6, 12, 700.0, 1.0);
    float *snap = snapshot(c);

    assert_fails(eelsvae_cube_check_finite(c), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7 (707 eV)");
    double lo = SENTINEL, hi = SENTINEL;
    assert_fails(eelsvae_cube_percentiles(c, 1, 99, &lo, &hi), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7 (707 eV)");
    assert_true(lo == SENTINEL && hi == SENTINEL);

    eelsvae_preprocess_options po;
    assert_ok(eelsvae_preprocess_options_init(&po, EELSVAE_PRESET_PAPER));
    assert_fails(eelsvae_cube_preprocess(c, &po, &lo, &hi), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7 (707 eV)");
    po.use_fixed_scaling = 1;
    po.scale_lo = 0.0;
    po.scale_hi = 10.0;
    assert_fails(eelsvae_cube_preprocess(c, &po, &lo, &hi), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7");
    assert_true(lo == SENTINEL && hi == SENTINEL);

    eelsvae_pca_options pco;
    assert_ok(eelsvae_pca_options_init(&pco));
    pco.components = 2;
    eelsvae_pca *pca = NULL;
    assert_fails(eelsvae_pca_fit(c, &pco, &pca), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7");
    assert_null(pca);
    assert_ok(eelsvae_pca_fit(clean, &pco, &pca));
    float scores[5 * 6 * 2];
    assert_fails(eelsvae_pca_project(pca, c, scores, 5 * 6 * 2), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7");
    eelsvae_cube *rec = NULL;
    assert_fails(eelsvae_pca_reconstruct(pca, c, &rec), EELSVAE_ERR_NUMERIC, "y 1, x 4", "channel 7");
    assert_null(rec);
    eelsvae_pca_free(pca);

    /* The scorer reads its window only: 705–709 eV holds channel 7. */
    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 705.0;
    so.window_hi = 709.0;
    eelsvae_scorer *sc = NULL;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    float map[30];
    size_t degenerate = 99;
    assert_fails(eelsvae_scorer_score(sc, c, clean, map, 30, &degenerate), EELSVAE_ERR_NUMERIC, "original",
                 "y 1, x 4", "channel 7");
    assert_fails(eelsvae_scorer_score(sc, clean, c, map, 30, &degenerate), EELSVAE_ERR_NUMERIC, "reconstruction",
                 "y 1, x 4", "channel 7");
    assert_int_equal(degenerate, 99);
    eelsvae_scorer_free(sc);
    /* 700–704 eV misses channel 7 but holds the later NaN at (3, 0), channel 0. */
    so.window_lo = 700.0;
    so.window_hi = 704.0;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    assert_fails(eelsvae_scorer_score(sc, c, clean, map, 30, NULL), EELSVAE_ERR_NUMERIC, "y 3, x 0", "channel 0");
    eelsvae_scorer_free(sc);
    /* 708–711 eV holds no bad sample: every score is computed. */
    so.window_lo = 708.0;
    so.window_hi = 711.0;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    assert_ok(eelsvae_scorer_score(sc, c, c, map, 30, NULL));
    for (size_t i = 0; i < 30; i++) assert_close(map[i], 1.0, 1e-5, 0);
    eelsvae_scorer_free(sc);

    assert_unchanged(c, snap);
    eelsvae_cube_free(clean);
    eelsvae_cube_free(c);
}

static void test_nonfinite_samples_rejected(void **state)
{
    (void)state;
    check_cube_calls_reject(NAN);
    check_cube_calls_reject(INFINITY);
    check_cube_calls_reject(-INFINITY);
}

/* Elementwise min-max scaling is documented to keep NaN as NaN. */
static void test_scale_keeps_nan(void **state)
{
    (void)state;
    eelsvae_cube *c = cube_with_bad_samples(NAN);
    assert_ok(eelsvae_cube_scale(c, 0.0, 10.0));
    const float *d = eelsvae_cube_data_const(c);
    assert_true(isnan(d[(1 * 6 + 4) * 12 + 7]));
    assert_true(isnan(d[(3 * 6 + 0) * 12 + 0]));
    /* sample (0, 0, 0) was 1: (1 − 0) / 10 */
    assert_close(d[0], 0.1, 1e-7, 0);
    eelsvae_cube_free(c);
}

static void test_nonfinite_scores(void **state)
{
    (void)state;
    const float with_nan[6] = {0.1f, 0.5f, NAN, 0.9f, 0.2f, 0.7f};
    const float with_inf[6] = {0.1f, 0.5f, INFINITY, 0.9f, 0.2f, 0.7f};
    const uint8_t truth[6] = {0, 1, 0, 1, 0, 1};
    double v = SENTINEL;
    assert_fails(eelsvae_otsu_threshold(with_nan, 6, 256, &v), EELSVAE_ERR_NUMERIC, "score 2");
    assert_fails(eelsvae_otsu_threshold(with_inf, 6, 256, &v), EELSVAE_ERR_NUMERIC, "score 2");
    assert_true(v == SENTINEL);
    assert_fails(eelsvae_roc_auc(with_nan, truth, 6, EELSVAE_ANOMALOUS_ABOVE, &v), EELSVAE_ERR_NUMERIC, "score 2");
    assert_fails(eelsvae_pr_auc(with_nan, truth, 6, EELSVAE_ANOMALOUS_ABOVE, &v), EELSVAE_ERR_NUMERIC, "score 2");
    assert_true(v == SENTINEL);
    uint64_t normal[4] = {0}, anomalous[4] = {0};
    assert_fails(eelsvae_score_histogram(with_nan, truth, 6, 0.0, 1.0, 4, normal, anomalous), EELSVAE_ERR_NUMERIC,
                 "score 2");
    /* Infinities rank as such: +Inf is the highest score, a normal pixel,
     * so it outranks all three anomalies (0.5, 0.9, 0.7), each of which
     * outranks the other two normals (0.1, 0.2): 6 of 9 pairs. */
    assert_ok(eelsvae_roc_auc(with_inf, truth, 6, EELSVAE_ANOMALOUS_ABOVE, &v));
    assert_close(v, 6.0 / 9.0, 1e-12, 0);
    /* A NaN score is not anomalous, whichever side is. */
    uint8_t mask[6];
    assert_ok(eelsvae_threshold_mask(with_nan, 6, 0.3, EELSVAE_ANOMALOUS_ABOVE, mask));
    const uint8_t above[6] = {0, 1, 0, 1, 0, 1};
    assert_memory_equal(mask, above, 6);
    assert_ok(eelsvae_threshold_mask(with_nan, 6, 0.3, EELSVAE_ANOMALOUS_BELOW, mask));
    const uint8_t below[6] = {1, 0, 0, 0, 1, 0};
    assert_memory_equal(mask, below, 6);
    assert_fails(eelsvae_threshold_mask(with_nan, 6, NAN, EELSVAE_ANOMALOUS_ABOVE, mask),
                 EELSVAE_ERR_INVALID_ARGUMENT, "NaN");
}

/* Training and prepare check the channels the model takes, and nothing else. */
static void test_nonfinite_model_input(void **state)
{
    (void)state;
    eelsvae_cube *c = synth(16, 686.0, 737.0, 1.0);
    float *d = eelsvae_cube_data(c);
    size_t ne = 0;
    eelsvae_cube_shape(c, NULL, NULL, &ne);
    /* 686 eV (channel 0) lies before the model's range: harmless. */
    d[(5 * 16 + 6) * ne + 0] = NAN;
    eelsvae_model *m = tu_tiny_model(5);
    assert_ok(train_on(m, c));
    eelsvae_cube *prepared = NULL;
    assert_ok(eelsvae_model_prepare(m, c, &prepared));
    eelsvae_cube_free(prepared);
    prepared = NULL;
    eelsvae_model_free(m);

    /* 700 eV (channel 14) is taken, as the model's channel 5: the message
     * gives the energy, which means the same in both numberings. */
    d[(2 * 16 + 3) * ne + 14] = INFINITY;
    m = tu_tiny_model(5);
    float *before = params_copy(m);
    assert_fails(train_on(m, c), EELSVAE_ERR_NUMERIC, "cube 0", "y 2, x 3", "700 eV");
    assert_params_unchanged(m, before);
    eelsvae_model_free(m);
    assert_fails(eelsvae_model_prepare(fx.model, c, &prepared), EELSVAE_ERR_NUMERIC, "y 2, x 3", "700 eV");
    assert_null(prepared);
    eelsvae_cube_free(c);
}

/* ---- all-zero spectra and constant cubes ------------------------------------------------------ */

static void assert_pca_sane(const eelsvae_pca *pca, const eelsvae_cube *c)
{
    size_t k = 0, ne = 0, ny = 0, nx = 0;
    eelsvae_pca_shape(pca, &k, &ne);
    eelsvae_cube_shape(c, &ny, &nx, NULL);
    double ratios[8];
    assert_true(k <= 8);
    assert_ok(eelsvae_pca_explained_variance_ratio(pca, ratios, k));
    double total = 0;
    for (size_t i = 0; i < k; i++) {
        /* float32 sums: a lone component of all the variance may read 1 + 3e-7 */
        assert_true(ratios[i] >= 0.0 && ratios[i] <= 1.0 + 1e-6);
        total += ratios[i];
    }
    assert_true(total <= 1.0 + 1e-6);
    const float *w = eelsvae_pca_components(pca);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double dot = 0;
            for (size_t e = 0; e < ne; e++) dot += (double)w[i * ne + e] * w[j * ne + e];
            assert_close(dot, i == j ? 1.0 : 0.0, 1e-5, 0);
        }
    float *scores = malloc(ny * nx * k * sizeof *scores);
    assert_non_null(scores);
    assert_ok(eelsvae_pca_project(pca, c, scores, ny * nx * k));
    for (size_t i = 0; i < ny * nx * k; i++) assert_true(isfinite(scores[i]));
    free(scores);
    eelsvae_cube *rec = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, c, &rec));
    assert_ok(eelsvae_cube_check_finite(rec));
    eelsvae_cube_free(rec);
}

static void fit_and_check(const eelsvae_cube *c, size_t k, int center, int poisson)
{
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = k;
    o.center = center;
    o.poisson_normalize = poisson;
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(c, &o, &pca));
    assert_pca_sane(pca, c);
    eelsvae_pca_free(pca);
}

static void test_zero_spectra(void **state)
{
    (void)state;
    /* Zero spectra at (0, 0) and (2, 3) of a positive cube. */
    eelsvae_cube *c = ramp_cube(4, 5, 16, 700.0, 1.0);
    float *d = eelsvae_cube_data(c);
    memset(d + (0 * 5 + 0) * 16, 0, 16 * sizeof *d);
    memset(d + (2 * 5 + 3) * 16, 0, 16 * sizeof *d);
    fit_and_check(c, 2, 1, 0);
    fit_and_check(c, 2, 1, 1); /* an empty spectrum weighs 0 under Poisson normalisation */

    /* The reconstruction has a real spectrum at (0, 0) and zeros at (2, 3). */
    eelsvae_cube *r = ramp_cube(4, 5, 16, 700.0, 1.0);
    memset(eelsvae_cube_data(r) + (2 * 5 + 3) * 16, 0, 16 * sizeof *d);
    const float *r00 = eelsvae_cube_data_const(r);
    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 700.0;
    so.window_hi = 715.0;
    float map[20];
    size_t degenerate = 0;
    eelsvae_scorer *sc = NULL;
    /* PCC: one side constant → 0; both equal constants → 1; identical → 1. */
    assert_ok(eelsvae_scorer_create(&so, &sc));
    assert_ok(eelsvae_scorer_score(sc, c, r, map, 20, &degenerate));
    assert_int_equal(degenerate, 2);
    assert_true(map[0] == 0.0f);
    assert_true(map[2 * 5 + 3] == 1.0f);
    assert_close(map[1], 1.0, 1e-6, 0);
    eelsvae_scorer_free(sc);
    /* Spectral angle: zero against non-zero → π/2, two zeros → 0. */
    so.kind = EELSVAE_SCORE_SPECTRAL_ANGLE;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    assert_ok(eelsvae_scorer_score(sc, c, r, map, 20, &degenerate));
    assert_int_equal(degenerate, 2);
    assert_close(map[0], M_PI / 2, 1e-6, 0);
    assert_true(map[2 * 5 + 3] == 0.0f);
    eelsvae_scorer_free(sc);
    /* MSE at (0, 0): the mean square of the reconstruction's spectrum. */
    so.kind = EELSVAE_SCORE_MSE;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    assert_ok(eelsvae_scorer_score(sc, c, r, map, 20, NULL));
    double mse = 0;
    for (size_t e = 0; e < 16; e++) mse += (double)r00[e] * r00[e];
    assert_close(map[0], mse / 16, 0, 1e-6);
    assert_true(map[2 * 5 + 3] == 0.0f);
    eelsvae_scorer_free(sc);
    eelsvae_cube_free(r);
    eelsvae_cube_free(c);

    /* A cube of nothing but zeros. */
    eelsvae_cube *z = filled_cube(6, 5, 20, 0.0f);
    assert_ok(eelsvae_cube_check_finite(z));
    double lo = SENTINEL, hi = SENTINEL;
    assert_ok(eelsvae_cube_percentiles(z, 1, 99, &lo, &hi));
    assert_true(lo == 0.0 && hi == 0.0);
    eelsvae_preprocess_options po;
    assert_ok(eelsvae_preprocess_options_init(&po, EELSVAE_PRESET_PAPER));
    float *snap = snapshot(z);
    assert_fails(eelsvae_cube_preprocess(z, &po, NULL, NULL), EELSVAE_ERR_NUMERIC, "6 × 5 × 20", "constant");
    assert_unchanged(z, snap);
    fit_and_check(z, 2, 1, 0); /* no variance: ratios 0, still an orthonormal basis */
    fit_and_check(z, 2, 0, 1);
    eelsvae_cube_free(z);
}

static void test_constant_cube(void **state)
{
    (void)state;
    eelsvae_cube *c = filled_cube(6, 5, 20, 7.0f);
    double lo = SENTINEL, hi = SENTINEL;
    assert_ok(eelsvae_cube_percentiles(c, 1, 99, &lo, &hi));
    assert_true(lo == 7.0 && hi == 7.0);
    eelsvae_preprocess_options po;
    assert_ok(eelsvae_preprocess_options_init(&po, EELSVAE_PRESET_PAPER));
    float *snap = snapshot(c);
    lo = hi = SENTINEL;
    assert_fails(eelsvae_cube_preprocess(c, &po, &lo, &hi), EELSVAE_ERR_NUMERIC, "equals 7", "constant");
    assert_true(lo == SENTINEL && hi == SENTINEL);
    assert_fails(eelsvae_cube_scale(c, 7.0, 7.0), EELSVAE_ERR_INVALID_ARGUMENT, "7");
    assert_unchanged(c, snap);

    fit_and_check(c, 2, 1, 0);
    fit_and_check(c, 2, 0, 0);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 1;
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(c, &o, &pca));
    eelsvae_cube *rec = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, c, &rec)); /* the mean alone: 7 everywhere */
    for (size_t i = 0; i < 600; i++) assert_close(eelsvae_cube_data_const(rec)[i], 7.0, 1e-5, 0);
    eelsvae_cube_free(rec);
    eelsvae_pca_free(pca);

    /* PCC of two constant spectra: 1 when equal, 0 otherwise; all degenerate. */
    eelsvae_cube *eight = filled_cube(6, 5, 20, 8.0f);
    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 702.0;
    so.window_hi = 710.0;
    eelsvae_scorer *sc = NULL;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    float map[30];
    size_t degenerate = 0;
    assert_ok(eelsvae_scorer_score(sc, c, c, map, 30, &degenerate));
    assert_int_equal(degenerate, 30);
    for (size_t i = 0; i < 30; i++) assert_true(map[i] == 1.0f);
    assert_ok(eelsvae_scorer_score(sc, c, eight, map, 30, &degenerate));
    assert_int_equal(degenerate, 30);
    for (size_t i = 0; i < 30; i++) assert_true(map[i] == 0.0f);
    eelsvae_scorer_free(sc);
    /* Otsu of all-equal scores is that value. */
    double th = SENTINEL;
    assert_ok(eelsvae_otsu_threshold(map, 30, 256, &th));
    assert_true(th == 0.0);
    eelsvae_cube_free(eight);

    /* A constant training cube cannot be scaled: the model stays untouched. */
    eelsvae_cube *flat = filled_cube(16, 16, 52, 50.0f);
    assert_ok(eelsvae_cube_set_axis(flat, EELSVAE_AXIS_E, 686.0, 1.0, "eV"));
    eelsvae_model *m = tu_tiny_model(5);
    float *before = params_copy(m);
    assert_fails(train_on(m, flat), EELSVAE_ERR_NUMERIC, "constant");
    assert_params_unchanged(m, before);
    eelsvae_cube *prepared = NULL;
    assert_fails(eelsvae_model_prepare(m, flat, &prepared), EELSVAE_ERR_INVALID_ARGUMENT, "not been trained");
    eelsvae_model_free(m);
    eelsvae_cube_free(flat);
    eelsvae_cube_free(c);
}

/* ---- 1 × 1 × E and N × N × 1 -------------------------------------------------------------------- */

static void test_single_pixel_cube(void **state)
{
    (void)state;
    eelsvae_cube *c = ramp_cube(1, 1, 40, 686.0, 1.0);
    size_t first = 0, count = 0;
    assert_ok(eelsvae_cube_energy_window(c, 690.0, 700.0, &first, &count));
    assert_int_equal(first, 4);
    assert_int_equal(count, 11);

    /* Spatial filters mirror a lone pixel onto itself: nothing changes. */
    float *snap = snapshot(c);
    assert_ok(eelsvae_cube_median_filter(c, 3));
    assert_memory_equal(eelsvae_cube_data_const(c), snap, 40 * sizeof(float));
    assert_ok(eelsvae_cube_mean_filter(c, 5));
    for (size_t e = 0; e < 40; e++) assert_close(eelsvae_cube_data_const(c)[e], snap[e], 0, 1e-6);
    assert_ok(eelsvae_cube_gaussian_blur(c, 3.0, 3.0, 0.0));
    for (size_t e = 0; e < 40; e++) assert_close(eelsvae_cube_data_const(c)[e], snap[e], 0, 1e-6);
    free(snap);

    size_t ty = 0, tx = 0;
    assert_ok(eelsvae_tiling(1, 1, 1, 0, &ty, &tx));
    assert_true(ty == 1 && tx == 1);
    assert_fails(eelsvae_tiling(1, 1, 2, 0, &ty, &tx), EELSVAE_ERR_DIMENSION, "2 × 2", "1 × 1");

    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 2;
    eelsvae_pca *pca = NULL;
    assert_fails(eelsvae_pca_fit(c, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT, "2 components", "1 spectra");
    assert_null(pca);
    fit_and_check(c, 1, 1, 0);
    fit_and_check(c, 1, 0, 0);

    eelsvae_preprocess_options po;
    assert_ok(eelsvae_preprocess_options_init(&po, EELSVAE_PRESET_PAPER));
    assert_ok(eelsvae_cube_preprocess(c, &po, NULL, NULL));
    assert_ok(eelsvae_cube_check_finite(c));

    eelsvae_cube *prepared = NULL;
    assert_fails(eelsvae_model_prepare(fx.model, c, &prepared), EELSVAE_ERR_DIMENSION, "1 × 1", "8 × 8");
    assert_null(prepared);
    eelsvae_cube_free(c);
}

static void test_single_channel_cube(void **state)
{
    (void)state;
    eelsvae_cube *c = ramp_cube(5, 5, 1, 700.0, 1.0);
    size_t first = 9, count = 9;
    assert_ok(eelsvae_cube_energy_window(c, 699.5, 700.5, &first, &count));
    assert_true(first == 0 && count == 1);
    assert_fails(eelsvae_cube_energy_window(c, 701.5, 703.0, &first, &count), EELSVAE_ERR_RANGE, "701.5",
                 "700:700");
    eelsvae_cube *cropped = NULL;
    assert_ok(eelsvae_cube_crop_energy(c, 699.0, 701.0, &cropped));
    eelsvae_cube_free(cropped);

    /* An energy blur of one channel mirrors it onto itself. */
    float *snap = snapshot(c);
    assert_ok(eelsvae_cube_gaussian_blur(c, 0.0, 0.0, 2.0));
    for (size_t i = 0; i < 25; i++) assert_close(eelsvae_cube_data_const(c)[i], snap[i], 0, 1e-6);
    free(snap);

    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 2;
    eelsvae_pca *pca = NULL;
    assert_fails(eelsvae_pca_fit(c, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT, "2 components", "1 channels");
    fit_and_check(c, 1, 1, 0);
    fit_and_check(c, 1, 1, 1);

    /* One channel per window: every spectrum is constant there. */
    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 699.5;
    so.window_hi = 700.5;
    eelsvae_scorer *sc = NULL;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    float map[25];
    size_t degenerate = 0;
    assert_ok(eelsvae_scorer_score(sc, c, c, map, 25, &degenerate));
    assert_int_equal(degenerate, 25);
    for (size_t i = 0; i < 25; i++) assert_true(map[i] == 1.0f);
    eelsvae_scorer_free(sc);

    eelsvae_preprocess_options po;
    assert_ok(eelsvae_preprocess_options_init(&po, EELSVAE_PRESET_PAPER));
    assert_ok(eelsvae_cube_preprocess(c, &po, NULL, NULL));
    assert_ok(eelsvae_cube_check_finite(c));

    eelsvae_cube *prepared = NULL;
    assert_fails(eelsvae_model_prepare(fx.model, c, &prepared), EELSVAE_ERR_DIMENSION, "5 × 5");
    eelsvae_cube *big = ramp_cube(9, 9, 1, 700.0, 1.0);
    assert_fails(eelsvae_model_prepare(fx.model, big, &prepared), EELSVAE_ERR_RANGE, "1 channels", "695");
    assert_null(prepared);
    eelsvae_cube_free(big);
    eelsvae_cube_free(c);

    eelsvae_cube *none = NULL;
    assert_fails(eelsvae_cube_create(0, 3, 3, &none), EELSVAE_ERR_INVALID_ARGUMENT, "0 × 3 × 3");
    assert_fails(eelsvae_cube_create(3, 3, 0, &none), EELSVAE_ERR_INVALID_ARGUMENT, "3 × 3 × 0");
    assert_null(none);
    const size_t shape0[3] = {4, 0, 3};
    const char *path = tu_path("zero_dim.npy");
    assert_ok(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, NULL, 3, shape0));
    assert_fails(eelsvae_cube_load_npy(path, &none), EELSVAE_ERR_DIMENSION, "zero_dim.npy", "zero-sized");
    const float flat[6] = {1, 2, 3, 4, 5, 6};
    const size_t shape2[2] = {2, 3};
    path = tu_path("two_d.npy");
    assert_ok(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, flat, 2, shape2));
    assert_fails(eelsvae_cube_load_npy(path, &none), EELSVAE_ERR_DIMENSION, "two_d.npy", "2 dimensions");
    assert_null(none);
}

/* ---- products that overflow size_t -------------------------------------------------------------- */

/* A .npy file of header only, claiming `shape` float32 (y, x, E). */
static void write_npy_header(const char *path, const char *shape)
{
    char dict[256];
    int n = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': %s, }", shape);
    size_t total = 10 + (size_t)n + 1;
    size_t padded = (total + 63) / 64 * 64;
    unsigned char buf[512];
    memcpy(buf, "\x93NUMPY\x01\x00", 8);
    size_t hlen = padded - 10;
    buf[8] = (unsigned char)(hlen & 0xFF);
    buf[9] = (unsigned char)(hlen >> 8);
    memcpy(buf + 10, dict, (size_t)n);
    memset(buf + 10 + n, ' ', padded - 10 - (size_t)n - 1);
    buf[padded - 1] = '\n';
    spit(path, buf, padded);
}

static void test_overflowing_dimensions(void **state)
{
    (void)state;
    const size_t big = (size_t)1 << 32;
    eelsvae_cube *c = NULL;
    assert_fails(eelsvae_cube_create(big, big, 2, &c), EELSVAE_ERR_OVERFLOW, "4294967296", "size_t");
    /* 2^63 samples fit size_t; their 2^65 bytes do not. */
    assert_fails(eelsvae_cube_create((size_t)1 << 31, (size_t)1 << 31, 2, &c), EELSVAE_ERR_OVERFLOW, "size_t");
    assert_fails(eelsvae_cube_create(SIZE_MAX, 1, 1, &c), EELSVAE_ERR_OVERFLOW, "size_t");
    const float one = 1.0f; /* never read: the size is refused first */
    assert_fails(eelsvae_cube_create_from(&one, big, big, 2, &c), EELSVAE_ERR_OVERFLOW, "size_t");
    assert_null(c);

    const size_t shape[3] = {(size_t)1 << 40, (size_t)1 << 40, 1024};
    const char *path = tu_path("huge_write.npy");
    assert_fails(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, &one, 3, shape), EELSVAE_ERR_OVERFLOW,
                 "huge_write.npy");
    assert_false(file_exists(path));
    eelsvae_signal *sig = NULL;
    assert_fails(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 3, shape, NULL, &sig), EELSVAE_ERR_OVERFLOW,
                 "size_t");
    assert_null(sig);

    /* Headers that claim more than size_t can count … */
    path = tu_path("huge_shape.npy");
    write_npy_header(path, "(1099511627776, 1099511627776, 1024)");
    size_t ndim = 0, shp[EELSVAE_NPY_MAX_DIMS];
    float *data = NULL;
    assert_fails(eelsvae_npy_read(path, &ndim, shp, NULL, &data), EELSVAE_ERR_OVERFLOW, "huge_shape.npy");
    assert_fails(eelsvae_cube_load_npy(path, &c), EELSVAE_ERR_OVERFLOW, "huge_shape.npy");
    path = tu_path("huge_dim.npy");
    write_npy_header(path, "(99999999999999999999999, 2, 2)");
    assert_fails(eelsvae_npy_read(path, &ndim, shp, NULL, &data), EELSVAE_ERR_OVERFLOW, "huge_dim.npy");
    /* … or that fit size_t but not the file: refused before any allocation. */
    path = tu_path("huge_claim.npy");
    write_npy_header(path, "(1048576, 1048576, 1024)");
    assert_fails(eelsvae_npy_read(path, &ndim, shp, NULL, &data), EELSVAE_ERR_FORMAT, "huge_claim.npy",
                 "truncated");
    assert_null(data);
    assert_null(c);

    uint8_t mask[4];
    assert_fails(eelsvae_disk_mask(SIZE_MAX, 3, 1, 1.0, 0.0, 1, mask, NULL), EELSVAE_ERR_OVERFLOW, "size_t");
    eelsvae_model_options mo;
    assert_ok(tu_tiny_model_options(&mo));
    mo.tile = (size_t)1 << 40;
    eelsvae_memory_estimate est = {.struct_size = sizeof est};
    assert_fails(eelsvae_model_estimate_memory(&mo, 1, &est), EELSVAE_ERR_OVERFLOW, "tile");
    assert_ok(tu_tiny_model_options(&mo));
    assert_fails(eelsvae_model_estimate_memory(&mo, SIZE_MAX, &est), EELSVAE_ERR_INVALID_ARGUMENT, "batch");

    /* Sizes that fit size_t but no memory: NOMEM, named. AddressSanitizer
     * treats an allocation this large as a bug in the caller and aborts. */
    if (TU_UNDER_ASAN) {
        print_message("skipped the 4 PiB allocation: AddressSanitizer aborts on it\n");
    } else {
        assert_fails(eelsvae_cube_create((size_t)1 << 20, (size_t)1 << 20, (size_t)1 << 10, &c), EELSVAE_ERR_NOMEM,
                     "cube");
        assert_null(c);
    }
}

/* ---- tiles larger than the cube ---------------------------------------------------------------- */

static void test_tile_larger_than_cube(void **state)
{
    (void)state;
    size_t ty = 77, tx = 77;
    assert_fails(eelsvae_tiling(5, 7, 8, 0, &ty, &tx), EELSVAE_ERR_DIMENSION, "8 × 8", "5 × 7");
    assert_fails(eelsvae_tiling(9, 7, 8, 0, &ty, &tx), EELSVAE_ERR_DIMENSION, "8 × 8", "9 × 7");
    assert_fails(eelsvae_tiling(5, 7, 0, 0, &ty, &tx), EELSVAE_ERR_INVALID_ARGUMENT, "tile");
    assert_true(ty == 77 && tx == 77);

    eelsvae_cube *c = ramp_cube(5, 7, 4, 700.0, 1.0);
    float buf[8 * 8 * 4];
    for (size_t i = 0; i < 8 * 8 * 4; i++) buf[i] = -1.0f;
    assert_fails(eelsvae_cube_to_tiles(c, 8, 0, buf, 8 * 8 * 4), EELSVAE_ERR_DIMENSION, "8 × 8", "5 × 7");
    for (size_t i = 0; i < 8 * 8 * 4; i++) assert_true(buf[i] == -1.0f);
    float *snap = snapshot(c);
    assert_fails(eelsvae_cube_from_tiles(c, 8, 0, buf, 8 * 8 * 4), EELSVAE_ERR_DIMENSION, "8 × 8", "5 × 7");
    assert_unchanged(c, snap);
    eelsvae_cube_free(c);

    /* The model's 8 × 8 tiles on a 6 × 6 scan. */
    eelsvae_cube *small = synth(6, 686.0, 737.0, 1.0);
    eelsvae_cube *prepared = NULL;
    assert_fails(eelsvae_model_prepare(fx.model, small, &prepared), EELSVAE_ERR_DIMENSION, "6 × 6", "8 × 8");
    assert_null(prepared);
    eelsvae_cube *cropped = NULL;
    assert_ok(eelsvae_cube_crop_energy(small, 695.0, 726.0, &cropped));
    eelsvae_cube *rec = NULL;
    assert_fails(eelsvae_model_reconstruct(fx.model, cropped, 0, &rec), EELSVAE_ERR_DIMENSION, "6 × 6", "8 × 8");
    assert_null(rec);
    float mu[4];
    assert_fails(eelsvae_model_encode(fx.model, cropped, mu, NULL, 4), EELSVAE_ERR_DIMENSION, "6 × 6");
    eelsvae_cube_free(cropped);
    eelsvae_model *m = tu_tiny_model(5);
    float *before = params_copy(m);
    assert_fails(train_on(m, small), EELSVAE_ERR_DIMENSION, "smaller than the model's 8 × 8 tile");
    assert_params_unchanged(m, before);
    eelsvae_model_free(m);
    eelsvae_cube_free(small);
}

/* ---- energy windows --------------------------------------------------------------------------- */

static void test_energy_windows(void **state)
{
    (void)state;
    /* 40 channels: 400 … 419.5 eV at 0.5 eV. */
    eelsvae_cube *c = ramp_cube(4, 4, 40, 400.0, 0.5);
    size_t first = 0, count = 0;
    assert_ok(eelsvae_cube_energy_window(c, 405.0, 410.0, &first, &count));
    assert_true(first == 10 && count == 11);
    /* Up to one channel past either end is allowed and clipped. */
    assert_ok(eelsvae_cube_energy_window(c, 399.6, 402.0, &first, &count));
    assert_true(first == 0 && count == 5);
    assert_ok(eelsvae_cube_energy_window(c, 415.0, 420.0, &first, &count));
    assert_true(first == 30 && count == 10);
    first = count = 77;
    /* Partly outside by more than a channel, wholly outside, between two channels. */
    assert_fails(eelsvae_cube_energy_window(c, 390.0, 410.0, &first, &count), EELSVAE_ERR_RANGE, "390:410",
                 "400:419.5");
    assert_fails(eelsvae_cube_energy_window(c, 415.0, 430.0, &first, &count), EELSVAE_ERR_RANGE, "415:430",
                 "400:419.5");
    assert_fails(eelsvae_cube_energy_window(c, 500.0, 510.0, &first, &count), EELSVAE_ERR_RANGE, "500:510");
    assert_fails(eelsvae_cube_energy_window(c, 300.0, 310.0, &first, &count), EELSVAE_ERR_RANGE, "300:310");
    assert_fails(eelsvae_cube_energy_window(c, 400.1, 400.3, &first, &count), EELSVAE_ERR_RANGE, "no channel");
    assert_fails(eelsvae_cube_energy_window(c, 410.0, 405.0, &first, &count), EELSVAE_ERR_INVALID_ARGUMENT,
                 "410:405");
    assert_fails(eelsvae_cube_energy_window(c, NAN, 405.0, &first, &count), EELSVAE_ERR_INVALID_ARGUMENT, "nan");
    assert_true(first == 77 && count == 77);

    eelsvae_cube *out = NULL;
    assert_fails(eelsvae_cube_crop_energy(c, 390.0, 410.0, &out), EELSVAE_ERR_RANGE, "390:410");
    assert_null(out);

    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 690.0; /* the paper's Fe L window: far outside */
    so.window_hi = 730.0;
    eelsvae_scorer *sc = NULL;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    float map[16];
    for (size_t i = 0; i < 16; i++) map[i] = -1.0f;
    assert_fails(eelsvae_scorer_score(sc, c, c, map, 16, NULL), EELSVAE_ERR_RANGE, "690:730", "400:419.5");
    for (size_t i = 0; i < 16; i++) assert_true(map[i] == -1.0f);
    eelsvae_scorer_free(sc);

    uint8_t mask[16] = {1, 1, 0, 0, 1};
    float *snap = snapshot(c);
    assert_fails(eelsvae_cube_inject_shift(c, mask, 16, 415.0, 430.0, 1.0), EELSVAE_ERR_RANGE, "415:430");
    assert_unchanged(c, snap);
    eelsvae_cube_free(c);
}

/* ---- a model and a cube of another energy axis ------------------------------------------------ */

static void test_model_other_energy_axis(void **state)
{
    (void)state;
    eelsvae_cube *prepared = NULL;
    /* Another dispersion, another unit, an axis that misses the range. */
    eelsvae_cube *fine = synth(16, 686.0, 737.0, 0.5);
    assert_fails(eelsvae_model_prepare(fx.model, fine, &prepared), EELSVAE_ERR_RANGE, "dispersion", "0.5", " 1");
    eelsvae_cube *kev = synth(16, 686.0, 737.0, 1.0);
    assert_ok(eelsvae_cube_set_axis(kev, EELSVAE_AXIS_E, 0.686, 0.001, "keV"));
    assert_fails(eelsvae_model_prepare(fx.model, kev, &prepared), EELSVAE_ERR_RANGE, "dispersion", "0.001", "keV");
    eelsvae_cube *late = ramp_cube(16, 16, 61, 740.0, 1.0);
    assert_fails(eelsvae_model_prepare(fx.model, late, &prepared), EELSVAE_ERR_RANGE, "740", "695");
    eelsvae_cube *short_axis = ramp_cube(16, 16, 30, 686.0, 1.0); /* 686 … 715 eV */
    assert_fails(eelsvae_model_prepare(fx.model, short_axis, &prepared), EELSVAE_ERR_RANGE, "715", "32 channels");
    /* Channel numbers (offset 0, scale 1, no units) are refused, not read as eV. */
    eelsvae_cube *channels = ramp_cube(16, 16, 61, 0.0, 1.0);
    assert_ok(eelsvae_cube_set_axis(channels, EELSVAE_AXIS_E, 0.0, 1.0, NULL));
    assert_fails(eelsvae_model_prepare(fx.model, channels, &prepared), EELSVAE_ERR_RANGE, "model prepare",
                 "uncalibrated", "eelsvae_cube_set_axis");
    eelsvae_model *fresh = tu_tiny_model(5);
    float *fresh_before = params_copy(fresh);
    assert_fails(train_on(fresh, channels), EELSVAE_ERR_RANGE, "model train", "uncalibrated");
    assert_params_unchanged(fresh, fresh_before);
    eelsvae_model_free(fresh);
    eelsvae_cube_free(channels);
    assert_null(prepared);

    /* A raw cube handed to detection without prepare: its 52 channels are not the model's 32. */
    eelsvae_cube *rec = NULL;
    assert_fails(eelsvae_model_reconstruct(fx.model, fx.train_cube, 0, &rec), EELSVAE_ERR_DIMENSION, "52", "32");
    assert_null(rec);
    float mu[9 * 4];
    assert_fails(eelsvae_model_encode(fx.model, fx.train_cube, mu, NULL, 9 * 4), EELSVAE_ERR_DIMENSION, "52", "32");

    /* Resuming on another dispersion changes nothing, byte for byte. */
    const char *before = tu_path("axis_before.evae"), *after = tu_path("axis_after.evae");
    assert_ok(eelsvae_model_save(fx.model, before, 1));
    eelsvae_train_options t;
    tiny_train_options(&t);
    t.epochs = 2;
    const eelsvae_cube *cubes[1] = {fine};
    assert_fails(eelsvae_model_train(fx.model, cubes, NULL, 1, &t), EELSVAE_ERR_RANGE, "dispersion", "0.5");
    assert_ok(eelsvae_model_save(fx.model, after, 1));
    size_t na = 0, nb = 0;
    unsigned char *a = slurp(before, &na), *b = slurp(after, &nb);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, na);
    free(a);
    free(b);

    /* PCA has no energy axis to compare, but the channel count must agree. */
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 2;
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(fx.train_cube, &o, &pca));
    size_t ne_fine = 0;
    eelsvae_cube_shape(fine, NULL, NULL, &ne_fine);
    float *scores = malloc(16 * 16 * 2 * sizeof *scores);
    assert_non_null(scores);
    char ne_text[32];
    snprintf(ne_text, sizeof ne_text, "%zu", ne_fine);
    assert_fails(eelsvae_pca_project(pca, fine, scores, 16 * 16 * 2), EELSVAE_ERR_DIMENSION, ne_text, "52");
    assert_fails(eelsvae_pca_reconstruct(pca, fine, &rec), EELSVAE_ERR_DIMENSION, ne_text, "52");
    free(scores);
    eelsvae_pca_free(pca);

    eelsvae_cube_free(fine);
    eelsvae_cube_free(kev);
    eelsvae_cube_free(late);
    eelsvae_cube_free(short_axis);
}

/* ---- masks and buffers of the wrong size ------------------------------------------------------ */

static void test_mask_wrong_shape(void **state)
{
    (void)state;
    eelsvae_cube *c = ramp_cube(4, 5, 30, 700.0, 1.0);
    uint8_t mask[21] = {1, 0, 1};
    float *snap = snapshot(c);
    assert_fails(eelsvae_cube_inject_shift(c, mask, 19, 705.0, 715.0, 1.0), EELSVAE_ERR_DIMENSION, "19", "20");
    assert_fails(eelsvae_cube_inject_shift(c, mask, 21, 705.0, 715.0, 1.0), EELSVAE_ERR_DIMENSION, "21", "20");
    assert_unchanged(c, snap);

    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    so.window_lo = 705.0;
    so.window_hi = 715.0;
    eelsvae_scorer *sc = NULL;
    assert_ok(eelsvae_scorer_create(&so, &sc));
    float map[21];
    assert_fails(eelsvae_scorer_score(sc, c, c, map, 21, NULL), EELSVAE_ERR_DIMENSION, "21", "4 × 5");
    eelsvae_cube *other = ramp_cube(5, 4, 30, 700.0, 1.0);
    assert_fails(eelsvae_scorer_score(sc, c, other, map, 20, NULL), EELSVAE_ERR_DIMENSION, "4 × 5 × 30",
                 "5 × 4 × 30");
    eelsvae_cube_free(other);
    eelsvae_scorer_free(sc);
    assert_fails(eelsvae_cube_sum_image(c, map, 21), EELSVAE_ERR_DIMENSION, "21", "20");
    float spectrum[31];
    assert_fails(eelsvae_cube_mean_spectrum(c, spectrum, 31), EELSVAE_ERR_DIMENSION, "31", "30");
    eelsvae_metrics mt = {.struct_size = sizeof mt};
    assert_fails(eelsvae_metrics_compute(mask, mask, 0, &mt), EELSVAE_ERR_INVALID_ARGUMENT, "no pixel");
    eelsvae_cube_free(c);

    /* The 16 × 16 training cube: 2 × 2 tiles of 8, 4 latent values each. */
    float mu[4 * 4 + 1];
    eelsvae_cube *prepared = NULL;
    assert_ok(eelsvae_model_prepare(fx.model, fx.train_cube, &prepared));
    assert_fails(eelsvae_model_encode(fx.model, prepared, mu, NULL, 4 * 4 + 1), EELSVAE_ERR_DIMENSION, "17", "16");
    eelsvae_cube_free(prepared);
}

/* The example programs check a truth or exclusion mask against the cube. */
static const char *examples_dir(void)
{
    static char dir[4096];
    static int done;
    if (!done) {
        done = 1;
        const char *env = getenv("EELSVAE_EXAMPLES_DIR");
        char exe[4096];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (env && *env) {
            FORMAT(dir, "%s", env);
        } else if (n > 0) {
            exe[n] = '\0';
            char *slash = strrchr(exe, '/');
            if (slash) *slash = '\0';
            FORMAT(dir, "%s/../examples", exe);
        }
        char probe[4200];
        if (!dir[0] || access(join(probe, sizeof probe, dir, "eelsvae-pca"), X_OK) != 0) dir[0] = '\0';
    }
    return dir[0] ? dir : NULL;
}

static char *read_text(const char *path)
{
    size_t n = 0;
    unsigned char *b = slurp(path, &n);
    char *s = realloc(b, n + 1);
    assert_non_null(s);
    s[n] = '\0';
    return s;
}

/* Run a program, expect exit status `rc` and a stderr naming every needle. */
static void expect_cli(int rc, const char *cmd, const char *const *needles)
{
    const char *err = tu_path("cli.err");
    int got = tu_system("%s 2>'%s' >/dev/null", cmd, err);
    char *text = read_text(err);
    if (got != rc) fail_msg("%s: exit %d, expected %d; stderr: %s", cmd, got, rc, text);
    for (; *needles; needles++)
        if (!strstr(text, *needles)) fail_msg("%s: stderr \"%s\" does not name \"%s\"", cmd, text, *needles);
    free(text);
}

#define EXPECT_CLI(rc, cmd, ...) expect_cli(rc, cmd, (const char *const[]){__VA_ARGS__, NULL})

static void test_cli_masks_and_outputs(void **state)
{
    (void)state;
    const char *bin = examples_dir();
    if (!bin) tu_skip("the example programs are not built beside this test (set EELSVAE_EXAMPLES_DIR)");
    char cube[1024], bad_mask[1024], nan_cube[1024], plain[1024], cmd[16384];
    snprintf(cube, sizeof cube, "%s", tu_path("cli_cube.npy"));
    snprintf(bad_mask, sizeof bad_mask, "%s", tu_path("cli_mask_8x7.npy"));
    snprintf(nan_cube, sizeof nan_cube, "%s", tu_path("cli_nan.npy"));
    snprintf(plain, sizeof plain, "%s", tu_path("cli_plain_file"));
    /* 24 × 24 pixels, 660 … 759.5 eV at 0.5 eV: room for the 690–730 eV window. */
    eelsvae_cube *c = synth(24, 660.0, 759.5, 0.5);
    assert_ok(eelsvae_cube_save_npy(c, cube));
    float *d = eelsvae_cube_data(c);
    size_t ne = 0;
    eelsvae_cube_shape(c, NULL, NULL, &ne);
    d[(3 * 24 + 17) * ne + 80] = NAN; /* 700 eV */
    assert_ok(eelsvae_cube_save_npy(c, nan_cube));
    eelsvae_cube_free(c);
    uint8_t m[8 * 7] = {0};
    const size_t shape[2] = {8, 7};
    assert_ok(eelsvae_npy_write(bad_mask, EELSVAE_DTYPE_UINT8, m, 2, shape));
    spit(plain, "x", 1);
    const char *cal = "--energy-offset 660 --energy-scale 0.5";

    FORMAT(cmd, "'%s/eelsvae-pca' '%s' --out '%s' --truth '%s' %s", bin, cube, tu_path("cli_pca"),
             bad_mask, cal);
    EXPECT_CLI(1, cmd, "cli_mask_8x7.npy", "24 × 24");
    FORMAT(cmd, "'%s/eelsvae-train' '%s' --model '%s' --exclude '%s' --epochs 1 --quiet %s", bin, cube,
             tu_path("cli.evae"), bad_mask, cal);
    EXPECT_CLI(1, cmd, "cli_mask_8x7.npy", "24 × 24");
    assert_false(file_exists(tu_path("cli.evae")));
    FORMAT(cmd, "'%s/eelsvae-pca' '%s' --out '%s' %s", bin, nan_cube, tu_path("cli_pca_nan"), cal);
    EXPECT_CLI(1, cmd, "EELSVAE_ERR_NUMERIC", "y 3, x 17");
    /* An output directory under a regular file cannot be created. */
    FORMAT(cmd, "'%s/eelsvae-pca' '%s' --out '%s/sub' %s", bin, cube, plain, cal);
    EXPECT_CLI(1, cmd, "cli_plain_file");
}

/* ---- outputs that cannot be written --------------------------------------------------------- */

/* Every writer of the public API, each making a file of more than 16 KiB. */
typedef struct writer {
    const char *name, *ext;
    eelsvae_status (*write)(const char *path);
    const char *companion; /* a second file the format writes beside it (.raw), or NULL */
    int vague;             /* the message cannot give the system's reason (HDF5 does not say) */
} writer;

static struct {
    eelsvae_cube *cube;  /* 16 × 16 × 32: 32 KiB */
    eelsvae_cube *like;  /* 64 × 64 × 1, for a 16 KiB map */
    float *map;
    eelsvae_pca *pca;    /* 2 × 4096 components and a 4096-channel mean */
} w;

static eelsvae_status write_npy(const char *path)
{
    const size_t shape[3] = {16, 16, 32};
    return eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, eelsvae_cube_data_const(w.cube), 3, shape);
}
static eelsvae_status write_cube_npy(const char *path) { return eelsvae_cube_save_npy(w.cube, path); }
static eelsvae_status write_cube_any(const char *path) { return eelsvae_cube_save(w.cube, path); }
static eelsvae_status write_map(const char *path)
{
    return eelsvae_map_save(w.map, EELSVAE_DTYPE_FLOAT32, w.like, "score", path);
}
static eelsvae_status write_pca(const char *path) { return eelsvae_pca_save(w.pca, path); }
static eelsvae_status write_model(const char *path) { return eelsvae_model_save(fx.model, path, 1); }
static eelsvae_status write_signal(const char *path)
{
    eelsvae_signal *s = NULL;
    EVAE_TRY(eelsvae_signal_from_cube(w.cube, &s));
    eelsvae_status st = eelsvae_signal_save(s, path);
    eelsvae_signal_free(s);
    return st;
}

static writer writers[10];
static size_t n_writers;

static void writers_setup(void)
{
    if (w.cube) return;
    w.cube = ramp_cube(16, 16, 32, 700.0, 1.0);
    w.like = ramp_cube(64, 64, 1, 700.0, 1.0);
    w.map = calloc(64 * 64, sizeof *w.map);
    assert_non_null(w.map);
    eelsvae_cube *wide = ramp_cube(4, 4, 4096, 100.0, 0.1);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 2;
    assert_ok(eelsvae_pca_fit(wide, &o, &w.pca));
    eelsvae_cube_free(wide);
    n_writers = 0;
    writers[n_writers++] = (writer){"npy_write", ".npy", write_npy, NULL, 0};
    writers[n_writers++] = (writer){"cube_save_npy", ".npy", write_cube_npy, NULL, 0};
    writers[n_writers++] = (writer){"cube_save", ".npy", write_cube_any, NULL, 0};
    writers[n_writers++] = (writer){"map_save", ".npy", write_map, NULL, 0};
    writers[n_writers++] = (writer){"pca_save", ".pca", write_pca, NULL, 0};
    writers[n_writers++] = (writer){"model_save", ".evae", write_model, NULL, 0};
    writers[n_writers++] = (writer){"signal_save", ".npy", write_signal, NULL, 0};
    /* HyperSpy files need HDF5; Ripple ones a reader that writes them too. */
    if (eelsvae_format_supported(EELSVAE_FORMAT_HSPY))
        writers[n_writers++] = (writer){"cube_save", ".hspy", write_cube_any, NULL, 1};
    else
        print_message("note: .hspy not covered: this build has no HDF5\n");
    /* Ripple: only where this build writes it. */
    eelsvae_status st = eelsvae_cube_save(w.cube, tu_path("probe.rpl"));
    if (st == EELSVAE_OK)
        writers[n_writers++] = (writer){"cube_save", ".rpl", write_cube_any, ".raw", 0};
    else
        print_message("note: .rpl not covered: cube_save gives %s (%s)\n", eelsvae_strerror(st), eelsvae_last_error());
}

static int writers_teardown(void **state)
{
    (void)state;
    eelsvae_cube_free(w.cube);
    eelsvae_cube_free(w.like);
    free(w.map);
    eelsvae_pca_free(w.pca);
    memset(&w, 0, sizeof w);
    return 0;
}

/* The companion of a.rpl is a.raw. */
static void companion_path(char *out, size_t size, const char *path, const char *ext)
{
    snprintf(out, size, "%s", path);
    char *dot = strrchr(out, '.');
    if (dot) snprintf(dot, size - (size_t)(dot - out), "%s", ext);
}

static const char OLD_TEXT[] = "old contents that a failed write must leave exactly as they were\n";

/* Put old files in place for a writer (its file and companion). */
static void place_old(const writer *wr, const char *path)
{
    spit(path, OLD_TEXT, sizeof OLD_TEXT - 1);
    if (wr->companion) {
        char other[2048];
        companion_path(other, sizeof other, path, wr->companion);
        spit(other, OLD_TEXT, sizeof OLD_TEXT - 1);
    }
}

/* NULL when the old file (and companion) are intact, else what is wrong. */
static const char *old_intact(const writer *wr, const char *path)
{
    static char why[2200];
    const char *paths[2] = {path, NULL};
    char other[2048];
    if (wr->companion) {
        companion_path(other, sizeof other, path, wr->companion);
        paths[1] = other;
    }
    for (int i = 0; i < 2 && paths[i]; i++) {
        FILE *fp = fopen(paths[i], "rb");
        char buf[256];
        size_t n = fp ? fread(buf, 1, sizeof buf, fp) : 0;
        if (fp) fclose(fp);
        if (!fp || n != sizeof OLD_TEXT - 1 || memcmp(buf, OLD_TEXT, n) != 0) {
            snprintf(why, sizeof why, "%s: the old file was %s", paths[i], fp ? "changed" : "removed");
            return why;
        }
    }
    return NULL;
}

/* The message names the file, or for a pair (.rpl/.raw) the one that failed. */
static int message_names_output(const writer *wr, const char *path)
{
    const char *msg = eelsvae_last_error();
    if (strstr(msg, path)) return 1;
    char other[2048];
    if (!wr->companion) return 0;
    companion_path(other, sizeof other, path, wr->companion);
    return strstr(msg, other) != NULL;
}

static void assert_names_output(const writer *wr, const char *path, const char *reason)
{
    if (!message_names_output(wr, path))
        fail_msg("%s: message \"%s\" names neither %s nor its companion", wr->name, eelsvae_last_error(), path);
    if (reason) assert_message_names(wr->name, (const char *const[]){reason, NULL});
}

static void test_missing_output_directory(void **state)
{
    (void)state;
    writers_setup();
    char dir[1024], path[1200], plain[1024];
    snprintf(dir, sizeof dir, "%s", tu_path("missing/sub"));
    snprintf(plain, sizeof plain, "%s", tu_path("a_plain_file"));
    spit(plain, "x", 1);
    for (size_t i = 0; i < n_writers; i++) {
        const writer *wr = &writers[i];
        snprintf(path, sizeof path, "%s/out%s", dir, wr->ext);
        evae_fail(EELSVAE_OK, "%s", "");
        eelsvae_status st = wr->write(path);
        if (st != EELSVAE_ERR_IO)
            fail_msg("%s to %s: %s, expected EELSVAE_ERR_IO (%s)", wr->name, path, eelsvae_strerror(st),
                     eelsvae_last_error());
        assert_names_output(wr, path, NULL);
        snprintf(path, sizeof path, "%s/out%s", plain, wr->ext);
        evae_fail(EELSVAE_OK, "%s", "");
        st = wr->write(path);
        if (st != EELSVAE_ERR_IO)
            fail_msg("%s to %s: %s, expected EELSVAE_ERR_IO (%s)", wr->name, path, eelsvae_strerror(st),
                     eelsvae_last_error());
        assert_names_output(wr, path, NULL);
    }
    assert_false(file_exists(tu_path("missing")));
    /* A format this build does not write, and an extension no format has. */
    if (!eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) {
        assert_fails(eelsvae_cube_save(w.cube, tu_path("no_hdf5.hspy")), EELSVAE_ERR_UNSUPPORTED, "no_hdf5.hspy");
        assert_false(file_exists(tu_path("no_hdf5.hspy")));
    }
    assert_fails(eelsvae_cube_save(w.cube, tu_path("cube.xyz")), EELSVAE_ERR_INVALID_ARGUMENT, "cube.xyz");
    assert_false(file_exists(tu_path("cube.xyz")));
}

/* In a directory the process may not write: every writer fails with
 * EELSVAE_ERR_IO naming the path; old files stay; no temporary is left.
 * Returns NULL or what went wrong (usable in a forked child). */
static const char *check_unwritable(const char *dir)
{
    static char why[2400];
    char path[1200];
    for (size_t i = 0; i < n_writers; i++) {
        const writer *wr = &writers[i];
        snprintf(path, sizeof path, "%s/old%s", dir, wr->ext);
        evae_fail(EELSVAE_OK, "%s", "");
        eelsvae_status st = wr->write(path);
        const char *bad = NULL;
        if (st != EELSVAE_ERR_IO)
            snprintf(why, sizeof why, "%s to %s: %s, expected EELSVAE_ERR_IO (%s)", wr->name, path,
                     eelsvae_strerror(st), eelsvae_last_error());
        else if (!message_names_output(wr, path))
            snprintf(why, sizeof why, "%s: message \"%s\" does not name %s", wr->name, eelsvae_last_error(), path);
        else if ((bad = old_intact(wr, path)))
            snprintf(why, sizeof why, "%s: %s", wr->name, bad);
        else if (temporaries_in(dir))
            snprintf(why, sizeof why, "%s: left a temporary file in %s", wr->name, dir);
        else
            continue;
        return why;
    }
    return NULL;
}

static void test_unwritable_output_directory(void **state)
{
    (void)state;
    writers_setup();
    char dir[1024], path[1200];
    snprintf(dir, sizeof dir, "%s", tu_path("read_only"));
    assert_int_equal(mkdir(dir, 0755), 0);
    for (size_t i = 0; i < n_writers; i++) {
        snprintf(path, sizeof path, "%s/old%s", dir, writers[i].ext);
        place_old(&writers[i], path);
    }
    assert_int_equal(chmod(dir, 0555), 0);
    if (geteuid() != 0) {
        const char *why = check_unwritable(dir);
        chmod(dir, 0755);
        if (why) fail_msg("%s", why);
        return;
    }
    /* Root writes anywhere: drop to nobody in a child (which only calls the
     * writers, none of which starts threads). */
    assert_int_equal(chmod(tu_tmpdir(), 0711), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
        const char *why = check_unwritable(dir);
        if (why) fprintf(stderr, "%s\n", why);
        _exit(why ? 1 : 0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    chmod(tu_tmpdir(), 0700);
    chmod(dir, 0755);
    assert_true(WIFEXITED(status));
    if (WEXITSTATUS(status) == 77) tu_skip("cannot drop root privileges to test an unwritable directory");
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- the disk fills up midway ----------------------------------------------------------------- */

/* Write every file with the old ones in place in `dir` while `limit()`
 * is in force; each write must fail with EELSVAE_ERR_IO naming the path and
 * `reason`, leave the old files byte for byte and no temporary. */
static void check_full(const char *dir, const char *reason, void (*limit)(int on))
{
    char path[1200];
    for (size_t i = 0; i < n_writers; i++) {
        const writer *wr = &writers[i];
        snprintf(path, sizeof path, "%s/full_%zu%s", dir, i, wr->ext);
        place_old(wr, path);
        evae_fail(EELSVAE_OK, "%s", "");
        limit(1);
        eelsvae_status st = wr->write(path);
        limit(0);
        if (st != EELSVAE_ERR_IO)
            fail_msg("%s to %s: %s, expected EELSVAE_ERR_IO (%s)", wr->name, path, eelsvae_strerror(st),
                     eelsvae_last_error());
        assert_names_output(wr, path, wr->vague ? NULL : reason);
        const char *bad = old_intact(wr, path);
        if (bad) fail_msg("%s: %s", wr->name, bad);
        if (temporaries_in(dir)) fail_msg("%s: left a temporary file in %s", wr->name, dir);
    }
}

static struct rlimit saved_fsize;

/* RLIMIT_FSIZE of 8 KiB with SIGXFSZ ignored: write() fails with EFBIG
 * once a file would grow past it — midway through each of these files. */
static void fsize_limit(int on)
{
    if (on) {
        struct rlimit r = saved_fsize;
        r.rlim_cur = 8192;
        setrlimit(RLIMIT_FSIZE, &r);
    } else {
        setrlimit(RLIMIT_FSIZE, &saved_fsize);
    }
}

static void test_file_size_limit_midway(void **state)
{
    (void)state;
    writers_setup();
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved_fsize), 0);
    if (saved_fsize.rlim_max != RLIM_INFINITY && saved_fsize.rlim_max < 8192)
        tu_skip("RLIMIT_FSIZE is already below 8 KiB");
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigemptyset(&ign.sa_mask);
    assert_int_equal(sigaction(SIGXFSZ, &ign, &old), 0);
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", tu_path("fsize"));
    assert_int_equal(mkdir(dir, 0755), 0);
    check_full(dir, strerror(EFBIG), fsize_limit);
    sigaction(SIGXFSZ, &old, NULL);
}

static char tmpfs_dir[1024];
static int tmpfs_mounted;

static void no_limit(int on)
{
    (void)on;
}

static int tmpfs_teardown(void **state)
{
    (void)state;
    if (tmpfs_mounted) umount2(tmpfs_dir, MNT_DETACH);
    tmpfs_mounted = 0;
    return 0;
}

/* Fill a 64 KiB tmpfs so that 8 KiB stay free, then write larger files. */
static void test_disk_full_midway(void **state)
{
    (void)state;
    writers_setup();
    if (geteuid() != 0) tu_skip("mounting a small tmpfs needs root; the RLIMIT_FSIZE case covers a failing write");
    snprintf(tmpfs_dir, sizeof tmpfs_dir, "%s", tu_path("tmpfs"));
    assert_int_equal(mkdir(tmpfs_dir, 0755), 0);
    if (mount("tmpfs", tmpfs_dir, "tmpfs", MS_NOSUID | MS_NODEV, "size=96k,mode=0755") != 0) {
        char why[300];
        snprintf(why, sizeof why, "cannot mount a tmpfs (%s); the RLIMIT_FSIZE case covers a failing write",
                 strerror(errno));
        tu_skip(why);
    }
    tmpfs_mounted = 1;
    char filler[1200];
    join(filler, sizeof filler, tmpfs_dir, "filler");
    /* The old files take a page each; fill the rest, then free two pages. */
    char path[1200];
    for (size_t i = 0; i < n_writers; i++) {
        snprintf(path, sizeof path, "%s/full_%zu%s", tmpfs_dir, i, writers[i].ext);
        place_old(&writers[i], path);
    }
    int fd = open(filler, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    static const char page[4096];
    off_t size = 0;
    while (write(fd, page, sizeof page) == (ssize_t)sizeof page) size += (off_t)sizeof page;
    assert_int_equal(errno, ENOSPC);
    assert_true(size >= 8192);
    assert_int_equal(ftruncate(fd, size - 8192), 0);
    close(fd);
    check_full(tmpfs_dir, strerror(ENOSPC), no_limit);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nonfinite_samples_rejected),
        cmocka_unit_test(test_scale_keeps_nan),
        cmocka_unit_test(test_nonfinite_scores),
        cmocka_unit_test(test_nonfinite_model_input),
        cmocka_unit_test(test_zero_spectra),
        cmocka_unit_test(test_constant_cube),
        cmocka_unit_test(test_single_pixel_cube),
        cmocka_unit_test(test_single_channel_cube),
        cmocka_unit_test(test_overflowing_dimensions),
        cmocka_unit_test(test_tile_larger_than_cube),
        cmocka_unit_test(test_energy_windows),
        cmocka_unit_test(test_model_other_energy_axis),
        cmocka_unit_test(test_mask_wrong_shape),
        cmocka_unit_test(test_cli_masks_and_outputs),
        cmocka_unit_test(test_missing_output_directory),
        cmocka_unit_test(test_unwritable_output_directory),
        cmocka_unit_test(test_file_size_limit_midway),
        cmocka_unit_test_teardown(test_disk_full_midway, tmpfs_teardown),
    };
    int failed = cmocka_run_group_tests(tests, group_setup, group_teardown);
    writers_teardown(NULL);
    return failed;
}
