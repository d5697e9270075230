/* raddino_collection.h — a collection ready to search: the SQLite store (store/) and its FAISS index
 * (index/) kept in step. The library behind raddino search, index-info, cluster, dedup and eval.
 *
 * What it does: opens a database read-only, takes one read snapshot of it, and makes sure the
 * derived FAISS index (a file next to the database, DB + ".faiss") holds exactly the snapshot's
 * vectors: loaded as it is when current, refreshed when the collection changed since it was
 * written, built when missing, damaged or of another model, type or dimension. FAISS ids are the
 * store's image ids, so every hit maps back to a row (path, hash, DICOM metadata).
 *
 * Usage:
 *
 *     raddino_collection_params p = raddino_collection_default_params();
 *     raddino_collection *c;
 *     raddino_status st = raddino_collection_open("raddino.db", &p, &c);
 *     if (st.code) { fprintf(stderr, "%s\n", st.message); return 1; }
 *     float q[768]; int found;
 *     raddino_store_image img;
 *     st = raddino_collection_vector(c, 42, q, &img, &found);       // image 42 as the query
 *     float scores[5]; int64_t ids[5];
 *     int64_t self = 42;
 *     raddino_collection_row *hits;                                // id, score, path, sha256,
 *     st = raddino_collection_search_rows(c, q, 1, 5, -1.0f, &self, NULL, &hits);  // DICOM UIDs
 *     ...
 *     raddino_collection_rows_free(hits, 5);
 *     raddino_collection_close(c);
 *
 * Staleness: the store's embeddings generation (raised by SQL triggers on every change of a
 * vector) is saved in the index file with the model's identity ("<model row id>:<weights
 * sha256>"). On open:
 *   - same generation, model, dimension and type: the file is loaded, nothing is read from the
 *     store but the lookups of hits;
 *   - generation differs, same model and type: for trained types (IVF, PQ, PCA...) the file is
 *     loaded, emptied (raddino_index_clear: the training stays) and refilled with the snapshot's
 *     vectors: no retraining. Flat and HNSW indexes have no training to keep and are rebuilt.
 *     Not a per-row diff: the store does not record which rows changed since a generation,
 *     only that some did, so every vector is read again either way; what is saved is training.
 *     An IVF trained on a much smaller collection stays as trained: --rebuild retrains;
 *   - otherwise (no file, damaged, another model or dimension, another requested type,
 *     params.rebuild): a fresh build, trained on the snapshot.
 * A rebuilt or refreshed index is saved atomically (raddino_index_save: temporary file, fsync,
 * rename). Two processes refreshing at once both write complete files; the last rename wins.
 * When the folder is not writable the index is used from memory and info.save_error says why.
 *
 * Type: params.index.type NULL keeps the type of an existing file (a type chosen once with
 * --index-type sticks) and builds "auto" (exact flat up to 200,000 vectors, see
 * raddino_index.h) when there is none; any other value is required: a file of another type is
 * rebuilt ("auto" is compared through raddino_index_choose_type).
 *
 * Only images with status 'ok' and a vector of the collection's model are indexed. The
 * collection holds its read snapshot until closed: lookups see the rows the index was made
 * from, whatever a concurrent `raddino index` commits meanwhile. One thread at a time.
 */
#ifndef RADDINO_COLLECTION_H
#define RADDINO_COLLECTION_H

#include "raddino_index.h"
#include "raddino_store.h"

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

typedef struct {
    raddino_index_params index;     /* type, max_memory, nprobe, ef_search, n_threads */
    const char *index_path;         /* NULL: the database path + ".faiss" */
    int rebuild;                    /* 1: build afresh (and retrain) even when current */
    int no_save;                    /* 1: never write the index file */
    int no_index;                   /* 1: the snapshot only, no index (clustering, eval):
                                       raddino_collection_index returns NULL, search fails */
} raddino_collection_params;

raddino_collection_params raddino_collection_default_params(void);

