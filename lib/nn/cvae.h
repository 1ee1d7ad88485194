/*
 * Private: the 3D-CVAE network itself — shapes, one parameter block, one
 * gradient block, activations for a batch, forward and backward — composed
 * from conv3d.h (convolutions) and layers.h (dense, activations, losses).
 * The public model (model.c: training loop, preprocessing record, files)
 * is built on this; nothing here is exported.
 *
 * Architecture (eelsvae_model_options, see model.h), for one item:
 *   x      [1][T][T][E]                     input tile, values in [0, 1]
 *   enc i  conv(k_i, s_i, p_i) + ReLU        i = 0 … n−1, channels c_i
 *   flat   c_{n−1} · Y · X · Ee              the last encoder stage, flattened
 *   h      Dense(flat → hidden) + ReLU
 *   mulv   Dense(hidden → 2L)                μ = mulv[0 … L−1], log σ² = mulv[L … 2L−1]
 *   z      μ + exp(½ log σ²) · ε            ε ~ N(0, I) (ε = 0 when evaluating: z = μ)
 *   d1     Dense(L → hidden) + ReLU
 *   d2     Dense(hidden → flat) + ReLU       reshaped to [c_{n−1}][Y][X][Ee]
 *   dec j  convT(k, s, p, op) + ReLU         mirror of enc n−1−j, output c_{n−2−j} channels
 *                                            (the last one outputs 1 channel, no ReLU) → logits
 *   recon  σ(logits)
 * The output padding op of each transposed conv is the one that makes its
 * output exactly the size of the matching encoder stage's input; an
 * architecture where that needs op ∉ [0, stride) is invalid.
 *
 * Loss of a batch of B items, the quantity the gradients are of:
 *   loss = (Σ_items Σ_elements rec(logit, x) + β · Σ_items KL_item) / B
 * with rec the options' loss kind (layers.h) and KL_item = −½ Σ_l (1 + lv − μ² − e^lv).
 *
 * Parameters live in ONE float block in this order, which is PyTorch's
 * state_dict order of tests/reference/cvae_reference.py's module, with
 * these names:
 *   enc.<2i>.weight [c_i][c_{i−1}][k]    enc.<2i>.bias [c_i]          (c_{−1} = 1)
 *   fc_enc.weight [hidden][flat]         fc_enc.bias [hidden]
 *   fc_mulv.weight [2L][hidden]          fc_mulv.bias [2L]
 *   fc_dec.weight [hidden][L]            fc_dec.bias [hidden]
 *   fc_unflat.weight [flat][hidden]      fc_unflat.bias [flat]
 *   dec.<2j>.weight [c_in][c_out][k]     dec.<2j>.bias [c_out]        (ConvTranspose3d layout)
 * (enc and dec are nn.Sequential with a ReLU between layers, hence the even
 * indices.) The gradient block has the same layout.
 */
#ifndef EVAE_NN_CVAE_H
#define EVAE_NN_CVAE_H

#include <stdbool.h>
#include <stddef.h>

#include <eelsvae/eelsvae.h>

#include "../core/core.h"

typedef struct evae_cvae evae_cvae;

/* One named tensor of the parameter block. */
typedef struct evae_tensor_info {
    char name[32];    /* PyTorch state_dict key, e.g. "enc.2.weight" */
    size_t offset;    /* first float in the parameter (and gradient) block */
    size_t count;     /* floats */
    size_t ndim;      /* 1, 2 or 5 */
    size_t shape[5];
} evae_tensor_info;

/* The derived shape of a network, computed (and validated) without
 * allocating: used by estimate_memory and by create. */
typedef struct evae_cvae_layout {
    size_t n_conv;                                  /* encoder convs */
    size_t stage_dims[EELSVAE_MAX_CONV_LAYERS + 1][3]; /* stage 0 = input (T,T,E), stage i+1 = enc i output */
    size_t stage_channels[EELSVAE_MAX_CONV_LAYERS + 1]; /* stage 0 = 1 */
    size_t output_padding[EELSVAE_MAX_CONV_LAYERS][3];  /* of the convT mirroring enc i */
    size_t flat;                                    /* floats of the last encoder stage */
    size_t parameters;                              /* floats in the parameter block */
    size_t tensors;                                 /* named tensors */
} evae_cvae_layout;

/* Check an architecture and derive its layout. Errors name the field or
 * layer: INVALID_ARGUMENT (zero sizes, too many layers, unknown loss kind,
 * β < 0 or not finite), DIMENSION (a stage shrinks to nothing, an output
 * padding out of range), OVERFLOW. */
