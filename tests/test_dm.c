/* Gatan DigitalMicrograph reader (lib/io/dm.c).
 *
 * 1. Conformance: every .dm3/.dm4 file in HyperSpy's own test data, read
 *    here and by HyperSpy (tests/data/dm_oracle.py, one Python process for
 *    all files): the same shape, element type, axes (offset, scale, units,
 *    name, navigate), bitwise the same elements, the same metadata.
 * 2. Files written here by a small DM writer, in DM3 and DM4, little- and
 *    big-endian, whose contents are known by construction: every element
 *    type, 1-D to 4-D, a spectrum image among a thumbnail and a survey
 *    image, every kind of tag the format has.
 * 3. Robustness: those files truncated at every tag boundary and at a
 *    spread of offsets, and with bytes flipped (seeded): every load is OK or
 *    fails naming a byte offset; headers claiming huge sizes fail at once.
 */
#include "testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "io/io_private.h"

/* ======================================================================== */
/* A small DigitalMicrograph writer                                          */
/* ======================================================================== */

enum {
    T_SHORT = 2, T_LONG = 3, T_USHORT = 4, T_ULONG = 5, T_FLOAT = 6, T_DOUBLE = 7, T_BOOL = 8, T_CHAR = 9,
    T_OCTET = 10, T_INT64 = 11, T_UINT64 = 12, T_STRUCT = 15, T_STRING = 18, T_ARRAY = 20
};

#define DMW_MAX_DEPTH 200
#define DMW_MAX_TAGS 4096

typedef struct dmw {
    uint8_t *buf;
    size_t len, cap;
    int version;
    int little;
    int depth;
    size_t count_at[DMW_MAX_DEPTH]; /* where each open group's tag count is */
    size_t size_at[DMW_MAX_DEPTH];  /* DM4: where its tag size is */
    uint64_t count[DMW_MAX_DEPTH];
    size_t tag_start[DMW_MAX_TAGS];
    size_t n_tags;
} dmw;

static void put(dmw *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2 + 256;
        w->buf = realloc(w->buf, w->cap);
        assert_non_null(w->buf);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}

static void put_be(dmw *w, uint64_t v, size_t n)
{
    uint8_t b[8];
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, n);
}

