/*
 * The GEMM engine of conv3d: direct convolution as single-precision GEMMs
 * on the phase grid, with at most a cache-sized im2col block.
 *
 * The phase grid: in the phase tensor (conv3d_phase.c) every phased
 * channel is a zero-padded grid of p_y × p_x × p_e points, and the stride-1
 * correlation reads x_r[q + j]. Flatten both q and j with the grid's own
 * strides, q̂ = (q_y·p_x + q_x)·p_e + q_e and ĵ likewise: then
 * x_r[q + j] = phase[c'][q̂ + ĵ], so for one kernel tap k (phase r, phase
 * tap j) the layer's contribution is
 *     Y[o][q̂] += W_k[o][c] · phase[c·S + r][q̂ + ĵ]
 * — a GEMM whose B matrix is the phase tensor itself, shifted by ĵ (rows
 * S·pvol apart). Outputs are computed on the grid, including the kp − 1
 * "junk" columns and rows per axis that no output uses (10–50 % more work
 * on the model's layers), and cropped afterwards. One GEMM per real tap
 * (K = C) rather than per phase tap (K = C·S) skips the zero taps of the
 * phases with fewer taps: (4/3)³ of the work for 3×3×3 at stride 2.
 *
 * Two ways to run these products, chosen per layer by conv3d_plan.c:
 * - sgemm, one call per kernel tap (K = C or O). For the weight gradient,
 *   whose M = O and N = C are both thin, the taps of one phase are taken
 *   in groups of g (g·min(C, O) ≈ 64): the group's shifted rows, one block
 *   of COLS columns each, are copied side by side (an im2col of one block,
 *   cache-resident) and one GEMM with N = g·C serves the group. (The same
 *   grouping for the forward and adjoint measured slower than per tap.)
 * - the vector kernel at the end of this file (AVX-512), which keeps a block of
 *   outputs in registers across all taps and channels: faster than sgemm's
 *   per-tap calls, which re-read and re-write the output block per tap.
 *
 * The small side lives on the same flattened grid, GRID[o][margin + q̂]
 * (zero at junk points and in a leading margin of ĵ_max zeros), so that
 *   ADJOINT  dphase[c·S + r][û] += W_k^T · GRID[:, margin + û − ĵ]   (û < pvol)
 *   GRAD     dW_k += GRID[:, margin + q̂] · phase[c·S + r][q̂ + ĵ]^T   (K = q̂ < Q)
 * are GEMMs of the same kind: wrapping across a row lands on junk points,
 * which are zero.
 *
 * Why not FFTs: the stride-2 3×3×3 layers' polyphase FFTs save few
 * multiply-adds and the 3×3×5 ones' at the FAST preset's sizes not enough to
 * pay for the transforms and tile copies, which took 50–70 % of the FFT
 * engine's time; these products run at most of the core's peak
 * (bench/conv3d_bench.c --engine 1/3/4 compares the engines layer by layer).
 *
 * Determinism: every GEMM runs single-threaded; the forward and adjoint
 * split output columns into fixed blocks (each output summed by one thread,
 * taps in order); the weight gradient gives each tap group (sgemm) or each
 * unit of channel and rows (vector kernel) to one thread, which sums items
 * and column blocks in order.
 */
#include "conv3d_impl.h"

#include <cblas.h>
#include <string.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#define THREAD_ID() ((size_t)omp_get_thread_num())
#define THREAD_FIRST() ((size_t)omp_get_thread_num())
#define THREAD_COUNT() ((size_t)omp_get_num_threads())
#else
#define THREAD_ID() ((size_t)0)
#define THREAD_FIRST() ((size_t)0)
#define THREAD_COUNT() ((size_t)1)
#endif

/* Columns of one weight-gradient block: a group's copied rows (≤ 64·COLS
 * floats) stay in L2, and the thin GEMMs of 16-channel layers fit
 * OpenBLAS's small-matrix kernels (M·N·K ≤ 2¹⁸), which run them fastest. */
#define COLS 256
/* Output columns per work item of the forward and adjoint (256 and 1024
 * measured alike; small blocks balance the threads). */
#define OUT_COLS 256

/* Flattened grid offset of phase tap (jy, jx, je). */
static size_t tap_offset(const evae_conv3d *L, size_t jy, size_t jx, size_t je)
{
    const evae_conv_axis *ax = L->ax;
    return (jy * ax[1].p + jx) * ax[2].p + je;
}

static size_t kernel_taps(const evae_conv3d *L)
{
    const size_t *k = L->shape.kernel;
    return k[0] * k[1] * k[2];
}

static size_t max_size(size_t a, size_t b)
{
    return a > b ? a : b;
}

/* Taps per group (see the top of the file). */
static size_t group_size(const evae_conv3d *L)
{
    size_t thin = L->c_big < L->c_small ? L->c_big : L->c_small;
    return thin >= 64 ? 1 : 64 / thin;
}

/* Grid sizes, once the phase grid is known (conv3d.c calls it). */
void evae_conv_gemm_geometry(evae_conv3d *L)
{
    const evae_conv_axis *ax = L->ax;
    /* A margin of whole vectors keeps the grid's rows 64-byte aligned. */
    L->margin = (tap_offset(L, ax[0].kp - 1, ax[1].kp - 1, ax[2].kp - 1) + 15) / 16 * 16;
    L->grid_used = ((ax[0].m - 1) * ax[1].p + ax[1].m - 1) * ax[2].p + ax[2].m;
    L->grid_len = (L->margin + L->pvol + 15) / 16 * 16;
}

