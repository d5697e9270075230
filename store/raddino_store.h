/* raddino_store.h — the SQLite store of a collection: images, their vectors, the model that
 * made them, and the runs that indexed them. SQLite is the source of truth; everything else
 * (search indexes, exports) is derived from it.
 *
 * Usage:
 *
 *     raddino_store_params params = raddino_store_default_params();
 *     params.read_only = 1;                       // stats, export, search: no lock taken
 *     raddino_store *db;
 *     raddino_status st = raddino_store_open("raddino.db", &params, &db);
 *     if (st.code) { fprintf(stderr, "%s\n", st.message); return 1; }
 *     st = raddino_store_foreach_vector(db, on_vector, user);   // (image id, path, vector)
 *     raddino_store_close(db);
 *
 * Every call returns a raddino_status (common/raddino_status.h): code 0 is success, otherwise
 * `message` is one line naming the database file. A raddino_store is used by one thread at a
 * time; any number of processes may hold read-only stores while one writer indexes (WAL mode).
 *
 * The database (schema version RADDINO_STORE_SCHEMA, kept in PRAGMA user_version):
 *
 *   images      id, path UNIQUE, size, mtime_ns, sha256 (hex, of the file's bytes), width,
 *               height, format, status ('ok' or 'failed'), reason (why it failed, without the
 *               path), embedded_at (unix seconds, when its vector was stored)
 *   models      id, weights_sha256, config_json (architecture, preprocessing, DICOM
 *               window: raddino_encoder_identity), repository and revision when known, dim;
 *               UNIQUE(weights_sha256, config_json)
 *   embeddings  image_id -> images(id) ON DELETE CASCADE, model_id -> models(id), dim, vector
 *               (dim float32 values, little-endian, as a BLOB); PRIMARY KEY(image_id, model_id)
 *   runs        id, started, finished (NULL while running or when the run was killed), command,
 *               model_id, the counts of raddino_store_counts, encoder_seconds, wall_seconds
 *   meta        key/value; 'generation' goes up by one whenever a row of embeddings is added,
 *               changed or removed (SQL triggers, so no writer can forget it). A derived index
 *               records the generation it was built from and is stale when it differs.
 *               'dicom_salt' (since schema 2): 32 random bytes (a BLOB, from getrandom) made
 *               once per database, the salt of its patient keys (raddino_store_dicom_salt).
 *   dicom       (since schema 2) one row per image read from a DICOM file, failed ones too
 *               when their header could be read: image_id -> images(id) ON DELETE CASCADE
 *               (the primary key), sop/study/series_instance_uid, modality, view_position,
 *               body_part_examined, photometric_interpretation, rows, columns, frames,
 *               pixel_spacing_row/_column and imager_pixel_spacing_row/_column (mm),
 *               transfer_syntax_uid, patient_key (hex SHA-256 of the salt and the Patient
 *               ID: the same patient has the same key within one database, and different keys
 *               in two). Absent attributes are NULL. Never the plain Patient ID or name.
 *               A table of its own, not columns of images: PNG/JPEG rows stay narrow.
 *               The upgrade from schema 1 sets the size of failed DICOM rows to -1 (schema 1
 *               could not decode DICOM), so the next index run reads those files again.
 *   cluster_runs (since schema 3) one row per `raddino cluster` result: created, model_id,
 *               generation (of the vectors clustered), k, dim, seed, iterations, n (vectors
 *               assigned), n_train, objective (sum of cosine distances), silhouette (mean, on a
 *               sample; NULL when not measured), params_json (the command's parameters and,
 *               for -k auto, the k tried with their scores and why one was kept), centroids
 *               (k x dim float32 BLOB, unit length)
 *   cluster_assignments (since schema 3) run_id -> cluster_runs(id), image_id -> images(id),
 *               both ON DELETE CASCADE; cluster (0..k-1), distance (1 - cosine to its centroid)
 *   imports     (since schema 4) one row per `raddino import`: created, model_id, npy_path and
 *               npy_sha256 (the array file), csv_path, rows, verified (how many files were
 *               re-embedded and compared; 0: unverified), min_cosine (the lowest cosine of
 *               that sample, NULL when none), seed (of the sample)
 *   image_origin (since schema 4) image_id (primary key) -> images(id), import_id ->
 *               imports(id), both ON DELETE CASCADE; row (in the array), verified (1: this
 *               file was in the re-embedded sample). Triggers delete it whenever the image's
 *               embedding is written again, so it always describes the stored vector: images
 *               without a row were embedded here
 *
 * Migrations are an ordered list of SQL steps in store.c; opening for writing applies the
 * missing ones in one transaction. A read-only store refuses a schema it does not know, and
 * one older than 2; it reads a schema 2 file as it is (no cluster runs in it).
 *
 * Paths: stored as the absolute, lexically normalised form of the path the user gave (the
 * current folder prepended to a relative path; "//", "/./" and "dir/.." folded), without
 * resolving symbolic links: the row names the file the way the user reaches it. See
 * raddino_store_normalise_path.
 *
 * One model per collection: every vector knows the model that made it, and
 * raddino_store_use_model refuses a model other than the one the stored vectors came from
 * unless asked to re-embed, which drops the other model's vectors first. So readers never see
 * vectors of two models mixed.
 *
 * Writers: opening with read_only = 0 takes an exclusive lock (flock on the database file)
 * held until raddino_store_close; a second writer gets RADDINO_ERR_IO at once ("another raddino
 * index is writing to it"). The lock dies with its process, so a killed indexer leaves nothing
 * to clean up. Writes happen in explicit batches (raddino_store_begin / _commit); a killed
 * process loses at most its open batch, and UNIQUE constraints keep rows from doubling. The
 * database must be on a local file system (WAL needs shared memory).
 */
