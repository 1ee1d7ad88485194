/* HyperSpy's .hspy / .hdf5 files, as HyperSpy 1.x reads and writes them.
 *
 * Layout: /Experiments/<title>/ holds the `data` dataset, one `axis-<i>`
 * group per array dimension (attributes name, units, offset, scale, size,
 * navigate) and the `metadata` tree (`mapped_parameters` before format 1.2,
 * with the TEM and EELS nodes one level up). Strings are attributes, either
 * variable-length (h5py) or fixed-length (old files); HyperSpy writes None
 * as the string "_None_" and bools as an int8 enum {FALSE, TRUE}.
 *
 * HDF5 prints an error stack on stderr whenever a call fails. Library code
 * never prints, so each entry point silences the default handler for its
 * duration and gives the caller's handler back before returning (and holds a
 * lock meanwhile, for libhdf5 builds that are not thread-safe). A file is
 * written in memory first and then to disk through evae_atomic_*, see
 * build_image(). */
#include "io_private.h"

#include <hdf5.h>

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Strings longer than this in metadata are ignored rather than read. */
#define HSPY_TEXT_MAX ((size_t)1 << 20)
/* Target bytes of one chunk of the written dataset (as HyperSpy's 1e6). */
#define HSPY_CHUNK_TARGET ((size_t)1 << 20)
/* HDF5 refuses chunks of 4 GiB or more. */
#define HSPY_CHUNK_MAX ((uint64_t)1 << 31)
/* The format version written: navigate flags per axis (≥ 2.1), the metadata
 * tree of 3.x. */
#define HSPY_FORMAT_VERSION "3.1"

int evae_hspy_available(void)
{
    return 1;
}

/* ---- HDF5's error printing, and one caller at a time -------------------------- */

/* A build of libhdf5 without its thread-safety option must not be entered
 * from two threads; the lock costs nothing next to file I/O. */
static pthread_mutex_t hdf5_lock = PTHREAD_MUTEX_INITIALIZER;

typedef struct hdf5_session {
    H5E_auto2_t func;
    void *data;
    bool saved;
} hdf5_session;

static void hdf5_enter(hdf5_session *q)
{
    pthread_mutex_lock(&hdf5_lock);
    q->func = NULL;
    q->data = NULL;
    /* If the caller installed an old-style (H5Eset_auto1) handler it cannot
     * be saved as a new-style one: leave it alone rather than lose it. */
    q->saved = H5Eget_auto2(H5E_DEFAULT, &q->func, &q->data) >= 0;
    if (q->saved) H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void hdf5_leave(const hdf5_session *q)
{
    if (q->saved) H5Eset_auto2(H5E_DEFAULT, q->func, q->data);
    pthread_mutex_unlock(&hdf5_lock);
}

static void close_type(hid_t t)
{
    if (t >= 0) H5Tclose(t);
}

static void close_space(hid_t s)
{
    if (s >= 0) H5Sclose(s);
}

static void close_plist(hid_t p)
{
    if (p >= 0) H5Pclose(p);
}

/* ---- small string helpers ---------------------------------------------------- */

static eelsvae_status copy_text(const char *src, size_t len, char **out)
{
    char *p = NULL;
    EVAE_TRY(evae_alloc_array(len + 1, 1, (void **)&p, "HDF5 string"));
    memcpy(p, src, len);
    p[len] = '\0';
    *out = p;
    return EELSVAE_OK;
}

/* Copy into a fixed field, cutting at a UTF-8 character boundary. */
static void copy_truncated(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char)src[n] & 0xC0) == 0x80) n--;
    }
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* A whole string as a finite number. */
static bool parse_number(const char *text, double *value)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || errno == ERANGE || !isfinite(v)) return false;
    while (*end == ' ' || *end == '\t') end++;
    if (*end != '\0') return false;
    *value = v;
    return true;
}

/* ======================================================================== */
/*                                 reading                                  */
/* ======================================================================== */

typedef struct hspy_reader {
    const char *path;
    hid_t file;
    hid_t exp;        /* /Experiments/<name> */
    char *name;       /* <name>, for messages */
    const char *md;   /* "metadata", "mapped_parameters" or NULL */
} hspy_reader;

/* ---- attributes ------------------------------------------------------------- */

/* The attribute `attr` of the object `obj` (relative to loc), or a negative
 * id when the object or the attribute is missing. */
static hid_t open_attr(hid_t loc, const char *obj, const char *attr)
{
    if (H5Aexists_by_name(loc, obj, attr, H5P_DEFAULT) <= 0) return -1;
    return H5Aopen_by_name(loc, obj, attr, H5P_DEFAULT, H5P_DEFAULT);
}

static eelsvae_status read_string_value(hid_t attr, hid_t type, char **out)
{
    eelsvae_status st = EELSVAE_OK;
    hid_t mem = H5Tcopy(H5T_C_S1);
    if (mem < 0) return EELSVAE_OK;
    H5Tset_cset(mem, H5Tget_cset(type));
    if (H5Tis_variable_str(type) > 0) {
        char *p = NULL;
        if (H5Tset_size(mem, H5T_VARIABLE) >= 0 && H5Aread(attr, mem, &p) >= 0 && p) {
            size_t n = strlen(p);
            if (n <= HSPY_TEXT_MAX) st = copy_text(p, n, out);
            H5free_memory(p);
        }
    } else {
        size_t n = H5Tget_size(type);
        char *buf = NULL;
        if (n > 0 && n <= HSPY_TEXT_MAX && H5Tset_size(mem, n) >= 0 && H5Tset_strpad(mem, H5T_STR_NULLPAD) >= 0) {
            st = evae_alloc_zeros(n + 1, 1, (void **)&buf, "HDF5 string");
            if (st == EELSVAE_OK && H5Aread(attr, mem, buf) >= 0) {
                size_t len = strlen(buf);
                while (len > 0 && buf[len - 1] == ' ') len--; /* space-padded strings */
                buf[len] = '\0';
                *out = buf;
                buf = NULL;
            }
            evae_free(buf);
        }
    }
    H5Tclose(mem);
    return st;
}

/* A one-element string attribute, evae_malloc'd into *out; NULL when it is
 * missing, not a string, or HyperSpy's "_None_". */
static eelsvae_status attr_text(hid_t loc, const char *obj, const char *name, char **out)
{
    *out = NULL;
    hid_t attr = open_attr(loc, obj, name);
    if (attr < 0) return EELSVAE_OK;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    eelsvae_status st = EELSVAE_OK;
    if (type >= 0 && space >= 0 && H5Tget_class(type) == H5T_STRING && H5Sget_simple_extent_npoints(space) == 1)
        st = read_string_value(attr, type, out);
    close_type(type);
    close_space(space);
    H5Aclose(attr);
    if (*out && strcmp(*out, "_None_") == 0) {
        evae_free(*out);
        *out = NULL;
    }
    return st;
}

/* An enum value (HyperSpy's bools) as its underlying integer. */
static bool read_enum_value(hid_t attr, hid_t type, double *value)
{
    hid_t mem = H5Tget_native_type(type, H5T_DIR_ASCEND);
    hid_t base = mem >= 0 ? H5Tget_super(mem) : -1;
    size_t size = mem >= 0 ? H5Tget_size(mem) : 0;
    bool ok = false;
    unsigned char buf[8] = {0};
    if (base >= 0 && size >= 1 && size <= 8 && H5Aread(attr, mem, buf) >= 0) {
        bool is_signed = H5Tget_sign(base) == H5T_SGN_2;
        int64_t v = 0;
        switch (size) {
        case 1: v = is_signed ? (int64_t)(int8_t)buf[0] : (int64_t)buf[0]; break;
        case 2: {
            uint16_t u = 0;
            memcpy(&u, buf, 2);
            v = is_signed ? (int64_t)(int16_t)u : (int64_t)u;
        } break;
        case 4: {
            uint32_t u = 0;
            memcpy(&u, buf, 4);
            v = is_signed ? (int64_t)(int32_t)u : (int64_t)u;
        } break;
        default: memcpy(&v, buf, sizeof v); break;
        }
        *value = (double)v;
        ok = true;
    }
    close_type(base);
    close_type(mem);
    return ok;
}

/* A one-element numeric attribute (integer, float, bool enum, or a string
 * holding a number). *found is false when it is missing or not a number. */
static eelsvae_status attr_number(hid_t loc, const char *obj, const char *name, double *value, bool *found)
{
    *found = false;
    hid_t attr = open_attr(loc, obj, name);
    if (attr < 0) return EELSVAE_OK;
    hid_t type = H5Aget_type(attr), space = H5Aget_space(attr);
    eelsvae_status st = EELSVAE_OK;
    if (type >= 0 && space >= 0 && H5Sget_simple_extent_npoints(space) == 1) {
        double v = 0;
        switch (H5Tget_class(type)) {
        case H5T_INTEGER:
        case H5T_FLOAT:
            if (H5Aread(attr, H5T_NATIVE_DOUBLE, &v) >= 0 && isfinite(v)) {
                *value = v;
                *found = true;
            }
            break;
        case H5T_ENUM:
            if (read_enum_value(attr, type, &v)) {
                *value = v;
                *found = true;
            }
            break;
        case H5T_STRING: {
            char *text = NULL;
            st = read_string_value(attr, type, &text);
            if (text && parse_number(text, &v)) {
                *value = v;
                *found = true;
            }
            evae_free(text);
        } break;
        default: break;
        }
    }
    close_type(type);
    close_space(space);
    H5Aclose(attr);
    return st;
}

/* ---- the experiment ------------------------------------------------------- */

typedef struct first_experiment {
    hid_t experiments;
    char *name;
    eelsvae_status status;
} first_experiment;

/* HyperSpy takes the groups of /Experiments that hold `data`, in name order. */
#if H5_VERSION_GE(1, 12, 0)
static herr_t visit_experiment(hid_t group, const char *name, const H5L_info2_t *info, void *user)
#else
static herr_t visit_experiment(hid_t group, const char *name, const H5L_info_t *info, void *user)
#endif
{
    first_experiment *fe = user;
    if (info->type != H5L_TYPE_HARD) return 0; /* no soft or external links out of the file */
    hid_t g = H5Gopen2(group, name, H5P_DEFAULT);
    if (g < 0) return 0; /* a dataset, not a group */
    bool has_data = false;
    if (H5Lexists(g, "data", H5P_DEFAULT) > 0) {
        hid_t d = H5Oopen(g, "data", H5P_DEFAULT);
        has_data = d >= 0 && H5Iget_type(d) == H5I_DATASET;
        if (d >= 0) H5Oclose(d);
    }
    H5Gclose(g);
    if (!has_data) return 0;
    fe->status = copy_text(name, strlen(name), &fe->name);
    return 1;
}

static eelsvae_status open_experiment(hspy_reader *r)
{
    hid_t experiments = H5Gopen2(r->file, "/Experiments", H5P_DEFAULT);
    if (experiments < 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: no /Experiments group: an HDF5 file, but not a HyperSpy one",
                         r->path);
    first_experiment fe = {experiments, NULL, EELSVAE_OK};
    hsize_t index = 0;
    herr_t rc = H5Literate(experiments, H5_INDEX_NAME, H5_ITER_INC, &index, visit_experiment, &fe);
    eelsvae_status st = fe.status;
    if (st == EELSVAE_OK && rc < 0)
        st = evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments: cannot list its groups (corrupt file)", r->path);
    else if (st == EELSVAE_OK && !fe.name)
        st = evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments holds no group with a `data` dataset", r->path);
    if (st == EELSVAE_OK) {
        r->name = fe.name;
        fe.name = NULL;
        r->exp = H5Gopen2(experiments, r->name, H5P_DEFAULT);
        if (r->exp < 0)
            st = evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s: cannot open the group", r->path, r->name);
    }
    evae_free(fe.name);
    H5Gclose(experiments);
    if (st != EELSVAE_OK) return st;
    if (H5Lexists(r->exp, "metadata", H5P_DEFAULT) > 0)
        r->md = "metadata";
    else if (H5Lexists(r->exp, "mapped_parameters", H5P_DEFAULT) > 0)
        r->md = "mapped_parameters"; /* format 1.0 and 1.1 */
    return EELSVAE_OK;
}

/* ---- the data ----------------------------------------------------------------- */

static bool is_bool_enum(hid_t type)
{
    if (H5Tget_nmembers(type) != 2 || H5Tget_size(type) != 1) return false;
    int8_t v_false = -1, v_true = -1;
    bool ok = H5Tenum_valueof(type, "FALSE", &v_false) >= 0 && H5Tenum_valueof(type, "TRUE", &v_true) >= 0;
    return ok && v_false == 0 && v_true == 1;
}

/* Members of a compound type, all of one class and size, with the given names
 * (NULL: any names). */
static bool compound_members_are(hid_t type, int count, H5T_class_t cls, size_t size, const char *const *names)
{
    if (H5Tget_nmembers(type) != count) return false;
    for (int i = 0; i < count; i++) {
        hid_t m = H5Tget_member_type(type, (unsigned)i);
        bool ok = m >= 0 && H5Tget_class(m) == cls && H5Tget_size(m) == size;
        if (ok && cls == H5T_INTEGER) ok = H5Tget_sign(m) == H5T_SGN_NONE;
        close_type(m);
        if (ok && names) {
            char *name = H5Tget_member_name(type, (unsigned)i);
            ok = name && strcmp(name, names[i]) == 0;
            if (name) H5free_memory(name);
        }
        if (!ok) return false;
    }
    return true;
}

/* Complex numbers as h5py stores them: a compound of two floats (real,
 * imaginary), matched by the file's member names. */
static hid_t complex_memory_type(hid_t file_type, size_t part)
{
    char *re = H5Tget_member_name(file_type, 0), *im = H5Tget_member_name(file_type, 1);
    hid_t mem = -1;
    if (re && im && strcmp(re, im) != 0) {
        mem = H5Tcreate(H5T_COMPOUND, 2 * part);
        hid_t native = part == 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE;
        if (mem >= 0 && (H5Tinsert(mem, re, 0, native) < 0 || H5Tinsert(mem, im, part, native) < 0)) {
            H5Tclose(mem);
            mem = -1;
        }
    }
    if (re) H5free_memory(re);
    if (im) H5free_memory(im);
    return mem;
}

static const char *const rgba_names[4] = {"R", "G", "B", "A"};

static hid_t rgba_type(hid_t member)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, 4);
    for (size_t i = 0; t >= 0 && i < 4; i++) {
        if (H5Tinsert(t, rgba_names[i], i, member) < 0) {
            H5Tclose(t);
            t = -1;
        }
    }
    return t;
}

static hid_t integer_memory_type(size_t size, bool is_signed)
{
    switch (size) {
    case 1: return H5Tcopy(is_signed ? H5T_NATIVE_INT8 : H5T_NATIVE_UINT8);
    case 2: return H5Tcopy(is_signed ? H5T_NATIVE_INT16 : H5T_NATIVE_UINT16);
    case 4: return H5Tcopy(is_signed ? H5T_NATIVE_INT32 : H5T_NATIVE_UINT32);
    case 8: return H5Tcopy(is_signed ? H5T_NATIVE_INT64 : H5T_NATIVE_UINT64);
    default: break;
    }
    return -1;
}

static eelsvae_dtype integer_dtype(size_t size, bool is_signed)
{
    switch (size) {
    case 1: return is_signed ? EELSVAE_DTYPE_INT8 : EELSVAE_DTYPE_UINT8;
    case 2: return is_signed ? EELSVAE_DTYPE_INT16 : EELSVAE_DTYPE_UINT16;
    case 4: return is_signed ? EELSVAE_DTYPE_INT32 : EELSVAE_DTYPE_UINT32;
    default: break;
    }
    return is_signed ? EELSVAE_DTYPE_INT64 : EELSVAE_DTYPE_UINT64;
}

/* The signal's element type for a dataset's type, and the memory type HDF5
 * converts the file's elements to. Half floats are widened to float32 (the
 * signal holds no float16) and wider-than-double floats narrowed to float64. */