static void patch_be(dmw *w, size_t at, uint64_t v, size_t n)
{
    for (size_t i = 0; i < n; i++) w->buf[at + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static size_t word(const dmw *w)
{
    return w->version == 4 ? 8 : 4;
}

/* n bytes of a native value, in the file's byte order. */
static void put_data(dmw *w, const void *value, size_t n)
{
    uint8_t b[16];
    memcpy(b, value, n);
    const uint16_t one = 1;
    int host_little = *(const uint8_t *)&one == 1;
    if (host_little != w->little)
        for (size_t i = 0; i < n / 2; i++) {
            uint8_t t = b[i];
            b[i] = b[n - 1 - i];
            b[n - 1 - i] = t;
        }
    put(w, b, n);
}

static void put_number(dmw *w, int type, double value)
{
    switch (type) {
    case T_SHORT: { int16_t v = (int16_t)value; put_data(w, &v, 2); break; }
    case T_LONG: { int32_t v = (int32_t)value; put_data(w, &v, 4); break; }
    case T_USHORT: { uint16_t v = (uint16_t)value; put_data(w, &v, 2); break; }
    case T_ULONG: { uint32_t v = (uint32_t)value; put_data(w, &v, 4); break; }
    case T_FLOAT: { float v = (float)value; put_data(w, &v, 4); break; }
    case T_DOUBLE: put_data(w, &value, 8); break;
    case T_INT64: { int64_t v = (int64_t)value; put_data(w, &v, 8); break; }
    case T_UINT64: { uint64_t v = (uint64_t)value; put_data(w, &v, 8); break; }
    case T_CHAR: { int8_t v = (int8_t)value; put_data(w, &v, 1); break; }
    default: { uint8_t v = (uint8_t)value; put_data(w, &v, 1); break; }
    }
}

static void dmw_begin(dmw *w, int version, int little)
{
    memset(w, 0, sizeof *w);
    w->version = version;
    w->little = little;
    put_be(w, (uint64_t)version, 4);
    put_be(w, 0, word(w)); /* file size, patched */
    put_be(w, (uint64_t)little, 4);
    put_be(w, 1, 1); /* sorted */
    put_be(w, 0, 1); /* open */
    w->count_at[0] = w->len;
    put_be(w, 0, word(w));
}

static void tag_header(dmw *w, int kind, const char *name)
{
    assert_true(w->n_tags < DMW_MAX_TAGS);
    w->tag_start[w->n_tags++] = w->len;
    w->count[w->depth]++;
    put_be(w, (uint64_t)kind, 1);
    put_be(w, strlen(name), 2);
    put(w, name, strlen(name));
}

static void dmw_group(dmw *w, const char *name)
{
    tag_header(w, 20, name);
    assert_true(w->depth + 1 < DMW_MAX_DEPTH);
    w->depth++;
    w->size_at[w->depth] = w->len;
    if (w->version == 4) put_be(w, 0, 8);
    put_be(w, 0, 1);
    put_be(w, 0, 1);
    w->count_at[w->depth] = w->len;
    w->count[w->depth] = 0;
    put_be(w, 0, word(w));
}

static void dmw_end(dmw *w)
{
    patch_be(w, w->count_at[w->depth], w->count[w->depth], word(w));
    if (w->version == 4) patch_be(w, w->size_at[w->depth], w->len - (w->size_at[w->depth] + 8), 8);
    w->depth--;
}

/* A data tag: its type description, then payload written by the caller
 * between dmw_data and dmw_data_end. */
static size_t dmw_data(dmw *w, const char *name, const uint64_t *info, size_t n)
{
    tag_header(w, 21, name);
    size_t size_at = w->len;
    if (w->version == 4) put_be(w, 0, 8);
    put(w, "%%%%", 4);
    put_be(w, n, word(w));
    for (size_t i = 0; i < n; i++) put_be(w, info[i], word(w));
    return size_at;
}

static void dmw_data_end(dmw *w, size_t size_at)
{
    if (w->version == 4) patch_be(w, size_at, w->len - (size_at + 8), 8);
}

static void dmw_number(dmw *w, const char *name, int type, double value)
{
    uint64_t info[1] = {(uint64_t)type};
    size_t at = dmw_data(w, name, info, 1);
    put_number(w, type, value);
    dmw_data_end(w, at);
}

/* Text as DM keeps it: UTF-16 code units (here from UTF-8 of the BMP). */
static void dmw_text(dmw *w, const char *name, const char *utf8)
{
    uint16_t units[256];
    size_t n = 0;
    const uint8_t *p = (const uint8_t *)utf8;
    while (*p && n < 256) {
        if (*p < 0x80) {
            units[n++] = *p++;
        } else if ((*p & 0xE0) == 0xC0) {
            units[n++] = (uint16_t)((p[0] & 0x1F) << 6 | (p[1] & 0x3F));
            p += 2;
        } else {
            units[n++] = (uint16_t)((p[0] & 0x0F) << 12 | (p[1] & 0x3F) << 6 | (p[2] & 0x3F));
            p += 3;
        }
    }
    uint64_t info[3] = {T_ARRAY, T_USHORT, n};
    size_t at = dmw_data(w, name, info, 3);
    for (size_t i = 0; i < n; i++) put_data(w, &units[i], 2);
    dmw_data_end(w, at);
}

/* An array of `count` numbers given as doubles. */
static void dmw_array(dmw *w, const char *name, int type, size_t count, const double *values)
{
    uint64_t info[3] = {T_ARRAY, (uint64_t)type, count};
    size_t at = dmw_data(w, name, info, 3);
    for (size_t i = 0; i < count; i++) put_number(w, type, values[i]);
    dmw_data_end(w, at);
}

static void dmw_struct(dmw *w, const char *name, size_t nfields, const int *types, const double *values)
{
    uint64_t info[32] = {T_STRUCT, 0, nfields};
    for (size_t k = 0; k < nfields; k++) {
        info[3 + 2 * k] = 0;
        info[4 + 2 * k] = (uint64_t)types[k];
    }
    size_t at = dmw_data(w, name, info, 3 + 2 * nfields);
    for (size_t k = 0; k < nfields; k++) put_number(w, types[k], values[k]);
    dmw_data_end(w, at);
}

static void dmw_struct_array(dmw *w, const char *name, size_t nfields, const int *types, size_t count,
                             const double *values)
{
    uint64_t info[32] = {T_ARRAY, T_STRUCT, 0, nfields};
    for (size_t k = 0; k < nfields; k++) {
        info[4 + 2 * k] = 0;
        info[5 + 2 * k] = (uint64_t)types[k];
    }
    info[4 + 2 * nfields] = count;
    size_t at = dmw_data(w, name, info, 5 + 2 * nfields);
    for (size_t i = 0; i < count; i++)
        for (size_t k = 0; k < nfields; k++) put_number(w, types[k], values[i * nfields + k]);
    dmw_data_end(w, at);
}

static void dmw_string(dmw *w, const char *name, const char *bytes)
{
    uint64_t info[2] = {T_STRING, strlen(bytes)};
    size_t at = dmw_data(w, name, info, 2);
    put(w, bytes, strlen(bytes));
    dmw_data_end(w, at);
}

/* Patch the root count and the file size; DM ends with 8 zero bytes. */
static void dmw_finish(dmw *w)
{
    assert_int_equal(w->depth, 0);
    patch_be(w, w->count_at[0], w->count[0], word(w));
    put_be(w, 0, 8);
    patch_be(w, 4, w->len, word(w));
}

/* ---- images ----------------------------------------------------------------- */

typedef struct test_image {
    int data_type;           /* ImageData.DataType */
    size_t ndim;
    size_t dims[5];          /* DM order, fastest first */
    const void *elements;    /* file order, native values: count elements of esize */
    size_t esize;
    double origin[5], scale[5];
    const char *units[5];
    const char *name;        /* NULL: no Name tag */
    const char *format;      /* ImageTags.Meta Data.Format, or NULL */
    const char *signal;      /* ImageTags.Meta Data.Signal, or NULL */
    int eels_tags;           /* EELS acquisition tags */
    const uint16_t *name_units; /* a Name of raw UTF-16 units, when not NULL */
    size_t n_name_units;
} test_image;

/* The Data tag as GMS writes it: an array of the element's integer or float
 * type, complex numbers as structs of two floats, RGB as 32-bit words. */
static void dmw_image_data(dmw *w, const test_image *im, size_t count)
{
    int type = T_FLOAT;
    int is_struct = 0;
    switch (im->data_type) {
    case 1: type = T_SHORT; break;
    case 2: type = T_FLOAT; break;
    case 3: type = T_FLOAT; is_struct = 1; break;
    case 6: type = T_OCTET; break;
    case 7: case 8: case 23: type = T_LONG; break;
    case 9: type = T_CHAR; break;
    case 10: type = T_USHORT; break;
    case 11: type = T_ULONG; break;
    case 12: type = T_DOUBLE; break;
    case 13: type = T_DOUBLE; is_struct = 1; break;
    case 14: type = T_BOOL; break;
    case 39: type = T_INT64; break;
    case 40: type = T_UINT64; break;
    default: type = T_FLOAT; break;
    }
    uint64_t info[9];
    size_t n = 0;
    if (is_struct) {
        uint64_t full[9] = {T_ARRAY, T_STRUCT, 0, 2, 0, (uint64_t)type, 0, (uint64_t)type, count};
        memcpy(info, full, sizeof full);
        n = 9;
    } else {
        info[0] = T_ARRAY;
        info[1] = (uint64_t)type;
        info[2] = count;
        n = 3;
    }
    size_t at = dmw_data(w, "Data", info, n);
    size_t unit = is_struct ? im->esize / 2 : im->esize;
    const uint8_t *p = im->elements;
    for (size_t i = 0; i < count * (im->esize / unit); i++) put_data(w, p + i * unit, unit);
    dmw_data_end(w, at);
}

static void dmw_image(dmw *w, const test_image *im)
{
    size_t count = 1;
    for (size_t k = 0; k < im->ndim; k++) count *= im->dims[k];
    dmw_group(w, "");
    dmw_group(w, "ImageData");
    dmw_group(w, "Calibrations");
    dmw_group(w, "Brightness");
    dmw_number(w, "Origin", T_FLOAT, 0.0);
    dmw_number(w, "Scale", T_FLOAT, 1.0);
    dmw_text(w, "Units", "Counts");
    dmw_end(w);
    dmw_group(w, "Dimension");
    for (size_t k = 0; k < im->ndim; k++) {
        dmw_group(w, "");
        dmw_number(w, "Origin", T_FLOAT, im->origin[k]);
        dmw_number(w, "Scale", T_FLOAT, im->scale[k] != 0.0 ? im->scale[k] : 1.0);
        dmw_text(w, "Units", im->units[k] ? im->units[k] : "");
        dmw_end(w);
    }
    dmw_end(w);
    dmw_number(w, "DisplayCalibratedUnits", T_BOOL, 1);
    dmw_end(w);
    dmw_image_data(w, im, count);
    dmw_number(w, "DataType", T_LONG, im->data_type);
    dmw_group(w, "Dimensions");
    for (size_t k = 0; k < im->ndim; k++) dmw_number(w, "", T_ULONG, (double)im->dims[k]);
    dmw_end(w);
    dmw_number(w, "PixelDepth", T_LONG, (double)im->esize);
    dmw_end(w);
    dmw_group(w, "ImageTags");
    if (im->format || im->signal) {
        dmw_group(w, "Meta Data");
        if (im->format) dmw_text(w, "Format", im->format);
        if (im->signal) dmw_text(w, "Signal", im->signal);
        dmw_end(w);
    }
    if (im->eels_tags) {
        dmw_group(w, "DataBar");
        dmw_text(w, "Acquisition Date", "27/08/2016");
        dmw_text(w, "Acquisition Time", "08:55:59 p.m.");
        dmw_end(w);
        dmw_group(w, "EELS");
        dmw_group(w, "Acquisition");
        dmw_number(w, "Exposure (s)", T_DOUBLE, 0.25);
        dmw_number(w, "Number of frames", T_LONG, 4);
        dmw_end(w);
        dmw_group(w, "Experimental Conditions");
        dmw_number(w, "Collection semi-angle (mrad)", T_FLOAT, 62.0);
        dmw_number(w, "Convergence semi-angle (mrad)", T_FLOAT, 21.5);
        dmw_end(w);
        dmw_end(w);
        dmw_group(w, "EELS Spectrometer");
        dmw_number(w, "Dispersion (eV/ch)", T_FLOAT, 0.25);
        dmw_end(w);
        dmw_group(w, "Microscope Info");
        dmw_number(w, "Voltage", T_DOUBLE, 300000.0);
        dmw_text(w, "Name", "Remote");
        dmw_text(w, "Microscope", "");
        dmw_end(w);
        dmw_group(w, "Session Info");
        dmw_text(w, "Microscope", "Test Scope µ");
        dmw_end(w);
    }
    dmw_end(w);
    if (im->name_units) {
        uint64_t info[3] = {T_ARRAY, T_USHORT, im->n_name_units};
        size_t at = dmw_data(w, "Name", info, 3);
        for (size_t i = 0; i < im->n_name_units; i++) put_data(w, &im->name_units[i], 2);
        dmw_data_end(w, at);
    }
    if (im->name) {
        if (im->name[0] == '\x01')
            dmw_string(w, "Name", im->name + 1); /* bytes rather than UTF-16 */
        else
            dmw_text(w, "Name", im->name);
    }
    dmw_end(w);
}

/* ---- the synthesised files -------------------------------------------------- */

/* The spectrum image: nx = 3, ny = 2, ne = 7, stored as DM stores it, energy
 * slowest: file[(e·ny + y)·nx + x] = si_value(y, x, e). */
enum { SI_NX = 3, SI_NY = 2, SI_NE = 7 };

static float si_value(size_t y, size_t x, size_t e)
{
    return (float)(100.0 * (double)y + 10.0 * (double)x + (double)e + 0.5);
}

/* A file holding a thumbnail, a 5 × 4 uint16 survey image, an EELS spectrum
 * image and tags of every kind the format has. */
static void make_rich(dmw *w, int version, int little)
{
    static float si[SI_NE * SI_NY * SI_NX];
    static uint16_t survey[4 * 5];
    static int32_t thumb[3 * 4];
    for (size_t e = 0; e < SI_NE; e++)
        for (size_t y = 0; y < SI_NY; y++)
            for (size_t x = 0; x < SI_NX; x++) si[(e * SI_NY + y) * SI_NX + x] = si_value(y, x, e);
    for (size_t i = 0; i < 20; i++) survey[i] = (uint16_t)(1000 + 37 * i);
    for (size_t i = 0; i < 12; i++) thumb[i] = (int32_t)(0x01020304u * (uint32_t)(i + 1));

    dmw_begin(w, version, little);
    /* Tags of every kind, before the images, to be parsed and skipped. */
    dmw_group(w, "DocumentObjectList");
    dmw_group(w, "");
    static const int rect_types[4] = {T_FLOAT, T_FLOAT, T_FLOAT, T_FLOAT};
    static const double rect[4] = {0, 0, 352, 352};
    dmw_struct(w, "Rectangle", 4, rect_types, rect);
    static const int clut_types[3] = {T_SHORT, T_SHORT, T_SHORT};
    static const double clut[9] = {0, 0, 0, 257, 257, 257, 514, 514, 514};
    dmw_struct_array(w, "CLUT", 3, clut_types, 3, clut);
    dmw_string(w, "Label", "a string tag");
    {
        uint64_t info[4] = {T_ARRAY, T_STRING, 3, 2};
        size_t at = dmw_data(w, "Strings", info, 4);
        put(w, "abcdef", 6);
        dmw_data_end(w, at);
    }
    {
        uint64_t info[5] = {T_ARRAY, T_ARRAY, T_SHORT, 2, 3};
        size_t at = dmw_data(w, "Arrays", info, 5);
        for (int i = 0; i < 6; i++) put_number(w, T_SHORT, i);
        dmw_data_end(w, at);
    }
    static const double longs[3] = {-1, 2, -3};
    dmw_array(w, "Longs", T_INT64, 3, longs);
    dmw_number(w, "", T_UINT64, 12345);
    dmw_number(w, "", T_CHAR, -5);
    dmw_end(w);
    dmw_end(w);
    dmw_number(w, "HasWindowPosition", T_BOOL, 1);

    dmw_group(w, "ImageList");
    test_image t = {.data_type = 23, .ndim = 2, .dims = {4, 3}, .elements = thumb, .esize = 4,
                    .name = "thumbnail"};
    dmw_image(w, &t);
    test_image s = {.data_type = 10, .ndim = 2, .dims = {5, 4}, .elements = survey, .esize = 2,
                    .scale = {0.5, 0.5}, .origin = {2, 4}, .units = {"nm", "nm"}, .name = "\x01" "caf\xe9"};
    dmw_image(w, &s);
    test_image x = {.data_type = 2, .ndim = 3, .dims = {SI_NX, SI_NY, SI_NE}, .elements = si, .esize = 4,
                    .origin = {0, 1, -300}, .scale = {0.25, 0.25, 0.5}, .units = {"µm", "µm", "eV"},
                    .name = "SI", .format = "Spectrum image", .signal = "EELS", .eels_tags = 1};
    dmw_image(w, &x);
    dmw_end(w);
    dmw_group(w, "Thumbnails");
    dmw_group(w, "");
    dmw_number(w, "ImageIndex", T_ULONG, 0);
    dmw_end(w);
    dmw_end(w);
    dmw_finish(w);
}

/* A DM<version> file holding one image, written to tu_path(name) and loaded back. */
static eelsvae_signal *load_single_image(const char *name, int version, int little, const test_image *im)
{
    dmw w;
    dmw_begin(&w, version, little);
    dmw_group(&w, "ImageList");
    dmw_image(&w, im);
    dmw_end(&w);
    dmw_finish(&w);
    tu_write_file(tu_path(name), w.buf, w.len);
    free(w.buf);
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load(tu_path(name), &s));
    return s;
}

static const char *write_rich(int version, int little, dmw *w)
{
    make_rich(w, version, little);
    char name[64];
    snprintf(name, sizeof name, "rich_dm%d_%s.dm%d", version, little ? "le" : "be", version);
    const char *path = tu_path(name);
    tu_write_file(path, w->buf, w->len);
    return path;
}

static const char *meta(const eelsvae_signal *s, const char *key)
{
    const char *v = eelsvae_signal_metadata_get(s, key);
    return v ? v : "(absent)";
}

static void check_axis(const eelsvae_signal *s, size_t axis, double offset, double scale, const char *name,
                       const char *units, int navigate)
{
    double o = 0, sc = 0;
    const char *n = NULL, *u = NULL;
    int nav = -1;
    assert_ok(eelsvae_signal_axis(s, axis, &o, &sc, &n, &u, &nav));
    assert_true(o == offset);
    assert_true(sc == scale);
    assert_string_equal(n, name);
    assert_string_equal(u, units);
    assert_int_equal(nav, navigate);
}

/* The rich file reads the same in DM3 and DM4, little- and big-endian. */
static void test_synthetic_rich(void **state)
{
    (void)state;
    for (int version = 3; version <= 4; version++) {
        for (int little = 0; little <= 1; little++) {
            dmw w;
            const char *path = write_rich(version, little, &w);
            free(w.buf);
            eelsvae_format format = EELSVAE_FORMAT_UNKNOWN;
            assert_ok(eelsvae_format_detect(path, &format));
            assert_int_equal(format, version == 3 ? EELSVAE_FORMAT_DM3 : EELSVAE_FORMAT_DM4);
            size_t count = 0, main = 99;
            assert_ok(eelsvae_file_signals(path, &count, &main));
            assert_int_equal(count, 2); /* the thumbnail is left out */
            assert_int_equal(main, 1);  /* the spectrum image */

            eelsvae_signal *s = NULL;
            assert_ok(eelsvae_signal_load(path, &s));
            size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
            eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
            eelsvae_signal_shape(s, &ndim, shape, &dtype);
            assert_int_equal(ndim, 3);
            assert_int_equal(shape[0], SI_NY);
            assert_int_equal(shape[1], SI_NX);
            assert_int_equal(shape[2], SI_NE);
            assert_int_equal(dtype, EELSVAE_DTYPE_FLOAT32);
            const float *d = eelsvae_signal_data(s);
            for (size_t y = 0; y < SI_NY; y++)
                for (size_t x = 0; x < SI_NX; x++)
                    for (size_t e = 0; e < SI_NE; e++)
                        assert_true(d[(y * SI_NX + x) * SI_NE + e] == si_value(y, x, e));
            /* offset = −origin · scale; DM dimension 0 is x. */
            check_axis(s, 0, -0.25, 0.25, "y", "µm", 1);
            check_axis(s, 1, -0.0, 0.25, "x", "µm", 1);
            check_axis(s, 2, 150.0, 0.5, "Energy loss", "eV", 0);
            assert_string_equal(meta(s, "title"), "SI");
            assert_string_equal(meta(s, "signal_type"), "EELS");
            assert_string_equal(meta(s, "acquisition_date"), "2016-08-27");
            assert_string_equal(meta(s, "acquisition_time"), "20:55:59");
            assert_string_equal(meta(s, "beam_energy_kev"), "300");
            assert_string_equal(meta(s, "collection_angle_mrad"), "62");
            assert_string_equal(meta(s, "convergence_angle_mrad"), "21.5");
            assert_string_equal(meta(s, "dispersion_ev"), "0.25");
            assert_string_equal(meta(s, "exposure_s"), "1"); /* 0.25 s × 4 frames */
            assert_string_equal(meta(s, "microscope"), "Test Scope µ");
            eelsvae_signal_free(s);

            /* The survey image: a uint16 Signal2D, its Name Latin-1 bytes. */
            assert_ok(eelsvae_signal_load_index(path, 0, &s));
            eelsvae_signal_shape(s, &ndim, shape, &dtype);
            assert_int_equal(ndim, 2);
            assert_int_equal(shape[0], 4);
            assert_int_equal(shape[1], 5);
            assert_int_equal(dtype, EELSVAE_DTYPE_UINT16);
            const uint16_t *u = eelsvae_signal_data(s);
            for (size_t i = 0; i < 20; i++) assert_int_equal(u[i], 1000 + 37 * i);
            check_axis(s, 0, -2.0, 0.5, "y", "nm", 0);
            check_axis(s, 1, -1.0, 0.5, "x", "nm", 0);
            assert_string_equal(meta(s, "title"), "caf\xc3\xa9");
            assert_null(eelsvae_signal_metadata_get(s, "signal_type"));
            eelsvae_signal_free(s);

            assert_status(eelsvae_signal_load_index(path, 2, &s), EELSVAE_ERR_RANGE);

            /* As a cube: (y, x, E) with the energy calibration. */
            eelsvae_cube *c = NULL;
            assert_ok(eelsvae_cube_load(path, &c));
            size_t ny = 0, nx = 0, ne = 0;
            eelsvae_cube_shape(c, &ny, &nx, &ne);
            assert_int_equal(ny, SI_NY);
            assert_int_equal(nx, SI_NX);
            assert_int_equal(ne, SI_NE);
            double off = 0, sc = 0;
            const char *units = NULL;
            assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_E, &off, &sc, &units));
            assert_true(off == 150.0 && sc == 0.5);
            assert_string_equal(units, "eV");
            assert_true(eelsvae_cube_data(c)[(1 * SI_NX + 2) * SI_NE + 6] == si_value(1, 2, 6));
            eelsvae_cube_free(c);
        }
    }
}

