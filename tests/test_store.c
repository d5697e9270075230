/* test_store.c — the SQLite store through its public API: schema and pragmas, path
 * normalisation, rows and vectors round trip exactly, the generation counter, one model per
 * collection, the writer lock, pruning, dimension checks on read, schema versions, the upgrade
 * of a schema 1 database, DICOM metadata rows and the per-database patient key salt. */
#include "raddino_store.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIM 8

static const char *db_path(void)
{
    static char path[4200];
    snprintf(path, sizeof path, "%s/t.db", test_temp_dir());
    return path;
}

static raddino_store *open_writer(const char *path)
{
    raddino_store *db;
    raddino_status st = raddino_store_open(path, NULL, &db);
    ck_assert_msg(!st.code, "%s", st.message);
    return db;
}

static raddino_store *open_reader(const char *path)
{
    raddino_store_params p = raddino_store_default_params();
    p.read_only = 1;
    raddino_store *db;
    raddino_status st = raddino_store_open(path, &p, &db);
    ck_assert_msg(!st.code, "%s", st.message);
    return db;
}

static int64_t use_model(raddino_store *db, const char *sha, int reembed, raddino_status *out)
{
    raddino_store_model m = {sha, "{\"test\": 1}", "org/name", "rev", DIM};
    int64_t id = 0, dropped;
    raddino_status st = raddino_store_use_model(db, &m, reembed, &id, &dropped);
    if (out) *out = st;
    else ck_assert_msg(!st.code, "%s", st.message);
    return id;
}

static const char SHA_A[] = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char SHA_B[] = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

static void put(raddino_store *db, const char *path, const char *sha, float seed, bool ok)
{
    raddino_store_image img;
    memset(&img, 0, sizeof img);
    img.path = path;
    img.size = 100;
    img.mtime_ns = 1234567890123456789LL;
    snprintf(img.sha256, sizeof img.sha256, "%s", sha);
    img.width = 640;
    img.height = 480;
    img.format = "png";
    img.status = ok ? RADDINO_IMAGE_OK : RADDINO_IMAGE_FAILED;
    img.reason = ok ? NULL : "cannot decode png: Corrupt PNG";
    img.embedded_at = 1.5;
    float v[DIM];
    for (int i = 0; i < DIM; i++) v[i] = seed + (float)i / 3.0f;
    raddino_status st = raddino_store_put_image(db, &img, ok ? v : NULL, NULL);
    ck_assert_msg(!st.code, "%s", st.message);
}

static int64_t generation(raddino_store *db)
{
    int64_t g;
    raddino_status st = raddino_store_generation(db, &g);
    ck_assert_msg(!st.code, "%s", st.message);
    return g;
}

static int64_t sql_int(const char *path, const char *sql)
{
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(h, sql, -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(q, 0);
    sqlite3_finalize(q);
    sqlite3_close(h);
    return v;
}

static void sql_exec(const char *path, const char *sql)
{
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    ck_assert_int_eq(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(h);
}

START_TEST(schema_and_pragmas)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), RADDINO_STORE_SCHEMA);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM sqlite_master WHERE name IN"
                                   " ('images', 'embeddings', 'models', 'runs', 'meta')"), 5);
    ck_assert_int_eq(sql_int(path, "SELECT value FROM meta WHERE key = 'generation'"), 0);
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    sqlite3_stmt *q;
    sqlite3_prepare_v2(h, "PRAGMA journal_mode", -1, &q, NULL);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    sqlite3_close(h);
    /* Reopening an up-to-date database changes nothing. */
    db = open_writer(path);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), RADDINO_STORE_SCHEMA);
}
END_TEST

START_TEST(normalise_paths)
{
    char out[4096];
    static const char *const cases[][2] = {
        {"/a/b/c.png", "/a/b/c.png"},  {"/a//b/./c.png", "/a/b/c.png"},
        {"/a/b/../c.png", "/a/c.png"}, {"/a/b/", "/a/b"},
        {"/../a", "/a"},               {"/", "/"},
        {"//x/./", "/x"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        raddino_status st = raddino_store_normalise_path(cases[i][0], out, sizeof out);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_str_eq(out, cases[i][1]);
    }
    char cwd[4096], want[4200];
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof cwd));
    snprintf(want, sizeof want, "%s/x/y.png", strcmp(cwd, "/") ? cwd : "");
    ck_assert_int_eq(raddino_store_normalise_path("./x//y.png", out, sizeof out).code, 0);
    ck_assert_str_eq(out, want);
    ck_assert_int_ne(raddino_store_normalise_path("/abc", out, 3).code, 0);
    ck_assert_int_ne(raddino_store_normalise_path("", out, sizeof out).code, 0);
}
END_TEST

static int collect_vector(void *user, int64_t id, const char *path, const char *sha,
                          const float *v, int dim)
{
    (void)sha;
    float *rows = user;
    ck_assert_int_eq(dim, DIM);
    ck_assert_ptr_nonnull(path);
    memcpy(rows + (id - 1) * DIM, v, DIM * sizeof *v);
    return 0;
}

