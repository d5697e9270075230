/* cmd_search.c — raddino search: the stored images most similar to image files, stored ids or
 * stored paths, by cosine similarity of CLS vectors, through the collection's FAISS index. */
#include "collection.h"
#include "html_report.h"
#include "npy.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char search_usage[] =
    "usage: raddino search [OPTIONS] QUERY...\n"
    "\n"
    "Finds the stored images most similar to each query (cosine similarity of the CLS\n"
    "vectors, best first). A QUERY is an image file (PNG, JPEG, DICOM...: embedded with the\n"
    "model options below, which must name the collection's model), --id N (a stored image)\n"
    "or --path FILE (a stored path, as indexed). All queries are searched as one batch.\n"
    "The index (DB.faiss) is built, or brought up to date, when the collection changed.\n"
    "\n"
    "options:\n"
    "  -k N               results per query (default 10)\n"
    "  --id N             query with stored image N (repeatable)\n"
    "  --path FILE        query with the stored image of this path (repeatable)\n"
    "  --vector Q.npy     query with vectors: each row of an N x dim (or dim) array of\n"
    "                     float16/32/64, named Q.npy[ROW] (repeatable)\n"
    "  --exclude-self     leave out the query image itself (same id; for files, any\n"
    "                     stored file with the same content hash)\n"
    "  --min-score S      leave out results with cosine below S (-1..1)\n"
    "  --json             one JSON object per result: query, query_id, rank, score, id,\n"
    "                     path, and for DICOM hits sop/study/series_instance_uid\n"
    "  --csv              CSV: query,rank,score,id,path\n"
    "  --html FILE        also write a self-contained HTML page: each query's thumbnail\n"
    "                     beside its neighbours' with rank and score\n"
    CLI_COLLECTION_HELP
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

typedef enum { OUT_TEXT, OUT_JSON, OUT_CSV } output_format;

typedef enum { QUERY_FILE, QUERY_ID, QUERY_PATH, QUERY_VECTOR } query_kind;

typedef struct {
    query_kind kind;
    const char *arg;        /* as given */
    int64_t id;             /* QUERY_ID; stored queries: their id once found */
    char *label;            /* what the output names it: the file, or the stored path */
    char sha256[65];        /* QUERY_FILE with --exclude-self */
    int ok;                 /* its vector is ready */
    const float *vector;    /* QUERY_VECTOR: its row (dim floats, owned by the options) */
    int64_t dim;            /* QUERY_VECTOR: the row's length */
} query;

typedef struct {
    cli_collection_options coll;
    cli_model_options model;
    int k;
    float min_score;
    int exclude_self;
    output_format format;
    const char *html;       /* --html FILE */
    query *queries;
    size_t n_queries;
    float **arrays;         /* --vector files, read */
    size_t n_arrays;
} search_options;

static bool add_query(search_options *o, query_kind kind, const char *arg)
{
    query *q = &o->queries[o->n_queries++];
    memset(q, 0, sizeof *q);
    q->kind = kind;
    q->arg = arg;
    q->id = -1;
    if (kind == QUERY_ID) {
        uint64_t v;
        if (!cli_parse_u64("--id", arg, INT64_MAX, &v)) return false;
        q->id = (int64_t)v;
    }
    return true;
}

static bool parse_score(const char *arg, float *out)
{
    char *end;
    double v = strtod(arg, &end);
    if (end == arg || *end || !(v >= -1.0 && v <= 1.0)) {
        cli_error("--min-score: expected a number from -1 to 1, got '%s'", arg);
        return false;
    }
    *out = (float)v;
    return true;
}

