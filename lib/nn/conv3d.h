/*
 * Private: 3-D convolution and transposed convolution layers, computed by
 * one of three engines that a fixed cost model picks per layer shape (see
 * conv3d_impl.h): FFTs (FFTW single precision, overlap-save tiles, polyphase
 * strides, one complex GEMM per frequency), direct convolution as GEMMs on
 * the polyphase grid (sgemm, or an AVX-512 kernel where the CPU has one),
 * or direct row loops for layers with a single channel on one side. On the
 * FAST preset the GEMM engine wins every layer; the FFT engine wins the
 * paper preset's 3×3×5 layers. Nothing here is exported.
 *
 * Conventions are PyTorch's, so that a PyTorch dump can check them:
 * - tensors are [N][C][Y][X][E], float32, E fastest;
 * - Conv3d:  y[n,o,p] = b[o] + Σ_c Σ_k w[o,c,k] · x[n,c, s⊙p + k − pad]
 *   (cross-correlation, x read as zero outside its bounds), weights
 *   [O][C][kY][kX][kE], output size (in + 2·pad − k) / s + 1 per axis;
 * - ConvTranspose3d: the adjoint of that Conv3d with the same (k, s, pad),
 *   onto the size (in − 1)·s − 2·pad + k + output_padding, weights
 *   [C_in][C_out][kY][kX][kE] (PyTorch's layout), plus a bias per output channel.
 *
 * Usage, as FFTW's plans: create a layer once per shape (it holds the FFT
 * plans and every work buffer), call forward/backward as often as needed on
 * new arrays, free it. A layer is not shared between threads without the
 * caller's lock; distinct layers may run in distinct threads at once.
 *
 * Gradients ACCUMULATE (llm.c style): backward adds into dx, dw and db, so
 * the caller zeroes them once per step. Forward OVERWRITES y.
 *
 * Determinism: the engine and tile shape are chosen by a fixed cost model
 * (never by timing), FFTW plans with FFTW_ESTIMATE, every GEMM runs
 * single-threaded (OpenMP spreads them; OpenBLAS is set to one thread,
 * process-wide, for the duration of a call and restored after), and every
 * overlapping accumulation happens in a fixed order, so the same inputs give
 * the same bits on every run, whatever the OpenMP thread count. (Machines
 * with and without AVX-512 may pick different engines, hence other bits.)
 */
#ifndef EVAE_NN_CONV3D_H
#define EVAE_NN_CONV3D_H

#include <stdbool.h>
#include <stddef.h>

#include <eelsvae/eelsvae.h>

/* Shape of one layer. Axes are (Y, X, E) in that order. */
typedef struct evae_conv3d_shape {
    size_t in_channels;       /* channels of the layer's input x */
    size_t out_channels;      /* channels of the layer's output y */
    size_t in_dims[3];        /* x's spatial size (Y, X, E) */
    size_t kernel[3];         /* ≥ 1 */
    size_t stride[3];         /* ≥ 1 */
    size_t pad[3];            /* zeros added on both sides (conv) or cropped (transposed) */
    size_t output_padding[3]; /* transposed only, < stride; must be 0 for a conv */
    bool transposed;          /* false: Conv3d; true: ConvTranspose3d */
} evae_conv3d_shape;

typedef struct evae_conv3d evae_conv3d;

/* Output size of a layer of this shape, after checking the shape (zero
 * sizes, kernel larger than the padded input, output_padding ≥ stride,
 * sizes whose products overflow). */
eelsvae_status evae_conv3d_output_dims(const evae_conv3d_shape *shape, size_t out_dims[3]);

/* One layer type for both kinds: forward and backward below dispatch on
 * shape->transposed. */

/* Make a layer for `batch` items per call (≥ 1; evae_conv3d_set_batch may
 * change it later). Plans are made under a process-wide lock, since FFTW's
 * planner is not thread-safe. */
eelsvae_status evae_conv3d_create(evae_conv3d **layer, const evae_conv3d_shape *shape, int batch);

