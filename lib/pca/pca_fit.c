/* Fitting a PCA basis: randomized block Krylov iteration on the matrix
 * A = D_a·X·D_b − 1·μᵀ of pca_private.h (P spectra × ne channels).
 *
 * 1. When centring or Poisson normalisation needs them, one read of the cube
 *    gathers per-channel sums (bH, the mean, the squared deviations that
 *    give the total sum of squares of A) and per-spectrum sums (aG), and
 *    finds non-finite or (under Poisson normalisation) negative samples.
 * 2. Each iteration is ONE more read of the cube. For the newest block Q
 *    (ne × l, l = k + oversampling) of the Krylov basis K = [Q_1 … Q_b],
 *    tile by tile: Y_t = D_a·(X_t·(D_b·Q)) − 1·(μᵀQ) and Z_t = X_tᵀ·(D_a·Y_t)
 *    (two small GEMMs on the cube's own rows: no centred or normalised copy
 *    is made); after the pass Z = D_b·ΣZ_t − μ·(1ᵀY) = AᵀA·Q. The rows of Y
 *    are kept (P × l floats a block: small) so the Gram matrix
 *    G = (AK)ᵀ(AK) grows by one block row per pass, in double.
 * 3. Rayleigh–Ritz, in double on small matrices: G = W Λ Wᵀ gives the Ritz
 *    values σ_a = √λ of span(K); U = AK W Λ^-½ is an orthonormal basis of
 *    range(AK), and B = UᵀA = Λ^-½ Wᵀ Zᵀ with Z = AᵀAK needs no further
 *    pass. SVD(B) gives σ_b and right singular vectors V, the estimate of
 *    randomized SVD with one more half power step. The next block is Z's
 *    newest block orthogonalised against K. Krylov beats plain subspace
 *    iteration here because the spectrum of an SI has a flat noise floor:
 *    σ_{l+1}/σ_k is not small, and Krylov converges with the square root of
 *    that gap. After PCA_KRYLOV_BLOCKS blocks the basis restarts from V.
 *    The first pass checks every product is finite and, when A = X (no
 *    statistics pass ran), sums the squares of A.
 * 4. In exact arithmetic σ_a ≤ σ_b ≤ (next σ_a) ≤ … ≤ σ, so the change
 *    σ_b − σ_a within a pass is the convergence test: stop when, for the k
 *    leading values, it is at most `tolerance`·σ_b, or when it stops
 *    shrinking at the level float32 products can resolve.
 *
 * Sums are split in a fixed partition of tiles ("groups") that does not
 * depend on the thread count, and groups are added in order, so the same
 * seed gives the same bits on any number of threads. Memory besides the
 * cube: P × (blocks · l) floats for AK and ne × l partial sums per group. */
#include "pca_private.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <string.h>

/* Extra basis vectors beyond k: randomized SVD's usual oversampling. */
#define PCA_OVERSAMPLING 10
/* Blocks of the Krylov basis before it restarts from its Ritz vectors. */
#define PCA_KRYLOV_BLOCKS 4
/* Partial sums kept: enough groups to balance any likely thread count. */
#define PCA_MAX_GROUPS 64
/* Relative change of the singular values below which float32 rounding,
 * not convergence, may be what is left (see iterate). */
#define PCA_FLOAT_LIMIT 1e-4
/* Directions of AK whose λ is below this fraction of the largest are
 * treated as null: float32 data cannot resolve σ below ~1e-5 σ_1. */
#define PCA_RANK_CUT 1e-10

typedef struct fit_state {
    const float *data;
    size_t pixels, ne, k, l;
    int center, poisson;
    size_t tile_rows, tiles, groups;
    int threads;
    size_t blocks_max;   /* Krylov blocks before a restart */
    size_t width_max;    /* blocks_max · l */
    size_t blocks;       /* blocks whose products are known */
    int first_pass;      /* the pass checks that the products are finite … */
    int sum_squares;     /* … and sums the squares of A (when no statistics pass did) */
    /* weights and mean, as applied */
    float *row_inv;      /* [pixels] D_a, Poisson only */
    float *channel_inv;  /* [ne] D_b, Poisson only */
    const float *mean;   /* [ne] μ (the basis' own array), NULL without centring */
    /* the Krylov basis and its products */
    double *basis;       /* [ne][width_max] K, orthonormal, blocks side by side */
    float *q;            /* [ne][l] D_b·Q for the newest block, float for GEMM */
    float *q_mean;       /* [l] μᵀQ */
    float *y;            /* [pixels][width_max] AK */
    double *z;           /* [ne][width_max] AᵀAK */
    double *gram;        /* [width_max][width_max] (AK)ᵀ(AK) */
    float *z_parts;      /* [groups][ne][l] Σ X_tᵀ·D_a·Y_t */
    double *g_parts;     /* [groups][l][width_max] Gram rows */
    double *ysum_parts;  /* [groups][l] column sums of Y */
    double *stat_parts;  /* [groups][4][ne] see group_stats */
    double *ss_parts;    /* [groups] sum of squares of A's rows */
    size_t *bad_parts;   /* [groups] first pixel whose products are not finite */
    float *scratch;      /* per thread: D_a·Y_t (tile_rows × l) and ne column sums */
    size_t scratch_stride;
    /* Rayleigh–Ritz workspace */
    double *w;           /* [width_max][width_max] eigenvectors of G */
    double *lambda;      /* [width_max] */
    double *bt;          /* [ne][width_max] Bᵀ */
    double *v;           /* [ne][width_max] right singular vectors of B */
    double *vt_small;    /* [width_max][width_max] */
    double *proj;        /* [width_max][l] Kᵀ·(new block) */
    double *tau;         /* [width_max] */
    double *norms;       /* [l] column norms of a new block */
    double *ysum;        /* [l] 1ᵀY of the newest block */
    double *qm;          /* [l] μᵀQ in double */
    double *sigma_a;     /* [width_max] */
    double *sigma_b;     /* [width_max] */
    size_t rank;         /* leading directions of the last Rayleigh–Ritz */
} fit_state;

