/* cmd_probe.c — raddino probe: how well do the stored embeddings classify? Labels from a CSV,
 * the protocol and the numbers from the probe library (probe/raddino_probe.h): out-of-fold
 * logistic regression and cosine kNN scores, AUROC and AUPRC per label with bootstrap
 * intervals. `probe train` saves a logistic probe with the collection's model identity;
 * `probe predict` scores images or a collection with it, refusing vectors of another model.
 *
 * This file only gathers inputs (vectors, labels, groups, neighbour lists through the
 * collection's index) and writes outputs (text, JSON, predictions CSV, HTML, probe files). */
#include "collection.h"
#include "html_report.h"
#include "labels.h"
#include "raddino_probe.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const char probe_usage[] =
    "usage: raddino probe [--db FILE] --labels FILE.csv [OPTIONS]\n"
    "       raddino probe train [--db FILE] --labels FILE.csv [OPTIONS] --out PROBE.json\n"
    "       raddino probe predict PROBE.json (IMAGE... | --db FILE) [--json] [model options]\n"
    "\n"
    "Classification on the stored CLS vectors, one-vs-rest per label: L2-regularised\n"
    "logistic regression on standardised vectors (C chosen per label by inner\n"
    "cross-validation) and cosine kNN through the index (k chosen the same way). Stratified\n"
    "k-fold cross-validation grouped by --group-column (a patient never in two folds) gives\n"
    "every image an out-of-fold score; reported per label: AUROC and AUPRC with bootstrap 95%\n"
    "intervals (patients resampled), prevalence and the chance baseline (AUROC 0.5, AUPRC =\n"
    "prevalence), and macro averages.\n"
    "\n"
    "labels (as raddino eval reads them):\n"
    "  --labels FILE      CSV naming images by path (relative: from the CSV's folder) or file\n"
    "                     name, with a label column\n"
    "  --multi-label SEP  a field holds several labels ('Effusion|Infiltration' with '|');\n"
    "                     'No Finding' is no label (a negative for every label)\n"
    "  --group-column C   the patient column ('patient': patient, patient_id, patientid,\n"
    "                     'Patient ID', else the stored DICOM patient key); without it every\n"
    "                     image is its own group\n"
    "  --path-column C, --label-column C   as in raddino eval\n"
    "\n"
    "protocol:\n"
    "  --method M         logreg, knn or both (default both; train: logreg)\n"
    "  --folds N          outer folds (default 5)\n"
    "  --inner-folds N    inner folds choosing C and k (default 3)\n"
    "  --c-grid LIST      candidate C (default 0.0001,0.001,0.01,0.1,1)\n"
    "  --k-grid LIST      candidate k (default 1,5,10,20,50)\n"
    "  --tolerance T      logistic regression: max |gradient| of the objective divided by\n"
    "                     C n (default 1e-4)\n"
    "  --bootstrap N      bootstrap replicates (default 1000; 0: no intervals)\n"
    "  --seed N           folds and bootstrap (default 1234)\n"
    "\n"
    "output:\n"
    "  --json             one JSON object instead of the table\n"
    "  --predictions FILE CSV of every image's out-of-fold scores: id,path,fold,label,\n"
    "                     truth,logreg,knn (one row per image and label)\n"
    "  --html FILE        a self-contained page: the table and one ROC curve per label\n"
    "  --out PROBE.json   (train) the trained probe\n"
    "  --json             (predict) one JSON line per image instead of CSV\n"
    "  model options      (predict with image files) as raddino embed: --model DIR, --repo,\n"
    "                     --revision, --cache-dir, --weights, --window...; they must name\n"
    "                     the model the probe was trained on\n"
    CLI_DB_HELP
    "  -h, --help         this help\n";

#define MAX_GRID 32

typedef struct {
    const char *db, *labels, *predictions, *html, *out, *probe_file;
    cli_label_options lo;
    int json, csv;
    raddino_probe_params p;
    double c_grid[MAX_GRID];
    int k_grid[MAX_GRID];
    cli_model_options model;
    char **images;          /* predict: image files */
    int n_images;
    int mode;               /* 0 cross-validate, 1 train, 2 predict */
} probe_options;

/* ---- options ------------------------------------------------------------------------------ */

static bool parse_list(const char *option, const char *arg, double *out, int *n, bool integer)
{
    *n = 0;
    const char *p = arg;
    while (*p) {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !(v > 0) || !isfinite(v) || *n == MAX_GRID ||
            (*end && *end != ',') || (integer && (v != floor(v) || v > 100000))) {
            cli_error("%s: expected a comma-separated list of positive %s (at most %d), got '%s'",
                      option, integer ? "integers" : "numbers", MAX_GRID, arg);
            return false;
        }
        out[(*n)++] = v;
        p = *end ? end + 1 : end;
    }
    if (!*n) cli_error("%s: empty list", option);
    return *n > 0;
}

