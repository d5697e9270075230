/* raddino_ingest.h — keep a collection in step with folders of images: the whole of
 * `raddino index` as one library call.
 *
 * Usage:
 *
 *     raddino_encoder *enc;      // raddino_encoder_open(...)
 *     raddino_store *db;         // raddino_store_open("raddino.db", &writer_params, &db)
 *     raddino_ingest_params p = raddino_ingest_default_params();
 *     p.on_event = print_event;  // files that failed, PATHs that could not be walked, ...
 *     raddino_ingest_result r;
 *     const char *paths[] = {"/data/xrays"};
 *     raddino_status st = raddino_ingest(db, enc, paths, 1, &p, &r);
 *     // r.counts: added, updated, reused, unchanged, failed, removed
 *
 * A run: registers the encoder's model with the store (raddino_encoder_identity; a store holding
 * another model's vectors is refused unless params.reembed); walks the PATHs (files or folders,
 * recursively; names starting with '.' are skipped inside folders; symbolic links followed, each
 * folder once; params.excludes); decides for each file whether it is new, changed, unchanged
 * (path, size and mtime as stored: not read at all), or renamed/copied (its content's SHA-256
 * has a stored vector: reused without decoding); decodes and encodes on params.workers
 * threads, one file each (or decodes ahead on params.jobs threads while the caller's thread
 * encodes); writes rows in batches (params.batch files, and at least every
 * params.batch_seconds), each one SQLite transaction, so a run killed at any moment loses at
 * most its open batch and the next run does only what is missing; then removes the rows of files
 * under the PATHs that are gone (unless params.keep_missing), except under a PATH that is gone or
 * holds no file at all (an unmounted disk or a mistyped name more often than a deletion) unless
 * params.prune. Images are recognised by content (raddino_image_sniff).
 *
 * A file whose decoding killed an earlier run (a decoder crash: its path is left in
 * "DB-decoding" beside the database) is decoded again alone in a child process first; if that
 * dies too, the file is recorded as failed and skipped until it changes.
 *
 * Every call returns a raddino_status (raddino_status.h). A file that cannot be read or decoded
 * does not fail the call: it is recorded as failed, reported through on_event and counted. The
 * call fails for what stops the run: the store (disk full, I/O), out of memory, another model's
 * vectors. Use one raddino_ingest at a time per store (the store's writer lock sees to that
 * across processes); enc and db must not be used by other threads meanwhile.
 */
#ifndef RADDINO_INGEST_H
#define RADDINO_INGEST_H

#include "raddino_encoder.h"
#include "raddino_status.h"
#include "raddino_store.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

/* What on_event reports. The strings are valid during the call only. */
typedef enum {
    /* A file could not be read, decoded or embedded: recorded as failed. path, reason (without
     * the path). */
    RADDINO_INGEST_FILE_FAILED = 1,
    /* A PATH argument could not be walked (nothing under it is added or removed): path (as
     * given; NULL when reason already names it), reason. Counted in path_errors. */
    RADDINO_INGEST_PATH_ERROR,
    /* A PATH argument that does not exist, while files that are gone are removed: nothing
     * stored under it is removed. path (as given), reason (strerror). Counted in path_errors. */
    RADDINO_INGEST_PATH_GONE,
    /* A folder could not be listed: its rows are kept. path, reason (strerror). */
    RADDINO_INGEST_FOLDER_UNLISTED,
    /* A PATH under which the walk found no file at all, but `count` stored rows: kept (see the
     * top). path (normalised). Counted in roots_kept. */
    RADDINO_INGEST_ROOT_KEPT,
    /* params.reembed: `count` vectors of the previous model were dropped. */
    RADDINO_INGEST_DROPPED
} raddino_ingest_event_kind;

typedef struct {
    int kind;               /* raddino_ingest_event_kind */
    const char *path;
    const char *reason;
    int64_t count;
} raddino_ingest_event;

/* Where a run stands, after each file it dealt with. */
typedef struct {
    size_t files;           /* files the walk found */
    size_t done;            /* of them, dealt with (unchanged ones included) */
    size_t to_read;         /* files this run reads (new, changed, without a vector) */
    size_t read;            /* of them, dealt with */
    int64_t failed;         /* files that failed in this run */
} raddino_ingest_progress;