static void fit_state_free(fit_state *s)
{
    void *arrays[] = {s->row_inv, s->channel_inv, s->basis,      s->q,          s->q_mean,   s->y,
                      s->z,       s->gram,        s->z_parts,    s->g_parts,    s->ysum_parts, s->stat_parts,
                      s->ss_parts, s->bad_parts,  s->scratch,    s->w,          s->lambda,   s->bt,
                      s->v,       s->vt_small,    s->proj,       s->tau,        s->norms,    s->sigma_a,
                      s->sigma_b, s->ysum,        s->qm};
    for (size_t i = 0; i < sizeof arrays / sizeof arrays[0]; i++) evae_free(arrays[i]);
}

static size_t group_first_tile(const fit_state *s, size_t g)
{
    return g * s->tiles / s->groups;
}

static size_t tile_size(const fit_state *s, size_t t)
{
    size_t p0 = t * s->tile_rows;
    return s->pixels - p0 < s->tile_rows ? s->pixels - p0 : s->tile_rows;
}

static eelsvae_status alloc_doubles(double **p, size_t n, const char *what)
{
    return evae_alloc_array(n, sizeof(double), (void **)p, what);
}

static eelsvae_status fit_state_init(fit_state *s, const eelsvae_cube *cube, const eelsvae_pca_options *o)
{
    memset(s, 0, sizeof *s);
    s->data = cube->data;
    s->pixels = evae_cube_pixels(cube);
    s->ne = cube->ne;
    s->k = o->components;
    size_t rank_max = s->pixels < s->ne ? s->pixels : s->ne;
    s->l = s->k + PCA_OVERSAMPLING < rank_max ? s->k + PCA_OVERSAMPLING : rank_max;
    /* K has ne rows: it cannot hold more than ne orthonormal columns */
    s->blocks_max = s->ne / s->l < PCA_KRYLOV_BLOCKS ? s->ne / s->l : PCA_KRYLOV_BLOCKS;
    s->width_max = s->blocks_max * s->l;
    s->center = o->center != 0;
    s->poisson = o->poisson_normalize != 0;
    s->tile_rows = evae_pca_tile_rows(s->ne);
    if (s->tile_rows > s->pixels) s->tile_rows = s->pixels;
    s->tiles = (s->pixels + s->tile_rows - 1) / s->tile_rows;
    s->groups = s->tiles < PCA_MAX_GROUPS ? s->tiles : PCA_MAX_GROUPS;
    s->threads = evae_threads();
    if ((size_t)s->threads > s->groups) s->threads = (int)s->groups;
    /* D_a·Y_t and a row of column sums in a pass; four rows of them in the statistics */
    size_t dy = (s->tile_rows * s->l + 15) / 16 * 16, col = (s->ne + 15) / 16 * 16;
    s->scratch_stride = dy + col > 4 * col ? dy + col : 4 * col;

    /* ne·width_max ≤ 4ne², P·width_max ≤ 4P·ne: no overflow, the cube exists */
    size_t ne = s->ne, l = s->l, wm = s->width_max, groups = s->groups;
    if (s->poisson) {
        EVAE_TRY(evae_alloc_array(s->pixels, sizeof(float), (void **)&s->row_inv, "PCA pixel weights"));
        EVAE_TRY(evae_alloc_array(ne, sizeof(float), (void **)&s->channel_inv, "PCA channel weights"));
    }
    EVAE_TRY(alloc_doubles(&s->basis, ne * wm, "PCA Krylov basis"));
    EVAE_TRY(evae_alloc_array(ne * l, sizeof(float), (void **)&s->q, "PCA basis block"));
    EVAE_TRY(evae_alloc_array(l, sizeof(float), (void **)&s->q_mean, "PCA basis block"));
    EVAE_TRY(evae_alloc_array(s->pixels * wm, sizeof(float), (void **)&s->y, "PCA products AK"));
    EVAE_TRY(alloc_doubles(&s->z, ne * wm, "PCA products AᵀAK"));
    EVAE_TRY(alloc_doubles(&s->gram, wm * wm, "PCA Gram matrix"));
    EVAE_TRY(evae_alloc_array(groups * ne * l, sizeof(float), (void **)&s->z_parts, "PCA partial products"));
    EVAE_TRY(alloc_doubles(&s->g_parts, groups * l * wm, "PCA partial Gram matrices"));
    EVAE_TRY(alloc_doubles(&s->ysum_parts, groups * l, "PCA partial sums"));
    EVAE_TRY(alloc_doubles(&s->stat_parts, groups * 4 * ne, "PCA statistics"));
    EVAE_TRY(alloc_doubles(&s->ss_parts, groups, "PCA sums of squares"));
    EVAE_TRY(evae_alloc_array(groups, sizeof(size_t), (void **)&s->bad_parts, "PCA checks"));
    EVAE_TRY(evae_alloc_array(s->scratch_stride, (size_t)s->threads * sizeof(float), (void **)&s->scratch,
                              "PCA tile scratch"));
    EVAE_TRY(alloc_doubles(&s->w, wm * wm, "PCA eigenvectors"));
    EVAE_TRY(alloc_doubles(&s->lambda, wm, "PCA eigenvalues"));
    EVAE_TRY(alloc_doubles(&s->bt, ne * wm, "PCA projected matrix"));
    EVAE_TRY(alloc_doubles(&s->v, ne * wm, "PCA singular vectors"));
    EVAE_TRY(alloc_doubles(&s->vt_small, wm * wm, "PCA singular vectors"));
    EVAE_TRY(alloc_doubles(&s->proj, wm * l, "PCA projections"));
    EVAE_TRY(alloc_doubles(&s->tau, wm, "PCA QR factors"));
    EVAE_TRY(alloc_doubles(&s->norms, l, "PCA column norms"));
    EVAE_TRY(alloc_doubles(&s->ysum, l, "PCA column sums"));
    EVAE_TRY(alloc_doubles(&s->qm, l, "PCA block means"));
    EVAE_TRY(alloc_doubles(&s->sigma_a, wm, "PCA singular values"));
    EVAE_TRY(alloc_doubles(&s->sigma_b, wm, "PCA singular values"));
    return EELSVAE_OK;
}

