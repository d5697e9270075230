/* ivf_internal.h — private to index/: the C++ helpers of the on-disk IVF index
 * (ivf_ondisk.cpp). Functions returning int give 0 on success, else an error whose reason is
 * written to err (one line). */
#ifndef RADDINO_IVF_INTERNAL_H
#define RADDINO_IVF_INTERNAL_H

#include <faiss/c_api/Index_c.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* 1 when the top level of `index` is an IVF (fills what is asked; lists_file is FAISS's string,
 * valid while the index lives, NULL when the lists are in memory), else 0. */
int index_ivf_describe(const FaissIndex *index, size_t *nlist, size_t *code_size, int *on_disk,
                       const char **lists_file, uint64_t *lists_bytes);

/* A copy of the IVF `src` (quantizer, codec) with empty in-memory lists. Only reads src. */
int index_ivf_empty_copy(const FaissIndex *src, FaissIndex **out, char *err, size_t err_size);

/* One index with the trained index's quantizer and every part's lists, written to lists_path
 * in FAISS OnDiskInvertedLists's layout (temporary name, fsync, rename), mapped read-only. */
int index_ivf_merge_ondisk(const FaissIndex *trained, FaissIndex *const *parts, size_t n_parts,
                           const char *lists_path, FaissIndex **out, char *err, size_t err_size);

/* faiss::read_index from f (on-disk lists, if any, mapped read-only). */
int index_read_faiss_at(FILE *f, FaissIndex **out, char *err, size_t err_size);

/* Sets the lists file name an on-disk index records (-1: not one). */
int index_ivf_set_lists_name(FaissIndex *index, const char *name);

/* Reads a saved on-disk index from its FAISS bytes, which name the lists file stored_name,
 * mapping lists_path instead. */
int index_read_ondisk(const void *bytes, size_t size, const char *stored_name,
                      const char *lists_path, FaissIndex **out, char *err, size_t err_size);

/* For an on-disk IVF: every list lies within the mapped file and the sizes add up to ntotal
 * (-2 otherwise). 0 for other indexes. */
int index_ivf_check_lists(const FaissIndex *index, char *err, size_t err_size);

/* An IVF whose coarse quantizer is an HNSW graph (ivf_coarse.cpp): 1, else 0. */
int index_ivf_graph_quantizer(const FaissIndex *index);
/* Trains it (k-means assigning by a flat index over the centroids; the graph is built once
 * over the result), or adds n unit vectors to the lists a flat search over the centroids
 * assigns them. 0 on success; 1 when the index is not such an IVF (nothing done). */
int index_ivf_train_flat(FaissIndex *index, size_t n, const float *x, char *err,
                         size_t err_size);
int index_ivf_add_flat(FaissIndex *index, size_t n, const float *x, const int64_t *ids,
                       char *err, size_t err_size);

#ifdef __cplusplus
}
#endif

#endif
