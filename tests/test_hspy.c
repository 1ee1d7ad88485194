/* HyperSpy .hspy files: HyperSpy itself is the oracle.
 *
 * tests/data/hspy_oracle.py makes files with HyperSpy (and h5py for the
 * broken ones) and describes how HyperSpy loads any file: shape, element
 * type, each axis' name, units, offset, scale and navigate flag, title,
 * signal type, EELS metadata, and the elements as raw bytes. We read its
 * files and must match its description exactly (bytes for the data, ==
 * for the calibration); we write files and HyperSpy's description of them
 * must match what we wrote. Without HyperSpy those tests skip, saying so;
 * the truncation, corruption and atomic-write tests need only this library. */
#include "testutil.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_private.h"

/* ---- the oracle (tests/testutil.h: tu_oracle_*) ------------------------------------- */

#define ORACLE_SCRIPT "hspy_oracle.py"

#define SKIP_WITHOUT_HDF5()                                                                                      \
    do {                                                                                                         \
        if (!eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) tu_skip("this libeelsvae was built without HDF5");    \
    } while (0)

#define SKIP_WITHOUT_HYPERSPY()                                                                                  \
    do {                                                                                                         \
        SKIP_WITHOUT_HDF5();                                                                                     \
        if (!tu_hyperspy_python()) tu_skip("no /usr/bin/python3 with hyperspy and h5py for the oracle");          \
    } while (0)

/* The oracle's corpus, made once per process. */
static const char *oracle_corpus(void)
{
    return tu_oracle_corpus(ORACLE_SCRIPT, "hspy_oracle");
}

/* ---- reading what HyperSpy wrote ------------------------------------------------- */

static void test_read_hyperspy_files(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    static const char *const names[] = {
        "eels_f32", "spectrum_f64", "image_int8", "image_uint8", "image_int16", "image_uint16", "image_int32",
        "image_uint32", "image_int64", "image_uint64", "mask_bool", "complex64", "complex128", "half",
        "big_endian_f32", "rgba8", "four_d", "chunked_gzip9", "uncompressed", "signal_first", "two",
        "points_uniform"};
    const char *dir = oracle_corpus();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1200], prefix[1200];
        snprintf(path, sizeof path, "%s/%s.hspy", dir, names[i]);
        snprintf(prefix, sizeof prefix, "%s/%s", dir, names[i]);
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_load(path, &s));
        tu_oracle_assert_matches(s, prefix);
        eelsvae_signal_free(s);
    }
}

/* The calibration reaches the cube, and the dispersion comes from the eV axis. */
static void test_read_cube_and_dispersion(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    char path[1200];
    snprintf(path, sizeof path, "%s/eels_f32.hspy", oracle_corpus());
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_load(path, &c));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_int_equal(ny, 3);
    assert_int_equal(nx, 4);
    assert_int_equal(ne, 5);
    double offset = 0, scale = 0;
    const char *units = NULL;
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_E, &offset, &scale, &units));
    assert_true(offset == 400.0 && scale == 0.125);
    assert_string_equal(units, "eV");
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_Y, &offset, &scale, &units));
    assert_true(offset == -1.5 && scale == 0.5);
    assert_string_equal(units, "nm");
    eelsvae_cube_free(c);
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load(path, &s));
    assert_string_equal(eelsvae_signal_metadata_get(s, "dispersion_ev"), "0.125");
    eelsvae_signal_free(s);
    /* A non-uniform axis cannot be offset + scale·i: refused, naming the axis. */
    snprintf(path, sizeof path, "%s/points_squares.hspy", oracle_corpus());
    assert_status(eelsvae_signal_load(path, &s), EELSVAE_ERR_UNSUPPORTED);
    assert_non_null(strstr(eelsvae_last_error(), "axis-1"));
}

