/* store.c — opening the database (writer lock, WAL, migrations), batches, models, runs and
 * statistics. Images and vectors are in store_images.c. */
#include "store_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Schema migrations: step i takes user_version i to i + 1. Append, never edit a shipped step:
 * a database made by an older raddino is brought forward by the steps it lacks. */
static const char *const migrations[] = {
    /* 0 -> 1: the first schema. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta(key, value) VALUES ('generation', 0);"
    "CREATE TABLE models("
    "  id INTEGER PRIMARY KEY,"
    "  weights_sha256 TEXT NOT NULL,"
    "  config_json TEXT NOT NULL,"
    "  repository TEXT,"
    "  revision TEXT,"
    "  dim INTEGER NOT NULL CHECK (dim > 0),"
    "  created REAL NOT NULL,"
    "  UNIQUE (weights_sha256, config_json));"
    "CREATE TABLE images("
    "  id INTEGER PRIMARY KEY,"
    "  path TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL,"
    "  mtime_ns INTEGER NOT NULL,"
    "  sha256 TEXT,"
    "  width INTEGER,"
    "  height INTEGER,"
    "  format TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')),"
    "  reason TEXT,"
    "  embedded_at REAL);"
    "CREATE INDEX images_sha256 ON images(sha256);"
    "CREATE TABLE embeddings("
    "  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  dim INTEGER NOT NULL CHECK (dim > 0),"
    "  vector BLOB NOT NULL CHECK (length(vector) = 4 * dim),"
    "  PRIMARY KEY (image_id, model_id));"
    "CREATE INDEX embeddings_model ON embeddings(model_id);"
    "CREATE TABLE runs("
    "  id INTEGER PRIMARY KEY,"
    "  started REAL NOT NULL,"
    "  finished REAL,"
    "  command TEXT NOT NULL,"
    "  model_id INTEGER REFERENCES models(id),"
    "  added INTEGER NOT NULL DEFAULT 0,"
    "  updated INTEGER NOT NULL DEFAULT 0,"
    "  reused INTEGER NOT NULL DEFAULT 0,"
    "  unchanged INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0,"
    "  removed INTEGER NOT NULL DEFAULT 0,"
    "  encoder_seconds REAL NOT NULL DEFAULT 0,"
    "  wall_seconds REAL NOT NULL DEFAULT 0);"
    /* Any change to embeddings moves the generation: derived indexes compare it. */
    "CREATE TRIGGER embeddings_added AFTER INSERT ON embeddings BEGIN"
    "  UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"
    "CREATE TRIGGER embeddings_changed AFTER UPDATE ON embeddings BEGIN"
    "  UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"
    "CREATE TRIGGER embeddings_removed AFTER DELETE ON embeddings BEGIN"
    "  UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;",
    /* 1 -> 2: DICOM metadata, one row per image read from a DICOM file. A table of its own
     * rather than columns on images: PNG/JPEG rows stay narrow, and deleting an image deletes
     * its metadata. The patient key's salt (meta 'dicom_salt', 32 random bytes as a BLOB) is
     * written by migrate() in the same transaction: SQL has no good source of randomness. */
    "CREATE TABLE dicom("
    "  image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,"
    "  sop_instance_uid TEXT,"
    "  study_instance_uid TEXT,"
    "  series_instance_uid TEXT,"
    "  modality TEXT,"
    "  view_position TEXT,"
    "  body_part_examined TEXT,"
    "  photometric_interpretation TEXT,"
    "  rows INTEGER,"
    "  columns INTEGER,"
    "  pixel_spacing_row REAL,"
    "  pixel_spacing_column REAL,"
    "  imager_pixel_spacing_row REAL,"
    "  imager_pixel_spacing_column REAL,"
    "  transfer_syntax_uid TEXT,"
    "  frames INTEGER,"
    "  patient_key TEXT);"
    "CREATE INDEX dicom_sop ON dicom(sop_instance_uid);"
    "CREATE INDEX dicom_study ON dicom(study_instance_uid);"
    "CREATE INDEX dicom_patient ON dicom(patient_key);"
    /* Schema 1 could not decode DICOM and recorded every such file as failed. Size -1 matches
     * no file, so the next index run reads them again instead of skipping them as unchanged. */
    "UPDATE images SET size = -1 WHERE status = 'failed' AND format = 'dicom';",
    /* 2 -> 3: k-means runs (raddino cluster) and every image's assignment, so that results can
     * be listed again without recomputing. Derived data: deleting an image deletes its
     * assignments; the run keeps its counts as they were. */
    "CREATE TABLE cluster_runs("
    "  id INTEGER PRIMARY KEY,"
    "  created REAL NOT NULL,"
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  generation INTEGER NOT NULL,"
    "  k INTEGER NOT NULL CHECK (k > 0),"
    "  dim INTEGER NOT NULL CHECK (dim > 0),"
    "  seed INTEGER NOT NULL,"
    "  iterations INTEGER NOT NULL,"
    "  n INTEGER NOT NULL,"
    "  n_train INTEGER NOT NULL,"
    "  objective REAL NOT NULL,"
    "  silhouette REAL,"
    "  params_json TEXT NOT NULL,"
    "  centroids BLOB NOT NULL CHECK (length(centroids) = 4 * k * dim));"
    "CREATE TABLE cluster_assignments("
    "  run_id INTEGER NOT NULL REFERENCES cluster_runs(id) ON DELETE CASCADE,"
    "  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  cluster INTEGER NOT NULL CHECK (cluster >= 0),"
    "  distance REAL NOT NULL,"
    "  PRIMARY KEY (run_id, image_id)) WITHOUT ROWID;"
    "CREATE INDEX cluster_assignments_image ON cluster_assignments(image_id);",
    /* 3 -> 4: vectors imported from elsewhere (raddino import) and where each came from. A
     * vector written afterwards (raddino index re-embedding a changed file) is no longer the
     * imported one: the triggers drop the origin row whenever an embedding is written, and the
     * importer adds it after writing. */
    "CREATE TABLE imports("
    "  id INTEGER PRIMARY KEY,"
    "  created REAL NOT NULL,"
    "  model_id INTEGER NOT NULL REFERENCES models(id),"
    "  npy_path TEXT NOT NULL,"
    "  npy_sha256 TEXT NOT NULL,"
    "  csv_path TEXT NOT NULL,"
    "  rows INTEGER NOT NULL,"
    "  verified INTEGER NOT NULL,"
    "  min_cosine REAL,"
    "  seed INTEGER NOT NULL);"
    "CREATE TABLE image_origin("
    "  image_id INTEGER PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,"
    "  import_id INTEGER NOT NULL REFERENCES imports(id) ON DELETE CASCADE,"
    "  row INTEGER NOT NULL,"
    "  verified INTEGER NOT NULL);"
    "CREATE INDEX image_origin_import ON image_origin(import_id);"
    "CREATE TRIGGER embeddings_origin_added AFTER INSERT ON embeddings BEGIN"
    "  DELETE FROM image_origin WHERE image_id = NEW.image_id; END;"
    "CREATE TRIGGER embeddings_origin_changed AFTER UPDATE ON embeddings BEGIN"
    "  DELETE FROM image_origin WHERE image_id = NEW.image_id; END;",
};
/* Bytes of the per-database patient key salt (see ensure_salt). */
#define SALT_BYTES 32

