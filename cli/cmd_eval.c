/* cmd_eval.c — raddino eval: retrieval quality on labelled images. Every labelled image with a
 * vector is a query; the other labelled images are ranked by exact cosine similarity (brute
 * force, so the numbers do not depend on the index type); neighbours with the query's label are
 * relevant. Precision@k, recall@k and average precision, per label and overall. */
#include "collection.h"
#include "html_report.h"
#include "labels.h"
#include "raddino_analysis.h"

#include <ctype.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char eval_usage[] =
    "usage: raddino eval [--db FILE] --labels FILE.csv [--at 1,5,10] [--group-column NAME]\n"
    "                    [--path-column NAME] [--label-column NAME] [--json]\n"
    "                    [--html FILE]\n"
    "\n"
    "Measures retrieval by label: each labelled image is a query, the other labelled images\n"
    "are ranked by cosine similarity (exact), and those with the same label are relevant.\n"
    "Reports P@k, recall@k and mAP per label and overall (the mean over queries); queries\n"
    "whose label no other candidate has are skipped (counted).\n"
    "\n"
    "The CSV (header row first; quoted fields, CRLF fine) maps an image to a label. Its\n"
    "path column holds a path (with '/': relative ones from the CSV's folder) or a file\n"
    "name, which matches every stored image of that name, with or without extension.\n"
    "A label is the whole field ('A|B' is one label of its own) unless --multi-label.\n"
    "\n"
    "options:\n"
    "  --labels FILE      the label CSV\n"
    "  --at LIST          cut-offs k of P@k and recall@k (default 1,5,10; -k LIST: old\n"
    "                     spelling)\n"
    "  --group-column C   exclude neighbours of the query's group (e.g. the same patient:\n"
    "                     near-duplicates of one person inflate the numbers). 'patient' is\n"
    "                     the column patient, patient_id, patientid or 'Patient ID', else,\n"
    "                     when the CSV has none, the DICOM patient key stored with the image\n"
    "                     (images without one are in no group)\n"
    "  --path-column C    default: the first of path, file, filename, file_name, image,\n"
    "                     image_path, 'Image Index', image_id\n"
    "  --label-column C   default: the first of label, finding, 'Finding Labels', class,\n"
    "                     diagnosis\n"
    "  --multi-label SEP  a field holds several labels ('Effusion|Infiltration' with '|');\n"
    "                     'No Finding' is no label. Relevant: sharing any label; a query\n"
    "                     counts for each of its labels; images without one only rank\n"
    "                     as candidates\n"
    "  --json             one object: {\"overall\": {\"P@1\": ..., \"recall@1\": ..., \"mAP\": ...},\n"
    "                     \"per_label\": {LABEL: {...}}, \"queries\": N, ...}\n"
    "  --html FILE        also write a self-contained HTML page: the table, a P@k plot\n"
    "                     (inline SVG) and example thumbnails of each label\n"
    CLI_DB_HELP
    "  -h, --help         this help\n";

#define MAX_KS 16
#define HTML_EXAMPLES 6     /* example thumbnails per label on the HTML page */

typedef struct {
    const char *db, *labels, *group_column, *path_column, *label_column;
    const char *multi_label;    /* --multi-label SEP */
    int ks[MAX_KS], n_ks;
    int json;
    const char *html;       /* --html FILE */
} eval_options;

/* ---- the collection's images and their labels ------------------------------------------- */

typedef struct {
    float *v;               /* n x dim, normalised */
    int64_t *ids;
    char **paths;
    char (*patient_key)[65];    /* the DICOM patient key, "" when none */
    size_t n;
    int dim;
    cli_labels lab;         /* labels, groups (lab.group) */
} image_set;

static void free_images(image_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->paths) free(s->paths[i]);
    free(s->paths);
    free(s->patient_key);
    free(s->v);
    free(s->ids);
    cli_labels_free(&s->lab);
}

static raddino_status nomem(void)
{
    raddino_status st = {RADDINO_ERR_NOMEM, "out of memory"};
    return st;
}

