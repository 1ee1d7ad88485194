/* NumPy .npy files: round trips, files written by NumPy, NumPy reading ours,
 * hostile and truncated headers, atomic writes, cubes. */
#include "testutil.h"

#include <dirent.h>
#include <float.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "core/core.h"

/* ---- helpers ------------------------------------------------------------ */

static void write_bytes(const char *path, const void *data, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    if (n) assert_int_equal(fwrite(data, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

/* Whole file into a malloc'ed buffer (NULL if it cannot be opened). */
static uint8_t *slurp(const char *path, size_t *size)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    rewind(fp);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *size = (size_t)n;
    return buf;
}

/* A .npy image: magic, version major.0, the dict padded with spaces and a
 * newline to a 64-byte boundary (unless `pad` is 0), then the data. */
static size_t make_npy(uint8_t *buf, size_t cap, int major, const char *dict, int pad, const void *data,
                       size_t data_len)
{
    size_t len_bytes = major == 1 ? 2 : 4;
    size_t prefix = 8 + len_bytes;
    size_t dict_len = strlen(dict);
    size_t header_len = dict_len;
    if (pad) header_len = ((prefix + dict_len + 1 + 63) / 64) * 64 - prefix;
    assert_true(prefix + header_len + data_len <= cap);
    memcpy(buf, "\x93NUMPY", 6);
    buf[6] = (uint8_t)major;
    buf[7] = 0;
    for (size_t b = 0; b < len_bytes; b++) buf[8 + b] = (uint8_t)(header_len >> (8 * b));
    memcpy(buf + prefix, dict, dict_len);
    if (pad) {
        memset(buf + prefix + dict_len, ' ', header_len - dict_len);
        buf[prefix + header_len - 1] = '\n';
    }
    if (data_len) memcpy(buf + prefix + header_len, data, data_len);
    return prefix + header_len + data_len;
}

static void write_npy(const char *path, int major, const char *dict, const void *data, size_t data_len)
{
    uint8_t buf[4096];
    write_bytes(path, buf, make_npy(buf, sizeof buf, major, dict, 1, data, data_len));
}

/* Files left behind by evae_atomic_open ("NAME.tmp.XXXXXX") in a directory. */
static int count_temp_files(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) n += strstr(e->d_name, ".tmp.") != NULL;
    closedir(d);
    return n;
}

/* Exact equality, bit for bit (so -0 ≠ +0), NaN equal to any NaN. */
static void assert_same_float(float got, float want, const char *what, size_t i)
{
    if (isnan(want) && isnan(got)) return;
    uint32_t g, w;
    memcpy(&g, &got, 4);
    memcpy(&w, &want, 4);
    if (g != w) fail_msg("%s[%zu] = %a, expected %a", what, i, (double)got, (double)want);
}

/* Read a file expecting success; returns the data (eelsvae_free it). */
static float *read_ok(const char *path, size_t *ndim, size_t shape[EELSVAE_NPY_MAX_DIMS], eelsvae_dtype *dtype)
{
    float *data = NULL;
    assert_ok(eelsvae_npy_read(path, ndim, shape, dtype, &data));
    assert_non_null(data);
    return data;
}

/* Expect a read to fail with `status`, leaving the out-pointers untouched
 * and a message containing `needle` (unless NULL); `context` names the case. */
static void expect_failure_in(const char *path, eelsvae_status status, const char *needle, const char *context)
{
    size_t ndim = 99;
    size_t shape[EELSVAE_NPY_MAX_DIMS] = {0};
    eelsvae_dtype dtype = (eelsvae_dtype)77;
    float *data = (float *)(uintptr_t)0x1;
    eelsvae_status st = eelsvae_npy_read(path, &ndim, shape, &dtype, &data);
    if (st != status)
        fail_msg("%s: returned %s, expected %s (%s)", context, eelsvae_strerror(st), eelsvae_strerror(status),
                 eelsvae_last_error());
    assert_true(eelsvae_last_error()[0] != '\0');
    assert_int_equal(ndim, 99);
    assert_int_equal((int)dtype, 77);
    assert_true(data == (float *)(uintptr_t)0x1);
    if (needle && !strstr(eelsvae_last_error(), needle))
        fail_msg("%s: message \"%s\" does not mention \"%s\"", context, eelsvae_last_error(), needle);
}

static void expect_read_failure(const char *path, eelsvae_status status, const char *needle)
{
    expect_failure_in(path, status, needle, path);
}

/* ---- the formula shared with make_npy_corpus.py ------------------------- */

typedef struct corpus_type {
    const char *code;
    eelsvae_dtype dtype;
    size_t size;
    int64_t scale; /* integers only */
} corpus_type;

static const corpus_type corpus_types[] = {
    {"i1", EELSVAE_DTYPE_INT8, 1, 1},          {"u1", EELSVAE_DTYPE_UINT8, 1, 1},
    {"i2", EELSVAE_DTYPE_INT16, 2, 1000},      {"u2", EELSVAE_DTYPE_UINT16, 2, 1000},
    {"i4", EELSVAE_DTYPE_INT32, 4, 80000000},  {"u4", EELSVAE_DTYPE_UINT32, 4, 80000000},
    {"i8", EELSVAE_DTYPE_INT64, 8, 1000000007000LL}, {"u8", EELSVAE_DTYPE_UINT64, 8, 360000000000000000LL},
    {"f2", EELSVAE_DTYPE_FLOAT16, 2, 0},       {"f4", EELSVAE_DTYPE_FLOAT32, 4, 0},
    {"f8", EELSVAE_DTYPE_FLOAT64, 8, 0},       {"b1", EELSVAE_DTYPE_BOOL, 1, 0},
};
#define N_CORPUS_TYPES (sizeof corpus_types / sizeof corpus_types[0])

static int64_t formula_k(size_t i)
{
    return (int64_t)((i * 37) % 51);
}

/* The value at C-order flat index i, converted to float as the reader must. */
static float formula_float(const corpus_type *t, size_t i)
{
    int64_t k = formula_k(i);
    switch (t->code[0]) {
    case 'i': return (float)((k - 25) * t->scale);
    case 'u': return (float)((uint64_t)k * (uint64_t)t->scale);
    case 'b': return k % 3 == 0 ? 1.0f : 0.0f;
    default: return strcmp(t->code, "f2") == 0 ? (float)((double)(k - 25) / 4.0) : (float)((double)(k - 25) / 3.0);
    }
}

/* Fill `out` (n elements of t's native type) with the formula. */
static void formula_native(const corpus_type *t, size_t n, void *out)
{
    for (size_t i = 0; i < n; i++) {
        int64_t k = formula_k(i);
        int64_t s = (k - 25) * t->scale;
        uint64_t u = (uint64_t)k * (uint64_t)t->scale;
        switch (t->dtype) {
        case EELSVAE_DTYPE_INT8: ((int8_t *)out)[i] = (int8_t)s; break;
        case EELSVAE_DTYPE_UINT8: ((uint8_t *)out)[i] = (uint8_t)u; break;
        case EELSVAE_DTYPE_INT16: ((int16_t *)out)[i] = (int16_t)s; break;
        case EELSVAE_DTYPE_UINT16: ((uint16_t *)out)[i] = (uint16_t)u; break;
        case EELSVAE_DTYPE_INT32: ((int32_t *)out)[i] = (int32_t)s; break;
        case EELSVAE_DTYPE_UINT32: ((uint32_t *)out)[i] = (uint32_t)u; break;
        case EELSVAE_DTYPE_INT64: ((int64_t *)out)[i] = s; break;
        case EELSVAE_DTYPE_UINT64: ((uint64_t *)out)[i] = u; break;
        case EELSVAE_DTYPE_FLOAT32: ((float *)out)[i] = (float)((double)(k - 25) / 3.0); break;
        case EELSVAE_DTYPE_FLOAT64: ((double *)out)[i] = (double)(k - 25) / 3.0; break;
        case EELSVAE_DTYPE_BOOL: ((uint8_t *)out)[i] = k % 3 == 0; break;
        default: fail_msg("dtype %d is not written by this test", (int)t->dtype); break;
        }
    }
}

static const corpus_type *corpus_type_named(const char *code)
{
    for (size_t t = 0; t < N_CORPUS_TYPES; t++)
        if (strcmp(corpus_types[t].code, code) == 0) return &corpus_types[t];
    fail_msg("no corpus type %s", code);
    return NULL;
}

/* Read `name` from the temp dir and compare with the formula for `shape`. */
static void check_formula_file(const char *name, const char *code, size_t ndim, const size_t *shape)
{
    const corpus_type *t = corpus_type_named(code);
    size_t got_ndim = 0, got_shape[EELSVAE_NPY_MAX_DIMS];
    eelsvae_dtype dtype;
    float *data = read_ok(tu_path(name), &got_ndim, got_shape, &dtype);
    assert_int_equal(got_ndim, ndim);
    assert_int_equal((int)dtype, (int)t->dtype);
    size_t n = 1;
    for (size_t d = 0; d < ndim; d++) {
        assert_int_equal(got_shape[d], shape[d]);
        n *= shape[d];
    }
    for (size_t i = 0; i < n; i++) assert_same_float(data[i], formula_float(t, i), name, i);
    eelsvae_free(data);
}

/* ---- round trips through our writer and reader -------------------------- */

typedef struct roundtrip_case {
    eelsvae_dtype dtype;
    size_t size;
    union {
        int8_t i8[6];
        uint8_t u8[6];
        int16_t i16[6];
        uint16_t u16[6];
        int32_t i32[6];
        uint32_t u32[6];
        int64_t i64[6];
        uint64_t u64[6];
        float f32[6];
        double f64[6];
    } v;
    float want[6]; /* hand-computed nearest floats */
} roundtrip_case;

static void test_roundtrip_all_dtypes(void **state)
{
    (void)state;
    static const roundtrip_case cases[] = {
        {EELSVAE_DTYPE_INT8, 1, {.i8 = {-128, 127, -1, 0, 1, 100}}, {-128, 127, -1, 0, 1, 100}},
        {EELSVAE_DTYPE_UINT8, 1, {.u8 = {0, 255, 1, 128, 127, 2}}, {0, 255, 1, 128, 127, 2}},
        {EELSVAE_DTYPE_INT16, 2, {.i16 = {-32768, 32767, -1, 0, 1, 12345}}, {-32768, 32767, -1, 0, 1, 12345}},
        {EELSVAE_DTYPE_UINT16, 2, {.u16 = {0, 65535, 1, 32768, 255, 256}}, {0, 65535, 1, 32768, 255, 256}},
        {EELSVAE_DTYPE_INT32, 4, {.i32 = {INT32_MIN, INT32_MAX, 16777217, -16777219, -1, 0}},
         {-0x1p31f, 0x1p31f, 16777216.0f, -16777220.0f, -1, 0}},
        {EELSVAE_DTYPE_UINT32, 4, {.u32 = {0, UINT32_MAX, 16777217u, 1, 2147483648u, 123}},
         {0, 0x1p32f, 16777216.0f, 1, 0x1p31f, 123}},
        {EELSVAE_DTYPE_INT64, 8, {.i64 = {INT64_MIN, INT64_MAX, -16777217, 16777219, -1, 0}},
         {-0x1p63f, 0x1p63f, -16777216.0f, 16777220.0f, -1, 0}},
        {EELSVAE_DTYPE_UINT64, 8,
         {.u64 = {0, UINT64_MAX, 16777217u, 9223372036854775808u, 12345678901234567890u, 1}},
         {0, 0x1p64f, 16777216.0f, 0x1p63f, 0x1.56a954p+63f, 1}},
        {EELSVAE_DTYPE_FLOAT32, 4, {.f32 = {-1.5f, FLT_MAX, 0x1p-140f, -INFINITY, 0x1.fffffep-1f, -0.0f}},
         {-1.5f, FLT_MAX, 0x1p-140f, -INFINITY, 0x1.fffffep-1f, -0.0f}},
        {EELSVAE_DTYPE_FLOAT64, 8, {.f64 = {0.1, 1e300, -1e-50, 0x1p-140, -3.0, 16777217.0}},
         {0.1f, INFINITY, -0.0f, 0x1p-140f, -3.0f, 16777216.0f}},
        {EELSVAE_DTYPE_BOOL, 1, {.u8 = {0, 1, 1, 0, 0, 1}}, {0, 1, 1, 0, 0, 1}},
    };
    const size_t shapes[][3] = {{6, 0, 0}, {2, 3, 0}, {1, 2, 3}, {3, 1, 2}};
    const size_t ndims[] = {1, 2, 3, 3};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const roundtrip_case *rc = &cases[c];
        char what[32];
        snprintf(what, sizeof what, "dtype %d", (int)rc->dtype);
        for (size_t s = 0; s < 4; s++) {
            const char *path = tu_path("roundtrip.npy");
            assert_ok(eelsvae_npy_write(path, rc->dtype, &rc->v, ndims[s], shapes[s]));
            size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
            eelsvae_dtype dtype;
            float *data = read_ok(path, &ndim, shape, &dtype);
            assert_int_equal((int)dtype, (int)rc->dtype);
            assert_int_equal(ndim, ndims[s]);
            for (size_t d = 0; d < ndim; d++) assert_int_equal(shape[d], shapes[s][d]);
            for (size_t i = 0; i < 6; i++) assert_same_float(data[i], rc->want[i], what, i);
            eelsvae_free(data);
        }
        /* Scalar: shape (), one element. */
        const char *path = tu_path("scalar.npy");
        assert_ok(eelsvae_npy_write(path, rc->dtype, &rc->v, 0, NULL));
        size_t ndim = 99, shape[EELSVAE_NPY_MAX_DIMS];
        float *data = read_ok(path, &ndim, shape, NULL);
        assert_int_equal(ndim, 0);
        assert_same_float(data[0], rc->want[0], what, 0);
        eelsvae_free(data);
    }
}

