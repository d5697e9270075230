/* test_ivf.c — the IVF index at scale: trained once, built in 3 parts, merged into one on-disk
 * (memory-mapped) index that searches exactly like the same IVF built in one piece; its recall
 * against exact search; re-ranking by exact cosine; damaged index and lists files refused
 * cleanly; the auto rule's on-disk choice. Threads: RADDINO_THREADS=2 (set by ctest). */
#include "raddino_index.h"
#include "test_util.h"

#include <check.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DIM 128
#define N 30000
#define NQ 100
#define K 10
#define TYPE "IVF64,SQ8"

/* n vectors around 300 random centres, noise equal to the centres' norm: neighbours within a
 * cluster are a real search problem. The first NQ rows of a second draw are the queries. */
static float *clustered(size_t n, uint64_t seed)
{
    float *c = malloc(300 * DIM * sizeof *c), *x = malloc(n * DIM * sizeof *x);
    ck_assert(c && x);
    uint64_t s = 99;   /* the same centres for data and queries */
    for (size_t i = 0; i < 300 * DIM; i++) c[i] = test_rng_gauss(&s);
    s = seed;
    for (size_t i = 0; i < n; i++) {
        size_t k = test_rng_next(&s) % 300;
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = c[k * DIM + j] + test_rng_gauss(&s);
    }
    free(c);
    return x;
}

static int64_t *make_ids(size_t n)
{
    int64_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++) ids[i] = 10 + 7 * (int64_t)i;   /* not row numbers */
    return ids;
}

static size_t row_of(int64_t id) { return (size_t)((id - 10) / 7); }

static double cosine(const float *a, const float *b)
{
    double dot = 0, na = 0, nb = 0;
    for (int j = 0; j < DIM; j++) {
        dot += (double)a[j] * b[j];
        na += (double)a[j] * a[j];
        nb += (double)b[j] * b[j];
    }
    return dot / sqrt(na * nb);
}

typedef struct {
    const float *x;
    int calls;
} store;

static int fetch(void *user, const int64_t *ids, size_t n, float *out)
{
    store *s = user;
    s->calls++;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 10 || row_of(ids[i]) >= N) return 1;
        memcpy(out + i * DIM, s->x + row_of(ids[i]) * DIM, DIM * sizeof *out);
    }
    return 0;
}

