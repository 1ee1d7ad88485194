/* The public model: training (loss goes down, progress, cancel, bit-exact
 * determinism and resume), the input transform, detection (reconstruct,
 * encode, decode against each other and against the tiling), and the file
 * format's failure modes. Everything uses a tiny hand-built architecture on
 * small synthetic cubes so the whole file runs in seconds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"
#include "nn/model_private.h" /* the parameter block, to compare bits */

/* ---- fixtures ------------------------------------------------------------------ */

#define T 8          /* tile */
#define E 32         /* energy channels the model takes */
#define L 4          /* latent */
#define E_START 695.0
#define TINY_PARAMETERS 2533 /* counted by hand below */

/* enc: 1→2 (k 1×1×3, s 1×1×2, p 0,0,1): 8×8×16; 2→4 (k 3, s 2, p 1): 4×4×8;
 * 4→4 (k 3, s 2, p 1): 2×2×4, flat = 4·2·2·4 = 64; hidden 8, L 4.
 * Parameters: enc 8 + 220 + 436, fc_enc 8·64+8 = 520, fc_mulv 8·8+8 = 72,
 * fc_dec 8·4+8 = 40, fc_unflat 64·8+64 = 576, dec 436 + (4·2·27+2 = 218)
 * + (2·1·3+1 = 7): 2533. The network is tu_tiny_model_options() (testutil.h);
 * T, E, L and E_START are its values, written out here to check against. */

/* A synthetic SI, energy axis e0 … e1 at `dispersion` eV per channel. */
static eelsvae_cube *synth(size_t ny, size_t nx, double e0, double e1, double dispersion, double dose, uint64_t seed)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = ny;
    s.nx = nx;
    s.energy_start = e0;
    s.energy_end = e1;
    s.dispersion = dispersion;
    s.o_edge = e0 + 4.0;
    s.dose = dose;
    s.seed = seed;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&s, &c, NULL));
    return c;
}

/* 24 × 24 pixels, 686 … 737 eV at 1 eV: the model's 32 channels from 695 eV fit. */
static eelsvae_cube *train_cube(uint64_t seed)
{
    return synth(24, 24, 686.0, 737.0, 1.0, 1000.0, seed);
}

static void train_options(eelsvae_train_options *t, size_t epochs)
{
    assert_ok(eelsvae_train_options_init(t, EELSVAE_PRESET_FAST));
    t->epochs = epochs;
    t->batch = 4;
    t->tile_stride = 4; /* origins 0, 4, … 16: 25 tiles per 24 × 24 cube */
    t->min_tiles = 0;   /* exactly those tiles, however few */
    t->validation_fraction = 0.1;
    t->early_stop_patience = 0;
    t->seed = 7;
}

static const float *params(const eelsvae_model *m)
{
    return evae_cvae_params(m->net);
}

static int same_params(const eelsvae_model *a, const eelsvae_model *b)
{
    size_t n = eelsvae_model_parameter_count(a);
    return n == eelsvae_model_parameter_count(b) && memcmp(params(a), params(b), n * sizeof(float)) == 0;
}

/* The two training cubes most tests use. */
typedef struct pair {
    eelsvae_cube *c[2];
} pair;

static pair two_cubes(void)
{
    pair p = {{train_cube(11), train_cube(12)}};
    return p;
}

static void pair_free(pair *p)
{
    eelsvae_cube_free(p->c[0]);
    eelsvae_cube_free(p->c[1]);
}

static eelsvae_status train(eelsvae_model *m, const pair *p, const eelsvae_train_options *t)
{
    const eelsvae_cube *cubes[2] = {p->c[0], p->c[1]};
    return eelsvae_model_train(m, cubes, NULL, 2, t);
}

/* ---- progress recorder ------------------------------------------------------------- */

#define MAX_EPOCHS 16

/* Checks every progress record (asserting inside the library's call stack
 * would longjmp past its clean-up, so problems are written down instead). */
typedef struct recorder {
    size_t calls;
    size_t cancel_at_call;    /* cancel on this call (1-based); 0 = never */
    size_t cancel_after_epoch; /* cancel on the epoch_done call of this epoch; 0 = never */
    size_t batches;
    size_t last_epoch, last_batch;
    double epoch_loss[MAX_EPOCHS + 1];
    double epoch_validation[MAX_EPOCHS + 1];
    double last_elapsed;
    double beta;
    int validation; /* validation figures expected at the end of an epoch */
    char problem[256];
} recorder;

static void problem(recorder *r, const char *what, const eelsvae_train_progress *p)
{
    if (!r->problem[0])
        snprintf(r->problem, sizeof r->problem, "call %zu (epoch %zu, batch %zu/%zu): %s", r->calls, p->epoch, p->batch,
                 p->batches, what);
}

static int record(void *user, const eelsvae_train_progress *p)
{
    recorder *r = user;
    r->calls++;
    if (p->struct_size != sizeof *p) problem(r, "struct_size", p);
    if (p->epoch < 1 || p->epoch > p->epochs || p->epoch > MAX_EPOCHS) problem(r, "epoch out of range", p);
    if (p->batch < 1 || p->batch > p->batches) problem(r, "batch out of range", p);
    if (r->batches && p->batches != r->batches) problem(r, "batches changed", p);
    r->batches = p->batches;
    /* batches advance one at a time within an epoch */
    if (r->last_epoch == p->epoch && p->batch != r->last_batch + 1) problem(r, "batch skipped", p);
    if (r->last_epoch != p->epoch && r->last_epoch && p->batch != 1 && r->calls > 1) problem(r, "epoch start", p);
    r->last_epoch = p->epoch;
    r->last_batch = p->batch;
    if ((p->epoch_done != 0) != (p->batch == p->batches)) problem(r, "epoch_done not on the last batch", p);
    if (!(isfinite(p->loss) && p->loss > 0)) problem(r, "loss not finite and positive", p);
    if (!(p->kl >= 0)) problem(r, "negative KL", p);
    if (fabs(p->loss - (p->reconstruction + r->beta * p->kl)) > 1e-9 * p->loss) problem(r, "loss ≠ rec + β·KL", p);
    if (p->epoch_done && r->validation ? !isfinite(p->validation_loss) : !isnan(p->validation_loss))
        problem(r, "validation_loss set wrongly", p);
    if (!(p->learning_rate > 0 && p->learning_rate <= 1e-2)) problem(r, "learning rate", p);
    if (!(p->elapsed_seconds >= r->last_elapsed)) problem(r, "elapsed went back", p);
    r->last_elapsed = p->elapsed_seconds;
    if (!(p->eta_seconds >= 0 && isfinite(p->eta_seconds))) problem(r, "eta", p);
    if (p->epoch == p->epochs && p->epoch_done && p->eta_seconds != 0) problem(r, "eta at the end", p);
    if (p->epoch_done && p->epoch <= MAX_EPOCHS) {
        r->epoch_loss[p->epoch] = p->loss;
        r->epoch_validation[p->epoch] = p->validation_loss;
    }
    if (r->cancel_at_call && r->calls == r->cancel_at_call) return 1;
    if (r->cancel_after_epoch && p->epoch_done && p->epoch == r->cancel_after_epoch) return 1;
    return 0;
}

static void recorder_init(recorder *r, eelsvae_train_options *t)
{
    memset(r, 0, sizeof *r);
    r->beta = 1.2;
    r->validation = 1;
    t->progress = record;
    t->progress_user = r;
}

/* ---- options and life cycle ----------------------------------------------------------- */

static void test_train_presets(void **state)
{
    (void)state;
    eelsvae_train_options t;
    assert_ok(eelsvae_train_options_init(&t, EELSVAE_PRESET_PAPER));
    assert_int_equal(t.struct_size, sizeof t);
    assert_int_equal(t.epochs, 60);
    assert_int_equal(t.batch, 4);
    assert_close(t.learning_rate, 1e-3, 0, 0);
    assert_close(t.validation_fraction, 0.1, 0, 0);
    assert_close(t.clip_norm, 5.0, 0, 0);
    assert_int_equal(t.plateau_patience, 5);
    assert_int_equal(t.early_stop_patience, 0);
    assert_int_equal(t.tile_stride, 0);
    assert_int_equal(t.seed, 1);
    assert_null(t.preprocess);
    assert_null(t.checkpoint_path);
    assert_int_equal(t.checkpoint_every, 0);
    assert_null(t.progress);
    assert_ok(eelsvae_train_options_init(&t, EELSVAE_PRESET_FAST));
    assert_int_equal(t.epochs, 30);
    assert_int_equal(t.batch, 16);
    assert_int_equal(t.plateau_patience, 3);
    assert_int_equal(t.early_stop_patience, 8);
    assert_int_equal(t.tile_stride, 8);
    assert_status(eelsvae_train_options_init(&t, (eelsvae_preset)7), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_train_options_init_sized(NULL, EELSVAE_PRESET_FAST, sizeof(eelsvae_train_options)),
                  EELSVAE_ERR_INVALID_ARGUMENT);
}