typedef enum {
    RADDINO_INDEX_LOADED = 0,       /* the saved file was current */
    RADDINO_INDEX_REFRESHED = 1,    /* the saved file's training kept, its vectors replaced */
    RADDINO_INDEX_BUILT = 2         /* built from the store's vectors */
} raddino_index_origin;

typedef struct {
    char db_path[RADDINO_PATH_MAX];
    char index_path[RADDINO_PATH_MAX];
    int64_t generation;             /* of the snapshot */
    int64_t model_id;
    int dim;
    int64_t vectors;                /* in the index (no_index: in the snapshot) */
    int origin;                     /* raddino_index_origin */
    int saved;                      /* 1 when this open wrote the file */
    char save_error[RADDINO_MESSAGE_MAX];   /* why it could not be written ("" when fine) */
    double seconds;                 /* open: load or build time */
} raddino_collection_info;

typedef struct raddino_collection raddino_collection;

raddino_status raddino_collection_open(const char *db_path, const raddino_collection_params *p,
                                       raddino_collection **out);
void raddino_collection_close(raddino_collection *c);

void raddino_collection_get_info(const raddino_collection *c, raddino_collection_info *out);
/* The read-only store (inside the snapshot) and the index. Owned by the collection. */
raddino_store *raddino_collection_store(raddino_collection *c);
raddino_index *raddino_collection_index(raddino_collection *c);

/* Refuses (RADDINO_ERR_MODEL, naming both) a model other than the collection's: vectors of two
 * models are not comparable. Use it before searching with vectors embedded on the fly. */
raddino_status raddino_collection_check_model(raddino_collection *c,
                                              const raddino_store_model *model);

/* The stored vector of image `id` (dim floats) and its row; *found = 0 when the image has no
 * vector (unknown id, failed image). */
raddino_status raddino_collection_vector(raddino_collection *c, int64_t id, float *vector,
                                         raddino_store_image *image, int *found);

/* Every vector of the snapshot, in image id order: *vectors (n x dim) and *ids, malloc'd (the
 * caller frees them). The input of clustering, duplicate finding and recall measurement. */
raddino_status raddino_collection_read_all(raddino_collection *c, float **vectors,
                                           int64_t **ids, size_t *n);

/* Top-k cosine neighbours of nq queries (nq x dim, any length: normalised inside), best first;
 * scores/ids are nq x k, missing results are id -1, score -INFINITY. Results below min_score
 * are dropped (pass -2 for none). exclude_ids (nq values or NULL; -1: none) drops that image
 * from its query's results; exclude_sha256 (nq hex hashes or NULL, entries may be NULL) drops
 * every image whose file has that content hash. Excluded results are replaced by the next ones,
 * so a row still holds k results when the collection has them. */
raddino_status raddino_collection_search(raddino_collection *c, const float *queries, size_t nq,
                                         int k, float min_score, const int64_t *exclude_ids,
                                         const char *const *exclude_sha256, float *scores,
                                         int64_t *ids);

/* ---- Rows: results with what the commands show about them ------------------------------- */

/* A stored image as a search or a read returns it: everything a caller shows about a hit, so
 * that it need not look each one up again in the store. */
typedef struct {
    int64_t id;                 /* image id; -1: no result in this place (path NULL) */
    float score;                /* cosine to the query (read_rows: 0) */
    char *path;                 /* owned by the rows (raddino_collection_rows_free); "" when the
                                   row is not in the snapshot */
    char sha256[65];            /* content hash of the file ("" when unknown) */
    int has_dicom;              /* 1: the image has DICOM metadata, and these are its: */
    char sop_instance_uid[65], study_instance_uid[65], series_instance_uid[65];
    char patient_key[65];       /* salted (raddino_store.h) */
} raddino_collection_row;

/* raddino_collection_search, returning rows: *rows is nq x k (malloc'd; free with
 * raddino_collection_rows_free(*rows, nq * k)), missing results have id -1. */
