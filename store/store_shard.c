/* store_shard.c — shards of a collection and their merge (raddino_store.h, "Shards").
 *
 * A shard database is an ordinary store that also records, in meta, which shard it is
 * ('shard_index', 'shard_count'). Its files are those whose path hashes to that shard
 * (raddino_store_shard_of), so N shard databases written by N independent processes hold
 * disjoint parts of one collection and no SQLite file ever has two writers.
 *
 * The merge reads each shard through ATTACH on the main database's connection, in two phases
 * because SQLite cannot ATTACH inside a transaction:
 *   1. outside any write transaction (the caller holds the main store's writer lock, so no
 *      other raddino writer changes it meanwhile): each shard is attached, checked (schema,
 *      shard number, model) and, unless it is unchanged since the last merge, the rows that
 *      differ from the main database's (new or changed rows, vectors, DICOM metadata) and the
 *      main rows of that shard it no longer holds are copied into TEMP tables; then detached;
 *   2. one write transaction applies the TEMP tables: rows upserted in path order (the order a
 *      single `raddino index` run writes them in, so new rows get the ids it would give), then
 *      the rows that are gone deleted, and the shards' stamps recorded with the result. A merge
 *      killed at any moment leaves the main database as it was, and the rerun does it all.
 *
 * Unchanged shards cost one look at their meta and runs tables: the stamp of a shard is its
 * patient key salt (random per database file: a shard file made again is another file), its
 * last run's id, and its generation. A shard whose last run did not finish (killed, interrupted,
 * or still running) is refused: it holds part of its files only. */
#include "store_internal.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the hash ------------------------------------------------------------------------------ */

uint32_t raddino_store_shard_of(const char *path, uint32_t count)
{
    /* FNV-1a, 64 bits, over the path's bytes: simple, fixed, and the same on every machine. */
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return count ? (uint32_t)(h % count) : 0;
}

static void sql_shard_of(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    const unsigned char *path = sqlite3_value_text(argv[0]);
    int64_t count = sqlite3_value_int64(argv[1]);
    if (!path || count <= 0 || count > UINT32_MAX) {
        sqlite3_result_null(ctx);
        return;
    }
    sqlite3_result_int64(ctx, raddino_store_shard_of((const char *)path, (uint32_t)count));
}

/* ---- small helpers ------------------------------------------------------------------------- */

static raddino_status run_sql(raddino_store *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return store_sql_error(s, what);
    return store_ok();
}

/* One integer from a query with up to two integer parameters; *found = 0 when no row (or a
 * NULL value). */
static raddino_status int_query(raddino_store *s, const char *sql, int64_t a, int64_t b,
                                int64_t *out, int *found)
{
    sqlite3_stmt *q;
    *out = 0;
    if (found) *found = 0;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading");
    if (sqlite3_bind_parameter_count(q) >= 1) sqlite3_bind_int64(q, 1, a);
    if (sqlite3_bind_parameter_count(q) >= 2) sqlite3_bind_int64(q, 2, b);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) != SQLITE_NULL) {
        *out = sqlite3_column_int64(q, 0);
        if (found) *found = 1;
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sql_error(s, "reading");
    return store_ok();
}

static const char *file_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* ---- shard number -------------------------------------------------------------------------- */

raddino_status raddino_store_get_shard(raddino_store *s, int *index, int *count)
{
    if (!s || !index || !count) return store_error(s, RADDINO_ERR_ARGUMENT, "get_shard");
    int64_t i, n;
    int fi, fn;
    raddino_status st = int_query(s, "SELECT value FROM meta WHERE key = 'shard_index'", 0, 0,
                                  &i, &fi);
    if (!st.code) st = int_query(s, "SELECT value FROM meta WHERE key = 'shard_count'", 0, 0, &n,
                                 &fn);
    *index = fi && fn ? (int)i : 0;
    *count = fi && fn ? (int)n : 0;
    return st;
}

