/* eelsvae-detect: find anomalies in a spectrum image with a trained 3D-CVAE —
 * the same preprocessing as in training, reconstruct every pixel, score by
 * PCC over the window, threshold (fdr:0.01 by default), measure against a truth mask. */
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
    printf("Usage: %s CUBE --model MODEL --out DIR [options]\n"
           "Detect spectral anomalies with a model from eelsvae-train: apply the model's\n"
           "preprocessing, reconstruct every pixel (with overlapping tiles, so every pixel\n"
           "is covered and no tile grid shows), score it by the Pearson correlation (PCC)\n"
           "of its spectrum and reconstruction over the energy range (or by the noise-aware\n"
           "chi-square of --score chi2), and threshold with the rule of --threshold, by\n"
           "default fdr:0.01: the pixels that differ from the SI's own bulk at a 1 %%\n"
           "false-discovery rate (low PCC, high chi2 = anomalous).\n\n"
           CLI_CUBE_FORMATS_HELP "\n"
           "Writes DIR/score.hspy and DIR/mask.hspy (or the formats of --map-format) with\n"
           "the scan's calibration and the provenance, DIR/heatmap.png, with --truth\n"
           "DIR/metrics.json (also printed), with --latent\n"
           "DIR/latent.npy (the latent mean of every tile, tiles_y × tiles_x × L),\n"
           "with --recon DIR/recon.npy and with --explain DIR/explain*.csv and .svg\n"
           "(see below).\n\n"
           "Options:\n"
           "  --model MODEL           model file from eelsvae-train\n"
           CLI_RANGE_HELP("score over", "the model's whole range")
           "  --stride S              step between overlapping tiles, 1 … T (default T/2;\n"
           "                          T gives one tile per pixel, as a plain tile grid)\n"
           "  --out DIR               output directory (created if missing)\n"
           "  --truth MASK            y × x mask of the true anomalies (any format above)\n"
           CLI_MAP_FORMAT_HELP
           "  --energy-offset EV      energy of channel 0, overriding the file's (required,\n"
           "                          with --energy-scale, for a .npy without a sidecar)\n"
           "  --energy-scale EV       eV per channel, overriding the file's\n"
           "  --latent                write latent.npy\n"
           "  --recon                 write recon.npy (the preprocessed reconstruction)\n"
           CLI_SCORE_HELP
           CLI_THRESHOLD_HELP
           CLI_EXPLAIN_HELP
           "  --threads T             threads (default: all cores)\n"
           "  --help                  this text\n",
           cli_prog());
}

typedef struct args {
    const char *cube, *model, *out, *truth, *rule;
    cli_range range;
    double e0, de;
    size_t stride;
    int latent, recon;
    eelsvae_score_kind score;
} args;

static args parse(int argc, char **argv)
{
    args a = {NULL, NULL, NULL, NULL, CLI_DEFAULT_RULE, cli_range_none(), NAN, NAN, 0, 0, 0, EELSVAE_SCORE_PCC};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            exit(0);
        } else if (!strcmp(o, "--model")) a.model = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--edge")) cli_range_edge(&a.range, o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--window")) cli_range_window(&a.range, o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--stride")) a.stride = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--out")) a.out = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--truth")) a.truth = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--energy-offset")) a.e0 = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--energy-scale")) a.de = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--map-format")) cli_set_map_formats(cli_parse_map_formats(o, cli_value(argc, argv, &i)));
        else if (!strcmp(o, "--latent")) a.latent = 1;
        else if (!strcmp(o, "--recon")) a.recon = 1;
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
    if (!a.model) cli_usage_error("--model MODEL is required");
    if (!a.out) cli_usage_error("--out DIR is required");
    return a;
}

static void write_latent(const char *out_dir, const eelsvae_model *model, const eelsvae_cube *prepared)
{
    eelsvae_model_options mo;
    cli_check(eelsvae_model_options_get(model, &mo), "model options");
    size_t ny = 0, nx = 0, ty = 0, tx = 0;
    eelsvae_cube_shape(prepared, &ny, &nx, NULL);
    cli_check(eelsvae_tiling(ny, nx, mo.tile, 0, &ty, &tx), "tiling");
    size_t n = ty * tx * mo.latent;
    float *mu = malloc(n * sizeof *mu);
    if (!mu) cli_fail("out of memory");
    cli_check(eelsvae_model_encode(model, prepared, mu, NULL, n), "encoding");
    size_t shape[3] = {ty, tx, mo.latent};
    cli_check(eelsvae_npy_write(cli_join(out_dir, "latent.npy"), EELSVAE_DTYPE_FLOAT32, mu, 3, shape), "latent.npy");
    free(mu);
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    args a = parse(argc, argv);
    cli_make_dir(a.out);
    eelsvae_model *model = NULL;
    cli_check(eelsvae_model_load(a.model, &model), a.model);
    eelsvae_model_options mo;
    cli_check(eelsvae_model_options_get(model, &mo), "model options");
    size_t stride = a.stride ? a.stride : (mo.tile / 2 ? mo.tile / 2 : 1);
    if (stride > mo.tile) cli_usage_error("--stride %zu is larger than the model's %zu-pixel tile", stride, mo.tile);
    eelsvae_cube *cube = cli_load_cube(a.cube, a.e0, a.de);
    eelsvae_cube *prepared = NULL, *recon = NULL;
    cli_check(eelsvae_model_prepare(model, cube, &prepared), "preparing the cube for the model");
    eelsvae_cube_free(cube);
    /* The prepared cube's energy axis is the model's range (bin centres). */
    cli_range_apply(&a.range, prepared, "model's energy range");
    fprintf(stderr, "%s: tiles of %zu at stride %zu\n", cli_prog(), mo.tile, stride);
    cli_check(eelsvae_model_reconstruct(model, prepared, stride, &recon), "reconstruction");

    /* The scored cube is the model's prepared one: say so on the explanation's intensity axis. */
    cli_provenance prov = {a.cube, "vae", a.model, a.range.label, "model-prepared intensity (0 … 1)"};
    cli_detection d = cli_detect(a.out, a.score, prepared, recon, a.range.lo, a.range.hi, a.rule, &prov);
    cli_noise_hint(&d, "a model trained with eelsvae-train --mean-filter 3, if this one was not");
    if (a.truth) cli_report_metrics(a.out, "vae", a.truth, &d);
    if (a.latent) write_latent(a.out, model, prepared);
    if (a.recon) cli_check(eelsvae_cube_save_npy(recon, cli_join(a.out, "recon.npy")), "recon.npy");
    cli_detection_free(&d);
    eelsvae_cube_free(recon);
    eelsvae_cube_free(prepared);
    eelsvae_model_free(model);
    return 0;
}
