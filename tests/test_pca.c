/* PCA basis: against an exact double-precision SVD computed here with
 * LAPACKE_dgesvd, against NumPy for HyperSpy's Poisson normalisation, and
 * the file format's failure modes. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lapacke.h>

#include "testutil.h"
#include "core/core.h"

/* ---- data -------------------------------------------------------------- */

/* A cube of `rank` smooth spectra mixed with random weights, decreasing
 * strengths `scale[r]`, plus uniform noise of amplitude `noise`, plus a
 * constant `offset` (so Poisson tests get non-negative data). */
static eelsvae_cube *low_rank_cube(size_t ny, size_t nx, size_t ne, size_t rank, const double *scale, double noise,
                                   double offset, uint64_t seed)
{
    size_t pixels = ny * nx;
    float *w = malloc(pixels * rank * sizeof *w), *n = malloc(pixels * ne * sizeof *n);
    assert_non_null(w);
    assert_non_null(n);
    tu_fill_uniform(w, pixels * rank, 0.0, 1.0, seed);
    tu_fill_uniform(n, pixels * ne, -1.0, 1.0, seed + 1);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(ny, nx, ne, &c));
    float *x = eelsvae_cube_data(c);
    for (size_t p = 0; p < pixels; p++)
        for (size_t e = 0; e < ne; e++) {
            double v = offset + noise * n[p * ne + e];
            for (size_t r = 0; r < rank; r++) {
                /* spectrum r: a bump centred at a different channel */
                double centre = (double)ne * (0.15 + 0.7 * (double)r / (double)rank), width = 2.0 + (double)r;
                double shape = exp(-0.5 * pow(((double)e - centre) / width, 2.0)) +
                               0.1 * (1.0 + cos(0.3 * (double)(e * (r + 1))));
                v += scale[r] * w[p * rank + r] * shape;
            }
            x[p * ne + e] = (float)v;
        }
    free(w);
    free(n);
    return c;
}

/* U·diag(scale)·Vᵀ with uniform random U (pixels × rank) and V (ne × rank),
 * scale[i] = decay^i: many components with clear gaps. */
static eelsvae_cube *random_mix_cube(size_t ny, size_t nx, size_t ne, size_t rank, double decay, uint64_t seed)
{
    size_t pixels = ny * nx;
    float *u = malloc(pixels * rank * sizeof *u), *v = malloc(ne * rank * sizeof *v);
    assert_non_null(u);
    assert_non_null(v);
    tu_fill_uniform(u, pixels * rank, -1.0, 1.0, seed);
    tu_fill_uniform(v, ne * rank, -1.0, 1.0, seed + 7);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(ny, nx, ne, &c));
    float *x = eelsvae_cube_data(c);
    for (size_t p = 0; p < pixels; p++)
        for (size_t e = 0; e < ne; e++) {
            double acc = 0, scale = 1;
            for (size_t r = 0; r < rank; r++, scale *= decay) acc += scale * u[p * rank + r] * v[e * rank + r];
            x[p * ne + e] = (float)acc;
        }
    free(u);
    free(v);
    return c;
}

/* ---- the oracle: exact SVD in double ----------------------------------- */

typedef struct reference {
    size_t pixels, ne, k;
    double *mean;  /* [ne] */
    double *s;     /* [min] */
    double *vt;    /* [min][ne] */
    double *recon; /* [pixels][ne], rank k, mean added back */
    double total;  /* Σ s² */
} reference;

static reference exact_svd(const eelsvae_cube *cube, size_t k, int center)
{
    reference r = {0};
    eelsvae_cube_shape(cube, NULL, NULL, &r.ne);
    size_t ny = 0, nx = 0;
    eelsvae_cube_shape(cube, &ny, &nx, NULL);
    r.pixels = ny * nx;
    r.k = k;
    size_t m = r.pixels < r.ne ? r.pixels : r.ne;
    const float *x = eelsvae_cube_data_const(cube);
    double *a = calloc(r.pixels * r.ne, sizeof *a), *u = calloc(r.pixels * m, sizeof *u);
    r.mean = calloc(r.ne, sizeof *r.mean);
    r.s = calloc(m, sizeof *r.s);
    r.vt = calloc(m * r.ne, sizeof *r.vt);
    r.recon = calloc(r.pixels * r.ne, sizeof *r.recon);
    double *superb = calloc(m, sizeof *superb);
    assert_true(a && u && r.mean && r.s && r.vt && r.recon && superb);
    for (size_t e = 0; e < r.ne && center; e++) {
        for (size_t p = 0; p < r.pixels; p++) r.mean[e] += x[p * r.ne + e];
        r.mean[e] /= (double)r.pixels;
    }
    for (size_t p = 0; p < r.pixels; p++)
        for (size_t e = 0; e < r.ne; e++) a[p * r.ne + e] = x[p * r.ne + e] - r.mean[e];
    assert_int_equal(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'S', 'S', (lapack_int)r.pixels, (lapack_int)r.ne, a,
                                    (lapack_int)r.ne, r.s, u, (lapack_int)m, r.vt, (lapack_int)r.ne, superb),
                     0);
    for (size_t i = 0; i < m; i++) r.total += r.s[i] * r.s[i];
    for (size_t p = 0; p < r.pixels; p++)
        for (size_t e = 0; e < r.ne; e++) {
            double v = r.mean[e];
            for (size_t i = 0; i < k; i++) v += u[p * m + i] * r.s[i] * r.vt[i * r.ne + e];
            r.recon[p * r.ne + e] = v;
        }
    free(a);
    free(u);
    free(superb);
    return r;
}

static void reference_free(reference *r)
{
    free(r->mean);
    free(r->s);
    free(r->vt);
    free(r->recon);
}

/* Smallest cosine of the principal angles between span(rows of a) and
 * span(rows of b), both k × ne with orthonormal rows. */
static double min_principal_cosine(const float *a, const double *b, size_t k, size_t ne)
{
    double m[256] = {0}, s[16] = {0}, superb[16] = {0};
    assert_true(k <= 16);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++)
            for (size_t e = 0; e < ne; e++) m[i * k + j] += a[i * ne + e] * b[j * ne + e];
    assert_int_equal(LAPACKE_dgesvd(LAPACK_ROW_MAJOR, 'N', 'N', (lapack_int)k, (lapack_int)k, m, (lapack_int)k, s, NULL,
                                    1, NULL, 1, superb),
                     0);
    return s[k - 1];
}

static double max_abs(const double *x, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}

static eelsvae_pca *fit(const eelsvae_cube *cube, size_t k, int center, int poisson)
{
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = k;
    o.center = center;
    o.poisson_normalize = poisson;
    o.tolerance = 1e-6;
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(cube, &o, &pca));
    return pca;
}