static eelsvae_status element_type(const hspy_reader *r, hid_t ftype, eelsvae_dtype *dtype, hid_t *mem)
{
    H5T_class_t cls = H5Tget_class(ftype);
    size_t size = H5Tget_size(ftype);
    *mem = -1;
    switch (cls) {
    case H5T_INTEGER:
        if (size == 1 || size == 2 || size == 4 || size == 8) {
            bool is_signed = H5Tget_sign(ftype) == H5T_SGN_2;
            *dtype = integer_dtype(size, is_signed);
            *mem = integer_memory_type(size, is_signed);
        }
        break;
    case H5T_FLOAT:
        *dtype = size <= 4 ? EELSVAE_DTYPE_FLOAT32 : EELSVAE_DTYPE_FLOAT64;
        *mem = H5Tcopy(size <= 4 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE);
        break;
    case H5T_ENUM:
        if (is_bool_enum(ftype)) {
            *dtype = EELSVAE_DTYPE_BOOL;
            *mem = H5Tget_native_type(ftype, H5T_DIR_ASCEND);
        }
        break;
    case H5T_COMPOUND:
        if (compound_members_are(ftype, 2, H5T_FLOAT, 4, NULL)) {
            *dtype = EELSVAE_DTYPE_COMPLEX64;
            *mem = complex_memory_type(ftype, 4);
        } else if (compound_members_are(ftype, 2, H5T_FLOAT, 8, NULL)) {
            *dtype = EELSVAE_DTYPE_COMPLEX128;
            *mem = complex_memory_type(ftype, 8);
        } else if (compound_members_are(ftype, 4, H5T_INTEGER, 1, rgba_names)) {
            *dtype = EELSVAE_DTYPE_RGBA8;
            *mem = rgba_type(H5T_NATIVE_UINT8);
        } else {
            return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                             "%s: /Experiments/%s/data: a compound element type that is neither complex (two "
                             "floats) nor rgba8 (R, G, B, A uint8), e.g. HyperSpy's rgba16",
                             r->path, r->name);
        }
        break;
    default: break;
    }
    if (*mem < 0)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                         "%s: /Experiments/%s/data: element type (HDF5 class %d, %zu bytes) is not a number this "
                         "library reads",
                         r->path, r->name, (int)cls, size);
    return EELSVAE_OK;
}

/* A filter HDF5 lacks (h5py's lzf, blosc from hdf5plugin) is named rather
 * than reported as a failed read. */
static eelsvae_status check_filters(const hspy_reader *r, hid_t dset)
{
    hid_t dcpl = H5Dget_create_plist(dset);
    if (dcpl < 0) return EELSVAE_OK;
    eelsvae_status st = EELSVAE_OK;
    int n = H5Pget_nfilters(dcpl);
    for (int i = 0; i < n && st == EELSVAE_OK; i++) {
        unsigned flags = 0, config = 0;
        size_t nvalues = 0;
        char name[64] = "";
        H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nvalues, NULL, sizeof name, name, &config);
        if (id >= 0 && H5Zfilter_avail(id) <= 0)
            st = evae_fail(EELSVAE_ERR_UNSUPPORTED,
                           "%s: /Experiments/%s/data is compressed with HDF5 filter %d (%s), which this HDF5 "
                           "library lacks",
                           r->path, r->name, (int)id, name[0] ? name : "unnamed");
    }
    H5Pclose(dcpl);
    return st;
}

/* A corrupt header can claim any dataspace: before allocating, compare the
 * bytes it needs with what the file stores. Deflate cannot shrink data more
 * than about 1032-fold; with other filters (shuffle, n-bit, scale-offset)
 * in the chain the bound is kept generous, 65536-fold. */
static eelsvae_status check_stored_size(const hspy_reader *r, hid_t dset, hid_t ftype, size_t rank,
                                        const size_t *shape)
{
    size_t need = H5Tget_size(ftype);
    for (size_t d = 0; d < rank; d++)
        if (evae_mul(need, shape[d], &need, "hspy data bytes") != EELSVAE_OK)
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/data: its dataspace does not fit in memory",
                             r->path, r->name);
    /* The storage size comes from the (possibly corrupt) chunk index too:
     * no dataset stores more bytes than the whole file holds. */
    hsize_t stored = H5Dget_storage_size(dset), file_bytes = 0;
    struct stat st;
    if (stat(r->path, &st) == 0 && st.st_size > 0) file_bytes = (hsize_t)st.st_size;
    if (file_bytes && stored > file_bytes) stored = file_bytes;
    hid_t dcpl = H5Dget_create_plist(dset);
    int filters = dcpl >= 0 ? H5Pget_nfilters(dcpl) : 0;
    if (dcpl >= 0) H5Pclose(dcpl);
    double factor = filters <= 0 ? 1.0 : 65536.0;
    if (stored == 0 || (double)need > factor * (double)stored)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: /Experiments/%s/data claims %zu bytes of elements but the file stores at most %llu "
                         "bytes of them (corrupt header)",
                         r->path, r->name, need, (unsigned long long)stored);
    return EELSVAE_OK;
}

static eelsvae_status read_elements(const hspy_reader *r, hid_t dset, eelsvae_signal **out)
{
    hid_t space = H5Dget_space(dset), ftype = H5Dget_type(dset), mem = -1;
    eelsvae_status st = EELSVAE_OK;
    int rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    if (space < 0 || ftype < 0 || rank < 0)
        st = evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/data: cannot read its shape or type (corrupt file)",
                       r->path, r->name);
    else if (rank == 0 || rank > EELSVAE_SIGNAL_MAX_DIMS)
        st = evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: /Experiments/%s/data has %d dimensions; a signal has 1 … %d",
                       r->path, r->name, rank, EELSVAE_SIGNAL_MAX_DIMS);
    size_t shape[EELSVAE_SIGNAL_MAX_DIMS] = {0};
    if (st == EELSVAE_OK) {
        hsize_t dims[EELSVAE_SIGNAL_MAX_DIMS] = {0};
        H5Sget_simple_extent_dims(space, dims, NULL);
        for (int d = 0; d < rank && st == EELSVAE_OK; d++) {
            if (dims[d] == 0 || dims[d] > SIZE_MAX)
                st = evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: /Experiments/%s/data: dimension %d has size %llu",
                               r->path, r->name, d, (unsigned long long)dims[d]);
            shape[d] = (size_t)dims[d];
        }
    }
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    if (st == EELSVAE_OK) st = element_type(r, ftype, &dtype, &mem);
    if (st == EELSVAE_OK) st = check_filters(r, dset);
    if (st == EELSVAE_OK) st = check_stored_size(r, dset, ftype, (size_t)rank, shape);
    eelsvae_signal *s = NULL;
    if (st == EELSVAE_OK) st = evae_signal_alloc(dtype, (size_t)rank, shape, &s);
    if (st == EELSVAE_OK && H5Dread(dset, mem, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->data) < 0)
        st = evae_fail(EELSVAE_ERR_FORMAT,
                       "%s: /Experiments/%s/data: cannot read the elements (the file is truncated or corrupt)",
                       r->path, r->name);
    if (st == EELSVAE_OK && dtype == EELSVAE_DTYPE_BOOL) {
        uint8_t *b = s->data;
        for (size_t i = 0; i < s->count; i++) b[i] = b[i] != 0;
    }
    close_type(mem);
    close_type(ftype);
    close_space(space);
    if (st != EELSVAE_OK) {
        eelsvae_signal_free(s);
        return st;
    }
    *out = s;
    return EELSVAE_OK;
}

