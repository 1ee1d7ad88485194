/**
 * @file model.h
 * @brief The 3-D convolutional variational autoencoder: architecture,
 *        training, detection, files.
 *
 * Tensor layout inside the network: [N][C][Y][X][E], float32, E fastest —
 * a tile of T × T pixels and E energy channels is one item with one channel.
 * A tile stored as [T][T][E] (cube layout, see cube.h) is exactly that.
 *
 * The model owns the preprocessing of its input: eelsvae_model_train() crops
 * the energy range, applies the preprocessing chain and records the scaling
 * it used; eelsvae_model_prepare() applies the identical transform to any
 * later cube, so that detection sees data scaled exactly as in training.
 *
 * A model handle is not shared between threads without the caller's lock
 * (even the const calls use its work buffers); distinct models may be used
 * in distinct threads at once.
 */
#ifndef EELSVAE_MODEL_H
#define EELSVAE_MODEL_H

#include <eelsvae/cube.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Reconstruction term of the loss. @since 0.1.0 */
typedef enum eelsvae_loss_kind {
    EELSVAE_LOSS_BERNOULLI = 0, /**< Binary cross-entropy with logits, summed (the paper's). */
    EELSVAE_LOSS_GAUSSIAN = 1,  /**< ½ Σ (σ(logit) − x)², a Gaussian NLL up to a constant. */
    EELSVAE_LOSS_POISSON = 2    /**< Poisson NLL with rate σ(logit), Σ σ(l) − x·log σ(l). */
} eelsvae_loss_kind;

/** Most convolution layers an encoder may have. @since 0.1.0 */
#define EELSVAE_MAX_CONV_LAYERS 6

/**
 * @brief One encoder convolution (ReLU after it); the decoder mirrors it
 *        with a transposed convolution of the same kernel, stride and padding.
 * @since 0.1.0
 */
typedef struct eelsvae_conv_spec {
    size_t channels;   /**< Output channels of this encoder layer. */
    size_t kernel[3];  /**< Kernel size (y, x, E). */
    size_t stride[3];  /**< Stride (y, x, E). */
    size_t padding[3]; /**< Zero padding on both sides (y, x, E). */
} eelsvae_conv_spec;

/**
 * @brief The architecture, as data. Fill with eelsvae_model_options_init().
 *
 * Encoder: the conv layers (each followed by ReLU), flatten, Dense(→hidden)
 * ReLU, Dense(→2·latent) = (μ, log σ²). Decoder: Dense(latent→hidden) ReLU,
 * Dense(→flatten size) ReLU, the transposed convs in reverse order (ReLU
 * after each but the last), logits; σ(logits) is the reconstruction. Output
 * padding of each transposed conv is derived so that every decoder stage
 * has exactly the size of the matching encoder stage.
 * @since 0.1.0
 */
typedef struct eelsvae_model_options {
    size_t struct_size;        /**< The caller's sizeof(eelsvae_model_options), set by init. */
    size_t tile;               /**< T: tiles are T × T pixels (paper 24). */
    size_t energy_channels;    /**< E: channels the network takes, after binning (paper 1312). */
    double energy_start;       /**< Energy of the first channel taken, eV: the model uses the E channels
                                    from the first one at or above this (paper 420). */
    size_t conv_layers;        /**< Number of encoder convolutions, 1 … ::EELSVAE_MAX_CONV_LAYERS (paper 4). */
    eelsvae_conv_spec conv[EELSVAE_MAX_CONV_LAYERS]; /**< The encoder convolutions, input side first. */
    size_t hidden;             /**< Width of the dense hidden layers (paper 512). */
    size_t latent;             /**< L, the latent dimension (paper 40). */
    double beta;               /**< Weight of the KL term (paper 1.2). */
    eelsvae_loss_kind loss;    /**< Reconstruction term (paper ::EELSVAE_LOSS_BERNOULLI). */
    size_t energy_bin;         /**< Adjacent channels of the data summed into one channel of the model,
                                    1 … 4096 (presets 1): the model reads energy_channels · energy_bin channels of
                                    the cube from energy_start. eelsvae_model_options_fit() raises it when
                                    a range holds more channels than the network takes. */
} eelsvae_model_options;