/* One image per element type, 2 × 3, in every byte order: the elements as
 * written, RGB as R, G, B, A. */
static void test_synthetic_types(void **state)
{
    (void)state;
    static const struct {
        int data_type;
        eelsvae_dtype dtype;
    } types[] = {
        {1, EELSVAE_DTYPE_INT16},      {2, EELSVAE_DTYPE_FLOAT32},  {3, EELSVAE_DTYPE_COMPLEX64},
        {6, EELSVAE_DTYPE_UINT8},      {7, EELSVAE_DTYPE_INT32},    {8, EELSVAE_DTYPE_RGBA8},
        {9, EELSVAE_DTYPE_INT8},       {10, EELSVAE_DTYPE_UINT16},  {11, EELSVAE_DTYPE_UINT32},
        {12, EELSVAE_DTYPE_FLOAT64},   {13, EELSVAE_DTYPE_COMPLEX128}, {14, EELSVAE_DTYPE_BOOL},
        {23, EELSVAE_DTYPE_RGBA8},     {39, EELSVAE_DTYPE_INT64},   {40, EELSVAE_DTYPE_UINT64},
    };
    for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
        size_t esize = eelsvae_dtype_size(types[t].dtype);
        uint8_t elements[6 * 16], expected[6 * 16];
        /* Element i: bytes 0x11·(i+1) + k, distinct and never 0 (bool: 0/1). */
        for (size_t i = 0; i < 6; i++)
            for (size_t k = 0; k < esize; k++) elements[i * esize + k] = (uint8_t)(0x11 * (i + 1) + 3 * k + 1);
        if (types[t].dtype == EELSVAE_DTYPE_BOOL)
            for (size_t i = 0; i < 6; i++) elements[i] = (uint8_t)(i % 2);
        memcpy(expected, elements, sizeof expected);
        if (types[t].dtype == EELSVAE_DTYPE_RGBA8)
            for (size_t i = 0; i < 6; i++) {
                uint32_t word = 0;
                memcpy(&word, elements + 4 * i, 4); /* the native word A·2^24 + R·2^16 + G·2^8 + B */
                uint8_t rgba[4] = {(uint8_t)(word >> 16), (uint8_t)(word >> 8), (uint8_t)word, (uint8_t)(word >> 24)};
                memcpy(expected + 4 * i, rgba, 4);
            }
        for (int version = 3; version <= 4; version++) {
            for (int little = 0; little <= 1; little++) {
                test_image im = {.data_type = types[t].data_type, .ndim = 2, .dims = {3, 2},
                                 .elements = elements, .esize = esize, .name = "typed"};
                eelsvae_signal *s = load_single_image("typed.dm4", version, little, &im);
                size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
                eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
                eelsvae_signal_shape(s, &ndim, shape, &dtype);
                assert_int_equal(dtype, types[t].dtype);
                assert_int_equal(ndim, 2);
                assert_int_equal(shape[0], 2);
                assert_int_equal(shape[1], 3);
                if (memcmp(eelsvae_signal_data(s), expected, 6 * esize) != 0)
                    fail_msg("DataType %d, DM%d %s-endian: elements differ", types[t].data_type, version,
                             little ? "little" : "big");
                eelsvae_signal_free(s);
            }
        }
    }
}