/* The sign convention: each component's largest-magnitude entry is positive. */
static void assert_signs_fixed(const eelsvae_pca *pca)
{
    size_t k = 0, ne = 0;
    eelsvae_pca_shape(pca, &k, &ne);
    const float *c = eelsvae_pca_components(pca);
    for (size_t i = 0; i < k; i++) {
        size_t best = 0;
        for (size_t e = 1; e < ne; e++)
            if (fabsf(c[i * ne + e]) > fabsf(c[i * ne + best])) best = e;
        assert_true(c[i * ne + best] > 0.0f);
    }
}

static void assert_orthonormal(const eelsvae_pca *pca)
{
    size_t k = 0, ne = 0;
    eelsvae_pca_shape(pca, &k, &ne);
    const float *c = eelsvae_pca_components(pca);
    for (size_t i = 0; i < k; i++)
        for (size_t j = 0; j < k; j++) {
            double dot = 0;
            for (size_t e = 0; e < ne; e++) dot += (double)c[i * ne + e] * c[j * ne + e];
            assert_close(dot, i == j ? 1.0 : 0.0, 1e-5, 0);
        }
}

/* Our fit against the exact SVD: subspace, ratios, reconstruction. */
static void compare_with_exact(const eelsvae_cube *cube, size_t k, int center, double tolerance)
{
    reference ref = exact_svd(cube, k, center);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = k;
    o.center = center;
    o.tolerance = tolerance;
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(cube, &o, &pca));

    assert_orthonormal(pca);
    assert_signs_fixed(pca);
    double cosine = min_principal_cosine(eelsvae_pca_components(pca), ref.vt, k, ref.ne);
    if (cosine < 1.0 - 1e-5) fail_msg("smallest principal cosine %.9f < 1 − 1e-5", cosine);

    double ratios[16] = {0};
    assert_true(k <= 16);
    assert_ok(eelsvae_pca_explained_variance_ratio(pca, ratios, k));
    for (size_t i = 0; i < k; i++) assert_close(ratios[i], ref.s[i] * ref.s[i] / ref.total, 0, 1e-4);

    eelsvae_cube *recon = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, cube, &recon));
    const float *r = eelsvae_cube_data_const(recon);
    double tol = 1e-5 * max_abs(ref.recon, ref.pixels * ref.ne);
    for (size_t i = 0; i < ref.pixels * ref.ne; i++) assert_close(r[i], ref.recon[i], tol, 0);

    eelsvae_cube_free(recon);
    eelsvae_pca_free(pca);
    reference_free(&ref);
}

static void check_against_exact(int center)
{
    const double scale[5] = {10, 6, 3, 0.4, 0.2};
    eelsvae_cube *cube = low_rank_cube(12, 10, 40, 5, scale, 0.02, 1.0, 11);
    compare_with_exact(cube, 3, center, 1e-6);
    /* tolerance 0: the iteration runs until float32 rounding stalls it */
    compare_with_exact(cube, 3, center, 0.0);
    eelsvae_cube_free(cube);
}

static void test_matches_exact_svd_centred(void **state)
{
    (void)state;
    check_against_exact(1);
}

static void test_matches_exact_svd_uncentred(void **state)
{
    (void)state;
    check_against_exact(0);
}

/* k + oversampling close to ne: the Krylov basis holds one block and
 * restarts every pass (plain subspace iteration). */
static void test_many_components(void **state)
{
    (void)state;
    eelsvae_cube *cube = random_mix_cube(10, 12, 30, 30, 0.7, 41);
    compare_with_exact(cube, 12, 1, 1e-6);
    compare_with_exact(cube, 12, 0, 1e-6);
    eelsvae_cube_free(cube);
    /* and k = min(pixels, ne) exactly: the whole space */
    cube = random_mix_cube(2, 3, 9, 9, 0.8, 43);
    compare_with_exact(cube, 6, 0, 1e-6);
    eelsvae_cube_free(cube);
}

/* One spectrum: uncentred, its own direction explains everything and is
 * rebuilt exactly; centred, nothing is left and the mean is the rebuild. */
static void test_single_spectrum(void **state)
{
    (void)state;
    const float x[5] = {1, 3, 2, 5, 4};
    eelsvae_cube *cube = NULL;
    assert_ok(eelsvae_cube_create_from(x, 1, 1, 5, &cube));
    for (int center = 0; center <= 1; center++) {
        eelsvae_pca *pca = fit(cube, 1, center, 0);
        double ratio = -1;
        assert_ok(eelsvae_pca_explained_variance_ratio(pca, &ratio, 1));
        assert_close(ratio, center ? 0.0 : 1.0, 1e-6, 0);
        const float *c = eelsvae_pca_components(pca);
        if (!center)
            for (size_t e = 0; e < 5; e++) assert_close(c[e], x[e] / sqrt(55.0), 1e-6, 0);
        eelsvae_cube *recon = NULL;
        assert_ok(eelsvae_pca_reconstruct(pca, cube, &recon));
        for (size_t e = 0; e < 5; e++) assert_close(eelsvae_cube_data_const(recon)[e], x[e], 1e-5, 1e-6);
        eelsvae_cube_free(recon);
        eelsvae_pca_free(pca);
    }
    eelsvae_cube_free(cube);
}

/* Passes the last fit took, read from its log line. */
static size_t passes_taken;

static void count_passes(void *user, eelsvae_log_level level, const char *message)
{
    (void)user;
    (void)level;
    const char *at = strstr(message, " after ");
    if (at && strstr(message, "passes over the cube")) passes_taken = (size_t)strtoul(at + 7, NULL, 10);
}

/* A flat spectrum (σ_i ∝ 0.97^i): the block Krylov iteration converges to
 * 1e-6 in a handful of passes where plain subspace iteration needs dozens
 * (σ_{l+1}/σ_k = 0.97^10 ≈ 0.74 per pass), and agrees with the exact SVD. */
static void test_flat_spectrum_converges_fast(void **state)
{
    (void)state;
    eelsvae_cube *cube = random_mix_cube(20, 20, 60, 60, 0.97, 45);
    passes_taken = 0;
    eelsvae_set_log_callback(count_passes, NULL);
    compare_with_exact(cube, 3, 0, 1e-6);
    eelsvae_set_log_callback(NULL, NULL);
    if (passes_taken == 0 || passes_taken > 6) fail_msg("the fit took %zu passes (at most 6 expected)", passes_taken);
    eelsvae_cube_free(cube);
}

/* A fit cut short by max_iterations still returns an orthonormal basis,
 * and says so through the log callback. */
static int warnings;

static void count_warnings(void *user, eelsvae_log_level level, const char *message)
{
    (void)user;
    if (level == EELSVAE_LOG_WARN && strstr(message, "not converged")) warnings++;
}