/**
 * @brief Fill model options with a preset.
 *
 * ::EELSVAE_PRESET_PAPER is the paper's network: T = 24, E = 1312 from
 * 420 eV, convolutions 1→32 (k 1×1×7, s 1×1×2, p 0,0,3), 32→64 (k 3×3×5,
 * s 1×1×2, p 1,1,2), 64→128 and 128→256 (k 3, s 2, p 1), hidden 512, L = 40,
 * β = 1.2, Bernoulli loss. ::EELSVAE_PRESET_FAST keeps the layer pattern
 * with fewer channels and a cropped energy range around the Fe L2,3 edge
 * so that it trains on two cores in minutes.
 *
 * Writes only the caller's @p struct_size bytes; call it through
 * eelsvae_model_options_init(), which passes the caller's own sizeof (see
 * @ref page_abi).
 * @param opt Options to fill: the first min(@p struct_size,
 *            sizeof(eelsvae_model_options)) bytes get the preset, any bytes
 *            beyond the library's struct up to @p struct_size are zeroed, and
 *            struct_size is set to @p struct_size.
 * @param preset Which preset.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, an
 *         unknown preset, a @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_options_init_sized(eelsvae_model_options *opt, eelsvae_preset preset,
                                                            size_t struct_size);

/**
 * @brief Fill model options with a preset (the caller's sizeof).
 *
 * A macro over eelsvae_model_options_init_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param opt Options to fill (an ::eelsvae_model_options pointer, not NULL).
 * @param preset Which preset.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_model_options_init(opt, preset) eelsvae_model_options_init_sized((opt), (preset), sizeof *(opt))

/**
 * @brief Fit an architecture's input to a spectrum image: its energy range
 *        (and binning) and its tile.
 *
 * What a preset fixes for one data set — the Fe L window of the fast
 * preset, the paper's 24-pixel tile — is adapted here to any scan:
 * - **Energy.** The channels of @p cube inside [@p lo_ev, @p hi_ev], clipped
 *   to its axis (both NaN: the whole axis). The @p opt->energy_channels
 *   given is the budget, the most channels the network should take: a
 *   range that holds more is binned by the smallest whole factor that
 *   brings it within the budget (energy_bin). The channel count is then
 *   made a multiple of the product of the layers' energy strides — rounded
 *   up where the axis has room (the range grows at its top end, or at its
 *   bottom end where the axis ends), else down. energy_start becomes the
 *   energy of the first channel taken.
 * - **Tile.** The largest tile up to @p opt->tile that fits both spatial
 *   dimensions of @p cube and that the layers' spatial strides divide;
 *   the smallest possible is that product of strides (4 for the presets).
 *
 * The presets' values are the natural budget: with ::EELSVAE_PRESET_FAST,
 * a 1024-channel axis is binned by 7 into 144 channels, a 6-pixel-wide
 * line scan gets 4 × 4 tiles.
 * @param[in,out] opt Architecture to adapt (filled by eelsvae_model_options_init()).
 * @param cube The spectrum image the model will be trained on (its shape
 *             and calibrated energy axis are used).
 * @param lo_ev Lower end of the energy range, eV (NaN with @p hi_ev NaN: the whole axis).
 * @param hi_ev Upper end, > @p lo_ev.
 * On failure @p opt is left as it was.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL argument, an
 *         invalid architecture, one NaN end, a range that needs binning
 *         while the caller's struct_size ends before energy_bin),
 *         ::EELSVAE_ERR_RANGE (the range
 *         misses the axis, or the axis holds fewer channels than the energy
 *         strides need, or it is uncalibrated), ::EELSVAE_ERR_DIMENSION (the
 *         scan is smaller than the smallest tile; the message names the
 *         smallest scan accepted).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_options_fit(eelsvae_model_options *opt, const eelsvae_cube *cube,
                                                     double lo_ev, double hi_ev);

/**
 * @brief Memory a model needs, computed before anything is allocated.
 * @since 0.1.0
 */
