/*
 * Preprocessing: separable Gaussian blur, percentiles and min-max scaling,
 * spatial mean and median filters, and the chain that strings them together.
 *
 * Every filter reproduces scipy.ndimage with mode='reflect' (half-sample
 * symmetric: d c b a | a b c d | d c b a) so that SciPy can serve as the
 * test oracle. That extension is periodic with period 2n, which lets any
 * offset fold back into the axis however far out it lies, and lets a
 * kernel wider than the axis (radius r > n) be folded onto radius n.
 *
 * Memory: the blur and the mean filter work line by line in small per-thread
 * buffers; the percentiles and the median filter need one cube-sized copy.
 * The chain allocates everything before it touches the cube.
 */
#include "cube_private.h"
#include "../core/options_out.h"

#include <float.h>
#include <math.h>
#include <string.h>

#ifdef _OPENMP
#include <omp.h>
#define EVAE_OMP(directive) _Pragma(directive)
static int thread_index(void)
{
    return omp_get_thread_num();
}
#else
#define EVAE_OMP(directive)
static int thread_index(void)
{
    return 0;
}
#endif

/* Beyond these the work is absurd (a σ of 1e6 already means an 8-million-tap
 * kernel) and the sizes would overflow: refuse rather than hang. */
#define SIGMA_MAX 1e6
#define MEDIAN_SIDE_MAX 255

/* ---- the reflect boundary -------------------------------------------------- */

/* Index into an axis of length n of position i of its 'reflect' extension. */
static size_t reflect_index(ptrdiff_t i, size_t n)
{
    ptrdiff_t period = 2 * (ptrdiff_t)n;
    ptrdiff_t m = i % period;
    if (m < 0) m += period;
    return (size_t)(m < (ptrdiff_t)n ? m : period - 1 - m);
}

/* ---- symmetric kernels ------------------------------------------------------ */

/* Weights h[j] for the offsets +j and −j, j = 0 … radius. */
typedef struct sym_kernel {
    size_t radius;
    double *h;
} sym_kernel;

static void kernel_free(sym_kernel *k)
{
    evae_free(k->h);
    k->h = NULL;
    k->radius = 0;
}

/* Slot of h[] that tap k of a kernel folded onto an axis of length n adds
 * to: the reflect extension repeats every 2n samples, so tap k acts exactly
 * as tap k mod 2n. Residues in (n, 2n) are the negative offsets, which h[]
 * holds by symmetry (SIZE_MAX: skip). Offsets n and −n read the same sample,
 * so residue n's weight is later split between them. */
static size_t folded_slot(ptrdiff_t k, size_t n)
{
    ptrdiff_t period = 2 * (ptrdiff_t)n;
    ptrdiff_t d = k % period;
    if (d < 0) d += period;
    return d <= (ptrdiff_t)n ? (size_t)d : SIZE_MAX;
}

/* scipy.ndimage's Gaussian: radius r = int(4σ + 0.5), weights exp(−x²/2σ²)
 * normalised to sum 1; a kernel longer than the axis (r > n) is folded onto
 * radius n, which gives the same result in O(n) taps. */
static eelsvae_status gaussian_kernel(double sigma, size_t n, sym_kernel *out)
{
    size_t r = (size_t)(4.0 * sigma + 0.5);
    size_t radius = r < n ? r : n;
    double *h = NULL;
    EVAE_TRY(evae_alloc_zeros(radius + 1, sizeof(double), (void **)&h, "Gaussian kernel"));
    double sigma2 = sigma * sigma;
    double total = 0.0;
    for (ptrdiff_t k = -(ptrdiff_t)r; k <= (ptrdiff_t)r; k++) {
        double phi = exp(-0.5 / sigma2 * (double)k * (double)k);
        total += phi;
        if (r <= n) {
            if (k >= 0) h[k] = phi;
        } else {
            size_t slot = folded_slot(k, n);
            if (slot != SIZE_MAX) h[slot] += slot == n ? 0.5 * phi : phi;
        }
    }
    for (size_t j = 0; j <= radius; j++) h[j] /= total;
    out->radius = radius;
    out->h = h;
    return EELSVAE_OK;
}

/* ---- per-thread line buffers ----------------------------------------------- */

/* Doubles each thread needs to filter one line along any axis: the y or x
 * line of spectra (max(ny, nx)·ne), or an energy line with its mirrored
 * margins (≤ 3·ne, margins never exceed ne after folding), plus ne of
 * accumulators. */
typedef struct line_workspace {
    int threads;
    size_t per_thread;
    double *buffer;
} line_workspace;

static eelsvae_status workspace_alloc(const eelsvae_cube *cube, line_workspace *ws)
{
    size_t longest = cube->ny > cube->nx ? cube->ny : cube->nx;
    if (longest < 3) longest = 3;
    size_t per_thread = 0;
    EVAE_TRY(evae_mul(longest + 1, cube->ne, &per_thread, "filter line buffer"));
    /* Per-thread buffers are small next to the cube (a 192 × 192 cube needs
     * 1/96 of its size per thread); for tiny cubes or many threads, cap the
     * threads so the buffers together stay within a quarter of the cube. */
    size_t cap = evae_cube_samples(cube) / 8 / per_thread;
    size_t threads = (size_t)evae_threads();
    if (threads > cap) threads = cap;
    if (threads < 1) threads = 1;
    double *buffer = NULL;
    EVAE_TRY(evae_alloc_array(threads * per_thread, sizeof(double), (void **)&buffer, "filter line buffers"));
    ws->threads = (int)threads;
    ws->per_thread = per_thread;
    ws->buffer = buffer;
    return EELSVAE_OK;
}

static void workspace_free(line_workspace *ws)
{
    evae_free(ws->buffer);
    ws->buffer = NULL;
}

/* ---- separable passes ----------------------------------------------------- */

