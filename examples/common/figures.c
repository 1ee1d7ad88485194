#include "figures.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ---------- colour maps ---------- */

static double clamp01(double t)
{
    if (!(t > 0)) return 0;
    return t > 1 ? 1 : t;
}

static void lerp_rgb(const uint8_t a[3], const uint8_t b[3], double w, uint8_t out[3])
{
    for (int c = 0; c < 3; c++) out[c] = (uint8_t)lround(a[c] * (1 - w) + b[c] * w);
}

void fig_colour(fig_cmap cmap, double t, uint8_t rgb[3])
{
    t = clamp01(t);
    if (cmap == FIG_CMAP_VIRIDIS) {
        cli_viridis(t, rgb);
    } else if (cmap == FIG_CMAP_GREY_INV) {
        uint8_t v = (uint8_t)lround(255 * (1 - t));
        rgb[0] = rgb[1] = rgb[2] = v;
    } else {
        /* RdBu-like: blue, white, red; five anchors keep the ends saturated. */
        static const uint8_t lut[5][3] = {{33, 102, 172}, {146, 197, 222}, {247, 247, 247}, {244, 165, 130}, {178, 24, 43}};
        double f = t * 4;
        int i = (int)f;
        if (i > 3) i = 3;
        lerp_rgb(lut[i], lut[i + 1], f - i, rgb);
    }
}

/* ---------- raster images ---------- */

fig_image fig_image_map(const float *map, size_t ny, size_t nx, double lo, double hi, fig_cmap cmap, int zoom,
                        int with_bar)
{
    fig_image im = {0};
    im.zoom = zoom;
    im.map_w = nx * (size_t)zoom;
    im.h = ny * (size_t)zoom;
    im.w = im.map_w + (with_bar ? FIG_BAR_GAP + FIG_BAR_WIDTH : 0);
    im.rgb = malloc(im.w * im.h * 3);
    if (!im.rgb) cli_fail("out of memory");
    memset(im.rgb, 255, im.w * im.h * 3);
    double span = hi > lo ? hi - lo : 1.0;
    for (size_t y = 0; y < im.h; y++)
        for (size_t x = 0; x < im.map_w; x++)
            fig_colour(cmap, (map[(y / zoom) * nx + x / zoom] - lo) / span, im.rgb + 3 * (y * im.w + x));
    if (!with_bar) return im;
    for (size_t y = 0; y < im.h; y++) {
        uint8_t c[3];
        fig_colour(cmap, 1.0 - (double)y / (double)(im.h > 1 ? im.h - 1 : 1), c);
        for (size_t x = im.map_w + FIG_BAR_GAP; x < im.w; x++) memcpy(im.rgb + 3 * (y * im.w + x), c, 3);
    }
    return im;
}

void fig_image_circle(fig_image *im, double cy, double cx, double r, double thickness, const uint8_t rgb[3])
{
    /* In image pixels, centred on the map pixel's centre. */
    double z = im->zoom, py = (cy + 0.5) * z, px = (cx + 0.5) * z, pr = (r + 0.5) * z;
    double reach = pr + thickness;
    size_t y0 = py - reach > 0 ? (size_t)(py - reach) : 0, x0 = px - reach > 0 ? (size_t)(px - reach) : 0;
    for (size_t y = y0; y < im->h && y <= py + reach; y++) {
        for (size_t x = x0; x < im->map_w && x <= px + reach; x++) {
            double d = hypot(y + 0.5 - py, x + 0.5 - px);
            if (fabs(d - pr) <= thickness / 2) memcpy(im->rgb + 3 * (y * im->w + x), rgb, 3);
        }
    }
}

void fig_image_vline(fig_image *im, size_t x, int width, const uint8_t rgb[3])
{
    size_t px = x * (size_t)im->zoom;
    for (size_t y = 0; y < im->h; y++)
        for (int k = -width / 2; k < width - width / 2; k++) {
            long col = (long)px + k;
            if (col >= 0 && (size_t)col < im->map_w) memcpy(im->rgb + 3 * (y * im->w + (size_t)col), rgb, 3);
        }
}

int fig_image_save(const fig_image *im, const char *path)
{
    return cli_write_png(path, im->rgb, im->w, im->h);
}

void fig_image_free(fig_image *im)
{
    free(im->rgb);
    im->rgb = NULL;
}

/* ---------- SVG basics ---------- */

#define FONT "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""

