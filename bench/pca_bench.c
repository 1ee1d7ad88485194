/* pca-bench: time libeelsvae's PCA fit + reconstruction on the default
 * synthetic spectrum image, and compare speed and agreement with HyperSpy,
 * scikit-learn and NumPy (bench/pca_peers.py, each optional).
 *
 * Prints one table: method, seconds (best of --reps), ratio (peer / ours)
 * and agreement (the smallest per-pixel Pearson correlation between the
 * method's reconstruction and NumPy's exact SVD reconstruction). Exits
 * non-zero when our agreement is below 0.9999. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include <eelsvae/eelsvae.h>

#include "bench_util.h"

#ifndef EELSVAE_SOURCE_DIR
#define EELSVAE_SOURCE_DIR "."
#endif

#define AGREEMENT_MIN 0.9999

typedef struct args {
    size_t ny, nx, components, reps, max_iterations;
    double tolerance;
    int threads, center, poisson, peers, simple_data;
    const char *python, *keep;
} args;

static void usage(const char *prog)
{
    printf("Usage: %s [options]\n"
           "Time PCA fit + reconstruction of the default synthetic SI and compare with\n"
           "HyperSpy, scikit-learn and NumPy (via bench/pca_peers.py).\n\n"
           "  --size N          scan of N x N pixels (default 192)\n"
           "  --components K    components (default 4)\n"
           "  --reps R          best of R runs (default 3)\n"
           "  --threads T       threads (default: all cores)\n"
           "  --tolerance X     the fit's convergence tolerance (default: the library's)\n"
           "  --max-iterations N  the fit's cap on passes (default: the library's)\n"
           "  --poisson         HyperSpy's Poisson normalisation (implies --no-center)\n"
           "  --no-center       do not subtract the mean spectrum\n"
           "  --simple-data     a low-rank + Poisson-noise cube instead of the synthetic SI\n"
           "  --no-peers        time our code only\n"
           "  --python PATH     interpreter for the peers (default /usr/bin/python3)\n"
           "  --keep DIR        write the cube and reconstructions to DIR and keep them\n",
           prog);
}

static args parse(int argc, char **argv)
{
    args a = {192, 192, 4, 3, 0, -1.0, 0, 1, 0, 1, 0, "/usr/bin/python3", NULL};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--size")) a.ny = a.nx = parse_size(o, v), i++;
        else if (!strcmp(o, "--components")) a.components = parse_size(o, v), i++;
        else if (!strcmp(o, "--reps")) a.reps = parse_size(o, v), i++;
        else if (!strcmp(o, "--threads")) a.threads = (int)parse_size(o, v), i++;
        else if (!strcmp(o, "--max-iterations")) a.max_iterations = parse_size(o, v), i++;
        else if (!strcmp(o, "--tolerance") && v) a.tolerance = atof(v), i++;
        else if (!strcmp(o, "--python") && v) a.python = v, i++;
        else if (!strcmp(o, "--keep") && v) a.keep = v, i++;
        else if (!strcmp(o, "--poisson")) a.poisson = 1, a.center = 0;
        else if (!strcmp(o, "--no-center")) a.center = 0;
        else if (!strcmp(o, "--simple-data")) a.simple_data = 1;
        else if (!strcmp(o, "--no-peers")) a.peers = 0;
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
    fprintf(stderr, "pca-bench: %s: %s: %s\n", what, eelsvae_strerror(st), eelsvae_last_error());
    exit(1);
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* ---- data ----------------------------------------------------------------- */

/* A low-rank + Poisson-noise cube: four smooth spectra mixed by smooth maps. */
static eelsvae_cube *simple_cube(size_t ny, size_t nx)
{
    const size_t ne = 1334;
    eelsvae_cube *c = NULL;
    check(eelsvae_cube_create(ny, nx, ne, &c), "cube");
    check(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 420.0, 0.3, "eV"), "axis");
    float *x = eelsvae_cube_data(c);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    for (size_t y = 0; y < ny; y++)
        for (size_t i = 0; i < nx; i++) {
            double u = (double)y / (double)ny, v = (double)i / (double)nx;
            double w[4] = {1.0 + 0.5 * v, 0.3 + 0.2 * sin(6.0 * u), 0.2 + 0.1 * cos(5.0 * v + 3.0 * u), 0.5 * u * v};
            for (size_t e = 0; e < ne; e++) {
                double ev = 420.0 + 0.3 * (double)e;
                double mean = 1000.0 * w[0] * pow(ev / 420.0, -3.5) +
                              300.0 * w[1] * (ev > 532.0 ? pow(ev / 532.0, -2.0) : 0.0) +
                              400.0 * w[2] * exp(-0.5 * pow((ev - 709.5) / 1.5, 2.0)) +
                              2000.0 * w[3] * exp(-0.5 * pow((ev - 722.5) / 3.0, 2.0));
                /* Poisson noise by its normal approximation (means ≥ ~50 here) */
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                double u1 = ((double)(s >> 11) + 0.5) * 0x1.0p-53;
                s ^= s << 13, s ^= s >> 7, s ^= s << 17;
                double u2 = (double)(s >> 11) * 0x1.0p-53;
                double g = sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
                double count = mean + sqrt(mean) * g;
                x[(y * nx + i) * ne + e] = (float)(count > 0.0 ? count : 0.0);
            }
        }
    return c;
}

