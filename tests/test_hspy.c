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
#include <dirent.h>

#include "io/io_private.h"

/* ---- the oracle --------------------------------------------------------------- */

static const char *source_dir(void)
{
    const char *d = getenv("EELSVAE_SOURCE_DIR");
    return d && *d ? d : ".";
}

static const char *oracle_script(void)
{
    static char path[1024];
    const char *data = getenv("EELSVAE_TEST_DATA");
    if (data && *data)
        snprintf(path, sizeof path, "%s/hspy_oracle.py", data);
    else
        snprintf(path, sizeof path, "%s/tests/data/hspy_oracle.py", source_dir());
    return path;
}

/* Python with HyperSpy and h5py, or NULL. */
static const char *hyperspy_python(void)
{
    static int checked;
    static const char *python;
    if (!checked) {
        checked = 1;
        const char *p = tu_python();
        if (p && tu_system("%s -c 'import h5py, hyperspy.api' >/dev/null 2>&1", p) == 0) python = p;
    }
    return python;
}

#define SKIP_WITHOUT_HDF5()                                                                                      \
    do {                                                                                                         \
        if (!eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) tu_skip("this libeelsvae was built without HDF5");    \
    } while (0)

#define SKIP_WITHOUT_HYPERSPY()                                                                                  \
    do {                                                                                                         \
        SKIP_WITHOUT_HDF5();                                                                                     \
        if (!hyperspy_python()) tu_skip("no /usr/bin/python3 with hyperspy and h5py for the oracle");             \
    } while (0)

/* The oracle's corpus, made once per process: the directory, or NULL. */
static const char *oracle_corpus(void)
{
    static int state; /* 0 not tried, 1 made, -1 failed */
    static char dir[1024];
    if (state == 0) {
        snprintf(dir, sizeof dir, "%s", tu_path("hspy_oracle"));
        mkdir(dir, 0700);
        int rc = tu_system("%s '%s' make '%s' >'%s/make.log' 2>&1", hyperspy_python(), oracle_script(), dir, dir);
        state = rc == 0 ? 1 : -1;
        if (rc != 0) tu_system("cat '%s/make.log' >&2", dir);
    }
    assert_int_equal(state, 1);
    return dir;
}

/* ---- descriptions ------------------------------------------------------------- */

#define DESC_MAX 96

typedef struct description {
    char *text;
    const char *key[DESC_MAX];
    const char *value[DESC_MAX];
    size_t n;
    uint8_t *bin;
    size_t bin_size;
} description;

static char *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(fp);
    if (buf) buf[n] = '\0';
    if (size) *size = (size_t)n;
    return buf;
}

static void desc_load(description *d, const char *prefix)
{
    char path[1200];
    memset(d, 0, sizeof *d);
    snprintf(path, sizeof path, "%s.txt", prefix);
    d->text = slurp(path, NULL);
    if (!d->text) fail_msg("no oracle description %s", path);
    for (char *line = d->text; line && *line && d->n < DESC_MAX;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        char *tab = strchr(line, '\t');
        if (tab) {
            *tab = '\0';
            d->key[d->n] = line;
            d->value[d->n++] = tab + 1;
        }
        line = next;
    }
    snprintf(path, sizeof path, "%s.bin", prefix);
    d->bin = (uint8_t *)slurp(path, &d->bin_size);
}

static void desc_free(description *d)
{
    free(d->text);
    free(d->bin);
}

static const char *desc_get(const description *d, const char *key)
{
    for (size_t i = 0; i < d->n; i++)
        if (strcmp(d->key[i], key) == 0) return d->value[i];
    return NULL;
}

static const char *desc_need(const description *d, const char *key)
{
    const char *v = desc_get(d, key);
    if (!v) fail_msg("the oracle's description has no %s", key);
    return v;
}

static double desc_number(const description *d, const char *key)
{
    return strtod(desc_need(d, key), NULL);
}

static const char *meta_or_empty(const eelsvae_signal *s, const char *key)
{
    const char *v = eelsvae_signal_metadata_get(s, key);
    return v ? v : "";
}

/* A number in HyperSpy's metadata must be ours exactly (both are the same
 * double printed to round-trip); absent there, absent here. */
