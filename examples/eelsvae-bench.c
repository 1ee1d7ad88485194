/* eelsvae-bench: the paper's whole experiment in one command — make (or load)
 * a clean SI, train the 3D-CVAE once on it, inject Fe L-edge shifts inside
 * disks, detect with the VAE and with PCA 3/4/5, sweep the anomaly
 * concentration, measure reconstruction fidelity, and write results.csv,
 * summary.md and report.html with the paper's figures. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <eelsvae/eelsvae.h>

#include "common/cli.h"
#include "common/detect.h"
#include "common/figures.h"
#include "common/report.h"

#define MAX_SHIFTS 32
#define WIN_LO 690.0 /* the injected and scored window, eV */
#define WIN_HI 730.0
#define BG_LO 750.0 /* background-only region past the edges, eV */
#define BG_HI 820.0
#define OTSU_RULE "otsu:256" /* the paper's threshold: Otsu over 256 bins, as scikit-image */
#define HIST_BINS 80

static void usage(void)
{
    printf("Usage: %s --out DIR [options]\n"
           "Run the paper's benchmark: make a clean synthetic BiFeO3-like SI (or load one),\n"
           "train the 3-D convolutional VAE once on it, inject Fe L-edge shifts (690-730 eV)\n"
           "inside disks, detect with the VAE and with PCA (3, 4, 5 components, the robust\n"
           "fit of eelsvae-pca unless --pca-trim 0) by the PCC\n"
           "over 690-730 eV and Otsu's threshold (and, beside it, the --threshold rule),\n"
           "sweep the anomaly concentration, and measure reconstruction fidelity against\n"
           "the noise-free SI.\n\n"
           "Writes DIR/results.csv (method,shift_ev,disks,radius,precision,recall,f1,iou,\n"
           "roc_auc,pr_auc at Otsu's threshold, then rule,rule_precision,rule_recall,\n"
           "rule_f1 at the --threshold rule; method vae, pca3, pca4, pca5 or vae-self),\n"
           "DIR/summary.md, DIR/report.html and the figures it shows (fig*.svg, fig*.png);\n"
           "prints the F1 tables (Otsu's, then the rule's) and the wall time.\n\n"
           "Options:\n"
           "  --out DIR               output directory (created if missing)\n"
           "  --quick                 small run for CI: 48 x 48 SI, shifts 0.9,5.4, 2 disks\n"
           "                          of radius 5, 2 epochs, 2 concentration settings\n"
           "  --size N                N x N synthetic SI (default 192)\n"
           "  --noise default|paper   the synthetic SI's noise and nuisances: default (dose\n"
           "                          1000, the table of the README), or paper: the\n"
           "                          library's realistic setting, a dose at which the\n"
           "                          noise matches the paper's real data (normal-pixel\n"
           "                          PCC 0.886 after the paper's chain) with the thickness\n"
           "                          variation, row gain, energy drift and background\n"
           "                          exponents measured on real SIs\n"
           "  --threshold RULE        the rule reported beside Otsu's for every method:\n"
           "                          otsu[:BINS], fdr:Q, contamination:F or value:X\n"
           "                          (default fdr:0.01, what eelsvae-detect's users get\n"
           "                          with a stated error rate)\n"
           "  --self-train            also train a VAE on each injected SI itself (no clean\n"
           "                          twin, the usual case) in outlier mode, as\n"
           "                          eelsvae-train does, and report it as vae-self; one\n"
           "                          training per injected SI\n"
           "  --seed S                seed of the SI, the disks and the model (default 1)\n"
           "  --shifts LIST           shifts in eV (default 0.9,2.4,3.9,5.4,6.9,8.4,9.9,11.4)\n"
           "  --disks N               anomalous disks (default 4)\n"
           "  --radius R              disk radius, pixels (default 8); centres at least\n"
           "                          2R+4 apart\n"
           "  --preset fast|paper     model and training preset (default fast)\n"
           "  --epochs N              training epochs (default: the preset's, raised so that\n"
           "                          training takes at least 900 steps, as eelsvae-train)\n"
           CLI_MEAN_FILTER_HELP
           CLI_SPATIAL_SIGMA_HELP
           "  --cube FILE             use this clean SI (raw counts, y x x x E; .dm3, .dm4,\n"
           "                          .hspy, .rpl or .npy) instead of the synthetic one,\n"
           "                          calibrated from the file; no noise-free cube, so no\n"
           "                          fidelity table\n"
           "  --energy-offset EV      energy of channel 0 of --cube, overriding the file's\n"
           "                          (required, with --energy-scale, for a .npy without\n"
           "                          a sidecar FILE.json as eelsvae-convert writes)\n"
           "  --energy-scale EV       eV per channel of --cube, overriding the file's\n"
           "  --pca-trim F            PCA's trim fraction (default: the library's and\n"
           "                          eelsvae-pca's, 0.1, a fit the SI's own anomalies do\n"
           "                          not enter; 0: the paper's plain PCA, whose components\n"
           "                          the shifted disks claim from 2.4 eV on)\n"
           "  --recon-stride S        step between the VAE's reconstruction tiles, pixels\n"
           "                          (default: half the tile side, so that every pixel is\n"
           "                          the mean of 4 reconstructions and no tile grid shows)\n"
           "  --model FILE            use this trained model instead of training one (it must\n"
           "                          have been trained on the same clean SI, e.g. the\n"
           "                          DIR/model.evae an earlier run wrote)\n"
           "  --threads T             threads (default: all cores)\n"
           "  --help                  this text\n",
           cli_prog());
}

typedef struct args {
    const char *out, *cube, *model, *rule;
    int quick, noise_paper, self_train;
    size_t size, disks, epochs, n_shifts, mean_filter, recon_stride;
    double radius, e0, de, pca_trim, spatial_sigma; /* NAN until set: the defaults */
    double shifts[MAX_SHIFTS];
    uint64_t seed;
    eelsvae_preset preset;
} args;

static eelsvae_preset parse_preset(const char *p)
{
    if (!strcmp(p, "fast")) return EELSVAE_PRESET_FAST;
    if (!strcmp(p, "paper")) return EELSVAE_PRESET_PAPER;
    cli_usage_error("--preset: '%s' is neither fast nor paper", p);
}

/* Fill what the command line left open with the defaults (or --quick's). */
static void apply_defaults(args *a)
{
    static const double paper[] = {0.9, 2.4, 3.9, 5.4, 6.9, 8.4, 9.9, 11.4}, quick[] = {0.9, 5.4};
    if (!a->n_shifts) {
        a->n_shifts = a->quick ? 2 : 8;
        memcpy(a->shifts, a->quick ? quick : paper, a->n_shifts * sizeof(double));
    }
    if (!a->size) a->size = a->quick ? 48 : 192;
    if (!a->disks) a->disks = a->quick ? 2 : 4;
    if (isnan(a->radius)) a->radius = a->quick ? 5 : 8;
    if (!a->epochs && a->quick) a->epochs = 2;
    /* mean_filter 0: chosen in preprocess_clean() for the clean SI's noise. */
    if (isnan(a->pca_trim)) { /* the library's robust fit, as eelsvae-pca's */
        eelsvae_pca_options po;
        cli_check(eelsvae_pca_options_init(&po), "PCA options");
        a->pca_trim = po.trim_fraction;
    }
}

