/*
 * NumPy .npy files: read any numeric dtype into float32, write any dtype
 * (but float16) atomically, and load/save cubes.
 *
 * Format (numpy.lib.format): the magic "\x93NUMPY", a major and a minor
 * version byte, the header length (2 bytes little-endian in 1.0, 4 bytes in
 * 2.0 and 3.0), then the header: a Python dict literal with the keys
 * 'descr', 'fortran_order' and 'shape', padded with spaces and a newline so
 * that the data starts on a 64-byte boundary. The data follows, raw.
 *
 * The reader trusts nothing in the file: the header length is capped, the
 * header parser never steps past its buffer, the shape product is checked
 * for overflow and the data size is compared with the file size before any
 * buffer of that size is allocated.
 */
#include "cube_private.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#define NPY_MAGIC "\x93NUMPY"
#define NPY_MAGIC_LEN 6
/* Magic plus the two version bytes. */
#define NPY_PREAMBLE_LEN 8
/* A header longer than this is treated as corrupt rather than allocated. */
#define NPY_MAX_HEADER_BYTES ((size_t)1 << 20)
/* numpy.lib.format.ARRAY_ALIGN: the data starts on this boundary. */
#define NPY_ALIGN 64
/* numpy.lib.format.GROWTH_AXIS_MAX_DIGITS: NumPy ≥ 1.24 leaves room after the
 * dict for the first dimension to grow to this many digits. */
#define NPY_GROWTH_DIGITS 21
/* Elements converted per step when the data cannot be read in place: at
 * most 1 MiB of raw bytes (float64) and 512 KiB of floats in flight. */
#define NPY_CHUNK_ELEMS ((size_t)1 << 17)
/* Longest string literal the header parser keeps (keys, descr). */
#define NPY_MAX_STRING 64

/* ---- element types ---------------------------------------------------- */

typedef struct npy_type {
    char kind;         /* 'b', 'i', 'u' or 'f', as in a descr */
    size_t size;       /* bytes per element */
    const char *descr; /* what the writer puts in the header */
} npy_type;

/* Indexed by eelsvae_dtype. */
static const npy_type npy_types[] = {
    [EELSVAE_DTYPE_INT8] = {'i', 1, "|i1"},    [EELSVAE_DTYPE_UINT8] = {'u', 1, "|u1"},
    [EELSVAE_DTYPE_INT16] = {'i', 2, "<i2"},   [EELSVAE_DTYPE_UINT16] = {'u', 2, "<u2"},
    [EELSVAE_DTYPE_INT32] = {'i', 4, "<i4"},   [EELSVAE_DTYPE_UINT32] = {'u', 4, "<u4"},
    [EELSVAE_DTYPE_INT64] = {'i', 8, "<i8"},   [EELSVAE_DTYPE_UINT64] = {'u', 8, "<u8"},
    [EELSVAE_DTYPE_FLOAT16] = {'f', 2, "<f2"}, [EELSVAE_DTYPE_FLOAT32] = {'f', 4, "<f4"},
    [EELSVAE_DTYPE_FLOAT64] = {'f', 8, "<f8"}, [EELSVAE_DTYPE_BOOL] = {'b', 1, "|b1"},
};
#define NPY_TYPE_COUNT (sizeof npy_types / sizeof npy_types[0])

static bool host_is_little_endian(void)
{
    const uint16_t one = 1;
    uint8_t first = 0;
    memcpy(&first, &one, 1);
    return first == 1;
}

static uint16_t swap16(uint16_t v)
{
    return (uint16_t)((v >> 8) | (v << 8));
}

static uint32_t swap32(uint32_t v)
{
    return (v >> 24) | ((v >> 8) & 0xFF00u) | ((v << 8) & 0xFF0000u) | (v << 24);
}

static uint64_t swap64(uint64_t v)
{
    return ((uint64_t)swap32((uint32_t)v) << 32) | swap32((uint32_t)(v >> 32));
}