static void test_roundtrip_empty_and_large_dims(void **state)
{
    (void)state;
    /* A zero-sized dimension: no data bytes, still a valid file. */
    const size_t empty[3] = {2, 0, 3};
    assert_ok(eelsvae_npy_write(tu_path("empty.npy"), EELSVAE_DTYPE_FLOAT64, NULL, 3, empty));
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    float *data = read_ok(tu_path("empty.npy"), &ndim, shape, NULL);
    assert_int_equal(ndim, 3);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 0);
    assert_int_equal(shape[2], 3);
    eelsvae_free(data);

    /* Eight dimensions, the most allowed; values must keep their C order. */
    const size_t eight[8] = {2, 1, 2, 1, 2, 1, 2, 3};
    float v[48];
    for (int i = 0; i < 48; i++) v[i] = (float)i - 20.5f;
    assert_ok(eelsvae_npy_write(tu_path("eight.npy"), EELSVAE_DTYPE_FLOAT32, v, 8, eight));
    data = read_ok(tu_path("eight.npy"), &ndim, shape, NULL);
    assert_int_equal(ndim, 8);
    for (int d = 0; d < 8; d++) assert_int_equal(shape[d], eight[d]);
    for (size_t i = 0; i < 48; i++) assert_same_float(data[i], v[i], "eight", i);
    eelsvae_free(data);

    /* More than a conversion chunk (2^17 elements) of a converted dtype,
     * in Fortran order via a hand-made header: element (r, c) of a 400 × 700
     * int32 array is r·1000 + c; the file holds it column by column. */
    const size_t rows = 400, cols = 700;
    size_t n = rows * cols;
    int32_t *col_major = malloc(n * sizeof *col_major);
    assert_non_null(col_major);
    for (size_t c = 0; c < cols; c++)
        for (size_t r = 0; r < rows; r++) col_major[c * rows + r] = (int32_t)(r * 1000 + c);
    size_t bytes = n * 4 + 256;
    uint8_t *img = malloc(bytes);
    assert_non_null(img);
    size_t len = make_npy(img, bytes, 1, "{'descr': '<i4', 'fortran_order': True, 'shape': (400, 700), }", 1,
                          col_major, n * 4);
    write_bytes(tu_path("big_fortran.npy"), img, len);
    data = read_ok(tu_path("big_fortran.npy"), &ndim, shape, NULL);
    assert_int_equal(ndim, 2);
    for (size_t r = 0; r < rows; r++)
        for (size_t c = 0; c < cols; c++) assert_same_float(data[r * cols + c], (float)(r * 1000 + c), "big", r);
    eelsvae_free(data);
    free(img);
    free(col_major);
}

