/* cvae-bench: time the 3D-CVAE against PyTorch on the identical
 * architecture and the identical tiles, in one invocation:
 *
 *   fast epoch      one training epoch of the FAST preset on the default
 *                   synthetic SI (eelsvae_model_train, epochs = 1, no
 *                   validation split);
 *   fast inference  whole-SI reconstruction (eelsvae_model_reconstruct) of
 *                   the same SI with the trained weights;
 *   paper step      one training step (batch 4) of the PAPER preset at
 *                   E = 1312 through the private network API (forward,
 *                   backward, gradient clipping, Adam); the first step
 *                   (cold: it first touches the activations and Adam's
 *                   moments, as PyTorch's first step creates its state) and,
 *                   with --paper-steps K > 1 (the default is 2), the K-th
 *                   (warm: what each step of a long training costs).
 *
 * PyTorch runs the same work through bench/cvae_torch.py (the module of
 * tests/reference/cvae_reference.py) on tiles and weights this program
 * exports as raw float32 files, with the same thread count. Prints one table:
 * seconds, the ratio ours / PyTorch and the peak resident memory of each
 * phase, and the machine's load average at the start and at the end.
 *
 * Memory: the peak resident set (VmHWM) of a phase, reset at its start
 * through /proc/self/clear_refs, minus the resident set at its start — what
 * the phase itself adds. Both paper steps run in processes of their own (this
 * program re-executes itself), so that ~15 GB never coexist with anything. */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <eelsvae/eelsvae.h>

#include "bench_util.h"

#include "nn/cvae.h"
#include "nn/model_private.h"
#include "nn/optim.h"

#ifndef EELSVAE_SOURCE_DIR
#define EELSVAE_SOURCE_DIR "."
#endif

#define PAPER_BATCH 4
#define TARGET_RATIO 0.2

typedef struct args {
    size_t size, paper_steps;
    int threads, peers, paper, cpu_clock;
    const char *python, *keep, *paper_child;
} args;

static void usage(const char *prog)
{
    printf("Usage: %s [options]\n"
           "Time one FAST training epoch and whole-SI inference on the default synthetic SI,\n"
           "and one PAPER training step (batch 4, E = 1312), against PyTorch on the same\n"
           "architecture and tiles (bench/cvae_torch.py).\n\n"
           "  --size N          scan of N x N pixels (default 192)\n"
           "  --threads N       threads, ours and PyTorch's (default 2)\n"
           "  --skip-paper      skip the paper step (it needs about 15 GB, each side)\n"
           "  --paper-steps K   time K paper steps, report the first (cold: it first touches the\n"
           "                    activations and Adam's state) and the last (warm) (default 2)\n"
           "  --cpu-clock       time with each process's CPU time (all its threads summed):\n"
           "                    with --threads 1 on a busy machine, the time it would take alone\n"
           "  --no-peers        time our code only\n"
           "  --python PATH     interpreter for PyTorch (default /usr/bin/python3)\n"
           "  --keep DIR        write the exported tiles and weights to DIR and keep them\n",
           prog);
}

static args parse(int argc, char **argv)
{
    args a = {192, 2, 2, 1, 1, 0, "/usr/bin/python3", NULL, NULL};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--size")) a.size = parse_size(o, v), i++;
        else if (!strcmp(o, "--threads")) a.threads = (int)parse_size(o, v), i++;
        else if (!strcmp(o, "--paper-steps")) a.paper_steps = parse_size(o, v), i++;
        else if (!strcmp(o, "--skip-paper")) a.paper = 0;
        else if (!strcmp(o, "--no-peers")) a.peers = 0;
        else if (!strcmp(o, "--cpu-clock")) a.cpu_clock = 1;
        else if (!strcmp(o, "--python") && v) a.python = v, i++;
        else if (!strcmp(o, "--keep") && v) a.keep = v, i++;
        else if (!strcmp(o, "--paper-child") && v) a.paper_child = v, i++; /* internal */
        else if (!strcmp(o, "--help") || !strcmp(o, "-h")) usage(argv[0]), exit(0);
        else {
            fprintf(stderr, "unknown option '%s' (try --help)\n", o);
            exit(2);
        }
    }
    return a;
}

static void check(eelsvae_status st, const char *what)
{
    if (st == EELSVAE_OK) return;
    fprintf(stderr, "cvae-bench: %s: %s: %s\n", what, eelsvae_strerror(st), eelsvae_last_error());
    exit(1);
}

/* Wall time, or with --cpu-clock the process's CPU time. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

static void *xmalloc(size_t bytes)
{
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        fprintf(stderr, "cvae-bench: out of memory (%zu bytes)\n", bytes);
        exit(1);
    }
    return p;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static void quiet_log(void *user, eelsvae_log_level level, const char *message)
{
    (void)user;
    (void)level;
    if (getenv("CVAE_BENCH_VERBOSE")) fprintf(stderr, "log: %s\n", message);
}

/* ---- the machine ------------------------------------------------------------ */

