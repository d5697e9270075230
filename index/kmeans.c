/* kmeans.c — spherical k-means through FAISS's Clustering, and silhouette scores (ours). */
#include "index_internal.h"

#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define ASSIGN_CHUNK 16384
#define SILHOUETTE_BLOCK 256
#define SILHOUETTE_MAX 50000

raddino_kmeans_params raddino_kmeans_default_params(void)
{
    raddino_kmeans_params p;
    memset(&p, 0, sizeof p);
    p.k = 8;
    p.seed = 1234;
    p.iterations = 20;
    return p;
}

/* Normalised copies of the chosen rows. */
static raddino_status gather_rows(const float *vectors, int dim, const size_t *rows, size_t m,
                                  float **out)
{
    *out = malloc((m ? m : 1) * (size_t)dim * sizeof **out);
    if (!*out) return index_error(RADDINO_ERR_NOMEM, "out of memory for %zu vectors", m);
    raddino_status st = index_ok();
    for (size_t i = 0; i < m && !st.code; i++)
        st = index_normalise(vectors + rows[i] * (size_t)dim, 1, dim, *out + i * (size_t)dim,
                             rows[i]);
    if (st.code) {
        free(*out);
        *out = NULL;
    }
    return st;
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#define SEED_TRIALS 16

/* Greedy k-means++ seeding on unit rows: each step draws SEED_TRIALS candidates with
 * probability proportional to their squared distance 2(1 - cos) to the nearest seed so far and
 * keeps the one that lowers the total most. Why not FAISS's own start (k random rows): on
 * well-separated groups that often puts two seeds in one group and none in another, a local
 * minimum Lloyd's iterations never leave. In high dimension single rows are noisy seeds, so
 * plain k-means++ (one candidate) still misses groups often; 16 candidates make that rare.
 * Seeds come from the first `pool` rows (the sample is already random): cost 16*k*pool*d. */
static raddino_status seed_plus_plus(const float *x, size_t m, int d, int k, uint64_t seed,
                                     float *seeds)
{
    size_t pool = m < 16 * (size_t)k + 4096 ? m : 16 * (size_t)k + 4096;
    double *dist = malloc(pool * sizeof *dist);
    double *cum = malloc(pool * sizeof *cum);
    float *sim = malloc(SEED_TRIALS * pool * sizeof *sim);
    float *cand = malloc(SEED_TRIALS * (size_t)d * sizeof *cand);
    if (!dist || !cum || !sim || !cand) {
        free(dist);
        free(cum);
        free(sim);
        free(cand);
        return index_error(RADDINO_ERR_NOMEM, "k-means: out of memory");
    }
    uint64_t state = seed ^ 0x6b6d65616e73ull;
    size_t first = (size_t)(splitmix64(&state) % pool);
    for (size_t i = 0; i < pool; i++) dist[i] = INFINITY;
    memcpy(cand, x + first * (size_t)d, (size_t)d * sizeof *cand);
    int trials = 1;
    for (int c = 0; c < k; c++) {
        /* Similarities of the candidates to the pool; keep the candidate with least total. */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, trials, (int)pool, d, 1.0f, cand, d,
                    x, d, 0.0f, sim, (int)pool);
        int best = 0;
        double best_total = INFINITY;
        for (int t = 0; t < trials; t++) {
            double total = 0;
            for (size_t i = 0; i < pool; i++) {
                double d2 = 2.0 * (1.0 - (double)sim[(size_t)t * pool + i]);
                total += d2 < dist[i] ? (d2 > 0 ? d2 : 0) : dist[i];
            }
            if (total < best_total) {
                best_total = total;
                best = t;
            }
        }
        memcpy(seeds + (size_t)c * d, cand + (size_t)best * d, (size_t)d * sizeof *seeds);
        double running = 0;
        for (size_t i = 0; i < pool; i++) {
            double d2 = 2.0 * (1.0 - (double)sim[(size_t)best * pool + i]);
            if (d2 < 0) d2 = 0;
            if (d2 < dist[i]) dist[i] = d2;
            running += dist[i];
            cum[i] = running;
        }
        /* Draw the next candidates; a zero total (fewer distinct rows than k) draws the last
         * row again and FAISS splits clusters as needed. */
        trials = SEED_TRIALS;
        for (int t = 0; t < trials; t++) {
            double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53 * running;
            size_t lo = 0, hi = pool - 1;
            while (lo < hi) {   /* first i with cum[i] > u */
                size_t mid = lo + (hi - lo) / 2;
                if (cum[mid] > u) hi = mid; else lo = mid + 1;
            }
            memcpy(cand + (size_t)t * d, x + lo * (size_t)d, (size_t)d * sizeof *cand);
        }
    }
    free(dist);
    free(cum);
    free(sim);
    free(cand);
    return index_ok();
}