static args parse(int argc, char **argv)
{
    args a = {0};
    a.radius = a.e0 = a.de = a.pca_trim = a.spatial_sigma = NAN;
    a.seed = 1;
    a.preset = EELSVAE_PRESET_FAST;
    a.rule = eelsvae_threshold_rule_default(); /* what eelsvae-detect's users get, reported beside Otsu's */
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage();
            exit(0);
        } else if (!strcmp(o, "--out")) a.out = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--quick")) a.quick = 1;
        else if (!strcmp(o, "--size")) a.size = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--noise")) a.noise_paper = cli_noise_paper(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--threshold")) a.rule = cli_threshold_rule(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--self-train")) a.self_train = 1;
        else if (!strcmp(o, "--seed")) a.seed = cli_u64(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--shifts")) a.n_shifts = cli_double_list(o, cli_value(argc, argv, &i), a.shifts, MAX_SHIFTS);
        else if (!strcmp(o, "--disks")) a.disks = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--radius")) a.radius = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--preset")) a.preset = parse_preset(cli_value(argc, argv, &i));
        else if (!strcmp(o, "--epochs")) a.epochs = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--mean-filter")) a.mean_filter = cli_mean_filter(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--spatial-sigma")) a.spatial_sigma = cli_spatial_sigma(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--cube")) a.cube = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--model")) a.model = cli_value(argc, argv, &i);
        else if (!strcmp(o, "--pca-trim")) {
            a.pca_trim = cli_double(o, cli_value(argc, argv, &i));
            if (!(a.pca_trim >= 0.0 && a.pca_trim < 0.5)) cli_usage_error("--pca-trim: %g must lie in [0, 0.5)", a.pca_trim);
        } else if (!strcmp(o, "--recon-stride")) a.recon_stride = cli_size(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--energy-offset")) a.e0 = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--energy-scale")) a.de = cli_double(o, cli_value(argc, argv, &i));
        else if (!strcmp(o, "--threads")) cli_check(eelsvae_set_threads((int)cli_size(o, cli_value(argc, argv, &i))), o);
        else cli_usage_error("unknown option '%s'", o);
    }
    if (!a.out) cli_usage_error("--out DIR is required");
    if (a.cube && a.size) cli_usage_error("--size applies to the synthetic SI, not to --cube");
    if (a.cube && a.noise_paper) cli_usage_error("--noise applies to the synthetic SI, not to --cube");
    if (!a.cube && (!isnan(a.e0) || !isnan(a.de))) cli_usage_error("--energy-offset/--energy-scale go with --cube");
    apply_defaults(&a);
    if (a.disks == 0) cli_usage_error("--disks must be at least 1");
    if (!(a.radius > 0)) cli_usage_error("--radius must be positive");
    return a;
}

/* ---------- the state of a run ---------- */

typedef struct featured_data {
    double shift;
    uint8_t *truth;              /* the disk mask */
    double *centres;             /* 2·disks (cy, cx) */
    cli_detection det[2];        /* VAE, PCA 4 */
    float *sum[2];               /* z-summed reconstructions, VAE and PCA 4 */
    float *before, *after;       /* one anomalous spectrum, raw counts */
    float *mu_injected;          /* latent means of the injected SI's tiles */
} featured_data;

typedef struct bench {
    args a;
    size_t ny, nx, ne, n;
    eelsvae_cube *raw, *expected;   /* clean SI, counts; noise-free (synthetic only) */
    eelsvae_preprocess_options pp;  /* the paper's chain at the clean SI's scaling */
    eelsvae_model *model;
    size_t tiles, latent;
    float *mu_clean;
    featured_data fig;
    bench_report rep;
    bench_row rows[BENCH_METHODS * (MAX_SHIFTS + BENCH_MAX_SWEEP)];
    struct timespec start, stage_start;
} bench;

static double seconds_since(const struct timespec *t0)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + 1e-9 * (double)(t.tv_nsec - t0->tv_nsec);
}

static void stage_begin(bench *b, const char *what)
{
    fprintf(stderr, "[%6.1f s] %s…\n", seconds_since(&b->start), what);
    clock_gettime(CLOCK_MONOTONIC, &b->stage_start);
}

static void stage_end(bench *b, const char *name)
{
    bench_report *r = &b->rep;
    if (r->n_timings == BENCH_MAX_TIMINGS) return;
    snprintf(r->timings[r->n_timings].stage, sizeof r->timings[0].stage, "%.47s", name);
    r->timings[r->n_timings++].seconds = seconds_since(&b->stage_start);
}

static void *xmalloc(size_t size)
{
    void *p = malloc(size ? size : 1);
    if (!p) cli_fail("out of memory");
    return p;
}

/* ---------- stages ---------- */

static void make_or_load_si(bench *b)
{
    stage_begin(b, b->a.cube ? "loading the clean SI" : "synthesising the clean SI");
    if (b->a.cube) {
        b->raw = cli_load_cube(b->a.cube, b->a.e0, b->a.de);
        snprintf(b->rep.source, sizeof b->rep.source, "SI: %s (raw counts), no noise-free reference.", b->a.cube);
    } else {
        eelsvae_synth_options so;
        cli_check(b->a.noise_paper ? eelsvae_synth_options_init_realistic(&so) : eelsvae_synth_options_init(&so),
                  "synthesis options");
        so.ny = so.nx = b->a.size;
        so.seed = b->a.seed;
        cli_check(eelsvae_synth_generate(&so, &b->raw, &b->expected), "synthesis");
        snprintf(b->rep.source, sizeof b->rep.source,
                 "SI: synthetic BiFeO3-like, %zu × %zu pixels, 420–820 eV at %g eV/channel, noise %s: dose %g, "
                 "thickness gradient %g and field %g, row gain σ %g, drift %g eV, r %g–%g; seed %llu.",
                 so.ny, so.nx, so.dispersion, b->a.noise_paper ? "paper (realistic setting)" : "default", so.dose,
                 so.thickness_gradient, so.thickness_variation, so.stripe_gain, so.drift, so.bg_exponent_min,
                 so.bg_exponent_max, (unsigned long long)so.seed);
    }
    cli_check(eelsvae_cube_check_finite(b->raw), "clean SI");
    eelsvae_cube_shape(b->raw, &b->ny, &b->nx, &b->ne);
    b->n = b->ny * b->nx;
    size_t first = 0, count = 0;
    cli_check(eelsvae_cube_energy_window(b->raw, WIN_LO, WIN_HI, &first, &count), "the 690–730 eV window");
    stage_end(b, b->a.cube ? "load SI" : "synthesise SI");
}

/* The chain on the clean SI; its scaling is reused for every injected SI
 * so that PCA sees them exactly as the VAE's training data. */
static eelsvae_cube *preprocess_clean(bench *b)
{
    stage_begin(b, "preprocessing the clean SI");
    cli_chain(&b->pp, b->a.preset, b->a.spatial_sigma, b->a.mean_filter, b->raw, WIN_LO, WIN_HI);
    /* One chain for every method and SI: what was chosen is given from now on. */
    b->a.mean_filter = b->pp.mean_filter;
    b->a.spatial_sigma = b->pp.sigma[0];
    eelsvae_cube *pp = NULL;
    double lo = 0, hi = 0;
    cli_check(eelsvae_cube_copy(b->raw, &pp), "copy");
    cli_check(eelsvae_cube_preprocess(pp, &b->pp, &lo, &hi), "preprocessing");
    b->pp.use_fixed_scaling = 1;
    b->pp.scale_lo = lo;
    b->pp.scale_hi = hi;
    fprintf(stderr, "           scaling %g … %g counts to 0 … 1\n", lo, hi);
    stage_end(b, "preprocess clean SI");
    return pp;
}

