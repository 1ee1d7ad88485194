/* How well scores and masks agree with a truth mask: confusion counts and the
 * ratios built on them, ROC-AUC, average precision, score histograms. */
#include "../core/core.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- confusion counts ------------------------------------------------------ */

/* num / den, or 0 where den is 0 (the header's rule). */
static double ratio_or_zero(size_t num, size_t den)
{
    return den == 0 ? 0.0 : (double)num / (double)den;
}

static void metrics_from_counts(eelsvae_metrics *m)
{
    size_t tp = m->true_positive, fp = m->false_positive, fn = m->false_negative;
    if (tp + fp + fn == 0) { /* both masks empty: they agree perfectly */
        m->precision = m->recall = m->f1 = m->iou = 1.0;
        return;
    }
    m->precision = ratio_or_zero(tp, tp + fp);
    m->recall = ratio_or_zero(tp, tp + fn);
    /* 2PR/(P+R) written on the counts: the same value, one rounding. */
    m->f1 = ratio_or_zero(2 * tp, 2 * tp + fp + fn);
    m->iou = ratio_or_zero(tp, tp + fp + fn);
}

/* The 0.1.0 struct up to and including its four counts: the least a caller
 * may pass. */
#define METRICS_MIN_SIZE (offsetof(eelsvae_metrics, true_negative) + sizeof(size_t))

/* Copy a field of `src` to `dst` when the caller's struct_size holds all of it. */
#define METRICS_COPY_IF_FITS(dst, src, size, field)                                                              \
    do {                                                                                                         \
        if ((size) >= offsetof(eelsvae_metrics, field) + sizeof((src)->field)) (dst)->field = (src)->field;      \
    } while (0)

eelsvae_status eelsvae_metrics_compute(const uint8_t *predicted, const uint8_t *truth, size_t n,
                                       eelsvae_metrics *metrics)
{
    if (!predicted || !truth || !metrics)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "metrics: NULL mask or metrics");
    if (n == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "metrics: the masks hold no pixel");
    size_t given = metrics->struct_size;
    if (given < METRICS_MIN_SIZE)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "metrics: struct_size is %zu, less than the %zu bytes of its counts; set it to "
                         "sizeof(eelsvae_metrics)",
                         given, (size_t)METRICS_MIN_SIZE);
    eelsvae_metrics m;
    memset(&m, 0, sizeof m);
    for (size_t i = 0; i < n; i++) {
        int p = predicted[i] != 0, t = truth[i] != 0;
        if (p && t) m.true_positive++;
        else if (p) m.false_positive++;
        else if (t) m.false_negative++;
        else m.true_negative++;
    }
    metrics_from_counts(&m);
    /* Fill only what the caller's struct holds; a longer (newer) struct keeps
     * its extra fields, and struct_size stays the caller's. */
    METRICS_COPY_IF_FITS(metrics, &m, given, true_positive);
    METRICS_COPY_IF_FITS(metrics, &m, given, false_positive);
    METRICS_COPY_IF_FITS(metrics, &m, given, false_negative);
    METRICS_COPY_IF_FITS(metrics, &m, given, true_negative);
    METRICS_COPY_IF_FITS(metrics, &m, given, precision);
    METRICS_COPY_IF_FITS(metrics, &m, given, recall);
    METRICS_COPY_IF_FITS(metrics, &m, given, f1);
    METRICS_COPY_IF_FITS(metrics, &m, given, iou);
    return EELSVAE_OK;
}

/* ---- ranking --------------------------------------------------------------- */

typedef struct ranked_score {
    float key;    /* the score, negated where low scores mean anomalous */
    uint8_t positive;
    size_t index; /* breaks ties so that the order never depends on qsort */
} ranked_score;

static int compare_ranked(const void *pa, const void *pb)
{
    const ranked_score *a = pa, *b = pb;
    if (a->key < b->key) return -1;
    if (a->key > b->key) return 1;
    return (a->index > b->index) - (a->index < b->index);
}

static eelsvae_status check_ranking_args(const float *scores, const uint8_t *truth, size_t n,
                                         eelsvae_direction direction, const void *out, const char *what)
{
    if (!scores || !truth || !out) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: NULL argument", what);
    if (n == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: no scores", what);
    if (direction != EELSVAE_ANOMALOUS_BELOW && direction != EELSVAE_ANOMALOUS_ABOVE)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "%s: direction %d is not known", what, (int)direction);
    for (size_t i = 0; i < n; i++)
        if (isnan(scores[i])) return evae_fail(EELSVAE_ERR_NUMERIC, "%s: score %zu is NaN", what, i);
    return EELSVAE_OK;
}

/* The scores sorted ascending by key = score (ABOVE) or −score (BELOW), so
 * that a larger key always leans anomalous; ties ordered by index. Counts the
 * positives. Free *out with evae_free. */