/* Floats of one thread's block of copied rows. */
size_t evae_conv_gemm_scratch(const evae_conv3d *L)
{
    return group_size(L) * max_size(L->c_big, L->c_small) * COLS;
}

/* The engine's tables: the weights' four (two group tables and the tap
 * kernel's two, O·C·kvol floats each), the gradient's, the tap list and
 * its groups (at most one per tap), the tap kernel's source offsets (two
 * per tap) and, with the tap kernel, its lane-wise gradient sums. */
eelsvae_status evae_conv_gemm_buffers(const evae_conv3d *L, evae_conv_buffers *b)
{
    size_t kvol = kernel_taps(L), table = 0;
    EVAE_TRY(evae_mul4(kvol, L->c_small, L->c_big, sizeof(float), &table, "conv3d tap weights"));
    EVAE_TRY(evae_mul(4, table, &b->wphase, "conv3d tap weights"));
    b->wtap_grad = table;
    EVAE_TRY(evae_mul3(2, kvol, sizeof(size_t), &b->tap_offsets, "conv3d tap offsets"));
    EVAE_TRY(evae_mul(kvol, sizeof(evae_conv_tap), &b->tap_list, "conv3d tap list"));
    EVAE_TRY(evae_mul(kvol, sizeof(evae_conv_group), &b->group_list, "conv3d tap groups"));
    b->grad_part = 0;
    if (L->tap_kernel)
        EVAE_TRY(evae_mul4(L->c_big, (L->c_small + 3) / 4, kvol, 64 * sizeof(float), &b->grad_part,
                           "conv3d gradient sums"));
    return EELSVAE_OK;
}

/* Allocate the tables evae_conv_gemm_buffers lists; sort the kernel taps by
 * phase (k ascending within a phase) and cut them into groups of at most g
 * taps of one phase. */
eelsvae_status evae_conv_gemm_alloc(evae_conv3d *L, const evae_conv_buffers *b)
{
    size_t kvol = kernel_taps(L), g = group_size(L);
    EVAE_TRY(evae_conv_alloc(L, b->wphase, false, (void **)&L->wphase, "conv3d tap weights"));
    EVAE_TRY(evae_conv_alloc(L, b->tap_offsets, false, (void **)&L->tap_offsets, "conv3d tap offsets"));
    EVAE_TRY(evae_conv_alloc(L, b->wtap_grad, false, (void **)&L->wtap_grad, "conv3d weight gradient"));
    EVAE_TRY(evae_conv_alloc(L, b->tap_list, false, (void **)&L->tap_list, "conv3d tap list"));
    EVAE_TRY(evae_conv_alloc(L, b->group_list, false, (void **)&L->group_list, "conv3d tap groups"));
    EVAE_TRY(evae_conv_alloc(L, b->grad_part, false, (void **)&L->grad_part, "conv3d gradient sums"));
    const size_t *kd = L->shape.kernel, *s = L->shape.stride;
    size_t sorted = 0;
    L->groups = 0;
    for (size_t r = 0; r < L->phases; r++)
        for (size_t k = 0; k < kvol; k++) {
            size_t ke = k % kd[2], kx = k / kd[2] % kd[1], ky = k / kd[2] / kd[1];
            if (evae_conv_phase_index(L, ky, kx, ke) != r) continue;
            evae_conv_group *last = L->groups ? &L->group_list[L->groups - 1] : NULL;
            if (!last || last->phase != r || last->count == g) {
                evae_conv_group fresh = {sorted, 0, r, !last || last->phase != r};
                L->group_list[L->groups++] = fresh;
                last = &L->group_list[L->groups - 1];
            }
            last->count++;
            evae_conv_tap t = {k, tap_offset(L, ky / s[0], kx / s[1], ke / s[2])};
            L->tap_list[sorted++] = t;
        }
    /* The tap kernel's source offsets: forward from the item's phase tensor,
     * adjoint from the item's grid (margin − ĵ ≥ 0). */
    for (size_t i = 0; i < kvol; i++) {
        size_t phase = 0;
        for (size_t q = 0; q < L->groups; q++)
            if (i >= L->group_list[q].first) phase = L->group_list[q].phase;
        L->tap_offsets[i] = phase * L->pvol + L->tap_list[i].offset;
        L->tap_offsets[kvol + i] = L->margin - L->tap_list[i].offset;
    }
    return EELSVAE_OK;
}

/* Group tables from w[o][c][k]: forward [O][g·C] and adjoint [C][g·O]
 * (tap t of the group at columns t·C and t·O), each from first·O·C on;
 * then the tap kernel's, in sorted tap order: forward [C][O] and adjoint
 * [O][C] per tap. */
