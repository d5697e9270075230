/* safetensors.h — private to encoder/: the memory-mapped safetensors reader (safetensors.c): the
 * header is validated before any data is touched. */
#ifndef RADDINO_SAFETENSORS_H
#define RADDINO_SAFETENSORS_H

#include "raddino_encoder.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- safetensors.c ---- */

typedef enum {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, ST_OTHER
} safetensors_dtype;

#define SAFETENSORS_MAX_DIMS 8
#define SAFETENSORS_MAX_NAME 256
/* A header larger than this is refused (the real RAD-DINO header is about 20 KB). cJSON spends
 * about 64 bytes per value, so a header of "0,0,0,..." costs 32 times its length: 16 MiB keeps
 * that under 512 MiB and still holds the 131072 tensors we accept at ~120 bytes each. */
#define SAFETENSORS_MAX_HEADER (16u << 20)

typedef struct {
    char name[SAFETENSORS_MAX_NAME];
    safetensors_dtype dtype;
    int n_dims;
    int64_t shape[SAFETENSORS_MAX_DIMS];
    uint64_t n_elements;
    uint64_t begin, end;        /* byte offsets relative to the data section */
    const uint8_t *data;        /* into the mapping: data_section + begin */
} safetensors_tensor;

typedef struct {
    char path[1024];
    void *map;                  /* whole file, read-only mapping (or the caller's bytes) */
    size_t map_size;
    bool mapped;                /* map is ours to munmap (false for safetensors_open_memory) */
    const uint8_t *data_section;
    uint64_t data_size;
    int n_tensors;
    safetensors_tensor *tensors;    /* sorted by name */
} safetensors_file;

/* Maps and validates the file: header length within the file, JSON object, every entry with a
 * known dtype string, shape of non-negative ints whose byte size matches data_offsets, offsets
 * inside the data section, no two tensors overlapping. Errors name the file and the tensor. */
raddino_status safetensors_open(const char *path, safetensors_file *out);
/* The same checks on a file already in memory (the fuzz harness): data must outlive f; name is
 * used in messages (NULL: "<memory>"). */
raddino_status safetensors_open_memory(const void *data, size_t size, const char *name,
                                       safetensors_file *out);
void safetensors_close(safetensors_file *f);
const safetensors_tensor *safetensors_find(const safetensors_file *f, const char *name);
const char *safetensors_dtype_name(safetensors_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif
