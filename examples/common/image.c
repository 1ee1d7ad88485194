#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <eelsvae/eelsvae.h>

#include "cli.h"

#ifdef EELSVAE_HAVE_TIFF
#include <tiffio.h>
#endif

/* The code point of the UTF-8 sequence at *p, advancing *p; a byte that does
 * not start a well-formed sequence reads as Latin-1. */
static unsigned next_code_point(const unsigned char **p)
{
    const unsigned char *s = *p;
    unsigned c = s[0];
    size_t len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
    unsigned cp = len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : len == 4 ? c & 0x07 : c;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) {
            len = 1;
            cp = c;
            break;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    /* overlong forms, surrogates and values past U+10FFFF: the lead byte alone */
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF))) {
        len = 1;
        cp = c;
    }
    *p = s + len;
    return cp;
}

/* ---- TIFF -------------------------------------------------------------------- */

#ifdef EELSVAE_HAVE_TIFF

/* ImageJ's private tags: its metadata blocks and their byte counts. */
#define IJ_METADATA_BYTE_COUNTS 50838
#define IJ_METADATA 50839

static char tiff_message[256];

__attribute__((format(printf, 2, 0))) static void tiff_error_handler(const char *module, const char *fmt,
                                                                     va_list ap)
{
    (void)module;
    if (!tiff_message[0]) vsnprintf(tiff_message, sizeof tiff_message, fmt, ap); /* keep the first */
}

/* `units` as the value of ImageJ's "unit=" property (read with Java's
 * Properties.load: ISO-8859-1 bytes, backslash escapes). */
static void imagej_unit(cli_text *t, const char *units)
{
    if (!strcmp(units, "\xC2\xB5m") || !strcmp(units, "\xCE\xBCm")) { /* µm (micro sign or Greek mu) */
        cli_text_printf(t, "micron");
        return;
    }
    for (const unsigned char *p = (const unsigned char *)units; *p;) {
        unsigned cp = next_code_point(&p);
        if (cp == '\\') cli_text_printf(t, "\\\\");
        else if (cp >= 0x20 && cp < 0x7F) cli_text_printf(t, "%c", (char)cp);
        else if (cp < 0x10000) cli_text_printf(t, "\\u%04x", cp);
        else cli_text_printf(t, "\\u%04x\\u%04x", 0xD800 + ((cp - 0x10000) >> 10), 0xDC00 + ((cp - 0x10000) & 0x3FF));
    }
}

static void put_u32(uint8_t *b, uint32_t v, int big_endian)
{
    for (int k = 0; k < 4; k++) b[k] = (uint8_t)(v >> (big_endian ? 24 - 8 * k : 8 * k));
}

/* ImageJ's metadata block holding only the "Info" property: the header
 * "IJIJ", one (type "info", count 1) pair, then the text in UTF-16, all in
 * the file's byte order. Sets *size; NULL when out of memory. */
static uint8_t *imagej_info_block(const char *text, int big_endian, uint32_t *size)
{
    size_t units = 0;
    for (const unsigned char *p = (const unsigned char *)text; *p; units++)
        if (next_code_point(&p) >= 0x10000) units++;
    uint8_t *b = malloc(12 + 2 * units);
    if (!b) return NULL;
    memcpy(b, "IJIJ", 4);
    put_u32(b + 4, 0x696e666f, big_endian); /* "info" */
    put_u32(b + 8, 1, big_endian);
    uint8_t *q = b + 12;
    for (const unsigned char *p = (const unsigned char *)text; *p;) {
        unsigned cp = next_code_point(&p);
        unsigned u[2] = {cp, 0};
        int n = 1;
        if (cp >= 0x10000) {
            u[0] = 0xD800 + ((cp - 0x10000) >> 10);
            u[1] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            n = 2;
        }
        for (int k = 0; k < n; k++) {
            *q++ = (uint8_t)(big_endian ? u[k] >> 8 : u[k] & 0xFF);
            *q++ = (uint8_t)(big_endian ? u[k] & 0xFF : u[k] >> 8);
        }
    }
    *size = (uint32_t)(12 + 2 * units);
    return b;
}

/* The reason of a failed libtiff call: errno's text when the system said
 * something, libtiff's message, or both. */