/* The default synthetic SI (eelsvae_synth_generate with its defaults, at
 * the requested scan size), or with --simple-data the cube above. */
static eelsvae_cube *make_cube(const args *a)
{
    if (a->simple_data) return simple_cube(a->ny, a->nx);
    eelsvae_synth_options so;
    check(eelsvae_synth_options_init(&so), "synth options");
    so.ny = a->ny;
    so.nx = a->nx;
    eelsvae_cube *c = NULL;
    check(eelsvae_synth_generate(&so, &c, NULL), "synthetic SI");
    return c;
}

static void write_raw(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(x, sizeof *x, n, f) != n || fclose(f) != 0) {
        fprintf(stderr, "pca-bench: cannot write %s: %s\n", path, strerror(errno));
        exit(1);
    }
}

/* ---- timing ours ---------------------------------------------------------- */

static char last_log[512];

static void remember_log(void *user, eelsvae_log_level level, const char *message)
{
    (void)user;
    (void)level;
    if (getenv("PCA_BENCH_VERBOSE")) fprintf(stderr, "log: %s\n", message);
    if (strstr(message, "PCA fit") && !strstr(message, "pass ")) snprintf(last_log, sizeof last_log, "%s", message);
}

/* Peak resident memory since the last reset, in MiB (Linux; NAN elsewhere). */
static double peak_rss_mib(int reset)
{
    FILE *f = fopen(reset ? "/proc/self/clear_refs" : "/proc/self/status", reset ? "w" : "r");
    if (!f) return NAN;
    double mib = NAN;
    if (reset) {
        fputs("5", f); /* resets VmHWM to the current RSS */
    } else {
        char line[256];
        while (fgets(line, sizeof line, f))
            if (!strncmp(line, "VmHWM:", 6)) mib = strtod(line + 6, NULL) / 1024.0;
    }
    fclose(f);
    return mib;
}

typedef struct timing {
    double total, fit, reconstruct;
} timing;

static eelsvae_cube *time_ours(const args *a, const eelsvae_cube *cube, timing *best)
{
    eelsvae_pca_options o;
    check(eelsvae_pca_options_init(&o), "PCA options");
    o.components = a->components;
    o.center = a->center;
    o.poisson_normalize = a->poisson;
    o.trim_fraction = 0.0; /* the plain fit the peers compute */
    if (a->tolerance >= 0.0) o.tolerance = a->tolerance;
    if (a->max_iterations) o.max_iterations = a->max_iterations;
    eelsvae_cube *recon = NULL;
    best->total = best->fit = best->reconstruct = INFINITY;
    for (size_t r = 0; r < a->reps; r++) {
        eelsvae_cube_free(recon); /* never more than the cube and one reconstruction */
        recon = NULL;
        eelsvae_pca *pca = NULL;
        double t0 = now();
        check(eelsvae_pca_fit(cube, &o, &pca), "PCA fit");
        double t1 = now();
        check(eelsvae_pca_reconstruct(pca, cube, &recon), "PCA reconstruction");
        double t2 = now();
        eelsvae_pca_free(pca);
        if (t2 - t0 < best->total) *best = (timing){t2 - t0, t1 - t0, t2 - t1};
    }
    return recon;
}

/* ---- peers ---------------------------------------------------------------- */

typedef struct peer {
    char name[32];
    double seconds, agreement;
} peer;

