/* The PCA basis: options, accessors, projection and reconstruction, and the
 * helpers the fit shares. The fit is in pca_fit.c, the file in pca_file.c.
 *
 * Projection and reconstruction walk the cube tile by tile. With C the
 * components (k × ne) and A = D_a·X·D_b − 1·μᵀ (see pca_private.h):
 *   scores = A·Cᵀ = D_a·(X·(C·D_b)ᵀ) − 1·(C·μ)ᵀ,
 *   X̂ = D_a⁻¹·(scores·C + 1·μᵀ)·D_b⁻¹ = D_a⁻¹·(scores·(C·D_b⁻¹) + 1·(D_b⁻¹μ)ᵀ),
 * so a tile costs one small GEMM on the cube's own rows for the scores and,
 * for reconstruct, one GEMM written straight into the output, where the
 * mean and the pixel weight are put back while the rows are in cache. The
 * cube is read once and the output written once. */
#define _DEFAULT_SOURCE /* MADV_HUGEPAGE */
#include "pca_private.h"
#include "../core/options_out.h"

#include <cblas.h>
#include <math.h>
#include <string.h>
#include <sys/mman.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* A tile of about this many bytes fits a core's L2 next to its products. */
#define PCA_TILE_BYTES (256u * 1024u)

/* ---- small shared helpers ------------------------------------------------ */

size_t evae_pca_tile_rows(size_t ne)
{
    size_t rows = PCA_TILE_BYTES / (ne * sizeof(float));
    return rows < 8 ? 8 : rows;
}