/* Reverse the bytes of each of n elements of `size` bytes, in place. */
static void swap_elements(void *data, size_t n, size_t size)
{
    uint8_t *p = data;
    for (size_t i = 0; i < n; i++, p += size) {
        for (size_t a = 0, b = size - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
    }
}

/* ---- conversion to float32 -------------------------------------------- */

/* IEEE binary16 to binary32, exactly: every half value is a float value. */
static float half_to_float(uint16_t h)
{
    uint32_t sign = (uint32_t)(h >> 15) << 31;
    uint32_t exponent = (h >> 10) & 0x1Fu;
    uint32_t mantissa = h & 0x3FFu;
    if (exponent == 0) {
        /* Zero or subnormal: mantissa · 2^-24, exact since mantissa < 2^10. */
        float magnitude = (float)mantissa * 0x1p-24f;
        return sign ? -magnitude : magnitude;
    }
    uint32_t bits = 0;
    if (exponent == 31)
        bits = sign | 0x7F800000u | (mantissa << 13); /* ±inf, or NaN keeping its payload */
    else
        bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
    float f = 0.0f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static uint16_t load16(const uint8_t *p, bool swap)
{
    uint16_t v = 0;
    memcpy(&v, p, sizeof v);
    return swap ? swap16(v) : v;
}

static uint32_t load32(const uint8_t *p, bool swap)
{
    uint32_t v = 0;
    memcpy(&v, p, sizeof v);
    return swap ? swap32(v) : v;
}

static uint64_t load64(const uint8_t *p, bool swap)
{
    uint64_t v = 0;
    memcpy(&v, p, sizeof v);
    return swap ? swap64(v) : v;
}

/* Signed reinterpretations through memcpy: a cast of an out-of-range
 * unsigned value to a signed type is implementation-defined in C11. */
static int16_t as_int16(uint16_t v)
{
    int16_t r = 0;
    memcpy(&r, &v, sizeof r);
    return r;
}

static int32_t as_int32(uint32_t v)
{
    int32_t r = 0;
    memcpy(&r, &v, sizeof r);
    return r;
}

static int64_t as_int64(uint64_t v)
{
    int64_t r = 0;
    memcpy(&r, &v, sizeof r);
    return r;
}

/* Convert n raw elements to float; integers round to nearest (a single
 * rounding, as NumPy's astype(float32)). */
static void convert_to_float(const uint8_t *src, float *dst, size_t n, eelsvae_dtype dtype, bool swap)
{
    switch (dtype) {
    case EELSVAE_DTYPE_INT8:
        for (size_t i = 0; i < n; i++) {
            int8_t v = 0;
            memcpy(&v, src + i, 1);
            dst[i] = (float)v;
        }
        break;
    case EELSVAE_DTYPE_UINT8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)src[i];
        break;
    case EELSVAE_DTYPE_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = src[i] ? 1.0f : 0.0f;
        break;
    case EELSVAE_DTYPE_INT16:
        for (size_t i = 0; i < n; i++) dst[i] = (float)as_int16(load16(src + 2 * i, swap));
        break;
    case EELSVAE_DTYPE_UINT16:
        for (size_t i = 0; i < n; i++) dst[i] = (float)load16(src + 2 * i, swap);
        break;
    case EELSVAE_DTYPE_FLOAT16:
        for (size_t i = 0; i < n; i++) dst[i] = half_to_float(load16(src + 2 * i, swap));
        break;
    case EELSVAE_DTYPE_INT32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)as_int32(load32(src + 4 * i, swap));
        break;
    case EELSVAE_DTYPE_UINT32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)load32(src + 4 * i, swap);
        break;
    case EELSVAE_DTYPE_FLOAT32:
        for (size_t i = 0; i < n; i++) {
            uint32_t bits = load32(src + 4 * i, swap);
            memcpy(&dst[i], &bits, sizeof bits);
        }
        break;
    case EELSVAE_DTYPE_INT64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)as_int64(load64(src + 8 * i, swap));
        break;
    case EELSVAE_DTYPE_UINT64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)load64(src + 8 * i, swap);
        break;
    case EELSVAE_DTYPE_FLOAT64:
        for (size_t i = 0; i < n; i++) {
            uint64_t bits = load64(src + 8 * i, swap);
            double d = 0.0;
            memcpy(&d, &bits, sizeof d);
            dst[i] = (float)d;
        }
        break;
    case EELSVAE_DTYPE_COMPLEX64:
    case EELSVAE_DTYPE_COMPLEX128:
    case EELSVAE_DTYPE_RGBA8:
        break; /* never parsed from a .npy header */
    }
}

/* ---- the parsed header ------------------------------------------------- */

typedef struct npy_header {
    eelsvae_dtype dtype;
    size_t itemsize;
    bool swap;    /* file byte order differs from the host's */
    bool fortran; /* data in Fortran (column-major) order */
    size_t ndim;
    size_t shape[EELSVAE_NPY_MAX_DIMS];
    size_t count;        /* product of shape */
    size_t data_bytes;   /* count · itemsize */
    uint64_t data_start; /* file offset of the first data byte */
} npy_header;

/* "(3, 4, 5)" / "(6,)" / "()" — the Python repr of the shape tuple. */
static void format_shape(char *buf, size_t cap, size_t ndim, const size_t *shape)
{
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (size_t d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, d ? ", %zu" : "%zu", shape[d]);
    if (used < cap) snprintf(buf + used, cap - used, ndim == 1 ? ",)" : ")");
}

/* ---- header parser: the Python dict literal ---------------------------- */

typedef struct header_parser {
    const char *path;
    const char *text; /* header bytes (not NUL-terminated for the parser) */
    size_t len;
    size_t pos;
    uint64_t base; /* file offset of text[0], for messages */
} header_parser;

/* What the dict said, kept raw until the whole dict has parsed, so that a
 * syntax error anywhere is reported as such before any dtype verdict. */
typedef struct header_fields {
    unsigned seen;                 /* KEY_* bits */
    bool structured;               /* descr was a list or dict */
    char descr[NPY_MAX_STRING];    /* descr string, or an excerpt of the list */
    uint64_t descr_offset;         /* file offset of the descr value */
    size_t dims_written;           /* dimensions in 'shape' (may exceed the maximum) */
    uint64_t shape_offset;
} header_fields;

enum { KEY_DESCR = 1, KEY_FORTRAN = 2, KEY_SHAPE = 4 };

static unsigned long long parser_offset(const header_parser *p)
{
    return (unsigned long long)(p->base + p->pos);
}

static eelsvae_status malformed(const header_parser *p, const char *what)
{
    return evae_fail(EELSVAE_ERR_FORMAT, "%s: malformed .npy header at byte %llu: %s", p->path, parser_offset(p),
                     what);
}

