#include "detect.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static unsigned map_formats = CLI_MAP_NPY;

void cli_set_map_formats(unsigned formats)
{
    map_formats = formats;
}

unsigned cli_parse_map_formats(const char *option, const char *text)
{
    static const char *const names[] = {"npy", "hspy", "rpl"};
    unsigned formats = 0;
    for (const char *p = text;;) {
        size_t len = strcspn(p, ",");
        unsigned bit = 0;
        for (unsigned k = 0; k < 3; k++)
            if (len == strlen(names[k]) && !strncmp(p, names[k], len)) bit = 1u << k;
        if (!bit) cli_usage_error("%s: '%s' is not npy, hspy, rpl or a comma-separated list of them", option, text);
        formats |= bit;
        if (!p[len]) break;
        p += len + 1;
    }
    return formats;
}

/* score.EXT and mask.EXT as calibrated 2-D signals (HyperSpy Signal2D). */
static void save_calibrated_maps(const char *out_dir, const cli_detection *d, const eelsvae_cube *like,
                                 const char *ext)
{
    char score[32], mask[32];
    snprintf(score, sizeof score, "score.%s", ext);
    snprintf(mask, sizeof mask, "mask.%s", ext);
    const char *score_path = cli_join(out_dir, score), *mask_path = cli_join(out_dir, mask);
    cli_check_file(eelsvae_map_save(d->score, EELSVAE_DTYPE_FLOAT32, like, "PCC score", score_path), score_path);
    cli_check_file(eelsvae_map_save(d->mask, EELSVAE_DTYPE_UINT8, like, "anomaly mask", mask_path), mask_path);
}

static void save_maps(const char *out_dir, const cli_detection *d, const eelsvae_cube *like)
{
    size_t shape[2] = {d->ny, d->nx}, n = d->ny * d->nx;
    if (map_formats & CLI_MAP_NPY) {
        cli_check(eelsvae_npy_write(cli_join(out_dir, "score.npy"), EELSVAE_DTYPE_FLOAT32, d->score, 2, shape),
                  "score.npy");
        cli_check(eelsvae_npy_write(cli_join(out_dir, "mask.npy"), EELSVAE_DTYPE_UINT8, d->mask, 2, shape),
                  "mask.npy");
    }
    if (map_formats & CLI_MAP_HSPY) save_calibrated_maps(out_dir, d, like, "hspy");
    if (map_formats & CLI_MAP_RPL) save_calibrated_maps(out_dir, d, like, "rpl");
    /* PCC maps crowd near 1: stretch the colours over the values present. */
    float lo = d->score[0], hi = d->score[0];
    for (size_t i = 1; i < n; i++) {
        if (d->score[i] < lo) lo = d->score[i];
        if (d->score[i] > hi) hi = d->score[i];
    }
    if (cli_write_heatmap(cli_join(out_dir, "heatmap.png"), d->score, d->ny, d->nx, lo, hi, 2) != 0)
        fprintf(stderr, "%s: built without libpng: no heatmap.png\n", cli_prog());
}

cli_detection cli_score(const eelsvae_cube *input, const eelsvae_cube *recon, double win_lo, double win_hi,
                        size_t bins, size_t *degenerate)
{
    cli_detection d = {0};
    eelsvae_cube_shape(input, &d.ny, &d.nx, NULL);
    size_t n = d.ny * d.nx;
    d.score = malloc(n * sizeof *d.score);
    d.mask = malloc(n);
    if (!d.score || !d.mask) cli_fail("out of memory");

    eelsvae_scorer_options so;
    cli_check(eelsvae_scorer_options_init(&so), "scorer options");
    so.window_lo = win_lo;
    so.window_hi = win_hi;
    eelsvae_scorer *scorer = NULL;
    cli_check(eelsvae_scorer_create(&so, &scorer), "scorer");
    size_t constant = 0;
    cli_check(eelsvae_scorer_score(scorer, input, recon, d.score, n, &constant), "scoring");
    if (degenerate) *degenerate = constant;
    cli_check(eelsvae_otsu_threshold(d.score, n, bins, &d.threshold), "Otsu threshold");
    cli_check(eelsvae_threshold_mask(d.score, n, d.threshold, eelsvae_scorer_direction(scorer), d.mask), "mask");
    eelsvae_scorer_free(scorer);
    for (size_t i = 0; i < n; i++) d.flagged += d.mask[i];
    return d;
}

cli_detection cli_detect(const char *out_dir, const eelsvae_cube *input, const eelsvae_cube *recon, double win_lo,
                         double win_hi, size_t bins)
{
    size_t degenerate = 0;
    cli_detection d = cli_score(input, recon, win_lo, win_hi, bins, &degenerate);
    if (degenerate) fprintf(stderr, "%s: %zu pixels had a constant spectrum in the window\n", cli_prog(), degenerate);
    save_maps(out_dir, &d, input);
    printf("threshold %.6f\nflagged %zu of %zu pixels\n", d.threshold, d.flagged, d.ny * d.nx);
    return d;
}

void cli_measure(const cli_detection *d, const uint8_t *truth, eelsvae_metrics *m, double *roc_auc, double *pr_auc)
{
    size_t n = d->ny * d->nx;
    *m = (eelsvae_metrics){.struct_size = sizeof *m};
    cli_check(eelsvae_metrics_compute(d->mask, truth, n, m), "metrics");
    *roc_auc = *pr_auc = NAN;
    if (m->true_positive + m->false_negative > 0 && m->true_negative + m->false_positive > 0) {
        cli_check(eelsvae_roc_auc(d->score, truth, n, EELSVAE_ANOMALOUS_BELOW, roc_auc), "ROC-AUC");
        cli_check(eelsvae_pr_auc(d->score, truth, n, EELSVAE_ANOMALOUS_BELOW, pr_auc), "PR-AUC");
    }
}

void cli_report_metrics(const char *out_dir, const char *method, const char *truth_path, const cli_detection *d)
{
    uint8_t *truth = cli_load_mask(truth_path, d->ny, d->nx);
    eelsvae_metrics m;
    double roc = NAN, ap = NAN;
    cli_measure(d, truth, &m, &roc, &ap);
    char json[1024];
    snprintf(json, sizeof json,
             "{\n  \"method\": \"%s\",\n  \"threshold\": %.6f,\n"
             "  \"precision\": %.6f,\n  \"recall\": %.6f,\n  \"f1\": %.6f,\n  \"iou\": %.6f,\n"
             "  \"roc_auc\": %.6f,\n  \"pr_auc\": %.6f,\n  \"true_positive\": %zu,\n  \"false_positive\": %zu,\n"
             "  \"false_negative\": %zu,\n  \"true_negative\": %zu\n}\n",
             method, d->threshold, m.precision, m.recall, m.f1, m.iou, roc, ap, m.true_positive, m.false_positive,
             m.false_negative, m.true_negative);
    cli_write_text(cli_join(out_dir, "metrics.json"), json);
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