#define N_MIGRATIONS ((int)(sizeof migrations / sizeof migrations[0]))
/* The oldest schema a read-only store opens (see check_schema). */
#define READ_ONLY_FLOOR 2
_Static_assert(N_MIGRATIONS == RADDINO_STORE_SCHEMA, "one migration step per schema version");

static const char *const query_sql[Q_COUNT] = {
    [Q_FIND_PATH] =
        "SELECT i.id, i.path, i.size, i.mtime_ns, i.sha256, i.width, i.height, i.format,"
        " i.status, i.reason, i.embedded_at,"
        " EXISTS (SELECT 1 FROM embeddings e WHERE e.image_id = i.id AND e.model_id = ?2)"
        " FROM images i WHERE i.path = ?1",
    [Q_FIND_SHA256] =
        "SELECT i.id, i.path, i.size, i.mtime_ns, i.sha256, i.width, i.height, i.format,"
        " i.status, i.reason, i.embedded_at, 1, e.vector"
        " FROM images i JOIN embeddings e ON e.image_id = i.id"
        " WHERE i.sha256 = ?1 AND e.model_id = ?2 AND i.status = 'ok' LIMIT 1",
    [Q_UPSERT_IMAGE] =
        "INSERT INTO images(path, size, mtime_ns, sha256, width, height, format, status,"
        " reason, embedded_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
        " ON CONFLICT (path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns,"
        " sha256 = excluded.sha256, width = excluded.width, height = excluded.height,"
        " format = excluded.format, status = excluded.status, reason = excluded.reason,"
        " embedded_at = excluded.embedded_at RETURNING id",
    /* An identical vector is left alone so that the generation does not move. */
    [Q_UPSERT_VECTOR] =
        "INSERT INTO embeddings(image_id, model_id, dim, vector) VALUES (?1, ?2, ?3, ?4)"
        " ON CONFLICT (image_id, model_id) DO UPDATE SET dim = excluded.dim,"
        " vector = excluded.vector WHERE embeddings.vector IS NOT excluded.vector",
    [Q_DELETE_VECTORS] = "DELETE FROM embeddings WHERE image_id = ?1",
    [Q_DELETE_PATH] = "DELETE FROM images WHERE path = ?1",
    [Q_UPSERT_DICOM] =
        "INSERT OR REPLACE INTO dicom(image_id, sop_instance_uid, study_instance_uid,"
        " series_instance_uid, modality, view_position, body_part_examined,"
        " photometric_interpretation, rows, columns, pixel_spacing_row, pixel_spacing_column,"
        " imager_pixel_spacing_row, imager_pixel_spacing_column, transfer_syntax_uid, frames,"
        " patient_key) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
        " ?16, ?17)",
    [Q_DELETE_DICOM] = "DELETE FROM dicom WHERE image_id = ?1",
    [Q_GET_DICOM] =
        "SELECT sop_instance_uid, study_instance_uid, series_instance_uid, modality,"
        " view_position, body_part_examined, photometric_interpretation, rows, columns,"
        " pixel_spacing_row, pixel_spacing_column, imager_pixel_spacing_row,"
        " imager_pixel_spacing_column, transfer_syntax_uid, frames, patient_key"
        " FROM dicom WHERE image_id = ?1",
    [Q_FIND_ID] =
        "SELECT i.id, i.path, i.size, i.mtime_ns, i.sha256, i.width, i.height, i.format,"
        " i.status, i.reason, i.embedded_at, e.vector IS NOT NULL, e.vector"
        " FROM images i LEFT JOIN embeddings e ON e.image_id = i.id AND e.model_id = ?2"
        " WHERE i.id = ?1",
};