static void test_create(void **state)
{
    (void)state;
    eelsvae_model *m = tu_tiny_model(3);
    assert_int_equal(eelsvae_model_parameter_count(m), TINY_PARAMETERS);
    assert_int_equal(eelsvae_model_parameter_count(NULL), 0);
    eelsvae_model_options want, got;
    assert_ok(tu_tiny_model_options(&want));
    memset(&got, 0xAB, sizeof got);
    assert_ok(eelsvae_model_options_get(m, &got));
    assert_int_equal(got.struct_size, sizeof got);
    assert_int_equal(got.tile, T);
    assert_int_equal(got.energy_channels, E);
    assert_close(got.energy_start, E_START, 0, 0);
    assert_int_equal(got.conv_layers, 3);
    assert_memory_equal(got.conv, want.conv, sizeof want.conv);
    assert_int_equal(got.hidden, 8);
    assert_int_equal(got.latent, L);
    assert_close(got.beta, 1.2, 0, 0);

    /* PyTorch's default init: every weight within ±1/sqrt(fan_in) ≤ 1, not all zero */
    const float *p = params(m);
    size_t nonzero = 0;
    for (size_t i = 0; i < TINY_PARAMETERS; i++) {
        assert_true(fabsf(p[i]) <= 1.0f);
        nonzero += p[i] != 0.0f;
    }
    assert_true(nonzero > TINY_PARAMETERS / 2);
    /* the seed decides the weights */
    eelsvae_model *same = tu_tiny_model(3), *other = tu_tiny_model(4);
    assert_true(same_params(m, same));
    assert_false(same_params(m, other));
    eelsvae_model_free(same);
    eelsvae_model_free(other);

    eelsvae_model *bad = NULL;
    want.latent = 0;
    assert_status(eelsvae_model_create(&want, 1, &bad), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(tu_tiny_model_options(&want));
    want.energy_start = NAN;
    assert_status(eelsvae_model_create(&want, 1, &bad), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_true(strstr(eelsvae_last_error(), "energy_start") != NULL);
    assert_null(bad);
    assert_status(eelsvae_model_create(NULL, 1, &bad), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_create(&want, 1, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_options_get(NULL, &got), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_model_free(m);
    eelsvae_model_free(NULL);
}

/* ---- training ------------------------------------------------------------------------ */

/* Σ over a tile's samples of the binary entropy H(x): the least the summed
 * Bernoulli reconstruction term can be for that tile (at σ(logit) = x). */
static double tile_entropy(const eelsvae_cube *c, size_t y0, size_t x0)
{
    size_t nx = 0;
    eelsvae_cube_shape(c, NULL, &nx, NULL);
    const float *d = eelsvae_cube_data_const(c);
    double h = 0;
    for (size_t y = y0; y < y0 + T; y++)
        for (size_t x = x0; x < x0 + T; x++)
            for (size_t e = 0; e < E; e++) {
                double v = d[(y * nx + x) * E + e];
                if (v > 0 && v < 1) h -= v * log(v) + (1 - v) * log1p(-v);
            }
    return h;
}

static void test_training_reduces_loss(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 8);
    t.learning_rate = 1e-2;
    t.validation_fraction = 0; /* every tile trains: the loss floor below is exact */
    recorder r;
    recorder_init(&r, &t);
    r.validation = 0;
    assert_ok(train(m, &p, &t));
    if (r.problem[0]) fail_msg("progress: %s", r.problem);
    /* 2 × 25 tiles in ⌈50/4⌉ = 13 batches */
    assert_int_equal(r.batches, 13);
    assert_int_equal(r.calls, 8 * 13);

    /* the floor: mean over the 50 training tiles of Σ H(x) of the prepared data */
    double floor_loss = 0;
    for (int i = 0; i < 2; i++) {
        eelsvae_cube *prep = NULL;
        assert_ok(eelsvae_model_prepare(m, p.c[i], &prep));
        for (size_t y0 = 0; y0 <= 16; y0 += 4)
            for (size_t x0 = 0; x0 <= 16; x0 += 4) floor_loss += tile_entropy(prep, y0, x0) / 50.0;
        eelsvae_cube_free(prep);
    }
    double first = r.epoch_loss[1], last = r.epoch_loss[8];
    print_message("epoch loss %.2f → %.2f, floor %.2f; %.3f s\n", first, last, floor_loss, r.last_elapsed);
    assert_true(last >= floor_loss - 1e-3 * floor_loss); /* no loss can beat the entropy */
    assert_true(last - floor_loss < 0.6 * (first - floor_loss));

    /* the model is trained: it prepares and reconstructs */
    eelsvae_cube *prep = NULL, *rec = NULL;
    assert_ok(eelsvae_model_prepare(m, p.c[0], &prep));
    assert_ok(eelsvae_model_reconstruct(m, prep, 0, &rec));
    eelsvae_cube_free(prep);
    eelsvae_cube_free(rec);
    eelsvae_model_free(m);
    pair_free(&p);
}

/* The held-out validation loss falls too. */
static void test_validation_loss_falls(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 8);
    t.learning_rate = 1e-2;
    recorder r;
    recorder_init(&r, &t);
    assert_ok(train(m, &p, &t));
    if (r.problem[0]) fail_msg("progress: %s", r.problem);
    /* 50 tiles, ⌊0.1 · 50⌋ = 5 held out: 45 training tiles in ⌈45/4⌉ = 12 batches */
    assert_int_equal(r.batches, 12);
    print_message("validation loss %.2f → %.2f\n", r.epoch_validation[1], r.epoch_validation[8]);
    assert_true(r.epoch_validation[8] < r.epoch_validation[1] - 50.0);
    eelsvae_model_free(m);
    pair_free(&p);
}

static void test_cancel_and_resume_mid_epoch(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_train_options t;
    train_options(&t, 2);
    recorder r;

    eelsvae_model *whole = tu_tiny_model(5);
    recorder_init(&r, &t);
    assert_ok(train(whole, &p, &t));

    /* cancelled on the 5th batch: 5 steps taken, then resumed to the end */
    eelsvae_model *m = tu_tiny_model(5);
    recorder_init(&r, &t);
    r.cancel_at_call = 5;
    assert_status(train(m, &p, &t), EELSVAE_ERR_CANCELLED);
    assert_true(strstr(eelsvae_last_error(), "cancel") != NULL);
    assert_int_equal(r.calls, 5);
    assert_int_equal(m->state.adam.step, 5);
    eelsvae_model *fresh = tu_tiny_model(5);
    assert_false(same_params(m, fresh)); /* the steps were kept */
    eelsvae_model_free(fresh);
    /* still usable */
    eelsvae_cube *prep = NULL, *rec = NULL;
    assert_ok(eelsvae_model_prepare(m, p.c[0], &prep));
    assert_ok(eelsvae_model_reconstruct(m, prep, 0, &rec));
    eelsvae_cube_free(prep);
    eelsvae_cube_free(rec);
    /* and it resumes with batch 6 of epoch 1, to the uninterrupted run's bits */
    recorder_init(&r, &t);
    assert_ok(train(m, &p, &t));
    assert_int_equal(r.calls, 2 * 12 - 5);
    assert_true(same_params(m, whole));
    /* nothing left to do: a further call changes nothing */
    recorder_init(&r, &t);
    assert_ok(train(m, &p, &t));
    assert_int_equal(r.calls, 0);
    assert_true(same_params(m, whole));
    eelsvae_model_free(m);
    eelsvae_model_free(whole);
    pair_free(&p);
}

static void test_determinism(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_train_options t;
    train_options(&t, 2);
    eelsvae_model *a = tu_tiny_model(5), *b = tu_tiny_model(5), *c = tu_tiny_model(5);
    assert_ok(train(a, &p, &t));
    assert_ok(train(b, &p, &t));
    assert_true(same_params(a, b));
    t.seed = 8;
    assert_ok(train(c, &p, &t));
    assert_false(same_params(a, c));
    eelsvae_model *init = tu_tiny_model(5);
    assert_false(same_params(a, init));
    eelsvae_model_free(init);
    eelsvae_model_free(a);
    eelsvae_model_free(b);
    eelsvae_model_free(c);
    pair_free(&p);
}

/* The same holds with two threads (the parallel paths of the network). */
static void test_determinism_two_threads(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_train_options t;
    train_options(&t, 1);
    recorder r;
    recorder_init(&r, &t);
    /* three steps each: the tiny net's parallel regions are slow on a busy machine */
    eelsvae_model *a = tu_tiny_model(5), *b = tu_tiny_model(5), *one = tu_tiny_model(5);
    assert_ok(eelsvae_set_threads(2));
    r.cancel_at_call = 3;
    eelsvae_status sa = train(a, &p, &t);
    recorder_init(&r, &t);
    r.cancel_at_call = 3;
    eelsvae_status sb = train(b, &p, &t);
    assert_ok(eelsvae_set_threads(1));
    assert_int_equal(sa, EELSVAE_ERR_CANCELLED);
    assert_int_equal(sb, EELSVAE_ERR_CANCELLED);
    assert_true(same_params(a, b));
    recorder_init(&r, &t);
    r.cancel_at_call = 3;
    assert_status(train(one, &p, &t), EELSVAE_ERR_CANCELLED);
    print_message("one thread and two threads give %s weights\n", same_params(a, one) ? "the same" : "different");
    eelsvae_model_free(a);
    eelsvae_model_free(b);
    eelsvae_model_free(one);
    pair_free(&p);
}

static void test_train_arguments(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_model *m = tu_tiny_model(5);
    const eelsvae_cube *cubes[2] = {p.c[0], p.c[1]};
    eelsvae_train_options t;
    train_options(&t, 1);
    assert_status(eelsvae_model_train(NULL, cubes, NULL, 2, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_train(m, NULL, NULL, 2, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_train(m, cubes, NULL, 0, &t), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_train(m, cubes, NULL, 2, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    const eelsvae_cube *with_null[2] = {p.c[0], NULL};
    assert_status(eelsvae_model_train(m, with_null, NULL, 2, &t), EELSVAE_ERR_INVALID_ARGUMENT);

#define SPOIL(name, stmt)                                                                                        \
    do {                                                                                                         \
        eelsvae_train_options o = t;                                                                             \
        stmt;                                                                                                    \
        assert_status(eelsvae_model_train(m, cubes, NULL, 2, &o), EELSVAE_ERR_INVALID_ARGUMENT);                 \
        if (!strstr(eelsvae_last_error(), name))                                                                 \
            fail_msg("message '%s' does not name %s", eelsvae_last_error(), name);                               \
    } while (0)
    SPOIL("epochs", o.epochs = 0);
    SPOIL("batch", o.batch = 0);
    SPOIL("learning_rate", o.learning_rate = 0);
    SPOIL("learning_rate", o.learning_rate = NAN);
    SPOIL("validation_fraction", o.validation_fraction = 1.0);
    SPOIL("validation_fraction", o.validation_fraction = -0.1);
    SPOIL("clip_norm", o.clip_norm = -1);
    SPOIL("checkpoint_path", o.checkpoint_every = 1);
    SPOIL("outlier_cut", o.outlier_cut = -1.0);
    SPOIL("outlier_cut", o.outlier_cut = NAN);
    SPOIL("outlier_cut", o.outlier_cut = INFINITY);
    eelsvae_preprocess_options pre;
    assert_ok(eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER));
    pre.mean_filter = 2;
    SPOIL("mean_filter", o.preprocess = &pre);
    assert_ok(eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER));
    pre.percentile_hi = 101;
    SPOIL("percentile", o.preprocess = &pre);
    SPOIL("struct_size", o.struct_size = 0);
#undef SPOIL

    /* a cube that does not reach the model's range; one of another dispersion */
    eelsvae_cube *late = synth(24, 24, 700.0, 760.0, 1.0, 1000.0, 3);
    const eelsvae_cube *c_late[2] = {p.c[0], late};
    assert_status(eelsvae_model_train(m, c_late, NULL, 2, &t), EELSVAE_ERR_RANGE);
    assert_true(strstr(eelsvae_last_error(), "cube 1") != NULL);
    eelsvae_cube *short_axis = synth(24, 24, 686.0, 720.0, 1.0, 1000.0, 3); /* ends before 695 + 31 */
    const eelsvae_cube *c_short[1] = {short_axis};
    assert_status(eelsvae_model_train(m, c_short, NULL, 1, &t), EELSVAE_ERR_RANGE);
    eelsvae_cube *fine = synth(24, 24, 686.0, 737.0, 0.5, 1000.0, 3);
    const eelsvae_cube *c_fine[2] = {p.c[0], fine};
    assert_status(eelsvae_model_train(m, c_fine, NULL, 2, &t), EELSVAE_ERR_RANGE);
    assert_true(strstr(eelsvae_last_error(), "dispersion") != NULL);
    /* NaN in the data */
    eelsvae_cube *nan_cube = NULL;
    assert_ok(eelsvae_cube_copy(p.c[1], &nan_cube));
    eelsvae_cube_data(nan_cube)[(5 * 24 + 6) * 52 + 20] = NAN;
    const eelsvae_cube *c_nan[2] = {p.c[0], nan_cube};
    assert_status(eelsvae_model_train(m, c_nan, NULL, 2, &t), EELSVAE_ERR_NUMERIC);
    /* nothing above changed the model: it is still untrained */
    eelsvae_cube *prep = NULL;
    assert_status(eelsvae_model_prepare(m, p.c[0], &prep), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_model *init = tu_tiny_model(5);
    assert_true(same_params(m, init));
    eelsvae_model_free(init);
    eelsvae_cube_free(late);
    eelsvae_cube_free(short_axis);
    eelsvae_cube_free(fine);
    eelsvae_cube_free(nan_cube);
    eelsvae_model_free(m);
    pair_free(&p);
}

static void test_divergence(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 3);
    t.learning_rate = 1e30; /* the first step throws the weights to ±1e30 */
    t.clip_norm = 0;
    assert_status(train(m, &p, &t), EELSVAE_ERR_NUMERIC);
    assert_true(strstr(eelsvae_last_error(), "epoch") != NULL);
    eelsvae_model_free(m);
    pair_free(&p);
}

/* Batches per epoch with batch 1 and no validation = training tiles. */
static size_t tiles_used(const eelsvae_cube *const *cubes, const uint8_t *const *exclude, size_t n,
                         eelsvae_status *st)
{
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 1);
    t.batch = 1;
    t.validation_fraction = 0;
    recorder r;
    recorder_init(&r, &t);
    r.cancel_at_call = 1; /* the first call tells the count */
    *st = eelsvae_model_train(m, cubes, exclude, n, &t);
    eelsvae_model_free(m);
    return r.batches;
}

static void test_exclusion(void **state)
{
    (void)state;
    pair p = two_cubes();
    const eelsvae_cube *cubes[2] = {p.c[0], p.c[1]};
    eelsvae_status st = EELSVAE_OK;
    /* stride 4 on 24 pixels: origins 0, 4, 8, 12, 16 → 25 tiles per cube */
    assert_int_equal(tiles_used(cubes, NULL, 2, &st), 50);
    assert_int_equal(st, EELSVAE_ERR_CANCELLED);
    uint8_t none[24 * 24], one[24 * 24], all[24 * 24];
    memset(none, 0, sizeof none);
    memset(one, 0, sizeof one);
    memset(all, 1, sizeof all);
    /* pixel (10, 10) lies in the tiles at rows 4 and 8 and columns 4 and 8: 4 tiles */
    one[10 * 24 + 10] = 1;
    const uint8_t *mask_one[2] = {NULL, one};
    assert_int_equal(tiles_used(cubes, mask_one, 2, &st), 46);
    /* pixel (0, 23) lies in one tile only */
    memset(one, 0, sizeof one);
    one[23] = 1;
    const uint8_t *mask_corner[2] = {one, none};
    assert_int_equal(tiles_used(cubes, mask_corner, 2, &st), 49);
    /* a whole cube excluded */
    const uint8_t *mask_half[2] = {all, NULL};
    assert_int_equal(tiles_used(cubes, mask_half, 2, &st), 25);
    /* everything excluded: nothing to train on */
    const uint8_t *mask_all[2] = {all, all};
    tiles_used(cubes, mask_all, 2, &st);
    assert_int_equal(st, EELSVAE_ERR_DIMENSION);
    assert_true(strstr(eelsvae_last_error(), "no tile left") != NULL);
    /* a scan smaller than a tile gives no tile either */
    eelsvae_cube *small = synth(6, 30, 686.0, 737.0, 1.0, 1000.0, 4);
    const eelsvae_cube *c_small[1] = {small};
    tiles_used(c_small, NULL, 1, &st);
    assert_int_equal(st, EELSVAE_ERR_DIMENSION);
    eelsvae_cube_free(small);
    pair_free(&p);
}

/* ---- checkpoints and files -------------------------------------------------------------------- */

static void test_save_load_round_trip(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 2);
    assert_ok(train(m, &p, &t));
    const char *path = tu_path("model.evm");
    assert_ok(eelsvae_model_save(m, path, 0));
    eelsvae_model *back = NULL;
    assert_ok(eelsvae_model_load(path, &back));
    assert_true(same_params(m, back));
    eelsvae_model_options a, b;
    assert_ok(eelsvae_model_options_get(m, &a));
    assert_ok(eelsvae_model_options_get(back, &b));
    assert_memory_equal(&a, &b, sizeof a);
    assert_false(back->state.started); /* no training state without asking */

    eelsvae_cube *pa = NULL, *pb = NULL, *ra = NULL, *rb = NULL;
    assert_ok(eelsvae_model_prepare(m, p.c[1], &pa));
    assert_ok(eelsvae_model_prepare(back, p.c[1], &pb));
    assert_memory_equal(eelsvae_cube_data(pa), eelsvae_cube_data(pb), 24 * 24 * E * sizeof(float));
    assert_ok(eelsvae_model_reconstruct(m, pa, 0, &ra));
    assert_ok(eelsvae_model_reconstruct(back, pb, 0, &rb));
    assert_memory_equal(eelsvae_cube_data(ra), eelsvae_cube_data(rb), 24 * 24 * E * sizeof(float));

    /* an untrained model saves and loads too, and stays untrained */
    eelsvae_model *raw = tu_tiny_model(9), *raw_back = NULL;
    assert_ok(eelsvae_model_save(raw, tu_path("raw.evm"), 1));
    assert_ok(eelsvae_model_load(tu_path("raw.evm"), &raw_back));
    assert_true(same_params(raw, raw_back));
    eelsvae_cube *none = NULL;
    assert_status(eelsvae_model_prepare(raw_back, p.c[0], &none), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_model_free(raw);
    eelsvae_model_free(raw_back);

    assert_status(eelsvae_model_save(NULL, path, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_save(m, NULL, 0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_load(NULL, &back), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(pa);
    eelsvae_cube_free(pb);
    eelsvae_cube_free(ra);
    eelsvae_cube_free(rb);
    eelsvae_model_free(back);
    eelsvae_model_free(m);
    pair_free(&p);
}

static void test_checkpoint_resume(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_train_options t;
    train_options(&t, 4);
    t.plateau_patience = 1; /* so the scheduler state matters too */
    t.outlier_cut = 0.0;    /* its warm-up follows the epoch count, which the 2-epoch run below changes;
                               test_outlier_mode_resume resumes the mode */
    eelsvae_model *whole = tu_tiny_model(5);
    assert_ok(train(whole, &p, &t));

    /* checkpoints every 2 epochs; stopped right after the one of epoch 2 */
    const char *ckpt = tu_path("ckpt.evm");
    eelsvae_train_options tc = t;
    tc.checkpoint_path = ckpt;
    tc.checkpoint_every = 2;
    recorder r;
    recorder_init(&r, &tc);
    r.cancel_after_epoch = 2;
    eelsvae_model *first = tu_tiny_model(5);
    assert_status(train(first, &p, &tc), EELSVAE_ERR_CANCELLED);
    eelsvae_model *resumed = NULL;
    assert_ok(eelsvae_model_load(ckpt, &resumed));
    assert_true(resumed->state.started);
    assert_int_equal(resumed->state.epochs_done, 2);
    assert_true(same_params(resumed, first));
    assert_false(same_params(resumed, whole));
    recorder_init(&r, &t);
    assert_ok(train(resumed, &p, &t));
    assert_int_equal(r.calls, 2 * 12); /* epochs 3 and 4 only */
    assert_true(same_params(resumed, whole));
    /* the run's own last checkpoint (epoch 4) is the finished model */
    r.cancel_after_epoch = 0;
    eelsvae_model *full = tu_tiny_model(5), *last = NULL;
    assert_ok(train(full, &p, &tc));
    assert_ok(eelsvae_model_load(ckpt, &last));
    assert_true(same_params(last, whole));

    /* a checkpoint that cannot be written stops training with IO */
    eelsvae_train_options tio = t;
    tio.checkpoint_path = "/nonexistent-eelsvae-dir/ckpt.evm";
    tio.checkpoint_every = 1;
    eelsvae_model *io = tu_tiny_model(5);
    assert_status(train(io, &p, &tio), EELSVAE_ERR_IO);
    assert_int_equal(io->state.epochs_done, 1);
    eelsvae_model_free(io);

    /* the same by an explicit save after a 2-epoch run */
    eelsvae_model *two = tu_tiny_model(5), *from_two = NULL, *plain = NULL;
    eelsvae_train_options t2 = t;
    t2.epochs = 2;
    assert_ok(train(two, &p, &t2));
    assert_ok(eelsvae_model_save(two, tu_path("two.evm"), 1));
    assert_ok(eelsvae_model_load(tu_path("two.evm"), &from_two));
    assert_ok(train(from_two, &p, &t));
    assert_true(same_params(from_two, whole));
    /* without the training state it starts over (4 more epochs): other weights */
    assert_ok(eelsvae_model_save(two, tu_path("plain.evm"), 0));
    assert_ok(eelsvae_model_load(tu_path("plain.evm"), &plain));
    assert_ok(train(plain, &p, &t));
    assert_false(same_params(plain, whole));

    eelsvae_model_free(whole);
    eelsvae_model_free(first);
    eelsvae_model_free(resumed);
    eelsvae_model_free(full);
    eelsvae_model_free(last);
    eelsvae_model_free(two);
    eelsvae_model_free(from_two);
    eelsvae_model_free(plain);
    pair_free(&p);
}

/* Outlier mode's map is made from the weights at each epoch's start, so a
 * run resumed from a checkpoint after the warm-up (epochs 1 … 2 of 6) ends
 * with the very weights of an uninterrupted one. */
static void test_outlier_mode_resume(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_train_options t;
    train_options(&t, 6);
    t.outlier_cut = 1.0; /* low: some pixels do leave the loss */
    eelsvae_model *whole = tu_tiny_model(5);
    assert_ok(train(whole, &p, &t));
    eelsvae_train_options tc = t;
    tc.checkpoint_path = tu_path("outlier.evm");
    tc.checkpoint_every = 4;
    recorder r;
    recorder_init(&r, &tc);
    r.cancel_after_epoch = 4;
    eelsvae_model *first = tu_tiny_model(5), *resumed = NULL;
    assert_status(train(first, &p, &tc), EELSVAE_ERR_CANCELLED);
    assert_ok(eelsvae_model_load(tc.checkpoint_path, &resumed));
    assert_int_equal(resumed->state.epochs_done, 4);
    assert_ok(train(resumed, &p, &t));
    assert_true(same_params(resumed, whole));
    eelsvae_model_free(whole);
    eelsvae_model_free(first);
    eelsvae_model_free(resumed);
    pair_free(&p);
}

static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc((size_t)n + 1);
    assert_non_null(d);
    assert_int_equal(fread(d, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *size = (size_t)n;
    return d;
}

static void spit(const char *path, const unsigned char *d, size_t n)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(d, 1, n, f), n);
    fclose(f);
}

static void expect_load(const char *path, eelsvae_status want)
{
    eelsvae_model *m = NULL;
    assert_status(eelsvae_model_load(path, &m), want);
    assert_null(m);
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (8 * i));
}

static void test_bad_files(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 1);
    assert_ok(train(m, &p, &t));
    const char *good = tu_path("good.evm"), *bad = tu_path("bad.evm");
    assert_ok(eelsvae_model_save(m, good, 1));
    size_t n = 0;
    unsigned char *d = slurp(good, &n);
    /* 728-byte prefix, 3 blocks of 4·2533 bytes, 264 bytes of state, CRC */
    assert_int_equal(n, 728 + 3 * 4 * TINY_PARAMETERS + 264 + 4);
    assert_memory_equal(d, "EELSVMDL", 8);

    /* a flipped byte inside the parameters */
    d[728 + 4 * 100 + 1] ^= 0x40;
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_CHECKSUM);
    d[728 + 4 * 100 + 1] ^= 0x40;
    /* and one in the Adam moments */
    d[n - 100] ^= 1;
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_CHECKSUM);
    d[n - 100] ^= 1;

    /* truncated anywhere */
    const size_t cuts[] = {0, 5, 8, 11, 40, 100, 727, 728, 729, 5000, n - 5, n - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        spit(bad, d, cuts[i]);
        expect_load(bad, EELSVAE_ERR_FORMAT);
    }
    /* trailing garbage */
    unsigned char *longer = malloc(n + 3);
    memcpy(longer, d, n);
    memset(longer + n, 0, 3);
    spit(bad, longer, n + 3);
    expect_load(bad, EELSVAE_ERR_FORMAT);
    free(longer);

    /* wrong magic; newer version */
    d[0] = 'X';
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_FORMAT);
    d[0] = 'E';
    put_le32(d + 8, 3); /* a version from the future (this library writes 2) */
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_VERSION);
    put_le32(d + 8, 2);

    /* a lying header: a huge parameter count, a huge file size, a huge
     * channel count — all caught before allocating */
    unsigned char save[8];
    memcpy(save, d + 24, 8);
    memset(d + 24, 0xFF, 7);
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_FORMAT);
    assert_true(strstr(eelsvae_last_error(), "offset 24") != NULL);
    memcpy(d + 24, save, 8);
    memcpy(save, d + 16, 8);
    d[22] = 0x10;
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_FORMAT);
    assert_true(strstr(eelsvae_last_error(), "offset 16") != NULL);
    memcpy(d + 16, save, 8);
    memcpy(save, d + 72, 8); /* energy_channels */
    d[78] = 0x7F;
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_FORMAT);
    memcpy(d + 72, save, 8);
    /* unknown flags */
    d[35] = 0x80;
    spit(bad, d, n);
    expect_load(bad, EELSVAE_ERR_FORMAT);
    d[35] = 0;
    /* the restored bytes load again */
    spit(bad, d, n);
    eelsvae_model *again = NULL;
    assert_ok(eelsvae_model_load(bad, &again));
    assert_true(same_params(again, m));
    eelsvae_model_free(again);

    expect_load(tu_path("missing.evm"), EELSVAE_ERR_IO);

    /* a failed save (the temporary's name is too long) keeps the old file */
    char name[251];
    memset(name, 'm', 250);
    name[250] = '\0';
    const char *old = tu_path(name);
    spit(old, (const unsigned char *)"old contents", 12);
    assert_status(eelsvae_model_save(m, old, 1), EELSVAE_ERR_IO);
    size_t on = 0;
    unsigned char *od = slurp(old, &on);
    assert_int_equal(on, 12);
    assert_memory_equal(od, "old contents", 12);
    free(od);
    remove(old);
    free(d);
    eelsvae_model_free(m);
    pair_free(&p);
}