static void tiff_reason(char *buf, size_t size, int err, const char *what)
{
    if (err && tiff_message[0]) snprintf(buf, size, "%s (%s)", tiff_message, strerror(err));
    else if (err) snprintf(buf, size, "%s", strerror(err));
    else if (tiff_message[0]) snprintf(buf, size, "%s", tiff_message);
    else snprintf(buf, size, "%s failed", what);
}

#endif

int cli_write_tiff(const char *path, const float *map, size_t ny, size_t nx, double scale_y, double scale_x,
                   const char *units, const char *description)
{
#ifdef EELSVAE_HAVE_TIFF
    scale_y = fabs(scale_y);
    scale_x = fabs(scale_x);
    if (!(scale_y > 0) || !(scale_x > 0) || !isfinite(scale_y) || !isfinite(scale_x) || !isfinite(1 / scale_y) ||
        !isfinite(1 / scale_x)) {
        fprintf(stderr, "%s: cannot write %s: invalid pixel size %g × %g\n", cli_prog(), path, scale_y, scale_x);
        return -1;
    }
    /* classic TIFF: 32-bit offsets */
    if (ny == 0 || nx == 0 || nx > UINT32_MAX || ny > UINT32_MAX || ny > (UINT32_MAX - (1u << 20)) / 4 / nx) {
        fprintf(stderr, "%s: cannot write %s: a %zu × %zu map does not fit a TIFF\n", cli_prog(), path, ny, nx);
        return -1;
    }
    static const TIFFFieldInfo ij_fields[] = {
        {IJ_METADATA_BYTE_COUNTS, TIFF_VARIABLE2, TIFF_VARIABLE2, TIFF_LONG, FIELD_CUSTOM, 1, 1, "IJMetadataByteCounts"},
        {IJ_METADATA, TIFF_VARIABLE2, TIFF_VARIABLE2, TIFF_BYTE, FIELD_CUSTOM, 1, 1, "IJMetadata"},
    };

    char tmp[4200], reason[600];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0) {
        fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog(), path, strerror(errno));
        return -1;
    }
    cli_text desc = {0};
    uint8_t *info = NULL;
    float *row = malloc(nx * sizeof *row);
    tiff_message[0] = '\0';
    TIFFErrorHandler old_error = TIFFSetErrorHandler(tiff_error_handler);
    TIFFErrorHandler old_warning = TIFFSetWarningHandler(NULL);
    int ok = 0, err = 0;
    const char *what = "TIFFFdOpen";
    errno = 0;
    TIFF *tif = row ? TIFFFdOpen(fd, tmp, "w") : NULL;
    if (!tif) {
        err = row ? errno : ENOMEM;
        goto done;
    }

    cli_text_printf(&desc, "ImageJ=1.11a\n");
    if (units && *units) {
        cli_text_printf(&desc, "unit=");
        imagej_unit(&desc, units);
        cli_text_printf(&desc, "\n");
    }
    char software[64];
    snprintf(software, sizeof software, "libeelsvae %d.%d.%d", EELSVAE_VERSION_MAJOR, EELSVAE_VERSION_MINOR,
             EELSVAE_VERSION_PATCH);
    what = "setting the TIFF tags";
    if (!TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, (uint32_t)nx) || !TIFFSetField(tif, TIFFTAG_IMAGELENGTH, (uint32_t)ny) ||
        !TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 32) || !TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 1) ||
        !TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP) ||
        !TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_MINISBLACK) ||
        !TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) ||
        !TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_NONE) ||
        !TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, TIFFDefaultStripSize(tif, 0)) ||
        !TIFFSetField(tif, TIFFTAG_XRESOLUTION, 1.0 / scale_x) || !TIFFSetField(tif, TIFFTAG_YRESOLUTION, 1.0 / scale_y) ||
        !TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_NONE) ||
        !TIFFSetField(tif, TIFFTAG_IMAGEDESCRIPTION, desc.s) || !TIFFSetField(tif, TIFFTAG_SOFTWARE, software))
        goto done;
    if (description && *description) {
        uint32_t size = 0;
        info = imagej_info_block(description, TIFFIsBigEndian(tif), &size);
        if (!info) {
            err = ENOMEM;
            goto done;
        }
        uint32_t counts[2] = {12, size - 12};
        if (TIFFMergeFieldInfo(tif, ij_fields, 2) != 0 || !TIFFSetField(tif, IJ_METADATA_BYTE_COUNTS, (uint32_t)2, counts) ||
            !TIFFSetField(tif, IJ_METADATA, size, info))
            goto done;
    }
    what = "writing the TIFF";
    for (size_t y = 0; y < ny; y++) {
        memcpy(row, map + y * nx, nx * sizeof *row); /* libtiff may swap bytes in place */
        errno = 0;
        if (TIFFWriteScanline(tif, row, (uint32_t)y, 0) < 0) {
            err = errno;
            goto done;
        }
    }
    errno = 0;
    if (!TIFFFlush(tif)) {
        err = errno;
        goto done;
    }
    ok = 1;