raddino_status store_ok(void)
{
    return raddino_status_ok();
}

/* "DB: reason". */
raddino_status store_error(const raddino_store *s, int code, const char *fmt, ...)
{
    char reason[RADDINO_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    return raddino_status_error(code, "%s: %s", s ? s->path : "raddino store", reason);
}

raddino_status store_sql_error(const raddino_store *s, const char *what)
{
    int rc = s->db ? sqlite3_errcode(s->db) : SQLITE_ERROR;
    int code = rc == SQLITE_NOMEM ? RADDINO_ERR_NOMEM
               : rc == SQLITE_NOTADB || rc == SQLITE_CORRUPT ? RADDINO_ERR_FORMAT
                                                            : RADDINO_ERR_IO;
    const char *why = s->db ? sqlite3_errmsg(s->db) : "cannot open";
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED)
        why = "database is locked by another process (gave up waiting)";
    /* SQLite says "disk I/O error" for a full disk (EFBIG, sometimes ENOSPC), a read-only
     * folder and more: the system's reason is what tells the user what to fix. */
    int sys = s->db && (rc == SQLITE_IOERR || rc == SQLITE_FULL || rc == SQLITE_CANTOPEN ||
                        rc == SQLITE_READONLY)
                  ? sqlite3_system_errno(s->db) : 0;
    if (sys) return store_error(s, code, "%s: %s (%s)", what, why, strerror(sys));
    return store_error(s, code, "%s: %s", what, why);
}

const char *store_keep_text(store_text *t, const unsigned char *text)
{
    if (!text) return NULL;
    size_t need = strlen((const char *)text) + 1;
    if (need > t->cap) {
        char *p = realloc(t->text, need);
        if (!p) return "";
        t->text = p;
        t->cap = need;
    }
    memcpy(t->text, text, need);
    return t->text;
}

sqlite3_stmt *store_query_get(raddino_store *s, store_query q)
{
    if (!s->queries[q] &&
        sqlite3_prepare_v3(s->db, query_sql[q], -1, SQLITE_PREPARE_PERSISTENT, &s->queries[q],
                           NULL) != SQLITE_OK)
        return NULL;
    sqlite3_reset(s->queries[q]);
    sqlite3_clear_bindings(s->queries[q]);
    return s->queries[q];
}

raddino_store_params raddino_store_default_params(void)
{
    raddino_store_params p;
    memset(&p, 0, sizeof p);
    p.read_only = 0;
    p.busy_timeout_ms = 10000;
    return p;
}

const char *raddino_store_path(const raddino_store *db)
{
    return db ? db->path : "";
}

static raddino_status exec(raddino_store *s, const char *sql, const char *what)
{
    if (sqlite3_exec(s->db, sql, NULL, NULL, NULL) != SQLITE_OK) return store_sql_error(s, what);
    return store_ok();
}

/* One integer from a query without parameters. */
static raddino_status query_int(raddino_store *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, sql, -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading");
    int rc = sqlite3_step(q);
    *out = rc == SQLITE_ROW ? sqlite3_column_int64(q, 0) : 0;
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sql_error(s, "reading");
    return store_ok();
}

/* The exclusive writer lock. flock, not fcntl: fcntl locks are SQLite's own and closing any
 * descriptor of the file would drop them; flock locks are separate and die with the process.
 * The descriptor stays open until the store is closed, after SQLite's. */
static raddino_status take_writer_lock(raddino_store *s)
{
    s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (s->lock_fd < 0) return store_error(s, RADDINO_ERR_IO, "%s", strerror(errno));
    struct stat sb;
    if (fstat(s->lock_fd, &sb) == 0 && !S_ISREG(sb.st_mode))
        return store_error(s, RADDINO_ERR_IO, "not a regular file");
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno == EWOULDBLOCK)
            return store_error(s, RADDINO_ERR_IO,
                               "another 'raddino index' is writing to this database; "
                               "run again when it has finished");
        return store_error(s, RADDINO_ERR_IO, "cannot lock: %s", strerror(errno));
    }
    return store_ok();
}

/* The secret that salts patient keys: 32 bytes from the kernel's CSPRNG, made once per
 * database. Two databases never share it, so their keys cannot be joined, and a key cannot be
 * looked up in a table of hashed IDs without the database. */