/* Filter a line of n vectors (ne doubles each, contiguous in src) with a
 * symmetric kernel; vector i goes to out + i·stride as floats. The sum is
 * ordered as SciPy's symmetric correlate: h0·c + Σ h_j·(left + right). */
static void convolve_vectors(const double *restrict src, size_t n, size_t ne, const sym_kernel *k,
                             double *restrict acc, float *restrict out, size_t stride)
{
    for (size_t i = 0; i < n; i++) {
        const double *centre = src + i * ne;
        for (size_t e = 0; e < ne; e++) acc[e] = k->h[0] * centre[e];
        for (size_t j = 1; j <= k->radius; j++) {
            const double *left = src + reflect_index((ptrdiff_t)i - (ptrdiff_t)j, n) * ne;
            const double *right = src + reflect_index((ptrdiff_t)i + (ptrdiff_t)j, n) * ne;
            double w = k->h[j];
            for (size_t e = 0; e < ne; e++) acc[e] += w * (left[e] + right[e]);
        }
        float *o = out + i * stride;
        for (size_t e = 0; e < ne; e++) o[e] = (float)acc[e];
    }
}

/* The mean of the `side` consecutive vectors nearest each one: centred
 * where the line allows, shifted inward at its ends, the whole line when it
 * is shorter. Every output averages the same number of distinct inputs, so
 * the noise falls alike across the scan; a mirrored window (SciPy's
 * uniform_filter) counts an edge pixel twice, and a 3 × 3 mean then leaves
 * the scan's one-pixel frame noisier than its bulk: on a noisy SI, a frame
 * of false alarms. Sums run left to right in double. */
static void box_vectors(const double *restrict src, size_t n, size_t ne, size_t side, double *restrict acc,
                        float *restrict out, size_t stride)
{
    size_t width = side < n ? side : n, r = (side - 1) / 2;
    for (size_t i = 0; i < n; i++) {
        size_t first = i > r ? i - r : 0;
        if (first + width > n) first = n - width;
        for (size_t e = 0; e < ne; e++) acc[e] = 0.0;
        for (size_t j = first; j < first + width; j++) {
            const double *v = src + j * ne;
            for (size_t e = 0; e < ne; e++) acc[e] += v[e];
        }
        float *o = out + i * stride;
        for (size_t e = 0; e < ne; e++) o[e] = (float)(acc[e] / (double)width);
    }
}

/* One pass along y or x: a symmetric kernel on the mirrored axis (the
 * blur), or, with box > 1, the inward box of box_vectors (the mean). */
typedef struct line_filter {
    const sym_kernel *kernel;
    size_t box;
} line_filter;

static void filter_line(const double *src, size_t n, size_t ne, const line_filter *f, double *acc, float *out,
                        size_t stride)
{
    if (f->box > 1) box_vectors(src, n, ne, f->box, acc, out, stride);
    else convolve_vectors(src, n, ne, f->kernel, acc, out, stride);
}

/* Along y: one column of spectra (fixed x) at a time, gathered into the
 * thread's buffer so the in-place write cannot disturb the input. */
static void filter_axis_y(eelsvae_cube *cube, const line_filter *f, const line_workspace *ws)
{
    size_t ny = cube->ny, nx = cube->nx, ne = cube->ne;
    float *data = cube->data;
    int nt = ws->threads;
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static)")
    for (size_t x = 0; x < nx; x++) {
        double *line = ws->buffer + (size_t)thread_index() * ws->per_thread;
        double *acc = line + ny * ne;
        for (size_t y = 0; y < ny; y++) {
            const float *s = data + (y * nx + x) * ne;
            for (size_t e = 0; e < ne; e++) line[y * ne + e] = s[e];
        }
        filter_line(line, ny, ne, f, acc, data + x * ne, nx * ne);
    }
}

/* Along x: one row of spectra (fixed y) at a time. */
static void filter_axis_x(eelsvae_cube *cube, const line_filter *f, const line_workspace *ws)
{
    size_t ny = cube->ny, nx = cube->nx, ne = cube->ne;
    float *data = cube->data;
    int nt = ws->threads;
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static)")
    for (size_t y = 0; y < ny; y++) {
        double *line = ws->buffer + (size_t)thread_index() * ws->per_thread;
        double *acc = line + nx * ne;
        const float *s = data + y * nx * ne;
        for (size_t i = 0; i < nx * ne; i++) line[i] = s[i];
        filter_line(line, nx, ne, f, acc, data + y * nx * ne, ne);
    }
}

/* Along energy: each spectrum is copied with its mirrored margins, so the
 * inner loop runs over contiguous channels without index arithmetic. */
static void filter_axis_e(eelsvae_cube *cube, const sym_kernel *k, const line_workspace *ws)
{
    size_t pixels = evae_cube_pixels(cube), ne = cube->ne, r = k->radius;
    float *data = cube->data;
    int nt = ws->threads;
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static)")
    for (size_t p = 0; p < pixels; p++) {
        double *ext = ws->buffer + (size_t)thread_index() * ws->per_thread;
        double *acc = ext + ne + 2 * r;
        float *s = data + p * ne;
        for (size_t t = 0; t < r; t++) {
            ext[t] = s[reflect_index((ptrdiff_t)t - (ptrdiff_t)r, ne)];
            ext[r + ne + t] = s[reflect_index((ptrdiff_t)(ne + t), ne)];
        }
        for (size_t e = 0; e < ne; e++) ext[r + e] = s[e];
        const double *centre = ext + r;
        for (size_t e = 0; e < ne; e++) acc[e] = k->h[0] * centre[e];
        for (size_t j = 1; j <= r; j++) {
            double w = k->h[j];
            const double *left = centre - j, *right = centre + j;
            for (size_t e = 0; e < ne; e++) acc[e] += w * (left[e] + right[e]);
        }
        for (size_t e = 0; e < ne; e++) s[e] = (float)acc[e];
    }
}