/* The header is byte for byte what numpy.lib.format 1.24 writes: sorted
 * keys, room for the first dimension to grow to 21 digits, then spaces and
 * '\n' to a 64-byte boundary, a whole extra line when it would land exactly
 * on one. The totals are np.save's (numpy 1.24.2), not ours. */
static void test_writer_header_bytes(void **state)
{
    (void)state;
    struct {
        eelsvae_dtype dtype;
        size_t ndim;
        size_t shape[3];
        const char *dict;
        size_t total; /* magic + length + header, from NumPy */
    } cases[] = {
        {EELSVAE_DTYPE_FLOAT32, 2, {2, 3, 0}, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", 128},
        {EELSVAE_DTYPE_UINT8, 1, {6, 0, 0}, "{'descr': '|u1', 'fortran_order': False, 'shape': (6,), }", 128},
        {EELSVAE_DTYPE_FLOAT64, 0, {0, 0, 0}, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", 128},
        {EELSVAE_DTYPE_BOOL, 3, {1, 1, 2}, "{'descr': '|b1', 'fortran_order': False, 'shape': (1, 1, 2), }", 128},
        {EELSVAE_DTYPE_INT8, 1, {1234567, 0, 0}, "{'descr': '|i1', 'fortran_order': False, 'shape': (1234567,), }",
         128},
        /* Dict, growth room and '\n' end exactly on byte 128: NumPy pads a full 64 more. */
        {EELSVAE_DTYPE_FLOAT32, 3, {0, 100000000000000000u, 1000000000000000000u},
         "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 100000000000000000, 1000000000000000000), }", 192},
        {EELSVAE_DTYPE_FLOAT32, 3, {0, 100000000000000000u, 100000000000000000u},
         "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 100000000000000000, 100000000000000000), }", 128},
    };
    static uint8_t zeros[1234567];
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        const char *path = tu_path("header.npy");
        assert_ok(eelsvae_npy_write(path, cases[c].dtype, zeros, cases[c].ndim, cases[c].shape));
        size_t size = 0;
        uint8_t *f = slurp(path, &size);
        assert_non_null(f);
        assert_memory_equal(f, "\x93NUMPY\x01\x00", 8);
        size_t header_len = (size_t)f[8] | ((size_t)f[9] << 8);
        size_t total = 10 + header_len;
        assert_int_equal(total, cases[c].total);
        size_t dict_len = strlen(cases[c].dict);
        assert_memory_equal(f + 10, cases[c].dict, dict_len);
        for (size_t b = 10 + dict_len; b < total - 1; b++) assert_int_equal(f[b], ' ');
        assert_int_equal(f[total - 1], '\n');
        free(f);
    }
}

/* ---- files written by NumPy ---------------------------------------------- */

static const char *make_corpus(void)
{
    static int made;
    static const char *status;
    if (made) return status;
    made = 1;
    const char *python = tu_python();
    const char *data_dir = getenv("EELSVAE_TEST_DATA");
    if (!python) return status = "Python with NumPy not found";
    if (!data_dir || !*data_dir) return status = "EELSVAE_TEST_DATA is not set";
    if (tu_system("%s %s/make_npy_corpus.py %s", python, data_dir, tu_tmpdir()) != 0)
        fail_msg("make_npy_corpus.py failed");
    return status = NULL;
}

static void test_numpy_written_grid(void **state)
{
    (void)state;
    const char *skip_reason = make_corpus();
    if (skip_reason) tu_skip(skip_reason);
    const size_t shape[3] = {3, 4, 5};
    int files = 0;
    for (size_t t = 0; t < N_CORPUS_TYPES; t++) {
        const corpus_type *ct = &corpus_types[t];
        static const char *const orders_wide[] = {"le", "be"};
        static const char *const orders_byte[] = {"na"};
        const char *const *orders = ct->size == 1 ? orders_byte : orders_wide;
        size_t n_orders = ct->size == 1 ? 1 : 2;
        for (size_t o = 0; o < n_orders; o++) {
            for (int fortran = 0; fortran < 2; fortran++) {
                char name[64];
                snprintf(name, sizeof name, "np_%s_%s_%s.npy", ct->code, orders[o], fortran ? "f" : "c");
                check_formula_file(name, ct->code, 3, shape);
                files++;
            }
        }
    }
    assert_int_equal(files, 2 * (3 + 2 * 9)); /* 3 one-byte codes, 9 wider ones in 2 byte orders */
}

static void test_numpy_written_versions_and_shapes(void **state)
{
    (void)state;
    const char *skip_reason = make_corpus();
    if (skip_reason) tu_skip(skip_reason);
    const size_t shape[3] = {3, 4, 5};
    check_formula_file("np_v2_f4_be_c.npy", "f4", 3, shape);
    check_formula_file("np_v2_i2_le_f.npy", "i2", 3, shape);
    check_formula_file("np_v3_i8_be_f.npy", "i8", 3, shape);
    check_formula_file("np_v3_f2_le_c.npy", "f2", 3, shape);
    const size_t one_d[1] = {7}, two_d[2] = {4, 6};
    check_formula_file("np_1d_u2_be.npy", "u2", 1, one_d);
    check_formula_file("np_2d_f8_f.npy", "f8", 2, two_d);

    size_t ndim = 99, got[EELSVAE_NPY_MAX_DIMS];
    eelsvae_dtype dtype;
    float *data = read_ok(tu_path("np_scalar_f8.npy"), &ndim, got, &dtype);
    assert_int_equal(ndim, 0);
    assert_int_equal((int)dtype, (int)EELSVAE_DTYPE_FLOAT64);
    assert_same_float(data[0], -2.75f, "scalar f8", 0);
    eelsvae_free(data);
    data = read_ok(tu_path("np_scalar_i2_be.npy"), &ndim, got, &dtype);
    assert_int_equal(ndim, 0);
    assert_int_equal((int)dtype, (int)EELSVAE_DTYPE_INT16);
    assert_same_float(data[0], -1234.0f, "scalar i2", 0);
    eelsvae_free(data);

    data = read_ok(tu_path("np_empty_f4_be_f.npy"), &ndim, got, &dtype);
    assert_int_equal(ndim, 3);
    assert_int_equal(got[0], 2);
    assert_int_equal(got[1], 0);
    assert_int_equal(got[2], 3);
    eelsvae_free(data);
}

static void test_numpy_written_float16_specials(void **state)
{
    (void)state;
    const char *skip_reason = make_corpus();
    if (skip_reason) tu_skip(skip_reason);
    const float want[11] = {0.0f,    -0.0f,     0x1p-24f,  -0x3p-24f, 0x3FFp-24f,    0x1p-14f,
                            65504.0f, -INFINITY, INFINITY, NAN,       0x1.554p-2f};
    const char *names[2] = {"np_f2special_le.npy", "np_f2special_be.npy"};
    for (int f = 0; f < 2; f++) {
        size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
        eelsvae_dtype dtype;
        float *data = read_ok(tu_path(names[f]), &ndim, shape, &dtype);
        assert_int_equal((int)dtype, (int)EELSVAE_DTYPE_FLOAT16);
        assert_int_equal(ndim, 1);
        assert_int_equal(shape[0], 11);
        assert_true(isnan(data[9]));
        for (size_t i = 0; i < 11; i++) assert_same_float(data[i], want[i], names[f], i);
        eelsvae_free(data);
    }
}

/* NumPy loads what we write: dtype, shape and every value, and the bytes
 * equal np.save's. */
static void test_numpy_reads_ours(void **state)
{
    (void)state;
    const char *python = tu_python();
    const char *data_dir = getenv("EELSVAE_TEST_DATA");
    if (!python) tu_skip("Python with NumPy not found");
    if (!data_dir || !*data_dir) tu_skip("EELSVAE_TEST_DATA is not set");
    static const struct {
        size_t ndim;
        size_t shape[3];
        const char *suffix;
    } shapes[] = {{3, {3, 4, 5}, "3x4x5"}, {1, {7, 0, 0}, "7"}, {0, {0, 0, 0}, "scalar"}, {3, {2, 0, 3}, "2x0x3"}};
    /* Write into a fresh subdirectory so the checker sees only our files. */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ours", tu_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    double buf[60];
    for (size_t t = 0; t < N_CORPUS_TYPES; t++) {
        if (corpus_types[t].dtype == EELSVAE_DTYPE_FLOAT16) continue;
        formula_native(&corpus_types[t], 60, buf);
        for (size_t s = 0; s < 4; s++) {
            char path[1200];
            snprintf(path, sizeof path, "%s/ours_%s_%s.npy", dir, corpus_types[t].code, shapes[s].suffix);
            assert_ok(eelsvae_npy_write(path, corpus_types[t].dtype, buf, shapes[s].ndim, shapes[s].shape));
        }
    }
    assert_int_equal(tu_system("%s %s/make_npy_corpus.py --check %s", python, data_dir, dir), 0);
}

/* ---- hand-made headers: what a robust parser must accept ---------------- */

static void test_header_variants_accepted(void **state)
{
    (void)state;
    const int16_t v[6] = {1, 2, 3, 4, 5, 6};
    const int16_t v_fortran[6] = {1, 4, 2, 5, 3, 6}; /* (2, 3) column by column */
    uint8_t v_big[12];
    for (int i = 0; i < 6; i++) {
        v_big[2 * i] = 0;
        v_big[2 * i + 1] = (uint8_t)(i + 1);
    }
    struct {
        const char *dict;
        const void *data;
        size_t ndim;
        int pad;
    } cases[] = {
        {"{'shape': (2, 3), 'fortran_order': False, 'descr': '<i2'}", v, 2, 1},
        {"{ \"descr\" : \"<i2\" ,\n\t'fortran_order':False,'shape':(2,3,),\n}", v, 2, 1},
        {"{'descr': '=i2', 'fortran_order': False, 'shape': (2, 3), }", v, 2, 1},
        {"{'descr': '<i2', 'fortran_order': False, 'shape': (2L, 3L), }", v, 2, 1},
        {"{'descr': '<i2', 'fortran_order': False, 'shape': (2, 3), }", v, 2, 0}, /* no padding, no '\n' */
        {"{'descr': '<i2', 'fortran_order': True, 'shape': (2, 3), }", v_fortran, 2, 1},
        {"{'descr': '>i2', 'fortran_order': False, 'shape': (2, 3), }", v_big, 2, 1},
        {"{'descr': '<i2', 'fortran_order': False, 'shape': (6,), }", v, 1, 1},
        {"{'descr': '<i2', 'fortran_order': True, 'shape': ( 6 , ) , }", v, 1, 1},
        {"{'descr': '<i2', 'fortran_order': True, 'shape': (1, 6, 1), }", v, 3, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        uint8_t buf[512];
        size_t len = make_npy(buf, sizeof buf, 1, cases[c].dict, cases[c].pad, cases[c].data, 12);
        write_bytes(tu_path("variant.npy"), buf, len);
        size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
        eelsvae_dtype dtype;
        float *data = NULL;
        eelsvae_status st = eelsvae_npy_read(tu_path("variant.npy"), &ndim, shape, &dtype, &data);
        if (st != EELSVAE_OK) fail_msg("header %s: %s", cases[c].dict, eelsvae_last_error());
        assert_int_equal((int)dtype, (int)EELSVAE_DTYPE_INT16);
        assert_int_equal(ndim, cases[c].ndim);
        for (size_t i = 0; i < 6; i++) assert_same_float(data[i], (float)(i + 1), cases[c].dict, i);
        eelsvae_free(data);
    }
}

/* Hand-made little- and big-endian payloads, so these conversions are
 * checked even where NumPy is missing. */
static void test_hand_made_payloads(void **state)
{
    (void)state;
    /* float16 bit patterns and their exact values. */
    const uint16_t half[10] = {0x0001, 0x03FF, 0x0400, 0x7BFF, 0x7C00, 0xFC00, 0x3555, 0x8001, 0x8000, 0x7E00};
    const float half_want[10] = {0x1p-24f, 0x3FFp-24f, 0x1p-14f, 65504.0f, INFINITY,
                                 -INFINITY, 0x1.554p-2f, -0x1p-24f, -0.0f,  NAN};
    uint8_t le[20], be[20];
    for (int i = 0; i < 10; i++) {
        le[2 * i] = (uint8_t)half[i];
        le[2 * i + 1] = (uint8_t)(half[i] >> 8);
        be[2 * i] = (uint8_t)(half[i] >> 8);
        be[2 * i + 1] = (uint8_t)half[i];
    }
    const char *dicts[2] = {"{'descr': '<f2', 'fortran_order': False, 'shape': (10,), }",
                            "{'descr': '>f2', 'fortran_order': False, 'shape': (10,), }"};
    const uint8_t *payloads[2] = {le, be};
    for (int k = 0; k < 2; k++) {
        write_npy(tu_path("half.npy"), 1, dicts[k], payloads[k], 20);
        size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
        float *data = read_ok(tu_path("half.npy"), &ndim, shape, NULL);
        for (size_t i = 0; i < 10; i++) assert_same_float(data[i], half_want[i], dicts[k], i);
        eelsvae_free(data);
    }

    /* Big-endian float32 1.5 (3F C0 00 00) and -2^-149 (80 00 00 01), read
     * through the in-place path; big-endian float64 -2.0 and 2^-1074. */
    const uint8_t f4[8] = {0x3F, 0xC0, 0x00, 0x00, 0x80, 0x00, 0x00, 0x01};
    write_npy(tu_path("f4be.npy"), 1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", f4, 8);
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    float *data = read_ok(tu_path("f4be.npy"), &ndim, shape, NULL);
    assert_same_float(data[0], 1.5f, "f4be", 0);
    assert_same_float(data[1], -0x1p-149f, "f4be", 1);
    eelsvae_free(data);
    const uint8_t f8[16] = {0xC0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    write_npy(tu_path("f8be.npy"), 1, "{'descr': '>f8', 'fortran_order': False, 'shape': (2,), }", f8, 16);
    data = read_ok(tu_path("f8be.npy"), &ndim, shape, NULL);
    assert_same_float(data[0], -2.0f, "f8be", 0);
    assert_same_float(data[1], 0.0f, "f8be", 1); /* 2^-1074 rounds to +0 in float */
    eelsvae_free(data);

    /* Big-endian int64 -2 and uint32 0xFFFFFFFE; bool bytes 0, 1. */
    const uint8_t i8[8] = {0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE};
    write_npy(tu_path("i8be.npy"), 1, "{'descr': '>i8', 'fortran_order': False, 'shape': (), }", i8, 8);
    data = read_ok(tu_path("i8be.npy"), &ndim, shape, NULL);
    assert_int_equal(ndim, 0);
    assert_same_float(data[0], -2.0f, "i8be", 0);
    eelsvae_free(data);
    const uint8_t u4[4] = {0xFF, 0xFF, 0xFF, 0xFE};
    write_npy(tu_path("u4be.npy"), 1, "{'descr': '>u4', 'fortran_order': False, 'shape': (1,), }", u4, 4);
    data = read_ok(tu_path("u4be.npy"), &ndim, shape, NULL);
    assert_same_float(data[0], 0x1p32f, "u4be", 0);
    eelsvae_free(data);

    /* Versions 2.0 and 3.0 with a 4-byte header length. */
    const float f[3] = {1.25f, -7.0f, 3.0e-3f};
    for (int major = 2; major <= 3; major++) {
        write_npy(tu_path("v23.npy"), major, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", f, 12);
        data = read_ok(tu_path("v23.npy"), &ndim, shape, NULL);
        for (size_t i = 0; i < 3; i++) assert_same_float(data[i], f[i], "v23", i);
        eelsvae_free(data);
    }
}

/* ---- bad input ----------------------------------------------------------- */

static void test_bad_files(void **state)
{
    (void)state;
    const float four[4] = {1, 2, 3, 4};
    expect_read_failure(tu_path("does_not_exist.npy"), EELSVAE_ERR_IO, "does_not_exist.npy");
    expect_read_failure(tu_tmpdir(), EELSVAE_ERR_IO, NULL); /* a directory */

    uint8_t buf[512];
    size_t len = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", 1, four,
                          16);
    buf[5] = 'Z'; /* "\x93NUMPZ" */
    write_bytes(tu_path("bad.npy"), buf, len);
    expect_read_failure(tu_path("bad.npy"), EELSVAE_ERR_FORMAT, "byte 0");

    const char *ok_dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";
    len = make_npy(buf, sizeof buf, 4, ok_dict, 1, four, 16);
    write_bytes(tu_path("bad.npy"), buf, len);
    expect_read_failure(tu_path("bad.npy"), EELSVAE_ERR_UNSUPPORTED, "4.0");
    len = make_npy(buf, sizeof buf, 1, ok_dict, 1, four, 16);
    buf[7] = 1; /* version 1.1 */
    write_bytes(tu_path("bad.npy"), buf, len);
    expect_read_failure(tu_path("bad.npy"), EELSVAE_ERR_UNSUPPORTED, "1.1");

    struct {
        const char *dict;
        eelsvae_status status;
        const char *needle;
    } cases[] = {
        {"[('descr', '<f4')]", EELSVAE_ERR_FORMAT, "not a dict"},
        {"'descr'", EELSVAE_ERR_FORMAT, "not a dict"},
        {"", EELSVAE_ERR_FORMAT, "not a dict"},
        {"{'descr': '<f4', 'fortran_order': False, }", EELSVAE_ERR_FORMAT, "'shape'"},
        {"{'descr': '<f4', 'shape': (4,), }", EELSVAE_ERR_FORMAT, "'fortran_order'"},
        {"{'fortran_order': False, 'shape': (4,), }", EELSVAE_ERR_FORMAT, "'descr'"},
        {"{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (4,), }", EELSVAE_ERR_UNSUPPORTED,
         "[('a', '<f4')]"},
        {"{'descr': {'names': ['a'], 'formats': ['<f4']}, 'fortran_order': False, 'shape': (4,), }",
         EELSVAE_ERR_UNSUPPORTED, "'names'"},
        {"{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", EELSVAE_ERR_UNSUPPORTED, "<c8"},
        {"{'descr': '<c16', 'fortran_order': False, 'shape': (1,), }", EELSVAE_ERR_UNSUPPORTED, "<c16"},
        {"{'descr': '|O', 'fortran_order': False, 'shape': (2,), }", EELSVAE_ERR_UNSUPPORTED, "|O"},
        {"{'descr': '<U2', 'fortran_order': False, 'shape': (2,), }", EELSVAE_ERR_UNSUPPORTED, "<U2"},
        {"{'descr': '|S8', 'fortran_order': False, 'shape': (2,), }", EELSVAE_ERR_UNSUPPORTED, "|S8"},
        {"{'descr': '<f16', 'fortran_order': False, 'shape': (1,), }", EELSVAE_ERR_UNSUPPORTED, "<f16"},
        {"{'descr': '<M8[s]', 'fortran_order': False, 'shape': (2,), }", EELSVAE_ERR_UNSUPPORTED, "<M8[s]"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296, 2), }", EELSVAE_ERR_OVERFLOW,
         "(4294967296, 4294967296, 2)"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999999,), }", EELSVAE_ERR_OVERFLOW,
         "99999999999999999999999"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (2305843009213693952,), }", EELSVAE_ERR_OVERFLOW,
         "2305843009213693952"}, /* 2^61 elements fit, 2^64 bytes do not */
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2, 3, 4, 5, 6, 7, 8, 9), }", EELSVAE_ERR_UNSUPPORTED,
         "more than 8"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4), }", EELSVAE_ERR_FORMAT, "trailing comma"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, -2), }", EELSVAE_ERR_FORMAT, "negative"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': [4], }", EELSVAE_ERR_FORMAT, "tuple"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,,), }", EELSVAE_ERR_FORMAT, "dimension"},
        {"{'descr': '<f4', 'fortran_order': 0, 'shape': (4,), }", EELSVAE_ERR_FORMAT, "True or False"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), 'extra': 1}", EELSVAE_ERR_FORMAT, "'extra'"},
        {"{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", EELSVAE_ERR_FORMAT,
         "repeated"},
        {"{'descr': '<f4' 'fortran_order': False, 'shape': (4,), }", EELSVAE_ERR_FORMAT, "','"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), } x", EELSVAE_ERR_FORMAT, "after the header"},
        {"{'descr': '<f4, 'fortran_order': False, 'shape': (4,), }", EELSVAE_ERR_FORMAT, "byte"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), ", EELSVAE_ERR_FORMAT, "byte"},
        {"{,}", EELSVAE_ERR_FORMAT, "quoted string"},
        {"{'descr': [('a', '<f4'), 'fortran_order': False, 'shape': (4,), }", EELSVAE_ERR_FORMAT, "bracket"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        len = make_npy(buf, sizeof buf, 1, cases[c].dict, 1, four, 16);
        write_bytes(tu_path("bad.npy"), buf, len);
        expect_failure_in(tu_path("bad.npy"), cases[c].status, cases[c].needle, cases[c].dict);
        /* Every message names the file. */
        assert_non_null(strstr(eelsvae_last_error(), "bad.npy"));
    }

    /* A header length past the 1 MiB cap (version 2.0, 4-byte length). */
    len = make_npy(buf, sizeof buf, 2, ok_dict, 1, four, 16);
    buf[8] = 0;
    buf[9] = 0;
    buf[10] = 0x10;
    buf[11] = 0x7F; /* 0x7F100000 bytes */
    write_bytes(tu_path("bad.npy"), buf, len);
    expect_read_failure(tu_path("bad.npy"), EELSVAE_ERR_FORMAT, "limit");
    /* A header length past the end of the file, under the cap. */
    buf[10] = 0x01;
    buf[11] = 0;
    write_bytes(tu_path("bad.npy"), buf, len);
    expect_read_failure(tu_path("bad.npy"), EELSVAE_ERR_FORMAT, "truncated");
}

