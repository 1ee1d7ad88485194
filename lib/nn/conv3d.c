/*
 * Conv3d / ConvTranspose3d layers: shape checks, the layer object with its
 * plans and buffers, and the two public passes, each a sequence of FFT
 * engine steps over chunks of tiles (conv3d_fft.c), or a pass of the GEMM
 * engine (conv3d_gemm.c) or of the direct loops
 * (conv3d_direct.c). The engine and tile choice is in conv3d_plan.c.
 */
#include "conv3d_impl.h"

#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

static const char *const axis_name[3] = {"Y", "X", "E"};

/* ---- the FFTW planner lock ---------------------------------------------- */

static pthread_mutex_t fftw_planner_mutex = PTHREAD_MUTEX_INITIALIZER;

void evae_fftw_planner_lock(void)
{
    pthread_mutex_lock(&fftw_planner_mutex);
}

void evae_fftw_planner_unlock(void)
{
    pthread_mutex_unlock(&fftw_planner_mutex);
}

static _Thread_local size_t test_chunk_cap;
static _Thread_local int test_engine;
static _Thread_local bool test_tiles_set;
static _Thread_local size_t test_tiles[3];

void evae_conv3d_test_chunk_cap(size_t tiles)
{
    test_chunk_cap = tiles;
}

void evae_conv3d_test_engine(int engine)
{
    test_engine = engine;
}

void evae_conv3d_test_tiles(const size_t tile[3])
{
    test_tiles_set = tile != NULL;
    if (tile) memcpy(test_tiles, tile, sizeof test_tiles);
}

/* ---- shape checks ------------------------------------------------------- */

static eelsvae_status check_axis_sizes(const evae_conv3d_shape *sh, int a)
{
    if (sh->in_dims[a] == 0 || sh->kernel[a] == 0 || sh->stride[a] == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "conv3d: axis %s has input size %zu, kernel %zu, stride %zu (all must be ≥ 1)", axis_name[a],
                         sh->in_dims[a], sh->kernel[a], sh->stride[a]);
    if (sh->in_dims[a] > INT_MAX || sh->kernel[a] > INT_MAX || sh->stride[a] > INT_MAX || sh->pad[a] > INT_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "conv3d: axis %s: a size, kernel, stride or padding exceeds %d",
                         axis_name[a], INT_MAX);
    return EELSVAE_OK;
}

/* Output length along one axis of a Conv3d: (in + 2·pad − k) / s + 1. */
static eelsvae_status conv_out_len(const evae_conv3d_shape *sh, int a, size_t *out)
{
    size_t padded = sh->in_dims[a] + 2 * sh->pad[a]; /* each ≤ INT_MAX: no wrap */
    if (sh->output_padding[a] != 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: output_padding %zu on axis %s of a non-transposed layer",
                         sh->output_padding[a], axis_name[a]);
    if (sh->kernel[a] > padded)
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "conv3d: kernel %zu larger than the padded input %zu + 2·%zu = %zu along axis %s",
                         sh->kernel[a], sh->in_dims[a], sh->pad[a], padded, axis_name[a]);
    *out = (padded - sh->kernel[a]) / sh->stride[a] + 1;
    return EELSVAE_OK;
}

/* Output length of a ConvTranspose3d: (in − 1)·s − 2·pad + k + output_padding. */
static eelsvae_status convt_out_len(const evae_conv3d_shape *sh, int a, size_t *out)
{
    if (sh->output_padding[a] >= sh->stride[a])
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "conv3d (transposed): output_padding %zu must be smaller than stride %zu along axis %s",
                         sh->output_padding[a], sh->stride[a], axis_name[a]);
    size_t grown = 0;
    EVAE_TRY(evae_mul(sh->in_dims[a] - 1, sh->stride[a], &grown, "conv3d (transposed) output size"));
    if (grown > SIZE_MAX / 4)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "conv3d (transposed): output size along axis %s overflows",
                         axis_name[a]);
    size_t full = grown + sh->kernel[a] + sh->output_padding[a];
    if (full <= 2 * sh->pad[a])
        return evae_fail(EELSVAE_ERR_DIMENSION,
                         "conv3d (transposed): padding 2·%zu crops the whole output (%zu) along axis %s", sh->pad[a],
                         full, axis_name[a]);
    *out = full - 2 * sh->pad[a];
    if (*out > INT_MAX)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "conv3d (transposed): output size %zu along axis %s exceeds %d", *out,
                         axis_name[a], INT_MAX);
    return EELSVAE_OK;
}

eelsvae_status evae_conv3d_output_dims(const evae_conv3d_shape *shape, size_t out_dims[3])
{
    if (!shape || !out_dims) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: NULL shape or output");
    if (shape->in_channels == 0 || shape->out_channels == 0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: %zu input and %zu output channels (both must be ≥ 1)",
                         shape->in_channels, shape->out_channels);
    size_t dims[3] = {0, 0, 0};
    for (int a = 0; a < 3; a++) {
        EVAE_TRY(check_axis_sizes(shape, a));
        EVAE_TRY(shape->transposed ? convt_out_len(shape, a, &dims[a]) : conv_out_len(shape, a, &dims[a]));
    }
    memcpy(out_dims, dims, sizeof dims);
    return EELSVAE_OK;
}

/* ---- the layer object --------------------------------------------------- */

/* The underlying convolution: big side = a Conv3d's input or a
 * ConvTranspose3d's output. */
