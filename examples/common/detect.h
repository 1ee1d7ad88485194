/* The detection tail shared by eelsvae-pca and eelsvae-detect: score every
 * pixel against its reconstruction, threshold with Otsu, write the maps,
 * and measure against a truth mask. Not part of the library. */
#ifndef EELSVAE_EXAMPLES_DETECT_H
#define EELSVAE_EXAMPLES_DETECT_H

#include <stddef.h>
#include <stdint.h>

#include <eelsvae/eelsvae.h>

typedef struct cli_detection {
    size_t ny, nx;
    float *score;     /* ny·nx PCC values */
    uint8_t *mask;    /* ny·nx, 1 = anomalous */
    double threshold; /* Otsu's */
    size_t flagged;   /* pixels in the mask */
} cli_detection;

/* Score input against recon by PCC over [win_lo, win_hi] and threshold
 * with Otsu, writing nothing; *degenerate (may be NULL) counts the pixels
 * whose spectrum was constant in the window. */
cli_detection cli_score(const eelsvae_cube *input, const eelsvae_cube *recon, double win_lo, double win_hi,
                        size_t bins, size_t *degenerate);

/* Precision, recall, F1, IoU of d's mask against the truth, with ROC-AUC and
 * PR-AUC of its scores (NaN when the truth has only one class). */
void cli_measure(const cli_detection *d, const uint8_t *truth, eelsvae_metrics *m, double *roc_auc, double *pr_auc);

/* The formats cli_detect() writes the score map and the mask in: a set of
 * CLI_MAP_* bits, CLI_MAP_NPY alone unless cli_set_map_formats() says
 * otherwise. The .hspy and .rpl maps carry the input cube's spatial axes. */
enum { CLI_MAP_NPY = 1, CLI_MAP_HSPY = 2, CLI_MAP_RPL = 4 };
void cli_set_map_formats(unsigned formats);
/* "npy", "hspy", "rpl" or a comma-separated list of them → CLI_MAP_* bits;
 * anything else is a usage error naming `option`. */
unsigned cli_parse_map_formats(const char *option, const char *text);

/* Score input against recon by PCC over [win_lo, win_hi], threshold, and
 * write DIR/score.EXT, DIR/mask.EXT (EXT as cli_set_map_formats() chose,
 * npy by default) and DIR/heatmap.png. */
cli_detection cli_detect(const char *out_dir, const eelsvae_cube *input, const eelsvae_cube *recon, double win_lo,
                         double win_hi, size_t bins);

/* Compare with the truth mask at truth_path: print the metrics and write
 * DIR/metrics.json, labelled with `method`. */
void cli_report_metrics(const char *out_dir, const char *method, const char *truth_path, const cli_detection *d);

void cli_detection_free(cli_detection *d);

#endif