static raddino_status ensure_salt(raddino_store *s)
{
    int64_t have;
    raddino_status st = query_int(s, "SELECT count(*) FROM meta WHERE key = 'dicom_salt'", &have);
    if (st.code || have) return st;
    uint8_t salt[SALT_BYTES];
    size_t got = 0;
    while (got < sizeof salt) {
        ssize_t n = getrandom(salt + got, sizeof salt - got, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) return store_error(s, RADDINO_ERR_IO, "getrandom: %s", strerror(errno));
        got += (size_t)n;
    }
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "INSERT INTO meta(key, value) VALUES ('dicom_salt', ?1)", -1,
                           &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "making the patient key salt");
    sqlite3_bind_blob(q, 1, salt, sizeof salt, SQLITE_TRANSIENT);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "making the patient key salt");
    return store_ok();
}

raddino_status raddino_store_dicom_salt(raddino_store *s, char out[65])
{
    if (!s || !out) return store_error(s, RADDINO_ERR_ARGUMENT, "dicom_salt: NULL");
    out[0] = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT value FROM meta WHERE key = 'dicom_salt'", -1, &q,
                           NULL) != SQLITE_OK)
        return store_sql_error(s, "reading the patient key salt");
    int rc = sqlite3_step(q);
    raddino_status st = store_ok();
    if (rc == SQLITE_ROW && sqlite3_column_type(q, 0) == SQLITE_BLOB &&
        sqlite3_column_bytes(q, 0) == SALT_BYTES) {
        const uint8_t *salt = sqlite3_column_blob(q, 0);
        for (int i = 0; i < SALT_BYTES; i++) snprintf(out + 2 * i, 3, "%02x", salt[i]);
    } else if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
        st = store_error(s, RADDINO_ERR_FORMAT, "no valid patient key salt in meta");
    } else {
        st = store_sql_error(s, "reading the patient key salt");
    }
    sqlite3_finalize(q);
    return st;
}

static raddino_status migrate(raddino_store *s, int64_t version)
{
    if (version == N_MIGRATIONS) return store_ok();
    raddino_status st = exec(s, "BEGIN IMMEDIATE", "migrating the schema");
    if (st.code) return st;
    for (int64_t v = version; v < N_MIGRATIONS && !st.code; v++)
        st = exec(s, migrations[v], "migrating the schema");
    if (!st.code) st = ensure_salt(s);
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA user_version = %d", N_MIGRATIONS);
    if (!st.code) st = exec(s, sql, "migrating the schema");
    if (!st.code) return exec(s, "COMMIT", "migrating the schema");
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return st;
}

/* Checks the file is ours and at a version we know; a writer brings it up to date. */
static raddino_status check_schema(raddino_store *s)
{
    int64_t version, n_objects;
    raddino_status st = query_int(s, "PRAGMA user_version", &version);
    if (!st.code) st = query_int(s, "SELECT count(*) FROM sqlite_master", &n_objects);
    if (st.code) return st;
    if (version > N_MIGRATIONS)
        return store_error(s, RADDINO_ERR_UNSUPPORTED,
                           "schema version %lld is newer than this raddino knows (%d): "
                           "update raddino", (long long)version, N_MIGRATIONS);
    if (version == 0 && n_objects > 0)
        return store_error(s, RADDINO_ERR_FORMAT, "an SQLite database, but not raddino's");
    if (s->read_only && version == 0)
        return store_error(s, RADDINO_ERR_FORMAT, "empty database (nothing indexed yet)");
    s->schema = (int)version;
    /* Steps past READ_ONLY_FLOOR only add tables that readers without them treat as empty
     * (cluster runs), so a reader need not wait for a writer to upgrade the file. */
    if (s->read_only && version < READ_ONLY_FLOOR)
        return store_error(s, RADDINO_ERR_UNSUPPORTED,
                           "schema version %lld is older than %d: run 'raddino index' once to "
                           "upgrade it", (long long)version, READ_ONLY_FLOOR);
    if (s->read_only) return store_ok();
    st = migrate(s, version);
    if (!st.code) s->schema = N_MIGRATIONS;
    return st;
}

static raddino_status configure(raddino_store *s, int busy_timeout_ms)
{
    sqlite3_extended_result_codes(s->db, 0);
    sqlite3_busy_timeout(s->db, busy_timeout_ms > 0 ? busy_timeout_ms : 0);
    raddino_status st = exec(s, "PRAGMA foreign_keys = ON", "configuring");
    if (st.code || s->read_only) return st;
    /* WAL: readers never block the writer and a killed writer leaves a consistent file. FULL
     * syncs at each commit, once per batch: committed batches survive a power loss too. */
    st = exec(s, "PRAGMA journal_mode = WAL", "switching to WAL");
    if (!st.code) st = exec(s, "PRAGMA synchronous = FULL", "configuring");
    return st;
}

/* A reader of a WAL database needs its -shm file, which it creates when absent; in a folder it
 * cannot write to (read-only media, a read-only mount, a folder without write permission) that
 * fails. No writer can work there either (it needs the -wal file), so the database cannot
 * change while it is read: SQLite's immutable mode, without -shm, is then correct. */
