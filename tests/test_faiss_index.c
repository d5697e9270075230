/* test_index.c — the FAISS layer: exact search against brute force, recall of IVF and HNSW on
 * clustered synthetic data, removal, save/load, damaged files, range search, the auto rule,
 * k-means and silhouette. Threads: RADDINO_THREADS=2 (set by ctest). */
#include "raddino_index.h"
#include "test_util.h"

#include "../index/index_internal.h"   /* the file checksum, to forge a damaged-but-summed file */
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/index_io_c.h>

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define DIM 768

/* ---- Synthetic data ------------------------------------------------------------------------ */

static double rng_uniform(uint64_t *s) { return ((test_rng_next(s) >> 11) + 0.5) * 0x1.0p-53; }

static float rng_gauss(uint64_t *s)
{
    return (float)(sqrt(-2 * log(rng_uniform(s))) * cos(6.283185307179586 * rng_uniform(s)));
}

/* n vectors around `n_centres` random centres: centre + noise * N(0, I) / sqrt(d). With noise
 * around 1 the neighbours inside a cluster are a real search problem, not a lookup. */
static float *clustered(size_t n, int d, int n_centres, float noise, uint64_t seed,
                        int32_t *labels)
{
    float *c = malloc((size_t)n_centres * d * sizeof *c);
    float *x = malloc(n * d * sizeof *x);
    ck_assert(c && x);
    uint64_t s = seed;
    float scale = 1.0f / sqrtf((float)d);
    for (size_t i = 0; i < (size_t)n_centres * d; i++) c[i] = rng_gauss(&s) * scale;
    for (size_t i = 0; i < n; i++) {
        int k = (int)(test_rng_next(&s) % (uint64_t)n_centres);
        if (labels) labels[i] = k;
        for (int j = 0; j < d; j++)
            x[i * d + j] = c[(size_t)k * d + j] + noise * scale * rng_gauss(&s);
    }
    free(c);
    return x;
}

static int64_t *make_ids(size_t n, int64_t first)
{
    int64_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++) ids[i] = first + 3 * (int64_t)i;   /* not 0..n-1 */
    return ids;
}

static double cosine(const float *a, const float *b, int d)
{
    double dot = 0, na = 0, nb = 0;
    for (int j = 0; j < d; j++) {
        dot += (double)a[j] * b[j];
        na += (double)a[j] * a[j];
        nb += (double)b[j] * b[j];
    }
    return dot / sqrt(na * nb);
}

static raddino_index *build(const float *x, const int64_t *ids, size_t n, const char *type,
                            int nprobe, int ef, size_t train)
{
    raddino_index_params p = raddino_index_default_params();
    p.type = type;
    p.nprobe = nprobe;
    p.ef_search = ef;
    p.train_size = train;
    p.seed = 7;
    raddino_index *ix;
    raddino_status st = raddino_index_build(x, ids, n, DIM, &p, &ix);
    ck_assert_msg(!st.code, "%s: %s", type, st.message);
    return ix;
}

/* ---- Exact search -------------------------------------------------------------------------- */

START_TEST(exact_matches_brute_force)
{
    size_t n = 2000;
    int k = 10;
    float *x = clustered(n, DIM, 20, 1.0f, 1, NULL);
    int64_t *ids = make_ids(n, 100);
    raddino_index *ix = build(x, ids, n, "flat", 0, 0, 0);
    float *scores = malloc(n * k * sizeof *scores);
    int64_t *found = malloc(n * k * sizeof *found);
    raddino_status st = raddino_index_search(ix, x, n, k, scores, found);
    ck_assert_msg(!st.code, "%s", st.message);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(found[i * k], ids[i]);
        ck_assert_float_eq_tol(scores[i * k], 1.0f, 1e-5f);
    }
    /* Brute force in double for 100 queries: the same ids, best first, the same scores. */
    double *sim = malloc(n * sizeof *sim);
    for (size_t q = 0; q < n; q += 20) {
        for (size_t j = 0; j < n; j++) sim[j] = cosine(x + q * DIM, x + j * DIM, DIM);
        for (int r = 0; r < k; r++) {
            size_t best = 0;
            for (size_t j = 1; j < n; j++)
                if (sim[j] > sim[best]) best = j;
            ck_assert_int_eq(found[q * k + r], ids[best]);
            ck_assert_float_eq_tol(scores[q * k + r], sim[best], 1e-5);
            sim[best] = -2;
        }
    }
    raddino_index_info info;
    st = raddino_index_get_info(ix, &info);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_str_eq(info.type, "flat");
    ck_assert_int_eq(info.exact, 1);
    ck_assert_int_eq(info.ntotal, (int64_t)n);
    ck_assert_int_eq(info.dim, DIM);
    ck_assert_uint_ge(info.memory_bytes, n * DIM * 4);          /* the vectors themselves */
    ck_assert_uint_le(info.memory_bytes, n * (DIM * 4 + 8) + 4096);
    double recall;
    st = raddino_index_measure_recall(ix, x, ids, n, 50, 10, 3, &recall);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_double_eq(recall, 1.0);
    /* The caller's vectors are not modified: they were not unit length and still are not. */
    double norm = 0;
    for (int j = 0; j < DIM; j++) norm += (double)x[j] * x[j];
    ck_assert(fabs(norm - 1.0) > 0.01);
    free(sim);
    free(scores);
    free(found);
    raddino_index_free(ix);
    free(x);
    free(ids);
}
END_TEST

