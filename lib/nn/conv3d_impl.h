/*
 * Private to lib/nn/conv3d*.c: the layer object and the engines' steps.
 *
 * Every layer is computed as ONE underlying strided convolution
 *     y_s[n,o,p] = Σ_c Σ_k w[o,c,k] · x_b[n,c, s⊙p + k − pad]
 * between a "big" side (x_b: C channels, dims n) and a "small" side
 * (y_s: O channels, dims m). A Conv3d's input is the big side; a
 * ConvTranspose3d's input is the small side and its output the big side.
 * Three passes of that convolution serve both kinds of layer:
 *   FORWARD  small ← conv(big)              (Conv3d.forward, ConvT.backward-data)
 *   ADJOINT  big  += conv_adjoint(small)     (Conv3d.backward-data, ConvT.forward)
 *   GRAD     dw   += Σ small ⊗ big           (both layers' backward-filter)
 *
 * Polyphase: along an axis with stride s, tap k = s·j + r reads x_b at
 * s·(p + j) + r − pad, so phase r of x_b, x_r[u] = x_b[s·u + r − pad], is
 * convolved at stride 1 with the kernel phase w_r[j] = w[s·j + r]. The C big
 * channels become C' = C·S "phased" channels (S = Π phases) with kernels of
 * kp = ⌈k/s⌉ taps, and no skipped output is ever computed. The big side is
 * rearranged once per chunk into a zero-padded PHASE TENSOR
 * [item][c'][uy][ux][ue] (space-to-depth), so that every later access is a
 * contiguous row; its gradient is put back by depth-to-space.
 *
 * FFT engine, overlap-save tiles: tile t along an axis covers phase-grid
 * points [t·v, t·v + f) and yields the v = f − kp + 1 small-side outputs
 * [t·v, t·v + v). Spectra are stored frequency-major, spec[f][channel][tile],
 * so that the channel mixing at frequency f is one complex GEMM over
 * (channels × tiles of a chunk).
 *
 * Direct engine (layers with a single channel on one side, where transforms
 * would cost more than they save): the same phase tensor, with the taps
 * applied by contiguous row multiply-adds.
 *
 * GEMM engine (layers whose FFTs would save few multiply-adds, e.g. the
 * stride-2 3×3×3 layers): the same phase tensor, each tap one sgemm on the
 * flattened grid (conv3d_gemm.c explains why no im2col is needed).
 */
#ifndef EVAE_NN_CONV3D_IMPL_H
#define EVAE_NN_CONV3D_IMPL_H

#include <fftw3.h>
#include <time.h>

#include "../core/core.h"
#include "conv3d.h"

/* Tiles per FFTW execute (one plan transforms this many tiles at once). */
#define EVAE_CONV_GROUP 8
/* Work-buffer budget of one chunk of tiles (spectra of both sides and the
 * phase tensors); bounds memory whatever the batch size. */
#define EVAE_CONV_CHUNK_BYTES ((size_t)128 << 20)
/* Upper bound for each per-layer kernel-spectrum table (two are kept). */
#define EVAE_CONV_KERNEL_SPECTRA_BYTES ((size_t)256 << 20)
/* Longest FFT tile along an axis (a kernel of more than half as many taps
 * per phase is not supported). */
#define EVAE_CONV_MAX_TILE 1024
/* Columns of one block of the kernel-spectrum GEMMs (fixed, so that the
 * split, hence the rounding, does not depend on the thread count). */
#define EVAE_CONV_DFT_BLOCK 2048

/* One axis of the underlying convolution. */
typedef struct evae_conv_axis {
    size_t n;      /* big-side length */
    size_t m;      /* small-side length: (n + 2·pad − k) / s + 1 */
    size_t k;      /* kernel taps */
    size_t s;      /* stride */
    size_t pad;    /* padding of the big side */
    size_t phases; /* phases holding at least one tap: min(s, k) */
    size_t kp;     /* taps per phase: ⌈k / s⌉ */
    size_t f;      /* FFT tile length (1 when kp = 1: no transform along this axis) */
    size_t v;      /* outputs per tile: f − kp + 1 */
    size_t tiles;  /* ⌈m / v⌉ */
    size_t p;      /* phase-grid points held: (tiles − 1)·v + f (FFT) or m + kp − 1 (direct) */
} evae_conv_axis;

