/*
 * Private: the public model handle (model.h) as model.c (life cycle,
 * training, detection) and model_file.c (the file format) share it.
 *
 * The parameters live in exactly one place, the block of `net`. The network
 * is an inference net of a modest batch between calls and a training net
 * (with its gradient block) only while eelsvae_model_train() runs; swapping
 * copies the block into the new net and frees the old one.
 */
#ifndef EVAE_NN_MODEL_PRIVATE_H
#define EVAE_NN_MODEL_PRIVATE_H

#include <stdbool.h>
#include <stdint.h>

#include <eelsvae/eelsvae.h>

#include "../core/core.h"
#include "cvae.h"
#include "optim.h"

/* The input transform: what eelsvae_model_prepare() repeats on any cube so
 * that the network sees data scaled exactly as in training. */
typedef struct evae_model_transform {
    bool recorded;                         /* set by the first training; prepare needs it */
    double energy_offset;                  /* energy of the first channel of the training crop, eV */
    double dispersion;                     /* eV per channel of the training data */
    eelsvae_preprocess_options preprocess; /* the chain, use_fixed_scaling as the caller gave it */
    double scale_lo, scale_hi;             /* the scaling actually used (mapped to 0 and 1) */
} evae_model_transform;

/* Everything a checkpoint needs to resume to the same bits as an
 * uninterrupted run. The epoch in progress is epochs_done + 1; when a run was
 * cancelled inside it, batches_done > 0 and the loss sums are its partial
 * sums, so that resuming continues with the next batch. */
typedef struct evae_train_state {
    bool started;          /* false: the next training starts fresh (new Adam, epoch 1) */
    evae_adam adam;        /* lr (lowered by the scheduler) and the step count */
    evae_plateau plateau;  /* scheduler state */
    evae_early_stop early; /* early-stopping state */
    float *m, *v;          /* Adam's moments [parameters] each, NULL until training starts */
    uint64_t seed;         /* the run's seed: split, shuffles, ε */
    uint64_t epochs_done;  /* finished epochs */
    uint64_t batches_done; /* batches finished in the epoch in progress */
    uint64_t batch;        /* the run's batch size, tile counts and stride: a resume */
    uint64_t tiles_train;  /* inside an epoch checks it sees the same batches */
    uint64_t tiles_val;
    double sum_loss, sum_rec, sum_kl; /* Σ over the epoch's tiles so far (batch mean × batch size) */
} evae_train_state;

struct eelsvae_model {
    eelsvae_model_options arch; /* struct_size = sizeof */
    evae_cvae_layout layout;
    evae_cvae *net;    /* never NULL in a model handed out */
    bool net_training; /* net has gradient buffers */
    evae_model_transform transform;
    evae_train_state state;
};

/* Most channels of the data summed into one model channel (energy_bin). */
#define EVAE_MAX_ENERGY_BIN 4096

/* An architecture a model can have: the network's layout (evae_cvae_layout_of,
 * which also checks energy_start) and the input's binning. */
eelsvae_status evae_model_check_arch(const eelsvae_model_options *arch, evae_cvae_layout *layout);

/* A model shell with a fresh inference net of batch 1 for `arch` (already
 * validated into `layout`); parameters zero, no transform, no state. */
eelsvae_status evae_model_alloc(const eelsvae_model_options *arch, const evae_cvae_layout *layout,
                                eelsvae_model **out);

/* Allocate the (zeroed) Adam moments if the model has none yet. */
eelsvae_status evae_model_alloc_moments(eelsvae_model *model);

/* Replace the net by a new one for up to `max_batch` items (with gradient
 * buffers when `training`), carrying the parameters over. On failure the
 * old net stays. */
eelsvae_status evae_model_swap_net(eelsvae_model *model, bool training, size_t max_batch);

/* The network's E = arch->energy_channels channels of `raw` as a new cube
 * (calibration kept, energy axis moved): energy_channels · energy_bin
 * channels of the cube, with grid_start NaN from the first channel at or
 * above arch->energy_start; otherwise on the grid grid_start + k·scale,
 * copied when the cube's channels lie on it (within a thousandth of a
 * channel) and linearly interpolated between its two nearest channels when
 * they do not; then summed in bins of energy_bin (eelsvae_cube_bin_energy).
 * *first_energy (may be NULL) gets the energy of the first channel taken,
 * before binning: the grid to record. RANGE, naming `what`, when the cube
 * does not hold them or its energy axis does not increase. */
eelsvae_status evae_model_crop(const eelsvae_model_options *arch, const eelsvae_cube *raw, double grid_start,
                               const char *what, eelsvae_cube **out, double *first_energy);

/* The recorded chain with the recorded (fixed) scaling, in place. */
eelsvae_status evae_model_apply_transform(const evae_model_transform *t, eelsvae_cube *cube);

/* |a − b| ≤ 1e-6·|b|: the tolerance within which two dispersions agree. */
bool evae_model_same_dispersion(double a, double b);

/* Check a preprocessing chain the way eelsvae_cube_preprocess() will,
 * before any cube is touched; messages name the field. */
eelsvae_status evae_model_check_preprocess(const eelsvae_preprocess_options *o);

#endif /* EVAE_NN_MODEL_PRIVATE_H */
