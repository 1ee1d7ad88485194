/* Ripple .rpl/.raw files: HyperSpy itself is the oracle.
 *
 * tests/data/rpl_oracle.py writes Ripple files with HyperSpy (and by hand,
 * for what only HyperSpy's reader knows) and describes how HyperSpy loads
 * any file: shape, element type, each axis' name, units, offset, scale and
 * navigate flag, title, signal type, EELS metadata and the elements as raw
 * bytes. We read its files and the ones shipped with HyperSpy's tests and
 * must match exactly; we write files and HyperSpy's description of them
 * must match what we wrote. Without HyperSpy those tests skip, saying so;
 * the bad-header, byte-order and layout tests use hand-made files whose
 * expected values are worked out here. */
#include "testutil.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/io_private.h"

/* ---- the oracle (tests/testutil.h: tu_oracle_*) ------------------------------------- */

#define ORACLE_SCRIPT "rpl_oracle.py"

#define SKIP_WITHOUT_HYPERSPY()                                                                                  \
    do {                                                                                                         \
        if (!tu_hyperspy_python()) tu_skip("no /usr/bin/python3 with hyperspy for the oracle");                   \
    } while (0)

/* The oracle's files, made once per process. */
static const char *oracle_corpus(void)
{
    return tu_oracle_corpus(ORACLE_SCRIPT, "rpl_oracle");
}

static void test_read_hyperspy_files(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    static const char *const names[] = {"si_f32", "line_float64", "line_uint8", "line_uint16", "line_int32",
                                        "line_int64", "big_f64", "big_u16", "spectrum", "image", "stack",
                                        "h_int8", "h_int16_be", "h_uint32_stack", "h_uint64_image"};
    const char *dir = oracle_corpus();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[1200], prefix[1200];
        snprintf(path, sizeof path, "%s/%s.rpl", dir, names[i]);
        snprintf(prefix, sizeof prefix, "%s/%s", dir, names[i]);
        eelsvae_format f = EELSVAE_FORMAT_UNKNOWN;
        assert_ok(eelsvae_format_detect(path, &f));
        assert_int_equal(f, EELSVAE_FORMAT_RPL);
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_load(path, &s));
        tu_oracle_assert_matches(s, prefix);
        eelsvae_signal_free(s);
    }
    /* The dispersion: depth-scale in eV, else ev-per-chan (HyperSpy's rounded
     * "ev-per-chan 0" for 0.05 eV is not used when depth-scale is there). */
    char path[1200];
    eelsvae_signal *s = NULL;
    snprintf(path, sizeof path, "%s/si_f32.rpl", dir);
    assert_ok(eelsvae_signal_load(path, &s));
    assert_string_equal(eelsvae_signal_metadata_get(s, "dispersion_ev"), "0.05");
    eelsvae_signal_free(s);
    snprintf(path, sizeof path, "%s/h_int16_be.rpl", dir);
    assert_ok(eelsvae_signal_load(path, &s));
    assert_string_equal(eelsvae_signal_metadata_get(s, "dispersion_ev"), "2.5");
    eelsvae_signal_free(s);
    /* and the calibration reaches the cube */
    snprintf(path, sizeof path, "%s/si_f32.rpl", dir);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_load(path, &c));
    double offset = 0, scale = 0;
    const char *units = NULL;
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_E, &offset, &scale, &units));
    assert_true(offset == 285.5 && scale == 0.05);
    assert_string_equal(units, "eV");
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_X, &offset, &scale, &units));
    assert_true(offset == 1.5 && scale == 0.25);
    eelsvae_cube_free(c);
}

/* Every .rpl shipped with HyperSpy's tests (spectra, images, stacks, six types). */
static void test_read_hyperspy_test_corpus(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    static const char *const corpus = "/usr/lib/python3/dist-packages/hyperspy/tests/io/ripple_files";
    const char *dir = oracle_corpus();
    DIR *d = opendir(corpus);
    if (!d) tu_skip("HyperSpy's Ripple test files are not installed");
    size_t read = 0;
    for (struct dirent *e; (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".rpl") != 0) continue;
        char path[1200], prefix[1200];
        snprintf(path, sizeof path, "%s/%s", corpus, e->d_name);
        snprintf(prefix, sizeof prefix, "%s/corpus_%.*s", dir, (int)(len - 4), e->d_name);
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_load(path, &s));
        tu_oracle_assert_matches(s, prefix);
        eelsvae_signal_free(s);
        read++;
    }
    closedir(d);
    assert_int_equal(read, 60);
}