/* ---- Gaussian blur ----------------------------------------------------------- */

static eelsvae_status check_sigma(double sigma, const char *name)
{
    if (!(sigma >= 0.0 && sigma <= SIGMA_MAX))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Gaussian blur: %s = %g must lie in [0, %g]", name, sigma,
                         SIGMA_MAX);
    return EELSVAE_OK;
}

/* The three kernels of a blur, built before the cube is touched. An axis
 * whose kernel is the identity (σ = 0, or radius 0) gets radius 0. */
typedef struct blur_plan {
    sym_kernel axis[3];
} blur_plan;

static void blur_plan_free(blur_plan *plan)
{
    for (int a = 0; a < 3; a++) kernel_free(&plan->axis[a]);
}

static eelsvae_status blur_plan_build(const eelsvae_cube *cube, const double sigma[3], blur_plan *plan)
{
    const size_t lengths[3] = {cube->ny, cube->nx, cube->ne};
    memset(plan, 0, sizeof *plan);
    for (int a = 0; a < 3; a++) {
        if (sigma[a] == 0.0) continue;
        eelsvae_status st = gaussian_kernel(sigma[a], lengths[a], &plan->axis[a]);
        if (st != EELSVAE_OK) {
            blur_plan_free(plan);
            return st;
        }
    }
    return EELSVAE_OK;
}

static void blur_apply(eelsvae_cube *cube, const blur_plan *plan, const line_workspace *ws)
{
    const line_filter y = {&plan->axis[0], 1}, x = {&plan->axis[1], 1};
    if (plan->axis[0].radius > 0) filter_axis_y(cube, &y, ws);
    if (plan->axis[1].radius > 0) filter_axis_x(cube, &x, ws);
    if (plan->axis[2].radius > 0) filter_axis_e(cube, &plan->axis[2], ws);
}

eelsvae_status eelsvae_cube_gaussian_blur(eelsvae_cube *cube, double sigma_y, double sigma_x, double sigma_e)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "Gaussian blur: NULL cube");
    const double sigma[3] = {sigma_y, sigma_x, sigma_e};
    EVAE_TRY(check_sigma(sigma_y, "sigma_y"));
    EVAE_TRY(check_sigma(sigma_x, "sigma_x"));
    EVAE_TRY(check_sigma(sigma_e, "sigma_e"));
    blur_plan plan;
    EVAE_TRY(blur_plan_build(cube, sigma, &plan));
    line_workspace ws = {0, 0, NULL};
    eelsvae_status st = workspace_alloc(cube, &ws);
    if (st == EELSVAE_OK) blur_apply(cube, &plan, &ws);
    workspace_free(&ws);
    blur_plan_free(&plan);
    return st;
}

/* ---- selection and percentiles ---------------------------------------------- */

static void swap_floats(float *a, float *b)
{
    float t = *a;
    *a = *b;
    *b = t;
}

/* Floyd–Rivest selection: afterwards a[k] holds the value a full sort would
 * put there, everything in [left, k) is ≤ it and everything in (k, right]
 * ≥ it. Expected n + min(k, n − k) comparisons, so two percentiles of a
 * 49-million-sample cube cost about two passes. NaN cannot make the scans
 * run out of bounds (every scan stops at an element failing its test). */
static void select_nth(float *a, ptrdiff_t left, ptrdiff_t right, ptrdiff_t k)
{
    while (right > left) {
        if (right - left > 600) {
            /* Narrow to a sample-sized range that very likely holds the
             * k-th value, so the big partition below splits near k. */
            double n = (double)(right - left + 1);
            double i = (double)(k - left + 1);
            double z = log(n);
            double s = 0.5 * exp(2.0 * z / 3.0);
            double sd = 0.5 * sqrt(z * s * (n - s) / n) * (i - n / 2 < 0 ? -1.0 : 1.0);
            double lo = (double)k - i * s / n + sd;
            double hi = (double)k + (n - i) * s / n + sd;
            ptrdiff_t new_left = lo > (double)left ? (ptrdiff_t)lo : left;
            ptrdiff_t new_right = hi < (double)right ? (ptrdiff_t)hi : right;
            if (new_left > k) new_left = k; /* defensive: k must stay inside */
            if (new_right < k) new_right = k;
            select_nth(a, new_left, new_right, k);
        }
        float t = a[k];
        ptrdiff_t i = left, j = right;
        swap_floats(&a[left], &a[k]);
        if (a[right] > t) swap_floats(&a[right], &a[left]);
        while (i < j) {
            swap_floats(&a[i], &a[j]);
            i++;
            j--;
            while (a[i] < t) i++;
            while (a[j] > t) j--;
        }
        if (a[left] == t) {
            swap_floats(&a[left], &a[j]);
        } else {
            j++;
            swap_floats(&a[j], &a[right]);
        }
        if (j <= k) left = j + 1;
        if (k <= j) right = j - 1;
    }
}

static float min_of(const float *a, size_t n)
{
    float m = a[0];
    for (size_t i = 1; i < n; i++) m = a[i] < m ? a[i] : m;
    return m;
}

static float max_of(const float *a, size_t n)
{
    float m = a[0];
    for (size_t i = 1; i < n; i++) m = a[i] > m ? a[i] : m;
    return m;
}

/* NumPy's 'linear' method: position h = (n − 1)·p/100 between the sorted
 * values v[⌊h⌋] and v[⌊h⌋ + 1], with NumPy's two-sided lerp. */
typedef struct percentile_position {
    size_t below; /* ⌊h⌋ */
    double gamma; /* h − ⌊h⌋ */
} percentile_position;

static percentile_position percentile_at(size_t n, double p)
{
    double h = (double)(n - 1) * (p / 100.0);
    double fl = floor(h);
    percentile_position pos = {(size_t)fl, h - fl};
    if (pos.below >= n - 1) {
        pos.below = n - 1;
        pos.gamma = 0.0;
    }
    return pos;
}

