/* test_search_batch.c — queries searched in batches return what they return alone: the shared
 * scan (raddino_index_search_batch) against one query at a time and against FAISS, the exact-fp16
 * and exact-sq8 index types against flat (and that their re-ranking is what makes them exact),
 * and the search queue under concurrent callers. */
#include "raddino_collection.h"
#include "raddino_index.h"
#include "raddino_store.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM 64
#define N 10000     /* above the scan's one-thread limit: several threads' heaps are merged */
#define NQ 37

/* n clustered vectors: 50 centres, each vector a centre plus noise (close neighbours exist). */
static float *make_vectors(size_t n, uint64_t seed)
{
    uint64_t s = 12345;
    float centres[50 * DIM];
    for (int i = 0; i < 50 * DIM; i++) centres[i] = test_rng_gauss(&s);
    s = seed;
    float *x = malloc(n * DIM * sizeof *x);
    ck_assert_ptr_nonnull(x);
    for (size_t i = 0; i < n; i++) {
        int c = (int)(test_rng_next(&s) % 50);
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = centres[c * DIM + j] + 0.6f * test_rng_gauss(&s);
    }
    return x;
}

static raddino_index *build(const char *type, const float *x, size_t n)
{
    int64_t *ids = malloc(n * sizeof *ids);
    for (size_t i = 0; i < n; i++) ids[i] = (int64_t)(3 * i + 1);
    raddino_index_params p = raddino_index_default_params();
    p.type = type;
    p.n_threads = 2;
    raddino_index *ix;
    raddino_status st = raddino_index_build(x, ids, n, DIM, &p, &ix);
    ck_assert_msg(!st.code, "%s", st.message);
    free(ids);
    return ix;
}

/* Every score and id the same, bit for bit. */
static void assert_same(const float *s1, const int64_t *i1, const float *s2, const int64_t *i2,
                        size_t n)
{
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(i1[i] == i2[i], "result %zu: id %lld vs %lld", i, (long long)i1[i],
                      (long long)i2[i]);
        ck_assert_msg(memcmp(&s1[i], &s2[i], sizeof *s1) == 0, "result %zu: score %.9g vs %.9g",
                      i, s1[i], s2[i]);
    }
}

START_TEST(batch_equals_one_at_a_time_and_faiss)
{
    float *x = make_vectors(N, 1), *q = make_vectors(NQ, 2);
    raddino_index *ix = build("flat", x, N);
    int k = 10;
    float s_batch[NQ * 10], s_one[NQ * 10], s_faiss[NQ * 10];
    int64_t i_batch[NQ * 10], i_one[NQ * 10], i_faiss[NQ * 10];
    raddino_status st = raddino_index_search_batch(ix, q, NQ, k, 0, NULL, NULL, s_batch, i_batch);
    ck_assert_msg(!st.code, "%s", st.message);
    for (int i = 0; i < NQ; i++) {
        st = raddino_index_search_batch(ix, q + i * DIM, 1, k, 0, NULL, NULL, s_one + i * k,
                                        i_one + i * k);
        ck_assert_msg(!st.code, "%s", st.message);
    }
    assert_same(s_batch, i_batch, s_one, i_one, NQ * (size_t)k);
    /* FAISS sums in another order: the same neighbours, scores within rounding. */
    st = raddino_index_search(ix, q, NQ, k, s_faiss, i_faiss);
    ck_assert_msg(!st.code, "%s", st.message);
    for (int i = 0; i < NQ * k; i++) {
        ck_assert_msg(fabsf(s_faiss[i] - s_batch[i]) < 1e-5f, "score %d: %g vs %g", i,
                      s_faiss[i], s_batch[i]);
        int tie = (i % k > 0 && fabsf(s_batch[i] - s_batch[i - 1]) < 1e-5f) ||
                  (i % k < k - 1 && fabsf(s_batch[i] - s_batch[i + 1]) < 1e-5f);
        if (!tie) ck_assert_int_eq(i_faiss[i], i_batch[i]);
    }
    /* More than stored: the rest is padded. */
    raddino_index *small = build("flat", x, 5);
    float s7[2 * 7];
    int64_t i7[2 * 7];
    st = raddino_index_search_batch(small, q, 2, 7, 0, NULL, NULL, s7, i7);
    ck_assert_msg(!st.code, "%s", st.message);
    for (int j = 0; j < 7; j++) {
        ck_assert(j < 5 ? i7[j] >= 0 : i7[j] == -1);
        ck_assert(j < 5 ? isfinite(s7[j]) : s7[j] == -INFINITY);
    }
    /* Bad input is refused with a reason, not searched. */
    q[3] = NAN;
    st = raddino_index_search_batch(ix, q, 2, k, 0, NULL, NULL, s_batch, i_batch);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_nonnull(strstr(st.message, "non-finite"));
    ck_assert_int_ne(raddino_index_search_batch(ix, q, 1, 0, 0, NULL, NULL, s_batch, i_batch).code, 0);
    raddino_index_free(small);
    raddino_index_free(ix);
    free(x);
    free(q);
}
END_TEST

