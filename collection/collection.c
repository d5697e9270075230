/* collection.c — a store and its derived FAISS index kept in step (see raddino_collection.h). */
#include "raddino_collection.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct raddino_collection {
    raddino_store *store;
    raddino_index *index;
    raddino_collection_info info;
    char model_key[RADDINO_INDEX_MODEL_ID_MAX];
    raddino_index_params params;
};

static raddino_status ok_status(void)
{
    return raddino_status_ok();
}

static raddino_status error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static raddino_status error(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    raddino_status st = raddino_status_errorv(code, fmt, ap);
    va_end(ap);
    return st;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

raddino_collection_params raddino_collection_default_params(void)
{
    raddino_collection_params p;
    memset(&p, 0, sizeof p);
    p.index = raddino_index_default_params();
    p.index.type = NULL;
    return p;
}

/* ---- reading the snapshot's vectors ------------------------------------------------------- */

typedef struct {
    float *vectors;
    int64_t *ids;
    size_t n, cap;
    int dim;
    raddino_status st;
} vector_sink;

static int collect_vector(void *user, int64_t id, const char *path, const char *sha256,
                          const float *vector, int dim)
{
    (void)path;
    (void)sha256;
    vector_sink *s = user;
    if (dim != s->dim) {
        s->st = error(RADDINO_ERR_FORMAT, "image %lld: vector of dim %d, expected %d",
                      (long long)id, dim, s->dim);
        return 1;
    }
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 1024;
        float *v = realloc(s->vectors, cap * (size_t)dim * sizeof *v);
        if (v) s->vectors = v;
        int64_t *i = realloc(s->ids, cap * sizeof *i);
        if (i) s->ids = i;
        if (!v || !i) {
            s->st = error(RADDINO_ERR_NOMEM, "out of memory reading %zu vectors", cap);
            return 1;
        }
        s->cap = cap;
    }
    memcpy(s->vectors + s->n * (size_t)dim, vector, (size_t)dim * sizeof *vector);
    s->ids[s->n++] = id;
    return 0;
}

raddino_status raddino_collection_read_all(raddino_collection *c, float **vectors,
                                           int64_t **ids, size_t *n)
{
    if (!c || !vectors || !ids || !n)
        return error(RADDINO_ERR_ARGUMENT, "collection read_all: bad arguments");
    vector_sink s;
    memset(&s, 0, sizeof s);
    s.dim = c->info.dim;
    s.st = ok_status();
    raddino_status st =
        raddino_store_foreach_vector(c->store, c->info.model_id, collect_vector, &s);
    if (!st.code) st = s.st;
    if (st.code) {
        free(s.vectors);
        free(s.ids);
        return st;
    }
    *vectors = s.vectors;
    *ids = s.ids;
    *n = s.n;
    return st;
}

/* ---- keeping the index in step ------------------------------------------------------------ */

/* Whether a saved index of type `saved` satisfies the requested type. */
static int type_matches(const raddino_collection *c, const char *requested, const char *saved,
                        int64_t n)
{
    if (!requested) return 1;
    if (!strcmp(requested, "auto")) {
        char chosen[RADDINO_INDEX_TYPE_MAX];
        raddino_status st = raddino_index_choose_type((size_t)n, c->info.dim,
                                                      c->params.max_memory, chosen,
                                                      sizeof chosen);
        return !st.code && !strcmp(chosen, saved);
    }
    return !strcmp(requested, saved);
}

/* Types whose file holds training worth keeping when the vectors change. */
static int has_training(const char *type)
{
    return strcmp(type, "flat") != 0 && strncmp(type, "HNSW", 4) != 0 &&
           (strstr(type, "IVF") || strstr(type, "PQ") || strstr(type, "PCA") ||
            strstr(type, "SQ"));
}

static raddino_status build(raddino_collection *c, const char *type)
{
    float *vectors;
    int64_t *ids;
    size_t n;
    raddino_status st = raddino_collection_read_all(c, &vectors, &ids, &n);
    if (st.code) return st;
    raddino_index_params p = c->params;
    p.type = type ? type : "auto";
    st = raddino_index_build(vectors, ids, n, c->info.dim, &p, &c->index);
    if (st.code)
        st = error(st.code, "%s: building the search index: %s", c->info.db_path, st.message);
    free(vectors);
    free(ids);
    c->info.origin = RADDINO_INDEX_BUILT;
    return st;
}