/* A "VmRSS"/"VmHWM" line of /proc/self/status, or a /proc/meminfo line, in MiB. */
static double proc_mib(const char *file, const char *key)
{
    FILE *f = fopen(file, "r");
    if (!f) return NAN;
    char line[256];
    double mib = NAN;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') mib = strtod(line + n + 1, NULL) / 1024.0;
    fclose(f);
    return mib;
}

/* Give freed heap memory back to the system (so that the resident set is
 * what is live), reset the peak resident set to the current one; returns the
 * current (MiB). */
static double reset_peak(void)
{
#ifdef __GLIBC__
    malloc_trim(0);
#endif
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
    return proc_mib("/proc/self/status", "VmRSS");
}

static double peak_mib(void)
{
    return proc_mib("/proc/self/status", "VmHWM");
}

static void print_load(const char *when)
{
    char line[128] = "unknown";
    FILE *f = fopen("/proc/loadavg", "r");
    if (f) {
        if (!fgets(line, sizeof line, f)) snprintf(line, sizeof line, "unknown\n");
        fclose(f);
    }
    double l1 = 0, l5 = 0, l15 = 0;
    if (sscanf(line, "%lf %lf %lf", &l1, &l5, &l15) == 3)
        printf("load average at %s: %.2f, %.2f, %.2f (1, 5, 15 min; %ld cores online)\n", when, l1, l5, l15,
               sysconf(_SC_NPROCESSORS_ONLN));
    else
        printf("load average at %s: unknown\n", when);
}

/* ---- files ------------------------------------------------------------------- */

static void path_in(char *out, size_t size, const char *dir, const char *name)
{
    if ((size_t)snprintf(out, size, "%s/%s", dir, name) >= size) {
        fprintf(stderr, "cvae-bench: path too long: %s/%s\n", dir, name);
        exit(1);
    }
}

