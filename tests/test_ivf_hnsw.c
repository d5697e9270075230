/* test_ivf_hnsw.c — the in-memory IVF types "auto" picks between 200,000 and 1,000,000 vectors
 * (IVF{L}_HNSW32,Flat and IVF{L}_HNSW32,SQ8: an HNSW graph as the coarse quantizer): with every
 * list probed (and SQ8 re-ranked from float32) they return what exact search returns, ids and
 * scores; at the settings "auto" leaves them (nprobe chosen at build) recall@10 on held-out
 * queries is at least RECALL_BOUND; the recall measured at build is stored, saved and loaded;
 * the auto rule over the whole range of n. Small data only (the 1M figures are
 * bench/bench_million.c's). Threads: RADDINO_THREADS=2 (set by ctest). */
#include "raddino_index.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIM 64
#define NQ 100
#define K 10
/* At the nprobe the build chooses for RADDINO_INDEX_RECALL_TARGET (0.98) on 200 held-out
 * vectors, 100 other queries should not fall far below it. */
#define RECALL_BOUND 0.9

#define OK(expr)                                                                                \
    do {                                                                                        \
        raddino_status st_ = (expr);                                                            \
        ck_assert_msg(!st_.code, "%s: %s", #expr, st_.message);                                \
    } while (0)

/* n vectors around 200 random centres with noise of the centres' norm (as bench_million's
 * generator, smaller); a second seed draws queries near the data, not from it. */
static float *clustered(size_t n, uint64_t seed)
{
    float *c = malloc(200 * DIM * sizeof *c), *x = malloc(n * DIM * sizeof *x);
    ck_assert(c && x);
    uint64_t s = 77;
    for (size_t i = 0; i < 200 * DIM; i++) c[i] = test_rng_gauss(&s);
    s = seed;
    for (size_t i = 0; i < n; i++) {
        size_t k = test_rng_next(&s) % 200;
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = c[k * DIM + j] + test_rng_gauss(&s);
    }
    free(c);
    return x;
}

static int64_t *make_ids(size_t n)
{
    int64_t *ids = malloc(n * sizeof *ids);
    ck_assert_ptr_nonnull(ids);
    for (size_t i = 0; i < n; i++) ids[i] = 3 + 5 * (int64_t)i;   /* not row numbers */
    return ids;
}

typedef struct {
    const float *x;
    size_t n;
} rows;

static int fetch(void *user, const int64_t *ids, size_t n, float *out)
{
    const rows *r = user;
    for (size_t i = 0; i < n; i++) {
        size_t row = (size_t)((ids[i] - 3) / 5);
        if (ids[i] < 3 || row >= r->n) return 1;
        memcpy(out + i * DIM, r->x + row * DIM, DIM * sizeof *out);
    }
    return 0;
}

static raddino_index *build(const float *x, const int64_t *ids, size_t n, const char *type,
                            int nprobe, uint64_t max_memory)
{
    raddino_index_params p = raddino_index_default_params();
    p.type = type;
    p.nprobe = nprobe;
    p.max_memory = max_memory;
    p.seed = 11;
    raddino_index *ix = NULL;
    OK(raddino_index_build(x, ids, n, DIM, &p, &ix));
    return ix;
}

/* Same ids in the same order and the same scores (1e-5) as exact search. */
static void same_as_exact(const float *es, const int64_t *eid, const float *s, const int64_t *id,
                          const char *what)
{
    for (int i = 0; i < NQ * K; i++) {
        ck_assert_msg(id[i] == eid[i], "%s: query %d rank %d: id %lld, exact %lld", what, i / K,
                      i % K, (long long)id[i], (long long)eid[i]);
        ck_assert_msg(fabsf(s[i] - es[i]) <= 1e-5f, "%s: score %g, exact %g", what, s[i], es[i]);
    }
}

static double recall_of(const int64_t *eid, const int64_t *id)
{
    int hits = 0;
    for (int q = 0; q < NQ; q++)
        for (int a = 0; a < K; a++)
            for (int b = 0; b < K; b++)
                if (id[q * K + a] == eid[q * K + b]) {
                    hits++;
                    break;
                }
    return (double)hits / (NQ * K);
}

/* ---- every list probed: exact ------------------------------------------------------------ */

START_TEST(all_lists_probed_equal_exact_search)
{
    size_t n = 8000;
    float *x = clustered(n, 1), *q = clustered(NQ, 2);
    int64_t *ids = make_ids(n);
    rows r = {x, n};
    raddino_index *flat = build(x, ids, n, "flat", 0, 0);
    float es[NQ * K], s[NQ * K];
    int64_t eid[NQ * K], id[NQ * K];
    OK(raddino_index_search(flat, q, NQ, K, es, eid));

    /* float32 codes: the scanned scores are the exact cosines. */
    raddino_index *ivf = build(x, ids, n, "IVF32_HNSW32,Flat", 32, 0);
    raddino_index_info info;
    OK(raddino_index_get_info(ivf, &info));
    ck_assert_int_eq(info.nlist, 32);
    ck_assert_int_eq(info.nprobe, 32);
    ck_assert_int_eq(info.rerank, 1);
    ck_assert(!info.exact);
    OK(raddino_index_search(ivf, q, NQ, K, s, id));
    same_as_exact(es, eid, s, id, "IVF32_HNSW32,Flat, nprobe 32");
    /* every list probed: the recall measured at build is that of exact search */
    ck_assert_int_eq(info.build_recall_queries, RADDINO_INDEX_BUILD_RECALL_QUERIES);
    ck_assert_int_eq(info.build_recall_k, K);
    ck_assert_int_eq(info.build_recall_nprobe, 32);
    ck_assert_msg(info.build_recall == 1.0, "build recall %g", info.build_recall);

    /* SQ8 codes: approximate scores; re-ranked (its default, x4) from the float32 vectors. */
    raddino_index *sq = build(x, ids, n, "IVF32_HNSW32,SQ8", 32, 0);
    OK(raddino_index_get_info(sq, &info));
    ck_assert_int_eq(info.rerank, RADDINO_INDEX_RERANK_ONDISK);
    OK(raddino_index_search_rerank(sq, q, NQ, K, 0, fetch, &r, s, id));
    same_as_exact(es, eid, s, id, "IVF32_HNSW32,SQ8, nprobe 32, re-ranked");
    /* without re-ranking the scores are the codes': close, not exact */
    OK(raddino_index_search(sq, q, NQ, K, s, id));
    for (int i = 0; i < NQ * K; i++) ck_assert(fabsf(s[i] - es[i]) < 0.05f || id[i] != eid[i]);

    /* a probe count the caller sets is kept, never tuned */
    raddino_index *set = build(x, ids, n, "IVF32_HNSW32,Flat", 3, 0);
    OK(raddino_index_get_info(set, &info));
    ck_assert_int_eq(info.nprobe, 3);
    ck_assert_int_eq(info.build_recall_nprobe, 3);
    ck_assert(info.build_recall > 0 && info.build_recall <= 1);

    /* exact types measure nothing at build */
    OK(raddino_index_get_info(flat, &info));
    ck_assert_int_eq(info.build_recall_queries, 0);
    raddino_index_free(set);
    raddino_index_free(sq);
    raddino_index_free(ivf);
    raddino_index_free(flat);
    free(x);
    free(q);
    free(ids);
}
END_TEST

/* ---- "auto": nprobe chosen at build, recall, save and load -------------------------------- */

START_TEST(auto_tunes_nprobe_and_keeps_its_recall)
{
    size_t n = 20000;
    float *x = clustered(n, 3), *q = clustered(NQ, 4);
    int64_t *ids = make_ids(n);
    rows r = {x, n};
    /* 20,000 x 64: flat needs 5.3 MB, float32 IVF 5.6 MB: a 2 MB budget gets SQ8. */
    uint64_t budget = 2000000;
    char type[RADDINO_INDEX_TYPE_MAX];
    OK(raddino_index_choose_type(n, DIM, budget, type, sizeof type));
    ck_assert_str_eq(type, "IVF512_HNSW32,SQ8");
    raddino_index *ix = build(x, ids, n, "auto", 0, budget);
    raddino_index_info info;
    OK(raddino_index_get_info(ix, &info));
    ck_assert_str_eq(info.type, type);
    ck_assert_int_eq(info.nlist, 512);
    ck_assert_int_eq(info.build_recall_nprobe, info.nprobe);
    ck_assert_msg(info.build_recall >= RADDINO_INDEX_RECALL_TARGET || info.nprobe == 512,
                  "nprobe %d: build recall %g", info.nprobe, info.build_recall);
    fprintf(stderr, "auto %s: nprobe %d chosen, recall@10 at build %.4f (%d held out)\n",
            info.type, info.nprobe, info.build_recall, info.build_recall_queries);

    /* Held-out queries at the chosen settings, re-ranked as the collection searches. */
    raddino_index *flat = build(x, ids, n, "flat", 0, 0);
    float es[NQ * K], s[NQ * K];
    int64_t eid[NQ * K], id[NQ * K];
    OK(raddino_index_search(flat, q, NQ, K, es, eid));
    OK(raddino_index_search_rerank(ix, q, NQ, K, 0, fetch, &r, s, id));
    double recall = recall_of(eid, id);
    fprintf(stderr, "auto %s: recall@10 %.4f on %d other queries (bound %.2f)\n", info.type,
            recall, NQ, RECALL_BOUND);
    ck_assert_msg(recall >= RECALL_BOUND, "recall %g", recall);

    /* Saved and loaded: same type, nprobe, recall at build; same answers. */
    char path[512];
    snprintf(path, sizeof path, "%s/auto.faiss", test_temp_dir());
    OK(raddino_index_save(ix, path, NULL));
    raddino_index *back = NULL;
    OK(raddino_index_load(path, NULL, &back, NULL));
    raddino_index_info bi;
    OK(raddino_index_get_info(back, &bi));
    ck_assert_str_eq(bi.type, info.type);
    ck_assert_int_eq(bi.nprobe, info.nprobe);
    ck_assert_int_eq(bi.rerank, info.rerank);
    ck_assert(bi.build_recall == info.build_recall);
    ck_assert_int_eq(bi.build_recall_queries, info.build_recall_queries);
    ck_assert_int_eq(bi.build_recall_k, info.build_recall_k);
    ck_assert_int_eq(bi.build_recall_nprobe, info.build_recall_nprobe);
    float s2[NQ * K];
    int64_t id2[NQ * K];
    OK(raddino_index_search_rerank(back, q, NQ, K, 0, fetch, &r, s2, id2));
    ck_assert(memcmp(id, id2, sizeof id) == 0);
    ck_assert(memcmp(s, s2, sizeof s) == 0);
    /* removing works in place (an HNSW over the vectors would have to be rebuilt) */
    size_t removed = 0;
    OK(raddino_index_remove(back, ids, 10, &removed));
    ck_assert_uint_eq(removed, 10);
    raddino_index_free(back);
    unlink(path);
    raddino_index_free(flat);
    raddino_index_free(ix);
    free(x);
    free(q);
    free(ids);
}
END_TEST

/* ---- the rule ------------------------------------------------------------------------------ */

static const char *choose(size_t n, int dim, uint64_t budget)
{
    static char type[RADDINO_INDEX_TYPE_MAX];
    OK(raddino_index_choose_type(n, dim, budget, type, sizeof type));
    return type;
}

START_TEST(auto_rule_over_the_range)
{
    uint64_t MB = 1000000, big = 1000000 * MB;
    /* flat to 200,000 when it fits */
    ck_assert_str_eq(choose(1, 768, big), "flat");
    ck_assert_str_eq(choose(10000, 768, 1), "flat");
    ck_assert_str_eq(choose(200000, 768, big), "flat");
    /* then IVF, 4 sqrt(n) lists (power of two), HNSW32 coarse quantizer, float32 codes */
    ck_assert_str_eq(choose(200001, 768, big), "IVF2048_HNSW32,Flat");
    ck_assert_str_eq(choose(500000, 768, big), "IVF2048_HNSW32,Flat");   /* 2828 -> 2048 */
    ck_assert_str_eq(choose(700000, 768, big), "IVF4096_HNSW32,Flat");   /* 3347 -> 4096 */
    ck_assert_str_eq(choose(1000000, 768, big), "IVF4096_HNSW32,Flat");
    /* 1M float32: 3.08 GB + 4096 x 3392 = 3.094 GB */
    ck_assert_str_eq(choose(1000000, 768, 3100 * MB), "IVF4096_HNSW32,Flat");
    ck_assert_str_eq(choose(1000000, 768, 3090 * MB), "IVF4096_HNSW32,SQ8");
    /* SQ8: 776 MB + 13.9 MB */
    ck_assert_str_eq(choose(1000000, 768, 791 * MB), "IVF4096_HNSW32,SQ8");
    ck_assert_str_eq(choose(1000000, 768, 789 * MB), "IVF4096,PQ96np");
    /* 200,000 when flat misses the budget: SQ8 in 162 MB */
    ck_assert_str_eq(choose(200000, 768, 600 * MB), "IVF2048_HNSW32,SQ8");
    ck_assert_str_eq(choose(1000000, 768, 54 * MB), "IVF4096,PQ32np");
    char type[64];
    raddino_status st = raddino_index_choose_type(1000000, 768, 1 * MB, type, sizeof type);
    ck_assert_int_eq(st.code, RADDINO_ERR_TOO_LARGE);
    /* past 1,000,000: on disk, whatever the budget */
    ck_assert_str_eq(choose(1000001, 768, big), "ondisk:IVF1024,SQ8");
    ck_assert_str_eq(choose(10000000, 768, 1), "ondisk:IVF4096,SQ8");
    /* small n: lists hold at least 39 vectors */
    ck_assert_str_eq(choose(20000, DIM, 2 * MB), "IVF512_HNSW32,SQ8");
    ck_assert_str_eq(choose(12000, DIM, 2 * MB), "IVF256_HNSW32,SQ8");
    /* no size the rule picks is a plain HNSW over the vectors any more */
    for (size_t n = 1000; n <= 1000000; n = n * 3 / 2)
        ck_assert_msg(strncmp(choose(n, 768, 0), "HNSW", 4) != 0, "n %zu", n);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("ivf_hnsw");
    TCase *tc = tcase_create("ivf_hnsw");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, all_lists_probed_equal_exact_search);
    tcase_add_test(tc, auto_tunes_nprobe_and_keeps_its_recall);
    tcase_add_test(tc, auto_rule_over_the_range);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