static eelsvae_status read_data(const hspy_reader *r, eelsvae_signal **out)
{
    hid_t dset = H5Dopen2(r->exp, "data", H5P_DEFAULT);
    if (dset < 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/data: cannot open the dataset", r->path, r->name);
    eelsvae_status st = read_elements(r, dset, out);
    H5Dclose(dset);
    return st;
}

/* ---- axes ------------------------------------------------------------------- */

/* A non-uniform DataAxis (format 3.1) is read when its points are in fact
 * evenly spaced; a signal's axes are offset + scale·i. */
static eelsvae_status read_point_axis(const hspy_reader *r, const char *group, size_t size, double *offset,
                                      double *scale)
{
    char rel[96];
    snprintf(rel, sizeof rel, "%s/axis", group);
    hid_t dset = H5Dopen2(r->exp, rel, H5P_DEFAULT);
    hid_t space = dset >= 0 ? H5Dget_space(dset) : -1;
    double *points = NULL;
    eelsvae_status st = EELSVAE_OK;
    if (space < 0 || H5Sget_simple_extent_npoints(space) != (hssize_t)size)
        st = evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: /Experiments/%s/%s: a non-uniform axis without %zu points",
                       r->path, r->name, group, size);
    if (st == EELSVAE_OK) st = evae_alloc_array(size, sizeof *points, (void **)&points, "axis points");
    if (st == EELSVAE_OK && H5Dread(dset, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, points) < 0)
        st = evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/%s: cannot read the axis points", r->path, r->name,
                       rel);
    if (st == EELSVAE_OK) {
        double step = size > 1 ? (points[size - 1] - points[0]) / (double)(size - 1) : 1.0;
        double span = fabs(points[0]) + fabs(points[size - 1]);
        for (size_t i = 0; i < size && st == EELSVAE_OK; i++)
            if (!(fabs(points[i] - (points[0] + step * (double)i)) <= 1e-9 * span + 1e-300) || step == 0.0)
                st = evae_fail(EELSVAE_ERR_UNSUPPORTED,
                               "%s: /Experiments/%s/%s: a non-uniform axis (point %zu is off the line); this "
                               "library holds offset + scale·i axes",
                               r->path, r->name, group, i);
        *offset = points[0];
        *scale = step;
    }
    evae_free(points);
    close_space(space);
    if (dset >= 0) H5Dclose(dset);
    return st;
}

/* One axis group; *navigate_given says whether it had a navigate flag. */
static eelsvae_status read_axis(const hspy_reader *r, const char *group, size_t size, evae_signal_axis *a,
                                bool *navigate_given)
{
    char *text = NULL;
    double offset = 0.0, scale = 1.0, v = 0.0;
    bool found = false;
    EVAE_TRY(attr_text(r->exp, group, "_type", &text));
    eelsvae_status st = EELSVAE_OK;
    if (text && strcmp(text, "DataAxis") == 0)
        st = read_point_axis(r, group, size, &offset, &scale);
    else if (text && strcmp(text, "UniformDataAxis") != 0)
        st = evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: /Experiments/%s/%s: a %s; this library holds uniform axes",
                       r->path, r->name, group, text);
    evae_free(text);
    EVAE_TRY(st);
    EVAE_TRY(attr_number(r->exp, group, "offset", &v, &found));
    if (found) offset = v;
    EVAE_TRY(attr_number(r->exp, group, "scale", &v, &found));
    if (found) scale = v;
    if (!isfinite(offset) || !isfinite(scale) || scale == 0.0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/%s: offset %g, scale %g (need finite, scale non-zero)",
                         r->path, r->name, group, offset, scale);
    EVAE_TRY(attr_number(r->exp, group, "size", &v, &found));
    if (found && v != (double)size)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/%s: size %.17g, but the data has %zu along it",
                         r->path, r->name, group, v, size);
    a->offset = offset;
    a->scale = scale;
    EVAE_TRY(attr_text(r->exp, group, "name", &text));
    copy_truncated(a->name, sizeof a->name, text ? text : "");
    evae_free(text);
    EVAE_TRY(attr_text(r->exp, group, "units", &text));
    copy_truncated(a->units, sizeof a->units, text ? text : "");
    evae_free(text);
    EVAE_TRY(attr_number(r->exp, group, "navigate", &v, &found));
    *navigate_given = found;
    if (found) a->navigate = v != 0.0;
    return EELSVAE_OK;
}

static bool object_exists(hid_t loc, const char *rel)
{
    hid_t o = H5Oopen(loc, rel, H5P_DEFAULT);
    if (o < 0) return false;
    H5Oclose(o);
    return true;
}

static eelsvae_status text_at(const hspy_reader *r, const char *obj, const char *attr, char **out);

/* HyperSpy's rule: the navigate flags when every axis has one (format ≥ 2.1),
 * else the last 1 (record_by "spectrum") or 2 ("image") axes are the signal,
 * else all of them are. */
static eelsvae_status read_axes(const hspy_reader *r, eelsvae_signal *s)
{
    char group[64];
    /* Very old files keep the axes in _list_<n>_axes/<i> instead of axis-<i>. */
    snprintf(group, sizeof group, "_list_%zu_axes/0", s->ndim);
    bool listed = !object_exists(r->exp, "axis-0") && object_exists(r->exp, group);
    size_t with_navigate = 0;
    for (size_t d = 0; d < s->ndim; d++) {
        if (listed)
            snprintf(group, sizeof group, "_list_%zu_axes/%zu", s->ndim, d);
        else
            snprintf(group, sizeof group, "axis-%zu", d);
        if (!object_exists(r->exp, group))
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: /Experiments/%s/%s: missing (the data has %zu dimensions)",
                             r->path, r->name, group, s->ndim);
        bool given = false;
        EVAE_TRY(read_axis(r, group, s->shape[d], &s->axis[d], &given));
        with_navigate += given;
    }
    if (with_navigate == s->ndim) return EELSVAE_OK;
    char *record_by = NULL;
    EVAE_TRY(text_at(r, "Signal", "record_by", &record_by));
    if (!record_by) EVAE_TRY(text_at(r, ".", "record_by", &record_by));
    size_t signal_dims = s->ndim;
    if (record_by && strcmp(record_by, "spectrum") == 0) signal_dims = 1;
    if (record_by && strcmp(record_by, "image") == 0) signal_dims = s->ndim < 2 ? s->ndim : 2;
    evae_free(record_by);
    for (size_t d = 0; d < s->ndim; d++) s->axis[d].navigate = d + signal_dims < s->ndim;
    return EELSVAE_OK;
}

/* ---- metadata ------------------------------------------------------------------ */

/* A string attribute of `obj` below the metadata root ("." for the root). */
static eelsvae_status text_at(const hspy_reader *r, const char *obj, const char *attr, char **out)
{
    *out = NULL;
    if (!r->md) return EELSVAE_OK;
    char rel[160];
    snprintf(rel, sizeof rel, "%s/%s", r->md, obj);
    return attr_text(r->exp, rel, attr, out);
}

static eelsvae_status number_at(const hspy_reader *r, const char *obj, const char *attr, double *v, bool *found)
{
    *found = false;
    if (!r->md) return EELSVAE_OK;
    char rel[160];
    snprintf(rel, sizeof rel, "%s/%s", r->md, obj);
    return attr_number(r->exp, rel, attr, v, found);
}

/* Keys "provenance.NAME" (how a map was made) are metadata.Provenance.NAME. */
#define PROVENANCE_PREFIX "provenance."

static bool is_provenance_key(const char *key)
{
    size_t n = strlen(PROVENANCE_PREFIX);
    return strncmp(key, PROVENANCE_PREFIX, n) == 0 && key[n] && !strpbrk(key + n, "./");
}

/* Where a value may be: the 3.x tree first, then the 1.x one. */
typedef struct md_place {
    const char *obj;
    const char *attr;
} md_place;

static eelsvae_status first_text(const hspy_reader *r, const md_place *places, size_t n, char **out)
{
    *out = NULL;
    for (size_t i = 0; i < n && !*out; i++) EVAE_TRY(text_at(r, places[i].obj, places[i].attr, out));
    return EELSVAE_OK;
}

/* Old files record units beside a value ("dwell_time_units": "ms"). */
static eelsvae_status unit_factor(const hspy_reader *r, const md_place *place, const char *const *units,
                                  const double *factors, size_t n, double *factor)
{
    char name[96], *text = NULL;
    snprintf(name, sizeof name, "%s_units", place->attr);
    *factor = 1.0;
    EVAE_TRY(text_at(r, place->obj, name, &text));
    for (size_t i = 0; text && i < n; i++)
        if (strcmp(text, units[i]) == 0) *factor = factors[i];
    evae_free(text);
    return EELSVAE_OK;
}