static void assert_same_number(const eelsvae_signal *s, const char *ours, const description *d, const char *theirs)
{
    const char *want = desc_get(d, theirs), *have = eelsvae_signal_metadata_get(s, ours);
    if (!want) {
        if (have) fail_msg("%s = %s, but HyperSpy has no %s", ours, have, theirs);
        return;
    }
    if (!have) fail_msg("no %s; HyperSpy has %s = %s", ours, theirs, want);
    assert_close(strtod(have, NULL), strtod(want, NULL), 0.0, 1e-15);
}

static void assert_same_text(const eelsvae_signal *s, const char *ours, const description *d, const char *theirs)
{
    const char *want = desc_get(d, theirs);
    assert_string_equal(meta_or_empty(s, ours), want ? want : "");
}

/* The signal must be what HyperSpy describes at `prefix`. */
static void assert_matches(const eelsvae_signal *s, const char *prefix)
{
    description d;
    desc_load(&d, prefix);
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    const char *want_type = desc_need(&d, "dtype");
    /* float16 is read widened to float32 (the oracle's .bin is float32 too). */
    if (strcmp(want_type, "float16") == 0) want_type = "float32";
    assert_string_equal(eelsvae_dtype_name(dtype), want_type);
    assert_int_equal(ndim, (size_t)desc_number(&d, "ndim"));
    const char *p = desc_need(&d, "shape");
    for (size_t i = 0; i < ndim; i++) {
        char *end = NULL;
        assert_int_equal(shape[i], (size_t)strtoull(p, &end, 10));
        p = end;
    }
    for (size_t i = 0; i < ndim; i++) {
        char key[64];
        double offset = 0, scale = 0;
        const char *name = NULL, *units = NULL;
        int navigate = -1;
        assert_ok(eelsvae_signal_axis(s, i, &offset, &scale, &name, &units, &navigate));
        snprintf(key, sizeof key, "axis%zu.name", i);
        assert_string_equal(name, desc_need(&d, key));
        snprintf(key, sizeof key, "axis%zu.units", i);
        assert_string_equal(units, desc_need(&d, key));
        snprintf(key, sizeof key, "axis%zu.equal_steps", i);
        /* A point axis' mean step is computed (differently) on both sides. */
        double tol = desc_get(&d, key) ? 1e-12 : 0.0;
        snprintf(key, sizeof key, "axis%zu.offset", i);
        assert_close(offset, desc_number(&d, key), 0.0, tol);
        snprintf(key, sizeof key, "axis%zu.scale", i);
        assert_close(scale, desc_number(&d, key), 0.0, tol);
        snprintf(key, sizeof key, "axis%zu.navigate", i);
        assert_int_equal(navigate, (int)desc_number(&d, key));
    }
    assert_same_text(s, "title", &d, "title");
    assert_same_text(s, "signal_type", &d, "signal_type");
    assert_same_text(s, "acquisition_date", &d, "date");
    assert_same_text(s, "acquisition_time", &d, "time");
    assert_same_text(s, "microscope", &d, "microscope");
    assert_same_number(s, "beam_energy_kev", &d, "beam_energy");
    assert_same_number(s, "convergence_angle_mrad", &d, "convergence_angle");
    assert_same_number(s, "collection_angle_mrad", &d, "collection_angle");
    assert_same_number(s, "exposure_s", &d, "exposure_s");
    size_t count = 1;
    for (size_t i = 0; i < ndim; i++) count *= shape[i];
    assert_non_null(d.bin);
    assert_int_equal(d.bin_size, count * eelsvae_dtype_size(dtype));
    assert_memory_equal(eelsvae_signal_data(s), d.bin, d.bin_size);
    desc_free(&d);
}

static void assert_class(const char *prefix, const char *cls, int signal_dimension)
{
    description d;
    desc_load(&d, prefix);
    assert_string_equal(desc_need(&d, "class"), cls);
    assert_int_equal((int)desc_number(&d, "signal_dimension"), signal_dimension);
    desc_free(&d);
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
        assert_matches(s, prefix);
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
        assert_matches(s, prefix);
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

static eelsvae_cube *calibrated_cube(size_t ny, size_t nx, size_t ne, uint64_t seed)
{
    eelsvae_cube *c = tu_random_cube(ny, nx, ne, seed);
    assert_non_null(c);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, -2.0, 0.25, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 1.5, 0.5, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 280.5, 0.05, "eV"));
    return c;
}

