/* test_analysis.c — analysis/raddino_analysis.h: the 2-D map against a known geometry, the
 * single-linkage groups, and the retrieval metrics against values worked out by hand. The
 * commands' outputs built on them are tests/test_cluster.sh's, test_search.sh's (dedup) and
 * test_probe.sh's (eval). */
#include "raddino_analysis.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Points in 3-D whose normalised forms spread widely along one direction and little along a
 * second: PC 1 is that direction, PC 2 the other; the map is centred. */
START_TEST(pca2_finds_the_spread)
{
    enum { N = 41, D = 3 };
    float v[N * D], xy[2 * N], again[2 * N];
    for (int i = 0; i < N; i++) {
        double t = (i - 20) / 20.0;             /* -1 .. 1 */
        v[i * D + 0] = 1.0f;                    /* every vector near (1, 0, 0) ... */
        v[i * D + 1] = (float)(0.5 * t);        /* ... spread along y ... */
        v[i * D + 2] = (float)(0.05 * (i % 2 ? 1 : -1));   /* ... a little along z */
    }
    ck_assert_int_eq(raddino_pca2(v, N, D, xy).code, 0);
    double mx = 0, my = 0, vx = 0, vy = 0;
    for (int i = 0; i < N; i++) mx += xy[2 * i], my += xy[2 * i + 1];
    ck_assert_double_eq_tol(mx / N, 0, 1e-6);
    ck_assert_double_eq_tol(my / N, 0, 1e-6);
    for (int i = 0; i < N; i++) vx += xy[2 * i] * xy[2 * i], vy += xy[2 * i + 1] * xy[2 * i + 1];
    ck_assert(vx > 20 * vy);                    /* PC 1 holds the spread */
    /* PC 1 is monotone in t (up to its sign), PC 2 alternates with z. */
    double sign = xy[2 * (N - 1)] > xy[0] ? 1 : -1;
    for (int i = 1; i < N; i++) ck_assert(sign * (xy[2 * i] - xy[2 * (i - 1)]) > 0);
    for (int i = 1; i < N; i++) ck_assert(xy[2 * i + 1] * xy[2 * (i - 1) + 1] < 0);
    /* The same input, the same map, bit for bit. */
    ck_assert_int_eq(raddino_pca2(v, N, D, again).code, 0);
    ck_assert_int_eq(memcmp(xy, again, sizeof xy), 0);
    ck_assert_int_ne(raddino_pca2(v, N, 0, xy).code, 0);
}
END_TEST

START_TEST(links_make_groups_rooted_at_their_smallest_item)
{
    size_t parent[8];
    raddino_links_init(parent, 8);
    raddino_links_unite(parent, 5, 2);
    raddino_links_unite(parent, 7, 5);
    raddino_links_unite(parent, 3, 4);
    raddino_links_unite(parent, 4, 3);          /* twice: nothing changes */
    size_t want[8] = {0, 1, 2, 3, 3, 2, 6, 2};
    for (size_t i = 0; i < 8; i++) ck_assert_uint_eq(raddino_links_root(parent, i), want[i]);
    raddino_links_unite(parent, 7, 3);          /* two groups merge under 2 */
    for (size_t i = 2; i < 6; i++) ck_assert_uint_eq(raddino_links_root(parent, i), 2);
    ck_assert_uint_eq(raddino_links_root(parent, 6), 6);
}
END_TEST

/* Ranks 1..5 relevant, not, relevant, not, not; 3 relevant in all (one never retrieved). */
START_TEST(retrieval_metrics_by_hand)
{
    const unsigned char rel[5] = {1, 0, 1, 0, 0};
    const int ks[4] = {1, 2, 5, 10};
    double p[4], r[4], ap;
    raddino_retrieval_metrics(rel, 5, 3, ks, 4, p, r, &ap);
    ck_assert_double_eq_tol(p[0], 1.0, 1e-15);
    ck_assert_double_eq_tol(p[1], 0.5, 1e-15);
    ck_assert_double_eq_tol(p[2], 2.0 / 5, 1e-15);
    ck_assert_double_eq_tol(p[3], 2.0 / 10, 1e-15);    /* fewer than k: all five seen */
    ck_assert_double_eq_tol(r[0], 1.0 / 3, 1e-15);
    ck_assert_double_eq_tol(r[1], 1.0 / 3, 1e-15);
    ck_assert_double_eq_tol(r[2], 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(r[3], 2.0 / 3, 1e-15);
    ck_assert_double_eq_tol(ap, (1.0 / 1 + 2.0 / 3) / 3, 1e-15);
    const unsigned char all[3] = {1, 1, 1};
    raddino_retrieval_metrics(all, 3, 3, ks, 2, p, r, &ap);
    ck_assert_double_eq_tol(ap, 1.0, 1e-15);
    ck_assert_double_eq_tol(r[1], 2.0 / 3, 1e-15);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("analysis");
    TCase *t = tcase_create("analysis");
    tcase_add_test(t, pca2_finds_the_spread);
    tcase_add_test(t, links_make_groups_rooted_at_their_smallest_item);
    tcase_add_test(t, retrieval_metrics_by_hand);
    suite_add_tcase(s, t);
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
