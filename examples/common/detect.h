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
    eelsvae_score_kind kind;     /* what score holds */
    eelsvae_direction direction; /* its anomalous side: thresholds and ROC/PR-AUC follow it */
    double noise_intercept, noise_slope; /* the chi-square's variance a + b·x̂ (NaN for other kinds) */
    float *score;     /* ny·nx scores of the kind */
    uint8_t *mask;    /* ny·nx, 1 = anomalous */
    double threshold; /* the rule's (±∞ when it flags nothing) */
    size_t flagged;   /* pixels in the mask */
    char rule[64];    /* the threshold rule, as given ("otsu", "fdr:0.01", …) */
} cli_detection;

/* A --threshold RULE checked (eelsvae_threshold_rule_parse); a usage error
 * naming `option` otherwise. Returns `text`. */
const char *cli_threshold_rule(const char *option, const char *text);

/* The rule a user who changes nothing gets is the library's,
 * eelsvae_threshold_rule_default(): few false alarms, at a stated rate. */
#define CLI_DEFAULT_RULE eelsvae_threshold_rule_default()

/* The help lines of --threshold (ends in "\n"). */
#define CLI_THRESHOLD_HELP \
    "  --threshold RULE        how pixels are flagged: fdr:Q (the default, fdr:0.01:\n" \
    "                          Benjamini-Hochberg at false-discovery rate Q over\n" \
    "                          p-values against the map's own bulk, a normal fit\n" \
    "                          of log(1 - PCC) by median and MAD), otsu (Otsu's\n" \
    "                          split, the paper's, which always flags pixels, even\n" \
    "                          in an SI without anomalies; otsu:BINS, default 256\n" \
    "                          bins), contamination:F (the fraction F most\n" \
    "                          anomalous) or value:X (a fixed score)\n"

/* A --score NAME: pcc or chi2; a usage error naming `option` otherwise. */
eelsvae_score_kind cli_score_kind(const char *option, const char *text);

/* How a map of `kind` is labelled in figures: "PCC", "chi2". */
const char *cli_score_label(eelsvae_score_kind kind);

/* The help lines of --score (ends in "\n"). */
#define CLI_SCORE_HELP \
    "  --score NAME            per-pixel score: pcc (Pearson correlation of spectrum\n" \
    "                          and reconstruction, low = anomalous; the paper's) or\n" \
    "                          chi2 (reduced chi-square of the residual against a\n" \
    "                          noise variance a + b*recon fitted on the map, about 1\n" \
    "                          for bulk pixels whatever their counts, high =\n" \
    "                          anomalous); default pcc\n"

/* Score input against recon by `kind` over [win_lo, win_hi] and threshold
 * on the kind's anomalous side by the rule (cli_threshold_rule), writing
 * nothing; *degenerate (may be NULL) counts the pixels that met a degenerate
 * case (a constant spectrum in the window, a map without noise). */
cli_detection cli_score_as(eelsvae_score_kind kind, const eelsvae_cube *input, const eelsvae_cube *recon,
                           double win_lo, double win_hi, const char *rule, size_t *degenerate);

/* cli_score_as() by PCC, the paper's score. */
cli_detection cli_score(const eelsvae_cube *input, const eelsvae_cube *recon, double win_lo, double win_hi,
                        const char *rule, size_t *degenerate);

/* Precision, recall, F1, IoU of d's mask against the truth, with ROC-AUC and
 * PR-AUC of its scores on d's anomalous side (NaN when the truth has only
 * one class). */
void cli_measure(const cli_detection *d, const uint8_t *truth, eelsvae_metrics *m, double *roc_auc, double *pr_auc);

/* Where a map came from, written into every map file: the .hspy metadata
 * (metadata.Provenance), the .npy sidecar's metadata, the TIFF's Info. */
typedef struct cli_provenance {
    const char *source; /* the spectrum image file */
    const char *method; /* "vae", "pca4", … */
    const char *model;  /* the model file, or NULL */
    const char *range;  /* what the score covers, e.g. "Ti-L2,3 edge, 446 … 492 eV" */
    const char *intensity; /* what the scored cube holds, a short axis label such as
                              "preprocessed intensity (0 … 1)"; NULL: "intensity" */
} cli_provenance;

/* The formats cli_detect() writes the score map and the mask in: a set of
 * CLI_MAP_* bits; 0 (the default) means .hspy when the library has HDF5,
 * else .npy with its JSON sidecar. Every format carries the input cube's
 * spatial calibration and the provenance. */
enum { CLI_MAP_NPY = 1, CLI_MAP_HSPY = 2, CLI_MAP_RPL = 4, CLI_MAP_TIFF = 8 };
void cli_set_map_formats(unsigned formats);
/* "npy", "hspy", "rpl", "tiff" or a comma-separated list of them →
 * CLI_MAP_* bits; anything else is a usage error naming `option`. */
unsigned cli_parse_map_formats(const char *option, const char *text);
/* The help lines of --map-format (ends in "\n"). */
#define CLI_MAP_FORMAT_HELP \
    "  --map-format LIST       formats of score.* and mask.*: hspy (the default when\n" \
    "                          built with HDF5, else npy), npy (with a .npy.json\n" \
    "                          sidecar), tiff (32-bit float, pixel size for ImageJ),\n" \
    "                          rpl, or a list such as hspy,tiff; all carry the scan's\n" \
    "                          spatial calibration and the provenance\n"

/* After a PCC detection without a spatial mean in the chain: where the
 * bulk's median PCC is below 0.9 the spectra are noisy at this window, and
 * say that regions several pixels wide stand out better with a 3 × 3 mean
 * (on the realistic-noise benchmark, median 0.67, it takes PCA from chance
 * to F1 0.96; at dose 1000, median 0.996, it only blurs the rims). `fix`
 * names the option that adds it. */
void cli_noise_hint(const cli_detection *d, const char *fix);

/* Score input against recon by `kind` over [win_lo, win_hi], threshold, and
 * write DIR/score.EXT, DIR/mask.EXT (as cli_set_map_formats() chose),
 * DIR/heatmap.png (the map enlarged, a colour bar, flagged pixels outlined)
 * and, after --explain (explain.h), the explanation of the flagged pixels. */
cli_detection cli_detect(const char *out_dir, eelsvae_score_kind kind, const eelsvae_cube *input,
                         const eelsvae_cube *recon, double win_lo, double win_hi, const char *rule,
                         const cli_provenance *provenance);

/* Compare with the truth mask at truth_path: print the metrics and write
 * DIR/metrics.json, labelled with `method` (undefined metrics are null). */
void cli_report_metrics(const char *out_dir, const char *method, const char *truth_path, const cli_detection *d);

void cli_detection_free(cli_detection *d);

#endif