START_TEST(rows_round_trip)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    put(db, "/x/one.png", SHA_A, 1.0f, true);
    put(db, "/x/two.png", SHA_B, 2.0f, true);
    put(db, "/x/bad.png", SHA_B, 0, false);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);

    raddino_store_image img;
    int found;
    ck_assert_int_eq(raddino_store_find_path(db, "/x/one.png", &img, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(img.path, "/x/one.png");
    ck_assert_int_eq(img.mtime_ns, 1234567890123456789LL);
    ck_assert_str_eq(img.sha256, SHA_A);
    ck_assert_int_eq(img.width, 640);
    ck_assert_str_eq(img.format, "png");
    ck_assert_int_eq(img.status, RADDINO_IMAGE_OK);
    ck_assert_int_eq(img.has_vector, 1);
    ck_assert_int_eq(raddino_store_find_path(db, "/x/bad.png", &img, &found).code, 0);
    ck_assert_int_eq(img.status, RADDINO_IMAGE_FAILED);
    ck_assert_str_eq(img.reason, "cannot decode png: Corrupt PNG");
    ck_assert_int_eq(img.has_vector, 0);
    ck_assert_int_eq(raddino_store_find_path(db, "/x/none.png", &img, &found).code, 0);
    ck_assert_int_eq(found, 0);

    /* By content: the ok row's vector, bit for bit (the failed row with that hash is not it). */
    float v[DIM];
    ck_assert_int_eq(raddino_store_find_sha256(db, SHA_B, v, &img, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(img.path, "/x/two.png");
    for (int i = 0; i < DIM; i++) ck_assert(v[i] == 2.0f + (float)i / 3.0f);
    raddino_store_close(db);

    /* A reader sees the same, in id order. */
    db = open_reader(path);
    float rows[3 * DIM];
    memset(rows, 0, sizeof rows);
    ck_assert_int_eq(raddino_store_foreach_vector(db, 0, collect_vector, rows).code, 0);
    for (int i = 0; i < DIM; i++) {
        ck_assert(rows[i] == 1.0f + (float)i / 3.0f);
        ck_assert(rows[DIM + i] == 2.0f + (float)i / 3.0f);
    }
    raddino_store_stats s;
    ck_assert_int_eq(raddino_store_get_stats(db, &s).code, 0);
    ck_assert_int_eq(s.images, 3);
    ck_assert_int_eq(s.ok, 2);
    ck_assert_int_eq(s.failed, 1);
    ck_assert_int_eq(s.vectors, 2);
    ck_assert_int_eq(s.dim, DIM);
    ck_assert_str_eq(s.repository, "org/name");
    raddino_store_close(db);
    sqlite3 *h;
    ck_assert_int_eq(sqlite3_open(path, &h), SQLITE_OK);
    sqlite3_stmt *q;
    ck_assert_int_eq(sqlite3_prepare_v2(h, "PRAGMA integrity_check", -1, &q, NULL), SQLITE_OK);
    ck_assert_int_eq(sqlite3_step(q), SQLITE_ROW);
    ck_assert_str_eq((const char *)sqlite3_column_text(q, 0), "ok");
    sqlite3_finalize(q);
    sqlite3_close(h);
}
END_TEST

START_TEST(generation_counts_vector_changes)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    int64_t g0 = generation(db);
    put(db, "/g/a.png", SHA_A, 1.0f, true);
    ck_assert_int_gt(generation(db), g0);
    int64_t g1 = generation(db);
    put(db, "/g/a.png", SHA_A, 1.0f, true);     /* same vector: nothing changed */
    ck_assert_int_eq(generation(db), g1);
    put(db, "/g/a.png", SHA_A, 5.0f, true);     /* new vector */
    ck_assert_int_gt(generation(db), g1);
    int64_t g2 = generation(db);
    put(db, "/g/a.png", SHA_A, 0, false);       /* failed: its vector goes */
    ck_assert_int_gt(generation(db), g2);
    int64_t g3 = generation(db);
    put(db, "/g/b.png", SHA_B, 2.0f, true);
    int removed;
    ck_assert_int_eq(raddino_store_remove_path(db, "/g/b.png", &removed).code, 0);
    ck_assert_int_eq(removed, 1);
    ck_assert_int_gt(generation(db), g3 + 1);   /* added, then removed by the cascade */
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM embeddings"), 0);
}
END_TEST

START_TEST(one_model_per_collection)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    int64_t a = use_model(db, SHA_A, 0, NULL);
    ck_assert_int_eq(use_model(db, SHA_A, 0, NULL), a);    /* same model: same row */
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    put(db, "/m/a.png", SHA_A, 1.0f, true);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    raddino_status st;
    use_model(db, SHA_B, 0, &st);
    ck_assert_int_eq(st.code, RADDINO_ERR_MODEL);
    /* It names both models and the database, and no option: the command adds its advice
     * (tests/test_index.sh checks that `raddino index` says --reembed). */
    ck_assert_ptr_nonnull(strstr(st.message, "another model"));
    ck_assert_ptr_null(strstr(st.message, "--"));
    ck_assert_ptr_nonnull(strstr(st.message, path));
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM embeddings"), 1);

    db = open_writer(path);
    int64_t b = use_model(db, SHA_B, 1, NULL);
    ck_assert_int_ne(a, b);
    raddino_store_image img;
    int found;
    ck_assert_int_eq(raddino_store_find_path(db, "/m/a.png", &img, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(img.has_vector, 0);        /* the row stays, to be embedded again */
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM embeddings"), 0);
}
END_TEST

START_TEST(one_writer_many_readers)
{
    const char *path = db_path();
    raddino_store *writer = open_writer(path);
    use_model(writer, SHA_A, 0, NULL);
    raddino_store *second;
    raddino_status st = raddino_store_open(path, NULL, &second);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    ck_assert_ptr_null(second);
    ck_assert_ptr_nonnull(strstr(st.message, "another 'raddino index'"));
    /* A reader during an open write batch sees the last commit. */
    ck_assert_int_eq(raddino_store_begin(writer).code, 0);
    put(writer, "/w/a.png", SHA_A, 1.0f, true);
    raddino_store *reader = open_reader(path);
    raddino_store_stats s;
    ck_assert_int_eq(raddino_store_get_stats(reader, &s).code, 0);
    ck_assert_int_eq(s.images, 0);
    ck_assert_int_eq(raddino_store_commit(writer).code, 0);
    ck_assert_int_eq(raddino_store_get_stats(reader, &s).code, 0);
    ck_assert_int_eq(s.images, 1);
    raddino_store_close(reader);
    raddino_store_close(writer);
    second = open_writer(path);                 /* the lock went with the first writer */
    raddino_store_close(second);
}
END_TEST

static int keep_a(void *user, const char *path)
{
    (void)user;
    return strstr(path, "/a") != NULL;
}

START_TEST(prune_rows)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    put(db, "/p/a1.png", SHA_A, 1.0f, true);
    put(db, "/p/b1.png", SHA_B, 2.0f, true);
    put(db, "/p/b2.png", SHA_B, 0, false);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    int64_t removed;
    ck_assert_int_eq(raddino_store_prune(db, keep_a, NULL, &removed).code, 0);
    ck_assert_int_eq(removed, 2);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM images"), 1);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM embeddings"), 1);
}
END_TEST

