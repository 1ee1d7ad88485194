/* eelsvae-quickstart: the anomalies of a spectrum image in a few calls —
 * preprocess, model the bulk with PCA, score every pixel by PCC over the
 * Fe L2,3 window, split with Otsu, save the score map. The docs' main page
 * shows the part between the markers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

static int usage(FILE *to)
{
    fprintf(to, "Usage: eelsvae-quickstart CUBE SCORE.npy [EV0 DEV]\n"
                "Find the anomalous pixels of a spectrum image: the paper's preprocessing, a\n"
                "4-component PCA model of the bulk, the Pearson correlation (PCC) of each\n"
                "spectrum with its reconstruction over 690-730 eV, Otsu's threshold. Writes\n"
                "the PCC map to SCORE.npy and prints the threshold and the anomalous pixels.\n"
                "CUBE is any file libeelsvae reads (.npy, .dm3, .dm4, .hspy, .rpl); a .npy\n"
                "file has no energy calibration, so give its first channel's energy EV0 and\n"
                "the eV per channel DEV.\n\n"
                "Options:\n"
                "  --help   this text\n");
    return to == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help")) return usage(stdout);
    if ((argc != 3 && argc != 5) || argv[1][0] == '-') return usage(stderr);
    //! [quickstart]
    eelsvae_cube *cube = NULL, *recon = NULL;
    eelsvae_pca *pca = NULL;
    eelsvae_scorer *scorer = NULL;
    eelsvae_preprocess_options pre; eelsvae_pca_options po; eelsvae_scorer_options so;
    float *score = NULL;                        /* ny × nx PCC map */
    uint8_t *mask = NULL;                       /* ny × nx, 1 = anomalous */
    size_t ny = 0, nx = 0, anomalous = 0;
    double threshold = 0;
    eelsvae_status st = eelsvae_cube_load(argv[1], &cube); /* any format, known by its content */
    if (!st && argc == 5) st = eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, atof(argv[3]), atof(argv[4]), "eV");
    if (!st) st = eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER);
    if (!st) st = eelsvae_cube_preprocess(cube, &pre, NULL, NULL); /* blur, 1–99 % scaling, 3 × 3 mean */
    if (!st) st = eelsvae_pca_options_init(&po);                   /* 4 components model the bulk */
    if (!st) st = eelsvae_pca_fit(cube, &po, &pca);
    if (!st) st = eelsvae_pca_reconstruct(pca, cube, &recon);
    if (!st) eelsvae_cube_shape(cube, &ny, &nx, NULL);
    if (!st && (!(score = malloc(ny * nx * sizeof *score)) || !(mask = malloc(ny * nx)))) st = EELSVAE_ERR_NOMEM;
    if (!st) st = eelsvae_scorer_options_init(&so);                /* PCC over 690–730 eV */
    if (!st) st = eelsvae_scorer_create(&so, &scorer);
    if (!st) st = eelsvae_scorer_score(scorer, cube, recon, score, ny * nx, NULL);
    if (!st) st = eelsvae_otsu_threshold(score, ny * nx, 256, &threshold);
    if (!st) st = eelsvae_threshold_mask(score, ny * nx, threshold, eelsvae_scorer_direction(scorer), mask);
    if (!st) st = eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, cube, "PCC", argv[2]);
    for (size_t i = 0; !st && i < ny * nx; i++) anomalous += mask[i];
    if (st) fprintf(stderr, "%s: %s\n", eelsvae_strerror(st), eelsvae_last_error());
    else printf("threshold %.6f\nanomalous %zu of %zu pixels\n", threshold, anomalous, ny * nx);
    free(mask); free(score); eelsvae_scorer_free(scorer); eelsvae_pca_free(pca);
    eelsvae_cube_free(recon); eelsvae_cube_free(cube);
    return st ? 1 : 0;
    //! [quickstart]
}