/* A header that claims 10^12 float32 elements on a 200-byte file must be
 * rejected from the sizes alone: allocating first would fail with NOMEM (or
 * an ASan allocation-size report), not FORMAT. */
static void test_lying_header_no_allocation(void **state)
{
    (void)state;
    uint8_t buf[256];
    uint8_t payload[72] = {0};
    size_t len = make_npy(buf, sizeof buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
                          1, payload, sizeof payload);
    assert_int_equal(len, 200);
    write_bytes(tu_path("liar.npy"), buf, len);
    expect_read_failure(tu_path("liar.npy"), EELSVAE_ERR_FORMAT,
                        "truncated: header claims 4000000000000 data bytes from offset 128, file has 200");
    eelsvae_cube *cube = NULL;
    assert_status(eelsvae_cube_load_npy(tu_path("liar.npy"), &cube), EELSVAE_ERR_FORMAT);
    assert_null(cube);
    /* One byte short of a valid file is caught the same way. */
    len = make_npy(buf, sizeof buf, 1, "{'descr': '<f8', 'fortran_order': False, 'shape': (3, 3), }", 1, payload,
                   71);
    write_bytes(tu_path("liar.npy"), buf, len);
    expect_read_failure(tu_path("liar.npy"), EELSVAE_ERR_FORMAT, "claims 72 data bytes from offset 128, file has 199");
}