raddino_status raddino_store_set_shard(raddino_store *s, int index, int count)
{
    if (!s || s->read_only || count <= 0 || index < 0 || index >= count)
        return store_error(s, RADDINO_ERR_ARGUMENT, "set_shard: bad shard %d of %d", index,
                           count);
    int have_index, have_count;
    raddino_status st = raddino_store_get_shard(s, &have_index, &have_count);
    if (st.code) return st;
    if (have_count) {
        if (have_index == index && have_count == count) return st;
        return store_error(s, RADDINO_ERR_ARGUMENT,
                           "holds shard %d of %d, not shard %d of %d", have_index, have_count,
                           index, count);
    }
    int64_t images;
    st = int_query(s, "SELECT count(*) FROM images", 0, 0, &images, NULL);
    if (st.code) return st;
    if (images)
        return store_error(s, RADDINO_ERR_ARGUMENT,
                           "holds %lld images of a whole collection, not of shard %d of %d",
                           (long long)images, index, count);
    bool own = !s->in_batch;
    if (own) st = raddino_store_begin(s);
    sqlite3_stmt *q;
    if (!st.code && sqlite3_prepare_v2(s->db,
                                       "INSERT OR REPLACE INTO meta(key, value) VALUES"
                                       " ('shard_index', ?1), ('shard_count', ?2)",
                                       -1, &q, NULL) == SQLITE_OK) {
        sqlite3_bind_int(q, 1, index);
        sqlite3_bind_int(q, 2, count);
        if (sqlite3_step(q) != SQLITE_DONE) st = store_sql_error(s, "recording the shard");
        sqlite3_finalize(q);
    } else if (!st.code) {
        st = store_sql_error(s, "recording the shard");
    }
    st = store_end_own_batch(s, own, st);
    return st;
}

/* ---- shard files next to a main database --------------------------------------------------- */

raddino_status raddino_store_shard_path(const char *main_db, int index, int count, char *out,
                                        size_t cap)
{
    if (!main_db || !out || count <= 0 || index < 0 || index >= count)
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "shard_path: bad shard %d of %d",
                                    index, count);
    int n = snprintf(out, cap, "%s.shard-%d-of-%d", main_db, index, count);
    if (n < 0 || (size_t)n >= cap)
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", main_db);
    return raddino_status_ok();
}

/* "NAME.shard-I-of-N" with NAME the main file's name: I and N, else false. */
static bool parse_shard_name(const char *entry, const char *base, int *index, int *count)
{
    size_t n = strlen(base);
    if (strncmp(entry, base, n) != 0 || strncmp(entry + n, ".shard-", 7) != 0) return false;
    const char *p = entry + n + 7;
    char *end;
    if (*p < '0' || *p > '9') return false;
    long i = strtol(p, &end, 10);
    if (strncmp(end, "-of-", 4) != 0) return false;
    p = end + 4;
    if (*p < '0' || *p > '9') return false;
    long c = strtol(p, &end, 10);
    if (*end || c <= 0 || c > 1000000 || i < 0 || i >= c) return false;
    *index = (int)i;
    *count = (int)c;
    return true;
}

void raddino_store_free_shard_paths(char **paths, int n)
{
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
}

