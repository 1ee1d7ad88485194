/* Allocation failure, the SQLite discipline: for every operation a user
 * runs — loading each format, preprocessing, a PCA fit, a small training
 * run, detection, every save — make the 1st, 2nd, … N-th library
 * allocation fail in turn, until N passes the last allocation the call
 * makes. At each N the call must return EELSVAE_ERR_NOMEM with a fresh
 * message, leave its out-pointers untouched, leak nothing (the sanitizer
 * build's LeakSanitizer checks at exit) and leave the caller's handles
 * usable: an in-place operation leaves its cube bit-identical, a failed
 * save leaves the old file byte-identical and no temporary beside it, a
 * failed training run leaves a model that still reconstructs.
 *
 * How the end is found: the hook (evae_fail_allocation_after) fails only the
 * N-th allocation. When a call returns EELSVAE_OK the test asks whether that
 * failure fired, by allocating until the countdown runs out: if it is still
 * armed, the call made fewer than N allocations and the sweep is complete;
 * if it fired and the call still succeeded, the failure was swallowed — an
 * error this test reports. The count of allocation sites per operation is
 * printed. Only the calling thread's allocations are counted (the countdown
 * is thread-local); OpenMP workers' allocations are not reached.
 *
 * Sizes are tiny (a 16 × 16 scan, an 8-pixel tile, 32 channels) so that the
 * whole file runs in seconds. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/core.h"

/* No sweep may pass this many allocations (a loop that never ends is a bug). */
#define MAX_ALLOCATIONS 20000ul

/* ---- the sweep ---------------------------------------------------------------- */

typedef struct sweep_op {
    const char *name;
    void (*setup)(void);                    /* before each attempt, not under injection (may be NULL) */
    eelsvae_status (*run)(void);            /* the call under test */
    void (*after_failure)(void);            /* the caller's handles are intact (may be NULL) */
    void (*after_success)(void);            /* check and free the results (may be NULL) */
    const char *recovers;                   /* non-NULL: the documented step at the end of the call whose
                                               allocations may fail without failing the call */
} sweep_op;

/* An out-pointer's value before the call: a failed call must leave it. */
static int poison_target;
#define POISON ((void *)&poison_target)

/* Set eelsvae_last_error() to a known sentence, so that a failure that
 * records no message of its own is caught. */
static char sentinel_message[256];

static void set_sentinel_message(void)
{
    eelsvae_cube *none = NULL;
    assert_int_equal(eelsvae_cube_create(0, 1, 1, &none), EELSVAE_ERR_INVALID_ARGUMENT);
    snprintf(sentinel_message, sizeof sentinel_message, "%s", eelsvae_last_error());
    assert_true(sentinel_message[0] != '\0');
}

/* True when the countdown set for this attempt is still armed, i.e. the
 * call made fewer than n allocations; consumes (disarms) it either way. */
static bool countdown_still_armed(unsigned long n)
{
    for (unsigned long i = 0; i < n; i++) {
        void *p = evae_malloc(1);
        if (!p) return true;
        evae_free(p);
    }
    return false;
}

/* The sweep in progress, for the checks' messages. */
static const char *current_op;
static unsigned long current_n;

/* Run op with the 1st, 2nd, … allocation failing; returns how many
 * allocations the call makes on the calling thread. A call may succeed
 * despite a failed allocation only where op->recovers says so, and only
 * in the tail: once it has recovered from one, it must recover from every
 * later one too (the optional step is the last thing it does). */
static unsigned long sweep(const sweep_op *op)
{
    unsigned long recovered = 0;
    current_op = op->name;
    for (unsigned long n = 1;; n++) {
        current_n = n;
        if (n > MAX_ALLOCATIONS) fail_msg("%s: more than %lu allocations", op->name, MAX_ALLOCATIONS);
        if (op->setup) op->setup();
        set_sentinel_message();
        evae_fail_allocation_after(n);
        eelsvae_status st = op->run();
        bool armed = st == EELSVAE_OK && countdown_still_armed(n);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            if (op->after_success) op->after_success();
            if (!armed && !op->recovers)
                fail_msg("%s: allocation %lu failed, yet the call returned EELSVAE_OK", op->name, n);
            if (!armed) {
                recovered++;
                continue;
            }
            print_message("%-36s %4lu allocation(s), each failing in turn: NOMEM", op->name, n - 1);
            if (recovered) print_message(" (the last %lu: OK, %s)", recovered, op->recovers);
            print_message("\n");
            return n - 1;
        }
        if (recovered)
            fail_msg("%s: allocation %lu failed with %s after the call had recovered from allocation %lu", op->name,
                     n, eelsvae_strerror(st), n - 1);
        if (st != EELSVAE_ERR_NOMEM)
            fail_msg("%s: allocation %lu failed and the call returned %s (%s), not EELSVAE_ERR_NOMEM", op->name, n,
                     eelsvae_strerror(st), eelsvae_last_error());
        const char *msg = eelsvae_last_error();
        if (msg[0] == '\0' || strcmp(msg, sentinel_message) == 0)
            fail_msg("%s: allocation %lu failed with no message of its own", op->name, n);
        if (op->after_failure) op->after_failure();
    }
}

/* ---- fixtures ------------------------------------------------------------------- */

#define NY 16
#define NX 16
#define T TU_TINY_TILE         /* tile */
#define E TU_TINY_CHANNELS     /* channels the model takes */
#define L TU_TINY_LATENT       /* latent */
#define E_START TU_TINY_ENERGY_START

/* A synthetic SI in counts, 686 … 737 eV at 1 eV per channel. */
static eelsvae_cube *synth_cube(uint64_t seed)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = NY;
    s.nx = NX;
    s.energy_start = 686.0;
    s.energy_end = 737.0;
    s.dispersion = 1.0;
    s.o_edge = 690.0;
    s.dose = 1000.0;
    s.seed = seed;
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_synth_generate(&s, &c, NULL));
    return c;
}