static void write_raw(const char *dir, const char *name, const float *x, size_t n)
{
    char path[1200];
    path_in(path, sizeof path, dir, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "cvae-bench: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

static float *read_raw(const char *dir, const char *name, size_t n)
{
    char path[1200];
    path_in(path, sizeof path, dir, name);
    float *x = xmalloc(n * sizeof *x);
    FILE *f = fopen(path, "rb");
    if (!f || fread(x, sizeof *x, n, f) != n) {
        fprintf(stderr, "cvae-bench: cannot read %zu floats from %s\n", n, path);
        exit(1);
    }
    fclose(f);
    return x;
}

static void remove_in(const char *dir, const char *name)
{
    char path[1200];
    path_in(path, sizeof path, dir, name);
    remove(path);
}

static void json_arch(FILE *f, const eelsvae_model_options *o)
{
    fprintf(f, "{\"tile\": %zu, \"energy\": %zu, \"hidden\": %zu, \"latent\": %zu, \"beta\": %.17g, \"loss\": %d, "
               "\"convs\": [",
            o->tile, o->energy_channels, o->hidden, o->latent, o->beta, (int)o->loss);
    for (size_t i = 0; i < o->conv_layers; i++) {
        const eelsvae_conv_spec *c = &o->conv[i];
        fprintf(f, "%s{\"channels\": %zu, \"kernel\": [%zu, %zu, %zu], \"stride\": [%zu, %zu, %zu], "
                   "\"padding\": [%zu, %zu, %zu]}",
                i ? ", " : "", c->channels, c->kernel[0], c->kernel[1], c->kernel[2], c->stride[0], c->stride[1],
                c->stride[2], c->padding[0], c->padding[1], c->padding[2]);
    }
    fprintf(f, "]}");
}

/* The number after "key": in one line of json.dumps output, NAN if absent. */
static double json_number(const char *line, const char *key)
{
    char pattern[64];
    snprintf(pattern, sizeof pattern, "\"%s\": ", key);
    const char *p = strstr(line, pattern);
    if (!p) return NAN;
    p += strlen(pattern);
    if (!strncmp(p, "true", 4)) return 1.0;
    if (!strncmp(p, "false", 5)) return 0.0;
    return strtod(p, NULL);
}

/* ---- one phase's measurements ------------------------------------------------------ */

typedef struct measure {
    double seconds, peak, start; /* s; MiB at the peak and at the start */
} measure;

static measure unmeasured(void)
{
    return (measure){NAN, NAN, NAN};
}

/* ---- the FAST preset ------------------------------------------------------------------ */

typedef struct epoch_clock {
    double first_batch, epoch, loss; /* s since the loop started; mean loss per tile */
    size_t batches;
} epoch_clock;

static int on_progress(void *user, const eelsvae_train_progress *p)
{
    epoch_clock *c = user;
    if (p->batch == 1) c->first_batch = p->elapsed_seconds;
    if (p->epoch_done) {
        c->epoch = p->elapsed_seconds;
        c->loss = p->loss;
        c->batches = p->batches;
    }
    return 0;
}

/* Tile origins along an axis of n pixels as the trainer takes them:
 * 0, s, 2s, … ≤ n − T, plus n − T. */
static size_t axis_origins(size_t n, size_t tile, size_t stride, size_t *out)
{
    size_t last = n - tile, count = 0, o = 0;
    for (;;) {
        out[count++] = o;
        if (last - o < stride) break;
        o += stride;
    }
    if (o != last) out[count++] = last;
    return count;
}

/* The training tiles, (y, x) order, [n][T][T][E], cut from the prepared
 * cube when `cut` (else NULL: the count only). */
static float *training_tiles(const eelsvae_cube *prepared, size_t tile, size_t stride, int cut, size_t *n_tiles)
{
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(prepared, &ny, &nx, &ne);
    size_t *ys = xmalloc((ny + 1) * sizeof *ys), *xs = xmalloc((nx + 1) * sizeof *xs);
    size_t cy = axis_origins(ny, tile, stride, ys), cx = axis_origins(nx, tile, stride, xs);
    size_t row = tile * ne, per_tile = tile * row;
    float *t = cut ? xmalloc(cy * cx * per_tile * sizeof *t) : NULL;
    const float *data = eelsvae_cube_data_const(prepared);
    for (size_t a = 0; a < cy && cut; a++)
        for (size_t b = 0; b < cx; b++)
            for (size_t r = 0; r < tile; r++)
                memcpy(t + (a * cx + b) * per_tile + r * row, data + ((ys[a] + r) * nx + xs[b]) * ne,
                       row * sizeof *t);
    free(ys);
    free(xs);
    *n_tiles = cy * cx;
    return t;
}

typedef struct fast_result {
    measure train, prepare, infer;
    double train_prep, loop; /* s: the training's own preprocessing (replayed), the epoch's loop */
    epoch_clock clock;       /* the library's wall clock */
    size_t tiles_train, tiles_infer, batch, stride, infer_ny, infer_nx, ne;
    double clip, lr;
    eelsvae_model_options arch;
} fast_result;

/* Train one epoch, prepare and reconstruct; export what PyTorch needs. */
static void run_fast(const eelsvae_cube *raw, const char *dir, int export, fast_result *r)
{
    check(eelsvae_model_options_init(&r->arch, EELSVAE_PRESET_FAST), "FAST model options");
    eelsvae_model *model = NULL;
    check(eelsvae_model_create(&r->arch, 1, &model), "FAST model");
    if (export) write_raw(dir, "fast_init.f32", evae_cvae_params(model->net), model->layout.parameters);

    eelsvae_train_options t;
    check(eelsvae_train_options_init(&t, EELSVAE_PRESET_FAST), "FAST train options");
    t.epochs = 1;
    t.validation_fraction = 0.0;
    t.progress = on_progress;
    t.progress_user = &r->clock;
    r->batch = t.batch;
    r->stride = t.tile_stride ? t.tile_stride : r->arch.tile;
    r->clip = t.clip_norm;
    r->lr = t.learning_rate;
    const eelsvae_cube *cubes[1] = {raw};

    /* Replay the preprocessing that eelsvae_model_train does before its
     * loop (crop, blur, percentiles, scaling, filters) to time it alone. */
    eelsvae_preprocess_options chain;
    check(eelsvae_preprocess_options_init(&chain, EELSVAE_PRESET_FAST), "FAST preprocessing");
    eelsvae_cube *replay = NULL;
    double t0 = now();
    check(evae_model_crop(&r->arch, raw, NAN, "replayed crop", &replay, NULL), "replayed crop");
    check(eelsvae_cube_preprocess(replay, &chain, NULL, NULL), "replayed preprocessing");
    r->train_prep = now() - t0;
    eelsvae_cube_free(replay);

    r->train.start = reset_peak();
    t0 = now();
    check(eelsvae_model_train(model, cubes, NULL, 1, &t), "FAST training epoch");
    r->train.seconds = now() - t0;
    r->train.peak = peak_mib();
    /* The loop alone: the library's clock, which is wall time; for CPU time
     * the call's less the replayed preprocessing (the tile list and the net's
     * creation stay in: they are small). */
    r->loop = bench_clock == CLOCK_MONOTONIC ? r->clock.epoch : r->train.seconds - r->train_prep;

    eelsvae_cube *prepared = NULL, *recon = NULL;
    r->prepare.start = reset_peak();
    t0 = now();
    check(eelsvae_model_prepare(model, raw, &prepared), "prepare");
    r->prepare.seconds = now() - t0;
    r->prepare.peak = peak_mib();
    r->infer.start = reset_peak(); /* PyTorch's inference, too, starts from the prepared cube */
    t0 = now();
    check(eelsvae_model_reconstruct(model, prepared, 0, &recon), "reconstruct");
    r->infer.seconds = now() - t0;
    r->infer.peak = peak_mib();

    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(prepared, &ny, &nx, &ne);
    r->ne = ne;
    check(eelsvae_tiling(ny, nx, r->arch.tile, 0, &r->infer_ny, &r->infer_nx), "tiling");
    r->tiles_infer = r->infer_ny * r->infer_nx;
    float *train = training_tiles(prepared, r->arch.tile, r->stride, export, &r->tiles_train);
    size_t per_tile = r->arch.tile * r->arch.tile * ne;
    if (export) {
        write_raw(dir, "fast_trained.f32", evae_cvae_params(model->net), model->layout.parameters);
        write_raw(dir, "fast_prepared.f32", eelsvae_cube_data_const(prepared), ny * nx * ne);
        write_raw(dir, "fast_recon.f32", eelsvae_cube_data_const(recon), ny * nx * ne);
        write_raw(dir, "fast_train_tiles.f32", train, r->tiles_train * per_tile);
        float *infer = xmalloc(r->tiles_infer * per_tile * sizeof *infer);
        check(eelsvae_cube_to_tiles(prepared, r->arch.tile, 0, infer, r->tiles_infer * per_tile), "inference tiles");
        write_raw(dir, "fast_infer_tiles.f32", infer, r->tiles_infer * per_tile);
        free(infer);
    }
    free(train);
    eelsvae_cube_free(recon);
    eelsvae_cube_free(prepared);
    eelsvae_model_free(model);
}

/* ---- the PAPER preset ---------------------------------------------------------------------- */

/* PAPER_BATCH tiles of the paper's energy range: a 2 × 2-tile crop from the
 * middle of the scan, cut to the paper model's channels and preprocessed
 * with the paper's chain. */
static float *paper_tiles(const eelsvae_cube *raw, const eelsvae_model_options *arch)
{
    size_t ny = 0, nx = 0, ne = 0, side = 2 * arch->tile;
    eelsvae_cube_shape(raw, &ny, &nx, &ne);
    if (ny < side || nx < side) {
        fprintf(stderr, "cvae-bench: the paper step needs a scan of at least %zu x %zu\n", side, side);
        exit(2);
    }
    eelsvae_cube *crop = NULL, *window = NULL;
    check(eelsvae_cube_crop(raw, (ny - side) / 2, (nx - side) / 2, side, side, &crop), "paper crop");
    check(evae_model_crop(arch, crop, NAN, "paper crop", &window, NULL), "paper energy range");
    eelsvae_preprocess_options p;
    check(eelsvae_preprocess_options_init(&p, EELSVAE_PRESET_PAPER), "paper preprocessing");
    check(eelsvae_cube_preprocess(window, &p, NULL, NULL), "paper preprocessing");
    size_t n = PAPER_BATCH * arch->tile * arch->tile * arch->energy_channels;
    float *tiles = xmalloc(n * sizeof *tiles);
    check(eelsvae_cube_to_tiles(window, arch->tile, 0, tiles, n), "paper tiles");
    eelsvae_cube_free(window);
    eelsvae_cube_free(crop);
    return tiles;
}

typedef struct step_times {
    double total, forward_backward, clip, adam; /* s */
} step_times;

typedef struct paper_result {
    measure step;         /* seconds: the first step; memory: creation and every step */
    step_times first, last; /* the first and the last of --paper-steps */
    double create, loss;  /* s to create the net, initialise it and allocate Adam's moments; first loss */
    int ran;
    char why[256]; /* when it did not run */
} paper_result;

/* In the child: create the training net, time the steps, write paper_ours.txt.
 * Adam's moments come from calloc, untouched, as PyTorch creates its state in
 * the first step: both first steps pay for first touching their memory. */
static int paper_child(const args *a)
{
    eelsvae_model_options arch;
    check(eelsvae_model_options_init(&arch, EELSVAE_PRESET_PAPER), "PAPER model options");
    eelsvae_train_options t;
    check(eelsvae_train_options_init(&t, EELSVAE_PRESET_PAPER), "PAPER train options");
    size_t per_tile = arch.tile * arch.tile * arch.energy_channels;
    float *x = read_raw(a->paper_child, "paper_tiles.f32", PAPER_BATCH * per_tile);

    paper_result r;
    memset(&r, 0, sizeof r);
    r.step.start = reset_peak();
    double t0 = now();
    evae_cvae *net = NULL;
    check(evae_cvae_create(&arch, PAPER_BATCH, true, &net), "PAPER training net");
    evae_cvae_init_params(net, 1);
    size_t n = evae_cvae_param_count(net);
    float *m = calloc(n, sizeof *m), *v = calloc(n, sizeof *v);
    if (!m || !v) {
        fprintf(stderr, "cvae-bench: no memory for Adam's moments (%zu parameters)\n", n);
        return 1;
    }
    evae_adam adam;
    evae_adam_init(&adam, t.learning_rate);
    r.create = now() - t0;
    for (size_t s = 0; s < a->paper_steps; s++) {
        evae_rng rng;
        evae_rng_seed(&rng, 1, s);
        evae_cvae_losses l;
        double s0 = now();
        check(evae_cvae_forward_backward(net, x, PAPER_BATCH, NULL, &rng, &l), "PAPER forward/backward");
        double s1 = now();
        evae_clip_grad_norm(evae_cvae_grads(net), n, t.clip_norm > 0.0 ? t.clip_norm : INFINITY);
        double s2 = now();
        check(evae_adam_step(&adam, evae_cvae_params(net), evae_cvae_grads(net), m, v, n), "Adam");
        double s3 = now();
        r.last = (step_times){s3 - s0, s1 - s0, s2 - s1, s3 - s2};
        if (s == 0) r.first = r.last, r.loss = l.loss;
    }
    r.step.seconds = r.first.total;
    r.step.peak = peak_mib();
    char path[1200];
    path_in(path, sizeof path, a->paper_child, "paper_ours.txt");
    FILE *f = fopen(path, "w");
    if (!f) return 1;
    fprintf(f, "%.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g %.9g\n", r.step.peak, r.step.start,
            r.create, r.loss, r.first.total, r.first.forward_backward, r.first.clip, r.first.adam, r.last.total,
            r.last.forward_backward, r.last.clip, r.last.adam, (double)n);
    fclose(f);
    free(m);
    free(v);
    free(x);
    evae_cvae_free(net);
    return 0;
}

/* Enough memory for a paper step? The estimate of the library, plus a margin. */
static int paper_fits(char *why, size_t size)
{
    eelsvae_model_options arch;
    check(eelsvae_model_options_init(&arch, EELSVAE_PRESET_PAPER), "PAPER model options");
    eelsvae_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    check(eelsvae_model_estimate_memory(&arch, PAPER_BATCH, &e), "PAPER memory estimate");
    double need = (double)e.total_bytes / (1024.0 * 1024.0) * 1.1;
    double have = proc_mib("/proc/meminfo", "MemAvailable");
    if (isnan(have) || need <= have) return 1;
    snprintf(why, size, "needs about %.1f GiB, %.1f GiB available", need / 1024.0, have / 1024.0);
    return 0;
}

/* Killed by SIGKILL (the OOM killer's signal), directly or as the shell reports it. */
static int killed(int status)
{
    return (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ||
           (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGKILL);
}

static void run_paper_ours(const args *a, const char *dir, paper_result *r)
{
    char exe[1024];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) {
        snprintf(r->why, sizeof r->why, "cannot find this program (/proc/self/exe)");
        return;
    }
    exe[len] = '\0';
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "'%s' --paper-child '%s' --threads %d --paper-steps %zu%s", exe, dir, a->threads,
             a->paper_steps, a->cpu_clock ? " --cpu-clock" : "");
    fflush(stdout);
    int rc = system(cmd);
    char path[1200];
    path_in(path, sizeof path, dir, "paper_ours.txt");
    FILE *f = fopen(path, "r");
    double params = 0.0;
    if (rc != 0 || !f ||
        fscanf(f, "%lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf %lf", &r->step.peak, &r->step.start, &r->create,
               &r->loss, &r->first.total, &r->first.forward_backward, &r->first.clip, &r->first.adam, &r->last.total,
               &r->last.forward_backward, &r->last.clip, &r->last.adam, &params) != 13) {
        snprintf(r->why, sizeof r->why, "our paper step failed (status %d%s)", rc,
                 killed(rc) ? ", killed: out of memory?" : "");
        if (f) fclose(f);
        return;
    }
    fclose(f);
    remove(path);
    r->step.seconds = r->first.total;
    r->ran = 1;
}

/* ---- PyTorch ---------------------------------------------------------------------------------- */

static void write_config(const char *dir, const args *a, const fast_result *fr, const eelsvae_model_options *paper,
                         double paper_clip, double paper_lr)
{
    char path[1200];
    path_in(path, sizeof path, dir, "config.json");
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "cvae-bench: cannot write %s\n", path);
        exit(1);
    }
    fprintf(f, "{\"threads\": %d,\n \"fast\": {\"arch\": ", a->threads);
    json_arch(f, &fr->arch);
    fprintf(f,
            ",\n  \"batch\": %zu, \"lr\": %.17g, \"clip\": %.17g, \"seed\": 1, \"n_train\": %zu, \"n_infer\": %zu, "
            "\"infer_batch\": 8,\n  \"prepared_shape\": [%zu, %zu, %zu],\n",
            fr->batch, fr->lr, fr->clip, fr->tiles_train, fr->tiles_infer, a->size, a->size, fr->ne);
    const char *files[6][2] = {{"init_params", "fast_init.f32"},         {"trained_params", "fast_trained.f32"},
                               {"prepared", "fast_prepared.f32"},        {"ours_recon", "fast_recon.f32"},
                               {"train_tiles", "fast_train_tiles.f32"}, {"infer_tiles", "fast_infer_tiles.f32"}};
    for (size_t i = 0; i < 6; i++) fprintf(f, "  \"%s\": \"%s/%s\"%s\n", files[i][0], dir, files[i][1], i < 5 ? "," : "");
    fprintf(f, " },\n \"paper\": {\"arch\": ");
    json_arch(f, paper);
    fprintf(f, ",\n  \"n_tiles\": %d, \"lr\": %.17g, \"clip\": %.17g, \"steps\": %zu, \"tiles\": \"%s/paper_tiles.f32\"}\n}\n",
            PAPER_BATCH, paper_lr, paper_clip, a->paper_steps, dir);
    fclose(f);
}