/* ---- writing what HyperSpy reads ----------------------------------------------- */

static void test_write_read_by_hyperspy(void **state)
{
    (void)state;
    SKIP_WITHOUT_HYPERSPY();
    tu_written w[10]; /* each signal we wrote, as HyperSpy should load it */
    size_t n = 0;
    eelsvae_signal *s = NULL;

    eelsvae_cube *cube = tu_calibrated_cube(3, 4, 6, 1);
    assert_ok(eelsvae_cube_save(cube, tu_path("w_cube.rpl")));
    assert_ok(eelsvae_signal_from_cube(cube, &s));
    w[n++] = (tu_written){"w_cube", "w_cube.rpl", s};

    assert_ok(eelsvae_signal_from_cube(cube, &s));
    assert_ok(eelsvae_signal_metadata_set(s, "title", "Fe L\xe2\x82\x82,\xe2\x82\x83 \xc3\xa9t\xc3\xa9"));
    assert_ok(eelsvae_signal_metadata_set(s, "beam_energy_kev", "300"));
    assert_ok(eelsvae_signal_metadata_set(s, "convergence_angle_mrad", "21.5"));
    assert_ok(eelsvae_signal_metadata_set(s, "collection_angle_mrad", "33.25"));
    assert_ok(eelsvae_signal_metadata_set(s, "acquisition_date", "2024-01-31"));
    assert_ok(eelsvae_signal_metadata_set(s, "acquisition_time", "08:09:10"));
    assert_ok(eelsvae_signal_set_axis(s, 2, 280.5, 0.05, "Energy loss", "\xc2\xb5" "eV", 0));
    assert_ok(eelsvae_signal_save(s, tu_path("w_cube_md.rpl")));
    /* Latin-1 holds é and µ but not the subscripts, which become '?'. */
    assert_ok(eelsvae_signal_metadata_set(s, "title", "Fe L?,? \xc3\xa9t\xc3\xa9"));
    w[n++] = (tu_written){"w_cube_md", "w_cube_md.rpl", s};

    float score[12];
    uint8_t mask[12];
    for (size_t i = 0; i < 12; i++) {
        score[i] = (float)i * 0.5f - 2.0f;
        mask[i] = (uint8_t)(i % 3 == 0);
    }
    size_t map_shape[2] = {3, 4};
    assert_ok(eelsvae_map_save(score, EELSVAE_DTYPE_FLOAT32, cube, "score map", tu_path("w_score.rpl")));
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 2, map_shape, score, &s));
    assert_ok(eelsvae_signal_set_axis(s, 0, -2.0, 0.25, "y", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 1.5, 0.5, "x", "nm", 0));
    assert_ok(eelsvae_signal_metadata_set(s, "title", "score map"));
    w[n++] = (tu_written){"w_score", "w_score.rpl", s};
    assert_ok(eelsvae_map_save(mask, EELSVAE_DTYPE_UINT8, cube, NULL, tu_path("w_mask.rpl")));
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_UINT8, 2, map_shape, mask, &s));
    assert_ok(eelsvae_signal_set_axis(s, 0, -2.0, 0.25, "y", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(s, 1, 1.5, 0.5, "x", "nm", 0));
    w[n++] = (tu_written){"w_mask", "w_mask.rpl", s};

    /* Types HyperSpy's writer lacks but its reader takes; default axis names. */
    size_t shape2[2] = {4, 5};
    static const eelsvae_dtype types[] = {EELSVAE_DTYPE_INT8, EELSVAE_DTYPE_INT16, EELSVAE_DTYPE_UINT32,
                                          EELSVAE_DTYPE_UINT64};
    static const char *const type_names[] = {"w_i8", "w_i16", "w_u32", "w_u64"};
    static const char *const type_files[] = {"w_i8.rpl", "w_i16.rpl", "w_u32.rpl", "w_u64.rpl"};
    for (size_t t = 0; t < 4; t++) {
        s = tu_random_signal(types[t], 2, shape2, 10 + t);
        assert_ok(eelsvae_signal_save(s, tu_path(type_files[t])));
        /* Ripple calls the axes width (navigation, 4) and depth (signal, 5). */
        assert_ok(eelsvae_signal_set_axis(s, 0, 0.0, 1.0, "", "", 1));
        assert_ok(eelsvae_signal_set_axis(s, 1, 0.0, 1.0, "", "", 0));
        w[n++] = (tu_written){type_names[t], type_files[t], s};
    }

    /* An image stack of float64 with the navigation axis last: written as
     * (depth, height, width) = (nav, sig0, sig1), so HyperSpy's array is our
     * array with axis 2 moved first: out[k][i][j] = in[i][j][k]. */
    size_t shape3[3] = {2, 3, 4};
    eelsvae_signal *stack = tu_random_signal(EELSVAE_DTYPE_FLOAT64, 3, shape3, 20);
    assert_ok(eelsvae_signal_set_axis(stack, 0, 1.0, 2.0, "v", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(stack, 1, 3.0, 4.0, "u", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(stack, 2, 5.0, 6.0, "frame", "s", 1));
    assert_ok(eelsvae_signal_save(stack, tu_path("w_stack.rpl")));
    const double *in = eelsvae_signal_data(stack);
    double moved[24];
    for (size_t i = 0; i < 2; i++)
        for (size_t j = 0; j < 3; j++)
            for (size_t k = 0; k < 4; k++) moved[(k * 2 + i) * 3 + j] = in[(i * 3 + j) * 4 + k];
    size_t moved_shape[3] = {4, 2, 3};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT64, 3, moved_shape, moved, &s));
    assert_ok(eelsvae_signal_set_axis(s, 0, 5.0, 6.0, "frame", "s", 1));
    assert_ok(eelsvae_signal_set_axis(s, 1, 1.0, 2.0, "v", "nm", 0));
    assert_ok(eelsvae_signal_set_axis(s, 2, 3.0, 4.0, "u", "nm", 0));
    w[n++] = (tu_written){"w_stack", "w_stack.rpl", s};
    eelsvae_signal_free(stack);

    tu_oracle_check_written(ORACLE_SCRIPT, w, n);
    tu_oracle_assert_class(tu_path("w_cube"), "EELSSpectrum", 1);
    tu_oracle_assert_class(tu_path("w_score"), "Signal2D", 2);
    tu_oracle_assert_class(tu_path("w_mask"), "Signal2D", 2);
    tu_oracle_assert_class(tu_path("w_stack"), "Signal2D", 2);
    for (size_t i = 0; i < n; i++) eelsvae_signal_free(w[i].expected);
    eelsvae_cube_free(cube);
}