/* 1-D to 4-D: HyperSpy's order, names and navigation flags; a 4-D spectrum
 * image has its energy axis moved last; axes of size 1 are squeezed out. */
static void test_synthetic_dimensions(void **state)
{
    (void)state;
    int32_t v[120];
    for (int i = 0; i < 120; i++) v[i] = i * 7 - 300;
    /* 4-D image, DM dims (x 2, y 3, z 4, w 5): C shape (5, 4, 3, 2), two signal axes. */
    {
        test_image im = {.data_type = 7, .ndim = 4, .dims = {2, 3, 4, 5}, .elements = v, .esize = 4};
        eelsvae_signal *s = load_single_image("four.dm4", 4, 1, &im);
        size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
        eelsvae_signal_shape(s, &ndim, shape, NULL);
        assert_int_equal(ndim, 4);
        assert_true(shape[0] == 5 && shape[1] == 4 && shape[2] == 3 && shape[3] == 2);
        check_axis(s, 0, -0.0, 1.0, "", "", 1);
        check_axis(s, 1, -0.0, 1.0, "z", "", 1);
        check_axis(s, 2, -0.0, 1.0, "y", "", 0);
        check_axis(s, 3, -0.0, 1.0, "x", "", 0);
        assert_memory_equal(eelsvae_signal_data(s), v, sizeof v);
        assert_null(eelsvae_signal_metadata_get(s, "title"));
        eelsvae_signal_free(s);
    }
    /* 4-D spectrum image, DM dims (x 2, y 3, E 4, t 5): file C order (t, E, y, x) → (t, y, x, E). */
    {
        test_image im = {.data_type = 7, .ndim = 4, .dims = {2, 3, 4, 5}, .elements = v, .esize = 4,
                         .units = {"nm", "nm", "eV", "s"}, .format = "Spectrum image", .signal = "EELS"};
        eelsvae_signal *s = load_single_image("four_si.dm3", 3, 0, &im);
        size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
        eelsvae_signal_shape(s, &ndim, shape, NULL);
        assert_int_equal(ndim, 4);
        assert_true(shape[0] == 5 && shape[1] == 3 && shape[2] == 2 && shape[3] == 4);
        /* Named before the move: energy, then x, y, z from the last axis back. */
        check_axis(s, 0, -0.0, 1.0, "z", "s", 1);
        check_axis(s, 1, -0.0, 1.0, "y", "nm", 1);
        check_axis(s, 2, -0.0, 1.0, "x", "nm", 1);
        check_axis(s, 3, -0.0, 1.0, "Energy loss", "eV", 0);
        const int32_t *d = eelsvae_signal_data(s);
        for (size_t t = 0; t < 5; t++)
            for (size_t y = 0; y < 3; y++)
                for (size_t x = 0; x < 2; x++)
                    for (size_t e = 0; e < 4; e++)
                        assert_int_equal(d[((t * 3 + y) * 2 + x) * 4 + e], v[((t * 4 + e) * 3 + y) * 2 + x]);
        eelsvae_signal_free(s);
    }
    /* A 3-D spectrum image of each element width: (E, y, x) in the file, (y, x, E) read. */
    {
        static const int widths[5][2] = {{6, 1}, {1, 2}, {7, 4}, {12, 8}, {13, 16}};
        uint8_t file[24 * 16];
        for (size_t i = 0; i < sizeof file; i++) file[i] = (uint8_t)(i * 7 + 3);
        for (size_t k = 0; k < 5; k++) {
            size_t esize = (size_t)widths[k][1];
            test_image im = {.data_type = widths[k][0], .ndim = 3, .dims = {2, 3, 4}, .elements = file,
                             .esize = esize, .format = "Spectrum image"};
            eelsvae_signal *s = load_single_image("width.dm4", 4, 0, &im);
            size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
            eelsvae_signal_shape(s, &ndim, shape, NULL);
            assert_true(ndim == 3 && shape[0] == 3 && shape[1] == 2 && shape[2] == 4);
            const uint8_t *d = eelsvae_signal_data(s);
            for (size_t y = 0; y < 3; y++)
                for (size_t x = 0; x < 2; x++)
                    for (size_t e = 0; e < 4; e++)
                        assert_memory_equal(d + ((y * 2 + x) * 4 + e) * esize, file + ((e * 3 + y) * 2 + x) * esize,
                                            esize);
            eelsvae_signal_free(s);
        }
    }
    /* A 1 × 6 spectrum (DM dims 6, 1) squeezes to 1-D. */
    {
        test_image im = {.data_type = 7, .ndim = 2, .dims = {6, 1}, .elements = v, .esize = 4,
                         .units = {"eV", ""}, .scale = {2, 1}, .format = "Spectrum", .signal = "EELS"};
        eelsvae_signal *s = load_single_image("squeeze.dm3", 3, 1, &im);
        size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
        eelsvae_signal_shape(s, &ndim, shape, NULL);
        assert_int_equal(ndim, 1);
        assert_int_equal(shape[0], 6);
        check_axis(s, 0, -0.0, 2.0, "Energy loss", "eV", 0);
        eelsvae_signal_free(s);
    }
}

