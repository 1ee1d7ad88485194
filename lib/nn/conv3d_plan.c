/*
 * The choice of engine (FFT or direct) and of FFT tile shape for a conv3d
 * layer: a fixed cost model, never a timing, so that the choice (hence the
 * rounding of every result) is the same on every run. The constants were
 * measured on the development machine (FFTW 3.3.10 with SSE2/AVX codelets,
 * OpenBLAS 0.3.21 SkylakeX kernels); only the ranking they give matters.
 */
#include "conv3d_impl.h"

#include <math.h>

/* Tile lengths FFTW transforms well, and the measured cost factor of each as
 * a Y or X length and as the (halved, r2c) E length: one r2c or c2r of an
 * f_y × f_x × f_e tile takes ≈ P·log2(P)·g(f_y)·g(f_x)·h(f_e) ns, P = f_y·f_x·f_e
 * (least-squares fit over a grid of 471 shapes, within ±16 % rms). */
static const size_t tile_lengths[] = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10, 12, 14,
                                      15, 16, 18, 20, 24, 28, 32, 36, 40, 48, 64};
static const double spatial_factor[] = {0.404, 0.509, 0.418, 0.382, 0.366, 0.356, 0.353, 0.342,
                                        0.347, 0.337, 0.351, 0.353, 0.360, 0.362, 0.574, 0.389,
                                        0.545, 0.558, 0.464, 0.588, 0.767, 0.661, 0.643};
static const double energy_factor[] = {1.923, 1.897, 1.168, 1.194, 1.050, 1.113, 1.092, 1.000,
                                       1.080, 1.028, 0.989, 1.423, 1.180, 1.118, 1.705, 1.152,
                                       1.644, 1.651, 1.163, 1.570, 1.590, 1.652, 1.420};
#define TILE_LENGTHS (sizeof tile_lengths / sizeof tile_lengths[0])

#define NS 1e-9
#define COPY_NS_PER_POINT 0.3   /* gather a tile point, crop or scatter it */
#define PHASE_NS_PER_POINT 1.0  /* space-to-depth or depth-to-space of one point */
#define CMAC_NS 0.053           /* one complex multiply-add in cgemm, one core */
#define BYTE_NS 0.1             /* streaming one byte of a table through memory */
#define ROW_NS 2.0              /* overhead of one row multiply-add in the direct engine */
#define MAC_NS 0.04             /* one multiply-add of it, vectorised */
#define SGEMM_MAC_NS 0.0116     /* one multiply-add in a large sgemm, one core (86 GMAC/s) */
#define GRID_NS_PER_POINT 0.3  /* the GEMM engine's grid: fill or crop one point */
/* The FFT and direct models above rank tile shapes well but came out 1.3–2.0×
 * (FFT) and ≈ 1.9× (direct) below the measured time of whole layers
 * (bench/conv3d_bench.c, FAST preset, one thread); the GEMM model was fitted
 * to whole GEMM layers. Comparing engines needs the same footing. */
#define FFT_MODEL_BIAS 1.75
#define DIRECT_MODEL_BIAS 1.9

static double length_factor(size_t f, bool energy)
{
    for (size_t i = 0; i < TILE_LENGTHS; i++)
        if (tile_lengths[i] == f) return energy ? energy_factor[i] : spatial_factor[i];
    return energy ? 1.7 : 0.7; /* a long kernel's plain length: assume a slow one */
}

/* Seconds for one r2c or c2r of a tile. */
static double fft_seconds(const size_t f[3])
{
    double p = (double)(f[0] * f[1] * f[2]);
    if (p <= 1) return 5 * NS;
    double factor = length_factor(f[0], false) * length_factor(f[1], false) * length_factor(f[2], true);
    return 10 * NS + p * log2(p) * factor * NS;
}

/* Candidate lengths along one axis: 1 when each phase has one tap (no
 * transform along it); else the measured lengths from 2·kp − 1 (so that only
 * neighbouring tiles overlap when scattering) up to one tile covering the
 * axis; a plain 2·kp − 1 when the kernel is longer than the table. */