eelsvae_status evae_cvae_layout_of(const eelsvae_model_options *arch, evae_cvae_layout *layout);

/* Bytes of activations (+ their gradients when `training`) and work buffers
 * for `batch` items, from the layout alone. */
eelsvae_status evae_cvae_memory(const eelsvae_model_options *arch, size_t batch, bool training,
                                size_t *activation_bytes, size_t *workspace_bytes);

/* Make a network for up to `max_batch` items. With `training`, the gradient
 * block and the activation gradients are allocated too. Parameters are
 * zero until evae_cvae_init_params or a copy into evae_cvae_params. */
eelsvae_status evae_cvae_create(const eelsvae_model_options *arch, size_t max_batch, bool training, evae_cvae **out);
void evae_cvae_free(evae_cvae *net);

const eelsvae_model_options *evae_cvae_arch(const evae_cvae *net);
const evae_cvae_layout *evae_cvae_get_layout(const evae_cvae *net);
size_t evae_cvae_max_batch(const evae_cvae *net);

/* The parameter block (and gradient block, NULL unless training). */
float *evae_cvae_params(evae_cvae *net);
float *evae_cvae_grads(evae_cvae *net);
size_t evae_cvae_param_count(const evae_cvae *net);
/* Named tensors, i < layout.tensors, in block order. */
const evae_tensor_info *evae_cvae_tensor(const evae_cvae *net, size_t i);

/* PyTorch's default initialisation: for every Conv3d, ConvTranspose3d and
 * Linear, weights ~ U(−b, b) with b = 1/sqrt(fan_in) (kaiming_uniform with
 * a = √5) and bias ~ U(−1/sqrt(fan_in), 1/sqrt(fan_in)); fan_in as PyTorch
 * computes it (for ConvTranspose3d, weight.size(1)·prod(k)). Deterministic
 * per seed (one evae_rng stream per tensor). */
void evae_cvae_init_params(evae_cvae *net, uint64_t seed);

/* Loss terms of one batch, as defined above (already divided by B). */
typedef struct evae_cvae_losses {
    double loss;           /* reconstruction + β · kl */
    double reconstruction;
    double kl;
} evae_cvae_losses;

/*
 * One training step's forward and backward on `batch` ≤ max_batch items:
 *   x   [batch][T][T][E]   input tiles in [0, 1] (also the target)
 *   eps [batch][L]         the ε of the reparameterisation, or NULL to draw
 *                          it from `rng` (then written to the net's own buffer)
 * Zeroes the gradient block, then fills it with ∂loss/∂params. Writes the
 * loss terms. Requires a training net. Returns NUMERIC when the loss is not finite.
 */
eelsvae_status evae_cvae_forward_backward(evae_cvae *net, const float *x, size_t batch, const float *eps,
                                          evae_rng *rng, evae_cvae_losses *losses);

/* The same loss without gradients (validation): ε as above; eps = NULL and
 * rng = NULL means ε = 0 (z = μ). */
eelsvae_status evae_cvae_evaluate(evae_cvae *net, const float *x, size_t batch, const float *eps, evae_rng *rng,
                                  evae_cvae_losses *losses);

/* The same two calls with only some pixels in the reconstruction term:
 *   keep [batch][T][T]   non-zero: the pixel's E channels enter the loss;
 *                        zero: they add nothing to it nor to its gradient
 *                        (the KL term is untouched); NULL: every pixel, as
 *                        the unmasked calls (bit for bit). */
eelsvae_status evae_cvae_forward_backward_masked(evae_cvae *net, const float *x, const uint8_t *keep, size_t batch,
                                                 const float *eps, evae_rng *rng, evae_cvae_losses *losses);
eelsvae_status evae_cvae_evaluate_masked(evae_cvae *net, const float *x, const uint8_t *keep, size_t batch,
                                         const float *eps, evae_rng *rng, evae_cvae_losses *losses);

/* Encoder only: mulv [batch][2L] (μ then log σ² per item). */
eelsvae_status evae_cvae_encode(evae_cvae *net, const float *x, size_t batch, float *mulv);

/* Decoder only: z [batch][L] → recon [batch][T][T][E] = σ(logits). */
eelsvae_status evae_cvae_decode(evae_cvae *net, const float *z, size_t batch, float *recon);

/* Whole pass with z = μ: recon [batch][T][T][E] = σ(logits). */
eelsvae_status evae_cvae_reconstruct(evae_cvae *net, const float *x, size_t batch, float *recon);

/* The logits of the last forward pass, [batch][T][T][E] (for tests). */
const float *evae_cvae_logits(const evae_cvae *net);

#endif /* EVAE_NN_CVAE_H */