static void tap_weights(evae_conv3d *L, const float *w)
{
    size_t C = L->c_big, O = L->c_small, kvol = kernel_taps(L);
    float *fwd = L->wphase, *adj = L->wphase + kvol * O * C;
    for (size_t q = 0; q < L->groups; q++) {
        const evae_conv_group *G = &L->group_list[q];
        size_t base = G->first * O * C, n = G->count;
        for (size_t t = 0; t < n; t++) {
            size_t k = L->tap_list[G->first + t].k;
            for (size_t o = 0; o < O; o++)
                for (size_t c = 0; c < C; c++) {
                    float v = w[(o * C + c) * kvol + k];
                    fwd[base + o * n * C + t * C + c] = v;
                    adj[base + c * n * O + t * O + o] = v;
                    fwd[2 * kvol * O * C + (G->first + t) * O * C + c * O + o] = v;
                    adj[2 * kvol * O * C + (G->first + t) * O * C + o * C + c] = v;
                }
        }
    }
}

static size_t block_items(const evae_conv3d *L, size_t n0)
{
    size_t left = L->batch - n0;
    return left < L->phase_items ? left : L->phase_items;
}

/* ---- the small side on the grid ------------------------------------------ */

/* GRID[i][o] = small[n0 + i][o] at margin + q̂, zero elsewhere. */
static void fill_grid(evae_conv3d *L, const float *small, size_t n0, size_t items)
{
    const evae_conv_axis *ax = L->ax;
    size_t planes = items * L->c_small;
#pragma omp parallel for num_threads(evae_threads()) schedule(static)
    for (size_t pl = 0; pl < planes; pl++) {
        float *g = L->grid + pl * L->grid_len;
        const float *s = small + (n0 * L->c_small + pl) * L->vol_small;
        memset(g, 0, L->grid_len * sizeof(float));
        for (size_t qy = 0; qy < ax[0].m; qy++)
            for (size_t qx = 0; qx < ax[1].m; qx++)
                memcpy(g + L->margin + tap_offset(L, qy, qx, 0), s + (qy * ax[1].m + qx) * ax[2].m,
                       ax[2].m * sizeof(float));
    }
}

/* small[n0 + i][o][q] = GRID + bias, or += GRID. */
static void crop_grid(const evae_conv3d *L, float *small, size_t n0, size_t items, const float *bias, bool accumulate)
{
    const evae_conv_axis *ax = L->ax;
    size_t rows = items * L->c_small * ax[0].m, me = ax[2].m;
#pragma omp parallel for num_threads(evae_threads()) schedule(static)
    for (size_t r = 0; r < rows; r++) {
        size_t qy = r % ax[0].m, pl = r / ax[0].m, o = pl % L->c_small;
        const float *g = L->grid + pl * L->grid_len + L->margin;
        float *s = small + ((n0 * L->c_small + pl) * ax[0].m + qy) * ax[1].m * me;
        float b = bias ? bias[o] : 0.0f;
        for (size_t qx = 0; qx < ax[1].m; qx++) {
            const float *src = g + tap_offset(L, qy, qx, 0);
            float *dst = s + qx * me;
            if (accumulate) {
#pragma omp simd
                for (size_t q = 0; q < me; q++) dst[q] += src[q];
            } else {
#pragma omp simd
                for (size_t q = 0; q < me; q++) dst[q] = src[q] + b;
            }
        }
    }
}

/* ---- the three GEMM passes over a block of items ------------------------- */

/* B rows of a group for output columns [col, col + cols): tap t's C phase
 * rows c·S + r shifted by ĵ_t, side by side (row stride COLS). A group of
 * one tap needs no copy: its rows are S·pvol apart in the phase tensor. */
static const float *group_phase_rows(const evae_conv3d *L, const evae_conv_group *G, const float *phase, size_t col,
                                     size_t cols, float *rows, int *ld)
{
    const evae_conv_tap *taps = L->tap_list + G->first;
    const float *base = phase + G->phase * L->pvol + col;
    if (G->count == 1) {
        *ld = (int)(L->phases * L->pvol);
        return base + taps[0].offset;
    }
    for (size_t t = 0; t < G->count; t++)
        for (size_t c = 0; c < L->c_big; c++)
            memcpy(rows + (t * L->c_big + c) * COLS, base + c * L->phases * L->pvol + taps[t].offset,
                   cols * sizeof(float));
    *ld = COLS;
    return rows;
}

static float *thread_rows(const evae_conv3d *L)
{
    return L->gather + THREAD_ID() * evae_conv_gemm_scratch(L);
}

/* GRID[i][:, margin + q̂] = Σ_k W_k · phase[i][c·S + r(k)][q̂ + ĵ(k)], q̂ < Q:
 * one GEMM per tap straight from the phase tensor (copying taps side by side
 * to fatten K measured slower). */
static void forward_gemms(evae_conv3d *L, size_t items)
{
    size_t blocks = (L->grid_used + OUT_COLS - 1) / OUT_COLS, work = items * blocks;
    size_t O = L->c_small, C = L->c_big;
    int ldb = (int)(L->phases * L->pvol);
#pragma omp parallel for num_threads(evae_threads()) schedule(dynamic)
    for (size_t item = 0; item < work; item++) {
        size_t i = item / blocks, col = item % blocks * OUT_COLS;
        int cols = (int)(L->grid_used - col < OUT_COLS ? L->grid_used - col : OUT_COLS);
        const float *phase = L->phase + i * L->c_phased * L->pvol + col;
        float *y = L->grid + i * O * L->grid_len + L->margin + col;
        for (size_t q = 0; q < L->groups; q++) {
            const evae_conv_group *G = &L->group_list[q];
            const float *a = L->wphase + G->first * O * C;
            for (size_t t = 0; t < G->count; t++) {
                const float *b = phase + G->phase * L->pvol + L->tap_list[G->first + t].offset;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)O, cols, (int)C, 1.0f, a + t * C,
                            (int)(G->count * C), b, ldb, q || t ? 1.0f : 0.0f, y, (int)L->grid_len);
            }
        }
    }
}