START_TEST(fewer_than_k_and_min_score)
{
    float x[3 * DIM];
    uint64_t s = 5;
    for (int i = 0; i < 3 * DIM; i++) x[i] = rng_gauss(&s);
    int64_t ids[3] = {10, 20, 30};
    raddino_index *ix = build(x, ids, 3, "flat", 0, 0, 0);
    ck_assert_int_eq(raddino_index_set_threads(ix, 1).code, 0);
    ck_assert_int_eq(raddino_index_set_threads(ix, -1).code, RADDINO_ERR_ARGUMENT);
    float scores[5];
    int64_t found[5];
    raddino_status st = raddino_index_search(ix, x, 1, 5, scores, found);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(found[0], 10);
    ck_assert_int_eq(found[3], -1);
    ck_assert_int_eq(found[4], -1);
    ck_assert(isinf(scores[3]) && scores[3] < 0);
    size_t kept;
    st = raddino_index_apply_min_score(scores, found, 1, 5, 0.5f, &kept);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_uint_eq(kept, 1);   /* random 768-d vectors are nearly orthogonal */
    ck_assert_int_eq(found[0], 10);
    ck_assert_int_eq(found[1], -1);
    raddino_index_free(ix);
}
END_TEST

START_TEST(bad_input_is_a_status)
{
    float x[2 * DIM] = {0};
    int64_t ids[2] = {1, 2};
    raddino_index *ix = (raddino_index *)1;
    x[DIM + 5] = NAN;
    raddino_status st = raddino_index_build(x, ids, 2, DIM, NULL, &ix);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_ptr_null(ix);
    ck_assert_ptr_nonnull(strstr(st.message, "vector 1"));
    x[DIM + 5] = 1;
    ids[1] = -4;
    st = raddino_index_build(x, ids, 2, DIM, NULL, &ix);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ids[1] = 2;
    raddino_index_params p = raddino_index_default_params();
    p.type = "NoSuchIndex,Whatever";
    st = raddino_index_build(x, ids, 2, DIM, &p, &ix);   /* FAISS throws: a status, no abort */
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_null(strchr(st.message, '\n'));
    p.type = "IVF64,Flat";                                /* too few vectors to train 64 lists */
    st = raddino_index_build(x, ids, 2, DIM, &p, &ix);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_nonnull(strstr(st.message, "train"));
}
END_TEST

/* ---- Approximate types: recall ------------------------------------------------------------ */

#define RECALL_N 20000

START_TEST(ivf_recall)
{
    float *x = clustered(RECALL_N, DIM, 20, 2.0f, 11, NULL);
    int64_t *ids = make_ids(RECALL_N, 1);
    raddino_index *ix = build(x, ids, RECALL_N, "IVF128,Flat", 16, 0, 5000);
    raddino_index_info info;
    raddino_status st = raddino_index_get_info(ix, &info);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(info.nlist, 128);
    ck_assert_int_eq(info.nprobe, 16);
    ck_assert_int_eq(info.exact, 0);
    double recall;
    st = raddino_index_measure_recall(ix, x, ids, RECALL_N, 200, 10, 5, &recall);
    ck_assert_msg(!st.code, "%s", st.message);
    fprintf(stderr, "IVF128,Flat nprobe 16: recall@10 %.3f\n", recall);
    ck_assert_double_ge(recall, 0.9);
    /* nprobe 1 visits one list in 128: recall must drop, or the measurement measures nothing. */
    st = raddino_index_set_search_params(ix, 1, 0);
    ck_assert_msg(!st.code, "%s", st.message);
    double low;
    st = raddino_index_measure_recall(ix, x, ids, RECALL_N, 200, 10, 5, &low);
    ck_assert_msg(!st.code, "%s", st.message);
    fprintf(stderr, "IVF128,Flat nprobe 1: recall@10 %.3f\n", low);
    ck_assert_double_lt(low, recall - 0.05);
    raddino_index_free(ix);
    free(x);
    free(ids);
}
END_TEST

