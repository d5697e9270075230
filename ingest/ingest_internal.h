/* ingest_internal.h — private to ingest/: finding the files (walk.c), surviving a decoder
 * that crashes (guard.c) and the decode pipeline that feeds the encoder (pipeline.c). */
#ifndef RADDINO_INGEST_INTERNAL_H
#define RADDINO_INGEST_INTERNAL_H

#include "raddino_ingest.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ---- walk.c: the walk ----------------------------------------------------------------------- */

typedef struct {
    char *path;             /* normalised (raddino_store_normalise_path), malloc'd */
    int64_t size, mtime_ns;
} ingest_file;

typedef struct {
    dev_t dev;
    ino_t ino;
} ingest_dir_id;

typedef struct {
    /* inputs */
    const char *const *excludes;    /* globs (raddino_ingest_params) */
    int n_excludes;
    bool missing_root_is_empty;   /* params.prune: a PATH that is gone prunes its rows */
    bool prune_note;        /* files that are gone are removed: say that a PATH that is gone
                               removes nothing */
    /* outputs */
    ingest_file *files;
    size_t n_files, cap_files;
    char **roots;           /* normalised PATH arguments: the prune scope */
    size_t n_roots, cap_roots;
    bool *root_has_files;   /* sharded runs: per root, whether the walk found any file under it
                               before the other shards' files were dropped (else NULL) */
    char **unlisted;        /* folders that could not be read: their rows are never pruned */
    size_t n_unlisted, cap_unlisted;
    int errors;             /* PATH arguments that could not be walked (already reported) */
    const raddino_ingest_params *params;    /* where events go */
    /* visited folders by (device, inode): symlink loops and folders reached twice */
    ingest_dir_id *dirs;
    size_t n_dirs, cap_dirs;
} ingest_walk;

/* Adds the files under PATH (a file or a folder, walked recursively; entries whose name starts
 * with '.' are skipped inside folders, symbolic links are followed, each folder is visited once).
 * Errors are reported (params->on_event) and counted; false only when out of memory. */
bool ingest_walk_add(ingest_walk *w, const char *arg);
void ingest_walk_free(ingest_walk *w);
/* A file's modification time as the walk records it, in nanoseconds. */
int64_t ingest_mtime_ns(const struct stat *sb);
/* True when the glob list excludes this path (a glob with '/' matches the whole path, one
 * without matches any single component's name). */
bool ingest_excluded(const char *const *globs, int n, const char *path);


/* ---- guard.c: surviving a decoder that crashes -------------------------------------------- */

/* DB-decoding: one slot per decoder thread holding the path it is decoding (see the file). */
typedef struct {
    int fd;                 /* -1: no guard */
    int slots;
} ingest_guard;

/* Paths a run that died was decoding (the slots of DB-decoding); 0 when there is none. */
size_t ingest_guard_suspects(const char *db, char ***paths);
void ingest_guard_free_suspects(char **paths, size_t n);
/* Decodes path alone in a child process (`program __decode-check ...`, or a fork when program is
 * NULL): the signal that killed it, or 0 when it lived (whether or not the file decoded). */
int ingest_guard_check(const char *program, const char *path, const raddino_load_options *load);
/* Creates (empty) DB-decoding with `slots` slots; false when it cannot (no guard, the run goes
 * on without). */
bool ingest_guard_open(ingest_guard *g, const char *db, int slots);
void ingest_guard_enter(const ingest_guard *g, int slot, const char *path);
void ingest_guard_leave(const ingest_guard *g, int slot);
/* Closes and removes DB-decoding: every slot is empty by then. */
void ingest_guard_close(ingest_guard *g, const char *db);
/* RADDINO_TEST_CRASH_DECODING=TEXT: abort() when path contains TEXT (tests only). */
void ingest_guard_test_hook(const char *path);

/* ---- ingest_pipeline.c: decoder threads ------------------------------------------------------ */

