#include "report.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include <eelsvae/eelsvae.h>

#include "cli.h"

const char *const bench_method_id[BENCH_METHODS] = {"vae", "pca3", "pca4", "pca5", "vae-self"};
const char *const bench_method_label[BENCH_METHODS] = {"VAE", "PCA 3", "PCA 4", "PCA 5", "VAE self-trained"};
const char *const bench_method_colour[BENCH_METHODS] = {"#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd"};

int bench_has_method(const bench_report *r, int method)
{
    for (size_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].method == method) return 1;
    return 0;
}

const bench_row *bench_find(const bench_report *r, int method, double shift, size_t disks, double radius)
{
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        if (w->method == method && fabs(w->shift_ev - shift) < 1e-9 && w->disks == disks &&
            fabs(w->radius - radius) < 1e-9)
            return w;
    }
    return NULL;
}

/* ---------- tables, as Markdown or HTML ---------- */

enum { MAX_COLS = 72 };

typedef struct table {
    cli_text *t;
    int html;
    size_t rows;
} table;

static void table_begin(table *tb, cli_text *t, int html)
{
    tb->t = t;
    tb->html = html;
    tb->rows = 0;
    if (html) cli_text_printf(t, "<table>\n");
}

/* One row of n cells; the first row is the header. */
static void table_row(table *tb, char cells[][48], size_t n)
{
    const char *cell = tb->rows == 0 ? "th" : "td";
    if (tb->html) {
        cli_text_printf(tb->t, "<tr>");
        for (size_t i = 0; i < n; i++) cli_text_printf(tb->t, "<%s>%s</%s>", cell, cells[i], cell);
        cli_text_printf(tb->t, "</tr>\n");
    } else {
        cli_text_printf(tb->t, "|");
        for (size_t i = 0; i < n; i++) cli_text_printf(tb->t, " %s |", cells[i]);
        cli_text_printf(tb->t, "\n");
        if (tb->rows == 0) {
            cli_text_printf(tb->t, "|");
            for (size_t i = 0; i < n; i++) cli_text_printf(tb->t, "---|");
            cli_text_printf(tb->t, "\n");
        }
    }
    tb->rows++;
}

static void table_end(table *tb)
{
    cli_text_printf(tb->t, tb->html ? "</table>\n" : "\n");
}

static void fmt_value(char *buf, double v, int decimals)
{
    if (isnan(v)) snprintf(buf, 48, "n/a");
    else snprintf(buf, 48, "%.*f", decimals, v);
}

static double row_metric(const bench_row *w, const char *metric)
{
    if (!w) return NAN;
    if (!strcmp(metric, "precision")) return w->precision;
    if (!strcmp(metric, "recall")) return w->recall;
    if (!strcmp(metric, "roc_auc")) return w->roc_auc;
    if (!strcmp(metric, "pr_auc")) return w->pr_auc;
    if (!strcmp(metric, "iou")) return w->iou;
    if (!strcmp(metric, "rule_precision")) return w->rule_precision;
    if (!strcmp(metric, "rule_recall")) return w->rule_recall;
    if (!strcmp(metric, "rule_f1")) return w->rule_f1;
    return w->f1;
}

/* A cell of a per-ΔE table: one row as text. */
typedef void (*cell_fn)(char *buf, const bench_row *w, const char *metric);

static void metric_cell(char *buf, const bench_row *w, const char *metric)
{
    fmt_value(buf, row_metric(w, metric), 2);
}

static void threshold_cell(char *buf, const bench_row *w, const char *metric)
{
    (void)metric;
    snprintf(buf, 48, "%.3f (%.3f / %.3f)", w->threshold, w->mean_normal, w->mean_anomalous);
}

static void misses_cell(char *buf, const bench_row *w, const char *metric)
{
    (void)metric;
    snprintf(buf, 48, "%zu (%zu) / %zu", w->missed, w->missed_rim, w->false_alarms);
}