/* The collection's vectors for the re-ranking: here, the build's own array. */
typedef struct {
    const float *x;
} source;

static int fetch(void *user, const int64_t *ids, size_t n, float *out)
{
    const source *s = user;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 1 || (ids[i] - 1) % 3 || (ids[i] - 1) / 3 >= N) return 1;
        memcpy(out + i * DIM, s->x + (size_t)(ids[i] - 1) / 3 * DIM, DIM * sizeof *out);
    }
    return 0;
}

static int fetch_none(void *user, const int64_t *ids, size_t n, float *out)
{
    (void)user, (void)ids, (void)n, (void)out;
    return 1;
}

START_TEST(exact_sq_types_return_flat_results)
{
    const char *types[] = {"exact-fp16", "exact-sq8"};
    float *x = make_vectors(N, 1), *q = make_vectors(NQ, 2);
    source src = {x};
    raddino_index *flat = build("flat", x, N);
    int k = 10;
    float s_flat[NQ * 10], s_sq[NQ * 10], s_raw[NQ * 10];
    int64_t i_flat[NQ * 10], i_sq[NQ * 10], i_raw[NQ * 10];
    raddino_status st = raddino_index_search_batch(flat, q, NQ, k, 0, NULL, NULL, s_flat, i_flat);
    ck_assert_msg(!st.code, "%s", st.message);
    for (int t = 0; t < 2; t++) {
        raddino_index *ix = build(types[t], x, N);
        raddino_index_info info;
        ck_assert_int_eq(raddino_index_get_info(ix, &info).code, 0);
        ck_assert_int_eq(info.rerank, RADDINO_INDEX_RERANK_EXACT_SQ);
        ck_assert_str_eq(info.type, types[t]);
        st = raddino_index_search_batch(ix, q, NQ, k, 0, fetch, &src, s_sq, i_sq);
        ck_assert_msg(!st.code, "%s", st.message);
        assert_same(s_sq, i_sq, s_flat, i_flat, NQ * (size_t)k);
        /* Without the re-ranking, the codes' scores are not flat's: it is what makes them exact. */
        st = raddino_index_search_batch(ix, q, NQ, k, 1, NULL, NULL, s_raw, i_raw);
        ck_assert_msg(!st.code, "%s", st.message);
        int differ = 0;
        for (int i = 0; i < NQ * k; i++) differ += s_raw[i] != s_flat[i];
        ck_assert_msg(differ > NQ * k / 2, "%s: only %d of %d scores approximate", types[t],
                      differ, NQ * k);
        /* Saved and loaded, the type keeps its re-ranking. */
        const char *dir = test_temp_dir();
        char path[512];
        snprintf(path, sizeof path, "%s/x.faiss", dir);
        raddino_index_meta meta = {.generation = 7};
        snprintf(meta.model_id, sizeof meta.model_id, "m");
        st = raddino_index_save(ix, path, &meta);
        ck_assert_msg(!st.code, "%s", st.message);
        raddino_index *back;
        st = raddino_index_load(path, NULL, &back, &meta);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_int_eq(raddino_index_get_info(back, &info).code, 0);
        ck_assert_int_eq(info.rerank, RADDINO_INDEX_RERANK_EXACT_SQ);
        st = raddino_index_search_batch(back, q, NQ, k, 0, fetch, &src, s_sq, i_sq);
        ck_assert_msg(!st.code, "%s", st.message);
        assert_same(s_sq, i_sq, s_flat, i_flat, NQ * (size_t)k);
        /* A shortlist whose vectors cannot be read is an error, not a wrong answer. */
        st = raddino_index_search_batch(back, q, 1, k, 0, fetch_none, NULL, s_sq, i_sq);
        ck_assert_int_ne(st.code, 0);
        raddino_index_free(back);
        remove(path);
        raddino_index_free(ix);
    }
    raddino_index_free(flat);
    free(x);
    free(q);
}
END_TEST