typedef enum {
    INGEST_ITEM_GONE,          /* vanished since the walk */
    INGEST_ITEM_NOT_IMAGE,     /* not an image by its content: ignored */
    INGEST_ITEM_FAILED,        /* reason says why (without the path) */
    INGEST_ITEM_KNOWN_HASH,    /* content hash already has a vector: not decoded */
    INGEST_ITEM_READY          /* decoded (and preprocessed when the input size is fixed) */
} ingest_item_state;

typedef struct {
    size_t file;                /* index into the files array */
    ingest_item_state state;
    char sha256[65];
    const char *format;
    int width, height;
    char reason[RADDINO_MESSAGE_MAX];
    float *pixels;              /* READY with a fixed input size: the network input (owned) */
    raddino_image image;        /* READY otherwise: the decoded image (owned) */
    bool has_dicom;             /* a DICOM file whose header was read (READY or FAILED) */
    raddino_dicom_info dicom;   /* its metadata, patient key salted with the store's salt */
    /* Encoding workers (ingest_pipeline_start's `encode`): a READY item is encoded already. */
    bool encoded;
    raddino_status encode_status;   /* the encoder's answer */
    float *cls;                 /* encode_status ok: the vector (owned) */
    double encode_seconds;      /* wall seconds in the encoder */
} ingest_item;

/* How the decoder threads read files. */
typedef struct {
    raddino_load_options load;  /* pixel cap and DICOM window (raddino_encoder_load_options) */
    const char *salt;           /* the store's patient key salt (raddino_store_dicom_salt) */
    const ingest_guard *guard;   /* slots of the paths being decoded, or NULL */
} ingest_decode_options;

typedef struct ingest_pipeline ingest_pipeline;

/* Sorted binary sha256 digests whose vectors are stored; read by the decoder threads. */
typedef struct {
    uint8_t (*digests)[32];
    size_t n, cap;
} ingest_hash_set;
bool ingest_hash_set_add_hex(ingest_hash_set *set, const char *hex);
void ingest_hash_set_sort(ingest_hash_set *set);
void ingest_hash_set_free(ingest_hash_set *set);

/* Starts `jobs` threads that read, hash, sniff, decode and preprocess files[todo[i]] in order,
 * at most a window ahead of the consumer. enc is only read (its configuration); options (kept,
 * not copied) and its salt must outlive the pipeline; known may be NULL.
 * encode: the threads are encoding workers (raddino_encoder_worker, one thread each, the
 * threads of one OpenMP team) that also encode each READY item into item->cls; the caller
 * then must not encode with enc on more than one thread meanwhile. */
raddino_status ingest_pipeline_start(const raddino_encoder *enc,
                                     const ingest_decode_options *options,
                                     const ingest_file *files, const size_t *todo, size_t n_todo,
                                     int jobs, bool encode, const ingest_hash_set *known,
                                     ingest_pipeline **out);
/* The next item in order, waiting for it; NULL after the last. The item stays valid until the
 * next call. *waited accumulates the seconds spent waiting. */
ingest_item *ingest_pipeline_next(ingest_pipeline *p, double *waited);
/* Stops the threads and frees everything. */
void ingest_pipeline_free(ingest_pipeline *p);

/* What one decoder thread does for one file: read it, sniff it, hash it, and unless its hash is
 * in `known` (may be NULL), read its DICOM header (DICOM files) and decode and preprocess it.
 * item->file must be set; the rest is filled. guard_slot: the thread's slot in options->guard
 * (-1: none). The main thread uses it too when a known hash turned out to be gone. */
void ingest_item_load(const raddino_encoder *enc, const ingest_decode_options *options,
                     const char *path, const ingest_hash_set *known, int guard_slot,
                     ingest_item *item);
/* Frees what an item owns (pixels, image) and clears it. */
void ingest_item_clear(ingest_item *item);

/* The encoding workers a run uses (params->workers, or the automatic choice); 0: decoder
 * threads (params->jobs) feed the encoder on the caller's thread. */
int ingest_workers(const raddino_ingest_params *p, const raddino_encoder *enc);

/* Reports an event (params->on_event, when set). */
void ingest_event(const raddino_ingest_params *params, int kind, const char *path,
                  const char *reason, int64_t count);

#endif