/* ---- step 1: statistics --------------------------------------------------- */

/* Each channel's sums run over v = x·D_a (x without Poisson weights) shifted
 * by the group's first spectrum, so the squares carry the spread, not the
 * level, of the data: within a tile they are summed in float (at most
 * tile_rows terms), across tiles in double, and groups are merged with
 * Chan's exact formula. The pass then runs at memory speed. */
typedef struct group_stats {
    double *shift; /* [ne] the group's first v */
    double *s1;    /* [ne] Σ (v − shift) */
    double *s2;    /* [ne] Σ (v − shift)² */
    double *raw;   /* [ne] Σ x, for bH */
} group_stats;

static group_stats stats_of_group(const fit_state *s, size_t g)
{
    double *base = s->stat_parts + g * 4 * s->ne;
    group_stats st = {base, base + s->ne, base + 2 * s->ne, base + 3 * s->ne};
    return st;
}

/* One tile's sums into the group's; returns the first bad pixel under
 * Poisson normalisation (a spectrum's sum decides its weight, so it is
 * checked here) or SIZE_MAX. */
static size_t scan_tile(fit_state *s, const group_stats *st, size_t p0, size_t rows, float *f)
{
    size_t ne = s->ne;
    float *f1 = f, *f2 = f + ne, *f0 = f + 2 * ne, *shift = f + 3 * ne;
    memset(f, 0, 3 * ne * sizeof *f);
    for (size_t e = 0; e < ne; e++) shift[e] = (float)st->shift[e];
    for (size_t r = 0; r < rows; r++) {
        const float *x = s->data + (p0 + r) * ne;
        if (!s->poisson) {
            for (size_t e = 0; e < ne; e++) {
                float d = x[e] - shift[e];
                f1[e] += d;
                f2[e] += d * d;
            }
            continue;
        }
        double row = evae_pca_poisson_sum(x, ne);
        if (row < 0.0) return p0 + r;
        float w = evae_pca_row_weight(row); /* HyperSpy: x / (sqrt(aG)·sqrt(bH)), 0/0 = 0 */
        s->row_inv[p0 + r] = w;
        for (size_t e = 0; e < ne; e++) {
            float d = x[e] * w - shift[e];
            f1[e] += d;
            f2[e] += d * d;
            f0[e] += x[e];
        }
    }
    for (size_t e = 0; e < ne; e++) {
        st->s1[e] += f1[e];
        st->s2[e] += f2[e];
        st->raw[e] += f0[e];
    }
    return SIZE_MAX;
}

static size_t scan_group(fit_state *s, size_t g, float *scratch)
{
    size_t ne = s->ne, t0 = group_first_tile(s, g), t1 = group_first_tile(s, g + 1);
    group_stats st = stats_of_group(s, g);
    memset(st.s1, 0, 3 * ne * sizeof(double));
    const float *x0 = s->data + t0 * s->tile_rows * ne;
    float w0 = 1.0f;
    if (s->poisson) {
        double row = evae_pca_poisson_sum(x0, ne);
        if (row < 0.0) return t0 * s->tile_rows;
        w0 = evae_pca_row_weight(row);
    }
    for (size_t e = 0; e < ne; e++) st.shift[e] = x0[e] * w0; /* exactly the first v, in float */
    for (size_t t = t0; t < t1; t++) {
        size_t bad = scan_tile(s, &st, t * s->tile_rows, tile_size(s, t), scratch);
        if (bad != SIZE_MAX) return bad;
    }
    return SIZE_MAX;
}

/* The first pixel holding a non-finite (or, under Poisson normalisation, a
 * negative) sample; only called once a sum has shown there is one. */
static size_t find_bad_pixel(const fit_state *s)
{
    for (size_t p = 0; p < s->pixels; p++)
        if (evae_pca_bad_channel(s->data + p * s->ne, s->ne, s->poisson) < s->ne) return p;
    return SIZE_MAX;
}

static eelsvae_status bad_pixel_error(const fit_state *s, size_t nx, size_t p)
{
    if (p == SIZE_MAX)
        return evae_fail(EELSVAE_ERR_NUMERIC, "PCA fit: the data's sums overflow (samples near the float range)");
    const float *x = s->data + p * s->ne;
    size_t e = evae_pca_bad_channel(x, s->ne, s->poisson);
    double v = e < s->ne ? x[e] : NAN;
    return evae_fail(EELSVAE_ERR_NUMERIC, "PCA fit: pixel (y %zu, x %zu) channel %zu holds %g%s", p / nx, p % nx, e,
                     v, isfinite(v) ? "; Poisson normalisation needs non-negative data" : "");
}

/* Merge the groups' sums of channel e (Chan, Golub & LeVeque): the mean of
 * v and its sum of squared deviations M2. */
