#include "explain.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "figures.h"

static size_t explain_top; /* K of --explain, 0 without it */

void cli_set_explain(size_t top)
{
    if (top) explain_top = top;
    else if (!explain_top) explain_top = CLI_EXPLAIN_TOP_DEFAULT;
}

size_t cli_explain_top_option(const char *option, const char *text)
{
    size_t k = cli_size(option, text);
    if (k == 0) cli_usage_error("%s: K is the number of pixels to show, at least 1 (got 0)", option);
    return k;
}

size_t cli_explain_requested(void)
{
    return explain_top;
}

/* ---- the means -------------------------------------------------------------- */

/* The library's means over the window, one block of five arrays of n. */
typedef struct explain_means {
    size_t first, n; /* the window's channels */
    double *energy, *flagged, *recon, *bulk, *residual;
} explain_means;

static explain_means means_of(const eelsvae_cube *input, const eelsvae_cube *recon, const cli_detection *d,
                              double lo, double hi)
{
    explain_means m = {0};
    if (isnan(lo) && isnan(hi)) eelsvae_cube_shape(input, NULL, NULL, &m.n);
    else cli_check(eelsvae_cube_energy_window(input, lo, hi, &m.first, &m.n), "explanation window");
    double *block = malloc(5 * m.n * sizeof *block);
    if (!block) cli_fail("out of memory");
    m.energy = block, m.flagged = block + m.n, m.recon = block + 2 * m.n, m.bulk = block + 3 * m.n;
    m.residual = block + 4 * m.n;
    cli_check(eelsvae_explain_means(input, recon, d->mask, d->ny * d->nx, lo, hi, m.energy, m.flagged, m.recon,
                                    m.bulk, m.residual, m.n),
              "explaining the flagged pixels");
    return m;
}

/* How far the flagged mean lies along the energy axis from the bulk's. */
typedef struct explain_shift {
    double ev;   /* flagged minus bulk, eV: positive when the flagged features lie higher */
    double corr; /* the slopes' correlation at that shift */
} explain_shift;

/* Pearson r of a[i] and b[i − lag] over the i where both exist. */
static double lagged_corr(const double *a, const double *b, size_t n, long lag)
{
    double sa = 0, sb = 0, saa = 0, sbb = 0, sab = 0, count = 0;
    for (long i = lag > 0 ? lag : 0; i < (long)n && i - lag < (long)n; i++) {
        double x = a[i], y = b[i - lag];
        sa += x, sb += y, saa += x * x, sbb += y * y, sab += x * y, count++;
    }
    double va = saa - sa * sa / count, vb = sbb - sb * sb / count;
    return va > 0 && vb > 0 ? (sab - sa * sb / count) / sqrt(va * vb) : NAN;
}

/* The shift s for which flagged(E) best matches bulk(E − s): the lag of the
 * highest Pearson correlation of their slopes (channel-to-channel
 * differences, blind to a background offset and to an overall scale) within
 * a quarter of the window, refined between channels by a parabola through
 * the peak. A single edge and a pair of white lines alike give the shift,
 * where the rise of each curve to its maximum can mislead (on the real SI's
 * Ti L2,3 it pointed the wrong way). Both fields NaN when there is no bulk
 * (every pixel flagged) or the window is under 8 channels. */
static explain_shift shift_of(const explain_means *m)
{
    explain_shift out = {NAN, NAN};
    if (m->n < 8 || isnan(m->bulk[0])) return out;
    size_t n = m->n - 1; /* slopes */
    double *slopes = malloc(2 * n * sizeof *slopes);
    if (!slopes) cli_fail("out of memory");
    double *sf = slopes, *sb = slopes + n;
    for (size_t i = 0; i < n; i++) sf[i] = m->flagged[i + 1] - m->flagged[i], sb[i] = m->bulk[i + 1] - m->bulk[i];
    long reach = (long)(m->n / 4), best = 0;
    double c_best = -INFINITY;
    for (long lag = -reach; lag <= reach; lag++) {
        double c = lagged_corr(sf, sb, n, lag);
        if (c > c_best) c_best = c, best = lag;
    }
    if (isfinite(c_best)) {
        double below = lagged_corr(sf, sb, n, best - 1), above = lagged_corr(sf, sb, n, best + 1);
        double curve = below - 2 * c_best + above, step = 0;
        if (best > -reach && best < reach && curve < 0) step = 0.5 * (below - above) / curve;
        out.ev = ((double)best + step) * (m->energy[1] - m->energy[0]);
        out.corr = c_best;
    }
    free(slopes);
    return out;
}

