/* store_images.c — image rows and their vectors: lookups, upserts, pruning, iteration. */
#include "store_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Columns 0..11 of Q_FIND_PATH / Q_FIND_SHA256 into *out (strings copied into the store). */
static void read_image(raddino_store *s, sqlite3_stmt *q, raddino_store_image *out)
{
    memset(out, 0, sizeof *out);
    out->id = sqlite3_column_int64(q, 0);
    out->path = store_keep_text(&s->path_text, sqlite3_column_text(q, 1));
    out->size = sqlite3_column_int64(q, 2);
    out->mtime_ns = sqlite3_column_int64(q, 3);
    const unsigned char *sha = sqlite3_column_text(q, 4);
    snprintf(out->sha256, sizeof out->sha256, "%s", sha ? (const char *)sha : "");
    out->width = sqlite3_column_int(q, 5);
    out->height = sqlite3_column_int(q, 6);
    out->format = store_keep_text(&s->format_text, sqlite3_column_text(q, 7));
    const unsigned char *status = sqlite3_column_text(q, 8);
    out->status = status && !strcmp((const char *)status, "ok") ? RADDINO_IMAGE_OK
                                                                : RADDINO_IMAGE_FAILED;
    out->reason = store_keep_text(&s->reason_text, sqlite3_column_text(q, 9));
    out->embedded_at = sqlite3_column_double(q, 10);
    out->has_vector = sqlite3_column_int(q, 11);
}

raddino_status raddino_store_find_path(raddino_store *s, const char *path,
                                       raddino_store_image *out, int *found)
{
    if (!s || !path || !out || !found) return store_error(s, RADDINO_ERR_ARGUMENT, "find_path");
    *found = 0;
    sqlite3_stmt *q = store_query_get(s, Q_FIND_PATH);
    if (!q) return store_sql_error(s, "looking up a path");
    sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, s->model_id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        read_image(s, q, out);
        *found = 1;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sql_error(s, "looking up a path");
    return store_ok();
}

/* Copies a vector BLOB after checking its length against the model's dim. */
static raddino_status read_vector(raddino_store *s, sqlite3_stmt *q, int column, int64_t image_id,
                                  int dim, float *out)
{
    const void *blob = sqlite3_column_blob(q, column);
    int bytes = sqlite3_column_bytes(q, column);
    if (!blob || dim <= 0 || bytes != dim * (int)sizeof(float))
        return store_error(s, RADDINO_ERR_FORMAT,
                           "image %lld: vector of %d bytes, expected %d float32 values",
                           (long long)image_id, bytes, dim);
    memcpy(out, blob, (size_t)bytes);
    return store_ok();
}

raddino_status raddino_store_find_sha256(raddino_store *s, const char *sha256, float *vector,
                                         raddino_store_image *source, int *found)
{
    if (!s || !sha256 || !vector || !source || !found)
        return store_error(s, RADDINO_ERR_ARGUMENT, "find_sha256");
    *found = 0;
    if (!s->model_id) return store_ok();
    sqlite3_stmt *q = store_query_get(s, Q_FIND_SHA256);
    if (!q) return store_sql_error(s, "looking up a hash");
    sqlite3_bind_text(q, 1, sha256, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, s->model_id);
    int rc = sqlite3_step(q);
    raddino_status st = store_ok();
    if (rc == SQLITE_ROW) {
        read_image(s, q, source);
        st = read_vector(s, q, 12, source->id, s->model_dim, vector);
        *found = !st.code;
    } else if (rc != SQLITE_DONE) {
        st = store_sql_error(s, "looking up a hash");
    }
    sqlite3_reset(q);
    return st;
}

raddino_status raddino_store_find_id(raddino_store *s, int64_t id, float *vector,
                                     raddino_store_image *out, int *found)
{
    if (!s || !out || !found) return store_error(s, RADDINO_ERR_ARGUMENT, "find_id");
    *found = 0;
    sqlite3_stmt *q = store_query_get(s, Q_FIND_ID);
    if (!q) return store_sql_error(s, "looking up an image");
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, s->model_id);
    int rc = sqlite3_step(q);
    raddino_status st = store_ok();
    if (rc == SQLITE_ROW) {
        read_image(s, q, out);
        if (out->has_vector && vector) st = read_vector(s, q, 12, id, s->model_dim, vector);
        *found = !st.code;
    } else if (rc != SQLITE_DONE) {
        st = store_sql_error(s, "looking up an image");
    }
    sqlite3_reset(q);
    return st;
}

