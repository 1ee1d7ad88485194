/* Gatan DigitalMicrograph .dm3/.dm4 reader.
 *
 * A DM file is a header (version, file size, byte order of the tag data)
 * followed by a tree of tags. A tag is a group (a count of child tags) or
 * data: a type description (a few words: a number type, or a string, an
 * array, a struct, an array of structs/strings/arrays) followed by the
 * bytes. DM3 writes the words of the tag structure as 4-byte big-endian
 * integers, DM4 as 8-byte ones (and adds an 8-byte size to every tag); the
 * data itself is in the byte order the header names.
 *
 * The tree is parsed once into an array of nodes that hold each tag's name,
 * its type and where its bytes lie; numbers are decoded on the way, text
 * and image data are read from the file when needed. Every length is
 * checked against what remains of the file before anything is read, skipped
 * or allocated, so a header that lies fails with EELSVAE_ERR_FORMAT naming
 * the byte offset instead of allocating what it claims.
 *
 * The images (ImageList, less the thumbnails named in Thumbnails) are laid
 * out as HyperSpy 1.7 lays them out, so that a file reads the same here and
 * there: C order (DM lists dimensions fastest first), a spectrum image of
 * three or more dimensions moved to (…, y, x, E), axes of size 1 squeezed
 * out, HyperSpy's axis names, calibration offset = −origin·scale. */
#include "io_private.h"

#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#define DM_NONE SIZE_MAX
/* Deeper nesting than real files have (about 10), shallow enough for the stack. */
#define DM_MAX_DEPTH 64
/* Words in one type description: a struct of up to 509 fields. */
#define DM_MAX_INFO 1024
/* Longest text kept from a tag (titles, dates, names), in UTF-8 bytes. */
#define DM_TEXT_MAX 512

enum { DM_TAG_GROUP = 20, DM_TAG_DATA = 21 };
enum { DM_TYPE_USHORT = 4, DM_TYPE_STRUCT = 15, DM_TYPE_STRING = 18, DM_TYPE_ARRAY = 20 };

typedef enum dm_kind {
    DM_KIND_GROUP,
    DM_KIND_SIMPLE,       /* one number */
    DM_KIND_STRING,       /* bytes */
    DM_KIND_ARRAY,        /* numbers of one type */
    DM_KIND_STRUCT,       /* numbers of several types */
    DM_KIND_ARRAY_STRUCT, /* e.g. complex image data */
    DM_KIND_ARRAY_STRING,
    DM_KIND_ARRAY_ARRAY
} dm_kind;

typedef struct dm_node {
    size_t parent, first_child, last_child, next_sibling;
    size_t name, name_len; /* the NUL-terminated name at names + name */
    dm_kind kind;
    unsigned eltype;     /* number type of SIMPLE and ARRAY */
    uint64_t count;      /* elements */
    uint64_t offset;     /* file offset of the data */
    uint64_t bytes;      /* bytes of data */
    uint64_t tag_offset; /* file offset of the tag, for messages */
    double number;       /* SIMPLE: the value */
    int64_t integer;     /* SIMPLE of an integer type: the value */
    bool is_integer;
} dm_node;

typedef struct dm_file {
    const char *path;
    FILE *fp;
    uint64_t size, pos;
    int version;      /* 3 or 4 */
    size_t word;      /* bytes of a size or count in the tag structure: 4 or 8 */
    bool little;      /* byte order of the tag data */
    dm_node *nodes;   /* nodes[0] is the root group */
    size_t n_nodes, cap_nodes;
    char *names;
    size_t names_len, names_cap;
    uint64_t info[DM_MAX_INFO];
} dm_file;

static unsigned long long ull(uint64_t v)
{
    return (unsigned long long)v;
}

/* ---- bounded reading ------------------------------------------------------ */

static eelsvae_status dm_truncated(const dm_file *f, uint64_t need, const char *what)
{
    return evae_fail(EELSVAE_ERR_FORMAT,
                     "%s: truncated: %s needs %llu bytes at byte offset %llu, the file ends at %llu", f->path, what,
                     ull(need), ull(f->pos), ull(f->size));
}

static eelsvae_status dm_seek(dm_file *f, uint64_t offset)
{
    if (offset > f->size)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: byte offset %llu lies past the end of the file (%llu bytes)", f->path,
                         ull(offset), ull(f->size));
    if (fseeko(f->fp, (off_t)offset, SEEK_SET) != 0)
        return evae_fail(EELSVAE_ERR_IO, "%s: cannot seek to byte offset %llu", f->path, ull(offset));
    f->pos = offset;
    return EELSVAE_OK;
}

static eelsvae_status dm_read(dm_file *f, void *buf, uint64_t n, const char *what)
{
    if (n > f->size - f->pos) return dm_truncated(f, n, what);
    if (n && fread(buf, 1, (size_t)n, f->fp) != n)
        return evae_fail(EELSVAE_ERR_IO, "%s: read error in %s at byte offset %llu", f->path, what, ull(f->pos));
    f->pos += n;
    return EELSVAE_OK;
}

static eelsvae_status dm_skip(dm_file *f, uint64_t n, const char *what)
{
    if (n > f->size - f->pos) return dm_truncated(f, n, what);
    return dm_seek(f, f->pos + n);
}

/* An unsigned big-endian integer of 1 … 8 bytes (the tag structure). */
static eelsvae_status dm_read_be(dm_file *f, size_t bytes, uint64_t *value, const char *what)
{
    uint8_t b[8];
    EVAE_TRY(dm_read(f, b, bytes, what));
    uint64_t v = 0;
    for (size_t i = 0; i < bytes; i++) v = v << 8 | b[i];
    *value = v;
    return EELSVAE_OK;
}

static eelsvae_status dm_read_word(dm_file *f, uint64_t *value, const char *what)
{
    return dm_read_be(f, f->word, value, what);
}

/* ---- number types ------------------------------------------------------ */

/* Bytes of a DM number type, 0 for a code that is not one. */
static size_t dm_simple_size(uint64_t code)
{
    switch (code) {
    case 2:  /* int16 */
    case 4:  /* uint16 (also UTF-16 text) */
        return 2;
    case 3:  /* int32 */
    case 5:  /* uint32 */
    case 6:  /* float32 */
        return 4;
    case 7:  /* float64 */
    case 11: /* int64 (DM4) */
    case 12: /* uint64 (DM4) */
        return 8;
    case 8:  /* bool */
    case 9:  /* int8 */
    case 10: /* octet, read signed as HyperSpy does */
        return 1;
    default: break;
    }
    return 0;
}

static uint64_t load_uint(const uint8_t *p, size_t n, bool little)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) v |= (uint64_t)p[little ? i : n - 1 - i] << (8 * i);
    return v;
}