raddino_status raddino_collection_search_rows(raddino_collection *c, const float *queries,
                                              size_t nq, int k, float min_score,
                                              const int64_t *exclude_ids,
                                              const char *const *exclude_sha256,
                                              raddino_collection_row **rows);

/* raddino_collection_read_all, returning rows: every vector of the snapshot (*vectors, n x dim)
 * and its row, in image id order. Free *vectors with free() and *rows with
 * raddino_collection_rows_free(*rows, *n). */
raddino_status raddino_collection_read_rows(raddino_collection *c, float **vectors,
                                            raddino_collection_row **rows, size_t *n);

void raddino_collection_rows_free(raddino_collection_row *rows, size_t n);

/* ---- Batches: queries that arrive together, searched together ----------------------------
 *
 * raddino_collection_search_batch and _search_rows_batch are raddino_collection_search and
 * _search_rows with the nq queries sharing one pass over the index (raddino_index_search_batch):
 * for "flat" and "exact-*" indexes, 8 queries cost about what one does, and every query gets the
 * same ids and scores whichever queries share its call (scores may differ from the one-query
 * FAISS path of raddino_collection_search in the last bits).
 *
 * raddino_search_queue gathers the queries of concurrent callers (a server's request threads)
 * into such batches, group-commit style: a caller that finds no batch running runs its own at
 * once (a query alone never waits for company); queries that arrive while a batch runs are
 * taken together, at most max_batch, by one of their callers as soon as it ends. Each caller
 * blocks until its query is answered and gets its own rows. The queue is safe from any number
 * of threads; the collection is used by one batch at a time, between params.lock and
 * params.unlock (a caller that also uses the collection elsewhere passes its own mutex). */
raddino_status raddino_collection_search_batch(raddino_collection *c, const float *queries,
                                               size_t nq, int k, float min_score,
                                               const int64_t *exclude_ids,
                                               const char *const *exclude_sha256, float *scores,
                                               int64_t *ids);
raddino_status raddino_collection_search_rows_batch(raddino_collection *c, const float *queries,
                                                    size_t nq, int k, float min_score,
                                                    const int64_t *exclude_ids,
                                                    const char *const *exclude_sha256,
                                                    raddino_collection_row **rows);

#define RADDINO_SEARCH_QUEUE_MAX_BATCH 64

typedef struct {
    int max_batch;              /* queries per batch: 1 to 1024; 0 = RADDINO_SEARCH_QUEUE_MAX_BATCH */
    void (*lock)(void *user);   /* may be NULL: around each batch's use of the collection */
    void (*unlock)(void *user);
    void *user;
} raddino_search_queue_params;

/* One query. The caller fills the first fields; search fills status and rows. */
typedef struct {
    const float *vector;        /* the collection's dim floats (any length: normalised inside) */
    int k;                      /* 1 to 100,000 */
    float min_score;            /* -2: none */
    int64_t exclude_id;         /* -1: none */
    const char *exclude_sha256; /* NULL: none */
    raddino_status status;      /* the query's own outcome */
    raddino_collection_row *rows;   /* k rows (free with raddino_collection_rows_free(rows, k)) */
} raddino_search_request;

typedef struct {
    long long batches;          /* run so far */
    long long queries;          /* answered so far */
    int largest;                /* most queries in one batch */
    int pending;                /* queued and not yet taken by a batch */
    int max_batch;              /* the queue's cap */
} raddino_search_queue_stats;

typedef struct raddino_search_queue raddino_search_queue;

raddino_status raddino_search_queue_new(raddino_collection *c,
                                        const raddino_search_queue_params *params,
                                        raddino_search_queue **out);
/* No search may be in progress. The collection stays the caller's. */
void raddino_search_queue_free(raddino_search_queue *q);
/* Answers r (blocking until its batch has run). Returns r->status. */
raddino_status raddino_search_queue_search(raddino_search_queue *q, raddino_search_request *r);
void raddino_search_queue_get_stats(raddino_search_queue *q, raddino_search_queue_stats *out);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
