/* Threshold rules: Otsu's split (the paper's), a fixed value, a
 * contamination fraction (the F most anomalous pixels, as PyOD's detectors
 * take it) and a false-discovery rate over per-pixel p-values
 * (Benjamini–Hochberg), with p-values from a robust normal fit of the map's
 * own bulk (of the logarithm of each score's distance from a perfect
 * reconstruction). */
#include <eelsvae/score.h>

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../core/core.h"
#include "../core/options_out.h"

/* ---- parsing --------------------------------------------------------------------- */

static const struct {
    const char *name;
    eelsvae_threshold_kind kind;
} rule_names[] = {
    {"otsu", EELSVAE_THRESHOLD_OTSU},
    {"value", EELSVAE_THRESHOLD_VALUE},
    {"contamination", EELSVAE_THRESHOLD_CONTAMINATION},
    {"fdr", EELSVAE_THRESHOLD_FDR},
};

/* The parameter a kind allows, checked; the message says the range. */
static eelsvae_status check_parameter(eelsvae_threshold_kind kind, double v, const char *what)
{
    switch (kind) {
    case EELSVAE_THRESHOLD_OTSU:
        if (v == 0.0 || (v >= 2.0 && v <= 65536.0 && v == floor(v))) return EELSVAE_OK;
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: otsu takes a whole number of bins, 2 … 65536 (0: 256)",
                         what);
    case EELSVAE_THRESHOLD_VALUE:
        if (isfinite(v)) return EELSVAE_OK;
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: value:X needs a finite score X", what);
    case EELSVAE_THRESHOLD_CONTAMINATION:
        if (v > 0.0 && v <= 0.5) return EELSVAE_OK;
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s: contamination:F needs 0 < F <= 0.5, the fraction of pixels flagged", what);
    case EELSVAE_THRESHOLD_FDR:
        if (v > 0.0 && v < 1.0) return EELSVAE_OK;
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "%s: fdr:Q needs 0 < Q < 1, the expected fraction of false discoveries", what);
    }
    return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: threshold kind %d is not known", what, (int)kind);
}

eelsvae_status eelsvae_threshold_rule_parse(const char *text, eelsvae_threshold_rule *rule)
{
    if (!text || !rule || rule->struct_size < sizeof(size_t))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_threshold_rule_parse: NULL argument, or the rule's struct_size is not set");
    size_t len = strcspn(text, ":");
    for (size_t k = 0; k < sizeof rule_names / sizeof rule_names[0]; k++) {
        if (len != strlen(rule_names[k].name) || strncmp(text, rule_names[k].name, len) != 0) continue;
        double v = 0.0;
        if (text[len] == ':') {
            char *end = NULL;
            errno = 0;
            v = strtod(text + len + 1, &end);
            if (errno || end == text + len + 1 || *end)
                return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_threshold_rule_parse: \"%s\": '%s' is not a "
                                 "number", text, text + len + 1);
        } else if (rule_names[k].kind != EELSVAE_THRESHOLD_OTSU) {
            return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_threshold_rule_parse: \"%s\" needs a number, "
                             "e.g. %s:0.01", text, rule_names[k].name);
        }
        char what[160];
        snprintf(what, sizeof what, "eelsvae_threshold_rule_parse: \"%.100s\"", text);
        EVAE_TRY(check_parameter(rule_names[k].kind, v, what));
        eelsvae_threshold_rule r = {.struct_size = sizeof r, .kind = rule_names[k].kind, .parameter = v};
        return evae_write_options(rule, rule->struct_size, &r, sizeof r, "eelsvae_threshold_rule_parse");
    }
    return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                     "eelsvae_threshold_rule_parse: \"%s\" is not a rule; give otsu, value:X, contamination:F or fdr:Q",
                     text);
}

const char *eelsvae_threshold_rule_default(void)
{
    return "fdr:0.01";
}

/* ---- p-values ---------------------------------------------------------------------- */

static eelsvae_status check_scores(const float *scores, size_t n, eelsvae_direction direction, const char *what)
{
    if (!scores || n == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL or empty scores", what);
    if (direction != EELSVAE_ANOMALOUS_BELOW && direction != EELSVAE_ANOMALOUS_ABOVE)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: direction %d is not known", what, (int)direction);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(scores[i])) return evae_fail(EELSVAE_ERR_NUMERIC, "%s: score %zu is %g", what, i, (double)scores[i]);
    return EELSVAE_OK;
}

/* How far each score lies from a perfect reconstruction, d ≥ 0 (1 − PCC
 * below, the score itself above), as its logarithm. The scores are sums of
 * squared residuals at heart, skewed and heavy-tailed where a model fits
 * some bulk worse than the rest; their logarithm is close to normal, and a
 * normal fit of it does not call that bulk anomalous (anomaly-free
 * synthetic SIs, PCA, fdr:0.01: 26 pixels of 36,864 at worst over 5 seeds
 * where the scores themselves gave 784). PCC is bounded by 1 only up to
 * float rounding, hence the slack. */
static eelsvae_status log_distances(const float *scores, size_t n, eelsvae_direction direction, double *t,
                                    double *scratch)
{
    for (size_t i = 0; i < n; i++) {
        double d = direction == EELSVAE_ANOMALOUS_BELOW ? 1.0 - (double)scores[i] : (double)scores[i];
        if (d < -1e-5)
            return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                             "eelsvae_score_p_values: score %zu is %g, but p-values take a score as a distance from a "
                             "perfect reconstruction: a correlation ≤ 1 (anomalous below) or a score ≥ 0 (anomalous "
                             "above: MSE, angle, chi-square)",
                             i, (double)scores[i]);
        t[i] = d > 0.0 ? d : 0.0;
    }
    /* a perfect reconstruction (d = 0) sits far below the bulk, not at −∞ */
    memcpy(scratch, t, n * sizeof *t);
    double floor = 1e-6 * evae_median_doubles(scratch, n);
    if (!(floor > 0.0)) floor = DBL_MIN;
    for (size_t i = 0; i < n; i++) t[i] = log(t[i] > floor ? t[i] : floor);
    return EELSVAE_OK;
}

