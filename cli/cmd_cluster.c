/* cmd_cluster.c — raddino cluster (spherical k-means on the collection's vectors, the result
 * stored in the database) and raddino clusters (list stored results again). */
#include "collection.h"
#include "html_report.h"
#include "raddino_analysis.h"

#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char cluster_usage[] =
    "usage: raddino cluster [--db FILE] --clusters K|auto|A..B [--redo N] [--seed S]\n"
    "                       [--iters N] [--sample N] [--exemplars N] [--json | --csv]\n"
    "                       [--html FILE]\n"
    "\n"
    "Groups the collection's images by spherical k-means on their L2-normalised CLS vectors\n"
    "(FAISS k-means, k-means++ seeding) and stores the result in the database (run, centroids,\n"
    "objective, every image's cluster and cosine distance to its centroid): 'raddino clusters'\n"
    "lists it again. Prints per cluster its size, spread (mean cosine distance to the centroid)\n"
    "and the exemplars nearest the centroid. k-means is restarted from different seeds and the\n"
    "run with the lowest objective is kept; the objectives of all restarts are reported. The\n"
    "same seed gives the same clusters.\n"
    "\n"
    "options:\n"
    "  --clusters K       clusters; 'auto' tries k = 2..min(20, sqrt(N)), A..B tries A to\n"
    "                     B, and keeps the k with the highest mean silhouette (cosine) on a\n"
    "                     sample (--silhouette-sample, default 5000). (-k K: old spelling)\n"
    "  --redo N           k-means runs per k, seeds S, S+1, ...; the lowest objective is\n"
    "                     kept (default: 10 when they fit a budget of 5e11 multiply-adds,\n"
    "                     about 30 s on 2 cores, else as many as fit, at least 1)\n"
    "  --seed S           k-means seed (default 1234)\n"
    "  --iters N          Lloyd iterations (default 20)\n"
    "  --sample N         train on N vectors (default min(N, 256 k)); all are assigned\n"
    "  --silhouette-sample N  vectors the silhouette is measured on (default 5000)\n"
    "  --exemplars N      exemplars shown per cluster (default 3)\n"
    "  --json             one JSON object: run, k, ..., tried, reason, clusters\n"
    "  --csv              id,path,cluster,distance for every image\n"
    "  --html FILE        also write a self-contained HTML page: per cluster its size,\n"
    "                     spread and exemplar thumbnails (at least 12), and a 2-D map of\n"
    "                     the collection (PCA of the CLS vectors) coloured by cluster\n"
    CLI_DB_HELP
    "  -h, --help         this help\n";

static const char clusters_usage[] =
    "usage: raddino clusters [--db FILE] [--run ID | --list] [--exemplars N] [--json | --csv]\n"
    "\n"
    "Shows a stored 'raddino cluster' result (default: the latest) without recomputing it, or\n"
    "with --list one line per stored run. Images deleted since are left out.\n"
    "\n"
    "options:\n"
    "  --run ID           the run to show\n"
    "  --list             list the runs\n"
    "  --exemplars N      exemplars shown per cluster (default 3)\n"
    "  --json, --csv      as raddino cluster\n"
    "  --html FILE        as raddino cluster\n"
    CLI_DB_HELP
    "  -h, --help         this help\n";

typedef enum { OUT_TEXT, OUT_JSON, OUT_CSV } output_format;

typedef struct {
    const char *db;
    int k_min, k_max;       /* one k: equal */
    int k_auto;
    uint64_t seed, iters, sample, silhouette_sample, exemplars, run_id, redo;
    int list;
    output_format format;
    const char *html;       /* --html FILE */
} cluster_options;

/* ---- showing a stored run ----------------------------------------------------------------- */

typedef struct {
    int64_t id;
    char *path;
    int cluster;
    float distance;
} member;

typedef struct {
    member *m;
    size_t n, cap;
    int failed;
} member_list;