static void test_iteration_cap(void **state)
{
    (void)state;
    eelsvae_cube *cube = random_mix_cube(20, 20, 40, 40, 0.97, 45);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 3;
    o.max_iterations = 1;
    o.tolerance = 0;
    eelsvae_pca *pca = NULL;
    warnings = 0;
    eelsvae_set_log_callback(count_warnings, NULL);
    assert_ok(eelsvae_pca_fit(cube, &o, &pca));
    eelsvae_set_log_callback(NULL, NULL);
    assert_int_equal(warnings, 1);
    assert_orthonormal(pca);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(cube);
}

/* ---- Poisson normalisation against NumPy -------------------------------- */

static const char *poisson_script =
    "import sys\n"
    "import numpy as np\n"
    "src, out, P, ne, k, center = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])\n"
    "X = np.fromfile(src, '<f4').reshape(P, ne).astype(np.float64)\n"
    "# HyperSpy's normalize_poissonian_noise: aG per pixel, bH per channel, 0/0 = 0\n"
    "aG = X.sum(1)\n"
    "bH = X.sum(0)\n"
    "root = np.sqrt(aG)[:, None] * np.sqrt(bH)[None, :]\n"
    "with np.errstate(divide='ignore', invalid='ignore'):\n"
    "    Xn = np.nan_to_num(X / root)\n"
    "mu = Xn.mean(0) if center else np.zeros(ne)\n"
    "A = Xn - mu\n"
    "U, S, VT = np.linalg.svd(A, full_matrices=False)\n"
    "ratio = S[:k] ** 2 / (A ** 2).sum()\n"
    "R = ((U[:, :k] * S[:k]) @ VT[:k] + mu) * root\n"
    "np.concatenate([ratio, VT[:k].ravel(), R.ravel()]).astype('<f8').tofile(out)\n";

static double *read_doubles(const char *path, size_t n)
{
    double *d = malloc(n * sizeof *d);
    assert_non_null(d);
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fread(d, sizeof *d, n, f), n);
    fclose(f);
    return d;
}

static void write_floats(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(x, sizeof *x, n, f), n);
    fclose(f);
}

static void check_poisson_against_numpy(int center)
{
    const char *python = tu_python();
    if (!python) tu_skip("no /usr/bin/python3 with NumPy: the Poisson normalisation oracle is NumPy");
    const double scale[4] = {40, 20, 8, 1};
    const size_t ny = 12, nx = 10, ne = 40, k = 3, pixels = ny * nx;
    eelsvae_cube *cube = low_rank_cube(ny, nx, ne, 4, scale, 0.5, 1.0, 23);
    float *x = eelsvae_cube_data(cube);
    /* an empty pixel and an empty channel exercise HyperSpy's 0/0 = 0 */
    memset(x + 7 * ne, 0, ne * sizeof *x);
    for (size_t p = 0; p < pixels; p++) x[p * ne + 5] = 0.0f;

    FILE *f = fopen(tu_path("poisson.py"), "w");
    assert_non_null(f);
    fputs(poisson_script, f);
    fclose(f);
    write_floats(tu_path("poisson_in.f32"), x, pixels * ne);
    int rc = tu_system("%s %s %s %s %zu %zu %zu %d", python, tu_path("poisson.py"), tu_path("poisson_in.f32"),
                       tu_path("poisson_out.f64"), pixels, ne, k, center);
    assert_int_equal(rc, 0);
    double *ref = read_doubles(tu_path("poisson_out.f64"), k + k * ne + pixels * ne);
    const double *ref_ratio = ref, *ref_vt = ref + k, *ref_recon = ref + k + k * ne;

    eelsvae_pca *pca = fit(cube, k, center, 1);
    assert_orthonormal(pca);
    assert_signs_fixed(pca);
    double cosine = min_principal_cosine(eelsvae_pca_components(pca), ref_vt, k, ne);
    if (cosine < 1.0 - 1e-5) fail_msg("smallest principal cosine %.9f < 1 − 1e-5", cosine);
    double ratios[3] = {0};
    assert_ok(eelsvae_pca_explained_variance_ratio(pca, ratios, k));
    for (size_t i = 0; i < k; i++) assert_close(ratios[i], ref_ratio[i], 0, 1e-4);
    eelsvae_cube *recon = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, cube, &recon));
    const float *r = eelsvae_cube_data_const(recon);
    double tol = 1e-5 * max_abs(ref_recon, pixels * ne);
    for (size_t i = 0; i < pixels * ne; i++) assert_close(r[i], ref_recon[i], tol, 0);
    /* the empty pixel and channel reconstruct to exactly zero */
    for (size_t e = 0; e < ne; e++) assert_true(r[7 * ne + e] == 0.0f);
    for (size_t p = 0; p < pixels; p++) assert_true(r[p * ne + 5] == 0.0f);

    free(ref);
    eelsvae_cube_free(recon);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(cube);
}

static void test_poisson_matches_numpy(void **state)
{
    (void)state;
    check_poisson_against_numpy(0);
}

static void test_poisson_centred_matches_numpy(void **state)
{
    (void)state;
    check_poisson_against_numpy(1);
}

/* A new cube's pixel weights are its own: without centring, doubling the
 * counts scales the normalised spectra by √2 and the reconstruction by 2. */
static void test_poisson_new_cube_uses_its_pixel_sums(void **state)
{
    (void)state;
    const double scale[3] = {30, 10, 3};
    eelsvae_cube *cube = low_rank_cube(8, 9, 30, 3, scale, 0.3, 1.0, 5);
    eelsvae_cube *twice = NULL;
    assert_ok(eelsvae_cube_copy(cube, &twice));
    float *t = eelsvae_cube_data(twice);
    for (size_t i = 0; i < 8 * 9 * 30; i++) t[i] *= 2.0f;
    eelsvae_pca *pca = fit(cube, 2, 0, 1);
    float s1[8 * 9 * 2], s2[8 * 9 * 2];
    assert_ok(eelsvae_pca_project(pca, cube, s1, 8 * 9 * 2));
    assert_ok(eelsvae_pca_project(pca, twice, s2, 8 * 9 * 2));
    for (size_t i = 0; i < 8 * 9 * 2; i++) assert_close(s2[i], sqrt(2.0) * s1[i], 1e-5, 1e-5);
    eelsvae_cube *r1 = NULL, *r2 = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, cube, &r1));
    assert_ok(eelsvae_pca_reconstruct(pca, twice, &r2));
    const float *a = eelsvae_cube_data_const(r1), *b = eelsvae_cube_data_const(r2);
    for (size_t i = 0; i < 8 * 9 * 30; i++) assert_close(b[i], 2.0 * a[i], 1e-4, 1e-5);
    eelsvae_cube_free(r1);
    eelsvae_cube_free(r2);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(twice);
    eelsvae_cube_free(cube);
}

