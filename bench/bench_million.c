/* bench_million.c — the in-memory index "auto" picks at a million vectors: build time, memory,
 * single-query latency and recall@10, each printed beside its bound (issue 20: < 600 s to
 * build on the machine's cores, p50 < 5 ms, p99 < 20 ms, recall@10 >= 0.95).
 *
 *   raddino_bench_million [--n N] [--dim D] [--queries Q] [--dir DIR] [--type T]
 *                         [--threads T] [--nprobe P,P,...] STEP...
 *
 * Steps, run in the order given (one process each, or several in one):
 *   truth   exact top-10 of the queries by brute force over the data (not timed) -> DIR/truth.bin
 *   build   generates the N vectors (held in memory, as the collection holds them when it
 *           builds), builds the index (type T, default "auto") with T threads (default all
 *           cores), saves it -> DIR/million.faiss. Prints the build time (the
 *           raddino_index_build call: training, adding, the held-out recall and nprobe choice
 *           at build), the index's bytes, the process's peak resident set.
 *   query   loads DIR/million.faiss and answers the Q queries one at a time on one thread,
 *           after one warm-up pass: p50, p99, recall@10 against DIR/truth.bin; with
 *           --nprobe also at each of the listed nprobe values.
 * Splitting them lets each timed step run in its own short exclusive slot of a shared machine.
 *
 * Data (bench/synthetic.h): N clustered synthetic vectors, ids 1..N; the queries are vectors
 * N+1..N+Q of the same generator: near the data, not in it. recall@10 counts the returned ids
 * that are among the exact top 10. Defaults: N 1,000,000, D 768, Q 1,000, DIR ./bench_million.d.
 */
#define _GNU_SOURCE
#include "raddino_index.h"
#include "synthetic.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define K 10
#define CHUNK 65536
#define BOUND_BUILD_S 600.0
#define BOUND_P50_MS 5.0
#define BOUND_P99_MS 20.0
#define BOUND_RECALL 0.95

typedef struct {
    size_t n, nq;
    int d, threads;
    const char *dir, *type, *nprobes;
} options;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static long status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    size_t len = strlen(key);
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, key, len) && line[len] == ':') kb = strtol(line + len + 1, NULL, 10);
    if (f) fclose(f);
    return kb;
}

static int fail(const char *what, raddino_status st)
{
    fprintf(stderr, "raddino_bench_million: %s: %s\n", what, st.message);
    return 1;
}

static const char *verdict(int ok) { return ok ? "ok" : "MISSED"; }

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Keeps the best K (score, id) of a query, merging a chunk's top K into it. */
static void merge_top(float *best_s, int64_t *best_i, const float *s, const int64_t *ids)
{
    float ms[K];
    int64_t mi[K];
    int a = 0, b = 0;
    for (int t = 0; t < K; t++) {
        int take_a = b >= K || (a < K && best_s[a] >= s[b]);
        ms[t] = take_a ? best_s[a] : s[b];
        mi[t] = take_a ? best_i[a++] : ids[b++];
    }
    memcpy(best_s, ms, sizeof ms);
    memcpy(best_i, mi, sizeof mi);
}

static void path_in(const options *o, const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", o->dir, name);
}

/* ---- truth ------------------------------------------------------------------------------- */

static int step_truth(const options *o, const synth_generator *g)
{
    double t0 = now();
    int d = o->d;
    float *x = malloc((size_t)CHUNK * d * sizeof *x), *q = malloc(o->nq * (size_t)d * sizeof *q);
    int64_t *ids = malloc(CHUNK * sizeof *ids), *truth = malloc(o->nq * K * sizeof *truth);
    float *best = malloc(o->nq * K * sizeof *best), *cs = malloc(o->nq * K * sizeof *cs);
    int64_t *ci = malloc(o->nq * K * sizeof *ci);
    if (!x || !q || !ids || !truth || !best || !cs || !ci) return 1;
    synth_vectors(g, (int64_t)o->n + 1, o->nq, q);
    for (size_t i = 0; i < o->nq * K; i++) {
        best[i] = -INFINITY;
        truth[i] = -1;
    }
    for (size_t at = 0; at < o->n; at += CHUNK) {
        size_t c = o->n - at < CHUNK ? o->n - at : CHUNK;
        synth_vectors(g, (int64_t)at + 1, c, x);
        for (size_t i = 0; i < c; i++) ids[i] = (int64_t)(at + i) + 1;
        raddino_index_params fp = raddino_index_default_params();   /* flat: exact */
        fp.n_threads = o->threads;
        raddino_index *flat;
        raddino_status st = raddino_index_build(x, ids, c, d, &fp, &flat);
        if (!st.code) st = raddino_index_search(flat, q, o->nq, K, cs, ci);
        raddino_index_free(flat);
        if (st.code) return fail("exact search", st);
        for (size_t i = 0; i < o->nq; i++)
            merge_top(best + i * K, truth + i * K, cs + i * K, ci + i * K);
    }
    char path[4096];
    path_in(o, "truth.bin", path, sizeof path);
    FILE *f = fopen(path, "wb");
    uint64_t head[3] = {o->n, (uint64_t)d, o->nq};
    if (!f || fwrite(head, sizeof head, 1, f) != 1 ||
        fwrite(truth, sizeof *truth, o->nq * K, f) != o->nq * K || fclose(f) != 0) {
        fprintf(stderr, "raddino_bench_million: %s: cannot write\n", path);
        return 1;
    }
    printf("truth      exact top-%d of %zu queries over %zu vectors in %.1f s (untimed step)\n",
           K, o->nq, o->n, now() - t0);
    free(x);
    free(q);
    free(ids);
    free(truth);
    free(best);
    free(cs);
    free(ci);
    return 0;
}

