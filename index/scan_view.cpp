/* scan_view.cpp — the codes of a flat or scalar-quantised index, for index/scan.c. FAISS's C API
 * gives the flat vectors but not a scalar quantiser's codes or its trained ranges, and this file
 * is compiled whether or not the system has a libfaiss_c (faiss_c_api.cpp is not). Nothing here
 * throws. */
#include "scan_internal.h"

#include <faiss/IndexFlat.h>
#include <faiss/IndexIDMap.h>
#include <faiss/IndexScalarQuantizer.h>

extern "C" int index_scan_describe(const FaissIndex *index, index_scan_view *view)
{
    auto *idmap = dynamic_cast<const faiss::IndexIDMap *>(reinterpret_cast<const faiss::Index *>(index));
    if (!idmap || !idmap->index || idmap->id_map.size() != (size_t)idmap->index->ntotal) return 0;
    const faiss::Index *sub = idmap->index;
    index_scan_view v{};
    v.dim = (int)sub->d;
    v.n = (size_t)sub->ntotal;
    v.ids = idmap->id_map.data();
    if (auto *flat = dynamic_cast<const faiss::IndexFlat *>(sub)) {
        if (flat->metric_type != faiss::METRIC_INNER_PRODUCT) return 0;
        v.kind = SCAN_F32;
        v.codes = flat->codes.data();
        v.code_size = flat->code_size;
    } else if (auto *sq = dynamic_cast<const faiss::IndexScalarQuantizer *>(sub)) {
        if (sq->metric_type != faiss::METRIC_INNER_PRODUCT) return 0;
        v.codes = sq->codes.data();
        v.code_size = sq->code_size;
        if (sq->sq.qtype == faiss::ScalarQuantizer::QT_fp16) {
            v.kind = SCAN_F16;
        } else if (sq->sq.qtype == faiss::ScalarQuantizer::QT_8bit &&
                   sq->sq.trained.size() == 2 * (size_t)v.dim) {
            v.kind = SCAN_SQ8;
            v.vmin = sq->sq.trained.data();
            v.vdiff = sq->sq.trained.data() + v.dim;
        } else {
            return 0;
        }
    } else {
        return 0;
    }
    if (v.n && !v.codes) return 0;
    *view = v;
    return 1;
}