static eelsvae_cube *preprocess_fixed(const bench *b, const eelsvae_cube *raw)
{
    eelsvae_cube *pp = NULL;
    cli_check(eelsvae_cube_copy(raw, &pp), "copy");
    cli_check(eelsvae_cube_preprocess(pp, &b->pp, NULL, NULL), "preprocessing");
    return pp;
}

static int train_progress(void *user, const eelsvae_train_progress *p)
{
    (void)user;
    cli_print_train_progress(p);
    return 0;
}

/* The report's words for the chain PCA and the VAE's training used. */
static const char *chain_text(const bench *b)
{
    static char text[256];
    snprintf(text, sizeof text,
             "blur σ %g on y and x and %g on energy, 1st–99th percentile scaling of the clean SI, then a %zu × %zu "
             "spatial mean (1 × 1: none)",
             b->pp.sigma[0], b->pp.sigma[2], b->pp.mean_filter, b->pp.mean_filter);
    return text;
}

/* The model of an earlier run, so that scoring can be re-run without training. */
static void load_model(bench *b)
{
    stage_begin(b, "loading the trained VAE");
    cli_check(eelsvae_model_load(b->a.model, &b->model), b->a.model);
    snprintf(b->rep.setup, sizeof b->rep.setup,
             "Model: loaded from %s (%zu parameters), not trained in this run. PCA: centred, on the full energy "
             "range after the chain (%s). Threads %d. Built with %s.",
             b->a.model, eelsvae_model_parameter_count(b->model), chain_text(b), eelsvae_threads(), __VERSION__);
    stage_end(b, "load VAE");
}

/* The preset's model and training options (the library's defaults but for
 * --epochs and the seed); `chain` is the same preprocessing as PCA's,
 * scaled on the training data. */
static void training_options(const bench *b, eelsvae_model_options *mo, eelsvae_train_options *to,
                             eelsvae_preprocess_options *chain)
{
    cli_check(eelsvae_model_options_init(mo, b->a.preset), "model options");
    cli_check(eelsvae_train_options_init(to, b->a.preset), "training options");
    if (b->a.epochs) to->epochs = b->a.epochs;
    else to->min_steps = CLI_MIN_STEPS; /* as eelsvae-train */
    to->seed = b->a.seed;
    to->progress = train_progress;
    cli_chain(chain, b->a.preset, b->a.spatial_sigma, b->a.mean_filter, b->raw, WIN_LO, WIN_HI);
    to->preprocess = chain;
}

/* A VAE trained on one SI of raw counts: the clean twin on every pixel
 * (the paper's protocol), an SI that holds the anomalies it is to find in
 * the library's outlier mode (its default, as eelsvae-train's). */
static eelsvae_model *train_on(const bench *b, const eelsvae_cube *raw, int clean_twin)
{
    eelsvae_model_options mo;
    eelsvae_train_options to;
    eelsvae_preprocess_options chain;
    training_options(b, &mo, &to, &chain);
    if (clean_twin) to.outlier_cut = 0.0;
    eelsvae_model *model = NULL;
    cli_check(eelsvae_model_create(&mo, b->a.seed, &model), "model");
    const eelsvae_cube *cubes[1] = {raw};
    cli_check(eelsvae_model_train(model, cubes, NULL, 1, &to), "training");
    return model;
}

static void train(bench *b)
{
    if (b->a.model) {
        load_model(b);
        return;
    }
    stage_begin(b, "training the VAE on the clean SI");
    b->model = train_on(b, b->raw, 1);
    eelsvae_model_options mo;
    eelsvae_train_options to;
    eelsvae_preprocess_options chain;
    training_options(b, &mo, &to, &chain);
    char path[4096], steps[64] = "";
    if (to.min_steps) snprintf(steps, sizeof steps, " (more if needed for %zu steps)", to.min_steps);
    snprintf(path, sizeof path, "%s/model.evae", b->a.out);
    cli_check(eelsvae_model_save(b->model, path, 0), path);
    snprintf(b->rep.setup, sizeof b->rep.setup,
             "Model: %s preset, %zu parameters, tiles %zu × %zu × %zu channels from %g eV, latent %zu; "
             "%zu epochs%s, batch %zu, tile stride %zu; reconstruction tile stride %zu. "
             "PCA: centred, no Poisson weighting, on the full energy range after the chain (%s; the VAE's training "
             "used the same chain). Threads %d. Built with %s.",
             b->a.preset == EELSVAE_PRESET_FAST ? "fast" : "paper", eelsvae_model_parameter_count(b->model), mo.tile,
             mo.tile, mo.energy_channels, mo.energy_start, mo.latent, to.epochs, steps, to.batch,
             to.tile_stride ? to.tile_stride : mo.tile, b->a.recon_stride ? b->a.recon_stride : mo.tile / 2,
             chain_text(b), eelsvae_threads(), __VERSION__);
    stage_end(b, "train VAE");
}

static void note_self_training(bench_report *r)
{
    size_t used = strlen(r->setup);
    snprintf(r->setup + used, sizeof r->setup - used, "%s",
             " VAE self-trained: the same model and training options, trained on each injected SI itself (its "
             "anomalies included) in outlier mode, as eelsvae-train trains.");
}

/* Latent means of every tile of a raw SI, as the model prepares it. */
static float *encode(const bench *b, const eelsvae_cube *prepared)
{
    float *mu = xmalloc(b->tiles * b->latent * sizeof *mu);
    cli_check(eelsvae_model_encode(b->model, prepared, mu, NULL, b->tiles * b->latent), "encoding");
    return mu;
}

static void setup_latent(bench *b, const eelsvae_cube *prepared)
{
    eelsvae_model_options mo;
    cli_check(eelsvae_model_options_get(b->model, &mo), "model options");
    size_t ty = 0, tx = 0;
    cli_check(eelsvae_tiling(b->ny, b->nx, mo.tile, 0, &ty, &tx), "tiling");
    b->tiles = ty * tx;
    b->latent = mo.latent;
    if (!b->a.recon_stride) b->a.recon_stride = mo.tile / 2 ? mo.tile / 2 : 1;
    b->mu_clean = encode(b, prepared);
}

/* ---------- reconstruction fidelity ---------- */

/* Mean PCC over pixels and PSNR (peak 1) of recon against truth over [lo, hi]. */
static void region_fidelity(const eelsvae_cube *truth, const eelsvae_cube *recon, double lo, double hi, double *pcc,
                            double *psnr)
{
    size_t ny = 0, nx = 0, ne = 0, first = 0, count = 0;
    eelsvae_cube_shape(truth, &ny, &nx, &ne);
    cli_check(eelsvae_cube_energy_window(truth, lo, hi, &first, &count), "fidelity region");
    cli_detection d = cli_score(truth, recon, lo, hi, OTSU_RULE, NULL);
    const float *t = eelsvae_cube_data_const(truth), *r = eelsvae_cube_data_const(recon);
    double sum_pcc = 0, sq = 0;
    for (size_t p = 0; p < ny * nx; p++) {
        sum_pcc += d.score[p];
        for (size_t e = first; e < first + count; e++) {
            double diff = (double)r[p * ne + e] - (double)t[p * ne + e];
            sq += diff * diff;
        }
    }
    cli_detection_free(&d);
    *pcc = sum_pcc / (double)(ny * nx);
    double mse = sq / (double)(ny * nx * count);
    *psnr = mse > 0 ? 10 * log10(1.0 / mse) : INFINITY;
}

