/* ivf_coarse.cpp — bulk work on an IVF whose coarse quantizer is an HNSW graph
 * ("IVF{L}_HNSW32,..."), done against a flat copy of the centroids.
 *
 * Why: the graph answers one query's "which lists?" in a fraction of a millisecond, which is
 * what it is there for. But FAISS trains and fills such an index through the same graph, one
 * vector at a time, and in Debian's libfaiss (built without AVX2) a graph search at 4,096
 * lists costs about half a millisecond of scalar distance code: at 1,000,000 vectors, minutes
 * for the k-means assignments and minutes more for adding. One BLAS product of a chunk against
 * all L centroids does the same work exactly (the true nearest centroid, where the graph finds
 * a near one) at a fraction of the cost. FAISS's C API has no hook for either (clustering_index,
 * add_core with precomputed lists), hence C++ here.
 */
#include "faiss_guard.h"
#include "ivf_internal.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVF.h>

#include <cstdio>
#include <cstring>
#include <exception>
#include <new>
#include <vector>

namespace {

using idx = faiss::Index::idx_t;

using raddino_faiss_guard::guarded;

faiss::IndexIVF *graph_ivf(FaissIndex *index)
{
    auto *ivf = dynamic_cast<faiss::IndexIVF *>(reinterpret_cast<faiss::Index *>(index));
    return ivf && dynamic_cast<faiss::IndexHNSW *>(ivf->quantizer) ? ivf : nullptr;
}

/* Clears clustering_index whatever happens (the IVF does not own it). */
struct clustering_with {
    faiss::IndexIVF *ivf;
    clustering_with(faiss::IndexIVF *i, faiss::Index *flat) : ivf(i) { ivf->clustering_index = flat; }
    ~clustering_with() { ivf->clustering_index = nullptr; }
};

} // namespace

int index_ivf_graph_quantizer(const FaissIndex *index)
{
    return graph_ivf(const_cast<FaissIndex *>(index)) != nullptr;
}

int index_ivf_train_flat(FaissIndex *index, size_t n, const float *x, char *err, size_t err_size)
{
    faiss::IndexIVF *ivf = graph_ivf(index);
    if (!ivf) return 1;
    return guarded(err, err_size, [&] {
        /* k-means assigns with the flat index; the graph is then built once over the final
         * centroids (FAISS: clus.train on clustering_index, quantizer->add(centroids)). */
        faiss::IndexFlat flat(ivf->d, ivf->metric_type);
        clustering_with scope(ivf, &flat);
        ivf->train((idx)n, x);
    });
}

int index_ivf_add_flat(FaissIndex *index, size_t n, const float *x, const int64_t *ids, char *err,
                       size_t err_size)
{
    faiss::IndexIVF *ivf = graph_ivf(index);
    if (!ivf) return 1;
    return guarded(err, err_size, [&] {
        size_t nlist = ivf->nlist;
        std::vector<float> centroids(nlist * (size_t)ivf->d);
        ivf->quantizer->reconstruct_n(0, (idx)nlist, centroids.data());
        faiss::IndexFlat flat(ivf->d, ivf->metric_type);
        flat.add((idx)nlist, centroids.data());
        std::vector<idx> list(n);
        std::vector<float> score(n);
        flat.search((idx)n, x, 1, score.data(), list.data());
        ivf->add_core((idx)n, x, reinterpret_cast<const idx *>(ids),
                      list.data());
    });
}