/* dphase[i][c·S + r][û] = Σ_{k in phase r} W_k^T · GRID[i][:, margin + û − ĵ(k)],
 * û < pvol. Every phase holds a tap (phases = min(s, k) per axis); its
 * first one overwrites. */
static void adjoint_gemms(evae_conv3d *L, size_t items)
{
    size_t blocks = (L->pvol + OUT_COLS - 1) / OUT_COLS, work = items * blocks;
    size_t O = L->c_small, C = L->c_big;
    const float *adj = L->wphase + kernel_taps(L) * O * C;
#pragma omp parallel for num_threads(evae_threads()) schedule(dynamic)
    for (size_t item = 0; item < work; item++) {
        size_t i = item / blocks, col = item % blocks * OUT_COLS;
        int cols = (int)(L->pvol - col < OUT_COLS ? L->pvol - col : OUT_COLS);
        const float *grid = L->grid + i * O * L->grid_len + L->margin + col;
        float *dx = L->dphase + i * L->c_phased * L->pvol + col;
        for (size_t q = 0; q < L->groups; q++) {
            const evae_conv_group *G = &L->group_list[q];
            const float *a = adj + G->first * O * C;
            for (size_t t = 0; t < G->count; t++) {
                const float *b = grid - L->tap_list[G->first + t].offset;
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)C, cols, (int)O, 1.0f, a + t * O,
                            (int)(G->count * O), b, (int)L->grid_len, G->opens_phase && !t ? 0.0f : 1.0f,
                            dx + G->phase * L->pvol, (int)(L->phases * L->pvol));
            }
        }
    }
}

/* The forward and adjoint through the vector kernel (below), on the
 * same fixed column blocks. (Skipping the junk lines within the column
 * range, 8–16 % of the points, measured no faster.) */
static void forward_taps(evae_conv3d *L, size_t items)
{
    size_t blocks = (L->grid_used + OUT_COLS - 1) / OUT_COLS, work = items * blocks;
    size_t O = L->c_small, C = L->c_big, kvol = kernel_taps(L);
    const float *wt = L->wphase + 2 * kvol * O * C;
#pragma omp parallel for num_threads(evae_threads()) schedule(dynamic)
    for (size_t item = 0; item < work; item++) {
        size_t i = item / blocks, col = item % blocks * OUT_COLS;
        size_t cols = L->grid_used - col < OUT_COLS ? L->grid_used - col : OUT_COLS;
        evae_conv_tap_sum(L->grid + i * O * L->grid_len + L->margin, L->grid_len, O, col, cols,
                          L->phase + i * L->c_phased * L->pvol, L->tap_offsets, kvol, L->phases * L->pvol, C, wt);
    }
}

static void adjoint_taps(evae_conv3d *L, size_t items)
{
    size_t blocks = (L->pvol + OUT_COLS - 1) / OUT_COLS, work = items * blocks;
    size_t O = L->c_small, C = L->c_big, kvol = kernel_taps(L);
    const float *wt = L->wphase + 3 * kvol * O * C;
#pragma omp parallel for num_threads(evae_threads()) schedule(dynamic)
    for (size_t item = 0; item < work; item++) {
        size_t i = item / blocks, col = item % blocks * OUT_COLS;
        size_t cols = L->pvol - col < OUT_COLS ? L->pvol - col : OUT_COLS;
        const float *grid = L->grid + i * O * L->grid_len;
        float *dx = L->dphase + i * L->c_phased * L->pvol;
        for (size_t q = 0; q < L->groups; q++) { /* each phase's taps are one run of groups */
            const evae_conv_group *G = &L->group_list[q];
            if (!G->opens_phase) continue;
            size_t last = q + 1;
            while (last < L->groups && !L->group_list[last].opens_phase) last++;
            size_t first = G->first, count = L->group_list[last - 1].first + L->group_list[last - 1].count - first;
            evae_conv_tap_sum(dx + G->phase * L->pvol, L->phases * L->pvol, C, col, cols, grid,
                              L->tap_offsets + kvol + first, count, L->grid_len, O, wt + first * O * C);
        }
    }
}

static void forward_pass(evae_conv3d *L, size_t items)
{
    if (L->tap_kernel) {
        forward_taps(L, items);
    } else {
        forward_gemms(L, items);
    }
}

static void adjoint_pass(evae_conv3d *L, size_t items)
{
    if (L->tap_kernel) {
        adjoint_taps(L, items);
    } else {
        adjoint_gemms(L, items);
    }
}

/* dW_G[o][(t, c)] += Σ_i Σ_q̂ GRID[i][o][margin + q̂] · phase rows of group G:
 * M = O, N = g·C, K = the columns, block by block. Each group belongs to one
 * thread and sums items and blocks in order. */