/* Methods down, ΔE across: the layout of BENCHMARK.md. */
static void shift_table(cli_text *t, int html, const bench_report *r, const char *metric, cell_fn cell)
{
    table tb;
    char cells[MAX_COLS][48];
    size_t n = r->n_shifts + 1 < MAX_COLS ? r->n_shifts + 1 : MAX_COLS;
    table_begin(&tb, t, html);
    snprintf(cells[0], 48, "ΔE");
    for (size_t s = 1; s < n; s++) snprintf(cells[s], 48, "%g", r->shifts[s - 1]);
    table_row(&tb, cells, n);
    for (int m = 0; m < BENCH_METHODS; m++) {
        if (!bench_has_method(r, m)) continue;
        snprintf(cells[0], 48, "%s", bench_method_label[m]);
        for (size_t s = 1; s < n; s++) {
            const bench_row *w = bench_find(r, m, r->shifts[s - 1], r->disks, r->radius);
            if (w) cell(cells[s], w, metric);
            else snprintf(cells[s], 48, "n/a");
        }
        table_row(&tb, cells, n);
    }
    table_end(&tb);
}

static void sweep_table(cli_text *t, int html, const bench_report *r)
{
    table tb;
    char cells[BENCH_METHODS + 3][48];
    int methods[BENCH_METHODS];
    size_t n = 0;
    for (int m = 0; m < BENCH_METHODS; m++)
        if (bench_has_method(r, m)) methods[n++] = m;
    table_begin(&tb, t, html);
    snprintf(cells[0], 48, "disks");
    snprintf(cells[1], 48, "radius (px)");
    snprintf(cells[2], 48, "anomalous pixels");
    for (size_t k = 0; k < n; k++) snprintf(cells[3 + k], 48, "F1 %s", bench_method_label[methods[k]]);
    table_row(&tb, cells, n + 3);
    for (size_t i = 0; i < r->n_sweep; i++) {
        const bench_row *any = bench_find(r, BENCH_VAE, r->sweep_shift, r->sweep_disks[i], r->sweep_radius[i]);
        snprintf(cells[0], 48, "%zu", r->sweep_disks[i]);
        snprintf(cells[1], 48, "%g", r->sweep_radius[i]);
        snprintf(cells[2], 48, "%.2f %%", any ? 100 * any->fraction : NAN);
        for (size_t k = 0; k < n; k++)
            fmt_value(cells[3 + k],
                      row_metric(bench_find(r, methods[k], r->sweep_shift, r->sweep_disks[i], r->sweep_radius[i]), "f1"), 2);
        table_row(&tb, cells, n + 3);
    }
    table_end(&tb);
}

static void fidelity_table(cli_text *t, int html, const bench_report *r)
{
    table tb;
    char cells[6][48];
    table_begin(&tb, t, html);
    const char *head[6] = {"reconstruction", "PCC 690–730 eV", "PSNR 690–730 eV (dB)", "PCC background",
                           "PSNR background (dB)", "background region"};
    for (int i = 0; i < 6; i++) snprintf(cells[i], 48, "%s", head[i]);
    table_row(&tb, cells, 6);
    for (size_t i = 0; i < r->n_fidelity; i++) {
        const bench_fidelity *f = &r->fidelity[i];
        snprintf(cells[0], 48, "%s", f->label);
        fmt_value(cells[1], f->edge_pcc, 4);
        fmt_value(cells[2], f->edge_psnr, 1);
        fmt_value(cells[3], f->bg_pcc, 4);
        fmt_value(cells[4], f->bg_psnr, 1);
        snprintf(cells[5], 48, "%s", f->bg_region);
        table_row(&tb, cells, 6);
    }
    table_end(&tb);
}

static void timing_table(cli_text *t, int html, const bench_report *r)
{
    table tb;
    char cells[2][48];
    table_begin(&tb, t, html);
    snprintf(cells[0], 48, "stage");
    snprintf(cells[1], 48, "wall time (s)");
    table_row(&tb, cells, 2);
    for (size_t i = 0; i < r->n_timings; i++) {
        snprintf(cells[0], 48, "%s", r->timings[i].stage);
        snprintf(cells[1], 48, "%.1f", r->timings[i].seconds);
        table_row(&tb, cells, 2);
    }
    snprintf(cells[0], 48, "total");
    snprintf(cells[1], 48, "%.1f", r->total_seconds);
    table_row(&tb, cells, 2);
    table_end(&tb);
}

/* ---------- the sections both documents share ---------- */

static void heading(cli_text *t, int html, const char *text)
{
    if (html) cli_text_printf(t, "<h2>%s</h2>\n", text);
    else cli_text_printf(t, "## %s\n\n", text);
}

static void para(cli_text *t, int html, const char *text)
{
    cli_text_printf(t, html ? "<p>%s</p>\n" : "%s\n\n", text);
}

