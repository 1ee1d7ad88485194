/*
 * The FFT engine of conv3d (see conv3d_impl.h for the maths): gather tiles,
 * transform them, mix channels with one complex GEMM per frequency,
 * transform back, crop or scatter; kernel spectra and the weight gradient
 * through separable DFTs (kernels have few taps per axis, so a DFT as a GEMM
 * beats a full FFT of a mostly-zero tile).
 *
 * Conventions in one place: FFTW's forward transform is e^{−2πi f u / F} and
 * its inverse is unnormalised, so the kernel spectra carry 1/N
 * (N = points per tile) and the weight gradient is divided by N at the end.
 *   FORWARD  Y_f = conj(W_f) · X_f     (correlation)
 *   ADJOINT  X_f = W_f^T · Y_f         (convolution with the same kernel)
 *   GRAD     G_f += X_f · Y_f^H        (then dw = inverse of G at the taps)
 */
#include "conv3d_impl.h"

#include <cblas.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() ((size_t)omp_get_thread_num())
#else
#define THREAD_ID() ((size_t)0)
#endif

/* ---- tiles ---------------------------------------------------------------- */

typedef struct tile_pos {
    size_t n;    /* batch item */
    size_t t[3]; /* tile index per axis */
} tile_pos;

static tile_pos tile_at(const evae_conv3d *L, size_t global)
{
    tile_pos p;
    size_t r = global % L->tiles_per_item;
    p.n = global / L->tiles_per_item;
    p.t[2] = r % L->ax[2].tiles;
    r /= L->ax[2].tiles;
    p.t[1] = r % L->ax[1].tiles;
    p.t[0] = r / L->ax[1].tiles;
    return p;
}

/* Small-side outputs of tile t along an axis (the last tile may be short). */
static size_t valid_outputs(const evae_conv_axis *ax, size_t t)
{
    size_t left = ax->m - t * ax->v;
    return left < ax->v ? left : ax->v;
}

/* The tile's first point in the phase tensor of phased channel c' (the
 * tensor holds items from n0 on). */
static size_t phase_offset(const evae_conv3d *L, const tile_pos *p, size_t n0, size_t cp)
{
    const evae_conv_axis *ax = L->ax;
    return (((p->n - n0) * L->c_phased + cp) * ax[0].p + p->t[0] * ax[0].v) * ax[1].p * ax[2].p +
           (p->t[1] * ax[1].v) * ax[2].p + p->t[2] * ax[2].v;
}

/* ---- gather, crop, scatter ---------------------------------------------- */

/* An f_y × f_x × f_e box of the phase tensor (zero-padded already). */
static void gather_big_tile(const evae_conv3d *L, float *dst, const float *src)
{
    const evae_conv_axis *ax = L->ax;
    size_t fe = ax[2].f;
    for (size_t uy = 0; uy < ax[0].f; uy++)
        for (size_t ux = 0; ux < ax[1].f; ux++) {
            float *out = dst + (uy * ax[1].f + ux) * fe;
            const float *in = src + (uy * ax[1].p + ux) * ax[2].p;
#pragma omp simd
            for (size_t e = 0; e < fe; e++) out[e] = in[e]; /* short rows: a call to memcpy costs more */
        }
}

/* dst[u] = y_o[t⊙v + u] for u < the tile's valid outputs, zero elsewhere. */
static void gather_small_tile(const evae_conv3d *L, float *dst, const float *y_o, const tile_pos *p)
{
    const evae_conv_axis *ax = L->ax;
    size_t vy = valid_outputs(&ax[0], p->t[0]), vx = valid_outputs(&ax[1], p->t[1]);
    size_t ve = valid_outputs(&ax[2], p->t[2]);
    if (vy < ax[0].f || vx < ax[1].f || ve < ax[2].f) memset(dst, 0, L->tile_points * sizeof(float));
    for (size_t qy = 0; qy < vy; qy++)
        for (size_t qx = 0; qx < vx; qx++) {
            const float *row =
                y_o + ((p->t[0] * ax[0].v + qy) * ax[1].m + p->t[1] * ax[1].v + qx) * ax[2].m + p->t[2] * ax[2].v;
            memcpy(dst + (qy * ax[1].f + qx) * ax[2].f, row, ve * sizeof(float));
        }
}