/* The background region this cube's energy axis covers: all of it, or its
 * end clipped to the axis when at least 80 % of the region remains. */
static int background_region(const eelsvae_cube *cube, double *hi, char *label, size_t size)
{
    double off = 0, scale = 1;
    size_t ne = 0, first = 0, count = 0;
    cli_check(eelsvae_cube_axis(cube, EELSVAE_AXIS_E, &off, &scale, NULL), "energy axis");
    eelsvae_cube_shape(cube, NULL, NULL, &ne);
    double end = off + scale * (double)(ne - 1);
    *hi = end < BG_HI ? end : BG_HI;
    if (*hi - BG_LO < 0.8 * (BG_HI - BG_LO) || eelsvae_cube_energy_window(cube, BG_LO, *hi, &first, &count)) {
        snprintf(label, size, "n/a: range %.1f–%.1f eV", off, end);
        return 0;
    }
    snprintf(label, size, "%g–%.1f eV", BG_LO, *hi);
    return 1;
}

static bench_fidelity fidelity(const char *label, const eelsvae_cube *truth, const eelsvae_cube *recon)
{
    bench_fidelity f = {label, NAN, NAN, NAN, NAN, ""};
    region_fidelity(truth, recon, WIN_LO, WIN_HI, &f.edge_pcc, &f.edge_psnr);
    double hi = 0;
    if (background_region(truth, &hi, f.bg_region, sizeof f.bg_region))
        region_fidelity(truth, recon, BG_LO, hi, &f.bg_pcc, &f.bg_psnr);
    return f;
}

static eelsvae_cube *pca_reconstruct(const eelsvae_cube *pp, size_t k, double trim)
{
    eelsvae_pca_options po;
    cli_check(eelsvae_pca_options_init(&po), "PCA options");
    po.components = k;
    po.trim_fraction = trim;
    po.seed = 1;
    eelsvae_pca *pca = NULL;
    eelsvae_cube *recon = NULL;
    cli_check(eelsvae_pca_fit(pp, &po, &pca), "PCA fit");
    cli_check(eelsvae_pca_reconstruct(pca, pp, &recon), "PCA reconstruction");
    eelsvae_pca_free(pca);
    return recon;
}

static void measure_fidelity(bench *b, const eelsvae_cube *clean_pp, const eelsvae_cube *clean_prepared)
{
    bench_report *r = &b->rep;
    if (!b->expected) {
        snprintf(r->fidelity_note, sizeof r->fidelity_note,
                 "No noise-free reference for a loaded SI: fidelity not measured.");
        return;
    }
    stage_begin(b, "reconstruction fidelity against the noise-free SI");
    eelsvae_cube *truth_pp = preprocess_fixed(b, b->expected), *truth_prep = NULL, *recon = NULL;
    r->fidelity[0] = fidelity("noisy input (no reconstruction)", truth_pp, clean_pp);
    cli_check(eelsvae_model_prepare(b->model, b->expected, &truth_prep), "preparing the noise-free SI");
    cli_check(eelsvae_model_reconstruct(b->model, clean_prepared, b->a.recon_stride, &recon), "VAE reconstruction");
    r->fidelity[1 + BENCH_VAE] = fidelity(bench_method_label[BENCH_VAE], truth_prep, recon);
    eelsvae_cube_free(recon);
    eelsvae_cube_free(truth_prep);
    for (int m = BENCH_PCA3; m <= BENCH_PCA5; m++) {
        recon = pca_reconstruct(clean_pp, (size_t)(m - BENCH_PCA3 + 3), b->a.pca_trim);
        r->fidelity[1 + m] = fidelity(bench_method_label[m], truth_pp, recon);
        eelsvae_cube_free(recon);
    }
    eelsvae_cube_free(truth_pp);
    r->have_fidelity = 1;
    r->n_fidelity = 2 + BENCH_PCA5; /* the input, the clean-trained VAE, PCA 3, 4, 5 */
    snprintf(r->fidelity_note, sizeof r->fidelity_note,
             "The VAE is compared in its own input space (the model's energy range and recorded scaling), PCA in the "
             "full-range preprocessing. %s",
             isnan(r->fidelity[1].bg_pcc)
                 ? "The VAE's background fidelity is n/a: its energy range does not cover the background region "
                   "(the fast preset models only the Fe L2,3 edge)."
                 : "");
    eelsvae_cube_free(b->expected);
    b->expected = NULL;
    stage_end(b, "fidelity");
}

/* ---------- detection on one injected SI ---------- */

/* One injected SI: its shift, its disks, and the truth. */
typedef struct injection {
    double shift, radius, fraction;
    size_t disks;
    uint8_t *truth; /* ny·nx, 1 inside a disk */
    uint8_t *rim;   /* ny·nx, 1 on a disk's outer one-pixel ring (more than radius − 1 from its centre) */
    double *centres;
} injection;

/* Mean score of the normal [0] and anomalous [1] pixels (NaN for an empty class). */
static void class_means(const float *score, const uint8_t *truth, size_t n, double mean[2])
{
    double sum[2] = {0, 0};
    size_t count[2] = {0, 0};
    for (size_t i = 0; i < n; i++) sum[truth[i] != 0] += score[i], count[truth[i] != 0]++;
    for (int c = 0; c < 2; c++) mean[c] = count[c] ? sum[c] / (double)count[c] : NAN;
}

/* Precision, recall and F1 of d's score map cut by the run's --threshold rule. */
static void measure_rule(const bench *b, const cli_detection *d, const uint8_t *truth, bench_row *w)
{
    eelsvae_threshold_rule rule = {.struct_size = sizeof rule};
    cli_check(eelsvae_threshold_rule_parse(b->a.rule, &rule), "--threshold");
    uint8_t *mask = xmalloc(b->n);
    eelsvae_metrics m = {.struct_size = sizeof m};
    cli_check(eelsvae_threshold_select(d->score, b->n, EELSVAE_ANOMALOUS_BELOW, &rule, &w->rule_threshold), b->a.rule);
    cli_check(eelsvae_threshold_mask(d->score, b->n, w->rule_threshold, EELSVAE_ANOMALOUS_BELOW, mask), b->a.rule);
    cli_check(eelsvae_metrics_compute(mask, truth, b->n, &m), "metrics");
    w->rule_precision = m.precision, w->rule_recall = m.recall, w->rule_f1 = m.f1;
    free(mask);
}