static int collect_member(void *user, int64_t id, const char *path, int cluster, float distance)
{
    member_list *l = user;
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        member *m = realloc(l->m, cap * sizeof *m);
        if (!m) {
            l->failed = 1;
            return 1;
        }
        l->m = m;
        l->cap = cap;
    }
    member *x = &l->m[l->n];
    x->path = strdup(path ? path : "");
    if (!x->path) {
        l->failed = 1;
        return 1;
    }
    x->id = id;
    x->cluster = cluster;
    x->distance = distance;
    l->n++;
    return 0;
}

static void free_members(member_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->m[i].path);
    free(l->m);
}

static void print_run_header(const raddino_store_cluster_run *r)
{
    printf("run %lld: k = %d, %lld images (trained on %lld), seed %llu, %d iterations\n",
           (long long)r->id, r->k, (long long)r->n, (long long)r->n_train,
           (unsigned long long)r->seed, r->iterations);
    printf("objective %.6g (sum of cosine distances, mean %.4f)", r->objective,
           r->n ? r->objective / (double)r->n : 0.0);
    if (isfinite(r->silhouette)) printf(", mean silhouette %.4f", r->silhouette);
    putchar('\n');
}

/* The spread of a run's k-means restarts, from its params_json ("restart_objectives"; runs
 * stored before restarts existed have none: n = 0). */
typedef struct {
    int n;
    double min, max, mean;
} restart_spread;

static restart_spread read_spread(const char *params)
{
    restart_spread s = {0, 0, 0, 0};
    cJSON *root = cJSON_Parse(params);
    const cJSON *objs = cJSON_GetObjectItemCaseSensitive(root, "restart_objectives");
    if (cJSON_IsArray(objs) && cJSON_GetArraySize(objs) > 0) {
        double sum = 0;
        const cJSON *v;
        s.min = INFINITY;
        s.max = -INFINITY;
        cJSON_ArrayForEach(v, objs) {
            double x = cJSON_GetNumberValue(v);
            s.min = x < s.min ? x : s.min;
            s.max = x > s.max ? x : s.max;
            sum += x;
            s.n++;
        }
        s.mean = sum / s.n;
    }
    cJSON_Delete(root);
    return s;
}

static void print_restarts(const char *params)
{
    restart_spread s = read_spread(params);
    if (s.n > 0)
        printf("best of %d k-means restart%s: objectives %.6g to %.6g (mean %.6g, worst/best "
               "%.3f)\n", s.n, s.n == 1 ? "" : "s", s.min, s.max, s.mean,
               s.min > 0 ? s.max / s.min : 1.0);
}

/* The members [b, e) of one cluster (sorted by distance): its size, spread, exemplars. */
static void print_cluster(const member *m, size_t b, size_t e, int cluster, size_t exemplars,
                          output_format format, int first)
{
    double sum = 0, max = 0;
    for (size_t i = b; i < e; i++) {
        sum += m[i].distance;
        if (m[i].distance > max) max = m[i].distance;
    }
    size_t size = e - b;
    double spread = size ? sum / (double)size : 0.0;
    if (format == OUT_JSON) {
        printf("%s{\"cluster\": %d, \"size\": %zu, \"spread\": %.6f, \"max_distance\": %.6f, "
               "\"exemplars\": [", first ? "" : ", ", cluster, size, spread, max);
        for (size_t i = b; i < e && i < b + exemplars; i++) {
            printf("%s{\"id\": %lld, \"path\": ", i > b ? ", " : "", (long long)m[i].id);
            cli_json_string(stdout, m[i].path);
            printf(", \"distance\": %.6f}", m[i].distance);
        }
        fputs("]}", stdout);
        return;
    }
    printf("\ncluster %d: %zu images, spread %.4f (mean cosine distance), max %.4f\n", cluster,
           size, spread, max);
    for (size_t i = b; i < e && i < b + exemplars; i++)
        printf("  %.4f  %8lld  %s\n", m[i].distance, (long long)m[i].id, m[i].path);
}

/* ---- the HTML page ------------------------------------------------------------------------ */

#define HTML_MIN_EXEMPLARS 12

/* The points of the map: members (an even sample beyond HTML_MAX_POINTS) with their vectors. */
typedef struct {
    int64_t id;
    size_t member;
    int filled;
} map_point;