#define OK(expr)                                                                                \
    do {                                                                                        \
        raddino_status st_ = (expr);                                                            \
        ck_assert_msg(!st_.code, "%s: %s", #expr, st_.message);                                \
    } while (0)

/* Everything the cases share: data, the one-piece index, the parts merged and saved. */
typedef struct {
    float *x, *q;
    int64_t *ids;
    const char *dir;
    char index_path[512], lists_path[512];
    raddino_index *whole, *merged;
} fixture;

static void setup(fixture *f)
{
    memset(f, 0, sizeof *f);
    f->x = clustered(N, 1);
    f->q = clustered(NQ, 2);
    f->ids = make_ids(N);
    f->dir = test_temp_dir();
    snprintf(f->index_path, sizeof f->index_path, "%s/c.faiss", f->dir);
    snprintf(f->lists_path, sizeof f->lists_path, "%s/c.faiss.0001.ivfdata", f->dir);

    /* In one piece: raddino_index_build trains on its own seeded sample of 4000 rows. */
    raddino_index_params p = raddino_index_default_params();
    p.type = TYPE;
    p.train_size = 4000;
    p.seed = 5;
    p.nprobe = 8;
    OK(raddino_index_build(f->x, f->ids, N, DIM, &p, &f->whole));

    /* In parts: the same sample, trained once; 3 shards of 10,000. */
    size_t *rows;
    OK(raddino_index_sample_rows(N, 4000, 5, &rows));
    float *sample = malloc(4000 * DIM * sizeof *sample);
    for (size_t i = 0; i < 4000; i++) memcpy(sample + i * DIM, f->x + rows[i] * DIM, DIM * 4);
    free(rows);
    p.type = "ondisk:" TYPE;
    raddino_index *trained, *parts[3];
    OK(raddino_index_ivf_train(sample, 4000, DIM, &p, &trained));
    free(sample);
    for (int i = 0; i < 3; i++)
        OK(raddino_index_ivf_add_part(trained, f->x + (size_t)i * 10000 * DIM,
                                      f->ids + (size_t)i * 10000, 10000, &parts[i]));
    raddino_index *built;
    OK(raddino_index_ivf_merge_parts(trained, parts, 3, f->lists_path, &built));
    for (int i = 0; i < 3; i++) raddino_index_free(parts[i]);
    raddino_index_free(trained);
    raddino_index_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.generation = 9;
    OK(raddino_index_save(built, f->index_path, &meta));
    raddino_index_free(built);
    /* What a search process does: load the pair. */
    raddino_index_meta loaded;
    OK(raddino_index_load(f->index_path, NULL, &f->merged, &loaded));
    ck_assert_str_eq(loaded.type, "ondisk:" TYPE);
    ck_assert_str_eq(loaded.lists_file, "c.faiss.0001.ivfdata");
    ck_assert_int_eq(loaded.ntotal, N);
}

static void teardown(fixture *f)
{
    raddino_index_free(f->whole);
    raddino_index_free(f->merged);
    free(f->x);
    free(f->q);
    free(f->ids);
}

/* Exact top-K ids of the queries (flat index). */
static void exact(const fixture *f, float *scores, int64_t *ids)
{
    raddino_index_params p = raddino_index_default_params();
    raddino_index *flat;
    OK(raddino_index_build(f->x, f->ids, N, DIM, &p, &flat));
    OK(raddino_index_search(flat, f->q, NQ, K, scores, ids));
    raddino_index_free(flat);
}

static double recall_at_k(const int64_t *found, const int64_t *truth)
{
    size_t hits = 0;
    for (size_t i = 0; i < NQ; i++)
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++)
                if (found[i * K + a] == truth[i * K + b]) {
                    hits++;
                    break;
                }
    return (double)hits / (NQ * K);
}

START_TEST(parts_merged_on_disk_equal_one_piece)
{
    fixture f;
    setup(&f);
    raddino_index_info wi, mi;
    OK(raddino_index_get_info(f.whole, &wi));
    OK(raddino_index_get_info(f.merged, &mi));
    ck_assert_int_eq(mi.on_disk, 1);
    ck_assert_int_eq(wi.on_disk, 0);
    ck_assert_int_eq(mi.ntotal, N);
    ck_assert_int_eq(mi.nlist, 64);
    ck_assert_int_eq(mi.nprobe, 8);
    ck_assert_int_eq(mi.rerank, RADDINO_INDEX_RERANK_ONDISK);
    ck_assert_ptr_nonnull(strstr(mi.lists_path, "c.faiss.0001.ivfdata"));
    ck_assert_uint_ge(mi.lists_bytes, (uint64_t)N * (DIM + 8));
    /* The search process holds the quantizer and list table, not the codes. */
    ck_assert_uint_lt(mi.memory_bytes, wi.memory_bytes / 4);

    static float ws[NQ * K], ms[NQ * K];
    static int64_t wid[NQ * K], mid[NQ * K];
    OK(raddino_index_search(f.whole, f.q, NQ, K, ws, wid));
    OK(raddino_index_search(f.merged, f.q, NQ, K, ms, mid));
    for (size_t i = 0; i < NQ * K; i++) {
        ck_assert_msg(wid[i] == mid[i], "result %zu: id %lld in one piece, %lld merged", i,
                      (long long)wid[i], (long long)mid[i]);
        ck_assert_msg(ws[i] == ms[i], "result %zu: score %.9g in one piece, %.9g merged", i,
                      ws[i], ms[i]);
    }
    static float es[NQ * K];
    static int64_t eid[NQ * K];
    exact(&f, es, eid);
    double r = recall_at_k(mid, eid);
    printf("on-disk %s from 3 parts, nprobe 8: recall@10 %.4f against exact search (%d queries,"
           " %d vectors)\n", TYPE, r, NQ, N);
    ck_assert_msg(r >= 0.80, "recall@10 %.4f below 0.80", r);
    teardown(&f);
}
END_TEST

