/* bench_scale.c — the search index at scale: an on-disk IVF built in shards and merged, then
 * searched by a separate process.
 *
 *   raddino_bench_scale [--n N] [--dim D] [--shards S] [--queries Q] [--dir DIR] [--type T]
 *                       [--threads T]
 *
 * Defaults: 2,000,000 synthetic 768-d vectors, 3 shards, 200 queries, DIR ./bench_scale.d,
 * the type raddino_index_choose_type ("auto") picks for N (past 1,000,000: ondisk:IVF{L},SQ8).
 * Data: 1,000 random centres, vector i = a centre + Gaussian noise twice its norm, drawn from
 * a generator seeded by i alone, so any vector can be made again from its id: the data (6 GB
 * of float32 at 2M x 768) is streamed in chunks of 65,536 and never held whole, and the search
 * process re-ranks from the same generator (standing in for the store's float32 vectors).
 *
 * Steps and what is timed: training on a seeded sample of min(N, 64 L) vectors; each shard's
 * part (its vectors added, chunk by chunk, to a copy of the trained index); the merge of the
 * parts into one lists file; the save (the index file, and the checksums of the lists file).
 * Exact ground truth for the queries (vectors N.. N+Q-1 of the generator, not stored) is
 * computed by brute force over the same chunks while the shards are built. Then the program
 * runs itself (fork + exec) as a search process that loads the saved pair and answers the
 * queries one at a time on one thread: load time, p50/p99 latency and recall@10 with the
 * index's re-ranking and without, and the process's peak resident set (VmHWM, which counts the
 * pages of the mapped lists file it touched).
 */
#define _GNU_SOURCE
#include "raddino_index.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define K 10
#define N_CENTRES 1000

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static uint64_t mix(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static uint64_t rng_next(uint64_t *s) { return mix(*s += 0x632be59bd9b4e019ull); }

static float rng_gauss(uint64_t *s)
{
    double u = ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53, v = ((rng_next(s) >> 11) + 0.5) * 0x1.0p-53;
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}

typedef struct {
    int d;
    float *centres;
} generator;

static int make_generator(generator *g, int d)
{
    g->d = d;
    g->centres = malloc((size_t)N_CENTRES * d * sizeof *g->centres);
    if (!g->centres) return 1;
    uint64_t s = 12345;
    for (size_t i = 0; i < (size_t)N_CENTRES * d; i++)
        g->centres[i] = rng_gauss(&s) / sqrtf((float)d);
    return 0;
}

/* Vector `id` (ids from 1), from nothing but its id. */
static void make_vector(const generator *g, int64_t id, float *out)
{
    uint64_t s = mix((uint64_t)id * 0x2545f4914f6cdd1dull);
    const float *c = g->centres + (rng_next(&s) % N_CENTRES) * (size_t)g->d;
    float scale = 2.0f / sqrtf((float)g->d);
    for (int j = 0; j < g->d; j++) out[j] = c[j] + scale * rng_gauss(&s);
}

static void make_vectors(const generator *g, int64_t first_id, size_t n, float *out)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) make_vector(g, first_id + (int64_t)i, out + i * (size_t)g->d);
}