/* ---- the input transform and detection ------------------------------------------------------------ */

/* The model's E channels on its grid E_START + k eV, from a 24 × 24 cube at
 * 1 eV per channel whose channel `below` lies `frac` of a channel under
 * E_START: (1 − frac)·channel below + k plus frac·channel below + k + 1. */
static eelsvae_cube *resampled_crop(const eelsvae_cube *c, size_t below, float frac)
{
    size_t ne = 0;
    eelsvae_cube_shape(c, NULL, NULL, &ne);
    eelsvae_cube *out = NULL;
    assert_ok(eelsvae_cube_create(24, 24, E, &out));
    assert_ok(eelsvae_cube_set_axis(out, EELSVAE_AXIS_E, E_START, 1.0, "eV"));
    for (size_t p = 0; p < 24 * 24; p++)
        for (size_t k = 0; k < E; k++) {
            const float *src = eelsvae_cube_data_const(c) + p * ne + below + k;
            eelsvae_cube_data(out)[p * E + k] = (1.0f - frac) * src[0] + frac * src[1];
        }
    return out;
}

static void test_prepare(void **state)
{
    (void)state;
    eelsvae_cube *cube = train_cube(21);
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_cube *prep = NULL;
    assert_status(eelsvae_model_prepare(m, cube, &prep), EELSVAE_ERR_INVALID_ARGUMENT); /* untrained */

    /* one training cube: its transform is the paper chain on the cropped cube */
    eelsvae_train_options t;
    train_options(&t, 1);
    recorder r;
    recorder_init(&r, &t);
    r.cancel_at_call = 1;
    const eelsvae_cube *cubes[1] = {cube};
    assert_status(eelsvae_model_train(m, cubes, NULL, 1, &t), EELSVAE_ERR_CANCELLED);
    assert_ok(eelsvae_model_prepare(m, cube, &prep));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(prep, &ny, &nx, &ne);
    assert_int_equal(ny, 24);
    assert_int_equal(nx, 24);
    assert_int_equal(ne, E);
    double off = 0, scale = 0;
    assert_ok(eelsvae_cube_axis(prep, EELSVAE_AXIS_E, &off, &scale, NULL));
    assert_close(off, E_START, 1e-9, 0);
    assert_close(scale, 1.0, 0, 0);
    eelsvae_cube *oracle = NULL;
    assert_ok(eelsvae_cube_crop_energy(cube, E_START, E_START + E - 1, &oracle));
    eelsvae_preprocess_options pre;
    assert_ok(eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER));
    double train_lo = 0, train_hi = 0;
    assert_ok(eelsvae_cube_preprocess(oracle, &pre, &train_lo, &train_hi));
    const float *a = eelsvae_cube_data(prep), *b = eelsvae_cube_data(oracle);
    for (size_t i = 0; i < 24 * 24 * E; i++) {
        assert_true(a[i] >= 0.0f && a[i] <= 1.0f);
        assert_close(a[i], b[i], 1e-6, 0);
    }
    eelsvae_cube_free(oracle);
    eelsvae_cube_free(prep);

    /* another cube gets the training scaling, not its own: a brighter cube saturates more */
    eelsvae_cube *bright = synth(24, 24, 686.0, 737.0, 1.0, 3000.0, 22);
    assert_ok(eelsvae_model_prepare(m, bright, &prep));
    size_t ones = 0, ones_own = 0;
    assert_ok(eelsvae_cube_crop_energy(bright, E_START, E_START + E - 1, &oracle));
    assert_ok(eelsvae_cube_preprocess(oracle, &pre, NULL, NULL));
    for (size_t i = 0; i < 24 * 24 * E; i++) {
        ones += eelsvae_cube_data(prep)[i] == 1.0f;
        ones_own += eelsvae_cube_data(oracle)[i] == 1.0f;
    }
    assert_true(ones > 10 * (ones_own + 1));
    eelsvae_cube_free(oracle);
    eelsvae_cube_free(prep);
    eelsvae_cube_free(bright);

    /* A cube whose channels sit 0.4 eV (0.4 channel) off the training grid is
     * resampled onto it: the channel at 695 eV is 0.4 × the one at 694.4 eV
     * plus 0.6 × the one at 695.4 eV, then preprocessed with the training's
     * scaling. */
    eelsvae_cube *shifted = synth(24, 24, 686.4, 737.4, 1.0, 1000.0, 23);
    assert_ok(eelsvae_model_prepare(m, shifted, &prep));
    assert_ok(eelsvae_cube_axis(prep, EELSVAE_AXIS_E, &off, NULL, NULL));
    assert_close(off, E_START, 1e-9, 0);
    eelsvae_cube *resampled = resampled_crop(shifted, 8, 0.6f); /* 686.4 + 8 = 694.4 eV */
    pre.use_fixed_scaling = 1;
    pre.scale_lo = train_lo;
    pre.scale_hi = train_hi;
    assert_ok(eelsvae_cube_preprocess(resampled, &pre, NULL, NULL));
    for (size_t i = 0; i < 24 * 24 * E; i++)
        assert_close(eelsvae_cube_data(prep)[i], eelsvae_cube_data(resampled)[i], 1e-5, 1e-5);
    eelsvae_cube_free(resampled);
    eelsvae_cube_free(prep);
    /* within a thousandth of a channel of the grid: taken as it is, no interpolation */
    assert_ok(eelsvae_cube_set_axis(shifted, EELSVAE_AXIS_E, 686.0005, 1.0, "eV"));
    assert_ok(eelsvae_model_prepare(m, shifted, &prep));
    assert_ok(eelsvae_cube_axis(prep, EELSVAE_AXIS_E, &off, NULL, NULL));
    assert_close(off, 695.0005, 1e-9, 0);
    eelsvae_cube_free(prep);
    /* off the grid with the wanted range starting before its first channel: RANGE */
    assert_ok(eelsvae_cube_set_axis(shifted, EELSVAE_AXIS_E, 695.4, 1.0, "eV"));
    assert_status(eelsvae_model_prepare(m, shifted, &prep), EELSVAE_ERR_RANGE);
    eelsvae_cube_free(shifted);

    eelsvae_cube *other_dispersion = synth(24, 24, 686.0, 737.0, 0.5, 1000.0, 23);
    assert_status(eelsvae_model_prepare(m, other_dispersion, &prep), EELSVAE_ERR_RANGE);
    assert_true(strstr(eelsvae_last_error(), "0.5") != NULL);
    eelsvae_cube *late = synth(24, 24, 700.0, 760.0, 1.0, 1000.0, 23);
    assert_status(eelsvae_model_prepare(m, late, &prep), EELSVAE_ERR_RANGE);
    eelsvae_cube *early = synth(24, 24, 650.0, 720.0, 1.0, 1000.0, 23); /* ends at 720 < 726 */
    assert_status(eelsvae_model_prepare(m, early, &prep), EELSVAE_ERR_RANGE);
    eelsvae_cube *tiny = synth(7, 30, 686.0, 737.0, 1.0, 1000.0, 23);
    assert_status(eelsvae_model_prepare(m, tiny, &prep), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_model_prepare(NULL, cube, &prep), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_prepare(m, cube, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(other_dispersion);
    eelsvae_cube_free(late);
    eelsvae_cube_free(early);
    eelsvae_cube_free(tiny);
    eelsvae_cube_free(cube);
    eelsvae_model_free(m);
}

/* Two cubes share one scaling: the percentiles of both blurred crops together. */
static void test_joint_scaling(void **state)
{
    (void)state;
    eelsvae_cube *dim = synth(24, 24, 686.0, 737.0, 1.0, 500.0, 31);
    eelsvae_cube *bright = synth(24, 24, 686.3, 737.3, 1.0, 4000.0, 32); /* 0.3 channel off the first's grid */
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 1);
    recorder r;
    recorder_init(&r, &t);
    r.cancel_at_call = 1;
    const eelsvae_cube *cubes[2] = {dim, bright};
    assert_status(eelsvae_model_train(m, cubes, NULL, 2, &t), EELSVAE_ERR_CANCELLED);

    /* the oracle: blur each crop (the second resampled onto the first's grid),
     * stack every spectrum into one cube, percentiles */
    eelsvae_preprocess_options pre;
    assert_ok(eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER));
    eelsvae_cube *crop[2] = {NULL, NULL}, *stack = NULL;
    assert_ok(eelsvae_cube_create(2 * 24 * 24, 1, E, &stack));
    for (int i = 0; i < 2; i++) {
        if (i == 0) assert_ok(eelsvae_cube_crop_energy(cubes[i], E_START, E_START + E - 1, &crop[i]));
        else crop[i] = resampled_crop(cubes[i], 8, 0.7f); /* 686.3 + 8 = 694.3 eV */
        eelsvae_cube *blurred = NULL;
        assert_ok(eelsvae_cube_copy(crop[i], &blurred));
        assert_ok(eelsvae_cube_gaussian_blur(blurred, pre.sigma[0], pre.sigma[1], pre.sigma[2]));
        memcpy(eelsvae_cube_data(stack) + (size_t)i * 24 * 24 * E, eelsvae_cube_data(blurred),
               24 * 24 * E * sizeof(float));
        eelsvae_cube_free(blurred);
    }
    double lo = 0, hi = 0;
    assert_ok(eelsvae_cube_percentiles(stack, 1.0, 99.0, &lo, &hi));
    pre.use_fixed_scaling = 1;
    pre.scale_lo = lo;
    pre.scale_hi = hi;
    for (int i = 0; i < 2; i++) {
        eelsvae_cube *prep = NULL;
        assert_ok(eelsvae_model_prepare(m, cubes[i], &prep));
        assert_ok(eelsvae_cube_preprocess(crop[i], &pre, NULL, NULL));
        const float *a = eelsvae_cube_data(prep), *b = eelsvae_cube_data(crop[i]);
        for (size_t k = 0; k < 24 * 24 * E; k++) assert_close(a[k], b[k], 1e-5, 1e-5);
        eelsvae_cube_free(prep);
        eelsvae_cube_free(crop[i]);
    }
    eelsvae_cube_free(stack);
    eelsvae_cube_free(dim);
    eelsvae_cube_free(bright);
    eelsvae_model_free(m);
}

/* A model trained for a couple of epochs on the standard pair, and a
 * prepared 20 × 20 cube (tiles overlap: origins 0, 8, 12). */
static void trained_and_prepared(eelsvae_model **m, eelsvae_cube **prep)
{
    pair p = two_cubes();
    *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 2);
    assert_ok(train(*m, &p, &t));
    eelsvae_cube *raw = synth(20, 20, 686.0, 737.0, 1.0, 1000.0, 41);
    assert_ok(eelsvae_cube_set_axis(raw, EELSVAE_AXIS_Y, 3.0, 0.25, "nm"));
    assert_ok(eelsvae_model_prepare(*m, raw, prep));
    eelsvae_cube_free(raw);
    pair_free(&p);
}

/* A strided reconstruction blends, for every pixel, the reconstructions of
 * every tile that holds it, each weighted min(k + 1, T − k) along each axis
 * at offset k (cube.h): rebuilt here from single-tile crops, each
 * reconstructed on its own (stride 4 on 20 pixels: origins 0, 4, 8, 12). */
static double tile_weight_oracle(size_t k)
{
    return (double)(k + 1 < T - k ? k + 1 : T - k);
}

static void test_reconstruct_strided(void **state)
{
    (void)state;
    eelsvae_model *m = NULL;
    eelsvae_cube *prep = NULL, *rec = NULL;
    trained_and_prepared(&m, &prep);
    assert_ok(eelsvae_model_reconstruct(m, prep, 4, &rec));
    static double sum[20][20][E], weight[20][20];
    static int hits[20][20];
    memset(sum, 0, sizeof sum);
    memset(weight, 0, sizeof weight);
    memset(hits, 0, sizeof hits);
    const size_t origin[4] = {0, 4, 8, 12};
    for (size_t i = 0; i < 4; i++)
        for (size_t j = 0; j < 4; j++) {
            eelsvae_cube *crop = NULL, *one = NULL;
            assert_ok(eelsvae_cube_crop(prep, origin[i], origin[j], T, T, &crop));
            assert_ok(eelsvae_model_reconstruct(m, crop, 0, &one));
            const float *o = eelsvae_cube_data(one);
            for (size_t r = 0; r < T; r++)
                for (size_t c = 0; c < T; c++) {
                    double w = tile_weight_oracle(r) * tile_weight_oracle(c);
                    for (size_t e = 0; e < E; e++) sum[origin[i] + r][origin[j] + c][e] += w * o[(r * T + c) * E + e];
                    weight[origin[i] + r][origin[j] + c] += w;
                    hits[origin[i] + r][origin[j] + c]++;
                }
            eelsvae_cube_free(one);
            eelsvae_cube_free(crop);
        }
    const float *r = eelsvae_cube_data(rec);
    double worst = 0;
    for (size_t y = 0; y < 20; y++)
        for (size_t x = 0; x < 20; x++)
            for (size_t e = 0; e < E; e++) {
                double d = fabs(r[(y * 20 + x) * E + e] - sum[y][x][e] / weight[y][x]);
                worst = d > worst ? d : worst;
            }
    assert_true(worst <= 1e-6);
    assert_int_equal(hits[10][10], 4); /* rows 8–11 lie in tiles 1 and 2 (origins 4 and 8) of each axis */
    eelsvae_cube *bad = NULL;
    assert_status(eelsvae_model_reconstruct(m, prep, T + 1, &bad), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_true(strlen(eelsvae_last_error()) > 0);
    eelsvae_cube_free(rec);
    eelsvae_cube_free(prep);
    eelsvae_model_free(m);
}

static void test_reconstruct_encode_decode(void **state)
{
    (void)state;
    eelsvae_model *m = NULL;
    eelsvae_cube *prep = NULL, *rec = NULL;
    trained_and_prepared(&m, &prep);
    assert_ok(eelsvae_model_reconstruct(m, prep, 0, &rec));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(rec, &ny, &nx, &ne);
    assert_int_equal(ny, 20);
    assert_int_equal(nx, 20);
    assert_int_equal(ne, E);
    for (int axis = 0; axis < 3; axis++) {
        double o1 = 0, s1 = 0, o2 = 0, s2 = 0;
        const char *u1 = NULL, *u2 = NULL;
        assert_ok(eelsvae_cube_axis(prep, (eelsvae_axis)axis, &o1, &s1, &u1));
        assert_ok(eelsvae_cube_axis(rec, (eelsvae_axis)axis, &o2, &s2, &u2));
        assert_close(o2, o1, 0, 0);
        assert_close(s2, s1, 0, 0);
        assert_string_equal(u1, u2);
    }
    double y0 = 0;
    assert_ok(eelsvae_cube_axis(rec, EELSVAE_AXIS_Y, &y0, NULL, NULL));
    assert_close(y0, 3.0, 0, 0);

    /* encode: 3 × 3 tiles; decode(μ) of each tile; the reconstruction is their
     * average where tiles overlap */
    const size_t tiles = 9, tf = T * T * E;
    float mu[9 * L], logvar[9 * L], mu_only[9 * L];
    assert_ok(eelsvae_model_encode(m, prep, mu, logvar, tiles * L));
    assert_ok(eelsvae_model_encode(m, prep, mu_only, NULL, tiles * L));
    assert_memory_equal(mu, mu_only, sizeof mu);
    for (size_t i = 0; i < tiles * L; i++) assert_true(isfinite(mu[i]) && isfinite(logvar[i]));
    float *dec = malloc(tiles * tf * sizeof *dec);
    assert_non_null(dec);
    assert_ok(eelsvae_model_decode(m, mu, tiles, dec, tiles * tf));
    for (size_t i = 0; i < tiles * tf; i++) assert_true(dec[i] >= 0.0f && dec[i] <= 1.0f);
    const size_t origin[3] = {0, 8, 12};
    const float *r = eelsvae_cube_data(rec);
    double worst = 0;
    for (size_t y = 0; y < 20; y++)
        for (size_t x = 0; x < 20; x++)
            for (size_t e = 0; e < E; e++) {
                double sum = 0;
                int hits = 0;
                for (size_t i = 0; i < 3; i++)
                    for (size_t j = 0; j < 3; j++) {
                        if (y < origin[i] || y >= origin[i] + T || x < origin[j] || x >= origin[j] + T) continue;
                        sum += dec[(i * 3 + j) * tf + ((y - origin[i]) * T + (x - origin[j])) * E + e];
                        hits++;
                    }
                double d = fabs(r[(y * 20 + x) * E + e] - sum / hits);
                worst = d > worst ? d : worst;
            }
    assert_true(worst <= 1e-6);
    /* the tiles differ from one another: the network is not constant */
    assert_true(memcmp(dec, dec + 4 * tf, tf * sizeof *dec) != 0);

    /* count and shape checks */
    assert_status(eelsvae_model_encode(m, prep, mu, logvar, tiles * L - 1), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_model_encode(m, prep, mu, logvar, tiles * L + L), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_model_decode(m, mu, tiles, dec, tiles * tf - 1), EELSVAE_ERR_DIMENSION);
    assert_ok(eelsvae_model_decode(m, mu, 0, dec, 0));
    eelsvae_cube *raw = synth(20, 20, 686.0, 737.0, 1.0, 1000.0, 41), *out = NULL;
    assert_status(eelsvae_model_reconstruct(m, raw, 0, &out), EELSVAE_ERR_DIMENSION); /* 52 channels, not 32 */
    assert_status(eelsvae_model_encode(m, raw, mu, NULL, tiles * L), EELSVAE_ERR_DIMENSION);
    eelsvae_cube *narrow = NULL;
    assert_ok(eelsvae_cube_crop(prep, 0, 0, 20, 7, &narrow));
    assert_status(eelsvae_model_reconstruct(m, narrow, 0, &out), EELSVAE_ERR_DIMENSION);
    assert_null(out);
    assert_status(eelsvae_model_reconstruct(NULL, prep, 0, &out), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_decode(NULL, mu, 1, dec, tf), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(narrow);
    eelsvae_cube_free(raw);
    free(dec);
    eelsvae_cube_free(rec);
    eelsvae_cube_free(prep);
    eelsvae_model_free(m);
}

/* Every allocation that can fail, failing in turn: NOMEM, nothing leaked
 * (the sanitiser build checks), and the call succeeds once they all can. */
static void test_allocation_failures(void **state)
{
    (void)state;
    pair p = two_cubes();
    eelsvae_train_options t;
    train_options(&t, 1);
    recorder r;
    unsigned long k = 1;
    for (;; k++) {
        eelsvae_model *m = tu_tiny_model(5);
        recorder_init(&r, &t);
        r.cancel_at_call = 2;
        evae_fail_allocation_after(k);
        eelsvae_status st = train(m, &p, &t);
        evae_fail_allocation_after(0);
        eelsvae_model_free(m);
        if (st == EELSVAE_ERR_CANCELLED) break;
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_true(k < 10000);
    }
    print_message("training: %lu allocations can fail\n", k - 1);

    eelsvae_model *m = tu_tiny_model(5);
    assert_ok(train(m, &p, &t));
    const char *path = tu_path("alloc.evm");
    assert_ok(eelsvae_model_save(m, path, 1));
    for (k = 1;; k++) {
        eelsvae_model *back = NULL;
        evae_fail_allocation_after(k);
        eelsvae_status st = eelsvae_model_load(path, &back);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            assert_true(same_params(back, m));
            eelsvae_model_free(back);
            break;
        }
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_null(back);
        assert_true(k < 10000);
    }
    for (k = 1;; k++) {
        evae_fail_allocation_after(k);
        eelsvae_status st = eelsvae_model_save(m, tu_path("alloc2.evm"), 1);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) break;
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_true(k < 10000);
    }
    for (k = 1;; k++) {
        eelsvae_model *fresh = NULL;
        eelsvae_model_options o;
        assert_ok(tu_tiny_model_options(&o));
        evae_fail_allocation_after(k);
        eelsvae_status st = eelsvae_model_create(&o, 1, &fresh);
        evae_fail_allocation_after(0);
        eelsvae_model_free(fresh);
        if (st == EELSVAE_OK) break;
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_true(k < 10000);
    }
    for (k = 1;; k++) {
        /* a fresh handle each time, so that the inference net has to grow */
        eelsvae_model *use = NULL;
        assert_ok(eelsvae_model_load(path, &use));
        eelsvae_cube *prep = NULL, *rec = NULL;
        float mu[9 * L];
        evae_fail_allocation_after(k);
        eelsvae_status st = eelsvae_model_prepare(use, p.c[0], &prep);
        if (st == EELSVAE_OK) st = eelsvae_model_reconstruct(use, prep, 0, &rec);
        if (st == EELSVAE_OK) st = eelsvae_model_encode(use, prep, mu, NULL, 9 * L);
        evae_fail_allocation_after(0);
        eelsvae_cube_free(prep);
        eelsvae_cube_free(rec);
        eelsvae_model_free(use);
        if (st == EELSVAE_OK) break;
        assert_int_equal(st, EELSVAE_ERR_NOMEM);
        assert_true(k < 10000);
    }
    eelsvae_model_free(m);
    pair_free(&p);
}

