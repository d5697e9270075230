/* index_internal.h — private to index/: the index object, status and normalisation helpers,
 * the file checksum. */
#ifndef RADDINO_INDEX_INTERNAL_H
#define RADDINO_INDEX_INTERNAL_H

#include "raddino_index.h"

#include <faiss/c_api/Index_c.h>

#include <stdarg.h>

struct raddino_index {
    FaissIndex *faiss;
    int dim;
    char type[RADDINO_INDEX_TYPE_MAX];   /* "flat" or a factory string */
    int n_threads;
    int nprobe;         /* in force; 0 = not an IVF index */
    int ef_search;      /* in force; 0 = no HNSW inside */
    size_t train_size;  /* as given at build, reused when a remove rebuilds */
    uint64_t seed;
    int rerank;         /* shortlist factor of search_rerank (1: none) */
    /* Recall@k measured when the index was built (recall.c); queries 0 = not measured. */
    double build_recall;
    int build_recall_queries, build_recall_k, build_recall_nprobe;
};

/* Bytes a node of an HNSW32 graph costs beyond its vector (64 level-0 links of 4 bytes, the
 * upper levels, offsets): the auto rule's estimate for the coarse quantizer of IVF{L}_HNSW32. */
#define RADDINO_INDEX_HNSW_BYTES 320

/* Measures recall@k (k = RADDINO_INDEX_BUILD_RECALL_K) of a freshly built index on
 * RADDINO_INDEX_BUILD_RECALL_QUERIES of its own vectors held out (each query's own id is
 * dropped from both the exact and the index's answer), and stores it in the index. With
 * tune_nprobe, first picks the smallest nprobe of a geometric ladder whose recall reaches
 * RADDINO_INDEX_RECALL_TARGET (nlist if none does) and leaves it in force. */
raddino_status index_build_recall(raddino_index *ix, const float *vectors, const int64_t *ids,
                                  size_t n, int tune_nprobe, uint64_t seed);

/* "ondisk:..." types (ivf.c) and their default re-ranking factor. */
int index_is_ondisk_type(const char *type);
int index_default_rerank(const char *type);
/* The FAISS factory string of an "exact-fp16" / "exact-sq8" type (scan.c), else NULL. */
const char *index_exact_sq_factory(const char *type);

raddino_status index_ok(void);
raddino_status index_error(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* A failed FAISS C API call (rc != 0) as a status: "what: FAISS's message". */
raddino_status index_faiss_error(int rc, const char *what);

int index_threads(int requested);   /* 0 -> $RADDINO_THREADS, else all cores */

/* Rows of `src` L2-normalised into `dst` (both n x d; may be the same). A non-finite value is an
 * error naming the row (first_row + i); an all-zero row stays zero. */
raddino_status index_normalise(const float *src, size_t n, int d, float *dst, size_t first_row);

/* Picks `m` distinct row numbers out of n (m <= n), sorted, reproducibly from `seed`. */
raddino_status index_sample_rows(size_t n, size_t m, uint64_t seed, size_t **rows);

/* Turns a loaded FAISS index into our object: search parameters applied, fields filled. */
raddino_status index_wrap(FaissIndex *faiss, const char *type, int n_threads, int nprobe,
                          int ef_search, raddino_index **out);

/* A 64-bit multiply-rotate checksum over a byte stream (corruption detection, not security). */
typedef struct {
    uint64_t lane[4];
    unsigned char tail[32];
    size_t n_tail;
    uint64_t total;
} index_checksum;

void index_checksum_init(index_checksum *c);
void index_checksum_update(index_checksum *c, const void *data, size_t size);
uint64_t index_checksum_final(const index_checksum *c);

/* Bytes FAISS writes for this index (the memory estimate of raddino_index_info). */
raddino_status index_serialised_size(const FaissIndex *faiss, uint64_t *bytes);

#endif