static double numpy_lerp(double a, double b, double t)
{
    double diff = b - a;
    return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

static eelsvae_status report_non_finite(const eelsvae_cube *cube, const char *what)
{
    size_t n = evae_cube_samples(cube);
    for (size_t i = 0; i < n; i++) {
        float v = cube->data[i];
        if (!isfinite(v)) {
            /* The energy too: a cube cropped to a model's range numbers its channels afresh. */
            size_t p = i / cube->ne, e = i % cube->ne;
            const evae_axis_calibration *ax = &cube->axis[EELSVAE_AXIS_E];
            return evae_fail(EELSVAE_ERR_NUMERIC, "%s: sample at pixel (y %zu, x %zu), channel %zu (%g %s) is %s",
                             what, p / cube->nx, p % cube->nx, e, ax->offset + ax->scale * (double)e, ax->units,
                             isnan(v) ? "NaN" : (v > 0 ? "+infinity" : "-infinity"));
        }
    }
    return EELSVAE_OK;
}

/* Copy the samples into scratch, counting the non-finite ones as we go. */
static eelsvae_status copy_finite(const eelsvae_cube *cube, float *scratch, const char *what)
{
    size_t n = evae_cube_samples(cube);
    const float *src = cube->data;
    size_t bad = 0;
    int nt = evae_threads();
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static) reduction(+ : bad)")
    for (size_t i = 0; i < n; i++) {
        float v = src[i];
        scratch[i] = v;
        bad += !(fabsf(v) <= FLT_MAX);
    }
    if (bad) return report_non_finite(cube, what);
    return EELSVAE_OK;
}

/* Percentiles by selection on scratch (one cube-sized buffer): select the
 * upper position first, which splits the copy; its neighbour is the minimum
 * of the small top part; the lower position is then selected inside the
 * bottom part, and its neighbour below is the maximum of the small part
 * under it. */
static eelsvae_status percentiles_into(const eelsvae_cube *cube, double p_lo, double p_hi, float *scratch,
                                       double *v_lo, double *v_hi)
{
    EVAE_TRY(copy_finite(cube, scratch, "percentiles"));
    size_t n = evae_cube_samples(cube);
    percentile_position lo = percentile_at(n, p_lo), hi = percentile_at(n, p_hi);

    select_nth(scratch, 0, (ptrdiff_t)n - 1, (ptrdiff_t)hi.below);
    double hi_a = scratch[hi.below];
    double hi_b = hi.below + 1 < n ? min_of(scratch + hi.below + 1, n - hi.below - 1) : hi_a;

    double lo_a = hi_a, lo_b = hi_b;
    if (lo.below + 1 == hi.below) {
        lo_a = max_of(scratch, hi.below);
        lo_b = hi_a;
    } else if (lo.below + 1 < hi.below) {
        select_nth(scratch, 0, (ptrdiff_t)hi.below - 1, (ptrdiff_t)lo.below + 1);
        lo_b = scratch[lo.below + 1];
        lo_a = max_of(scratch, lo.below + 1);
    }
    *v_lo = numpy_lerp(lo_a, lo_b, lo.gamma);
    *v_hi = numpy_lerp(hi_a, hi_b, hi.gamma);
    return EELSVAE_OK;
}

static eelsvae_status check_percentiles(double p_lo, double p_hi, const char *lo_name, const char *hi_name)
{
    if (!(p_lo >= 0.0 && p_lo <= 100.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "percentiles: %s = %g lies outside [0, 100]", lo_name, p_lo);
    if (!(p_hi >= 0.0 && p_hi <= 100.0))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "percentiles: %s = %g lies outside [0, 100]", hi_name, p_hi);
    if (!(p_lo < p_hi))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "percentiles: %s = %g is not below %s = %g", lo_name, p_lo,
                         hi_name, p_hi);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_percentiles(const eelsvae_cube *cube, double p_lo, double p_hi, double *v_lo,
                                        double *v_hi)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "percentiles: NULL cube");
    if (!v_lo || !v_hi) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "percentiles: NULL output pointer");
    EVAE_TRY(check_percentiles(p_lo, p_hi, "p_lo", "p_hi"));
    float *scratch = NULL;
    EVAE_TRY(evae_alloc_array(evae_cube_samples(cube), sizeof(float), (void **)&scratch, "percentile scratch"));
    double lo = 0.0, hi = 0.0;
    eelsvae_status st = percentiles_into(cube, p_lo, p_hi, scratch, &lo, &hi);
    evae_free(scratch);
    if (st != EELSVAE_OK) return st;
    *v_lo = lo;
    *v_hi = hi;
    return EELSVAE_OK;
}

/* ---- scaling ---------------------------------------------------------------- */

static eelsvae_status check_scaling(double lo, double hi, const char *lo_name, const char *hi_name)
{
    if (!isfinite(lo) || !isfinite(hi) || !isfinite(hi - lo) || !(hi > lo))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "scaling: %s = %g and %s = %g must be finite with %s > %s (and a finite difference)",
                         lo_name, lo, hi_name, hi, hi_name, lo_name);
    return EELSVAE_OK;
}

/* Multiply by the reciprocal unless hi − lo is so small that it overflows
 * (0·∞ would then turn samples equal to lo into NaN): divide instead.
 * NaN samples stay NaN. */
static void scale_apply(eelsvae_cube *cube, double lo, double hi)
{
    size_t n = evae_cube_samples(cube);
    float *data = cube->data;
    double range = hi - lo, inverse = 1.0 / range;
    int divide = !isfinite(inverse);
    int nt = evae_threads();
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static)")
    for (size_t i = 0; i < n; i++) {
        double d = (double)data[i] - lo;
        double t = divide ? d / range : d * inverse;
        data[i] = (float)(t < 0.0 ? 0.0 : (t > 1.0 ? 1.0 : t));
    }
}

