/*
 * Optimisation for the 3D-CVAE: Adam, gradient-norm clipping, a
 * plateau learning-rate scheduler and an early-stopping tracker. Private to
 * libeelsvae. Each mirrors a PyTorch component so a PyTorch run can be the
 * oracle (tests/data/layers_torch_oracle.py); every difference is named.
 *
 * As in llm.c, parameters, gradients and the two Adam moments each live in
 * one flat block of n floats, in the same order.
 */
#ifndef EELSVAE_NN_OPTIM_H
#define EELSVAE_NN_OPTIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

/* ---- Adam -------------------------------------------------------------- */

/*
 * torch.optim.Adam (amsgrad = False, maximize = False), step by step:
 *   t += 1
 *   g  = grad + weight_decay · p            (L2 as torch's Adam, not AdamW)
 *   m  = β1·m + (1 − β1)·g
 *   v  = β2·v + (1 − β2)·g²
 *   p -= lr/(1 − β1ᵗ) · m / (sqrt(v)/sqrt(1 − β2ᵗ) + eps)
 * i.e. p -= lr · m̂ / (sqrt(v̂) + eps), eps added after the square root.
 * Bias corrections are computed in double, the element updates in float in
 * PyTorch's operation order.
 */
typedef struct evae_adam {
    double lr;           /* learning rate; the plateau scheduler lowers it */
    double beta1;        /* 0.9 */
    double beta2;        /* 0.999 */
    double eps;          /* 1e-8 */
    double weight_decay; /* 0 */
    int64_t step;        /* steps taken; 0 before the first (save it with m, v) */
} evae_adam;

/* PyTorch's defaults with the given learning rate; step = 0. */
void evae_adam_init(evae_adam *opt, double lr);

/*
 * One step over n parameters:
 *   param [n]   updated in place
 *   grad  [n]   read only (weight decay does not modify it)
 *   m, v  [n]   the moments, zero before the first step, updated in place
 * Returns EELSVAE_ERR_INVALID_ARGUMENT (nothing changed) for a NULL block or
 * hyperparameters torch would reject: lr < 0, eps < 0, β outside [0, 1),
 * weight_decay < 0, or any of them NaN.
 */
eelsvae_status evae_adam_step(evae_adam *opt, float *param, const float *grad, float *m, float *v, size_t n);

/* ---- gradient clipping --------------------------------------------------- */

/*
 * torch.nn.utils.clip_grad_norm_(params, max_norm) with norm_type 2 on one
 * flat block: the total L2 norm (summed in double over fixed chunks: the bits
 * do not depend on the thread count), then, when
 * coef = max_norm / (norm + 1e-6) is below 1, grad *= coef. (That is torch's
 * test: it scales when norm > max_norm − 1e-6.) Returns the norm before
 * clipping. Unlike torch, a NaN or infinite norm leaves grad untouched, so
 * the caller can see it in the return value and stop with EELSVAE_ERR_NUMERIC.
 *   grad [n]  scaled in place
 */
double evae_clip_grad_norm(float *grad, size_t n, double max_norm);

/* ---- learning rate on plateau ----------------------------------------------- */

/*
 * torch.optim.lr_scheduler.ReduceLROnPlateau(mode='min', threshold_mode='rel')
 * for one learning rate. An epoch improves when metric < best · (1 − threshold);
 * otherwise it is a bad epoch. When bad epochs exceed patience (the
 * (patience+1)-th bad epoch in a row), lr becomes max(lr · factor, min_lr),
 * unless that changes it by no more than eps, and the count restarts (after
 * cooldown epochs in which bad epochs are not counted). NaN is a bad epoch.
 * Defaults are torch's except factor: 0.5 (the paper halves the rate) where
 * torch has 0.1.
 */
typedef struct evae_plateau {
    double factor;    /* 0.5 */
    int patience;     /* bad epochs tolerated; the next one reduces */
    double threshold; /* 1e-4, relative */
    int cooldown;     /* 0 */
    double min_lr;    /* 0 */
    double eps;       /* 1e-8 */
    /* state */
    double best;       /* +inf before the first step */
    int bad_epochs;    /* consecutive epochs without improvement */
    int cooldown_left; /* epochs of cooldown remaining */
    int64_t epoch;     /* steps taken */
} evae_plateau;

void evae_plateau_init(evae_plateau *s, int patience);

/* Feed one epoch's metric (validation loss). Lowers *lr and returns true when
 * this epoch reduces it; returns false otherwise. */
bool evae_plateau_step(evae_plateau *s, double metric, double *lr);

/* ---- early stopping ---------------------------------------------------------- */

/*
 * Keras's EarlyStopping(mode='min') logic: an epoch improves when
 * metric < best − min_delta; it then becomes the best (best_epoch = its
 * 0-based index among the steps) and the wait restarts. Training should stop
 * once `patience` epochs in a row have not improved. NaN never improves.
 */
typedef struct evae_early_stop {
    int patience;     /* non-improving epochs in a row that stop training */
    double min_delta; /* an improvement must beat best by more than this */
    /* state */
    double best;        /* +inf before the first step */
    int64_t best_epoch; /* index of the best epoch; −1 before any */
    int64_t epoch;      /* steps taken */
    int bad_epochs;     /* consecutive epochs without improvement */
    bool improved;      /* the last step set a new best (snapshot the weights) */
    bool stop;          /* stays true once set */
} evae_early_stop;

void evae_early_stop_init(evae_early_stop *e, int patience, double min_delta);

/* Feed one epoch's metric; returns e->stop. */
bool evae_early_stop_step(evae_early_stop *e, double metric);

#endif /* EELSVAE_NN_OPTIM_H */