/* Seconds spent per engine step, summed over calls while `profiling` is set
 * (for bench/conv3d_bench.c). */
typedef struct evae_conv_profile {
    double kernel;    /* kernel spectra (FFT) or phase kernels (direct) */
    double transform; /* phase tensors, tile gathers and forward FFTs */
    double mix;       /* per-frequency GEMMs (FFT) or the direct loops */
    double inverse;   /* inverse FFTs, crops, scatters, depth-to-space */
    double weight;    /* weight gradient from its spectra, bias gradient, bias fill */
} evae_conv_profile;

/* GEMM engine: a kernel tap (flattened index k into kY·kX·kE) and its
 * flattened offset on the phase grid; a group of taps of one phase. */
typedef struct evae_conv_tap {
    size_t k, offset;
} evae_conv_tap;

typedef struct evae_conv_group {
    size_t first, count; /* taps tap_list[first .. first + count) */
    size_t phase;
    bool opens_phase; /* the phase's first group */
} evae_conv_group;

typedef enum evae_conv_mix { EVAE_MIX_FORWARD, EVAE_MIX_ADJOINT, EVAE_MIX_GRAD } evae_conv_mix_kind;

/* Bytes of every buffer evae_conv3d_create allocates for a planned layer
 * (0: not allocated). The one statement of the sizing rules: create
 * allocates what this lists, and evae_conv3d_workspace_bytes sums it
 * without allocating. */
typedef struct evae_conv_buffers {
    size_t layer;                /* the evae_conv3d object itself */
    size_t phase, dphase, grid;  /* at phase_items items (direct engines: no dphase) */
    size_t gather;               /* every thread's buffer, evae_threads() of them */
    size_t spec_big, spec_small; /* FFT engine: chunk spectra */
    size_t kspec, gspec;         /* FFT engine: kernel and weight-gradient spectra */
    size_t dft_work;             /* FFT engine: separable-DFT temporaries */
    size_t dft[3];               /* FFT engine: EACH of dft_fwd[a], dft_conj[a], dft_inv[a] */
    size_t wphase;               /* direct loops' phase kernels, or the GEMM engine's four weight tables */
    size_t wgrad;                /* direct loops: weight-gradient sums */
    size_t wtap_grad, tap_offsets, tap_list, group_list, grad_part; /* GEMM engine */
} evae_conv_buffers;

struct evae_conv3d {
    evae_conv3d_shape shape;
    size_t batch;
    size_t out_dims[3];
    evae_conv_axis ax[3];
    bool direct; /* the phase grid without FFT tiles: direct loops, or GEMMs when `gemm` */
    bool gemm;   /* per-tap GEMMs on the phase grid (conv3d_gemm.c) */

    size_t c_big;          /* C: channels of the big side */
    size_t c_small;        /* O: channels of the small side */
    size_t phases;         /* S = Π phases */
    size_t c_phased;       /* C' = C·S */
    size_t vol_big;        /* Π n */
    size_t vol_small;      /* Π m */
    size_t pvol;           /* Π p: one channel of the phase tensor */
    size_t phase_items;    /* items the phase tensor holds at once */
    size_t taps;           /* Π kp */
    size_t pairs;          /* O·C': kernels (or weight-gradient spectra) per frequency */
    size_t tile_points;    /* Π f */
    size_t tile_stride;    /* tile_points rounded up to 16 floats (64-byte aligned tiles) */
    size_t freqs;          /* f_y·f_x·(f_e/2 + 1): r2c half spectrum */
    size_t tiles_per_item; /* Π tiles */
    size_t chunk;          /* tiles per chunk, a multiple of EVAE_CONV_GROUP */
    size_t ld_big;         /* frequency stride of spec_big (≥ C'·chunk, odd number of cache lines) */
    size_t ld_small;       /* frequency stride of spec_small (≥ O·chunk) */

    float *phase;  /* [phase_items][C'][p_y][p_x][p_e]: the big side in phases */
    float *dphase; /* the same for the big side's gradient (= phase in the direct engine) */