raddino_status raddino_store_find_shards(const char *main_db, char ***paths, int *n_paths)
{
    if (!main_db || !paths || !n_paths)
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "find_shards: bad arguments");
    *paths = NULL;
    *n_paths = 0;
    char dir[PATH_MAX];
    const char *base = file_name(main_db);
    size_t dir_len = (size_t)(base - main_db);
    if (dir_len >= sizeof dir)
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "%s: path too long", main_db);
    if (dir_len) memcpy(dir, main_db, dir_len);
    dir[dir_len] = 0;
    DIR *d = opendir(dir_len ? dir : ".");
    if (!d)
        return raddino_status_error(RADDINO_ERR_IO, "%s: cannot list its folder: %s", main_db,
                                    strerror(errno));
    int count = 0, other_count = 0;
    char *seen = NULL;      /* seen[i]: shard i of count is there */
    raddino_status st = raddino_status_ok();
    struct dirent *e;
    while (!st.code && (e = readdir(d)) != NULL) {
        int i, c;
        if (!parse_shard_name(e->d_name, base, &i, &c)) continue;
        if (count && c != count) {
            other_count = c;
            continue;
        }
        if (!count) {
            count = c;
            seen = calloc((size_t)c, 1);
            if (!seen) st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
        }
        if (seen) seen[i] = 1;
    }
    closedir(d);
    if (st.code) {
        free(seen);
        return st;
    }
    if (other_count) {
        free(seen);
        return raddino_status_error(RADDINO_ERR_ARGUMENT,
                                    "%s: shards of two different counts lie next to it "
                                    "(%s.shard-I-of-%d and %s.shard-I-of-%d): remove the old ones",
                                    main_db, base, count, base, other_count);
    }
    if (!count) {
        return raddino_status_error(RADDINO_ERR_NOT_FOUND,
                                    "%s: no shard files next to it (%s.shard-I-of-N)", main_db,
                                    base);
    }
    /* Name the missing ones (as many as fit one line). */
    char missing[RADDINO_MESSAGE_MAX / 2];
    size_t used = 0;
    int n_missing = 0;
    for (int i = 0; i < count; i++) {
        if (seen[i]) continue;
        if (n_missing++ < 8 && used < sizeof missing)
            used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%s.shard-%d-of-%d",
                                     used ? ", " : "", base, i, count);
    }
    if (n_missing) {
        free(seen);
        return raddino_status_error(RADDINO_ERR_NOT_FOUND,
                                    "%s: %d of its %d shards %s missing: %s%s", main_db,
                                    n_missing, count, n_missing == 1 ? "is" : "are", missing,
                                    n_missing > 8 ? ", ..." : "");
    }
    free(seen);
    char **out = calloc((size_t)(unsigned)count, sizeof *out);
    if (!out) return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    for (int i = 0; i < count; i++) {
        char path[PATH_MAX];
        st = raddino_store_shard_path(main_db, i, count, path, sizeof path);
        if (!st.code && !(out[i] = strdup(path)))
            st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
        if (st.code) {
            raddino_store_free_shard_paths(out, count);
            return st;
        }
    }
    *paths = out;
    *n_paths = count;
    return st;
}

/* ---- the merge ----------------------------------------------------------------------------- */

/* The model of one shard, as read from it. */
typedef struct {
    bool any;               /* a model row was found */
    char weights_sha256[65];
    char *config_json, *repository, *revision;
    int dim;
    int64_t id;             /* in the shard */
} shard_model;

static void shard_model_free(shard_model *m)
{
    free(m->config_json);
    free(m->repository);
    free(m->revision);
    memset(m, 0, sizeof *m);
}

static char *dup_text(const unsigned char *t)
{
    return t ? strdup((const char *)t) : NULL;
}

static raddino_status attach(raddino_store *s, const char *path)
{
    struct stat sb;
    /* ATTACH would create a missing file: refuse first. */
    if (stat(path, &sb) != 0)
        return raddino_status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(sb.st_mode))
        return raddino_status_error(RADDINO_ERR_IO, "%s: not a regular file", path);
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "ATTACH DATABASE ?1 AS shard", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "attaching a shard");
    sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE)
        return raddino_status_error(RADDINO_ERR_IO, "%s: cannot open: %s", path,
                                    sqlite3_errmsg(s->db));
    return store_ok();
}

static void detach(raddino_store *s)
{
    sqlite3_exec(s->db, "DETACH DATABASE shard", NULL, NULL, NULL);
}