/* A signal of each kind libeelsvae writes; prefix names its oracle description. */
typedef struct written {
    const char *name;
    eelsvae_signal *signal;
} written;

/* A signal of pseudo-random bytes (bool: 0 or 1). */
static eelsvae_signal *signal_of(eelsvae_dtype dtype, size_t ndim, const size_t *shape, uint64_t seed)
{
    size_t n = eelsvae_dtype_size(dtype);
    for (size_t d = 0; d < ndim; d++) n *= shape[d];
    uint8_t *bytes = malloc(n);
    assert_non_null(bytes);
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 7;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bytes[i] = (uint8_t)(x >> 32);
        if (dtype == EELSVAE_DTYPE_BOOL) bytes[i] &= 1;
    }
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(dtype, ndim, shape, bytes, &s));
    free(bytes);
    return s;
}

static void test_write_read_by_hyperspy(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    written w[8];
    size_t n = 0;

    /* A spectrum image through cube_save, and one with metadata. */
    eelsvae_cube *cube = calibrated_cube(3, 4, 6, 1);
    assert_ok(eelsvae_cube_save(cube, tu_path("w_cube.hspy")));
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_from_cube(cube, &s));
    w[n++] = (written){"w_cube", s};
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
    w[n++] = (written){"w_cube_md", s};

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
    w[n++] = (written){"w_score", s};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, map_shape, mask, &s));
    assert_ok(eelsvae_signal_set_axis(s, 0, -2.0, 0.25, "y", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 1.5, 0.5, "x", "nm", 0));
    w[n++] = (written){"w_mask", s};

    /* Other element types and a signal axis that is not the last. */
    size_t shape3[3] = {5, 2, 3};
    s = signal_of(EELSVAE_DTYPE_UINT16, 3, shape3, 2);
    assert_ok(eelsvae_signal_set_axis(s, 0, 10.0, 2.0, "Energy loss", "eV", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 0.0, 1.0, "y", "", 1));
    assert_ok(eelsvae_signal_set_axis(s, 2, 0.0, 1.0, "x", "", 1));
    assert_ok(eelsvae_signal_save(s, tu_path("w_u16_first.hspy")));
    w[n++] = (written){"w_u16_first", s};
    size_t shape2[2] = {3, 5};
    s = signal_of(EELSVAE_DTYPE_COMPLEX128, 2, shape2, 3);
    assert_ok(eelsvae_signal_save(s, tu_path("w_c128.hspy")));
    w[n++] = (written){"w_c128", s};
    s = signal_of(EELSVAE_DTYPE_BOOL, 2, shape2, 4);
    assert_ok(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, NULL, NULL, 0));
    assert_ok(eelsvae_signal_save(s, tu_path("w_bool.hdf5")));
    w[n++] = (written){"w_bool", s};
    size_t shape4[4] = {2, 3, 2, 4};
    s = signal_of(EELSVAE_DTYPE_INT64, 4, shape4, 5);
    assert_ok(eelsvae_signal_save(s, tu_path("w_i64_4d.hspy")));
    w[n++] = (written){"w_i64_4d", s};

    char cmd[4096];
    int len = snprintf(cmd, sizeof cmd, "%s '%s' describe", hyperspy_python(), oracle_script());
    for (size_t i = 0; i < n; i++) {
        char file[64];
        snprintf(file, sizeof file, "%s.%s", w[i].name, strcmp(w[i].name, "w_bool") == 0 ? "hdf5" : "hspy");
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", tu_path(file));
        len += snprintf(cmd + len, sizeof cmd - (size_t)len, " '%s'", tu_path(w[i].name));
    }
    assert_int_equal(tu_system("%s >'%s' 2>&1", cmd, tu_path("describe.log")), 0);

    for (size_t i = 0; i < n; i++) {
        assert_matches(w[i].signal, tu_path(w[i].name));
        /* and our reader gives back what we wrote */
        char file[64];
        snprintf(file, sizeof file, "%s.%s", w[i].name, strcmp(w[i].name, "w_bool") == 0 ? "hdf5" : "hspy");
        eelsvae_signal *back = NULL;
        assert_ok(eelsvae_signal_load(tu_path(file), &back));
        assert_matches(back, tu_path(w[i].name));
        eelsvae_signal_free(back);
    }
    assert_class(tu_path("w_cube"), "EELSSpectrum", 1);
    assert_class(tu_path("w_score"), "Signal2D", 2);
    assert_class(tu_path("w_mask"), "Signal2D", 2);
    assert_class(tu_path("w_u16_first"), "Signal1D", 1);
    assert_class(tu_path("w_c128"), "ComplexSignal1D", 1);
    assert_class(tu_path("w_i64_4d"), "Signal1D", 1);
    for (size_t i = 0; i < n; i++) eelsvae_signal_free(w[i].signal);
    eelsvae_cube_free(cube);
}

