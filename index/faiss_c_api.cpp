/* faiss_c_api.cpp — the few functions of FAISS's C API that index/ calls, for systems whose FAISS
 * package ships the C API headers but no libfaiss_c (Debian's libfaiss-dev). CMake compiles this
 * file only when find_library(faiss_c) finds nothing; a system libfaiss_c takes precedence.
 *
 * Every definition sits inside extern "C" after the Debian headers were included, so a signature
 * that differs from the header's is a compile error (two C functions cannot overload), not a
 * silent C++ overload. Functions that return int follow the C API's contract (error_c.h): 0 on
 * success, -2 for a faiss::FaissException, -4 for another std::exception, -1 for anything else,
 * and the message is kept per thread for faiss_get_last_error(). No exception ever crosses into
 * C: that would be undefined behaviour (in practice std::terminate, an abort).
 */
#include <faiss/c_api/AutoTune_c.h>
#include <faiss/c_api/Clustering_c.h>
#include <faiss/c_api/IndexFlat_c.h>
#include <faiss/c_api/IndexIVF_c.h>
#include <faiss/c_api/IndexPreTransform_c.h>
#include <faiss/c_api/Index_c.h>
#include <faiss/c_api/MetaIndexes_c.h>
#include <faiss/c_api/error_c.h>
#include <faiss/c_api/impl/AuxIndexStructures_c.h>
#include <faiss/c_api/index_factory_c.h>
#include <faiss/c_api/index_io_c.h>

#include <faiss/AutoTune.h>
#include <faiss/Clustering.h>
#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexIVF.h>
#include <faiss/IndexPreTransform.h>
#include <faiss/impl/AuxIndexStructures.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/IDSelector.h>
#include <faiss/index_factory.h>
#include <faiss/index_io.h>

#include <exception>
#include <new>
#include <string>

namespace {

/* The message of the last failure on this thread (the C API keeps it per thread too). */
thread_local std::string last_error;

/* Runs `body`, turning whatever it throws into the C API's error code. */
template <typename F>
int guarded(F body)
{
    try {
        body();
        return 0;
    } catch (const faiss::FaissException &e) {
        last_error = e.what();
        return -2; /* FAISS_EXCEPT */
    } catch (const std::exception &e) {
        last_error = e.what();
        return -4; /* STD_EXCEPT */
    } catch (...) {
        last_error = "unknown error";
        return -1; /* UNKNOWN_EXCEPT */
    }
}

faiss::Index *cxx(FaissIndex *index) { return reinterpret_cast<faiss::Index *>(index); }
const faiss::Index *cxx(const FaissIndex *index)
{
    return reinterpret_cast<const faiss::Index *>(index);
}
FaissIndex *c_index(faiss::Index *index) { return reinterpret_cast<FaissIndex *>(index); }

} // namespace

