/* store_imports.c — imported vectors: the imports table, each image's origin, and the identity
 * of a model row (what a saved probe records). */
#include "store_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

raddino_status raddino_store_model_identity(raddino_store *s, int64_t model_id,
                                            char weights_sha256[65], char *json, size_t cap,
                                            int *dim, int *found)
{
    *found = 0;
    if (!s) return store_error(s, RADDINO_ERR_ARGUMENT, "model_identity: NULL");
    if (!model_id) model_id = s->model_id;
    if (!model_id) {
        int d;
        raddino_status st = store_vectors_model(s, &model_id, &d);
        if (st.code || !model_id) return st;
    }
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT weights_sha256, config_json, dim FROM models WHERE id = ?",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading the model");
    sqlite3_bind_int64(q, 1, model_id);
    int rc = sqlite3_step(q);
    raddino_status st = store_ok();
    if (rc == SQLITE_ROW) {
        const char *sha = (const char *)sqlite3_column_text(q, 0);
        const char *cfg = (const char *)sqlite3_column_text(q, 1);
        snprintf(weights_sha256, 65, "%s", sha ? sha : "");
        if (cfg && strlen(cfg) >= cap) st = store_error(s, RADDINO_ERR_TOO_LARGE, "model config too long");
        else snprintf(json, cap, "%s", cfg ? cfg : "");
        *dim = sqlite3_column_int(q, 2);
        *found = !st.code;
    } else if (rc != SQLITE_DONE) {
        st = store_sql_error(s, "reading the model");
    }
    sqlite3_finalize(q);
    return st;
}

raddino_status raddino_store_put_import(raddino_store *s, raddino_store_import *imp)
{
    if (!s || !imp || !imp->npy_path || !imp->npy_sha256 || !imp->csv_path)
        return store_error(s, RADDINO_ERR_ARGUMENT, "put_import: NULL");
    if (!s->in_batch || !s->model_id)
        return store_error(s, RADDINO_ERR_ARGUMENT, "put_import: no batch or no model in use");
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    imp->created = (double)ts.tv_sec + ts.tv_nsec * 1e-9;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO imports(created, model_id, npy_path, npy_sha256, csv_path,"
                           " rows, verified, min_cosine, seed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "recording an import");
    sqlite3_bind_double(q, 1, imp->created);
    sqlite3_bind_int64(q, 2, s->model_id);
    sqlite3_bind_text(q, 3, imp->npy_path, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, imp->npy_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 5, imp->csv_path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 6, imp->rows);
    sqlite3_bind_int64(q, 7, imp->verified);
    if (!isnan(imp->min_cosine)) sqlite3_bind_double(q, 8, imp->min_cosine);
    sqlite3_bind_int64(q, 9, (int64_t)imp->seed);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "recording an import");
    imp->id = sqlite3_last_insert_rowid(s->db);
    return store_ok();
}

raddino_status raddino_store_put_origin(raddino_store *s, int64_t image_id, int64_t import_id,
                                        int64_t row, int verified)
{
    if (!s || !s->in_batch) return store_error(s, RADDINO_ERR_ARGUMENT, "put_origin: no batch open");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT OR REPLACE INTO image_origin(image_id, import_id, row, verified)"
                           " VALUES (?, ?, ?, ?)", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "recording an image's origin");
    sqlite3_bind_int64(q, 1, image_id);
    sqlite3_bind_int64(q, 2, import_id);
    sqlite3_bind_int64(q, 3, row);
    sqlite3_bind_int(q, 4, verified != 0);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    return rc == SQLITE_DONE ? store_ok() : store_sql_error(s, "recording an image's origin");
}