    /* FFT engine buffers (64-byte aligned, allocated once). */
    fftwf_complex *spec_big;   /* [freqs][ld_big]: [C'][chunk] used */
    fftwf_complex *spec_small; /* [freqs][ld_small]: [O][chunk] used */
    float *gather;             /* [threads][GROUP][tile_stride] */
    size_t gather_threads;
    fftwf_complex *kspec;    /* [freqs][O][C']: kernel spectra of the current call */
    fftwf_complex *gspec;    /* [freqs][C'][O]: weight-gradient spectra */
    fftwf_complex *dft_work; /* separable-DFT temporaries */
    size_t dft_work_count;
    /* DFT matrices per axis: dft_fwd[a] is [f_a' × kp] with e^{−2πi f j / f_a}
     * (f_a' = f_a/2 + 1 on E), dft_conj[a] its conjugate, dft_inv[a] is
     * [kp × f_a'] with e^{+2πi f j / f_a} (times the Hermitian weight on E). */
    fftwf_complex *dft_fwd[3];
    fftwf_complex *dft_conj[3];
    fftwf_complex *dft_inv[3];
    fftwf_plan r2c_big, r2c_small, c2r_big, c2r_small;

    /* Input spectra kept from a forward for the next backward (see
     * evae_conv3d_keep_input_spectra): one [freqs][ld] block per chunk of
     * the input's side (big for a Conv3d, small for a ConvTranspose3d). */
    bool keep;
    fftwf_complex *kept;
    size_t kept_chunks;       /* blocks allocated */
    const float *kept_input;  /* the x they were made from, NULL when none */
    size_t kept_batch;

    /* Direct engine buffers. */
    float *wphase;   /* [O][C'][taps]: phase kernels (the GEMM engine's weight tables) */
    double *wgrad;   /* [O][C'][taps]: weight-gradient sums */

    /* GEMM engine (see conv3d_gemm.c): the small side on the flattened
     * phase grid, GRID[item][o][margin + q̂]. */
    size_t margin;     /* ĵ_max (the last phase tap's flattened offset) rounded up to 16 */
    size_t grid_used;  /* Q: one past the last valid output's flattened index */
    size_t grid_len;   /* floats per GRID plane: margin + pvol, rounded up to 16 */
    float *grid;       /* [phase_items][O][grid_len] */
    evae_conv_tap *tap_list;     /* [kvol]: the kernel taps sorted by phase */
    evae_conv_group *group_list; /* [groups] */
    size_t groups;
    float *wtap_grad; /* per group [O][g·C]: weight-gradient sums */
    size_t *tap_offsets; /* [2][kvol]: the tap kernel's source offsets (forward, adjoint) */
    bool tap_kernel;     /* all three passes through the vector kernel instead of sgemm */
    float *grad_part;    /* tap kernel: [C][⌈O/4⌉][kvol][4][16] lane-wise weight-gradient sums */

    bool profiling;
    evae_conv_profile profile;

    size_t allocated;     /* bytes allocated through evae_conv_alloc so far */
    size_t created_bytes; /* of which by create (evae_conv3d_allocated_bytes) */
};

/* Engine and tile choice (conv3d_plan.c): sets direct and ax[].f, v, tiles,
 * p; `forced` and `forced_tiles` are the test hooks' settings (0, NULL: none). */
void evae_conv_choose_engine(evae_conv3d *L, size_t batch, int forced, const size_t *forced_tiles);

/* Phase tensors and helpers shared by both engines (conv3d_phase.c). */
void evae_conv_space_to_depth(evae_conv3d *L, const float *big, size_t n0, size_t items);
void evae_conv_depth_to_space_add(const evae_conv3d *L, const float *phase, float *big, size_t n0, size_t items);
void evae_conv_clear_phase(const evae_conv3d *L, float *phase, size_t items);
size_t evae_conv_phase_index(const evae_conv3d *L, size_t ky, size_t kx, size_t ke);
size_t evae_conv_tap_index(const evae_conv3d *L, size_t ky, size_t kx, size_t ke);
void evae_conv_fill_bias(const evae_conv3d *L, float *y, const float *b, size_t channels, size_t volume);
void evae_conv_bias_gradient(const evae_conv3d *L, float *db, const float *dy, size_t channels, size_t volume);
int evae_conv_blas_single(void);
void evae_conv_blas_restore(int saved);