/* Checks an attached shard: schema, shard number, model. */
static raddino_status check_shard(raddino_store *s, const char *path, int *index, int *count,
                                  shard_model *m)
{
    int64_t v, i, n;
    int fi, fn;
    raddino_status st = int_query(s, "PRAGMA shard.user_version", 0, 0, &v, NULL);
    if (st.code)
        return raddino_status_error(RADDINO_ERR_FORMAT, "%s: not a raddino database", path);
    if (v != RADDINO_STORE_SCHEMA)
        return raddino_status_error(RADDINO_ERR_FORMAT,
                                    "%s: database schema %lld, this raddino merges schema %d",
                                    path, (long long)v, RADDINO_STORE_SCHEMA);
    st = int_query(s, "SELECT value FROM shard.meta WHERE key = 'shard_index'", 0, 0, &i, &fi);
    if (!st.code)
        st = int_query(s, "SELECT value FROM shard.meta WHERE key = 'shard_count'", 0, 0, &n, &fn);
    if (st.code) return st;
    if (!fi || !fn)
        return raddino_status_error(RADDINO_ERR_ARGUMENT,
                                    "%s: not a shard database (it records no shard number)",
                                    path);
    *index = (int)i;
    *count = (int)n;
    /* The model of its vectors, else the last one it registered (a shard of failures only). */
    int64_t mid;
    int found;
    st = int_query(s, "SELECT count(DISTINCT model_id) FROM shard.embeddings", 0, 0, &v, NULL);
    if (!st.code && v > 1)
        return raddino_status_error(RADDINO_ERR_MODEL, "%s: holds vectors of several models",
                                    path);
    if (!st.code)
        st = int_query(s,
                       "SELECT coalesce((SELECT model_id FROM shard.embeddings LIMIT 1),"
                       " (SELECT max(id) FROM shard.models))", 0, 0, &mid, &found);
    if (st.code || !found) return st;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT weights_sha256, config_json, repository, revision, dim"
                           " FROM shard.models WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading a shard's model");
    sqlite3_bind_int64(q, 1, mid);
    if (sqlite3_step(q) == SQLITE_ROW) {
        m->any = true;
        m->id = mid;
        snprintf(m->weights_sha256, sizeof m->weights_sha256, "%s",
                 (const char *)sqlite3_column_text(q, 0));
        m->config_json = dup_text(sqlite3_column_text(q, 1));
        m->repository = dup_text(sqlite3_column_text(q, 2));
        m->revision = dup_text(sqlite3_column_text(q, 3));
        m->dim = sqlite3_column_int(q, 4);
        if (!m->config_json) st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
    }
    sqlite3_finalize(q);
    return st;
}

/* The stamp of an attached shard (see the top). *unfinished = 1 when its last run did not
 * finish (killed, interrupted, or still running): then it holds part of its files only. */
static raddino_status shard_stamp(raddino_store *s, char *out, size_t cap, int *unfinished)
{
    out[0] = 0;
    *unfinished = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT hex((SELECT value FROM shard.meta WHERE key = 'dicom_salt')),"
                           " (SELECT value FROM shard.meta WHERE key = 'generation'),"
                           " (SELECT id FROM shard.runs ORDER BY id DESC LIMIT 1),"
                           " (SELECT finished IS NULL FROM shard.runs ORDER BY id DESC"
                           "  LIMIT 1)", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading a shard");
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *salt = (const char *)sqlite3_column_text(q, 0);
        snprintf(out, cap, "%s:%lld:%lld", salt ? salt : "",
                 (long long)sqlite3_column_int64(q, 1), (long long)sqlite3_column_int64(q, 2));
        *unfinished = sqlite3_column_int(q, 3) == 1;
    }
    sqlite3_finalize(q);
    return store_ok();
}

