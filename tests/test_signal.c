/* The signal layer (lib/io/signal.c): the object, its axes and metadata,
 * element types, format recognition by content, signal → cube conversion
 * with the energy axis anywhere, and the save/load dispatch. Expected
 * values are worked out by hand in each test. */
#include "testutil.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* ---- the object ------------------------------------------------------------------ */

static void test_create_and_shape(void **state)
{
    (void)state;
    const int16_t values[6] = {-3, 0, 7, 32767, -32768, 12};
    size_t shape[2] = {2, 3};
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_INT16, 2, shape, values, &s));
    size_t ndim = 0, got[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    eelsvae_signal_shape(s, &ndim, got, &dtype);
    assert_int_equal(ndim, 2);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 3);
    assert_int_equal(dtype, EELSVAE_DTYPE_INT16);
    /* a copy, 64-byte aligned */
    const int16_t *data = eelsvae_signal_data(s);
    assert_true(data != values);
    assert_int_equal((uintptr_t)data % 64, 0);
    assert_memory_equal(data, values, sizeof values);
    eelsvae_signal_shape(s, NULL, NULL, NULL); /* all outputs optional */
    eelsvae_signal_free(s);

    /* NULL data gives zeros, 8 dimensions are allowed */
    size_t eight[8] = {1, 2, 1, 2, 1, 2, 1, 3};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_COMPLEX128, 8, eight, NULL, &s));
    const double *z = eelsvae_signal_data(s);
    for (size_t i = 0; i < 2 * 24; i++) assert_true(z[i] == 0.0);
    eelsvae_signal_free(s);
    eelsvae_signal_free(NULL);

    size_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1}, zero[2] = {2, 0}, huge[2] = {SIZE_MAX / 2, 3};
    s = NULL;
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 9, nine, NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 0, shape, NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, zero, NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, NULL, NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT16, 2, shape, NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_create((eelsvae_dtype)99, 2, shape, NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, huge, NULL, &s), EELSVAE_ERR_OVERFLOW);
    assert_status(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, shape, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(s);
}

/* Every numeric element type read back as a double at its flat index, and
 * the refusals: past the end, complex and RGBA elements, NULL arguments. */
static void test_value(void **state)
{
    (void)state;
    size_t shape[2] = {2, 2};
    const int8_t i8[4] = {-128, 0, 1, 127};
    const uint16_t u16[4] = {0, 1, 40000, 65535};
    const int32_t i32[4] = {INT32_MIN, -1, 2, INT32_MAX};
    const int64_t i64[4] = {-((int64_t)1 << 53), 3, -7, (int64_t)1 << 53};
    const uint64_t u64[4] = {0, 9, UINT64_C(1) << 63, 12};
    const float f32[4] = {-1.5f, 0.25f, 3e38f, -0.0f};
    const double f64[4] = {1e300, -2.5, 0.1, INFINITY};
    const uint8_t b[4] = {1, 0, 0, 1};
    const struct {
        eelsvae_dtype dtype;
        const void *data;
        double want[4];
    } cases[] = {
        {EELSVAE_DTYPE_INT8, i8, {-128, 0, 1, 127}},
        {EELSVAE_DTYPE_UINT16, u16, {0, 1, 40000, 65535}},
        {EELSVAE_DTYPE_INT32, i32, {INT32_MIN, -1, 2, INT32_MAX}},
        {EELSVAE_DTYPE_INT64, i64, {-9007199254740992.0, 3, -7, 9007199254740992.0}},
        {EELSVAE_DTYPE_UINT64, u64, {0, 9, 9223372036854775808.0, 12}},
        {EELSVAE_DTYPE_FLOAT32, f32, {-1.5, 0.25, (double)3e38f, -0.0}},
        {EELSVAE_DTYPE_FLOAT64, f64, {1e300, -2.5, 0.1, INFINITY}},
        {EELSVAE_DTYPE_BOOL, b, {1, 0, 0, 1}},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_create(cases[c].dtype, 2, shape, cases[c].data, &s));
        for (size_t i = 0; i < 4; i++) {
            double v = NAN;
            assert_ok(eelsvae_signal_value(s, i, &v));
            assert_true(v == cases[c].want[i]);
        }
        double untouched = 42.0;
        assert_status(eelsvae_signal_value(s, 4, &untouched), EELSVAE_ERR_RANGE);
        assert_non_null(strstr(eelsvae_last_error(), "index 4 of a signal of 4 elements"));
        assert_true(untouched == 42.0);
        assert_status(eelsvae_signal_value(s, 0, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
        eelsvae_signal_free(s);
    }
    double v = 0.0;
    assert_status(eelsvae_signal_value(NULL, 0, &v), EELSVAE_ERR_INVALID_ARGUMENT);
    const eelsvae_dtype not_numbers[3] = {EELSVAE_DTYPE_COMPLEX64, EELSVAE_DTYPE_COMPLEX128, EELSVAE_DTYPE_RGBA8};
    for (size_t t = 0; t < 3; t++) {
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_create(not_numbers[t], 2, shape, NULL, &s));
        assert_status(eelsvae_signal_value(s, 0, &v), EELSVAE_ERR_UNSUPPORTED);
        assert_non_null(strstr(eelsvae_last_error(), eelsvae_dtype_name(not_numbers[t])));
        eelsvae_signal_free(s);
    }
}