static void add_row(bench *b, int method, const injection *in, const cli_detection *d)
{
    eelsvae_metrics m;
    double roc = NAN, ap = NAN;
    cli_measure(d, in->truth, &m, &roc, &ap);
    bench_row *w = &b->rows[b->rep.n_rows++];
    double mean[2];
    class_means(d->score, in->truth, b->n, mean);
    *w = (bench_row){method, in->shift, in->disks, in->radius, in->fraction, m.precision, m.recall, m.f1, m.iou, roc,
                     ap, d->threshold, mean[0], mean[1], 0, 0, 0, NAN, NAN, NAN, NAN};
    measure_rule(b, d, in->truth, w);
    for (size_t i = 0; i < b->n; i++) {
        if (in->truth[i] && !d->mask[i]) {
            w->missed++;
            w->missed_rim += in->rim[i];
        }
        if (!in->truth[i] && d->mask[i]) w->false_alarms++;
    }
}

static float *sum_image(const bench *b, const eelsvae_cube *cube)
{
    float *img = xmalloc(b->n * sizeof *img);
    cli_check(eelsvae_cube_sum_image(cube, img, b->n), "sum image");
    return img;
}

/* Keep what the figures need of the featured shift's SI. */
static void keep_spectra(bench *b, const eelsvae_cube *injected)
{
    size_t y = (size_t)lround(b->fig.centres[0]), x = (size_t)lround(b->fig.centres[1]);
    const float *before = NULL, *after = NULL;
    cli_check(eelsvae_cube_spectrum(b->raw, y, x, &before), "spectrum");
    cli_check(eelsvae_cube_spectrum(injected, y, x, &after), "spectrum");
    b->fig.before = xmalloc(b->ne * sizeof(float));
    b->fig.after = xmalloc(b->ne * sizeof(float));
    memcpy(b->fig.before, before, b->ne * sizeof(float));
    memcpy(b->fig.after, after, b->ne * sizeof(float));
}

/* Score `model` (the clean-trained or a self-trained one) on an injected SI;
 * only the clean-trained model's detection is featured in the figures. */
static void detect_vae(bench *b, const eelsvae_model *model, int method, const eelsvae_cube *injected,
                       const injection *in, int featured)
{
    eelsvae_cube *prep = NULL, *recon = NULL;
    cli_check(eelsvae_model_prepare(model, injected, &prep), "preparing the injected SI");
    cli_check(eelsvae_model_reconstruct(model, prep, b->a.recon_stride, &recon), "VAE reconstruction");
    cli_detection d = cli_score(prep, recon, WIN_LO, WIN_HI, OTSU_RULE, NULL);
    add_row(b, method, in, &d);
    if (featured) {
        b->fig.det[0] = d;
        b->fig.sum[0] = sum_image(b, recon);
        b->fig.mu_injected = encode(b, prep);
    } else {
        cli_detection_free(&d);
    }
    eelsvae_cube_free(recon);
    eelsvae_cube_free(prep);
}

/* --self-train: a VAE trained on the injected SI itself, anomalies and all,
 * as eelsvae-train trains one: outlier mode on. */
static void detect_vae_self(bench *b, const eelsvae_cube *injected, const injection *in)
{
    fprintf(stderr, "           training a VAE on the injected SI itself…\n");
    eelsvae_model *model = train_on(b, injected, 0);
    detect_vae(b, model, BENCH_VAE_SELF, injected, in, 0);
    eelsvae_model_free(model);
}

static void detect_pca(bench *b, const eelsvae_cube *injected, const injection *in, int featured)
{
    eelsvae_cube *pp = preprocess_fixed(b, injected);
    for (int m = BENCH_PCA3; m <= BENCH_PCA5; m++) {
        eelsvae_cube *recon = pca_reconstruct(pp, (size_t)(m - BENCH_PCA3 + 3), b->a.pca_trim);
        cli_detection d = cli_score(pp, recon, WIN_LO, WIN_HI, OTSU_RULE, NULL);
        add_row(b, m, in, &d);
        if (featured && m == BENCH_PCA4) {
            b->fig.det[1] = d;
            b->fig.sum[1] = sum_image(b, recon);
        } else {
            cli_detection_free(&d);
        }
        eelsvae_cube_free(recon);
    }
    eelsvae_cube_free(pp);
}

/* The disks of one setting, and which of their pixels lie on the outer ring. */
static injection make_injection(const bench *b, double shift, size_t disks, double radius)
{
    injection in = {shift, radius, 0.0, disks, xmalloc(b->n), xmalloc(b->n), xmalloc(2 * disks * sizeof(double))};
    cli_check(eelsvae_disk_mask(b->ny, b->nx, disks, radius, 2 * radius + 4, b->a.seed, in.truth, in.centres),
              "disk mask");
    size_t anomalous = 0;
    for (size_t y = 0; y < b->ny; y++)
        for (size_t x = 0; x < b->nx; x++) {
            size_t i = y * b->nx + x;
            double nearest = INFINITY;
            for (size_t k = 0; k < disks; k++)
                nearest = fmin(nearest, hypot((double)y - in.centres[2 * k], (double)x - in.centres[2 * k + 1]));
            in.rim[i] = in.truth[i] && nearest > radius - 1.0;
            anomalous += in.truth[i];
        }
    in.fraction = (double)anomalous / (double)b->n;
    return in;
}

/* Inject ΔE into disks of the clean counts and score every method. */
static void evaluate(bench *b, double shift, size_t disks, double radius, int featured)
{
    injection in = make_injection(b, shift, disks, radius);
    eelsvae_cube *injected = NULL;
    cli_check(eelsvae_cube_copy(b->raw, &injected), "copy");
    cli_check(eelsvae_cube_inject_shift(injected, in.truth, b->n, WIN_LO, WIN_HI, shift), "injection");
    if (featured) {
        b->fig.shift = shift;
        b->fig.truth = in.truth;
        b->fig.centres = in.centres;
        keep_spectra(b, injected);
    }
    size_t first_row = b->rep.n_rows;
    detect_vae(b, b->model, BENCH_VAE, injected, &in, featured);
    detect_pca(b, injected, &in, featured);
    if (b->a.self_train) detect_vae_self(b, injected, &in);
    eelsvae_cube_free(injected);
    fprintf(stderr, "           ΔE %g eV, %zu disks r %g: F1 at Otsu (at %s):", shift, disks, radius, b->a.rule);
    for (size_t i = first_row; i < b->rep.n_rows; i++)
        fprintf(stderr, "  %s %.3f (%.3f)", bench_method_id[b->rows[i].method], b->rows[i].f1, b->rows[i].rule_f1);
    fputc('\n', stderr);
    free(in.rim);
    if (!featured) {
        free(in.truth);
        free(in.centres);
    }
}

/* The shift the paper's figures use (2.5 eV), or the nearest one run. */
static size_t featured_index(const args *a)
{
    size_t best = 0;
    for (size_t s = 1; s < a->n_shifts; s++)
        if (fabs(a->shifts[s] - 2.5) < fabs(a->shifts[best] - 2.5)) best = s;
    return best;
}

static void run_shifts(bench *b)
{
    size_t feat = featured_index(&b->a);
    for (size_t s = 0; s < b->a.n_shifts; s++) {
        char what[96];
        snprintf(what, sizeof what, "ΔE = %g eV (%zu of %zu)", b->a.shifts[s], s + 1, b->a.n_shifts);
        stage_begin(b, what);
        evaluate(b, b->a.shifts[s], b->a.disks, b->a.radius, s == feat);
        snprintf(what, sizeof what, "shift %.4g eV (VAE + 3 PCA)", b->a.shifts[s]);
        stage_end(b, what);
    }
}