START_TEST(hnsw_recall)
{
    float *x = clustered(RECALL_N, DIM, 20, 2.0f, 11, NULL);
    int64_t *ids = make_ids(RECALL_N, 1);
    raddino_index *ix = build(x, ids, RECALL_N, "HNSW32", 0, 64, 0);
    raddino_index_info info;
    raddino_status st = raddino_index_get_info(ix, &info);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(info.ef_search, 64);
    ck_assert_int_eq(info.nprobe, 0);
    double recall;
    st = raddino_index_measure_recall(ix, x, ids, RECALL_N, 200, 10, 5, &recall);
    ck_assert_msg(!st.code, "%s", st.message);
    fprintf(stderr, "HNSW32 efSearch 64: recall@10 %.3f\n", recall);
    ck_assert_double_ge(recall, 0.9);
    raddino_index_free(ix);
    free(x);
    free(ids);
}
END_TEST

/* The recall measurement itself, against a count made here on a small IVF index. */
START_TEST(recall_measurement_is_right)
{
    size_t n = 1500;
    int k = 5;
    float *x = clustered(n, DIM, 10, 1.0f, 21, NULL);
    int64_t *ids = make_ids(n, 7);
    raddino_index *ix = build(x, ids, n, "IVF16,Flat", 1, 0, 0);
    size_t nq = 1500;   /* every vector a query, so the sample is known */
    float *scores = malloc(nq * k * sizeof *scores);
    int64_t *found = malloc(nq * k * sizeof *found);
    raddino_status st = raddino_index_search(ix, x, nq, k, scores, found);
    ck_assert_msg(!st.code, "%s", st.message);
    double *sim = malloc(n * sizeof *sim);
    size_t hits = 0;
    for (size_t q = 0; q < nq; q += 15) {
        for (size_t j = 0; j < n; j++) sim[j] = cosine(x + q * DIM, x + j * DIM, DIM);
        for (int r = 0; r < k; r++) {
            size_t best = 0;
            for (size_t j = 1; j < n; j++)
                if (sim[j] > sim[best]) best = j;
            for (int t = 0; t < k; t++) hits += found[q * k + t] == ids[best];
            sim[best] = -2;
        }
    }
    double expected = (double)hits / (100.0 * k);
    /* The library's sample of 100 is different from ours: compare loosely; with every vector a
     * query, compare exactly. */
    double recall;
    st = raddino_index_measure_recall(ix, x, ids, n, n, k, 1, &recall);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_double_lt(expected, 0.99);   /* nprobe 1 of 16 misses some: a real check */
    ck_assert_double_eq_tol(recall, expected, 0.06);
    free(sim);
    free(scores);
    free(found);
    raddino_index_free(ix);
    free(x);
    free(ids);
}
END_TEST

/* ---- Updates ------------------------------------------------------------------------------ */

