/* scan_internal.h — private to index/: a read-only view of the codes of an index that
 * index/scan.c can scan itself (raddino_index_search_batch). */
#ifndef RADDINO_SCAN_INTERNAL_H
#define RADDINO_SCAN_INTERNAL_H

#include <faiss/c_api/Index_c.h>

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { SCAN_F32 = 1, SCAN_F16 = 2, SCAN_SQ8 = 3 } index_scan_kind;

typedef struct {
    int kind;               /* index_scan_kind */
    int dim;
    size_t n;               /* stored vectors */
    const uint8_t *codes;   /* n x code_size, in storage order */
    size_t code_size;
    const int64_t *ids;     /* n: the id of each stored vector */
    const float *vmin, *vdiff;  /* SQ8: per-dimension range (dim each) */
} index_scan_view;

/* 1 and *view filled when `index` is an IndexIDMap over an IndexFlat (inner product) or an
 * IndexScalarQuantizer of fp16 or 8-bit (per-dimension) codes; else 0. The pointers are the
 * index's own and valid until it is changed or freed. */
int index_scan_describe(const FaissIndex *index, index_scan_view *view);

#ifdef __cplusplus
}
#endif

#endif