static void merge_channel(const fit_state *s, size_t e, double *mean, double *m2, double *raw)
{
    double n = 0.0, mu = 0.0, m = 0.0, r = 0.0;
    for (size_t g = 0; g < s->groups; g++) {
        group_stats st = stats_of_group(s, g);
        size_t p0 = group_first_tile(s, g) * s->tile_rows, p1 = group_first_tile(s, g + 1) * s->tile_rows;
        double ng = (double)((p1 < s->pixels ? p1 : s->pixels) - p0);
        double mean_g = st.shift[e] + st.s1[e] / ng;
        double m2_g = st.s2[e] - st.s1[e] * st.s1[e] / ng;
        double delta = mean_g - mu, total = n + ng;
        mu += delta * ng / total;
        m += m2_g + delta * delta * n * ng / total;
        n = total;
        r += st.raw[e];
    }
    *mean = mu;
    *m2 = m > 0.0 ? m : 0.0;
    *raw = r;
}

/* Step 1: the mean, the channel roots and the total sum of squares of pca,
 * the weights of s. Without centring or Poisson normalisation there is
 * nothing to gather (the first pass sums the squares). */
static eelsvae_status gather_statistics(fit_state *s, eelsvae_pca *pca, size_t nx)
{
    size_t ne = s->ne;
    pca->pixels = s->pixels;
    pca->center = s->center;
    pca->poisson = s->poisson;
    for (size_t e = 0; e < ne; e++) {
        pca->mean[e] = 0.0f;
        pca->channel_root[e] = 1.0f;
    }
    s->mean = s->center ? pca->mean : NULL;
    s->sum_squares = !s->center && !s->poisson;
    if (s->sum_squares) return EELSVAE_OK;

    size_t first_bad = SIZE_MAX;
#pragma omp parallel num_threads(s->threads)
    {
        float *scratch = s->scratch + (size_t)evae_pca_thread_index() * s->scratch_stride;
#pragma omp for schedule(dynamic) reduction(min : first_bad)
        for (size_t g = 0; g < s->groups; g++) {
            size_t bad = scan_group(s, g, scratch);
            if (bad < first_bad) first_bad = bad;
        }
    }
    if (first_bad != SIZE_MAX) return bad_pixel_error(s, nx, first_bad);

    double pixels = (double)s->pixels, ss = 0.0;
    for (size_t e = 0; e < ne; e++) {
        double mean = 0.0, m2 = 0.0, raw = 0.0;
        merge_channel(s, e, &mean, &m2, &raw);
        if (!isfinite(mean) || !isfinite(m2)) return bad_pixel_error(s, nx, find_bad_pixel(s));
        double cw = 1.0;
        if (s->poisson) {
            pca->channel_root[e] = (float)sqrt(raw);
            cw = raw > 0.0 ? 1.0 / sqrt(raw) : 0.0;
            s->channel_inv[e] = (float)cw;
        }
        if (s->center) pca->mean[e] = (float)(cw * mean);
        ss += cw * cw * (s->center ? m2 : m2 + pixels * mean * mean);
    }
    pca->total_ss = ss;
    return EELSVAE_OK;
}

/* ---- step 2: one pass for the newest block: Y = AQ, Z = AᵀY, its Gram rows -- */

/* gram[i][j] += Σ_r y[r][first + i] · y[r][j] for i < l, j < first + l (the
 * newest block of AK against every block so far); ysum[i] += Σ_r y[r][first + i]. */
static void gram_accumulate(double *gram, double *ysum, const float *y, size_t rows, size_t stride, size_t first,
                            size_t l)
{
    size_t width = first + l;
    for (size_t r = 0; r < rows; r++) {
        const float *yr = y + r * stride;
        for (size_t i = 0; i < l; i++) {
            double yi = yr[first + i];
            double *gi = gram + i * stride;
            ysum[i] += yi;
            for (size_t j = 0; j < width; j++) gi[j] += yi * (double)yr[j];
        }
    }
}

/* Sum of squares of a tile's spectra (used when A = X, so that no
 * statistics pass ran). Each column's sum over the tile is taken in float
 * (at most tile_rows terms), the tile's total in double. */
static double tile_sum_squares(const float *x, size_t rows, size_t ne, float *col)
{
    memset(col, 0, ne * sizeof *col);
    for (size_t r = 0; r < rows; r++)
        for (size_t e = 0; e < ne; e++) col[e] += x[r * ne + e] * x[r * ne + e];
    double total = 0.0;
    for (size_t e = 0; e < ne; e++) total += col[e];
    return total;
}

/* First row of a tile of Y (new block only) that is not all finite. */
static size_t first_bad_row(const float *y, size_t rows, size_t stride, size_t l)
{
    for (size_t r = 0; r < rows; r++)
        for (size_t j = 0; j < l; j++)
            if (!isfinite(y[r * stride + j])) return r;
    return rows;
}

static void pass_tile(fit_state *s, size_t g, size_t t, int first_of_group, float *scratch)
{
    size_t ne = s->ne, l = s->l, wm = s->width_max, first = s->blocks * l;
    size_t p0 = t * s->tile_rows, rows = tile_size(s, t);
    const float *x = s->data + p0 * ne;
    float *y = s->y + p0 * wm + first, *dy = scratch, *col = scratch + (s->tile_rows * l + 15) / 16 * 16;
    if (s->first_pass && s->sum_squares) s->ss_parts[g] += tile_sum_squares(x, rows, ne, col);

    /* Y_t = D_a·(X_t·(D_b·Q)) − 1·(μᵀQ) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)l, (int)ne, 1.0f, x, (int)ne, s->q,
                (int)l, 0.0f, y, (int)wm);
    if (s->poisson) {
        for (size_t r = 0; r < rows; r++) {
            float w = s->row_inv[p0 + r];
            for (size_t j = 0; j < l; j++) {
                y[r * wm + j] = y[r * wm + j] * w - s->q_mean[j];
                dy[r * l + j] = y[r * wm + j] * w;
            }
        }
    } else if (s->mean) {
        for (size_t r = 0; r < rows; r++)
            for (size_t j = 0; j < l; j++) y[r * wm + j] -= s->q_mean[j];
    }
    /* Z_g += X_tᵀ · D_a·Y_t */
    const float *by = s->poisson ? dy : y;
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)ne, (int)l, (int)rows, 1.0f, x, (int)ne, by,
                s->poisson ? (int)l : (int)wm, first_of_group ? 0.0f : 1.0f, s->z_parts + g * ne * l, (int)l);
    gram_accumulate(s->g_parts + g * l * wm, s->ysum_parts + g * l, s->y + p0 * wm, rows, wm, first, l);
    if (s->first_pass && s->bad_parts[g] == SIZE_MAX) {
        size_t bad = first_bad_row(y, rows, wm, l);
        if (bad < rows) s->bad_parts[g] = p0 + bad;
    }
}

