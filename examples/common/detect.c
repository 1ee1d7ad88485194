#include "detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "explain.h"
#include "image.h"

static unsigned map_formats; /* 0: hspy when built with HDF5, else npy */

void cli_set_map_formats(unsigned formats)
{
    map_formats = formats;
}

unsigned cli_parse_map_formats(const char *option, const char *text)
{
    static const char *const names[] = {"npy", "hspy", "rpl", "tiff"};
    unsigned formats = 0;
    for (const char *p = text;;) {
        size_t len = strcspn(p, ",");
        unsigned bit = 0;
        for (unsigned k = 0; k < 4; k++)
            if (len == strlen(names[k]) && !strncmp(p, names[k], len)) bit = 1u << k;
        if (!bit) cli_usage_error("%s: '%s' is not npy, hspy, rpl, tiff or a comma-separated list of them", option, text);
        formats |= bit;
        if (!p[len]) break;
        p += len + 1;
    }
    if ((formats & CLI_MAP_HSPY) && !eelsvae_format_supported(EELSVAE_FORMAT_HSPY))
        cli_usage_error("%s: this build of libeelsvae has no HDF5, so it cannot write .hspy; choose npy or tiff", option);
#ifndef EELSVAE_HAVE_TIFF
    if (formats & CLI_MAP_TIFF)
        cli_usage_error("%s: these programs were built without libtiff, so they cannot write .tif; choose npy or hspy",
                        option);
#endif
    return formats;
}

/* What a map is and how it was made. */
typedef struct map_info {
    const cli_provenance *p;
    const char *title;
    const cli_detection *d;
} map_info;

/* What each score kind the programs offer is called: on the command line,
 * in the heatmap's colour bar, in a map's title, and in its provenance. */
typedef struct score_names {
    eelsvae_score_kind kind;
    const char *option, *label, *title, *description;
} score_names;

static const score_names score_kinds[] = {
    {EELSVAE_SCORE_PCC, "pcc", "PCC", "PCC score",
     "Pearson correlation of spectrum and reconstruction over the energy range; low = anomalous"},
    {EELSVAE_SCORE_CHI2, "chi2", "chi2", "chi-square score",
     "reduced chi-square of spectrum minus reconstruction over the energy range, against a noise variance "
     "affine in the reconstruction fitted on the map (see noise_model); about 1 for bulk pixels; "
     "high = anomalous"},
};

static const score_names *names_of(eelsvae_score_kind kind)
{
    for (size_t k = 0; k < sizeof score_kinds / sizeof score_kinds[0]; k++)
        if (score_kinds[k].kind == kind) return &score_kinds[k];
    cli_fail("score kind %d has no name in the programs", (int)kind);
}

const char *cli_score_label(eelsvae_score_kind kind)
{
    return names_of(kind)->label;
}

eelsvae_score_kind cli_score_kind(const char *option, const char *text)
{
    for (size_t k = 0; k < sizeof score_kinds / sizeof score_kinds[0]; k++)
        if (!strcmp(text, score_kinds[k].option)) return score_kinds[k].kind;
    cli_usage_error("%s: '%s' is not a score; choose pcc or chi2", option, text);
}

/* The provenance as name/value pairs: metadata keys "provenance.NAME" of a
 * signal, "NAME: value" lines of a TIFF's Info. A value may be NULL (no
 * model, no noise model). */
enum { PROVENANCE_ENTRIES = 9 };
typedef struct map_provenance {
    const char *name[PROVENANCE_ENTRIES], *value[PROVENANCE_ENTRIES];
    char threshold[32], software[64], noise_model[96];
} map_provenance;

static void provenance_of(const map_info *m, map_provenance *out)
{
    snprintf(out->threshold, sizeof out->threshold, "%.9g", m->d->threshold);
    snprintf(out->software, sizeof out->software, "libeelsvae %s", eelsvae_version_string());
    snprintf(out->noise_model, sizeof out->noise_model, "variance = %.6g + %.6g * reconstruction",
             m->d->noise_intercept, m->d->noise_slope);
    const char *names[PROVENANCE_ENTRIES] = {"source", "method", "model", "energy_range", "score", "noise_model",
                                             "threshold_rule", "threshold", "software"};
    const char *values[PROVENANCE_ENTRIES] = {
        m->p->source, m->p->method, m->p->model, m->p->range, names_of(m->d->kind)->description,
        isnan(m->d->noise_intercept) ? NULL : out->noise_model, m->d->rule, out->threshold, out->software};
    memcpy(out->name, names, sizeof names);
    memcpy(out->value, values, sizeof values);
}