/* ---- fitting an architecture to a scan --------------------------------------------------------- */

/* A zero cube of ny × nx × ne with energy axis offset + scale·i eV. */
static eelsvae_cube *axis_cube(size_t ny, size_t nx, size_t ne, double offset, double scale)
{
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(ny, nx, ne, &c));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, offset, scale, "eV"));
    return c;
}

/* The fast preset (tile 24, strides 4 spatial and 16 in energy, budget 160
 * channels), `tile` over it when non-zero, fitted to a ny × nx scan of the
 * 1024-channel axis 350 … 861.5 eV. Returns the status; *o gets the result. */
static eelsvae_status fit_fast(size_t ny, size_t nx, size_t tile, double lo, double hi, eelsvae_model_options *o)
{
    assert_ok(eelsvae_model_options_init(o, EELSVAE_PRESET_FAST));
    if (tile) o->tile = tile;
    eelsvae_cube *c = axis_cube(ny, nx, 1024, 350.0, 0.5);
    eelsvae_status st = eelsvae_model_options_fit(o, c, lo, hi);
    eelsvae_cube_free(c);
    return st;
}

static void test_options_fit_tile(void **state)
{
    (void)state;
    eelsvae_model_options o, preset;
    assert_ok(eelsvae_model_options_init(&preset, EELSVAE_PRESET_FAST));
    assert_int_equal(preset.tile, 24);
    assert_int_equal(preset.energy_bin, 1);
    /* a 6-pixel-wide line: the largest multiple of 4 within 6 */
    assert_ok(fit_fast(49, 6, 0, NAN, NAN, &o));
    assert_int_equal(o.tile, 4);
    /* nothing but the input's fields changes */
    assert_int_equal(o.struct_size, sizeof o);
    assert_int_equal(o.conv_layers, preset.conv_layers);
    assert_memory_equal(o.conv, preset.conv, sizeof o.conv);
    assert_int_equal(o.hidden, preset.hidden);
    assert_int_equal(o.latent, preset.latent);
    assert_true(o.beta == preset.beta && o.loss == preset.loss);
    /* and the result is an architecture a model can have */
    eelsvae_model *m = NULL;
    assert_ok(eelsvae_model_create(&o, 1, &m));
    eelsvae_model_free(m);
    /* {ny, nx, tile asked (0: the preset's 24, as --tile gives it), expected}:
     * the largest multiple of 4 up to the tile asked that fits both sides */
    static const size_t cases[][4] = {{6, 49, 0, 4},   {24, 24, 0, 24}, {200, 300, 0, 24}, {13, 17, 0, 12},
                                      {23, 23, 0, 20}, {49, 6, 8, 4},   {24, 24, 8, 8},    {24, 24, 4, 4}};
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const size_t *c = cases[k];
        assert_ok(fit_fast(c[0], c[1], c[2], NAN, NAN, &o));
        if (o.tile != c[3]) fail_msg("%zu × %zu, tile %zu asked: got %zu, expected %zu", c[0], c[1], c[2], o.tile, c[3]);
    }
    /* narrower than the smallest tile: DIMENSION naming the smallest scan */
    assert_status(fit_fast(3, 40, 0, NAN, NAN, &o), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "4 × 4"));
    assert_int_equal(o.tile, 24); /* a failed fit leaves the options as they were */
    assert_status(fit_fast(40, 3, 0, NAN, NAN, &o), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "4 × 4"));
    assert_status(fit_fast(1, 1, 0, NAN, NAN, &o), EELSVAE_ERR_DIMENSION);
    assert_ok(fit_fast(4, 4, 0, NAN, NAN, &o));
    assert_int_equal(o.tile, 4);
}