/* Text: UTF-16 with a surrogate pair and a lone surrogate as the title;
 * units longer than a signal keeps, cut at a character boundary. */
static void test_synthetic_text(void **state)
{
    (void)state;
    static const uint16_t title[6] = {'H', 0xD83D, 0xDE00, 0xDC00, 0x00B5, '!'};
    float v[2] = {1, 2};
    test_image im = {.data_type = 2, .ndim = 2, .dims = {1, 2}, .elements = v, .esize = 4,
                     .units = {"abcdefghijklmnopqrst", "µµµµµµµµµ"}, .name_units = title, .n_name_units = 6};
    eelsvae_signal *s = load_single_image("text.dm3", 3, 0, &im);
    /* U+1F600 from its pair, U+FFFD for the lone low surrogate. */
    assert_string_equal(meta(s, "title"), "H\xF0\x9F\x98\x80\xEF\xBF\xBD\xC2\xB5!");
    /* DM dims (1, 2): C shape (2, 1) squeezes to (2); its units are DM dimension 1's. */
    const char *units = NULL;
    assert_ok(eelsvae_signal_axis(s, 0, NULL, NULL, NULL, &units, NULL));
    assert_string_equal(units, "µµµµµµµ"); /* 7 × 2 bytes fit in 15, the 8th would not */
    eelsvae_signal_free(s);
    /* DM dims (2, 1): the axis kept has the 20-letter units, cut to 15 bytes. */
    im.dims[0] = 2;
    im.dims[1] = 1;
    s = load_single_image("text.dm4", 4, 1, &im);
    assert_ok(eelsvae_signal_axis(s, 0, NULL, NULL, NULL, &units, NULL));
    assert_string_equal(units, "abcdefghijklmno");
    eelsvae_signal_free(s);
}

/* ======================================================================== */
/* Conformance with HyperSpy on its own test files                           */
/* ======================================================================== */

/* Run the oracle once; NULL when it ran, else why it could not. */
static const char *run_oracle(void)
{
    static int ran;
    static const char *why;
    if (ran) return why;
    ran = 1;
    const char *python = tu_python();
    if (!python) return why = "no Python with NumPy";
    int rc = tu_system("%s %s/dm_oracle.py %s 2>%s", python, tu_data_dir(), tu_tmpdir(), tu_path("oracle.log"));
    if (rc == 77) return why = "HyperSpy is not importable by /usr/bin/python3";
    if (rc != 0) return why = "dm_oracle.py failed (see oracle.log in the test directory)";
    return NULL;
}

#define MAX_SIGNALS 4
#define MAX_META 16

typedef struct oracle_axis {
    double offset, scale;
    int navigate;
    char name[64], units[64];
} oracle_axis;

typedef struct oracle_signal {
    char dtype[16], data_file[64];
    size_t ndim, shape[EELSVAE_SIGNAL_MAX_DIMS];
    oracle_axis axis[EELSVAE_SIGNAL_MAX_DIMS];
    size_t n_meta;
    char meta_key[MAX_META][32], meta_value[MAX_META][256];
} oracle_signal;

typedef struct oracle_file {
    char path[1024], error[512];
    size_t count, main, n_signals;
    oracle_signal signal[MAX_SIGNALS];
} oracle_file;

/* Split a line at tabs, in place; the number of fields. */
static size_t split_tabs(char *line, char **field, size_t max)
{
    size_t n = 0;
    line[strcspn(line, "\r\n")] = '\0';
    while (n < max) {
        field[n++] = line;
        char *tab = strchr(line, '\t');
        if (!tab) break;
        *tab = '\0';
        line = tab + 1;
    }
    return n;
}

static const char *short_name(const char *path)
{
    const char *io = strstr(path, "/tests/io/");
    return io ? io + 10 : path;
}

/* Metadata values that are numbers compare as numbers (both round-trip). */
static int is_number_key(const char *key)
{
    static const char *const numbers[] = {"beam_energy_kev", "collection_angle_mrad", "convergence_angle_mrad",
                                          "dispersion_ev", "exposure_s"};
    for (size_t i = 0; i < sizeof numbers / sizeof numbers[0]; i++)
        if (strcmp(key, numbers[i]) == 0) return 1;
    return 0;
}

/* Compare one signal with HyperSpy's; the number of differences, each printed. */
static int compare_signal(const oracle_file *of, size_t index, const eelsvae_signal *s)
{
    const oracle_signal *o = &of->signal[index];
    const char *file = short_name(of->path);
    int bad = 0;
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    if (strcmp(eelsvae_dtype_name(dtype), o->dtype) != 0) {
        print_message("%s[%zu]: dtype %s, HyperSpy %s\n", file, index, eelsvae_dtype_name(dtype), o->dtype);
        bad++;
    }
    int same_shape = ndim == o->ndim;
    for (size_t d = 0; same_shape && d < ndim; d++) same_shape = shape[d] == o->shape[d];
    if (!same_shape) {
        print_message("%s[%zu]: shape differs from HyperSpy's (%zu-D here, %zu-D there)\n", file, index, ndim, o->ndim);
        return bad + 1;
    }
    for (size_t d = 0; d < ndim; d++) {
        double off = 0, sc = 0;
        const char *name = NULL, *units = NULL;
        int nav = -1;
        assert_ok(eelsvae_signal_axis(s, d, &off, &sc, &name, &units, &nav));
        const oracle_axis *a = &o->axis[d];
        /* Units longer than a signal keeps are cut at a character boundary. */
        int units_ok = strlen(a->units) < EELSVAE_UNITS_MAX ? strcmp(units, a->units) == 0
                                                          : strncmp(units, a->units, strlen(units)) == 0;
        if (off != a->offset || sc != a->scale || nav != a->navigate || strcmp(name, a->name) != 0 || !units_ok) {
            print_message("%s[%zu] axis %zu: (%.17g, %.17g, '%s', '%s', %d), HyperSpy (%.17g, %.17g, '%s', '%s', %d)\n",
                          file, index, d, off, sc, name, units, nav, a->offset, a->scale, a->name, a->units,
                          a->navigate);
            bad++;
        }
    }
    size_t bytes = 0;
    uint8_t *expected = (uint8_t *)tu_read_file(tu_path(o->data_file), &bytes);
    assert_non_null(expected);
    size_t count = 1;
    for (size_t d = 0; d < ndim; d++) count *= shape[d];
    const uint8_t *ours = eelsvae_signal_data(s);
    int same = bytes == count * eelsvae_dtype_size(dtype);
    if (same && dtype == EELSVAE_DTYPE_BOOL)
        for (size_t i = 0; i < count && same; i++) same = (ours[i] != 0) == (expected[i] != 0);
    else if (same)
        same = memcmp(ours, expected, bytes) == 0;
    if (!same) {
        print_message("%s[%zu]: elements differ from HyperSpy's\n", file, index);
        bad++;
    }
    free(expected);
    /* Every key HyperSpy has, with its value; no io.h key HyperSpy lacks. */
    for (size_t k = 0; k < o->n_meta; k++) {
        const char *v = eelsvae_signal_metadata_get(s, o->meta_key[k]);
        int ok = v != NULL;
        if (ok && is_number_key(o->meta_key[k]))
            ok = strtod(v, NULL) == strtod(o->meta_value[k], NULL);
        else if (ok)
            ok = strcmp(v, o->meta_value[k]) == 0;
        if (!ok) {
            print_message("%s[%zu]: metadata %s = '%s', HyperSpy '%s'\n", file, index, o->meta_key[k],
                          v ? v : "(absent)", o->meta_value[k]);
            bad++;
        }
    }
    for (size_t k = 0; k < eelsvae_signal_metadata_count(s); k++) {
        const char *key = NULL, *value = NULL;
        assert_ok(eelsvae_signal_metadata_at(s, k, &key, &value));
        int known = 0;
        for (size_t j = 0; j < o->n_meta; j++) known |= strcmp(key, o->meta_key[j]) == 0;
        if (!known) {
            print_message("%s[%zu]: metadata %s = '%s' that HyperSpy does not give\n", file, index, key, value);
            bad++;
        }
    }
    return bad;
}

