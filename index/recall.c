/* recall.c — recall@k of an index against exact (brute-force) cosine search. */
#include "index_internal.h"

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

/* kth[q] = the k-th best exact cosine of query q (unit length) over all n vectors. */
static raddino_status exact_kth(const float *q, size_t nq, const float *vectors, size_t n, int d,
                                int k, float *kth)
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
        st = exact_kth(q, nq, vectors, n, d, kk, kth);
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