/* ---- properties -------------------------------------------------------- */

/* Scores, multiplied back by the components with the mean added, give what
 * reconstruct gives. The cube projected is not the one fitted. */
static void test_project_then_manual_reconstruction(void **state)
{
    (void)state;
    const double scale[4] = {5, 3, 1, 0.5};
    eelsvae_cube *cube = low_rank_cube(9, 7, 50, 4, scale, 0.05, 2.0, 3);
    eelsvae_cube *other = low_rank_cube(5, 6, 50, 4, scale, 0.05, 2.0, 99);
    const size_t k = 3, ne = 50, pixels = 30;
    eelsvae_pca *pca = fit(cube, k, 1, 0);
    float scores[30 * 3];
    assert_ok(eelsvae_pca_project(pca, other, scores, pixels * k));

    /* the scores are (x − μ)·c with μ the fitted mean */
    const float *c = eelsvae_pca_components(pca), *x = eelsvae_cube_data_const(cube),
                *y = eelsvae_cube_data_const(other);
    double mean[50] = {0};
    for (size_t p = 0; p < 63; p++)
        for (size_t e = 0; e < ne; e++) mean[e] += x[p * ne + e] / 63.0;
    for (size_t p = 0; p < pixels; p++)
        for (size_t i = 0; i < k; i++) {
            double s = 0;
            for (size_t e = 0; e < ne; e++) s += (y[p * ne + e] - mean[e]) * c[i * ne + e];
            assert_close(scores[p * k + i], s, 1e-4, 1e-4);
        }

    eelsvae_cube *recon = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, other, &recon));
    const float *r = eelsvae_cube_data_const(recon);
    for (size_t p = 0; p < pixels; p++)
        for (size_t e = 0; e < ne; e++) {
            double v = mean[e];
            for (size_t i = 0; i < k; i++) v += scores[p * k + i] * c[i * ne + e];
            assert_close(r[p * ne + e], v, 1e-4, 1e-5);
        }
    /* the reconstruction keeps the input's calibration */
    eelsvae_cube_set_axis(other, EELSVAE_AXIS_E, 420.0, 0.3, "eV");
    eelsvae_cube_free(recon);
    assert_ok(eelsvae_pca_reconstruct(pca, other, &recon));
    double off = 0, sc = 0;
    assert_ok(eelsvae_cube_axis(recon, EELSVAE_AXIS_E, &off, &sc, NULL));
    assert_close(off, 420.0, 0, 0);
    assert_close(sc, 0.3, 0, 0);

    eelsvae_cube_free(recon);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(other);
    eelsvae_cube_free(cube);
}

/* Ratios decrease and add up to at most 1; with k = rank of the data
 * (no noise) they add up to 1. */
static void test_ratios(void **state)
{
    (void)state;
    const double scale[3] = {4, 2, 1};
    eelsvae_cube *cube = low_rank_cube(10, 10, 30, 3, scale, 0.0, 0.5, 8);
    eelsvae_pca *pca = fit(cube, 3, 1, 0);
    double ratios[3] = {0};
    assert_ok(eelsvae_pca_explained_variance_ratio(pca, ratios, 3));
    assert_true(ratios[0] >= ratios[1] && ratios[1] >= ratios[2] && ratios[2] > 0);
    /* centring removes the mean of the weights, leaving rank 3 exactly */
    assert_close(ratios[0] + ratios[1] + ratios[2], 1.0, 1e-5, 0);
    assert_status(eelsvae_pca_explained_variance_ratio(pca, ratios, 2), EELSVAE_ERR_DIMENSION);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(cube);
}

/* Same seed → same bits, whatever the thread count (1, 2, 3); another seed
 * gives the same subspace. */
static void test_deterministic(void **state)
{
    (void)state;
    const double scale[5] = {10, 6, 3, 0.4, 0.2};
    eelsvae_cube *cube = low_rank_cube(64, 64, 100, 5, scale, 0.05, 1.0, 4);
    int threads = eelsvae_threads();
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 3;
    eelsvae_pca *a = NULL, *b = NULL, *c = NULL, *d = NULL;
    assert_ok(eelsvae_set_threads(1));
    assert_ok(eelsvae_pca_fit(cube, &o, &a));
    assert_ok(eelsvae_set_threads(3));
    assert_ok(eelsvae_pca_fit(cube, &o, &b));
    assert_ok(eelsvae_set_threads(2));
    assert_ok(eelsvae_pca_fit(cube, &o, &c));
    o.seed = 12345;
    assert_ok(eelsvae_pca_fit(cube, &o, &d));
    assert_ok(eelsvae_set_threads(threads));
    assert_memory_equal(eelsvae_pca_components(a), eelsvae_pca_components(b), 3 * 100 * sizeof(float));
    assert_memory_equal(eelsvae_pca_components(b), eelsvae_pca_components(c), 3 * 100 * sizeof(float));
    double cosine = 0;
    double dd[300];
    for (size_t i = 0; i < 300; i++) dd[i] = eelsvae_pca_components(d)[i];
    cosine = min_principal_cosine(eelsvae_pca_components(a), dd, 3, 100);
    assert_true(cosine > 1.0 - 1e-5);
    eelsvae_cube *ra = NULL, *rb = NULL;
    assert_ok(eelsvae_set_threads(1));
    assert_ok(eelsvae_pca_reconstruct(a, cube, &ra));
    assert_ok(eelsvae_set_threads(2));
    assert_ok(eelsvae_pca_reconstruct(a, cube, &rb));
    assert_ok(eelsvae_set_threads(threads));
    assert_memory_equal(eelsvae_cube_data_const(ra), eelsvae_cube_data_const(rb), 64 * 64 * 100 * sizeof(float));
    eelsvae_cube_free(ra);
    eelsvae_cube_free(rb);
    eelsvae_pca_free(a);
    eelsvae_pca_free(b);
    eelsvae_pca_free(c);
    eelsvae_pca_free(d);
    eelsvae_cube_free(cube);
}

/* Data of rank 2 asked for 3 components, and a constant cube: the basis is
 * still orthonormal and the reconstruction exact. */
