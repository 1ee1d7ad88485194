/* eelsvae-train: train the 3D-CVAE on a bulk (defect-free) spectrum image
 * and save the model, with a progress bar, checkpoints and resume. */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "common/cli.h"
#include "common/energy.h"

static void usage(void)
{
    printf("Usage: %s CUBE --model OUT [options]\n"
           "Train the 3-D convolutional VAE on a bulk spectrum image (raw counts) and\n"
           "save it to OUT with the preprocessing it applied, so that eelsvae-detect\n"
           "treats new data identically. Ctrl-C stops cleanly and saves a checkpoint.\n\n"
           CLI_CUBE_FORMATS_HELP "\n"
           "Options:\n"
           "  --model OUT             model file to write\n"
           "  --preset fast|paper     architecture and training preset (default fast)\n"
           "  --epochs N              epochs (default: the preset's, fast 30 or paper 60,\n"
           "                          raised so that training takes at least 900 steps)\n"
           "  --batch B               tiles per batch (preset: fast 16, paper 4)\n"
           "  --learning-rate LR      Adam's initial rate (default 1e-3)\n"
           CLI_RANGE_HELP("model", "the whole energy axis")
           "                          A range with more channels than the preset's network\n"
           "                          takes (fast 160, paper 1312) is binned by the smallest\n"
           "                          whole factor that fits; the model file records it\n"
           "  --tile T                largest tile side in pixels (default: the preset's,\n"
           "                          24, or the largest multiple of 4 that fits the scan)\n"
           CLI_MEAN_FILTER_HELP
           CLI_SPATIAL_SIGMA_HELP
           "                          The model records both; eelsvae-detect repeats them\n"
           "  --exclude MASK          y × x mask (any format above): tiles touching a\n"
           "                          non-zero pixel are not trained on\n"
           "  --energy-offset EV      energy of channel 0, overriding the file's (required,\n"
           "                          with --energy-scale, for a .npy without a sidecar)\n"
           "  --energy-scale EV       eV per channel, overriding the file's\n"
           "  --outlier-mode          (default) train robustly on the very SI that will be\n"
           "                          analysed: after a warm-up of a third of the epochs,\n"
           "                          pixels reconstructed worse than median + K·1.4826·MAD\n"
           "                          of all pixels' errors leave the loss (refreshed every\n"
           "                          epoch), so the model does not learn the anomalies\n"
           "  --outlier-cut K         the cut of --outlier-mode in robust sigmas (default 3)\n"
           "  --no-outlier-mode       train on every pixel: for a clean (defect-free) twin\n"
           "                          whose model is applied to another SI\n"
           "  --seed S                seed of weights, shuffling and sampling (default 1)\n"
           "  --checkpoint PATH       write a checkpoint to PATH every --checkpoint-every\n"
           "                          epochs (default every epoch when PATH is given)\n"
           "  --checkpoint-every N    epochs between checkpoints\n"
           "  --resume CKPT           continue training from a checkpoint\n"
           "  --threads T             threads (default: all cores)\n"
           "  --quiet                 no progress bar\n"
           "  --help                  this text\n",
           cli_prog());
}

typedef struct args {
    const char *cube, *model, *exclude, *checkpoint, *resume;
    eelsvae_preset preset;
    size_t epochs, batch, checkpoint_every, tile;
    cli_range range;
    double lr, e0, de, outlier_cut; /* outlier_cut 0: --no-outlier-mode */
    double spatial_sigma;           /* NAN: the preset's */
    size_t mean_filter;             /* 0: chosen for the SI's noise (the paper preset: 3) */
    uint64_t seed;
    int quiet;
} args;

static args parse(int argc, char **argv)
{
    args a = {0};
    a.preset = EELSVAE_PRESET_FAST;
    a.lr = a.e0 = a.de = NAN;
    a.range = cli_range_none();
    a.seed = 1;
    a.outlier_cut = NAN; /* the library's default cut */
    a.spatial_sigma = NAN;
    int outlier_off = 0;
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            exit(0);
        } else if (!strcmp(o, "--model")) a.model = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--preset")) {
            const char *p = cli_value(argc, argv, &i);
            if (!strcmp(p, "fast")) a.preset = EELSVAE_PRESET_FAST;
            else if (!strcmp(p, "paper")) a.preset = EELSVAE_PRESET_PAPER;
            else cli_usage_error("--preset: '%s' is neither fast nor paper", p);
        } else if (!strcmp(o, "--epochs")) a.epochs = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--batch")) a.batch = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--learning-rate")) a.lr = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--edge")) cli_range_edge(&a.range, o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--window")) cli_range_window(&a.range, o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--tile")) a.tile = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--exclude")) a.exclude = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--energy-offset")) a.e0 = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--energy-scale")) a.de = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--outlier-mode")) outlier_off = 0;
        else if (!strcmp(o, "--no-outlier-mode")) outlier_off = 1;
        else if (!strcmp(o, "--mean-filter")) a.mean_filter = cli_mean_filter(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--spatial-sigma")) a.spatial_sigma = cli_spatial_sigma(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--outlier-cut")) {
            a.outlier_cut = cli_double(o, cli_value(argc, argv, &i));
            if (!(a.outlier_cut > 0.0 && isfinite(a.outlier_cut)))
                cli_usage_error("--outlier-cut: %g must be finite and > 0 (--no-outlier-mode turns the mode off)",
                                a.outlier_cut);
        } else if (!strcmp(o, "--seed")) a.seed = cli_u64(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--checkpoint")) a.checkpoint = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--checkpoint-every")) a.checkpoint_every = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--resume")) a.resume = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--threads")) cli_check(eelsvae_set_threads((int)cli_size(o, cli_value(argc, argv, &i))), o);
        else if (!strcmp(o, "--quiet")) a.quiet = 1;
        else if (o[0] == '-') cli_usage_error("unknown option '%s'", o);
        else if (a.cube) cli_usage_error("one CUBE only (got '%s' and '%s')", a.cube, o);
        else a.cube = o;
    }
    if (outlier_off) a.outlier_cut = 0.0;
    if (!a.cube) cli_usage_error("CUBE is required");
    if (!a.model) cli_usage_error("--model OUT is required");
    if (a.checkpoint_every && !a.checkpoint) cli_usage_error("--checkpoint-every needs --checkpoint PATH");
    return a;
}

