/* npy.h — NumPy .npy v1.0 files: little-endian float32 ('<f4'), C order. */
#ifndef RADDINO_NPY_H
#define RADDINO_NPY_H
#include "raddino_encoder.h"

#include <stdbool.h>
#include <stdio.h>

/* Writes data (n_dims dims given by shape) to path atomically (temporary file + rename). */
raddino_status npy_write_f32(const char *path, const float *data, int n_dims,
                             const int64_t *shape);

/* The same, streamed: open with the final shape, write the values in order, finish (checks the
 * count, then renames the temporary file into place) or abort (removes it). */
typedef struct {
    FILE *f;
    const char *path;       /* the caller's: must outlive the writer */
    char tmp[4096];
    uint64_t expected, written;
} npy_writer;
raddino_status npy_writer_open(npy_writer *w, const char *path, int n_dims,
                               const int64_t *shape);
raddino_status npy_writer_write(npy_writer *w, const float *data, size_t count);
raddino_status npy_writer_finish(npy_writer *w);
void npy_writer_abort(npy_writer *w);

/* Reads a '<f4' C-order .npy; *data is malloc'd. shape has room for 8 dims. */
raddino_status npy_read_f32(const char *path, float **data, int *n_dims, int64_t *shape);
/* Reads a C-order '<f2', '<f4' or '<f8' .npy, converted to float32 (float64 values rounded to
 * nearest). */
raddino_status npy_read_float(const char *path, float **data, int *n_dims, int64_t *shape);
/* On bytes in memory (the fuzz harness), any of the three types; name is used in messages
 * (NULL: "<memory>"). */
raddino_status npy_read_f32_memory(const void *bytes, size_t size, const char *name,
                                   float **data, int *n_dims, int64_t *shape);
#endif