static eelsvae_status set_geometry(evae_conv3d *L)
{
    const evae_conv3d_shape *sh = &L->shape;
    L->c_big = sh->transposed ? sh->out_channels : sh->in_channels;
    L->c_small = sh->transposed ? sh->in_channels : sh->out_channels;
    L->phases = 1;
    for (int a = 0; a < 3; a++) {
        evae_conv_axis *ax = &L->ax[a];
        ax->n = sh->transposed ? L->out_dims[a] : sh->in_dims[a];
        ax->m = sh->transposed ? sh->in_dims[a] : L->out_dims[a];
        ax->k = sh->kernel[a];
        ax->s = sh->stride[a];
        ax->pad = sh->pad[a];
        ax->phases = ax->s < ax->k ? ax->s : ax->k;
        ax->kp = (ax->k + ax->s - 1) / ax->s;
        EVAE_TRY(evae_mul(L->phases, ax->phases, &L->phases, "conv3d stride phases"));
    }
    return EELSVAE_OK;
}

/* The chunk of tiles (FFT engine): as many as the work-buffer budget
 * holds, at least one FFT group, at most the whole batch. */
static size_t chunk_tiles(const evae_conv3d *L, size_t batch)
{
    double per_tile = (double)(L->c_phased + L->c_small) * (double)L->freqs * sizeof(fftwf_complex) +
                      2.0 * (double)L->c_phased * (double)L->pvol / (double)L->tiles_per_item * sizeof(float);
    double fit = floor((double)EVAE_CONV_CHUNK_BYTES / per_tile / EVAE_CONV_GROUP) * EVAE_CONV_GROUP;
    double all = ceil((double)L->tiles_per_item * (double)batch / EVAE_CONV_GROUP) * EVAE_CONV_GROUP;
    double chunk = fit < all ? fit : all;
    if (test_chunk_cap > 0 && chunk > (double)test_chunk_cap) chunk = (double)test_chunk_cap;
    chunk = ceil(chunk / EVAE_CONV_GROUP) * EVAE_CONV_GROUP;
    return chunk < EVAE_CONV_GROUP ? EVAE_CONV_GROUP : (size_t)chunk;
}

/* Items a chunk of tiles can touch: its phase tensors hold that many. */
static size_t chunk_items(const evae_conv3d *L, size_t batch)
{
    size_t items = (L->chunk + L->tiles_per_item - 1) / L->tiles_per_item + 1;
    return items < batch ? items : batch;
}

/* A frequency stride of an odd number of cache lines keeps the FFT's
 * strided writes from piling onto a few cache sets. */
static size_t spectrum_stride(size_t rows)
{
    size_t ld = (rows + 7) / 8 * 8;
    return (ld / 8) % 2 == 0 ? ld + 8 : ld;
}

/* Sizes that depend on the engine and tile: every product is checked, and
 * every dimension handed to FFTW or BLAS must fit an int. */
static eelsvae_status set_sizes(evae_conv3d *L, size_t batch)
{
    const evae_conv_axis *ax = L->ax;
    size_t n = 0;
    EVAE_TRY(evae_mul(L->c_big, L->phases, &L->c_phased, "conv3d phased channels"));
    EVAE_TRY(evae_mul(L->c_small, L->c_phased, &L->pairs, "conv3d kernel count"));
    EVAE_TRY(evae_mul3(ax[0].n, ax[1].n, ax[2].n, &L->vol_big, "conv3d volume"));
    EVAE_TRY(evae_mul3(ax[0].m, ax[1].m, ax[2].m, &L->vol_small, "conv3d volume"));
    L->taps = ax[0].kp * ax[1].kp * ax[2].kp; /* ≤ Π k */
    EVAE_TRY(evae_mul(L->pairs, L->taps, &n, "conv3d phase kernels"));
    EVAE_TRY(evae_mul4(L->c_small, L->c_big, ax[0].k * ax[1].k, ax[2].k, &n, "conv3d weight count"));
    evae_conv_choose_engine(L, batch, test_engine, test_tiles_set ? test_tiles : NULL);
    EVAE_TRY(evae_mul3(ax[0].p, ax[1].p, ax[2].p, &L->pvol, "conv3d phase tensor"));
    EVAE_TRY(evae_mul3(ax[0].tiles, ax[1].tiles, ax[2].tiles, &L->tiles_per_item, "conv3d tile count"));
    EVAE_TRY(evae_mul((size_t)batch, L->tiles_per_item, &n, "conv3d batch tiles"));
    if (L->direct) {
        size_t per_item = 0, grid = 0;
        EVAE_TRY(evae_mul3(L->c_phased, L->pvol, sizeof(float), &per_item, "conv3d phase tensor"));
        if (L->gemm) {
            evae_conv_gemm_geometry(L);
            if (L->grid_len > INT_MAX || L->c_phased > INT_MAX || L->pairs > INT_MAX)
                return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                                 "conv3d: a phase grid of %zu points or %zu channels exceeds BLAS's int dimensions",
                                 L->grid_len, L->c_phased);
            EVAE_TRY(evae_mul3(L->c_small, L->grid_len, sizeof(float), &grid, "conv3d output grid"));
            per_item += grid;
        }
        size_t fit = test_chunk_cap > 0 ? 1 : EVAE_CONV_CHUNK_BYTES / per_item;
        L->phase_items = fit < 1 ? 1 : fit < batch ? fit : batch;
        return EELSVAE_OK;
    }
    for (int a = 0; a < 3; a++)
        if (ax[a].f > EVAE_CONV_MAX_TILE)
            return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                             "conv3d: kernel %zu at stride %zu along axis %s needs FFT tiles longer than %d", ax[a].k,
                             ax[a].s, axis_name[a], EVAE_CONV_MAX_TILE);
    L->tile_points = ax[0].f * ax[1].f * ax[2].f; /* each ≤ EVAE_CONV_MAX_TILE */
    L->tile_stride = (L->tile_points + 15) / 16 * 16;
    L->freqs = ax[0].f * ax[1].f * (ax[2].f / 2 + 1);
    L->chunk = chunk_tiles(L, batch);
    L->phase_items = chunk_items(L, batch);
    size_t rows_big = 0, rows_small = 0, widest_gemm = 0;
    EVAE_TRY(evae_mul(L->c_phased, L->chunk, &rows_big, "conv3d spectrum size"));
    EVAE_TRY(evae_mul(L->c_small, L->chunk, &rows_small, "conv3d spectrum size"));
    L->ld_big = spectrum_stride(rows_big);
    L->ld_small = spectrum_stride(rows_small);
    EVAE_TRY(evae_mul3(ax[1].f, ax[2].f / 2 + 1, L->pairs, &widest_gemm, "conv3d DFT size"));
    if (L->ld_big > INT_MAX || L->ld_small > INT_MAX || widest_gemm > INT_MAX)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                         "conv3d: %zu × %zu channels with %zu-point tiles exceed BLAS's int dimensions", L->c_small,
                         L->c_phased, L->tile_points);
    size_t dft_rows = ax[0].kp * ax[1].kp * (ax[2].f / 2 + 1) + ax[0].kp * ax[1].f * (ax[2].f / 2 + 1) + L->taps;
    EVAE_TRY(evae_mul(dft_rows, L->pairs, &L->dft_work_count, "conv3d DFT work size"));
    return EELSVAE_OK;
}

