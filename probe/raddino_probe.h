/* raddino_probe.h — classification probes on stored embeddings: the RAD-DINO model card's
 * first downstream use (a classifier on the CLS token), measured the way its paper does
 * (AUROC, AUPRC), with cross-validation that keeps a patient's images in one fold.
 *
 * Pieces, each usable alone:
 *
 *   metrics     AUROC (the Mann-Whitney statistic: a tied positive/negative pair counts 1/2)
 *               and AUPRC (average precision: sum over distinct score thresholds, highest
 *               first, of (recall step) x precision, as scikit-learn's
 *               average_precision_score), optionally weighted; bootstrap percentile intervals
 *               resampling groups (patients), not images.
 *   folds       stratified k-fold assignment grouped by an integer group id: every image of a
 *               group lands in the same fold; positives of each label spread evenly.
 *   logreg      L2-regularised logistic regression, one-vs-rest over L labels fitted together
 *               (one matrix product per evaluation serves every label), by L-BFGS in double
 *               precision with OpenBLAS (cblas_dgemm), preconditioned with the Cholesky factor
 *               of X^T X / 4n + I / (C n), an upper bound of the Hessian (LAPACK dpotrf). Objective per label, scikit-learn's
 *               convention: 0.5 |w|^2 + C sum_i log-loss_i, bias not penalised; internally
 *               divided by C n, and converged when the largest gradient component of that
 *               scaled objective is <= tolerance (default 1e-4).
 *   knn         cosine k-nearest-neighbour scores (fraction of positive neighbours) from
 *               precomputed neighbour lists, restricted to the images a fold may use.
 *   cv          the whole protocol: outer stratified group folds; inside each training part,
 *               inner folds choose C (logreg) and k (knn) per label by the AUROC of the
 *               inner out-of-fold scores (ties: the earlier value of the grid; k ascending);
 *               the chosen model scores the held-out fold. Every image gets an out-of-fold score.
 *
 * Why our own code: the pieces are small, and the one library that has them all
 * (scikit-learn) is Python. The L-BFGS here is the textbook two-loop recursion with a
 * backtracking Armijo search, written to evaluate all labels with one dgemm.
 *
 * All functions are reentrant (no global state); randomness comes from the seed given. */
#ifndef RADDINO_PROBE_H
#define RADDINO_PROBE_H

#include "raddino_status.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

/* ---- metrics ------------------------------------------------------------------------------ */

/* AUROC and AUPRC of scores against 0/1 labels y, with optional non-negative weights (NULL: all
 * 1; a weight w counts the image w times, as bootstrap resampling does). NAN when there is no
 * positive or no negative weight. */
double raddino_auroc(const double *score, const uint8_t *y, const double *weight, size_t n);
double raddino_auprc(const double *score, const uint8_t *y, const double *weight, size_t n);

typedef struct {
    double auroc, auprc;                /* point estimates (NAN: undefined) */
    double auroc_lo, auroc_hi;          /* bootstrap 95% percentile interval (NAN: none) */
    double auprc_lo, auprc_hi;
    double prevalence;                  /* positives / n */
    size_t positives, n;
} raddino_probe_metrics;

/* Point estimates and bootstrap intervals: `replicates` resamples of the groups (group[i] in
 * 0..n_groups-1; NULL: every image its own group) with replacement, seeded. Replicates with no
 * positive or no negative are skipped; replicates 0: no interval. */
raddino_status raddino_probe_evaluate(const double *score, const uint8_t *y, size_t n,
                                      const int32_t *group, int32_t n_groups, int replicates,
                                      uint64_t seed, raddino_probe_metrics *out);

/* ---- folds -------------------------------------------------------------------------------- */

/* Assigns fold[i] in 0..folds-1 for the n images: all images of a group together (group[i] in
 * 0..n_groups-1), positives of each of the L labels (Y: n x L, row-major, 0/1) and image counts
 * spread as evenly as the groups allow (greedy, largest groups first, seeded tie order). Only
 * images with mask[i] != 0 are assigned (mask NULL: all); the others get -1. */
raddino_status raddino_probe_folds(const int32_t *group, int32_t n_groups, const uint8_t *Y,
                                   size_t n, int L, const uint8_t *mask, int folds,
                                   uint64_t seed, int32_t *fold);

/* ---- logistic regression ------------------------------------------------------------------ */

typedef struct {
    double tolerance;       /* max |gradient| of the scaled objective (default 1e-4) */
    int max_iterations;     /* per label (default 1000) */
    int memory;             /* L-BFGS pairs kept (default 10) */
    /* Optional: X^T X / n_rows of the rows being fitted (d x d, row-major, lower triangle
     * read), for callers fitting the same rows several times (a grid of C); NULL: computed. */
    const double *gram;
} raddino_logreg_params;