/* From the run's disks and radius down to one disk of radius 3. */
static void sweep_settings(bench *b)
{
    bench_report *r = &b->rep;
    size_t steps = b->a.quick ? 2 : 5;
    r->n_sweep = 0;
    for (size_t i = 0; i < steps; i++) {
        double t = steps > 1 ? (double)i / (double)(steps - 1) : 0;
        long d = lround((double)b->a.disks * (1 - t));
        size_t disks = d < 1 ? 1 : (size_t)d;
        double radius = i + 1 == steps ? fmin(3, b->a.radius) : round(b->a.radius + (3 - b->a.radius) * t);
        if (i == 0) disks = b->a.disks, radius = b->a.radius;
        if (r->n_sweep && r->sweep_disks[r->n_sweep - 1] == disks && r->sweep_radius[r->n_sweep - 1] == radius) continue;
        r->sweep_disks[r->n_sweep] = disks;
        r->sweep_radius[r->n_sweep++] = radius;
    }
}

static void run_sweep(bench *b)
{
    bench_report *r = &b->rep;
    r->sweep_shift = 2.4;
    sweep_settings(b);
    stage_begin(b, "concentration sweep at ΔE = 2.4 eV");
    for (size_t i = 0; i < r->n_sweep; i++)
        if (!bench_find(r, BENCH_VAE, r->sweep_shift, r->sweep_disks[i], r->sweep_radius[i]))
            evaluate(b, r->sweep_shift, r->sweep_disks[i], r->sweep_radius[i], 0);
    stage_end(b, "concentration sweep");
}

/* ---------- figures ---------- */

static int zoom_for(size_t n, size_t target)
{
    size_t z = target / n;
    return z < 1 ? 1 : (int)z;
}

static void add_figure(bench *b, const char *file, const char *png, const char *caption)
{
    bench_report *r = &b->rep;
    if (r->n_figures < BENCH_MAX_FIGURES) r->figures[r->n_figures++] = (bench_figure){file, png, caption};
}

static void min_max(const float *v, size_t n, double *lo, double *hi)
{
    *lo = INFINITY, *hi = -INFINITY;
    for (size_t i = 0; i < n; i++) *lo = fmin(*lo, v[i]), *hi = fmax(*hi, v[i]);
}

/* Left half from the VAE's sum image, right half from PCA 4's, each scaled
 * to its own range (the two live in different preprocessed spaces). */
static fig_image split_sum_image(const bench *b, int zoom)
{
    float *split = xmalloc(b->n * sizeof *split);
    for (int k = 0; k < 2; k++) {
        double lo = 0, hi = 0;
        min_max(b->fig.sum[k], b->n, &lo, &hi);
        for (size_t y = 0; y < b->ny; y++)
            for (size_t x = k ? b->nx / 2 : 0; x < (k ? b->nx : b->nx / 2); x++)
                split[y * b->nx + x] = (float)((b->fig.sum[k][y * b->nx + x] - lo) / (hi > lo ? hi - lo : 1));
    }
    fig_image im = fig_image_map(split, b->ny, b->nx, 0, 1, FIG_CMAP_VIRIDIS, zoom, 0);
    static const uint8_t white[3] = {255, 255, 255};
    fig_image_vline(&im, b->nx / 2, 2, white);
    free(split);
    return im;
}

/* Green when most of a disk's pixels are flagged, red when not. */
static void circle_disks(const bench *b, fig_image *im, const uint8_t *flagged)
{
    static const uint8_t green[3] = {0, 200, 0}, red[3] = {230, 0, 0};
    double r = b->a.radius;
    for (size_t k = 0; k < b->a.disks; k++) {
        double cy = b->fig.centres[2 * k], cx = b->fig.centres[2 * k + 1];
        size_t inside = 0, hit = 0;
        for (size_t y = 0; y < b->ny; y++)
            for (size_t x = 0; x < b->nx; x++)
                if ((y - cy) * (y - cy) + (x - cx) * (x - cx) <= r * r) inside++, hit += flagged[y * b->nx + x];
        fig_image_circle(im, cy, cx, r + 1.5, 2.5, 2 * hit > inside ? green : red);
    }
}

static void figure_1(bench *b)
{
    int zoom = zoom_for(b->nx, 320);
    /* Each map over its own range: the two methods' PCC can differ widely. */
    double lo[2] = {0, 0}, hi[2] = {0, 0};
    for (int k = 0; k < 2; k++) min_max(b->fig.det[k].score, b->n, &lo[k], &hi[k]);
    fig_image split = split_sum_image(b, zoom);
    fig_image maps[2];
    const char *pngs[3] = {"fig1a_split.png", "fig1b_pcc_vae.png", "fig1c_pcc_pca4.png"};
    fig_image_save(&split, cli_join(b->a.out, pngs[0]));
    for (int k = 0; k < 2; k++) {
        maps[k] = fig_image_map(b->fig.det[k].score, b->ny, b->nx, lo[k], hi[k], FIG_CMAP_GREY_INV, zoom, 1);
        circle_disks(b, &maps[k], b->fig.det[k].mask);
        fig_image_save(&maps[k], cli_join(b->a.out, pngs[k + 1]));
    }
    fig_panel panels[3] = {
        {cli_join(b->a.out, pngs[0]), &split, b->ny, b->nx, "(a) Σ over E: VAE | PCA 4", NULL, NULL, NULL, 0, 1},
        {cli_join(b->a.out, pngs[1]), &maps[0], b->ny, b->nx, "(b) VAE: PCC 690–730 eV", NULL, NULL, "PCC", lo[0], hi[0]},
        {cli_join(b->a.out, pngs[2]), &maps[1], b->ny, b->nx, "(c) PCA 4: PCC 690–730 eV", NULL, NULL, "PCC", lo[1], hi[1]}};
    char title[128];
    snprintf(title, sizeof title, "Fig. 1 — reconstructions and PCC maps at ΔE = %g eV", b->fig.shift);
    fig_svg_panels(cli_join(b->a.out, "fig1_maps.svg"), title, panels, 3);
    fig_image_free(&split);
    fig_image_free(&maps[0]);
    fig_image_free(&maps[1]);
    add_figure(b, "fig1_maps.svg", "fig1b_pcc_vae.png",
               "Fig. 1. (a) z-summed reconstructions, VAE left, PCA 4 right (each scaled to its own range). "
               "(b, c) PCC between input and reconstruction over 690–730 eV (light = low = anomalous); true disks "
               "circled green when most of their pixels are flagged by Otsu's threshold, red when missed.");
}