static void detection_sections(cli_text *t, int html, const bench_report *r)
{
    char buf[1024];
    heading(t, html, "F1 per ΔE (eV)");
    snprintf(buf, sizeof buf,
             "PCC over 690–730 eV, Otsu threshold, %zu disks of radius %g px (%.2f %% of the pixels). "
             "PCA is fitted on each injected SI with trim fraction %g (%s). "
             "The paper reports VAE 0.86–0.98 and PCA 3 0.22–0.92 on its BiFeO3 SI.",
             r->disks, r->radius, 100 * r->fraction, r->pca_trim,
             r->pca_trim > 0 ? "the robust fit of eelsvae-pca: the SI's worst-fitting spectra do not shape the components"
                             : "the paper's plain PCA");
    para(t, html, buf);
    shift_table(t, html, r, "f1", metric_cell);
    const char *names[4][2] = {{"precision", "Precision"}, {"recall", "Recall"}, {"roc_auc", "ROC-AUC"}, {"pr_auc", "PR-AUC"}};
    for (int i = 0; i < 4; i++) {
        snprintf(buf, sizeof buf, "%s per ΔE (eV)", names[i][1]);
        heading(t, html, buf);
        shift_table(t, html, r, names[i][0], metric_cell);
    }
    snprintf(buf, sizeof buf, "F1 at the rule %s per ΔE (eV)", r->rule);
    heading(t, html, buf);
    snprintf(buf, sizeof buf,
             "The same score maps cut by the rule %s instead of Otsu's split: what eelsvae-detect and eelsvae-pca "
             "flag by default. Unlike Otsu's, which always splits a map in two, this rule states its error rate: "
             "it flags the pixels unlike the map's own bulk. Where the chain blurs the scan (--spatial-sigma > 0) that "
             "includes the one-pixel ring around each disk into which the blur mixes the shifted edge (precision "
             "below 1); where the classes overlap it flags fewer pixels (recall below 1).",
             r->rule);
    para(t, html, buf);
    shift_table(t, html, r, "rule_f1", metric_cell);
    const char *rule_names[2][2] = {{"rule_precision", "Precision"}, {"rule_recall", "Recall"}};
    for (int i = 0; i < 2; i++) {
        snprintf(buf, sizeof buf, "%s at the rule %s per ΔE (eV)", rule_names[i][1], r->rule);
        heading(t, html, buf);
        shift_table(t, html, r, rule_names[i][0], metric_cell);
    }
    heading(t, html, "Otsu's threshold and the pixels it misses");
    para(t, html,
         "Otsu's threshold splits each method's PCC map where the between-class variance is largest, which is "
         "about midway between the mean PCC of the two classes; an anomalous pixel scoring above it is missed. "
         "A disk's outer one-pixel ring (pixels more than radius − 1 from its centre) takes in some of the bulk "
         "around it through the preprocessing's spatial blur or mean, where the chain has one, so its pixels "
         "score between the classes and are missed first: a method with perfect ranking (ROC-AUC 1) can still "
         "lose them when the anomalous mean is far below the normal one. Threshold (mean PCC of normal / "
         "anomalous pixels):");
    shift_table(t, html, r, NULL, threshold_cell);
    para(t, html, "Missed anomalous pixels (of them, on a disk's outer ring) / false alarms:");
    shift_table(t, html, r, NULL, misses_cell);
    heading(t, html, "Concentration sweep");
    snprintf(buf, sizeof buf, "ΔE = %g eV; fewer and smaller disks. F1 per method.", r->sweep_shift);
    para(t, html, buf);
    sweep_table(t, html, r);
}

static void analysis_sections(cli_text *t, int html, const bench_report *r)
{
    char buf[1024];
    heading(t, html, "Reconstruction fidelity against the noise-free SI");
    if (r->have_fidelity) {
        para(t, html,
             "Each method reconstructs the clean (noisy) SI; the reconstruction is compared with the generator's "
             "noise-free cube put through the same preprocessing with the same scaling. PCC is the mean over pixels; "
             "PSNR uses peak 1 (the scaled range). The first row is the noisy input itself, for reference.");
        fidelity_table(t, html, r);
    }
    para(t, html, r->fidelity_note);
    heading(t, html, "PCC histograms and latent space");
    snprintf(buf, sizeof buf,
             "At ΔE = %g eV the mean PCC of normal / anomalous pixels is %.3f / %.3f for the VAE and %.3f / %.3f "
             "for PCA 4 (paper at 2.5 eV: 0.925 / 0.548 and 0.886 / 0.806). Cosine similarity of the latent means "
             "of the %zu clean sub-images and their injected twins: mean of the diagonal %.4f, of the off-diagonal %.4f.",
             r->featured_shift, r->hist_mean[0][0], r->hist_mean[0][1], r->hist_mean[1][0], r->hist_mean[1][1],
             r->latent_tiles, r->latent_diag, r->latent_offdiag);
    para(t, html, buf);
    heading(t, html, "Setup and timings");
    para(t, html, r->source);
    para(t, html, r->setup);
    timing_table(t, html, r);
}