/* ---- hand-made files ------------------------------------------------------------ */

/* header lines joined with '\n' and raw bytes beside it; returns the .rpl path. */
static const char *make_rpl(const char *stem, const char *header, const void *raw, size_t raw_size)
{
    char name[128];
    snprintf(name, sizeof name, "%s.raw", stem);
    if (raw) tu_write_file(tu_path(name), raw, raw_size);
    snprintf(name, sizeof name, "%s.rpl", stem);
    const char *path = tu_path(name);
    tu_write_file(path, header, strlen(header));
    return path;
}

#define BASE_KEYS "key\tvalue\nwidth\t3\nheight\t2\ndepth\t4\noffset\t0\ndata-length\t2\nbyte-order\tlittle-endian\n"

static void expect_format_error(const char *stem, const char *header, size_t raw_size, const char *mentions)
{
    static uint8_t raw[4096];
    const char *path = make_rpl(stem, header, raw, raw_size);
    eelsvae_signal *s = NULL;
    assert_status(eelsvae_signal_load(path, &s), EELSVAE_ERR_FORMAT);
    assert_null(s);
    if (!strstr(eelsvae_last_error(), mentions) || !strstr(eelsvae_last_error(), stem))
        fail_msg("%s: message \"%s\" does not name %s", stem, eelsvae_last_error(), mentions);
}