static void check_removal(const char *type, size_t train)
{
    size_t n = 3000;
    int k = 20;
    float *x = clustered(n, DIM, 30, 1.0f, 31, NULL);
    int64_t *ids = make_ids(n, 1);
    raddino_index *ix = build(x, ids, n, type, 8, 64, train);
    int64_t gone[100];
    for (int i = 0; i < 100; i++) gone[i] = ids[i * 30];
    size_t removed;
    raddino_status st = raddino_index_remove(ix, gone, 100, &removed);
    ck_assert_msg(!st.code, "%s: %s", type, st.message);
    ck_assert_uint_eq(removed, 100);
    raddino_index_info info;
    st = raddino_index_get_info(ix, &info);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(info.ntotal, (int64_t)n - 100);
    /* The removed vectors themselves as queries: their ids must never come back. */
    float *q = malloc(100 * DIM * sizeof *q);
    for (int i = 0; i < 100; i++) memcpy(q + i * DIM, x + (size_t)i * 30 * DIM, DIM * sizeof *q);
    float *scores = malloc(100 * k * sizeof *scores);
    int64_t *found = malloc(100 * k * sizeof *found);
    st = raddino_index_search(ix, q, 100, k, scores, found);
    ck_assert_msg(!st.code, "%s", st.message);
    for (int i = 0; i < 100 * k; i++)
        for (int j = 0; j < 100; j++) ck_assert_int_ne(found[i], gone[j]);
    /* Adding them back (new ids) finds them again, first. */
    int64_t back[100];
    for (int i = 0; i < 100; i++) back[i] = 1000000 + i;
    st = raddino_index_add(ix, q, back, 100);
    ck_assert_msg(!st.code, "%s", st.message);
    st = raddino_index_search(ix, q, 100, k, scores, found);
    ck_assert_msg(!st.code, "%s", st.message);
    int first = 0;
    for (int i = 0; i < 100; i++) first += found[i * k] == back[i];
    ck_assert_int_ge(first, 95);
    free(q);
    free(scores);
    free(found);
    raddino_index_free(ix);
    free(x);
    free(ids);
}

START_TEST(removed_ids_never_appear)
{
    check_removal("flat", 0);
    check_removal("IVF32,Flat", 0);
    check_removal("HNSW16", 0);   /* FAISS's HNSW cannot delete: rebuilt */
}
END_TEST

/* ---- Files ---------------------------------------------------------------------------------- */

static void check_same_results(raddino_index *a, raddino_index *b, const float *q, size_t nq)
{
    int k = 10;
    float *sa = malloc(nq * k * sizeof *sa), *sb = malloc(nq * k * sizeof *sb);
    int64_t *ia = malloc(nq * k * sizeof *ia), *ib = malloc(nq * k * sizeof *ib);
    raddino_status st = raddino_index_search(a, q, nq, k, sa, ia);
    ck_assert_msg(!st.code, "%s", st.message);
    st = raddino_index_search(b, q, nq, k, sb, ib);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_mem_eq(ia, ib, nq * k * sizeof *ia);
    ck_assert_mem_eq(sa, sb, nq * k * sizeof *sa);
    free(sa);
    free(sb);
    free(ia);
    free(ib);
}

START_TEST(save_load_round_trip)
{
    const char *types[] = {"flat", "IVF32,Flat", "HNSW16", "IVF16,PQ32x4np"};
    size_t n = 3000;
    float *x = clustered(n, DIM, 30, 1.0f, 41, NULL);
    int64_t *ids = make_ids(n, 5);
    const char *dir = test_temp_dir();
    for (int t = 0; t < 4; t++) {
        raddino_index *ix = build(x, ids, n, types[t], 4, 40, 0);
        char path[4200];
        snprintf(path, sizeof path, "%s/raddino.db.faiss", dir);
        raddino_index_meta meta;
        memset(&meta, 0, sizeof meta);
        meta.generation = 1234567890123ull + t;
        snprintf(meta.model_id, sizeof meta.model_id, "microsoft/rad-dino@\"main\"");
        raddino_status st = raddino_index_save(ix, path, &meta);   /* replaces the last one */
        ck_assert_msg(!st.code, "%s", st.message);
        raddino_index_meta head;
        st = raddino_index_read_meta(path, &head);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_uint_eq(head.generation, meta.generation);
        ck_assert_str_eq(head.model_id, meta.model_id);
        ck_assert_str_eq(head.type, types[t]);
        ck_assert_int_eq(head.dim, DIM);
        ck_assert_int_eq(head.ntotal, (int64_t)n);
        raddino_index *back;
        raddino_index_meta got;
        st = raddino_index_load(path, NULL, &back, &got);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_uint_eq(got.generation, meta.generation);
        raddino_index_info a, b;
        raddino_index_get_info(ix, &a);
        raddino_index_get_info(back, &b);
        ck_assert_str_eq(a.type, b.type);
        ck_assert_int_eq(a.nprobe, b.nprobe);       /* search parameters travel with the file */
        ck_assert_int_eq(a.ef_search, b.ef_search);
        ck_assert_uint_eq(a.memory_bytes, b.memory_bytes);
        check_same_results(ix, back, x, 300);
        raddino_index_free(ix);
        raddino_index_free(back);
    }
    /* No temporary file is left behind. */
    char cmd[4300];
    snprintf(cmd, sizeof cmd, "test $(ls -A '%s' | wc -l) -eq 1", dir);
    ck_assert_int_eq(system(cmd), 0);
    free(x);
    free(ids);
}
END_TEST