static raddino_status read_images(raddino_collection *c, image_set *s)
{
    raddino_collection_info ci;
    raddino_collection_get_info(c, &ci);
    s->dim = ci.dim;
    raddino_collection_row *rows;
    raddino_status st = raddino_collection_read_rows(c, &s->v, &rows, &s->n);
    if (st.code) return st;
    size_t n = s->n ? s->n : 1;
    s->ids = malloc(n * sizeof *s->ids);
    s->paths = calloc(n, sizeof *s->paths);
    s->patient_key = calloc(n, sizeof *s->patient_key);
    if (!s->ids || !s->paths || !s->patient_key) {
        raddino_collection_rows_free(rows, s->n);
        return nomem();
    }
    for (size_t i = 0; i < s->n; i++) {
        s->ids[i] = rows[i].id;
        s->paths[i] = rows[i].path;     /* taken over */
        rows[i].path = NULL;
        if (rows[i].has_dicom) memcpy(s->patient_key[i], rows[i].patient_key, 65);
        float *x = s->v + i * (size_t)s->dim;
        double sum = 0;
        for (int d = 0; d < s->dim; d++) sum += (double)x[d] * x[d];
        if (sum > 0)
            for (int d = 0; d < s->dim; d++) x[d] = (float)(x[d] / sqrt(sum));
    }
    raddino_collection_rows_free(rows, s->n);
    return st;
}

typedef struct {
    size_t rows, incomplete_rows, matched_rows, labelled, conflicts;
} label_counts;

/* Reads the CSV into s->lab (labels and groups). */
static raddino_status read_labels(const eval_options *o, image_set *s, label_counts *counts,
                                  int *dicom_groups)
{
    cli_label_options lo = {o->path_column, o->label_column, o->group_column, o->multi_label,
                            o->multi_label ? "No Finding" : NULL};
    raddino_status st = cli_labels_read(o->labels, &lo, s->paths, s->n, &s->lab);
    if (st.code) return st;
    *dicom_groups = s->lab.dicom_groups;
    counts->rows = s->lab.rows;
    counts->incomplete_rows = s->lab.incomplete_rows;
    counts->matched_rows = s->lab.matched_rows;
    counts->labelled = s->lab.labelled_images;
    counts->conflicts = s->lab.conflicts;
    return st;
}

/* Images labelled without a group: their DICOM patient key (the rows read_images kept). */
static raddino_status dicom_groups(image_set *s)
{
    raddino_status st = {RADDINO_OK, ""};
    for (size_t i = 0; i < s->n && !st.code; i++) {
        if (!s->lab.labelled[i] || s->lab.group[i]) continue;
        if (s->patient_key[i][0] && !(s->lab.group[i] = strdup(s->patient_key[i]))) st = nomem();
    }
    return st;
}

/* Image i and j share a label. */
static int share_label(const image_set *s, size_t i, size_t j)
{
    const uint8_t *a = s->lab.Y + i * (size_t)s->lab.n_labels;
    const uint8_t *b = s->lab.Y + j * (size_t)s->lab.n_labels;
    for (int l = 0; l < s->lab.n_labels; l++)
        if (a[l] && b[l]) return 1;
    return 0;
}

/* ---- metrics ------------------------------------------------------------------------------ */

typedef struct {
    const char *label;      /* NULL: overall */
    size_t queries;
    double p[MAX_KS], r[MAX_KS], ap;
} tally;

typedef struct {
    float score;
    int64_t id;
    int relevant;
} candidate;

static int by_score(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->score != y->score) return x->score < y->score ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* Ranks the candidates of query q; returns the number of relevant ones (0: skipped). */
static size_t score_query(const image_set *s, const size_t *lab, size_t m, size_t q,
                          candidate *cand, size_t *n_cand)
{
    size_t qi = lab[q], rel = 0, nc = 0;
    const float *x = s->v + qi * (size_t)s->dim;
    for (size_t j = 0; j < m; j++) {
        size_t ji = lab[j];
        if (j == q) continue;
        char *const *group = s->lab.group;
        if (group[qi] && group[ji] && !strcmp(group[qi], group[ji])) continue;
        const float *y = s->v + ji * (size_t)s->dim;
        double dot = 0;
        for (int d = 0; d < s->dim; d++) dot += (double)x[d] * y[d];
        int r = share_label(s, qi, ji);
        cand[nc++] = (candidate){(float)dot, s->ids[ji], r};
        rel += (size_t)r;
    }
    qsort(cand, nc, sizeof *cand, by_score);
    *n_cand = nc;
    return rel;
}