static raddino_status write_vector(raddino_store *s, int64_t id, const float *vector)
{
    sqlite3_stmt *q = store_query_get(s, Q_UPSERT_VECTOR);
    if (!q) return store_sql_error(s, "storing a vector");
    sqlite3_bind_int64(q, 1, id);
    sqlite3_bind_int64(q, 2, s->model_id);
    sqlite3_bind_int(q, 3, s->model_dim);
    sqlite3_bind_blob(q, 4, vector, s->model_dim * (int)sizeof(float), SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "storing a vector");
    return store_ok();
}

static raddino_status delete_vectors(raddino_store *s, int64_t id)
{
    sqlite3_stmt *q = store_query_get(s, Q_DELETE_VECTORS);
    if (!q) return store_sql_error(s, "removing a vector");
    sqlite3_bind_int64(q, 1, id);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "removing a vector");
    return store_ok();
}

/* ---- DICOM metadata ---------------------------------------------------------------------- */

/* Empty text and non-positive numbers are absent attributes: NULL. */
static void bind_text_or_null(sqlite3_stmt *q, int i, const char *text)
{
    if (text[0]) sqlite3_bind_text(q, i, text, -1, SQLITE_TRANSIENT);
}

static void bind_positive(sqlite3_stmt *q, int i, double v)
{
    if (v > 0) sqlite3_bind_double(q, i, v);
}

static void bind_count(sqlite3_stmt *q, int i, int v)
{
    if (v > 0) sqlite3_bind_int(q, i, v);
}

raddino_status raddino_store_put_dicom(raddino_store *s, int64_t image_id,
                                       const raddino_dicom_info *d)
{
    if (!s) return store_error(s, RADDINO_ERR_ARGUMENT, "put_dicom: NULL");
    if (!s->in_batch) return store_error(s, RADDINO_ERR_ARGUMENT, "put_dicom: no batch open");
    sqlite3_stmt *q = store_query_get(s, d ? Q_UPSERT_DICOM : Q_DELETE_DICOM);
    if (!q) return store_sql_error(s, "storing DICOM metadata");
    sqlite3_bind_int64(q, 1, image_id);
    if (d) {
        bind_text_or_null(q, 2, d->sop_instance_uid);
        bind_text_or_null(q, 3, d->study_instance_uid);
        bind_text_or_null(q, 4, d->series_instance_uid);
        bind_text_or_null(q, 5, d->modality);
        bind_text_or_null(q, 6, d->view_position);
        bind_text_or_null(q, 7, d->body_part_examined);
        bind_text_or_null(q, 8, d->photometric_interpretation);
        bind_count(q, 9, d->rows);
        bind_count(q, 10, d->columns);
        bind_positive(q, 11, d->pixel_spacing[0]);
        bind_positive(q, 12, d->pixel_spacing[1]);
        bind_positive(q, 13, d->imager_pixel_spacing[0]);
        bind_positive(q, 14, d->imager_pixel_spacing[1]);
        bind_text_or_null(q, 15, d->transfer_syntax_uid);
        bind_count(q, 16, d->frames);
        bind_text_or_null(q, 17, d->patient_key);
    }
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "storing DICOM metadata");
    return store_ok();
}

static void column_text(sqlite3_stmt *q, int i, char *out, size_t cap)
{
    const unsigned char *text = sqlite3_column_text(q, i);
    snprintf(out, cap, "%s", text ? (const char *)text : "");
}

raddino_status raddino_store_get_dicom(raddino_store *s, int64_t image_id,
                                       raddino_dicom_info *d, int *found)
{
    if (!s || !d || !found) return store_error(s, RADDINO_ERR_ARGUMENT, "get_dicom: NULL");
    memset(d, 0, sizeof *d);
    *found = 0;
    sqlite3_stmt *q = store_query_get(s, Q_GET_DICOM);
    if (!q) return store_sql_error(s, "reading DICOM metadata");
    sqlite3_bind_int64(q, 1, image_id);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) {
        column_text(q, 0, d->sop_instance_uid, sizeof d->sop_instance_uid);
        column_text(q, 1, d->study_instance_uid, sizeof d->study_instance_uid);
        column_text(q, 2, d->series_instance_uid, sizeof d->series_instance_uid);
        column_text(q, 3, d->modality, sizeof d->modality);
        column_text(q, 4, d->view_position, sizeof d->view_position);
        column_text(q, 5, d->body_part_examined, sizeof d->body_part_examined);
        column_text(q, 6, d->photometric_interpretation, sizeof d->photometric_interpretation);
        d->rows = sqlite3_column_int(q, 7);
        d->columns = sqlite3_column_int(q, 8);
        d->pixel_spacing[0] = sqlite3_column_double(q, 9);
        d->pixel_spacing[1] = sqlite3_column_double(q, 10);
        d->imager_pixel_spacing[0] = sqlite3_column_double(q, 11);
        d->imager_pixel_spacing[1] = sqlite3_column_double(q, 12);
        column_text(q, 13, d->transfer_syntax_uid, sizeof d->transfer_syntax_uid);
        d->frames = sqlite3_column_int(q, 14);
        column_text(q, 15, d->patient_key, sizeof d->patient_key);
        *found = 1;
    }
    sqlite3_reset(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sql_error(s, "reading DICOM metadata");
    return store_ok();
}