eelsvae_status eelsvae_cube_scale(eelsvae_cube *cube, double lo, double hi)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "scaling: NULL cube");
    EVAE_TRY(check_scaling(lo, hi, "lo", "hi"));
    scale_apply(cube, lo, hi);
    return EELSVAE_OK;
}

/* ---- mean filter ------------------------------------------------------------- */

static eelsvae_status check_side(size_t k, size_t max, const char *what, const char *name)
{
    if (k == 0 || k % 2 == 0 || k > max)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: %s = %zu must be odd, from 1 to %zu", what, name, k, max);
    return EELSVAE_OK;
}

/* A k × k mean is a box pass along y, then one along x (k = 1: none). */
static void mean_apply(eelsvae_cube *cube, size_t k, const line_workspace *ws)
{
    if (k == 1) return;
    const line_filter box = {NULL, k};
    filter_axis_y(cube, &box, ws);
    filter_axis_x(cube, &box, ws);
}

eelsvae_status eelsvae_cube_mean_filter(eelsvae_cube *cube, size_t k)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "mean filter: NULL cube");
    EVAE_TRY(check_side(k, SIZE_MAX, "mean filter", "k"));
    if (k == 1) return EELSVAE_OK;
    line_workspace ws = {0, 0, NULL};
    EVAE_TRY(workspace_alloc(cube, &ws));
    mean_apply(cube, k, &ws);
    workspace_free(&ws);
    return EELSVAE_OK;
}

/* ---- median filter ------------------------------------------------------------ */

#define SORT2(a, b)                                                                                              \
    do {                                                                                                         \
        float lo_ = (a) < (b) ? (a) : (b);                                                                       \
        float hi_ = (a) < (b) ? (b) : (a);                                                                       \
        (a) = lo_;                                                                                               \
        (b) = hi_;                                                                                               \
    } while (0)

/* Median of nine per channel with a 19-exchange network (Paeth, Graphics
 * Gems), branch-free so it vectorises across channels. */
static void median9_spectrum(const float *const p[9], float *restrict out, size_t ne)
{
    const float *restrict p0 = p[0], *restrict p1 = p[1], *restrict p2 = p[2];
    const float *restrict p3 = p[3], *restrict p4 = p[4], *restrict p5 = p[5];
    const float *restrict p6 = p[6], *restrict p7 = p[7], *restrict p8 = p[8];
    EVAE_OMP("omp simd")
    for (size_t e = 0; e < ne; e++) {
        float v0 = p0[e], v1 = p1[e], v2 = p2[e], v3 = p3[e], v4 = p4[e];
        float v5 = p5[e], v6 = p6[e], v7 = p7[e], v8 = p8[e];
        SORT2(v1, v2); SORT2(v4, v5); SORT2(v7, v8);
        SORT2(v0, v1); SORT2(v3, v4); SORT2(v6, v7);
        SORT2(v1, v2); SORT2(v4, v5); SORT2(v7, v8);
        SORT2(v0, v3); SORT2(v5, v8); SORT2(v4, v7);
        SORT2(v3, v6); SORT2(v1, v4); SORT2(v2, v5);
        SORT2(v4, v7); SORT2(v4, v2); SORT2(v6, v4);
        SORT2(v4, v2);
        out[e] = v4;
    }
}

/* Windows of up to 49 values (k ≤ 7) go through a sorting network applied
 * to a block of channels at once, which vectorises; wider windows select
 * per channel. The network is Batcher's odd–even merge sort on the window
 * padded to a power of two (−∞ pads below, +∞ above, so the median keeps a
 * known row), pruned to the comparators that can reach that row. */
#define NETWORK_COUNT_MAX 49
#define NETWORK_WIDTH_MAX 64
#define NETWORK_PAIRS_MAX 543 /* Batcher's comparator count for 64 inputs */
#define NETWORK_BLOCK 64      /* channels per pass through the network */

typedef struct median_network {
    size_t width;    /* rows: the window padded to a power of two */
    size_t low_pads; /* −∞ rows before the window's values */
    size_t middle;   /* row holding the median once the network has run */
    size_t pairs;
    uint8_t pair[NETWORK_PAIRS_MAX][2];
} median_network;

static void median_network_build(size_t count, median_network *net)
{
    size_t width = 1;
    while (width < count) width *= 2;
    uint8_t all[NETWORK_PAIRS_MAX][2];
    size_t n = 0;
    for (size_t p = 1; p < width; p *= 2)
        for (size_t k = p; k >= 1; k /= 2)
            for (size_t j = k % p; j + k < width; j += 2 * k)
                for (size_t i = 0; i < k && i + j + k < width; i++)
                    if ((i + j) / (2 * p) == (i + j + k) / (2 * p)) {
                        all[n][0] = (uint8_t)(i + j);
                        all[n][1] = (uint8_t)(i + j + k);
                        n++;
                    }
    net->width = width;
    net->low_pads = (width - count) / 2;
    net->middle = net->low_pads + count / 2;
    /* Walk backwards from the median's row: a comparator matters when it
     * writes a row that matters later, and then both its inputs matter. */
    bool needed[NETWORK_WIDTH_MAX] = {false};
    needed[net->middle] = true;
    size_t kept = 0;
    uint8_t keep[NETWORK_PAIRS_MAX];
    for (size_t q = n; q-- > 0;) {
        keep[q] = needed[all[q][0]] || needed[all[q][1]];
        if (keep[q]) needed[all[q][0]] = needed[all[q][1]] = true;
    }
    for (size_t q = 0; q < n; q++)
        if (keep[q]) {
            net->pair[kept][0] = all[q][0];
            net->pair[kept][1] = all[q][1];
            kept++;
        }
    net->pairs = kept;
}