/* ---- The queue, with a collection in a database ------------------------------------------ */

static const char *make_db(size_t n, const float *x)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/c.db", test_temp_dir());
    raddino_store *db;
    raddino_store_params sp = raddino_store_default_params();
    raddino_status st = raddino_store_open(path, &sp, &db);
    ck_assert_msg(!st.code, "%s", st.message);
    raddino_store_model m = {"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                             "{\"test\": 1}", NULL, NULL, DIM};
    int64_t model_id, dropped;
    st = raddino_store_use_model(db, &m, 0, &model_id, &dropped);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(raddino_store_begin(db).code, 0);
    for (size_t i = 0; i < n; i++) {
        char p[64];
        snprintf(p, sizeof p, "/data/img%06zu.png", i);
        raddino_store_image img;
        memset(&img, 0, sizeof img);
        img.path = p;
        img.size = 100;
        /* Every 100th file has the same content as the one before it (the upload exclusion). */
        snprintf(img.sha256, sizeof img.sha256, "%064zx", i - (i % 100 == 1));
        img.width = img.height = 8;
        img.format = "png";
        img.status = RADDINO_IMAGE_OK;
        img.embedded_at = 1;
        st = raddino_store_put_image(db, &img, x + i * DIM, NULL);
        ck_assert_msg(!st.code, "%s", st.message);
    }
    ck_assert_int_eq(raddino_store_commit(db).code, 0);
    raddino_store_close(db);
    return path;
}

#define THREADS 8
#define PER_THREAD 12

typedef struct {
    raddino_search_queue *queue;
    pthread_mutex_t *mutex;
    int first_done;         /* the first batch holds the collection until all have queued */
} gate_state;

static void gate_lock(void *user)
{
    gate_state *g = user;
    pthread_mutex_lock(g->mutex);
    if (!g->first_done) {
        g->first_done = 1;
        raddino_search_queue_stats st;
        /* Waits (yielding, not sleeping) until every other thread's first query is queued. */
        for (;;) {
            raddino_search_queue_get_stats(g->queue, &st);
            if (st.pending >= THREADS - 1) break;
            sched_yield();
        }
    }
}

static void gate_unlock(void *user)
{
    gate_state *g = user;
    pthread_mutex_unlock(g->mutex);
}

typedef struct {
    raddino_search_queue *queue;
    const float *q;
    int t;
    pthread_barrier_t *start;
    raddino_search_request req[PER_THREAD];
} worker;

static int query_k(int t, int i) { return (t + i) % 3 == 0 ? 5 : 10; }
static int64_t query_exclude(int t, int i) { return (t * PER_THREAD + i) % 4 == 0 ? 3 * (t + i) + 1 : -1; }
static const char *query_sha(int t, int i)
{
    static const char sha[] = "0000000000000000000000000000000000000000000000000000000000000064";
    return (t + i) % 5 == 0 ? sha : NULL;
}

static void *work(void *arg)
{
    worker *w = arg;
    pthread_barrier_wait(w->start);
    for (int i = 0; i < PER_THREAD; i++) {
        raddino_search_request *r = &w->req[i];
        memset(r, 0, sizeof *r);
        r->vector = w->q + (size_t)(w->t * PER_THREAD + i) % NQ * DIM;
        r->k = query_k(w->t, i);
        r->min_score = -2;
        r->exclude_id = query_exclude(w->t, i);
        r->exclude_sha256 = query_sha(w->t, i);
        raddino_search_queue_search(w->queue, r);
    }
    return NULL;
}