static void dm_decode_simple(dm_node *node, const uint8_t *p, bool little)
{
    uint64_t u = load_uint(p, dm_simple_size(node->eltype), little);
    int64_t i = 0;
    bool is_integer = true;
    double d = 0.0;
    switch (node->eltype) {
    case 2: i = (int16_t)(uint16_t)u; break;
    case 3: i = (int32_t)(uint32_t)u; break;
    case 4: i = (uint16_t)u; break;
    case 5: i = (uint32_t)u; break;
    case 8: i = (uint8_t)u; break;
    case 9:
    case 10: i = (int8_t)(uint8_t)u; break;
    case 11: i = (int64_t)u; break;
    case 12:
        i = u > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)u;
        d = (double)u;
        break;
    case 6: {
        uint32_t bits = (uint32_t)u;
        float x = 0.0f;
        memcpy(&x, &bits, sizeof x);
        d = x;
        is_integer = false;
        break;
    }
    default: /* 7 */
        memcpy(&d, &u, sizeof d);
        is_integer = false;
        break;
    }
    if (is_integer && node->eltype != 12) d = (double)i;
    node->number = d;
    node->integer = i;
    node->is_integer = is_integer;
}

/* ---- the tag tree ------------------------------------------------------ */

static eelsvae_status dm_grow(void **buf, size_t *cap, size_t need, size_t item, const char *what)
{
    if (need <= *cap) return EELSVAE_OK;
    size_t grown = *cap ? *cap : 64;
    while (grown < need) {
        if (grown > SIZE_MAX / 2) return evae_fail(EELSVAE_ERR_OVERFLOW, "DigitalMicrograph %s: too many", what);
        grown *= 2;
    }
    void *p = NULL;
    EVAE_TRY(evae_alloc_array(grown, item, &p, what));
    if (*cap) memcpy(p, *buf, *cap * item);
    evae_free(*buf);
    *buf = p;
    *cap = grown;
    return EELSVAE_OK;
}

/* A node for the tag starting at tag_offset, its name read from the file
 * and the node linked as the last child of `parent`. */
static eelsvae_status dm_add_node(dm_file *f, size_t parent, uint64_t tag_offset, size_t name_len, size_t *index)
{
    if (name_len > f->size - f->pos) return dm_truncated(f, name_len, "a tag name");
    EVAE_TRY(dm_grow((void **)&f->nodes, &f->cap_nodes, f->n_nodes + 1, sizeof *f->nodes, "tag list"));
    EVAE_TRY(dm_grow((void **)&f->names, &f->names_cap, f->names_len + name_len + 1, 1, "tag names"));
    EVAE_TRY(dm_read(f, f->names + f->names_len, name_len, "a tag name"));
    size_t k = f->n_nodes++;
    dm_node *n = &f->nodes[k];
    memset(n, 0, sizeof *n);
    n->parent = parent;
    n->first_child = n->last_child = n->next_sibling = DM_NONE;
    n->name = f->names_len;
    n->name_len = name_len;
    n->tag_offset = tag_offset;
    f->names[f->names_len + name_len] = '\0';
    f->names_len += name_len + 1;
    if (parent != DM_NONE) {
        dm_node *p = &f->nodes[parent];
        if (p->last_child == DM_NONE)
            p->first_child = k;
        else
            f->nodes[p->last_child].next_sibling = k;
        p->last_child = k;
    }
    *index = k;
    return EELSVAE_OK;
}

static eelsvae_status dm_bad_type(const dm_file *f, uint64_t at, const char *why, uint64_t value)
{
    return evae_fail(EELSVAE_ERR_FORMAT, "%s: %s (%llu) in the type description at byte offset %llu", f->path, why,
                     ull(value), ull(at));
}

/* Bytes of one struct whose `nfields` (name length, type) pairs start at `fields`. */
static eelsvae_status dm_struct_bytes(const dm_file *f, const uint64_t *fields, uint64_t nfields, uint64_t at,
                                      uint64_t *bytes)
{
    uint64_t total = 0;
    for (uint64_t k = 0; k < nfields; k++) {
        size_t size = dm_simple_size(fields[2 * k + 1]);
        if (!size) return dm_bad_type(f, at, "a struct field type that is not a number", fields[2 * k + 1]);
        total += size;
    }
    *bytes = total;
    return EELSVAE_OK;
}

/* Decode the n-word type description in f->info into the node's kind,
 * element type and count, and the bytes of one element. */
static eelsvae_status dm_decode_info(const dm_file *f, size_t n, uint64_t at, dm_node *node, uint64_t *element)
{
    const uint64_t *t = f->info;
    node->count = 1;
    if (n == 1) {
        *element = dm_simple_size(t[0]);
        if (!*element) return dm_bad_type(f, at, "an unknown number type", t[0]);
        node->kind = DM_KIND_SIMPLE;
        node->eltype = (unsigned)t[0];
    } else if (n == 2 && t[0] == DM_TYPE_STRING) {
        node->kind = DM_KIND_STRING;
        node->count = t[1];
        *element = 1;
    } else if (n == 3 && t[0] == DM_TYPE_ARRAY) {
        *element = dm_simple_size(t[1]);
        if (!*element) return dm_bad_type(f, at, "an array of an unknown number type", t[1]);
        node->kind = DM_KIND_ARRAY;
        node->eltype = (unsigned)t[1];
        node->count = t[2];
    } else if (n >= 5 && t[0] == DM_TYPE_STRUCT && (n - 3) % 2 == 0 && t[2] == (n - 3) / 2) {
        node->kind = DM_KIND_STRUCT;
        EVAE_TRY(dm_struct_bytes(f, t + 3, t[2], at, element));
    } else if (n >= 5 && t[0] == DM_TYPE_ARRAY && t[1] == DM_TYPE_STRUCT && (n - 5) % 2 == 0 &&
               t[3] == (n - 5) / 2) {
        node->kind = DM_KIND_ARRAY_STRUCT;
        node->count = t[n - 1];
        EVAE_TRY(dm_struct_bytes(f, t + 4, t[3], at, element));
    } else if (n == 4 && t[0] == DM_TYPE_ARRAY && t[1] == DM_TYPE_STRING) {
        node->kind = DM_KIND_ARRAY_STRING;
        node->count = t[3];
        *element = t[2];
    } else if (n == 5 && t[0] == DM_TYPE_ARRAY && t[1] == DM_TYPE_ARRAY) {
        size_t size = dm_simple_size(t[2]);
        if (!size) return dm_bad_type(f, at, "an array of arrays of an unknown number type", t[2]);
        if (t[3] > UINT64_MAX / size) return dm_bad_type(f, at, "an inner array length that overflows", t[3]);
        node->kind = DM_KIND_ARRAY_ARRAY;
        node->eltype = (unsigned)t[2];
        node->count = t[4];
        *element = t[3] * size;
    } else {
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: a type description of %zu words starting with %llu is not a number, string, array or "
                         "struct, at byte offset %llu",
                         f->path, n, ull(t[0]), ull(at));
    }
    return EELSVAE_OK;
}