typedef struct torch_result {
    measure train, infer, paper;
    double train_loss, infer_diff, same_tiles, paper_later, paper_create;
    int have_train, have_infer, have_paper;
    char why_train[160], why_infer[160], why_paper[256]; /* when a phase did not run */
} torch_result;

/* Run bench/cvae_torch.py for one phase (fast-train, fast-infer, paper) in a
 * process of its own; parse its RESULT line. Returns 1 when it ran. */
static int run_torch(const args *a, const char *dir, const char *phase, torch_result *t, char *why, size_t why_size)
{
    const char *src = getenv("EELSVAE_SOURCE_DIR");
    if (!src || !*src) src = EELSVAE_SOURCE_DIR;
    char result[1200], cmd[4096], threads[16];
    path_in(result, sizeof result, dir, "torch.jsonl");
    remove(result);
    snprintf(threads, sizeof threads, "%d", a->threads);
    setenv("OMP_NUM_THREADS", threads, 1);
    snprintf(cmd, sizeof cmd, "'%s' '%s/bench/cvae_torch.py' --config '%s/config.json' --phase %s --result '%s'%s",
             a->python, src, dir, phase, result, a->cpu_clock ? " --cpu-clock" : "");
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        if (WIFEXITED(rc) && WEXITSTATUS(rc) == 3)
            snprintf(why, why_size, "PyTorch or NumPy not installed for %s", a->python);
        else
            snprintf(why, why_size, "%s exited with status %d%s", a->python, rc,
                     killed(rc) ? " (killed: out of memory?)" : "");
        return 0;
    }
    FILE *f = fopen(result, "r");
    char line[4096];
    if (!f || !fgets(line, sizeof line, f)) {
        snprintf(why, why_size, "no result from bench/cvae_torch.py");
        if (f) fclose(f);
        return 0;
    }
    fclose(f);
    remove(result);
    measure m = {json_number(line, "seconds"), json_number(line, "peak_mib"), json_number(line, "start_mib")};
    if (strstr(line, "\"fast-train\"")) {
        t->train = m;
        t->train_loss = json_number(line, "mean_loss");
    } else if (strstr(line, "\"fast-infer\"")) {
        t->infer = m;
        t->infer_diff = json_number(line, "max_abs_diff");
        t->same_tiles = json_number(line, "same_tiles");
    } else if (strstr(line, "\"paper-step\"")) {
        t->paper = m;
        t->paper_create = json_number(line, "create_seconds");
        t->paper_later = m.seconds;
        const char *steps = strstr(line, "\"step_seconds\": [");
        const char *end = steps ? strchr(steps, ']') : NULL;
        if (end) { /* the last entry of the list */
            const char *p = end;
            while (p > steps && p[-1] != '[' && p[-1] != ' ') p--;
            if (p < end) t->paper_later = strtod(p, NULL);
        }
    } else {
        snprintf(why, why_size, "unexpected result from bench/cvae_torch.py");
        return 0;
    }
    return 1;
}

