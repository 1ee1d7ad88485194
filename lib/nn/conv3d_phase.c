/*
 * Phase tensors (space-to-depth and back) and small helpers shared by the
 * FFT and direct engines of conv3d. See conv3d_impl.h for the layout.
 */
#include "conv3d_impl.h"

#include <cblas.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Phase-grid points u ∈ [lo, hi) of phase r along an axis whose big-side
 * index s·u + r − pad lies inside [0, n), with hi ≤ limit. */
typedef struct phase_span {
    ptrdiff_t base; /* big-side index of u = 0 */
    size_t lo, hi;
} phase_span;

static phase_span span_of(const evae_conv_axis *ax, size_t r, size_t limit)
{
    ptrdiff_t s = (ptrdiff_t)ax->s;
    phase_span sp = {(ptrdiff_t)r - (ptrdiff_t)ax->pad, 0, 0};
    ptrdiff_t lo = sp.base >= 0 ? 0 : (-sp.base + s - 1) / s;
    ptrdiff_t last = (ptrdiff_t)ax->n - 1 - sp.base;
    ptrdiff_t hi = last < 0 ? 0 : last / s + 1;
    if (hi > (ptrdiff_t)limit) hi = (ptrdiff_t)limit;
    if (lo > hi) lo = hi;
    sp.lo = (size_t)lo;
    sp.hi = (size_t)hi;
    return sp;
}

static size_t span_index(const phase_span *sp, const evae_conv_axis *ax, size_t u)
{
    return (size_t)(sp->base + (ptrdiff_t)(ax->s * u));
}

/* One work item of the rearrangements: item i, channel c, phases (ry, rx),
 * phase-grid row uy. */
typedef struct phase_row {
    size_t i, c, ry, rx, uy;
} phase_row;

static phase_row phase_row_at(const evae_conv3d *L, size_t item)
{
    const evae_conv_axis *ax = L->ax;
    phase_row r;
    r.uy = item % ax[0].p;
    item /= ax[0].p;
    r.rx = item % ax[1].phases;
    item /= ax[1].phases;
    r.ry = item % ax[0].phases;
    item /= ax[0].phases;
    r.c = item % L->c_big;
    r.i = item / L->c_big;
    return r;
}

/* out[u] = src[2·u] for u < len. GCC leaves the strided loop scalar; SSE2
 * (every x86-64) picks the even elements of eight at a time. The vector
 * loop reads up to src[2·u + 7], so it stops where that passes the last
 * element read, src[2·(len − 1)]. */
static void deal_every_second(float *out, const float *src, size_t len)
{
    size_t u = 0;
#ifdef __SSE2__
    for (; u + 5 <= len; u += 4) {
        __m128 a = _mm_loadu_ps(src + 2 * u), b = _mm_loadu_ps(src + 2 * u + 4);
        _mm_storeu_ps(out + u, _mm_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0)));
    }
#endif
    for (; u < len; u++) out[u] = src[2 * u];
}

/* out[u] = row[base + s·u] for u in the span, zero elsewhere (p points). */
static void deal_row(float *out, const float *row, const phase_span *se, size_t step, size_t p)
{
    const float *src = row + (se->base + (ptrdiff_t)(step * se->lo));
    size_t len = se->hi - se->lo;
    memset(out, 0, se->lo * sizeof(float));
    if (step == 1) {
        memcpy(out + se->lo, src, len * sizeof(float));
    } else if (step == 2) {
        deal_every_second(out + se->lo, src, len);
    } else {
        for (size_t u = 0; u < len; u++) out[se->lo + u] = src[u * step];
    }
    memset(out + se->hi, 0, (p - se->hi) * sizeof(float));
}

/* phase[i][c'][u] = big[n0 + i][c][s⊙u + r − pad], zero outside big. */
void evae_conv_space_to_depth(evae_conv3d *L, const float *big, size_t n0, size_t items)
{
    const evae_conv_axis *ax = L->ax;
    size_t work = items * L->c_big * ax[0].phases * ax[1].phases * ax[0].p;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t item = 0; item < work; item++) {
        phase_row r = phase_row_at(L, item);
        phase_span sy = span_of(&ax[0], r.ry, ax[0].p);
        bool row_inside = r.uy >= sy.lo && r.uy < sy.hi;
        size_t iy = row_inside ? span_index(&sy, &ax[0], r.uy) : 0;
        phase_span sx = span_of(&ax[1], r.rx, ax[1].p);
        const float *plane = big + ((n0 + r.i) * L->c_big + r.c) * L->vol_big + iy * ax[1].n * ax[2].n;
        for (size_t re = 0; re < ax[2].phases; re++) {
            size_t cp = r.c * L->phases + (r.ry * ax[1].phases + r.rx) * ax[2].phases + re;
            float *dst = L->phase + ((r.i * L->c_phased + cp) * ax[0].p + r.uy) * ax[1].p * ax[2].p;
            if (!row_inside) {
                memset(dst, 0, ax[1].p * ax[2].p * sizeof(float));
                continue;
            }
            phase_span se = span_of(&ax[2], re, ax[2].p);
            memset(dst, 0, sx.lo * ax[2].p * sizeof(float));
            for (size_t ux = sx.lo; ux < sx.hi; ux++)
                deal_row(dst + ux * ax[2].p, plane + span_index(&sx, &ax[1], ux) * ax[2].n, &se, ax[2].s, ax[2].p);
            memset(dst + sx.hi * ax[2].p, 0, (ax[1].p - sx.hi) * ax[2].p * sizeof(float));
        }
    }
}

