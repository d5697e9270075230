/* bench_kmeans.c — spherical k-means (index/raddino_index.h) on synthetic clustered vectors:
 * time, peak RSS, objective and how well the planted clusters come back.
 *
 *   raddino_bench_kmeans [--n 1000000] [--dim 768] [--k 100] [--planted 100] [--threads 2]
 *                        [--sample 0] [--iters 20] [--restarts 0 (default rule)]
 */
#include "raddino_index.h"

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

static double peak_rss_mb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss / 1024.0;
}

/* A seeded uniform in [-1, 1). */
static float uniform(uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 40) / (double)(1 << 24) * 2.0 - 1.0);
}

/* n vectors around `planted` random centres (spread 0.3 of the centre's scale); label[i] is the
 * centre of vector i. */
static float *synthetic(size_t n, int dim, int planted, int32_t *label)
{
    float *centres = malloc((size_t)planted * dim * sizeof(float));
    float *v = malloc(n * dim * sizeof(float));
    if (!centres || !v) return NULL;
    uint64_t state = 42;
    for (size_t i = 0; i < (size_t)planted * dim; i++) centres[i] = uniform(&state);
    for (size_t i = 0; i < n; i++) {
        label[i] = (int32_t)(i % (size_t)planted);
        const float *c = centres + (size_t)label[i] * dim;
        for (int j = 0; j < dim; j++) v[i * dim + j] = c[j] + 0.3f * uniform(&state);
    }
    free(centres);
    return v;
}

/* Share of vectors whose cluster's majority label is their own label (purity). */
static double purity(const int32_t *assignment, const int32_t *label, size_t n, int k, int planted)
{
    size_t *counts = calloc((size_t)k * planted, sizeof(size_t));
    for (size_t i = 0; i < n; i++) counts[(size_t)assignment[i] * planted + label[i]]++;
    size_t agree = 0;
    for (int c = 0; c < k; c++) {
        size_t best = 0;
        for (int l = 0; l < planted; l++) best = counts[(size_t)c * planted + l] > best ? counts[(size_t)c * planted + l] : best;
        agree += best;
    }
    free(counts);
    return (double)agree / (double)n;
}

int main(int argc, char **argv)
{
    size_t n = 1000000;
    int dim = 768, planted = 100;
    raddino_kmeans_params params = raddino_kmeans_default_params();
    params.k = 100;
    params.n_threads = 2;
    params.seed = 1;
    for (int i = 1; i + 1 < argc; i += 2) {
        const char *v = argv[i + 1];
        if (!strcmp(argv[i], "--n")) n = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--dim")) dim = atoi(v);
        else if (!strcmp(argv[i], "--k")) params.k = atoi(v);
        else if (!strcmp(argv[i], "--planted")) planted = atoi(v);
        else if (!strcmp(argv[i], "--threads")) params.n_threads = atoi(v);
        else if (!strcmp(argv[i], "--sample")) params.sample = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--iters")) params.iterations = atoi(v);
        else if (!strcmp(argv[i], "--restarts")) params.restarts = atoi(v);
        else {
            fprintf(stderr, "usage: raddino_bench_kmeans [--n N] [--dim D] [--k K] [--planted P] "
                            "[--threads T] [--sample S] [--iters I] [--restarts R]\n");
            return 2;
        }
    }
    if (n < 2 || dim < 1 || params.k < 1 || planted < 1) return 2;
    int32_t *label = malloc(n * sizeof *label);
    double start = now();
    float *vectors = label ? synthetic(n, dim, planted, label) : NULL;
    if (!vectors) {
        fprintf(stderr, "raddino_bench_kmeans: out of memory for %zu x %d\n", n, dim);
        return 1;
    }
    printf("data: %zu x %d float32 (%.0f MB), %d planted clusters, made in %.1f s\n", n, dim,
           (double)n * dim * 4 / 1e6, planted, now() - start);
    raddino_kmeans_result result;
    start = now();
    raddino_status st = raddino_kmeans(vectors, n, dim, &params, &result);
    double seconds = now() - start;
    if (st.code) {
        fprintf(stderr, "raddino_bench_kmeans: %s\n", st.message);
        return 1;
    }
    printf("k-means: k %d, %d threads, trained on %zu, %zu assigned, %d restarts: %.1f s "
           "(%.2f s each), peak RSS %.0f MB\n",
           params.k, params.n_threads, result.n_train, result.n, result.restarts, seconds,
           seconds / result.restarts, peak_rss_mb());
    printf("objective (sum of 1 - cos) %.1f, mean %.4f; purity against the planted labels %.4f\n",
           result.objective, result.objective / (double)n,
           purity(result.assignment, label, n, params.k, planted));
    raddino_kmeans_result_free(&result);
    free(vectors);
    free(label);
    return 0;
}
