/* The signal object, format recognition by content, dispatch to the
 * per-format readers and writers, and conversion to and from cubes. */
#include "io_private.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../cube/cube_private.h"

/* ---- element types ---------------------------------------------------- */

size_t eelsvae_dtype_size(eelsvae_dtype dtype)
{
    switch (dtype) {
    case EELSVAE_DTYPE_INT8:
    case EELSVAE_DTYPE_UINT8:
    case EELSVAE_DTYPE_BOOL: return 1;
    case EELSVAE_DTYPE_INT16:
    case EELSVAE_DTYPE_UINT16:
    case EELSVAE_DTYPE_FLOAT16: return 2;
    case EELSVAE_DTYPE_INT32:
    case EELSVAE_DTYPE_UINT32:
    case EELSVAE_DTYPE_FLOAT32:
    case EELSVAE_DTYPE_RGBA8: return 4;
    case EELSVAE_DTYPE_INT64:
    case EELSVAE_DTYPE_UINT64:
    case EELSVAE_DTYPE_FLOAT64:
    case EELSVAE_DTYPE_COMPLEX64: return 8;
    case EELSVAE_DTYPE_COMPLEX128: return 16;
    }
    return 0;
}

const char *eelsvae_dtype_name(eelsvae_dtype dtype)
{
    switch (dtype) {
    case EELSVAE_DTYPE_INT8: return "int8";
    case EELSVAE_DTYPE_UINT8: return "uint8";
    case EELSVAE_DTYPE_INT16: return "int16";
    case EELSVAE_DTYPE_UINT16: return "uint16";
    case EELSVAE_DTYPE_INT32: return "int32";
    case EELSVAE_DTYPE_UINT32: return "uint32";
    case EELSVAE_DTYPE_INT64: return "int64";
    case EELSVAE_DTYPE_UINT64: return "uint64";
    case EELSVAE_DTYPE_FLOAT16: return "float16";
    case EELSVAE_DTYPE_FLOAT32: return "float32";
    case EELSVAE_DTYPE_FLOAT64: return "float64";
    case EELSVAE_DTYPE_BOOL: return "bool";
    case EELSVAE_DTYPE_COMPLEX64: return "complex64";
    case EELSVAE_DTYPE_COMPLEX128: return "complex128";
    case EELSVAE_DTYPE_RGBA8: return "rgba8";
    }
    return "unknown";
}

/* ---- formats ------------------------------------------------------------ */

const char *eelsvae_format_name(eelsvae_format format)
{
    switch (format) {
    case EELSVAE_FORMAT_NPY: return "npy";
    case EELSVAE_FORMAT_DM3: return "dm3";
    case EELSVAE_FORMAT_DM4: return "dm4";
    case EELSVAE_FORMAT_HSPY: return "hspy";
    case EELSVAE_FORMAT_RPL: return "rpl";
    case EELSVAE_FORMAT_UNKNOWN: break;
    }
    return "unknown";
}

int eelsvae_format_supported(eelsvae_format format)
{
    switch (format) {
    case EELSVAE_FORMAT_NPY:
    case EELSVAE_FORMAT_DM3:
    case EELSVAE_FORMAT_DM4:
    case EELSVAE_FORMAT_RPL: return 1;
    case EELSVAE_FORMAT_HSPY: return evae_hspy_available();
    case EELSVAE_FORMAT_UNKNOWN: break;
    }
    return 0;
}

static uint32_t big_endian_u32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* A Ripple header is "key<TAB>value" text whose keys include width, height
 * and depth; look for the first of them among its first bytes. */
static bool looks_like_rpl(const uint8_t *head, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (head[i] == 0) return false;
    static const char *const keys[] = {"width", "height", "depth", "data-type", "record-by"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        size_t len = strlen(keys[k]);
        for (size_t i = 0; i + len < n; i++) {
            bool line_start = i == 0 || head[i - 1] == '\n' || head[i - 1] == '\r';
            if (line_start && memcmp(head + i, keys[k], len) == 0 && (head[i + len] == '\t' || head[i + len] == ' '))
                return true;
        }
    }
    return false;
}

