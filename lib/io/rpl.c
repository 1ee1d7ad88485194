/* Ripple files (Lispix), as HyperSpy reads and writes them: a text header
 * (.rpl) of "key<TAB>value" lines and the elements, raw, in a .raw file
 * beside it with the same stem.
 *
 * The header's eight Lispix keys say how to read the .raw file: width,
 * height, depth, offset (bytes to skip), data-type (signed, unsigned,
 * float), data-length (bytes per element), byte-order and record-by:
 * "vector" stores (height, width, depth) with depth fastest (a spectrum
 * image), "image" stores (depth, height, width) (an image stack) and
 * "dont-care" one (height, width) image. HyperSpy adds calibration keys
 * (<axis>-origin, -scale, -units, -name for depth, width and height) and
 * metadata (signal, title, date, time, beam-energy, convergence-angle,
 * collection-angle). Lines starting with ';' and text after a ';' are
 * comments. HyperSpy reads and writes the header as Latin-1; the signal's
 * strings are UTF-8. Like HyperSpy, axes of size 1 are dropped on reading. */
#include "io_private.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A header is a few hundred bytes; anything near this is not one. */
#define RPL_HEADER_MAX ((size_t)1 << 20)

/* ---- the header's keys ------------------------------------------------------ */

enum rpl_key {
    K_WIDTH, K_HEIGHT, K_DEPTH, K_OFFSET, K_DATA_LENGTH, K_DATA_TYPE, K_BYTE_ORDER, K_RECORD_BY,
    K_EV_PER_CHAN, K_SIGNAL, K_TITLE, K_DATE, K_TIME, K_BEAM_ENERGY, K_CONVERGENCE, K_COLLECTION,
    /* per axis, in the order of rpl_axes below: origin, scale, units, name */
    K_DEPTH_ORIGIN, K_DEPTH_SCALE, K_DEPTH_UNITS, K_DEPTH_NAME,
    K_WIDTH_ORIGIN, K_WIDTH_SCALE, K_WIDTH_UNITS, K_WIDTH_NAME,
    K_HEIGHT_ORIGIN, K_HEIGHT_SCALE, K_HEIGHT_UNITS, K_HEIGHT_NAME,
    K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "width", "height", "depth", "offset", "data-length", "data-type", "byte-order", "record-by",
    "ev-per-chan", "signal", "title", "date", "time", "beam-energy", "convergence-angle", "collection-angle",
    "depth-origin", "depth-scale", "depth-units", "depth-name",
    "width-origin", "width-scale", "width-units", "width-name",
    "height-origin", "height-scale", "height-units", "height-name",
};

/* The three Ripple axes and the first of their four calibration keys. */
enum rpl_axis { AX_DEPTH, AX_WIDTH, AX_HEIGHT };
static const char *const rpl_axis_names[3] = {"depth", "width", "height"};
static const enum rpl_key rpl_axis_keys[3] = {K_DEPTH_ORIGIN, K_WIDTH_ORIGIN, K_HEIGHT_ORIGIN};

typedef struct rpl_header {
    const char *path;
    char *text;                  /* the file, cut into NUL-terminated keys and values */
    const char *value[K_COUNT];  /* NULL when absent */
    size_t line[K_COUNT];
} rpl_header;

static char lower_ascii(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static char *trim(char *begin, char *end)
{
    while (begin < end && (*begin == ' ' || *begin == '\t')) begin++;
    while (end > begin && (end[-1] == ' ' || end[-1] == '\t')) end--;
    *end = '\0';
    return begin;
}

/* One "key<TAB>value[<TAB>ignored]" line (comments already cut). */
static eelsvae_status parse_line(rpl_header *h, char *line, size_t number)
{
    char *tab = strchr(line, '\t');
    char *end = line + strlen(line);
    if (!tab) {
        if (*trim(line, end) == '\0') return EELSVAE_OK; /* blank */
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu (\"%.40s\"): no TAB between key and value", h->path,
                         number, line);
    }
    char *value_end = strchr(tab + 1, '\t');
    char *key = trim(line, tab);
    char *value = trim(tab + 1, value_end ? value_end : end);
    for (char *c = key; *c; c++) *c = lower_ascii(*c);
    for (size_t k = 0; k < K_COUNT; k++) {
        if (strcmp(key, key_names[k]) == 0) {
            h->value[k] = value; /* a repeated key: the last wins, as in HyperSpy */
            h->line[k] = number;
        }
    }
    return EELSVAE_OK;
}

static eelsvae_status parse_header(rpl_header *h)
{
    size_t size = 0;
    uint8_t *bytes = NULL;
    EVAE_TRY(evae_read_file(h->path, RPL_HEADER_MAX, &bytes, &size));
    char *text = NULL;
    eelsvae_status st = evae_alloc_array(size + 1, 1, (void **)&text, "Ripple header");
    if (st == EELSVAE_OK) {
        memcpy(text, bytes, size);
        text[size] = '\0';
        if (memchr(bytes, '\0', size))
            st = evae_fail(EELSVAE_ERR_FORMAT, "%s: a NUL byte at offset %zu: not a text header", h->path,
                           (size_t)((const uint8_t *)memchr(bytes, '\0', size) - bytes));
    }
    evae_free(bytes);
    h->text = text;
    size_t number = 0;
    for (char *line = text; st == EELSVAE_OK && line && *line;) {
        char *next = strchr(line, '\n');
        if (next) *next++ = '\0';
        number++;
        char *cr = strchr(line, '\r');
        if (cr) *cr = '\0';
        char *comment = strchr(line, ';');
        if (comment) *comment = '\0';
        st = parse_line(h, line, number);
        line = next;
    }
    return st;
}

/* ---- values --------------------------------------------------------------- */

static eelsvae_status require_key(const rpl_header *h, enum rpl_key k)
{
    if (!h->value[k])
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: the header has no \"%s\" line", h->path, key_names[k]);
    return EELSVAE_OK;
}