START_TEST(rerank_gives_exact_cosines)
{
    fixture f;
    setup(&f);
    static float es[NQ * K], rs[NQ * K], ps[NQ * K], ls[NQ * K * RADDINO_INDEX_RERANK_ONDISK];
    static int64_t eid[NQ * K], rid[NQ * K], pid[NQ * K], lid[NQ * K * RADDINO_INDEX_RERANK_ONDISK];
    const int L = K * RADDINO_INDEX_RERANK_ONDISK;
    exact(&f, es, eid);
    store s = {f.x, 0};
    OK(raddino_index_search_rerank(f.merged, f.q, NQ, K, 0, fetch, &s, rs, rid));
    ck_assert_int_eq(s.calls, NQ);
    OK(raddino_index_search(f.merged, f.q, NQ, K, ps, pid));
    OK(raddino_index_search(f.merged, f.q, NQ, L, ls, lid));   /* the shortlists */
    size_t same_rows = 0, full_rows = 0;
    for (size_t i = 0; i < NQ; i++) {
        for (int j = 0; j < K; j++) {
            size_t at = i * K + j;
            ck_assert(rid[at] >= 0);
            /* Every score is the exact cosine of its vector, and rows are sorted. */
            double c = cosine(f.q + i * DIM, f.x + row_of(rid[at]) * DIM);
            ck_assert_msg(fabs(rs[at] - c) < 1e-5, "score %.7f, exact cosine %.7f", rs[at], c);
            if (j) ck_assert(rs[at - 1] >= rs[at]);
        }
        /* Where the shortlist holds the true neighbours, ranks and scores are exact search's. */
        int shortlisted = 1;
        for (int j = 0; j < K && shortlisted; j++) {
            int in = 0;
            for (int t = 0; t < L; t++) in |= lid[i * L + t] == eid[i * K + j];
            shortlisted = in;
        }
        if (!shortlisted) continue;
        full_rows++;
        int same = 1;
        for (int j = 0; j < K; j++)
            same &= rid[i * K + j] == eid[i * K + j] && fabsf(rs[i * K + j] - es[i * K + j]) < 1e-5f;
        same_rows += same;
    }
    double r_plain = recall_at_k(pid, eid), r_rerank = recall_at_k(rid, eid);
    printf("re-ranked x%d: recall@10 %.4f (without: %.4f); %zu of %zu rows holding the true top 10"
           " equal exact search\n", RADDINO_INDEX_RERANK_ONDISK, r_rerank, r_plain, same_rows,
           full_rows);
    ck_assert(r_rerank >= r_plain);
    ck_assert_uint_gt(full_rows, NQ / 2);
    /* Ties aside (none in random data), the same set means the same order. */
    ck_assert_uint_eq(same_rows, full_rows);
    /* factor 1 is the plain search; a failing fetch is a clean error. */
    OK(raddino_index_search_rerank(f.merged, f.q, NQ, K, 1, fetch, &s, rs, rid));
    ck_assert_mem_eq(rid, pid, sizeof pid);
    store none = {NULL, 0};
    raddino_status st = raddino_index_search_rerank(f.merged, f.q, 1, K, 0, NULL, &none, rs, rid);
    ck_assert_int_eq(st.code, 0);
    teardown(&f);
}
END_TEST

static void copy_file(const char *from, const char *to)
{
    size_t size;
    void *data = test_read_file(from, &size);
    ck_assert_ptr_nonnull(data);
    FILE *o = fopen(to, "wb");
    ck_assert_ptr_nonnull(o);
    ck_assert_uint_eq(fwrite(data, 1, size, o), size);
    fclose(o);
    free(data);
}