typedef struct eelsvae_memory_estimate {
    size_t struct_size;      /**< sizeof(eelsvae_memory_estimate); set by the caller. */
    size_t parameters;       /**< Number of trainable parameters. */
    size_t parameter_bytes;  /**< Weights and biases. */
    size_t gradient_bytes;   /**< Their gradients (training only). */
    size_t optimizer_bytes;  /**< Adam's two moments (training only). */
    size_t activation_bytes; /**< Activations and their gradients for one batch. */
    size_t workspace_bytes;  /**< FFT plans' and layers' work buffers. */
    size_t total_bytes;      /**< Sum of the above. */
} eelsvae_memory_estimate;

/**
 * @brief Estimate the memory of training a model of this architecture.
 * @param opt Architecture (validated first: an invalid one is reported
 *            exactly as eelsvae_model_create() would).
 * @param batch Tiles per batch, ≥ 1.
 * @param[in,out] estimate struct_size set by the caller, at least
 *        sizeof(size_t); every field that lies wholly within struct_size is
 *        filled, nothing past struct_size is written, and struct_size stays
 *        as the caller set it.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (naming the field or
 *         layer), ::EELSVAE_ERR_DIMENSION (a tile not divisible by the total
 *         stride, a stage that shrinks to nothing), ::EELSVAE_ERR_OVERFLOW.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_estimate_memory(const eelsvae_model_options *opt, size_t batch,
                                                         eelsvae_memory_estimate *estimate);

/**
 * @brief Create a model with freshly initialised weights (PyTorch's default
 *        initialisation of each layer, drawn from @p seed).
 * @param opt Architecture.
 * @param seed Seed of the initial weights.
 * @param[out] out The model.
 * @return As eelsvae_model_estimate_memory(), or ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_create(const eelsvae_model_options *opt, uint64_t seed,
                                                eelsvae_model **out);

/**
 * @brief Free a model. NULL is a no-op.
 * @param model The model.
 * @since 0.1.0
 */
EELSVAE_API void eelsvae_model_free(eelsvae_model *model);

/**
 * @brief The architecture of a model, writing only the caller's
 *        @p struct_size bytes.
 *
 * Call it through eelsvae_model_options_get(), which passes the caller's
 * own sizeof (see @ref page_abi).
 * @param model The model.
 * @param[out] opt The first min(@p struct_size, sizeof(eelsvae_model_options))
 *             bytes are the model's architecture, any bytes beyond the
 *             library's struct up to @p struct_size are zeroed, and
 *             struct_size is set to @p struct_size.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (a NULL argument, a
 *         @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_options_get_sized(const eelsvae_model *model, eelsvae_model_options *opt,
                                                           size_t struct_size);

/**
 * @brief The architecture of a model (the caller's sizeof).
 *
 * A macro over eelsvae_model_options_get_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param model The model.
 * @param[out] opt The architecture (an ::eelsvae_model_options pointer, not NULL).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_model_options_get(model, opt) eelsvae_model_options_get_sized((model), (opt), sizeof *(opt))

/**
 * @brief Number of trainable parameters.
 * @param model The model.
 * @return The count.
 * @since 0.1.0
 */
EELSVAE_API size_t eelsvae_model_parameter_count(const eelsvae_model *model);

/**
 * @brief Where training stands, passed to the progress callback.
 * @since 0.1.0
 */