/* big[n0 + i][c][s⊙u + r − pad] += phase[i][c'][u] wherever that index is
 * inside big. Distinct (c', u) reach distinct big samples: no races. */
void evae_conv_depth_to_space_add(const evae_conv3d *L, const float *phase, float *big, size_t n0, size_t items)
{
    const evae_conv_axis *ax = L->ax;
    size_t work = items * L->c_big * ax[0].phases * ax[1].phases * ax[0].p;
#pragma omp parallel for num_threads(evae_threads()) schedule(guided)
    for (size_t item = 0; item < work; item++) {
        phase_row r = phase_row_at(L, item);
        phase_span sy = span_of(&ax[0], r.ry, ax[0].p);
        if (r.uy < sy.lo || r.uy >= sy.hi) continue;
        phase_span sx = span_of(&ax[1], r.rx, ax[1].p);
        float *plane = big + ((n0 + r.i) * L->c_big + r.c) * L->vol_big +
                       span_index(&sy, &ax[0], r.uy) * ax[1].n * ax[2].n;
        for (size_t re = 0; re < ax[2].phases; re++) {
            size_t cp = r.c * L->phases + (r.ry * ax[1].phases + r.rx) * ax[2].phases + re;
            const float *src = phase + ((r.i * L->c_phased + cp) * ax[0].p + r.uy) * ax[1].p * ax[2].p;
            phase_span se = span_of(&ax[2], re, ax[2].p);
            size_t step = ax[2].s, len = se.hi - se.lo;
            for (size_t ux = sx.lo; ux < sx.hi; ux++) {
                float *row = plane + span_index(&sx, &ax[1], ux) * ax[2].n + span_index(&se, &ax[2], se.lo);
                const float *in = src + ux * ax[2].p + se.lo;
                for (size_t u = 0; u < len; u++) row[u * step] += in[u];
            }
        }
    }
}

void evae_conv_clear_phase(const evae_conv3d *L, float *phase, size_t items)
{
    size_t planes = items * L->c_phased;
#pragma omp parallel for num_threads(evae_threads()) schedule(static)
    for (size_t i = 0; i < planes; i++) memset(phase + i * L->pvol, 0, L->pvol * sizeof(float));
}

/* Which phase, and which tap of that phase, a kernel tap (ky, kx, ke) is. */
size_t evae_conv_phase_index(const evae_conv3d *L, size_t ky, size_t kx, size_t ke)
{
    const evae_conv_axis *ax = L->ax;
    return ((ky % ax[0].s) * ax[1].phases + kx % ax[1].s) * ax[2].phases + ke % ax[2].s;
}

size_t evae_conv_tap_index(const evae_conv3d *L, size_t ky, size_t kx, size_t ke)
{
    const evae_conv_axis *ax = L->ax;
    return ((ky / ax[0].s) * ax[1].kp + kx / ax[1].s) * ax[2].kp + ke / ax[2].s;
}

void evae_conv_fill_bias(const evae_conv3d *L, float *y, const float *b, size_t channels, size_t volume)
{
    size_t planes = L->batch * channels;
#pragma omp parallel for num_threads(evae_threads()) schedule(static)
    for (size_t i = 0; i < planes; i++) {
        float value = b ? b[i % channels] : 0.0f;
        float *p = y + i * volume;
        for (size_t j = 0; j < volume; j++) p[j] = value;
    }
}

/* db[c] += Σ_n Σ_p dy[n,c,p], summed in double, one channel per thread.
 * Eight partial sums (point j goes to sum j mod 8, combined in order at
 * the end) break the chain of dependent additions that made one sum cost
 * four cycles a point: a fixed order still, whatever the thread count. */
void evae_conv_bias_gradient(const evae_conv3d *L, float *db, const float *dy, size_t channels, size_t volume)
{
#pragma omp parallel for num_threads(evae_threads()) schedule(static)
    for (size_t c = 0; c < channels; c++) {
        double part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t n = 0; n < L->batch; n++) {
            const float *p = dy + (n * channels + c) * volume;
            size_t j = 0;
            for (; j + 8 <= volume; j += 8)
                for (int l = 0; l < 8; l++) part[l] += p[j + (size_t)l];
            for (; j < volume; j++) part[j % 8] += p[j];
        }
        double sum = 0.0;
        for (int l = 0; l < 8; l++) sum += part[l];
        db[c] += (float)sum;
    }
}

/* Inside a layer call every GEMM runs single-threaded and OpenMP spreads
 * them: two thread pools spinning against each other on few cores cost more
 * than they give, and one thread per GEMM keeps the bits independent of the
 * thread count. Returns the BLAS thread count to restore. */
int evae_conv_blas_single(void)
{
    int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
    return saved;
}

void evae_conv_blas_restore(int saved)
{
    if (saved != 1) openblas_set_num_threads(saved);
}