#ifndef RADDINO_STORE_H
#define RADDINO_STORE_H

#include "raddino_encoder.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

#define RADDINO_STORE_SCHEMA 4
#define RADDINO_STORE_DEFAULT_PATH "raddino.db"

typedef struct raddino_store raddino_store;

typedef struct {
    int read_only;          /* 1: no create, no migration, no writer lock */
    int busy_timeout_ms;    /* how long to wait for another connection's lock (default 10000) */
} raddino_store_params;

raddino_store_params raddino_store_default_params(void);

/* Opens (a writer creates) the database. On failure *out is NULL. */
raddino_status raddino_store_open(const char *path, const raddino_store_params *params,
                                  raddino_store **out);
void raddino_store_close(raddino_store *db);

/* The path the store was opened with. */
const char *raddino_store_path(const raddino_store *db);

/* Absolute, lexically normalised path (see above) into out; ERR_ARGUMENT when it does not fit. */
raddino_status raddino_store_normalise_path(const char *path, char *out, size_t cap);

/* ---- Models -------------------------------------------------------------------------------- */

/* A model as the store records it: the identity the encoder gives (raddino_encoder_identity),
 * and where it came from. */
typedef struct {
    const char *weights_sha256;     /* 64 hex digits */
    const char *config_json;        /* raddino_model_identity.config_json */
    const char *repository;         /* e.g. "microsoft/rad-dino", or NULL */
    const char *revision;           /* e.g. a commit hash, or NULL */
    int dim;                        /* vector length (hidden size) */
} raddino_store_model;

/* Registers the model (or finds it) and makes it the one this store writes with. When vectors
 * of another model are stored: refused (ERR_MODEL, naming both) unless reembed, in which case
 * they are deleted in one transaction and *dropped says how many. */
raddino_status raddino_store_use_model(raddino_store *db, const raddino_store_model *model,
                                       int reembed, int64_t *model_id, int64_t *dropped);

/* Where the model of a collection was found, so that commands that embed queries can load it
 * again without being told (kept in meta as 'model_origin.*' BLOBs: no schema change). Written
 * by the indexer each time it runs with a model whose weights are those of the stored vectors;
 * a reader checks the weights' sha256 before trusting the place. */