static int parse_probe_options(int argc, char **argv, probe_options *o)
{
    enum { OPT_DB = 0x400, OPT_LABELS, OPT_MULTI, OPT_GROUP, OPT_PATHCOL, OPT_LABELCOL,
           OPT_METHOD, OPT_FOLDS, OPT_INNER, OPT_CGRID, OPT_KGRID, OPT_TOL, OPT_BOOT, OPT_SEED,
           OPT_JSON, OPT_PRED, OPT_HTML, OPT_OUT, OPT_CSV };
    static const struct option long_options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"labels", required_argument, NULL, OPT_LABELS},
        {"multi-label", required_argument, NULL, OPT_MULTI},
        {"group-column", required_argument, NULL, OPT_GROUP},
        {"path-column", required_argument, NULL, OPT_PATHCOL},
        {"label-column", required_argument, NULL, OPT_LABELCOL},
        {"method", required_argument, NULL, OPT_METHOD},
        {"folds", required_argument, NULL, OPT_FOLDS},
        {"inner-folds", required_argument, NULL, OPT_INNER},
        {"c-grid", required_argument, NULL, OPT_CGRID},
        {"k-grid", required_argument, NULL, OPT_KGRID},
        {"tolerance", required_argument, NULL, OPT_TOL},
        {"bootstrap", required_argument, NULL, OPT_BOOT},
        {"seed", required_argument, NULL, OPT_SEED},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"predictions", required_argument, NULL, OPT_PRED},
        {"html", required_argument, NULL, OPT_HTML},
        {"out", required_argument, NULL, OPT_OUT},
        {"help", no_argument, NULL, 'h'},
        CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    uint64_t v;
    double grid[MAX_GRID];
    int n;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (o->mode == 2 && cli_model_option(&o->model, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case OPT_DB: o->db = optarg; break;
        case OPT_LABELS: o->labels = optarg; break;
        case OPT_MULTI:
            if (!optarg[0]) {
                cli_error("--multi-label: the separator is empty");
                return EXIT_USAGE;
            }
            o->lo.separator = optarg;
            o->lo.none_label = "No Finding";
            break;
        case OPT_GROUP: o->lo.group_column = optarg; break;
        case OPT_PATHCOL: o->lo.path_column = optarg; break;
        case OPT_LABELCOL: o->lo.label_column = optarg; break;
        case OPT_METHOD:
            if (!strcmp(optarg, "logreg")) o->p.methods = RADDINO_PROBE_LOGREG;
            else if (!strcmp(optarg, "knn")) o->p.methods = RADDINO_PROBE_KNN;
            else if (!strcmp(optarg, "both"))
                o->p.methods = RADDINO_PROBE_LOGREG | RADDINO_PROBE_KNN;
            else {
                cli_error("--method: expected logreg, knn or both, got '%s'", optarg);
                return EXIT_USAGE;
            }
            break;
        case OPT_FOLDS:
        case OPT_INNER:
            if (!cli_parse_u64(opt == OPT_FOLDS ? "--folds" : "--inner-folds", optarg, 100, &v))
                return EXIT_USAGE;
            if (v < 2) {
                cli_error("%s: at least 2", opt == OPT_FOLDS ? "--folds" : "--inner-folds");
                return EXIT_USAGE;
            }
            if (opt == OPT_FOLDS) o->p.folds = (int)v;
            else o->p.inner_folds = (int)v;
            break;
        case OPT_CGRID:
            if (!parse_list("--c-grid", optarg, o->c_grid, &o->p.n_c, false)) return EXIT_USAGE;
            o->p.c_grid = o->c_grid;
            break;
        case OPT_KGRID:
            if (!parse_list("--k-grid", optarg, grid, &n, true)) return EXIT_USAGE;
            for (int i = 0; i < n; i++) o->k_grid[i] = (int)grid[i];
            o->p.k_grid = o->k_grid;
            o->p.n_k = n;
            break;
        case OPT_TOL: {
            char *end;
            double t = strtod(optarg, &end);
            if (end == optarg || *end || !(t > 0 && t < 1)) {
                cli_error("--tolerance: expected a number between 0 and 1, got '%s'", optarg);
                return EXIT_USAGE;
            }
            o->p.logreg.tolerance = t;
            break;
        }
        case OPT_BOOT:
            if (!strcmp(optarg, "0")) o->p.bootstrap = 0;
            else if (!cli_parse_u64("--bootstrap", optarg, 1000000, &v)) return EXIT_USAGE;
            else o->p.bootstrap = (int)v;
            break;
        case OPT_SEED:
            if (!strcmp(optarg, "0")) o->p.seed = 0;
            else if (!cli_parse_u64("--seed", optarg, UINT64_MAX, &v)) return EXIT_USAGE;
            else o->p.seed = v;
            break;
        case OPT_JSON: o->json = 1; break;
        case OPT_CSV: o->csv = 1; break;
        case OPT_PRED: o->predictions = optarg; break;
        case OPT_HTML: o->html = optarg; break;
        case OPT_OUT: o->out = optarg; break;
        case 'h': fputs(probe_usage, stdout); return EXIT_OK;
        default:
            cli_error("probe: unknown or incomplete option '%s' (see raddino probe --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (o->mode == 2) {
        if (optind >= argc) {
            cli_error("probe predict: the probe file is required (see raddino probe --help)");
            return EXIT_USAGE;
        }
        o->probe_file = argv[optind++];
        o->images = argv + optind;
        o->n_images = argc - optind;
        if (!o->n_images == !o->db) {
            cli_error("probe predict: give image files or --db FILE (one of the two)");
            return EXIT_USAGE;
        }
        return -1;
    }
    if (optind < argc || !o->labels) {
        cli_error("probe: %s (see raddino probe --help)",
                  optind < argc ? "unexpected argument" : "--labels FILE.csv is required");
        return EXIT_USAGE;
    }
    if (o->mode == 1 && !o->out) {
        cli_error("probe train: --out PROBE.json is required");
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- the data: labelled images of the collection ------------------------------------------ */

typedef struct {
    float *all;             /* the collection's vectors (n_all x dim) */
    int64_t *ids;
    size_t n_all;
    char **paths;           /* n_all */
    cli_labels lab;         /* over the n_all images */
    size_t *rows;           /* m labelled images: their index in the collection */
    size_t m;
    float *X;               /* m x dim */
    uint8_t *Y;             /* m x L */
    int32_t *group;         /* m */
    int32_t n_groups;
    int dim;
} dataset;

static void free_dataset(dataset *d)
{
    for (size_t i = 0; d->paths && i < d->n_all; i++) free(d->paths[i]);
    free(d->paths);
    free(d->all);
    free(d->ids);
    cli_labels_free(&d->lab);
    free(d->rows);
    free(d->X);
    free(d->Y);
    free(d->group);
}

static raddino_status nomem(void)
{
    return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory");
}

static int compare_strings(const void *a, const void *b)
{
    const char *const *x = a, *const *y = b;
    if (!*x || !*y) return (*x != NULL) - (*y != NULL);
    return strcmp(*x, *y);
}

/* Groups as integers: equal group texts share one; an image without a group is its own. */
static raddino_status number_groups(dataset *d)
{
    const char **sorted = malloc((d->m ? d->m : 1) * sizeof *sorted);
    if (!sorted) return nomem();
    for (size_t i = 0; i < d->m; i++) sorted[i] = d->lab.group[d->rows[i]];
    qsort(sorted, d->m, sizeof *sorted, compare_strings);
    size_t distinct = 0;
    for (size_t i = 0; i < d->m; i++)
        if (sorted[i] && (!distinct || strcmp(sorted[i], sorted[distinct - 1])))
            sorted[distinct++] = sorted[i];
    int32_t next = (int32_t)distinct;
    for (size_t i = 0; i < d->m; i++) {
        const char *g = d->lab.group[d->rows[i]];
        if (!g) {
            d->group[i] = next++;
            continue;
        }
        size_t lo = 0, hi = distinct;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (strcmp(sorted[mid], g) < 0) lo = mid + 1;
            else hi = mid;
        }
        d->group[i] = (int32_t)lo;
    }
    d->n_groups = next;
    free(sorted);
    return raddino_status_ok();
}

static raddino_status load_dataset(raddino_collection *c, const probe_options *o, dataset *d)
{
    raddino_collection_info ci;
    raddino_collection_get_info(c, &ci);
    d->dim = ci.dim;
    raddino_collection_row *rows;
    raddino_status st = raddino_collection_read_rows(c, &d->all, &rows, &d->n_all);
    if (st.code) return st;
    size_t n = d->n_all ? d->n_all : 1;
    d->ids = malloc(n * sizeof *d->ids);
    d->paths = calloc(n, sizeof *d->paths);
    if (!d->ids || !d->paths) {
        raddino_collection_rows_free(rows, d->n_all);
        return nomem();
    }
    for (size_t i = 0; i < d->n_all; i++) {
        d->ids[i] = rows[i].id;
        d->paths[i] = rows[i].path;     /* taken over */
        rows[i].path = NULL;
    }
    st = cli_labels_read(o->labels, &o->lo, d->paths, d->n_all, &d->lab);
    /* Images labelled without a group: their DICOM patient key. */
    for (size_t i = 0; i < d->n_all && !st.code && d->lab.dicom_groups; i++) {
        if (!d->lab.labelled[i] || d->lab.group[i]) continue;
        if (rows[i].has_dicom && rows[i].patient_key[0] &&
            !(d->lab.group[i] = strdup(rows[i].patient_key)))
            st = nomem();
    }
    raddino_collection_rows_free(rows, d->n_all);
    if (st.code) return st;
    size_t L = (size_t)d->lab.n_labels;
    d->rows = malloc((d->n_all ? d->n_all : 1) * sizeof *d->rows);
    if (!d->rows) return nomem();
    for (size_t i = 0; i < d->n_all; i++)
        if (d->lab.labelled[i]) d->rows[d->m++] = i;
    d->X = malloc((d->m ? d->m : 1) * (size_t)d->dim * sizeof *d->X);
    d->Y = malloc((d->m ? d->m : 1) * (L ? L : 1));
    d->group = malloc((d->m ? d->m : 1) * sizeof *d->group);
    if (!d->X || !d->Y || !d->group) return nomem();
    for (size_t k = 0; k < d->m; k++) {
        memcpy(d->X + k * (size_t)d->dim, d->all + d->rows[k] * (size_t)d->dim,
               (size_t)d->dim * sizeof *d->X);
        memcpy(d->Y + k * L, d->lab.Y + d->rows[k] * L, L);
    }
    return number_groups(d);
}

/* Each labelled image's nearest other images through the collection's index, as labelled
 * rows (-1: an unlabelled image or none). Enough are fetched that, after the unlabelled
 * images and those of other folds are dropped, the largest k of the grid is usually left. */
static raddino_status knn_lists(raddino_collection *c, const dataset *d,
                                const raddino_probe_params *p, int32_t **out, int *m_out)
{
    int kmax = 50;
    if (p->k_grid) {
        kmax = 1;
        for (int i = 0; i < p->n_k; i++) kmax = p->k_grid[i] > kmax ? p->k_grid[i] : kmax;
    }
    double spare = (double)d->n_all / (double)(d->m ? d->m : 1);   /* unlabelled ones */
    double want = (kmax * (double)p->folds / (p->folds - 1) * 1.5 + 16) * spare;
    size_t m = want > 4096 ? 4096 : (size_t)want;
    if (m > d->n_all - 1) m = d->n_all - 1;
    if (m < 1) m = 1;
    *m_out = (int)m;
    int32_t *nb = malloc(d->m * m * sizeof *nb);
    /* the collection's rows are in id order: a hit's row by bisection, then its labelled row */
    int32_t *labelled_row = malloc((d->n_all ? d->n_all : 1) * sizeof *labelled_row);
    size_t chunk = 1024;
    float *scores = malloc(chunk * m * sizeof *scores);
    int64_t *ids = malloc(chunk * m * sizeof *ids);
    int64_t *self = malloc(chunk * sizeof *self);
    raddino_status st = raddino_status_ok();
    if (!nb || !labelled_row || !scores || !ids || !self) st = nomem();
    for (size_t i = 0; !st.code && i < d->n_all; i++) labelled_row[i] = -1;
    for (size_t k = 0; !st.code && k < d->m; k++) labelled_row[d->rows[k]] = (int32_t)k;
    for (size_t at = 0; !st.code && at < d->m; at += chunk) {
        size_t nq = d->m - at < chunk ? d->m - at : chunk;
        for (size_t q = 0; q < nq; q++) self[q] = d->ids[d->rows[at + q]];
        st = raddino_collection_search(c, d->X + at * (size_t)d->dim, nq, (int)m, -2.0f, self,
                                       NULL, scores, ids);
        for (size_t q = 0; !st.code && q < nq; q++)
            for (size_t t = 0; t < m; t++) {
                int64_t id = ids[q * m + t];
                int32_t row = -1;
                if (id >= 0) {
                    size_t lo = 0, hi = d->n_all;
                    while (lo < hi) {
                        size_t mid = (lo + hi) / 2;
                        if (d->ids[mid] < id) lo = mid + 1;
                        else hi = mid;
                    }
                    if (lo < d->n_all && d->ids[lo] == id) row = labelled_row[lo];
                }
                nb[(at + q) * m + t] = row;
            }
    }
    free(labelled_row);
    free(scores);
    free(ids);
    free(self);
    if (st.code) free(nb);
    else *out = nb;
    return st;
}

/* ---- output ------------------------------------------------------------------------------- */

static void json_number(FILE *f, double v)
{
    if (isnan(v)) fputs("null", f);
    else fprintf(f, "%.6f", v);
}

typedef struct {
    double auroc, auprc, chance;
    int n;
} macro_avg;

static macro_avg macro(const raddino_probe_metrics *m, int L)
{
    macro_avg a = {0, 0, 0, 0};
    for (int l = 0; m && l < L; l++) {
        if (isnan(m[l].auroc)) continue;
        a.auroc += m[l].auroc;
        a.auprc += m[l].auprc;
        a.chance += m[l].prevalence;
        a.n++;
    }
    if (a.n) a.auroc /= a.n, a.auprc /= a.n, a.chance /= a.n;
    else a.auroc = a.auprc = a.chance = NAN;
    return a;
}

static void json_method(FILE *f, const raddino_probe_metrics *m, const char *param,
                        const double *cs, const int *ks, int folds, int L, int l)
{
    fputs("{\"auroc\": ", f);
    json_number(f, m->auroc);
    fputs(", \"auroc_ci\": [", f);
    json_number(f, m->auroc_lo);
    fputs(", ", f);
    json_number(f, m->auroc_hi);
    fputs("], \"auprc\": ", f);
    json_number(f, m->auprc);
    fputs(", \"auprc_ci\": [", f);
    json_number(f, m->auprc_lo);
    fputs(", ", f);
    json_number(f, m->auprc_hi);
    fprintf(f, "], \"%s\": [", param);
    for (int k = 0; k < folds; k++) {
        if (cs) fprintf(f, "%s%g", k ? ", " : "", cs[(size_t)k * L + l]);
        else fprintf(f, "%s%d", k ? ", " : "", ks[(size_t)k * L + l]);
    }
    fputs("]}", f);
}

static void print_json(const probe_options *o, const dataset *d, const raddino_probe_result *r,
                       double seconds)
{
    FILE *f = stdout;
    int L = d->lab.n_labels;
    fprintf(f, "{\"images\": %zu, \"groups\": %d, \"labels\": %d, \"folds\": %d, "
               "\"inner_folds\": %d, \"bootstrap\": %d, \"seed\": %llu, \"methods\": [",
            d->m, (int)d->n_groups, L, o->p.folds, o->p.inner_folds, o->p.bootstrap,
            (unsigned long long)o->p.seed);
    if (r->logreg) fputs("\"logreg\"", f);
    if (r->knn) fputs(r->logreg ? ", \"knn\"" : "\"knn\"", f);
    fputs("], \"per_label\": {", f);
    for (int l = 0; l < L; l++) {
        const raddino_probe_metrics *m = r->logreg ? &r->logreg[l] : &r->knn[l];
        if (l) fputs(", ", f);
        cli_json_string(f, d->lab.names[l]);
        fprintf(f, ": {\"positives\": %zu, \"prevalence\": %.6f, \"chance_auroc\": 0.5, "
                   "\"chance_auprc\": %.6f", m->positives, m->prevalence, m->prevalence);
        if (r->logreg) {
            fputs(", \"logreg\": ", f);
            json_method(f, &r->logreg[l], "C", r->chosen_c, NULL, r->folds, L, l);
        }
        if (r->knn) {
            fputs(", \"knn\": ", f);
            json_method(f, &r->knn[l], "k", NULL, r->chosen_k, r->folds, L, l);
        }
        fputc('}', f);
    }
    fputs("}, \"macro\": {", f);
    const char *sep = "";
    for (int method = 0; method < 2; method++) {
        const raddino_probe_metrics *m = method ? r->knn : r->logreg;
        if (!m) continue;
        macro_avg a = macro(m, L);
        fprintf(f, "%s\"%s\": {\"auroc\": ", sep, method ? "knn" : "logreg");
        json_number(f, a.auroc);
        fputs(", \"auprc\": ", f);
        json_number(f, a.auprc);
        fprintf(f, ", \"labels\": %d}", a.n);
        sep = ", ";
        if (method == 1 || !r->knn) {
            fputs(", \"chance_auroc\": 0.5, \"chance_auprc\": ", f);
            json_number(f, a.chance);
        }
    }
    fprintf(f, "}, \"csv_rows\": %zu, \"incomplete_rows\": %zu, \"unmatched_rows\": %zu, "
               "\"conflicts\": %zu, \"max_iterations_hit\": %d, \"seconds\": %.3f}\n",
            d->lab.rows, d->lab.incomplete_rows,
            d->lab.rows - d->lab.incomplete_rows - d->lab.matched_rows, d->lab.conflicts,
            r->max_iterations_hit, seconds);
}

static void print_ci(double v, double lo, double hi)
{
    if (isnan(v)) printf("  %-19s", "-");
    else if (isnan(lo)) printf("  %.3f%-14s", v, "");
    else printf("  %.3f [%.3f-%.3f]", v, lo, hi);
}

static void print_table(const probe_options *o, const dataset *d, const raddino_probe_result *r,
                        double seconds)
{
    int L = d->lab.n_labels;
    printf("%zu labelled images (%zu CSV rows, %zu unmatched), %d groups, %d labels; %d-fold "
           "cross-validation grouped by %s (inner %d folds); %.1f s\n",
           d->m, d->lab.rows, d->lab.rows - d->lab.incomplete_rows - d->lab.matched_rows,
           (int)d->n_groups, L, o->p.folds, o->lo.group_column ? o->lo.group_column : "image",
           o->p.inner_folds, seconds);
    if (r->max_iterations_hit)
        printf("note: %d logistic fits stopped at the iteration limit before the tolerance\n",
               r->max_iterations_hit);
    printf("\n%-20s %6s %6s", "label", "pos", "prev");
    if (r->logreg) printf("  %-19s  %-19s", "logreg AUROC [95%]", "logreg AUPRC [95%]");
    if (r->knn) printf("  %-19s  %-19s", "knn AUROC [95%]", "knn AUPRC [95%]");
    printf("\n");
    for (int l = 0; l < L; l++) {
        const raddino_probe_metrics *m = r->logreg ? &r->logreg[l] : &r->knn[l];
        printf("%-20.20s %6zu %6.3f", d->lab.names[l], m->positives, m->prevalence);
        for (int method = 0; method < 2; method++) {
            const raddino_probe_metrics *x = method ? r->knn : r->logreg;
            if (!x) continue;
            print_ci(x[l].auroc, x[l].auroc_lo, x[l].auroc_hi);
            print_ci(x[l].auprc, x[l].auprc_lo, x[l].auprc_hi);
        }
        printf("\n");
    }
    macro_avg any = macro(r->logreg ? r->logreg : r->knn, L);
    printf("%-20s %6s %6.3f", "macro", "", any.chance);
    for (int method = 0; method < 2; method++) {
        const raddino_probe_metrics *x = method ? r->knn : r->logreg;
        if (!x) continue;
        macro_avg a = macro(x, L);
        print_ci(a.auroc, NAN, NAN);
        print_ci(a.auprc, NAN, NAN);
    }
    printf("\nchance: AUROC 0.5, AUPRC = prevalence (macro %.3f)\n", any.chance);
}

static int write_predictions(const probe_options *o, const dataset *d,
                             const raddino_probe_result *r)
{
    char tmp[RADDINO_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", o->predictions, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_error("%s: %s", o->predictions, strerror(errno));
        return EXIT_INPUT_FAILED;
    }
    int L = d->lab.n_labels;
    fputs("id,path,fold,label,truth,logreg,knn\n", f);
    for (size_t k = 0; k < d->m; k++)
        for (int l = 0; l < L; l++) {
            fprintf(f, "%lld,", (long long)d->ids[d->rows[k]]);
            cli_csv_field(f, d->paths[d->rows[k]]);
            fprintf(f, ",%d,", (int)r->fold[k]);
            cli_csv_field(f, d->lab.names[l]);
            fprintf(f, ",%d,", d->Y[k * (size_t)L + l]);
            if (r->logreg_score) fprintf(f, "%.17g", r->logreg_score[k * (size_t)L + l]);
            fputc(',', f);
            if (r->knn_score) fprintf(f, "%.17g", r->knn_score[k * (size_t)L + l]);
            fputc('\n', f);
        }
    bool failed = ferror(f) != 0;
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, o->predictions) != 0) {
        cli_error("%s: %s", o->predictions, strerror(errno));
        unlink(tmp);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}

/* ---- the HTML page ------------------------------------------------------------------------ */

typedef struct {
    double score;
    uint8_t y;
} scored;

static int by_score_desc(const void *a, const void *b)
{
    const scored *x = a, *y = b;
    return (x->score < y->score) - (x->score > y->score);
}

/* The ROC polyline of one method and label: (FPR, TPR) at every distinct threshold, thinned
 * to at most ~400 points. */
static void roc_points(FILE *f, const double *score, const uint8_t *Y, size_t m, int L, int l,
                       scored *buf, double x0, double y0, double w, double h)
{
    size_t P = 0, N = 0;
    for (size_t i = 0; i < m; i++) {
        buf[i] = (scored){score[i * (size_t)L + l], Y[i * (size_t)L + l]};
        if (buf[i].y) P++;
        else N++;
    }
    if (!P || !N) return;
    qsort(buf, m, sizeof *buf, by_score_desc);
    size_t step = m / 400 + 1, tp = 0, fp = 0, last = 0;
    fprintf(f, "%.1f,%.1f", x0, y0 + h);
    for (size_t i = 0; i < m; i++) {
        if (buf[i].y) tp++;
        else fp++;
        bool end_of_tie = i + 1 == m || buf[i + 1].score != buf[i].score;
        if (end_of_tie && (i + 1 == m || i - last >= step)) {
            fprintf(f, " %.1f,%.1f", x0 + w * (double)fp / N, y0 + h - h * (double)tp / P);
            last = i;
        }
    }
}

static void html_roc(FILE *f, const dataset *d, const raddino_probe_result *r, int l,
                     scored *buf)
{
    const double W = 300, H = 300, X0 = 50, Y0 = 10, S = 236;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
               "viewBox=\"0 0 %.0f %.0f\" role=\"img\" font-size=\"11\">", W, H, W, H);
    for (int g = 0; g <= 4; g++) {
        double t = g / 4.0;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.2f</text>"
                   "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.2f</text>",
                X0, Y0 + S - S * t, X0 + S, Y0 + S - S * t, X0 + S * t, Y0, X0 + S * t, Y0 + S,
                X0 - 4, Y0 + S - S * t + 4, t, X0 + S * t, Y0 + S + 14, t);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#999\" "
               "stroke-dasharray=\"4 3\"><title>chance</title></line>",
            X0, Y0 + S, X0 + S, Y0);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">false positive rate</text>",
            X0 + S / 2, Y0 + S + 30);
    fprintf(f, "<text transform=\"translate(11 %.1f) rotate(-90)\" text-anchor=\"middle\">"
               "true positive rate</text>", Y0 + S / 2);
    static const char *const colour[2] = {"#1f6fd1", "#d1591f"};
    for (int method = 0; method < 2; method++) {
        const double *score = method ? r->knn_score : r->logreg_score;
        const raddino_probe_metrics *m = method ? r->knn : r->logreg;
        if (!score || isnan(m[l].auroc)) continue;
        fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"",
                colour[method]);
        roc_points(f, score, d->Y, d->m, d->lab.n_labels, l, buf, X0, Y0, S, S);
        fprintf(f, "\"><title>%s AUROC %.3f</title></polyline>", method ? "kNN" : "logistic",
                m[l].auroc);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" fill=\"%s\">%s %.3f</text>", X0 + S * 0.45,
                Y0 + S - 12 - 14 * (1 - method), colour[method], method ? "kNN" : "logistic",
                m[l].auroc);
    }
    fputs("</svg>", f);
}