static void test_dtype_names_and_sizes(void **state)
{
    (void)state;
    static const struct {
        eelsvae_dtype dtype;
        const char *name;
        size_t size;
    } table[] = {
        {EELSVAE_DTYPE_INT8, "int8", 1},        {EELSVAE_DTYPE_UINT8, "uint8", 1},
        {EELSVAE_DTYPE_INT16, "int16", 2},      {EELSVAE_DTYPE_UINT16, "uint16", 2},
        {EELSVAE_DTYPE_INT32, "int32", 4},      {EELSVAE_DTYPE_UINT32, "uint32", 4},
        {EELSVAE_DTYPE_INT64, "int64", 8},      {EELSVAE_DTYPE_UINT64, "uint64", 8},
        {EELSVAE_DTYPE_FLOAT16, "float16", 2},  {EELSVAE_DTYPE_FLOAT32, "float32", 4},
        {EELSVAE_DTYPE_FLOAT64, "float64", 8},  {EELSVAE_DTYPE_BOOL, "bool", 1},
        {EELSVAE_DTYPE_COMPLEX64, "complex64", 8}, {EELSVAE_DTYPE_COMPLEX128, "complex128", 16},
        {EELSVAE_DTYPE_RGBA8, "rgba8", 4},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        assert_string_equal(eelsvae_dtype_name(table[i].dtype), table[i].name);
        assert_int_equal(eelsvae_dtype_size(table[i].dtype), table[i].size);
    }
    assert_string_equal(eelsvae_dtype_name((eelsvae_dtype)99), "unknown");
    assert_int_equal(eelsvae_dtype_size((eelsvae_dtype)99), 0);

    static const char *const formats[] = {"unknown", "npy", "dm3", "dm4", "hspy", "rpl"};
    for (int f = 0; f <= 5; f++) assert_string_equal(eelsvae_format_name((eelsvae_format)f), formats[f]);
    assert_string_equal(eelsvae_format_name((eelsvae_format)42), "unknown");
    assert_int_equal(eelsvae_format_supported(EELSVAE_FORMAT_NPY), 1);
    assert_int_equal(eelsvae_format_supported(EELSVAE_FORMAT_RPL), 1);
    assert_int_equal(eelsvae_format_supported(EELSVAE_FORMAT_DM3), 1);
    assert_int_equal(eelsvae_format_supported(EELSVAE_FORMAT_UNKNOWN), 0);
}