/* FAISS's Clustering, started from our seeds: a first train() on exactly the k seeds leaves
 * them as its centroids (FAISS copies a training set of size k), and a Clustering whose
 * centroids are set on entry to train() starts from them. */
static raddino_status train_centroids(const float *x, size_t m, int dim,
                                      const raddino_kmeans_params *p, FaissIndex **assigner,
                                      float *centroids)
{
    FaissClusteringParameters cp;
    faiss_ClusteringParameters_init(&cp);
    cp.niter = p->iterations > 0 ? p->iterations : 20;
    cp.spherical = 1;
    cp.verbose = 0;
    cp.seed = (int)(p->seed & 0x7fffffff);
    cp.min_points_per_centroid = 1;     /* we checked n >= k; no FAISS warning on stderr */
    size_t per = m / (size_t)p->k + 1;  /* we sampled already: FAISS must not sample again */
    cp.max_points_per_centroid = per > (size_t)INT32_MAX ? INT32_MAX : (int)per;
    float *seeds = malloc((size_t)p->k * (size_t)dim * sizeof *seeds);
    if (!seeds) return index_error(RADDINO_ERR_NOMEM, "k-means: out of memory");
    raddino_status st = seed_plus_plus(x, m, dim, p->k, p->seed, seeds);
    FaissClustering *clus = NULL;
    FaissIndexFlatIP *flat = NULL;
    int rc = st.code ? 0 : faiss_Clustering_new_with_params(&clus, dim, p->k, &cp);
    if (rc == 0 && !st.code) rc = faiss_IndexFlatIP_new_with(&flat, dim);
    if (rc == 0 && !st.code) rc = faiss_Clustering_train(clus, p->k, seeds, flat);
    if (rc == 0 && !st.code) rc = faiss_Clustering_train(clus, (idx_t)m, x, flat);
    if (rc) st = index_faiss_error(rc, "k-means");
    free(seeds);
    if (!st.code) {
        float *c;
        size_t size;
        faiss_Clustering_centroids(clus, &c, &size);
        /* FAISS leaves the final centroids in the index it trained with: it assigns below. */
        if (size != (size_t)p->k * (size_t)dim || faiss_Index_ntotal(flat) != p->k)
            st = index_error(RADDINO_ERR_ARGUMENT, "k-means: FAISS returned %zu values", size);
        else
            memcpy(centroids, c, size * sizeof *c);
    }
    if (clus) faiss_Clustering_free(clus);
    if (st.code && flat) {
        faiss_Index_free(flat);
        flat = NULL;
    }
    *assigner = flat;
    return st;
}

static raddino_status assign_all(const float *vectors, size_t n, int dim, FaissIndex *assigner,
                                 raddino_kmeans_result *r)
{
    size_t chunk = n < ASSIGN_CHUNK ? n : ASSIGN_CHUNK;
    float *x = malloc(chunk * (size_t)dim * sizeof *x);
    float *ip = malloc(chunk * sizeof *ip);
    idx_t *label = malloc(chunk * sizeof *label);
    raddino_status st = index_ok();
    if (!x || !ip || !label) st = index_error(RADDINO_ERR_NOMEM, "k-means: out of memory");
    r->objective = 0;
    for (size_t i = 0; i < n && !st.code; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        st = index_normalise(vectors + i * (size_t)dim, m, dim, x, i);
        if (st.code) break;
        int rc = faiss_Index_search(assigner, (idx_t)m, x, 1, ip, label);
        if (rc) {
            st = index_faiss_error(rc, "k-means assignment");
            break;
        }
        for (size_t j = 0; j < m; j++) {
            idx_t c = label[j] >= 0 && label[j] < r->k ? label[j] : 0;  /* -1: a zero vector */
            r->assignment[i + j] = (int32_t)c;
            r->distance[i + j] = label[j] >= 0 ? 1.0f - ip[j] : 1.0f;
            r->sizes[c]++;
            r->objective += r->distance[i + j];
        }
    }
    free(x);
    free(ip);
    free(label);
    return st;
}