static void test_rank_deficient(void **state)
{
    (void)state;
    const double scale[2] = {3, 1};
    eelsvae_cube *cube = low_rank_cube(6, 5, 20, 2, scale, 0.0, 0.0, 2);
    eelsvae_pca *pca = fit(cube, 3, 0, 0);
    assert_orthonormal(pca);
    double ratios[3] = {0};
    assert_ok(eelsvae_pca_explained_variance_ratio(pca, ratios, 3));
    assert_close(ratios[0] + ratios[1], 1.0, 1e-5, 0);
    assert_close(ratios[2], 0.0, 1e-6, 0);
    eelsvae_cube *recon = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, cube, &recon));
    const float *x = eelsvae_cube_data_const(cube), *r = eelsvae_cube_data_const(recon);
    for (size_t i = 0; i < 6 * 5 * 20; i++) assert_close(r[i], x[i], 1e-5, 1e-5);
    eelsvae_cube_free(recon);
    eelsvae_pca_free(pca);

    float *v = eelsvae_cube_data(cube);
    for (size_t i = 0; i < 6 * 5 * 20; i++) v[i] = 0.25f;
    pca = fit(cube, 2, 1, 0);
    assert_orthonormal(pca);
    assert_ok(eelsvae_pca_explained_variance_ratio(pca, ratios, 2));
    assert_close(ratios[0], 0.0, 0, 0);
    assert_ok(eelsvae_pca_reconstruct(pca, cube, &recon));
    r = eelsvae_cube_data_const(recon);
    for (size_t i = 0; i < 6 * 5 * 20; i++) assert_close(r[i], 0.25, 1e-7, 0);
    eelsvae_cube_free(recon);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(cube);
}

/* An options struct from an older caller (shorter struct_size) gets the
 * defaults for the fields it lacks. */
static void test_short_options_struct(void **state)
{
    (void)state;
    const double scale[3] = {4, 2, 1};
    eelsvae_cube *cube = low_rank_cube(6, 6, 20, 3, scale, 0.01, 1.0, 6);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 2;
    o.seed = 99;
    o.max_iterations = 0; /* invalid, but beyond the short struct */
    o.struct_size = offsetof(eelsvae_pca_options, seed);
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(cube, &o, &pca));
    size_t k = 0;
    eelsvae_pca_shape(pca, &k, NULL);
    assert_int_equal(k, 2);
    eelsvae_pca_free(pca);
    o.struct_size = 0;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(cube);
}

/* ---- file ---------------------------------------------------------------- */

static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *size = (size_t)ftell(f);
    rewind(f);
    uint8_t *d = malloc(*size);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, *size, f), *size);
    fclose(f);
    return d;
}

static void spill(const char *path, const uint8_t *d, size_t size)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, size, f), size);
    fclose(f);
}

static void test_save_load_roundtrip(void **state)
{
    (void)state;
    const double scale[4] = {30, 10, 3, 1};
    eelsvae_cube *cube = low_rank_cube(7, 8, 33, 4, scale, 0.2, 1.0, 17);
    for (int poisson = 0; poisson <= 1; poisson++) {
        eelsvae_pca *pca = fit(cube, 3, 1, poisson), *back = NULL;
        const char *path = tu_path("basis.pca");
        assert_ok(eelsvae_pca_save(pca, path));
        assert_ok(eelsvae_pca_load(path, &back));
        size_t k = 0, ne = 0;
        eelsvae_pca_shape(back, &k, &ne);
        assert_int_equal(k, 3);
        assert_int_equal(ne, 33);
        assert_memory_equal(eelsvae_pca_components(pca), eelsvae_pca_components(back), 3 * 33 * sizeof(float));
        double r1[3], r2[3];
        assert_ok(eelsvae_pca_explained_variance_ratio(pca, r1, 3));
        assert_ok(eelsvae_pca_explained_variance_ratio(back, r2, 3));
        assert_memory_equal(r1, r2, sizeof r1);
        eelsvae_cube *a = NULL, *b = NULL;
        assert_ok(eelsvae_pca_reconstruct(pca, cube, &a));
        assert_ok(eelsvae_pca_reconstruct(back, cube, &b));
        assert_memory_equal(eelsvae_cube_data_const(a), eelsvae_cube_data_const(b), 7 * 8 * 33 * sizeof(float));
        /* the file is exactly the documented layout: header, payload, CRC */
        size_t size = 0;
        uint8_t *d = slurp(path, &size);
        assert_int_equal(size, 64 + 4 * (33 + 33 + 3 * 33) + 16 * 3 + 4);
        assert_memory_equal(d, "EELSVPCA", 8);
        uint32_t crc = (uint32_t)d[size - 4] | (uint32_t)d[size - 3] << 8 | (uint32_t)d[size - 2] << 16 |
                       (uint32_t)d[size - 1] << 24;
        assert_int_equal(crc, evae_crc32(0, d, size - 4));
        free(d);
        eelsvae_cube_free(a);
        eelsvae_cube_free(b);
        eelsvae_pca_free(back);
        eelsvae_pca_free(pca);
    }
    eelsvae_cube_free(cube);
}

static void test_load_rejects_bad_files(void **state)
{
    (void)state;
    const double scale[3] = {3, 2, 1};
    eelsvae_cube *cube = low_rank_cube(5, 5, 16, 3, scale, 0.1, 1.0, 21);
    eelsvae_pca *pca = fit(cube, 2, 1, 0), *back = NULL;
    const char *good = tu_path("good.pca"), *bad = tu_path("bad.pca");
    assert_ok(eelsvae_pca_save(pca, good));
    size_t size = 0;
    uint8_t *d = slurp(good, &size);

    d[100] ^= 0x10; /* inside the components */
    spill(bad, d, size);
    assert_status(eelsvae_pca_load(bad, &back), EELSVAE_ERR_CHECKSUM);
    d[100] ^= 0x10;
    d[size - 1] ^= 0x01; /* the CRC itself */
    spill(bad, d, size);
    assert_status(eelsvae_pca_load(bad, &back), EELSVAE_ERR_CHECKSUM);
    d[size - 1] ^= 0x01;

    const size_t cuts[] = {0, 4, 8, 11, 12, 40, 63, 64, 65, 200, size - 5, size - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spill(bad, d, cuts[i]);
        eelsvae_status st = eelsvae_pca_load(bad, &back);
        if (st != EELSVAE_ERR_FORMAT) fail_msg("truncated at %zu: %s", cuts[i], eelsvae_strerror(st));
    }
    uint8_t *longer = malloc(size + 3);
    assert_non_null(longer);
    memcpy(longer, d, size);
    memset(longer + size, 0, 3);
    spill(bad, longer, size + 3);
    assert_status(eelsvae_pca_load(bad, &back), EELSVAE_ERR_FORMAT);
    free(longer);

    d[0] = 'X';
    spill(bad, d, size);
    assert_status(eelsvae_pca_load(bad, &back), EELSVAE_ERR_FORMAT);
    d[0] = 'E';
    d[8] = 2; /* version 2 */
    spill(bad, d, size);
    assert_status(eelsvae_pca_load(bad, &back), EELSVAE_ERR_VERSION);
    d[8] = 1;
    d[24 + 7] = 0x40; /* an absurd k: refused before any allocation */
    spill(bad, d, size);
    assert_status(eelsvae_pca_load(bad, &back), EELSVAE_ERR_FORMAT);
    d[24 + 7] = 0;
    spill(bad, d, size);
    assert_ok(eelsvae_pca_load(bad, &back)); /* all repaired */
    eelsvae_pca_free(back);
    back = NULL;

    assert_status(eelsvae_pca_load(tu_path("missing.pca"), &back), EELSVAE_ERR_IO);
    assert_null(back);
    /* a failed save keeps the old file */
    assert_status(eelsvae_pca_save(pca, tu_path("no-such-dir/basis.pca")), EELSVAE_ERR_IO);
    free(d);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(cube);
}

