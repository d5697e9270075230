/* collection.c — a store and its derived FAISS index kept in step (see raddino_collection.h). */
#include "raddino_collection.h"

#include <errno.h>
#include <libgen.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct raddino_collection {
    raddino_store *store;
    raddino_index *index;
    raddino_collection_info info;
    char model_key[RADDINO_INDEX_MODEL_ID_MAX];
    raddino_index_params params;
    int64_t n_vectors;              /* in the snapshot */
    char old_lists[RADDINO_PATH_MAX];   /* the lists file replaced by this open's save */
    char new_lists[RADDINO_PATH_MAX + 64];  /* the lists file this open built ("" if none) */
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

/* ---- the on-disk IVF, built in parts ------------------------------------------------------
 *
 * The store's vectors are streamed twice: once for the seeded training sample (unless a loaded
 * index gives its training), once in chunks of PART_ROWS, each chunk added to a part of its
 * own (in memory: codes and ids, 776 bytes a vector for SQ8 at 768-d; FAISS's add is itself
 * multi-threaded). The parts are then merged into a new lists file beside the index file, named
 * with a nonce so that a process still searching the previous pair keeps its files; the
 * previous lists file is deleted once the new index file is in place. */
#define PART_ROWS 131072

typedef struct {
    raddino_collection *c;
    const raddino_index *trained;
    const size_t *rows;         /* pass 1: the sample's ordinals, sorted */
    size_t n_rows, next_row, ordinal;
    float *buf;
    int64_t *ids;
    size_t n, cap;
    raddino_index **parts;
    size_t n_parts, cap_parts;
    raddino_status st;
} part_sink;

static int sample_vector(void *user, int64_t id, const char *path, const char *sha256,
                         const float *vector, int dim)
{
    (void)id;
    (void)path;
    (void)sha256;
    part_sink *s = user;
    if (dim != s->c->info.dim) {
        s->st = error(RADDINO_ERR_FORMAT, "image %lld: vector of dim %d, expected %d",
                      (long long)id, dim, s->c->info.dim);
        return 1;
    }
    if (s->next_row < s->n_rows && s->rows[s->next_row] == s->ordinal) {
        memcpy(s->buf + s->next_row * (size_t)dim, vector, (size_t)dim * sizeof *vector);
        s->next_row++;
    }
    s->ordinal++;
    return s->next_row == s->n_rows;   /* stop once the sample is complete */
}

static int flush_part(part_sink *s)
{
    if (s->n == 0) return 0;
    if (s->n_parts == s->cap_parts) {
        size_t cap = s->cap_parts ? s->cap_parts * 2 : 16;
        raddino_index **p = realloc(s->parts, cap * sizeof *p);
        if (!p) {
            s->st = error(RADDINO_ERR_NOMEM, "out of memory");
            return 1;
        }
        s->parts = p;
        s->cap_parts = cap;
    }
    s->st = raddino_index_ivf_add_part(s->trained, s->buf, s->ids, s->n, &s->parts[s->n_parts]);
    if (s->st.code) return 1;
    s->n_parts++;
    s->n = 0;
    return 0;
}

static int part_vector(void *user, int64_t id, const char *path, const char *sha256,
                       const float *vector, int dim)
{
    (void)path;
    (void)sha256;
    part_sink *s = user;
    if (dim != s->c->info.dim) {
        s->st = error(RADDINO_ERR_FORMAT, "image %lld: vector of dim %d, expected %d",
                      (long long)id, dim, s->c->info.dim);
        return 1;
    }
    memcpy(s->buf + s->n * (size_t)dim, vector, (size_t)dim * sizeof *vector);
    s->ids[s->n++] = id;
    return s->n == s->cap ? flush_part(s) : 0;
}

/* A lists file path for a new on-disk index: beside the index file when it will be saved
 * there, else in the temporary folder (unlinked once mapped). */
static void new_lists_path(const raddino_collection *c, int beside, char *out, size_t size)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    unsigned long long nonce = ((unsigned long long)ts.tv_sec * 1000000000ull +
                                (unsigned long long)ts.tv_nsec) ^
                               ((unsigned long long)getpid() << 40);
    if (beside) {
        snprintf(out, size, "%s.%016llx.ivfdata", c->info.index_path, nonce);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(out, size, "%s/raddino-%016llx.ivfdata", tmp && *tmp ? tmp : "/tmp", nonce);
    }
}

static int folder_writable(const char *path)
{
    char *copy = strdup(path);
    int ok = copy && access(dirname(copy), W_OK) == 0;
    free(copy);
    return ok;
}