typedef struct {
    char folder[RADDINO_PATH_MAX];      /* absolute model folder */
    char weights[RADDINO_PATH_MAX];     /* a weights file used instead of the folder's, or "" */
    char repository[128];               /* Hugging Face repository, when found in a hub cache */
    char revision[256];                 /* the revision asked for (e.g. "main"), or "" */
    char commit[41];                    /* the commit of that snapshot, or "" */
    char cache_dir[RADDINO_PATH_MAX];   /* that hub cache, or "" */
    char weights_sha256[65];            /* of the weights loaded from there */
} raddino_store_model_origin;

/* Records the origin (writers; a transaction of its own, or part of the open batch). */
raddino_status raddino_store_set_model_origin(raddino_store *db,
                                              const raddino_store_model_origin *origin);
/* Reads it; *found = 0 when none was recorded (databases made before it was). */
raddino_status raddino_store_get_model_origin(raddino_store *db,
                                              raddino_store_model_origin *out, int *found);

/* ---- Images and vectors -------------------------------------------------------------------- */

typedef enum { RADDINO_IMAGE_OK = 0, RADDINO_IMAGE_FAILED = 1 } raddino_image_status;

typedef struct {
    int64_t id;
    const char *path;
    int64_t size, mtime_ns;
    char sha256[65];            /* "" when unknown */
    int width, height;
    const char *format;         /* "png", "jpeg", "dicom"... or NULL */
    int status;                 /* raddino_image_status */
    const char *reason;         /* why it failed (NULL when ok) */
    double embedded_at;         /* unix seconds; 0 when it has no vector */
    int has_vector;             /* a vector of the model in use is stored */
    /* put_image: the file's DICOM metadata, written with the row; NULL: not a DICOM file (or
     * its header could not be read), and a metadata row stored before is removed. Lookups
     * leave it NULL: read it with raddino_store_get_dicom. */
    const raddino_dicom_info *dicom;
} raddino_store_image;

/* Looks a path up (already normalised). *found = 0 when absent. The strings of *out stay valid
 * until the next call on db. */
raddino_status raddino_store_find_path(raddino_store *db, const char *path,
                                       raddino_store_image *out, int *found);

/* Looks an image id up. When vector is not NULL and the image has a vector of the model in use
 * (read-only: the model of the stored vectors), it is copied there (dim floats) and
 * out->has_vector is 1. *found = 0 when there is no such row. Strings as find_path. */
raddino_status raddino_store_find_id(raddino_store *db, int64_t id, float *vector,
                                     raddino_store_image *out, int *found);

/* Finds a vector of the model in use stored for a file with this content hash. On *found = 1,
 * vector (dim floats) is filled and *source describes the image it belongs to (strings valid
 * until the next call). */
raddino_status raddino_store_find_sha256(raddino_store *db, const char *sha256, float *vector,
                                         raddino_store_image *source, int *found);

/* Compares a model with the one the stored vectors come from: *same = 1 when the weights
 * sha256 and config_json are equal (or nothing is stored yet), else 0 and `why` (may be NULL)
 * describes the stored model. For readers that embed queries (search): vectors of two models
 * are not comparable. */
raddino_status raddino_store_model_matches(raddino_store *db, const raddino_store_model *model,
                                           int *same, char *why, size_t why_cap);

/* Opens / commits a write batch. Every write below must happen inside one. */
raddino_status raddino_store_begin(raddino_store *db);
raddino_status raddino_store_commit(raddino_store *db);

/* Opens / ends a read snapshot: the calls in between see one consistent state of the database
 * (e.g. a count and then the rows it counted), whatever a writer commits meanwhile. */
raddino_status raddino_store_read_begin(raddino_store *db);
void raddino_store_read_end(raddino_store *db);

/* Inserts or replaces the row of img->path (its id is kept when it exists) with img's fields.
 * vector (the model's dim floats) is stored for the model in use when status is OK; a failed
 * image loses its vector. *id (may be NULL) receives the row id. */