static void grad_group(evae_conv3d *L, size_t items, const evae_conv_group *G, float *rows)
{
    size_t O = L->c_small, C = L->c_big, n = G->count * C;
    float *dw = L->wtap_grad + G->first * O * C;
    for (size_t i = 0; i < items; i++) {
        const float *phase = L->phase + i * L->c_phased * L->pvol;
        const float *grid = L->grid + i * O * L->grid_len + L->margin;
        for (size_t col = 0; col < L->grid_used; col += COLS) {
            size_t cols = L->grid_used - col < COLS ? L->grid_used - col : COLS;
            int ld = 0;
            const float *b = group_phase_rows(L, G, phase, col, cols, rows, &ld);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)O, (int)n, (int)cols, 1.0f, grid + col,
                        (int)L->grid_len, b, ld, 1.0f, dw, (int)n);
        }
    }
}

/* The weight gradient through the tap kernel: each unit (channel c, block
 * of 4 rows o) keeps lane-wise sums for all taps in grad_part, and runs
 * through the items and column blocks in order; the lanes are summed at
 * the end (add_lane_sums). Offsets from channel c's first phase row reach
 * every phase (tap_offsets include r·pvol). Each thread takes every
 * nth unit and walks the column blocks in step with the others, so that
 * one block of the grid and of the phase tensor serves all its units from
 * cache (unit by unit, the whole tensors would stream from memory once per
 * unit). Each unit's sums run in the same order whatever the thread count. */
#define GRAD_BLOCK 512

static size_t grad_part_floats(const evae_conv3d *L)
{
    return L->c_big * ((L->c_small + 3) / 4) * kernel_taps(L) * 64;
}

static void grad_unit(evae_conv3d *L, size_t i, size_t q, size_t n, size_t u)
{
    size_t O = L->c_small, kvol = kernel_taps(L), blocks = (O + 3) / 4;
    size_t c = u / blocks, o0 = u % blocks * 4, rows = O - o0 < 4 ? O - o0 : 4;
    const float *g = L->grid + (i * O + o0) * L->grid_len + L->margin;
    const float *x = L->phase + (i * L->c_phased + c * L->phases) * L->pvol;
    evae_conv_tap_grad(L->grad_part + u * kvol * 64, g, L->grid_len, rows, x, L->tap_offsets, kvol, q, n);
}

static void grad_taps(evae_conv3d *L, size_t items)
{
    size_t units = L->c_big * ((L->c_small + 3) / 4);
#pragma omp parallel num_threads(evae_threads())
    {
        size_t first = THREAD_FIRST(), step = THREAD_COUNT();
        for (size_t i = 0; i < items; i++)
            for (size_t q = 0; q < L->grid_used; q += GRAD_BLOCK) {
                size_t n = L->grid_used - q < GRAD_BLOCK ? L->grid_used - q : GRAD_BLOCK;
                for (size_t u = first; u < units; u += step) grad_unit(L, i, q, n, u);
            }
    }
}

/* dw[o][c][k] += the lanes of grad_part, summed in order (in double). */
static void add_lane_sums(const evae_conv3d *L, float *dw)
{
    size_t O = L->c_small, C = L->c_big, kvol = kernel_taps(L), blocks = (O + 3) / 4;
    for (size_t c = 0; c < C; c++)
        for (size_t o = 0; o < O; o++)
            for (size_t t = 0; t < kvol; t++) {
                const float *lanes = L->grad_part + ((c * blocks + o / 4) * kvol + t) * 64 + (o % 4) * 16;
                double sum = 0.0;
                for (int l = 0; l < 16; l++) sum += lanes[l];
                dw[(o * C + c) * kvol + L->tap_list[t].k] += (float)sum;
            }
}

static void grad_gemms(evae_conv3d *L, size_t items)
{
#pragma omp parallel for num_threads(evae_threads()) schedule(dynamic)
    for (size_t q = 0; q < L->groups; q++) grad_group(L, items, &L->group_list[q], thread_rows(L));
}

/* ---- whole passes ------------------------------------------------------ */

void evae_conv_gemm_forward(evae_conv3d *L, float *small, const float *big, const float *w, const float *bias,
                            bool accumulate)
{
    tap_weights(L, w);
    for (size_t n0 = 0; n0 < L->batch; n0 += L->phase_items) {
        size_t items = block_items(L, n0);
        STEP(L, transform, evae_conv_space_to_depth(L, big, n0, items));
        STEP(L, mix, forward_pass(L, items));
        STEP(L, inverse, crop_grid(L, small, n0, items, bias, accumulate));
    }
}

void evae_conv_gemm_adjoint(evae_conv3d *L, float *big, const float *small, const float *w)
{
    tap_weights(L, w);
    for (size_t n0 = 0; n0 < L->batch; n0 += L->phase_items) {
        size_t items = block_items(L, n0);
        STEP(L, transform, fill_grid(L, small, n0, items));
        STEP(L, mix, adjoint_pass(L, items));
        STEP(L, inverse, evae_conv_depth_to_space_add(L, L->dphase, big, n0, items));
    }
}