/* rows: width·NETWORK_BLOCK floats of per-thread scratch. */
static void median_network_spectrum(const median_network *net, const float *const *window, size_t count,
                                    float *rows, float *out, size_t ne)
{
    for (size_t e0 = 0; e0 < ne; e0 += NETWORK_BLOCK) {
        size_t lanes = ne - e0 < NETWORK_BLOCK ? ne - e0 : NETWORK_BLOCK;
        for (size_t t = 0; t < net->width; t++) {
            float *row = rows + t * NETWORK_BLOCK;
            size_t v = t - net->low_pads; /* wraps for the low pads */
            if (t < net->low_pads || v >= count) {
                float pad = t < net->low_pads ? -INFINITY : INFINITY;
                for (size_t b = 0; b < NETWORK_BLOCK; b++) row[b] = pad;
            } else {
                memcpy(row, window[v] + e0, lanes * sizeof(float));
                for (size_t b = lanes; b < NETWORK_BLOCK; b++) row[b] = 0.0f;
            }
        }
        for (size_t q = 0; q < net->pairs; q++) {
            float *restrict a = rows + (size_t)net->pair[q][0] * NETWORK_BLOCK;
            float *restrict b = rows + (size_t)net->pair[q][1] * NETWORK_BLOCK;
            EVAE_OMP("omp simd")
            for (size_t l = 0; l < NETWORK_BLOCK; l++) SORT2(a[l], b[l]);
        }
        memcpy(out + e0, rows + net->middle * NETWORK_BLOCK, lanes * sizeof(float));
    }
}

/* Any odd k: gather the k² window values per channel and select the middle
 * one (scipy's rank filter at rank k²/2). */
static void median_select_spectrum(const float *const *window, size_t count, float *scratch, float *out, size_t ne)
{
    for (size_t e = 0; e < ne; e++) {
        for (size_t t = 0; t < count; t++) scratch[t] = window[t][e];
        select_nth(scratch, 0, (ptrdiff_t)count - 1, (ptrdiff_t)(count / 2));
        out[e] = scratch[count / 2];
    }
}

/* Per-thread scratch: k² window pointers, and the network's rows or the
 * values to select from. */
typedef struct median_scratch {
    int threads;
    size_t window_stride, values_stride;
    const float **window;
    float *values;
    median_network net;
} median_scratch;

static void median_scratch_free(median_scratch *ms)
{
    evae_free((void *)ms->window);
    evae_free(ms->values);
    ms->window = NULL;
    ms->values = NULL;
}

static eelsvae_status median_scratch_alloc(const eelsvae_cube *cube, size_t k, median_scratch *ms)
{
    memset(ms, 0, sizeof *ms);
    size_t threads = (size_t)evae_threads();
    if (threads > cube->ny) threads = cube->ny;
    ms->threads = (int)threads;
    if (k == 3) return EELSVAE_OK; /* the nine-value network needs none */
    size_t count = k * k; /* k ≤ 255 */
    ms->window_stride = count;
    if (count <= NETWORK_COUNT_MAX) {
        median_network_build(count, &ms->net);
        ms->values_stride = ms->net.width * NETWORK_BLOCK;
    } else {
        ms->values_stride = count;
    }
    EVAE_TRY(evae_alloc_array(count * threads, sizeof(float *), (void **)&ms->window, "median window"));
    eelsvae_status st =
        evae_alloc_array(ms->values_stride * threads, sizeof(float), (void **)&ms->values, "median values");
    if (st != EELSVAE_OK) median_scratch_free(ms);
    return st;
}

/* Median of every k × k window of src (a copy of the cube) into the cube. */
static void median_apply(eelsvae_cube *cube, size_t k, const float *src, const median_scratch *ms)
{
    size_t ny = cube->ny, nx = cube->nx, ne = cube->ne;
    ptrdiff_t r = (ptrdiff_t)(k / 2);
    size_t count = k * k;
    float *data = cube->data;
    int nt = ms->threads;
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static)")
    for (size_t y = 0; y < ny; y++) {
        size_t me = (size_t)thread_index();
        const float *nine[9];
        const float **window = k == 3 ? nine : ms->window + me * ms->window_stride;
        float *values = k == 3 ? NULL : ms->values + me * ms->values_stride;
        for (size_t x = 0; x < nx; x++) {
            size_t t = 0;
            for (ptrdiff_t dy = -r; dy <= r; dy++) {
                size_t row = reflect_index((ptrdiff_t)y + dy, ny);
                for (ptrdiff_t dx = -r; dx <= r; dx++)
                    window[t++] = src + (row * nx + reflect_index((ptrdiff_t)x + dx, nx)) * ne;
            }
            float *out = data + (y * nx + x) * ne;
            if (k == 3)
                median9_spectrum(nine, out, ne);
            else if (count <= NETWORK_COUNT_MAX)
                median_network_spectrum(&ms->net, window, count, values, out, ne);
            else
                median_select_spectrum(window, count, values, out, ne);
        }
    }
}

static void copy_samples(const eelsvae_cube *cube, float *dst)
{
    memcpy(dst, cube->data, evae_cube_samples(cube) * sizeof(float));
}

eelsvae_status eelsvae_cube_median_filter(eelsvae_cube *cube, size_t k)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "median filter: NULL cube");
    EVAE_TRY(check_side(k, MEDIAN_SIDE_MAX, "median filter", "k"));
    if (k == 1) return EELSVAE_OK;
    float *copy = NULL;
    EVAE_TRY(evae_alloc_array(evae_cube_samples(cube), sizeof(float), (void **)&copy, "median filter copy"));
    median_scratch ms;
    eelsvae_status st = median_scratch_alloc(cube, k, &ms);
    if (st == EELSVAE_OK) {
        copy_samples(cube, copy);
        median_apply(cube, k, copy, &ms);
        median_scratch_free(&ms);
    }
    evae_free(copy);
    return st;
}

