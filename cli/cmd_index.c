/* cmd_index.c — raddino index: embed whole folders into the store and keep it up to date.
 *
 * A run: walk the PATHs; plan (a file whose path, size and mtime are stored unchanged is not
 * read); feed the rest through the decoder threads (index_pipeline.c) to the encoder on this
 * thread; write rows in batches; then (unless --keep-missing) drop the rows of files under the
 * PATHs that are gone, except under a PATH that is gone or holds no file at all: that is an
 * unmounted disk or a mistyped name more often than a deletion (--prune removes those too).
 *
 * Testing hook: RADDINO_TEST_KILL_AFTER=N makes the process SIGKILL itself right after the Nth
 * file it processes has been written into the open batch (not committed yet), so a test can
 * check that a killed run resumes to the same state as an uninterrupted one, without sleeps. */
#include "cli.h"
#include "index.h"
#include "raddino_store.h"

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Commit at least this often, so a kill loses little even with a slow model. */
#define BATCH_MAX_SECONDS 10.0
#define DEFAULT_BATCH 64

static const char index_usage[] =
    "usage: raddino index [OPTIONS] PATH...\n"
    "\n"
    "Embeds every image under the PATHs (files or folders, walked recursively) into the\n"
    "database, and keeps it up to date: unchanged files (same path, size and mtime) are not\n"
    "read; a file whose content is already stored (renamed, copied) reuses its vector; changed\n"
    "files are embedded again; files that cannot be decoded are recorded as failed, with the\n"
    "reason. Images are recognised by content; names starting with '.' are skipped inside\n"
    "folders; symbolic links are followed, each folder once. DICOM files are decoded with\n"
    "--window and their metadata (UIDs, modality, view, a salted patient key) is stored;\n"
    "multi-frame DICOM files are recorded as failed. A file whose decoding killed a run\n"
    "(a decoder crash) is tried alone in a child process by the next run, and recorded as\n"
    "failed if it crashes that too.\n"
    "\n"
    "options:\n"
    CLI_DB_HELP
    "  --keep-missing     keep the rows of files under the PATHs that are gone (by default\n"
    "                     they are removed, and leave every result; so are files now\n"
    "                     excluded). A PATH that does not exist, or a folder with no file\n"
    "                     in it at all (unmounted?), removes nothing, and says so\n"
    "  --prune            remove the rows under such a PATH too\n"
    "  --exclude GLOB     skip matching files and folders (repeatable); a GLOB with '/'\n"
    "                     matches the whole absolute path, else any one name in it\n"
    "  --jobs N           decoder threads (default: half the cores, 2 to 8)\n"
    "  --batch N          commit every N files (default 64, and at least every 10 s)\n"
    "  --reembed          the database holds another model's vectors: drop them and embed\n"
    "                     everything with this model\n"
    "  --quiet            no progress, no summary, no per-file failure lines\n"
    "  --json             end with one JSON object of counts on stdout\n"
    CLI_MODEL_HELP
    "  -h, --help         this help\n"
    "\n"
    "A second 'raddino index' on the same database refuses to start while one runs; readers\n"
    "('raddino stats', 'raddino export') may run at any time.\n";

typedef struct {
    cli_model_options model;
    const char *db;
    char **excludes;
    int n_excludes;
    int jobs, batch;
    bool prune, keep_missing, reembed, quiet, json;
} index_options;

/* Set from the SIGINT handler: finish the current file, commit, stop. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL);   /* a second Ctrl-C stops at once (losing the open batch only) */
}

typedef struct {
    const index_options *o;
    raddino_store *store;
    raddino_encoder *enc;
    raddino_model_info info;
    index_decode_options decode;    /* pixel cap, --window, the store's patient key salt */
    char salt[65];
    int64_t run_id;
    raddino_store_counts counts;
    int64_t ignored;
    size_t n_files, done;       /* files walked / files dealt with (unchanged included) */
    size_t n_todo, processed;   /* files read this run / of them, dealt with */
    double start, encoder_seconds, wait_seconds;
    size_t batch_items;
    double batch_started;
    float *cls, *tokens;
    bool tty, progress_drawn;
    double last_report;
    long kill_after;
    cli_model_location loc;     /* where the model was found: recorded in the store */
    int guarded_roots;          /* PATHs whose rows were kept: empty or unmounted folders */
} indexer;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- options ----------------------------------------------------------------------------- */

