/* An out-of-tree consumer of libeelsvae. tests/consumer_test.sh builds it
 * against an installed copy with nothing but `pkg-config --cflags --libs
 * eelsvae` (and `--static`), and the meson project beside it builds it with
 * dependency('eelsvae') found through pkg-config or as a subproject.
 *
 * It calls into every module (cube, preprocessing, synthesis, PCA, scores,
 * the VAE, the file formats), so a static link needs every private
 * dependency the .pc file must name: LAPACKE/OpenBLAS, FFTW, OpenMP, libm
 * and HDF5 where built. It checks what it computes, and exits non-zero,
 * naming the failed check, when something is wrong.
 *
 * usage: consumer WORK_DIR      (a writable directory for its files)
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

static int failures;

static void check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "consumer: FAILED: %s\n", what);
        failures++;
    }
}

/* Stop at the first library failure: nothing after it would mean anything. */
static void must(eelsvae_status st, const char *what)
{
    if (st != EELSVAE_OK) {
        fprintf(stderr, "consumer: %s: %s: %s\n", what, eelsvae_strerror(st), eelsvae_last_error());
        exit(1);
    }
}

static const char *path_in(const char *dir, const char *name)
{
    static char buf[4][4096];
    static int next;
    char *p = buf[next++ % 4];
    snprintf(p, sizeof buf[0], "%s/%s", dir, name);
    return p;
}

static int same_samples(const eelsvae_cube *a, const eelsvae_cube *b)
{
    size_t ny = 0, nx = 0, ne = 0, my = 0, mx = 0, me = 0;
    eelsvae_cube_shape(a, &ny, &nx, &ne);
    eelsvae_cube_shape(b, &my, &mx, &me);
    return ny == my && nx == mx && ne == me &&
           memcmp(eelsvae_cube_data_const(a), eelsvae_cube_data_const(b), ny * nx * ne * sizeof(float)) == 0;
}

/* The headers and the loaded library must be the same version. */
static void check_version(void)
{
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", EELSVAE_VERSION_MAJOR, EELSVAE_VERSION_MINOR,
             EELSVAE_VERSION_PATCH);
    check(eelsvae_version_number() == EELSVAE_VERSION_NUMBER, "eelsvae_version_number() matches the headers");
    check(strcmp(eelsvae_version_string(), expected) == 0, "eelsvae_version_string() matches the headers");
    check(strcmp(eelsvae_strerror(EELSVAE_ERR_FORMAT), "EELSVAE_ERR_FORMAT") == 0, "eelsvae_strerror names a status");
}

/* A failing call returns the documented status and a message naming the file. */
static void check_errors(const char *dir)
{
    eelsvae_cube *cube = NULL;
    const char *missing = path_in(dir, "no-such-file.npy");
    check(eelsvae_cube_load(missing, &cube) == EELSVAE_ERR_IO, "loading a missing file is EELSVAE_ERR_IO");
    check(cube == NULL, "a failed load leaves the out-pointer NULL");
    check(strstr(eelsvae_last_error(), "no-such-file.npy") != NULL, "the error message names the file");
}

/* 48 × 48 synthetic SI with two disks whose Fe L2,3 edge is shifted 5.4 eV. */
static void make_data(eelsvae_cube **clean, eelsvae_cube **shifted, uint8_t *truth)
{
    eelsvae_synth_options so;
    must(eelsvae_synth_options_init(&so), "synth options");
    so.ny = so.nx = 48;
    so.seed = 7;
    must(eelsvae_synth_generate(&so, clean, NULL), "synthesis");
    must(eelsvae_disk_mask(48, 48, 2, 5.0, 14.0, so.seed, truth, NULL), "disk mask");
    must(eelsvae_cube_copy(*clean, shifted), "copy");
    must(eelsvae_cube_inject_shift(*shifted, truth, 48 * 48, 690.0, 730.0, 5.4), "injection");
}

