/* recall.c — recall@k of an index against exact (brute-force) cosine search. */
#include "index_internal.h"
#include "ivf_internal.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#define DB_CHUNK 4096

/* Keeps the k largest values seen (a min-heap: heap[0] is the k-th best so far). */
static void heap_push(float *heap, int k, int *size, float v)
{
    if (*size == k && v <= heap[0]) return;
    int i;
    if (*size < k) {
        i = (*size)++;
    } else {   /* replace the root and sift down */
        i = 0;
        for (;;) {
            int c = 2 * i + 1;
            if (c >= k) break;
            if (c + 1 < k && heap[c + 1] < heap[c]) c++;
            if (heap[c] >= v) break;
            heap[i] = heap[c];
            i = c;
        }
        heap[i] = v;
        return;
    }
    while (i > 0 && heap[(i - 1) / 2] > v) {   /* sift up */
        heap[i] = heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    heap[i] = v;
}

/* kth[q] = the k-th best exact cosine of query q (unit length) over all n vectors, leaving out
 * row exclude[q] when exclude is not NULL (a held-out query). */
static raddino_status exact_kth(const float *q, size_t nq, const float *vectors, size_t n, int d,
                                int k, const size_t *exclude, float *kth)
{
    float *heaps = malloc(nq * (size_t)k * sizeof *heaps);
    int *sizes = calloc(nq, sizeof *sizes);
    size_t chunk = n < DB_CHUNK ? n : DB_CHUNK;
    float *db = malloc(chunk * (size_t)d * sizeof *db);
    float *sim = malloc(nq * chunk * sizeof *sim);
    raddino_status st = index_ok();
    if (!heaps || !sizes || !db || !sim) st = index_error(RADDINO_ERR_NOMEM, "recall: out of memory");
    for (size_t r0 = 0; r0 < n && !st.code; r0 += chunk) {
        size_t m = n - r0 < chunk ? n - r0 : chunk;
        st = index_normalise(vectors + r0 * (size_t)d, m, d, db, r0);
        if (st.code) break;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)m, d, 1.0f, q, d, db,
                    d, 0.0f, sim, (int)m);
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nq; i++)
            for (size_t j = 0; j < m; j++)
                if (!exclude || r0 + j != exclude[i])
                    heap_push(heaps + i * (size_t)k, k, &sizes[i], sim[i * m + j]);
    }
    for (size_t i = 0; !st.code && i < nq; i++) kth[i] = heaps[i * (size_t)k];
    free(heaps);
    free(sizes);
    free(db);
    free(sim);
    return st;
}

typedef struct {
    int64_t id;
    size_t row;
} id_row;

static int compare_id_row(const void *a, const void *b)
{
    int64_t x = ((const id_row *)a)->id, y = ((const id_row *)b)->id;
    return (x > y) - (x < y);
}

/* Exact cosine between unit query q and stored row `row`. */
static float exact_cosine(const float *q, const float *v, int d)
{
    double dot = 0, ss = 0;
    for (int j = 0; j < d; j++) {
        dot += (double)q[j] * v[j];
        ss += (double)v[j] * v[j];
    }
    return ss > 0 ? (float)(dot / sqrt(ss)) : 0.0f;
}

raddino_status raddino_index_measure_recall(const raddino_index *index, const float *vectors,
                                            const int64_t *ids, size_t n, size_t n_queries,
                                            int k, uint64_t seed, double *recall)
{
    if (!index || !vectors || !ids || !recall || n == 0 || n_queries == 0 || k <= 0)
        return index_error(RADDINO_ERR_ARGUMENT, "recall: bad arguments");
    int d = index->dim;
    size_t nq = n_queries < n ? n_queries : n;
    int kk = (size_t)k < n ? k : (int)n;   /* at most n true neighbours */
    size_t *rows;
    raddino_status st = index_sample_rows(n, nq, seed, &rows);
    if (st.code) return st;
    float *q = malloc(nq * (size_t)d * sizeof *q);
    float *kth = malloc(nq * sizeof *kth);
    float *scores = malloc(nq * (size_t)kk * sizeof *scores);
    int64_t *found = malloc(nq * (size_t)kk * sizeof *found);
    id_row *map = malloc(n * sizeof *map);
    if (!q || !kth || !scores || !found || !map)
        st = index_error(RADDINO_ERR_NOMEM, "recall: out of memory");
    for (size_t i = 0; i < nq && !st.code; i++)
        st = index_normalise(vectors + rows[i] * (size_t)d, 1, d, q + i * (size_t)d, rows[i]);
    if (!st.code) st = raddino_index_search(index, q, nq, kk, scores, found);
    if (!st.code) {
        omp_set_num_threads(index->n_threads);
        st = exact_kth(q, nq, vectors, n, d, kk, NULL, kth);
    }
    if (!st.code) {
        for (size_t i = 0; i < n; i++) map[i] = (id_row){ids[i], i};
        qsort(map, n, sizeof *map, compare_id_row);
        size_t hits = 0;
        for (size_t i = 0; i < nq; i++)
            for (int j = 0; j < kk; j++) {
                id_row key = {found[i * (size_t)kk + j], 0};
                const id_row *at = key.id < 0 ? NULL
                                              : bsearch(&key, map, n, sizeof *map, compare_id_row);
                if (at && exact_cosine(q + i * (size_t)d, vectors + at->row * (size_t)d, d) >=
                              kth[i] - 1e-5f)
                    hits++;
            }
        *recall = (double)hits / ((double)nq * kk);
    }
    free(rows);
    free(q);
    free(kth);
    free(scores);
    free(found);
    free(map);
    return st;
}