static eelsvae_cube *copy_of(const eelsvae_cube *c)
{
    eelsvae_cube *d = NULL;
    assert_ok(eelsvae_cube_copy(c, &d));
    return d;
}

/* Same shape, calibration and bits. */
static bool same_cube(const eelsvae_cube *a, const eelsvae_cube *b)
{
    size_t ay = 0, ax = 0, ae = 0, by = 0, bx = 0, be = 0;
    eelsvae_cube_shape(a, &ay, &ax, &ae);
    eelsvae_cube_shape(b, &by, &bx, &be);
    if (ay != by || ax != bx || ae != be) return false;
    for (int k = 0; k < 3; k++) {
        double ao = 0, as = 0, bo = 0, bs = 0;
        const char *au = NULL, *bu = NULL;
        assert_ok(eelsvae_cube_axis(a, (eelsvae_axis)k, &ao, &as, &au));
        assert_ok(eelsvae_cube_axis(b, (eelsvae_axis)k, &bo, &bs, &bu));
        if (ao != bo || as != bs || strcmp(au, bu) != 0) return false;
    }
    return memcmp(eelsvae_cube_data_const(a), eelsvae_cube_data_const(b), ay * ax * ae * sizeof(float)) == 0;
}

/* Same shape and bits, calibration aside (a .npy file has none). */
static bool same_samples(const eelsvae_cube *a, const eelsvae_cube *b)
{
    size_t ay = 0, ax = 0, ae = 0, by = 0, bx = 0, be = 0;
    eelsvae_cube_shape(a, &ay, &ax, &ae);
    eelsvae_cube_shape(b, &by, &bx, &be);
    return ay == by && ax == bx && ae == be &&
           memcmp(eelsvae_cube_data_const(a), eelsvae_cube_data_const(b), ay * ax * ae * sizeof(float)) == 0;
}

/* Same shape, samples within 1e-6: two reconstructions by the same weights
 * (the batch sizes may differ, and with them the order of the sums). */
static void assert_same_reconstruction(const eelsvae_cube *a, const eelsvae_cube *b)
{
    size_t ay = 0, ax = 0, ae = 0, by = 0, bx = 0, be = 0;
    eelsvae_cube_shape(a, &ay, &ax, &ae);
    eelsvae_cube_shape(b, &by, &bx, &be);
    assert_true(ay == by && ax == bx && ae == be);
    const float *x = eelsvae_cube_data_const(a), *y = eelsvae_cube_data_const(b);
    for (size_t i = 0; i < ay * ax * ae; i++) assert_close(x[i], y[i], 1e-6, 0);
}

/* 16 × 16 scan at stride 4: 9 tiles, 2 held out, two batches of 4 and 3. */
static void train_options(eelsvae_train_options *t)
{
    assert_ok(eelsvae_train_options_init(t, EELSVAE_PRESET_FAST));
    t->epochs = 1;
    t->batch = 4;
    t->tile_stride = 4;
    t->validation_fraction = 0.25;
    t->early_stop_patience = 0;
    t->seed = 7;
}

/* Whole-file bytes (malloc'd) or NULL when the file is missing. */
static unsigned char *slurp(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    unsigned char *buf = malloc(cap);
    assert_non_null(buf);
    size_t got = 0;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
    }
    fclose(f);
    *size = n;
    return buf;
}

/* No "*.tmp.*" file (an atomic write's temporary) is left in the test directory. */
static void assert_no_temporaries(const char *what)
{
    DIR *d = opendir(tu_tmpdir());
    assert_non_null(d);
    struct dirent *e = NULL;
    while ((e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".tmp.")) {
            closedir(d);
            fail_msg("%s: a failed save left the temporary %s", what, e->d_name);
        }
    closedir(d);
}

/* The fixture every sweep shares: built once, without injection. */
static struct {
    eelsvae_cube *raw;        /* counts, calibrated */
    eelsvae_cube *work;       /* what an in-place call modifies */
    eelsvae_cube *pristine;   /* its value before the call */
    eelsvae_cube *out_cube;   /* a call's new cube */
    eelsvae_pca *pca;         /* fitted on raw */
    eelsvae_pca *out_pca;
    eelsvae_model *trained;   /* trained one epoch */
    eelsvae_model *model;     /* the handle a call uses (fresh per attempt where the call may change it) */
    eelsvae_model *out_model;
    eelsvae_cube *prepared;   /* trained's input for raw */
    eelsvae_cube *reference;  /* trained's reconstruction of prepared */
    eelsvae_signal *out_signal;
    float *floats, *floats2;  /* outputs of project / encode / decode / scores */
    size_t n_floats, n_floats2;
    uint8_t *mask;
    double value;
    const char *path;         /* file a load reads or a save writes */
    const char *path2;        /* a second file the save writes (.raw beside .rpl), or NULL */
    unsigned char *old_bytes, *old_bytes2; /* the files before a save */
    size_t old_size, old_size2;
    eelsvae_status (*load)(const char *path, eelsvae_cube **out); /* the cube loader under test */
    const eelsvae_cube *expect; /* what a cube load must give */
    bool expect_calibrated;
} F;

static const char *model_path(void)
{
    return tu_path("trained.evm");
}