static eelsvae_status rank_scores(const float *scores, const uint8_t *truth, size_t n, eelsvae_direction direction,
                                  ranked_score **out, size_t *positives, const char *what)
{
    ranked_score *r = NULL;
    EVAE_TRY(evae_alloc_array(n, sizeof *r, (void **)&r, what));
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        r[i].key = direction == EELSVAE_ANOMALOUS_BELOW ? -scores[i] : scores[i];
        r[i].positive = truth[i] != 0;
        r[i].index = i;
        pos += r[i].positive;
    }
    qsort(r, n, sizeof *r, compare_ranked);
    *out = r;
    *positives = pos;
    return EELSVAE_OK;
}

/* ---- ROC-AUC --------------------------------------------------------------- */

eelsvae_status eelsvae_roc_auc(const float *scores, const uint8_t *truth, size_t n, eelsvae_direction direction,
                               double *auc)
{
    EVAE_TRY(check_ranking_args(scores, truth, n, direction, auc, "roc_auc"));
    ranked_score *r = NULL;
    size_t pos = 0;
    EVAE_TRY(rank_scores(scores, truth, n, direction, &r, &pos, "roc_auc ranks"));
    size_t neg = n - pos;
    if (pos == 0 || neg == 0) {
        evae_free(r);
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT,
                         "roc_auc: the truth has %zu anomalous and %zu normal pixels; both classes are needed", pos,
                         neg);
    }
    /* Mann–Whitney: U = Σ rank(positive) − pos(pos+1)/2 with average ranks for
     * ties. A tie group at 1-based ranks a … b has average rank (a+b)/2, so
     * twice the rank sum is an integer and U is computed exactly. */
    uint64_t twice_rank_sum = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        uint64_t group_pos = 0;
        while (j < n && r[j].key == r[i].key) group_pos += r[j++].positive;
        twice_rank_sum += group_pos * (uint64_t)((i + 1) + j); /* ranks i+1 … j */
        i = j;
    }
    uint64_t twice_u = twice_rank_sum - (uint64_t)pos * (pos + 1);
    evae_free(r);
    *auc = (double)twice_u / (2.0 * (double)pos * (double)neg);
    return EELSVAE_OK;
}

/* ---- average precision ----------------------------------------------------- */

eelsvae_status eelsvae_pr_auc(const float *scores, const uint8_t *truth, size_t n, eelsvae_direction direction,
                              double *ap)
{
    EVAE_TRY(check_ranking_args(scores, truth, n, direction, ap, "pr_auc"));
    ranked_score *r = NULL;
    size_t pos = 0;
    EVAE_TRY(rank_scores(scores, truth, n, direction, &r, &pos, "pr_auc ranks"));
    if (pos == 0) {
        evae_free(r);
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "pr_auc: the truth has no anomalous pixel among %zu", n);
    }
    /* Thresholds at each distinct key, from the highest down (scikit-learn's
     * precision_recall_curve): all pixels with key ≥ threshold are predicted
     * anomalous. AP = Σ (R_i − R_{i−1})·P_i; only steps that add true
     * positives add area. */
    size_t tp = 0, predicted = 0;
    double sum = 0.0;
    for (size_t hi = n; hi > 0;) {
        size_t lo = hi;
        size_t group_tp = 0;
        while (lo > 0 && r[lo - 1].key == r[hi - 1].key) group_tp += r[--lo].positive;
        tp += group_tp;
        predicted += hi - lo;
        if (group_tp > 0) sum += ((double)group_tp / (double)pos) * ((double)tp / (double)predicted);
        hi = lo;
    }
    evae_free(r);
    *ap = sum;
    return EELSVAE_OK;
}

/* ---- histograms ------------------------------------------------------------ */

eelsvae_status eelsvae_score_histogram(const float *scores, const uint8_t *truth, size_t n, double lo, double hi,
                                       size_t bins, uint64_t *normal, uint64_t *anomalous)
{
    if (!scores || !truth || !normal || !anomalous)
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "score_histogram: NULL argument");
    if (n == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "score_histogram: no scores");
    if (bins == 0) return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "score_histogram: 0 bins");
    if (!isfinite(lo) || !isfinite(hi) || !(hi > lo))
        return evae_fail(EELSVAE_ERR_INVALID_ARGUMENT, "score_histogram: range %g:%g is empty or not finite", lo, hi);
    for (size_t i = 0; i < n; i++) /* before touching the counts: a failure leaves them as they were */
        if (isnan(scores[i])) return evae_fail(EELSVAE_ERR_NUMERIC, "score_histogram: score %zu is NaN", i);
    memset(normal, 0, bins * sizeof *normal);
    memset(anomalous, 0, bins * sizeof *anomalous);
    double per_unit = (double)bins / (hi - lo);
    for (size_t i = 0; i < n; i++) {
        /* Bin k holds [lo + k·w, lo + (k+1)·w); the last also holds hi, and
         * values outside [lo, hi] (infinities included) fall in the end bins. */
        double f = ((double)scores[i] - lo) * per_unit;
        size_t k = !(f > 0.0) ? 0 : f >= (double)bins ? bins - 1 : (size_t)f;
        (truth[i] ? anomalous : normal)[k]++;
    }
    return EELSVAE_OK;
}
