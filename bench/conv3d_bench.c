/* conv3d-bench: time the conv3d engines (lib/nn/conv3d*.c) on the eight
 * convolution layers of the 3D-CVAE, forward and backward, against PyTorch
 * (bench/conv3d_torch.py, run through /usr/bin/python3 unless --no-torch;
 * skipped with a message where it cannot run) and, optionally, a naive
 * direct loop.
 *
 * Prints one row per layer: the engine (FFT tile shape, GEMM or GEMM+vec,
 * direct), milliseconds per forward and per backward (dx, dw, db; the first
 * layer skips dx, as a network does), where the engine's time goes, the
 * naive loop's time and PyTorch's, and the ratio ours / PyTorch for
 * forward + backward; then the totals and their ratio. Defaults: the FAST
 * preset (batch 16, tile 24 × 24 × 160, channels 8/16/32/64), 2 threads.
 *
 * On a machine shared with others, wall times of two threads swing with the
 * load; --threads 1 --cpu-clock (for both us and PyTorch) compares CPU time
 * instead. Engines' columns: kern% kernel spectra, fft% transforms (FFT) or
 * phase tensor and grid fills (GEMM), gemm% the channel mixing or the
 * forward/adjoint products, inv% inverse transforms, crops, depth-to-space,
 * wgt% weight and bias gradients. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <eelsvae/eelsvae.h>

#include "bench_util.h"

#include "nn/conv3d_impl.h"

#ifndef EELSVAE_SOURCE_DIR
#define EELSVAE_SOURCE_DIR "."
#endif

/* Wall time, or with --cpu-clock the process's CPU time (all threads
 * summed): on a machine shared with others, a one-thread run's CPU time
 * is the time it would take alone, give or take cache effects. */
static clockid_t bench_clock = CLOCK_MONOTONIC;

typedef struct args {
    size_t batch, tile, energy, reps, channels[4];
    int threads, naive, torch, keep, engine;
    const char *python;
} args;

static void usage(const char *prog)
{
    printf("Usage: %s [options]\n"
           "Time forward and backward of the 3D-CVAE's convolution layers.\n\n"
           "  --batch N         items per call (default 16)\n"
           "  --tile T          spatial tile T x T (default 24)\n"
           "  --energy E        energy channels of the input (default 160; a multiple of 16)\n"
           "  --channels a,b,c,d  c1..c4 (default 8,16,32,64)\n"
           "  --reps R          best of R runs (default 5)\n"
           "  --threads T       threads (default 2)\n"
           "  --naive           also time the naive direct loop (slow)\n"
           "  --keep            keep the forward's input spectra for the backward\n"
           "  --engine K        force an engine: 1 FFT, 2 direct, 3 GEMM, 4 GEMM + vector kernel\n"
           "                    (default: the cost model's)\n"
           "  --cpu-clock       time with the process's CPU time (for --threads 1 on a busy machine)\n"
           "  --no-torch        skip PyTorch (bench/conv3d_torch.py)\n"
           "  --python PATH     interpreter for PyTorch (default /usr/bin/python3)\n",
           prog);
}