static bool at_end(const header_parser *p)
{
    return p->pos >= p->len;
}

/* The next byte, or '\0' at the end (callers only compare with non-NUL). */
static char peek(const header_parser *p)
{
    return at_end(p) ? '\0' : p->text[p->pos];
}

/* Python's whitespace between tokens. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static void skip_space(header_parser *p)
{
    while (!at_end(p) && is_space(p->text[p->pos])) p->pos++;
}

static eelsvae_status expect_char(header_parser *p, char c, const char *what)
{
    skip_space(p);
    if (peek(p) != c) return malformed(p, what);
    p->pos++;
    return EELSVAE_OK;
}

/* A Python string literal in single or double quotes; backslash escapes
 * keep the escaped character. */
static eelsvae_status parse_string(header_parser *p, char out[NPY_MAX_STRING])
{
    skip_space(p);
    char quote = peek(p);
    if (quote != '\'' && quote != '"') return malformed(p, "expected a quoted string");
    p->pos++;
    size_t n = 0;
    while (!at_end(p) && p->text[p->pos] != quote) {
        if (p->text[p->pos] == '\\') p->pos++;
        if (at_end(p)) break;
        if (n + 1 >= NPY_MAX_STRING) return malformed(p, "string longer than 63 bytes");
        out[n++] = p->text[p->pos++];
    }
    if (at_end(p)) return malformed(p, "unterminated string");
    p->pos++;
    out[n] = '\0';
    return EELSVAE_OK;
}

/* Step over a bracketed value ([…], {…}, (…) nested), quotes respected and
 * every closing bracket matched against its opening one. */
static eelsvae_status skip_bracketed(header_parser *p)
{
    char open[32];
    size_t depth = 0;
    char quote = '\0';
    while (!at_end(p)) {
        char c = p->text[p->pos];
        if (quote) {
            if (c == '\\')
                p->pos++;
            else if (c == quote)
                quote = '\0';
        } else if (c == '\'' || c == '"') {
            quote = c;
        } else if (c == '[' || c == '{' || c == '(') {
            if (depth == sizeof open) return malformed(p, "brackets nested too deeply");
            open[depth++] = c == '[' ? ']' : c == '{' ? '}' : ')';
        } else if (c == ']' || c == '}' || c == ')') {
            if (depth == 0 || open[depth - 1] != c) return malformed(p, "unbalanced bracket");
            if (--depth == 0) {
                p->pos++;
                return EELSVAE_OK;
            }
        }
        p->pos++;
    }
    return malformed(p, "unterminated bracket");
}

/* Copy header text for a message: non-printable bytes become '?', long
 * text is cut with "...". */
static void printable_excerpt(char *dst, size_t cap, const char *src, size_t n)
{
    size_t keep = n < cap - 1 ? n : cap - 4;
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)src[i];
        dst[i] = (c >= 0x20 && c < 0x7F) ? (char)c : '?';
    }
    if (keep < n)
        memcpy(dst + keep, "...", 4);
    else
        dst[keep] = '\0';
}

static eelsvae_status parse_descr(header_parser *p, header_fields *f)
{
    skip_space(p);
    size_t start = p->pos;
    f->descr_offset = p->base + start;
    char c = peek(p);
    if (c == '[' || c == '{') {
        /* A list of fields or a dict: a structured dtype. */
        EVAE_TRY(skip_bracketed(p));
        f->structured = true;
        printable_excerpt(f->descr, sizeof f->descr, p->text + start, p->pos - start);
        return EELSVAE_OK;
    }
    char raw[NPY_MAX_STRING] = {0};
    EVAE_TRY(parse_string(p, raw));
    printable_excerpt(f->descr, sizeof f->descr, raw, strlen(raw));
    return EELSVAE_OK;
}

static eelsvae_status parse_bool(header_parser *p, bool *out)
{
    skip_space(p);
    size_t rest = p->len - p->pos;
    if (rest >= 4 && memcmp(p->text + p->pos, "True", 4) == 0) {
        p->pos += 4;
        *out = true;
    } else if (rest >= 5 && memcmp(p->text + p->pos, "False", 5) == 0) {
        p->pos += 5;
        *out = false;
    } else {
        return malformed(p, "'fortran_order' must be True or False");
    }
    return EELSVAE_OK;
}

/* A non-negative decimal integer (Python 2's "L" suffix accepted). */
static eelsvae_status parse_dimension(header_parser *p, size_t *out)
{
    skip_space(p);
    if (peek(p) == '-') return malformed(p, "negative dimension in 'shape'");
    if (peek(p) < '0' || peek(p) > '9') return malformed(p, "expected a dimension in 'shape'");
    size_t start = p->pos;
    size_t v = 0;
    bool overflow = false;
    while (peek(p) >= '0' && peek(p) <= '9') {
        size_t digit = (size_t)(peek(p) - '0');
        if (v > (SIZE_MAX - digit) / 10) overflow = true;
        v = v * 10 + digit;
        p->pos++;
    }
    if (overflow) {
        char excerpt[40];
        printable_excerpt(excerpt, sizeof excerpt, p->text + start, p->pos - start);
        return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: dimension %s at header byte %llu does not fit in size_t",
                         p->path, excerpt, (unsigned long long)(p->base + start));
    }
    if (peek(p) == 'L' || peek(p) == 'l') p->pos++;
    *out = v;
    return EELSVAE_OK;
}

