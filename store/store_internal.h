/* store_internal.h — private to store/: the handle and the helpers its files share.
 *
 *   store.c         open/close, writer lock, migrations, batches, models, runs, statistics
 *   store_images.c  images and vectors: lookups, upserts, pruning, iteration
 *   store_clusters.c  k-means runs and assignments
 *   store_origin.c  where the model was found (meta 'model_origin.*')
 */
#ifndef RADDINO_STORE_INTERNAL_H
#define RADDINO_STORE_INTERNAL_H

#include "raddino_store.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdbool.h>

/* Statements prepared once per store, on first use. */
typedef enum {
    Q_FIND_PATH,
    Q_FIND_SHA256,
    Q_UPSERT_IMAGE,
    Q_UPSERT_VECTOR,
    Q_DELETE_VECTORS,
    Q_DELETE_PATH,
    Q_UPSERT_DICOM,
    Q_DELETE_DICOM,
    Q_GET_DICOM,
    Q_FIND_ID,
    Q_COUNT
} store_query;

/* A growable text buffer for strings handed to the caller. */
typedef struct {
    char *text;
    size_t cap;
} store_text;

struct raddino_store {
    sqlite3 *db;
    char path[PATH_MAX];
    int lock_fd;                /* writer: flock'd descriptor on the database file, else -1 */
    bool read_only;
    int schema;                 /* user_version when opened (a reader may see an older one) */
    bool in_batch;
    bool in_read;               /* raddino_store_read_begin */
    int64_t model_id;           /* the model in use: 0 until raddino_store_use_model */
    int model_dim;
    sqlite3_stmt *queries[Q_COUNT];
    store_text path_text, format_text, reason_text;
    float *vector;              /* aligned copy of a BLOB, model_dim floats (foreach) */
    size_t vector_cap;
    store_text params_text;     /* cluster run parameters (get_cluster_run) */
    float *centroids;           /* cluster run centroids (get_cluster_run) */
    size_t centroids_cap;
};

raddino_status store_ok(void);
/* "DBPATH: what: sqlite's message" (with sqlite's message when rc is an sqlite error). */
raddino_status store_sql_error(const raddino_store *s, const char *what);
raddino_status store_error(const raddino_store *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

sqlite3_stmt *store_query_get(raddino_store *s, store_query q);
/* Copies a column's text into a store buffer; NULL stays NULL. */
const char *store_keep_text(store_text *t, const unsigned char *text);
/* Ends a batch that the caller began itself (own): commits it when st is success, else rolls it
 * back; returns st, or the commit's error. A batch the caller's caller began is left open. */
raddino_status store_end_own_batch(raddino_store *s, bool own, raddino_status st);
/* The model the stored vectors come from (0 when there are none); error when several. */
raddino_status store_vectors_model(raddino_store *s, int64_t *model_id, int *dim);

#endif