static bool folder_writable(const char *path)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == dir) dir[1] = 0;
    else *slash = 0;
    return access(dir, W_OK) == 0;
}

static int open_immutable(raddino_store *s, const char *path)
{
    char uri[4096 * 3 + 32];
    size_t n = (size_t)snprintf(uri, sizeof uri, "file:");
    for (const unsigned char *p = (const unsigned char *)path; *p && n + 4 < sizeof uri; p++) {
        if (*p == '%' || *p == '?' || *p == '#') n += (size_t)snprintf(uri + n, 4, "%%%02X", *p);
        else uri[n++] = (char)*p;
    }
    snprintf(uri + n, sizeof uri - n, "?immutable=1");
    sqlite3_close(s->db);
    s->db = NULL;
    return sqlite3_open_v2(uri, &s->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI |
                           SQLITE_OPEN_NOMUTEX, NULL);
}

raddino_status raddino_store_open(const char *path, const raddino_store_params *params,
                                  raddino_store **out)
{
    raddino_status st = store_ok();
    if (!out || !path || !*path) {
        st.code = RADDINO_ERR_ARGUMENT;
        snprintf(st.message, sizeof st.message, "raddino_store_open: no database path");
        return st;
    }
    *out = NULL;
    raddino_store_params defaults = raddino_store_default_params();
    if (!params) params = &defaults;
    raddino_store *s = calloc(1, sizeof *s);
    if (!s) {
        st.code = RADDINO_ERR_NOMEM;
        snprintf(st.message, sizeof st.message, "%s: out of memory", path);
        return st;
    }
    s->lock_fd = -1;
    s->read_only = params->read_only != 0;
    snprintf(s->path, sizeof s->path, "%s", path);
    if (strlen(path) >= sizeof s->path)
        st = store_error(s, RADDINO_ERR_ARGUMENT, "path too long");
    struct stat sb;
    if (!st.code && s->read_only && stat(path, &sb) != 0)
        st = store_error(s, RADDINO_ERR_IO, "%s%s", strerror(errno),
                         errno == ENOENT ? " (no database here: run 'raddino index' first)" : "");
    if (!st.code && !s->read_only) st = take_writer_lock(s);
    int flags = s->read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
    if (!st.code && sqlite3_open_v2(path, &s->db, flags | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        st = store_sql_error(s, "cannot open");
    if (!st.code) st = configure(s, params->busy_timeout_ms);
    if (!st.code) st = check_schema(s);
    if (st.code && s->read_only && s->db && sqlite3_errcode(s->db) == SQLITE_CANTOPEN &&
        !folder_writable(path)) {
        st = open_immutable(s, path) == SQLITE_OK ? configure(s, params->busy_timeout_ms)
                                                  : store_sql_error(s, "cannot open");
        if (!st.code) st = check_schema(s);
    }
    if (!st.code && s->read_only) st = store_vectors_model(s, &s->model_id, &s->model_dim);
    if (st.code) {
        raddino_store_close(s);
        return st;
    }
    *out = s;
    return st;
}

void raddino_store_close(raddino_store *s)
{
    if (!s) return;
    if (s->in_batch || s->in_read) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    for (int i = 0; i < Q_COUNT; i++) sqlite3_finalize(s->queries[i]);
    sqlite3_close(s->db);
    if (s->lock_fd >= 0) close(s->lock_fd);     /* after SQLite's close: see take_writer_lock */
    free(s->path_text.text);
    free(s->format_text.text);
    free(s->reason_text.text);
    free(s->vector);
    free(s->params_text.text);
    free(s->centroids);
    free(s);
}

/* ---- batches ----------------------------------------------------------------------------- */

raddino_status raddino_store_begin(raddino_store *s)
{
    if (!s || s->read_only || s->in_batch)
        return store_error(s, RADDINO_ERR_ARGUMENT, "begin: read-only store or batch open");
    raddino_status st = exec(s, "BEGIN IMMEDIATE", "starting a batch");
    if (!st.code) s->in_batch = true;
    return st;
}

raddino_status raddino_store_commit(raddino_store *s)
{
    if (!s || !s->in_batch) return store_error(s, RADDINO_ERR_ARGUMENT, "commit: no batch open");
    raddino_status st = exec(s, "COMMIT", "committing");
    if (st.code) sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_batch = false;
    return st;
}

raddino_status raddino_store_read_begin(raddino_store *s)
{
    if (!s || s->in_batch || s->in_read)
        return store_error(s, RADDINO_ERR_ARGUMENT, "read_begin: a transaction is open");
    raddino_status st = exec(s, "BEGIN", "reading");
    /* A deferred BEGIN takes its snapshot at the first read: take it now. */
    int64_t ignored;
    if (!st.code) st = query_int(s, "SELECT count(*) FROM meta", &ignored);
    if (!st.code) s->in_read = true;
    return st;
}

void raddino_store_read_end(raddino_store *s)
{
    if (!s || !s->in_read) return;
    sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    s->in_read = false;
}

/* ---- paths ------------------------------------------------------------------------------- */

raddino_status raddino_store_normalise_path(const char *path, char *out, size_t cap)
{
    raddino_status st = store_ok();
    char joined[PATH_MAX * 2];
    if (!path || !*path || !cap) {
        st.code = RADDINO_ERR_ARGUMENT;
        snprintf(st.message, sizeof st.message, "empty path");
        return st;
    }
    if (path[0] == '/') {
        snprintf(joined, sizeof joined, "%s", path);
    } else {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            st.code = RADDINO_ERR_IO;
            snprintf(st.message, sizeof st.message, "%s: current folder: %s", path,
                     strerror(errno));
            return st;
        }
        snprintf(joined, sizeof joined, "%s/%s", cwd, path);
    }
    /* Fold component by component: empty and "." vanish, ".." drops the previous one. */
    size_t len = 0;
    const char *p = joined;
    while (*p) {
        while (*p == '/') p++;
        const char *end = p;
        while (*end && *end != '/') end++;
        size_t n = (size_t)(end - p);
        if (n == 0 || (n == 1 && p[0] == '.')) {
            /* nothing */
        } else if (n == 2 && p[0] == '.' && p[1] == '.') {
            while (len > 0 && out[len - 1] != '/') len--;
            if (len > 0) len--;
        } else {
            if (len + 1 + n + 1 > cap) {
                st.code = RADDINO_ERR_ARGUMENT;
                snprintf(st.message, sizeof st.message, "%s: path too long", path);
                return st;
            }
            out[len++] = '/';
            memcpy(out + len, p, n);
            len += n;
        }
        p = end;
    }
    if (len == 0) out[len++] = '/';
    out[len] = 0;
    return st;
}

/* ---- models ------------------------------------------------------------------------------ */

raddino_status store_end_own_batch(raddino_store *s, bool own, raddino_status st)
{
    if (!own || !s->in_batch) return st;
    if (!st.code) return raddino_store_commit(s);
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    s->in_batch = false;
    return st;
}

raddino_status store_vectors_model(raddino_store *s, int64_t *model_id, int *dim)
{
    *model_id = 0;
    *dim = 0;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT DISTINCT e.model_id, m.dim FROM embeddings e"
                           " JOIN models m ON m.id = e.model_id LIMIT 2",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading models");
    int rows = 0, rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW && rows < 2) {
        if (rows++ == 0) {
            *model_id = sqlite3_column_int64(q, 0);
            *dim = sqlite3_column_int(q, 1);
        }
    }
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) return store_sql_error(s, "reading models");
    if (rows > 1)
        return store_error(s, RADDINO_ERR_MODEL,
                           "holds vectors of several models; embed them again with one model");
    return store_ok();
}

