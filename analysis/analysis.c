/* analysis.c — the arithmetic behind the reports of raddino cluster, dedup and eval, on plain
 * arrays (raddino_analysis.h): the 2-D map (PCA by power iteration), single-linkage groups,
 * retrieval metrics. Written here rather than taken from LAPACK or a statistics library: each is
 * a few loops whose exact order of operations the commands' outputs depend on. */
#include "raddino_analysis.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- the 2-D map ------------------------------------------------------------------------- */

/* out = C w for the covariance C = X^T X / n of the centred rows X, without forming C. */
static void covariance_times(const double *x, size_t n, int dim, const double *w, double *out)
{
    for (int d = 0; d < dim; d++) out[d] = 0;
    for (size_t i = 0; i < n; i++) {
        const double *row = x + i * (size_t)dim;
        double s = 0;
        for (int d = 0; d < dim; d++) s += row[d] * w[d];
        for (int d = 0; d < dim; d++) out[d] += s * row[d];
    }
    for (int d = 0; d < dim; d++) out[d] /= (double)(n ? n : 1);
}

static double normalise(double *w, int dim)
{
    double s = 0;
    for (int d = 0; d < dim; d++) s += w[d] * w[d];
    s = sqrt(s);
    if (s > 0)
        for (int d = 0; d < dim; d++) w[d] /= s;
    return s;
}

/* The top principal component orthogonal to `against` (NULL: none), by power iteration. */
static void power_component(const double *x, size_t n, int dim, const double *against,
                            double *w, double *tmp)
{
    for (int d = 0; d < dim; d++) w[d] = 1.0 + 0.5 * sin(1.0 + 7.0 * d);   /* fixed start */
    for (int it = 0; it < 60; it++) {
        if (against) {
            double s = 0;
            for (int d = 0; d < dim; d++) s += w[d] * against[d];
            for (int d = 0; d < dim; d++) w[d] -= s * against[d];
        }
        if (normalise(w, dim) == 0) return;
        covariance_times(x, n, dim, w, tmp);
        memcpy(w, tmp, (size_t)dim * sizeof *w);
    }
    if (against) {
        double s = 0;
        for (int d = 0; d < dim; d++) s += w[d] * against[d];
        for (int d = 0; d < dim; d++) w[d] -= s * against[d];
    }
    normalise(w, dim);
    int big = 0;
    for (int d = 1; d < dim; d++)
        if (fabs(w[d]) > fabs(w[big])) big = d;
    if (w[big] < 0)
        for (int d = 0; d < dim; d++) w[d] = -w[d];
}

raddino_status raddino_pca2(const float *v, size_t n, int dim, float *xy)
{
    if (dim < 1) return raddino_status_error(RADDINO_ERR_ARGUMENT, "pca: bad dimension");
    double *x = malloc((n ? n : 1) * (size_t)dim * sizeof *x);
    double *w = calloc((size_t)dim * 4, sizeof *w);
    if (!x || !w) {
        free(x), free(w);
        return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    }
    double *w1 = w, *w2 = w + dim, *tmp = w + 2 * dim, *mean = w + 3 * dim;
    for (size_t i = 0; i < n; i++) {
        double *row = x + i * (size_t)dim;
        for (int d = 0; d < dim; d++) row[d] = v[i * (size_t)dim + (size_t)d];
        normalise(row, dim);
        for (int d = 0; d < dim; d++) mean[d] += row[d];
    }
    for (int d = 0; d < dim; d++) mean[d] /= (double)(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        for (int d = 0; d < dim; d++) x[i * (size_t)dim + (size_t)d] -= mean[d];
    power_component(x, n, dim, NULL, w1, tmp);
    power_component(x, n, dim, w1, w2, tmp);
    for (size_t i = 0; i < n; i++) {
        const double *row = x + i * (size_t)dim;
        double a = 0, b = 0;
        for (int d = 0; d < dim; d++) a += row[d] * w1[d], b += row[d] * w2[d];
        xy[2 * i] = (float)a;
        xy[2 * i + 1] = (float)b;
    }
    free(x);
    free(w);
    return raddino_status_ok();
}

/* ---- single-linkage groups -------------------------------------------------------------- */

static size_t find_root(size_t *parent, size_t x)
{
    while (parent[x] != x) {
        parent[x] = parent[parent[x]];  /* path halving */
        x = parent[x];
    }
    return x;
}

void raddino_links_init(size_t *parent, size_t n)
{
    for (size_t i = 0; i < n; i++) parent[i] = i;
}

void raddino_links_unite(size_t *parent, size_t a, size_t b)
{
    a = find_root(parent, a);
    b = find_root(parent, b);
    if (a != b) parent[a < b ? b : a] = a < b ? a : b;  /* the smaller item is the root */
}

size_t raddino_links_root(size_t *parent, size_t x)
{
    return find_root(parent, x);
}

/* ---- retrieval metrics -------------------------------------------------------------------- */

void raddino_retrieval_metrics(const unsigned char *relevant, size_t n, size_t n_relevant,
                               const int *ks, int n_ks, double *precision, double *recall,
                               double *ap)
{
    size_t hits = 0;
    double sum = 0;
    for (int k = 0; k < n_ks; k++) precision[k] = recall[k] = 0;
    for (size_t i = 0; i < n; i++) {
        if (relevant[i]) {
            hits++;
            sum += (double)hits / (double)(i + 1);
        }
        for (int k = 0; k < n_ks; k++)
            if (i + 1 == (size_t)ks[k]) {
                precision[k] = (double)hits / ks[k];
                recall[k] = (double)hits / (double)n_relevant;
            }
    }
    for (int k = 0; k < n_ks; k++)   /* fewer candidates than k: all were seen */
        if ((size_t)ks[k] > n) {
            precision[k] = (double)hits / ks[k];
            recall[k] = (double)hits / (double)n_relevant;
        }
    *ap = sum / (double)n_relevant;
}