extern "C" {

/* ---- error_c.h ---- */

const char *faiss_get_last_error()
{
    return last_error.empty() ? nullptr : last_error.c_str();
}

/* ---- Index_c.h ---- */

void faiss_Index_free(FaissIndex *obj) { delete cxx(obj); }

int faiss_Index_d(const FaissIndex *index) { return cxx(index)->d; }

int faiss_Index_is_trained(const FaissIndex *index) { return cxx(index)->is_trained ? 1 : 0; }

idx_t faiss_Index_ntotal(const FaissIndex *index) { return cxx(index)->ntotal; }

int faiss_Index_train(FaissIndex *index, idx_t n, const float *x)
{
    return guarded([&] { cxx(index)->train(n, x); });
}

int faiss_Index_reset(FaissIndex *index)
{
    return guarded([&] { cxx(index)->reset(); });
}

int faiss_Index_add_with_ids(FaissIndex *index, idx_t n, const float *x, const idx_t *xids)
{
    return guarded([&] { cxx(index)->add_with_ids(n, x, xids); });
}

int faiss_Index_search(const FaissIndex *index, idx_t n, const float *x, idx_t k,
                       float *distances, idx_t *labels)
{
    return guarded([&] { cxx(index)->search(n, x, k, distances, labels); });
}

int faiss_Index_range_search(const FaissIndex *index, idx_t n, const float *x, float radius,
                             FaissRangeSearchResult *result)
{
    return guarded([&] {
        cxx(index)->range_search(n, x, radius,
                                 reinterpret_cast<faiss::RangeSearchResult *>(result));
    });
}

int faiss_Index_remove_ids(FaissIndex *index, const FaissIDSelector *sel, size_t *n_removed)
{
    return guarded([&] {
        size_t n = cxx(index)->remove_ids(*reinterpret_cast<const faiss::IDSelector *>(sel));
        if (n_removed) *n_removed = n;
    });
}

int faiss_Index_reconstruct_n(const FaissIndex *index, idx_t i0, idx_t ni, float *recons)
{
    return guarded([&] { cxx(index)->reconstruct_n(i0, ni, recons); });
}

/* ---- IndexFlat_c.h ---- */

int faiss_IndexFlatIP_new_with(FaissIndexFlatIP **p_index, idx_t d)
{
    return guarded([&] {
        *p_index = reinterpret_cast<FaissIndexFlatIP *>(new faiss::IndexFlatIP(d));
    });
}

/* ---- MetaIndexes_c.h ---- */

int faiss_IndexIDMap_new(FaissIndexIDMap **p_index, FaissIndex *index)
{
    return guarded([&] {
        *p_index = reinterpret_cast<FaissIndexIDMap *>(new faiss::IndexIDMap(cxx(index)));
    });
}

void faiss_IndexIDMap_set_own_fields(FaissIndexIDMap *index, int own_fields)
{
    reinterpret_cast<faiss::IndexIDMap *>(index)->own_fields = own_fields != 0;
}

FaissIndexIDMap *faiss_IndexIDMap_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexIDMap *>(dynamic_cast<faiss::IndexIDMap *>(cxx(index)));
}

void faiss_IndexIDMap_id_map(FaissIndexIDMap *index, idx_t **p_id_map, size_t *p_size)
{
    auto *idmap = reinterpret_cast<faiss::IndexIDMap *>(index);
    if (p_id_map) *p_id_map = idmap->id_map.data();
    if (p_size) *p_size = idmap->id_map.size();
}

FaissIndex *faiss_IndexIDMap_sub_index(FaissIndexIDMap *index)
{
    return c_index(reinterpret_cast<faiss::IndexIDMap *>(index)->index);
}

/* ---- IndexIVF_c.h ---- */

FaissIndexIVF *faiss_IndexIVF_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexIVF *>(dynamic_cast<faiss::IndexIVF *>(cxx(index)));
}

size_t faiss_IndexIVF_nlist(const FaissIndexIVF *index)
{
    return reinterpret_cast<const faiss::IndexIVF *>(index)->nlist;
}

/* ---- IndexPreTransform_c.h ---- */

FaissIndexPreTransform *faiss_IndexPreTransform_cast(FaissIndex *index)
{
    return reinterpret_cast<FaissIndexPreTransform *>(
            dynamic_cast<faiss::IndexPreTransform *>(cxx(index)));
}

FaissIndex *faiss_IndexPreTransform_index(const FaissIndexPreTransform *index)
{
    return c_index(reinterpret_cast<const faiss::IndexPreTransform *>(index)->index);
}

/* ---- index_factory_c.h ---- */

int faiss_index_factory(FaissIndex **p_index, int d, const char *description,
                        FaissMetricType metric)
{
    return guarded([&] {
        *p_index = c_index(faiss::index_factory(d, description,
                                                static_cast<faiss::MetricType>(metric)));
    });
}

/* ---- index_io_c.h ---- */

int faiss_write_index(const FaissIndex *idx, FILE *f)
{
    return guarded([&] { faiss::write_index(cxx(idx), f); });
}

int faiss_read_index(FILE *f, int io_flags, FaissIndex **p_out)
{
    return guarded([&] { *p_out = c_index(faiss::read_index(f, io_flags)); });
}

/* ---- AutoTune_c.h ---- */

int faiss_ParameterSpace_new(FaissParameterSpace **space)
{
    return guarded([&] {
        *space = reinterpret_cast<FaissParameterSpace *>(new faiss::ParameterSpace());
    });
}