/* A tuple of dimensions: "()", "(n,)", "(a, b, c)", trailing comma allowed.
 * Dimensions past the maximum are parsed and counted, not kept. */
static eelsvae_status parse_shape(header_parser *p, npy_header *h, header_fields *f)
{
    skip_space(p);
    f->shape_offset = p->base + p->pos;
    EVAE_TRY(expect_char(p, '(', "'shape' must be a tuple"));
    skip_space(p);
    if (peek(p) == ')') {
        p->pos++;
        return EELSVAE_OK;
    }
    for (;;) {
        size_t dim = 0;
        EVAE_TRY(parse_dimension(p, &dim));
        if (f->dims_written < EELSVAE_NPY_MAX_DIMS) h->shape[f->dims_written] = dim;
        f->dims_written++;
        skip_space(p);
        if (peek(p) == ',') {
            p->pos++;
            skip_space(p);
            if (peek(p) == ')') break;
        } else if (peek(p) == ')') {
            /* "(3)" is the integer 3 in Python, not a tuple. */
            if (f->dims_written == 1) return malformed(p, "'shape' with one dimension needs a trailing comma, as (n,)");
            break;
        } else {
            return malformed(p, "expected ',' or ')' in 'shape'");
        }
    }
    p->pos++; /* the ')' */
    return EELSVAE_OK;
}

static eelsvae_status parse_entry(header_parser *p, npy_header *h, header_fields *f)
{
    skip_space(p);
    uint64_t key_offset = p->base + p->pos;
    char key[NPY_MAX_STRING] = {0};
    EVAE_TRY(parse_string(p, key));
    unsigned which = strcmp(key, "descr") == 0           ? KEY_DESCR
                     : strcmp(key, "fortran_order") == 0 ? KEY_FORTRAN
                     : strcmp(key, "shape") == 0         ? KEY_SHAPE
                                                         : 0;
    char clean[NPY_MAX_STRING];
    printable_excerpt(clean, sizeof clean, key, strlen(key));
    if (which == 0)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: unexpected key '%s' at header byte %llu; a .npy header has only 'descr', "
                         "'fortran_order' and 'shape'",
                         p->path, clean, (unsigned long long)key_offset);
    if (f->seen & which)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: key '%s' repeated at header byte %llu", p->path, clean,
                         (unsigned long long)key_offset);
    f->seen |= which;
    EVAE_TRY(expect_char(p, ':', "expected ':' after a key"));
    if (which == KEY_DESCR) return parse_descr(p, f);
    if (which == KEY_FORTRAN) return parse_bool(p, &h->fortran);
    return parse_shape(p, h, f);
}

/* The dict's syntax: '{', entries separated by ',', an optional trailing
 * ',', '}', then only whitespace (the padding and the final '\n'). */
static eelsvae_status parse_dict_syntax(header_parser *p, npy_header *h, header_fields *f)
{
    skip_space(p);
    if (peek(p) != '{') return malformed(p, "the header is not a dict literal");
    p->pos++;
    for (;;) {
        skip_space(p);
        if (peek(p) == '}') break;
        EVAE_TRY(parse_entry(p, h, f));
        skip_space(p);
        if (peek(p) == ',')
            p->pos++;
        else if (peek(p) != '}')
            return malformed(p, "expected ',' or '}' after a value");
    }
    p->pos++; /* the '}' */
    skip_space(p);
    if (!at_end(p)) return malformed(p, "unexpected text after the header dict");
    return EELSVAE_OK;
}

/* Map a descr string such as "<f4" to a dtype and byte order. */
static eelsvae_status resolve_descr(const char *path, const header_fields *f, npy_header *h)
{
    if (f->structured)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                         "%s: structured dtype %s (header byte %llu) is not supported; only plain numeric arrays "
                         "can be read",
                         path, f->descr, (unsigned long long)f->descr_offset);
    bool host_little = host_is_little_endian();
    bool little = host_little; /* '=', '|' and no prefix: native */
    const char *s = f->descr;
    if (*s == '<' || *s == '>') little = *s == '<';
    if (*s && strchr("<>=|", *s)) s++;
    char kind = *s ? *s++ : '\0';
    size_t size = 0;
    bool digits = *s != '\0';
    for (; *s && digits; s++) {
        digits = *s >= '0' && *s <= '9' && size < 100;
        size = size * 10 + (size_t)(*s - '0');
    }
    for (size_t t = 0; digits && t < NPY_TYPE_COUNT; t++) {
        if (npy_types[t].kind == kind && npy_types[t].size == size) {
            h->dtype = (eelsvae_dtype)t;
            h->itemsize = size;
            h->swap = size > 1 && little != host_little;
            return EELSVAE_OK;
        }
    }
    return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                     "%s: dtype '%s' (header byte %llu) is not supported; only bool, int8-64, uint8-64 and "
                     "float16/32/64 arrays can be read",
                     path, f->descr, (unsigned long long)f->descr_offset);
}

/* Parse the whole header: syntax first, then missing keys, then the dtype
 * and the number of dimensions. */