/* ---- bad input ----------------------------------------------------------- */

static void test_invalid_arguments(void **state)
{
    (void)state;
    eelsvae_cube *cube = tu_random_cube(3, 4, 10, 1);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    eelsvae_pca *pca = NULL;
    o.components = 0;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    o.components = 11; /* > ne */
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube *few = tu_random_cube(2, 2, 10, 1);
    o.components = 5; /* > pixels */
    assert_status(eelsvae_pca_fit(few, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    o.components = 4;
    assert_ok(eelsvae_pca_fit(few, &o, &pca)); /* = min(pixels, ne) is fine */
    eelsvae_pca_free(pca);
    pca = NULL;
    o.components = 2;
    o.tolerance = -1;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    o.tolerance = NAN;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    o.tolerance = 1e-6;
    o.max_iterations = 0;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    o.max_iterations = 50;
    assert_status(eelsvae_pca_fit(NULL, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pca_fit(cube, NULL, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pca_options_init_sized(NULL, sizeof(eelsvae_pca_options)),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(pca);

    assert_ok(eelsvae_pca_fit(cube, &o, &pca));
    eelsvae_cube *other = tu_random_cube(3, 4, 11, 2), *recon = NULL;
    float scores[3 * 4 * 2];
    assert_status(eelsvae_pca_project(pca, other, scores, 24), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_pca_reconstruct(pca, other, &recon), EELSVAE_ERR_DIMENSION);
    assert_null(recon);
    assert_status(eelsvae_pca_project(pca, cube, scores, 23), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_pca_project(pca, cube, NULL, 24), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pca_reconstruct(NULL, cube, &recon), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_pca_save(NULL, tu_path("x.pca")), EELSVAE_ERR_INVALID_ARGUMENT);
    size_t k = 7, ne = 7;
    eelsvae_pca_shape(NULL, &k, &ne);
    assert_int_equal(k + ne, 0);
    assert_null(eelsvae_pca_components(NULL));
    eelsvae_pca_free(NULL);

    eelsvae_pca_free(pca);
    eelsvae_cube_free(other);
    eelsvae_cube_free(few);
    eelsvae_cube_free(cube);
}

/* Non-finite samples, and negative ones under Poisson normalisation, are
 * EELSVAE_ERR_NUMERIC naming the first bad pixel. */
static void test_bad_samples(void **state)
{
    (void)state;
    eelsvae_cube *cube = tu_random_cube(6, 7, 12, 3);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 2;
    eelsvae_pca *pca = NULL, *good = NULL;
    assert_ok(eelsvae_pca_fit(cube, &o, &good));
    float *x = eelsvae_cube_data(cube);
    x[(4 * 7 + 5) * 12 + 9] = NAN;
    x[(5 * 7 + 1) * 12 + 2] = INFINITY;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "y 4, x 5"));
    assert_non_null(strstr(eelsvae_last_error(), "channel 9"));
    float scores[6 * 7 * 2];
    assert_status(eelsvae_pca_project(good, cube, scores, 6 * 7 * 2), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "y 4, x 5"));
    eelsvae_cube *recon = NULL;
    assert_status(eelsvae_pca_reconstruct(good, cube, &recon), EELSVAE_ERR_NUMERIC);
    assert_null(recon);
    x[(4 * 7 + 5) * 12 + 9] = 0.5f;
    x[(5 * 7 + 1) * 12 + 2] = 0.5f;

    x[(2 * 7 + 3) * 12 + 4] = -0.25f;
    o.poisson_normalize = 1;
    assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_NUMERIC);
    assert_non_null(strstr(eelsvae_last_error(), "y 2, x 3"));
    o.poisson_normalize = 0;
    assert_ok(eelsvae_pca_fit(cube, &o, &pca)); /* negative values are fine without it */
    eelsvae_pca_free(pca);
    assert_null(NULL);
    eelsvae_pca_free(good);
    eelsvae_cube_free(cube);
}

/* Every allocation can fail: each failure is EELSVAE_ERR_NOMEM with nothing
 * leaked (the sanitizer build checks the leaks). */
static void test_allocation_failures(void **state)
{
    (void)state;
    const double scale[3] = {3, 2, 1};
    eelsvae_cube *cube = low_rank_cube(6, 6, 20, 3, scale, 0.1, 1.0, 31);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 2;
    o.poisson_normalize = 1;
    const char *path = tu_path("alloc.pca");
    int finished = 0;
    for (unsigned long n = 1; n < 200 && !finished; n++) {
        eelsvae_pca *pca = NULL, *back = NULL;
        eelsvae_cube *recon = NULL;
        float scores[36 * 2];
        evae_fail_allocation_after(n);
        eelsvae_status st = eelsvae_pca_fit(cube, &o, &pca);
        if (st == EELSVAE_OK) st = eelsvae_pca_reconstruct(pca, cube, &recon);
        if (st == EELSVAE_OK) st = eelsvae_pca_project(pca, cube, scores, 36 * 2);
        if (st == EELSVAE_OK) st = eelsvae_pca_save(pca, path);
        if (st == EELSVAE_OK) st = eelsvae_pca_load(path, &back);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK)
            finished = 1;
        else if (st != EELSVAE_ERR_NOMEM)
            fail_msg("allocation %lu failing gave %s: %s", n, eelsvae_strerror(st), eelsvae_last_error());
        eelsvae_pca_free(back);
        eelsvae_cube_free(recon);
        eelsvae_pca_free(pca);
    }
    assert_true(finished);
    eelsvae_cube_free(cube);
}

/* ---- the trimmed (robust) fit ---------------------------------------------------------- */

#define TRIM_NY 20
#define TRIM_NX 20
#define TRIM_NE 64
#define TRIM_ANOMALY 3.0 /* amplitude of the anomalous peak */

/* Bulk spectra and the anomaly's peak, channel e of 0 … TRIM_NE − 1. */
static double trim_bulk1(size_t e)
{
    return exp(-0.5 * pow(((double)e - 16.0) / 6.0, 2.0)) + 0.2;
}
static double trim_bulk2(size_t e)
{
    return exp(-0.5 * pow(((double)e - 36.0) / 5.0, 2.0));
}
static double trim_peak(size_t e)
{
    return exp(-0.5 * pow(((double)e - 52.0) / 2.5, 2.0));
}