/* The single-signal files shipped with HyperSpy's own tests (formats 1.0 to 3.1). */
static void test_read_hyperspy_test_corpus(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    static const char *const corpus = "/usr/lib/python3/dist-packages/hyperspy/tests/io/hdf5_files";
    static const char *const files[] = {
        "example1_v1.0.hdf5", "example1_v1.1.hdf5", "example1_v1.2.hdf5", "example2_v2.2.hspy",
        "example2_v3.1.hspy", "hspy_ext_missing.hspy", "none_metadata.hdf5", "test_marker_bad_marker_type.hdf5",
        "test_marker_point_y2_data_deleted.hdf5", "with_lists_etc.hdf5"};
    const char *dir = oracle_corpus();
    size_t read = 0;
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[1200], prefix[1200];
        snprintf(path, sizeof path, "%s/%s", corpus, files[i]);
        if (access(path, R_OK) != 0) continue;
        snprintf(prefix, sizeof prefix, "%s/corpus_%.*s", dir, (int)(strrchr(files[i], '.') - files[i]), files[i]);
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_load(path, &s));
        tu_oracle_assert_matches(s, prefix);
        eelsvae_signal_free(s);
        read++;
    }
    /* HyperSpy's rgba16 (four uint16 channels) is no element type of ours. */
    char path[1200];
    snprintf(path, sizeof path, "%s/test_rgba16.hdf5", corpus);
    if (access(path, R_OK) == 0) {
        eelsvae_signal *s = NULL;
        assert_status(eelsvae_signal_load(path, &s), EELSVAE_ERR_UNSUPPORTED);
        assert_non_null(strstr(eelsvae_last_error(), "/Experiments/Stack of /data"));
    }
    if (read == 0) tu_skip("HyperSpy's test files are not installed");
}

/* Broken files made with h5py: each has its status and names the object. */
static void test_read_broken_files(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    static const struct {
        const char *file;
        eelsvae_status status;
        const char *mentions;
    } cases[] = {
        {"bad_no_experiments.hdf5", EELSVAE_ERR_FORMAT, "/Experiments"},
        {"bad_no_data.hspy", EELSVAE_ERR_FORMAT, "data"},
        {"bad_missing_axis.hspy", EELSVAE_ERR_FORMAT, "/Experiments/__unnamed__/axis-1"},
        {"bad_axis_size.hspy", EELSVAE_ERR_FORMAT, "/Experiments/__unnamed__/axis-0"},
        {"bad_scale_zero.hspy", EELSVAE_ERR_FORMAT, "/Experiments/__unnamed__/axis-2"},
        {"bad_lzf.hspy", EELSVAE_ERR_UNSUPPORTED, "lzf"},
        {"bad_chunk.hspy", EELSVAE_ERR_FORMAT, "/Experiments/__unnamed__/data"},
    };
    const char *dir = oracle_corpus();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[1200];
        snprintf(path, sizeof path, "%s/%s", dir, cases[i].file);
        eelsvae_signal *s = NULL;
        assert_status(eelsvae_signal_load(path, &s), cases[i].status);
        assert_null(s);
        if (!strstr(eelsvae_last_error(), cases[i].mentions) || !strstr(eelsvae_last_error(), cases[i].file))
            fail_msg("%s: message \"%s\" does not name %s", cases[i].file, eelsvae_last_error(), cases[i].mentions);
    }
}

/* ---- writing what HyperSpy reads ----------------------------------------------- */