static eelsvae_status dm_parse_data(dm_file *f, size_t index)
{
    char mark[4];
    uint64_t mark_at = f->pos;
    EVAE_TRY(dm_read(f, mark, 4, "a data tag's %%%%%%%% mark"));
    if (memcmp(mark, "%%%%", 4) != 0)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: a data tag lacks its %%%%%%%% mark at byte offset %llu", f->path,
                         ull(mark_at));
    uint64_t n = 0, at = f->pos;
    EVAE_TRY(dm_read_word(f, &n, "a type description length"));
    if (n == 0 || n > DM_MAX_INFO)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: a type description of %llu words (1 … %d) at byte offset %llu",
                         f->path, ull(n), DM_MAX_INFO, ull(at));
    for (size_t i = 0; i < n; i++) EVAE_TRY(dm_read_word(f, &f->info[i], "a type description"));
    dm_node *node = &f->nodes[index];
    uint64_t element = 0;
    EVAE_TRY(dm_decode_info(f, (size_t)n, at, node, &element));
    uint64_t remaining = f->size - f->pos;
    if (element && node->count > remaining / element)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: tag data of %llu elements of %llu bytes at byte offset %llu runs past the end of the "
                         "file (%llu bytes)",
                         f->path, ull(node->count), ull(element), ull(f->pos), ull(f->size));
    node->offset = f->pos;
    node->bytes = element ? node->count * element : 0;
    if (node->kind == DM_KIND_SIMPLE) {
        uint8_t value[8];
        EVAE_TRY(dm_read(f, value, node->bytes, "a number"));
        dm_decode_simple(node, value, f->little);
        return EELSVAE_OK;
    }
    return dm_skip(f, node->bytes, "tag data");
}

static eelsvae_status dm_parse_group(dm_file *f, size_t index, int depth);

static eelsvae_status dm_parse_tag(dm_file *f, size_t parent, int depth)
{
    uint64_t tag_offset = f->pos, kind = 0, name_len = 0, tag_bytes = 0;
    EVAE_TRY(dm_read_be(f, 1, &kind, "a tag kind"));
    EVAE_TRY(dm_read_be(f, 2, &name_len, "a tag name length"));
    size_t index = 0;
    EVAE_TRY(dm_add_node(f, parent, tag_offset, (size_t)name_len, &index));
    /* DM4's size of the tag's contents: not needed, every part is sized. */
    if (f->version == 4) EVAE_TRY(dm_read_be(f, 8, &tag_bytes, "a tag size"));
    if (kind == DM_TAG_GROUP) return dm_parse_group(f, index, depth + 1);
    if (kind == DM_TAG_DATA) return dm_parse_data(f, index);
    return evae_fail(EELSVAE_ERR_FORMAT, "%s: tag kind %llu is neither a group (20) nor data (21) at byte offset %llu",
                     f->path, ull(kind), ull(tag_offset));
}

/* A group's body: sorted and open flags, the tag count, the tags. The loop
 * ends within the file whatever count it claims: every tag takes bytes. */
static eelsvae_status dm_parse_group(dm_file *f, size_t index, int depth)
{
    if (depth > DM_MAX_DEPTH)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: tag groups nested deeper than %d at byte offset %llu", f->path,
                         DM_MAX_DEPTH, ull(f->pos));
    f->nodes[index].kind = DM_KIND_GROUP;
    uint64_t sorted = 0, open = 0, ntags = 0;
    EVAE_TRY(dm_read_be(f, 1, &sorted, "a group's sorted flag"));
    EVAE_TRY(dm_read_be(f, 1, &open, "a group's open flag"));
    EVAE_TRY(dm_read_word(f, &ntags, "a group's tag count"));
    for (uint64_t i = 0; i < ntags; i++) EVAE_TRY(dm_parse_tag(f, index, depth));
    return EELSVAE_OK;
}

static void dm_close(dm_file *f)
{
    if (f->fp) fclose(f->fp);
    evae_free(f->nodes);
    evae_free(f->names);
    f->fp = NULL;
    f->nodes = NULL;
    f->names = NULL;
}

static eelsvae_status dm_parse_header(dm_file *f)
{
    uint64_t version = 0, file_size = 0, little = 0;
    EVAE_TRY(dm_read_be(f, 4, &version, "the version"));
    if (version != 3 && version != 4)
        return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                         "%s: DigitalMicrograph version %llu at byte offset 0; 3 and 4 are read", f->path,
                         ull(version));
    f->version = (int)version;
    f->word = version == 4 ? 8 : 4;
    EVAE_TRY(dm_read_be(f, f->word, &file_size, "the file size"));
    EVAE_TRY(dm_read_be(f, 4, &little, "the byte order"));
    f->little = little != 0; /* as HyperSpy: any non-zero flag is little-endian */
    return EELSVAE_OK;
}

static eelsvae_status dm_open(const char *path, dm_file *f)
{
    memset(f, 0, sizeof *f);
    f->path = path;
    size_t size = 0;
    EVAE_TRY(evae_open_sized(path, "a DigitalMicrograph file", &f->fp, &size));
    f->size = size;
    size_t root = 0;
    eelsvae_status st = dm_parse_header(f);
    if (st == EELSVAE_OK) st = dm_add_node(f, DM_NONE, f->pos, 0, &root);
    if (st == EELSVAE_OK) st = dm_parse_group(f, root, 0);
    if (st != EELSVAE_OK) dm_close(f);
    return st;
}

/* ---- looking tags up ------------------------------------------------------ */

static const char *dm_name(const dm_file *f, size_t node)
{
    return f->names + f->nodes[node].name;
}

/* The child of that name; the last one when names repeat (as HyperSpy's
 * dictionary keeps the last). */
static size_t dm_child(const dm_file *f, size_t parent, const char *name, size_t len)
{
    if (parent == DM_NONE || f->nodes[parent].kind != DM_KIND_GROUP) return DM_NONE;
    size_t found = DM_NONE;
    for (size_t c = f->nodes[parent].first_child; c != DM_NONE; c = f->nodes[c].next_sibling)
        if (f->nodes[c].name_len == len && memcmp(dm_name(f, c), name, len) == 0) found = c;
    return found;
}

/* A tag below `node` by a '|'-separated path (tag names hold dots and slashes). */
static size_t dm_find(const dm_file *f, size_t node, const char *path)
{
    while (node != DM_NONE && *path) {
        const char *bar = strchr(path, '|');
        size_t len = bar ? (size_t)(bar - path) : strlen(path);
        node = dm_child(f, node, path, len);
        path += len + (bar ? 1 : 0);
    }
    return node;
}

static bool dm_number(const dm_file *f, size_t node, double *value)
{
    if (node == DM_NONE || f->nodes[node].kind != DM_KIND_SIMPLE) return false;
    *value = f->nodes[node].number;
    return true;
}

static bool dm_integer(const dm_file *f, size_t node, int64_t *value)
{
    if (node == DM_NONE || f->nodes[node].kind != DM_KIND_SIMPLE || !f->nodes[node].is_integer) return false;
    *value = f->nodes[node].integer;
    return true;
}

/* ---- text ---------------------------------------------------------------- */

