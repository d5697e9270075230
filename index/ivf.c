/* ivf.c — an IVF index at scale: trained once, filled in parts, the parts' lists merged into
 * one memory-mapped lists file; and re-ranking of a shortlist by exact cosine
 * (raddino_index.h, "At scale"). */
#include "index_internal.h"
#include "ivf_internal.h"

#include <faiss/c_api/index_factory_c.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ONDISK_PREFIX "ondisk:"

int index_is_ondisk_type(const char *type)
{
    return type && strncmp(type, ONDISK_PREFIX, strlen(ONDISK_PREFIX)) == 0;
}

int index_default_rerank(const char *type)
{
    /* Scalar-quantised codes (on disk, the in-memory SQ8 "auto" picks under a tight budget,
     * and the exact-sq8 / exact-fp16 types) score within about 1e-2 of the exact cosine:
     * re-ranking a shortlist of 4 k from the float32 vectors gives back exact scores and
     * order. */
    if (index_exact_sq_factory(type)) return RADDINO_INDEX_RERANK_EXACT_SQ;
    if (index_is_ondisk_type(type)) return RADDINO_INDEX_RERANK_ONDISK;
    return type && strstr(type, "_HNSW") && strstr(type, ",SQ") ? RADDINO_INDEX_RERANK_ONDISK : 1;
}

raddino_status raddino_index_sample_rows(size_t n, size_t m, uint64_t seed, size_t **rows)
{
    if (!rows) return index_error(RADDINO_ERR_ARGUMENT, "sample rows: no output");
    return index_sample_rows(n, m, seed, rows);
}

raddino_status raddino_index_ivf_train(const float *sample, size_t n, int dim,
                                       const raddino_index_params *params, raddino_index **out)
{
    if (!out) return index_error(RADDINO_ERR_ARGUMENT, "IVF training: no output");
    *out = NULL;
    if (!params || !params->type || dim <= 0 || dim > 65536 || n == 0 || !sample)
        return index_error(RADDINO_ERR_ARGUMENT, "IVF training: bad arguments");
    const char *factory = params->type;
    if (index_is_ondisk_type(factory)) factory += strlen(ONDISK_PREFIX);
    if (strncmp(factory, "IVF", 3) != 0 || strlen(params->type) >= RADDINO_INDEX_TYPE_MAX)
        return index_error(RADDINO_ERR_ARGUMENT,
                           "index type %s: built in parts only as an IVF (IVF{lists},{codes})",
                           params->type);
    FaissIndex *faiss = NULL;
    int rc = faiss_index_factory(&faiss, dim, factory, METRIC_INNER_PRODUCT);
    if (rc) return index_faiss_error(rc, "index type");
    if (!index_ivf_describe(faiss, NULL, NULL, NULL, NULL, NULL)) {
        faiss_Index_free(faiss);
        return index_error(RADDINO_ERR_ARGUMENT, "index type %s: not an IVF at the top level",
                           params->type);
    }
    float *x = malloc(n * (size_t)dim * sizeof *x);
    if (!x) {
        faiss_Index_free(faiss);
        return index_error(RADDINO_ERR_NOMEM, "out of memory for %zu training vectors", n);
    }
    raddino_status st = index_normalise(sample, n, dim, x, 0);
    omp_set_num_threads(index_threads(params->n_threads));
    if (!st.code) {
        rc = faiss_Index_train(faiss, (idx_t)n, x);
        if (rc) st = index_faiss_error(rc, "training the index");
    }
    free(x);
    if (st.code) {
        faiss_Index_free(faiss);
        return st;
    }
    raddino_index *ix;
    st = index_wrap(faiss, params->type, params->n_threads, params->nprobe, 0, &ix);
    if (st.code) return st;
    ix->train_size = n;
    ix->seed = params->seed;
    ix->rerank = params->rerank > 0 ? params->rerank : index_default_rerank(params->type);
    *out = ix;
    return index_ok();
}

/* An empty in-memory copy of an IVF index object, with its settings. */
static raddino_status empty_like(const raddino_index *src, raddino_index **out)
{
    *out = NULL;
    char err[RADDINO_MESSAGE_MAX];
    FaissIndex *faiss;
    if (index_ivf_empty_copy(src->faiss, &faiss, err, sizeof err))
        return index_error(RADDINO_ERR_ARGUMENT, "IVF part: %s", err);
    raddino_status st = index_wrap(faiss, src->type, src->n_threads, src->nprobe, 0, out);
    if (st.code) return st;
    (*out)->train_size = src->train_size;
    (*out)->seed = src->seed;
    (*out)->rerank = src->rerank;
    return st;
}

