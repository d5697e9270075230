/* cmd_dedup.c — raddino dedup: groups of duplicate images. Exact duplicates share their file's
 * content hash; near duplicates are linked by cosine similarity at or above a threshold (range
 * search over the collection's index, then connected components by union-find:
 * raddino_links_*, analysis/). */
#include "collection.h"
#include "html_report.h"
#include "raddino_analysis.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Lossless re-encodings give identical vectors (1.0); the shared data's lossy and resampled
 * copies scored 0.9985-1.0 with the test model. README ("raddino dedup") says more. */
#define DEFAULT_THRESHOLD 0.99

static const char dedup_usage[] =
    "usage: raddino dedup [--db FILE] [--threshold T] [--json | --csv]\n"
    "\n"
    "Finds duplicate images in the collection, largest groups first. Exact duplicates: files\n"
    "with the same content (sha256). Near duplicates: images linked by a chain of pairs with\n"
    "cosine similarity >= T (re-encoded, resized, re-windowed copies of one radiograph); a\n"
    "near group made only of exact copies of one file is not repeated.\n"
    "\n"
    "options:\n"
    "  --threshold T      cosine similarity for near duplicates (default 0.99: lossless\n"
    "                     re-encodings score 1.0000; lower it, e.g. 0.95, to catch crops\n"
    "                     and re-windowed copies; see the README)\n"
    "  --json             one object per group: kind (exact|near), min_score (lowest\n"
    "                     similarity between two members), ids, paths (+ sha256 for exact)\n"
    "  --csv              group,kind,min_score,id,path: one row per image of each group\n"
    "  --html FILE        also write a self-contained HTML page: each group's thumbnails\n"
    "                     side by side with the group's minimum score and each member's\n"
    "                     cosine similarity to the first\n"
    CLI_COLLECTION_HELP
    "  -h, --help         this help\n";

typedef enum { OUT_TEXT, OUT_JSON, OUT_CSV } output_format;

typedef struct {
    cli_collection_options coll;
    double threshold;
    output_format format;
    const char *html;       /* --html FILE */
} dedup_options;

typedef struct {
    int exact;
    size_t *members;        /* row numbers, ascending */
    size_t n;
    double min_score;
} group;

typedef struct {
    group *g;
    size_t n, cap;
} group_list;

static bool push_group(group_list *l, int exact, size_t *members, size_t n, double min_score)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 64;
        group *g = realloc(l->g, cap * sizeof *g);
        if (!g) return false;
        l->g = g;
        l->cap = cap;
    }
    l->g[l->n++] = (group){exact, members, n, min_score};
    return true;
}

static void free_groups(group_list *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->g[i].members);
    free(l->g);
}

/* Row of an image id (ids ascending, as read_all returns them); n when absent. */
static size_t row_of(const int64_t *ids, size_t n, int64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ids[mid] < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && ids[lo] == id ? lo : n;
}

/* ---- the data ----------------------------------------------------------------------------- */

typedef struct {
    float *v;           /* n x dim, L2-normalised here */
    int64_t *ids;
    char (*sha)[65];
    char **paths;
    size_t n;
    int dim;
} collection_rows;

static void free_rows(collection_rows *r)
{
    for (size_t i = 0; r->paths && i < r->n; i++) free(r->paths[i]);
    free(r->paths);
    free(r->sha);
    free(r->v);
    free(r->ids);
}