/* Every proper prefix of a valid file fails cleanly (run under ASan). */
static void sweep_truncations(const uint8_t *full, size_t size, const char *what)
{
    /* The full file is valid, so the sweep tests truncation and nothing else. */
    write_bytes(tu_path("trunc.npy"), full, size);
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    float *data = read_ok(tu_path("trunc.npy"), &ndim, shape, NULL);
    eelsvae_free(data);
    for (size_t n = 0; n < size; n++) {
        write_bytes(tu_path("trunc.npy"), full, n);
        size_t nd = 99, sh[EELSVAE_NPY_MAX_DIMS];
        float *d = NULL;
        eelsvae_status st = eelsvae_npy_read(tu_path("trunc.npy"), &nd, sh, NULL, &d);
        if (st != EELSVAE_ERR_FORMAT && st != EELSVAE_ERR_IO)
            fail_msg("%s truncated to %zu of %zu bytes: %s (%s)", what, n, size, eelsvae_strerror(st),
                     eelsvae_last_error());
        assert_true(eelsvae_last_error()[0] != '\0');
        assert_null(d);
        assert_int_equal(nd, 99);
    }
}

static void test_truncated_at_every_length(void **state)
{
    (void)state;
    uint8_t buf[512];
    const double v[6] = {1, 2, 3, 4, 5, 6};
    size_t len = make_npy(buf, sizeof buf, 1, "{'descr': '>f8', 'fortran_order': True, 'shape': (2, 3), }", 1, v, 48);
    sweep_truncations(buf, len, "v1 >f8 Fortran");
    len = make_npy(buf, sizeof buf, 2, "{'descr': '<i2', 'fortran_order': False, 'shape': (3, 2), }", 1, v, 12);
    sweep_truncations(buf, len, "v2 <i2");
    /* Our own float32 output: the in-place read path. */
    const size_t shape[3] = {2, 2, 3};
    float f[12];
    for (int i = 0; i < 12; i++) f[i] = (float)i * 0.5f;
    assert_ok(eelsvae_npy_write(tu_path("ours_trunc.npy"), EELSVAE_DTYPE_FLOAT32, f, 3, shape));
    size_t size = 0;
    uint8_t *ours = slurp(tu_path("ours_trunc.npy"), &size);
    assert_int_equal(size, 128 + 48);
    sweep_truncations(ours, size, "our float32 file");
    free(ours);
}