static void figure_2(bench *b)
{
    double off = 0, scale = 1;
    cli_check(eelsvae_cube_axis(b->raw, EELSVAE_AXIS_E, &off, &scale, NULL), "energy axis");
    double *e = xmalloc(b->ne * sizeof *e), *y0 = xmalloc(b->ne * sizeof *y0), *y1 = xmalloc(b->ne * sizeof *y1);
    for (size_t i = 0; i < b->ne; i++) e[i] = off + scale * (double)i, y0[i] = b->fig.before[i], y1[i] = b->fig.after[i];
    fig_series s[2] = {{"original", "black", e, y0, b->ne, 0, 0}, {NULL, "#d62728", e, y1, b->ne, 0, 0}};
    char label[64];
    snprintf(label, sizeof label, "shifted by %g eV", b->fig.shift);
    s[1].label = label;
    fig_plot p[2] = {fig_plot_init("Whole spectrum", "energy loss (eV)", "counts"),
                     fig_plot_init("Fe L2,3 edge", "energy loss (eV)", "counts")};
    for (int k = 0; k < 2; k++) {
        p[k].series = s;
        p[k].n_series = 2;
        p[k].band_lo = WIN_LO;
        p[k].band_hi = WIN_HI;
        p[k].band_label = "shifted window";
    }
    p[0].legend = FIG_LEGEND_UPPER_RIGHT;
    p[1].xmin = 680, p[1].xmax = 745;
    p[1].legend = FIG_LEGEND_UPPER_RIGHT;
    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < b->ne; i++)
        if (e[i] >= 680 && e[i] <= 745) lo = fmin(lo, fmin(y0[i], y1[i])), hi = fmax(hi, fmax(y0[i], y1[i]));
    p[1].ymin = lo - 0.05 * (hi - lo), p[1].ymax = hi + 0.25 * (hi - lo);
    char title[128];
    snprintf(title, sizeof title, "Fig. 2 — an anomalous pixel (y %.0f, x %.0f) before and after injection",
             b->fig.centres[0], b->fig.centres[1]);
    fig_svg_plots(cli_join(b->a.out, "fig2_spectrum.svg"), title, p, 2, 2, 520, 380);
    free(e), free(y0), free(y1);
    add_figure(b, "fig2_spectrum.svg", NULL,
               "Fig. 2. One spectrum at a disk centre, raw counts, before (black) and after (red) the Fe L-edge "
               "shift; only the highlighted 690–730 eV window is moved.");
}

/* Mean PCC of the normal and anomalous pixels. */
static void figure_3(bench *b)
{
    uint64_t counts[2][2][HIST_BINS];
    double xs[2][2][2 * HIST_BINS], ys[2][2][2 * HIST_BINS];
    fig_series series[2][2];
    fig_mark marks[2][2];
    char legend[2][2][48];
    fig_plot p[2] = {fig_plot_init("VAE", "PCC over 690–730 eV", "pixels"),
                     fig_plot_init("PCA (4 components)", "PCC over 690–730 eV", "pixels")};
    for (int k = 0; k < 2; k++) {
        double lo = 0, hi = 0;
        min_max(b->fig.det[k].score, b->n, &lo, &hi);
        lo = fmin(floor(lo * 10) / 10, 0.9), hi = 1;
        cli_check(eelsvae_score_histogram(b->fig.det[k].score, b->fig.truth, b->n, lo, hi, HIST_BINS, counts[k][0],
                                          counts[k][1]),
                  "histogram");
        class_means(b->fig.det[k].score, b->fig.truth, b->n, b->rep.hist_mean[k]);
        for (int c = 0; c < 2; c++) {
            fig_histogram_steps(counts[k][c], HIST_BINS, lo, hi, xs[k][c], ys[k][c]);
            const char *colour = c ? "#d62728" : "#1f77b4";
            snprintf(legend[k][c], sizeof legend[k][c], "%s, mean %.3f", c ? "anomalous" : "normal", b->rep.hist_mean[k][c]);
            series[k][c] = (fig_series){legend[k][c], colour, xs[k][c], ys[k][c], 2 * HIST_BINS, 0, 0};
            marks[k][c] = (fig_mark){b->rep.hist_mean[k][c], colour, ""};
        }
        p[k].series = series[k];
        p[k].n_series = 2;
        p[k].marks = marks[k];
        p[k].n_marks = 2;
        p[k].logy = 1;
        p[k].ymin = 0.5;
        p[k].xmin = lo, p[k].xmax = hi;
        p[k].legend = FIG_LEGEND_UPPER_LEFT;
    }
    char title[128];
    snprintf(title, sizeof title, "Fig. 3 — PCC of normal and anomalous pixels at ΔE = %g eV", b->fig.shift);
    fig_svg_plots(cli_join(b->a.out, "fig3_histograms.svg"), title, p, 2, 1, 760, 330);
    add_figure(b, "fig3_histograms.svg", NULL,
               "Fig. 3. Histograms of the per-pixel PCC, truly normal (blue) and truly anomalous (red) pixels, log "
               "count axis; dashed lines mark the class means. Two separate modes mean easy detection.");
}

/* One curve per method of `metric` against ΔE (or against the sweep). */
static void method_curves(const bench *b, int method, const char *metric, int sweep, double *x, double *y)
{
    const bench_report *r = &b->rep;
    size_t n = sweep ? r->n_sweep : b->a.n_shifts;
    for (size_t i = 0; i < n; i++) {
        const bench_row *w = sweep ? bench_find(r, method, r->sweep_shift, r->sweep_disks[i], r->sweep_radius[i])
                                   : bench_find(r, method, b->a.shifts[i], b->a.disks, b->a.radius);
        x[i] = !w ? NAN : sweep ? 100 * w->fraction : w->shift_ev;
        y[i] = !w ? NAN : !strcmp(metric, "precision") ? w->precision : !strcmp(metric, "recall") ? w->recall : w->f1;
    }
}

/* The methods this run measured, in table order; returns their count. */
static size_t methods_run(const bench *b, int methods[BENCH_METHODS])
{
    size_t n = 0;
    for (int m = 0; m < BENCH_METHODS; m++)
        if (bench_has_method(&b->rep, m)) methods[n++] = m;
    return n;
}

static void figure_4(bench *b)
{
    size_t n = b->a.n_shifts;
    double x[BENCH_METHODS][2][MAX_SHIFTS], y[BENCH_METHODS][2][MAX_SHIFTS];
    fig_series f1[BENCH_METHODS], pr[BENCH_METHODS][2];
    fig_plot p[BENCH_METHODS];
    int methods[BENCH_METHODS];
    size_t n_methods = methods_run(b, methods);
    for (size_t k = 0; k < n_methods; k++) {
        int m = methods[k];
        method_curves(b, m, "f1", 0, x[k][0], y[k][0]);
        f1[k] = (fig_series){bench_method_label[m], bench_method_colour[m], x[k][0], y[k][0], n, 0, 1};
    }
    fig_plot pf = fig_plot_init("F1 against the peak shift", "ΔE (eV)", "F1");
    pf.series = f1, pf.n_series = n_methods, pf.ymin = 0, pf.ymax = 1.05, pf.legend = FIG_LEGEND_LOWER_RIGHT;
    fig_svg_plots(cli_join(b->a.out, "fig4_f1.svg"), "Fig. 4 — detection across shift magnitudes", &pf, 1, 1, 760, 420);
    add_figure(b, "fig4_f1.svg", NULL,
               "Fig. 4. F1 (Otsu's threshold on the PCC map) against the size of the Fe L-edge shift for the VAE and "
               "PCA with 3, 4 and 5 components.");
    for (size_t k = 0; k < n_methods; k++) {
        int m = methods[k];
        method_curves(b, m, "precision", 0, x[k][0], y[k][0]);
        method_curves(b, m, "recall", 0, x[k][1], y[k][1]);
        pr[k][0] = (fig_series){"precision", bench_method_colour[m], x[k][0], y[k][0], n, 0, 1};
        pr[k][1] = (fig_series){"recall", bench_method_colour[m], x[k][1], y[k][1], n, 1, 1};
        p[k] = fig_plot_init(bench_method_label[m], "ΔE (eV)", "precision, recall");
        p[k].series = pr[k], p[k].n_series = 2, p[k].ymin = 0, p[k].ymax = 1.05, p[k].legend = FIG_LEGEND_LOWER_RIGHT;
    }
    fig_svg_plots(cli_join(b->a.out, "fig4b_precision_recall.svg"), "Fig. 4b — precision and recall per method", p,
                  n_methods, 2, 480, 330);
    add_figure(b, "fig4b_precision_recall.svg", NULL,
               "Fig. 4b. Precision (solid) and recall (dashed) against ΔE, one panel per method.");
}