static void test_axes(void **state)
{
    (void)state;
    size_t shape[3] = {2, 3, 4};
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 3, shape, NULL, &s));
    /* defaults: uncalibrated, all navigate but the last */
    for (size_t d = 0; d < 3; d++) {
        double offset = -1, scale = -1;
        const char *name = NULL, *units = NULL;
        int navigate = -1;
        assert_ok(eelsvae_signal_axis(s, d, &offset, &scale, &name, &units, &navigate));
        assert_true(offset == 0.0 && scale == 1.0);
        assert_string_equal(name, "");
        assert_string_equal(units, "");
        assert_int_equal(navigate, d < 2);
    }
    assert_ok(eelsvae_signal_set_axis(s, 1, -2.5, 0.125, "x", "nm", 7)); /* any non-zero navigates */
    double offset = 0, scale = 0;
    const char *name = NULL, *units = NULL;
    int navigate = -1;
    assert_ok(eelsvae_signal_axis(s, 1, &offset, &scale, &name, &units, &navigate));
    assert_true(offset == -2.5 && scale == 0.125);
    assert_string_equal(name, "x");
    assert_string_equal(units, "nm");
    assert_int_equal(navigate, 1);
    assert_ok(eelsvae_signal_axis(s, 1, NULL, NULL, NULL, NULL, NULL));
    assert_ok(eelsvae_signal_set_axis(s, 2, 0.0, -1.0, NULL, NULL, 0)); /* negative scale is fine; NULL labels "" */
    assert_ok(eelsvae_signal_axis(s, 2, NULL, &scale, &name, &units, &navigate));
    assert_true(scale == -1.0 && navigate == 0);
    assert_string_equal(name, "");
    assert_string_equal(units, "");

    char name63[64], name64[65], units15[16], units16[17];
    memset(name63, 'n', 63), name63[63] = '\0';
    memset(name64, 'n', 64), name64[64] = '\0';
    memset(units15, 'u', 15), units15[15] = '\0';
    memset(units16, 'u', 16), units16[16] = '\0';
    assert_ok(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, name63, units15, 1));
    assert_status(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, name64, NULL, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, NULL, units16, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_set_axis(s, 0, 0.0, 0.0, NULL, NULL, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_set_axis(s, 0, NAN, 1.0, NULL, NULL, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_set_axis(s, 0, 0.0, INFINITY, NULL, NULL, 1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_set_axis(s, 3, 0.0, 1.0, NULL, NULL, 1), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_signal_axis(s, 3, NULL, NULL, NULL, NULL, NULL), EELSVAE_ERR_RANGE);
    /* a refused call changes nothing */
    assert_ok(eelsvae_signal_axis(s, 0, NULL, NULL, &name, &units, NULL));
    assert_string_equal(name, name63);
    assert_string_equal(units, units15);
    eelsvae_signal_free(s);
}

static void test_metadata(void **state)
{
    (void)state;
    size_t shape[1] = {3};
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT64, 1, shape, NULL, &s));
    assert_int_equal(eelsvae_signal_metadata_count(s), 0);
    assert_null(eelsvae_signal_metadata_get(s, "title"));
    /* more than the first capacity (8), in order */
    char key[16], value[16];
    for (int i = 0; i < 12; i++) {
        snprintf(key, sizeof key, "k%d", i);
        snprintf(value, sizeof value, "v%d", i * i);
        assert_ok(eelsvae_signal_metadata_set(s, key, value));
    }
    assert_int_equal(eelsvae_signal_metadata_count(s), 12);
    /* replacing keeps the position and the count */
    assert_ok(eelsvae_signal_metadata_set(s, "k3", "three"));
    assert_ok(eelsvae_signal_metadata_set(s, "k0", ""));
    assert_int_equal(eelsvae_signal_metadata_count(s), 12);
    for (size_t i = 0; i < 12; i++) {
        const char *k = NULL, *v = NULL;
        assert_ok(eelsvae_signal_metadata_at(s, i, &k, &v));
        snprintf(key, sizeof key, "k%zu", i);
        snprintf(value, sizeof value, "v%zu", i * i);
        assert_string_equal(k, key);
        assert_string_equal(v, i == 3 ? "three" : i == 0 ? "" : value);
        assert_string_equal(eelsvae_signal_metadata_get(s, key), v);
    }
    /* setting a value from the signal's own storage is safe */
    assert_ok(eelsvae_signal_metadata_set(s, "k5", eelsvae_signal_metadata_get(s, "k5")));
    assert_string_equal(eelsvae_signal_metadata_get(s, "k5"), "v25");
    const char *k = NULL, *v = NULL;
    assert_status(eelsvae_signal_metadata_at(s, 12, &k, &v), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_signal_metadata_at(s, 0, NULL, &v), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_metadata_set(s, "", "x"), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_metadata_set(s, NULL, "x"), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_metadata_set(s, "k1", NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_metadata_set(NULL, "k1", "x"), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(eelsvae_signal_metadata_get(s, NULL));
    assert_null(eelsvae_signal_metadata_get(NULL, "k1"));
    assert_int_equal(eelsvae_signal_metadata_count(NULL), 0);
    assert_int_equal(eelsvae_signal_metadata_count(s), 12);
    eelsvae_signal_free(s);
}

/* ---- formats by content --------------------------------------------------------- */

static void expect_format(const char *name, const void *bytes, size_t n, eelsvae_format expected)
{
    const char *path = tu_path(name);
    write_bytes(path, bytes, n);
    eelsvae_format f = (eelsvae_format)-1;
    assert_ok(eelsvae_format_detect(path, &f));
    if (f != expected)
        fail_msg("%s detected as %s, expected %s", name, eelsvae_format_name(f), eelsvae_format_name(expected));
}

static void test_format_detect(void **state)
{
    (void)state;
    /* .npy through the library's writer */
    size_t shape[2] = {2, 2};
    const float v[4] = {1, 2, 3, 4};
    assert_ok(eelsvae_npy_write(tu_path("a.npy"), EELSVAE_DTYPE_FLOAT32, v, 2, shape));
    eelsvae_format f = EELSVAE_FORMAT_UNKNOWN;
    assert_ok(eelsvae_format_detect(tu_path("a.npy"), &f));
    assert_int_equal(f, EELSVAE_FORMAT_NPY);
    /* the HDF5 signature, DM3/DM4 version words, a Ripple header: names do not matter */
    static const uint8_t hdf5[16] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n', 0, 0, 0, 0, 0, 8, 8, 0};
    static const uint8_t dm3[12] = {0, 0, 0, 3, 0, 0, 1, 0, 0, 0, 0, 1};
    static const uint8_t dm4[16] = {0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
    expect_format("hdf5.bin", hdf5, sizeof hdf5, EELSVAE_FORMAT_HSPY);
    expect_format("dm3.hspy", dm3, sizeof dm3, EELSVAE_FORMAT_DM3);
    expect_format("dm4.x", dm4, sizeof dm4, EELSVAE_FORMAT_DM4);
    static const char rpl[] = ";File created by hand\nkey\tvalue\nwidth\t2\nheight\t2\n";
    expect_format("header.txt", rpl, strlen(rpl), EELSVAE_FORMAT_RPL);
    static const char rpl_crlf[] = "key\tvalue\r\ndata-type\tfloat\r\n";
    expect_format("crlf.rpl", rpl_crlf, strlen(rpl_crlf), EELSVAE_FORMAT_RPL);
    /* not these: prose mentioning width, a key inside a line, a NUL, nothing */
    static const char prose[] = "The width of the beam is small.\n";
    expect_format("prose.rpl", prose, strlen(prose), EELSVAE_FORMAT_UNKNOWN);
    static const char inside[] = "key\tvalue\nmy-width\t3\n";
    expect_format("inside.rpl", inside, strlen(inside), EELSVAE_FORMAT_UNKNOWN);
    static const char nul[] = "width\t3\n\0";
    expect_format("nul.rpl", nul, sizeof nul, EELSVAE_FORMAT_UNKNOWN);
    expect_format("empty", "", 0, EELSVAE_FORMAT_UNKNOWN);
    static const uint8_t dm5[4] = {0, 0, 0, 5};
    expect_format("dm5", dm5, 4, EELSVAE_FORMAT_UNKNOWN);
    /* errors */
    assert_status(eelsvae_format_detect(tu_path("missing.npy"), &f), EELSVAE_ERR_IO);
    assert_status(eelsvae_format_detect(NULL, &f), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_format_detect(tu_path("a.npy"), NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    /* loading an unknown format says so */
    eelsvae_signal *s = NULL;
    assert_status(eelsvae_signal_load(tu_path("prose.rpl"), &s), EELSVAE_ERR_UNSUPPORTED);
    size_t count = 0;
    assert_status(eelsvae_file_signals(tu_path("prose.rpl"), &count, NULL), EELSVAE_ERR_UNSUPPORTED);
    assert_status(eelsvae_file_signals(tu_path("a.npy"), NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_ok(eelsvae_file_signals(tu_path("a.npy"), &count, NULL));
    assert_int_equal(count, 1);
    assert_status(eelsvae_signal_load_index(tu_path("a.npy"), 1, &s), EELSVAE_ERR_RANGE);
    assert_status(eelsvae_signal_load(tu_path("a.npy"), NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(s);
}

/* ---- signal → cube ------------------------------------------------------------------ */

static eelsvae_signal *counting_signal(eelsvae_dtype dtype, size_t ndim, const size_t *shape)
{
    size_t n = 1;
    for (size_t d = 0; d < ndim; d++) n *= shape[d];
    /* element i holds i (int16: i − 5) */
    size_t esize = eelsvae_dtype_size(dtype);
    uint8_t *bytes = calloc(n, esize);
    assert_non_null(bytes);
    for (size_t i = 0; i < n; i++) {
        switch (dtype) {
        case EELSVAE_DTYPE_INT16: ((int16_t *)bytes)[i] = (int16_t)(i - 5); break;
        case EELSVAE_DTYPE_UINT8: ((uint8_t *)bytes)[i] = (uint8_t)i; break;
        case EELSVAE_DTYPE_FLOAT32: ((float *)bytes)[i] = (float)i; break;
        default: ((double *)bytes)[i] = (double)i; break;
        }
    }
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(dtype, ndim, shape, bytes, &s));
    free(bytes);
    return s;
}

static void assert_cube_axis(const eelsvae_cube *c, eelsvae_axis a, double offset, double scale, const char *units)
{
    double o = 0, sc = 0;
    const char *u = NULL;
    assert_ok(eelsvae_cube_axis(c, a, &o, &sc, &u));
    assert_true(o == offset && sc == scale);
    assert_string_equal(u, units);
}

static void test_to_cube_1d_2d(void **state)
{
    (void)state;
    /* 1-D: a single spectrum, 1 × 1 × 5 */
    size_t shape1[1] = {5};
    eelsvae_signal *s = counting_signal(EELSVAE_DTYPE_INT16, 1, shape1);
    assert_ok(eelsvae_signal_set_axis(s, 0, 100.0, 0.5, "Energy loss", "eV", 0));
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_signal_to_cube(s, &c));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_true(ny == 1 && nx == 1 && ne == 5);
    const float *d = eelsvae_cube_data_const(c);
    for (size_t e = 0; e < 5; e++) assert_true(d[e] == (float)e - 5.0f); /* int16 i − 5 */
    assert_cube_axis(c, EELSVAE_AXIS_E, 100.0, 0.5, "eV");
    eelsvae_cube_free(c);
    eelsvae_signal_free(s);

    /* 2-D, energy last: a line of 3 spectra, 1 × 3 × 4 */
    size_t shape2[2] = {3, 4};
    s = counting_signal(EELSVAE_DTYPE_UINT8, 2, shape2);
    assert_ok(eelsvae_signal_set_axis(s, 0, 7.0, 2.0, "x", "nm", 1));
    assert_ok(eelsvae_signal_set_axis(s, 1, 50.0, 0.25, "E", "eV", 0));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_true(ny == 1 && nx == 3 && ne == 4);
    d = eelsvae_cube_data_const(c);
    for (size_t x = 0; x < 3; x++)
        for (size_t e = 0; e < 4; e++) assert_true(d[x * 4 + e] == (float)(x * 4 + e));
    assert_cube_axis(c, EELSVAE_AXIS_X, 7.0, 2.0, "nm");
    assert_cube_axis(c, EELSVAE_AXIS_E, 50.0, 0.25, "eV");
    eelsvae_cube_free(c);

    /* 2-D, energy first: element (e, x) of the signal is cube (0, x, e) */
    assert_ok(eelsvae_signal_set_axis(s, 0, 50.0, 0.25, "E", "eV", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 7.0, 2.0, "x", "nm", 1));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_true(ny == 1 && nx == 4 && ne == 3);
    d = eelsvae_cube_data_const(c);
    for (size_t x = 0; x < 4; x++)
        for (size_t e = 0; e < 3; e++) assert_true(d[x * 3 + e] == (float)(e * 4 + x));
    assert_cube_axis(c, EELSVAE_AXIS_X, 7.0, 2.0, "nm");
    assert_cube_axis(c, EELSVAE_AXIS_E, 50.0, 0.25, "eV");
    eelsvae_cube_free(c);

    /* all axes navigate: the last is energy */
    assert_ok(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, NULL, NULL, 1));
    assert_ok(eelsvae_signal_set_axis(s, 1, 0.0, 1.0, NULL, NULL, 1));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_true(ny == 1 && nx == 3 && ne == 4);
    eelsvae_cube_free(c);

    /* two signal axes (an image) is not a spectrum image */
    assert_ok(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, NULL, NULL, 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 0.0, 1.0, NULL, NULL, 0));
    c = NULL;
    assert_status(eelsvae_signal_to_cube(s, &c), EELSVAE_ERR_DIMENSION);
    assert_null(c);
    eelsvae_signal_free(s);
}

static void test_to_cube_3d(void **state)
{
    (void)state;
    /* shape (2, 3, 4) holding 0 … 23; the energy axis at position p */
    size_t shape[3] = {2, 3, 4};
    for (size_t p = 0; p < 3; p++) {
        eelsvae_signal *s = counting_signal(EELSVAE_DTYPE_FLOAT32, 3, shape);
        for (size_t d = 0; d < 3; d++)
            assert_ok(eelsvae_signal_set_axis(s, d, 10.0 * (double)(d + 1), 0.5 * (double)(d + 1), NULL,
                                              d == 0 ? "a" : d == 1 ? "b" : "c", d != p));
        eelsvae_cube *c = NULL;
        assert_ok(eelsvae_signal_to_cube(s, &c));
        /* navigation axes in C order are (y, x) */
        size_t nav[2], k = 0;
        for (size_t d = 0; d < 3; d++)
            if (d != p) nav[k++] = d;
        size_t ny = 0, nx = 0, ne = 0;
        eelsvae_cube_shape(c, &ny, &nx, &ne);
        assert_int_equal(ny, shape[nav[0]]);
        assert_int_equal(nx, shape[nav[1]]);
        assert_int_equal(ne, shape[p]);
        const float *data = eelsvae_cube_data_const(c);
        size_t stride[3] = {12, 4, 1};
        for (size_t y = 0; y < ny; y++)
            for (size_t x = 0; x < nx; x++)
                for (size_t e = 0; e < ne; e++) {
                    size_t src = y * stride[nav[0]] + x * stride[nav[1]] + e * stride[p];
                    if (data[(y * nx + x) * ne + e] != (float)src)
                        fail_msg("energy axis %zu: cube (%zu, %zu, %zu) = %g, expected element %zu", p, y, x, e,
                                 data[(y * nx + x) * ne + e], src);
                }
        static const char *const units[3] = {"a", "b", "c"};
        assert_cube_axis(c, EELSVAE_AXIS_Y, 10.0 * (double)(nav[0] + 1), 0.5 * (double)(nav[0] + 1), units[nav[0]]);
        assert_cube_axis(c, EELSVAE_AXIS_X, 10.0 * (double)(nav[1] + 1), 0.5 * (double)(nav[1] + 1), units[nav[1]]);
        assert_cube_axis(c, EELSVAE_AXIS_E, 10.0 * (double)(p + 1), 0.5 * (double)(p + 1), units[p]);
        eelsvae_cube_free(c);
        eelsvae_signal_free(s);
    }
}

static void test_to_cube_refusals(void **state)
{
    (void)state;
    size_t shape2[2] = {2, 3}, shape4[4] = {2, 2, 2, 2};
    eelsvae_cube *c = NULL;
    static const eelsvae_dtype refused[] = {EELSVAE_DTYPE_COMPLEX64, EELSVAE_DTYPE_COMPLEX128, EELSVAE_DTYPE_RGBA8};
    for (size_t i = 0; i < 3; i++) {
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_create(refused[i], 2, shape2, NULL, &s));
        assert_status(eelsvae_signal_to_cube(s, &c), EELSVAE_ERR_UNSUPPORTED);
        assert_non_null(strstr(eelsvae_last_error(), eelsvae_dtype_name(refused[i])));
        eelsvae_signal_free(s);
    }
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 4, shape4, NULL, &s));
    assert_status(eelsvae_signal_to_cube(s, &c), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_signal_to_cube(NULL, &c), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_to_cube(s, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(c);
    eelsvae_signal_free(s);
    /* large integers convert to the nearest float */
    size_t shape1[1] = {3};
    const uint64_t big[3] = {UINT64_MAX, 16777217u, 3};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_UINT64, 1, shape1, big, &s));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    const float *d = eelsvae_cube_data_const(c);
    assert_true(d[0] == 18446744073709551616.0f && d[1] == 16777216.0f && d[2] == 3.0f);
    eelsvae_cube_free(c);
    eelsvae_signal_free(s);
}

/* The cube's energy axis is in eV: keV and meV axes are converted, other
 * units kept; an axis of channel numbers stays one, and eV windows refuse it. */
static void test_to_cube_energy_units(void **state)
{
    (void)state;
    size_t shape[3] = {2, 3, 8}, first = 0, count = 0;
    eelsvae_signal *s = counting_signal(EELSVAE_DTYPE_FLOAT32, 3, shape);
    assert_ok(eelsvae_signal_set_axis(s, 0, 1.0, 0.5, "y", "nm", 1));
    eelsvae_cube *c = NULL;

    /* keV → eV: offset and scale × 1000 */
    assert_ok(eelsvae_signal_set_axis(s, 2, 0.4, 0.0001, "Energy loss", "keV", 0));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    assert_cube_axis(c, EELSVAE_AXIS_E, 0.4 * 1000.0, 0.0001 * 1000.0, "eV");
    assert_cube_axis(c, EELSVAE_AXIS_Y, 1.0, 0.5, "nm"); /* other axes untouched */
    assert_ok(eelsvae_cube_energy_window(c, 400.0, 400.5, &first, &count));
    assert_true(first == 0 && count == 6);
    eelsvae_cube_free(c);
    c = NULL;
    /* the signal itself is left in keV */
    const char *u = NULL;
    assert_ok(eelsvae_signal_axis(s, 2, NULL, NULL, NULL, &u, NULL));
    assert_string_equal(u, "keV");

    /* meV → eV: ÷ 1000 */
    assert_ok(eelsvae_signal_set_axis(s, 2, 150000.0, 50.0, "Energy loss", "meV", 0));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    assert_cube_axis(c, EELSVAE_AXIS_E, 150.0, 0.05, "eV");
    assert_ok(eelsvae_cube_energy_window(c, 150.1, 150.2, &first, &count));
    assert_true(first == 2 && count == 3);
    eelsvae_cube_free(c);
    c = NULL;

    /* other units are kept as they are ("MeV" is not "meV") */
    static const char *const kept[] = {"eV", "MeV", "nm", "a.u."};
    for (size_t i = 0; i < 4; i++) {
        assert_ok(eelsvae_signal_set_axis(s, 2, 3.0, 0.25, "E", kept[i], 0));
        assert_ok(eelsvae_signal_to_cube(s, &c));
        assert_cube_axis(c, EELSVAE_AXIS_E, 3.0, 0.25, kept[i]);
        assert_ok(eelsvae_cube_energy_window(c, 3.25, 3.75, &first, &count)); /* read in those units */
        assert_true(first == 1 && count == 3);
        eelsvae_cube_free(c);
        c = NULL;
    }

    /* a keV axis that does not fit in eV is refused, not made up */
    assert_ok(eelsvae_signal_set_axis(s, 2, 1e306, 0.001, "E", "keV", 0));
    assert_status(eelsvae_signal_to_cube(s, &c), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "keV"));
    assert_null(c);

    /* no calibration (offset 0, scale 1, no units): channel numbers, loaded
     * as they are; the eV windows refuse them until the axis is set */
    assert_ok(eelsvae_signal_set_axis(s, 2, 0.0, 1.0, "E", NULL, 0));
    assert_ok(eelsvae_signal_to_cube(s, &c));
    assert_cube_axis(c, EELSVAE_AXIS_E, 0.0, 1.0, "");
    assert_status(eelsvae_cube_energy_window(c, 1.0, 3.0, &first, &count), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_energy_window"));
    assert_non_null(strstr(eelsvae_last_error(), "uncalibrated"));
    eelsvae_cube *cropped = NULL;
    assert_status(eelsvae_cube_crop_energy(c, 1.0, 3.0, &cropped), EELSVAE_ERR_RANGE);
    assert_non_null(strstr(eelsvae_last_error(), "eelsvae_cube_crop_energy"));
    assert_null(cropped);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 500.0, 0.5, "eV"));
    assert_ok(eelsvae_cube_energy_window(c, 500.5, 501.5, &first, &count));
    assert_true(first == 1 && count == 3);
    assert_ok(eelsvae_cube_crop_energy(c, 500.5, 501.5, &cropped));
    eelsvae_cube_free(cropped);
    eelsvae_cube_free(c);
    eelsvae_signal_free(s);
}