static eelsvae_signal *map_signal(const void *map, eelsvae_dtype dtype, const eelsvae_cube *like, const map_info *m)
{
    eelsvae_signal *s = NULL;
    cli_check(eelsvae_map_to_signal(map, dtype, like, &s), "map");
    cli_check(eelsvae_signal_metadata_set(s, "title", m->title), "map title");
    map_provenance p;
    provenance_of(m, &p);
    for (size_t k = 0; k < PROVENANCE_ENTRIES; k++) {
        char key[64];
        snprintf(key, sizeof key, "provenance.%s", p.name[k]);
        if (p.value[k]) cli_check(eelsvae_signal_metadata_set(s, key, p.value[k]), "map provenance");
    }
    return s;
}

static void save_tiff(const char *path, const float *map, const eelsvae_cube *like, const map_info *m)
{
    size_t ny = 0, nx = 0;
    eelsvae_cube_shape(like, &ny, &nx, NULL);
    double sy = 1, sx = 1;
    const char *units = "";
    cli_check(eelsvae_cube_axis(like, EELSVAE_AXIS_Y, NULL, &sy, &units), "map axes");
    cli_check(eelsvae_cube_axis(like, EELSVAE_AXIS_X, NULL, &sx, NULL), "map axes");
    cli_text t = {0};
    cli_text_printf(&t, "title: %s\n", m->title);
    map_provenance p;
    provenance_of(m, &p);
    for (size_t k = 0; k < PROVENANCE_ENTRIES; k++)
        if (p.value[k]) cli_text_printf(&t, "%s: %s\n", p.name[k], p.value[k]);
    int rc = cli_write_tiff(path, map, ny, nx, sy, sx, units, t.s);
    cli_text_free(&t);
    if (rc != 0) cli_fail("could not write %s", path);
}

/* One map in every chosen format: NAME.hspy, NAME.npy (+ sidecar), NAME.rpl, NAME.tif. */
static void save_map(const char *out_dir, const char *name, const void *map, eelsvae_dtype dtype,
                     const eelsvae_cube *like, const map_info *m)
{
    unsigned formats = map_formats;
    if (!formats) formats = eelsvae_format_supported(EELSVAE_FORMAT_HSPY) ? CLI_MAP_HSPY : CLI_MAP_NPY;
    static const char *const ext[3] = {"npy", "hspy", "rpl"};
    eelsvae_signal *s = map_signal(map, dtype, like, m);
    for (unsigned k = 0; k < 3; k++) {
        if (!(formats & (1u << k))) continue;
        char file[64];
        snprintf(file, sizeof file, "%s.%s", name, ext[k]);
        cli_save_signal(s, cli_join(out_dir, file), 1);
    }
    eelsvae_signal_free(s);
    if (!(formats & CLI_MAP_TIFF)) return;
    size_t ny = 0, nx = 0;
    eelsvae_cube_shape(like, &ny, &nx, NULL);
    float *f = malloc(ny * nx * sizeof *f);
    if (!f) cli_fail("out of memory");
    for (size_t i = 0; i < ny * nx; i++) f[i] = dtype == EELSVAE_DTYPE_UINT8 ? ((const uint8_t *)map)[i] : ((const float *)map)[i];
    char file[64];
    snprintf(file, sizeof file, "%s.tif", name);
    save_tiff(cli_join(out_dir, file), f, like, m);
    free(f);
}