/* The library's own estimate of a training net's memory, in MiB. */
static double estimate_mib(const eelsvae_model_options *arch, size_t batch)
{
    eelsvae_memory_estimate e;
    memset(&e, 0, sizeof e);
    e.struct_size = sizeof e;
    check(eelsvae_model_estimate_memory(arch, batch, &e), "memory estimate");
    return (double)e.total_bytes / 1048576.0;
}

/* ---- the table ------------------------------------------------------------------------------------ */

static void print_row(const char *phase, const measure *ours, const measure *torch)
{
    double ours_mem = ours->peak - ours->start, torch_mem = torch->peak - torch->start;
    double ratio = ours->seconds / torch->seconds;
    printf("%-22s %10.3f %10.3f %8.3f %10.0f %10.0f   %s%s\n", phase, ours->seconds, torch->seconds, ratio, ours_mem,
           torch_mem, isnan(ratio) ? "" : ratio <= TARGET_RATIO ? "time ok" : "time MISSED",
           isnan(ratio) ? "" : ours_mem <= torch_mem ? ", memory ok" : ", memory MISSED");
}

static void print_table(const fast_result *fr, const paper_result *pr, const torch_result *tr, size_t steps)
{
    measure loop = fr->train; /* the network's epoch alone */
    loop.seconds = fr->loop;
    measure none = unmeasured();
    const measure *train = tr->have_train ? &tr->train : &none;
    printf("\n%-22s %10s %10s %8s %10s %10s\n", "phase", "ours s", "torch s", "ratio", "ours MiB", "torch MiB");
    print_row("fast epoch (loop)", &loop, train);
    print_row("fast epoch (with prep)", &fr->train, train);
    print_row("fast inference", &fr->infer, tr->have_infer ? &tr->infer : &none);
    if (pr->ran || tr->have_paper) {
        const measure *ours = pr->ran ? &pr->step : &none, *torch = tr->have_paper ? &tr->paper : &none;
        print_row(steps > 1 ? "paper step 1 (cold)" : "paper step", ours, torch);
        if (steps > 1) { /* the last step: what every step of a long training costs */
            measure ours_last = *ours, torch_last = *torch;
            ours_last.seconds = pr->ran ? pr->last.total : NAN;
            torch_last.seconds = tr->have_paper ? tr->paper_later : NAN;
            char label[48];
            snprintf(label, sizeof label, "paper step %zu (warm)", steps);
            print_row(label, &ours_last, &torch_last);
        }
    }
    printf("(seconds: %s; ratio: ours / PyTorch, target <= %.2f;\n"
           " MiB: peak resident memory above the phase's start, both sides)\n",
           bench_clock == CLOCK_MONOTONIC ? "wall clock" : "CPU time of the process, all threads", TARGET_RATIO);
    printf("(\"with prep\": the whole eelsvae_model_train call, crop + blur + percentiles + tiles + net creation;\n"
           " \"loop\": without them; PyTorch starts from the prepared tiles)\n");
}