static void flip_byte(const char *path, off_t at)
{
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    ck_assert_int_eq(pwrite(fd, &b, 1, at), 1);
    close(fd);
}

static void expect_refused(const char *index_path, int code, const char *name)
{
    raddino_index *ix = NULL;
    raddino_status st = raddino_index_load(index_path, NULL, &ix, NULL);
    ck_assert_msg(st.code == code, "expected code %d, got %d: %s", code, st.code, st.message);
    ck_assert_ptr_null(ix);
    ck_assert_msg(strstr(st.message, name), "message '%s' names no %s", st.message, name);
    ck_assert_ptr_null(strchr(st.message, '\n'));
}

START_TEST(damaged_files_are_refused)
{
    fixture f;
    setup(&f);
    OK(raddino_index_verify_lists(f.index_path));
    struct stat sb;
    ck_assert_int_eq(stat(f.lists_path, &sb), 0);
    char saved[600];
    snprintf(saved, sizeof saved, "%s.orig", f.lists_path);
    copy_file(f.lists_path, saved);

    /* Truncated lists file: its size no longer matches what the index recorded. */
    ck_assert_int_eq(truncate(f.lists_path, sb.st_size / 2), 0);
    expect_refused(f.index_path, RADDINO_ERR_FORMAT, "c.faiss.0001.ivfdata");
    /* Missing. */
    unlink(f.lists_path);
    expect_refused(f.index_path, RADDINO_ERR_IO, "c.faiss.0001.ivfdata");
    /* A byte changed in the first MiB: caught at load. */
    copy_file(saved, f.lists_path);
    flip_byte(f.lists_path, 100);
    expect_refused(f.index_path, RADDINO_ERR_FORMAT, "checksum");
    /* A byte changed in the middle: load does not read it (mapping is the point), the full
     * verification does. */
    copy_file(saved, f.lists_path);
    ck_assert_int_gt(sb.st_size, 3 << 20);
    flip_byte(f.lists_path, sb.st_size / 2);
    raddino_index *ix;
    OK(raddino_index_load(f.index_path, NULL, &ix, NULL));
    raddino_index_free(ix);
    raddino_status st = raddino_index_verify_lists(f.index_path);
    ck_assert_int_eq(st.code, RADDINO_ERR_FORMAT);
    ck_assert_ptr_nonnull(strstr(st.message, "checksum"));
    copy_file(saved, f.lists_path);
    /* The index file damaged or truncated: the footer checksum, as for every type. */
    char index_copy[600];
    snprintf(index_copy, sizeof index_copy, "%s.orig", f.index_path);
    copy_file(f.index_path, index_copy);
    flip_byte(f.index_path, 40);
    expect_refused(f.index_path, RADDINO_ERR_FORMAT, "c.faiss");
    copy_file(index_copy, f.index_path);
    ck_assert_int_eq(stat(f.index_path, &sb), 0);
    ck_assert_int_eq(truncate(f.index_path, sb.st_size - 7), 0);
    expect_refused(f.index_path, RADDINO_ERR_FORMAT, "c.faiss");
    copy_file(index_copy, f.index_path);

    /* The pair moved to another folder together still loads (the lists are found beside). */
    const char *dir2 = test_temp_dir();
    char moved[600], moved_lists[600];
    snprintf(moved, sizeof moved, "%s/c.faiss", dir2);
    snprintf(moved_lists, sizeof moved_lists, "%s/c.faiss.0001.ivfdata", dir2);
    ck_assert_int_eq(rename(f.index_path, moved), 0);
    ck_assert_int_eq(rename(f.lists_path, moved_lists), 0);
    OK(raddino_index_load(moved, NULL, &ix, NULL));
    raddino_index_info info;
    OK(raddino_index_get_info(ix, &info));
    ck_assert_str_eq(info.lists_path, moved_lists);
    /* Read-only: changes are refused cleanly, never written into the mapped file. */
    st = raddino_index_add(ix, f.x, f.ids, 10);
    ck_assert_int_ne(st.code, 0);
    int64_t gone = f.ids[0];
    st = raddino_index_remove(ix, &gone, 1, NULL);
    ck_assert_int_ne(st.code, 0);
    OK(raddino_index_verify_lists(moved));
    raddino_index_free(ix);
    unlink(saved);
    unlink(index_copy);
    teardown(&f);
}
END_TEST