static void fixture_up(void)
{
    memset(&F, 0, sizeof F);
    F.raw = synth_cube(11);
    eelsvae_model_options o;
    assert_ok(tu_tiny_model_options(&o));
    assert_ok(eelsvae_model_create(&o, 5, &F.trained));
    eelsvae_train_options t;
    train_options(&t);
    const eelsvae_cube *cubes[1] = {F.raw};
    assert_ok(eelsvae_model_train(F.trained, cubes, NULL, 1, &t));
    assert_ok(eelsvae_model_save(F.trained, model_path(), 0));
    assert_ok(eelsvae_model_prepare(F.trained, F.raw, &F.prepared));
    assert_ok(eelsvae_model_reconstruct(F.trained, F.prepared, 0, &F.reference));
    eelsvae_pca_options po;
    assert_ok(eelsvae_pca_options_init(&po));
    po.components = 3;
    assert_ok(eelsvae_pca_fit(F.raw, &po, &F.pca));
}

static void fixture_down(void)
{
    eelsvae_cube_free(F.raw);
    eelsvae_cube_free(F.prepared);
    eelsvae_cube_free(F.reference);
    eelsvae_pca_free(F.pca);
    eelsvae_model_free(F.trained);
    memset(&F, 0, sizeof F);
}

static int group_setup(void **state)
{
    (void)state;
    assert_ok(eelsvae_set_threads(2));
    fixture_up();
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    fixture_down();
    return 0;
}

/* ---- loading --------------------------------------------------------------------- */

static void reset_cube_out(void)
{
    F.out_cube = POISON;
}

static eelsvae_status run_cube_load(void)
{
    return F.load(F.path, &F.out_cube);
}

static void cube_out_untouched(void)
{
    assert_ptr_equal(F.out_cube, POISON);
}

static void check_loaded_cube(void)
{
    assert_true(F.out_cube != POISON && F.out_cube != NULL);
    assert_true(F.expect_calibrated ? same_cube(F.out_cube, F.expect) : same_samples(F.out_cube, F.expect));
    eelsvae_cube_free(F.out_cube);
    F.out_cube = NULL;
}

static unsigned long sweep_cube_load(const char *name, eelsvae_status (*load)(const char *, eelsvae_cube **),
                                     const char *path, const eelsvae_cube *expect, bool calibrated)
{
    F.load = load;
    F.path = path;
    F.expect = expect;
    F.expect_calibrated = calibrated;
    const sweep_op op = {.name = name, .setup = reset_cube_out, .run = run_cube_load,
                         .after_failure = cube_out_untouched, .after_success = check_loaded_cube};
    return sweep(&op);
}

static eelsvae_status run_npy_read(void)
{
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS] = {0};
    return eelsvae_npy_read(F.path, &ndim, shape, NULL, &F.floats);
}

static void reset_floats(void)
{
    F.floats = POISON;
}

static void floats_untouched(void)
{
    assert_ptr_equal(F.floats, POISON);
}

static void free_npy_floats(void)
{
    assert_true(F.floats != POISON && F.floats != NULL);
    /* the file holds 0, 1, 2, … in whichever order it was written */
    for (size_t i = 0; i < F.n_floats; i++) assert_true(F.floats[i] == (float)i);
    eelsvae_free(F.floats);
    F.floats = NULL;
}

/* A version-2.0 .npy file of big-endian int16, Fortran order, shape (3, 4, 5),
 * holding C-order values 0 … 59: the reader's chunked, converting path. */
static void write_fortran_npy(const char *path)
{
    const char *dict = "{'descr': '>i2', 'fortran_order': True, 'shape': (3, 4, 5), }";
    size_t prefix = 12, len = strlen(dict) + 1;
    size_t header = len + (64 - (prefix + len) % 64) % 64;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    unsigned char pre[12] = {0x93, 'N', 'U', 'M', 'P', 'Y', 2, 0,
                             (unsigned char)header, (unsigned char)(header >> 8), 0, 0};
    assert_int_equal(fwrite(pre, 1, 12, f), 12);
    assert_int_equal(fwrite(dict, 1, strlen(dict), f), strlen(dict));
    for (size_t i = strlen(dict); i + 1 < header; i++) fputc(' ', f);
    fputc('\n', f);
    for (size_t z = 0; z < 5; z++)
        for (size_t y = 0; y < 4; y++)
            for (size_t x = 0; x < 3; x++) {
                unsigned v = (unsigned)((x * 4 + y) * 5 + z);
                fputc((int)(v >> 8), f);
                fputc((int)(v & 0xFF), f);
            }
    assert_int_equal(fclose(f), 0);
}

static void test_load_npy(void **state)
{
    (void)state;
    const char *path = tu_path("load.npy");
    assert_ok(eelsvae_cube_save_npy(F.raw, path));
    unsigned long a = sweep_cube_load("cube_load_npy", eelsvae_cube_load_npy, path, F.raw, false);
    unsigned long b = sweep_cube_load("cube_load (.npy)", eelsvae_cube_load, path, F.raw, false);
    assert_true(a >= 2 && b >= 2); /* the header text and the data, at least */

    /* the float32 fast path and the chunked conversion of other types */
    eelsvae_cube *ramp = NULL;
    assert_ok(eelsvae_cube_create(3, 4, 5, &ramp));
    for (size_t i = 0; i < 60; i++) eelsvae_cube_data(ramp)[i] = (float)i;
    const char *flat = tu_path("ramp.npy"), *fortran = tu_path("fortran.npy");
    assert_ok(eelsvae_cube_save_npy(ramp, flat));
    write_fortran_npy(fortran);
    eelsvae_cube_free(ramp);
    F.n_floats = 60;
    const sweep_op op = {.name = "npy_read (float32)", .setup = reset_floats, .run = run_npy_read,
                         .after_failure = floats_untouched, .after_success = free_npy_floats};
    F.path = flat;
    assert_true(sweep(&op) >= 2);
    const sweep_op op2 = {.name = "npy_read (>i2, Fortran, v2.0)", .setup = reset_floats, .run = run_npy_read,
                          .after_failure = floats_untouched, .after_success = free_npy_floats};
    F.path = fortran;
    assert_true(sweep(&op2) >= 3); /* header, output, conversion buffers */
}