raddino_logreg_params raddino_logreg_default_params(void);

/* Fits L labels on the n rows of X (n x d, row-major, features as given: standardise first)
 * listed in rows (NULL: 0..n-1; n_rows of them). Y is n x L (0/1, row-major, indexed by the
 * original row). C[l] is label l's inverse regularisation. W (d x L, row-major) and b (L) are
 * the starting point (zeros, or a warm start) and the result. A label whose rows are all one
 * class gets w = 0 and b = +-20 (its score is constant). iterations (may be NULL): L counts;
 * converged (may be NULL): L flags (0: max_iterations reached). */
raddino_status raddino_logreg_fit(const double *X, size_t n, int d, const size_t *rows,
                                  size_t n_rows, const uint8_t *Y, int L, const double *C,
                                  const raddino_logreg_params *params, double *W, double *b,
                                  int *iterations, uint8_t *converged);

/* The scaled objective and its gradient (d + 1 values: w then b) of label l, for tests and
 * diagnostics. */
double raddino_logreg_objective(const double *X, size_t n, int d, const size_t *rows,
                                size_t n_rows, const uint8_t *Y, int L, int l, double C,
                                const double *w, double b, double *gradient);

/* ---- the probe: standardisation + one-vs-rest logistic regression ------------------------- */

typedef struct {
    int dim, labels;
    double *mean, *scale;   /* dim each: x' = (x - mean) / scale */
    double *W, *b;          /* dim x labels (row-major), labels */
    double *C;              /* labels: the regularisation each was trained with */
} raddino_probe_model;

/* Scores (probability of each label, n x L row-major) of n vectors (n x dim floats). */
raddino_status raddino_probe_model_predict(const raddino_probe_model *m, const float *x,
                                           size_t n, double *scores);
void raddino_probe_model_free(raddino_probe_model *m);

/* ---- cross-validation --------------------------------------------------------------------- */

enum { RADDINO_PROBE_LOGREG = 1, RADDINO_PROBE_KNN = 2 };

typedef struct {
    int methods;            /* RADDINO_PROBE_LOGREG | RADDINO_PROBE_KNN */
    int folds;              /* outer folds (default 5) */
    int inner_folds;        /* inner folds choosing C and k (default 3) */
    const double *c_grid;   /* candidate C values (NULL: 1e-4, 1e-3, 1e-2, 1e-1, 1) */
    int n_c;
    const int *k_grid;      /* candidate k values (NULL: 1, 5, 10, 20, 50) */
    int n_k;
    int bootstrap;          /* replicates (default 1000; 0: no intervals) */
    uint64_t seed;          /* folds and bootstrap (default 1234) */
    raddino_logreg_params logreg;
} raddino_probe_params;

raddino_probe_params raddino_probe_default_params(void);

typedef struct {
    size_t n;
    int labels;
    int32_t *fold;                  /* n */
    double *logreg_score;           /* n x L (NULL when not run) */
    double *knn_score;              /* n x L (NULL when not run) */
    raddino_probe_metrics *logreg;  /* L (NULL when not run) */
    raddino_probe_metrics *knn;     /* L */
    double *chosen_c;               /* folds x L: the C each fold chose per label */
    int *chosen_k;                  /* folds x L */
    int folds;
    int max_iterations_hit;         /* fits that stopped at max_iterations */
} raddino_probe_result;

/* Cross-validates on n images: X (n x d floats, the CLS vectors as stored), Y (n x L, 0/1),
 * group (n, 0..n_groups-1). For knn, neighbours (n x m, row-major) lists each image's nearest
 * other images by cosine, best first, as row numbers (-1: none): enough of them that the
 * images of other folds leave k (the list is filtered per fold; fewer left: fewer used). */
raddino_status raddino_probe_cross_validate(const float *X, size_t n, int d, const uint8_t *Y,
                                            int L, const int32_t *group, int32_t n_groups,
                                            const int32_t *neighbours, int m,
                                            const raddino_probe_params *p,
                                            raddino_probe_result *out);
void raddino_probe_result_free(raddino_probe_result *r);

/* Trains the logistic probe on all n images: standardisation, C chosen per label by inner
 * cross-validation (p->inner_folds grouped folds), then a fit on everything. */
raddino_status raddino_probe_train(const float *X, size_t n, int d, const uint8_t *Y, int L,
                                   const int32_t *group, int32_t n_groups,
                                   const raddino_probe_params *p, raddino_probe_model *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
