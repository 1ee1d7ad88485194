/* The options structs across library versions: a program compiled against an
 * older, shorter struct (simulated here by a prefix of the current one, with
 * canary bytes right after it) must have only its own bytes written by the
 * _init_sized()/_get_sized() functions and by eelsvae_model_estimate_memory(),
 * and its short struct must work in the consuming function, the fields it
 * lacks taking their defaults: the result is bit-identical to that of the
 * full struct with the same values. */
#include <math.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

#define CANARY 0xA5
#define GUARD 64
#define EXTRA_TAIL 40 /* a newer caller's fields past today's struct */

/* An old caller's struct followed directly by canary bytes. */
#define GUARDED(T)                                                                                               \
    struct {                                                                                                     \
        T opt;                                                                                                   \
        unsigned char canary[GUARD];                                                                             \
    }

static void assert_canary(const unsigned char *bytes, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (bytes[i] != CANARY) fail_msg("byte %zu past the caller's struct was overwritten (0x%02x)", i, bytes[i]);
}

static void assert_message_names(const char *word)
{
    if (!strstr(eelsvae_last_error(), word))
        fail_msg("message \"%s\" does not name %s", eelsvae_last_error(), word);
}

/* ---- the old callers' structs: prefixes of today's, field for field ----------- */

typedef struct old_preprocess {
    size_t struct_size;
    double sigma[3];
    double percentile_lo;
    double percentile_hi;
} old_preprocess;
_Static_assert(sizeof(old_preprocess) == offsetof(eelsvae_preprocess_options, use_fixed_scaling), "prefix");
_Static_assert(offsetof(old_preprocess, percentile_hi) == offsetof(eelsvae_preprocess_options, percentile_hi), "");

typedef struct old_synth {
    size_t struct_size;
    size_t ny;
    size_t nx;
    double energy_start;
    double energy_end;
    double dispersion;
    uint64_t seed;
} old_synth;
_Static_assert(sizeof(old_synth) == offsetof(eelsvae_synth_options, dose), "prefix");
_Static_assert(offsetof(old_synth, seed) == offsetof(eelsvae_synth_options, seed), "");

typedef struct old_pca {
    size_t struct_size;
    size_t components;
} old_pca;
_Static_assert(sizeof(old_pca) == offsetof(eelsvae_pca_options, center), "prefix");

typedef struct old_scorer {
    size_t struct_size;
    eelsvae_score_kind kind;
} old_scorer;
_Static_assert(sizeof(old_scorer) == offsetof(eelsvae_scorer_options, window_lo), "prefix");
_Static_assert(offsetof(old_scorer, kind) == offsetof(eelsvae_scorer_options, kind), "");

typedef struct old_model {
    size_t struct_size;
    size_t tile;
    size_t energy_channels;
    double energy_start;
} old_model;
_Static_assert(sizeof(old_model) == offsetof(eelsvae_model_options, conv_layers), "prefix");
_Static_assert(offsetof(old_model, energy_start) == offsetof(eelsvae_model_options, energy_start), "");

typedef struct old_train {
    size_t struct_size;
    size_t epochs;
    size_t batch;
} old_train;
_Static_assert(sizeof(old_train) == offsetof(eelsvae_train_options, learning_rate), "prefix");

/* The previous release's structs: today's less the trailing fields added since
 * (pca.h trim_fraction; model.h energy_bin, min_tiles, min_steps, outlier_cut). A program
 * built against that release passes these sizes. */
typedef struct prev_pca {
    size_t struct_size;
    size_t components;
    int center;
    int poisson_normalize;
    uint64_t seed;
    double tolerance;
    size_t max_iterations;
} prev_pca;
_Static_assert(sizeof(prev_pca) == offsetof(eelsvae_pca_options, trim_fraction), "prefix");
_Static_assert(offsetof(prev_pca, max_iterations) == offsetof(eelsvae_pca_options, max_iterations), "");

typedef struct prev_model {
    size_t struct_size;
    size_t tile;
    size_t energy_channels;
    double energy_start;
    size_t conv_layers;
    eelsvae_conv_spec conv[EELSVAE_MAX_CONV_LAYERS];
    size_t hidden;
    size_t latent;
    double beta;
    eelsvae_loss_kind loss;
} prev_model;
_Static_assert(sizeof(prev_model) == offsetof(eelsvae_model_options, energy_bin), "prefix");
_Static_assert(offsetof(prev_model, loss) == offsetof(eelsvae_model_options, loss), "");