static void svg_begin(cli_text *t, double w, double h, const char *title)
{
    cli_text_printf(t,
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" "
                    "width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" " FONT " font-size=\"13\">\n"
                    "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                    w, h, w, h);
    if (title)
        cli_text_printf(t, "<text x=\"%.1f\" y=\"22\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">%s</text>\n",
                        w / 2, title);
}

static void svg_end(cli_text *t, const char *path)
{
    cli_text_printf(t, "</svg>\n");
    cli_write_text(path, t->s);
    cli_text_free(t);
}

static void svg_text(cli_text *t, double x, double y, const char *anchor, const char *extra, const char *text)
{
    cli_text_printf(t, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" %s>%s</text>\n", x, y, anchor, extra ? extra : "",
                    text);
}

/* A step of 1, 2 or 5 × 10^k giving about `target` intervals over span. */
static double nice_step(double span, int target)
{
    double raw = span / target, mag = pow(10, floor(log10(raw))), f = raw / mag;
    double step = f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10;
    return step * mag;
}

static void format_tick(char *buf, size_t size, double v, double step)
{
    if (fabs(v) < step * 1e-9) v = 0;
    int decimals = step >= 1 ? 0 : (int)ceil(-log10(step) - 1e-9);
    snprintf(buf, size, "%.*f", decimals, v);
}

/* ---------- labelled image panels ---------- */

static void panel_bar_ticks(cli_text *t, const fig_panel *p, double ox, double oy)
{
    const fig_image *im = p->image;
    double bx = ox + (double)im->map_w + FIG_BAR_GAP + FIG_BAR_WIDTH, h = (double)im->h;
    double step = nice_step(p->hi - p->lo, 4), first = ceil(p->lo / step - 1e-9) * step;
    for (double v = first; v <= p->hi + step * 1e-9; v += step) {
        double y = oy + h * (1 - (v - p->lo) / (p->hi - p->lo));
        char buf[32];
        format_tick(buf, sizeof buf, v, step);
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", bx, y, bx + 4, y);
        svg_text(t, bx + 6, y + 4, "start", "font-size=\"11\"", buf);
    }
    char rot[128];
    snprintf(rot, sizeof rot, "transform=\"rotate(90 %.1f %.1f)\"", bx + 46, oy + h / 2);
    svg_text(t, bx + 46, oy + h / 2, "middle", rot, p->bar_label);
}

static void panel_axes(cli_text *t, const fig_panel *p, double ox, double oy)
{
    const fig_image *im = p->image;
    double w = (double)im->map_w, h = (double)im->h, zoom = im->zoom;
    cli_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", ox,
                    oy, w, h);
    double step = nice_step((double)p->nx, 4);
    for (double v = 0; v <= (double)p->nx + 1e-9; v += step) {
        char buf[32];
        format_tick(buf, sizeof buf, v, step);
        double x = ox + v * zoom;
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", x, oy + h, x, oy + h + 4);
        svg_text(t, x, oy + h + 16, "middle", "font-size=\"11\"", buf);
    }
    step = nice_step((double)p->ny, 4);
    for (double v = 0; v <= (double)p->ny + 1e-9; v += step) {
        char buf[32];
        format_tick(buf, sizeof buf, v, step);
        double y = oy + v * zoom;
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"black\"/>\n", ox - 4, y, ox, y);
        svg_text(t, ox - 6, y + 4, "end", "font-size=\"11\"", buf);
    }
    svg_text(t, ox + w / 2, oy + h + 32, "middle", NULL, p->xlabel ? p->xlabel : "x (pixel)");
    char rot[128];
    snprintf(rot, sizeof rot, "transform=\"rotate(-90 %.1f %.1f)\"", ox - 36, oy + h / 2);
    svg_text(t, ox - 36, oy + h / 2, "middle", rot, p->ylabel ? p->ylabel : "y (pixel)");
    svg_text(t, ox + w / 2, oy - 8, "middle", "font-weight=\"bold\"", p->title);
}

/* The PNG goes inside the SVG as a data URI: an SVG shown through <img>
 * may not load files it refers to, and then the figure would be blank. */