/* ---- without HyperSpy ---------------------------------------------------------- */

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

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
    eelsvae_cube *c = calibrated_cube(5, 7, 33, 11);
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
    write_bytes(tu_path("text.hspy"), "width\t3\n", 8);
    assert_status(evae_hspy_read(tu_path("text.hspy"), &s), EELSVAE_ERR_FORMAT);
    assert_null(s);
    /* Writing into a directory that does not exist fails cleanly. */
    size_t shape[1] = {4};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 1, shape, NULL, &s));
    assert_status(eelsvae_signal_save(s, tu_path("no/such/dir/x.hspy")), EELSVAE_ERR_IO);
    eelsvae_signal_free(s);
}

static size_t count_temporaries(const char *dir, const char *stem)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    for (struct dirent *e; (e = readdir(d));)
        if (strncmp(e->d_name, stem, strlen(stem)) == 0 && strstr(e->d_name, ".tmp.")) n++;
    closedir(d);
    return n;
}

/* A failed write leaves the old file and no temporary; a good one replaces it. */
static void test_atomic_write(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_cube *a = calibrated_cube(2, 3, 4, 21), *b = calibrated_cube(2, 3, 4, 22);
    const char *path = tu_path("atomic.hspy");
    assert_ok(eelsvae_cube_save(a, path));
    assert_ok(eelsvae_cube_save(b, path));
    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_cube_load(path, &back));
    assert_memory_equal(eelsvae_cube_data(back), eelsvae_cube_data(b), 24 * sizeof(float));
    eelsvae_cube_free(back);
    assert_int_equal(count_temporaries(tu_tmpdir(), "atomic.hspy"), 0);
    /* The target is a non-empty directory: the rename fails after the HDF5
     * file was complete, and the temporary is removed. */
    const char *dir_target = tu_path("atomic_dir.hspy");
    assert_int_equal(mkdir(dir_target, 0700), 0);
    char inner[1100];
    snprintf(inner, sizeof inner, "%s/keep", dir_target);
    write_bytes(inner, "x", 1);
    assert_status(eelsvae_cube_save(a, dir_target), EELSVAE_ERR_IO);
    assert_int_equal(count_temporaries(tu_tmpdir(), "atomic_dir.hspy"), 0);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

/* Truncated files and a damaged superblock: FORMAT naming the file, never a
 * crash, and HDF5 prints nothing on stderr. */
static void test_truncated_and_corrupt(void **state)
{
    (void)state;
    SKIP_WITHOUT_HDF5();
    eelsvae_cube *c = calibrated_cube(4, 5, 40, 31);
    const char *good = tu_path("good.hspy");
    assert_ok(eelsvae_cube_save(c, good));
    eelsvae_cube_free(c);
    size_t size = 0;
    uint8_t *bytes = (uint8_t *)slurp(good, &size);
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
    char *err = slurp(err_path, &printed);
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
    eelsvae_cube *a = calibrated_cube(6, 5, 30, 51), *b = calibrated_cube(4, 7, 20, 52);
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
    eelsvae_cube *c = calibrated_cube(2, 2, 3, 41);
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