/* A tile the strides do not divide, as `eelsvae-train --tile 10` passes:
 * the largest tile up to it that the strides divide (8), not a refusal. */
static void test_options_fit_tile_not_divisible(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(fit_fast(24, 24, 10, NAN, NAN, &o));
    assert_int_equal(o.tile, 8);
    assert_ok(fit_fast(49, 6, 10, NAN, NAN, &o));
    assert_int_equal(o.tile, 4);
}

/* One fit of the fast preset to a 24 × 24 scan of 1024 channels at 0.5 eV
 * from 350 eV (channel c at 350 + c/2 eV), and what it must give. */
typedef struct energy_case {
    double lo, hi;          /* the window, NaN/NaN the whole axis */
    size_t bin, channels;   /* expected */
    double start;           /* expected energy_start */
    const char *why;
} energy_case;

static void test_options_fit_energy(void **state)
{
    (void)state;
    static const energy_case cases[] = {
        {NAN, NAN, 7, 144, 350.0, "1024 into the budget of 160: bin 7, 146 → 160 needs 1120 > 1024, so 144"},
        {446.0, 492.0, 1, 96, 446.0, "channels 192 … 284, 93: up to 96, the range grows at its top end"},
        {820.0, 861.5, 1, 96, 814.0, "channels 940 … 1023, 84: 96 does not fit above, so from 1024 − 96 = 928"},
        {820.0, 900.0, 1, 96, 814.0, "the same window sticking out past the axis: clipped, the same"},
        {300.0, 400.0, 1, 112, 350.0, "clipped below to channels 0 … 100, 101 → 112"},
        {400.0, 639.5, 3, 160, 400.0, "channels 100 … 579, 480: bin 3 into exactly 160"},
        {400.0, 640.0, 4, 128, 400.0, "481 channels: ⌈481/160⌉ = 4, 120 → 128 (512 channels from 400 eV fit)"},
    };
    eelsvae_model_options o;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const energy_case *e = &cases[k];
        if (fit_fast(24, 24, 0, e->lo, e->hi, &o) != EELSVAE_OK) fail_msg("%s: %s", e->why, eelsvae_last_error());
        if (o.energy_bin != e->bin || o.energy_channels != e->channels || fabs(o.energy_start - e->start) > 1e-9)
            fail_msg("%s: got bin %zu, %zu channels from %g eV", e->why, o.energy_bin, o.energy_channels,
                     o.energy_start);
    }
    /* the paper's budget (1312) holds the whole axis unbinned */
    eelsvae_cube *c = axis_cube(24, 24, 1024, 350.0, 0.5);
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_PAPER));
    assert_ok(eelsvae_model_options_fit(&o, c, NAN, NAN));
    assert_int_equal(o.energy_bin, 1);
    assert_int_equal(o.energy_channels, 1024);
    assert_close(o.energy_start, 350.0, 1e-9, 0);

    /* a window off the axis: RANGE; the options untouched */
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    assert_status(eelsvae_model_options_fit(&o, c, 900.0, 950.0), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_model_options_fit(&o, c, 100.0, 200.0), EELSVAE_ERR_RANGE);
    assert_int_equal(o.energy_channels, 160);
    assert_int_equal(o.tile, 24);
    /* one NaN end, or an empty range: INVALID_ARGUMENT */
    assert_status(eelsvae_model_options_fit(&o, c, NAN, 500.0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_options_fit(&o, c, 400.0, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_options_fit(&o, c, 500.0, 400.0), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_options_fit(NULL, c, NAN, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_model_options_fit(&o, NULL, NAN, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    /* an invalid architecture to start from */
    o.latent = 0;
    assert_status(eelsvae_model_options_fit(&o, c, NAN, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(c);

    /* 20 channels: 32 does not fit, so 16 */
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    c = axis_cube(24, 24, 20, 100.0, 1.0);
    assert_ok(eelsvae_model_options_fit(&o, c, NAN, NAN));
    assert_int_equal(o.energy_bin, 1);
    assert_int_equal(o.energy_channels, 16);
    assert_close(o.energy_start, 100.0, 1e-9, 0);
    eelsvae_cube_free(c);
    /* 10 channels: fewer than the energy strides' 16 — RANGE naming 16 */
    c = axis_cube(24, 24, 10, 100.0, 1.0);
    assert_status(eelsvae_model_options_fit(&o, c, NAN, NAN), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "16"));
    assert_int_equal(o.energy_channels, 16); /* unchanged by the failure */
    eelsvae_cube_free(c);
}

/* The energy budget need not be a multiple of the strides: a range of 150
 * channels with a budget of 150 is rounded down to 144, not refused. */
static void test_options_fit_budget_not_multiple(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    o.energy_channels = 150;
    eelsvae_cube *c = axis_cube(24, 24, 1024, 350.0, 0.5);
    /* 350 … 424.5 eV = 150 channels: bin 1; 160 exceeds the budget, so 144 */
    eelsvae_status st = eelsvae_model_options_fit(&o, c, 350.0, 424.5);
    eelsvae_cube_free(c);
    assert_ok(st);
    assert_int_equal(o.energy_bin, 1);
    assert_int_equal(o.energy_channels, 144);
    assert_close(o.energy_start, 350.0, 1e-9, 0);
}

/* An uncalibrated energy axis is refused (RANGE, naming the fix), even for
 * the whole axis: channel numbers must not be recorded as eV. */
static void test_options_fit_uncalibrated(void **state)
{
    (void)state;
    eelsvae_model_options o;
    assert_ok(eelsvae_model_options_init(&o, EELSVAE_PRESET_FAST));
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_create(24, 24, 200, &c));
    assert_status(eelsvae_model_options_fit(&o, c, 10.0, 100.0), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_model_options_fit(&o, c, NAN, NAN), EELSVAE_ERR_RANGE);
    eelsvae_cube_free(c);
}

/* A caller whose struct ends before energy_bin: nothing past its struct_size
 * is written, by init or by fit, and a range that needs binning is refused. */
static void test_options_fit_short_struct(void **state)
{
    (void)state;
    struct {
        eelsvae_model_options o;
        unsigned char canary[64];
    } buf;
    const size_t short_size = offsetof(eelsvae_model_options, energy_bin);
    memset(&buf, 0xA5, sizeof buf);
    assert_ok(eelsvae_model_options_init_sized(&buf.o, EELSVAE_PRESET_FAST, short_size));
    const unsigned char *bytes = (const unsigned char *)&buf;
    for (size_t i = short_size; i < sizeof buf; i++)
        if (bytes[i] != 0xA5) fail_msg("init wrote byte %zu past struct_size %zu", i, short_size);
    eelsvae_cube *c = axis_cube(49, 6, 1024, 350.0, 0.5);
    assert_ok(eelsvae_model_options_fit(&buf.o, c, 446.0, 492.0));
    assert_int_equal(buf.o.struct_size, short_size);
    assert_int_equal(buf.o.tile, 4);
    assert_int_equal(buf.o.energy_channels, 96);
    assert_close(buf.o.energy_start, 446.0, 1e-9, 0);
    for (size_t i = short_size; i < sizeof buf; i++)
        if (bytes[i] != 0xA5) fail_msg("fit wrote byte %zu past struct_size %zu", i, short_size);
    /* a range that needs binning is refused: the caller's struct cannot say
     * energy_bin, so a model made from it would read unbinned channels */
    eelsvae_model_options before = buf.o;
    assert_status(eelsvae_model_options_fit(&buf.o, c, NAN, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "energy_bin"));
    assert_memory_equal(&buf.o, &before, short_size);
    for (size_t i = short_size; i < sizeof buf; i++)
        if (bytes[i] != 0xA5) fail_msg("fit wrote byte %zu past struct_size %zu", i, short_size);
    eelsvae_cube_free(c);
}

/* ---- energy binning through a model --------------------------------------------------------------- */

/* The tiny network reading 2·32 channels from 695 eV, summed in pairs. */
static eelsvae_model *binned_tiny_model(uint64_t seed)
{
    eelsvae_model_options o;
    assert_ok(tu_tiny_model_options(&o));
    o.energy_bin = 2;
    eelsvae_model *m = NULL;
    assert_ok(eelsvae_model_create(&o, seed, &m));
    return m;
}

static void test_energy_bin_model(void **state)
{
    (void)state;
    /* 686 … 770 eV at 1 eV: holds 695 … 758 eV, the 64 channels the model reads */
    eelsvae_cube *cube = synth(24, 24, 686.0, 770.0, 1.0, 1000.0, 51);
    eelsvae_model *m = binned_tiny_model(5);
    eelsvae_model_options got;
    assert_ok(eelsvae_model_options_get(m, &got));
    assert_int_equal(got.energy_bin, 2);
    assert_int_equal(got.energy_channels, E);

    eelsvae_train_options t;
    train_options(&t, 1);
    const eelsvae_cube *cubes[1] = {cube};
    assert_ok(eelsvae_model_train(m, cubes, NULL, 1, &t));

    eelsvae_cube *prep = NULL;
    assert_ok(eelsvae_model_prepare(m, cube, &prep));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(prep, &ny, &nx, &ne);
    assert_int_equal(ny, 24);
    assert_int_equal(nx, 24);
    assert_int_equal(ne, E);
    double off = 0, scale = 0;
    assert_ok(eelsvae_cube_axis(prep, EELSVAE_AXIS_E, &off, &scale, NULL));
    assert_close(off, E_START + 0.5, 1e-9, 0); /* first channel + (bin − 1)/2 · 1 eV */
    assert_close(scale, 2.0, 1e-12, 0);

    /* the oracle: crop 64 channels, sum in pairs, the paper chain with its
     * own percentiles — the training's scaling, as training saw the same
     * binned cube */
    eelsvae_cube *crop = NULL, *binned = NULL;
    assert_ok(eelsvae_cube_crop_energy(cube, E_START, E_START + 2 * E - 1, &crop));
    eelsvae_cube_shape(crop, NULL, NULL, &ne);
    assert_int_equal(ne, 2 * E);
    assert_ok(eelsvae_cube_bin_energy(crop, 2, &binned));
    eelsvae_preprocess_options pre;
    assert_ok(eelsvae_preprocess_options_init(&pre, EELSVAE_PRESET_PAPER));
    assert_ok(eelsvae_cube_preprocess(binned, &pre, NULL, NULL));
    const float *a = eelsvae_cube_data_const(prep), *b = eelsvae_cube_data_const(binned);
    for (size_t i = 0; i < 24 * 24 * E; i++) assert_close(a[i], b[i], 1e-6, 1e-6);
    /* the recorded grid is the first channel read, before binning */
    assert_close(m->transform.energy_offset, E_START, 1e-9, 0);
    assert_close(m->transform.dispersion, 1.0, 0, 0);

    /* save, load: energy_bin survives and prepare gives the same bits */
    const char *path = tu_path("binned.evm");
    assert_ok(eelsvae_model_save(m, path, 0));
    eelsvae_model *back = NULL;
    assert_ok(eelsvae_model_load(path, &back));
    memset(&got, 0, sizeof got);
    assert_ok(eelsvae_model_options_get(back, &got));
    assert_int_equal(got.energy_bin, 2);
    assert_true(same_params(m, back));
    eelsvae_cube *prep_back = NULL;
    assert_ok(eelsvae_model_prepare(back, cube, &prep_back));
    assert_memory_equal(eelsvae_cube_data_const(prep_back), a, 24 * 24 * E * sizeof(float));

    /* the standard 686 … 737 eV cube holds 43 of the 64 channels: RANGE */
    eelsvae_cube *short_cube = train_cube(52), *none = NULL;
    assert_status(eelsvae_model_prepare(m, short_cube, &none), EELSVAE_ERR_RANGE);
    assert_null(none);
    eelsvae_model *fresh = binned_tiny_model(5);
    const eelsvae_cube *c_short[1] = {short_cube};
    assert_status(eelsvae_model_train(fresh, c_short, NULL, 1, &t), EELSVAE_ERR_RANGE);

    /* energy_bin must lie in 1 … 4096 */
    eelsvae_model_options o;
    eelsvae_model *bad = NULL;
    assert_ok(tu_tiny_model_options(&o));
    o.energy_bin = 0;
    assert_status(eelsvae_model_create(&o, 1, &bad), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_non_null(strstr(eelsvae_last_error(), "energy_bin"));
    o.energy_bin = 4097;
    assert_status(eelsvae_model_create(&o, 1, &bad), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(bad);

    eelsvae_model_free(fresh);
    eelsvae_cube_free(short_cube);
    eelsvae_cube_free(prep_back);
    eelsvae_model_free(back);
    eelsvae_cube_free(crop);
    eelsvae_cube_free(binned);
    eelsvae_cube_free(prep);
    eelsvae_model_free(m);
    eelsvae_cube_free(cube);
}

/* ---- min_steps and min_tiles ------------------------------------------------------------------------ */

/* What the progress callback saw. */
typedef struct seen {
    size_t calls, epochs, batches, last_epoch;
    int epochs_changed, batches_changed;
} seen;

static int watch(void *user, const eelsvae_train_progress *p)
{
    seen *s = user;
    if (s->calls && p->epochs != s->epochs) s->epochs_changed = 1;
    if (s->calls && p->batches != s->batches) s->batches_changed = 1;
    s->calls++;
    s->epochs = p->epochs;
    s->batches = p->batches;
    s->last_epoch = p->epoch;
    return 0;
}

/* Train a fresh tiny model on one cube; the callback's record. */
static seen train_watched(const eelsvae_cube *cube, eelsvae_train_options *t, eelsvae_model **keep)
{
    seen s;
    memset(&s, 0, sizeof s);
    t->progress = watch;
    t->progress_user = &s;
    eelsvae_model *m = tu_tiny_model(5);
    const eelsvae_cube *cubes[1] = {cube};
    assert_ok(eelsvae_model_train(m, cubes, NULL, 1, t));
    assert_false(s.epochs_changed);
    assert_false(s.batches_changed);
    if (keep) *keep = m;
    else eelsvae_model_free(m);
    return s;
}

static void test_min_steps(void **state)
{
    (void)state;
    eelsvae_train_options t;
    assert_ok(eelsvae_train_options_init(&t, EELSVAE_PRESET_FAST));
    assert_int_equal(t.min_steps, 0);
    assert_int_equal(t.min_tiles, 64);
    assert_ok(eelsvae_train_options_init(&t, EELSVAE_PRESET_PAPER));
    assert_int_equal(t.min_steps, 0);
    assert_int_equal(t.min_tiles, 64);

    /* one 24 × 24 cube at stride 4: 25 tiles, ⌊2.5⌋ = 2 held out, 23 in ⌈23/4⌉ = 6 batches */
    eelsvae_cube *cube = train_cube(61);
    train_options(&t, 1);
    seen s = train_watched(cube, &t, NULL);
    assert_int_equal(s.batches, 6);
    assert_int_equal(s.epochs, 1);
    assert_int_equal(s.calls, 6);

    /* 20 steps: ⌈20/6⌉ = 4 epochs, all run */
    train_options(&t, 1);
    t.min_steps = 20;
    eelsvae_model *m = NULL;
    s = train_watched(cube, &t, &m);
    assert_int_equal(s.batches, 6);
    assert_int_equal(s.epochs, 4);
    assert_int_equal(s.last_epoch, 4);
    assert_int_equal(s.calls, 24);
    assert_int_equal(m->state.epochs_done, 4);
    /* asked again, it is done: nothing runs */
    seen again;
    memset(&again, 0, sizeof again);
    t.progress_user = &again;
    const eelsvae_cube *cubes[1] = {cube};
    assert_ok(eelsvae_model_train(m, cubes, NULL, 1, &t));
    assert_int_equal(again.calls, 0);
    eelsvae_model_free(m);

    /* a multiple of the batches: 18 = 3 · 6 */
    train_options(&t, 1);
    t.min_steps = 18;
    s = train_watched(cube, &t, NULL);
    assert_int_equal(s.epochs, 3);
    assert_int_equal(s.calls, 18);
    /* fewer steps than the epochs give: the epochs stand */
    train_options(&t, 2);
    t.min_steps = 7;
    s = train_watched(cube, &t, NULL);
    assert_int_equal(s.epochs, 2);
    assert_int_equal(s.calls, 12);
    train_options(&t, 2);
    t.min_steps = 13; /* ⌈13/6⌉ = 3 > 2 */
    s = train_watched(cube, &t, NULL);
    assert_int_equal(s.epochs, 3);
    /* 0: exactly the epochs */
    train_options(&t, 2);
    t.min_steps = 0;
    s = train_watched(cube, &t, NULL);
    assert_int_equal(s.epochs, 2);
    assert_int_equal(s.calls, 12);
    eelsvae_cube_free(cube);
}

/* Tiles per epoch (batch 1, no validation) of one cube at stride and min_tiles. */
static size_t tiles_with(const eelsvae_cube *cube, size_t stride, size_t min_tiles)
{
    eelsvae_train_options t;
    train_options(&t, 1);
    t.batch = 1;
    t.validation_fraction = 0;
    t.tile_stride = stride;
    t.min_tiles = min_tiles;
    seen s = train_watched(cube, &t, NULL);
    assert_int_equal(s.calls, s.batches);
    return s.batches;
}

/* The largest stride ≤ `stride` whose tiling of ny × nx gives min_tiles (down to 1): the oracle. */
static size_t expected_tiles(size_t ny, size_t nx, size_t stride, size_t min_tiles)
{
    size_t ty = 0, tx = 0;
    for (;; stride--) {
        assert_ok(eelsvae_tiling(ny, nx, T, stride, &ty, &tx));
        if (ty * tx >= min_tiles || stride == 1) return ty * tx;
    }
}

/* ---- outlier mode ---------------------------------------------------------------- */

#define SELF_N 32 /* the SI's side */

/* A tiny SI with ≈ 11 % of its pixels anomalous: four disks of radius 3
 * whose 690 … 730 eV part is shifted by 1.5 eV (weak enough that a model
 * trained on it learns part of it); *truth gets the disks. */
static eelsvae_cube *anomalous_si(uint8_t *truth)
{
    eelsvae_cube *si = tu_tiny_train_cube(SELF_N, 51);
    assert_ok(eelsvae_disk_mask(SELF_N, SELF_N, 4, 3.0, 8.0, 52, truth, NULL));
    assert_ok(eelsvae_cube_inject_shift(si, truth, SELF_N * SELF_N, 690.0, 730.0, 1.5));
    return si;
}

/* ROC-AUC on `si` of the PCC score map of a tiny model trained on `train_on`. */
static double trained_auc(const eelsvae_cube *train_on, const eelsvae_cube *si, const uint8_t *truth,
                          double outlier_cut)
{
    eelsvae_model *m = tu_tiny_model(53);
    eelsvae_train_options t;
    train_options(&t, 30);
    t.learning_rate = 1e-2;
    t.outlier_cut = outlier_cut;
    const eelsvae_cube *cubes[1] = {train_on};
    assert_ok(eelsvae_model_train(m, cubes, NULL, 1, &t));
    eelsvae_cube *prep = NULL, *rec = NULL;
    assert_ok(eelsvae_model_prepare(m, si, &prep));
    assert_ok(eelsvae_model_reconstruct(m, prep, T / 2, &rec));
    eelsvae_scorer_options so;
    assert_ok(eelsvae_scorer_options_init(&so));
    eelsvae_scorer *scorer = NULL;
    assert_ok(eelsvae_scorer_create(&so, &scorer));
    float scores[SELF_N * SELF_N];
    assert_ok(eelsvae_scorer_score(scorer, prep, rec, scores, SELF_N * SELF_N, NULL));
    double auc = 0.0;
    assert_ok(eelsvae_roc_auc(scores, truth, SELF_N * SELF_N, eelsvae_scorer_direction(scorer), &auc));
    eelsvae_scorer_free(scorer);
    eelsvae_cube_free(rec);
    eelsvae_cube_free(prep);
    eelsvae_model_free(m);
    return auc;
}

/* Trained on the very SI it scores, a model learns part of its anomalies
 * and scores them less apart than one trained on the clean twin (measured:
 * ROC-AUC 0.967 against 0.999); outlier mode leaves them out of the loss
 * after the warm-up and comes back to the clean twin's (measured 0.9985).
 * Asked: at least 0.02 above the mode off, within 0.005 of the clean twin. */
static void test_outlier_mode_keeps_anomalies_unlearnt(void **state)
{
    (void)state;
    uint8_t truth[SELF_N * SELF_N];
    eelsvae_cube *si = anomalous_si(truth), *clean = tu_tiny_train_cube(SELF_N, 51);
    size_t anomalous = 0;
    for (size_t p = 0; p < SELF_N * SELF_N; p++) anomalous += truth[p];
    assert_true(anomalous > SELF_N * SELF_N / 12);
    double twin = trained_auc(clean, si, truth, 0.0);
    double off = trained_auc(si, si, truth, 0.0), on = trained_auc(si, si, truth, 3.0);
    print_message("%zu anomalous pixels (%.1f %%): ROC-AUC %.4f trained on the clean twin, on the SI itself %.4f "
                  "without outlier mode, %.4f with it\n",
                  anomalous, 100.0 * (double)anomalous / (SELF_N * SELF_N), twin, off, on);
    assert_true(on >= off + 0.02);
    assert_true(on >= twin - 0.005);
    eelsvae_cube_free(clean);
    eelsvae_cube_free(si);
}

static void test_min_tiles(void **state)
{
    (void)state;
    /* an 8 × 24 line: at stride 8 only 3 tiles (x 0, 8, 16) */
    eelsvae_cube *line = synth(8, 24, 686.0, 737.0, 1.0, 1000.0, 71);
    assert_int_equal(tiles_with(line, 8, 0), 3);
    assert_int_equal(tiles_with(line, 8, 3), 3);    /* enough already */
    assert_int_equal(tiles_with(line, 0, 0), 3);    /* stride 0: the tile */
    assert_int_equal(tiles_with(line, 100, 0), 3);  /* more than the tile: the tile */
    /* 8 asked for: strides 7 … 3 give 4, 4, 5, 5, 7; stride 2 gives 9 (x 0, 2, … 16) */
    assert_int_equal(expected_tiles(8, 24, 8, 8), 9);
    assert_int_equal(tiles_with(line, 8, 8), 9);
    assert_int_equal(tiles_with(line, 8, 5), expected_tiles(8, 24, 8, 5)); /* stride 5: 5 */
    assert_int_equal(tiles_with(line, 8, 5), 5);
    /* more than stride 1 gives: stride 1, all 17 */
    assert_int_equal(tiles_with(line, 8, 64), 17);
    assert_int_equal(tiles_with(line, 0, 1000), 17);
    eelsvae_cube_free(line);
    /* a 24 × 24 cube at stride 8 (9 tiles), 64 wanted: stride 2 gives 9² = 81 */
    eelsvae_cube *square = train_cube(72);
    assert_int_equal(tiles_with(square, 8, 0), 9);
    assert_int_equal(expected_tiles(24, 24, 8, 64), 81);
    assert_int_equal(tiles_with(square, 8, 64), 81);
    eelsvae_cube_free(square);
    /* a scan smaller than the tile: still DIMENSION, naming the fit */
    eelsvae_cube *small = synth(6, 30, 686.0, 737.0, 1.0, 1000.0, 73);
    eelsvae_model *m = tu_tiny_model(5);
    eelsvae_train_options t;
    train_options(&t, 1);
    t.min_tiles = 64;
    const eelsvae_cube *cubes[1] = {small};
    assert_status(eelsvae_model_train(m, cubes, NULL, 1, &t), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_model_options_fit"));
    eelsvae_model_free(m);
    eelsvae_cube_free(small);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_presets),
        cmocka_unit_test(test_create),
        cmocka_unit_test(test_training_reduces_loss),
        cmocka_unit_test(test_validation_loss_falls),
        cmocka_unit_test(test_cancel_and_resume_mid_epoch),
        cmocka_unit_test(test_determinism),
        cmocka_unit_test(test_determinism_two_threads),
        cmocka_unit_test(test_train_arguments),
        cmocka_unit_test(test_divergence),
        cmocka_unit_test(test_exclusion),
        cmocka_unit_test(test_save_load_round_trip),
        cmocka_unit_test(test_checkpoint_resume),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_prepare),
        cmocka_unit_test(test_joint_scaling),
        cmocka_unit_test(test_reconstruct_encode_decode),
        cmocka_unit_test(test_reconstruct_strided),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_options_fit_tile),
        cmocka_unit_test(test_options_fit_tile_not_divisible),
        cmocka_unit_test(test_options_fit_energy),
        cmocka_unit_test(test_options_fit_budget_not_multiple),
        cmocka_unit_test(test_options_fit_uncalibrated),
        cmocka_unit_test(test_options_fit_short_struct),
        cmocka_unit_test(test_energy_bin_model),
        cmocka_unit_test(test_min_steps),
        cmocka_unit_test(test_min_tiles),
        cmocka_unit_test(test_outlier_mode_keeps_anomalies_unlearnt),
        cmocka_unit_test(test_outlier_mode_resume),
    };
    /* One thread: the tiny network's work is too small to share, and the
     * machines running the tests are often busy. */
    eelsvae_set_threads(1);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