/* ---- the chain ---------------------------------------------------------------- */

eelsvae_status eelsvae_preprocess_options_init_sized(eelsvae_preprocess_options *opt, eelsvae_preset preset,
                                                     size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "preprocess options: NULL pointer");
    if (preset != EELSVAE_PRESET_PAPER && preset != EELSVAE_PRESET_FAST)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "preprocess options: unknown preset %d", (int)preset);
    /* The paper's chain; the fast preset leaves out the 3 × 3 spatial mean,
     * which blurs every small anomaly into its neighbours (a one-pixel
     * defect keeps a ninth of its signal, a disk's rim is smeared):
     * BENCHMARK.md's protocol measures F1 capped near 0.9 with it.
     * Filled whole here, then only the caller's struct_size bytes are written. */
    eelsvae_preprocess_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    for (int a = 0; a < 3; a++) o.sigma[a] = 0.5;
    o.percentile_lo = 1.0;
    o.percentile_hi = 99.0;
    o.use_fixed_scaling = 0;
    o.scale_lo = 0.0;
    o.scale_hi = 1.0;
    o.mean_filter = preset == EELSVAE_PRESET_PAPER ? 3 : 1;
    o.median_filter = 1;
    return evae_write_options(opt, struct_size, &o, sizeof o, "preprocess options");
}

/* Every field the chain will use, checked before anything is modified. */
static eelsvae_status check_options(const eelsvae_preprocess_options *o)
{
    static const char *const sigma_names[3] = {"sigma[0] (y)", "sigma[1] (x)", "sigma[2] (energy)"};
    for (int a = 0; a < 3; a++)
        if (!(o->sigma[a] >= 0.0 && o->sigma[a] <= SIGMA_MAX))
            return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "preprocess options: %s = %g must lie in [0, %g]",
                             sigma_names[a], o->sigma[a], SIGMA_MAX);
    if (o->use_fixed_scaling)
        EVAE_TRY(check_scaling(o->scale_lo, o->scale_hi, "scale_lo", "scale_hi"));
    else
        EVAE_TRY(check_percentiles(o->percentile_lo, o->percentile_hi, "percentile_lo", "percentile_hi"));
    EVAE_TRY(check_side(o->mean_filter, SIZE_MAX, "preprocess options", "mean_filter"));
    EVAE_TRY(check_side(o->median_filter, MEDIAN_SIDE_MAX, "preprocess options", "median_filter"));
    return EELSVAE_OK;
}

/* Non-finite samples would poison every step; a constant cube has no
 * percentile range to scale. Both are caught before the cube changes. */
static eelsvae_status check_cube_values(const eelsvae_cube *cube, int need_range)
{
    size_t n = evae_cube_samples(cube);
    const float *data = cube->data;
    size_t bad = 0;
    float lo = data[0], hi = data[0];
    int nt = evae_threads();
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static) reduction(+:bad) reduction(min:lo) reduction(max:hi)")
    for (size_t i = 0; i < n; i++) {
        float v = data[i];
        bad += !(fabsf(v) <= FLT_MAX);
        lo = v < lo ? v : lo;
        hi = v > hi ? v : hi;
    }
    if (bad) return report_non_finite(cube, "preprocess");
    if (need_range && lo == hi)
        return evae_fail(EELSVAE_ERR_NUMERIC,
                         "preprocess: every sample of the %zu × %zu × %zu cube equals %g; a constant cube cannot be "
                         "scaled to its percentiles",
                         cube->ny, cube->nx, cube->ne, (double)lo);
    return EELSVAE_OK;
}

/* Everything the chain allocates, taken before the first change so that
 * running out of memory leaves the cube as it was. */
typedef struct chain_resources {
    blur_plan blur;
    line_workspace ws;
    median_scratch median;
    float *copy; /* percentile scratch, then the median filter's source */
} chain_resources;

static void chain_free(chain_resources *res)
{
    blur_plan_free(&res->blur);
    workspace_free(&res->ws);
    median_scratch_free(&res->median);
    evae_free(res->copy);
    res->copy = NULL;
}

static eelsvae_status chain_alloc(const eelsvae_cube *cube, const eelsvae_preprocess_options *o,
                                  chain_resources *res)
{
    memset(res, 0, sizeof *res);
    EVAE_TRY(blur_plan_build(cube, o->sigma, &res->blur));
    EVAE_TRY(workspace_alloc(cube, &res->ws));
    if (o->median_filter > 1) EVAE_TRY(median_scratch_alloc(cube, o->median_filter, &res->median));
    if (!o->use_fixed_scaling || o->median_filter > 1)
        EVAE_TRY(evae_alloc_array(evae_cube_samples(cube), sizeof(float), (void **)&res->copy,
                                  "preprocess scratch cube"));
    return EELSVAE_OK;
}

static eelsvae_status chain_run(eelsvae_cube *cube, const eelsvae_preprocess_options *o, chain_resources *res,
                                double *lo, double *hi)
{
    blur_apply(cube, &res->blur, &res->ws);
    if (o->use_fixed_scaling) {
        *lo = o->scale_lo;
        *hi = o->scale_hi;
    } else {
        EVAE_TRY(percentiles_into(cube, o->percentile_lo, o->percentile_hi, res->copy, lo, hi));
        if (!(*hi > *lo))
            return evae_fail(EELSVAE_ERR_NUMERIC,
                             "preprocess: after the blur the %g-th and %g-th percentiles are both %g; the cube is too "
                             "nearly constant to scale",
                             o->percentile_lo, o->percentile_hi, *lo);
    }
    scale_apply(cube, *lo, *hi);
    mean_apply(cube, o->mean_filter, &res->ws);
    if (o->median_filter > 1) {
        copy_samples(cube, res->copy);
        median_apply(cube, o->median_filter, res->copy, &res->median);
    }
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_preprocess(eelsvae_cube *cube, const eelsvae_preprocess_options *opt,
                                       double *scale_lo, double *scale_hi)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "preprocess: NULL cube");
    eelsvae_preprocess_options o;
    eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER);
    EVAE_TRY(evae_read_options(&o, sizeof o, opt, "preprocess"));
    EVAE_TRY(check_options(&o));
    EVAE_TRY(check_cube_values(cube, !o.use_fixed_scaling));

    chain_resources res;
    eelsvae_status st = chain_alloc(cube, &o, &res);
    double lo = 0.0, hi = 0.0;
    if (st == EELSVAE_OK) st = chain_run(cube, &o, &res, &lo, &hi);
    chain_free(&res);
    if (st != EELSVAE_OK) return st;
    if (scale_lo) *scale_lo = lo;
    if (scale_hi) *scale_hi = hi;
    return EELSVAE_OK;
}