START_TEST(queue_under_concurrent_callers_answers_each_alone)
{
    float *x = make_vectors(N, 1), *q = make_vectors(NQ, 2);
    const char *path = make_db(N, x);
    const char *types[] = {"flat", "exact-fp16"};
    for (int t = 0; t < 2; t++) {
        raddino_collection_params cp = raddino_collection_default_params();
        cp.index.type = types[t];
        cp.index.n_threads = 2;
        cp.no_save = 1;
        raddino_collection *c;
        raddino_status st = raddino_collection_open(path, &cp, &c);
        ck_assert_msg(!st.code, "%s", st.message);
        pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
        gate_state g = {NULL, &mutex, 0};
        raddino_search_queue_params qp = {0, gate_lock, gate_unlock, &g};
        raddino_search_queue *queue;
        st = raddino_search_queue_new(c, &qp, &queue);
        ck_assert_msg(!st.code, "%s", st.message);
        g.queue = queue;
        pthread_barrier_t start;
        pthread_barrier_init(&start, NULL, THREADS);
        worker *w = calloc(THREADS, sizeof *w);
        pthread_t th[THREADS];
        for (int i = 0; i < THREADS; i++) {
            w[i] = (worker){queue, q, i, &start, {{0}}};
            ck_assert_int_eq(pthread_create(&th[i], NULL, work, &w[i]), 0);
        }
        for (int i = 0; i < THREADS; i++) pthread_join(th[i], NULL);
        raddino_search_queue_stats stats;
        raddino_search_queue_get_stats(queue, &stats);
        ck_assert_int_eq(stats.queries, THREADS * PER_THREAD);
        ck_assert_int_eq(stats.pending, 0);
        ck_assert_msg(stats.largest >= THREADS - 1, "largest batch %d", stats.largest);
        ck_assert_int_lt(stats.batches, THREADS * PER_THREAD);
        /* Each answer is what the same query gets alone (and, for exact-fp16, flat's). */
        for (int i = 0; i < THREADS; i++)
            for (int j = 0; j < PER_THREAD; j++) {
                raddino_search_request *r = &w[i].req[j];
                ck_assert_msg(!r->status.code, "%s", r->status.message);
                raddino_collection_row *alone;
                const char *sha = query_sha(i, j);
                st = raddino_collection_search_rows_batch(c, r->vector, 1, r->k, -2,
                                                          &r->exclude_id, sha ? &sha : NULL,
                                                          &alone);
                ck_assert_msg(!st.code, "%s", st.message);
                for (int m = 0; m < r->k; m++) {
                    ck_assert_int_eq(r->rows[m].id, alone[m].id);
                    ck_assert(memcmp(&r->rows[m].score, &alone[m].score, sizeof(float)) == 0);
                    ck_assert_str_eq(r->rows[m].path, alone[m].path);
                    ck_assert_int_ne(r->rows[m].id, r->exclude_id);
                    if (sha) ck_assert_str_ne(r->rows[m].sha256, sha);
                }
                raddino_collection_rows_free(alone, (size_t)r->k);
                raddino_collection_rows_free(r->rows, (size_t)r->k);
            }
        free(w);
        pthread_barrier_destroy(&start);
        /* A bad query fails alone, with a reason. */
        raddino_search_request bad = {q, 0, -2, -1, NULL, {0, ""}, NULL};
        ck_assert_int_ne(raddino_search_queue_search(queue, &bad).code, 0);
        ck_assert_ptr_null(bad.rows);
        raddino_search_queue_free(queue);
        raddino_collection_close(c);
    }
    free(x);
    free(q);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("search_batch");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, batch_equals_one_at_a_time_and_faiss);
    tcase_add_test(tc, exact_sq_types_return_flat_results);
    tcase_add_test(tc, queue_under_concurrent_callers_answers_each_alone);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