/* Cosine similarity of clean tile i (rows) and injected tile j (columns). */
static float *cosine_matrix(bench *b)
{
    size_t t = b->tiles, l = b->latent;
    float *cos = xmalloc(t * t * sizeof *cos);
    double diag = 0, off = 0;
    for (size_t i = 0; i < t; i++)
        for (size_t j = 0; j < t; j++) {
            const float *u = b->mu_clean + i * l, *v = b->fig.mu_injected + j * l;
            double uv = 0, uu = 0, vv = 0;
            for (size_t k = 0; k < l; k++) uv += (double)u[k] * v[k], uu += (double)u[k] * u[k], vv += (double)v[k] * v[k];
            double c = uu > 0 && vv > 0 ? uv / sqrt(uu * vv) : 0;
            cos[i * t + j] = (float)c;
            if (i == j) diag += c;
            else off += c;
        }
    b->rep.latent_tiles = t;
    b->rep.latent_diag = diag / (double)t;
    b->rep.latent_offdiag = t > 1 ? off / (double)(t * (t - 1)) : NAN;
    return cos;
}

static void figure_5(bench *b)
{
    float *cos = cosine_matrix(b);
    size_t t = b->tiles;
    fig_image im = fig_image_map(cos, t, t, -1, 1, FIG_CMAP_DIVERGING, zoom_for(t, 384), 1);
    const char *png = cli_join(b->a.out, "fig5_latent_cosine.png");
    fig_image_save(&im, png);
    char caption[96], title[96];
    snprintf(caption, sizeof caption, "diagonal mean %.3f, off-diagonal %.3f", b->rep.latent_diag, b->rep.latent_offdiag);
    fig_panel panel = {png, &im, t, t, caption, "injected sub-image (tile index)", "clean sub-image (tile index)",
                       "cosine similarity", -1, 1};
    snprintf(title, sizeof title, "Fig. 5 — latent means, clean vs injected (ΔE = %g eV)", b->fig.shift);
    fig_svg_panels(cli_join(b->a.out, "fig5_latent.svg"), title, &panel, 1);
    fig_image_free(&im);
    free(cos);
    add_figure(b, "fig5_latent.svg", "fig5_latent_cosine.png",
               "Fig. 5. Cosine similarity between the latent means (μ) of every clean sub-image (rows) and every "
               "anomaly-injected sub-image (columns); a bright diagonal means each pair maps to nearly the same place.");
}

static void figure_sweep(bench *b)
{
    const bench_report *r = &b->rep;
    double x[BENCH_METHODS][BENCH_MAX_SWEEP], y[BENCH_METHODS][BENCH_MAX_SWEEP];
    fig_series s[BENCH_METHODS];
    int methods[BENCH_METHODS];
    size_t n_methods = methods_run(b, methods);
    for (size_t k = 0; k < n_methods; k++) {
        int m = methods[k];
        method_curves(b, m, "f1", 1, x[k], y[k]);
        s[k] = (fig_series){bench_method_label[m], bench_method_colour[m], x[k], y[k], r->n_sweep, 0, 1};
    }
    fig_plot p = fig_plot_init("F1 against anomaly concentration", "anomalous pixels (% of the scan)", "F1");
    p.series = s, p.n_series = n_methods, p.ymin = 0, p.ymax = 1.05, p.xmin = 0, p.legend = FIG_LEGEND_LOWER_RIGHT;
    char title[96];
    snprintf(title, sizeof title, "Fig. 6 — concentration sweep at ΔE = %g eV", r->sweep_shift);
    fig_svg_plots(cli_join(b->a.out, "fig6_concentration.svg"), title, &p, 1, 1, 760, 420);
    add_figure(b, "fig6_concentration.svg", NULL,
               "Fig. 6. F1 as the anomalies become rarer: fewer and smaller disks, down to one disk of radius 3 px.");
}

static void draw_figures(bench *b)
{
    stage_begin(b, "drawing the figures");
    figure_1(b);
    figure_2(b);
    figure_3(b);
    figure_4(b);
    figure_5(b);
    figure_sweep(b);
    stage_end(b, "figures");
}

static void write_reports(bench *b)
{
    bench_report *r = &b->rep;
    r->ny = b->ny, r->nx = b->nx, r->ne = b->ne;
    r->disks = b->a.disks, r->radius = b->a.radius;
    r->fraction = b->rep.rows[0].fraction;
    r->shifts = b->a.shifts, r->n_shifts = b->a.n_shifts;
    r->featured_shift = b->fig.shift;
    r->rule = b->a.rule;
    r->pca_trim = b->a.pca_trim;
    r->total_seconds = seconds_since(&b->start);
    report_write_csv(cli_join(b->a.out, "results.csv"), r);
    report_write_summary(cli_join(b->a.out, "summary.md"), r);
    report_write_html(cli_join(b->a.out, "report.html"), r);
    report_print(stdout, r);
    fprintf(stderr, "wrote %s/results.csv, summary.md, report.html and %zu figures\n", b->a.out, r->n_figures);
}

static void free_bench(bench *b)
{
    for (int k = 0; k < 2; k++) cli_detection_free(&b->fig.det[k]), free(b->fig.sum[k]);
    free(b->fig.truth), free(b->fig.centres), free(b->fig.before), free(b->fig.after), free(b->fig.mu_injected);
    free(b->mu_clean);
    eelsvae_model_free(b->model);
    eelsvae_cube_free(b->expected);
    eelsvae_cube_free(b->raw);
}

int main(int argc, char **argv)
{
    cli_init(argv[0]);
    static bench b; /* large: the rows */
    b.a = parse(argc, argv);
    b.rep.rows = b.rows;
    clock_gettime(CLOCK_MONOTONIC, &b.start);
    cli_make_dir(b.a.out);
    make_or_load_si(&b);
    eelsvae_cube *clean_pp = preprocess_clean(&b);
    train(&b);
    if (b.a.self_train) note_self_training(&b.rep);
    eelsvae_cube *clean_prepared = NULL;
    cli_check(eelsvae_model_prepare(b.model, b.raw, &clean_prepared), "preparing the clean SI");
    setup_latent(&b, clean_prepared);
    measure_fidelity(&b, clean_pp, clean_prepared);
    eelsvae_cube_free(clean_prepared);
    eelsvae_cube_free(clean_pp);
    run_shifts(&b);
    run_sweep(&b);
    draw_figures(&b);
    write_reports(&b);
    free_bench(&b);
    return 0;
}