static void add_query(tally *t, const eval_options *o, const candidate *cand, size_t nc,
                      size_t rel, unsigned char *relevant)
{
    double p[MAX_KS], r[MAX_KS], ap;
    for (size_t i = 0; i < nc; i++) relevant[i] = (unsigned char)cand[i].relevant;
    raddino_retrieval_metrics(relevant, nc, rel, o->ks, o->n_ks, p, r, &ap);
    for (int k = 0; k < o->n_ks; k++) {
        t->p[k] += p[k];
        t->r[k] += r[k];
    }
    t->ap += ap;
    t->queries++;
}

static int by_label(const void *a, const void *b)
{
    return strcmp(((const tally *)a)->label, ((const tally *)b)->label);
}

/* Evaluates every labelled query; tallies[0] is overall, then one per label (sorted). */
static raddino_status evaluate(const image_set *s, const eval_options *o, tally **out,
                               size_t *n_out, size_t *skipped)
{
    size_t m = 0;
    size_t *lab = malloc((s->n ? s->n : 1) * sizeof *lab);
    candidate *cand = malloc((s->n ? s->n : 1) * sizeof *cand);
    unsigned char *relevant = malloc(s->n ? s->n : 1);
    tally *t = calloc((size_t)s->lab.n_labels + 1, sizeof *t);
    if (!lab || !cand || !relevant || !t) {
        free(lab), free(cand), free(relevant), free(t);
        return nomem();
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->lab.labelled[i]) lab[m++] = i;
    /* one tally per label that has queries; labels are sorted already */
    int L = s->lab.n_labels;
    int *slot = malloc((size_t)(L ? L : 1) * sizeof *slot);
    if (!slot) {
        free(lab), free(cand), free(relevant), free(t);
        return nomem();
    }
    size_t n_t = 1;
    for (int l = 0; l < L; l++) slot[l] = 0;   /* a tally once the label has a query */
    *skipped = 0;
    for (size_t q = 0; q < m; q++) {
        const uint8_t *y = s->lab.Y + lab[q] * (size_t)L;
        size_t nc, rel = 0;
        for (int l = 0; l < L && !rel; l++) rel = y[l];
        if (rel) rel = score_query(s, lab, m, q, cand, &nc);
        if (!rel) {     /* no label (No Finding), or no other image shares one */
            ++*skipped;
            continue;
        }
        add_query(&t[0], o, cand, nc, rel, relevant);
        for (int l = 0; l < L; l++) {
            if (!y[l]) continue;
            if (!slot[l]) {
                slot[l] = (int)n_t;
                t[n_t++].label = s->lab.names[l];
            }
            add_query(&t[slot[l]], o, cand, nc, rel, relevant);
        }
    }
    free(slot);
    qsort(t + 1, n_t - 1, sizeof *t, by_label);
    free(lab);
    free(cand);
    free(relevant);
    *out = t;
    *n_out = n_t;
    return (raddino_status){RADDINO_OK, ""};
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_tally_json(const tally *t, const eval_options *o)
{
    double n = t->queries ? (double)t->queries : 1.0;
    fputs("{", stdout);
    for (int k = 0; k < o->n_ks; k++) printf("\"P@%d\": %.6f, ", o->ks[k], t->p[k] / n);
    for (int k = 0; k < o->n_ks; k++) printf("\"recall@%d\": %.6f, ", o->ks[k], t->r[k] / n);
    printf("\"mAP\": %.6f, \"queries\": %zu}", t->ap / n, t->queries);
}

static void print_results(const tally *t, size_t n_t, const eval_options *o,
                          const label_counts *c, size_t skipped)
{
    if (o->json) {
        fputs("{\"overall\": ", stdout);
        print_tally_json(&t[0], o);
        fputs(", \"per_label\": {", stdout);
        for (size_t i = 1; i < n_t; i++) {
            if (i > 1) fputs(", ", stdout);
            cli_json_string(stdout, t[i].label);
            fputs(": ", stdout);
            print_tally_json(&t[i], o);
        }
        printf("}, \"queries\": %zu, \"skipped\": %zu, \"labelled\": %zu, \"csv_rows\": %zu, "
               "\"incomplete_rows\": %zu, \"unmatched_rows\": %zu, \"conflicts\": %zu}\n",
               t[0].queries, skipped, c->labelled, c->rows, c->incomplete_rows,
               c->rows - c->incomplete_rows - c->matched_rows, c->conflicts);
        return;
    }
    printf("%zu CSV rows (%zu without a path or label), %zu matched stored images: %zu labelled "
           "images, %zu queries (%zu skipped: no other image with their label)\n",
           c->rows, c->incomplete_rows, c->matched_rows, c->labelled, t[0].queries, skipped);
    if (c->conflicts)
        printf("%zu images named by rows with another label kept their first label\n",
               c->conflicts);
    printf("\n%-24s %7s", "label", "queries");
    for (int k = 0; k < o->n_ks; k++) printf("  %6s%-3d", "P@", o->ks[k]);
    for (int k = 0; k < o->n_ks; k++) printf("  %6s%-3d", "R@", o->ks[k]);
    printf("  %7s\n", "mAP");
    for (size_t i = n_t > 1 ? 1 : 0; i <= n_t; i++) {
        const tally *x = i == n_t ? &t[0] : &t[i];
        if (i == n_t && n_t == 1) break;
        double n = x->queries ? (double)x->queries : 1.0;
        printf("%-24.24s %7zu", i == n_t ? "overall" : x->label, x->queries);
        for (int k = 0; k < o->n_ks; k++) printf("  %9.4f", x->p[k] / n);
        for (int k = 0; k < o->n_ks; k++) printf("  %9.4f", x->r[k] / n);
        printf("  %7.4f\n", x->ap / n);
    }
}

/* ---- the HTML page ------------------------------------------------------------------------ */

static void html_table_row(FILE *f, const tally *x, const eval_options *o, const char *label)
{
    double n = x->queries ? (double)x->queries : 1.0;
    fputs("<tr><td>", f);
    html_escape(f, label);
    fprintf(f, "</td><td>%zu</td>", x->queries);
    for (int k = 0; k < o->n_ks; k++) fprintf(f, "<td>%.4f</td>", x->p[k] / n);
    for (int k = 0; k < o->n_ks; k++) fprintf(f, "<td>%.4f</td>", x->r[k] / n);
    fprintf(f, "<td>%.4f</td></tr>\n", x->ap / n);
}

static void html_table(FILE *f, const tally *t, size_t n_t, const eval_options *o)
{
    fputs("<table><thead><tr><th>label</th><th>queries</th>", f);
    for (int k = 0; k < o->n_ks; k++) fprintf(f, "<th>P@%d</th>", o->ks[k]);
    for (int k = 0; k < o->n_ks; k++) fprintf(f, "<th>R@%d</th>", o->ks[k]);
    fputs("<th>mAP</th></tr></thead><tbody>\n", f);
    for (size_t i = 1; i < n_t; i++) html_table_row(f, &t[i], o, t[i].label);
    html_table_row(f, &t[0], o, "overall");
    fputs("</tbody></table>\n", f);
}

/* P@k against k (evenly spaced, labelled), one line per label and a thick one overall. */
static void html_precision_plot(FILE *f, const tally *t, size_t n_t, const eval_options *o)
{
    const double W = 640, H = 320, L = 48, R = 16, T = 12, B = 36;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" font-size=\"11\">", W, H, W, H);
    for (int g = 0; g <= 4; g++) {
        double y = T + (H - T - B) * (1.0 - g / 4.0);
        fprintf(f, "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                   "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>", L, y, W - R,
                y, L - 6, y + 4, g / 4.0);
    }
    double step = o->n_ks > 1 ? (W - L - R - 20) / (o->n_ks - 1) : 0;
    for (int k = 0; k < o->n_ks; k++)
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">P@%d</text>",
                L + 10 + step * k + (o->n_ks > 1 ? 0 : (W - L - R - 20) / 2), H - B + 18, o->ks[k]);
    for (size_t i = n_t > 1 ? 1 : 0; i <= n_t; i++) {
        if (i == n_t && n_t == 1) break;
        const tally *x = i == n_t ? &t[0] : &t[i];
        const char *name = i == n_t ? "overall" : x->label;
        double n = x->queries ? (double)x->queries : 1.0;
        char colour[48] = "#000";
        if (i != n_t) html_cluster_colour((int)i - 1, colour, sizeof colour);
        fprintf(f, "<g stroke=\"%s\" fill=\"%s\"><title>", colour, colour);
        html_escape(f, name);
        fputs("</title><polyline fill=\"none\" stroke-width=\"", f);
        fputs(i == n_t ? "3" : "1.5", f);
        fputs("\" points=\"", f);
        for (int k = 0; k < o->n_ks; k++)
            fprintf(f, "%s%.1f,%.1f", k ? " " : "",
                    L + 10 + step * k + (o->n_ks > 1 ? 0 : (W - L - R - 20) / 2),
                    T + (H - T - B) * (1.0 - x->p[k] / n));
        fputs("\"/></g>", f);
    }
    fputs("</svg>\n", f);
}