static eelsvae_status parse_header(header_parser *p, npy_header *h)
{
    header_fields f;
    memset(&f, 0, sizeof f);
    EVAE_TRY(parse_dict_syntax(p, h, &f));
    static const char *const names[] = {"descr", "fortran_order", "shape"};
    for (unsigned k = 0; k < 3; k++) {
        if (!(f.seen & (1u << k)))
            return evae_fail(EELSVAE_ERR_FORMAT, "%s: the .npy header (bytes %llu-%llu) has no '%s' key", p->path,
                             (unsigned long long)p->base, (unsigned long long)(p->base + p->len), names[k]);
    }
    EVAE_TRY(resolve_descr(p->path, &f, h));
    if (f.dims_written > EELSVAE_NPY_MAX_DIMS)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: 'shape' at header byte %llu has %zu dimensions, more than %d",
                         p->path, (unsigned long long)f.shape_offset, f.dims_written, EELSVAE_NPY_MAX_DIMS);
    h->ndim = f.dims_written;
    return EELSVAE_OK;
}

/* ---- reading the file --------------------------------------------------- */

/* Read exactly `bytes` at the current position, which is file offset `offset`. */
static eelsvae_status read_exact(FILE *fp, void *buf, size_t bytes, const char *path, uint64_t offset)
{
    size_t got = bytes ? fread(buf, 1, bytes, fp) : 0;
    if (got == bytes) return EELSVAE_OK;
    if (ferror(fp))
        return evae_fail(EELSVAE_ERR_IO, "%s: read error at byte %llu: %s", path,
                         (unsigned long long)(offset + got), strerror(errno));
    /* The size was checked on opening: the file shrank under us. */
    return evae_fail(EELSVAE_ERR_FORMAT, "%s: unexpected end of file at byte %llu (expected %zu more bytes)", path,
                     (unsigned long long)(offset + got), bytes - got);
}

static eelsvae_status open_regular_file(const char *path, FILE **fp_out, uint64_t *size_out)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) return evae_fail(EELSVAE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0) {
        int err = errno;
        fclose(fp);
        return evae_fail(EELSVAE_ERR_IO, "%s: cannot stat: %s", path, strerror(err));
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(fp);
        return evae_fail(EELSVAE_ERR_IO, "%s: not a regular file", path);
    }
    *fp_out = fp;
    *size_out = (uint64_t)st.st_size;
    return EELSVAE_OK;
}

/* Magic, version and header length; leaves fp at the header. */
static eelsvae_status read_preamble(FILE *fp, const char *path, uint64_t file_size, uint64_t *header_start,
                                    uint64_t *header_len)
{
    uint8_t pre[NPY_PREAMBLE_LEN + 4] = {0};
    size_t have = file_size < NPY_PREAMBLE_LEN ? (size_t)file_size : NPY_PREAMBLE_LEN;
    EVAE_TRY(read_exact(fp, pre, have, path, 0));
    size_t magic_have = have < NPY_MAGIC_LEN ? have : NPY_MAGIC_LEN;
    if (memcmp(pre, NPY_MAGIC, magic_have) != 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: not a .npy file: byte 0 does not start the magic string \\x93NUMPY",
                         path);
    if (have < NPY_PREAMBLE_LEN)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated at byte %zu, inside the 8-byte magic and version", path,
                         have);
    unsigned major = pre[6], minor = pre[7];
    if (minor != 0 || major < 1 || major > 3)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                         "%s: .npy format version %u.%u (bytes 6-7) is not supported; only 1.0, 2.0 and 3.0", path,
                         major, minor);
    size_t len_bytes = major == 1 ? 2 : 4;
    if (file_size < NPY_PREAMBLE_LEN + len_bytes)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated at byte %llu, inside the %zu-byte header length at byte 8",
                         path, (unsigned long long)file_size, len_bytes);
    EVAE_TRY(read_exact(fp, pre + NPY_PREAMBLE_LEN, len_bytes, path, NPY_PREAMBLE_LEN));
    uint64_t len = 0;
    for (size_t b = len_bytes; b-- > 0;) len = (len << 8) | pre[NPY_PREAMBLE_LEN + b];
    *header_start = NPY_PREAMBLE_LEN + len_bytes;
    if (len > NPY_MAX_HEADER_BYTES)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: header length %llu at byte 8 exceeds the %zu-byte limit", path,
                         (unsigned long long)len, NPY_MAX_HEADER_BYTES);
    if (file_size - *header_start < len)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: truncated: header claims %llu bytes from offset %llu, file has %llu",
                         path, (unsigned long long)len, (unsigned long long)*header_start,
                         (unsigned long long)file_size);
    *header_len = len;
    return EELSVAE_OK;
}

/* Shape product, byte count, and the check against the file size. */
static eelsvae_status check_data_size(npy_header *h, const char *path, uint64_t file_size)
{
    char shape[256];
    format_shape(shape, sizeof shape, h->ndim, h->shape);
    size_t count = 1;
    for (size_t d = 0; d < h->ndim; d++) {
        if (evae_mul(count, h->shape[d], &count, "npy shape") != EELSVAE_OK)
            return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: shape %s has more elements than size_t can count", path,
                             shape);
    }
    if (evae_mul(count, h->itemsize, &h->data_bytes, "npy data bytes") != EELSVAE_OK)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: shape %s of %zu-byte elements does not fit in size_t bytes", path,
                         shape, h->itemsize);
    h->count = count;
    uint64_t available = file_size - h->data_start;
    if ((uint64_t)h->data_bytes > available)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: truncated: header claims %zu data bytes from offset %llu, file has %llu", path,
                         h->data_bytes, (unsigned long long)h->data_start, (unsigned long long)file_size);
    if ((uint64_t)h->data_bytes < available)
        evae_log(EELSVAE_LOG_WARN, "%s: %llu bytes after the array data are ignored", path,
                 (unsigned long long)(available - h->data_bytes));
    return EELSVAE_OK;
}