/* Append one code point as UTF-8 if it fits with the terminating NUL. */
static bool utf8_put(char *buf, size_t cap, size_t *len, uint32_t cp)
{
    uint8_t tmp[4];
    size_t n = 0;
    if (cp < 0x80) {
        tmp[n++] = (uint8_t)cp;
    } else if (cp < 0x800) {
        tmp[n++] = (uint8_t)(0xC0 | cp >> 6);
        tmp[n++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        tmp[n++] = (uint8_t)(0xE0 | cp >> 12);
        tmp[n++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        tmp[n++] = (uint8_t)(0x80 | (cp & 0x3F));
    } else {
        tmp[n++] = (uint8_t)(0xF0 | cp >> 18);
        tmp[n++] = (uint8_t)(0x80 | (cp >> 12 & 0x3F));
        tmp[n++] = (uint8_t)(0x80 | (cp >> 6 & 0x3F));
        tmp[n++] = (uint8_t)(0x80 | (cp & 0x3F));
    }
    if (*len + n + 1 > cap) return false;
    memcpy(buf + *len, tmp, n);
    *len += n;
    buf[*len] = '\0';
    return true;
}

/* Length of the leading bytes of p[0..n) that are whole, valid UTF-8 characters. */
static size_t utf8_valid_prefix(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        size_t len = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || (len == 2 && c < 0xC2) || i + len > n) break;
        size_t k = 1;
        while (k < len && (p[i + k] & 0xC0) == 0x80) k++;
        if (k < len) break;
        i += len;
    }
    return i;
}

/* A tag's text as UTF-8 in buf (cut at a character boundary to fit cap);
 * "" when the tag is missing or not text. DM keeps text as an array of
 * UTF-16 code units; a string tag holds bytes, UTF-8 or else Latin-1. */
static eelsvae_status dm_text(dm_file *f, size_t node, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (node == DM_NONE) return EELSVAE_OK;
    const dm_node *t = &f->nodes[node];
    bool utf16 = t->kind == DM_KIND_ARRAY && t->eltype == DM_TYPE_USHORT;
    if (!utf16 && t->kind != DM_KIND_STRING) return EELSVAE_OK;
    /* Every code unit or byte gives at least one byte of output. */
    uint64_t units = t->count < cap ? t->count : cap;
    uint8_t raw[2 * DM_TEXT_MAX];
    if (units * (utf16 ? 2 : 1) > sizeof raw) units = sizeof raw / (utf16 ? 2 : 1);
    uint64_t offset = t->offset, count = t->count;
    EVAE_TRY(dm_seek(f, offset));
    EVAE_TRY(dm_read(f, raw, units * (utf16 ? 2 : 1), "text"));
    size_t len = 0;
    if (utf16) {
        for (size_t i = 0; i < units; i++) {
            uint32_t cp = (uint32_t)load_uint(raw + 2 * i, 2, f->little);
            if (cp >= 0xD800 && cp < 0xDC00 && i + 1 < units) {
                uint32_t low = (uint32_t)load_uint(raw + 2 * i + 2, 2, f->little);
                if (low >= 0xDC00 && low < 0xE000) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    i++;
                }
            }
            if (cp >= 0xD800 && cp < 0xE000) cp = 0xFFFD; /* a lone surrogate */
            if (cp == 0 || !utf8_put(buf, cap, &len, cp)) break;
        }
        return EELSVAE_OK;
    }
    size_t valid = utf8_valid_prefix(raw, (size_t)units);
    /* A prefix cut short may end inside a character: still UTF-8. */
    bool is_utf8 = valid == units || (units < count && units - valid < 4);
    for (size_t i = 0; i < (is_utf8 ? valid : units); i++) {
        if (raw[i] == 0) break;
        if (is_utf8) {
            if (len + 2 > cap) break;
            buf[len++] = (char)raw[i];
            buf[len] = '\0';
        } else if (!utf8_put(buf, cap, &len, raw[i])) {
            break;
        }
    }
    /* Never end inside a multi-byte character. */
    while (is_utf8 && len > 0 && utf8_valid_prefix((const uint8_t *)buf, len) != len) buf[--len] = '\0';
    return EELSVAE_OK;
}

static eelsvae_status dm_text_at(dm_file *f, size_t node, const char *path, char *buf, size_t cap)
{
    return dm_text(f, dm_find(f, node, path), buf, cap);
}

/* ---- the images ---------------------------------------------------------- */

typedef struct dm_image {
    size_t group;      /* the ImageList entry */
    size_t image_data; /* its ImageData */
    size_t data;       /* ImageData.Data */
    size_t ndim;
    size_t dims[EELSVAE_SIGNAL_MAX_DIMS]; /* DigitalMicrograph order: fastest first */
    size_t count;                         /* elements */
    int64_t data_type;                    /* ImageData.DataType */
    bool spectrum_image;                  /* Meta Data.Format "Spectrum image", or Orsay's spim tags */
    bool spectrum_format;                 /* Meta Data.Format "Spectrum image" or "Spectrum", or spim */
} dm_image;

static eelsvae_status dm_bad_image(const dm_file *f, const dm_image *im, const char *why)
{
    return evae_fail(EELSVAE_ERR_FORMAT, "%s: an image %s, at byte offset %llu", f->path, why,
                     ull(f->nodes[im->group].tag_offset));
}

static eelsvae_status dm_describe(dm_file *f, size_t group, dm_image *im)
{
    memset(im, 0, sizeof *im);
    im->group = group;
    im->image_data = dm_find(f, group, "ImageData");
    if (im->image_data == DM_NONE || f->nodes[im->image_data].kind != DM_KIND_GROUP)
        return dm_bad_image(f, im, "has no ImageData group");
    size_t dims = dm_find(f, im->image_data, "Dimensions");
    if (dims == DM_NONE || f->nodes[dims].kind != DM_KIND_GROUP) return dm_bad_image(f, im, "has no Dimensions");
    im->data = dm_find(f, im->image_data, "Data");
    if (im->data == DM_NONE || f->nodes[im->data].kind == DM_KIND_GROUP) return dm_bad_image(f, im, "has no Data");
    if (!dm_integer(f, dm_find(f, im->image_data, "DataType"), &im->data_type))
        return dm_bad_image(f, im, "has no integer DataType");
    uint64_t data_bytes = f->nodes[im->data].bytes;
    im->count = 1;
    for (size_t c = f->nodes[dims].first_child; c != DM_NONE; c = f->nodes[c].next_sibling) {
        int64_t n = 0;
        if (!dm_integer(f, c, &n) || n < 1)
            return evae_fail(EELSVAE_ERR_FORMAT,
                             "%s: image dimension %zu is not a positive integer, at byte offset %llu", f->path,
                             im->ndim, ull(f->nodes[c].tag_offset));
        if (im->ndim == EELSVAE_SIGNAL_MAX_DIMS)
            return evae_fail(EELSVAE_ERR_UNSUPPORTED, "%s: an image of more than %d dimensions at byte offset %llu",
                             f->path, EELSVAE_SIGNAL_MAX_DIMS, ull(f->nodes[dims].tag_offset));
        /* Each element takes a byte at least: more elements than data bytes is a lie. */
        if ((uint64_t)n > data_bytes / im->count)
            return evae_fail(EELSVAE_ERR_FORMAT,
                             "%s: image dimensions need more elements than its %llu data bytes hold, at byte offset "
                             "%llu",
                             f->path, ull(data_bytes), ull(f->nodes[c].tag_offset));
        im->dims[im->ndim++] = (size_t)n;
        im->count *= (size_t)n;
    }
    if (im->ndim == 0) return dm_bad_image(f, im, "has no dimensions");
    char format[64];
    EVAE_TRY(dm_text_at(f, group, "ImageTags|Meta Data|Format", format, sizeof format));
    bool spim = dm_find(f, group, "ImageTags|spim") != DM_NONE;
    im->spectrum_image = spim || strcmp(format, "Spectrum image") == 0;
    im->spectrum_format = im->spectrum_image || strcmp(format, "Spectrum") == 0;
    return EELSVAE_OK;
}

