/* Score maps as image files that people open in their own tools: a 32-bit
 * float TIFF with the pixel size (ImageJ / Fiji, DigitalMicrograph, Python's
 * tifffile) and a PNG heatmap to look at (viridis, colour bar, flagged
 * pixels outlined). Program helpers, not part of the library: libtiff and
 * libpng are optional dependencies of the example programs only. */
#ifndef EELSVAE_EXAMPLES_IMAGE_H
#define EELSVAE_EXAMPLES_IMAGE_H

#include <stddef.h>
#include <stdint.h>

/* An ny × nx float map (row-major, y then x) as a single-page 32-bit float
 * TIFF: SampleFormat IEEE float, one sample, uncompressed, written to a
 * temporary beside `path` and renamed.
 *
 * The pixel size is written so that ImageJ reads it: XResolution = 1/scale_x
 * and YResolution = 1/scale_y pixels per unit (good to float precision,
 * ~1e-7 relative: libtiff keeps them as float), ResolutionUnit NONE, and the
 * ImageDescription "ImageJ=1.11a\nunit=UNITS\n", where µm is written
 * "micron" (ImageJ's convention), other units as given (characters outside
 * ASCII as Java \uXXXX escapes, which ImageJ decodes), no unit line when
 * `units` is NULL or empty. Scales are taken as absolute values and must be
 * finite and non-zero.
 *
 * `description` (provenance; may be NULL or hold several lines) becomes
 * ImageJ's "Info" property, which Image › Show Info displays: the "info"
 * entry of the IJMetadata tags (50838/50839), where ImageJ itself saves it.
 * (An "info=" line in the ImageDescription would only reach ImageJ's
 * calibration record, which no dialog shows.) tifffile reads it as
 * TiffFile.imagej_metadata["Info"].
 *
 * Returns 0; or -1 after a message on stderr naming the path and the reason
 * (cannot create, cannot write, invalid scale), the temporary removed; or -1
 * with a message when built without libtiff. */
int cli_write_tiff(const char *path, const float *map, size_t ny, size_t nx, double scale_y, double scale_x,
                   const char *units, const char *description);

/* Where cli_write_map_png() draws the map inside the PNG. */
typedef struct cli_map_geometry {
    size_t width, height; /* the whole PNG */
    size_t map_x, map_y;  /* top-left corner of the map */
    size_t map_w, map_h;  /* the map's size in PNG pixels */
    size_t zoom;          /* PNG pixels per map pixel, each way (1 when shrunk) */
    size_t shrink;        /* map pixels per PNG pixel, each way (1 when zoomed) */
} cli_map_geometry;

/* The geometry cli_write_map_png() uses for a map of this size and label
 * (it does not depend on the values). */
cli_map_geometry cli_map_png_geometry(size_t ny, size_t nx, const char *label);

/* The colour of the outline around flagged pixels, and of NaN pixels. */
#define CLI_MAP_OUTLINE_RGB {255, 0, 0}
#define CLI_MAP_NAN_RGB {128, 128, 128}

/* The ny × nx score map as a PNG a person can read at any scan size.
 *
 * Each map pixel is a square of an integer zoom, the smallest that makes the
 * map at least 480 px wide, lowered so its longer side stays within 1600 px
 * (a 6 × 49 line scan at zoom 10, 192 × 192 at 3, 1024 × 1024 at 1); a map
 * longer than 1600 pixels is averaged down by an integer factor instead (NaN
 * values left out of the averages). Values lo…hi on viridis (cli_viridis;
 * non-finite lo or hi: the finite range of the map), NaN pixels grey. A
 * vertical colour bar on the right carries tick labels at lo, the middle
 * and hi (printf %.3g) and, above it, `label` (e.g. "PCC"; NULL: none) in a
 * built-in 5 × 7 font drawn at 2× (printable ASCII, µ and Å; other
 * characters show as '?').
 *
 * With `mask` (ny × nx, non-zero = flagged; NULL: none), every flagged
 * region is outlined: a 1-px red line on the flagged side of each edge
 * between a flagged and an unflagged pixel, and along the map's border, so
 * flagged regions show as outlined islands while the inside of each flagged
 * pixel's square keeps its viridis colour (at zoom ≥ 3). When the map is
 * averaged down, a PNG pixel is flagged when any of its map pixels is.
 *
 * Written to a temporary and renamed (cli_write_png). Returns 0, or -1 when
 * built without libpng. */
int cli_write_map_png(const char *path, const float *map, const uint8_t *mask, size_t ny, size_t nx, double lo,
                      double hi, const char *label);

#endif