/* ---- images -------------------------------------------------------------------------------- */

raddino_status raddino_store_put_image(raddino_store *s, const raddino_store_image *img,
                                       const float *vector, int64_t *id)
{
    if (!s || !img || !img->path) return store_error(s, RADDINO_ERR_ARGUMENT, "put_image: NULL");
    bool ok = img->status == RADDINO_IMAGE_OK;
    if (!s->in_batch) return store_error(s, RADDINO_ERR_ARGUMENT, "put_image: no batch open");
    if (ok && (!vector || !s->model_id))
        return store_error(s, RADDINO_ERR_ARGUMENT, "%s: put_image: ok without a vector or a "
                           "model", img->path);
    sqlite3_stmt *q = store_query_get(s, Q_UPSERT_IMAGE);
    if (!q) return store_sql_error(s, "storing an image");
    sqlite3_bind_text(q, 1, img->path, -1, SQLITE_STATIC);
    sqlite3_bind_int64(q, 2, img->size);
    sqlite3_bind_int64(q, 3, img->mtime_ns);
    if (img->sha256[0]) sqlite3_bind_text(q, 4, img->sha256, -1, SQLITE_STATIC);
    if (img->width > 0) sqlite3_bind_int(q, 5, img->width);
    if (img->height > 0) sqlite3_bind_int(q, 6, img->height);
    if (img->format) sqlite3_bind_text(q, 7, img->format, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 8, ok ? "ok" : "failed", -1, SQLITE_STATIC);
    if (!ok) sqlite3_bind_text(q, 9, img->reason ? img->reason : "unknown", -1, SQLITE_STATIC);
    if (ok) sqlite3_bind_double(q, 10, img->embedded_at);
    int rc = sqlite3_step(q);
    int64_t row = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    if (rc == SQLITE_ROW) rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE || !row) return store_sql_error(s, "storing an image");
    raddino_status st = ok ? write_vector(s, row, vector) : delete_vectors(s, row);
    /* The metadata describes the file's content, which this row now stands for. */
    if (!st.code) st = raddino_store_put_dicom(s, row, img->dicom);
    if (!st.code && id) *id = row;
    return st;
}

raddino_status raddino_store_remove_path(raddino_store *s, const char *path, int *removed)
{
    if (!s || !path) return store_error(s, RADDINO_ERR_ARGUMENT, "remove_path: NULL");
    if (!s->in_batch) return store_error(s, RADDINO_ERR_ARGUMENT, "remove_path: no batch open");
    sqlite3_stmt *q = store_query_get(s, Q_DELETE_PATH);
    if (!q) return store_sql_error(s, "removing an image");
    sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_reset(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "removing an image");
    if (removed) *removed = sqlite3_changes(s->db) > 0;
    return store_ok();
}

/* Ids of the rows keep() refuses, gathered first: deleting while a SELECT walks the same table
 * is allowed by SQLite but its outcome is unspecified. */
static raddino_status collect_unwanted(raddino_store *s, raddino_store_keep_fn keep, void *user,
                                       int64_t **ids, size_t *n)
{
    *ids = NULL;
    *n = 0;
    size_t cap = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT id, path FROM images ORDER BY id", -1, &q, NULL) !=
        SQLITE_OK)
        return store_sql_error(s, "pruning");
    int rc;
    raddino_status st = store_ok();
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
        if (keep(user, (const char *)sqlite3_column_text(q, 1))) continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 64;
            int64_t *bigger = realloc(*ids, cap * sizeof **ids);
            if (!bigger) {
                st = store_error(s, RADDINO_ERR_NOMEM, "out of memory while pruning");
                break;
            }
            *ids = bigger;
        }
        (*ids)[(*n)++] = sqlite3_column_int64(q, 0);
    }
    if (!st.code && rc != SQLITE_DONE) st = store_sql_error(s, "pruning");
    sqlite3_finalize(q);
    return st;
}

