/* raddino_index.h — nearest-neighbour search and clustering of RAD-DINO embeddings (FAISS).
 *
 * What it does: keeps float32 vectors (CLS embeddings, any dimension) under int64 ids (the
 * store's image ids) in a FAISS index and answers "which stored vectors are most similar to
 * these?" by cosine similarity. Vectors are L2-normalised inside (on a copy: the caller's arrays
 * are never modified), so inner product = cosine and every score is in [-1, 1] (approximate
 * types: close to it). Also: range search (all neighbours above a similarity, for duplicate
 * finding), recall measurement, atomic save/load, spherical k-means and silhouette scores.
 *
 * Usage:
 *
 *     raddino_index_params p = raddino_index_default_params();   // type "flat": exact
 *     raddino_index *ix;
 *     raddino_status st = raddino_index_build(vectors, ids, n, 768, &p, &ix);
 *     if (st.code) { fprintf(stderr, "%s\n", st.message); return 1; }
 *     float scores[5 * 2]; int64_t found[5 * 2];
 *     st = raddino_index_search(ix, queries, 2, 5, scores, found);    // 2 queries, top 5
 *     raddino_index_meta meta = { .generation = 42 };
 *     strcpy(meta.model_id, "microsoft/rad-dino@main");
 *     st = raddino_index_save(ix, "raddino.db.faiss", &meta);
 *     raddino_index_free(ix);
 *
 * Every call returns a raddino_status (common/raddino_status.h): code 0 is success, otherwise
 * `message` is one line a user can read. FAISS's C++ exceptions never escape: they become
 * statuses. There is no global mutable state; searches on one index may run from several threads
 * at once, but add/remove/set_search_params/free need the index to themselves.
 *
 * Index types (params.type):
 *   "flat"    exact inner product (FAISS IndexIDMap over IndexFlatIP). The default.
 *   "exact-fp16", "exact-sq8"
 *             flat scans of float16 (2 bytes a dimension) or 8-bit codes (1 byte, FAISS SQ8,
 *             trained per dimension): half or a quarter of flat's memory traffic and size. Their
 *             own scores are approximate; searched with re-ranking (raddino_index_search_batch
 *             or _rerank, factor RADDINO_INDEX_RERANK_EXACT_SQ, the collection does so) a
 *             shortlist is re-scored from the stored float32 vectors, which gives flat's ids and
 *             scores wherever the shortlist holds the true neighbours.
 *   "auto"    picks by collection size and params.max_memory (raddino_index_choose_type):
 *               - n <= 10,000: "flat", whatever the budget (under 31 MB at 768-d);
 *               - n <= 200,000 and n*(4d+8) bytes fit the budget: "flat";
 *               - else, up to 1,000,000, with L = the power of two nearest 4*sqrt(n), within
 *                 [64, 65536] and at most n/39 (2,048 lists at 200k-600k, 4,096 at 1M), and
 *                 a fixed L*(4d+320) bytes for the centroids and their HNSW32 graph:
 *                 "IVF{L}_HNSW32,Flat" when n*(4d+8) + fixed fit (float32 codes: exact
 *                 scores); else "IVF{L}_HNSW32,SQ8" when n*(d+8) + fixed fit (re-ranked x4
 *                 by raddino_index_search_rerank); else "IVF{L},PQ{m}np" with m the largest
 *                 divisor of d among d/8, 64, 48, 32, 16, 8 for which n*(m+8) + (L+256)*4d
 *                 bytes fit ("np": no polysemous training, slow and unused since we never set
 *                 a Hamming threshold). The HNSW types get the nprobe that reaches
 *                 RADDINO_INDEX_RECALL_TARGET on held-out vectors at build (below) unless
 *                 params.nprobe is set. (A plain HNSW32 over the vectors, the rule before,
 *                 took over 30 minutes to build at 1M on 2 cores.)
 *               - first of all, past RADDINO_INDEX_ONDISK_MIN (1,000,000) vectors:
 *                 "ondisk:IVF{L},SQ8" whatever the budget (below: built in parts, its lists
 *                 memory-mapped and paged in on demand).
 *             max_memory 0 means half of the machine's physical memory.
 *   anything else: a FAISS index_factory string ("IVF1024,Flat", "HNSW32", "IVF4096,PQ64",
 *             "PCA128,IVF256,Flat"...), built with METRIC_INNER_PRODUCT. Types that need
 *             training are trained on the vectors given to raddino_index_build, or on a seeded
 *             random sample of params.train_size of them; train_size 0 means
 *             min(n, max(65,536, 64 * nlist)) (FAISS itself uses at most 256 per centroid).
 *             Types that cannot keep ids themselves (all but IVF) are wrapped in an IndexIDMap.
 *
 * Recall at build: raddino_index_build measures recall@10 of every approximate type it builds
 * on RADDINO_INDEX_BUILD_RECALL_QUERIES (200) of the vectors, chosen with params.seed, each
 * held out (its own id left out of both the index's answer and the exact one); the figure is
 * kept in the index (raddino_index_info.build_recall, saved and loaded) and costs 200 * n * d
 * multiply-adds (about 1 s at 1M x 768).
 *
 * Search parameters: nprobe (IVF lists visited; 0 = max(8, nlist/32), at most nlist; for the
 * HNSW-quantized IVF types "auto" picks, the nprobe chosen at build) and
 * ef_search (HNSW beam width; 0 = 64; never below k in FAISS). They are applied at build and
 * load and can be changed with raddino_index_set_search_params. Typical recall@10 on clustered
 * 768-d data (tests/test_index.c checks >= 0.9): IVF256,Flat with nprobe 16, HNSW32 with
 * ef_search 64.
 *
 * Removing ids: flat, IVF and PQ indexes remove in place. FAISS's HNSW graph cannot delete, so
 * removing from an HNSW index rebuilds it from its stored vectors (the cost of a build).
 * Adding does not check for ids already present: remove an id before adding it again.
 *
 * Files (raddino_index_save / raddino_index_load): one file = the FAISS index exactly as
 * faiss::write_index writes it (Python's faiss.read_index reads the file as it is), then a small
 * JSON metadata block (generation, model id, type, dimension, search parameters), then a 32-byte
 * footer: "RDXIDX01", the two lengths and a 64-bit checksum of everything before the footer.
 * Load verifies the checksum before FAISS sees a byte, so a truncated or damaged file is a clean
 * RADDINO_ERR_FORMAT. Saves are atomic: a temporary file in the same folder, fsync, rename,
 * fsync of the folder; a crash leaves the old file or the new one, never a mix.
 * The generation is the caller's: store the collection's change counter when saving and compare
 * it (raddino_index_read_meta reads only the metadata, cheaply) to know whether to rebuild.
 *
 * Threads: FAISS and OpenBLAS (OpenMP build) share one OpenMP thread pool. params.n_threads = 0
 * means $RADDINO_THREADS when set, else all cores. k-means is deterministic for a given seed and
 * thread count.
 */