static void write_means_csv(const char *path, const explain_means *m)
{
    cli_text t = {0};
    cli_text_printf(&t, "energy_ev,flagged_mean,flagged_reconstruction_mean,bulk_mean,mean_residual\n");
    for (size_t i = 0; i < m->n; i++)
        cli_text_printf(&t, "%.9g,%.9g,%.9g,%.9g,%.9g\n", m->energy[i], m->flagged[i], m->recon[i], m->bulk[i],
                        m->residual[i]);
    cli_write_text(path, t.s);
    cli_text_free(&t);
}

static const char *intensity_label(const cli_provenance *p)
{
    return p && p->intensity ? p->intensity : "intensity";
}

/* The three means above, with the shift between flagged and bulk in the
 * panel's title; the residual below. */
static void write_means_svg(const char *path, const explain_means *m, const cli_detection *d,
                            const cli_provenance *p, explain_shift shift)
{
    size_t pixels = d->ny * d->nx;
    char bulk_label[64], flagged_label[64], title[160], top_title[256];
    snprintf(bulk_label, sizeof bulk_label, "bulk mean (%zu pixels)", pixels - d->flagged);
    snprintf(flagged_label, sizeof flagged_label, "flagged mean (%zu pixels)", d->flagged);
    snprintf(title, sizeof title, "%zu of %zu pixels flagged (%s): their mean spectrum against the bulk's", d->flagged,
             pixels, d->rule);
    int n = snprintf(top_title, sizeof top_title, "Mean spectra over the %s", p && p->range ? p->range : "scored range");
    if (!isnan(shift.ev) && n > 0 && (size_t)n < sizeof top_title)
        snprintf(top_title + n, sizeof top_title - (size_t)n, "; flagged ≈ bulk shifted by %+.2f eV", shift.ev);
    const fig_series means[] = {
        {bulk_label, "#555555", m->energy, m->bulk, m->n, 0, 0},
        {flagged_label, "#d62728", m->energy, m->flagged, m->n, 0, 0},
        {"their reconstructions' mean", "#1f77b4", m->energy, m->recon, m->n, 1, 0},
    };
    double zero_x[2] = {m->energy[0], m->energy[m->n - 1]}, zero_y[2] = {0, 0};
    const fig_series residual[] = {
        {NULL, "#999999", zero_x, zero_y, 2, 1, 0},
        {"flagged mean − their reconstructions' mean", "#d62728", m->energy, m->residual, m->n, 0, 0},
    };
    fig_plot plots[2] = {fig_plot_init(top_title, "energy loss (eV)", intensity_label(p)),
                         fig_plot_init("Mean residual of the flagged pixels: spectrum − reconstruction",
                                       "energy loss (eV)", "residual (same scale)")};
    plots[0].series = means, plots[0].n_series = 3;
    plots[0].legend = FIG_LEGEND_UPPER_RIGHT;
    plots[1].series = residual, plots[1].n_series = 2;
    plots[1].legend = FIG_LEGEND_UPPER_RIGHT;
    const double heights[2] = {440, 260};
    fig_svg_plot_column(path, title, plots, heights, 2, 980);
}

/* ---- the most anomalous pixels ------------------------------------------------ */

/* Whether pixel a ranks before pixel b: a more anomalous score, or the same
 * score and a lower index (so the order is total and repeatable). */
static int ranks_before(const cli_detection *d, size_t a, size_t b)
{
    float sa = d->score[a], sb = d->score[b];
    if (sa != sb) return d->direction == EELSVAE_ANOMALOUS_BELOW ? sa < sb : sa > sb;
    return a < b;
}

/* The first k flagged pixels in rank order into out (k of them, or every
 * flagged pixel when fewer); returns how many. Each pass takes the best of
 * those ranking after the last pick: k passes over the map, no sorting. */
static size_t top_flagged(const cli_detection *d, size_t k, size_t *out)
{
    size_t pixels = d->ny * d->nx, found = 0;
    for (; found < k; found++) {
        size_t best = pixels;
        for (size_t p = 0; p < pixels; p++) {
            if (!d->mask[p] || (found && !ranks_before(d, out[found - 1], p))) continue;
            if (best == pixels || ranks_before(d, p, best)) best = p;
        }
        if (best == pixels) break;
        out[found] = best;
    }
    return found;
}

static void write_top_csv(const char *path, const size_t *top, size_t k, const cli_detection *d,
                          const explain_means *m, const eelsvae_cube *input, const eelsvae_cube *recon)
{
    cli_text t = {0};
    cli_text_printf(&t, "rank,y,x,score,energy_ev,spectrum,reconstruction\n");
    for (size_t r = 0; r < k; r++) {
        size_t y = top[r] / d->nx, x = top[r] % d->nx;
        const float *a = NULL, *b = NULL;
        cli_check(eelsvae_cube_spectrum(input, y, x, &a), "spectrum");
        cli_check(eelsvae_cube_spectrum(recon, y, x, &b), "reconstruction");
        for (size_t i = 0; i < m->n; i++)
            cli_text_printf(&t, "%zu,%zu,%zu,%.9g,%.9g,%.9g,%.9g\n", r + 1, y, x, (double)d->score[top[r]],
                            m->energy[i], (double)a[m->first + i], (double)b[m->first + i]);
    }
    cli_write_text(path, t.s);
    cli_text_free(&t);
}