static int compare_int64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The ImageList entries that are images, thumbnails left out: the groups
 * whose place among the list's unnamed groups a Thumbnails entry names. */
static eelsvae_status dm_list_images(dm_file *f, size_t **groups, size_t *count)
{
    size_t list = dm_find(f, 0, "ImageList");
    if (list == DM_NONE || f->nodes[list].kind != DM_KIND_GROUP)
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: no ImageList tag group in the tags from byte offset %llu", f->path,
                         ull(f->nodes[0].tag_offset));
    size_t thumbs = dm_find(f, 0, "Thumbnails"), n_thumbs = 0, n_entries = 0;
    if (thumbs != DM_NONE && f->nodes[thumbs].kind != DM_KIND_GROUP) thumbs = DM_NONE;
    if (thumbs != DM_NONE)
        for (size_t c = f->nodes[thumbs].first_child; c != DM_NONE; c = f->nodes[c].next_sibling) n_thumbs++;
    for (size_t c = f->nodes[list].first_child; c != DM_NONE; c = f->nodes[c].next_sibling) n_entries++;
    int64_t *thumb_index = NULL;
    size_t *found = NULL, n_found = 0;
    EVAE_TRY(evae_alloc_array(n_thumbs + 1, sizeof *thumb_index, (void **)&thumb_index, "thumbnail list"));
    eelsvae_status st = evae_alloc_array(n_entries + 1, sizeof *found, (void **)&found, "image list");
    if (st != EELSVAE_OK) {
        evae_free(thumb_index);
        return st;
    }
    size_t k = 0;
    if (thumbs != DM_NONE)
        for (size_t c = f->nodes[thumbs].first_child; c != DM_NONE; c = f->nodes[c].next_sibling)
            if (dm_integer(f, dm_find(f, c, "ImageIndex"), &thumb_index[k])) k++;
    n_thumbs = k;
    qsort(thumb_index, n_thumbs, sizeof *thumb_index, compare_int64);
    int64_t unnamed = 0;
    for (size_t c = f->nodes[list].first_child; c != DM_NONE; c = f->nodes[c].next_sibling) {
        if (f->nodes[c].kind != DM_KIND_GROUP || f->nodes[c].name_len != 0) continue;
        int64_t index = unnamed++;
        if (!bsearch(&index, thumb_index, n_thumbs, sizeof *thumb_index, compare_int64)) found[n_found++] = c;
    }
    evae_free(thumb_index);
    if (n_found == 0) {
        evae_free(found);
        return evae_fail(EELSVAE_ERR_FORMAT, "%s: the ImageList at byte offset %llu holds no image but thumbnails",
                         f->path, ull(f->nodes[list].tag_offset));
    }
    *groups = found;
    *count = n_found;
    return EELSVAE_OK;
}

/* The spectrum image when there is one (the largest if several), else the
 * largest image; the first of equals. */
static eelsvae_status dm_main_image(dm_file *f, const size_t *groups, size_t count, size_t *main_index)
{
    size_t best = 0, best_count = 0;
    bool best_si = false;
    for (size_t i = 0; i < count; i++) {
        dm_image im;
        EVAE_TRY(dm_describe(f, groups[i], &im));
        bool better = i == 0 || (im.spectrum_image && !best_si) ||
                      (im.spectrum_image == best_si && im.count > best_count);
        if (better) {
            best = i;
            best_count = im.count;
            best_si = im.spectrum_image;
        }
    }
    *main_index = best;
    return EELSVAE_OK;
}

eelsvae_status evae_dm_count(const char *path, size_t *count, size_t *main_index)
{
    if (!path || !count) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "dm_count: NULL argument");
    dm_file f;
    EVAE_TRY(dm_open(path, &f));
    size_t *groups = NULL, n = 0, main = 0;
    eelsvae_status st = dm_list_images(&f, &groups, &n);
    if (st == EELSVAE_OK) st = dm_main_image(&f, groups, n, &main);
    evae_free(groups);
    dm_close(&f);
    if (st != EELSVAE_OK) return st;
    *count = n;
    if (main_index) *main_index = main;
    return EELSVAE_OK;
}

/* ---- element types and data ---------------------------------------------- */

static bool dm_image_dtype(int64_t data_type, eelsvae_dtype *dtype)
{
    switch (data_type) {
    case 1: *dtype = EELSVAE_DTYPE_INT16; return true;
    case 2: *dtype = EELSVAE_DTYPE_FLOAT32; return true;
    case 3: *dtype = EELSVAE_DTYPE_COMPLEX64; return true; /* DM's complex8 */
    case 6: *dtype = EELSVAE_DTYPE_UINT8; return true;
    case 7: *dtype = EELSVAE_DTYPE_INT32; return true;
    case 8:  /* RGB */
    case 23: /* RGBA: both four bytes B, G, R, A as a little-endian word */
        *dtype = EELSVAE_DTYPE_RGBA8;
        return true;
    case 9: *dtype = EELSVAE_DTYPE_INT8; return true;
    case 10: *dtype = EELSVAE_DTYPE_UINT16; return true;
    case 11: *dtype = EELSVAE_DTYPE_UINT32; return true;
    case 12: *dtype = EELSVAE_DTYPE_FLOAT64; return true;
    case 13: *dtype = EELSVAE_DTYPE_COMPLEX128; return true; /* DM's complex16 */
    case 14: *dtype = EELSVAE_DTYPE_BOOL; return true;
    case 39: *dtype = EELSVAE_DTYPE_INT64; return true;
    case 40: *dtype = EELSVAE_DTYPE_UINT64; return true;
    default: break;
    }
    return false;
}

static bool host_is_little(void)
{
    const uint16_t one = 1;
    uint8_t first = 0;
    memcpy(&first, &one, 1);
    return first == 1;
}

static void swap_units(uint8_t *p, size_t n_units, size_t unit)
{
    for (size_t i = 0; i < n_units; i++, p += unit)
        for (size_t a = 0, b = unit - 1; a < b; a++, b--) {
            uint8_t t = p[a];
            p[a] = p[b];
            p[b] = t;
        }
}

/* File bytes to native elements: byte order, RGB as R, G, B, A, bools as 0/1. */
static void dm_convert(uint8_t *p, size_t count, eelsvae_dtype dtype, bool file_little)
{
    size_t esize = eelsvae_dtype_size(dtype);
    if (dtype == EELSVAE_DTYPE_RGBA8) {
        /* A 32-bit word A·2^24 + R·2^16 + G·2^8 + B in the file's byte order. */
        for (size_t i = 0; i < count; i++, p += 4) {
            uint32_t w = (uint32_t)load_uint(p, 4, file_little);
            p[0] = (uint8_t)(w >> 16);
            p[1] = (uint8_t)(w >> 8);
            p[2] = (uint8_t)w;
            p[3] = (uint8_t)(w >> 24);
        }
        return;
    }
    if (dtype == EELSVAE_DTYPE_BOOL) {
        for (size_t i = 0; i < count; i++) p[i] = p[i] != 0;
        return;
    }
    size_t unit = dtype == EELSVAE_DTYPE_COMPLEX64 || dtype == EELSVAE_DTYPE_COMPLEX128 ? esize / 2 : esize;
    if (unit > 1 && file_little != host_is_little()) swap_units(p, count * (esize / unit), unit);
}

