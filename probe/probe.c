/* probe.c — the probe protocol: standardisation, C and k chosen by inner cross-validation,
 * out-of-fold scores from outer stratified group folds, metrics with bootstrap intervals.
 *
 * Memory: the standardised training rows of one split are packed as doubles (n x d x 8 bytes
 * at most: 614 MB for 100,000 x 768), with the held-out rows beside them; one split at a time. */
#include "probe_internal.h"

#include <cblas.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const double default_c[] = {1e-4, 1e-3, 1e-2, 1e-1, 1};
static const int default_k[] = {1, 5, 10, 20, 50};

raddino_probe_params raddino_probe_default_params(void)
{
    raddino_probe_params p;
    memset(&p, 0, sizeof p);
    p.methods = RADDINO_PROBE_LOGREG | RADDINO_PROBE_KNN;
    p.folds = 5;
    p.inner_folds = 3;
    p.bootstrap = 1000;
    p.seed = 1234;
    p.logreg = raddino_logreg_default_params();
    return p;
}

static raddino_status nomem(void)
{
    return raddino_status_error(RADDINO_ERR_NOMEM, "probe: out of memory");
}

/* mean and scale over the rows where mask[i] == want (scale 1 for constant features). */
static void fit_scaler(const float *X, size_t n, int d, const int32_t *part, int32_t want,
                       bool except, double *mean, double *scale)
{
    size_t cnt = 0;
    memset(mean, 0, (size_t)d * sizeof *mean);
    memset(scale, 0, (size_t)d * sizeof *scale);
    for (size_t i = 0; i < n; i++) {
        if (part[i] < 0 || (except ? part[i] == want : part[i] != want)) continue;
        cnt++;
        const float *x = X + i * (size_t)d;
        for (int j = 0; j < d; j++) mean[j] += x[j];
    }
    for (int j = 0; j < d; j++) mean[j] /= cnt ? (double)cnt : 1.0;
    for (size_t i = 0; i < n; i++) {
        if (part[i] < 0 || (except ? part[i] == want : part[i] != want)) continue;
        const float *x = X + i * (size_t)d;
        for (int j = 0; j < d; j++) {
            double c = x[j] - mean[j];
            scale[j] += c * c;
        }
    }
    for (int j = 0; j < d; j++) {
        double sd = cnt ? sqrt(scale[j] / (double)cnt) : 0;
        scale[j] = sd > 1e-12 ? sd : 1.0;
    }
}

static void standardise_rows(const float *X, int d, const size_t *rows, size_t nr,
                             const double *mean, const double *scale, double *out)
{
#pragma omp parallel for schedule(static)
    for (size_t k = 0; k < nr; k++) {
        const float *x = X + rows[k] * (size_t)d;
        double *o = out + k * (size_t)d;
        for (int j = 0; j < d; j++) o[j] = (x[j] - mean[j]) / scale[j];
    }
}

static void predict_rows(const double *Z, size_t nr, int d, const double *W, const double *b,
                         int L, double *out)
{
    for (size_t k = 0; k < nr; k++)
        for (int l = 0; l < L; l++) out[k * (size_t)L + l] = b[l];
    if (nr)
        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, L, d, 1.0, Z, d, W, L,
                    1.0, out, L);
    for (size_t k = 0; k < nr * (size_t)L; k++) out[k] = 1.0 / (1.0 + exp(-out[k]));
}

/* One split: standardise on the rows of `part` other than `held` (part >= 0), fit with C
 * (per label, or the grid one after another with warm starts), score the `held` rows into
 * scores (n x L, rows of the split only; grid: n_c planes). */
typedef struct {
    const float *X;
    size_t n;
    int d;
    const uint8_t *Y;
    int L;
    const raddino_probe_params *p;
    double *mean, *scale, *W, *b, *Ztrain, *Ztest, *out, *Cl, *gram;
    uint8_t *Ytrain;
    size_t *train, *test;
    int max_iterations_hit;
} split_ws;