/* ---- the noise level, and the spatial mean it calls for ------------------ */

enum { NOISE_MIN_CHANNELS = 8 }; /* fewer, and the second differences say little about the noise */

/* The share of white noise's variance the blur lets through: the product
 * over the axes of Σ w² of each normalised kernel. */
static eelsvae_status blur_noise_gain(const double sigma[3], double *gain)
{
    *gain = 1.0;
    for (int a = 0; a < 3; a++) {
        if (sigma[a] == 0.0) continue;
        sym_kernel k = {0, NULL};
        /* Never folded (n large): the gain of the kernel itself, whatever the axis. */
        EVAE_TRY(gaussian_kernel(sigma[a], SIZE_MAX / 4, &k));
        double g = k.h[0] * k.h[0];
        for (size_t j = 1; j <= k.radius; j++) g += 2.0 * k.h[j] * k.h[j];
        kernel_free(&k);
        *gain *= g;
    }
    return EELSVAE_OK;
}

/* The PCC a perfect reconstruction would reach on this spectrum after a
 * blur that passes `gain` of the noise's variance: √(S / (S + gain·N)),
 * S the signal's variance over the window, N the noise's. N comes from the
 * second differences, which a spectrum smooth at the channel scale leaves to
 * the noise alone (white noise: var(x[i−1] − 2x[i] + x[i+1]) = 6σ²); S is
 * what the spectrum varies by beyond it. NaN for a flat spectrum. */
static double spectrum_noise_pcc(const float *s, size_t n, double gain)
{
    double mean = 0.0;
    for (size_t i = 0; i < n; i++) mean += s[i];
    mean /= (double)n;
    double total = 0.0, curvature = 0.0;
    for (size_t i = 0; i < n; i++) total += ((double)s[i] - mean) * ((double)s[i] - mean);
    for (size_t i = 1; i + 1 < n; i++) {
        double d = (double)s[i - 1] - 2.0 * (double)s[i] + (double)s[i + 1];
        curvature += d * d;
    }
    double noise = curvature / (6.0 * (double)(n - 2)), variance = total / (double)n;
    if (!(variance > 0.0)) return NAN;
    double signal = variance > noise ? variance - noise : 0.0;
    return sqrt(signal / (signal + gain * noise));
}

eelsvae_status eelsvae_preprocess_options_choose_spatial(eelsvae_preprocess_options *opt,
                                                         const eelsvae_cube *cube, double lo_ev, double hi_ev,
                                                         double *noise_pcc)
{
    static const char *const fn = "eelsvae_preprocess_options_choose_spatial";
    if (!opt || !cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL options or cube", fn);
    eelsvae_preprocess_options o;
    eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER);
    EVAE_TRY(evae_read_options(&o, sizeof o, opt, fn));
    EVAE_TRY(check_options(&o));
    size_t first = 0, n = cube->ne;
    if (!(isnan(lo_ev) && isnan(hi_ev))) EVAE_TRY(evae_energy_window(cube, lo_ev, hi_ev, &first, &n, fn));
    if (n < NOISE_MIN_CHANNELS)
        return evae_fail(EELSVAE_ERR_RANGE,
                         "%s: the window %g:%g holds %zu channels; estimating the noise needs at least %d (widen "
                         "the window)",
                         fn, lo_ev, hi_ev, n, NOISE_MIN_CHANNELS);
    double gain = 1.0;
    EVAE_TRY(blur_noise_gain(o.sigma, &gain));
    size_t pixels = evae_cube_pixels(cube);
    double *pcc = NULL;
    EVAE_TRY(evae_alloc_array(pixels, sizeof(double), (void **)&pcc, "noise estimate"));
    int nt = evae_threads();
    (void)nt;
    EVAE_OMP("omp parallel for num_threads(nt) schedule(static)")
    for (size_t p = 0; p < pixels; p++) pcc[p] = spectrum_noise_pcc(cube->data + p * cube->ne + first, n, gain);
    size_t kept = 0; /* flat spectra (an empty detector region) say nothing of the noise */
    for (size_t p = 0; p < pixels; p++)
        if (!isnan(pcc[p])) pcc[kept++] = pcc[p];
    if (!kept) {
        evae_free(pcc);
        return evae_fail(EELSVAE_ERR_NUMERIC, "%s: every spectrum is constant over %g:%g; there is no signal to "
                         "measure the noise against", fn, lo_ev, hi_ev);
    }
    double median = evae_median_doubles(pcc, kept);
    evae_free(pcc);
    o.mean_filter = median < EELSVAE_MEAN_FILTER_BELOW_PCC ? 3 : 1;
    if (median >= EELSVAE_SPATIAL_BLUR_BELOW_PCC) o.sigma[0] = o.sigma[1] = 0.0;
    if (noise_pcc) *noise_pcc = median;
    return evae_write_options(opt, opt->struct_size, &o, sizeof o, fn);
}
