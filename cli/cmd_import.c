/* cmd_import.c — raddino import: vectors computed elsewhere (the Python rad-dino package,
 * transformers on a GPU) into a collection, checked against the model before they are kept.
 *
 * The rows of an N x dim .npy belong to the paths of a CSV. A seeded random sample of the
 * files is embedded here with the model the options name, and the import is accepted only
 * when every sampled CLS vector has cosine >= 0.9999 with its imported row (fp32 GPU output of
 * the reference model lands near 1 - 1e-6): vectors of another model, another preprocessing
 * or shuffled rows are refused, naming the worst files, and nothing is stored. --verify 0
 * skips the check (for arrays whose images are not at hand) and records the rows as
 * unverified. Files are hashed (size, mtime, sha256) as `raddino index` records them, so a
 * later index of the same folder finds them unchanged and embeds nothing. */
#include "collection.h"
#include "csv.h"
#include "labels.h"
#include "npy.h"

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define IMPORT_MIN_COSINE 0.9999
#define IMPORT_SHOW_WORST 5

static const char import_usage[] =
    "usage: raddino import [--db FILE] --npy V.npy --csv PATHS.csv [--verify N] [--seed N]\n"
    "                      [--path-column C] [--json] [model options]\n"
    "\n"
    "Stores vectors computed elsewhere: row i of V.npy (N x dim; float16, float32 or\n"
    "float64) is the CLS vector of the file on row i of the CSV's path column (relative\n"
    "paths from the CSV's folder). The vectors must come from the model the options name:\n"
    "a seeded random sample of N files (default 32, all when fewer) is embedded here and\n"
    "every one must have cosine >= 0.9999 with its row, else nothing is stored and the\n"
    "worst files are named. Files are hashed as 'raddino index' does, so indexing the same\n"
    "folder later embeds nothing.\n"
    "\n"
    "options:\n"
    "  --npy FILE         the vectors (N x dim)\n"
    "  --csv FILE         their paths, one row per vector, in order\n"
    "  --path-column C    the CSV column of the paths (default: path)\n"
    "  --verify N         files to re-embed and compare (default 32; 0: none, the rows are\n"
    "                     recorded as unverified and the files need not exist)\n"
    "  --seed N           the sample's seed (default 1234)\n"
    "  --json             one JSON object as the summary\n"
    CLI_DB_HELP
    CLI_MODEL_HELP
    "  -h, --help         this help\n";

typedef struct {
    const char *db, *npy, *csv, *path_column;
    uint64_t verify, seed;
    int json;
    cli_model_options model;
} import_options;

typedef struct {
    char *path;                 /* normalised */
    int exists;
    int64_t size, mtime_ns;
    char sha256[65];
    const char *format;
    int width, height;
    int sampled;
    double cosine;              /* sampled: with the re-embedded vector */
    raddino_dicom_info dicom;
    int has_dicom;
} import_row;