raddino_status raddino_index_ivf_add_part(const raddino_index *trained, const float *vectors,
                                          const int64_t *ids, size_t n, raddino_index **part)
{
    if (!part) return index_error(RADDINO_ERR_ARGUMENT, "IVF part: no output");
    *part = NULL;
    if (!trained || (n > 0 && (!vectors || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "IVF part: bad arguments");
    raddino_index *ix;
    raddino_status st = empty_like(trained, &ix);
    if (!st.code) st = raddino_index_add(ix, vectors, ids, n);
    if (st.code) {
        raddino_index_free(ix);
        return st;
    }
    *part = ix;
    return st;
}

raddino_status raddino_index_ivf_merge_parts(const raddino_index *trained,
                                             raddino_index *const *parts, size_t n_parts,
                                             const char *lists_path, raddino_index **out)
{
    if (!out) return index_error(RADDINO_ERR_ARGUMENT, "IVF merge: no output");
    *out = NULL;
    if (!trained || (n_parts > 0 && !parts) || !lists_path || !*lists_path)
        return index_error(RADDINO_ERR_ARGUMENT, "IVF merge: bad arguments");
    FaissIndex **fp = malloc((n_parts ? n_parts : 1) * sizeof *fp);
    if (!fp) return index_error(RADDINO_ERR_NOMEM, "IVF merge: out of memory");
    for (size_t i = 0; i < n_parts; i++) {
        if (!parts[i] || parts[i]->dim != trained->dim) {
            free(fp);
            return index_error(RADDINO_ERR_ARGUMENT, "IVF merge: part %zu is not of this index",
                               i);
        }
        fp[i] = parts[i]->faiss;
    }
    char err[RADDINO_MESSAGE_MAX];
    FaissIndex *merged;
    omp_set_num_threads(trained->n_threads);
    int rc = index_ivf_merge_ondisk(trained->faiss, fp, n_parts, lists_path, &merged, err,
                                    sizeof err);
    free(fp);
    if (rc)
        return index_error(rc == -3 ? RADDINO_ERR_NOMEM : RADDINO_ERR_ARGUMENT,
                           "%s: merging the index parts: %s", lists_path, err);
    /* The trained index's type with the prefix (train refuses types too long for it). */
    char type[RADDINO_INDEX_TYPE_MAX + 8];
    snprintf(type, sizeof type, "%s%s", index_is_ondisk_type(trained->type) ? "" : ONDISK_PREFIX,
             trained->type);
    if (strlen(type) >= RADDINO_INDEX_TYPE_MAX) {
        faiss_Index_free(merged);
        return index_error(RADDINO_ERR_ARGUMENT, "index type %s: too long", type);
    }
    raddino_index *ix;
    raddino_status st = index_wrap(merged, type, trained->n_threads, trained->nprobe, 0, &ix);
    if (st.code) return st;
    ix->train_size = trained->train_size;
    ix->seed = trained->seed;
    ix->rerank = trained->rerank > 1 ? trained->rerank : index_default_rerank(type);
    *out = ix;
    return st;
}

/* ---- Re-ranking ------------------------------------------------------------------------------ */

typedef struct {
    float score;
    int64_t id;
} scored;

static int compare_scored(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

raddino_status raddino_index_search_rerank(const raddino_index *index, const float *queries,
                                           size_t nq, int k, int factor,
                                           raddino_index_fetch_fn fetch, void *user,
                                           float *scores, int64_t *ids)
{
    if (!index || k <= 0 || factor < 0 || (nq > 0 && (!queries || !scores || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "index search: bad arguments");
    if (factor == 0) factor = index->rerank > 0 ? index->rerank : 1;
    if (factor == 1 || !fetch || nq == 0)
        return raddino_index_search(index, queries, nq, k, scores, ids);
    if ((size_t)k * (size_t)factor > (1u << 20))
        return index_error(RADDINO_ERR_ARGUMENT, "index search: shortlist of %d x %d too long",
                           k, factor);
    int kk = k * factor, d = index->dim;
    float *ss = malloc((size_t)kk * sizeof *ss), *q = malloc((size_t)d * sizeof *q);
    int64_t *si = malloc((size_t)kk * sizeof *si);
    float *v = malloc((size_t)kk * (size_t)d * sizeof *v);
    scored *best = malloc((size_t)kk * sizeof *best);
    raddino_status st = index_ok();
    if (!ss || !q || !si || !v || !best)
        st = index_error(RADDINO_ERR_NOMEM, "out of memory re-ranking");
    for (size_t i = 0; i < nq && !st.code; i++) {
        st = raddino_index_search(index, queries + i * (size_t)d, 1, kk, ss, si);
        if (!st.code) st = index_normalise(queries + i * (size_t)d, 1, d, q, i);
        if (st.code) break;
        size_t m = 0;   /* valid ids come first: FAISS pads the row's end with -1 */
        while (m < (size_t)kk && si[m] >= 0) m++;
        if (m > 0 && fetch(user, si, m, v) != 0) {
            st = index_error(RADDINO_ERR_IO,
                             "re-ranking: the stored vectors of the shortlist cannot be read");
            break;
        }
        if (m > 0) st = index_normalise(v, m, d, v, 0);
        for (size_t j = 0; j < m && !st.code; j++) {
            double dot = 0;
            const float *x = v + j * (size_t)d;
            for (int t = 0; t < d; t++) dot += (double)q[t] * x[t];
            best[j] = (scored){(float)dot, si[j]};
        }
        if (st.code) break;
        qsort(best, m, sizeof *best, compare_scored);
        for (int j = 0; j < k; j++) {
            scores[i * (size_t)k + j] = (size_t)j < m ? best[j].score : -INFINITY;
            ids[i * (size_t)k + j] = (size_t)j < m ? best[j].id : -1;
        }
    }
    free(ss);
    free(q);
    free(si);
    free(v);
    free(best);
    return st;
}