/* The tile's valid outputs into y_o: overwritten with `bias` added, or added. */
static void crop_small_tile(const evae_conv3d *L, float *y_o, const float *tile, const tile_pos *p, bool accumulate,
                            float bias)
{
    const evae_conv_axis *ax = L->ax;
    size_t vy = valid_outputs(&ax[0], p->t[0]), vx = valid_outputs(&ax[1], p->t[1]);
    size_t ve = valid_outputs(&ax[2], p->t[2]);
    for (size_t qy = 0; qy < vy; qy++)
        for (size_t qx = 0; qx < vx; qx++) {
            float *row =
                y_o + ((p->t[0] * ax[0].v + qy) * ax[1].m + p->t[1] * ax[1].v + qx) * ax[2].m + p->t[2] * ax[2].v;
            const float *src = tile + (qy * ax[1].f + qx) * ax[2].f;
            if (accumulate) {
#pragma omp simd
                for (size_t q = 0; q < ve; q++) row[q] += src[q];
            } else {
#pragma omp simd
                for (size_t q = 0; q < ve; q++) row[q] = src[q] + bias;
            }
        }
}

/* phase[u] += tile[u] over the tile's support (valid outputs + kp − 1 per
 * axis; beyond it the tile holds only rounding noise). */
static void scatter_big_tile(const evae_conv3d *L, float *dst, const float *tile, const tile_pos *p)
{
    const evae_conv_axis *ax = L->ax;
    size_t reach[3];
    for (int a = 0; a < 3; a++) reach[a] = valid_outputs(&ax[a], p->t[a]) + ax[a].kp - 1;
    for (size_t uy = 0; uy < reach[0]; uy++)
        for (size_t ux = 0; ux < reach[1]; ux++) {
            float *row = dst + (uy * ax[1].p + ux) * ax[2].p;
            const float *src = tile + (uy * ax[1].f + ux) * ax[2].f;
#pragma omp simd
            for (size_t u = 0; u < reach[2]; u++) row[u] += src[u];
        }
}

/* ---- transforms ----------------------------------------------------------- */

static size_t groups_of(size_t count)
{
    return (count + EVAE_CONV_GROUP - 1) / EVAE_CONV_GROUP;
}

/* Spectra of the chunk's big-side tiles, [f][c'][tile], zero past `count`,
 * from the phase tensor (built by the caller, holding items from n0 on). */
void evae_conv_transform_big(evae_conv3d *L, size_t first, size_t count, size_t n0)
{
    size_t groups = groups_of(count), items = L->c_phased * groups;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t item = 0; item < items; item++) {
        size_t cp = item / groups, g = item % groups;
        float *buf = L->gather + THREAD_ID() * EVAE_CONV_GROUP * L->tile_stride;
        for (size_t b = 0; b < EVAE_CONV_GROUP; b++) {
            size_t local = g * EVAE_CONV_GROUP + b;
            float *dst = buf + b * L->tile_stride;
            if (local >= count) {
                memset(dst, 0, L->tile_points * sizeof(float));
                continue;
            }
            tile_pos p = tile_at(L, first + local);
            gather_big_tile(L, dst, L->phase + phase_offset(L, &p, n0, cp));
        }
        fftwf_execute_dft_r2c(L->r2c_big, buf, L->spec_big + cp * L->chunk + g * EVAE_CONV_GROUP);
    }
}

/* Spectra of the chunk's small-side tiles, [f][o][tile], zero past `count`. */
void evae_conv_transform_small(evae_conv3d *L, const float *small, size_t first, size_t count)
{
    size_t groups = groups_of(count), items = L->c_small * groups;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t item = 0; item < items; item++) {
        size_t o = item / groups, g = item % groups;
        float *buf = L->gather + THREAD_ID() * EVAE_CONV_GROUP * L->tile_stride;
        for (size_t b = 0; b < EVAE_CONV_GROUP; b++) {
            size_t local = g * EVAE_CONV_GROUP + b;
            float *dst = buf + b * L->tile_stride;
            if (local >= count) {
                memset(dst, 0, L->tile_points * sizeof(float));
                continue;
            }
            tile_pos p = tile_at(L, first + local);
            gather_small_tile(L, dst, small + (p.n * L->c_small + o) * L->vol_small, &p);
        }
        fftwf_execute_dft_r2c(L->r2c_small, buf, L->spec_small + o * L->chunk + g * EVAE_CONV_GROUP);
    }
}

/* Inverse transform of the small-side spectra, cropped into `small`. */
void evae_conv_inverse_small_crop(evae_conv3d *L, float *small, size_t first, size_t count, bool accumulate,
                                  const float *bias)
{
    size_t groups = groups_of(count), items = L->c_small * groups;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t item = 0; item < items; item++) {
        size_t o = item / groups, g = item % groups;
        float *buf = L->gather + THREAD_ID() * EVAE_CONV_GROUP * L->tile_stride;
        fftwf_execute_dft_c2r(L->c2r_small, L->spec_small + o * L->chunk + g * EVAE_CONV_GROUP, buf);
        for (size_t b = 0; b < EVAE_CONV_GROUP && g * EVAE_CONV_GROUP + b < count; b++) {
            tile_pos p = tile_at(L, first + g * EVAE_CONV_GROUP + b);
            crop_small_tile(L, small + (p.n * L->c_small + o) * L->vol_small, buf + b * L->tile_stride, &p,
                            accumulate, bias ? bias[o] : 0.0f);
        }
    }
}