static void html_cell(FILE *f, double v, double lo, double hi)
{
    if (isnan(v)) fputs("<td>-</td>", f);
    else if (isnan(lo)) fprintf(f, "<td>%.3f</td>", v);
    else fprintf(f, "<td>%.3f <span class=\"muted\">[%.3f&ndash;%.3f]</span></td>", v, lo, hi);
}

static int write_html(const probe_options *o, const dataset *d, const raddino_probe_result *r,
                      const char *db_path, double seconds)
{
    html_report h;
    raddino_status st = html_report_open(&h, o->html, "raddino probe", NULL);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    FILE *f = h.f;
    int L = d->lab.n_labels;
    fputs("<p>Collection ", f);
    html_escape(f, db_path);
    fputs(", labels ", f);
    html_escape(f, o->labels);
    fprintf(f, ": %zu labelled images in %d groups, %d labels. Out-of-fold scores from %d-fold "
               "cross-validation grouped by ", d->m, (int)d->n_groups, L, o->p.folds);
    html_escape(f, o->lo.group_column ? o->lo.group_column : "image");
    fprintf(f, " (a group never in two folds); C and k chosen per label by %d inner folds. "
               "Intervals: bootstrap 95%% percentile, %d resamples of the groups. Chance: "
               "AUROC 0.5, AUPRC = prevalence. %.1f s.</p>\n",
            o->p.inner_folds, o->p.bootstrap, seconds);
    fputs("<section><h2>Per label</h2><table><thead><tr><th>label</th><th>positives</th>"
          "<th>prevalence</th>", f);
    if (r->logreg) fputs("<th>logistic AUROC</th><th>logistic AUPRC</th>", f);
    if (r->knn) fputs("<th>kNN AUROC</th><th>kNN AUPRC</th>", f);
    fputs("</tr></thead><tbody>\n", f);
    for (int l = 0; l < L; l++) {
        const raddino_probe_metrics *m = r->logreg ? &r->logreg[l] : &r->knn[l];
        fputs("<tr><td>", f);
        html_escape(f, d->lab.names[l]);
        fprintf(f, "</td><td>%zu</td><td>%.3f</td>", m->positives, m->prevalence);
        for (int method = 0; method < 2; method++) {
            const raddino_probe_metrics *x = method ? r->knn : r->logreg;
            if (!x) continue;
            html_cell(f, x[l].auroc, x[l].auroc_lo, x[l].auroc_hi);
            html_cell(f, x[l].auprc, x[l].auprc_lo, x[l].auprc_hi);
        }
        fputs("</tr>\n", f);
    }
    macro_avg any = macro(r->logreg ? r->logreg : r->knn, L);
    fprintf(f, "<tr><th>macro</th><td></td><td>%.3f</td>", any.chance);
    for (int method = 0; method < 2; method++) {
        const raddino_probe_metrics *x = method ? r->knn : r->logreg;
        if (!x) continue;
        macro_avg a = macro(x, L);
        html_cell(f, a.auroc, NAN, NAN);
        html_cell(f, a.auprc, NAN, NAN);
    }
    fputs("</tr></tbody></table></section>\n<section><h2>ROC curves</h2><div class=\"grid\">",
          f);
    scored *buf = malloc((d->m ? d->m : 1) * sizeof *buf);
    for (int l = 0; buf && l < L && l < HTML_MAX_SECTIONS; l++) {
        fputs("<figure style=\"width:310px\">", f);
        html_roc(f, d, r, l, buf);
        fputs("<figcaption>", f);
        html_escape(f, d->lab.names[l]);
        const raddino_probe_metrics *m = r->logreg ? &r->logreg[l] : &r->knn[l];
        fprintf(f, " <span class=\"muted\">(%zu positive of %zu)</span></figcaption></figure>",
                m->positives, m->n);
    }
    free(buf);
    if (L > HTML_MAX_SECTIONS)
        fprintf(f, "<p class=\"muted\">%d more labels not shown</p>", L - HTML_MAX_SECTIONS);
    fputs("</div></section>\n", f);
    st = html_report_close(&h);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}