/* dw[o][c][k] += dW from the groups' [O][g·C] tables. */
static void add_tap_gradient(const evae_conv3d *L, float *dw)
{
    size_t C = L->c_big, O = L->c_small, kvol = kernel_taps(L);
    for (size_t q = 0; q < L->groups; q++) {
        const evae_conv_group *G = &L->group_list[q];
        const float *m = L->wtap_grad + G->first * O * C;
        for (size_t t = 0; t < G->count; t++) {
            size_t k = L->tap_list[G->first + t].k;
            for (size_t o = 0; o < O; o++)
                for (size_t c = 0; c < C; c++) dw[(o * C + c) * kvol + k] += m[o * G->count * C + t * C + c];
        }
    }
}

/* The backward of either layer over the same blocks: the small side's grid
 * and the big side's phase tensor are built once per block for both
 * gradients. `small_is_dy`: a Conv3d (dy is the small side, dx the big
 * side's gradient); else a ConvTranspose3d (dy is the big side).
 * `input_kept`: the forward left x's phase tensor (Conv3d) or grid
 * (ConvTranspose3d) in place for the whole batch (one block): not rebuilt. */
void evae_conv_gemm_backward(evae_conv3d *L, float *dx, float *dw, const float *dy, const float *x, const float *w,
                             bool small_is_dy, bool input_kept)
{
    const float *small = small_is_dy ? dy : x, *big = small_is_dy ? x : dy;
    if (dx) tap_weights(L, w);
    if (dw && L->tap_kernel) memset(L->grad_part, 0, grad_part_floats(L) * sizeof(float));
    if (dw && !L->tap_kernel) memset(L->wtap_grad, 0, kernel_taps(L) * L->c_small * L->c_big * sizeof(float));
    for (size_t n0 = 0; n0 < L->batch; n0 += L->phase_items) {
        size_t items = block_items(L, n0);
        bool small_kept = input_kept && !small_is_dy, big_kept = input_kept && small_is_dy;
        if ((dw || small_is_dy) && !small_kept) STEP(L, transform, fill_grid(L, small, n0, items));
        if ((dw || !small_is_dy) && !big_kept) STEP(L, transform, evae_conv_space_to_depth(L, big, n0, items));
        if (dw && L->tap_kernel) STEP(L, weight, grad_taps(L, items));
        if (dw && !L->tap_kernel) STEP(L, weight, grad_gemms(L, items));
        if (dx && small_is_dy) { /* dx (big side) += adjoint(dy); overwrites the phase tensor */
            STEP(L, mix, adjoint_pass(L, items));
            STEP(L, inverse, evae_conv_depth_to_space_add(L, L->dphase, dx, n0, items));
        } else if (dx) { /* dx (small side) += forward(dy); overwrites the grid */
            STEP(L, mix, forward_pass(L, items));
            STEP(L, inverse, crop_grid(L, dx, n0, items, NULL, true));
        }
    }
    if (dw && L->tap_kernel) add_lane_sums(L, dw);
    if (dw && !L->tap_kernel) add_tap_gradient(L, dw);
}

/* ==== The vector kernel ====================================================
 *
 * The GEMM engine's own kernel for its three passes on the flattened phase
 * grid, for machines with AVX-512 (the weight gradient's is further down):
 *     out[r][q] = Σ_k Σ_s wt[k][s][r] · src[off[k] + s·src_stride + q]
 * Why not sgemm: with 8 or 16 channels each tap's GEMM has K = 8 or 16,
 * and sgemm re-reads and re-writes the whole output block for every tap
 * (45 taps on the model's 3×3×5 layers). Here a block of 16 output rows ×
 * 16 columns stays in 16 vector registers across all taps and channels:
 * one load and 16 fused multiply-adds per (tap, channel), close to the
 * core's peak.
 *
 * Determinism: each output is summed in one fixed order (taps, then
 * channels), whatever the thread that computes it. The sums use fused
 * multiply-adds, so their bits differ from the sgemm path's; the choice
 * between the two depends only on the CPU, never on the run.
 */
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define EVAE_HAVE_AVX512_KERNEL 1
#include <immintrin.h>
#endif

#ifdef EVAE_HAVE_AVX512_KERNEL

/* Repeat a statement for rows 0 .. RB − 1 (named accumulators a0, a1, …:
 * GCC spills an array of vectors to the stack at every iteration). */
#define REP1(M) M(0)
#define REP4(M) M(0) M(1) M(2) M(3)
#define REP8(M) REP4(M) M(4) M(5) M(6) M(7)
#define REP16(M) REP8(M) M(8) M(9) M(10) M(11) M(12) M(13) M(14) M(15)
#define ACC_ZERO(r) __m512 a##r = _mm512_setzero_ps();
#define ACC_FMA(r) a##r = _mm512_fmadd_ps(x, _mm512_set1_ps(ws[r]), a##r);
#define ACC_STORE(r) _mm512_mask_storeu_ps(out + (r0 + (size_t)(r)) * out_stride + col, m, a##r);