static int fetch(void *user, const int64_t *ids, size_t n, float *vectors)
{
    const generator *g = user;
    for (size_t i = 0; i < n; i++) make_vector(g, ids[i], vectors + i * (size_t)g->d);
    return 0;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
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

static double file_mb(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? (double)sb.st_size / 1e6 : -1;
}

static int fail(const char *what, raddino_status st)
{
    fprintf(stderr, "raddino_bench_scale: %s: %s\n", what, st.message);
    return 1;
}

/* Keeps the best K (score, id) of a query's row, merging a chunk's top K into it. */
static void merge_top(float *best_s, int64_t *best_i, const float *s, const int64_t *ids)
{
    float ms[2 * K];
    int64_t mi[2 * K];
    int a = 0, b = 0;
    for (int t = 0; t < K; t++) {
        int take_a = b >= K || (a < K && best_s[a] >= s[b]);
        ms[t] = take_a ? best_s[a] : s[b];
        mi[t] = take_a ? best_i[a++] : ids[b++];
    }
    memcpy(best_s, ms, K * sizeof *ms);
    memcpy(best_i, mi, K * sizeof *mi);
}

/* ---- The search process ------------------------------------------------------------------- */

static int search_process(const char *dir, size_t n, int d, size_t nq)
{
    char index_path[4096], truth_path[4096];
    snprintf(index_path, sizeof index_path, "%s/scale.faiss", dir);
    snprintf(truth_path, sizeof truth_path, "%s/truth.bin", dir);
    generator g;
    if (make_generator(&g, d)) return 1;
    long rss_before = status_kb("VmRSS");
    double t0 = now();
    raddino_index *ix;
    raddino_index_params p = raddino_index_default_params();
    p.n_threads = 1;
    raddino_status st = raddino_index_load(index_path, &p, &ix, NULL);
    if (st.code) return fail("load", st);
    double load_s = now() - t0;
    long rss_loaded = status_kb("VmRSS");
    raddino_index_info info;
    raddino_index_get_info(ix, &info);
    int64_t *truth = malloc(nq * K * sizeof *truth);
    float *q = malloc(nq * (size_t)d * sizeof *q), scores[K * 64];
    int64_t ids[K * 64];
    double *lat = malloc(nq * sizeof *lat);
    FILE *f = fopen(truth_path, "rb");
    if (!truth || !q || !lat || !f || fread(truth, sizeof *truth, nq * K, f) != nq * K) {
        fprintf(stderr, "raddino_bench_scale: %s: cannot read the ground truth\n", truth_path);
        return 1;
    }
    fclose(f);
    make_vectors(&g, (int64_t)n + 1, nq, q);
    for (int pass = 0; pass < 2; pass++) {
        int factor = pass == 0 ? 0 : 1;   /* the index's re-ranking, then none */
        size_t hits = 0;
        for (size_t i = 0; i < nq; i++) {
            double a = now();
            st = raddino_index_search_rerank(ix, q + i * (size_t)d, 1, K, factor, fetch, &g,
                                             scores, ids);
            lat[i] = (now() - a) * 1e3;
            if (st.code) return fail("search", st);
            for (int x = 0; x < K; x++)
                for (int y = 0; y < K; y++)
                    if (ids[x] == truth[i * K + y]) {
                        hits++;
                        break;
                    }
        }
        qsort(lat, nq, sizeof *lat, compare_double);
        printf("search %-22s p50 %.2f ms  p99 %.2f ms  recall@10 %.4f  (%zu single queries, "
               "1 thread, nprobe %d)\n",
               pass == 0 ? "re-ranked" : "codes only", lat[nq / 2],
               lat[(size_t)((double)nq * 0.99)], (double)hits / (double)(nq * K), nq,
               info.nprobe);
        if (pass == 0)
            printf("  (re-rank x%d: a shortlist of %d re-scored from float32 vectors)\n",
                   info.rerank, K * info.rerank);
    }
    printf("search process: load %.3f s; resident %.1f MB before load, %.1f MB after load, "
           "peak (VmHWM) %.1f MB; index in memory %.1f MB, lists file %.1f MB mapped\n",
           load_s, rss_before / 1024.0, rss_loaded / 1024.0, status_kb("VmHWM") / 1024.0,
           (double)info.memory_bytes / 1e6, (double)info.lists_bytes / 1e6);
    /* VmHWM counts the mapped lists file's pages the queries touched (page cache, shared and
     * reclaimable); the process's own memory is RssAnon. */
    printf("search process at the end: RssAnon %.1f MB (its own), RssFile %.1f MB (mapped "
           "lists pages touched by %zu x 2 queries)\n",
           status_kb("RssAnon") / 1024.0, status_kb("RssFile") / 1024.0, nq);
    raddino_index_free(ix);
    free(truth);
    free(q);
    free(lat);
    free(g.centres);
    return 0;
}

/* ---- The build ------------------------------------------------------------------------------ */

static int usage(void)
{
    fprintf(stderr, "usage: raddino_bench_scale [--n N] [--dim D] [--shards S] [--queries Q] "
                    "[--dir DIR] [--type T] [--threads T]\n");
    return 2;
}

int main(int argc, char **argv)
{
    size_t n = 2000000, nq = 200;
    int d = 768, shards = 3, threads = 0;
    const char *dir = "bench_scale.d", *type = NULL;
    if (argc == 6 && !strcmp(argv[1], "--search-process"))
        return search_process(argv[2], strtoull(argv[3], NULL, 10), atoi(argv[4]),
                              strtoull(argv[5], NULL, 10));
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v) return usage();
        if (!strcmp(argv[i], "--n")) n = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--dim")) d = atoi(v);
        else if (!strcmp(argv[i], "--shards")) shards = atoi(v);
        else if (!strcmp(argv[i], "--queries")) nq = strtoull(v, NULL, 10);
        else if (!strcmp(argv[i], "--dir")) dir = v;
        else if (!strcmp(argv[i], "--type")) type = v;
        else if (!strcmp(argv[i], "--threads")) threads = atoi(v);
        else return usage();
        i++;
    }
    if (n < 10000 || d < 8 || d > 4096 || shards < 1 || shards > 64 || nq < 1 || nq > 100000)
        return usage();
    char chosen[RADDINO_INDEX_TYPE_MAX];
    raddino_status st = raddino_index_choose_type(n, d, 0, chosen, sizeof chosen);
    if (st.code) return fail("auto", st);
    printf("auto picks for %zu x %d: %s\n", n, d, chosen);
    if (!type) type = chosen;
    if (strncmp(type, "ondisk:", 7) != 0) {
        fprintf(stderr, "raddino_bench_scale: %s is not an on-disk type (--type ondisk:IVF...)\n",
                type);
        return 2;
    }
    if (threads > 0) omp_set_num_threads(threads);
    mkdir(dir, 0777);
    char index_path[4096], lists_path[4096], truth_path[4096];
    snprintf(index_path, sizeof index_path, "%s/scale.faiss", dir);
    snprintf(lists_path, sizeof lists_path, "%s/scale.faiss.ivfdata", dir);
    snprintf(truth_path, sizeof truth_path, "%s/truth.bin", dir);
    generator g;
    if (make_generator(&g, d)) return 1;
    printf("%zu x %d synthetic vectors (1,000 centres, noise 2x), %d shards, %zu queries, %d "
           "threads\n", n, d, shards, nq, threads > 0 ? threads : omp_get_max_threads());
    fflush(stdout);

    /* Training: one quantizer, on a seeded sample. */
    size_t nlist = strtoull(strstr(type, "IVF") + 3, NULL, 10);
    size_t m = 64 * nlist < n ? 64 * nlist : n;
    double t0 = now();
    size_t *rows;
    st = raddino_index_sample_rows(n, m, 7, &rows);
    float *sample = st.code ? NULL : malloc(m * (size_t)d * sizeof *sample);
    if (!sample) return fail("sample", st);
    for (size_t i = 0; i < m; i++) make_vector(&g, (int64_t)rows[i] + 1, sample + i * (size_t)d);
    free(rows);
    raddino_index_params p = raddino_index_default_params();
    p.type = type;
    p.n_threads = threads;
    p.seed = 7;
    raddino_index *trained;
    st = raddino_index_ivf_train(sample, m, d, &p, &trained);
    free(sample);
    if (st.code) return fail("training", st);
    printf("train      %8.1f s  (%zu vectors, %zu lists)\n", now() - t0, m, nlist);
    fflush(stdout);

    /* Shards: each its own part, streamed in chunks; the exact ground truth on the way. */
    float *x = malloc((size_t)CHUNK * d * sizeof *x), *q = malloc(nq * (size_t)d * sizeof *q);
    int64_t *ids = malloc(CHUNK * sizeof *ids), *truth = malloc(nq * K * sizeof *truth);
    float *truth_s = malloc(nq * K * sizeof *truth_s), *cs = malloc(nq * K * sizeof *cs);
    int64_t *ci = malloc(nq * K * sizeof *ci);
    raddino_index **parts = calloc((size_t)shards, sizeof *parts);
    if (!x || !q || !ids || !truth || !truth_s || !cs || !ci || !parts) return 1;
    make_vectors(&g, (int64_t)n + 1, nq, q);
    for (size_t i = 0; i < nq * K; i++) {
        truth_s[i] = -INFINITY;
        truth[i] = -1;
    }
    double truth_s_total = 0, build_total = 0;
    for (int s = 0; s < shards; s++) {
        size_t first = n * (size_t)s / (size_t)shards, last = n * (size_t)(s + 1) / (size_t)shards;
        double shard_s = 0, gen_s = 0;
        for (size_t at = first; at < last; at += CHUNK) {
            size_t c = last - at < CHUNK ? last - at : CHUNK;
            double a = now();
            make_vectors(&g, (int64_t)at + 1, c, x);
            for (size_t i = 0; i < c; i++) ids[i] = (int64_t)(at + i) + 1;
            gen_s += now() - a;
            a = now();
            st = parts[s] ? raddino_index_add(parts[s], x, ids, c)
                          : raddino_index_ivf_add_part(trained, x, ids, c, &parts[s]);
            if (st.code) return fail("adding a shard's vectors", st);
            shard_s += now() - a;
            a = now();
            raddino_index_params fp = raddino_index_default_params();
            fp.n_threads = threads;
            raddino_index *flat;
            st = raddino_index_build(x, ids, c, d, &fp, &flat);
            if (!st.code) st = raddino_index_search(flat, q, nq, K, cs, ci);
            raddino_index_free(flat);
            if (st.code) return fail("exact search", st);
            for (size_t i = 0; i < nq; i++)
                merge_top(truth_s + i * K, truth + i * K, cs + i * K, ci + i * K);
            truth_s_total += now() - a;
        }
        build_total += shard_s;
        printf("shard %-4d %8.1f s  (%zu vectors added to its part; %.1f s more generating "
               "them)\n", s, shard_s, last - first, gen_s);
        fflush(stdout);
    }
    printf("exact      %8.1f s  (ground truth of %zu queries by brute force over the chunks)\n",
           truth_s_total, nq);
    FILE *f = fopen(truth_path, "wb");
    if (!f || fwrite(truth, sizeof *truth, nq * K, f) != nq * K || fclose(f) != 0) {
        fprintf(stderr, "raddino_bench_scale: %s: cannot write\n", truth_path);
        return 1;
    }

    /* Merge into one on-disk index, save it. */
    unlink(lists_path);
    t0 = now();
    raddino_index *merged;
    st = raddino_index_ivf_merge_parts(trained, parts, (size_t)shards, lists_path, &merged);
    if (st.code) return fail("merge", st);
    double merge_s = now() - t0;
    for (int s = 0; s < shards; s++) raddino_index_free(parts[s]);
    raddino_index_free(trained);
    t0 = now();
    raddino_index_meta meta;
    memset(&meta, 0, sizeof meta);
    st = raddino_index_save(merged, index_path, &meta);
    if (st.code) return fail("save", st);
    double save_s = now() - t0;
    raddino_index_free(merged);
    printf("merge      %8.1f s  (%d parts into one lists file)\n", merge_s, shards);
    printf("save       %8.1f s  (index file + checksums of the lists file)\n", save_s);
    printf("build      %8.1f s  in all (shards %.1f s, merge %.1f s, save %.1f s; training "
           "above)\n", build_total + merge_s + save_s, build_total, merge_s, save_s);
    printf("on disk    index file %.1f MB, lists file %.1f MB (%.1f bytes a vector)\n",
           file_mb(index_path), file_mb(lists_path), file_mb(lists_path) * 1e6 / (double)n);
    printf("build process peak resident set (VmHWM): %.1f MB\n", status_kb("VmHWM") / 1024.0);
    fflush(stdout);
    free(x);
    free(q);
    free(ids);
    free(truth);
    free(truth_s);
    free(cs);
    free(ci);
    free(parts);
    free(g.centres);

    /* A separate search process, as `raddino search` or `serve` would be. */
    char sn[32], sd[32], sq[32];
    snprintf(sn, sizeof sn, "%zu", n);
    snprintf(sd, sizeof sd, "%d", d);
    snprintf(sq, sizeof sq, "%zu", nq);
    pid_t pid = fork();
    if (pid == 0) {
        char *args[] = {argv[0], "--search-process", (char *)dir, sn, sd, sq, NULL};
        execv("/proc/self/exe", args);
        _exit(127);
    }
    int status = 0;
    if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
        WEXITSTATUS(status) != 0) {
        fprintf(stderr, "raddino_bench_scale: the search process failed\n");
        return 1;
    }
    return 0;
}