/* Small multiples, three to a row: each pixel's spectrum against its
 * reconstruction, titled with its rank, (y, x) and score. */
static void write_top_svg(const char *path, const size_t *top, size_t k, const cli_detection *d,
                          const explain_means *m, const eelsvae_cube *input, const eelsvae_cube *recon,
                          const cli_provenance *p)
{
    double *xy = malloc(2 * k * m->n * sizeof *xy); /* spectrum and reconstruction of each, in double */
    fig_series *series = malloc(2 * k * sizeof *series);
    fig_plot *plots = malloc(k * sizeof *plots);
    char (*titles)[96] = malloc(k * sizeof *titles);
    if (!xy || !series || !plots || !titles) cli_fail("out of memory");
    for (size_t r = 0; r < k; r++) {
        size_t y = top[r] / d->nx, x = top[r] % d->nx;
        const float *a = NULL, *b = NULL;
        cli_check(eelsvae_cube_spectrum(input, y, x, &a), "spectrum");
        cli_check(eelsvae_cube_spectrum(recon, y, x, &b), "reconstruction");
        double *sa = xy + 2 * r * m->n, *sb = sa + m->n;
        for (size_t i = 0; i < m->n; i++) sa[i] = a[m->first + i], sb[i] = b[m->first + i];
        /* The legend once, in the first panel: the others would repeat it. */
        series[2 * r] = (fig_series){r ? NULL : "spectrum", "#d62728", m->energy, sa, m->n, 0, 0};
        series[2 * r + 1] = (fig_series){r ? NULL : "reconstruction", "#1f77b4", m->energy, sb, m->n, 1, 0};
        snprintf(titles[r], sizeof titles[r], "#%zu: (y %zu, x %zu), %s %.4f", r + 1, y, x, cli_score_label(d->kind),
                 (double)d->score[top[r]]);
        plots[r] = fig_plot_init(titles[r], "energy loss (eV)", intensity_label(p));
        plots[r].series = series + 2 * r, plots[r].n_series = 2, plots[r].legend = FIG_LEGEND_UPPER_RIGHT;
    }
    char title[128];
    snprintf(title, sizeof title, "The %zu most anomalous of %zu flagged pixels: spectrum and reconstruction", k,
             d->flagged);
    fig_svg_plots(path, title, plots, k, k < 3 ? k : 3, 420, 330);
    free(titles);
    free(plots);
    free(series);
    free(xy);
}

/* ---- the whole explanation ---------------------------------------------------------- */

static const char *const explain_files[] = {"explain.csv", "explain.svg", "explain_top.csv", "explain_top.svg"};

void cli_explain(const char *out_dir, const eelsvae_cube *input, const eelsvae_cube *recon, const cli_detection *d,
                 double win_lo, double win_hi, size_t top, const cli_provenance *provenance)
{
    if (d->flagged == 0) {
        /* Stale files from an earlier run would explain a detection this one did not make. */
        for (size_t i = 0; i < sizeof explain_files / sizeof explain_files[0]; i++)
            remove(cli_join(out_dir, explain_files[i]));
        printf("explain: no pixel was flagged, so there is nothing to explain; no explain files written\n");
        return;
    }
    explain_means m = means_of(input, recon, d, win_lo, win_hi);
    explain_shift shift = shift_of(&m);
    write_means_csv(cli_join(out_dir, "explain.csv"), &m);
    write_means_svg(cli_join(out_dir, "explain.svg"), &m, d, provenance, shift);
    size_t k = top < d->flagged ? top : d->flagged;
    size_t *picks = malloc(k * sizeof *picks);
    if (!picks) cli_fail("out of memory");
    k = top_flagged(d, k, picks);
    write_top_csv(cli_join(out_dir, "explain_top.csv"), picks, k, d, &m, input, recon);
    write_top_svg(cli_join(out_dir, "explain_top.svg"), picks, k, d, &m, input, recon, provenance);
    if (!isnan(shift.ev))
        printf("explain: the flagged mean matches the bulk mean shifted by %+.2f eV (their slopes correlate %.2f)\n",
               shift.ev, shift.corr);
    printf("explain: wrote explain.csv, explain.svg, explain_top.csv and explain_top.svg (top %zu) in %s\n", k,
           out_dir);
    free(picks);
    free(m.energy);
}