/* One block of RB output rows × 16 columns (fewer where the mask says). */
#define DEFINE_TAP_BLOCK(RB)                                                                                     \
    __attribute__((target("avx512f"))) static void tap_block_##RB(                                              \
        float *out, size_t out_stride, size_t col, __mmask16 m, const float *src, const size_t *off, size_t ntaps, \
        size_t src_stride, size_t sn, const float *wt, size_t rows, size_t r0)                                  \
    {                                                                                                            \
        REP##RB(ACC_ZERO)                                                                                        \
        for (size_t k = 0; k < ntaps; k++) {                                                                     \
            const float *b = src + off[k] + col, *w = wt + k * sn * rows + r0;                                   \
            for (size_t s = 0; s < sn; s++) {                                                                    \
                __m512 x = _mm512_maskz_loadu_ps(m, b + s * src_stride);                                         \
                const float *ws = w + s * rows;                                                                  \
                REP##RB(ACC_FMA)                                                                                 \
            }                                                                                                    \
        }                                                                                                        \
        REP##RB(ACC_STORE)                                                                                       \
    }

DEFINE_TAP_BLOCK(16)
DEFINE_TAP_BLOCK(4)
DEFINE_TAP_BLOCK(1)

/* Eight rows × two vectors of 16 columns: with eight rows, one vector
 * would leave too few independent sums to hide the multiply-add latency. */
#define ACC2_ZERO(r) __m512 a##r = _mm512_setzero_ps(), b##r = _mm512_setzero_ps();
#define ACC2_FMA(r)                                                                                              \
    {                                                                                                            \
        __m512 v = _mm512_set1_ps(ws[r]);                                                                        \
        a##r = _mm512_fmadd_ps(x, v, a##r);                                                                      \
        b##r = _mm512_fmadd_ps(y, v, b##r);                                                                      \
    }
#define ACC2_STORE(r)                                                                                            \
    _mm512_storeu_ps(out + (r0 + (size_t)(r)) * out_stride + col, a##r);                                         \
    _mm512_storeu_ps(out + (r0 + (size_t)(r)) * out_stride + col + 16, b##r);

__attribute__((target("avx512f"))) static void tap_block_8x2(float *out, size_t out_stride, size_t col,
                                                             const float *src, const size_t *off, size_t ntaps,
                                                             size_t src_stride, size_t sn, const float *wt, size_t rows,
                                                             size_t r0)
{
    REP8(ACC2_ZERO)
    for (size_t k = 0; k < ntaps; k++) {
        const float *b = src + off[k] + col, *w = wt + k * sn * rows + r0;
        for (size_t s = 0; s < sn; s++) {
            __m512 x = _mm512_loadu_ps(b + s * src_stride), y = _mm512_loadu_ps(b + s * src_stride + 16);
            const float *ws = w + s * rows;
            REP8(ACC2_FMA)
        }
    }
    REP8(ACC2_STORE)
}

DEFINE_TAP_BLOCK(8)

__attribute__((target("avx512f"))) static void tap_sum_avx512(float *out, size_t out_stride, size_t rows, size_t col0,
                                                              size_t cols, const float *src, const size_t *off,
                                                              size_t ntaps, size_t src_stride, size_t sn,
                                                              const float *wt)
{
    size_t col = col0, end = col0 + cols;
    for (; rows == 8 && end - col >= 32; col += 32)
        tap_block_8x2(out, out_stride, col, src, off, ntaps, src_stride, sn, wt, rows, 0);
    for (; col < end; col += 16) {
        size_t left = end - col, r0 = 0;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        for (; rows - r0 >= 16; r0 += 16)
            tap_block_16(out, out_stride, col, m, src, off, ntaps, src_stride, sn, wt, rows, r0);
        for (; rows - r0 >= 8; r0 += 8)
            tap_block_8(out, out_stride, col, m, src, off, ntaps, src_stride, sn, wt, rows, r0);
        for (; rows - r0 >= 4; r0 += 4)
            tap_block_4(out, out_stride, col, m, src, off, ntaps, src_stride, sn, wt, rows, r0);
        for (; r0 < rows; r0++) tap_block_1(out, out_stride, col, m, src, off, ntaps, src_stride, sn, wt, rows, r0);
    }
}

/* ---- the weight gradient ---- */

/* part[t][o][lane] += Σ_q g[o·g_stride + q] · x[xoff[t] + q] over the columns
 * [q0, q0 + qn), for OB rows and TB taps: OB + TB loads per OB·TB fused
 * multiply-adds, the sums kept lane by lane (summed across lanes once, by
 * the caller, in a fixed order). */
#define DEFINE_GRAD_BLOCK(OB, TB)                                                                                \
    __attribute__((target("avx512f"))) static void grad_block_##OB##_##TB(                                      \
        float *part, const float *g, size_t g_stride, const float *x, const size_t *xoff, size_t q0, size_t qn) \
    {                                                                                                            \
        __m512 acc[TB][OB];                                                                                      \
        for (int t = 0; t < TB; t++)                                                                             \
            for (int o = 0; o < OB; o++) acc[t][o] = _mm512_loadu_ps(part + ((size_t)t * OB + (size_t)o) * 16); \
        for (size_t q = q0; q < q0 + qn; q += 16) {                                                              \
            size_t left = q0 + qn - q;                                                                           \
            __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);                       \
            __m512 gv[OB], xv[TB];                                                                               \
            for (int o = 0; o < OB; o++) gv[o] = _mm512_maskz_loadu_ps(m, g + (size_t)o * g_stride + q);        \
            for (int t = 0; t < TB; t++) xv[t] = _mm512_maskz_loadu_ps(m, x + xoff[t] + q);                      \
            for (int t = 0; t < TB; t++)                                                                         \
                for (int o = 0; o < OB; o++) acc[t][o] = _mm512_fmadd_ps(gv[o], xv[t], acc[t][o]);              \
        }                                                                                                        \
        for (int t = 0; t < TB; t++)                                                                             \
            for (int o = 0; o < OB; o++) _mm512_storeu_ps(part + ((size_t)t * OB + (size_t)o) * 16, acc[t][o]); \
    }

