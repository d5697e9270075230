/* index.h — private to `raddino index`: finding the files (index_files.c) and the decode
 * pipeline that feeds the encoder (index_pipeline.c). */
#ifndef RADDINO_CLI_INDEX_H
#define RADDINO_CLI_INDEX_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* ---- index_files.c: the walk ----------------------------------------------------------------- */

typedef struct {
    char *path;             /* normalised (raddino_store_normalise_path), malloc'd */
    int64_t size, mtime_ns;
} index_file;

typedef struct {
    dev_t dev;
    ino_t ino;
} index_dir_id;

typedef struct {
    /* inputs */
    char **excludes;        /* --exclude globs */
    int n_excludes;
    bool missing_root_is_empty;   /* --prune: a PATH that is gone prunes its rows */
    bool prune_note;        /* files that are gone are removed: say that a PATH that is gone
                               removes nothing */
    /* outputs */
    index_file *files;
    size_t n_files, cap_files;
    char **roots;           /* normalised PATH arguments: the prune scope */
    size_t n_roots, cap_roots;
    char **unlisted;        /* folders that could not be read: their rows are never pruned */
    size_t n_unlisted, cap_unlisted;
    int errors;             /* PATH arguments that could not be walked (already reported) */
    /* visited folders by (device, inode): symlink loops and folders reached twice */
    index_dir_id *dirs;
    size_t n_dirs, cap_dirs;
} index_walk;

/* Adds the files under PATH (a file or a folder, walked recursively; entries whose name starts
 * with '.' are skipped inside folders, symbolic links are followed, each folder is visited once).
 * Errors are printed ("raddino: PATH: reason") and counted; false only when out of memory. */
bool index_walk_add(index_walk *w, const char *arg);
void index_walk_free(index_walk *w);
/* A file's modification time as the walk records it, in nanoseconds. */
int64_t index_mtime_ns(const struct stat *sb);
/* True when the glob list excludes this path (a glob with '/' matches the whole path, one
 * without matches any single component's name). */
bool index_excluded(char *const *globs, int n, const char *path);

/* Recognises an image by its first bytes (at least 132 when the file has them: DICOM's "DICM"
 * marker is at 128, whatever the name); the name is used only for TGA, which has no magic
 * number. Returns false for anything else. *format is a
 * short name ("png", "jpeg", "dicom"...) and *decodable says whether raddino_image_load
 * handles it; when it does not, *why says so. */
bool index_sniff(const uint8_t *head, size_t n, const char *name, const char **format,
                 bool *decodable, const char **why);

/* ---- index_guard.c: surviving a decoder that crashes -------------------------------------- */

/* DB-decoding: one slot per decoder thread holding the path it is decoding (see the file). */
typedef struct {
    int fd;                 /* -1: no guard */
    int slots;
} index_guard;

/* Paths a run that died was decoding (the slots of DB-decoding); 0 when there is none. */
size_t index_guard_suspects(const char *db, char ***paths);
void index_guard_free_suspects(char **paths, size_t n);
/* Decodes path alone in a child process (`raddino __decode-check`): the signal that killed
 * it, or 0 when it lived (whether or not the file decoded). */
int index_guard_check(const char *path, const raddino_load_options *load);
/* Creates (empty) DB-decoding with `slots` slots; false when it cannot (no guard, the run goes
 * on without). */
bool index_guard_open(index_guard *g, const char *db, int slots);
void index_guard_enter(const index_guard *g, int slot, const char *path);
void index_guard_leave(const index_guard *g, int slot);
/* Closes and removes DB-decoding: every slot is empty by then. */
void index_guard_close(index_guard *g, const char *db);
/* RADDINO_TEST_CRASH_DECODING=TEXT: abort() when path contains TEXT (tests only). */
void index_guard_test_hook(const char *path);

/* ---- index_pipeline.c: decoder threads ------------------------------------------------------ */

typedef enum {
    ITEM_GONE,          /* vanished since the walk */
    ITEM_NOT_IMAGE,     /* not an image by its content: ignored */
    ITEM_FAILED,        /* reason says why (without the path) */
    ITEM_KNOWN_HASH,    /* content hash already has a vector: not decoded */
    ITEM_READY          /* decoded (and preprocessed when the input size is fixed) */
} index_item_state;

typedef struct {
    size_t file;                /* index into the files array */
    index_item_state state;
    char sha256[65];
    const char *format;
    int width, height;
    char reason[RADDINO_MESSAGE_MAX];
    float *pixels;              /* READY with a fixed input size: the network input (owned) */
    raddino_image image;        /* READY otherwise: the decoded image (owned) */
    bool has_dicom;             /* a DICOM file whose header was read (READY or FAILED) */
    raddino_dicom_info dicom;   /* its metadata, patient key salted with the store's salt */
} index_item;

/* How the decoder threads read files. */
typedef struct {
    raddino_load_options load;  /* pixel cap and DICOM --window (cli_load_options) */
    const char *salt;           /* the store's patient key salt (raddino_store_dicom_salt) */
    const index_guard *guard;   /* slots of the paths being decoded, or NULL */
} index_decode_options;

typedef struct index_pipeline index_pipeline;

/* Sorted binary sha256 digests whose vectors are stored; read by the decoder threads. */
typedef struct {
    uint8_t (*digests)[32];
    size_t n, cap;
} index_hash_set;
bool index_hash_set_add_hex(index_hash_set *set, const char *hex);
void index_hash_set_sort(index_hash_set *set);
void index_hash_set_free(index_hash_set *set);

/* Starts `jobs` threads that read, hash, sniff, decode and preprocess files[todo[i]] in order,
 * at most a window ahead of the consumer. enc is only read (its configuration); options (kept,
 * not copied) and its salt must outlive the pipeline; known may be NULL. */
raddino_status index_pipeline_start(const raddino_encoder *enc,
                                     const index_decode_options *options,
                                     const index_file *files, const size_t *todo, size_t n_todo,
                                     int jobs, const index_hash_set *known,
                                     index_pipeline **out);
/* The next item in order, waiting for it; NULL after the last. The item stays valid until the
 * next call. *waited accumulates the seconds spent waiting. */
index_item *index_pipeline_next(index_pipeline *p, double *waited);
/* Stops the threads and frees everything. */
void index_pipeline_free(index_pipeline *p);

/* What one decoder thread does for one file: read it, sniff it, hash it, and unless its hash is
 * in `known` (may be NULL), read its DICOM header (DICOM files) and decode and preprocess it.
 * item->file must be set; the rest is filled. guard_slot: the thread's slot in options->guard
 * (-1: none). The main thread uses it too when a known hash turned out to be gone. */
void index_item_load(const raddino_encoder *enc, const index_decode_options *options,
                     const char *path, const index_hash_set *known, int guard_slot,
                     index_item *item);
/* Frees what an item owns (pixels, image) and clears it. */
void index_item_clear(index_item *item);

#endif