static int never(void *user, int64_t id, const char *path, const char *sha, const float *v,
                 int dim)
{
    (void)user, (void)id, (void)path, (void)sha, (void)v, (void)dim;
    ck_abort_msg("a vector of the wrong size reached the caller");
    return 1;
}

START_TEST(vector_dimension_checked_on_read)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    put(db, "/d/a.png", SHA_A, 1.0f, true);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    raddino_store_close(db);
    /* The CHECK keeps BLOB and dim consistent; a row disagreeing with its model is caught. */
    sql_exec(path, "UPDATE embeddings SET dim = 3, vector = zeroblob(12)");
    db = open_reader(path);
    raddino_status st = raddino_store_foreach_vector(db, 0, never, NULL);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(st.message, "expected 8 float32"));
    raddino_store_close(db);
}
END_TEST

START_TEST(runs_recorded)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    int64_t run;
    ck_assert_int_eq(raddino_store_run_begin(db, "index /x", &run).code, 0);
    raddino_store_counts c = {1, 2, 3, 4, 5, 6};
    ck_assert_int_eq(raddino_store_run_update(db, run, &c, 1.5, 2.5, 1).code, 0);
    raddino_store_stats s;
    ck_assert_int_eq(raddino_store_get_stats(db, &s).code, 0);
    ck_assert_int_eq(s.run_id, run);
    ck_assert_str_eq(s.run_command, "index /x");
    ck_assert_int_eq(s.run_counts.reused, 3);
    ck_assert_int_eq(s.run_counts.removed, 6);
    ck_assert(s.run_finished > 0);
    ck_assert(s.run_wall_seconds == 2.5);
    raddino_store_close(db);
}
END_TEST

START_TEST(foreign_and_future_databases_refused)
{
    const char *path = db_path();
    sql_exec(path, "CREATE TABLE other(x)");
    raddino_store *db;
    raddino_status st = raddino_store_open(path, NULL, &db);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(st.message, "not raddino's"));

    const char *newer = db_path();
    raddino_store_close(open_writer(newer));
    sql_exec(newer, "PRAGMA user_version = 99");
    st = raddino_store_open(newer, NULL, &db);
    ck_assert_int_eq(st.code, RADDINO_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(st.message, "newer"));

    const char *text = test_write_temp("hello, not a database at all\n", 29, ".db");
    raddino_store_params p = raddino_store_default_params();
    p.read_only = 1;
    st = raddino_store_open(text, &p, &db);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_nonnull(strstr(st.message, text));

    char missing[4200];
    snprintf(missing, sizeof missing, "%s/none.db", test_temp_dir());
    st = raddino_store_open(missing, &p, &db);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    ck_assert_int_ne(access(missing, F_OK), 0);     /* a reader creates nothing */
}
END_TEST