static args parse(int argc, char **argv)
{
    args a = {16, 24, 160, 5, {8, 16, 32, 64}, 2, 0, 1, 0, 0, "/usr/bin/python3"};
    for (int i = 1; i < argc; i++) {
        const char *o = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(o, "--batch")) a.batch = parse_size(o, v), i++;
        else if (!strcmp(o, "--tile")) a.tile = parse_size(o, v), i++;
        else if (!strcmp(o, "--energy")) a.energy = parse_size(o, v), i++;
        else if (!strcmp(o, "--reps")) a.reps = parse_size(o, v), i++;
        else if (!strcmp(o, "--threads")) a.threads = (int)parse_size(o, v), i++;
        else if (!strcmp(o, "--channels") && v) {
            if (sscanf(v, "%zu,%zu,%zu,%zu", &a.channels[0], &a.channels[1], &a.channels[2], &a.channels[3]) != 4) {
                fprintf(stderr, "--channels needs four numbers a,b,c,d\n");
                exit(2);
            }
            i++;
        } else if (!strcmp(o, "--no-naive")) a.naive = 0;
        else if (!strcmp(o, "--naive")) a.naive = 1;
        else if (!strcmp(o, "--torch")) a.torch = 1;
        else if (!strcmp(o, "--no-torch")) a.torch = 0;
        else if (!strcmp(o, "--keep")) a.keep = 1;
        else if (!strcmp(o, "--engine")) a.engine = (int)parse_size(o, v), i++;
        else if (!strcmp(o, "--cpu-clock")) bench_clock = CLOCK_PROCESS_CPUTIME_ID;
        else if (!strcmp(o, "--python") && v) a.python = v, i++;
        else {
            usage(argv[0]);
            exit(strcmp(o, "--help") ? 2 : 0);
        }
    }
    if (a.energy % 16 || a.tile % 4) {
        fprintf(stderr, "--energy must be a multiple of 16 and --tile of 4\n");
        exit(2);
    }
    return a;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(bench_clock, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static evae_conv3d_shape layer_shape(const args *a, int i)
{
    size_t T = a->tile, E = a->energy;
    const size_t *c = a->channels;
    /* in channels, out channels, in dims, kernel, stride, pad, output padding, transposed */
    const struct {
        size_t ci, co, in[3], k[3], s[3], p[3], op[3];
        bool t;
    } L[8] = {
        {1, c[0], {T, T, E}, {1, 1, 7}, {1, 1, 2}, {0, 0, 3}, {0, 0, 0}, false},
        {c[0], c[1], {T, T, E / 2}, {3, 3, 5}, {1, 1, 2}, {1, 1, 2}, {0, 0, 0}, false},
        {c[1], c[2], {T, T, E / 4}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {0, 0, 0}, false},
        {c[2], c[3], {T / 2, T / 2, E / 8}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {0, 0, 0}, false},
        {c[3], c[2], {T / 4, T / 4, E / 16}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, true},
        {c[2], c[1], {T / 2, T / 2, E / 8}, {3, 3, 3}, {2, 2, 2}, {1, 1, 1}, {1, 1, 1}, true},
        {c[1], c[0], {T, T, E / 4}, {3, 3, 5}, {1, 1, 2}, {1, 1, 2}, {0, 0, 1}, true},
        {c[0], 1, {T, T, E / 2}, {1, 1, 7}, {1, 1, 2}, {0, 0, 3}, {0, 0, 1}, true},
    };
    evae_conv3d_shape sh;
    memset(&sh, 0, sizeof sh);
    sh.in_channels = L[i].ci;
    sh.out_channels = L[i].co;
    sh.transposed = L[i].t;
    for (int d = 0; d < 3; d++) {
        sh.in_dims[d] = L[i].in[d];
        sh.kernel[d] = L[i].k[d];
        sh.stride[d] = L[i].s[d];
        sh.pad[d] = L[i].p[d];
        sh.output_padding[d] = L[i].op[d];
    }
    return sh;
}

static float *filled(size_t n, unsigned seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    srand(seed);
    for (size_t i = 0; i < n; i++) p[i] = (float)rand() / (float)RAND_MAX - 0.5f;
    return p;
}

/* ---- the naive direct loop (float accumulation, contiguous inner loop) ---- */

/* Calls BODY for each (big row, small row, weight) of the underlying
 * convolution (see conv3d_impl.h) with the E-axis range [lo, hi) of
 * outputs whose input sample s·p + k − pad is inside. */
#define DIRECT_LOOP(L, ...)                                                                                      \
    do {                                                                                                         \
        const evae_conv_axis *ax_ = (L)->ax;                                                                     \
        const size_t *k_ = (L)->shape.kernel;                                                                    \
        for (size_t n = 0; n < (L)->batch; n++)                                                                  \
            for (size_t o = 0; o < (L)->c_small; o++)                                                            \
                for (size_t c = 0; c < (L)->c_big; c++)                                                          \
                    for (size_t ky = 0; ky < k_[0]; ky++)                                                        \
                        for (size_t kx = 0; kx < k_[1]; kx++)                                                    \
                            for (size_t ke = 0; ke < k_[2]; ke++) {                                              \
                                size_t wi = (((o * (L)->c_big + c) * k_[0] + ky) * k_[1] + kx) * k_[2] + ke;     \
                                long off = (long)ke - (long)ax_[2].pad, se = (long)ax_[2].s;                     \
                                long lo = off >= 0 ? 0 : (-off + se - 1) / se;                                   \
                                long hi = ((long)ax_[2].n - 1 - off) / se + 1;                                   \
                                if (hi > (long)ax_[2].m) hi = (long)ax_[2].m;                                    \
                                for (size_t py = 0; py < ax_[0].m; py++) {                                       \
                                    long iy = (long)(ax_[0].s * py + ky) - (long)ax_[0].pad;                     \
                                    if (iy < 0 || iy >= (long)ax_[0].n) continue;                                \
                                    for (size_t px = 0; px < ax_[1].m; px++) {                                   \
                                        long ix = (long)(ax_[1].s * px + kx) - (long)ax_[1].pad;                 \
                                        if (ix < 0 || ix >= (long)ax_[1].n) continue;                            \
                                        size_t big_row = (((n * (L)->c_big + c) * ax_[0].n + (size_t)iy) *       \
                                                              ax_[1].n + (size_t)ix) * ax_[2].n;                 \
                                        size_t small_row = (((n * (L)->c_small + o) * ax_[0].m + py) *           \
                                                                ax_[1].m + px) * ax_[2].m;                       \
                                        __VA_ARGS__;                                                     \
                                    }                                                                            \
                                }                                                                                \
                            }                                                                                    \
    } while (0)

static void direct_fwd(const evae_conv3d *L, float *small, const float *big, const float *w)
{
    memset(small, 0, L->batch * L->c_small * L->vol_small * sizeof *small);
    DIRECT_LOOP(L, {
        const float wv = w[wi], *xr = big + big_row + off;
        float *yr = small + small_row;
        for (long p = lo; p < hi; p++) yr[p] += wv * xr[p * se];
    });
}

static void direct_adj(const evae_conv3d *L, float *big, const float *small, const float *w)
{
    DIRECT_LOOP(L, {
        const float wv = w[wi], *yr = small + small_row;
        float *xr = big + big_row + off;
        for (long p = lo; p < hi; p++) xr[p * se] += wv * yr[p];
    });
}

static void direct_grad(const evae_conv3d *L, float *dw, const float *small, const float *big)
{
    DIRECT_LOOP(L, {
        const float *xr = big + big_row + off, *yr = small + small_row;
        float sum = 0.0f;
        for (long p = lo; p < hi; p++) sum += yr[p] * xr[p * se];
        dw[wi] += sum;
    });
}

/* Naive forward and backward of the layer, seconds. */
static void time_direct(const evae_conv3d *L, bool first_layer, const float *x, const float *w, const float *dy,
                        float *y, float *dx, float *dw, double *fwd, double *bwd)
{
    bool t = L->shape.transposed;
    double t0 = now();
    if (t) {
        memset(y, 0, L->batch * L->c_big * L->vol_big * sizeof *y);
        direct_adj(L, y, x, w);
    } else {
        direct_fwd(L, y, x, w);
    }
    double t1 = now();
    if (!first_layer) {
        if (t) {
            direct_fwd(L, dx, dy, w);
        } else {
            direct_adj(L, dx, dy, w);
        }
    }
    if (t) {
        direct_grad(L, dw, x, dy);
    } else {
        direct_grad(L, dw, dy, x);
    }
    *fwd = t1 - t0;
    *bwd = now() - t1;
}

/* ---- PyTorch ------------------------------------------------------------- */

static int read_torch(const args *a, double fwd[8], double bwd[8])
{
    char cmd[1024];
    snprintf(cmd, sizeof cmd,
             "%s %s/bench/conv3d_torch.py --batch %zu --tile %zu --energy %zu --channels %zu,%zu,%zu,%zu --reps %zu "
             "--threads %d%s",
             a->python, EELSVAE_SOURCE_DIR, a->batch, a->tile, a->energy, a->channels[0], a->channels[1],
             a->channels[2], a->channels[3], a->reps, a->threads,
             bench_clock == CLOCK_MONOTONIC ? "" : " --cpu-clock");
    FILE *p = popen(cmd, "r");
    if (!p) return 0;
    char line[256];
    int got = 0;
    while (fgets(line, sizeof line, p)) {
        int i = 0;
        double f = 0, b = 0;
        if (sscanf(line, "layer %d fwd %lf bwd %lf", &i, &f, &b) == 3 && i >= 0 && i < 8) {
            fwd[i] = f;
            bwd[i] = b;
            got++;
        }
    }
    return pclose(p) == 0 && got == 8;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    args a = parse(argc, argv);
    eelsvae_set_threads(a.threads);
    evae_conv3d_test_engine(a.engine);
    double torch_fwd[8] = {0}, torch_bwd[8] = {0};
    int have_torch = 0;
    if (a.torch && access(a.python, X_OK) != 0) {
        printf("PyTorch skipped: %s is not an executable interpreter\n", a.python);
    } else if (a.torch) {
        have_torch = read_torch(&a, torch_fwd, torch_bwd);
        if (!have_torch) printf("PyTorch skipped: %s %s/bench/conv3d_torch.py failed (is torch installed?)\n",
                                a.python, EELSVAE_SOURCE_DIR);
    }

    printf("conv3d-bench: batch %zu, tile %zux%zux%zu, channels %zu/%zu/%zu/%zu, %d threads, best of %zu%s\n",
           a.batch, a.tile, a.tile, a.energy, a.channels[0], a.channels[1], a.channels[2], a.channels[3], a.threads,
           a.reps, a.keep ? ", input spectra kept" : "");
    printf("%-26s %-9s %8s %8s | %5s %5s %5s %5s %5s | %9s %9s | %8s %8s %6s\n", "layer", "fft tile", "fwd ms",
           "bwd ms", "kern%", "fft%", "gemm%", "inv%", "wgt%", "naive fwd", "naive bwd", "torch fw", "torch bw",
           "ratio");
    double sum_ours = 0, sum_torch = 0, sum_naive = 0, fwd_ours = 0, fwd_torch = 0;
    for (int i = 0; i < 8; i++) {
        evae_conv3d_shape sh = layer_shape(&a, i);
        evae_conv3d *L = NULL;
        if (evae_conv3d_create(&L, &sh, (int)a.batch) != EELSVAE_OK) {
            fprintf(stderr, "layer %d: %s\n", i, eelsvae_last_error());
            return 1;
        }
        evae_conv3d_keep_input_spectra(L, a.keep);
        size_t nin = evae_conv3d_in_count(L), nout = evae_conv3d_out_count(L), nw = evae_conv3d_weight_count(L);
        float *x = filled(nin, 1), *w = filled(nw, 2), *b = filled(sh.out_channels, 3), *dy = filled(nout, 4);
        float *y = filled(nout, 5), *dx = filled(nin, 6), *dw = filled(nw, 7), *db = filled(sh.out_channels, 8);
        bool first = i == 0;
        evae_conv3d_forward(L, y, x, w, b); /* warm-up */
        evae_conv3d_backward(L, first ? NULL : dx, dw, db, dy, x, w);
        L->profiling = true;
        memset(&L->profile, 0, sizeof L->profile);
        double best_f = INFINITY, best_b = INFINITY;
        for (size_t r = 0; r < a.reps; r++) {
            double t0 = now();
            evae_conv3d_forward(L, y, x, w, b);
            double t1 = now();
            evae_conv3d_backward(L, first ? NULL : dx, dw, db, dy, x, w);
            double t2 = now();
            best_f = fmin(best_f, t1 - t0);
            best_b = fmin(best_b, t2 - t1);
        }
        const evae_conv_profile *pr = &L->profile;
        double total = pr->kernel + pr->transform + pr->mix + pr->inverse + pr->weight;
        double naive_f = NAN, naive_b = NAN;
        if (a.naive) time_direct(L, first, x, w, dy, y, dx, dw, &naive_f, &naive_b);
        char name[64], tile[32];
        snprintf(name, sizeof name, "%s %zu->%zu k%zux%zux%zu s%zu%zu%zu", sh.transposed ? "ConvT" : "Conv",
                 sh.in_channels, sh.out_channels, sh.kernel[0], sh.kernel[1], sh.kernel[2], sh.stride[0],
                 sh.stride[1], sh.stride[2]);
        if (L->gemm) {
            snprintf(tile, sizeof tile, L->tap_kernel ? "GEMM+vec" : "GEMM");
        } else if (L->direct) {
            snprintf(tile, sizeof tile, "direct");
        } else {
            snprintf(tile, sizeof tile, "%zux%zux%zu", L->ax[0].f, L->ax[1].f, L->ax[2].f);
        }
        double ours = 1e3 * (best_f + best_b), theirs = torch_fwd[i] + torch_bwd[i];
        printf("%-26s %-9s %8.2f %8.2f | %5.1f %5.1f %5.1f %5.1f %5.1f | %9.1f %9.1f | %8.2f %8.2f %6.2f\n", name,
               tile, 1e3 * best_f, 1e3 * best_b, 100 * pr->kernel / total, 100 * pr->transform / total,
               100 * pr->mix / total, 100 * pr->inverse / total, 100 * pr->weight / total, 1e3 * naive_f,
               1e3 * naive_b, have_torch ? torch_fwd[i] : NAN, have_torch ? torch_bwd[i] : NAN,
               have_torch ? ours / theirs : NAN);
        sum_ours += ours;
        sum_torch += theirs;
        fwd_ours += 1e3 * best_f;
        fwd_torch += torch_fwd[i];
        sum_naive += 1e3 * (naive_f + naive_b);
        free(x), free(w), free(b), free(dy), free(y), free(dx), free(dw), free(db);
        evae_conv3d_free(L);
    }
    printf("total fwd+bwd: ours %.1f ms", sum_ours);
    if (a.naive) printf(", naive %.1f ms (%.1fx)", sum_naive, sum_naive / sum_ours);
    if (have_torch) printf(", PyTorch %.1f ms (ours / PyTorch = %.2f)", sum_torch, sum_ours / sum_torch);
    printf("\nforward only (inference): ours %.1f ms", fwd_ours);
    if (have_torch) printf(", PyTorch %.1f ms (ours / PyTorch = %.2f)", fwd_torch, fwd_ours / fwd_torch);
    printf("\n");
    return 0;
}