static void reset_signal_out(void)
{
    F.out_signal = POISON;
}

static eelsvae_status run_signal_load(void)
{
    return eelsvae_signal_load(F.path, &F.out_signal);
}

static void signal_out_untouched(void)
{
    assert_ptr_equal(F.out_signal, POISON);
}

static void free_signal(void)
{
    assert_true(F.out_signal != POISON && F.out_signal != NULL);
    size_t ndim = 0;
    eelsvae_signal_shape(F.out_signal, &ndim, NULL, NULL);
    assert_true(ndim >= 1 && ndim <= EELSVAE_SIGNAL_MAX_DIMS);
    eelsvae_signal_free(F.out_signal);
    F.out_signal = NULL;
}

static unsigned long sweep_signal_load(const char *name, const char *path)
{
    F.path = path;
    const sweep_op op = {.name = name, .setup = reset_signal_out, .run = run_signal_load,
                         .after_failure = signal_out_untouched, .after_success = free_signal};
    return sweep(&op);
}

static void test_load_signal_npy(void **state)
{
    (void)state;
    const char *path = tu_path("signal.npy");
    assert_ok(eelsvae_cube_save_npy(F.raw, path));
    assert_true(sweep_signal_load("signal_load (.npy)", path) >= 2);
}

/* A format written by this library and read back; NULL, or why it cannot
 * be swept in this build. */
static const char *sweep_written_format(const char *ext, eelsvae_format format)
{
    static char why[512];
    char name[64], file[64];
    snprintf(file, sizeof file, "roundtrip.%s", ext);
    const char *path = tu_path(file);
    if (!eelsvae_format_supported(format)) return "not built into this library";
    eelsvae_status st = eelsvae_cube_save(F.raw, path);
    if (st == EELSVAE_ERR_UNSUPPORTED) {
        snprintf(why, sizeof why, "no writer yet: %s", eelsvae_last_error());
        return why;
    }
    assert_int_equal(st, EELSVAE_OK);
    eelsvae_cube *back = NULL;
    st = eelsvae_cube_load(path, &back);
    if (st == EELSVAE_ERR_UNSUPPORTED) {
        snprintf(why, sizeof why, "no reader yet: %s", eelsvae_last_error());
        return why;
    }
    assert_int_equal(st, EELSVAE_OK);
    assert_true(same_cube(back, F.raw));
    eelsvae_cube_free(back);
    snprintf(name, sizeof name, "cube_load (.%s)", ext);
    assert_true(sweep_cube_load(name, eelsvae_cube_load, path, F.raw, true) >= 2);
    snprintf(name, sizeof name, "signal_load (.%s)", ext);
    assert_true(sweep_signal_load(name, path) >= 2);
    return NULL;
}

static void test_load_rpl(void **state)
{
    (void)state;
    const char *why = sweep_written_format("rpl", EELSVAE_FORMAT_RPL);
    if (why) tu_skip(why);
}

static void test_load_hspy(void **state)
{
    (void)state;
    const char *why = sweep_written_format("hspy", EELSVAE_FORMAT_HSPY);
    if (why) tu_skip(why);
}

/* DigitalMicrograph files cannot be written here: the fuzz seeds (generated
 * by fuzz/make_dm_seeds.py) are read, each as signals and as a cube when it
 * is one. */
static eelsvae_status run_file_signals(void)
{
    size_t count = 0, main_index = 0;
    return eelsvae_file_signals(F.path, &count, &main_index);
}

static void test_load_dm(void **state)
{
    (void)state;
    const char *root = getenv("EELSVAE_SOURCE_DIR");
    if (!root || !*root) tu_skip("EELSVAE_SOURCE_DIR is not set: the DM seed files cannot be found");
    static const char *const seeds[] = {"spectrum.dm3", "si.dm3", "spectrum.dm4", "si.dm4"};
    int swept = 0;
    for (size_t i = 0; i < sizeof seeds / sizeof seeds[0]; i++) {
        char path[1024], name[64];
        snprintf(path, sizeof path, "%s/fuzz/corpus/dm/%s", root, seeds[i]);
        FILE *f = fopen(path, "rb");
        if (!f) {
            print_message("skipped %s: not found\n", path);
            continue;
        }
        fclose(f);
        eelsvae_signal *s = NULL;
        eelsvae_status st = eelsvae_signal_load(path, &s);
        if (st == EELSVAE_ERR_UNSUPPORTED) {
            print_message("skipped %s: the reader is not there yet (%s)\n", seeds[i], eelsvae_last_error());
            continue;
        }
        assert_int_equal(st, EELSVAE_OK);
        eelsvae_cube *c = NULL;
        st = eelsvae_signal_to_cube(s, &c);
        eelsvae_signal_free(s);
        F.path = path;
        snprintf(name, sizeof name, "file_signals (%s)", seeds[i]);
        const sweep_op count_op = {.name = name, .run = run_file_signals};
        sweep(&count_op);
        snprintf(name, sizeof name, "signal_load (%s)", seeds[i]);
        sweep_signal_load(name, path);
        if (st == EELSVAE_OK) {
            snprintf(name, sizeof name, "cube_load (%s)", seeds[i]);
            sweep_cube_load(name, eelsvae_cube_load, path, c, true);
        }
        eelsvae_cube_free(c);
        swept++;
    }
    if (!swept) tu_skip("no DigitalMicrograph file could be read yet");
}

static void reset_pca_out(void)
{
    F.out_pca = POISON;
}

static eelsvae_status run_pca_load(void)
{
    return eelsvae_pca_load(F.path, &F.out_pca);
}

static void pca_out_untouched(void)
{
    assert_ptr_equal(F.out_pca, POISON);
}