static void html_label_examples(html_report *h, const image_set *s, const tally *x, int l)
{
    FILE *f = h->f;
    fputs("<section><h2>", f);
    html_escape(f, x->label);
    double n = x->queries ? (double)x->queries : 1.0;
    fprintf(f, "</h2><p>%zu queries, mAP %.4f</p><div class=\"grid\">", x->queries, x->ap / n);
    size_t shown = 0, total = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->lab.Y[i * (size_t)s->lab.n_labels + l]) continue;
        total++;
        if (shown == HTML_EXAMPLES) continue;
        fputs("<figure>", f);
        html_thumb(h, s->paths[i]);
        fprintf(f, "<figcaption><span class=\"muted\">id %lld</span><br>", (long long)s->ids[i]);
        html_escape(f, s->paths[i]);
        fputs("</figcaption></figure>", f);
        shown++;
    }
    if (total > shown)
        fprintf(f, "<p class=\"muted\">%zu more images with this label</p>", total - shown);
    fputs("</div></section>\n", f);
}

static int write_eval_html(const image_set *s, const tally *t, size_t n_t, const eval_options *o,
                           const label_counts *c, size_t skipped, const char *db_path)
{
    html_report h;
    raddino_status st = html_report_open(&h, o->html, "raddino eval", NULL);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    fputs("<p>Collection ", h.f);
    html_escape(h.f, db_path);
    fputs(", labels ", h.f);
    html_escape(h.f, o->labels);
    fprintf(h.f, ": %zu labelled images, %zu queries (%zu skipped: no other image with their "
                 "label). Each labelled image queries the others (exact cosine ranking); "
                 "relevant: the same label%s.</p>\n", c->labelled, t[0].queries, skipped,
            o->group_column ? ", neighbours of the query's group left out" : "");
    fputs("<section><h2>Retrieval by label</h2>", h.f);
    html_table(h.f, t, n_t, o);
    fputs("<h2>Precision at k</h2>", h.f);
    html_precision_plot(h.f, t, n_t, o);
    fputs("</section>\n", h.f);
    for (size_t i = 1; i < n_t && i <= HTML_MAX_SECTIONS; i++) {
        int l = 0;
        while (s->lab.names[l] != t[i].label) l++;
        html_label_examples(&h, s, &t[i], l);
    }
    if (n_t > HTML_MAX_SECTIONS + 1)
        fprintf(h.f, "<p class=\"muted\">%zu more labels not shown</p>\n",
                n_t - 1 - HTML_MAX_SECTIONS);
    st = html_report_close(&h);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}