raddino_status raddino_store_put_image(raddino_store *db, const raddino_store_image *img,
                                       const float *vector, int64_t *id);

/* The DICOM metadata of an image row: put replaces it (NULL removes it; inside a batch), get
 * fills *out (*found = 0 when the image has none). The patient key is stored as given: compute
 * it with raddino_dicom_read_info and the salt of raddino_store_dicom_salt. */
raddino_status raddino_store_put_dicom(raddino_store *db, int64_t image_id,
                                       const raddino_dicom_info *info);
raddino_status raddino_store_get_dicom(raddino_store *db, int64_t image_id,
                                       raddino_dicom_info *out, int *found);

/* This database's patient key salt as 64 hex digits, the `salt` to give
 * raddino_dicom_read_info (made when the database was created or upgraded to schema 2). */
raddino_status raddino_store_dicom_salt(raddino_store *db, char out[65]);

/* Removes a path's row (and its vectors). *removed = 1 when there was one (may be NULL). */
raddino_status raddino_store_remove_path(raddino_store *db, const char *path, int *removed);

/* Removes the rows for which keep(user, path) returns 0, in one batch of its own. */
typedef int (*raddino_store_keep_fn)(void *user, const char *path);
raddino_status raddino_store_prune(raddino_store *db, raddino_store_keep_fn keep, void *user,
                                   int64_t *removed);

/* Calls fn for every stored vector, in image id order, inside one read transaction (a
 * consistent snapshot): the input of exports and derived indexes. The vector's length is
 * checked against its model's dim. A non-zero return from fn stops the walk (status OK).
 * Pass model_id 0 for the model in use (or, read-only, the one the vectors come from). */
typedef int (*raddino_store_vector_fn)(void *user, int64_t image_id, const char *path,
                                       const char *sha256, const float *vector, int dim);
raddino_status raddino_store_foreach_vector(raddino_store *db, int64_t model_id,
                                            raddino_store_vector_fn fn, void *user);

/* Calls fn for each distinct content hash that has a vector of the model in use. */
typedef void (*raddino_store_hash_fn)(void *user, const char *sha256);
raddino_status raddino_store_foreach_sha256(raddino_store *db, raddino_store_hash_fn fn,
                                            void *user);

/* The identity of a model row (model_id 0: the model in use, else the one the stored vectors
 * come from): weights sha256, config_json (into json, cap bytes) and dim. *found = 0 when
 * there is none. */
raddino_status raddino_store_model_identity(raddino_store *db, int64_t model_id,
                                            char weights_sha256[65], char *json, size_t cap,
                                            int *dim, int *found);

/* ---- Imported vectors ---------------------------------------------------------------------- */

typedef struct {
    int64_t id;                 /* filled by put */
    double created;             /* unix seconds; filled by put */
    const char *npy_path, *npy_sha256, *csv_path;
    int64_t rows;
    int64_t verified;           /* files re-embedded and compared; 0: unverified */
    double min_cosine;          /* NAN when none was compared */
    uint64_t seed;
} raddino_store_import;

/* Records an import (for the model in use), inside a batch; fills id and created. */
raddino_status raddino_store_put_import(raddino_store *db, raddino_store_import *imp);
/* Marks image_id's stored vector as row `row` of import import_id (after put_image, in the
 * same batch: writing the vector clears any earlier origin). */
raddino_status raddino_store_put_origin(raddino_store *db, int64_t image_id, int64_t import_id,
                                        int64_t row, int verified);

/* ---- Clustering results ------------------------------------------------------------------- */

typedef struct {
    int64_t id;                 /* filled by put */
    double created;             /* unix seconds; filled by put */
    int64_t model_id, generation;
    int k, dim, iterations;
    uint64_t seed;
    int64_t n, n_train;
    double objective;
    double silhouette;          /* NAN: not measured */
    const char *params_json;    /* a JSON object */
    const float *centroids;     /* k x dim; get: valid until the next call on the store */
} raddino_store_cluster_run;