/* A whole decimal number ≥ min. */
static eelsvae_status key_count(const rpl_header *h, enum rpl_key k, uint64_t min, uint64_t *out)
{
    EVAE_TRY(require_key(h, k));
    const char *text = h->value[k];
    const char *p = text[0] == '+' ? text + 1 : text;
    uint64_t v = 0;
    bool ok = *p != '\0';
    for (; ok && *p; p++) {
        if (*p < '0' || *p > '9' || v > (UINT64_MAX - 9) / 10) ok = false;
        else v = v * 10 + (uint64_t)(*p - '0');
    }
    if (!ok || v < min)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu: %s \"%s\" is not a whole number ≥ %llu", h->path,
                         h->line[k], key_names[k], text, (unsigned long long)min);
    *out = v;
    return EELSVAE_OK;
}

/* An optional real number; *found false when the key is absent. */
static eelsvae_status key_real(const rpl_header *h, enum rpl_key k, double *out, bool *found)
{
    *found = false;
    const char *text = h->value[k];
    if (!text) return EELSVAE_OK;
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (end == text || *end != '\0' || errno == ERANGE || !isfinite(v))
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu: %s \"%s\" is not a finite number", h->path, h->line[k],
                         key_names[k], text);
    *out = v;
    *found = true;
    return EELSVAE_OK;
}

/* One of a list of words; the index is returned. */
static eelsvae_status key_choice(const rpl_header *h, enum rpl_key k, const char *const *choices, size_t n,
                                 const char *fallback, size_t *out)
{
    const char *text = h->value[k] ? h->value[k] : fallback;
    if (!text) EVAE_TRY(require_key(h, k));
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(choices[i]);
        bool same = strlen(text) == len;
        for (size_t c = 0; same && c < len; c++) same = lower_ascii(text[c]) == choices[i][c];
        if (same) {
            *out = i;
            return EELSVAE_OK;
        }
    }
    return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu: %s \"%s\" is none of %s%s%s%s%s", h->path, h->line[k],
                     key_names[k], text, choices[0], n > 1 ? ", " : "", n > 1 ? choices[1] : "", n > 2 ? ", " : "",
                     n > 2 ? choices[2] : "");
}

/* Latin-1 (the header) to UTF-8 (the signal), into a fixed field or a new string. */
static size_t latin1_to_utf8(const char *src, char *dst, size_t cap)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)src; *p; p++) {
        size_t need = *p < 0x80 ? 1 : 2;
        if (n + need >= cap) break;
        if (dst) {
            if (need == 1) {
                dst[n] = (char)*p;
            } else {
                dst[n] = (char)(0xC0 | (*p >> 6));
                dst[n + 1] = (char)(0x80 | (*p & 0x3F));
            }
        }
        n += need;
    }
    if (dst) dst[n] = '\0';
    return n;
}

static eelsvae_status set_text(eelsvae_signal *s, const char *key, const char *latin1)
{
    size_t cap = 2 * strlen(latin1) + 1;
    char *utf8 = NULL;
    EVAE_TRY(evae_alloc_array(cap, 1, (void **)&utf8, "Ripple string"));
    latin1_to_utf8(latin1, utf8, cap);
    eelsvae_status st = eelsvae_signal_metadata_set(s, key, utf8);
    evae_free(utf8);
    return st;
}

/* HyperSpy writes an undefined name or unit as "<undefined>". */
static const char *defined(const char *text)
{
    return text && strcmp(text, "<undefined>") != 0 ? text : "";
}

/* ---- reading ------------------------------------------------------------------ */