typedef struct eelsvae_train_progress {
    size_t struct_size;     /**< sizeof(eelsvae_train_progress) of the library. */
    size_t epoch;           /**< Current epoch, 1-based. */
    size_t epochs;          /**< Epochs in all. */
    size_t batch;           /**< Batches done in this epoch; equals batches at the end of an epoch. */
    size_t batches;         /**< Batches per epoch. */
    int epoch_done;         /**< Non-zero on the call that ends an epoch (validation figures valid). */
    double loss;            /**< Mean loss per tile so far in this epoch (reconstruction + β·KL). */
    double reconstruction;  /**< Its reconstruction part. */
    double kl;              /**< Its KL part (before β). */
    double validation_loss; /**< Mean loss per validation tile at the end of the epoch (NaN without validation). */
    double learning_rate;   /**< Current learning rate. */
    double elapsed_seconds; /**< Wall time since training (or resuming) started. */
    double eta_seconds;     /**< Estimated wall time to the last epoch. */
} eelsvae_train_progress;

/**
 * @brief Training progress callback; return non-zero to cancel.
 * @param user The pointer in the training options.
 * @param progress Where training stands.
 * @return 0 to continue, non-zero to stop (the model keeps the weights of the
 *         last finished step; training returns ::EELSVAE_ERR_CANCELLED).
 * @since 0.1.0
 */
typedef int (*eelsvae_train_progress_fn)(void *user, const eelsvae_train_progress *progress);

/**
 * @brief How a model is trained. Fill with eelsvae_train_options_init().
 * @since 0.1.0
 */
typedef struct eelsvae_train_options {
    size_t struct_size;            /**< The caller's sizeof(eelsvae_train_options), set by init. */
    size_t epochs;                 /**< Epochs (passes over the training tiles). */
    size_t batch;                  /**< Tiles per batch. */
    double learning_rate;          /**< Adam's initial learning rate. */
    double validation_fraction;    /**< Fraction of tiles held out for validation, 0 ≤ f < 1. */
    double clip_norm;              /**< Global gradient-norm clipping threshold (0 = none). */
    size_t plateau_patience;       /**< Halve the learning rate after this many epochs without
                                        improvement of the validation (or training) loss; 0 = never. */
    size_t early_stop_patience;    /**< Stop after this many epochs without improvement; 0 = never. */
    size_t tile_stride;            /**< Step between training tiles in pixels (0 or more than the tile: the
                                        tile size, no overlap); see @p min_tiles. */
    uint64_t seed;                 /**< Seed of the shuffling, the validation split and the sampling of z. */
    const eelsvae_preprocess_options *preprocess; /**< Chain applied after the energy crop; NULL = the paper's. */
    const char *checkpoint_path;   /**< Where checkpoints are written (atomically), or NULL. */
    size_t checkpoint_every;       /**< Write a checkpoint every this many epochs (0 = never). */
    eelsvae_train_progress_fn progress; /**< Called after every batch, or NULL. */
    void *progress_user;           /**< Passed to @p progress. */
    size_t min_tiles;              /**< Where the cubes give fewer tiles than this at @p tile_stride, training
                                        takes the largest smaller step that gives as many (down to 1), so
                                        that a small scan — a line a few pixels wide — still yields enough
                                        distinct tiles; 0 = always @p tile_stride (presets 64). */
    size_t min_steps;              /**< Train at least this many optimiser steps (batches): @p epochs is
                                        raised where an epoch has few batches, as a small scan gives
                                        (early stopping still applies); 0 = exactly @p epochs (presets 0;
                                        eelsvae-train asks for 900, the fast preset's step count on the
                                        192 × 192 benchmark, unless --epochs is given). */
    double outlier_cut;            /**< Outlier mode, for training on the very scan that is analysed, so that
                                        the model does not learn its anomalies: 0 = off (for a clean twin;
                                        eelsvae-train --no-outlier-mode); k > 0 = on (presets 3). After a
                                        warm-up of the first third of the epochs (rounded up), every later
                                        epoch starts with a pass that reconstructs every tile (z = μ) and
                                        gives each pixel the error 1 − PCC of its E channels and their
                                        reconstruction (the shape, as detection scores it, not the
                                        intensity), averaged over the tiles that hold it; a pixel whose
                                        error exceeds median + k · 1.4826 · MAD of all the pixels' errors
                                        is left out of the reconstruction term (and its gradient) for that
                                        epoch, in training and validation tiles alike; the KL term stays.
                                        The pass costs about a third of an epoch. See @ref page_model. */
} eelsvae_train_options;