/* ---- probe files -------------------------------------------------------------------------- */

#define PROBE_FORMAT "raddino-probe"
#define PROBE_MAX_BYTES (256u << 20)

static void json_doubles(FILE *f, const double *v, size_t n, size_t stride)
{
    fputc('[', f);
    for (size_t i = 0; i < n; i++) fprintf(f, "%s%.17g", i ? ", " : "", v[i * stride]);
    fputc(']', f);
}

static raddino_status save_probe(const char *path, const raddino_probe_model *m,
                                 const dataset *d, const char *sha, const char *config,
                                 const probe_options *o)
{
    char tmp[RADDINO_PATH_MAX + 32];
    snprintf(tmp, sizeof tmp, "%s.tmp-%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) return raddino_status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    fprintf(f, "{\"format\": \"%s\", \"version\": 1, \"model\": {\"weights_sha256\": ",
            PROBE_FORMAT);
    cli_json_string(f, sha);
    fputs(", \"config_json\": ", f);
    cli_json_string(f, config);
    fprintf(f, ", \"dim\": %d}, \"images\": %zu, \"groups\": %d, \"inner_folds\": %d, "
               "\"seed\": %llu, \"labels\": [", m->dim, d->m, (int)d->n_groups,
            o->p.inner_folds, (unsigned long long)o->p.seed);
    for (int l = 0; l < m->labels; l++) {
        if (l) fputs(", ", f);
        cli_json_string(f, d->lab.names[l]);
    }
    fputs("],\n \"C\": ", f);
    json_doubles(f, m->C, (size_t)m->labels, 1);
    fputs(",\n \"bias\": ", f);
    json_doubles(f, m->b, (size_t)m->labels, 1);
    fputs(",\n \"mean\": ", f);
    json_doubles(f, m->mean, (size_t)m->dim, 1);
    fputs(",\n \"scale\": ", f);
    json_doubles(f, m->scale, (size_t)m->dim, 1);
    fputs(",\n \"weights\": [", f);
    for (int l = 0; l < m->labels; l++) {
        fputs(l ? ",\n  " : "\n  ", f);
        json_doubles(f, m->W + l, (size_t)m->dim, (size_t)m->labels);
    }
    fputs("]}\n", f);
    bool failed = ferror(f) != 0;
    failed |= fclose(f) != 0;
    if (failed || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return raddino_status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(e));
    }
    return raddino_status_ok();
}