double evae_pca_sum_row(const float *x, size_t n)
{
    /* Eight running sums: the loop vectorises, and the order is fixed. */
    double acc[8] = {0};
    size_t e = 0;
    for (; e + 8 <= n; e += 8)
        for (int j = 0; j < 8; j++) acc[j] += (double)x[e + j];
    for (int j = 0; e < n; e++, j++) acc[j] += (double)x[e];
    return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

double evae_pca_poisson_sum(const float *x, size_t n)
{
    double sum = evae_pca_sum_row(x, n);
    int negative = 0;
    for (size_t e = 0; e < n; e++) negative |= x[e] < 0.0f;
    return negative || !isfinite(sum) ? -1.0 : sum;
}

size_t evae_pca_bad_channel(const float *x, size_t n, int negative)
{
    for (size_t e = 0; e < n; e++)
        if (!isfinite(x[e]) || (negative && x[e] < 0.0f)) return e;
    return n;
}

int evae_pca_blas_single(void)
{
    /* Each OpenMP thread runs its own single-threaded GEMMs on its tiles;
     * OpenBLAS's own threads would only fight them for the cores. The
     * setting is process-wide: a call that finds it at 1 (the caller's
     * choice, or another call of ours in flight) leaves it alone, so the
     * caller's value is what remains once every call has returned. */
    int saved = openblas_get_num_threads();
    if (saved != 1) openblas_set_num_threads(1);
    return saved;
}

void evae_pca_blas_restore(int saved)
{
    if (saved != 1) openblas_set_num_threads(saved);
}

int evae_pca_thread_index(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* Ask for 2 MiB pages on a big output buffer before it is first written:
 * faulting in 48 000 small pages costs more than computing the output. */
static void advise_huge_pages(void *data, size_t bytes)
{
#ifdef MADV_HUGEPAGE
    const uintptr_t huge = (uintptr_t)2 << 20;
    uintptr_t begin = ((uintptr_t)data + huge - 1) & ~(huge - 1);
    uintptr_t end = ((uintptr_t)data + bytes) & ~(huge - 1);
    if (end > begin) (void)madvise((void *)begin, end - begin, MADV_HUGEPAGE); /* a hint: failure is harmless */
#else
    (void)data;
    (void)bytes;
#endif
}

/* ---- the handle ---------------------------------------------------------- */

eelsvae_status eelsvae_pca_options_init_sized(eelsvae_pca_options *opt, size_t struct_size)
{
    if (!opt) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA options: NULL pointer");
    /* Filled whole here, then only the caller's struct_size bytes are written. */
    eelsvae_pca_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    o.components = 4;
    o.center = 1;
    o.poisson_normalize = 0;
    o.seed = 1;
    o.tolerance = 1e-3;
    o.max_iterations = 50;
    /* PCA is fitted on the SI it scores: untrimmed, 16 disks (9 % of the
     * pixels) claim components and Otsu's F1 falls to 0.21–0.30; 0.1 keeps
     * them out (F1 ≥ 0.999) at the cost of k + 1 fits. */
    o.trim_fraction = 0.1;
    return evae_write_options(opt, struct_size, &o, sizeof o, "PCA options");
}

eelsvae_status evae_pca_alloc(size_t k, size_t ne, eelsvae_pca **out)
{
    size_t kne = 0;
    EVAE_TRY(evae_mul(k, ne, &kne, "PCA components"));
    eelsvae_pca *pca = evae_malloc(sizeof *pca);
    if (!pca) return evae_fail(EELSVAE_ERR_NOMEM, "PCA basis: cannot allocate its handle");
    memset(pca, 0, sizeof *pca);
    pca->k = k;
    pca->ne = ne;
    eelsvae_status st = evae_alloc_array(ne, sizeof(float), (void **)&pca->mean, "PCA mean");
    if (st == EELSVAE_OK) st = evae_alloc_array(ne, sizeof(float), (void **)&pca->channel_root, "PCA channel weights");
    if (st == EELSVAE_OK) st = evae_alloc_array(kne, sizeof(float), (void **)&pca->components, "PCA components");
    if (st == EELSVAE_OK) st = evae_alloc_array(k, sizeof(double), (void **)&pca->singular, "PCA singular values");
    if (st == EELSVAE_OK) st = evae_alloc_array(k, sizeof(double), (void **)&pca->ratio, "PCA ratios");
    if (st != EELSVAE_OK) {
        eelsvae_pca_free(pca);
        return st;
    }
    *out = pca;
    return EELSVAE_OK;
}

void eelsvae_pca_free(eelsvae_pca *pca)
{
    if (!pca) return;
    evae_free(pca->mean);
    evae_free(pca->channel_root);
    evae_free(pca->components);
    evae_free(pca->singular);
    evae_free(pca->ratio);
    evae_free(pca);
}

void eelsvae_pca_shape(const eelsvae_pca *pca, size_t *components, size_t *channels)
{
    if (components) *components = pca ? pca->k : 0;
    if (channels) *channels = pca ? pca->ne : 0;
}

const float *eelsvae_pca_components(const eelsvae_pca *pca)
{
    return pca ? pca->components : NULL;
}

eelsvae_status eelsvae_pca_explained_variance_ratio(const eelsvae_pca *pca, double *ratios, size_t count)
{
    if (!pca || !ratios) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "explained variance: NULL argument");
    if (count != pca->k)
        return evae_fail(EELSVAE_ERR_DIMENSION, "explained variance: %zu ratios asked for, the basis has %zu components",
                         count, pca->k);
    memcpy(ratios, pca->ratio, count * sizeof *ratios);
    return EELSVAE_OK;
}

/* ---- applying the basis to a cube ----------------------------------------- */

/* What one call of project or reconstruct shares between its threads. */
typedef struct apply_job {
    const eelsvae_pca *pca;
    const eelsvae_cube *cube;
    size_t tile_rows, tiles;
    int threads;
    float *project_by;  /* [k][ne] C·D_b: what the scores multiply */
    float *project_off; /* [k] C·μ, subtracted from the scores */
    float *rebuild_by;  /* [k][ne] C·D_b⁻¹: what the rank-k spectra are made of */
    float *rebuild_off; /* [ne] D_b⁻¹·μ, added back */
    float *scratch;     /* per thread: scores (tile_rows × k) and two weights per row */
    size_t scratch_stride;
    float *scores;      /* [pixels][k] for project, or NULL */
    float *out;         /* [pixels][ne] for reconstruct, or NULL */
} apply_job;

static eelsvae_status check_apply_args(const eelsvae_pca *pca, const eelsvae_cube *cube, const char *what)
{
    if (!pca || !cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL argument", what);
    if (cube->ne != pca->ne)
        return evae_fail(EELSVAE_ERR_DIMENSION, "%s: the cube has %zu channels, the basis was fitted on %zu", what,
                         cube->ne, pca->ne);
    return EELSVAE_OK;
}

static size_t lines(size_t floats)
{
    return (floats + 15) / 16 * 16; /* whole 64-byte cache lines */
}

/* The factors of the two formulas above, from the basis. */
static void apply_factors(apply_job *job)
{
    const eelsvae_pca *pca = job->pca;
    size_t k = pca->k, ne = pca->ne;
    for (size_t i = 0; i < k; i++) {
        const float *c = pca->components + i * ne;
        double offset = 0.0;
        for (size_t e = 0; e < ne; e++) {
            float root = pca->channel_root[e];
            job->project_by[i * ne + e] = root > 0.0f ? c[e] / root : 0.0f;
            job->rebuild_by[i * ne + e] = c[e] * root;
            offset += (double)c[e] * pca->mean[e];
        }
        job->project_off[i] = (float)offset;
    }
    for (size_t e = 0; e < ne; e++) job->rebuild_off[e] = pca->mean[e] * pca->channel_root[e];
}

static void apply_job_free(apply_job *job)
{
    evae_free(job->scratch);
    evae_free(job->project_by);
}

static eelsvae_status apply_job_init(apply_job *job, const eelsvae_pca *pca, const eelsvae_cube *cube)
{
    memset(job, 0, sizeof *job);
    job->pca = pca;
    job->cube = cube;
    size_t k = pca->k, ne = pca->ne, pixels = evae_cube_pixels(cube);
    job->tile_rows = evae_pca_tile_rows(ne);
    if (job->tile_rows > pixels) job->tile_rows = pixels;
    job->tiles = (pixels + job->tile_rows - 1) / job->tile_rows;
    job->threads = evae_threads();
    if ((size_t)job->threads > job->tiles) job->threads = (int)job->tiles;
    /* one block for the factors: 2·k·ne + k + ne floats, each part on its own lines */
    size_t kne = lines(k * ne), factors = 2 * kne + lines(k) + lines(ne);
    EVAE_TRY(evae_alloc_array(factors, sizeof(float), (void **)&job->project_by, "PCA factors"));
    job->rebuild_by = job->project_by + kne;
    job->project_off = job->rebuild_by + kne;
    job->rebuild_off = job->project_off + lines(k);
    apply_factors(job);
    job->scratch_stride = lines(job->tile_rows * k) + 2 * lines(job->tile_rows);
    eelsvae_status st = evae_alloc_array(job->scratch_stride, (size_t)job->threads * sizeof(float),
                                         (void **)&job->scratch, "PCA tile scratch");
    if (st != EELSVAE_OK) apply_job_free(job);
    return st;
}

/* Weights 1/sqrt(aG) and sqrt(aG) of a tile's spectra, computed on the
 * cube being projected: HyperSpy's aG is the spectrum's own sum. Returns
 * the first spectrum (relative to the tile) that is non-finite or
 * negative, or `rows` when all are fine. */
static size_t tile_row_weights(size_t ne, const float *x, size_t rows, float *row_inv, float *row_root)
{
    for (size_t r = 0; r < rows; r++) {
        double sum = evae_pca_poisson_sum(x + r * ne, ne);
        if (sum < 0.0) return r;
        row_inv[r] = evae_pca_row_weight(sum);
        row_root[r] = (float)sqrt(sum);
    }
    return rows;
}

/* scores = D_a·scores − 1·(C·μ)ᵀ, then the first row whose scores are not
 * all finite (NaN and ±Inf in a spectrum always reach its scores, so this
 * checks the input), or `rows`. */
static size_t finish_scores(const apply_job *job, float *scores, size_t rows, const float *row_inv)
{
    const eelsvae_pca *pca = job->pca;
    size_t k = pca->k;
    for (size_t r = 0; r < rows; r++) {
        float *s = scores + r * k;
        float w = pca->poisson ? row_inv[r] : 1.0f;
        if (pca->poisson || pca->center)
            for (size_t i = 0; i < k; i++) s[i] = s[i] * w - job->project_off[i];
        for (size_t i = 0; i < k; i++)
            if (!isfinite(s[i])) return r;
    }
    return rows;
}

/* Rows of scores·(C·D_b⁻¹) become spectra: + D_b⁻¹μ, times sqrt(aG). */
static void finish_spectra(const apply_job *job, float *out, size_t rows, const float *row_root)
{
    const eelsvae_pca *pca = job->pca;
    size_t ne = pca->ne;
    for (size_t r = 0; r < rows; r++) {
        float *o = out + r * ne;
        if (pca->poisson) {
            float root = row_root[r];
            for (size_t e = 0; e < ne; e++) o[e] = (o[e] + job->rebuild_off[e]) * root;
        } else if (pca->center) {
            for (size_t e = 0; e < ne; e++) o[e] += job->rebuild_off[e];
        }
    }
}

/* One tile: scores, then (for reconstruct) the rank-k rows. Returns the
 * first bad pixel of the tile, or SIZE_MAX. */
static size_t apply_tile(const apply_job *job, size_t t, float *scratch)
{
    const eelsvae_pca *pca = job->pca;
    size_t ne = pca->ne, k = pca->k, pixels = evae_cube_pixels(job->cube);
    size_t p0 = t * job->tile_rows;
    size_t rows = pixels - p0 < job->tile_rows ? pixels - p0 : job->tile_rows;
    const float *x = job->cube->data + p0 * ne;
    float *scores = job->scores ? job->scores + p0 * k : scratch;
    float *row_inv = scratch + lines(job->tile_rows * k), *row_root = row_inv + lines(job->tile_rows);

    if (pca->poisson) {
        size_t bad = tile_row_weights(ne, x, rows, row_inv, row_root);
        if (bad < rows) return p0 + bad;
    }
    /* scores (rows × k) = X_t · (C·D_b)ᵀ, then weighted and centred */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)k, (int)ne, 1.0f, x, (int)ne,
                job->project_by, (int)ne, 0.0f, scores, (int)k);
    size_t bad = finish_scores(job, scores, rows, row_inv);
    if (bad < rows) return p0 + bad;
    if (job->out) {
        float *o = job->out + p0 * ne;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)ne, (int)k, 1.0f, scores, (int)k,
                    job->rebuild_by, (int)ne, 0.0f, o, (int)ne);
        finish_spectra(job, o, rows, row_root);
    }
    return SIZE_MAX;
}