done:
    if (tif) TIFFCleanup(tif); /* frees the handle; the descriptor stays ours */
    TIFFSetErrorHandler(old_error);
    TIFFSetWarningHandler(old_warning);
    if (close(fd) != 0 && ok) ok = 0, err = errno, what = "close", tiff_message[0] = '\0';
    if (ok && rename(tmp, path) != 0) ok = 0, err = errno, what = "rename", tiff_message[0] = '\0';
    if (!ok) {
        tiff_reason(reason, sizeof reason, err, what);
        fprintf(stderr, "%s: cannot write %s: %s\n", cli_prog(), path, reason);
        remove(tmp);
    }
    free(row);
    free(info);
    cli_text_free(&desc);
    return ok ? 0 : -1;
#else
    (void)map, (void)ny, (void)nx, (void)scale_y, (void)scale_x, (void)units, (void)description;
    fprintf(stderr, "%s: cannot write %s: built without libtiff (TIFF output disabled)\n", cli_prog(), path);
    return -1;
#endif
}

/* ---- PNG heatmap ------------------------------------------------------------ */

/* Layout, in PNG pixels. */
#define MAP_MARGIN 12
#define MAP_MIN_WIDTH 480
#define MAP_MAX_SIDE 1600
#define BAR_GAP 16
#define BAR_WIDTH 20
#define BAR_MIN_HEIGHT 160
#define TICK_LENGTH 5
#define TICK_GAP 4
#define CAPTION_GAP 10
#define TICK_CHARS 10 /* the longest %.3g: "-1.23e-100" */

/* The font: 5 × 7 glyphs drawn at FONT_SCALE, 1 column apart. */
#define FONT_SCALE 2
#define GLYPH_W 5
#define GLYPH_H 7
#define GLYPH_ADVANCE ((GLYPH_W + 1) * FONT_SCALE)
#define TEXT_HEIGHT (GLYPH_H * FONT_SCALE)

static size_t text_width(const char *s)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; n++) next_code_point(&p);
    return n ? n * GLYPH_ADVANCE - FONT_SCALE : 0;
}