typedef struct {
    const char *const *excludes;    /* globs: skip matching files and folders; a glob with '/'
                                       matches the whole absolute path, else any one name */
    int n_excludes;
    int jobs;               /* decoder threads (default 2) when workers chooses them */
    int batch;              /* commit every this many files (default 64) ... */
    double batch_seconds;   /* ... and at least this often (default 10) */
    int keep_missing;       /* 1: keep the rows of files under the PATHs that are gone */
    int prune;              /* 1: also remove rows under a PATH that is gone or holds no file */
    int reembed;            /* 1: drop another model's vectors and embed everything again */
    /* What the run is recorded as in the store's runs table (e.g. the command line). */
    const char *command;
    /* The models row's repository and revision, when known (may be NULL). */
    const char *repository, *revision;
    /* Where the model was found, recorded for later readers (may be NULL: nothing recorded).
     * Its weights_sha256 is filled from the encoder's identity. */
    const raddino_store_model_origin *origin;
    /* A program that decodes one file when run as `PROGRAM __decode-check MAX_PIXELS WINDOW
     * CENTER WIDTH FILE` (raddino_ingest_decode_check is its body; the raddino program has it):
     * the crash check's child. NULL: a fork of the caller decodes it instead. */
    const char *decode_check_program;
    /* Called for each event (may be NULL). */
    void (*on_event)(void *user, const raddino_ingest_event *event);
    /* Called after each file dealt with (may be NULL). */
    void (*on_progress)(void *user, const raddino_ingest_progress *progress);
    /* Polled between files: non-zero stops the run after the current file, committed (the
     * result says cancelled; files that are gone are not removed). NULL: never. */
    int (*cancel)(void *user);
    void *user;
    /* Shards (raddino_store.h, "Shards"): shard_count > 0 makes this run index only the files
     * whose stored path has raddino_store_shard_of(path, shard_count) == shard_index, into a
     * store that is (or becomes, when empty) that shard's database (raddino_store_set_shard;
     * another shard's database, or a whole collection's, is refused). Files of other shards
     * are not read, not counted and never treated as gone; a PATH holding files of other
     * shards only is not "empty". 0: every file (the default). */
    int shard_index, shard_count;
    /* How files are decoded and encoded. > 0: that many workers, each reading, decoding and
     * encoding one file at a time on one thread of its own (raddino_encoder_worker; about
     * 85 MB each for RAD-DINO, plus the file and its decoded image); every core busy without
     * the decoders and the encoder's threads competing for the same cores. < 0: `jobs` decoder
     * threads read and decode ahead while the caller's thread encodes on all the encoder's
     * threads. 0 (default): workers, one per encoder thread, when the encoder has at most 8
     * threads; else the decoder threads. Rows, ids and vectors are the same either way. */
    int workers;
    /* Tests only: > 0 makes the process SIGKILL itself right after writing its Nth file into
     * the open batch (not committed), to check that a killed run resumes correctly. */
    long test_kill_after;
} raddino_ingest_params;

raddino_ingest_params raddino_ingest_default_params(void);

typedef struct {
    raddino_store_counts counts;    /* added, updated, reused, unchanged, failed, removed */
    int64_t ignored;        /* files that are not images (no row) */
    size_t files;           /* files the walk found */
    int path_errors;        /* PATH arguments that could not be walked */
    int roots_kept;         /* PATHs whose rows were kept: no file found under them */
    int nothing_walked;     /* 1: no PATH could be walked; nothing was done */
    /* The store refused the encoder's model (the call failed with RADDINO_ERR_MODEL): 1, the
     * stored vectors are another model's (params.reembed replaces them); 2, the store holds
     * vectors of several models. */
    int model_refused;
    int cancelled;          /* 1: params.cancel stopped the run */
    double encoder_seconds; /* in the encoder */
    double wait_seconds;    /* waiting for the decoder threads */
    double wall_seconds;
} raddino_ingest_result;

/* Runs the whole update (see the top). db: a store opened for writing; enc: the model to embed
 * with (its pixel cap and DICOM window decode the files); paths: n_paths files or folders.
 * *result is filled as far as the run went, also on failure. */
raddino_status raddino_ingest(raddino_store *db, raddino_encoder *enc, const char *const *paths,
                              int n_paths, const raddino_ingest_params *params,
                              raddino_ingest_result *result);

/* The body of the crash check's child (see decode_check_program): argv[0] is "__decode-check"
 * (or anything), argv[1..5] MAX_PIXELS WINDOW CENTER WIDTH FILE. Decodes FILE and nothing else;
 * returns 0 whether or not it decodes (only dying matters), 2 for a wrong argument count. */
int raddino_ingest_decode_check(int argc, char **argv);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