static void append_base64_file(cli_text *t, const char *path)
{
    static const char digits[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    FILE *fp = fopen(path, "rb");
    if (!fp) return; /* built without libpng: the panel stays empty */
    unsigned char in[3];
    size_t n;
    while ((n = fread(in, 1, 3, fp)) > 0) {
        if (n < 3) memset(in + n, 0, 3 - n);
        char out[5] = {digits[in[0] >> 2], digits[((in[0] & 3) << 4) | (in[1] >> 4)],
                       n > 1 ? digits[((in[1] & 15) << 2) | (in[2] >> 6)] : '=', n > 2 ? digits[in[2] & 63] : '=', 0};
        cli_text_printf(t, "%s", out);
    }
    fclose(fp);
}

void fig_svg_panels(const char *path, const char *title, const fig_panel *panels, size_t n)
{
    const double left = 60, top = 60, gap = 130, bottom = 48;
    double w = left, h = 0;
    for (size_t i = 0; i < n; i++) {
        w += (double)panels[i].image->w + gap;
        if ((double)panels[i].image->h > h) h = (double)panels[i].image->h;
    }
    /* Wide enough for the title (about 9 px a character at 16 px bold). */
    double title_w = title ? 9.5 * (double)strlen(title) + 40 : 0, pad = title_w > w ? (title_w - w) / 2 : 0;
    cli_text t = {0};
    svg_begin(&t, w + 2 * pad, top + h + bottom, title);
    double ox = left + pad;
    for (size_t i = 0; i < n; i++) {
        const fig_panel *p = &panels[i];
        cli_text_printf(&t, "<image x=\"%.1f\" y=\"%.1f\" width=\"%zu\" height=\"%zu\" "
                            "style=\"image-rendering:pixelated\" xlink:href=\"data:image/png;base64,",
                        ox, top, p->image->w, p->image->h);
        append_base64_file(&t, p->png);
        cli_text_printf(&t, "\"/>\n");
        panel_axes(&t, p, ox, top);
        if (p->bar_label) panel_bar_ticks(&t, p, ox, top);
        ox += (double)p->image->w + gap;
    }
    svg_end(&t, path);
}

/* ---------- line plots ---------- */

typedef struct frame {
    double x, y, w, h; /* plotting area in SVG pixels */
    double xmin, xmax, ymin, ymax;
    int logy;
} frame;

static double fx(const frame *f, double v)
{
    return f->x + f->w * (v - f->xmin) / (f->xmax - f->xmin);
}

static double fy(const frame *f, double v)
{
    if (f->logy) {
        double lv = log10(v > f->ymin ? v : f->ymin);
        return f->y + f->h * (1 - (lv - log10(f->ymin)) / (log10(f->ymax) - log10(f->ymin)));
    }
    return f->y + f->h * (1 - (v - f->ymin) / (f->ymax - f->ymin));
}

/* Fill NaN limits from the data, with a little margin on linear axes. */
static void data_limits(const fig_plot *p, frame *f)
{
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (size_t s = 0; s < p->n_series; s++)
        for (size_t i = 0; i < p->series[s].n; i++) {
            double x = p->series[s].x[i], y = p->series[s].y[i];
            if (isnan(x) || isnan(y)) continue;
            x0 = fmin(x0, x), x1 = fmax(x1, x);
            if (!p->logy || y > 0) y0 = fmin(y0, y), y1 = fmax(y1, y);
        }
    if (!isfinite(x0)) x0 = 0, x1 = 1;
    if (!isfinite(y0)) y0 = p->logy ? 1 : 0, y1 = p->logy ? 10 : 1;
    if (x1 <= x0) x0 -= 0.5, x1 += 0.5;
    if (y1 <= y0) y0 = p->logy ? y0 / 2 : y0 - 0.5, y1 = p->logy ? y1 * 2 : y1 + 0.5;
    /* A margin keeps the end markers inside the frame. */
    f->xmin = isnan(p->xmin) ? x0 - 0.03 * (x1 - x0) : p->xmin;
    f->xmax = isnan(p->xmax) ? x1 + 0.03 * (x1 - x0) : p->xmax;
    f->ymin = isnan(p->ymin) ? (p->logy ? pow(10, floor(log10(y0))) : y0 - 0.05 * (y1 - y0)) : p->ymin;
    f->ymax = isnan(p->ymax) ? (p->logy ? pow(10, ceil(log10(y1 * 1.5))) : y1 + 0.05 * (y1 - y0)) : p->ymax;
    f->logy = p->logy;
}

static void plot_grid_x(cli_text *t, const frame *f)
{
    double step = nice_step(f->xmax - f->xmin, 6);
    for (double v = ceil(f->xmin / step - 1e-9) * step; v <= f->xmax + step * 1e-9; v += step) {
        double x = fx(f, v);
        char buf[32];
        format_tick(buf, sizeof buf, v, step);
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x, f->y, x,
                        f->y + f->h);
        svg_text(t, x, f->y + f->h + 16, "middle", "font-size=\"11\"", buf);
    }
}