/* ---- build ------------------------------------------------------------------------------- */

static int step_build(const options *o, const synth_generator *g)
{
    int d = o->d;
    char chosen[RADDINO_INDEX_TYPE_MAX];
    raddino_status st = raddino_index_choose_type(o->n, d, 0, chosen, sizeof chosen);
    if (st.code) return fail("auto", st);
    printf("auto picks for %zu x %d (budget: half the physical memory): %s\n", o->n, d, chosen);
    double t0 = now();
    float *x = malloc(o->n * (size_t)d * sizeof *x);
    int64_t *ids = malloc(o->n * sizeof *ids);
    if (!x || !ids) {
        fprintf(stderr, "raddino_bench_million: out of memory for %zu vectors\n", o->n);
        return 1;
    }
    synth_vectors(g, 1, o->n, x);
    for (size_t i = 0; i < o->n; i++) ids[i] = (int64_t)i + 1;
    double gen_s = now() - t0;
    long rss_data = status_kb("VmRSS");
    raddino_index_params p = raddino_index_default_params();
    p.type = o->type;
    p.n_threads = o->threads;
    p.seed = 7;
    raddino_index *ix;
    t0 = now();
    st = raddino_index_build(x, ids, o->n, d, &p, &ix);
    double build_s = now() - t0;
    if (st.code) return fail("build", st);
    long hwm = status_kb("VmHWM");
    raddino_index_info info;
    st = raddino_index_get_info(ix, &info);
    if (st.code) return fail("info", st);
    char path[4096];
    path_in(o, "million.faiss", path, sizeof path);
    raddino_index_meta meta;
    memset(&meta, 0, sizeof meta);
    t0 = now();
    st = raddino_index_save(ix, path, &meta);
    if (st.code) return fail("save", st);
    double save_s = now() - t0;
    int threads = o->threads > 0 ? o->threads : omp_get_num_procs();
    printf("data       %zu x %d synthetic vectors (1,000 centres, noise 2x) made in %.1f s "
           "(not counted)\n", o->n, d, gen_s);
    printf("build      %.1f s with %d threads (bound %.0f s: %s)  type %s, %d lists, nprobe %d\n",
           build_s, threads, BOUND_BUILD_S, verdict(build_s < BOUND_BUILD_S), info.type,
           info.nlist, info.nprobe);
    if (info.build_recall_queries > 0)
        printf("           recall@%d at build %.4f (%d held-out vectors, nprobe %d; target %.2f)\n",
               info.build_recall_k, info.build_recall, info.build_recall_queries,
               info.build_recall_nprobe, RADDINO_INDEX_RECALL_TARGET);
    printf("save       %.1f s (%s)\n", save_s, path);
    printf("memory     index %.1f MB = %.1f bytes a vector (FAISS's serialised size); "
           "re-rank x%d\n", (double)info.memory_bytes / 1e6,
           (double)info.memory_bytes / (double)o->n, info.rerank);
    printf("           build process peak RSS (VmHWM) %.1f MB, of which the input vectors "
           "%.1f MB (resident %.1f MB before the build)\n",
           hwm / 1024.0, (double)o->n * d * 4 / 1048576.0, rss_data / 1024.0);
    raddino_index_free(ix);
    free(x);
    free(ids);
    return 0;
}

/* ---- query ------------------------------------------------------------------------------- */

static int run_queries(raddino_index *ix, const synth_generator *g, const float *q,
                       const int64_t *truth, size_t nq, const char *label, int check)
{
    raddino_index_info info;
    raddino_index_get_info(ix, &info);
    int d = g->d;
    double *lat = malloc(nq * sizeof *lat);
    float scores[K];
    int64_t ids[K];
    if (!lat) return 1;
    size_t hits = 0;
    for (int pass = 0; pass < 2; pass++) {   /* pass 0 warms the caches, pass 1 is measured */
        hits = 0;
        for (size_t i = 0; i < nq; i++) {
            double a = now();
            raddino_status st = raddino_index_search_rerank(ix, q + i * (size_t)d, 1, K, 0,
                                                            synth_fetch, (void *)g, scores, ids);
            lat[i] = (now() - a) * 1e3;
            if (st.code) return fail("search", st);
            for (int x = 0; x < K; x++)
                for (int y = 0; y < K; y++)
                    if (ids[x] == truth[i * K + y]) {
                        hits++;
                        break;
                    }
        }
    }
    qsort(lat, nq, sizeof *lat, compare_double);
    double p50 = lat[nq / 2], p99 = lat[(size_t)((double)(nq - 1) * 0.99)];
    double recall = (double)hits / (double)(nq * K);
    if (check)
        printf("%-10s p50 %.2f ms (bound %.0f: %s)  p99 %.2f ms (bound %.0f: %s)  recall@10 "
               "%.4f (bound %.2f: %s)  [%zu single queries, 1 thread, nprobe %d, re-rank x%d]\n",
               label, p50, BOUND_P50_MS, verdict(p50 < BOUND_P50_MS), p99, BOUND_P99_MS,
               verdict(p99 < BOUND_P99_MS), recall, BOUND_RECALL, verdict(recall >= BOUND_RECALL),
               nq, info.nprobe, info.rerank);
    else
        printf("%-10s p50 %.2f ms  p99 %.2f ms  recall@10 %.4f  [nprobe %d, re-rank x%d]\n",
               label, p50, p99, recall, info.nprobe, info.rerank);
    fflush(stdout);
    free(lat);
    return 0;
}