/* Each allocation in turn fails: NOMEM, nothing leaks (ASan), until the
 * read succeeds with every allocation granted. */
static void test_allocation_failures(void **state)
{
    (void)state;
    uint8_t buf[512];
    const double v[6] = {1, 2, 3, 4, 5, 6};
    size_t len = make_npy(buf, sizeof buf, 1, "{'descr': '<f8', 'fortran_order': True, 'shape': (1, 2, 3), }", 1, v,
                          48);
    write_bytes(tu_path("alloc.npy"), buf, len);
    int succeeded = 0;
    for (unsigned long k = 1; k < 20 && !succeeded; k++) {
        size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
        float *data = NULL;
        evae_fail_allocation_after(k);
        eelsvae_status st = eelsvae_npy_read(tu_path("alloc.npy"), &ndim, shape, NULL, &data);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            succeeded = 1;
            assert_same_float(data[1], 3.0f, "alloc", 1); /* (0, 0, 1) is the third Fortran element */
            eelsvae_free(data);
        } else {
            assert_int_equal(st, EELSVAE_ERR_NOMEM);
            assert_null(data);
        }
    }
    assert_true(succeeded);
    succeeded = 0;
    for (unsigned long k = 1; k < 20 && !succeeded; k++) {
        eelsvae_cube *cube = NULL;
        evae_fail_allocation_after(k);
        eelsvae_status st = eelsvae_cube_load_npy(tu_path("alloc.npy"), &cube);
        evae_fail_allocation_after(0);
        if (st == EELSVAE_OK) {
            succeeded = 1;
            eelsvae_cube_free(cube);
        } else {
            assert_int_equal(st, EELSVAE_ERR_NOMEM);
            assert_null(cube);
        }
    }
    assert_true(succeeded);
}