/* Move the middle axis of a C-order (outer, middle, inner) array to the end:
 * (outer, inner, middle). Blocks of the inner axis keep reads contiguous. */
#define DM_MOVE_AXIS(T)                                                                                            \
    do {                                                                                                           \
        const T *s = (const T *)src;                                                                               \
        T *d = (T *)dst;                                                                                           \
        for (size_t o = 0; o < outer; o++, s += middle * inner, d += middle * inner)                              \
            for (size_t q0 = 0; q0 < inner; q0 += BLOCK) {                                                         \
                size_t q1 = q0 + BLOCK < inner ? q0 + BLOCK : inner;                                               \
                for (size_t m = 0; m < middle; m++)                                                                \
                    for (size_t q = q0; q < q1; q++) d[q * middle + m] = s[m * inner + q];                         \
            }                                                                                                      \
    } while (0)

typedef struct dm_pair {
    uint64_t a, b;
} dm_pair;

static void move_axis_last(const void *src, void *dst, size_t outer, size_t middle, size_t inner, size_t esize)
{
    enum { BLOCK = 64 };
    switch (esize) {
    case 1: DM_MOVE_AXIS(uint8_t); break;
    case 2: DM_MOVE_AXIS(uint16_t); break;
    case 4: DM_MOVE_AXIS(uint32_t); break;
    case 8: DM_MOVE_AXIS(uint64_t); break;
    default: DM_MOVE_AXIS(dm_pair); break; /* 16: complex128 */
    }
}
#undef DM_MOVE_AXIS

/* ---- layout: HyperSpy's axes ---------------------------------------------- */

typedef struct dm_layout {
    size_t file_ndim;
    size_t file_shape[EELSVAE_SIGNAL_MAX_DIMS]; /* C order, as stored */
    bool to_spectrum;                           /* move axis file_ndim − 3 to the end */
    size_t ndim;                                /* after moving and squeezing */
    size_t shape[EELSVAE_SIGNAL_MAX_DIMS];
    evae_signal_axis axis[EELSVAE_SIGNAL_MAX_DIMS];
} dm_layout;

/* HyperSpy's signal type from the tags: "EDS_TEM", "CL", "EELS" or "". */
static eelsvae_status dm_signal_type(dm_file *f, const dm_image *im, const char **type)
{
    char signal[64];
    EVAE_TRY(dm_text_at(f, im->group, "ImageTags|Meta Data|Signal", signal, sizeof signal));
    if (strcmp(signal, "X-ray") == 0)
        *type = "EDS_TEM";
    else if (strcmp(signal, "CL") == 0 || dm_find(f, im->group, "ImageTags|Acquisition|Monarc Spectrometer") != DM_NONE)
        *type = "CL";
    else if (strcmp(signal, "EELS") == 0 || dm_find(f, im->group, "ImageTags|spim|eels") != DM_NONE)
        *type = "EELS";
    else
        *type = "";
    return EELSVAE_OK;
}

/* Calibration of DM dimension k (0 when uncalibrated: origin 0, scale 1). */
static eelsvae_status dm_calibration(dm_file *f, const dm_image *im, size_t k, evae_signal_axis *a)
{
    double origin = 0.0, scale = 1.0;
    a->units[0] = '\0';
    size_t dims = dm_find(f, im->image_data, "Calibrations|Dimension");
    size_t c = dims != DM_NONE && f->nodes[dims].kind == DM_KIND_GROUP ? f->nodes[dims].first_child : DM_NONE;
    for (size_t i = 0; i < k && c != DM_NONE; i++) c = f->nodes[c].next_sibling;
    if (c != DM_NONE) {
        (void)dm_number(f, dm_find(f, c, "Origin"), &origin);
        (void)dm_number(f, dm_find(f, c, "Scale"), &scale);
        EVAE_TRY(dm_text_at(f, c, "Units", a->units, sizeof a->units));
    }
    a->scale = scale;
    a->offset = -origin * scale;
    return EELSVAE_OK;
}

/* Names as HyperSpy gives them: the energy (EELS, eV), wavelength (CL, nm)
 * axis named for it, then x, y, z from the last remaining axis back. As in
 * HyperSpy 1.7, an "EDS_TEM" signal gets no special name. */
static void dm_axis_names(dm_layout *l, const char *signal_type)
{
    size_t n = l->file_ndim, special = DM_NONE;
    const char *unit = NULL, *name = NULL;
    if (strcmp(signal_type, "EELS") == 0) {
        unit = "eV";
        name = "Energy loss";
    } else if (strcmp(signal_type, "CL") == 0) {
        unit = "nm";
        name = "Wavelength";
    }
    for (size_t i = 0; unit && i < n && special == DM_NONE; i++)
        if (strcmp(l->axis[i].units, unit) == 0) special = i;
    if (special != DM_NONE) snprintf(l->axis[special].name, sizeof l->axis[special].name, "%s", name);
    static const char *const letters[3] = {"x", "y", "z"};
    size_t next = 0;
    for (size_t i = n; i-- > 0 && next < 3;) {
        if (i == special) continue;
        snprintf(l->axis[i].name, sizeof l->axis[i].name, "%s", letters[next++]);
    }
}

static eelsvae_status dm_layout_of(dm_file *f, const dm_image *im, const char *signal_type, dm_layout *l)
{
    memset(l, 0, sizeof *l);
    size_t n = im->ndim;
    l->file_ndim = n;
    for (size_t i = 0; i < n; i++) {
        l->file_shape[i] = im->dims[n - 1 - i];
        EVAE_TRY(dm_calibration(f, im, n - 1 - i, &l->axis[i]));
    }
    dm_axis_names(l, signal_type);
    /* HyperSpy's record_by: a spectrum (one signal axis, the last) for 1-D
     * data and 2-D spectrum images, an image (two signal axes) otherwise. */
    bool spectrum = n == 1 || (n == 2 && im->spectrum_format);
    for (size_t i = 0; i < n; i++) l->axis[i].navigate = spectrum ? i + 1 < n : i + 2 < n;
    size_t shape[EELSVAE_SIGNAL_MAX_DIMS];
    memcpy(shape, l->file_shape, sizeof shape);
    /* A spectrum image of 3 or more dimensions is stored energy-slowest of
     * the last three; HyperSpy's to_signal1D moves energy to the end. */
    l->to_spectrum = im->spectrum_image && n > 2;
    if (l->to_spectrum) {
        size_t e = n - 3;
        evae_signal_axis energy = l->axis[e];
        for (size_t i = e; i + 1 < n; i++) {
            l->axis[i] = l->axis[i + 1];
            shape[i] = shape[i + 1];
        }
        l->axis[n - 1] = energy;
        shape[n - 1] = l->file_shape[e];
        for (size_t i = 0; i < n; i++) l->axis[i].navigate = i + 1 < n;
    }
    /* squeeze(): axes of size 1 go (one stays if all are). */
    for (size_t i = 0; i < n; i++) {
        if (shape[i] == 1 && !(l->ndim == 0 && i + 1 == n)) continue;
        l->shape[l->ndim] = shape[i];
        l->axis[l->ndim++] = l->axis[i];
    }
    return EELSVAE_OK;
}