/* ---- the command -------------------------------------------------------------------------- */

static bool parse_ks(const char *arg, eval_options *o)
{
    o->n_ks = 0;
    const char *p = arg;
    while (*p) {
        char *end;
        long k = strtol(p, &end, 10);
        if (end == p || k < 1 || k > 100000 || o->n_ks == MAX_KS || (*end && *end != ',')) {
            cli_error("--at: expected a comma-separated list of cut-offs such as 1,5,10 "
                      "(at most %d), got '%s'", MAX_KS, arg);
            return false;
        }
        o->ks[o->n_ks++] = (int)k;
        p = *end ? end + 1 : end;
    }
    if (!o->n_ks) cli_error("--at: empty list");
    return o->n_ks > 0;
}

static int parse_eval_options(int argc, char **argv, eval_options *o)
{
    enum { OPT_LABELS = 0x400, OPT_GROUP, OPT_PATHCOL, OPT_LABELCOL, OPT_JSON, OPT_DB, OPT_HTML,
           OPT_AT, OPT_MULTI };
    static const struct option long_options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"group-column", required_argument, NULL, OPT_GROUP},
        {"path-column", required_argument, NULL, OPT_PATHCOL},
        {"label-column", required_argument, NULL, OPT_LABELCOL},
        {"json", no_argument, NULL, OPT_JSON},
        {"html", required_argument, NULL, OPT_HTML},
        {"at", required_argument, NULL, OPT_AT},
        {"multi-label", required_argument, NULL, OPT_MULTI},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int opt;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hk:", long_options, NULL)) != -1) {
        switch (opt) {
        case 'k':
            cli_deprecated("eval", "-k LIST", "--at LIST");
            if (!parse_ks(optarg, o)) return EXIT_USAGE;
            break;
        case OPT_AT: if (!parse_ks(optarg, o)) return EXIT_USAGE; break;
        case OPT_DB: o->db = optarg; break;
        case OPT_LABELS: o->labels = optarg; break;
        case OPT_GROUP: o->group_column = optarg; break;
        case OPT_PATHCOL: o->path_column = optarg; break;
        case OPT_LABELCOL: o->label_column = optarg; break;
        case OPT_JSON: o->json = 1; break;
        case OPT_HTML: o->html = optarg; break;
        case OPT_MULTI: o->multi_label = optarg; break;
        case 'h': fputs(eval_usage, stdout); return EXIT_OK;
        default:
            cli_error("eval: unknown or incomplete option '%s' (see raddino eval --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || !o->labels) {
        cli_error("eval: %s (see raddino eval --help)",
                  optind < argc ? "unexpected argument" : "--labels FILE.csv is required");
        return EXIT_USAGE;
    }
    return -1;
}

