/* raddino_analysis.h — the arithmetic behind the reports of raddino cluster, dedup and eval,
 * on plain arrays, with no I/O: the 2-D map of a collection, single-linkage groups (duplicate
 * finding) and retrieval metrics (P@k, recall@k, average precision).
 *
 * Every call that can fail returns a raddino_status (raddino_status.h).
 */
#ifndef RADDINO_ANALYSIS_H
#define RADDINO_ANALYSIS_H

#include "raddino_status.h"

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

/* The first two principal components of n vectors (n x dim, each L2-normalised first, then
 * centred), by power iteration from a fixed start (60 steps; each component's sign chosen so
 * its largest coordinate is positive): xy[2i], xy[2i+1] are vector i's coordinates. The same
 * input gives the same map, bit for bit. */
raddino_status raddino_pca2(const float *v, size_t n, int dim, float *xy);

/* Single-linkage groups of n items by union-find: init, then unite every linked pair; an
 * item's root is the smallest item of its group. parent holds n values. */
void raddino_links_init(size_t *parent, size_t n);
void raddino_links_unite(size_t *parent, size_t a, size_t b);
size_t raddino_links_root(size_t *parent, size_t x);

/* Retrieval quality of one query's ranked candidates: relevant[i] (0 or 1) for rank i, best
 * first, n candidates of which n_relevant > 0 are relevant. For each cut-off ks[j]:
 * precision[j] = relevant ones among the first ks[j] / ks[j], recall[j] = those / n_relevant
 * (fewer candidates than ks[j]: all of them count); *ap = average precision (the mean, over the
 * relevant candidates, of the precision at their rank). */
void raddino_retrieval_metrics(const unsigned char *relevant, size_t n, size_t n_relevant,
                               const int *ks, int n_ks, double *precision, double *recall,
                               double *ap);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
