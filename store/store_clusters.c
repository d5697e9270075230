/* store_clusters.c — k-means runs (raddino cluster) and their assignments. */
#include "store_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static raddino_status insert_run(raddino_store *s, raddino_store_cluster_run *run)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO cluster_runs(created, model_id, generation, k, dim, seed,"
                           " iterations, n, n_train, objective, silhouette, params_json, centroids)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "storing a cluster run");
    run->created = (double)time(NULL);
    sqlite3_bind_double(q, 1, run->created);
    sqlite3_bind_int64(q, 2, run->model_id);
    sqlite3_bind_int64(q, 3, run->generation);
    sqlite3_bind_int(q, 4, run->k);
    sqlite3_bind_int(q, 5, run->dim);
    sqlite3_bind_int64(q, 6, (int64_t)run->seed);
    sqlite3_bind_int(q, 7, run->iterations);
    sqlite3_bind_int64(q, 8, run->n);
    sqlite3_bind_int64(q, 9, run->n_train);
    sqlite3_bind_double(q, 10, run->objective);
    if (isfinite(run->silhouette)) sqlite3_bind_double(q, 11, run->silhouette);
    sqlite3_bind_text(q, 12, run->params_json ? run->params_json : "{}", -1, SQLITE_STATIC);
    sqlite3_bind_blob(q, 13, run->centroids, run->k * run->dim * (int)sizeof(float),
                      SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "storing a cluster run");
    run->id = sqlite3_last_insert_rowid(s->db);
    return store_ok();
}

static raddino_status insert_assignments(raddino_store *s, int64_t run_id, const int64_t *ids,
                                         const int32_t *clusters, const float *distances,
                                         size_t n)
{
    sqlite3_stmt *q;
    /* An image deleted since the vectors were read is skipped rather than failing the run. */
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO cluster_assignments(run_id, image_id, cluster, distance)"
                           " SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM images"
                           " WHERE id = ?2)", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "storing cluster assignments");
    int rc = SQLITE_DONE;
    for (size_t i = 0; i < n && rc == SQLITE_DONE; i++) {
        sqlite3_reset(q);
        sqlite3_bind_int64(q, 1, run_id);
        sqlite3_bind_int64(q, 2, ids[i]);
        sqlite3_bind_int(q, 3, clusters[i]);
        sqlite3_bind_double(q, 4, distances[i]);
        rc = sqlite3_step(q);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "storing cluster assignments");
    return store_ok();
}