eelsvae_status eelsvae_score_p_values(const float *scores, size_t n, eelsvae_direction direction, double *p,
                                      size_t p_count)
{
    EVAE_TRY(check_scores(scores, n, direction, "eelsvae_score_p_values"));
    if (!p || p_count != n)
        return evae_fail(EELSVAE_ERR_DIMENSION, "eelsvae_score_p_values: p holds %zu values, the map %zu", p_count, n);
    double *t = NULL;
    EVAE_TRY(evae_alloc_array(n, sizeof *t, (void **)&t, "p-values"));
    eelsvae_status st = log_distances(scores, n, direction, t, p); /* p: scratch until the end */
    if (st != EELSVAE_OK) {
        evae_free(t);
        return st;
    }
    /* The bulk as a normal law of log d: centre the median, spread 1.4826 ·
     * MAD, both blind to the few per cent of anomalies the map may hold. */
    memcpy(p, t, n * sizeof *p);
    double centre = evae_median_doubles(p, n);
    for (size_t i = 0; i < n; i++) p[i] = fabs(t[i] - centre);
    double spread = 1.4826 * evae_median_doubles(p, n);
    if (!(spread > 0.0)) {
        evae_free(t);
        return evae_fail(EELSVAE_ERR_NUMERIC, "eelsvae_score_p_values: half the scores or more lie equally far from "
                         "a perfect reconstruction: the bulk's spread cannot be estimated");
    }
    for (size_t i = 0; i < n; i++) p[i] = 0.5 * erfc((t[i] - centre) / spread / sqrt(2.0));
    evae_free(t);
    return EELSVAE_OK;
}

/* ---- thresholds -------------------------------------------------------------------- */

/* The score of the k-th most anomalous pixel (k ≥ 1): flagging every score at
 * least as anomalous flags k pixels, more where scores tie. */
static eelsvae_status kth_most_anomalous(const float *scores, size_t n, eelsvae_direction direction, size_t k,
                                         double *threshold)
{
    double *v = NULL;
    EVAE_TRY(evae_alloc_array(n, sizeof *v, (void **)&v, "threshold"));
    for (size_t i = 0; i < n; i++) v[i] = direction == EELSVAE_ANOMALOUS_BELOW ? scores[i] : -(double)scores[i];
    evae_sort_doubles(v, n);
    double t = v[k - 1];
    evae_free(v);
    /* "above" flags score > threshold: the next float below the k-th score */
    *threshold = direction == EELSVAE_ANOMALOUS_BELOW ? t : nextafter(-t, -INFINITY);
    return EELSVAE_OK;
}

/* Nothing flagged: a threshold no finite score crosses. */
static double flag_nothing(eelsvae_direction direction)
{
    return direction == EELSVAE_ANOMALOUS_BELOW ? -INFINITY : INFINITY;
}

/* Benjamini–Hochberg: the largest k with p_(k) ≤ k·Q/n; its score is the threshold. */
static eelsvae_status fdr_threshold(const float *scores, size_t n, eelsvae_direction direction, double q,
                                    double *threshold)
{
    double *p = NULL;
    EVAE_TRY(evae_alloc_array(n, sizeof *p, (void **)&p, "p-values"));
    eelsvae_status st = eelsvae_score_p_values(scores, n, direction, p, n);
    size_t k = 0;
    if (st == EELSVAE_OK) {
        evae_sort_doubles(p, n);
        for (size_t i = n; i > 0 && k == 0; i--)
            if (p[i - 1] <= (double)i * q / (double)n) k = i;
    }
    evae_free(p);
    EVAE_TRY(st);
    if (k == 0) {
        *threshold = flag_nothing(direction);
        return EELSVAE_OK;
    }
    /* p is monotone in the score, so the k smallest p-values are the k most anomalous scores */
    return kth_most_anomalous(scores, n, direction, k, threshold);
}

eelsvae_status eelsvae_threshold_select(const float *scores, size_t n, eelsvae_direction direction,
                                        const eelsvae_threshold_rule *rule, double *threshold)
{
    if (!rule || !threshold || rule->struct_size < offsetof(eelsvae_threshold_rule, parameter) + sizeof(double))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "eelsvae_threshold_select: NULL rule or threshold, or the rule's struct_size is too small");
    EVAE_TRY(check_scores(scores, n, direction, "eelsvae_threshold_select"));
    EVAE_TRY(check_parameter(rule->kind, rule->parameter, "eelsvae_threshold_select"));
    switch (rule->kind) {
    case EELSVAE_THRESHOLD_OTSU:
        return eelsvae_otsu_threshold(scores, n, rule->parameter > 0.0 ? (size_t)rule->parameter : 256, threshold);
    case EELSVAE_THRESHOLD_VALUE:
        *threshold = rule->parameter;
        return EELSVAE_OK;
    case EELSVAE_THRESHOLD_CONTAMINATION: {
        size_t k = (size_t)ceil(rule->parameter * (double)n);
        return kth_most_anomalous(scores, n, direction, k < 1 ? 1 : k, threshold);
    }
    case EELSVAE_THRESHOLD_FDR:
        return fdr_threshold(scores, n, direction, rule->parameter, threshold);
    }
    return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "eelsvae_threshold_select: unknown kind");
}