static void plot_grid_y(cli_text *t, const frame *f)
{
    if (f->logy) {
        for (double e = ceil(log10(f->ymin) - 1e-9); e <= log10(f->ymax) + 1e-9; e += 1) {
            double y = fy(f, pow(10, e));
            char buf[32];
            snprintf(buf, sizeof buf, "%.0f", pow(10, e));
            cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", f->x, y,
                            f->x + f->w, y);
            svg_text(t, f->x - 6, y + 4, "end", "font-size=\"11\"", buf);
        }
        return;
    }
    double step = nice_step(f->ymax - f->ymin, 5);
    for (double v = ceil(f->ymin / step - 1e-9) * step; v <= f->ymax + step * 1e-9; v += step) {
        double y = fy(f, v);
        char buf[32];
        format_tick(buf, sizeof buf, v, step);
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", f->x, y,
                        f->x + f->w, y);
        svg_text(t, f->x - 6, y + 4, "end", "font-size=\"11\"", buf);
    }
}

static void plot_series(cli_text *t, const frame *f, const fig_series *s)
{
    const char *dash = s->dashed ? " stroke-dasharray=\"6 4\"" : "";
    int open = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (isnan(s->x[i]) || isnan(s->y[i])) {
            if (open) cli_text_printf(t, "\"/>\n");
            open = 0;
            continue;
        }
        if (!open) cli_text_printf(t, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", s->colour, dash);
        cli_text_printf(t, "%.1f,%.1f ", fx(f, s->x[i]), fy(f, s->y[i]));
        open = 1;
    }
    if (open) cli_text_printf(t, "\"/>\n");
    if (!s->markers) return;
    for (size_t i = 0; i < s->n; i++)
        if (!isnan(s->x[i]) && !isnan(s->y[i]))
            cli_text_printf(t, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"/>\n", fx(f, s->x[i]), fy(f, s->y[i]),
                            s->colour);
}

static void plot_marks(cli_text *t, const frame *f, const fig_plot *p)
{
    for (size_t i = 0; i < p->n_marks; i++) {
        const fig_mark *m = &p->marks[i];
        if (isnan(m->x) || m->x < f->xmin || m->x > f->xmax) continue;
        double x = fx(f, m->x);
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" "
                           "stroke-dasharray=\"3 3\"/>\n",
                        x, f->y, x, f->y + f->h, m->colour);
        char style[64];
        snprintf(style, sizeof style, "font-size=\"11\" fill=\"%s\"", m->colour);
        svg_text(t, x + 3, f->y + 14 + 13.0 * (double)i, "start", style, m->label);
    }
}

/* Characters (not bytes) of a UTF-8 string: "…" and "σ" are one each. */
static size_t utf8_length(const char *s)
{
    size_t n = 0;
    for (; *s; s++) n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static void plot_legend(cli_text *t, const frame *f, const fig_plot *p)
{
    size_t rows = 0, longest = 0;
    for (size_t s = 0; s < p->n_series; s++) {
        if (!p->series[s].label) continue;
        rows++;
        size_t len = utf8_length(p->series[s].label);
        if (len > longest) longest = len;
    }
    if (p->band_label) {
        rows++;
        size_t len = utf8_length(p->band_label);
        if (len > longest) longest = len;
    }
    if (!rows) return;
    /* 150 px holds the benchmark's labels; longer ones widen the box (about 7 px a character at 12 px). */
    double lw = fmax(150, 48 + 7.0 * (double)longest), lh = 18.0 * (double)rows + 8;
    int right = p->legend == FIG_LEGEND_LOWER_RIGHT || p->legend == FIG_LEGEND_UPPER_RIGHT;
    int upper = p->legend == FIG_LEGEND_UPPER_LEFT || p->legend == FIG_LEGEND_UPPER_RIGHT;
    double x = right ? f->x + f->w - lw - 8 : f->x + 8, y = upper ? f->y + 8 : f->y + f->h - lh - 8;
    cli_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"white\" fill-opacity=\"0.85\" "
                       "stroke=\"#999\"/>\n",
                    x, y, lw, lh);
    double row = y + 17;
    for (size_t s = 0; s < p->n_series; s++) {
        const fig_series *se = &p->series[s];
        if (!se->label) continue;
        cli_text_printf(t, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"%s/>\n",
                        x + 8, row - 4, x + 34, row - 4, se->colour, se->dashed ? " stroke-dasharray=\"6 4\"" : "");
        svg_text(t, x + 40, row, "start", "font-size=\"12\"", se->label);
        row += 18;
    }
    if (p->band_label) {
        cli_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"26\" height=\"10\" fill=\"#fde68a\"/>\n", x + 8, row - 10);
        svg_text(t, x + 40, row, "start", "font-size=\"12\"", p->band_label);
    }
}