static unsigned char *saved_file(size_t *size, char *path, size_t cap)
{
    size_t n = 500;
    float *x = clustered(n, DIM, 5, 1.0f, 51, NULL);
    int64_t *ids = make_ids(n, 1);
    raddino_index *ix = build(x, ids, n, "flat", 0, 0, 0);
    snprintf(path, cap, "%s/x.faiss", test_temp_dir());
    raddino_status st = raddino_index_save(ix, path, NULL);
    ck_assert_msg(!st.code, "%s", st.message);
    raddino_index_free(ix);
    free(x);
    free(ids);
    return test_read_file(path, size);
}

static raddino_status load_bytes(const unsigned char *bytes, size_t size, char *path)
{
    FILE *f = fopen(path, "wb");
    ck_assert_ptr_nonnull(f);
    ck_assert_uint_eq(fwrite(bytes, 1, size, f), size);
    fclose(f);
    raddino_index *ix = (raddino_index *)1;
    raddino_status st = raddino_index_load(path, NULL, &ix, NULL);
    ck_assert_ptr_null(ix);
    ck_assert_ptr_null(strchr(st.message, '\n'));
    return st;
}

START_TEST(damaged_files_are_refused)
{
    char path[4200];
    size_t size;
    unsigned char *good = saved_file(&size, path, sizeof path);
    unsigned char *bad = malloc(size);
    /* Truncated anywhere: refused, naming the file. */
    size_t cuts[] = {0, 10, size / 2, size - 33, size - 1};
    for (int i = 0; i < 5; i++) {
        raddino_status st = load_bytes(good, cuts[i], path);
        ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
        ck_assert_ptr_nonnull(strstr(st.message, path));
    }
    /* One flipped bit in the vectors, in the FAISS header, in the metadata. */
    size_t flips[] = {size / 2, 3, size - 40};
    for (int i = 0; i < 3; i++) {
        memcpy(bad, good, size);
        bad[flips[i]] ^= 0x10;
        raddino_status st = load_bytes(bad, size, path);
        ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    }
    /* FAISS's own part garbled but checksummed as if it were fine: FAISS throws, and that must
     * be a status too (never an abort). The layout: FAISS bytes, JSON, 32-byte footer. */
    uint64_t faiss_bytes = 0;
    for (int i = 7; i >= 0; i--) faiss_bytes = faiss_bytes << 8 | good[size - 24 + i];
    memcpy(bad, good, size);
    memcpy(bad, "XXXX", 4);                              /* unknown index fourcc */
    index_checksum c;
    index_checksum_init(&c);
    index_checksum_update(&c, bad, size - 32);
    uint64_t sum = index_checksum_final(&c);
    for (int i = 0; i < 8; i++) bad[size - 8 + i] = (unsigned char)(sum >> (8 * i));
    raddino_status st = load_bytes(bad, size, path);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(st.message, path));
    /* Same through the bare C API: an error code and a message. */
    FILE *f = fmemopen(bad, (size_t)faiss_bytes / 2, "rb");
    FaissIndex *raw = NULL;
    ck_assert_int_ne(faiss_read_index(f, 0, &raw), 0);
    ck_assert_ptr_nonnull(faiss_get_last_error());
    fclose(f);
    /* Missing file: an I/O error. */
    raddino_index *ix;
    st = raddino_index_load("/nonexistent/raddino.db.faiss", NULL, &ix, NULL);
    ck_assert_int_eq(st.code, RADDINO_ERR_IO);
    free(good);
    free(bad);
}
END_TEST

/* ---- Range search -------------------------------------------------------------------------- */