/* The stamp recorded for shard I by the last merge ("" when none). */
static raddino_status merged_stamp(raddino_store *s, int index, char *out, size_t cap)
{
    out[0] = 0;
    sqlite3_stmt *q;
    char key[64];
    snprintf(key, sizeof key, "merged_shard.%d", index);
    if (sqlite3_prepare_v2(s->db, "SELECT CAST(value AS TEXT) FROM main.meta WHERE key = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
    if (sqlite3_step(q) == SQLITE_ROW && sqlite3_column_text(q, 0))
        snprintf(out, cap, "%s", (const char *)sqlite3_column_text(q, 0));
    sqlite3_finalize(q);
    return store_ok();
}

#define DICOM_COLUMNS                                                                         \
    "sop_instance_uid, study_instance_uid, series_instance_uid, modality, view_position,"    \
    " body_part_examined, photometric_interpretation, rows, columns, pixel_spacing_row,"     \
    " pixel_spacing_column, imager_pixel_spacing_row, imager_pixel_spacing_column,"          \
    " transfer_syntax_uid, frames, patient_key"

static const char *const temp_tables =
    "DROP TABLE IF EXISTS temp.merge_rows;"
    "DROP TABLE IF EXISTS temp.merge_gone;"
    "DROP TABLE IF EXISTS temp.merge_meta;"
    "CREATE TEMP TABLE merge_rows(path TEXT PRIMARY KEY, size, mtime_ns, sha256, width, height,"
    " format, status, reason, embedded_at, vector, has_dicom, " DICOM_COLUMNS ");"
    "CREATE TEMP TABLE merge_gone(path TEXT PRIMARY KEY);"
    "CREATE TEMP TABLE merge_meta(key TEXT PRIMARY KEY, value);";

/* Copies what differs between the attached shard (index of count; its model shard_model_id)
 * and the main database into the TEMP tables. */
static raddino_status collect_changes(raddino_store *s, int index, int count,
                                      int64_t shard_model_id, int64_t *unchanged)
{
    static const char rows_sql[] =
        "INSERT OR REPLACE INTO temp.merge_rows SELECT si.path, si.size, si.mtime_ns, si.sha256,"
        " si.width, si.height, si.format, si.status, si.reason, si.embedded_at,"
        " CASE WHEN si.status = 'ok' THEN se.vector END, sd.image_id IS NOT NULL,"
        " sd.sop_instance_uid, sd.study_instance_uid, sd.series_instance_uid, sd.modality,"
        " sd.view_position, sd.body_part_examined, sd.photometric_interpretation, sd.rows,"
        " sd.columns, sd.pixel_spacing_row, sd.pixel_spacing_column,"
        " sd.imager_pixel_spacing_row, sd.imager_pixel_spacing_column, sd.transfer_syntax_uid,"
        " sd.frames, sd.patient_key"
        " FROM shard.images si"
        " LEFT JOIN shard.embeddings se ON se.image_id = si.id AND se.model_id = ?1"
        " LEFT JOIN shard.dicom sd ON sd.image_id = si.id"
        " LEFT JOIN main.images mi ON mi.path = si.path"
        " LEFT JOIN main.embeddings me ON me.image_id = mi.id AND me.model_id = ?2"
        " LEFT JOIN main.dicom md ON md.image_id = mi.id"
        " WHERE raddino_shard_of(si.path, ?3) = ?4 AND (mi.id IS NULL"
        "  OR mi.size IS NOT si.size OR mi.mtime_ns IS NOT si.mtime_ns"
        "  OR mi.sha256 IS NOT si.sha256 OR mi.width IS NOT si.width"
        "  OR mi.height IS NOT si.height OR mi.format IS NOT si.format"
        "  OR mi.status IS NOT si.status OR mi.reason IS NOT si.reason"
        "  OR mi.embedded_at IS NOT si.embedded_at"
        "  OR me.vector IS NOT (CASE WHEN si.status = 'ok' THEN se.vector END)"
        "  OR (md.image_id IS NULL) IS NOT (sd.image_id IS NULL)"
        "  OR md.sop_instance_uid IS NOT sd.sop_instance_uid"
        "  OR md.study_instance_uid IS NOT sd.study_instance_uid"
        "  OR md.series_instance_uid IS NOT sd.series_instance_uid"
        "  OR md.modality IS NOT sd.modality OR md.view_position IS NOT sd.view_position"
        "  OR md.body_part_examined IS NOT sd.body_part_examined"
        "  OR md.photometric_interpretation IS NOT sd.photometric_interpretation"
        "  OR md.rows IS NOT sd.rows OR md.columns IS NOT sd.columns"
        "  OR md.pixel_spacing_row IS NOT sd.pixel_spacing_row"
        "  OR md.pixel_spacing_column IS NOT sd.pixel_spacing_column"
        "  OR md.imager_pixel_spacing_row IS NOT sd.imager_pixel_spacing_row"
        "  OR md.imager_pixel_spacing_column IS NOT sd.imager_pixel_spacing_column"
        "  OR md.transfer_syntax_uid IS NOT sd.transfer_syntax_uid"
        "  OR md.frames IS NOT sd.frames OR md.patient_key IS NOT sd.patient_key)";
    static const char gone_sql[] =
        "INSERT OR IGNORE INTO temp.merge_gone SELECT mi.path FROM main.images mi"
        " WHERE raddino_shard_of(mi.path, ?1) = ?2"
        " AND NOT EXISTS (SELECT 1 FROM shard.images si WHERE si.path = mi.path)";
    sqlite3_stmt *q;
    int64_t before, after, total;
    raddino_status st = int_query(s, "SELECT count(*) FROM temp.merge_rows", 0, 0, &before, NULL);
    if (st.code) return st;
    if (sqlite3_prepare_v2(s->db, rows_sql, -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "comparing a shard");
    sqlite3_bind_int64(q, 1, shard_model_id);
    sqlite3_bind_int64(q, 2, s->model_id);
    sqlite3_bind_int(q, 3, count);
    sqlite3_bind_int(q, 4, index);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "comparing a shard");
    if (sqlite3_prepare_v2(s->db, gone_sql, -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "comparing a shard");
    sqlite3_bind_int(q, 1, count);
    sqlite3_bind_int(q, 2, index);
    rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "comparing a shard");
    st = int_query(s, "SELECT count(*) FROM temp.merge_rows", 0, 0, &after, NULL);
    if (!st.code)
        st = int_query(s, "SELECT count(*) FROM shard.images WHERE raddino_shard_of(path, ?1) = ?2",
                       count, index, &total, NULL);
    if (!st.code) *unchanged += total - (after - before);
    return st;
}

/* Writes the TEMP tables into the main database (inside the open batch). */
static raddino_status apply_changes(raddino_store *s, raddino_store_merge_result *r)
{
    int64_t n;
    raddino_status st = int_query(s,
                                  "SELECT count(*) FROM temp.merge_rows t"
                                  " WHERE EXISTS (SELECT 1 FROM main.images WHERE path = t.path)",
                                  0, 0, &r->updated, NULL);
    if (!st.code) st = int_query(s, "SELECT count(*) FROM temp.merge_rows", 0, 0, &n, NULL);
    if (st.code) return st;
    r->added = n - r->updated;
    /* Path order: the order in which one `raddino index` run writes its rows, so new rows get
     * the ids it would give them. */
    st = run_sql(s,
                 "INSERT INTO main.images(path, size, mtime_ns, sha256, width, height, format,"
                 " status, reason, embedded_at) SELECT path, size, mtime_ns, sha256, width,"
                 " height, format, status, reason, embedded_at FROM temp.merge_rows WHERE 1"
                 " ORDER BY path ON CONFLICT (path) DO UPDATE SET size = excluded.size,"
                 " mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,"
                 " width = excluded.width, height = excluded.height, format = excluded.format,"
                 " status = excluded.status, reason = excluded.reason,"
                 " embedded_at = excluded.embedded_at",
                 "merging images");
    if (!st.code)
        st = run_sql(s,
                     "DELETE FROM main.embeddings WHERE image_id IN (SELECT mi.id FROM"
                     " main.images mi JOIN temp.merge_rows t ON t.path = mi.path"
                     " WHERE t.vector IS NULL)",
                     "merging vectors");
    if (!st.code) {
        sqlite3_stmt *q;
        if (sqlite3_prepare_v2(s->db,
                               "INSERT INTO main.embeddings(image_id, model_id, dim, vector)"
                               " SELECT mi.id, ?1, ?2, t.vector FROM temp.merge_rows t"
                               " JOIN main.images mi ON mi.path = t.path"
                               " WHERE t.vector IS NOT NULL ORDER BY mi.id"
                               " ON CONFLICT (image_id, model_id) DO UPDATE SET"
                               " dim = excluded.dim, vector = excluded.vector"
                               " WHERE embeddings.vector IS NOT excluded.vector",
                               -1, &q, NULL) != SQLITE_OK)
            return store_sql_error(s, "merging vectors");
        sqlite3_bind_int64(q, 1, s->model_id);
        sqlite3_bind_int(q, 2, s->model_dim);
        int rc = sqlite3_step(q);
        sqlite3_finalize(q);
        if (rc != SQLITE_DONE) return store_sql_error(s, "merging vectors");
    }
    if (!st.code)
        st = run_sql(s,
                     "DELETE FROM main.dicom WHERE image_id IN (SELECT mi.id FROM main.images mi"
                     " JOIN temp.merge_rows t ON t.path = mi.path);"
                     "INSERT INTO main.dicom(image_id, " DICOM_COLUMNS ") SELECT mi.id, "
                     DICOM_COLUMNS " FROM temp.merge_rows t JOIN main.images mi"
                     " ON mi.path = t.path WHERE t.has_dicom",
                     "merging DICOM metadata");
    if (!st.code)
        st = int_query(s, "SELECT count(*) FROM temp.merge_gone", 0, 0, &r->removed, NULL);
    if (!st.code)
        st = run_sql(s, "DELETE FROM main.images WHERE path IN (SELECT path FROM temp.merge_gone)",
                     "removing images");
    if (!st.code)
        st = run_sql(s, "INSERT OR REPLACE INTO main.meta(key, value) SELECT key, value"
                        " FROM temp.merge_meta", "recording the merge");
    if (!st.code) st = int_query(s, "SELECT count(*) FROM main.images WHERE status = 'failed'"
                                    " AND path IN (SELECT path FROM temp.merge_rows)", 0, 0,
                                 &r->failed, NULL);
    return st;
}

static raddino_status put_meta_text(raddino_store *s, const char *key, const char *value)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "INSERT OR REPLACE INTO temp.merge_meta(key, value)"
                                  " VALUES (?1, CAST(?2 AS TEXT))", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "recording the merge");
    sqlite3_bind_text(q, 1, key, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(q, 2, value, -1, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "recording the merge");
    return store_ok();
}

static bool same_model(const shard_model *a, const shard_model *b)
{
    return !strcmp(a->weights_sha256, b->weights_sha256) &&
           !strcmp(a->config_json, b->config_json) && a->dim == b->dim;
}

raddino_status raddino_store_merge(raddino_store *s, const char *const *shards, int n,
                                   const raddino_store_merge_params *params,
                                   raddino_store_merge_result *result)
{
    const char *command = params && params->command ? params->command : "merge";
    raddino_store_merge_result local;
    raddino_store_merge_result *r = result ? result : &local;
    memset(r, 0, sizeof *r);
    if (!s || s->read_only || s->in_batch || n <= 0 || !shards)
        return store_error(s, RADDINO_ERR_ARGUMENT, "merge: bad arguments");
    int self_index, self_count;
    raddino_status st = raddino_store_get_shard(s, &self_index, &self_count);
    if (st.code) return st;
    if (self_count)
        return store_error(s, RADDINO_ERR_ARGUMENT,
                           "is shard %d of %d itself, not a database to merge shards into",
                           self_index, self_count);
    if (sqlite3_create_function(s->db, "raddino_shard_of", 2,
                                SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL, sql_shard_of, NULL,
                                NULL) != SQLITE_OK)
        return store_sql_error(s, "registering the shard function");
    int *index = calloc((size_t)n, sizeof *index);
    char (*stamps)[160] = calloc((size_t)n, sizeof *stamps);
    shard_model model, m;
    memset(&model, 0, sizeof model);
    memset(&m, 0, sizeof m);
    const char *model_from = NULL;
    int count = 0;
    if (!index || !stamps) st = raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");

    /* Every shard checked before anything is written. */
    for (int i = 0; i < n && !st.code; i++) {
        int c;
        st = attach(s, shards[i]);
        if (st.code) break;
        shard_model_free(&m);
        st = check_shard(s, shards[i], &index[i], &c, &m);
        int unfinished = 0;
        if (!st.code) st = shard_stamp(s, stamps[i], sizeof stamps[i], &unfinished);
        detach(s);
        if (!st.code && unfinished)
            st = raddino_status_error(RADDINO_ERR_ARGUMENT,
                                      "%s: its last indexing run did not finish (killed, "
                                      "interrupted or still running): it holds part of its "
                                      "files only", shards[i]);
        if (st.code) break;
        if (count && c != count) {
            st = raddino_status_error(RADDINO_ERR_ARGUMENT,
                                      "%s: shard %d of %d, while %s is one of %d", shards[i],
                                      index[i], c, shards[0], count);
            break;
        }
        count = c;
        for (int j = 0; j < i && !st.code; j++)
            if (index[j] == index[i])
                st = raddino_status_error(RADDINO_ERR_ARGUMENT,
                                          "%s and %s are both shard %d of %d", shards[j],
                                          shards[i], index[i], count);
        if (st.code || !m.any) continue;
        if (!model.any) {
            model = m;
            memset(&m, 0, sizeof m);
            model_from = shards[i];
        } else if (!same_model(&model, &m)) {
            bool same_weights = !strcmp(model.weights_sha256, m.weights_sha256);
            st = raddino_status_error(RADDINO_ERR_MODEL,
                                      "%s: made with another model than %s (%s)", shards[i],
                                      model_from,
                                      same_weights ? "same weights, other preprocessing or DICOM "
                                                     "window"
                                                   : "other weights");
        }
    }
    shard_model_free(&m);
    /* The main database's model: the shards' (refused when it holds another model's vectors). */
    if (!st.code && model.any) {
        raddino_store_model sm = {model.weights_sha256, model.config_json, model.repository,
                                  model.revision, model.dim};
        st = raddino_store_use_model(s, &sm, 0, NULL, NULL);
    }
    int64_t main_generation = 0, merged_generation = 0, merged_count = 0;
    int have_generation = 0;
    if (!st.code) st = raddino_store_generation(s, &main_generation);
    if (!st.code)
        st = int_query(s, "SELECT value FROM main.meta WHERE key = 'merged_generation'", 0, 0,
                       &merged_generation, &have_generation);
    if (!st.code)
        st = int_query(s, "SELECT value FROM main.meta WHERE key = 'merged_shard_count'", 0, 0,
                       &merged_count, NULL);
    bool main_as_merged = have_generation && merged_generation == main_generation &&
                          merged_count == count;
    if (!st.code) st = run_sql(s, temp_tables, "preparing the merge");

    /* What changed, shard by shard. */
    for (int i = 0; i < n && !st.code; i++) {
        char before[160];
        st = merged_stamp(s, index[i], before, sizeof before);
        if (st.code) break;
        if (main_as_merged && !strcmp(before, stamps[i])) {
            r->shards_unchanged++;
            continue;
        }
        st = attach(s, shards[i]);
        if (st.code) break;
        shard_model sm;
        memset(&sm, 0, sizeof sm);
        int idx, c;
        st = check_shard(s, shards[i], &idx, &c, &sm);  /* again: it may have changed since */
        if (!st.code && sm.any && !same_model(&sm, &model))
            st = raddino_status_error(RADDINO_ERR_MODEL, "%s: made with another model than %s",
                                      shards[i], model_from);
        int unfinished = 0;
        if (!st.code) st = shard_stamp(s, stamps[i], sizeof stamps[i], &unfinished);
        if (!st.code && unfinished)
            st = raddino_status_error(RADDINO_ERR_ARGUMENT,
                                      "%s: its last indexing run did not finish", shards[i]);
        if (!st.code) st = collect_changes(s, index[i], count, sm.id, &r->unchanged);
        /* The place its model was found, for commands that embed queries later. */
        if (!st.code && sm.any)
            st = run_sql(s,
                         "INSERT OR REPLACE INTO temp.merge_meta(key, value) SELECT key, value"
                         " FROM shard.meta WHERE key LIKE 'model_origin.%'",
                         "reading a shard's model origin");
        shard_model_free(&sm);
        detach(s);
    }
    /* Stamps: the next merge skips the shards that did not change. */
    char key[64];
    for (int i = 0; i < n && !st.code; i++) {
        snprintf(key, sizeof key, "merged_shard.%d", index[i]);
        st = put_meta_text(s, key, stamps[i]);
    }
    if (!st.code) {
        char value[32];
        snprintf(value, sizeof value, "%d", count);
        st = put_meta_text(s, "merged_shard_count", value);
    }

    int64_t run_id = 0;
    if (!st.code) st = raddino_store_run_begin(s, command, &run_id);
    if (!st.code) st = raddino_store_begin(s);
    if (!st.code) st = apply_changes(s, r);
    if (!st.code)
        st = run_sql(s,
                     "INSERT OR REPLACE INTO main.meta(key, value) VALUES ('merged_generation',"
                     " (SELECT value FROM main.meta WHERE key = 'generation'))",
                     "recording the merge");
    if (!st.code) {
        raddino_store_counts counts = {r->added, r->updated, 0, r->unchanged, r->failed,
                                       r->removed};
        st = raddino_store_run_update(s, run_id, &counts, 0, 0, 1);
    }
    if (!st.code && params && params->test_kill_before_commit) raise(SIGKILL);
    if (s->in_batch) {
        if (st.code) {
            sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
            s->in_batch = false;
        } else {
            st = raddino_store_commit(s);
        }
    }
    sqlite3_exec(s->db,
                 "DROP TABLE IF EXISTS temp.merge_rows; DROP TABLE IF EXISTS temp.merge_gone;"
                 " DROP TABLE IF EXISTS temp.merge_meta;", NULL, NULL, NULL);
    r->shards = n;
    shard_model_free(&model);
    free(index);
    free(stamps);
    return st;
}