static void test_null_arguments(void **state)
{
    (void)state;
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    float *data = NULL;
    const float one = 1.0f;
    const size_t s1 = 1;
    assert_status(eelsvae_npy_read(NULL, &ndim, shape, NULL, &data), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_read(tu_path("x.npy"), NULL, shape, NULL, &data), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_read(tu_path("x.npy"), &ndim, NULL, NULL, &data), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_read(tu_path("x.npy"), &ndim, shape, NULL, NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(NULL, EELSVAE_DTYPE_FLOAT32, &one, 1, &s1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write("", EELSVAE_DTYPE_FLOAT32, &one, 1, &s1), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(tu_path("x.npy"), EELSVAE_DTYPE_FLOAT32, NULL, 1, &s1),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(tu_path("x.npy"), EELSVAE_DTYPE_FLOAT32, &one, 1, NULL),
                  EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_load_npy(NULL, (eelsvae_cube **)&data), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_load_npy(tu_path("x.npy"), NULL), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_cube_save_npy(NULL, tu_path("x.npy")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(data);
}

/* ---- atomic writes -------------------------------------------------------- */

static void test_write_into_missing_directory(void **state)
{
    (void)state;
    const float v[2] = {1, 2};
    const size_t shape[1] = {2};
    assert_status(eelsvae_npy_write(tu_path("no_such_dir/out.npy"), EELSVAE_DTYPE_FLOAT32, v, 1, shape),
                  EELSVAE_ERR_IO);
    assert_non_null(strstr(eelsvae_last_error(), "no_such_dir/out.npy"));
    struct stat st;
    assert_int_not_equal(stat(tu_path("no_such_dir"), &st), 0);
    assert_int_equal(count_temp_files(tu_tmpdir()), 0);
}

static void test_failed_overwrite_keeps_old_file(void **state)
{
    (void)state;
    const char *path = tu_path("keep.npy");
    const int32_t old[4] = {10, -20, 30, -40};
    const size_t shape[2] = {2, 2};
    assert_ok(eelsvae_npy_write(path, EELSVAE_DTYPE_INT32, old, 2, shape));
    size_t before_size = 0;
    uint8_t *before = slurp(path, &before_size);
    assert_non_null(before);

    const float fresh[4] = {1, 2, 3, 4};
    const size_t huge[2] = {SIZE_MAX / 2, 3};
    const size_t nine[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    assert_status(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT16, fresh, 2, shape), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(path, (eelsvae_dtype)42, fresh, 2, shape), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(path, (eelsvae_dtype)-1, fresh, 2, shape), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, fresh, 9, nine), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, fresh, 2, huge), EELSVAE_ERR_OVERFLOW);
    evae_fail_allocation_after(1);
    eelsvae_status st = eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, fresh, 2, shape);
    evae_fail_allocation_after(0);
    assert_int_equal(st, EELSVAE_ERR_NOMEM);

    size_t after_size = 0;
    uint8_t *after = slurp(path, &after_size);
    assert_int_equal(after_size, before_size);
    assert_memory_equal(after, before, before_size);
    assert_int_equal(count_temp_files(tu_tmpdir()), 0);
    free(after);

    /* A successful overwrite does replace it. */
    assert_ok(eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, fresh, 2, shape));
    size_t ndim = 0, got[EELSVAE_NPY_MAX_DIMS];
    eelsvae_dtype dtype;
    float *data = read_ok(path, &ndim, got, &dtype);
    assert_int_equal((int)dtype, (int)EELSVAE_DTYPE_FLOAT32);
    for (size_t i = 0; i < 4; i++) assert_same_float(data[i], fresh[i], "fresh", i);
    eelsvae_free(data);
    free(before);
}

/* A write that fails half-way (the file-size limit stops it at 16 KiB of a
 * 64 KiB array): IO, the old file intact, the temporary removed. */
static void test_failed_midway_write_keeps_old_file(void **state)
{
    (void)state;
    const char *path = tu_path("midway.npy");
    const int16_t old[3] = {7, -8, 9};
    const size_t old_shape[1] = {3};
    assert_ok(eelsvae_npy_write(path, EELSVAE_DTYPE_INT16, old, 1, old_shape));
    size_t before_size = 0;
    uint8_t *before = slurp(path, &before_size);
    assert_non_null(before);

    static float big[16384];
    const size_t shape[1] = {16384};
    struct rlimit saved, limit;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &saved), 0);
    limit = saved;
    limit.rlim_cur = 16384;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN); /* EFBIG instead of a signal */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &limit), 0);
    eelsvae_status st = eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, big, 1, shape);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &saved), 0);
    signal(SIGXFSZ, old_handler);
    if (st != EELSVAE_ERR_IO) fail_msg("write past the size limit returned %s", eelsvae_strerror(st));
    assert_non_null(strstr(eelsvae_last_error(), "midway.npy"));

    size_t after_size = 0;
    uint8_t *after = slurp(path, &after_size);
    assert_int_equal(after_size, before_size);
    assert_memory_equal(after, before, before_size);
    assert_int_equal(count_temp_files(tu_tmpdir()), 0);
    free(after);
    free(before);
}