static int step_query(const options *o, const synth_generator *g)
{
    int d = o->d;
    char path[4096], truth_path[4096];
    path_in(o, "million.faiss", path, sizeof path);
    path_in(o, "truth.bin", truth_path, sizeof truth_path);
    int64_t *truth = malloc(o->nq * K * sizeof *truth);
    float *q = malloc(o->nq * (size_t)d * sizeof *q);
    uint64_t head[3];
    FILE *f = fopen(truth_path, "rb");
    if (!truth || !q || !f || fread(head, sizeof head, 1, f) != 1 || head[0] != o->n ||
        head[1] != (uint64_t)d || head[2] != o->nq ||
        fread(truth, sizeof *truth, o->nq * K, f) != o->nq * K) {
        fprintf(stderr, "raddino_bench_million: %s: missing or made for other --n/--dim/"
                        "--queries (run the truth step)\n", truth_path);
        return 1;
    }
    fclose(f);
    synth_vectors(g, (int64_t)o->n + 1, o->nq, q);
    raddino_index_params p = raddino_index_default_params();
    p.n_threads = 1;
    raddino_index *ix;
    double t0 = now();
    raddino_status st = raddino_index_load(path, &p, &ix, NULL);
    if (st.code) return fail("load", st);
    double load_s = now() - t0;
    raddino_index_info info;
    raddino_index_get_info(ix, &info);
    printf("load       %.1f s  (%s: %s, %lld vectors, %.1f MB)\n", load_s, path, info.type,
           (long long)info.ntotal, (double)info.memory_bytes / 1e6);
    if (run_queries(ix, g, q, truth, o->nq, "search", 1)) return 1;
    int own = info.nprobe;
    for (const char *s = o->nprobes; s && *s;) {
        char *end;
        long probe = strtol(s, &end, 10);
        if (end == s || probe <= 0) break;
        st = raddino_index_set_search_params(ix, (int)probe, 0);
        if (st.code) return fail("nprobe", st);
        char label[32];
        snprintf(label, sizeof label, "nprobe %ld", probe);
        if (run_queries(ix, g, q, truth, o->nq, label, 0)) return 1;
        s = *end == ',' ? end + 1 : end;
    }
    raddino_index_set_search_params(ix, own, 0);
    printf("query process peak RSS (VmHWM) %.1f MB\n", status_kb("VmHWM") / 1024.0);
    raddino_index_free(ix);
    free(truth);
    free(q);
    return 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: raddino_bench_million [--n N] [--dim D] [--queries Q] [--dir DIR] "
                    "[--type T] [--threads T] [--nprobe P,P...] truth|build|query...\n");
    return 2;
}

int main(int argc, char **argv)
{
    options o = {1000000, 1000, 768, 0, "bench_million.d", "auto", NULL};
    int first_step = argc;
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--", 2) != 0) {
            first_step = i;
            break;
        }
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(argv[i], "--n")) o.n = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--dim")) o.d = atoi(v);
        else if (!strcmp(argv[i], "--queries")) o.nq = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--dir")) o.dir = v;
        else if (!strcmp(argv[i], "--type")) o.type = v;
        else if (!strcmp(argv[i], "--threads")) o.threads = atoi(v);
        else if (!strcmp(argv[i], "--nprobe")) o.nprobes = v;
        else return usage();
        i++;
    }
    if (first_step >= argc || o.n < 1000 || o.d < 8 || o.d > 4096 || o.nq < 2 ||
        o.nq > 100000 || o.threads < 0)
        return usage();
    if (o.threads > 0) omp_set_num_threads(o.threads);
    mkdir(o.dir, 0777);
    synth_generator g;
    if (synth_make(&g, o.d)) return 1;
    int rc = 0;
    for (int i = first_step; i < argc && rc == 0; i++) {
        if (!strcmp(argv[i], "truth")) rc = step_truth(&o, &g);
        else if (!strcmp(argv[i], "build")) rc = step_build(&o, &g);
        else if (!strcmp(argv[i], "query")) rc = step_query(&o, &g);
        else rc = usage();
        fflush(stdout);
    }
    free(g.centres);
    return rc;
}