static void test_from_cube(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(2, 3, 5, 9);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, 1.0, 2.0, "um"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 3.0, 4.0, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 5.0, 6.0, "eV"));
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_from_cube(c, &s));
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
    eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    assert_true(ndim == 3 && shape[0] == 2 && shape[1] == 3 && shape[2] == 5 && dtype == EELSVAE_DTYPE_FLOAT32);
    assert_memory_equal(eelsvae_signal_data(s), eelsvae_cube_data_const(c), 30 * sizeof(float));
    static const char *const names[3] = {"y", "x", "Energy loss"}, *const units[3] = {"um", "nm", "eV"};
    for (size_t d = 0; d < 3; d++) {
        double o = 0, sc = 0;
        const char *name = NULL, *u = NULL;
        int navigate = -1;
        assert_ok(eelsvae_signal_axis(s, d, &o, &sc, &name, &u, &navigate));
        assert_true(o == 2.0 * (double)d + 1.0 && sc == 2.0 * (double)d + 2.0);
        assert_string_equal(name, names[d]);
        assert_string_equal(u, units[d]);
        assert_int_equal(navigate, d < 2);
    }
    assert_string_equal(eelsvae_signal_metadata_get(s, "signal_type"), "EELS");
    /* and back */
    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_signal_to_cube(s, &back));
    assert_memory_equal(eelsvae_cube_data_const(back), eelsvae_cube_data_const(c), 30 * sizeof(float));
    assert_cube_axis(back, EELSVAE_AXIS_Y, 1.0, 2.0, "um");
    assert_cube_axis(back, EELSVAE_AXIS_E, 5.0, 6.0, "eV");
    assert_status(eelsvae_signal_from_cube(NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(back);
    eelsvae_signal_free(s);
    eelsvae_cube_free(c);
}

/* ---- saving and loading ---------------------------------------------------------- */

static void test_save_dispatch(void **state)
{
    (void)state;
    size_t shape[3] = {2, 1, 3};
    const int32_t values[6] = {-7, 0, 1, 2147483647, -2147483647, 42};
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_INT32, 3, shape, values, &s));
    /* .npy (any case): the element type and shape survive */
    assert_ok(eelsvae_signal_save(s, tu_path("save.NPY")));
    size_t ndim = 0, got[EELSVAE_NPY_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    float *data = NULL;
    assert_ok(eelsvae_npy_read(tu_path("save.NPY"), &ndim, got, &dtype, &data));
    assert_int_equal(ndim, 3);
    assert_true(got[0] == 2 && got[1] == 1 && got[2] == 3);
    assert_int_equal(dtype, EELSVAE_DTYPE_INT32);
    for (size_t i = 0; i < 6; i++) assert_true(data[i] == (float)values[i]);
    eelsvae_free(data);
    /* unknown or missing extensions */
    assert_status(eelsvae_signal_save(s, tu_path("save.txt")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_save(s, tu_path("save")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_save(s, tu_path("save.npy.bak")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_save(s, ""), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_save(s, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_save(NULL, tu_path("x.npy")), EELSVAE_ERR_INVALID_ARGUMENT);
    /* .rpl and .hspy go to their writers */
    assert_ok(eelsvae_signal_save(s, tu_path("save.rpl")));
    eelsvae_format f = EELSVAE_FORMAT_UNKNOWN;
    assert_ok(eelsvae_format_detect(tu_path("save.rpl"), &f));
    assert_int_equal(f, EELSVAE_FORMAT_RPL);
    if (eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) {
        assert_ok(eelsvae_signal_save(s, tu_path("save.hdf5")));
        assert_ok(eelsvae_format_detect(tu_path("save.hdf5"), &f));
        assert_int_equal(f, EELSVAE_FORMAT_HSPY);
    } else {
        assert_status(eelsvae_signal_save(s, tu_path("save.hspy")), EELSVAE_ERR_UNSUPPORTED);
    }
    eelsvae_signal_free(s);
    /* .npy holds no complex numbers */
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_COMPLEX64, 3, shape, NULL, &s));
    assert_status(eelsvae_signal_save(s, tu_path("c.npy")), EELSVAE_ERR_UNSUPPORTED);
    eelsvae_signal_free(s);
}

static eelsvae_cube *calibrated_cube(uint64_t seed)
{
    eelsvae_cube *c = tu_random_cube(3, 4, 7, seed);
    assert_non_null(c);
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_Y, -1.0, 0.5, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_X, 2.0, 0.25, "nm"));
    assert_ok(eelsvae_cube_set_axis(c, EELSVAE_AXIS_E, 400.0, 0.1, "eV"));
    return c;
}

