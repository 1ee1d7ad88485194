/* eelsvae-pca: the paper's PCA baseline on one spectrum image — preprocess,
 * fit k components, score each pixel by the PCC of its spectrum and its
 * reconstruction, threshold (fdr:0.01 by default), and (given the truth) measure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "common/cli.h"
#include "common/detect.h"
#include "common/energy.h"
#include "common/explain.h"

static void usage(void)
{
    printf("Usage: %s CUBE --out DIR [--edge NAME | --window LO:HI] [options]\n"
           "Detect spectral anomalies with PCA: preprocess (Gaussian blur sigma 0.5,\n"
           "1st-99th percentile scaling, a 3 x 3 spatial mean where the SI's noise calls\n"
           "for it: see --mean-filter), fit K\n"
           "components, score every pixel by the Pearson correlation (PCC) of its spectrum\n"
           "and its reconstruction over the energy range (or by the noise-aware chi-square\n"
           "of --score chi2), and threshold with the rule of --threshold, by default\n"
           "fdr:0.01: the pixels that differ from the SI's own bulk at a 1 %% false-\n"
           "discovery rate (low PCC, high chi2 = anomalous).\n\n"
           CLI_CUBE_FORMATS_HELP "\n"
           "Writes DIR/score.hspy (float32 score map) and DIR/mask.hspy (uint8, 1 =\n"
           "anomalous), or the formats of --map-format, with the scan's calibration and\n"
           "the provenance; DIR/heatmap.png (viridis from the lowest to the highest\n"
           "score, flagged pixels outlined), with --truth DIR/metrics.json (also\n"
           "printed) and with --explain DIR/explain*.csv and .svg (see below).\n\n"
           "Options:\n"
           "  --components K          number of PCA components (default 4)\n"
           "  --trim F                robust fit: each component is fitted without the\n"
           "                          fraction F of spectra the fit before reconstructs\n"
           "                          worst, so that the anomalies of the SI itself do not\n"
           "                          become components (default 0.1; 0 fits every pixel)\n"
           CLI_RANGE_HELP("score over", "the whole energy axis")
           "  --out DIR               output directory (created if missing)\n"
           "  --truth MASK            y × x mask of the true anomalies (any format above):\n"
           "                          print precision, recall, F1, IoU, ROC-AUC and PR-AUC\n"
           "  --energy-offset EV      energy of channel 0, overriding the file's (required,\n"
           "                          with --energy-scale, for a .npy without a sidecar)\n"
           "  --energy-scale EV       eV per channel, overriding the file's\n"
           CLI_MAP_FORMAT_HELP
           CLI_MEAN_FILTER_HELP
           CLI_SPATIAL_SIGMA_HELP
           "  --no-preprocess         fit the cube as it is\n"
           CLI_SCORE_HELP
           CLI_THRESHOLD_HELP
           CLI_EXPLAIN_HELP
           "  --threads T             threads (default: all cores)\n"
           "  --help                  this text\n",
           cli_prog());
}

typedef struct args {
    const char *cube, *out, *truth, *rule;
    size_t components;
    double trim, spatial_sigma; /* NAN: the library's defaults */
    size_t mean_filter;         /* 0: chosen for the SI's noise */
    cli_range range;
    double e0, de;
    int preprocess;
    eelsvae_score_kind score;
} args;

static args parse(int argc, char **argv)
{
    args a = {NULL, NULL, NULL, CLI_DEFAULT_RULE, 4, NAN, NAN, 0, cli_range_none(), NAN, NAN, 1, EELSVAE_SCORE_PCC};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            exit(0);
        } else if (!strcmp(o, "--components")) a.components = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--trim")) a.trim = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--mean-filter")) a.mean_filter = cli_mean_filter(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--spatial-sigma")) a.spatial_sigma = cli_spatial_sigma(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--edge")) cli_range_edge(&a.range, o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--window")) cli_range_window(&a.range, o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--map-format")) cli_set_map_formats(cli_parse_map_formats(o, cli_value(argc, argv, &i)));
        else if (!strcmp(o, "--out")) a.out = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--truth")) a.truth = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--energy-offset")) a.e0 = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--energy-scale")) a.de = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--no-preprocess")) a.preprocess = 0;
        else if (!strcmp(o, "--threshold")) a.rule = cli_threshold_rule(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--score")) a.score = cli_score_kind(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--explain")) cli_set_explain(0);
        else if (!strcmp(o, "--explain-top")) cli_set_explain(cli_explain_top_option(o, cli_value(argc, argv, &i)));
        else if (!strcmp(o, "--threads")) cli_check(eelsvae_set_threads((int)cli_size(o, cli_value(argc, argv, &i))), o);
        else if (o[0] == '-') cli_usage_error("unknown option '%s'", o);
        else if (a.cube) cli_usage_error("one CUBE only (got '%s' and '%s')", a.cube, o);
        else a.cube = o;
    }
    if (!a.cube) cli_usage_error("CUBE is required");
    if (!a.out) cli_usage_error("--out DIR is required");
    return a;
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    args a = parse(argc, argv);
    cli_make_dir(a.out);
    eelsvae_cube *cube = cli_load_cube(a.cube, a.e0, a.de);
    /* Checked before the slow work, so a wrong calibration fails fast. */
    cli_range_apply(&a.range, cube, "energy axis");
    cli_check(eelsvae_cube_check_finite(cube), a.cube);

    size_t pooled = 1; /* the chain's mean filter */
    if (a.preprocess) {
        eelsvae_preprocess_options po;
        cli_chain(&po, EELSVAE_PRESET_FAST, a.spatial_sigma, a.mean_filter, cube, a.range.lo, a.range.hi);
        pooled = po.mean_filter;
        double lo = 0, hi = 0;
        cli_check(eelsvae_cube_preprocess(cube, &po, &lo, &hi), "preprocessing");
        fprintf(stderr, "preprocessed: scaled %g … %g to 0 … 1\n", lo, hi);
    }
    eelsvae_pca_options pco;
    cli_check(eelsvae_pca_options_init(&pco), "PCA options");
    pco.components = a.components;
    if (!isnan(a.trim)) pco.trim_fraction = a.trim; /* else the library's robust default */
    eelsvae_pca *pca = NULL;
    eelsvae_cube *recon = NULL;
    cli_check(eelsvae_pca_fit(cube, &pco, &pca), "PCA fit");
    cli_check(eelsvae_pca_reconstruct(pca, cube, &recon), "PCA reconstruction");
    double ratios[64] = {0};
    if (a.components <= 64 && eelsvae_pca_explained_variance_ratio(pca, ratios, a.components) == EELSVAE_OK) {
        fprintf(stderr, "explained variance:");
        for (size_t k = 0; k < a.components; k++) fprintf(stderr, " %.4f", ratios[k]);
        fputc('\n', stderr);
    }
    eelsvae_pca_free(pca);

    char method[32];
    snprintf(method, sizeof method, "pca%zu", a.components);
    /* The scored cube is the preprocessed one: say so on the explanation's intensity axis. */
    cli_provenance prov = {a.cube, method, NULL, a.range.label,
                           a.preprocess ? "preprocessed intensity (0 … 1)" : "intensity (as loaded)"};
    cli_detection d = cli_detect(a.out, a.score, cube, recon, a.range.lo, a.range.hi, a.rule, &prov);
    if (a.preprocess && pooled <= 1) cli_noise_hint(&d, "--mean-filter 3");
    if (a.truth) {
        cli_report_metrics(a.out, method, a.truth, &d);
    }
    cli_detection_free(&d);
    eelsvae_cube_free(recon);
    eelsvae_cube_free(cube);
    return 0;
}