static void save_maps(const char *out_dir, const cli_detection *d, const eelsvae_cube *like, const cli_provenance *p)
{
    const score_names *names = names_of(d->kind);
    map_info score = {p, names->title, d}, mask = {p, "anomaly mask", d};
    save_map(out_dir, "score", d->score, EELSVAE_DTYPE_FLOAT32, like, &score);
    save_map(out_dir, "mask", d->mask, EELSVAE_DTYPE_UINT8, like, &mask);
    /* PCC maps crowd near 1: stretch the colours over the values present. */
    if (cli_write_map_png(cli_join(out_dir, "heatmap.png"), d->score, d->mask, d->ny, d->nx, NAN, NAN,
                          names->label) != 0)
        fprintf(stderr, "%s: built without libpng: no heatmap.png\n", cli_prog());
}

const char *cli_threshold_rule(const char *option, const char *text)
{
    eelsvae_threshold_rule rule = {.struct_size = sizeof rule};
    if (eelsvae_threshold_rule_parse(text, &rule) != EELSVAE_OK) cli_usage_error("%s: %s", option, eelsvae_last_error());
    return text;
}

cli_detection cli_score(const eelsvae_cube *input, const eelsvae_cube *recon, double win_lo, double win_hi,
                        const char *rule_text, size_t *degenerate)
{
    return cli_score_as(EELSVAE_SCORE_PCC, input, recon, win_lo, win_hi, rule_text, degenerate);
}

cli_detection cli_score_as(eelsvae_score_kind kind, const eelsvae_cube *input, const eelsvae_cube *recon,
                           double win_lo, double win_hi, const char *rule_text, size_t *degenerate)
{
    cli_detection d = {.kind = kind, .noise_intercept = NAN, .noise_slope = NAN};
    eelsvae_threshold_rule rule = {.struct_size = sizeof rule};
    cli_check(eelsvae_threshold_rule_parse(rule_text, &rule), "threshold rule");
    snprintf(d.rule, sizeof d.rule, "%s", rule_text);
    eelsvae_cube_shape(input, &d.ny, &d.nx, NULL);
    size_t n = d.ny * d.nx;
    d.score = malloc(n * sizeof *d.score);
    d.mask = malloc(n);
    if (!d.score || !d.mask) cli_fail("out of memory");

    eelsvae_scorer_options so;
    cli_check(eelsvae_scorer_options_init(&so), "scorer options");
    so.kind = kind;
    so.window_lo = win_lo;
    so.window_hi = win_hi;
    eelsvae_scorer *scorer = NULL;
    cli_check(eelsvae_scorer_create(&so, &scorer), "scorer");
    size_t constant = 0;
    cli_check(eelsvae_scorer_score(scorer, input, recon, d.score, n, &constant), "scoring");
    if (degenerate) *degenerate = constant;
    /* The model the chi-square divided by, for the provenance; none where
     * the map showed no noise (the score then fell back to a variance of 1). */
    if (kind == EELSVAE_SCORE_CHI2 &&
        eelsvae_scorer_noise_model(scorer, input, recon, &d.noise_intercept, &d.noise_slope) != EELSVAE_OK)
        d.noise_intercept = d.noise_slope = NAN;
    d.direction = eelsvae_scorer_direction(scorer);
    cli_check(eelsvae_threshold_select(d.score, n, d.direction, &rule, &d.threshold), "threshold");
    cli_check(eelsvae_threshold_mask(d.score, n, d.threshold, d.direction, d.mask), "mask");
    eelsvae_scorer_free(scorer);
    for (size_t i = 0; i < n; i++) d.flagged += d.mask[i];
    return d;
}