typedef struct {
    raddino_probe_model m;
    char sha[65];
    char *config;
    char **labels;
} loaded_probe;

static void free_loaded(loaded_probe *p)
{
    for (int l = 0; p->labels && l < p->m.labels; l++) free(p->labels[l]);
    free(p->labels);
    free(p->config);
    raddino_probe_model_free(&p->m);
}

/* Reads n finite numbers of a JSON array into out[i * stride]. */
static bool read_doubles(const cJSON *a, double *out, size_t n, size_t stride)
{
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n) return false;
    size_t i = 0;
    const cJSON *x;
    cJSON_ArrayForEach(x, a) {
        if (!cJSON_IsNumber(x) || !isfinite(x->valuedouble)) return false;
        out[i++ * stride] = x->valuedouble;
    }
    return true;
}

/* Every field is checked: the file is input like any other. */
static raddino_status load_probe(const char *path, loaded_probe *p)
{
    memset(p, 0, sizeof *p);
    FILE *f = fopen(path, "rb");
    if (!f) return raddino_status_error(RADDINO_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || sb.st_size > PROBE_MAX_BYTES) {
        fclose(f);
        return raddino_status_error(RADDINO_ERR_TOO_LARGE, "%s: not a probe file (over 256 MiB)",
                                    path);
    }
    size_t size = (size_t)sb.st_size;
    char *text = malloc(size + 1);
    size_t got = text ? fread(text, 1, size, f) : 0;
    fclose(f);
    if (!text || got != size) {
        free(text);
        return raddino_status_error(RADDINO_ERR_IO, "%s: could not be read", path);
    }
    text[size] = 0;
    cJSON *root = cJSON_ParseWithLength(text, size);
    free(text);
    const char *why = NULL;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *sha = cJSON_GetObjectItemCaseSensitive(model, "weights_sha256");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(model, "config_json");
    const cJSON *dim = cJSON_GetObjectItemCaseSensitive(model, "dim");
    const cJSON *labels = cJSON_GetObjectItemCaseSensitive(root, "labels");
    const cJSON *weights = cJSON_GetObjectItemCaseSensitive(root, "weights");
    if (!root || !cJSON_IsObject(root)) why = "not JSON";
    else if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, PROBE_FORMAT))
        why = "not a raddino probe (\"format\")";
    else if (!cJSON_IsString(sha) || strlen(sha->valuestring) != 64 || !cJSON_IsString(cfg) ||
             !cJSON_IsNumber(dim) || !(dim->valuedouble >= 1 && dim->valuedouble <= 65536) ||
             dim->valuedouble != floor(dim->valuedouble))
        why = "bad \"model\"";
    else if (!cJSON_IsArray(labels) || cJSON_GetArraySize(labels) < 1 ||
             cJSON_GetArraySize(labels) > 100000)
        why = "bad \"labels\"";
    if (!why) {
        int D = (int)dim->valuedouble, L = cJSON_GetArraySize(labels);
        p->m.dim = D;
        p->m.labels = L;
        snprintf(p->sha, sizeof p->sha, "%s", sha->valuestring);
        p->config = strdup(cfg->valuestring);
        p->labels = calloc((size_t)L, sizeof *p->labels);
        p->m.mean = malloc((size_t)D * sizeof(double));
        p->m.scale = malloc((size_t)D * sizeof(double));
        p->m.W = malloc((size_t)D * L * sizeof(double));
        p->m.b = malloc((size_t)L * sizeof(double));
        p->m.C = malloc((size_t)L * sizeof(double));
        if (!p->config || !p->labels || !p->m.mean || !p->m.scale || !p->m.W || !p->m.b ||
            !p->m.C)
            why = "out of memory";
        int l = 0;
        const cJSON *x;
        cJSON_ArrayForEach(x, labels) {
            if (why) break;
            if (!cJSON_IsString(x) || !(p->labels[l++] = strdup(x->valuestring)))
                why = "bad \"labels\"";
        }
        if (!why && (!read_doubles(cJSON_GetObjectItemCaseSensitive(root, "mean"), p->m.mean,
                                   (size_t)D, 1) ||
                     !read_doubles(cJSON_GetObjectItemCaseSensitive(root, "scale"), p->m.scale,
                                   (size_t)D, 1) ||
                     !read_doubles(cJSON_GetObjectItemCaseSensitive(root, "bias"), p->m.b,
                                   (size_t)L, 1) ||
                     !read_doubles(cJSON_GetObjectItemCaseSensitive(root, "C"), p->m.C,
                                   (size_t)L, 1)))
            why = "bad \"mean\", \"scale\", \"bias\" or \"C\"";
        for (int j = 0; !why && j < D; j++)
            if (!(p->m.scale[j] > 0)) why = "bad \"scale\" (must be positive)";
        if (!why && (!cJSON_IsArray(weights) || cJSON_GetArraySize(weights) != L))
            why = "bad \"weights\"";
        l = 0;
        cJSON_ArrayForEach(x, weights) {
            if (why) break;
            if (!read_doubles(x, p->m.W + l, (size_t)D, (size_t)L)) why = "bad \"weights\"";
            l++;
        }
    }
    cJSON_Delete(root);
    if (why) {
        free_loaded(p);
        return raddino_status_error(RADDINO_ERR_FORMAT, "%s: %s", path, why);
    }
    return raddino_status_ok();
}