static int default_jobs(void)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long jobs = cores / 2;
    return (int)(jobs < 2 ? 2 : jobs > 8 ? 8 : jobs);
}

static int parse_index_options(int argc, char **argv, index_options *o)
{
    static const struct option long_options[] = {
        {"db", required_argument, NULL, 'd'},      {"prune", no_argument, NULL, 'p'},
        {"keep-missing", no_argument, NULL, 'K'},
        {"exclude", required_argument, NULL, 'x'}, {"jobs", required_argument, NULL, 'j'},
        {"batch", required_argument, NULL, 'b'},   {"reembed", no_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},         {"json", no_argument, NULL, 'J'},
        {"help", no_argument, NULL, 'h'},          CLI_MODEL_LONG_OPTIONS,
        {NULL, 0, NULL, 0}};
    int opt, exit_code = -1;
    uint64_t v;
    opterr = 0;
    o->jobs = default_jobs();
    o->batch = DEFAULT_BATCH;
    while ((opt = getopt_long(argc, argv, "hq", long_options, NULL)) != -1) {
        if (cli_model_option(&o->model, opt, optarg, &exit_code)) {
            if (exit_code >= 0) return exit_code;
            continue;
        }
        switch (opt) {
        case 'd': o->db = optarg; break;
        case 'p': o->prune = true; break;
        case 'K': o->keep_missing = true; break;
        case 'x': o->excludes[o->n_excludes++] = optarg; break;
        case 'j':
            if (!cli_parse_u64("--jobs", optarg, 256, &v)) return EXIT_USAGE;
            o->jobs = (int)v;
            break;
        case 'b':
            if (!cli_parse_u64("--batch", optarg, 1000000, &v)) return EXIT_USAGE;
            o->batch = (int)v;
            break;
        case 'r': o->reembed = true; break;
        case 'q': o->quiet = true; break;
        case 'J': o->json = true; break;
        case 'h': fputs(index_usage, stdout); return EXIT_OK;
        default:
            cli_error("index: unknown or incomplete option '%s' (see raddino index --help)",
                      argv[optind - 1]);
            return EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        cli_error("index: no PATH given (see raddino index --help)");
        return EXIT_USAGE;
    }
    if (o->prune && o->keep_missing) {
        cli_error("index: --prune removes rows and --keep-missing keeps them: give one");
        return EXIT_USAGE;
    }
    return -1;
}

/* ---- progress ---------------------------------------------------------------------------- */

static void format_duration(double s, char *out, size_t cap)
{
    if (!isfinite(s) || s < 0) snprintf(out, cap, "?");
    else if (s < 60) snprintf(out, cap, "%.0fs", s);
    else if (s < 3600) snprintf(out, cap, "%dm%02ds", (int)s / 60, (int)s % 60);
    else snprintf(out, cap, "%dh%02dm", (int)(s / 3600), (int)s / 60 % 60);
}

static double images_per_second(const indexer *x)
{
    double elapsed = now() - x->start;
    return elapsed > 0 ? (double)x->processed / elapsed : 0;
}

static void draw_progress(indexer *x, bool force)
{
    if (x->o->quiet) return;
    double t = now();
    if (!force && t - x->last_report < (x->tty ? 0.1 : 10.0)) return;
    x->last_report = t;
    double rate = images_per_second(x);
    char eta[32];
    format_duration(rate > 0 ? (double)(x->n_todo - x->processed) / rate : NAN, eta, sizeof eta);
    if (x->tty) {
        int width = 24, filled = x->n_files ? (int)(width * x->done / x->n_files) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %zu/%zu files  %.1f img/s  ETA %s  %lld failed\033[K", bar,
                x->done, x->n_files, rate, eta, (long long)x->counts.failed);
        x->progress_drawn = true;
    } else {
        fprintf(stderr, "raddino index: %zu/%zu files, %.1f img/s, ETA %s, %lld failed\n",
                x->done, x->n_files, rate, eta, (long long)x->counts.failed);
    }
    fflush(stderr);
}

/* A per-file line, above the progress bar. */
static void report_failure(indexer *x, const char *path, const char *reason)
{
    if (x->o->quiet) return;
    if (x->progress_drawn) fputs("\r\033[K", stderr);
    cli_error("%s: %s", path, reason);
    x->progress_drawn = false;
}

static void print_summary(const indexer *x)
{
    double wall = now() - x->start;
    const raddino_store_counts *c = &x->counts;
    if (x->o->json) {
        printf("{\"added\": %lld, \"updated\": %lld, \"reused\": %lld, \"unchanged\": %lld, "
               "\"failed\": %lld, \"removed\": %lld, \"ignored\": %lld, \"files\": %zu, "
               "\"wall_seconds\": %.3f, \"encoder_seconds\": %.3f, \"decode_wait_seconds\": "
               "%.3f}\n",
               (long long)c->added, (long long)c->updated, (long long)c->reused,
               (long long)c->unchanged, (long long)c->failed, (long long)c->removed,
               (long long)x->ignored, x->n_files, wall, x->encoder_seconds, x->wait_seconds);
        return;
    }
    if (x->o->quiet) return;
    printf("raddino index: %zu files in %.1f s (%.1f files/s): %lld added, %lld updated, "
           "%lld reused, %lld unchanged, %lld failed, %lld removed, %lld not images; "
           "encoder %.1f s (%.0f%%)%s\n",
           x->n_files, wall, wall > 0 ? (double)x->n_files / wall : 0, (long long)c->added,
           (long long)c->updated, (long long)c->reused, (long long)c->unchanged,
           (long long)c->failed, (long long)c->removed, (long long)x->ignored,
           x->encoder_seconds, wall > 0 ? 100 * x->encoder_seconds / wall : 0,
           interrupted ? "; interrupted, run again to continue" : "");
}

/* ---- model identity ---------------------------------------------------------------------- */

/* "…/models--ORG--NAME/snapshots/REV/…" (the Hugging Face cache) names the repository and
 * revision; any other folder leaves them unknown. */
static void repository_from_path(const char *dir, char *repo, size_t repo_cap, char *rev,
                                 size_t rev_cap)
{
    repo[0] = rev[0] = 0;
    char path[PATH_MAX];
    if (raddino_store_normalise_path(dir, path, sizeof path).code) return;
    char *m = strstr(path, "/models--");
    if (!m) return;
    m += strlen("/models--");
    char *end = strchr(m, '/');
    if (!end || strncmp(end, "/snapshots/", 11) != 0) return;
    char *sep = strstr(m, "--");
    if (!sep || sep > end) return;
    snprintf(repo, repo_cap, "%.*s/%.*s", (int)(sep - m), m, (int)(end - sep - 2), sep + 2);
    char *r = end + 11, *r_end = strchr(r, '/');
    snprintf(rev, rev_cap, "%.*s", r_end ? (int)(r_end - r) : (int)strlen(r), r);
}

static int use_model(indexer *x)
{
    char repo[256], rev[128];
    raddino_model_identity id;
    raddino_status st = raddino_encoder_identity(x->enc, &id);
    const char *sha = id.weights_sha256;
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    const char *dir = x->o->model.model ? x->o->model.model : getenv("RADDINO_MODEL");
    repository_from_path(dir ? dir : "", repo, sizeof repo, rev, sizeof rev);
    raddino_store_model m = {sha, id.config_json, repo[0] ? repo : NULL, rev[0] ? rev : NULL,
                             id.dim};
    int64_t model_id, dropped;
    st = raddino_store_use_model(x->store, &m, x->o->reembed, &model_id, &dropped);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    raddino_store_model_origin origin;
    cli_model_origin_from(&x->o->model, &x->loc, sha, &origin);
    st = raddino_store_set_model_origin(x->store, &origin);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    if (dropped && !x->o->quiet)
        fprintf(stderr, "raddino index: dropped %lld vectors of the previous model\n",
                (long long)dropped);
    return -1;
}

/* ---- planning ---------------------------------------------------------------------------- */

static int compare_files(const void *a, const void *b)
{
    return strcmp(((const index_file *)a)->path, ((const index_file *)b)->path);
}

/* Sorts by path and drops duplicates (a file reached from two PATHs). */
static void sort_files(index_walk *w)
{
    if (!w->n_files) return;
    qsort(w->files, w->n_files, sizeof *w->files, compare_files);
    size_t kept = 1;
    for (size_t i = 1; i < w->n_files; i++) {
        if (!strcmp(w->files[i].path, w->files[kept - 1].path)) free(w->files[i].path);
        else w->files[kept++] = w->files[i];
    }
    w->n_files = kept;
}

/* The files that must be read: new, changed, or without a vector of this model. */
static raddino_status plan(indexer *x, const index_walk *w, size_t *todo, size_t *n_todo)
{
    *n_todo = 0;
    for (size_t i = 0; i < w->n_files; i++) {
        const index_file *f = &w->files[i];
        raddino_store_image row;
        int found;
        raddino_status st = raddino_store_find_path(x->store, f->path, &row, &found);
        if (st.code) return st;
        bool same = found && row.size == f->size && row.mtime_ns == f->mtime_ns &&
                    (row.status == RADDINO_IMAGE_FAILED || row.has_vector);
        if (same) {
            x->counts.unchanged++;
            x->done++;
        } else {
            todo[(*n_todo)++] = i;
        }
    }
    return (raddino_status){RADDINO_OK, ""};
}

typedef struct {
    indexer *x;
    index_hash_set *set;
    bool oom;
} hash_collect;

static void collect_hash(void *user, const char *sha256)
{
    hash_collect *c = user;
    if (!c->oom && !index_hash_set_add_hex(c->set, sha256)) c->oom = true;
}

/* ---- writing ----------------------------------------------------------------------------- */

static raddino_status ensure_batch(indexer *x)
{
    raddino_status st = {RADDINO_OK, ""};
    if (x->batch_items == 0 && x->batch_started == 0) {
        st = raddino_store_begin(x->store);
        x->batch_started = now();
    }
    return st;
}

static raddino_status commit_batch(indexer *x, bool finished)
{
    raddino_status st = {RADDINO_OK, ""};
    if (x->batch_started == 0) return st;
    st = raddino_store_run_update(x->store, x->run_id, &x->counts, x->encoder_seconds,
                                  now() - x->start, finished);
    raddino_status commit = raddino_store_commit(x->store);
    x->batch_items = 0;
    x->batch_started = 0;
    return st.code ? st : commit;
}

static void row_from(const index_file *f, const index_item *item, raddino_store_image *row)
{
    memset(row, 0, sizeof *row);
    row->path = f->path;
    row->size = f->size;
    row->mtime_ns = f->mtime_ns;
    snprintf(row->sha256, sizeof row->sha256, "%s", item->sha256);
    row->format = item->format;
    row->width = item->width;
    row->height = item->height;
    row->dicom = item->has_dicom ? &item->dicom : NULL;
}

static raddino_status record_failure(indexer *x, const index_file *f, const index_item *item,
                                     const char *reason)
{
    raddino_store_image row;
    row_from(f, item, &row);
    row.status = RADDINO_IMAGE_FAILED;
    row.reason = reason;
    x->counts.failed++;
    report_failure(x, f->path, reason);
    return raddino_store_put_image(x->store, &row, NULL, NULL);
}

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs the encoder on a READY item into x->cls. */
static raddino_status encode(indexer *x, const index_item *item)
{
    double t = now();
    raddino_status st;
    if (item->pixels) {
        st = raddino_encode_pixels(x->enc, 1, item->pixels, x->tokens);
        if (!st.code) memcpy(x->cls, x->tokens, (size_t)x->info.hidden * sizeof(float));
    } else {
        st = raddino_embed_image(x->enc, &item->image, x->cls, NULL);
    }
    x->encoder_seconds += now() - t;
    return st;
}

static raddino_status store_vector(indexer *x, const index_file *f, index_item *item)
{
    raddino_store_image row, source, existing;
    int found, existed;
    raddino_status st = raddino_store_find_path(x->store, f->path, &existing, &existed);
    if (!st.code) st = raddino_store_find_sha256(x->store, item->sha256, x->cls, &source, &found);
    if (st.code) return st;
    row_from(f, item, &row);
    row.status = RADDINO_IMAGE_OK;
    row.embedded_at = unix_now();
    if (found) {
        /* Same bytes as a stored image: its vector, and its DICOM metadata (same bytes, same
         * database salt: the same row), without the decoder or the encoder. */
        row.width = source.width;
        row.height = source.height;
        row.format = source.format;
        raddino_dicom_info dicom;
        int has_dicom = 0;
        if (!item->has_dicom) st = raddino_store_get_dicom(x->store, source.id, &dicom, &has_dicom);
        if (st.code) return st;
        if (has_dicom) row.dicom = &dicom;
        x->counts.reused++;
        return raddino_store_put_image(x->store, &row, x->cls, NULL);
    }
    if (item->state == ITEM_KNOWN_HASH) {
        /* The stored copy went away during this run: decode after all. */
        index_item_load(x->enc, &x->decode, f->path, NULL, -1, item);
        if (item->state != ITEM_READY)
            return item->state == ITEM_FAILED ? record_failure(x, f, item, item->reason)
                                              : raddino_store_remove_path(x->store, f->path,
                                                                          NULL);
        row_from(f, item, &row);
        row.status = RADDINO_IMAGE_OK;
        row.embedded_at = unix_now();
    }
    st = encode(x, item);
    if (st.code) return record_failure(x, f, item, st.message);
    if (existed) x->counts.updated++;
    else x->counts.added++;
    return raddino_store_put_image(x->store, &row, x->cls, NULL);
}

static raddino_status handle_item(indexer *x, const index_file *f, index_item *item)
{
    raddino_status st = ensure_batch(x);
    if (st.code) return st;
    int removed = 0;
    switch (item->state) {
    case ITEM_GONE:
    case ITEM_NOT_IMAGE:
        st = raddino_store_remove_path(x->store, f->path, &removed);
        if (removed) x->counts.removed++;
        else x->ignored++;
        break;
    case ITEM_FAILED: st = record_failure(x, f, item, item->reason); break;
    case ITEM_KNOWN_HASH:
    case ITEM_READY: st = store_vector(x, f, item); break;
    }
    x->processed++;
    x->done++;
    x->batch_items++;
    if (x->kill_after > 0 && x->processed == (size_t)x->kill_after) raise(SIGKILL);
    if (!st.code && ((int)x->batch_items >= x->o->batch ||
                     now() - x->batch_started >= BATCH_MAX_SECONDS))
        st = commit_batch(x, false);
    return st;
}

/* Files a run that died was decoding (index_guard.c): each is decoded again alone, in a child
 * process, and one that kills the child too is recorded as failed, so that this run and the
 * next ones skip it instead of dying on it again. */
static raddino_status check_crashed_decodes(indexer *x)
{
    char **paths;
    size_t n = index_guard_suspects(cli_db_path(x->o->db), &paths);
    raddino_status st = {RADDINO_OK, ""};
    for (size_t i = 0; i < n && !st.code; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        int sig = index_guard_check(paths[i], &x->decode.load);
        if (!sig) continue;     /* it was only in flight when that run died */
        index_file f = {paths[i], (int64_t)sb.st_size, index_mtime_ns(&sb)};
        index_item item;
        memset(&item, 0, sizeof item);
        char reason[256];
        snprintf(reason, sizeof reason,
                 "decoding this file killed an earlier run and, tried alone, died again (%s); "
                 "skipped until the file changes", strsignal(sig));
        st = ensure_batch(x);
        if (!st.code) st = record_failure(x, &f, &item, reason);
    }
    if (!st.code) st = commit_batch(x, false);
    index_guard_free_suspects(paths, n);
    return st;
}

static int embed_files(indexer *x, const index_walk *w, const size_t *todo,
                       const index_hash_set *known)
{
    index_pipeline *p;
    index_guard guard;
    const char *db = cli_db_path(x->o->db);
    x->decode.guard = index_guard_open(&guard, db, x->o->jobs) ? &guard : NULL;
    raddino_status st = index_pipeline_start(x->enc, &x->decode, w->files, todo, x->n_todo,
                                             x->o->jobs, known, &p);
    if (st.code) {
        if (x->decode.guard) index_guard_close(&guard, db);
        x->decode.guard = NULL;
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    index_item *item;
    while (!interrupted && (item = index_pipeline_next(p, &x->wait_seconds)) != NULL) {
        st = handle_item(x, &w->files[item->file], item);
        if (st.code) break;
        draw_progress(x, false);
    }
    index_pipeline_free(p);     /* joins the threads: every slot is empty */
    if (x->decode.guard) index_guard_close(&guard, db);
    x->decode.guard = NULL;
    if (!st.code) st = commit_batch(x, false);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    return -1;
}

/* ---- pruning ----------------------------------------------------------------------------- */

typedef struct {
    const index_walk *w;
    const bool *guarded;    /* per root: a folder where the walk found no file at all */
    int64_t *kept;          /* per root: rows kept because of that */
} prune_scope;

static bool under(const char *path, const char *folder)
{
    size_t n = strlen(folder);
    if (n == 1 && folder[0] == '/') return true;
    return !strncmp(path, folder, n) && (path[n] == '/' || path[n] == 0);
}

/* Keep rows outside the PATHs, rows of files the walk found, rows under folders it could not
 * list (unknown is not gone), and rows under a PATH with no file at all (see the top). */
static int keep_row(void *user, const char *path)
{
    const prune_scope *s = user;
    bool in_scope = false;
    for (size_t i = 0; i < s->w->n_roots && !in_scope; i++) {
        if (!under(path, s->w->roots[i])) continue;
        if (s->guarded[i]) {
            s->kept[i]++;
            return 1;
        }
        in_scope = true;
    }
    if (!in_scope) return 1;
    for (size_t i = 0; i < s->w->n_unlisted; i++)
        if (under(path, s->w->unlisted[i])) return 1;
    if (s->w->n_files == 0) return 0;
    index_file key = {(char *)path, 0, 0};
    return bsearch(&key, s->w->files, s->w->n_files, sizeof key, compare_files) != NULL;
}

/* Whether the walk found any file under root (files are sorted by path). */
static bool has_files(const index_walk *w, const char *root)
{
    size_t lo = 0, hi = w->n_files;
    while (lo < hi) {   /* the first file not before root */
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(w->files[mid].path, root) < 0) lo = mid + 1;
        else hi = mid;
    }
    /* Paths under root sort after it, but "root-x" and "root.x" sort between root and
     * "root/...": step over them. */
    for (size_t i = lo; i < w->n_files && !strncmp(w->files[i].path, root, strlen(root)); i++)
        if (under(w->files[i].path, root)) return true;
    return false;
}

static int prune(indexer *x, const index_walk *w)
{
    size_t n = w->n_roots ? w->n_roots : 1;
    bool *guarded = calloc(n, sizeof *guarded);
    int64_t *kept = calloc(n, sizeof *kept);
    if (!guarded || !kept) {
        free(guarded);
        free(kept);
        cli_error("out of memory");
        return EXIT_INPUT_FAILED;
    }
    for (size_t i = 0; i < w->n_roots && !x->o->prune; i++) {
        bool unlisted = false;
        for (size_t j = 0; j < w->n_unlisted && !unlisted; j++)
            unlisted = under(w->roots[i], w->unlisted[j]);
        guarded[i] = !unlisted && !has_files(w, w->roots[i]);
    }
    prune_scope scope = {w, guarded, kept};
    int64_t removed;
    raddino_status st = raddino_store_prune(x->store, keep_row, &scope, &removed);
    int exit_code = -1;
    if (st.code) {
        cli_status_error(&st);
        exit_code = EXIT_INPUT_FAILED;
    } else {
        x->counts.removed += removed;
        for (size_t i = 0; i < w->n_roots; i++) {
            if (!kept[i]) continue;
            cli_error("%s: no file found there, but %lld stored file%s under it: kept (a "
                      "folder that is empty or unmounted removes nothing; --prune removes "
                      "them)", w->roots[i], (long long)kept[i], kept[i] == 1 ? " is" : "s are");
            x->guarded_roots++;     /* the run fails, after its summary */
        }
    }
    free(guarded);
    free(kept);
    return exit_code;
}

/* ---- the command ------------------------------------------------------------------------- */

static void command_line(int argc, char **argv, char *out, size_t cap)
{
    size_t used = (size_t)snprintf(out, cap, "index");
    for (int i = 1; i < argc && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, " %s", argv[i]);
}

static int walk_paths(indexer *x, index_walk *w, char **paths, int n)
{
    w->excludes = x->o->excludes;
    w->n_excludes = x->o->n_excludes;
    w->missing_root_is_empty = x->o->prune;
    w->prune_note = !x->o->keep_missing;
    for (int i = 0; i < n; i++) {
        if (!index_walk_add(w, paths[i])) {
            cli_error("out of memory while listing %s", paths[i]);
            return EXIT_INPUT_FAILED;
        }
    }
    if (w->errors && w->n_roots == 0) return EXIT_INPUT_FAILED;
    sort_files(w);
    x->n_files = w->n_files;
    return -1;
}

static int run_index(indexer *x, int argc, char **argv, char **paths, int n_paths)
{
    index_walk w;
    memset(&w, 0, sizeof w);
    index_hash_set known = {0};
    size_t *todo = NULL;
    char command[1024];
    command_line(argc, argv, command, sizeof command);
    raddino_status st = raddino_store_run_begin(x->store, command, &x->run_id);
    if (!st.code) st = check_crashed_decodes(x);
    int exit_code = st.code ? EXIT_INPUT_FAILED : walk_paths(x, &w, paths, n_paths);
    if (st.code) cli_status_error(&st);
    if (exit_code < 0) {
        todo = malloc((w.n_files ? w.n_files : 1) * sizeof *todo);
        st = todo ? plan(x, &w, todo, &x->n_todo)
                  : (raddino_status){RADDINO_ERR_NOMEM, "out of memory"};
        hash_collect c = {x, &known, false};
        if (!st.code && x->n_todo) st = raddino_store_foreach_sha256(x->store, collect_hash, &c);
        index_hash_set_sort(&known);
        if (st.code) {
            cli_status_error(&st);
            exit_code = EXIT_INPUT_FAILED;
        }
    }
    if (exit_code < 0 && x->n_todo) exit_code = embed_files(x, &w, todo, &known);
    if (exit_code < 0 && !x->o->keep_missing && !interrupted) exit_code = prune(x, &w);
    if (exit_code < 0) {
        st = raddino_store_run_update(x->store, x->run_id, &x->counts, x->encoder_seconds,
                                      now() - x->start, !interrupted);
        if (st.code) {
            cli_status_error(&st);
            exit_code = EXIT_INPUT_FAILED;
        }
    }
    if (x->progress_drawn) fputs("\r\033[K", stderr);
    if (exit_code < 0) {
        print_summary(x);
        /* Files that failed in this run make the run fail (README, "Exit status"); those
         * recorded by earlier runs and unchanged since count as unchanged. */
        exit_code = interrupted ? 130
                    : w.errors || x->counts.failed || x->guarded_roots ? EXIT_INPUT_FAILED
                                                                       : EXIT_OK;
    }
    free(todo);
    index_hash_set_free(&known);
    index_walk_free(&w);
    return exit_code;
}

/* The encoder first: a missing model must not leave an empty database behind. */
static int open_all(indexer *x)
{
    int exit_code;
    x->enc = cli_open_encoder_at(&x->o->model, &x->loc, &exit_code);
    if (!x->enc) return exit_code;
    raddino_store_params params = raddino_store_default_params();
    raddino_status st = raddino_store_open(cli_db_path(x->o->db), &params, &x->store);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    raddino_encoder_info(x->enc, &x->info);
    st = raddino_store_dicom_salt(x->store, x->salt);
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    x->decode.load = cli_load_options(&x->o->model);
    x->decode.salt = x->salt;
    size_t tokens = x->info.tokens > 0 ? (size_t)x->info.tokens : 1;
    x->cls = malloc((size_t)x->info.hidden * sizeof(float));
    x->tokens = malloc(tokens * (size_t)x->info.hidden * sizeof(float));
    if (!x->cls || !x->tokens) {
        cli_error("out of memory");
        return EXIT_INPUT_FAILED;
    }
    return use_model(x);
}

int cmd_index(int argc, char **argv)
{
    index_options o;
    memset(&o, 0, sizeof o);
    o.excludes = calloc((size_t)argc, sizeof *o.excludes);
    if (!o.excludes) return EXIT_INPUT_FAILED;
    int exit_code = parse_index_options(argc, argv, &o);
    if (exit_code >= 0) {
        free(o.excludes);
        return exit_code;
    }
    indexer x;
    memset(&x, 0, sizeof x);
    x.o = &o;
    x.start = now();
    x.tty = isatty(STDERR_FILENO);
    x.last_report = x.start;    /* logs start after 10 s: short runs print only the summary */
    /* The model the database recorded, for when no option names one. */
    raddino_store_model_origin origin;
    if (cli_read_model_origin(cli_db_path(o.db), &origin)) {
        o.model.recorded = &origin;
        o.model.recorded_db = cli_db_path(o.db);
    }
    const char *kill_after = getenv("RADDINO_TEST_KILL_AFTER");
    x.kill_after = kill_after ? strtol(kill_after, NULL, 10) : 0;
    exit_code = open_all(&x);
    if (exit_code < 0) {
        interrupted = 0;
        signal(SIGINT, on_interrupt);
        exit_code = run_index(&x, argc, argv, argv + optind, argc - optind);
        signal(SIGINT, SIG_DFL);
    }
    free(x.cls);
    free(x.tokens);
    raddino_encoder_close(x.enc);
    raddino_store_close(x.store);
    free(o.excludes);
    return exit_code;
}