/* The rename at commit fails when the target is a directory: IO, the
 * directory is untouched and the temporary is removed. */
static void test_failed_commit_removes_temporary(void **state)
{
    (void)state;
    const char *dir = tu_path("a_directory.npy");
    assert_int_equal(mkdir(dir, 0700), 0);
    const float v[2] = {1, 2};
    const size_t shape[1] = {2};
    assert_status(eelsvae_npy_write(dir, EELSVAE_DTYPE_FLOAT32, v, 1, shape), EELSVAE_ERR_IO);
    struct stat st;
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(count_temp_files(tu_tmpdir()), 0);
}

/* ---- cubes ---------------------------------------------------------------- */

static void test_cube_save_load(void **state)
{
    (void)state;
    eelsvae_cube *cube = tu_random_cube(3, 5, 7, 42);
    assert_non_null(cube);
    assert_ok(eelsvae_cube_set_axis(cube, EELSVAE_AXIS_E, 420.0, 0.3, "eV"));
    assert_ok(eelsvae_cube_save_npy(cube, tu_path("cube.npy")));

    /* The file is a plain float32 (3, 5, 7) array in C order. */
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS];
    eelsvae_dtype dtype;
    float *data = read_ok(tu_path("cube.npy"), &ndim, shape, &dtype);
    assert_int_equal((int)dtype, (int)EELSVAE_DTYPE_FLOAT32);
    assert_int_equal(ndim, 3);
    assert_int_equal(shape[0], 3);
    assert_int_equal(shape[1], 5);
    assert_int_equal(shape[2], 7);
    assert_memory_equal(data, eelsvae_cube_data_const(cube), 3 * 5 * 7 * sizeof(float));
    eelsvae_free(data);

    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_cube_load_npy(tu_path("cube.npy"), &back));
    size_t ny, nx, ne;
    eelsvae_cube_shape(back, &ny, &nx, &ne);
    assert_int_equal(ny, 3);
    assert_int_equal(nx, 5);
    assert_int_equal(ne, 7);
    assert_memory_equal(eelsvae_cube_data_const(back), eelsvae_cube_data_const(cube), 3 * 5 * 7 * sizeof(float));
    assert_int_equal((uintptr_t)eelsvae_cube_data_const(back) % 64, 0);
    /* A .npy file has no calibration: the axes come back at their defaults. */
    for (int a = 0; a < 3; a++) {
        double offset = -1, scale = -1;
        const char *units = NULL;
        assert_ok(eelsvae_cube_axis(back, (eelsvae_axis)a, &offset, &scale, &units));
        assert_true(offset == 0.0);
        assert_true(scale == 1.0);
        assert_string_equal(units, a == EELSVAE_AXIS_E ? "eV" : "");
    }
    /* The loaded cube is a working cube. */
    const float *spectrum = NULL;
    assert_ok(eelsvae_cube_spectrum(back, 2, 4, &spectrum));
    assert_same_float(spectrum[6], eelsvae_cube_data_const(cube)[(2 * 5 + 4) * 7 + 6], "spectrum", 6);
    eelsvae_cube_free(back);
    eelsvae_cube_free(cube);

    /* Any dtype converts: an int16 Fortran (2, 2, 2) file. */
    const int16_t fortran[8] = {0, 4, 2, 6, 1, 5, 3, 7}; /* C-order value = flat C index */
    write_npy(tu_path("cube_i2.npy"), 1, "{'descr': '<i2', 'fortran_order': True, 'shape': (2, 2, 2), }", fortran,
              16);
    assert_ok(eelsvae_cube_load_npy(tu_path("cube_i2.npy"), &back));
    for (size_t i = 0; i < 8; i++) assert_same_float(eelsvae_cube_data_const(back)[i], (float)i, "cube_i2", i);
    eelsvae_cube_free(back);
}

static void test_cube_load_wrong_dimensions(void **state)
{
    (void)state;
    const float v[6] = {1, 2, 3, 4, 5, 6};
    const size_t two[2] = {2, 3}, four[4] = {1, 2, 3, 1}, empty[3] = {2, 0, 3};
    eelsvae_cube *cube = NULL;
    assert_ok(eelsvae_npy_write(tu_path("two_d.npy"), EELSVAE_DTYPE_FLOAT32, v, 2, two));
    assert_status(eelsvae_cube_load_npy(tu_path("two_d.npy"), &cube), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "(2, 3)"));
    assert_ok(eelsvae_npy_write(tu_path("four_d.npy"), EELSVAE_DTYPE_FLOAT32, v, 4, four));
    assert_status(eelsvae_cube_load_npy(tu_path("four_d.npy"), &cube), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "(1, 2, 3, 1)"));
    assert_ok(eelsvae_npy_write(tu_path("scalar_cube.npy"), EELSVAE_DTYPE_FLOAT32, v, 0, NULL));
    assert_status(eelsvae_cube_load_npy(tu_path("scalar_cube.npy"), &cube), EELSVAE_ERR_DIMENSION);
    assert_ok(eelsvae_npy_write(tu_path("empty_cube.npy"), EELSVAE_DTYPE_FLOAT32, v, 3, empty));
    assert_status(eelsvae_cube_load_npy(tu_path("empty_cube.npy"), &cube), EELSVAE_ERR_DIMENSION);
    assert_non_null(strstr(eelsvae_last_error(), "(2, 0, 3)"));
    expect_read_failure(tu_path("missing_cube.npy"), EELSVAE_ERR_IO, NULL);
    assert_status(eelsvae_cube_load_npy(tu_path("missing_cube.npy"), &cube), EELSVAE_ERR_IO);
    assert_null(cube);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_all_dtypes),
        cmocka_unit_test(test_roundtrip_empty_and_large_dims),
        cmocka_unit_test(test_writer_header_bytes),
        cmocka_unit_test(test_numpy_written_grid),
        cmocka_unit_test(test_numpy_written_versions_and_shapes),
        cmocka_unit_test(test_numpy_written_float16_specials),
        cmocka_unit_test(test_numpy_reads_ours),
        cmocka_unit_test(test_header_variants_accepted),
        cmocka_unit_test(test_hand_made_payloads),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_lying_header_no_allocation),
        cmocka_unit_test(test_truncated_at_every_length),
        cmocka_unit_test(test_allocation_failures),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_write_into_missing_directory),
        cmocka_unit_test(test_failed_overwrite_keeps_old_file),
        cmocka_unit_test(test_failed_midway_write_keeps_old_file),
        cmocka_unit_test(test_failed_commit_removes_temporary),
        cmocka_unit_test(test_cube_save_load),
        cmocka_unit_test(test_cube_load_wrong_dimensions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