static eelsvae_status set_first_number(eelsvae_signal *s, const hspy_reader *r, const char *key,
                                       const md_place *places, size_t n, const char *const *units,
                                       const double *factors, size_t n_units)
{
    for (size_t i = 0; i < n; i++) {
        double v = 0.0, factor = 1.0;
        bool found = false;
        EVAE_TRY(number_at(r, places[i].obj, places[i].attr, &v, &found));
        if (!found) continue;
        if (n_units) EVAE_TRY(unit_factor(r, &places[i], units, factors, n_units, &factor));
        return evae_signal_metadata_set_number(s, key, v * factor);
    }
    return EELSVAE_OK;
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9') return false;
    return true;
}

/* "YYYY-MM-DD…" (ISO) or HyperSpy 1.x's "datetime.date(1991, 10, 1)". */
static bool parse_date(const char *text, char out[11])
{
    if (strlen(text) >= 10 && all_digits(text, 4) && text[4] == '-' && all_digits(text + 5, 2) && text[7] == '-' &&
        all_digits(text + 8, 2)) {
        memcpy(out, text, 10);
        out[10] = '\0';
        return true;
    }
    int y = 0, m = 0, d = 0;
    if (sscanf(text, "datetime.date(%d,%d,%d)", &y, &m, &d) == 3 && y >= 0 && y <= 9999 && m >= 1 && m <= 12 &&
        d >= 1 && d <= 31) {
        snprintf(out, 11, "%04d-%02d-%02d", y, m, d);
        return true;
    }
    return false;
}

/* "HH:MM:SS…" (ISO, fractions and zone dropped) or "datetime.time(12, 0)". */
static bool parse_time(const char *text, char out[9])
{
    if (strlen(text) >= 8 && all_digits(text, 2) && text[2] == ':' && all_digits(text + 3, 2) && text[5] == ':' &&
        all_digits(text + 6, 2)) {
        memcpy(out, text, 8);
        out[8] = '\0';
        return true;
    }
    int h = 0, m = 0, sec = 0;
    int n = sscanf(text, "datetime.time(%d,%d,%d", &h, &m, &sec);
    if (n >= 2 && h >= 0 && h < 24 && m >= 0 && m < 60 && sec >= 0 && sec < 61) {
        snprintf(out, 9, "%02d:%02d:%02d", h, m, n == 3 ? sec : 0);
        return true;
    }
    return false;
}

static eelsvae_status read_date_time(eelsvae_signal *s, const hspy_reader *r)
{
    static const md_place date_places[] = {
        {"General", "date"}, {"General", "_datetime_date"}, {".", "date"}, {".", "_datetime_date"}};
    static const md_place time_places[] = {
        {"General", "time"}, {"General", "_datetime_time"}, {".", "time"}, {".", "_datetime_time"}};
    char *text = NULL, date[11], time[9];
    eelsvae_status st = EELSVAE_OK;
    for (size_t i = 0; i < 4 && st == EELSVAE_OK; i++) {
        EVAE_TRY(text_at(r, date_places[i].obj, date_places[i].attr, &text));
        bool ok = text && parse_date(text, date);
        evae_free(text);
        if (ok) {
            st = eelsvae_signal_metadata_set(s, "acquisition_date", date);
            break;
        }
    }
    for (size_t i = 0; i < 4 && st == EELSVAE_OK; i++) {
        EVAE_TRY(text_at(r, time_places[i].obj, time_places[i].attr, &text));
        bool ok = text && parse_time(text, time);
        evae_free(text);
        if (ok) {
            st = eelsvae_signal_metadata_set(s, "acquisition_time", time);
            break;
        }
    }
    return st;
}

/* The energy step, when the signal has one signal axis calibrated in eV. */
static eelsvae_status set_dispersion(eelsvae_signal *s)
{
    size_t signal_axes = 0, axis = 0;
    for (size_t d = 0; d < s->ndim; d++)
        if (!s->axis[d].navigate) {
            signal_axes++;
            axis = d;
        }
    if (signal_axes != 1 || strcmp(s->axis[axis].units, "eV") != 0) return EELSVAE_OK;
    return evae_signal_metadata_set_number(s, "dispersion_ev", s->axis[axis].scale);
}

/* Every string attribute of metadata.Provenance, back as the
 * "provenance.NAME" key write_metadata() stored it from. */
typedef struct provenance_visit {
    eelsvae_signal *s;
    hid_t exp;
    const char *group; /* metadata/Provenance, below the experiment */
    eelsvae_status status;
} provenance_visit;

static herr_t visit_provenance(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)loc;
    (void)info;
    provenance_visit *v = data;
    char key[160];
    if ((size_t)snprintf(key, sizeof key, "%s%s", PROVENANCE_PREFIX, name) >= sizeof key || !is_provenance_key(key))
        return 0;
    char *text = NULL;
    v->status = attr_text(v->exp, v->group, name, &text);
    if (v->status == EELSVAE_OK && text && *text) v->status = eelsvae_signal_metadata_set(v->s, key, text);
    evae_free(text);
    return v->status == EELSVAE_OK ? 0 : 1;
}

static eelsvae_status read_provenance(eelsvae_signal *s, const hspy_reader *r)
{
    if (!r->md) return EELSVAE_OK;
    char group[160];
    snprintf(group, sizeof group, "%s/Provenance", r->md);
    if (H5Lexists(r->exp, group, H5P_DEFAULT) <= 0) return EELSVAE_OK;
    provenance_visit v = {s, r->exp, group, EELSVAE_OK};
    hsize_t index = 0;
    /* A corrupt attribute table reads as no provenance, as other metadata does. */
    H5Aiterate_by_name(r->exp, group, H5_INDEX_NAME, H5_ITER_INC, &index, visit_provenance, &v, H5P_DEFAULT);
    return v.status;
}

static eelsvae_status read_metadata(eelsvae_signal *s, const hspy_reader *r)
{
    static const md_place title_places[] = {{"General", "title"}, {".", "title"}, {".", "name"}};
    static const md_place type_places[] = {{"Signal", "signal_type"}, {".", "signal_type"}, {".", "signal"}};
    static const md_place microscope_places[] = {{"Acquisition_instrument/TEM", "microscope"}, {"TEM", "microscope"}};
    static const md_place beam_places[] = {{"Acquisition_instrument/TEM", "beam_energy"}, {"TEM", "beam_energy"}};
    static const md_place convergence_places[] = {{"Acquisition_instrument/TEM", "convergence_angle"},
                                                  {"TEM", "convergence_angle"}};
    static const md_place collection_places[] = {{"Acquisition_instrument/TEM/Detector/EELS", "collection_angle"},
                                                 {"TEM/EELS", "collection_angle"}};
    /* Spectrum images record the dwell time per pixel, single spectra the exposure. */
    static const md_place exposure_places[] = {
        {"Acquisition_instrument/TEM/Detector/EELS", "exposure"}, {"Acquisition_instrument/TEM/Detector/EELS", "dwell_time"},
        {"TEM/EELS", "exposure"}, {"TEM/EELS", "dwell_time"}, {"TEM", "exposure"}, {"TEM", "dwell_time"}};
    static const char *const volt_units[] = {"V", "eV"};
    static const double volt_factors[] = {1e-3, 1e-3};
    static const char *const time_units[] = {"s", "ms", "us", "\xc2\xb5s", "ns"};
    static const double time_factors[] = {1.0, 1e-3, 1e-6, 1e-6, 1e-9};

    char *text = NULL;
    EVAE_TRY(first_text(r, title_places, 3, &text));
    eelsvae_status st = EELSVAE_OK;
    if (text && *text && strcmp(text, "__unnamed__") != 0) st = evae_signal_set_title(s, text);
    evae_free(text);
    EVAE_TRY(st);
    EVAE_TRY(first_text(r, type_places, 3, &text));
    if (text && *text) st = eelsvae_signal_metadata_set(s, "signal_type", text);
    evae_free(text);
    EVAE_TRY(st);
    EVAE_TRY(read_date_time(s, r));
    EVAE_TRY(set_first_number(s, r, "beam_energy_kev", beam_places, 2, volt_units, volt_factors, 2));
    EVAE_TRY(set_first_number(s, r, "collection_angle_mrad", collection_places, 2, NULL, NULL, 0));
    EVAE_TRY(set_first_number(s, r, "convergence_angle_mrad", convergence_places, 2, NULL, NULL, 0));
    EVAE_TRY(set_dispersion(s));
    EVAE_TRY(set_first_number(s, r, "exposure_s", exposure_places, 6, time_units, time_factors, 5));
    EVAE_TRY(first_text(r, microscope_places, 2, &text));
    if (text && *text) st = eelsvae_signal_metadata_set(s, "microscope", text);
    evae_free(text);
    EVAE_TRY(st);
    return read_provenance(s, r);
}