raddino_status raddino_store_put_cluster_run(raddino_store *s, raddino_store_cluster_run *run,
                                             const int64_t *image_ids, const int32_t *clusters,
                                             const float *distances, size_t n)
{
    if (!s || !run || run->k <= 0 || run->dim <= 0 || !run->centroids ||
        (n && (!image_ids || !clusters || !distances)) ||
        (int64_t)run->k * run->dim > INT32_MAX / (int)sizeof(float))
        return store_error(s, RADDINO_ERR_ARGUMENT, "put_cluster_run: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (clusters[i] < 0 || clusters[i] >= run->k)
            return store_error(s, RADDINO_ERR_ARGUMENT, "put_cluster_run: cluster %d of %d",
                               (int)clusters[i], run->k);
    bool own = !s->in_batch;
    raddino_status st = own ? raddino_store_begin(s) : store_ok();
    if (!st.code) st = insert_run(s, run);
    if (!st.code) st = insert_assignments(s, run->id, image_ids, clusters, distances, n);
    st = store_end_own_batch(s, own, st);
    return st;
}

#define RUN_COLUMNS                                                                        \
    "SELECT id, created, model_id, generation, k, dim, seed, iterations, n, n_train,"      \
    " objective, silhouette, params_json, centroids FROM cluster_runs"

static void read_run(raddino_store *s, sqlite3_stmt *q, raddino_store_cluster_run *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(q, 0);
    out->created = sqlite3_column_double(q, 1);
    out->model_id = sqlite3_column_int64(q, 2);
    out->generation = sqlite3_column_int64(q, 3);
    out->k = sqlite3_column_int(q, 4);
    out->dim = sqlite3_column_int(q, 5);
    out->seed = (uint64_t)sqlite3_column_int64(q, 6);
    out->iterations = sqlite3_column_int(q, 7);
    out->n = sqlite3_column_int64(q, 8);
    out->n_train = sqlite3_column_int64(q, 9);
    out->objective = sqlite3_column_double(q, 10);
    out->silhouette = sqlite3_column_type(q, 11) == SQLITE_NULL ? NAN
                                                                 : sqlite3_column_double(q, 11);
    out->params_json = store_keep_text(&s->params_text, sqlite3_column_text(q, 12));
}

static raddino_status read_centroids(raddino_store *s, sqlite3_stmt *q,
                                     raddino_store_cluster_run *out)
{
    const void *blob = sqlite3_column_blob(q, 13);
    size_t bytes = (size_t)sqlite3_column_bytes(q, 13);
    size_t want = (size_t)out->k * (size_t)out->dim;
    if (!blob || out->k <= 0 || out->dim <= 0 || bytes != want * sizeof(float))
        return store_error(s, RADDINO_ERR_FORMAT, "cluster run %lld: centroids of %zu bytes",
                           (long long)out->id, bytes);
    if (want > s->centroids_cap) {
        float *p = realloc(s->centroids, want * sizeof *p);
        if (!p) return store_error(s, RADDINO_ERR_NOMEM, "out of memory");
        s->centroids = p;
        s->centroids_cap = want;
    }
    memcpy(s->centroids, blob, bytes);
    out->centroids = s->centroids;
    return store_ok();
}

raddino_status raddino_store_get_cluster_run(raddino_store *s, int64_t run_id,
                                             raddino_store_cluster_run *out, int *found)
{
    if (!s || !out || !found) return store_error(s, RADDINO_ERR_ARGUMENT, "get_cluster_run");
    *found = 0;
    if (s->schema < 3) return store_ok();      /* a reader of a file made before clusters */
    sqlite3_stmt *q;
    const char *sql = run_id ? RUN_COLUMNS " WHERE id = ?1" : RUN_COLUMNS " ORDER BY id DESC LIMIT 1";
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading cluster runs");
    if (run_id) sqlite3_bind_int64(q, 1, run_id);
    int rc = sqlite3_step(q);
    raddino_status st = store_ok();
    if (rc == SQLITE_ROW) {
        read_run(s, q, out);
        st = read_centroids(s, q, out);
        *found = !st.code;
    } else if (rc != SQLITE_DONE) {
        st = store_sql_error(s, "reading cluster runs");
    }
    sqlite3_finalize(q);
    return st;
}

raddino_status raddino_store_list_cluster_runs(raddino_store *s, raddino_store_cluster_run_fn fn,
                                               void *user)
{
    if (!s || !fn) return store_error(s, RADDINO_ERR_ARGUMENT, "list_cluster_runs");
    if (s->schema < 3) return store_ok();
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, RUN_COLUMNS " ORDER BY id DESC", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading cluster runs");
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        raddino_store_cluster_run run;
        read_run(s, q, &run);
        fn(user, &run);
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "reading cluster runs");
    return store_ok();
}

raddino_status raddino_store_foreach_assignment(raddino_store *s, int64_t run_id,
                                                raddino_store_assignment_fn fn, void *user)
{
    if (!s || !fn) return store_error(s, RADDINO_ERR_ARGUMENT, "foreach_assignment");
    if (s->schema < 3) return store_ok();
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT a.image_id, i.path, a.cluster, a.distance"
                           " FROM cluster_assignments a JOIN images i ON i.id = a.image_id"
                           " WHERE a.run_id = ?1 ORDER BY a.cluster, a.distance, a.image_id",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading cluster assignments");
    sqlite3_bind_int64(q, 1, run_id);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (fn(user, sqlite3_column_int64(q, 0), (const char *)sqlite3_column_text(q, 1),
               sqlite3_column_int(q, 2), (float)sqlite3_column_double(q, 3))) {
            rc = SQLITE_DONE;
            break;
        }
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "reading cluster assignments");
    return store_ok();
}