static void check_loaded_pca(void)
{
    size_t k = 0, ne = 0, k0 = 0, ne0 = 0;
    eelsvae_pca_shape(F.out_pca, &k, &ne);
    eelsvae_pca_shape(F.pca, &k0, &ne0);
    assert_true(k == k0 && ne == ne0);
    assert_memory_equal(eelsvae_pca_components(F.out_pca), eelsvae_pca_components(F.pca), k * ne * sizeof(float));
    eelsvae_pca_free(F.out_pca);
    F.out_pca = NULL;
}

static void test_load_pca(void **state)
{
    (void)state;
    F.path = tu_path("basis.evp");
    assert_ok(eelsvae_pca_save(F.pca, F.path));
    const sweep_op op = {.name = "pca_load", .setup = reset_pca_out, .run = run_pca_load,
                         .after_failure = pca_out_untouched, .after_success = check_loaded_pca};
    assert_true(sweep(&op) >= 2);
}

static void reset_model_out(void)
{
    F.out_model = POISON;
}

static eelsvae_status run_model_load(void)
{
    return eelsvae_model_load(F.path, &F.out_model);
}

static void model_out_untouched(void)
{
    assert_ptr_equal(F.out_model, POISON);
}

/* The loaded model reconstructs exactly as the one saved. */
static void check_loaded_model(void)
{
    assert_true(F.out_model != POISON && F.out_model != NULL);
    assert_int_equal(eelsvae_model_parameter_count(F.out_model), eelsvae_model_parameter_count(F.trained));
    eelsvae_cube *rec = NULL;
    assert_ok(eelsvae_model_reconstruct(F.out_model, F.prepared, 0, &rec));
    assert_same_reconstruction(rec, F.reference);
    eelsvae_cube_free(rec);
    eelsvae_model_free(F.out_model);
    F.out_model = NULL;
}

static void test_load_model(void **state)
{
    (void)state;
    const sweep_op op = {.name = "model_load", .setup = reset_model_out, .run = run_model_load,
                         .after_failure = model_out_untouched, .after_success = check_loaded_model};
    F.path = model_path();
    assert_true(sweep(&op) >= 3); /* model, network, read buffer */
    F.path = tu_path("checkpoint.evm");
    assert_ok(eelsvae_model_save(F.trained, F.path, 1));
    const sweep_op op2 = {.name = "model_load (checkpoint)", .setup = reset_model_out, .run = run_model_load,
                          .after_failure = model_out_untouched, .after_success = check_loaded_model};
    assert_true(sweep(&op2) >= 5); /* … and Adam's two moments */
}

/* ---- preprocessing ------------------------------------------------------------------ */

static void fresh_work(void)
{
    eelsvae_cube_free(F.work);
    F.work = copy_of(F.raw);
}

static eelsvae_status run_preprocess(void)
{
    eelsvae_preprocess_options o;
    assert_ok(eelsvae_preprocess_options_init(&o, EELSVAE_PRESET_PAPER));
    o.median_filter = 3;
    return eelsvae_cube_preprocess(F.work, &o, &F.value, NULL);
}

static void work_unchanged(void)
{
    assert_true(same_cube(F.work, F.raw));
}

static void check_preprocessed(void)
{
    const float *x = eelsvae_cube_data_const(F.work);
    for (size_t i = 0; i < NY * NX * 52; i++) assert_true(x[i] >= 0.0f && x[i] <= 1.0f);
    eelsvae_cube_free(F.work);
    F.work = NULL;
}

static eelsvae_status run_crop_energy(void)
{
    return eelsvae_cube_crop_energy(F.raw, 700.0, 720.0, &F.out_cube);
}

static void free_out_cube(void)
{
    assert_true(F.out_cube != POISON && F.out_cube != NULL);
    eelsvae_cube_free(F.out_cube);
    F.out_cube = NULL;
}

static void test_preprocess(void **state)
{
    (void)state;
    size_t ne = 0;
    eelsvae_cube_shape(F.raw, NULL, NULL, &ne);
    assert_int_equal(ne, 52);
    const sweep_op op = {.name = "cube_preprocess (paper + median 3)", .setup = fresh_work, .run = run_preprocess,
                         .after_failure = work_unchanged, .after_success = check_preprocessed};
    assert_true(sweep(&op) >= 3);
    const sweep_op crop = {.name = "cube_crop_energy", .setup = reset_cube_out, .run = run_crop_energy,
                           .after_failure = cube_out_untouched, .after_success = free_out_cube};
    assert_true(sweep(&crop) >= 1);
}

/* ---- PCA ------------------------------------------------------------------------------ */

static int pca_poisson;

static eelsvae_status run_pca_fit(void)
{
    eelsvae_pca_options o;
    assert_ok(eelsvae_pca_options_init(&o));
    o.components = 3;
    o.poisson_normalize = pca_poisson;
    return eelsvae_pca_fit(F.work, &o, &F.out_pca);
}

static void fit_setup(void)
{
    fresh_work();
    F.out_pca = POISON;
}

static void fit_failed(void)
{
    pca_out_untouched();
    work_unchanged();
}

static void check_fitted(void)
{
    size_t k = 0, ne = 0;
    eelsvae_pca_shape(F.out_pca, &k, &ne);
    assert_true(k == 3 && ne == 52);
    double ratios[3];
    assert_ok(eelsvae_pca_explained_variance_ratio(F.out_pca, ratios, 3));
    assert_true(ratios[0] > 0.0 && ratios[0] <= 1.0 && ratios[1] <= ratios[0]);
    eelsvae_pca_free(F.out_pca);
    F.out_pca = NULL;
    work_unchanged();
    eelsvae_cube_free(F.work);
    F.work = NULL;
}

static eelsvae_status run_pca_project(void)
{
    return eelsvae_pca_project(F.pca, F.raw, F.floats, NY * NX * 3);
}

