/*
 * The direct engine of conv3d: for layers with one channel on a side (the
 * model's first and last layers), where the transforms of the FFT engine
 * would cost more than the few multiply-adds they save. Works on the same
 * phase tensor (conv3d_phase.c), so strides skip nothing and every inner
 * loop runs over a contiguous E row.
 */
#include "conv3d_impl.h"

#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() ((size_t)omp_get_thread_num())
#else
#define THREAD_ID() ((size_t)0)
#endif

/* Taps phase c' really holds along each axis: ⌈(k − r)/s⌉ ≤ kp. */
static void phase_taps(const evae_conv3d *L, size_t cp, size_t count[3])
{
    size_t q = cp % L->phases, r[3];
    r[2] = q % L->ax[2].phases;
    q /= L->ax[2].phases;
    r[1] = q % L->ax[1].phases;
    r[0] = q / L->ax[1].phases;
    for (int a = 0; a < 3; a++) count[a] = (L->ax[a].k - r[a] + L->ax[a].s - 1) / L->ax[a].s;
}

/* wphase[o][c'][tap] = w[o][c][k] (zero where a phase has fewer taps). */
static void phase_kernels(evae_conv3d *L, const float *w)
{
    const size_t *k = L->shape.kernel;
    size_t C = L->c_big, kvol = k[0] * k[1] * k[2];
    memset(L->wphase, 0, L->pairs * L->taps * sizeof(float));
    for (size_t o = 0; o < L->c_small; o++)
        for (size_t c = 0; c < C; c++)
            for (size_t ky = 0; ky < k[0]; ky++)
                for (size_t kx = 0; kx < k[1]; kx++)
                    for (size_t ke = 0; ke < k[2]; ke++) {
                        size_t cp = c * L->phases + evae_conv_phase_index(L, ky, kx, ke);
                        L->wphase[(o * L->c_phased + cp) * L->taps + evae_conv_tap_index(L, ky, kx, ke)] =
                            w[(o * C + c) * kvol + (ky * k[1] + kx) * k[2] + ke];
                    }
}

static size_t block_items(const evae_conv3d *L, size_t n0)
{
    size_t left = L->batch - n0;
    return left < L->phase_items ? left : L->phase_items;
}

/* acc[q] = Σ_c' Σ_j w'[o][c'][j] · phase[i][c'][py + jy][px + jx][q + je]. */
static void forward_row(const evae_conv3d *L, float *acc, size_t i, size_t o, size_t py, size_t px)
{
    const evae_conv_axis *ax = L->ax;
    size_t me = ax[2].m;
    memset(acc, 0, me * sizeof(float));
    for (size_t cp = 0; cp < L->c_phased; cp++) {
        size_t count[3];
        phase_taps(L, cp, count);
        const float *w = L->wphase + (o * L->c_phased + cp) * L->taps;
        const float *plane = L->phase + (i * L->c_phased + cp) * L->pvol;
        for (size_t jy = 0; jy < count[0]; jy++)
            for (size_t jx = 0; jx < count[1]; jx++) {
                const float *row = plane + ((py + jy) * ax[1].p + px + jx) * ax[2].p;
                for (size_t je = 0; je < count[2]; je++) {
                    float wv = w[(jy * ax[1].kp + jx) * ax[2].kp + je];
                    const float *src = row + je;
#pragma omp simd
                    for (size_t q = 0; q < me; q++) acc[q] += wv * src[q];
                }
            }
    }
}

void evae_conv_direct_forward(evae_conv3d *L, float *small, const float *big, const float *w, const float *bias,
                              bool accumulate)
{
    const evae_conv_axis *ax = L->ax;
    size_t me = ax[2].m, row_stride = (me + 15) / 16 * 16;
    phase_kernels(L, w);
    for (size_t n0 = 0; n0 < L->batch; n0 += L->phase_items) {
        size_t items = block_items(L, n0), work = items * L->c_small * ax[0].m;
        evae_conv_space_to_depth(L, big, n0, items);
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
        for (size_t item = 0; item < work; item++) {
            size_t py = item % ax[0].m, o = item / ax[0].m % L->c_small, i = item / ax[0].m / L->c_small;
            float *acc = L->gather + THREAD_ID() * row_stride, b = bias ? bias[o] : 0.0f;
            for (size_t px = 0; px < ax[1].m; px++) {
                forward_row(L, acc, i, o, py, px);
                float *out = small + (((n0 + i) * L->c_small + o) * ax[0].m + py) * ax[1].m * me + px * me;
                if (accumulate) {
                    for (size_t q = 0; q < me; q++) out[q] += acc[q];
                } else {
                    for (size_t q = 0; q < me; q++) out[q] = acc[q] + b;
                }
            }
        }
    }
}