static raddino_status split_fit(split_ws *w, const int32_t *part, int32_t held,
                                const double *C, int n_c, bool per_label, double *scores)
{
    size_t nt = 0, nh = 0;
    for (size_t i = 0; i < w->n; i++) {
        if (part[i] < 0) continue;
        if (part[i] == held) w->test[nh++] = i;
        else w->train[nt++] = i;
    }
    if (!nt) return raddino_status_ok();
    fit_scaler(w->X, w->n, w->d, part, held, true, w->mean, w->scale);
    standardise_rows(w->X, w->d, w->train, nt, w->mean, w->scale, w->Ztrain);
    standardise_rows(w->X, w->d, w->test, nh, w->mean, w->scale, w->Ztest);
    for (size_t k = 0; k < nt; k++)
        memcpy(w->Ytrain + k * (size_t)w->L, w->Y + w->train[k] * (size_t)w->L, (size_t)w->L);
    memset(w->W, 0, (size_t)w->d * w->L * sizeof *w->W);
    memset(w->b, 0, (size_t)w->L * sizeof *w->b);
    int planes = per_label ? 1 : n_c;
    uint8_t conv[w->L];
    /* the Gram matrix of these rows serves every fit of the grid */
    cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, w->d, (int)nt, 1.0 / (double)nt,
                w->Ztrain, w->d, 0.0, w->gram, w->d);
    raddino_logreg_params lp = w->p->logreg;
    lp.gram = w->gram;
    for (int c = 0; c < planes; c++) {
        const double *Cv = C;
        if (!per_label) {
            for (int l = 0; l < w->L; l++) w->Cl[l] = C[c];
            Cv = w->Cl;
        }
        raddino_status st = raddino_logreg_fit(w->Ztrain, nt, w->d, NULL, nt, w->Ytrain, w->L,
                                               Cv, &lp, w->W, w->b, NULL, conv);
        if (st.code) return st;
        for (int l = 0; l < w->L; l++) w->max_iterations_hit += !conv[l];
        predict_rows(w->Ztest, nh, w->d, w->W, w->b, w->L, w->out);
        double *plane = scores + (size_t)c * w->n * w->L;
        for (size_t k = 0; k < nh; k++)
            memcpy(plane + w->test[k] * (size_t)w->L, w->out + k * (size_t)w->L,
                   (size_t)w->L * sizeof(double));
    }
    return raddino_status_ok();
}

/* AUROC of label l over the rows with part >= 0, scores (n x L). */
static double part_auroc(const double *scores, const uint8_t *Y, size_t n, int L, int l,
                         const int32_t *part, double *sbuf, uint8_t *ybuf)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (part[i] < 0) continue;
        sbuf[m] = scores[i * (size_t)L + l];
        ybuf[m++] = Y[i * (size_t)L + l];
    }
    return raddino_auroc(sbuf, ybuf, NULL, m);
}

/* The inner folds of the rows where outer[i] != f (outer[i] >= 0): inner[i], -1 elsewhere. */
static raddino_status inner_folds(const int32_t *group, int32_t n_groups, const uint8_t *Y,
                                  size_t n, int L, const int32_t *outer, int32_t f, int k,
                                  uint64_t seed, uint8_t *mask, int32_t *inner)
{
    for (size_t i = 0; i < n; i++) mask[i] = outer[i] >= 0 && outer[i] != f;
    return raddino_probe_folds(group, n_groups, Y, n, L, mask, k, seed, inner);
}

/* Chooses C per label on the rows with inner >= 0 (the inner folds). */
static raddino_status choose_c(split_ws *w, const int32_t *inner, const double *grid, int n_c,
                               double *grid_scores, double *sbuf, uint8_t *ybuf, double *chosen)
{
    raddino_status st = raddino_status_ok();
    for (int j = 0; j < w->p->inner_folds && !st.code; j++)
        st = split_fit(w, inner, j, grid, n_c, false, grid_scores);
    if (st.code) return st;
    for (int l = 0; l < w->L; l++) {
        double best = -1;
        chosen[l] = grid[0];
        for (int c = 0; c < n_c; c++) {
            double a = part_auroc(grid_scores + (size_t)c * w->n * w->L, w->Y, w->n, w->L, l,
                                  inner, sbuf, ybuf);
            if (!isnan(a) && a > best + 1e-12) best = a, chosen[l] = grid[c];
        }
    }
    return st;
}

/* kNN scores of every row i with use[i]: the fraction of positives among the first k
 * neighbours j with allowed(i, j), for each k of the (ascending) grid: out is n_k planes of
 * n x L. */