/* Open the file, parse and check its header; fp is left at the data. */
static eelsvae_status npy_open(const char *path, FILE **fp_out, npy_header *h)
{
    memset(h, 0, sizeof *h);
    FILE *fp = NULL;
    uint64_t file_size = 0, header_start = 0, header_len = 0;
    EVAE_TRY(open_regular_file(path, &fp, &file_size));
    eelsvae_status st = read_preamble(fp, path, file_size, &header_start, &header_len);
    char *text = NULL;
    if (st == EELSVAE_OK) {
        text = evae_malloc((size_t)header_len);
        if (!text) st = evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate the %llu-byte header", path,
                                  (unsigned long long)header_len);
    }
    if (st == EELSVAE_OK) st = read_exact(fp, text, (size_t)header_len, path, header_start);
    if (st == EELSVAE_OK) {
        header_parser p = {path, text, (size_t)header_len, 0, header_start};
        st = parse_header(&p, h);
    }
    evae_free(text);
    if (st == EELSVAE_OK) {
        h->data_start = header_start + header_len;
        st = check_data_size(h, path, file_size);
    }
    if (st != EELSVAE_OK) {
        fclose(fp);
        return st;
    }
    /* Fortran and C order coincide when at most one dimension exceeds 1. */
    size_t long_dims = 0;
    for (size_t d = 0; d < h->ndim; d++) long_dims += h->shape[d] > 1;
    if (long_dims <= 1) h->fortran = false;
    *fp_out = fp;
    return EELSVAE_OK;
}

/* Walks C-order destinations in Fortran order: index 0 varies fastest. */
typedef struct fortran_walk {
    size_t ndim;
    size_t dims[EELSVAE_NPY_MAX_DIMS];
    size_t c_stride[EELSVAE_NPY_MAX_DIMS];
    size_t index[EELSVAE_NPY_MAX_DIMS];
    size_t dest;
} fortran_walk;

static void fortran_walk_init(fortran_walk *w, const npy_header *h)
{
    memset(w, 0, sizeof *w);
    w->ndim = h->ndim;
    size_t stride = 1;
    for (size_t d = h->ndim; d-- > 0;) {
        w->dims[d] = h->shape[d];
        w->c_stride[d] = stride;
        stride *= h->shape[d];
    }
}

static void fortran_scatter(fortran_walk *w, const float *src, size_t n, float *out)
{
    for (size_t i = 0; i < n; i++) {
        out[w->dest] = src[i];
        for (size_t d = 0; d < w->ndim; d++) {
            w->dest += w->c_stride[d];
            if (++w->index[d] < w->dims[d]) break;
            w->dest -= w->dims[d] * w->c_stride[d];
            w->index[d] = 0;
        }
    }
}

/* Read and convert the data in bounded chunks. */
static eelsvae_status read_chunked(FILE *fp, const npy_header *h, const char *path, float *out)
{
    size_t chunk = h->count < NPY_CHUNK_ELEMS ? h->count : NPY_CHUNK_ELEMS;
    uint8_t *raw = evae_malloc(chunk * h->itemsize);
    float *scratch = h->fortran ? evae_malloc(chunk * sizeof(float)) : NULL;
    if (!raw || (h->fortran && !scratch)) {
        evae_free(raw);
        evae_free(scratch);
        return evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate a %zu-element conversion buffer", path, chunk);
    }
    fortran_walk walk;
    fortran_walk_init(&walk, h);
    eelsvae_status st = EELSVAE_OK;
    for (size_t done = 0; done < h->count && st == EELSVAE_OK; done += chunk) {
        size_t n = h->count - done < chunk ? h->count - done : chunk;
        st = read_exact(fp, raw, n * h->itemsize, path, h->data_start + (uint64_t)done * h->itemsize);
        if (st != EELSVAE_OK) break;
        if (h->fortran) {
            convert_to_float(raw, scratch, n, h->dtype, h->swap);
            fortran_scatter(&walk, scratch, n, out);
        } else {
            convert_to_float(raw, out + done, n, h->dtype, h->swap);
        }
    }
    evae_free(raw);
    evae_free(scratch);
    return st;
}