/* Fill the separable DFT matrices of each axis (see conv3d_impl.h), in
 * double then rounded, so that the kernel spectra match FFTW's convention
 * e^{−2πi f j / F}. */
static void make_dft_matrices(evae_conv3d *L)
{
    for (int a = 0; a < 3; a++) {
        const evae_conv_axis *ax = &L->ax[a];
        size_t rows = a == 2 ? ax->f / 2 + 1 : ax->f;
        for (size_t f = 0; f < rows; f++) {
            /* On E only half the spectrum is kept: the other half of a real
             * signal's inverse is the conjugate, hence weight 2 inside. */
            double weight = (a == 2 && f != 0 && 2 * f != ax->f) ? 2.0 : 1.0;
            for (size_t j = 0; j < ax->kp; j++) {
                double angle = 2.0 * M_PI * (double)((f * j) % ax->f) / (double)ax->f;
                float c = (float)cos(angle), s = (float)sin(angle);
                L->dft_fwd[a][f * ax->kp + j][0] = c;
                L->dft_fwd[a][f * ax->kp + j][1] = -s;
                L->dft_conj[a][f * ax->kp + j][0] = c;
                L->dft_conj[a][f * ax->kp + j][1] = s;
                L->dft_inv[a][j * rows + f][0] = (float)(weight * cos(angle));
                L->dft_inv[a][j * rows + f][1] = (float)(weight * sin(angle));
            }
        }
    }
}

/* ---- buffer sizes: the one statement of what a layer allocates ------------ */

eelsvae_status evae_conv_alloc(evae_conv3d *L, size_t bytes, bool zero, void **out, const char *what)
{
    *out = NULL;
    if (bytes == 0) return EELSVAE_OK;
    EVAE_TRY(zero ? evae_alloc_zeros(bytes, 1, out, what) : evae_alloc_array(bytes, 1, out, what));
    L->allocated += bytes;
    return EELSVAE_OK;
}

/* The phase tensors at `items` items: the big side and, for the FFT engine,
 * its gradient (both live at once in a Conv3d's backward); the GEMM
 * engine's output grid. */
static eelsvae_status phase_buffer_bytes(const evae_conv3d *L, size_t items, evae_conv_buffers *b)
{
    EVAE_TRY(evae_mul4(items, L->c_phased, L->pvol, sizeof(float), &b->phase, "conv3d phase tensor"));
    b->dphase = L->direct ? 0 : b->phase;
    b->grid = 0;
    if (L->gemm) EVAE_TRY(evae_mul4(items, L->c_small, L->grid_len, sizeof(float), &b->grid, "conv3d output grid"));
    return EELSVAE_OK;
}

/* Per-thread buffers: an FFT group of tiles, a direct engine's output row
 * or the GEMM engine's block of copied rows. */
static eelsvae_status thread_buffer_bytes(const evae_conv3d *L, size_t threads, size_t *bytes)
{
    size_t per_thread = L->gemm     ? evae_conv_gemm_scratch(L)
                        : L->direct ? (L->ax[2].m + 15) / 16 * 16
                                    : EVAE_CONV_GROUP * L->tile_stride;
    return evae_mul3(threads, per_thread, sizeof(float), bytes, "conv3d thread buffers");
}