static void knn_scores(const int32_t *nb, int m, size_t n, const uint8_t *Y, int L,
                       const int32_t *part, bool inner, const int *ks, int n_k, double *out)
{
#pragma omp parallel for schedule(dynamic, 256)
    for (size_t i = 0; i < n; i++) {
        if (part[i] < 0) continue;
        int count[L > 0 ? L : 1];
        for (int l = 0; l < L; l++) count[l] = 0;
        int used = 0, next = 0;
        const int32_t *row = nb + i * (size_t)m;
        for (int t = 0; t <= m && next < n_k; t++) {
            while (next < n_k && (used == ks[next] || t == m)) {
                double *o = out + ((size_t)next * n + i) * L;
                for (int l = 0; l < L; l++) o[l] = used ? (double)count[l] / used : 0.0;
                next++;
            }
            if (t == m) break;
            int32_t j = row[t];
            if (j < 0 || (size_t)j >= n || (size_t)j == i) continue;
            /* inner: j in the training part, another inner fold; outer: another fold */
            if (inner ? part[j] < 0 || part[j] == part[i] : part[j] == part[i]) continue;
            used++;
            for (int l = 0; l < L; l++) count[l] += Y[(size_t)j * L + l] != 0;
        }
    }
}

void raddino_probe_result_free(raddino_probe_result *r)
{
    if (!r) return;
    free(r->fold);
    free(r->logreg_score);
    free(r->knn_score);
    free(r->logreg);
    free(r->knn);
    free(r->chosen_c);
    free(r->chosen_k);
    memset(r, 0, sizeof *r);
}

static int compare_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static void free_ws(split_ws *w)
{
    free(w->mean), free(w->scale), free(w->W), free(w->b), free(w->Ztrain), free(w->Ztest);
    free(w->out), free(w->Cl), free(w->Ytrain), free(w->train), free(w->test), free(w->gram);
}

static bool alloc_ws(split_ws *w)
{
    size_t n = w->n ? w->n : 1, d = (size_t)w->d, L = (size_t)w->L;
    w->mean = malloc(d * sizeof(double));
    w->scale = malloc(d * sizeof(double));
    w->W = malloc(d * L * sizeof(double));
    w->b = malloc(L * sizeof(double));
    w->Ztrain = malloc(n * d * sizeof(double));
    w->Ztest = malloc(n * d * sizeof(double));
    w->out = malloc(n * L * sizeof(double));
    w->Cl = malloc(L * sizeof(double));
    w->Ytrain = malloc(n * L);
    w->train = malloc(n * sizeof(size_t));
    w->test = malloc(n * sizeof(size_t));
    w->gram = malloc(d * d * sizeof(double));
    return w->gram && w->mean && w->scale && w->W && w->b && w->Ztrain && w->Ztest && w->out && w->Cl &&
           w->Ytrain && w->train && w->test;
}

static raddino_status check_args(const float *X, size_t n, int d, const uint8_t *Y, int L,
                                 const int32_t *group, int32_t n_groups,
                                 const raddino_probe_params *p)
{
    if (!X || !Y || !group || d <= 0 || L <= 0 || n < 2 || !p || p->folds < 2 ||
        p->inner_folds < 2 || (p->c_grid && p->n_c <= 0) || (p->k_grid && p->n_k <= 0))
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "probe: bad arguments");
    for (size_t i = 0; i < n; i++)
        if (group[i] < 0 || group[i] >= n_groups)
            return raddino_status_error(RADDINO_ERR_ARGUMENT, "probe: group out of range");
    return raddino_status_ok();
}

