/* index.c — building, updating and searching a FAISS index through its C API. */
#include "index_internal.h"
#include "ivf_internal.h"

#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/IndexPreTransform_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Rows normalised and handed to FAISS at a time: bounds the copy we make of the caller's data. */
#define CHUNK_ROWS 16384

/* ---- Small helpers ---------------------------------------------------------------------- */

raddino_status index_ok(void)
{
    return raddino_status_ok();
}

/* One line, whatever FAISS's message holds (raddino_status_errorv sees to it). */
raddino_status index_error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raddino_status st = raddino_status_errorv(code, fmt, ap);
    va_end(ap);
    return st;
}

raddino_status index_faiss_error(int rc, const char *what)
{
    const char *msg = faiss_get_last_error();
    /* FAISS messages look like "Error in void faiss::f(...) at file.cpp:12: the reason";
     * the reason is what a user can act on. */
    const char *reason = msg ? strstr(msg, ": ") : NULL;
    reason = reason && strstr(msg, "Error in ") == msg ? reason + 2 : msg;
    int code = rc == -4 && msg && strstr(msg, "bad_alloc") ? RADDINO_ERR_NOMEM : RADDINO_ERR_ARGUMENT;
    return index_error(code, "%s: %s", what, reason ? reason : "FAISS failed");
}

int index_threads(int requested)
{
    if (requested > 0) return requested;
    const char *env = getenv("RADDINO_THREADS");
    if (env && *env) {
        char *end;
        long n = strtol(env, &end, 10);
        if (*end == 0 && n > 0 && n <= 1024) return (int)n;
    }
    return omp_get_num_procs();
}

raddino_status index_normalise(const float *src, size_t n, int d, float *dst, size_t first_row)
{
    for (size_t i = 0; i < n; i++) {
        const float *x = src + i * (size_t)d;
        float *y = dst + i * (size_t)d;
        double ss = 0;
        for (int j = 0; j < d; j++) {
            if (!isfinite(x[j]))
                return index_error(RADDINO_ERR_ARGUMENT, "vector %zu has a non-finite value",
                                   first_row + i);
            ss += (double)x[j] * x[j];
        }
        float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int j = 0; j < d; j++) y[j] = x[j] * inv;
    }
    return index_ok();
}

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

raddino_status index_sample_rows(size_t n, size_t m, uint64_t seed, size_t **rows)
{
    *rows = NULL;
    if (m > n) m = n;
    size_t *out = malloc((m ? m : 1) * sizeof *out);
    if (!out) return index_error(RADDINO_ERR_NOMEM, "out of memory sampling %zu rows", m);
    /* Selection sampling (Knuth's algorithm S): one pass, sorted output, no n-sized table. */
    uint64_t state = seed;
    size_t chosen = 0;
    for (size_t i = 0; i < n && chosen < m; i++) {
        double u = (double)(splitmix64(&state) >> 11) * 0x1.0p-53;
        if ((double)(n - i) * u < (double)(m - chosen)) out[chosen++] = i;
    }
    *rows = out;
    return index_ok();
}

static int is_flat_type(const char *type) { return strcmp(type, "flat") == 0; }

/* ---- The auto rule ---------------------------------------------------------------------- */

static uint64_t physical_memory(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    return pages > 0 && page > 0 ? (uint64_t)pages * (uint64_t)page : 8ull << 30;
}

static size_t auto_nlist(size_t n)
{
    double target = 4.0 * sqrt((double)n);
    size_t nlist = 64;
    while (nlist < 65536 && (double)(nlist * 2) <= target * 1.41421356) nlist *= 2;
    while (nlist > 1 && nlist * 39 > n) nlist /= 2;
    return nlist;
}