static raddino_status find_or_add_model(raddino_store *s, const raddino_store_model *m,
                                        int64_t *id)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO models(weights_sha256, config_json, repository, revision,"
                           " dim, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                           " ON CONFLICT (weights_sha256, config_json) DO UPDATE SET"
                           " repository = coalesce(excluded.repository, repository),"
                           " revision = coalesce(excluded.revision, revision) RETURNING id, dim",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "registering the model");
    sqlite3_bind_text(q, 1, m->weights_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 2, m->config_json, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, m->repository, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 4, m->revision, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 5, m->dim);
    sqlite3_bind_double(q, 6, (double)time(NULL));
    int rc = sqlite3_step(q);
    raddino_status st = store_ok();
    if (rc != SQLITE_ROW) st = store_sql_error(s, "registering the model");
    else if (sqlite3_column_int(q, 1) != m->dim)
        st = store_error(s, RADDINO_ERR_FORMAT, "model row disagrees on the dimension");
    else *id = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    return st;
}

/* Describes the model whose vectors are stored, for the refusal message. */
static void describe_model(raddino_store *s, int64_t id, char *out, size_t cap)
{
    sqlite3_stmt *q;
    snprintf(out, cap, "model %lld", (long long)id);
    if (sqlite3_prepare_v2(s->db,
                           "SELECT weights_sha256, repository, dim,"
                           " (SELECT count(*) FROM embeddings WHERE model_id = ?1)"
                           " FROM models WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        const char *sha = (const char *)sqlite3_column_text(q, 0);
        const char *repo = (const char *)sqlite3_column_text(q, 1);
        snprintf(out, cap, "%lld vectors of dim %d from weights sha256 %.12s%s%s%s",
                 (long long)sqlite3_column_int64(q, 3), sqlite3_column_int(q, 2),
                 sha ? sha : "?", repo ? " (" : "", repo ? repo : "", repo ? ")" : "");
    }
    sqlite3_finalize(q);
}

static raddino_status drop_other_vectors(raddino_store *s, int64_t keep, int64_t *dropped)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "DELETE FROM embeddings WHERE model_id <> ?1", -1, &q, NULL) !=
        SQLITE_OK)
        return store_sql_error(s, "dropping vectors");
    sqlite3_bind_int64(q, 1, keep);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "dropping vectors");
    if (dropped) *dropped = sqlite3_changes64(s->db);
    return store_ok();
}