int cmd_eval(int argc, char **argv)
{
    eval_options o;
    memset(&o, 0, sizeof o);
    o.ks[0] = 1, o.ks[1] = 5, o.ks[2] = 10, o.n_ks = 3;
    int exit_code = parse_eval_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    cli_collection_options co;
    memset(&co, 0, sizeof co);
    co.db = o.db;
    co.params = raddino_collection_default_params();
    co.params.no_index = 1;
    raddino_collection *c = cli_open_collection(&co, &exit_code);
    if (!c) return exit_code;
    image_set s;
    memset(&s, 0, sizeof s);
    label_counts counts = {0};
    int from_dicom = 0;
    tally *t = NULL;
    size_t n_t = 0, skipped = 0;
    raddino_status st = read_images(c, &s);
    if (!st.code) st = read_labels(&o, &s, &counts, &from_dicom);
    if (!st.code && from_dicom) st = dicom_groups(&s);
    if (!st.code) st = evaluate(&s, &o, &t, &n_t, &skipped);
    if (st.code) {
        cli_status_error(&st);
        exit_code = EXIT_INPUT_FAILED;
    } else if (!counts.labelled) {
        cli_error("%s: no row names a stored image (see --path-column)", o.labels);
        exit_code = EXIT_INPUT_FAILED;
    } else {
        print_results(t, n_t, &o, &counts, skipped);
        exit_code = EXIT_OK;
        if (o.html) {
            raddino_collection_info ci;
            raddino_collection_get_info(c, &ci);
            exit_code = write_eval_html(&s, t, n_t, &o, &counts, skipped, ci.db_path);
        }
    }
    free(t);
    free_images(&s);
    raddino_collection_close(c);
    return exit_code;
}
