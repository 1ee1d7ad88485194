/*
 * Non-convolution building blocks of the 3D-CVAE: dense, activations,
 * reparameterisation and losses. Private to libeelsvae; nothing is exported.
 *
 * Style after llm.c's train_gpt2.c: each layer is a pair
 *   x_forward(out, in, weights, dims)  /  x_backward(din, dweights, dout, saved…)
 * with explicit dimensions and caller-owned buffers (nothing here allocates).
 * Buffers are float32, row-major, last index fastest; the shape comments
 * name every buffer.
 *
 * Gradient conventions (the one rule the composer must follow):
 *   - layer backward functions ACCUMULATE (+=) into din / dw / db, so the
 *     caller zeroes parameter gradients once per optimiser step and
 *     activation gradients once per backward pass;
 *   - loss functions are where a gradient starts: they OVERWRITE (=) the
 *     gradient w.r.t. their input, scaled by the caller's grad_scale.
 *   For the latent that means: evae_kl_loss writes dmulv, then
 *   evae_reparam_backward adds the reconstruction path into it.
 *
 * Every output gradient buffer must not alias an input of the same call
 * unless the comment says so.
 */
#ifndef EELSVAE_NN_LAYERS_H
#define EELSVAE_NN_LAYERS_H

#include <stddef.h>

#include "../core/core.h"

/* ---- dense (PyTorch nn.Linear layout) ------------------------------------ */

/*
 * out[b][o] = bias[o] + Σ_i w[o][i] · in[b][i]           (cblas_sgemm)
 *   out  [batch][n_out]  written
 *   in   [batch][n_in]
 *   w    [n_out][n_in]   nn.Linear's weight layout: one row per output
 *   bias [n_out]         may be NULL (no bias)
 * Returns EELSVAE_ERR_INVALID_ARGUMENT for a NULL buffer or n_in or n_out = 0,
 * EELSVAE_ERR_OVERFLOW when a dimension exceeds BLAS's int; batch = 0 is a no-op.
 */
eelsvae_status evae_dense_forward(float *out, const float *in, const float *w, const float *bias, size_t batch,
                                  size_t n_in, size_t n_out);

/*
 * Accumulates (+=):
 *   din   [batch][n_in]  += dout · w      may be NULL (first layer: no input gradient)
 *   dw    [n_out][n_in]  += doutᵀ · in
 *   dbias [n_out]        += Σ_b dout[b]   summed in double; may be NULL (no bias)
 * from
 *   dout [batch][n_out], in [batch][n_in] (the forward input), w [n_out][n_in].
 * Same checks as the forward.
 */
eelsvae_status evae_dense_backward(float *din, float *dw, float *dbias, const float *dout, const float *in,
                                   const float *w, size_t batch, size_t n_in, size_t n_out);

/* ---- activations (element-wise over n values) ----------------------------- */

/* out[i] = max(in[i], 0); NaN stays NaN (as PyTorch's), so a diverging run
 * shows in the loss. out may equal in (in place). */
void evae_relu_forward(float *out, const float *in, size_t n);

/*
 * din[i] += dout[i] · [out[i] > 0], using the forward OUTPUT (so an in-place
 * forward loses nothing: out > 0 exactly where in > 0; the gradient at 0 is 0,
 * as PyTorch's). din must not alias dout.
 */
void evae_relu_backward(float *din, const float *dout, const float *out, size_t n);

/*
 * In-place variant for chains whose backward produces a fresh gradient
 * buffer (e.g. a conv backward): grad[i] = out[i] > 0 ? grad[i] : 0.
 */
void evae_relu_mask_grad(float *grad, const float *out, size_t n);

/* out[i] = 1 / (1 + exp(−in[i])), evaluated without overflow. out may equal in. */
void evae_sigmoid_forward(float *out, const float *in, size_t n);

/* din[i] += dout[i] · out[i] · (1 − out[i]), using the forward OUTPUT. */
void evae_sigmoid_backward(float *din, const float *dout, const float *out, size_t n);

/* ---- reparameterisation ------------------------------------------------- */

/* Here and in the KL, B is the batch size and L the latent size. */

/*
 * The encoder's last dense layer gives mulv[B][2L]: per sample, μ in the first
 * L values and log σ² in the next L (PyTorch's `mu, logvar = h.chunk(2, 1)`).
 *
 * Forward: z = μ + exp(½·logvar) · ε with ε ~ N(0, 1) drawn from rng in
 * row-major order (sample by sample, latent index fastest), so the draw
 * depends on nothing but the rng state. rng = NULL gives ε = 0, i.e. z = μ
 * (the deterministic reconstruction used for detection).
 *   z    [B][L]    written
 *   eps  [B][L]    written: the ε used, kept for the backward
 *   mulv [B][2L]
 */