static void test_cube_round_trips(void **state)
{
    (void)state;
    eelsvae_cube *c = calibrated_cube(5);
    static const char *const files[] = {"rt.npy", "rt.rpl", "rt.hspy"};
    for (size_t i = 0; i < 3; i++) {
        if (i == 2 && !eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) continue;
        const char *path = tu_path(files[i]);
        assert_ok(eelsvae_cube_save(c, path));
        eelsvae_cube *back = NULL;
        assert_ok(eelsvae_cube_load(path, &back));
        size_t ny = 0, nx = 0, ne = 0;
        eelsvae_cube_shape(back, &ny, &nx, &ne);
        assert_true(ny == 3 && nx == 4 && ne == 7);
        assert_memory_equal(eelsvae_cube_data_const(back), eelsvae_cube_data_const(c), 84 * sizeof(float));
        if (i == 0) {
            /* .npy has no calibration: as eelsvae_cube_create leaves it */
            assert_cube_axis(back, EELSVAE_AXIS_E, 0.0, 1.0, "eV");
            assert_cube_axis(back, EELSVAE_AXIS_Y, 0.0, 1.0, "");
        } else {
            assert_cube_axis(back, EELSVAE_AXIS_Y, -1.0, 0.5, "nm");
            assert_cube_axis(back, EELSVAE_AXIS_X, 2.0, 0.25, "nm");
            assert_cube_axis(back, EELSVAE_AXIS_E, 400.0, 0.1, "eV");
        }
        eelsvae_cube_free(back);
    }
    /* a 2-D .npy is no cube */
    size_t shape[2] = {2, 2};
    const float v[4] = {1, 2, 3, 4};
    assert_ok(eelsvae_npy_write(tu_path("flat.npy"), EELSVAE_DTYPE_FLOAT32, v, 2, shape));
    eelsvae_cube *back = NULL;
    assert_status(eelsvae_cube_load(tu_path("flat.npy"), &back), EELSVAE_ERR_DIMENSION);
    assert_status(eelsvae_cube_load(tu_path("flat.npy"), NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_save(NULL, tu_path("x.npy")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_save(c, tu_path("x.png")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(back);
    eelsvae_cube_free(c);
}

/* A cube without energy calibration is written as one (offset 0, scale 1, no
 * units) and read back uncalibrated, whatever the format. */
static void test_uncalibrated_round_trips(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_random_cube(3, 4, 7, 6);
    assert_non_null(c);
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_from_cube(c, &s));
    double o = -1, sc = -1;
    const char *u = NULL;
    assert_ok(eelsvae_signal_axis(s, 2, &o, &sc, NULL, &u, NULL));
    assert_true(o == 0.0 && sc == 1.0);
    assert_string_equal(u, "");
    eelsvae_signal_free(s);
    static const char *const files[] = {"unc.npy", "unc.rpl", "unc.hspy"};
    for (size_t i = 0; i < 3; i++) {
        if (i == 2 && !eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) continue;
        const char *path = tu_path(files[i]);
        assert_ok(eelsvae_cube_save(c, path));
        eelsvae_cube *back = NULL;
        assert_ok(eelsvae_cube_load(path, &back)); /* loading never fails for want of a calibration */
        size_t first = 0, count = 0;
        assert_status(eelsvae_cube_energy_window(back, 1.0, 3.0, &first, &count), EELSVAE_ERR_RANGE);
        assert_non_null(strstr(eelsvae_last_error(), "uncalibrated"));
        assert_ok(eelsvae_cube_set_axis(back, EELSVAE_AXIS_E, 1.0, 1.0, "eV"));
        assert_ok(eelsvae_cube_energy_window(back, 1.0, 3.0, &first, &count));
        assert_true(first == 0 && count == 3);
        eelsvae_cube_free(back);
    }
    eelsvae_cube_free(c);
}

static void test_map_save(void **state)
{
    (void)state;
    eelsvae_cube *c = calibrated_cube(6);
    uint8_t mask[12];
    float score[12];
    for (size_t i = 0; i < 12; i++) {
        mask[i] = (uint8_t)(i % 5 == 1);
        score[i] = (float)i / 4.0f;
    }
    /* .npy: the map's type and (ny, nx) shape */
    assert_ok(eelsvae_map_save(mask, EELSVAE_DTYPE_UINT8, c, "mask", tu_path("mask.npy")));
    size_t ndim = 0, got[EELSVAE_NPY_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    float *data = NULL;
    assert_ok(eelsvae_npy_read(tu_path("mask.npy"), &ndim, got, &dtype, &data));
    assert_true(ndim == 2 && got[0] == 3 && got[1] == 4 && dtype == EELSVAE_DTYPE_UINT8);
    for (size_t i = 0; i < 12; i++) assert_true(data[i] == (float)mask[i]);
    eelsvae_free(data);
    /* .rpl (and .hspy): both axes signal axes with the cube's spatial calibration and the title */
    static const char *const files[] = {"score.rpl", "score.hspy"};
    for (size_t i = 0; i < 2; i++) {
        if (i == 1 && !eelsvae_format_supported(EELSVAE_FORMAT_HSPY)) continue;
        assert_ok(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, c, "score", tu_path(files[i])));
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_load(tu_path(files[i]), &s));
        size_t shape[EELSVAE_SIGNAL_MAX_DIMS];
        eelsvae_signal_shape(s, &ndim, shape, &dtype);
        assert_true(ndim == 2 && shape[0] == 3 && shape[1] == 4 && dtype == EELSVAE_DTYPE_FLOAT32);
        assert_memory_equal(eelsvae_signal_data(s), score, sizeof score);
        double o = 0, sc = 0;
        const char *name = NULL, *units = NULL;
        int navigate = -1;
        assert_ok(eelsvae_signal_axis(s, 0, &o, &sc, &name, &units, &navigate));
        assert_true(o == -1.0 && sc == 0.5 && navigate == 0);
        assert_string_equal(name, "y");
        assert_string_equal(units, "nm");
        assert_ok(eelsvae_signal_axis(s, 1, &o, &sc, &name, &units, &navigate));
        assert_true(o == 2.0 && sc == 0.25 && navigate == 0);
        assert_string_equal(name, "x");
        assert_string_equal(eelsvae_signal_metadata_get(s, "title"), "score");
        eelsvae_signal_free(s);
        /* a map is not a spectrum image: cube_load says which file and why */
        eelsvae_cube *back = NULL;
        assert_status(eelsvae_cube_load(tu_path(files[i]), &back), EELSVAE_ERR_DIMENSION);
        assert_non_null(strstr(eelsvae_last_error(), files[i]));
        assert_non_null(strstr(eelsvae_last_error(), "2 signal axes"));
    }
    /* no title is fine; bad arguments are not */
    assert_ok(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, c, NULL, tu_path("untitled.rpl")));
    assert_status(eelsvae_map_save(NULL, EELSVAE_DTYPE_FLOAT32, c, NULL, tu_path("x.npy")),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, NULL, NULL, tu_path("x.npy")),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, c, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, c, NULL, tu_path("x.bmp")),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    /* the signal map_save writes, handed out to take metadata first */
    eelsvae_signal *m = NULL;
    assert_ok(eelsvae_map_to_signal(score, EELSVAE_DTYPE_FLOAT32, c, &m));
    size_t map_ndim = 0, map_shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_signal_shape(m, &map_ndim, map_shape, NULL);
    assert_true(map_ndim == 2 && map_shape[0] == 3 && map_shape[1] == 4);
    assert_memory_equal(eelsvae_signal_data(m), score, sizeof score);
    double x0 = 0, dx = 0;
    int x_navigates = 1;
    assert_ok(eelsvae_signal_axis(m, 1, &x0, &dx, NULL, NULL, &x_navigates));
    assert_true(x0 == 2.0 && dx == 0.25 && x_navigates == 0);
    eelsvae_signal_free(m);
    assert_status(eelsvae_map_to_signal(score, EELSVAE_DTYPE_FLOAT32, NULL, &m), EELSVAE_ERR_INVALID_ARGUMENT);
    eelsvae_cube_free(c);
}