/* Read the data of an opened file into a new float32 C-order buffer. */
static eelsvae_status npy_read_data(FILE *fp, const npy_header *h, const char *path, float **data)
{
    float *out = NULL;
    EVAE_TRY(evae_alloc_array(h->count, sizeof(float), (void **)&out, path));
    eelsvae_status st = EELSVAE_OK;
    if (h->dtype == EELSVAE_DTYPE_FLOAT32 && !h->fortran) {
        /* The common case: straight into the output, no second copy. */
        st = read_exact(fp, out, h->data_bytes, path, h->data_start);
        if (st == EELSVAE_OK && h->swap) {
            uint32_t *bits = (uint32_t *)(void *)out;
            for (size_t i = 0; i < h->count; i++) bits[i] = swap32(bits[i]);
        }
    } else {
        st = read_chunked(fp, h, path, out);
    }
    if (st != EELSVAE_OK) {
        evae_free(out);
        return st;
    }
    *data = out;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_npy_read(const char *path, size_t *ndim, size_t shape[EELSVAE_NPY_MAX_DIMS],
                                eelsvae_dtype *dtype, float **data)
{
    if (!path || !ndim || !shape || !data)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "npy_read: NULL path or output pointer");
    FILE *fp = NULL;
    npy_header h;
    EVAE_TRY(npy_open(path, &fp, &h));
    float *out = NULL;
    eelsvae_status st = npy_read_data(fp, &h, path, &out);
    fclose(fp);
    if (st != EELSVAE_OK) return st;
    *ndim = h.ndim;
    memset(shape, 0, EELSVAE_NPY_MAX_DIMS * sizeof shape[0]);
    memcpy(shape, h.shape, h.ndim * sizeof shape[0]);
    if (dtype) *dtype = h.dtype;
    *data = out;
    return EELSVAE_OK;
}

/* The elements in the file's own type, native byte order, C order. */
static eelsvae_status npy_read_native_data(FILE *fp, const npy_header *h, const char *path, void **data)
{
    uint8_t *raw = NULL, *out = NULL;
    EVAE_TRY(evae_alloc_array(h->count, h->itemsize, (void **)&raw, path));
    eelsvae_status st = read_exact(fp, raw, h->data_bytes, path, h->data_start);
    if (st == EELSVAE_OK && h->swap) swap_elements(raw, h->count, h->itemsize);
    if (st != EELSVAE_OK || !h->fortran) {
        if (st != EELSVAE_OK) evae_free(raw);
        else *data = raw;
        return st;
    }
    st = evae_alloc_array(h->count, h->itemsize, (void **)&out, path);
    if (st == EELSVAE_OK) {
        fortran_walk w;
        fortran_walk_init(&w, h);
        for (size_t i = 0; i < h->count; i++) {
            memcpy(out + w.dest * h->itemsize, raw + i * h->itemsize, h->itemsize);
            for (size_t d = 0; d < w.ndim; d++) {
                w.dest += w.c_stride[d];
                if (++w.index[d] < w.dims[d]) break;
                w.dest -= w.dims[d] * w.c_stride[d];
                w.index[d] = 0;
            }
        }
        *data = out;
    }
    evae_free(raw);
    return st;
}

eelsvae_status evae_npy_read_native(const char *path, size_t *ndim, size_t shape[EELSVAE_NPY_MAX_DIMS],
                                    eelsvae_dtype *dtype, void **data)
{
    FILE *fp = NULL;
    npy_header h;
    EVAE_TRY(npy_open(path, &fp, &h));
    void *out = NULL;
    eelsvae_status st = EELSVAE_OK;
    if (h.dtype == EELSVAE_DTYPE_FLOAT16) /* no half-precision signals: widened, as eelsvae_npy_read() does */
        st = npy_read_data(fp, &h, path, (float **)&out);
    else
        st = npy_read_native_data(fp, &h, path, &out);
    fclose(fp);
    if (st != EELSVAE_OK) return st;
    *ndim = h.ndim;
    memcpy(shape, h.shape, h.ndim * sizeof shape[0]);
    *dtype = h.dtype == EELSVAE_DTYPE_FLOAT16 ? EELSVAE_DTYPE_FLOAT32 : h.dtype;
    *data = out;
    return EELSVAE_OK;
}

/* ---- writing ------------------------------------------------------------ */

/* The header exactly as numpy.lib.format writes it: the dict with sorted
 * keys, spare room for the first dimension to grow, then spaces and '\n'
 * so that the data starts on a 64-byte boundary. Returns the byte count. */
static size_t build_header(uint8_t *buf, size_t cap, const char *descr, size_t ndim, const size_t *shape)
{
    char shape_text[256];
    format_shape(shape_text, sizeof shape_text, ndim, shape);
    char dict[512];
    int n = snprintf(dict, sizeof dict, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape_text);
    size_t dict_len = (size_t)n;
    if (ndim > 0) {
        char first[32];
        size_t digits = (size_t)snprintf(first, sizeof first, "%zu", shape[0]);
        for (size_t k = digits; k < NPY_GROWTH_DIGITS; k++) dict[dict_len++] = ' ';
    }
    /* +1 for the final '\n'; a 2-byte length unless that cannot hold it. */
    size_t text_len = dict_len + 1;
    size_t prefix = NPY_PREAMBLE_LEN + 2;
    size_t pad = NPY_ALIGN - (prefix + text_len) % NPY_ALIGN;
    if (text_len + pad > 0xFFFF) {
        prefix = NPY_PREAMBLE_LEN + 4;
        pad = NPY_ALIGN - (prefix + text_len) % NPY_ALIGN;
    }
    size_t header_len = text_len + pad;
    size_t total = prefix + header_len;
    if (total > cap) return 0;
    memcpy(buf, NPY_MAGIC, NPY_MAGIC_LEN);
    buf[6] = prefix == NPY_PREAMBLE_LEN + 2 ? 1 : 2;
    buf[7] = 0;
    for (size_t b = 0; b < prefix - NPY_PREAMBLE_LEN; b++) buf[NPY_PREAMBLE_LEN + b] = (uint8_t)(header_len >> (8 * b));
    memcpy(buf + prefix, dict, dict_len);
    memset(buf + prefix + dict_len, ' ', pad);
    buf[total - 1] = '\n';
    return total;
}