/* .npy (and .hspy where built) keep the samples exactly. */
static void check_files(const char *dir, const eelsvae_cube *cube)
{
    eelsvae_cube *back = NULL;
    const char *npy = path_in(dir, "cube.npy");
    eelsvae_format format = EELSVAE_FORMAT_UNKNOWN;
    must(eelsvae_cube_save(cube, npy), "save .npy");
    must(eelsvae_format_detect(npy, &format), "detect format");
    check(format == EELSVAE_FORMAT_NPY, "a saved .npy is recognised as npy");
    must(eelsvae_cube_load(npy, &back), "load .npy");
    check(same_samples(cube, back), ".npy round trip keeps every sample");
    eelsvae_cube_free(back);
    back = NULL;
    if (eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) {
        double e0 = 0, de = 0, f0 = 0, df = 0;
        must(eelsvae_cube_save(cube, path_in(dir, "cube.hspy")), "save .hspy");
        must(eelsvae_cube_load(path_in(dir, "cube.hspy"), &back), "load .hspy");
        check(same_samples(cube, back), ".hspy round trip keeps every sample");
        must(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, &e0, &de, NULL), "axis");
        must(eelsvae_cube_axis(back, EELSVAE_AXIS_E, &f0, &df, NULL), "axis");
        check(e0 == f0 && de == df, ".hspy round trip keeps the energy calibration");
        eelsvae_cube_free(back);
    }
}

/* Scores, Otsu and metrics: against the clean cube as its "reconstruction",
 * every pixel outside the disks correlates perfectly (PCC 1) and every
 * shifted one less, so the scores rank the truth perfectly (ROC-AUC 1) and
 * Otsu's threshold, which lies below 1, keeps nearly all of the disks (the
 * shifted pixels' PCC spreads widely, so the best split of 256 bins may
 * leave a few of them above it). */
static void check_scores(const eelsvae_cube *clean, const eelsvae_cube *shifted, const uint8_t *truth)
{
    enum { N = 48 * 48 };
    static float score[N];
    static uint8_t mask[N];
    eelsvae_scorer *scorer = NULL;
    eelsvae_scorer_options so;
    eelsvae_metrics m;
    double threshold = 0, auc = 0;
    must(eelsvae_scorer_options_init(&so), "scorer options");
    must(eelsvae_scorer_create(&so, &scorer), "scorer");
    must(eelsvae_scorer_score(scorer, shifted, clean, score, N, NULL), "score");
    int normal_one = 1;
    for (size_t i = 0; i < N; i++)
        if (!truth[i]) normal_one &= fabsf(score[i] - 1.0f) < 1e-5f;
    check(normal_one, "an untouched spectrum has PCC 1 with itself");
    must(eelsvae_otsu_threshold(score, N, 256, &threshold), "Otsu");
    must(eelsvae_threshold_mask(score, N, threshold, eelsvae_scorer_direction(scorer), mask), "mask");
    memset(&m, 0, sizeof m);
    m.struct_size = sizeof m;
    must(eelsvae_metrics_compute(mask, truth, N, &m), "metrics");
    must(eelsvae_roc_auc(score, truth, N, eelsvae_scorer_direction(scorer), &auc), "ROC-AUC");
    printf("scores: threshold %.6f, F1 %.4f, AUC %.4f\n", threshold, m.f1, auc);
    check(auc == 1.0, "PCC against the clean cube ranks every disk pixel below every other (ROC-AUC 1)");
    check(threshold < 1.0 && m.false_positive == 0 && m.f1 >= 0.9,
          "Otsu's mask of PCC against the clean cube finds the disks (no false positive, F1 >= 0.9)");
    eelsvae_scorer_free(scorer);
}

/* The paper's PCA baseline: preprocess, fit, reconstruct. How well PCA finds
 * the disks varies (that is the paper's point), so only its form is checked. */