/* Inverse transform of the big-side spectra, added into the gradient phase
 * tensor dphase (cleared by the caller, holding items from n0 on). Each
 * thread takes whole phased channels and their tiles in order: neighbouring
 * tiles overlap (overlap-add) but only within a channel, so there are no
 * races and every sum runs in one fixed order. */
void evae_conv_inverse_big_scatter(evae_conv3d *L, size_t first, size_t count, size_t n0)
{
    size_t groups = groups_of(count);
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t cp = 0; cp < L->c_phased; cp++) {
        float *buf = L->gather + THREAD_ID() * EVAE_CONV_GROUP * L->tile_stride;
        for (size_t g = 0; g < groups; g++) {
            fftwf_execute_dft_c2r(L->c2r_big, L->spec_big + cp * L->chunk + g * EVAE_CONV_GROUP, buf);
            for (size_t b = 0; b < EVAE_CONV_GROUP && g * EVAE_CONV_GROUP + b < count; b++) {
                tile_pos p = tile_at(L, first + g * EVAE_CONV_GROUP + b);
                scatter_big_tile(L, L->dphase + phase_offset(L, &p, n0, cp), buf + b * L->tile_stride, &p);
            }
        }
    }
}

/* ---- channel mixing --------------------------------------------------------- */

/* One complex GEMM per frequency, the frequencies spread over threads (BLAS
 * runs single-threaded inside a layer call: same bits whatever the thread
 * count). */
void evae_conv_mix(evae_conv3d *L, evae_conv_mix_kind mix, size_t count, bool accumulate)
{
    static const float one[2] = {1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    const float *beta = accumulate ? one : zero;
    int o = (int)L->c_small, cp = (int)L->c_phased, ld = (int)L->chunk;
    int cols = (int)(groups_of(count) * EVAE_CONV_GROUP), tiles = (int)count;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t f = 0; f < L->freqs; f++) {
        const void *w = L->kspec + f * L->pairs;
        fftwf_complex *xb = L->spec_big + f * L->ld_big, *ys = L->spec_small + f * L->ld_small;
        switch (mix) {
        case EVAE_MIX_FORWARD: /* [O × cols] = conj(W)[O × C'] · X[C' × cols] */
            cblas_cgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, cols, cp, one, w, cp, xb, ld, beta, ys, ld);
            break;
        case EVAE_MIX_ADJOINT: /* [C' × cols] = W^T[C' × O] · Y[O × cols] */
            cblas_cgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cp, cols, o, one, w, cp, ys, ld, beta, xb, ld);
            break;
        case EVAE_MIX_GRAD: /* G[C' × O] (+)= X[C' × tiles] · Y^H[tiles × O] */
            cblas_cgemm(CblasRowMajor, CblasNoTrans, CblasConjTrans, cp, o, tiles, one, xb, ld, ys, ld, beta,
                        L->gspec + f * L->pairs, o);
            break;
        }
    }
}

/* ---- kernel spectra and the weight gradient ------------------------------ */

/* `count` GEMMs C_j[m × n] = A[m × k] · B_j[k × n] (row-major, B_j = b + j·b_step,
 * C_j = c + j·c_step, in complex elements), their columns cut into blocks of
 * EVAE_CONV_DFT_BLOCK spread over threads. */
static void cgemm_blocks(size_t count, size_t m, size_t n, size_t k, const void *a, const void *b_base, size_t b_step,
                         void *c_base, size_t c_step)
{
    const float *b = b_base; /* complex elements as (re, im) float pairs */
    float *c = c_base;
    static const float one[2] = {1.0f, 0.0f}, zero[2] = {0.0f, 0.0f};
    size_t blocks = (n + EVAE_CONV_DFT_BLOCK - 1) / EVAE_CONV_DFT_BLOCK, items = count * blocks;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t item = 0; item < items; item++) {
        size_t j = item / blocks, col = item % blocks * EVAE_CONV_DFT_BLOCK;
        size_t cols = n - col < EVAE_CONV_DFT_BLOCK ? n - col : EVAE_CONV_DFT_BLOCK;
        cblas_cgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)m, (int)cols, (int)k, one, a, (int)k,
                    b + 2 * (j * b_step + col), (int)n, zero, c + 2 * (j * c_step + col), (int)n);
    }
}

/* Kernel phase taps, [tap j][o][c'] as complex numbers with zero imaginary
 * part, scaled by 1/N; missing taps (phases with fewer) are zero. */