/* Loaded index of the right model and type, stale: keep its training, replace its vectors. */
static raddino_status refresh(raddino_collection *c)
{
    float *vectors;
    int64_t *ids;
    size_t n;
    raddino_status st = raddino_collection_read_all(c, &vectors, &ids, &n);
    if (st.code) return st;
    st = raddino_index_clear(c->index);
    if (!st.code) st = raddino_index_add(c->index, vectors, ids, n);
    free(vectors);
    free(ids);
    c->info.origin = RADDINO_INDEX_REFRESHED;
    return st;
}

static void save(raddino_collection *c)
{
    raddino_index_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.generation = (uint64_t)c->info.generation;
    snprintf(meta.model_id, sizeof meta.model_id, "%s", c->model_key);
    raddino_status st = raddino_index_save(c->index, c->info.index_path, &meta);
    if (st.code) snprintf(c->info.save_error, sizeof c->info.save_error, "%s", st.message);
    else c->info.saved = 1;
}

/* Loads the saved index when it fits, refreshes or builds otherwise. */
static raddino_status ensure_index(raddino_collection *c, const raddino_collection_params *p,
                                   int64_t n_vectors)
{
    const char *requested = p->index.type;
    raddino_index_meta meta;
    int usable = !p->rebuild && !raddino_index_read_meta(c->info.index_path, &meta).code &&
                 !strcmp(meta.model_id, c->model_key) && meta.dim == c->info.dim &&
                 type_matches(c, requested, meta.type, n_vectors);
    int current = usable && meta.generation == (uint64_t)c->info.generation;
    raddino_status st = ok_status();
    if (current || (usable && has_training(meta.type))) {
        raddino_index_meta loaded;
        st = raddino_index_load(c->info.index_path, &c->params, &c->index, &loaded);
        if (!st.code && current) {
            c->info.origin = RADDINO_INDEX_LOADED;
            return st;
        }
        if (!st.code) st = refresh(c);
        if (st.code) {      /* damaged since read_meta, or refresh failed: build afresh */
            raddino_index_free(c->index);
            c->index = NULL;
            st = build(c, meta.type);
        }
    } else {
        st = build(c, requested ? requested : usable ? meta.type : "auto");
    }
    if (!st.code && !p->no_save) save(c);
    return st;
}

static raddino_status open_snapshot(raddino_collection *c, const char *db_path,
                                    int64_t *n_vectors)
{
    raddino_store_params sp = raddino_store_default_params();
    sp.read_only = 1;
    raddino_status st = raddino_store_open(db_path, &sp, &c->store);
    if (!st.code) st = raddino_store_read_begin(c->store);
    raddino_store_stats s;
    if (!st.code) st = raddino_store_get_stats(c->store, &s);
    if (st.code) return st;
    if (!s.model_id || !s.vectors)
        return error(RADDINO_ERR_ARGUMENT, "%s: no vectors (run 'raddino index' first)",
                     db_path);
    c->info.generation = s.generation;
    c->info.model_id = s.model_id;
    c->info.dim = s.dim;
    *n_vectors = s.vectors;
    snprintf(c->model_key, sizeof c->model_key, "%lld:%s", (long long)s.model_id,
             s.weights_sha256);
    return st;
}

raddino_status raddino_collection_open(const char *db_path, const raddino_collection_params *p,
                                       raddino_collection **out)
{
    if (!out || !db_path || !*db_path)
        return error(RADDINO_ERR_ARGUMENT, "raddino_collection_open: no database path");
    *out = NULL;
    raddino_collection_params defaults = raddino_collection_default_params();
    if (!p) p = &defaults;
    raddino_collection *c = calloc(1, sizeof *c);
    if (!c) return error(RADDINO_ERR_NOMEM, "%s: out of memory", db_path);
    double start = now();
    c->params = p->index;
    c->params.type = NULL;
    snprintf(c->info.db_path, sizeof c->info.db_path, "%s", db_path);
    int n = p->index_path
                ? snprintf(c->info.index_path, sizeof c->info.index_path, "%s", p->index_path)
                : snprintf(c->info.index_path, sizeof c->info.index_path, "%s.faiss", db_path);
    raddino_status st = ok_status();
    if (n < 0 || (size_t)n >= sizeof c->info.index_path)
        st = error(RADDINO_ERR_ARGUMENT, "%s: path too long", db_path);
    int64_t n_vectors = 0;
    if (!st.code) st = open_snapshot(c, db_path, &n_vectors);
    if (!st.code && !p->no_index) st = ensure_index(c, p, n_vectors);
    raddino_index_info ii;
    ii.ntotal = n_vectors;
    if (!st.code && c->index) st = raddino_index_get_info(c->index, &ii);
    if (st.code) {
        raddino_collection_close(c);
        return st;
    }
    c->info.vectors = ii.ntotal;
    c->info.seconds = now() - start;
    *out = c;
    return st;
}