static int parse_search_options(int argc, char **argv, search_options *o)
{
    enum { OPT_ID = 0x400, OPT_PATH, OPT_EXCLUDE_SELF, OPT_MIN_SCORE, OPT_JSON, OPT_CSV,
           OPT_HTML, OPT_VECTOR };
    static const struct option long_options[] = {
        {"id", required_argument, NULL, OPT_ID},
        {"path", required_argument, NULL, OPT_PATH},
        {"vector", required_argument, NULL, OPT_VECTOR},
        {"exclude-self", no_argument, NULL, OPT_EXCLUDE_SELF},
        {"min-score", required_argument, NULL, OPT_MIN_SCORE},
        {"json", no_argument, NULL, OPT_JSON},
        {"csv", no_argument, NULL, OPT_CSV},
        {"html", required_argument, NULL, OPT_HTML},
        {"help", no_argument, NULL, 'h'},
        CLI_COLLECTION_LONG_OPTIONS,
        CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    uint64_t v;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "hk:", long_options, NULL)) != -1) {
        if (cli_model_option(&o->model, opt, optarg, &exit_code) ||
            cli_collection_option(&o->coll, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case 'k':
            if (!cli_parse_u64("-k", optarg, 100000, &v)) return EXIT_USAGE;
            o->k = (int)v;
            break;
        case OPT_ID: if (!add_query(o, QUERY_ID, optarg)) return EXIT_USAGE; break;
        case OPT_PATH: add_query(o, QUERY_PATH, optarg); break;
        case OPT_VECTOR: add_query(o, QUERY_VECTOR, optarg); break;
        case OPT_EXCLUDE_SELF: o->exclude_self = 1; break;
        case OPT_MIN_SCORE: if (!parse_score(optarg, &o->min_score)) return EXIT_USAGE; break;
        case OPT_JSON:
            if (o->format == OUT_CSV) return cli_json_csv_conflict("search");
            o->format = OUT_JSON;
            break;
        case OPT_CSV:
            if (o->format == OUT_JSON) return cli_json_csv_conflict("search");
            o->format = OUT_CSV;
            break;
        case OPT_HTML: o->html = optarg; break;
        case 'h': fputs(search_usage, stdout); return EXIT_OK;
        default:
            cli_error("search: unknown or incomplete option '%s' (see raddino search --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    for (int i = optind; i < argc; i++) add_query(o, QUERY_FILE, argv[i]);
    if (!o->n_queries) {
        cli_error("search: no query (an image file, --id N, --path FILE or --vector Q.npy; "
                  "see --help)");
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- queries ------------------------------------------------------------------------------ */

/* Replaces each --vector query by one query per row of its array, in place of the option. */
static int expand_vector_queries(search_options *o)
{
    size_t total = 0;
    for (size_t i = 0; i < o->n_queries; i++) {
        query *q = &o->queries[i];
        if (q->kind != QUERY_VECTOR) {
            total++;
            continue;
        }
        float *data = NULL;
        int n_dims = 0;
        int64_t shape[8];
        raddino_status st = npy_read_float(q->arg, &data, &n_dims, shape);
        if (st.code) {
            cli_status_error(&st);
            return EXIT_INPUT_FAILED;
        }
        o->arrays[o->n_arrays++] = data;
        int64_t rows = n_dims == 2 ? shape[0] : 1, dim = n_dims == 2 ? shape[1] : shape[0];
        if ((n_dims != 1 && n_dims != 2) || rows < 1 || dim < 1) {
            cli_error("%s: expected an N x dim array (or one vector), got %d dimensions",
                      q->arg, n_dims);
            return EXIT_INPUT_FAILED;
        }
        q->id = rows;       /* the row count, until the queries are laid out below */
        q->dim = dim;
        q->vector = data;
        total += (size_t)rows;
    }
    query *all = calloc(total ? total : 1, sizeof *all);
    if (!all) {
        cli_error("out of memory");
        return EXIT_INPUT_FAILED;
    }
    size_t k = 0;
    for (size_t i = 0; i < o->n_queries; i++) {
        query *q = &o->queries[i];
        if (q->kind != QUERY_VECTOR) {
            all[k++] = *q;
            continue;
        }
        for (int64_t r = 0; r < q->id; r++) {
            query *x = &all[k++];
            *x = *q;
            x->id = -1;
            x->vector = q->vector + r * q->dim;
            size_t len = strlen(q->arg) + 32;
            if (!(x->label = malloc(len))) {
                o->n_queries = 0;
                free(all);
                cli_error("out of memory");
                return EXIT_INPUT_FAILED;
            }
            snprintf(x->label, len, "%s[%lld]", q->arg, (long long)r);
        }
    }
    free(o->queries);
    o->queries = all;
    o->n_queries = total;
    return -1;
}

/* Vectors of another length than the collection's: one line per array, the command fails. */
static bool vector_dims_match(const search_options *o, int dim)
{
    bool ok = true;
    for (size_t i = 0; i < o->n_queries; i++) {
        const query *q = &o->queries[i];
        if (q->kind != QUERY_VECTOR || q->dim == dim) continue;
        if (i > 0 && o->queries[i - 1].kind == QUERY_VECTOR && o->queries[i - 1].arg == q->arg)
            continue;   /* reported with its first row */
        cli_error("%s: vectors of %lld values, but the collection's have %d", q->arg,
                  (long long)q->dim, dim);
        ok = false;
    }
    return ok;
}

/* A stored image as the query: its stored vector. */
static bool stored_query(raddino_collection *c, query *q, float *vector)
{
    raddino_store *db = raddino_collection_store(c);
    raddino_store_image img;
    int found = 0;
    raddino_status st = {RADDINO_OK, ""};
    if (q->kind == QUERY_PATH) {
        char path[RADDINO_PATH_MAX];
        st = raddino_store_normalise_path(q->arg, path, sizeof path);
        if (!st.code) st = raddino_store_find_path(db, path, &img, &found);
        if (!st.code && found) q->id = img.id;
    }
    if (!st.code && (q->kind == QUERY_ID || found))
        st = raddino_collection_vector(c, q->id, vector, &img, &found);
    if (st.code) {
        cli_status_error(&st);
        return false;
    }
    if (!found) {
        cli_error("%s: %s %s has no vector in the collection", raddino_store_path(db),
                  q->kind == QUERY_ID ? "image" : "path", q->arg);
        return false;
    }
    q->label = strdup(img.path);
    return q->label != NULL;
}

static bool file_query(raddino_encoder *enc, const search_options *o, query *q, float *vector)
{
    raddino_status st = raddino_embed_file(enc, q->arg, vector, NULL);
    if (!st.code && o->exclude_self) st = cli_file_sha256(q->arg, q->sha256);
    if (st.code) {
        cli_status_error(&st);
        return false;
    }
    q->label = strdup(q->arg);
    return q->label != NULL;
}

/* Fills the query vectors; failed queries are reported and left out (q->ok = 0). */
static int prepare_queries(raddino_collection *c, search_options *o, float *vectors, int dim,
                           int *failures)
{
    raddino_encoder *enc = NULL;
    int exit_code = -1;
    for (size_t i = 0; i < o->n_queries && exit_code < 0; i++) {
        query *q = &o->queries[i];
        float *v = vectors + i * (size_t)dim;
        if (q->kind == QUERY_VECTOR) {
            memcpy(v, q->vector, (size_t)dim * sizeof *v);
            q->ok = 1;
        } else if (q->kind != QUERY_FILE) {
            q->ok = stored_query(c, q, v);
        } else {
            int open_code = EXIT_INPUT_FAILED;  /* cli_open_encoder sets it even on success */
            if (!enc && !(enc = cli_open_collection_model(c, &o->model, &open_code))) {
                exit_code = open_code;
                break;
            }
            q->ok = file_query(enc, o, q, v);
        }
        if (!q->ok) ++*failures;
    }
    raddino_encoder_close(enc);
    return exit_code;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_dicom_uids(const raddino_collection_row *hit)
{
    if (!hit->has_dicom) return;
    fputs(", \"sop_instance_uid\": ", stdout);
    cli_json_string(stdout, hit->sop_instance_uid);
    fputs(", \"study_instance_uid\": ", stdout);
    cli_json_string(stdout, hit->study_instance_uid);
    fputs(", \"series_instance_uid\": ", stdout);
    cli_json_string(stdout, hit->series_instance_uid);
}

static void print_hit(const search_options *o, const query *q, int rank,
                      const raddino_collection_row *hit)
{
    float score = hit->score;
    int64_t id = hit->id;
    const char *path = hit->path;
    switch (o->format) {
    case OUT_JSON:
        fputs("{\"query\": ", stdout);
        cli_json_string(stdout, q->label);
        if (q->kind == QUERY_FILE || q->kind == QUERY_VECTOR)
            fputs(", \"query_id\": null", stdout);
        else printf(", \"query_id\": %lld", (long long)q->id);
        printf(", \"rank\": %d, \"score\": %.6f, \"id\": %lld, \"path\": ", rank, score,
               (long long)id);
        cli_json_string(stdout, path);
        print_dicom_uids(hit);
        fputs("}\n", stdout);
        break;
    case OUT_CSV:
        cli_csv_field(stdout, q->label);
        printf(",%d,%.6f,%lld,", rank, score, (long long)id);
        cli_csv_field(stdout, path);
        fputc('\n', stdout);
        break;
    default: printf("%4d  %.6f  %8lld  %s\n", rank, score, (long long)id, path); break;
    }
}

static int print_results(const search_options *o, const raddino_collection_row *hits)
{
    if (o->format == OUT_CSV) puts("query,rank,score,id,path");
    size_t row = 0;
    for (size_t i = 0; i < o->n_queries; i++) {
        const query *q = &o->queries[i];
        if (!q->ok) continue;
        if (o->format == OUT_TEXT)
            printf("%s# %s\n", row ? "\n" : "", q->label);
        for (int r = 0; r < o->k; r++) {
            const raddino_collection_row *hit = &hits[row * (size_t)o->k + (size_t)r];
            if (hit->id < 0) break;
            print_hit(o, q, r + 1, hit);
        }
        row++;
    }
    return EXIT_OK;
}

/* ---- the HTML page ------------------------------------------------------------------------ */

static void html_query(html_report *r, const search_options *o, const query *q,
                       const raddino_collection_row *hits)
{
    FILE *f = r->f;
    fputs("<section><div class=\"row\"><figure class=\"query\">", f);
    html_thumb(r, q->label);
    fputs("<figcaption>query", f);
    if (q->kind == QUERY_ID || q->kind == QUERY_PATH) fprintf(f, " (id %lld)", (long long)q->id);
    fputs("<br>", f);
    html_escape(f, q->label);
    fputs("</figcaption></figure><div class=\"grid\">", f);
    int shown = 0, total = 0;
    for (int i = 0; i < o->k && hits[i].id >= 0; i++) {
        total++;
        if (shown == HTML_MAX_THUMBS) continue;
        fputs("<figure class=\"hit\">", f);
        html_thumb(r, hits[i].path);
        fprintf(f, "<figcaption><span class=\"rank\">#%d</span> <span class=\"score\">%.4f"
                   "</span> <span class=\"muted\">id %lld</span><br>", i + 1, hits[i].score,
                (long long)hits[i].id);
        html_escape(f, hits[i].path);
        fputs("</figcaption></figure>", f);
        shown++;
    }
    if (!total) fputs("<p class=\"muted\">no results</p>", f);
    if (total > shown)
        fprintf(f, "<p class=\"muted\">%d more results not shown</p>", total - shown);
    fputs("</div></div></section>\n", f);
}

static int write_search_html(raddino_collection *c, const search_options *o,
                             const raddino_collection_row *hits)
{
    html_report r;
    raddino_load_options load = cli_load_options(&o->model);
    raddino_status st = html_report_open(&r, o->html, "raddino search", &load);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    fputs("<p>Collection ", r.f);
    html_escape(r.f, info.db_path);
    fprintf(r.f, ": %lld images. Cosine similarity of CLS vectors, best first (k = %d).</p>\n",
            (long long)info.vectors, o->k);
    size_t row = 0, sections = 0;
    for (size_t i = 0; i < o->n_queries; i++) {
        const query *q = &o->queries[i];
        if (!q->ok) continue;
        if (sections++ < HTML_MAX_SECTIONS)
            html_query(&r, o, q, hits + row * (size_t)o->k);
        row++;
    }
    if (sections > HTML_MAX_SECTIONS)
        fprintf(r.f, "<p class=\"muted\">%zu more queries not shown</p>\n",
                sections - HTML_MAX_SECTIONS);
    st = html_report_close(&r);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return EXIT_OK;
}

/* ---- the command -------------------------------------------------------------------------- */

static int run_search(raddino_collection *c, search_options *o)
{
    raddino_collection_info info;
    raddino_collection_get_info(c, &info);
    size_t n = o->n_queries, k = (size_t)o->k;
    float *vectors = malloc(n * (size_t)info.dim * sizeof *vectors);
    raddino_collection_row *hits = NULL;
    int64_t *self = malloc(n * sizeof *self);
    const char **hashes = malloc(n * sizeof *hashes);
    int failures = 0, exit_code = -1;
    if (!vectors || !self || !hashes) {
        cli_error("out of memory");
        exit_code = EXIT_INPUT_FAILED;
    }
    if (exit_code < 0 && !vector_dims_match(o, info.dim)) exit_code = EXIT_INPUT_FAILED;
    if (exit_code < 0) exit_code = prepare_queries(c, o, vectors, info.dim, &failures);
    size_t m = 0;   /* queries kept, packed to the front */
    for (size_t i = 0; exit_code < 0 && i < n; i++) {
        if (!o->queries[i].ok) continue;
        memmove(vectors + m * (size_t)info.dim, vectors + i * (size_t)info.dim,
                (size_t)info.dim * sizeof *vectors);
        self[m] = o->exclude_self ? o->queries[i].id : -1;
        hashes[m] = o->exclude_self && o->queries[i].sha256[0] ? o->queries[i].sha256 : NULL;
        m++;
    }
    if (exit_code < 0 && m) {
        raddino_status st = raddino_collection_search_rows(c, vectors, m, o->k, o->min_score,
                                                           o->exclude_self ? self : NULL,
                                                           o->exclude_self ? hashes : NULL,
                                                           &hits);
        if (st.code) {
            cli_status_error(&st);
            exit_code = EXIT_INPUT_FAILED;
        } else {
            exit_code = print_results(o, hits);
            if (exit_code == EXIT_OK && o->html) exit_code = write_search_html(c, o, hits);
            raddino_collection_rows_free(hits, m * k);
        }
    }
    if (exit_code == EXIT_OK || exit_code < 0) exit_code = failures ? EXIT_INPUT_FAILED : EXIT_OK;
    free(vectors);
    free(self);
    free(hashes);
    return exit_code;
}

int cmd_search(int argc, char **argv)
{
    search_options o;
    memset(&o, 0, sizeof o);
    o.coll.params = raddino_collection_default_params();
    o.k = 10;
    o.min_score = -2.0f;
    o.queries = calloc((size_t)argc + 1, sizeof *o.queries);
    if (!o.queries) return EXIT_INPUT_FAILED;
    o.arrays = calloc((size_t)argc + 1, sizeof *o.arrays);
    int exit_code = o.arrays ? parse_search_options(argc, argv, &o) : EXIT_INPUT_FAILED;
    if (exit_code < 0) exit_code = expand_vector_queries(&o);
    if (exit_code < 0) {
        o.coll.params.index.n_threads = o.model.threads;
        raddino_collection *c = cli_open_collection(&o.coll, &exit_code);
        if (c) exit_code = run_search(c, &o);
        raddino_collection_close(c);
    }
    for (size_t i = 0; i < o.n_queries; i++) free(o.queries[i].label);
    free(o.queries);
    for (size_t i = 0; i < o.n_arrays; i++) free(o.arrays[i]);
    free(o.arrays);
    return exit_code;
}