static void pass_group(fit_state *s, size_t g, float *scratch)
{
    size_t l = s->l, wm = s->width_max;
    memset(s->g_parts + g * l * wm, 0, l * wm * sizeof(double));
    memset(s->ysum_parts + g * l, 0, l * sizeof(double));
    s->ss_parts[g] = 0.0;
    s->bad_parts[g] = SIZE_MAX;
    size_t t0 = group_first_tile(s, g), t1 = group_first_tile(s, g + 1);
    for (size_t t = t0; t < t1; t++) pass_tile(s, g, t, t == t0, scratch);
}

/* After the first pass: the total sum of squares, or the first bad pixel. */
static eelsvae_status finish_first_pass(fit_state *s, eelsvae_pca *pca, size_t nx)
{
    double ss = 0.0;
    size_t bad = SIZE_MAX;
    for (size_t g = 0; g < s->groups; g++) {
        ss += s->ss_parts[g];
        if (s->bad_parts[g] < bad) bad = s->bad_parts[g];
    }
    if (bad != SIZE_MAX || !isfinite(ss)) return bad_pixel_error(s, nx, bad != SIZE_MAX ? bad : find_bad_pixel(s));
    if (s->sum_squares) pca->total_ss = ss;
    s->first_pass = 0;
    return EELSVAE_OK;
}

/* One pass; Z = D_b·ΣZ_g − μ·(1ᵀY) and the Gram rows, summed in group order. */
static eelsvae_status subspace_pass(fit_state *s, eelsvae_pca *pca, size_t nx)
{
    size_t ne = s->ne, l = s->l, wm = s->width_max, first = s->blocks * l, groups = s->groups;
#pragma omp parallel num_threads(s->threads)
    {
        float *scratch = s->scratch + (size_t)evae_pca_thread_index() * s->scratch_stride;
#pragma omp for schedule(dynamic)
        for (size_t g = 0; g < groups; g++) pass_group(s, g, scratch);
    }
    if (s->first_pass) EVAE_TRY(finish_first_pass(s, pca, nx));
    double *ys = s->ysum;
    for (size_t j = 0; j < l; j++) {
        double acc = 0.0;
        for (size_t g = 0; g < groups; g++) acc += s->ysum_parts[g * l + j];
        ys[j] = acc;
    }
#pragma omp parallel for schedule(static) num_threads(s->threads)
    for (size_t e = 0; e < ne; e++) {
        double cw = s->poisson ? s->channel_inv[e] : 1.0, mu = s->mean ? s->mean[e] : 0.0;
        for (size_t j = 0; j < l; j++) {
            double acc = 0.0;
            for (size_t g = 0; g < groups; g++) acc += s->z_parts[(g * ne + e) * l + j];
            s->z[e * wm + first + j] = cw * acc - mu * ys[j];
        }
    }
    for (size_t i = 0; i < l; i++)
        for (size_t j = 0; j < first + l; j++) {
            double acc = 0.0;
            for (size_t g = 0; g < groups; g++) acc += s->g_parts[(g * l + i) * wm + j];
            s->gram[(first + i) * wm + j] = s->gram[j * wm + first + i] = acc;
        }
    s->blocks++;
    return EELSVAE_OK;
}

/* ---- step 3: Rayleigh–Ritz and the next block ------------------------------ */

/* Orthonormalise the columns of m (rows × cols, leading dimension ld) in
 * place by Householder QR. */
static eelsvae_status orthonormalise(double *m, size_t rows, size_t cols, size_t ld, double *tau)
{
    lapack_int info =
        LAPACKE_dgeqrf(LAPACK_ROW_MAJOR, (lapack_int)rows, (lapack_int)cols, m, (lapack_int)ld, tau);
    if (info == 0)
        info = LAPACKE_dorgqr(LAPACK_ROW_MAJOR, (lapack_int)rows, (lapack_int)cols, (lapack_int)cols, m,
                              (lapack_int)ld, tau);
    if (info != 0)
        return evae_fail(EELSVAE_ERR_NUMERIC, "PCA fit: QR of a %zu × %zu block failed (info %d)", rows, cols,
                         (int)info);
    return EELSVAE_OK;
}

/* Gaussian columns first … cols−1 of m (leading dimension ld); column j
 * draws from stream (stream_base + j) of the seed. */
static void random_columns(double *m, size_t rows, size_t first, size_t cols, size_t ld, uint64_t seed,
                           uint64_t stream_base)
{
    for (size_t j = first; j < cols; j++) {
        evae_rng rng;
        evae_rng_seed(&rng, seed, stream_base + j);
        for (size_t e = 0; e < rows; e++) m[e * ld + j] = evae_rng_normal(&rng);
    }
}

/* Remove from the l columns of `block` (leading dimension wm) their
 * components along the first `width` columns of the basis. */
static void project_out(fit_state *s, double *block, size_t width)
{
    size_t ne = s->ne, l = s->l, wm = s->width_max;
    if (width == 0) return;
    /* proj = Kᵀ block;  block −= K proj */
    cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)width, (int)l, (int)ne, 1.0, s->basis, (int)wm, block,
                (int)wm, 0.0, s->proj, (int)l);
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ne, (int)l, (int)width, -1.0, s->basis, (int)wm,
                s->proj, (int)l, 1.0, block, (int)wm);
}