typedef struct rpl_layout {
    eelsvae_dtype dtype;
    size_t esize;
    bool swap;               /* the file's byte order is not the host's */
    uint64_t offset;
    size_t full_ndim;        /* 2 or 3, before dropping size-1 axes */
    size_t full_shape[3];
    enum rpl_axis full_axis[3];
    size_t signal_dims;      /* HyperSpy's signal dimension: 1 or 2 */
    bool vector;
} rpl_layout;

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first = 0;
    memcpy(&first, &one, 1);
    return first == 1;
}

static eelsvae_status read_layout(const rpl_header *h, rpl_layout *L)
{
    static const char *const types[] = {"signed", "unsigned", "float"};
    static const char *const orders[] = {"little-endian", "big-endian", "dont-care"};
    static const char *const records[] = {"vector", "image", "dont-care"};
    uint64_t width = 0, height = 0, depth = 0, length = 0;
    size_t type = 0, order = 0, record = 0;
    EVAE_TRY(key_count(h, K_WIDTH, 1, &width));
    EVAE_TRY(key_count(h, K_HEIGHT, 1, &height));
    EVAE_TRY(key_count(h, K_DEPTH, 1, &depth));
    L->offset = 0;
    if (h->value[K_OFFSET]) EVAE_TRY(key_count(h, K_OFFSET, 0, &L->offset));
    EVAE_TRY(key_choice(h, K_DATA_TYPE, types, 3, NULL, &type));
    EVAE_TRY(key_count(h, K_DATA_LENGTH, 1, &length));
    EVAE_TRY(key_choice(h, K_BYTE_ORDER, orders, 3, "dont-care", &order));
    EVAE_TRY(key_choice(h, K_RECORD_BY, records, 3, NULL, &record));
    static const eelsvae_dtype ints[2][4] = {
        {EELSVAE_DTYPE_INT8, EELSVAE_DTYPE_INT16, EELSVAE_DTYPE_INT32, EELSVAE_DTYPE_INT64},
        {EELSVAE_DTYPE_UINT8, EELSVAE_DTYPE_UINT16, EELSVAE_DTYPE_UINT32, EELSVAE_DTYPE_UINT64}};
    int log2_length = length == 1 ? 0 : length == 2 ? 1 : length == 4 ? 2 : length == 8 ? 3 : -1;
    if (type == 2 && (length == 4 || length == 8))
        L->dtype = length == 4 ? EELSVAE_DTYPE_FLOAT32 : EELSVAE_DTYPE_FLOAT64;
    else if (type < 2 && log2_length >= 0)
        L->dtype = ints[type][log2_length];
    else
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu: data-length %llu for data-type %s (need 1, 2, 4 or 8; "
                         "4 or 8 for float)", h->path, h->line[K_DATA_LENGTH], (unsigned long long)length,
                         types[type]);
    L->esize = (size_t)length;
    /* "dont-care" is the host's order, as HyperSpy reads it. */
    L->swap = length > 1 && order != 2 && (order == 0) != host_is_little_endian();
    if (record == 2 && depth != 1)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu: record-by dont-care (one image) with depth %llu; "
                         "depth must be 1", h->path, h->line[K_RECORD_BY], (unsigned long long)depth);
    if (width > SIZE_MAX || height > SIZE_MAX || depth > SIZE_MAX)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: width %llu, height %llu, depth %llu: too large", h->path,
                         (unsigned long long)width, (unsigned long long)height, (unsigned long long)depth);
    /* depth 1 is one image whatever record-by says (HyperSpy refuses it). */
    L->vector = record == 0 && depth > 1;
    if (L->vector) {
        L->full_ndim = 3;
        L->full_shape[0] = (size_t)height, L->full_axis[0] = AX_HEIGHT;
        L->full_shape[1] = (size_t)width, L->full_axis[1] = AX_WIDTH;
        L->full_shape[2] = (size_t)depth, L->full_axis[2] = AX_DEPTH;
        L->signal_dims = 1;
    } else if (record == 1 && depth > 1) {
        L->full_ndim = 3;
        L->full_shape[0] = (size_t)depth, L->full_axis[0] = AX_DEPTH;
        L->full_shape[1] = (size_t)height, L->full_axis[1] = AX_HEIGHT;
        L->full_shape[2] = (size_t)width, L->full_axis[2] = AX_WIDTH;
        L->signal_dims = 2;
    } else {
        L->full_ndim = 2;
        L->full_shape[0] = (size_t)height, L->full_axis[0] = AX_HEIGHT;
        L->full_shape[1] = (size_t)width, L->full_axis[1] = AX_WIDTH;
        L->signal_dims = 2;
    }
    return EELSVAE_OK;
}

/* The .raw file: the header's name with its extension replaced, "raw" then
 * "RAW" (HyperSpy's order). */