/* ---- At build time: held-out recall, and the nprobe that reaches the target ---------------- */

typedef struct {
    size_t nq;
    int k;
    int d;
    const float *vectors;
    const int64_t *ids;
    const size_t *rows;     /* the queries' own rows */
    const float *q;         /* their unit vectors */
    const float *kth;       /* k-th best exact cosine, own row left out */
    const id_row *map;      /* ids sorted, with their rows */
    size_t n;
} held_out;

/* Recall of one search (k + 1 results a query): the query's own id is dropped, the first k
 * others count as in raddino_index_measure_recall. */
static double held_out_recall(const held_out *h, const int64_t *found)
{
    size_t hits = 0;
    for (size_t i = 0; i < h->nq; i++) {
        const int64_t *row = found + i * (size_t)(h->k + 1);
        int64_t self = h->ids[h->rows[i]];
        int used = 0, dropped = 0;
        for (int j = 0; j <= h->k && used < h->k; j++) {
            if (row[j] == self && !dropped) {
                dropped = 1;
                continue;
            }
            used++;
            id_row key = {row[j], 0};
            const id_row *at = key.id < 0 ? NULL
                                          : bsearch(&key, h->map, h->n, sizeof *h->map,
                                                    compare_id_row);
            if (at && exact_cosine(h->q + i * (size_t)h->d, h->vectors + at->row * (size_t)h->d,
                                   h->d) >= h->kth[i] - 1e-5f)
                hits++;
        }
    }
    return (double)hits / ((double)h->nq * h->k);
}

raddino_status index_build_recall(raddino_index *ix, const float *vectors, const int64_t *ids,
                                  size_t n, int tune_nprobe, uint64_t seed)
{
    ix->build_recall_queries = 0;
    if (n < 2) return index_ok();
    int d = ix->dim;
    int k = n - 1 < RADDINO_INDEX_BUILD_RECALL_K ? (int)(n - 1) : RADDINO_INDEX_BUILD_RECALL_K;
    size_t nq = n < RADDINO_INDEX_BUILD_RECALL_QUERIES ? n : RADDINO_INDEX_BUILD_RECALL_QUERIES;
    size_t *rows;
    /* Not the training sample's seed: the held-out queries are another draw. */
    raddino_status st = index_sample_rows(n, nq, seed ^ 0x6a09e667f3bcc909ull, &rows);
    if (st.code) return st;
    float *q = malloc(nq * (size_t)d * sizeof *q);
    float *kth = malloc(nq * sizeof *kth);
    float *scores = malloc(nq * (size_t)(k + 1) * sizeof *scores);
    int64_t *found = malloc(nq * (size_t)(k + 1) * sizeof *found);
    id_row *map = malloc(n * sizeof *map);
    if (!q || !kth || !scores || !found || !map)
        st = index_error(RADDINO_ERR_NOMEM, "recall: out of memory");
    for (size_t i = 0; i < nq && !st.code; i++)
        st = index_normalise(vectors + rows[i] * (size_t)d, 1, d, q + i * (size_t)d, rows[i]);
    if (!st.code) {
        omp_set_num_threads(ix->n_threads);
        st = exact_kth(q, nq, vectors, n, d, k, rows, kth);
    }
    held_out h = {nq, k, d, vectors, ids, rows, q, kth, map, n};
    if (!st.code) {
        for (size_t i = 0; i < n; i++) map[i] = (id_row){ids[i], i};
        qsort(map, n, sizeof *map, compare_id_row);
    }
    double recall = 0;
    int nlist = 0;
    size_t lists = 0;
    if (tune_nprobe && ix->nprobe > 0 && index_ivf_describe(ix->faiss, &lists, NULL, NULL, NULL,
                                                            NULL))
        nlist = lists < 65536 ? (int)lists : 65536;
    if (!st.code && nlist > 0) {
        /* Ladder 4, 6, 9, 13, 19, 28, 42...: the step is 1.5x, so the nprobe chosen is within
         * 1.5x of the least that reaches the target (latency grows with it). */
        for (int probe = 4;; probe = probe * 3 / 2) {
            if (probe >= nlist) probe = nlist;
            st = raddino_index_set_search_params(ix, probe, 0);
            if (!st.code) st = raddino_index_search(ix, q, nq, k + 1, scores, found);
            if (st.code) break;
            recall = held_out_recall(&h, found);
            if (recall >= RADDINO_INDEX_RECALL_TARGET || probe == nlist) break;
        }
    } else if (!st.code) {
        st = raddino_index_search(ix, q, nq, k + 1, scores, found);
        if (!st.code) recall = held_out_recall(&h, found);
    }
    if (!st.code) {
        ix->build_recall = recall;
        ix->build_recall_queries = (int)nq;
        ix->build_recall_k = k;
        ix->build_recall_nprobe = ix->nprobe;
    }
    free(rows);
    free(q);
    free(kth);
    free(scores);
    free(found);
    free(map);
    return st;
}