/* The schema raddino wrote before DICOM metadata (schema 1), verbatim, with rows in it: a
 * database "made by the previous version". */
static const char schema1[] =
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
    "INSERT INTO meta(key, value) VALUES ('generation', 0);"
    "CREATE TABLE models(id INTEGER PRIMARY KEY, weights_sha256 TEXT NOT NULL,"
    "  config_json TEXT NOT NULL, repository TEXT, revision TEXT,"
    "  dim INTEGER NOT NULL CHECK (dim > 0), created REAL NOT NULL,"
    "  UNIQUE (weights_sha256, config_json));"
    "CREATE TABLE images(id INTEGER PRIMARY KEY, path TEXT NOT NULL UNIQUE,"
    "  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT, width INTEGER,"
    "  height INTEGER, format TEXT,"
    "  status TEXT NOT NULL CHECK (status IN ('ok', 'failed')), reason TEXT, embedded_at REAL);"
    "CREATE INDEX images_sha256 ON images(sha256);"
    "CREATE TABLE embeddings("
    "  image_id INTEGER NOT NULL REFERENCES images(id) ON DELETE CASCADE,"
    "  model_id INTEGER NOT NULL REFERENCES models(id), dim INTEGER NOT NULL CHECK (dim > 0),"
    "  vector BLOB NOT NULL CHECK (length(vector) = 4 * dim), PRIMARY KEY (image_id, model_id));"
    "CREATE INDEX embeddings_model ON embeddings(model_id);"
    "CREATE TABLE runs(id INTEGER PRIMARY KEY, started REAL NOT NULL, finished REAL,"
    "  command TEXT NOT NULL, model_id INTEGER REFERENCES models(id),"
    "  added INTEGER NOT NULL DEFAULT 0, updated INTEGER NOT NULL DEFAULT 0,"
    "  reused INTEGER NOT NULL DEFAULT 0, unchanged INTEGER NOT NULL DEFAULT 0,"
    "  failed INTEGER NOT NULL DEFAULT 0, removed INTEGER NOT NULL DEFAULT 0,"
    "  encoder_seconds REAL NOT NULL DEFAULT 0, wall_seconds REAL NOT NULL DEFAULT 0);"
    "CREATE TRIGGER embeddings_added AFTER INSERT ON embeddings BEGIN"
    "  UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"
    "CREATE TRIGGER embeddings_changed AFTER UPDATE ON embeddings BEGIN"
    "  UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"
    "CREATE TRIGGER embeddings_removed AFTER DELETE ON embeddings BEGIN"
    "  UPDATE meta SET value = value + 1 WHERE key = 'generation'; END;"
    "PRAGMA user_version = 1;"
    /* One model, an ok image with its vector (DIM floats 0, 0.5, 1, ...), a failed DICOM. */
    "INSERT INTO models VALUES (1, 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',"
    "  '{\"test\": 1}', 'org/name', 'rev', 8, 1.0);"
    "INSERT INTO images VALUES (1, '/old/a.png', 10, 20, "
    "  'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb', 64, 32, 'png', 'ok',"
    "  NULL, 3.0);"
    "INSERT INTO images VALUES (2, '/old/b.dcm', 11, 21, NULL, NULL, NULL, 'dicom', 'failed',"
    "  'DICOM files are not supported yet', NULL);"
    "INSERT INTO embeddings VALUES (1, 1, 8,"
    "  X'000000000000003f0000803f0000c03f00000040000020400000404000006040');"
    "INSERT INTO runs(started, finished, command, model_id, added, failed)"
    "  VALUES (1.0, 2.0, 'index /old', 1, 1, 1);";

static int64_t salt_of(const char *path, char hex[65])
{
    raddino_store *db = open_writer(path);
    raddino_status st = raddino_store_dicom_salt(db, hex);
    ck_assert_msg(!st.code, "%s", st.message);
    raddino_store_close(db);
    ck_assert_int_eq(strlen(hex), 64);
    return sql_int(path, "SELECT length(value) FROM meta WHERE key = 'dicom_salt'"
                         " AND typeof(value) = 'blob'");
}