/* dphase[i][c'][uy][ux][q + je] += w'[o][c'][j] · small[n][o][uy − jy][ux − jx][q]. */
static void adjoint_row(const evae_conv3d *L, float *dst, const float *small_n, size_t cp, size_t uy, size_t ux)
{
    const evae_conv_axis *ax = L->ax;
    size_t me = ax[2].m, count[3];
    phase_taps(L, cp, count);
    for (size_t o = 0; o < L->c_small; o++) {
        const float *w = L->wphase + (o * L->c_phased + cp) * L->taps;
        for (size_t jy = 0; jy < count[0] && jy <= uy; jy++) {
            if (uy - jy >= ax[0].m) continue;
            for (size_t jx = 0; jx < count[1] && jx <= ux; jx++) {
                if (ux - jx >= ax[1].m) continue;
                const float *src = small_n + ((o * ax[0].m + uy - jy) * ax[1].m + ux - jx) * me;
                for (size_t je = 0; je < count[2]; je++) {
                    float wv = w[(jy * ax[1].kp + jx) * ax[2].kp + je];
                    float *out = dst + je;
#pragma omp simd
                    for (size_t q = 0; q < me; q++) out[q] += wv * src[q];
                }
            }
        }
    }
}

void evae_conv_direct_adjoint(evae_conv3d *L, float *big, const float *small, const float *w)
{
    const evae_conv_axis *ax = L->ax;
    phase_kernels(L, w);
    for (size_t n0 = 0; n0 < L->batch; n0 += L->phase_items) {
        size_t items = block_items(L, n0), work = items * L->c_phased * ax[0].p;
        evae_conv_clear_phase(L, L->dphase, items);
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
        for (size_t item = 0; item < work; item++) {
            size_t uy = item % ax[0].p, cp = item / ax[0].p % L->c_phased, i = item / ax[0].p / L->c_phased;
            const float *small_n = small + (n0 + i) * L->c_small * L->vol_small;
            float *plane = L->dphase + (i * L->c_phased + cp) * L->pvol;
            for (size_t ux = 0; ux < ax[1].p; ux++)
                adjoint_row(L, plane + (uy * ax[1].p + ux) * ax[2].p, small_n, cp, uy, ux);
        }
        evae_conv_depth_to_space_add(L, L->dphase, big, n0, items);
    }
}

/* wgrad[o][c'][j] += Σ_i Σ_p small[n][o][p] · phase[i][c'][p + j], one (o, c')
 * pair per thread, each sum in a fixed order. */
static void grad_pair(evae_conv3d *L, const float *small, size_t n0, size_t items, size_t o, size_t cp)
{
    const evae_conv_axis *ax = L->ax;
    size_t me = ax[2].m, count[3];
    phase_taps(L, cp, count);
    double *g = L->wgrad + (o * L->c_phased + cp) * L->taps;
    for (size_t i = 0; i < items; i++) {
        const float *plane = L->phase + (i * L->c_phased + cp) * L->pvol;
        for (size_t py = 0; py < ax[0].m; py++)
            for (size_t px = 0; px < ax[1].m; px++) {
                const float *s = small + (((n0 + i) * L->c_small + o) * ax[0].m + py) * ax[1].m * me + px * me;
                for (size_t jy = 0; jy < count[0]; jy++)
                    for (size_t jx = 0; jx < count[1]; jx++) {
                        const float *row = plane + ((py + jy) * ax[1].p + px + jx) * ax[2].p;
                        for (size_t je = 0; je < count[2]; je++) {
                            const float *src = row + je;
                            float part = 0.0f;
#pragma omp simd reduction(+ : part)
                            for (size_t q = 0; q < me; q++) part += s[q] * src[q];
                            g[(jy * ax[1].kp + jx) * ax[2].kp + je] += part;
                        }
                    }
            }
    }
}

void evae_conv_direct_grad(evae_conv3d *L, float *dw, const float *small, const float *big)
{
    const size_t *k = L->shape.kernel;
    size_t C = L->c_big, kvol = k[0] * k[1] * k[2];
    memset(L->wgrad, 0, L->pairs * L->taps * sizeof(double));
    for (size_t n0 = 0; n0 < L->batch; n0 += L->phase_items) {
        size_t items = block_items(L, n0);
        evae_conv_space_to_depth(L, big, n0, items);
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
        for (size_t pair = 0; pair < L->pairs; pair++)
            grad_pair(L, small, n0, items, pair / L->c_phased, pair % L->c_phased);
    }
    for (size_t o = 0; o < L->c_small; o++)
        for (size_t c = 0; c < C; c++)
            for (size_t ky = 0; ky < k[0]; ky++)
                for (size_t kx = 0; kx < k[1]; kx++)
                    for (size_t ke = 0; ke < k[2]; ke++) {
                        size_t cp = c * L->phases + evae_conv_phase_index(L, ky, kx, ke);
                        double g = L->wgrad[(o * L->c_phased + cp) * L->taps + evae_conv_tap_index(L, ky, kx, ke)];
                        dw[(o * C + c) * kvol + (ky * k[1] + kx) * k[2] + ke] += (float)g;
                    }
}