void raddino_collection_close(raddino_collection *c)
{
    if (!c) return;
    raddino_index_free(c->index);
    raddino_store_read_end(c->store);
    raddino_store_close(c->store);
    free(c);
}

void raddino_collection_get_info(const raddino_collection *c, raddino_collection_info *out)
{
    if (c && out) *out = c->info;
}

raddino_store *raddino_collection_store(raddino_collection *c) { return c ? c->store : NULL; }
raddino_index *raddino_collection_index(raddino_collection *c) { return c ? c->index : NULL; }

raddino_status raddino_collection_check_model(raddino_collection *c,
                                              const raddino_store_model *model)
{
    if (!c || !model) return error(RADDINO_ERR_ARGUMENT, "collection check_model: NULL");
    int same;
    char why[256] = "";
    raddino_status st = raddino_store_model_matches(c->store, model, &same, why, sizeof why);
    if (st.code || same) return st;
    return error(RADDINO_ERR_MODEL,
                 "%s: made with another model (%s); the query model's weights have sha256 "
                 "%.12s",
                 c->info.db_path, why, model->weights_sha256);
}

raddino_status raddino_collection_vector(raddino_collection *c, int64_t id, float *vector,
                                         raddino_store_image *image, int *found)
{
    if (!c || !vector || !image || !found)
        return error(RADDINO_ERR_ARGUMENT, "collection vector: NULL");
    raddino_status st = raddino_store_find_id(c->store, id, vector, image, found);
    if (!st.code && *found && (!image->has_vector || image->status != RADDINO_IMAGE_OK))
        *found = 0;
    return st;
}

/* ---- search ------------------------------------------------------------------------------- */

/* Whether hit `id` is excluded for a query (its own id, or a file with the same content). */
static raddino_status excluded(raddino_collection *c, int64_t id, int64_t self,
                               const char *sha256, int *out)
{
    *out = id == self;
    if (*out || !sha256 || !*sha256) return ok_status();
    raddino_store_image img;
    int found;
    raddino_status st = raddino_store_find_id(c->store, id, NULL, &img, &found);
    if (!st.code && found) *out = !strcmp(img.sha256, sha256);
    return st;
}

/* Copies row q's fetched results into the k-wide output, skipping excluded ones. *complete is
 * 0 when too few were left and the fetched row was full (more may exist). */
static raddino_status filter_row(raddino_collection *c, const float *fs, const int64_t *fi,
                                 int fetch, int k, int64_t self, const char *sha256, float *so,
                                 int64_t *io, int *complete)
{
    int kept = 0;
    raddino_status st = ok_status();
    for (int j = 0; j < fetch && kept < k && !st.code; j++) {
        if (fi[j] < 0) break;
        int drop;
        st = excluded(c, fi[j], self, sha256, &drop);
        if (drop) continue;
        so[kept] = fs[j];
        io[kept++] = fi[j];
    }
    *complete = kept == k || fi[fetch - 1] < 0;
    for (int j = kept; j < k; j++) {
        so[j] = -INFINITY;
        io[j] = -1;
    }
    return st;
}

raddino_status raddino_collection_search(raddino_collection *c, const float *queries, size_t nq,
                                         int k, float min_score, const int64_t *exclude_ids,
                                         const char *const *exclude_sha256, float *scores,
                                         int64_t *ids)
{
    if (!c || !c->index || (nq && (!queries || !scores || !ids)) || k <= 0)
        return error(RADDINO_ERR_ARGUMENT, "collection search: bad arguments or no index");
    int64_t total = c->info.vectors;
    int excluding = exclude_ids || exclude_sha256;
    int64_t most = total > k ? total : k;   /* fetching more than this finds nothing new */
    if (most > INT32_MAX / 2) most = INT32_MAX / 2;
    int fetch = k + (excluding ? 4 : 0);
    if (fetch > most) fetch = (int)most;
    for (;;) {
        float *fs = malloc(nq * (size_t)fetch * sizeof *fs);
        int64_t *fi = malloc(nq * (size_t)fetch * sizeof *fi);
        raddino_status st = fs && fi ? ok_status() : error(RADDINO_ERR_NOMEM, "out of memory");
        if (!st.code) st = raddino_index_search(c->index, queries, nq, fetch, fs, fi);
        if (!st.code) st = raddino_index_apply_min_score(fs, fi, nq, fetch, min_score, NULL);
        int all_complete = 1;
        for (size_t q = 0; q < nq && !st.code; q++) {
            int complete;
            st = filter_row(c, fs + q * (size_t)fetch, fi + q * (size_t)fetch, fetch, k,
                            exclude_ids ? exclude_ids[q] : -1,
                            exclude_sha256 ? exclude_sha256[q] : NULL, scores + q * (size_t)k,
                            ids + q * (size_t)k, &complete);
            all_complete &= complete;
        }
        free(fs);
        free(fi);
        if (st.code || all_complete || fetch >= most) return st;
        fetch = (int64_t)fetch * 4 < most ? fetch * 4 : (int)most;
    }
}