START_TEST(schema_1_database_upgrades)
{
    const char *path = db_path();
    sql_exec(path, schema1);
    /* A reader does not upgrade; it says how to. */
    raddino_store_params p = raddino_store_default_params();
    p.read_only = 1;
    raddino_store *db;
    raddino_status st = raddino_store_open(path, &p, &db);
    ck_assert_int_eq(st.code, RADDINO_ERR_UNSUPPORTED);
    ck_assert_ptr_nonnull(strstr(st.message, "run 'raddino index' once"));
    int64_t generation_before = sql_int(path, "SELECT value FROM meta WHERE key = 'generation'");

    char salt[65];
    ck_assert_int_eq(salt_of(path, salt), 32);      /* a writer upgrades, making the salt */
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), RADDINO_STORE_SCHEMA);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM dicom"), 0);
    ck_assert_int_eq(sql_int(path, "SELECT value FROM meta WHERE key = 'generation'"),
                     generation_before);

    /* The old rows are intact and usable. */
    db = open_reader(path);
    raddino_store_image img;
    int found;
    ck_assert_int_eq(raddino_store_find_path(db, "/old/a.png", &img, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(img.width, 64);
    ck_assert_int_eq(img.has_vector, 1);
    ck_assert_int_eq(raddino_store_find_path(db, "/old/b.dcm", &img, &found).code, 0);
    ck_assert_str_eq(img.reason, "DICOM files are not supported yet");
    ck_assert_int_eq(img.size, -1);     /* due to be read again by the next index run */
    float rows[3 * DIM];
    memset(rows, 0, sizeof rows);
    ck_assert_int_eq(raddino_store_foreach_vector(db, 0, collect_vector, rows).code, 0);
    for (int i = 0; i < DIM; i++) ck_assert(rows[i] == 0.5f * (float)i);
    raddino_store_stats s;
    ck_assert_int_eq(raddino_store_get_stats(db, &s).code, 0);
    ck_assert_int_eq(s.schema, RADDINO_STORE_SCHEMA);
    ck_assert_int_eq(s.images, 2);
    ck_assert_int_eq(s.vectors, 1);
    ck_assert_int_eq(s.dicom, 0);
    ck_assert_int_eq(s.run_counts.failed, 1);
    raddino_store_close(db);

    /* The same model keeps its vectors; the salt is made once, not at every open. */
    db = open_writer(path);
    ck_assert_int_eq(use_model(db, SHA_A, 0, NULL), 1);
    raddino_store_close(db);
    char again[65];
    ck_assert_int_eq(salt_of(path, again), 32);
    ck_assert_str_eq(salt, again);
}
END_TEST

static void fill_dicom(raddino_dicom_info *d, const char *sop, const char *modality)
{
    memset(d, 0, sizeof *d);
    snprintf(d->sop_instance_uid, sizeof d->sop_instance_uid, "%s", sop);
    snprintf(d->study_instance_uid, sizeof d->study_instance_uid, "1.2.3");
    snprintf(d->series_instance_uid, sizeof d->series_instance_uid, "1.2.3.4");
    snprintf(d->modality, sizeof d->modality, "%s", modality);
    snprintf(d->view_position, sizeof d->view_position, "PA");
    snprintf(d->photometric_interpretation, sizeof d->photometric_interpretation, "MONOCHROME1");
    snprintf(d->transfer_syntax_uid, sizeof d->transfer_syntax_uid, "1.2.840.10008.1.2.5");
    d->rows = 2048;
    d->columns = 1536;
    d->frames = 1;
    d->pixel_spacing[0] = 0.139;
    d->pixel_spacing[1] = 0.143;
    memset(d->patient_key, 'e', 64);
    /* body_part_examined and imager_pixel_spacing absent */
}

static void put_dicom_image(raddino_store *db, const char *path, const raddino_dicom_info *d,
                            int64_t *id)
{
    raddino_store_image img;
    memset(&img, 0, sizeof img);
    img.path = path;
    img.size = 5;
    img.format = "dicom";
    img.status = RADDINO_IMAGE_OK;
    img.dicom = d;
    float v[DIM] = {0};
    raddino_status st = raddino_store_put_image(db, &img, v, id);
    ck_assert_msg(!st.code, "%s", st.message);
}

static void count_modality(void *user, const char *modality, int64_t count)
{
    char *out = user;
    size_t n = strlen(out);
    snprintf(out + n, 256 - n, "%s=%lld;", modality, (long long)count);
}

START_TEST(dicom_metadata_rows)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    raddino_dicom_info a, b, got;
    fill_dicom(&a, "1.2.3.4.5.1", "CR");
    fill_dicom(&b, "1.2.3.4.5.2", "DX");
    int64_t id_a, id_b, id_c;
    int found;
    ck_assert_int_eq(raddino_store_put_dicom(db, 1, &a).code, RADDINO_ERR_ARGUMENT);  /* no batch */
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    put_dicom_image(db, "/d/a.dcm", &a, &id_a);
    put_dicom_image(db, "/d/b.dcm", &b, &id_b);
    put_dicom_image(db, "/d/c.dcm", &a, &id_c);
    put(db, "/d/x.png", SHA_B, 1.0f, true);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);

    /* Round trip, field by field; absent attributes come back empty. */
    ck_assert_int_eq(raddino_store_get_dicom(db, id_a, &got, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_int_eq(memcmp(&got, &a, sizeof got), 0);
    ck_assert_str_eq(got.body_part_examined, "");
    ck_assert(got.imager_pixel_spacing[0] == 0);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM dicom WHERE body_part_examined IS NULL"
                                   " AND imager_pixel_spacing_row IS NULL"), 3);

    /* Statistics: by modality, most frequent first. */
    raddino_store_stats s;
    ck_assert_int_eq(raddino_store_get_stats(db, &s).code, 0);
    ck_assert_int_eq(s.dicom, 3);
    char modalities[256] = "";
    ck_assert_int_eq(raddino_store_dicom_modalities(db, count_modality, modalities).code, 0);
    ck_assert_str_eq(modalities, "CR=2;DX=1;");

    /* A changed file replaces its row; one that is no longer DICOM loses it; put_dicom(NULL)
     * removes; deleting the image deletes its metadata. */
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    put_dicom_image(db, "/d/a.dcm", &b, NULL);
    put_dicom_image(db, "/d/b.dcm", NULL, NULL);
    ck_assert_int_eq(raddino_store_put_dicom(db, id_c, NULL).code, 0);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    ck_assert_int_eq(raddino_store_get_dicom(db, id_a, &got, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(got.sop_instance_uid, "1.2.3.4.5.2");
    ck_assert_str_eq(got.modality, "DX");
    ck_assert_int_eq(raddino_store_get_dicom(db, id_b, &got, &found).code, 0);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(raddino_store_get_dicom(db, id_c, &got, &found).code, 0);
    ck_assert_int_eq(found, 0);
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    ck_assert_int_eq(raddino_store_put_dicom(db, id_b, &b).code, 0);
    ck_assert_int_eq(raddino_store_remove_path(db, "/d/b.dcm", NULL).code, 0);
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM dicom"), 1);
    raddino_store_close(db);

    /* A reader gets the rows too. */
    db = open_reader(path);
    ck_assert_int_eq(raddino_store_get_dicom(db, id_a, &got, &found).code, 0);
    ck_assert_int_eq(found, 1);
    ck_assert_str_eq(got.patient_key, b.patient_key);
    raddino_store_close(db);
}
END_TEST

START_TEST(salt_per_database)
{
    char one[65], two[65], again[65], a[4200], b[4200];
    snprintf(a, sizeof a, "%s/one.db", test_temp_dir());
    snprintf(b, sizeof b, "%s/two.db", test_temp_dir());
    ck_assert_int_eq(salt_of(a, one), 32);
    ck_assert_int_eq(salt_of(b, two), 32);
    ck_assert_str_ne(one, two);
    ck_assert_int_eq(salt_of(a, again), 32);
    ck_assert_str_eq(one, again);
    /* A damaged salt is an error, not an unsalted key. */
    sql_exec(a, "UPDATE meta SET value = X'00' WHERE key = 'dicom_salt'");
    raddino_store *db = open_writer(a);
    ck_assert_int_eq(raddino_store_dicom_salt(db, one).code, RADDINO_ERR_FORMAT);
    ck_assert_str_eq(one, "");
    raddino_store_close(db);
}
END_TEST

/* The encoder's identity is what collections stored before it moved into the encoder (the
 * store's model JSON and the command's window suffix): these exact bytes, or existing databases
 * stop matching their model. */
#define TINY_CONFIG_JSON                                                                        \
    "{\"hidden\": 64, \"layers\": 2, \"heads\": 2, \"mlp\": 256, \"patch\": 14, \"channels\": 3, " \
    "\"image_size\": 518, \"layer_norm_eps\": 9.99999997e-07, \"input\": [518, 518], "          \
    "\"preprocessing\": {\"do_convert_rgb\": 1, \"do_resize\": 1, \"do_center_crop\": 1, "     \
    "\"do_rescale\": 1, \"do_normalize\": 1, \"resize_shortest_edge\": 518, \"resize\": [0, 0], " \
    "\"resample\": 3, \"crop\": [518, 518], \"rescale_factor\": 0.0039215686274509803, "        \
    "\"image_mean\": [0.530700028, 0.530700028, 0.530700028], "                                 \
    "\"image_std\": [0.258300006, 0.258300006, 0.258300006]}"
#define TINY_WEIGHTS_SHA256 "ab391fa7e1b2f88a3bb086c85ab71d2374877103b19e7ed5041be340ae804596"

static void identity_with(int window, double center, double width, raddino_model_identity *id)
{
    raddino_encoder_params p = raddino_encoder_default_params();
    p.n_threads = 1;
    p.window = window;
    p.window_center = center;
    p.window_width = width;
    raddino_encoder *enc;
    ck_assert_int_eq(raddino_encoder_open(RADDINO_TEST_DATA "/models/tiny", &p, &enc).code, 0);
    ck_assert_int_eq(raddino_encoder_identity(enc, id).code, 0);
    raddino_model_identity again;   /* the hash is kept: the same answer */
    ck_assert_int_eq(raddino_encoder_identity(enc, &again).code, 0);
    ck_assert_str_eq(again.weights_sha256, id->weights_sha256);
    ck_assert_str_eq(again.config_json, id->config_json);
    raddino_encoder_close(enc);
}

START_TEST(encoder_identity_is_the_stored_model)
{
    raddino_model_identity id;
    identity_with(RADDINO_WINDOW_MINMAX, 0, 0, &id);
    ck_assert_str_eq(id.weights_sha256, TINY_WEIGHTS_SHA256);
    ck_assert_str_eq(id.config_json, TINY_CONFIG_JSON "}");
    ck_assert_int_eq(id.dim, 64);
    identity_with(RADDINO_WINDOW_AUTO, 0, 0, &id);
    ck_assert_str_eq(id.config_json, TINY_CONFIG_JSON ", \"dicom_window\": \"auto\"}");
    identity_with(RADDINO_WINDOW_EXPLICIT, 40, 400.5, &id);
    ck_assert_str_eq(id.config_json,
                     TINY_CONFIG_JSON ", \"dicom_window\": {\"center\": 40, \"width\": 400.5}}");
    ck_assert_int_ne(raddino_encoder_identity(NULL, &id).code, 0);
}
END_TEST

/* Cluster runs: stored with their assignments, read back (latest, by id, listed), assignments
 * of a deleted image gone; find_id and model_matches; a reader opens a schema 2 file as it is
 * and sees no runs. */
static int collect_assignment(void *user, int64_t id, const char *path, int cluster,
                              float distance)
{
    (void)path;
    int *n = user;
    ck_assert_int_eq(cluster, id % 2);
    ck_assert_float_eq_tol(distance, 0.25f * (float)cluster, 1e-6f);
    ++*n;
    return 0;
}

static void count_run(void *user, const raddino_store_cluster_run *run)
{
    ck_assert_ptr_null(run->centroids);
    ++*(int *)user;
}

START_TEST(cluster_runs_and_lookups)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    int64_t model = use_model(db, SHA_A, 0, NULL);
    raddino_status st = raddino_store_begin(db);
    ck_assert(!st.code);
    put(db, "/d/a.png", SHA_A, 1.0f, true);
    put(db, "/d/b.png", SHA_B, 2.0f, true);
    put(db, "/d/c.png", SHA_B, 3.0f, false);
    st = raddino_store_commit(db);
    ck_assert(!st.code);

    raddino_store_image img;
    int found;
    float v[DIM];
    st = raddino_store_find_id(db, 2, v, &img, &found);
    ck_assert_msg(!st.code && found && img.has_vector, "%s", st.message);
    ck_assert_str_eq(img.path, "/d/b.png");
    ck_assert_float_eq(v[3], 3.0f);
    st = raddino_store_find_id(db, 3, v, &img, &found);
    ck_assert(!st.code && found && !img.has_vector);    /* failed: no vector */
    st = raddino_store_find_id(db, 99, NULL, &img, &found);
    ck_assert(!st.code && !found);
    raddino_store_model same = {SHA_A, "{\"test\": 1}", NULL, NULL, DIM};
    raddino_store_model other = {SHA_B, "{\"test\": 1}", NULL, NULL, DIM};
    int matches;
    char why[256];
    st = raddino_store_model_matches(db, &same, &matches, why, sizeof why);
    ck_assert(!st.code && matches);
    st = raddino_store_model_matches(db, &other, &matches, why, sizeof why);
    ck_assert(!st.code && !matches);
    ck_assert_ptr_nonnull(strstr(why, "aaaaaaaaaaaa"));

    float centroids[2 * DIM] = {1.0f};
    raddino_store_cluster_run run;
    memset(&run, 0, sizeof run);
    run.model_id = model;
    run.generation = generation(db);
    run.k = 2, run.dim = DIM, run.iterations = 20, run.seed = 7, run.n = 2, run.n_train = 2;
    run.objective = 0.25;
    run.silhouette = NAN;
    run.params_json = "{\"k\": \"2\"}";
    run.centroids = centroids;
    int64_t ids[2] = {1, 2};
    int32_t clusters[2] = {1, 0};
    float distances[2] = {0.25f, 0.0f};
    st = raddino_store_put_cluster_run(db, &run, ids, clusters, distances, 2);
    ck_assert_msg(!st.code, "%s", st.message);
    int32_t bad[2] = {2, 0};
    raddino_store_cluster_run again = run;
    st = raddino_store_put_cluster_run(db, &again, ids, bad, distances, 2);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);    /* cluster out of range */
    raddino_store_close(db);

    db = open_reader(path);
    raddino_store_cluster_run got;
    st = raddino_store_get_cluster_run(db, 0, &got, &found);
    ck_assert_msg(!st.code && found, "%s", st.message);
    ck_assert_int_eq(got.id, run.id);
    ck_assert_int_eq(got.k, 2);
    ck_assert_int_eq(got.seed, 7);
    ck_assert(isnan(got.silhouette));
    ck_assert_str_eq(got.params_json, "{\"k\": \"2\"}");
    ck_assert_mem_eq(got.centroids, centroids, sizeof centroids);
    int n = 0;
    st = raddino_store_foreach_assignment(db, got.id, collect_assignment, &n);
    ck_assert(!st.code && n == 2);
    n = 0;
    st = raddino_store_list_cluster_runs(db, count_run, &n);
    ck_assert(!st.code && n == 1);
    st = raddino_store_get_cluster_run(db, 42, &got, &found);
    ck_assert(!st.code && !found);
    raddino_store_close(db);

    db = open_writer(path);
    int removed;
    st = raddino_store_begin(db);
    if (!st.code) st = raddino_store_remove_path(db, "/d/a.png", &removed);
    if (!st.code) st = raddino_store_commit(db);
    ck_assert_msg(!st.code, "%s", st.message);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM cluster_assignments"), 1);

    /* A schema 2 file (before cluster runs): a reader opens it and sees no runs. */
    sql_exec(path, "DROP TABLE cluster_assignments; DROP TABLE cluster_runs;"
                   " DROP TRIGGER embeddings_origin_added; DROP TRIGGER embeddings_origin_changed;"
                   " DROP TABLE image_origin; DROP TABLE imports;"
                   " PRAGMA user_version = 2;");
    db = open_reader(path);
    st = raddino_store_get_cluster_run(db, 0, &got, &found);
    ck_assert(!st.code && !found);
    raddino_store_stats stats;
    st = raddino_store_get_stats(db, &stats);
    ck_assert(!st.code && stats.schema == 2);
    raddino_store_close(db);
    db = open_writer(path);     /* a writer upgrades it */
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), RADDINO_STORE_SCHEMA);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM cluster_runs"), 0);
}
END_TEST