static void test_write_read_by_hyperspy(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    tu_written w[8]; /* a signal of each kind libeelsvae writes */
    size_t n = 0;

    /* A spectrum image through cube_save, and one with metadata. */
    eelsvae_cube *cube = tu_calibrated_cube(3, 4, 6, 1);
    assert_ok(eelsvae_cube_save(cube, tu_path("w_cube.hspy")));
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_from_cube(cube, &s));
    w[n++] = (tu_written){"w_cube", "w_cube.hspy", s};
    assert_ok(eelsvae_signal_from_cube(cube, &s));
    assert_ok(eelsvae_signal_metadata_set(s, "title", "Bi/Fe O\xc3\xa9 map"));
    assert_ok(eelsvae_signal_metadata_set(s, "beam_energy_kev", "300"));
    assert_ok(eelsvae_signal_metadata_set(s, "convergence_angle_mrad", "21.5"));
    assert_ok(eelsvae_signal_metadata_set(s, "collection_angle_mrad", "33.25"));
    assert_ok(eelsvae_signal_metadata_set(s, "exposure_s", "0.002"));
    assert_ok(eelsvae_signal_metadata_set(s, "acquisition_date", "2024-01-31"));
    assert_ok(eelsvae_signal_metadata_set(s, "acquisition_time", "08:09:10"));
    assert_ok(eelsvae_signal_metadata_set(s, "microscope", "Titan"));
    assert_ok(eelsvae_signal_metadata_set(s, "operator.note", "kept in original_metadata"));
    assert_ok(eelsvae_signal_save(s, tu_path("w_cube_md.hspy")));
    w[n++] = (tu_written){"w_cube_md", "w_cube_md.hspy", s};

    /* A float32 score map and a uint8 mask: Signal2D with the cube's spatial axes. */
    float score[12];
    uint8_t mask[12];
    for (size_t i = 0; i < 12; i++) {
        score[i] = (float)i * 0.5f - 2.0f;
        mask[i] = (uint8_t)(i % 3 == 0);
    }
    assert_ok(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, cube, "score map", tu_path("w_score.hspy")));
    assert_ok(eelsvae_map_save(mask, EELSVAE_DTYPE_UINT8, cube, NULL, tu_path("w_mask.hspy")));
    /* What map_save writes, built by hand: (y, x), both signal axes, the cube's calibration. */
    size_t map_shape[2] = {3, 4};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 2, map_shape, score, &s));
    assert_ok(eelsvae_signal_set_axis(s, 0, -2.0, 0.25, "y", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 1.5, 0.5, "x", "nm", 0));
    assert_ok(eelsvae_signal_metadata_set(s, "title", "score map"));
    w[n++] = (tu_written){"w_score", "w_score.hspy", s};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, map_shape, mask, &s));
    assert_ok(eelsvae_signal_set_axis(s, 0, -2.0, 0.25, "y", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 1.5, 0.5, "x", "nm", 0));
    w[n++] = (tu_written){"w_mask", "w_mask.hspy", s};

    /* Other element types and a signal axis that is not the last. */
    size_t shape3[3] = {5, 2, 3};
    s = tu_random_signal(EELSVAE_DTYPE_UINT16, 3, shape3, 2);
    assert_ok(eelsvae_signal_set_axis(s, 0, 10.0, 2.0, "Energy loss", "eV", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 0.0, 1.0, "y", "", 1));
    assert_ok(eelsvae_signal_set_axis(s, 2, 0.0, 1.0, "x", "", 1));
    assert_ok(eelsvae_signal_save(s, tu_path("w_u16_first.hspy")));
    w[n++] = (tu_written){"w_u16_first", "w_u16_first.hspy", s};
    size_t shape2[2] = {3, 5};
    s = tu_random_signal(EELSVAE_DTYPE_COMPLEX128, 2, shape2, 3);
    assert_ok(eelsvae_signal_save(s, tu_path("w_c128.hspy")));
    w[n++] = (tu_written){"w_c128", "w_c128.hspy", s};
    s = tu_random_signal(EELSVAE_DTYPE_BOOL, 2, shape2, 4);
    assert_ok(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, NULL, NULL, 0));
    assert_ok(eelsvae_signal_save(s, tu_path("w_bool.hdf5")));
    w[n++] = (tu_written){"w_bool", "w_bool.hdf5", s};
    size_t shape4[4] = {2, 3, 2, 4};
    s = tu_random_signal(EELSVAE_DTYPE_INT64, 4, shape4, 5);
    assert_ok(eelsvae_signal_save(s, tu_path("w_i64_4d.hspy")));
    w[n++] = (tu_written){"w_i64_4d", "w_i64_4d.hspy", s};

    tu_oracle_check_written(ORACLE_SCRIPT, w, n);
    tu_oracle_assert_class(tu_path("w_cube"), "EELSSpectrum", 1);
    tu_oracle_assert_class(tu_path("w_score"), "Signal2D", 2);
    tu_oracle_assert_class(tu_path("w_mask"), "Signal2D", 2);
    tu_oracle_assert_class(tu_path("w_u16_first"), "Signal1D", 1);
    tu_oracle_assert_class(tu_path("w_c128"), "ComplexSignal1D", 1);
    tu_oracle_assert_class(tu_path("w_i64_4d"), "Signal1D", 1);
    for (size_t i = 0; i < n; i++) eelsvae_signal_free(w[i].expected);
    eelsvae_cube_free(cube);
}