static raddino_status build_ondisk(raddino_collection *c, const char *type, int no_save,
                                   raddino_index *trained_from)
{
    size_t n = (size_t)c->n_vectors;
    int dim = c->info.dim;
    part_sink s;
    memset(&s, 0, sizeof s);
    s.c = c;
    s.st = ok_status();
    raddino_status st = ok_status();
    raddino_index *trained = trained_from;
    if (!trained) {
        size_t nlist = 0;
        const char *ivf = strstr(type, "IVF");
        if (ivf) nlist = strtoull(ivf + 3, NULL, 10);
        size_t m = c->params.train_size ? c->params.train_size : 64 * (nlist ? nlist : 1024);
        if (m > n) m = n;
        size_t *rows = NULL;
        st = raddino_index_sample_rows(n, m, c->params.seed, &rows);
        s.buf = st.code ? NULL : malloc((m ? m : 1) * (size_t)dim * sizeof *s.buf);
        if (!st.code && !s.buf) st = error(RADDINO_ERR_NOMEM, "out of memory for the sample");
        s.rows = rows;
        s.n_rows = m;
        if (!st.code)
            st = raddino_store_foreach_vector(c->store, c->info.model_id, sample_vector, &s);
        if (!st.code) st = s.st;
        /* The count is the store's (every model, every status): an upper bound of what
         * foreach_vector yields, so the sample may come out a little smaller. */
        if (!st.code && s.next_row == 0)
            st = error(RADDINO_ERR_ARGUMENT, "%s: no vectors to train on", c->info.db_path);
        m = s.next_row;
        raddino_index_params p = c->params;
        p.type = type;
        if (!st.code) st = raddino_index_ivf_train(s.buf, m, dim, &p, &trained);
        free(rows);
        free(s.buf);
        s.buf = NULL;
        if (st.code) return st;
    }
    s.trained = trained;
    s.cap = n < PART_ROWS ? (n ? n : 1) : PART_ROWS;
    s.buf = malloc(s.cap * (size_t)dim * sizeof *s.buf);
    s.ids = malloc(s.cap * sizeof *s.ids);
    if (!s.buf || !s.ids) st = error(RADDINO_ERR_NOMEM, "out of memory for an index part");
    if (!st.code) st = raddino_store_foreach_vector(c->store, c->info.model_id, part_vector, &s);
    if (!st.code) st = s.st;
    if (!st.code) {
        flush_part(&s);
        st = s.st;
    }
    free(s.buf);
    free(s.ids);
    char lists[RADDINO_PATH_MAX + 64];
    int beside = !no_save && folder_writable(c->info.index_path);
    new_lists_path(c, beside, lists, sizeof lists);
    raddino_index *merged = NULL;
    if (!st.code) st = raddino_index_ivf_merge_parts(trained, s.parts, s.n_parts, lists, &merged);
    if (!st.code && !beside) unlink(lists);   /* mapped: lives until the index is freed */
    if (!st.code && beside) snprintf(c->new_lists, sizeof c->new_lists, "%s", lists);
    for (size_t i = 0; i < s.n_parts; i++) raddino_index_free(s.parts[i]);
    free(s.parts);
    if (trained != trained_from) raddino_index_free(trained);
    if (st.code) {
        unlink(lists);
        return error(st.code, "%s: building the search index: %s", c->info.db_path, st.message);
    }
    if (!beside && !no_save)
        snprintf(c->info.save_error, sizeof c->info.save_error, "%.400s: %s",
                 c->info.index_path, "folder not writable: the index is used from a temporary file");
    c->index = merged;
    return st;
}