static eelsvae_status fft_buffer_bytes(const evae_conv3d *L, evae_conv_buffers *b)
{
    const size_t cplx = sizeof(fftwf_complex);
    EVAE_TRY(evae_mul3(L->freqs, L->ld_big, cplx, &b->spec_big, "conv3d spectra"));
    EVAE_TRY(evae_mul3(L->freqs, L->ld_small, cplx, &b->spec_small, "conv3d spectra"));
    EVAE_TRY(evae_mul3(L->freqs, L->pairs, cplx, &b->kspec, "conv3d kernel spectra"));
    b->gspec = b->kspec;
    EVAE_TRY(evae_mul(L->dft_work_count, cplx, &b->dft_work, "conv3d DFT work"));
    for (int a = 0; a < 3; a++) {
        const evae_conv_axis *ax = &L->ax[a];
        size_t rows = a == 2 ? ax->f / 2 + 1 : ax->f; /* ≤ EVAE_CONV_MAX_TILE */
        EVAE_TRY(evae_mul3(rows, ax->kp, cplx, &b->dft[a], "conv3d DFT"));
    }
    return EELSVAE_OK;
}

static eelsvae_status direct_buffer_bytes(const evae_conv3d *L, evae_conv_buffers *b)
{
    if (L->gemm) return evae_conv_gemm_buffers(L, b);
    EVAE_TRY(evae_mul3(L->pairs, L->taps, sizeof(float), &b->wphase, "conv3d phase kernels"));
    EVAE_TRY(evae_mul3(L->pairs, L->taps, sizeof(double), &b->wgrad, "conv3d weight gradient"));
    return EELSVAE_OK;
}

/* Everything create allocates for planned layer L, with `threads` threads. */
static eelsvae_status plan_buffers(const evae_conv3d *L, size_t threads, evae_conv_buffers *b)
{
    memset(b, 0, sizeof *b);
    b->layer = sizeof *L;
    EVAE_TRY(phase_buffer_bytes(L, L->phase_items, b));
    EVAE_TRY(thread_buffer_bytes(L, threads, &b->gather));
    return L->direct ? direct_buffer_bytes(L, b) : fft_buffer_bytes(L, b);
}

static eelsvae_status buffers_total(const evae_conv_buffers *b, size_t *total)
{
    const size_t parts[] = {b->layer,     b->phase,     b->dphase,     b->grid,       b->gather,
                            b->spec_big,  b->spec_small, b->kspec,     b->gspec,      b->dft_work,
                            b->dft[0],    b->dft[0],    b->dft[0],     b->dft[1],     b->dft[1],
                            b->dft[1],    b->dft[2],    b->dft[2],     b->dft[2],     b->wphase,
                            b->wgrad,     b->wtap_grad, b->tap_offsets, b->tap_list,  b->group_list,
                            b->grad_part};
    size_t sum = 0;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        if (parts[i] > SIZE_MAX - sum)
            return evae_fail(EELSVAE_ERR_OVERFLOW, "conv3d: the work buffers' total size overflows");
        sum += parts[i];
    }
    *total = sum;
    return EELSVAE_OK;
}

/* ---- allocation ------------------------------------------------------------ */

static eelsvae_status alloc_fft_buffers(evae_conv3d *L, const evae_conv_buffers *b)
{
    EVAE_TRY(evae_conv_alloc(L, b->spec_big, true, (void **)&L->spec_big, "conv3d spectra"));
    EVAE_TRY(evae_conv_alloc(L, b->spec_small, true, (void **)&L->spec_small, "conv3d spectra"));
    EVAE_TRY(evae_conv_alloc(L, b->kspec, false, (void **)&L->kspec, "conv3d kernel spectra"));
    EVAE_TRY(evae_conv_alloc(L, b->gspec, false, (void **)&L->gspec, "conv3d weight-gradient spectra"));
    EVAE_TRY(evae_conv_alloc(L, b->dft_work, false, (void **)&L->dft_work, "conv3d DFT work"));
    for (int a = 0; a < 3; a++) {
        EVAE_TRY(evae_conv_alloc(L, b->dft[a], false, (void **)&L->dft_fwd[a], "conv3d DFT"));
        EVAE_TRY(evae_conv_alloc(L, b->dft[a], false, (void **)&L->dft_conj[a], "conv3d DFT"));
        EVAE_TRY(evae_conv_alloc(L, b->dft[a], false, (void **)&L->dft_inv[a], "conv3d DFT"));
    }
    make_dft_matrices(L);
    return EELSVAE_OK;
}

/* The phase tensors and grid (phase_buffer_bytes) for `items` items,
 * replacing those held. */
static eelsvae_status alloc_phase_buffers(evae_conv3d *L, size_t items)
{
    evae_conv_buffers b;
    memset(&b, 0, sizeof b);
    EVAE_TRY(phase_buffer_bytes(L, items, &b));
    float *phase = NULL, *dphase = NULL;
    if (L->gemm) {
        evae_free(L->grid);
        L->grid = NULL;
        EVAE_TRY(evae_conv_alloc(L, b.grid, true, (void **)&L->grid, "conv3d output grid"));
    }
    EVAE_TRY(evae_conv_alloc(L, b.phase, true, (void **)&phase, "conv3d phase tensor"));
    eelsvae_status st = evae_conv_alloc(L, b.dphase, true, (void **)&dphase, "conv3d phase tensor");
    if (st != EELSVAE_OK) {
        evae_free(phase);
        return st;
    }
    if (L->dphase != L->phase) evae_free(L->dphase);
    evae_free(L->phase);
    L->phase = phase;
    L->dphase = L->direct ? phase : dphase;
    L->phase_items = items;
    return EELSVAE_OK;
}

