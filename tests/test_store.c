/* test_store.c — the SQLite store through its public API: schema and pragmas, path
 * normalisation, rows and vectors round trip exactly, the generation counter, one model per
 * collection, the writer lock, pruning, dimension checks on read, schema versions. */
#include "raddino_store.h"
#include "test_util.h"

#include <check.h>
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
    ck_assert_ptr_nonnull(strstr(st.message, "--reembed"));
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

START_TEST(model_json_describes_preprocessing)
{
    raddino_model_info info;
    memset(&info, 0, sizeof info);
    info.hidden = 768;
    info.crop_height = info.crop_width = 518;
    info.image_mean[0] = 0.5307f;
    char a[4096], b[4096];
    ck_assert_int_eq(raddino_store_model_json(&info, a, sizeof a).code, 0);
    info.image_mean[0] = 0.5f;
    ck_assert_int_eq(raddino_store_model_json(&info, b, sizeof b).code, 0);
    ck_assert_str_ne(a, b);
    ck_assert_ptr_nonnull(strstr(a, "\"hidden\": 768"));
    ck_assert_int_ne(raddino_store_model_json(&info, a, 10).code, 0);
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
    tcase_add_test(t, model_json_describes_preprocessing);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failures = srunner_ntests_failed(r);
    srunner_free(r);
    return failures ? 1 : 0;
}