eelsvae_status eelsvae_format_detect(const char *path, eelsvae_format *format)
{
    if (!path || !format) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "format_detect: NULL argument");
    *format = EELSVAE_FORMAT_UNKNOWN;
    FILE *fp = fopen(path, "rb");
    if (!fp) return evae_fail(EELSVAE_ERR_IO, "%s: cannot open for reading", path);
    uint8_t head[512];
    size_t n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    static const uint8_t hdf5_magic[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    if (n >= 6 && memcmp(head, "\x93NUMPY", 6) == 0)
        *format = EELSVAE_FORMAT_NPY;
    else if (n >= 8 && memcmp(head, hdf5_magic, 8) == 0)
        *format = EELSVAE_FORMAT_HSPY;
    else if (n >= 4 && big_endian_u32(head) == 3)
        *format = EELSVAE_FORMAT_DM3;
    else if (n >= 4 && big_endian_u32(head) == 4)
        *format = EELSVAE_FORMAT_DM4;
    else if (looks_like_rpl(head, n))
        *format = EELSVAE_FORMAT_RPL;
    return EELSVAE_OK;
}

/* ---- the signal object ------------------------------------------------- */

eelsvae_status evae_signal_alloc(eelsvae_dtype dtype, size_t ndim, const size_t *shape, eelsvae_signal **out)
{
    size_t esize = eelsvae_dtype_size(dtype);
    if (esize == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal: unknown element type %d", (int)dtype);
    if (ndim < 1 || ndim > EELSVAE_SIGNAL_MAX_DIMS || !shape)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal: %zu dimensions, need 1 … %d", ndim,
                         EELSVAE_SIGNAL_MAX_DIMS);
    size_t count = 1, bytes = 0;
    for (size_t d = 0; d < ndim; d++) {
        if (shape[d] == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal: dimension %zu is zero", d);
        EVAE_TRY(evae_mul(count, shape[d], &count, "signal element count"));
    }
    EVAE_TRY(evae_mul(count, esize, &bytes, "signal bytes"));
    eelsvae_signal *s = NULL;
    EVAE_TRY(evae_alloc_zeros(1, sizeof *s, (void **)&s, "signal"));
    eelsvae_status st = evae_alloc_array(count, esize, &s->data, "signal data");
    if (st != EELSVAE_OK) {
        evae_free(s);
        return st;
    }
    s->dtype = dtype;
    s->ndim = ndim;
    s->count = count;
    for (size_t d = 0; d < ndim; d++) {
        s->shape[d] = shape[d];
        s->axis[d].scale = 1.0;
        s->axis[d].navigate = d + 1 < ndim;
    }
    *out = s;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_signal_create(eelsvae_dtype dtype, size_t ndim, const size_t *shape, const void *data,
                                     eelsvae_signal **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_create: NULL output");
    if (dtype == EELSVAE_DTYPE_FLOAT16)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_create: float16 signals are not supported");
    eelsvae_signal *s = NULL;
    EVAE_TRY(evae_signal_alloc(dtype, ndim, shape, &s));
    size_t bytes = s->count * eelsvae_dtype_size(dtype);
    if (data)
        memcpy(s->data, data, bytes);
    else
        memset(s->data, 0, bytes);
    *out = s;
    return EELSVAE_OK;
}

void eelsvae_signal_free(eelsvae_signal *signal)
{
    if (!signal) return;
    for (size_t i = 0; i < signal->metadata_count; i++) {
        evae_free(signal->metadata[i].key);
        evae_free(signal->metadata[i].value);
    }
    evae_free(signal->metadata);
    evae_free(signal->data);
    evae_free(signal);
}

void eelsvae_signal_shape(const eelsvae_signal *signal, size_t *ndim, size_t shape[EELSVAE_SIGNAL_MAX_DIMS],
                          eelsvae_dtype *dtype)
{
    if (!signal) return;
    if (ndim) *ndim = signal->ndim;
    if (shape)
        for (size_t d = 0; d < signal->ndim; d++) shape[d] = signal->shape[d];
    if (dtype) *dtype = signal->dtype;
}

const void *eelsvae_signal_data(const eelsvae_signal *signal)
{
    return signal ? signal->data : NULL;
}

eelsvae_status eelsvae_signal_axis(const eelsvae_signal *signal, size_t axis, double *offset, double *scale,
                                   const char **name, const char **units, int *navigate)
{
    if (!signal) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_axis: NULL signal");
    if (axis >= signal->ndim)
        return evae_fail(EELSVAE_ERR_RANGE, "signal_axis: axis %zu of a %zu-D signal", axis, signal->ndim);
    const evae_signal_axis *a = &signal->axis[axis];
    if (offset) *offset = a->offset;
    if (scale) *scale = a->scale;
    if (name) *name = a->name;
    if (units) *units = a->units;
    if (navigate) *navigate = a->navigate;
    return EELSVAE_OK;
}

static eelsvae_status copy_label(char *dst, size_t cap, const char *src, const char *what)
{
    if (!src) src = "";
    size_t len = strlen(src);
    if (len >= cap)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_set_axis: %s \"%s\" is %zu bytes, at most %zu", what,
                         src, len, cap - 1);
    memcpy(dst, src, len + 1);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_signal_set_axis(eelsvae_signal *signal, size_t axis, double offset, double scale,
                                       const char *name, const char *units, int navigate)
{
    if (!signal) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_set_axis: NULL signal");
    if (axis >= signal->ndim)
        return evae_fail(EELSVAE_ERR_RANGE, "signal_set_axis: axis %zu of a %zu-D signal", axis, signal->ndim);
    if (!isfinite(offset) || !isfinite(scale) || scale == 0.0)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_set_axis: axis %zu offset %g scale %g (need finite, "
                         "scale non-zero)", axis, offset, scale);
    evae_signal_axis a = {.offset = offset, .scale = scale, .navigate = navigate != 0};
    EVAE_TRY(copy_label(a.name, sizeof a.name, name, "name"));
    EVAE_TRY(copy_label(a.units, sizeof a.units, units, "units"));
    signal->axis[axis] = a;
    return EELSVAE_OK;
}

/* ---- metadata ------------------------------------------------------------ */

size_t eelsvae_signal_metadata_count(const eelsvae_signal *signal)
{
    return signal ? signal->metadata_count : 0;
}

eelsvae_status eelsvae_signal_metadata_at(const eelsvae_signal *signal, size_t index, const char **key,
                                          const char **value)
{
    if (!signal || !key || !value) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_metadata_at: NULL argument");
    if (index >= signal->metadata_count)
        return evae_fail(EELSVAE_ERR_RANGE, "signal_metadata_at: entry %zu of %zu", index, signal->metadata_count);
    *key = signal->metadata[index].key;
    *value = signal->metadata[index].value;
    return EELSVAE_OK;
}

const char *eelsvae_signal_metadata_get(const eelsvae_signal *signal, const char *key)
{
    if (!signal || !key) return NULL;
    for (size_t i = 0; i < signal->metadata_count; i++)
        if (strcmp(signal->metadata[i].key, key) == 0) return signal->metadata[i].value;
    return NULL;
}

static eelsvae_status duplicate_string(const char *src, char **out)
{
    size_t len = strlen(src);
    char *p = NULL;
    EVAE_TRY(evae_alloc_array(len + 1, 1, (void **)&p, "metadata string"));
    memcpy(p, src, len + 1);
    *out = p;
    return EELSVAE_OK;
}

static eelsvae_status grow_metadata(eelsvae_signal *s)
{
    if (s->metadata_count < s->metadata_capacity) return EELSVAE_OK;
    size_t capacity = s->metadata_capacity ? 2 * s->metadata_capacity : 8;
    evae_metadata_entry *grown = NULL;
    EVAE_TRY(evae_alloc_array(capacity, sizeof *grown, (void **)&grown, "metadata list"));
    if (s->metadata_count) memcpy(grown, s->metadata, s->metadata_count * sizeof *grown);
    evae_free(s->metadata);
    s->metadata = grown;
    s->metadata_capacity = capacity;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_signal_metadata_set(eelsvae_signal *signal, const char *key, const char *value)
{
    if (!signal || !key || !*key || !value)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_metadata_set: NULL argument or empty key");
    char *copy = NULL;
    EVAE_TRY(duplicate_string(value, &copy));
    for (size_t i = 0; i < signal->metadata_count; i++) {
        if (strcmp(signal->metadata[i].key, key) == 0) {
            evae_free(signal->metadata[i].value);
            signal->metadata[i].value = copy;
            return EELSVAE_OK;
        }
    }
    char *key_copy = NULL;
    eelsvae_status st = grow_metadata(signal);
    if (st == EELSVAE_OK) st = duplicate_string(key, &key_copy);
    if (st != EELSVAE_OK) {
        evae_free(copy);
        return st;
    }
    signal->metadata[signal->metadata_count++] = (evae_metadata_entry){key_copy, copy};
    return EELSVAE_OK;
}

eelsvae_status evae_signal_set_title(eelsvae_signal *s, const char *title)
{
    return eelsvae_signal_metadata_set(s, "title", title ? title : "");
}

eelsvae_status evae_signal_metadata_set_number(eelsvae_signal *s, const char *key, double value)
{
    char text[40];
    snprintf(text, sizeof text, "%.17g", value);
    /* Prefer the shortest form that still round-trips (1.2 rather than 1.19999…). */
    for (int digits = 6; digits < 17; digits++) {
        char shorter[40];
        snprintf(shorter, sizeof shorter, "%.*g", digits, value);
        if (strtod(shorter, NULL) == value) {
            memcpy(text, shorter, sizeof text);
            break;
        }
    }
    return eelsvae_signal_metadata_set(s, key, text);
}

/* ---- reading ---------------------------------------------------------------- */

static eelsvae_status detect_readable(const char *path, eelsvae_format *format)
{
    if (!path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "load: NULL path");
    EVAE_TRY(eelsvae_format_detect(path, format));
    if (*format == EELSVAE_FORMAT_UNKNOWN)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: not a .npy, .dm3, .dm4, .hspy or .rpl file (by its contents)",
                         path);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_file_signals(const char *path, size_t *count, size_t *main_index)
{
    if (!count) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "file_signals: NULL count");
    eelsvae_format format = EELSVAE_FORMAT_UNKNOWN;
    EVAE_TRY(detect_readable(path, &format));
    size_t n = 1, main = 0;
    if (format == EELSVAE_FORMAT_DM3 || format == EELSVAE_FORMAT_DM4) EVAE_TRY(evae_dm_count(path, &n, &main));
    *count = n;
    if (main_index) *main_index = main;
    return EELSVAE_OK;
}

static eelsvae_status read_npy_signal(const char *path, eelsvae_signal **out)
{
    size_t ndim = 0, shape[EELSVAE_NPY_MAX_DIMS] = {0};
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    void *data = NULL;
    EVAE_TRY(evae_npy_read_native(path, &ndim, shape, &dtype, &data));
    eelsvae_status st = ndim == 0 ? evae_fail(EELSVAE_ERR_DIMENSION, "%s: a 0-D array is not a signal", path)
                                  : eelsvae_signal_create(dtype, ndim, shape, data, out);
    evae_free(data);
    return st;
}

eelsvae_status eelsvae_signal_load_index(const char *path, size_t index, eelsvae_signal **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_load: NULL output");
    eelsvae_format format = EELSVAE_FORMAT_UNKNOWN;
    EVAE_TRY(detect_readable(path, &format));
    if (format == EELSVAE_FORMAT_DM3 || format == EELSVAE_FORMAT_DM4) return evae_dm_read(path, index, out);
    if (index != 0) return evae_fail(EELSVAE_ERR_RANGE, "%s: signal %zu of 1", path, index);
    switch (format) {
    case EELSVAE_FORMAT_NPY: return read_npy_signal(path, out);
    case EELSVAE_FORMAT_HSPY: return evae_hspy_read(path, out);
    case EELSVAE_FORMAT_RPL: return evae_rpl_read(path, out);
    default: break;
    }
    return evae_fail(EELSVAE_ERR_INTERNAL, "%s: format %d not dispatched", path, (int)format);
}

eelsvae_status eelsvae_signal_load(const char *path, eelsvae_signal **out)
{
    size_t count = 0, main = 0;
    EVAE_TRY(eelsvae_file_signals(path, &count, &main));
    return eelsvae_signal_load_index(path, main, out);
}

/* ---- cubes ---------------------------------------------------------------- */

/* The signal axis: the one not flagged navigate (the last if all are). */
static eelsvae_status find_energy_axis(const eelsvae_signal *s, size_t *axis)
{
    size_t found = s->ndim - 1, signal_axes = 0;
    for (size_t d = 0; d < s->ndim; d++) {
        if (!s->axis[d].navigate) {
            found = d;
            signal_axes++;
        }
    }
    if (signal_axes > 1)
        return evae_fail(EELSVAE_ERR_DIMENSION, "signal has %zu signal axes; a spectrum image has one (energy)",
                         signal_axes);
    *axis = found;
    return EELSVAE_OK;
}

/* Whether element_as_double() reads this type: one real number per element
 * (not complex, not RGBA; float16 never reaches a signal, see npy.c). */
static bool real_element(eelsvae_dtype dtype)
{
    return dtype != EELSVAE_DTYPE_COMPLEX64 && dtype != EELSVAE_DTYPE_COMPLEX128 && dtype != EELSVAE_DTYPE_RGBA8 &&
           dtype != EELSVAE_DTYPE_FLOAT16;
}

static double element_as_double(const void *data, eelsvae_dtype dtype, size_t i)
{
    switch (dtype) {
    case EELSVAE_DTYPE_INT8: return ((const int8_t *)data)[i];
    case EELSVAE_DTYPE_UINT8:
    case EELSVAE_DTYPE_BOOL: return ((const uint8_t *)data)[i];
    case EELSVAE_DTYPE_INT16: return ((const int16_t *)data)[i];
    case EELSVAE_DTYPE_UINT16: return ((const uint16_t *)data)[i];
    case EELSVAE_DTYPE_INT32: return ((const int32_t *)data)[i];
    case EELSVAE_DTYPE_UINT32: return ((const uint32_t *)data)[i];
    case EELSVAE_DTYPE_INT64: return (double)((const int64_t *)data)[i];
    case EELSVAE_DTYPE_UINT64: return (double)((const uint64_t *)data)[i];
    case EELSVAE_DTYPE_FLOAT32: return ((const float *)data)[i];
    case EELSVAE_DTYPE_FLOAT64: return ((const double *)data)[i];
    default: break;
    }
    return NAN;
}

eelsvae_status eelsvae_signal_value(const eelsvae_signal *signal, size_t index, double *value)
{
    if (!signal || !value) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_value: NULL argument");
    if (index >= signal->count)
        return evae_fail(EELSVAE_ERR_RANGE, "signal_value: index %zu of a signal of %zu elements", index,
                         signal->count);
    if (!real_element(signal->dtype))
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "signal_value: %s elements are not one number",
                         eelsvae_dtype_name(signal->dtype));
    *value = element_as_double(signal->data, signal->dtype, index);
    return EELSVAE_OK;
}

static void set_cube_axis(eelsvae_cube *c, eelsvae_axis axis, const evae_signal_axis *a)
{
    /* Units longer than the cube keeps are dropped rather than failing the load. */
    const char *units = strlen(a->units) < EELSVAE_UNITS_MAX ? a->units : "";
    (void)eelsvae_cube_set_axis(c, axis, a->offset, a->scale, units);
}

/* The energy axis of a cube in eV: a "keV" or "meV" axis is converted (case
 * matters: "MeV" is a million eV, and is kept as it is, like any other units). */
static eelsvae_status energy_axis_in_ev(const evae_signal_axis *a, evae_signal_axis *ev)
{
    *ev = *a;
    bool kev = !strcmp(a->units, "keV"), mev = !strcmp(a->units, "meV");
    if (!kev && !mev) return EELSVAE_OK;
    ev->offset = kev ? a->offset * 1000.0 : a->offset / 1000.0;
    ev->scale = kev ? a->scale * 1000.0 : a->scale / 1000.0;
    if (!isfinite(ev->offset) || !isfinite(ev->scale) || ev->scale == 0.0)
        return evae_fail(EELSVAE_ERR_RANGE,
                         "signal_to_cube: the energy axis, offset %g and scale %g %s, does not fit in eV (offset %g, "
                         "scale %g)",
                         a->offset, a->scale, a->units, ev->offset, ev->scale);
    strcpy(ev->units, "eV");
    return EELSVAE_OK;
}

eelsvae_status eelsvae_signal_to_cube(const eelsvae_signal *signal, eelsvae_cube **out)
{
    if (!signal || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_to_cube: NULL argument");
    if (!real_element(signal->dtype))
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "signal_to_cube: %s elements are not spectra",
                         eelsvae_dtype_name(signal->dtype));
    if (signal->ndim > 3)
        return evae_fail(EELSVAE_ERR_DIMENSION, "signal_to_cube: a %zu-D signal; a spectrum image is at most 3-D",
                         signal->ndim);
    size_t e_axis = 0;
    EVAE_TRY(find_energy_axis(signal, &e_axis));
    /* Navigation axes in C order, then energy: (y, x) of the result. */
    size_t nav[2] = {0, 0}, n_nav = 0;
    for (size_t d = 0; d < signal->ndim; d++)
        if (d != e_axis) nav[n_nav++] = d;
    size_t ny = n_nav == 2 ? signal->shape[nav[0]] : 1;
    size_t nx = n_nav >= 1 ? signal->shape[nav[n_nav - 1]] : 1;
    size_t ne = signal->shape[e_axis];
    evae_signal_axis energy;
    EVAE_TRY(energy_axis_in_ev(&signal->axis[e_axis], &energy));
    eelsvae_cube *c = NULL;
    EVAE_TRY(eelsvae_cube_create(ny, nx, ne, &c));
    size_t stride[EELSVAE_SIGNAL_MAX_DIMS];
    stride[signal->ndim - 1] = 1;
    for (size_t d = signal->ndim - 1; d > 0; d--) stride[d - 1] = stride[d] * signal->shape[d];
    size_t sy = n_nav == 2 ? stride[nav[0]] : 0, sx = n_nav >= 1 ? stride[nav[n_nav - 1]] : 0;
    size_t se = stride[e_axis];
    for (size_t y = 0; y < ny; y++)
        for (size_t x = 0; x < nx; x++)
            for (size_t e = 0; e < ne; e++)
                c->data[(y * nx + x) * ne + e] =
                    (float)element_as_double(signal->data, signal->dtype, y * sy + x * sx + e * se);
    set_cube_axis(c, EELSVAE_AXIS_E, &energy);
    if (n_nav >= 1) set_cube_axis(c, EELSVAE_AXIS_X, &signal->axis[nav[n_nav - 1]]);
    if (n_nav == 2) set_cube_axis(c, EELSVAE_AXIS_Y, &signal->axis[nav[0]]);
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_signal_from_cube(const eelsvae_cube *cube, eelsvae_signal **out)
{
    if (!cube || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_from_cube: NULL argument");
    size_t shape[3] = {cube->ny, cube->nx, cube->ne};
    eelsvae_signal *s = NULL;
    EVAE_TRY(eelsvae_signal_create(EELSVAE_DTYPE_FLOAT32, 3, shape, cube->data, &s));
    static const char *const names[3] = {"y", "x", "Energy loss"};
    for (size_t d = 0; d < 3; d++) {
        const evae_axis_calibration *a = &cube->axis[d];
        s->axis[d].offset = a->offset;
        s->axis[d].scale = a->scale;
        s->axis[d].navigate = d < 2;
        snprintf(s->axis[d].name, sizeof s->axis[d].name, "%s", names[d]);
        memcpy(s->axis[d].units, a->units, sizeof s->axis[d].units);
    }
    /* An uncalibrated energy axis is written as one (offset 0, scale 1, no
     * units), so that it is read back uncalibrated rather than as eV. */
    if (!evae_energy_calibrated(cube)) s->axis[EELSVAE_AXIS_E].units[0] = '\0';
    eelsvae_status st = eelsvae_signal_metadata_set(s, "signal_type", "EELS");
    if (st != EELSVAE_OK) {
        eelsvae_signal_free(s);
        return st;
    }
    *out = s;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_load(const char *path, eelsvae_cube **out)
{
    if (!out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cube_load: NULL output");
    eelsvae_format format = EELSVAE_FORMAT_UNKNOWN;
    EVAE_TRY(detect_readable(path, &format));
    if (format == EELSVAE_FORMAT_NPY) return eelsvae_cube_load_npy(path, out);
    eelsvae_signal *s = NULL;
    EVAE_TRY(eelsvae_signal_load(path, &s));
    eelsvae_status st = eelsvae_signal_to_cube(s, out);
    eelsvae_signal_free(s);
    if (st != EELSVAE_OK) return evae_fail(st, "%s: %s", path, eelsvae_last_error());
    return EELSVAE_OK;
}

/* ---- writing ---------------------------------------------------------------- */

static bool has_extension(const char *path, const char *ext)
{
    size_t n = strlen(path), m = strlen(ext);
    if (n < m) return false;
    for (size_t i = 0; i < m; i++) {
        char c = path[n - m + i];
        if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
        if (c != ext[i]) return false;
    }
    return true;
}

eelsvae_status eelsvae_signal_save(const eelsvae_signal *signal, const char *path)
{
    if (!signal || !path || !*path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "signal_save: NULL argument");
    if (has_extension(path, ".npy")) {
        if (signal->dtype > EELSVAE_DTYPE_BOOL)
            return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: .npy here holds real numbers and bool, not %s", path,
                             eelsvae_dtype_name(signal->dtype));
        return eelsvae_npy_write(path, signal->dtype, signal->data, signal->ndim, signal->shape);
    }
    if (has_extension(path, ".hspy") || has_extension(path, ".hdf5")) return evae_hspy_write(signal, path);
    if (has_extension(path, ".rpl")) return evae_rpl_write(signal, path);
    return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: unknown extension; write .npy, .hspy, .hdf5 or .rpl", path);
}

eelsvae_status eelsvae_cube_save(const eelsvae_cube *cube, const char *path)
{
    eelsvae_signal *s = NULL;
    EVAE_TRY(eelsvae_signal_from_cube(cube, &s));
    eelsvae_status st = eelsvae_signal_save(s, path);
    eelsvae_signal_free(s);
    return st;
}

eelsvae_status eelsvae_map_to_signal(const void *map, eelsvae_dtype dtype, const eelsvae_cube *like,
                                     eelsvae_signal **out)
{
    if (!map || !like || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_map_to_signal: NULL argument");
    size_t shape[2] = {like->ny, like->nx};
    eelsvae_signal *s = NULL;
    EVAE_TRY(eelsvae_signal_create(dtype, 2, shape, map, &s));
    static const char *const names[2] = {"y", "x"};
    for (size_t d = 0; d < 2; d++) {
        s->axis[d].offset = like->axis[d].offset;
        s->axis[d].scale = like->axis[d].scale;
        s->axis[d].navigate = 0;
        snprintf(s->axis[d].name, sizeof s->axis[d].name, "%s", names[d]);
        memcpy(s->axis[d].units, like->axis[d].units, sizeof s->axis[d].units);
    }
    *out = s;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_map_save(const void *map, eelsvae_dtype dtype, const eelsvae_cube *like, const char *title,
                                const char *path)
{
    if (!map || !like || !path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "map_save: NULL argument");
    eelsvae_signal *s = NULL;
    EVAE_TRY(eelsvae_map_to_signal(map, dtype, like, &s));
    eelsvae_status st = title ? evae_signal_set_title(s, title) : EELSVAE_OK;
    if (st == EELSVAE_OK) st = eelsvae_signal_save(s, path);
    eelsvae_signal_free(s);
    return st;
}
