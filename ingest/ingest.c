/* ingest.c — raddino_ingest: one run of walking, planning, decoding, embedding and writing
 * (raddino_ingest.h describes what a run does).
 *
 * A run: register the model; re-check files a dead run was decoding (guard.c); walk the PATHs
 * (walk.c); plan (a file whose path, size and mtime are stored unchanged is not read); feed the
 * rest through the decoder threads (pipeline.c) to the encoder on this thread; write rows in
 * batches; then (unless keep_missing) drop the rows of files under the PATHs that are gone,
 * except under a PATH that is gone or holds no file at all: that is an unmounted disk or a
 * mistyped name more often than a deletion (params.prune removes those too). */
#include "ingest_internal.h"

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

raddino_ingest_params raddino_ingest_default_params(void)
{
    raddino_ingest_params p;
    memset(&p, 0, sizeof p);
    p.jobs = 2;
    p.batch = 64;
    p.batch_seconds = 10.0;
    return p;
}

void ingest_event(const raddino_ingest_params *params, int kind, const char *path,
                  const char *reason, int64_t count)
{
    if (!params || !params->on_event) return;
    raddino_ingest_event e = {kind, path, reason, count};
    params->on_event(params->user, &e);
}

typedef struct {
    const raddino_ingest_params *p;
    raddino_store *store;
    raddino_encoder *enc;
    raddino_model_info info;
    ingest_decode_options decode;   /* pixel cap, DICOM window, the store's patient key salt */
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
    bool cancelled;
    int roots_kept;             /* PATHs whose rows were kept: empty or unmounted folders */
    int model_refused;          /* raddino_ingest_result.model_refused */
} ingester;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static raddino_status ok(void) { return raddino_status_ok(); }