static void test_bad_headers(void **state)
{
    (void)state;
    /* 3 × 2 × 4 uint16 = 48 bytes */
    expect_format_error("no_width", "key\tvalue\nheight\t2\ndepth\t4\ndata-length\t2\ndata-type\tunsigned\n"
                        "record-by\tvector\n", 48, "\"width\"");
    expect_format_error("no_type", BASE_KEYS "record-by\tvector\n", 48, "\"data-type\"");
    expect_format_error("no_record", BASE_KEYS "data-type\tunsigned\n", 48, "\"record-by\"");
    expect_format_error("bad_width", "key\tvalue\nwidth\tthree\nheight\t2\ndepth\t4\ndata-length\t2\n"
                        "data-type\tunsigned\nrecord-by\tvector\n", 48, "line 2: width \"three\"");
    expect_format_error("zero_depth", "key\tvalue\nwidth\t3\nheight\t2\ndepth\t0\ndata-length\t2\n"
                        "data-type\tunsigned\nrecord-by\tvector\n", 48, "line 4: depth");
    expect_format_error("bad_type", BASE_KEYS "data-type\tcomplex\nrecord-by\tvector\n", 48,
                        "line 8: data-type \"complex\"");
    expect_format_error("bad_length", "key\tvalue\nwidth\t3\nheight\t2\ndepth\t4\ndata-length\t3\n"
                        "data-type\tunsigned\nrecord-by\tvector\n", 72, "line 5: data-length 3");
    expect_format_error("half_float", BASE_KEYS "data-type\tfloat\nrecord-by\tvector\n", 48, "data-length 2");
    expect_format_error("bad_order", "key\tvalue\nwidth\t3\nheight\t2\ndepth\t4\ndata-length\t2\n"
                        "byte-order\tmiddle-endian\ndata-type\tunsigned\nrecord-by\tvector\n", 48,
                        "line 6: byte-order \"middle-endian\"");
    expect_format_error("bad_record", BASE_KEYS "data-type\tunsigned\nrecord-by\tpixel\n", 48,
                        "line 9: record-by \"pixel\"");
    expect_format_error("dont_care_depth", BASE_KEYS "data-type\tunsigned\nrecord-by\tdont-care\n", 48,
                        "depth 4");
    expect_format_error("no_tab", "key\tvalue\nwidth 3\n" BASE_KEYS "data-type\tunsigned\nrecord-by\tvector\n",
                        48, "line 2");
    expect_format_error("short_raw", BASE_KEYS "data-type\tunsigned\nrecord-by\tvector\n", 47, "47 bytes");
    expect_format_error("long_raw", BASE_KEYS "data-type\tunsigned\nrecord-by\tvector\n", 49, "49 bytes");
    expect_format_error("big_offset", "key\tvalue\nwidth\t3\nheight\t2\ndepth\t4\noffset\t4000\ndata-length\t2\n"
                        "data-type\tunsigned\nrecord-by\tvector\n", 48, "offset 4000");
    /* Claimed sizes far beyond the file (and beyond 2^64 bytes): refused
     * before any allocation. */
    expect_format_error("huge", "key\tvalue\nwidth\t4294967296\nheight\t4294967296\ndepth\t4294967296\n"
                        "data-length\t8\ndata-type\tfloat\nrecord-by\tvector\n", 48, "width 4294967296");
    expect_format_error("huge_digits", "key\tvalue\nwidth\t123456789012345678901234567890\nheight\t2\ndepth\t4\n"
                        "data-length\t2\ndata-type\tunsigned\nrecord-by\tvector\n", 48, "line 2: width");
    expect_format_error("zero_scale", BASE_KEYS "data-type\tunsigned\nrecord-by\tvector\ndepth-scale\t0\n", 48,
                        "line 10: the depth axis has scale 0");
    expect_format_error("bad_scale", BASE_KEYS "data-type\tunsigned\nrecord-by\tvector\nwidth-origin\tleft\n", 48,
                        "line 10: width-origin \"left\"");
    /* A NUL in the header: not text. */
    static const char nul_header[] = "key\tvalue\nwidth\t3\0\n";
    tu_write_file(tu_path("nul.raw"), "", 0);
    tu_write_file(tu_path("nul.rpl"), nul_header, sizeof nul_header - 1);
    eelsvae_signal *s = NULL;
    assert_status(evae_rpl_read(tu_path("nul.rpl"), &s), EELSVAE_ERR_FORMAT);
    assert_non_null(strstr(eelsvae_last_error(), "offset 17"));
    /* No .raw beside the header. */
    const char *path = make_rpl("lonely", BASE_KEYS "data-type\tunsigned\nrecord-by\tvector\n", NULL, 0);
    assert_status(eelsvae_signal_load(path, &s), EELSVAE_ERR_IO);
    assert_non_null(strstr(eelsvae_last_error(), "lonely.raw"));
    assert_status(evae_rpl_read(NULL, &s), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_null(s);
}

/* Byte order, offset, comments, CRLF and key case, with values worked out by
 * hand: big-endian float32 1.5 is 3F C0 00 00 and -2.25 is C0 10 00 00. */
static void test_byte_order_and_syntax(void **state)
{
    (void)state;
    static const uint8_t raw[] = {0xAA, 0xBB, /* 2 bytes skipped by offset */
                                  0x3F, 0xC0, 0x00, 0x00, 0xC0, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
    const char *path = make_rpl("be", ";made by hand\r\nKey\tValue\r\nWIDTH\t1\r\nheight\t1 ; one row\r\n"
                                "depth\t3\r\noffset\t2\r\ndata-length\t4\r\ndata-type\tFloat\r\n"
                                "byte-order\tbig-endian\r\nrecord-by\tvector\r\n\r\n   \r\n"
                                "depth-origin\t-1.5\r\ndepth-scale\t0.25\r\ndepth-units\teV\r\n"
                                "title\tcaf\xe9\r\nbeam-energy\t200\r\n", raw, sizeof raw);
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load(path, &s));
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
    eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    assert_int_equal(ndim, 1); /* height and width of 1 are dropped */
    assert_int_equal(shape[0], 3);
    assert_int_equal(dtype, EELSVAE_DTYPE_FLOAT32);
    const float *v = eelsvae_signal_data(s);
    assert_true(v[0] == 1.5f && v[1] == -2.25f && v[2] == 0.0f);
    double offset = 0, scale = 0;
    const char *name = NULL, *units = NULL;
    int navigate = 1;
    assert_ok(eelsvae_signal_axis(s, 0, &offset, &scale, &name, &units, &navigate));
    assert_true(offset == -1.5 && scale == 0.25 && navigate == 0);
    assert_string_equal(name, "depth");
    assert_string_equal(units, "eV");
    assert_string_equal(eelsvae_signal_metadata_get(s, "title"), "caf\xc3\xa9"); /* Latin-1 é as UTF-8 */
    assert_string_equal(eelsvae_signal_metadata_get(s, "beam_energy_kev"), "200");
    assert_string_equal(eelsvae_signal_metadata_get(s, "dispersion_ev"), "0.25");
    eelsvae_signal_free(s);
}

/* Which axes survive and which are signal axes, by HyperSpy's rules. */
static void test_layouts(void **state)
{
    (void)state;
    static const uint8_t raw[24] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23};
    static const struct {
        const char *stem, *dims, *record;
        size_t ndim, shape[3];
        int navigate[3];
        const char *names[3];
    } cases[] = {
        /* a spectrum image: (height, width, depth), depth the signal */
        {"l_vector", "width\t3\nheight\t2\ndepth\t4\n", "vector", 3, {2, 3, 4}, {1, 1, 0}, {"height", "width", "depth"}},
        /* one row of spectra: height dropped */
        {"l_row", "width\t6\nheight\t1\ndepth\t4\n", "vector", 2, {6, 4}, {1, 0}, {"width", "depth"}},
        /* an image stack: (depth, height, width), the last two the signal */
        {"l_stack", "width\t3\nheight\t2\ndepth\t4\n", "image", 3, {4, 2, 3}, {1, 0, 0}, {"depth", "height", "width"}},
        /* a stack of rows: height dropped, both survivors signal axes */
        {"l_rows", "width\t6\nheight\t1\ndepth\t4\n", "image", 2, {4, 6}, {0, 0}, {"depth", "width"}},
        /* one image */
        {"l_image", "width\t6\nheight\t4\ndepth\t1\n", "dont-care", 2, {4, 6}, {0, 0}, {"height", "width"}},
        /* depth 1 with record-by vector (which HyperSpy refuses): an image */
        {"l_flat", "width\t6\nheight\t4\ndepth\t1\n", "vector", 2, {4, 6}, {0, 0}, {"height", "width"}},
        /* one line: a spectrum */
        {"l_line", "width\t24\nheight\t1\ndepth\t1\n", "dont-care", 1, {24}, {0}, {"width"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char header[512];
        snprintf(header, sizeof header, "key\tvalue\n%soffset\t0\ndata-length\t1\ndata-type\tunsigned\n"
                 "byte-order\tdont-care\nrecord-by\t%s\n", cases[i].dims, cases[i].record);
        const char *path = make_rpl(cases[i].stem, header, raw, sizeof raw);
        eelsvae_signal *s = NULL;
        assert_ok(eelsvae_signal_load(path, &s));
        size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
        eelsvae_signal_shape(s, &ndim, shape, NULL);
        assert_int_equal(ndim, cases[i].ndim);
        for (size_t d = 0; d < ndim; d++) {
            const char *name = NULL;
            int navigate = -1;
            assert_int_equal(shape[d], cases[i].shape[d]);
            assert_ok(eelsvae_signal_axis(s, d, NULL, NULL, &name, NULL, &navigate));
            assert_int_equal(navigate, cases[i].navigate[d]);
            assert_string_equal(name, cases[i].names[d]);
        }
        /* the elements keep the file's order */
        assert_memory_equal(eelsvae_signal_data(s), raw, sizeof raw);
        eelsvae_signal_free(s);
    }
}

/* Our files read back by us: data, calibration, metadata; odd characters. */
static void test_round_trip(void **state)
{
    (void)state;
    eelsvae_cube *c = tu_calibrated_cube(4, 5, 17, 3);
    const char *path = tu_path("rt.rpl");
    assert_ok(eelsvae_cube_save(c, path));
    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_cube_load(path, &back));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(back, &ny, &nx, &ne);
    assert_true(ny == 4 && nx == 5 && ne == 17);
    assert_memory_equal(eelsvae_cube_data(back), eelsvae_cube_data(c), 4 * 5 * 17 * sizeof(float));
    for (int a = 0; a < 3; a++) {
        double o1 = 0, s1 = 0, o2 = 0, s2 = 0;
        const char *u1 = NULL, *u2 = NULL;
        assert_ok(eelsvae_cube_axis(c, (eelsvae_axis)a, &o1, &s1, &u1));
        assert_ok(eelsvae_cube_axis(back, (eelsvae_axis)a, &o2, &s2, &u2));
        assert_true(o1 == o2 && s1 == s2);
        assert_string_equal(u1, u2);
    }
    eelsvae_cube_free(back);
    /* TAB, newline and ';' would break the header: they become spaces. */
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_from_cube(c, &s));
    assert_ok(eelsvae_signal_metadata_set(s, "title", "a\tb;c\nd"));
    assert_ok(eelsvae_signal_metadata_set(s, "signal_type", "EELS"));
    assert_ok(eelsvae_signal_save(s, path));
    eelsvae_signal_free(s);
    assert_ok(eelsvae_signal_load(path, &s));
    assert_string_equal(eelsvae_signal_metadata_get(s, "title"), "a b c d");
    assert_string_equal(eelsvae_signal_metadata_get(s, "signal_type"), "EELS");
    eelsvae_signal_free(s);
    /* bool is written as uint8 0/1 */
    size_t shape[2] = {2, 3};
    const uint8_t bits[6] = {1, 0, 0, 1, 1, 0};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_BOOL, 2, shape, bits, &s));
    assert_ok(eelsvae_signal_save(s, tu_path("bool.rpl")));
    eelsvae_signal_free(s);
    assert_ok(eelsvae_signal_load(tu_path("bool.rpl"), &s));
    eelsvae_dtype dtype = EELSVAE_DTYPE_BOOL;
    eelsvae_signal_shape(s, NULL, NULL, &dtype);
    assert_int_equal(dtype, EELSVAE_DTYPE_UINT8);
    assert_memory_equal(eelsvae_signal_data(s), bits, 6);
    eelsvae_signal_free(s);
    eelsvae_cube_free(c);
}