/* ---------- files ---------- */

void report_write_csv(const char *path, const bench_report *r)
{
    cli_text t = {0};
    cli_text_printf(&t, "method,shift_ev,disks,radius,precision,recall,f1,iou,roc_auc,pr_auc,rule,rule_precision,"
                        "rule_recall,rule_f1\n");
    for (size_t i = 0; i < r->n_rows; i++) {
        const bench_row *w = &r->rows[i];
        cli_text_printf(&t, "%s,%g,%zu,%g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%s,%.6f,%.6f,%.6f\n", bench_method_id[w->method],
                        w->shift_ev, w->disks, w->radius, w->precision, w->recall, w->f1, w->iou, w->roc_auc, w->pr_auc,
                        r->rule, w->rule_precision, w->rule_recall, w->rule_f1);
    }
    cli_write_text(path, t.s);
    cli_text_free(&t);
}

void report_write_summary(const char *path, const bench_report *r)
{
    cli_text t = {0};
    cli_text_printf(&t, "# eelsvae-bench summary\n\n");
    detection_sections(&t, 0, r);
    analysis_sections(&t, 0, r);
    cli_text_printf(&t, "## Figures\n\n");
    for (size_t i = 0; i < r->n_figures; i++)
        cli_text_printf(&t, "- `%s`%s%s%s: %s\n", r->figures[i].file, r->figures[i].png ? " (`" : "",
                        r->figures[i].png ? r->figures[i].png : "", r->figures[i].png ? "`)" : "", r->figures[i].caption);
    cli_text_printf(&t, "\nlibeelsvae %s; the full report with figures is report.html.\n", eelsvae_version_string());
    cli_write_text(path, t.s);
    cli_text_free(&t);
}

static const char *const html_style =
    "body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;"
    "color:#222}table{border-collapse:collapse;margin:0.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 9px;"
    "text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left;white-space:nowrap}"
    "figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:0.92em;color:#444}";

void report_write_html(const char *path, const bench_report *r)
{
    cli_text t = {0};
    cli_text_printf(&t, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                        "<title>eelsvae-bench report</title>\n<style>%s</style>\n</head>\n<body>\n"
                        "<h1>Spectral anomaly detection: 3-D convolutional VAE against PCA</h1>\n",
                    html_style);
    detection_sections(&t, 1, r);
    heading(&t, 1, "Figures");
    for (size_t i = 0; i < r->n_figures; i++) {
        const bench_figure *f = &r->figures[i];
        cli_text_printf(&t, "<figure><img src=\"%s\" alt=\"%s\"><figcaption>%s", f->file, f->file, f->caption);
        if (f->png) cli_text_printf(&t, " (<a href=\"%s\">PNG</a>)", f->png);
        cli_text_printf(&t, "</figcaption></figure>\n");
    }
    analysis_sections(&t, 1, r);
    cli_text_printf(&t, "<p>libeelsvae %s. Raw numbers: <a href=\"results.csv\">results.csv</a>.</p>\n</body>\n</html>\n",
                    eelsvae_version_string());
    cli_write_text(path, t.s);
    cli_text_free(&t);
}

void report_print(FILE *fp, const bench_report *r)
{
    cli_text t = {0};
    cli_text_printf(&t, "F1 per ΔE (eV), Otsu's threshold, %zu disks of radius %g px:\n\n", r->disks, r->radius);
    shift_table(&t, 0, r, "f1", metric_cell);
    cli_text_printf(&t, "F1 per ΔE (eV) at the rule %s:\n\n", r->rule);
    shift_table(&t, 0, r, "rule_f1", metric_cell);
    cli_text_printf(&t, "Concentration sweep at ΔE = %g eV:\n\n", r->sweep_shift);
    sweep_table(&t, 0, r);
    cli_text_printf(&t, "total wall time %.1f s\n", r->total_seconds);
    fputs(t.s, fp);
    cli_text_free(&t);
}