/* Reading a .npy as a signal: any dimensions, the file's element type; 0-D refused. */
static void test_npy_signal(void **state)
{
    (void)state;
    size_t shape[4] = {1, 2, 1, 3};
    const double v[6] = {0.5, -1, 2, 3, 4, 1e300};
    assert_ok(eelsvae_npy_write(tu_path("four.npy"), EELSVAE_DTYPE_FLOAT64, v, 4, shape));
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load(tu_path("four.npy"), &s));
    size_t ndim = 0, got[EELSVAE_SIGNAL_MAX_DIMS];
    eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
    eelsvae_signal_shape(s, &ndim, got, &dtype);
    assert_true(ndim == 4 && got[0] == 1 && got[1] == 2 && got[2] == 1 && got[3] == 3);
    assert_int_equal(dtype, EELSVAE_DTYPE_FLOAT64);
    assert_memory_equal(eelsvae_signal_data(s), v, sizeof v); /* 1e300 survives: no float32 on the way */
    eelsvae_signal_free(s);
    const uint16_t u[6] = {0, 1, 65535, 300, 7, 9};
    assert_ok(eelsvae_npy_write(tu_path("u16.npy"), EELSVAE_DTYPE_UINT16, u, 4, shape));
    assert_ok(eelsvae_signal_load(tu_path("u16.npy"), &s));
    eelsvae_signal_shape(s, NULL, NULL, &dtype);
    assert_int_equal(dtype, EELSVAE_DTYPE_UINT16);
    assert_memory_equal(eelsvae_signal_data(s), u, sizeof u);
    eelsvae_signal_free(s);
    assert_ok(eelsvae_npy_write(tu_path("scalar.npy"), EELSVAE_DTYPE_FLOAT64, v, 0, shape));
    s = NULL;
    assert_status(eelsvae_signal_load(tu_path("scalar.npy"), &s), EELSVAE_ERR_DIMENSION);
    assert_null(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_create_and_shape),
        cmocka_unit_test(test_value),
        cmocka_unit_test(test_dtype_names_and_sizes),
        cmocka_unit_test(test_axes),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_format_detect),
        cmocka_unit_test(test_to_cube_1d_2d),
        cmocka_unit_test(test_to_cube_3d),
        cmocka_unit_test(test_to_cube_refusals),
        cmocka_unit_test(test_to_cube_energy_units),
        cmocka_unit_test(test_from_cube),
        cmocka_unit_test(test_save_dispatch),
        cmocka_unit_test(test_cube_round_trips),
        cmocka_unit_test(test_uncalibrated_round_trips),
        cmocka_unit_test(test_map_save),
        cmocka_unit_test(test_npy_signal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
