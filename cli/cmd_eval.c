/* cmd_eval.c — raddino eval: retrieval quality on labelled images. Every labelled image with a
 * vector is a query; the other labelled images are ranked by exact cosine similarity (brute
 * force, so the numbers do not depend on the index type); neighbours with the query's label are
 * relevant. Precision@k, recall@k and average precision, per label and overall. */
#include "collection.h"
#include "html_report.h"
#include "csv.h"

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
    "path column holds a path (with '/': as stored, relative to the current folder) or a\n"
    "file name, which matches every stored image of that name, with or without extension.\n"
    "A label is the whole field ('A|B' is one label of its own).\n"
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
    int ks[MAX_KS], n_ks;
    int json;
    const char *html;       /* --html FILE */
} eval_options;

/* ---- the collection's images and their labels ------------------------------------------- */

typedef struct {
    float *v;               /* n x dim, normalised */
    int64_t *ids;
    char **paths;
    char **label;           /* NULL: unlabelled */
    char **group;           /* NULL: no group */
    size_t n;
    int dim;
} image_set;

static void free_images(image_set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->paths) free(s->paths[i]);
        if (s->label) free(s->label[i]);
        if (s->group) free(s->group[i]);
    }
    free(s->paths);
    free(s->label);
    free(s->group);
    free(s->v);
    free(s->ids);
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
    raddino_status st = raddino_collection_read_all(c, &s->v, &s->ids, &s->n);
    if (st.code) return st;
    size_t n = s->n ? s->n : 1;
    s->paths = calloc(n, sizeof *s->paths);
    s->label = calloc(n, sizeof *s->label);
    s->group = calloc(n, sizeof *s->group);
    if (!s->paths || !s->label || !s->group) return nomem();
    raddino_store *db = raddino_collection_store(c);
    for (size_t i = 0; i < s->n && !st.code; i++) {
        raddino_store_image img;
        int found = 0;
        st = raddino_store_find_id(db, s->ids[i], NULL, &img, &found);
        if (!st.code && !(s->paths[i] = strdup(found ? img.path : ""))) st = nomem();
        float *x = s->v + i * (size_t)s->dim;
        double sum = 0;
        for (int d = 0; d < s->dim; d++) sum += (double)x[d] * x[d];
        if (sum > 0)
            for (int d = 0; d < s->dim; d++) x[d] = (float)(x[d] / sqrt(sum));
    }
    return st;
}

/* Column named `want` (case-insensitive), or the first of the candidates; -1 when none. */
static int find_column(char **header, size_t n, const char *want, const char *const *candidates)
{
    for (const char *const *c = want ? &want : candidates; *c; c++) {
        for (size_t i = 0; i < n; i++)
            if (!strcasecmp(header[i], *c)) return (int)i;
        if (want) break;
    }
    return -1;
}

static const char *base_name(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* Lookup tables from a CSV value to stored images: rows sorted by path, by file name and by
 * file name without its extension (its stem), searched by bisection, so that a label file of
 * many rows costs n log n, not rows x n. */
typedef struct {
    const char *text;       /* the path, or its file name */
    size_t len;             /* compared length (the stem: up to the last '.') */
    size_t row;
} name_key;

typedef struct {
    name_key *by_path, *by_name, *by_stem;
    size_t n;
} name_index;

static int compare_keys(const void *a, const void *b)
{
    const name_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->text, y->text, n);
    if (c) return c;
    if (x->len != y->len) return x->len < y->len ? -1 : 1;
    return (x->row > y->row) - (x->row < y->row);
}

static raddino_status build_name_index(const image_set *s, name_index *ix)
{
    size_t n = s->n ? s->n : 1;
    ix->n = s->n;
    ix->by_path = malloc(n * sizeof *ix->by_path);
    ix->by_name = malloc(n * sizeof *ix->by_name);
    ix->by_stem = malloc(n * sizeof *ix->by_stem);
    if (!ix->by_path || !ix->by_name || !ix->by_stem) return nomem();
    for (size_t i = 0; i < s->n; i++) {
        const char *b = base_name(s->paths[i]);
        const char *dot = strrchr(b, '.');
        ix->by_path[i] = (name_key){s->paths[i], strlen(s->paths[i]), i};
        ix->by_name[i] = (name_key){b, strlen(b), i};
        ix->by_stem[i] = (name_key){b, dot ? (size_t)(dot - b) : strlen(b), i};
    }
    qsort(ix->by_path, s->n, sizeof *ix->by_path, compare_keys);
    qsort(ix->by_name, s->n, sizeof *ix->by_name, compare_keys);
    qsort(ix->by_stem, s->n, sizeof *ix->by_stem, compare_keys);
    return (raddino_status){RADDINO_OK, ""};
}

static void free_name_index(name_index *ix)
{
    free(ix->by_path);
    free(ix->by_name);
    free(ix->by_stem);
}