/**
 * @brief Fill training options with a preset's values, writing only the
 *        caller's @p struct_size bytes.
 *
 * Call it through eelsvae_train_options_init(), which passes the caller's
 * own sizeof (see @ref page_abi).
 * @param opt Options to fill: the first min(@p struct_size,
 *            sizeof(eelsvae_train_options)) bytes get the preset, any bytes
 *            beyond the library's struct up to @p struct_size are zeroed, and
 *            struct_size is set to @p struct_size.
 * @param preset ::EELSVAE_PRESET_PAPER (60 epochs, batch 4) or ::EELSVAE_PRESET_FAST.
 * @param struct_size Size of the caller's struct, at least sizeof(size_t).
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT (NULL @p opt, an
 *         unknown preset, a @p struct_size too small to hold struct_size).
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_train_options_init_sized(eelsvae_train_options *opt, eelsvae_preset preset,
                                                            size_t struct_size);

/**
 * @brief Fill training options with a preset's values (the caller's sizeof).
 *
 * A macro over eelsvae_train_options_init_sized() that passes
 * `sizeof *(opt)`. @p opt is evaluated once.
 * @param opt Options to fill (an ::eelsvae_train_options pointer, not NULL).
 * @param preset ::EELSVAE_PRESET_PAPER (60 epochs, batch 4) or ::EELSVAE_PRESET_FAST.
 * @return ::EELSVAE_OK or ::EELSVAE_ERR_INVALID_ARGUMENT.
 * @since 0.1.0
 */
#define eelsvae_train_options_init(opt, preset) eelsvae_train_options_init_sized((opt), (preset), sizeof *(opt))