/* Pixels (8 … 10, 12 … 14): 9 of 400, 2.25 %. */
static int trim_is_anomalous(size_t y, size_t x)
{
    return y >= 8 && y <= 10 && x >= 12 && x <= 14;
}

/* 20 × 20 × 64: every pixel 4·u1·bulk1 + 2·u2·bulk2 (u uniform in [0, 1))
 * plus uniform noise in ±0.03; the 3 × 3 block adds TRIM_ANOMALY·peak. */
static eelsvae_cube *trim_cube(uint64_t seed)
{
    size_t pixels = TRIM_NY * TRIM_NX;
    float *u = malloc(pixels * 2 * sizeof *u), *n = malloc(pixels * TRIM_NE * sizeof *n);
    assert_non_null(u);
    assert_non_null(n);
    tu_fill_uniform(u, pixels * 2, 0.0, 1.0, seed);
    tu_fill_uniform(n, pixels * TRIM_NE, -0.03, 0.03, seed + 1);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(TRIM_NY, TRIM_NX, TRIM_NE, &c));
    float *x = eelsvae_cube_data(c);
    for (size_t y = 0; y < TRIM_NY; y++)
        for (size_t xx = 0; xx < TRIM_NX; xx++) {
            size_t p = y * TRIM_NX + xx;
            for (size_t e = 0; e < TRIM_NE; e++) {
                double v = 4.0 * u[2 * p] * trim_bulk1(e) + 2.0 * u[2 * p + 1] * trim_bulk2(e) + n[p * TRIM_NE + e];
                if (trim_is_anomalous(y, xx)) v += TRIM_ANOMALY * trim_peak(e);
                x[p * TRIM_NE + e] = (float)v;
            }
        }
    free(u);
    free(n);
    return c;
}

/* ‖P⊥ peak‖: the part of the anomaly's peak outside span(bulk1, bulk2)
 * (Gram–Schmidt in double), what no basis holding only the bulk can rebuild. */
static double trim_peak_outside_bulk(void)
{
    double q1[TRIM_NE], q2[TRIM_NE], r[TRIM_NE], n1 = 0, d = 0, n2 = 0, dr1 = 0, dr2 = 0, nr = 0;
    for (size_t e = 0; e < TRIM_NE; e++) n1 += trim_bulk1(e) * trim_bulk1(e);
    for (size_t e = 0; e < TRIM_NE; e++) q1[e] = trim_bulk1(e) / sqrt(n1);
    for (size_t e = 0; e < TRIM_NE; e++) d += trim_bulk2(e) * q1[e];
    for (size_t e = 0; e < TRIM_NE; e++) q2[e] = trim_bulk2(e) - d * q1[e];
    for (size_t e = 0; e < TRIM_NE; e++) n2 += q2[e] * q2[e];
    for (size_t e = 0; e < TRIM_NE; e++) q2[e] /= sqrt(n2);
    for (size_t e = 0; e < TRIM_NE; e++) {
        dr1 += trim_peak(e) * q1[e];
        dr2 += trim_peak(e) * q2[e];
    }
    for (size_t e = 0; e < TRIM_NE; e++) {
        r[e] = trim_peak(e) - dr1 * q1[e] - dr2 * q2[e];
        nr += r[e] * r[e];
    }
    return sqrt(nr);
}