static eelsvae_status raw_path_for(const char *rpl_path, bool upper, char **out)
{
    const char *slash = strrchr(rpl_path, '/');
    const char *dot = strrchr(slash ? slash + 1 : rpl_path, '.');
    size_t stem = dot ? (size_t)(dot - rpl_path) : strlen(rpl_path);
    char *p = NULL;
    EVAE_TRY(evae_alloc_array(stem + 5, 1, (void **)&p, "file name"));
    memcpy(p, rpl_path, stem);
    memcpy(p + stem, upper ? ".RAW" : ".raw", 5);
    *out = p;
    return EELSVAE_OK;
}

static eelsvae_status open_raw(const char *rpl_path, FILE **fp, size_t *size, char **raw_path)
{
    for (int upper = 0; upper < 2; upper++) {
        char *p = NULL;
        EVAE_TRY(raw_path_for(rpl_path, upper, &p));
        FILE *f = fopen(p, "rb");
        if (f) {
            fclose(f);
            eelsvae_status st = evae_open_sized(p, "a Ripple .raw file", fp, size);
            if (st != EELSVAE_OK) {
                evae_free(p);
                return st;
            }
            *raw_path = p;
            return EELSVAE_OK;
        }
        evae_free(p);
    }
    char *p = NULL;
    EVAE_TRY(raw_path_for(rpl_path, false, &p));
    eelsvae_status st = evae_fail(EELSVAE_ERR_IO, "%s: its data file %s (or .RAW) cannot be opened: %s", rpl_path,
                                  p, strerror(errno));
    evae_free(p);
    return st;
}

static void swap_bytes(uint8_t *data, size_t count, size_t esize)
{
    for (size_t i = 0; i < count; i++) {
        uint8_t *e = data + i * esize;
        for (size_t a = 0, b = esize - 1; a < b; a++, b--) {
            uint8_t t = e[a];
            e[a] = e[b];
            e[b] = t;
        }
    }
}

/* The elements, after checking the .raw file holds exactly what the header
 * says (HyperSpy's memmap and reshape accept nothing else). */
static eelsvae_status read_elements(const rpl_header *h, const rpl_layout *L, eelsvae_signal *s)
{
    FILE *fp = NULL;
    size_t raw_size = 0;
    char *raw = NULL;
    EVAE_TRY(open_raw(h->path, &fp, &raw_size, &raw));
    size_t bytes = s->count * L->esize; /* the signal was allocated: no overflow */
    eelsvae_status st = EELSVAE_OK;
    if (L->offset > raw_size || raw_size - L->offset != bytes)
        st = evae_fail(EELSVAE_ERR_FORMAT, "%s: the header says offset %llu + %zu bytes (width × height × depth × "
                       "data-length), but %s has %zu bytes", h->path, (unsigned long long)L->offset, bytes, raw,
                       raw_size);
    if (st == EELSVAE_OK && fseeko(fp, (off_t)L->offset, SEEK_SET) != 0)
        st = evae_fail(EELSVAE_ERR_IO, "%s: cannot seek to byte %llu: %s", raw, (unsigned long long)L->offset,
                       strerror(errno));
    if (st == EELSVAE_OK && fread(s->data, 1, bytes, fp) != bytes)
        st = evae_fail(EELSVAE_ERR_IO, "%s: cannot read %zu bytes at offset %llu", raw, bytes,
                       (unsigned long long)L->offset);
    fclose(fp);
    evae_free(raw);
    if (st == EELSVAE_OK && L->swap) swap_bytes(s->data, s->count, L->esize);
    return st;
}

/* The header's sizes against the .raw file before any allocation, so a
 * corrupt header claiming terabytes fails as a format error. */
static eelsvae_status check_claimed_size(const rpl_header *h, const rpl_layout *L)
{
    uint64_t bytes = L->esize;
    bool overflow = false;
    for (size_t d = 0; d < L->full_ndim; d++) {
        if (bytes > UINT64_MAX / L->full_shape[d]) overflow = true;
        else bytes *= L->full_shape[d];
    }
    FILE *fp = NULL;
    size_t raw_size = 0;
    char *raw = NULL;
    EVAE_TRY(open_raw(h->path, &fp, &raw_size, &raw));
    fclose(fp);
    eelsvae_status st = EELSVAE_OK;
    if (overflow || L->offset > raw_size || raw_size - L->offset != bytes)
        st = evae_fail(EELSVAE_ERR_FORMAT, "%s: width %s, height %s, depth %s of %zu-byte elements after offset "
                       "%llu do not match %s, which has %zu bytes", h->path, h->value[K_WIDTH], h->value[K_HEIGHT],
                       h->value[K_DEPTH], L->esize, (unsigned long long)L->offset, raw, raw_size);
    evae_free(raw);
    return st;
}