raddino_status raddino_probe_cross_validate(const float *X, size_t n, int d, const uint8_t *Y,
                                            int L, const int32_t *group, int32_t n_groups,
                                            const int32_t *neighbours, int m,
                                            const raddino_probe_params *p,
                                            raddino_probe_result *out)
{
    memset(out, 0, sizeof *out);
    raddino_status st = check_args(X, n, d, Y, L, group, n_groups, p);
    if (st.code) return st;
    if ((p->methods & RADDINO_PROBE_KNN) && (!neighbours || m <= 0))
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "probe: kNN needs neighbour lists");
    const double *cg = p->c_grid ? p->c_grid : default_c;
    int n_c = p->c_grid ? p->n_c : (int)(sizeof default_c / sizeof *default_c);
    int n_k = p->k_grid ? p->n_k : (int)(sizeof default_k / sizeof *default_k);
    int ks[n_k];
    memcpy(ks, p->k_grid ? p->k_grid : default_k, sizeof ks);
    qsort(ks, (size_t)n_k, sizeof *ks, compare_int);
    int F = p->folds;
    out->n = n;
    out->labels = L;
    out->folds = F;
    out->fold = malloc(n * sizeof *out->fold);
    out->chosen_c = calloc((size_t)F * L, sizeof *out->chosen_c);
    out->chosen_k = calloc((size_t)F * L, sizeof *out->chosen_k);
    int32_t *inner = malloc(n * sizeof *inner);
    uint8_t *mask = malloc(n), *ybuf = malloc(n);
    double *sbuf = malloc(n * sizeof *sbuf);
    int planes = n_c > n_k ? n_c : n_k;
    double *grid_scores = malloc((size_t)planes * n * L * sizeof *grid_scores);
    split_ws w = {.X = X, .n = n, .d = d, .Y = Y, .L = L, .p = p};
    if (!out->fold || !out->chosen_c || !out->chosen_k || !inner || !mask || !ybuf || !sbuf ||
        !grid_scores) {
        st = nomem();
        goto done;
    }
    if (p->methods & RADDINO_PROBE_LOGREG) {
        out->logreg_score = calloc(n * L, sizeof *out->logreg_score);
        out->logreg = calloc((size_t)L, sizeof *out->logreg);
        if (!out->logreg_score || !out->logreg || !alloc_ws(&w)) {
            st = nomem();
            goto done;
        }
    }
    if (p->methods & RADDINO_PROBE_KNN) {
        out->knn_score = calloc(n * L, sizeof *out->knn_score);
        out->knn = calloc((size_t)L, sizeof *out->knn);
        if (!out->knn_score || !out->knn) {
            st = nomem();
            goto done;
        }
    }
    st = raddino_probe_folds(group, n_groups, Y, n, L, NULL, F, p->seed, out->fold);
    for (int f = 0; f < F && !st.code; f++) {
        st = inner_folds(group, n_groups, Y, n, L, out->fold, f, p->inner_folds,
                         p->seed + 1 + (uint64_t)f, mask, inner);
        if (st.code) break;
        if (p->methods & RADDINO_PROBE_LOGREG) {
            double *chosen = out->chosen_c + (size_t)f * L;
            st = choose_c(&w, inner, cg, n_c, grid_scores, sbuf, ybuf, chosen);
            if (!st.code) st = split_fit(&w, out->fold, f, chosen, 1, true, out->logreg_score);
        }
        if (!st.code && (p->methods & RADDINO_PROBE_KNN)) {
            knn_scores(neighbours, m, n, Y, L, inner, true, ks, n_k, grid_scores);
            for (int l = 0; l < L; l++) {
                double best = -1;
                int *chosen = &out->chosen_k[(size_t)f * L + l];
                *chosen = ks[0];
                for (int c = 0; c < n_k; c++) {
                    double a = part_auroc(grid_scores + (size_t)c * n * L, Y, n, L, l, inner,
                                          sbuf, ybuf);
                    if (!isnan(a) && a > best + 1e-12) best = a, *chosen = ks[c];
                }
            }
            /* the held-out fold, each label with its own k: score with every k, keep one */
            for (size_t i = 0; i < n; i++) inner[i] = out->fold[i];
            knn_scores(neighbours, m, n, Y, L, inner, false, ks, n_k, grid_scores);
            for (size_t i = 0; i < n; i++) {
                if (out->fold[i] != f) continue;
                for (int l = 0; l < L; l++) {
                    int c = 0;
                    while (ks[c] != out->chosen_k[(size_t)f * L + l]) c++;
                    out->knn_score[i * (size_t)L + l] = grid_scores[((size_t)c * n + i) * L + l];
                }
            }
        }
    }
    out->max_iterations_hit = w.max_iterations_hit;
    for (int l = 0; l < L && !st.code; l++) {
        for (size_t i = 0; i < n; i++) ybuf[i] = Y[i * (size_t)L + l];
        for (int method = 0; method < 2 && !st.code; method++) {
            double *scores = method ? out->knn_score : out->logreg_score;
            raddino_probe_metrics *mt = method ? out->knn : out->logreg;
            if (!scores) continue;
            for (size_t i = 0; i < n; i++) sbuf[i] = scores[i * (size_t)L + l];
            st = raddino_probe_evaluate(sbuf, ybuf, n, group, n_groups, p->bootstrap,
                                        p->seed + 1000 + (uint64_t)l, &mt[l]);
        }
    }