static eelsvae_status read_signal(hspy_reader *r, eelsvae_signal **out)
{
#if H5_VERSION_GE(1, 12, 0)
    htri_t is_hdf5 = H5Fis_accessible(r->path, H5P_DEFAULT);
#else
    htri_t is_hdf5 = H5Fis_hdf5(r->path);
#endif
    if (is_hdf5 <= 0) return evae_fail(EELSVAE_ERR_FORMAT, "%s: not an HDF5 file", r->path);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* Closing the file closes whatever a failed path left open in it. */
    if (fapl >= 0) H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG);
    r->file = H5Fopen(r->path, H5F_ACC_RDONLY, fapl >= 0 ? fapl : H5P_DEFAULT);
    close_plist(fapl);
    if (r->file < 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: cannot open as HDF5 (truncated or corrupt superblock)", r->path);
    EVAE_TRY(open_experiment(r));
    eelsvae_signal *s = NULL;
    EVAE_TRY(read_data(r, &s));
    eelsvae_status st = read_axes(r, s);
    if (st == EELSVAE_OK) st = read_metadata(s, r);
    if (st != EELSVAE_OK) {
        eelsvae_signal_free(s);
        return st;
    }
    *out = s;
    return EELSVAE_OK;
}

eelsvae_status evae_hspy_read(const char *path, eelsvae_signal **out)
{
    if (!path || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "hspy_read: NULL argument");
    FILE *fp = fopen(path, "rb");
    if (!fp) return evae_fail(EELSVAE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    fclose(fp);
    hdf5_session q;
    hdf5_enter(&q);
    hspy_reader r = {.path = path, .file = -1, .exp = -1};
    eelsvae_status st = read_signal(&r, out);
    if (r.exp >= 0) H5Gclose(r.exp);
    if (r.file >= 0) H5Fclose(r.file);
    evae_free(r.name);
    hdf5_leave(&q);
    return st;
}

/* ======================================================================== */
/*                                 writing                                  */
/* ======================================================================== */

typedef struct hspy_writer {
    const char *path;
    const eelsvae_signal *s;
    hid_t file;
    hid_t exp;
    char *name; /* the experiment group's name */
} hspy_writer;

static eelsvae_status write_failed(const hspy_writer *w, const char *object)
{
    return evae_fail(EELSVAE_ERR_IO, "%s: cannot write the HDF5 object /Experiments/%s/%s", w->path,
                     w->name ? w->name : "", object);
}

/* Valid UTF-8 passes; other bytes become '?', since h5py decodes these
 * attributes as UTF-8 and would fail on the file. */
static bool valid_utf8(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        size_t n = *p < 0x80 ? 1 : (*p >> 5) == 6 ? 2 : (*p >> 4) == 14 ? 3 : (*p >> 3) == 30 ? 4 : 0;
        if (n == 0) return false;
        for (size_t i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80) return false;
        p += n;
    }
    return true;
}

static eelsvae_status put_text(hid_t loc, const char *name, const char *value)
{
    char *clean = NULL;
    if (!valid_utf8(value)) {
        EVAE_TRY(copy_text(value, strlen(value), &clean));
        for (char *c = clean; *c; c++)
            if ((unsigned char)*c >= 0x80) *c = '?';
        value = clean;
    }
    hid_t type = H5Tcopy(H5T_C_S1), space = H5Screate(H5S_SCALAR), attr = -1;
    herr_t rc = -1;
    if (type >= 0 && space >= 0 && H5Tset_size(type, H5T_VARIABLE) >= 0 && H5Tset_cset(type, H5T_CSET_UTF8) >= 0)
        attr = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) {
        rc = H5Awrite(attr, type, &value);
        H5Aclose(attr);
    }
    close_type(type);
    close_space(space);
    evae_free(clean);
    return rc < 0 ? EELSVAE_ERR_IO : EELSVAE_OK;
}