static void test_write_refusals_and_atomicity(void **state)
{
    (void)state;
    eelsvae_signal *s = NULL;
    size_t shape4[4] = {2, 2, 2, 2}, shape2[2] = {2, 3}, shape3[3] = {2, 3, 4};
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 4, shape4, NULL, &s));
    assert_status(eelsvae_signal_save(s, tu_path("r4.rpl")), EELSVAE_ERR_UNSUPPORTED);
    eelsvae_signal_free(s);
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_COMPLEX64, 2, shape2, NULL, &s));
    assert_status(eelsvae_signal_save(s, tu_path("rc.rpl")), EELSVAE_ERR_UNSUPPORTED);
    eelsvae_signal_free(s);
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 3, shape3, NULL, &s));
    for (size_t d = 0; d < 3; d++) assert_ok(eelsvae_signal_set_axis(s, d, 0.0, 1.0, NULL, NULL, 0));
    assert_status(eelsvae_signal_save(s, tu_path("r3.rpl")), EELSVAE_ERR_UNSUPPORTED);
    eelsvae_signal_free(s);
    assert_ok(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 3, shape3, NULL, &s));
    assert_status(evae_rpl_write(NULL, tu_path("x.rpl")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(evae_rpl_write(s, tu_path("x.raw")), EELSVAE_ERR_INVALID_ARGUMENT);
    assert_status(eelsvae_signal_save(s, tu_path("no/such/dir/x.rpl")), EELSVAE_ERR_IO);
    eelsvae_signal_free(s);
    assert_int_equal(access(tu_path("r4.raw"), F_OK), -1);
    /* Rewriting replaces both files and leaves no temporary. */
    eelsvae_cube *a = tu_calibrated_cube(2, 3, 4, 30), *b = tu_calibrated_cube(3, 2, 5, 31);
    assert_ok(eelsvae_cube_save(a, tu_path("atomic.rpl")));
    assert_ok(eelsvae_cube_save(b, tu_path("atomic.rpl")));
    eelsvae_cube *back = NULL;
    assert_ok(eelsvae_cube_load(tu_path("atomic.rpl"), &back));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(back, &ny, &nx, &ne);
    assert_true(ny == 3 && nx == 2 && ne == 5);
    assert_memory_equal(eelsvae_cube_data(back), eelsvae_cube_data(b), 30 * sizeof(float));
    assert_int_equal(tu_count_temporaries(tu_tmpdir(), "atomic."), 0);
    /* A header that cannot be written (its name is a directory) after the
     * .raw was: the old header stays, no temporary is left. */
    assert_int_equal(mkdir(tu_path("dirhead.rpl"), 0700), 0);
    tu_write_file(tu_path("dirhead.rpl/keep"), "x", 1);
    assert_status(eelsvae_cube_save(a, tu_path("dirhead.rpl")), EELSVAE_ERR_IO);
    assert_int_equal(tu_count_temporaries(tu_tmpdir(), "dirhead."), 0);
    eelsvae_cube_free(back);
    eelsvae_cube_free(a);
    eelsvae_cube_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_hyperspy_files),
        cmocka_unit_test(test_read_hyperspy_test_corpus),
        cmocka_unit_test(test_write_read_by_hyperspy),
        cmocka_unit_test(test_bad_headers),
        cmocka_unit_test(test_byte_order_and_syntax),
        cmocka_unit_test(test_layouts),
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_write_refusals_and_atomicity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