/* The preset's architecture fitted to the cube: the range (edge, window or
 * the whole axis, binned into the preset's channels) and the largest tile
 * that fits the scan, or --tile as given. */
static void fit_model(eelsvae_model_options *mo, const args *a, const eelsvae_cube *cube)
{
    if (a->tile) mo->tile = a->tile;
    cli_check(eelsvae_model_options_fit(mo, cube, a->range.lo, a->range.hi), a->cube);
    if (a->tile && mo->tile != a->tile)
        cli_usage_error("--tile %zu does not fit the scan or the layers' strides; the largest that does is %zu",
                        a->tile, mo->tile);
}

static volatile sig_atomic_t interrupted;
static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static int progress(void *user, const eelsvae_train_progress *p)
{
    const args *a = user;
    if (!a->quiet) cli_print_train_progress(p);
    return interrupted;
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    args a = parse(argc, argv);
    eelsvae_cube *cube = cli_load_cube(a.cube, a.e0, a.de);
    size_t ny = 0, nx = 0;
    eelsvae_cube_shape(cube, &ny, &nx, NULL);
    double dispersion = 0; /* the file's, or --energy-scale */
    cli_check(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, NULL, &dispersion, NULL), a.cube);
    if (a.resume && (cli_range_given(&a.range) || a.tile))
        cli_usage_error("--resume continues the checkpoint's model: it takes no --edge, --window or --tile");
    uint8_t *exclude = a.exclude ? cli_load_mask(a.exclude, ny, nx) : NULL;

    eelsvae_model *model = NULL;
    if (a.resume) {
        cli_check(eelsvae_model_load(a.resume, &model), a.resume);
        fprintf(stderr, "resuming from %s\n", a.resume);
    } else {
        eelsvae_model_options mo;
        cli_check(eelsvae_model_options_init(&mo, a.preset), "model options");
        fit_model(&mo, &a, cube);
        cli_check(eelsvae_model_create(&mo, a.seed, &model), "model");
    }
    eelsvae_train_options to;
    cli_check(eelsvae_train_options_init(&to, a.preset), "training options");
    if (a.epochs) to.epochs = a.epochs;
    else to.min_steps = CLI_MIN_STEPS;
    if (a.batch) to.batch = a.batch;
    if (!isnan(a.lr)) to.learning_rate = a.lr;
    to.seed = a.seed;
    if (!isnan(a.outlier_cut)) to.outlier_cut = a.outlier_cut;
    eelsvae_preprocess_options chain; /* the preset's chain, recorded in the model */
    if (!a.resume) cli_chain(&chain, a.preset, a.spatial_sigma, a.mean_filter, cube, a.range.lo, a.range.hi);
    else cli_check(eelsvae_preprocess_options_init(&chain, a.preset), "preprocess options"); /* the checkpoint's */
    to.preprocess = &chain;
    to.checkpoint_path = a.checkpoint;
    to.checkpoint_every = a.checkpoint ? (a.checkpoint_every ? a.checkpoint_every : 1) : 0;
    to.progress = progress;
    to.progress_user = &a;

    eelsvae_memory_estimate est = {.struct_size = sizeof est};
    eelsvae_model_options mo;
    cli_check(eelsvae_model_options_get(model, &mo), "model options");
    cli_check(eelsvae_model_estimate_memory(&mo, to.batch, &est), "memory estimate");
    /* The range as the network sees it (bin centres), as eelsvae-detect reports it. */
    double bin_width = dispersion * (double)mo.energy_bin;
    double e_lo = mo.energy_start + (bin_width - dispersion) / 2.0;
    double e_hi = e_lo + bin_width * (double)(mo.energy_channels - 1);
    fprintf(stderr, "model: %zu parameters, tile %zu × %zu × %zu, energy %g … %g eV", est.parameters, mo.tile,
            mo.tile, mo.energy_channels, e_lo, e_hi);
    if (mo.energy_bin > 1) fprintf(stderr, " binned by %zu", mo.energy_bin);
    fprintf(stderr, ", about %.0f MiB to train\n", (double)est.total_bytes / 1048576.0);
    cli_print_edges(e_lo, e_hi);

    signal(SIGINT, on_sigint);
    const eelsvae_cube *cubes[1] = {cube};
    const uint8_t *masks[1] = {exclude};
    eelsvae_status st = eelsvae_model_train(model, cubes, masks, 1, &to);
    if (st == EELSVAE_ERR_CANCELLED) {
        char path[4096];
        snprintf(path, sizeof path, "%s.interrupted", a.model);
        cli_check(eelsvae_model_save(model, path, 1), path);
        fprintf(stderr, "\ninterrupted: checkpoint saved to %s; continue with --resume %s\n", path, path);
        return 130;
    }
    cli_check(st, "training");
    cli_check(eelsvae_model_save(model, a.model, 0), a.model);
    fprintf(stderr, "saved %s\n", a.model);
    eelsvae_model_free(model);
    free(exclude);
    eelsvae_cube_free(cube);
    return 0;
}