/* The data in little-endian order: as-is on a little-endian host, else
 * swapped through a bounded buffer. */
static eelsvae_status write_data(evae_atomic_file *f, const void *data, size_t count, size_t itemsize,
                                 const char *path)
{
    if (itemsize == 1 || host_is_little_endian()) return evae_atomic_write(f, data, count * itemsize);
    uint8_t *buf = evae_malloc(NPY_CHUNK_ELEMS * itemsize);
    if (!buf) return evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate a byte-swap buffer", path);
    eelsvae_status st = EELSVAE_OK;
    const uint8_t *src = data;
    for (size_t done = 0; done < count && st == EELSVAE_OK; done += NPY_CHUNK_ELEMS) {
        size_t n = count - done < NPY_CHUNK_ELEMS ? count - done : NPY_CHUNK_ELEMS;
        memcpy(buf, src + done * itemsize, n * itemsize);
        swap_elements(buf, n, itemsize);
        st = evae_atomic_write(f, buf, n * itemsize);
    }
    evae_free(buf);
    return st;
}

eelsvae_status eelsvae_npy_write(const char *path, eelsvae_dtype dtype, const void *data, size_t ndim,
                                 const size_t *shape)
{
    if (!path || !*path) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "npy_write: NULL or empty path");
    if ((unsigned)dtype >= NPY_TYPE_COUNT || dtype == EELSVAE_DTYPE_FLOAT16)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: cannot write dtype %d (float16 is read-only)", path,
                         (int)dtype);
    if (ndim > EELSVAE_NPY_MAX_DIMS)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: %zu dimensions, at most %d", path, ndim,
                         EELSVAE_NPY_MAX_DIMS);
    if (ndim > 0 && !shape) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL shape", path);
    size_t itemsize = npy_types[dtype].size;
    size_t count = 1, bytes = 0;
    for (size_t d = 0; d < ndim; d++) {
        if (evae_mul(count, shape[d], &count, "npy_write shape") != EELSVAE_OK)
            return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: shape[%zu] = %zu takes the element count past size_t",
                             path, d, shape[d]);
    }
    if (evae_mul(count, itemsize, &bytes, "npy_write data bytes") != EELSVAE_OK)
        return evae_fail(EELSVAE_ERR_OVERFLOW, "%s: %zu elements of %zu bytes do not fit in size_t", path, count,
                         itemsize);
    if (bytes > 0 && !data)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL data for %zu elements", path, count);
    uint8_t header[1024];
    size_t header_len = build_header(header, sizeof header, npy_types[dtype].descr, ndim, shape);
    if (header_len == 0) return evae_fail(EELSVAE_ERR_INTERNAL, "%s: header does not fit its buffer", path);
    evae_atomic_file f;
    EVAE_TRY(evae_atomic_open(&f, path));
    eelsvae_status st = evae_atomic_write(&f, header, header_len);
    if (st == EELSVAE_OK) st = write_data(&f, data, count, itemsize, path);
    if (st != EELSVAE_OK) {
        evae_atomic_abort(&f);
        return st;
    }
    return evae_atomic_commit(&f);
}

/* ---- cubes -------------------------------------------------------------- */

eelsvae_status eelsvae_cube_load_npy(const char *path, eelsvae_cube **out)
{
    if (!path || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cube_load_npy: NULL path or output pointer");
    FILE *fp = NULL;
    npy_header h;
    EVAE_TRY(npy_open(path, &fp, &h));
    /* Check the shape before reading what may be hundreds of megabytes. */
    char shape[256];
    format_shape(shape, sizeof shape, h.ndim, h.shape);
    eelsvae_status st = EELSVAE_OK;
    if (h.ndim != 3)
        st = evae_fail(EELSVAE_ERR_DIMENSION, "%s: array of shape %s has %zu dimensions; a cube needs 3 (y, x, E)",
                       path, shape, h.ndim);
    else if (h.count == 0)
        st = evae_fail(EELSVAE_ERR_DIMENSION, "%s: array of shape %s has a zero-sized dimension", path, shape);
    eelsvae_cube *c = NULL;
    if (st == EELSVAE_OK) {
        c = evae_malloc(sizeof *c);
        if (!c) st = evae_fail(EELSVAE_ERR_NOMEM, "%s: cannot allocate the cube handle", path);
    }
    if (st == EELSVAE_OK) {
        memset(c, 0, sizeof *c);
        st = npy_read_data(fp, &h, path, &c->data); /* the cube owns the buffer, no copy */
    }
    fclose(fp);
    if (st != EELSVAE_OK) {
        evae_free(c);
        return st;
    }
    c->ny = h.shape[0];
    c->nx = h.shape[1];
    c->ne = h.shape[2];
    for (int a = 0; a < 3; a++) c->axis[a].scale = 1.0;
    strcpy(c->axis[EELSVAE_AXIS_E].units, "eV");
    *out = c;
    return EELSVAE_OK;
}

eelsvae_status eelsvae_cube_save_npy(const eelsvae_cube *cube, const char *path)
{
    if (!cube) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "cube_save_npy: NULL cube");
    const size_t shape[3] = {cube->ny, cube->nx, cube->ne};
    return eelsvae_npy_write(path, EELSVAE_DTYPE_FLOAT32, cube->data, 3, shape);
}