static raddino_status read_rows(raddino_collection *c, collection_rows *r)
{
    raddino_collection_info ci;
    raddino_collection_get_info(c, &ci);
    r->dim = ci.dim;
    raddino_collection_row *rows;
    raddino_status st = raddino_collection_read_rows(c, &r->v, &rows, &r->n);
    if (st.code) return st;
    r->ids = malloc((r->n ? r->n : 1) * sizeof *r->ids);
    r->sha = calloc(r->n ? r->n : 1, sizeof *r->sha);
    r->paths = calloc(r->n ? r->n : 1, sizeof *r->paths);
    if (!r->ids || !r->sha || !r->paths) {
        raddino_collection_rows_free(rows, r->n);
        return (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
    }
    for (size_t i = 0; i < r->n; i++) {
        r->ids[i] = rows[i].id;
        memcpy(r->sha[i], rows[i].sha256, sizeof r->sha[i]);
        r->paths[i] = rows[i].path;     /* taken over */
        rows[i].path = NULL;
        float *x = r->v + i * (size_t)r->dim;
        double s = 0;
        for (int d = 0; d < r->dim; d++) s += (double)x[d] * x[d];
        if (s > 0)
            for (int d = 0; d < r->dim; d++) x[d] = (float)(x[d] / sqrt(s));
    }
    raddino_collection_rows_free(rows, r->n);
    return st;
}

static double cosine(const collection_rows *r, size_t a, size_t b)
{
    const float *x = r->v + a * (size_t)r->dim, *y = r->v + b * (size_t)r->dim;
    double s = 0;
    for (int d = 0; d < r->dim; d++) s += (double)x[d] * y[d];
    return s;
}

/* ---- exact groups ------------------------------------------------------------------------- */

typedef struct {
    const char *sha;
    size_t row;
} hashed_row;

static int by_hash(const void *a, const void *b)
{
    const hashed_row *x = a, *y = b;
    int c = strcmp(x->sha, y->sha);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

static raddino_status exact_groups(const collection_rows *r, group_list *out)
{
    hashed_row *order = malloc((r->n ? r->n : 1) * sizeof *order);
    if (!order) return (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
    for (size_t i = 0; i < r->n; i++) order[i] = (hashed_row){r->sha[i], i};
    qsort(order, r->n, sizeof *order, by_hash);
    raddino_status st = {RADDINO_OK, ""};
    for (size_t b = 0; b < r->n && !st.code;) {
        size_t e = b + 1;
        while (e < r->n && !strcmp(order[e].sha, order[b].sha)) e++;
        if (e - b > 1 && order[b].sha[0]) {
            size_t *m = malloc((e - b) * sizeof *m);
            if (!m || !push_group(out, 1, m, e - b, 1.0)) {
                free(m);
                st = (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
                break;
            }
            for (size_t i = b; i < e; i++) m[i - b] = order[i].row;
        }
        b = e;
    }
    free(order);
    return st;
}

/* ---- near groups -------------------------------------------------------------------------- */

/* Lowest similarity between two members: every pair for groups up to this size, else the
 * lowest linking pair found by the range search (cheaper, and what single linkage means). */
#define ALL_PAIRS_MAX 2000

static double group_min_score(const collection_rows *r, const size_t *m, size_t n, double linked)
{
    if (n > ALL_PAIRS_MAX) return linked;
    double lo = 1.0;
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++) {
            double s = cosine(r, m[i], m[j]);
            if (s < lo) lo = s;
        }
    return lo;
}

static raddino_status link_pairs(raddino_collection *c, const collection_rows *r, float threshold,
                                 size_t *parent, double *lowest_link)
{
    raddino_range_result rr;
    raddino_status st = raddino_index_range_search(raddino_collection_index(c), r->v, r->n,
                                                   threshold, &rr);
    if (st.code) return st;
    for (size_t q = 0; q < r->n; q++)
        for (size_t j = rr.lims[q]; j < rr.lims[q + 1]; j++) {
            size_t other = row_of(r->ids, r->n, rr.ids[j]);
            if (other == r->n || other == q) continue;
            raddino_links_unite(parent, q, other);
            if (rr.scores[j] < lowest_link[q]) lowest_link[q] = rr.scores[j];
        }
    raddino_range_result_free(&rr);
    return st;
}

static raddino_status near_groups(raddino_collection *c, const collection_rows *r,
                                  double threshold, group_list *out)
{
    size_t n = r->n;
    size_t *parent = malloc((n ? n : 1) * sizeof *parent);
    size_t *count = calloc(n ? n : 1, sizeof *count);
    double *lowest = malloc((n ? n : 1) * sizeof *lowest);
    if (!parent || !count || !lowest) {
        free(parent), free(count), free(lowest);
        return (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
    }
    raddino_links_init(parent, n);
    for (size_t i = 0; i < n; i++) lowest[i] = 1.0;
    raddino_status st = link_pairs(c, r, (float)threshold, parent, lowest);
    for (size_t i = 0; i < n && !st.code; i++) count[raddino_links_root(parent, i)]++;
    /* Members of each root, in row order; a group of one hash only is an exact group. */
    for (size_t root = 0; root < n && !st.code; root++) {
        if (count[root] < 2) continue;
        size_t *m = malloc(count[root] * sizeof *m);
        if (!m) {
            st = (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
            break;
        }
        size_t k = 0;
        double linked = 1.0;
        int one_hash = 1;
        for (size_t i = root; i < n; i++)
            if (raddino_links_root(parent, i) == root) {
                m[k++] = i;
                if (lowest[i] < linked) linked = lowest[i];
                if (!r->sha[i][0] || strcmp(r->sha[i], r->sha[root])) one_hash = 0;
            }
        if (one_hash) {
            free(m);
            continue;
        }
        if (!push_group(out, 0, m, k, group_min_score(r, m, k, linked))) {
            free(m);
            st = (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
        }
    }
    free(parent);
    free(count);
    free(lowest);
    return st;
}

/* Exact groups first, then near; within each, largest first, then by first row. */
static int by_size(const void *a, const void *b)
{
    const group *x = a, *y = b;
    if (x->exact != y->exact) return y->exact - x->exact;
    if (x->n != y->n) return x->n < y->n ? 1 : -1;
    return (x->members[0] > y->members[0]) - (x->members[0] < y->members[0]);
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_group(const collection_rows *r, const group *g, size_t number,
                        output_format format)
{
    if (format == OUT_JSON) {
        printf("{\"kind\": \"%s\", \"min_score\": %.6f, \"ids\": [", g->exact ? "exact" : "near",
               g->min_score);
        for (size_t i = 0; i < g->n; i++)
            printf(i ? ", %lld" : "%lld", (long long)r->ids[g->members[i]]);
        fputs("], \"paths\": [", stdout);
        for (size_t i = 0; i < g->n; i++) {
            if (i) fputs(", ", stdout);
            cli_json_string(stdout, r->paths[g->members[i]]);
        }
        if (g->exact) printf("], \"sha256\": \"%s\"}\n", r->sha[g->members[0]]);
        else puts("]}");
    } else if (format == OUT_CSV) {
        for (size_t i = 0; i < g->n; i++) {
            printf("%zu,%s,%.6f,%lld,", number, g->exact ? "exact" : "near", g->min_score,
                   (long long)r->ids[g->members[i]]);
            cli_csv_field(stdout, r->paths[g->members[i]]);
            putchar('\n');
        }
    } else {
        if (g->exact)
            printf("\n%zu files, sha256 %.16s...\n", g->n, r->sha[g->members[0]]);
        else
            printf("\n%zu images, min score %.6f\n", g->n, g->min_score);
        for (size_t i = 0; i < g->n; i++)
            printf("  %8lld  %s\n", (long long)r->ids[g->members[i]], r->paths[g->members[i]]);
    }
}

static void print_groups(const collection_rows *r, const group_list *l, const dedup_options *o)
{
    size_t n_exact = 0;
    for (size_t i = 0; i < l->n; i++) n_exact += l->g[i].exact;
    if (o->format == OUT_CSV) puts("group,kind,min_score,id,path");
    for (size_t i = 0; i < l->n; i++) {
        if (o->format == OUT_TEXT && (i == 0 || i == n_exact)) {
            if (i == 0)
                printf("exact duplicates (same content): %zu group%s\n", n_exact,
                       n_exact == 1 ? "" : "s");
            if (i == n_exact)
                printf("%snear duplicates (cosine >= %.4f): %zu group%s\n", i ? "\n" : "",
                       o->threshold, l->n - n_exact, l->n - n_exact == 1 ? "" : "s");
        }
        print_group(r, &l->g[i], i + 1, o->format);
    }
    if (o->format == OUT_TEXT && n_exact == l->n)
        printf("%snear duplicates (cosine >= %.4f): 0 groups\n", l->n ? "\n" : "",
               o->threshold);
}

/* ---- the HTML page ------------------------------------------------------------------------ */

static void html_group(html_report *h, const collection_rows *r, const group *g, size_t number)
{
    FILE *f = h->f;
    fprintf(f, "<section><h2>Group %zu: %zu %s, min score %.4f</h2><div class=\"grid\">",
            number, g->n, g->exact ? "identical files" : "near duplicates", g->min_score);
    for (size_t i = 0; i < g->n && i < HTML_MAX_THUMBS; i++) {
        size_t m = g->members[i];
        fputs("<figure>", f);
        html_thumb(h, r->paths[m]);
        fprintf(f, "<figcaption><span class=\"score\">%.4f</span> <span class=\"muted\">"
                   "id %lld</span><br>", cosine(r, g->members[0], m), (long long)r->ids[m]);
        html_escape(f, r->paths[m]);
        fputs("</figcaption></figure>", f);
    }
    if (g->n > HTML_MAX_THUMBS)
        fprintf(f, "<p class=\"muted\">%zu more images not shown</p>", g->n - HTML_MAX_THUMBS);
    fputs("</div></section>\n", f);
}

static int write_dedup_html(const collection_rows *r, const group_list *l, const dedup_options *o,
                            const char *db_path)
{
    html_report h;
    raddino_status st = html_report_open(&h, o->html, "raddino dedup", NULL);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    size_t n_exact = 0;
    for (size_t i = 0; i < l->n; i++) n_exact += l->g[i].exact;
    fputs("<p>Collection ", h.f);
    html_escape(h.f, db_path);
    fprintf(h.f, ": %zu images; %zu groups of identical files, %zu groups of near duplicates "
                 "(cosine &ge; %.4f). Scores: cosine similarity to the group's first image.</p>\n",
            r->n, n_exact, l->n - n_exact, o->threshold);
    for (size_t i = 0; i < l->n && i < HTML_MAX_SECTIONS; i++)
        html_group(&h, r, &l->g[i], i + 1);
    if (l->n > HTML_MAX_SECTIONS)
        fprintf(h.f, "<p class=\"muted\">%zu more groups not shown</p>\n",
                l->n - HTML_MAX_SECTIONS);
    st = html_report_close(&h);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}

static int parse_dedup_options(int argc, char **argv, dedup_options *o)
{
    enum { OPT_THRESHOLD = 0x400, OPT_JSON, OPT_CSV, OPT_HTML };
    static const struct option long_options[] = {
        {"threshold", required_argument, NULL, OPT_THRESHOLD},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"html", required_argument, NULL, OPT_HTML},
        {"help", no_argument, NULL, 'h'},
        CLI_COLLECTION_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (cli_collection_option(&o->coll, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        char *end;
        switch (opt) {
        case OPT_THRESHOLD:
            o->threshold = strtod(optarg, &end);
            if (end == optarg || *end || !(o->threshold > -1.0 && o->threshold <= 1.0)) {
                cli_error("--threshold: expected a cosine similarity in (-1, 1], got '%s'",
                          optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_JSON:
            if (o->format == OUT_CSV) return cli_json_csv_conflict("dedup");
            o->format = OUT_JSON;
            break;
        case OPT_CSV:
            if (o->format == OUT_JSON) return cli_json_csv_conflict("dedup");
            o->format = OUT_CSV;
            break;
        case OPT_HTML: o->html = optarg; break;
        case 'h': fputs(dedup_usage, stdout); return EXIT_OK;
        default:
            cli_error("dedup: unknown or incomplete option '%s' (see raddino dedup --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        cli_error("dedup: unexpected argument '%s'", argv[optind]);
        return EXIT_USAGE;
    }
    return -1;
}

int cmd_dedup(int argc, char **argv)
{
    dedup_options o;
    memset(&o, 0, sizeof o);
    o.coll.params = raddino_collection_default_params();
    o.threshold = DEFAULT_THRESHOLD;
    int exit_code = parse_dedup_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    raddino_collection *c = cli_open_collection(&o.coll, &exit_code);
    if (!c) return exit_code;
    collection_rows r;
    memset(&r, 0, sizeof r);
    group_list groups = {0};
    raddino_status st = read_rows(c, &r);
    if (!st.code) st = exact_groups(&r, &groups);
    if (!st.code) st = near_groups(c, &r, o.threshold, &groups);
    if (st.code) {
        cli_status_error(&st);
        exit_code = EXIT_INPUT_FAILED;
    } else {
        if (groups.n) qsort(groups.g, groups.n, sizeof *groups.g, by_size);  /* NULL when none */
        print_groups(&r, &groups, &o);
        exit_code = EXIT_OK;
        if (o.html) {
            raddino_collection_info ci;
            raddino_collection_get_info(c, &ci);
            exit_code = write_dedup_html(&r, &groups, &o, ci.db_path);
        }
    }
    free_groups(&groups);
    free_rows(&r);
    raddino_collection_close(c);
    return exit_code;
}