static int compare_file(const oracle_file *of)
{
    const char *file = short_name(of->path);
    if (of->error[0]) {
        print_message("dm corpus: %-58s excluded: HyperSpy cannot load it (%s)\n", file, of->error);
        return 0;
    }
    size_t count = 0, main = 0;
    eelsvae_status st = eelsvae_file_signals(of->path, &count, &main);
    if (st != EELSVAE_OK) {
        print_message("%s: eelsvae_file_signals: %s\n", file, eelsvae_last_error());
        return 1;
    }
    int bad = 0;
    if (count != of->count || main != of->main) {
        print_message("%s: %zu signals, main %zu; HyperSpy %zu, main %zu by io.h's rule\n", file, count, main,
                      of->count, of->main);
        return 1;
    }
    char summary[256] = "";
    for (size_t i = 0; i < count && i < MAX_SIGNALS; i++) {
        eelsvae_signal *s = NULL;
        if (eelsvae_signal_load_index(of->path, i, &s) != EELSVAE_OK) {
            print_message("%s[%zu]: %s\n", file, i, eelsvae_last_error());
            bad++;
            continue;
        }
        bad += compare_signal(of, i, s);
        size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
        eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
        eelsvae_signal_shape(s, &ndim, shape, &dtype);
        size_t len = strlen(summary);
        snprintf(summary + len, sizeof summary - len, "%s(", i ? " + " : "");
        for (size_t d = 0; d < ndim; d++) {
            len = strlen(summary);
            snprintf(summary + len, sizeof summary - len, "%s%zu", d ? ", " : "", shape[d]);
        }
        len = strlen(summary);
        snprintf(summary + len, sizeof summary - len, ") %s", eelsvae_dtype_name(dtype));
        eelsvae_signal_free(s);
    }
    /* The main signal is what eelsvae_signal_load gives. */
    eelsvae_signal *s = NULL;
    if (eelsvae_signal_load(of->path, &s) != EELSVAE_OK) {
        print_message("%s: eelsvae_signal_load: %s\n", file, eelsvae_last_error());
        bad++;
    } else {
        bad += compare_signal(of, of->main, s);
        eelsvae_signal_free(s);
    }
    print_message("dm corpus: %-58s %-36s %s\n", file, summary, bad ? "FAIL" : "pass");
    return bad;
}

static void test_corpus_matches_hyperspy(void **state)
{
    (void)state;
    const char *why = run_oracle();
    if (why) tu_skip(why);
    FILE *f = fopen(tu_path("manifest.tsv"), "r");
    assert_non_null(f);
    static oracle_file of;
    char line[4096], *field[16] = {0};
    size_t files = 0, compared = 0;
    int bad = 0;
    memset(&of, 0, sizeof of);
    while (fgets(line, sizeof line, f)) {
        size_t n = split_tabs(line, field, 16);
        if (strcmp(field[0], "file") == 0 && n == 2) {
            memset(&of, 0, sizeof of);
            snprintf(of.path, sizeof of.path, "%s", field[1]);
        } else if (strcmp(field[0], "error") == 0 && n >= 2) {
            snprintf(of.error, sizeof of.error, "%s", field[1]);
        } else if (strcmp(field[0], "signals") == 0 && n == 3) {
            of.count = strtoul(field[1], NULL, 10);
            of.main = strtoul(field[2], NULL, 10);
            assert_true(of.count <= MAX_SIGNALS);
        } else if (strcmp(field[0], "signal") == 0 && n >= 5) {
            oracle_signal *o = &of.signal[of.n_signals++];
            snprintf(o->dtype, sizeof o->dtype, "%s", field[2]);
            o->ndim = strtoul(field[3], NULL, 10);
            assert_true(o->ndim >= 1 && o->ndim <= EELSVAE_SIGNAL_MAX_DIMS && n == 5 + o->ndim);
            for (size_t d = 0; d < o->ndim; d++) o->shape[d] = strtoul(field[4 + d], NULL, 10);
            snprintf(o->data_file, sizeof o->data_file, "%s", field[4 + o->ndim]);
        } else if (strcmp(field[0], "axis") == 0 && n == 7) {
            oracle_axis *a = &of.signal[of.n_signals - 1].axis[strtoul(field[1], NULL, 10)];
            a->offset = strtod(field[2], NULL);
            a->scale = strtod(field[3], NULL);
            a->navigate = atoi(field[4]);
            snprintf(a->name, sizeof a->name, "%s", field[5]);
            snprintf(a->units, sizeof a->units, "%s", field[6]);
        } else if (strcmp(field[0], "meta") == 0 && n == 3) {
            oracle_signal *o = &of.signal[of.n_signals - 1];
            assert_true(o->n_meta < MAX_META);
            snprintf(o->meta_key[o->n_meta], sizeof o->meta_key[0], "%s", field[1]);
            snprintf(o->meta_value[o->n_meta++], sizeof o->meta_value[0], "%s", field[2]);
        } else if (strcmp(field[0], "end") == 0) {
            files++;
            compared += of.error[0] == '\0';
            bad += compare_file(&of);
        }
    }
    fclose(f);
    print_message("dm corpus: %zu files, %zu compared with HyperSpy, %d differences\n", files, compared, bad);
    assert_true(compared > 0);
    assert_int_equal(bad, 0);
}

/* Find a corpus file by the end of its path, from the manifest. */
static int corpus_file(const char *suffix, char *path, size_t cap)
{
    FILE *f = fopen(tu_path("manifest.tsv"), "r");
    if (!f) return 0;
    char line[4096], *field[16] = {0};
    int found = 0;
    while (!found && fgets(line, sizeof line, f)) {
        size_t n = split_tabs(line, field, 16);
        size_t len = strlen(field[n - 1]), slen = strlen(suffix);
        if (strcmp(field[0], "file") == 0 && n == 2 && len >= slen && strcmp(field[1] + len - slen, suffix) == 0) {
            snprintf(path, cap, "%s", field[1]);
            found = 1;
        }
    }
    fclose(f);
    return found;
}

/* multi_signal.dm3: a thumbnail, a 512 × 512 image and a 512-channel
 * spectrum; no spectrum image, so the larger image is the main one. */