static raddino_status nomem(void) { return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory"); }

/* Sticky: once the caller asked to stop, the run stops at every later check too. */
static bool cancelled(ingester *x)
{
    if (!x->cancelled && x->p->cancel && x->p->cancel(x->p->user)) x->cancelled = true;
    return x->cancelled;
}

static void progress(const ingester *x)
{
    if (!x->p->on_progress) return;
    raddino_ingest_progress pr = {x->n_files, x->done, x->n_todo, x->processed, x->counts.failed};
    x->p->on_progress(x->p->user, &pr);
}

/* ---- the model ----------------------------------------------------------------------------- */

static raddino_status use_model(ingester *x)
{
    raddino_model_identity id;
    raddino_status st = raddino_encoder_identity(x->enc, &id);
    if (st.code) return st;
    const raddino_ingest_params *p = x->p;
    raddino_store_model m = {id.weights_sha256, id.config_json,
                             p->repository && *p->repository ? p->repository : NULL,
                             p->revision && *p->revision ? p->revision : NULL, id.dim};
    int64_t model_id, dropped;
    st = raddino_store_use_model(x->store, &m, p->reembed, &model_id, &dropped);
    if (st.code == RADDINO_ERR_MODEL) {
        raddino_store_stats stats;
        x->model_refused = !raddino_store_get_stats(x->store, &stats).code && stats.models > 1
                               ? 2 : 1;
    }
    if (st.code) return st;
    if (p->origin) {
        raddino_store_model_origin origin = *p->origin;
        memcpy(origin.weights_sha256, id.weights_sha256, sizeof origin.weights_sha256);
        st = raddino_store_set_model_origin(x->store, &origin);
        if (st.code) return st;
    }
    if (dropped) ingest_event(p, RADDINO_INGEST_DROPPED, NULL, NULL, dropped);
    return st;
}

/* ---- planning ------------------------------------------------------------------------------ */

static int compare_files(const void *a, const void *b)
{
    return strcmp(((const ingest_file *)a)->path, ((const ingest_file *)b)->path);
}

/* Sorts by path and drops duplicates (a file reached from two PATHs). */
static void sort_files(ingest_walk *w)
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
static raddino_status plan(ingester *x, const ingest_walk *w, size_t *todo, size_t *n_todo)
{
    *n_todo = 0;
    for (size_t i = 0; i < w->n_files; i++) {
        const ingest_file *f = &w->files[i];
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
    return ok();
}

typedef struct {
    ingest_hash_set *set;
    bool oom;
} hash_collect;

static void collect_hash(void *user, const char *sha256)
{
    hash_collect *c = user;
    if (!c->oom && !ingest_hash_set_add_hex(c->set, sha256)) c->oom = true;
}

/* ---- writing ------------------------------------------------------------------------------- */

static raddino_status ensure_batch(ingester *x)
{
    raddino_status st = ok();
    if (x->batch_items == 0 && x->batch_started == 0) {
        st = raddino_store_begin(x->store);
        x->batch_started = now();
    }
    return st;
}

static raddino_status commit_batch(ingester *x, bool finished)
{
    raddino_status st = ok();
    if (x->batch_started == 0) return st;
    st = raddino_store_run_update(x->store, x->run_id, &x->counts, x->encoder_seconds,
                                  now() - x->start, finished);
    raddino_status commit = raddino_store_commit(x->store);
    x->batch_items = 0;
    x->batch_started = 0;
    return st.code ? st : commit;
}

static void row_from(const ingest_file *f, const ingest_item *item, raddino_store_image *row)
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

static raddino_status record_failure(ingester *x, const ingest_file *f, const ingest_item *item,
                                     const char *reason)
{
    raddino_store_image row;
    row_from(f, item, &row);
    row.status = RADDINO_IMAGE_FAILED;
    row.reason = reason;
    x->counts.failed++;
    ingest_event(x->p, RADDINO_INGEST_FILE_FAILED, f->path, reason, 0);
    return raddino_store_put_image(x->store, &row, NULL, NULL);
}

static double unix_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs the encoder on a READY item into x->cls. */
static raddino_status encode(ingester *x, const ingest_item *item)
{
    if (item->encoded) {    /* by a worker (pipeline.c) */
        x->encoder_seconds += item->encode_seconds;
        if (!item->encode_status.code)
            memcpy(x->cls, item->cls, (size_t)x->info.hidden * sizeof(float));
        return item->encode_status;
    }
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

static raddino_status store_vector(ingester *x, const ingest_file *f, ingest_item *item)
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
    if (item->state == INGEST_ITEM_KNOWN_HASH) {
        /* The stored copy went away during this run: decode after all. */
        ingest_item_load(x->enc, &x->decode, f->path, NULL, -1, item);
        if (item->state != INGEST_ITEM_READY)
            return item->state == INGEST_ITEM_FAILED
                       ? record_failure(x, f, item, item->reason)
                       : raddino_store_remove_path(x->store, f->path, NULL);
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

static raddino_status handle_item(ingester *x, const ingest_file *f, ingest_item *item)
{
    raddino_status st = ensure_batch(x);
    if (st.code) return st;
    int removed = 0;
    switch (item->state) {
    case INGEST_ITEM_GONE:
    case INGEST_ITEM_NOT_IMAGE:
        st = raddino_store_remove_path(x->store, f->path, &removed);
        if (removed) x->counts.removed++;
        else x->ignored++;
        break;
    case INGEST_ITEM_FAILED: st = record_failure(x, f, item, item->reason); break;
    case INGEST_ITEM_KNOWN_HASH:
    case INGEST_ITEM_READY: st = store_vector(x, f, item); break;
    }
    x->processed++;
    x->done++;
    x->batch_items++;
    if (x->p->test_kill_after > 0 && x->processed == (size_t)x->p->test_kill_after)
        raise(SIGKILL);
    if (!st.code && ((int)x->batch_items >= x->p->batch ||
                     now() - x->batch_started >= x->p->batch_seconds))
        st = commit_batch(x, false);
    return st;
}

/* Files a run that died was decoding (guard.c): each is decoded again alone, in a child
 * process, and one that kills the child too is recorded as failed, so that this run and the
 * next ones skip it instead of dying on it again. */
static raddino_status check_crashed_decodes(ingester *x)
{
    char **paths;
    size_t n = ingest_guard_suspects(raddino_store_path(x->store), &paths);
    raddino_status st = ok();
    for (size_t i = 0; i < n && !st.code; i++) {
        struct stat sb;
        if (stat(paths[i], &sb) != 0 || !S_ISREG(sb.st_mode)) continue;
        int sig = ingest_guard_check(x->p->decode_check_program, paths[i], &x->decode.load);
        if (!sig) continue;     /* it was only in flight when that run died */
        ingest_file f = {paths[i], (int64_t)sb.st_size, ingest_mtime_ns(&sb)};
        ingest_item item;
        memset(&item, 0, sizeof item);
        char reason[256];
        snprintf(reason, sizeof reason,
                 "decoding this file killed an earlier run and, tried alone, died again (%s); "
                 "skipped until the file changes", strsignal(sig));
        st = ensure_batch(x);
        if (!st.code) st = record_failure(x, &f, &item, reason);
    }
    if (!st.code) st = commit_batch(x, false);
    ingest_guard_free_suspects(paths, n);
    return st;
}

/* Encoding workers (pipeline.c): params.workers, or by default one per encoder thread up to
 * INGEST_AUTO_WORKERS_MAX. Past that, the decoder threads feeding one encoder on every thread
 * (0): W single-threaded workers would hold W run states and W decoded images at once, and
 * that mode was never measured against the other there. */
#define INGEST_AUTO_WORKERS_MAX 8
int ingest_workers(const raddino_ingest_params *p, const raddino_encoder *enc)
{
    if (p->workers > 0) return p->workers;
    if (p->workers < 0) return 0;
    int threads = raddino_encoder_threads(enc);
    return threads <= INGEST_AUTO_WORKERS_MAX ? threads : 0;
}

static raddino_status embed_files(ingester *x, const ingest_walk *w, const size_t *todo,
                                  const ingest_hash_set *known)
{
    ingest_pipeline *p;
    ingest_guard guard;
    const char *db = raddino_store_path(x->store);
    int jobs = x->p->jobs > 0 ? x->p->jobs : 1;
    int workers = ingest_workers(x->p, x->enc);
    if (workers > 0) jobs = workers;
    x->decode.guard = ingest_guard_open(&guard, db, jobs) ? &guard : NULL;
    raddino_status st = ingest_pipeline_start(x->enc, &x->decode, w->files, todo, x->n_todo,
                                              jobs, workers > 0, known, &p);
    if (st.code) {
        if (x->decode.guard) ingest_guard_close(&guard, db);
        x->decode.guard = NULL;
        return st;
    }
    ingest_item *item;
    while (!cancelled(x) && (item = ingest_pipeline_next(p, &x->wait_seconds)) != NULL) {
        st = handle_item(x, &w->files[item->file], item);
        if (st.code) break;
        progress(x);
    }
    ingest_pipeline_free(p);    /* joins the threads: every slot is empty */
    if (x->decode.guard) ingest_guard_close(&guard, db);
    x->decode.guard = NULL;
    if (!st.code) st = commit_batch(x, false);
    return st;
}

/* ---- pruning ------------------------------------------------------------------------------- */

static bool sharded(const raddino_ingest_params *p)
{
    return p->shard_count > 0;
}

static bool in_shard(const raddino_ingest_params *p, const char *path)
{
    return !sharded(p) ||
           raddino_store_shard_of(path, (uint32_t)p->shard_count) == (uint32_t)p->shard_index;
}


typedef struct {
    const ingest_walk *w;
    const raddino_ingest_params *p;
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
    if (!in_shard(s->p, path)) return 1;    /* another shard's file: not this run's to remove */
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
    ingest_file key = {(char *)path, 0, 0};
    return bsearch(&key, s->w->files, s->w->n_files, sizeof key, compare_files) != NULL;
}

/* Whether the walk found any file under root (files are sorted by path). */
static bool has_files(const ingest_walk *w, const char *root)
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

static raddino_status prune(ingester *x, const ingest_walk *w)
{
    size_t n = w->n_roots ? w->n_roots : 1;
    bool *guarded = calloc(n, sizeof *guarded);
    int64_t *kept = calloc(n, sizeof *kept);
    if (!guarded || !kept) {
        free(guarded);
        free(kept);
        return nomem();
    }
    for (size_t i = 0; i < w->n_roots && !x->p->prune; i++) {
        bool unlisted = false;
        for (size_t j = 0; j < w->n_unlisted && !unlisted; j++)
            unlisted = under(w->roots[i], w->unlisted[j]);
        bool any = w->root_has_files ? w->root_has_files[i] : has_files(w, w->roots[i]);
        guarded[i] = !unlisted && !any;
    }
    prune_scope scope = {w, x->p, guarded, kept};
    int64_t removed;
    raddino_status st = raddino_store_prune(x->store, keep_row, &scope, &removed);
    if (!st.code) {
        x->counts.removed += removed;
        for (size_t i = 0; i < w->n_roots; i++) {
            if (!kept[i]) continue;
            ingest_event(x->p, RADDINO_INGEST_ROOT_KEPT, w->roots[i], NULL, kept[i]);
            x->roots_kept++;
        }
    }
    free(guarded);
    free(kept);
    return st;
}

/* ---- the run ------------------------------------------------------------------------------- */

/* Drops the files of other shards, remembering first which PATHs held any file at all (a PATH
 * whose files all belong to other shards is not an empty or unmounted folder). */
static bool keep_own_shard(const raddino_ingest_params *p, ingest_walk *w)
{
    if (!sharded(p)) return true;
    w->root_has_files = calloc(w->n_roots ? w->n_roots : 1, sizeof *w->root_has_files);
    if (!w->root_has_files) return false;
    for (size_t i = 0; i < w->n_roots; i++) w->root_has_files[i] = has_files(w, w->roots[i]);
    size_t kept = 0;
    for (size_t i = 0; i < w->n_files; i++) {
        if (in_shard(p, w->files[i].path)) w->files[kept++] = w->files[i];
        else free(w->files[i].path);
    }
    w->n_files = kept;
    return true;
}

static raddino_status walk_paths(ingester *x, ingest_walk *w, const char *const *paths, int n)
{
    w->excludes = x->p->excludes;
    w->n_excludes = x->p->n_excludes;
    w->missing_root_is_empty = x->p->prune;
    w->prune_note = !x->p->keep_missing;
    w->params = x->p;
    for (int i = 0; i < n; i++)
        if (!ingest_walk_add(w, paths[i]))
            return raddino_status_error(RADDINO_ERR_NOMEM, "out of memory while listing %s",
                                        paths[i]);
    sort_files(w);
    if (!keep_own_shard(x->p, w)) return nomem();
    x->n_files = w->n_files;
    return ok();
}

static raddino_status run(ingester *x, const char *const *paths, int n_paths,
                          raddino_ingest_result *r)
{
    ingest_walk w;
    memset(&w, 0, sizeof w);
    ingest_hash_set known = {0};
    size_t *todo = NULL;
    raddino_status st = raddino_store_run_begin(x->store, x->p->command ? x->p->command : "",
                                                &x->run_id);
    if (!st.code) st = check_crashed_decodes(x);
    if (!st.code) st = walk_paths(x, &w, paths, n_paths);
    r->path_errors = w.errors;
    if (!st.code && w.errors && w.n_roots == 0) {
        r->nothing_walked = 1;      /* every PATH failed, each one already reported */
        goto done;
    }
    if (!st.code) {
        todo = malloc((w.n_files ? w.n_files : 1) * sizeof *todo);
        st = todo ? plan(x, &w, todo, &x->n_todo) : nomem();
        hash_collect c = {&known, false};
        if (!st.code && x->n_todo) st = raddino_store_foreach_sha256(x->store, collect_hash, &c);
        if (!st.code && c.oom) st = nomem();
        ingest_hash_set_sort(&known);
    }
    if (!st.code && x->n_todo) st = embed_files(x, &w, todo, &known);
    if (!st.code && !x->p->keep_missing && !cancelled(x)) st = prune(x, &w);
    if (!st.code)
        st = raddino_store_run_update(x->store, x->run_id, &x->counts, x->encoder_seconds,
                                      now() - x->start, !cancelled(x));
done:
    free(todo);
    ingest_hash_set_free(&known);
    ingest_walk_free(&w);
    return st;
}

raddino_status raddino_ingest(raddino_store *db, raddino_encoder *enc, const char *const *paths,
                              int n_paths, const raddino_ingest_params *params,
                              raddino_ingest_result *result)
{
    raddino_ingest_result local;
    raddino_ingest_result *r = result ? result : &local;
    memset(r, 0, sizeof *r);
    raddino_ingest_params defaults = raddino_ingest_default_params();
    if (!params) params = &defaults;
    if (!db || !enc || (n_paths > 0 && !paths) || n_paths < 0)
        return raddino_status_error(RADDINO_ERR_ARGUMENT, "raddino_ingest: bad arguments");
    ingester x;
    memset(&x, 0, sizeof x);
    x.p = params;
    x.store = db;
    x.enc = enc;
    x.start = now();
    raddino_status st = raddino_encoder_info(enc, &x.info);
    if (!st.code) st = raddino_encoder_load_options(enc, &x.decode.load);
    if (!st.code) st = raddino_store_dicom_salt(db, x.salt);
    x.decode.salt = x.salt;
    if (!st.code) {
        size_t tokens = x.info.tokens > 0 ? (size_t)x.info.tokens : 1;
        x.cls = malloc((size_t)x.info.hidden * sizeof(float));
        x.tokens = malloc(tokens * (size_t)x.info.hidden * sizeof(float));
        if (!x.cls || !x.tokens) st = nomem();
    }
    if (!st.code && sharded(params) &&
        (params->shard_index < 0 || params->shard_index >= params->shard_count))
        st = raddino_status_error(RADDINO_ERR_ARGUMENT, "raddino_ingest: shard %d of %d",
                                  params->shard_index, params->shard_count);
    if (!st.code && sharded(params))
        st = raddino_store_set_shard(db, params->shard_index, params->shard_count);
    if (!st.code) st = use_model(&x);
    if (!st.code) st = run(&x, paths, n_paths, r);
    r->counts = x.counts;
    r->ignored = x.ignored;
    r->files = x.n_files;
    r->roots_kept = x.roots_kept;
    r->model_refused = x.model_refused;
    r->cancelled = x.cancelled;
    r->encoder_seconds = x.encoder_seconds;
    r->wait_seconds = x.wait_seconds;
    r->wall_seconds = now() - x.start;
    free(x.cls);
    free(x.tokens);
    return st;
}