/* The common case, 4 rows × 4 taps, with named accumulators (GCC spills an
 * array of vectors at every iteration). */
#define G4_ROWS(M, t) M(0, t) M(1, t) M(2, t) M(3, t)
#define G4_ALL(M) G4_ROWS(M, 0) G4_ROWS(M, 1) G4_ROWS(M, 2) G4_ROWS(M, 3)
#define G4_LOAD(o, t) __m512 a##o##t = _mm512_loadu_ps(part + (t * 4 + o) * 16);
#define G4_FMA(o, t) a##o##t = _mm512_fmadd_ps(g##o, x##t##v, a##o##t);
#define G4_STORE(o, t) _mm512_storeu_ps(part + (t * 4 + o) * 16, a##o##t);

__attribute__((target("avx512f"))) static void grad_block_4_4(float *part, const float *g, size_t g_stride,
                                                              const float *x, const size_t *xoff, size_t q0, size_t qn)
{
    G4_ALL(G4_LOAD)
    const float *x0 = x + xoff[0], *x1 = x + xoff[1], *x2 = x + xoff[2], *x3 = x + xoff[3];
    for (size_t q = q0; q < q0 + qn; q += 16) {
        size_t left = q0 + qn - q;
        __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1u);
        __m512 g0 = _mm512_maskz_loadu_ps(m, g + q), g1 = _mm512_maskz_loadu_ps(m, g + g_stride + q);
        __m512 g2 = _mm512_maskz_loadu_ps(m, g + 2 * g_stride + q), g3 = _mm512_maskz_loadu_ps(m, g + 3 * g_stride + q);
        __m512 x0v = _mm512_maskz_loadu_ps(m, x0 + q), x1v = _mm512_maskz_loadu_ps(m, x1 + q);
        __m512 x2v = _mm512_maskz_loadu_ps(m, x2 + q), x3v = _mm512_maskz_loadu_ps(m, x3 + q);
        G4_ALL(G4_FMA)
    }
    G4_ALL(G4_STORE)
}

DEFINE_GRAD_BLOCK(4, 1)
DEFINE_GRAD_BLOCK(1, 1)

/* part holds [ntaps][4][16]: the (tap, row) pairs' lane sums. */
__attribute__((target("avx512f"))) static void tap_grad_avx512(float *part, const float *g, size_t g_stride, size_t ob,
                                                               const float *x, const size_t *xoff, size_t ntaps,
                                                               size_t q0, size_t qn)
{
    size_t t = 0;
    if (ob == 4) {
        for (; ntaps - t >= 4; t += 4) grad_block_4_4(part + t * 64, g, g_stride, x, xoff + t, q0, qn);
        for (; t < ntaps; t++) grad_block_4_1(part + t * 64, g, g_stride, x, xoff + t, q0, qn);
        return;
    }
    for (size_t o = 0; o < ob; o++) /* a last block of fewer rows: one row at a time */
        for (size_t u = 0; u < ntaps; u++)
            grad_block_1_1(part + u * 64 + o * 16, g + o * g_stride, g_stride, x, xoff + u, q0, qn);
}

bool evae_conv_taps_available(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f");
}

void evae_conv_tap_sum(float *out, size_t out_stride, size_t rows, size_t col0, size_t cols, const float *src,
                       const size_t *off, size_t ntaps, size_t src_stride, size_t sn, const float *wt)
{
    tap_sum_avx512(out, out_stride, rows, col0, cols, src, off, ntaps, src_stride, sn, wt);
}

void evae_conv_tap_grad(float *part, const float *g, size_t g_stride, size_t ob, const float *x, const size_t *xoff,
                        size_t ntaps, size_t q0, size_t qn)
{
    tap_grad_avx512(part, g, g_stride, ob, x, xoff, ntaps, q0, qn);
}

#else

bool evae_conv_taps_available(void)
{
    return false;
}

void evae_conv_tap_sum(float *out, size_t out_stride, size_t rows, size_t col0, size_t cols, const float *src,
                       const size_t *off, size_t ntaps, size_t src_stride, size_t sn, const float *wt)
{
    (void)out, (void)out_stride, (void)rows, (void)col0, (void)cols, (void)src, (void)off, (void)ntaps;
    (void)src_stride, (void)sn, (void)wt; /* never called: evae_conv_taps_available() is false */
}

void evae_conv_tap_grad(float *part, const float *g, size_t g_stride, size_t ob, const float *x, const size_t *xoff,
                        size_t ntaps, size_t q0, size_t qn)
{
    (void)part, (void)g, (void)g_stride, (void)ob, (void)x, (void)xoff, (void)ntaps, (void)q0, (void)qn;
}

#endif