static eelsvae_status alloc_direct_buffers(evae_conv3d *L, const evae_conv_buffers *b)
{
    if (L->gemm) return evae_conv_gemm_alloc(L, b);
    EVAE_TRY(evae_conv_alloc(L, b->wphase, false, (void **)&L->wphase, "conv3d phase kernels"));
    EVAE_TRY(evae_conv_alloc(L, b->wgrad, false, (void **)&L->wgrad, "conv3d weight gradient"));
    return EELSVAE_OK;
}

/* Per-thread buffers (thread_buffer_bytes), grown when the thread count
 * grew since. */
static eelsvae_status ensure_thread_buffers(evae_conv3d *L)
{
    size_t threads = (size_t)evae_threads(), bytes = 0;
    if (threads <= L->gather_threads) return EELSVAE_OK;
    float *grown = NULL;
    EVAE_TRY(thread_buffer_bytes(L, threads, &bytes));
    EVAE_TRY(evae_conv_alloc(L, bytes, true, (void **)&grown, "conv3d thread buffers"));
    evae_free(L->gather);
    L->gather = grown;
    L->gather_threads = threads;
    return EELSVAE_OK;
}

/* Four plans, all on GROUP tiles at once: tiles contiguous in real space
 * (a stride of tile_stride floats, in a thread's gather buffer), spectra
 * frequency-major. */
static eelsvae_status make_plans(evae_conv3d *L)
{
    int n[3] = {(int)L->ax[0].f, (int)L->ax[1].f, (int)L->ax[2].f};
    int group = EVAE_CONV_GROUP, dist = (int)L->tile_stride;
    unsigned flags = FFTW_ESTIMATE;
    evae_fftw_planner_lock();
    L->r2c_big = fftwf_plan_many_dft_r2c(3, n, group, L->gather, NULL, 1, dist, L->spec_big, NULL, (int)L->ld_big, 1,
                                         flags);
    L->r2c_small = fftwf_plan_many_dft_r2c(3, n, group, L->gather, NULL, 1, dist, L->spec_small, NULL,
                                           (int)L->ld_small, 1, flags);
    L->c2r_big = fftwf_plan_many_dft_c2r(3, n, group, L->spec_big, NULL, (int)L->ld_big, 1, L->gather, NULL, 1, dist,
                                         flags);
    L->c2r_small = fftwf_plan_many_dft_c2r(3, n, group, L->spec_small, NULL, (int)L->ld_small, 1, L->gather, NULL, 1,
                                           dist, flags);
    evae_fftw_planner_unlock();
    if (!L->r2c_big || !L->r2c_small || !L->c2r_big || !L->c2r_small)
        return evae_fail(EELSVAE_ERR_INTERNAL, "conv3d: FFTW could not plan %zu × %zu × %zu tiles", L->ax[0].f,
                         L->ax[1].f, L->ax[2].f);
    return EELSVAE_OK;
}

/* Sizes that a batch of `batch` items must keep within size_t. */
static eelsvae_status check_batch_sizes(const evae_conv3d *L, int batch)
{
    if (batch < 1) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: batch %d (must be ≥ 1)", batch);
    size_t n = 0, c = L->c_big > L->c_small ? L->c_big : L->c_small;
    size_t vol = L->vol_big > L->vol_small ? L->vol_big : L->vol_small;
    EVAE_TRY(evae_mul3((size_t)batch, c, vol, &n, "conv3d batch size"));
    return evae_mul((size_t)batch, L->tiles_per_item, &n, "conv3d batch tiles");
}

/* Everything about a layer but its buffers and plans: shape checks,
 * geometry, engine and tile choice, sizes. Allocates nothing. */
static eelsvae_status plan_layer(evae_conv3d *L, const evae_conv3d_shape *shape, int batch)
{
    if (batch < 1) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: batch %d (must be ≥ 1)", batch);
    EVAE_TRY(evae_conv3d_output_dims(shape, L->out_dims));
    L->shape = *shape;
    L->batch = (size_t)batch;
    EVAE_TRY(set_geometry(L));
    EVAE_TRY(set_sizes(L, L->batch));
    return check_batch_sizes(L, batch);
}

eelsvae_status evae_conv3d_workspace_bytes(const evae_conv3d_shape *shape, int batch, size_t *bytes)
{
    if (!bytes) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d workspace: NULL output");
    evae_conv3d L;
    memset(&L, 0, sizeof L);
    evae_conv_buffers b;
    EVAE_TRY(plan_layer(&L, shape, batch));
    EVAE_TRY(plan_buffers(&L, (size_t)evae_threads(), &b));
    return buffers_total(&b, bytes);
}

size_t evae_conv3d_allocated_bytes(const evae_conv3d *L)
{
    return L ? L->created_bytes : 0;
}

/* Plan, then allocate exactly what plan_buffers lists (L itself is
 * allocated already). */
static eelsvae_status build_layer(evae_conv3d *L, const evae_conv3d_shape *shape, int batch)
{
    evae_conv_buffers b;
    L->allocated = sizeof *L;
    EVAE_TRY(plan_layer(L, shape, batch));
    EVAE_TRY(plan_buffers(L, (size_t)evae_threads(), &b));
    EVAE_TRY(alloc_phase_buffers(L, L->phase_items));
    EVAE_TRY(ensure_thread_buffers(L));
    if (L->direct) {
        EVAE_TRY(alloc_direct_buffers(L, &b));
    } else {
        EVAE_TRY(alloc_fft_buffers(L, &b));
        EVAE_TRY(make_plans(L));
    }
    L->created_bytes = L->allocated;
    evae_log(EELSVAE_LOG_DEBUG, "conv3d %zu→%zu%s: %s, tiles %zu×%zu×%zu, %zu per item, %zu per chunk, %zu phases",
             shape->in_channels, shape->out_channels, shape->transposed ? " (transposed)" : "",
             L->gemm ? "GEMM" : L->direct ? "direct" : "FFT", L->ax[0].f, L->ax[1].f, L->ax[2].f, L->tiles_per_item, L->chunk,
             L->phases);
    return EELSVAE_OK;
}