static void test_file_signals_multi(void **state)
{
    (void)state;
    const char *why = run_oracle();
    if (why) tu_skip(why);
    char path[1024];
    if (!corpus_file("dm3_2D_data/multi_signal.dm3", path, sizeof path))
        tu_skip("multi_signal.dm3 not in HyperSpy's data");
    size_t count = 0, main = 9;
    assert_ok(eelsvae_file_signals(path, &count, &main));
    assert_int_equal(count, 2);
    assert_int_equal(main, 0);
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load_index(path, 1, &s));
    size_t ndim = 0, shape[EELSVAE_SIGNAL_MAX_DIMS];
    eelsvae_dtype dtype = EELSVAE_DTYPE_INT8;
    eelsvae_signal_shape(s, &ndim, shape, &dtype);
    assert_int_equal(ndim, 1);
    assert_int_equal(shape[0], 512);
    assert_int_equal(dtype, EELSVAE_DTYPE_FLOAT32);
    eelsvae_signal_free(s);
    assert_status(eelsvae_signal_load_index(path, 2, &s), EELSVAE_ERR_RANGE);
}

/* EELS_SI.dm4 as a cube: (y, x, E) = (2, 2, 2048), energy from 300 eV in
 * 1 eV steps, as HyperSpy gives it (axes and elements from the oracle). */
static void test_cube_load_eels_si(void **state)
{
    (void)state;
    const char *why = run_oracle();
    if (why) tu_skip(why);
    char path[1024];
    if (!corpus_file("dm4_3D_data/EELS_SI.dm4", path, sizeof path)) tu_skip("EELS_SI.dm4 not in HyperSpy's data");
    /* HyperSpy's axes and data file for it. */
    FILE *f = fopen(tu_path("manifest.tsv"), "r");
    assert_non_null(f);
    char line[4096], *field[16] = {0}, data_file[64] = "";
    oracle_axis axis[3];
    int in_file = 0;
    while (fgets(line, sizeof line, f)) {
        size_t n = split_tabs(line, field, 16);
        if (strcmp(field[0], "file") == 0) in_file = strcmp(field[1], path) == 0;
        if (!in_file) continue;
        if (strcmp(field[0], "signal") == 0 && n == 8) snprintf(data_file, sizeof data_file, "%s", field[7]);
        if (strcmp(field[0], "axis") == 0 && n == 7 && atoi(field[1]) < 3) {
            oracle_axis *a = &axis[atoi(field[1])];
            a->offset = strtod(field[2], NULL);
            a->scale = strtod(field[3], NULL);
            snprintf(a->units, sizeof a->units, "%s", field[6]);
        }
    }
    fclose(f);
    assert_true(data_file[0]);
    eelsvae_cube *c = NULL;
    assert_ok(eelsvae_cube_load(path, &c));
    size_t ny = 0, nx = 0, ne = 0;
    eelsvae_cube_shape(c, &ny, &nx, &ne);
    assert_int_equal(ny, 2);
    assert_int_equal(nx, 2);
    assert_int_equal(ne, 2048);
    static const eelsvae_axis which[3] = {EELSVAE_AXIS_Y, EELSVAE_AXIS_X, EELSVAE_AXIS_E};
    for (size_t d = 0; d < 3; d++) {
        double off = 0, sc = 0;
        const char *units = NULL;
        assert_ok(eelsvae_cube_axis(c, which[d], &off, &sc, &units));
        assert_true(off == axis[d].offset);
        assert_true(sc == axis[d].scale);
        assert_string_equal(units, axis[d].units);
    }
    double off = 0, sc = 0;
    const char *units = NULL;
    assert_ok(eelsvae_cube_axis(c, EELSVAE_AXIS_E, &off, &sc, &units));
    assert_true(off == 300.0 && sc == 1.0);
    assert_string_equal(units, "eV");
    size_t bytes = 0;
    uint8_t *expected = (uint8_t *)tu_read_file(tu_path(data_file), &bytes);
    assert_non_null(expected);
    assert_int_equal(bytes, ny * nx * ne * sizeof(float));
    assert_memory_equal(eelsvae_cube_data(c), expected, bytes);
    free(expected);
    eelsvae_cube_free(c);
}

/* ======================================================================== */
/* Robustness                                                                */
/* ======================================================================== */

static int names_offset(const char *msg)
{
    return msg && strstr(msg, "offset") != NULL;
}

/* Load every signal of a file through the reader's entry points: OK, or a
 * failure of a status a corrupt file may give, whose message names a byte
 * offset. */
static void load_variant(const char *path, const char *what, size_t variant, int *failures, int *successes)
{
    size_t count = 0, main = 0;
    eelsvae_status st = evae_dm_count(path, &count, &main);
    if (st == EELSVAE_OK) {
        for (size_t i = 0; i < count; i++) {
            eelsvae_signal *s = NULL;
            st = evae_dm_read(path, i, &s);
            if (st != EELSVAE_OK) break;
            eelsvae_signal_free(s);
        }
    }
    if (st == EELSVAE_OK) {
        (*successes)++;
        return;
    }
    (*failures)++;
    const char *msg = eelsvae_last_error();
    if (!names_offset(msg))
        fail_msg("%s %zu: %s without a byte offset: '%s'", what, variant, eelsvae_strerror(st), msg);
    if (st == EELSVAE_ERR_NOMEM || st == EELSVAE_ERR_INTERNAL || st == EELSVAE_ERR_IO)
        fail_msg("%s %zu: %s: %s", what, variant, eelsvae_strerror(st), msg);
}

/* Cut the file at every tag start, a byte or three after it, and every
 * 13th byte: no truncated file reads (its data would be gone), none crashes. */
static void test_truncated(void **state)
{
    (void)state;
    for (int version = 3; version <= 4; version++) {
        dmw w;
        make_rich(&w, version, version == 3);
        const char *path = tu_path("truncated.dm");
        int failures = 0, successes = 0;
        size_t cuts = 0;
        for (size_t t = 0; t <= w.n_tags; t++) {
            size_t base = t < w.n_tags ? w.tag_start[t] : 0;
            for (size_t k = 0; k < 4; k++) {
                size_t cut = base + k;
                if (cut >= w.len - 8) continue; /* the 8 trailing zero bytes are not needed */
                tu_write_file(path, w.buf, cut);
                load_variant(path, "truncation at byte", cut, &failures, &successes);
                cuts++;
            }
        }
        for (size_t cut = 0; cut < w.len - 8; cut += 13) {
            tu_write_file(path, w.buf, cut);
            load_variant(path, "truncation at byte", cut, &failures, &successes);
            cuts++;
        }
        print_message("DM%d: %zu tags, %zu bytes, %zu truncations, %d failed, %d read\n", version, w.n_tags, w.len,
                      cuts, failures, successes);
        assert_int_equal(successes, 0);
        assert_true(cuts > 2 * w.n_tags);
        free(w.buf);
    }
}

/* Flip one to three bytes (seeded) in each of 400 copies: every load is OK
 * or fails naming an offset; ASan and UBSan watch for the rest. */
static void test_flipped_bytes(void **state)
{
    (void)state;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (int version = 3; version <= 4; version++) {
        dmw w;
        make_rich(&w, version, version == 4);
        uint8_t *copy = malloc(w.len);
        assert_non_null(copy);
        const char *path = tu_path("flipped.dm");
        int failures = 0, successes = 0;
        for (size_t v = 0; v < 200; v++) {
            memcpy(copy, w.buf, w.len);
            for (int k = 0; k < 1 + (int)(v % 3); k++) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                size_t at = (size_t)(rng % w.len);
                uint8_t x = (uint8_t)(rng >> 40);
                copy[at] ^= x ? x : 0x80;
            }
            tu_write_file(path, copy, w.len);
            load_variant(path, "flip variant", v, &failures, &successes);
        }
        print_message("DM%d: 200 flipped copies, %d failed (naming an offset), %d read\n", version, failures,
                      successes);
        assert_true(failures > 0 && successes > 0);
        free(copy);
        free(w.buf);
    }
}