#ifdef EELSVAE_HAVE_PNG
/* Printable ASCII (0x20–0x7E) in order, then µ and Å. */
static const char font[][GLYPH_H][GLYPH_W + 1] = {
    {".....", ".....", ".....", ".....", ".....", ".....", "....."}, /*   */
    {"..#..", "..#..", "..#..", "..#..", "..#..", ".....", "..#.."}, /* ! */
    {".#.#.", ".#.#.", ".#.#.", ".....", ".....", ".....", "....."}, /* " */
    {".#.#.", ".#.#.", "#####", ".#.#.", "#####", ".#.#.", ".#.#."}, /* # */
    {"..#..", ".####", "#.#..", ".###.", "..#.#", "####.", "..#.."}, /* $ */
    {"##...", "##..#", "...#.", "..#..", ".#...", "#..##", "...##"}, /* % */
    {".##..", "#..#.", "#.#..", ".#...", "#.#.#", "#..#.", ".##.#"}, /* & */
    {"..#..", "..#..", ".#...", ".....", ".....", ".....", "....."}, /* ' */
    {"...#.", "..#..", ".#...", ".#...", ".#...", "..#..", "...#."}, /* ( */
    {".#...", "..#..", "...#.", "...#.", "...#.", "..#..", ".#..."}, /* ) */
    {".....", "..#..", "#.#.#", ".###.", "#.#.#", "..#..", "....."}, /* * */
    {".....", "..#..", "..#..", "#####", "..#..", "..#..", "....."}, /* + */
    {".....", ".....", ".....", ".....", ".##..", "..#..", ".#..."}, /* , */
    {".....", ".....", ".....", "#####", ".....", ".....", "....."}, /* - */
    {".....", ".....", ".....", ".....", ".....", ".##..", ".##.."}, /* . */
    {".....", "....#", "...#.", "..#..", ".#...", "#....", "....."}, /* / */
    {".###.", "#...#", "#..##", "#.#.#", "##..#", "#...#", ".###."}, /* 0 */
    {"..#..", ".##..", "..#..", "..#..", "..#..", "..#..", ".###."}, /* 1 */
    {".###.", "#...#", "....#", "...#.", "..#..", ".#...", "#####"}, /* 2 */
    {"#####", "...#.", "..#..", "...#.", "....#", "#...#", ".###."}, /* 3 */
    {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."}, /* 4 */
    {"#####", "#....", "####.", "....#", "....#", "#...#", ".###."}, /* 5 */
    {"..##.", ".#...", "#....", "####.", "#...#", "#...#", ".###."}, /* 6 */
    {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."}, /* 7 */
    {".###.", "#...#", "#...#", ".###.", "#...#", "#...#", ".###."}, /* 8 */
    {".###.", "#...#", "#...#", ".####", "....#", "...#.", ".##.."}, /* 9 */
    {".....", ".##..", ".##..", ".....", ".##..", ".##..", "....."}, /* : */
    {".....", ".##..", ".##..", ".....", ".##..", "..#..", ".#..."}, /* ; */
    {"...#.", "..#..", ".#...", "#....", ".#...", "..#..", "...#."}, /* < */
    {".....", ".....", "#####", ".....", "#####", ".....", "....."}, /* = */
    {".#...", "..#..", "...#.", "....#", "...#.", "..#..", ".#..."}, /* > */
    {".###.", "#...#", "....#", "...#.", "..#..", ".....", "..#.."}, /* ? */
    {".###.", "#...#", "....#", ".##.#", "#.#.#", "#.#.#", ".###."}, /* @ */
    {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}, /* A */
    {"####.", "#...#", "#...#", "####.", "#...#", "#...#", "####."}, /* B */
    {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."}, /* C */
    {"###..", "#..#.", "#...#", "#...#", "#...#", "#..#.", "###.."}, /* D */
    {"#####", "#....", "#....", "####.", "#....", "#....", "#####"}, /* E */
    {"#####", "#....", "#....", "####.", "#....", "#....", "#...."}, /* F */
    {".###.", "#...#", "#....", "#.###", "#...#", "#...#", ".####"}, /* G */
    {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"}, /* H */
    {".###.", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}, /* I */
    {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."}, /* J */
    {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"}, /* K */
    {"#....", "#....", "#....", "#....", "#....", "#....", "#####"}, /* L */
    {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"}, /* M */
    {"#...#", "#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#"}, /* N */
    {".###.", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}, /* O */
    {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."}, /* P */
    {".###.", "#...#", "#...#", "#...#", "#.#.#", "#..#.", ".##.#"}, /* Q */
    {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"}, /* R */
    {".####", "#....", "#....", ".###.", "....#", "....#", "####."}, /* S */
    {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}, /* T */
    {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."}, /* U */
    {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."}, /* V */
    {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "#.#.#", ".#.#."}, /* W */
    {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"}, /* X */
    {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."}, /* Y */
    {"#####", "....#", "...#.", "..#..", ".#...", "#....", "#####"}, /* Z */
    {".###.", ".#...", ".#...", ".#...", ".#...", ".#...", ".###."}, /* [ */
    {".....", "#....", ".#...", "..#..", "...#.", "....#", "....."}, /* \ */
    {".###.", "...#.", "...#.", "...#.", "...#.", "...#.", ".###."}, /* ] */
    {"..#..", ".#.#.", "#...#", ".....", ".....", ".....", "....."}, /* ^ */
    {".....", ".....", ".....", ".....", ".....", ".....", "#####"}, /* _ */
    {".#...", "..#..", "...#.", ".....", ".....", ".....", "....."}, /* ` */
    {".....", ".....", ".###.", "....#", ".####", "#...#", ".####"}, /* a */
    {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "####."}, /* b */
    {".....", ".....", ".###.", "#....", "#....", "#...#", ".###."}, /* c */
    {"....#", "....#", ".##.#", "#..##", "#...#", "#...#", ".####"}, /* d */
    {".....", ".....", ".###.", "#...#", "#####", "#....", ".###."}, /* e */
    {"..##.", ".#..#", ".#...", "###..", ".#...", ".#...", ".#..."}, /* f */
    {".....", ".####", "#...#", "#...#", ".####", "....#", ".###."}, /* g */
    {"#....", "#....", "#.##.", "##..#", "#...#", "#...#", "#...#"}, /* h */
    {"..#..", ".....", ".##..", "..#..", "..#..", "..#..", ".###."}, /* i */
    {"...#.", ".....", "..##.", "...#.", "...#.", "#..#.", ".##.."}, /* j */
    {"#....", "#....", "#..#.", "#.#..", "##...", "#.#..", "#..#."}, /* k */
    {".##..", "..#..", "..#..", "..#..", "..#..", "..#..", ".###."}, /* l */
    {".....", ".....", "##.#.", "#.#.#", "#.#.#", "#...#", "#...#"}, /* m */
    {".....", ".....", "#.##.", "##..#", "#...#", "#...#", "#...#"}, /* n */
    {".....", ".....", ".###.", "#...#", "#...#", "#...#", ".###."}, /* o */
    {".....", ".....", "####.", "#...#", "####.", "#....", "#...."}, /* p */
    {".....", ".....", ".##.#", "#..##", ".####", "....#", "....#"}, /* q */
    {".....", ".....", "#.##.", "##..#", "#....", "#....", "#...."}, /* r */
    {".....", ".....", ".###.", "#....", ".###.", "....#", "####."}, /* s */
    {".#...", ".#...", "###..", ".#...", ".#...", ".#..#", "..##."}, /* t */
    {".....", ".....", "#...#", "#...#", "#...#", "#..##", ".##.#"}, /* u */
    {".....", ".....", "#...#", "#...#", "#...#", ".#.#.", "..#.."}, /* v */
    {".....", ".....", "#...#", "#...#", "#.#.#", "#.#.#", ".#.#."}, /* w */
    {".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"}, /* x */
    {".....", ".....", "#...#", "#...#", ".####", "....#", ".###."}, /* y */
    {".....", ".....", "#####", "...#.", "..#..", ".#...", "#####"}, /* z */
    {"...#.", "..#..", "..#..", ".#...", "..#..", "..#..", "...#."}, /* { */
    {"..#..", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."}, /* | */
    {".#...", "..#..", "..#..", "...#.", "..#..", "..#..", ".#..."}, /* } */
    {".....", ".....", ".#...", "#.#.#", "...#.", ".....", "....."}, /* ~ */
    {".....", ".....", "#...#", "#...#", "#..##", "###.#", "#...."}, /* µ */
    {"..#..", ".#.#.", "..#..", ".###.", "#...#", "#####", "#...#"}, /* Å */
};

static size_t glyph_index(unsigned cp)
{
    if (cp >= 0x20 && cp < 0x7F) return cp - 0x20;
    if (cp == 0xB5 || cp == 0x3BC) return 0x7F - 0x20;      /* micro sign, Greek mu */
    if (cp == 0xC5 || cp == 0x212B) return 0x7F - 0x20 + 1; /* Å, the angstrom sign */
    return '?' - 0x20;
}

typedef struct canvas {
    uint8_t *rgb;
    size_t w, h;
} canvas;

static void fill_rect(canvas *c, size_t x, size_t y, size_t w, size_t h, const uint8_t rgb[3])
{
    for (size_t j = y; j < y + h && j < c->h; j++)
        for (size_t i = x; i < x + w && i < c->w; i++) memcpy(c->rgb + 3 * (j * c->w + i), rgb, 3);
}

/* Text with its top-left corner at (x, y); clipped to the canvas. */
static void draw_text(canvas *c, long x, long y, const char *s, const uint8_t rgb[3])
{
    for (const unsigned char *p = (const unsigned char *)s; *p; x += GLYPH_ADVANCE) {
        const char(*g)[GLYPH_W + 1] = font[glyph_index(next_code_point(&p))];
        for (int r = 0; r < GLYPH_H; r++)
            for (int k = 0; k < GLYPH_W; k++) {
                if (g[r][k] != '#') continue;
                long px = x + k * FONT_SCALE, py = y + r * FONT_SCALE;
                if (px < 0 || py < 0) continue;
                fill_rect(c, (size_t)px, (size_t)py, FONT_SCALE, FONT_SCALE, rgb);
            }
    }
}

#endif

static size_t div_up(size_t a, size_t b)
{
    return a / b + (a % b != 0);
}

cli_map_geometry cli_map_png_geometry(size_t ny, size_t nx, const char *label)
{
    cli_map_geometry g = {0};
    if (ny == 0 || nx == 0) return g;
    size_t longest = ny > nx ? ny : nx;
    g.zoom = g.shrink = 1;
    if (longest > MAP_MAX_SIDE) {
        g.shrink = div_up(longest, MAP_MAX_SIDE);
    } else {
        g.zoom = div_up(MAP_MIN_WIDTH, nx);
        if (g.zoom > MAP_MAX_SIDE / longest) g.zoom = MAP_MAX_SIDE / longest;
        if (g.zoom < 1) g.zoom = 1;
    }
    g.map_w = div_up(nx, g.shrink) * g.zoom;
    g.map_h = div_up(ny, g.shrink) * g.zoom;
    size_t bar_h = g.map_h > BAR_MIN_HEIGHT ? g.map_h : BAR_MIN_HEIGHT;
    size_t caption_w = label ? text_width(label) : 0;
    size_t top = MAP_MARGIN + (caption_w ? TEXT_HEIGHT + CAPTION_GAP : 0);
    g.map_x = MAP_MARGIN;
    g.map_y = top + (bar_h - g.map_h) / 2;
    /* the tick labels get room for any %.3g, whatever lo and hi are */
    size_t right = BAR_WIDTH + TICK_LENGTH + TICK_GAP + TICK_CHARS * GLYPH_ADVANCE;
    if (caption_w > right) right = caption_w;
    g.width = MAP_MARGIN + g.map_w + BAR_GAP + right + MAP_MARGIN;
    g.height = top + bar_h + MAP_MARGIN;
    return g;
}

int cli_write_map_png(const char *path, const float *map, const uint8_t *mask, size_t ny, size_t nx, double lo,
                      double hi, const char *label)
{
#ifndef EELSVAE_HAVE_PNG
    (void)path, (void)map, (void)mask, (void)ny, (void)nx, (void)lo, (void)hi, (void)label;
    return -1;
#else
    if (ny == 0 || nx == 0) cli_fail("cannot write %s: the map is empty (%zu × %zu)", path, ny, nx);
    /* the colour range: non-finite ends from the map's finite values */
    if (!isfinite(lo) || !isfinite(hi)) {
        double mn = INFINITY, mx = -INFINITY;
        for (size_t i = 0; i < ny * nx; i++)
            if (isfinite(map[i])) {
                if (map[i] < mn) mn = map[i];
                if (map[i] > mx) mx = map[i];
            }
        if (!isfinite(lo)) lo = mn;
        if (!isfinite(hi)) hi = mx;
        if (!isfinite(lo)) lo = isfinite(hi) ? hi - 1 : 0;
        if (!isfinite(hi)) hi = lo + 1;
    }
    if (!(hi > lo)) hi = lo + 1;
    double span = hi - lo;

    cli_map_geometry g = cli_map_png_geometry(ny, nx, label);
    size_t cy = div_up(ny, g.shrink), cx = div_up(nx, g.shrink); /* cells: map pixels or their averages */
    float *cell = malloc(cy * cx * sizeof *cell);
    uint8_t *flag = mask ? calloc(cy * cx, 1) : NULL;
    canvas c = {malloc(g.width * g.height * 3), g.width, g.height};
    if (!cell || (mask && !flag) || !c.rgb) cli_fail("out of memory");
    for (size_t i = 0; i < cy; i++)
        for (size_t j = 0; j < cx; j++) {
            double sum = 0;
            size_t n = 0;
            for (size_t y = i * g.shrink; y < (i + 1) * g.shrink && y < ny; y++)
                for (size_t x = j * g.shrink; x < (j + 1) * g.shrink && x < nx; x++) {
                    float v = map[y * nx + x];
                    if (!isnan(v)) sum += v, n++;
                    if (mask && mask[y * nx + x]) flag[i * cx + j] = 1;
                }
            cell[i * cx + j] = n ? (float)(sum / (double)n) : NAN;
        }

    static const uint8_t white[3] = {255, 255, 255}, black[3] = {0, 0, 0}, frame[3] = {64, 64, 64};
    static const uint8_t nan_rgb[3] = CLI_MAP_NAN_RGB, outline[3] = CLI_MAP_OUTLINE_RGB;
    fill_rect(&c, 0, 0, c.w, c.h, white);

    /* the map */
    for (size_t i = 0; i < cy; i++)
        for (size_t j = 0; j < cx; j++) {
            uint8_t rgb[3];
            float v = cell[i * cx + j];
            if (isnan(v)) memcpy(rgb, nan_rgb, 3);
            else cli_viridis((v - lo) / span, rgb);
            fill_rect(&c, g.map_x + j * g.zoom, g.map_y + i * g.zoom, g.zoom, g.zoom, rgb);
        }
    /* outlines: a flagged pixel of the PNG next to (8-neighbourhood) an
     * unflagged one or the border */
    if (flag)
        for (size_t py = 0; py < g.map_h; py++)
            for (size_t px = 0; px < g.map_w; px++) {
                if (!flag[(py / g.zoom) * cx + px / g.zoom]) continue;
                int edge = py == 0 || px == 0 || py + 1 == g.map_h || px + 1 == g.map_w;
                for (int dy = -1; dy <= 1 && !edge; dy++)
                    for (int dx = -1; dx <= 1 && !edge; dx++) {
                        size_t qy = py + (size_t)(long)dy, qx = px + (size_t)(long)dx;
                        if (!flag[(qy / g.zoom) * cx + qx / g.zoom]) edge = 1;
                    }
                if (edge) memcpy(c.rgb + 3 * ((g.map_y + py) * c.w + g.map_x + px), outline, 3);
            }

    /* the colour bar, high values on top, framed, with three ticks */
    size_t bar_x = g.map_x + g.map_w + BAR_GAP, bar_h = g.map_h > BAR_MIN_HEIGHT ? g.map_h : BAR_MIN_HEIGHT;
    size_t top = g.height - MAP_MARGIN - bar_h;
    fill_rect(&c, bar_x - 1, top - 1, BAR_WIDTH + 2, bar_h + 2, frame);
    for (size_t r = 0; r < bar_h; r++) {
        uint8_t rgb[3];
        cli_viridis(bar_h > 1 ? (double)(bar_h - 1 - r) / (double)(bar_h - 1) : 1.0, rgb);
        fill_rect(&c, bar_x, top + r, BAR_WIDTH, 1, rgb);
    }
    const size_t tick_rows[3] = {top, top + (bar_h - 1) / 2, top + bar_h - 1};
    const double tick_values[3] = {hi, lo + 0.5 * span, lo};
    for (int k = 0; k < 3; k++) {
        char text[32];
        snprintf(text, sizeof text, "%.3g", tick_values[k]);
        fill_rect(&c, bar_x + BAR_WIDTH + 1, tick_rows[k], TICK_LENGTH - 1, 1, black);
        draw_text(&c, (long)(bar_x + BAR_WIDTH + TICK_LENGTH + TICK_GAP), (long)tick_rows[k] - TEXT_HEIGHT / 2, text,
                  black);
    }
    if (label && *label) draw_text(&c, (long)bar_x, (long)(top - CAPTION_GAP - TEXT_HEIGHT), label, black);

    int rc = cli_write_png(path, c.rgb, c.w, c.h);
    free(c.rgb);
    free(cell);
    free(flag);
    return rc;
#endif
}
