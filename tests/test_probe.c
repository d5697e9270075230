/* test_probe.c — the probe library: AUROC/AUPRC against direct computations (every pair, every
 * threshold) with ties, weights as repeated images, bootstrap intervals, grouped folds, the
 * L-BFGS logistic regression against a Newton-method reference written here, and the whole
 * cross-validation on separable and on shuffled labels. */
#include "raddino_probe.h"
#include "test_util.h"

#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state;
static double uniform(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}
static double gaussian(void)
{
    double u = uniform() + 1e-300, v = uniform();
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* Mann-Whitney over every (positive, negative) pair, ties one half. */
static double pairwise_auroc(const double *s, const uint8_t *y, size_t n)
{
    double num = 0, pairs = 0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            if (y[i] && !y[j]) {
                pairs++;
                num += s[i] > s[j] ? 1 : s[i] == s[j] ? 0.5 : 0;
            }
    return num / pairs;
}

/* Average precision from its definition: for each distinct threshold t (descending),
 * (recall(t) - recall(previous)) * precision(t), counting every image with score >= t. */
static double threshold_ap(const double *s, const uint8_t *y, size_t n)
{
    double P = 0, ap = 0, prev_recall = 0;
    for (size_t i = 0; i < n; i++) P += y[i];
    double last = INFINITY;
    for (;;) {
        double t = -INFINITY;   /* the next lower distinct score */
        for (size_t i = 0; i < n; i++)
            if (s[i] < last && s[i] > t) t = s[i];
        if (t == -INFINITY) break;
        double tp = 0, k = 0;
        for (size_t i = 0; i < n; i++)
            if (s[i] >= t) k++, tp += y[i];
        ap += (tp / P - prev_recall) * (tp / k);
        prev_recall = tp / P;
        last = t;
    }
    return ap;
}

START_TEST(metrics_small_cases)
{
    double s1[] = {0.1, 0.4, 0.35, 0.8};
    uint8_t y1[] = {0, 0, 1, 1};
    ck_assert_double_eq_tol(raddino_auroc(s1, y1, NULL, 4), 0.75, 1e-15);
    ck_assert_double_eq_tol(raddino_auprc(s1, y1, NULL, 4), (1.0 + 2.0 / 3.0) / 2, 1e-15);
    double s2[] = {1, 1, 0};    /* a positive tied with a negative: one half */
    uint8_t y2[] = {1, 0, 0};
    ck_assert_double_eq_tol(raddino_auroc(s2, y2, NULL, 3), 0.75, 1e-15);
    ck_assert_double_eq_tol(raddino_auprc(s2, y2, NULL, 3), 0.5, 1e-15);
    uint8_t none[] = {0, 0, 0};
    ck_assert(isnan(raddino_auroc(s2, none, NULL, 3)));
}
END_TEST

START_TEST(metrics_match_direct_computation)
{
    rng_state = 7;
    enum { N = 300 };
    double s[N], w[N];
    uint8_t y[N];
    for (int trial = 0; trial < 20; trial++) {
        for (int i = 0; i < N; i++) {
            y[i] = uniform() < 0.2 + 0.03 * trial;
            s[i] = round((uniform() + 0.3 * y[i]) * (trial % 2 ? 10 : 1000)); /* many ties */
        }
        ck_assert_double_eq_tol(raddino_auroc(s, y, NULL, N), pairwise_auroc(s, y, N), 1e-12);
        ck_assert_double_eq_tol(raddino_auprc(s, y, NULL, N), threshold_ap(s, y, N), 1e-12);
    }
    /* integer weights count an image that many times */
    double big_s[3 * N];
    uint8_t big_y[3 * N];
    size_t m = 0;
    for (int i = 0; i < N; i++) {
        w[i] = (double)(i % 4);
        for (int r = 0; r < (int)w[i]; r++) big_s[m] = s[i], big_y[m++] = y[i];
    }
    ck_assert_double_eq_tol(raddino_auroc(s, y, w, N), pairwise_auroc(big_s, big_y, m), 1e-12);
    ck_assert_double_eq_tol(raddino_auprc(s, y, w, N), threshold_ap(big_s, big_y, m), 1e-12);
}
END_TEST

START_TEST(bootstrap_interval)
{
    rng_state = 11;
    enum { N = 400 };
    double s[N];
    uint8_t y[N];
    int32_t g[N];
    for (int i = 0; i < N; i++) {
        y[i] = uniform() < 0.3;
        s[i] = uniform() + 0.5 * y[i];
        g[i] = i / 2;
    }
    raddino_probe_metrics a, b;
    ck_assert(!raddino_probe_evaluate(s, y, N, g, N / 2, 500, 3, &a).code);
    ck_assert(!raddino_probe_evaluate(s, y, N, g, N / 2, 500, 3, &b).code);
    ck_assert(a.auroc_lo < a.auroc && a.auroc < a.auroc_hi);
    ck_assert(a.auprc_lo < a.auprc && a.auprc < a.auprc_hi);
    ck_assert(a.auroc_hi - a.auroc_lo < 0.2);
    ck_assert_double_eq(a.auroc_lo, b.auroc_lo);   /* seeded */
    ck_assert_uint_eq(a.positives, (size_t)(a.prevalence * N + 0.5));
}
END_TEST

START_TEST(folds_keep_groups_together)
{
    rng_state = 5;
    enum { N = 2000, L = 3 };
    int32_t g[N], fold[N];
    uint8_t Y[N * L];
    for (int i = 0; i < N; i++) {
        g[i] = (int32_t)(uniform() * 300);       /* ~7 images per patient */
        for (int l = 0; l < L; l++) Y[i * L + l] = uniform() < 0.05 * (l + 1);
    }
    ck_assert(!raddino_probe_folds(g, 300, Y, N, L, NULL, 5, 1234, fold).code);
    int owner[300];
    for (int k = 0; k < 300; k++) owner[k] = -1;
    int size[5] = {0}, pos[5][L];
    memset(pos, 0, sizeof pos);
    for (int i = 0; i < N; i++) {
        ck_assert(fold[i] >= 0 && fold[i] < 5);
        if (owner[g[i]] < 0) owner[g[i]] = fold[i];
        ck_assert_int_eq(owner[g[i]], fold[i]);   /* a patient never in two folds */
        size[fold[i]]++;
        for (int l = 0; l < L; l++) pos[fold[i]][l] += Y[i * L + l];
    }
    for (int f = 0; f < 5; f++) {
        ck_assert(abs(size[f] - N / 5) < N / 20);
        for (int l = 0; l < L; l++) ck_assert(pos[f][l] > 0);
    }
    /* a mask leaves images out */
    uint8_t mask[N];
    for (int i = 0; i < N; i++) mask[i] = i % 3 != 0;
    ck_assert(!raddino_probe_folds(g, 300, Y, N, L, mask, 3, 1, fold).code);
    for (int i = 0; i < N; i++) ck_assert(mask[i] ? fold[i] >= 0 : fold[i] == -1);
}
END_TEST

/* Newton's method with the exact Hessian on the same scaled objective, by Gaussian
 * elimination: the reference for the L-BFGS solver. */
static void newton_reference(const double *X, int n, int d, const uint8_t *y, double C,
                             double *wb)
{
    int D = d + 1;
    double *H = calloc((size_t)D * D, sizeof *H), *g = calloc((size_t)D, sizeof *g);
    memset(wb, 0, (size_t)D * sizeof *wb);
    for (int it = 0; it < 50; it++) {
        memset(H, 0, (size_t)D * D * sizeof *H);
        memset(g, 0, (size_t)D * sizeof *g);
        for (int i = 0; i < n; i++) {
            double z = wb[d], x[16];
            for (int j = 0; j < d; j++) x[j] = X[i * d + j], z += x[j] * wb[j];
            x[d] = 1;
            double p = 1 / (1 + exp(-z)), r = p - y[i];
            for (int a = 0; a < D; a++) {
                g[a] += r * x[a] / n;
                for (int b = 0; b < D; b++) H[a * D + b] += p * (1 - p) * x[a] * x[b] / n;
            }
        }
        for (int j = 0; j < d; j++) g[j] += wb[j] / (C * n), H[j * D + j] += 1 / (C * n);
        /* solve H dx = g */
        for (int c = 0; c < D; c++)
            for (int r = c + 1; r < D; r++) {
                double f = H[r * D + c] / H[c * D + c];
                for (int k = c; k < D; k++) H[r * D + k] -= f * H[c * D + k];
                g[r] -= f * g[c];
            }
        for (int r = D - 1; r >= 0; r--) {
            double v = g[r];
            for (int k = r + 1; k < D; k++) v -= H[r * D + k] * g[k];
            g[r] = v / H[r * D + r];
        }
        for (int a = 0; a < D; a++) wb[a] -= g[a];
    }
    free(H);
    free(g);
}

START_TEST(logreg_matches_newton)
{
    rng_state = 3;
    enum { N = 80, D = 5, L = 2 };
    double X[N * D];
    uint8_t Y[N * L];
    for (int i = 0; i < N; i++) {
        double t = 0;
        for (int j = 0; j < D; j++) X[i * D + j] = gaussian(), t += X[i * D + j] * (j - 2);
        Y[i * L + 0] = t + gaussian() > 0;
        Y[i * L + 1] = X[i * D] + 2 * gaussian() > 1;
    }
    double C[L] = {0.5, 0.05}, W[D * L] = {0}, b[L] = {0};
    raddino_logreg_params p = raddino_logreg_default_params();
    p.tolerance = 1e-10;
    int iters[L];
    uint8_t conv[L];
    ck_assert(!raddino_logreg_fit(X, N, D, NULL, N, Y, L, C, &p, W, b, iters, conv).code);
    for (int l = 0; l < L; l++) {
        ck_assert_msg(conv[l], "label %d did not converge (%d iterations)", l, iters[l]);
        uint8_t y[N];
        for (int i = 0; i < N; i++) y[i] = Y[i * L + l];
        double ref[D + 1];
        newton_reference(X, N, D, y, C[l], ref);
        for (int j = 0; j < D; j++)
            ck_assert_msg(fabs(W[j * L + l] - ref[j]) < 1e-6, "label %d w%d: %.10f vs %.10f", l,
                          j, W[j * L + l], ref[j]);
        ck_assert(fabs(b[l] - ref[D]) < 1e-6);
        double grad[D + 1], w[D];
        for (int j = 0; j < D; j++) w[j] = W[j * L + l];
        raddino_logreg_objective(X, N, D, NULL, N, Y, L, l, C[l], w, b[l], grad);
        for (int j = 0; j <= D; j++) ck_assert(fabs(grad[j]) <= 1e-10);
    }
    /* a subset of rows equals fitting the packed subset */
    size_t rows[N / 2];
    for (int i = 0; i < N / 2; i++) rows[i] = (size_t)(2 * i);
    double W2[D * L] = {0}, b2[L] = {0};
    ck_assert(!raddino_logreg_fit(X, N, D, rows, N / 2, Y, L, C, &p, W2, b2, NULL, NULL).code);
    double Xs[N / 2 * D];
    uint8_t Ys[N / 2 * L];
    for (int i = 0; i < N / 2; i++) {
        memcpy(Xs + i * D, X + 2 * i * D, sizeof(double) * D);
        memcpy(Ys + i * L, Y + 2 * i * L, L);
    }
    double W3[D * L] = {0}, b3[L] = {0};
    ck_assert(!raddino_logreg_fit(Xs, N / 2, D, NULL, N / 2, Ys, L, C, &p, W3, b3, NULL, NULL).code);
    for (int k = 0; k < D * L; k++) ck_assert(fabs(W2[k] - W3[k]) < 1e-9);
}
END_TEST

/* n images in groups of 2, L = 2 labels; separable: label l shifts feature l by +-8. */
static void synthetic(float *X, uint8_t *Y, int32_t *g, int n, int d, int shuffled)
{
    for (int i = 0; i < n; i++) {
        g[i] = i / 2;
        for (int l = 0; l < 2; l++) Y[i * 2 + l] = uniform() < (l ? 0.3 : 0.5);
        for (int j = 0; j < d; j++) X[i * d + j] = (float)gaussian();
        for (int l = 0; l < 2; l++) X[i * d + l] += Y[i * 2 + l] ? 8.0f : -8.0f;
    }
    if (shuffled)   /* labels of another image: no relation to X */
        for (int i = n - 1; i > 0; i--) {
            int j = (int)(uniform() * (i + 1));
            for (int l = 0; l < 2; l++) {
                uint8_t t = Y[i * 2 + l];
                Y[i * 2 + l] = Y[j * 2 + l];
                Y[j * 2 + l] = t;
            }
        }
}

/* Brute-force cosine neighbours, best first. */
static int32_t *neighbours(const float *X, int n, int d, int m)
{
    int32_t *nb = malloc((size_t)n * m * sizeof *nb);
    double *sim = malloc((size_t)n * sizeof *sim);
    for (int i = 0; i < n; i++) {
        for (int j = 0; j < n; j++) {
            double dot = 0, a = 0, b = 0;
            for (int k = 0; k < d; k++)
                dot += X[i * d + k] * X[j * d + k], a += X[i * d + k] * X[i * d + k],
                    b += X[j * d + k] * X[j * d + k];
            sim[j] = j == i ? -INFINITY : dot / sqrt(a * b);
        }
        for (int t = 0; t < m; t++) {
            int best = 0;
            for (int j = 1; j < n; j++)
                if (sim[j] > sim[best]) best = j;
            nb[i * m + t] = best;
            sim[best] = -INFINITY;
        }
    }
    free(sim);
    return nb;
}

static void run_cv(int shuffled, double lo, double hi)
{
    rng_state = shuffled ? 99 : 42;
    enum { N = 300, D = 16, M = 60 };
    float *X = malloc(sizeof(float) * N * D);
    uint8_t Y[N * 2];
    int32_t g[N];
    synthetic(X, Y, g, N, D, shuffled);
    int32_t *nb = neighbours(X, N, D, M);
    raddino_probe_params p = raddino_probe_default_params();
    p.bootstrap = 200;
    raddino_probe_result r;
    raddino_status st = raddino_probe_cross_validate(X, N, D, Y, 2, g, N / 2, nb, M, &p, &r);
    ck_assert_msg(!st.code, "%s", st.message);
    for (int i = 0; i < N; i += 2) ck_assert_int_eq(r.fold[i], r.fold[i + 1]);
    for (int l = 0; l < 2; l++) {
        ck_assert_msg(r.logreg[l].auroc >= lo && r.logreg[l].auroc <= hi, "logreg %d: %f", l,
                      r.logreg[l].auroc);
        ck_assert_msg(r.knn[l].auroc >= lo && r.knn[l].auroc <= hi, "knn %d: %f", l,
                      r.knn[l].auroc);
        /* the reported AUROC is that of the out-of-fold scores */
        double s[N];
        uint8_t y[N];
        for (int i = 0; i < N; i++) s[i] = r.logreg_score[i * 2 + l], y[i] = Y[i * 2 + l];
        ck_assert_double_eq_tol(r.logreg[l].auroc, pairwise_auroc(s, y, N), 1e-12);
    }
    /* a trained probe scores its own training data */
    raddino_probe_model model;
    st = raddino_probe_train(X, N, D, Y, 2, g, N / 2, &p, &model);
    ck_assert_msg(!st.code, "%s", st.message);
    double *scores = malloc(sizeof(double) * N * 2);
    ck_assert(!raddino_probe_model_predict(&model, X, N, scores).code);
    if (!shuffled) {
        double s[N];
        uint8_t y[N];
        for (int i = 0; i < N; i++) s[i] = scores[i * 2], y[i] = Y[i * 2];
        ck_assert_double_eq(raddino_auroc(s, y, NULL, N), 1.0);
    }
    free(scores);
    raddino_probe_model_free(&model);
    raddino_probe_result_free(&r);
    free(nb);
    free(X);
}

START_TEST(separable_auroc_one) { run_cv(0, 1.0, 1.0); }
END_TEST

START_TEST(shuffled_auroc_near_half) { run_cv(1, 0.35, 0.65); }
END_TEST

int main(void)
{
    Suite *s = suite_create("probe");
    TCase *t = tcase_create("probe");
    tcase_set_timeout(t, 120);
    tcase_add_test(t, metrics_small_cases);
    tcase_add_test(t, metrics_match_direct_computation);
    tcase_add_test(t, bootstrap_interval);
    tcase_add_test(t, folds_keep_groups_together);
    tcase_add_test(t, logreg_matches_newton);
    tcase_add_test(t, separable_auroc_one);
    tcase_add_test(t, shuffled_auroc_near_half);
    suite_add_tcase(s, t);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