/* Stores a run and the assignment of n images (ids, cluster numbers, cosine distances), in a
 * batch of its own (or the open one). Images deleted since they were read are skipped. */
raddino_status raddino_store_put_cluster_run(raddino_store *db, raddino_store_cluster_run *run,
                                             const int64_t *image_ids, const int32_t *clusters,
                                             const float *distances, size_t n);
/* Reads run `run_id` (0: the latest); *found = 0 when there is none. Strings and centroids
 * stay valid until the next call on db. */
raddino_status raddino_store_get_cluster_run(raddino_store *db, int64_t run_id,
                                             raddino_store_cluster_run *out, int *found);
/* Calls fn for every run, newest first (centroids NULL). */
typedef void (*raddino_store_cluster_run_fn)(void *user, const raddino_store_cluster_run *run);
raddino_status raddino_store_list_cluster_runs(raddino_store *db, raddino_store_cluster_run_fn fn,
                                               void *user);
/* Calls fn for every assignment of a run still in the collection, by cluster then distance
 * (nearest the centroid first). A non-zero return stops the walk. */
typedef int (*raddino_store_assignment_fn)(void *user, int64_t image_id, const char *path,
                                           int cluster, float distance);
raddino_status raddino_store_foreach_assignment(raddino_store *db, int64_t run_id,
                                                raddino_store_assignment_fn fn, void *user);

/* ---- Runs, statistics ---------------------------------------------------------------------- */

typedef struct {
    int64_t added;      /* new path, vector computed */
    int64_t updated;    /* known path whose file changed, vector recomputed */
    int64_t reused;     /* vector copied from a stored file with the same content (no encoding) */
    int64_t unchanged;  /* path, size and mtime as stored: not read at all */
    int64_t failed;     /* could not be read or decoded: recorded with its reason */
    int64_t removed;    /* rows dropped: files gone (--prune) or no longer images */
} raddino_store_counts;

/* Records a run (committed at once); *run_id names it for the updates. */
raddino_status raddino_store_run_begin(raddino_store *db, const char *command, int64_t *run_id);
/* Writes the run's counts and times; finished = 1 stamps its end time. Call inside a batch so
 * the counts commit with the rows they count, or alone (it then commits itself). */
raddino_status raddino_store_run_update(raddino_store *db, int64_t run_id,
                                        const raddino_store_counts *counts,
                                        double encoder_seconds, double wall_seconds,
                                        int finished);

/* The embeddings generation (see above). */
raddino_status raddino_store_generation(raddino_store *db, int64_t *generation);

typedef struct {
    int schema;
    int64_t generation;
    int64_t images, ok, failed, vectors;
    int64_t dicom;              /* images with DICOM metadata (ok or failed) */
    int models;                 /* models with vectors stored */
    int64_t model_id;           /* the model of the vectors (0 when none) */
    int dim;                    /* its dim (0 when none) */
    char weights_sha256[65];
    char repository[256], revision[128];
    /* The last run (run_id 0 when none). */
    int64_t run_id;
    double run_started, run_finished;   /* finished 0: still running or killed */
    char run_command[256];
    raddino_store_counts run_counts;
    double run_encoder_seconds, run_wall_seconds;
} raddino_store_stats;

raddino_status raddino_store_get_stats(raddino_store *db, raddino_store_stats *out);

/* Calls fn for each distinct failure reason with its count, most frequent first (at most
 * limit reasons). */
typedef void (*raddino_store_reason_fn)(void *user, const char *reason, int64_t count);
raddino_status raddino_store_failure_reasons(raddino_store *db, int limit,
                                             raddino_store_reason_fn fn, void *user);

/* Calls fn for each DICOM Modality with its count of images, most frequent first ("" stands
 * for files without one). */
typedef void (*raddino_store_modality_fn)(void *user, const char *modality, int64_t count);
raddino_status raddino_store_dicom_modalities(raddino_store *db, raddino_store_modality_fn fn,
                                              void *user);