static void check_planted_duplicates(const char *type)
{
    size_t n_base = 3000, n_dup = 40, n = n_base + n_dup;
    float *x = clustered(n, DIM, 1, 8.0f, 61, NULL);   /* noise >> centre: nearly orthogonal */
    uint64_t s = 99;
    for (size_t i = 0; i < n_dup; i++) {   /* row n_base+i: a near copy of row 50*i */
        float *dup = x + (n_base + i) * DIM;
        const float *orig = x + i * 50 * DIM;
        for (int j = 0; j < DIM; j++) dup[j] = orig[j] * 1.5f + 0.02f * rng_gauss(&s);
    }
    int64_t *ids = make_ids(n, 1);
    raddino_index *ix = build(x, ids, n, type, 2, 64, 0);
    raddino_range_result r;
    raddino_status st = raddino_index_range_search(ix, x, n, 0.95f, &r);
    ck_assert_msg(!st.code, "%s: %s", type, st.message);
    ck_assert_uint_eq(r.nq, n);
    for (size_t q = 0; q < n; q++) {
        size_t count = r.lims[q + 1] - r.lims[q];
        int planted = q >= n_base || (q % 50 == 0 && q / 50 < n_dup);
        ck_assert_msg(count == (planted ? 2u : 1u), "%s: query %zu has %zu hits", type, q, count);
        ck_assert_int_eq(r.ids[r.lims[q]], ids[q]);    /* itself first */
        for (size_t j = r.lims[q]; j < r.lims[q + 1]; j++) ck_assert_float_ge(r.scores[j], 0.95f);
        if (planted) {
            size_t twin = q >= n_base ? (q - n_base) * 50 : n_base + q / 50;
            ck_assert_int_eq(r.ids[r.lims[q] + 1], ids[twin]);
        }
    }
    raddino_range_result_free(&r);
    raddino_index_free(ix);
    free(x);
    free(ids);
}

START_TEST(range_search_finds_planted_duplicates)
{
    check_planted_duplicates("flat");
    check_planted_duplicates("IVF16,Flat");
    check_planted_duplicates("HNSW16");   /* answered by growing top-k searches */
}
END_TEST

/* ---- The auto rule ------------------------------------------------------------------------- */

static const char *choose(size_t n, uint64_t budget)
{
    static char type[RADDINO_INDEX_TYPE_MAX];
    raddino_status st = raddino_index_choose_type(n, DIM, budget, type, sizeof type);
    ck_assert_msg(!st.code, "%s", st.message);
    return type;
}

START_TEST(auto_rule_as_documented)
{
    uint64_t MB = 1000000;
    ck_assert_str_eq(choose(5000, 1), "flat");                 /* tiny: flat whatever budget */
    ck_assert_str_eq(choose(200000, 1000 * MB), "flat");       /* 200k * 3080 = 616 MB */
    /* 616 MB flat misses 600 MB; the float32 IVF too; SQ8 (155 MB + 6.9 MB of quantizer)
     * fits: 4*sqrt(200k) = 1789 -> 2048 lists. */
    ck_assert_str_eq(choose(200000, 600 * MB), "IVF2048_HNSW32,SQ8");
    ck_assert_str_eq(choose(200001, 100000 * MB), "IVF2048_HNSW32,Flat");   /* past flat */
    ck_assert_str_eq(choose(1000000, 4000 * MB), "IVF4096_HNSW32,Flat");    /* 3.09 GB */
    /* 1M in 1 GB: SQ8, 776 MB + 13.9 MB */
    ck_assert_str_eq(choose(1000000, 1000 * MB), "IVF4096_HNSW32,SQ8");
    /* 1M in 500 MB: 4*sqrt(n) = 4000 -> 4096 lists; m = 96 fits: 104 MB + 13 MB. */
    ck_assert_str_eq(choose(1000000, 500 * MB), "IVF4096,PQ96np");
    /* 150k: 4*sqrt = 1549 -> 2048 (log-nearest); 2048 * 39 < 150k. */
    ck_assert_str_eq(choose(150000, 100 * MB), "IVF2048,PQ96np");
    /* Tight budget: m shrinks. 1M * (32 + 8) + 4352 * 3072 = 53.4 MB. */
    ck_assert_str_eq(choose(1000000, 54 * MB), "IVF4096,PQ32np");
    char type[64];
    raddino_status st = raddino_index_choose_type(1000000, DIM, 1 * MB, type, sizeof type);
    ck_assert_int_eq(st.code, RADDINO_ERR_TOO_LARGE);
    /* "auto" in a build resolves, and the info says to what. */
    float *x = clustered(1000, DIM, 4, 1.0f, 71, NULL);
    int64_t *ids = make_ids(1000, 1);
    raddino_index *ix = build(x, ids, 1000, "auto", 0, 0, 0);
    raddino_index_info info;
    raddino_index_get_info(ix, &info);
    ck_assert_str_eq(info.type, "flat");
    raddino_index_free(ix);
    free(x);
    free(ids);
}
END_TEST