/* The factors the next pass multiplies by: D_b·Q in float and μᵀQ. */
static void block_to_float(fit_state *s)
{
    size_t ne = s->ne, l = s->l, wm = s->width_max, first = s->blocks * l;
    double *qm = s->qm;
    for (size_t j = 0; j < l; j++) qm[j] = 0.0;
    for (size_t e = 0; e < ne; e++) {
        const double *b = s->basis + e * wm + first;
        double cw = s->poisson ? s->channel_inv[e] : 1.0, mu = s->mean ? s->mean[e] : 0.0;
        for (size_t j = 0; j < l; j++) {
            s->q[e * l + j] = (float)(b[j] * cw);
            qm[j] += mu * b[j];
        }
    }
    for (size_t j = 0; j < l; j++) s->q_mean[j] = (float)qm[j];
}

/* Make the l columns at `first` of the basis orthonormal and orthogonal to
 * the columns before them ("twice is enough" Gram–Schmidt around QR).
 * Columns that were (numerically) inside the span already are replaced by
 * random ones, so the basis never loses width. */
static eelsvae_status orthogonalise_block(fit_state *s, size_t first, uint64_t seed, uint64_t streams)
{
    size_t ne = s->ne, l = s->l, wm = s->width_max;
    double *block = s->basis + first;
    for (size_t j = 0; j < l; j++) {
        double acc = 0.0;
        for (size_t e = 0; e < ne; e++) acc += block[e * wm + j] * block[e * wm + j];
        s->norms[j] = sqrt(acc);
    }
    project_out(s, block, first);
    project_out(s, block, first);
    for (size_t j = 0; j < l; j++) {
        double acc = 0.0;
        for (size_t e = 0; e < ne; e++) acc += block[e * wm + j] * block[e * wm + j];
        if (sqrt(acc) > 1e-10 * s->norms[j]) continue;
        random_columns(block, ne, j, j + 1, wm, seed, streams);
        project_out(s, block, first);
        project_out(s, block, first);
    }
    EVAE_TRY(orthonormalise(block, ne, l, wm, s->tau));
    project_out(s, block, first); /* QR of a nearly dependent block can drift: once more */
    return orthonormalise(block, ne, l, wm, s->tau);
}

/* Rayleigh–Ritz over the whole Krylov basis: σ_a, σ_b and V (in s->v). */
static eelsvae_status rayleigh_ritz(fit_state *s)
{
    size_t ne = s->ne, wm = s->width_max, width = s->blocks * s->l;
    for (size_t i = 0; i < width; i++) memcpy(s->w + i * width, s->gram + i * wm, width * sizeof *s->w);
    lapack_int info = LAPACKE_dsyev(LAPACK_ROW_MAJOR, 'V', 'U', (lapack_int)width, s->w, (lapack_int)width, s->lambda);
    if (info != 0)
        return evae_fail(EELSVAE_ERR_NUMERIC, "PCA fit: eigen-decomposition of the %zu × %zu Gram matrix failed (info %d)",
                         width, width, (int)info);
    /* dsyev sorts ascending: the leading ones are at the end. */
    double top = s->lambda[width - 1] > 0.0 ? s->lambda[width - 1] : 0.0;
    size_t rank = 0;
    for (size_t i = 0; i < width; i++) {
        double li = s->lambda[width - 1 - i];
        s->sigma_a[i] = li > 0.0 ? sqrt(li) : 0.0;
        s->sigma_b[i] = 0.0;
        if (top > 0.0 && li > top * PCA_RANK_CUT) rank = i + 1;
    }
    s->rank = rank;
    if (rank == 0) return EELSVAE_OK; /* A vanishes on the whole basis */
    /* W_r Λ_r^-½ (width × rank), leading first */
    double *wr = s->vt_small;
    for (size_t i = 0; i < rank; i++) {
        size_t col = width - 1 - i;
        double scale = 1.0 / sqrt(s->lambda[col]);
        for (size_t j = 0; j < width; j++) wr[j * rank + i] = s->w[j * width + col] * scale;
    }
    /* Bᵀ (ne × rank) = Z · W_r Λ_r^-½ */
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)ne, (int)rank, (int)width, 1.0, s->z, (int)wm, wr,
                (int)rank, 0.0, s->bt, (int)wm);
    /* Bᵀ = V Σ Ũᵀ: the left singular vectors of Bᵀ are the right ones of B */
    info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'S', (lapack_int)ne, (lapack_int)rank, s->bt, (lapack_int)wm, s->sigma_b,
                          s->v, (lapack_int)wm, s->vt_small, (lapack_int)rank);
    if (info != 0)
        return evae_fail(EELSVAE_ERR_NUMERIC, "PCA fit: SVD of the %zu × %zu projected matrix failed (info %d)", ne,
                         rank, (int)info);
    return EELSVAE_OK;
}

/* The leading `cols` Ritz vectors (completed with random directions where
 * the data has fewer) into the first columns of the basis, orthonormal. */
static eelsvae_status ritz_vectors_to_basis(fit_state *s, size_t cols, uint64_t seed, uint64_t streams)
{
    size_t ne = s->ne, wm = s->width_max, have = s->rank < cols ? s->rank : cols;
    for (size_t e = 0; e < ne; e++)
        for (size_t j = 0; j < have; j++) s->basis[e * wm + j] = s->v[e * wm + j];
    if (have < cols) {
        random_columns(s->basis, ne, have, cols, wm, seed, streams);
        EVAE_TRY(orthonormalise(s->basis, ne, cols, wm, s->tau));
    }
    return EELSVAE_OK;
}

/* The next block: the newest AᵀA·Q_b orthogonalised against K, or, when K
 * is full, a restart from the leading Ritz vectors. */