typedef struct {
    map_point *p;
    size_t n;
    float *v;               /* n x dim */
    int dim;
} map_points;

static int by_point_id(const void *a, const void *b)
{
    const map_point *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

static int take_vector(void *user, int64_t id, const char *path, const char *sha256,
                       const float *vector, int dim)
{
    (void)path, (void)sha256;
    map_points *m = user;
    map_point key = {id, 0, 0};
    map_point *p = bsearch(&key, m->p, m->n, sizeof *m->p, by_point_id);
    if (p && dim == m->dim) {
        memcpy(m->v + (size_t)(p - m->p) * (size_t)dim, vector, (size_t)dim * sizeof *vector);
        p->filled = 1;
    }
    return 0;
}

static void html_map(FILE *f, raddino_store *db, const raddino_store_cluster_run *run,
                     const member_list *l)
{
    size_t stride = l->n > HTML_MAX_POINTS ? (l->n + HTML_MAX_POINTS - 1) / HTML_MAX_POINTS : 1;
    map_points m = {NULL, 0, NULL, run->dim};
    m.p = calloc(l->n / stride + 1, sizeof *m.p);
    m.v = calloc((l->n / stride + 1) * (size_t)(run->dim > 0 ? run->dim : 1), sizeof *m.v);
    float *xy = calloc(2 * (l->n / stride + 1), sizeof *xy);
    int *cluster = calloc(l->n / stride + 1, sizeof *cluster);
    const char **label = calloc(l->n / stride + 1, sizeof *label);
    raddino_status st = {RADDINO_OK, ""};
    if (!m.p || !m.v || !xy || !cluster || !label)
        st = (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
    for (size_t i = 0; !st.code && i < l->n; i += stride) m.p[m.n++] = (map_point){l->m[i].id, i, 0};
    if (!st.code) qsort(m.p, m.n, sizeof *m.p, by_point_id);
    if (!st.code) st = raddino_store_foreach_vector(db, run->model_id, take_vector, &m);
    size_t kept = 0;    /* points with a vector, packed to the front */
    for (size_t i = 0; !st.code && i < m.n; i++) {
        if (!m.p[i].filled) continue;
        memmove(m.v + kept * (size_t)m.dim, m.v + i * (size_t)m.dim,
                (size_t)m.dim * sizeof *m.v);
        cluster[kept] = l->m[m.p[i].member].cluster;
        label[kept] = l->m[m.p[i].member].path;
        kept++;
    }
    if (!st.code) st = raddino_pca2(m.v, kept, m.dim, xy);
    fputs("<section class=\"map\"><h2>Map of the collection</h2>", f);
    if (st.code) {
        fputs("<p class=\"muted\">no map: ", f);
        html_escape(f, st.message);
        fputs("</p>", f);
    } else {
        fprintf(f, "<p class=\"muted\">%zu images%s, projected on the top two principal "
                   "components of their L2-normalised CLS vectors; colour: cluster; hover a "
                   "point for its path.</p>", kept, stride > 1 ? " (an even sample)" : "");
        html_scatter_svg(f, xy, cluster, label, kept);
        fputs("<p>", f);
        for (int c = 0; c < run->k && c < HTML_MAX_SECTIONS; c++) {
            char colour[48];
            html_cluster_colour(c, colour, sizeof colour);
            fprintf(f, "<span style=\"color:%s\">&#9679;</span> cluster %d &nbsp; ", colour, c);
        }
        fputs("</p>", f);
    }
    fputs("</section>\n", f);
    free(m.p), free(m.v), free(xy), free(cluster), free(label);
}

static void html_cluster(html_report *h, const member *m, size_t b, size_t e, int cluster,
                         size_t exemplars)
{
    FILE *f = h->f;
    double sum = 0;
    for (size_t i = b; i < e; i++) sum += m[i].distance;
    char colour[48];
    html_cluster_colour(cluster, colour, sizeof colour);
    fprintf(f, "<section><h2><span style=\"color:%s\">&#9679;</span> Cluster %d: %zu images, "
               "spread %.4f</h2><div class=\"grid\">", colour, cluster, e - b,
            e > b ? sum / (double)(e - b) : 0.0);
    for (size_t i = b; i < e && i < b + exemplars; i++) {
        fputs("<figure>", f);
        html_thumb(h, m[i].path);
        fprintf(f, "<figcaption><span class=\"score\">%.4f</span> <span class=\"muted\">"
                   "id %lld</span><br>", m[i].distance, (long long)m[i].id);
        html_escape(f, m[i].path);
        fputs("</figcaption></figure>", f);
    }
    if (e - b > exemplars)
        fprintf(f, "<p class=\"muted\">%zu more images not shown</p>", e - b - exemplars);
    fputs("</div></section>\n", f);
}

static int write_cluster_html(raddino_store *db, const raddino_store_cluster_run *run,
                              const member_list *l, const cluster_options *o)
{
    html_report h;
    char title[64];
    snprintf(title, sizeof title, "raddino clusters: run %lld", (long long)run->id);
    raddino_status st = html_report_open(&h, o->html, title, NULL);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    fputs("<p>Collection ", h.f);
    html_escape(h.f, raddino_store_path(db));
    fprintf(h.f, ": k = %d clusters of %zu images (spherical k-means, seed %llu); objective "
                 "%.6g", run->k, l->n, (unsigned long long)run->seed, run->objective);
    if (isfinite(run->silhouette)) fprintf(h.f, ", mean silhouette %.4f", run->silhouette);
    fputs(". Spread: mean cosine distance to the centroid; exemplars nearest the centroid "
          "first, with their distance.</p>\n", h.f);
    html_map(h.f, db, run, l);
    size_t exemplars = o->exemplars > HTML_MIN_EXEMPLARS ? o->exemplars : HTML_MIN_EXEMPLARS;
    if (exemplars > HTML_MAX_THUMBS) exemplars = HTML_MAX_THUMBS;
    size_t b = 0;
    for (int c = 0; c < run->k; c++) {
        size_t e = b;
        while (e < l->n && l->m[e].cluster == c) e++;
        if (c < HTML_MAX_SECTIONS) html_cluster(&h, l->m, b, e, c, exemplars);
        b = e;
    }
    if (run->k > HTML_MAX_SECTIONS)
        fprintf(h.f, "<p class=\"muted\">%d more clusters not shown</p>\n",
                run->k - HTML_MAX_SECTIONS);
    st = html_report_close(&h);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}

static int show_run(raddino_store *db, int64_t run_id, const cluster_options *o)
{
    raddino_store_cluster_run run;
    int found;
    raddino_status st = raddino_store_get_cluster_run(db, run_id, &run, &found);
    if (!st.code && !found) {
        cli_error("%s: %s", raddino_store_path(db),
                  run_id ? "no such cluster run" : "no cluster runs (run 'raddino cluster')");
        return EXIT_INPUT_FAILED;
    }
    char *params = st.code ? NULL : strdup(run.params_json);
    member_list l = {0};
    if (!st.code) st = raddino_store_foreach_assignment(db, run.id, collect_member, &l);
    if (!st.code && (l.failed || !params)) {
        st.code = RADDINO_ERR_NOMEM;
        snprintf(st.message, sizeof st.message, "out of memory");
    }
    if (st.code) {
        cli_status_error(&st);
        free(params);
        free_members(&l);
        return EXIT_INPUT_FAILED;
    }
    if (o->format == OUT_CSV) {
        puts("id,path,cluster,distance");
        for (size_t i = 0; i < l.n; i++) {
            printf("%lld,", (long long)l.m[i].id);
            cli_csv_field(stdout, l.m[i].path);
            printf(",%d,%.6f\n", l.m[i].cluster, l.m[i].distance);
        }
    } else if (o->format == OUT_JSON) {
        printf("{\"run\": %lld, \"k\": %d, \"n\": %lld, \"n_train\": %lld, \"seed\": %llu, "
               "\"iterations\": %d, \"objective\": %.6f, \"silhouette\": ", (long long)run.id,
               run.k, (long long)run.n, (long long)run.n_train, (unsigned long long)run.seed,
               run.iterations, run.objective);
        if (isfinite(run.silhouette)) printf("%.6f", run.silhouette);
        else fputs("null", stdout);
        restart_spread s = read_spread(params);
        if (s.n > 0)
            printf(", \"restarts\": %d, \"objective_min\": %.6f, \"objective_max\": %.6f, "
                   "\"objective_mean\": %.6f", s.n, s.min, s.max, s.mean);
        printf(", \"generation\": %lld, \"params\": %s, \"clusters\": [",
               (long long)run.generation, params);
    } else {
        print_run_header(&run);
        print_restarts(params);
        const char *reason = strstr(params, "\"reason\": \"");   /* written by params_json */
        if (reason) {
            reason += 11;
            const char *end = strchr(reason, '"');
            printf("%.*s\n", end ? (int)(end - reason) : 0, reason);
        }
    }
    if (o->format != OUT_CSV) {
        size_t b = 0;
        for (int c = 0; c < run.k; c++) {
            size_t e = b;
            while (e < l.n && l.m[e].cluster == c) e++;
            print_cluster(l.m, b, e, c, o->exemplars, o->format, c == 0);
            b = e;
        }
        if (o->format == OUT_JSON) puts("]}");
    }
    int exit_code = o->html ? write_cluster_html(db, &run, &l, o) : EXIT_OK;
    free(params);
    free_members(&l);
    return exit_code;
}

/* ---- computing a run ---------------------------------------------------------------------- */

typedef struct {
    int k;
    double silhouette, objective;
    int restarts;
} k_score;

/* One k-means (and its silhouette when asked). */
static raddino_status run_kmeans(const float *v, size_t n, int dim, int k,
                                 const cluster_options *o, int measure,
                                 raddino_kmeans_result *res, double *silhouette)
{
    raddino_kmeans_params p = raddino_kmeans_default_params();
    p.k = k;
    p.seed = o->seed;
    p.iterations = (int)o->iters;
    p.sample = (size_t)o->sample;
    p.restarts = (int)o->redo;
    raddino_status st = raddino_kmeans(v, n, dim, &p, res);
    *silhouette = NAN;
    if (!st.code && measure && k > 1)
        st = raddino_silhouette(v, n, dim, res->assignment, k, (size_t)o->silhouette_sample,
                                o->seed, 0, silhouette);
    if (st.code) raddino_kmeans_result_free(res);
    return st;
}

/* The parameters and, for several k, the scores and the reason, as the run's params_json. */
static char *params_json(const cluster_options *o, const k_score *tried, int n_tried, int best,
                         size_t n, const raddino_kmeans_result *r)
{
    /* each tried k: under 120 bytes; each restart's objective: under 32 */
    size_t cap = 1024 + (size_t)n_tried * 192 + (size_t)r->restarts * 32;
    char *j = malloc(cap);
    if (!j) return NULL;
    size_t len = 0;
    char kspec[64];
    if (o->k_auto) snprintf(kspec, sizeof kspec, "auto");
    else if (o->k_min != o->k_max) snprintf(kspec, sizeof kspec, "%d..%d", o->k_min, o->k_max);
    else snprintf(kspec, sizeof kspec, "%d", o->k_min);
    len += (size_t)snprintf(j + len, cap - len,
                            "{\"k\": \"%s\", \"seed\": %llu, \"iterations\": %llu, "
                            "\"sample\": %llu, \"silhouette_sample\": %llu, \"redo\": %llu, "
                            "\"restarts\": %d, \"best_restart\": %d, \"restart_objectives\": [",
                            kspec, (unsigned long long)o->seed, (unsigned long long)o->iters,
                            (unsigned long long)o->sample,
                            (unsigned long long)o->silhouette_sample,
                            (unsigned long long)o->redo, r->restarts, r->best_run);
    for (int i = 0; i < r->restarts; i++)
        len += (size_t)snprintf(j + len, cap - len, "%s%.6f", i ? ", " : "", r->objectives[i]);
    len += (size_t)snprintf(j + len, cap - len, "], \"tried\": [");
    for (int i = 0; i < n_tried; i++) {
        len += (size_t)snprintf(j + len, cap - len, "%s{\"k\": %d, \"silhouette\": ",
                                i ? ", " : "", tried[i].k);
        len += (size_t)(isfinite(tried[i].silhouette)
                            ? snprintf(j + len, cap - len, "%.6f", tried[i].silhouette)
                            : snprintf(j + len, cap - len, "null"));
        len += (size_t)snprintf(j + len, cap - len, ", \"objective\": %.6f, \"restarts\": %d}",
                                tried[i].objective, tried[i].restarts);
    }
    size_t sample = o->silhouette_sample < n ? (size_t)o->silhouette_sample : n;
    if (n_tried > 1)
        snprintf(j + len, cap - len,
                 "], \"reason\": \"k = %d has the highest mean silhouette (%.4f) of k = %d..%d, "
                 "measured on %zu vectors\"}", tried[best].k, tried[best].silhouette,
                 tried[0].k, tried[n_tried - 1].k, sample);
    else
        snprintf(j + len, cap - len, "], \"reason\": \"k = %d as given\"}", tried[best].k);
    return j;
}

/* Runs every k asked for, keeps the best by silhouette (the first on ties: the smallest k). */
static raddino_status cluster_all(const float *v, size_t n, int dim, const cluster_options *o,
                                  raddino_kmeans_result *best, k_score *tried, int *n_tried,
                                  int *best_i)
{
    raddino_status st = {RADDINO_OK, ""};
    *n_tried = 0;
    *best_i = -1;
    int several = o->k_max > o->k_min;
    for (int k = o->k_min; k <= o->k_max && !st.code; k++) {
        raddino_kmeans_result r;
        double sil;
        st = run_kmeans(v, n, dim, k, o, 1, &r, &sil);
        if (st.code) break;
        tried[*n_tried] = (k_score){k, sil, r.objective, r.restarts};
        if (several)
            fprintf(stderr,
                    "raddino cluster: k = %d: mean silhouette %.4f, objective %.4f (best of %d)\n",
                    k, sil, r.objective, r.restarts);
        if (*best_i < 0 || (isfinite(sil) && !(sil <= tried[*best_i].silhouette))) {
            if (*best_i >= 0) raddino_kmeans_result_free(best);
            *best = r;
            *best_i = *n_tried;
        } else {
            raddino_kmeans_result_free(&r);
        }
        ++*n_tried;
    }
    if (st.code && *best_i >= 0) raddino_kmeans_result_free(best);
    return st;
}

static int store_run(const char *db_path, const raddino_collection_info *ci,
                     const raddino_kmeans_result *r, const int64_t *ids, const char *params,
                     double silhouette, const cluster_options *o)
{
    raddino_store_params sp = raddino_store_default_params();
    raddino_store *db;
    raddino_status st = raddino_store_open(db_path, &sp, &db);
    raddino_store_cluster_run run;
    memset(&run, 0, sizeof run);
    run.model_id = ci->model_id;
    run.generation = ci->generation;
    run.k = r->k;
    run.dim = r->dim;
    run.iterations = (int)o->iters;
    run.seed = o->seed;
    run.n = (int64_t)r->n;
    run.n_train = (int64_t)r->n_train;
    run.objective = r->objective;
    run.silhouette = silhouette;
    run.params_json = params;
    run.centroids = r->centroids;
    if (!st.code)
        st = raddino_store_put_cluster_run(db, &run, ids, r->assignment, r->distance, r->n);
    if (st.code) {
        cli_status_error(&st);
        raddino_store_close(db);
        return EXIT_INPUT_FAILED;
    }
    int exit_code = show_run(db, run.id, o);
    raddino_store_close(db);
    return exit_code;
}

static int run_cluster(const cluster_options *o)
{
    cli_collection_options co;
    memset(&co, 0, sizeof co);
    co.db = o->db;
    co.params = raddino_collection_default_params();
    co.params.no_index = 1;
    int exit_code;
    raddino_collection *c = cli_open_collection(&co, &exit_code);
    if (!c) return exit_code;
    raddino_collection_info ci;
    raddino_collection_get_info(c, &ci);
    float *v = NULL;
    int64_t *ids = NULL;
    size_t n = 0;
    raddino_status st = raddino_collection_read_all(c, &v, &ids, &n);
    raddino_collection_close(c);    /* the snapshot's vectors are in memory */
    cluster_options eff = *o;
    if (!st.code && o->k_auto) {
        int top = (int)floor(sqrt((double)n));
        eff.k_min = 2;
        eff.k_max = top < 20 ? top : 20;
        if (eff.k_max < 2) eff.k_max = 2;
    }
    if (!st.code && (size_t)eff.k_max > n) {
        st.code = RADDINO_ERR_ARGUMENT;
        snprintf(st.message, sizeof st.message, "%.400s: %zu images cannot make %d clusters",
                 ci.db_path, n, eff.k_max);
    }
    k_score *tried = st.code ? NULL : calloc((size_t)(eff.k_max - eff.k_min + 1), sizeof *tried);
    int n_tried = 0, best_i = -1;
    raddino_kmeans_result best;
    if (!st.code && !tried) st = (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
    if (!st.code) st = cluster_all(v, n, ci.dim, &eff, &best, tried, &n_tried, &best_i);
    if (st.code) {
        cli_status_error(&st);
        exit_code = EXIT_INPUT_FAILED;
    } else {
        char *params = params_json(&eff, tried, n_tried, best_i, n, &best);
        exit_code = params ? store_run(ci.db_path, &ci, &best, ids, params,
                                       tried[best_i].silhouette, &eff)
                           : EXIT_INPUT_FAILED;
        free(params);
        raddino_kmeans_result_free(&best);
    }
    free(tried);
    free(v);
    free(ids);
    return exit_code;
}

/* ---- options ------------------------------------------------------------------------------ */

static bool parse_k(const char *arg, cluster_options *o)
{
    if (!strcmp(arg, "auto")) {
        o->k_auto = 1;
        return true;
    }
    char *end;
    long a = strtol(arg, &end, 10), b = a;
    if (end != arg && end[0] == '.' && end[1] == '.') {
        const char *second = end + 2;
        b = strtol(second, &end, 10);
        if (end == second) a = 0;
    }
    if (end == arg || *end || a < 1 || b < a || b > 100000 || b - a > 1000) {
        cli_error("--clusters: expected a number of clusters, auto, or a range such as 2..20, "
                  "got '%s'",
                  arg);
        return false;
    }
    o->k_min = (int)a;
    o->k_max = (int)b;
    return true;
}

enum { OPT_SEED = 0x400, OPT_ITERS, OPT_SAMPLE, OPT_SIL, OPT_EXEMPLARS, OPT_JSON, OPT_CSV,
       OPT_RUN, OPT_LIST, OPT_DB, OPT_HTML, OPT_CLUSTERS, OPT_REDO };

/* Options of both commands; `clusters` accepts only its own (checked by the caller). */
static int parse_options(int argc, char **argv, cluster_options *o, const char *name,
                         const char *usage)
{
    static const struct option long_options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"seed", required_argument, NULL, OPT_SEED},
        {"clusters", required_argument, NULL, OPT_CLUSTERS},
        {"redo", required_argument, NULL, OPT_REDO},
        {"iters", required_argument, NULL, OPT_ITERS},
        {"sample", required_argument, NULL, OPT_SAMPLE},
        {"silhouette-sample", required_argument, NULL, OPT_SIL},
        {"exemplars", required_argument, NULL, OPT_EXEMPLARS},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"run", required_argument, NULL, OPT_RUN},
        {"list", no_argument, NULL, OPT_LIST},
        {"html", required_argument, NULL, OPT_HTML},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    opterr = 0;
    int is_cluster = !strcmp(name, "cluster");
    while ((opt = getopt_long(argc, argv, is_cluster ? "hk:" : "h", long_options, NULL)) != -1) {
        bool good = true;
        switch (opt) {
        case 'k':
            cli_deprecated(name, "-k K", "--clusters K");
            good = parse_k(optarg, o);
            break;
        case OPT_CLUSTERS: good = parse_k(optarg, o); break;
        case OPT_REDO: good = cli_parse_u64("--redo", optarg, 100000, &o->redo); break;
        case OPT_DB: o->db = optarg; break;
        case OPT_SEED: good = cli_parse_u64("--seed", optarg, INT32_MAX, &o->seed); break;
        case OPT_ITERS: good = cli_parse_u64("--iters", optarg, 10000, &o->iters); break;
        case OPT_SAMPLE: good = cli_parse_u64("--sample", optarg, INT64_MAX, &o->sample); break;
        case OPT_SIL:
            good = cli_parse_u64("--silhouette-sample", optarg, 50000, &o->silhouette_sample);
            break;
        case OPT_EXEMPLARS:
            good = cli_parse_u64("--exemplars", optarg, 1000000, &o->exemplars);
            break;
        case OPT_JSON:
            if (o->format == OUT_CSV) return cli_json_csv_conflict(name);
            o->format = OUT_JSON;
            break;
        case OPT_CSV:
            if (o->format == OUT_JSON) return cli_json_csv_conflict(name);
            o->format = OUT_CSV;
            break;
        case OPT_RUN: good = cli_parse_u64("--run", optarg, INT64_MAX, &o->run_id); break;
        case OPT_LIST: o->list = 1; break;
        case OPT_HTML: o->html = optarg; break;
        case 'h': fputs(usage, stdout); return EXIT_OK;
        default: good = false; break;
        }
        bool foreign = (is_cluster && (opt == OPT_RUN || opt == OPT_LIST)) ||
                       (!is_cluster && (opt == OPT_SEED || opt == OPT_ITERS ||
                                        opt == OPT_SAMPLE || opt == OPT_SIL ||
                                        opt == OPT_CLUSTERS || opt == OPT_REDO));
        if (foreign || (!good && opt != 'k' && opt < OPT_SEED)) {
            cli_error("%s: unknown or incomplete option '%s' (see raddino %s --help)", name,
                      argv[optind - 1], name);
            return EXIT_USAGE;
        }
        if (!good) return EXIT_USAGE;
    }
    if (optind < argc) {
        cli_error("%s: unexpected argument '%s'", name, argv[optind]);
        return EXIT_USAGE;
    }
    if (is_cluster && !o->k_auto && !o->k_min) {
        cli_error("cluster: --clusters K, auto or A..B is required (see raddino cluster --help)");
        return EXIT_USAGE;
    }
    return -1;
}

static void defaults(cluster_options *o)
{
    memset(o, 0, sizeof *o);
    o->seed = 1234;
    o->iters = 20;
    o->silhouette_sample = 5000;
    o->exemplars = 3;
}

int cmd_cluster(int argc, char **argv)
{
    cluster_options o;
    defaults(&o);
    int exit_code = parse_options(argc, argv, &o, "cluster", cluster_usage);
    return exit_code >= 0 ? exit_code : run_cluster(&o);
}

static void print_run_line(void *user, const raddino_store_cluster_run *r)
{
    (void)user;
    time_t t = (time_t)r->created;
    struct tm tm;
    char when[32] = "-";
    if (localtime_r(&t, &tm)) strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%6lld  %s  k %-4d %8lld images  objective %-12.6g silhouette ", (long long)r->id,
           when, r->k, (long long)r->n, r->objective);
    if (isfinite(r->silhouette)) printf("%.4f\n", r->silhouette);
    else puts("-");
}

int cmd_clusters(int argc, char **argv)
{
    cluster_options o;
    defaults(&o);
    int exit_code = parse_options(argc, argv, &o, "clusters", clusters_usage);
    if (exit_code >= 0) return exit_code;
    raddino_store_params sp = raddino_store_default_params();
    sp.read_only = 1;
    raddino_store *db;
    raddino_status st = raddino_store_open(cli_db_path(o.db), &sp, &db);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    if (o.list) {
        st = raddino_store_list_cluster_runs(db, print_run_line, NULL);
        if (st.code) cli_status_error(&st);
        exit_code = st.code ? EXIT_INPUT_FAILED : EXIT_OK;
    } else {
        exit_code = show_run(db, (int64_t)o.run_id, &o);
    }
    raddino_store_close(db);
    return exit_code;
}