static size_t tile_candidates(const evae_conv_axis *ax, size_t out[TILE_LENGTHS])
{
    if (ax->kp == 1) {
        out[0] = 1;
        return 1;
    }
    size_t lo = 2 * ax->kp - 1, whole = ax->m + ax->kp - 1, count = 0;
    for (size_t i = 0; i < TILE_LENGTHS; i++) {
        if (tile_lengths[i] < lo) continue;
        out[count++] = tile_lengths[i];
        if (tile_lengths[i] >= whole) break;
    }
    if (count == 0) out[count++] = lo;
    return count;
}

/* Work common to both engines: the phase tensors, in and out. */
static double phase_seconds(const evae_conv3d *L, const size_t p[3])
{
    return 3.0 * (double)L->c_phased * (double)(p[0] * p[1] * p[2]) * PHASE_NS_PER_POINT * NS;
}

/* Seconds per item of a training step (forward, backward-data,
 * backward-filter) through FFT tiles of lengths f. */
static double fft_step_seconds(const evae_conv3d *L, const size_t f[3], size_t batch)
{
    size_t tiles = 1, p[3], kp[3], fh[3];
    for (int a = 0; a < 3; a++) {
        size_t v = f[a] - L->ax[a].kp + 1, t = (L->ax[a].m + v - 1) / v;
        tiles *= t;
        p[a] = (t - 1) * v + f[a];
        kp[a] = L->ax[a].kp;
        fh[a] = a == 2 ? f[a] / 2 + 1 : f[a];
    }
    double points = (double)(f[0] * f[1] * f[2]), freqs = (double)(fh[0] * fh[1] * fh[2]);
    double pairs = (double)L->pairs, channels = (double)(L->c_phased + L->c_small);
    if (freqs * pairs * sizeof(fftwf_complex) > (double)EVAE_CONV_KERNEL_SPECTRA_BYTES) return INFINITY;

    /* Each side is transformed 2 or 3 times a step (5 in all), and gathered,
     * cropped or scattered as often. */
    double transforms = (double)tiles * 2.5 * channels * (fft_seconds(f) + points * COPY_NS_PER_POINT * NS);

    /* Three mixes a step; thin matrices and short chunks run below peak, and
     * each chunk streams the kernel spectra through memory once more. */
    double per_tile = channels * freqs * sizeof(fftwf_complex) + channels * points * sizeof(float);
    double chunk = fmin((double)(batch * tiles), fmax(EVAE_CONV_GROUP, EVAE_CONV_CHUNK_BYTES / per_tile));
    size_t thin = L->c_small < L->c_phased ? L->c_small : L->c_phased;
    double mixing = 3.0 * (double)tiles * freqs * pairs * CMAC_NS * NS * (1.0 + 4.0 / (double)thin) *
                    (1.0 + 24.0 / chunk);
    double streaming = 3.0 * (double)tiles / chunk * freqs * pairs * sizeof(fftwf_complex) * BYTE_NS * NS;

    /* Kernel spectra (twice) and the weight gradient's inverse, once per call
     * for the whole batch: separable DFT stages, then the table written. */
    double dft = pairs * (double)(kp[0] * kp[1] * fh[2] * kp[2] + kp[0] * fh[1] * kp[1] * fh[2] +
                                  fh[0] * kp[0] * fh[1] * fh[2]);
    double kernels = 3.0 * (2.0 * dft * CMAC_NS + freqs * pairs * sizeof(fftwf_complex) * BYTE_NS) * NS /
                     (double)batch;
    return transforms + mixing + streaming + kernels + phase_seconds(L, p);
}

/* Seconds per item of a training step through the direct engine: every
 * pass is one contiguous row multiply-add per (o, c, tap, output row). */
static double direct_step_seconds(const evae_conv3d *L)
{
    const evae_conv_axis *ax = L->ax;
    double rows = (double)L->c_small * (double)L->c_big * (double)(ax[0].k * ax[1].k * ax[2].k) *
                  (double)(ax[0].m * ax[1].m);
    size_t p[3];
    for (int a = 0; a < 3; a++) p[a] = ax[a].m + ax[a].kp - 1;
    return 3.0 * rows * (ROW_NS + (double)ax[2].m * MAC_NS) * NS + phase_seconds(L, p);
}