/* ---- k-means --------------------------------------------------------------------------------- */

/* Adjusted Rand index of two labelings (k <= 64). */
static double adjusted_rand(const int32_t *a, const int32_t *b, size_t n, int ka, int kb)
{
    static double table[64][64];
    double ra[64] = {0}, rb[64] = {0};
    memset(table, 0, sizeof table);
    for (size_t i = 0; i < n; i++) {
        table[a[i]][b[i]]++;
        ra[a[i]]++;
        rb[b[i]]++;
    }
    double sum = 0, sa = 0, sb = 0;
    for (int i = 0; i < ka; i++)
        for (int j = 0; j < kb; j++) sum += table[i][j] * (table[i][j] - 1) / 2;
    for (int i = 0; i < ka; i++) sa += ra[i] * (ra[i] - 1) / 2;
    for (int j = 0; j < kb; j++) sb += rb[j] * (rb[j] - 1) / 2;
    double pairs = (double)n * (n - 1) / 2, expected = sa * sb / pairs;
    return (sum - expected) / ((sa + sb) / 2 - expected);
}

START_TEST(kmeans_recovers_clusters_and_is_deterministic)
{
    size_t n = 4000;
    int k = 8;
    int32_t *truth = malloc(n * sizeof *truth);
    float *x = clustered(n, DIM, k, 0.8f, 81, truth);
    raddino_kmeans_params p = raddino_kmeans_default_params();
    p.k = k;
    p.seed = 42;
    p.iterations = 15;
    p.restarts = 1;     /* one run each: restarts have their own test below */
    raddino_kmeans_result a, b;
    raddino_status st = raddino_kmeans(x, n, DIM, &p, &a);
    ck_assert_msg(!st.code, "%s", st.message);
    st = raddino_kmeans(x, n, DIM, &p, &b);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_mem_eq(a.centroids, b.centroids, (size_t)k * DIM * sizeof *a.centroids);
    ck_assert_mem_eq(a.assignment, b.assignment, n * sizeof *a.assignment);
    ck_assert_double_eq(a.objective, b.objective);
    double ari = adjusted_rand(a.assignment, truth, n, k, k);
    ck_assert_double_ge(ari, 0.99);
    size_t total = 0;
    double objective = 0;
    for (int c = 0; c < k; c++) {
        total += a.sizes[c];
        double norm = 0;
        for (int j = 0; j < DIM; j++) norm += (double)a.centroids[c * DIM + j] * a.centroids[c * DIM + j];
        ck_assert_double_eq_tol(norm, 1.0, 1e-4);   /* spherical: unit centroids */
    }
    ck_assert_uint_eq(total, n);
    for (size_t i = 0; i < n; i++) {   /* distance = 1 - cosine to its own centroid */
        double d = 1 - cosine(x + i * DIM, a.centroids + (size_t)a.assignment[i] * DIM, DIM);
        ck_assert_double_eq_tol(a.distance[i], d, 1e-4);
        objective += d;
    }
    ck_assert_double_eq_tol(a.objective, objective, 1e-2);
    /* Silhouette: the planted k scores best, and ours matches a direct computation. */
    double s_true;
    st = raddino_silhouette(x, n, DIM, a.assignment, k, 1000, 3, 0, &s_true);
    ck_assert_msg(!st.code, "%s", st.message);
    p.k = 3;
    raddino_kmeans_result c3;
    st = raddino_kmeans(x, n, DIM, &p, &c3);
    ck_assert_msg(!st.code, "%s", st.message);
    double s3;
    st = raddino_silhouette(x, n, DIM, c3.assignment, 3, 1000, 3, 0, &s3);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_double_gt(s_true, s3);
    ck_assert_double_gt(s_true, 0.2);
    raddino_kmeans_result_free(&a);
    raddino_kmeans_result_free(&b);
    raddino_kmeans_result_free(&c3);
    free(truth);
    free(x);
}
END_TEST