eelsvae_status evae_conv3d_create(evae_conv3d **layer, const evae_conv3d_shape *shape, int batch)
{
    if (!layer) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: NULL layer pointer");
    evae_conv3d *L = NULL;
    EVAE_TRY(evae_alloc_zeros(1, sizeof *L, (void **)&L, "conv3d layer"));
    eelsvae_status st = build_layer(L, shape, batch);
    if (st != EELSVAE_OK) {
        evae_conv3d_free(L);
        return st;
    }
    *layer = L;
    return EELSVAE_OK;
}

void evae_conv3d_free(evae_conv3d *L)
{
    if (!L) return;
    evae_fftw_planner_lock();
    fftwf_plan plans[4] = {L->r2c_big, L->r2c_small, L->c2r_big, L->c2r_small};
    for (int i = 0; i < 4; i++)
        if (plans[i]) fftwf_destroy_plan(plans[i]);
    evae_fftw_planner_unlock();
    for (int a = 0; a < 3; a++) {
        evae_free(L->dft_fwd[a]);
        evae_free(L->dft_conj[a]);
        evae_free(L->dft_inv[a]);
    }
    if (L->dphase != L->phase) evae_free(L->dphase);
    evae_free(L->phase);
    evae_free(L->spec_big);
    evae_free(L->spec_small);
    evae_free(L->gather);
    evae_free(L->kspec);
    evae_free(L->gspec);
    evae_free(L->dft_work);
    evae_free(L->wphase);
    evae_free(L->wgrad);
    evae_free(L->grid);
    evae_free(L->wtap_grad);
    evae_free(L->tap_list);
    evae_free(L->group_list);
    evae_free(L->tap_offsets);
    evae_free(L->grad_part);
    evae_free(L->kept);
    evae_free(L);
}

eelsvae_status evae_conv3d_keep_input_spectra(evae_conv3d *L, bool keep)
{
    if (!L) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: NULL layer");
    /* The GEMM engine keeps its phase tensor or grid instead, when one
     * block holds the whole batch; the direct loops keep nothing. */
    L->keep = keep && (!L->direct || L->gemm);
    L->kept_input = NULL;
    if (!L->keep) {
        evae_free(L->kept);
        L->kept = NULL;
        L->kept_chunks = 0;
    }
    return EELSVAE_OK;
}

eelsvae_status evae_conv3d_set_batch(evae_conv3d *L, int batch)
{
    if (!L) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d: NULL layer");
    EVAE_TRY(check_batch_sizes(L, batch));
    /* A larger batch may let a chunk touch more items than the phase
     * tensors were sized for (the direct engine works in blocks instead). */
    if (L->phase && !L->direct && chunk_items(L, (size_t)batch) > L->phase_items)
        EVAE_TRY(alloc_phase_buffers(L, chunk_items(L, (size_t)batch)));
    L->batch = (size_t)batch;
    return EELSVAE_OK;
}

size_t evae_conv3d_weight_count(const evae_conv3d *L)
{
    const size_t *k = L->shape.kernel;
    return L->c_small * L->c_big * k[0] * k[1] * k[2];
}

size_t evae_conv3d_in_count(const evae_conv3d *L)
{
    return L->batch * (L->shape.transposed ? L->c_small * L->vol_small : L->c_big * L->vol_big);
}

size_t evae_conv3d_out_count(const evae_conv3d *L)
{
    return L->batch * (L->shape.transposed ? L->c_big * L->vol_big : L->c_small * L->vol_small);
}

void evae_conv3d_out_dims(const evae_conv3d *L, size_t out_dims[3])
{
    memcpy(out_dims, L->out_dims, sizeof L->out_dims);
}

/* ---- the passes --------------------------------------------------------- */

/* A chunk of tiles [first, first + count) and the items it touches. */
typedef struct chunk {
    size_t index, first, count, n0, n1; /* items n0 ≤ n ≤ n1 */
} chunk;

/* Start with chunk ck = {0}; each call moves to the next one. */
static bool next_chunk(const evae_conv3d *L, chunk *ck)
{
    size_t total = L->batch * L->tiles_per_item, first = ck->first + ck->count;
    if (first >= total) return false;
    ck->index = ck->count ? ck->index + 1 : 0;
    ck->first = first;
    ck->count = total - first < L->chunk ? total - first : L->chunk;
    ck->n0 = first / L->tiles_per_item;
    ck->n1 = (first + ck->count - 1) / L->tiles_per_item;
    return true;
}

/* Which items a phase tensor holds, so that an item a chunk boundary cuts
 * is rearranged once, not once per chunk. */
typedef struct window {
    size_t n0, items; /* items == 0: empty */
} window;

static bool window_holds(const window *win, const chunk *ck)
{
    return win->items > 0 && ck->n0 >= win->n0 && ck->n1 < win->n0 + win->items;
}

static size_t window_items(const evae_conv3d *L, size_t n0)
{
    return L->batch - n0 < L->phase_items ? L->batch - n0 : L->phase_items;
}