typedef struct prev_train {
    size_t struct_size;
    size_t epochs;
    size_t batch;
    double learning_rate;
    double validation_fraction;
    double clip_norm;
    size_t plateau_patience;
    size_t early_stop_patience;
    size_t tile_stride;
    uint64_t seed;
    const eelsvae_preprocess_options *preprocess;
    const char *checkpoint_path;
    size_t checkpoint_every;
    eelsvae_train_progress_fn progress;
    void *progress_user;
} prev_train;
_Static_assert(sizeof(prev_train) == offsetof(eelsvae_train_options, min_tiles), "prefix");
_Static_assert(offsetof(prev_train, progress_user) == offsetof(eelsvae_train_options, progress_user), "");
_Static_assert(offsetof(eelsvae_train_options, min_steps) > offsetof(eelsvae_train_options, min_tiles), "");
_Static_assert(offsetof(eelsvae_train_options, outlier_cut) > offsetof(eelsvae_train_options, min_steps), "");

typedef struct old_estimate {
    size_t struct_size;
    size_t parameters;
    size_t parameter_bytes;
} old_estimate;
_Static_assert(sizeof(old_estimate) == offsetof(eelsvae_memory_estimate, gradient_bytes), "prefix");

/* ---- fixtures -------------------------------------------------------------- */

/* Raw counts from 500 to 760 eV at 2 eV per channel: every default edge
 * (O K 532 eV, Fe L3/L2 709.5/722.5 eV) and the 690–730 eV window on axis. */
static eelsvae_cube *small_si(uint64_t seed)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = 6;
    s.nx = 6;
    s.energy_start = 500.0;
    s.energy_end = 760.0;
    s.dispersion = 2.0;
    s.seed = seed;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&s, &c, NULL));
    return c;
}

static void assert_same_cubes(eelsvae_cube *a, eelsvae_cube *b)
{
    size_t ny = 0, nx = 0, ne = 0, my = 0, mx = 0, me = 0;
    eelsvae_cube_shape(a, &ny, &nx, &ne);
    eelsvae_cube_shape(b, &my, &mx, &me);
    assert_true(ny == my && nx == mx && ne == me);
    assert_memory_equal(eelsvae_cube_data(a), eelsvae_cube_data(b), ny * nx * ne * sizeof(float));
}

/* ---- each init with an old caller's size ------------------------------------ */