int raddino_kmeans_default_restarts(size_t n, int dim, const raddino_kmeans_params *params)
{
    raddino_kmeans_params p = params ? *params : raddino_kmeans_default_params();
    size_t m = p.sample ? p.sample : 256 * (size_t)p.k;
    if (m > n) m = n;
    double iterations = p.iterations > 0 ? p.iterations : 20;
    double cost = (iterations * (double)m + (double)n) * (double)p.k * (double)dim;
    if (!(cost > 0)) return RADDINO_KMEANS_RESTARTS;
    double fit = floor(RADDINO_KMEANS_BUDGET / cost);
    return fit >= RADDINO_KMEANS_RESTARTS ? RADDINO_KMEANS_RESTARTS : fit < 1 ? 1 : (int)fit;
}

/* One run: sample, seed, train, assign every vector (the objective is over all n). */
static raddino_status kmeans_once(const float *vectors, size_t n, int dim, size_t m,
                                  const raddino_kmeans_params *p, raddino_kmeans_result *out)
{
    out->k = p->k;
    out->dim = dim;
    out->n = n;
    out->n_train = m;
    out->centroids = malloc((size_t)p->k * (size_t)dim * sizeof *out->centroids);
    out->assignment = malloc(n * sizeof *out->assignment);
    out->distance = malloc(n * sizeof *out->distance);
    out->sizes = calloc((size_t)p->k, sizeof *out->sizes);
    if (!out->centroids || !out->assignment || !out->distance || !out->sizes)
        return index_error(RADDINO_ERR_NOMEM, "k-means: out of memory for %zu vectors", n);
    size_t *rows;
    float *x = NULL;
    FaissIndex *assigner = NULL;
    raddino_status st = index_sample_rows(n, m, p->seed, &rows);
    if (!st.code) {
        st = gather_rows(vectors, dim, rows, m, &x);
        free(rows);
    }
    if (!st.code) st = train_centroids(x, m, dim, p, &assigner, out->centroids);
    free(x);
    if (!st.code) st = assign_all(vectors, n, dim, assigner, out);
    if (assigner) faiss_Index_free(assigner);
    return st;
}

raddino_status raddino_kmeans(const float *vectors, size_t n, int dim,
                              const raddino_kmeans_params *params, raddino_kmeans_result *out)
{
    if (!out) return index_error(RADDINO_ERR_ARGUMENT, "k-means: no output");
    memset(out, 0, sizeof *out);
    raddino_kmeans_params p = params ? *params : raddino_kmeans_default_params();
    if (!vectors || dim <= 0 || dim > 65536 || p.k < 1 || p.k > 1000000 || p.iterations < 0 ||
        p.restarts < 0 || p.restarts > 100000)
        return index_error(RADDINO_ERR_ARGUMENT, "k-means: bad arguments");
    if (n < (size_t)p.k)
        return index_error(RADDINO_ERR_ARGUMENT, "k-means: %zu vectors cannot make %d clusters",
                           n, p.k);
    size_t m = p.sample ? p.sample : 256 * (size_t)p.k;
    if (m > n) m = n;
    if (m < (size_t)p.k)
        return index_error(RADDINO_ERR_ARGUMENT, "k-means: a sample of %zu is fewer than k = %d",
                           m, p.k);
    omp_set_num_threads(index_threads(p.n_threads));
    int runs = p.restarts ? p.restarts : raddino_kmeans_default_restarts(n, dim, &p);
    double *objectives = malloc((size_t)runs * sizeof *objectives);
    if (!objectives) return index_error(RADDINO_ERR_NOMEM, "k-means: out of memory");
    raddino_status st = index_ok();
    for (int r = 0; r < runs && !st.code; r++) {
        raddino_kmeans_params pr = p;
        pr.seed = p.seed + (uint64_t)r;
        raddino_kmeans_result one;
        memset(&one, 0, sizeof one);
        st = kmeans_once(vectors, n, dim, m, &pr, &one);
        if (!st.code) objectives[r] = one.objective;
        if (!st.code && (r == 0 || one.objective < out->objective)) {
            raddino_kmeans_result_free(out);
            *out = one;
            out->best_run = r;
        } else {
            raddino_kmeans_result_free(&one);
        }
    }
    if (st.code) {
        free(objectives);
        raddino_kmeans_result_free(out);
        return st;
    }
    out->restarts = runs;
    out->objectives = objectives;
    return st;
}