/* ---- without HyperSpy ---------------------------------------------------------- */

static void write_bytes_quiet(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp) return;
    fwrite(data, 1, n, fp);
    fclose(fp);
}

static void test_round_trip_and_cube(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_cube *c = tu_calibrated_cube(5, 7, 33, 11);
    const char *path = tu_path("rt.hspy");
    assert_ok(eelsvae_cube_save(c, path));
    eelsvae_format f = EELSVAE_FORMAT_UNKNOWN;
    assert_ok(eelsvae_format_detect(path, &f));
    assert_int_equal(f, EELSVAE_FORMAT_HSPY);
    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_cube_load(path, &back));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(back, &ny, &nx, &ne);
    assert_true(ny == 5 && nx == 7 && ne == 33);
    assert_memory_equal(eelsvae_cube_data(back), eelsvae_cube_data(c), 5 * 7 * 33 * sizeof(float));
    for (int a = 0; a < 3; a++) {
        double o1 = 0, s1 = 0, o2 = 0, s2 = 0;
        const char *u1 = NULL, *u2 = NULL;
        assert_ok(eelsvae_cube_axis(c, (eelsvae_axis)a, &o1, &s1, &u1));
        assert_ok(eelsvae_cube_axis(back, (eelsvae_axis)a, &o2, &s2, &u2));
        assert_true(o1 == o2 && s1 == s2);
        assert_string_equal(u1, u2);
    }
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load(path, &s));
    assert_string_equal(eelsvae_signal_metadata_get(s, "signal_type"), "EELS");
    assert_string_equal(eelsvae_signal_metadata_get(s, "dispersion_ev"), "0.05");
    /* keys HyperSpy has no place for go to original_metadata, even when two
     * of them map to one attribute name there */
    assert_ok(eelsvae_signal_metadata_set(s, "note.a", "1"));
    assert_ok(eelsvae_signal_metadata_set(s, "note_a", "2"));
    assert_ok(eelsvae_signal_save(s, tu_path("rt_keys.hspy")));
    const char *name = NULL;
    assert_ok(eelsvae_signal_axis(s, 2, NULL, NULL, &name, NULL, NULL));
    assert_string_equal(name, "Energy loss");
    /* the programs' provenance keys go to metadata.Provenance and come back */
    assert_ok(eelsvae_signal_metadata_set(s, "provenance.source", "si.dm4"));
    assert_ok(eelsvae_signal_metadata_set(s, "provenance.threshold", "0.9125"));
    assert_ok(eelsvae_signal_metadata_set(s, "provenance.operator_note", "any name comes back"));
    assert_ok(eelsvae_signal_save(s, tu_path("rt_prov.hspy")));
    eelsvae_signal *p = NULL;
    assert_ok(eelsvae_signal_load(tu_path("rt_prov.hspy"), &p));
    assert_string_equal(eelsvae_signal_metadata_get(p, "provenance.source"), "si.dm4");
    assert_string_equal(eelsvae_signal_metadata_get(p, "provenance.threshold"), "0.9125");
    assert_string_equal(eelsvae_signal_metadata_get(p, "provenance.operator_note"), "any name comes back");
    assert_null(eelsvae_signal_metadata_get(p, "provenance.model")); /* none written, none read */
    eelsvae_signal_free(p);
    eelsvae_signal_free(s);
    eelsvae_cube_free(back);
    eelsvae_cube_free(c);
}