/* ---- metadata ------------------------------------------------------------ */

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return month == 2 && leap ? 29 : days[month - 1];
}

/* `n` decimal digits of 0 ≤ v < 10^n, zero-padded (snprintf's range
 * analysis cannot see that the values were checked). */
static void put_digits(char *out, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10) out[i] = (char)('0' + v % 10);
}

/* Read up to 5 digits; the number of digits read. */
static int read_digits(const char **s, int *value)
{
    int n = 0, v = 0;
    while (n < 5 && **s >= '0' && **s <= '9') {
        v = v * 10 + (**s - '0');
        (*s)++;
        n++;
    }
    *value = v;
    return n;
}

/* A date as DigitalMicrograph writes it in the user's locale (7/9/2014,
 * 27/08/2016, 27.08.2016, 2016-08-27), read as dateutil reads it for
 * HyperSpy: year first when it has four digits, else month first unless
 * the first number cannot be a month. Anything after a space is ignored. */
static bool parse_date(const char *s, char out[32])
{
    int v[3] = {0, 0, 0}, digits[3] = {0, 0, 0};
    while (*s == ' ') s++;
    for (int k = 0; k < 3; k++) {
        digits[k] = read_digits(&s, &v[k]);
        if (digits[k] == 0 || digits[k] > 4) return false;
        if (k < 2) {
            if (*s != '/' && *s != '.' && *s != '-') return false;
            s++;
        }
    }
    if (*s != '\0' && *s != ' ' && *s != 'T') return false;
    int year = 0, month = 0, day = 0;
    if (digits[0] == 4) {
        year = v[0];
        month = v[1];
        day = v[2];
    } else {
        year = v[2];
        if (digits[2] <= 2) {
            /* dateutil's two-digit year: the century that puts it within 50 years of now. */
            time_t now = time(NULL);
            struct tm tm_now;
            int this_year = gmtime_r(&now, &tm_now) ? tm_now.tm_year + 1900 : 2000;
            year += this_year / 100 * 100;
            if (year >= this_year + 50)
                year -= 100;
            else if (year < this_year - 50)
                year += 100;
        }
        month = v[0] > 12 ? v[1] : v[0];
        day = v[0] > 12 ? v[0] : v[1];
    }
    if (year < 1 || year > 9999 || month < 1 || month > 12 || day < 1 || day > days_in_month(year, month)) return false;
    put_digits(out, year, 4);
    out[4] = '-';
    put_digits(out + 5, month, 2);
    out[7] = '-';
    put_digits(out + 8, day, 2);
    out[10] = '\0';
    return true;
}

/* A time: H:MM or H:MM:SS, with an optional AM/PM (also a.m./p.m.). */
static bool parse_time(const char *s, char out[32])
{
    int h = 0, m = 0, sec = 0;
    while (*s == ' ') s++;
    int nh = read_digits(&s, &h);
    if (nh == 0 || nh > 2 || *s++ != ':') return false;
    if (read_digits(&s, &m) != 2) return false;
    if (*s == ':') {
        s++;
        if (read_digits(&s, &sec) != 2) return false;
    }
    while (*s == ' ') s++;
    int meridian = 0; /* 1 am, 2 pm */
    char c = *s;
    if (c == 'a' || c == 'A' || c == 'p' || c == 'P') {
        meridian = c == 'a' || c == 'A' ? 1 : 2;
        s++;
        if (*s == '.') s++;
        if (*s != 'm' && *s != 'M') return false;
        s++;
        if (*s == '.') s++;
    }
    while (*s == ' ') s++;
    if (*s != '\0') return false;
    if (meridian) {
        if (h < 1 || h > 12) return false;
        h = h % 12 + (meridian == 2 ? 12 : 0);
    }
    if (h > 23 || m > 59 || sec > 59) return false;
    put_digits(out, h, 2);
    out[2] = ':';
    put_digits(out + 3, m, 2);
    out[5] = ':';
    put_digits(out + 6, sec, 2);
    out[8] = '\0';
    return true;
}

/* The first of the paths that holds text (not empty, not "[]"). */
static eelsvae_status dm_first_text(dm_file *f, size_t tags, const char *const *paths, size_t n, char *buf, size_t cap)
{
    buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        EVAE_TRY(dm_text_at(f, tags, paths[i], buf, cap));
        if (buf[0] && strcmp(buf, "[]") != 0) return EELSVAE_OK;
    }
    buf[0] = '\0';
    return EELSVAE_OK;
}

/* HyperSpy's exposure time from an EELS or CL Acquisition group: the
 * integration time, else exposure × number of frames. */
static bool dm_exposure(const dm_file *f, size_t acquisition, double *value)
{
    double frames = 1.0, exposure = 0.0;
    if (dm_number(f, dm_find(f, acquisition, "Integration time (s)"), value)) return true;
    if (!dm_number(f, dm_find(f, acquisition, "Exposure (s)"), &exposure)) return false;
    (void)dm_number(f, dm_find(f, acquisition, "Number of frames"), &frames);
    *value = exposure * frames;
    return true;
}

/* Date and time: later sources override earlier ones, in HyperSpy's order. */
static eelsvae_status dm_date_time(dm_file *f, size_t tags, bool has_si, const char *type, eelsvae_signal *s)
{
    const char *dates[5] = {"DataBar|Acquisition Date", NULL, NULL, NULL, NULL};
    const char *times[4] = {"DataBar|Acquisition Time", NULL, NULL, NULL};
    size_t nd = 1, nt = 1;
    if (has_si) {
        dates[nd++] = "SI|Acquisition|Date";
        times[nt++] = "SI|Acquisition|Start time";
    }
    if (strcmp(type, "EELS") == 0) {
        dates[nd++] = "EELS|Acquisition|Date";
        times[nt++] = "EELS|Acquisition|Start time";
    } else if (strcmp(type, "EDS_TEM") == 0) {
        dates[nd++] = "EDS|Acquisition|Date";
        times[nt++] = "EDS|Acquisition|Start time";
    } else if (strcmp(type, "CL") == 0) {
        dates[nd++] = "CL|Acquisition|Date";
        dates[nd++] = "CL|Acquisition|Acquisition begin";
        dates[nd++] = "DataBar|Acquisition Date";
        times[nt++] = "CL|Acquisition|Start time";
        times[nt++] = "DataBar|Acquisition Time";
    }
    char text[DM_TEXT_MAX], date[32] = "", time_of_day[32] = "", parsed[32];
    for (size_t i = 0; i < nd; i++) {
        EVAE_TRY(dm_text_at(f, tags, dates[i], text, sizeof text));
        if (parse_date(text, parsed)) memcpy(date, parsed, sizeof date);
    }
    for (size_t i = 0; i < nt; i++) {
        EVAE_TRY(dm_text_at(f, tags, times[i], text, sizeof text));
        if (parse_time(text, parsed)) memcpy(time_of_day, parsed, sizeof time_of_day);
    }
    if (date[0]) EVAE_TRY(eelsvae_signal_metadata_set(s, "acquisition_date", date));
    if (time_of_day[0]) EVAE_TRY(eelsvae_signal_metadata_set(s, "acquisition_time", time_of_day));
    return EELSVAE_OK;
}