/* FFT engine (conv3d_fft.c). Chunks are ranges of tiles [first, first + count). */
void evae_conv_kernel_spectra(evae_conv3d *L, const float *w, bool conjugate);
void evae_conv_transform_big(evae_conv3d *L, size_t first, size_t count, size_t n0);
void evae_conv_transform_small(evae_conv3d *L, const float *small, size_t first, size_t count);
void evae_conv_mix(evae_conv3d *L, evae_conv_mix_kind mix, size_t count, bool accumulate);
void evae_conv_inverse_small_crop(evae_conv3d *L, float *small, size_t first, size_t count, bool accumulate,
                                  const float *bias);
void evae_conv_inverse_big_scatter(evae_conv3d *L, size_t first, size_t count, size_t n0);
void evae_conv_weight_gradient(evae_conv3d *L, float *dw);

/* Direct engine (conv3d_direct.c): whole passes. */
void evae_conv_direct_forward(evae_conv3d *L, float *small, const float *big, const float *w, const float *bias,
                              bool accumulate);
void evae_conv_direct_adjoint(evae_conv3d *L, float *big, const float *small, const float *w);
void evae_conv_direct_grad(evae_conv3d *L, float *dw, const float *small, const float *big);

/* Every work buffer of a layer is allocated through this (conv3d.c), which
 * counts the bytes; none when bytes is 0 (*out = NULL). */
eelsvae_status evae_conv_alloc(evae_conv3d *L, size_t bytes, bool zero, void **out, const char *what);

/* GEMM engine (conv3d_gemm.c): whole passes on the phase grid. */
void evae_conv_gemm_geometry(evae_conv3d *L);
size_t evae_conv_gemm_scratch(const evae_conv3d *L);
/* Its buffers' bytes (wphase, wtap_grad, tap_offsets, tap_list,
 * group_list, grad_part), and their allocation from that list. */
eelsvae_status evae_conv_gemm_buffers(const evae_conv3d *L, evae_conv_buffers *b);
eelsvae_status evae_conv_gemm_alloc(evae_conv3d *L, const evae_conv_buffers *b);

/* The GEMM engine's vector kernel (end of conv3d_gemm.c), where the CPU has it:
 * out[r][q] = Σ_k Σ_s wt[k][s][r] · src[off[k] + s·src_stride + q] for
 * r < rows, q in [col0, col0 + cols), rows out_stride apart. */
bool evae_conv_taps_available(void);
void evae_conv_tap_sum(float *out, size_t out_stride, size_t rows, size_t col0, size_t cols, const float *src,
                       const size_t *off, size_t ntaps, size_t src_stride, size_t sn, const float *wt);
/* part[t][o][lane] += Σ_q g[o·g_stride + q] · x[xoff[t] + q], q in [q0, q0 + qn),
 * for o < ob ≤ 4 and t < ntaps (part: [ntaps][4][16]): lane-wise sums of
 * the weight gradient. */
void evae_conv_tap_grad(float *part, const float *g, size_t g_stride, size_t ob, const float *x, const size_t *xoff,
                        size_t ntaps, size_t q0, size_t qn);
void evae_conv_gemm_forward(evae_conv3d *L, float *small, const float *big, const float *w, const float *bias,
                            bool accumulate);
void evae_conv_gemm_adjoint(evae_conv3d *L, float *big, const float *small, const float *w);
void evae_conv_gemm_backward(evae_conv3d *L, float *dx, float *dw, const float *dy, const float *x, const float *w,
                             bool small_is_dy, bool input_kept);

/* Profiling of engine steps (bench only; off by default). */
static inline double evae_conv_seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Run one engine step, adding its time to the profile field when profiling
 * (transform: phase tensor and grid fills; mix: forward and adjoint products;
 * weight: weight-gradient products; inverse: crops and depth-to-space). */
#define STEP(L, field, call)                                                                                     \
    do {                                                                                                         \
        double step_start_ = (L)->profiling ? evae_conv_seconds_now() : 0.0;                                     \
        call;                                                                                                    \
        if ((L)->profiling) (L)->profile.field += evae_conv_seconds_now() - step_start_;                         \
    } while (0)

#endif /* EVAE_NN_CONV3D_IMPL_H */