static raddino_status build(raddino_collection *c, const char *type, int no_save)
{
    char chosen[RADDINO_INDEX_TYPE_MAX];
    if (type && !strcmp(type, "auto") &&
        !raddino_index_choose_type((size_t)c->n_vectors, c->info.dim, c->params.max_memory,
                                   chosen, sizeof chosen).code &&
        !strncmp(chosen, "ondisk:", 7))
        type = chosen;
    if (type && !strncmp(type, "ondisk:", 7)) {
        c->info.origin = RADDINO_INDEX_BUILT;
        return build_ondisk(c, type, no_save, NULL);
    }
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
static raddino_status refresh(raddino_collection *c, const char *type, int no_save)
{
    if (!strncmp(type, "ondisk:", 7)) {
        /* Read-only lists: new parts with the loaded training, merged into a new file. */
        raddino_index *loaded = c->index;
        c->index = NULL;
        raddino_status st = build_ondisk(c, type, no_save, loaded);
        raddino_index_free(loaded);
        c->info.origin = RADDINO_INDEX_REFRESHED;
        return st;
    }
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
    if (c->info.save_error[0]) return;   /* an on-disk index built in the temporary folder */
    raddino_status st = raddino_index_save(c->index, c->info.index_path, &meta);
    if (st.code) {
        snprintf(c->info.save_error, sizeof c->info.save_error, "%s", st.message);
        /* Mapped already: the file can go, the index stays usable until closed. */
        if (c->new_lists[0]) unlink(c->new_lists);
        return;
    }
    c->info.saved = 1;
    /* The new index file names the new lists file; the previous one is no longer named. */
    if (c->old_lists[0] && strcmp(c->old_lists, c->new_lists) != 0) unlink(c->old_lists);
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
    raddino_index_meta old;
    if (!raddino_index_read_meta(c->info.index_path, &old).code && old.lists_file[0]) {
        const char *slash = strrchr(c->info.index_path, '/');
        int dir = slash ? (int)(slash - c->info.index_path) + 1 : 0;
        snprintf(c->old_lists, sizeof c->old_lists, "%.*s%s", dir, c->info.index_path,
                 old.lists_file);
    }
    if (current || (usable && has_training(meta.type))) {
        raddino_index_meta loaded;
        st = raddino_index_load(c->info.index_path, &c->params, &c->index, &loaded);
        if (!st.code && current) {
            c->info.origin = RADDINO_INDEX_LOADED;
            return st;
        }
        if (!st.code) st = refresh(c, meta.type, p->no_save);
        if (st.code) {      /* damaged since read_meta, or refresh failed: build afresh */
            raddino_index_free(c->index);
            c->index = NULL;
            c->info.save_error[0] = 0;
            st = build(c, meta.type, p->no_save);
        }
    } else {
        st = build(c, requested ? requested : usable ? meta.type : "auto", p->no_save);
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
    c->n_vectors = n_vectors;
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

/* raddino_index_fetch_fn over the snapshot: the stored vectors of ids. */
static int fetch_stored(void *user, const int64_t *ids, size_t n, float *vectors)
{
    raddino_collection *c = user;
    for (size_t i = 0; i < n; i++) {
        raddino_store_image img;
        int found = 0;
        raddino_status st = raddino_store_find_id(c->store, ids[i],
                                                  vectors + i * (size_t)c->info.dim, &img, &found);
        if (st.code || !found || !img.has_vector) return 1;
    }
    return 0;
}

/* raddino_collection_search; batch: the queries share one pass over the index
 * (raddino_index_search_batch) rather than FAISS's search. */
static raddino_status search_impl(raddino_collection *c, const float *queries, size_t nq, int k,
                                  float min_score, const int64_t *exclude_ids,
                                  const char *const *exclude_sha256, float *scores, int64_t *ids,
                                  int batch)
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
        /* An index that re-ranks (on-disk, quantised) gets its shortlist's float32 vectors
         * from the store; for the others this is raddino_index_search. */
        if (!st.code && batch)
            st = raddino_index_search_batch(c->index, queries, nq, fetch, 0, fetch_stored, c, fs,
                                            fi);
        else if (!st.code)
            st = raddino_index_search_rerank(c->index, queries, nq, fetch, 0, fetch_stored, c,
                                             fs, fi);
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

raddino_status raddino_collection_search(raddino_collection *c, const float *queries, size_t nq,
                                         int k, float min_score, const int64_t *exclude_ids,
                                         const char *const *exclude_sha256, float *scores,
                                         int64_t *ids)
{
    return search_impl(c, queries, nq, k, min_score, exclude_ids, exclude_sha256, scores, ids, 0);
}

raddino_status raddino_collection_search_batch(raddino_collection *c, const float *queries,
                                               size_t nq, int k, float min_score,
                                               const int64_t *exclude_ids,
                                               const char *const *exclude_sha256, float *scores,
                                               int64_t *ids)
{
    return search_impl(c, queries, nq, k, min_score, exclude_ids, exclude_sha256, scores, ids, 1);
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

static raddino_status search_rows_impl(raddino_collection *c, const float *queries, size_t nq,
                                       int k, float min_score, const int64_t *exclude_ids,
                                       const char *const *exclude_sha256,
                                       raddino_collection_row **rows, int batch)
{
    if (!rows || k <= 0) return error(RADDINO_ERR_ARGUMENT, "collection search: bad arguments");
    *rows = NULL;
    size_t n = nq * (size_t)k;
    float *scores = malloc((n ? n : 1) * sizeof *scores);
    int64_t *ids = malloc((n ? n : 1) * sizeof *ids);
    raddino_collection_row *out = calloc(n ? n : 1, sizeof *out);
    raddino_status st = scores && ids && out ? ok_status() : error(RADDINO_ERR_NOMEM, "out of memory");
    if (!st.code)
        st = search_impl(c, queries, nq, k, min_score, exclude_ids, exclude_sha256, scores, ids,
                         batch);
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

raddino_status raddino_collection_search_rows(raddino_collection *c, const float *queries,
                                              size_t nq, int k, float min_score,
                                              const int64_t *exclude_ids,
                                              const char *const *exclude_sha256,
                                              raddino_collection_row **rows)
{
    return search_rows_impl(c, queries, nq, k, min_score, exclude_ids, exclude_sha256, rows, 0);
}

raddino_status raddino_collection_search_rows_batch(raddino_collection *c, const float *queries,
                                                    size_t nq, int k, float min_score,
                                                    const int64_t *exclude_ids,
                                                    const char *const *exclude_sha256,
                                                    raddino_collection_row **rows)
{
    return search_rows_impl(c, queries, nq, k, min_score, exclude_ids, exclude_sha256, rows, 1);
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