/* The bytes evae_conv3d_create(&layer, shape, batch) would allocate now,
 * computed without allocating: the layer object and every work buffer of
 * the engine the same cost model picks (the test hooks below included),
 * per-thread buffers for evae_threads() threads. Create allocates exactly
 * this (both read one list of buffer sizes); FFTW's plans (kilobytes, in
 * FFTW's own allocator) are not counted. Later growth is not included:
 * kept input spectra (evae_conv3d_keep_input_spectra), a set_batch above
 * the created batch, more threads. Fails as create would on a bad shape. */
eelsvae_status evae_conv3d_workspace_bytes(const evae_conv3d_shape *shape, int batch, size_t *bytes);

/* Tests only: the bytes create allocated for this layer (0 for NULL),
 * counted where each buffer is allocated. */
size_t evae_conv3d_allocated_bytes(const evae_conv3d *layer);

/* NULL is a no-op. */
void evae_conv3d_free(evae_conv3d *layer);

/* Change the number of items per call (for a last, partial batch). */
eelsvae_status evae_conv3d_set_batch(evae_conv3d *layer, int batch);

/* Sizes a caller allocates: weights O·C·kY·kX·kE (conv) or
 * C_in·C_out·kY·kX·kE (transposed); input and output floats of one call. */
size_t evae_conv3d_weight_count(const evae_conv3d *layer);
size_t evae_conv3d_in_count(const evae_conv3d *layer);
size_t evae_conv3d_out_count(const evae_conv3d *layer);
void evae_conv3d_out_dims(const evae_conv3d *layer, size_t out_dims[3]);

/* y[N][out_channels][out dims] = layer(x[N][in_channels][in dims]; w) + b.
 * b may be NULL (no bias). y must not overlap x. */
eelsvae_status evae_conv3d_forward(evae_conv3d *layer, float *y, const float *x, const float *w, const float *b);

/* Given dy = ∂L/∂y and the forward's x and w, ADD ∂L/∂x into dx, ∂L/∂w into
 * dw and ∂L/∂b into db. Any of dx, dw, db may be NULL to skip that gradient
 * (skipping dx saves a third of the work of a first layer). x is needed only
 * for dw, w only for dx. */
eelsvae_status evae_conv3d_backward(evae_conv3d *layer, float *dx, float *dw, float *db, const float *dy,
                                    const float *x, const float *w);

/* Keep the forward's spectra of the layer's input x until the next backward
 * (off by default). The backward then skips transforming x again: about a
 * fifth of a training step's transforms. It costs the whole batch's input
 * spectra in memory, and holds only while the next backward gets the same
 * x pointer, unchanged since the forward, and the same batch size; any
 * other backward recomputes them. A layer on the GEMM engine keeps its
 * rearranged input instead (no extra memory) when it holds the whole batch
 * at once; on the direct loops, nothing. */
eelsvae_status evae_conv3d_keep_input_spectra(evae_conv3d *layer, bool keep);

/* Tests only: cap the tiles per chunk of layers this thread creates from
 * now on (0 removes the cap), so that small shapes run through several
 * chunks. Rounded up to the FFT group size. Layers on the direct or GEMM
 * engines then take one item per block. */
void evae_conv3d_test_chunk_cap(size_t tiles);

/* Tests only: make layers this thread creates from now on use one engine:
 * 0 the cost model's choice, 1 FFT tiles, 2 direct loops, 3 per-tap sgemm
 * on the phase grid, 4 the same through its vector kernel (3 where the CPU
 * lacks AVX-512), on any shape. */
void evae_conv3d_test_engine(int engine);

/* Tests and benchmarks only: FFT tile lengths (Y, X, E) for the layers
 * this thread creates from now on (NULL: the cost model's choice). Lengths
 * are raised to 2·⌈k/s⌉ − 1 where needed, or to 1 where ⌈k/s⌉ = 1. */
void evae_conv3d_test_tiles(const size_t tile[3]);

/* FFTW's planner (plan creation and destruction) is not thread-safe: every
 * module that makes FFTW plans takes this process-wide lock around it. */
void evae_fftw_planner_lock(void);
void evae_fftw_planner_unlock(void);

#endif /* EVAE_NN_CONV3D_H */