/* Run every tile; report the first bad pixel (the lowest index, whatever
 * the threads) as EELSVAE_ERR_NUMERIC. */
static eelsvae_status apply_all_tiles(apply_job *job, const char *what)
{
    size_t first_bad = SIZE_MAX;
    int saved = evae_pca_blas_single();
#pragma omp parallel num_threads(job->threads)
    {
        float *scratch = job->scratch + (size_t)evae_pca_thread_index() * job->scratch_stride;
#pragma omp for schedule(dynamic) reduction(min : first_bad)
        for (size_t t = 0; t < job->tiles; t++) {
            size_t bad = apply_tile(job, t, scratch);
            if (bad < first_bad) first_bad = bad;
        }
    }
    evae_pca_blas_restore(saved);
    if (first_bad == SIZE_MAX) return EELSVAE_OK;
    const eelsvae_cube *c = job->cube;
    size_t e = evae_pca_bad_channel(c->data + first_bad * c->ne, c->ne, job->pca->poisson);
    if (e == c->ne)
        return evae_fail(EELSVAE_ERR_NUMERIC, "%s: the scores of pixel (y %zu, x %zu) overflow", what,
                         first_bad / c->nx, first_bad % c->nx);
    float v = c->data[first_bad * c->ne + e];
    return evae_fail(EELSVAE_ERR_NUMERIC, "%s: pixel (y %zu, x %zu) channel %zu holds %g%s", what, first_bad / c->nx,
                     first_bad % c->nx, e, (double)v,
                     isfinite(v) ? " (Poisson normalisation needs non-negative data)" : "");
}