raddino_status raddino_store_prune(raddino_store *s, raddino_store_keep_fn keep, void *user,
                                   int64_t *removed)
{
    if (!s || !keep || s->read_only) return store_error(s, RADDINO_ERR_ARGUMENT, "prune");
    if (removed) *removed = 0;
    int64_t *ids;
    size_t n;
    raddino_status st = collect_unwanted(s, keep, user, &ids, &n);
    if (st.code || n == 0) {
        free(ids);
        return st;
    }
    bool own_batch = !s->in_batch;
    if (own_batch) st = raddino_store_begin(s);
    sqlite3_stmt *q = NULL;
    if (!st.code &&
        sqlite3_prepare_v2(s->db, "DELETE FROM images WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
        st = store_sql_error(s, "pruning");
    for (size_t i = 0; !st.code && i < n; i++) {
        sqlite3_bind_int64(q, 1, ids[i]);
        if (sqlite3_step(q) != SQLITE_DONE) st = store_sql_error(s, "pruning");
        sqlite3_reset(q);
    }
    sqlite3_finalize(q);
    free(ids);
    st = store_end_own_batch(s, own_batch, st);
    if (!st.code && removed) *removed = (int64_t)n;
    return st;
}

static raddino_status ensure_vector_buffer(raddino_store *s, int dim)
{
    if ((size_t)dim <= s->vector_cap) return store_ok();
    float *p = realloc(s->vector, (size_t)dim * sizeof *p);
    if (!p) return store_error(s, RADDINO_ERR_NOMEM, "out of memory");
    s->vector = p;
    s->vector_cap = (size_t)dim;
    return store_ok();
}

static raddino_status walk_vectors(raddino_store *s, int64_t model_id, int dim,
                                   raddino_store_vector_fn fn, void *user)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT i.id, i.path, i.sha256, e.vector FROM embeddings e"
                           " JOIN images i ON i.id = e.image_id WHERE e.model_id = ?1"
                           " ORDER BY i.id", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading vectors");
    sqlite3_bind_int64(q, 1, model_id);
    raddino_status st = ensure_vector_buffer(s, dim);
    int rc = SQLITE_DONE;
    while (!st.code && (rc = sqlite3_step(q)) == SQLITE_ROW) {
        int64_t id = sqlite3_column_int64(q, 0);
        st = read_vector(s, q, 3, id, dim, s->vector);
        if (!st.code && fn(user, id, (const char *)sqlite3_column_text(q, 1),
                           (const char *)sqlite3_column_text(q, 2), s->vector, dim))
            break;
    }
    if (!st.code && rc != SQLITE_ROW && rc != SQLITE_DONE)
        st = store_sql_error(s, "reading vectors");
    sqlite3_finalize(q);
    return st;
}

raddino_status raddino_store_foreach_vector(raddino_store *s, int64_t model_id,
                                            raddino_store_vector_fn fn, void *user)
{
    if (!s || !fn) return store_error(s, RADDINO_ERR_ARGUMENT, "foreach_vector: NULL");
    bool own = !s->in_batch && !s->in_read;
    if (own && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading vectors");
    raddino_status st = store_ok();
    int dim = 0;
    if (model_id == 0) {
        st = store_vectors_model(s, &model_id, &dim);
    } else {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db, "SELECT dim FROM models WHERE id = ?1", -1, &q, NULL) !=
            SQLITE_OK) {
            st = store_sql_error(s, "reading models");
        } else {
            sqlite3_bind_int64(q, 1, model_id);
            if (sqlite3_step(q) == SQLITE_ROW) dim = sqlite3_column_int(q, 0);
            sqlite3_finalize(q);
            if (dim <= 0) st = store_error(s, RADDINO_ERR_ARGUMENT, "no model %lld",
                                           (long long)model_id);
        }
    }
    if (!st.code && model_id) st = walk_vectors(s, model_id, dim, fn, user);
    if (own) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return st;
}

raddino_status raddino_store_foreach_sha256(raddino_store *s, raddino_store_hash_fn fn,
                                            void *user)
{
    if (!s || !fn) return store_error(s, RADDINO_ERR_ARGUMENT, "foreach_sha256: NULL");
    if (!s->model_id) return store_ok();
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT DISTINCT i.sha256 FROM images i JOIN embeddings e"
                           " ON e.image_id = i.id WHERE e.model_id = ?1 AND i.status = 'ok'"
                           " AND i.sha256 IS NOT NULL", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading hashes");
    sqlite3_bind_int64(q, 1, s->model_id);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW) fn(user, (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "reading hashes");
    return store_ok();
}