static void print_work(const fast_result *fr, const args *a)
{
    const eelsvae_model_options *o = &fr->arch;
    printf("\nwork (identical on both sides):\n");
    printf("  fast epoch:     %zu tiles of %zu x %zu x %zu (stride %zu on a %zu x %zu scan), batch %zu -> %zu steps,\n"
           "                  Adam lr %g, clip %g; convs %zu-%zu-%zu-%zu, hidden %zu, latent %zu\n",
           fr->tiles_train, o->tile, o->tile, o->energy_channels, fr->stride, a->size, a->size, fr->batch,
           (fr->tiles_train + fr->batch - 1) / fr->batch, fr->lr, fr->clip, o->conv[0].channels, o->conv[1].channels,
           o->conv[2].channels, o->conv[3].channels, o->hidden, o->latent);
    printf("  fast inference: %zu tiles (%zu x %zu) of %zu x %zu x %zu, batches of 8, z = mu, overlaps averaged\n",
           fr->tiles_infer, fr->infer_ny, fr->infer_nx, o->tile, o->tile, o->energy_channels);
    eelsvae_model_options paper;
    check(eelsvae_model_options_init(&paper, EELSVAE_PRESET_PAPER), "PAPER model options");
    if (a->paper)
        printf("  paper step:     %d tiles of %zu x %zu x %zu, forward + backward + clip + Adam\n", PAPER_BATCH,
               paper.tile, paper.tile, paper.energy_channels);
    printf("library's memory estimate of training: FAST batch %zu %.0f MiB, PAPER batch %d %.0f MiB\n", fr->batch,
           estimate_mib(o, fr->batch), PAPER_BATCH, estimate_mib(&paper, PAPER_BATCH));
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    if (a.cpu_clock) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
    check(eelsvae_set_threads(a.threads), "threads");
    eelsvae_set_log_callback(quiet_log, NULL);
    if (a.paper_child) return paper_child(&a);

    print_load("start");
    char dir[1024];
    bench_work_dir("cvae-bench", a.keep, dir, sizeof dir);

    double t0 = now();
    eelsvae_synth_options so;
    check(eelsvae_synth_options_init(&so), "synth options");
    so.ny = so.nx = a.size;
    eelsvae_cube *raw = NULL;
    check(eelsvae_synth_generate(&so, &raw, NULL), "synthetic SI");
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(raw, &ny, &nx, &ne);
    printf("synthetic SI: %zu x %zu x %zu (%.0f MiB), made in %.2f s; %d threads\n", ny, nx, ne,
           (double)(ny * nx * ne) * sizeof(float) / 1048576.0, now() - t0, eelsvae_threads());

    int export = a.peers || a.keep;
    fast_result fr;
    memset(&fr, 0, sizeof fr);
    run_fast(raw, dir, export, &fr);
    printf("ours, fast epoch: %.3f s in eelsvae_model_train, its preprocessing %.3f s (replayed) -> loop %.3f s;\n"
           "  by the library's wall clock: loop %.3f s, first batch %.3f s, %zu batches, mean loss %.6g\n"
           "ours, inference: prepare %.3f s, reconstruct %.3f s\n",
           fr.train.seconds, fr.train_prep, fr.loop, fr.clock.epoch, fr.clock.first_batch, fr.clock.batches,
           fr.clock.loss, fr.prepare.seconds, fr.infer.seconds);

    eelsvae_model_options paper;
    check(eelsvae_model_options_init(&paper, EELSVAE_PRESET_PAPER), "PAPER model options");
    eelsvae_train_options paper_train;
    check(eelsvae_train_options_init(&paper_train, EELSVAE_PRESET_PAPER), "PAPER train options");
    if (a.paper) {
        float *tiles = paper_tiles(raw, &paper);
        write_raw(dir, "paper_tiles.f32", tiles, PAPER_BATCH * paper.tile * paper.tile * paper.energy_channels);
        free(tiles);
    }
    eelsvae_cube_free(raw); /* nothing big stays while the others run */
    raw = NULL;
    if (export) write_config(dir, &a, &fr, &paper, paper_train.clip_norm, paper_train.learning_rate);

    torch_result tr;
    memset(&tr, 0, sizeof tr);
    tr.train = tr.infer = tr.paper = unmeasured();
    tr.train_loss = tr.infer_diff = tr.same_tiles = tr.paper_later = tr.paper_create = NAN;
    snprintf(tr.why_train, sizeof tr.why_train, "--no-peers");
    snprintf(tr.why_infer, sizeof tr.why_infer, "--no-peers");
    snprintf(tr.why_paper, sizeof tr.why_paper, "%s", a.paper ? "--no-peers" : "--skip-paper");
    if (a.peers) {
        tr.have_train = run_torch(&a, dir, "fast-train", &tr, tr.why_train, sizeof tr.why_train);
        /* a missing PyTorch fails alike in every phase: say it once */
        if (tr.have_train || !strstr(tr.why_train, "not installed"))
            tr.have_infer = run_torch(&a, dir, "fast-infer", &tr, tr.why_infer, sizeof tr.why_infer);
        else
            snprintf(tr.why_infer, sizeof tr.why_infer, "%s", tr.why_train);
    }

    paper_result pr;
    memset(&pr, 0, sizeof pr);
    pr.step = unmeasured();
    snprintf(pr.why, sizeof pr.why, "--skip-paper");
    if (a.paper) {
        pr.why[0] = '\0';
        if (paper_fits(pr.why, sizeof pr.why)) run_paper_ours(&a, dir, &pr);
        if (pr.ran) {
            printf("ours, paper: creation (net, initial weights, Adam's moments) %.3f s; first loss %.6g\n", pr.create,
                   pr.loss);
            printf("ours, paper step 1: %.3f s = forward + backward %.3f s + clip %.3f s + Adam %.3f s\n",
                   pr.first.total, pr.first.forward_backward, pr.first.clip, pr.first.adam);
        }
        if (pr.ran && a.paper_steps > 1)
            printf("ours, paper step %zu: %.3f s = forward + backward %.3f s + clip %.3f s + Adam %.3f s\n",
                   a.paper_steps, pr.last.total, pr.last.forward_backward, pr.last.clip, pr.last.adam);
        if (a.peers && (tr.have_train || !strstr(tr.why_train, "not installed"))) {
            if (paper_fits(tr.why_paper, sizeof tr.why_paper))
                tr.have_paper = run_torch(&a, dir, "paper", &tr, tr.why_paper, sizeof tr.why_paper);
        } else if (a.peers) {
            snprintf(tr.why_paper, sizeof tr.why_paper, "%s", tr.why_train);
        }
    }

    if (!a.keep) {
        const char *names[] = {"fast_init.f32",        "fast_trained.f32",     "fast_prepared.f32",
                               "fast_recon.f32",       "fast_train_tiles.f32", "fast_infer_tiles.f32",
                               "paper_tiles.f32",      "config.json"};
        for (size_t i = 0; i < sizeof names / sizeof *names; i++) remove_in(dir, names[i]);
        rmdir(dir);
    }

    print_work(&fr, &a);
    print_table(&fr, &pr, &tr, a.paper_steps);
    if (!tr.have_train) printf("skipped: PyTorch's fast epoch (%s)\n", tr.why_train);
    if (!tr.have_infer) printf("skipped: PyTorch's fast inference (%s)\n", tr.why_infer);
    if (a.paper && !pr.ran) printf("skipped: our paper step (%s)\n", pr.why);
    if (a.paper && !tr.have_paper) printf("skipped: PyTorch paper step (%s)\n", tr.why_paper);
    printf("\nabsolute peaks (MiB): fast epoch ours %.0f / torch %.0f; inference ours %.0f / torch %.0f",
           fr.train.peak, tr.train.peak, fr.infer.peak, tr.infer.peak);
    if (a.paper) printf("; paper step ours %.0f / torch %.0f", pr.step.peak, tr.paper.peak);
    printf("\n");
    if (tr.have_train)
        printf("check: mean epoch loss ours %.6g / torch %.6g (same start weights, different shuffles and eps)\n",
               fr.clock.loss, tr.train_loss);
    if (tr.have_infer)
        printf("check: inference tiles %s; max |ours - torch| of the reconstructed cube (our trained weights) %.3g\n",
               tr.same_tiles == 1.0 ? "identical" : "DIFFER", tr.infer_diff);
    if (tr.have_paper)
        printf("torch, paper: model + Adam creation %.3f s\n", tr.paper_create);
    print_load("end");
    return 0;
}