static eelsvae_status calibrate_axis(const rpl_header *h, enum rpl_axis which, evae_signal_axis *a)
{
    enum rpl_key k = rpl_axis_keys[which];
    double v = 0.0;
    bool found = false;
    a->offset = 0.0;
    a->scale = 1.0;
    EVAE_TRY(key_real(h, k, &v, &found));
    if (found) a->offset = v;
    EVAE_TRY(key_real(h, (enum rpl_key)(k + 1), &v, &found));
    if (found) a->scale = v;
    else if (which == AX_DEPTH) {
        /* ev-per-chan: the original Ripple calibration */
        EVAE_TRY(key_real(h, K_EV_PER_CHAN, &v, &found));
        if (found) a->scale = v;
    }
    if (a->scale == 0.0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: line %zu: the %s axis has scale 0", h->path,
                         h->line[k + 1] ? h->line[k + 1] : h->line[K_EV_PER_CHAN], rpl_axis_names[which]);
    latin1_to_utf8(defined(h->value[k + 2]), a->units, sizeof a->units);
    latin1_to_utf8(h->value[k + 3] ? defined(h->value[k + 3]) : rpl_axis_names[which], a->name, sizeof a->name);
    return EELSVAE_OK;
}

static bool iso_date(const char *t)
{
    static const char pattern[] = "dddd-dd-dd";
    for (size_t i = 0; i < 10; i++)
        if (pattern[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pattern[i]) return false;
    return true;
}

static bool iso_time(const char *t)
{
    static const char pattern[] = "dd:dd:dd";
    for (size_t i = 0; i < 8; i++)
        if (pattern[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != pattern[i]) return false;
    return true;
}

static eelsvae_status read_metadata(const rpl_header *h, const rpl_layout *L, eelsvae_signal *s)
{
    double v = 0.0;
    bool found = false;
    if (h->value[K_TITLE] && *h->value[K_TITLE]) EVAE_TRY(set_text(s, "title", h->value[K_TITLE]));
    if (h->value[K_SIGNAL] && *h->value[K_SIGNAL]) EVAE_TRY(set_text(s, "signal_type", h->value[K_SIGNAL]));
    const char *date = h->value[K_DATE], *time = h->value[K_TIME];
    if (date && strlen(date) >= 10 && iso_date(date)) {
        char d[11];
        memcpy(d, date, 10);
        d[10] = '\0';
        EVAE_TRY(eelsvae_signal_metadata_set(s, "acquisition_date", d));
    }
    if (time && strlen(time) >= 8 && iso_time(time)) {
        char t[9];
        memcpy(t, time, 8);
        t[8] = '\0';
        EVAE_TRY(eelsvae_signal_metadata_set(s, "acquisition_time", t));
    }
    static const enum rpl_key numbers[] = {K_BEAM_ENERGY, K_COLLECTION, K_CONVERGENCE};
    static const char *const number_keys[] = {"beam_energy_kev", "collection_angle_mrad", "convergence_angle_mrad"};
    for (size_t i = 0; i < 3; i++) {
        EVAE_TRY(key_real(h, numbers[i], &v, &found));
        if (found) EVAE_TRY(evae_signal_metadata_set_number(s, number_keys[i], v));
    }
    /* The dispersion, when depth is energy: its scale in eV, or ev-per-chan. */
    if (L->vector) {
        bool scaled = false, per_chan = false;
        double scale = 0.0, ev = 0.0;
        EVAE_TRY(key_real(h, K_DEPTH_SCALE, &scale, &scaled));
        EVAE_TRY(key_real(h, K_EV_PER_CHAN, &ev, &per_chan));
        const char *units = h->value[K_DEPTH_UNITS];
        if (scaled && units && strcmp(units, "eV") == 0)
            EVAE_TRY(evae_signal_metadata_set_number(s, "dispersion_ev", scale));
        else if (!scaled && per_chan)
            EVAE_TRY(evae_signal_metadata_set_number(s, "dispersion_ev", ev));
    }
    return EELSVAE_OK;
}

static eelsvae_status build_signal(const rpl_header *h, const rpl_layout *L, eelsvae_signal **out)
{
    size_t shape[3] = {0}, ndim = 0;
    enum rpl_axis axis[3] = {AX_DEPTH, AX_DEPTH, AX_DEPTH};
    for (size_t d = 0; d < L->full_ndim; d++) {
        if (L->full_shape[d] == 1) continue; /* HyperSpy squeezes size-1 axes */
        shape[ndim] = L->full_shape[d];
        axis[ndim++] = L->full_axis[d];
    }
    if (ndim == 0) { /* a single element: keep the fastest axis */
        shape[0] = 1;
        axis[0] = L->full_axis[L->full_ndim - 1];
        ndim = 1;
    }
    eelsvae_signal *s = NULL;
    EVAE_TRY(evae_signal_alloc(L->dtype, ndim, shape, &s));
    /* A squeezed image with one axis left is a spectrum (HyperSpy's rule). */
    size_t signal_dims = L->signal_dims < ndim ? L->signal_dims : ndim;
    eelsvae_status st = EELSVAE_OK;
    for (size_t d = 0; d < ndim && st == EELSVAE_OK; d++) {
        st = calibrate_axis(h, axis[d], &s->axis[d]);
        s->axis[d].navigate = d + signal_dims < ndim;
    }
    if (st == EELSVAE_OK) st = read_elements(h, L, s);
    if (st == EELSVAE_OK) st = read_metadata(h, L, s);
    if (st != EELSVAE_OK) {
        eelsvae_signal_free(s);
        return st;
    }
    *out = s;
    return EELSVAE_OK;
}

eelsvae_status evae_rpl_read(const char *path, eelsvae_signal **out)
{
    if (!path || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "rpl_read: NULL argument");
    rpl_header h = {.path = path};
    rpl_layout L = {0};
    eelsvae_status st = parse_header(&h);
    if (st == EELSVAE_OK) st = read_layout(&h, &L);
    if (st == EELSVAE_OK) st = check_claimed_size(&h, &L);
    if (st == EELSVAE_OK) st = build_signal(&h, &L, out);
    evae_free(h.text);
    return st;
}

/* ---- writing ------------------------------------------------------------------ */

typedef struct text_buffer {
    char *text;
    size_t len, cap;
    eelsvae_status status;
} text_buffer;

static void append(text_buffer *b, const char *fmt, ...) EVAE_PRINTF(2, 3);

static void append(text_buffer *b, const char *fmt, ...)
{
    if (b->status != EELSVAE_OK) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->status = evae_fail(EELSVAE_ERR_INTERNAL, "rpl_write: cannot format a header line");
        return;
    }
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = 2 * (b->len + (size_t)n + 1);
        char *grown = NULL;
        b->status = evae_alloc_array(cap, 1, (void **)&grown, "Ripple header");
        if (b->status != EELSVAE_OK) return;
        if (b->len) memcpy(grown, b->text, b->len);
        evae_free(b->text);
        b->text = grown;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->text + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A value for a header line in Latin-1: TAB, line breaks and ';' (a comment
 * to readers) become spaces; characters beyond Latin-1 and bytes that are
 * not UTF-8 become '?'. */
static void append_value(text_buffer *b, const char *key, const char *utf8)
{
    size_t n = strlen(utf8);
    char *out = NULL;
    if (b->status != EELSVAE_OK) return;
    b->status = evae_alloc_array(n + 1, 1, (void **)&out, "Ripple header value");
    if (b->status != EELSVAE_OK) return;
    size_t len = 0;
    const unsigned char *p = (const unsigned char *)utf8;
    while (*p) {
        unsigned c = *p;
        size_t step = 1;
        if (c >= 0x80) {
            size_t need = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
            bool ok = need > 0;
            for (size_t i = 1; ok && i < need; i++) ok = (p[i] & 0xC0) == 0x80;
            if (ok && need == 2 && (c & 0x1F) <= 3)
                c = ((c & 0x1F) << 6) | (p[1] & 0x3F);
            else
                c = '?';
            step = ok ? need : 1;
        } else if (c == '\t' || c == '\r' || c == '\n' || c == ';') {
            c = ' ';
        }
        out[len++] = (char)c;
        p += step;
    }
    out[len] = '\0';
    append(b, "%s\t%s\n", key, out);
    evae_free(out);
}

/* Shortest text that reads back as the same double. */
static void format_number(char out[32], double v)
{
    for (int digits = 1; digits <= 17; digits++) {
        snprintf(out, 32, "%.*g", digits, v);
        if (strtod(out, NULL) == v) return;
    }
}

static void append_number(text_buffer *b, const char *key, double v)
{
    char text[32];
    format_number(text, v);
    append(b, "%s\t%s\n", key, text);
}

/* How the signal's axes map to Ripple's: src[i] is the signal axis stored
 * as the i-th slowest of the .raw file, named by rpl[i]. */
typedef struct rpl_plan {
    const char *record_by;
    size_t width, height, depth;
    size_t n;
    size_t src[3];
    enum rpl_axis rpl[3];
} rpl_plan;

static eelsvae_status plan_layout(const eelsvae_signal *s, const char *path, rpl_plan *p)
{
    if (s->ndim > 3)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: Ripple holds at most 3 dimensions, not %zu", path, s->ndim);
    size_t sig[3], nav[3], n_sig = 0, n_nav = 0;
    for (size_t d = 0; d < s->ndim; d++)
        if (!s->axis[d].navigate) sig[n_sig++] = d;
    if (n_sig == 0) sig[n_sig++] = s->ndim - 1; /* all navigate: the last is the signal, as in signal_to_cube */
    for (size_t d = 0; d < s->ndim; d++)
        if (d != sig[0] && (n_sig < 2 || d != sig[1]) && (n_sig < 3 || d != sig[2])) nav[n_nav++] = d;
    if (n_sig == 3)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: Ripple holds spectra or images, not 3 signal axes", path);
    p->width = p->height = p->depth = 1;
    p->n = s->ndim;
    if (n_sig == 1 && s->shape[sig[0]] > 1) {
        /* spectra, energy fastest: (height, width, depth) */
        p->record_by = "vector";
        for (size_t i = 0; i < n_nav; i++) {
            p->src[i] = nav[i];
            p->rpl[i] = n_nav == 2 && i == 0 ? AX_HEIGHT : AX_WIDTH;
        }
        p->src[n_nav] = sig[0];
        p->rpl[n_nav] = AX_DEPTH;
    } else if (s->ndim == 3) {
        /* an image stack: (depth, height, width); with depth 1 it is one
         * image, which Ripple calls dont-care */
        size_t first = n_nav == 1 ? nav[0] : sig[0];
        size_t rest[2], k = 0;
        for (size_t d = 0; d < 3; d++)
            if (d != first) rest[k++] = d;
        p->record_by = s->shape[first] > 1 ? "image" : "dont-care";
        p->src[0] = first, p->rpl[0] = AX_DEPTH;
        p->src[1] = rest[0], p->rpl[1] = AX_HEIGHT;
        p->src[2] = rest[1], p->rpl[2] = AX_WIDTH;
    } else {
        /* one image, or one spectrum of a single channel: (height, width) */
        p->record_by = "dont-care";
        for (size_t d = 0; d < s->ndim; d++) {
            p->src[d] = d;
            p->rpl[d] = s->ndim == 2 && d == 0 ? AX_HEIGHT : AX_WIDTH;
        }
    }
    for (size_t i = 0; i < p->n; i++) {
        size_t size = s->shape[p->src[i]];
        if (p->rpl[i] == AX_WIDTH) p->width = size;
        if (p->rpl[i] == AX_HEIGHT) p->height = size;
        if (p->rpl[i] == AX_DEPTH) p->depth = size;
    }
    return EELSVAE_OK;
}

static eelsvae_status ripple_type(const eelsvae_signal *s, const char *path, const char **type)
{
    switch (s->dtype) {
    case EELSVAE_DTYPE_INT8:
    case EELSVAE_DTYPE_INT16:
    case EELSVAE_DTYPE_INT32:
    case EELSVAE_DTYPE_INT64: *type = "signed"; return EELSVAE_OK;
    case EELSVAE_DTYPE_UINT8:
    case EELSVAE_DTYPE_UINT16:
    case EELSVAE_DTYPE_UINT32:
    case EELSVAE_DTYPE_UINT64:
    case EELSVAE_DTYPE_BOOL: *type = "unsigned"; return EELSVAE_OK; /* bool as uint8 0/1 */
    case EELSVAE_DTYPE_FLOAT32:
    case EELSVAE_DTYPE_FLOAT64: *type = "float"; return EELSVAE_OK;
    default: break;
    }
    return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: Ripple holds integers and real numbers, not %s", path,
                     eelsvae_dtype_name(s->dtype));
}

static eelsvae_status build_header(const eelsvae_signal *s, const rpl_plan *p, const char *type, text_buffer *b)
{
    size_t esize = eelsvae_dtype_size(s->dtype);
    append(b, ";File created by libeelsvae %s\n", eelsvae_version_string());
    append(b, "key\tvalue\n");
    append(b, "width\t%zu\nheight\t%zu\ndepth\t%zu\noffset\t0\n", p->width, p->height, p->depth);
    append(b, "data-type\t%s\ndata-length\t%zu\n", type, esize);
    append(b, "byte-order\t%s\n", esize == 1 ? "dont-care" : host_is_little_endian() ? "little-endian" : "big-endian");
    append(b, "record-by\t%s\n", p->record_by);
    for (size_t i = 0; i < p->n; i++) {
        const evae_signal_axis *a = &s->axis[p->src[i]];
        const char *name = rpl_axis_names[p->rpl[i]];
        char key[32];
        snprintf(key, sizeof key, "%s-origin", name);
        append_number(b, key, a->offset);
        snprintf(key, sizeof key, "%s-scale", name);
        append_number(b, key, a->scale);
        snprintf(key, sizeof key, "%s-units", name);
        append_value(b, key, a->units);
        snprintf(key, sizeof key, "%s-name", name);
        append_value(b, key, a->name);
        if (p->rpl[i] == AX_DEPTH && strcmp(a->units, "eV") == 0) append_number(b, "ev-per-chan", a->scale);
    }
    static const char *const texts[][2] = {
        {"signal_type", "signal"}, {"title", "title"}, {"acquisition_date", "date"}, {"acquisition_time", "time"}};
    for (size_t i = 0; i < 4; i++) {
        const char *v = eelsvae_signal_metadata_get(s, texts[i][0]);
        if (v) append_value(b, texts[i][1], v);
    }
    static const char *const numbers[][2] = {{"beam_energy_kev", "beam-energy"},
                                             {"convergence_angle_mrad", "convergence-angle"},
                                             {"collection_angle_mrad", "collection-angle"}};
    for (size_t i = 0; i < 3; i++) {
        const char *v = eelsvae_signal_metadata_get(s, numbers[i][0]);
        char *end = NULL;
        double x = v ? strtod(v, &end) : 0.0;
        if (v && end != v && *end == '\0' && isfinite(x)) append_number(b, numbers[i][1], x);
    }
    return b->status;
}

/* The elements in the .raw order: the signal's own when the plan keeps its
 * axis order, else a transposed copy (*copy, freed by the caller). */
static eelsvae_status raw_elements(const eelsvae_signal *s, const rpl_plan *p, const void **data, void **copy)
{
    *copy = NULL;
    *data = s->data;
    bool identity = true;
    for (size_t i = 0; i < p->n; i++) identity &= p->src[i] == i;
    if (identity) return EELSVAE_OK;
    size_t esize = eelsvae_dtype_size(s->dtype);
    uint8_t *out = NULL;
    EVAE_TRY(evae_alloc_array(s->count, esize, (void **)&out, "Ripple transposed data"));
    size_t stride[3] = {0}, dims[3] = {1, 1, 1}, src_stride[3] = {0, 0, 0};
    stride[s->ndim - 1] = 1;
    for (size_t d = s->ndim - 1; d > 0; d--) stride[d - 1] = stride[d] * s->shape[d];
    for (size_t i = 0; i < p->n; i++) {
        dims[3 - p->n + i] = s->shape[p->src[i]];
        src_stride[3 - p->n + i] = stride[p->src[i]];
    }
    const uint8_t *in = s->data;
    size_t k = 0;
    for (size_t a = 0; a < dims[0]; a++)
        for (size_t b = 0; b < dims[1]; b++)
            for (size_t c = 0; c < dims[2]; c++, k++)
                memcpy(out + k * esize, in + (a * src_stride[0] + b * src_stride[1] + c * src_stride[2]) * esize,
                       esize);
    *data = out;
    *copy = out;
    return EELSVAE_OK;
}

/* A full disk shows at the flush or the fsync: both files are taken there
 * before either replaces an old one. */
static eelsvae_status flush_to_disk(evae_atomic_file *f)
{
    if (fflush(f->fp) != 0 || fsync(fileno(f->fp)) != 0)
        return evae_fail(EELSVAE_ERR_IO, "%s: write failed: %s (old file kept)", f->path, strerror(errno));
    return EELSVAE_OK;
}

eelsvae_status evae_rpl_write(const eelsvae_signal *s, const char *path)
{
    if (!s || !path || !*path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "rpl_write: NULL argument");
    const char *type = NULL;
    rpl_plan plan = {0};
    EVAE_TRY(ripple_type(s, path, &type));
    EVAE_TRY(plan_layout(s, path, &plan));
    text_buffer header = {0};
    eelsvae_status st = build_header(s, &plan, type, &header);
    char *raw = NULL;
    const void *data = NULL;
    void *copy = NULL;
    if (st == EELSVAE_OK) st = raw_path_for(path, false, &raw);
    if (st == EELSVAE_OK && strcmp(raw, path) == 0)
        st = evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: the header would overwrite its own .raw file", path);
    if (st == EELSVAE_OK) st = raw_elements(s, &plan, &data, &copy);
    /* Both temporaries are written before either is renamed, so nothing that
     * can fail for want of memory or disk comes after the .raw is replaced;
     * the .raw goes first: a header never describes data not yet there. */
    evae_atomic_file raw_file = {0}, header_file = {0};
    if (st == EELSVAE_OK) st = evae_atomic_open(&raw_file, raw);
    if (st == EELSVAE_OK) st = evae_atomic_open(&header_file, path);
    if (st == EELSVAE_OK) st = evae_atomic_write(&raw_file, data, s->count * eelsvae_dtype_size(s->dtype));
    if (st == EELSVAE_OK) st = evae_atomic_write(&header_file, header.text, header.len);
    if (st == EELSVAE_OK) st = flush_to_disk(&raw_file);
    if (st == EELSVAE_OK) st = flush_to_disk(&header_file);
    if (st == EELSVAE_OK) {
        st = evae_atomic_commit(&raw_file);
        if (st == EELSVAE_OK) st = evae_atomic_commit(&header_file);
    }
    if (raw_file.tmp_path) evae_atomic_abort(&raw_file);
    if (header_file.tmp_path) evae_atomic_abort(&header_file);
    evae_free(copy);
    evae_free(raw);
    evae_free(header.text);
    return st;
}
