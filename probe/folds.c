/* folds.c — stratified k-fold assignment grouped by patient.
 *
 * Greedy, as scikit-learn's StratifiedGroupKFold in spirit: groups are taken largest first
 * (a seeded shuffle breaks ties), and each goes to the fold where, after adding it, the
 * positives of every label and the image count are most evenly spread: the fold minimising
 * sum over labels of (fold positives of l) / (all positives of l) plus (fold images) / (all
 * images). A group never spans two folds, by construction. */
#include "probe_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    int32_t group;
    size_t size;
    uint64_t tie;
} group_entry;

static int by_size(const void *a, const void *b)
{
    const group_entry *x = a, *y = b;
    if (x->size != y->size) return x->size > y->size ? -1 : 1;
    return (x->tie > y->tie) - (x->tie < y->tie);
}

raddino_status raddino_probe_folds(const int32_t *group, int32_t n_groups, const uint8_t *Y,
                                   size_t n, int L, const uint8_t *mask, int folds,
                                   uint64_t seed, int32_t *fold)
{
    if (!group || !fold || folds < 2 || n_groups < 0 || (L > 0 && !Y))
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "folds: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (group[i] < 0 || group[i] >= n_groups)
            return raddino_status_error(RADDINO_ERR_ARGUMENT, "folds: group out of range");
    size_t G = (size_t)n_groups;
    group_entry *g = calloc(G ? G : 1, sizeof *g);
    double *gpos = calloc((G ? G : 1) * (size_t)(L ? L : 1), sizeof *gpos);
    double *fpos = calloc((size_t)folds * (size_t)(L ? L : 1), sizeof *fpos);
    double *fsize = calloc((size_t)folds, sizeof *fsize);
    double *tot = calloc((size_t)(L ? L : 1), sizeof *tot);
    int32_t *gfold = malloc((G ? G : 1) * sizeof *gfold);
    if (!g || !gpos || !fpos || !fsize || !tot || !gfold) {
        free(g), free(gpos), free(fpos), free(fsize), free(tot), free(gfold);
        return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    }
    uint64_t rng = seed;
    for (size_t k = 0; k < G; k++) g[k] = (group_entry){(int32_t)k, 0, probe_next(&rng)};
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        g[group[i]].size++;
        total++;
        for (int l = 0; l < L; l++)
            if (Y[i * (size_t)L + (size_t)l]) {
                gpos[(size_t)group[i] * L + l] += 1;
                tot[l] += 1;
            }
    }
    qsort(g, G, sizeof *g, by_size);
    for (size_t k = 0; k < G; k++) {
        gfold[g[k].group] = -1;
        if (!g[k].size) continue;
        const double *p = gpos + (size_t)g[k].group * L;
        int best = 0;
        double best_cost = 0;
        for (int f = 0; f < folds; f++) {
            double cost = (fsize[f] + (double)g[k].size) / (double)total;
            for (int l = 0; l < L; l++)
                if (tot[l] > 0) cost += (fpos[(size_t)f * L + l] + p[l]) / tot[l];
            if (f == 0 || cost < best_cost) best = f, best_cost = cost;
        }
        gfold[g[k].group] = best;
        fsize[best] += (double)g[k].size;
        for (int l = 0; l < L; l++) fpos[(size_t)best * L + l] += p[l];
    }
    for (size_t i = 0; i < n; i++) fold[i] = mask && !mask[i] ? -1 : gfold[group[i]];
    free(g), free(gpos), free(fpos), free(fsize), free(tot), free(gfold);
    return raddino_status_ok();
}