START_TEST(refusals_and_the_auto_rule)
{
    char type[RADDINO_INDEX_TYPE_MAX];
    OK(raddino_index_choose_type(2000000, 768, 0, type, sizeof type));
    ck_assert_str_eq(type, "ondisk:IVF1024,SQ8");
    OK(raddino_index_choose_type(10000000, 768, 1, type, sizeof type));
    ck_assert_str_eq(type, "ondisk:IVF4096,SQ8");
    OK(raddino_index_choose_type(100000000, 768, 0, type, sizeof type));
    ck_assert_str_eq(type, "ondisk:IVF8192,SQ8");
    OK(raddino_index_choose_type(1000000, 768, 4000000000ull, type, sizeof type));
    ck_assert_str_eq(type, "IVF4096_HNSW32,Flat");   /* at the threshold: in memory */

    float *x = clustered(2000, 3);
    int64_t *ids = make_ids(2000);
    raddino_index_params p = raddino_index_default_params();
    p.type = "ondisk:IVF16,Flat";
    raddino_index *ix = NULL;
    raddino_status st = raddino_index_build(x, ids, 2000, DIM, &p, &ix);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(st.message, "in parts"));
    p.type = "ondisk:HNSW32";
    st = raddino_index_ivf_train(x, 2000, DIM, &p, &ix);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_ptr_null(ix);
    /* Parts of two trainings are not merged. */
    p.type = "ondisk:IVF16,Flat";
    raddino_index *t1, *t2, *parts[2], *merged = NULL;
    OK(raddino_index_ivf_train(x, 1000, DIM, &p, &t1));
    OK(raddino_index_ivf_train(x + 1000 * DIM, 1000, DIM, &p, &t2));
    OK(raddino_index_ivf_add_part(t1, x, ids, 1000, &parts[0]));
    OK(raddino_index_ivf_add_part(t2, x + 1000 * DIM, ids + 1000, 1000, &parts[1]));
    char lists[512];
    snprintf(lists, sizeof lists, "%s/x.ivfdata", test_temp_dir());
    st = raddino_index_ivf_merge_parts(t1, parts, 2, lists, &merged);
    ck_assert_int_ne(st.code, 0);
    ck_assert_ptr_null(merged);
    ck_assert_ptr_null(strchr(st.message, '\n'));
    /* A lists file outside the index file's folder cannot be saved with it. */
    OK(raddino_index_ivf_merge_parts(t1, parts, 1, lists, &merged));
    char elsewhere[512];
    snprintf(elsewhere, sizeof elsewhere, "%s/x.faiss", test_temp_dir());
    st = raddino_index_save(merged, elsewhere, NULL);
    ck_assert_int_eq(st.code, RADDINO_ERR_ARGUMENT);
    ck_assert_ptr_nonnull(strstr(st.message, "folder"));
    raddino_index_free(merged);
    for (int i = 0; i < 2; i++) raddino_index_free(parts[i]);
    raddino_index_free(t1);
    raddino_index_free(t2);
    free(x);
    free(ids);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ivf");
    TCase *tc = tcase_create("ondisk");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, parts_merged_on_disk_equal_one_piece);
    tcase_add_test(tc, rerank_gives_exact_cosines);
    tcase_add_test(tc, damaged_files_are_refused);
    tcase_add_test(tc, refusals_and_the_auto_rule);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
