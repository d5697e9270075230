/* cmd_index.c — raddino index: the options, a progress printer and the summary around
 * raddino_ingest (ingest/raddino_ingest.h), which does the run: walk, plan, decode, embed,
 * write in batches, remove what is gone.
 *
 * Testing hook: RADDINO_TEST_KILL_AFTER=N makes the process SIGKILL itself right after the Nth
 * file it processes has been written into the open batch (not committed yet), so a test can
 * check that a killed run resumes to the same state as an uninterrupted one, without sleeps. */
#include "cli.h"
#include "cli_mpi.h"
#include "raddino_ingest.h"
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
    "  --workers N        files read, decoded and encoded side by side, one thread\n"
    "                     each (default: one per encoder thread, up to 8); 0: --jobs\n"
    "                     threads decode ahead of one encoder on every thread instead\n"
    "                     (the default past 8 threads)\n"
    "  --jobs N           decoder threads with --workers 0 (default: half the cores,\n"
    "                     2 to 8)\n"
    "  --batch N          commit every N files (default 64, and at least every 10 s)\n"
    "  --reembed          the database holds another model's vectors: drop them and embed\n"
    "                     everything with this model\n"
    "  --shard I/N        index only shard I (0..N-1) of the files into --db, a shard\n"
    "                     database: a file's shard is FNV-1a 64 of its absolute path,\n"
    "                     modulo N; 'raddino merge' makes one collection of the shards\n"
    "  --shard slurm      I and N from $SLURM_ARRAY_TASK_ID (minus $SLURM_ARRAY_TASK_MIN)\n"
    "                     and $SLURM_ARRAY_TASK_COUNT, into DB.shard-I-of-N next to --db\n"
    "  --mpi              under mpirun: rank I of N indexes shard I into DB.shard-I-of-N\n"
    "                     next to --db, then rank 0 merges them into --db; threads per\n"
    "                     rank: its cores (shared ones divided among the node's ranks)\n"
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
    bool jobs_given;
    int workers;            /* raddino_ingest_params.workers: 0 automatic, -1 decoder threads */
    bool prune, keep_missing, reembed, quiet, json;
    const char *shard;      /* --shard I/N or slurm */
    bool mpi;
    int shard_index, shard_count;   /* the shard this process indexes (count 0: none) */
    bool no_summary;        /* --mpi: rank 0 prints one summary for all */
} index_options;


/* Set from the SIGINT handler: finish the current file, commit, stop. */
static volatile sig_atomic_t interrupted;

static void on_interrupt(int sig)
{
    interrupted = 1;
    signal(sig, SIG_DFL);   /* a second Ctrl-C stops at once (losing the open batch only) */
}

static int is_interrupted(void *user)
{
    (void)user;
    return interrupted;
}