void evae_reparam_forward(float *z, float *eps, const float *mulv, size_t B, size_t L, evae_rng *rng);

/* The same with a given ε [B][L] (tests, or a caller with its own noise). */
void evae_reparam_apply(float *z, const float *eps, const float *mulv, size_t B, size_t L);

/*
 * Accumulates (+=) into dmulv[B][2L]:
 *   dμ      += dz
 *   dlogvar += dz · ε · ½·exp(½·logvar)
 * from dz [B][L], eps [B][L] and mulv [B][2L] (the forward's).
 */
void evae_reparam_backward(float *dmulv, const float *dz, const float *eps, const float *mulv, size_t B,
                           size_t L);

/* ---- losses --------------------------------------------------------------- */

/*
 * Reconstruction likelihoods. All three take the decoder's raw output
 * (logits l) and targets t in [0, 1] (the tile scaled to [0, 1]); for all
 * three the reconstruction is σ(l) and the loss is minimal at σ(l) = t, so
 * the detection code applies a sigmoid whatever the kind.
 *
 *   BERNOULLI  binary cross-entropy with logits (PyTorch's BCEWithLogitsLoss):
 *                max(l, 0) − l·t + log1p(exp(−|l|))
 *              ∂/∂l = σ(l) − t.  Stable for any finite l (±50 and beyond).
 *   GAUSSIAN   squared error on the sigmoid output (unit variance Gaussian NLL
 *              without its constant):  ½ (σ(l) − t)²
 *              ∂/∂l = (σ(l) − t) · σ(l) · (1 − σ(l)).
 *              On σ(l), not on the raw output, so that every kind reconstructs
 *              through the same sigmoid and the data range [0, 1] is respected.
 *   POISSON    Poisson NLL whose rate is the sigmoid output, in units of the
 *              scaled data (PyTorch's PoissonNLLLoss(log_input=False,
 *              full=False) with input σ(l), the log t! term dropped):
 *                σ(l) − t · log σ(l),   log σ(l) = −softplus(−l) (no log 0)
 *              ∂/∂l = (σ(l) − t) · (1 − σ(l)).
 *              A sigmoid rate rather than exp(l): the rate stays in the data's
 *              [0, 1] and the gradient is bounded for any l.
 */
typedef enum evae_loss_kind {
    EVAE_LOSS_BERNOULLI = 0,
    EVAE_LOSS_GAUSSIAN = 1,
    EVAE_LOSS_POISSON = 2
} evae_loss_kind;

/*
 * Returns Σ over all n elements (the whole batch) of the per-element loss,
 * accumulated in double in a fixed chunking, so the bits do not depend on the
 * thread count. Writes (=) dlogits[i] = grad_scale · ∂loss/∂l[i] unless
 * dlogits is NULL (evaluation only). Pass grad_scale = 1/B to average the
 * gradient over the batch while the returned value stays the sum.
 *   dlogits [n]  written, may be NULL; may NOT alias logits or target
 *   logits  [n]
 *   target  [n]
 * An unknown kind returns NaN and writes nothing.
 */
double evae_recon_loss(evae_loss_kind kind, float *dlogits, const float *logits, const float *target, size_t n,
                       double grad_scale);

/*
 * evae_recon_loss over `pixels` spectra of `channels` elements each, where
 * only the pixels with keep[p] non-zero enter the loss: the others add
 * nothing to the sum and get a zero gradient. Summed per pixel in a fixed
 * chunking of the pixels (bits independent of the thread count, though not
 * those of evae_recon_loss, which chunks the elements).
 *   dlogits [pixels][channels]  written, may be NULL
 *   logits, target [pixels][channels]
 *   keep [pixels]
 */
double evae_recon_loss_masked(evae_loss_kind kind, float *dlogits, const float *logits, const float *target,
                              size_t pixels, size_t channels, const uint8_t *keep, double grad_scale);

/* "bernoulli", "gaussian", "poisson", or "unknown". */
const char *evae_loss_kind_name(evae_loss_kind kind);

/*
 * KL(q(z|x) ‖ N(0, I)) summed over the batch and the L latents:
 *   −½ Σ (1 + logvar − μ² − exp(logvar))
 * returned unweighted (multiply by β yourself). Writes (=) into dmulv[B][2L]
 *   dμ      = grad_scale · μ
 *   dlogvar = grad_scale · ½ (exp(logvar) − 1)
 * unless dmulv is NULL. Pass grad_scale = β/B for the paper's β-VAE loss
 * averaged over the batch.
 *   mulv [B][2L] as for the reparameterisation.
 */
double evae_kl_loss(float *dmulv, const float *mulv, size_t B, size_t L, double grad_scale);

#endif /* EELSVAE_NN_LAYERS_H */
