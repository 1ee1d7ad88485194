/* eelsvae-quickstart: the anomalies of a spectrum image in a few calls —
 * preprocess, model the bulk with PCA, score every pixel by PCC over the
 * whole energy axis or one edge's window, flag by the default rule (fdr:0.01), save the score
 * map. No element is assumed. The docs' main page shows the part between
 * the markers. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

static int usage(FILE *to)
{
    fprintf(to, "Usage: eelsvae-quickstart CUBE SCORE [EDGE] [EV0 DEV]\n"
                "Find the anomalous pixels of a spectrum image: preprocessing (a Gaussian blur,\n"
                "1-99 %% scaling and, where the SI is noisy, a 3 x 3 spatial mean), a\n"
                "4-component PCA model of the bulk\n"
                "fitted robustly (without the 10 %% of spectra it fits worst, so that the\n"
                "SI's own anomalies do not become components), the Pearson correlation (PCC)\n"
                "of each spectrum with its reconstruction, the library's default threshold\n"
                "rule (fdr:0.01: the pixels unlike the SI's own bulk at a 1 %% false-discovery\n"
                "rate). Writes the PCC\n"
                "map to SCORE (.npy, .hspy or .rpl, by its extension) and prints the\n"
                "threshold and the number of anomalous pixels.\n"
                "The PCC is taken over the whole energy axis, or with EDGE (a core-loss edge\n"
                "such as Fe-L, Ti-L, O-K, La-M) over that edge's window: 10 eV below its\n"
                "onset to 30 eV past its last sub-edge.\n"
                "CUBE is any file libeelsvae reads (.npy, .dm3, .dm4, .hspy, .rpl). A .npy\n"
                "file has no energy calibration (the library does not read the .npy.json\n"
                "sidecars of the other programs): with EDGE, give its first channel's energy\n"
                "EV0 and the eV per channel DEV.\n\n"
                "Options:\n"
                "  --help   this text\n");
    return to == stdout ? 0 : 2;
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--help")) return usage(stdout);
    if (argc < 3 || argc > 6 || argv[1][0] == '-') return usage(stderr);
    const char *edge_name = argc == 4 || argc == 6 ? argv[3] : NULL; /* CUBE SCORE EDGE [EV0 DEV] */
    const char *ev0 = argc >= 5 ? argv[argc - 2] : NULL, *dev = argv[argc - 1];
    //! [quickstart]
    eelsvae_cube *cube = NULL, *recon = NULL;
    eelsvae_pca *pca = NULL; eelsvae_scorer *scorer = NULL;
    eelsvae_preprocess_options pre; eelsvae_pca_options po; eelsvae_scorer_options so;
    eelsvae_edge edge = {.struct_size = sizeof edge}; eelsvae_threshold_rule rule = {.struct_size = sizeof rule};
    float *score = NULL; uint8_t *mask = NULL;  /* ny × nx PCC map; 1 = anomalous */
    size_t ny = 0, nx = 0, anomalous = 0; double threshold = 0;
    eelsvae_status st = eelsvae_cube_load(argv[1], &cube); /* any format, known by its content */
    if (!st && ev0) st = eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, atof(ev0), atof(dev), "eV");
    if (!st) st = eelsvae_scorer_options_init(&so);                /* PCC over the whole energy axis, */
    if (!st && edge_name) st = eelsvae_edge_lookup(edge_name, &edge); /* or over an edge's window */
    if (!st && edge_name) st = eelsvae_edge_window(&edge, &so.window_lo, &so.window_hi);
    if (!st) st = eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_FAST); /* blur, 1–99 % scaling, */
    if (!st) st = eelsvae_preprocess_options_choose_spatial(&pre, cube, so.window_lo, so.window_hi, NULL);
    if (!st) st = eelsvae_cube_preprocess(cube, &pre, NULL, NULL); /* and a 3 × 3 mean if the SI is noisy */
    if (!st) st = eelsvae_pca_options_init(&po); /* 4 components model the bulk, fitted without the worst-fitting
                                                    10 %: robust to the SI's own anomalies */
    if (!st) st = eelsvae_pca_fit(cube, &po, &pca);
    if (!st) st = eelsvae_pca_reconstruct(pca, cube, &recon);
    if (!st) eelsvae_cube_shape(cube, &ny, &nx, NULL);
    if (!st && (!(score = malloc(ny * nx * sizeof *score)) || !(mask = malloc(ny * nx)))) st = EELSVAE_ERR_NOMEM;
    if (!st) st = eelsvae_scorer_create(&so, &scorer);
    if (!st) st = eelsvae_scorer_score(scorer, cube, recon, score, ny * nx, NULL);
    if (!st) st = eelsvae_threshold_rule_parse(eelsvae_threshold_rule_default(), &rule); /* fdr:0.01 */
    if (!st) st = eelsvae_threshold_select(score, ny * nx, eelsvae_scorer_direction(scorer), &rule, &threshold);
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
