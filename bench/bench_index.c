/* bench_index.c — build time, query latency, recall@10 and memory of index types on synthetic
 * clustered vectors.
 *
 *   raddino_bench_index [--n N] [--dim D] [--threads T] [--queries Q] [--recall-queries R]
 *                       [--train N] [--nprobe P] [--ef E] [--type TYPE]...
 *
 * Default types: flat, IVF{L},Flat with L the auto rule's list count, HNSW32. Data: 1,000 random
 * centres, each vector a centre plus Gaussian noise twice its norm (neighbours are a real search
 * problem). Latency: Q held-out queries, one per call on one thread (p50, p99: a single query
 * uses one thread in FAISS anyway, and a second thread only waits at OpenMP barriers, which on
 * a busy machine costs a scheduler time slice), then all Q in one call on --threads threads
 * (per-query mean). Recall@10: raddino_index_measure_recall on R stored vectors. Memory: the
 * index's serialised size and the growth of the process's resident set while building it.
 */
#include "raddino_index.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double rss_mb(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
        fclose(f);
    }
    return (double)resident * 4096.0 / 1e6;
}

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float rng_gauss(uint64_t *s)
{
    double u = ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53, v = ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

static float *make_vectors(size_t n, int d, const float *centres, int n_centres, uint64_t seed)
{
    float *x = malloc(n * (size_t)d * sizeof *x);
    if (!x) return NULL;
    uint64_t s = seed;
    float scale = 1.0f / sqrtf((float)d);
    for (size_t i = 0; i < n; i++) {
        const float *c = centres + (rng_next(&s) % (uint64_t)n_centres) * (size_t)d;
        for (int j = 0; j < d; j++) x[i * (size_t)d + j] = c[j] + 2.0f * scale * rng_gauss(&s);
    }
    return x;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static int bench_type(const char *type, const float *x, const int64_t *ids, size_t n, int d,
                      const float *queries, size_t nq, size_t n_recall,
                      const raddino_index_params *base)
{
    raddino_index_params p = *base;
    p.type = type;
    double rss0 = rss_mb(), t0 = now();
    raddino_index *ix;
    raddino_status st = raddino_index_build(x, ids, n, d, &p, &ix);
    if (st.code) {
        fprintf(stderr, "raddino_bench_index: %s: %s\n", type, st.message);
        return 1;
    }
    double build_s = now() - t0, rss_grow = rss_mb() - rss0;
    int k = 10;
    float *scores = malloc(nq * (size_t)k * sizeof *scores);
    int64_t *found = malloc(nq * (size_t)k * sizeof *found);
    double *lat = malloc(nq * sizeof *lat);
    if (!scores || !found || !lat) return 1;
    raddino_index_set_threads(ix, 1);
    for (size_t i = 0; i < nq && !st.code; i++) {
        double a = now();
        st = raddino_index_search(ix, queries + i * (size_t)d, 1, k, scores, found);
        lat[i] = (now() - a) * 1e3;
    }
    raddino_index_set_threads(ix, base->n_threads);
    double a = now();
    if (!st.code) st = raddino_index_search(ix, queries, nq, k, scores, found);
    double batch_ms = (now() - a) * 1e3 / (double)nq;
    double recall = 0;
    if (!st.code) st = raddino_index_measure_recall(ix, x, ids, n, n_recall, k, 1, &recall);
    raddino_index_info info;
    if (!st.code) st = raddino_index_get_info(ix, &info);
    if (st.code) {
        fprintf(stderr, "raddino_bench_index: %s: %s\n", type, st.message);
        return 1;
    }
    qsort(lat, nq, sizeof *lat, compare_double);
    printf("%-18s %9zu %8.1f %9.3f %9.3f %9.3f %7.3f %9.1f %9.1f   nprobe %d ef %d\n", info.type,
           n, build_s, lat[nq / 2], lat[(size_t)((double)nq * 0.99)], batch_ms, recall,
           (double)info.memory_bytes / 1e6, rss_grow, info.nprobe, info.ef_search);
    fflush(stdout);
    free(scores);
    free(found);
    free(lat);
    raddino_index_free(ix);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: raddino_bench_index [--n N] [--dim D] [--threads T] [--queries Q] "
                    "[--recall-queries R] [--train N] [--nprobe P] [--ef E] [--type TYPE]...\n");
    return 2;
}

int main(int argc, char **argv)
{
    size_t n = 100000, nq = 200, n_recall = 200;
    int d = 768;
    const char *types[16];
    int n_types = 0;
    raddino_index_params base = raddino_index_default_params();
    base.train_size = 50000;
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(argv[i], "--n")) n = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--dim")) d = atoi(v);
        else if (!strcmp(argv[i], "--threads")) base.n_threads = atoi(v);
        else if (!strcmp(argv[i], "--queries")) nq = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--recall-queries")) n_recall = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--train")) base.train_size = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--nprobe")) base.nprobe = atoi(v);
        else if (!strcmp(argv[i], "--ef")) base.ef_search = atoi(v);
        else if (!strcmp(argv[i], "--type") && n_types < 16) types[n_types++] = v;
        else return usage();
        i++;
    }
    if (n < 1000 || d < 8 || d > 4096 || nq < 1 || n_recall < 1) return usage();
    static char ivf[64];
    if (n_types == 0) {
        char chosen[RADDINO_INDEX_TYPE_MAX];
        size_t lists = 64;   /* the auto rule's list count: power of two nearest 4 sqrt(n) */
        while (lists < 65536 && (double)lists * 2 <= 4 * sqrt((double)n) * 1.41421356) lists *= 2;
        snprintf(ivf, sizeof ivf, "IVF%zu,Flat", lists);
        types[n_types++] = "flat";
        types[n_types++] = ivf;
        types[n_types++] = "HNSW32";
        raddino_status st = raddino_index_choose_type(n, d, 0, chosen, sizeof chosen);
        printf("auto would pick: %s\n", st.code ? st.message : chosen);
    }
    uint64_t s = 12345;
    int n_centres = 1000;
    float *centres = malloc((size_t)n_centres * d * sizeof *centres);
    if (!centres) return 1;
    for (size_t i = 0; i < (size_t)n_centres * d; i++) centres[i] = rng_gauss(&s) / sqrtf((float)d);
    float *x = make_vectors(n, d, centres, n_centres, 1);
    float *queries = make_vectors(nq, d, centres, n_centres, 2);
    int64_t *ids = malloc(n * sizeof *ids);
    if (!x || !queries || !ids) {
        fprintf(stderr, "raddino_bench_index: out of memory for %zu vectors\n", n);
        return 1;
    }
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)i + 1;
    printf("%zu x %d synthetic vectors, %zu latency queries, recall@10 on %zu, train sample %zu\n",
           n, d, nq, n_recall, base.train_size);
    printf("%-18s %9s %8s %9s %9s %9s %7s %9s %9s\n", "type", "n", "build_s", "p50_ms", "p99_ms",
           "batch_ms", "rec@10", "index_MB", "rss_MB");
    int failed = 0;
    for (int t = 0; t < n_types; t++)
        failed |= bench_type(types[t], x, ids, n, d, queries, nq, n_recall, &base);
    free(centres);
    free(x);
    free(queries);
    free(ids);
    return failed;
}