static eelsvae_status set_number_if(eelsvae_signal *s, const char *key, bool present, double value)
{
    return present ? evae_signal_metadata_set_number(s, key, value) : EELSVAE_OK;
}

static eelsvae_status dm_metadata(dm_file *f, const dm_image *im, const char *type, eelsvae_signal *s)
{
    char text[DM_TEXT_MAX];
    EVAE_TRY(dm_text_at(f, im->group, "Name", text, sizeof text));
    if (text[0]) EVAE_TRY(evae_signal_set_title(s, text));
    if (type[0]) EVAE_TRY(eelsvae_signal_metadata_set(s, "signal_type", type));
    /* Images from the stack builder keep their tags under source. */
    size_t image_tags = dm_find(f, im->group, "ImageTags");
    size_t tags = dm_find(f, image_tags, "source") != DM_NONE ? dm_find(f, image_tags, "source|Tags at creation")
                                                              : image_tags;
    if (tags == DM_NONE) return EELSVAE_OK;
    bool eels = strcmp(type, "EELS") == 0, cl = strcmp(type, "CL") == 0;
    EVAE_TRY(dm_date_time(f, tags, dm_find(f, image_tags, "SI") != DM_NONE, type, s));
    double v = 0.0;
    if (dm_number(f, dm_find(f, tags, "Microscope Info|Voltage"), &v))
        EVAE_TRY(evae_signal_metadata_set_number(s, "beam_energy_kev", v / 1e3));
    if (dm_find(f, tags, "Microscope Info") != DM_NONE) {
        static const char *const names[3] = {"Session Info|Microscope", "Microscope Info|Name",
                                             "Microscope Info|Microscope"};
        EVAE_TRY(dm_first_text(f, tags, names, 3, text, sizeof text));
        if (text[0]) EVAE_TRY(eelsvae_signal_metadata_set(s, "microscope", text));
    }
    /* Each number is looked up before it is set: argument order is unspecified. */
    static const char *const numbers[3][2] = {
        {"collection_angle_mrad", "EELS|Experimental Conditions|Collection semi-angle (mrad)"},
        {"convergence_angle_mrad", "EELS|Experimental Conditions|Convergence semi-angle (mrad)"},
        {"dispersion_ev", "EELS Spectrometer|Dispersion (eV/ch)"},
    };
    for (size_t i = 0; i < 3; i++) {
        /* HyperSpy reads the angles for EELS only. */
        if (i < 2 && !eels) continue;
        bool present = dm_number(f, dm_find(f, tags, numbers[i][1]), &v);
        EVAE_TRY(set_number_if(s, numbers[i][0], present, v));
    }
    /* Exposure where HyperSpy reads one: per spectrum for EELS and CL
     * (CL's dwell time overriding), the camera's for other non-scanned images. */
    bool have = false;
    if (eels) {
        have = dm_exposure(f, dm_find(f, tags, "EELS|Acquisition"), &v);
    } else if (cl) {
        have = dm_exposure(f, dm_find(f, tags, "CL|Acquisition"), &v);
        double dwell = 0.0;
        if (dm_number(f, dm_find(f, tags, "CL|Acquisition|Dwell time (s)"), &dwell)) {
            v = dwell;
            have = true;
        }
    } else if (strcmp(type, "EDS_TEM") != 0 && dm_find(f, tags, "DigiScan") == DM_NONE) {
        have = dm_number(f, dm_find(f, tags, "Acquisition|Parameters|Detector|exposure (s)"), &v);
    }
    return set_number_if(s, "exposure_s", have, v);
}

/* ---- reading one image ---------------------------------------------------- */

static eelsvae_status dm_read_image(dm_file *f, const dm_image *im, eelsvae_signal **out)
{
    eelsvae_dtype dtype = EELSVAE_DTYPE_FLOAT32;
    if (!dm_image_dtype(im->data_type, &dtype))
        return evae_fail(EELSVAE_ERR_UNSUPPORTED,
                         "%s: DigitalMicrograph image data type %lld (packed complex, RGB of floats or unknown) is not "
                         "read; image at byte offset %llu",
                         f->path, (long long)im->data_type, ull(f->nodes[im->group].tag_offset));
    size_t esize = eelsvae_dtype_size(dtype);
    const dm_node *data = &f->nodes[im->data];
    if (im->count > data->bytes / esize || data->bytes != (uint64_t)im->count * esize)
        return evae_fail(EELSVAE_ERR_FORMAT,
                         "%s: image data of %llu bytes, %zu elements of %zu bytes expected, at byte offset %llu",
                         f->path, ull(data->bytes), im->count, esize, ull(data->tag_offset));
    uint64_t data_offset = data->offset;
    const char *type = "";
    dm_layout l;
    EVAE_TRY(dm_signal_type(f, im, &type));
    EVAE_TRY(dm_layout_of(f, im, type, &l));
    eelsvae_signal *s = NULL;
    EVAE_TRY(evae_signal_alloc(dtype, l.ndim, l.shape, &s));
    eelsvae_status st = dm_seek(f, data_offset);
    if (st == EELSVAE_OK) st = dm_read(f, s->data, (uint64_t)im->count * esize, "image data");
    if (st == EELSVAE_OK) dm_convert(s->data, im->count, dtype, f->little);
    if (st == EELSVAE_OK && l.to_spectrum) {
        size_t n = l.file_ndim, outer = 1, inner = l.file_shape[n - 1] * l.file_shape[n - 2];
        for (size_t i = 0; i + 3 < n; i++) outer *= l.file_shape[i];
        void *moved = NULL;
        st = evae_alloc_array(im->count, esize, &moved, "spectrum image");
        if (st == EELSVAE_OK) {
            move_axis_last(s->data, moved, outer, l.file_shape[n - 3], inner, esize);
            evae_free(s->data);
            s->data = moved;
        }
    }
    if (st == EELSVAE_OK) memcpy(s->axis, l.axis, sizeof l.axis);
    if (st == EELSVAE_OK) st = dm_metadata(f, im, type, s);
    if (st != EELSVAE_OK) {
        eelsvae_signal_free(s);
        return st;
    }
    *out = s;
    return EELSVAE_OK;
}

eelsvae_status evae_dm_read(const char *path, size_t index, eelsvae_signal **out)
{
    if (!path || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "dm_read: NULL argument");
    dm_file f;
    EVAE_TRY(dm_open(path, &f));
    size_t *groups = NULL, n = 0;
    eelsvae_status st = dm_list_images(&f, &groups, &n);
    if (st == EELSVAE_OK && index >= n) st = evae_fail(EELSVAE_ERR_RANGE, "%s: signal %zu of %zu", path, index, n);
    dm_image im;
    if (st == EELSVAE_OK) st = dm_describe(&f, groups[index], &im);
    if (st == EELSVAE_OK) st = dm_read_image(&f, &im, out);
    evae_free(groups);
    dm_close(&f);
    return st;
}