START_TEST(silhouette_matches_definition)
{
    size_t n = 120;
    int k = 3;
    int32_t *label = malloc(n * sizeof *label);
    float *x = clustered(n, 16, k, 2.0f, 91, label);
    double got;
    raddino_status st = raddino_silhouette(x, n, 16, label, k, n, 1, 0, &got);   /* all rows */
    ck_assert_msg(!st.code, "%s", st.message);
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        double sum[3] = {0}, cnt[3] = {0};
        for (size_t j = 0; j < n; j++)
            if (j != i) {
                sum[label[j]] += 1 - cosine(x + i * 16, x + j * 16, 16);
                cnt[label[j]]++;
            }
        if (cnt[label[i]] == 0) continue;
        double a = sum[label[i]] / cnt[label[i]], b = 1e300;
        for (int c = 0; c < k; c++)
            if (c != label[i] && cnt[c] > 0 && sum[c] / cnt[c] < b) b = sum[c] / cnt[c];
        total += (b - a) / (a > b ? a : b);
    }
    ck_assert_double_eq_tol(got, total / n, 1e-4);
    free(label);
    free(x);
}
END_TEST

/* Restarts: run r is the single run of seed + r, and the result is the best of them. Data with
 * more groups than k, so that seeds land in different local minima. */
START_TEST(kmeans_restarts_keep_the_best_seeded_run)
{
    size_t n = 600;
    float *x = clustered(n, DIM, 9, 1.5f, 5, NULL);
    raddino_kmeans_params p = raddino_kmeans_default_params();
    p.k = 4;
    p.seed = 100;
    p.restarts = 6;
    raddino_kmeans_result all;
    raddino_status st = raddino_kmeans(x, n, DIM, &p, &all);
    ck_assert_msg(!st.code, "%s", st.message);
    ck_assert_int_eq(all.restarts, 6);
    double best = INFINITY, worst = 0;
    for (int r = 0; r < 6; r++) {
        raddino_kmeans_params one = p;
        one.seed = p.seed + (uint64_t)r;
        one.restarts = 1;
        raddino_kmeans_result single;
        st = raddino_kmeans(x, n, DIM, &one, &single);
        ck_assert_msg(!st.code, "%s", st.message);
        ck_assert_double_eq(all.objectives[r], single.objective);   /* the same run */
        if (single.objective < best) best = single.objective;
        if (single.objective > worst) worst = single.objective;
        if (r == all.best_run)
            ck_assert_mem_eq(all.assignment, single.assignment, n * sizeof *all.assignment);
        raddino_kmeans_result_free(&single);
    }
    ck_assert_double_eq(all.objective, best);
    ck_assert_double_le(all.objective, all.objectives[0]);     /* never worse than seed alone */
    ck_assert_msg(worst > best, "all seeds agree (%g): the data is too easy", best);
    raddino_kmeans_result_free(&all);
    /* The default: 10 when they fit the budget, fewer (at least 1) when they do not. */
    raddino_kmeans_params d = raddino_kmeans_default_params();
    d.k = 20;
    ck_assert_int_eq(raddino_kmeans_default_restarts(100000, 768, &d), 10);
    d.k = 100;
    ck_assert_int_eq(raddino_kmeans_default_restarts(1000000, 768, &d), 4);
    d.k = 1000;
    ck_assert_int_eq(raddino_kmeans_default_restarts(100000000, 768, &d), 1);
    free(x);
}
END_TEST

START_TEST(kmeans_bad_input)
{
    float x[4 * DIM] = {0};
    raddino_kmeans_params p = raddino_kmeans_default_params();
    p.k = 5;
    raddino_kmeans_result r;
    raddino_status st = raddino_kmeans(x, 4, DIM, &p, &r);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_ptr_null(r.centroids);
}
END_TEST

int main(void)
{
    /* Cases can be run alone: CK_RUN_CASE=recall build/test_index */
    const struct {
        const char *name;
        const TTest *tests[6];
    } cases[] = {
        {"search", {exact_matches_brute_force, fewer_than_k_and_min_score, bad_input_is_a_status,
                    auto_rule_as_documented}},
        {"recall", {ivf_recall, hnsw_recall, recall_measurement_is_right}},
        {"updates", {removed_ids_never_appear, range_search_finds_planted_duplicates}},
        {"files", {save_load_round_trip, damaged_files_are_refused}},
        {"kmeans", {kmeans_recovers_clusters_and_is_deterministic, silhouette_matches_definition,
                    kmeans_restarts_keep_the_best_seeded_run, kmeans_bad_input}},
    };
    Suite *s = suite_create("faiss_index");
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        TCase *tc = tcase_create(cases[c].name);
        tcase_set_timeout(tc, 300);
        for (int t = 0; t < 6 && cases[c].tests[t]; t++) tcase_add_test(tc, cases[c].tests[t]);
        suite_add_tcase(s, tc);
    }
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