raddino_status raddino_store_use_model(raddino_store *s, const raddino_store_model *m,
                                       int reembed, int64_t *model_id, int64_t *dropped)
{
    if (dropped) *dropped = 0;
    if (!s || !m || !m->weights_sha256 || !m->config_json || m->dim <= 0)
        return store_error(s, RADDINO_ERR_ARGUMENT, "use_model: bad model");
    if (s->read_only) return store_error(s, RADDINO_ERR_ARGUMENT, "opened read-only");
    bool own_batch = !s->in_batch;
    raddino_status st = own_batch ? raddino_store_begin(s) : store_ok();
    int64_t id = 0, other = 0;
    int other_dim;
    if (!st.code) st = find_or_add_model(s, m, &id);
    if (!st.code) st = store_vectors_model(s, &other, &other_dim);
    if (st.code == RADDINO_ERR_MODEL && reembed) st = store_ok();   /* several: all dropped */
    if (!st.code && other && other != id) {
        if (reembed) {
            st = drop_other_vectors(s, id, dropped);
        } else {
            char what[256];
            describe_model(s, other, what, sizeof what);
            st = store_error(s, RADDINO_ERR_MODEL,
                             "made with another model (%s); this model's weights have sha256 "
                             "%.12s", what, m->weights_sha256);
        }
    }
    st = store_end_own_batch(s, own_batch, st);
    if (st.code) return st;
    s->model_id = id;
    s->model_dim = m->dim;
    if (model_id) *model_id = id;
    return st;
}

raddino_status raddino_store_model_matches(raddino_store *s, const raddino_store_model *m,
                                           int *same, char *why, size_t why_cap)
{
    if (!s || !m || !m->weights_sha256 || !m->config_json || !same)
        return store_error(s, RADDINO_ERR_ARGUMENT, "model_matches: bad model");
    *same = 1;
    int64_t stored;
    int dim;
    raddino_status st = store_vectors_model(s, &stored, &dim);
    if (st.code || !stored) return st;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT weights_sha256 = ?2 AND config_json = ?3 AND dim = ?4"
                           " FROM models WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading models");
    sqlite3_bind_int64(q, 1, stored);
    sqlite3_bind_text(q, 2, m->weights_sha256, -1, SQLITE_STATIC);
    sqlite3_bind_text(q, 3, m->config_json, -1, SQLITE_STATIC);
    sqlite3_bind_int(q, 4, m->dim);
    int rc = sqlite3_step(q);
    if (rc == SQLITE_ROW) *same = sqlite3_column_int(q, 0);
    sqlite3_finalize(q);
    if (rc != SQLITE_ROW) return store_sql_error(s, "reading models");
    if (!*same && why) describe_model(s, stored, why, why_cap);
    return store_ok();
}

/* ---- runs -------------------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

raddino_status raddino_store_run_begin(raddino_store *s, const char *command, int64_t *run_id)
{
    if (!s || s->read_only || s->in_batch || !command || !run_id)
        return store_error(s, RADDINO_ERR_ARGUMENT, "run_begin: bad argument");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "INSERT INTO runs(started, command, model_id) VALUES (?1, ?2, ?3)",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "recording the run");
    sqlite3_bind_double(q, 1, now_seconds());
    sqlite3_bind_text(q, 2, command, -1, SQLITE_STATIC);
    if (s->model_id) sqlite3_bind_int64(q, 3, s->model_id);
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "recording the run");
    *run_id = sqlite3_last_insert_rowid(s->db);
    return store_ok();
}

raddino_status raddino_store_run_update(raddino_store *s, int64_t run_id,
                                        const raddino_store_counts *c, double encoder_seconds,
                                        double wall_seconds, int finished)
{
    if (!s || s->read_only || !c) return store_error(s, RADDINO_ERR_ARGUMENT, "run_update");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "UPDATE runs SET added = ?2, updated = ?3, reused = ?4, unchanged = ?5,"
                           " failed = ?6, removed = ?7, encoder_seconds = ?8, wall_seconds = ?9,"
                           " finished = ?10 WHERE id = ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "recording the run");
    sqlite3_bind_int64(q, 1, run_id);
    sqlite3_bind_int64(q, 2, c->added);
    sqlite3_bind_int64(q, 3, c->updated);
    sqlite3_bind_int64(q, 4, c->reused);
    sqlite3_bind_int64(q, 5, c->unchanged);
    sqlite3_bind_int64(q, 6, c->failed);
    sqlite3_bind_int64(q, 7, c->removed);
    sqlite3_bind_double(q, 8, encoder_seconds);
    sqlite3_bind_double(q, 9, wall_seconds);
    if (finished) sqlite3_bind_double(q, 10, now_seconds());
    int rc = sqlite3_step(q);
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "recording the run");
    return store_ok();
}

/* ---- statistics -------------------------------------------------------------------------- */

raddino_status raddino_store_generation(raddino_store *s, int64_t *generation)
{
    if (!s || !generation) return store_error(s, RADDINO_ERR_ARGUMENT, "generation: NULL");
    return query_int(s, "SELECT value FROM meta WHERE key = 'generation'", generation);
}