static eelsvae_status run_pca_reconstruct(void)
{
    return eelsvae_pca_reconstruct(F.pca, F.raw, &F.out_cube);
}

/* The basis still projects after a failure. */
static void pca_still_projects(void)
{
    assert_ok(eelsvae_pca_project(F.pca, F.raw, F.floats2, NY * NX * 3));
    assert_true(isfinite(F.floats2[0]));
}

static void reconstruct_pca_failed(void)
{
    cube_out_untouched();
    pca_still_projects();
}

static void test_pca(void **state)
{
    (void)state;
    pca_poisson = 0;
    const sweep_op fit = {.name = "pca_fit (centred)", .setup = fit_setup, .run = run_pca_fit,
                          .after_failure = fit_failed, .after_success = check_fitted};
    assert_true(sweep(&fit) >= 3);
    pca_poisson = 1;
    const sweep_op fit2 = {.name = "pca_fit (Poisson-normalised)", .setup = fit_setup, .run = run_pca_fit,
                           .after_failure = fit_failed, .after_success = check_fitted};
    assert_true(sweep(&fit2) >= 3);

    F.floats = malloc(NY * NX * 3 * sizeof(float));
    F.floats2 = malloc(NY * NX * 3 * sizeof(float));
    assert_true(F.floats && F.floats2);
    const sweep_op project = {.name = "pca_project", .run = run_pca_project, .after_failure = pca_still_projects};
    sweep(&project);
    const sweep_op rec = {.name = "pca_reconstruct", .setup = reset_cube_out, .run = run_pca_reconstruct,
                          .after_failure = reconstruct_pca_failed, .after_success = free_out_cube};
    assert_true(sweep(&rec) >= 1);
    free(F.floats);
    free(F.floats2);
    F.floats = F.floats2 = NULL;
}

/* ---- training ----------------------------------------------------------------------------- */

/* A fresh handle on the trained model, loaded outside the injection. */
static void load_model(void)
{
    eelsvae_model_free(F.model);
    F.model = NULL;
    assert_ok(eelsvae_model_load(model_path(), &F.model));
}

static eelsvae_status run_train(void)
{
    eelsvae_train_options t;
    train_options(&t);
    t.checkpoint_path = tu_path("train-checkpoint.evm");
    t.checkpoint_every = 1;
    const eelsvae_cube *cubes[1] = {F.raw};
    return eelsvae_model_train(F.model, cubes, NULL, 1, &t);
}

/* After a failed run the model still detects: its reconstruction is valid. */
static void model_still_reconstructs(void)
{
    eelsvae_cube *prep = NULL, *rec = NULL;
    assert_ok(eelsvae_model_prepare(F.model, F.raw, &prep));
    assert_ok(eelsvae_model_reconstruct(F.model, prep, 0, &rec));
    const float *x = eelsvae_cube_data_const(rec);
    for (size_t i = 0; i < NY * NX * E; i++) assert_true(x[i] >= 0.0f && x[i] <= 1.0f);
    eelsvae_cube_free(prep);
    eelsvae_cube_free(rec);
    assert_no_temporaries("training checkpoint");
}

static void free_model(void)
{
    eelsvae_model_free(F.model);
    F.model = NULL;
}

static void trained_ok(void)
{
    model_still_reconstructs();
    free_model();
}

static void test_train(void **state)
{
    (void)state;
    const sweep_op op = {.name = "model_train (2 batches, checkpoint)", .setup = load_model, .run = run_train,
                         .after_failure = model_still_reconstructs, .after_success = trained_ok,
                         .recovers = "giving the gradient block back is optional"};
    assert_true(sweep(&op) >= 5);
}

/* ---- detection ----------------------------------------------------------------------------- */

static eelsvae_status run_prepare(void)
{
    return eelsvae_model_prepare(F.model, F.raw, &F.out_cube);
}

static void prepare_setup(void)
{
    load_model();
    reset_cube_out();
}

static void prepare_failed(void)
{
    cube_out_untouched();
    model_still_reconstructs();
}

static void check_prepared(void)
{
    assert_true(same_cube(F.out_cube, F.prepared));
    free_out_cube();
    free_model();
}

static eelsvae_status run_reconstruct(void)
{
    return eelsvae_model_reconstruct(F.model, F.prepared, 0, &F.out_cube);
}

static eelsvae_status run_reconstruct_overlap(void)
{
    return eelsvae_model_reconstruct(F.model, F.prepared, 4, &F.out_cube);
}

static void check_reconstruction(void)
{
    assert_same_reconstruction(F.out_cube, F.reference);
    free_out_cube();
    /* the handle keeps working after the grown inference network */
    model_still_reconstructs();
    free_model();
}

static void check_overlap_reconstruction(void)
{
    const float *x = eelsvae_cube_data_const(F.out_cube);
    for (size_t i = 0; i < NY * NX * E; i++) assert_true(x[i] >= 0.0f && x[i] <= 1.0f);
    free_out_cube();
    free_model();
}

/* 4 tiles (stride T) of L floats for μ and log σ², T·T·E floats per decoded tile. */
static eelsvae_status run_encode(void)
{
    return eelsvae_model_encode(F.model, F.prepared, F.floats, F.floats2, 4 * L);
}

static eelsvae_status run_decode(void)
{
    return eelsvae_model_decode(F.model, F.floats2, 4, F.floats, 4 * T * T * E);
}

static void model_usable(void)
{
    model_still_reconstructs();
}

static eelsvae_status run_score(void)
{
    eelsvae_scorer_options o;
    assert_ok(eelsvae_scorer_options_init(&o));
    o.window_lo = 700.0;
    o.window_hi = 720.0;
    eelsvae_scorer *s = NULL;
    EVAE_TRY(eelsvae_scorer_create(&o, &s));
    eelsvae_status st = eelsvae_scorer_score(s, F.prepared, F.reference, F.floats, NY * NX, NULL);
    eelsvae_scorer_free(s);
    return st;
}