static eelsvae_status put_scalar(hid_t loc, const char *name, hid_t file_type, hid_t mem_type, const void *value)
{
    hid_t space = H5Screate(H5S_SCALAR), attr = -1;
    herr_t rc = -1;
    if (space >= 0) attr = H5Acreate2(loc, name, file_type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (attr >= 0) {
        rc = H5Awrite(attr, mem_type, value);
        H5Aclose(attr);
    }
    close_space(space);
    return rc < 0 ? EELSVAE_ERR_IO : EELSVAE_OK;
}

static eelsvae_status put_double(hid_t loc, const char *name, double value)
{
    return put_scalar(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

/* numpy's bool as h5py stores it: an int8 enum {FALSE = 0, TRUE = 1}. */
static hid_t bool_type(hid_t base)
{
    hid_t t = H5Tenum_create(base);
    int8_t no = 0, yes = 1;
    if (t >= 0 && (H5Tenum_insert(t, "FALSE", &no) < 0 || H5Tenum_insert(t, "TRUE", &yes) < 0)) {
        H5Tclose(t);
        t = -1;
    }
    return t;
}

static eelsvae_status put_bool(hid_t loc, const char *name, bool value)
{
    hid_t file_type = bool_type(H5T_STD_I8LE), mem_type = bool_type(H5T_NATIVE_INT8);
    int8_t v = value ? 1 : 0;
    eelsvae_status st = file_type >= 0 && mem_type >= 0 ? put_scalar(loc, name, file_type, mem_type, &v)
                                                         : EELSVAE_ERR_IO;
    close_type(file_type);
    close_type(mem_type);
    return st;
}

/* The group at `rel` below loc, created with its parents when missing. */
static hid_t require_group(hid_t loc, const char *rel)
{
    if (H5Lexists(loc, rel, H5P_DEFAULT) > 0) return H5Gopen2(loc, rel, H5P_DEFAULT);
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    if (lcpl < 0) return -1;
    H5Pset_create_intermediate_group(lcpl, 1);
    H5Pset_char_encoding(lcpl, H5T_CSET_UTF8);
    hid_t g = H5Gcreate2(loc, rel, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    H5Pclose(lcpl);
    return g;
}

/* The file and memory types of an element type. */
static void element_types(eelsvae_dtype dtype, hid_t *file_type, hid_t *mem_type)
{
    *file_type = *mem_type = -1;
    switch (dtype) {
    case EELSVAE_DTYPE_INT8: *file_type = H5Tcopy(H5T_STD_I8LE), *mem_type = H5Tcopy(H5T_NATIVE_INT8); break;
    case EELSVAE_DTYPE_UINT8: *file_type = H5Tcopy(H5T_STD_U8LE), *mem_type = H5Tcopy(H5T_NATIVE_UINT8); break;
    case EELSVAE_DTYPE_INT16: *file_type = H5Tcopy(H5T_STD_I16LE), *mem_type = H5Tcopy(H5T_NATIVE_INT16); break;
    case EELSVAE_DTYPE_UINT16: *file_type = H5Tcopy(H5T_STD_U16LE), *mem_type = H5Tcopy(H5T_NATIVE_UINT16); break;
    case EELSVAE_DTYPE_INT32: *file_type = H5Tcopy(H5T_STD_I32LE), *mem_type = H5Tcopy(H5T_NATIVE_INT32); break;
    case EELSVAE_DTYPE_UINT32: *file_type = H5Tcopy(H5T_STD_U32LE), *mem_type = H5Tcopy(H5T_NATIVE_UINT32); break;
    case EELSVAE_DTYPE_INT64: *file_type = H5Tcopy(H5T_STD_I64LE), *mem_type = H5Tcopy(H5T_NATIVE_INT64); break;
    case EELSVAE_DTYPE_UINT64: *file_type = H5Tcopy(H5T_STD_U64LE), *mem_type = H5Tcopy(H5T_NATIVE_UINT64); break;
    case EELSVAE_DTYPE_FLOAT32: *file_type = H5Tcopy(H5T_IEEE_F32LE), *mem_type = H5Tcopy(H5T_NATIVE_FLOAT); break;
    case EELSVAE_DTYPE_FLOAT64: *file_type = H5Tcopy(H5T_IEEE_F64LE), *mem_type = H5Tcopy(H5T_NATIVE_DOUBLE); break;
    case EELSVAE_DTYPE_BOOL: *file_type = bool_type(H5T_STD_I8LE), *mem_type = bool_type(H5T_NATIVE_INT8); break;
    case EELSVAE_DTYPE_COMPLEX64:
    case EELSVAE_DTYPE_COMPLEX128: {
        /* h5py's complex: a compound {r, i}. */
        size_t part = dtype == EELSVAE_DTYPE_COMPLEX64 ? 4 : 8;
        hid_t parts[2][2] = {{H5T_IEEE_F32LE, H5T_NATIVE_FLOAT}, {H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE}};
        hid_t *out[2] = {file_type, mem_type};
        for (int k = 0; k < 2; k++) {
            hid_t t = H5Tcreate(H5T_COMPOUND, 2 * part), member = parts[part == 8][k];
            if (t >= 0 && (H5Tinsert(t, "r", 0, member) < 0 || H5Tinsert(t, "i", part, member) < 0)) {
                H5Tclose(t);
                t = -1;
            }
            *out[k] = t;
        }
    } break;
    case EELSVAE_DTYPE_RGBA8: *file_type = rgba_type(H5T_STD_U8LE), *mem_type = rgba_type(H5T_NATIVE_UINT8); break;
    case EELSVAE_DTYPE_FLOAT16: break;
    }
}

/* HyperSpy's chunking: whole signals, as many per chunk as fit in about a
 * mebibyte (the fastest navigation axes first). */
static void choose_chunks(const eelsvae_signal *s, hsize_t *chunk)
{
    size_t signal_bytes = eelsvae_dtype_size(s->dtype);
    for (size_t d = 0; d < s->ndim; d++) {
        chunk[d] = s->axis[d].navigate ? 1 : s->shape[d];
        if (!s->axis[d].navigate) signal_bytes *= s->shape[d]; /* ≤ the data's bytes: no overflow */
    }
    size_t budget = signal_bytes >= HSPY_CHUNK_TARGET ? 1 : HSPY_CHUNK_TARGET / signal_bytes;
    for (size_t d = s->ndim; d-- > 0;) {
        if (!s->axis[d].navigate) continue;
        size_t c = s->shape[d] < budget ? s->shape[d] : budget;
        chunk[d] = c;
        budget /= c;
    }
    for (;;) {
        uint64_t bytes = eelsvae_dtype_size(s->dtype);
        size_t largest = 0;
        for (size_t d = 0; d < s->ndim; d++) {
            bytes *= chunk[d];
            if (chunk[d] > chunk[largest]) largest = d;
        }
        if (bytes < HSPY_CHUNK_MAX || chunk[largest] == 1) break;
        chunk[largest] = (chunk[largest] + 1) / 2;
    }
}

static eelsvae_status write_data(const hspy_writer *w)
{
    const eelsvae_signal *s = w->s;
    hsize_t dims[EELSVAE_SIGNAL_MAX_DIMS], chunk[EELSVAE_SIGNAL_MAX_DIMS];
    for (size_t d = 0; d < s->ndim; d++) dims[d] = s->shape[d];
    choose_chunks(s, chunk);
    hid_t file_type = -1, mem_type = -1;
    element_types(s->dtype, &file_type, &mem_type);
    hid_t space = H5Screate_simple((int)s->ndim, dims, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE), dset = -1;
    if (dcpl >= 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) > 0) {
        /* gzip with shuffle, as HyperSpy writes; level 1 because noisy spectra
         * compress little at any level and the lowest is the fastest. */
        if (H5Pset_chunk(dcpl, (int)s->ndim, chunk) < 0 || H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, 1) < 0) {
            H5Pclose(dcpl);
            dcpl = H5Pcreate(H5P_DATASET_CREATE);
        }
    }
    if (file_type >= 0 && mem_type >= 0 && space >= 0 && dcpl >= 0)
        dset = H5Dcreate2(w->exp, "data", file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = dset >= 0 ? H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, s->data) : -1;
    if (dset >= 0) H5Dclose(dset);
    close_plist(dcpl);
    close_space(space);
    close_type(file_type);
    close_type(mem_type);
    return rc < 0 ? write_failed(w, "data") : EELSVAE_OK;
}

static const char *metadata_value(const eelsvae_signal *s, const char *key)
{
    return eelsvae_signal_metadata_get(s, key);
}

static bool is_eels(const eelsvae_signal *s)
{
    const char *type = metadata_value(s, "signal_type");
    return type && strcmp(type, "EELS") == 0;
}

static eelsvae_status write_axes(const hspy_writer *w)
{
    const eelsvae_signal *s = w->s;
    for (size_t d = 0; d < s->ndim; d++) {
        const evae_signal_axis *a = &s->axis[d];
        char name[32];
        snprintf(name, sizeof name, "axis-%zu", d);
        hid_t g = require_group(w->exp, name);
        if (g < 0) return write_failed(w, name);
        int64_t size = (int64_t)s->shape[d];
        /* HyperSpy bins EELS energy axes (counts per channel). */
        bool binned = !a->navigate && is_eels(s);
        eelsvae_status st = put_text(g, "_type", "UniformDataAxis");
        if (st == EELSVAE_OK && a->name[0]) st = put_text(g, "name", a->name);
        if (st == EELSVAE_OK && a->units[0]) st = put_text(g, "units", a->units);
        if (st == EELSVAE_OK) st = put_double(g, "offset", a->offset);
        if (st == EELSVAE_OK) st = put_double(g, "scale", a->scale);
        if (st == EELSVAE_OK) st = put_scalar(g, "size", H5T_STD_I64LE, H5T_NATIVE_INT64, &size);
        if (st == EELSVAE_OK) st = put_bool(g, "navigate", a->navigate);
        if (st == EELSVAE_OK) st = put_bool(g, "is_binned", binned);
        H5Gclose(g);
        if (st != EELSVAE_OK) return st == EELSVAE_ERR_IO ? write_failed(w, name) : st;
    }
    return EELSVAE_OK;
}

/* Our metadata keys and where HyperSpy keeps them; numbers are written as
 * float64, the rest as strings. */
typedef struct md_target {
    const char *key;
    const char *group; /* below the experiment */
    const char *attr;
    bool number;
} md_target;

static const md_target md_targets[] = {
    {"title", "metadata/General", "title", false},
    {"acquisition_date", "metadata/General", "date", false},
    {"acquisition_time", "metadata/General", "time", false},
    {"signal_type", "metadata/Signal", "signal_type", false},
    {"beam_energy_kev", "metadata/Acquisition_instrument/TEM", "beam_energy", true},
    {"convergence_angle_mrad", "metadata/Acquisition_instrument/TEM", "convergence_angle", true},
    {"microscope", "metadata/Acquisition_instrument/TEM", "microscope", false},
    {"collection_angle_mrad", "metadata/Acquisition_instrument/TEM/Detector/EELS", "collection_angle", true},
    {"exposure_s", "metadata/Acquisition_instrument/TEM/Detector/EELS", "exposure", true},
};

static eelsvae_status put_at(const hspy_writer *w, const char *group, const char *attr, const char *text,
                             const double *number)
{
    hid_t g = require_group(w->exp, group);
    if (g < 0) return write_failed(w, group);
    /* two of our keys may map to one name ("a.b", "a_b"): the last wins */
    if (H5Aexists(g, attr) > 0) H5Adelete(g, attr);
    eelsvae_status st = number ? put_double(g, attr, *number) : put_text(g, attr, text);
    H5Gclose(g);
    return st == EELSVAE_ERR_IO ? write_failed(w, group) : st;
}

static const md_target *find_target(const char *key)
{
    for (size_t i = 0; i < sizeof md_targets / sizeof md_targets[0]; i++)
        if (strcmp(md_targets[i].key, key) == 0) return &md_targets[i];
    return NULL;
}

/* HyperSpy's metadata tree for the keys it knows; the other keys (bar
 * dispersion_ev, which is the energy axis' scale, and the provenance keys) go
 * to original_metadata as strings, with '.' and '/' (path separators to HyperSpy and HDF5) as '_'. */
static eelsvae_status write_metadata(const hspy_writer *w)
{
    const eelsvae_signal *s = w->s;
    size_t signal_axes = 0;
    for (size_t d = 0; d < s->ndim; d++) signal_axes += !s->axis[d].navigate;
    const char *title = metadata_value(s, "title"), *type = metadata_value(s, "signal_type");
    EVAE_TRY(put_at(w, "metadata/General", "title", title ? title : "", NULL));
    EVAE_TRY(put_at(w, "metadata/Signal", "signal_type", type ? type : "", NULL));
    /* record_by for readers older than the per-axis navigate flags. */
    const char *record_by = signal_axes == 1 ? "spectrum" : signal_axes == 2 ? "image" : "";
    EVAE_TRY(put_at(w, "metadata/Signal", "record_by", record_by, NULL));
    hid_t original = require_group(w->exp, "original_metadata");
    if (original < 0) return write_failed(w, "original_metadata");
    H5Gclose(original);
    for (size_t i = 0; i < s->metadata_count; i++) {
        const char *key = s->metadata[i].key, *value = s->metadata[i].value;
        if (strcmp(key, "title") == 0 || strcmp(key, "signal_type") == 0 || strcmp(key, "dispersion_ev") == 0)
            continue;
        const md_target *t = find_target(key);
        double number = 0.0;
        if (t && (!t->number || parse_number(value, &number))) {
            EVAE_TRY(put_at(w, t->group, t->attr, value, t->number ? &number : NULL));
            continue;
        }
        if (is_provenance_key(key)) {
            EVAE_TRY(put_at(w, "metadata/Provenance", key + strlen(PROVENANCE_PREFIX), value, NULL));
            continue;
        }
        char *name = NULL;
        EVAE_TRY(copy_text(key, strlen(key), &name));
        for (char *c = name; *c; c++)
            if (*c == '.' || *c == '/') *c = '_';
        eelsvae_status st = put_at(w, "original_metadata", name, value, NULL);
        evae_free(name);
        EVAE_TRY(st);
    }
    return EELSVAE_OK;
}

/* HyperSpy names the group after the title ('/' as '-'), "__unnamed__" for none. */
static eelsvae_status experiment_name(const eelsvae_signal *s, char **out)
{
    const char *title = metadata_value(s, "title");
    if (!title || !*title || strcmp(title, ".") == 0 || strcmp(title, "..") == 0) title = "__unnamed__";
    EVAE_TRY(copy_text(title, strlen(title), out));
    for (char *c = *out; *c; c++)
        if (*c == '/') *c = '-';
    return EELSVAE_OK;
}

static eelsvae_status write_file(hspy_writer *w)
{
    if (put_text(w->file, "file_format", "HyperSpy") != EELSVAE_OK ||
        put_text(w->file, "file_format_version", HSPY_FORMAT_VERSION) != EELSVAE_OK)
        return evae_fail(EELSVAE_ERR_IO, "%s: cannot write the root attributes", w->path);
    EVAE_TRY(experiment_name(w->s, &w->name));
    hid_t experiments = require_group(w->file, "Experiments");
    if (experiments < 0) return evae_fail(EELSVAE_ERR_IO, "%s: cannot create /Experiments", w->path);
    w->exp = require_group(experiments, w->name);
    H5Gclose(experiments);
    if (w->exp < 0) return evae_fail(EELSVAE_ERR_IO, "%s: cannot create /Experiments/%s", w->path, w->name);
    EVAE_TRY(write_axes(w));
    EVAE_TRY(write_data(w));
    return write_metadata(w);
}

/* The file is built in memory (HDF5's core driver, no backing store) and
 * its image written with evae_atomic_*: HDF5 then never writes to disk, so
 * a full disk or a size limit fails in our own write with the system's
 * reason, the old file stays, and no half-closed HDF5 file is left behind
 * (a failed H5Fclose keeps its id, which HDF5's exit handler then trips on).
 * The price is one copy of the (compressed) file in memory. */
static eelsvae_status build_image(hspy_writer *w, uint8_t **image, size_t *size)
{
    size_t data_bytes = w->s->count * eelsvae_dtype_size(w->s->dtype);
    /* The core driver grows its buffer by this much: about the whole file at once. */
    size_t increment = data_bytes + ((size_t)1 << 20);
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, increment, 0) < 0 || H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0) {
        close_plist(fapl);
        return evae_fail(EELSVAE_ERR_IO, "%s: cannot set up an in-memory HDF5 file", w->path);
    }
    /* A name of its own: HDF5 refuses to create a file it has open already,
     * and the caller may hold the target open (no disk file is made). */
    static unsigned long serial; /* under hdf5_lock */
    char name[64];
    snprintf(name, sizeof name, "eelsvae-in-memory-%lu.hspy", ++serial);
    w->file = H5Fcreate(name, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
    H5Pclose(fapl);
    if (w->file < 0) return evae_fail(EELSVAE_ERR_IO, "%s: cannot create an in-memory HDF5 file", w->path);
    eelsvae_status st = write_file(w);
    if (w->exp >= 0) H5Gclose(w->exp);
    w->exp = -1;
    ssize_t bytes = -1;
    if (st == EELSVAE_OK && H5Fflush(w->file, H5F_SCOPE_GLOBAL) >= 0) bytes = H5Fget_file_image(w->file, NULL, 0);
    if (st == EELSVAE_OK && bytes <= 0)
        st = evae_fail(EELSVAE_ERR_IO, "%s: cannot finish the HDF5 file in memory", w->path);
    uint8_t *buf = NULL;
    if (st == EELSVAE_OK) st = evae_alloc_array((size_t)bytes, 1, (void **)&buf, "HDF5 file image");
    if (st == EELSVAE_OK && H5Fget_file_image(w->file, buf, (size_t)bytes) != bytes)
        st = evae_fail(EELSVAE_ERR_IO, "%s: cannot copy the HDF5 file image", w->path);
    H5Fclose(w->file); /* in memory: nothing to flush that can fail */
    w->file = -1;
    if (st != EELSVAE_OK) {
        evae_free(buf);
        return st;
    }
    *image = buf;
    *size = (size_t)bytes;
    return EELSVAE_OK;
}

eelsvae_status evae_hspy_write(const eelsvae_signal *s, const char *path)
{
    if (!s || !path || !*path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "hspy_write: NULL argument");
    if (eelsvae_dtype_size(s->dtype) == 0 || s->dtype == EELSVAE_DTYPE_FLOAT16)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: .hspy is not written for %s elements here", path,
                         eelsvae_dtype_name(s->dtype));
    hdf5_session q;
    hdf5_enter(&q);
    hspy_writer w = {.path = path, .s = s, .file = -1, .exp = -1};
    uint8_t *image = NULL;
    size_t size = 0;
    eelsvae_status st = build_image(&w, &image, &size);
    hdf5_leave(&q);
    evae_free(w.name);
    if (st != EELSVAE_OK) return st;
    evae_atomic_file f;
    st = evae_atomic_open(&f, path);
    if (st == EELSVAE_OK) {
        st = evae_atomic_write(&f, image, size);
        if (st == EELSVAE_OK)
            st = evae_atomic_commit(&f);
        else
            evae_atomic_abort(&f);
    }
    evae_free(image);
    return st;
}
