/* Figures for the example programs, drawn by hand: raster maps (PNG through
 * cli_write_png, with circles and colour bars) and SVG line plots, histograms
 * and labelled image panels. No plotting library. Not part of the library. */
#ifndef EELSVAE_EXAMPLES_FIGURES_H
#define EELSVAE_EXAMPLES_FIGURES_H

#include <stddef.h>
#include <stdint.h>

/* Colour maps over t in [0, 1]. */
typedef enum fig_cmap {
    FIG_CMAP_VIRIDIS = 0,   /* dark blue → yellow */
    FIG_CMAP_GREY_INV = 1,  /* white (t = 0) → black (t = 1): low PCC shows light */
    FIG_CMAP_DIVERGING = 2  /* blue (t = 0) → white (½) → red (t = 1) */
} fig_cmap;

void fig_colour(fig_cmap cmap, double t, uint8_t rgb[3]);

/* A colour bar drawn into a raster map sits FIG_BAR_GAP pixels right of the
 * map and is FIG_BAR_WIDTH wide, as tall as the map, high values on top. */
#define FIG_BAR_GAP 10
#define FIG_BAR_WIDTH 18

typedef struct fig_image {
    size_t w, h;   /* whole image, pixels */
    size_t map_w;  /* width of the map part (the rest is the colour bar) */
    int zoom;      /* image pixels per map pixel */
    uint8_t *rgb;  /* w·h·3 */
} fig_image;

/* An ny × nx map, each value drawn zoom × zoom, lo…hi over the colour map;
 * with_bar adds the colour bar on the right (white background). */
fig_image fig_image_map(const float *map, size_t ny, size_t nx, double lo, double hi, fig_cmap cmap, int zoom,
                        int with_bar);
/* A ring of the given thickness (image pixels) around map coordinates
 * (cy, cx) with radius r in map pixels. */
void fig_image_circle(fig_image *im, double cy, double cx, double r, double thickness, const uint8_t rgb[3]);
/* A vertical line at map column x (between columns x−1 and x). */
void fig_image_vline(fig_image *im, size_t x, int width, const uint8_t rgb[3]);
/* Write as PNG; returns 0, or −1 when built without libpng. */
int fig_image_save(const fig_image *im, const char *path);
void fig_image_free(fig_image *im);

/* An SVG panel showing a PNG written by fig_image_save, with a title, axis
 * labels in map pixels and, when the PNG has one, tick labels on its bar. */
typedef struct fig_panel {
    const char *png;       /* path of the PNG, embedded in the SVG */
    const fig_image *image;/* its geometry */
    size_t ny, nx;         /* map size in map pixels */
    const char *title;
    const char *xlabel, *ylabel; /* NULL: "x (pixel)", "y (pixel)" */
    const char *bar_label; /* NULL: the image has no colour bar */
    double lo, hi;         /* colour bar range */
} fig_panel;

/* Several panels side by side in one SVG, under an overall title. */
void fig_svg_panels(const char *path, const char *title, const fig_panel *panels, size_t n);

/* One curve of a plot. */
typedef struct fig_series {
    const char *label;  /* legend text (NULL: not in the legend) */
    const char *colour; /* SVG colour */
    const double *x, *y;
    size_t n;
    int dashed;
    int markers;        /* draw a dot at each point */
} fig_series;

/* A vertical line with a label (e.g. a mean). */
typedef struct fig_mark {
    double x;
    const char *colour;
    const char *label;
} fig_mark;

typedef enum fig_legend { FIG_LEGEND_LOWER_LEFT, FIG_LEGEND_LOWER_RIGHT, FIG_LEGEND_UPPER_LEFT, FIG_LEGEND_UPPER_RIGHT } fig_legend;

/* One set of axes. NaN limits are taken from the data; y values ≤ 0 on a
 * log axis are drawn at its floor; NaN points break the line. */
typedef struct fig_plot {
    const char *title, *xlabel, *ylabel;
    double xmin, xmax, ymin, ymax;
    int logy;
    const fig_series *series;
    size_t n_series;
    const fig_mark *marks;
    size_t n_marks;
    double band_lo, band_hi; /* shaded x range (NaN: none) */
    const char *band_label;
    fig_legend legend;
} fig_plot;

/* A grid of plots, `columns` wide, each panel_w × panel_h pixels. */
void fig_svg_plots(const char *path, const char *title, const fig_plot *plots, size_t n, size_t columns,
                   double panel_w, double panel_h);

/* Plots stacked in one column `width` pixels wide, plot i heights[i] tall
 * (a main panel above a shorter one for its residual, say). */
void fig_svg_plot_column(const char *path, const char *title, const fig_plot *plots, const double *heights, size_t n,
                         double width);

/* A fig_plot with every field neutral (NaN limits, no band, legend upper right). */
fig_plot fig_plot_init(const char *title, const char *xlabel, const char *ylabel);

/* Step-curve points of a histogram of `bins` equal bins over [lo, hi]:
 * fills x and y (2·bins values each). */
void fig_histogram_steps(const uint64_t *counts, size_t bins, double lo, double hi, double *x, double *y);

#endif