done:
    free_ws(&w);
    free(inner);
    free(mask);
    free(ybuf);
    free(sbuf);
    free(grid_scores);
    if (st.code) raddino_probe_result_free(out);
    return st;
}

raddino_status raddino_probe_train(const float *X, size_t n, int d, const uint8_t *Y, int L,
                                   const int32_t *group, int32_t n_groups,
                                   const raddino_probe_params *p, raddino_probe_model *out)
{
    memset(out, 0, sizeof *out);
    raddino_status st = check_args(X, n, d, Y, L, group, n_groups, p);
    if (st.code) return st;
    const double *cg = p->c_grid ? p->c_grid : default_c;
    int n_c = p->c_grid ? p->n_c : (int)(sizeof default_c / sizeof *default_c);
    int32_t *all = calloc(n, sizeof *all), *inner = malloc(n * sizeof *inner);
    uint8_t *mask = malloc(n), *ybuf = malloc(n);
    double *sbuf = malloc(n * sizeof *sbuf);
    double *grid_scores = malloc((size_t)n_c * n * L * sizeof *grid_scores);
    split_ws w = {.X = X, .n = n, .d = d, .Y = Y, .L = L, .p = p};
    out->dim = d;
    out->labels = L;
    out->mean = malloc((size_t)d * sizeof(double));
    out->scale = malloc((size_t)d * sizeof(double));
    out->W = calloc((size_t)d * L, sizeof(double));
    out->b = calloc((size_t)L, sizeof(double));
    out->C = malloc((size_t)L * sizeof(double));
    if (!all || !inner || !mask || !ybuf || !sbuf || !grid_scores || !alloc_ws(&w) ||
        !out->mean || !out->scale || !out->W || !out->b || !out->C) {
        st = nomem();
        goto done;
    }
    /* all rows are part 0; -1 as the "held-out" part leaves none out */
    st = inner_folds(group, n_groups, Y, n, L, all, -1, p->inner_folds, p->seed + 1, mask, inner);
    if (!st.code) st = choose_c(&w, inner, cg, n_c, grid_scores, sbuf, ybuf, out->C);
    if (!st.code) {
        size_t *rows = w.train;
        for (size_t i = 0; i < n; i++) rows[i] = i;
        fit_scaler(X, n, d, all, -1, true, out->mean, out->scale);
        standardise_rows(X, d, rows, n, out->mean, out->scale, w.Ztrain);
        uint8_t conv[L];
        st = raddino_logreg_fit(w.Ztrain, n, d, NULL, n, Y, L, out->C, &p->logreg, out->W,
                                out->b, NULL, conv);
    }
done:
    free_ws(&w);
    free(all), free(inner), free(mask), free(ybuf), free(sbuf), free(grid_scores);
    if (st.code) raddino_probe_model_free(out);
    return st;
}

raddino_status raddino_probe_model_predict(const raddino_probe_model *m, const float *x,
                                           size_t n, double *scores)
{
    if (!m || !x || !scores || m->dim <= 0 || m->labels <= 0)
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "probe: bad arguments");
    double *z = malloc((size_t)m->dim * sizeof *z);
    if (!z) return nomem();
    for (size_t i = 0; i < n; i++) {
        for (int j = 0; j < m->dim; j++) z[j] = (x[i * (size_t)m->dim + j] - m->mean[j]) / m->scale[j];
        for (int l = 0; l < m->labels; l++) {
            double s = m->b[l];
            for (int j = 0; j < m->dim; j++) s += z[j] * m->W[(size_t)j * m->labels + l];
            scores[i * (size_t)m->labels + l] = 1.0 / (1.0 + exp(-s));
        }
    }
    free(z);
    return raddino_status_ok();
}

void raddino_probe_model_free(raddino_probe_model *m)
{
    if (!m) return;
    free(m->mean), free(m->scale), free(m->W), free(m->b), free(m->C);
    memset(m, 0, sizeof *m);
}