static eelsvae_status next_block(fit_state *s, uint64_t seed, size_t pass)
{
    size_t ne = s->ne, l = s->l, wm = s->width_max;
    uint64_t streams = (uint64_t)pass << 32;
    if (s->blocks == s->blocks_max) {
        EVAE_TRY(ritz_vectors_to_basis(s, l, seed, streams));
        s->blocks = 0;
    } else {
        size_t first = s->blocks * l;
        for (size_t e = 0; e < ne; e++)
            memcpy(s->basis + e * wm + first, s->z + e * wm + first - l, l * sizeof(double));
        EVAE_TRY(orthogonalise_block(s, first, seed, streams));
    }
    block_to_float(s);
    return EELSVAE_OK;
}

/* ---- step 4 and the driver ------------------------------------------------- */

/* Largest relative change σ_b − σ_a over the k leading values. */
static double largest_change(const fit_state *s)
{
    double worst = 0.0;
    for (size_t i = 0; i < s->k; i++) {
        if (s->sigma_b[i] == 0.0) continue; /* a null direction: nothing left to resolve */
        double change = fabs(s->sigma_b[i] - s->sigma_a[i]) / s->sigma_b[i];
        if (change > worst) worst = change;
    }
    return worst;
}

/* Make the largest-magnitude entry of each component positive (the first
 * such entry on ties), so the basis is the same whatever the iteration did. */
static void fix_signs(float *components, size_t k, size_t ne)
{
    for (size_t i = 0; i < k; i++) {
        float *c = components + i * ne;
        size_t best = 0;
        for (size_t e = 1; e < ne; e++)
            if (fabsf(c[e]) > fabsf(c[best])) best = e;
        if (c[best] < 0.0f)
            for (size_t e = 0; e < ne; e++) c[e] = -c[e];
    }
}

static eelsvae_status check_fit_args(const eelsvae_cube *cube, const eelsvae_pca_options *o)
{
    size_t pixels = evae_cube_pixels(cube);
    size_t rank_max = pixels < cube->ne ? pixels : cube->ne;
    if (o->components == 0 || o->components > rank_max)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "PCA fit: %zu components asked for; a cube of %zu spectra × %zu channels allows 1 … %zu",
                         o->components, pixels, cube->ne, rank_max);
    if (!isfinite(o->tolerance) || o->tolerance < 0.0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA fit: tolerance %g is not a finite value ≥ 0", o->tolerance);
    if (o->max_iterations == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA fit: max_iterations is 0; at least 1 is needed");
    if (cube->ne > EVAE_PCA_MAX_CHANNELS)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "PCA fit: %zu channels exceed the BLAS index range", cube->ne);
    return EELSVAE_OK;
}

/* Copy the result out: the leading k right singular vectors of B. */
static eelsvae_status store_result(fit_state *s, eelsvae_pca *pca, uint64_t seed)
{
    size_t ne = s->ne, k = s->k, wm = s->width_max;
    EVAE_TRY(ritz_vectors_to_basis(s, k, seed, (uint64_t)1 << 63));
    for (size_t i = 0; i < k; i++) {
        for (size_t e = 0; e < ne; e++) pca->components[i * ne + e] = (float)s->basis[e * wm + i];
        pca->singular[i] = i < s->rank ? s->sigma_b[i] : 0.0;
        pca->ratio[i] = pca->total_ss > 0.0 ? pca->singular[i] * pca->singular[i] / pca->total_ss : 0.0;
    }
    fix_signs(pca->components, k, ne);
    return EELSVAE_OK;
}

/* Why the iteration ended. */
typedef enum stop_reason { STOP_CONVERGED, STOP_FLOAT_LIMIT, STOP_MAX_PASSES } stop_reason;

static eelsvae_status iterate(fit_state *s, eelsvae_pca *pca, const eelsvae_pca_options *o, size_t nx)
{
    static const char *const why[] = {"converged", "stopped at float32 precision", "not converged"};
    size_t wm = s->width_max;
    random_columns(s->basis, s->ne, 0, s->l, wm, o->seed, 0);
    EVAE_TRY(orthonormalise(s->basis, s->ne, s->l, wm, s->tau));
    block_to_float(s);
    s->first_pass = 1;
    size_t pass = 0;
    double change = INFINITY, previous = INFINITY;
    stop_reason stop = STOP_MAX_PASSES;
    while (pass < o->max_iterations) {
        pass++;
        EVAE_TRY(subspace_pass(s, pca, nx));
        EVAE_TRY(rayleigh_ritz(s));
        change = largest_change(s);
        evae_log(EELSVAE_LOG_DEBUG, "PCA fit: pass %zu, %zu Krylov blocks, singular values moved by %.3g (relative)",
                 pass, s->blocks, change);
        if (change <= o->tolerance) {
            stop = STOP_CONVERGED;
            break;
        }
        /* Rounding in float32 products keeps σ_a and σ_b apart by ~1e-7 … 1e-5
         * however long one iterates: a change that no longer halves down
         * there is that floor, not progress. */
        if (change <= PCA_FLOAT_LIMIT && change > 0.5 * previous) {
            stop = STOP_FLOAT_LIMIT;
            break;
        }
        if (pass == o->max_iterations) break;
        previous = change;
        EVAE_TRY(next_block(s, o->seed, pass));
    }
    evae_log(stop == STOP_MAX_PASSES ? EELSVAE_LOG_WARN : EELSVAE_LOG_DEBUG,
             "PCA fit: %s after %zu passes over the cube (σ_1 = %g, σ_%zu = %g, last change %.3g)", why[stop], pass,
             s->sigma_b[0], s->k, s->sigma_b[s->k - 1], change);
    return store_result(s, pca, o->seed);
}