eelsvae_status eelsvae_pca_project(const eelsvae_pca *pca, const eelsvae_cube *cube, float *scores, size_t count)
{
    EVAE_TRY(check_apply_args(pca, cube, "PCA projection"));
    if (!scores) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA projection: NULL scores");
    size_t want = 0;
    EVAE_TRY(evae_mul(evae_cube_pixels(cube), pca->k, &want, "PCA scores"));
    if (count != want)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "PCA projection: scores hold %zu floats, %zu pixels × %zu components need %zu", count,
                         evae_cube_pixels(cube), pca->k, want);
    apply_job job;
    EVAE_TRY(apply_job_init(&job, pca, cube));
    job.scores = scores;
    eelsvae_status st = apply_all_tiles(&job, "PCA projection");
    apply_job_free(&job);
    return st;
}

eelsvae_status eelsvae_pca_reconstruct(const eelsvae_pca *pca, const eelsvae_cube *cube, eelsvae_cube **out)
{
    EVAE_TRY(check_apply_args(pca, cube, "PCA reconstruction"));
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA reconstruction: NULL output");
    eelsvae_cube *recon = NULL;
    EVAE_TRY(evae_cube_alloc_like(cube, cube->ny, cube->nx, cube->ne, &recon));
    advise_huge_pages(recon->data, evae_cube_samples(recon) * sizeof(float));
    apply_job job;
    eelsvae_status st = apply_job_init(&job, pca, cube);
    if (st == EELSVAE_OK) {
        job.out = recon->data;
        st = apply_all_tiles(&job, "PCA reconstruction");
        apply_job_free(&job);
    }
    if (st != EELSVAE_OK) {
        eelsvae_cube_free(recon);
        return st;
    }
    *out = recon;
    return EELSVAE_OK;
}