static void test_preprocess(void **state)
{
    (void)state;
    GUARDED(old_preprocess) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_preprocess_options *as_new = (eelsvae_preprocess_options *)(void *)&box.opt;
    assert_ok(eelsvae_preprocess_options_init_sized(as_new, EELSVAE_PRESET_PAPER, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    /* the paper's chain (cube.h): σ = 0.5 on every axis, percentiles 1 and 99 */
    for (int a = 0; a < 3; a++) assert_true(box.opt.sigma[a] == 0.5);
    assert_true(box.opt.percentile_lo == 1.0 && box.opt.percentile_hi == 99.0);

    /* The old struct with one field changed against the full one with the same. */
    box.opt.percentile_hi = 95.0;
    eelsvae_preprocess_options full;
    assert_ok(eelsvae_preprocess_options_init(&full, EELSVAE_PRESET_PAPER));
    full.percentile_hi = 95.0;
    eelsvae_cube *a = small_si(3), *b = small_si(3), *c = small_si(3);
    double lo_a = 0, hi_a = 0, lo_b = 0, hi_b = 0, lo_c = 0, hi_c = 0;
    assert_ok(eelsvae_cube_preprocess(a, as_new, &lo_a, &hi_a));
    assert_ok(eelsvae_cube_preprocess(b, &full, &lo_b, &hi_b));
    assert_true(lo_a == lo_b && hi_a == hi_b);
    assert_same_cubes(a, b);
    /* and the field the old caller set was read: the 99th percentile is higher */
    full.percentile_hi = 99.0;
    assert_ok(eelsvae_cube_preprocess(c, &full, &lo_c, &hi_c));
    assert_true(hi_c > hi_a);
    assert_canary(box.canary, GUARD);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
    eelsvae_cube_free(c);
}

static void test_synth(void **state)
{
    (void)state;
    GUARDED(old_synth) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_synth_options *as_new = (eelsvae_synth_options *)(void *)&box.opt;
    assert_ok(eelsvae_synth_options_init_sized(as_new, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    /* the documented defaults (cube.h) */
    assert_int_equal(box.opt.ny, 192);
    assert_int_equal(box.opt.nx, 192);
    assert_true(box.opt.energy_start == 420.0 && box.opt.energy_end == 820.0 && box.opt.dispersion == 0.3);
    assert_int_equal(box.opt.seed, 1);

    /* small_si() sets the same fields on a full struct: the same bits. */
    box.opt.ny = 6;
    box.opt.nx = 6;
    box.opt.energy_start = 500.0;
    box.opt.energy_end = 760.0;
    box.opt.dispersion = 2.0;
    box.opt.seed = 9;
    eelsvae_cube *old_counts = NULL;
    assert_ok(eelsvae_synth_generate(as_new, &old_counts, NULL));
    eelsvae_cube *new_counts = small_si(9);
    assert_same_cubes(old_counts, new_counts);
    assert_canary(box.canary, GUARD);
    eelsvae_cube_free(old_counts);
    eelsvae_cube_free(new_counts);
}

static void test_pca(void **state)
{
    (void)state;
    GUARDED(old_pca) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_pca_options *as_new = (eelsvae_pca_options *)(void *)&box.opt;
    assert_ok(eelsvae_pca_options_init_sized(as_new, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_int_equal(box.opt.components, 4); /* pca.h's default */

    box.opt.components = 2;
    eelsvae_pca_options full;
    assert_ok(eelsvae_pca_options_init(&full));
    full.components = 2;
    eelsvae_cube *cube = tu_random_cube(6, 6, 20, 17);
    eelsvae_pca *a = NULL, *b = NULL;
    assert_ok(eelsvae_pca_fit(cube, as_new, &a));
    assert_ok(eelsvae_pca_fit(cube, &full, &b));
    size_t ka = 0, nea = 0, kb = 0, neb = 0;
    eelsvae_pca_shape(a, &ka, &nea);
    eelsvae_pca_shape(b, &kb, &neb);
    assert_int_equal(ka, 2);
    assert_true(kb == 2 && nea == 20 && neb == 20);
    assert_memory_equal(eelsvae_pca_components(a), eelsvae_pca_components(b), 2 * 20 * sizeof(float));
    double ra[2] = {0, 0}, rb[2] = {0, 0};
    assert_ok(eelsvae_pca_explained_variance_ratio(a, ra, 2));
    assert_ok(eelsvae_pca_explained_variance_ratio(b, rb, 2));
    assert_memory_equal(ra, rb, sizeof ra);
    assert_canary(box.canary, GUARD);
    eelsvae_pca_free(a);
    eelsvae_pca_free(b);
    eelsvae_cube_free(cube);
}

static void test_scorer(void **state)
{
    (void)state;
    GUARDED(old_scorer) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_scorer_options *as_new = (eelsvae_scorer_options *)(void *)&box.opt;
    assert_ok(eelsvae_scorer_options_init_sized(as_new, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_int_equal(box.opt.kind, EELSVAE_SCORE_PCC); /* score.h's default */

    /* MSE over the default window (NaN … NaN: the whole axis), which the old struct lacks */
    box.opt.kind = EELSVAE_SCORE_MSE;
    eelsvae_scorer_options full;
    assert_ok(eelsvae_scorer_options_init(&full));
    full.kind = EELSVAE_SCORE_MSE;
    eelsvae_scorer *a = NULL, *b = NULL;
    assert_ok(eelsvae_scorer_create(as_new, &a));
    assert_ok(eelsvae_scorer_create(&full, &b));
    assert_int_equal(eelsvae_scorer_direction(a), EELSVAE_ANOMALOUS_ABOVE);
    eelsvae_cube *x = small_si(4), *y = small_si(5);
    float sa[36], sb[36];
    assert_ok(eelsvae_scorer_score(a, x, y, sa, 36, NULL));
    assert_ok(eelsvae_scorer_score(b, x, y, sb, 36, NULL));
    assert_memory_equal(sa, sb, sizeof sa);
    assert_true(sa[0] > 0.0f); /* two different noisy SIs */
    /* the whole axis, 500 … 760 eV, not the paper's 690–730 eV */
    eelsvae_scorer *whole = NULL, *paper = NULL;
    full.window_lo = 500.0, full.window_hi = 760.0;
    assert_ok(eelsvae_scorer_create(&full, &whole));
    full.window_lo = 690.0, full.window_hi = 730.0;
    assert_ok(eelsvae_scorer_create(&full, &paper));
    assert_ok(eelsvae_scorer_score(whole, x, y, sb, 36, NULL));
    assert_memory_equal(sa, sb, sizeof sa);
    assert_ok(eelsvae_scorer_score(paper, x, y, sb, 36, NULL));
    assert_true(memcmp(sa, sb, sizeof sa) != 0);
    assert_canary(box.canary, GUARD);
    eelsvae_scorer_free(whole);
    eelsvae_scorer_free(paper);
    eelsvae_scorer_free(a);
    eelsvae_scorer_free(b);
    eelsvae_cube_free(x);
    eelsvae_cube_free(y);
}

static void test_model_options(void **state)
{
    (void)state;
    GUARDED(old_model) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_model_options *as_new = (eelsvae_model_options *)(void *)&box.opt;
    assert_ok(eelsvae_model_options_init_sized(as_new, EELSVAE_PRESET_PAPER, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    /* the paper's (model.h): T = 24, E = 1312 from 420 eV */
    assert_int_equal(box.opt.tile, 24);
    assert_int_equal(box.opt.energy_channels, 1312);
    assert_true(box.opt.energy_start == 420.0);

    /* The consumer fills what the old struct lacks with the paper preset's. */
    eelsvae_model_options full;
    assert_ok(eelsvae_model_options_init(&full, EELSVAE_PRESET_PAPER));
    eelsvae_memory_estimate ea, eb;
    memset(&ea, 0, sizeof ea);
    memset(&eb, 0, sizeof eb);
    ea.struct_size = sizeof ea;
    eb.struct_size = sizeof eb;
    assert_ok(eelsvae_model_estimate_memory(as_new, 4, &ea));
    assert_ok(eelsvae_model_estimate_memory(&full, 4, &eb));
    assert_memory_equal(&ea, &eb, sizeof ea);
    assert_true(ea.parameters > 0 && ea.total_bytes > ea.parameter_bytes);
    assert_canary(box.canary, GUARD);
}

static void test_model_options_get(void **state)
{
    (void)state;
    eelsvae_model *m = tu_tiny_model(1);
    GUARDED(old_model) box;
    memset(&box, CANARY, sizeof box);
    assert_ok(eelsvae_model_options_get_sized(m, (eelsvae_model_options *)(void *)&box.opt, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_int_equal(box.opt.tile, 8);
    assert_int_equal(box.opt.energy_channels, 32);
    assert_true(box.opt.energy_start == 695.0);

    /* The macro: the whole struct, struct_size the caller's sizeof. */
    eelsvae_model_options got, want;
    memset(&got, CANARY, sizeof got);
    assert_ok(eelsvae_model_options_get(m, &got));
    assert_ok(tu_tiny_model_options(&want));
    assert_int_equal(got.struct_size, sizeof got);
    assert_true(got.conv_layers == 3 && got.hidden == 8 && got.latent == 4 && got.beta == want.beta);
    assert_memory_equal(got.conv, want.conv, sizeof got.conv);
    eelsvae_model_free(m);
}

static void test_train_options(void **state)
{
    (void)state;
    GUARDED(old_train) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_train_options *as_new = (eelsvae_train_options *)(void *)&box.opt;
    assert_ok(eelsvae_train_options_init_sized(as_new, EELSVAE_PRESET_PAPER, sizeof box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_int_equal(box.opt.epochs, 60); /* model.h: the paper's 60 epochs, batch 4 */
    assert_int_equal(box.opt.batch, 4);

    /* One epoch of the old struct against the full paper preset with the same. */
    box.opt.epochs = 1;
    eelsvae_train_options full;
    assert_ok(eelsvae_train_options_init(&full, EELSVAE_PRESET_PAPER));
    full.epochs = 1;
    eelsvae_cube *cube = tu_tiny_train_cube(24, 11);
    const eelsvae_cube *cubes[1] = {cube};
    eelsvae_model *a = tu_tiny_model(5), *b = tu_tiny_model(5);
    assert_ok(eelsvae_model_train(a, cubes, NULL, 1, as_new));
    assert_ok(eelsvae_model_train(b, cubes, NULL, 1, &full));
    eelsvae_cube *pa = NULL, *pb = NULL;
    assert_ok(eelsvae_model_prepare(a, cube, &pa));
    assert_ok(eelsvae_model_prepare(b, cube, &pb));
    assert_same_cubes(pa, pb);
    /* 24 × 24 pixels in 8 × 8 tiles: 9 tiles of 4 latent values */
    float mu_a[36], mu_b[36], lv_a[36], lv_b[36];
    assert_ok(eelsvae_model_encode(a, pa, mu_a, lv_a, 36));
    assert_ok(eelsvae_model_encode(b, pb, mu_b, lv_b, 36));
    assert_memory_equal(mu_a, mu_b, sizeof mu_a);
    assert_memory_equal(lv_a, lv_b, sizeof lv_a);
    /* training moved the weights: an untrained twin encodes differently */
    eelsvae_model *fresh = tu_tiny_model(5);
    float mu_f[36];
    assert_ok(eelsvae_model_encode(fresh, pa, mu_f, NULL, 36));
    assert_true(memcmp(mu_f, mu_a, sizeof mu_f) != 0);
    assert_canary(box.canary, GUARD);
    eelsvae_model_free(fresh);
    eelsvae_model_free(a);
    eelsvae_model_free(b);
    eelsvae_cube_free(pa);
    eelsvae_cube_free(pb);
    eelsvae_cube_free(cube);
}

/* ---- the previous release's callers: the trailing fields added since -------------
 * are never written into their structs, take their defaults in the consuming
 * functions (canary bytes where they would lie are not read: 0xA5… would be an
 * invalid trim_fraction, an energy_bin of 1 … 64 it is not, and min_tiles /
 * min_steps so large that training would not end), and a newer caller's
 * longer struct has them read at their offsets, its unknown tail ignored. */

static void test_previous_release_pca(void **state)
{
    (void)state;
    GUARDED(prev_pca) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_pca_options *as_new = (eelsvae_pca_options *)(void *)&box.opt;
    assert_ok(eelsvae_pca_options_init_sized(as_new, sizeof box.opt));
    assert_canary(box.canary, GUARD); /* trim_fraction not written */
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_true(box.opt.components == 4 && box.opt.max_iterations == 50);

    box.opt.components = 2;
    eelsvae_pca_options full, trimmed;
    assert_ok(eelsvae_pca_options_init(&full));
    assert_true(full.trim_fraction == 0.1); /* pca.h's default: the robust fit */
    full.components = 2;
    trimmed = full;
    trimmed.trim_fraction = 0.2;
    eelsvae_cube *cube = tu_random_cube(8, 8, 20, 23);
    eelsvae_pca *a = NULL, *b = NULL, *t = NULL;
    assert_ok(eelsvae_pca_fit(cube, as_new, &a));
    assert_ok(eelsvae_pca_fit(cube, &full, &b));
    assert_ok(eelsvae_pca_fit(cube, &trimmed, &t));
    assert_memory_equal(eelsvae_pca_components(a), eelsvae_pca_components(b), 2 * 20 * sizeof(float));
    /* the field is read from a struct that has it: a trimmed fit differs */
    assert_true(memcmp(eelsvae_pca_components(t), eelsvae_pca_components(b), 2 * 20 * sizeof(float)) != 0);

    /* A newer caller: trim_fraction at its offset, an unknown nonzero tail ignored. */
    struct {
        eelsvae_pca_options opt;
        unsigned char tail[EXTRA_TAIL];
    } newer;
    memset(&newer, CANARY, sizeof newer);
    assert_ok(eelsvae_pca_options_init_sized(&newer.opt, sizeof newer));
    assert_true(newer.opt.trim_fraction == 0.1);
    newer.opt.components = 2;
    newer.opt.trim_fraction = 0.2;
    memset(newer.tail, CANARY, sizeof newer.tail);
    eelsvae_pca *n = NULL;
    assert_ok(eelsvae_pca_fit(cube, &newer.opt, &n));
    assert_memory_equal(eelsvae_pca_components(n), eelsvae_pca_components(t), 2 * 20 * sizeof(float));
    assert_canary(box.canary, GUARD);
    eelsvae_pca_free(a);
    eelsvae_pca_free(b);
    eelsvae_pca_free(t);
    eelsvae_pca_free(n);
    eelsvae_cube_free(cube);
}

/* small_si() with a finer dispersion: 500 … 760 eV in 1041 channels of 0.25 eV. */
static eelsvae_cube *fine_si(void)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = 8;
    s.nx = 8;
    s.energy_start = 500.0;
    s.energy_end = 760.0;
    s.dispersion = 0.25;
    s.seed = 6;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&s, &c, NULL));
    return c;
}

static void test_previous_release_model(void **state)
{
    (void)state;
    GUARDED(prev_model) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_model_options *as_new = (eelsvae_model_options *)(void *)&box.opt;
    assert_ok(eelsvae_model_options_init_sized(as_new, EELSVAE_PRESET_FAST, sizeof box.opt));
    assert_canary(box.canary, GUARD); /* energy_bin not written */
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    eelsvae_model_options full;
    assert_ok(eelsvae_model_options_init(&full, EELSVAE_PRESET_FAST));
    assert_int_equal(full.energy_bin, 1); /* model.h: presets 1 */
    assert_memory_equal((const char *)&box.opt + sizeof(size_t), (const char *)&full + sizeof(size_t),
                        sizeof box.opt - sizeof(size_t));

    /* Consumed with energy_bin 1: the estimate and the model are the full struct's. */
    eelsvae_memory_estimate ea, eb;
    memset(&ea, 0, sizeof ea);
    memset(&eb, 0, sizeof eb);
    ea.struct_size = eb.struct_size = sizeof ea;
    assert_ok(eelsvae_model_estimate_memory(as_new, 2, &ea));
    assert_ok(eelsvae_model_estimate_memory(&full, 2, &eb));
    assert_memory_equal(&ea, &eb, sizeof ea);
    eelsvae_model *m = NULL;
    assert_ok(eelsvae_model_create(as_new, 1, &m));
    eelsvae_model_options got;
    assert_ok(eelsvae_model_options_get(m, &got));
    assert_int_equal(got.energy_bin, 1);
    /* and read back into the previous release's struct: energy_bin not written */
    GUARDED(prev_model) back;
    memset(&back, CANARY, sizeof back);
    assert_ok(eelsvae_model_options_get_sized(m, (eelsvae_model_options *)(void *)&back.opt, sizeof back.opt));
    assert_canary(back.canary, GUARD);
    assert_int_equal(back.opt.tile, full.tile);
    eelsvae_model_free(m);

    /* eelsvae_model_options_fit: a range that needs no binning fits the old
     * struct as the full one (131 channels within the fast preset's 160) … */
    eelsvae_cube *coarse = small_si(7), *fine = fine_si();
    eelsvae_model_options fitted = full;
    assert_ok(eelsvae_model_options_fit(&fitted, coarse, NAN, NAN));
    assert_int_equal(fitted.energy_bin, 1);
    assert_ok(eelsvae_model_options_fit(as_new, coarse, NAN, NAN));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_memory_equal((const char *)&box.opt + sizeof(size_t), (const char *)&fitted + sizeof(size_t),
                        sizeof box.opt - sizeof(size_t));
    /* … one that needs it (1041 channels: bins of 7) is refused, naming the
     * field, with the old struct left as it was */
    prev_model before = box.opt;
    assert_status(eelsvae_model_options_fit(as_new, fine, NAN, NAN), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_message_names("energy_bin");
    assert_memory_equal(&box.opt, &before, sizeof before);
    assert_canary(box.canary, GUARD);
    fitted = full;
    assert_ok(eelsvae_model_options_fit(&fitted, fine, NAN, NAN));
    assert_int_equal(fitted.energy_bin, 7);
    assert_int_equal(fitted.energy_channels, 144);

    /* A newer caller: energy_bin read and written at its offset, the unknown tail left as it was. */
    struct {
        eelsvae_model_options opt;
        unsigned char tail[EXTRA_TAIL];
    } newer;
    memset(&newer, CANARY, sizeof newer);
    assert_ok(eelsvae_model_options_init_sized(&newer.opt, EELSVAE_PRESET_FAST, sizeof newer));
    memset(newer.tail, CANARY, sizeof newer.tail);
    assert_ok(eelsvae_model_options_fit(&newer.opt, fine, NAN, NAN));
    assert_int_equal(newer.opt.struct_size, sizeof newer);
    assert_memory_equal((const char *)&newer.opt + sizeof(size_t), (const char *)&fitted + sizeof(size_t),
                        sizeof fitted - sizeof(size_t));
    assert_canary(newer.tail, sizeof newer.tail);
    memset(&ea, 0, sizeof ea);
    memset(&eb, 0, sizeof eb);
    ea.struct_size = eb.struct_size = sizeof ea;
    assert_ok(eelsvae_model_estimate_memory(&newer.opt, 2, &ea));
    assert_ok(eelsvae_model_estimate_memory(&fitted, 2, &eb));
    assert_memory_equal(&ea, &eb, sizeof ea);
    assert_ok(eelsvae_model_create(&newer.opt, 1, &m));
    assert_ok(eelsvae_model_options_get(m, &got));
    assert_int_equal(got.energy_bin, 7);
    eelsvae_model_free(m);
    eelsvae_cube_free(coarse);
    eelsvae_cube_free(fine);
}

static int count_steps(void *user, const eelsvae_train_progress *p)
{
    (void)p;
    ++*(size_t *)user;
    return 0;
}

static void test_previous_release_train(void **state)
{
    (void)state;
    GUARDED(prev_train) box;
    memset(&box, CANARY, sizeof box);
    eelsvae_train_options *as_new = (eelsvae_train_options *)(void *)&box.opt;
    assert_ok(eelsvae_train_options_init_sized(as_new, EELSVAE_PRESET_PAPER, sizeof box.opt));
    assert_canary(box.canary, GUARD); /* min_tiles, min_steps, outlier_cut not written */
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    eelsvae_train_options full;
    assert_ok(eelsvae_train_options_init(&full, EELSVAE_PRESET_PAPER));
    assert_int_equal(full.min_tiles, 64); /* model.h: presets 64 and 0 */
    assert_int_equal(full.min_steps, 0);
    assert_true(full.outlier_cut == 3.0); /* model.h: presets on; an old caller gets the defaults too */

    /* One epoch of the old struct against the full one with min_tiles 64, min_steps 0. */
    size_t old_steps = 0, full_steps = 0, more_steps = 0;
    box.opt.epochs = 1;
    box.opt.progress = count_steps;
    box.opt.progress_user = &old_steps;
    full.epochs = 1;
    full.progress = count_steps;
    full.progress_user = &full_steps;
    eelsvae_cube *cube = tu_tiny_train_cube(24, 13);
    const eelsvae_cube *cubes[1] = {cube};
    eelsvae_model *a = tu_tiny_model(6), *b = tu_tiny_model(6), *c = tu_tiny_model(6);
    assert_ok(eelsvae_model_train(a, cubes, NULL, 1, as_new));
    assert_ok(eelsvae_model_train(b, cubes, NULL, 1, &full));
    assert_true(old_steps >= 1 && old_steps == full_steps);
    eelsvae_cube *pa = NULL, *pb = NULL;
    assert_ok(eelsvae_model_prepare(a, cube, &pa));
    assert_ok(eelsvae_model_prepare(b, cube, &pb));
    float mu_a[36], mu_b[36];
    assert_ok(eelsvae_model_encode(a, pa, mu_a, NULL, 36));
    assert_ok(eelsvae_model_encode(b, pb, mu_b, NULL, 36));
    assert_memory_equal(mu_a, mu_b, sizeof mu_a);
    assert_canary(box.canary, GUARD);

    /* A newer caller's struct, min_steps set past one epoch's steps: the
     * epochs are raised to reach them, the unknown tail ignored. */
    struct {
        eelsvae_train_options opt;
        unsigned char tail[EXTRA_TAIL];
    } newer;
    memset(&newer, CANARY, sizeof newer);
    assert_ok(eelsvae_train_options_init_sized(&newer.opt, EELSVAE_PRESET_PAPER, sizeof newer));
    assert_true(newer.opt.min_tiles == 64 && newer.opt.min_steps == 0);
    memset(newer.tail, CANARY, sizeof newer.tail);
    newer.opt.epochs = 1;
    newer.opt.early_stop_patience = 0;
    newer.opt.min_steps = full_steps + 1;
    newer.opt.progress = count_steps;
    newer.opt.progress_user = &more_steps;
    assert_ok(eelsvae_model_train(c, cubes, NULL, 1, &newer.opt));
    assert_int_equal(more_steps, 2 * full_steps); /* two whole epochs */
    eelsvae_model_free(a);
    eelsvae_model_free(b);
    eelsvae_model_free(c);
    eelsvae_cube_free(pa);
    eelsvae_cube_free(pb);
    eelsvae_cube_free(cube);
}

/* ---- the memory estimate: only the fields within the caller's struct_size ---- */

static void test_memory_estimate(void **state)
{
    (void)state;
    eelsvae_model_options arch;
    assert_ok(tu_tiny_model_options(&arch));
    eelsvae_memory_estimate full;
    memset(&full, 0, sizeof full);
    full.struct_size = sizeof full;
    assert_ok(eelsvae_model_estimate_memory(&arch, 2, &full));

    GUARDED(old_estimate) box;
    memset(&box, CANARY, sizeof box);
    box.opt.struct_size = sizeof box.opt;
    assert_ok(eelsvae_model_estimate_memory(&arch, 2, (eelsvae_memory_estimate *)(void *)&box.opt));
    assert_canary(box.canary, GUARD);
    assert_int_equal(box.opt.struct_size, sizeof box.opt);
    assert_int_equal(box.opt.parameters, full.parameters);
    assert_int_equal(box.opt.parameter_bytes, full.parameters * sizeof(float));

    /* A size ending inside a field: that field is not written at all. */
    alignas(max_align_t) unsigned char raw[sizeof(eelsvae_memory_estimate) + GUARD];
    memset(raw, CANARY, sizeof raw);
    size_t odd = offsetof(eelsvae_memory_estimate, gradient_bytes) + 3;
    memcpy(raw, &odd, sizeof odd);
    assert_ok(eelsvae_model_estimate_memory(&arch, 2, (eelsvae_memory_estimate *)(void *)raw));
    size_t parameter_bytes = 0, kept = 0;
    memcpy(&parameter_bytes, raw + offsetof(eelsvae_memory_estimate, parameter_bytes), sizeof parameter_bytes);
    memcpy(&kept, raw, sizeof kept);
    assert_int_equal(parameter_bytes, full.parameter_bytes);
    assert_int_equal(kept, odd);
    assert_canary(raw + offsetof(eelsvae_memory_estimate, gradient_bytes),
                  sizeof raw - offsetof(eelsvae_memory_estimate, gradient_bytes));
}

/* ---- every _sized function: too small a size, and a newer, longer struct ---- */

typedef struct sized_fn {
    const char *name;
    size_t library_size;
    eelsvae_status (*fill)(void *opt, size_t size);
} sized_fn;

static eelsvae_model *shared_model;

static eelsvae_status fill_preprocess(void *o, size_t n)
{
    return eelsvae_preprocess_options_init_sized(o, EELSVAE_PRESET_FAST, n);
}
static eelsvae_status fill_synth(void *o, size_t n)
{
    return eelsvae_synth_options_init_sized(o, n);
}
static eelsvae_status fill_pca(void *o, size_t n)
{
    return eelsvae_pca_options_init_sized(o, n);
}
static eelsvae_status fill_scorer(void *o, size_t n)
{
    return eelsvae_scorer_options_init_sized(o, n);
}
static eelsvae_status fill_model(void *o, size_t n)
{
    return eelsvae_model_options_init_sized(o, EELSVAE_PRESET_FAST, n);
}
static eelsvae_status fill_train(void *o, size_t n)
{
    return eelsvae_train_options_init_sized(o, EELSVAE_PRESET_FAST, n);
}
static eelsvae_status fill_model_get(void *o, size_t n)
{
    return eelsvae_model_options_get_sized(shared_model, o, n);
}

static const sized_fn sized_fns[] = {
    {"preprocess", sizeof(eelsvae_preprocess_options), fill_preprocess},
    {"synth", sizeof(eelsvae_synth_options), fill_synth},
    {"pca", sizeof(eelsvae_pca_options), fill_pca},
    {"scorer", sizeof(eelsvae_scorer_options), fill_scorer},
    {"model", sizeof(eelsvae_model_options), fill_model},
    {"train", sizeof(eelsvae_train_options), fill_train},
    {"model get", sizeof(eelsvae_model_options), fill_model_get},
};

#define MAX_LIBRARY_SIZE 1024
#define EXTRA 24

static void test_size_too_small(void **state)
{
    (void)state;
    shared_model = tu_tiny_model(2);
    for (size_t f = 0; f < sizeof sized_fns / sizeof sized_fns[0]; f++) {
        const size_t sizes[3] = {0, 4, sizeof(size_t) - 1};
        for (size_t i = 0; i < 3; i++) {
            alignas(max_align_t) unsigned char raw[GUARD];
            memset(raw, CANARY, sizeof raw);
            assert_status(sized_fns[f].fill(raw, sizes[i]), EELSVAE_ERR_INVALID_ARGUMENT);
            assert_message_names("struct_size");
            assert_canary(raw, sizeof raw);
        }
        /* NULL is refused with any size */
        assert_status(sized_fns[f].fill(NULL, sized_fns[f].library_size), EELSVAE_ERR_INVALID_ARGUMENT);
        /* exactly the struct_size field: that alone is written */
        alignas(max_align_t) unsigned char raw[GUARD];
        memset(raw, CANARY, sizeof raw);
        assert_ok(sized_fns[f].fill(raw, sizeof(size_t)));
        size_t written = 0;
        memcpy(&written, raw, sizeof written);
        assert_int_equal(written, sizeof(size_t));
        assert_canary(raw + sizeof(size_t), sizeof raw - sizeof(size_t));
    }
    eelsvae_model_free(shared_model);
    shared_model = NULL;
}

static void test_newer_longer_struct(void **state)
{
    (void)state;
    shared_model = tu_tiny_model(2);
    for (size_t f = 0; f < sizeof sized_fns / sizeof sized_fns[0]; f++) {
        size_t n = sized_fns[f].library_size;
        assert_true(n + EXTRA + GUARD <= MAX_LIBRARY_SIZE);
        alignas(max_align_t) unsigned char exact[MAX_LIBRARY_SIZE], longer[MAX_LIBRARY_SIZE];
        memset(exact, CANARY, sizeof exact);
        memset(longer, CANARY, sizeof longer);
        assert_ok(sized_fns[f].fill(exact, n));
        assert_ok(sized_fns[f].fill(longer, n + EXTRA));
        size_t written = 0;
        memcpy(&written, longer, sizeof written);
        assert_int_equal(written, n + EXTRA);
        /* the library's fields as for its own size, the unknown tail zeroed, nothing after */
        assert_memory_equal(exact + sizeof(size_t), longer + sizeof(size_t), n - sizeof(size_t));
        for (size_t i = n; i < n + EXTRA; i++)
            if (longer[i] != 0) fail_msg("%s: byte %zu of the newer caller's tail is not zeroed", sized_fns[f].name, i);
        assert_canary(longer + n + EXTRA, sizeof longer - n - EXTRA);
        assert_canary(exact + n, sizeof exact - n);
    }
    eelsvae_model_free(shared_model);
    shared_model = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_synth),
        cmocka_unit_test(test_pca),
        cmocka_unit_test(test_scorer),
        cmocka_unit_test(test_model_options),
        cmocka_unit_test(test_model_options_get),
        cmocka_unit_test(test_train_options),
        cmocka_unit_test(test_previous_release_pca),
        cmocka_unit_test(test_previous_release_model),
        cmocka_unit_test(test_previous_release_train),
        cmocka_unit_test(test_memory_estimate),
        cmocka_unit_test(test_size_too_small),
        cmocka_unit_test(test_newer_longer_struct),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