/* A minimal file around one image whose parts the caller may falsify. */
static void make_minimal(dmw *w, int version, int data_type, size_t dims0, size_t dims1, uint64_t count_claim)
{
    static float values[6] = {1, 2, 3, 4, 5, 6};
    dmw_begin(w, version, 1);
    dmw_group(w, "ImageList");
    dmw_group(w, "");
    dmw_group(w, "ImageData");
    uint64_t info[3] = {T_ARRAY, T_FLOAT, count_claim};
    size_t at = dmw_data(w, "Data", info, 3);
    for (size_t i = 0; i < 6; i++) put_number(w, T_FLOAT, values[i]);
    dmw_data_end(w, at);
    dmw_number(w, "DataType", T_LONG, data_type);
    dmw_group(w, "Dimensions");
    dmw_number(w, "", T_ULONG, (double)dims0);
    dmw_number(w, "", T_ULONG, (double)dims1);
    dmw_end(w);
    dmw_end(w);
    dmw_end(w);
    dmw_end(w);
    dmw_finish(w);
}

static void expect_failure(const char *name, const void *bytes, size_t len, eelsvae_status expected)
{
    const char *path = tu_path(name);
    tu_write_file(path, bytes, len);
    clock_t t0 = clock();
    size_t count = 0, main = 0;
    eelsvae_status st = evae_dm_count(path, &count, &main);
    if (st == EELSVAE_OK) {
        eelsvae_signal *s = NULL;
        st = evae_dm_read(path, main, &s);
        eelsvae_signal_free(s);
    }
    double seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
    if (st != expected)
        fail_msg("%s: %s, expected %s (%s)", name, eelsvae_strerror(st), eelsvae_strerror(expected),
                 eelsvae_last_error());
    if (!names_offset(eelsvae_last_error())) fail_msg("%s: no byte offset in '%s'", name, eelsvae_last_error());
    if (seconds > 0.5) fail_msg("%s: took %.2f s to fail", name, seconds);
}

/* Headers that claim more than the file holds fail at once, without
 * allocating what they claim; so do other inconsistencies. */
static void test_lying_headers(void **state)
{
    (void)state;
    dmw w;
    /* The minimal file reads: 3 × 2 float32. */
    make_minimal(&w, 3, 2, 3, 2, 6);
    tu_write_file(tu_path("minimal.dm3"), w.buf, w.len);
    eelsvae_signal *s = NULL;
    assert_ok(eelsvae_signal_load(tu_path("minimal.dm3"), &s));
    assert_true(((const float *)eelsvae_signal_data(s))[5] == 6.0f);
    eelsvae_signal_free(s);
    free(w.buf);

    /* An array of 2^40 floats in a file of 200 bytes (DM3 and DM4, 2^62). */
    make_minimal(&w, 3, 2, 3, 2, (uint64_t)1 << 30);
    expect_failure("huge_array.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
    free(w.buf);
    make_minimal(&w, 4, 2, 3, 2, (uint64_t)1 << 62);
    expect_failure("huge_array.dm4", w.buf, w.len, EELSVAE_ERR_FORMAT);
    free(w.buf);
    /* Dimensions of 100000 × 100000 over six floats of data. */
    make_minimal(&w, 4, 2, 100000, 100000, 6);
    expect_failure("huge_dims.dm4", w.buf, w.len, EELSVAE_ERR_FORMAT);
    free(w.buf);
    /* Dimensions of 3 × 3 over six floats. */
    make_minimal(&w, 3, 2, 3, 3, 6);
    expect_failure("short_data.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
    free(w.buf);
    /* Six floats read as six doubles: 24 bytes, not 48. */
    make_minimal(&w, 3, 12, 3, 2, 6);
    expect_failure("wrong_width.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
    free(w.buf);
    /* Packed complex (5) is not read. */
    make_minimal(&w, 3, 5, 3, 2, 6);
    expect_failure("packed.dm3", w.buf, w.len, EELSVAE_ERR_UNSUPPORTED);
    free(w.buf);

    /* A root claiming 2^62 tags; a DM4 group claiming 2^63. */
    make_minimal(&w, 4, 2, 3, 2, 6);
    patch_be(&w, w.count_at[0], (uint64_t)1 << 62, 8);
    expect_failure("huge_root.dm4", w.buf, w.len, EELSVAE_ERR_FORMAT);
    free(w.buf);
    /* A type description of 2^31 words; a tag name of 65535 bytes at the end. */
    {
        dmw_begin(&w, 3, 1);
        uint64_t info[1] = {T_LONG};
        dmw_data(&w, "x", info, 1);
        patch_be(&w, w.len - 8, (uint64_t)1 << 31, 4);
        put_number(&w, T_LONG, 1);
        dmw_finish(&w);
        expect_failure("huge_info.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        free(w.buf);
        dmw_begin(&w, 3, 1);
        dmw_group(&w, "ImageList");
        dmw_end(&w);
        dmw_finish(&w);
        size_t len = w.len - 8;
        w.len = len;
        put_be(&w, 20, 1);
        put_be(&w, 65535, 2);
        put(&w, "abc", 3);
        patch_be(&w, w.count_at[0], 2, 4);
        expect_failure("huge_name.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        free(w.buf);
    }
    /* A string of 2^60 bytes; a struct of 2^40 fields. */
    {
        dmw_begin(&w, 4, 1);
        uint64_t info[2] = {T_STRING, (uint64_t)1 << 60};
        dmw_data(&w, "s", info, 2);
        put(&w, "abc", 3);
        dmw_finish(&w);
        expect_failure("huge_string.dm4", w.buf, w.len, EELSVAE_ERR_FORMAT);
        free(w.buf);
        dmw_begin(&w, 4, 1);
        uint64_t sinfo[5] = {T_STRUCT, 0, (uint64_t)1 << 40, 0, T_LONG};
        dmw_data(&w, "s", sinfo, 5);
        dmw_finish(&w);
        expect_failure("huge_struct.dm4", w.buf, w.len, EELSVAE_ERR_FORMAT);
        free(w.buf);
    }
    /* Groups nested 150 deep. */
    {
        dmw_begin(&w, 3, 1);
        for (int i = 0; i < 150; i++) dmw_group(&w, "g");
        for (int i = 0; i < 150; i++) dmw_end(&w);
        dmw_finish(&w);
        expect_failure("deep.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        assert_non_null(strstr(eelsvae_last_error(), "nested"));
        free(w.buf);
    }
    /* No ImageList; an unknown tag kind; a data tag without its %%%% mark; version 5. */
    {
        dmw_begin(&w, 3, 1);
        dmw_number(&w, "x", T_LONG, 1);
        dmw_finish(&w);
        expect_failure("no_images.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        w.buf[w.tag_start[0]] = 22;
        expect_failure("bad_kind.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        w.buf[w.tag_start[0]] = 21;
        w.buf[w.tag_start[0] + 4] = '#';
        expect_failure("no_mark.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        w.buf[3] = 5;
        expect_failure("version5.dm3", w.buf, w.len, EELSVAE_ERR_UNSUPPORTED);
        free(w.buf);
    }
    /* Only a thumbnail. */
    {
        int32_t px[4] = {1, 2, 3, 4};
        dmw_begin(&w, 3, 1);
        dmw_group(&w, "ImageList");
        test_image t = {.data_type = 23, .ndim = 2, .dims = {2, 2}, .elements = px, .esize = 4};
        dmw_image(&w, &t);
        dmw_end(&w);
        dmw_group(&w, "Thumbnails");
        dmw_group(&w, "");
        dmw_number(&w, "ImageIndex", T_ULONG, 0);
        dmw_end(&w);
        dmw_end(&w);
        dmw_finish(&w);
        expect_failure("thumbnail_only.dm3", w.buf, w.len, EELSVAE_ERR_FORMAT);
        free(w.buf);
    }
}

/* The test files and HyperSpy's dumps go with the process. */
static int remove_tmpdir(void **state)
{
    (void)state;
    return tu_system("rm -rf '%s'", tu_tmpdir()) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_synthetic_rich),
        cmocka_unit_test(test_synthetic_types),
        cmocka_unit_test(test_synthetic_dimensions),
        cmocka_unit_test(test_synthetic_text),
        cmocka_unit_test(test_corpus_matches_hyperspy),
        cmocka_unit_test(test_file_signals_multi),
        cmocka_unit_test(test_cube_load_eels_si),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_flipped_bytes),
        cmocka_unit_test(test_lying_headers),
    };
    return cmocka_run_group_tests(tests, NULL, remove_tmpdir);
}