/* Make the big-side phase tensor hold the chunk's items. */
static void window_load(evae_conv3d *L, window *win, const float *big, const chunk *ck)
{
    if (window_holds(win, ck)) return;
    win->n0 = ck->n0;
    win->items = window_items(L, ck->n0);
    STEP(L, transform, evae_conv_space_to_depth(L, big, win->n0, win->items));
}

/* Put the gradient phase tensor's items back into `big`, and empty it. */
static void window_flush(evae_conv3d *L, window *win, float *big)
{
    if (win->items > 0) STEP(L, inverse, evae_conv_depth_to_space_add(L, L->dphase, big, win->n0, win->items));
    win->items = 0;
}

/* Make the gradient phase tensor hold the chunk's items, flushing others. */
static void window_target(evae_conv3d *L, window *win, float *big, const chunk *ck)
{
    if (window_holds(win, ck)) return;
    window_flush(L, win, big);
    win->n0 = ck->n0;
    win->items = window_items(L, ck->n0);
    STEP(L, inverse, evae_conv_clear_phase(L, L->dphase, win->items));
}

/* ---- kept input spectra ---- */

/* The input side's spectra: the layer's own chunk buffer, or the kept
 * block of this chunk. */
static fftwf_complex **input_spectra(evae_conv3d *L)
{
    return L->shape.transposed ? &L->spec_small : &L->spec_big;
}

static size_t input_block(const evae_conv3d *L)
{
    return L->freqs * (L->shape.transposed ? L->ld_small : L->ld_big);
}

/* Make room to keep every chunk's input spectra of the current batch. */
static eelsvae_status reserve_kept(evae_conv3d *L)
{
    size_t chunks = (L->batch * L->tiles_per_item + L->chunk - 1) / L->chunk, n = 0;
    L->kept_input = NULL;
    if (chunks <= L->kept_chunks) return EELSVAE_OK;
    fftwf_complex *grown = NULL;
    EVAE_TRY(evae_mul(chunks, input_block(L), &n, "conv3d kept spectra"));
    EVAE_TRY(evae_mul(n, sizeof(fftwf_complex), &n, "conv3d kept spectra"));
    EVAE_TRY(evae_conv_alloc(L, n, false, (void **)&grown, "conv3d kept spectra"));
    evae_free(L->kept);
    L->kept = grown;
    L->kept_chunks = chunks;
    return EELSVAE_OK;
}

/* Whether a backward on input x finds its spectra kept. */
static bool kept_for(const evae_conv3d *L, const float *x)
{
    return L->keep && L->kept_input && L->kept_input == x && L->kept_batch == L->batch;
}

/* Point the input side at chunk ck's kept block (when keeping). */
static void use_kept_block(evae_conv3d *L, const chunk *ck, fftwf_complex *own)
{
    *input_spectra(L) = L->keep ? L->kept + ck->index * input_block(L) : own;
}

/* small ← conv(big) + bias: the conv layer's forward. */
static void conv_forward(evae_conv3d *L, float *small, const float *big, const float *w, const float *b)
{
    if (L->gemm) {
        evae_conv_gemm_forward(L, small, big, w, b, false);
        return;
    }
    if (L->direct) {
        STEP(L, mix, evae_conv_direct_forward(L, small, big, w, b, false));
        return;
    }
    STEP(L, kernel, evae_conv_kernel_spectra(L, w, true));
    chunk ck = {0, 0, 0, 0, 0};
    window in = {0, 0};
    fftwf_complex *own = L->spec_big;
    while (next_chunk(L, &ck)) {
        use_kept_block(L, &ck, own);
        window_load(L, &in, big, &ck);
        STEP(L, transform, evae_conv_transform_big(L, ck.first, ck.count, in.n0));
        STEP(L, mix, evae_conv_mix(L, EVAE_MIX_FORWARD, ck.count, false));
        STEP(L, inverse, evae_conv_inverse_small_crop(L, small, ck.first, ck.count, false, b));
    }
    L->spec_big = own;
}

/* big ← b + conv_adjoint(small): the transposed layer's forward. */
static void convt_forward(evae_conv3d *L, float *big, const float *small, const float *w, const float *b)
{
    STEP(L, weight, evae_conv_fill_bias(L, big, b, L->c_big, L->vol_big));
    if (L->gemm) {
        evae_conv_gemm_adjoint(L, big, small, w);
        return;
    }
    if (L->direct) {
        STEP(L, mix, evae_conv_direct_adjoint(L, big, small, w));
        return;
    }
    STEP(L, kernel, evae_conv_kernel_spectra(L, w, false));
    chunk ck = {0, 0, 0, 0, 0};
    window out = {0, 0};
    fftwf_complex *own = L->spec_small;
    while (next_chunk(L, &ck)) {
        use_kept_block(L, &ck, own);
        STEP(L, transform, evae_conv_transform_small(L, small, ck.first, ck.count));
        STEP(L, mix, evae_conv_mix(L, EVAE_MIX_ADJOINT, ck.count, false));
        window_target(L, &out, big, &ck);
        STEP(L, inverse, evae_conv_inverse_big_scatter(L, ck.first, ck.count, out.n0));
    }
    window_flush(L, &out, big);
    L->spec_small = own;
}

/* Conv3d backward: dx += conv_adjoint(dy), dw += Σ dy ⊗ x. The spectra of
 * dy serve both. */