static size_t run_peers(const args *a, const char *dir, size_t ne, peer *peers, size_t max)
{
    const char *src = getenv("EELSVAE_SOURCE_DIR");
    if (!src || !*src) src = EELSVAE_SOURCE_DIR;
    char cmd[4096], result[1100];
    snprintf(result, sizeof result, "%s/peers.tsv", dir);
    snprintf(cmd, sizeof cmd,
             "'%s' '%s/bench/pca_peers.py' --cube '%s/cube.f32' --ours '%s/ours.f32' --shape %zu %zu %zu "
             "--components %zu --center %d --poisson %d --reps %zu --result '%s'",
             a->python, src, dir, dir, a->ny, a->nx, ne, a->components, a->center, a->poisson, a->reps, result);
    fflush(stdout);
    int rc = system(cmd);
    if (rc != 0) {
        printf("skipped: the peers (%s exited with status %d)\n", a->python, rc);
        return 0;
    }
    FILE *f = fopen(result, "r");
    if (!f) return 0;
    size_t n = 0;
    while (n < max && fscanf(f, "%31s %lf %lf", peers[n].name, &peers[n].seconds, &peers[n].agreement) == 3) n++;
    fclose(f);
    remove(result);
    return n;
}

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    check(eelsvae_set_threads(a.threads), "threads");
    eelsvae_set_log_callback(remember_log, NULL);

    char dir[1024];
    bench_work_dir("pca-bench", a.keep, dir, sizeof dir);

    double t0 = now();
    eelsvae_cube *cube = make_cube(&a);
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(cube, &ny, &nx, &ne);
    size_t samples = ny * nx * ne;
    double cube_mib = (double)samples * sizeof(float) / (1024.0 * 1024.0);
    printf("cube: %zu x %zu x %zu (%s, %.0f MiB), made in %.2f s; %d threads\n", ny, nx, ne,
           a.simple_data ? "low rank + Poisson noise" : "synthetic SI, default options", cube_mib, now() - t0,
           eelsvae_threads());

    peak_rss_mib(1);
    double rss_before = peak_rss_mib(0);
    timing ours;
    eelsvae_cube *recon = time_ours(&a, cube, &ours);
    double rss_peak = peak_rss_mib(0);
    printf("ours: fit %.3f s + reconstruct %.3f s = %.3f s (best of %zu); %s\n", ours.fit, ours.reconstruct,
           ours.total, a.reps, last_log);
    if (isfinite(rss_peak))
        printf("memory: peak resident %.0f MiB, %.0f MiB above the cube (one cube = %.0f MiB)\n", rss_peak,
               rss_peak - rss_before, cube_mib);

    char path[1200];
    peer peers[8];
    size_t n = 0;
    if (a.peers || a.keep) {
        snprintf(path, sizeof path, "%s/cube.f32", dir);
        write_raw(path, eelsvae_cube_data_const(cube), samples);
        snprintf(path, sizeof path, "%s/ours.f32", dir);
        write_raw(path, eelsvae_cube_data_const(recon), samples);
    }
    if (a.peers) {
        eelsvae_cube_free(recon);
        eelsvae_cube_free(cube);
        recon = cube = NULL;
        n = run_peers(&a, dir, ne, peers, 8);
        if (!a.keep) {
            snprintf(path, sizeof path, "%s/cube.f32", dir);
            remove(path);
            snprintf(path, sizeof path, "%s/ours.f32", dir);
            remove(path);
        }
    }
    if (!a.keep) rmdir(dir);
    eelsvae_cube_free(recon);
    eelsvae_cube_free(cube);

    double agreement = NAN;
    printf("\n%-12s %10s %8s %12s\n", "method", "seconds", "ratio", "agreement");
    for (size_t i = 0; i < n; i++)
        if (!strcmp(peers[i].name, "ours")) agreement = peers[i].agreement;
    printf("%-12s %10.3f %8.2f %12.9f\n", "ours", ours.total, 1.0, agreement);
    for (size_t i = 0; i < n; i++)
        if (strcmp(peers[i].name, "ours"))
            printf("%-12s %10.3f %8.2f %12.9f\n", peers[i].name, peers[i].seconds, peers[i].seconds / ours.total,
                   peers[i].agreement);
    printf("(agreement: smallest per-pixel PCC with NumPy's exact SVD reconstruction; ratio: peer / ours)\n");
    if (isnan(agreement)) {
        printf("agreement not measured (no peers)\n");
        return 0;
    }
    if (agreement < AGREEMENT_MIN) {
        printf("FAIL: agreement %.6f < %.4f\n", agreement, AGREEMENT_MIN);
        return 1;
    }
    return 0;
}