static void plot_one(cli_text *t, const fig_plot *p, double ox, double oy, double pw, double ph)
{
    frame f = {.x = ox + 64, .y = oy + 30, .w = pw - 84, .h = ph - 80};
    data_limits(p, &f);
    if (!isnan(p->band_lo)) {
        double a = fx(&f, fmax(p->band_lo, f.xmin)), b = fx(&f, fmin(p->band_hi, f.xmax));
        cli_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#fde68a\"/>\n", a, f.y, b - a,
                        f.h);
    }
    plot_grid_x(t, &f);
    plot_grid_y(t, &f);
    cli_text_printf(t, "<svg x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" overflow=\"hidden\" "
                       "viewBox=\"%.1f %.1f %.1f %.1f\">\n",
                    f.x, f.y, f.w, f.h, f.x, f.y, f.w, f.h);
    for (size_t s = 0; s < p->n_series; s++) plot_series(t, &f, &p->series[s]);
    cli_text_printf(t, "</svg>\n");
    cli_text_printf(t, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"black\"/>\n", f.x,
                    f.y, f.w, f.h);
    plot_marks(t, &f, p);
    plot_legend(t, &f, p);
    svg_text(t, f.x + f.w / 2, oy + 20, "middle", "font-weight=\"bold\"", p->title);
    svg_text(t, f.x + f.w / 2, f.y + f.h + 36, "middle", NULL, p->xlabel);
    char rot[128];
    snprintf(rot, sizeof rot, "transform=\"rotate(-90 %.1f %.1f)\"", ox + 16, f.y + f.h / 2);
    svg_text(t, ox + 16, f.y + f.h / 2, "middle", rot, p->ylabel);
}

void fig_svg_plots(const char *path, const char *title, const fig_plot *plots, size_t n, size_t columns,
                   double panel_w, double panel_h)
{
    size_t rows = (n + columns - 1) / columns;
    double top = title ? 34 : 0;
    cli_text t = {0};
    svg_begin(&t, panel_w * (double)columns, top + panel_h * (double)rows, title);
    for (size_t i = 0; i < n; i++)
        plot_one(&t, &plots[i], panel_w * (double)(i % columns), top + panel_h * (double)(i / columns), panel_w, panel_h);
    svg_end(&t, path);
}

void fig_svg_plot_column(const char *path, const char *title, const fig_plot *plots, const double *heights, size_t n,
                         double width)
{
    double top = title ? 34 : 0, h = top;
    for (size_t i = 0; i < n; i++) h += heights[i];
    cli_text t = {0};
    svg_begin(&t, width, h, title);
    for (size_t i = 0; i < n; i++) {
        plot_one(&t, &plots[i], 0, top, width, heights[i]);
        top += heights[i];
    }
    svg_end(&t, path);
}

fig_plot fig_plot_init(const char *title, const char *xlabel, const char *ylabel)
{
    fig_plot p = {0};
    p.title = title;
    p.xlabel = xlabel;
    p.ylabel = ylabel;
    p.xmin = p.xmax = p.ymin = p.ymax = NAN;
    p.band_lo = p.band_hi = NAN;
    p.legend = FIG_LEGEND_UPPER_RIGHT;
    return p;
}

void fig_histogram_steps(const uint64_t *counts, size_t bins, double lo, double hi, double *x, double *y)
{
    double width = (hi - lo) / (double)bins;
    for (size_t b = 0; b < bins; b++) {
        x[2 * b] = lo + width * (double)b;
        x[2 * b + 1] = lo + width * (double)(b + 1);
        y[2 * b] = y[2 * b + 1] = (double)counts[b];
    }
}