#ifndef RADDINO_INDEX_H
#define RADDINO_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "raddino_status.h"

#ifdef __cplusplus
extern "C" {
#endif
/* Exported from libraddino.so, built with -fvisibility=hidden (see cmake/install.cmake). */
#pragma GCC visibility push(default)

#define RADDINO_INDEX_TYPE_MAX 128
#define RADDINO_INDEX_MODEL_ID_MAX 256

typedef struct {
    const char *type;       /* "flat" (NULL = flat), "auto", or a FAISS factory string */
    uint64_t max_memory;    /* "auto"'s budget in bytes; 0 = half the physical memory */
    size_t train_size;      /* vectors to train on; 0 = min(n, max(65536, 64 * nlist)) */
    int nprobe;             /* IVF; 0 = max(8, nlist / 32) */
    int ef_search;          /* HNSW; 0 = 64 */
    int n_threads;          /* 0 = $RADDINO_THREADS, else all cores */
    uint64_t seed;          /* choice of the training sample */
    int rerank;             /* shortlist factor of raddino_index_search_rerank: 0 = the type's
                               default (RADDINO_INDEX_RERANK_ONDISK for "ondisk:" types, else
                               1: no re-ranking) */
} raddino_index_params;

raddino_index_params raddino_index_default_params(void);

typedef struct raddino_index raddino_index;

/* Builds an index of `n` vectors of `dim` floats (row-major) with ids[i] >= 0 for row i.
 * Non-finite values are refused; an all-zero vector is kept as it is (score 0 to everything). */
raddino_status raddino_index_build(const float *vectors, const int64_t *ids, size_t n, int dim,
                                   const raddino_index_params *params, raddino_index **out);
void raddino_index_free(raddino_index *index);

/* The auto rule above, on its own: writes the factory string (or "flat") to `type`. */
raddino_status raddino_index_choose_type(size_t n, int dim, uint64_t max_memory, char *type,
                                         size_t type_size);

raddino_status raddino_index_add(raddino_index *index, const float *vectors, const int64_t *ids,
                                 size_t n);
/* Removes every stored vector whose id is in ids; *n_removed (may be NULL) says how many. */
raddino_status raddino_index_remove(raddino_index *index, const int64_t *ids, size_t n,
                                    size_t *n_removed);
/* Removes every vector and keeps the training (IVF centroids, PQ codebooks, PCA): refilling
 * with raddino_index_add costs no training. */
raddino_status raddino_index_clear(raddino_index *index);
/* 0 leaves a parameter as it is; a parameter the type lacks is ignored. */
raddino_status raddino_index_set_search_params(raddino_index *index, int nprobe, int ef_search);

/* Threads for the calls that follow (0 = $RADDINO_THREADS, else all cores). One query at a time
 * uses one thread whatever this says; a latency-bound caller may set 1. */
raddino_status raddino_index_set_threads(raddino_index *index, int n_threads);

/* Top-k for nq queries at once: scores and ids are nq*k, best first. A query with fewer than k
 * stored neighbours gets id -1 and score -INFINITY in the remaining slots. */
raddino_status raddino_index_search(const raddino_index *index, const float *queries, size_t nq,
                                    int k, float *scores, int64_t *ids);
/* Marks results below min_score as missing (id -1, score -INFINITY); *n_kept (may be NULL)
 * counts the results left. Rows stay sorted, so what is kept is a prefix of each row. */
raddino_status raddino_index_apply_min_score(float *scores, int64_t *ids, size_t nq, int k,
                                             float min_score, size_t *n_kept);

/* All stored vectors with cosine >= threshold, per query, best first:
 * query q's results are ids[lims[q] .. lims[q+1]) and scores[...]. Approximate types may miss
 * some (as in their top-k). Types without a FAISS range search (HNSW) are answered by top-k
 * searches of growing k. */
typedef struct {
    size_t nq;
    size_t *lims;       /* nq + 1 */
    int64_t *ids;
    float *scores;
} raddino_range_result;

raddino_status raddino_index_range_search(const raddino_index *index, const float *queries,
                                          size_t nq, float threshold, raddino_range_result *out);
void raddino_range_result_free(raddino_range_result *result);

typedef struct {
    char type[RADDINO_INDEX_TYPE_MAX]; /* "flat" or the factory string ("auto" resolved) */
    int exact;              /* 1 for "flat": scores are exact cosines */
    int dim;
    int64_t ntotal;
    uint64_t memory_bytes;  /* approximate: the size FAISS serialises (vectors, codes, lists,
                               graph, id map); the in-memory size is within a few percent */
    int nprobe;             /* in force; 0 when the type has no such parameter */
    int ef_search;
    int nlist;              /* IVF lists; 0 for other types */
    /* An on-disk IVF ("ondisk:" types): memory_bytes above is then what a search process
     * holds (quantizer, codec, list table), and the codes and ids are in the lists file. */
    int on_disk;
    char lists_path[4096];  /* the memory-mapped lists file ("" when in memory) */
    uint64_t lists_bytes;
    int rerank;             /* shortlist factor in force (1: none) */
    /* Recall@k measured at build time (raddino_index_build, approximate types): `queries` of
     * the vectors chosen with the build's seed are held out one at a time (the query's own id
     * is left out of both the exact and the index's answer) and searched at `nprobe`.
     * build_recall_queries is 0 when none was measured (flat; on-disk indexes built in parts;
     * files saved before this was recorded). */
    double build_recall;
    int build_recall_queries;
    int build_recall_k;
    int build_recall_nprobe;
} raddino_index_info;

/* What raddino_index_build measures (above) and, for the in-memory IVF types "auto" picks
 * with nprobe 0, the recall its nprobe is chosen to reach. */
#define RADDINO_INDEX_BUILD_RECALL_QUERIES 200
#define RADDINO_INDEX_BUILD_RECALL_K 10
#define RADDINO_INDEX_RECALL_TARGET 0.98

raddino_status raddino_index_get_info(const raddino_index *index, raddino_index_info *out);

/* recall@k of this index against exact search. `vectors`/`ids` are the n stored vectors (the
 * same as the index holds, e.g. read back from the store); n_queries of them, chosen with
 * `seed`, are the queries. A returned id counts as a hit when its exact cosine is at least the
 * k-th best exact cosine (less 1e-5), so ties and duplicates do not count as misses.
 * Cost: n_queries * n * dim multiply-adds (200 queries on 1M x 768: a few seconds). */
raddino_status raddino_index_measure_recall(const raddino_index *index, const float *vectors,
                                            const int64_t *ids, size_t n, size_t n_queries,
                                            int k, uint64_t seed, double *recall);

/* ---- Files -------------------------------------------------------------------------------- */

typedef struct {
    uint64_t generation;                        /* the caller's; at most 2^53 */
    char model_id[RADDINO_INDEX_MODEL_ID_MAX];  /* the caller's, e.g. repo@revision */
    /* Filled by load/read_meta, ignored by save: */
    char type[RADDINO_INDEX_TYPE_MAX];
    int dim;
    int64_t ntotal;
    char lists_file[256];   /* an on-disk index's lists file, in the index file's folder ("") */
} raddino_index_meta;

raddino_status raddino_index_save(const raddino_index *index, const char *path,
                                  const raddino_index_meta *meta);
/* params: n_threads and search parameters (0: the values saved in the file). May be NULL. */
raddino_status raddino_index_load(const char *path, const raddino_index_params *params,
                                  raddino_index **out, raddino_index_meta *meta);
/* Reads the metadata only (no checksum of the index bytes): for staleness checks. */
raddino_status raddino_index_read_meta(const char *path, raddino_index_meta *meta);

/* ---- At scale: an IVF built in parts and merged into one on-disk index ------------------
 *
 * Type "ondisk:IVF{L},{codec}" (codec SQ8, PQ{m}, Flat...: any FAISS IVF factory string after
 * the prefix) is an IVF whose inverted lists (codes and ids) live in a lists file beside the
 * index file, memory-mapped (FAISS OnDiskInvertedLists): a search process holds the quantizer
 * and the list table and reads the lists it probes from the page cache, not the whole index.
 * It is built in parts, one per shard of the data, which may run at the same time (threads or
 * processes):
 *
 *     raddino_index *trained, *parts[3], *merged;
 *     p.type = "ondisk:IVF1024,SQ8";
 *     raddino_index_ivf_train(sample, n_sample, 768, &p, &trained);        // once, seeded sample
 *     raddino_index_ivf_add_part(trained, shard_vectors, shard_ids, m, &parts[i]);  // per shard
 *     raddino_index_ivf_merge_parts(trained, parts, 3, "db.faiss.1a2b.ivfdata", &merged);
 *     raddino_index_save(merged, "db.faiss", &meta);   // the lists file must be in its folder
 *
 * The parts share the trained coarse quantizer and codec, so the merged index holds exactly the
 * codes and ids that the same index built in one piece holds, list by list: same results, same
 * scores (tests/test_ivf.c). raddino_index_build refuses "ondisk:" types (it has no file to put
 * the lists in). The "auto" rule picks "ondisk:IVF{L},SQ8" past RADDINO_INDEX_ONDISK_MIN vectors
 * whatever the budget, L the power of two nearest sqrt(n) within
 * [256, 65536], trained on min(n, 64 L) vectors: at 2,000,000 that is IVF1024 (about 2,000
 * vectors a list), nprobe 32, 776 bytes a vector on disk.
 *
 * Files: the index file (FAISS's bytes, which name the lists file, + metadata + footer, all
 * under the checksum as for every type) and the lists file, which FAISS names in the index and
 * which load looks for in the index file's folder (so the pair can be moved together). Save
 * records the lists file's name, size, a checksum of all of it and one of its first and last
 * MiB. Load checks the size and the first/last MiB (not every byte: hashing gigabytes at each
 * load would undo the point of mapping them; raddino_index_verify_lists reads them all) and
 * that every list lies inside the file, before any list is read. A file truncated or replaced
 * under a running search is outside this (the mapping would fault): replace an index by saving
 * a new pair under a new lists name, as the collection does. The index is read-only after load:
 * add, remove and clear fail cleanly; a changed collection is rebuilt from parts (keeping the
 * training).
 *
 * Re-ranking: quantised codes (SQ8, PQ) give approximate scores. raddino_index_search_rerank
 * searches for a shortlist of k * factor, fetches the shortlist's float32 vectors through the
 * caller's callback (the collection reads them from the store) and returns the k best by exact
 * cosine: the same ranks and scores as exact search wherever the shortlist holds the true
 * neighbours. */
#define RADDINO_INDEX_ONDISK_MIN 1000000
#define RADDINO_INDEX_RERANK_ONDISK 4
#define RADDINO_INDEX_RERANK_EXACT_SQ 4

/* Trains an empty IVF of params->type ("ondisk:IVF..." or "IVF...") on all n sample vectors
 * (the caller picks the seeded sample). The result can be shared by concurrent add_part calls. */
raddino_status raddino_index_ivf_train(const float *sample, size_t n, int dim,
                                       const raddino_index_params *params, raddino_index **out);
/* A part: a copy of `trained` (only read: parts may be built in parallel threads) holding the
 * n vectors (normalised inside) under their ids, in memory. */
raddino_status raddino_index_ivf_add_part(const raddino_index *trained, const float *vectors,
                                          const int64_t *ids, size_t n, raddino_index **part);
/* Merges the parts' inverted lists into lists_path (written under a temporary name, fsync'd,
 * renamed over any file of that name: processes mapping the old one keep it) and
 * returns the on-disk index. The parts are only read and stay the caller's to free. Refuses
 * parts of another training (FAISS compares the coarse centroids). */
raddino_status raddino_index_ivf_merge_parts(const raddino_index *trained,
                                             raddino_index *const *parts, size_t n_parts,
                                             const char *lists_path, raddino_index **out);
/* m of n row numbers (all when m >= n), sorted, chosen reproducibly from seed: the training
 * sample of a build in parts. *rows is malloc'd (the caller frees it). */
raddino_status raddino_index_sample_rows(size_t n, size_t m, uint64_t seed, size_t **rows);
/* Reads every byte of a saved on-disk index's lists file and compares the checksum save
 * recorded (RADDINO_ERR_FORMAT on a mismatch; ok for indexes without a lists file). */
raddino_status raddino_index_verify_lists(const char *index_path);

/* Fills vectors (n x dim, raw or normalised) with the stored vectors of ids; returns 0, or
 * nonzero when one cannot be read. */
typedef int (*raddino_index_fetch_fn)(void *user, const int64_t *ids, size_t n, float *vectors);

/* raddino_index_search with re-ranking: a shortlist of k * factor by the index (factor 0: the
 * index's own, raddino_index_info.rerank), re-scored by exact cosine with the vectors `fetch`
 * gives, best first (ties: smaller id first). factor 1 or fetch NULL: raddino_index_search. */
raddino_status raddino_index_search_rerank(const raddino_index *index, const float *queries,
                                           size_t nq, int k, int factor,
                                           raddino_index_fetch_fn fetch, void *user,
                                           float *scores, int64_t *ids);

/* Top-k for a batch of queries that share one pass over the stored vectors: for "flat",
 * "exact-fp16" and "exact-sq8" each block of stored vectors is read from memory once for all nq
 * queries (a search on 100,000 x 768 reads 300 MB: 8 queries cost about what one does), on
 * the index's threads. Every score is computed by the same arithmetic whatever nq is and
 * whichever queries share the call, so a query gets the same ids and scores, bit for bit, alone
 * or in any batch (ties: smaller id first). They may differ from raddino_index_search's in the
 * last bits (FAISS sums in another order). Re-ranking as raddino_index_search_rerank (factor 0:
 * the index's own; fetch NULL: none), by the same arithmetic: "exact-fp16"/"exact-sq8" then
 * return flat's ids and scores bit for bit wherever the shortlist holds the true neighbours.
 * Other types: FAISS's search of the nq queries, then the re-ranking. */
raddino_status raddino_index_search_batch(const raddino_index *index, const float *queries,
                                          size_t nq, int k, int factor,
                                          raddino_index_fetch_fn fetch, void *user,
                                          float *scores, int64_t *ids);

/* ---- Clustering --------------------------------------------------------------------------- */

typedef struct {
    int k;
    uint64_t seed;          /* FAISS uses the low 31 bits */
    int iterations;         /* 0 = 20 */
    size_t sample;          /* train on this many vectors (seeded random); 0 = min(n, 256 * k) */
    int n_threads;          /* 0 = $RADDINO_THREADS, else all cores */
    int restarts;           /* runs from different seeds, the best kept; 0 = default (below) */
} raddino_kmeans_params;

raddino_kmeans_params raddino_kmeans_default_params(void);

/* Restarts: one run of k-means++ and Lloyd lands in a local minimum that depends on its seed
 * (on 43 real X-rays with k 4, a single run's objective was 1.30x the best of 20). Run r
 * (0-based) uses seed + r for its training sample and its k-means++ seeds, so run 0 is the
 * single run of the same seed, and the result is the run with the lowest objective (the first
 * on ties): never worse than any of the runs alone, and equal to the best of them.
 *
 * The default (restarts = 0) is RADDINO_KMEANS_RESTARTS runs when their estimated cost fits
 * RADDINO_KMEANS_BUDGET multiply-adds, else as many as fit (at least one). A run costs about
 * iterations * sample * k * dim (training) + n * k * dim (assigning every vector). The
 * budget is about 30 s on 2 idle cores of a current x86 server (1.8e10 multiply-adds/s in
 * bench_kmeans); a count, not a clock, so that the same seed gives the same clusters on every
 * machine. 100,000 vectors of dim 768 with k 20 get 10 restarts (3.1e10 multiply-adds, about
 * 2 s); 1,000,000 with k 100 get 4. */
#define RADDINO_KMEANS_RESTARTS 10
#define RADDINO_KMEANS_BUDGET 5e11
int raddino_kmeans_default_restarts(size_t n, int dim, const raddino_kmeans_params *params);

typedef struct {
    int k, dim;
    size_t n;               /* vectors assigned */
    size_t n_train;         /* vectors trained on */
    float *centroids;       /* k * dim, unit length */
    int32_t *assignment;    /* n: nearest centroid by cosine */
    float *distance;        /* n: cosine distance 1 - cos(vector, its centroid) */
    size_t *sizes;          /* k: vectors per cluster */
    double objective;       /* sum of distance[] over all n vectors (lower is better) */
    int restarts;           /* runs made (the result is the best of them) */
    int best_run;           /* which (0-based: its seed was params.seed + best_run) */
    double *objectives;     /* restarts: each run's objective, in run order */
} raddino_kmeans_result;

/* Spherical k-means (FAISS Clustering with spherical = 1, inner product) on L2-normalised
 * copies of the vectors; every vector (not only the sample) is then assigned. */
raddino_status raddino_kmeans(const float *vectors, size_t n, int dim,
                              const raddino_kmeans_params *params, raddino_kmeans_result *out);
void raddino_kmeans_result_free(raddino_kmeans_result *result);

/* Mean silhouette (cosine distance) of `sample` vectors chosen with `seed` (0 = 5000; at most
 * 50,000 and n), computed within the sample. In [-1, 1], higher is better; a vector alone in
 * its cluster scores 0. Cost: sample^2 * dim. */
raddino_status raddino_silhouette(const float *vectors, size_t n, int dim,
                                  const int32_t *assignment, int k, size_t sample, uint64_t seed,
                                  int n_threads, double *score);

#pragma GCC visibility pop
#ifdef __cplusplus
}
#endif

#endif