static eelsvae_status run_otsu(void)
{
    return eelsvae_otsu_threshold(F.floats, NY * NX, 256, &F.value);
}

static eelsvae_status run_aucs(void)
{
    double roc = 0, pr = 0;
    EVAE_TRY(eelsvae_roc_auc(F.floats, F.mask, NY * NX, EELSVAE_ANOMALOUS_BELOW, &roc));
    return eelsvae_pr_auc(F.floats, F.mask, NY * NX, EELSVAE_ANOMALOUS_BELOW, &pr);
}

static void test_detect(void **state)
{
    (void)state;
    const sweep_op prep = {.name = "model_prepare", .setup = prepare_setup, .run = run_prepare,
                           .after_failure = prepare_failed, .after_success = check_prepared};
    assert_true(sweep(&prep) >= 2);
    const sweep_op rec = {.name = "model_reconstruct", .setup = prepare_setup, .run = run_reconstruct,
                          .after_failure = prepare_failed, .after_success = check_reconstruction};
    assert_true(sweep(&rec) >= 2);
    const sweep_op rec4 = {.name = "model_reconstruct (stride 4)", .setup = prepare_setup,
                           .run = run_reconstruct_overlap, .after_failure = prepare_failed,
                           .after_success = check_overlap_reconstruction};
    assert_true(sweep(&rec4) >= 2);

    F.floats = malloc(4 * T * T * E * sizeof(float));
    F.floats2 = malloc(4 * L * sizeof(float));
    assert_true(F.floats && F.floats2);
    const sweep_op enc = {.name = "model_encode", .setup = load_model, .run = run_encode,
                          .after_failure = model_usable, .after_success = free_model};
    sweep(&enc);
    const sweep_op dec = {.name = "model_decode", .setup = load_model, .run = run_decode,
                          .after_failure = model_usable, .after_success = free_model};
    sweep(&dec);
    free(F.floats);
    free(F.floats2);

    F.floats = malloc(NY * NX * sizeof(float));
    F.mask = malloc(NY * NX);
    assert_true(F.floats && F.mask);
    const sweep_op score = {.name = "scorer_create + scorer_score", .run = run_score};
    sweep(&score);
    const sweep_op otsu = {.name = "otsu_threshold", .run = run_otsu};
    sweep(&otsu);
    assert_ok(eelsvae_threshold_mask(F.floats, NY * NX, F.value, EELSVAE_ANOMALOUS_BELOW, F.mask));
    F.mask[0] = 1; /* both classes present */
    F.mask[1] = 0;
    const sweep_op aucs = {.name = "roc_auc + pr_auc", .run = run_aucs};
    sweep(&aucs);
    free(F.floats);
    free(F.mask);
    F.floats = NULL;
    F.mask = NULL;
}

/* ---- saving ---------------------------------------------------------------------------------- */

/* Before each attempt the destination holds an old file (of different
 * contents); a failed save must leave it byte-identical. */
static void snapshot_old_files(void)
{
    free(F.old_bytes);
    free(F.old_bytes2);
    F.old_bytes = slurp(F.path, &F.old_size);
    F.old_bytes2 = F.path2 ? slurp(F.path2, &F.old_size2) : NULL;
    assert_non_null(F.old_bytes);
}

static void file_unchanged(const char *path, const unsigned char *old, size_t old_size)
{
    size_t n = 0;
    unsigned char *now = slurp(path, &n);
    bool same = now && n == old_size && memcmp(now, old, n) == 0;
    free(now);
    if (!same)
        fail_msg("%s: allocation %lu failed and the call returned NOMEM, but %s is no longer the old file",
                 current_op, current_n, path);
}

static void old_files_intact(void)
{
    file_unchanged(F.path, F.old_bytes, F.old_size);
    if (F.path2) file_unchanged(F.path2, F.old_bytes2, F.old_size2);
    assert_no_temporaries(F.path);
}

/* After a successful save the data differ from the old file's (for .rpl
 * the data are in the .raw: two headers of same-shaped cubes are equal). */
static void new_files_written(void)
{
    const char *data_path = F.path2 ? F.path2 : F.path;
    const unsigned char *old = F.path2 ? F.old_bytes2 : F.old_bytes;
    size_t old_size = F.path2 ? F.old_size2 : F.old_size, n = 0;
    unsigned char *now = slurp(data_path, &n);
    bool changed = now && (n != old_size || memcmp(now, old, n) != 0);
    free(now);
    if (!changed) fail_msg("%s: the call returned EELSVAE_OK but %s still holds the old data", current_op, data_path);
    assert_no_temporaries(F.path);
    free(F.old_bytes);
    free(F.old_bytes2);
    F.old_bytes = F.old_bytes2 = NULL;
}

static eelsvae_status run_cube_save(void)
{
    return eelsvae_cube_save(F.raw, F.path);
}

static eelsvae_status run_cube_save_npy(void)
{
    return eelsvae_cube_save_npy(F.raw, F.path);
}

static eelsvae_status run_map_save(void)
{
    float map[NY * NX];
    for (size_t i = 0; i < NY * NX; i++) map[i] = (float)i;
    return eelsvae_map_save(map, EELSVAE_DTYPE_FLOAT32, F.raw, "scores", F.path);
}

static eelsvae_status run_pca_save(void)
{
    return eelsvae_pca_save(F.pca, F.path);
}

static eelsvae_status run_model_save(void)
{
    return eelsvae_model_save(F.trained, F.path, 0);
}

static eelsvae_status run_checkpoint_save(void)
{
    return eelsvae_model_save(F.trained, F.path, 1);
}

