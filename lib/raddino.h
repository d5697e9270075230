/* raddino.h — libraddino in one include: the status, encoder, store, index, collection, probe
 * and ingest APIs, the library's build information, and a few flat entry points for
 * foreign-function interfaces.
 *
 * Build against the installed library with pkg-config:
 *
 *     cc prog.c $(pkg-config --cflags --libs raddino)
 *
 *     #include <raddino/raddino.h>
 *     raddino_build_info b;
 *     raddino_get_build_info(&b);
 *     printf("raddino %s (%s), kernel %s\n", b.version, b.git_commit, b.kernel);
 *
 * The flat entry points below take and return only scalars, strings, pointers to arrays and
 * raddino_status, never a struct whose layout a binding would have to mirror: Python's ctypes
 * (python/raddino) calls them, and a field added to raddino_encoder_params or
 * raddino_collection_params later cannot silently break a binding. They are thin: each is a
 * few calls of the APIs in the other headers, with those APIs' defaults.
 *
 * Exported symbols: libraddino.so exports raddino_* only (a linker version script and
 * -fvisibility=hidden); the soname carries the major version (libraddino.so.0).
 */
#ifndef RADDINO_H
#define RADDINO_H

#include "raddino_status.h"
#include "raddino_analysis.h"
#include "raddino_encoder.h"
#include "raddino_hub.h"
#include "raddino_index.h"
#include "raddino_ingest.h"
#include "raddino_probe.h"
#include "raddino_collection.h"
#include "raddino_store.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
#pragma GCC visibility push(default)

/* ---- Build information ---------------------------------------------------------------------
 *
 * What this copy of the library is and what it runs on. "Compiled" versions come from the
 * headers at build time (FAISS is linked statically: Debian ships only libfaiss.a); "loaded"
 * ones are asked of the shared library in use, so they show what the system's alternatives
 * (libblas.so.3 -> openblas-openmp / -pthread / -serial) really selected. All strings are
 * static: valid for the life of the process, never freed. */
typedef struct {
    const char *version;            /* raddino's: "0.1.0" */
    const char *git_commit;         /* commit built from, "+dirty" when the tree had changes;
                                       "unknown" when not built from a git checkout */
    const char *faiss;              /* compiled (statically linked) */
    const char *gdcm;               /* compiled against */
    const char *openblas;           /* loaded: openblas_get_config() */
    const char *openblas_parallel;  /* loaded: "openmp", "pthread" or "serial" */
    const char *sqlite;             /* loaded: sqlite3_libversion() */
    const char *libjpeg_turbo;      /* compiled against */
    const char *libpng;             /* loaded */
    const char *cjson;              /* loaded */
    const char *curl;               /* loaded */
    const char *kernel;             /* fastest matrix kernel on this CPU: "avx512-bf16",
                                       "avx512" or "openblas" */
    const char *kernel_fp32;        /* what precision fp32 uses here: "avx512-fp32" or
                                       "openblas-fp32" */
    const char *kernel_bf16;        /* what precision bf16 uses here: "avx512-bf16", or the
                                       fp32 kernel it falls back to */
} raddino_build_info;

void raddino_get_build_info(raddino_build_info *out);

/* The same as one JSON object ({"version": ..., "git_commit": ..., "openblas": {...}, ...}),
 * NUL-terminated, into out. RADDINO_ERR_ARGUMENT when it does not fit (1 KiB always does). */
raddino_status raddino_build_info_json(char *out, size_t cap);

/* ---- Flat entry points (for bindings) ------------------------------------------------------ */

/* Frees memory the library allocated for the caller (raddino_collection_read_all's arrays). */
void raddino_free(void *p);

/* raddino_encoder_open with the default params but precision (raddino_precision) and n_threads
 * (0: $RADDINO_THREADS, else all cores). model_dir NULL: $RADDINO_MODEL when set, else
 * microsoft/rad-dino at main in the Hugging Face cache (raddino_hub_find; nothing is
 * downloaded). */
raddino_status raddino_encoder_open_simple(const char *model_dir, int precision, int n_threads,
                                           raddino_encoder **out);

/* The sizes callers allocate for: hidden (CLS length), tokens per image, the network input
 * height and width; kernel: the matrix kernel in use (raddino_model_info.kernel). Any output
 * may be NULL. */
raddino_status raddino_encoder_shape(const raddino_encoder *enc, int *hidden, int *tokens,
                                     int *height, int *width, const char **kernel);

/* raddino_embed_image on 8-bit RGB pixels (width * height * 3 bytes, interleaved, row-major),
 * as if decoded from an 8-bit RGB file. cls / tokens as raddino_embed_file (may be NULL). */
raddino_status raddino_embed_rgb(raddino_encoder *enc, const uint8_t *rgb, int width, int height,
                                 float *cls, float *tokens);

/* Decodes a file (default pixel cap and DICOM window: those of encoders opened by
 * raddino_encoder_open_simple, so the pixels are the ones raddino_embed_file encodes) and
 * preprocesses it: crop (height * width * 3 bytes) and/or pixels ([3, height, width] floats), as
 * raddino_preprocess. */
raddino_status raddino_preprocess_file(raddino_encoder *enc, const char *path, uint8_t *crop,
                                       float *pixels);

/* raddino_collection_open with the default params (index type kept or "auto", saved beside the
 * database when the folder is writable). */
raddino_status raddino_collection_open_simple(const char *db_path, raddino_collection **out);

/* The collection's vector length and the number of vectors in its snapshot. */
raddino_status raddino_collection_shape(raddino_collection *c, int *dim, int64_t *vectors);

/* The stored path of image `id` into path (cap bytes); *found = 0 when there is no such row. */
raddino_status raddino_collection_path(raddino_collection *c, int64_t id, char *path,
                                       size_t cap, int *found);

/* The stored vector of image `id` (dim floats), as raddino_collection_vector; *found = 0 when
 * the image has none (unknown id, failed image). */
raddino_status raddino_collection_get_vector(raddino_collection *c, int64_t id, float *vector,
                                             int *found);

/* The id of a stored path (normalised as the store does); *found = 0 when absent. */
raddino_status raddino_collection_find(raddino_collection *c, const char *path, int64_t *id,
                                       int *found);

/* Refuses (RADDINO_ERR_MODEL) an encoder whose model (raddino_encoder_identity: weights sha256,
 * architecture, preprocessing, DICOM window) is not the collection's, as
 * raddino_collection_check_model. The first call on an encoder hashes its weights. */
raddino_status raddino_collection_check_encoder(raddino_collection *c, raddino_encoder *enc);

/* The collection's statistics as one JSON object: the fields of raddino_store_stats ("images",
 * "ok", "failed", "vectors", "dim", "models", "dicom", "generation", "weights_sha256", ...),
 * "failure_reasons" ({reason: count}, the 32 commonest) and "modalities" ({modality: count}). */
raddino_status raddino_collection_stats_json(raddino_collection *c, char *out, size_t cap);

/* raddino_kmeans with flat arguments: k, seed, iterations (0 = 20), sample (0 = the default),
 * n_threads (0 = default). centroids: k * dim floats; assignment, distance: n each (any may be
 * NULL); *objective may be NULL. */
raddino_status raddino_kmeans_simple(const float *vectors, size_t n, int dim, int k, uint64_t seed,
                                     int iterations, size_t sample, int n_threads,
                                     float *centroids, int32_t *assignment, float *distance,
                                     double *objective);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