/* One fit of every spectrum of `cube` with checked options. */
static eelsvae_status fit_all(const eelsvae_cube *cube, const eelsvae_pca_options *opt, eelsvae_pca **out)
{
    eelsvae_pca_options o = *opt;
    eelsvae_pca *pca = NULL;
    EVAE_TRY(evae_pca_alloc(o.components, cube->ne, &pca));
    /* Single-threaded BLAS throughout: the tiles' GEMMs run on the
     * library's OpenMP threads, and the small dense algebra then gives the
     * same bits whatever the thread count. */
    int blas_threads = evae_pca_blas_single();
    fit_state s;
    eelsvae_status st = fit_state_init(&s, cube, &o);
    if (st == EELSVAE_OK) st = gather_statistics(&s, pca, cube->nx);
    if (st == EELSVAE_OK) evae_log(EELSVAE_LOG_DEBUG, "PCA fit: statistics of %zu spectra gathered", s.pixels);
    if (st == EELSVAE_OK) st = iterate(&s, pca, &o, cube->nx);
    fit_state_free(&s);
    evae_pca_blas_restore(blas_threads);
    if (st != EELSVAE_OK) {
        eelsvae_pca_free(pca);
        return st;
    }
    *out = pca;
    return EELSVAE_OK;
}

/* ---- the robust (trimmed) fit --------------------------------------------------------- */

/* Squared reconstruction error of every spectrum of `cube` under `pca`. */
static eelsvae_status residuals(const eelsvae_pca *pca, const eelsvae_cube *cube, double *err)
{
    eelsvae_cube *recon = NULL;
    EVAE_TRY(eelsvae_pca_reconstruct(pca, cube, &recon));
    size_t pixels = evae_cube_pixels(cube), ne = cube->ne;
    for (size_t p = 0; p < pixels; p++) {
        double sum = 0.0;
        for (size_t e = 0; e < ne; e++) {
            double d = (double)cube->data[p * ne + e] - (double)recon->data[p * ne + e];
            sum += d * d;
        }
        err[p] = sum;
    }
    eelsvae_cube_free(recon);
    return EELSVAE_OK;
}

/* The spectra whose error lies within the lowest 1 − f, as a 1 × n cube. */
static eelsvae_status inliers(const eelsvae_cube *cube, const double *err, double f, double *sorted,
                              eelsvae_cube **out)
{
    size_t pixels = evae_cube_pixels(cube), ne = cube->ne;
    memcpy(sorted, err, pixels * sizeof *sorted);
    evae_sort_doubles(sorted, pixels);
    size_t keep = pixels - (size_t)floor(f * (double)pixels);
    double limit = sorted[keep - 1];
    size_t n = 0;
    for (size_t p = 0; p < pixels; p++) n += err[p] <= limit;
    eelsvae_cube *c = NULL;
    EVAE_TRY(evae_cube_alloc_like(cube, 1, n, ne, &c));
    for (size_t p = 0, j = 0; p < pixels; p++)
        if (err[p] <= limit) memcpy(c->data + j++ * ne, cube->data + p * ne, ne * sizeof(float));
    *out = c;
    return EELSVAE_OK;
}

/* k = 1, 2, … components in turn, each fitted on the inliers of the fit before. */
static eelsvae_status fit_trimmed(const eelsvae_cube *cube, const eelsvae_pca_options *opt, eelsvae_pca **out)
{
    size_t pixels = evae_cube_pixels(cube);
    double *err = NULL, *sorted = NULL;
    EVAE_TRY(evae_alloc_array(pixels, sizeof *err, (void **)&err, "PCA trimming"));
    eelsvae_status st = evae_alloc_array(pixels, sizeof *sorted, (void **)&sorted, "PCA trimming");
    eelsvae_pca_options o = *opt;
    eelsvae_pca *pca = NULL;
    eelsvae_cube *kept = NULL;
    for (size_t k = 1; st == EELSVAE_OK && k <= opt->components; k++) {
        o.components = k;
        eelsvae_pca *next = NULL;
        st = fit_all(kept ? kept : cube, &o, &next);
        eelsvae_pca_free(pca);
        pca = next;
        eelsvae_cube_free(kept);
        kept = NULL;
        if (st == EELSVAE_OK) st = residuals(pca, cube, err);
        if (st == EELSVAE_OK) st = inliers(cube, err, opt->trim_fraction, sorted, &kept);
    }
    /* The k-component basis on the last inliers (when k = 1 that is the second fit). */
    if (st == EELSVAE_OK) {
        eelsvae_pca_free(pca);
        pca = NULL;
        st = fit_all(kept, opt, &pca);
    }
    eelsvae_cube_free(kept);
    evae_free(sorted);
    evae_free(err);
    if (st != EELSVAE_OK) {
        eelsvae_pca_free(pca);
        return st;
    }
    *out = pca;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_pca_fit(const eelsvae_cube *cube, const eelsvae_pca_options *opt, eelsvae_pca **out)
{
    if (!cube || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA fit: NULL argument");
    eelsvae_pca_options o;
    EVAE_TRY(eelsvae_pca_options_init(&o));
    EVAE_TRY(evae_read_options(&o, sizeof o, opt, "PCA"));
    EVAE_TRY(check_fit_args(cube, &o));
    if (!(o.trim_fraction >= 0.0 && o.trim_fraction < 0.5))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "PCA fit: trim_fraction %g must lie in [0, 0.5)",
                         o.trim_fraction);
    size_t kept = evae_cube_pixels(cube) - (size_t)floor(o.trim_fraction * (double)evae_cube_pixels(cube));
    if (o.trim_fraction > 0.0 && kept < o.components)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "PCA fit: trimming %g of %zu spectra leaves %zu, fewer than the %zu components", o.trim_fraction,
                         evae_cube_pixels(cube), kept, o.components);
    return o.trim_fraction > 0.0 ? fit_trimmed(cube, &o, out) : fit_all(cube, &o, out);
}