static void check_pca(const eelsvae_cube *shifted)
{
    eelsvae_cube *cube = NULL, *recon = NULL;
    eelsvae_pca *pca = NULL;
    eelsvae_preprocess_options pre;
    eelsvae_pca_options po;
    double ratio[4] = {0};
    size_t ny = 0, nx = 0, ne = 0, k = 0, channels = 0;
    must(eelsvae_cube_copy(shifted, &cube), "copy");
    must(eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER), "preprocess options");
    must(eelsvae_cube_preprocess(cube, &pre, NULL, NULL), "preprocess");
    must(eelsvae_pca_options_init(&po), "PCA options");
    po.components = 4;
    must(eelsvae_pca_fit(cube, &po, &pca), "PCA fit");
    must(eelsvae_pca_reconstruct(pca, cube, &recon), "PCA reconstruct");
    must(eelsvae_pca_explained_variance_ratio(pca, ratio, 4), "explained variance");
    eelsvae_pca_shape(pca, &k, &channels);
    eelsvae_cube_shape(recon, &ny, &nx, &ne);
    check(k == 4 && channels == ne && ny == 48 && nx == 48, "the basis and the reconstruction have the cube's shape");
    check(ratio[0] >= ratio[1] && ratio[1] >= ratio[2] && ratio[2] >= ratio[3] && ratio[3] > 0 &&
              ratio[0] + ratio[1] + ratio[2] + ratio[3] <= 1.0 + 1e-9,
          "explained variance ratios decrease and sum to at most 1");
    printf("PCA: explained variance %.4f %.4f %.4f %.4f\n", ratio[0], ratio[1], ratio[2], ratio[3]);
    eelsvae_cube_free(recon);
    eelsvae_pca_free(pca);
    eelsvae_cube_free(cube);
}

/* The fast VAE trains for an epoch, reconstructs into [0, 1], and a saved
 * and reloaded model reconstructs the same bits. */
static void check_model(const char *dir, const eelsvae_cube *clean, const eelsvae_cube *shifted)
{
    eelsvae_model_options mo;
    eelsvae_train_options to;
    eelsvae_model *model = NULL, *loaded = NULL;
    eelsvae_cube *prepared = NULL, *recon = NULL, *recon2 = NULL;
    size_t ny = 0, nx = 0, ne = 0;
    must(eelsvae_model_options_init(&mo, EELSVAE_PRESET_FAST), "model options");
    must(eelsvae_model_create(&mo, 1, &model), "model create");
    must(eelsvae_train_options_init(&to, EELSVAE_PRESET_FAST), "train options");
    to.epochs = 1;
    to.batch = 4;
    to.validation_fraction = 0;
    must(eelsvae_model_train(model, &clean, NULL, 1, &to), "train");
    must(eelsvae_model_prepare(model, shifted, &prepared), "prepare");
    must(eelsvae_model_reconstruct(model, prepared, 0, &recon), "reconstruct");
    eelsvae_cube_shape(recon, &ny, &nx, &ne);
    check(ny == 48 && nx == 48 && ne == mo.energy_channels, "the reconstruction has the prepared shape");
    const float *r = eelsvae_cube_data_const(recon);
    int in_range = 1;
    for (size_t i = 0; i < ny * nx * ne; i++) in_range &= r[i] >= 0.0f && r[i] <= 1.0f;
    check(in_range, "the reconstruction lies in [0, 1]");
    must(eelsvae_model_save(model, path_in(dir, "model.evae"), 0), "model save");
    must(eelsvae_model_load(path_in(dir, "model.evae"), &loaded), "model load");
    must(eelsvae_model_reconstruct(loaded, prepared, 0, &recon2), "reconstruct (loaded)");
    check(same_samples(recon, recon2), "a reloaded model reconstructs the same bits");
    eelsvae_cube_free(recon2);
    eelsvae_cube_free(recon);
    eelsvae_cube_free(prepared);
    eelsvae_model_free(loaded);
    eelsvae_model_free(model);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s WORK_DIR\n", argv[0]);
        return 2;
    }
    static uint8_t truth[48 * 48];
    eelsvae_cube *clean = NULL, *shifted = NULL;
    must(eelsvae_set_threads(2), "threads");
    check_version();
    check_errors(argv[1]);
    make_data(&clean, &shifted, truth);
    check_files(argv[1], shifted);
    check_scores(clean, shifted, truth);
    check_pca(shifted);
    check_model(argv[1], clean, shifted);
    eelsvae_cube_free(shifted);
    eelsvae_cube_free(clean);
    printf("libeelsvae %s: %s\n", eelsvae_version_string(), failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