/* ---- Shards -------------------------------------------------------------------------------- */

/* A collection can be indexed by N independent processes (MPI ranks, Slurm array tasks), each
 * writing its own shard database, and merged into one afterwards: never two writers on one
 * SQLite file (a shared file system's locking cannot be trusted).
 *
 * The shard of a file is raddino_store_shard_of(its stored path, N): FNV-1a 64 (offset basis
 * 0xcbf29ce484222325, prime 0x100000001b3) over the bytes of the normalised absolute path
 * (raddino_store_normalise_path, as stored in images.path, without its terminating NUL),
 * modulo N. It depends on the path only: the same on every machine, run and byte order.
 * (count 0 gives 0.) */
uint32_t raddino_store_shard_of(const char *path, uint32_t count);

/* A shard database records which shard it is (meta 'shard_index', 'shard_count'). set_shard
 * (writers) records it on a database that holds no images yet, is a no-op when the same shard
 * is recorded, and refuses (ERR_ARGUMENT) another shard number or a database of a whole
 * collection. get_shard gives 0, 0 when the database is not a shard. */
raddino_status raddino_store_set_shard(raddino_store *db, int index, int count);
raddino_status raddino_store_get_shard(raddino_store *db, int *index, int *count);

/* The file of shard index (0..count-1) of the collection main_db: "MAIN_DB.shard-I-of-N" in
 * the same folder (e.g. raddino.db.shard-0-of-3), I and N in decimal without padding. */
raddino_status raddino_store_shard_path(const char *main_db, int index, int count, char *out,
                                        size_t cap);

/* Finds the shard files of main_db next to it: *paths (free with
 * raddino_store_free_shard_paths) holds shard 0..N-1 of the one N found. Fails with
 * ERR_NOT_FOUND naming the missing shards (or saying there is none), and with ERR_ARGUMENT
 * when shards of two different N lie there. */
raddino_status raddino_store_find_shards(const char *main_db, char ***paths, int *n_paths);
void raddino_store_free_shard_paths(char **paths, int n_paths);

typedef struct {
    int shards;             /* shard databases given */
    int shards_unchanged;   /* of them, unchanged since the last merge: not read */
    int64_t added, updated, removed;    /* rows of the collection */
    int64_t unchanged;      /* rows of the shards read that were already the same */
    int64_t failed;         /* of the added and updated rows, those recorded as failed */
} raddino_store_merge_result;

/* Merges shard databases into db (opened for writing, not itself a shard), so that it holds
 * what one `index` run over the same files would: the same paths, the same image ids (new rows
 * are added in path order, as one run adds them), the same vectors bit for bit, failure
 * records, DICOM metadata, model and model origin. Refused before anything is written: a
 * shard that is not one (ERR_ARGUMENT), shards of different N or the same shard twice, a shard
 * whose last run did not finish, shards made with different models or preprocessing (DICOM
 * window), or a model other than that of db's vectors (ERR_MODEL).
 *
 * Each shard owns the rows of db whose path hashes to it: rows the shard holds are added or
 * updated, rows it no longer holds are removed; rows of shards not given are left alone. A
 * shard unchanged since the last merge (its stamp, kept in db's meta as 'merged_shard.I': its
 * database's random salt, generation and last run) is not read again while db is as that
 * merge left it ('merged_generation'); merging unchanged shards again changes nothing. All
 * changes are one transaction: a merge killed at any moment leaves db as it was. Records a
 * run (command, counts) like an index run. */
typedef struct {
    const char *command;    /* recorded as the run's command (NULL: "merge") */
    /* Tests only: 1 makes the process SIGKILL itself after every change was written into the
     * open transaction, just before it commits. */
    int test_kill_before_commit;
} raddino_store_merge_params;

/* params may be NULL (defaults); result may be NULL. */
raddino_status raddino_store_merge(raddino_store *db, const char *const *shards, int n_shards,
                                   const raddino_store_merge_params *params,
                                   raddino_store_merge_result *result);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif
#endif