/* ---- the commands ------------------------------------------------------------------------- */

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int run_labelled(probe_options *o)
{
    double start = now_seconds();
    cli_collection_options co;
    memset(&co, 0, sizeof co);
    co.db = o->db;
    co.params = raddino_collection_default_params();
    co.params.no_index = !(o->mode == 0 && (o->p.methods & RADDINO_PROBE_KNN));
    int exit_code;
    raddino_collection *c = cli_open_collection(&co, &exit_code);
    if (!c) return exit_code;
    dataset d;
    memset(&d, 0, sizeof d);
    raddino_probe_result r;
    memset(&r, 0, sizeof r);
    raddino_probe_model model;
    memset(&model, 0, sizeof model);
    int32_t *nb = NULL;
    int m = 0;
    exit_code = EXIT_INPUT_FAILED;
    raddino_status st = load_dataset(c, o, &d);
    if (st.code) goto fail;
    if (d.m < (size_t)o->p.folds || !d.lab.n_labels) {
        cli_error("%s: %zu labelled images with %d labels: too few to cross-validate (%d folds)",
                  o->labels, d.m, d.lab.n_labels, o->p.folds);
        goto done;
    }
    if (o->mode == 1) {
        st = raddino_probe_train(d.X, d.m, d.dim, d.Y, d.lab.n_labels, d.group, d.n_groups,
                                 &o->p, &model);
        char sha[65], config[8192];
        int dim, found = 0;
        if (!st.code)
            st = raddino_store_model_identity(raddino_collection_store(c), 0, sha, config,
                                              sizeof config, &dim, &found);
        if (!st.code && !found) st = raddino_status_error(RADDINO_ERR_FORMAT, "no model");
        if (!st.code) st = save_probe(o->out, &model, &d, sha, config, o);
        if (st.code) goto fail;
        if (!o->json)
            printf("trained on %zu images, %d labels; saved %s\n", d.m, d.lab.n_labels, o->out);
        else {
            printf("{\"images\": %zu, \"labels\": %d, \"out\": ", d.m, d.lab.n_labels);
            cli_json_string(stdout, o->out);
            fputs(", \"C\": {", stdout);
            for (int l = 0; l < d.lab.n_labels; l++) {
                printf("%s", l ? ", " : "");
                cli_json_string(stdout, d.lab.names[l]);
                printf(": %g", model.C[l]);
            }
            fputs("}}\n", stdout);
        }
        exit_code = EXIT_OK;
        goto done;
    }
    if (o->p.methods & RADDINO_PROBE_KNN) st = knn_lists(c, &d, &o->p, &nb, &m);
    if (!st.code)
        st = raddino_probe_cross_validate(d.X, d.m, d.dim, d.Y, d.lab.n_labels, d.group,
                                          d.n_groups, nb, m, &o->p, &r);
    if (st.code) goto fail;
    double seconds = now_seconds() - start;
    if (o->json) print_json(o, &d, &r, seconds);
    else print_table(o, &d, &r, seconds);
    exit_code = EXIT_OK;
    if (o->predictions) exit_code = write_predictions(o, &d, &r);
    if (exit_code == EXIT_OK && o->html) {
        raddino_collection_info ci;
        raddino_collection_get_info(c, &ci);
        exit_code = write_html(o, &d, &r, ci.db_path, seconds);
    }
    goto done;
fail:
    cli_status_error(&st);
    exit_code = EXIT_INPUT_FAILED;
done:
    free(nb);
    raddino_probe_result_free(&r);
    raddino_probe_model_free(&model);
    free_dataset(&d);
    raddino_collection_close(c);
    return exit_code;
}

