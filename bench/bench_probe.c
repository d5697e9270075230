/* bench_probe.c — the classification probe (probe/raddino_probe.h) on synthetic vectors: the
 * whole cross-validation (outer folds, inner folds choosing C and k, bootstrap intervals) as
 * `raddino probe` runs it, timed by stage, with peak RSS.
 *
 *   raddino_bench_probe [--n 100000] [--dim 768] [--labels 14] [--folds 5] [--inner 3]
 *                       [--bootstrap 1000] [--knn 0|1] [--m 128]
 *
 * Vectors: Gaussian noise plus, for each label an image has, a shift along that label's random
 * direction (prevalences from 1% to 30%, like NIH's 14 findings), in groups of 3 images per
 * patient. --knn 1 adds the neighbour lists through an exact FAISS index (one search of every
 * image, top m) and the kNN method; it is the n^2 part. A peer is timed in the same run: one
 * pass of the data through dgemm-sized work (X^T X of a 10,000-row slice), so the figures can
 * be read as multiples of it on the machine they ran on.
 */
#include "raddino_index.h"
#include "raddino_probe.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* CPU seconds of the process (all threads): on a shared machine, the figure that does not
 * depend on how much of the CPU the others left us. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec * 1e-6;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

static uint64_t state = 42;
static double uniform(void)
{
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(state >> 11) / 9007199254740992.0;
}
static double gaussian(void)
{
    double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

int main(int argc, char **argv)
{
    size_t n = 100000;
    int dim = 768, L = 14, folds = 5, inner = 3, bootstrap = 1000, knn = 0, m = 128;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--n")) n = (size_t)atol(argv[i + 1]);
        else if (!strcmp(argv[i], "--dim")) dim = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--labels")) L = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--folds")) folds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--inner")) inner = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--bootstrap")) bootstrap = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--knn")) knn = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--m")) m = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    float *X = malloc(n * (size_t)dim * sizeof *X);
    uint8_t *Y = malloc(n * (size_t)L);
    int32_t *group = malloc(n * sizeof *group);
    double *dir = malloc((size_t)L * dim * sizeof *dir);
    if (!X || !Y || !group || !dir) return 1;
    for (size_t k = 0; k < (size_t)L * dim; k++) dir[k] = gaussian() / sqrt((double)dim);
    for (size_t i = 0; i < n; i++) {
        group[i] = (int32_t)(i / 3);
        for (int j = 0; j < dim; j++) X[i * dim + j] = (float)gaussian();
        for (int l = 0; l < L; l++) {
            double prevalence = 0.01 + 0.29 * l / (L > 1 ? L - 1 : 1);
            Y[i * L + l] = uniform() < prevalence;
            if (Y[i * L + l])
                for (int j = 0; j < dim; j++) X[i * dim + j] += (float)(1.5 * dir[(size_t)l * dim + j]);
        }
    }
    printf("probe bench: n %zu, dim %d, labels %d, folds %d (inner %d), bootstrap %d, knn %d\n",
           n, dim, L, folds, inner, bootstrap, knn);

    /* peer: X^T X of a 10,000-row slice in double (the scale of one pass of dgemm work) */
    size_t slice = n < 10000 ? n : 10000;
    double *S = malloc(slice * (size_t)dim * sizeof *S), *G = malloc((size_t)dim * dim * sizeof *G);
    for (size_t k = 0; k < slice * (size_t)dim; k++) S[k] = X[k];
    double t = now();
    cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, dim, (int)slice, 1.0, S, dim, 0.0, G, dim);
    double peer = now() - t;
    fflush(stdout);
    free(S), free(G);
    printf("peer: dsyrk %zu x %d: %.3f s\n", slice, dim, peer);

    int32_t *nb = NULL;
    raddino_probe_params p = raddino_probe_default_params();
    p.folds = folds;
    p.inner_folds = inner;
    p.bootstrap = bootstrap;
    p.methods = RADDINO_PROBE_LOGREG;
    if (knn) {
        t = now();
        int64_t *ids = malloc(n * sizeof *ids);
        for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i;
        raddino_index *ix;
        raddino_status st = raddino_index_build(X, ids, n, dim, NULL, &ix);
        float *scores = malloc(n * (size_t)(m + 1) * sizeof *scores);
        int64_t *found = malloc(n * (size_t)(m + 1) * sizeof *found);
        nb = malloc(n * (size_t)m * sizeof *nb);
        if (st.code || !scores || !found || !nb) return 1;
        /* inner product of the raw rows: the same work as the cosine search of the CLI */
        st = raddino_index_search(ix, X, n, m + 1, scores, found);
        if (st.code) {
            fprintf(stderr, "%s\n", st.message);
            return 1;
        }
        for (size_t i = 0; i < n; i++) {
            int w = 0;
            for (int k = 0; k <= m && w < m; k++)
                if (found[i * (m + 1) + k] != (int64_t)i)
                    nb[i * m + w++] = (int32_t)found[i * (m + 1) + k];
            while (w < m) nb[i * m + w++] = -1;
        }
        raddino_index_free(ix);
        free(scores), free(found), free(ids);
        printf("neighbour lists (exact inner-product search, top %d of %zu): %.1f s (%.0f x peer)\n",
               m, n, now() - t, (now() - t) / peer);
        p.methods |= RADDINO_PROBE_KNN;
    }
    raddino_probe_result r;
    fflush(stdout);
    t = now();
    double cpu0 = cpu_seconds();
    raddino_status st = raddino_probe_cross_validate(X, n, dim, Y, L, group, (int32_t)((n + 2) / 3),
                                                     nb, m, &p, &r);
    double cv = now() - t, cpu = cpu_seconds() - cpu0;
    if (st.code) {
        fprintf(stderr, "%s\n", st.message);
        return 1;
    }
    double macro = 0, macro_knn = 0;
    for (int l = 0; l < L; l++) {
        macro += r.logreg[l].auroc / L;
        if (r.knn) macro_knn += r.knn[l].auroc / L;
    }
    printf("cross-validation (%s): %.1f s wall, %.1f CPU s (%.0f x peer), %d logistic fits at "
           "the iteration limit; macro AUROC logreg %.4f%s", knn ? "logreg + knn" : "logreg", cv,
           cpu, cv / peer, r.max_iterations_hit, macro, knn ? "" : "\n");
    if (knn) printf(", knn %.4f\n", macro_knn);
    printf("peak RSS %.0f MB\n", peak_rss_mb());
    raddino_probe_result_free(&r);
    free(nb), free(X), free(Y), free(group), free(dir);
    return 0;
}