static int parse_import_options(int argc, char **argv, import_options *o)
{
    enum { OPT_DB = 0x400, OPT_NPY, OPT_CSV, OPT_VERIFY, OPT_SEED, OPT_JSON, OPT_PATHCOL };
    static const struct option long_options[] = {
        {"db", required_argument, NULL, OPT_DB},
        {"npy", required_argument, NULL, OPT_NPY},
        {"csv", required_argument, NULL, OPT_CSV},
        {"verify", required_argument, NULL, OPT_VERIFY},
        {"seed", required_argument, NULL, OPT_SEED},
        {"json", no_argument, NULL, OPT_JSON},
        {"path-column", required_argument, NULL, OPT_PATHCOL},
        {"help", no_argument, NULL, 'h'},
        CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, "h", long_options, NULL)) != -1) {
        if (cli_model_option(&o->model, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case OPT_DB: o->db = optarg; break;
        case OPT_NPY: o->npy = optarg; break;
        case OPT_CSV: o->csv = optarg; break;
        case OPT_PATHCOL: o->path_column = optarg; break;
        case OPT_VERIFY:
            if (strcmp(optarg, "0") == 0) o->verify = 0;
            else if (!cli_parse_u64("--verify", optarg, 100000000, &o->verify)) return EXIT_USAGE;
            break;
        case OPT_SEED:
            if (!cli_parse_u64("--seed", optarg, UINT64_MAX, &o->seed)) return EXIT_USAGE;
            break;
        case OPT_JSON: o->json = 1; break;
        case 'h': fputs(import_usage, stdout); return EXIT_OK;
        default:
            cli_error("import: unknown or incomplete option '%s' (see raddino import --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || !o->npy || !o->csv) {
        cli_error("import: %s (see raddino import --help)",
                  optind < argc ? "unexpected argument" : "--npy FILE and --csv FILE are required");
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- the CSV ------------------------------------------------------------------------------ */

static int compare_paths(const void *a, const void *b)
{
    const import_row *const *x = a, *const *y = b;
    int c = strcmp((*x)->path, (*y)->path);
    return c ? c : (*x > *y) - (*x < *y);
}

/* Reads the path column: one row per vector. Duplicate paths are refused. */
static bool read_paths(const import_options *o, import_row **rows, size_t *n)
{
    csv_reader r;
    raddino_status st = csv_open(&r, o->csv);
    if (st.code) {
        cli_status_error(&st);
        return false;
    }
    const char *want = o->path_column ? o->path_column : "path";
    int got = csv_next(&r, &st), col = -1;
    for (size_t i = 0; got > 0 && i < r.n_fields; i++)
        if (!strcasecmp(r.fields[i], want)) col = (int)i;
    if (got <= 0 || col < 0) {
        if (got < 0) cli_status_error(&st);
        else cli_error("%s: no column '%s' (see --path-column)", o->csv, want);
        csv_close(&r);
        return false;
    }
    size_t cap = 0;
    bool ok = true;
    *rows = NULL;
    *n = 0;
    while (ok && (got = csv_next(&r, &st)) > 0) {
        if ((size_t)col >= r.n_fields || !r.fields[col][0]) {
            cli_error("%s: line %zu: no path", o->csv, r.line);
            ok = false;
            break;
        }
        if (*n == cap) {
            cap = cap ? cap * 2 : 1024;
            import_row *bigger = realloc(*rows, cap * sizeof *bigger);
            if (!bigger) {
                cli_error("out of memory");
                ok = false;
                break;
            }
            *rows = bigger;
        }
        import_row *row = &(*rows)[*n];
        memset(row, 0, sizeof *row);
        char path[RADDINO_PATH_MAX];
        st = cli_resolve_csv_path(o->csv, r.fields[col], path, sizeof path);
        if (st.code || !(row->path = strdup(path))) {
            cli_error("%s: line %zu: %s", o->csv, r.line, st.code ? st.message : "out of memory");
            ok = false;
            break;
        }
        ++*n;
    }
    if (got < 0) {
        cli_status_error(&st);
        ok = false;
    }
    csv_close(&r);
    if (ok && *n) {
        const import_row **sorted = malloc(*n * sizeof *sorted);
        if (!sorted) {
            cli_error("out of memory");
            return false;
        }
        for (size_t i = 0; i < *n; i++) sorted[i] = &(*rows)[i];
        qsort(sorted, *n, sizeof *sorted, compare_paths);
        for (size_t i = 1; i < *n && ok; i++)
            if (!strcmp(sorted[i]->path, sorted[i - 1]->path)) {
                cli_error("%s: rows %zu and %zu name the same file %s", o->csv,
                          (size_t)(sorted[i - 1] - *rows) + 1, (size_t)(sorted[i] - *rows) + 1,
                          sorted[i]->path);
                ok = false;
            }
        free(sorted);
    }
    return ok;
}

/* ---- the files ---------------------------------------------------------------------------- */

/* Width and height from a PNG's IHDR (other formats: from the decoder, at index time). */
static void png_size(const uint8_t *head, size_t n, int *w, int *h)
{
    if (n < 24 || memcmp(head, "\x89PNG\r\n\x1a\n", 8) || memcmp(head + 12, "IHDR", 4)) return;
    uint32_t a = (uint32_t)head[16] << 24 | head[17] << 16 | head[18] << 8 | head[19];
    uint32_t b = (uint32_t)head[20] << 24 | head[21] << 16 | head[22] << 8 | head[23];
    if (a && b && a < INT32_MAX && b < INT32_MAX) *w = (int)a, *h = (int)b;
}

/* Stats, sniffs and hashes a file as `index` records it; false (reported) when it is not an
 * image raddino embeds. A missing file is an error unless allowed (--verify 0). */
static bool describe_file(import_row *row, bool allow_missing)
{
    struct stat sb;
    if (stat(row->path, &sb) != 0) {
        if (errno == ENOENT && allow_missing) return true;
        cli_error("%s: %s%s", row->path, strerror(errno),
                  errno == ENOENT ? " (with --verify 0 missing files are allowed)" : "");
        return false;
    }
    if (!S_ISREG(sb.st_mode)) {
        cli_error("%s: not a regular file", row->path);
        return false;
    }
    uint8_t head[256];
    FILE *f = fopen(row->path, "rb");
    size_t got = f ? fread(head, 1, sizeof head, f) : 0;
    if (f) fclose(f);
    if (!f) {
        cli_error("%s: %s", row->path, strerror(errno));
        return false;
    }
    raddino_sniff sniff;
    int is_image = raddino_image_sniff(head, got, row->path, &sniff);
    row->format = sniff.format;
    if (!is_image || !sniff.decodable) {
        cli_error("%s: %s", row->path, sniff.why ? sniff.why : "not an image raddino reads");
        return false;
    }
    raddino_status st = cli_file_sha256(row->path, row->sha256);
    if (st.code) {
        cli_status_error(&st);
        return false;
    }
    row->exists = 1;
    row->size = (int64_t)sb.st_size;
    /* As the indexer records it (ingest/walk.c), so a later index run finds it unchanged. */
    row->mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
    png_size(head, got, &row->width, &row->height);
    return true;
}

/* ---- verification ------------------------------------------------------------------------- */

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static double cosine(const float *a, const float *b, int d)
{
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < d; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i],
                                bb += (double)b[i] * b[i];
    return aa > 0 && bb > 0 ? ab / sqrt(aa * bb) : 0.0;
}

static int by_cosine(const void *a, const void *b)
{
    const import_row *const *x = a, *const *y = b;
    return ((*x)->cosine > (*y)->cosine) - ((*x)->cosine < (*y)->cosine);
}

/* Embeds a seeded sample of o->verify rows (all when fewer) and compares. *sampled and
 * *min_cos describe the sample; false (reported) when the import is refused. */
static bool verify_sample(raddino_encoder *enc, const import_options *o, import_row *rows,
                          size_t n, const float *v, int dim, size_t *sampled, double *min_cos)
{
    size_t want = o->verify < n ? (size_t)o->verify : n;
    size_t *pick = malloc((n ? n : 1) * sizeof *pick);
    float *cls = malloc((size_t)dim * sizeof *cls);
    const import_row **bad = malloc((want ? want : 1) * sizeof *bad);
    if (!pick || !cls || !bad) {
        free(pick), free(cls), free(bad);
        cli_error("out of memory");
        return false;
    }
    for (size_t i = 0; i < n; i++) pick[i] = i;
    uint64_t rng = o->seed;
    for (size_t i = 0; i < want; i++) {     /* partial Fisher-Yates: the first `want` */
        size_t j = i + (size_t)(splitmix(&rng) % (n - i));
        size_t t = pick[i];
        pick[i] = pick[j];
        pick[j] = t;
    }
    size_t n_bad = 0;
    bool ok = true;
    *min_cos = NAN;
    for (size_t k = 0; k < want && ok; k++) {
        import_row *row = &rows[pick[k]];
        raddino_status st = raddino_embed_file(enc, row->path, cls, NULL);
        if (st.code) {
            cli_error("import refused: %s (a sampled file must embed to be compared)", st.message);
            ok = false;
            break;
        }
        row->sampled = 1;
        row->cosine = cosine(cls, v + pick[k] * (size_t)dim, dim);
        if (isnan(*min_cos) || row->cosine < *min_cos) *min_cos = row->cosine;
        if (!(row->cosine >= IMPORT_MIN_COSINE)) bad[n_bad++] = row;
    }
    *sampled = want;
    if (ok && n_bad) {
        qsort(bad, n_bad, sizeof *bad, by_cosine);
        char list[RADDINO_MESSAGE_MAX] = "";
        size_t used = 0;
        for (size_t i = 0; i < n_bad && i < IMPORT_SHOW_WORST && used < sizeof list; i++)
            used += (size_t)snprintf(list + used, sizeof list - used, "%s%s (cosine %.6f)",
                                     i ? ", " : "", bad[i]->path, bad[i]->cosine);
        cli_error("%s: import refused: %zu of %zu sampled files differ from their rows (cosine "
                  "< %.4f; not this model's vectors, or rows out of order); worst: %s%s",
                  o->npy, n_bad, want, IMPORT_MIN_COSINE, list,
                  n_bad > IMPORT_SHOW_WORST ? ", ..." : "");
        ok = false;
    }
    free(pick), free(cls), free(bad);
    return ok;
}

/* ---- writing ------------------------------------------------------------------------------ */

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

typedef struct {
    int64_t added, updated, import_id;
} import_counts;

static raddino_status write_rows(raddino_store *db, const import_options *o, import_row *rows,
                                 size_t n, const float *v, int dim, size_t sampled,
                                 double min_cos, const char *npy_sha, import_counts *c)
{
    char npy_path[RADDINO_PATH_MAX], csv_path[RADDINO_PATH_MAX];
    raddino_status st = raddino_store_normalise_path(o->npy, npy_path, sizeof npy_path);
    if (!st.code) st = raddino_store_normalise_path(o->csv, csv_path, sizeof csv_path);
    int64_t run_id = 0;
    if (!st.code) st = raddino_store_run_begin(db, "import", &run_id);
    if (!st.code) st = raddino_store_begin(db);
    if (st.code) return st;
    raddino_store_import imp = {0, 0, npy_path, npy_sha, csv_path, (int64_t)n,
                                (int64_t)sampled, min_cos, o->seed};
    st = raddino_store_put_import(db, &imp);
    double now = unix_now();
    for (size_t i = 0; i < n && !st.code; i++) {
        import_row *row = &rows[i];
        raddino_store_image existing, img;
        int found = 0;
        st = raddino_store_find_path(db, row->path, &existing, &found);
        if (st.code) break;
        memset(&img, 0, sizeof img);
        img.path = row->path;
        /* a file not at hand (--verify 0): size -1 matches no file, so `index` embeds it
         * when it appears */
        img.size = row->exists ? row->size : -1;
        img.mtime_ns = row->exists ? row->mtime_ns : 0;
        snprintf(img.sha256, sizeof img.sha256, "%s", row->sha256);
        img.width = row->width;
        img.height = row->height;
        img.format = row->format;
        img.status = RADDINO_IMAGE_OK;
        img.embedded_at = now;
        img.dicom = row->has_dicom ? &row->dicom : NULL;
        int64_t id = 0;
        st = raddino_store_put_image(db, &img, v + i * (size_t)dim, &id);
        if (!st.code) st = raddino_store_put_origin(db, id, imp.id, (int64_t)i, row->sampled);
        if (found) c->updated++;
        else c->added++;
    }
    raddino_store_counts counts = {0};
    counts.added = c->added;
    counts.updated = c->updated;
    if (!st.code) st = raddino_store_run_update(db, run_id, &counts, 0, 0, 1);
    if (!st.code) st = raddino_store_commit(db);
    c->import_id = imp.id;
    return st;
}

/* ---- the command -------------------------------------------------------------------------- */

static int run_import(import_options *o)
{
    const char *db_path = cli_db_path(o->db);
    import_row *rows = NULL;
    size_t n = 0;
    float *v = NULL;
    int n_dims = 0;
    int64_t shape[8];
    raddino_encoder *enc = NULL;
    raddino_store *db = NULL;
    int exit_code = EXIT_INPUT_FAILED;
    char npy_sha[65];
    if (!read_paths(o, &rows, &n)) goto done;
    raddino_status st = npy_read_float(o->npy, &v, &n_dims, shape);
    if (!st.code) st = cli_file_sha256(o->npy, npy_sha);
    if (st.code) {
        cli_status_error(&st);
        goto done;
    }
    if (!(enc = cli_open_encoder(&o->model, &exit_code))) goto done;
    exit_code = EXIT_INPUT_FAILED;
    raddino_model_info info;
    raddino_encoder_info(enc, &info);
    if (n_dims != 2 || shape[1] != info.hidden) {
        cli_error("%s: expected an N x %d array (this model's dimension), got %d dimensions%s%lld",
                  o->npy, info.hidden, n_dims, n_dims == 2 ? " with rows of " : "",
                  n_dims == 2 ? (long long)shape[1] : 0LL);
        goto done;
    }
    if ((size_t)shape[0] != n) {
        cli_error("%s: %lld rows, but %s names %zu files: one row per file, in order", o->npy,
                  (long long)shape[0], o->csv, n);
        goto done;
    }
    if (!n) {
        cli_error("%s: no rows", o->csv);
        goto done;
    }
    for (size_t i = 0; i < n * (size_t)info.hidden; i++)
        if (!isfinite(v[i])) {
            size_t r = i / (size_t)info.hidden;
            cli_error("%s: row %zu (%s) holds a value that is not finite", o->npy, r, rows[r].path);
            goto done;
        }
    raddino_model_identity id;
    st = raddino_encoder_identity(enc, &id);
    if (st.code) {
        cli_status_error(&st);
        goto done;
    }
    /* A collection of another model is refused before anything is read or embedded. */
    if (access(db_path, F_OK) == 0) {
        raddino_store_params rp = raddino_store_default_params();
        rp.read_only = 1;
        raddino_store *reader = NULL;
        int same = 1;
        char why[RADDINO_MESSAGE_MAX];
        raddino_store_model m = {id.weights_sha256, id.config_json, NULL, NULL, id.dim};
        st = raddino_store_open(db_path, &rp, &reader);
        if (!st.code) st = raddino_store_model_matches(reader, &m, &same, why, sizeof why);
        raddino_store_close(reader);
        if (!st.code && !same)
            st = raddino_status_error(RADDINO_ERR_MODEL, "%s: holds vectors of another model "
                                      "(%s); import vectors of that model, or another database",
                                      db_path, why);
        if (st.code && st.code != RADDINO_ERR_FORMAT) {   /* FORMAT: empty, nothing indexed */
            cli_status_error(&st);
            goto done;
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!describe_file(&rows[i], o->verify == 0)) goto done;
    size_t sampled = 0;
    double min_cos = NAN;
    if (o->verify && !verify_sample(enc, o, rows, n, v, info.hidden, &sampled, &min_cos))
        goto done;
    raddino_encoder_close(enc);
    enc = NULL;
    /* accepted: the writer, then the DICOM metadata (salted per database), then one batch */
    st = raddino_store_open(db_path, NULL, &db);
    raddino_store_model m = {id.weights_sha256, id.config_json, NULL, NULL, id.dim};
    int64_t model_id, dropped;
    if (!st.code) st = raddino_store_use_model(db, &m, 0, &model_id, &dropped);
    char salt[65];
    if (!st.code) st = raddino_store_dicom_salt(db, salt);
    for (size_t i = 0; i < n && !st.code; i++)
        if (rows[i].exists && !strcmp(rows[i].format, "dicom") &&
            !raddino_dicom_read_info(rows[i].path, salt, &rows[i].dicom).code) {
            rows[i].has_dicom = 1;
            rows[i].width = rows[i].dicom.columns;
            rows[i].height = rows[i].dicom.rows;
        }
    import_counts c = {0};
    if (!st.code) st = write_rows(db, o, rows, n, v, info.hidden, sampled, min_cos, npy_sha, &c);
    if (st.code) {
        cli_status_error(&st);
        goto done;
    }
    if (o->json) {
        printf("{\"imported\": %zu, \"added\": %lld, \"updated\": %lld, \"verified\": %zu, "
               "\"min_cosine\": ", n, (long long)c.added, (long long)c.updated, sampled);
        if (isnan(min_cos)) fputs("null", stdout);
        else printf("%.9f", min_cos);
        printf(", \"import_id\": %lld, \"db\": ", (long long)c.import_id);
        cli_json_string(stdout, db_path);
        fputs("}\n", stdout);
    } else if (sampled) {
        printf("imported %zu vectors into %s (%lld new, %lld replaced); verified: %zu files "
               "re-embedded, lowest cosine %.7f\n", n, db_path, (long long)c.added,
               (long long)c.updated, sampled, min_cos);
    } else {
        printf("imported %zu vectors into %s (%lld new, %lld replaced); unverified (--verify 0)\n",
               n, db_path, (long long)c.added, (long long)c.updated);
    }
    exit_code = EXIT_OK;
done:
    raddino_store_close(db);
    raddino_encoder_close(enc);
    for (size_t i = 0; i < n; i++) free(rows[i].path);
    free(rows);
    free(v);
    return exit_code;
}

int cmd_import(int argc, char **argv)
{
    import_options o;
    memset(&o, 0, sizeof o);
    o.verify = 32;
    o.seed = 1234;
    int exit_code = parse_import_options(argc, argv, &o);
    if (exit_code >= 0) return exit_code;
    return run_import(&o);
}
