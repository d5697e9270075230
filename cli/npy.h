/* npy.h — NumPy .npy v1.0 files: little-endian float32 ('<f4'), C order. */
#ifndef RADDINO_NPY_H
#define RADDINO_NPY_H
#include "raddino_encoder.h"

#include <stdbool.h>

/* Writes data (n_dims dims given by shape) to path atomically (temporary file + rename). */
raddino_status npy_write_f32(const char *path, const float *data, int n_dims,
                             const int64_t *shape);

/* Reads a '<f4' C-order .npy; *data is malloc'd. shape has room for 8 dims. */
raddino_status npy_read_f32(const char *path, float **data, int *n_dims, int64_t *shape);
/* The same on bytes in memory (the fuzz harness); name is used in messages (NULL: "<memory>"). */
raddino_status npy_read_f32_memory(const void *bytes, size_t size, const char *name,
                                   float **data, int *n_dims, int64_t *shape);
#endif