/* Write the "old" file: a different cube, PCA basis or model at the same path. */
static eelsvae_status write_old(eelsvae_status (*run)(void))
{
    if (run == run_pca_save) {
        eelsvae_pca_options o;
        assert_ok(eelsvae_pca_options_init(&o));
        o.components = 2;
        eelsvae_pca *other = NULL;
        assert_ok(eelsvae_pca_fit(F.raw, &o, &other));
        eelsvae_status st = eelsvae_pca_save(other, F.path);
        eelsvae_pca_free(other);
        return st;
    }
    if (run == run_model_save || run == run_checkpoint_save) {
        eelsvae_model_options o;
        assert_ok(tu_tiny_model_options(&o));
        eelsvae_model *other = NULL;
        assert_ok(eelsvae_model_create(&o, 99, &other));
        eelsvae_status st = eelsvae_model_save(other, F.path, 0);
        eelsvae_model_free(other);
        return st;
    }
    eelsvae_cube *other = synth_cube(12);
    eelsvae_status st = eelsvae_cube_save(other, F.path);
    eelsvae_cube_free(other);
    return st;
}

/* One save sweep; false (after saying so) when the format cannot be written. */
static bool sweep_save(const char *name, const char *file, const char *beside, eelsvae_status (*run)(void),
                       unsigned long at_least)
{
    char path2[1024];
    F.path = tu_path(file);
    F.path2 = NULL;
    if (beside) {
        snprintf(path2, sizeof path2, "%s", tu_path(beside));
        F.path2 = path2;
    }
    eelsvae_status st = write_old(run);
    if (st == EELSVAE_ERR_UNSUPPORTED) {
        print_message("skipped %s: %s\n", name, eelsvae_last_error());
        return false;
    }
    assert_int_equal(st, EELSVAE_OK);
    const sweep_op op = {.name = name, .setup = snapshot_old_files, .run = run, .after_failure = old_files_intact,
                         .after_success = new_files_written};
    assert_true(sweep(&op) >= at_least);
    /* the next sweep starts from the old contents again */
    F.path2 = NULL;
    return true;
}

static void test_save(void **state)
{
    (void)state;
    sweep_save("cube_save_npy", "save.npy", NULL, run_cube_save_npy, 2); /* the file names */
    sweep_save("cube_save (.npy)", "save2.npy", NULL, run_cube_save, 3);  /* … and the signal */
    sweep_save("map_save (.npy)", "map.npy", NULL, run_map_save, 3);
    sweep_save("pca_save", "save.evp", NULL, run_pca_save, 3);
    sweep_save("model_save", "save.evm", NULL, run_model_save, 3);
    sweep_save("model_save (checkpoint)", "save-ck.evm", NULL, run_checkpoint_save, 3);
}

/* Both files of the pair stay old when either cannot be written. */
static void test_save_rpl(void **state)
{
    (void)state;
    if (!eelsvae_format_supported(EELSVAE_FORMAT_RPL)) tu_skip("Ripple is not built into this library");
    sweep_save("cube_save (.rpl + .raw)", "save.rpl", "save.raw", run_cube_save, 2);
    sweep_save("map_save (.rpl + .raw)", "map.rpl", "map.raw", run_map_save, 2);
}

static void test_save_hspy(void **state)
{
    (void)state;
    if (!eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) tu_skip("HDF5 is not built into this library");
    sweep_save("cube_save (.hspy)", "save.hspy", NULL, run_cube_save, 1);
    sweep_save("map_save (.hspy)", "map.hspy", NULL, run_map_save, 1);
}

/* ---- synthetic data and injection ---------------------------------------------------------- */

static eelsvae_status run_synth(void)
{
    eelsvae_synth_options s;
    assert_ok(eelsvae_synth_options_init(&s));
    s.ny = 6;
    s.nx = 5;
    s.energy_start = 686.0;
    s.energy_end = 737.0;
    s.dispersion = 1.0;
    s.o_edge = 690.0;
    F.out_cube = POISON;
    eelsvae_cube *expected = POISON;
    eelsvae_status st = eelsvae_synth_generate(&s, &F.out_cube, &expected);
    if (st == EELSVAE_OK) eelsvae_cube_free(expected);
    else assert_ptr_equal(expected, POISON);
    return st;
}

static uint8_t disks[NY * NX];

static eelsvae_status run_inject(void)
{
    return eelsvae_cube_inject_shift(F.work, disks, NY * NX, 700.0, 725.0, 1.5);
}

static eelsvae_status run_disk_mask(void)
{
    return eelsvae_disk_mask(NY, NX, 2, 2.0, 6.0, 3, disks, NULL);
}

static void free_work(void)
{
    eelsvae_cube_free(F.work);
    F.work = NULL;
}

static void test_synth_inject(void **state)
{
    (void)state;
    const sweep_op synth = {.name = "synth_generate", .run = run_synth, .after_failure = cube_out_untouched,
                            .after_success = free_out_cube};
    assert_true(sweep(&synth) >= 2);
    const sweep_op mask = {.name = "disk_mask", .run = run_disk_mask};
    sweep(&mask);
    const sweep_op inject = {.name = "cube_inject_shift", .setup = fresh_work, .run = run_inject,
                             .after_failure = work_unchanged, .after_success = free_work};
    sweep(&inject);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_npy),
        cmocka_unit_test(test_load_signal_npy),
        cmocka_unit_test(test_load_rpl),
        cmocka_unit_test(test_load_hspy),
        cmocka_unit_test(test_load_dm),
        cmocka_unit_test(test_load_pca),
        cmocka_unit_test(test_load_model),
        cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_pca),
        cmocka_unit_test(test_train),
        cmocka_unit_test(test_detect),
        cmocka_unit_test(test_save),
        cmocka_unit_test(test_save_rpl),
        cmocka_unit_test(test_save_hspy),
        cmocka_unit_test(test_synth_inject),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