/* Seconds per item of a training step through the GEMM engine: three
 * passes over the flattened phase grid, junk points included. With the
 * vector kernel (conv3d_gemm.c, AVX-512) every pass runs near a fixed
 * fraction of the core's peak whatever the channel counts; through sgemm,
 * one GEMM per kernel tap (K = C or O) slows with the thin side of its
 * operands, and the weight gradient (thin M and N, long K) more so. */
static double gemm_step_seconds(const evae_conv3d *L, bool tap_kernel)
{
    const evae_conv_axis *ax = L->ax;
    size_t p[3];
    for (int a = 0; a < 3; a++) p[a] = ax[a].m + ax[a].kp - 1;
    double grid = (double)(p[0] * p[1] * p[2]);
    double kvol = (double)(L->shape.kernel[0] * L->shape.kernel[1] * L->shape.kernel[2]);
    double macs = (double)L->c_small * (double)L->c_big * kvol * grid;
    double thin = (double)(L->c_small < L->c_big ? L->c_small : L->c_big);
    double pass = macs * SGEMM_MAC_NS * NS * (tap_kernel ? 1.3 : (thin + 6.0) / thin);
    double grad = macs * SGEMM_MAC_NS * NS * (tap_kernel ? 1.6 : (thin + 16.0) / thin);
    return 2.0 * pass + grad + phase_seconds(L, p) + 3.0 * (double)L->c_small * grid * GRID_NS_PER_POINT * NS;
}

/* Pick the engine and, for FFTs, the tile lengths minimising the modelled
 * time; fills ax[].f, v, tiles and p. The direct row loops only with one
 * channel on a side (elsewhere they would not reach GEMM speed, whatever
 * the model says), and the GEMM engine there only with its vector kernel
 * (one-channel GEMMs are all overhead). */
void evae_conv_choose_engine(evae_conv3d *L, size_t batch, int forced, const size_t *forced_tiles)
{
    size_t cand[3][TILE_LENGTHS], count[3];
    for (int a = 0; a < 3; a++) count[a] = tile_candidates(&L->ax[a], cand[a]);
    double best = INFINITY;
    size_t pick[3] = {cand[0][0], cand[1][0], cand[2][0]};
    for (size_t i = 0; i < count[0]; i++)
        for (size_t j = 0; j < count[1]; j++)
            for (size_t k = 0; k < count[2]; k++) {
                size_t f[3] = {cand[0][i], cand[1][j], cand[2][k]};
                double t = fft_step_seconds(L, f, batch);
                if (t < best) {
                    best = t;
                    pick[0] = f[0], pick[1] = f[1], pick[2] = f[2];
                }
            }
    if (forced_tiles)
        for (int a = 0; a < 3; a++) {
            size_t kp = L->ax[a].kp, lo = 2 * kp - 1;
            pick[a] = kp == 1 ? 1 : forced_tiles[a] < lo ? lo : forced_tiles[a];
        }
    bool one_channel = L->c_big == 1 || L->c_small == 1, vector = evae_conv_taps_available();
    double fft = FFT_MODEL_BIAS * best, direct = one_channel ? DIRECT_MODEL_BIAS * direct_step_seconds(L) : INFINITY;
    double gemm = one_channel && !vector ? INFINITY : gemm_step_seconds(L, vector);
    L->gemm = forced ? forced >= 3 : gemm < fft && gemm < direct;
    L->tap_kernel = L->gemm && vector && forced != 3;
    L->direct = forced ? forced >= 2 : L->gemm || direct < fft;
    for (int a = 0; a < 3; a++) {
        evae_conv_axis *ax = &L->ax[a];
        ax->f = L->direct ? ax->kp : pick[a];
        ax->v = ax->f - ax->kp + 1;
        ax->tiles = (ax->m + ax->v - 1) / ax->v;
        ax->p = L->direct ? ax->m + ax->kp - 1 : (ax->tiles - 1) * ax->v + ax->f;
    }
}