/* An import's rows carry their origin until the vector is written again (index re-embedding a
 * changed file): then the origin row goes, by trigger. Model identity as stored. */
START_TEST(import_origin_follows_the_vector)
{
    const char *path = db_path();
    raddino_store *db = open_writer(path);
    int64_t model = use_model(db, SHA_A, 0, NULL);
    ck_assert(!raddino_store_begin(db).code);
    put(db, "/x/a.png", SHA_A, 1, true);
    put(db, "/x/b.png", SHA_B, 2, true);
    raddino_store_import imp = {0, 0, "/x/v.npy", SHA_B, "/x/p.csv", 2, 1, 0.99999, 1234};
    raddino_status st = raddino_store_put_import(db, &imp);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert(imp.id > 0 && imp.created > 0);
    raddino_store_image img;
    int found;
    ck_assert(!raddino_store_find_path(db, "/x/a.png", &img, &found).code && found);
    ck_assert(!raddino_store_put_origin(db, img.id, imp.id, 0, 1).code);
    int64_t a = img.id;
    ck_assert(!raddino_store_find_path(db, "/x/b.png", &img, &found).code && found);
    ck_assert(!raddino_store_put_origin(db, img.id, imp.id, 1, 0).code);
    ck_assert(!raddino_store_commit(db).code);
    char sha[65], json[256];
    int dim;
    st = raddino_store_model_identity(db, 0, sha, json, sizeof json, &dim, &found);
    ck_assert_msg(!st.code && found, "%s", st.message);
    ck_assert_str_eq(sha, SHA_A);
    ck_assert_str_eq(json, "{\"test\": 1}");
    ck_assert_int_eq(dim, DIM);
    ck_assert(model > 0);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM image_origin"), 2);
    ck_assert_int_eq(sql_int(path, "SELECT verified FROM imports"), 1);
    /* the vector of a.png is written again: it is no longer the imported one */
    db = open_writer(path);
    use_model(db, SHA_A, 0, NULL);
    ck_assert(!raddino_store_begin(db).code);
    put(db, "/x/a.png", SHA_A, 5, true);
    ck_assert(!raddino_store_commit(db).code);
    raddino_store_close(db);
    ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM image_origin"), 1);
    char sql[128];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM image_origin WHERE image_id = %lld",
             (long long)a);
    ck_assert_int_eq(sql_int(path, sql), 0);
    /* a reader finds the identity of the stored vectors' model */
    db = open_reader(path);
    st = raddino_store_model_identity(db, 0, sha, json, sizeof json, &dim, &found);
    ck_assert(!st.code && found);
    ck_assert_str_eq(sha, SHA_A);
    raddino_store_close(db);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("store");
    TCase *t = tcase_create("store");
    tcase_add_test(t, schema_and_pragmas);
    tcase_add_test(t, normalise_paths);
    tcase_add_test(t, rows_round_trip);
    tcase_add_test(t, generation_counts_vector_changes);
    tcase_add_test(t, one_model_per_collection);
    tcase_add_test(t, one_writer_many_readers);
    tcase_add_test(t, prune_rows);
    tcase_add_test(t, vector_dimension_checked_on_read);
    tcase_add_test(t, runs_recorded);
    tcase_add_test(t, foreign_and_future_databases_refused);
    tcase_add_test(t, encoder_identity_is_the_stored_model);
    tcase_add_test(t, schema_1_database_upgrades);
    tcase_add_test(t, dicom_metadata_rows);
    tcase_add_test(t, salt_per_database);
    tcase_add_test(t, cluster_runs_and_lookups);
    tcase_add_test(t, import_origin_follows_the_vector);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failures = srunner_ntests_failed(r);
    srunner_free(r);
    return failures ? 1 : 0;
}