raddino_status raddino_index_choose_type(size_t n, int dim, uint64_t max_memory, char *type,
                                         size_t type_size)
{
    if (dim <= 0 || !type || type_size < 32)
        return index_error(RADDINO_ERR_ARGUMENT, "index type: bad arguments");
    uint64_t budget = max_memory ? max_memory : physical_memory() / 2;
    double d = dim, nn = (double)n;
    if (n > RADDINO_INDEX_ONDISK_MIN) {
        /* sqrt(n) lists rather than the in-memory 4 sqrt(n): training costs 64 L^2 d per
         * iteration, and a probe of L/32 lists scans the same n/32 codes whatever L is. */
        size_t nlist = 256;
        while (nlist < 65536 && (double)(nlist * 2) <= sqrt(nn) * 1.41421356) nlist *= 2;
        snprintf(type, type_size, "ondisk:IVF%zu,SQ8", nlist);
        return index_ok();
    }
    if (n <= 10000 || (n <= 200000 && nn * (4 * d + 8) <= (double)budget)) {
        snprintf(type, type_size, "flat");
        return index_ok();
    }
    /* Past flat: an IVF whose coarse quantizer is an HNSW graph over the L centroids, so a
     * query finds its lists in a fraction of a millisecond instead of scanning L x d floats.
     * (A plain HNSW32 over the vectors took over 30 minutes to build at 1M on 2 cores; this
     * builds in minutes: k-means on 64 L vectors, then one graph search a vector.) Fixed cost:
     * the centroids (4d bytes each) and their graph (64 links of 4 bytes + levels). */
    size_t nlist = auto_nlist(n);
    double fixed = (double)nlist * (4 * d + RADDINO_INDEX_HNSW_BYTES);
    if (nn * (4 * d + 8) + fixed <= (double)budget) {
        /* float32 codes: exact scores, no re-ranking needed, 4d + 8 bytes a vector. */
        snprintf(type, type_size, "IVF%zu_HNSW32,Flat", nlist);
        return index_ok();
    }
    if (nn * (d + 8) + fixed + 8 * d <= (double)budget) {
        /* one byte a dimension, re-ranked from the store's float32 vectors by default */
        snprintf(type, type_size, "IVF%zu_HNSW32,SQ8", nlist);
        return index_ok();
    }
    int candidates[6] = {dim / 8, 64, 48, 32, 16, 8};
    for (int i = 0; i < 6; i++) {
        int m = candidates[i];
        if (m <= 0 || dim % m != 0 || (i > 0 && m >= candidates[0])) continue;
        double bytes = nn * (m + 8) + (double)(nlist + 256) * 4 * d;
        if (bytes <= (double)budget) {
            snprintf(type, type_size, "IVF%zu,PQ%dnp", nlist, m);
            return index_ok();
        }
    }
    return index_error(RADDINO_ERR_TOO_LARGE,
                       "no index type keeps %zu vectors of %d floats within %llu bytes", n, dim,
                       (unsigned long long)budget);
}

/* ---- Creating, training, wrapping ------------------------------------------------------- */

raddino_index_params raddino_index_default_params(void)
{
    raddino_index_params p;
    memset(&p, 0, sizeof p);
    p.type = "flat";
    return p;
}

/* The IVF layer of an index, looking through IDMap and pre-transforms; NULL when none. */
static FaissIndexIVF *find_ivf(FaissIndex *faiss)
{
    for (int depth = 0; faiss && depth < 8; depth++) {
        FaissIndexIVF *ivf = faiss_IndexIVF_cast(faiss);
        if (ivf) return ivf;
        FaissIndexIDMap *idmap = faiss_IndexIDMap_cast(faiss);
        FaissIndexPreTransform *pre = faiss_IndexPreTransform_cast(faiss);
        faiss = idmap ? faiss_IndexIDMap_sub_index(idmap)
                      : pre ? faiss_IndexPreTransform_index(pre) : NULL;
    }
    return NULL;
}

/* Sets one search parameter; returns 1 when the index has it (FAISS refuses it otherwise). */
static int set_parameter(FaissIndex *faiss, const char *name, double value)
{
    FaissParameterSpace *space = NULL;
    if (faiss_ParameterSpace_new(&space) != 0) return 0;
    int rc = faiss_ParameterSpace_set_index_parameter(space, faiss, name, value);
    faiss_ParameterSpace_free(space);
    return rc == 0;
}

static void apply_search_params(raddino_index *ix, int nprobe, int ef_search)
{
    FaissIndexIVF *ivf = find_ivf(ix->faiss);
    if (ivf) {
        int nlist = (int)faiss_IndexIVF_nlist(ivf);
        if (nprobe <= 0) nprobe = ix->nprobe > 0 ? ix->nprobe : (nlist / 32 > 8 ? nlist / 32 : 8);
        if (nprobe > nlist) nprobe = nlist;
        ix->nprobe = set_parameter(ix->faiss, "nprobe", nprobe) ? nprobe : 0;
    }
    if (ef_search <= 0) ef_search = ix->ef_search > 0 ? ix->ef_search : 64;
    ix->ef_search = set_parameter(ix->faiss, "efSearch", ef_search) ? ef_search : 0;
}