static int compare_doubles(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *x, size_t n)
{
    qsort(x, n, sizeof *x, compare_doubles);
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

/* Residual norms ‖x − x̂‖ of a k = 3 fit with trim fraction f: the bulk's
 * median, the anomalous block's median, smallest and largest. */
typedef struct trim_residuals {
    double bulk_median, anomaly_median, anomaly_min, anomaly_max;
} trim_residuals;

static trim_residuals trimmed_residuals(const eelsvae_cube *cube, double f, eelsvae_pca **keep)
{
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 3;
    o.tolerance = 1e-6;
    o.trim_fraction = f;
    eelsvae_pca *pca = NULL;
    assert_ok(eelsvae_pca_fit(cube, &o, &pca));
    assert_orthonormal(pca);
    eelsvae_cube *recon = NULL;
    assert_ok(eelsvae_pca_reconstruct(pca, cube, &recon));
    const float *x = eelsvae_cube_data_const(cube), *r = eelsvae_cube_data_const(recon);
    double bulk[TRIM_NY * TRIM_NX], anomaly[9];
    size_t nb = 0, na = 0;
    trim_residuals out = {0, 0, INFINITY, 0};
    for (size_t y = 0; y < TRIM_NY; y++)
        for (size_t xx = 0; xx < TRIM_NX; xx++) {
            size_t p = y * TRIM_NX + xx;
            double s = 0;
            for (size_t e = 0; e < TRIM_NE; e++) {
                double d = (double)x[p * TRIM_NE + e] - (double)r[p * TRIM_NE + e];
                s += d * d;
            }
            s = sqrt(s);
            if (trim_is_anomalous(y, xx)) {
                anomaly[na++] = s;
                if (s < out.anomaly_min) out.anomaly_min = s;
                if (s > out.anomaly_max) out.anomaly_max = s;
            } else {
                bulk[nb++] = s;
            }
        }
    assert_int_equal(na, 9);
    assert_int_equal(nb, TRIM_NY * TRIM_NX - 9);
    out.bulk_median = median(bulk, nb);
    out.anomaly_median = median(anomaly, na);
    eelsvae_cube_free(recon);
    if (keep) *keep = pca;
    else eelsvae_pca_free(pca);
    return out;
}

/* trim_fraction keeps a 2 % block of anomalous pixels from claiming a
 * component of its own.
 *
 * The maths: the bulk spans mean + span(bulk1, bulk2) exactly, so any
 * 3-component basis holding that span leaves a bulk pixel only the part of
 * its noise outside the basis: 61 of 64 directions of uniform ±0.03 noise
 * (σ = 0.03/√3), ‖residual‖ ≈ 0.0173·√61 ≈ 0.135. Untrimmed, the anomaly's
 * peak (variance 9/400·3²·‖P⊥peak‖² ≈ 0.6 per pixel, far above the noise's
 * 3e-4 per direction) takes the third component, and the block is rebuilt
 * to the same noise level. Trimmed at 10 % (40 pixels), the block's error
 * under the 1- and 2-component fits (≈ 3·‖P⊥peak‖ ≈ 5) dwarfs any bulk
 * pixel's, so it is never fitted; the third component is then a noise
 * direction, and the block keeps ‖residual‖ ≈ 3·‖P⊥peak‖ (less the share
 * of a random noise direction, ~1/61 of it). The predicted ratio to the
 * bulk median is ≈ 40: we ask for ≥ 10 and for ≥ 0.9 × 3·‖P⊥peak‖. */
static void test_trim_fraction_leaves_anomalies_out(void **state)
{
    (void)state;
    eelsvae_cube *cube = trim_cube(5);
    double outside = TRIM_ANOMALY * trim_peak_outside_bulk();
    double noise = 0.03 / sqrt(3.0) * sqrt((double)(TRIM_NE - 3));
    print_message("3·‖P⊥peak‖ = %.3f, noise residual ≈ %.3f\n", outside, noise);
    assert_true(outside > 30.0 * noise); /* the design is what the comment says */

    trim_residuals all = trimmed_residuals(cube, 0.0, NULL);
    print_message("untrimmed: bulk median %.4f, anomaly median %.4f (max %.4f)\n", all.bulk_median,
                  all.anomaly_median, all.anomaly_max);
    assert_close(all.bulk_median, noise, 0, 0.2);
    assert_true(all.anomaly_median <= 1.5 * all.bulk_median);
    assert_true(all.anomaly_max <= 2.0 * all.bulk_median);

    eelsvae_pca *trimmed = NULL;
    trim_residuals cut = trimmed_residuals(cube, 0.1, &trimmed);
    print_message("trim 0.1: bulk median %.4f, anomaly median %.4f (min %.4f), ratio %.1f\n", cut.bulk_median,
                  cut.anomaly_median, cut.anomaly_min, cut.anomaly_min / cut.bulk_median);
    assert_true(cut.anomaly_min >= 10.0 * cut.bulk_median);
    assert_true(cut.anomaly_min >= 0.9 * outside);
    assert_true(cut.anomaly_max <= 1.05 * outside + 3.0 * noise); /* nothing beyond the peak's own part */
    /* the bulk is still rebuilt to its noise */
    assert_true(cut.bulk_median <= 1.1 * all.bulk_median);

    /* determinism: the same options give the same bits, at any thread count */
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 3;
    o.tolerance = 1e-6;
    o.trim_fraction = 0.1;
    int threads = eelsvae_threads();
    eelsvae_pca *again = NULL, *threaded = NULL;
    assert_ok(eelsvae_pca_fit(cube, &o, &again));
    assert_ok(eelsvae_set_threads(3));
    assert_ok(eelsvae_pca_fit(cube, &o, &threaded));
    assert_ok(eelsvae_set_threads(threads));
    assert_memory_equal(eelsvae_pca_components(trimmed), eelsvae_pca_components(again), 3 * TRIM_NE * sizeof(float));
    assert_memory_equal(eelsvae_pca_components(trimmed), eelsvae_pca_components(threaded),
                        3 * TRIM_NE * sizeof(float));
    double ra[3], rb[3];
    assert_ok(eelsvae_pca_explained_variance_ratio(trimmed, ra, 3));
    assert_ok(eelsvae_pca_explained_variance_ratio(again, rb, 3));
    assert_memory_equal(ra, rb, sizeof ra);
    eelsvae_pca_free(again);
    eelsvae_pca_free(threaded);
    eelsvae_pca_free(trimmed);
    eelsvae_cube_free(cube);
}

static void test_trim_fraction_arguments(void **state)
{
    (void)state;
    eelsvae_cube *cube = tu_random_cube(4, 5, 12, 3);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    assert_true(o.trim_fraction == 0.1); /* the default fit is robust; 0 fits every spectrum */
    o.components = 2;
    eelsvae_pca *pca = NULL;
    const double bad[] = {-0.1, -1e-12, 0.5, 0.7, 1.0, NAN, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.trim_fraction = bad[i];
        assert_status(eelsvae_pca_fit(cube, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
        assert_non_null(strstr(eelsvae_last_error(), "trim_fraction"));
        assert_null(pca);
    }
    /* inside [0, 0.5): fine, up to just under a half */
    const double good[] = {0.0, 0.05, 0.49};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        o.trim_fraction = good[i];
        assert_ok(eelsvae_pca_fit(cube, &o, &pca));
        assert_orthonormal(pca);
        eelsvae_pca_free(pca);
        pca = NULL;
    }
    /* 4 spectra, k = 4: trimming ⌊0.4·4⌋ = 1 leaves 3 < 4 — refused; ⌊0.2·4⌋ = 0 leaves 4 */
    eelsvae_cube *few = tu_random_cube(2, 2, 10, 4);
    o.components = 4;
    o.trim_fraction = 0.4;
    assert_status(eelsvae_pca_fit(few, &o, &pca), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(pca);
    o.trim_fraction = 0.2;
    assert_ok(eelsvae_pca_fit(few, &o, &pca));
    eelsvae_pca_free(pca);
    eelsvae_cube_free(few);
    eelsvae_cube_free(cube);
}

/* Every allocation of the trimmed fit can fail: NOMEM, nothing leaked. */
static void test_trim_allocation_failures(void **state)
{
    (void)state;
    const double scale[3] = {3, 2, 1};
    eelsvae_cube *cube = low_rank_cube(6, 6, 20, 3, scale, 0.1, 1.0, 32);
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.trim_fraction = 0.0; /* the plain fit the oracles compute */
    o.components = 2;
    o.trim_fraction = 0.2;
    int finished = 0;
    for (unsigned long n = 1; n < 400 && !finished; n++) {
        eelsvae_pca *pca = NULL;
        evae_fail_allocation_after(n);
        eelsvae_status st = eelsvae_pca_fit(cube, &o, &pca);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK)
            finished = 1;
        else if (st != EELSVAE_ERR_NOMEM)
            fail_msg("allocation %lu failing gave %s: %s", n, eelsvae_strerror(st), eelsvae_last_error());
        else
            assert_null(pca);
        eelsvae_pca_free(pca);
    }
    assert_true(finished);
    eelsvae_cube_free(cube);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_exact_svd_centred),
        cmocka_unit_test(test_matches_exact_svd_uncentred),
        cmocka_unit_test(test_many_components),
        cmocka_unit_test(test_single_spectrum),
        cmocka_unit_test(test_flat_spectrum_converges_fast),
        cmocka_unit_test(test_iteration_cap),
        cmocka_unit_test(test_poisson_matches_numpy),
        cmocka_unit_test(test_poisson_centred_matches_numpy),
        cmocka_unit_test(test_poisson_new_cube_uses_its_pixel_sums),
        cmocka_unit_test(test_project_then_manual_reconstruction),
        cmocka_unit_test(test_ratios),
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_rank_deficient),
        cmocka_unit_test(test_short_options_struct),
        cmocka_unit_test(test_save_load_roundtrip),
        cmocka_unit_test(test_load_rejects_bad_files),
        cmocka_unit_test(test_invalid_arguments),
        cmocka_unit_test(test_bad_samples),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_trim_fraction_leaves_anomalies_out),
        cmocka_unit_test(test_trim_fraction_arguments),
        cmocka_unit_test(test_trim_allocation_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
