/* Shared helpers for the cmocka tests. */
#ifndef EELSVAE_TESTUTIL_H
#define EELSVAE_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <eelsvae/eelsvae.h>

/* Fail the test with the library's message unless `call` returns EELSVAE_OK. */
#define assert_ok(call)                                                                                          \
    do {                                                                                                         \
        eelsvae_status tu_st_ = (call);                                                                          \
        if (tu_st_ != EELSVAE_OK)                                                                                \
            fail_msg("%s returned %s: %s", #call, eelsvae_strerror(tu_st_), eelsvae_last_error());               \
    } while (0)

/* Assert `call` fails with `expected` and leaves a non-empty message. */
#define assert_status(call, expected)                                                                            \
    do {                                                                                                         \
        eelsvae_status tu_st_ = (call);                                                                          \
        if (tu_st_ != (expected))                                                                                \
            fail_msg("%s returned %s, expected %s (%s)", #call, eelsvae_strerror(tu_st_),                        \
                     eelsvae_strerror(expected), eelsvae_last_error());                                          \
        assert_true(eelsvae_last_error()[0] != '\0');                                                            \
    } while (0)

/* |a − b| ≤ atol + rtol·|b|, with a message naming both values. */
#define assert_close(a, b, atol, rtol)                                                                           \
    do {                                                                                                         \
        double tu_a_ = (double)(a), tu_b_ = (double)(b);                                                         \
        double tu_d_ = tu_a_ - tu_b_;                                                                            \
        if (tu_d_ < 0) tu_d_ = -tu_d_;                                                                           \
        double tu_m_ = tu_b_ < 0 ? -tu_b_ : tu_b_;                                                               \
        if (!(tu_d_ <= (atol) + (rtol) * tu_m_))                                                                 \
            fail_msg("%s = %.9g, expected %s = %.9g (atol %g, rtol %g)", #a, tu_a_, #b, tu_b_, (double)(atol),   \
                     (double)(rtol));                                                                            \
    } while (0)

/* A fresh directory for this test process's files (created once, under
 * $TMPDIR or /tmp); the path stays valid for the whole process. */
const char *tu_tmpdir(void);

/* tu_path("x.npy") → "<tmpdir>/x.npy" in a static rotating buffer. */
const char *tu_path(const char *name);

/* The Python with NumPy (Debian's /usr/bin/python3), or NULL when it or
 * NumPy is missing; tests that need it skip, saying so. */
const char *tu_python(void);

/* Run a shell command built printf-style; returns its exit status. */
int tu_system(const char *fmt, ...);

/* Skip the current test with a reason printed on stderr. */
#define tu_skip(reason)                                                                                          \
    do {                                                                                                         \
        print_message("skipped: %s\n", reason);                                                                  \
        skip();                                                                                                  \
    } while (0)

/* 1 when built with AddressSanitizer (GCC's __SANITIZE_ADDRESS__ or Clang's
 * __has_feature), else 0: ASan aborts on some requests a test would make. */
#if defined(__SANITIZE_ADDRESS__)
#define TU_UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TU_UNDER_ASAN 1
#endif
#endif
#ifndef TU_UNDER_ASAN
#define TU_UNDER_ASAN 0
#endif

/* Heap bytes in use (glibc's main arena plus mmapped blocks), for tests that
 * check a memory estimate; tu_heap_measurable() is false where that cannot be
 * watched (no mallinfo2 before glibc 2.33, or AddressSanitizer's own malloc). */
size_t tu_heap_in_use(void);
int tu_heap_measurable(void);

/* Deterministic pseudo-random floats in [lo, hi). */
void tu_fill_uniform(float *x, size_t n, double lo, double hi, uint64_t seed);

/* A new cube of random samples in [0, 1). */
eelsvae_cube *tu_random_cube(size_t ny, size_t nx, size_t ne, uint64_t seed);

/* tu_random_cube calibrated: y from -2 nm in 0.25 nm steps, x from 1.5 nm in
 * 0.5 nm steps, energy from 280.5 eV in 0.05 eV steps. */
eelsvae_cube *tu_calibrated_cube(size_t ny, size_t nx, size_t ne, uint64_t seed);

/* A new signal of pseudo-random bytes, deterministic in seed; bool elements
 * are 0 or 1 and float64 ones the finite i·0.75 − 3 (not random bit patterns). */
eelsvae_signal *tu_random_signal(eelsvae_dtype dtype, size_t ndim, const size_t *shape, uint64_t seed);

/* ---- files ------------------------------------------------------------------------ */

/* The directory of the test data (tests/data): $EELSVAE_TEST_DATA, else
 * $EELSVAE_SOURCE_DIR/tests/data, else "data" beside testutil.c (a test built
 * by hand from the source root). */
const char *tu_data_dir(void);

/* The whole file, malloc'd (free() it) with a '\0' after its last byte, its
 * length in *size when size is not NULL; NULL when it cannot be read. */
char *tu_read_file(const char *path, size_t *size);

/* Write n bytes to path, failing the test on any error. */
void tu_write_file(const char *path, const void *data, size_t n);

/* Entries of dir whose names start with stem and contain ".tmp.": the
 * temporaries an atomic write must never leave behind. */
size_t tu_count_temporaries(const char *dir, const char *stem);

/* ---- HyperSpy as the oracle ----------------------------------------------------------
 * tests/data/<format>_oracle.py has two commands:
 *   make DIR                       writes its corpus to DIR and describes each file;
 *   describe FILE PREFIX [...]     describes how HyperSpy loads each FILE.
 * A description is PREFIX.txt, "key<TAB>value" lines (dtype, ndim, shape,
 * axisN.name/units/offset/scale/navigate[/equal_steps], class,
 * signal_dimension, title, signal_type, date, time, microscope, beam_energy,
 * convergence_angle, collection_angle, exposure_s), and PREFIX.bin, the
 * elements as raw bytes. */

/* /usr/bin/python3 (tu_python()) when it also imports h5py and hyperspy.api,
 * else NULL; tests that need the oracle skip, saying so. */
const char *tu_hyperspy_python(void);

/* Runs `<script> make tu_path(dirname)` once per process (script is a file
 * name in tu_data_dir()) and returns that directory; fails the test, after
 * printing the script's make.log, when it did not exit 0. One corpus per
 * process: later calls return the first one. Needs tu_hyperspy_python(). */
const char *tu_oracle_corpus(const char *script, const char *dirname);

#define TU_DESC_MAX 96

/* One oracle description, loaded whole; keys and values point into text. */
typedef struct tu_description {
    char *text;
    const char *key[TU_DESC_MAX];
    const char *value[TU_DESC_MAX];
    size_t n;
    uint8_t *bin; /* PREFIX.bin, NULL when absent */
    size_t bin_size;
} tu_description;

/* Load PREFIX.txt (failing the test when it is missing) and PREFIX.bin. */
void tu_desc_load(tu_description *d, const char *prefix);
void tu_desc_free(tu_description *d);
/* The value of key, or NULL; tu_desc_need fails the test instead. */
const char *tu_desc_get(const tu_description *d, const char *key);
const char *tu_desc_need(const tu_description *d, const char *key);
double tu_desc_number(const tu_description *d, const char *key);

/* The signal must be what HyperSpy describes at prefix: element type
 * (float16 read as float32), shape, each axis' name and units (equal),
 * offset and scale (equal; rtol 1e-12 on a point axis, whose mean step both
 * sides compute), navigate flag, the text metadata (equal, absent = ""), the
 * numeric metadata (rtol 1e-15, absent on both sides or neither) and the
 * elements (byte for byte). */
void tu_oracle_assert_matches(const eelsvae_signal *s, const char *prefix);

/* HyperSpy loads the file described at prefix as class cls with
 * signal_dimension signal axes. */
void tu_oracle_assert_class(const char *prefix, const char *cls, int signal_dimension);

/* A signal we wrote to tu_path(file), as HyperSpy should load it; its
 * description goes to tu_path(name). */
typedef struct tu_written {
    const char *name;
    const char *file;
    eelsvae_signal *expected; /* not freed here */
} tu_written;

/* Has `<script> describe` describe every written file (its output in
 * tu_path("describe.log"); the test fails unless it exits 0); then each
 * expected signal, and what eelsvae_signal_load reads back from its file,
 * must match HyperSpy's description (tu_oracle_assert_matches). */
void tu_oracle_check_written(const char *script, const tu_written *w, size_t n);

/* ---- the tiny model ----------------------------------------------------------------- */

/* tests/test_model.c's tiny network: 8 × 8 tiles of 32 channels from 695 eV;
 * convolutions 1→2 (kernel 1×1×3, stride 1×1×2, padding 0,0,1), 2→4 and
 * 4→4 (kernel 3, stride 2, padding 1); hidden 8, latent 4, beta 1.2,
 * Bernoulli loss; 2533 parameters. */
#define TU_TINY_TILE 8
#define TU_TINY_CHANNELS 32
#define TU_TINY_ENERGY_START 695.0
#define TU_TINY_LATENT 4

/* eelsvae_model_options_init(o, EELSVAE_PRESET_FAST), then the tiny network
 * over it; returns init's status. No cmocka assertion, so threads (and
 * programs that do not run under cmocka) may call it. */
eelsvae_status tu_tiny_model_options(eelsvae_model_options *o);

/* A new tiny model (eelsvae_model_create with seed), failing the test on error. */
eelsvae_model *tu_tiny_model(uint64_t seed);

/* n × n synthetic pixels (eelsvae_synth_generate, seed) on 686 … 737 eV at
 * 1 eV per channel with o_edge at 690 eV: they hold the tiny model's
 * channels (695 eV on). */
eelsvae_cube *tu_tiny_train_cube(size_t n, uint64_t seed);

#endif