raddino_status index_wrap(FaissIndex *faiss, const char *type, int n_threads, int nprobe,
                          int ef_search, raddino_index **out)
{
    raddino_index *ix = calloc(1, sizeof *ix);
    if (!ix) {
        faiss_Index_free(faiss);
        return index_error(RADDINO_ERR_NOMEM, "out of memory");
    }
    ix->faiss = faiss;
    ix->dim = faiss_Index_d(faiss);
    snprintf(ix->type, sizeof ix->type, "%s", type);
    ix->n_threads = index_threads(n_threads);
    ix->rerank = index_default_rerank(type);
    apply_search_params(ix, nprobe, ef_search);
    *out = ix;
    return index_ok();
}

static raddino_status wrap_in_idmap(FaissIndex **faiss)
{
    FaissIndexIDMap *idmap = NULL;
    int rc = faiss_IndexIDMap_new(&idmap, *faiss);
    if (rc) {
        raddino_status st = index_faiss_error(rc, "index");
        faiss_Index_free(*faiss);
        *faiss = NULL;
        return st;
    }
    faiss_IndexIDMap_set_own_fields(idmap, 1);
    *faiss = idmap;
    return index_ok();
}

static raddino_status train(FaissIndex *faiss, const char *type, const float *vectors, size_t n,
                            int dim, size_t train_size, uint64_t seed)
{
    if (n == 0)
        return index_error(RADDINO_ERR_ARGUMENT, "index type %s needs vectors to train on", type);
    FaissIndexIVF *ivf = find_ivf(faiss);
    size_t nlist = ivf ? faiss_IndexIVF_nlist(ivf) : 0;
    size_t m = train_size;
    if (m == 0) m = 64 * nlist > 65536 ? 64 * nlist : 65536;
    if (m > n) m = n;
    size_t *rows;
    raddino_status st = index_sample_rows(n, m, seed, &rows);
    if (st.code) return st;
    float *x = malloc(m * (size_t)dim * sizeof *x);
    if (!x) {
        free(rows);
        return index_error(RADDINO_ERR_NOMEM, "out of memory for %zu training vectors", m);
    }
    for (size_t i = 0; i < m && !st.code; i++)
        st = index_normalise(vectors + rows[i] * (size_t)dim, 1, dim, x + i * (size_t)dim,
                             rows[i]);
    free(rows);
    char err[256];
    if (!st.code && index_ivf_graph_quantizer(faiss)) {   /* k-means without the graph */
        if (index_ivf_train_flat(faiss, m, x, err, sizeof err))
            st = index_error(RADDINO_ERR_ARGUMENT, "training the index: %s", err);
    } else if (!st.code) {
        int rc = faiss_Index_train(faiss, (idx_t)m, x);
        if (rc) st = index_faiss_error(rc, "training the index");
    }
    free(x);
    return st;
}

static raddino_status create_faiss(const char *type, const float *vectors, size_t n, int dim,
                                   size_t train_size, uint64_t seed, FaissIndex **out)
{
    *out = NULL;
    FaissIndex *faiss = NULL;
    int rc;
    if (is_flat_type(type)) {
        FaissIndexFlatIP *flat = NULL;
        rc = faiss_IndexFlatIP_new_with(&flat, dim);
        if (rc) return index_faiss_error(rc, "index");
        faiss = flat;
        raddino_status st = wrap_in_idmap(&faiss);
        if (st.code) return st;
        *out = faiss;
        return index_ok();
    }
    const char *exact_sq = index_exact_sq_factory(type);
    rc = faiss_index_factory(&faiss, dim, exact_sq ? exact_sq : type, METRIC_INNER_PRODUCT);
    if (rc) return index_faiss_error(rc, "index type");
    if (!faiss_Index_is_trained(faiss)) {
        raddino_status st = train(faiss, type, vectors, n, dim, train_size, seed);
        if (st.code) {
            faiss_Index_free(faiss);
            return st;
        }
    }
    if (!faiss_IndexIVF_cast(faiss) && !faiss_IndexIDMap_cast(faiss)) {
        raddino_status st = wrap_in_idmap(&faiss);
        if (st.code) return st;
    }
    *out = faiss;
    return index_ok();
}