void raddino_kmeans_result_free(raddino_kmeans_result *result)
{
    if (!result) return;
    free(result->centroids);
    free(result->assignment);
    free(result->distance);
    free(result->sizes);
    free(result->objectives);
    memset(result, 0, sizeof *result);
}

/* ---- Silhouette --------------------------------------------------------------------------- */

/* Silhouette of sample rows [r0, r0+nb) given their cosine similarities to all m sample rows. */
static double silhouette_block(const float *sim, size_t nb, size_t m, size_t r0,
                               const int32_t *label, const size_t *count, int k, double *sums)
{
    double total = 0;
    for (size_t i = 0; i < nb; i++) {
        memset(sums, 0, (size_t)k * sizeof *sums);
        const float *row = sim + i * m;
        for (size_t j = 0; j < m; j++)
            if (j != r0 + i) sums[label[j]] += 1.0 - (double)row[j];
        int own = label[r0 + i];
        if (count[own] < 2) continue;   /* alone in its cluster: 0 by convention */
        double a = sums[own] / (double)(count[own] - 1), b = DBL_MAX;
        for (int c = 0; c < k; c++)
            if (c != own && count[c] > 0 && sums[c] / (double)count[c] < b)
                b = sums[c] / (double)count[c];
        if (b == DBL_MAX) continue;     /* one cluster only */
        double s = a < b ? 1 - a / b : (a > b ? b / a - 1 : 0);
        total += s;
    }
    return total;
}

raddino_status raddino_silhouette(const float *vectors, size_t n, int dim,
                                  const int32_t *assignment, int k, size_t sample, uint64_t seed,
                                  int n_threads, double *score)
{
    if (!vectors || !assignment || !score || dim <= 0 || k < 1 || n == 0)
        return index_error(RADDINO_ERR_ARGUMENT, "silhouette: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (assignment[i] < 0 || assignment[i] >= k)
            return index_error(RADDINO_ERR_ARGUMENT, "silhouette: vector %zu has cluster %d", i,
                               (int)assignment[i]);
    size_t m = sample ? sample : 5000;
    if (m > SILHOUETTE_MAX) m = SILHOUETTE_MAX;   /* sample^2 * dim work */
    if (m > n) m = n;
    size_t *rows;
    raddino_status st = index_sample_rows(n, m, seed, &rows);
    if (st.code) return st;
    float *x = NULL;
    st = gather_rows(vectors, dim, rows, m, &x);
    int32_t *label = malloc(m * sizeof *label);
    size_t *count = calloc((size_t)k, sizeof *count);
    float *sim = malloc(SILHOUETTE_BLOCK * m * sizeof *sim);
    double *sums = malloc((size_t)k * sizeof *sums);
    if (!st.code && (!label || !count || !sim || !sums))
        st = index_error(RADDINO_ERR_NOMEM, "silhouette: out of memory");
    if (!st.code) {
        for (size_t i = 0; i < m; i++) {
            label[i] = assignment[rows[i]];
            count[label[i]]++;
        }
        omp_set_num_threads(index_threads(n_threads));
        double total = 0;
        for (size_t r0 = 0; r0 < m; r0 += SILHOUETTE_BLOCK) {
            size_t nb = m - r0 < SILHOUETTE_BLOCK ? m - r0 : SILHOUETTE_BLOCK;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nb, (int)m, dim, 1.0f,
                        x + r0 * (size_t)dim, dim, x, dim, 0.0f, sim, (int)m);
            total += silhouette_block(sim, nb, m, r0, label, count, k, sums);
        }
        *score = total / (double)m;
    }
    free(rows);
    free(x);
    free(label);
    free(count);
    free(sim);
    free(sums);
    return st;
}
