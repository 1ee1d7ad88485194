/* --explain of eelsvae-detect and eelsvae-pca: why the flagged pixels were
 * flagged — their mean spectrum against their reconstructions' and the
 * bulk's over the scored range (eelsvae_explain_means), the mean residual,
 * and the most anomalous pixels one by one, as CSV and SVG. Not part of the
 * library. */
#ifndef EELSVAE_EXAMPLES_EXPLAIN_H
#define EELSVAE_EXAMPLES_EXPLAIN_H

#include <stddef.h>

#include "detect.h"

#define CLI_EXPLAIN_TOP_DEFAULT 5

/* The help lines of --explain and --explain-top (ends in "\n"). */
#define CLI_EXPLAIN_HELP \
    "  --explain               also show why pixels were flagged: DIR/explain.csv and\n" \
    "                          DIR/explain.svg (over the scored range, the mean\n" \
    "                          spectrum of the flagged pixels, of their\n" \
    "                          reconstructions and of the bulk, and the mean\n" \
    "                          residual), DIR/explain_top.csv and DIR/explain_top.svg\n" \
    "                          (the K most anomalous flagged pixels, each against its\n" \
    "                          reconstruction); none when no pixel is flagged\n" \
    "  --explain-top K         K of --explain, >= 1 (default 5); implies --explain\n"

/* --explain (top = 0: K stays as it is) or --explain-top K: cli_detect()
 * then writes the explanation. */
void cli_set_explain(size_t top);
/* K of --explain-top, >= 1; a usage error naming `option` otherwise. */
size_t cli_explain_top_option(const char *option, const char *text);
/* K when --explain was asked for, else 0. */
size_t cli_explain_requested(void);

/* Write DIR/explain.{csv,svg} and DIR/explain_top.{csv,svg} for d's flagged
 * pixels over [win_lo, win_hi] (NaN, NaN: the whole axis), the top `top`
 * by score in d's anomalous direction, and say on stdout what was written;
 * when nothing is flagged say so instead and remove any explain files an
 * earlier run left in DIR. The intensity axis is labelled with
 * provenance->intensity. */
void cli_explain(const char *out_dir, const eelsvae_cube *input, const eelsvae_cube *recon, const cli_detection *d,
                 double win_lo, double win_hi, size_t top, const cli_provenance *provenance);

#endif