static void print_scores(const probe_options *o, const loaded_probe *p, const char *path,
                         int64_t id, const double *s)
{
    if (o->json) {
        fputs("{\"path\": ", stdout);
        cli_json_string(stdout, path);
        if (id > 0) printf(", \"id\": %lld", (long long)id);
        fputs(", \"scores\": {", stdout);
        for (int l = 0; l < p->m.labels; l++) {
            printf("%s", l ? ", " : "");
            cli_json_string(stdout, p->labels[l]);
            printf(": %.6f", s[l]);
        }
        fputs("}}\n", stdout);
        return;
    }
    cli_csv_field(stdout, path);
    for (int l = 0; l < p->m.labels; l++) printf(",%.6f", s[l]);
    fputc('\n', stdout);
}

static void print_header(const probe_options *o, const loaded_probe *p)
{
    if (o->json) return;
    fputs("path", stdout);
    for (int l = 0; l < p->m.labels; l++) {
        fputc(',', stdout);
        cli_csv_field(stdout, p->labels[l]);
    }
    fputc('\n', stdout);
}

static int run_predict(probe_options *o)
{
    loaded_probe p;
    raddino_status st = load_probe(o->probe_file, &p);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    raddino_store_model pm = {p.sha, p.config, NULL, NULL, p.m.dim};
    int exit_code = EXIT_INPUT_FAILED;
    double *s = malloc((size_t)p.m.labels * sizeof *s);
    float *v = NULL;
    if (!s) goto done;
    if (o->db) {
        cli_collection_options co;
        memset(&co, 0, sizeof co);
        co.db = o->db;
        co.params = raddino_collection_default_params();
        co.params.no_index = 1;
        raddino_collection *c = cli_open_collection(&co, &exit_code);
        if (!c) goto done;
        int64_t *ids = NULL;
        size_t n = 0;
        st = raddino_collection_check_model(c, &pm);
        if (st.code)
            st = raddino_status_error(RADDINO_ERR_MODEL, "%s: the probe was trained on vectors "
                                      "of another model: %s%s%s", o->probe_file, st.message,
                                      st.code == RADDINO_ERR_MODEL ? ": " : "",
                                      st.code == RADDINO_ERR_MODEL ? CLI_HINT_QUERY_MODEL : "");
        if (!st.code) st = raddino_collection_read_all(c, &v, &ids, &n);
        raddino_collection_info ci;
        raddino_collection_get_info(c, &ci);
        if (!st.code && n && ci.dim != p.m.dim)
            st = raddino_status_error(RADDINO_ERR_MODEL, "%s: dim %d, the collection's is %d",
                                      o->probe_file, p.m.dim, ci.dim);
        if (!st.code) print_header(o, &p);
        for (size_t i = 0; i < n && !st.code; i++) {
            raddino_store_image img;
            int found = 0;
            st = raddino_probe_model_predict(&p.m, v + i * (size_t)p.m.dim, 1, s);
            if (!st.code) st = raddino_store_find_id(raddino_collection_store(c), ids[i], NULL,
                                                     &img, &found);
            if (!st.code) print_scores(o, &p, found ? img.path : "", ids[i], s);
        }
        free(ids);
        raddino_collection_close(c);
        if (st.code) cli_status_error(&st);
        else exit_code = EXIT_OK;
        goto done;
    }
    raddino_encoder *enc = cli_open_encoder(&o->model, &exit_code);
    if (!enc) goto done;
    exit_code = EXIT_INPUT_FAILED;
    raddino_model_identity id;
    st = raddino_encoder_identity(enc, &id);
    const char *sha = id.weights_sha256;
    if (!st.code && (strcmp(sha, p.sha) || strcmp(id.config_json, p.config)))
        st = raddino_status_error(RADDINO_ERR_MODEL, "%s: the probe was trained on vectors of "
                                  "another model (weights sha256 %.12s..., not %.12s... of the "
                                  "model given, or other preprocessing)", o->probe_file, p.sha,
                                  sha);
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    if (!st.code && !(v = malloc((size_t)info.hidden * sizeof *v))) st = nomem();
    if (st.code) {
        cli_status_error(&st);
        raddino_encoder_close(enc);
        goto done;
    }
    print_header(o, &p);
    int failures = 0;
    for (int i = 0; i < o->n_images; i++) {
        st = raddino_embed_file(enc, o->images[i], v, NULL);
        if (!st.code) st = raddino_probe_model_predict(&p.m, v, 1, s);
        if (st.code) {
            cli_status_error(&st);
            failures++;
            continue;
        }
        print_scores(o, &p, o->images[i], 0, s);
    }
    raddino_encoder_close(enc);
    exit_code = failures ? EXIT_INPUT_FAILED : EXIT_OK;
done:
    free(s);
    free(v);
    free_loaded(&p);
    return exit_code;
}

int cmd_probe(int argc, char **argv)
{
    probe_options o;
    memset(&o, 0, sizeof o);
    o.p = raddino_probe_default_params();
    if (argc > 1 && !strcmp(argv[1], "train")) o.mode = 1;
    else if (argc > 1 && !strcmp(argv[1], "predict")) o.mode = 2;
    if (o.mode) {
        argc--;
        argv++;
    }
    int exit_code = parse_probe_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    if (o.mode == 1) o.p.methods = RADDINO_PROBE_LOGREG;
    return o.mode == 2 ? run_predict(&o) : run_labelled(&o);
}