/**
 * @brief Train a model on bulk spectrum images (raw counts).
 *
 * The cubes are cropped to the model's energy range and preprocessed (the
 * percentile scaling is computed over all of them together and recorded in
 * the model); they are cut into T × T tiles at the tile stride; a tile that
 * touches a pixel whose exclusion mask is non-zero is not used. Training
 * continues from the model's own state: a fresh model starts at epoch 1, a
 * model loaded from a checkpoint resumes where the checkpoint was written,
 * to the same weights an uninterrupted run gives.
 * Same seed and thread count → bit-identical weights.
 * @param model The model, updated in place.
 * @param cubes @p n_cubes cubes in raw counts with calibrated energy axes
 *              of one dispersion; the first fixes the energy grid (or the
 *              model's recorded grid does, when training resumes), and the
 *              others are resampled onto it as eelsvae_model_prepare() does.
 * @param exclude @p n_cubes masks of ny·nx bytes (entries may be NULL), or NULL.
 * @param n_cubes Number of cubes, ≥ 1.
 * @param opt Training options.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_RANGE
 *         (a cube does not cover the model's energy range), ::EELSVAE_ERR_DIMENSION
 *         (no tile left to train on), ::EELSVAE_ERR_NUMERIC (the loss diverged),
 *         ::EELSVAE_ERR_CANCELLED, ::EELSVAE_ERR_IO (a checkpoint), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_train(eelsvae_model *model, const eelsvae_cube *const *cubes,
                                               const uint8_t *const *exclude, size_t n_cubes,
                                               const eelsvae_train_options *opt);

/**
 * @brief Apply the model's recorded input transform to a raw cube: crop the
 *        energy range, preprocess with the training scaling.
 *
 * The channels taken are those of the training data's energy grid (its
 * first channel's energy plus whole channels). A cube whose channels lie
 * off that grid — its energy origin differs by a fraction of a channel —
 * is resampled onto it by linear interpolation between its two nearest
 * channels before preprocessing; channels within a thousandth of a
 * channel of the grid are taken as they are.
 * @param model A trained (or loaded) model.
 * @param raw A cube in raw counts with a calibrated energy axis of the same
 *            dispersion as the training data.
 * @param[out] prepared New cube, T-tileable input of the network.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT (an untrained model),
 *         ::EELSVAE_ERR_RANGE (energy range not covered, or a different
 *         dispersion), ::EELSVAE_ERR_DIMENSION (scan smaller than a tile), ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_prepare(const eelsvae_model *model, const eelsvae_cube *raw,
                                                 eelsvae_cube **prepared);

/**
 * @brief Reconstruct a prepared cube: every pixel through the tiles that
 *        cover it (eelsvae_cube_to_tiles()), overlaps blended (eelsvae_cube_from_tiles()); z = μ.
 *
 * With stride T each pixel is reconstructed once, by the one tile that
 * holds it, and tile edges can show as a faint grid in a score map. A
 * smaller stride blends each pixel from every tile that holds it at a
 * different position, weighted towards each tile's centre — about
 * (T / stride)² times the work — which removes the grid and the noise of
 * any single reconstruction.
 * @param model The model.
 * @param prepared Output of eelsvae_model_prepare().
 * @param stride Step between tile origins in pixels, 1 … T; 0 means T (no overlap).
 * @param[out] reconstruction New cube of the same shape and calibration, values in [0, 1].
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_INVALID_ARGUMENT, ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_reconstruct(const eelsvae_model *model, const eelsvae_cube *prepared,
                                                     size_t stride, eelsvae_cube **reconstruction);

/**
 * @brief Latent encoding (μ and log σ²) of every tile of a prepared cube,
 *        in the order of eelsvae_cube_to_tiles() at stride T (no overlap:
 *        eelsvae_tiling() with stride 0 gives the tile count).
 * @param model The model.
 * @param prepared Output of eelsvae_model_prepare().
 * @param[out] mu tiles·L floats.
 * @param[out] logvar tiles·L floats, or NULL.
 * @param count Length of each of @p mu and @p logvar.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_encode(const eelsvae_model *model, const eelsvae_cube *prepared,
                                                float *mu, float *logvar, size_t count);

/**
 * @brief Decode latent vectors into tiles (σ of the logits).
 * @param model The model.
 * @param z n·L floats.
 * @param n Number of vectors.
 * @param[out] tiles n·T·T·E floats, [n][T][T][E].
 * @param count Length of @p tiles.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_DIMENSION, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_decode(const eelsvae_model *model, const float *z, size_t n,
                                                float *tiles, size_t count);

/**
 * @brief Save a model: architecture, weights, the input transform and, when
 *        @p with_training_state, the optimiser state to resume from.
 *
 * Little-endian binary with a versioned header and a CRC-32, written to a
 * temporary file and renamed, so the old file survives any failure.
 * @param model The model.
 * @param path File name.
 * @param with_training_state Non-zero for a checkpoint.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_IO.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_save(const eelsvae_model *model, const char *path,
                                              int with_training_state);

/**
 * @brief Load a model (or checkpoint) written by eelsvae_model_save().
 * @param path File name.
 * @param[out] out The model.
 * @return ::EELSVAE_OK, ::EELSVAE_ERR_IO, ::EELSVAE_ERR_FORMAT (not a model
 *         file, truncated, inconsistent sizes — naming the offset — or an
 *         architecture needing more working memory per tile than
 *         max(1 GiB, 4096 × the file's size), which only a corrupt file has),
 *         ::EELSVAE_ERR_VERSION, ::EELSVAE_ERR_CHECKSUM, ::EELSVAE_ERR_NOMEM.
 * @since 0.1.0
 */
EELSVAE_API eelsvae_status eelsvae_model_load(const char *path, eelsvae_model **out);

#ifdef __cplusplus
}
#endif

#endif /* EELSVAE_MODEL_H */