/* The first key equal to text in a sorted table (row 0 sorts first among equals); n if none. */
static size_t first_equal(const name_key *keys, size_t n, const char *text)
{
    name_key probe = {text, strlen(text), 0};
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_keys(&keys[mid], &probe) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static int key_is(const name_key *k, const char *text)
{
    size_t len = strlen(text);
    return k->len == len && !memcmp(k->text, text, len);
}

typedef struct {
    size_t rows, incomplete_rows, matched_rows, labelled, conflicts;
} label_counts;

static raddino_status set_text(char **slot, const char *text)
{
    if (*slot) return (raddino_status){RADDINO_OK, ""};
    *slot = strdup(text);
    return *slot ? (raddino_status){RADDINO_OK, ""} : nomem();
}

static raddino_status label_row(image_set *s, size_t i, const char *label, const char *group,
                                label_counts *counts)
{
    if (s->label[i]) {
        counts->conflicts += strcmp(s->label[i], label) != 0;
        return (raddino_status){RADDINO_OK, ""};
    }
    raddino_status st = set_text(&s->label[i], label);
    if (!st.code && group && *group) st = set_text(&s->group[i], group);
    counts->labelled++;
    return st;
}

/* Applies one CSV row to every image it names: a value with '/' is a path (normalised as the
 * store does), else a file name, with or without its extension. */
static raddino_status apply_row(image_set *s, const name_index *ix, const char *value,
                                const char *label, const char *group, label_counts *counts)
{
    const name_key *tables[2] = {ix->by_name, ix->by_stem};
    int n_tables = 2;
    char normalised[RADDINO_PATH_MAX];
    if (strchr(value, '/')) {
        if (raddino_store_normalise_path(value, normalised, sizeof normalised).code)
            return (raddino_status){RADDINO_OK, ""};
        value = normalised;
        tables[0] = ix->by_path;
        n_tables = 1;
    }
    int matched = 0;
    raddino_status st = {RADDINO_OK, ""};
    for (int t = 0; t < n_tables && !st.code; t++)
        for (size_t j = first_equal(tables[t], ix->n, value);
             j < ix->n && key_is(&tables[t][j], value) && !st.code; j++) {
            /* a file named exactly like a stem ("a" and "a.png") is found twice: once counts */
            if (t == 1 && s->label[tables[t][j].row] &&
                !strcmp(base_name(s->paths[tables[t][j].row]), value))
                continue;
            matched = 1;
            st = label_row(s, tables[t][j].row, label, group, counts);
        }
    counts->matched_rows += matched;
    return st;
}

static const char *const path_names[] = {"path", "file", "filename", "file_name", "image",
                                         "image_path", "Image Index", "image_id", NULL};
static const char *const label_names[] = {"label", "finding", "Finding Labels", "class",
                                          "diagnosis", NULL};
static const char *const patient_names[] = {"patient", "patient_id", "patientid",
                                            "Patient ID", NULL};

/* Reads the CSV into s->label / s->group. *dicom_groups = 1 when the group is to come from
 * the stored DICOM patient keys. */
static raddino_status read_labels(const eval_options *o, image_set *s, label_counts *counts,
                                  int *dicom_groups)
{
    csv_reader r;
    raddino_status st = csv_open(&r, o->labels);
    if (st.code) return st;
    int got = csv_next(&r, &st);
    int path_col = -1, label_col = -1, group_col = -1;
    if (got == 0) st = (raddino_status){RADDINO_ERR_FORMAT, ""};
    if (got > 0) {
        path_col = find_column(r.fields, r.n_fields, o->path_column, path_names);
        label_col = find_column(r.fields, r.n_fields, o->label_column, label_names);
        if (o->group_column) {
            int patient = !strcasecmp(o->group_column, "patient");
            group_col = find_column(r.fields, r.n_fields, patient ? NULL : o->group_column,
                                    patient ? patient_names : NULL);
            *dicom_groups = patient && group_col < 0;
            if (group_col < 0 && !patient)
                snprintf(st.message, sizeof st.message, "no column '%s'", o->group_column);
        }
        if (path_col < 0) snprintf(st.message, sizeof st.message, "no path column%s%s",
                                   o->path_column ? " " : " (see --path-column)",
                                   o->path_column ? o->path_column : "");
        if (label_col < 0) snprintf(st.message, sizeof st.message, "no label column%s%s",
                                    o->label_column ? " " : " (see --label-column)",
                                    o->label_column ? o->label_column : "");
        if (st.message[0]) st.code = RADDINO_ERR_FORMAT;
    }
    if (st.code) {
        char why[RADDINO_MESSAGE_MAX];
        snprintf(why, sizeof why, "%s", st.message[0] ? st.message : "empty file");
        if (got >= 0)
            snprintf(st.message, sizeof st.message, "%.300s: %.200s", o->labels, why);
        csv_close(&r);
        return st;
    }
    name_index ix = {0};
    st = build_name_index(s, &ix);
    while (!st.code && (got = csv_next(&r, &st)) > 0) {
        counts->rows++;
        size_t need = (size_t)(path_col > label_col ? path_col : label_col);
        if (group_col > (int)need) need = (size_t)group_col;
        if (r.n_fields <= need || !r.fields[path_col][0] || !r.fields[label_col][0]) {
            counts->incomplete_rows++;      /* no path or no label: nothing to apply */
            continue;
        }
        st = apply_row(s, &ix, r.fields[path_col], r.fields[label_col],
                       group_col >= 0 ? r.fields[group_col] : NULL, counts);
    }
    free_name_index(&ix);
    csv_close(&r);
    return st;
}

static raddino_status dicom_groups(raddino_collection *c, image_set *s)
{
    raddino_store *db = raddino_collection_store(c);
    raddino_status st = {RADDINO_OK, ""};
    for (size_t i = 0; i < s->n && !st.code; i++) {
        if (!s->label[i]) continue;
        raddino_dicom_info d;
        int found = 0;
        st = raddino_store_get_dicom(db, s->ids[i], &d, &found);
        if (!st.code && found && d.patient_key[0]) st = set_text(&s->group[i], d.patient_key);
    }
    return st;
}

/* ---- metrics ------------------------------------------------------------------------------ */

typedef struct {
    char *label;            /* NULL: overall */
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
        if (s->group[qi] && s->group[ji] && !strcmp(s->group[qi], s->group[ji])) continue;
        const float *y = s->v + ji * (size_t)s->dim;
        double dot = 0;
        for (int d = 0; d < s->dim; d++) dot += (double)x[d] * y[d];
        int r = !strcmp(s->label[qi], s->label[ji]);
        cand[nc++] = (candidate){(float)dot, s->ids[ji], r};
        rel += (size_t)r;
    }
    qsort(cand, nc, sizeof *cand, by_score);
    *n_cand = nc;
    return rel;
}