static void test_unsupported_and_arguments(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_signal *s = NULL;
    assert_status(evae_hspy_read(NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_hspy_read(tu_path("does-not-exist.hspy"), &s), EELSVAE_ERR_IO);
    assert_status(evae_hspy_write(NULL, tu_path("x.hspy")), EELSVAE_ERR_INVALID_ARGUMENT);
    /* A text file with the extension is not HDF5. */
    tu_write_file(tu_path("text.hspy"), "width\t3\n", 8);
    assert_status(evae_hspy_read(tu_path("text.hspy"), &s), EELSVAE_ERR_FORMAT);
    assert_null(s);
    /* Writing into a directory that does not exist fails cleanly. */
    size_t shape[1] = {4};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 1, shape, NULL, &s));
    assert_status(eelsvae_signal_save(s, tu_path("no/such/dir/x.hspy")), EELSVAE_ERR_IO);
    eelsvae_signal_free(s);
}

/* A failed write leaves the old file and no temporary; a good one replaces it. */
static void test_atomic_write(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_cube *a = tu_calibrated_cube(2, 3, 4, 21), *b = tu_calibrated_cube(2, 3, 4, 22);
    const char *path = tu_path("atomic.hspy");
    assert_ok(eelsvae_cube_save(a, path));
    assert_ok(eelsvae_cube_save(b, path));
    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_cube_load(path, &back));
    assert_memory_equal(eelsvae_cube_data(back), eelsvae_cube_data(b), 24 * sizeof(float));
    eelsvae_cube_free(back);
    assert_int_equal(tu_count_temporaries(tu_tmpdir(), "atomic.hspy"), 0);
    /* The target is a non-empty directory: the rename fails after the HDF5
     * file was complete, and the temporary is removed. */
    const char *dir_target = tu_path("atomic_dir.hspy");
    assert_int_equal(mkdir(dir_target, 0700), 0);
    char inner[1100];
    snprintf(inner, sizeof inner, "%s/keep", dir_target);
    tu_write_file(inner, "x", 1);
    assert_status(eelsvae_cube_save(a, dir_target), EELSVAE_ERR_IO);
    assert_int_equal(tu_count_temporaries(tu_tmpdir(), "atomic_dir.hspy"), 0);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* Truncated files and a damaged superblock: FORMAT naming the file, never a
 * crash, and HDF5 prints nothing on stderr. */
static void test_truncated_and_corrupt(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_cube *c = tu_calibrated_cube(4, 5, 40, 31);
    const char *good = tu_path("good.hspy");
    assert_ok(eelsvae_cube_save(c, good));
    eelsvae_cube_free(c);
    size_t size = 0;
    uint8_t *bytes = (uint8_t *)tu_read_file(good, &size);
    assert_non_null(bytes);
    assert_true(size > 2048);

    /* stderr to a file: HDF5's error stacks must not appear. */
    const char *err_path = tu_path("stderr.txt");
    fflush(stderr);
    int saved = dup(2), fd = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, 2);
    close(fd);

    /* Nothing may assert while stderr is redirected: the first problem is
     * kept in `problem` and reported after. */
    char problem[512] = "";
    const char *bad = tu_path("bad.hspy");
    /* Cut anywhere: HDF5 sees the end of the file before its recorded end. */
    size_t cuts = 0;
    for (size_t cut = 8; cut < size && !problem[0]; cut += cut < 1024 ? 61 : 397, cuts++) {
        write_bytes_quiet(bad, bytes, cut);
        eelsvae_signal *s = NULL;
        eelsvae_status st = eelsvae_signal_load(bad, &s);
        if (st != EELSVAE_ERR_FORMAT || s || !strstr(eelsvae_last_error(), bad))
            snprintf(problem, sizeof problem, "truncated to %zu of %zu bytes: %s (%s)", cut, size,
                     eelsvae_strerror(st), eelsvae_last_error());
        eelsvae_signal_free(s);
    }
    /* The superblock after the signature, overwritten. */
    uint8_t *copy = malloc(size);
    memcpy(copy, bytes, size);
    memset(copy + 8, 0xEE, 40);
    write_bytes_quiet(bad, copy, size);
    eelsvae_signal *s = NULL;
    eelsvae_status st = eelsvae_signal_load(bad, &s);
    if (!problem[0] && (st != EELSVAE_ERR_FORMAT || s))
        snprintf(problem, sizeof problem, "damaged superblock: %s (%s)", eelsvae_strerror(st), eelsvae_last_error());
    eelsvae_signal_free(s);
    /* Garbage after an intact signature. (Single flipped bytes deeper in the
     * metadata are not tried: libhdf5 1.10 itself crashes on some of them,
     * h5py and HyperSpy included, which no caller of it can prevent.) */
    for (size_t i = 8; i < size; i++) copy[i] = (uint8_t)(i * 131u + 7u);
    write_bytes_quiet(bad, copy, size);
    st = eelsvae_signal_load(bad, &s);
    if (!problem[0] && (st != EELSVAE_ERR_FORMAT || s))
        snprintf(problem, sizeof problem, "garbage after the signature: %s (%s)", eelsvae_strerror(st),
                 eelsvae_last_error());
    eelsvae_signal_free(s);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    if (problem[0]) fail_msg("%s", problem);
    assert_true(cuts > 40);
    size_t printed = 0;
    char *err = tu_read_file(err_path, &printed);
    if (printed) fail_msg("HDF5 printed on stderr: %.300s", err);
    free(err);
    free(copy);
    free(bytes);
}