static void phase_kernels(const evae_conv3d *L, fftwf_complex *taps, const float *w)
{
    const size_t *k = L->shape.kernel;
    size_t pairs = L->pairs, C = L->c_big, kvol = k[0] * k[1] * k[2];
    float scale = 1.0f / (float)L->tile_points;
    memset(taps, 0, L->taps * pairs * sizeof(fftwf_complex));
    for (size_t ky = 0; ky < k[0]; ky++)
        for (size_t kx = 0; kx < k[1]; kx++)
            for (size_t ke = 0; ke < k[2]; ke++) {
                size_t phase = evae_conv_phase_index(L, ky, kx, ke), tap = evae_conv_tap_index(L, ky, kx, ke);
                size_t kidx = (ky * k[1] + kx) * k[2] + ke;
                fftwf_complex *row = taps + tap * pairs;
                for (size_t o = 0; o < L->c_small; o++)
                    for (size_t c = 0; c < C; c++)
                        row[o * L->c_phased + c * L->phases + phase][0] = w[(o * C + c) * kvol + kidx] * scale;
            }
}

/* kspec[f][o][c'] = Σ_j taps[j] e^{∓2πi f·j/F}: three separable DFT stages
 * (E, then X, then Y), each a GEMM with long rows. `conjugate` gives the
 * spectra the FORWARD mix needs. */
void evae_conv_kernel_spectra(evae_conv3d *L, const float *w, bool conjugate)
{
    const evae_conv_axis *ax = L->ax;
    size_t ky = ax[0].kp, kx = ax[1].kp, ke = ax[2].kp, fy = ax[0].f, fx = ax[1].f, feh = ax[2].f / 2 + 1;
    size_t pairs = L->pairs;
    fftwf_complex *const *dft = conjugate ? L->dft_conj : L->dft_fwd;
    fftwf_complex *s1 = L->dft_work;                  /* [ky][kx][feh][pairs] */
    fftwf_complex *s2 = s1 + ky * kx * feh * pairs;   /* [ky][fx][feh][pairs] */
    fftwf_complex *taps = s2 + ky * fx * feh * pairs; /* [ky][kx][ke][pairs] */
    phase_kernels(L, taps, w);
    cgemm_blocks(ky * kx, feh, pairs, ke, dft[2], taps, ke * pairs, s1, feh * pairs);
    cgemm_blocks(ky, fx, feh * pairs, kx, dft[1], s1, kx * feh * pairs, s2, fx * feh * pairs);
    cgemm_blocks(1, fy, fx * feh * pairs, ky, dft[0], s2, 0, L->kspec, 0);
}

/* dw[o][c][k] += (1/N) Re Σ_f G[f][c'][o] e^{+2πi f·j/F} at the kernel's taps:
 * the three stages of the kernel spectra, in reverse. */
void evae_conv_weight_gradient(evae_conv3d *L, float *dw)
{
    const evae_conv_axis *ax = L->ax;
    const size_t *k = L->shape.kernel;
    size_t ky = ax[0].kp, kx = ax[1].kp, ke = ax[2].kp, fy = ax[0].f, fx = ax[1].f, feh = ax[2].f / 2 + 1;
    size_t pairs = L->pairs, C = L->c_big, O = L->c_small, kvol = k[0] * k[1] * k[2];
    fftwf_complex *u2 = L->dft_work;                /* [ky][kx][feh][pairs] */
    fftwf_complex *u1 = u2 + ky * kx * feh * pairs; /* [ky][fx][feh][pairs] */
    fftwf_complex *g = u1 + ky * fx * feh * pairs;  /* [ky][kx][ke][pairs] */
    cgemm_blocks(1, ky, fx * feh * pairs, fy, L->dft_inv[0], L->gspec, 0, u1, 0);
    cgemm_blocks(ky, kx, feh * pairs, fx, L->dft_inv[1], u1, fx * feh * pairs, u2, kx * feh * pairs);
    cgemm_blocks(ky * kx, ke, pairs, feh, L->dft_inv[2], u2, feh * pairs, g, ke * pairs);
    float scale = 1.0f / (float)L->tile_points;
    for (size_t qy = 0; qy < k[0]; qy++)
        for (size_t qx = 0; qx < k[1]; qx++)
            for (size_t qe = 0; qe < k[2]; qe++) {
                size_t phase = evae_conv_phase_index(L, qy, qx, qe), tap = evae_conv_tap_index(L, qy, qx, qe);
                size_t kidx = (qy * k[1] + qx) * k[2] + qe;
                const float *row = (const float *)(g + tap * pairs); /* (re, im) pairs */
                for (size_t o = 0; o < O; o++)
                    for (size_t c = 0; c < C; c++)
                        dw[(o * C + c) * kvol + kidx] += row[2 * ((c * L->phases + phase) * O + o)] * scale;
            }
}