static void conv_backward(evae_conv3d *L, float *dx, float *dw, const float *dy, const float *x, const float *w)
{
    if (L->gemm) {
        evae_conv_gemm_backward(L, dx, dw, dy, x, w, true, kept_for(L, x) && L->phase_items >= L->batch);
        return;
    }
    if (L->direct) {
        if (dx) STEP(L, mix, evae_conv_direct_adjoint(L, dx, dy, w));
        if (dw) STEP(L, mix, evae_conv_direct_grad(L, dw, dy, x));
        return;
    }
    if (dx) STEP(L, kernel, evae_conv_kernel_spectra(L, w, false));
    chunk ck = {0, 0, 0, 0, 0};
    window in = {0, 0}, out = {0, 0};
    fftwf_complex *own = L->spec_big;
    bool kept = kept_for(L, x); /* then the kept blocks serve, and are overwritten */
    while (next_chunk(L, &ck)) {
        if (kept) use_kept_block(L, &ck, own);
        STEP(L, transform, evae_conv_transform_small(L, dy, ck.first, ck.count));
        if (dw) {
            if (!kept) {
                window_load(L, &in, x, &ck);
                STEP(L, transform, evae_conv_transform_big(L, ck.first, ck.count, in.n0));
            }
            STEP(L, mix, evae_conv_mix(L, EVAE_MIX_GRAD, ck.count, ck.first > 0));
        }
        if (dx) {
            STEP(L, mix, evae_conv_mix(L, EVAE_MIX_ADJOINT, ck.count, false));
            window_target(L, &out, dx, &ck);
            STEP(L, inverse, evae_conv_inverse_big_scatter(L, ck.first, ck.count, out.n0));
        }
    }
    if (dx) window_flush(L, &out, dx);
    if (dw) STEP(L, weight, evae_conv_weight_gradient(L, dw));
    L->spec_big = own;
}

/* ConvTranspose3d backward: dx += conv(dy), dw += Σ x ⊗ dy (x is the small
 * side, dy the big side). The spectra of dy serve both. */
static void convt_backward(evae_conv3d *L, float *dx, float *dw, const float *dy, const float *x, const float *w)
{
    if (L->gemm) {
        evae_conv_gemm_backward(L, dx, dw, dy, x, w, false, kept_for(L, x) && L->phase_items >= L->batch);
        return;
    }
    if (L->direct) {
        if (dx) STEP(L, mix, evae_conv_direct_forward(L, dx, dy, w, NULL, true));
        if (dw) STEP(L, mix, evae_conv_direct_grad(L, dw, x, dy));
        return;
    }
    if (dx) STEP(L, kernel, evae_conv_kernel_spectra(L, w, true));
    chunk ck = {0, 0, 0, 0, 0};
    window in = {0, 0};
    fftwf_complex *own = L->spec_small;
    bool kept = kept_for(L, x); /* then the kept blocks serve, and are overwritten */
    while (next_chunk(L, &ck)) {
        if (kept) use_kept_block(L, &ck, own);
        window_load(L, &in, dy, &ck);
        STEP(L, transform, evae_conv_transform_big(L, ck.first, ck.count, in.n0));
        if (dw) {
            if (!kept) STEP(L, transform, evae_conv_transform_small(L, x, ck.first, ck.count));
            STEP(L, mix, evae_conv_mix(L, EVAE_MIX_GRAD, ck.count, ck.first > 0));
        }
        if (dx) {
            STEP(L, mix, evae_conv_mix(L, EVAE_MIX_FORWARD, ck.count, false));
            STEP(L, inverse, evae_conv_inverse_small_crop(L, dx, ck.first, ck.count, true, NULL));
        }
    }
    if (dw) STEP(L, weight, evae_conv_weight_gradient(L, dw));
    L->spec_small = own;
}

eelsvae_status evae_conv3d_forward(evae_conv3d *L, float *y, const float *x, const float *w, const float *b)
{
    if (!L || !y || !x || !w)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d forward: NULL layer, output, input or weights");
    EVAE_TRY(ensure_thread_buffers(L));
    if (L->keep && !L->direct) EVAE_TRY(reserve_kept(L));
    int saved = evae_conv_blas_single();
    if (L->shape.transposed) {
        convt_forward(L, y, x, w, b);
    } else {
        conv_forward(L, y, x, w, b);
    }
    evae_conv_blas_restore(saved);
    if (L->keep) {
        L->kept_input = x;
        L->kept_batch = L->batch;
    }
    return EELSVAE_OK;
}

eelsvae_status evae_conv3d_backward(evae_conv3d *L, float *dx, float *dw, float *db, const float *dy,
                                    const float *x, const float *w)
{
    if (!L || !dy) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d backward: NULL layer or output gradient");
    if (dw && !x) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d backward: dw wanted but the input x is NULL");
    if (dx && !w) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "conv3d backward: dx wanted but the weights are NULL");
    EVAE_TRY(ensure_thread_buffers(L));
    bool t = L->shape.transposed;
    size_t channels = t ? L->c_big : L->c_small, volume = t ? L->vol_big : L->vol_small;
    if (db) STEP(L, weight, evae_conv_bias_gradient(L, db, dy, channels, volume));
    if (!dx && !dw) return EELSVAE_OK;
    int saved = evae_conv_blas_single();
    if (t) {
        convt_backward(L, dx, dw, dy, x, w);
    } else {
        conv_backward(L, dx, dw, dy, x, w);
    }
    evae_conv_blas_restore(saved);
    L->kept_input = NULL; /* used (and overwritten) or stale */
    return EELSVAE_OK;
}