static int compare_floats(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

void cli_noise_hint(const cli_detection *d, const char *fix)
{
    if (d->kind != EELSVAE_SCORE_PCC) return;
    size_t n = d->ny * d->nx;
    float *sorted = malloc(n * sizeof *sorted);
    if (!sorted) cli_fail("out of memory");
    memcpy(sorted, d->score, n * sizeof *sorted);
    qsort(sorted, n, sizeof *sorted, compare_floats);
    double median = n % 2 ? sorted[n / 2] : 0.5 * ((double)sorted[n / 2 - 1] + sorted[n / 2]);
    free(sorted);
    if (median < 0.9)
        fprintf(stderr,
                "%s: note: the bulk's median PCC is %.2f, so the spectra are noisy over this range; regions several "
                "pixels wide stand out better with a 3 x 3 spatial mean (%s; docs/preprocessing.md)\n",
                cli_prog(), median, fix);
}

cli_detection cli_detect(const char *out_dir, eelsvae_score_kind kind, const eelsvae_cube *input,
                         const eelsvae_cube *recon, double win_lo, double win_hi, const char *rule,
                         const cli_provenance *provenance)
{
    size_t degenerate = 0;
    cli_detection d = cli_score_as(kind, input, recon, win_lo, win_hi, rule, &degenerate);
    if (degenerate && kind == EELSVAE_SCORE_CHI2)
        fprintf(stderr, "%s: the residuals show no noise; chi2 is the mean squared residual\n", cli_prog());
    else if (degenerate)
        fprintf(stderr, "%s: %zu pixels had a constant spectrum in the window\n", cli_prog(), degenerate);
    if (!isnan(d.noise_intercept))
        fprintf(stderr, "%s: noise model: variance = %.6g + %.6g * reconstruction\n", cli_prog(), d.noise_intercept,
                d.noise_slope);
    save_maps(out_dir, &d, input, provenance);
    printf("threshold %.6f (%s)\nflagged %zu of %zu pixels\n", d.threshold, d.rule, d.flagged, d.ny * d.nx);
    if (cli_explain_requested())
        cli_explain(out_dir, input, recon, &d, win_lo, win_hi, cli_explain_requested(), provenance);
    return d;
}

void cli_measure(const cli_detection *d, const uint8_t *truth, eelsvae_metrics *m, double *roc_auc, double *pr_auc)
{
    size_t n = d->ny * d->nx;
    *m = (eelsvae_metrics){.struct_size = sizeof *m};
    cli_check(eelsvae_metrics_compute(d->mask, truth, n, m), "metrics");
    *roc_auc = *pr_auc = NAN;
    if (m->true_positive + m->false_negative > 0 && m->true_negative + m->false_positive > 0) {
        cli_check(eelsvae_roc_auc(d->score, truth, n, d->direction, roc_auc), "ROC-AUC");
        cli_check(eelsvae_pr_auc(d->score, truth, n, d->direction, pr_auc), "PR-AUC");
    }
}

void cli_report_metrics(const char *out_dir, const char *method, const char *truth_path, const cli_detection *d)
{
    uint8_t *truth = cli_load_mask(truth_path, d->ny, d->nx);
    eelsvae_metrics m;
    double roc = NAN, ap = NAN;
    cli_measure(d, truth, &m, &roc, &ap);
    cli_text t = {0};
    cli_text_printf(&t, "{\n  \"method\": ");
    cli_json_string(&t, method);
    cli_text_printf(&t, ",\n  \"score\": ");
    cli_json_string(&t, names_of(d->kind)->option);
    /* A ratio whose denominator is 0 is undefined, not 0: JSON null. */
    size_t flagged = m.true_positive + m.false_positive, truly = m.true_positive + m.false_negative;
    size_t either = m.true_positive + m.false_positive + m.false_negative;
    const char *names[] = {"threshold", "precision", "recall", "f1", "iou", "roc_auc", "pr_auc"};
    const double values[] = {d->threshold, flagged ? m.precision : NAN, truly ? m.recall : NAN,
                             either ? m.f1 : NAN, either ? m.iou : NAN, roc, ap};
    for (size_t k = 0; k < sizeof values / sizeof values[0]; k++) {
        cli_text_printf(&t, ",\n  \"%s\": ", names[k]);
        cli_json_number(&t, values[k]);
    }
    cli_text_printf(&t, ",\n  \"true_positive\": %zu,\n  \"false_positive\": %zu,\n  \"false_negative\": %zu,\n"
                    "  \"true_negative\": %zu\n}\n",
                    m.true_positive, m.false_positive, m.false_negative, m.true_negative);
    cli_write_text(cli_join(out_dir, "metrics.json"), t.s);
    cli_text_free(&t);
    printf("precision %.4f\nrecall %.4f\nf1 %.4f\niou %.4f\nroc_auc %.4f\npr_auc %.4f\n", m.precision, m.recall, m.f1,
           m.iou, roc, ap);
    free(truth);
}

void cli_detection_free(cli_detection *d)
{
    free(d->score);
    free(d->mask);
    d->score = NULL;
    d->mask = NULL;
}