/* What the printer keeps between calls. */
typedef struct {
    const index_options *o;
    double start;
    bool tty, progress_drawn;
    double last_report;
} printer;

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
        {"workers", required_argument, NULL, 'w'},
        {"batch", required_argument, NULL, 'b'},   {"reembed", no_argument, NULL, 'r'},
        {"quiet", no_argument, NULL, 'q'},         {"json", no_argument, NULL, 'J'},
        {"shard", required_argument, NULL, 'S'},   {"mpi", no_argument, NULL, 'M'},
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
            o->jobs_given = true;
            break;
        case 'w':
            if (!strcmp(optarg, "0")) {
                o->workers = -1;
                break;
            }
            if (!cli_parse_u64("--workers", optarg, 256, &v)) return EXIT_USAGE;
            o->workers = (int)v;
            break;
        case 'S': o->shard = optarg; break;
        case 'M': o->mpi = true; break;
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
    if (o->shard && o->mpi) {
        cli_error("index: --shard and --mpi both choose the shard: give one");
        return EXIT_USAGE;
    }
    if (o->shard && strcmp(o->shard, "slurm") != 0) {
        char *end;
        long i = strtol(o->shard, &end, 10), n = -1;
        if (end != o->shard && *end == '/' && end[1] >= '0' && end[1] <= '9') {
            const char *c = end + 1;
            n = strtol(c, &end, 10);
            if (*end) n = -1;
        }
        if (n < 1 || n > 1000000 || i < 0 || i >= n || o->shard[0] < '0' || o->shard[0] > '9') {
            cli_error("index: --shard '%s': expected I/N with 0 <= I < N (e.g. 0/4), or slurm",
                      o->shard);
            return EXIT_USAGE;
        }
        o->shard_index = (int)i;
        o->shard_count = (int)n;
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

static void draw_progress(void *user, const raddino_ingest_progress *p)
{
    printer *x = user;
    if (x->o->quiet) return;
    double t = now();
    if (t - x->last_report < (x->tty ? 0.1 : 10.0)) return;
    x->last_report = t;
    double elapsed = t - x->start;
    double rate = elapsed > 0 ? (double)p->read / elapsed : 0;
    char eta[32];
    format_duration(rate > 0 ? (double)(p->to_read - p->read) / rate : NAN, eta, sizeof eta);
    if (x->tty) {
        int width = 24, filled = p->files ? (int)(width * p->done / p->files) : width;
        char bar[32];
        for (int i = 0; i < width; i++) bar[i] = i < filled ? '#' : '.';
        bar[width] = 0;
        fprintf(stderr, "\r[%s] %zu/%zu files  %.1f img/s  ETA %s  %lld failed\033[K", bar,
                p->done, p->files, rate, eta, (long long)p->failed);
        x->progress_drawn = true;
    } else {
        fprintf(stderr, "raddino index: %zu/%zu files, %.1f img/s, ETA %s, %lld failed\n",
                p->done, p->files, rate, eta, (long long)p->failed);
    }
    fflush(stderr);
}

/* Failures and notes, one line each (above the progress bar for a file that failed). */
static void print_event(void *user, const raddino_ingest_event *e)
{
    printer *x = user;
    switch (e->kind) {
    case RADDINO_INGEST_FILE_FAILED:
        if (x->o->quiet) return;
        if (x->progress_drawn) fputs("\r\033[K", stderr);
        cli_error("%s: %s", e->path, e->reason);
        x->progress_drawn = false;
        break;
    case RADDINO_INGEST_PATH_ERROR:
        if (e->path) cli_error("%s: %s", e->path, e->reason);
        else cli_error("%s", e->reason);
        break;
    case RADDINO_INGEST_PATH_GONE:
        cli_error("%s: %s: nothing stored under it is removed (a PATH that is gone or "
                  "unmounted removes nothing; --prune removes its rows)", e->path, e->reason);
        break;
    case RADDINO_INGEST_FOLDER_UNLISTED:
        cli_error("%s: cannot list: %s (its rows are kept)", e->path, e->reason);
        break;
    case RADDINO_INGEST_ROOT_KEPT:
        cli_error("%s: no file found there, but %lld stored file%s under it: kept (a "
                  "folder that is empty or unmounted removes nothing; --prune removes "
                  "them)", e->path, (long long)e->count, e->count == 1 ? " is" : "s are");
        break;
    case RADDINO_INGEST_DROPPED:
        if (!x->o->quiet)
            fprintf(stderr, "raddino index: dropped %lld vectors of the previous model\n",
                    (long long)e->count);
        break;
    }
}

static void print_summary(const printer *x, const raddino_ingest_result *r)
{
    double wall = now() - x->start;
    const raddino_store_counts *c = &r->counts;
    if (x->o->no_summary) return;
    if (x->o->json) {
        printf("{\"added\": %lld, \"updated\": %lld, \"reused\": %lld, \"unchanged\": %lld, "
               "\"failed\": %lld, \"removed\": %lld, \"ignored\": %lld, \"files\": %zu, "
               "\"wall_seconds\": %.3f, \"encoder_seconds\": %.3f, \"decode_wait_seconds\": "
               "%.3f}\n",
               (long long)c->added, (long long)c->updated, (long long)c->reused,
               (long long)c->unchanged, (long long)c->failed, (long long)c->removed,
               (long long)r->ignored, r->files, wall, r->encoder_seconds, r->wait_seconds);
        return;
    }
    if (x->o->quiet || x->o->no_summary) return;
    printf("raddino index: %zu files in %.1f s (%.1f files/s): %lld added, %lld updated, "
           "%lld reused, %lld unchanged, %lld failed, %lld removed, %lld not images; "
           "encoder %.1f s (%.0f%%)%s\n",
           r->files, wall, wall > 0 ? (double)r->files / wall : 0, (long long)c->added,
           (long long)c->updated, (long long)c->reused, (long long)c->unchanged,
           (long long)c->failed, (long long)c->removed, (long long)r->ignored,
           r->encoder_seconds, wall > 0 ? 100 * r->encoder_seconds / wall : 0,
           interrupted ? "; interrupted, run again to continue" : "");
}

/* ---- where the model came from --------------------------------------------------------- */

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

/* ---- the command ------------------------------------------------------------------------- */

static void command_line(int argc, char **argv, char *out, size_t cap)
{
    size_t used = (size_t)snprintf(out, cap, "index");
    for (int i = 1; i < argc && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, " %s", argv[i]);
}

static int run_index(const index_options *o, printer *pr, raddino_encoder *enc,
                     raddino_store *store, const cli_model_location *loc, int argc, char **argv,
                     raddino_ingest_result *out, bool *complete)
{
    char command[1024], repo[256], rev[128];
    command_line(argc, argv, command, sizeof command);
    const char *dir = o->model.model ? o->model.model : getenv("RADDINO_MODEL");
    repository_from_path(dir ? dir : "", repo, sizeof repo, rev, sizeof rev);
    raddino_store_model_origin origin;
    cli_model_origin_from(&o->model, loc, "", &origin);  /* the sha256: the encoder's identity */

    raddino_ingest_params p = raddino_ingest_default_params();
    p.excludes = (const char *const *)o->excludes;
    p.n_excludes = o->n_excludes;
    p.jobs = o->jobs;
    p.workers = o->workers;
    p.batch = o->batch;
    p.batch_seconds = BATCH_MAX_SECONDS;
    p.keep_missing = o->keep_missing;
    p.prune = o->prune;
    p.reembed = o->reembed;
    p.command = command;
    p.repository = repo;
    p.revision = rev;
    p.origin = &origin;
    p.decode_check_program = "/proc/self/exe";  /* cmd_decode_check, below */
    p.on_event = print_event;
    p.on_progress = draw_progress;
    p.cancel = is_interrupted;
    p.user = pr;
    p.shard_index = o->shard_index;
    p.shard_count = o->shard_count;
    const char *kill_after = getenv("RADDINO_TEST_KILL_AFTER");
    p.test_kill_after = kill_after ? strtol(kill_after, NULL, 10) : 0;

    raddino_ingest_result local;
    raddino_ingest_result *rp = out ? out : &local;
    raddino_status st = raddino_ingest(store, enc, (const char *const *)argv + optind,
                                       argc - optind, &p, rp);
    const raddino_ingest_result r = *rp;
    *complete = !st.code && !r.nothing_walked && !r.cancelled && !interrupted;
    if (pr->progress_drawn) fputs("\r\033[K", stderr);
    if (st.code && r.model_refused == 1) {
        cli_error("%s: %s", st.message, CLI_HINT_OTHER_MODEL);
        return EXIT_INPUT_FAILED;
    }
    if (st.code) {
        cli_status_error(&st);
        return EXIT_INPUT_FAILED;
    }
    if (r.nothing_walked) return EXIT_INPUT_FAILED;     /* each PATH's error was printed */
    print_summary(pr, &r);
    /* Files that failed in this run make the run fail (README, "Exit status"); those recorded
     * by earlier runs and unchanged since count as unchanged. */
    return interrupted ? 130
           : r.path_errors || r.counts.failed || r.roots_kept ? EXIT_INPUT_FAILED
                                                               : EXIT_OK;
}

/* raddino __decode-check MAX_PIXELS WINDOW CENTER WIDTH FILE: the crash check's child
 * (raddino_ingest_decode_check). */
int cmd_decode_check(int argc, char **argv)
{
    return raddino_ingest_decode_check(argc, argv);
}

/* --shard slurm: I and N from the array job's environment. */
static int slurm_shard(index_options *o)
{
    const char *id = getenv("SLURM_ARRAY_TASK_ID"), *count = getenv("SLURM_ARRAY_TASK_COUNT");
    const char *min = getenv("SLURM_ARRAY_TASK_MIN");
    if (!id || !*id || !count || !*count) {
        cli_error("index: --shard slurm: SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT are not "
                  "set (run it as a Slurm array job: sbatch --array=0-N-1 ...), or give "
                  "--shard I/N");
        return EXIT_USAGE;
    }
    char *end1, *end2, *end3 = NULL;
    long i = strtol(id, &end1, 10), n = strtol(count, &end2, 10);
    long first = min && *min ? strtol(min, &end3, 10) : 0;
    if (*end1 || *end2 || (end3 && *end3) || n < 1 || n > 1000000 || i - first < 0 ||
        i - first >= n) {
        cli_error("index: --shard slurm: task %s of an array of %s tasks starting at %s is not "
                  "a shard I/N with 0 <= I < N (give the array as --array=0-N-1)", id, count,
                  min && *min ? min : "0");
        return EXIT_USAGE;
    }
    o->shard_index = (int)(i - first);
    o->shard_count = (int)n;
    return -1;
}

/* Opens the encoder and the store at db and runs the index (one shard or everything). */
static int index_one(index_options *o, const char *db, int argc, char **argv,
                     raddino_ingest_result *r, bool *complete)
{
    int exit_code = EXIT_INPUT_FAILED;
    *complete = false;
    printer pr;
    memset(&pr, 0, sizeof pr);
    pr.o = o;
    pr.start = now();
    pr.tty = isatty(STDERR_FILENO);
    pr.last_report = pr.start;  /* logs start after 10 s: short runs print only the summary */
    /* The model the database recorded, for when no option names one. */
    raddino_store_model_origin recorded;
    if (cli_read_model_origin(db, &recorded)) {
        o->model.recorded = &recorded;
        o->model.recorded_db = db;
    }
    /* The encoder first: a missing model must not leave an empty database behind. */
    cli_model_location loc;
    raddino_store *store = NULL;
    raddino_encoder *enc = cli_open_encoder_at(&o->model, &loc, &exit_code);
    if (enc) {
        raddino_store_params params = raddino_store_default_params();
        raddino_status st = raddino_store_open(db, &params, &store);
        if (st.code) {
            cli_status_error(&st);
            exit_code = EXIT_INPUT_FAILED;
        } else {
            interrupted = 0;
            signal(SIGINT, on_interrupt);
            exit_code = run_index(o, &pr, enc, store, &loc, argc, argv, r, complete);
            signal(SIGINT, SIG_DFL);
        }
    }
    o->model.recorded = NULL;
    raddino_encoder_close(enc);
    raddino_store_close(store);
    return exit_code;
}

/* --mpi: rank I of N indexes shard I next to the main database, rank 0 merges; one summary,
 * and every rank exits with the status of the whole run. */
static int index_mpi(index_options *o, int argc, char **argv)
{
    if (!cli_mpi_available()) {
        cli_error("index: --mpi: this raddino was built without MPI (install libopenmpi-dev "
                  "and build again), or use --shard I/N or --shard slurm");
        return EXIT_USAGE;
    }
    cli_mpi m;
    if (!cli_mpi_init(&m)) return EXIT_INPUT_FAILED;
    double start = now();
    const char *main_db = cli_db_path(o->db);
    if (!o->model.threads && !getenv("RADDINO_THREADS")) o->model.threads = cli_mpi_threads(&m);
    if (!o->jobs_given) {
        int threads = o->model.threads ? o->model.threads : 2;
        o->jobs = threads / 2 < 1 ? 1 : threads / 2 > 8 ? 8 : threads / 2;
    }
    o->shard_index = m.rank;
    o->shard_count = m.size;
    o->no_summary = true;
    char shard[PATH_MAX];
    raddino_status st = raddino_store_shard_path(main_db, m.rank, m.size, shard, sizeof shard);
    raddino_ingest_result r;
    memset(&r, 0, sizeof r);
    bool complete = false;
    int code = EXIT_INPUT_FAILED;
    if (st.code) cli_status_error(&st);
    else code = index_one(o, shard, argc, argv, &r, &complete);
    /* Every rank's status and counts, then rank 0 merges when every shard is complete. */
    int64_t status[2] = {code, complete ? 0 : 1};
    cli_mpi_max(status, 2);
    int64_t counts[9] = {r.counts.added, r.counts.updated, r.counts.reused, r.counts.unchanged,
                         r.counts.failed, r.counts.removed, r.ignored, (int64_t)r.files,
                         (int64_t)(r.encoder_seconds * 1000)};
    cli_mpi_sum(counts, 9);
    int64_t result = status[0];
    if (m.rank == 0) {
        if (status[1]) {
            cli_error("%s: not merged: a shard is incomplete (its rank failed or was "
                      "interrupted); run the same command again to finish it", main_db);
            if (!result) result = EXIT_INPUT_FAILED;
        } else {
            char **paths = calloc((size_t)m.size, sizeof *paths);
            bool ok = paths != NULL;
            for (int i = 0; ok && i < m.size; i++) {
                char path[PATH_MAX];
                ok = !raddino_store_shard_path(main_db, i, m.size, path, sizeof path).code &&
                     (paths[i] = strdup(path)) != NULL;
            }
            raddino_store_merge_result mr;
            memset(&mr, 0, sizeof mr);
            char command[1024];
            command_line(argc, argv, command, sizeof command);
            int merged = ok ? cli_merge(main_db, (const char *const *)paths, m.size, command, &mr)
                            : EXIT_INPUT_FAILED;
            if (merged && !result) result = merged;
            if (paths)
                for (int i = 0; i < m.size; i++) free(paths[i]);
            free(paths);
            double wall = now() - start;
            if (!merged && o->json) {
                printf("{\"ranks\": %d, \"added\": %lld, \"updated\": %lld, \"reused\": %lld, "
                       "\"unchanged\": %lld, \"failed\": %lld, \"removed\": %lld, "
                       "\"ignored\": %lld, \"files\": %lld, \"wall_seconds\": %.3f, "
                       "\"merged_added\": %lld, \"merged_updated\": %lld, "
                       "\"merged_removed\": %lld}\n",
                       m.size, (long long)counts[0], (long long)counts[1], (long long)counts[2],
                       (long long)counts[3], (long long)counts[4], (long long)counts[5],
                       (long long)counts[6], (long long)counts[7], wall, (long long)mr.added,
                       (long long)mr.updated, (long long)mr.removed);
            } else if (!merged && !o->quiet) {
                printf("raddino index: %d ranks, %lld files in %.1f s (%.1f files/s): %lld added, "
                       "%lld updated, %lld reused, %lld unchanged, %lld failed, %lld removed, "
                       "%lld not images; merged into %s: %lld added, %lld updated, %lld "
                       "removed\n",
                       m.size, (long long)counts[7], wall,
                       wall > 0 ? (double)counts[7] / wall : 0, (long long)counts[0],
                       (long long)counts[1], (long long)counts[2], (long long)counts[3],
                       (long long)counts[4], (long long)counts[5], (long long)counts[6], main_db,
                       (long long)mr.added, (long long)mr.updated, (long long)mr.removed);
            }
            fflush(stdout);
        }
    }
    cli_mpi_max(&result, 1);     /* rank 0's merge counts for every rank */
    cli_mpi_finalize();
    return (int)result;
}

int cmd_index(int argc, char **argv)
{
    index_options o;
    memset(&o, 0, sizeof o);
    o.excludes = calloc((size_t)argc, sizeof *o.excludes);
    if (!o.excludes) return EXIT_INPUT_FAILED;
    int exit_code = parse_index_options(argc, argv, &o);
    if (exit_code < 0 && o.shard && !strcmp(o.shard, "slurm")) exit_code = slurm_shard(&o);
    if (exit_code >= 0) {
        free(o.excludes);
        return exit_code;
    }
    if (o.mpi) {
        exit_code = index_mpi(&o, argc, argv);
        free(o.excludes);
        return exit_code;
    }
    const char *db = cli_db_path(o.db);
    char shard[PATH_MAX];
    if (o.shard && !strcmp(o.shard, "slurm")) {
        raddino_status st = raddino_store_shard_path(db, o.shard_index, o.shard_count, shard,
                                                     sizeof shard);
        if (st.code) {
            cli_status_error(&st);
            free(o.excludes);
            return EXIT_INPUT_FAILED;
        }
        db = shard;
    }
    bool complete;
    exit_code = index_one(&o, db, argc, argv, NULL, &complete);
    free(o.excludes);
    return exit_code;
}