static raddino_status check_ids(const int64_t *ids, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (ids[i] < 0)
            return index_error(RADDINO_ERR_ARGUMENT, "id %lld of vector %zu is negative",
                               (long long)ids[i], i);
    return index_ok();
}

raddino_status raddino_index_build(const float *vectors, const int64_t *ids, size_t n, int dim,
                                   const raddino_index_params *params, raddino_index **out)
{
    if (!out) return index_error(RADDINO_ERR_ARGUMENT, "index: no output");
    *out = NULL;
    if (dim <= 0 || dim > 65536 || (n > 0 && (!vectors || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "index: bad vectors (n %zu, dimension %d)", n,
                           dim);
    raddino_index_params p = params ? *params : raddino_index_default_params();
    raddino_status st = check_ids(ids, n);
    if (st.code) return st;
    char type[RADDINO_INDEX_TYPE_MAX];
    if (!p.type || !*p.type) p.type = "flat";
    int chosen = strcmp(p.type, "auto") == 0;
    if (chosen) {
        st = raddino_index_choose_type(n, dim, p.max_memory, type, sizeof type);
        if (st.code) return st;
    } else if (strlen(p.type) >= sizeof type) {
        return index_error(RADDINO_ERR_ARGUMENT, "index type: too long");
    } else {
        snprintf(type, sizeof type, "%s", p.type);
    }
    if (index_is_ondisk_type(type))
        return index_error(RADDINO_ERR_ARGUMENT,
                           "index type %s is built in parts (raddino_index_ivf_train, "
                           "raddino_index_ivf_add_part, raddino_index_ivf_merge_parts)",
                           type);
    omp_set_num_threads(index_threads(p.n_threads));
    FaissIndex *faiss;
    st = create_faiss(type, vectors, n, dim, p.train_size, p.seed, &faiss);
    if (st.code) return st;
    raddino_index *ix;
    st = index_wrap(faiss, type, p.n_threads, p.nprobe, p.ef_search, &ix);
    if (st.code) return st;
    ix->train_size = p.train_size;
    ix->seed = p.seed;
    if (p.rerank > 0) ix->rerank = p.rerank;
    st = raddino_index_add(ix, vectors, ids, n);
    /* Approximate types measure their recall now, while the vectors are at hand; the IVF
     * types "auto" picks also choose their nprobe by it unless the caller set one. */
    if (!st.code && !is_flat_type(type))
        st = index_build_recall(ix, vectors, ids, n,
                                chosen && p.nprobe == 0 && strstr(type, "_HNSW") != NULL,
                                p.seed);
    if (st.code) {
        raddino_index_free(ix);
        return st;
    }
    *out = ix;
    return index_ok();
}

void raddino_index_free(raddino_index *index)
{
    if (!index) return;
    faiss_Index_free(index->faiss);
    free(index);
}

/* ---- Updates ------------------------------------------------------------------------------ */

/* FAISS would throw inside an OpenMP loop when writing read-only lists (std::terminate):
 * an on-disk index is never changed in place, it is rebuilt from parts. */
static raddino_status refuse_if_ondisk(const raddino_index *index, const char *what)
{
    int on_disk = 0;
    if (index_ivf_describe(index->faiss, NULL, NULL, &on_disk, NULL, NULL) && on_disk)
        return index_error(RADDINO_ERR_UNSUPPORTED,
                           "%s: an on-disk index is read-only (rebuild it from parts)", what);
    return index_ok();
}

raddino_status raddino_index_add(raddino_index *index, const float *vectors, const int64_t *ids,
                                 size_t n)
{
    if (!index || (n > 0 && (!vectors || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "index add: bad arguments");
    raddino_status ro = refuse_if_ondisk(index, "adding vectors");
    if (ro.code) return ro;
    raddino_status st = check_ids(ids, n);
    if (st.code || n == 0) return st;
    size_t chunk = n < CHUNK_ROWS ? n : CHUNK_ROWS;
    float *x = malloc(chunk * (size_t)index->dim * sizeof *x);
    if (!x) return index_error(RADDINO_ERR_NOMEM, "out of memory adding vectors");
    omp_set_num_threads(index->n_threads);
    int graph = index_ivf_graph_quantizer(index->faiss);
    for (size_t i = 0; i < n && !st.code; i += chunk) {
        size_t m = n - i < chunk ? n - i : chunk;
        st = index_normalise(vectors + i * (size_t)index->dim, m, index->dim, x, i);
        if (st.code) break;
        if (graph) {   /* lists assigned by a flat product, not the graph (ivf_coarse.cpp) */
            char err[256];
            if (index_ivf_add_flat(index->faiss, m, x, ids + i, err, sizeof err))
                st = index_error(RADDINO_ERR_ARGUMENT, "adding vectors: %s", err);
            continue;
        }
        int rc = faiss_Index_add_with_ids(index->faiss, (idx_t)m, x, ids + i);
        if (rc) st = index_faiss_error(rc, "adding vectors");
    }
    free(x);
    return st;
}

raddino_status raddino_index_clear(raddino_index *index)
{
    if (!index) return index_error(RADDINO_ERR_ARGUMENT, "index clear: no index");
    raddino_status ro = refuse_if_ondisk(index, "emptying the index");
    if (ro.code) return ro;
    int rc = faiss_Index_reset(index->faiss);
    return rc ? index_faiss_error(rc, "emptying the index") : index_ok();
}

static int compare_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* For indexes FAISS cannot remove from (HNSW): rebuild from the stored vectors, less `ids`. */
static raddino_status rebuild_without(raddino_index *index, const int64_t *ids, size_t n,
                                      size_t *n_removed, raddino_status why)
{
    FaissIndexIDMap *idmap = faiss_IndexIDMap_cast(index->faiss);
    if (!idmap) return why;
    FaissIndex *sub = faiss_IndexIDMap_sub_index(idmap);
    idx_t ntotal = faiss_Index_ntotal(sub);
    idx_t *id_map;
    size_t n_map;
    faiss_IndexIDMap_id_map(idmap, &id_map, &n_map);
    if ((size_t)ntotal != n_map) return why;
    int64_t *gone = malloc((n ? n : 1) * sizeof *gone);
    float *x = malloc(((size_t)ntotal ? (size_t)ntotal : 1) * (size_t)index->dim * sizeof *x);
    int64_t *keep_ids = malloc(((size_t)ntotal ? (size_t)ntotal : 1) * sizeof *keep_ids);
    raddino_status st = index_ok();
    if (!gone || !x || !keep_ids) st = index_error(RADDINO_ERR_NOMEM, "out of memory removing");
    int rc = st.code || ntotal == 0 ? 0 : faiss_Index_reconstruct_n(sub, 0, ntotal, x);
    if (!st.code && rc) st = index_faiss_error(rc, "removing vectors (rebuild)");
    size_t kept = 0;
    if (!st.code) {
        memcpy(gone, ids, n * sizeof *gone);
        qsort(gone, n, sizeof *gone, compare_i64);
        for (size_t i = 0; i < (size_t)ntotal; i++) {
            if (bsearch(&id_map[i], gone, n, sizeof *gone, compare_i64)) continue;
            if (kept != i)
                memmove(x + kept * (size_t)index->dim, x + i * (size_t)index->dim,
                        (size_t)index->dim * sizeof *x);
            keep_ids[kept++] = id_map[i];
        }
    }
    if (!st.code && kept < (size_t)ntotal) {
        raddino_index_params p = raddino_index_default_params();
        p.type = index->type;
        p.train_size = index->train_size;
        p.seed = index->seed;
        p.n_threads = index->n_threads;
        p.nprobe = index->nprobe;
        p.ef_search = index->ef_search;
        raddino_index *fresh;
        st = raddino_index_build(x, keep_ids, kept, index->dim, &p, &fresh);
        if (!st.code) {   /* swap the FAISS objects, keep the caller's pointer valid */
            FaissIndex *old = index->faiss;
            index->faiss = fresh->faiss;
            fresh->faiss = old;
            raddino_index_free(fresh);
        }
    }
    if (!st.code && n_removed) *n_removed = (size_t)ntotal - kept;
    free(gone);
    free(x);
    free(keep_ids);
    return st;
}

raddino_status raddino_index_remove(raddino_index *index, const int64_t *ids, size_t n,
                                    size_t *n_removed)
{
    if (n_removed) *n_removed = 0;
    if (!index || (n > 0 && !ids))
        return index_error(RADDINO_ERR_ARGUMENT, "index remove: bad arguments");
    if (n == 0) return index_ok();
    raddino_status ro = refuse_if_ondisk(index, "removing vectors");
    if (ro.code) return ro;
    omp_set_num_threads(index->n_threads);
    FaissIDSelectorBatch *sel = NULL;
    int rc = faiss_IDSelectorBatch_new(&sel, n, ids);
    if (rc) return index_faiss_error(rc, "removing vectors");
    size_t removed = 0;
    rc = faiss_Index_remove_ids(index->faiss, (const FaissIDSelector *)sel, &removed);
    faiss_IDSelector_free((FaissIDSelector *)sel);
    if (rc) return rebuild_without(index, ids, n, n_removed, index_faiss_error(rc, "removing"));
    if (n_removed) *n_removed = removed;
    return index_ok();
}

raddino_status raddino_index_set_search_params(raddino_index *index, int nprobe, int ef_search)
{
    if (!index || nprobe < 0 || ef_search < 0)
        return index_error(RADDINO_ERR_ARGUMENT, "index: bad search parameters");
    apply_search_params(index, nprobe, ef_search);
    return index_ok();
}

raddino_status raddino_index_set_threads(raddino_index *index, int n_threads)
{
    if (!index || n_threads < 0 || n_threads > 1024)
        return index_error(RADDINO_ERR_ARGUMENT, "index: bad thread count");
    index->n_threads = index_threads(n_threads);
    return index_ok();
}

/* ---- Search ------------------------------------------------------------------------------- */

raddino_status raddino_index_search(const raddino_index *index, const float *queries, size_t nq,
                                    int k, float *scores, int64_t *ids)
{
    if (!index || k <= 0 || (nq > 0 && (!queries || !scores || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "index search: bad arguments");
    if (nq == 0) return index_ok();
    size_t chunk = nq < 4096 ? nq : 4096;
    float *x = malloc(chunk * (size_t)index->dim * sizeof *x);
    if (!x) return index_error(RADDINO_ERR_NOMEM, "out of memory searching");
    omp_set_num_threads(index->n_threads);
    raddino_status st = index_ok();
    for (size_t i = 0; i < nq && !st.code; i += chunk) {
        size_t m = nq - i < chunk ? nq - i : chunk;
        st = index_normalise(queries + i * (size_t)index->dim, m, index->dim, x, i);
        if (st.code) break;
        int rc = faiss_Index_search(index->faiss, (idx_t)m, x, k, scores + i * (size_t)k,
                                    ids + i * (size_t)k);
        if (rc) st = index_faiss_error(rc, "searching");
    }
    free(x);
    for (size_t i = 0; !st.code && i < nq * (size_t)k; i++)
        if (ids[i] < 0) scores[i] = -INFINITY;
    return st;
}

raddino_status raddino_index_apply_min_score(float *scores, int64_t *ids, size_t nq, int k,
                                             float min_score, size_t *n_kept)
{
    if (k <= 0 || (nq > 0 && (!scores || !ids)))
        return index_error(RADDINO_ERR_ARGUMENT, "min score: bad arguments");
    size_t kept = 0;
    for (size_t i = 0; i < nq * (size_t)k; i++) {
        if (ids[i] >= 0 && scores[i] >= min_score) {
            kept++;
        } else {
            ids[i] = -1;
            scores[i] = -INFINITY;
        }
    }
    if (n_kept) *n_kept = kept;
    return index_ok();
}

/* ---- Range search ------------------------------------------------------------------------- */

typedef struct {
    size_t n, cap;
    int64_t *ids;
    float *scores;
} hit_list;

static raddino_status hits_push(hit_list *h, int64_t id, float score)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 1024;
        int64_t *ids = realloc(h->ids, cap * sizeof *ids);
        if (ids) h->ids = ids;
        float *scores = ids ? realloc(h->scores, cap * sizeof *scores) : NULL;
        if (!scores) return index_error(RADDINO_ERR_NOMEM, "out of memory in range search");
        h->scores = scores;
        h->cap = cap;
    }
    h->ids[h->n] = id;
    h->scores[h->n] = score;
    h->n++;
    return index_ok();
}

/* One chunk through FAISS's range search. Returns FAISS's rc (0 = done). */
static int range_chunk_faiss(const raddino_index *ix, const float *x, size_t m, float threshold,
                             hit_list *hits, size_t *lims, raddino_status *st)
{
    FaissRangeSearchResult *r = NULL;
    int rc = faiss_RangeSearchResult_new(&r, (idx_t)m);
    if (rc) return rc;
    /* FAISS keeps inner products strictly above the radius; one ulp lower keeps ">=". */
    rc = faiss_Index_range_search(ix->faiss, (idx_t)m, x, nextafterf(threshold, -INFINITY), r);
    if (rc == 0) {
        size_t *rl;
        idx_t *labels;
        float *dist;
        faiss_RangeSearchResult_lims(r, &rl);
        faiss_RangeSearchResult_labels(r, &labels, &dist);
        for (size_t q = 0; q < m && !st->code; q++) {
            for (size_t j = rl[q]; j < rl[q + 1] && !st->code; j++)
                if (labels[j] >= 0 && dist[j] >= threshold)
                    *st = hits_push(hits, labels[j], dist[j]);
            lims[q + 1] = hits->n;
        }
    }
    faiss_RangeSearchResult_free(r);
    return rc;
}

/* A chunk of queries by top-k searches of growing k, for types without a FAISS range search
 * (HNSW): a query whose k-th result still passes the threshold is searched again with 4k. */
static raddino_status range_chunk_knn(const raddino_index *ix, const float *x, size_t m,
                                      float threshold, hit_list *hits, size_t *lims)
{
    idx_t ntotal = faiss_Index_ntotal(ix->faiss);
    int d = ix->dim;
    idx_t k = ntotal < 32 ? ntotal : 32;
    size_t *pending = malloc((m ? m : 1) * sizeof *pending);
    hit_list *rows = calloc(m ? m : 1, sizeof *rows);
    float *q = malloc((m ? m : 1) * (size_t)d * sizeof *q);
    raddino_status st = index_ok();
    if (!pending || !rows || !q)
        st = index_error(RADDINO_ERR_NOMEM, "out of memory in range search");
    size_t n_pending = st.code ? 0 : m;
    for (size_t i = 0; i < n_pending; i++) pending[i] = i;
    while (!st.code && n_pending > 0 && k > 0) {
        /* Bound the result buffers: at most 2^24 (id, score) pairs per FAISS call. */
        size_t batch = (size_t)(((idx_t)1 << 24) / k);
        if (batch == 0) batch = 1;
        size_t still = 0;
        for (size_t b0 = 0; b0 < n_pending && !st.code; b0 += batch) {
            size_t nb = n_pending - b0 < batch ? n_pending - b0 : batch;
            float *dist = malloc(nb * (size_t)k * sizeof *dist);
            idx_t *lab = malloc(nb * (size_t)k * sizeof *lab);
            if (!dist || !lab) st = index_error(RADDINO_ERR_NOMEM, "out of memory in range search");
            for (size_t j = 0; !st.code && j < nb; j++)
                memcpy(q + j * (size_t)d, x + pending[b0 + j] * (size_t)d, (size_t)d * sizeof *q);
            int rc = st.code ? 0 : faiss_Index_search(ix->faiss, (idx_t)nb, q, k, dist, lab);
            if (rc) st = index_faiss_error(rc, "range search");
            for (size_t j = 0; !st.code && j < nb; j++) {
                const float *dj = dist + j * (size_t)k;
                const idx_t *lj = lab + j * (size_t)k;
                size_t qi = pending[b0 + j];
                if (lj[k - 1] >= 0 && dj[k - 1] >= threshold && k < ntotal) {
                    pending[still++] = qi;   /* still <= b0 + j: safe in place */
                    continue;
                }
                for (idx_t t = 0; t < k && !st.code; t++)
                    if (lj[t] >= 0 && dj[t] >= threshold) st = hits_push(&rows[qi], lj[t], dj[t]);
            }
            free(dist);
            free(lab);
        }
        n_pending = still;
        k = k * 4 < ntotal ? k * 4 : ntotal;
    }
    /* Concatenate the per-query lists in query order. */
    for (size_t i = 0; i < m && !st.code; i++) {
        for (size_t j = 0; j < rows[i].n && !st.code; j++)
            st = hits_push(hits, rows[i].ids[j], rows[i].scores[j]);
        lims[i + 1] = hits->n;
    }
    for (size_t i = 0; rows && i < m; i++) {
        free(rows[i].ids);
        free(rows[i].scores);
    }
    free(rows);
    free(pending);
    free(q);
    return st;
}

typedef struct {
    float score;
    int64_t id;
} hit;

static int compare_hits_desc(const void *a, const void *b)
{
    const hit *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Sorts each query's hits best first (FAISS leaves them in storage order). */
static raddino_status sort_hits(hit_list *h, const size_t *lims, size_t nq)
{
    hit *pairs = malloc((h->n ? h->n : 1) * sizeof *pairs);
    if (!pairs) return index_error(RADDINO_ERR_NOMEM, "out of memory in range search");
    for (size_t i = 0; i < h->n; i++) pairs[i] = (hit){h->scores[i], h->ids[i]};
    for (size_t q = 0; q < nq; q++)
        qsort(pairs + lims[q], lims[q + 1] - lims[q], sizeof *pairs, compare_hits_desc);
    for (size_t i = 0; i < h->n; i++) {
        h->ids[i] = pairs[i].id;
        h->scores[i] = pairs[i].score;
    }
    free(pairs);
    return index_ok();
}

raddino_status raddino_index_range_search(const raddino_index *index, const float *queries,
                                          size_t nq, float threshold, raddino_range_result *out)
{
    if (!out) return index_error(RADDINO_ERR_ARGUMENT, "range search: no output");
    memset(out, 0, sizeof *out);
    if (!index || (nq > 0 && !queries) || !isfinite(threshold))
        return index_error(RADDINO_ERR_ARGUMENT, "range search: bad arguments");
    size_t *lims = calloc(nq + 1, sizeof *lims);
    size_t chunk = nq < 1024 ? (nq ? nq : 1) : 1024;
    float *x = malloc(chunk * (size_t)index->dim * sizeof *x);
    hit_list hits = {0, 0, NULL, NULL};
    raddino_status st = index_ok();
    if (!lims || !x) st = index_error(RADDINO_ERR_NOMEM, "out of memory in range search");
    omp_set_num_threads(index->n_threads);
    int use_knn = 0;
    for (size_t i = 0; i < nq && !st.code; i += chunk) {
        size_t m = nq - i < chunk ? nq - i : chunk;
        st = index_normalise(queries + i * (size_t)index->dim, m, index->dim, x, i);
        if (st.code) break;
        int rc = use_knn ? -1 : range_chunk_faiss(index, x, m, threshold, &hits, lims + i, &st);
        if (rc != 0 && !st.code) {
            use_knn = 1;   /* FAISS has no range search for this type (HNSW) */
            hits.n = lims[i];
            st = range_chunk_knn(index, x, m, threshold, &hits, lims + i);
        }
    }
    free(x);
    if (!st.code) st = sort_hits(&hits, lims, nq);
    if (st.code) {
        free(lims);
        free(hits.ids);
        free(hits.scores);
        return st;
    }
    out->nq = nq;
    out->lims = lims;
    out->ids = hits.ids;
    out->scores = hits.scores;
    return index_ok();
}

void raddino_range_result_free(raddino_range_result *result)
{
    if (!result) return;
    free(result->lims);
    free(result->ids);
    free(result->scores);
    memset(result, 0, sizeof *result);
}

/* ---- Info ----------------------------------------------------------------------------------- */

raddino_status raddino_index_get_info(const raddino_index *index, raddino_index_info *out)
{
    if (!index || !out) return index_error(RADDINO_ERR_ARGUMENT, "index info: bad arguments");
    memset(out, 0, sizeof *out);
    snprintf(out->type, sizeof out->type, "%s", index->type);
    out->exact = is_flat_type(index->type);
    out->dim = index->dim;
    out->ntotal = faiss_Index_ntotal(index->faiss);
    out->nprobe = index->nprobe;
    out->ef_search = index->ef_search;
    FaissIndexIVF *ivf = find_ivf(index->faiss);
    out->nlist = ivf ? (int)faiss_IndexIVF_nlist(ivf) : 0;
    out->rerank = index->rerank > 0 ? index->rerank : 1;
    out->build_recall = index->build_recall;
    out->build_recall_queries = index->build_recall_queries;
    out->build_recall_k = index->build_recall_k;
    out->build_recall_nprobe = index->build_recall_nprobe;
    const char *lists = NULL;
    if (index_ivf_describe(index->faiss, NULL, NULL, &out->on_disk, &lists, &out->lists_bytes) &&
        lists)
        snprintf(out->lists_path, sizeof out->lists_path, "%s", lists);
    return index_serialised_size(index->faiss, &out->memory_bytes);
}