static void copy_text(char *out, size_t cap, const unsigned char *text)
{
    snprintf(out, cap, "%s", text ? (const char *)text : "");
}

static raddino_status model_stats(raddino_store *s, raddino_store_stats *out)
{
    int64_t id;
    int dim;
    raddino_status st = store_vectors_model(s, &id, &dim);
    if (st.code == RADDINO_ERR_MODEL) {
        out->models = 2;
        return store_ok();
    }
    if (st.code || !id) return st;
    out->models = 1;
    out->model_id = id;
    out->dim = dim;
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db, "SELECT weights_sha256, repository, revision FROM models"
                                  " WHERE id = ?1", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading models");
    sqlite3_bind_int64(q, 1, id);
    if (sqlite3_step(q) == SQLITE_ROW) {
        copy_text(out->weights_sha256, sizeof out->weights_sha256, sqlite3_column_text(q, 0));
        copy_text(out->repository, sizeof out->repository, sqlite3_column_text(q, 1));
        copy_text(out->revision, sizeof out->revision, sqlite3_column_text(q, 2));
    }
    sqlite3_finalize(q);
    return store_ok();
}

static raddino_status run_stats(raddino_store *s, raddino_store_stats *out)
{
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT id, started, finished, command, added, updated, reused,"
                           " unchanged, failed, removed, encoder_seconds, wall_seconds"
                           " FROM runs ORDER BY id DESC LIMIT 1", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading runs");
    if (sqlite3_step(q) == SQLITE_ROW) {
        out->run_id = sqlite3_column_int64(q, 0);
        out->run_started = sqlite3_column_double(q, 1);
        out->run_finished = sqlite3_column_double(q, 2);
        copy_text(out->run_command, sizeof out->run_command, sqlite3_column_text(q, 3));
        out->run_counts.added = sqlite3_column_int64(q, 4);
        out->run_counts.updated = sqlite3_column_int64(q, 5);
        out->run_counts.reused = sqlite3_column_int64(q, 6);
        out->run_counts.unchanged = sqlite3_column_int64(q, 7);
        out->run_counts.failed = sqlite3_column_int64(q, 8);
        out->run_counts.removed = sqlite3_column_int64(q, 9);
        out->run_encoder_seconds = sqlite3_column_double(q, 10);
        out->run_wall_seconds = sqlite3_column_double(q, 11);
    }
    sqlite3_finalize(q);
    return store_ok();
}

raddino_status raddino_store_get_stats(raddino_store *s, raddino_store_stats *out)
{
    if (!s || !out) return store_error(s, RADDINO_ERR_ARGUMENT, "stats: NULL");
    memset(out, 0, sizeof *out);
    out->schema = s->schema;
    /* One read transaction: the numbers describe one moment. */
    bool own = !s->in_batch && !s->in_read;
    raddino_status st = own ? exec(s, "BEGIN", "reading") : store_ok();
    if (!st.code) st = raddino_store_generation(s, &out->generation);
    if (!st.code) st = query_int(s, "SELECT count(*) FROM images", &out->images);
    if (!st.code) st = query_int(s, "SELECT count(*) FROM images WHERE status = 'ok'", &out->ok);
    if (!st.code)
        st = query_int(s, "SELECT count(*) FROM images WHERE status = 'failed'", &out->failed);
    if (!st.code) st = query_int(s, "SELECT count(*) FROM embeddings", &out->vectors);
    if (!st.code) st = query_int(s, "SELECT count(*) FROM dicom", &out->dicom);
    if (!st.code) st = model_stats(s, out);
    if (!st.code) st = run_stats(s, out);
    if (own) sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    return st;
}

raddino_status raddino_store_failure_reasons(raddino_store *s, int limit,
                                             raddino_store_reason_fn fn, void *user)
{
    if (!s || !fn) return store_error(s, RADDINO_ERR_ARGUMENT, "failure_reasons: NULL");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT coalesce(reason, 'unknown'), count(*) AS n FROM images"
                           " WHERE status = 'failed' GROUP BY 1 ORDER BY n DESC, 1 LIMIT ?1",
                           -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading failures");
    sqlite3_bind_int(q, 1, limit);
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        fn(user, (const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "reading failures");
    return store_ok();
}

raddino_status raddino_store_dicom_modalities(raddino_store *s, raddino_store_modality_fn fn,
                                              void *user)
{
    if (!s || !fn) return store_error(s, RADDINO_ERR_ARGUMENT, "dicom_modalities: NULL");
    sqlite3_stmt *q;
    if (sqlite3_prepare_v2(s->db,
                           "SELECT coalesce(modality, ''), count(*) AS n FROM dicom"
                           " GROUP BY 1 ORDER BY n DESC, 1", -1, &q, NULL) != SQLITE_OK)
        return store_sql_error(s, "reading DICOM modalities");
    int rc;
    while ((rc = sqlite3_step(q)) == SQLITE_ROW)
        fn(user, (const char *)sqlite3_column_text(q, 0), sqlite3_column_int64(q, 1));
    sqlite3_finalize(q);
    if (rc != SQLITE_DONE) return store_sql_error(s, "reading DICOM modalities");
    return store_ok();
}