typedef struct reader_job {
    const char *path;
    const float *expected;
    size_t count;
    int failures;
} reader_job;

static void *read_repeatedly(void *arg)
{
    reader_job *job = arg;
    for (int i = 0; i < 6; i++) {
        eelsvae_cube *c = NULL;
        if (eelsvae_cube_load(job->path, &c) != EELSVAE_OK ||
            memcmp(eelsvae_cube_data(c), job->expected, job->count * sizeof(float)) != 0)
            job->failures++;
        eelsvae_cube_free(c);
    }
    return NULL;
}

/* Two threads reading .hspy files at once (HDF5 may not be thread-safe). */
static void test_concurrent_reads(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_cube *a = tu_calibrated_cube(6, 5, 30, 51), *b = tu_calibrated_cube(4, 7, 20, 52);
    assert_ok(eelsvae_cube_save(a, tu_path("thread_a.hspy")));
    assert_ok(eelsvae_cube_save(b, tu_path("thread_b.hspy")));
    reader_job jobs[2] = {{tu_path("thread_a.hspy"), eelsvae_cube_data(a), 6 * 5 * 30, 0},
                          {tu_path("thread_b.hspy"), eelsvae_cube_data(b), 4 * 7 * 20, 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) assert_int_equal(pthread_create(&threads[i], NULL, read_repeatedly, &jobs[i]), 0);
    for (int i = 0; i < 2; i++) pthread_join(threads[i], NULL);
    assert_int_equal(jobs[0].failures, 0);
    assert_int_equal(jobs[1].failures, 0);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

static void test_without_hdf5(void **state)
{
    (void)state;
    if (eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) tu_skip("built with HDF5 (the other tests cover it)");
    eelsvae_cube *c = tu_calibrated_cube(2, 2, 3, 41);
    assert_status(eelsvae_cube_save(c, tu_path("none.hspy")), EELSVAE_ERR_UNSUPPORTED);
    eelsvae_cube_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_hyperspy_files),
        cmocka_unit_test(test_read_cube_and_dispersion),
        cmocka_unit_test(test_read_hyperspy_test_corpus),
        cmocka_unit_test(test_read_broken_files),
        cmocka_unit_test(test_write_read_by_hyperspy),
        cmocka_unit_test(test_round_trip_and_cube),
        cmocka_unit_test(test_unsupported_and_arguments),
        cmocka_unit_test(test_atomic_write),
        cmocka_unit_test(test_truncated_and_corrupt),
        cmocka_unit_test(test_concurrent_reads),
        cmocka_unit_test(test_without_hdf5),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