static void add_query(tally *t, const eval_options *o, const candidate *cand, size_t nc,
                      size_t rel)
{
    size_t hits = 0;
    double ap = 0;
    for (size_t i = 0; i < nc; i++) {
        if (cand[i].relevant) {
            hits++;
            ap += (double)hits / (double)(i + 1);
        }
        for (int k = 0; k < o->n_ks; k++)
            if (i + 1 == (size_t)o->ks[k]) {
                t->p[k] += (double)hits / o->ks[k];
                t->r[k] += (double)hits / (double)rel;
            }
    }
    for (int k = 0; k < o->n_ks; k++)   /* fewer candidates than k: all were seen */
        if ((size_t)o->ks[k] > nc) {
            t->p[k] += (double)hits / o->ks[k];
            t->r[k] += (double)hits / (double)rel;
        }
    t->ap += ap / (double)rel;
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
    tally *t = calloc(s->n + 1, sizeof *t);
    if (!lab || !cand || !t) {
        free(lab), free(cand), free(t);
        return nomem();
    }
    for (size_t i = 0; i < s->n; i++)
        if (s->label[i]) lab[m++] = i;
    size_t n_t = 1;
    *skipped = 0;
    for (size_t q = 0; q < m; q++) {
        size_t nc, rel = score_query(s, lab, m, q, cand, &nc);
        if (!rel) {
            ++*skipped;
            continue;
        }
        size_t li = 1;
        while (li < n_t && strcmp(t[li].label, s->label[lab[q]])) li++;
        if (li == n_t) t[n_t++].label = s->label[lab[q]];
        add_query(&t[0], o, cand, nc, rel);
        add_query(&t[li], o, cand, nc, rel);
    }
    qsort(t + 1, n_t - 1, sizeof *t, by_label);
    free(lab);
    free(cand);
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

static void html_label_examples(html_report *h, const image_set *s, const tally *x)
{
    FILE *f = h->f;
    fputs("<section><h2>", f);
    html_escape(f, x->label);
    double n = x->queries ? (double)x->queries : 1.0;
    fprintf(f, "</h2><p>%zu queries, mAP %.4f</p><div class=\"grid\">", x->queries, x->ap / n);
    size_t shown = 0, total = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (!s->label[i] || strcmp(s->label[i], x->label)) continue;
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
    for (size_t i = 1; i < n_t && i <= HTML_MAX_SECTIONS; i++) html_label_examples(&h, s, &t[i]);
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
           OPT_AT };
    static const struct option long_options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"group-column", required_argument, NULL, OPT_GROUP},
        {"path-column", required_argument, NULL, OPT_PATHCOL},
        {"label-column", required_argument, NULL, OPT_LABELCOL},
        {"json", no_argument, NULL, OPT_JSON},
        {"html", required_argument, NULL, OPT_HTML},
        {"at", required_argument, NULL, OPT_AT},
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
    if (!st.code && from_dicom) st = dicom_groups(c, &s);
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