/* ---- rows ---------------------------------------------------------------------------------- */

void raddino_collection_rows_free(raddino_collection_row *rows, size_t n)
{
    if (!rows) return;
    for (size_t i = 0; i < n; i++) free(rows[i].path);
    free(rows);
}

/* Fills row with image id's path, hash and DICOM metadata from the snapshot. */
static raddino_status fill_row(raddino_collection *c, int64_t id, float score,
                               raddino_collection_row *row)
{
    memset(row, 0, sizeof *row);
    row->id = id;
    row->score = score;
    if (id < 0) return ok_status();
    raddino_store_image img;
    int found = 0;
    raddino_status st = raddino_store_find_id(c->store, id, NULL, &img, &found);
    if (st.code) return st;
    if (found) snprintf(row->sha256, sizeof row->sha256, "%s", img.sha256);
    row->path = strdup(found ? img.path : "");
    if (!row->path) return error(RADDINO_ERR_NOMEM, "out of memory");
    raddino_dicom_info d;
    int has_dicom = 0;
    st = raddino_store_get_dicom(c->store, id, &d, &has_dicom);
    if (st.code || !has_dicom) return st;
    row->has_dicom = 1;
    memcpy(row->sop_instance_uid, d.sop_instance_uid, sizeof row->sop_instance_uid);
    memcpy(row->study_instance_uid, d.study_instance_uid, sizeof row->study_instance_uid);
    memcpy(row->series_instance_uid, d.series_instance_uid, sizeof row->series_instance_uid);
    memcpy(row->patient_key, d.patient_key, sizeof row->patient_key);
    return st;
}

raddino_status raddino_collection_search_rows(raddino_collection *c, const float *queries,
                                              size_t nq, int k, float min_score,
                                              const int64_t *exclude_ids,
                                              const char *const *exclude_sha256,
                                              raddino_collection_row **rows)
{
    if (!rows || k <= 0) return error(RADDINO_ERR_ARGUMENT, "collection search: bad arguments");
    *rows = NULL;
    size_t n = nq * (size_t)k;
    float *scores = malloc((n ? n : 1) * sizeof *scores);
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    raddino_collection_row *out = calloc(n ? n : 1, sizeof *out);
    raddino_status st = scores && ids && out ? ok_status() : error(RADDINO_ERR_NOMEM, "out of memory");
    if (!st.code)
        st = raddino_collection_search(c, queries, nq, k, min_score, exclude_ids, exclude_sha256,
                                       scores, ids);
    for (size_t i = 0; i < n && !st.code; i++) st = fill_row(c, ids[i], scores[i], &out[i]);
    free(scores);
    free(ids);
    if (st.code) {
        raddino_collection_rows_free(out, n);
        return st;
    }
    *rows = out;
    return st;
}

raddino_status raddino_collection_read_rows(raddino_collection *c, float **vectors,
                                            raddino_collection_row **rows, size_t *n)
{
    if (!c || !vectors || !rows || !n)
        return error(RADDINO_ERR_ARGUMENT, "collection read_rows: bad arguments");
    *vectors = NULL;
    *rows = NULL;
    *n = 0;
    int64_t *ids = NULL;
    size_t count = 0;
    raddino_status st = raddino_collection_read_all(c, vectors, &ids, &count);
    if (st.code) return st;
    raddino_collection_row *out = calloc(count ? count : 1, sizeof *out);
    if (!out) st = error(RADDINO_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < count && !st.code; i++) st = fill_row(c, ids[i], 0, &out[i]);
    free(ids);
    if (st.code) {
        raddino_collection_rows_free(out, count);
        free(*vectors);
        *vectors = NULL;
        return st;
    }
    *rows = out;
    *n = count;
    return st;
}
