/* metrics.c — AUROC, AUPRC and their bootstrap intervals.
 *
 * Both are computed in one pass over the images sorted by score, highest first, taking images
 * of equal score together: a tie between a positive and a negative counts one half for AUROC
 * (the Mann-Whitney U statistic divided by P N), and one threshold for AUPRC (average
 * precision, sum over thresholds of the recall step times the precision there, which is what
 * scikit-learn's average_precision_score computes). Weights let the bootstrap reuse one sort:
 * a resample is a weight per image (how many times its group was drawn). */
#define _GNU_SOURCE   /* qsort_r */
#include "probe_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const double *score;
} order_ctx;

static int compare_desc(const void *a, const void *b, void *user)
{
    const double *s = ((const order_ctx *)user)->score;
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    if (s[i] != s[j]) return s[i] > s[j] ? -1 : 1;
    return (i > j) - (i < j);
}

raddino_status probe_order_desc(const double *score, size_t n, size_t *order)
{
    for (size_t i = 0; i < n; i++) {
        if (isnan(score[i])) return raddino_status_error(RADDINO_ERR_ARGUMENT, "score %zu is NaN", i);
        order[i] = i;
    }
    order_ctx ctx = {score};
    qsort_r(order, n, sizeof *order, compare_desc, &ctx);
    return raddino_status_ok();
}

void probe_metrics_ordered(const size_t *order, size_t n, const double *score, const uint8_t *y,
                           size_t y_stride, const double *weight, double *auroc, double *auprc)
{
    double P = 0, N = 0;
    for (size_t i = 0; i < n; i++) {
        double w = weight ? weight[i] : 1.0;
        if (y[i * y_stride]) P += w;
        else N += w;
    }
    if (P <= 0 || N <= 0) {
        *auroc = *auprc = NAN;
        return;
    }
    double pairs = 0, tp = 0, fp = 0, ap = 0;
    for (size_t a = 0; a < n;) {
        double wp = 0, wn = 0, s = score[order[a]];
        size_t b = a;
        for (; b < n && score[order[b]] == s; b++) {
            size_t i = order[b];
            double w = weight ? weight[i] : 1.0;
            if (y[i * y_stride]) wp += w;
            else wn += w;
        }
        /* negatives of this tie group are below every positive above it, level with its own */
        pairs += wn * tp + 0.5 * wp * wn;
        tp += wp;
        fp += wn;
        if (wp > 0) ap += (wp / P) * (tp / (tp + fp));
        a = b;
    }
    *auroc = pairs / (P * N);
    *auprc = ap;
}

static double metric(const double *score, const uint8_t *y, const double *weight, size_t n,
                     int which)
{
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return NAN;
    double auroc = NAN, auprc = NAN;
    if (!probe_order_desc(score, n, order).code)
        probe_metrics_ordered(order, n, score, y, 1, weight, &auroc, &auprc);
    free(order);
    return which ? auprc : auroc;
}

double raddino_auroc(const double *score, const uint8_t *y, const double *weight, size_t n)
{
    return metric(score, y, weight, n, 0);
}

double raddino_auprc(const double *score, const uint8_t *y, const double *weight, size_t n)
{
    return metric(score, y, weight, n, 1);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* numpy's default percentile: linear interpolation between order statistics. */
static double percentile(const double *sorted, size_t n, double q)
{
    if (!n) return NAN;
    double pos = q * (double)(n - 1);
    size_t lo = (size_t)floor(pos), hi = lo + 1 < n ? lo + 1 : lo;
    return sorted[lo] + (pos - (double)lo) * (sorted[hi] - sorted[lo]);
}

raddino_status raddino_probe_evaluate(const double *score, const uint8_t *y, size_t n,
                                      const int32_t *group, int32_t n_groups, int replicates,
                                      uint64_t seed, raddino_probe_metrics *out)
{
    memset(out, 0, sizeof *out);
    out->n = n;
    for (size_t i = 0; i < n; i++) out->positives += y[i] != 0;
    out->prevalence = n ? (double)out->positives / (double)n : NAN;
    out->auroc_lo = out->auroc_hi = out->auprc_lo = out->auprc_hi = NAN;
    if (group) {
        for (size_t i = 0; i < n; i++)
            if (group[i] < 0 || group[i] >= n_groups)
                return raddino_status_error(RADDINO_ERR_ARGUMENT, "group %d out of range",
                                            (int)group[i]);
    } else {
        n_groups = (int32_t)n;
    }
    size_t *order = malloc((n ? n : 1) * sizeof *order);
    if (!order) return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    raddino_status st = probe_order_desc(score, n, order);
    if (st.code) {
        free(order);
        return st;
    }
    probe_metrics_ordered(order, n, score, y, 1, NULL, &out->auroc, &out->auprc);
    if (replicates <= 0 || isnan(out->auroc) || n_groups <= 0) {
        free(order);
        return st;
    }
    double *weight = malloc(n * sizeof *weight);
    double *draws = calloc((size_t)n_groups, sizeof *draws);
    double *rocs = malloc((size_t)replicates * sizeof *rocs);
    double *prcs = malloc((size_t)replicates * sizeof *prcs);
    if (!weight || !draws || !rocs || !prcs) {
        st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    } else {
        uint64_t rng = seed;
        size_t kept = 0;
        for (int r = 0; r < replicates; r++) {
            memset(draws, 0, (size_t)n_groups * sizeof *draws);
            for (int32_t g = 0; g < n_groups; g++) draws[probe_below(&rng, (uint64_t)n_groups)] += 1;
            for (size_t i = 0; i < n; i++) weight[i] = draws[group ? group[i] : (int32_t)i];
            double a, p;
            probe_metrics_ordered(order, n, score, y, 1, weight, &a, &p);
            if (isnan(a)) continue;
            rocs[kept] = a;
            prcs[kept++] = p;
        }
        qsort(rocs, kept, sizeof *rocs, compare_double);
        qsort(prcs, kept, sizeof *prcs, compare_double);
        if (kept) {
            out->auroc_lo = percentile(rocs, kept, 0.025);
            out->auroc_hi = percentile(rocs, kept, 0.975);
            out->auprc_lo = percentile(prcs, kept, 0.025);
            out->auprc_hi = percentile(prcs, kept, 0.975);
        }
    }
    free(weight);
    free(draws);
    free(rocs);
    free(prcs);
    free(order);
    return st;
}