void faiss_ParameterSpace_free(FaissParameterSpace *obj)
{
    delete reinterpret_cast<faiss::ParameterSpace *>(obj);
}

int faiss_ParameterSpace_set_index_parameter(const FaissParameterSpace *space, FaissIndex *index,
                                             const char *name, double value)
{
    return guarded([&] {
        reinterpret_cast<const faiss::ParameterSpace *>(space)->set_index_parameter(
                cxx(index), name, value);
    });
}

/* ---- impl/AuxIndexStructures_c.h ---- */

int faiss_RangeSearchResult_new(FaissRangeSearchResult **p_rsr, idx_t nq)
{
    return guarded([&] {
        *p_rsr = reinterpret_cast<FaissRangeSearchResult *>(new faiss::RangeSearchResult(nq));
    });
}

void faiss_RangeSearchResult_free(FaissRangeSearchResult *obj)
{
    delete reinterpret_cast<faiss::RangeSearchResult *>(obj);
}

void faiss_RangeSearchResult_lims(FaissRangeSearchResult *rsr, size_t **lims)
{
    *lims = reinterpret_cast<faiss::RangeSearchResult *>(rsr)->lims;
}

void faiss_RangeSearchResult_labels(FaissRangeSearchResult *rsr, idx_t **labels,
                                    float **distances)
{
    auto *r = reinterpret_cast<faiss::RangeSearchResult *>(rsr);
    *labels = r->labels;
    *distances = r->distances;
}

int faiss_IDSelectorBatch_new(FaissIDSelectorBatch **p_sel, size_t n, const idx_t *indices)
{
    return guarded([&] {
        *p_sel = reinterpret_cast<FaissIDSelectorBatch *>(new faiss::IDSelectorBatch(n, indices));
    });
}

void faiss_IDSelector_free(FaissIDSelector *obj)
{
    delete reinterpret_cast<faiss::IDSelector *>(obj);
}

/* ---- Clustering_c.h ---- */

void faiss_ClusteringParameters_init(FaissClusteringParameters *params)
{
    faiss::ClusteringParameters d;
    params->niter = d.niter;
    params->nredo = d.nredo;
    params->verbose = d.verbose;
    params->spherical = d.spherical;
    params->int_centroids = d.int_centroids;
    params->update_index = d.update_index;
    params->frozen_centroids = d.frozen_centroids;
    params->min_points_per_centroid = d.min_points_per_centroid;
    params->max_points_per_centroid = d.max_points_per_centroid;
    params->seed = d.seed;
    params->decode_block_size = d.decode_block_size;
}

int faiss_Clustering_new_with_params(FaissClustering **p_clustering, int d, int k,
                                     const FaissClusteringParameters *cp)
{
    return guarded([&] {
        faiss::ClusteringParameters p;
        p.niter = cp->niter;
        p.nredo = cp->nredo;
        p.verbose = cp->verbose != 0;
        p.spherical = cp->spherical != 0;
        p.int_centroids = cp->int_centroids != 0;
        p.update_index = cp->update_index != 0;
        p.frozen_centroids = cp->frozen_centroids != 0;
        p.min_points_per_centroid = cp->min_points_per_centroid;
        p.max_points_per_centroid = cp->max_points_per_centroid;
        p.seed = cp->seed;
        p.decode_block_size = cp->decode_block_size;
        *p_clustering = reinterpret_cast<FaissClustering *>(new faiss::Clustering(d, k, p));
    });
}

int faiss_Clustering_train(FaissClustering *clustering, idx_t n, const float *x,
                           FaissIndex *index)
{
    return guarded([&] {
        reinterpret_cast<faiss::Clustering *>(clustering)->train(n, x, *cxx(index));
    });
}

void faiss_Clustering_centroids(FaissClustering *clustering, float **centroids, size_t *size)
{
    auto *c = reinterpret_cast<faiss::Clustering *>(clustering);
    if (centroids) *centroids = c->centroids.data();
    if (size) *size = c->centroids.size();
}

void faiss_Clustering_free(FaissClustering *clustering)
{
    delete reinterpret_cast<faiss::Clustering *>(clustering);
}

} /* extern "C" */
